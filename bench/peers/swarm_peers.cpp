// Real swarm membership agents on loopback, measured the way bench/peers/memberlist measures real memberlist
// nodes (bench/peers/run runs both and prints them side by side).
//
// Starts N agents in this process on 127.0.0.1 (real UDP and TCP, sealed and signed), all on one runtime,
// joins them through node 0 and waits until every node sees N alive. After a settle period (join gossip
// drains) it measures a steady window (CPU,
// bytes), and runs `rounds` crash rounds: one agent is halted (no goodbye, as a crash would) and the time
// until each other agent declares it failed is recorded. Bytes are the agents' own counters: every sealed
// datagram and stream frame sent and received.
//
// Usage: swarm_bench_peers [--nodes N] [--rounds R] [--settle-seconds S] [--steady-seconds S] [--profile swarm|memberlist]
//                          [--threads T] [--limit-seconds L]
// Output: CSV rows "peer,profile,n,metric,value".
#include <swarm/membership/agent.hpp>
#include <swarm/net/runtime.hpp>

#include <fmt/format.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace m = swarm::membership;
using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct options {
    std::size_t nodes = 32;
    std::size_t rounds = 3;
    double settle_seconds = 5;
    // At least memberlist's 30 s push-pull period, so its full exchanges are in the window.
    double steady_seconds = 30;
    std::string profile = "swarm";
    unsigned threads = 2;
    double limit_seconds = 120;
};

double cpu_seconds() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return tv(ru.ru_utime) + tv(ru.ru_stime);
}

double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

/// When each observer first declared each victim failed (or gone).
struct deaths {
    std::mutex mu;
    std::map<swarm::node_id, std::map<swarm::node_id, clock_type::time_point>> seen;

    void record(const swarm::node_id& observer, const m::event& e) {
        if (e.kind != m::event_kind::failed && e.kind != m::event_kind::left) return;
        const auto now = clock_type::now();
        std::lock_guard lock(mu);
        seen[e.subject.id].try_emplace(observer, now);
    }
    std::size_t count(const swarm::node_id& victim) {
        std::lock_guard lock(mu);
        auto it = seen.find(victim);
        return it == seen.end() ? 0 : it->second.size();
    }
    /// Every (observer, victim) failure recorded so far.
    std::size_t total() {
        std::lock_guard lock(mu);
        std::size_t n = 0;
        for (const auto& [victim, by_observer] : seen) n += by_observer.size();
        return n;
    }
    std::vector<double> delays(const swarm::node_id& victim, clock_type::time_point since) {
        std::lock_guard lock(mu);
        std::vector<double> out;
        for (const auto& [observer, at] : seen[victim]) out.push_back(std::chrono::duration<double>(at - since).count());
        std::sort(out.begin(), out.end());
        return out;
    }
};

struct traffic {
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
};

traffic total_traffic(const std::vector<std::optional<m::agent>>& nodes) {
    traffic t;
    for (const auto& a : nodes) {
        if (!a || a->stopped()) continue;
        if (auto s = a->stats()) {
            t.sent += s->bytes_sent;
            t.received += s->bytes_received;
        }
    }
    return t;
}

std::optional<options> parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (i + 1 >= argc) return std::nullopt;
        const std::string value = argv[++i];
        try {
            if (flag == "--nodes") o.nodes = std::stoul(value);
            else if (flag == "--rounds") o.rounds = std::stoul(value);
            else if (flag == "--steady-seconds") o.steady_seconds = std::stod(value);
            else if (flag == "--settle-seconds") o.settle_seconds = std::stod(value);
            else if (flag == "--profile") o.profile = value;
            else if (flag == "--threads") o.threads = static_cast<unsigned>(std::stoul(value));
            else if (flag == "--limit-seconds") o.limit_seconds = std::stod(value);
            else return std::nullopt;
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }
    if (o.nodes < 2 || o.rounds < 1 || o.rounds >= o.nodes || o.threads < 1) return std::nullopt;
    if (o.profile != "swarm" && o.profile != "memberlist") return std::nullopt;
    return o;
}

} // namespace

int main(int argc, char** argv) {
    auto parsed = parse(argc, argv);
    if (!parsed) {
        std::fprintf(stderr, "usage: %s [--nodes N>=2] [--rounds 1..N-1] [--settle-seconds S] [--steady-seconds S] "
                             "[--profile swarm|memberlist] [--threads T] [--limit-seconds L]\n",
                     argv[0]);
        return 2;
    }
    const auto o = *parsed;
    auto emit = [&](const std::string& metric, double value) {
        fmt::print("swarm,{},{},{},{:.6g}\n", o.profile, o.nodes, metric, value);
        std::fflush(stdout);
    };
    const auto limit = std::chrono::duration<double>(o.limit_seconds);

    std::string pattern = (std::filesystem::temp_directory_path() / "swarm-peers-XXXXXX").string();
    const std::filesystem::path dir = ::mkdtemp(pattern.data());
    int rc = 0;
    {
        swarm::runtime rt{o.threads};
        deaths d;
        std::vector<std::optional<m::agent>> nodes(o.nodes);
        const auto start = clock_type::now();
        for (std::size_t i = 0; i < o.nodes; ++i) {
            m::agent_config c;
            c.driver.bind = swarm::net::endpoint::parse("127.0.0.1:0").value();
            c.membership = o.profile == "swarm" ? m::config::swarm_profile() : m::config::memberlist_lan();
            c.identity_file = dir / fmt::format("node{}.key", i);
            c.cluster_keys = {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"};
            if (i != 0) c.seeds = {nodes[0]->local_endpoint().to_string()};
            c.driver.stop_grace = 100ms;
            c.gpu_telemetry.enabled = false;
            auto made = m::agent::create(rt.get_executor(), std::move(c));
            if (!made) {
                std::fprintf(stderr, "node %zu: %s\n", i, made.error().describe().c_str());
                return 1;
            }
            nodes[i].emplace(std::move(*made));
            const auto me = nodes[i]->id();
            nodes[i]->subscribe([&d, me](const m::event& e) { d.record(me, e); });
        }

        auto converged = [&] {
            for (auto& a : nodes) {
                auto ms = a->members();
                if (!ms) return false;
                std::size_t alive = 0;
                for (const auto& mb : *ms) alive += mb.state == m::member_state::alive;
                if (alive != o.nodes) return false;
            }
            return true;
        };
        while (!converged()) {
            if (clock_type::now() - start > limit) {
                std::fprintf(stderr, "bootstrap did not converge\n");
                rc = 1;
                break;
            }
            std::this_thread::sleep_for(50ms);
        }
        if (rc == 0) emit("bootstrap_s", seconds_since(start));

        if (rc == 0) {
            // Steady state: no change in membership, only probes, gossip and anti-entropy.
            std::this_thread::sleep_for(std::chrono::duration<double>(o.settle_seconds));
            auto cpu0 = cpu_seconds();
            auto t0 = total_traffic(nodes);
            auto w0 = clock_type::now();
            std::this_thread::sleep_for(std::chrono::duration<double>(o.steady_seconds));
            auto wall = seconds_since(w0);
            auto t1 = total_traffic(nodes);
            const auto n = static_cast<double>(o.nodes);
            emit("steady_cpu_percent_per_node", 100 * (cpu_seconds() - cpu0) / wall / n);
            emit("steady_sent_bytes_per_node_s", static_cast<double>(t1.sent - t0.sent) / wall / n);
            emit("steady_received_bytes_per_node_s", static_cast<double>(t1.received - t0.received) / wall / n);
        }

        // Healthy nodes declared failed by someone before any crash (each shows as a negative delay below).
        if (rc == 0) emit("false_dead_before_crash", static_cast<double>(d.total()));
        std::size_t alive = o.nodes;
        for (std::size_t r = 0; rc == 0 && r < o.rounds; ++r) {
            auto& victim = nodes[alive - 1];
            --alive;
            const auto name = victim->id();
            // The victim's counters stop with it; count the survivors only, before and after.
            const auto survivors_before = [&] {
                traffic t;
                for (std::size_t i = 0; i < alive; ++i)
                    if (auto s = nodes[i]->stats()) {
                        t.sent += s->bytes_sent;
                        t.received += s->bytes_received;
                    }
                return t;
            }();
            const auto cpu0 = cpu_seconds();
            const auto killed = clock_type::now();
            victim->halt();
            while (d.count(name) < alive) {
                if (clock_type::now() - killed > limit) {
                    std::fprintf(stderr, "round %zu: only %zu of %zu declared the victim failed\n", r, d.count(name),
                                 alive);
                    rc = 1;
                    break;
                }
                std::this_thread::sleep_for(10ms);
            }
            if (rc != 0) break;
            const auto wall = seconds_since(killed);
            const auto cpu = cpu_seconds() - cpu0;
            const auto after = total_traffic(nodes);
            const auto delays = d.delays(name, killed);
            const auto n = static_cast<double>(alive);
            emit(fmt::format("round{}_dead_first_s", r), delays.front());
            emit(fmt::format("round{}_dead_p50_s", r), delays[(delays.size() - 1) / 2]);
            emit(fmt::format("round{}_dead_all_s", r), delays.back());
            emit(fmt::format("round{}_cpu_percent_per_node", r), 100 * cpu / wall / n);
            emit(fmt::format("round{}_sent_bytes_per_node_s", r),
                 static_cast<double>(after.sent - survivors_before.sent) / wall / n);
            emit(fmt::format("round{}_received_bytes_per_node_s", r),
                 static_cast<double>(after.received - survivors_before.received) / wall / n);
        }
        // Agents before the runtime that runs them.
        for (auto& a : nodes) a.reset();
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    return rc;
}
