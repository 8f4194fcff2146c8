#include "storage/chunker.hpp"

#include <swarm/core/random.hpp>

#include <algorithm>
#include <bit>

namespace swarm::inline v0::storage::detail {

namespace {

// A fixed table of 256 pseudo-random words (splitmix64 from a constant seed); it is part of the format, since
// boundaries, and so deduplication, depend on it.
constexpr std::array<std::uint64_t, 256> make_gear() {
    std::array<std::uint64_t, 256> table{};
    std::uint64_t seed = 0x5357524d43444331ULL;
    for (auto& word : table) word = splitmix64(seed);
    return table;
}
constexpr auto gear = make_gear();

// The top bits of the gear hash depend on the last 64 bytes; the low bits only on the last few.
constexpr std::uint64_t top_bits(unsigned n) { return n == 0 ? 0 : ~std::uint64_t{0} << (64 - n); }

} // namespace

chunker::chunker(const chunking_config& config) noexcept : config_(config) {
    const unsigned bits = static_cast<unsigned>(std::countr_zero(std::max<std::size_t>(config.avg_size, 1)));
    mask_small_ = top_bits(std::min(bits + 2, 63U));
    mask_large_ = top_bits(bits > 2 ? bits - 2 : 1);
}

std::size_t chunker::next(std::span<const std::uint8_t> data) const noexcept {
    const std::size_t n = std::min(data.size(), config_.max_size);
    if (config_.mode == chunking_mode::fixed || n <= config_.min_size) return n;
    const std::size_t normal = std::min(config_.avg_size, n);
    const std::uint8_t* p = data.data();
    std::uint64_t hash = 0;
    std::size_t i = config_.min_size;
    for (; i < normal; ++i) {
        hash = (hash << 1) + gear[p[i]];
        if ((hash & mask_small_) == 0) return i + 1;
    }
    for (; i < n; ++i) {
        hash = (hash << 1) + gear[p[i]];
        if ((hash & mask_large_) == 0) return i + 1;
    }
    return n;
}

} // namespace swarm::inline v0::storage::detail
