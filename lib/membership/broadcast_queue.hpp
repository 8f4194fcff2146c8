// Piggy-backed dissemination: what to attach to the next packet, fresh and rarely-sent updates first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <unordered_map>
#include <vector>

namespace swarm::inline v0::membership::detail {

/// A queue of encoded updates, each sent at most `limit` times. Selection order: fewest transmissions, then
/// newest, so a fresh update overtakes ones that most members already have. An update can name a key
/// (the member it is about); a newer update with the same key replaces the older one, so a refuted
/// suspicion is never sent after the refutation.
class broadcast_queue {
public:
    using key_type = std::uint64_t;

    void push(std::optional<key_type> key, std::vector<std::byte> encoded);

    /// Appends updates to `sink` (called with each update's bytes) while the next one fits in `budget`
    /// bytes, counting `overhead` extra per update. Every update sent gains one transmission; those that
    /// reach `limit` leave the queue. Returns the bytes used.
    template <class Sink>
    std::size_t fill(std::size_t budget, std::size_t overhead, unsigned limit, Sink&& sink);

    std::size_t size() const noexcept { return items_.size(); }
    bool empty() const noexcept { return items_.empty(); }
    void clear() noexcept;

private:
    struct order {
        unsigned transmits;
        std::uint64_t sequence; // larger is newer
        bool operator<(const order& o) const noexcept {
            return transmits != o.transmits ? transmits < o.transmits : sequence > o.sequence;
        }
    };
    struct item {
        std::optional<key_type> key;
        std::vector<std::byte> encoded;
        unsigned transmits = 0;
    };

    /// Forgets an item that is no longer in queue_.
    void erase_item(std::uint64_t sequence);

    std::set<order> queue_;
    std::unordered_map<std::uint64_t, item> items_; // by sequence
    std::unordered_map<key_type, std::uint64_t> by_key_;
    std::uint64_t next_sequence_ = 0;
    std::vector<order> sent_; // scratch, reused between calls
};

template <class Sink>
std::size_t broadcast_queue::fill(std::size_t budget, std::size_t overhead, unsigned limit, Sink&& sink) {
    std::size_t used = 0;
    sent_.clear();
    // A few updates that do not fit are skipped in favour of smaller ones further on; beyond that the
    // packet is as full as it will usefully get, and scanning a long queue would cost more than it saves.
    constexpr int max_skips = 8;
    int skips = 0;
    for (auto it = queue_.begin(); it != queue_.end() && skips < max_skips; ++it) {
        const auto& entry = items_.at(it->sequence);
        const std::size_t cost = entry.encoded.size() + overhead;
        if (used + cost > budget) {
            ++skips;
            continue;
        }
        sink(std::span<const std::byte>(entry.encoded));
        used += cost;
        sent_.push_back(*it);
    }
    for (const auto& position : sent_) {
        queue_.erase(position);
        if (position.transmits + 1 >= limit) {
            erase_item(position.sequence);
        } else {
            items_.at(position.sequence).transmits = position.transmits + 1;
            queue_.insert({position.transmits + 1, position.sequence});
        }
    }
    return used;
}

} // namespace swarm::inline v0::membership::detail
