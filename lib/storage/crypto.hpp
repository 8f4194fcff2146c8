// The storage primitives over libsodium and zstd: chunk ids and keys, chunk sealing, key wrapping, compression.
#pragma once

#include <swarm/core/error.hpp>
#include <swarm/storage/config.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

namespace swarm::inline v0::storage::detail {

inline constexpr std::size_t tag_size = 16;
inline constexpr std::size_t wrapped_key_size = 32 + 48; // crypto_box_SEALBYTES

/// Calls sodium_init() once; false when libsodium cannot start.
bool crypto_ready() noexcept;
bool cipher_available(cipher_suite suite) noexcept;

/// The plaintext hash h is BLAKE2b keyed with the owner's secret; id and key are BLAKE2b keyed with h over
/// distinct labels, so knowing an id reveals nothing about the key.
struct chunk_keys {
    chunk_id id{};
    key32 key{};
};
chunk_keys derive_chunk_keys(const key32& convergence_secret, cipher_suite suite, std::span<const std::uint8_t> plaintext);

/// Seals `in` to out[0, in.size() + tag_size); `out` may equal `in.data()`. The nonce is fixed: each key seals
/// exactly one plaintext (the key is derived from it), so a nonce never repeats under a key.
void seal_chunk(cipher_suite suite, const key32& key, std::span<const std::uint8_t> in, std::uint8_t* out);
/// Opens `sealed` into out[0, sealed.size() - tag_size); `out` may equal `sealed.data()`. False when the tag
/// does not verify (`out` then holds garbage).
bool open_chunk(cipher_suite suite, const key32& key, std::span<const std::uint8_t> sealed, std::uint8_t* out);

/// XChaCha20-Poly1305 with a random nonce, which travels in front: for the manifest's key table.
std::vector<std::uint8_t> seal_random_nonce(const key32& key, std::span<const std::uint8_t> in);
std::optional<std::vector<std::uint8_t>> open_random_nonce(const key32& key, std::span<const std::uint8_t> sealed);

std::array<std::uint8_t, wrapped_key_size> wrap_key(const key32& data_key, const key32& reader_public);
std::optional<key32> unwrap_key(std::span<const std::uint8_t> wrapped, const reader_keys& reader);

key32 random_key();

/// zstd level 1 with a reused context.
class compressor {
public:
    compressor();
    ~compressor();
    compressor(const compressor&) = delete;
    compressor& operator=(const compressor&) = delete;

    /// Compresses into `out` (resized) when that saves at least an eighth; a sample of the input is tried
    /// first so that incompressible data costs little. False when it does not pay.
    bool compress(std::span<const std::uint8_t> in, std::vector<std::uint8_t>& out);
    /// Decompresses exactly `expected` bytes into out; false when the frame is not that.
    bool decompress(std::span<const std::uint8_t> in, std::span<std::uint8_t> out);

private:
    struct contexts;
    std::unique_ptr<contexts> contexts_;
};

} // namespace swarm::inline v0::storage::detail
