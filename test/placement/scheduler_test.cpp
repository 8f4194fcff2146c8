#include <swarm/placement/scheduler.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

namespace sp = swarm::placement;

namespace {

constexpr std::int64_t gib = std::int64_t{1} << 30;

sp::node make_node(std::string id, std::int64_t cpu = 4000, std::int64_t mem = 8 * gib,
                   std::vector<std::pair<std::string, std::string>> labels = {}) {
    sp::node n;
    n.id = std::move(id);
    n.capacity.cpu_millis = cpu;
    n.capacity.memory_bytes = mem;
    n.capacity.disk_bytes = 100 * gib;
    n.labels = std::move(labels);
    return n;
}

sp::workload make_workload(std::string id, std::uint32_t count, std::int64_t cpu = 1000, std::int64_t mem = gib) {
    sp::workload w;
    w.id = std::move(id);
    sp::group g;
    g.name = "main";
    g.count = count;
    g.demand.cpu_millis = cpu;
    g.demand.memory_bytes = mem;
    w.groups.push_back(std::move(g));
    return w;
}

sp::scheduler make_scheduler(const sp::cluster& c, std::uint64_t seed = 1) {
    sp::scheduler_config cfg;
    cfg.seed = seed;
    auto s = sp::scheduler::create(c, cfg);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().describe());
    return std::move(s.value());
}

sp::plan run(sp::scheduler& s, const sp::workload& w, const sp::admission* admit = nullptr) {
    auto p = s.schedule(std::span(&w, 1), admit);
    EXPECT_TRUE(p.has_value()) << (p ? "" : p.error().describe());
    return p ? std::move(p.value()) : sp::plan{};
}

std::multiset<std::string> nodes_of(const sp::plan& p) {
    std::multiset<std::string> out;
    for (const auto& a : p.assignments) out.insert(a.node);
    return out;
}

std::map<std::string, int> count_by_node(const sp::plan& p) {
    std::map<std::string, int> out;
    for (const auto& a : p.assignments) ++out[a.node];
    return out;
}

// Five nodes with a version label, a region and, on some, a "ssd" label.
sp::cluster labelled_cluster() {
    sp::cluster c;
    c.nodes.push_back(make_node("n1", 4000, 8 * gib, {{"region", "eu"}, {"version", "1.2.0"}, {"ssd", "yes"}}));
    c.nodes.push_back(make_node("n2", 4000, 8 * gib, {{"region", "eu"}, {"version", "1.10"}}));
    c.nodes.push_back(make_node("n3", 4000, 8 * gib, {{"region", "us"}, {"version", "v2.0.1-rc1"}, {"ssd", "yes"}}));
    c.nodes.push_back(make_node("n4", 4000, 8 * gib, {{"region", "ap"}, {"version", "0.9"}}));
    c.nodes.push_back(make_node("n5", 4000, 8 * gib, {{"region", "us-east"}}));
    return c;
}

struct op_case {
    const char* name;
    sp::constraint c;
    std::set<std::string> expected;
};

void PrintTo(const op_case& c, std::ostream* os) { *os << c.name; }

class constraint_operators : public ::testing::TestWithParam<op_case> {};

TEST_P(constraint_operators, places_only_on_matching_nodes) {
    const auto& param = GetParam();
    auto s = make_scheduler(labelled_cluster());
    auto w = make_workload("w", 5);
    w.groups[0].constraints.push_back(param.c);
    w.groups[0].anti_affinities.push_back({"", 1}); // one per node, so every matching node gets exactly one
    const auto p = run(s, w);
    std::set<std::string> got;
    for (const auto& a : p.assignments) got.insert(a.node);
    EXPECT_EQ(got, param.expected);
    EXPECT_EQ(p.unplaced.size(), 5 - param.expected.size());
    for (const auto& e : p.unplaced) {
        const bool constraint_counted = std::any_of(e.filters.begin(), e.filters.end(), [&](const sp::filter_count& f) {
            return f.nodes == 5 - param.expected.size() && f.filter.find(param.c.label) != std::string::npos;
        });
        EXPECT_TRUE(constraint_counted || param.expected.size() == 5) << e.summary;
    }
}

using op = sp::constraint_op;
INSTANTIATE_TEST_SUITE_P(
    all, constraint_operators,
    ::testing::Values(op_case{"equals", {"region", op::equals, {"eu"}}, {"n1", "n2"}},
                      op_case{"not_equals", {"region", op::not_equals, {"eu"}}, {"n3", "n4", "n5"}},
                      op_case{"in", {"region", op::in, {"us", "ap"}}, {"n3", "n4"}},
                      op_case{"not_in", {"region", op::not_in, {"us", "ap"}}, {"n1", "n2", "n5"}},
                      op_case{"regex", {"region", op::regex, {"us.*"}}, {"n3", "n5"}},
                      op_case{"version_eq", {"version", op::version_eq, {"1.2"}}, {"n1"}},
                      op_case{"version_ne", {"version", op::version_ne, {"1.2"}}, {"n2", "n3", "n4"}},
                      op_case{"version_lt", {"version", op::version_lt, {"1.10"}}, {"n1", "n4"}},
                      op_case{"version_le", {"version", op::version_le, {"1.10"}}, {"n1", "n2", "n4"}},
                      op_case{"version_gt", {"version", op::version_gt, {"1.2"}}, {"n2", "n3"}},
                      op_case{"version_ge", {"version", op::version_ge, {"2.0.1"}}, {"n3"}},
                      op_case{"exists", {"ssd", op::exists, {}}, {"n1", "n3"}},
                      op_case{"not_exists", {"ssd", op::not_exists, {}}, {"n2", "n4", "n5"}}),
    [](const auto& test_info) { return std::string(test_info.param.name); });

TEST(placement, gpu_model_and_memory_filter_nodes) {
    sp::cluster c;
    auto a = make_node("a100", 8000, 64 * gib);
    a.capacity.gpus = 4;
    a.gpu_model = "A100";
    a.gpu_memory_bytes = 80 * gib;
    auto small = a;
    small.id = "a100-40";
    small.gpu_memory_bytes = 40 * gib;
    auto t4 = a;
    t4.id = "t4";
    t4.gpu_model = "T4";
    c.nodes = {t4, small, a};
    auto s = make_scheduler(c);
    auto w = make_workload("infer", 2);
    w.groups[0].demand.gpus = 2;
    w.groups[0].gpu_model = "A100";
    w.groups[0].min_gpu_memory_bytes = 48 * gib;
    auto p = run(s, w);
    EXPECT_EQ(nodes_of(p), (std::multiset<std::string>{"a100", "a100"}));
    // The node is now out of GPUs: the explanation names the dimension and the filters.
    auto more = make_workload("infer2", 1);
    more.groups[0].demand.gpus = 1;
    more.groups[0].gpu_model = "A100";
    more.groups[0].min_gpu_memory_bytes = 48 * gib;
    p = run(s, more);
    ASSERT_EQ(p.unplaced.size(), 1u);
    const auto& e = p.unplaced[0];
    ASSERT_EQ(e.exhausted.size(), 1u);
    EXPECT_EQ(e.exhausted[0].filter, "gpus");
    EXPECT_EQ(e.exhausted[0].nodes, 1u);
    ASSERT_EQ(e.filters.size(), 2u);
    EXPECT_EQ(e.filters[0].filter, "gpu model A100");
    EXPECT_EQ(e.filters[0].nodes, 1u);
    EXPECT_NE(e.filters[1].filter.find("gpu memory"), std::string::npos);
    EXPECT_EQ(e.filters[1].nodes, 1u);
}

TEST(placement, explanation_names_the_exhausted_dimension) {
    sp::cluster c;
    c.nodes = {make_node("a", 4000, 2 * gib), make_node("b", 4000, 2 * gib), make_node("c", 1000, 64 * gib)};
    auto s = make_scheduler(c);
    auto p = run(s, make_workload("w", 5, 2000, gib));
    EXPECT_EQ(p.assignments.size(), 4u);
    ASSERT_EQ(p.unplaced.size(), 1u);
    const auto& e = p.unplaced[0];
    EXPECT_EQ(e.nodes_total, 3u);
    ASSERT_EQ(e.filters.size(), 1u); // c is too small for 2000 millicores
    EXPECT_EQ(e.filters[0].filter, "total cpu_millis below the demand of 2000");
    ASSERT_EQ(e.exhausted.size(), 2u);
    EXPECT_EQ(e.exhausted[0].filter, "cpu_millis");
    EXPECT_EQ(e.exhausted[0].nodes, 2u);
    EXPECT_EQ(e.exhausted[1].filter, "memory_bytes");
    EXPECT_NE(e.summary.find("2 of 3 nodes pass the filters"), std::string::npos) << e.summary;
}

TEST(placement, unknown_device_and_device_capacity) {
    sp::cluster c;
    auto n = make_node("fpga-node");
    n.capacity.devices = {{"fpga", 2}};
    c.nodes = {n, make_node("plain")};
    auto s = make_scheduler(c);
    auto w = make_workload("w", 3, 100, 1);
    w.groups[0].demand.devices = {{"fpga", 1}};
    auto p = run(s, w);
    EXPECT_EQ(nodes_of(p), (std::multiset<std::string>{"fpga-node", "fpga-node"}));
    ASSERT_EQ(p.unplaced.size(), 1u);
    ASSERT_EQ(p.unplaced[0].exhausted.size(), 1u);
    EXPECT_EQ(p.unplaced[0].exhausted[0].filter, "device fpga");
    auto w2 = make_workload("w2", 1, 100, 1);
    w2.groups[0].demand.devices = {{"tpu", 1}};
    p = run(s, w2);
    ASSERT_EQ(p.unplaced.size(), 1u);
    ASSERT_EQ(p.unplaced[0].filters.size(), 1u);
    EXPECT_EQ(p.unplaced[0].filters[0].filter, "device tpu on no node");
    EXPECT_EQ(p.unplaced[0].filters[0].nodes, 2u);
}

TEST(placement, affinity_attracts_and_repels) {
    auto s = make_scheduler(labelled_cluster());
    auto w = make_workload("w", 1);
    w.groups[0].affinities.push_back({{"ssd", op::exists, {}}, 50});
    w.groups[0].affinities.push_back({{"region", op::equals, {"us"}}, -100});
    w.weights.binpack = 0.01;
    auto p = run(s, w);
    ASSERT_EQ(p.assignments.size(), 1u);
    EXPECT_EQ(p.assignments[0].node, "n1"); // has ssd, not in us
}

TEST(placement, anti_affinity_distinct_hosts_and_per_label_limit) {
    sp::cluster c;
    for (int i = 0; i < 6; ++i) c.nodes.push_back(make_node("n" + std::to_string(i), 16000, 64 * gib, {{"rack", i < 3 ? "r1" : "r2"}}));
    auto s = make_scheduler(c);
    auto w = make_workload("distinct", 6);
    w.groups[0].anti_affinities.push_back({"", 1});
    auto p = run(s, w);
    EXPECT_EQ(count_by_node(p).size(), 6u); // binpack would otherwise put all six on one node
    auto racks = make_workload("per-rack", 5);
    racks.groups[0].anti_affinities.push_back({"rack", 2});
    p = run(s, racks);
    EXPECT_EQ(p.assignments.size(), 4u);
    ASSERT_EQ(p.unplaced.size(), 1u);
    EXPECT_EQ(p.unplaced[0].anti_affinity_rejected, 6u);
}

TEST(placement, spread_over_label_is_even) {
    sp::cluster c;
    for (int i = 0; i < 30; ++i)
        c.nodes.push_back(make_node("n" + std::to_string(i), 16000, 64 * gib, {{"zone", "z" + std::to_string(i % 3)}}));
    auto s = make_scheduler(c);
    auto w = make_workload("w", 31, 500, gib);
    w.groups[0].spread_over = sp::spread{"zone", {}};
    auto p = run(s, w);
    ASSERT_EQ(p.assignments.size(), 31u);
    std::map<std::string, int> per_zone;
    for (const auto& a : p.assignments) per_zone[c.nodes[std::stoul(a.node.substr(1))].labels[0].second]++;
    ASSERT_EQ(per_zone.size(), 3u);
    int lo = 100, hi = 0;
    for (auto& [z, k] : per_zone) lo = std::min(lo, k), hi = std::max(hi, k);
    EXPECT_LE(hi - lo, 1);
}

TEST(placement, spread_follows_target_percentages) {
    sp::cluster c;
    for (int i = 0; i < 20; ++i)
        c.nodes.push_back(make_node("n" + std::to_string(i), 64000, 256 * gib, {{"zone", i % 2 ? "b" : "a"}}));
    auto s = make_scheduler(c);
    auto w = make_workload("w", 100, 100, 1);
    w.groups[0].spread_over = sp::spread{"zone", {{"a", 70}}};
    auto p = run(s, w);
    ASSERT_EQ(p.assignments.size(), 100u);
    int in_a = 0;
    for (const auto& a : p.assignments) in_a += std::stoi(a.node.substr(1)) % 2 == 0;
    EXPECT_EQ(in_a, 70);
}

TEST(placement, binpack_fills_nodes_and_spread_weight_empties_them) {
    sp::cluster c;
    for (int i = 0; i < 8; ++i) c.nodes.push_back(make_node("n" + std::to_string(i)));
    auto packed = make_scheduler(c);
    auto p = run(packed, make_workload("w", 8));
    EXPECT_EQ(count_by_node(p).size(), 2u); // 4 per node of 4000 millicores
    auto spread = make_scheduler(c);
    auto w = make_workload("w", 8);
    w.weights.binpack = 0;
    w.weights.spread = 1;
    p = run(spread, w);
    EXPECT_EQ(count_by_node(p).size(), 8u);
}

TEST(placement, cost_carbon_load_and_locality_steer_choice) {
    sp::cluster c;
    for (int i = 0; i < 4; ++i) {
        auto n = make_node("n" + std::to_string(i), 4000, 8 * gib, {{"zone", "z" + std::to_string(i)}});
        n.price_per_hour = i == 2 ? 0.1 : 1.0;
        n.carbon_g_per_kwh = i == 1 ? 10 : 400;
        n.load = i == 3 ? 0.0 : 0.9;
        c.nodes.push_back(n);
    }
    c.content.push_back({"model-blob", "n0"});
    auto pick = [&](auto set_weight) {
        auto s = make_scheduler(c);
        auto w = make_workload("w", 1);
        w.weights.binpack = 0;
        set_weight(w);
        auto p = run(s, w);
        return p.assignments.empty() ? std::string() : p.assignments[0].node;
    };
    EXPECT_EQ(pick([](sp::workload& w) { w.weights.cost = 1; }), "n2");
    EXPECT_EQ(pick([](sp::workload& w) { w.weights.carbon = 1; }), "n1");
    EXPECT_EQ(pick([](sp::workload& w) { w.weights.load = 1; }), "n3");
    EXPECT_EQ(pick([](sp::workload& w) { w.weights.locality = 1, w.near.near_content = {"model-blob"}; }), "n0");
    EXPECT_EQ(pick([](sp::workload& w) { w.weights.locality = 1, w.near.near_zones = {"z3"}; }), "n3");
    EXPECT_EQ(pick([](sp::workload& w) { w.weights.locality = 1, w.near.near_nodes = {"n1"}; }), "n1");
}

TEST(placement, gang_is_all_or_nothing) {
    sp::cluster c;
    c.nodes = {make_node("a"), make_node("b")};
    auto s = make_scheduler(c);
    auto w = make_workload("gang", 3, 1000, gib);
    w.gang = true;
    sp::group big;
    big.name = "big";
    big.count = 2;
    big.demand.cpu_millis = 3500; // only one fits once the small ones are in
    w.groups.push_back(big);
    auto p = run(s, w);
    EXPECT_TRUE(p.assignments.empty());
    EXPECT_EQ(p.unplaced.size(), 5u);
    EXPECT_EQ(s.free_on("a").value().cpu_millis, 4000);
    EXPECT_EQ(s.free_on("b").value().cpu_millis, 4000);
    const auto cause = std::count_if(p.unplaced.begin(), p.unplaced.end(),
                                     [](const auto& e) { return e.summary.find("all or nothing") == std::string::npos; });
    EXPECT_EQ(cause, 1); // one real explanation, the rest point at it
    w.groups[1].count = 1;
    p = run(s, w);
    EXPECT_EQ(p.assignments.size(), 4u);
    EXPECT_TRUE(p.unplaced.empty());
}

sp::cluster busy_cluster() {
    sp::cluster c;
    auto a = make_node("a");
    a.allocations.push_back({"a-low", "batch", "g", 1, {3000, gib, 0, 0, {}}});
    auto b = make_node("b");
    b.allocations.push_back({"b-low1", "batch", "g", 1, {1500, gib, 0, 0, {}}});
    b.allocations.push_back({"b-low2", "batch", "g", 2, {1500, gib, 0, 0, {}}});
    auto c2 = make_node("c");
    c2.allocations.push_back({"c-high", "prod", "g", 10, {4000, gib, 0, 0, {}}});
    c.nodes = {a, b, c2};
    return c;
}

TEST(placement, preemption_evicts_least_disruptive_lower_priority_set) {
    auto s = make_scheduler(busy_cluster());
    auto w = make_workload("urgent", 1, 3000, gib);
    w.priority = 5;
    w.allow_preemption = true;
    auto p = run(s, w);
    ASSERT_EQ(p.assignments.size(), 1u);
    EXPECT_EQ(p.assignments[0].node, "a"); // one eviction of priority 1 beats two on b
    ASSERT_EQ(p.evictions.size(), 1u);
    EXPECT_EQ(p.evictions[0].allocation, "a-low");
    EXPECT_EQ(p.evictions[0].for_workload, "urgent");
    EXPECT_EQ(s.free_on("a").value().cpu_millis, 1000);
}

TEST(placement, preemption_never_touches_equal_or_higher_priority) {
    auto s = make_scheduler(busy_cluster());
    auto w = make_workload("peer", 1, 4000, gib);
    w.priority = 1; // equal to a-low and b-low1, lower than the rest
    w.allow_preemption = true;
    auto p = run(s, w);
    EXPECT_TRUE(p.assignments.empty());
    EXPECT_TRUE(p.evictions.empty());
    ASSERT_EQ(p.unplaced.size(), 1u);
    EXPECT_FALSE(p.unplaced[0].preemption.has_value());
}

TEST(placement, explanation_says_what_preemption_would_free) {
    auto s = make_scheduler(busy_cluster());
    auto w = make_workload("polite", 1, 3000, gib);
    w.priority = 5;
    auto p = run(s, w);
    ASSERT_EQ(p.unplaced.size(), 1u);
    const auto& e = p.unplaced[0];
    ASSERT_TRUE(e.preemption.has_value());
    EXPECT_EQ(e.preemption->node, "a");
    EXPECT_EQ(e.preemption->allocations, std::vector<std::string>{"a-low"});
    EXPECT_EQ(e.preemption->freed.cpu_millis, 3000);
    EXPECT_NE(e.summary.find("would make room"), std::string::npos) << e.summary;
    EXPECT_EQ(s.free_on("a").value().cpu_millis, 1000); // nothing evicted
}

TEST(placement, admission_refusal_moves_to_next_best) {
    sp::cluster c;
    for (int i = 0; i < 4; ++i) c.nodes.push_back(make_node("n" + std::to_string(i)));
    auto s = make_scheduler(c);
    // The first instance lands somewhere; that node's resources then "change" and it refuses from now on.
    std::string stale;
    int refusals = 0;
    sp::admission admit;
    admit.admit = [&](const sp::proposal& p) {
        if (stale.empty()) {
            stale = *p.node;
            return true;
        }
        if (*p.node == stale) {
            ++refusals;
            return false;
        }
        return true;
    };
    auto p = run(s, make_workload("w", 3), &admit);
    ASSERT_EQ(p.assignments.size(), 3u);
    EXPECT_EQ(count_by_node(p)[stale], 1);
    EXPECT_GE(refusals, 1);
}

TEST(placement, admission_refusing_everything_is_explained_and_gang_released) {
    sp::cluster c;
    c.nodes = {make_node("a"), make_node("b")};
    auto s = make_scheduler(c);
    std::set<std::string> held;
    sp::admission admit;
    admit.admit = [&](const sp::proposal& p) {
        if (*p.node == "b") return false;
        held.insert(p.grp->name + std::to_string(p.instance));
        return true;
    };
    admit.release = [&](const sp::proposal& p) { held.erase(p.grp->name + std::to_string(p.instance)); };
    auto w = make_workload("g", 5); // 4 fit on a, the fifth needs b
    w.gang = true;
    auto p = run(s, w, &admit);
    EXPECT_TRUE(p.assignments.empty());
    EXPECT_TRUE(held.empty()); // every admitted proposal was released
    const auto it = std::find_if(p.unplaced.begin(), p.unplaced.end(), [](const auto& e) { return e.admission_refused > 0; });
    ASSERT_NE(it, p.unplaced.end());
    EXPECT_NE(it->summary.find("admission refused"), std::string::npos);
}

TEST(placement, same_seed_same_plan) {
    sp::cluster c;
    for (int i = 0; i < 200; ++i)
        c.nodes.push_back(make_node("n" + std::to_string(i), 4000 + 1000 * (i % 3), 8 * gib, {{"rack", "r" + std::to_string(i % 7)}}));
    std::vector<sp::workload> ws;
    ws.push_back(make_workload("a", 150, 700, gib / 2));
    ws.push_back(make_workload("b", 90, 1300, gib));
    ws[1].groups[0].spread_over = sp::spread{"rack", {}};
    ws.push_back(make_workload("c", 40, 300, gib / 4));
    ws[2].groups[0].anti_affinities.push_back({"", 1});
    auto hash_for = [&](std::uint64_t seed) {
        auto s = make_scheduler(c, seed);
        auto p = s.schedule(ws);
        EXPECT_TRUE(p.has_value());
        return p.value().hash();
    };
    EXPECT_EQ(hash_for(7), hash_for(7));
    EXPECT_NE(hash_for(7), hash_for(8)); // ties are broken by the seed
}

TEST(placement, successive_calls_see_earlier_placements) {
    sp::cluster c;
    c.nodes = {make_node("a")};
    auto s = make_scheduler(c);
    EXPECT_EQ(run(s, make_workload("first", 3)).assignments.size(), 3u);
    auto p = run(s, make_workload("second", 3));
    EXPECT_EQ(p.assignments.size(), 1u);
    EXPECT_EQ(p.unplaced.size(), 2u);
    EXPECT_EQ(p.unplaced[0].instance, 1u);
    EXPECT_EQ(p.unplaced[1].instance, 2u);
    EXPECT_EQ(p.unplaced[1].summary, p.unplaced[0].summary);
}

TEST(placement, largest_first_packs_a_batch_onto_fewer_nodes_and_puts_priority_first) {
    sp::cluster c;
    for (int i = 0; i < 6; ++i) c.nodes.push_back(make_node("n" + std::to_string(i), 1000, 8 * gib));
    std::vector<sp::workload> batch = {make_workload("small", 2, 400, gib / 8), make_workload("large", 2, 600, gib / 8)};
    auto machines = [&](bool largest_first) {
        sp::scheduler_config cfg;
        cfg.seed = 3;
        cfg.largest_first = largest_first;
        auto s = sp::scheduler::create(c, cfg).value();
        auto p = s.schedule(batch).value();
        EXPECT_EQ(p.assignments.size(), 4u);
        return count_by_node(p).size();
    };
    EXPECT_EQ(machines(false), 3u); // 400 + 400 share a node, then each 600 needs its own
    EXPECT_EQ(machines(true), 2u);  // 600 + 400 twice

    auto urgent = make_workload("urgent", 1, 100);
    urgent.priority = 9;
    batch.push_back(urgent);
    sp::scheduler_config cfg;
    cfg.largest_first = true;
    auto s = sp::scheduler::create(c, cfg).value();
    auto p = s.schedule(batch).value();
    ASSERT_EQ(p.assignments.size(), 5u);
    EXPECT_EQ(p.assignments.front().workload, "urgent");
    EXPECT_EQ(p.assignments[1].workload, "large");
}

TEST(placement, rebalance_pack_frees_nodes_within_budget) {
    sp::cluster c;
    for (int i = 0; i < 4; ++i) {
        auto n = make_node("n" + std::to_string(i));
        n.allocations.push_back({"x" + std::to_string(i), "w", "g", 0, {1000, gib, 0, 0, {}}});
        c.nodes.push_back(n);
    }
    auto s = make_scheduler(c);
    sp::rebalance_config rc;
    rc.move_budget = 2;
    auto r = s.rebalance(rc);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->moves.size(), 2u);
    EXPECT_EQ(r->nodes_freed, 2u);
    int empty = 0;
    for (int i = 0; i < 4; ++i) empty += s.free_on("n" + std::to_string(i)).value().cpu_millis == 4000;
    EXPECT_EQ(empty, 2);
    rc.move_budget = 10;
    r = s.rebalance(rc);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->nodes_freed, 1u); // the remaining two fit on one node
}

TEST(placement, rebalance_keeps_allocations_on_like_nodes_and_spreads) {
    sp::cluster c;
    auto hot = make_node("hot", 4000, 8 * gib, {{"pool", "a"}});
    for (int i = 0; i < 4; ++i) hot.allocations.push_back({"x" + std::to_string(i), "w", "g", 0, {1000, gib, 0, 0, {}}});
    c.nodes = {hot, make_node("cold", 4000, 8 * gib, {{"pool", "a"}}), make_node("other", 4000, 8 * gib, {{"pool", "b"}})};
    auto s = make_scheduler(c);
    sp::rebalance_config rc;
    rc.target = sp::rebalance_config::goal::spread;
    auto r = s.rebalance(rc);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->moves.size(), 2u);
    for (const auto& m : r->moves) EXPECT_EQ(m.to, "cold");
    EXPECT_LT(r->utilisation_spread_after, r->utilisation_spread_before);
}

TEST(placement, rebalance_never_stacks_instances_of_one_group) {
    sp::cluster c;
    for (int i = 0; i < 3; ++i) {
        auto n = make_node("n" + std::to_string(i));
        n.allocations.push_back({"x" + std::to_string(i), "db", "replica", 0, {1000, gib, 0, 0, {}}, 1});
        c.nodes.push_back(n);
    }
    auto s = make_scheduler(c);
    auto r = s.rebalance({});
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->moves.empty()); // packing would put replicas together and lose their separation
    // Replicas the scheduler placed with distinct hosts carry that limit too; without it they get packed.
    auto placed_apart = [&](bool distinct) {
        sp::cluster two;
        two.nodes = {make_node("a"), make_node("b")};
        auto fresh = make_scheduler(two);
        auto w = make_workload("cache", 2);
        w.weights.binpack = 0;
        w.weights.spread = 1; // lands one per node either way
        if (distinct) w.groups[0].anti_affinities.push_back({"", 1});
        EXPECT_EQ(count_by_node(run(fresh, w)).size(), 2u);
        return fresh.rebalance({}).value();
    };
    EXPECT_TRUE(placed_apart(true).moves.empty());
    const auto packed = placed_apart(false);
    EXPECT_EQ(packed.moves.size(), 1u);
    EXPECT_EQ(packed.nodes_freed, 1u);
}

// Bad input: a clear error or explanation, never a crash, never half a gang.

TEST(placement_input, rejects_bad_workloads_with_the_field_named) {
    auto s = make_scheduler(labelled_cluster());
    auto expect_error = [&](sp::workload w, std::string_view needle) {
        auto p = s.schedule(std::span(&w, 1));
        ASSERT_FALSE(p.has_value()) << needle;
        EXPECT_EQ(p.error(), swarm::errc::invalid_argument);
        EXPECT_NE(p.error().message.find(needle), std::string::npos) << p.error().message;
    };
    expect_error(make_workload("w", 1, -5), "cpu_millis is negative");
    expect_error(make_workload("w", 1, 1, std::int64_t{1} << 60), "memory_bytes is absurdly large");
    expect_error(make_workload("w", 0), "count is zero");
    expect_error(make_workload("", 1), "id is empty");
    auto bad_regex = make_workload("w", 1);
    bad_regex.groups[0].constraints.push_back({"region", op::regex, {"(unclosed"}});
    expect_error(bad_regex, "regex '(unclosed'");
    auto bad_version = make_workload("w", 1);
    bad_version.groups[0].constraints.push_back({"version", op::version_ge, {"one.two"}});
    expect_error(bad_version, "'one.two' on label 'version' is not a version");
    auto no_value = make_workload("w", 1);
    no_value.groups[0].constraints.push_back({"region", op::in, {}});
    expect_error(no_value, "needs at least one value");
    auto spread_over = make_workload("w", 1);
    spread_over.groups[0].spread_over = sp::spread{"zone", {{"a", 80}, {"b", 30}}};
    expect_error(spread_over, "more than 100%");
    auto weight = make_workload("w", 1);
    weight.weights.cost = -1;
    expect_error(weight, "weight cost");
    auto near = make_workload("w", 1);
    near.near.near_nodes = {"ghost"};
    expect_error(near, "unknown node 'ghost'");
    auto dup = make_workload("w", 1);
    dup.groups.push_back(dup.groups[0]);
    expect_error(dup, "group 'main' appears twice");
}

TEST(placement_input, invalid_workload_places_nothing) {
    auto s = make_scheduler(labelled_cluster());
    std::vector<sp::workload> ws{make_workload("good", 1), make_workload("bad", 1, -1)};
    EXPECT_FALSE(s.schedule(ws).has_value());
    EXPECT_EQ(s.free_on("n1").value().cpu_millis, 4000);
}

TEST(placement_input, rejects_bad_clusters) {
    auto expect_error = [](sp::cluster c, std::string_view needle) {
        auto s = sp::scheduler::create(c);
        ASSERT_FALSE(s.has_value()) << needle;
        EXPECT_NE(s.error().message.find(needle), std::string::npos) << s.error().message;
    };
    sp::cluster dup;
    dup.nodes = {make_node("a"), make_node("a")};
    expect_error(dup, "node id 'a' appears twice");
    sp::cluster negative;
    negative.nodes = {make_node("a", -1)};
    expect_error(negative, "node 'a': cpu_millis is negative");
    sp::cluster label;
    label.nodes = {make_node("a", 1, 1, {{"k", "1"}, {"k", "2"}})};
    expect_error(label, "label 'k' appears twice");
    sp::cluster load;
    load.nodes = {make_node("a")};
    load.nodes[0].load = 3;
    expect_error(load, "load must be in [0, 1]");
    sp::cluster content;
    content.nodes = {make_node("a")};
    content.content.push_back({"blob", "zzz"});
    expect_error(content, "unknown node 'zzz'");
    sp::scheduler_config cfg;
    cfg.sample_fresh = 0;
    EXPECT_FALSE(cfg.validate().has_value());
    EXPECT_FALSE(sp::scheduler::create(sp::cluster{}, cfg).has_value());
}

TEST(placement_input, unknown_label_is_explained) {
    auto s = make_scheduler(labelled_cluster());
    auto w = make_workload("w", 1);
    w.groups[0].constraints.push_back({"colour", op::equals, {"blue"}});
    auto p = run(s, w);
    ASSERT_EQ(p.unplaced.size(), 1u);
    EXPECT_NE(p.unplaced[0].summary.find("no node has label 'colour'"), std::string::npos) << p.unplaced[0].summary;
    EXPECT_EQ(p.unplaced[0].filters.at(0).nodes, 5u);
}

TEST(placement_input, soft_terms_on_unknown_labels_are_warned_about) {
    auto s = make_scheduler(labelled_cluster());
    auto w = make_workload("w", 2);
    w.groups[0].spread_over = sp::spread{"colour", {}};
    w.groups[0].anti_affinities.push_back({"shape", 1});
    auto p = run(s, w);
    EXPECT_EQ(p.assignments.size(), 2u);
    ASSERT_EQ(p.warnings.size(), 2u);
    EXPECT_NE(p.warnings[0].find("no node has label 'shape', so its anti-affinity has no effect"), std::string::npos) << p.warnings[0];
    EXPECT_NE(p.warnings[1].find("no node has label 'colour', so its spread has no effect"), std::string::npos) << p.warnings[1];
}

TEST(placement_input, empty_cluster_and_impossible_workload_are_explained) {
    auto empty = make_scheduler(sp::cluster{});
    auto w = make_workload("w", 2);
    w.gang = true;
    auto p = run(empty, w);
    ASSERT_EQ(p.unplaced.size(), 2u);
    EXPECT_TRUE(p.assignments.empty());
    EXPECT_EQ(p.unplaced[0].summary, "the cluster has no nodes");
    auto s = make_scheduler(labelled_cluster());
    p = run(s, make_workload("huge", 1, 1'000'000));
    ASSERT_EQ(p.unplaced.size(), 1u);
    EXPECT_NE(p.unplaced[0].summary.find("total cpu_millis below the demand"), std::string::npos) << p.unplaced[0].summary;
}

} // namespace
