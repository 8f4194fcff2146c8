#include <swarm/placement/json.hpp>

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace sp = swarm::placement;

namespace {

const char* const cluster_text = R"({
  "nodes": [
    {"id": "a", "capacity": {"cpu_millis": 4000, "memory_bytes": 8000, "devices": {"fpga": 1}},
     "labels": {"zone": "z1"}, "price_per_hour": 1.5, "load": 0.25,
     "allocations": [{"id": "old", "workload": "batch", "priority": 1, "demand": {"cpu_millis": 3000}}]},
    {"id": "b", "capacity": {"cpu_millis": 4000, "memory_bytes": 8000}, "labels": {"zone": "z2"}}
  ],
  "content": [{"content": "blob", "node": "b"}]
})";

const char* const workloads_text = R"({
  "workloads": [
    {"id": "w", "priority": 5, "gang": true, "allow_preemption": true,
     "weights": {"binpack": 0.5, "locality": 1}, "near": {"content": ["blob"]},
     "groups": [{"name": "g", "count": 2, "demand": {"cpu_millis": 1000},
                 "constraints": [{"label": "zone", "op": "in", "values": ["z1", "z2"]}],
                 "affinities": [{"label": "zone", "op": "equals", "value": "z2", "weight": 10}],
                 "anti_affinities": [{"max_per": 1}],
                 "spread": {"label": "zone", "targets": {"z1": 50}}}]}
  ]
})";

TEST(placement_json, loads_cluster_and_workloads_and_schedules) {
    auto c = sp::cluster_from_json(cluster_text);
    ASSERT_TRUE(c.has_value()) << c.error().describe();
    ASSERT_EQ(c->nodes.size(), 2u);
    EXPECT_EQ(c->nodes[0].capacity.devices, (std::vector<std::pair<std::string, std::int64_t>>{{"fpga", 1}}));
    EXPECT_EQ(c->nodes[0].allocations.at(0).demand.cpu_millis, 3000);
    EXPECT_DOUBLE_EQ(c->nodes[0].load, 0.25);
    auto w = sp::workloads_from_json(workloads_text);
    ASSERT_TRUE(w.has_value()) << w.error().describe();
    ASSERT_EQ(w->size(), 1u);
    const auto& g = w->at(0).groups.at(0);
    EXPECT_EQ(g.constraints.at(0).values, (std::vector<std::string>{"z1", "z2"}));
    EXPECT_EQ(g.affinities.at(0).weight, 10);
    EXPECT_EQ(g.spread_over->targets.at(0).second, 50);
    EXPECT_TRUE(w->at(0).gang);
    auto s = sp::scheduler::create(*c);
    ASSERT_TRUE(s.has_value());
    auto p = s->schedule(*w);
    ASSERT_TRUE(p.has_value()) << p.error().describe();
    EXPECT_EQ(p->assignments.size(), 2u);
    const auto json = boost::json::parse(sp::to_json(*p));
    EXPECT_EQ(json.at("assignments").as_array().size(), 2u);
    EXPECT_EQ(json.at("hash").as_string().size(), 16u);
}

TEST(placement_json, plan_json_carries_explanations) {
    auto c = sp::cluster_from_json(cluster_text);
    auto w = sp::workloads_from_json(R"({"workloads": [{"id": "big", "priority": 9, "groups": [{"name": "g", "demand": {"cpu_millis": 2000}}]},
                                                       {"id": "huge", "priority": 9, "groups": [{"name": "g", "demand": {"cpu_millis": 3500}}]}]})");
    ASSERT_TRUE(w.has_value()) << w.error().describe();
    auto s = sp::scheduler::create(*c);
    auto p = s->schedule(*w);
    ASSERT_TRUE(p.has_value());
    const auto json = boost::json::parse(sp::to_json(*p));
    const auto& unplaced = json.at("unplaced").as_array();
    ASSERT_EQ(unplaced.size(), 1u);
    EXPECT_EQ(unplaced[0].at("exhausted").as_array()[0].at("dimension").as_string(), "cpu_millis");
    EXPECT_EQ(unplaced[0].at("preemption").at("allocations").as_array()[0].as_string(), "old");
}

void expect_error(const swarm::detailed_result<std::vector<sp::workload>>& r, swarm::errc code, std::string_view needle) {
    ASSERT_FALSE(r.has_value()) << needle;
    EXPECT_EQ(r.error(), code) << r.error().describe();
    EXPECT_NE(r.error().message.find(needle), std::string::npos) << r.error().message;
}

TEST(placement_json, names_the_bad_key) {
    using swarm::errc;
    expect_error(sp::workloads_from_json("{"), errc::malformed, "not valid JSON");
    expect_error(sp::workloads_from_json("{}"), errc::config_missing_key, "workloads: missing");
    expect_error(sp::workloads_from_json(R"({"workloads": [], "extra": 1})"), errc::config_unknown_key, "unknown key 'extra'");
    expect_error(sp::workloads_from_json(R"({"workloads": [{"id": "w", "groups": [{"name": "g", "cuont": 2}]}]})"),
                 errc::config_unknown_key, "workloads[0].groups[0]: unknown key 'cuont'");
    expect_error(sp::workloads_from_json(R"({"workloads": [{"id": "w", "groups": [{"name": "g", "count": "two"}]}]})"),
                 errc::config_wrong_type, "workloads[0].groups[0].count: expected an integer");
    expect_error(sp::workloads_from_json(R"({"workloads": [{"id": "w", "groups": [{"name": "g", "count": -1}]}]})"),
                 errc::config_invalid_value, "workloads[0].groups[0].count: -1 is out of range");
    expect_error(sp::workloads_from_json(R"({"workloads": [{"id": "w", "groups": [{"name": "g", "constraints": [{"label": "x", "op": "like"}]}]}]})"),
                 errc::config_invalid_value, "unknown operator 'like'");
    expect_error(sp::workloads_from_json(R"({"workloads": [{"id": 3, "groups": []}]})"), errc::config_wrong_type,
                 "workloads[0].id: expected a string");
    expect_error(sp::workloads_from_json(R"({"workloads": [{"id": "w", "gang": 1, "groups": []}]})"), errc::config_wrong_type,
                 "workloads[0].gang: expected true or false");
    expect_error(sp::workloads_from_json(R"({"workloads": [{"id": "w", "weights": {"cpu": 1}, "groups": []}]})"),
                 errc::config_unknown_key, "workloads[0].weights: unknown key 'cpu'");
    auto c = sp::cluster_from_json(R"({"nodes": [{"id": "a", "capacity": {"cpu_millis": 1.5}}]})");
    ASSERT_FALSE(c.has_value());
    EXPECT_NE(c.error().message.find("nodes[0].capacity.cpu_millis: expected an integer"), std::string::npos) << c.error().message;
    c = sp::cluster_from_json(R"({"nodes": [{"id": "a"}]})");
    ASSERT_FALSE(c.has_value());
    EXPECT_EQ(c.error(), errc::config_missing_key);
    EXPECT_NE(c.error().message.find("nodes[0].capacity: missing"), std::string::npos) << c.error().message;
    c = sp::cluster_from_json(R"({"nodes": [{"id": "a", "capacity": {}, "labels": {"k": 1}}]})");
    ASSERT_FALSE(c.has_value());
    EXPECT_NE(c.error().message.find("nodes[0].labels.k: expected a string"), std::string::npos) << c.error().message;
}

} // namespace

namespace {

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

// The sample's inputs stay loadable and keep showing what they are there to show.
TEST(placement_json, sample_inputs_schedule_as_documented) {
    const auto dir = std::filesystem::path(SWARM_SOURCE_DIR) / "samples" / "placement";
    auto c = sp::cluster_from_json(slurp(dir / "cluster.json"));
    ASSERT_TRUE(c.has_value()) << c.error().describe();
    auto w = sp::workloads_from_json(slurp(dir / "workloads.json"));
    ASSERT_TRUE(w.has_value()) << w.error().describe();
    auto s = sp::scheduler::create(*c);
    ASSERT_TRUE(s.has_value());
    auto p = s->schedule(*w);
    ASSERT_TRUE(p.has_value()) << p.error().describe();
    auto node_of = [&](std::string_view workload) {
        for (const auto& a : p->assignments)
            if (a.workload == workload) return a.node;
        return std::string();
    };
    EXPECT_EQ(node_of("inference"), "us-1"); // the only A100 with enough memory, and it holds the model
    ASSERT_EQ(p->evictions.size(), 1u);
    EXPECT_EQ(p->evictions[0].allocation, "batch-7");
    EXPECT_EQ(node_of("eu-urgent"), "eu-1");
    ASSERT_EQ(p->unplaced.size(), 2u);
    EXPECT_EQ(p->unplaced[0].workload, "eu-polite");
    EXPECT_TRUE(p->unplaced[0].preemption.has_value());
    EXPECT_EQ(p->unplaced[1].workload, "tpu-job");
}

} // namespace
