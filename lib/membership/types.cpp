#include <swarm/core/wire.hpp>
#include <swarm/membership/types.hpp>

#include <limits>

namespace swarm::inline v0::membership {
namespace {

// Bounds on what a decoder accepts, far above any sane node and far below what would hurt.
constexpr std::size_t max_items = 4096;
constexpr std::size_t max_text = 4096;
constexpr std::size_t max_extra = 1024 * 1024;
constexpr std::uint64_t metadata_type = 1;
// Allocations are many and small; bounded separately from the other lists.
constexpr std::size_t max_allocations = 65536;

void put_resources(wire::writer& w, const resources& r) {
    auto s = w.begin_section();
    w.varint(r.cpu_millicores);
    w.varint(r.memory_bytes);
    w.varint(r.disk_bytes);
    w.varint(r.gpus.size());
    for (const auto& g : r.gpus) {
        auto gs = w.begin_section();
        w.string(g.model);
        w.varint(g.memory_bytes);
        w.varint(g.memory_used_bytes);
        w.varint(g.utilisation_percent);
        w.end_section(gs);
    }
    w.varint(r.devices.size());
    for (const auto& [name, count] : r.devices) {
        w.string(name);
        w.varint(count);
    }
    w.end_section(s);
}

void get_resources(wire::reader& r, resources& out) {
    auto s = r.begin_section(1024 * 1024);
    out.cpu_millicores = r.varint();
    out.memory_bytes = r.varint();
    out.disk_bytes = r.varint();
    const auto gpus = r.count(max_items, 4);
    out.gpus.resize(gpus);
    for (auto& g : out.gpus) {
        auto gs = r.begin_section(max_text + 64);
        g.model = std::string(r.utf8(max_text));
        g.memory_bytes = r.varint();
        g.memory_used_bytes = r.varint();
        g.utilisation_percent = static_cast<std::uint32_t>(r.varint_max(100));
        r.end_section(gs, wire::trailing::skip);
    }
    const auto devices = r.count(max_items, 2);
    for (std::size_t i = 0; i < devices && r.ok(); ++i) {
        auto name = std::string(r.utf8(max_text));
        out.devices[std::move(name)] = r.varint();
    }
    r.end_section(s, wire::trailing::skip);
}

} // namespace

std::string_view to_string(member_state s) noexcept {
    switch (s) {
    case member_state::alive: return "alive";
    case member_state::suspect: return "suspect";
    case member_state::dead: return "dead";
    case member_state::left: return "left";
    }
    return "unknown";
}

std::string_view to_string(event_kind k) noexcept {
    switch (k) {
    case event_kind::joined: return "joined";
    case event_kind::updated: return "updated";
    case event_kind::suspect: return "suspect";
    case event_kind::alive: return "alive";
    case event_kind::failed: return "failed";
    case event_kind::left: return "left";
    case event_kind::rejoined: return "rejoined";
    }
    return "unknown";
}

std::vector<std::byte> metadata::encode() const {
    std::vector<std::byte> out;
    wire::writer w(out);
    auto m = w.begin_message(metadata_type);
    put_resources(w, capacity);
    put_resources(w, available);
    w.varint(labels.size());
    for (const auto& [key, value] : labels) {
        w.string(key);
        w.string(value);
    }
    w.varint(models.size());
    for (const auto& model : models) {
        auto s = w.begin_section();
        w.string(model.name);
        w.string(model.endpoint);
        w.string(model.api);
        w.end_section(s);
    }
    w.bytes(extra);
    // Minor version 2: the allocations, appended so that version-1 readers skip them.
    w.varint(allocations.size());
    for (const auto& a : allocations) {
        auto s = w.begin_section();
        w.string(a.id);
        w.string(a.workload);
        w.string(a.group);
        w.varint(a.instance);
        put_resources(w, a.demand);
        w.svarint(a.priority);
        w.end_section(s);
    }
    w.end_message(m);
    w.finish();
    return out;
}

result<metadata> metadata::decode(std::span<const std::byte> bytes) {
    metadata out;
    wire::reader r(bytes);
    auto m = r.begin_message(bytes.size());
    if (r.ok() && m.type != metadata_type) r.fail(errc::malformed);
    get_resources(r, out.capacity);
    get_resources(r, out.available);
    const auto labels = r.count(max_items, 2);
    for (std::size_t i = 0; i < labels && r.ok(); ++i) {
        auto key = std::string(r.utf8(max_text));
        out.labels[std::move(key)] = std::string(r.utf8(max_text));
    }
    const auto models = r.count(max_items, 4);
    out.models.resize(models);
    for (auto& model : out.models) {
        auto s = r.begin_section(3 * max_text + 16);
        model.name = std::string(r.utf8(max_text));
        model.endpoint = std::string(r.utf8(max_text));
        model.api = std::string(r.utf8(max_text));
        r.end_section(s, wire::trailing::skip);
    }
    const auto extra = r.bytes(max_extra);
    out.extra.assign(extra.begin(), extra.end());
    if (r.ok() && r.remaining() > 0) { // absent in metadata written before minor version 2
        const auto allocations = r.count(max_allocations, 8);
        out.allocations.resize(allocations);
        for (auto& a : out.allocations) {
            auto s = r.begin_section(1024 * 1024);
            a.id = std::string(r.utf8(max_text));
            a.workload = std::string(r.utf8(max_text));
            a.group = std::string(r.utf8(max_text));
            a.instance = static_cast<std::uint32_t>(r.varint_max(std::numeric_limits<std::uint32_t>::max()));
            get_resources(r, a.demand);
            const auto priority = r.svarint();
            if (priority < std::numeric_limits<std::int32_t>::min() || priority > std::numeric_limits<std::int32_t>::max())
                r.fail(errc::malformed);
            a.priority = static_cast<std::int32_t>(priority);
            r.end_section(s, wire::trailing::skip);
        }
    }
    r.end_message(m, wire::trailing::skip);
    if (auto done = r.finish(); !done) return done.error();
    return out;
}

} // namespace swarm::inline v0::membership
