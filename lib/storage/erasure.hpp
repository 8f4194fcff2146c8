// Reed-Solomon with ISA-L: a Cauchy generator, so every k-row submatrix inverts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace swarm::inline v0::storage::detail {

class erasure_code {
public:
    /// 1 <= k, 0 <= m, k + m <= 255 (checked by erasure_config::validate()).
    erasure_code(unsigned k, unsigned m);

    unsigned k() const noexcept { return k_; }
    unsigned m() const noexcept { return m_; }

    /// data: k pointers, parity: m pointers, each `length` bytes.
    void encode(std::size_t length, const std::uint8_t* const* data, std::uint8_t* const* parity) const;

    /// Rebuilds the shards `wanted` from the k shards `present` (indices, in the order of `inputs`).
    /// False when `present` does not name k distinct valid indices.
    bool reconstruct(std::size_t length, std::span<const unsigned> present, const std::uint8_t* const* inputs,
                     std::span<const unsigned> wanted, std::uint8_t* const* outputs);

private:
    unsigned k_;
    unsigned m_;
    std::vector<std::uint8_t> matrix_;        // (k+m) x k, identity on top
    std::vector<std::uint8_t> encode_tables_;
    // The last decode plan: a get with the same shards lost on every stripe reuses it.
    std::vector<unsigned> cached_present_;
    std::vector<unsigned> cached_wanted_;
    std::vector<std::uint8_t> cached_tables_;
};

} // namespace swarm::inline v0::storage::detail
