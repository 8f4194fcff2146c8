// A membership cluster under the simulator, shared by the membership tests.
#pragma once

#include <swarm/membership/swim.hpp>
#include <swarm/sim/network.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

namespace swarm_test {

inline constexpr std::uint16_t membership_port = 7946;

struct cluster {
    swarm::sim::network net;
    std::vector<std::shared_ptr<const swarm::identity>> identities;
    /// The cluster key every node starts with (for tests that seal traffic themselves).
    swarm::seal::keyring keys;
    /// Each node's own keyring (copies of a ring share it), holding the cluster key: a rotation can reach
    /// nodes one at a time.
    std::vector<swarm::seal::keyring> rings;
    std::shared_ptr<swarm::membership::signature_cache> cache = std::make_shared<swarm::membership::signature_cache>(1 << 20);
    std::vector<std::vector<swarm::membership::event>> events; // per node

    static swarm::sim::network make_network(std::uint64_t seed) {
        swarm::sim::network_config c;
        c.seed = seed;
        c.default_link.latency = std::chrono::milliseconds(1);
        c.default_link.jitter = std::chrono::microseconds(200);
        c.default_link.distribution = swarm::sim::latency_distribution::uniform;
        return std::move(swarm::sim::network::create(c).value());
    }

    std::uint64_t seed_;

    static std::array<std::byte, 32> cluster_key() {
        std::array<std::byte, 32> key{};
        key.fill(std::byte{0x42});
        return key;
    }

    explicit cluster(std::uint64_t seed) : net(make_network(seed)), seed_(seed) { (void)keys.add(cluster_key()); }

    /// Adds a node that joins through node 0 (the first node joins nobody).
    swarm::sim::node_id add(swarm::membership::config cfg) {
        const auto node = net.add_node();
        // Identities from the seed, so a run replays exactly.
        std::array<std::byte, 32> seed{};
        for (std::size_t i = 0; i < 8; ++i) {
            seed[i] = static_cast<std::byte>(seed_ >> (8 * i));
            seed[8 + i] = static_cast<std::byte>(std::uint64_t{node} >> (8 * i));
        }
        identities.push_back(std::make_shared<const swarm::identity>(swarm::identity::from_seed(seed)));
        events.emplace_back();
        if (node != 0) cfg.seeds = {net.endpoint_of(0, membership_port)};
        auto id = identities[node];
        swarm::seal::keyring ring;
        (void)ring.add(cluster_key());
        rings.push_back(ring);
        auto cache_ref = cache;
        auto* log = &events;
        auto result = net.add_protocol(node, membership_port, [=](swarm::net::transport& t) {
            return std::make_unique<swarm::membership::swim>(
                t, id, ring, cfg, [log, node](const swarm::membership::event& e) { (*log)[node].push_back(e); },
                cache_ref);
        });
        if (!result) throw std::runtime_error(result.error().describe());
        return node;
    }

    swarm::membership::swim* at(swarm::sim::node_id node) {
        return net.protocol_of<swarm::membership::swim>(node, membership_port);
    }

    /// Every running node sees `expected` live members.
    bool all_see(std::size_t expected) {
        for (swarm::sim::node_id n = 0; n < net.node_count(); ++n) {
            if (net.state(n) != swarm::sim::node_state::running || !at(n)) continue;
            if (at(n)->live_count() != expected) return false;
        }
        return true;
    }

    /// Every running node other than `subject` sees it in `state`.
    bool all_see_state(swarm::sim::node_id subject, swarm::membership::member_state state) {
        for (swarm::sim::node_id n = 0; n < net.node_count(); ++n) {
            if (n == subject || net.state(n) != swarm::sim::node_state::running || !at(n)) continue;
            auto m = at(n)->find(identities[subject]->id());
            if (!m || m->state != state) return false;
        }
        return true;
    }
};

/// Runs in 100 ms steps until `done()` or `limit`; checking after every event would cost O(n) per event.
inline bool run_until(cluster& c, const std::function<bool()>& done, swarm::duration limit) {
    const auto end = c.net.now() + limit;
    while (c.net.now() < end) {
        if (done()) return true;
        c.net.run_for(std::chrono::milliseconds(100));
    }
    return done();
}

/// Adds `count` nodes with swarm's profile and runs until every node sees them all (at most a minute), then
/// forgets the events of forming. False when they did not converge.
inline bool form(cluster& c, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) c.add(swarm::membership::config::swarm_profile());
    for (int i = 0; i < 600 && !c.all_see(count); ++i) c.net.run_for(std::chrono::milliseconds(100));
    if (!c.all_see(count)) return false;
    for (auto& e : c.events) e.clear();
    return true;
}

} // namespace swarm_test
