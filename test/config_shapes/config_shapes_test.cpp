// Every component's configuration loads from one JSON shape, with errors that name the key.
#include <swarm/core/config.hpp>
#include <swarm/membership/config.hpp>
#include <swarm/net/driver.hpp>
#include <swarm/sim/network.hpp>

#include <gtest/gtest.h>

namespace {

using namespace std::chrono_literals;

TEST(config_shapes, simulator_network_from_json) {
    auto c = swarm::config::parse<swarm::sim::network_config>(R"({
        "seed": 42,
        "default_link": {"latency": "2ms", "jitter": "500us", "distribution": "pareto_normal", "loss": 0.01,
                         "burst_loss": {"p_good_to_bad": 0.05, "p_bad_to_good": 0.3, "loss_in_bad": 0.8}},
        "streams": {"connect_timeout": "1s"}
    })");
    ASSERT_TRUE(c.has_value()) << c.error().describe();
    EXPECT_EQ(c->seed, 42u);
    EXPECT_EQ(c->default_link.latency, 2ms);
    EXPECT_EQ(c->default_link.distribution, swarm::sim::latency_distribution::pareto_normal);
    EXPECT_DOUBLE_EQ(c->default_link.burst_loss.p_good_to_bad, 0.05);
    EXPECT_EQ(c->streams.connect_timeout, 1s);
    // Written back, it reads the same.
    auto again = swarm::config::from_json<swarm::sim::network_config>(swarm::config::to_json(*c));
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->default_link.jitter, 500us);
}

TEST(config_shapes, simulator_errors_name_the_key) {
    auto bad_enum = swarm::config::parse<swarm::sim::network_config>(R"({"default_link": {"distribution": "zipf"}})");
    ASSERT_FALSE(bad_enum.has_value());
    EXPECT_NE(bad_enum.error().message.find("default_link.distribution"), std::string::npos) << bad_enum.error().message;
    EXPECT_NE(bad_enum.error().message.find("pareto"), std::string::npos);
    auto bad_loss = swarm::config::parse<swarm::sim::network_config>(R"({"default_link": {"loss": 1.5}})");
    ASSERT_FALSE(bad_loss.has_value());
    EXPECT_EQ(bad_loss.error().code, swarm::errc::config_invalid_value);
}

TEST(config_shapes, socket_driver_from_json) {
    auto c = swarm::config::parse<swarm::net::driver_config>(
        R"({"bind": "127.0.0.1:0", "advertise": "[::1]:7946", "idle_timeout": "30s", "max_streams": 64})");
    ASSERT_TRUE(c.has_value()) << c.error().describe();
    EXPECT_EQ(c->bind.to_string(), "127.0.0.1:0");
    ASSERT_TRUE(c->advertise.has_value());
    EXPECT_EQ(c->advertise->port(), 7946);
    EXPECT_EQ(c->idle_timeout, std::optional<swarm::duration>(30s));
    auto bad = swarm::config::parse<swarm::net::driver_config>(R"({"bind": "localhost:80"})");
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().message.find("bind"), std::string::npos);
}

} // namespace
