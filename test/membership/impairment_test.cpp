// Impaired members under the simulator at a hundred nodes: UDP firewalled with TCP open, ingress flapping,
// stalls, a one-versus-rest partition and a rolling key rotation. Bounds are what a user would notice:
// nobody healthy declared dead, one view again within a bound.
#include "membership/sim_cluster.hpp"

#include <gtest/gtest.h>

#include <functional>

namespace {

using namespace std::chrono_literals;
using swarm::membership::config;
using swarm::membership::event_kind;
using swarm::membership::member_state;
using swarm::membership::refusal;
using swarm_test::cluster;
using swarm_test::form;
using swarm_test::run_until;

constexpr std::size_t n = 100;


/// "failed" events about `subject` seen by the other nodes.
std::size_t failed_about(const cluster& c, swarm::sim::node_id subject) {
    std::size_t count = 0;
    for (std::size_t i = 0; i < c.events.size(); ++i)
        for (const auto& e : c.events[i])
            if (i != subject && e.kind == event_kind::failed && e.subject.id == c.identities[subject]->id()) ++count;
    return count;
}

/// "failed" events about anyone but `except`, seen by anyone but `except`.
std::size_t failed_others(const cluster& c, swarm::sim::node_id except) {
    std::size_t count = 0;
    for (std::size_t i = 0; i < c.events.size(); ++i)
        for (const auto& e : c.events[i])
            if (i != except && e.kind == event_kind::failed && e.subject.id != c.identities[except]->id()) ++count;
    return count;
}

TEST(membership_impairment, a_member_behind_a_udp_firewall_stays_alive_through_tcp_probes) {
    cluster c(31);
    ASSERT_TRUE(form(c, n));
    constexpr swarm::sim::node_id walled = 17;
    auto blocked = c.net.default_link();
    blocked.block_datagrams = true;
    for (swarm::sim::node_id i = 0; i < n; ++i) {
        if (i == walled) continue;
        ASSERT_TRUE(c.net.set_link(i, walled, blocked));
        ASSERT_TRUE(c.net.set_link(walled, i, blocked));
    }
    c.net.run_for(1min);
    EXPECT_EQ(failed_about(c, walled), 0u);
    EXPECT_EQ(failed_others(c, walled), 0u);
    EXPECT_TRUE(c.all_see_state(walled, member_state::alive));
    EXPECT_GT(c.at(3)->stats().tcp_probes, 0u);
}

TEST(membership_impairment, ingress_flapping_every_twenty_seconds_harms_nobody_else_and_heals) {
    cluster c(32);
    ASSERT_TRUE(form(c, n));
    constexpr swarm::sim::node_id flapper = 23;
    std::vector<swarm::sim::node_id> rest;
    for (swarm::sim::node_id i = 0; i < n; ++i)
        if (i != flapper) rest.push_back(i);
    const std::vector<swarm::sim::node_id> target{flapper};
    for (int round = 0; round < 2; ++round) {
        const auto cut = c.net.partition_one_way(rest, target).value();
        c.net.run_for(20s);
        ASSERT_TRUE(c.net.heal(cut));
        c.net.run_for(20s);
    }
    EXPECT_EQ(failed_others(c, flapper), 0u);
    // A member removed on evidence is quarantined (config::grey_quarantine, 2 minutes), then comes back.
    EXPECT_TRUE(run_until(c, [&] { return c.all_see(n); }, 3min));
}

TEST(membership_impairment, a_member_stalled_two_seconds_in_ten_is_never_declared_dead) {
    cluster c(33);
    ASSERT_TRUE(form(c, n));
    constexpr swarm::sim::node_id slow = 41;
    for (int round = 0; round < 6; ++round) {
        ASSERT_TRUE(c.net.pause(slow));
        c.net.run_for(2s);
        ASSERT_TRUE(c.net.resume(slow));
        c.net.run_for(8s);
    }
    EXPECT_EQ(failed_about(c, slow), 0u);
    EXPECT_EQ(failed_others(c, slow), 0u);
    EXPECT_TRUE(c.all_see(n));
}

TEST(membership_impairment, one_member_cut_off_for_a_minute_is_back_in_one_view_within_a_minute) {
    cluster c(34);
    ASSERT_TRUE(form(c, n));
    const auto cut = c.net.isolate(55).value();
    ASSERT_TRUE(run_until(c, [&] { return c.all_see_state(55, member_state::dead); }, 30s));
    c.net.run_for(30s);
    ASSERT_TRUE(c.net.heal(cut));
    EXPECT_TRUE(run_until(c, [&] { return c.all_see(n); }, 60s));
    std::uint64_t removals = 0; // dead by ordinary suspicion: a member that never refuted is not grey
    for (swarm::sim::node_id i = 0; i < n; ++i) removals += c.at(i)->stats().removals;
    EXPECT_EQ(removals, 0u);
}

TEST(membership_impairment, a_rolling_key_rotation_refuses_nothing_and_a_node_left_behind_is_refused) {
    cluster c(35);
    ASSERT_TRUE(form(c, n));
    constexpr swarm::sim::node_id behind = 77;
    std::array<std::byte, 32> fresh{};
    fresh.fill(std::byte{0x17});
    std::optional<swarm::seal::key_id> fresh_id;
    const auto old_id = *c.rings[0].primary();
    // One node at a time, 50 ms apart: install, then make primary, then remove the old key.
    auto roll = [&](const std::function<void(swarm::seal::keyring&)>& step) {
        for (swarm::sim::node_id i = 0; i < n; ++i) {
            if (i != behind) step(c.rings[i]);
            c.net.run_for(50ms);
        }
    };
    roll([&](swarm::seal::keyring& r) { fresh_id = r.add(fresh).value(); });
    roll([&](swarm::seal::keyring& r) { ASSERT_TRUE(r.make_primary(*fresh_id)); });
    std::uint64_t refused = 0;
    for (swarm::sim::node_id i = 0; i < n; ++i)
        if (i != behind) refused += c.at(i)->stats().refused_by(refusal::unknown_key);
    // Until the old key goes, every node still reads the one left behind and it reads nobody's new traffic.
    EXPECT_EQ(refused, 0u);
    roll([&](swarm::seal::keyring& r) { ASSERT_TRUE(r.remove(old_id)); });
    EXPECT_TRUE(run_until(c, [&] { return c.all_see_state(behind, member_state::dead); }, 30s));
    std::uint64_t refused_after = 0;
    for (swarm::sim::node_id i = 0; i < n; ++i)
        if (i != behind) refused_after += c.at(i)->stats().refused_by(refusal::unknown_key);
    EXPECT_GT(refused_after, 0u);
    EXPECT_EQ(failed_others(c, behind), 0u);
}

} // namespace
