// Decodes arbitrary bytes as the representative messages. Whatever decodes strictly must re-encode to the
// very same bytes (the encoding is canonical); whatever decodes leniently (skipping appended fields) must
// re-encode to something that decodes strictly to the same value. Then reads the same bytes with a sequence
// of primitive reads chosen by the first byte, and checks each against a plain reference decoding, and checks
// the UTF-8 fast path against the full check.
#include "sample_messages.hpp"

#include <swarm/core/random.hpp>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <vector>

namespace {

template <class Message>
std::vector<std::byte> reencode(const Message& m) {
    std::vector<std::byte> out;
    swarm::wire::writer w(out);
    sample::encode(w, m);
    if (!w.finish()) std::abort(); // a vector writer cannot fail
    return out;
}

template <class Message>
void check(std::span<const std::byte> in) {
    Message strict;
    if (sample::decode(in, strict, swarm::wire::trailing::reject)) {
        if (!std::ranges::equal(reencode(strict), in)) std::abort();
    }
    Message lenient;
    if (sample::decode(in, lenient, swarm::wire::trailing::skip)) {
        const auto again = reencode(lenient);
        Message back;
        if (!sample::decode(again, back, swarm::wire::trailing::reject) || !(back == lenient)) std::abort();
    } else if (sample::decode(in, strict, swarm::wire::trailing::reject)) {
        std::abort(); // strict acceptance implies lenient acceptance
    }
}

/// The shortest-form LEB128 value at in[at..], or nothing if it is not there.
std::optional<std::pair<std::uint64_t, std::size_t>> reference_varint(std::span<const std::byte> in, std::size_t at) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 10 && at + i < in.size(); ++i) {
        const auto b = std::to_integer<std::uint64_t>(in[at + i]);
        if (i == 9 && b > 1) return std::nullopt;
        v |= (b & 0x7f) << (7 * i);
        if (b < 0x80) {
            if (b == 0 && i != 0) return std::nullopt;
            return std::pair{v, i + 1};
        }
    }
    return std::nullopt;
}

std::uint64_t reference_be(std::span<const std::byte> in, std::size_t at, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | std::to_integer<std::uint64_t>(in[at + i]);
    return v;
}

void check_primitives(std::span<const std::byte> in) {
    if (in.empty()) return;
    swarm::rng pick(std::to_integer<std::uint64_t>(in[0]));
    swarm::wire::reader r(in);
    (void)r.u8();
    for (int step = 0; step < 64 && r.ok(); ++step) {
        const std::size_t at = r.offset();
        const std::size_t left = in.size() - at;
        switch (pick.below(6)) {
        case 0: {
            const auto v = r.varint();
            const auto ref = reference_varint(in, at);
            if (ref.has_value() != r.ok() || (ref && (v != ref->first || r.offset() != at + ref->second)))
                std::abort();
            break;
        }
        case 1: {
            const std::size_t n = std::size_t{1} << pick.below(4);
            const auto v = n == 1 ? r.u8() : n == 2 ? r.u16() : n == 4 ? r.u32() : r.u64();
            if ((left >= n) != r.ok() || (r.ok() && v != reference_be(in, at, n))) std::abort();
            break;
        }
        case 2: {
            const std::size_t max = pick.below(64);
            const auto b = r.bytes(max);
            const auto len = reference_varint(in, at);
            const bool fits = len && len->first <= max && len->first <= left - len->second;
            if (fits != r.ok() || (fits && (b.data() != in.data() + at + len->second || b.size() != len->first)))
                std::abort();
            break;
        }
        case 3: {
            const auto b = r.raw(pick.below(16));
            if (r.ok() && b.data() != in.data() + at) std::abort();
            break;
        }
        case 4: {
            const auto v = r.boolean();
            const bool valid = left >= 1 && std::to_integer<std::uint8_t>(in[at]) <= 1;
            if (valid != r.ok() || (valid && v != (in[at] == std::byte{1}))) std::abort();
            break;
        }
        default: {
            const auto section = r.begin_section(in.size());
            (void)r.varint();
            r.end_section(section, pick.chance(0.5) ? swarm::wire::trailing::skip : swarm::wire::trailing::reject);
            break;
        }
        }
        if (r.offset() > in.size()) std::abort();
    }
    // After a failure everything reads as zero and the first error stays.
    if (!r.ok()) {
        const auto error = r.error();
        const auto where = r.error_offset();
        if (r.u64() != 0 || r.varint() != 0 || !r.bytes(~std::size_t{0}).empty() || r.error() != error ||
            r.error_offset() != where || where > in.size())
            std::abort();
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto in = std::as_bytes(std::span{data, size});
    check<sample::gossip>(in);
    check<sample::ping>(in);
    check_primitives(in);
    // The inline ASCII fast path must agree with the full check.
    const std::string_view text{reinterpret_cast<const char*>(data), size};
    if (swarm::wire::valid_utf8(text) != swarm::wire::detail::valid_utf8_slow(data, data + size)) std::abort();
    return 0;
}
