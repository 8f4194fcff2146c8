// Membership configuration: one plain struct, three named profiles for side-by-side measurement.
#pragma once

#include <swarm/core/clock.hpp>
#include <swarm/core/error.hpp>
#include <swarm/net/endpoint.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace swarm::inline v0::membership {

struct config {
    /// Bound into every sealed datagram and signed claim: two clusters never read each other.
    std::string cluster_label = "swarm";
    /// Where to join; retried until one answers, and again after partitions.
    std::vector<net::endpoint> seeds;

    // Failure detection (SWIM).
    duration probe_interval = std::chrono::milliseconds(500);
    duration probe_timeout = std::chrono::milliseconds(250);
    /// Members asked to probe on this node's behalf when a direct probe goes unanswered.
    unsigned indirect_checks = 3;
    /// Also probe over a stream when datagrams go unanswered (paths where UDP is blocked).
    bool tcp_fallback = true;

    // Lifeguard.
    /// Local health: probe interval and timeout stretch by (score + 1), score at most this.
    int max_local_health = 8;
    /// Indirect helpers report a missed ack with a nack, so this node can tell its own slowness from others'.
    bool nacks = true;
    /// Suspicion timeout: min = multiplier * log10(max(N, 10)) * probe_interval, max = min * max_multiplier;
    /// it shrinks from max to min as `suspicion_confirmations` independent members confirm it.
    double suspicion_multiplier = 1.5;
    double suspicion_max_multiplier = 6;
    unsigned suspicion_confirmations = 3;

    // Grey failures (after Rapid's multi-observer rule). A suspicion is refutable, so a member that still
    // answers sometimes (80% loss, say) refutes each one and is never removed. Signed suspicions by
    // `grey_accusers` distinct members within `grey_window`, whatever incarnations they name, prove more than
    // any one of them: a member that gathers them sends them as one removal, every member that checks the
    // signatures removes the accused, and its refutations are ignored for `grey_quarantine`. In effect a
    // member may refute at most grey_accusers - 1 accusers per window. 0 turns the rule off.
    unsigned grey_accusers = 10;
    duration grey_window = std::chrono::seconds(20);
    duration grey_quarantine = std::chrono::minutes(2);

    // Dissemination.
    duration gossip_interval = std::chrono::milliseconds(200);
    unsigned gossip_nodes = 3;
    /// Each update is sent retransmit_multiplier * ceil(log10(N + 1)) times.
    unsigned retransmit_multiplier = 4;
    /// Keep gossiping to members declared dead this long, so they learn it and can refute.
    duration gossip_to_dead = std::chrono::seconds(30);
    /// Largest datagram, before sealing overhead is taken off.
    std::size_t packet_size = 1400;

    // Anti-entropy.
    /// A state exchange over a stream with one random member this often. Without digest_push_pull it is a
    /// full exchange and the interval is scaled up with log2(N / 32) above 32 members.
    duration push_pull_interval = std::chrono::seconds(10);
    /// Start the periodic exchange with a 16-byte digest of the live view; full state crosses only when the
    /// two digests differ. In sync, an exchange costs two small frames whatever N is, so it is not scaled
    /// with N and can run often enough to catch members that gossip missed.
    bool digest_push_pull = true;
    std::size_t max_concurrent_push_pull = 64;
    duration stream_timeout = std::chrono::seconds(10);

    // Joining and healing.
    duration join_retry_interval = std::chrono::seconds(1);
    duration join_retry_max = std::chrono::seconds(30);
    /// Try a full exchange with a random dead member (or a seed) this often, so a healed partition merges.
    duration reconnect_interval = std::chrono::seconds(10);
    /// Dead members are remembered (for refutation and reconnection) this long.
    duration tombstone_ttl = std::chrono::hours(1);
    std::size_t max_tombstones = 10'000;
    /// A member's address may change only after it has been dead or gone this long.
    duration dead_node_reclaim = std::chrono::seconds(30);

    // Metadata.
    std::size_t max_metadata_bytes = 64 * 1024;
    /// Metadata up to this size rides along with gossip; larger is fetched over a stream.
    std::size_t inline_metadata_bytes = 512;

    /// Senders whose replay windows are kept.
    std::size_t max_tracked_senders = 16'384;

    /// swarm's defaults (the values above).
    static config swarm_profile();
    /// memberlist's LAN defaults, for side-by-side measurement: probe 1 s, timeout 500 ms, 3 indirect probes,
    /// suspicion multiplier 4 (max 6x), retransmit multiplier 4, gossip to 3 nodes every 200 ms,
    /// full push-pull every 30 s scaled by cluster size; no grey-failure rule (memberlist has none).
    static config memberlist_lan();
    /// SWIM without Lifeguard: no local health, no nacks, a fixed suspicion timeout, no grey-failure rule.
    static config plain_swim();

    detailed_result<void> validate() const;

    /// The JSON shape (swarm::config): every field above under its own name.
    template <class F>
    void describe(F& f) {
        f("cluster_label", cluster_label);
        f("seeds", seeds);
        f("probe_interval", probe_interval);
        f("probe_timeout", probe_timeout);
        f("indirect_checks", indirect_checks);
        f("tcp_fallback", tcp_fallback);
        f("max_local_health", max_local_health);
        f("nacks", nacks);
        f("suspicion_multiplier", suspicion_multiplier);
        f("suspicion_max_multiplier", suspicion_max_multiplier);
        f("suspicion_confirmations", suspicion_confirmations);
        f("grey_accusers", grey_accusers);
        f("grey_window", grey_window);
        f("grey_quarantine", grey_quarantine);
        f("gossip_interval", gossip_interval);
        f("gossip_nodes", gossip_nodes);
        f("retransmit_multiplier", retransmit_multiplier);
        f("gossip_to_dead", gossip_to_dead);
        f("packet_size", packet_size);
        f("push_pull_interval", push_pull_interval);
        f("digest_push_pull", digest_push_pull);
        f("max_concurrent_push_pull", max_concurrent_push_pull);
        f("stream_timeout", stream_timeout);
        f("join_retry_interval", join_retry_interval);
        f("join_retry_max", join_retry_max);
        f("reconnect_interval", reconnect_interval);
        f("tombstone_ttl", tombstone_ttl);
        f("max_tombstones", max_tombstones);
        f("dead_node_reclaim", dead_node_reclaim);
        f("max_metadata_bytes", max_metadata_bytes);
        f("inline_metadata_bytes", inline_metadata_bytes);
        f("max_tracked_senders", max_tracked_senders);
    }
};

} // namespace swarm::inline v0::membership
