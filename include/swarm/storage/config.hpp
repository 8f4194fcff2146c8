// Storage configuration and key material: plain values, each config with validate().
#pragma once

#include <swarm/core/error.hpp>

#include <array>
#include <cstddef>
#include <cstdint>

namespace swarm::inline v0::storage {

/// 32 raw bytes: X25519 keys, the owner's convergence secret, chunk ids.
using key32 = std::array<std::uint8_t, 32>;
using chunk_id = key32;

/// A reader's X25519 key pair (crypto_box); the node identity type will carry these later.
struct reader_keys {
    key32 public_key{};
    key32 secret_key{};
};

/// A fresh random key pair.
reader_keys generate_reader_keys();

/// A fresh random convergence secret: chunks deduplicate only between puts that share it.
key32 generate_convergence_secret();

/// Reed-Solomon over GF(2^8) with a Cauchy matrix, so every k of the k+m shards rebuild the stripe.
struct erasure_config {
    unsigned data_shards = 10;  // k
    unsigned parity_shards = 4; // m

    unsigned total() const noexcept { return data_shards + parity_shards; }
    detailed_result<void> validate() const;
};

enum class chunking_mode {
    fixed,           // every chunk max_size bytes except the last
    content_defined, // FastCDC-style gear hash: an edit moves only the boundaries near it
};

struct chunking_config {
    chunking_mode mode = chunking_mode::content_defined;
    std::size_t min_size = 256 * 1024;
    std::size_t avg_size = 1024 * 1024; // a power of two
    std::size_t max_size = 4 * 1024 * 1024;

    detailed_result<void> validate() const;
};

enum class cipher_suite : std::uint8_t {
    automatic = 0, // resolved when the store opens: AES-256-GCM where the CPU has it and it measures faster
    xchacha20_poly1305 = 1,
    aes256_gcm = 2, // only where the CPU has AES-NI
};

/// The faster of the two suites on this CPU, timed once per process over a few hundred KiB (a millisecond or
/// so); XChaCha20-Poly1305 wherever AES-256-GCM is unavailable.
cipher_suite fastest_cipher();

enum class compression_mode : std::uint8_t {
    none,
    automatic, // zstd, kept only when it saves at least an eighth of the chunk
};

} // namespace swarm::inline v0::storage
