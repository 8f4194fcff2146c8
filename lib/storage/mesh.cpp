#include <swarm/storage/mesh.hpp>

#include "core/atomic_file.hpp"

#include <swarm/core/wire.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <tuple>

namespace swarm::inline v0::storage {

namespace {

constexpr std::size_t max_nodes = 256; // a catalog location is one byte

std::uint64_t mix(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// A stable 64-bit hash of (stripe, node): the same on every host and run, so every node computes one placement.
std::uint64_t pair_hash(const chunk_id& stripe, const swarm::node_id& node) {
    std::uint64_t h = 0x5357524d50414345ULL;
    for (std::size_t i = 0; i < 32; i += 8) {
        std::uint64_t a = 0, b = 0;
        for (std::size_t j = 0; j < 8; ++j) {
            a = (a << 8) | stripe[i + j];
            b = (b << 8) | std::to_integer<std::uint64_t>(node.bytes()[i + j]);
        }
        h = mix(h ^ a);
        h = mix(h ^ b);
    }
    return h;
}

std::string label_or_empty(const membership::member& m, const std::string& key) {
    if (!m.meta) return {};
    auto it = m.meta->labels.find(key);
    return it == m.meta->labels.end() ? std::string{} : it->second;
}

} // namespace

result<std::size_t> mesh_placement::upsert(const mesh_node& node) {
    if (auto i = index_of(node.id)) {
        nodes_[*i] = node;
        return *i;
    }
    if (nodes_.size() >= max_nodes) return errc::too_large;
    nodes_.push_back(node);
    return nodes_.size() - 1;
}

void mesh_placement::update(std::span<const membership::member> members, std::uint16_t transfer_port) {
    for (const auto& m : members) {
        mesh_node n;
        if (auto i = index_of(m.id)) n = nodes_[*i];
        n.id = m.id;
        n.address = net::endpoint(m.address.address(), transfer_port);
        n.live = m.state == membership::member_state::alive || m.state == membership::member_state::suspect;
        if (m.meta) {
            n.zone = label_or_empty(m, "zone");
            n.rack = label_or_empty(m, "rack");
            n.available_disk = m.meta->available.disk_bytes;
        }
        (void)upsert(n); // beyond 256 nodes a member is left out of placement
    }
}

result<void> mesh_placement::set_live(std::size_t index, bool live) {
    if (index >= nodes_.size()) return errc::not_found;
    nodes_[index].live = live;
    return {};
}

std::optional<std::size_t> mesh_placement::index_of(const swarm::node_id& id) const {
    for (std::size_t i = 0; i < nodes_.size(); ++i)
        if (nodes_[i].id == id) return i;
    return std::nullopt;
}

result<std::vector<std::size_t>> mesh_placement::place(const chunk_id& stripe, unsigned shards,
                                                       std::span<const std::optional<std::size_t>> current) const {
    if (!current.empty() && current.size() != shards) return errc::invalid_argument;
    // Unknown disk weighs as the average known one, so a node that has not reported is neither starved nor
    // favoured.
    double known = 0;
    std::size_t reporting = 0;
    for (const auto& n : nodes_)
        if (n.live && n.available_disk > 0) {
            known += static_cast<double>(n.available_disk);
            ++reporting;
        }
    const double fallback = reporting ? known / static_cast<double>(reporting) : 1.0;

    std::vector<bool> used(nodes_.size(), false);
    std::map<std::string, unsigned> zone_use, rack_use;
    const auto rack_key = [](const mesh_node& n) { return n.zone + '\0' + n.rack; };
    std::vector<std::size_t> out(shards, SIZE_MAX);
    for (unsigned i = 0; i < current.size(); ++i)
        if (current[i]) {
            if (*current[i] >= nodes_.size()) return errc::invalid_argument;
            out[i] = *current[i];
            used[*current[i]] = true;
            const auto& n = nodes_[*current[i]];
            ++zone_use[n.zone];
            ++rack_use[rack_key(n)];
        }

    struct candidate {
        std::size_t index;
        double score;
    };
    std::vector<candidate> candidates;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
        if (!nodes_[i].live || used[i]) continue;
        const double w = nodes_[i].available_disk > 0 ? static_cast<double>(nodes_[i].available_disk) : fallback;
        // Weighted rendezvous: u uniform in (0, 1); w / -ln(u) picks each node with probability proportional to w.
        const double u = (static_cast<double>(pair_hash(stripe, nodes_[i].id) >> 11) + 0.5) / 9007199254740992.0;
        candidates.push_back({i, w / -std::log(u)});
    }
    std::ranges::sort(candidates, [](const candidate& a, const candidate& b) { return a.score > b.score; });

    for (unsigned s = 0; s < shards; ++s) {
        if (out[s] != SIZE_MAX) continue;
        // The best-scoring candidate among those whose zone, then rack, is least used by this stripe.
        auto best = candidates.end();
        std::tuple<unsigned, unsigned> best_use{UINT_MAX, UINT_MAX};
        for (auto c = candidates.begin(); c != candidates.end(); ++c) {
            const auto& n = nodes_[c->index];
            const std::tuple<unsigned, unsigned> use{zone_use[n.zone], rack_use[rack_key(n)]};
            if (use < best_use) {
                best_use = use;
                best = c;
            }
        }
        if (best == candidates.end()) return errc::data_unavailable;
        const auto& n = nodes_[best->index];
        out[s] = best->index;
        ++zone_use[n.zone];
        ++rack_use[rack_key(n)];
        candidates.erase(best);
    }
    return out;
}

namespace {
constexpr std::uint8_t table_version = 1;
constexpr std::size_t max_label = 256;
} // namespace

detailed_result<void> mesh_placement::save(const std::filesystem::path& file) const {
    std::vector<std::byte> out;
    {
        wire::writer w(out);
        w.u8(table_version);
        w.varint(nodes_.size());
        for (const auto& n : nodes_) {
            w.raw(n.id.bytes());
            w.string(n.address.to_string());
            w.string(n.zone);
            w.string(n.rack);
            w.u64(n.available_disk);
            w.boolean(n.live);
        }
        if (auto r = w.finish(); !r) return error{r.error(), "encoding the mesh table failed"};
    }
    return detail::write_file_atomically(file, out, {.mode = 0644, .keep_existing_mode = true, .replace = true, .what = "mesh table"});
}

detailed_result<mesh_placement> mesh_placement::load(const std::filesystem::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return error{errc::not_found, fmt::format("cannot open mesh table {}", file.string())};
    const std::vector<char> text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    wire::reader r(std::as_bytes(std::span(text)));
    mesh_placement m;
    if (r.u8() != table_version && r.ok()) return error{errc::unsupported_version, fmt::format("mesh table {}: unknown version", file.string())};
    const auto count = r.count(max_nodes, 32 + 4 + 8 + 1);
    for (std::size_t i = 0; i < count && r.ok(); ++i) {
        mesh_node n;
        swarm::node_id::bytes_type id{};
        r.raw_into(std::span(id));
        n.id = swarm::node_id(id);
        const auto address = r.string(64);
        n.zone = std::string(r.string(max_label));
        n.rack = std::string(r.string(max_label));
        n.available_disk = r.u64();
        n.live = r.boolean();
        if (!r.ok()) break;
        auto parsed = net::endpoint::parse(address);
        if (!parsed) return error{errc::malformed, fmt::format("mesh table {}: node {} has a bad address", file.string(), i)};
        n.address = *parsed;
        m.nodes_.push_back(std::move(n));
    }
    r.expect_end();
    if (auto f = r.finish(); !f)
        return error{f.error(), fmt::format("mesh table {}: unreadable at byte {}", file.string(), r.error_offset())};
    return m;
}

placement_function mesh_placement::placement(unsigned shards) const {
    // object_store asks shard by shard; the stripe's whole placement is computed once and kept for the rest.
    struct memo {
        chunk_id stripe{};
        std::vector<std::size_t> stores;
    };
    auto last = std::make_shared<memo>();
    return [this, last, shards](const chunk_id& stripe, unsigned index, std::size_t store_count) -> std::size_t {
        if (index == 0 || last->stripe != stripe) {
            auto placed = place(stripe, shards);
            last->stripe = stripe;
            last->stores = placed ? std::move(*placed) : std::vector<std::size_t>{};
        }
        // Out of range tells object_store that no placement exists (too few live nodes).
        return index < last->stores.size() ? last->stores[index] : store_count;
    };
}

relocate_function mesh_placement::relocation() const {
    return [this](const chunk_id& stripe, unsigned index, std::span<const std::uint8_t> locations) -> std::optional<std::size_t> {
        if (index >= locations.size()) return std::nullopt;
        const std::size_t now = locations[index];
        if (now < nodes_.size() && nodes_[now].live) return std::nullopt;
        std::vector<std::optional<std::size_t>> current(locations.size());
        for (std::size_t i = 0; i < locations.size(); ++i) {
            if (locations[i] >= nodes_.size()) return std::nullopt; // a store the mesh does not know
            if (i != index) current[i] = locations[i];
        }
        // Only this shard is placed; every other one keeps its node (live or not), so this one never lands where
        // another shard of the stripe lives, and dead nodes are never candidates.
        auto placed = place(stripe, static_cast<unsigned>(locations.size()), current);
        if (!placed) return std::nullopt;
        return (*placed)[index];
    };
}

} // namespace swarm::inline v0::storage
