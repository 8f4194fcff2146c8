// JSON loading with Boost.JSON. Errors travel as a private exception inside this file only and become a
// detailed_result at the public functions.
#include <swarm/placement/json.hpp>

#include <boost/json.hpp>
#include <fmt/format.h>

#include <initializer_list>

namespace swarm::inline v0::placement {
namespace {

namespace json = boost::json;

struct json_failure {
    error e;
};

[[noreturn]] void fail(errc code, std::string message) { throw json_failure{error(code, std::move(message))}; }

/// One JSON object being read, with its path for error messages and the keys it accepts.
class object_reader {
public:
    object_reader(const json::value& v, std::string path, std::initializer_list<std::string_view> allowed)
        : path_(std::move(path)) {
        if (!v.is_object()) fail(errc::config_wrong_type, fmt::format("{}: expected an object", shown()));
        obj_ = &v.get_object();
        for (const auto& kv : *obj_)
            if (std::find(allowed.begin(), allowed.end(), std::string_view(kv.key())) == allowed.end())
                fail(errc::config_unknown_key, fmt::format("{}: unknown key '{}'", shown(), std::string_view(kv.key())));
    }

    std::string at(std::string_view key) const { return path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key); }

    const json::value* find(std::string_view key) const {
        auto it = obj_->find(key);
        return it == obj_->end() ? nullptr : &it->value();
    }

    const json::value& need(std::string_view key) const {
        const auto* v = find(key);
        if (!v) fail(errc::config_missing_key, fmt::format("{}: missing", at(key)));
        return *v;
    }

    void read(std::string_view key, std::string& out, bool required = false) const {
        const auto* v = required ? &need(key) : find(key);
        if (!v) return;
        if (!v->is_string()) fail(errc::config_wrong_type, fmt::format("{}: expected a string", at(key)));
        out = std::string(v->get_string());
    }

    template <class Int>
        requires std::is_integral_v<Int>
    void read(std::string_view key, Int& out, bool required = false) const {
        const auto* v = required ? &need(key) : find(key);
        if (!v) return;
        if constexpr (std::is_same_v<Int, bool>) {
            if (!v->is_bool()) fail(errc::config_wrong_type, fmt::format("{}: expected true or false", at(key)));
            out = v->get_bool();
        } else {
            std::int64_t value = 0;
            if (v->is_int64()) value = v->get_int64();
            else if (v->is_uint64() && v->get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
                value = static_cast<std::int64_t>(v->get_uint64());
            else fail(errc::config_wrong_type, fmt::format("{}: expected an integer", at(key)));
            if (value < static_cast<std::int64_t>(std::numeric_limits<Int>::min()) ||
                static_cast<std::uint64_t>(value) > static_cast<std::uint64_t>(std::numeric_limits<Int>::max()))
                fail(errc::config_invalid_value, fmt::format("{}: {} is out of range", at(key), value));
            out = static_cast<Int>(value);
        }
    }

    void read(std::string_view key, double& out) const {
        const auto* v = find(key);
        if (!v) return;
        if (v->is_double()) out = v->get_double();
        else if (v->is_int64()) out = static_cast<double>(v->get_int64());
        else if (v->is_uint64()) out = static_cast<double>(v->get_uint64());
        else fail(errc::config_wrong_type, fmt::format("{}: expected a number", at(key)));
    }

    void read(std::string_view key, std::vector<std::string>& out) const {
        const auto* v = find(key);
        if (!v) return;
        const auto& a = array(key, *v);
        for (std::size_t i = 0; i < a.size(); ++i) {
            if (!a[i].is_string()) fail(errc::config_wrong_type, fmt::format("{}[{}]: expected a string", at(key), i));
            out.emplace_back(a[i].get_string());
        }
    }

    /// {"name": "value", ...}
    void read(std::string_view key, std::vector<std::pair<std::string, std::string>>& out) const {
        const auto* v = find(key);
        if (!v) return;
        if (!v->is_object()) fail(errc::config_wrong_type, fmt::format("{}: expected an object of strings", at(key)));
        for (const auto& kv : v->get_object()) {
            if (!kv.value().is_string())
                fail(errc::config_wrong_type, fmt::format("{}.{}: expected a string", at(key), std::string_view(kv.key())));
            out.emplace_back(kv.key(), kv.value().get_string());
        }
    }

    const json::array& array(std::string_view key, const json::value& v) const {
        if (!v.is_array()) fail(errc::config_wrong_type, fmt::format("{}: expected an array", at(key)));
        return v.get_array();
    }

private:
    std::string shown() const { return path_.empty() ? std::string("top level") : path_; }
    std::string path_;
    const json::object* obj_ = nullptr;
};

json::value parse(std::string_view text) {
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (ec) fail(errc::malformed, fmt::format("not valid JSON: {}", ec.message()));
    return v;
}

resources read_resources(const json::value& v, const std::string& path) {
    object_reader r(v, path, {"cpu_millis", "memory_bytes", "disk_bytes", "gpus", "devices"});
    resources out;
    r.read("cpu_millis", out.cpu_millis);
    r.read("memory_bytes", out.memory_bytes);
    r.read("disk_bytes", out.disk_bytes);
    r.read("gpus", out.gpus);
    if (const auto* d = r.find("devices")) {
        if (!d->is_object()) fail(errc::config_wrong_type, fmt::format("{}: expected an object of integers", r.at("devices")));
        for (const auto& kv : d->get_object()) {
            const auto& x = kv.value();
            if (!x.is_int64()) fail(errc::config_wrong_type, fmt::format("{}.{}: expected an integer", r.at("devices"), std::string_view(kv.key())));
            out.devices.emplace_back(kv.key(), x.get_int64());
        }
    }
    return out;
}

constraint_op read_op(const object_reader& r) {
    std::string name;
    r.read("op", name, true);
    static constexpr std::pair<std::string_view, constraint_op> ops[] = {
        {"equals", constraint_op::equals},         {"not_equals", constraint_op::not_equals},
        {"in", constraint_op::in},                 {"not_in", constraint_op::not_in},
        {"regex", constraint_op::regex},           {"version_eq", constraint_op::version_eq},
        {"version_ne", constraint_op::version_ne}, {"version_lt", constraint_op::version_lt},
        {"version_le", constraint_op::version_le}, {"version_gt", constraint_op::version_gt},
        {"version_ge", constraint_op::version_ge}, {"exists", constraint_op::exists},
        {"not_exists", constraint_op::not_exists},
    };
    for (const auto& [n, op] : ops)
        if (n == name) return op;
    fail(errc::config_invalid_value, fmt::format("{}: unknown operator '{}' (equals, not_equals, in, not_in, regex, "
                                                 "version_eq/ne/lt/le/gt/ge, exists, not_exists)", r.at("op"), name));
}

constraint read_constraint(const object_reader& r) {
    constraint c;
    r.read("label", c.label, true);
    c.op = read_op(r);
    if (const auto* v = r.find("value")) {
        if (!v->is_string()) fail(errc::config_wrong_type, fmt::format("{}: expected a string", r.at("value")));
        c.values.emplace_back(v->get_string());
    }
    r.read("values", c.values);
    return c;
}

template <class F>
void each(const object_reader& r, std::string_view key, F&& f) {
    const auto* v = r.find(key);
    if (!v) return;
    const auto& a = r.array(key, *v);
    for (std::size_t i = 0; i < a.size(); ++i) f(a[i], fmt::format("{}[{}]", r.at(key), i));
}

group read_group(const json::value& v, const std::string& path) {
    object_reader r(v, path, {"name", "count", "demand", "gpu_model", "min_gpu_memory_bytes", "constraints", "affinities",
                              "anti_affinities", "spread"});
    group g;
    r.read("name", g.name, true);
    r.read("count", g.count);
    if (const auto* d = r.find("demand")) g.demand = read_resources(*d, r.at("demand"));
    r.read("gpu_model", g.gpu_model);
    r.read("min_gpu_memory_bytes", g.min_gpu_memory_bytes);
    each(r, "constraints", [&](const json::value& c, const std::string& p) {
        g.constraints.push_back(read_constraint(object_reader(c, p, {"label", "op", "value", "values"})));
    });
    each(r, "affinities", [&](const json::value& c, const std::string& p) {
        object_reader a(c, p, {"label", "op", "value", "values", "weight"});
        affinity aff{read_constraint(a), 0};
        a.read("weight", aff.weight);
        g.affinities.push_back(std::move(aff));
    });
    each(r, "anti_affinities", [&](const json::value& c, const std::string& p) {
        object_reader a(c, p, {"label", "max_per"});
        anti_affinity x;
        a.read("label", x.label);
        a.read("max_per", x.max_per);
        g.anti_affinities.push_back(std::move(x));
    });
    if (const auto* s = r.find("spread")) {
        object_reader sr(*s, r.at("spread"), {"label", "targets"});
        spread sp;
        sr.read("label", sp.label, true);
        if (const auto* t = sr.find("targets")) {
            if (!t->is_object()) fail(errc::config_wrong_type, fmt::format("{}: expected an object of percents", sr.at("targets")));
            for (const auto& kv : t->get_object()) {
                const auto& x = kv.value();
                if (!x.is_number()) fail(errc::config_wrong_type, fmt::format("{}.{}: expected a number", sr.at("targets"), std::string_view(kv.key())));
                sp.targets.emplace_back(kv.key(), x.to_number<double>());
            }
        }
        g.spread_over = std::move(sp);
    }
    return g;
}

workload read_workload(const json::value& v, const std::string& path) {
    object_reader r(v, path, {"id", "priority", "gang", "allow_preemption", "groups", "weights", "near"});
    workload w;
    r.read("id", w.id, true);
    r.read("priority", w.priority);
    r.read("gang", w.gang);
    r.read("allow_preemption", w.allow_preemption);
    r.need("groups");
    each(r, "groups", [&](const json::value& g, const std::string& p) { w.groups.push_back(read_group(g, p)); });
    if (const auto* x = r.find("weights")) {
        object_reader wr(*x, r.at("weights"), {"binpack", "spread", "cost", "carbon", "load", "locality", "affinity"});
        wr.read("binpack", w.weights.binpack);
        wr.read("spread", w.weights.spread);
        wr.read("cost", w.weights.cost);
        wr.read("carbon", w.weights.carbon);
        wr.read("load", w.weights.load);
        wr.read("locality", w.weights.locality);
        wr.read("affinity", w.weights.affinity);
    }
    if (const auto* x = r.find("near")) {
        object_reader nr(*x, r.at("near"), {"nodes", "zone_label", "zones", "content"});
        nr.read("nodes", w.near.near_nodes);
        nr.read("zone_label", w.near.zone_label);
        nr.read("zones", w.near.near_zones);
        nr.read("content", w.near.near_content);
    }
    return w;
}

node read_node(const json::value& v, const std::string& path) {
    object_reader r(v, path, {"id", "capacity", "labels", "gpu_model", "gpu_memory_bytes", "price_per_hour", "carbon_g_per_kwh",
                              "load", "allocations"});
    node n;
    r.read("id", n.id, true);
    n.capacity = read_resources(r.need("capacity"), r.at("capacity"));
    r.read("labels", n.labels);
    r.read("gpu_model", n.gpu_model);
    r.read("gpu_memory_bytes", n.gpu_memory_bytes);
    r.read("price_per_hour", n.price_per_hour);
    r.read("carbon_g_per_kwh", n.carbon_g_per_kwh);
    r.read("load", n.load);
    each(r, "allocations", [&](const json::value& a, const std::string& p) {
        object_reader ar(a, p, {"id", "workload", "group", "priority", "demand"});
        allocation x;
        ar.read("id", x.id, true);
        ar.read("workload", x.workload);
        ar.read("group", x.group);
        ar.read("priority", x.priority);
        if (const auto* d = ar.find("demand")) x.demand = read_resources(*d, ar.at("demand"));
        n.allocations.push_back(std::move(x));
    });
    return n;
}

json::object resources_json(const resources& r) {
    json::object o{{"cpu_millis", r.cpu_millis}, {"memory_bytes", r.memory_bytes}, {"disk_bytes", r.disk_bytes}, {"gpus", r.gpus}};
    if (!r.devices.empty()) {
        json::object d;
        for (const auto& [name, v] : r.devices) d[name] = v;
        o["devices"] = std::move(d);
    }
    return o;
}

json::array counts_json(const std::vector<filter_count>& counts, std::string_view name) {
    json::array a;
    for (const auto& f : counts) a.push_back(json::object{{name, f.filter}, {"nodes", f.nodes}});
    return a;
}

} // namespace

detailed_result<cluster> cluster_from_json(std::string_view text) {
    try {
        const auto v = parse(text);
        object_reader r(v, "", {"nodes", "content"});
        cluster c;
        each(r, "nodes", [&](const json::value& n, const std::string& p) { c.nodes.push_back(read_node(n, p)); });
        each(r, "content", [&](const json::value& x, const std::string& p) {
            object_reader cr(x, p, {"content", "node"});
            content_location loc;
            cr.read("content", loc.content, true);
            cr.read("node", loc.node, true);
            c.content.push_back(std::move(loc));
        });
        return c;
    } catch (const json_failure& f) {
        return f.e;
    } catch (const std::exception& e) {
        return error(errc::malformed, fmt::format("cluster JSON: {}", e.what()));
    }
}

detailed_result<std::vector<workload>> workloads_from_json(std::string_view text) {
    try {
        const auto v = parse(text);
        object_reader r(v, "", {"workloads"});
        r.need("workloads");
        std::vector<workload> out;
        each(r, "workloads", [&](const json::value& w, const std::string& p) { out.push_back(read_workload(w, p)); });
        return out;
    } catch (const json_failure& f) {
        return f.e;
    } catch (const std::exception& e) {
        return error(errc::malformed, fmt::format("workloads JSON: {}", e.what()));
    }
}

std::string to_json(const plan& p) {
    json::array assignments, evictions, unplaced;
    for (const auto& a : p.assignments)
        assignments.push_back(json::object{{"workload", a.workload}, {"group", a.group}, {"instance", a.instance}, {"node", a.node}, {"score", a.score}});
    for (const auto& e : p.evictions)
        evictions.push_back(json::object{{"node", e.node}, {"allocation", e.allocation}, {"priority", e.priority}, {"for_workload", e.for_workload}});
    for (const auto& e : p.unplaced) {
        json::object o{{"workload", e.workload},
                       {"group", e.group},
                       {"instance", e.instance},
                       {"summary", e.summary},
                       {"nodes_total", e.nodes_total},
                       {"filters", counts_json(e.filters, "filter")},
                       {"exhausted", counts_json(e.exhausted, "dimension")},
                       {"anti_affinity_rejected", e.anti_affinity_rejected},
                       {"admission_refused", e.admission_refused}};
        if (e.preemption) {
            json::array allocs;
            for (const auto& a : e.preemption->allocations) allocs.emplace_back(a);
            o["preemption"] = json::object{{"node", e.preemption->node},
                                           {"allocations", std::move(allocs)},
                                           {"highest_priority", e.preemption->highest_priority},
                                           {"freed", resources_json(e.preemption->freed)}};
        }
        unplaced.push_back(std::move(o));
    }
    return json::serialize(json::object{{"assignments", std::move(assignments)},
                                        {"evictions", std::move(evictions)},
                                        {"unplaced", std::move(unplaced)},
                                        {"warnings", json::value_from(p.warnings)},
                                        {"hash", fmt::format("{:016x}", p.hash())}});
}

} // namespace swarm::inline v0::placement
