// Corrupting a file in place, as a bad disk would: one bit of one byte.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>

namespace swarm_test {

inline void flip_byte(const std::filesystem::path& file, std::uintmax_t at) {
    std::fstream s(file, std::ios::in | std::ios::out | std::ios::binary);
    s.seekg(static_cast<std::streamoff>(at));
    char ch;
    s.read(&ch, 1);
    ch ^= 0x01;
    s.seekp(static_cast<std::streamoff>(at));
    s.write(&ch, 1);
}

} // namespace swarm_test
