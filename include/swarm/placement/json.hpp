// JSON shapes for clusters, workloads and plans, so hosts and samples can load them from files.
//
// Every key is checked: an unknown key, a wrong type or a missing required key is an error whose message
// names the key's path (e.g. "nodes[2].capacity.cpu_millis: expected an integer").
#pragma once

#include <swarm/placement/scheduler.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace swarm::inline v0::placement {

/// {"nodes": [...], "content": [...]}; see samples/placement/cluster.json.
detailed_result<cluster> cluster_from_json(std::string_view text);

/// {"workloads": [...]}; see samples/placement/workloads.json.
detailed_result<std::vector<workload>> workloads_from_json(std::string_view text);

/// The plan as JSON: assignments, evictions, and an explanation per unplaced instance.
std::string to_json(const plan& p);

} // namespace swarm::inline v0::placement
