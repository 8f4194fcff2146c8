// The SQLite index of objects (name -> manifest) and stripes (chunk id -> references, size, shard locations).
#pragma once

#include <swarm/core/error.hpp>
#include <swarm/storage/config.hpp>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::inline v0::storage::detail {

struct stripe_row {
    chunk_id id{};
    std::uint64_t stored_size = 0;
    std::vector<std::uint8_t> locations; // store index of each shard, k+m entries
};

struct object_row {
    std::string name;
    std::uint64_t size = 0;
    std::uint64_t chunks = 0;
};

class catalog {
public:
    static detailed_result<catalog> open(const std::filesystem::path& file);
    catalog(catalog&&) noexcept;
    catalog& operator=(catalog&&) noexcept;
    ~catalog();

    result<std::optional<std::vector<std::uint8_t>>> manifest(std::string_view name);
    result<std::optional<stripe_row>> stripe(const chunk_id& id);

    /// One transaction: the object now maps to `manifest`; it references `referenced` (distinct ids), of which
    /// `added` are new stripes; the previous version's `released` ids lose a reference. Returns the stripes
    /// left without references (their rows are gone; their shards are the caller's to remove).
    result<std::vector<stripe_row>> commit(std::string_view name, std::uint64_t size, std::uint64_t chunks,
                                         std::span<const std::uint8_t> manifest, std::span<const chunk_id> referenced,
                                         std::span<const stripe_row> added, std::span<const chunk_id> released);
    /// One transaction: drops the object and a reference from each of `released`; returns the orphans.
    result<std::vector<stripe_row>> remove(std::string_view name, std::span<const chunk_id> released);

    /// Records where the stripe's shards live now (after repair moved some).
    result<void> set_locations(const chunk_id& id, std::span<const std::uint8_t> locations);

    result<std::vector<object_row>> list(std::string_view prefix);
    result<std::vector<stripe_row>> stripes();

private:
    struct impl;
    explicit catalog(std::unique_ptr<impl>);
    std::unique_ptr<impl> impl_;
};

} // namespace swarm::inline v0::storage::detail
