// Hostile and broken traffic: dropped, counted by reason, and never changing what a node believes.
#include "membership/messages.hpp"
#include "membership/sim_cluster.hpp"

#include <swarm/core/wire.hpp>

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;
using swarm::membership::config;
using swarm::membership::member_state;
using swarm::membership::refusal;
namespace detail = swarm::membership::detail;

/// A node that only sends what the test hands it.
class rogue final : public swarm::net::protocol {
public:
    explicit rogue(swarm::net::transport& t) : t_(t) {}
    void on_datagram(const swarm::net::endpoint&, std::span<const std::byte>) override {}
    void send(const swarm::net::endpoint& to, std::span<const std::byte> bytes) { t_.send(to, bytes); }

private:
    swarm::net::transport& t_;
};

std::vector<std::byte> key_of(std::uint8_t fill) {
    return std::vector<std::byte>(32, std::byte{fill});
}


std::vector<std::byte> seal_with(const swarm::seal::keyring& ring, std::string_view label, std::uint64_t sender,
                                 std::span<const std::byte> plain, std::uint64_t sequence = 1) {
    swarm::seal::sealer s(ring, label, sender, sequence, 1);
    return s.seal(plain).value();
}

TEST(swim_bad_input, garbage_wrong_key_wrong_label_replay_and_forgery_are_refused) {
    swarm_test::cluster c(11);
    for (int i = 0; i < 5; ++i) c.add(config::swarm_profile());
    ASSERT_TRUE(c.net.run_until([&] { return c.all_see(5); }, swarm::time_point{} + 60s));
    const auto rogue_node = c.net.add_node();
    ASSERT_TRUE(c.net.add_protocol(rogue_node, 9999, [](swarm::net::transport& t) { return std::make_unique<rogue>(t); }));
    c.net.run_for(1s);
    auto* attacker = c.net.protocol_of<rogue>(rogue_node, 9999);
    ASSERT_NE(attacker, nullptr);
    auto* victim = c.at(1);
    const auto victim_address = c.net.endpoint_of(1, swarm_test::membership_port);
    const auto before = victim->members();

    // 1. Garbage and truncated datagrams.
    for (std::size_t n : {0, 1, 10, 48, 49, 200}) {
        std::vector<std::byte> junk(n, std::byte{0xab});
        attacker->send(victim_address, junk);
    }
    // 2. Sealed with a key the cluster does not hold.
    swarm::seal::keyring wrong;
    (void)wrong.add(key_of(0x99));
    std::vector<std::byte> ping_bytes;
    {
        swarm::wire::writer w(ping_bytes);
        detail::encode(w, detail::ping{1, detail::id_prefix(c.identities[1]->id())});
    }
    attacker->send(victim_address, seal_with(wrong, "swarm", 77, ping_bytes));
    // 3. The right key, the wrong cluster label.
    attacker->send(victim_address, seal_with(c.keys, "other-cluster", 77, ping_bytes));
    // 4. A genuine-looking packet, then the very same bytes again.
    const auto genuine = seal_with(c.keys, "swarm", 78, ping_bytes, 1'000'000'000'000ULL);
    attacker->send(victim_address, genuine);
    attacker->send(victim_address, genuine);
    // 5. Inside a valid seal: a dead claim about node 2 "signed" by node 3 but with a bogus signature, and a
    //    revival of node 2 signed with an attacker key.
    std::vector<std::byte> forged;
    {
        swarm::wire::writer w(forged);
        detail::accusation a;
        a.target = c.identities[2]->id();
        a.incarnation = 5;
        a.accuser = c.identities[3]->id();
        a.sig.fill(std::byte{1});
        detail::encode(w, detail::message_type::dead, a);
        auto attacker_id = swarm::identity::generate();
        detail::alive_claim claim;
        claim.id = c.identities[2]->id();
        claim.signing_key = attacker_id.signing_public_key();
        claim.incarnation = 99;
        claim.address = c.net.endpoint_of(rogue_node, 9999);
        claim.sig = attacker_id.sign(std::vector<std::byte>(8));
        detail::encode(w, claim);
    }
    attacker->send(victim_address, seal_with(c.keys, "swarm", 79, forged, 2'000'000'000'000ULL));
    // 6. Valid seal, malformed body.
    std::vector<std::byte> broken{std::byte{1}, std::byte{5}, std::byte{50}, std::byte{1}};
    attacker->send(victim_address, seal_with(c.keys, "swarm", 80, broken, 3'000'000'000'000ULL));

    c.net.run_for(2s);
    const auto& s = victim->stats();
    EXPECT_GE(s.refused_by(refusal::malformed), 6u);
    EXPECT_EQ(s.refused_by(refusal::unknown_key), 1u);
    EXPECT_EQ(s.refused_by(refusal::wrong_cluster), 1u);
    EXPECT_EQ(s.refused_by(refusal::replayed), 1u);
    EXPECT_EQ(s.refused_by(refusal::bad_signature), 2u);

    // Nothing the attacker sent changed the view: node 2 is alive at its own address.
    c.net.run_for(5s);
    auto two = victim->find(c.identities[2]->id());
    ASSERT_TRUE(two.has_value());
    EXPECT_EQ(two->state, member_state::alive);
    EXPECT_EQ(two->address, c.net.endpoint_of(2, swarm_test::membership_port));
    EXPECT_EQ(victim->members().size(), before.size());
    EXPECT_TRUE(c.all_see(5));
}

TEST(swim_bad_input, a_node_with_the_wrong_key_is_never_half_joined) {
    swarm_test::cluster c(12);
    for (int i = 0; i < 4; ++i) c.add(config::swarm_profile());
    ASSERT_TRUE(c.net.run_until([&] { return c.all_see(4); }, swarm::time_point{} + 60s));
    // A fifth node with another key tries to join through node 0.
    swarm::seal::keyring other;
    (void)other.add(key_of(0x13));
    const auto outsider = c.net.add_node();
    auto id = std::make_shared<const swarm::identity>(swarm::identity::generate());
    auto cfg = config::swarm_profile();
    cfg.seeds = {c.net.endpoint_of(0, swarm_test::membership_port)};
    ASSERT_TRUE(c.net.add_protocol(outsider, swarm_test::membership_port, [=](swarm::net::transport& t) {
        return std::make_unique<swarm::membership::swim>(t, id, other, cfg);
    }));
    c.net.run_for(20s);
    for (swarm::sim::node_id n = 0; n < 4; ++n) {
        EXPECT_EQ(c.at(n)->live_count(), 4u);
        EXPECT_FALSE(c.at(n)->find(id->id()).has_value());
    }
    EXPECT_EQ(c.net.protocol_of<swarm::membership::swim>(outsider, swarm_test::membership_port)->live_count(), 1u);
    EXPECT_GT(c.at(0)->stats().refused_by(refusal::unknown_key), 0u);
}

/// A removal of `target` by `declarer`, with suspicions signed by `accusers` (a member may appear twice). The
/// suspicions name incarnations 0 and 1 in turn (the target refuted while they gathered, as a grey member
/// does) unless `one_incarnation`.
std::vector<std::byte> removal_of(const swarm_test::cluster& c, swarm::sim::node_id target, swarm::sim::node_id declarer,
                                  const std::vector<swarm::sim::node_id>& accusers, bool one_incarnation = false) {
    const std::string label = "swarm";
    const auto label_hash = detail::hash16(std::as_bytes(std::span(label)));
    detail::removal m;
    m.claim.target = c.identities[target]->id();
    m.claim.accuser = c.identities[declarer]->id();
    m.claim.sig = c.identities[declarer]->sign(detail::signed_bytes(detail::message_type::removal, m.claim, label_hash));
    for (auto k : accusers) {
        detail::accusation a;
        a.target = m.claim.target;
        a.accuser = c.identities[k]->id();
        a.incarnation = one_incarnation ? 0 : m.evidence.size() % 2;
        a.sig = c.identities[k]->sign(detail::signed_bytes(detail::message_type::suspect, a, label_hash));
        m.evidence.push_back(a);
    }
    std::vector<std::byte> out;
    swarm::wire::writer w(out);
    detail::encode(w, m);
    return out;
}

// One member holding the cluster key cannot remove another on its own: a removal needs suspicions signed by
// grey_accusers distinct members, each checked, and one proof is applied once.
TEST(swim_bad_input, a_removal_without_distinct_signed_accusers_is_refused_and_a_proof_works_once) {
    swarm_test::cluster c(13);
    auto cfg = config::swarm_profile();
    cfg.grey_accusers = 3;
    for (int i = 0; i < 6; ++i) c.add(cfg);
    ASSERT_TRUE(c.net.run_until([&] { return c.all_see(6); }, swarm::time_point{} + 60s));
    const auto rogue_node = c.net.add_node();
    ASSERT_TRUE(c.net.add_protocol(rogue_node, 9999, [](swarm::net::transport& t) { return std::make_unique<rogue>(t); }));
    c.net.run_for(1s);
    auto* attacker = c.net.protocol_of<rogue>(rogue_node, 9999);
    auto* victim = c.at(1);
    const auto victim_address = c.net.endpoint_of(1, swarm_test::membership_port);
    std::uint64_t sequence = 1'000'000'000'000ULL;
    auto send = [&](const std::vector<std::byte>& plain) {
        attacker->send(victim_address, seal_with(c.keys, "swarm", 81, plain, sequence++));
    };

    // Node 3 signs three suspicions of node 2 itself: one accuser, however often it signs.
    send(removal_of(c, 2, 3, {3, 3, 3}));
    // Three accusers, but one suspicion's signature is garbage.
    auto tampered = removal_of(c, 2, 3, {3, 4, 5});
    tampered[tampered.size() - 10] ^= std::byte{0xff};
    send(tampered);
    // Too few accusers for this node's threshold.
    send(removal_of(c, 2, 3, {3, 4}));
    // A truncated removal.
    auto cut = removal_of(c, 2, 3, {3, 4, 5});
    cut.resize(cut.size() / 2);
    send(cut);
    // Three accusers who all name one incarnation: the target never refuted, so it is cut off, not grey.
    send(removal_of(c, 2, 3, {3, 4, 5}, true));
    c.net.run_for(1s);
    EXPECT_EQ(victim->stats().refused_by(refusal::bad_signature), 2u);
    EXPECT_GE(victim->stats().refused_by(refusal::malformed), 1u);
    EXPECT_EQ(victim->stats().removals, 0u);
    EXPECT_EQ(victim->find(c.identities[2]->id())->state, member_state::alive);

    // Three distinct members' signed suspicions do remove it, and the same proof again changes nothing.
    const auto proof = removal_of(c, 2, 3, {3, 4, 5});
    send(proof);
    c.net.run_for(100ms);
    EXPECT_EQ(victim->find(c.identities[2]->id())->state, member_state::dead);
    EXPECT_EQ(victim->stats().removals, 1u);
    c.net.run_for(3min); // past the quarantine
    send(proof);
    c.net.run_for(100ms);
    EXPECT_EQ(victim->stats().removals, 1u);
    // Node 2 refuted once the quarantine ended: it is back.
    EXPECT_TRUE(c.net.run_until([&] { return c.all_see(6); }, c.net.now() + 60s));
}

} // namespace
