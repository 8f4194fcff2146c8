// Placement end to end under the simulator: a scheduler node plans each workload and every instance goes
// through its target's admission (a request and an answer over a simulated stream), against the
// decision-only scheduler on the same cluster and jobs in the same run.
//
// Wall-clock rates measure this process's work (planning, encoding, sealing, the simulator's event
// handling); the simulated latency costs no wall time and is reported separately as virtual time per job.
//
//   swarm_bench_placement_e2e [--nodes N[,N...]] [--instances-per-job K] [--schedulers S]
#include <swarm/placement/admission.hpp>
#include <swarm/sim/network.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace sp = swarm::placement;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::uint16_t port = 7300;
constexpr std::int64_t node_cpu = 4000;
constexpr std::int64_t node_mem = std::int64_t{8} << 30;

sp::node make_node(std::size_t i, std::size_t racks) {
    sp::node n;
    n.id = fmt::format("n{}", i);
    n.capacity.cpu_millis = node_cpu;
    n.capacity.memory_bytes = node_mem;
    n.capacity.disk_bytes = std::int64_t{100} << 30;
    n.labels = {{"rack", fmt::format("r{}", i % racks)}, {"os", "linux"}};
    return n;
}

/// Jobs of mixed shapes filling half the cluster's CPU, the same for every mode.
std::vector<sp::workload> make_jobs(std::size_t nodes, std::uint32_t per_job) {
    std::vector<sp::workload> out;
    static constexpr std::int64_t cpus[] = {300, 500, 700, 1100, 1500};
    std::int64_t total = 0;
    const auto budget = static_cast<std::int64_t>(nodes) * node_cpu / 2;
    for (std::size_t j = 0; total < budget; ++j) {
        sp::workload w;
        w.id = fmt::format("job{}", j);
        sp::group g;
        g.name = "g";
        g.count = per_job;
        g.demand.cpu_millis = cpus[j % 5];
        g.demand.memory_bytes = g.demand.cpu_millis * (std::int64_t{2} << 20);
        g.constraints.push_back({"os", sp::constraint_op::equals, {"linux"}});
        total += g.demand.cpu_millis * per_job;
        w.groups.push_back(std::move(g));
        out.push_back(std::move(w));
    }
    return out;
}

struct e2e_result {
    std::size_t placed = 0;
    std::size_t unplaced = 0;
    std::uint64_t refusals = 0;
    double wall_s = 0;
    double virtual_ms_per_job_p50 = 0;
    double virtual_ms_per_job_p99 = 0;
};

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

e2e_result run_e2e(std::size_t nodes, const std::vector<sp::workload>& jobs, std::size_t schedulers, bool sealed) {
    swarm::sim::network_config nc;
    nc.seed = 7;
    nc.default_link.latency = 500us;
    auto net = swarm::sim::network::create(nc).value();
    std::optional<sp::admission_security> security;
    if (sealed) {
        security.emplace();
        std::array<std::byte, swarm::seal::key_size> key{};
        key.fill(std::byte{9});
        (void)security->keys.add(key);
    }
    sp::cluster view;
    std::map<sp::node_key, swarm::net::endpoint> addresses;
    const std::size_t racks = std::max<std::size_t>(1, nodes / 40);
    auto add = [&](sp::node self) {
        const auto id = net.add_node();
        auto sec = security;
        if (sec) sec->sender = id + 1;
        (void)net.add_protocol(id, port, [self, sec](swarm::net::transport& t) {
            return std::make_unique<sp::admission_node>(t, self, sp::admission_config{}, sec);
        });
        return id;
    };
    for (std::size_t i = 0; i < nodes; ++i) {
        auto n = make_node(i, racks);
        addresses[n.id] = net.endpoint_of(add(n), port);
        view.nodes.push_back(std::move(n));
    }
    std::vector<swarm::sim::node_id> sched;
    for (std::size_t s = 0; s < schedulers; ++s) {
        sp::node self;
        self.id = fmt::format("scheduler{}", s);
        sched.push_back(add(self));
    }
    net.run_for(1ms);
    for (auto s : sched) net.protocol_of<sp::admission_node>(s, port)->set_view(view, addresses);

    e2e_result r;
    std::vector<double> per_job;
    const auto start = clock_type::now();
    // Schedulers take jobs round-robin and run concurrently; each starts its next job when the last is done.
    std::size_t next = 0, done = 0;
    std::function<void(std::size_t)> start_next = [&](std::size_t s) {
        if (next >= jobs.size()) return;
        const auto& job = jobs[next++];
        const auto began = net.now();
        net.protocol_of<sp::admission_node>(sched[s], port)->place(job, [&, s, began](const sp::placement_outcome& o) {
            r.placed += o.placed.size();
            r.unplaced += o.unplaced.size();
            r.refusals += o.refusals;
            per_job.push_back(std::chrono::duration<double, std::milli>(net.now() - began).count());
            ++done;
            net.after(0s, [&, s] { start_next(s); });
        });
    };
    for (std::size_t s = 0; s < schedulers; ++s) start_next(s);
    net.run_until([&] { return done == jobs.size(); }, net.now() + 24h);
    r.wall_s = std::chrono::duration<double>(clock_type::now() - start).count();
    r.virtual_ms_per_job_p50 = percentile(per_job, 0.5);
    r.virtual_ms_per_job_p99 = percentile(per_job, 0.99);
    return r;
}

/// The anchor: the same jobs, decision only, one schedule() per job on one scheduler.
double run_decision_only(std::size_t nodes, const std::vector<sp::workload>& jobs, bool rebuild_per_job) {
    sp::cluster c;
    const std::size_t racks = std::max<std::size_t>(1, nodes / 40);
    for (std::size_t i = 0; i < nodes; ++i) c.nodes.push_back(make_node(i, racks));
    std::size_t placed = 0;
    const auto start = clock_type::now();
    auto s = sp::scheduler::create(c).value();
    for (const auto& job : jobs) {
        if (rebuild_per_job) {
            // What a scheduler node does per job: a scheduler over its current view. The view keeps the usage.
            auto fresh = sp::scheduler::create(c).value();
            auto p = fresh.schedule(std::span(&job, 1)).value();
            for (const auto& a : p.assignments) {
                auto& n = c.nodes[std::stoul(a.node.substr(1))];
                sp::allocation x;
                x.id = fmt::format("{}/{}/{}", a.workload, a.group, a.instance);
                x.workload = a.workload;
                x.group = a.group;
                x.demand = job.groups[0].demand;
                n.allocations.push_back(std::move(x));
            }
            placed += p.assignments.size();
        } else {
            placed += s.schedule(std::span(&job, 1)).value().assignments.size();
        }
    }
    return static_cast<double>(placed) / std::chrono::duration<double>(clock_type::now() - start).count();
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::size_t> sizes = {100, 1000};
    std::uint32_t per_job = 10;
    std::size_t schedulers = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--nodes") == 0 && i + 1 < argc) {
            sizes.clear();
            std::string list = argv[++i];
            for (std::size_t pos = 0; pos <= list.size();) {
                auto comma = list.find(',', pos);
                if (comma == std::string::npos) comma = list.size();
                sizes.push_back(std::stoul(list.substr(pos, comma - pos)));
                pos = comma + 1;
            }
        } else if (std::strcmp(argv[i], "--instances-per-job") == 0 && i + 1 < argc) {
            per_job = static_cast<std::uint32_t>(std::stoul(argv[++i]));
        } else if (std::strcmp(argv[i], "--schedulers") == 0 && i + 1 < argc) {
            schedulers = std::stoul(argv[++i]);
        } else {
            fmt::print(stderr, "usage: {} [--nodes N[,N...]] [--instances-per-job K] [--schedulers S]\n", argv[0]);
            return 2;
        }
    }
    fmt::print("| nodes | jobs x instances | schedulers | mode | placements/s (wall) | vs decision-only | virtual ms/job p50 | p99 | placed | unplaced | refusals |\n");
    fmt::print("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (auto nodes : sizes) {
        const auto jobs = make_jobs(nodes, per_job);
        const auto anchor = run_decision_only(nodes, jobs, false);
        const auto rebuilt = run_decision_only(nodes, jobs, true);
        const auto shape = fmt::format("{} x {}", jobs.size(), per_job);
        fmt::print("| {} | {} | 1 | decision only (anchor) | {:.0f} | 1.00x | - | - | - | - | - |\n", nodes, shape, anchor);
        fmt::print("| {} | {} | 1 | decision only, scheduler rebuilt per job | {:.0f} | {:.2f}x | - | - | - | - | - |\n", nodes, shape,
                   rebuilt, rebuilt / anchor);
        for (bool sealed : {false, true}) {
            const auto r = run_e2e(nodes, jobs, schedulers, sealed);
            const double rate = static_cast<double>(r.placed) / r.wall_s;
            fmt::print("| {} | {} | {} | admission round trips{} | {:.0f} | {:.2f}x | {:.2f} | {:.2f} | {} | {} | {} |\n", nodes, shape,
                       schedulers, sealed ? ", sealed" : "", rate, rate / anchor, r.virtual_ms_per_job_p50, r.virtual_ms_per_job_p99,
                       r.placed, r.unplaced, r.refusals);
            std::fflush(stdout);
        }
    }
    return 0;
}
