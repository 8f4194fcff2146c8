// The simulator's priority queue over compact (time, sequence, index) keys.
//
// Most events (datagrams, stream frames) fall due within milliseconds, so the near future is a calendar: a
// ring of time buckets, each a plain vector, sorted only when the clock reaches it; pushing is an append and
// popping a sequential read, which keeps the working set in cache at 10,000 nodes where a heap of 40,000
// keys thrashes. Events beyond the ring's horizon wait in a 4-ary heap and move into the ring as it turns.
// The sequence number breaks ties in insertion order, so the order is total: runs are deterministic and
// equal-time events first-in first-out, exactly as with a single heap.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace swarm::inline v0::sim::detail {

/// 16 bytes: the time, then the insertion sequence (high 40 bits) and the event's index (low 24 bits).
struct queue_entry {
    std::int64_t time;
    std::uint64_t tie;

    std::uint32_t index() const noexcept { return static_cast<std::uint32_t>(tie & index_mask); }
    bool before(const queue_entry& other) const noexcept {
        return time < other.time || (time == other.time && tie < other.tie);
    }

    static constexpr int index_bits = 24;
    static constexpr std::uint64_t index_mask = (std::uint64_t{1} << index_bits) - 1;
};

class heap_queue {
public:
    bool empty() const noexcept { return heap_.empty(); }
    std::size_t size() const noexcept { return heap_.size(); }
    const queue_entry& top() const noexcept { return heap_.front(); }

    void push(const queue_entry& entry) {
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
};

class event_queue {
public:
    bool empty() const noexcept { return size_ == 0; }
    std::size_t size() const noexcept { return size_; }

    /// The earliest entry; the queue must not be empty.
    const queue_entry& top() {
        settle();
        return ring_[current_][pos_];
    }

    /// At most 2^24 events may wait at once (index < 2^24); the sequence lasts 2^40 pushes.
    void push(std::int64_t time, std::uint32_t index) {
        const queue_entry entry{time, (next_seq_++ << queue_entry::index_bits) | index};
        ++size_;
        if (time < base_) rebase(time);
        place(entry);
    }

    /// The entry `k` places after the next one, if it is already sorted in the current bucket; for prefetching.
    const queue_entry* ahead(std::size_t k) const noexcept {
        if (!active_) return nullptr;
        const auto& bucket = ring_[current_];
        return pos_ + k < bucket.size() ? &bucket[pos_ + k] : nullptr;
    }

    queue_entry pop() {
        settle();
        auto& bucket = ring_[current_];
        const queue_entry result = bucket[pos_++];
        if (pos_ == bucket.size()) {
            bucket.clear();
            pos_ = 0;
            active_ = false;
            bits_[current_ / 64] &= ~(std::uint64_t{1} << (current_ % 64));
        }
        --size_;
        return result;
    }

private:
    static constexpr int shift = 14; // 16.4 us per bucket
    static constexpr std::size_t buckets = 4096;
    static constexpr std::int64_t width = std::int64_t{1} << shift;
    static constexpr std::int64_t horizon = width * static_cast<std::int64_t>(buckets); // 67 ms

    static std::size_t slot_of(std::int64_t time) noexcept {
        return static_cast<std::size_t>(time >> shift) & (buckets - 1);
    }

    void place(const queue_entry& entry) {
        if (entry.time >= base_ + horizon) {
            far_.push(entry);
            return;
        }
        const std::size_t slot = slot_of(entry.time);
        auto& bucket = ring_[slot];
        if (active_ && slot == current_) {
            // The bucket being read is sorted: keep it so.
            auto at = std::upper_bound(bucket.begin() + static_cast<std::ptrdiff_t>(pos_), bucket.end(), entry,
                                       [](const queue_entry& a, const queue_entry& b) { return a.before(b); });
            bucket.insert(at, entry);
            return;
        }
        bucket.push_back(entry);
        bits_[slot / 64] |= std::uint64_t{1} << (slot % 64);
    }

    /// Makes ring_[current_][pos_] the earliest entry.
    void settle() {
        if (active_) return;
        const std::size_t distance = next_set(current_);
        if (distance == buckets) {
            // The ring is empty: jump to the far heap's first event.
            base_ = far_.top().time & ~(width - 1);
        } else {
            base_ += static_cast<std::int64_t>(distance) * width;
        }
        current_ = slot_of(base_);
        while (!far_.empty() && far_.top().time < base_ + horizon) place(far_.pop());
        auto& bucket = ring_[current_];
        std::sort(bucket.begin(), bucket.end(), [](const queue_entry& a, const queue_entry& b) { return a.before(b); });
        pos_ = 0;
        active_ = true;
    }

    /// Distance from `from` to the next non-empty bucket, cyclically; `buckets` when all are empty.
    std::size_t next_set(std::size_t from) const noexcept {
        for (std::size_t step = 0; step <= bits_.size(); ++step) {
            const std::size_t word = (from / 64 + step) % bits_.size();
            std::uint64_t bits = bits_[word];
            if (step == 0) bits &= ~std::uint64_t{0} << (from % 64);
            if (step == bits_.size()) bits &= (std::uint64_t{1} << (from % 64)) - 1;
            if (bits != 0) {
                const std::size_t slot = word * 64 + static_cast<std::size_t>(std::countr_zero(bits));
                return (slot + buckets - from) % buckets;
            }
        }
        return buckets;
    }

    /// An event earlier than the ring's window (scheduled between runs, after a look ahead moved the ring):
    /// everything goes back through the heap and the ring restarts at the new time. Rare by construction.
    void rebase(std::int64_t time) {
        for (auto& bucket : ring_) {
            for (const auto& e : bucket) far_.push(e);
            bucket.clear();
        }
        bits_.fill(0);
        active_ = false;
        pos_ = 0;
        base_ = time & ~(width - 1);
        current_ = slot_of(base_);
        while (!far_.empty() && far_.top().time < base_ + horizon) place(far_.pop());
    }

    std::array<std::vector<queue_entry>, buckets> ring_;
    std::array<std::uint64_t, buckets / 64> bits_{};
    heap_queue far_;
    std::int64_t base_ = 0;   // start of the current bucket's window
    std::size_t current_ = 0; // its slot
    std::size_t pos_ = 0;     // next entry to read in it, once sorted
    bool active_ = false;     // the current bucket is sorted and being read
    std::size_t size_ = 0;
    std::uint64_t next_seq_ = 0;
};

} // namespace swarm::inline v0::sim::detail
