#include <swarm/storage/object_store.hpp>

#include "storage/catalog.hpp"
#include "storage/chunker.hpp"
#include "storage/crypto.hpp"
#include "storage/erasure.hpp"
#include "storage/helper_thread.hpp"
#include "storage/manifest.hpp"
#include "storage/repair_progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <chrono>
#include <cstring>
#include <exception>
#include <fstream>
#include <istream>
#include <ostream>
#include <set>
#include <thread>

namespace swarm::inline v0::storage {

using detail::manifest;
using detail::stripe_row;

detailed_result<void> erasure_config::validate() const {
    if (data_shards < 1) return error{errc::config_invalid_value, "erasure: data_shards must be at least 1"};
    if (parity_shards < 1) return error{errc::config_invalid_value, "erasure: parity_shards must be at least 1"};
    if (total() > 255)
        return error{errc::config_invalid_value,
                     fmt::format("erasure: {}+{} shards exceed the 255 that GF(2^8) allows", data_shards, parity_shards)};
    return {};
}

detailed_result<void> chunking_config::validate() const {
    if (min_size < 64) return error{errc::config_invalid_value, fmt::format("chunking: min_size {} is below 64", min_size)};
    if (max_size > 64 * 1024 * 1024)
        return error{errc::config_invalid_value, fmt::format("chunking: max_size {} is over 64 MiB", max_size)};
    if (!(min_size <= avg_size && avg_size <= max_size))
        return error{errc::config_invalid_value,
                     fmt::format("chunking: need min_size <= avg_size <= max_size, got {} {} {}", min_size, avg_size, max_size)};
    if (mode == chunking_mode::content_defined && (avg_size & (avg_size - 1)) != 0)
        return error{errc::config_invalid_value, fmt::format("chunking: avg_size {} is not a power of two", avg_size)};
    return {};
}

detailed_result<void> object_store_config::validate() const {
    if (auto r = erasure.validate(); !r) return r;
    if (auto r = chunking.validate(); !r) return r;
    if (cipher != cipher_suite::automatic && cipher != cipher_suite::xchacha20_poly1305 && cipher != cipher_suite::aes256_gcm)
        return error{errc::config_invalid_value, "cipher: unknown suite"};
    if (cipher != cipher_suite::automatic && !detail::cipher_available(cipher))
        return error{errc::config_invalid_value, "cipher: AES-256-GCM needs AES-NI, which this CPU lacks"};
    if (extra_reads > erasure.parity_shards)
        return error{errc::config_invalid_value,
                     fmt::format("extra_reads {} exceeds the {} parity shards", extra_reads, erasure.parity_shards)};
    if (inline_limit > chunking.max_size)
        return error{errc::config_invalid_value,
                     fmt::format("inline_limit {} exceeds chunking.max_size {}", inline_limit, chunking.max_size)};
    return {};
}

namespace {

constexpr std::size_t max_name = 1024;

std::size_t default_placement(const chunk_id& stripe, unsigned index, std::size_t store_count) {
    std::uint64_t rotation;
    std::memcpy(&rotation, stripe.data(), sizeof rotation);
    return static_cast<std::size_t>((rotation % store_count + index) % store_count);
}

std::span<std::byte> as_bytes(std::uint8_t* p, std::size_t n) { return {reinterpret_cast<std::byte*>(p), n}; }

std::vector<chunk_id> distinct_ids(const manifest& m) {
    if (m.is_inline) return {};
    std::vector<chunk_id> ids;
    ids.reserve(m.chunks.size());
    for (const auto& c : m.chunks) ids.push_back(c.id);
    std::ranges::sort(ids);
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

error io(std::string what) { return {errc::io_error, std::move(what)}; }

// A store that did not answer (a remote node down or cut off), as opposed to one that answered with bad bytes.
bool unreachable(boost::system::error_code e) {
    for (errc c : {errc::connection_refused, errc::connection_reset, errc::timed_out, errc::unreachable, errc::shut_down})
        if (e == c) return true;
    return false;
}

std::string hex_prefix(const chunk_id& id) { return fmt::format("{:02x}{:02x}{:02x}{:02x}", id[0], id[1], id[2], id[3]); }

} // namespace

struct object_store::impl {
    object_store_config config;
    std::vector<std::unique_ptr<shard_store>> stores;
    placement_function placement;
    detail::catalog catalog;
    detail::erasure_code code;
    detail::chunker chunker;
    detail::compressor compressor;

    // One stripe's shards: k data fragments back to back (the sealed chunk plus padding, so sealing writes
    // straight into the shards), then m parity fragments back to back.
    struct stripe_buffer {
        std::vector<std::uint8_t> data;
        std::vector<std::uint8_t> parity;
    };

    // Working buffers, sized for one stripe (two while get prefetches): memory does not grow with the object.
    std::vector<std::uint8_t> input;      // 4 x max chunk: the current chunk, the next one, and read-ahead
    std::array<stripe_buffer, 2> stripes; // [0] for put, verify and repair; get alternates
    std::vector<std::vector<std::uint8_t>> rebuilt; // up to m fragments rebuilt by repair
    std::vector<std::uint8_t> packed;     // compressed plaintext
    std::vector<std::uint8_t> plain;      // read path: a decompressed chunk, or an opened inline object
    // Last member: destroyed first, so its thread never sees the buffers above go away.
    detail::helper_thread helper;

    impl(object_store_config c, std::vector<std::unique_ptr<shard_store>> s, placement_function p, detail::catalog cat)
        : config(c), stores(std::move(s)), placement(p ? std::move(p) : placement_function(default_placement)),
          catalog(std::move(cat)), code(c.erasure.data_shards, c.erasure.parity_shards), chunker(c.chunking),
          rebuilt(c.erasure.parity_shards) {}

    unsigned k() const { return config.erasure.data_shards; }
    unsigned n() const { return config.erasure.total(); }
    std::size_t fragment(std::uint64_t stored) const { return static_cast<std::size_t>((stored + k() - 1) / k()); }

    // Where shard i of a stripe lives in a stripe buffer.
    std::uint8_t* slot(stripe_buffer& b, unsigned i, std::size_t frag) const {
        return i < k() ? b.data.data() + i * frag : b.parity.data() + (i - k()) * frag;
    }
    void size_buffer(stripe_buffer& b, std::size_t frag) const {
        if (b.data.size() < k() * frag) b.data.resize(k() * frag);
        if (b.parity.size() < (n() - k()) * frag) b.parity.resize((n() - k()) * frag);
    }

    detailed_result<std::vector<std::uint8_t>> locate(const chunk_id& id) {
        std::vector<std::uint8_t> locations(n());
        for (unsigned i = 0; i < n(); ++i) {
            const std::size_t s = placement(id, i, stores.size());
            if (s >= stores.size()) return error{errc::invalid_argument, fmt::format("placement chose store {} of {}", s, stores.size())};
            locations[i] = static_cast<std::uint8_t>(s);
        }
        auto sorted = locations;
        std::ranges::sort(sorted);
        if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
            return error{errc::invalid_argument, "placement put two shards of one stripe on the same store"};
        return locations;
    }

    // Seals, encodes and stores one chunk; returns its stripe row.
    detailed_result<stripe_row> write_stripe(const chunk_id& id, const key32& key, std::span<const std::uint8_t> payload) {
        const std::uint64_t stored = payload.size() + detail::tag_size;
        const std::size_t frag = fragment(stored);
        auto& b = stripes[0];
        size_buffer(b, frag);
        detail::seal_chunk(config.cipher, key, payload, b.data.data());
        std::memset(b.data.data() + stored, 0, k() * frag - stored);
        std::vector<const std::uint8_t*> data(k());
        std::vector<std::uint8_t*> par(n() - k());
        for (unsigned i = 0; i < k(); ++i) data[i] = slot(b, i, frag);
        for (unsigned i = k(); i < n(); ++i) par[i - k()] = slot(b, i, frag);
        code.encode(frag, data.data(), par.data());
        auto locations = locate(id);
        if (!locations) return locations.error();
        for (unsigned i = 0; i < n(); ++i) {
            const auto where = (*locations)[i];
            if (auto r = stores[where]->put({id, static_cast<std::uint16_t>(i)}, as_bytes(slot(b, i, frag), frag)); !r)
                return io(fmt::format("writing shard {} of stripe {} to store {}: {}", i, hex_prefix(id), where, r.error().message()));
        }
        return stripe_row{id, stored, std::move(*locations)};
    }

    // Reads the first k intact shards of a stripe to arrive (never shard `skip`) into `b` and rebuilds the data
    // fragments. `locations` is the stripe's catalog row: the catalog is only read on the calling thread.
    detailed_result<void> read_stripe(const chunk_id& id, std::span<const std::uint8_t> locations, std::uint64_t stored,
                                      stripe_buffer& b, unsigned skip = UINT_MAX) {
        const std::size_t frag = fragment(stored);
        size_buffer(b, frag);
        // Arrival flags outlive this call: a notification may still be under way for a shard given up on.
        struct arrivals {
            explicit arrivals(unsigned shards) : arrived(shards) {}
            std::vector<std::atomic<bool>> arrived;
        };
        const auto seen = std::make_shared<arrivals>(n());
        std::vector<unsigned> asked; // ascending
        std::vector<bool> taken(n(), false);
        unsigned next = 0;
        const auto ask = [&]() -> bool {
            while (next < n() && next == skip) ++next;
            if (next >= n()) return false;
            const unsigned i = next++;
            asked.push_back(i);
            stores[locations[i]]->prefetch_notify({id, static_cast<std::uint16_t>(i)}, frag,
                                                  [seen, i] { seen->arrived[i].store(true, std::memory_order_release); });
            return true;
        };
        for (unsigned j = 0; j < k() + config.extra_reads && ask(); ++j) {}
        const auto waiting = [&] {
            for (const unsigned i : asked)
                if (!taken[i] && seen->arrived[i].load(std::memory_order_acquire)) return true;
            return false;
        };
        std::vector<unsigned> present;
        while (present.size() < k()) {
            bool took = false;
            for (std::size_t a = 0; a < asked.size() && present.size() < k(); ++a) {
                const unsigned i = asked[a];
                if (taken[i] || !seen->arrived[i].load(std::memory_order_acquire)) continue;
                taken[i] = took = true;
                if (stores[locations[i]]->get({id, static_cast<std::uint16_t>(i)}, as_bytes(slot(b, i, frag), frag)))
                    present.push_back(i);
                else
                    ask(); // missing or corrupt: another shard stands in
            }
            if (took || present.size() >= k()) continue;
            const auto outstanding = std::ranges::find_if(asked, [&](unsigned i) { return !taken[i]; });
            if (outstanding == asked.end()) {
                if (!ask()) break; // every shard tried
                continue;
            }
            // Nothing new: wait for the next arrival. A store that gives up (its wait limit) counts as slow, and
            // one more shard is asked for while any is left.
            if (!stores[locations[*outstanding]]->wait_until(waiting) && !ask()) break;
        }
        for (const unsigned i : asked)
            if (!taken[i]) stores[locations[i]]->cancel_prefetch({id, static_cast<std::uint16_t>(i)});
        std::ranges::sort(present);
        std::vector<const std::uint8_t*> inputs;
        for (const unsigned i : present) inputs.push_back(slot(b, i, frag));
        if (present.size() < k())
            return error{errc::data_unavailable,
                         fmt::format("stripe {}: only {} intact shards of the {} needed", hex_prefix(id), present.size(), k())};
        std::vector<unsigned> wanted;
        std::vector<std::uint8_t*> outputs;
        for (unsigned i = 0; i < k(); ++i)
            if (!std::ranges::binary_search(present, i)) {
                wanted.push_back(i);
                outputs.push_back(slot(b, i, frag));
            }
        // Missing data fragments are rebuilt in place; the inputs are other slots, so nothing overlaps.
        if (!wanted.empty() && !code.reconstruct(frag, present, inputs.data(), wanted, outputs.data()))
            return error{errc::data_unavailable, fmt::format("stripe {}: decode failed", hex_prefix(id))};
        return {};
    }

    detailed_result<object_info> put(std::string_view name, std::istream& in, const put_options& options);
    detailed_result<std::uint64_t> get(std::string_view name, std::ostream& out, const reader_keys& reader, byte_range range);
    detailed_result<manifest> load(std::string_view name);
    detailed_result<std::vector<stripe_row>> stripes_of(std::string_view name);
    detailed_result<void> remove(std::string_view name);
    detailed_result<verify_report> verify(std::string_view name);
    detailed_result<repair_report> repair(std::string_view name, const repair_options& options);
    detailed_result<gc_report> collect_garbage();

    void drop_shards(std::span<const stripe_row> rows) {
        // Best effort: what a failure leaves behind, collect_garbage() removes later.
        for (const auto& row : rows)
            for (unsigned i = 0; i < row.locations.size(); ++i)
                if (row.locations[i] < stores.size())
                    (void)stores[row.locations[i]]->remove({row.id, static_cast<std::uint16_t>(i)});
        sync_all();
    }
    // Tells the stores of the first k shards that `wanted` admits that their gets follow, so remote ones fetch
    // them together rather than one round trip after another.
    template <class Wanted>
    void prefetch(const chunk_id& id, std::span<const std::uint8_t> locations, std::size_t frag, Wanted wanted) {
        for (unsigned i = 0, asked = 0; i < n() && asked < k(); ++i)
            if (wanted(i)) {
                stores[locations[i]]->prefetch({id, static_cast<std::uint16_t>(i)}, frag);
                ++asked;
            }
    }
    // Where repair writes shard `index`: the relocate hook's choice when it names a valid store, else in place.
    std::size_t relocated_store(const repair_options& options, const chunk_id& id, unsigned index, std::vector<std::uint8_t>& locations) {
        if (options.relocate)
            if (auto to = options.relocate(id, index, locations); to && *to < stores.size() && std::ranges::count(locations, *to) == 0)
                locations[index] = static_cast<std::uint8_t>(*to); // never onto a store holding another shard of the stripe
        return locations[index];
    }
    result<void> sync_all() {
        for (auto& s : stores)
            if (auto r = s->sync(); !r) return r;
        return {};
    }
};

detailed_result<manifest> object_store::impl::load(std::string_view name) {
    auto bytes = catalog.manifest(name);
    if (!bytes) return io("catalog read failed");
    if (!*bytes) return error{errc::not_found, fmt::format("no object named '{}'", name)};
    return manifest::decode(**bytes);
}

detailed_result<object_info> object_store::impl::put(std::string_view name, std::istream& in, const put_options& options) {
    if (name.empty() || name.size() > max_name)
        return error{errc::invalid_argument, fmt::format("object name must be 1 to {} bytes", max_name)};
    if (options.readers.empty()) return error{errc::invalid_argument, "put needs at least one reader public key"};
    const std::size_t max = config.chunking.max_size;
    input.resize(4 * max); // refills move under 2 x max bytes per 2 x max consumed
    std::size_t begin = 0, end = 0;
    bool eof = false;
    // Keeps the current chunk and a full chunker window after it in the buffer.
    auto refill = [&]() -> detailed_result<void> {
        if (eof || end - begin >= 2 * max) return {};
        std::memmove(input.data(), input.data() + begin, end - begin);
        end -= begin;
        begin = 0;
        while (!eof && end < input.size()) {
            in.read(reinterpret_cast<char*>(input.data() + end), static_cast<std::streamsize>(input.size() - end));
            end += static_cast<std::size_t>(in.gcount());
            // A short read sets failbit together with eofbit; failbit alone means the stream broke.
            if (in.bad() || (in.fail() && !in.eof())) return io(fmt::format("reading the input of '{}' failed", name));
            eof = in.eof();
        }
        return {};
    };
    if (auto r = refill(); !r) return r.error();

    manifest m;
    m.cipher = config.cipher;
    m.data_shards = k();
    m.parity_shards = n() - k();
    m.is_inline = eof && end <= config.inline_limit;
    std::vector<std::uint8_t> keys; // the chunk keys in order, sealed at the end
    std::vector<stripe_row> added;
    std::set<chunk_id> referenced;
    object_info info{std::string(name)};

    auto derive = [&](std::span<const std::uint8_t> chunk) {
        return detail::derive_chunk_keys(options.convergence_secret, config.cipher, chunk);
    };
    auto process = [&](std::span<const std::uint8_t> chunk, const detail::chunk_keys& ck) -> detailed_result<void> {
        keys.insert(keys.end(), ck.key.begin(), ck.key.end());
        std::span<const std::uint8_t> payload = chunk;
        const bool compressed = config.compression == compression_mode::automatic && compressor.compress(chunk, packed);
        if (compressed) payload = packed;
        m.chunks.push_back({ck.id, chunk.size(), payload.size() + detail::tag_size, compressed});
        if (m.is_inline) {
            m.inline_data.resize(payload.size() + detail::tag_size);
            detail::seal_chunk(config.cipher, ck.key, payload, m.inline_data.data());
            return {};
        }
        if (!referenced.insert(ck.id).second) return {};
        auto known = catalog.stripe(ck.id);
        if (!known) return io("catalog read failed");
        if (*known) return {}; // stored by an earlier put of this owner: deduplicated
        auto row = write_stripe(ck.id, ck.key, payload);
        if (!row) return row.error();
        info.new_chunks += 1;
        info.stored_bytes += fragment(row->stored_size) * n();
        added.push_back(std::move(*row));
        return {};
    };

    // Two stages: the chunk at `begin` is sealed, encoded and stored here while the helper finds where the next
    // one ends and hashes it (the hash is the costliest step, and the key and id of a chunk depend on all of
    // it). Neither moves the input buffer; refill() runs between chunks, when the helper is idle.
    const bool pipelined = config.pipeline && !m.is_inline;
    std::size_t len = chunker.next(std::span(input.data() + begin, end - begin));
    detail::chunk_keys current = derive(std::span(input.data() + begin, len)), following;
    while (begin < end) {
        const std::size_t next_at = begin + len;
        std::size_t next_len = 0;
        auto look_ahead = [&] {
            next_len = chunker.next(std::span(input.data() + next_at, end - next_at));
            following = derive(std::span(input.data() + next_at, next_len));
        };
        const bool more = next_at < end;
        {
            detail::helper_scope scope(pipelined ? &helper : nullptr);
            if (pipelined && more) helper.start(look_ahead);
            if (auto r = process(std::span<const std::uint8_t>(input.data() + begin, len), current); !r) return r.error();
            if (pipelined && more) helper.wait();
        }
        if (!pipelined && more) look_ahead();
        current = following;
        begin = next_at;
        info.size += len;
        len = next_len;
        if (options.progress) options.progress(info.size);
        if (auto r = refill(); !r) return r.error();
    }
    if (m.is_inline && m.chunks.empty()) // the empty object: one empty chunk keeps the inline form uniform
        if (auto r = process({}, derive({})); !r) return r.error();
    m.size = info.size;
    info.chunks = m.is_inline ? 0 : m.chunks.size();

    // Shards first, durable; only then the catalog entry that makes the object visible.
    if (auto r = sync_all(); !r) return io(fmt::format("syncing shard stores for '{}': {}", name, r.error().message()));
    const key32 data_key = detail::random_key();
    m.sealed_keys = detail::seal_random_nonce(data_key, keys);
    std::ranges::fill(keys, 0);
    for (const auto& reader : options.readers) m.readers.push_back({reader, detail::wrap_key(data_key, reader)});
    const auto encoded = m.encode();

    std::vector<chunk_id> released;
    if (auto old = load(name)) released = distinct_ids(*old);
    else if (old.error().code != errc::not_found) return old.error();
    const std::vector<chunk_id> refs(referenced.begin(), referenced.end());
    auto orphans = catalog.commit(name, m.size, info.chunks, encoded, refs, added, released);
    if (!orphans) return io(fmt::format("committing '{}' to the catalog failed", name));
    drop_shards(*orphans);
    return info;
}

detailed_result<std::uint64_t> object_store::impl::get(std::string_view name, std::ostream& out, const reader_keys& reader,
                                                       byte_range range) {
    auto m = load(name);
    if (!m) return m.error();
    const auto entry = std::ranges::find_if(m->readers, [&](const auto& r) { return r.public_key == reader.public_key; });
    if (entry == m->readers.end())
        return error{errc::authentication_failed, fmt::format("'{}' has no key wrapped for this reader", name)};
    const auto data_key = detail::unwrap_key(entry->wrapped, reader);
    if (!data_key) return error{errc::authentication_failed, fmt::format("the reader's secret key does not open the key of '{}'", name)};
    const auto keys = detail::open_random_nonce(*data_key, m->sealed_keys);
    if (!keys || keys->size() != m->chunks.size() * 32)
        return error{errc::authentication_failed, fmt::format("the key table of '{}' does not authenticate", name)};
    if (range.offset > m->size)
        return error{errc::invalid_argument, fmt::format("offset {} is past the end of '{}' ({} bytes)", range.offset, name, m->size)};
    const std::uint64_t stop = range.offset + std::min(range.length, m->size - range.offset);
    if (stop == range.offset) return std::uint64_t{0};

    // The chunks the range touches, with where each starts in the object and where its shards live.
    struct wanted_chunk {
        std::size_t index;
        std::uint64_t at;
        std::vector<std::uint8_t> locations;
    };
    std::vector<wanted_chunk> todo;
    std::uint64_t at = 0;
    for (std::size_t c = 0; c < m->chunks.size() && at < stop; ++c) {
        const std::uint64_t chunk_end = at + m->chunks[c].plain_size;
        if (chunk_end > range.offset && m->chunks[c].plain_size > 0) todo.push_back({c, at, {}}); // others are never read
        at = chunk_end;
    }
    if (!m->is_inline)
        for (auto& t : todo) {
            auto row = catalog.stripe(m->chunks[t.index].id);
            if (!row) return io("catalog read failed");
            if (!*row)
                return error{errc::data_unavailable, fmt::format("stripe {} is not in the catalog", hex_prefix(m->chunks[t.index].id))};
            t.locations = std::move((**row).locations);
        }

    // Two stages: the helper reads and decodes stripe t + 1 into one buffer while this thread opens and writes
    // out stripe t from the other. Opening costs several times what reading and decoding do, so the helper
    // also opens every third stripe itself: the two stages then take about as long.
    const bool pipelined = config.pipeline && !m->is_inline && todo.size() > 1;
    auto key_of = [&](std::size_t c) {
        key32 key;
        std::memcpy(key.data(), keys->data() + c * 32, 32);
        return key;
    };
    std::array<signed char, 2> preopened{-1, -1}; // per buffer: -1 left to this thread, 0 failed, 1 authentic
    auto fetch = [&](std::size_t t, bool open_too) -> detailed_result<void> {
        const auto& chunk = m->chunks[todo[t].index];
        auto& b = stripes[t % 2];
        preopened[t % 2] = -1;
        auto r = read_stripe(chunk.id, todo[t].locations, chunk.stored_size, b);
        if (r && open_too)
            preopened[t % 2] = detail::open_chunk(m->cipher, key_of(todo[t].index), std::span(b.data.data(), chunk.stored_size), b.data.data()) ? 1 : 0;
        return r;
    };
    detailed_result<void> fetched;
    detail::helper_scope scope(pipelined ? &helper : nullptr); // after what the helper writes
    detailed_result<void> ready = m->is_inline || todo.empty() ? detailed_result<void>{} : fetch(0, false);
    std::uint64_t written = 0;
    for (std::size_t t = 0; t < todo.size(); ++t) {
        if (!ready) return ready.error();
        if (pipelined && t + 1 < todo.size()) helper.start([&, t] { fetched = fetch(t + 1, (t + 1) % 3 == 2); });
        const std::size_t c = todo[t].index;
        const auto& chunk = m->chunks[c];
        const std::span<const std::uint8_t> sealed_bytes =
            m->is_inline ? std::span<const std::uint8_t>(m->inline_data) : std::span(stripes[t % 2].data.data(), chunk.stored_size);
        const key32 key = key_of(c);
        const std::size_t opened = chunk.stored_size - detail::tag_size;
        // A stripe opens in place: no second buffer of the chunk's size to fill and evict the cache with.
        // Inline data stays in the manifest and opens into a working buffer.
        auto& inline_target = chunk.compressed ? packed : plain;
        if (m->is_inline && inline_target.size() < opened) inline_target.resize(opened);
        std::uint8_t* const opened_at = m->is_inline ? inline_target.data() : stripes[t % 2].data.data();
        const signed char done = m->is_inline ? -1 : preopened[t % 2];
        bool authentic = done >= 0 ? done == 1 : detail::open_chunk(m->cipher, key, sealed_bytes, opened_at);
        // A shard can pass its checksum and still be wrong (a faulty or hostile store rewrote it): leave each
        // shard out in turn until the stripe authenticates. Each read refreshes every data fragment, so the
        // bytes a failed open left behind never count. The helper uses the same stores: let it finish.
        if (!authentic && pipelined) helper.wait();
        for (unsigned skip = 0; !authentic && !m->is_inline && skip < n(); ++skip)
            authentic = read_stripe(chunk.id, todo[t].locations, chunk.stored_size, stripes[t % 2], skip) &&
                        detail::open_chunk(m->cipher, key, sealed_bytes, opened_at);
        if (!authentic) return error{errc::authentication_failed, fmt::format("chunk {} of '{}' does not authenticate", c, name)};
        const std::uint8_t* plaintext = opened_at;
        if (chunk.compressed) {
            if (plain.size() < chunk.plain_size) plain.resize(chunk.plain_size);
            if (!compressor.decompress(std::span(opened_at, opened), std::span(plain.data(), chunk.plain_size)))
                return error{errc::malformed, fmt::format("chunk {} of '{}' does not decompress", c, name)};
            plaintext = plain.data();
        }
        const std::uint64_t chunk_end = todo[t].at + chunk.plain_size;
        const std::uint64_t from = std::max(range.offset, todo[t].at) - todo[t].at;
        const std::uint64_t to = std::min(stop, chunk_end) - todo[t].at;
        out.write(reinterpret_cast<const char*>(plaintext + from), static_cast<std::streamsize>(to - from));
        if (!out) return io(fmt::format("writing '{}' to the output failed", name));
        written += to - from;
        if (t + 1 < todo.size() && !m->is_inline) {
            if (pipelined) {
                helper.wait();
                ready = std::move(fetched);
            } else {
                ready = fetch(t + 1, false);
            }
        }
    }
    return written;
}

detailed_result<std::vector<stripe_row>> object_store::impl::stripes_of(std::string_view name) {
    if (name.empty()) {
        auto all = catalog.stripes();
        if (!all) return io("catalog read failed");
        return std::move(*all);
    }
    auto m = load(name);
    if (!m) return m.error();
    std::vector<stripe_row> rows;
    for (const auto& id : distinct_ids(*m)) {
        auto row = catalog.stripe(id);
        if (!row) return io("catalog read failed");
        if (*row) rows.push_back(std::move(**row));
    }
    return rows;
}

detailed_result<void> object_store::impl::remove(std::string_view name) {
    auto m = load(name);
    if (!m) return m.error();
    const auto released = distinct_ids(*m);
    auto orphans = catalog.remove(name, released);
    if (!orphans) return io(fmt::format("removing '{}' from the catalog failed", name));
    drop_shards(*orphans);
    return {};
}

detailed_result<verify_report> object_store::impl::verify(std::string_view name) {
    auto rows = stripes_of(name);
    if (!rows) return rows.error();
    verify_report report;
    std::vector<std::uint8_t> check;
    for (const auto& row : *rows) {
        ++report.stripes;
        const std::size_t frag = fragment(row.stored_size);
        auto& b = stripes[0];
        size_buffer(b, frag);
        unsigned intact = 0;
        for (unsigned i = 0; i < n(); ++i) {
            auto r = stores[row.locations[i]]->get({row.id, static_cast<std::uint16_t>(i)}, as_bytes(slot(b, i, frag), frag));
            if (r) ++intact;
            else if (r.error() == errc::not_found) ++report.missing_shards;
            else if (unreachable(r.error())) ++report.unreachable_shards;
            else ++report.corrupt_shards;
        }
        if (intact < k()) ++report.unrecoverable_stripes;
        if (intact == n()) {
            // Every checksum passes; parity recomputed from the data must match too.
            check.resize((n() - k()) * frag);
            std::vector<const std::uint8_t*> data(k());
            std::vector<std::uint8_t*> par(n() - k());
            for (unsigned i = 0; i < k(); ++i) data[i] = slot(b, i, frag);
            for (unsigned i = 0; i < n() - k(); ++i) par[i] = check.data() + i * frag;
            code.encode(frag, data.data(), par.data());
            for (unsigned i = 0; i < n() - k(); ++i)
                if (std::memcmp(par[i], slot(b, k() + i, frag), frag) != 0) {
                    ++report.inconsistent_stripes;
                    break;
                }
        }
    }
    return report;
}

detailed_result<repair_report> object_store::impl::repair(std::string_view name, const repair_options& options) {
    auto rows = stripes_of(name);
    if (!rows) return rows.error();
    repair_report report;
    detail::repair_progress progress(options);
    for (auto& b : rebuilt) b.clear();
    const auto started = std::chrono::steady_clock::now();
    for (const auto& row : *rows) {
        if (options.max_bytes_per_second > 0) {
            // Pace by the bytes moved so far: sleep until they fit the budget, so foreground work keeps its share.
            const auto due = started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(
                                           static_cast<double>(report.bytes_read + report.bytes_written) /
                                           static_cast<double>(options.max_bytes_per_second)));
            std::this_thread::sleep_until(due);
        }
        ++report.stripes;
        const std::size_t frag = fragment(row.stored_size);
        auto& b = stripes[0];
        size_buffer(b, frag);
        std::vector<bool> bad(n(), false);
        if (!options.deep) {
            for (unsigned i = 0; i < n(); ++i) {
                auto has = stores[row.locations[i]]->contains({row.id, static_cast<std::uint16_t>(i)});
                bad[i] = !has || !*has;
            }
        }
        std::vector<unsigned> present;
        std::vector<const std::uint8_t*> inputs;
        if (!options.deep) prefetch(row.id, row.locations, frag, [&](unsigned i) { return !bad[i]; });
        // Shallow: read k shards, then as many more as failed (exactly k reads when nothing is corrupt). Deep:
        // read them all. Reading is most of repair's cost; with the pipeline on, the helper reads the first
        // half of each batch while this thread reads the rest (distinct stores, so each store still sees one
        // thread at a time).
        std::vector<unsigned> batch;
        std::vector<char> intact;
        for (unsigned next = 0;;) {
            batch.clear();
            for (; next < n() && (options.deep || present.size() + batch.size() < k()); ++next)
                if (!bad[next]) batch.push_back(next);
            if (batch.empty()) break;
            intact.assign(batch.size(), 0);
            auto read = [&](std::size_t from, std::size_t to) {
                for (std::size_t j = from; j < to; ++j) {
                    const unsigned i = batch[j];
                    intact[j] = stores[row.locations[i]]->get({row.id, static_cast<std::uint16_t>(i)}, as_bytes(slot(b, i, frag), frag)) ? 1 : 0;
                }
            };
            const std::size_t half = config.pipeline ? batch.size() / 2 : 0;
            {
                detail::helper_scope scope(half > 0 ? &helper : nullptr);
                if (half > 0) helper.start([&] { read(0, half); });
                read(half, batch.size());
                if (half > 0) helper.wait();
            }
            for (std::size_t j = 0; j < batch.size(); ++j) {
                ++report.shards_read;
                if (!intact[j]) {
                    bad[batch[j]] = true;
                    continue;
                }
                report.bytes_read += frag;
                if (present.size() < k()) {
                    present.push_back(batch[j]);
                    inputs.push_back(slot(b, batch[j], frag));
                }
            }
        }
        std::vector<unsigned> wanted;
        for (unsigned i = 0; i < n(); ++i)
            if (bad[i]) wanted.push_back(i);
        if (present.size() < k()) {
            ++report.unrecoverable_stripes;
        } else if (!wanted.empty()) {
            std::vector<std::uint8_t*> outputs;
            for (std::size_t w = 0; w < wanted.size(); ++w) {
                if (rebuilt[w].size() < frag) rebuilt[w].resize(frag);
                outputs.push_back(rebuilt[w].data());
            }
            if (!code.reconstruct(frag, present, inputs.data(), wanted, outputs.data())) {
                ++report.unrecoverable_stripes;
            } else {
                auto locations = row.locations;
                for (std::size_t w = 0; w < wanted.size(); ++w) {
                    const std::size_t from = row.locations[wanted[w]];
                    const auto where = relocated_store(options, row.id, wanted[w], locations);
                    if (auto r = stores[where]->put({row.id, static_cast<std::uint16_t>(wanted[w])}, as_bytes(outputs[w], frag)); !r)
                        return io(fmt::format("writing rebuilt shard {} of stripe {} to store {}: {}", wanted[w],
                                              hex_prefix(row.id), where, r.error().message()));
                    ++report.shards_rebuilt;
                    report.bytes_written += frag;
                    if (where != from) ++report.shards_relocated;
                    progress.rebuilt(report, row.id, wanted[w], from, where);
                }
                if (locations != row.locations) {
                    // The moved shards must be durable before the catalog points at them.
                    if (auto r = sync_all(); !r) return io(fmt::format("syncing shard stores after repair failed: {}", r.error().message()));
                    if (auto r = catalog.set_locations(row.id, locations); !r)
                        return io(fmt::format("recording new locations of stripe {} failed", hex_prefix(row.id)));
                }
            }
        }
        progress.scanned(report, row.id, present.size() < k());
        if (options.progress) options.progress(report.stripes);
    }
    if (auto r = sync_all(); !r) return io(fmt::format("syncing shard stores after repair failed: {}", r.error().message()));
    return report;
}

detailed_result<gc_report> object_store::impl::collect_garbage() {
    auto rows = catalog.stripes();
    if (!rows) return io("catalog read failed");
    std::set<chunk_id> live;
    for (const auto& row : *rows) live.insert(row.id);
    gc_report report;
    for (std::size_t s = 0; s < stores.size(); ++s) {
        auto shards = stores[s]->list();
        if (!shards) return io(fmt::format("listing store {} failed", s));
        for (const auto& id : *shards)
            if (!live.contains(id.chunk)) {
                if (auto r = stores[s]->remove(id); !r) return io(fmt::format("removing a shard from store {} failed", s));
                ++report.shards_removed;
            }
    }
    if (auto r = sync_all(); !r) return io("syncing shard stores after garbage collection failed");
    return report;
}

// Public surface: every call converts any exception (allocation, a throwing stream) into an error.
namespace {
template <class F>
auto guarded(F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const std::exception& e) {
        return error{errc::io_error, e.what()};
    }
}
} // namespace

detailed_result<object_store> object_store::open(const std::filesystem::path& catalog_directory,
                                                 std::vector<std::unique_ptr<shard_store>> stores,
                                                 object_store_config config, placement_function placement) {
    return guarded([&]() -> detailed_result<object_store> {
        if (!detail::crypto_ready()) return error{errc::io_error, "libsodium failed to initialise"};
        if (auto r = config.validate(); !r) return r.error();
        if (config.cipher == cipher_suite::automatic) config.cipher = fastest_cipher();
        if (stores.size() < config.erasure.total() || stores.size() > 256)
            return error{errc::invalid_argument, fmt::format("{} shard stores given; {}+{} needs {} to 256", stores.size(),
                                                             config.erasure.data_shards, config.erasure.parity_shards,
                                                             config.erasure.total())};
        for (const auto& s : stores)
            if (!s) return error{errc::invalid_argument, "a shard store is null"};
        // The pipeline's helper thread calls stores too; a store bound to one thread rules it out.
        for (const auto& s : stores)
            if (!s->callable_from_any_thread()) config.pipeline = false;
        std::error_code ec;
        std::filesystem::create_directories(catalog_directory, ec);
        if (ec) return io(fmt::format("cannot create {}: {}", catalog_directory.string(), ec.message()));
        auto cat = detail::catalog::open(catalog_directory / "catalog.sqlite");
        if (!cat) return cat.error();
        return object_store(std::make_unique<impl>(config, std::move(stores), std::move(placement), std::move(*cat)));
    });
}

detailed_result<std::size_t> object_store::add_store(std::unique_ptr<shard_store> store) {
    auto& d = *impl_;
    if (!store) return error{errc::invalid_argument, "a shard store is null"};
    if (d.stores.size() >= 256)
        return error{errc::too_large, "256 shard stores already: a catalog location names at most 256"};
    // As at open: a store bound to one thread keeps the helper thread away from every store.
    if (!store->callable_from_any_thread()) d.config.pipeline = false;
    d.stores.push_back(std::move(store));
    return d.stores.size() - 1;
}

object_store::object_store(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
object_store::object_store(object_store&&) noexcept = default;
object_store& object_store::operator=(object_store&&) noexcept = default;
object_store::~object_store() = default;

detailed_result<object_info> object_store::put(std::string_view name, std::istream& in, const put_options& options) {
    return guarded([&] { return impl_->put(name, in, options); });
}

detailed_result<object_info> object_store::put_file(std::string_view name, const std::filesystem::path& file,
                                                    const put_options& options) {
    return guarded([&]() -> detailed_result<object_info> {
        std::ifstream in(file, std::ios::binary);
        if (!in) return error{errc::not_found, fmt::format("cannot open {}", file.string())};
        return impl_->put(name, in, options);
    });
}

detailed_result<std::uint64_t> object_store::get(std::string_view name, std::ostream& out, const reader_keys& reader,
                                                 byte_range range) {
    return guarded([&] { return impl_->get(name, out, reader, range); });
}

detailed_result<std::uint64_t> object_store::get_file(std::string_view name, const std::filesystem::path& file,
                                                      const reader_keys& reader, byte_range range) {
    return guarded([&]() -> detailed_result<std::uint64_t> {
        std::ofstream out(file, std::ios::binary | std::ios::trunc);
        if (!out) return io(fmt::format("cannot create {}", file.string()));
        auto r = impl_->get(name, out, reader, range);
        out.close();
        if (r && !out) return io(fmt::format("writing {} failed", file.string()));
        return r;
    });
}

detailed_result<object_info> object_store::stat(std::string_view name) {
    return guarded([&]() -> detailed_result<object_info> {
        auto m = impl_->load(name);
        if (!m) return m.error();
        return object_info{std::string(name), m->size, m->is_inline ? 0 : m->chunks.size()};
    });
}

detailed_result<std::vector<object_info>> object_store::list(std::string_view prefix) {
    return guarded([&]() -> detailed_result<std::vector<object_info>> {
        auto rows = impl_->catalog.list(prefix);
        if (!rows) return io("catalog read failed");
        std::vector<object_info> out;
        out.reserve(rows->size());
        for (auto& r : *rows) out.push_back({std::move(r.name), r.size, r.chunks});
        return out;
    });
}

detailed_result<void> object_store::remove(std::string_view name) {
    return guarded([&] { return impl_->remove(name); });
}

detailed_result<verify_report> object_store::verify(std::string_view name) {
    return guarded([&] { return impl_->verify(name); });
}

detailed_result<repair_report> object_store::repair(std::string_view name, const repair_options& options) {
    return guarded([&] { return impl_->repair(name, options); });
}

detailed_result<gc_report> object_store::collect_garbage() {
    return guarded([&] { return impl_->collect_garbage(); });
}

} // namespace swarm::inline v0::storage
