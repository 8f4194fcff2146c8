// A small, fast, seedable generator (xoshiro256**), so simulated runs replay bit for bit from one seed.
#pragma once

#include <cstdint>
#include <limits>

namespace swarm::inline v0 {

/// One step of splitmix64: advances `state` and returns the next word. constexpr, so that fixed tables that
/// are part of a format (a chunker's gear table) can be computed at compile time.
constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
    state += 0x9e3779b97f4a7c15ULL;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

class rng {
public:
    using result_type = std::uint64_t;

    explicit rng(std::uint64_t seed = 0) noexcept { reseed(seed); }

    void reseed(std::uint64_t seed) noexcept {
        // splitmix64 spreads any seed, zero included, over the full state.
        for (auto& word : state_) word = splitmix64(seed);
    }

    static constexpr result_type min() noexcept { return 0; }
    static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }

    result_type operator()() noexcept {
        const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const std::uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

    /// Uniform in [0, bound), bound > 0, without modulo bias (Lemire's method).
    std::uint64_t below(std::uint64_t bound) noexcept {
        auto product = static_cast<uint128>((*this)()) * bound;
        auto low = static_cast<std::uint64_t>(product);
        if (low < bound) {
            const std::uint64_t threshold = (0 - bound) % bound;
            while (low < threshold) {
                product = static_cast<uint128>((*this)()) * bound;
                low = static_cast<std::uint64_t>(product);
            }
        }
        return static_cast<std::uint64_t>(product >> 64);
    }

    /// Uniform in [0, 1).
    double unit() noexcept { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }

    /// True with probability p.
    bool chance(double p) noexcept { return p > 0 && (p >= 1 || unit() < p); }

private:
    // GCC and clang both have it; __extension__ keeps -Wpedantic quiet for code that includes this header.
    __extension__ using uint128 = unsigned __int128;
    static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
    std::uint64_t state_[4]{};
};

} // namespace swarm::inline v0
