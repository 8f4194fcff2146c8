// The membership protocol: SWIM failure detection with Lifeguard, piggy-backed dissemination, push-pull
// anti-entropy, signed state claims and sealed datagrams. A sans-IO net::protocol: the simulator and the
// socket driver run it unchanged.
#pragma once

#include <swarm/core/identity.hpp>
#include <swarm/core/seal.hpp>
#include <swarm/membership/config.hpp>
#include <swarm/membership/types.hpp>
#include <swarm/net/protocol.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace swarm::inline v0::membership {

/// Why an incoming datagram or frame was dropped.
enum class refusal : std::uint8_t {
    malformed,             // not a valid encoding
    wrong_cluster,         // sealed for another cluster label
    unknown_key,           // sealed with a key this node does not hold
    replayed,              // seen before
    authentication_failed, // seal tag does not verify
    bad_signature,         // a state claim whose signature does not verify
    unknown_signer,        // an accusation by a member this node does not know
    misdirected,           // a probe meant for another node
    busy,                  // too many concurrent exchanges
};
inline constexpr std::size_t refusal_count = 9;
std::string_view to_string(refusal) noexcept;

/// Counters, read from the protocol's strand.
struct statistics {
    std::uint64_t packets_sent = 0;
    std::uint64_t packets_received = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t probes = 0;
    std::uint64_t probes_failed = 0;
    std::uint64_t indirect_probes = 0;
    std::uint64_t tcp_probes = 0;
    std::uint64_t suspicions = 0;
    std::uint64_t refutations = 0;
    std::uint64_t push_pulls = 0;
    std::uint64_t signatures_verified = 0;
    /// Members this node removed on the evidence of many accusers (a grey failure), assembled here or received.
    std::uint64_t removals = 0;
    std::array<std::uint64_t, refusal_count> refused{};

    std::uint64_t refused_by(refusal r) const noexcept { return refused[static_cast<std::size_t>(r)]; }
};

/// Remembers claims whose signatures verified, so a claim gossiped many times is checked once. Nodes in one
/// process (the simulator) may share one cache.
class signature_cache {
public:
    explicit signature_cache(std::size_t capacity = 1 << 16);
    ~signature_cache();
    /// Verifies through the cache.
    bool verify(const identity::ed25519_public_key& key, std::span<const std::byte> message,
                const identity::signature& sig, std::uint64_t& verified_counter);

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

class swim final : public net::protocol {
public:
    using event_handler = std::function<void(const event&)>;

    /// `keys` is shared: a key added or made primary through any copy is used at the next datagram.
    /// `on_event` runs on the protocol's strand and must not block. `first_sequence` seeds the replay
    /// counter; it must grow across restarts (wall-clock microseconds in production; 0 means "virtual time in
    /// microseconds", right under the simulator).
    swim(net::transport& transport, std::shared_ptr<const identity> self, seal::keyring keys, config cfg,
         event_handler on_event = {}, std::shared_ptr<signature_cache> cache = {}, std::uint64_t first_sequence = 0);
    ~swim() override;

    // net::protocol
    void on_start() override;
    void on_datagram(const net::endpoint& from, std::span<const std::byte> payload) override;
    void on_timer(net::timer_id id) override;
    void on_stream_open(net::stream_id stream, const net::endpoint& peer, bool inbound) override;
    void on_stream_frame(net::stream_id stream, std::span<const std::byte> frame) override;
    void on_stream_closed(net::stream_id stream, boost::system::error_code reason) override;
    void on_stop() override;

    // The host's controls; call from the protocol's strand.
    /// Joins through these addresses (in addition to config seeds), retrying with backoff.
    void join(std::vector<net::endpoint> seeds);
    /// Publishes new metadata under a new incarnation. errc::too_large beyond config::max_metadata_bytes.
    result<void> set_metadata(const metadata& meta);
    /// Leaves gracefully: members mark this node left, not dead.
    void leave();

    // The view.
    std::vector<member> members() const;
    std::optional<member> find(const node_id& id) const;
    /// Members alive or suspect, this node included.
    std::size_t live_count() const noexcept;
    const node_id& id() const noexcept;
    std::uint64_t incarnation() const noexcept;
    int local_health() const noexcept;
    const statistics& stats() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace swarm::inline v0::membership
