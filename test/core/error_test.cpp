#include <swarm/core/error.hpp>
#include <swarm/net/endpoint.hpp>

#include <gtest/gtest.h>

namespace {

TEST(error, codes_have_names_and_compare_by_enum) {
    boost::system::error_code ec = swarm::errc::truncated;
    EXPECT_EQ(ec, swarm::errc::truncated);
    EXPECT_EQ(std::string(ec.category().name()), "swarm");
    EXPECT_EQ(ec.message(), "input truncated");
}

TEST(error, detailed_error_describes_key_and_code) {
    swarm::error e{swarm::errc::config_unknown_key, "unknown key 'probe_intervl'"};
    EXPECT_EQ(e.describe(), "unknown key 'probe_intervl' (unknown configuration key)");
    swarm::detailed_result<int> r = e;
    EXPECT_FALSE(r.has_value());
    EXPECT_THROW((void)r.value(), std::runtime_error);
}

TEST(endpoint, parses_and_prints_both_families) {
    auto a = swarm::net::endpoint::parse("127.0.0.1:7946");
    ASSERT_TRUE(a.has_value());
    EXPECT_TRUE(a->is_v4());
    EXPECT_EQ(a->v4_address(), 0x7f000001u);
    EXPECT_EQ(a->to_string(), "127.0.0.1:7946");
    auto b = swarm::net::endpoint::parse("[::1]:80");
    ASSERT_TRUE(b.has_value());
    EXPECT_FALSE(b->is_v4());
    EXPECT_EQ(b->to_string(), "[::1]:80");
    EXPECT_EQ(swarm::net::endpoint::v4(0x7f000001, 7946), *a);
}

TEST(endpoint, rejects_garbage) {
    for (auto text : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "[::1]80", "host:1", "::1:80", "1.2.3.4:-1"})
        EXPECT_FALSE(swarm::net::endpoint::parse(text).has_value()) << text;
}

} // namespace

#include <swarm/core/clock.hpp>

namespace {

TEST(clock, virtual_clock_moves_only_forward_and_only_when_told) {
    swarm::virtual_clock c;
    EXPECT_EQ(c.now(), swarm::time_point{});
    c.advance(std::chrono::seconds(2));
    EXPECT_EQ(c.now(), swarm::time_point{std::chrono::seconds(2)});
    c.advance_to(swarm::time_point{std::chrono::seconds(1)}); // the past is ignored
    EXPECT_EQ(c.now(), swarm::time_point{std::chrono::seconds(2)});
    const swarm::clock& as_interface = c;
    EXPECT_EQ(as_interface.now(), c.now());
}

TEST(clock, real_clock_is_monotonic) {
    swarm::real_clock c;
    const auto a = c.now();
    const auto b = c.now();
    EXPECT_LE(a, b);
}

} // namespace
