#include "membership/broadcast_queue.hpp"
#include "membership/local_health.hpp"
#include "membership/messages.hpp"
#include "membership/suspicion.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using namespace std::chrono_literals;
using swarm::membership::detail::broadcast_queue;

std::vector<std::byte> bytes(std::string_view text) {
    std::vector<std::byte> out(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) out[i] = static_cast<std::byte>(text[i]);
    return out;
}

std::vector<std::string> take(broadcast_queue& q, std::size_t budget, unsigned limit = 3) {
    std::vector<std::string> out;
    q.fill(budget, 2, limit, [&](std::span<const std::byte> b) {
        out.emplace_back(reinterpret_cast<const char*>(b.data()), b.size());
    });
    return out;
}

TEST(broadcast_queue, newest_least_sent_first_and_retired_after_limit) {
    broadcast_queue q;
    q.push(std::nullopt, bytes("old"));
    EXPECT_EQ(take(q, 100), (std::vector<std::string>{"old"}));
    q.push(std::nullopt, bytes("new"));
    // "new" has never been sent, so it goes first even though "old" is older.
    EXPECT_EQ(take(q, 100), (std::vector<std::string>{"new", "old"}));
    EXPECT_EQ(take(q, 100), (std::vector<std::string>{"new", "old"})); // old reaches 3 sends here
    EXPECT_EQ(take(q, 100), (std::vector<std::string>{"new"}));
    EXPECT_TRUE(q.empty());
}

TEST(broadcast_queue, newer_update_about_same_member_replaces_older) {
    broadcast_queue q;
    q.push(7, bytes("suspect-7"));
    q.push(8, bytes("alive-8"));
    q.push(7, bytes("alive-7"));
    EXPECT_EQ(q.size(), 2u);
    auto sent = take(q, 100);
    EXPECT_EQ(sent, (std::vector<std::string>{"alive-7", "alive-8"}));
}

TEST(broadcast_queue, respects_budget_but_fits_smaller_updates_further_on) {
    broadcast_queue q;
    q.push(std::nullopt, bytes("small"));
    q.push(std::nullopt, bytes("a-much-longer-update"));
    // Budget 10: the long (newest) one does not fit with its overhead, the small one does.
    EXPECT_EQ(take(q, 10), (std::vector<std::string>{"small"}));
    EXPECT_EQ(q.size(), 2u);
}

TEST(suspicion, timeout_shrinks_with_independent_confirmations_only) {
    const swarm::time_point t0{};
    swarm::membership::detail::suspicion<int> s(1, t0, 2s, 12s, 3);
    EXPECT_EQ(s.deadline(), t0 + 12s);
    EXPECT_FALSE(s.confirm(1)); // the accuser again is no news
    EXPECT_TRUE(s.confirm(2));
    const auto after_one = s.deadline();
    EXPECT_LT(after_one, t0 + 12s);
    EXPECT_GT(after_one, t0 + 2s);
    EXPECT_FALSE(s.confirm(2));
    EXPECT_TRUE(s.confirm(3));
    EXPECT_TRUE(s.confirm(4));
    EXPECT_EQ(s.deadline(), t0 + 2s);
    EXPECT_FALSE(s.confirm(5)); // beyond the expected count nothing changes
}

TEST(local_health, scales_and_saturates) {
    swarm::membership::detail::local_health h(8);
    EXPECT_EQ(h.scale(500ms), 500ms);
    for (int i = 0; i < 20; ++i) h.apply(+1);
    EXPECT_EQ(h.score(), 8);
    EXPECT_EQ(h.scale(500ms), 4500ms);
    for (int i = 0; i < 20; ++i) h.apply(-1);
    EXPECT_EQ(h.score(), 0);
}

} // namespace

#include <swarm/core/config.hpp>
#include <swarm/membership/config.hpp>

namespace {

TEST(membership_config, loads_from_json_with_clear_errors) {
    auto ok = swarm::config::parse<swarm::membership::config>(
        R"({"cluster_label": "prod", "probe_interval": "1s", "probe_timeout": "400ms", "seeds": ["127.0.0.1:7946"]})");
    ASSERT_TRUE(ok.has_value()) << ok.error().describe();
    EXPECT_EQ(ok->probe_interval, std::chrono::seconds(1));
    EXPECT_EQ(ok->seeds.size(), 1u);

    auto typo = swarm::config::parse<swarm::membership::config>(R"({"probe_intervl": "1s"})");
    ASSERT_FALSE(typo.has_value());
    EXPECT_EQ(typo.error().code, swarm::errc::config_unknown_key);

    auto invalid = swarm::config::parse<swarm::membership::config>(R"({"probe_timeout": "2s"})");
    ASSERT_FALSE(invalid.has_value());
    EXPECT_NE(invalid.error().message.find("probe_timeout"), std::string::npos);
}

TEST(membership_config, profiles_are_valid_and_differ_where_documented) {
    EXPECT_TRUE(swarm::membership::config::swarm_profile().validate());
    const auto ml = swarm::membership::config::memberlist_lan();
    EXPECT_TRUE(ml.validate());
    EXPECT_EQ(ml.probe_interval, std::chrono::seconds(1));
    EXPECT_EQ(ml.probe_timeout, std::chrono::milliseconds(500));
    const auto plain = swarm::membership::config::plain_swim();
    EXPECT_TRUE(plain.validate());
    EXPECT_FALSE(plain.nacks);
    EXPECT_EQ(plain.max_local_health, 0);
    // memberlist has no grey-failure rule; swarm's is on.
    EXPECT_EQ(ml.grey_accusers, 0u);
    EXPECT_EQ(plain.grey_accusers, 0u);
    EXPECT_GE(swarm::membership::config::swarm_profile().grey_accusers, 2u);
}

TEST(membership_config, grey_rule_settings_are_checked_with_clear_errors) {
    auto expect_bad = [](swarm::membership::config c, std::string_view field) {
        auto r = c.validate();
        ASSERT_FALSE(r);
        EXPECT_NE(r.error().describe().find(field), std::string::npos) << r.error().describe();
    };
    auto c = swarm::membership::config::swarm_profile();
    c.grey_accusers = 1; // one accuser is what refutable suspicion already handles
    expect_bad(c, "grey_accusers");
    c.grey_accusers = 11; // the evidence would not fit in a 1,400-byte datagram
    expect_bad(c, "packet_size");
    c.grey_accusers = 10;
    c.grey_window = std::chrono::seconds(0);
    expect_bad(c, "grey_window");
    c.grey_accusers = 0; // off: the window no longer matters
    EXPECT_TRUE(c.validate());
}

TEST(membership_messages, an_ack_carries_a_view_digest_only_when_given_one) {
    namespace d = swarm::membership::detail;
    auto round_trip = [](const d::ack& in) {
        std::vector<std::byte> buf;
        {
            swarm::wire::writer w(buf);
            d::encode(w, d::message_type::ack, in);
        }
        swarm::wire::reader r(buf);
        auto m = r.begin_message(buf.size());
        d::ack out;
        d::decode_body(r, out);
        r.end_message(m, swarm::wire::trailing::reject);
        EXPECT_TRUE(r.ok());
        return out;
    };
    const auto plain = round_trip(d::ack{7, {}, 0});
    EXPECT_EQ(plain.sequence, 7u);
    EXPECT_FALSE(plain.view);
    d::digest view{};
    view.fill(std::byte{0x5a});
    const auto with_view = round_trip(d::ack{8, view, 1000});
    EXPECT_EQ(with_view.sequence, 8u);
    ASSERT_TRUE(with_view.view);
    EXPECT_EQ(*with_view.view, view);
    EXPECT_EQ(with_view.live, 1000u);
}

} // namespace
