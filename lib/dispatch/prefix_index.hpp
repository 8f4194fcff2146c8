// The approximate record of which backend has which prompt blocks cached.
//
// One open-addressing table maps a block hash to up to four holders (backend slot + the backend's log tick
// when the block was last recorded). Each backend has a log of its last `capacity` recorded blocks; when a
// record falls off the end of its log and was not refreshed since, the backend stops holding that block.
// So a backend's record is bounded, and blocks leave it least-recently-routed first, as in an LRU cache.
// A block touched again while its record is in the newer half of the log is not re-logged: hot prefixes
// cost one table lookup per block, and their record is refreshed at least once per half log.
#pragma once

#include "dispatch/hash.hpp"

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <vector>

namespace swarm::inline v0::dispatch::detail {

class prefix_index {
public:
    static constexpr std::uint32_t no_slot = std::numeric_limits<std::uint32_t>::max();
    static constexpr std::size_t max_holders = 4;

    struct holder {
        std::uint32_t slot = no_slot;
        std::uint32_t tick = 0;
    };
    struct entry {
        std::uint64_t hash = 0; // 0: empty (block hashes are never 0)
        std::array<holder, max_holders> holders{};
    };

    explicit prefix_index(std::uint32_t capacity_per_backend) : capacity_(capacity_per_backend) {}

    bool empty() const noexcept { return used_ == 0; }
    std::size_t size() const noexcept { return used_; }

    const entry* find(std::uint64_t hash) const noexcept {
        for (std::size_t i = home(hash);; i = (i + 1) & mask()) {
            if (table_[i].hash == hash) return &table_[i];
            if (table_[i].hash == 0) return nullptr;
        }
    }

    /// Starts loading the line find(hash) will read first.
    void prefetch(std::uint64_t hash) const noexcept { __builtin_prefetch(&table_[home(hash)]); }

    /// Whether `slot` holds `hash` with a record young enough that touch() would skip it.
    bool recent(std::uint32_t slot, std::uint64_t hash) const noexcept {
        if (slot >= logs_.size()) return false;
        const entry* e = find(hash);
        if (!e) return false;
        for (const auto& h : e->holders)
            if (h.slot == slot && logs_[slot].tick - h.tick < capacity_ / 2) return true;
        return false;
    }

    /// Records that `slot` (now) holds `hash`.
    void touch(std::uint32_t slot, std::uint64_t hash) {
        if (slot >= logs_.size()) logs_.resize(std::size_t{slot} + 1);
        log& lg = logs_[slot];
        if (const entry* e = find(hash)) {
            for (const auto& h : e->holders)
                if (h.slot == slot && lg.tick - h.tick < capacity_ / 2) return; // recent enough
        }
        const std::uint32_t tick = append(slot, lg, hash); // may erase entries: look the block up afresh
        entry& e = find_or_insert(hash);
        holder* target = nullptr;
        for (auto& h : e.holders)
            if (h.slot == slot) target = &h;
        if (!target)
            for (auto& h : e.holders)
                if (h.slot == no_slot && !target) target = &h;
        if (!target) {
            // Full: replace the holder whose record is oldest relative to its own log.
            double oldest = -1.0;
            for (auto& h : e.holders) {
                const double age = static_cast<double>(logs_[h.slot].tick - h.tick);
                if (age > oldest) {
                    oldest = age;
                    target = &h;
                }
            }
        }
        *target = {slot, tick};
    }

    /// touch() for each hash in order. The table is large and its lines cold, so every line these touches
    /// will read (the blocks' home slots, and those of the records about to fall off the log) is prefetched
    /// first: the misses overlap instead of queueing one after another.
    void touch_all(std::uint32_t slot, std::span<const std::uint64_t> hashes) {
        for (const std::uint64_t h : hashes) __builtin_prefetch(&table_[home(h)]);
        if (slot < logs_.size() && logs_[slot].size == capacity_) {
            const log& lg = logs_[slot];
            const std::size_t n = std::min<std::size_t>(hashes.size(), capacity_);
            for (std::size_t k = 0; k < n; ++k) __builtin_prefetch(&table_[home(lg.at((lg.head + k) % capacity_).hash)]);
        }
        for (const std::uint64_t h : hashes) touch(slot, h);
    }

    /// Drops everything recorded for `slot`.
    void forget(std::uint32_t slot) {
        if (slot >= logs_.size()) return;
        const log& lg = logs_[slot];
        for (std::uint32_t i = 0; i < lg.size; ++i) release(slot, lg.at(i).hash, lg.at(i).tick, true);
        logs_[slot] = {};
    }

private:
    struct record {
        std::uint64_t hash;
        std::uint32_t tick;
    };
    // A log grows in fixed chunks (no reallocation, so no copy of a long log in the middle of a request),
    // up to capacity_ records, then wraps as a ring.
    static constexpr std::uint32_t chunk_bits = 9;
    static constexpr std::uint32_t chunk_size = 1U << chunk_bits;
    struct log {
        std::vector<std::unique_ptr<record[]>> chunks;
        std::uint32_t size = 0;
        std::uint32_t head = 0;      // next overwrite once full
        std::uint32_t tick = 0;      // records appended so far (wraps; ages are differences)

        record& at(std::uint32_t i) noexcept { return chunks[i >> chunk_bits][i & (chunk_size - 1)]; }
        const record& at(std::uint32_t i) const noexcept { return chunks[i >> chunk_bits][i & (chunk_size - 1)]; }
    };

    std::size_t mask() const noexcept { return table_.size() - 1; }
    std::size_t home(std::uint64_t hash) const noexcept { return static_cast<std::size_t>((hash * k0) >> shift_); }

    std::uint32_t append(std::uint32_t slot, log& lg, std::uint64_t hash) {
        const std::uint32_t tick = lg.tick++;
        if (lg.size < capacity_) {
            if ((lg.size & (chunk_size - 1)) == 0) lg.chunks.push_back(std::make_unique_for_overwrite<record[]>(chunk_size));
            lg.at(lg.size++) = {hash, tick};
            return tick;
        }
        const record old = lg.at(lg.head);
        lg.at(lg.head) = {hash, tick};
        lg.head = (lg.head + 1) % capacity_;
        release(slot, old.hash, old.tick, false);
        return tick;
    }

    // Removes `slot` from the block's holders when its record is this one (or any, for forget), and the
    // block from the table when nobody holds it any more.
    void release(std::uint32_t slot, std::uint64_t hash, std::uint32_t tick, bool any_tick) {
        std::size_t i = home(hash);
        while (table_[i].hash != hash) {
            if (table_[i].hash == 0) return;
            i = (i + 1) & mask();
        }
        bool held = false;
        for (auto& h : table_[i].holders) {
            if (h.slot == slot && (any_tick || h.tick == tick)) h = {};
            held = held || h.slot != no_slot;
        }
        if (!held) erase(i);
    }

    entry& find_or_insert(std::uint64_t hash) {
        if ((used_ + 1) * 2 > table_.size()) grow();
        std::size_t i = home(hash);
        while (table_[i].hash != hash) {
            if (table_[i].hash == 0) {
                table_[i].hash = hash;
                ++used_;
                break;
            }
            i = (i + 1) & mask();
        }
        return table_[i];
    }

    // Backward-shift deletion keeps linear probing free of tombstones.
    void erase(std::size_t i) {
        std::size_t j = i;
        for (;;) {
            j = (j + 1) & mask();
            if (table_[j].hash == 0) break;
            const std::size_t k = home(table_[j].hash);
            // table_[j] may move into the hole at i unless its home lies cyclically in (i, j].
            const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
            if (stays) continue;
            table_[i] = table_[j];
            i = j;
        }
        table_[i] = {};
        --used_;
    }

    void grow() {
        std::vector<entry> old(table_.size() * 2);
        old.swap(table_);
        --shift_;
        used_ = 0;
        for (const auto& e : old) {
            if (e.hash == 0) continue;
            find_or_insert(e.hash) = e;
        }
    }

    std::uint32_t capacity_;
    std::vector<entry> table_ = std::vector<entry>(initial_size);
    int shift_ = 64 - initial_bits;
    std::size_t used_ = 0;
    std::vector<log> logs_; // by slot

    static constexpr int initial_bits = 10;
    static constexpr std::size_t initial_size = std::size_t{1} << initial_bits;
};

} // namespace swarm::inline v0::dispatch::detail
