// The real driver: runs one protocol on a UDP socket and a TCP listener bound to the same port.
//
// Threading: the protocol, its transport and every handler live on one strand of the executor given at
// creation. The public members of socket_driver may be called from any thread.
//
// Streams are TCP connections carrying frames, each prefixed with its length as 4 big-endian bytes.
// Semantics beyond protocol.hpp:
// - close() flushes, half-closes and then reports on_stream_closed to the closing side too: with no error
//   when the flush completed, with the error that stopped it otherwise.
// - A frame over max_frame_size, read or written, closes its stream with errc::message_too_large; a
//   received length prefix is checked before anything is allocated for the frame.
// - connect() beyond max_streams completes with on_stream_closed(errc::too_large); connect() after stop()
//   with errc::shut_down. Inbound connections beyond max_streams are reset and counted as refused.
// - queued_bytes() counts frame payloads not yet written to the socket; length prefixes are not counted.
// - After on_stop the protocol receives no further events; post()ed functions still run until the
//   driver has closed its sockets, then are dropped.
// - An exception escaping a protocol handler is caught and logged; it never reaches the executor.
#pragma once

#include <swarm/core/clock.hpp>
#include <swarm/core/error.hpp>
#include <swarm/core/logger.hpp>
#include <swarm/net/endpoint.hpp>
#include <swarm/net/protocol.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

namespace swarm::inline v0::net {

struct driver_config {
    /// UDP and TCP bind here; port 0 picks one free for both. "[::]" binds dual-stack.
    endpoint bind = endpoint::v4(0, 0);
    /// What local_endpoint() reports when the node is reached through another address (NAT, container);
    /// port 0 here means the bound port.
    std::optional<endpoint> advertise;
    /// Larger datagrams, sent or received, are dropped and counted. At most 65,507 bound to IPv4,
    /// 65,527 bound to IPv6.
    std::size_t max_datagram_size = 65'507;
    /// At most 2^32 - 1, the largest length the 4-byte prefix can carry.
    std::size_t max_frame_size = 16 * 1024 * 1024;
    duration connect_timeout = std::chrono::seconds(5);
    /// A stream with no byte read or written for this long is closed with errc::timed_out; none by default.
    std::optional<duration> idle_timeout;
    /// on_stream_writable fires when a stream's queue, having reached high_watermark, falls to low_watermark.
    std::size_t high_watermark = 4 * 1024 * 1024;
    std::size_t low_watermark = 1024 * 1024;
    /// Concurrent streams, inbound and outbound together.
    std::size_t max_streams = 1024;
    /// Datagrams waiting for a full socket buffer to drain; more are dropped and counted.
    std::size_t max_queued_datagrams = 1024;
    /// How long stop() lets queued writes drain before closing everything hard.
    duration stop_grace = std::chrono::seconds(2);
    /// Not part of the JSON shape.
    logger log;

    detailed_result<void> validate() const;

    template <class F>
    void describe(F& f) {
        f("bind", bind);
        f("advertise", advertise);
        f("max_datagram_size", max_datagram_size);
        f("max_frame_size", max_frame_size);
        f("connect_timeout", connect_timeout);
        f("idle_timeout", idle_timeout);
        f("high_watermark", high_watermark);
        f("low_watermark", low_watermark);
        f("max_streams", max_streams);
        f("max_queued_datagrams", max_queued_datagrams);
        f("stop_grace", stop_grace);
    }
};

/// Counters since creation; a snapshot, readable from any thread.
struct driver_stats {
    std::uint64_t datagrams_sent = 0;
    std::uint64_t datagram_bytes_sent = 0;
    std::uint64_t datagrams_received = 0;
    std::uint64_t datagram_bytes_received = 0;
    /// Sent or received over max_datagram_size.
    std::uint64_t datagrams_dropped_oversize = 0;
    /// The socket refused them, or the address family cannot be reached from the bound socket.
    std::uint64_t datagrams_dropped_send_error = 0;
    /// The send queue was full (max_queued_datagrams).
    std::uint64_t datagrams_dropped_queue_full = 0;
    /// Outbound streams connected.
    std::uint64_t streams_opened = 0;
    /// Inbound streams accepted.
    std::uint64_t streams_accepted = 0;
    /// Inbound connections turned away (max_streams or stopping).
    std::uint64_t streams_refused = 0;
    /// Streams that ended with an error: reset, timed out, oversize frame, refused connect.
    std::uint64_t streams_reset = 0;
    std::uint64_t frames_sent = 0;
    std::uint64_t frames_received = 0;
    std::uint64_t stream_bytes_sent = 0;
    std::uint64_t stream_bytes_received = 0;
};

/// Owns one node's sockets and protocol. Movable; a moved-from driver is empty and its members do nothing.
class socket_driver {
public:
    /// Validates `config`, binds, then constructs the protocol on the driver's strand and calls on_start.
    /// Errors: the config's own, errc::invalid_argument for an empty factory, the system's bind error
    /// (address in use, address not available) with the address in the message.
    /// A factory that throws or returns nullptr leaves a driver that is already stopped (and logs why).
    static detailed_result<socket_driver> create(boost::asio::any_io_executor executor, driver_config config,
                                                 protocol_factory factory);

    socket_driver(socket_driver&&) noexcept;
    /// Stops the driver this one held first, as the destructor does.
    socket_driver& operator=(socket_driver&&) noexcept;
    socket_driver(const socket_driver&) = delete;
    socket_driver& operator=(const socket_driver&) = delete;
    /// Stops and waits as stop_and_wait() does when called from outside the strand, so it is bounded;
    /// called on the driver's own strand, it starts the stop and returns at once.
    ~socket_driver();

    /// The advertise address when configured, else the bound address with its actual port.
    endpoint local_endpoint() const noexcept;
    /// Where the sockets are bound, with the port picked for port 0.
    endpoint bound_endpoint() const noexcept;
    driver_stats stats() const noexcept;

    /// Runs `fn` on the strand with the protocol: how a component's public API reaches it. Dropped once
    /// the driver has stopped.
    void post(std::function<void(protocol&)> fn);

    /// Asynchronous: calls on_stop, drains queued writes for at most stop_grace, closes everything, destroys
    /// the protocol and then calls `done` on the strand. Later calls only add their `done`.
    void stop(std::function<void()> done = {});
    /// stop() and wait for it for at most stop_grace plus two seconds; true when it completed. From the
    /// driver's own strand it cannot wait: it starts the stop and returns false.
    bool stop_and_wait();
    /// True once the stop has completed.
    bool stopped() const noexcept;

private:
    class impl;
    explicit socket_driver(std::shared_ptr<impl> p) noexcept;
    void release() noexcept;
    std::shared_ptr<impl> impl_;
};

} // namespace swarm::inline v0::net
