// Admission on the target node under the simulator: stale views, races for the last slot, gangs, leases,
// preemption, unreachable targets and garbage.
#include <swarm/placement/admission.hpp>
#include <swarm/sim/network.hpp>

#include <gtest/gtest.h>

#include <set>

namespace {

using namespace std::chrono_literals;
using namespace swarm::placement;
namespace sim = swarm::sim;

constexpr std::uint16_t port = 7300;

node make_node(std::string id, std::int64_t cpu_millis) {
    node n;
    n.id = std::move(id);
    n.capacity.cpu_millis = cpu_millis;
    n.capacity.memory_bytes = std::int64_t{64} << 30;
    n.capacity.disk_bytes = std::int64_t{1} << 40;
    n.labels = {{"zone", "z1"}};
    return n;
}

allocation busy(std::string id, std::int64_t cpu_millis, std::int32_t priority = 0) {
    allocation a;
    a.id = std::move(id);
    a.workload = "other";
    a.group = "g";
    a.priority = priority;
    a.demand.cpu_millis = cpu_millis;
    return a;
}

workload make_workload(std::string id, std::uint32_t count, std::int64_t cpu_millis, bool gang = false) {
    workload w;
    w.id = std::move(id);
    w.gang = gang;
    group g;
    g.name = "web";
    g.count = count;
    g.demand.cpu_millis = cpu_millis;
    g.demand.memory_bytes = 1 << 20;
    w.groups.push_back(g);
    return w;
}

/// A mesh of admission nodes; `truth` is what each node really holds, `view` what schedulers believe.
struct mesh {
    sim::network net;
    std::vector<node> view;
    std::map<node_key, swarm::net::endpoint> addresses;
    std::optional<admission_security> security; // for the nodes added next

    explicit mesh(std::uint64_t seed) : net(make(seed)) {}
    static sim::network make(std::uint64_t seed) {
        sim::network_config c;
        c.seed = seed;
        c.default_link.latency = 1ms;
        c.default_link.jitter = 300us;
        c.default_link.distribution = sim::latency_distribution::uniform;
        return std::move(sim::network::create(c).value());
    }

    sim::node_id add(node truth, std::optional<node> believed = std::nullopt) {
        const auto id = net.add_node();
        view.push_back(believed ? *believed : truth);
        addresses[truth.id] = net.endpoint_of(id, port);
        admission_config cfg;
        cfg.reservation_lease = 5s;
        auto sec = security;
        if (sec) sec->sender = id + 1;
        EXPECT_TRUE(net.add_protocol(id, port, [truth, cfg, sec](swarm::net::transport& t) {
            return std::make_unique<admission_node>(t, truth, cfg, sec);
        }));
        return id;
    }

    admission_node* at(sim::node_id id) { return net.protocol_of<admission_node>(id, port); }

    std::optional<placement_outcome> place(sim::node_id scheduler, workload w) {
        std::optional<placement_outcome> out;
        at(scheduler)->set_view(cluster{view, {}}, addresses);
        at(scheduler)->place(std::move(w), [&](const placement_outcome& o) { out = o; });
        net.run_until([&] { return out.has_value(); }, net.now() + 60s);
        return out;
    }
};

TEST(admission, places_through_the_targets_and_they_record_it) {
    mesh m(1);
    const auto a = m.add(make_node("a", 4000));
    const auto b = m.add(make_node("b", 4000));
    const auto scheduler = m.add(make_node("s", 0));
    auto out = m.place(scheduler, make_workload("api", 3, 1000));
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->placed.size(), 3u);
    EXPECT_TRUE(out->unplaced.empty());
    EXPECT_EQ(out->refusals, 0u);
    EXPECT_EQ(m.at(a)->self().allocations.size() + m.at(b)->self().allocations.size(), 3u);
}

TEST(admission, a_stale_view_is_corrected_by_a_refusal_and_the_next_best_wins) {
    mesh m(2);
    auto full = make_node("a", 4000);
    full.allocations.push_back(busy("x", 4000));
    const auto a = m.add(full, make_node("a", 4000)); // the scheduler thinks a is empty
    auto b_node = make_node("b", 4000);
    b_node.allocations.push_back(busy("y", 1000));    // a is the better bin-pack in the stale view... or b
    const auto b = m.add(b_node);
    const auto scheduler = m.add(make_node("s", 0));
    auto out = m.place(scheduler, make_workload("api", 2, 1000));
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->placed.size(), 2u);
    for (const auto& p : out->placed) EXPECT_EQ(p.node, "b");
    EXPECT_EQ(m.at(a)->self().allocations.size(), 1u); // untouched: still only its own work
    EXPECT_EQ(m.at(b)->self().allocations.size(), 3u);
}

TEST(admission, two_schedulers_racing_for_the_last_slot_never_both_win) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        mesh m(seed);
        const auto target = m.add(make_node("t", 1000)); // room for exactly one
        const auto s1 = m.add(make_node("s1", 0));
        const auto s2 = m.add(make_node("s2", 0));
        std::optional<placement_outcome> o1, o2;
        for (auto [s, out, name] : {std::tuple{s1, &o1, "one"}, std::tuple{s2, &o2, "two"}}) {
            m.at(s)->set_view(cluster{m.view, {}}, m.addresses);
            m.at(s)->place(make_workload(name, 1, 1000), [out](const placement_outcome& o) { *out = o; });
        }
        m.net.run_until([&] { return o1 && o2; }, m.net.now() + 60s);
        ASSERT_TRUE(o1 && o2) << "seed " << seed;
        EXPECT_EQ(o1->placed.size() + o2->placed.size(), 1u) << "seed " << seed;
        EXPECT_EQ(m.at(target)->self().allocations.size(), 1u) << "seed " << seed;
        const auto& loser = o1->placed.empty() ? *o1 : *o2;
        ASSERT_EQ(loser.unplaced.size(), 1u);
        EXPECT_GE(loser.unplaced[0].admission_refused, 1u);
        EXPECT_FALSE(loser.unplaced[0].summary.empty());
    }
}

TEST(admission, a_gang_that_cannot_be_admitted_whole_leaves_nothing_behind) {
    mesh m(3);
    const auto a = m.add(make_node("a", 1000));
    const auto b = m.add(make_node("b", 1000));
    auto c_truth = make_node("c", 1000);
    c_truth.allocations.push_back(busy("x", 1000));
    const auto c = m.add(c_truth, make_node("c", 1000)); // looks free, is not
    const auto scheduler = m.add(make_node("s", 0));
    auto out = m.place(scheduler, make_workload("trio", 3, 1000, /*gang=*/true));
    ASSERT_TRUE(out.has_value());
    EXPECT_TRUE(out->placed.empty());
    EXPECT_EQ(out->unplaced.size(), 3u);
    m.net.run_for(1s); // the releases travel
    EXPECT_TRUE(m.at(a)->self().allocations.empty());
    EXPECT_TRUE(m.at(b)->self().allocations.empty());
    EXPECT_EQ(m.at(c)->self().allocations.size(), 1u);
}

TEST(admission, a_gang_admitted_whole_is_committed_and_outlives_its_lease) {
    mesh m(4);
    const auto a = m.add(make_node("a", 1000));
    const auto b = m.add(make_node("b", 1000));
    const auto scheduler = m.add(make_node("s", 0));
    auto out = m.place(scheduler, make_workload("pair", 2, 1000, true));
    ASSERT_TRUE(out.has_value());
    EXPECT_EQ(out->placed.size(), 2u);
    m.net.run_for(30s); // well past the 5 s reservation lease
    EXPECT_EQ(m.at(a)->self().allocations.size(), 1u);
    EXPECT_EQ(m.at(b)->self().allocations.size(), 1u);
}

TEST(admission, reservations_of_a_scheduler_that_crashed_expire) {
    mesh m(5);
    const auto a = m.add(make_node("a", 1000));
    const auto b = m.add(make_node("b", 1000));
    const auto scheduler = m.add(make_node("s", 0));
    m.at(scheduler)->set_view(cluster{m.view, {}}, m.addresses);
    m.at(scheduler)->place(make_workload("pair", 2, 1000, true), [](const placement_outcome&) {});
    m.net.run_for(2500us); // requests arrive and are reserved; the answers are on their way back
    ASSERT_TRUE(m.net.crash(scheduler));
    m.net.run_for(1s);
    EXPECT_EQ(m.at(a)->self().allocations.size() + m.at(b)->self().allocations.size(), 2u);
    m.net.run_for(10s);
    EXPECT_TRUE(m.at(a)->self().allocations.empty());
    EXPECT_TRUE(m.at(b)->self().allocations.empty());
}

TEST(admission, the_target_preempts_only_strictly_lower_priority) {
    mesh m(6);
    auto t = make_node("t", 2000);
    t.allocations.push_back(busy("batch-1", 1000, 1));
    t.allocations.push_back(busy("batch-2", 1000, 5));
    const auto target = m.add(t);
    const auto scheduler = m.add(make_node("s", 0));
    auto urgent = make_workload("urgent", 1, 1000);
    urgent.priority = 5;
    urgent.allow_preemption = true;
    auto out = m.place(scheduler, urgent);
    ASSERT_TRUE(out.has_value());
    ASSERT_EQ(out->placed.size(), 1u);
    ASSERT_EQ(out->evictions.size(), 1u);
    EXPECT_EQ(out->evictions[0].allocation, "batch-1"); // priority 5 is not strictly lower
    const auto& left = m.at(target)->self().allocations;
    EXPECT_EQ(left.size(), 2u);
    EXPECT_TRUE(std::none_of(left.begin(), left.end(), [](const allocation& x) { return x.id == "batch-1"; }));
}

TEST(admission, an_unreachable_target_is_skipped_for_the_next_best) {
    mesh m(7);
    const auto dead = m.add(make_node("a", 8000));
    m.add(make_node("b", 2000));
    const auto scheduler = m.add(make_node("s", 0));
    ASSERT_TRUE(m.net.crash(dead));
    auto out = m.place(scheduler, make_workload("api", 1, 1000));
    ASSERT_TRUE(out.has_value());
    ASSERT_EQ(out->placed.size(), 1u);
    EXPECT_EQ(out->placed[0].node, "b");
}

TEST(admission, impossible_and_invalid_workloads_are_explained) {
    mesh m(8);
    m.add(make_node("a", 1000));
    const auto scheduler = m.add(make_node("s", 0));
    auto too_big = m.place(scheduler, make_workload("huge", 1, 64000));
    ASSERT_TRUE(too_big.has_value());
    ASSERT_EQ(too_big->unplaced.size(), 1u);
    EXPECT_FALSE(too_big->unplaced[0].summary.empty());
    auto invalid = make_workload("bad", 1, -5);
    auto out = m.place(scheduler, invalid);
    ASSERT_TRUE(out.has_value());
    EXPECT_TRUE(out->placed.empty());
    ASSERT_FALSE(out->unplaced.empty());
    EXPECT_NE(out->unplaced[0].summary.find("cpu"), std::string::npos) << out->unplaced[0].summary;
}

TEST(admission, place_instances_places_only_those_named_and_explains_bad_names) {
    mesh m(12);
    const auto a = m.add(make_node("a", 8000));
    const auto scheduler = m.add(make_node("s", 0));
    std::optional<placement_outcome> out;
    m.at(scheduler)->set_view(cluster{m.view, {}}, m.addresses);
    m.at(scheduler)->place_instances(make_workload("api", 5, 1000), {{"web", {4, 1}}},
                                     [&](const placement_outcome& o) { out = o; });
    ASSERT_TRUE(m.net.run_until([&] { return out.has_value(); }, m.net.now() + 10s));
    ASSERT_EQ(out->placed.size(), 2u);
    std::set<std::string> ids;
    for (const auto& x : m.at(a)->self().allocations) ids.insert(x.id);
    EXPECT_EQ(ids, (std::set<std::string>{"api/web/1", "api/web/4"}));

    auto bad = [&](std::map<std::string, std::vector<std::uint32_t>> which) {
        std::optional<placement_outcome> o;
        m.at(scheduler)->place_instances(make_workload("api", 5, 1000), std::move(which),
                                         [&](const placement_outcome& x) { o = x; });
        EXPECT_TRUE(o.has_value()) << "completes at once";
        EXPECT_TRUE(o->placed.empty());
        EXPECT_EQ(o->unplaced.size(), 1u);
        return o->unplaced.empty() ? std::string() : o->unplaced[0].summary;
    };
    EXPECT_NE(bad({{"db", {0}}}).find("no group 'db'"), std::string::npos);
    EXPECT_NE(bad({{"web", {5}}}).find("instance 5 is not below its count 5"), std::string::npos);
    EXPECT_EQ(m.at(a)->self().allocations.size(), 2u);
}

/// Sends raw frames to a target, as a broken or hostile peer would.
class raw_client final : public swarm::net::protocol {
public:
    explicit raw_client(swarm::net::transport& t) : t_(t) {}
    void on_datagram(const swarm::net::endpoint&, std::span<const std::byte>) override {}
    void on_stream_closed(swarm::net::stream_id, boost::system::error_code) override { ++closed; }
    void send(const swarm::net::endpoint& to, std::vector<std::byte> frame) {
        auto s = t_.connect(to);
        t_.write(s, frame);
    }
    int closed = 0;

private:
    swarm::net::transport& t_;
};

TEST(admission, garbage_is_refused_and_changes_nothing) {
    mesh m(9);
    const auto target = m.add(make_node("t", 1000));
    const auto rogue = m.net.add_node();
    ASSERT_TRUE(m.net.add_protocol(rogue, port, [](swarm::net::transport& t) { return std::make_unique<raw_client>(t); }));
    m.net.run_for(1ms);
    auto* client = m.net.protocol_of<raw_client>(rogue, port);
    for (std::vector<std::byte> junk : {std::vector<std::byte>{}, std::vector<std::byte>(7, std::byte{0xff}),
                                        std::vector<std::byte>{std::byte{1}, std::byte{1}, std::byte{3}, std::byte{0},
                                                               std::byte{0}, std::byte{0}}})
        client->send(m.addresses["t"], junk);
    m.net.run_for(1s);
    EXPECT_EQ(client->closed, 3);
    EXPECT_TRUE(m.at(target)->self().allocations.empty());
}

admission_security sealed_with(std::byte key_byte, std::string label = "prod") {
    admission_security s;
    std::array<std::byte, swarm::seal::key_size> key{};
    key.fill(key_byte);
    EXPECT_TRUE(s.keys.add(key));
    s.cluster_label = std::move(label);
    return s;
}

/// Keeps what it receives and answers nothing: a man in the middle recording sealed requests.
class recorder final : public swarm::net::protocol {
public:
    explicit recorder(swarm::net::transport&) {}
    void on_datagram(const swarm::net::endpoint&, std::span<const std::byte>) override {}
    void on_stream_frame(swarm::net::stream_id, std::span<const std::byte> frame) override {
        frames.emplace_back(frame.begin(), frame.end());
    }
    std::vector<std::vector<std::byte>> frames;
};

TEST(admission, sealed_messages_place_and_a_foreign_key_or_cluster_is_dropped_and_counted) {
    mesh m(10);
    m.security = sealed_with(std::byte{1});
    const auto target = m.add(make_node("t", 4000));
    const auto friendly = m.add(make_node("s", 0));
    m.security = sealed_with(std::byte{2}); // a key the target does not hold
    const auto stranger = m.add(make_node("x", 0));
    m.security = sealed_with(std::byte{1}, "staging"); // the right key, another cluster
    const auto neighbour = m.add(make_node("y", 0));
    m.view.erase(m.view.begin() + 1, m.view.end()); // schedulers only see the target

    auto ok = m.place(friendly, make_workload("api", 1, 1000));
    ASSERT_TRUE(ok.has_value());
    EXPECT_EQ(ok->placed.size(), 1u);
    auto foreign = m.place(stranger, make_workload("intruder", 1, 1000));
    ASSERT_TRUE(foreign.has_value());
    EXPECT_TRUE(foreign->placed.empty());
    auto other = m.place(neighbour, make_workload("staging-job", 1, 1000));
    ASSERT_TRUE(other.has_value());
    EXPECT_TRUE(other->placed.empty());

    const auto& stats = m.at(target)->stats();
    EXPECT_GE(stats.dropped_by(frame_refusal::unknown_key), 1u);
    EXPECT_GE(stats.dropped_by(frame_refusal::wrong_cluster), 1u);
    EXPECT_EQ(stats.admitted, 1u);
    ASSERT_EQ(m.at(target)->self().allocations.size(), 1u);
    EXPECT_EQ(m.at(target)->self().allocations[0].workload, "api");
}

TEST(admission, sealed_garbage_unsealed_requests_and_replays_are_dropped_and_counted) {
    mesh m(11);
    m.security = sealed_with(std::byte{1});
    const auto target = m.add(make_node("t", 4000));
    const auto scheduler = m.add(make_node("s", 0));
    // The scheduler is made to send to a recorder instead of the target.
    const auto spy = m.net.add_node();
    ASSERT_TRUE(m.net.add_protocol(spy, port, [](swarm::net::transport& t) { return std::make_unique<recorder>(t); }));
    const auto real_address = m.addresses["t"];
    m.addresses["t"] = m.net.endpoint_of(spy, port);
    m.view.pop_back();
    auto out = m.place(scheduler, make_workload("api", 1, 1000));
    ASSERT_TRUE(out.has_value());
    EXPECT_TRUE(out->placed.empty()); // the recorder never answered
    auto* rec = m.net.protocol_of<recorder>(spy, port);
    ASSERT_FALSE(rec->frames.empty());

    const auto rogue = m.net.add_node();
    ASSERT_TRUE(m.net.add_protocol(rogue, port, [](swarm::net::transport& t) { return std::make_unique<raw_client>(t); }));
    m.net.run_for(1ms);
    auto* client = m.net.protocol_of<raw_client>(rogue, port);
    auto captured = rec->frames.front();
    client->send(real_address, captured); // delivered once: a genuine request, late
    m.net.run_for(100ms);
    client->send(real_address, captured); // and again: a replay
    auto forged = captured;
    forged[24] ^= std::byte{1}; // another sequence number: not a replay, but the header is authenticated
    client->send(real_address, forged);
    client->send(real_address, std::vector<std::byte>(10, std::byte{7})); // too short to be sealed
    m.net.run_for(1s);

    const auto& stats = m.at(target)->stats();
    EXPECT_EQ(stats.admitted, 1u);
    EXPECT_EQ(stats.dropped_by(frame_refusal::replayed), 1u);
    EXPECT_EQ(stats.dropped_by(frame_refusal::unsealed), 1u);
    EXPECT_EQ(stats.dropped_by(frame_refusal::authentication_failed), 1u);
    EXPECT_EQ(m.at(target)->self().allocations.size(), 1u);
}

} // namespace
