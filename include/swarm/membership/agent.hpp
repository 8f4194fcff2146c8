// The membership agent: what a host program creates to be a member of a mesh on real UDP and TCP. It runs
// the sans-IO `swim` protocol on a `net::socket_driver`, loads the node's identity, holds the cluster keys,
// resolves seeds, delivers events and keeps Prometheus metrics.
//
//     auto cfg = swarm::config::load_file<swarm::membership::agent_config>("node.json");
//     auto node = swarm::membership::agent::create(std::move(cfg.value()));   // owns its own runtime
//     node->subscribe([](const swarm::membership::event& e) { ... });         // on the agent's strand
//     ...
//     node->leave();                                                           // graceful, bounded
//
// Threading. All protocol state lives on the driver's strand; every public member may be called from any
// thread, and posts there. Members that return data (members(), find(), stats(), metrics_text()) wait for
// the strand for at most agent_config::call_timeout and fail with errc::timed_out beyond it; called from the
// strand itself (from a subscriber) they run inline. stop(), leave() and the destructor are bounded.
//
// Event delivery, two ways:
// - subscribe(): callbacks run on the agent's strand, one event at a time and in order, outside any internal
//   lock and outside the protocol's own call stack, so a callback may call any member of the agent but its
//   destructor (or a move into it). Queries run inline; stop(), leave() and halt() start the stop and return
//   false without waiting, since the strand they would wait for is the callback's. A callback must return
//   quickly and must not block: while it runs, this node answers no probe, and a callback slower than the
//   probe timeout gets the node suspected. An exception escaping a callback is caught and logged.
// - poll(): a bounded queue the host drains from its own thread, so bindings (Python, C) never run code on a
//   swarm thread. set_notify()'s function runs on a swarm thread when the queue goes from empty to non-empty;
//   it must only wake the host (signal a condition variable, write to a pipe) and never call into the agent.
//   When the queue is full the oldest event is dropped and counted (events_dropped()).
#pragma once

#include <swarm/core/clock.hpp>
#include <swarm/core/error.hpp>
#include <swarm/core/identity.hpp>
#include <swarm/core/logger.hpp>
#include <swarm/core/seal.hpp>
#include <swarm/membership/config.hpp>
#include <swarm/membership/gpu_telemetry.hpp>
#include <swarm/membership/swim.hpp>
#include <swarm/membership/types.hpp>
#include <swarm/net/driver.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::inline v0 {
class runtime;
}

namespace swarm::inline v0::membership {

/// Decodes a 32-byte cluster key written as 64 hex digits or as standard base64 (44 characters with
/// padding). errc::invalid_argument for anything else; the message never contains the key.
detailed_result<std::vector<std::byte>> parse_cluster_key(std::string_view text);

struct agent_config {
    /// Sockets: bind and advertise addresses, limits, stop grace. driver.log, when it has no sink, is set
    /// to `log` below.
    net::driver_config driver;
    /// The protocol's timing and limits. Its `seeds` (literal addresses) are joined as well as `seeds` below.
    config membership;
    /// The node's key file, created with mode 0600 on first start (identity::load_or_create). Required.
    std::filesystem::path identity_file;
    /// Cluster keys, 32 bytes each as hex or base64; the first seals, all open. At least one.
    std::vector<std::string> cluster_keys;
    /// "host:port" or "[v6]:port"; names resolve to every A and AAAA record, again on each join retry.
    std::vector<std::string> seeds;
    /// Events kept for poll(); beyond this the oldest are dropped and counted.
    std::size_t event_queue_capacity = 4096;
    /// How long a call that returns data waits for the strand.
    duration call_timeout = std::chrono::seconds(2);
    /// How long leave() keeps the node running after announcing its departure, so the news spreads.
    duration leave_drain = std::chrono::milliseconds(500);
    /// GPU figures sampled periodically into this node's metadata (capacity.gpus and available.gpus),
    /// republished only when they move beyond the thresholds. Where nothing is found (no NVML, no GPUs) the
    /// host's own GPU metadata stands.
    gpu_telemetry_config gpu_telemetry;
    /// The GPU source; null means NVML loaded from gpu_telemetry.nvml_library. Not part of the JSON shape.
    std::shared_ptr<gpu_provider> gpu_source;
    /// Silent by default. Not part of the JSON shape.
    logger log;

    detailed_result<void> validate() const;
    template <class F>
    void describe(F& f) {
        f("driver", driver);
        f("membership", membership);
        f("identity_file", identity_file);
        f("cluster_keys", cluster_keys);
        f("seeds", seeds);
        f("event_queue_capacity", event_queue_capacity);
        f("call_timeout", call_timeout);
        f("leave_drain", leave_drain);
        f("gpu_telemetry", gpu_telemetry);
    }
};

/// One member of the mesh on real sockets. Movable; a moved-from agent is empty: its controls do nothing
/// and its queries fail with errc::shut_down.
class agent {
public:
    using event_callback = std::function<void(const event&)>;
    using subscription = std::uint64_t;

    /// Runs on the host's executor, which must outlive the agent. Validates `cfg`, loads or creates the
    /// identity, binds, starts the protocol and starts joining `cfg.seeds`. Errors: the config's own
    /// (naming the key), the identity file's (naming the path), the bind error (naming the address).
    static detailed_result<agent> create(boost::asio::any_io_executor executor, agent_config cfg);
    /// The same on a swarm::runtime of `threads` threads that the agent owns and stops last.
    static detailed_result<agent> create(agent_config cfg, unsigned threads = 1);

    agent(agent&&) noexcept;
    /// Stops the agent this one held first, as the destructor does.
    agent& operator=(agent&&) noexcept;
    agent(const agent&) = delete;
    agent& operator=(const agent&) = delete;
    /// stop(): peers are told this node is leaving, without the drain leave() allows. Bounded.
    ~agent();

    const node_id& id() const noexcept;
    /// The address peers use for this node (the advertise address when configured).
    net::endpoint local_endpoint() const noexcept;

    // --- controls ---------------------------------------------------------------------------------------
    /// Joins through these seeds as well as the configured ones; resolution is asynchronous and repeated on
    /// each retry until another member answers. Unresolvable seeds are logged and retried.
    void join(std::vector<std::string> seeds = {});
    /// Publishes new metadata. While GPU telemetry reports GPUs, its figures replace the GPU lists of `meta`.
    /// errc::too_large beyond membership.max_metadata_bytes, errc::timed_out, errc::shut_down.
    result<void> set_metadata(const metadata& meta);
    /// Announces the departure (peers mark this node left, not failed), keeps running for leave_drain so
    /// the news spreads, then stops. Bounded by leave_drain + call_timeout + the driver's stop bound; true
    /// when everything completed in time.
    bool leave();
    /// Stops the driver: on_stop announces the departure, queued writes drain for at most
    /// driver.stop_grace. Bounded; true when the stop completed. Idempotent.
    bool stop();
    /// Stops without a word to anyone, as a crash would: peers detect this node as failed. Bounded.
    bool halt();
    /// True once stopped, by any of the three.
    bool stopped() const noexcept;

    // --- cluster keys (thread-safe; the protocol uses a change at its next datagram) ---------------------
    /// Adds a key accepted for opening. Cluster-wide rotation: install_key on every node, then use_key on
    /// every node, then remove_key of the old key on every node. errc::invalid_argument, errc::already_exists.
    result<seal::key_id> install_key(std::string_view hex_or_base64);
    result<seal::key_id> install_key(std::span<const std::byte> key);
    /// Makes an installed key the one that seals. errc::not_found.
    result<void> use_key(seal::key_id id);
    result<void> use_key(std::string_view hex_or_base64);
    /// Drops a key. errc::invalid_argument for the sealing key, errc::not_found.
    result<void> remove_key(seal::key_id id);
    result<void> remove_key(std::string_view hex_or_base64);
    /// Installed key ids, the sealing key first.
    std::vector<seal::key_id> key_ids() const;

    // --- the view (bounded waits; errc::timed_out, errc::shut_down) --------------------------------------
    result<std::vector<member>> members() const;
    result<std::optional<member>> find(const node_id& id) const;
    result<statistics> stats() const;
    /// Every swarm_membership_* metric in the Prometheus text format, refreshed from the protocol first:
    /// members{state}, local_health, probes_total, probes_failed_total, suspicions_total,
    /// refutations_total, {sent,received}_{bytes,packets}_total, packets_refused_total{reason} (reason as
    /// membership::to_string(refusal)) and events_dropped_total.
    /// When the strand cannot answer in time (or the agent is stopped) the last refreshed values are
    /// rendered.
    std::string metrics_text() const;

    // --- events ---------------------------------------------------------------------------------------
    /// See the header comment for the callback contract. Returns a handle for unsubscribe().
    subscription subscribe(event_callback callback);
    /// After this returns, `id`'s callback is not started again (one already running may finish).
    void unsubscribe(subscription id);
    /// Moves up to `max` queued events, oldest first, to the end of `out`; returns how many.
    std::size_t poll(std::vector<event>& out, std::size_t max = static_cast<std::size_t>(-1));
    /// Replaces the wake-up function; an empty one turns it off. See the header comment for its contract.
    void set_notify(std::function<void()> notify);
    /// Events dropped from the poll queue because it was full.
    std::uint64_t events_dropped() const noexcept;

private:
    struct impl;
    agent(std::unique_ptr<runtime> owned, std::shared_ptr<impl> p) noexcept;
    void release() noexcept;
    // The runtime, when the agent owns one, is destroyed after the impl it runs.
    std::unique_ptr<runtime> runtime_;
    std::shared_ptr<impl> impl_;
};

} // namespace swarm::inline v0::membership
