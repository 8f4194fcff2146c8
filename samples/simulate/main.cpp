// swarm_simulate: 1,000 simulated endpoints probing each other through a scripted chaos scenario.
//
// Each endpoint runs a small ping/echo protocol (unchanged protocol code, as any swarm protocol): every
// probe interval it sends a probe to a random peer, which echoes it; the round trip is measured in virtual
// time. The run is cut in five phases: calm, Gilbert-Elliott loss bursts, a 50/50 partition that heals, a
// few paused nodes that resume, and recovery. For each phase it prints the observed loss, round-trip
// percentiles, datagrams delivered and the trace hash, which the same --seed reproduces exactly.
//
// Usage: swarm_simulate [--seed N] [--nodes N] [--duration S]
#include <swarm/sim/network.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace sim = swarm::sim;
namespace net = swarm::net;
using swarm::duration;
using swarm::time_point;

constexpr std::uint16_t port = 7946;
constexpr duration probe_interval = 200ms;
constexpr std::size_t message_size = 64;

enum class kind : std::uint8_t { probe = 1, echo = 2 };

struct phase_stats {
    std::string name;
    time_point begin, end;
    std::uint64_t probes = 0;
    std::uint64_t echoes = 0;
    std::uint64_t datagrams_delivered = 0;
    std::uint64_t datagrams_dropped = 0;
    std::vector<std::int64_t> rtt_ns;
    std::uint64_t trace_hash = 0;
    double wall_s = 0;
};

/// What the endpoints report into; the sample reads it, the protocol only appends.
struct collector {
    std::vector<phase_stats> phases;
    std::vector<net::endpoint> peers;
    time_point stop; // no probes from here on: the run only drains

    phase_stats& at(time_point t) {
        for (auto& p : phases)
            if (t < p.end) return p;
        return phases.back();
    }
};

class pinger final : public net::protocol {
public:
    pinger(net::transport& t, collector& c) : t_(t), c_(c) {}

    void on_start() override {
        // Spread the first probes over one interval so the endpoints do not beat in step.
        t_.set_timer(0, t_.now() + duration{static_cast<std::int64_t>(t_.random().below(probe_interval.count()))});
    }

    void on_timer(net::timer_id) override {
        if (t_.now() >= c_.stop) return;
        std::array<std::byte, message_size> m{};
        m[0] = static_cast<std::byte>(kind::probe);
        const std::int64_t now = t_.now().time_since_epoch().count();
        std::memcpy(m.data() + 8, &now, 8);
        const auto& peer = c_.peers[t_.random().below(c_.peers.size())];
        if (peer != t_.local_endpoint()) {
            t_.send(peer, m);
            ++c_.at(t_.now()).probes;
        }
        t_.set_timer(0, t_.now() + probe_interval);
    }

    void on_datagram(const net::endpoint& from, std::span<const std::byte> payload) override {
        if (payload.size() != message_size) return;
        if (payload[0] == static_cast<std::byte>(kind::probe)) {
            std::array<std::byte, message_size> m;
            std::memcpy(m.data(), payload.data(), message_size);
            m[0] = static_cast<std::byte>(kind::echo);
            t_.send(from, m);
        } else if (payload[0] == static_cast<std::byte>(kind::echo)) {
            std::int64_t sent = 0;
            std::memcpy(&sent, payload.data() + 8, 8);
            auto& phase = c_.at(time_point{duration{sent}});
            ++phase.echoes;
            phase.rtt_ns.push_back(t_.now().time_since_epoch().count() - sent);
        }
    }

private:
    net::transport& t_;
    collector& c_;
};

double percentile_ms(std::vector<std::int64_t>& v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
    return static_cast<double>(v[i]) / 1e6;
}

template <class T>
bool parse(std::string_view text, T& out) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc{} && end == text.data() + text.size();
}

int usage(const char* self) {
    fmt::print(stderr, "usage: {} [--seed N] [--nodes N (2..100000)] [--duration S (5..86400)]\n", self);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    std::uint64_t seed = 1;
    std::uint32_t nodes = 1000;
    std::uint32_t duration_s = 60;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (i + 1 >= argc) return usage(argv[0]);
        std::string_view value = argv[++i];
        bool ok = false;
        if (arg == "--seed") ok = parse(value, seed);
        else if (arg == "--nodes") ok = parse(value, nodes) && nodes >= 2 && nodes <= 100000;
        else if (arg == "--duration") ok = parse(value, duration_s) && duration_s >= 5 && duration_s <= 86400;
        if (!ok) {
            fmt::print(stderr, "bad value for {}: '{}'\n", arg, value);
            return usage(argv[0]);
        }
    }

    sim::network_config config;
    config.seed = seed;
    config.default_link.latency = 1ms;
    config.default_link.jitter = 200us;
    config.default_link.distribution = sim::latency_distribution::pareto_normal;
    config.default_link.loss = 0.001;
    auto created = sim::network::create(config);
    if (!created) {
        fmt::print(stderr, "invalid configuration: {}\n", created.error().describe());
        return 1;
    }
    sim::network net = std::move(*created);

    collector c;
    const duration total = std::chrono::seconds(duration_s);
    c.stop = time_point{total};
    const duration slice = total / 5;
    const char* names[] = {"calm", "loss bursts", "partition 50/50", "paused nodes", "recovery"};
    for (int i = 0; i < 5; ++i) {
        phase_stats& p = c.phases.emplace_back();
        p.name = names[i];
        p.begin = time_point{slice * i};
        p.end = time_point{i == 4 ? total : slice * (i + 1)};
    }

    for (std::uint32_t i = 0; i < nodes; ++i) c.peers.push_back(net.endpoint_of(net.add_node(), port));
    for (std::uint32_t i = 0; i < nodes; ++i) {
        auto r = net.add_protocol(i, port, [&c](net::transport& t) { return std::make_unique<pinger>(t, c); });
        if (!r) {
            fmt::print(stderr, "cannot start node {}: {}\n", i, r.error().describe());
            return 1;
        }
    }
    net.set_observer([&c](const sim::datagram_record& r) {
        auto& p = c.at(r.sent);
        if (r.result == sim::outcome::delivered) ++p.datagrams_delivered;
        else ++p.datagrams_dropped;
    });

    // The chaos script, as a fault schedule: bursts of loss, then a partition, then 1% of nodes stall.
    sim::fault_schedule chaos;
    sim::gilbert_elliott bursts{0.02, 0.25, 0.0, 0.7};
    chaos.faults.push_back({c.phases[1].begin, sim::fault_kind::loss_burst, 0, slice, bursts});
    chaos.faults.push_back({c.phases[2].begin, sim::fault_kind::partition_halves, 0, slice, {}});
    const std::uint32_t paused = std::max<std::uint32_t>(1, nodes / 100);
    for (std::uint32_t i = 0; i < paused; ++i)
        chaos.faults.push_back({c.phases[3].begin, sim::fault_kind::pause, i * (nodes / paused), slice / 2, {}});
    if (auto r = net.apply(chaos); !r) {
        fmt::print(stderr, "bad fault schedule: {}\n", r.error().describe());
        return 1;
    }

    fmt::print("swarm_simulate: {} nodes, {} s virtual, seed {}; probe every {} ms; link 1 ms +- 0.2 ms "
               "(pareto-normal), 0.1% loss\n",
               nodes, duration_s, seed, std::chrono::duration_cast<std::chrono::milliseconds>(probe_interval).count());
    fmt::print("phases: calm | GE loss bursts (expected loss {:.1f}%) | 50/50 partition, healed at its end | "
               "{} nodes paused for half the phase | recovery\n\n",
               bursts.expected_loss() * 100, paused);

    const auto wall_start = std::chrono::steady_clock::now();
    for (auto& p : c.phases) {
        const auto t0 = std::chrono::steady_clock::now();
        net.run_until(p.end);
        p.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        p.trace_hash = net.trace_hash();
    }
    net.run_for(5s); // let the last echoes land; they count towards the phase that sent them
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();

    fmt::print("{:<16} {:>9} {:>9} {:>10} {:>8} {:>8} {:>9} {:>11} {:>18} {:>7}\n", "phase", "probes", "rtt_loss",
               "dgram_loss", "p50_ms", "p99_ms", "p99.9_ms", "delivered", "trace_hash", "wall_s");
    for (auto& p : c.phases) {
        const double rtt_loss = p.probes ? 1.0 - static_cast<double>(p.echoes) / static_cast<double>(p.probes) : 0;
        const double total_dgrams = static_cast<double>(p.datagrams_delivered + p.datagrams_dropped);
        const double dgram_loss = total_dgrams > 0 ? static_cast<double>(p.datagrams_dropped) / total_dgrams : 0;
        fmt::print("{:<16} {:>9} {:>8.2f}% {:>9.2f}% {:>8.3f} {:>8.3f} {:>9.3f} {:>11} {:>18x} {:>7.3f}\n", p.name,
                   p.probes, rtt_loss * 100, dgram_loss * 100, percentile_ms(p.rtt_ns, 0.5),
                   percentile_ms(p.rtt_ns, 0.99), percentile_ms(p.rtt_ns, 0.999), p.datagrams_delivered,
                   p.trace_hash, p.wall_s);
    }
    const auto& s = net.stats();
    fmt::print("\ntotal: {} datagrams delivered, {} dropped (lost {}, partitioned {}, paused overflow {}), "
               "{} events in {:.3f} s wall ({:.0f} events/s)\n",
               s.delivered, s.dropped_total(), s.dropped_by(sim::outcome::lost),
               s.dropped_by(sim::outcome::partitioned), s.dropped_by(sim::outcome::paused_overflow), s.events, wall,
               static_cast<double>(s.events) / wall);
    fmt::print("final trace hash {:016x} (rerun with --seed {} to reproduce it)\n", net.trace_hash(), seed);
    return 0;
}
