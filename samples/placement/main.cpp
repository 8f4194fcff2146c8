// Loads a cluster and workloads from JSON, schedules them, and prints the plan and every explanation.
//
//   swarm_placement cluster.json workloads.json [--seed N] [--json]
#include <swarm/placement/json.hpp>
#include <swarm/placement/scheduler.hpp>

#include <fmt/format.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sp = swarm::placement;

namespace {

bool read_file(const char* path, std::string& out) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return false;
    std::ostringstream s;
    s << in.rdbuf();
    out = s.str();
    return true;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        fmt::print(stderr, "usage: {} cluster.json workloads.json [--seed N] [--json]\n", argv[0]);
        return 2;
    }
    sp::scheduler_config config;
    bool as_json = false;
    for (int i = 3; i < argc; ++i) {
        if (std::strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            const std::string_view s = argv[++i];
            if (std::from_chars(s.data(), s.data() + s.size(), config.seed).ec != std::errc{}) {
                fmt::print(stderr, "--seed expects a number, got '{}'\n", s);
                return 2;
            }
        } else {
            fmt::print(stderr, "unknown argument '{}'\n", argv[i]);
            return 2;
        }
    }
    std::string cluster_text, workloads_text;
    for (auto [path, out] : {std::pair{argv[1], &cluster_text}, std::pair{argv[2], &workloads_text}})
        if (!read_file(path, *out)) {
            fmt::print(stderr, "cannot read {}\n", path);
            return 1;
        }
    auto cluster = sp::cluster_from_json(cluster_text);
    if (!cluster) {
        fmt::print(stderr, "{}: {}\n", argv[1], cluster.error().describe());
        return 1;
    }
    auto workloads = sp::workloads_from_json(workloads_text);
    if (!workloads) {
        fmt::print(stderr, "{}: {}\n", argv[2], workloads.error().describe());
        return 1;
    }
    auto scheduler = sp::scheduler::create(*cluster, config);
    if (!scheduler) {
        fmt::print(stderr, "{}: {}\n", argv[1], scheduler.error().describe());
        return 1;
    }
    auto plan = scheduler->schedule(*workloads);
    if (!plan) {
        fmt::print(stderr, "{}: {}\n", argv[2], plan.error().describe());
        return 1;
    }
    if (as_json) {
        fmt::print("{}\n", sp::to_json(*plan));
        return 0;
    }
    fmt::print("{} nodes in {} classes; plan {:016x}\n\n", scheduler->node_count(), scheduler->class_count(), plan->hash());
    for (const auto& a : plan->assignments)
        fmt::print("  {}/{}#{} -> {} (score {:.3f})\n", a.workload, a.group, a.instance, a.node, a.score);
    for (const auto& e : plan->evictions)
        fmt::print("  evict {} (priority {}) on {} for {}\n", e.allocation, e.priority, e.node, e.for_workload);
    for (const auto& w : plan->warnings) fmt::print("\nwarning: {}\n", w);
    if (!plan->unplaced.empty()) fmt::print("\nnot placed:\n");
    for (const auto& e : plan->unplaced) {
        fmt::print("  {}/{}#{}: {}\n", e.workload, e.group, e.instance, e.summary);
        for (const auto& f : e.filters) fmt::print("      filter '{}' rejected {} node(s)\n", f.filter, f.nodes);
        for (const auto& x : e.exhausted) fmt::print("      {} node(s) short of {}\n", x.nodes, x.filter);
        if (e.preemption)
            fmt::print("      preemption on {} would free {} millicores, {} bytes by evicting {}\n", e.preemption->node,
                       e.preemption->freed.cpu_millis, e.preemption->freed.memory_bytes, fmt::join(e.preemption->allocations, ", "));
    }
    return 0;
}
