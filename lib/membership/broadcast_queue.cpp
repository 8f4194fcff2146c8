#include "broadcast_queue.hpp"

namespace swarm::inline v0::membership::detail {

void broadcast_queue::push(std::optional<key_type> key, std::vector<std::byte> encoded) {
    if (key) {
        if (auto old = by_key_.find(*key); old != by_key_.end()) {
            const auto sequence = old->second;
            queue_.erase({items_.at(sequence).transmits, sequence});
            erase_item(sequence);
        }
    }
    const auto sequence = next_sequence_++;
    items_.emplace(sequence, item{key, std::move(encoded), 0});
    queue_.insert({0, sequence});
    if (key) by_key_[*key] = sequence;
}

void broadcast_queue::erase_item(std::uint64_t sequence) {
    auto it = items_.find(sequence);
    if (it == items_.end()) return;
    if (it->second.key) {
        auto k = by_key_.find(*it->second.key);
        if (k != by_key_.end() && k->second == sequence) by_key_.erase(k);
    }
    items_.erase(it);
}

void broadcast_queue::clear() noexcept {
    queue_.clear();
    items_.clear();
    by_key_.clear();
}

} // namespace swarm::inline v0::membership::detail
