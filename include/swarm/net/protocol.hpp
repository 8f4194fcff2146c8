// The seam between protocol code and the drivers that run it.
//
// A protocol is a state machine. A driver (the real Asio driver in net/, the simulator in sim/) feeds it
// datagrams, timer expiries and stream events, and the protocol answers through the transport it was given:
// it sends, sets timers and opens streams, and reads time and randomness from there too. The protocol
// owns no socket and reads no clock, so the same object runs on loopback and in a 10,000-node simulation.
//
// Threading contract, for both drivers: every call into a protocol is serialised (one strand per node),
// and a protocol calls its transport only from inside those calls. Nothing here blocks.
#pragma once

#include <swarm/core/clock.hpp>
#include <swarm/core/error.hpp>
#include <swarm/core/logger.hpp>
#include <swarm/core/random.hpp>
#include <swarm/net/endpoint.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

namespace swarm::inline v0::net {

/// Chosen by the protocol; arming an id that is already armed moves its deadline.
using timer_id = std::uint64_t;
/// Chosen by the driver; never reused during one run of a node.
using stream_id = std::uint64_t;

/// What a protocol may ask of the driver running it.
class transport {
public:
    virtual ~transport() = default;

    /// Monotonic time: real in the Asio driver, virtual under the simulator.
    virtual time_point now() const noexcept = 0;
    /// The address peers should use for this node (the advertise address where it differs from the bind one).
    virtual endpoint local_endpoint() const noexcept = 0;
    /// Seeded from the simulation's seed under the simulator, from the OS otherwise.
    virtual rng& random() noexcept = 0;
    virtual const logger& log() const noexcept = 0;

    /// Largest payload send() will carry; larger ones are dropped and counted, as a real path would.
    virtual std::size_t max_datagram_size() const noexcept = 0;
    /// Best effort: may be lost, duplicated, delayed or reordered.
    virtual void send(const endpoint& to, std::span<const std::byte> payload) = 0;

    /// One-shot timer; fires on_timer(id) at or after `deadline`.
    virtual void set_timer(timer_id id, time_point deadline) = 0;
    virtual void cancel_timer(timer_id id) = 0;

    /// Opens a reliable, ordered stream of frames. Completes with on_stream_open, or on_stream_closed
    /// with errc::connection_refused, errc::timed_out or errc::unreachable.
    virtual stream_id connect(const endpoint& to) = 0;
    /// Queues one frame (at most max_frame_size() bytes); frames arrive whole and in order.
    virtual void write(stream_id stream, std::span<const std::byte> frame) = 0;
    /// Bytes queued and not yet handed to the network, for flow control.
    virtual std::size_t queued_bytes(stream_id stream) const noexcept = 0;
    virtual std::size_t max_frame_size() const noexcept = 0;
    /// Flushes what is queued, then closes; the peer sees on_stream_closed with no error.
    virtual void close(stream_id stream) = 0;
};

/// What a driver feeds a protocol. Every handler has a default so a protocol overrides what it uses.
class protocol {
public:
    virtual ~protocol() = default;

    /// Called once, before any other handler.
    virtual void on_start() {}
    virtual void on_datagram(const endpoint& from, std::span<const std::byte> payload) = 0;
    virtual void on_timer(timer_id) {}
    /// A stream this node opened is connected (inbound == false), or a peer opened one (inbound == true).
    virtual void on_stream_open(stream_id, const endpoint& peer, bool inbound) { (void)peer, (void)inbound; }
    virtual void on_stream_frame(stream_id, std::span<const std::byte> frame) { (void)frame; }
    /// The write queue fell below the driver's low watermark after having passed its high watermark.
    virtual void on_stream_writable(stream_id) {}
    /// The stream is gone. Called exactly once for every stream, including one this protocol closed itself
    /// (once its queued frames are delivered): `reason` is empty for an orderly close by either side, else
    /// why it broke (connection_refused, connection_reset, timed_out, message_too_large, ...).
    virtual void on_stream_closed(stream_id, boost::system::error_code reason) { (void)reason; }
    /// The host asked the node to stop: say goodbye now; the driver drains for a bounded time, then stops.
    virtual void on_stop() {}
};

/// Builds a node's protocol over the transport the driver made for it.
using protocol_factory = std::function<std::unique_ptr<protocol>(transport&)>;

} // namespace swarm::inline v0::net
