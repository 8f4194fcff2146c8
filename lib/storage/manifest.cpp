#include "storage/manifest.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace swarm::inline v0::storage::detail {

namespace {

constexpr std::array<std::uint8_t, 4> magic{'S', 'W', 'M', 'F'};
constexpr std::uint8_t version = 1;
constexpr std::uint8_t flag_inline = 1;
constexpr std::uint8_t flag_compressed = 1;
constexpr std::uint64_t max_chunk = 64 * 1024 * 1024; // chunking_config's bound

void put_varint(std::vector<std::uint8_t>& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<std::uint8_t>(v | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<std::uint8_t>(v));
}

// resize + memcpy rather than insert: GCC 12 at -O3 warns falsely (stringop-overflow) on the insert.
void put_bytes(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> b) {
    const std::size_t at = out.size();
    out.resize(at + b.size());
    if (!b.empty()) std::memcpy(out.data() + at, b.data(), b.size());
}

class reader {
public:
    explicit reader(std::span<const std::uint8_t> b) : bytes_(b) {}

    bool varint(std::uint64_t& v) {
        v = 0;
        for (unsigned shift = 0; shift < 64; shift += 7) {
            if (pos_ >= bytes_.size()) return false;
            const std::uint8_t b = bytes_[pos_++];
            v |= std::uint64_t{b & 0x7fU} << shift;
            if ((b & 0x80) == 0) return shift < 63 || b <= 1;
        }
        return false;
    }
    bool byte(std::uint8_t& v) {
        if (pos_ >= bytes_.size()) return false;
        v = bytes_[pos_++];
        return true;
    }
    bool fixed(std::span<std::uint8_t> out) {
        if (bytes_.size() - pos_ < out.size()) return false;
        std::memcpy(out.data(), bytes_.data() + pos_, out.size());
        pos_ += out.size();
        return true;
    }
    bool blob(std::vector<std::uint8_t>& out) {
        std::uint64_t n = 0;
        if (!varint(n) || n > bytes_.size() - pos_) return false;
        out.assign(bytes_.begin() + static_cast<std::ptrdiff_t>(pos_), bytes_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
        pos_ += n;
        return true;
    }
    std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

private:
    std::span<const std::uint8_t> bytes_;
    std::size_t pos_ = 0;
};

error bad(std::string what) { return {errc::malformed, "manifest: " + std::move(what)}; }

} // namespace

std::vector<std::uint8_t> manifest::encode() const {
    std::vector<std::uint8_t> out;
    out.reserve(64 + readers.size() * 112 + chunks.size() * 40 + sealed_keys.size() + inline_data.size());
    put_bytes(out, magic);
    out.push_back(version);
    out.push_back(static_cast<std::uint8_t>(cipher));
    out.push_back(is_inline ? flag_inline : 0);
    put_varint(out, data_shards);
    put_varint(out, parity_shards);
    put_varint(out, size);
    put_varint(out, readers.size());
    for (const auto& r : readers) {
        put_bytes(out, r.public_key);
        put_bytes(out, r.wrapped);
    }
    put_varint(out, chunks.size());
    for (const auto& c : chunks) {
        put_bytes(out, c.id);
        put_varint(out, c.plain_size);
        put_varint(out, c.stored_size);
        out.push_back(c.compressed ? flag_compressed : 0);
    }
    put_varint(out, sealed_keys.size());
    put_bytes(out, sealed_keys);
    if (is_inline) {
        put_varint(out, inline_data.size());
        put_bytes(out, inline_data);
    }
    return out;
}

detailed_result<manifest> manifest::decode(std::span<const std::uint8_t> bytes) {
    reader in(bytes);
    std::array<std::uint8_t, 4> m{};
    std::uint8_t v = 0, cipher = 0, flags = 0;
    if (!in.fixed(m) || m != magic) return bad("bad magic");
    if (!in.byte(v)) return bad("truncated header");
    if (v != version) return error{errc::unsupported_version, fmt::format("manifest version {} (this build reads {})", v, version)};
    if (!in.byte(cipher) || !in.byte(flags)) return bad("truncated header");
    manifest out;
    if (cipher != static_cast<std::uint8_t>(cipher_suite::xchacha20_poly1305) &&
        cipher != static_cast<std::uint8_t>(cipher_suite::aes256_gcm))
        return bad(fmt::format("unknown cipher {}", cipher));
    out.cipher = static_cast<cipher_suite>(cipher);
    out.is_inline = (flags & flag_inline) != 0;
    std::uint64_t k = 0, parity = 0, readers = 0, chunks = 0;
    if (!in.varint(k) || !in.varint(parity) || !in.varint(out.size)) return bad("truncated header");
    if (k < 1 || k + parity > 255) return bad(fmt::format("erasure {}+{} out of range", k, parity));
    out.data_shards = static_cast<unsigned>(k);
    out.parity_shards = static_cast<unsigned>(parity);
    if (!in.varint(readers) || readers > in.remaining() / 112) return bad("bad reader count");
    out.readers.resize(readers);
    for (auto& r : out.readers)
        if (!in.fixed(r.public_key) || !in.fixed(r.wrapped)) return bad("truncated reader");
    if (!in.varint(chunks) || chunks > in.remaining() / 35) return bad("bad chunk count");
    out.chunks.resize(chunks);
    std::uint64_t total = 0;
    for (auto& c : out.chunks) {
        std::uint8_t f = 0;
        if (!in.fixed(c.id) || !in.varint(c.plain_size) || !in.varint(c.stored_size) || !in.byte(f))
            return bad("truncated chunk");
        c.compressed = (f & flag_compressed) != 0;
        // Compression is kept only when it shrinks a chunk, and chunks are at most 64 MiB: a manifest that
        // claims otherwise would make a reader allocate without bound.
        if (c.plain_size > max_chunk || c.stored_size < tag_size || c.stored_size > c.plain_size + tag_size)
            return bad("bad chunk size");
        if (!c.compressed && c.stored_size != c.plain_size + tag_size) return bad("chunk sizes disagree");
        total += c.plain_size;
    }
    if (total != out.size) return bad("chunk sizes do not add up to the object size");
    if (!in.blob(out.sealed_keys) || out.sealed_keys.size() != 24 + chunks * 32 + tag_size) return bad("bad key table");
    if (out.is_inline) {
        if (chunks != 1 || !in.blob(out.inline_data) || out.inline_data.size() != out.chunks[0].stored_size)
            return bad("bad inline data");
    }
    if (in.remaining() != 0) return bad("trailing bytes");
    return out;
}

} // namespace swarm::inline v0::storage::detail
