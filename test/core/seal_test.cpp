#include <swarm/core/seal.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <string_view>
#include <vector>

namespace {

namespace seal = swarm::seal;
using bytes = std::vector<std::byte>;

std::array<std::byte, seal::key_size> key(unsigned char fill) {
    std::array<std::byte, seal::key_size> k{};
    for (std::size_t i = 0; i < k.size(); ++i) k[i] = std::byte(static_cast<unsigned char>(fill + i));
    return k;
}

bytes text(std::string_view s) {
    bytes out(s.size());
    std::ranges::transform(s, out.begin(), [](char c) { return std::byte(static_cast<unsigned char>(c)); });
    return out;
}

seal::keyring ring_with(unsigned char fill) {
    seal::keyring ring;
    EXPECT_TRUE(ring.add(key(fill)).has_value());
    return ring;
}

bytes sealed_by(seal::sealer& s, std::string_view plaintext) {
    auto r = s.seal(text(plaintext));
    EXPECT_TRUE(r.has_value());
    return r.has_value() ? *r : bytes{};
}

TEST(seal, round_trip_reports_sender_sequence_and_key) {
    auto ring = ring_with(1);
    seal::sealer s(ring, "prod", 0xabcdef, 100);
    seal::opener o(ring, "prod");
    auto msg = sealed_by(s, "hello swarm");
    EXPECT_EQ(msg.size(), 11 + seal::sealer::overhead);
    static_assert(seal::sealer::overhead == 49);
    EXPECT_EQ(s.next_sequence(), 101u);
    bytes out;
    auto r = o.open(msg, out);
    ASSERT_TRUE(r.has_value()) << r.error().message();
    EXPECT_EQ(r->sender, 0xabcdefu);
    EXPECT_EQ(r->sequence, 100u);
    EXPECT_EQ(r->key, *ring.primary());
    EXPECT_EQ(r->size, 11u);
    EXPECT_EQ(out, text("hello swarm"));

    // The empty message is a valid message.
    auto empty = sealed_by(s, "");
    EXPECT_EQ(empty.size(), seal::overhead);
    ASSERT_TRUE(o.open(empty, out).has_value());
    EXPECT_TRUE(out.empty());
}

TEST(seal, any_flipped_bit_is_rejected) {
    auto ring = ring_with(1);
    seal::sealer s(ring, "prod", 7, 1);
    auto msg = sealed_by(s, "tamper with me");
    // Every byte: the header (each field), the ciphertext and the tag.
    for (std::size_t i = 0; i < msg.size(); ++i) {
        seal::opener o(ring, "prod");
        auto bad = msg;
        bad[i] ^= std::byte{0x01};
        bytes out;
        auto r = o.open(bad, out);
        ASSERT_FALSE(r.has_value()) << "byte " << i;
        if (i == 0) EXPECT_EQ(r.error(), swarm::errc::unsupported_version);
        else if (i < 5) EXPECT_EQ(r.error(), swarm::errc::wrong_cluster);
        else if (i < 9) EXPECT_EQ(r.error(), swarm::errc::unknown_key);
        else EXPECT_EQ(r.error(), swarm::errc::authentication_failed) << "byte " << i;
        EXPECT_TRUE(out.empty());
    }
}

TEST(seal, replays_are_rejected_and_late_messages_accepted_once) {
    auto ring = ring_with(1);
    seal::sealer s(ring, "prod", 7, 1000);
    seal::opener o(ring, "prod");
    std::vector<bytes> msgs;
    for (int i = 0; i < 1100; ++i) msgs.push_back(sealed_by(s, "m"));
    bytes out;
    ASSERT_TRUE(o.open(msgs[5], out).has_value());
    EXPECT_EQ(o.open(msgs[5], out).error(), swarm::errc::replayed);
    // Older than the highest seen, but inside the window, and not seen yet: accepted once.
    ASSERT_TRUE(o.open(msgs[3], out).has_value());
    EXPECT_EQ(o.open(msgs[3], out).error(), swarm::errc::replayed);
    // Jump ahead: sequence 2099. Anything 1024 or more below it is too old, even if never seen.
    ASSERT_TRUE(o.open(msgs[1099], out).has_value());
    EXPECT_EQ(o.open(msgs[74], out).error(), swarm::errc::replayed);  // 1074: 1025 below
    EXPECT_EQ(o.open(msgs[75], out).error(), swarm::errc::replayed);  // 1075: exactly 1024 below
    ASSERT_TRUE(o.open(msgs[76], out).has_value());                    // 1076: 1023 below
    ASSERT_TRUE(o.open(msgs[1098], out).has_value());
    EXPECT_EQ(o.open(msgs[1098], out).error(), swarm::errc::replayed);
    // A forged copy of a fresh sequence does not move the window.
    auto forged = msgs[1050];
    forged.back() ^= std::byte{1};
    EXPECT_EQ(o.open(forged, out).error(), swarm::errc::authentication_failed);
    EXPECT_TRUE(o.open(msgs[1050], out).has_value());
}

TEST(seal, senders_have_separate_windows) {
    auto ring = ring_with(1);
    seal::sealer a(ring, "prod", 1, 50);
    seal::sealer b(ring, "prod", 2, 50);
    seal::opener o(ring, "prod");
    bytes out;
    EXPECT_TRUE(o.open(sealed_by(a, "x"), out).has_value());
    EXPECT_TRUE(o.open(sealed_by(b, "x"), out).has_value()); // same sequence, other sender
    EXPECT_EQ(o.tracked_senders(), 2u);
}

TEST(seal, another_cluster_label_is_refused) {
    auto ring = ring_with(1);
    seal::sealer s(ring, "staging", 7, 1);
    seal::opener o(ring, "prod");
    bytes out;
    EXPECT_EQ(o.open(sealed_by(s, "hi"), out).error(), swarm::errc::wrong_cluster);
}

TEST(seal, unknown_key_is_refused) {
    auto ring_a = ring_with(1);
    auto ring_b = ring_with(2);
    seal::sealer s(ring_a, "prod", 7, 1);
    seal::opener o(ring_b, "prod");
    bytes out;
    EXPECT_EQ(o.open(sealed_by(s, "hi"), out).error(), swarm::errc::unknown_key);
}

TEST(seal, rotation_keeps_old_messages_readable_until_the_old_key_goes) {
    seal::keyring ring;
    auto old_id = ring.add(key(1));
    ASSERT_TRUE(old_id.has_value());
    seal::sealer s(ring, "prod", 7, 1);
    seal::opener o(ring, "prod");
    auto before = sealed_by(s, "old key");
    auto stale = sealed_by(s, "old key, opened after removal");

    auto new_id = ring.add(key(2));
    ASSERT_TRUE(new_id.has_value());
    EXPECT_EQ(ring.primary(), *old_id); // adding does not change the primary
    ASSERT_TRUE(ring.make_primary(*new_id).has_value());
    EXPECT_EQ(ring.ids(), (std::vector<seal::key_id>{*new_id, *old_id}));

    auto after = sealed_by(s, "new key"); // the existing sealer picks up the new primary
    bytes out;
    auto r = o.open(after, out);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->key, *new_id);
    r = o.open(before, out);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->key, *old_id);

    EXPECT_EQ(ring.remove(*new_id).error(), swarm::errc::invalid_argument); // the primary stays
    ASSERT_TRUE(ring.remove(*old_id).has_value());
    EXPECT_FALSE(ring.contains(*old_id));
    EXPECT_EQ(o.open(stale, out).error(), swarm::errc::unknown_key);
    EXPECT_EQ(ring.remove(*old_id).error(), swarm::errc::not_found);
    EXPECT_EQ(ring.make_primary(*old_id).error(), swarm::errc::not_found);
}

TEST(seal, keyring_rejects_bad_keys) {
    seal::keyring ring;
    std::array<std::byte, 31> short_key{};
    EXPECT_EQ(ring.add(short_key).error(), swarm::errc::invalid_argument);
    ASSERT_TRUE(ring.add(key(1)).has_value());
    EXPECT_EQ(ring.add(key(1)).error(), swarm::errc::already_exists);
    EXPECT_EQ(ring.primary(), seal::id_of(key(1)));
    EXPECT_NE(seal::id_of(key(1)), seal::id_of(key(2)));
}

TEST(seal, sealing_needs_a_key_and_room) {
    seal::keyring ring;
    seal::sealer s(ring, "prod", 7, 1);
    const auto plain = text("abc");
    EXPECT_EQ(s.seal(plain).error(), swarm::errc::unknown_key);
    ASSERT_TRUE(ring.add(key(1)).has_value());
    bytes small(plain.size() + seal::overhead - 1);
    EXPECT_EQ(s.seal(plain, small).error(), swarm::errc::invalid_argument);
    bytes buffer(64);
    EXPECT_EQ(s.seal(std::span{buffer}.subspan(10, 3), buffer).error(), swarm::errc::invalid_argument); // overlap
    EXPECT_EQ(s.next_sequence(), 1u); // failures use no sequence

    seal::sealer last(ring, "prod", 7, ~std::uint64_t{0} - 1);
    EXPECT_TRUE(last.seal(plain).has_value());
    EXPECT_EQ(last.seal(plain).error(), swarm::errc::too_large);
}

TEST(seal, seals_and_opens_in_place) {
    auto ring = ring_with(1);
    seal::sealer s(ring, "prod", 7, 1);
    seal::opener o(ring, "prod");
    const auto plain = text("encoded right where it will be sealed");
    bytes buffer(plain.size() + seal::overhead);
    std::ranges::copy(plain, buffer.begin() + seal::header_size);
    auto body = std::span{buffer}.subspan(seal::header_size, plain.size());
    ASSERT_EQ(s.seal(body, buffer).value(), buffer.size());
    auto r = o.open(buffer, body);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(std::ranges::equal(body, plain));
    // Overlapping by any other offset is refused (checked before authentication, so a fresh opener).
    seal::opener fresh(ring, "prod");
    EXPECT_EQ(fresh.open(buffer, std::span{buffer}.subspan(1, plain.size())).error(), swarm::errc::invalid_argument);
    EXPECT_EQ(s.seal(std::span{buffer}.subspan(1, 8), buffer).error(), swarm::errc::invalid_argument);
}

TEST(seal, every_short_input_is_rejected_cleanly) {
    auto ring = ring_with(1);
    seal::sealer s(ring, "prod", 7, 1);
    seal::opener o(ring, "prod");
    const auto msg = sealed_by(s, "a message of some length");
    std::array<std::byte, 64> out{};
    for (std::size_t n = 0; n < seal::overhead; ++n)
        EXPECT_EQ(o.open(std::span{msg}.first(n), out).error(), swarm::errc::truncated) << n;
    for (std::size_t n = seal::overhead; n < msg.size(); ++n)
        EXPECT_EQ(o.open(std::span{msg}.first(n), out).error(), swarm::errc::authentication_failed) << n;
    std::array<std::byte, 4> tiny{};
    EXPECT_EQ(o.open(msg, tiny).error(), swarm::errc::invalid_argument);
    EXPECT_TRUE(o.open(msg, out).has_value());
}

TEST(seal, sender_table_is_bounded_and_evicts_the_least_recent) {
    auto ring = ring_with(1);
    seal::opener o(ring, "prod", seal::replay_config{.max_senders = 3});
    std::vector<seal::sealer> senders;
    for (std::uint64_t id = 1; id <= 4; ++id) senders.emplace_back(ring, "prod", id, 1);
    bytes out;
    const auto first_of_1 = sealed_by(senders[0], "1");
    const auto first_of_2 = sealed_by(senders[1], "2");
    ASSERT_TRUE(o.open(first_of_1, out).has_value());
    ASSERT_TRUE(o.open(first_of_2, out).has_value());
    ASSERT_TRUE(o.open(sealed_by(senders[2], "3"), out).has_value());
    ASSERT_TRUE(o.open(sealed_by(senders[0], "1 again"), out).has_value()); // 1 is now the most recent
    ASSERT_TRUE(o.open(sealed_by(senders[3], "4"), out).has_value());      // evicts 2
    EXPECT_EQ(o.tracked_senders(), 3u);
    EXPECT_EQ(o.open(first_of_1, out).error(), swarm::errc::replayed); // 1 kept its window
    // The documented residual risk: an evicted sender's old message is accepted once more.
    EXPECT_TRUE(o.open(first_of_2, out).has_value());
    EXPECT_EQ(o.open(first_of_2, out).error(), swarm::errc::replayed);
    EXPECT_EQ(o.tracked_senders(), 3u);
}

TEST(seal, forged_senders_do_not_enter_the_table) {
    auto ring = ring_with(1);
    seal::sealer s(ring, "prod", 7, 1);
    seal::opener o(ring, "prod", seal::replay_config{.max_senders = 2});
    auto msg = sealed_by(s, "x");
    bytes out;
    for (std::uint8_t i = 0; i < 10; ++i) {
        auto forged = msg;
        forged[16] = std::byte{static_cast<std::uint8_t>(0x80 + i)}; // another sender id
        EXPECT_EQ(o.open(forged, out).error(), swarm::errc::authentication_failed);
    }
    EXPECT_EQ(o.tracked_senders(), 0u);
}

TEST(seal, replay_config_is_validated) {
    EXPECT_TRUE(seal::replay_config{}.validate().has_value());
    auto zero = seal::replay_config{.max_senders = 0}.validate();
    ASSERT_FALSE(zero.has_value());
    EXPECT_EQ(zero.error(), swarm::errc::config_invalid_value);
    EXPECT_NE(zero.error().message.find("max_senders"), std::string::npos);
    EXPECT_FALSE(seal::replay_config{.max_senders = std::size_t{1} << 30}.validate().has_value());
    // An opener refuses to start with an invalid one: a contract violation, not a silent clamp.
    auto ring = ring_with(1);
    EXPECT_DEATH(seal::opener(ring, "prod", seal::replay_config{.max_senders = 0}), "");
}

TEST(seal, a_restarted_sender_with_a_higher_first_sequence_is_accepted) {
    auto ring = ring_with(1);
    seal::opener o(ring, "prod");
    bytes out;
    {
        seal::sealer first_life(ring, "prod", 7, 1'000'000);
        for (int i = 0; i < 3; ++i) ASSERT_TRUE(o.open(sealed_by(first_life, "a"), out).has_value());
    }
    seal::sealer second_life(ring, "prod", 7, 2'000'000);
    EXPECT_TRUE(o.open(sealed_by(second_life, "b"), out).has_value());
    // Starting over from the same first sequence would be read as replays.
    seal::sealer careless(ring, "prod", 7, 1'000'000);
    EXPECT_EQ(o.open(sealed_by(careless, "c"), out).error(), swarm::errc::replayed);
}

} // namespace
