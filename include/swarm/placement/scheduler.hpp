// The placement scheduler: given a snapshot of the cluster and some workloads, propose a node for every
// instance, explain every instance it cannot place, and say what preemption would free.
//
// It is pure computation over the snapshot: no clock, no socket. Admission on the target node plugs in
// through `admission`: the scheduler ranks candidates per instance, the admission step may refuse one, and
// the scheduler then tries the next best.
#pragma once

#include <swarm/core/error.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace swarm::inline v0::placement {

/// Node identity, kept in one place so it can become swarm::node_id later.
using node_key = std::string;

/// Integer resources, so sums and comparisons are exact.
struct resources {
    std::int64_t cpu_millis = 0;
    std::int64_t memory_bytes = 0;
    std::int64_t disk_bytes = 0;
    std::int64_t gpus = 0;
    /// Any other countable device, by name ("fpga", "nic.sriov"): at most one entry per name.
    std::vector<std::pair<std::string, std::int64_t>> devices;

    friend bool operator==(const resources&, const resources&) = default;
};

/// Something already running on a node; its demand counts against the node's capacity.
struct allocation {
    std::string id;
    std::string workload; // the workload and group it belongs to, for spread, anti-affinity and rebalancing
    std::string group;
    std::int32_t priority = 0;
    resources demand;
    /// The group's host anti-affinity (at most this many of the group per node; 0: no limit), which
    /// rebalancing keeps.
    std::uint32_t max_per_node = 0;
    std::uint32_t instance = 0; // which instance of the group, for re-placing lost ones
};

struct node {
    node_key id;
    resources capacity;
    std::vector<std::pair<std::string, std::string>> labels; // region, zone, rack, anything; one value per key
    std::string gpu_model;                                    // every GPU of a node is this model
    std::int64_t gpu_memory_bytes = 0;                        // memory of each GPU
    double price_per_hour = 0;
    double carbon_g_per_kwh = 0;
    double load = 0; // measured load in [0, 1]
    std::vector<allocation> allocations;
};

/// Where stored content lives, for locality to content.
struct content_location {
    std::string content;
    node_key node;
};

struct cluster {
    std::vector<node> nodes;
    std::vector<content_location> content;
};

enum class constraint_op {
    equals,
    not_equals,
    in,       // value in `values`
    not_in,   // value absent or not in `values`
    regex,    // value matches values[0] (ECMAScript, whole value)
    version_eq,
    version_ne,
    version_lt,
    version_le,
    version_gt,
    version_ge,
    exists,
    not_exists,
};

/// A test on one node label. equals, in, regex and version tests fail on a node without the label.
struct constraint {
    std::string label;
    constraint_op op = constraint_op::equals;
    std::vector<std::string> values;
};

/// A soft preference: nodes that satisfy `match` score `weight` (negative weights repel), in [-100, 100].
struct affinity {
    constraint match;
    double weight = 0;
};

/// At most `max_per` instances of the group per node (label empty) or per value of `label`.
struct anti_affinity {
    std::string label;
    std::uint32_t max_per = 1;
};

/// Spread the group's instances over the values of `label`, evenly or by target percentages. Values
/// without a target share what the targets leave.
struct spread {
    std::string label;
    std::vector<std::pair<std::string, double>> targets; // value, percent
};

struct group {
    std::string name;
    std::uint32_t count = 1;
    resources demand; // per instance
    std::string gpu_model; // empty: any model
    std::int64_t min_gpu_memory_bytes = 0;
    std::vector<constraint> constraints;
    std::vector<affinity> affinities;
    std::vector<anti_affinity> anti_affinities;
    std::optional<spread> spread_over;
};

/// Weights of the score's normalised terms, each >= 0; they are divided by their sum.
struct scoring_weights {
    double binpack = 1;     // prefer fuller nodes
    double spread = 0;      // prefer emptier nodes
    double cost = 0;        // prefer cheaper nodes
    double carbon = 0;      // prefer lower carbon intensity
    double load = 0;        // prefer lower measured load
    double locality = 0;    // prefer nodes near `locality`
    double affinity = 1;    // weight of the soft affinities' term
};

struct locality {
    std::vector<node_key> near_nodes;
    std::string zone_label = "zone";
    std::vector<std::string> near_zones;
    std::vector<std::string> near_content; // content ids: prefer the nodes holding them
};

struct workload {
    std::string id;
    std::int32_t priority = 0;
    bool gang = false;             // all instances or none
    bool allow_preemption = false; // may evict allocations of strictly lower priority
    std::vector<group> groups;
    scoring_weights weights;
    locality near;

    /// Names the first bad field: empty id or group, zero or absurd counts, negative or absurd
    /// resources, weights out of range, a regex that does not compile, a version that does not parse.
    detailed_result<void> validate() const;
};

struct scheduler_config {
    std::uint64_t seed = 0;
    /// Nodes already in use examined per decision (the bin-pack candidates); 0 means about log2(feasible nodes).
    std::uint32_t sample_open = 0;
    /// Never-used nodes examined per decision (power of k choices).
    std::uint32_t sample_fresh = 2;
    /// Score every feasible node when a term needs it (affinity, locality, cost, carbon, load).
    bool full_scan_for_soft_terms = true;
    /// Ranked candidates offered to admission per instance.
    std::uint32_t admission_candidates = 3;
    /// Within one schedule() call, place workloads of higher priority first and, within a priority, those
    /// whose largest instance is largest first (first-fit decreasing: small instances then fill the gaps
    /// large ones leave; 1-5% fewer machines on bench/placement's grid). Off (the default): workloads go in
    /// the order given, which callers may rely on (e.g. to let a later workload preempt an earlier one).
    bool largest_first = false;
    /// Bounds for validation: counts and resources above these are rejected as absurd.
    std::uint32_t max_instances_per_group = 1'000'000;
    std::int64_t max_resource_value = std::int64_t{1} << 56;

    detailed_result<void> validate() const;
};

/// One instance the scheduler wants to put on a node, handed to admission. The pointers are valid only
/// during the callback.
struct proposal {
    const workload* work = nullptr;
    const group* grp = nullptr;
    std::uint32_t instance = 0;
    const node_key* node = nullptr;
    std::uint32_t rank = 0; // 0 is the best candidate
};

/// The authority of the target node. Each instance is offered to its ranked candidates in order (up to
/// `admission_candidates` a round); refused nodes are left out of the next round, for at most 8 rounds.
/// Called synchronously, on the scheduling thread; must not call back into the scheduler. `release` undoes
/// an admitted proposal when its gang fails.
struct admission {
    std::function<bool(const proposal&)> admit;
    std::function<void(const proposal&)> release;
};

struct assignment {
    std::string workload;
    std::string group;
    std::uint32_t instance = 0;
    node_key node;
    double score = 0;
};

struct eviction {
    node_key node;
    std::string allocation;
    std::int32_t priority = 0;
    std::string for_workload;
};

/// Nodes one filter rejected.
struct filter_count {
    std::string filter; // e.g. "label region equals eu-west"
    std::size_t nodes = 0;
};

/// What evicting lower-priority allocations on one node would free.
struct preemption_option {
    node_key node;
    std::vector<std::string> allocations;
    std::int32_t highest_priority = 0;
    resources freed;
};

/// Why one instance was not placed, in terms a user can act on.
struct explanation {
    std::string workload;
    std::string group;
    std::uint32_t instance = 0;
    std::size_t nodes_total = 0;
    std::vector<filter_count> filters;   // static rejections (constraints, GPU, node too small)
    std::vector<filter_count> exhausted; // nodes passing the filters but lacking free capacity, by dimension
    std::size_t anti_affinity_rejected = 0;
    std::size_t admission_refused = 0;
    std::optional<preemption_option> preemption; // what would make room, when allowed or not
    std::string summary;                         // one sentence
};

struct plan {
    std::vector<assignment> assignments;
    std::vector<eviction> evictions;
    std::vector<explanation> unplaced;
    /// Soft terms that could not apply, e.g. a spread, affinity or anti-affinity on a label no node has.
    std::vector<std::string> warnings;

    /// FNV-1a over the assignments and evictions in order: the same seed and input give the same hash.
    std::uint64_t hash() const noexcept;
};

struct move {
    std::string allocation;
    node_key from;
    node_key to;
};

struct rebalance_config {
    std::uint32_t move_budget = 16;
    enum class goal { pack, spread } target = goal::pack;
    detailed_result<void> validate() const;
};

struct rebalance_plan {
    std::vector<move> moves;
    std::size_t nodes_freed = 0;       // pack: nodes left empty by the moves
    double utilisation_spread_before = 0; // spread: max - min node utilisation
    double utilisation_spread_after = 0;
};

/// Owns an indexed copy of the snapshot (node classes, feasibility caches) and keeps its usage up to
/// date with each plan it returns, so successive calls see earlier placements.
class scheduler {
public:
    /// Fails on duplicate node ids, negative or absurd resources, or duplicate label keys.
    static detailed_result<scheduler> create(const cluster& snapshot, const scheduler_config& config = {});

    scheduler(scheduler&&) noexcept;
    scheduler& operator=(scheduler&&) noexcept;
    ~scheduler();

    /// Places every instance it can; a gang workload is placed whole or not at all. Workloads go in the
    /// order scheduler_config::largest_first says; the plan lists assignments in the order they were made. Fails only on invalid
    /// workloads (then nothing is placed); an unplaceable instance is an explanation, not an error.
    /// Constraints are evaluated once per node class and group; a decision then examines O(sample) nodes
    /// (O(feasible) when a soft term needs a full scan) and allocates nothing until it records its result.
    detailed_result<plan> schedule(std::span<const workload> workloads, const admission* admit = nullptr);

    /// Moves existing allocations within the budget: `pack` empties the least used nodes, `spread` evens
    /// out utilisation. Moves keep an allocation on nodes with the same labels and GPU as its current one.
    detailed_result<rebalance_plan> rebalance(const rebalance_config& config);

    std::size_t node_count() const noexcept;
    std::size_t class_count() const noexcept;
    /// Current free resources of a node, as the scheduler sees them.
    result<resources> free_on(std::string_view node) const;

private:
    struct impl;
    friend struct scheduler_run;
    explicit scheduler(std::unique_ptr<impl> p) noexcept;
    std::unique_ptr<impl> impl_;
};

} // namespace swarm::inline v0::placement
