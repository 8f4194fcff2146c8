// Prompt-like text for routing tests: lowercase letters from a xorshift stream, so equal seeds give equal text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace swarm_test {

inline std::string random_letters(std::uint64_t seed, std::size_t bytes) {
    std::string s(bytes, ' ');
    std::uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (auto& c : s) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c = static_cast<char>('a' + x % 26);
    }
    return s;
}

} // namespace swarm_test
