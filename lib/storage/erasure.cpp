#include "storage/erasure.hpp"

#include <isa-l/erasure_code.h>

#include <algorithm>

namespace swarm::inline v0::storage::detail {

namespace {
// ISA-L takes non-const pointer arrays even for inputs it only reads.
unsigned char** mutable_ptrs(const std::uint8_t* const* p) {
    return const_cast<unsigned char**>(reinterpret_cast<const unsigned char* const*>(p));
}
} // namespace

erasure_code::erasure_code(unsigned k, unsigned m)
    : k_(k), m_(m), matrix_(static_cast<std::size_t>(k + m) * k), encode_tables_(static_cast<std::size_t>(k) * m * 32) {
    gf_gen_cauchy1_matrix(matrix_.data(), static_cast<int>(k + m), static_cast<int>(k));
    if (m > 0) ec_init_tables(static_cast<int>(k), static_cast<int>(m), matrix_.data() + k * k, encode_tables_.data());
}

void erasure_code::encode(std::size_t length, const std::uint8_t* const* data, std::uint8_t* const* parity) const {
    if (m_ == 0 || length == 0) return;
    ec_encode_data(static_cast<int>(length), static_cast<int>(k_), static_cast<int>(m_),
                   const_cast<unsigned char*>(encode_tables_.data()), mutable_ptrs(data), const_cast<unsigned char**>(parity));
}

bool erasure_code::reconstruct(std::size_t length, std::span<const unsigned> present, const std::uint8_t* const* inputs,
                               std::span<const unsigned> wanted, std::uint8_t* const* outputs) {
    if (present.size() != k_) return false;
    if (wanted.empty() || length == 0) return true;
    const bool cached = std::ranges::equal(present, cached_present_) && std::ranges::equal(wanted, cached_wanted_);
    if (!cached) {
        std::vector<std::uint8_t> survivors(static_cast<std::size_t>(k_) * k_);
        for (std::size_t r = 0; r < k_; ++r) {
            if (present[r] >= k_ + m_) return false;
            std::copy_n(matrix_.data() + present[r] * k_, k_, survivors.data() + r * k_);
        }
        std::vector<std::uint8_t> inverse(survivors.size());
        if (gf_invert_matrix(survivors.data(), inverse.data(), static_cast<int>(k_)) != 0) return false;
        // Row i of the generator times the inverse maps the survivors to shard i, data or parity alike.
        std::vector<std::uint8_t> rows(wanted.size() * k_);
        for (std::size_t w = 0; w < wanted.size(); ++w) {
            if (wanted[w] >= k_ + m_) return false;
            const std::uint8_t* generator_row = matrix_.data() + wanted[w] * k_;
            for (std::size_t c = 0; c < k_; ++c) {
                std::uint8_t acc = 0;
                for (std::size_t j = 0; j < k_; ++j) acc ^= gf_mul(generator_row[j], inverse[j * k_ + c]);
                rows[w * k_ + c] = acc;
            }
        }
        cached_tables_.assign(static_cast<std::size_t>(k_) * wanted.size() * 32, 0);
        ec_init_tables(static_cast<int>(k_), static_cast<int>(wanted.size()), rows.data(), cached_tables_.data());
        cached_present_.assign(present.begin(), present.end());
        cached_wanted_.assign(wanted.begin(), wanted.end());
    }
    ec_encode_data(static_cast<int>(length), static_cast<int>(k_), static_cast<int>(wanted.size()),
                   cached_tables_.data(), mutable_ptrs(inputs), const_cast<unsigned char**>(outputs));
    return true;
}

} // namespace swarm::inline v0::storage::detail
