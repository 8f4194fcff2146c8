// The dispatch router: which backend serves a request, decided by a pipeline of composable scorers.
//
// A router holds the backends it may send to, grouped by the models they serve, and answers route() with a
// chosen backend plus a short ranked list of fallbacks for retries. It reads no clock and opens no socket;
// the gateway (or any host) feeds it load (on_start/on_finish, scraped queue depths) and health (a circuit
// breaker's or an outlier detector's verdict), and sends the request itself.
//
// Policies are scorers (see scorers.hpp for the built-ins; a host may write its own). Each scorer sees the
// request and the model's candidates and may
//   - add to each candidate's score (the router applies the stage's weight and sums), and
//   - worsen a candidate's verdict: `preferred` -> `fallback` (a filter such as a load bound: still ranked,
//     only chosen when no preferred candidate is left) -> `excluded` (never chosen, never a fallback).
// The chosen backend is the best (verdict, then score) candidate; ties go to the candidate whose id hashes
// lowest, so two routers given the same backend set and the same requests make the same choices.
// Unhealthy and ejected backends are excluded before the first scorer runs.
//
// Thread-safety: a router is a single-strand object. Every member function (route, on_start, on_finish,
// add/update/remove, ...) must be called from one thread or strand at a time; the router takes no lock.
// Gateways with several threads run one router per strand or post to a router's strand. route() allocates
// nothing once its scratch space has grown to the largest model's candidate count.
#pragma once

#include <swarm/core/error.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::inline v0::dispatch {

/// A model server as the host describes it: from membership metadata or a static list.
struct backend {
    // Read for every candidate of every route(), so they come first (one cache line with backend_state's
    // counters).
    // Health, from the host's circuit breaker and outlier ejection. Either flag keeps the backend out.
    bool healthy = true;
    bool ejected = false;
    // Load the backend reports (scraped Prometheus, e.g. vllm:num_requests_waiting and kv_cache_usage_perc).
    std::uint32_t queued = 0;
    double kv_cache_usage = 0.0; // 0..1
    // GPU telemetry from the serving node's membership metadata (NVML, seconds old): busy fraction averaged
    // over its GPUs, and GPU memory used over GPU memory in all. 0 when the node reports no GPU.
    double gpu_utilisation = 0.0;  // 0..1
    double gpu_memory_usage = 0.0; // 0..1
    double weight = 1.0;         // relative capacity, > 0 (weighted policies)

    std::string id;                          // unique within a router; the rendezvous hashes derive from it
    std::vector<std::string> models;         // the model names it serves (at least one)
    std::string endpoint;                    // where the gateway connects ("10.0.0.7:8000", a URL)
    std::map<std::string, std::string> labels;
};

/// A backend inside a router: what the router counts itself, then the description.
struct alignas(64) backend_state {
    std::uint64_t key = 0;       // a 64-bit hash of info.id, the backend's identity in rendezvous hashing
    std::uint32_t slot = 0;      // dense index, stable while the backend stays; scorers index their state by it
    std::uint32_t generation = 0;
    std::uint32_t in_flight = 0; // on_start minus on_finish
    backend info;
    std::uint64_t completed = 0;
    std::uint64_t failed = 0;
    std::chrono::nanoseconds latency_ewma{0}; // of successful requests, weight 1/8 per sample

    /// Outstanding requests: counted here plus queued where the backend reports its own queue.
    double load() const noexcept { return static_cast<double>(in_flight) + static_cast<double>(info.queued); }
    bool usable() const noexcept { return info.healthy && !info.ejected; }
};

/// Names a backend across calls; stale once the backend is removed (its slot may be reused, the generation
/// tells them apart).
struct backend_ref {
    std::uint32_t slot = 0;
    std::uint32_t generation = 0;
    friend bool operator==(const backend_ref&, const backend_ref&) = default;
};

/// One request as the router sees it. Views only: nothing is copied.
struct request_view {
    std::string_view model;
    std::string_view session_key;            // empty: none
    std::span<const std::byte> prompt;       // the prompt's bytes, hashed in blocks of block_bytes
    std::span<const std::uint32_t> tokens;   // pre-tokenised ids; used instead of the bytes when not empty
};

/// What a scorer learns about the request, computed once by the router.
struct request_context {
    const request_view* request = nullptr;
    std::uint32_t model_index = 0;           // dense per router: per-model scorer state may be indexed by it
    std::span<const std::uint64_t> blocks;   // chained hashes of the prompt's whole blocks (blocks[i] covers 0..i);
                                             // empty unless a stage uses_blocks()
    std::uint64_t affinity_key = 0;          // blocks[0], or a hash of the whole prompt when shorter than a block
    std::uint64_t session_hash = 0;          // hash of the session key; 0 when there is none
    // Changes whenever the model's candidate list does (a backend added, removed, or its models changed), and
    // only then: a scorer may cache what it derives from the candidates (ids' keys, slot -> position) per
    // model and rebuild it when this differs. Never 0, and never reused, even by another router.
    std::uint64_t candidates_version = 0;
    // Parallel to the candidates: each one's load() (in flight + queued, saturated at 2^32 - 1), kept by the
    // router in one dense array so load-aware passes read it without following a pointer per candidate. Empty
    // when a host calls score() itself without one.
    std::span<const std::uint32_t> loads;
};

enum class verdict : std::uint8_t { preferred = 0, fallback = 1, excluded = 2 };

/// A routing policy. Implementations keep their own state; the router calls them from its strand only.
class scorer {
public:
    virtual ~scorer() = default;
    virtual std::string_view name() const noexcept = 0;
    /// Whether score() reads request_context::blocks. The router hashes the whole prompt only when some
    /// stage does (affinity_key is always there: it costs one block).
    virtual bool uses_blocks() const noexcept { return false; }

    /// `candidates`, `verdicts` and `scores` are parallel. Add this policy's opinion to `scores` (higher is
    /// better; the router applies the stage's weight, and may pass earlier stages' sum, so add, never assign
    /// and never read). Verdicts may only be worsened. Must not throw.
    virtual void score(const request_context& ctx, std::span<const backend_state* const> candidates,
                       std::span<verdict> verdicts, std::span<double> scores) = 0;

    /// After every decision, for policies that learn from them (round-robin's cursor, prefix records).
    virtual void on_routed(const request_context& ctx, std::span<const backend_state* const> candidates,
                           std::size_t chosen) {
        (void)ctx, (void)candidates, (void)chosen;
    }
    /// A backend left the router (or its slot is about to be reused): forget what is kept about it.
    virtual void on_removed(const backend_state& b) { (void)b; }
};

/// One step of a router's pipeline.
struct stage {
    std::shared_ptr<scorer> policy;
    double weight = 1.0; // finite and >= 0; at 0 the stage still filters (verdicts) but its scores are ignored
};

struct router_config {
    std::uint32_t block_bytes = 256;   // prompt bytes per prefix block (about 64 tokens of English text)
    std::uint32_t block_tokens = 16;   // token ids per prefix block when the request carries tokens
    std::uint32_t max_blocks = 4096;   // blocks hashed per request at most (1 MiB of prompt by default)
    std::uint32_t max_fallbacks = 3;   // at most max_fallback_limit

    static constexpr std::uint32_t max_fallback_limit = 8;

    template <class F>
    void describe(F& f) {
        f("block_bytes", block_bytes);
        f("block_tokens", block_tokens);
        f("max_blocks", max_blocks);
        f("max_fallbacks", max_fallbacks);
    }
    detailed_result<void> validate() const;
};

/// route()'s answer: the backend to try first, then the fallbacks in order.
struct route_decision {
    backend_ref chosen;
    std::array<backend_ref, router_config::max_fallback_limit> fallback_storage{};
    std::uint32_t fallback_count = 0;

    std::span<const backend_ref> fallbacks() const noexcept { return {fallback_storage.data(), fallback_count}; }
};

class router {
public:
    /// Fails with config_invalid_value on a bad config or stage (null policy, negative or non-finite weight).
    static detailed_result<router> create(router_config config, std::vector<stage> pipeline);

    router(router&&) noexcept;
    router& operator=(router&&) noexcept;
    ~router();

    /// Adds a backend. invalid_argument: empty id, no model, weight not > 0; already_exists: the id is taken.
    detailed_result<backend_ref> add(backend b);
    /// Replaces a backend's description (models, weight, health, reported load) and keeps its counts and the
    /// scorers' memory of it. not_found when the id is unknown.
    detailed_result<backend_ref> update(backend b);
    /// not_found when the id is unknown.
    result<void> remove(std::string_view id);

    /// Health and reported load without rebuilding anything. not_found when the id is unknown.
    result<void> set_health(std::string_view id, bool healthy, bool ejected);
    result<void> set_reported_load(std::string_view id, std::uint32_t queued, double kv_cache_usage);

    /// Chooses a backend. not_found: the model has no backend (unknown, or every backend removed);
    /// unreachable: every backend of the model is unhealthy or ejected. The message names the model.
    detailed_result<route_decision> route(const request_view& request);

    /// A request was sent to / finished on `b`. Stale refs (the backend was removed) are ignored and
    /// return false.
    bool on_start(backend_ref b);
    bool on_finish(backend_ref b, bool ok, std::chrono::nanoseconds latency);

    /// The backend `b` names, or nullptr when it is gone. Valid until the next add/update/remove.
    const backend_state* find(backend_ref b) const noexcept;
    const backend_state* find(std::string_view id) const noexcept;
    std::size_t size() const noexcept;

    const router_config& config() const noexcept;

private:
    struct impl;
    explicit router(std::unique_ptr<impl> p) noexcept;
    std::unique_ptr<impl> impl_;
};

/// The chained block hashes the router computes for a request (block i covers the model name and the bytes or
/// tokens of blocks 0..i), written
/// to `out`; returns how many (at most out.size()). Exposed for simulations and for hosts that keep their own
/// cache records.
std::size_t prefix_blocks(const router_config& config, const request_view& request, std::span<std::uint64_t> out);

} // namespace swarm::inline v0::dispatch
