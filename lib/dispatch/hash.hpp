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

/// Four independent multiply-rotate lanes over 32-byte stripes (the CPU overlaps them), then the tail in
/// 8-byte words and bytes, then the length and a final mix.
inline std::uint64_t hash_bytes(const std::byte* p, std::size_t n, std::uint64_t seed) noexcept {
    std::uint64_t a = seed + k0, b = seed ^ k1, c = seed - k2, d = rotl(seed, 17) ^ k3;
    const std::byte* const end = p + n;
    while (end - p >= 32) {
        a = rotl(a + load64(p) * k1, 31) * k0;
        b = rotl(b + load64(p + 8) * k1, 31) * k0;
        c = rotl(c + load64(p + 16) * k1, 31) * k0;
        d = rotl(d + load64(p + 24) * k1, 31) * k0;
        p += 32;
    }
    std::uint64_t h = rotl(a, 1) + rotl(b, 7) + rotl(c, 12) + rotl(d, 18);
    while (end - p >= 8) {
        h = rotl(h ^ (load64(p) * k2), 27) * k0 + k3;
        p += 8;
    }
    while (p < end) {
        h = rotl(h ^ (std::to_integer<std::uint64_t>(*p) * k0), 11) * k1;
        ++p;
    }
    return mix(h ^ (static_cast<std::uint64_t>(n) * k3));
}

inline std::uint64_t hash_string(std::string_view s, std::uint64_t seed = 0) noexcept {
    return hash_bytes(reinterpret_cast<const std::byte*>(s.data()), s.size(), seed);
}

/// Rendezvous weight of `backend_key` for `key`, in [0, 1).
inline double rendezvous(std::uint64_t key, std::uint64_t backend_key) noexcept {
    return static_cast<double>(mix(key ^ backend_key) >> 11) * 0x1.0p-53;
}

} // namespace swarm::inline v0::dispatch::detail
