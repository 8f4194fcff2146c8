#include <swarm/membership/swim.hpp>

#include "broadcast_queue.hpp"
#include "local_health.hpp"
#include "messages.hpp"
#include "suspicion.hpp"

#include <swarm/core/wire.hpp>

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <list>
#include <set>
#include <unordered_map>

namespace swarm::inline v0::membership {

std::string_view to_string(refusal r) noexcept {
    switch (r) {
    case refusal::malformed: return "malformed";
    case refusal::wrong_cluster: return "wrong_cluster";
    case refusal::unknown_key: return "wrong_key";
    case refusal::replayed: return "replayed";
    case refusal::authentication_failed: return "authentication_failed";
    case refusal::bad_signature: return "bad_signature";
    case refusal::unknown_signer: return "unknown_signer";
    case refusal::misdirected: return "misdirected";
    case refusal::busy: return "busy";
    }
    return "unknown";
}

// ---------------------------------------------------------------------------------------------------------
// signature_cache

struct signature_cache::impl {
    using key = std::array<std::byte, 16>;
    struct key_hash {
        std::size_t operator()(const key& k) const noexcept {
            std::size_t h = 0;
            std::memcpy(&h, k.data(), sizeof h);
            return h;
        }
    };
    std::size_t capacity;
    std::list<key> order; // oldest first
    std::unordered_map<key, std::list<key>::iterator, key_hash> known;
};

signature_cache::signature_cache(std::size_t capacity) : impl_(std::make_unique<impl>()) {
    impl_->capacity = std::max<std::size_t>(capacity, 1);
}
signature_cache::~signature_cache() = default;

bool signature_cache::verify(const identity::ed25519_public_key& key, std::span<const std::byte> message,
                             const identity::signature& sig, std::uint64_t& verified_counter) {
    // The cache key covers the signer, the message and the signature, so a hit is exactly a claim seen before.
    impl::key k{};
    crypto_generichash_state state;
    crypto_generichash_init(&state, nullptr, 0, k.size());
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(key.data()), key.size());
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(message.data()), message.size());
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
    crypto_generichash_final(&state, reinterpret_cast<unsigned char*>(k.data()), k.size());
    if (impl_->known.contains(k)) return true;
    ++verified_counter;
    if (!identity::verify(key, message, sig)) return false;
    impl_->order.push_back(k);
    impl_->known.emplace(k, std::prev(impl_->order.end()));
    if (impl_->known.size() > impl_->capacity) {
        impl_->known.erase(impl_->order.front());
        impl_->order.pop_front();
    }
    return true;
}

// ---------------------------------------------------------------------------------------------------------
// swim

namespace {

using detail::message_type;

enum timer : net::timer_id {
    probe_tick = 1,
    probe_timeout,
    gossip_tick,
    push_pull_tick,
    suspicion_check,
    reconnect_tick,
    join_retry,
    relay_check,
    stream_check,
};

enum class stream_kind : std::uint8_t { push_pull, digest_exchange, join, tcp_probe, meta_fetch, inbound };

constexpr std::size_t max_messages_per_packet = 64;
constexpr std::size_t max_members_in_state = 200'000;
constexpr std::size_t max_concurrent_meta_fetches = 16;
/// Grey-failure evidence may name incarnations this far below the one it removes: a grey member refutes each
/// suspicion it hears, so its incarnation climbs while the evidence gathers. Older evidence is stale.
constexpr std::uint64_t evidence_incarnation_span = 64;
/// Accusers remembered per member (the window's and older ones, newest first).
constexpr std::size_t max_evidence_kept = 64;
/// A quarantined member's refutations keep arriving from members that missed the removal; each such sender is
/// sent the removal, at most this often per removed member.
constexpr auto removal_resend_interval = std::chrono::seconds(1);

bool is_live(member_state s) noexcept { return s == member_state::alive || s == member_state::suspect; }

std::span<const std::byte> as_span(const std::vector<std::byte>& v) { return {v.data(), v.size()}; }

} // namespace

struct swim::impl {
    struct entry {
        detail::alive_claim alive;
        member_state state = member_state::alive;
        std::uint64_t incarnation = 0; // of the current state
        std::optional<detail::accusation> accused;
        std::optional<detail::suspicion<node_id>> suspicion;
        std::vector<std::byte> meta_bytes;
        std::shared_ptr<const metadata> meta;
        detail::digest meta_digest{}; // digest of meta_bytes
        time_point since;
        std::size_t live_index = npos;
        /// This member's share of view_digest_, and whether it is in it (live members and self are).
        detail::digest digest_term{};
        bool in_digest = false;
        /// Grey-failure evidence: verified suspicions of this member, the newest per accuser, for grey_window.
        std::vector<std::pair<time_point, detail::accusation>> evidence;
        /// Removed on evidence: its refutations are ignored until then.
        time_point quarantined_until{};
        /// The removal (encoded) that put it there, and the incarnation it named; a proof is applied once.
        std::vector<std::byte> removal;
        std::optional<std::uint64_t> removed_incarnation;
        time_point removal_resent{};
    };
    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    struct probe {
        std::uint32_t sequence = 0;
        node_id target;
        bool acked = false;
        unsigned expected_nacks = 0;
        unsigned nacks = 0;
    };

    struct relay {
        std::uint32_t origin_sequence = 0;
        net::endpoint origin;
        time_point nack_at;
        time_point expires;
        bool want_nack = false;
    };

    struct stream_context {
        stream_kind kind = stream_kind::inbound;
        net::endpoint peer;
        time_point deadline;
        std::uint32_t probe_sequence = 0;
        node_id subject;
        bool push_pull_in = false;
        /// An inbound digest exchange whose digests differed: our state went out, the peer's is awaited.
        bool awaiting_state = false;
    };

    impl(net::transport& t, std::shared_ptr<const identity> self, seal::keyring keys, config cfg,
         event_handler on_event, std::shared_ptr<signature_cache> cache, std::uint64_t first_sequence)
        : t_(t), self_(std::move(self)), cfg_(std::move(cfg)), on_event_(std::move(on_event)),
          cache_(cache ? std::move(cache) : std::make_shared<signature_cache>()), keys_(keys),
          sealer_(keys, cfg_.cluster_label, detail::id_prefix(self_->id()),
                  first_sequence ? first_sequence
                                 : static_cast<std::uint64_t>(t.now().time_since_epoch().count() / 1000) + 1,
                  // Only uniqueness matters for the salt; the transport's generator replays under the simulator.
                  t.random()()),
          datagram_opener_(keys, cfg_.cluster_label, seal::replay_config{cfg_.max_tracked_senders}),
          stream_opener_(keys, cfg_.cluster_label, seal::replay_config{cfg_.max_tracked_senders}),
          health_(cfg_.max_local_health) {
        const auto* label = reinterpret_cast<const std::byte*>(cfg_.cluster_label.data());
        label_hash_ = detail::hash16({label, cfg_.cluster_label.size()});
    }

    // --- identity and own claim ------------------------------------------------------------------------

    const node_id& self_id() const noexcept { return self_->id(); }

    void sign_own_claim() {
        auto& me = members_.at(self_id());
        me.alive.id = self_id();
        me.alive.signing_key = self_->signing_public_key();
        me.alive.incarnation = me.incarnation;
        me.alive.address = t_.local_endpoint();
        me.alive.meta_digest = me.meta_bytes.empty() ? detail::digest{} : me.meta_digest;
        me.alive.meta_size = static_cast<std::uint32_t>(me.meta_bytes.size());
        me.alive.sig = self_->sign(detail::signed_bytes(me.alive, label_hash_));
        refresh_digest(self_id(), me);
    }

    void announce_self() {
        sign_own_claim();
        const auto& me = members_.at(self_id());
        enqueue_alive(me.alive);
        if (!me.meta_bytes.empty() && me.meta_bytes.size() <= cfg_.inline_metadata_bytes)
            enqueue_metadata(self_id(), me.incarnation, me.meta_bytes);
    }

    // --- the view --------------------------------------------------------------------------------------

    std::size_t live_count() const noexcept { return live_.size() + 1; }

    void add_live(const node_id& id, entry& e) {
        if (e.live_index != npos || id == self_id()) return;
        e.live_index = live_.size();
        live_.push_back(id);
        // A newcomer goes to a random place in the probe order, so it is probed within one round.
        const auto at = probe_order_.empty() ? 0 : t_.random().below(probe_order_.size() + 1);
        probe_order_.insert(probe_order_.begin() + static_cast<std::ptrdiff_t>(at), id);
        if (at < probe_index_) ++probe_index_;
    }

    void remove_live(entry& e) {
        if (e.live_index == npos) return;
        const auto index = e.live_index;
        const auto last = live_.back();
        live_[index] = last;
        members_.at(last).live_index = index;
        live_.pop_back();
        e.live_index = npos;
        refresh_digest_of(e);
    }

    member to_member(const node_id& id, const entry& e) const {
        member m;
        m.id = id;
        m.address = e.alive.address;
        m.state = e.state;
        m.incarnation = e.incarnation;
        m.meta = e.meta;
        m.since = e.since;
        return m;
    }

    void emit(event_kind kind, const node_id& id, const entry& e) {
        if (on_event_) on_event_(event{kind, to_member(id, e)});
    }

    unsigned transmit_limit() const noexcept {
        const auto scale = static_cast<unsigned>(std::ceil(std::log10(static_cast<double>(live_count()) + 1)));
        return cfg_.retransmit_multiplier * std::max(scale, 1u);
    }

    duration suspicion_min() const noexcept {
        const double n = std::max<double>(static_cast<double>(live_count()), 10.0);
        return std::chrono::duration_cast<duration>(cfg_.probe_interval * (cfg_.suspicion_multiplier * std::log10(n)));
    }

    // --- dissemination ---------------------------------------------------------------------------------

    static std::vector<std::byte> encode_one(auto&& write) {
        std::vector<std::byte> out;
        {
            wire::writer w(out);
            write(w);
        }
        return out;
    }

    void enqueue_alive(const detail::alive_claim& c) {
        state_queue_.push(detail::id_prefix(c.id), encode_one([&](wire::writer& w) { detail::encode(w, c); }));
    }
    void enqueue_accusation(message_type kind, const detail::accusation& a) {
        enqueue_accusation(kind, a, detail::id_prefix(a.target));
    }
    void enqueue_accusation(message_type kind, const detail::accusation& a, std::uint64_t key) {
        state_queue_.push(key, encode_one([&](wire::writer& w) { detail::encode(w, kind, a); }));
    }
    void enqueue_metadata(const node_id& id, std::uint64_t incarnation, const std::vector<std::byte>& meta) {
        payload_queue_.push(detail::id_prefix(id), encode_one([&](wire::writer& w) {
                                detail::encode(w, detail::metadata_message{id, incarnation, as_span(meta)});
                            }));
    }

    std::size_t max_plaintext() const noexcept {
        return std::min(cfg_.packet_size, t_.max_datagram_size()) - seal::overhead;
    }

    /// Seals and sends `plain_` (already holding the primary message, if any) after piggy-backing updates.
    void send_packet(const net::endpoint& to, bool piggyback = true) {
        if (piggyback) {
            const auto limit = transmit_limit();
            const auto room = max_plaintext() > plain_.size() ? max_plaintext() - plain_.size() : 0;
            // Metadata and other payloads keep half the room whenever they have something to send, so state
            // changes can never starve them; state changes go first so an alive claim precedes its metadata.
            const auto reserved = payload_queue_.empty() ? 0 : room / 2;
            auto append = [&](std::span<const std::byte> b) { plain_.insert(plain_.end(), b.begin(), b.end()); };
            // One fill per queue: a second pass over the state queue would pick the same updates again (they
            // stay queued until they reach their limit) and send each twice in one packet.
            std::size_t used = state_queue_.fill(room - reserved, 0, limit, append);
            payload_queue_.fill(room - used, 0, limit, append);
        }
        if (plain_.empty()) return;
        sealed_.resize(plain_.size() + seal::overhead);
        auto n = sealer_.seal(as_span(plain_), sealed_);
        plain_.clear();
        if (!n) {
            t_.log().error("membership: cannot seal a datagram: {}", n.error().message());
            return;
        }
        t_.send(to, {sealed_.data(), *n});
        ++stats_.packets_sent;
        stats_.bytes_sent += *n;
    }

    void write_frame(net::stream_id stream, const std::vector<std::byte>& plain) {
        auto sealed = sealer_.seal(as_span(plain));
        if (!sealed) {
            t_.log().error("membership: cannot seal a frame: {}", sealed.error().message());
            close_stream(stream);
            return;
        }
        stats_.bytes_sent += sealed->size();
        t_.write(stream, as_span(*sealed));
    }

    // --- refusals --------------------------------------------------------------------------------------

    void refuse(refusal why, const net::endpoint& from) {
        ++stats_.refused[static_cast<std::size_t>(why)];
        // One line per reason per minute: enough to diagnose a wrong key or label, never a flood.
        auto& last = last_refusal_log_[static_cast<std::size_t>(why)];
        if (last.time_since_epoch().count() == 0 || t_.now() - last >= std::chrono::minutes(1)) {
            last = t_.now();
            t_.log().warning("membership: refused traffic from {}: {} (counted in "
                             "swarm_membership_packets_refused_total{{reason=\"{}\"}})",
                             from.to_string(), describe(why), to_string(why));
        }
    }

    static std::string_view describe(refusal why) noexcept {
        switch (why) {
        case refusal::malformed: return "not a valid membership message";
        case refusal::wrong_cluster: return "sealed for another cluster label";
        case refusal::unknown_key: return "sealed with a key this node does not hold";
        case refusal::replayed: return "a replayed message";
        case refusal::authentication_failed: return "the seal does not verify";
        case refusal::bad_signature: return "a state claim whose signature does not verify";
        case refusal::unknown_signer: return "an accusation signed by an unknown member";
        case refusal::misdirected: return "a probe meant for another node";
        case refusal::busy: return "too many concurrent exchanges";
        }
        return "unknown";
    }

    static refusal refusal_for(boost::system::error_code ec) noexcept {
        if (ec == errc::wrong_cluster) return refusal::wrong_cluster;
        if (ec == errc::unknown_key) return refusal::unknown_key;
        if (ec == errc::replayed) return refusal::replayed;
        if (ec == errc::authentication_failed) return refusal::authentication_failed;
        return refusal::malformed;
    }

    // --- claims ----------------------------------------------------------------------------------------

    bool verify_alive(const detail::alive_claim& c) {
        if (node_id::from_public_key(c.signing_key) != c.id) return false;
        return cache_->verify(c.signing_key, as_span(detail::signed_bytes(c, label_hash_)), c.sig,
                              stats_.signatures_verified);
    }

    /// `from_exchange`: the claim came in a full state exchange rather than by gossip.
    void handle_alive(const detail::alive_claim& c, std::span<const std::byte> inline_meta, const net::endpoint& from,
                      bool from_exchange = false) {
        if (c.id == self_id()) {
            // A claim of ours with a higher incarnation (from a previous life): move past it.
            auto& me = members_.at(self_id());
            if (c.incarnation >= me.incarnation && c.sig != me.alive.sig && verify_alive(c)) {
                me.incarnation = c.incarnation + 1;
                announce_self();
            }
            return;
        }
        auto it = members_.find(c.id);
        if (it != members_.end()) {
            auto& e = it->second;
            if (t_.now() < e.quarantined_until) {
                // A removed grey member refuting: ignored. A third party passing its refutation on missed the
                // removal, so it is sent one.
                if (c.incarnation > e.incarnation && from != c.address &&
                    t_.now() - e.removal_resent >= removal_resend_interval) {
                    e.removal_resent = t_.now();
                    send_removal(e, from);
                }
                return;
            }
            // Cheap checks first: stale or already known claims need no signature check.
            if (c.incarnation < e.incarnation) return;
            if (c.incarnation == e.alive.incarnation && c.sig == e.alive.sig) {
                if (!inline_meta.empty()) accept_metadata(c.id, e, c.incarnation, inline_meta);
                return;
            }
            if (c.incarnation == e.incarnation && e.state != member_state::alive) return; // must refute higher
            if (c.incarnation <= e.alive.incarnation && e.state == member_state::alive) return;
        }
        if (!verify_alive(c)) return refuse(refusal::bad_signature, from);

        if (it == members_.end()) {
            entry e;
            e.alive = c;
            e.state = member_state::alive;
            e.incarnation = c.incarnation;
            e.since = t_.now();
            it = members_.emplace(c.id, std::move(e)).first;
            add_live(c.id, it->second);
            refresh_digest(c.id, it->second);
            // A member new to us but learned from a state exchange is not news to the cluster: the peer
            // knew it, and the member's own announcement is already spreading it. Re-gossiping it would make
            // every joiner re-send the whole view (N claims, ~16 times each, at N = 1,000); stragglers are
            // caught by the digest exchange instead. Changes to known members (rejoins after a partition,
            // refutations) are still gossiped below, so a healed partition spreads fast. Without digest
            // exchanges (memberlist's behaviour) re-gossip is the only way stragglers learn, so it stays.
            if (!from_exchange || !cfg_.digest_push_pull) enqueue_alive(c);
            emit(event_kind::joined, c.id, it->second);
            after_claim_metadata(c.id, it->second, inline_meta);
            return;
        }

        auto& e = it->second;
        if (c.address != e.alive.address) {
            const bool reclaimable = !is_live(e.state) && t_.now() - e.since >= cfg_.dead_node_reclaim;
            if (!reclaimable) {
                t_.log().warning("membership: member {} claims address {} but is known at {}; ignored until it "
                                 "has been gone {} s",
                                 c.id.short_string(), c.address.to_string(), e.alive.address.to_string(),
                                 std::chrono::duration_cast<std::chrono::seconds>(cfg_.dead_node_reclaim).count());
                return;
            }
        }
        const auto previous = e.state;
        const bool moved = c.address != e.alive.address;
        e.alive = c;
        e.state = member_state::alive;
        e.incarnation = c.incarnation;
        e.accused.reset();
        e.suspicion.reset();
        if (previous != member_state::alive) e.since = t_.now();
        add_live(c.id, e);
        refresh_digest(c.id, e);
        enqueue_alive(c);
        if (previous == member_state::dead || previous == member_state::left)
            emit(event_kind::rejoined, c.id, e);
        else if (previous == member_state::suspect)
            emit(event_kind::alive, c.id, e);
        else if (moved)
            emit(event_kind::updated, c.id, e);
        reschedule_suspicion();
        after_claim_metadata(c.id, e, inline_meta);
    }

    /// After an alive claim: take inline metadata, or fetch it when the claim names metadata we lack.
    void after_claim_metadata(const node_id& id, entry& e, std::span<const std::byte> inline_meta) {
        if (e.alive.meta_size == 0) {
            if (!e.meta_bytes.empty()) {
                e.meta_bytes.clear();
                e.meta.reset();
                e.meta_digest = {};
                emit(event_kind::updated, id, e);
            }
            return;
        }
        if (e.meta && e.meta_digest == e.alive.meta_digest) return;
        if (!inline_meta.empty() && accept_metadata(id, e, e.alive.incarnation, inline_meta)) return;
        if (e.alive.meta_size > cfg_.inline_metadata_bytes) fetch_metadata(id, e);
        // Smaller metadata follows the claim by gossip; reconnect_tick fetches whatever is still missing.
        meta_wanted_.push_back(id);
    }

    bool accept_metadata(const node_id& id, entry& e, std::uint64_t incarnation, std::span<const std::byte> bytes) {
        if (incarnation != e.alive.incarnation || bytes.size() != e.alive.meta_size) return false;
        if (e.meta && e.meta_digest == e.alive.meta_digest) return true;
        if (detail::hash16(bytes) != e.alive.meta_digest) return false;
        auto decoded = metadata::decode(bytes);
        if (!decoded) return false;
        e.meta_bytes.assign(bytes.begin(), bytes.end());
        e.meta_digest = e.alive.meta_digest;
        e.meta = std::make_shared<const metadata>(std::move(*decoded));
        if (bytes.size() <= cfg_.inline_metadata_bytes) enqueue_metadata(id, incarnation, e.meta_bytes);
        emit(event_kind::updated, id, e);
        return true;
    }

    void handle_metadata(const detail::metadata_message& m) {
        auto it = members_.find(m.id);
        if (it == members_.end() || m.id == self_id()) return;
        accept_metadata(m.id, it->second, m.incarnation, m.meta);
    }

    void handle_accusation(message_type kind, const detail::accusation& a, const net::endpoint& from) {
        if (a.target == self_id()) {
            auto& me = members_.at(self_id());
            if (leaving_) return;
            if (a.incarnation < me.incarnation) {
                // The accuser has not seen our newer claim (it was lost, or its retransmissions are spent):
                // send it again, or the accusation runs its course and we are declared dead at an
                // incarnation we left long ago. The claim is already signed; no new incarnation is needed.
                enqueue_alive(me.alive);
                return;
            }
            // Refute: a higher incarnation of our own alive claim overrides any accusation.
            me.incarnation = a.incarnation + 1;
            ++stats_.refutations;
            health_.apply(+1);
            announce_self();
            return;
        }
        auto it = members_.find(a.target);
        if (it == members_.end()) return;
        auto& e = it->second;
        if (kind == message_type::suspect) {
            const auto noted = note_evidence(a.target, e, a, from);
            if (noted == evidence::bad) return;
            // Evidence spreads whole: unlike the suspicion itself (keyed by its target, so a refutation
            // replaces it), each accuser's suspicion has its own key and outlives the refutation.
            if (noted == evidence::fresh)
                enqueue_accusation(kind, a, detail::id_prefix(a.target) ^ detail::id_prefix(a.accuser));
            if (e.state == member_state::dead) return; // the evidence removed it
        }
        if (a.incarnation < e.incarnation || !is_live(e.state)) return;
        if (kind == message_type::suspect && e.state == member_state::suspect && e.accused &&
            e.accused->accuser == a.accuser)
            return;

        if (a.accuser != self_id()) {
            auto signer = members_.find(a.accuser);
            if (signer == members_.end()) return refuse(refusal::unknown_signer, from);
            // A death declared by a member we hold dead (or removed as grey) comes from stale or bad paths:
            // a grey node declares healthy members dead whose refutations it could not hear. Its suspicions
            // still count, so the accused hears of them and refutes.
            if (kind == message_type::dead && a.accuser != a.target && !is_live(signer->second.state)) return;
            if (!cache_->verify(signer->second.alive.signing_key, as_span(detail::signed_bytes(kind, a, label_hash_)),
                                a.sig, stats_.signatures_verified))
                return refuse(refusal::bad_signature, from);
        }

        if (kind == message_type::suspect) {
            if (e.state == member_state::suspect) {
                if (e.suspicion && e.suspicion->confirm(a.accuser)) {
                    enqueue_accusation(kind, a); // others shorten their timers too
                    reschedule_suspicion();
                }
                return;
            }
            e.state = member_state::suspect;
            e.incarnation = a.incarnation;
            e.accused = a;
            e.since = t_.now();
            const auto min = suspicion_min();
            const auto max = std::chrono::duration_cast<duration>(min * cfg_.suspicion_max_multiplier);
            const auto expected = std::min<unsigned>(cfg_.suspicion_confirmations,
                                                     static_cast<unsigned>(std::max<std::size_t>(live_count(), 2) - 2));
            e.suspicion.emplace(a.accuser, t_.now(), min, max, expected);
            suspects_.insert(a.target);
            ++stats_.suspicions;
            enqueue_accusation(kind, a);
            emit(event_kind::suspect, a.target, e);
            reschedule_suspicion();
            return;
        }

        const bool left = a.accuser == a.target;
        e.state = left ? member_state::left : member_state::dead;
        e.incarnation = a.incarnation;
        e.accused = a;
        e.suspicion.reset();
        e.since = t_.now();
        remove_live(e);
        note_gone(a.target);
        enqueue_accusation(kind, a);
        emit(left ? event_kind::left : event_kind::failed, a.target, e);
        reschedule_suspicion();
    }

    // --- grey failures: removal on the evidence of many accusers ------------------------------------

    bool verify_accusation(message_type kind, const detail::accusation& a, const net::endpoint& from) {
        auto signer = members_.find(a.accuser);
        if (signer == members_.end()) {
            refuse(refusal::unknown_signer, from);
            return false;
        }
        if (!cache_->verify(signer->second.alive.signing_key, as_span(detail::signed_bytes(kind, a, label_hash_)),
                            a.sig, stats_.signatures_verified)) {
            refuse(refusal::bad_signature, from);
            return false;
        }
        return true;
    }

    enum class evidence { bad, known, fresh };

    /// Records a suspicion of a live member as evidence, even one its target has already refuted; removes the
    /// member once grey_accusers distinct accusers are on record within grey_window. `bad` when the
    /// suspicion's signature is bad (refused and counted), `fresh` when it came from a new accuser.
    evidence note_evidence(const node_id& target, entry& e, const detail::accusation& a, const net::endpoint& from) {
        if (cfg_.grey_accusers == 0 || !is_live(e.state) || a.accuser == target) return evidence::known;
        if (a.incarnation + evidence_incarnation_span < e.incarnation) return evidence::known;
        auto known = std::find_if(e.evidence.begin(), e.evidence.end(),
                                  [&](const auto& p) { return p.second.accuser == a.accuser; });
        if (known != e.evidence.end() && known->second.incarnation >= a.incarnation) return evidence::known;
        if (a.accuser != self_id()) {
            auto accuser = members_.find(a.accuser);
            if (accuser == members_.end()) return evidence::known; // the ordinary path counts it
            if (!is_live(accuser->second.state)) return evidence::known;
            if (!verify_accusation(message_type::suspect, a, from)) return evidence::bad;
        }
        const bool fresh = known == e.evidence.end();
        if (known != e.evidence.end())
            *known = {t_.now(), a};
        else
            e.evidence.emplace_back(t_.now(), a);
        // Entries older than the window stop counting but are kept (up to a bound), so that an old
        // accusation still circulating is recognised as known: forgotten, it would count again as fresh
        // evidence, be gossiped again, and old accusations could add up to a removal of a healthy member.
        const auto horizon = t_.now() - cfg_.grey_window;
        if (e.evidence.size() > max_evidence_kept) {
            std::sort(e.evidence.begin(), e.evidence.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
            e.evidence.resize(max_evidence_kept);
        }
        const auto recent = static_cast<std::size_t>(
            std::count_if(e.evidence.begin(), e.evidence.end(), [&](const auto& p) { return p.first >= horizon; }));
        if (recent >= cfg_.grey_accusers) {
            std::sort(e.evidence.begin(), e.evidence.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
            std::vector<detail::accusation> newest;
            for (std::size_t i = 0; i < cfg_.grey_accusers; ++i) newest.push_back(e.evidence[i].second);
            if (refuted_between(newest)) declare_removal(target, e);
        }
        return fresh ? evidence::fresh : evidence::known;
    }

    /// Grey, not gone: the accusations name more than one incarnation, so the member refuted while they
    /// gathered. A member cut off entirely never refutes; ordinary suspicion declares it dead, and it must
    /// not be quarantined for longer than the partition lasts.
    static bool refuted_between(const std::vector<detail::accusation>& evidence) {
        return std::any_of(evidence.begin(), evidence.end(),
                           [&](const auto& a) { return a.incarnation != evidence.front().incarnation; });
    }

    /// A removal travels in a datagram of its own: at up to ~1 KB it would rarely fit beside piggy-backed
    /// updates, and it must not wait behind them.
    void send_removal(const entry& e, const net::endpoint& to) {
        plain_ = e.removal;
        send_packet(to, false);
    }

    void declare_removal(const node_id& target, entry& e) {
        detail::removal m;
        m.claim.target = target;
        m.claim.incarnation = e.incarnation;
        m.claim.accuser = self_id();
        m.claim.sig = self_->sign(detail::signed_bytes(message_type::removal, m.claim, label_hash_));
        // The newest accusations: they name incarnations closest to the one removed.
        std::sort(e.evidence.begin(), e.evidence.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
        for (std::size_t i = 0; i < cfg_.grey_accusers; ++i) m.evidence.push_back(e.evidence[i].second);
        apply_removal(target, e, m);
    }

    void handle_removal(const detail::removal& m, const net::endpoint& from) {
        if (cfg_.grey_accusers == 0) return; // the rule is off here: this node keeps to refutable suspicion
        // About us: others ignore our refutations for a while; state exchanges tell us we are dead afterwards,
        // and the refutation then gets us back in.
        if (m.claim.target == self_id()) return;
        auto it = members_.find(m.claim.target);
        if (it == members_.end()) return;
        auto& e = it->second;
        if (e.state == member_state::left || t_.now() < e.quarantined_until) return;
        if (e.removed_incarnation && m.claim.incarnation <= *e.removed_incarnation) return; // applied before
        if (m.claim.incarnation + evidence_incarnation_span < e.incarnation) return;        // stale
        if (m.evidence.size() < cfg_.grey_accusers) return; // a peer with a lower threshold: not enough here
        if (!verify_accusation(message_type::removal, m.claim, from)) return;
        std::vector<node_id> accusers;
        for (const auto& a : m.evidence) {
            if (a.target != m.claim.target || a.accuser == a.target ||
                a.incarnation + evidence_incarnation_span < m.claim.incarnation) {
                refuse(refusal::bad_signature, from);
                return;
            }
            if (!verify_accusation(message_type::suspect, a, from)) return;
            accusers.push_back(a.accuser);
        }
        std::sort(accusers.begin(), accusers.end());
        if (std::unique(accusers.begin(), accusers.end()) - accusers.begin() <
            static_cast<std::ptrdiff_t>(cfg_.grey_accusers))
            return refuse(refusal::bad_signature, from); // one accuser counted twice is no evidence
        if (!refuted_between(m.evidence)) return; // the member never refuted: not grey, ordinary death applies
        apply_removal(m.claim.target, e, m);
    }

    void apply_removal(const node_id& target, entry& e, const detail::removal& m) {
        ++stats_.removals;
        e.quarantined_until = t_.now() + cfg_.grey_quarantine;
        e.removed_incarnation = m.claim.incarnation;
        e.removal = encode_one([&](wire::writer& w) { detail::encode(w, m); });
        e.removal_resent = t_.now();
        e.evidence.clear();
        // Every member that applies a removal passes it to a few random others once: an epidemic that
        // reaches nearly everyone in a few hops; stragglers get it when they pass on a refutation.
        for (std::size_t i = 0; i < cfg_.gossip_nodes + 1 && !live_.empty(); ++i) {
            const auto& to = live_[t_.random().below(live_.size())];
            if (to != target) send_removal(e, members_.at(to).alive.address);
        }
        if (!is_live(e.state)) return;
        // In state exchanges the member is dead by our own signed claim: the removal is signed in another
        // domain, and a peer that has not seen it treats this as an ordinary (refutable) death.
        detail::accusation d;
        d.target = target;
        d.incarnation = e.incarnation;
        d.accuser = self_id();
        d.sig = self_->sign(detail::signed_bytes(message_type::dead, d, label_hash_));
        e.state = member_state::dead;
        e.accused = d;
        e.suspicion.reset();
        e.since = t_.now();
        remove_live(e);
        note_gone(target);
        emit(event_kind::failed, target, e);
        reschedule_suspicion();
    }

    void accuse(message_type kind, const node_id& target) {
        auto it = members_.find(target);
        if (it == members_.end() || !is_live(it->second.state)) return;
        detail::accusation a;
        a.target = target;
        a.incarnation = it->second.incarnation;
        a.accuser = self_id();
        a.sig = self_->sign(detail::signed_bytes(kind, a, label_hash_));
        handle_accusation(kind, a, t_.local_endpoint());
    }

    void reschedule_suspicion() {
        std::optional<time_point> next;
        for (auto it = suspects_.begin(); it != suspects_.end();) {
            auto m = members_.find(*it);
            if (m == members_.end() || m->second.state != member_state::suspect || !m->second.suspicion) {
                it = suspects_.erase(it);
                continue;
            }
            const auto d = m->second.suspicion->deadline();
            if (!next || d < *next) next = d;
            ++it;
        }
        if (next)
            t_.set_timer(suspicion_check, *next);
        else
            t_.cancel_timer(suspicion_check);
    }

    void on_suspicion_check() {
        std::vector<node_id> expired;
        for (const auto& id : suspects_) {
            auto m = members_.find(id);
            if (m != members_.end() && m->second.state == member_state::suspect && m->second.suspicion &&
                m->second.suspicion->deadline() <= t_.now())
                expired.push_back(id);
        }
        for (const auto& id : expired) accuse(message_type::dead, id);
        reschedule_suspicion();
    }

    // --- probing ---------------------------------------------------------------------------------------

    std::optional<node_id> next_probe_target() {
        for (std::size_t attempts = 0; attempts <= probe_order_.size() + 1; ++attempts) {
            if (probe_index_ >= probe_order_.size()) {
                // A new round: the current live set in a fresh random order.
                probe_order_ = live_;
                std::sort(probe_order_.begin(), probe_order_.end());
                for (std::size_t i = probe_order_.size(); i > 1; --i)
                    std::swap(probe_order_[i - 1], probe_order_[t_.random().below(i)]);
                probe_index_ = 0;
                if (probe_order_.empty()) return std::nullopt;
            }
            const auto id = probe_order_[probe_index_++];
            auto it = members_.find(id);
            if (it != members_.end() && is_live(it->second.state)) return id;
        }
        return std::nullopt;
    }

    void on_probe_tick() {
        conclude_probe();
        t_.set_timer(probe_tick, t_.now() + health_.scale(cfg_.probe_interval));
        auto target = next_probe_target();
        if (!target) return;
        const auto& e = members_.at(*target);
        probe_ = probe{next_sequence_++, *target, false, 0, 0};
        ++stats_.probes;
        {
            wire::writer w(plain_);
            detail::encode(w, detail::ping{probe_->sequence, detail::id_prefix(*target)});
            // The suspected member hears the accusation first, so it can refute it (Lifeguard's buddy system).
            if (e.state == member_state::suspect && e.accused) detail::encode(w, message_type::suspect, *e.accused);
        }
        send_packet(e.alive.address);
        t_.set_timer(probe_timeout, t_.now() + health_.scale(cfg_.probe_timeout));
    }

    void on_probe_timeout() {
        if (!probe_ || probe_->acked) return;
        auto it = members_.find(probe_->target);
        if (it == members_.end()) return;
        const auto target_address = it->second.alive.address;
        // Ask k other live members to probe on our behalf.
        std::vector<node_id> helpers;
        const auto wanted = std::min<std::size_t>(cfg_.indirect_checks, live_.size() > 0 ? live_.size() - 1 : 0);
        for (std::size_t tries = 0; helpers.size() < wanted && tries < 4 * wanted + 8; ++tries) {
            const auto& candidate = live_[t_.random().below(live_.size())];
            if (candidate == probe_->target) continue;
            if (members_.at(candidate).state != member_state::alive) continue;
            if (std::find(helpers.begin(), helpers.end(), candidate) != helpers.end()) continue;
            helpers.push_back(candidate);
        }
        for (const auto& helper : helpers) {
            {
                wire::writer w(plain_);
                detail::encode(w, detail::ping_req{probe_->sequence, probe_->target, target_address, cfg_.nacks});
            }
            send_packet(members_.at(helper).alive.address, false);
            ++stats_.indirect_probes;
        }
        if (cfg_.nacks) probe_->expected_nacks = static_cast<unsigned>(helpers.size());
        if (cfg_.tcp_fallback) {
            const auto stream = t_.connect(target_address);
            streams_[stream] = stream_context{stream_kind::tcp_probe, target_address,
                                              t_.now() + cfg_.probe_interval, probe_->sequence, probe_->target};
            ++stats_.tcp_probes;
        }
    }

    void conclude_probe() {
        if (!probe_) return;
        const auto p = *probe_;
        probe_.reset();
        if (p.acked) {
            health_.apply(-1);
            return;
        }
        ++stats_.probes_failed;
        // Missing nacks mean our own packets are not getting through: we are the likely problem.
        const int delta = p.expected_nacks > 0 ? static_cast<int>(p.expected_nacks - std::min(p.nacks, p.expected_nacks)) : 1;
        health_.apply(delta);
        accuse(message_type::suspect, p.target);
    }

    /// Views that differ for longer than gossip needs to carry a change everywhere (a few gossip rounds)
    /// are not converging by themselves: this node missed a claim whose retransmissions are spent, or its
    /// peers did. One digest exchange with the peer that differs settles it, well before the next periodic
    /// exchange. At most one such exchange per four probe intervals, so churn cannot turn acks into a storm.
    void compare_views(const detail::digest& theirs, std::uint64_t live, const net::endpoint& from) {
        if (theirs == view_digest() && live == live_count()) {
            differing_since_.reset();
            return;
        }
        const auto now = t_.now();
        if (!differing_since_) {
            differing_since_ = now;
            return;
        }
        const auto settle = cfg_.gossip_interval * 10;
        if (now - *differing_since_ < settle || now - last_early_exchange_ < cfg_.probe_interval * 4) return;
        last_early_exchange_ = now;
        differing_since_.reset();
        start_push_pull(from, stream_kind::digest_exchange);
    }

    void handle_ack(std::uint32_t sequence) {
        if (probe_ && probe_->sequence == sequence) {
            probe_->acked = true;
            return;
        }
        auto it = relays_.find(sequence);
        if (it == relays_.end()) return;
        const auto r = it->second;
        relays_.erase(it);
        {
            wire::writer w(plain_);
            detail::encode(w, message_type::ack, detail::ack{r.origin_sequence, {}, 0});
        }
        send_packet(r.origin, false);
    }

    void handle_ping_req(const detail::ping_req& m, const net::endpoint& from) {
        const auto sequence = next_sequence_++;
        relays_[sequence] = relay{m.sequence, from, t_.now() + cfg_.probe_timeout * 4 / 5,
                                  t_.now() + cfg_.probe_interval, m.want_nack};
        {
            wire::writer w(plain_);
            detail::encode(w, detail::ping{sequence, detail::id_prefix(m.target)});
        }
        send_packet(m.target_address, false);
        t_.set_timer(relay_check, t_.now() + cfg_.probe_timeout * 4 / 5);
    }

    void on_relay_check() {
        std::optional<time_point> next;
        for (auto it = relays_.begin(); it != relays_.end();) {
            auto& r = it->second;
            if (r.want_nack && r.nack_at <= t_.now()) {
                r.want_nack = false;
                {
                    wire::writer w(plain_);
                    detail::encode(w, message_type::nack, detail::ack{r.origin_sequence, {}, 0});
                }
                send_packet(r.origin, false);
            }
            if (r.expires <= t_.now()) {
                it = relays_.erase(it);
                continue;
            }
            const auto due = r.want_nack ? r.nack_at : r.expires;
            if (!next || due < *next) next = due;
            ++it;
        }
        if (next) t_.set_timer(relay_check, *next);
    }

    // --- gossip ----------------------------------------------------------------------------------------

    void on_gossip_tick() {
        t_.set_timer(gossip_tick, t_.now() + cfg_.gossip_interval);
        if (state_queue_.empty() && payload_queue_.empty()) return;
        gossip_round(cfg_.gossip_nodes);
    }

    void gossip_round(unsigned fanout) {
        std::vector<net::endpoint> targets;
        // Recently dead members still hear gossip, so they learn of their death and can refute it.
        std::vector<const entry*> recently_dead;
        for (const auto& id : recently_dead_) {
            auto it = members_.find(id);
            if (it != members_.end() && !is_live(it->second.state) && t_.now() - it->second.since < cfg_.gossip_to_dead)
                recently_dead.push_back(&it->second);
        }
        const auto pool = live_.size() + recently_dead.size();
        for (std::size_t tries = 0; targets.size() < std::min<std::size_t>(fanout, pool) && tries < 4u * fanout + 8; ++tries) {
            const auto pick = t_.random().below(pool);
            const auto& address = pick < live_.size() ? members_.at(live_[pick]).alive.address
                                                      : recently_dead[pick - live_.size()]->alive.address;
            if (std::find(targets.begin(), targets.end(), address) == targets.end()) targets.push_back(address);
        }
        for (const auto& to : targets) send_packet(to);
    }

    // --- datagrams -------------------------------------------------------------------------------------

    void on_datagram(const net::endpoint& from, std::span<const std::byte> payload) {
        ++stats_.packets_received;
        stats_.bytes_received += payload.size();
        auto opened = datagram_opener_.open(payload, received_);
        if (!opened) return refuse(refusal_for(opened.error()), from);

        wire::reader r(received_);
        for (std::size_t n = 0; r.remaining() > 0 && n < max_messages_per_packet && r.ok(); ++n) {
            auto m = r.begin_message(cfg_.max_metadata_bytes + 1024);
            if (!r.ok()) break;
            switch (static_cast<message_type>(m.type)) {
            case message_type::ping: {
                detail::ping p;
                detail::decode_body(r, p);
                if (!r.ok()) break;
                if (p.target != detail::id_prefix(self_id())) {
                    refuse(refusal::misdirected, from);
                    break;
                }
                pending_ack_ = std::pair{from, p.sequence};
                break;
            }
            case message_type::ping_req: {
                detail::ping_req p;
                detail::decode_body(r, p);
                if (r.ok()) handle_ping_req(p, from);
                break;
            }
            case message_type::ack: {
                detail::ack a;
                detail::decode_body(r, a);
                if (r.ok()) handle_ack(a.sequence);
                if (r.ok() && a.view) compare_views(*a.view, a.live, from);
                break;
            }
            case message_type::nack: {
                detail::ack a;
                detail::decode_body(r, a);
                if (r.ok() && probe_ && probe_->sequence == a.sequence) ++probe_->nacks;
                break;
            }
            case message_type::alive: {
                detail::alive_claim c;
                detail::decode_body(r, c);
                if (r.ok()) handle_alive(c, {}, from);
                break;
            }
            case message_type::suspect:
            case message_type::dead: {
                detail::accusation a;
                detail::decode_body(r, a);
                if (r.ok()) handle_accusation(static_cast<message_type>(m.type), a, from);
                break;
            }
            case message_type::metadata: {
                detail::metadata_message md;
                detail::decode_body(r, md, cfg_.max_metadata_bytes);
                if (r.ok()) handle_metadata(md);
                break;
            }
            case message_type::removal: {
                detail::removal rm;
                detail::decode_body(r, rm);
                if (r.ok()) handle_removal(rm, from);
                break;
            }
            default:
                break; // a type from a newer version: skipped whole
            }
            r.end_message(m, wire::trailing::skip);
        }
        if (!r.ok()) refuse(refusal::malformed, from);
        // The ack goes out after every update in the packet is applied, carrying our own updates back.
        if (pending_ack_) {
            const auto [to, sequence] = *pending_ack_;
            pending_ack_.reset();
            {
                wire::writer w(plain_);
                detail::ack a{sequence, {}, 0};
                if (cfg_.digest_push_pull) {
                    a.view = view_digest();
                    a.live = live_count();
                }
                detail::encode(w, message_type::ack, a);
            }
            send_packet(to);
        }
    }

    // --- streams: push-pull, joining, tcp probes, metadata ---------------------------------------------

    std::vector<std::byte> encode_state(message_type kind) {
        // Sorted, so the bytes do not depend on hash-table order. Pointers are sorted, not records: swapping
        // ~300-byte records was a visible share of a full exchange at N = 1,000.
        std::vector<const std::pair<const node_id, entry>*> order;
        order.reserve(members_.size());
        for (const auto& member : members_) order.push_back(&member);
        std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
        std::vector<detail::member_record> records;
        records.reserve(order.size());
        for (const auto* member : order) {
            const auto& e = member->second;
            detail::member_record rec;
            rec.alive = e.alive;
            rec.state = e.state;
            rec.accused = e.accused;
            if (e.meta_bytes.size() <= cfg_.inline_metadata_bytes) rec.meta = as_span(e.meta_bytes);
            records.push_back(rec);
        }
        return encode_one([&](wire::writer& w) { detail::encode(w, kind, std::span<const detail::member_record>(records)); });
    }

    void merge_state(const std::vector<detail::member_record>& records, const net::endpoint& from) {
        // Alive claims first, so every accuser is known before its accusations are checked.
        for (const auto& rec : records) handle_alive(rec.alive, rec.meta, from, true);
        for (const auto& rec : records) {
            if (rec.state == member_state::alive || !rec.accused) continue;
            handle_accusation(rec.state == member_state::suspect ? message_type::suspect : message_type::dead,
                              *rec.accused, from);
        }
    }

    void start_push_pull(const net::endpoint& to, stream_kind kind) {
        const auto stream = t_.connect(to);
        streams_[stream] = stream_context{kind, to, t_.now() + cfg_.stream_timeout, 0, {}};
    }

    void fetch_metadata(const node_id& id, const entry& e) {
        if (meta_fetches_ >= max_concurrent_meta_fetches) return;
        for (const auto& [sid, ctx] : streams_)
            if (ctx.kind == stream_kind::meta_fetch && ctx.subject == id) return;
        const auto stream = t_.connect(e.alive.address);
        streams_[stream] = stream_context{stream_kind::meta_fetch, e.alive.address, t_.now() + cfg_.stream_timeout, 0, id};
        ++meta_fetches_;
    }

    void on_stream_open(net::stream_id stream, const net::endpoint& peer, bool inbound) {
        if (inbound) {
            streams_[stream] = stream_context{stream_kind::inbound, peer, t_.now() + cfg_.stream_timeout, 0, {}};
            return;
        }
        auto it = streams_.find(stream);
        if (it == streams_.end()) return close_stream(stream);
        auto& ctx = it->second;
        switch (ctx.kind) {
        case stream_kind::push_pull:
        case stream_kind::join:
            ++stats_.push_pulls;
            write_frame(stream, encode_state(message_type::push_pull));
            break;
        case stream_kind::digest_exchange:
            ++stats_.push_pulls;
            write_frame(stream, encode_one([&](wire::writer& w) {
                            detail::encode_view_digest(w, view_digest(), live_count());
                        }));
            break;
        case stream_kind::tcp_probe:
            write_frame(stream, encode_one([&](wire::writer& w) {
                            detail::encode(w, detail::ping{ctx.probe_sequence, detail::id_prefix(ctx.subject)});
                        }));
            break;
        case stream_kind::meta_fetch: {
            auto m = members_.find(ctx.subject);
            if (m == members_.end()) return close_stream(stream);
            write_frame(stream, encode_one([&](wire::writer& w) {
                            detail::encode_meta_request(w, ctx.subject, m->second.alive.incarnation);
                        }));
            break;
        }
        case stream_kind::inbound: break;
        }
    }

    void on_stream_frame(net::stream_id stream, std::span<const std::byte> frame) {
        auto it = streams_.find(stream);
        if (it == streams_.end()) return;
        auto& ctx = it->second;
        stats_.bytes_received += frame.size();
        std::vector<std::byte> plain;
        auto opened = stream_opener_.open(frame, plain);
        if (!opened) {
            refuse(refusal_for(opened.error()), ctx.peer);
            return close_stream(stream);
        }
        wire::reader r(plain);
        auto m = r.begin_message(plain.size());
        const auto type = static_cast<message_type>(m.type);
        bool keep_open = false;
        if (r.ok()) {
            switch (type) {
            case message_type::view_digest: {
                detail::digest theirs{};
                std::uint64_t live = 0;
                detail::decode_view_digest(r, theirs, live);
                if (!r.ok() || ctx.kind != stream_kind::inbound) break; // an echo: the views agree
                if (theirs == view_digest() && live == live_count()) {
                    write_frame(stream, encode_one([&](wire::writer& w) { detail::encode_view_digest(w, theirs, live); }));
                    break;
                }
                if (push_pull_in_ >= cfg_.max_concurrent_push_pull) {
                    refuse(refusal::busy, ctx.peer);
                    break;
                }
                // The views differ: ours goes out now, theirs comes back on the same stream.
                ctx.push_pull_in = true;
                ++push_pull_in_;
                ctx.awaiting_state = true;
                keep_open = true;
                write_frame(stream, encode_state(message_type::push_pull));
                break;
            }
            case message_type::push_pull:
            case message_type::push_pull_reply: {
                if (type == message_type::push_pull_reply && ctx.kind == stream_kind::inbound && !ctx.awaiting_state)
                    break; // nobody asked
                if (type == message_type::push_pull && ctx.kind == stream_kind::inbound) {
                    if (push_pull_in_ >= cfg_.max_concurrent_push_pull) {
                        refuse(refusal::busy, ctx.peer);
                        break;
                    }
                    ctx.push_pull_in = true;
                    ++push_pull_in_;
                }
                std::vector<detail::member_record> records;
                detail::decode_body(r, records, max_members_in_state, cfg_.max_metadata_bytes);
                if (!r.ok()) break;
                if (type == message_type::push_pull && ctx.kind == stream_kind::digest_exchange) {
                    // Our digest differed from the peer's: the view is still changing (a bootstrap, a heal),
                    // so exchange again after one probe interval rather than a whole push-pull interval,
                    // until an exchange finds the views equal. This is what catches members that bounded
                    // gossip missed, and it stops by itself: in sync, exchanges are two digests.
                    t_.set_timer(push_pull_tick, t_.now() + cfg_.probe_interval);
                }
                if (type == message_type::push_pull &&
                    (ctx.kind == stream_kind::inbound || ctx.kind == stream_kind::digest_exchange)) {
                    // Reply with our state as it was before the merge: what the peer lacks.
                    write_frame(stream, encode_state(message_type::push_pull_reply));
                }
                merge_state(records, ctx.peer);
                if (ctx.kind == stream_kind::join) {
                    joined_ = true;
                    t_.cancel_timer(join_retry);
                    // The seed's view is a snapshot: members joining at the same time are missing from it. A
                    // digest exchange within a probe interval (then again while views differ) completes it
                    // at the cost of two digests when the snapshot was already whole.
                    if (cfg_.digest_push_pull)
                        t_.set_timer(push_pull_tick, t_.now() + random_below(cfg_.probe_interval));
                }
                break;
            }
            case message_type::ping: {
                detail::ping p;
                detail::decode_body(r, p);
                if (!r.ok()) break;
                if (p.target != detail::id_prefix(self_id())) {
                    refuse(refusal::misdirected, ctx.peer);
                    break;
                }
                write_frame(stream, encode_one([&](wire::writer& w) {
                                detail::encode(w, message_type::tcp_ack, detail::ack{p.sequence, {}, 0});
                            }));
                break;
            }
            case message_type::tcp_ack: {
                detail::ack a;
                detail::decode_body(r, a);
                if (r.ok() && ctx.kind == stream_kind::tcp_probe && probe_ && probe_->sequence == a.sequence)
                    probe_->acked = true;
                break;
            }
            case message_type::meta_request: {
                node_id id;
                std::uint64_t incarnation = 0;
                detail::decode_meta_request(r, id, incarnation);
                if (!r.ok()) break;
                auto mi = members_.find(id);
                if (mi == members_.end() || mi->second.meta_bytes.empty()) break;
                write_frame(stream, encode_one([&](wire::writer& w) {
                                detail::encode(w, detail::metadata_message{id, mi->second.alive.incarnation,
                                                                           as_span(mi->second.meta_bytes)});
                            }));
                break;
            }
            case message_type::metadata: {
                detail::metadata_message md;
                detail::decode_body(r, md, cfg_.max_metadata_bytes);
                if (r.ok() && ctx.kind == stream_kind::meta_fetch && md.id == ctx.subject) handle_metadata(md);
                break;
            }
            default: break;
            }
        }
        if (r.ok()) r.end_message(m, wire::trailing::skip);
        if (!r.ok()) refuse(refusal::malformed, ctx.peer);
        // Every exchange is one frame each way: whoever has answered, or has its answer, closes. A digest
        // exchange whose digests differ is the one exception: digest, state, state.
        if (!keep_open || !r.ok()) close_stream(stream);
    }

    /// Forgets a stream's context; the same whether we closed it or the driver reports it gone.
    void forget_stream(net::stream_id stream) {
        auto it = streams_.find(stream);
        if (it == streams_.end()) return;
        if (it->second.push_pull_in) --push_pull_in_;
        if (it->second.kind == stream_kind::meta_fetch) --meta_fetches_;
        streams_.erase(it);
    }

    void close_stream(net::stream_id stream) {
        forget_stream(stream);
        t_.close(stream);
    }

    void on_stream_closed(net::stream_id stream, boost::system::error_code) { forget_stream(stream); }

    void on_stream_check() {
        t_.set_timer(stream_check, t_.now() + std::chrono::seconds(1));
        std::vector<net::stream_id> expired;
        for (const auto& [id, ctx] : streams_)
            if (ctx.deadline <= t_.now()) expired.push_back(id);
        std::sort(expired.begin(), expired.end());
        for (auto id : expired) close_stream(id);
    }

    // --- anti-entropy, joining, healing ----------------------------------------------------------------

    /// An order-independent summary of the live view, this node included: the XOR of a hash of each live
    /// member's id and alive incarnation, kept up to date as members change (a full recount would cost O(N)
    /// per exchange). Two nodes whose digests agree know the same members at the same incarnations, so a
    /// full exchange between them would change nothing that gossip is not already carrying.
    const detail::digest& view_digest() const noexcept { return view_digest_; }

    void refresh_digest(const node_id& id, entry& e) {
        auto fold = [&](const detail::digest& term) {
            for (std::size_t i = 0; i < term.size(); ++i) view_digest_[i] ^= term[i];
        };
        if (e.in_digest) fold(e.digest_term);
        e.in_digest = id == self_id() || e.live_index != npos;
        if (!e.in_digest) return;
        std::array<std::byte, node_id::size + 8> buf{};
        std::memcpy(buf.data(), id.bytes().data(), node_id::size);
        for (std::size_t i = 0; i < 8; ++i) buf[node_id::size + i] = static_cast<std::byte>(e.alive.incarnation >> (8 * i));
        e.digest_term = detail::hash16(buf);
        fold(e.digest_term);
    }

    /// For a member leaving the live set: only its term needs to go.
    void refresh_digest_of(entry& e) {
        if (!e.in_digest) return;
        for (std::size_t i = 0; i < e.digest_term.size(); ++i) view_digest_[i] ^= e.digest_term[i];
        e.in_digest = false;
    }

    duration push_pull_period() const {
        const double n = static_cast<double>(live_count());
        if (n <= 32 || cfg_.digest_push_pull) return cfg_.push_pull_interval;
        const double scale = std::ceil(std::log2(n) - std::log2(32.0)) + 1;
        return std::chrono::duration_cast<duration>(cfg_.push_pull_interval * scale);
    }

    duration random_below(duration d) {
        return duration(static_cast<duration::rep>(
            t_.random().below(static_cast<std::uint64_t>(std::max<duration::rep>(d.count(), 1)))));
    }

    void on_push_pull_tick() {
        t_.set_timer(push_pull_tick, t_.now() + push_pull_period());
        if (live_.empty()) return;
        const auto& id = live_[t_.random().below(live_.size())];
        start_push_pull(members_.at(id).alive.address,
                        cfg_.digest_push_pull ? stream_kind::digest_exchange : stream_kind::push_pull);
    }

    void on_join_retry() {
        if (joined_ || seeds_.empty()) return;
        for (const auto& seed : seeds_)
            if (seed != t_.local_endpoint()) start_push_pull(seed, stream_kind::join);
        // A random point in the second half of the backoff: nodes started together (or refused together by a
        // busy seed) spread their retries out instead of arriving together again, twice as late each time.
        const auto half = join_backoff_ / 2;
        const auto spread = static_cast<std::uint64_t>(std::max<duration::rep>(half.count(), 1));
        t_.set_timer(join_retry, t_.now() + half + duration(static_cast<duration::rep>(t_.random().below(spread))));
        join_backoff_ = std::min(join_backoff_ * 2, cfg_.join_retry_max);
    }

    void on_reconnect_tick() {
        t_.set_timer(reconnect_tick, t_.now() + cfg_.reconnect_interval);
        reap_tombstones();
        // A member we think dead may be alive across a healed partition: one exchange merges both views.
        std::vector<const entry*> dead;
        for (const auto& id : recently_dead_) {
            auto it = members_.find(id);
            if (it != members_.end() && it->second.state == member_state::dead) dead.push_back(&it->second);
        }
        if (!dead.empty()) start_push_pull(dead[t_.random().below(dead.size())]->alive.address, stream_kind::push_pull);
        else if (live_.empty() && !seeds_.empty())
            start_push_pull(seeds_[t_.random().below(seeds_.size())], stream_kind::push_pull);
        // Metadata still missing after gossip had its chance. Only members whose claims named metadata we did
        // not have are looked at: scanning the whole view every tick was a hot spot at N = 1,000.
        std::sort(meta_wanted_.begin(), meta_wanted_.end());
        meta_wanted_.erase(std::unique(meta_wanted_.begin(), meta_wanted_.end()), meta_wanted_.end());
        std::erase_if(meta_wanted_, [&](const node_id& id) {
            auto it = members_.find(id);
            if (it == members_.end() || !is_live(it->second.state)) return true;
            auto& e = it->second;
            if (e.alive.meta_size == 0 || (e.meta && e.meta_digest == e.alive.meta_digest)) return true;
            fetch_metadata(id, e);
            return false;
        });
    }

    void reap_tombstones() {
        // Nothing dead or gone (the steady state): skip the scan of every member.
        if (members_.size() == live_.size() + 1) {
            recently_dead_.clear();
            return;
        }
        // recently_dead_ is rebuilt here: members dead or left, oldest first, bounded in count and age.
        std::vector<std::pair<time_point, node_id>> gone;
        for (const auto& [id, e] : members_)
            if (!is_live(e.state) && id != self_id()) gone.emplace_back(e.since, id);
        std::sort(gone.begin(), gone.end());
        std::size_t excess = gone.size() > cfg_.max_tombstones ? gone.size() - cfg_.max_tombstones : 0;
        recently_dead_.clear();
        for (const auto& [since, id] : gone) {
            if (excess > 0 || t_.now() - since >= cfg_.tombstone_ttl) {
                if (excess > 0) --excess;
                members_.erase(id);
                continue;
            }
            recently_dead_.push_back(id);
        }
    }

    void note_gone(const node_id& id) {
        if (std::find(recently_dead_.begin(), recently_dead_.end(), id) == recently_dead_.end())
            recently_dead_.push_back(id);
    }

    // --- lifecycle -------------------------------------------------------------------------------------

    void start() {
        entry me;
        me.state = member_state::alive;
        me.since = t_.now();
        members_.emplace(self_id(), std::move(me));
        sign_own_claim();
        // Random phases, so a thousand nodes started together do not probe in lockstep.
        auto phase = [&](duration period) {
            return t_.now() + duration(static_cast<duration::rep>(t_.random().below(
                                  static_cast<std::uint64_t>(std::max<duration::rep>(period.count(), 1)))));
        };
        t_.set_timer(probe_tick, phase(cfg_.probe_interval));
        t_.set_timer(gossip_tick, phase(cfg_.gossip_interval));
        t_.set_timer(push_pull_tick, phase(cfg_.push_pull_interval) + cfg_.push_pull_interval);
        t_.set_timer(reconnect_tick, phase(cfg_.reconnect_interval) + cfg_.reconnect_interval);
        t_.set_timer(stream_check, t_.now() + std::chrono::seconds(1));
        started_ = true;
        if (!cfg_.seeds.empty()) join(cfg_.seeds);
    }

    void join(std::vector<net::endpoint> seeds) {
        for (auto& s : seeds)
            if (std::find(seeds_.begin(), seeds_.end(), s) == seeds_.end()) seeds_.push_back(s);
        joined_ = false;
        join_backoff_ = cfg_.join_retry_interval;
        if (started_) on_join_retry();
    }

    result<void> set_metadata(const metadata& meta) {
        auto bytes = meta.encode();
        if (bytes.size() > cfg_.max_metadata_bytes) return make_error_code(errc::too_large);
        auto& me = members_.at(self_id());
        me.meta_bytes = std::move(bytes);
        me.meta_digest = detail::hash16(as_span(me.meta_bytes));
        me.meta = std::make_shared<const metadata>(meta);
        ++me.incarnation;
        announce_self();
        return {};
    }

    void leave() {
        if (leaving_) return;
        leaving_ = true;
        auto& me = members_.at(self_id());
        detail::accusation a;
        a.target = self_id();
        a.incarnation = me.incarnation;
        a.accuser = self_id();
        a.sig = self_->sign(detail::signed_bytes(message_type::dead, a, label_hash_));
        me.state = member_state::left;
        me.accused = a;
        enqueue_accusation(message_type::dead, a);
        // Say it now to more members than one gossip round would, rather than hoping a tick comes.
        gossip_round(cfg_.gossip_nodes * 2);
    }

    net::transport& t_;
    std::shared_ptr<const identity> self_;
    config cfg_;
    event_handler on_event_;
    std::shared_ptr<signature_cache> cache_;
    seal::keyring keys_;
    seal::sealer sealer_;
    seal::opener datagram_opener_;
    seal::opener stream_opener_;
    detail::digest label_hash_{};
    detail::digest view_digest_{};
    detail::local_health health_;
    detail::broadcast_queue state_queue_;
    detail::broadcast_queue payload_queue_;

    std::unordered_map<node_id, entry> members_;
    std::vector<node_id> live_; // alive or suspect, self excluded
    std::vector<node_id> probe_order_;
    std::size_t probe_index_ = 0;
    std::vector<node_id> recently_dead_;
    std::vector<node_id> meta_wanted_; // members whose metadata may still be missing
    std::set<node_id> suspects_; // ordered, so expiry is processed in the same order on every run

    std::optional<probe> probe_;
    std::unordered_map<std::uint32_t, relay> relays_;
    std::uint32_t next_sequence_ = 1;
    std::unordered_map<net::stream_id, stream_context> streams_;
    std::size_t push_pull_in_ = 0;
    std::size_t meta_fetches_ = 0;

    std::vector<net::endpoint> seeds_;
    bool joined_ = false;
    duration join_backoff_{};
    bool started_ = false;
    bool leaving_ = false;

    std::vector<std::byte> plain_;
    std::vector<std::byte> sealed_;
    std::vector<std::byte> received_;
    std::optional<std::pair<net::endpoint, std::uint32_t>> pending_ack_;
    std::optional<time_point> differing_since_;
    time_point last_early_exchange_{};
    std::array<time_point, refusal_count> last_refusal_log_{};
    statistics stats_;
};

swim::swim(net::transport& transport, std::shared_ptr<const identity> self, seal::keyring keys, config cfg,
           event_handler on_event, std::shared_ptr<signature_cache> cache, std::uint64_t first_sequence)
    : impl_(std::make_unique<impl>(transport, std::move(self), std::move(keys), std::move(cfg),
                                   std::move(on_event), std::move(cache), first_sequence)) {}

swim::~swim() = default;

void swim::on_start() { impl_->start(); }
void swim::on_datagram(const net::endpoint& from, std::span<const std::byte> payload) { impl_->on_datagram(from, payload); }
void swim::on_timer(net::timer_id id) {
    switch (id) {
    case probe_tick: return impl_->on_probe_tick();
    case probe_timeout: return impl_->on_probe_timeout();
    case gossip_tick: return impl_->on_gossip_tick();
    case push_pull_tick: return impl_->on_push_pull_tick();
    case suspicion_check: return impl_->on_suspicion_check();
    case reconnect_tick: return impl_->on_reconnect_tick();
    case join_retry: return impl_->on_join_retry();
    case relay_check: return impl_->on_relay_check();
    case stream_check: return impl_->on_stream_check();
    default: return;
    }
}
void swim::on_stream_open(net::stream_id s, const net::endpoint& peer, bool inbound) { impl_->on_stream_open(s, peer, inbound); }
void swim::on_stream_frame(net::stream_id s, std::span<const std::byte> frame) { impl_->on_stream_frame(s, frame); }
void swim::on_stream_closed(net::stream_id s, boost::system::error_code reason) { impl_->on_stream_closed(s, reason); }
void swim::on_stop() { impl_->leave(); }

void swim::join(std::vector<net::endpoint> seeds) { impl_->join(std::move(seeds)); }
result<void> swim::set_metadata(const metadata& meta) { return impl_->set_metadata(meta); }
void swim::leave() { impl_->leave(); }

std::vector<member> swim::members() const {
    std::vector<member> out;
    out.reserve(impl_->members_.size());
    for (const auto& [id, e] : impl_->members_) out.push_back(impl_->to_member(id, e));
    std::sort(out.begin(), out.end(), [](const member& a, const member& b) { return a.id < b.id; });
    return out;
}

std::optional<member> swim::find(const node_id& id) const {
    auto it = impl_->members_.find(id);
    if (it == impl_->members_.end()) return std::nullopt;
    return impl_->to_member(id, it->second);
}

std::size_t swim::live_count() const noexcept { return impl_->live_count(); }
const node_id& swim::id() const noexcept { return impl_->self_id(); }
std::uint64_t swim::incarnation() const noexcept { return impl_->members_.at(impl_->self_id()).incarnation; }
int swim::local_health() const noexcept { return impl_->health_.score(); }
const statistics& swim::stats() const noexcept { return impl_->stats_; }

} // namespace swarm::inline v0::membership
