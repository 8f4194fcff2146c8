// Streams over lossy and firewalled links: loss costs time (TCP's retries), never data; a link can block
// datagrams while streams pass (UDP firewalled, TCP open), or the reverse.
#include "sim/sim_support.hpp"

namespace swarm::sim::test {
namespace {

network_config lossy_net(double loss) {
    network_config c;
    c.default_link.latency = 1ms;
    c.default_link.loss = loss;
    c.streams.connect_timeout = 10s;
    c.streams.break_timeout = 20s;
    return c;
}

TEST(sim_stream_loss, frames_survive_heavy_loss_in_order_but_late) {
    network net = make_recorders(2, lossy_net(0.5));
    net.run_for(1ms);
    auto& a = rec(net, 0);
    auto& b = rec(net, 1);
    const auto start = net.now();
    net::stream_id s = a.t.connect(net.endpoint_of(1, port));
    for (std::uint64_t i = 0; i < 50; ++i) a.t.write(s, bytes_of(i));
    net.run_for(60s);
    ASSERT_EQ(b.opened.size(), 1u);
    const auto& got = b.frames[b.opened[0].id];
    ASSERT_EQ(got.size(), 50u);
    for (std::uint64_t i = 0; i < got.size(); ++i) EXPECT_EQ(value_of(got[i]), i);
    // Half the transmissions are lost: retransmissions make 50 frames take far longer than 50 round trips.
    EXPECT_GT(seconds(net.now() - start), 1.0);
    EXPECT_GT(net.stats().stream_frames, 0u);
}

TEST(sim_stream_loss, a_connect_over_a_lossy_link_is_sometimes_retried_after_the_syn_timeout) {
    network net = make_recorders(2, lossy_net(0.5));
    net.run_for(1ms);
    auto& a = rec(net, 0);
    auto& b = rec(net, 1);
    int late = 0;
    for (int i = 0; i < 40; ++i) {
        const auto before = net.now();
        const auto settled = a.opened.size() + a.closed.size();
        a.t.connect(net.endpoint_of(1, port));
        ASSERT_TRUE(net.run_until([&] { return a.opened.size() + a.closed.size() > settled; }, net.now() + 15s));
        if (net.now() - before >= 1s) ++late; // the default syn_retry
    }
    // Each try succeeds with probability 1/4 (SYN and SYN-ACK both through): most connects wait >= 1 s.
    EXPECT_GT(late, 20);
    EXPECT_EQ(b.opened.size() + a.closed.size(), 40u);
}

TEST(sim_stream_loss, a_udp_firewall_drops_datagrams_while_streams_pass) {
    network_config c;
    c.default_link.block_datagrams = true;
    network net = make_recorders(2, c);
    net.run_for(1ms);
    auto& a = rec(net, 0);
    auto& b = rec(net, 1);
    a.send_value(net.endpoint_of(1, port), 7);
    net::stream_id s = a.t.connect(net.endpoint_of(1, port));
    a.t.write(s, bytes_of(9));
    net.run_for(1s);
    EXPECT_TRUE(b.got.empty());
    EXPECT_EQ(net.stats().dropped_by(outcome::blocked), 1u);
    ASSERT_EQ(b.opened.size(), 1u);
    ASSERT_EQ(b.frames[b.opened[0].id].size(), 1u);
    EXPECT_EQ(value_of(b.frames[b.opened[0].id][0]), 9u);
}

TEST(sim_stream_loss, a_tcp_firewall_times_connects_out_while_datagrams_pass) {
    network_config c;
    c.default_link.block_streams = true;
    c.streams.connect_timeout = 2s;
    network net = make_recorders(2, c);
    net.run_for(1ms);
    auto& a = rec(net, 0);
    auto& b = rec(net, 1);
    a.send_value(net.endpoint_of(1, port), 7);
    net::stream_id s = a.t.connect(net.endpoint_of(1, port));
    net.run_for(3s);
    ASSERT_EQ(b.got.size(), 1u);
    EXPECT_TRUE(b.opened.empty());
    ASSERT_EQ(a.closed.size(), 1u);
    EXPECT_EQ(a.closed[0].id, s);
    EXPECT_EQ(a.closed[0].reason, make_error_code(errc::timed_out));
}

TEST(sim_stream_loss, retry_timeouts_must_be_positive) {
    network_config c;
    c.streams.syn_retry = 0s;
    auto bad = network::create(c);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().describe().find("syn_retry"), std::string::npos);
    c.streams.syn_retry = 1s;
    c.streams.retransmit_timeout = -1ms;
    bad = network::create(c);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().describe().find("retransmit_timeout"), std::string::npos);
}

} // namespace
} // namespace swarm::sim::test
