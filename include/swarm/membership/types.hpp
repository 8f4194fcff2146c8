// What membership tells the rest of swarm: who is in the mesh, in which state, and what each node offers.
#pragma once

#include <swarm/core/clock.hpp>
#include <swarm/core/error.hpp>
#include <swarm/core/identity.hpp>
#include <swarm/net/endpoint.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::inline v0::membership {

enum class member_state : std::uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };
std::string_view to_string(member_state) noexcept;

struct gpu {
    std::string model;
    std::uint64_t memory_bytes = 0;
    std::uint64_t memory_used_bytes = 0;
    std::uint32_t utilisation_percent = 0;
    friend bool operator==(const gpu&, const gpu&) = default;
};

struct resources {
    std::uint64_t cpu_millicores = 0;
    std::uint64_t memory_bytes = 0;
    std::uint64_t disk_bytes = 0;
    std::vector<gpu> gpus;
    /// Any other countable device, by name.
    std::map<std::string, std::uint64_t> devices;
    friend bool operator==(const resources&, const resources&) = default;
};

/// A model this node serves, and where.
struct served_model {
    std::string name;
    /// Base URL of the server, e.g. "http://127.0.0.1:8080".
    std::string endpoint;
    /// "openai", "tgi" or "kserve-v2".
    std::string api = "openai";
    friend bool operator==(const served_model&, const served_model&) = default;
};

/// Work a node has admitted and runs, so every scheduler's view of the node converges on its usage.
struct allocation {
    std::string id;
    std::string workload;
    std::string group;
    std::uint32_t instance = 0;
    /// What the allocation holds; a GPU entry counts one GPU (its model and memory may be left empty).
    resources demand;
    std::int32_t priority = 0;
    friend bool operator==(const allocation&, const allocation&) = default;
};

/// What a node advertises. Spread by gossip (small) or fetched over a stream (large); versioned by the
/// member's incarnation.
struct metadata {
    resources capacity;
    resources available;
    /// region, zone, rack, or anything else.
    std::map<std::string, std::string> labels;
    std::vector<served_model> models;
    /// Free-form bytes for the application.
    std::vector<std::byte> extra;
    /// What the node's admission has accepted. Appended to the encoding after `extra`: metadata written
    /// before allocations existed decodes with none, and older readers skip them.
    std::vector<allocation> allocations;

    std::vector<std::byte> encode() const;
    /// errc::truncated / malformed / too_large / unsupported_version for bad input; never reads past it.
    static result<metadata> decode(std::span<const std::byte> bytes);
    friend bool operator==(const metadata&, const metadata&) = default;
};

/// A member as this node currently sees it.
struct member {
    node_id id;
    net::endpoint address;
    member_state state = member_state::alive;
    std::uint64_t incarnation = 0;
    /// Null until the metadata has arrived.
    std::shared_ptr<const metadata> meta;
    /// When this node last saw the state change.
    time_point since;
};

enum class event_kind : std::uint8_t {
    joined,   // first seen alive
    updated,  // metadata or address changed
    suspect,  // suspected of failure
    alive,    // a suspicion was refuted
    failed,   // declared dead
    left,     // left gracefully
    rejoined, // alive again after being dead or gone
};
std::string_view to_string(event_kind) noexcept;

struct event {
    event_kind kind = event_kind::joined;
    member subject;
};

} // namespace swarm::inline v0::membership
