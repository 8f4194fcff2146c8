// Chunk boundaries: fixed, or FastCDC-style (gear rolling hash, normalised chunking, min-size skip).
#pragma once

#include <swarm/storage/config.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace swarm::inline v0::storage::detail {

class chunker {
public:
    explicit chunker(const chunking_config& config) noexcept;

    /// Length of the chunk starting at data[0]. `data` holds at least max_size bytes, or everything left of the
    /// input. Returns 0 only for empty data.
    std::size_t next(std::span<const std::uint8_t> data) const noexcept;

    std::size_t max_size() const noexcept { return config_.max_size; }

private:
    chunking_config config_;
    std::uint64_t mask_small_; // stricter before the average size: fewer tiny chunks
    std::uint64_t mask_large_; // looser after it: fewer chunks cut at max_size
};

} // namespace swarm::inline v0::storage::detail
