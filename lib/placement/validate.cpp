// Validation of workloads and configs: every bad field is named, so a user can fix it without reading code.
#include "placement/version.hpp"

#include <swarm/placement/scheduler.hpp>

#include <fmt/format.h>

#include <cmath>
#include <regex>
#include <set>

namespace swarm::inline v0::placement {
namespace {

constexpr std::int64_t absurd_resource = std::int64_t{1} << 56;
constexpr std::uint32_t absurd_count = 10'000'000;

error invalid(std::string message) { return {errc::invalid_argument, std::move(message)}; }

detailed_result<void> check_resources(const resources& r, std::string_view where) {
    const std::pair<std::string_view, std::int64_t> fields[] = {
        {"cpu_millis", r.cpu_millis}, {"memory_bytes", r.memory_bytes}, {"disk_bytes", r.disk_bytes}, {"gpus", r.gpus}};
    for (const auto& [name, value] : fields) {
        if (value < 0) return invalid(fmt::format("{}: {} is negative ({})", where, name, value));
        if (value > absurd_resource) return invalid(fmt::format("{}: {} is absurdly large ({})", where, name, value));
    }
    std::set<std::string_view> seen;
    for (const auto& [name, value] : r.devices) {
        if (name.empty()) return invalid(fmt::format("{}: a device has an empty name", where));
        if (!seen.insert(name).second) return invalid(fmt::format("{}: device '{}' appears twice", where, name));
        if (value < 0) return invalid(fmt::format("{}: device '{}' is negative ({})", where, name, value));
        if (value > absurd_resource) return invalid(fmt::format("{}: device '{}' is absurdly large ({})", where, name, value));
    }
    return {};
}

std::size_t expected_values(constraint_op op) {
    switch (op) {
    case constraint_op::in:
    case constraint_op::not_in: return 0; // one or more, checked separately
    case constraint_op::exists:
    case constraint_op::not_exists: return 0;
    default: return 1;
    }
}

} // namespace

detailed_result<void> check_constraint(const constraint& c, std::string_view where) {
    if (c.label.empty()) return invalid(fmt::format("{}: a constraint has an empty label", where));
    const bool set_op = c.op == constraint_op::in || c.op == constraint_op::not_in;
    const bool unary = c.op == constraint_op::exists || c.op == constraint_op::not_exists;
    if (set_op && c.values.empty())
        return invalid(fmt::format("{}: constraint on '{}' needs at least one value", where, c.label));
    if (unary && !c.values.empty())
        return invalid(fmt::format("{}: constraint '{}' exists/not_exists takes no value", where, c.label));
    if (!set_op && !unary && c.values.size() != expected_values(c.op))
        return invalid(fmt::format("{}: constraint on '{}' needs exactly one value, got {}", where, c.label, c.values.size()));
    if (c.op == constraint_op::regex) {
        try {
            std::regex compiled(c.values[0], std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
            return invalid(fmt::format("{}: regex '{}' on label '{}' does not compile: {}", where, c.values[0], c.label, e.what()));
        }
    }
    if (c.op >= constraint_op::version_eq && c.op <= constraint_op::version_ge && !parse_version(c.values[0]))
        return invalid(fmt::format("{}: '{}' on label '{}' is not a version (digits separated by dots)", where,
                                   c.values[0], c.label));
    return {};
}

detailed_result<void> workload::validate() const {
    if (id.empty()) return invalid("workload: id is empty");
    if (groups.empty()) return invalid(fmt::format("workload '{}': no groups", id));
    const std::pair<std::string_view, double> ws[] = {{"binpack", weights.binpack}, {"spread", weights.spread},
                                                      {"cost", weights.cost},       {"carbon", weights.carbon},
                                                      {"load", weights.load},       {"locality", weights.locality},
                                                      {"affinity", weights.affinity}};
    for (const auto& [name, w] : ws)
        if (!std::isfinite(w) || w < 0 || w > 1e6)
            return invalid(fmt::format("workload '{}': weight {} must be in [0, 1e6], got {}", id, name, w));
    std::set<std::string_view> names;
    for (const auto& g : groups) {
        if (g.name.empty()) return invalid(fmt::format("workload '{}': a group has an empty name", id));
        if (!names.insert(g.name).second) return invalid(fmt::format("workload '{}': group '{}' appears twice", id, g.name));
        const auto where = fmt::format("workload '{}' group '{}'", id, g.name);
        if (g.count == 0) return invalid(fmt::format("{}: count is zero", where));
        if (g.count > absurd_count) return invalid(fmt::format("{}: count {} is absurd", where, g.count));
        if (auto r = check_resources(g.demand, where); !r) return r;
        if (g.min_gpu_memory_bytes < 0 || g.min_gpu_memory_bytes > absurd_resource)
            return invalid(fmt::format("{}: min_gpu_memory_bytes out of range ({})", where, g.min_gpu_memory_bytes));
        for (const auto& c : g.constraints)
            if (auto r = check_constraint(c, where); !r) return r;
        for (const auto& a : g.affinities) {
            if (auto r = check_constraint(a.match, where); !r) return r;
            if (!std::isfinite(a.weight) || a.weight == 0 || a.weight < -100 || a.weight > 100)
                return invalid(fmt::format("{}: affinity on '{}' needs a weight in [-100, 100], not zero, got {}", where,
                                           a.match.label, a.weight));
        }
        for (const auto& a : g.anti_affinities)
            if (a.max_per == 0)
                return invalid(fmt::format("{}: anti-affinity on '{}' needs max_per >= 1", where,
                                           a.label.empty() ? std::string_view("host") : std::string_view(a.label)));
        if (g.spread_over) {
            if (g.spread_over->label.empty()) return invalid(fmt::format("{}: spread has an empty label", where));
            double total = 0;
            std::set<std::string_view> values;
            for (const auto& [value, percent] : g.spread_over->targets) {
                if (!values.insert(value).second)
                    return invalid(fmt::format("{}: spread target '{}' appears twice", where, value));
                if (!std::isfinite(percent) || percent < 0 || percent > 100)
                    return invalid(fmt::format("{}: spread target '{}' must be a percent in [0, 100], got {}", where, value, percent));
                total += percent;
            }
            if (total > 100.0 + 1e-9)
                return invalid(fmt::format("{}: spread targets add up to {}%, more than 100%", where, total));
        }
    }
    return {};
}

detailed_result<void> scheduler_config::validate() const {
    if (sample_fresh == 0) return invalid("scheduler_config: sample_fresh must be at least 1");
    if (admission_candidates == 0) return invalid("scheduler_config: admission_candidates must be at least 1");
    if (admission_candidates > 64) return invalid("scheduler_config: admission_candidates must be at most 64");
    if (sample_open > 4096) return invalid("scheduler_config: sample_open must be at most 4096");
    if (sample_fresh > 4096) return invalid("scheduler_config: sample_fresh must be at most 4096");
    if (max_instances_per_group == 0) return invalid("scheduler_config: max_instances_per_group must be at least 1");
    if (max_resource_value <= 0) return invalid("scheduler_config: max_resource_value must be positive");
    return {};
}

detailed_result<void> rebalance_config::validate() const {
    if (move_budget == 0) return invalid("rebalance_config: move_budget must be at least 1");
    if (move_budget > 1'000'000) return invalid("rebalance_config: move_budget is absurd");
    return {};
}

detailed_result<void> check_node_resources(const resources& r, std::string_view where) { return check_resources(r, where); }

} // namespace swarm::inline v0::placement
