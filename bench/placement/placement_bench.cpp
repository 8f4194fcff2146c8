// Placement, decision only: swarm's scheduler against full-scan first-fit and best-fit baselines, side by side
// in one run, over Nomad's benchmark grid (1k, 5k, 10k nodes; 10 to 75 racks; 300 to 1,200 allocations per
// job; spread on and off) plus 100k nodes, with 0, 1, 5 and 20 constraints.
//
// Each row fills the cluster to half its CPU with jobs of mixed shapes, then checks every assignment
// independently (constraints and capacity) and reports quality next to speed.
//
//   swarm_bench_placement [--quick] [--nodes N] [--baseline-seconds S]
#include <swarm/core/random.hpp>
#include <swarm/placement/scheduler.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <regex>
#include <string>
#include <vector>

namespace sp = swarm::placement;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::int64_t node_cpu = 4000;
constexpr std::int64_t node_mem = std::int64_t{8} << 30;
constexpr double fill = 0.5;

struct grid_row {
    std::size_t nodes;
    std::size_t racks;
    std::uint32_t allocs; // per job
};

sp::cluster make_cluster(const grid_row& row) {
    sp::cluster c;
    c.nodes.reserve(row.nodes);
    for (std::size_t i = 0; i < row.nodes; ++i) {
        sp::node n;
        n.id = fmt::format("n{}", i);
        n.capacity.cpu_millis = node_cpu;
        n.capacity.memory_bytes = node_mem;
        n.capacity.disk_bytes = std::int64_t{100} << 30;
        const auto rack = i % row.racks;
        n.labels = {{"rack", fmt::format("r{}", rack)},
                    {"zone", fmt::format("z{}", rack % 3)},
                    {"arch", ((i * 2654435761u) >> 7) % 20 == 3 ? "arm64" : "amd64"},
                    {"os", "linux"},
                    {"kernel", fmt::format("5.{}", 10 + i % 6)}};
        for (int k = 0; k < 15; ++k) n.labels.emplace_back(fmt::format("a{}", k), k % 2 ? "x" : "y");
        c.nodes.push_back(std::move(n));
    }
    return c;
}

std::vector<sp::constraint> make_constraints(std::size_t count) {
    using op = sp::constraint_op;
    std::vector<sp::constraint> all = {
        {"arch", op::equals, {"amd64"}},        {"os", op::equals, {"linux"}},
        {"kernel", op::version_ge, {"5.10"}},   {"zone", op::in, {"z0", "z1", "z2"}},
        {"rack", op::regex, {"r[0-9]+"}},
    };
    for (int k = 0; all.size() < 20; ++k) {
        const auto label = fmt::format("a{}", k);
        switch (k % 3) {
        case 0: all.push_back({label, op::exists, {}}); break;
        case 1: all.push_back({label, op::not_equals, {"bad"}}); break;
        default: all.push_back({label, op::in, {"x", "y"}}); break;
        }
    }
    all.resize(count);
    return all;
}

struct job {
    std::uint32_t count;
    std::int64_t cpu, mem;
};

std::vector<job> make_jobs(const grid_row& row, std::uint64_t seed) {
    swarm::rng r(seed);
    std::vector<job> jobs;
    const double budget = fill * static_cast<double>(row.nodes) * node_cpu;
    double total = 0;
    while (total < budget) {
        // Shapes roughly in the nodes' CPU:memory ratio (2 MiB per millicore), as services usually are.
        static constexpr std::int64_t cpus[] = {300, 500, 700, 1100, 1500};
        static constexpr std::int64_t mem_percent[] = {80, 100, 120};
        const auto cpu = cpus[r.below(5)];
        job j{row.allocs, cpu, cpu * (std::int64_t{2} << 20) * mem_percent[r.below(3)] / 100};
        const double remaining = (budget - total) / static_cast<double>(j.cpu);
        if (remaining < j.count) j.count = static_cast<std::uint32_t>(std::max(1.0, std::ceil(remaining)));
        total += static_cast<double>(j.count) * static_cast<double>(j.cpu);
        jobs.push_back(j);
    }
    return jobs;
}

/// A node as a naive scheduler sees it: labels it searches on every decision.
struct plain_node {
    std::vector<std::pair<std::string, std::string>> labels; // sorted
    std::int64_t cpu_used = 0, mem_used = 0;
};

struct compiled {
    sp::constraint c;
    std::regex pattern;
};

/// Straightforward per-node evaluation, the regex compiled once per job: what a scan without class caching pays.
bool satisfies(const plain_node& n, const std::vector<compiled>& cs) {
    for (const auto& k : cs) {
        auto it = std::lower_bound(n.labels.begin(), n.labels.end(), k.c.label,
                                   [](const auto& kv, const std::string& key) { return kv.first < key; });
        const std::string* v = it != n.labels.end() && it->first == k.c.label ? &it->second : nullptr;
        using op = sp::constraint_op;
        switch (k.c.op) {
        case op::equals: if (!v || *v != k.c.values[0]) return false; break;
        case op::not_equals: if (v && *v == k.c.values[0]) return false; break;
        case op::in: if (!v || std::find(k.c.values.begin(), k.c.values.end(), *v) == k.c.values.end()) return false; break;
        case op::exists: if (!v) return false; break;
        case op::regex: if (!v || !std::regex_match(*v, k.pattern)) return false; break;
        case op::version_ge: {
            // Labels here are "5.N": compare the minor number.
            if (!v) return false;
            int minor = 0;
            std::from_chars(v->data() + 2, v->data() + v->size(), minor);
            if (minor < 10) return false;
            break;
        }
        default: return false;
        }
    }
    return true;
}

std::vector<compiled> compile_all(const std::vector<sp::constraint>& cs) {
    std::vector<compiled> out;
    for (const auto& c : cs) out.push_back({c, c.op == sp::constraint_op::regex ? std::regex(c.values[0]) : std::regex()});
    return out;
}

struct outcome {
    std::size_t placed = 0;
    std::size_t failed = 0;
    double seconds = 0;
    std::vector<double> decision_ns;
    std::vector<std::uint32_t> node_of; // per placement, in job order
    std::vector<std::uint32_t> job_of;
    bool complete = true;
};

enum class fit { first, best };

/// Jobs in arrival order, or largest instance first (what a batch allows: first-fit decreasing).
std::vector<std::size_t> job_order(const std::vector<job>& jobs, bool decreasing) {
    std::vector<std::size_t> order(jobs.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    auto share = [&](std::size_t j) {
        return std::max(static_cast<double>(jobs[j].cpu) / node_cpu, static_cast<double>(jobs[j].mem) / static_cast<double>(node_mem));
    };
    if (decreasing) std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return share(a) > share(b); });
    return order;
}

outcome run_baseline(fit kind, const grid_row& row, const sp::cluster& c, const std::vector<job>& jobs,
                     const std::vector<sp::constraint>& cons, bool spread, double budget_s, bool decreasing = false) {
    std::vector<plain_node> nodes(c.nodes.size());
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        nodes[i].labels = c.nodes[i].labels;
        std::sort(nodes[i].labels.begin(), nodes[i].labels.end());
    }
    const auto compiled_cons = compile_all(cons);
    outcome o;
    const auto start = clock_type::now();
    const auto order = job_order(jobs, decreasing);
    for (std::size_t k = 0; k < order.size(); ++k) {
        const auto j = order[k];
        const auto& jb = jobs[j];
        std::vector<std::uint32_t> per_rack(row.racks, 0);
        for (std::uint32_t i = 0; i < jb.count; ++i) {
            const auto t0 = clock_type::now();
            // Spread: the least used rack first, the next one when it has no room.
            std::vector<std::size_t> rack_order(spread ? row.racks : 1, 0);
            std::iota(rack_order.begin(), rack_order.end(), std::size_t{0});
            if (spread)
                std::stable_sort(rack_order.begin(), rack_order.end(), [&](auto a, auto b) { return per_rack[a] < per_rack[b]; });
            std::size_t chosen = nodes.size();
            std::size_t want_rack = 0;
            for (auto rack : rack_order) {
                std::int64_t best_left = std::numeric_limits<std::int64_t>::max();
                // Racks are i % racks, so a rack-restricted scan strides through the nodes.
                const std::size_t first = spread ? rack : 0, step = spread ? row.racks : 1;
                for (std::size_t n = first; n < nodes.size(); n += step) {
                    auto& pn = nodes[n];
                    if (pn.cpu_used + jb.cpu > node_cpu || pn.mem_used + jb.mem > node_mem) continue;
                    if (!satisfies(pn, compiled_cons)) continue;
                    if (kind == fit::first) {
                        chosen = n;
                        break;
                    }
                    const std::int64_t left = (node_cpu - pn.cpu_used - jb.cpu) * 1000 / node_cpu +
                                              (node_mem - pn.mem_used - jb.mem) * 1000 / node_mem;
                    if (left < best_left) {
                        best_left = left;
                        chosen = n;
                    }
                }
                want_rack = rack;
                if (chosen < nodes.size()) break;
            }
            if (chosen < nodes.size()) {
                nodes[chosen].cpu_used += jb.cpu;
                nodes[chosen].mem_used += jb.mem;
                o.node_of.push_back(static_cast<std::uint32_t>(chosen));
                o.job_of.push_back(static_cast<std::uint32_t>(j));
                ++o.placed;
                if (spread) ++per_rack[want_rack];
            } else {
                ++o.failed;
            }
            o.decision_ns.push_back(static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count()));
        }
        if (std::chrono::duration<double>(clock_type::now() - start).count() > budget_s && k + 1 < jobs.size()) {
            o.complete = false;
            break;
        }
    }
    o.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    return o;
}

std::uint32_t parse_index(const std::string& id) {
    std::uint32_t v = 0;
    std::from_chars(id.data() + 1, id.data() + id.size(), v);
    return v;
}

std::vector<sp::workload> make_workloads(const std::vector<job>& jobs, const std::vector<sp::constraint>& cons, bool spread) {
    std::vector<sp::workload> out;
    for (std::size_t j = 0; j < jobs.size(); ++j) {
        sp::workload w;
        w.id = fmt::format("job{}", j);
        sp::group g;
        g.name = "g";
        g.count = jobs[j].count;
        g.demand.cpu_millis = jobs[j].cpu;
        g.demand.memory_bytes = jobs[j].mem;
        g.constraints = cons;
        if (spread) g.spread_over = sp::spread{"rack", {}};
        w.groups.push_back(std::move(g));
        out.push_back(std::move(w));
    }
    return out;
}

/// One schedule() call per job (jobs arriving one by one), or one call for all of them (a batch).
outcome run_swarm(const sp::cluster& c, const std::vector<sp::workload>& ws, bool timed_decisions, bool batch = false) {
    sp::scheduler_config cfg;
    cfg.seed = 42;
    cfg.largest_first = batch;
    auto s = sp::scheduler::create(c, cfg).value();
    outcome o;
    // Per-decision latency comes from the admission hook's call times: it runs once per decision, so the gap
    // between calls is one decision (the first of a job also carries the job's setup). Only in the timed pass.
    clock_type::time_point last;
    sp::admission stamp;
    stamp.admit = [&](const sp::proposal&) {
        const auto now = clock_type::now();
        o.decision_ns.push_back(static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count()));
        last = now;
        return true;
    };
    double total = 0;
    if (batch) {
        const auto t0 = clock_type::now();
        last = t0;
        auto p = s.schedule(std::span(ws), timed_decisions ? &stamp : nullptr).value();
        o.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
        o.placed = p.assignments.size();
        o.failed = p.unplaced.size();
        for (const auto& a : p.assignments) {
            o.node_of.push_back(parse_index(a.node));
            std::uint32_t j = 0;
            std::from_chars(a.workload.data() + 3, a.workload.data() + a.workload.size(), j); // "job<j>"
            o.job_of.push_back(j);
        }
        return o;
    }
    for (std::size_t j = 0; j < ws.size(); ++j) {
        const auto t0 = clock_type::now();
        last = t0;
        auto p = s.schedule(std::span(&ws[j], 1), timed_decisions ? &stamp : nullptr).value();
        total += std::chrono::duration<double>(clock_type::now() - t0).count();
        o.placed += p.assignments.size();
        o.failed += p.unplaced.size();
        for (const auto& a : p.assignments) {
            o.node_of.push_back(parse_index(a.node));
            o.job_of.push_back(static_cast<std::uint32_t>(j));
        }
    }
    o.seconds = total;
    return o;
}

struct quality {
    std::size_t used = 0;
    std::size_t lower_bound = 0;
    double stranded_pct = 0;
    std::uint32_t skew = 0;
    std::size_t violations = 0;
};

quality assess(const grid_row& row, const sp::cluster& c, const std::vector<job>& jobs, const std::vector<sp::constraint>& cons,
               bool spread, const outcome& o) {
    quality q;
    std::vector<std::int64_t> cpu(c.nodes.size(), 0), mem(c.nodes.size(), 0);
    std::vector<plain_node> plain(c.nodes.size());
    for (std::size_t i = 0; i < plain.size(); ++i) {
        plain[i].labels = c.nodes[i].labels;
        std::sort(plain[i].labels.begin(), plain[i].labels.end());
    }
    const auto compiled_cons = compile_all(cons);
    std::vector<std::uint8_t> checked(c.nodes.size(), 0);
    double sum_cpu = 0, sum_mem = 0;
    std::map<std::uint32_t, std::vector<std::uint32_t>> per_job_rack;
    for (std::size_t k = 0; k < o.node_of.size(); ++k) {
        const auto n = o.node_of[k];
        const auto& jb = jobs[o.job_of[k]];
        cpu[n] += jb.cpu;
        mem[n] += jb.mem;
        sum_cpu += static_cast<double>(jb.cpu);
        sum_mem += static_cast<double>(jb.mem);
        if (!checked[n]) {
            checked[n] = 1;
            if (!satisfies(plain[n], compiled_cons)) ++q.violations;
        }
        if (spread) {
            auto& racks = per_job_rack[o.job_of[k]];
            racks.resize(row.racks, 0);
            ++racks[n % row.racks];
        }
    }
    std::int64_t stranded = 0, used_cap = 0;
    for (std::size_t n = 0; n < c.nodes.size(); ++n) {
        if (cpu[n] > node_cpu || mem[n] > node_mem) ++q.violations;
        if (cpu[n] == 0 && mem[n] == 0) continue;
        ++q.used;
        used_cap += node_cpu;
        // CPU left on a node whose memory cannot take even the smallest instance (300 millicores at 80%) is stranded.
        if (node_mem - mem[n] < 300 * (std::int64_t{2} << 20) * 80 / 100) stranded += node_cpu - cpu[n];
    }
    q.stranded_pct = used_cap ? 100.0 * static_cast<double>(stranded) / static_cast<double>(used_cap) : 0;
    q.lower_bound = static_cast<std::size_t>(std::max(std::ceil(sum_cpu / node_cpu), std::ceil(sum_mem / static_cast<double>(node_mem))));
    for (const auto& [j, racks] : per_job_rack) {
        // Only racks that have nodes able to take the job count; here every rack qualifies.
        const auto [lo, hi] = std::minmax_element(racks.begin(), racks.end());
        q.skew = std::max(q.skew, *hi - *lo);
    }
    return q;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

} // namespace

int main(int argc, char** argv) {
    bool quick = false;
    std::size_t only_nodes = 0;
    double baseline_budget = 2.0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) quick = true;
        else if (std::strcmp(argv[i], "--nodes") == 0 && i + 1 < argc) only_nodes = std::stoul(argv[++i]);
        else if (std::strcmp(argv[i], "--baseline-seconds") == 0 && i + 1 < argc) baseline_budget = std::stod(argv[++i]);
        else {
            fmt::print(stderr, "usage: {} [--quick] [--nodes N] [--baseline-seconds S]\n", argv[0]);
            return 2;
        }
    }
    std::vector<grid_row> grid = {{1000, 10, 300}, {5000, 25, 600}, {10000, 75, 1200}, {100000, 250, 1200}};
    std::vector<std::size_t> constraint_counts = {0, 1, 5, 20};
    if (quick) constraint_counts = {5};
    fmt::print("| nodes | racks | allocs/job | constraints | spread | scheduler | placements/s | p50 us | p99 us | machines/LB | stranded cpu % | skew | violations | vs first-fit | vs best-fit |\n");
    fmt::print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (const auto& row : grid) {
        if (only_nodes && row.nodes != only_nodes) continue;
        const auto c = make_cluster(row);
        const auto jobs = make_jobs(row, row.nodes);
        for (auto nc : constraint_counts)
            for (bool spread : {false, true}) {
                const auto cons = make_constraints(nc);
                const auto ws = make_workloads(jobs, cons, spread);
                auto mine = run_swarm(c, ws, false);
                const auto timed = run_swarm(c, ws, true);
                mine.decision_ns = timed.decision_ns;
                const auto ff = run_baseline(fit::first, row, c, jobs, cons, spread, baseline_budget);
                const auto bf = run_baseline(fit::best, row, c, jobs, cons, spread, baseline_budget);
                auto batch = run_swarm(c, ws, false, true);
                batch.decision_ns = run_swarm(c, ws, true, true).decision_ns;
                const auto bfd = run_baseline(fit::best, row, c, jobs, cons, spread, baseline_budget, true);
                const double batch_rate = static_cast<double>(batch.placed) / batch.seconds;
                const double bfd_rate = static_cast<double>(bfd.placed) / bfd.seconds;
                const double rate = static_cast<double>(mine.placed) / mine.seconds;
                const double ff_rate = static_cast<double>(ff.placed) / ff.seconds;
                const double bf_rate = static_cast<double>(bf.placed) / bf.seconds;
                auto line = [&](std::string_view name, const outcome& o, double r, std::string ratio_ff, std::string ratio_bf) {
                    const auto q = assess(row, c, jobs, cons, spread, o);
                    const std::string packing = o.complete ? fmt::format("{}/{} = {:.3f}", q.used, q.lower_bound,
                                                                         static_cast<double>(q.used) / static_cast<double>(q.lower_bound))
                                                           : fmt::format("partial ({} placed)", o.placed);
                    fmt::print("| {} | {} | {} | {} | {} | {} | {:.0f} | {:.2f} | {:.2f} | {} | {:.2f} | {} | {} | {} | {} |\n", row.nodes,
                               row.racks, row.allocs, nc, spread ? "on" : "off", name, r, percentile(o.decision_ns, 0.5) / 1000,
                               percentile(o.decision_ns, 0.99) / 1000, packing, q.stranded_pct, spread ? fmt::format("{}", q.skew) : "-",
                               q.violations + (o.failed && o.complete ? 0 : 0), ratio_ff, ratio_bf);
                };
                line("swarm", mine, rate, fmt::format("{:.1f}x", rate / ff_rate), fmt::format("{:.1f}x", rate / bf_rate));
                line("first-fit", ff, ff_rate, "1.0x", "");
                line("best-fit", bf, bf_rate, "", "1.0x");
                line("swarm, one batch", batch, batch_rate, fmt::format("{:.1f}x", batch_rate / ff_rate),
                     fmt::format("{:.1f}x", batch_rate / bfd_rate));
                line("best-fit decreasing", bfd, bfd_rate, "", "1.0x");
                std::fflush(stdout);
            }
    }
    return 0;
}
