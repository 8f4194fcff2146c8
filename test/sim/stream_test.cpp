// The TCP-like streams: ordering, whole frames, refusal, breaks on crash and partition, flow control.
#include "sim/sim_support.hpp"

#include <set>

namespace swarm::sim::test {
namespace {

network_config stream_net() {
    network_config c;
    c.default_link.latency = 5ms;
    c.default_link.jitter = 3ms;
    c.default_link.distribution = latency_distribution::uniform;
    c.streams.connect_timeout = 1s;
    c.streams.break_timeout = 2s;
    return c;
}

std::vector<std::byte> frame_of(std::size_t i) {
    std::vector<std::byte> f(1 + (i * 37) % 3000);
    for (std::size_t k = 0; k < f.size(); ++k) f[k] = static_cast<std::byte>(i + k);
    return f;
}

TEST(sim_stream, frames_arrive_whole_and_in_order_then_close_orderly) {
    network net = make_recorders(2, stream_net());
    net.run_for(1ms);
    auto& a = rec(net, 0);
    auto& b = rec(net, 1);
    net::stream_id s = a.t.connect(net.endpoint_of(1, port));
    for (std::size_t i = 0; i < 200; ++i) a.t.write(s, frame_of(i)); // queued before the connection is up
    net.run_for(100ms);
    a.t.close(s);
    net.run_for(5s);
    ASSERT_EQ(a.opened.size(), 1u);
    EXPECT_FALSE(a.opened[0].inbound);
    ASSERT_EQ(b.opened.size(), 1u);
    EXPECT_TRUE(b.opened[0].inbound);
    EXPECT_EQ(b.peers[b.opened[0].id], net.endpoint_of(0, port));
    const auto& got = b.frames[b.opened[0].id];
    ASSERT_EQ(got.size(), 200u);
    for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], frame_of(i)) << i;
    ASSERT_EQ(b.closed.size(), 1u);
    EXPECT_FALSE(b.closed[0].reason);
    // The closer hears of it too, once its frames are delivered, with no error: the same as the socket driver.
    ASSERT_EQ(a.closed.size(), 1u);
    EXPECT_EQ(a.closed[0].id, s);
    EXPECT_FALSE(a.closed[0].reason);
    EXPECT_EQ(net.stats().stream_frames, 200u);
    EXPECT_EQ(a.t.queued_bytes(s), 0u);
}

TEST(sim_stream, both_directions_and_an_empty_frame) {
    network net = make_recorders(2, stream_net());
    net.run_for(1ms);
    auto& a = rec(net, 0);
    auto& b = rec(net, 1);
    b.open_hook = [](recorder& self, net::stream_id id, bool inbound) {
        if (inbound) self.t.write(id, bytes_of(42));
    };
    net::stream_id s = a.t.connect(net.endpoint_of(1, port));
    a.t.write(s, {});
    net.run_for(1s);
    ASSERT_EQ(a.frames[s].size(), 1u);
    EXPECT_EQ(value_of(a.frames[s][0]), 42u);
    ASSERT_EQ(b.frames.size(), 1u);
    EXPECT_TRUE(b.frames.begin()->second.at(0).empty());
}

TEST(sim_stream, connect_without_listener_is_refused) {
    network net = make_recorders(2, stream_net());
    net.run_for(1ms);
    auto& a = rec(net, 0);
    net::stream_id s = a.t.connect(net.endpoint_of(1, port + 1));
    net.run_for(1s);
    ASSERT_EQ(a.closed.size(), 1u);
    EXPECT_EQ(a.closed[0].id, s);
    EXPECT_EQ(a.closed[0].reason, make_error_code(errc::connection_refused));
    EXPECT_LT(a.closed[0].at, time_point{100ms}); // a round trip, not a timeout
    EXPECT_TRUE(a.opened.empty());
    net::stream_id u = a.t.connect(*net::endpoint::parse("10.9.9.9:1"));
    net.run_for(1ms);
    ASSERT_EQ(a.closed.size(), 2u);
    EXPECT_EQ(a.closed[1].id, u);
    EXPECT_EQ(a.closed[1].reason, make_error_code(errc::unreachable));
}

TEST(sim_stream, connect_to_a_crashed_or_cut_off_peer_times_out) {
    network net = make_recorders(3, stream_net());
    net.run_for(1ms);
    ASSERT_TRUE(net.crash(1));
    auto p = net.isolate(2);
    ASSERT_TRUE(p);
    auto& a = rec(net, 0);
    a.t.connect(net.endpoint_of(1, port));
    a.t.connect(net.endpoint_of(2, port));
    net.run_for(999ms);
    EXPECT_TRUE(a.closed.empty());
    net.run_for(2ms);
    ASSERT_EQ(a.closed.size(), 2u);
    for (const auto& c : a.closed) EXPECT_EQ(c.reason, make_error_code(errc::timed_out));
}

TEST(sim_stream, a_crashed_peer_resets_the_stream_after_the_break_timeout) {
    network net = make_recorders(2, stream_net());
    net.run_for(1ms);
    auto& a = rec(net, 0);
    net::stream_id s = a.t.connect(net.endpoint_of(1, port));
    net.run_for(100ms);
    ASSERT_EQ(a.opened.size(), 1u);
    ASSERT_TRUE(net.crash(1));
    const time_point crashed_at = net.now();
    net.run_for(5s);
    ASSERT_EQ(a.closed.size(), 1u);
    EXPECT_EQ(a.closed[0].id, s);
    EXPECT_EQ(a.closed[0].reason, make_error_code(errc::connection_reset));
    EXPECT_EQ(a.closed[0].at - crashed_at, 2s);
    a.t.write(s, bytes_of(1)); // a write on a broken stream is ignored
    EXPECT_EQ(a.t.queued_bytes(s), 0u);
}

TEST(sim_stream, a_lasting_partition_times_the_stream_out_a_short_one_does_not) {
    network net = make_recorders(3, stream_net());
    net.run_for(1ms);
    auto& a = rec(net, 0);
    net::stream_id to1 = a.t.connect(net.endpoint_of(1, port));
    net::stream_id to2 = a.t.connect(net.endpoint_of(2, port));
    net.run_for(100ms);
    ASSERT_EQ(a.opened.size(), 2u);
    // Node 1 is cut off for good; node 2 for one second, with data queued meanwhile.
    ASSERT_TRUE(net.isolate(1));
    auto brief = net.isolate(2);
    ASSERT_TRUE(brief);
    net.heal_at(*brief, net.now() + 1s);
    a.t.write(to2, bytes_of(5));
    net.run_for(3s);
    ASSERT_EQ(a.closed.size(), 1u);
    EXPECT_EQ(a.closed[0].id, to1);
    EXPECT_EQ(a.closed[0].reason, make_error_code(errc::timed_out));
    ASSERT_EQ(rec(net, 1).closed.size(), 1u);
    EXPECT_EQ(rec(net, 1).closed[0].reason, make_error_code(errc::timed_out));
    auto& c = rec(net, 2);
    ASSERT_EQ(c.frames.size(), 1u);
    EXPECT_EQ(value_of(c.frames.begin()->second.at(0)), 5u);
    EXPECT_GE(c.frames.size(), 1u);
    EXPECT_TRUE(c.closed.empty());
}

TEST(sim_stream, flow_control_signals_writable_below_the_low_watermark) {
    network_config config = stream_net();
    config.default_link.bandwidth_bits_per_second = 80'000'000; // 10 MB/s
    config.streams.high_watermark = 256 * 1024;
    config.streams.low_watermark = 64 * 1024;
    config.streams.window_bytes = 64 * 1024;
    network net = make_recorders(2, config);
    net.run_for(1ms);
    auto& a = rec(net, 0);
    net::stream_id s = a.t.connect(net.endpoint_of(1, port));
    std::size_t written = 0;
    const std::vector<std::byte> chunk(16 * 1024, std::byte{7});
    auto fill = [&](recorder& self, net::stream_id id) {
        while (self.t.queued_bytes(id) <= config.streams.high_watermark && written < 4 * 1024 * 1024) {
            self.t.write(id, chunk);
            written += chunk.size();
        }
    };
    fill(a, s);
    EXPECT_GT(a.t.queued_bytes(s), config.streams.high_watermark);
    a.writable_hook = fill;
    net.run_for(10s);
    EXPECT_GE(a.writable.size(), 5u);
    EXPECT_EQ(written, 4u * 1024 * 1024);
    std::size_t received = 0;
    for (const auto& f : rec(net, 1).frames.begin()->second) received += f.size();
    EXPECT_EQ(received, written);
    // 4 MiB through a 64 KiB window over a ~10 ms round trip: well under the 10 MB/s line rate.
    EXPECT_EQ(a.t.queued_bytes(s), 0u);
}

TEST(sim_stream, frames_pace_at_the_link_bandwidth) {
    network_config config = stream_net();
    config.default_link.jitter = 0ms;
    config.default_link.bandwidth_bits_per_second = 8'000'000; // 1 MB/s
    config.streams.window_bytes = 1024 * 1024;
    network net = make_recorders(2, config);
    net.run_for(1ms);
    auto& a = rec(net, 0);
    net::stream_id s = a.t.connect(net.endpoint_of(1, port));
    net.run_for(100ms);
    const time_point start = net.now();
    const std::vector<std::byte> chunk(10'000);
    for (int i = 0; i < 50; ++i) a.t.write(s, chunk); // 500 KB: half a second on the wire
    time_point last{};
    EXPECT_TRUE(net.run_until([&] {
        auto& b = rec(net, 1);
        if (b.frames.empty() || b.frames.begin()->second.size() < 50) return false;
        last = net.now();
        return true;
    }, start + 5s));
    EXPECT_NEAR(seconds(last - start), 0.5 * (10'040.0 / 10'000.0) + 0.005, 0.01);
}

TEST(sim_stream, oversized_frames_reset_the_stream) {
    network_config config = stream_net();
    config.streams.max_frame_size = 1000;
    network net = make_recorders(2, config);
    net.run_for(1ms);
    auto& a = rec(net, 0);
    EXPECT_EQ(a.t.max_frame_size(), 1000u);
    net::stream_id s = a.t.connect(net.endpoint_of(1, port));
    net.run_for(100ms);
    a.t.write(s, std::vector<std::byte>(1001));
    net.run_for(1s);
    ASSERT_EQ(a.closed.size(), 1u);
    EXPECT_EQ(a.closed[0].reason, make_error_code(errc::message_too_large));
    ASSERT_EQ(rec(net, 1).closed.size(), 1u);
    EXPECT_EQ(rec(net, 1).closed[0].reason, make_error_code(errc::connection_reset));
}

} // namespace
} // namespace swarm::sim::test

namespace swarm::sim::test {
namespace {

TEST(sim_stream, many_short_streams_one_after_another) {
    network net = make_recorders(3, stream_net());
    net.run_for(1ms);
    auto& a = rec(net, 0);
    std::set<net::stream_id> ids;
    for (std::uint64_t i = 0; i < 300; ++i) {
        // Alternate an orderly stream with one refused and one whose peer crashes, so records are reused
        // while stale events for earlier streams are still in flight.
        net::stream_id s = a.t.connect(net.endpoint_of(1, port));
        EXPECT_TRUE(ids.insert(s).second);
        a.t.write(s, bytes_of(i));
        net.run_for(20ms);
        a.t.close(s);
        net::stream_id refused = a.t.connect(net.endpoint_of(2, port + 1));
        EXPECT_TRUE(ids.insert(refused).second);
        net.run_for(30ms);
    }
    auto& b = rec(net, 1);
    ASSERT_EQ(b.frames.size(), 300u);
    std::uint64_t expected = 0;
    for (const auto& [id, frames] : b.frames) {
        ASSERT_EQ(frames.size(), 1u);
        EXPECT_EQ(value_of(frames[0]), expected++);
    }
    EXPECT_EQ(b.closed.size(), 300u);
    EXPECT_EQ(a.closed.size(), 600u); // the refused ones, and the ones it closed itself
    for (const auto& c : b.closed) EXPECT_FALSE(c.reason);
}

} // namespace
} // namespace swarm::sim::test

namespace swarm::sim::test {
namespace {

std::uint64_t stream_trace(std::uint64_t seed) {
    network_config config = stream_net();
    config.seed = seed;
    network net = make_recorders(4, config);
    net.run_for(1ms);
    for (node_id i = 0; i < 4; ++i) {
        auto& r = rec(net, i);
        net::stream_id s = r.t.connect(net.endpoint_of((i + 1) % 4, port));
        for (std::size_t k = 0; k < 20; ++k) r.t.write(s, frame_of(k + i));
    }
    net.at(time_point{30ms}, [&net] { (void)net.crash(2); });
    net.run_for(5s);
    return net.trace_hash();
}

TEST(sim_stream, stream_traffic_is_part_of_the_reproducible_trace) {
    EXPECT_EQ(stream_trace(3), stream_trace(3));
    EXPECT_NE(stream_trace(3), stream_trace(4));
}

} // namespace
} // namespace swarm::sim::test
