// The manifest: how to find, rebuild and open an object. Compact binary with varints; chunk ids and sizes in
// the clear (so stores can verify, repair and collect garbage without a reader's key), chunk keys sealed
// under the object's data key, and the data key wrapped per reader.
#pragma once

#include "storage/crypto.hpp"

#include <swarm/core/error.hpp>
#include <swarm/storage/config.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace swarm::inline v0::storage::detail {

struct manifest_chunk {
    chunk_id id{};
    std::uint64_t plain_size = 0;
    std::uint64_t stored_size = 0; // sealed bytes: compressed (or not) plus the tag
    bool compressed = false;
};

struct manifest_reader {
    key32 public_key{};
    std::array<std::uint8_t, wrapped_key_size> wrapped{};
};

struct manifest {
    cipher_suite cipher = cipher_suite::xchacha20_poly1305;
    unsigned data_shards = 0;
    unsigned parity_shards = 0;
    std::uint64_t size = 0;
    std::vector<manifest_reader> readers;
    std::vector<manifest_chunk> chunks;
    std::vector<std::uint8_t> sealed_keys; // nonce, the chunk keys in order, tag
    bool is_inline = false;
    std::vector<std::uint8_t> inline_data; // the single chunk, sealed, when is_inline

    std::vector<std::uint8_t> encode() const;
    static detailed_result<manifest> decode(std::span<const std::uint8_t> bytes);
};

} // namespace swarm::inline v0::storage::detail
