#include <swarm/core/wire.hpp>

#include "../../fuzz/sample_messages.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <limits>
#include <string>
#include <vector>

namespace {

namespace wire = swarm::wire;
using bytes = std::vector<std::byte>;

bytes b(std::initializer_list<int> v) {
    bytes out;
    for (int x : v) out.push_back(std::byte(static_cast<unsigned char>(x)));
    return out;
}

template <class F>
bytes encode(F f) {
    bytes out;
    {
        wire::writer w(out);
        f(w);
    }
    return out;
}

TEST(wire, fixed_width_is_big_endian) {
    auto out = encode([](wire::writer& w) {
        w.u8(0x01);
        w.u16(0x0203);
        w.u32(0x04050607);
        w.u64(0x08090a0b0c0d0e0fULL);
        w.boolean(true);
    });
    EXPECT_EQ(out, b({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1}));
    wire::reader r(out);
    EXPECT_EQ(r.u8(), 0x01);
    EXPECT_EQ(r.u16(), 0x0203);
    EXPECT_EQ(r.u32(), 0x04050607u);
    EXPECT_EQ(r.u64(), 0x08090a0b0c0d0e0fULL);
    EXPECT_TRUE(r.boolean());
    EXPECT_TRUE(r.finish().has_value());
}

TEST(wire, varints_use_the_shortest_form_and_round_trip) {
    EXPECT_EQ(encode([](wire::writer& w) { w.varint(0); }), b({0}));
    EXPECT_EQ(encode([](wire::writer& w) { w.varint(127); }), b({0x7f}));
    EXPECT_EQ(encode([](wire::writer& w) { w.varint(128); }), b({0x80, 0x01}));
    EXPECT_EQ(encode([](wire::writer& w) { w.varint(300); }), b({0xac, 0x02}));
    EXPECT_EQ(encode([](wire::writer& w) { w.varint(std::numeric_limits<std::uint64_t>::max()); }).size(), 10u);
    const std::uint64_t values[] = {0,         1,         127, 128, 16383, 16384, 1ULL << 35, (1ULL << 63) - 1,
                                    1ULL << 63, std::numeric_limits<std::uint64_t>::max()};
    for (std::uint64_t v : values) {
        auto out = encode([&](wire::writer& w) { w.varint(v); });
        EXPECT_EQ(out.size(), wire::varint_size(v));
        wire::reader r(out);
        EXPECT_EQ(r.varint(), v);
        EXPECT_TRUE(r.finish().has_value()) << v;
    }
}

TEST(wire, signed_varints_keep_small_magnitudes_short) {
    EXPECT_EQ(encode([](wire::writer& w) { w.svarint(-1); }), b({0x01}));
    EXPECT_EQ(encode([](wire::writer& w) { w.svarint(1); }), b({0x02}));
    EXPECT_EQ(encode([](wire::writer& w) { w.svarint(-64); }), b({0x7f}));
    for (std::int64_t v : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{63}, std::int64_t{-65},
                           std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()}) {
        auto out = encode([&](wire::writer& w) { w.svarint(v); });
        wire::reader r(out);
        EXPECT_EQ(r.svarint(), v);
        EXPECT_TRUE(r.finish().has_value());
    }
}

TEST(wire, non_canonical_and_overflowing_varints_are_malformed) {
    for (auto in : {b({0x80, 0x00}), b({0xff, 0x80, 0x00}), b({0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
                    b({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0}),
                    b({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}),        // 65 bits
                    b({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})}) { // 11 bytes
        wire::reader r(in);
        EXPECT_EQ(r.varint(), 0u);
        EXPECT_EQ(r.error(), swarm::errc::malformed);
        EXPECT_EQ(r.error_offset(), 0u);
    }
}

TEST(wire, reads_past_the_end_are_truncated_with_the_offset) {
    auto in = b({0x00, 0x01, 0x02});
    wire::reader r(in);
    EXPECT_EQ(r.u8(), 0);
    EXPECT_EQ(r.u32(), 0u);
    EXPECT_EQ(r.error(), swarm::errc::truncated);
    EXPECT_EQ(r.error_offset(), 1u);
    // Sticky: later reads fail too, returning zeros, and keep the first error.
    EXPECT_EQ(r.u8(), 0);
    EXPECT_EQ(r.error_offset(), 1u);
    EXPECT_FALSE(r.finish().has_value());

    for (auto partial : {b({0x80}), b({0xff, 0xff})}) {
        wire::reader v(partial);
        (void)v.varint();
        EXPECT_EQ(v.error(), swarm::errc::truncated);
    }
    wire::reader raw(in);
    EXPECT_TRUE(raw.raw(4).empty());
    EXPECT_EQ(raw.error(), swarm::errc::truncated);
}

TEST(wire, booleans_other_than_zero_or_one_are_malformed) {
    auto in = b({0x02});
    wire::reader r(in);
    EXPECT_FALSE(r.boolean());
    EXPECT_EQ(r.error(), swarm::errc::malformed);
}

TEST(wire, bytes_and_strings_are_views_into_the_input) {
    const std::array<std::byte, 3> payload{std::byte{9}, std::byte{8}, std::byte{7}};
    auto out = encode([&](wire::writer& w) {
        w.bytes(payload);
        w.string("héllo");
        w.string("");
        w.raw(payload);
    });
    wire::reader r(out);
    auto got = r.bytes(16);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got.data(), out.data() + 1); // a view, not a copy
    EXPECT_EQ(r.utf8(16), "héllo");
    EXPECT_EQ(r.string(16), "");
    EXPECT_TRUE(std::ranges::equal(r.raw(3), payload));
    EXPECT_TRUE(r.finish().has_value());
}

TEST(wire, lengths_over_the_maximum_or_the_input_are_too_large) {
    auto out = encode([](wire::writer& w) { w.string("0123456789"); });
    {
        wire::reader r(out);
        EXPECT_TRUE(r.string(9).empty());
        EXPECT_EQ(r.error(), swarm::errc::too_large);
    }
    // A length that claims more than remains is refused before anything is taken or allocated.
    auto lying = b({0xff, 0xff, 0xff, 0xff, 0x0f, 'a'});
    wire::reader r(lying);
    EXPECT_TRUE(r.bytes(std::numeric_limits<std::size_t>::max()).empty());
    EXPECT_EQ(r.error(), swarm::errc::too_large);
    EXPECT_EQ(r.error_offset(), 0u);

    auto counts = b({0x05, 0x00, 0x00});
    wire::reader c(counts);
    EXPECT_EQ(c.count(100, 1), 0u); // five elements cannot fit in two bytes
    EXPECT_EQ(c.error(), swarm::errc::too_large);
    wire::reader m(counts);
    EXPECT_EQ(m.varint_max(4), 0u);
    EXPECT_EQ(m.error(), swarm::errc::too_large);
}

TEST(wire, invalid_utf8_is_malformed) {
    for (std::string bad : {std::string("\xc0\xaf"), std::string("\xed\xa0\x80"), std::string("\xf4\x90\x80\x80"),
                            std::string("\xe2\x82"), std::string("\x80"), std::string("abcdefgh\xff"),
                            std::string("abcdefg\xff"), std::string("abcdefghijklmnop\xc3")}) {
        EXPECT_FALSE(wire::valid_utf8(bad)) << bad;
        auto out = encode([&](wire::writer& w) { w.string(bad); });
        wire::reader r(out);
        EXPECT_TRUE(r.utf8(64).empty());
        EXPECT_EQ(r.error(), swarm::errc::malformed);
    }
    for (std::string good : {std::string("plain ascii text, longer than eight"), std::string("\xc3\xa9"),
                             std::string("\xe2\x82\xac"), std::string("\xf0\x9f\x98\x80"),
                             std::string("\xf4\x8f\xbf\xbf"), std::string("abcdefghijklmno\xc3\xa9"), std::string()})
        EXPECT_TRUE(wire::valid_utf8(good)) << good;
}

TEST(wire, trailing_garbage_is_rejected) {
    auto in = b({0x01, 0x02});
    wire::reader r(in);
    EXPECT_EQ(r.u8(), 1);
    auto done = r.finish();
    ASSERT_FALSE(done.has_value());
    EXPECT_EQ(done.error(), swarm::errc::malformed);
    EXPECT_EQ(r.error_offset(), 1u);
}

TEST(wire, sections_patch_their_length_even_past_one_byte) {
    for (std::size_t body : {std::size_t{0}, std::size_t{127}, std::size_t{128}, std::size_t{20000}}) {
        const bytes filler(body, std::byte{0x5a});
        auto out = encode([&](wire::writer& w) {
            w.u8(0xee);
            auto s = w.begin_section();
            w.raw(filler);
            w.end_section(s);
            w.u8(0xff);
        });
        ASSERT_EQ(out.size(), 2 + wire::varint_size(body) + body);
        wire::reader r(out);
        EXPECT_EQ(r.u8(), 0xee);
        auto s = r.begin_section(body);
        EXPECT_TRUE(std::ranges::equal(r.raw(body), filler));
        r.end_section(s, wire::trailing::reject);
        EXPECT_EQ(r.u8(), 0xff);
        EXPECT_TRUE(r.finish().has_value()) << body;
    }
}

TEST(wire, nested_sections_survive_an_inner_length_growing) {
    const bytes inner_body(200, std::byte{0x11});
    auto out = encode([&](wire::writer& w) {
        auto outer = w.begin_section();
        w.u8(0x01);
        auto inner = w.begin_section();
        w.raw(inner_body);
        w.end_section(inner); // a two-byte length: the body moves, inside the outer section
        w.u8(0x02);
        w.end_section(outer);
    });
    wire::reader r(out);
    auto outer = r.begin_section(1024);
    EXPECT_EQ(r.remaining(), 1 + 2 + 200 + 1u);
    EXPECT_EQ(r.u8(), 0x01);
    auto inner = r.begin_section(1024);
    EXPECT_TRUE(std::ranges::equal(r.raw(200), inner_body));
    r.end_section(inner, wire::trailing::reject);
    EXPECT_EQ(r.u8(), 0x02);
    r.end_section(outer, wire::trailing::reject);
    EXPECT_TRUE(r.finish().has_value());
}

TEST(wire, reads_stop_at_the_end_of_a_section) {
    auto out = encode([](wire::writer& w) {
        auto s = w.begin_section();
        w.u16(7);
        w.end_section(s);
        w.u16(9);
    });
    wire::reader r(out);
    auto s = r.begin_section(64);
    EXPECT_EQ(r.u16(), 7);
    EXPECT_EQ(r.u8(), 0); // the next u16 is outside the section
    EXPECT_EQ(r.error(), swarm::errc::truncated);
    r.end_section(s, wire::trailing::skip);
    EXPECT_EQ(r.u16(), 0); // nothing is readable after a failure
    EXPECT_FALSE(r.ok());
}

TEST(wire, older_readers_skip_fields_a_newer_writer_appended) {
    // Version 1.1 of a message adds a field at the end of its body.
    auto newer = encode([](wire::writer& w) {
        auto body = w.begin_message(42);
        w.varint(5);
        w.string("added later");
        w.end_message(body);
    });
    wire::reader r(newer);
    auto m = r.begin_message(1024);
    EXPECT_EQ(m.type, 42u);
    EXPECT_EQ(r.varint(), 5u);
    r.end_message(m, wire::trailing::skip);
    EXPECT_TRUE(r.finish().has_value());

    wire::reader strict(newer);
    auto sm = strict.begin_message(1024);
    (void)strict.varint();
    strict.end_message(sm, wire::trailing::reject);
    EXPECT_EQ(strict.error(), swarm::errc::malformed);

    // Bytes after the body are not an extension point.
    newer.push_back(std::byte{0});
    wire::reader after(newer);
    auto am = after.begin_message(1024);
    (void)after.varint();
    after.end_message(am, wire::trailing::skip);
    EXPECT_EQ(after.finish().error(), swarm::errc::malformed);
}

TEST(wire, unknown_versions_are_refused) {
    auto in = b({0x02, 0x01, 0x00});
    wire::reader r(in);
    (void)r.begin_message(64);
    EXPECT_EQ(r.error(), swarm::errc::unsupported_version);
    wire::reader empty(std::span<const std::byte>{});
    (void)empty.begin_message(64);
    EXPECT_EQ(empty.error(), swarm::errc::truncated);
}

TEST(wire, a_fixed_span_reports_overflow) {
    std::array<std::byte, 5> buffer{};
    wire::writer w{std::span<std::byte>(buffer)};
    w.u32(1);
    w.u16(2); // does not fit
    w.u8(3);  // would fit, but the writer stays failed so no gap appears
    auto done = w.finish();
    ASSERT_FALSE(done.has_value());
    EXPECT_EQ(done.error(), swarm::errc::too_large);
    EXPECT_EQ(w.size(), 4u);

    std::array<std::byte, 8> exact{};
    wire::writer fits{std::span<std::byte>(exact)};
    fits.u64(0x0102030405060708ULL);
    ASSERT_TRUE(fits.finish().has_value());
    EXPECT_EQ(*fits.finish(), 8u);
    EXPECT_EQ(exact[7], std::byte{8});
}

TEST(wire, a_vector_writer_appends_and_trims) {
    bytes out = b({0xaa});
    {
        wire::writer w(out);
        w.u8(0xbb);
        EXPECT_EQ(w.size(), 2u);
        auto done = w.finish();
        ASSERT_TRUE(done.has_value());
        EXPECT_EQ(*done, 2u);
        EXPECT_EQ(out, b({0xaa, 0xbb}));
        w.u8(0xcc); // writing after finish() goes on appending
    }
    EXPECT_EQ(out, b({0xaa, 0xbb, 0xcc}));
}

sample::gossip make_gossip(std::vector<std::string>& storage) {
    sample::gossip g;
    g.from_incarnation = 77;
    storage = {"10.0.0.1:7946", "zone", "eu-west-1a", "gpu", "h100", "[2001:db8::7]:7946"};
    for (std::size_t i = 0; i < 8; ++i) {
        sample::member m;
        for (std::size_t j = 0; j < m.id.size(); ++j) m.id[j] = std::byte(static_cast<unsigned char>(i * 32 + j));
        m.address = i % 2 ? storage[5] : storage[0];
        m.incarnation = i * 1000;
        m.state = static_cast<sample::member_state>(i % 4);
        m.first_label = g.labels.size();
        m.label_count = 2;
        g.labels.push_back({storage[1], storage[2]});
        g.labels.push_back({storage[3], storage[4]});
        g.members.push_back(m);
    }
    static const std::array<std::byte, 4> piggyback{std::byte{1}, std::byte{2}, std::byte{3}, std::byte{4}};
    g.piggyback = piggyback;
    return g;
}

TEST(wire, a_membership_message_round_trips_and_every_truncation_fails) {
    std::vector<std::string> storage;
    const auto g = make_gossip(storage);
    auto out = encode([&](wire::writer& w) { sample::encode(w, g); });
    sample::gossip back;
    ASSERT_TRUE(sample::decode(out, back).has_value());
    EXPECT_EQ(back, g);
    for (std::size_t n = 0; n < out.size(); ++n)
        EXPECT_FALSE(sample::decode(std::span{out}.first(n), back).has_value()) << n;

    sample::ping p{12345, -250, true};
    auto ping_bytes = encode([&](wire::writer& w) { sample::encode(w, p); });
    sample::ping pback;
    ASSERT_TRUE(sample::decode(ping_bytes, pback).has_value());
    EXPECT_EQ(pback, p);
    // A ping is not a gossip.
    EXPECT_EQ(sample::decode(ping_bytes, back).error(), swarm::errc::malformed);
}

} // namespace
