// The scheduler. Nodes with identical labels, GPU and capacity form a class; constraints are evaluated once
// per class per group. Usage lives in flat integer arrays (node * dimensions), so a decision touches only
// the candidates it examines and allocates nothing.
#include "placement/version.hpp"

#include <swarm/core/random.hpp>
#include <swarm/placement/scheduler.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <map>
#include <regex>
#include <unordered_map>
#include <unordered_set>

namespace swarm::inline v0::placement {
namespace {

using label_list = std::vector<std::pair<std::string, std::string>>;

constexpr std::size_t fixed_dims = 4;
constexpr std::string_view fixed_dim_names[fixed_dims] = {"cpu_millis", "memory_bytes", "disk_bytes", "gpus"};

const std::string* find_label(const label_list& labels, std::string_view key) {
    auto it = std::lower_bound(labels.begin(), labels.end(), key,
                               [](const auto& kv, std::string_view k) { return kv.first < k; });
    return it != labels.end() && it->first == key ? &it->second : nullptr;
}

std::string_view op_name(constraint_op op) {
    switch (op) {
    case constraint_op::equals: return "equals";
    case constraint_op::not_equals: return "not equals";
    case constraint_op::in: return "in";
    case constraint_op::not_in: return "not in";
    case constraint_op::regex: return "matches";
    case constraint_op::version_eq: return "version ==";
    case constraint_op::version_ne: return "version !=";
    case constraint_op::version_lt: return "version <";
    case constraint_op::version_le: return "version <=";
    case constraint_op::version_gt: return "version >";
    case constraint_op::version_ge: return "version >=";
    case constraint_op::exists: return "exists";
    case constraint_op::not_exists: return "does not exist";
    }
    return "?";
}

/// A constraint ready to run: its regex compiled and its version parsed once per group.
struct compiled_constraint {
    const constraint* source = nullptr;
    std::optional<std::regex> pattern;
    version wanted{};
    std::string description;

    bool test(const label_list& labels) const {
        const std::string* value = find_label(labels, source->label);
        const auto& values = source->values;
        switch (source->op) {
        case constraint_op::equals: return value && *value == values[0];
        case constraint_op::not_equals: return !value || *value != values[0];
        case constraint_op::in: return value && std::find(values.begin(), values.end(), *value) != values.end();
        case constraint_op::not_in: return !value || std::find(values.begin(), values.end(), *value) == values.end();
        case constraint_op::regex: return value && std::regex_match(*value, *pattern);
        case constraint_op::exists: return value != nullptr;
        case constraint_op::not_exists: return value == nullptr;
        default: break;
        }
        if (!value) return false;
        const auto have = parse_version(*value);
        if (!have) return false;
        switch (source->op) {
        case constraint_op::version_eq: return *have == wanted;
        case constraint_op::version_ne: return *have != wanted;
        case constraint_op::version_lt: return *have < wanted;
        case constraint_op::version_le: return *have <= wanted;
        case constraint_op::version_gt: return *have > wanted;
        case constraint_op::version_ge: return *have >= wanted;
        default: return false;
        }
    }
};

compiled_constraint compile(const constraint& c) {
    compiled_constraint out;
    out.source = &c;
    if (c.op == constraint_op::regex) out.pattern.emplace(c.values[0], std::regex::ECMAScript | std::regex::optimize);
    if (c.op >= constraint_op::version_eq && c.op <= constraint_op::version_ge) out.wanted = *parse_version(c.values[0]);
    if (c.values.empty())
        out.description = fmt::format("label {} {}", c.label, op_name(c.op));
    else if (c.values.size() == 1)
        out.description = fmt::format("label {} {} {}", c.label, op_name(c.op), c.values[0]);
    else
        out.description = fmt::format("label {} {} {{{}}}", c.label, op_name(c.op), fmt::join(c.values, ", "));
    return out;
}

struct node_class {
    label_list labels;
    std::string gpu_model;
    std::int64_t gpu_memory = 0;
    std::uint32_t label_class = 0; // classes sharing labels and GPU (capacity may differ)
    std::vector<std::uint32_t> members;
};

struct alloc_rec {
    std::string id;
    std::uint32_t workload = 0; // interned
    std::uint32_t group = 0;    // interned
    std::int32_t priority = 0;
    std::size_t demand = 0; // offset into the demand pool
    bool evicted = false;
    std::uint32_t instance = 0; // for allocations this scheduler placed, which have no id of their own
    std::uint32_t max_per_node = 0; // the group's host anti-affinity; 0: none
};

/// Nodes not yet examined (`order`, consumed through a cursor) and nodes this group already uses (`open`).
/// Nodes that can never take another instance of the group leave both, so decisions stay O(k).
struct sampler {
    std::vector<std::uint32_t> order;
    std::size_t cursor = 0;
    std::vector<std::uint32_t> open;
    std::size_t open_cursor = 0;
    std::vector<std::uint32_t> own;                // this bucket's feasible nodes, when spreading
    const std::vector<std::uint32_t>* members = &own; // all feasible nodes of this scope, for full scans
};

struct candidate {
    double score = 0;
    std::uint32_t node = 0;
};

} // namespace

struct scheduler::impl {
    scheduler_config config;
    std::vector<std::string> dim_names;
    std::unordered_map<std::string, std::size_t> device_dims;
    std::size_t dims = fixed_dims;

    std::vector<node_key> ids;
    std::unordered_map<std::string_view, std::uint32_t> index_of;
    std::vector<std::int64_t> capacity; // node * dims
    std::vector<std::int64_t> used;
    std::vector<std::uint32_t> class_of;
    std::vector<node_class> classes;
    std::uint32_t label_classes = 0;
    std::vector<double> price, carbon, load;
    double max_price = 0, max_carbon = 0;
    std::unordered_map<std::string, std::vector<std::uint32_t>> content;

    std::vector<std::vector<alloc_rec>> allocs;
    std::vector<std::uint32_t> live; // live allocations per node
    std::vector<std::uint32_t> perm; // seeded node order, drawn once, so groups need no shuffle of their own
    std::vector<std::uint32_t> open_mark; // == a group's generation: the node is in that group's open list
    std::uint32_t generation = 0;
    std::vector<std::int64_t> demand_pool;
    std::unordered_map<std::string, std::uint32_t> names;
    std::vector<std::string> name_list;
    // (workload, group) -> nodes holding its live allocations, one entry per allocation.
    std::map<std::pair<std::uint32_t, std::uint32_t>, std::vector<std::uint32_t>> group_nodes;

    rng random;

    std::string name_of(const alloc_rec& a) const {
        return a.id.empty() ? fmt::format("{}/{}#{}", name_list[a.workload], name_list[a.group], a.instance) : a.id;
    }

    std::uint32_t intern(const std::string& s) {
        auto [it, inserted] = names.try_emplace(s, static_cast<std::uint32_t>(name_list.size()));
        if (inserted) name_list.push_back(s);
        return it->second;
    }

    std::int64_t* used_of(std::uint32_t n) { return used.data() + std::size_t{n} * dims; }
    const std::int64_t* cap_of(std::uint32_t n) const { return capacity.data() + std::size_t{n} * dims; }

    void add_usage(std::uint32_t n, const std::int64_t* demand, std::int64_t sign) {
        auto* u = used_of(n);
        for (std::size_t d = 0; d < dims; ++d) u[d] += sign * demand[d];
    }

    void remove_group_node(std::uint32_t wl, std::uint32_t grp, std::uint32_t n) {
        auto it = group_nodes.find({wl, grp});
        if (it == group_nodes.end()) return;
        auto& v = it->second;
        if (auto pos = std::find(v.begin(), v.end(), n); pos != v.end()) v.erase(pos);
    }

    double utilisation(std::uint32_t n) const {
        const auto* c = cap_of(n);
        const auto* u = used.data() + std::size_t{n} * dims;
        double sum = 0;
        int counted = 0;
        for (std::size_t d = 0; d < dims; ++d)
            if (c[d] > 0) {
                sum += static_cast<double>(u[d]) / static_cast<double>(c[d]);
                ++counted;
            }
        return counted ? sum / counted : 0;
    }

    detailed_result<void> build(const cluster& snapshot);
    detailed_result<plan> schedule(std::span<const workload> workloads, const admission* admit);
    detailed_result<rebalance_plan> rebalance(const rebalance_config& rc);
};

detailed_result<void> scheduler::impl::build(const cluster& snapshot) {
    dim_names.assign(std::begin(fixed_dim_names), std::end(fixed_dim_names));
    auto absurd = [&](double v) { return !std::isfinite(v) || v < 0 || v > 1e12; };
    for (const auto& n : snapshot.nodes) {
        if (n.id.empty()) return error(errc::invalid_argument, "cluster: a node has an empty id");
        const auto where = fmt::format("node '{}'", n.id);
        if (auto r = check_node_resources(n.capacity, where); !r) return r;
        if (n.capacity.cpu_millis > config.max_resource_value || n.capacity.memory_bytes > config.max_resource_value ||
            n.capacity.disk_bytes > config.max_resource_value || n.capacity.gpus > config.max_resource_value)
            return error(errc::invalid_argument, fmt::format("{}: capacity over max_resource_value", where));
        if (n.gpu_memory_bytes < 0) return error(errc::invalid_argument, fmt::format("{}: gpu_memory_bytes is negative", where));
        if (absurd(n.price_per_hour)) return error(errc::invalid_argument, fmt::format("{}: price_per_hour must be >= 0", where));
        if (absurd(n.carbon_g_per_kwh)) return error(errc::invalid_argument, fmt::format("{}: carbon_g_per_kwh must be >= 0", where));
        if (!std::isfinite(n.load) || n.load < 0 || n.load > 1)
            return error(errc::invalid_argument, fmt::format("{}: load must be in [0, 1], got {}", where, n.load));
        for (const auto& a : n.allocations) {
            if (a.id.empty()) return error(errc::invalid_argument, fmt::format("{}: an allocation has an empty id", where));
            if (auto r = check_node_resources(a.demand, fmt::format("{} allocation '{}'", where, a.id)); !r) return r;
        }
        for (const auto& [name, count] : n.capacity.devices)
            if (device_dims.try_emplace(name, dim_names.size()).second) dim_names.push_back("device " + name);
    }
    dims = dim_names.size();
    const std::size_t count = snapshot.nodes.size();
    ids.reserve(count);
    capacity.assign(count * dims, 0);
    used.assign(count * dims, 0);
    class_of.resize(count);
    allocs.resize(count);
    live.assign(count, 0);
    std::map<std::string, std::uint32_t> class_by_key;
    std::map<std::string, std::uint32_t> label_class_by_key;
    auto fill = [&](const resources& r, std::int64_t* out) {
        out[0] = r.cpu_millis;
        out[1] = r.memory_bytes;
        out[2] = r.disk_bytes;
        out[3] = r.gpus;
        for (const auto& [name, v] : r.devices) {
            auto it = device_dims.find(name);
            if (it != device_dims.end()) out[it->second] = v;
        }
    };
    std::vector<std::int64_t> demand(dims);
    for (std::uint32_t i = 0; i < count; ++i) {
        const auto& n = snapshot.nodes[i];
        ids.push_back(n.id);
        fill(n.capacity, capacity.data() + std::size_t{i} * dims);
        label_list labels = n.labels;
        std::sort(labels.begin(), labels.end());
        for (std::size_t k = 1; k < labels.size(); ++k)
            if (labels[k].first == labels[k - 1].first)
                return error(errc::invalid_argument, fmt::format("node '{}': label '{}' appears twice", n.id, labels[k].first));
        std::string label_key;
        for (const auto& [k, v] : labels) label_key += fmt::format("{}\x1f{}\x1e", k, v);
        label_key += fmt::format("\x1d{}\x1f{}", n.gpu_model, n.gpu_memory_bytes);
        auto [lit, lnew] = label_class_by_key.try_emplace(label_key, label_classes);
        if (lnew) ++label_classes;
        std::string key = label_key;
        for (std::size_t d = 0; d < dims; ++d) key += fmt::format("\x1c{}", capacity[std::size_t{i} * dims + d]);
        auto [it, inserted] = class_by_key.try_emplace(key, static_cast<std::uint32_t>(classes.size()));
        if (inserted) classes.push_back({std::move(labels), n.gpu_model, n.gpu_memory_bytes, lit->second, {}});
        class_of[i] = it->second;
        classes[it->second].members.push_back(i);
        price.push_back(n.price_per_hour);
        carbon.push_back(n.carbon_g_per_kwh);
        load.push_back(n.load);
        max_price = std::max(max_price, n.price_per_hour);
        max_carbon = std::max(max_carbon, n.carbon_g_per_kwh);
        std::unordered_set<std::string_view> alloc_ids;
        for (const auto& a : n.allocations) {
            if (!alloc_ids.insert(a.id).second)
                return error(errc::invalid_argument, fmt::format("node '{}': allocation '{}' appears twice", n.id, a.id));
            std::fill(demand.begin(), demand.end(), 0);
            for (const auto& [name, v] : a.demand.devices)
                if (!device_dims.contains(name))
                    return error(errc::invalid_argument,
                                 fmt::format("node '{}' allocation '{}': device '{}' is not in any node's capacity", n.id, a.id, name));
            fill(a.demand, demand.data());
            const std::size_t offset = demand_pool.size();
            demand_pool.insert(demand_pool.end(), demand.begin(), demand.end());
            add_usage(i, demand.data(), 1);
            const auto wl = intern(a.workload);
            const auto grp = intern(a.group);
            allocs[i].push_back({a.id, wl, grp, a.priority, offset, false, 0, a.max_per_node});
            ++live[i];
            group_nodes[{wl, grp}].push_back(i);
        }
    }
    for (std::uint32_t i = 0; i < count; ++i)
        if (!index_of.try_emplace(ids[i], i).second)
            return error(errc::invalid_argument, fmt::format("cluster: node id '{}' appears twice", ids[i]));
    for (const auto& c : snapshot.content) {
        auto it = index_of.find(c.node);
        if (it == index_of.end())
            return error(errc::invalid_argument, fmt::format("cluster: content '{}' is on unknown node '{}'", c.content, c.node));
        content[c.content].push_back(it->second);
    }
    random.reseed(config.seed);
    perm.resize(count);
    for (std::uint32_t i = 0; i < count; ++i) perm[i] = i;
    for (std::size_t i = count; i > 1; --i) std::swap(perm[i - 1], perm[random.below(i)]);
    open_mark.assign(count, 0);
    return {};
}

namespace {

/// Everything one group needs during a schedule call, built once per group, reused by every decision.
struct group_context {
    const workload* work = nullptr;
    const group* grp = nullptr;
    std::uint32_t wl_name = 0, grp_name = 0;
    std::vector<std::int64_t> demand;
    std::size_t demand_offset = 0;
    std::vector<std::size_t> active; // dimensions the group asks for
    std::vector<std::string> filter_names;
    std::vector<std::size_t> filter_rejects;
    std::vector<std::uint32_t> feasible; // passes every static filter, in seeded order
    std::vector<double> affinity_by_class;
    std::vector<std::uint8_t> near; // per node, only when locality counts
    std::uint32_t generation = 0;
    std::vector<std::uint32_t>* placed_nodes = nullptr;
    std::uint32_t host_max = std::numeric_limits<std::uint32_t>::max();
    std::unordered_map<std::uint32_t, std::uint32_t> host_count;
    struct label_limit {
        std::uint32_t max_per = 0;
        std::vector<std::int32_t> value_by_class;
        std::vector<std::uint32_t> count;
    };
    std::vector<label_limit> limits;
    std::vector<sampler> buckets; // one per spread value, or one for all
    std::vector<std::int32_t> bucket_by_class;
    std::vector<double> bucket_share;
    std::vector<std::uint32_t> bucket_count;
    std::vector<std::uint8_t> bucket_tried;
    bool full_scan = false;
    double w_binpack = 0, w_spread = 0, w_cost = 0, w_carbon = 0, w_load = 0, w_locality = 0, w_affinity = 0;
    std::uint32_t sample_open = 1;
    std::uint32_t ranked_limit = 1;
    std::vector<candidate> ranked;
    std::vector<std::uint32_t> excluded; // refused by admission for the current instance
    std::size_t refused = 0;
};

enum class undo_kind { place, evict };
struct undo_entry {
    undo_kind kind;
    std::uint32_t node;
    std::size_t alloc; // eviction: index in the node's allocations
};

struct admitted {
    const workload* work;
    const group* grp;
    std::uint32_t instance;
    std::uint32_t node;
};

} // namespace

struct scheduler_run {
    scheduler::impl& s;
    const admission* admit;
    plan& out;
    std::vector<undo_entry> undo;
    std::vector<admitted> accepted;

    bool fits(const group_context& g, std::uint32_t n) const {
        const auto* u = s.used.data() + std::size_t{n} * s.dims;
        const auto* c = s.cap_of(n);
        for (auto d : g.active)
            if (u[d] + g.demand[d] > c[d]) return false;
        return true;
    }

    bool anti_ok(const group_context& g, std::uint32_t n) const {
        if (g.host_max != std::numeric_limits<std::uint32_t>::max()) {
            auto it = g.host_count.find(n);
            if (it != g.host_count.end() && it->second >= g.host_max) return false;
        }
        for (const auto& l : g.limits) {
            const auto v = l.value_by_class[s.class_of[n]];
            if (v >= 0 && l.count[static_cast<std::size_t>(v)] >= l.max_per) return false;
        }
        return true;
    }

    static bool is_excluded(const group_context& g, std::uint32_t n) {
        return std::find(g.excluded.begin(), g.excluded.end(), n) != g.excluded.end();
    }

    double score(const group_context& g, std::uint32_t n) const {
        const auto* u = s.used.data() + std::size_t{n} * s.dims;
        const auto* c = s.cap_of(n);
        double full = 0;
        if (g.active.empty()) {
            full = s.utilisation(n);
        } else {
            for (auto d : g.active) full += static_cast<double>(u[d] + g.demand[d]) / static_cast<double>(c[d]);
            full /= static_cast<double>(g.active.size());
        }
        double total = g.w_binpack * full + g.w_spread * (1 - full);
        if (g.w_cost > 0) total += g.w_cost * (s.max_price > 0 ? 1 - s.price[n] / s.max_price : 1);
        if (g.w_carbon > 0) total += g.w_carbon * (s.max_carbon > 0 ? 1 - s.carbon[n] / s.max_carbon : 1);
        if (g.w_load > 0) total += g.w_load * (1 - s.load[n]);
        if (g.w_locality > 0) total += g.w_locality * g.near[n];
        if (g.w_affinity > 0) total += g.w_affinity * g.affinity_by_class[s.class_of[n]];
        return total;
    }

    void consider(group_context& g, std::uint32_t n) const {
        const candidate c{score(g, n), n};
        auto& r = g.ranked;
        if (r.size() == g.ranked_limit && !(c.score > r.back().score)) return;
        // Strictly better only: among equal scores the node examined first (seeded order) wins.
        auto pos = std::find_if(r.begin(), r.end(), [&](const candidate& x) { return c.score > x.score; });
        if (r.size() == g.ranked_limit) r.pop_back();
        r.insert(pos, c);
    }

    void scan(group_context& g, const std::vector<std::uint32_t>& nodes) const {
        for (auto n : nodes)
            if (fits(g, n) && anti_ok(g, n) && !is_excluded(g, n)) consider(g, n);
    }

    /// Power of k choices: the next k partially used nodes plus a few never-used ones. Nodes that can no
    /// longer take this group leave the lists, since usage only grows within a group.
    void sample(group_context& g, sampler& b) const {
        std::size_t examined = 0;
        std::size_t i = b.open_cursor;
        while (examined < std::min<std::size_t>(g.sample_open, b.open.size())) {
            if (i >= b.open.size()) i = 0;
            const auto n = b.open[i];
            if (!fits(g, n) || !anti_ok(g, n)) {
                b.open[i] = b.open.back();
                b.open.pop_back();
                continue;
            }
            ++examined;
            ++i;
            if (!is_excluded(g, n)) consider(g, n);
        }
        b.open_cursor = i;
        std::size_t got = 0;
        std::size_t steps = 0;
        const std::size_t limit = b.order.size();
        while (got < s.config.sample_fresh && !b.order.empty() && steps < limit) {
            ++steps;
            if (b.cursor >= b.order.size()) b.cursor = 0;
            const auto n = b.order[b.cursor];
            if (s.open_mark[n] == g.generation || !fits(g, n) || !anti_ok(g, n)) {
                b.order[b.cursor] = b.order.back();
                b.order.pop_back();
                continue;
            }
            ++b.cursor;
            if (is_excluded(g, n)) continue;
            consider(g, n);
            ++got;
        }
    }

    void decide_in(group_context& g, sampler& b) const {
        if (g.full_scan) {
            scan(g, *b.members);
            return;
        }
        sample(g, b);
        // The sample saw nothing usable; make sure before calling the instance unplaceable.
        if (g.ranked.empty()) scan(g, *b.members);
    }

    void decide(group_context& g) const {
        g.ranked.clear();
        if (g.buckets.size() == 1) {
            decide_in(g, g.buckets[0]);
            return;
        }
        std::fill(g.bucket_tried.begin(), g.bucket_tried.end(), 0);
        while (true) {
            // The value furthest below its target share goes first; values with no share go last.
            std::size_t best = g.buckets.size();
            double best_key = 0;
            bool best_zero = true;
            for (std::size_t b = 0; b < g.buckets.size(); ++b) {
                if (g.bucket_tried[b] || g.buckets[b].members->empty()) continue;
                const bool zero = g.bucket_share[b] <= 0;
                const double key = zero ? g.bucket_count[b] : (g.bucket_count[b] + 1.0) / g.bucket_share[b];
                if (best == g.buckets.size() || (best_zero && !zero) || (zero == best_zero && key < best_key)) {
                    best = b;
                    best_key = key;
                    best_zero = zero;
                }
            }
            if (best == g.buckets.size()) return;
            decide_in(g, g.buckets[best]);
            if (!g.ranked.empty()) return;
            g.bucket_tried[best] = 1;
        }
    }

    void commit(group_context& g, std::uint32_t n, std::uint32_t instance, double node_score) {
        s.add_usage(n, g.demand.data(), 1);
        s.allocs[n].push_back({{}, g.wl_name, g.grp_name, g.work->priority, g.demand_offset, false, instance,
                               g.host_max == std::numeric_limits<std::uint32_t>::max() ? 0 : g.host_max});
        ++s.live[n];
        g.placed_nodes->push_back(n);
        undo.push_back({undo_kind::place, n, 0});
        count_placed(g, n);
        out.assignments.push_back({g.work->id, g.grp->name, instance, s.ids[n], node_score});
    }

    void count_placed(group_context& g, std::uint32_t n) {
        if (g.host_max != std::numeric_limits<std::uint32_t>::max()) ++g.host_count[n];
        const auto cls = s.class_of[n];
        for (auto& l : g.limits)
            if (const auto v = l.value_by_class[cls]; v >= 0) ++l.count[static_cast<std::size_t>(v)];
        if (g.buckets.size() > 1) {
            const auto b = static_cast<std::size_t>(g.bucket_by_class[cls]);
            ++g.bucket_count[b];
            if (s.open_mark[n] != g.generation) g.buckets[b].open.push_back(n);
        } else if (s.open_mark[n] != g.generation) {
            g.buckets[0].open.push_back(n);
        }
        s.open_mark[n] = g.generation;
    }

    void evict(std::uint32_t n, std::size_t a, const workload& w) {
        auto& rec = s.allocs[n][a];
        rec.evicted = true;
        --s.live[n];
        s.add_usage(n, s.demand_pool.data() + rec.demand, -1);
        s.remove_group_node(rec.workload, rec.group, n);
        undo.push_back({undo_kind::evict, n, a});
        out.evictions.push_back({s.ids[n], s.name_of(rec), rec.priority, w.id});
    }

    void rollback() {
        for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
            auto& list = s.allocs[it->node];
            if (it->kind == undo_kind::place) {
                const auto rec = list.back();
                list.pop_back();
                --s.live[it->node];
                s.add_usage(it->node, s.demand_pool.data() + rec.demand, -1);
                s.remove_group_node(rec.workload, rec.group, it->node);
            } else {
                auto& rec = list[it->alloc];
                rec.evicted = false;
                ++s.live[it->node];
                s.add_usage(it->node, s.demand_pool.data() + rec.demand, 1);
                s.group_nodes[{rec.workload, rec.group}].push_back(it->node);
            }
        }
        undo.clear();
        if (admit && admit->release)
            for (auto it = accepted.rbegin(); it != accepted.rend(); ++it) {
                proposal p{it->work, it->grp, it->instance, &s.ids[it->node], 0};
                admit->release(p);
            }
        accepted.clear();
    }

    bool offer(group_context& g, std::uint32_t instance, std::uint32_t n, std::uint32_t rank) {
        if (!admit || !admit->admit) return true;
        const proposal p{g.work, g.grp, instance, &s.ids[n], rank};
        if (admit->admit(p)) {
            accepted.push_back({g.work, g.grp, instance, n});
            return true;
        }
        ++g.refused;
        g.excluded.push_back(n);
        return false;
    }

    std::optional<preemption_option> find_preemption(group_context& g, std::vector<std::size_t>& chosen_out,
                                                     std::uint32_t& node_out) const;
    explanation explain(group_context& g, std::uint32_t instance) const;
    bool place(group_context& g, std::uint32_t instance, explanation& why);
    void prepare(group_context& g, const workload& w, const group& grp);
    void run(const workload& w);
};

void scheduler_run::prepare(group_context& g, const workload& w, const group& grp) {
    g.work = &w;
    g.grp = &grp;
    g.wl_name = s.intern(w.id);
    g.grp_name = s.intern(grp.name);
    g.placed_nodes = &s.group_nodes[{g.wl_name, g.grp_name}];
    g.demand.assign(s.dims, 0);
    g.demand[0] = grp.demand.cpu_millis;
    g.demand[1] = grp.demand.memory_bytes;
    g.demand[2] = grp.demand.disk_bytes;
    g.demand[3] = grp.demand.gpus;
    std::vector<std::string> missing_devices;
    for (const auto& [name, v] : grp.demand.devices) {
        auto it = s.device_dims.find(name);
        if (it == s.device_dims.end()) {
            if (v > 0) missing_devices.push_back(name);
        } else {
            g.demand[it->second] = v;
        }
    }
    g.demand_offset = s.demand_pool.size();
    s.demand_pool.insert(s.demand_pool.end(), g.demand.begin(), g.demand.end());
    for (std::size_t d = 0; d < s.dims; ++d)
        if (g.demand[d] > 0) g.active.push_back(d);

    const auto class_count = s.classes.size();
    std::vector<compiled_constraint> constraints;
    constraints.reserve(grp.constraints.size());
    for (const auto& c : grp.constraints) {
        constraints.push_back(compile(c));
        const bool anywhere = std::any_of(s.classes.begin(), s.classes.end(),
                                          [&](const node_class& k) { return find_label(k.labels, c.label) != nullptr; });
        if (!anywhere && c.op != constraint_op::not_exists && c.op != constraint_op::not_equals && c.op != constraint_op::not_in)
            constraints.back().description += fmt::format(" (no node has label '{}')", c.label);
        g.filter_names.push_back(constraints.back().description);
    }
    const std::size_t gpu_model_filter = g.filter_names.size();
    g.filter_names.push_back(fmt::format("gpu model {}", grp.gpu_model));
    const std::size_t gpu_memory_filter = g.filter_names.size();
    g.filter_names.push_back(fmt::format("gpu memory >= {} bytes", grp.min_gpu_memory_bytes));
    const std::size_t capacity_filter = g.filter_names.size();
    for (std::size_t d = 0; d < s.dims; ++d)
        g.filter_names.push_back(fmt::format("total {} below the demand of {}", s.dim_names[d], g.demand[d]));
    const std::size_t device_filter = g.filter_names.size();
    for (const auto& name : missing_devices) g.filter_names.push_back(fmt::format("device {} on no node", name));
    g.filter_rejects.assign(g.filter_names.size(), 0);

    std::vector<std::uint8_t> class_ok(class_count, 0);
    for (std::size_t k = 0; k < class_count; ++k) {
        const auto& cls = s.classes[k];
        const auto size = cls.members.size();
        bool ok = true;
        auto reject = [&](std::size_t f) {
            g.filter_rejects[f] += size;
            ok = false;
        };
        for (std::size_t f = 0; f < constraints.size(); ++f)
            if (!constraints[f].test(cls.labels)) reject(f);
        if (!grp.gpu_model.empty() && cls.gpu_model != grp.gpu_model) reject(gpu_model_filter);
        if (grp.min_gpu_memory_bytes > 0 && cls.gpu_memory < grp.min_gpu_memory_bytes) reject(gpu_memory_filter);
        const auto* cap = s.cap_of(cls.members.front());
        for (auto d : g.active)
            if (cap[d] < g.demand[d]) reject(capacity_filter + d);
        for (std::size_t m = 0; m < missing_devices.size(); ++m) reject(device_filter + m);
        class_ok[k] = ok;
    }
    // Seeded order: ties go to whichever node comes first, so the seed decides them reproducibly.
    for (auto n : s.perm)
        if (class_ok[s.class_of[n]]) g.feasible.push_back(n);

    // Soft terms, normalised by the sum of the weights in play.
    const auto& wt = w.weights;
    g.w_binpack = wt.binpack;
    g.w_spread = wt.spread;
    g.w_cost = wt.cost;
    g.w_carbon = wt.carbon;
    g.w_load = wt.load;
    const bool has_locality = !w.near.near_nodes.empty() || !w.near.near_zones.empty() || !w.near.near_content.empty();
    g.w_locality = has_locality ? wt.locality : 0;
    g.w_affinity = grp.affinities.empty() ? 0 : wt.affinity;
    const double sum = g.w_binpack + g.w_spread + g.w_cost + g.w_carbon + g.w_load + g.w_locality + g.w_affinity;
    if (sum > 0)
        for (double* x : {&g.w_binpack, &g.w_spread, &g.w_cost, &g.w_carbon, &g.w_load, &g.w_locality, &g.w_affinity}) *x /= sum;
    g.full_scan = s.config.full_scan_for_soft_terms &&
                  (g.w_cost > 0 || g.w_carbon > 0 || g.w_load > 0 || g.w_locality > 0 || g.w_affinity > 0);
    if (g.w_affinity > 0) {
        std::vector<compiled_constraint> prefs;
        double total = 0;
        for (const auto& a : grp.affinities) {
            prefs.push_back(compile(a.match));
            total += std::abs(a.weight);
        }
        g.affinity_by_class.assign(class_count, 0);
        for (std::size_t k = 0; k < class_count; ++k)
            for (std::size_t i = 0; i < prefs.size(); ++i)
                if (prefs[i].test(s.classes[k].labels)) g.affinity_by_class[k] += grp.affinities[i].weight / total;
    }
    if (g.w_locality > 0) {
        g.near.assign(s.ids.size(), 0);
        for (const auto& id : w.near.near_nodes) g.near[s.index_of.at(id)] = 1;
        for (const auto& c : w.near.near_content)
            if (auto it = s.content.find(c); it != s.content.end())
                for (auto n : it->second) g.near[n] = 1;
        for (const auto& cls : s.classes)
            if (const auto* zone = find_label(cls.labels, w.near.zone_label);
                zone && std::find(w.near.near_zones.begin(), w.near.near_zones.end(), *zone) != w.near.near_zones.end())
                for (auto n : cls.members) g.near[n] = 1;
    }

    auto warn_if_absent = [&](const std::string& label, std::string_view what) {
        const bool anywhere = std::any_of(s.classes.begin(), s.classes.end(),
                                          [&](const node_class& k) { return find_label(k.labels, label) != nullptr; });
        if (!anywhere && !s.classes.empty())
            out.warnings.push_back(fmt::format("workload '{}' group '{}': no node has label '{}', so its {} has no effect",
                                               w.id, grp.name, label, what));
    };
    for (const auto& a : grp.affinities) warn_if_absent(a.match.label, "affinity");
    for (const auto& a : grp.anti_affinities)
        if (!a.label.empty()) warn_if_absent(a.label, "anti-affinity");
    if (grp.spread_over) warn_if_absent(grp.spread_over->label, "spread");

    // Anti-affinity limits and spread buckets both key on a label's value, resolved per class.
    auto values_of = [&](const std::string& label, std::vector<std::string>& names) {
        std::map<std::string_view, std::int32_t> ids;
        for (const auto& cls : s.classes)
            if (const auto* v = find_label(cls.labels, label)) ids.emplace(*v, 0);
        std::int32_t next = 0;
        for (auto& [v, id] : ids) {
            id = next++;
            names.emplace_back(v);
        }
        std::vector<std::int32_t> by_class(class_count, -1);
        for (std::size_t k = 0; k < class_count; ++k)
            if (const auto* v = find_label(s.classes[k].labels, label)) by_class[k] = ids.at(*v);
        return by_class;
    };
    for (const auto& a : grp.anti_affinities) {
        if (a.label.empty()) {
            g.host_max = std::min(g.host_max, a.max_per);
            continue;
        }
        std::vector<std::string> names;
        group_context::label_limit l;
        l.max_per = a.max_per;
        l.value_by_class = values_of(a.label, names);
        l.count.assign(names.size(), 0);
        g.limits.push_back(std::move(l));
    }
    // A fresh generation marks open nodes without clearing a per-node array for every group.
    if (++s.generation == 0) {
        std::fill(s.open_mark.begin(), s.open_mark.end(), 0);
        s.generation = 1;
    }
    g.generation = s.generation;
    if (grp.spread_over) {
        std::vector<std::string> names;
        g.bucket_by_class = values_of(grp.spread_over->label, names);
        // Nodes without the label share one last bucket with no target.
        const auto unlabelled = static_cast<std::int32_t>(names.size());
        for (auto& b : g.bucket_by_class)
            if (b < 0) b = unlabelled;
        g.buckets.resize(names.size() + 1);
        g.bucket_share.assign(names.size() + 1, 0);
        double listed = 0;
        std::size_t unlisted = 0;
        for (std::size_t b = 0; b < names.size(); ++b) {
            const auto& targets = grp.spread_over->targets;
            auto it = std::find_if(targets.begin(), targets.end(), [&](const auto& t) { return t.first == names[b]; });
            if (it != targets.end()) {
                g.bucket_share[b] = it->second;
                listed += it->second;
            } else {
                g.bucket_share[b] = -1;
                ++unlisted;
            }
        }
        for (std::size_t b = 0; b < names.size(); ++b)
            if (g.bucket_share[b] < 0) g.bucket_share[b] = unlisted ? (100.0 - listed) / static_cast<double>(unlisted) : 0;
        g.bucket_count.assign(g.buckets.size(), 0);
        g.bucket_tried.assign(g.buckets.size(), 0);
    } else {
        g.buckets.resize(1);
        g.bucket_by_class.assign(class_count, 0);
    }
    if (g.buckets.size() == 1) g.buckets[0].members = &g.feasible;
    for (auto n : g.feasible) {
        auto& b = g.buckets[static_cast<std::size_t>(g.bucket_by_class[s.class_of[n]])];
        if (g.buckets.size() > 1) b.own.push_back(n);
        if (s.live[n] > 0) {
            b.open.push_back(n);
            s.open_mark[n] = g.generation;
        } else {
            b.order.push_back(n);
        }
    }
    // Start each group's walk at a seeded offset, so groups do not all pile onto the same first nodes.
    for (auto& b : g.buckets)
        if (!b.order.empty()) b.cursor = s.random.below(b.order.size());
    // Instances of this group already running count toward its anti-affinity and spread.
    for (auto n : *g.placed_nodes) {
        if (g.host_max != std::numeric_limits<std::uint32_t>::max()) ++g.host_count[n];
        const auto cls = s.class_of[n];
        for (auto& l : g.limits)
            if (const auto v = l.value_by_class[cls]; v >= 0) ++l.count[static_cast<std::size_t>(v)];
        if (g.buckets.size() > 1) ++g.bucket_count[static_cast<std::size_t>(g.bucket_by_class[cls])];
    }
    const auto log_n = static_cast<std::uint32_t>(std::bit_width(g.feasible.size()));
    g.sample_open = s.config.sample_open ? s.config.sample_open : std::max<std::uint32_t>(1, log_n);
    g.ranked_limit = s.config.admission_candidates;
    g.ranked.reserve(g.ranked_limit + 1);
}

std::optional<preemption_option> scheduler_run::find_preemption(group_context& g, std::vector<std::size_t>& chosen_out,
                                                                std::uint32_t& node_out) const {
    std::optional<preemption_option> best;
    std::tuple<std::int32_t, std::size_t, std::int64_t> best_cost{};
    std::vector<std::size_t> pool, chosen;
    std::vector<std::int64_t> deficit(s.dims);
    for (auto n : g.feasible) {
        if (!anti_ok(g, n) || is_excluded(g, n)) continue;
        const auto* u = s.used.data() + std::size_t{n} * s.dims;
        const auto* c = s.cap_of(n);
        for (std::size_t d = 0; d < s.dims; ++d) deficit[d] = g.demand[d] > 0 ? u[d] + g.demand[d] - c[d] : 0;
        pool.clear();
        const auto& list = s.allocs[n];
        for (std::size_t a = 0; a < list.size(); ++a)
            if (!list[a].evicted && list[a].priority < g.work->priority) pool.push_back(a);
        auto helps = [&](std::size_t a) {
            const auto* dem = s.demand_pool.data() + list[a].demand;
            std::int64_t sum = 0;
            for (auto d : g.active) sum += std::min(dem[d], std::max<std::int64_t>(deficit[d], 0));
            return sum;
        };
        // Lowest priority first; among equals the one that frees most of what is missing, so fewer go.
        std::sort(pool.begin(), pool.end(), [&](std::size_t a, std::size_t b) {
            if (list[a].priority != list[b].priority) return list[a].priority < list[b].priority;
            return helps(a) > helps(b);
        });
        chosen.clear();
        auto satisfied = [&] { return std::all_of(g.active.begin(), g.active.end(), [&](std::size_t d) { return deficit[d] <= 0; }); };
        for (auto a : pool) {
            if (satisfied()) break;
            const auto* dem = s.demand_pool.data() + list[a].demand;
            if (std::none_of(g.active.begin(), g.active.end(), [&](std::size_t d) { return deficit[d] > 0 && dem[d] > 0; })) continue;
            chosen.push_back(a);
            for (std::size_t d = 0; d < s.dims; ++d) deficit[d] -= dem[d];
        }
        if (!satisfied() || chosen.empty()) continue;
        // Drop evictions that turned out unnecessary, most important first.
        for (std::size_t i = chosen.size(); i-- > 0;) {
            const auto* dem = s.demand_pool.data() + list[chosen[i]].demand;
            if (std::all_of(g.active.begin(), g.active.end(), [&](std::size_t d) { return deficit[d] + dem[d] <= 0; })) {
                for (std::size_t d = 0; d < s.dims; ++d) deficit[d] += dem[d];
                chosen.erase(chosen.begin() + static_cast<std::ptrdiff_t>(i));
            }
        }
        std::int32_t top = std::numeric_limits<std::int32_t>::min();
        std::int64_t prio_sum = 0;
        for (auto a : chosen) {
            top = std::max(top, list[a].priority);
            prio_sum += list[a].priority;
        }
        const std::tuple cost{top, chosen.size(), prio_sum};
        if (best && !(cost < best_cost)) continue;
        best_cost = cost;
        preemption_option opt;
        opt.node = s.ids[n];
        opt.highest_priority = top;
        std::vector<std::int64_t> freed(s.dims, 0);
        for (auto a : chosen) {
            opt.allocations.push_back(s.name_of(list[a]));
            const auto* dem = s.demand_pool.data() + list[a].demand;
            for (std::size_t d = 0; d < s.dims; ++d) freed[d] += dem[d];
        }
        opt.freed.cpu_millis = freed[0];
        opt.freed.memory_bytes = freed[1];
        opt.freed.disk_bytes = freed[2];
        opt.freed.gpus = freed[3];
        for (const auto& [name, d] : s.device_dims)
            if (freed[d] > 0) opt.freed.devices.emplace_back(name, freed[d]);
        std::sort(opt.freed.devices.begin(), opt.freed.devices.end());
        best = std::move(opt);
        chosen_out = chosen;
        node_out = n;
    }
    return best;
}

explanation scheduler_run::explain(group_context& g, std::uint32_t instance) const {
    explanation e;
    e.workload = g.work->id;
    e.group = g.grp->name;
    e.instance = instance;
    e.nodes_total = s.ids.size();
    e.admission_refused = g.refused;
    for (std::size_t f = 0; f < g.filter_names.size(); ++f)
        if (g.filter_rejects[f] > 0) e.filters.push_back({g.filter_names[f], g.filter_rejects[f]});
    std::vector<std::size_t> short_by(s.dims, 0);
    for (auto n : g.feasible) {
        if (!anti_ok(g, n)) {
            ++e.anti_affinity_rejected;
            continue;
        }
        const auto* u = s.used.data() + std::size_t{n} * s.dims;
        const auto* c = s.cap_of(n);
        for (auto d : g.active)
            if (u[d] + g.demand[d] > c[d]) ++short_by[d];
    }
    for (std::size_t d = 0; d < s.dims; ++d)
        if (short_by[d] > 0) e.exhausted.push_back({s.dim_names[d], short_by[d]});
    if (e.nodes_total == 0) {
        e.summary = "the cluster has no nodes";
        return e;
    }
    if (g.feasible.empty()) {
        std::vector<std::string> parts;
        for (const auto& f : e.filters) parts.push_back(fmt::format("{} rejected {}", f.filter, f.nodes));
        e.summary = fmt::format("none of the {} nodes passes the filters: {}", e.nodes_total, fmt::join(parts, "; "));
        return e;
    }
    std::vector<std::string> parts;
    for (const auto& x : e.exhausted) parts.push_back(fmt::format("{} lack free {}", x.nodes, x.filter));
    if (e.anti_affinity_rejected) parts.push_back(fmt::format("{} already hold as many instances as anti-affinity allows", e.anti_affinity_rejected));
    if (e.admission_refused) parts.push_back(fmt::format("admission refused {} proposals", e.admission_refused));
    e.summary = fmt::format("{} of {} nodes pass the filters but none can take it: {}", g.feasible.size(), e.nodes_total,
                            fmt::join(parts, "; "));
    return e;
}

bool scheduler_run::place(group_context& g, std::uint32_t instance, explanation& why) {
    g.excluded.clear();
    g.refused = 0;
    // Each round offers the ranked candidates; refused nodes are left out of the next round.
    for (int round = 0; round < 8; ++round) {
        decide(g);
        if (g.ranked.empty()) break;
        for (std::uint32_t r = 0; r < g.ranked.size(); ++r) {
            const auto c = g.ranked[r];
            if (offer(g, instance, c.node, r)) {
                commit(g, c.node, instance, c.score);
                return true;
            }
        }
    }
    std::vector<std::size_t> chosen;
    std::uint32_t victim_node = 0;
    auto option = find_preemption(g, chosen, victim_node);
    why = explain(g, instance);
    if (option && g.work->allow_preemption && offer(g, instance, victim_node, 0)) {
        for (auto a : chosen) evict(victim_node, a, *g.work);
        commit(g, victim_node, instance, score(g, victim_node));
        return true;
    }
    if (option) {
        why.summary += fmt::format("; evicting {} allocation(s) of priority <= {} on {} would make room{}",
                                   option->allocations.size(), option->highest_priority, option->node,
                                   g.work->allow_preemption ? " but admission refused" : " (the workload does not allow preemption)");
        why.preemption = std::move(option);
    }
    return false;
}

void scheduler_run::run(const workload& w) {
    const auto assignments_before = out.assignments.size();
    const auto evictions_before = out.evictions.size();
    undo.clear();
    accepted.clear();
    for (std::size_t gi = 0; gi < w.groups.size(); ++gi) {
        group_context g;
        prepare(g, w, w.groups[gi]);
        for (std::uint32_t i = 0; i < w.groups[gi].count; ++i) {
            explanation why;
            if (place(g, i, why)) continue;
            const bool refused = why.admission_refused > 0;
            out.unplaced.push_back(std::move(why));
            if (!w.gang) {
                // Nothing changed since this instance failed and no admission step was involved, so the
                // group's remaining instances fail the same way; say so without searching again.
                if (refused) continue;
                for (std::uint32_t j = i + 1; j < w.groups[gi].count; ++j) {
                    auto copy = out.unplaced.back();
                    copy.instance = j;
                    out.unplaced.push_back(std::move(copy));
                }
                break;
            }
            // All or nothing: undo everything this workload did and say why for every instance.
            rollback();
            out.assignments.resize(assignments_before);
            out.evictions.resize(evictions_before);
            const auto cause = fmt::format("{}#{}", w.groups[gi].name, i);
            for (const auto& other : w.groups)
                for (std::uint32_t j = 0; j < other.count; ++j) {
                    if (&other == &w.groups[gi] && j == i) continue;
                    explanation e;
                    e.workload = w.id;
                    e.group = other.name;
                    e.instance = j;
                    e.nodes_total = s.ids.size();
                    e.summary = fmt::format("not placed: gang workload '{}' is all or nothing and {} cannot be placed", w.id, cause);
                    out.unplaced.push_back(std::move(e));
                }
            return;
        }
    }
}

detailed_result<plan> scheduler::impl::schedule(std::span<const workload> workloads, const admission* admit) {
    std::unordered_set<std::string_view> seen;
    for (const auto& w : workloads) {
        if (auto r = w.validate(); !r) return r.error();
        if (!seen.insert(w.id).second)
            return error(errc::invalid_argument, fmt::format("workload '{}' appears twice in one call", w.id));
        for (const auto& g : w.groups) {
            if (g.count > config.max_instances_per_group)
                return error(errc::invalid_argument, fmt::format("workload '{}' group '{}': count {} over max_instances_per_group {}",
                                                                 w.id, g.name, g.count, config.max_instances_per_group));
            const auto& d = g.demand;
            for (auto v : {d.cpu_millis, d.memory_bytes, d.disk_bytes, d.gpus})
                if (v > config.max_resource_value)
                    return error(errc::invalid_argument, fmt::format("workload '{}' group '{}': demand {} over max_resource_value {}",
                                                                     w.id, g.name, v, config.max_resource_value));
        }
        for (const auto& id : w.near.near_nodes)
            if (!index_of.contains(id))
                return error(errc::invalid_argument, fmt::format("workload '{}': locality names unknown node '{}'", w.id, id));
    }
    std::vector<const workload*> order;
    order.reserve(workloads.size());
    for (const auto& w : workloads) order.push_back(&w);
    if (config.largest_first && order.size() > 1) {
        // Size as the dominant share of the largest capacity in each dimension, so CPU and memory compare.
        std::vector<double> largest(fixed_dims, 0);
        for (std::size_t n = 0; n < ids.size(); ++n)
            for (std::size_t d = 0; d < fixed_dims; ++d)
                largest[d] = std::max(largest[d], static_cast<double>(capacity[n * dims + d]));
        auto size_of = [&](const workload* w) {
            double biggest = 0;
            for (const auto& g : w->groups) {
                const std::int64_t v[fixed_dims] = {g.demand.cpu_millis, g.demand.memory_bytes, g.demand.disk_bytes, g.demand.gpus};
                for (std::size_t d = 0; d < fixed_dims; ++d)
                    if (largest[d] > 0) biggest = std::max(biggest, static_cast<double>(v[d]) / largest[d]);
            }
            return biggest;
        };
        std::vector<std::pair<double, const workload*>> keyed;
        keyed.reserve(order.size());
        for (const auto* w : order) keyed.emplace_back(size_of(w), w);
        std::stable_sort(keyed.begin(), keyed.end(), [](const auto& l, const auto& r) {
            if (l.second->priority != r.second->priority) return l.second->priority > r.second->priority;
            return l.first > r.first;
        });
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = keyed[i].second;
    }
    plan out;
    scheduler_run run{*this, admit, out, {}, {}};
    for (const auto* wp : order) {
        const auto& w = *wp;
        const auto assignments_before = out.assignments.size();
        const auto evictions_before = out.evictions.size();
        const auto unplaced_before = out.unplaced.size();
        try {
            run.run(w);
        } catch (const std::exception& e) {
            // std::regex may throw on pathological input (error_complexity); undo this workload and go on.
            run.rollback();
            out.assignments.resize(assignments_before);
            out.evictions.resize(evictions_before);
            out.unplaced.resize(unplaced_before);
            explanation why;
            why.workload = w.id;
            why.nodes_total = ids.size();
            why.summary = fmt::format("not placed: evaluating its constraints failed ({}); nothing of it was placed", e.what());
            out.unplaced.push_back(std::move(why));
        }
    }
    return out;
}

detailed_result<rebalance_plan> scheduler::impl::rebalance(const rebalance_config& rc) {
    if (auto r = rc.validate(); !r) return r.error();
    rebalance_plan out;
    const auto count = static_cast<std::uint32_t>(ids.size());
    auto spread_of = [&] {
        double lo = 1e300, hi = -1e300;
        for (std::uint32_t n = 0; n < count; ++n) {
            lo = std::min(lo, utilisation(n));
            hi = std::max(hi, utilisation(n));
        }
        return count ? hi - lo : 0.0;
    };
    auto fits_on = [&](std::uint32_t n, const std::int64_t* dem) {
        const auto* u = used_of(n);
        const auto* c = cap_of(n);
        for (std::size_t d = 0; d < dims; ++d)
            if (dem[d] > 0 && u[d] + dem[d] > c[d]) return false;
        return true;
    };
    auto same_kind = [&](std::uint32_t a, std::uint32_t b) { return classes[class_of[a]].label_class == classes[class_of[b]].label_class; };
    // A move keeps the group's host anti-affinity; with labels unchanged, per-label limits and spread are
    // untouched too.
    auto group_on = [&](std::uint32_t n, const alloc_rec& a) {
        return static_cast<std::uint32_t>(std::count_if(allocs[n].begin(), allocs[n].end(), [&](const alloc_rec& b) {
            return !b.evicted && b.workload == a.workload && b.group == a.group;
        }));
    };
    auto move_alloc = [&](std::uint32_t from, std::size_t a, std::uint32_t to) {
        auto rec = allocs[from][a];
        const auto* dem = demand_pool.data() + rec.demand;
        add_usage(from, dem, -1);
        add_usage(to, dem, 1);
        remove_group_node(rec.workload, rec.group, from);
        group_nodes[{rec.workload, rec.group}].push_back(to);
        allocs[from].erase(allocs[from].begin() + static_cast<std::ptrdiff_t>(a));
        --live[from];
        ++live[to];
        out.moves.push_back({name_of(rec), ids[from], ids[to]});
        allocs[to].push_back(std::move(rec));
    };
    out.utilisation_spread_before = spread_of();
    if (rc.target == rebalance_config::goal::pack) {
        std::vector<std::uint32_t> sources;
        for (std::uint32_t n = 0; n < count; ++n)
            if (std::any_of(allocs[n].begin(), allocs[n].end(), [](const alloc_rec& a) { return !a.evicted; })) sources.push_back(n);
        std::stable_sort(sources.begin(), sources.end(), [&](auto a, auto b) { return utilisation(a) < utilisation(b); });
        std::vector<std::uint8_t> drained(count, 0);
        for (auto src : sources) {
            if (out.moves.size() + live[src] > rc.move_budget) continue;
            // Tentatively place every allocation of src on the fullest used node of the same kind that fits it.
            std::vector<std::pair<std::size_t, std::uint32_t>> targets;
            bool ok = true;
            for (std::size_t a = 0; a < allocs[src].size() && ok; ++a) {
                const auto& rec = allocs[src][a];
                if (rec.evicted) continue;
                const auto* dem = demand_pool.data() + rec.demand;
                auto joins_group = [&](std::uint32_t n) {
                    if (rec.max_per_node == 0) return false;
                    const auto pending = std::count_if(targets.begin(), targets.end(), [&](const auto& t) {
                        const auto& other = allocs[src][t.first];
                        return t.second == n && other.workload == rec.workload && other.group == rec.group;
                    });
                    return group_on(n, rec) + static_cast<std::uint32_t>(pending) >= rec.max_per_node;
                };
                std::uint32_t best = count;
                double best_u = -1;
                for (std::uint32_t n = 0; n < count; ++n) {
                    if (n == src || drained[n] || !same_kind(n, src) || utilisation(n) <= 0 || !fits_on(n, dem) || joins_group(n)) continue;
                    if (utilisation(n) > best_u) {
                        best_u = utilisation(n);
                        best = n;
                    }
                }
                if (best == count) {
                    ok = false;
                    break;
                }
                add_usage(best, dem, 1);
                targets.emplace_back(a, best);
            }
            for (const auto& [a, to] : targets) add_usage(to, demand_pool.data() + allocs[src][a].demand, -1);
            if (!ok) continue;
            for (auto it = targets.rbegin(); it != targets.rend(); ++it) move_alloc(src, it->first, it->second);
            // Evicted records carry no usage; dropping them leaves the node truly empty.
            allocs[src].clear();
            live[src] = 0;
            drained[src] = 1;
            ++out.nodes_freed;
        }
    } else {
        while (out.moves.size() < rc.move_budget) {
            std::uint32_t hot = count;
            for (std::uint32_t n = 0; n < count; ++n)
                if (hot == count || utilisation(n) > utilisation(hot)) hot = n;
            if (hot == count) break;
            bool moved = false;
            const double hot_u = utilisation(hot);
            for (std::size_t a = 0; a < allocs[hot].size() && !moved; ++a) {
                if (allocs[hot][a].evicted) continue;
                const auto* dem = demand_pool.data() + allocs[hot][a].demand;
                std::uint32_t cold = count;
                for (std::uint32_t n = 0; n < count; ++n)
                    if (n != hot && same_kind(n, hot) && fits_on(n, dem) && (allocs[hot][a].max_per_node == 0 || group_on(n, allocs[hot][a]) < allocs[hot][a].max_per_node) &&
                        (cold == count || utilisation(n) < utilisation(cold)))
                        cold = n;
                if (cold == count) continue;
                // Only a move that lowers the peak helps.
                add_usage(hot, dem, -1);
                add_usage(cold, dem, 1);
                const bool better = std::max(utilisation(hot), utilisation(cold)) < hot_u - 1e-12;
                add_usage(hot, dem, 1);
                add_usage(cold, dem, -1);
                if (better) {
                    move_alloc(hot, a, cold);
                    moved = true;
                }
            }
            if (!moved) break;
        }
    }
    out.utilisation_spread_after = spread_of();
    return out;
}

} // namespace swarm::inline v0::placement

namespace swarm::inline v0::placement {

scheduler::scheduler(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
scheduler::scheduler(scheduler&&) noexcept = default;
scheduler& scheduler::operator=(scheduler&&) noexcept = default;
scheduler::~scheduler() = default;

detailed_result<scheduler> scheduler::create(const cluster& snapshot, const scheduler_config& config) {
    if (auto r = config.validate(); !r) return r.error();
    auto p = std::make_unique<impl>();
    p->config = config;
    try {
        if (auto r = p->build(snapshot); !r) return r.error();
    } catch (const std::bad_alloc&) {
        return error(errc::too_large, "cluster snapshot too large for memory");
    }
    return scheduler(std::move(p));
}

detailed_result<plan> scheduler::schedule(std::span<const workload> workloads, const admission* admit) {
    return impl_->schedule(workloads, admit);
}

detailed_result<rebalance_plan> scheduler::rebalance(const rebalance_config& config) { return impl_->rebalance(config); }

std::size_t scheduler::node_count() const noexcept { return impl_->ids.size(); }
std::size_t scheduler::class_count() const noexcept { return impl_->classes.size(); }

result<resources> scheduler::free_on(std::string_view node) const {
    auto it = impl_->index_of.find(node);
    if (it == impl_->index_of.end()) return make_error_code(errc::not_found);
    const auto n = it->second;
    const auto* u = impl_->used.data() + std::size_t{n} * impl_->dims;
    const auto* c = impl_->cap_of(n);
    resources r;
    r.cpu_millis = c[0] - u[0];
    r.memory_bytes = c[1] - u[1];
    r.disk_bytes = c[2] - u[2];
    r.gpus = c[3] - u[3];
    for (const auto& [name, d] : impl_->device_dims) r.devices.emplace_back(name, c[d] - u[d]);
    std::sort(r.devices.begin(), r.devices.end());
    return r;
}

std::uint64_t plan::hash() const noexcept {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    auto mix = [&](std::string_view s) {
        for (unsigned char ch : s) {
            h ^= ch;
            h *= 0x100000001b3ULL;
        }
        h ^= 0xff;
        h *= 0x100000001b3ULL;
    };
    for (const auto& a : assignments) {
        mix(a.workload);
        mix(a.group);
        mix(std::to_string(a.instance));
        mix(a.node);
    }
    for (const auto& e : evictions) {
        mix(e.node);
        mix(e.allocation);
    }
    return h;
}

} // namespace swarm::inline v0::placement
