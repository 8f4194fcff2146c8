#include "membership/sim_cluster.hpp"

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using swarm::membership::config;
using swarm::membership::event_kind;
using swarm::membership::member_state;
using swarm_test::cluster;

swarm::time_point at(swarm::duration d) { return swarm::time_point{} + d; }

TEST(swim, a_hundred_nodes_join_through_one_seed) {
    cluster c(1);
    for (int i = 0; i < 100; ++i) c.add(config::swarm_profile());
    ASSERT_TRUE(c.net.run_until([&] { return c.all_see(100); }, at(120s)));
    for (swarm::sim::node_id n = 0; n < 100; ++n) {
        const auto& ev = c.events[n];
        const auto joined = std::count_if(ev.begin(), ev.end(), [](auto& e) { return e.kind == event_kind::joined; });
        EXPECT_EQ(joined, 99) << "node " << n;
    }
}

TEST(swim, a_crashed_node_is_declared_dead_by_everyone) {
    cluster c(2);
    for (int i = 0; i < 50; ++i) c.add(config::swarm_profile());
    ASSERT_TRUE(c.net.run_until([&] { return c.all_see(50); }, at(120s)));
    c.net.run_for(5s);
    const auto crash_at = c.net.now();
    ASSERT_TRUE(c.net.crash(17));
    ASSERT_TRUE(c.net.run_until([&] { return c.all_see_state(17, member_state::dead); }, crash_at + 30s));
    EXPECT_TRUE(c.all_see(49));
    // Nobody else was harmed along the way.
    for (swarm::sim::node_id n = 0; n < 50; ++n) {
        if (n == 17) continue;
        for (const auto& e : c.events[n])
            if (e.kind == event_kind::failed) {
                EXPECT_EQ(e.subject.id, c.identities[17]->id());
            }
    }
}

TEST(swim, a_graceful_leave_is_seen_as_left_not_failed) {
    cluster c(3);
    for (int i = 0; i < 20; ++i) c.add(config::swarm_profile());
    ASSERT_TRUE(c.net.run_until([&] { return c.all_see(20); }, at(120s)));
    c.at(5)->leave();
    c.net.run_for(2s);
    ASSERT_TRUE(c.net.crash(5));
    ASSERT_TRUE(c.net.run_until([&] { return c.all_see_state(5, member_state::left); }, c.net.now() + 10s));
}

TEST(swim, metadata_spreads_to_every_member) {
    cluster c(4);
    for (int i = 0; i < 30; ++i) c.add(config::swarm_profile());
    ASSERT_TRUE(c.net.run_until([&] { return c.all_see(30); }, at(120s)));
    swarm::membership::metadata meta;
    meta.labels["zone"] = "eu-1a";
    meta.capacity.cpu_millicores = 16000;
    meta.models.push_back({"tiny-llama", "http://127.0.0.1:8080", "openai"});
    ASSERT_TRUE(c.at(3)->set_metadata(meta));
    auto everyone_has_it = [&] {
        for (swarm::sim::node_id n = 0; n < 30; ++n) {
            auto m = c.at(n)->find(c.identities[3]->id());
            if (!m || !m->meta || *m->meta != meta) return false;
        }
        return true;
    };
    EXPECT_TRUE(c.net.run_until(everyone_has_it, c.net.now() + 20s));
}

TEST(swim, large_metadata_is_fetched_over_a_stream) {
    cluster c(5);
    for (int i = 0; i < 10; ++i) c.add(config::swarm_profile());
    ASSERT_TRUE(c.net.run_until([&] { return c.all_see(10); }, at(120s)));
    swarm::membership::metadata meta;
    meta.extra.assign(20 * 1024, std::byte{7}); // 20 KiB: far beyond one datagram
    ASSERT_TRUE(c.at(2)->set_metadata(meta));
    auto everyone_has_it = [&] {
        for (swarm::sim::node_id n = 0; n < 10; ++n) {
            auto m = c.at(n)->find(c.identities[2]->id());
            if (!m || !m->meta || m->meta->extra.size() != meta.extra.size()) return false;
        }
        return true;
    };
    EXPECT_TRUE(c.net.run_until(everyone_has_it, c.net.now() + 30s));
}

TEST(swim, no_false_dead_under_five_percent_loss) {
    cluster c(6);
    for (int i = 0; i < 50; ++i) c.add(config::swarm_profile());
    ASSERT_TRUE(c.net.run_until([&] { return c.all_see(50); }, at(120s)));
    auto link = c.net.default_link();
    link.loss = 0.05;
    ASSERT_TRUE(c.net.set_default_link(link));
    c.net.run_for(10min);
    for (swarm::sim::node_id n = 0; n < 50; ++n)
        for (const auto& e : c.events[n]) EXPECT_NE(e.kind, event_kind::failed) << "node " << n;
    EXPECT_TRUE(c.all_see(50));
}

TEST(swim, same_seed_same_trace_and_view) {
    auto run = [](std::uint64_t seed) {
        cluster c(seed);
        for (int i = 0; i < 20; ++i) c.add(config::swarm_profile());
        c.net.run_for(20s);
        (void)c.net.crash(3);
        c.net.run_for(20s);
        return std::pair{c.net.trace_hash(), c.at(0)->live_count()};
    };
    const auto a = run(7);
    EXPECT_EQ(a, run(7));
    EXPECT_NE(a.first, run(8).first);
    EXPECT_EQ(a.second, 19u);
}

} // namespace
