// Datagrams through the simulator: addressing, links (latency, loss, duplication, reordering, bandwidth, MTU),
// run control and the counters.
#include "sim/sim_support.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace swarm::sim::test {
namespace {

TEST(sim_config, rejects_invalid_values_with_a_sentence) {
    auto expect_invalid = [](const link_config& c, std::string_view word) {
        auto r = c.validate();
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error(), errc::config_invalid_value);
        EXPECT_NE(r.error().message.find(word), std::string::npos) << r.error().message;
    };
    link_config c;
    c.loss = 1.5;
    expect_invalid(c, "loss");
    c = {};
    c.latency = -1ms;
    expect_invalid(c, "latency");
    c = {};
    c.jitter = -1ms;
    expect_invalid(c, "jitter");
    c = {};
    c.mtu = 0;
    expect_invalid(c, "mtu");
    c = {};
    c.correlation = 1.0;
    expect_invalid(c, "correlation");
    c = {};
    c.duplicate = -0.1;
    expect_invalid(c, "duplicate");
    c = {};
    c.reorder = 2;
    expect_invalid(c, "reorder");
    c = {};
    c.burst_loss = {0.1, 0.0, 0.0, 1.0};
    expect_invalid(c, "p_bad_to_good");
    c = {};
    c.burst_loss.loss_in_bad = 1.2;
    expect_invalid(c, "loss_in_bad");
    c = {};
    c.bandwidth_bits_per_second = 1000;
    c.queue_limit_bytes = 100;
    expect_invalid(c, "queue_limit_bytes");

    network_config n;
    n.streams.low_watermark = n.streams.high_watermark + 1;
    auto created = network::create(n);
    ASSERT_FALSE(created);
    EXPECT_NE(created.error().message.find("low_watermark"), std::string::npos);
    n = {};
    n.default_link.loss = -0.5;
    EXPECT_FALSE(network::create(n));
    n = {};
    n.paused_queue_limit = 0;
    EXPECT_FALSE(network::create(n));

    network net = make_recorders(2);
    link_config bad;
    bad.loss = 7;
    EXPECT_FALSE(net.set_default_link(bad));
    EXPECT_FALSE(net.set_link(0, 1, bad));
    EXPECT_FALSE(net.set_group_link(1, 2, bad));
    EXPECT_EQ(net.set_link(0, 9, {}).error(), errc::not_found);

    random_faults f;
    f.crashes_per_hour = -1;
    EXPECT_FALSE(f.validate());
    f = {};
    f.end = f.begin - 1s;
    EXPECT_FALSE(make_random_faults(f, 10, 1));
}

TEST(sim_nodes, addresses_ports_and_protocols) {
    network net = make_network();
    node_id a = net.add_node();
    node_id b = net.add_node();
    EXPECT_EQ(net.endpoint_of(a, 1).to_string(), "127.0.0.1:1");
    EXPECT_EQ(net.endpoint_of(b, 7946).to_string(), "127.0.0.2:7946");
    auto chosen = net.add_node(*net::endpoint::parse("10.1.2.3:0"));
    ASSERT_TRUE(chosen);
    EXPECT_EQ(net.endpoint_of(*chosen, 5).to_string(), "10.1.2.3:5");
    EXPECT_EQ(net.add_node(*net::endpoint::parse("10.1.2.3:9")).error(), errc::already_exists);
    EXPECT_EQ(net.add_node(net::endpoint{}).error(), errc::invalid_argument);
    auto v6 = net.add_node(*net::endpoint::parse("[fd00::7]:0"));
    ASSERT_TRUE(v6);
    EXPECT_EQ(net.node_at(*net::endpoint::parse("[fd00::7]:123")), *v6);

    EXPECT_EQ(net.add_protocol(a, 0, recorder_factory()).error(), errc::invalid_argument);
    EXPECT_EQ(net.add_protocol(42, 1, recorder_factory()).error(), errc::not_found);
    EXPECT_EQ(net.add_protocol(a, 1, nullptr).error(), errc::invalid_argument);
    EXPECT_EQ(net.add_protocol(a, 1, [](net::transport&) { return std::unique_ptr<net::protocol>(); }).error(),
              errc::invalid_argument);
    // One node, two protocols on two ports, each from its own factory; plus peers elsewhere.
    for (node_id id : {a, b, *chosen, *v6}) {
        ASSERT_TRUE(net.add_protocol(id, 1, recorder_factory()));
        ASSERT_TRUE(net.add_protocol(id, 2, recorder_factory()));
    }
    EXPECT_EQ(net.add_protocol(a, 1, recorder_factory()).error(), errc::already_exists);
    net.run_for(1ms);
    auto& a1 = *net.protocol_of<recorder>(a, 1);
    EXPECT_EQ(a1.starts, 1);
    EXPECT_EQ(a1.t.local_endpoint(), net.endpoint_of(a, 1));
    a1.send_value(net.endpoint_of(b, 2), 22);
    a1.send_value(net.endpoint_of(*chosen, 1), 31);
    a1.send_value(net.endpoint_of(*v6, 2), 62);
    a1.send_value(net.endpoint_of(b, 3), 99);                 // no listener on port 3
    a1.send_value(*net::endpoint::parse("127.9.9.9:1"), 98); // nobody there
    net.run_for(10ms);
    ASSERT_EQ(net.protocol_of<recorder>(b, 2)->got.size(), 1u);
    EXPECT_EQ(net.protocol_of<recorder>(b, 2)->got[0].value, 22u);
    EXPECT_EQ(net.protocol_of<recorder>(b, 2)->got[0].from, net.endpoint_of(a, 1));
    EXPECT_TRUE(net.protocol_of<recorder>(b, 1)->got.empty());
    EXPECT_EQ(net.protocol_of<recorder>(*chosen, 1)->got.at(0).value, 31u);
    EXPECT_EQ(net.protocol_of<recorder>(*v6, 2)->got.at(0).value, 62u);
    EXPECT_EQ(net.protocol_of<recorder>(*v6, 2)->got.at(0).at, time_point{1ms + 1ms});
    EXPECT_EQ(net.stats().dropped_by(outcome::no_listener), 1u);
    EXPECT_EQ(net.stats().dropped_by(outcome::unknown_address), 1u);
    EXPECT_EQ(net.stats().delivered, 3u);
    EXPECT_EQ(net.protocol_of<recorder>(a, 7), nullptr);
}

TEST(sim_links, mtu_drops_oversized_datagrams) {
    network_config config;
    network net = make_recorders(3, config);
    net.run_for(1ms);
    auto& a = rec(net, 0);
    EXPECT_EQ(a.t.max_datagram_size(), 1472u);
    a.send_value(net.endpoint_of(1, port), 1, 1472);
    a.send_value(net.endpoint_of(1, port), 2, 1473);
    link_config small;
    small.mtu = 100;
    ASSERT_TRUE(net.set_link(0, 2, small));
    a.send_value(net.endpoint_of(2, port), 3, 100);
    a.send_value(net.endpoint_of(2, port), 4, 101);
    net.run_for(10ms);
    ASSERT_EQ(rec(net, 1).got.size(), 1u);
    EXPECT_EQ(rec(net, 1).got[0].size, 1472u);
    ASSERT_EQ(rec(net, 2).got.size(), 1u);
    EXPECT_EQ(rec(net, 2).got[0].value, 3u);
    EXPECT_EQ(net.stats().dropped_by(outcome::too_large), 2u);
}

/// Sends `count` datagrams from node 0 to node 1 at time zero, numbered in order.
void blast(network& net, std::size_t count, std::size_t size = 8) {
    auto& a = rec(net, 0);
    for (std::size_t i = 0; i < count; ++i) a.send_value(net.endpoint_of(1, port), i, size);
}

TEST(sim_links, independent_loss_matches_configuration) {
    network_config config;
    config.default_link.loss = 0.1;
    network net = make_recorders(2, config);
    net.run_for(1ms);
    blast(net, 20000);
    net.run_for(1s);
    const double observed = 1.0 - static_cast<double>(rec(net, 1).got.size()) / 20000.0;
    EXPECT_NEAR(observed, 0.1, 0.01);
    EXPECT_EQ(net.stats().dropped_by(outcome::lost) + net.stats().delivered, 20000u);
}

TEST(sim_links, gilbert_elliott_loss_comes_in_bursts_at_the_configured_rate) {
    network_config config;
    config.default_link.burst_loss = {0.05, 0.2, 0.0, 0.8};
    network net = make_recorders(2, config);
    net.run_for(1ms);
    std::vector<bool> lost(40000, true);
    blast(net, lost.size());
    net.run_for(1s);
    for (const auto& r : rec(net, 1).got) lost[r.value] = false;
    const auto losses = static_cast<double>(std::count(lost.begin(), lost.end(), true));
    const double rate = losses / static_cast<double>(lost.size());
    EXPECT_NEAR(rate, config.default_link.burst_loss.expected_loss(), 0.02);
    EXPECT_NEAR(config.default_link.burst_loss.expected_loss(), 0.16, 1e-9);
    // Bursts: a loss follows a loss far more often than the average rate would give.
    double after_loss = 0;
    for (std::size_t i = 1; i < lost.size(); ++i) after_loss += (lost[i] && lost[i - 1]) ? 1 : 0;
    EXPECT_GT(after_loss / losses, 0.5);
}

struct latency_stats {
    double mean, stddev, min, max, p50, p99;
};

latency_stats measure(const link_config& link, std::size_t count) {
    network_config config;
    config.default_link = link;
    network net = make_recorders(2, config);
    std::vector<double> ms(count, -1);
    blast(net, count);
    net.run_for(1min);
    for (const auto& r : rec(net, 1).got) ms[r.value] = seconds(r.at) * 1e3;
    EXPECT_EQ(rec(net, 1).got.size(), count);
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    latency_stats s{};
    s.mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(count);
    double var = 0;
    for (double v : ms) var += (v - s.mean) * (v - s.mean);
    s.stddev = std::sqrt(var / static_cast<double>(count));
    s.min = sorted.front();
    s.max = sorted.back();
    s.p50 = sorted[count / 2];
    s.p99 = sorted[count * 99 / 100];
    return s;
}

link_config shaped(latency_distribution d, double correlation = 0) {
    link_config l;
    l.latency = 10ms;
    l.jitter = 2ms;
    l.distribution = d;
    l.correlation = correlation;
    return l;
}

TEST(sim_latency, constant) {
    auto s = measure(shaped(latency_distribution::constant), 1000);
    EXPECT_DOUBLE_EQ(s.min, 10.0);
    EXPECT_DOUBLE_EQ(s.max, 10.0);
}

TEST(sim_latency, uniform) {
    auto s = measure(shaped(latency_distribution::uniform), 20000);
    EXPECT_NEAR(s.mean, 10.0, 0.05);
    EXPECT_NEAR(s.p50, 10.0, 0.1);
    EXPECT_GE(s.min, 8.0);
    EXPECT_LE(s.max, 12.0);
    EXPECT_NEAR(s.stddev, 2.0 / std::sqrt(3.0), 0.05);
}

TEST(sim_latency, normal) {
    auto s = measure(shaped(latency_distribution::normal), 20000);
    EXPECT_NEAR(s.mean, 10.0, 0.05);
    EXPECT_NEAR(s.p50, 10.0, 0.1);
    EXPECT_NEAR(s.stddev, 2.0, 0.1);
    EXPECT_NEAR(s.p99, 10.0 + 2.326 * 2.0, 0.25);
}

TEST(sim_latency, pareto_has_the_mean_and_a_long_right_tail) {
    auto s = measure(shaped(latency_distribution::pareto), 40000);
    EXPECT_NEAR(s.mean, 10.0, 0.1);
    EXPECT_NEAR(s.stddev, 2.0, 0.4);
    EXPECT_GE(s.min, 10.0 - 2.0 * 0.578);    // bounded on the left
    EXPECT_LT(s.p50, s.mean);                // skewed right
    EXPECT_GT(s.max, 10.0 + 5 * 2.0);        // and a tail a normal would not reach
}

TEST(sim_latency, pareto_normal) {
    auto s = measure(shaped(latency_distribution::pareto_normal), 40000);
    EXPECT_NEAR(s.mean, 10.0, 0.1);
    EXPECT_NEAR(s.stddev, 2.0 * std::sqrt(0.75 * 0.75 + 0.25 * 0.25), 0.35);
    EXPECT_LT(s.p50, s.mean);
}

TEST(sim_latency, correlation_keeps_the_mean_and_links_successive_delays) {
    network_config config;
    config.default_link = shaped(latency_distribution::normal, 0.9);
    network net = make_recorders(2, config);
    const std::size_t count = 20000;
    blast(net, count);
    net.run_for(1min);
    std::vector<double> ms(count);
    for (const auto& r : rec(net, 1).got) ms[r.value] = seconds(r.at) * 1e3;
    const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / count;
    double num = 0, den = 0;
    for (std::size_t i = 0; i < count; ++i) {
        den += (ms[i] - mean) * (ms[i] - mean);
        if (i > 0) num += (ms[i] - mean) * (ms[i - 1] - mean);
    }
    EXPECT_NEAR(mean, 10.0, 0.3);
    EXPECT_NEAR(std::sqrt(den / count), 2.0, 0.3);
    EXPECT_GT(num / den, 0.8);
}

TEST(sim_links, duplication) {
    network_config config;
    config.default_link.duplicate = 0.2;
    network net = make_recorders(2, config);
    blast(net, 10000);
    net.run_for(1s);
    const auto got = static_cast<double>(rec(net, 1).got.size());
    EXPECT_NEAR(got / 10000.0, 1.2, 0.02);
    EXPECT_EQ(net.stats().duplicated, rec(net, 1).got.size() - 10000);
}

TEST(sim_links, reordering_lets_datagrams_overtake) {
    network_config config;
    config.default_link.latency = 10ms;
    config.default_link.reorder = 0.25;
    network net = make_recorders(2, config);
    auto& a = rec(net, 0);
    for (std::uint64_t i = 0; i < 4000; ++i)
        net.at(time_point{std::chrono::microseconds(i * 10)},
               [&a, &net, i] { a.send_value(net.endpoint_of(1, port), i); });
    net.run_for(1s);
    const auto& got = rec(net, 1).got;
    ASSERT_EQ(got.size(), 4000u);
    std::size_t out_of_order = 0;
    for (std::size_t i = 1; i < got.size(); ++i) out_of_order += got[i].value < got[i - 1].value ? 1 : 0;
    EXPECT_GT(out_of_order, 500u);
    const auto early = std::count_if(got.begin(), got.end(), [](const received& r) {
        return r.at - time_point{std::chrono::microseconds(r.value * 10)} < 10ms;
    });
    EXPECT_NEAR(static_cast<double>(early) / 4000.0, 0.25, 0.03);
}

TEST(sim_links, bandwidth_limits_throughput_and_tail_drops) {
    network_config config;
    config.default_link.latency = 5ms;
    config.default_link.bandwidth_bits_per_second = 1'000'000; // 1 Mbit/s: 1000 bytes take 8 ms
    config.default_link.queue_limit_bytes = 64 * 1000;
    network net = make_recorders(2, config);
    // 50 KB fit the queue: all arrive, the last after 50 x 8 ms plus the latency.
    blast(net, 50, 1000);
    net.run_for(2s);
    auto& b = rec(net, 1);
    ASSERT_EQ(b.got.size(), 50u);
    EXPECT_NEAR(seconds(b.got.back().at), 0.400 + 0.005, 0.001);
    // 100 KB at once overflow the 64 KB queue: the tail is dropped.
    b.got.clear();
    auto& a = rec(net, 0);
    for (int i = 0; i < 100; ++i) a.send_value(net.endpoint_of(1, port), static_cast<std::uint64_t>(i), 1000);
    net.run_for(2s);
    EXPECT_EQ(b.got.size(), 64u);
    EXPECT_EQ(net.stats().dropped_by(outcome::queue_full), 36u);
    EXPECT_EQ(b.got.back().value, 63u);
}

TEST(sim_links, pair_and_group_links_override_the_default) {
    network net = make_recorders(4);
    link_config slow;
    slow.latency = 50ms;
    link_config wan;
    wan.latency = 20ms;
    ASSERT_TRUE(net.set_group(2, 7));
    ASSERT_TRUE(net.set_group(3, 8));
    ASSERT_TRUE(net.set_group(0, 7));
    ASSERT_TRUE(net.set_group_link(7, 8, wan));
    ASSERT_TRUE(net.set_link(0, 1, slow));
    auto& a = rec(net, 0);
    a.send_value(net.endpoint_of(1, port), 1); // pair link: 50 ms
    a.send_value(net.endpoint_of(3, port), 3); // group 7 -> 8: 20 ms
    rec(net, 2).send_value(net.endpoint_of(3, port), 3);
    rec(net, 3).send_value(net.endpoint_of(2, port), 2); // 8 -> 7 has no group link: default 1 ms
    net.run_for(1s);
    EXPECT_EQ(rec(net, 1).got.at(0).at, time_point{50ms});
    EXPECT_EQ(rec(net, 3).got.at(0).at, time_point{20ms});
    EXPECT_EQ(rec(net, 3).got.at(1).at, time_point{20ms});
    EXPECT_EQ(rec(net, 2).got.at(0).at, time_point{1ms});
    net.clear_link(0, 1);
    a.send_value(net.endpoint_of(1, port), 1);
    net.run_for(1s);
    EXPECT_EQ(rec(net, 1).got.at(1).at - rec(net, 1).got.at(0).at, 1s - 50ms + 1ms);
}

TEST(sim_run, callbacks_run_in_time_order_and_run_control_is_bounded) {
    network net = make_network();
    std::vector<int> order;
    net.at(time_point{3s}, [&] { order.push_back(3); });
    net.at(time_point{1s}, [&] { order.push_back(1); });
    net.at(time_point{1s}, [&] { order.push_back(2); }); // same time: first in, first out
    net.after(5s, [&] { order.push_back(5); });
    EXPECT_EQ(net.pending_events(), 4u);
    EXPECT_TRUE(net.step());
    EXPECT_EQ(net.now(), time_point{1s});
    net.run_until(time_point{2s});
    EXPECT_EQ(net.now(), time_point{2s});
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
    EXPECT_TRUE(net.run_until([&] { return order.size() == 3; }, time_point{10s}));
    EXPECT_EQ(net.now(), time_point{3s});
    EXPECT_FALSE(net.run_until([&] { return order.size() == 9; }, time_point{20s}));
    EXPECT_EQ(net.now(), time_point{20s});
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 5}));
    EXPECT_FALSE(net.step());
    net.run_for(1s);
    EXPECT_EQ(net.now(), time_point{21s});
}

TEST(sim_run, timers_fire_move_and_cancel) {
    network net = make_recorders(1);
    net.run_for(1ms);
    auto& r = rec(net, 0);
    r.t.set_timer(1, time_point{100ms});
    r.t.set_timer(2, time_point{50ms});
    r.t.set_timer(3, time_point{60ms});
    r.t.set_timer(1, time_point{200ms}); // moved
    r.t.cancel_timer(3);
    net.run_for(1s);
    ASSERT_EQ(r.timers.size(), 2u);
    EXPECT_EQ(r.timers[0], std::make_pair(net::timer_id{2}, time_point{50ms}));
    EXPECT_EQ(r.timers[1], std::make_pair(net::timer_id{1}, time_point{200ms}));
    EXPECT_EQ(net.stats().timers_fired, 2u);
}

TEST(sim_observer, sees_every_datagram_with_its_times_and_outcome) {
    network_config config;
    config.default_link.latency = 3ms;
    network net = make_recorders(3, config);
    std::vector<datagram_record> seen;
    net.set_observer([&](const datagram_record& r) { seen.push_back(r); });
    net.run_for(1ms);
    ASSERT_TRUE(net.crash(2));
    rec(net, 0).send_value(net.endpoint_of(1, port), 1);
    rec(net, 0).send_value(net.endpoint_of(2, port), 2);
    net.run_for(10ms);
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[0].result, outcome::delivered);
    EXPECT_EQ(seen[0].sent, time_point{1ms});
    EXPECT_EQ(seen[0].at, time_point{4ms});
    EXPECT_EQ(seen[0].from, 0u);
    EXPECT_EQ(seen[0].to, 1u);
    EXPECT_EQ(seen[0].size, 8u);
    EXPECT_EQ(seen[1].result, outcome::crashed);
    EXPECT_EQ(to_string(outcome::crashed), "crashed");
}

} // namespace
} // namespace swarm::sim::test
