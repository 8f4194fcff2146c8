#include <swarm/membership/config.hpp>

#include <fmt/format.h>

namespace swarm::inline v0::membership {

config config::swarm_profile() { return {}; }

config config::memberlist_lan() {
    config c;
    c.probe_interval = std::chrono::seconds(1);
    c.probe_timeout = std::chrono::milliseconds(500);
    c.indirect_checks = 3;
    c.suspicion_multiplier = 4;
    c.suspicion_max_multiplier = 6;
    // memberlist expects suspicion_multiplier - 2 confirmations.
    c.suspicion_confirmations = 2;
    c.retransmit_multiplier = 4;
    c.gossip_interval = std::chrono::milliseconds(200);
    c.gossip_nodes = 3;
    c.push_pull_interval = std::chrono::seconds(30);
    c.digest_push_pull = false;
    c.grey_accusers = 0;
    return c;
}

config config::plain_swim() {
    config c = memberlist_lan();
    c.max_local_health = 0;
    c.nacks = false;
    c.suspicion_max_multiplier = 1;
    c.suspicion_confirmations = 0;
    c.tcp_fallback = false;
    return c;
}

detailed_result<void> config::validate() const {
    auto bad = [](std::string what) { return error{errc::config_invalid_value, std::move(what)}; };
    if (cluster_label.empty() || cluster_label.size() > 255)
        return bad("membership.cluster_label: must be 1 to 255 bytes");
    if (probe_interval <= duration::zero()) return bad("membership.probe_interval: must be positive");
    if (probe_timeout <= duration::zero() || probe_timeout >= probe_interval)
        return bad("membership.probe_timeout: must be positive and shorter than probe_interval");
    if (indirect_checks > 16) return bad("membership.indirect_checks: at most 16");
    if (max_local_health < 0 || max_local_health > 64) return bad("membership.max_local_health: 0 to 64");
    if (!(suspicion_multiplier > 0)) return bad("membership.suspicion_multiplier: must be positive");
    if (!(suspicion_max_multiplier >= 1)) return bad("membership.suspicion_max_multiplier: at least 1");
    if (grey_accusers == 1 || grey_accusers > 16)
        return bad("membership.grey_accusers: 0 (off) or 2 to 16");
    // A removal carries one signed suspicion (~110 bytes) per accuser and must fit in one datagram.
    if (grey_accusers * 110 + 200 > packet_size)
        return bad("membership.grey_accusers: the evidence of that many accusers does not fit in packet_size");
    if (grey_accusers > 0 && (grey_window <= duration::zero() || grey_quarantine <= duration::zero()))
        return bad("membership.grey_window and grey_quarantine: must be positive");
    if (gossip_interval <= duration::zero()) return bad("membership.gossip_interval: must be positive");
    if (gossip_nodes == 0) return bad("membership.gossip_nodes: at least 1");
    if (retransmit_multiplier == 0) return bad("membership.retransmit_multiplier: at least 1");
    if (packet_size < 512 || packet_size > 65'000) return bad("membership.packet_size: 512 to 65000 bytes");
    if (push_pull_interval <= duration::zero()) return bad("membership.push_pull_interval: must be positive");
    if (max_concurrent_push_pull == 0) return bad("membership.max_concurrent_push_pull: at least 1");
    if (stream_timeout <= duration::zero()) return bad("membership.stream_timeout: must be positive");
    if (join_retry_interval <= duration::zero() || join_retry_max < join_retry_interval)
        return bad("membership.join_retry_interval: must be positive and at most join_retry_max");
    if (reconnect_interval <= duration::zero()) return bad("membership.reconnect_interval: must be positive");
    if (max_metadata_bytes < 16 * 1024 || max_metadata_bytes > 1024 * 1024)
        return bad("membership.max_metadata_bytes: 16 KiB to 1 MiB");
    if (inline_metadata_bytes > packet_size / 2)
        return bad("membership.inline_metadata_bytes: at most half of packet_size");
    if (max_tracked_senders == 0) return bad("membership.max_tracked_senders: at least 1");
    return {};
}

} // namespace swarm::inline v0::membership
