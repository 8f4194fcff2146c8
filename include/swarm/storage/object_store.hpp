// Objects over N shard stores: streamed put and get, stat, list, delete with garbage collection, verify and
// repair. Single process, one thread at a time per object_store (which runs one helper thread of its own,
// see object_store_config::pipeline).
//
// Keys: each chunk is hashed with BLAKE2b keyed by the owner's convergence secret; the chunk id and the chunk's
// encryption key both derive from that hash, so an edited file re-uploaded by the same owner shares its
// unchanged chunks, while outsiders, lacking the secret, cannot confirm that a file is stored. Each object
// gets a random data key that seals its list of chunk keys in the manifest, and that data key is wrapped for
// each reader with an X25519 sealed box. So the manifest holds no secret beyond wrapped keys, and access is
// granted per object without re-encrypting any chunk.
//
// Stripes: a chunk is sealed, split into k data shards and extended with m parity shards; a placement
// function maps each (stripe, shard index) to a store. Objects up to inline_limit bytes are sealed into the
// manifest itself, which keeps many small objects near 1x on disk.
#pragma once

#include <swarm/core/error.hpp>
#include <swarm/core/metrics.hpp>
#include <swarm/storage/config.hpp>
#include <swarm/storage/shard_store.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::inline v0::storage {

struct object_store_config {
    erasure_config erasure;
    chunking_config chunking;
    cipher_suite cipher = cipher_suite::automatic; // recorded per object, so a store may mix suites
    compression_mode compression = compression_mode::automatic;
    std::size_t inline_limit = 16 * 1024; // objects this size or smaller live in their manifest
    /// Put hashes the next chunk, and get fetches and decodes the next stripe, on a second thread of the store
    /// while the calling thread finishes the current one. false keeps every step on the calling thread.
    bool pipeline = true;
    /// A stripe read asks for this many shards beyond k and decodes from the first k to arrive, so that many
    /// slow or stalled nodes do not hold a read back; when every node answers, each costs one shard's bytes
    /// in transfer per stripe. Stores whose gets never wait (local ones) are read k shards in order as before.
    /// At most the parity count.
    unsigned extra_reads = 2;

    detailed_result<void> validate() const;
};

/// Maps shard `index` of a stripe to one of `store_count` stores; shards of one stripe must land on distinct
/// stores. Stripes are content-addressed and shared between objects, so the stripe's chunk id stands for
/// (object, stripe). The default rotates the shard indices by the chunk id, spreading load.
using placement_function = std::function<std::size_t(const chunk_id& stripe, unsigned index, std::size_t store_count)>;

struct object_info {
    std::string name;
    std::uint64_t size = 0;
    std::uint64_t chunks = 0;     // 0 for an inline object
    std::uint64_t new_chunks = 0; // put only: chunks not already stored (the rest were deduplicated)
    std::uint64_t stored_bytes = 0; // put only: shard bytes written by this put
};

/// Called after each chunk with the plaintext bytes done so far; runs on the calling thread.
using progress_function = std::function<void(std::uint64_t bytes_done)>;

struct put_options {
    key32 convergence_secret{};      // the owner's
    std::vector<key32> readers;      // X25519 public keys allowed to read; at least one
    progress_function progress;
};

struct byte_range {
    std::uint64_t offset = 0;
    std::uint64_t length = UINT64_MAX; // to the end
};

struct verify_report {
    std::uint64_t stripes = 0;
    std::uint64_t missing_shards = 0;
    std::uint64_t corrupt_shards = 0;   // short, failed checksum, or another shard's bytes
    std::uint64_t inconsistent_stripes = 0; // every shard passes its checksum yet parity disagrees
    std::uint64_t unrecoverable_stripes = 0;
    std::uint64_t unreachable_shards = 0; // the store did not answer (a remote node down or cut off)
    bool healthy() const noexcept { return missing_shards + corrupt_shards + inconsistent_stripes + unreachable_shards == 0; }
};

struct repair_report {
    std::uint64_t stripes = 0;
    std::uint64_t shards_rebuilt = 0;
    std::uint64_t shards_read = 0;
    std::uint64_t bytes_read = 0;
    std::uint64_t bytes_written = 0;
    std::uint64_t unrecoverable_stripes = 0;
    std::uint64_t shards_relocated = 0; // rebuilt on another store than the one that lost them
};

/// Where repair writes a rebuilt shard: given the stripe, the shard's index and the store of each of the
/// stripe's shards (updated as earlier shards move), another store, or nullopt to rebuild it in place. This is
/// how repair moves shards off a failed node (see mesh_placement::relocation()).
using relocate_function =
    std::function<std::optional<std::size_t>(const chunk_id& stripe, unsigned index, std::span<const std::uint8_t> locations)>;

enum class repair_event_kind : std::uint8_t {
    stripe_scanned,       // after each stripe, whatever happened to it
    shard_rebuilt,        // one shard written back (to_store differs from from_store when it moved)
    stripe_unrecoverable, // fewer than k intact shards
};

struct repair_event {
    repair_event_kind kind = repair_event_kind::stripe_scanned;
    chunk_id stripe{};
    unsigned shard = 0;         // shard_rebuilt only
    std::size_t from_store = 0; // shard_rebuilt only: where the shard was
    std::size_t to_store = 0;   // shard_rebuilt only: where it is now
    repair_report totals;       // the run so far
};

struct repair_options {
    bool deep = false; // read every shard (finds silent corruption) instead of exactly k per stripe
    std::uint64_t max_bytes_per_second = 0; // shard bytes read plus written; 0 for no limit
    progress_function progress; // stripes done
    relocate_function relocate{}; // empty: rebuild every shard where it was
    /// Called on the repairing thread for each event, in order.
    std::function<void(const repair_event&)> on_event{};
    /// When set, the run adds to counters swarm_storage_repair_{stripes_scanned, shards_rebuilt,
    /// shards_relocated, bytes_read, bytes_written, stripes_unrecoverable}_total in it.
    metrics::registry* metrics = nullptr;
};

struct gc_report {
    std::uint64_t shards_removed = 0;
};

class object_store {
public:
    /// Opens (or creates) the catalog in `catalog_directory` over `stores`, which must number at least k+m.
    static detailed_result<object_store> open(const std::filesystem::path& catalog_directory,
                                              std::vector<std::unique_ptr<shard_store>> stores,
                                              object_store_config config = {}, placement_function placement = {});

    /// Adds a store (a node that joined the mesh) and returns its index, the next one: stores are never
    /// renumbered, since the catalog records shard locations as indices. New stripes may go to it at once;
    /// existing ones move only through repair's relocation. Call it between operations, from the thread
    /// that uses this object. invalid_argument for a null store; too_large beyond 256 stores.
    detailed_result<std::size_t> add_store(std::unique_ptr<shard_store> store);

    object_store(object_store&&) noexcept;
    object_store& operator=(object_store&&) noexcept;
    ~object_store();

    /// Streams `in` to the stores; the object becomes visible (replacing one of the same name) only once every
    /// shard is durable. On failure or crash nothing is visible; leftover shards go at the next
    /// collect_garbage().
    detailed_result<object_info> put(std::string_view name, std::istream& in, const put_options& options);
    detailed_result<object_info> put_file(std::string_view name, const std::filesystem::path& file,
                                          const put_options& options);

    /// Writes the range to `out`, reading only the stripes it covers; each stripe uses the first k intact
    /// shards and skips missing or corrupt ones. Returns the bytes written. authentication_failed when
    /// `reader` holds no wrapped key for the object; data_unavailable when a stripe has fewer than k.
    detailed_result<std::uint64_t> get(std::string_view name, std::ostream& out, const reader_keys& reader,
                                       byte_range range = {});
    detailed_result<std::uint64_t> get_file(std::string_view name, const std::filesystem::path& file,
                                            const reader_keys& reader, byte_range range = {});

    detailed_result<object_info> stat(std::string_view name);
    detailed_result<std::vector<object_info>> list(std::string_view prefix = {});
    /// Removes the object, then the shards no other object shares.
    detailed_result<void> remove(std::string_view name);

    /// Reads every shard of the object's stripes (or of all stripes when name is empty).
    detailed_result<verify_report> verify(std::string_view name = {});
    /// Rebuilds missing (and, when found, corrupt) shards of the object (or all stripes when name is empty).
    detailed_result<repair_report> repair(std::string_view name = {}, const repair_options& options = {});
    /// Removes shards that no object in this catalog references, such as those of a put that crashed. The
    /// stores therefore belong to one catalog: never share them with another object_store.
    detailed_result<gc_report> collect_garbage();

private:
    struct impl;
    explicit object_store(std::unique_ptr<impl>);
    std::unique_ptr<impl> impl_;
};

} // namespace swarm::inline v0::storage
