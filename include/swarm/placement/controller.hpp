// Keeps desired workloads running: when membership says a node failed or left, the instances it held are
// placed again on surviving nodes through the targets' admission.
//
// A sans-IO net::protocol that owns this node's admission_node (bind it on the admission port in its place)
// and adds the desired state: for every desired workload, the instances it knows to be running, learnt from
// its own placements and from the membership view (allocations each node publishes). Whatever is missing,
// because its node is gone or was never placed, is placed with admission_node::place_instances, which keeps
// the instance's allocation id, so an instance is never admitted twice on one node; placements that fail
// are retried every retry_interval. The controller never places an instance the view shows running on a
// live node.
//
// One controller per workload: two controllers that want the same workload may re-place a lost instance
// on two different nodes at once. A node wrongly declared dead that comes back keeps its instances, which
// were re-placed meanwhile; the view then shows the instance twice (running() reports both).
#pragma once

#include <swarm/membership/types.hpp>
#include <swarm/placement/admission.hpp>
#include <swarm/placement/membership_view.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace swarm::inline v0::placement {

struct controller_config {
    admission_config admission;
    /// How often instances that could not be placed are tried again.
    duration retry_interval = std::chrono::seconds(5);
    /// An instance this controller placed that its node's published allocations still lack after this is
    /// taken as gone (evicted, or its gang reservation expired) and placed again.
    duration publish_grace = std::chrono::seconds(30);

    detailed_result<void> validate() const;
};

struct controller_statistics {
    std::uint64_t attempts = 0;       // place_instances calls
    std::uint64_t placed = 0;         // instances admitted
    std::uint64_t lost = 0;           // instances found gone (node failed or left, or not published in time)
    std::uint64_t still_unplaced = 0; // instances an attempt could not place (retried)
};

class controller final : public net::protocol {
public:
    /// `config` must be valid (see validate()); `self` and `security` as for admission_node.
    controller(net::transport& transport, node self, controller_config config = {},
               std::optional<admission_security> security = std::nullopt);
    ~controller() override;

    // net::protocol: forwarded to the admission node, with one timer of its own.
    void on_start() override;
    void on_datagram(const net::endpoint& from, std::span<const std::byte> payload) override;
    void on_timer(net::timer_id id) override;
    void on_stream_open(net::stream_id stream, const net::endpoint& peer, bool inbound) override;
    void on_stream_frame(net::stream_id stream, std::span<const std::byte> frame) override;
    void on_stream_writable(net::stream_id stream) override;
    void on_stream_closed(net::stream_id stream, boost::system::error_code reason) override;

    // The host's controls; call on the protocol's strand.
    /// Adds or replaces a desired workload and places what is missing. Fails (changing nothing) when the
    /// workload does not validate.
    detailed_result<void> want(workload w);
    /// Stops keeping a workload running (what runs stays).
    void forget(std::string_view workload_id);
    /// The cluster as membership now sees it (view_from_members()); places what is missing.
    void set_view(membership_view view);
    /// A membership event: a node that failed or left loses its instances, which are placed again.
    void on_membership_event(const membership::event& e);

    /// Where each desired instance runs, as far as this controller knows, sorted by workload, group and
    /// instance.
    std::vector<assignment> running() const;
    const controller_statistics& stats() const noexcept;
    admission_node& admission() noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace swarm::inline v0::placement
