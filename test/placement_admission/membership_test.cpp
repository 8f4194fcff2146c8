// Placement over membership under the simulator: admitted allocations travel in membership metadata, and
// a controller places the instances of a failed node again.
#include "membership/sim_cluster.hpp"

#include <swarm/core/wire.hpp>
#include <swarm/placement/controller.hpp>
#include <swarm/placement/membership_view.hpp>

#include <gtest/gtest.h>

#include <set>

namespace {

using namespace std::chrono_literals;
using namespace swarm::placement;
namespace membership = swarm::membership;

constexpr std::uint16_t admission_port = 7400;

/// SWIM and a placement controller on every node; each node publishes what its admission holds.
struct placed_cluster {
    swarm_test::cluster c;
    std::vector<std::size_t> events_fed; // per node: membership events already handed to its controller

    explicit placed_cluster(std::uint64_t seed) : c(seed) {}

    swarm::sim::node_id add(std::int64_t cpu_millis, std::string zone) {
        const auto n = c.add(membership::config::swarm_profile());
        events_fed.push_back(0);
        node self;
        self.id = key_of(c.identities[n]->id());
        self.capacity.cpu_millis = cpu_millis;
        self.capacity.memory_bytes = std::int64_t{16} << 30;
        self.capacity.disk_bytes = std::int64_t{1} << 40;
        self.labels = {{"zone", std::move(zone)}};
        const auto base = describe_node(self);
        auto* net = &c.net;
        auto* cl = &c;
        net->after(0s, [cl, n, base] { EXPECT_TRUE(cl->at(n)->set_metadata(base)); }); // once swim has started
        controller_config cfg;
        cfg.retry_interval = 2s;
        // Admission sealed with the same keys as membership, as a host would.
        admission_security sec;
        sec.keys = c.keys;
        sec.sender = n + 1;
        EXPECT_TRUE(c.net.add_protocol(n, admission_port, [self, base, cfg, sec, net, cl, n](swarm::net::transport& t) {
            auto p = std::make_unique<controller>(t, self, cfg, sec);
            // Publishing goes through a simulator callback: swim's own strand, not admission's.
            p->admission().on_change([base, net, cl, n](const node& now) {
                net->after(0s, [base, now, cl, n] { EXPECT_TRUE(cl->at(n)->set_metadata(with_allocations(base, now))); });
            });
            return p;
        }));
        return n;
    }

    controller* at(swarm::sim::node_id n) { return c.net.protocol_of<controller>(n, admission_port); }

    membership_view view_of(swarm::sim::node_id n) { return view_from_members(c.at(n)->members(), admission_port); }

    /// What a host does on membership news: hand the controller the events and the fresh view.
    void feed(swarm::sim::node_id n) {
        auto& seen = events_fed[n];
        for (; seen < c.events[n].size(); ++seen) at(n)->on_membership_event(c.events[n][seen]);
        at(n)->set_view(view_of(n));
    }

    /// Feeds node n every 250 ms of virtual time, for as long as the network runs.
    void keep_feeding(swarm::sim::node_id n) {
        c.net.after(250ms, [this, n] {
            if (c.net.state(n) == swarm::sim::node_state::running) feed(n);
            keep_feeding(n);
        });
    }

    bool everyone_published(std::size_t nodes) {
        for (swarm::sim::node_id n = 0; n < c.net.node_count(); ++n) {
            if (c.net.state(n) != swarm::sim::node_state::running) continue;
            if (view_of(n).snapshot.nodes.size() != nodes) return false;
        }
        return true;
    }

    /// The allocations of `workload` the running nodes' admission really holds, by allocation id.
    std::multiset<std::string> held(const std::string& workload) {
        std::multiset<std::string> out;
        for (swarm::sim::node_id n = 0; n < c.net.node_count(); ++n) {
            if (c.net.state(n) != swarm::sim::node_state::running) continue;
            for (const auto& a : at(n)->admission().self().allocations)
                if (a.workload == workload) out.insert(a.id);
        }
        return out;
    }
};

workload web(std::string id, std::uint32_t count, std::int64_t cpu_millis) {
    workload w;
    w.id = std::move(id);
    group g;
    g.name = "web";
    g.count = count;
    g.demand.cpu_millis = cpu_millis;
    g.demand.memory_bytes = std::int64_t{1} << 30;
    w.groups.push_back(std::move(g));
    return w;
}

TEST(placement_membership, metadata_round_trips_allocations_and_still_reads_the_old_encoding) {
    membership::metadata meta;
    meta.capacity.cpu_millicores = 4000;
    meta.labels["zone"] = "a";
    membership::allocation a;
    a.id = "api/web/3";
    a.workload = "api";
    a.group = "web";
    a.instance = 3;
    a.priority = -7;
    a.demand.cpu_millicores = 500;
    a.demand.gpus.push_back({});
    a.demand.devices["fpga"] = 1;
    meta.allocations.push_back(a);
    auto decoded = membership::metadata::decode(meta.encode());
    ASSERT_TRUE(decoded) << decoded.error().message();
    EXPECT_EQ(*decoded, meta);

    // Metadata written before allocations existed: the same fields, nothing after `extra`.
    std::vector<std::byte> old;
    {
        swarm::wire::writer w(old);
        auto m = w.begin_message(1);
        for (int r = 0; r < 2; ++r) { // capacity, available
            auto s = w.begin_section();
            w.varint(r == 0 ? 4000 : 0);
            w.varint(0);
            w.varint(0);
            w.varint(0);
            w.varint(0);
            w.end_section(s);
        }
        w.varint(1);
        w.string("zone");
        w.string("a");
        w.varint(0); // models
        w.bytes({}); // extra
        w.end_message(m);
    }
    auto legacy = membership::metadata::decode(old);
    ASSERT_TRUE(legacy) << legacy.error().message();
    EXPECT_EQ(legacy->capacity.cpu_millicores, 4000u);
    EXPECT_EQ(legacy->labels.at("zone"), "a");
    EXPECT_TRUE(legacy->allocations.empty());

    // A truncated allocation list is an error, not a partial read; so is every other cut and a flipped byte
    // that breaks the structure (ASan watches for reads past the input).
    const auto bytes = meta.encode();
    for (std::size_t cut = 0; cut < bytes.size(); ++cut)
        EXPECT_FALSE(membership::metadata::decode(std::span(bytes).first(cut))) << "cut at " << cut;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        auto flipped = bytes;
        flipped[i] ^= std::byte{0xff};
        auto d = membership::metadata::decode(flipped);
        if (d) {
            EXPECT_NE(*d, meta) << "byte " << i; // may decode, never as the original
        }
    }
}

TEST(placement_membership, the_view_turns_members_into_nodes_and_skips_what_cannot_be_scheduled) {
    std::vector<membership::member> members(4);
    for (std::size_t i = 0; i < members.size(); ++i) {
        swarm::node_id::bytes_type b{};
        b[0] = static_cast<std::byte>(i + 1);
        members[i].id = swarm::node_id(b);
        members[i].address = swarm::net::endpoint::v4(0x7f000001u + static_cast<std::uint32_t>(i), 7946);
    }
    node n;
    n.capacity.cpu_millis = 4000;
    n.capacity.gpus = 2;
    n.gpu_model = "h100";
    n.gpu_memory_bytes = std::int64_t{80} << 30;
    n.labels = {{"zone", "b"}};
    allocation a;
    a.id = "api/web/0";
    a.workload = "api";
    a.group = "web";
    a.demand.cpu_millis = 1500;
    a.demand.gpus = 1;
    n.allocations = {a, a}; // a duplicate is kept once
    auto meta = describe_node(n);
    members[0].meta = std::make_shared<membership::metadata>(meta);
    members[1].meta = std::make_shared<membership::metadata>(meta);
    members[1].state = membership::member_state::dead;
    auto absurd = meta;
    absurd.capacity.cpu_millicores = std::uint64_t{1} << 62;
    members[2].meta = std::make_shared<membership::metadata>(absurd);
    // members[3] has no metadata yet

    auto view = view_from_members(members, admission_port);
    ASSERT_EQ(view.snapshot.nodes.size(), 1u);
    EXPECT_EQ(view.skipped.size(), 2u);
    const auto& got = view.snapshot.nodes[0];
    EXPECT_EQ(got.id, key_of(members[0].id));
    EXPECT_EQ(got.gpu_model, "h100");
    EXPECT_EQ(got.capacity.gpus, 2);
    ASSERT_EQ(got.allocations.size(), 1u);
    EXPECT_EQ(view.addresses.at(got.id).port(), admission_port);
    auto sched = scheduler::create(view.snapshot);
    ASSERT_TRUE(sched) << sched.error().describe();
    auto free = sched->free_on(got.id);
    ASSERT_TRUE(free);
    EXPECT_EQ(free->cpu_millis, 2500);
    EXPECT_EQ(free->gpus, 1);
}

TEST(placement_membership, an_admission_shows_up_in_every_other_schedulers_view) {
    placed_cluster pc(11);
    for (int i = 0; i < 6; ++i) pc.add(4000, "z" + std::to_string(i % 2));
    const auto deadline = pc.c.net.now() + 60s;
    ASSERT_TRUE(pc.c.net.run_until([&] { return pc.everyone_published(6); }, deadline));

    auto view = pc.view_of(1);
    pc.at(1)->admission().set_view(view.snapshot, view.addresses);
    std::optional<placement_outcome> out;
    pc.at(1)->admission().place(web("api", 1, 1500), [&](const placement_outcome& o) { out = o; });
    ASSERT_TRUE(pc.c.net.run_until([&] { return out.has_value(); }, pc.c.net.now() + 10s));
    ASSERT_EQ(out->placed.size(), 1u);
    const auto target = out->placed[0].node;
    const auto admitted_at = pc.c.net.now();

    // Node 4 never took part: its view, built from its membership snapshot alone, shows the new usage.
    auto shows_usage = [&] {
        auto sched = scheduler::create(pc.view_of(4).snapshot);
        if (!sched) return false;
        auto free = sched->free_on(target);
        return free && free->cpu_millis == 2500;
    };
    ASSERT_TRUE(pc.c.net.run_until(shows_usage, admitted_at + 5s));
    for (const auto& n : pc.view_of(4).snapshot.nodes)
        if (n.id == target) {
            ASSERT_EQ(n.allocations.size(), 1u);
            EXPECT_EQ(n.allocations[0].id, "api/web/0");
        }
}

void replace_after_failure(std::uint64_t seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    placed_cluster pc(seed);
    constexpr std::size_t nodes = 20;
    for (std::size_t i = 0; i < nodes; ++i) pc.add(2000, "z" + std::to_string(i % 4));
    ASSERT_TRUE(pc.c.net.run_until([&] { return pc.everyone_published(nodes); }, pc.c.net.now() + 60s));

    constexpr std::uint32_t count = 12;
    auto w = web("api", count, 1000); // two fit on a node, so bin-packing stacks them
    w.groups[0].constraints.push_back({"zone", constraint_op::not_equals, {"z0"}}); // never on z0 nodes
    pc.feed(0);
    ASSERT_TRUE(pc.at(0)->want(w));
    pc.keep_feeding(0);
    auto observer_sees = [&](std::size_t expected_nodes) {
        std::set<std::string> ids;
        std::size_t total = 0;
        auto view = pc.view_of(7);
        if (view.snapshot.nodes.size() != expected_nodes) return false;
        for (const auto& n : view.snapshot.nodes)
            for (const auto& a : n.allocations)
                if (a.workload == "api") {
                    ids.insert(a.id);
                    ++total;
                }
        return ids.size() == count && total == count;
    };
    ASSERT_TRUE(pc.c.net.run_until([&] { return observer_sees(nodes); }, pc.c.net.now() + 30s));

    // Crash a node holding two instances (neither the controller's node nor the observer).
    std::map<node_key, swarm::sim::node_id> sim_of;
    for (swarm::sim::node_id n = 0; n < nodes; ++n) sim_of[key_of(pc.c.identities[n]->id())] = n;
    std::map<node_key, int> per_node;
    for (const auto& a : pc.at(0)->running()) ++per_node[a.node];
    std::optional<swarm::sim::node_id> victim;
    for (const auto& [key, held] : per_node)
        if (held == 2 && sim_of.at(key) != 0 && sim_of.at(key) != 7) victim = sim_of.at(key);
    ASSERT_TRUE(victim.has_value());
    const auto victim_key = key_of(pc.c.identities[*victim]->id());
    ASSERT_TRUE(pc.c.net.crash(*victim));

    // The observer's membership may learn of the new allocations before the answers reach the controller.
    ASSERT_TRUE(pc.c.net.run_until([&] { return observer_sees(nodes - 1) && pc.at(0)->running().size() == count; },
                                   pc.c.net.now() + 60s));
    const auto held = pc.held("api");
    EXPECT_EQ(held.size(), count);
    EXPECT_EQ(std::set<std::string>(held.begin(), held.end()).size(), count) << "an instance runs twice";
    const auto running = pc.at(0)->running();
    ASSERT_EQ(running.size(), count);
    std::set<node_key> zone0;
    for (swarm::sim::node_id n = 0; n < nodes; n += 4) zone0.insert(key_of(pc.c.identities[n]->id()));
    for (const auto& a : running) {
        EXPECT_NE(a.node, victim_key);
        EXPECT_FALSE(zone0.contains(a.node)) << "the constraint was not respected on re-placement";
    }
    EXPECT_EQ(pc.at(0)->stats().lost, 2u);
}

TEST(placement_membership, instances_of_a_failed_node_are_placed_again_elsewhere_exactly_once) {
    for (std::uint64_t seed : {12, 21, 33}) replace_after_failure(seed);
}

TEST(placement_membership, instances_of_a_node_that_leaves_are_placed_again) {
    placed_cluster pc(14);
    for (int i = 0; i < 5; ++i) pc.add(2000, "z");
    ASSERT_TRUE(pc.c.net.run_until([&] { return pc.everyone_published(5); }, pc.c.net.now() + 60s));
    pc.feed(0);
    ASSERT_TRUE(pc.at(0)->want(web("api", 4, 1000)));
    pc.keep_feeding(0);
    ASSERT_TRUE(pc.c.net.run_until([&] { return pc.held("api").size() == 4; }, pc.c.net.now() + 10s));
    std::optional<swarm::sim::node_id> leaving;
    for (swarm::sim::node_id n = 1; n < 5 && !leaving; ++n)
        if (!pc.at(n)->admission().self().allocations.empty()) leaving = n;
    ASSERT_TRUE(leaving.has_value());
    const auto before = pc.at(*leaving)->admission().self().allocations.size();
    pc.c.at(*leaving)->leave();
    pc.c.net.run_for(2s);
    ASSERT_TRUE(pc.c.net.crash(*leaving)); // it stops, taking its instances with it
    ASSERT_TRUE(pc.c.net.run_until([&] { return pc.held("api").size() == 4; }, pc.c.net.now() + 30s));
    const auto held = pc.held("api");
    EXPECT_EQ(std::set<std::string>(held.begin(), held.end()).size(), 4u);
    EXPECT_EQ(pc.at(0)->stats().lost, before);
    for (const auto& a : pc.at(0)->running()) EXPECT_NE(a.node, key_of(pc.c.identities[*leaving]->id()));
}

TEST(placement_membership, a_bad_desired_workload_is_refused_and_an_impossible_one_retried) {
    placed_cluster pc(13);
    for (int i = 0; i < 3; ++i) pc.add(1000, "z");
    ASSERT_TRUE(pc.c.net.run_until([&] { return pc.everyone_published(3); }, pc.c.net.now() + 60s));
    pc.feed(0);
    auto bad = web("bad", 1, -1);
    auto refused = pc.at(0)->want(bad);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().describe().find("cpu"), std::string::npos) << refused.error().describe();
    ASSERT_TRUE(pc.at(0)->want(web("huge", 1, 5000)));
    pc.keep_feeding(0);
    pc.c.net.run_for(10s);
    EXPECT_TRUE(pc.at(0)->running().empty());
    EXPECT_GE(pc.at(0)->stats().attempts, 2u) << "retried";
    EXPECT_TRUE(pc.held("huge").empty());
}

} // namespace
