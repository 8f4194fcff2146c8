// Where shards live: an interface with put/get/remove/list, so a remote store plugs in beside the local one.
#pragma once

#include <swarm/core/error.hpp>
#include <swarm/storage/config.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <vector>

namespace swarm::inline v0::storage {

/// One shard: stripe (the content-addressed chunk it encodes) and its index in 0..k+m-1.
struct shard_id {
    chunk_id chunk{};
    std::uint16_t index = 0;

    friend bool operator==(const shard_id&, const shard_id&) = default;
};

/// Each store is used from one thread at a time; distinct stores may be used from two threads at once (with
/// object_store_config::pipeline on, repair reads some shards of a stripe on a helper thread and the rest on
/// the caller's, and get reads the next stripe on the helper).
class shard_store {
public:
    virtual ~shard_store() = default;

    /// Stores the shard, replacing any copy; durable once sync() returns.
    virtual result<void> put(const shard_id& id, std::span<const std::byte> payload) = 0;
    /// Fills `out`, whose size must equal the stored length. not_found when absent; truncated or malformed
    /// when the stored copy is short, fails its checksum, or belongs to another shard: never torn bytes.
    virtual result<void> get(const shard_id& id, std::span<std::byte> out) = 0;
    /// Absent shards are not an error.
    virtual result<void> remove(const shard_id& id) = 0;
    virtual result<bool> contains(const shard_id& id) = 0;
    virtual result<std::vector<shard_id>> list() = 0;
    /// Makes every put and remove so far survive a crash.
    virtual result<void> sync() = 0;
    /// False when every call must come from one thread, even across different stores (a store driven by the
    /// simulator runs the simulation inside its calls); an object store then keeps its helper thread idle.
    virtual bool callable_from_any_thread() const noexcept { return true; }
    /// A hint that get(id) with an `out` of `length` bytes follows soon; a remote store starts fetching it so
    /// that the gets of one stripe overlap. Does nothing by default.
    virtual void prefetch(const shard_id& id, std::size_t length) { (void)id, (void)length; }

    // Reading the first shards to arrive. A store whose get() never waits keeps the defaults: every shard
    // counts as arrived at once.

    /// prefetch() that calls `arrived` once get(id) would no longer wait: on any thread, possibly before it
    /// returns, and at most once. `arrived` must be quick and take no lock.
    virtual void prefetch_notify(const shard_id& id, std::size_t length, std::function<void()> arrived) {
        prefetch(id, length);
        arrived();
    }
    /// Waits until `done()` holds while this store's transfers progress; false when the store gave up first
    /// (its wait limit). `done` must take no lock.
    virtual bool wait_until(const std::function<bool()>& done) { return done(); }
    /// The reply of a prefetch nobody will get() any more may be dropped.
    virtual void cancel_prefetch(const shard_id& id) { (void)id; }
};

/// A directory of shard files, each written to a temporary name, fsynced, renamed into place, and covered by
/// a directory fsync in sync(); each file carries its shard id, length and a CRC-64 of the payload.
detailed_result<std::unique_ptr<shard_store>> open_local_shard_store(const std::filesystem::path& directory);

} // namespace swarm::inline v0::storage
