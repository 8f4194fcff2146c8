#include <swarm/placement/membership_view.hpp>

#include <algorithm>
#include <limits>
#include <unordered_set>

namespace swarm::inline v0::placement {
namespace {

membership::resources to_membership(const resources& r, const std::string& gpu_model, std::int64_t gpu_memory) {
    membership::resources out;
    out.cpu_millicores = static_cast<std::uint64_t>(std::max<std::int64_t>(r.cpu_millis, 0));
    out.memory_bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(r.memory_bytes, 0));
    out.disk_bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(r.disk_bytes, 0));
    for (std::int64_t i = 0; i < r.gpus; ++i)
        out.gpus.push_back({gpu_model, static_cast<std::uint64_t>(std::max<std::int64_t>(gpu_memory, 0)), 0, 0});
    for (const auto& [name, count] : r.devices) out.devices[name] = static_cast<std::uint64_t>(std::max<std::int64_t>(count, 0));
    return out;
}

/// False when a value would not fit the scheduler's bound.
bool to_placement(const membership::resources& r, std::int64_t limit, resources& out) {
    const auto ok = [limit](std::uint64_t v) { return v <= static_cast<std::uint64_t>(limit); };
    if (!ok(r.cpu_millicores) || !ok(r.memory_bytes) || !ok(r.disk_bytes) || !ok(r.gpus.size())) return false;
    out.cpu_millis = static_cast<std::int64_t>(r.cpu_millicores);
    out.memory_bytes = static_cast<std::int64_t>(r.memory_bytes);
    out.disk_bytes = static_cast<std::int64_t>(r.disk_bytes);
    out.gpus = static_cast<std::int64_t>(r.gpus.size());
    out.devices.clear();
    for (const auto& [name, count] : r.devices) {
        if (!ok(count)) return false;
        out.devices.emplace_back(name, static_cast<std::int64_t>(count));
    }
    return true;
}

} // namespace

node_key key_of(const node_id& id) { return id.to_string(); }

membership::metadata describe_node(const node& self) {
    membership::metadata meta;
    meta.capacity = to_membership(self.capacity, self.gpu_model, self.gpu_memory_bytes);
    for (const auto& [key, value] : self.labels) meta.labels[key] = value;
    return with_allocations(std::move(meta), self);
}

membership::metadata with_allocations(membership::metadata base, const node& self) {
    base.allocations.clear();
    base.allocations.reserve(self.allocations.size());
    for (const auto& a : self.allocations) {
        membership::allocation out;
        out.id = a.id;
        out.workload = a.workload;
        out.group = a.group;
        out.instance = a.instance;
        out.priority = a.priority;
        // The GPU model of an allocation is the node's; carrying it again per allocation would only cost bytes.
        out.demand = to_membership(a.demand, {}, 0);
        base.allocations.push_back(std::move(out));
    }
    return base;
}

membership_view view_from_members(std::span<const membership::member> members, std::uint16_t admission_port,
                                  std::int64_t max_resource_value) {
    membership_view view;
    for (const auto& m : members) {
        const auto key = key_of(m.id);
        if (m.state != membership::member_state::alive && m.state != membership::member_state::suspect) continue;
        if (!m.meta) {
            view.skipped.push_back(key + ": no metadata yet");
            continue;
        }
        const auto& meta = *m.meta;
        node n;
        n.id = key;
        if (!to_placement(meta.capacity, max_resource_value, n.capacity)) {
            view.skipped.push_back(key + ": capacity over the scheduler's max_resource_value");
            continue;
        }
        n.labels.assign(meta.labels.begin(), meta.labels.end());
        if (!meta.capacity.gpus.empty()) {
            n.gpu_model = meta.capacity.gpus.front().model;
            auto smallest = meta.capacity.gpus.front().memory_bytes;
            for (const auto& g : meta.capacity.gpus) smallest = std::min(smallest, g.memory_bytes);
            n.gpu_memory_bytes = static_cast<std::int64_t>(std::min<std::uint64_t>(smallest, static_cast<std::uint64_t>(max_resource_value)));
        }
        if (meta.capacity.cpu_millicores > 0 && meta.available.cpu_millicores > 0) {
            const double free = static_cast<double>(meta.available.cpu_millicores) / static_cast<double>(meta.capacity.cpu_millicores);
            n.load = std::clamp(1.0 - free, 0.0, 1.0);
        }
        std::unordered_set<std::string_view> seen;
        bool absurd = false;
        for (const auto& a : meta.allocations) {
            if (a.id.empty() || !seen.insert(a.id).second) continue;
            allocation x;
            x.id = a.id;
            x.workload = a.workload;
            x.group = a.group;
            x.instance = a.instance;
            x.priority = a.priority;
            if (!to_placement(a.demand, max_resource_value, x.demand)) {
                absurd = true;
                break;
            }
            std::erase_if(x.demand.devices, [&](const auto& d) { return !meta.capacity.devices.contains(d.first); });
            n.allocations.push_back(std::move(x));
        }
        if (absurd) {
            view.skipped.push_back(key + ": an allocation over the scheduler's max_resource_value");
            continue;
        }
        auto address = m.address;
        address.set_port(admission_port);
        view.addresses[key] = address;
        view.snapshot.nodes.push_back(std::move(n));
    }
    return view;
}

} // namespace swarm::inline v0::placement
