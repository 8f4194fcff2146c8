// Built-in routing policies, each a scorer (router.hpp) to compose into a router's pipeline.
//
// Typical pipelines:
//   round robin                 {round_robin()}
//   least outstanding requests  {least_outstanding()}
//   power of two choices        {power_of_two(seed)}
//   weighted                    {weighted_random(seed)}
//   KV-cache aware              {least_outstanding(), weight 1} + {kv_cache_headroom(), weight 4}
//   sticky sessions             {session_affinity()}   consistent hashing with bounded loads on the session key
//   prefix affinity             prefix_affinity_pipeline(): {bounded_load(), prefix_affinity()}
#pragma once

#include <swarm/dispatch/router.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace swarm::inline v0::dispatch {

// The factories taking options require options that validate() (a contract, checked: a violation terminates);
// options loaded through swarm::config are validated on load.

/// Cycles through the model's candidates in id-hash order, skipping any a filter or health removed.
std::shared_ptr<scorer> round_robin();

/// Scores -load: the candidate with the fewest outstanding requests wins.
std::shared_ptr<scorer> least_outstanding();

/// Draws two distinct candidates of the best verdict from a seeded generator; the less loaded wins, the other
/// is next. Deterministic for a seed and a sequence of calls.
std::shared_ptr<scorer> power_of_two(std::uint64_t seed);

/// Draws one candidate of the best verdict with probability proportional to backend::weight.
std::shared_ptr<scorer> weighted_random(std::uint64_t seed);

/// Scores -kv_cache_usage (0..1, as the backend reports it): with a small weight next to another policy, steers
/// toward backends with room in their KV cache.
std::shared_ptr<scorer> kv_cache_headroom();

struct gpu_saturation_options {
    // A candidate whose GPUs report utilisation or memory use at or above these fractions becomes a fallback.
    double max_utilisation = 0.95;
    double max_memory_usage = 0.95;

    template <class F>
    void describe(F& f) {
        f("max_utilisation", max_utilisation);
        f("max_memory_usage", max_memory_usage);
    }
    detailed_result<void> validate() const;
};
/// A filter on GPU telemetry (backend::gpu_utilisation, gpu_memory_usage): demotes saturated backends to
/// fallbacks and adds no score. The figures travel by gossip and are seconds old, so they filter rather than
/// rank: ranking on stale figures would send every request to whichever backend looked coolest last.
std::shared_ptr<scorer> gpu_saturation(gpu_saturation_options options = {});

struct bounded_load_options {
    // A preferred candidate whose load exceeds the least loaded preferred one's by more than
    // max(slack_requests, slack_fraction * mean load) becomes a fallback.
    double slack_requests = 2.0;
    double slack_fraction = 0.1;

    template <class F>
    void describe(F& f) {
        f("slack_requests", slack_requests);
        f("slack_fraction", slack_fraction);
    }
    detailed_result<void> validate() const;
};
/// A filter: demotes candidates too far above the least loaded to fallbacks. Adds no score.
std::shared_ptr<scorer> bounded_load(bounded_load_options options = {});

struct session_affinity_options {
    // Consistent hashing with bounded loads: a candidate takes the session while its load + 1 stays within
    // ceil(load_factor * (total load + 1) / candidates).
    double load_factor = 1.25;

    template <class F>
    void describe(F& f) {
        f("load_factor", load_factor);
    }
    detailed_result<void> validate() const;
};
/// Rendezvous (highest random weight) hashing of the session key over the candidates, so adding or removing a
/// backend moves only the sessions it wins or held; a candidate at its load bound passes the session on to
/// the next in the key's order. Scores 1 + w for candidates within the bound and w over it (w in [0, 1));
/// a request without a session key is hashed by its prompt's first block instead.
std::shared_ptr<scorer> session_affinity(session_affinity_options options = {});

struct prefix_affinity_options {
    // Blocks remembered per backend: the record of what a backend has cached, fed by this router's own
    // decisions and aged out least-recently-routed first. Size it near the backend's KV cache in blocks.
    std::uint32_t blocks_per_backend = 8192;
    // The first `exact_blocks` blocks of a prompt are recorded one by one; beyond them one block in `stride`
    // (and the last block), so a long prompt's record costs about 1/stride of its blocks in time and memory,
    // and a match longer than exact_blocks is known to within stride blocks. stride 1 records every block.
    std::uint32_t exact_blocks = 16;
    std::uint32_t stride = 8;

    template <class F>
    void describe(F& f) {
        f("blocks_per_backend", blocks_per_backend);
        f("exact_blocks", exact_blocks);
        f("stride", stride);
    }
    detailed_result<void> validate() const;
};
/// Prefix affinity. Among the preferred candidates (put a bounded_load() before it to keep load in check),
/// the one recorded with the longest prefix of the request's blocks scores blocks + 1 + w; every other
/// candidate scores w, where w in [0, 1) is the rendezvous weight of the request's first block. So a prompt
/// goes where its longest prefix is cached, a miss goes where the group's first block hashes (the same
/// choice on every gateway replica given the same backends), and distinct prefixes spread evenly.
/// The record is approximate: a fixed-size age-ordered log of block hashes per backend plus one shared index.
std::shared_ptr<scorer> prefix_affinity(prefix_affinity_options options = {});

/// {bounded_load(load), prefix_affinity(prefix)}, each of weight 1.
std::vector<stage> prefix_affinity_pipeline(bounded_load_options load = {}, prefix_affinity_options prefix = {});

} // namespace swarm::inline v0::dispatch
