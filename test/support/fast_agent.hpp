// A membership agent on loopback with timers a hundred times shorter than production's, for tests on real
// sockets that must see joins, failures and metadata within a second or two.
#pragma once

#include <swarm/membership/agent.hpp>
#include <swarm/net/endpoint.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace swarm_test {

inline swarm::membership::agent_config fast_agent_config(const std::filesystem::path& identity_file,
                                                         std::string cluster_key,
                                                         std::vector<std::string> seeds = {}) {
    using namespace std::chrono_literals;
    swarm::membership::agent_config c;
    c.driver.bind = swarm::net::endpoint::parse("127.0.0.1:0").value();
    c.driver.stop_grace = 200ms;
    c.driver.connect_timeout = 1s;
    c.membership.probe_interval = 100ms;
    c.membership.probe_timeout = 50ms;
    c.membership.gossip_interval = 50ms;
    c.membership.push_pull_interval = 1s;
    c.membership.stream_timeout = 1s;
    c.membership.join_retry_interval = 100ms;
    c.membership.join_retry_max = 500ms;
    c.membership.reconnect_interval = 500ms;
    c.identity_file = identity_file;
    c.cluster_keys = {std::move(cluster_key)};
    c.seeds = std::move(seeds);
    c.leave_drain = 200ms;
    return c;
}

} // namespace swarm_test
