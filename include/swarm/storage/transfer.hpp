// Shard transfer between nodes: a sans-IO protocol (`shard_transfer`) that serves a node's shard_store to its
// peers over streams and carries this node's requests to theirs, and `remote_shard_store`, a shard_store whose
// calls travel through it.
//
// Wire (one stream per client and server pair; every frame starts with a kind byte):
//   'H' "SWST" u8 version, 16-byte nonce     hello, in clear, sent by each side as the stream opens
//   'R' "SWST" u8 version, u16 errc          reject, in clear: why the server is closing the stream
//   'S' sealed(peer's nonce, message)        everything else, sealed with the cluster keyring (seal.hpp)
// Each side seals with a sealer of its own for the stream (random sender id, sequences from 0) and expects
// the peer's sequences to count up by one, and every sealed plaintext starts with the receiver's nonce. So a
// frame recorded on one stream opens on no other, and a dropped, repeated or reordered frame closes the
// stream. A request is `u8 1, u64 id, u8 op, body`; its reply `u8 2, u64 id, u8 op, u16 status, body`.
//
// Flow control: the client keeps per peer the bytes of request payloads and expected reply payloads that are
// on the wire, and sends the next queued request only while that stays within max_inflight_bytes (a single
// larger request goes alone), so the server's reply queue per stream stays within that window too; a client
// whose replies pile up beyond max_server_queue_bytes ignores the window and is cut off. Every request has a
// deadline (request_timeout); a peer that could not be reached is failed fast for peer_down_backoff.
// The server calls its shard_store on the strand: a slow disk delays that node's other streams.
//
// Threading: shard_transfer is a protocol, so it is called on its node's strand only. remote_shard_store
// blocks its caller until the reply arrives (puts are pipelined, see below); a transfer_channel carries calls
// onto the strand: over the real driver it posts and waits on a condition variable, under the simulator it
// runs the simulation until the reply (virtual time, so a timeout costs nothing real). This is the async seam:
// the object store stays synchronous, and only the channel knows how to wait. Never call a remote_shard_store
// on the strand it uses.
#pragma once

#include <swarm/core/clock.hpp>
#include <swarm/core/error.hpp>
#include <swarm/core/seal.hpp>
#include <swarm/net/endpoint.hpp>
#include <swarm/net/protocol.hpp>
#include <swarm/storage/shard_store.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace swarm::inline v0::net {
class socket_driver;
}
namespace swarm::inline v0::sim {
class network;
}

namespace swarm::inline v0::storage {

struct transfer_config {
    /// Bound into every sealed frame: nodes of another cluster cannot talk to this one.
    std::string cluster_label = "swarm";
    /// Per peer, client side: request and expected reply payload bytes on the wire at once.
    std::size_t max_inflight_bytes = 8 * 1024 * 1024;
    /// Per peer, client side: requests waiting for the window; more fail at once with errc::too_large.
    std::size_t max_queued_requests = 4096;
    /// Per inbound stream, server side: reply bytes queued and not yet sent. A client that keeps to its
    /// window never gets near it; one that passes it ignores flow control and is cut off (errc::too_large).
    /// At least max_inflight_bytes + max_shard_size.
    std::size_t max_server_queue_bytes = 32 * 1024 * 1024;
    /// Largest shard carried; the driver's max_frame_size must exceed it by about 100 bytes.
    std::size_t max_shard_size = 15 * 1024 * 1024;
    /// Shards per list() reply; remote_shard_store pages through longer lists.
    std::uint32_t list_page = 4096;
    duration request_timeout = std::chrono::seconds(10);
    /// After a peer refused or timed out a connection, its requests fail at once for this long.
    duration peer_down_backoff = std::chrono::seconds(1);
    /// The cluster keys: the primary seals, any opens. Not part of the JSON shape.
    seal::keyring keys;

    detailed_result<void> validate() const;

    template <class F>
    void describe(F& f) {
        f("cluster_label", cluster_label);
        f("max_inflight_bytes", max_inflight_bytes);
        f("max_queued_requests", max_queued_requests);
        f("max_server_queue_bytes", max_server_queue_bytes);
        f("max_shard_size", max_shard_size);
        f("list_page", list_page);
        f("request_timeout", request_timeout);
        f("peer_down_backoff", peer_down_backoff);
    }
};

enum class transfer_op : std::uint8_t { put = 1, get = 2, remove = 3, contains = 4, list = 5, sync = 6 };

struct transfer_request {
    transfer_op op = transfer_op::get;
    /// put, get, remove, contains; list: the shard to start after, when `after` is set.
    shard_id shard{};
    bool after = false;
    /// get: the stored length expected; list: the most shards to return.
    std::uint32_t length = 0;
    /// put: the shard's bytes.
    std::vector<std::byte> payload{};
};

struct transfer_reply {
    /// Empty on success; the server's shard_store error, or why the request never got an answer.
    boost::system::error_code status;
    std::vector<std::byte> payload; // get
    bool present = false;           // contains
    std::vector<shard_id> shards;   // list
    bool more = false;              // list: ask again after the last one
};

using transfer_callback = std::function<void(transfer_reply)>;

/// Counters since the protocol started; read them on its strand.
struct transfer_stats {
    std::uint64_t requests_sent = 0;
    std::uint64_t replies_received = 0;
    std::uint64_t requests_timed_out = 0;
    std::uint64_t requests_served = 0;
    std::uint64_t bytes_sent = 0;     // sealed frame bytes
    std::uint64_t bytes_received = 0;
    /// Frames that failed authentication, decoding or ordering; each closed its stream.
    std::uint64_t frames_refused = 0;
};

/// Serves `local` (when not null) and sends this node's requests. `local` must outlive the protocol.
class shard_transfer final : public net::protocol {
public:
    /// `config` must be valid (see validate()); an invalid one is a contract violation.
    shard_transfer(net::transport& transport, transfer_config config, shard_store* local);
    ~shard_transfer() override;
    shard_transfer(const shard_transfer&) = delete;
    shard_transfer& operator=(const shard_transfer&) = delete;

    /// Sends `request` to the node at `peer` and calls `done` once, on this strand, with its reply or with
    /// why there is none: timed_out, connection_refused, unreachable, too_large (queue full or oversize),
    /// authentication_failed or wrong_cluster (the peer refused our frames, or we refused theirs),
    /// shut_down (this protocol is stopping).
    void call(const net::endpoint& peer, transfer_request request, transfer_callback done);

    const transfer_stats& stats() const noexcept;

    void on_datagram(const net::endpoint&, std::span<const std::byte>) override {}
    void on_timer(net::timer_id id) override;
    void on_stream_open(net::stream_id stream, const net::endpoint& peer, bool inbound) override;
    void on_stream_frame(net::stream_id stream, std::span<const std::byte> frame) override;
    void on_stream_closed(net::stream_id stream, boost::system::error_code reason) override;
    void on_stop() override;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// A factory for net::socket_driver::create or sim::network::add_protocol. `local` may be null (client only).
net::protocol_factory make_shard_transfer(transfer_config config, shard_store* local);

/// Carries requests onto the strand of the node running shard_transfer, and lets the caller wait for replies.
class transfer_channel {
public:
    virtual ~transfer_channel() = default;
    /// Starts the request. `done` runs once: on the driver's strand (socket) or inside the simulation (sim),
    /// always with this channel's lock held, so the state it touches is safe to read in wait()'s predicate.
    virtual void start(const net::endpoint& peer, transfer_request request, transfer_callback done) = 0;
    /// Blocks until `ready()` holds (checked with the lock held) or the channel's wait limit passes; returns
    /// ready(). Over sockets it sleeps on a condition; under the simulator it runs the simulation.
    virtual bool wait(const std::function<bool()>& ready) = 0;
    /// Runs `f` with the lock that callbacks run under.
    virtual void locked(const std::function<void()>& f) = 0;
    /// False for the simulator's channel, which only the thread that runs the simulation may use.
    virtual bool callable_from_any_thread() const noexcept { return true; }
    /// start() then wait() for the reply; errc::timed_out when the wait limit passes first.
    transfer_reply call(const net::endpoint& peer, transfer_request request);
};

/// Over the real driver; `driver` runs shard_transfer and must outlive the channel. A wait gives up after
/// `wait_limit` (set it above the protocol's request_timeout, which fails the request itself first).
std::shared_ptr<transfer_channel> make_socket_channel(net::socket_driver& driver, duration wait_limit);
/// Under the simulator: waits by running `network`; `node` runs shard_transfer on `port`. Call it from the
/// thread that runs the simulation and never from inside a simulation event.
std::shared_ptr<transfer_channel> make_sim_channel(sim::network& network, std::uint32_t node, std::uint16_t port,
                                                   duration wait_limit);

/// A shard_store on the node at `peer`. Errors are the server's (not_found, truncated, malformed, io_error)
/// or the transport's (timed_out, connection_refused, unreachable, authentication_failed, ...).
/// put() is pipelined: it returns once the shard is handed to the protocol (waiting while more than
/// `max_pending_put_bytes` are unanswered), and a put that then fails makes the next sync() fail with its
/// error, as the shard_store contract allows (durable once sync() returns). The stream is ordered, so a get
/// after a put sees it.
std::unique_ptr<shard_store> make_remote_shard_store(std::shared_ptr<transfer_channel> channel, net::endpoint peer,
                                                    std::size_t max_pending_put_bytes = 8 * 1024 * 1024);

namespace transfer_wire {
/// The message codec under the seal, exposed for the fuzzer and tests. Decoders accept only the exact
/// encoding: errc::truncated, malformed or too_large otherwise, never reading past the input.
struct request_message {
    std::uint64_t id = 0;
    transfer_request request;
};
struct reply_message {
    std::uint64_t id = 0;
    transfer_op op = transfer_op::get;
    transfer_reply reply;
};
void encode(const request_message& m, std::vector<std::byte>& out);
void encode(const reply_message& m, std::vector<std::byte>& out);
result<request_message> decode_request(std::span<const std::byte> bytes, std::size_t max_shard_size);
result<reply_message> decode_reply(std::span<const std::byte> bytes, std::size_t max_shard_size);
} // namespace transfer_wire

} // namespace swarm::inline v0::storage
