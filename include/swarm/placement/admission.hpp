// Admission on the target node, and scheduling that respects it, with no central leader.
//
// Every node runs an admission_node protocol. As a TARGET it is the only authority over its own resources:
// an admission request is admitted atomically when the demand still fits (or fits after evicting strictly
// lower-priority allocations, when the request allows preemption), or refused with the node's current usage.
// As a SCHEDULER (any node may be one) it plans from its view of the cluster, asks each chosen node, folds
// every refusal's reported usage into its view, and re-plans the refused instances, for a bounded number of
// rounds. A gang is reserved first (reservations expire unless committed) and committed only when every
// instance is admitted; otherwise every reservation is released. Two schedulers racing for the last slot can
// never both win: the target decides, one request at a time, on its own strand.
#pragma once

#include <swarm/core/seal.hpp>
#include <swarm/net/protocol.hpp>
#include <swarm/placement/scheduler.hpp>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace swarm::inline v0::placement {

struct admission_config {
    /// Re-planning rounds after refusals before an instance is reported unplaceable.
    std::uint32_t max_rounds = 8;
    /// A request with no answer counts as refused after this.
    duration request_timeout = std::chrono::seconds(2);
    /// Reserved (gang) allocations not committed within this are dropped by the target.
    duration reservation_lease = std::chrono::seconds(10);
    /// A seed of 0 is replaced by one drawn from the transport, so that schedulers do not herd.
    scheduler_config scheduling;

    detailed_result<void> validate() const;
};

/// What one place() call achieved.
struct placement_outcome {
    std::string workload;
    std::vector<assignment> placed;
    /// Why the rest could not be placed (from the last round's plan), plus refusals counted.
    std::vector<explanation> unplaced;
    std::vector<eviction> evictions;
    std::uint32_t rounds = 0;
    std::uint32_t refusals = 0;
};

/// Seals every admission frame with the cluster's keys, as membership seals its datagrams. With it, a
/// frame that is unsealed, sealed for another cluster or key, garbled or replayed is dropped and counted.
struct admission_security {
    seal::keyring keys;
    std::string cluster_label = "swarm";
    /// Unique per node in the cluster, e.g. the first 8 bytes of its node id.
    std::uint64_t sender = 0;
    /// The first sealed sequence; must grow across restarts. 0: the transport's clock in microseconds
    /// (wall-clock based in production, virtual time under the simulator).
    std::uint64_t first_sequence = 0;
};

/// Why a frame was dropped, counted in admission_statistics.
enum class frame_refusal : std::uint8_t {
    malformed,             // not a valid admission message
    unsealed,              // too short to be sealed, or an unknown seal format
    wrong_cluster,         // sealed for another cluster label
    unknown_key,           // sealed with a key this node does not hold
    replayed,              // seen before
    authentication_failed, // the seal does not verify
};
inline constexpr std::size_t frame_refusal_count = 6;
std::string_view to_string(frame_refusal) noexcept;

struct admission_statistics {
    std::uint64_t requests = 0; // requests this node decided as a target
    std::uint64_t admitted = 0;
    std::uint64_t refused = 0;
    std::uint64_t evicted = 0;
    std::array<std::uint64_t, frame_refusal_count> dropped{};

    std::uint64_t dropped_by(frame_refusal r) const noexcept { return dropped[static_cast<std::size_t>(r)]; }
};

class admission_node final : public net::protocol {
public:
    using completion = std::function<void(const placement_outcome&)>;

    /// `self` is this node's entry (id, capacity, labels, allocations already running).
    /// Called on the strand after every change to what this node holds (admitted, evicted, released,
    /// expired), with the node as it now stands: the host publishes it, e.g. through with_allocations()
    /// and membership::swim::set_metadata.
    using change_hook = std::function<void(const node& self)>;

    /// `self` is this node's entry (id, capacity, labels, allocations already running). Without `security`
    /// frames travel in clear (for tests and trusted networks).
    admission_node(net::transport& transport, node self, admission_config config = {},
                   std::optional<admission_security> security = std::nullopt);
    ~admission_node() override;

    // net::protocol
    void on_datagram(const net::endpoint& from, std::span<const std::byte> payload) override;
    void on_timer(net::timer_id id) override;
    void on_stream_open(net::stream_id stream, const net::endpoint& peer, bool inbound) override;
    void on_stream_frame(net::stream_id stream, std::span<const std::byte> frame) override;
    void on_stream_closed(net::stream_id stream, boost::system::error_code reason) override;

    /// The scheduler's picture of the cluster and where each node's admission_node listens. Usually fed from
    /// membership; may be stale, which is what admission is for.
    void set_view(cluster snapshot, std::map<node_key, net::endpoint> addresses);

    /// Places a workload through the targets' admission; `done` runs on this protocol's strand. A workload
    /// that fails validation completes at once with every instance unplaced and the reason as summary.
    void place(workload w, completion done);

    /// Places only the named instances of the workload's groups (group name -> instance numbers, each below
    /// the group's count), e.g. those lost with a failed node; the others are taken as running. The
    /// allocation of instance i of group g is "<workload>/<g>/<i>" wherever it lands, so a target never
    /// holds one instance twice. Unknown groups or out-of-range instances complete at once, explained.
    void place_instances(workload w, std::map<std::string, std::vector<std::uint32_t>> instances, completion done);

    void on_change(change_hook hook);
    const admission_statistics& stats() const noexcept;

    /// The target side: what this node has admitted (committed and reserved) and what is left.
    const node& self() const noexcept;
    resources free() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace swarm::inline v0::placement
