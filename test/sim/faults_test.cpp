// Partitions, crashes, pauses, fault schedules and determinism.
#include "sim/sim_support.hpp"

#include <set>

namespace swarm::sim::test {
namespace {

/// Every node sends one datagram to every other; returns the set of (from, to) pairs that arrived.
std::set<std::pair<node_id, node_id>> all_to_all(network& net) {
    const auto n = static_cast<node_id>(net.node_count());
    std::set<std::pair<node_id, node_id>> arrived;
    for (node_id i = 0; i < n; ++i) rec(net, i).got.clear();
    for (node_id i = 0; i < n; ++i)
        for (node_id j = 0; j < n; ++j)
            if (i != j) rec(net, i).send_value(net.endpoint_of(j, port), i);
    net.run_for(100ms);
    for (node_id j = 0; j < n; ++j)
        for (const auto& r : rec(net, j).got) arrived.insert({static_cast<node_id>(r.value), j});
    return arrived;
}

std::set<std::pair<node_id, node_id>> expected_pairs(node_id n, const std::function<bool(node_id, node_id)>& cut) {
    std::set<std::pair<node_id, node_id>> out;
    for (node_id i = 0; i < n; ++i)
        for (node_id j = 0; j < n; ++j)
            if (i != j && !cut(i, j)) out.insert({i, j});
    return out;
}

TEST(sim_partition, symmetric_groups_block_exactly_cross_group_traffic) {
    network net = make_recorders(6);
    net.run_for(1ms);
    auto p = net.partition({{0, 1}, {2, 3}, {4}});
    ASSERT_TRUE(p);
    auto group = [](node_id x) { return x < 2 ? 1 : x < 4 ? 2 : x == 4 ? 3 : 0; };
    EXPECT_EQ(all_to_all(net), expected_pairs(6, [&](node_id a, node_id b) {
                  return group(a) != 0 && group(b) != 0 && group(a) != group(b);
              }));
    EXPECT_FALSE(net.reachable(0, 2));
    EXPECT_TRUE(net.reachable(0, 5));
    EXPECT_GT(net.stats().dropped_by(outcome::partitioned), 0u);
    ASSERT_TRUE(net.heal(*p));
    EXPECT_EQ(all_to_all(net), expected_pairs(6, [](node_id, node_id) { return false; }));
    EXPECT_EQ(net.heal(*p).error(), errc::not_found);
    EXPECT_EQ(net.partition({{0, 1}, {1, 2}}).error(), errc::invalid_argument);
    EXPECT_EQ(net.partition({{0}, {99}}).error(), errc::not_found);
    EXPECT_EQ(net.partition({{0, 1}}).error(), errc::invalid_argument);
}

TEST(sim_partition, asymmetric_blocks_one_direction) {
    network net = make_recorders(4);
    net.run_for(1ms);
    std::vector<node_id> from{0, 1}, to{2};
    auto p = net.partition_one_way(from, to);
    ASSERT_TRUE(p);
    EXPECT_EQ(all_to_all(net), expected_pairs(4, [](node_id a, node_id b) { return a < 2 && b == 2; }));
    net.heal_all();
    EXPECT_EQ(all_to_all(net), expected_pairs(4, [](node_id, node_id) { return false; }));
}

TEST(sim_partition, isolate_and_halves) {
    network net = make_recorders(6);
    net.run_for(1ms);
    auto iso = net.isolate(3);
    ASSERT_TRUE(iso);
    EXPECT_EQ(all_to_all(net), expected_pairs(6, [](node_id a, node_id b) { return a == 3 || b == 3; }));
    ASSERT_TRUE(net.heal(*iso));
    auto halves = net.split_halves();
    EXPECT_EQ(all_to_all(net), expected_pairs(6, [](node_id a, node_id b) { return (a < 3) != (b < 3); }));
    ASSERT_TRUE(net.heal(halves));
    EXPECT_EQ(all_to_all(net), expected_pairs(6, [](node_id, node_id) { return false; }));
    EXPECT_EQ(net.isolate(17).error(), errc::not_found);
}

TEST(sim_partition, scheduled_healing_fires_at_the_given_virtual_time) {
    network net = make_recorders(2);
    auto p = net.isolate(1);
    ASSERT_TRUE(p);
    net.heal_at(*p, time_point{5s});
    net.run_until(time_point{5s} - 1ns);
    EXPECT_FALSE(net.reachable(0, 1));
    net.run_until(time_point{5s});
    EXPECT_TRUE(net.reachable(0, 1));
    rec(net, 0).send_value(net.endpoint_of(1, port), 7);
    net.run_for(10ms);
    EXPECT_EQ(rec(net, 1).got.size(), 1u);
}

/// Counts its starts on the node's disk and arms a timer when it starts.
class durable final : public recorder {
public:
    durable(net::transport& transport, sim::disk& d, int* timers_fired)
        : recorder(transport), disk_(d), fired_(timers_fired) {}
    void on_start() override {
        auto& v = disk_["starts"];
        v.push_back(std::byte{1});
        t.set_timer(1, t.now() + 1s);
        recorder::on_start();
    }
    void on_timer(net::timer_id id) override {
        ++*fired_;
        recorder::on_timer(id);
    }

private:
    sim::disk& disk_;
    int* fired_;
};

TEST(sim_node, crash_and_restart_keep_the_disk_and_rebuild_the_protocols) {
    network net = make_recorders(1);
    node_id b = net.add_node();
    int fired = 0;
    ASSERT_TRUE(net.add_protocol(b, port, [&net, b, &fired](net::transport& t) {
        return std::make_unique<durable>(t, net.disk(b), &fired);
    }));
    net.run_for(500ms);
    auto* before = net.protocol_of<durable>(b, port);
    ASSERT_NE(before, nullptr);
    ASSERT_TRUE(net.crash(b));
    EXPECT_EQ(net.state(b), node_state::crashed);
    EXPECT_EQ(net.protocol_of<durable>(b, port), nullptr);
    rec(net, 0).send_value(net.endpoint_of(b, port), 1);
    net.run_for(2s); // the timer armed before the crash is gone with it
    EXPECT_EQ(fired, 0);
    EXPECT_EQ(net.stats().dropped_by(outcome::crashed), 1u);
    ASSERT_TRUE(net.restart(b));
    EXPECT_EQ(net.state(b), node_state::running);
    net.run_for(1ms);
    auto* after = net.protocol_of<durable>(b, port);
    ASSERT_NE(after, nullptr);
    EXPECT_EQ(after->starts, 1);
    EXPECT_EQ(net.disk(b).at("starts").size(), 2u);
    rec(net, 0).send_value(net.endpoint_of(b, port), 2);
    net.run_for(2s);
    EXPECT_EQ(fired, 1);
    ASSERT_EQ(after->got.size(), 1u);
    EXPECT_EQ(after->got[0].value, 2u);
    EXPECT_EQ(net.crash(77).error(), errc::not_found);
}

TEST(sim_node, pause_delays_timers_and_datagrams_until_resume) {
    network_config config;
    config.paused_queue_limit = 3;
    network net = make_recorders(2, config);
    net.run_for(1ms);
    auto& b = rec(net, 1);
    b.t.set_timer(9, time_point{1s});
    net.run_until(time_point{500ms});
    ASSERT_TRUE(net.pause(1));
    EXPECT_EQ(net.state(1), node_state::paused);
    for (int i = 0; i < 5; ++i) rec(net, 0).send_value(net.endpoint_of(1, port), static_cast<std::uint64_t>(i));
    net.run_until(time_point{2s});
    EXPECT_TRUE(b.timers.empty());
    EXPECT_TRUE(b.got.empty());
    ASSERT_TRUE(net.resume(1));
    net.run_for(1ms);
    ASSERT_EQ(b.timers.size(), 1u);
    EXPECT_EQ(b.timers[0].second, time_point{2s});
    ASSERT_EQ(b.got.size(), 3u);
    EXPECT_EQ(b.got[0].value, 0u);
    EXPECT_EQ(b.got[2].value, 2u);
    EXPECT_EQ(b.got[0].at, time_point{2s});
    EXPECT_EQ(net.stats().dropped_by(outcome::paused_overflow), 2u);
    ASSERT_TRUE(net.crash(1));
    EXPECT_EQ(net.pause(1).error(), errc::invalid_argument);
}

TEST(sim_faults, a_written_schedule_runs_at_its_times) {
    network net = make_recorders(4);
    fault_schedule s;
    s.faults.push_back({time_point{1s}, fault_kind::crash, 2, 2s, {}});
    s.faults.push_back({time_point{1s}, fault_kind::pause, 3, 1s, {}});
    s.faults.push_back({time_point{1s}, fault_kind::partition_halves, 0, 500ms, {}});
    s.faults.push_back({time_point{1s}, fault_kind::loss_burst, 0, 1s, {0.5, 0.5, 0.1, 0.9}});
    ASSERT_TRUE(net.apply(s));
    net.run_until(time_point{1200ms});
    EXPECT_EQ(net.state(2), node_state::crashed);
    EXPECT_EQ(net.state(3), node_state::paused);
    EXPECT_FALSE(net.reachable(0, 3));
    EXPECT_GT(net.default_link().burst_loss.p_good_to_bad, 0);
    net.run_until(time_point{1600ms});
    EXPECT_TRUE(net.reachable(0, 3));
    net.run_until(time_point{2100ms});
    EXPECT_EQ(net.state(3), node_state::running);
    EXPECT_EQ(net.default_link().burst_loss.p_good_to_bad, 0);
    net.run_until(time_point{3100ms});
    EXPECT_EQ(net.state(2), node_state::running);

    fault_schedule bad;
    bad.faults.push_back({time_point{5s}, fault_kind::crash, 99, {}, {}});
    EXPECT_EQ(net.apply(bad).error(), errc::not_found);
    bad.faults = {{time_point{1s}, fault_kind::crash, 0, {}, {}}};
    EXPECT_EQ(net.apply(bad).error(), errc::invalid_argument); // in the past
}

/// A chatty scenario: every node forwards what it receives to a random peer; faults and loss on top.
struct outcome_of_run {
    std::uint64_t hash;
    counters stats;
};

outcome_of_run chatter(std::uint64_t seed, bool random_faults_on) {
    network_config config;
    config.seed = seed;
    config.default_link.latency = 2ms;
    config.default_link.jitter = 1ms;
    config.default_link.distribution = latency_distribution::normal;
    config.default_link.loss = 0.02;
    config.default_link.duplicate = 0.01;
    network net = make_network(config);
    const node_id n = 40;
    auto peers = std::make_shared<std::vector<net::endpoint>>();
    for (node_id i = 0; i < n; ++i) peers->push_back(net.endpoint_of(net.add_node(), port));
    for (node_id i = 0; i < n; ++i)
        EXPECT_TRUE(net.add_protocol(i, port, [peers](net::transport& t) {
            auto r = std::make_unique<recorder>(t);
            auto forward = [peers](recorder& self) {
                auto& to = (*peers)[self.t.random().below(peers->size())];
                self.send_value(to, self.t.random()(), 8 + self.t.random().below(100));
            };
            r->datagram_hook = [forward](recorder& self, const net::endpoint&, std::span<const std::byte>) {
                forward(self);
            };
            return r;
        }));
    // Fresh messages every 10 ms from a node drawn from the seed, so loss does not starve the run.
    auto inject = std::make_shared<std::function<void()>>();
    auto draw = std::make_shared<rng>(seed);
    *inject = [&net, inject, draw, peers, n] {
        if (auto* r = net.protocol_of<recorder>(static_cast<node_id>(draw->below(n)), port))
            r->send_value((*peers)[draw->below(n)], (*draw)());
        net.after(10ms, *inject);
    };
    net.at(time_point{}, *inject);
    if (random_faults_on) {
        random_faults f;
        f.end = time_point{20s};
        f.crashes_per_hour = 3600;
        f.downtime = 2s;
        f.pauses_per_hour = 3600;
        f.partitions_per_hour = 360;
        f.partition_length = 1s;
        f.loss_bursts_per_hour = 720;
        auto s = make_random_faults(f, n, seed);
        EXPECT_TRUE(s);
        EXPECT_TRUE(net.apply(*s));
    } else {
        net.at(time_point{3s}, [&net] { (void)net.crash(5); });
        net.at(time_point{4s}, [&net] { (void)net.restart(5); });
        auto p = net.split_halves();
        net.heal_at(p, time_point{1s});
    }
    net.run_for(20s);
    *inject = [] {}; // break the self-reference
    return {net.trace_hash(), net.stats()};
}

TEST(sim_determinism, same_seed_same_trace_and_counters_other_seed_other_trace) {
    auto a = chatter(1234, false);
    auto b = chatter(1234, false);
    auto c = chatter(1235, false);
    EXPECT_EQ(a.hash, b.hash);
    EXPECT_EQ(a.stats, b.stats);
    EXPECT_NE(a.hash, c.hash);
    EXPECT_GT(a.stats.delivered, 10000u);
    EXPECT_GT(a.stats.dropped_by(outcome::lost), 0u);
    EXPECT_GT(a.stats.dropped_by(outcome::partitioned), 0u);
    EXPECT_GT(a.stats.duplicated, 0u);
}

TEST(sim_determinism, random_fault_schedules_are_reproducible_from_the_seed) {
    random_faults f;
    f.crashes_per_hour = 60;
    f.pauses_per_hour = 30;
    f.partitions_per_hour = 4;
    f.loss_bursts_per_hour = 10;
    auto s1 = make_random_faults(f, 100, 7);
    auto s2 = make_random_faults(f, 100, 7);
    auto s3 = make_random_faults(f, 100, 8);
    ASSERT_TRUE(s1 && s2 && s3);
    EXPECT_EQ(s1->faults, s2->faults);
    EXPECT_NE(s1->faults, s3->faults);
    EXPECT_GT(s1->faults.size(), 50u);
    EXPECT_TRUE(std::is_sorted(s1->faults.begin(), s1->faults.end(),
                               [](const fault& a, const fault& b) { return a.at < b.at; }));
    for (const auto& x : s1->faults) {
        EXPECT_GE(x.at, f.begin);
        EXPECT_LT(x.at, f.end);
        EXPECT_LT(x.node, 100u);
    }
    auto a = chatter(99, true);
    auto b = chatter(99, true);
    EXPECT_EQ(a.hash, b.hash);
    EXPECT_EQ(a.stats, b.stats);
    EXPECT_GT(a.stats.dropped_by(outcome::crashed), 0u);
}

} // namespace
} // namespace swarm::sim::test
