#include <swarm/core/wire.hpp>

#include <algorithm>

namespace swarm::inline v0::wire {

std::byte* writer::grow_slow(std::size_t n) noexcept {
    if (error_) return nullptr;
    if (!vector_) {
        error_ = errc::too_large;
        capacity_ = size_; // sticky: a later, smaller write must not land after a gap
        return nullptr;
    }
    // Doubling keeps appends amortised O(1); the floor avoids a string of tiny regrowths on a fresh vector.
    const std::size_t wanted = std::max({size_ + n, capacity_ * 2, std::size_t{256}});
    vector_->resize(wanted);
    data_ = vector_->data();
    capacity_ = wanted;
    auto* p = data_ + size_;
    size_ += n;
    return p;
}

std::uint64_t reader::varint_slow() noexcept {
    const auto* at = pos_;
    std::uint64_t v = 0;
    if (end_ - pos_ >= static_cast<std::ptrdiff_t>(max_varint_size)) {
        // Room for the longest form: no bounds checks inside the loop.
        for (unsigned shift = 0; shift < 63; shift += 7) {
            const auto b = std::to_integer<std::uint8_t>(*pos_++);
            v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
            if (b < 0x80) {
                if (b == 0 && shift != 0) break; // non-canonical
                return v;
            }
        }
        // Non-canonical, or the tenth byte: let the careful loop below decide (and report) it.
        pos_ = at;
        v = 0;
    }
    for (unsigned shift = 0;; shift += 7) {
        if (pos_ == end_) {
            fail_at(at, errc::truncated);
            return 0;
        }
        const auto b = std::to_integer<std::uint8_t>(*pos_++);
        // The tenth byte holds bit 63 only; more would overflow (and a continuation bit would make it longer).
        if (shift == 63 && b > 1) {
            fail_at(at, errc::malformed);
            return 0;
        }
        v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
        if (b < 0x80) {
            // A zero last byte means a shorter encoding existed: two spellings of one value would break
            // byte-exact round trips and signatures over re-encoded data.
            if (b == 0 && shift != 0) {
                fail_at(at, errc::malformed);
                return 0;
            }
            return v;
        }
    }
}

namespace detail {

bool valid_utf8_slow(const unsigned char* p, const unsigned char* const end) noexcept {
    while (p != end) {
        const unsigned c = *p;
        if (c < 0x80) {
            ++p;
            continue;
        }
        std::size_t n;
        unsigned lo = 0x80, hi = 0xbf; // the allowed range of the second byte
        if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            if (c == 0xe0) lo = 0xa0;      // overlong
            else if (c == 0xed) hi = 0x9f; // UTF-16 surrogates
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            if (c == 0xf0) lo = 0x90;      // overlong
            else if (c == 0xf4) hi = 0x8f; // above U+10FFFF
        } else {
            return false; // a continuation byte first, an overlong two-byte lead, or 0xf5..0xff
        }
        if (static_cast<std::size_t>(end - p) < n) return false;
        if (p[1] < lo || p[1] > hi) return false;
        for (std::size_t i = 2; i < n; ++i)
            if ((p[i] & 0xc0) != 0x80) return false;
        p += n;
    }
    return true;
}

} // namespace detail

} // namespace swarm::inline v0::wire
