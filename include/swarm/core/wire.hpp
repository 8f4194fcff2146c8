// The wire codec: a compact, versioned binary encoding with bounds-checked reads.
//
// Encoding
// --------
//   u8 / u16 / u32 / u64   fixed width, big-endian
//   varint                 unsigned LEB128, 1 to 10 bytes; only the shortest form is accepted, and a
//                          tenth byte may only carry the top bit of a u64
//   svarint                zigzag ((n << 1) ^ (n >> 63)) then varint, so small magnitudes stay short
//   bool                   one byte, 0 or 1; anything else is malformed
//   bytes / string         varint length, then that many bytes (strings may be checked as UTF-8)
//   raw                    bytes with no length; the reader must know how many
//   section                varint length, then a nested encoding of exactly that length
//
// Messages
// --------
//   message = version:u8 type:varint body:section
//
// The version byte names the encoding and changes only for incompatible changes; a reader rejects any
// version it does not speak with errc::unsupported_version. Compatible evolution (a "minor version") never
// touches it: a newer writer appends fields at the end of a body, or at the end of any nested section, and an
// older reader that has read every field it knows closes the section with trailing::skip, which skips them.
// That is the only place where unread bytes are accepted; everywhere else trailing::reject and expect_end()
// turn leftover bytes into errc::malformed.
//
// Errors
// ------
// Both the writer and the reader use a sticky error: the first failure is recorded (with the reader's offset)
// and every later call is a no-op that returns zero or an empty view, so a decoder checks once at the end.
// A reader never reads past its input, and never trusts a length before checking that many bytes remain.
#pragma once

#include <swarm/core/error.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace swarm::inline v0::wire {

/// The encoding version written in every message envelope.
inline constexpr std::uint8_t version = 1;
/// The longest varint: ceil(64 / 7).
inline constexpr std::size_t max_varint_size = 10;

/// Bytes a value takes as a varint.
constexpr std::size_t varint_size(std::uint64_t v) noexcept {
    return (static_cast<std::size_t>(std::bit_width(v | 1)) + 6) / 7;
}

constexpr std::uint64_t zigzag(std::int64_t v) noexcept {
    return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
constexpr std::int64_t unzigzag(std::uint64_t v) noexcept {
    return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

namespace detail {
bool valid_utf8_slow(const unsigned char* p, const unsigned char* end) noexcept;
}

/// True when the bytes are well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF).
inline bool valid_utf8(std::string_view text) noexcept {
    // Names, addresses and labels are nearly always ASCII: OR every byte together, eight at a time, and look
    // at the top bits once. Only text with a non-ASCII byte takes the full check.
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::uint64_t seen = 0;
    if (n >= 8) {
        std::uint64_t word;
        for (std::size_t i = 0; i + 8 <= n; i += 8) {
            std::memcpy(&word, p + i, 8);
            seen |= word;
        }
        std::memcpy(&word, p + n - 8, 8); // the tail, overlapping what was already seen
        seen |= word;
    } else {
        for (std::size_t i = 0; i < n; ++i) seen |= p[i];
    }
    if ((seen & 0x8080808080808080ULL) == 0) return true;
    return detail::valid_utf8_slow(p, p + n);
}

/// What a reader does with bytes left unread when it closes a section.
enum class trailing {
    skip,   // fields appended by a newer writer: the sanctioned extension point
    reject, // errc::malformed
};

/// Appends an encoding to a caller-owned vector, or writes it into a fixed span.
///
/// Over a vector, the vector may hold spare zeroed bytes while the writer works (it grows in large steps so
/// that the hot path is one comparison); finish() or the destructor trims it to exactly what was written.
/// Over a span, running out of room records errc::too_large and stops writing.
class writer {
public:
    /// Appends after the vector's current contents.
    explicit writer(std::vector<std::byte>& out) noexcept
        : vector_(&out), data_(out.data()), size_(out.size()), capacity_(out.size()) {}
    explicit writer(std::span<std::byte> out) noexcept : data_(out.data()), capacity_(out.size()) {}

    writer(const writer&) = delete;
    writer& operator=(const writer&) = delete;
    ~writer() { finish(); }

    void u8(std::uint8_t v) noexcept {
        if (auto* p = grow(1)) *p = std::byte{v};
    }
    void u16(std::uint16_t v) noexcept { put_be(v); }
    void u32(std::uint32_t v) noexcept { put_be(v); }
    void u64(std::uint64_t v) noexcept { put_be(v); }
    void boolean(bool v) noexcept { u8(v ? 1 : 0); }

    void varint(std::uint64_t v) noexcept {
        if (auto* p = grow(varint_size(v))) put_varint(p, v);
    }
    void svarint(std::int64_t v) noexcept { varint(zigzag(v)); }

    /// Length-prefixed.
    void bytes(std::span<const std::byte> b) noexcept {
        auto* p = grow(varint_size(b.size()) + b.size());
        if (!p) return;
        p = put_varint(p, b.size());
        if (!b.empty()) std::memcpy(p, b.data(), b.size());
    }
    /// Length-prefixed.
    void string(std::string_view s) noexcept { bytes(std::as_bytes(std::span{s.data(), s.size()})); }
    /// No length: the reader must know the size.
    void raw(std::span<const std::byte> b) noexcept {
        if (b.empty()) return;
        if (auto* p = grow(b.size())) std::memcpy(p, b.data(), b.size());
    }

    /// Where a section's length goes, until end_section() knows it.
    struct section {
        std::size_t at;
    };
    /// Opens a nested section; its varint length is patched in by end_section(). Sections nest, and close in
    /// the reverse order of opening.
    section begin_section() noexcept {
        const section s{size_};
        u8(0); // a one-byte placeholder: most sections are short, longer ones move their body once
        return s;
    }
    void end_section(section s) noexcept {
        if (error_) return;
        const std::size_t body = size_ - s.at - 1;
        const std::size_t extra = varint_size(body) - 1;
        if (extra != 0) {
            if (!grow(extra)) return;
            std::memmove(data_ + s.at + 1 + extra, data_ + s.at + 1, body);
        }
        put_varint(data_ + s.at, body);
    }

    /// Opens a message: version byte, type, then the body section that end_message() closes.
    section begin_message(std::uint64_t type) noexcept {
        u8(version);
        varint(type);
        return begin_section();
    }
    void end_message(section s) noexcept { end_section(s); }

    /// Bytes written (over a vector: including what it held before).
    std::size_t size() const noexcept { return size_; }
    /// What was written so far (over a vector, valid until the next write).
    std::span<const std::byte> written() const noexcept { return {data_, size_}; }
    bool ok() const noexcept { return !error_; }
    boost::system::error_code error() const noexcept { return error_; }

    /// Over a vector: trims it to what was written. Returns the size, or the error (over a span, too_large).
    result<std::size_t> finish() noexcept {
        if (vector_ && vector_->size() != size_) {
            vector_->resize(size_); // shrinking never allocates
            capacity_ = size_;      // so that a later write grows it again
        }
        if (error_) return error_;
        return size_;
    }

private:
    /// Writes v as a varint at p (varint_size(v) bytes) and returns the byte after it.
    static std::byte* put_varint(std::byte* p, std::uint64_t v) noexcept {
        while (v >= 0x80) {
            *p++ = std::byte{static_cast<std::uint8_t>(v | 0x80)};
            v >>= 7;
        }
        *p++ = std::byte{static_cast<std::uint8_t>(v)};
        return p;
    }

    template <class T>
    void put_be(T v) noexcept {
        auto* p = grow(sizeof(T));
        if (!p) return;
        if constexpr (std::endian::native == std::endian::little) {
            if constexpr (sizeof(T) == 2) v = __builtin_bswap16(v);
            else if constexpr (sizeof(T) == 4) v = __builtin_bswap32(v);
            else v = __builtin_bswap64(v);
        }
        std::memcpy(p, &v, sizeof(T));
    }

    std::byte* grow(std::size_t n) noexcept {
        if (capacity_ - size_ < n) [[unlikely]]
            return grow_slow(n);
        auto* p = data_ + size_;
        size_ += n;
        return p;
    }
    std::byte* grow_slow(std::size_t n) noexcept;

    std::vector<std::byte>* vector_ = nullptr;
    std::byte* data_;
    std::size_t size_ = 0;
    std::size_t capacity_;
    boost::system::error_code error_;
};

/// Reads an encoding from a span it does not own; views it returns point into that span.
class reader {
public:
    explicit reader(std::span<const std::byte> in) noexcept
        : begin_(in.data()), pos_(in.data()), end_(in.data() + in.size()) {}

    std::uint8_t u8() noexcept {
        if (end_ == pos_) [[unlikely]] return fail(errc::truncated), 0;
        return std::to_integer<std::uint8_t>(*pos_++);
    }
    std::uint16_t u16() noexcept { return get_be<std::uint16_t>(); }
    std::uint32_t u32() noexcept { return get_be<std::uint32_t>(); }
    std::uint64_t u64() noexcept { return get_be<std::uint64_t>(); }
    bool boolean() noexcept {
        const auto v = u8();
        if (v > 1) [[unlikely]] return fail_at(pos_ - 1, errc::malformed), false;
        return v == 1;
    }

    std::uint64_t varint() noexcept {
        // One byte is the common case: small types, counts and lengths.
        if (pos_ != end_ && std::to_integer<std::uint8_t>(*pos_) < 0x80) [[likely]]
            return std::to_integer<std::uint8_t>(*pos_++);
        return varint_slow();
    }
    std::int64_t svarint() noexcept { return unzigzag(varint()); }

    /// A varint that must not exceed max (errc::too_large).
    std::uint64_t varint_max(std::uint64_t max) noexcept {
        const auto* at = pos_;
        const auto v = varint();
        if (v > max) [[unlikely]] return fail_at(at, errc::too_large), 0;
        return v;
    }

    /// An element count: errc::too_large when over max, or when even min_element_size bytes per element
    /// could not fit in what remains, so a caller may reserve() the count it gets.
    std::size_t count(std::size_t max, std::size_t min_element_size = 1) noexcept {
        const auto* at = pos_;
        const auto n = varint();
        if (n > max || (min_element_size != 0 && n > remaining() / min_element_size)) [[unlikely]]
            return fail_at(at, errc::too_large), 0;
        return static_cast<std::size_t>(n);
    }

    /// Length-prefixed bytes, as a view: errc::too_large when the length exceeds max or what remains.
    std::span<const std::byte> bytes(std::size_t max) noexcept {
        const auto* at = pos_;
        const auto n = varint();
        if (n > max || n > remaining()) [[unlikely]] return fail_at(at, errc::too_large), std::span<const std::byte>{};
        const auto* p = pos_;
        pos_ += n;
        return {p, static_cast<std::size_t>(n)};
    }
    /// Length-prefixed string, as a view, not checked as UTF-8.
    std::string_view string(std::size_t max) noexcept {
        const auto b = bytes(max);
        return {reinterpret_cast<const char*>(b.data()), b.size()};
    }
    /// Length-prefixed string, as a view; errc::malformed unless it is valid UTF-8.
    std::string_view utf8(std::size_t max) noexcept {
        const auto* at = pos_;
        const auto s = string(max);
        if (!valid_utf8(s)) [[unlikely]] return fail_at(at, errc::malformed), std::string_view{};
        return s;
    }
    /// Exactly n bytes, as a view: errc::truncated when fewer remain.
    std::span<const std::byte> raw(std::size_t n) noexcept {
        if (remaining() < n) [[unlikely]] return fail(errc::truncated), std::span<const std::byte>{};
        const auto* p = pos_;
        pos_ += n;
        return {p, n};
    }
    /// Exactly N bytes into an array-like destination.
    template <std::size_t N>
        requires(N != std::dynamic_extent)
    void raw_into(std::span<std::byte, N> out) noexcept {
        const auto b = raw(N);
        if (!b.empty()) std::memcpy(out.data(), b.data(), N);
    }

    /// An open nested section: reads stop at its end until end_section().
    struct section {
        const std::byte* outer_end;
    };
    /// Enters a length-prefixed section (errc::too_large when its length exceeds max or what remains).
    section begin_section(std::size_t max) noexcept {
        const section s{end_};
        const auto body = bytes(max);
        if (error_) return s;
        pos_ = body.data();
        end_ = body.data() + body.size();
        return s;
    }
    /// Leaves a section, skipping or rejecting what is left unread in it.
    void end_section(section s, trailing t) noexcept {
        if (error_) return; // after a failure nothing stays readable
        if (pos_ != end_) {
            if (t == trailing::reject) return fail(errc::malformed);
            pos_ = end_;
        }
        end_ = s.outer_end;
    }

    /// A message's header; the reader is then inside its body, which end_message() closes.
    struct message {
        std::uint64_t type = 0;
        section body{};
    };
    /// Reads the envelope (errc::unsupported_version for a version other than wire::version) and enters the
    /// body, which may be at most max_body bytes long.
    message begin_message(std::size_t max_body) noexcept {
        const auto v = u8();
        if (error_) return {};
        if (v != version) return fail_at(pos_ - 1, errc::unsupported_version), message{};
        const auto type = varint();
        return {type, begin_section(max_body)};
    }
    void end_message(message m, trailing t) noexcept { end_section(m.body, t); }

    /// errc::malformed when bytes remain (in the current section, or in the input at top level).
    void expect_end() noexcept {
        if (pos_ != end_ && !error_) fail(errc::malformed);
    }
    /// Records a failure found by the caller (an enum out of range, say) at the current offset.
    void fail(errc e) noexcept { fail_at(pos_, e); }

    std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - pos_); }
    std::size_t offset() const noexcept { return static_cast<std::size_t>(pos_ - begin_); }
    bool ok() const noexcept { return !error_; }
    boost::system::error_code error() const noexcept { return error_; }
    /// The input offset of the first failure (meaningful when !ok()).
    std::size_t error_offset() const noexcept { return error_offset_; }
    /// expect_end(), then the first error if any.
    result<void> finish() noexcept {
        expect_end();
        if (error_) return error_;
        return {};
    }

private:
    template <class T>
    T get_be() noexcept {
        if (remaining() < sizeof(T)) [[unlikely]] return fail(errc::truncated), T{};
        T v;
        std::memcpy(&v, pos_, sizeof(T));
        pos_ += sizeof(T);
        if constexpr (std::endian::native == std::endian::little) {
            if constexpr (sizeof(T) == 2) v = __builtin_bswap16(v);
            else if constexpr (sizeof(T) == 4) v = __builtin_bswap32(v);
            else v = __builtin_bswap64(v);
        }
        return v;
    }

    std::uint64_t varint_slow() noexcept;

    void fail_at(const std::byte* at, errc e) noexcept {
        if (!error_) {
            error_ = e;
            error_offset_ = static_cast<std::size_t>(at - begin_);
        }
        // Nothing stays readable, so later reads fail fast and return zeros.
        pos_ = end_;
    }

    const std::byte* begin_;
    const std::byte* pos_;
    const std::byte* end_;
    boost::system::error_code error_;
    std::size_t error_offset_ = 0;
};

} // namespace swarm::inline v0::wire
