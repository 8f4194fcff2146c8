// The membership agent on real loopback sockets: five agents with fast timing, each test a few seconds.
#include "support/eventually.hpp"
#include "support/fast_agent.hpp"
#include "support/scratch_dir.hpp"
#include <swarm/core/config.hpp>
#include <swarm/membership/agent.hpp>
#include <swarm/net/runtime.hpp>

#include <boost/json/serialize.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace m = swarm::membership;
using namespace std::chrono_literals;

const std::string old_key(64, 'a');
const std::string new_key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
// 32 bytes of 0x11, as base64.
const std::string base64_key = "ERERERERERERERERERERERERERERERERERERERERERE=";

struct temp_dir : swarm_test::scratch_dir {
    temp_dir() : scratch_dir("swarm-agent") {}
};

std::filesystem::path samples_dir() {
    return std::filesystem::path(SWARM_SOURCE_DIR) / "samples" / "membership";
}

using swarm_test::eventually;

m::agent_config fast_config(const std::filesystem::path& identity_file, std::vector<std::string> seeds = {}) {
    auto c = swarm_test::fast_agent_config(identity_file, old_key, std::move(seeds));
    c.membership.gossip_to_dead = 2s;
    c.membership.dead_node_reclaim = 200ms;
    // These tests compare metadata exactly; on a machine with GPUs, NVML figures would be added to it.
    c.gpu_telemetry.enabled = false;
    return c;
}

/// Every member's state as `a` sees it, this node included.
std::map<swarm::node_id, m::member_state> view(const m::agent& a) {
    std::map<swarm::node_id, m::member_state> out;
    auto ms = a.members();
    if (!ms) return out;
    for (const auto& mb : *ms) out[mb.id] = mb.state;
    return out;
}

std::size_t alive_count(const m::agent& a) {
    std::size_t n = 0;
    for (const auto& [id, state] : view(a)) n += state == m::member_state::alive;
    return n;
}

/// Reads one sample of the Prometheus text, e.g. `swarm_membership_packets_refused_total{reason="wrong_key"}`.
std::optional<double> metric(const m::agent& a, const std::string& series) {
    const auto text = a.metrics_text();
    const auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return std::nullopt;
    return std::stod(text.substr(at + series.size() + 2));
}

/// Five agents on one runtime (the host-executor constructor), nodes 1-4 seeded with node 0.
struct mesh {
    swarm::runtime rt{2};
    temp_dir dir;
    std::vector<std::optional<m::agent>> nodes;

    // Agents stay put: callbacks in the tests hold their addresses.
    mesh() { nodes.reserve(8); }

    std::filesystem::path identity_of(std::size_t i) const { return dir.path() / ("node" + std::to_string(i) + ".key"); }

    m::agent& start(std::size_t i, m::agent_config cfg) {
        if (nodes.size() <= i) nodes.resize(i + 1);
        auto made = m::agent::create(rt.get_executor(), std::move(cfg));
        if (!made) throw std::runtime_error(made.error().describe());
        nodes[i].emplace(std::move(*made));
        return *nodes[i];
    }

    m::agent_config config_for(std::size_t i) const {
        std::vector<std::string> seeds;
        if (i != 0) seeds.push_back(nodes[0]->local_endpoint().to_string());
        return fast_config(identity_of(i), seeds);
    }

    void start_all(std::size_t n = 5) {
        for (std::size_t i = 0; i < n; ++i) start(i, config_for(i));
    }

    bool all_see_alive(std::size_t expected, const std::vector<std::size_t>& skip = {}) {
        return eventually([&] {
            for (std::size_t i = 0; i < nodes.size(); ++i) {
                if (std::find(skip.begin(), skip.end(), i) != skip.end() || !nodes[i]) continue;
                if (alive_count(*nodes[i]) != expected) return false;
            }
            return true;
        });
    }

    /// Whether every other node sees `subject` in `state`; on failure, what each one sees instead.
    ::testing::AssertionResult others_see(std::size_t subject, m::member_state state) {
        const auto id = nodes[subject]->id();
        std::string seen;
        const bool ok = eventually([&] {
            seen.clear();
            bool all = true;
            for (std::size_t i = 0; i < nodes.size(); ++i) {
                if (i == subject || !nodes[i] || nodes[i]->stopped()) continue;
                auto found = nodes[i]->find(id);
                const bool match = found && *found && (*found)->state == state;
                seen += " node" + std::to_string(i) + "=" +
                        (found && *found ? std::string(m::to_string((*found)->state)) : std::string("absent"));
                all = all && match;
            }
            return all;
        });
        if (ok) return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure() << "expected " << m::to_string(state) << ", seen:" << seen;
    }

    ~mesh() {
        // Agents before the runtime that runs them.
        nodes.clear();
    }
};

TEST(agent, five_agents_join_and_all_see_five) {
    mesh net;
    net.start_all();
    ASSERT_TRUE(net.all_see_alive(5));
    for (auto& n : net.nodes) {
        EXPECT_FALSE(n->stopped());
        EXPECT_EQ(*metric(*n, "swarm_membership_members{state=\"alive\"}"), 5);
    }
}

TEST(agent, metadata_update_is_seen_by_all) {
    mesh net;
    net.start_all();
    ASSERT_TRUE(net.all_see_alive(5));
    m::metadata meta;
    meta.labels["zone"] = "eu-1a";
    meta.models.push_back({"llama-3-8b", "http://127.0.0.1:8080", "openai"});
    ASSERT_TRUE(net.nodes[2]->set_metadata(meta));
    const auto id = net.nodes[2]->id();
    EXPECT_TRUE(eventually([&] {
        for (auto& n : net.nodes) {
            auto found = n->find(id);
            if (!found || !*found || !(*found)->meta || *(*found)->meta != meta) return false;
        }
        return true;
    }));

    m::metadata huge;
    huge.extra.resize(2 * 1024 * 1024);
    auto refused = net.nodes[2]->set_metadata(huge);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error(), swarm::errc::too_large);
}

TEST(agent, a_crashed_agent_is_detected_as_failed_by_all_others) {
    mesh net;
    net.start_all();
    ASSERT_TRUE(net.all_see_alive(5));
    std::mutex mu;
    std::vector<m::event_kind> seen_by_0;
    net.nodes[0]->subscribe([&](const m::event& e) {
        if (e.subject.id != net.nodes[4]->id()) return;
        std::lock_guard lock(mu);
        seen_by_0.push_back(e.kind);
    });
    ASSERT_TRUE(net.nodes[4]->halt());
    EXPECT_TRUE(net.nodes[4]->stopped());
    EXPECT_TRUE(net.others_see(4, m::member_state::dead));
    std::lock_guard lock(mu);
    EXPECT_NE(std::find(seen_by_0.begin(), seen_by_0.end(), m::event_kind::failed), seen_by_0.end());
    EXPECT_EQ(std::find(seen_by_0.begin(), seen_by_0.end(), m::event_kind::left), seen_by_0.end());
}

TEST(agent, a_graceful_leave_is_seen_as_left) {
    mesh net;
    net.start_all();
    ASSERT_TRUE(net.all_see_alive(5));
    EXPECT_TRUE(net.nodes[4]->leave());
    EXPECT_TRUE(net.nodes[4]->stopped());
    EXPECT_TRUE(net.others_see(4, m::member_state::left));
    // A stopped agent answers queries with shut_down, without waiting.
    auto after = net.nodes[4]->members();
    ASSERT_FALSE(after);
    EXPECT_EQ(after.error(), swarm::errc::shut_down);
}

TEST(agent, a_restarted_agent_with_the_same_identity_and_address_rejoins) {
    mesh net;
    net.start_all();
    ASSERT_TRUE(net.all_see_alive(5));
    const auto id = net.nodes[4]->id();
    const auto address = net.nodes[4]->local_endpoint();
    std::mutex mu;
    std::vector<m::event_kind> seen_by_1;
    net.nodes[1]->subscribe([&](const m::event& e) {
        if (e.subject.id != id) return;
        std::lock_guard lock(mu);
        seen_by_1.push_back(e.kind);
    });
    ASSERT_TRUE(net.nodes[4]->halt());
    net.nodes[4].reset();
    ASSERT_TRUE(eventually([&] {
        auto found = net.nodes[1]->find(id);
        return found && *found && (*found)->state == m::member_state::dead;
    }));

    auto cfg = net.config_for(4);
    cfg.driver.bind = address;
    auto& again = net.start(4, cfg);
    EXPECT_EQ(again.id(), id);
    EXPECT_EQ(again.local_endpoint(), address);
    EXPECT_TRUE(net.others_see(4, m::member_state::alive));
    EXPECT_TRUE(net.all_see_alive(5));
    std::lock_guard lock(mu);
    EXPECT_NE(std::find(seen_by_1.begin(), seen_by_1.end(), m::event_kind::rejoined), seen_by_1.end());
}

TEST(agent, cluster_key_rotation_across_five_agents_keeps_the_mesh_and_refuses_nothing) {
    mesh net;
    net.start_all();
    ASSERT_TRUE(net.all_see_alive(5));
    const auto old_id = net.nodes[0]->key_ids().at(0);

    for (std::size_t i = 0; i < 5; ++i) ASSERT_TRUE(net.nodes[i]->install_key(new_key)) << i;
    const auto new_id = net.nodes[0]->key_ids().at(1);
    std::this_thread::sleep_for(300ms);
    for (auto& n : net.nodes) ASSERT_TRUE(n->use_key(new_id));
    // Let datagrams sealed with the old key before the switch land before anyone forgets it.
    std::this_thread::sleep_for(300ms);
    for (auto& n : net.nodes) ASSERT_TRUE(n->remove_key(old_key));
    for (auto& n : net.nodes) EXPECT_EQ(n->key_ids(), std::vector<swarm::seal::key_id>{new_id});
    EXPECT_NE(old_id, new_id);

    // Still five, and still talking (packets received keep growing) under the new key only.
    std::vector<std::uint64_t> before;
    for (auto& n : net.nodes) before.push_back(n->stats()->packets_received);
    std::this_thread::sleep_for(500ms);
    EXPECT_TRUE(net.all_see_alive(5));
    for (std::size_t i = 0; i < 5; ++i) {
        auto s = net.nodes[i]->stats();
        ASSERT_TRUE(s);
        EXPECT_GT(s->packets_received, before[i]) << i;
        EXPECT_EQ(s->refused_by(m::refusal::unknown_key), 0u) << i;
        EXPECT_EQ(s->refused_by(m::refusal::authentication_failed), 0u) << i;
        EXPECT_EQ(*metric(*net.nodes[i], "swarm_membership_packets_refused_total{reason=\"wrong_key\"}"), 0) << i;
    }
    // Removing the key that seals is refused: a node never ends up without one.
    auto last = net.nodes[0]->remove_key(new_id);
    ASSERT_FALSE(last);
    EXPECT_EQ(last.error(), swarm::errc::invalid_argument);
}

struct captured_log {
    std::mutex mu;
    std::vector<std::string> lines;
    swarm::logger make() {
        return {swarm::log_level::warning, [this](swarm::log_level, std::string_view line) {
                    std::lock_guard lock(mu);
                    lines.emplace_back(line);
                }};
    }
    bool contains(std::string_view needle) {
        std::lock_guard lock(mu);
        for (auto& l : lines)
            if (l.find(needle) != std::string::npos) return true;
        return false;
    }
};

void expect_never_admitted(mesh& net, m::agent& intruder, const std::string& reason) {
    // Give the intruder many join retries' worth of time.
    std::this_thread::sleep_for(1500ms);
    for (std::size_t i = 0; i < 3; ++i) {
        auto found = net.nodes[i]->find(intruder.id());
        ASSERT_TRUE(found);
        EXPECT_FALSE(found->has_value()) << "node " << i << " admitted the intruder";
        EXPECT_EQ(alive_count(*net.nodes[i]), 3u);
    }
    EXPECT_EQ(view(intruder).size(), 1u) << "the intruder learnt about the mesh";
    EXPECT_GT(*metric(*net.nodes[0], "swarm_membership_packets_refused_total{reason=\"" + reason + "\"}"), 0);
}

/// Three members, the first logging into `log0`; true once all three see each other alive.
bool start_three_logging_first(mesh& net, captured_log& log0) {
    auto cfg0 = net.config_for(0);
    cfg0.log = log0.make();
    net.start(0, cfg0);
    net.start(1, net.config_for(1));
    net.start(2, net.config_for(2));
    return net.all_see_alive(3);
}

TEST(agent, a_node_with_the_wrong_key_never_appears_in_any_view) {
    mesh net;
    captured_log log0;
    ASSERT_TRUE(start_three_logging_first(net, log0));

    auto bad = fast_config(net.dir.path() / "intruder.key", {net.nodes[0]->local_endpoint().to_string()});
    bad.cluster_keys = {new_key};
    auto intruder = m::agent::create(net.rt.get_executor(), bad);
    ASSERT_TRUE(intruder) << intruder.error().describe();
    expect_never_admitted(net, *intruder, "wrong_key");
    EXPECT_TRUE(log0.contains("sealed with a key this node does not hold"));
}

TEST(agent, a_node_with_the_wrong_cluster_label_never_appears_in_any_view) {
    mesh net;
    captured_log log0;
    ASSERT_TRUE(start_three_logging_first(net, log0));

    auto bad = fast_config(net.dir.path() / "intruder.key", {net.nodes[0]->local_endpoint().to_string()});
    bad.membership.cluster_label = "another-cluster";
    auto intruder = m::agent::create(net.rt.get_executor(), bad);
    ASSERT_TRUE(intruder) << intruder.error().describe();
    expect_never_admitted(net, *intruder, "wrong_cluster");
    EXPECT_TRUE(log0.contains("sealed for another cluster label"));
}

TEST(agent, poll_and_notify_deliver_events_without_running_host_code_on_swarm_threads) {
    mesh net;
    net.start(0, net.config_for(0));
    std::mutex mu;
    std::condition_variable cv;
    int wakeups = 0;
    net.nodes[0]->set_notify([&] {
        std::lock_guard lock(mu);
        ++wakeups;
        cv.notify_one();
    });
    for (std::size_t i = 1; i < 5; ++i) net.start(i, net.config_for(i));

    std::map<swarm::node_id, m::event_kind> joined;
    std::vector<m::event> batch;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (joined.size() < 4 && std::chrono::steady_clock::now() < deadline) {
        {
            std::unique_lock lock(mu);
            cv.wait_for(lock, 20ms, [&] { return wakeups > 0; });
            wakeups = 0;
        }
        batch.clear();
        net.nodes[0]->poll(batch);
        for (const auto& e : batch)
            if (e.kind == m::event_kind::joined) joined[e.subject.id] = e.kind;
    }
    EXPECT_EQ(joined.size(), 4u);
    for (std::size_t i = 1; i < 5; ++i) EXPECT_TRUE(joined.contains(net.nodes[i]->id())) << i;
    EXPECT_EQ(net.nodes[0]->events_dropped(), 0u);
}

TEST(agent, a_full_poll_queue_drops_the_oldest_and_counts_it) {
    mesh net;
    auto cfg0 = net.config_for(0);
    cfg0.event_queue_capacity = 2;
    net.start(0, cfg0);
    for (std::size_t i = 1; i < 5; ++i) net.start(i, net.config_for(i));
    ASSERT_TRUE(net.all_see_alive(5));
    std::vector<m::event> out;
    EXPECT_EQ(net.nodes[0]->poll(out), 2u);
    EXPECT_GE(net.nodes[0]->events_dropped(), 2u);
    EXPECT_GE(*metric(*net.nodes[0], "swarm_membership_events_dropped_total"), 2);
}

TEST(agent, subscribers_run_on_the_strand_and_may_query_the_agent_inline) {
    mesh net;
    net.start(0, net.config_for(0));
    std::atomic<int> answered{0};
    m::agent* zero = &*net.nodes[0];
    net.nodes[0]->subscribe([&](const m::event& e) {
        // From the strand: runs inline rather than waiting for the strand this callback holds.
        auto found = zero->find(e.subject.id);
        if (found && *found) ++answered;
    });
    net.start(1, net.config_for(1));
    EXPECT_TRUE(eventually([&] { return answered.load() > 0; }));
}

TEST(agent, a_subscriber_may_steer_its_own_agent) {
    mesh net;
    net.start_all(3);
    ASSERT_TRUE(net.all_see_alive(3));
    m::agent* two = &*net.nodes[2];
    std::atomic<bool> halted{false};
    // Node 2 publishes metadata when it learns of node 3, and halts itself (as a crash would) when node 3
    // fails: both from its own strand, where neither may wait.
    net.nodes[2]->subscribe([&](const m::event& e) {
        if (e.kind == m::event_kind::joined) {
            m::metadata meta;
            meta.labels["seen"] = e.subject.id.short_string();
            EXPECT_TRUE(two->set_metadata(meta));
        }
        if (e.kind == m::event_kind::failed && !halted.exchange(true)) {
            EXPECT_FALSE(two->halt());
        }
    });
    net.start(3, net.config_for(3));
    const auto id2 = net.nodes[2]->id();
    EXPECT_TRUE(eventually([&] {
        auto found = net.nodes[0]->find(id2);
        return found && *found && (*found)->meta && (*found)->meta->labels.contains("seen");
    }));
    ASSERT_TRUE(net.nodes[3]->halt());
    EXPECT_TRUE(eventually([&] { return halted.load() && net.nodes[2]->stopped(); }));
    EXPECT_TRUE(net.others_see(2, m::member_state::dead));
}

TEST(agent, seeds_given_by_name_resolve_to_every_address) {
    mesh net;
    net.start(0, net.config_for(0));
    // "localhost" may resolve to ::1 as well, which a socket bound to 127.0.0.1 cannot reach; one is enough.
    auto cfg = fast_config(net.identity_of(1), {"localhost:" + std::to_string(net.nodes[0]->local_endpoint().port())});
    net.start(1, cfg);
    EXPECT_TRUE(net.all_see_alive(2));
}

TEST(agent, keeps_retrying_a_seed_that_comes_up_later) {
    mesh net;
    // Learn a free port, then free it: the seed will come up there after the joiner has started.
    auto probe_cfg = fast_config(net.identity_of(0));
    swarm::net::endpoint later;
    {
        auto& first = net.start(0, probe_cfg);
        later = first.local_endpoint();
        ASSERT_TRUE(first.halt());
        net.nodes[0].reset();
    }
    net.start(1, fast_config(net.identity_of(1), {"localhost:" + std::to_string(later.port())}));
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(alive_count(*net.nodes[1]), 1u);
    probe_cfg.driver.bind = later;
    net.start(0, probe_cfg);
    EXPECT_TRUE(net.all_see_alive(2));
}

TEST(agent, runs_on_ipv6_loopback) {
    swarm::runtime rt{1};
    temp_dir dir;
    auto c0 = fast_config(dir.path() / "a.key");
    c0.driver.bind = swarm::net::endpoint::parse("[::1]:0").value();
    auto a = m::agent::create(rt.get_executor(), c0);
    if (!a) GTEST_SKIP() << "no IPv6 loopback here: " << a.error().describe();
    auto c1 = fast_config(dir.path() / "b.key", {a->local_endpoint().to_string()});
    c1.driver.bind = c0.driver.bind;
    auto b = m::agent::create(rt.get_executor(), c1);
    ASSERT_TRUE(b) << b.error().describe();
    EXPECT_TRUE(eventually([&] { return alive_count(*a) == 2 && alive_count(*b) == 2; }));
}

TEST(agent, owns_its_runtime_when_given_none) {
    temp_dir dir;
    auto a = m::agent::create(fast_config(dir.path() / "a.key"));
    ASSERT_TRUE(a) << a.error().describe();
    auto b = m::agent::create(fast_config(dir.path() / "b.key", {a->local_endpoint().to_string()}), 2);
    ASSERT_TRUE(b) << b.error().describe();
    EXPECT_TRUE(eventually([&] { return alive_count(*a) == 2 && alive_count(*b) == 2; }));
    EXPECT_TRUE(b->leave());
    EXPECT_TRUE(eventually([&] { return alive_count(*a) == 1; }));
}

TEST(agent_config, bad_json_key_names_the_key) {
    auto r = swarm::config::parse<m::agent_config>(R"({"identity_file": "x.key", "cluster_keys": [")" + old_key +
                                                   R"("], "membershp": {}})");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), swarm::errc::config_unknown_key);
    EXPECT_NE(r.error().message.find("membershp"), std::string::npos) << r.error().message;
}

TEST(agent_config, a_bad_cluster_key_is_named_and_not_echoed) {
    const std::string secretish = "zz" + std::string(62, 'a');
    auto r = swarm::config::parse<m::agent_config>(R"({"identity_file": "x.key", "cluster_keys": [")" + old_key +
                                                   R"(", ")" + secretish + R"("]})");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), swarm::errc::config_invalid_value);
    EXPECT_NE(r.error().message.find("cluster_keys[1]"), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.find(secretish), std::string::npos) << r.error().message;

    auto none = swarm::config::parse<m::agent_config>(R"({"identity_file": "x.key"})");
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().message.find("cluster_keys"), std::string::npos) << none.error().message;
}

TEST(agent_config, keys_parse_as_hex_or_base64) {
    auto hex = m::parse_cluster_key(new_key);
    ASSERT_TRUE(hex);
    EXPECT_EQ(hex->size(), 32u);
    EXPECT_EQ((*hex)[1], std::byte{0x23});
    auto b64 = m::parse_cluster_key(base64_key);
    ASSERT_TRUE(b64) << b64.error().describe();
    EXPECT_EQ(*b64, std::vector<std::byte>(32, std::byte{0x11}));
    EXPECT_FALSE(m::parse_cluster_key("abcd"));
    EXPECT_FALSE(m::parse_cluster_key(std::string(64, 'g')));
    EXPECT_FALSE(m::parse_cluster_key("ERERERERERERERERERERERERERERERERERERERERERE"));
}

TEST(agent_config, json_round_trips_and_the_sample_configs_load) {
    temp_dir dir;
    auto cfg = fast_config(dir.path() / "a.key", {"node1.example:7946", "[::1]:7946"});
    auto text = boost::json::serialize(swarm::config::to_json(cfg));
    auto back = swarm::config::parse<m::agent_config>(text);
    ASSERT_TRUE(back) << back.error().describe();
    EXPECT_EQ(back->seeds, cfg.seeds);
    EXPECT_EQ(back->membership.probe_interval, 100ms);
    EXPECT_EQ(back->identity_file, cfg.identity_file);
    for (const char* name : {"node1.json", "node2.json"}) {
        auto sample = swarm::config::load_file<m::agent_config>(samples_dir() / name);
        EXPECT_TRUE(sample) << name << ": " << sample.error().describe();
    }
}

TEST(agent_config, an_unreadable_identity_file_fails_create_naming_the_path) {
    temp_dir dir;
    swarm::runtime rt{1};
    // A directory where the key file should be.
    auto cfg = fast_config(dir.path());
    auto r = m::agent::create(rt.get_executor(), cfg);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find(dir.path().string()), std::string::npos) << r.error().describe();

    // A damaged key file is reported, never replaced by a new identity.
    const auto damaged = dir.path() / "damaged.key";
    std::ofstream(damaged) << "not a key file";
    std::filesystem::permissions(damaged, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    auto r2 = m::agent::create(rt.get_executor(), fast_config(damaged));
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.error(), swarm::errc::key_file_corrupt) << r2.error().describe();
    std::ifstream in(damaged);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(content, "not a key file");
}

TEST(agent_config, a_taken_port_fails_create_naming_the_address) {
    swarm::runtime rt{1};
    temp_dir dir;
    auto a = m::agent::create(rt.get_executor(), fast_config(dir.path() / "a.key"));
    ASSERT_TRUE(a);
    auto cfg = fast_config(dir.path() / "b.key");
    cfg.driver.bind = a->local_endpoint();
    auto b = m::agent::create(rt.get_executor(), cfg);
    ASSERT_FALSE(b);
    EXPECT_NE(b.error().message.find(a->local_endpoint().to_string()), std::string::npos) << b.error().describe();
}

} // namespace
