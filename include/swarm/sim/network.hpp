// The deterministic network simulator: unchanged protocol code on thousands of nodes in one thread.
//
// Everything happens in virtual time, driven by one event queue, and every random choice (link latency, loss,
// each node's transport().random()) comes from one 64-bit seed, so a run replays bit for bit. Each delivered
// or dropped datagram and stream frame feeds a 64-bit trace hash: two runs of the same scenario with the same
// seed end with the same hash.
//
// Threading: a network and everything it runs belong to the thread that calls it. Protocol handlers, user
// callbacks (at(), after()) and the observer all run inside step()/run_*(). The observer must not change the
// network; protocols reach it only through their transport; user callbacks may do anything.
#pragma once

#include <swarm/core/clock.hpp>
#include <swarm/core/error.hpp>
#include <swarm/core/logger.hpp>
#include <swarm/net/endpoint.hpp>
#include <swarm/net/protocol.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::inline v0::sim {

using node_id = std::uint32_t;
using group_id = std::uint32_t;
/// Returned by every partition call; never reused within one network.
using partition_id = std::uint64_t;

/// A node's persistent storage: survives crash and restart, lost only with the network.
using disk = std::map<std::string, std::vector<std::byte>, std::less<>>;

/// How the latency of each datagram spreads around `link_config::latency`. Every shape has mean `latency`
/// (before clamping at zero) and `jitter` sets its spread.
enum class latency_distribution {
    constant,      // exactly `latency`
    uniform,       // uniform in [latency - jitter, latency + jitter]
    normal,        // normal with standard deviation `jitter`
    pareto,        // Pareto (shape 3) shifted and scaled to standard deviation `jitter`: a long right tail
    pareto_normal, // netem's mix: 3/4 of the Pareto deviate plus 1/4 of the normal one
};

/// Names in configuration files (found by swarm::config through argument-dependent lookup).
constexpr auto describe_enum(latency_distribution) {
    struct entry {
        latency_distribution value;
        std::string_view name;
    };
    return std::array<entry, 5>{{
        {latency_distribution::constant, "constant"},
        {latency_distribution::uniform, "uniform"},
        {latency_distribution::normal, "normal"},
        {latency_distribution::pareto, "pareto"},
        {latency_distribution::pareto_normal, "pareto_normal"},
    }};
}

/// Two-state Markov loss (bursts). The state moves once per datagram, then the datagram is lost with the
/// loss probability of the state it is in. p_good_to_bad == 0 turns the model off.
struct gilbert_elliott {
    double p_good_to_bad = 0;
    double p_bad_to_good = 1;
    double loss_in_good = 0;
    double loss_in_bad = 1;

    /// The long-run loss rate the model converges to.
    double expected_loss() const noexcept;
    detailed_result<void> validate() const;
    friend bool operator==(const gilbert_elliott&, const gilbert_elliott&) = default;

    template <class F>
    void describe(F& f) {
        f("p_good_to_bad", p_good_to_bad);
        f("p_bad_to_good", p_bad_to_good);
        f("loss_in_good", loss_in_good);
        f("loss_in_bad", loss_in_bad);
    }
};

/// One direction of a path. Stateful parts (burst state, jitter correlation, bandwidth queue) live per
/// sending node for the default and group links, per directed pair for pair links.
struct link_config {
    duration latency = std::chrono::milliseconds(1);
    duration jitter{0};
    latency_distribution distribution = latency_distribution::constant;
    /// In [0, 1): how much each jitter deviate follows the previous one (AR(1), so the mean and the spread
    /// of the distribution are kept, unlike netem's).
    double correlation = 0;
    /// Independent loss probability, in [0, 1].
    double loss = 0;
    gilbert_elliott burst_loss;
    /// Probability that a datagram arrives twice (the copy with its own latency).
    double duplicate = 0;
    /// Probability that a datagram skips the latency and arrives at once, overtaking earlier ones (netem).
    double reorder = 0;
    /// 0 means unlimited. Datagrams and stream frames serialise through one FIFO at this rate.
    std::uint64_t bandwidth_bits_per_second = 0;
    /// Bytes the bandwidth FIFO holds; a datagram that would overflow it is dropped (tail drop).
    std::size_t queue_limit_bytes = 256 * 1024;
    /// Largest datagram payload; larger ones are dropped.
    std::size_t mtu = 1472;
    /// A firewall on this path that drops datagrams (outcome::blocked) while streams still pass: UDP blocked,
    /// TCP working.
    bool block_datagrams = false;
    /// The opposite: connects on this path time out and frames stall (open streams break after
    /// stream_config::break_timeout), while datagrams pass.
    bool block_streams = false;

    detailed_result<void> validate() const;

    template <class F>
    void describe(F& f) {
        f("latency", latency);
        f("jitter", jitter);
        f("distribution", distribution);
        f("correlation", correlation);
        f("loss", loss);
        f("burst_loss", burst_loss);
        f("duplicate", duplicate);
        f("reorder", reorder);
        f("bandwidth_bits_per_second", bandwidth_bits_per_second);
        f("queue_limit_bytes", queue_limit_bytes);
        f("mtu", mtu);
        f("block_datagrams", block_datagrams);
        f("block_streams", block_streams);
    }
};

/// The TCP-like streams. They are reliable and ordered: duplication and reordering do not apply to them, and
/// link loss (independent and burst) costs time rather than data, as TCP's retransmissions do: a lost SYN
/// or SYN-ACK is retried after syn_retry, 2 * syn_retry, ... until connect_timeout; a lost frame arrives
/// retransmit_timeout, then twice that, ... later, and a frame still not through after break_timeout breaks
/// the stream (errc::timed_out). Acknowledgements are not subject to loss (a later one covers a lost one).
/// Latency (kept in order), bandwidth, partitions and link_config::block_streams apply. A side that calls
/// close() gets no on_stream_closed for it; its peer sees an orderly close once every queued frame has arrived.
struct stream_config {
    /// A connect with no answer (crashed or unreachable peer) fails with errc::timed_out after this.
    duration connect_timeout = std::chrono::seconds(3);
    /// An open stream whose peer crashed fails with errc::connection_reset after this; one cut by a partition
    /// that lasts this long fails with errc::timed_out.
    duration break_timeout = std::chrono::seconds(5);
    /// The first retry of a lost SYN (Linux: 1 s), doubling at each further loss.
    duration syn_retry = std::chrono::seconds(1);
    /// The first retransmission of a lost frame (Linux's minimum RTO: 200 ms), doubling at each further loss.
    duration retransmit_timeout = std::chrono::milliseconds(200);
    /// Bytes in flight (sent, not yet acknowledged) per direction, as a TCP window.
    std::size_t window_bytes = 256 * 1024;
    /// queued_bytes() above `high_watermark` arms on_stream_writable, fired when it falls to `low_watermark`.
    std::size_t high_watermark = 1024 * 1024;
    std::size_t low_watermark = 256 * 1024;
    std::size_t max_frame_size = 16 * 1024 * 1024;

    detailed_result<void> validate() const;

    template <class F>
    void describe(F& f) {
        f("connect_timeout", connect_timeout);
        f("break_timeout", break_timeout);
        f("syn_retry", syn_retry);
        f("retransmit_timeout", retransmit_timeout);
        f("window_bytes", window_bytes);
        f("high_watermark", high_watermark);
        f("low_watermark", low_watermark);
        f("max_frame_size", max_frame_size);
    }
};

struct network_config {
    std::uint64_t seed = 1;
    link_config default_link;
    stream_config streams;
    /// Datagrams a paused node holds for delivery on resume; more are dropped.
    std::size_t paused_queue_limit = 4096;
    /// Handed to every protocol as transport().log(). Not part of the JSON shape.
    logger log;

    detailed_result<void> validate() const;

    template <class F>
    void describe(F& f) {
        f("seed", seed);
        f("default_link", default_link);
        f("streams", streams);
        f("paused_queue_limit", paused_queue_limit);
    }
};

/// What happened to one datagram.
enum class outcome : std::uint8_t {
    delivered,
    lost,            // independent or burst loss
    partitioned,     // a partition separates sender and receiver
    too_large,       // over the link's MTU
    queue_full,      // the bandwidth queue was full (tail drop)
    crashed,         // the receiver is down
    paused_overflow, // the receiver is paused and its holding queue is full
    no_listener,     // nothing bound on the destination port
    unknown_address, // no node has that address
    blocked,         // the link blocks datagrams (link_config::block_datagrams)
};
inline constexpr std::size_t outcome_count = 10;
std::string_view to_string(outcome) noexcept;

/// One delivered or dropped datagram, as the observer sees it.
struct datagram_record {
    time_point sent;
    /// When it was delivered, or dropped.
    time_point at;
    node_id from = 0;
    /// The receiving node, or no_node for an unknown address.
    node_id to = 0;
    std::size_t size = 0;
    outcome result = outcome::delivered;
};
inline constexpr node_id no_node = 0xffffffffu;

struct counters {
    std::uint64_t sent = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t delivered = 0;
    std::uint64_t bytes_delivered = 0;
    std::uint64_t duplicated = 0;
    /// Indexed by outcome; the `delivered` slot stays zero.
    std::array<std::uint64_t, outcome_count> dropped{};
    std::uint64_t stream_frames = 0;
    std::uint64_t stream_bytes = 0;
    std::uint64_t timers_fired = 0;
    std::uint64_t events = 0;

    std::uint64_t dropped_by(outcome o) const noexcept { return dropped[static_cast<std::size_t>(o)]; }
    std::uint64_t dropped_total() const noexcept;
    friend bool operator==(const counters&, const counters&) = default;
};

enum class node_state : std::uint8_t { running, paused, crashed };

/// One timed action of a fault schedule. Actions with a `length` undo themselves after it: a crash
/// restarts, a pause resumes, a partition heals, a loss burst ends.
enum class fault_kind {
    crash,            // `node`
    restart,          // `node`
    pause,            // `node`
    resume,           // `node`
    isolate,          // cut `node` off from everyone, both ways
    partition_halves, // nodes [0, n/2) against the rest
    heal_all,
    loss_burst,       // the default link gets `burst` as its burst loss model
};
std::string_view to_string(fault_kind) noexcept;

struct fault {
    time_point at;
    fault_kind kind = fault_kind::crash;
    node_id node = 0;
    duration length{0};
    gilbert_elliott burst;
    friend bool operator==(const fault&, const fault&) = default;
};

struct fault_schedule {
    std::vector<fault> faults;
};

/// Parameters of a random fault schedule: each kind is a Poisson process over [begin, end).
struct random_faults {
    time_point begin;
    time_point end = time_point{std::chrono::hours(1)};
    double crashes_per_hour = 0;
    duration downtime = std::chrono::seconds(30);
    double pauses_per_hour = 0;
    duration pause_length = std::chrono::seconds(5);
    double partitions_per_hour = 0;
    duration partition_length = std::chrono::seconds(60);
    double loss_bursts_per_hour = 0;
    duration loss_burst_length = std::chrono::seconds(10);
    gilbert_elliott burst{0.05, 0.3, 0.0, 0.8};

    detailed_result<void> validate() const;
};

/// Draws a schedule for `node_count` nodes from `seed` alone: the same inputs give the same schedule.
detailed_result<fault_schedule> make_random_faults(const random_faults& config, std::size_t node_count,
                                                   std::uint64_t seed);

class network {
public:
    /// Fails with config_invalid_value and a sentence naming the field when the configuration is invalid.
    static detailed_result<network> create(const network_config& config);

    network(network&&) noexcept;
    network& operator=(network&&) noexcept;
    ~network();

    // Nodes.
    /// Adds a running node with the next free address 127.0.0.1, 127.0.0.2, ...
    node_id add_node();
    /// Adds a running node at the address of `address` (its port is ignored); fails if the address is taken
    /// or unspecified.
    detailed_result<node_id> add_node(const net::endpoint& address);
    /// Binds a protocol on `port`: the factory runs now (and again on each restart); on_start runs as an event
    /// at the current virtual time. Fails for an unknown node, port 0, a port in use or a null protocol.
    detailed_result<void> add_protocol(node_id node, std::uint16_t port, net::protocol_factory factory);
    std::size_t node_count() const noexcept;
    /// The endpoint of `node` on `port` (the address peers send to).
    net::endpoint endpoint_of(node_id node, std::uint16_t port) const;
    std::optional<node_id> node_at(const net::endpoint& address) const noexcept;
    /// The live protocol bound on `port`, or null (unknown node or port, or the node is down).
    net::protocol* protocol_at(node_id node, std::uint16_t port) const noexcept;
    template <class P>
    P* protocol_of(node_id node, std::uint16_t port) const noexcept {
        return dynamic_cast<P*>(protocol_at(node, port));
    }
    /// The node's disk; the reference stays valid for the life of the network.
    sim::disk& disk(node_id node);
    node_state state(node_id node) const;

    /// Destroys the node's protocols and timers; traffic to it is dropped; peers' streams to it break.
    result<void> crash(node_id node);
    /// Rebuilds the protocols from their factories (crashing the node first if it is up); the disk is kept.
    result<void> restart(node_id node);
    /// Stalls the node: its timers and the datagrams and stream events for it wait until resume().
    result<void> pause(node_id node);
    result<void> resume(node_id node);

    // Links: a pair link wins over a group link, which wins over the default link.
    detailed_result<void> set_default_link(const link_config& config);
    detailed_result<void> set_link(node_id from, node_id to, const link_config& config);
    void clear_link(node_id from, node_id to);
    result<void> set_group(node_id node, group_id group);
    detailed_result<void> set_group_link(group_id from, group_id to, const link_config& config);
    const link_config& default_link() const noexcept;

    // Partitions.
    /// Traffic between any two of `groups` is cut both ways; nodes in no group are unaffected.
    detailed_result<partition_id> partition(const std::vector<std::vector<node_id>>& groups);
    /// Traffic from `from` to `to` is cut; the other direction flows.
    detailed_result<partition_id> partition_one_way(std::span<const node_id> from, std::span<const node_id> to);
    /// `node` against everyone else, both ways.
    detailed_result<partition_id> isolate(node_id node);
    /// Nodes [0, n/2) against the rest.
    partition_id split_halves();
    /// Fails with not_found for an unknown or already healed partition.
    result<void> heal(partition_id partition);
    void heal_all();
    void heal_at(partition_id partition, time_point when);
    /// False while some partition cuts traffic from `from` to `to`.
    bool reachable(node_id from, node_id to) const noexcept;

    /// Schedules every action; fails (scheduling nothing) if one names an unknown node or a time in the past.
    detailed_result<void> apply(const fault_schedule& schedule);

    // Time.
    time_point now() const noexcept;
    /// Runs `callback` at `when` (at now() if `when` is past).
    void at(time_point when, std::function<void()> callback);
    void after(duration delay, std::function<void()> callback);
    /// Runs the next event; false when none is left.
    bool step();
    void run_for(duration span);
    /// Runs every event due at or before `until`, then sets the clock to `until`.
    void run_until(time_point until);
    /// Runs until `done()` holds (checked after each event) or `deadline`; returns done().
    bool run_until(const std::function<bool()>& done, time_point deadline);
    /// Events waiting in the queue (datagrams and frames in flight, timers, callbacks). At most 2^24 may wait
    /// at once; more is a contract violation (the process stops), far beyond any scenario's working set.
    std::size_t pending_events() const noexcept;

    // Observation.
    std::uint64_t trace_hash() const noexcept;
    const counters& stats() const noexcept;
    /// Called for every delivered and dropped datagram; null turns it off.
    void set_observer(std::function<void(const datagram_record&)> observer);

    /// The implementation; opaque, named here only so the simulator's own helpers can reach it.
    struct impl;

private:
    explicit network(std::unique_ptr<impl> state);
    void run_fault(const fault& f);
    std::unique_ptr<impl> impl_;
};

} // namespace swarm::inline v0::sim
