// Fast non-cryptographic hashing for routing: block hashes of prompts and rendezvous weights.
// Not for adversarial keys: a client who crafts collisions can only steer its own requests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace swarm::inline v0::dispatch::detail {

inline constexpr std::uint64_t k0 = 0x9E3779B97F4A7C15ULL; // 2^64 / golden ratio
inline constexpr std::uint64_t k1 = 0xBF58476D1CE4E5B9ULL;
inline constexpr std::uint64_t k2 = 0x94D049BB133111EBULL;
inline constexpr std::uint64_t k3 = 0xD6E8FEB86659FD93ULL;

constexpr std::uint64_t rotl(std::uint64_t x, int r) noexcept { return (x << r) | (x >> (64 - r)); }

/// A bijective finaliser: every input bit reaches every output bit.
constexpr std::uint64_t mix(std::uint64_t x) noexcept {
    x ^= x >> 30;
    x *= k1;
    x ^= x >> 27;
    x *= k2;
    x ^= x >> 31;
    return x;
}

inline std::uint64_t load64(const std::byte* p) noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v); // little-endian hosts agree; routers of one fleet share an architecture
    return v;
}

__extension__ using u128 = unsigned __int128;

/// Folds a 64x64 -> 128-bit product: one multiply mixes 16 input bytes.
inline std::uint64_t fold(std::uint64_t x, std::uint64_t y) noexcept {
    const u128 p = static_cast<u128>(x) * y;
    return static_cast<std::uint64_t>(p) ^ static_cast<std::uint64_t>(p >> 64);
}

/// Four independent chains over 64-byte stripes, each folding 16 bytes into its state per step (the CPU
/// overlaps the chains), then 16-byte steps, then the tail, the length and a final mix. One multiply per
/// 16 bytes, so 32 KB hashes in about a microsecond.
inline std::uint64_t hash_bytes(const std::byte* p, std::size_t n, std::uint64_t seed) noexcept {
    std::uint64_t a = seed ^ k0, b = rotl(seed, 29) ^ k3, c = rotl(seed, 41) ^ k1, d = ~seed ^ k2;
    const std::byte* const end = p + n;
    while (end - p >= 64) {
        // The xor back into the state keeps it when a product happens to be zero.
        a ^= fold(load64(p) ^ a, load64(p + 8) ^ k1);
        b ^= fold(load64(p + 16) ^ b, load64(p + 24) ^ k2);
        c ^= fold(load64(p + 32) ^ c, load64(p + 40) ^ k3);
        d ^= fold(load64(p + 48) ^ d, load64(p + 56) ^ k0);
        p += 64;
    }
    std::uint64_t h = a ^ rotl(b, 17) ^ rotl(c, 31) ^ rotl(d, 47);
    while (end - p >= 16) {
        h ^= fold(load64(p) ^ h, load64(p + 8) ^ k1);
        p += 16;
    }
    if (end - p >= 8) {
        h ^= fold(load64(p) ^ h, k2);
        p += 8;
    }
    std::uint64_t tail = 0;
    for (int shift = 0; p < end; ++p, shift += 8) tail |= std::to_integer<std::uint64_t>(*p) << shift;
    return mix(h ^ fold(tail ^ k3, static_cast<std::uint64_t>(n) ^ k0));
}

/// Chains a block's own hash onto the hash of everything before it: one multiply on the dependency chain,
/// so the blocks themselves can be hashed independently (the CPU overlaps them) and only this step is serial.
inline std::uint64_t chain_step(std::uint64_t chain, std::uint64_t block_hash) noexcept {
    return block_hash ^ fold(chain ^ k1, rotl(block_hash, 23) ^ k2);
}

inline std::uint64_t hash_string(std::string_view s, std::uint64_t seed = 0) noexcept {
    return hash_bytes(reinterpret_cast<const std::byte*>(s.data()), s.size(), seed);
}

/// Rendezvous weight of `backend_key` for `key`, in [0, 1). Computed for every candidate of every request, so it
/// is a reduced mix(): both keys are already hashes, and two multiply rounds (the xorshift between them folds
/// the high half into the low one) carry every input bit into the top 53 bits that become the weight.
inline double rendezvous(std::uint64_t key, std::uint64_t backend_key) noexcept {
    std::uint64_t x = (key ^ backend_key) * k1;
    x ^= x >> 32;
    x *= k2;
    // Through int64 (53 bits fit): one signed conversion instruction, where an unsigned one is a branchy sequence.
    return static_cast<double>(static_cast<std::int64_t>(x >> 11)) * 0x1.0p-53;
}

} // namespace swarm::inline v0::dispatch::detail
