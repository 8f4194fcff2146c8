// Placement over membership: which node of the mesh holds each shard of a stripe.
//
// Each node the mesh has ever seen keeps one store index for good (the object store's catalog records shard
// locations as these indices), so a read after membership changed still finds every shard where it was
// written. New shards go to live nodes only, by weighted rendezvous hashing of (stripe, node): the weight is
// the node's available disk, so fuller nodes receive less, and a node joining or leaving moves only the
// shards it wins or held. Failure domains come first: a shard goes to the highest-scoring node among those
// whose zone, then rack, holds the fewest shards of the stripe so far, so no two shards share a zone (or a
// rack) while an unused one remains.
//
// Threading: not thread-safe; the object store calls the functions below from its own thread, so update the
// view from that thread too.
#pragma once

#include <swarm/core/error.hpp>
#include <swarm/core/identity.hpp>
#include <swarm/membership/types.hpp>
#include <swarm/net/endpoint.hpp>
#include <swarm/storage/object_store.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace swarm::inline v0::storage {

struct mesh_node {
    swarm::node_id id;
    /// Where the node's shard_transfer listens.
    net::endpoint address;
    std::string zone;
    std::string rack;
    /// Bytes free for shards; 0 when the node has not said (it then weighs as the average of those that have).
    std::uint64_t available_disk = 0;
    bool live = true;
};

class mesh_placement {
public:
    /// Adds a node (the next store index) or updates the one with the same id; returns its store index.
    /// errc::too_large beyond 256 nodes, the most a catalog location can name.
    result<std::size_t> upsert(const mesh_node& node);
    /// Applies a membership view: members alive or suspect are live, dead or left ones are not; labels "zone"
    /// and "rack" and metadata available.disk_bytes update each node; a member not seen before is added with
    /// its membership address and `transfer_port`. Nodes missing from the view keep their state.
    void update(std::span<const membership::member> members, std::uint16_t transfer_port);
    /// errc::not_found for an index never handed out.
    result<void> set_live(std::size_t index, bool live);

    const std::vector<mesh_node>& nodes() const noexcept { return nodes_; }
    std::optional<std::size_t> index_of(const swarm::node_id& id) const;

    /// Stores for the `shards` shards of a stripe. `current`, when given, holds one entry per shard: a store
    /// that keeps its shard, or nullopt for one to place; kept shards count towards their zone and rack.
    /// errc::data_unavailable when fewer live nodes than shards to place remain.
    result<std::vector<std::size_t>> place(const chunk_id& stripe, unsigned shards,
                                           std::span<const std::optional<std::size_t>> current = {}) const;

    /// Writes the node table (ids, addresses, zones, racks, disk, liveness) atomically with fsync: the store
    /// indices that the catalog records are positions in it, so keep it beside the catalog.
    detailed_result<void> save(const std::filesystem::path& file) const;
    /// Reads a table written by save(). errc::not_found when the file is absent; truncated, malformed or
    /// unsupported_version, naming the file, when it is not such a table.
    static detailed_result<mesh_placement> load(const std::filesystem::path& file);

    /// For object_store::open with `shards` = k+m; refers to this object, which must outlive the store. A node
    /// added later (upsert, update) needs its store added too: object_store::add_store returns the same index
    /// when called for each new node in the order they were added here.
    placement_function placement(unsigned shards) const;
    /// For repair_options::relocate: a shard whose node is not live moves to the best live node that holds no
    /// shard of the stripe; a shard on a live node is rebuilt in place. Refers to this object.
    relocate_function relocation() const;

private:
    std::vector<mesh_node> nodes_;
};

} // namespace swarm::inline v0::storage
