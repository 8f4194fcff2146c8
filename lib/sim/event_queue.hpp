// The simulator's priority queue: a 4-ary min-heap of compact (time, sequence, index) keys.
//
// Four children per node halve the depth of a binary heap and keep the children of one node in one or two
// cache lines; the key is small so sifting moves little memory. The sequence number breaks ties in
// insertion order, which keeps runs deterministic and equal-time events first-in first-out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace swarm::inline v0::sim::detail {

struct queue_entry {
    std::int64_t time;
    std::uint64_t seq;
    std::uint32_t index;

    bool before(const queue_entry& other) const noexcept {
        return time < other.time || (time == other.time && seq < other.seq);
    }
};

class event_queue {
public:
    bool empty() const noexcept { return heap_.empty(); }
    std::size_t size() const noexcept { return heap_.size(); }
    const queue_entry& top() const noexcept { return heap_.front(); }

    void push(std::int64_t time, std::uint32_t index) {
        queue_entry entry{time, next_seq_++, index};
        std::size_t hole = heap_.size();
        heap_.push_back(entry);
        while (hole > 0) {
            std::size_t parent = (hole - 1) / 4;
            if (!entry.before(heap_[parent])) break;
            heap_[hole] = heap_[parent];
            hole = parent;
        }
        heap_[hole] = entry;
    }

    queue_entry pop() noexcept {
        queue_entry result = heap_.front();
        queue_entry last = heap_.back();
        heap_.pop_back();
        const std::size_t n = heap_.size();
        if (n == 0) return result;
        std::size_t hole = 0;
        for (;;) {
            std::size_t first = hole * 4 + 1;
            if (first >= n) break;
            std::size_t best = first;
            std::size_t end = first + 4 < n ? first + 4 : n;
            for (std::size_t c = first + 1; c < end; ++c)
                if (heap_[c].before(heap_[best])) best = c;
            if (!heap_[best].before(last)) break;
            heap_[hole] = heap_[best];
            hole = best;
        }
        heap_[hole] = last;
        return result;
    }

private:
    std::vector<queue_entry> heap_;
    std::uint64_t next_seq_ = 0;
};

} // namespace swarm::inline v0::sim::detail
