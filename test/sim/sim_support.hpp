// Shared helpers for the simulator tests: a protocol that records everything it sees.
#pragma once

#include <swarm/sim/network.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <vector>

namespace swarm::sim::test {

using namespace std::chrono_literals;

inline constexpr std::uint16_t port = 4000;

inline std::vector<std::byte> bytes_of(std::uint64_t value, std::size_t size = 8) {
    std::vector<std::byte> out(std::max<std::size_t>(size, 8));
    std::memcpy(out.data(), &value, 8);
    return out;
}
inline std::uint64_t value_of(std::span<const std::byte> b) {
    std::uint64_t v = 0;
    std::memcpy(&v, b.data(), std::min<std::size_t>(8, b.size()));
    return v;
}

struct received {
    net::endpoint from;
    std::uint64_t value;
    std::size_t size;
    time_point at;
};

struct stream_closed {
    net::stream_id id;
    boost::system::error_code reason;
    time_point at;
};

/// Records datagrams, timers and stream events; optional hooks let a test react.
class recorder : public net::protocol {
public:
    explicit recorder(net::transport& transport) : t(transport) {}

    void on_start() override {
        ++starts;
        if (start_hook) start_hook(*this);
    }
    void on_datagram(const net::endpoint& from, std::span<const std::byte> payload) override {
        got.push_back({from, value_of(payload), payload.size(), t.now()});
        if (datagram_hook) datagram_hook(*this, from, payload);
    }
    void on_timer(net::timer_id id) override { timers.emplace_back(id, t.now()); }
    void on_stream_open(net::stream_id id, const net::endpoint& peer, bool inbound) override {
        opened.push_back({id, inbound});
        peers[id] = peer;
        if (open_hook) open_hook(*this, id, inbound);
    }
    void on_stream_frame(net::stream_id id, std::span<const std::byte> frame) override {
        frames[id].emplace_back(frame.begin(), frame.end());
    }
    void on_stream_writable(net::stream_id id) override {
        writable.push_back(id);
        if (writable_hook) writable_hook(*this, id);
    }
    void on_stream_closed(net::stream_id id, boost::system::error_code reason) override {
        closed.push_back({id, reason, t.now()});
    }

    void send_value(const net::endpoint& to, std::uint64_t value, std::size_t size = 8) {
        auto b = bytes_of(value, size);
        t.send(to, b);
    }

    net::transport& t;
    int starts = 0;
    std::vector<received> got;
    std::vector<std::pair<net::timer_id, time_point>> timers;
    struct open_event {
        net::stream_id id;
        bool inbound;
    };
    std::vector<open_event> opened;
    std::map<net::stream_id, net::endpoint> peers;
    std::map<net::stream_id, std::vector<std::vector<std::byte>>> frames;
    std::vector<net::stream_id> writable;
    std::vector<stream_closed> closed;
    std::function<void(recorder&)> start_hook;
    std::function<void(recorder&, const net::endpoint&, std::span<const std::byte>)> datagram_hook;
    std::function<void(recorder&, net::stream_id, bool)> open_hook;
    std::function<void(recorder&, net::stream_id)> writable_hook;
};

inline net::protocol_factory recorder_factory() {
    return [](net::transport& t) { return std::make_unique<recorder>(t); };
}

inline network make_network(const network_config& config = {}) {
    auto n = network::create(config);
    EXPECT_TRUE(n) << (n ? "" : n.error().describe());
    return std::move(*n);
}

/// A network of `count` nodes, each with a recorder on `port`.
inline network make_recorders(std::size_t count, const network_config& config = {}) {
    network net = make_network(config);
    for (std::size_t i = 0; i < count; ++i) {
        auto id = net.add_node();
        EXPECT_TRUE(net.add_protocol(id, port, recorder_factory()));
    }
    return net;
}

inline recorder& rec(network& net, node_id id) {
    auto* r = net.protocol_of<recorder>(id, port);
    EXPECT_NE(r, nullptr);
    return *r;
}

inline double seconds(duration d) { return std::chrono::duration<double>(d).count(); }
inline double seconds(time_point t) { return seconds(t.time_since_epoch()); }

} // namespace swarm::sim::test
