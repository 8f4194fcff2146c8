// Simulator throughput: delivered datagrams per second of wall clock on one core.
//
// Every endpoint keeps a few messages in flight: on receipt it forwards the payload to a random peer. The
// default link has 1 ms +- 0.2 ms uniform latency and 1% loss; lost messages are replaced so the number in
// flight stays constant. Usage: swarm_bench_sim [--seconds S] [--nodes N]: S virtual seconds at 1,000
// nodes (default 2), scaled down for larger sizes so each size delivers about as many messages.
#include <swarm/sim/network.hpp>

#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace sim = swarm::sim;
namespace net = swarm::net;

constexpr std::uint16_t port = 7000;
constexpr int in_flight = 4;
constexpr std::size_t payload_size = 128;

struct shared_state {
    std::vector<net::endpoint> peers;
};

class bouncer final : public net::protocol {
public:
    bouncer(net::transport& t, const shared_state& s) : t_(t), s_(s) {}

    void on_start() override {
        std::byte payload[payload_size]{};
        for (int i = 0; i < in_flight; ++i) forward(payload);
        // Replace lost messages periodically so the load stays steady.
        t_.set_timer(1, t_.now() + 10ms);
    }
    void on_datagram(const net::endpoint&, std::span<const std::byte> payload) override {
        ++received_;
        forward(payload);
    }
    void on_timer(net::timer_id) override {
        // Each endpoint expects ~in_flight receipts per round trip; top up by its share of the loss.
        std::byte payload[payload_size]{};
        if (t_.random().chance(0.01 * in_flight * 10)) forward(payload);
        t_.set_timer(1, t_.now() + 10ms);
    }

private:
    void forward(std::span<const std::byte> payload) {
        const auto& peer = s_.peers[t_.random().below(s_.peers.size())];
        t_.send(peer, payload);
    }

    net::transport& t_;
    const shared_state& s_;
    std::uint64_t received_ = 0;
};

struct row {
    std::size_t nodes;
    double virtual_s;
    double wall_s;
    double cpu_s;
    std::uint64_t delivered;
    std::uint64_t dropped;
    std::uint64_t hash;
};

row run(std::size_t nodes, double seconds) {
    sim::network_config config;
    config.seed = 42;
    config.default_link.latency = 1ms;
    config.default_link.jitter = 200us;
    config.default_link.distribution = sim::latency_distribution::uniform;
    config.default_link.loss = 0.01;
    auto created = sim::network::create(config);
    if (!created) {
        fmt::print(stderr, "bad config: {}\n", created.error().describe());
        std::exit(1);
    }
    sim::network net = std::move(*created);
    shared_state shared;
    for (std::size_t i = 0; i < nodes; ++i) {
        auto id = net.add_node();
        shared.peers.push_back(net.endpoint_of(id, port));
    }
    for (std::size_t i = 0; i < nodes; ++i)
        (void)net.add_protocol(static_cast<sim::node_id>(i), port,
                               [&shared](net::transport& t) { return std::make_unique<bouncer>(t, shared); });
    net.run_for(50ms); // warm up: pools and queue reach their steady size
    const auto before = net.stats();
    const auto start = std::chrono::steady_clock::now();
    const std::clock_t cpu_start = std::clock();
    net.run_for(std::chrono::duration_cast<swarm::duration>(std::chrono::duration<double>(seconds)));
    const auto wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    const auto& after = net.stats();
    return {nodes, seconds, wall, cpu, after.delivered - before.delivered,
            after.dropped_total() - before.dropped_total(), net.trace_hash()};
}

} // namespace

int main(int argc, char** argv) {
    double seconds = 2;
    std::vector<std::size_t> sizes{1000, 10000};
    for (int i = 1; i < argc; ++i) {
        if (std::string_view(argv[i]) == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
        else if (std::string_view(argv[i]) == "--nodes" && i + 1 < argc) sizes = {std::strtoul(argv[++i], nullptr, 10)};
        else {
            fmt::print(stderr, "usage: {} [--seconds S] [--nodes N]\n", argv[0]);
            return 2;
        }
    }
    if (sizes[0] < 2) {
        fmt::print(stderr, "--nodes must be at least 2\n");
        return 2;
    }
    if (!(seconds > 0)) {
        fmt::print(stderr, "--seconds must be positive\n");
        return 2;
    }
    fmt::print("{:>8} {:>10} {:>8} {:>8} {:>12} {:>10} {:>14} {:>14} {:>18}\n", "nodes", "virtual_s", "wall_s",
               "cpu_s", "delivered", "dropped", "delivered/s", "per_cpu_s", "trace_hash");
    for (std::size_t nodes : sizes) {
        // The same number of messages per size: 10x the endpoints run a tenth of the virtual time.
        row r = run(nodes, seconds * 1000.0 / static_cast<double>(nodes));
        fmt::print("{:>8} {:>10.2f} {:>8.3f} {:>8.3f} {:>12} {:>10} {:>14.0f} {:>14.0f} {:>18x}\n", r.nodes,
                   r.virtual_s, r.wall_s, r.cpu_s, r.delivered, r.dropped, static_cast<double>(r.delivered) / r.wall_s,
                   static_cast<double>(r.delivered) / r.cpu_s, r.hash);
    }
}
