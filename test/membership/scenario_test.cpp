// Failure scenarios at a hundred nodes under the simulator, with the bounds a user would notice. The
// benchmark (bench/membership) runs the same scenarios at 1,000 nodes against other profiles.
#include "membership/sim_cluster.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <set>

namespace {

using namespace std::chrono_literals;
using swarm::membership::config;
using swarm::membership::event_kind;
using swarm::membership::member_state;
using swarm_test::cluster;
using swarm_test::form;
using swarm_test::run_until;

constexpr std::size_t n = 100;


/// "failed" events about any member other than those in `expected`.
std::size_t false_dead(const cluster& c, const std::set<swarm::sim::node_id>& expected = {}) {
    std::size_t count = 0;
    for (const auto& events : c.events)
        for (const auto& e : events) {
            if (e.kind != event_kind::failed) continue;
            bool known = false;
            for (auto k : expected) known = known || e.subject.id == c.identities[k]->id();
            if (!known) ++count;
        }
    return count;
}

TEST(membership_scenario, a_crash_is_seen_by_everyone_within_ten_seconds) {
    cluster c(11);
    ASSERT_TRUE(form(c, n));
    ASSERT_TRUE(c.net.crash(42));
    EXPECT_TRUE(run_until(c, [&] { return c.all_see_state(42, member_state::dead); }, 10s));
    EXPECT_TRUE(c.all_see(n - 1));
    EXPECT_EQ(false_dead(c, {42}), 0u);
}

TEST(membership_scenario, no_false_dead_under_five_percent_loss) {
    cluster c(12);
    ASSERT_TRUE(form(c, n));
    auto link = c.net.default_link();
    link.loss = 0.05;
    ASSERT_TRUE(c.net.set_default_link(link));
    c.net.run_for(2min);
    EXPECT_EQ(false_dead(c), 0u);
    EXPECT_TRUE(c.all_see(n));
}

TEST(membership_scenario, a_healed_partition_merges_without_a_rejoin) {
    cluster c(13);
    ASSERT_TRUE(form(c, n));
    const auto split = c.net.split_halves();
    // Each half declares the other dead; that is right while they cannot talk.
    ASSERT_TRUE(run_until(c, [&] { return c.all_see(n / 2); }, 60s));
    c.net.run_for(1min);
    ASSERT_TRUE(c.net.heal(split));
    // No application calls join(): the reconnect tick alone must merge the views.
    EXPECT_TRUE(run_until(c, [&] { return c.all_see(n); }, 60s));
}

// A grey node (80% loss both ways) answers now and then, so it refutes every single suspicion; the
// evidence of many accusers removes it anyway, and every healthy node ends up seeing every other one. (Before
// its removal the grey node's own accusations can briefly cost a healthy node a refutation; the benchmark
// counts those as grey_false_dead.)
TEST(membership_scenario, a_grey_node_is_removed_and_the_healthy_view_is_whole) {
    cluster c(14);
    ASSERT_TRUE(form(c, n));
    constexpr swarm::sim::node_id grey = 31;
    auto lossy = c.net.default_link();
    lossy.loss = 0.8;
    // Group links apply between nodes that are both in a group.
    for (swarm::sim::node_id i = 0; i < n; ++i) ASSERT_TRUE(c.net.set_group(i, 0));
    ASSERT_TRUE(c.net.set_group(grey, 1));
    ASSERT_TRUE(c.net.set_group_link(0, 1, lossy));
    ASSERT_TRUE(c.net.set_group_link(1, 0, lossy));
    const auto healthy_whole = [&] {
        for (swarm::sim::node_id i = 0; i < n; ++i)
            if (i != grey && c.at(i)->live_count() != n - 1) return false;
        return true;
    };
    EXPECT_TRUE(run_until(c, healthy_whole, 30s));
    c.net.run_for(30s);
    for (swarm::sim::node_id i = 0; i < n; ++i) {
        if (i == grey) continue;
        auto m = c.at(i)->find(c.identities[grey]->id());
        ASSERT_TRUE(m);
        // Still out a minute later: its refutations are ignored during the quarantine.
        EXPECT_EQ(m->state, member_state::dead) << "node " << i;
        EXPECT_EQ(c.at(i)->live_count(), n - 1) << "node " << i;
    }
    std::uint64_t removals = 0;
    for (swarm::sim::node_id i = 0; i < n; ++i) removals += c.at(i)->stats().removals;
    // The evidence did the work, not only ordinary suspicion (each node counts a removal it applied).
    EXPECT_GT(removals, n / 2);
}

TEST(membership_scenario, a_paused_node_refutes_and_is_alive_again) {
    cluster c(15);
    ASSERT_TRUE(form(c, n));
    constexpr swarm::sim::node_id paused = 7;
    ASSERT_TRUE(c.net.pause(paused));
    ASSERT_TRUE(run_until(c, [&] { return c.all_see_state(paused, member_state::dead); }, 30s));
    const auto before = c.at(0)->find(c.identities[paused]->id())->incarnation;
    ASSERT_TRUE(c.net.resume(paused));
    EXPECT_TRUE(run_until(c, [&] { return c.all_see_state(paused, member_state::alive); }, 30s));
    EXPECT_GT(c.at(0)->find(c.identities[paused]->id())->incarnation, before);
    EXPECT_TRUE(c.all_see(n));
}

TEST(membership_scenario, same_seed_same_trace_through_loss_and_a_partition) {
    auto run = [](std::uint64_t seed) {
        cluster c(seed);
        for (int i = 0; i < 30; ++i) c.add(config::swarm_profile());
        c.net.run_for(10s);
        auto link = c.net.default_link();
        link.loss = 0.05;
        (void)c.net.set_default_link(link);
        const auto split = c.net.split_halves();
        c.net.run_for(15s);
        (void)c.net.heal(split);
        c.net.run_for(15s);
        return c.net.trace_hash();
    };
    const auto a = run(21);
    EXPECT_EQ(a, run(21));
    EXPECT_NE(a, run(22));
}

} // namespace
