// Placement over membership: what a node's admission has accepted travels in its membership metadata, and a
// members snapshot becomes the scheduler's cluster view, so every scheduler's view converges on each node's
// own word about its usage.
#pragma once

#include <swarm/membership/types.hpp>
#include <swarm/net/endpoint.hpp>
#include <swarm/placement/scheduler.hpp>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace swarm::inline v0::placement {

/// The key a member has in placement: its node id in hex. An admission_node's `self.id` must use it.
node_key key_of(const node_id& id);

/// Capacity, labels and GPU of `self` as membership metadata (capacity only; `available` left empty).
membership::metadata describe_node(const node& self);

/// `base` with its allocations replaced by what `self` holds: what the host publishes through
/// membership::swim::set_metadata whenever admission_node reports a change.
membership::metadata with_allocations(membership::metadata base, const node& self);

struct membership_view {
    cluster snapshot;
    /// Where each node's admission_node listens: the member's address with the admission port.
    std::map<node_key, net::endpoint> addresses;
    /// Members left out, with the reason (no metadata yet, absurd resources).
    std::vector<std::string> skipped;
};

/// Alive and suspect members that have published metadata become nodes: capacity, labels, the model and
/// smallest memory of their GPUs, measured load (1 - available / capacity CPU, when `available` is set)
/// and their allocations as current usage. Dead and departed members are left out, so their work no
/// longer counts anywhere. Never yields a snapshot scheduler::create would refuse: members whose metadata
/// it would reject are skipped, duplicate allocation ids are kept once, devices a node does not offer are
/// dropped from its allocations.
membership_view view_from_members(std::span<const membership::member> members, std::uint16_t admission_port,
                                  std::int64_t max_resource_value = std::int64_t{1} << 56);

} // namespace swarm::inline v0::placement
