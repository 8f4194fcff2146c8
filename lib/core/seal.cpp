#include <swarm/core/seal.hpp>

#include "sodium_init.hpp"

#include <gsl/assert>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <unordered_map>

namespace swarm::inline v0::seal {
namespace {

static_assert(key_size == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
static_assert(tag_size == crypto_aead_xchacha20poly1305_ietf_ABYTES);

// Header layout (see seal.hpp).
constexpr std::size_t label_tag_at = 1;
constexpr std::size_t key_id_at = 5;
constexpr std::size_t sender_at = 9;
constexpr std::size_t sequence_at = 17;
constexpr std::size_t salt_at = 25;
constexpr std::size_t nonce_at = sender_at; // sender, sequence, salt: 24 bytes
constexpr std::size_t label_hash_size = 32;
constexpr std::size_t ad_size = header_size + label_hash_size;
static_assert(salt_at + 8 == header_size);
static_assert(header_size - nonce_at == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);

unsigned char* u(std::byte* p) noexcept { return reinterpret_cast<unsigned char*>(p); }
const unsigned char* u(const std::byte* p) noexcept { return reinterpret_cast<const unsigned char*>(p); }

void store_be64(std::byte* p, std::uint64_t v) noexcept {
    for (int i = 7; i >= 0; --i, v >>= 8) p[i] = std::byte{static_cast<std::uint8_t>(v)};
}
std::uint64_t load_be64(const std::byte* p) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
    return v;
}
void store_be32(std::byte* p, std::uint32_t v) noexcept {
    for (int i = 3; i >= 0; --i, v >>= 8) p[i] = std::byte{static_cast<std::uint8_t>(v)};
}
std::uint32_t load_be32(const std::byte* p) noexcept {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | std::to_integer<std::uint32_t>(p[i]);
    return v;
}

/// Whether two buffers share a byte; std::less gives a total order even across unrelated arrays.
bool overlaps(std::span<const std::byte> a, std::span<const std::byte> b) noexcept {
    if (a.empty() || b.empty()) return false;
    const std::less<const std::byte*> before;
    return before(a.data(), b.data() + b.size()) && before(b.data(), a.data() + a.size());
}

/// BLAKE2b-256 of the label under a domain string, so the hash means nothing outside this format.
std::array<std::byte, label_hash_size> hash_label(std::string_view label) {
    static constexpr std::string_view domain{"swarm seal label v1", 20}; // the terminating zero included
    std::array<std::byte, label_hash_size> out{};
    crypto_generichash_state state;
    crypto_generichash_init(&state, nullptr, 0, out.size());
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(domain.data()), domain.size());
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(label.data()), label.size());
    crypto_generichash_final(&state, u(out.data()), out.size());
    return out;
}

struct stored_key {
    key_id id;
    std::array<unsigned char, key_size> bytes;
};

/// One immutable version of the ring; a change publishes a new one, so readers never see a half-made ring.
struct snapshot {
    std::vector<stored_key> keys; // the primary first

    snapshot() = default;
    snapshot(const snapshot&) = delete;
    snapshot& operator=(const snapshot&) = delete;
    ~snapshot() {
        for (auto& k : keys) sodium_memzero(k.bytes.data(), k.bytes.size());
    }

    const stored_key* find(key_id id) const noexcept {
        for (const auto& k : keys)
            if (k.id == id) return &k;
        return nullptr;
    }
};

} // namespace

key_id id_of(std::span<const std::byte, key_size> key) noexcept {
    detail::sodium_init_once();
    static constexpr std::string_view context{"swarm seal key id v1"};
    std::array<unsigned char, crypto_generichash_BYTES_MIN> h{};
    crypto_generichash(h.data(), h.size(), reinterpret_cast<const unsigned char*>(context.data()), context.size(),
                       u(key.data()), key.size());
    return (std::uint32_t{h[0]} << 24) | (std::uint32_t{h[1]} << 16) | (std::uint32_t{h[2]} << 8) | h[3];
}

// ---- keyring ----

struct keyring::impl {
    mutable std::mutex mutex;
    std::shared_ptr<const snapshot> current = std::make_shared<const snapshot>(); // guarded by mutex
    /// Bumped under the mutex at each change, read without it: lets sealers and openers keep their snapshot
    /// until something changed, at the cost of one atomic load per message.
    std::atomic<std::uint64_t> generation{0};

    std::shared_ptr<const snapshot> load() const {
        std::lock_guard lock(mutex);
        return current;
    }

    /// Builds the next version from the current one; an error from edit abandons it (and wipes it).
    template <class Edit>
    result<void> change(Edit edit) {
        std::lock_guard lock(mutex);
        auto next = std::make_shared<snapshot>();
        // Reserved up front: a reallocation would free key bytes without wiping them.
        next->keys.reserve(current->keys.size() + 1);
        next->keys = current->keys;
        if (auto r = edit(next->keys); !r) return r;
        current = std::move(next);
        generation.fetch_add(1, std::memory_order_release);
        return {};
    }
};

/// What sealers and openers keep of a keyring: the shared state and the version they last looked at.
struct ring_view {
    std::shared_ptr<keyring::impl> ring;
    std::shared_ptr<const snapshot> keys;
    std::uint64_t seen = 0;

    explicit ring_view(std::shared_ptr<keyring::impl> r) : ring(std::move(r)) { refresh(); }

    const snapshot& current() {
        if (ring->generation.load(std::memory_order_acquire) != seen) [[unlikely]]
            refresh();
        return *keys;
    }

private:
    void refresh() {
        std::lock_guard lock(ring->mutex);
        keys = ring->current;
        seen = ring->generation.load(std::memory_order_relaxed);
    }
};

keyring::keyring() : impl_(std::make_shared<impl>()) { detail::sodium_init_once(); }
keyring::~keyring() = default;
keyring::keyring(const keyring&) = default;
keyring& keyring::operator=(const keyring&) = default;

result<key_id> keyring::add(std::span<const std::byte> key) {
    if (key.size() != key_size) return errc::invalid_argument;
    const key_id id = id_of(key.first<key_size>());
    auto r = impl_->change([&](std::vector<stored_key>& keys) -> result<void> {
        if (std::ranges::any_of(keys, [&](const stored_key& k) { return k.id == id; })) return errc::already_exists;
        auto& k = keys.emplace_back();
        k.id = id;
        std::memcpy(k.bytes.data(), key.data(), key_size);
        return {};
    });
    if (!r) return r.error();
    return id;
}

result<void> keyring::make_primary(key_id id) {
    return impl_->change([&](std::vector<stored_key>& keys) -> result<void> {
        auto it = std::ranges::find(keys, id, &stored_key::id);
        if (it == keys.end()) return errc::not_found;
        std::rotate(keys.begin(), it, it + 1);
        return {};
    });
}

result<void> keyring::remove(key_id id) {
    return impl_->change([&](std::vector<stored_key>& keys) -> result<void> {
        auto it = std::ranges::find(keys, id, &stored_key::id);
        if (it == keys.end()) return errc::not_found;
        if (it == keys.begin()) return errc::invalid_argument;
        // Moved to the back and wiped there: erase() would leave a stale copy beyond the new end.
        std::rotate(it, it + 1, keys.end());
        sodium_memzero(keys.back().bytes.data(), key_size);
        keys.pop_back();
        return {};
    });
}

std::optional<key_id> keyring::primary() const {
    auto s = impl_->load();
    if (s->keys.empty()) return std::nullopt;
    return s->keys.front().id;
}

bool keyring::contains(key_id id) const { return impl_->load()->find(id) != nullptr; }

std::vector<key_id> keyring::ids() const {
    auto s = impl_->load();
    std::vector<key_id> out;
    out.reserve(s->keys.size());
    for (const auto& k : s->keys) out.push_back(k.id);
    return out;
}

// ---- sealer ----

struct sealer::impl {
    ring_view keys;
    std::uint64_t sender;
    std::uint64_t next;
    std::array<std::byte, 8> salt{};
    std::array<std::byte, 4> label_tag{};
    /// The associated data: header bytes are copied in front of the label hash for each message.
    std::array<std::byte, ad_size> ad{};

    impl(const std::shared_ptr<keyring::impl>& ring, std::string_view label, std::uint64_t s, std::uint64_t first,
         std::optional<std::uint64_t> fixed_salt)
        : keys(ring), sender(s), next(first) {
        if (fixed_salt) {
            for (std::size_t i = 0; i < salt.size(); ++i)
                salt[i] = static_cast<std::byte>(*fixed_salt >> (8 * (salt.size() - 1 - i)));
        } else {
            randombytes_buf(salt.data(), salt.size());
        }
        const auto h = hash_label(label);
        std::copy_n(h.begin(), label_tag.size(), label_tag.begin());
        std::ranges::copy(h, ad.begin() + header_size);
    }
};

sealer::sealer(const keyring& ring, std::string_view label, std::uint64_t sender, std::uint64_t first_sequence,
               std::optional<std::uint64_t> salt) {
    detail::sodium_init_once();
    impl_ = std::make_unique<impl>(ring.impl_, label, sender, first_sequence, salt);
}
sealer::~sealer() = default;
sealer::sealer(sealer&&) noexcept = default;
sealer& sealer::operator=(sealer&&) noexcept = default;

std::uint64_t sealer::sender() const noexcept { return impl_->sender; }
std::uint64_t sealer::next_sequence() const noexcept { return impl_->next; }

result<std::size_t> sealer::seal(std::span<const std::byte> plaintext, std::span<std::byte> out) {
    auto& s = *impl_;
    if (out.size() < overhead || out.size() - overhead < plaintext.size()) return errc::invalid_argument;
    if (overlaps(plaintext, out) && plaintext.data() != out.data() + header_size) return errc::invalid_argument;
    const auto& ring = s.keys.current();
    if (ring.keys.empty()) return errc::unknown_key;
    // The last value is never used, so "exhausted" needs no extra state.
    if (s.next == std::numeric_limits<std::uint64_t>::max()) return errc::too_large;
    const auto& key = ring.keys.front();

    std::byte* h = out.data();
    h[0] = std::byte{format_version};
    std::memcpy(h + label_tag_at, s.label_tag.data(), s.label_tag.size());
    store_be32(h + key_id_at, key.id);
    store_be64(h + sender_at, s.sender);
    store_be64(h + sequence_at, s.next);
    std::memcpy(h + salt_at, s.salt.data(), s.salt.size());
    std::memcpy(s.ad.data(), h, header_size);

    unsigned long long written = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(u(h + header_size), &written, u(plaintext.data()), plaintext.size(),
                                               u(s.ad.data()), s.ad.size(), nullptr, u(h + nonce_at),
                                               key.bytes.data());
    ++s.next;
    return header_size + static_cast<std::size_t>(written);
}

result<std::vector<std::byte>> sealer::seal(std::span<const std::byte> plaintext) {
    std::vector<std::byte> out(plaintext.size() + overhead);
    auto r = seal(plaintext, out);
    if (!r) return r.error();
    return out;
}

// ---- opener ----

detailed_result<void> replay_config::validate() const {
    constexpr std::size_t limit = std::size_t{1} << 24;
    if (max_senders == 0 || max_senders > limit)
        return error{errc::config_invalid_value,
                     "replay.max_senders must be between 1 and 16777216, got " + std::to_string(max_senders)};
    return {};
}

namespace {

constexpr std::uint64_t window_size = 1024;
// One word more than the window, so that every sequence within window_size of the highest has a bit even
// when the highest sits at the start of its word.
constexpr std::size_t window_words = window_size / 64 + 1;
constexpr std::uint32_t none = std::numeric_limits<std::uint32_t>::max();

struct window {
    std::uint64_t sender = 0;
    std::uint64_t top = 0; // the highest authenticated sequence
    std::array<std::uint64_t, window_words> bits{};
    std::uint32_t newer = none; // LRU links
    std::uint32_t older = none;

    bool seen(std::uint64_t seq) const noexcept {
        if (seq > top) return false;
        if (top - seq >= window_size) return true;
        return (bits[(seq >> 6) % window_words] >> (seq & 63)) & 1;
    }

    void accept(std::uint64_t seq) noexcept {
        if (seq > top) {
            const std::uint64_t from = top >> 6, to = seq >> 6;
            const std::uint64_t clear = std::min<std::uint64_t>(to - from, window_words);
            for (std::uint64_t i = 1; i <= clear; ++i) bits[(from + i) % window_words] = 0;
            top = seq;
        }
        bits[(seq >> 6) % window_words] |= std::uint64_t{1} << (seq & 63);
    }
};

/// Windows of the most recently heard senders, in a slot vector with an intrusive LRU list.
class replay_table {
public:
    explicit replay_table(std::size_t max) : max_(max) { index_.reserve(std::min<std::size_t>(max, 1024)); }

    std::uint32_t find(std::uint64_t sender) const {
        auto it = index_.find(sender);
        return it == index_.end() ? none : it->second;
    }
    bool seen(std::uint32_t slot, std::uint64_t seq) const noexcept { return slots_[slot].seen(seq); }

    /// Records an authenticated sequence; slot is find(sender) from before the message was authenticated.
    void accept(std::uint32_t slot, std::uint64_t sender, std::uint64_t seq) {
        if (slot == none) {
            slot = take_slot();
            auto& w = slots_[slot];
            w = window{};
            w.sender = sender;
            w.top = seq;
            index_.emplace(sender, slot);
            link_front(slot);
        } else if (slot != newest_) {
            unlink(slot);
            link_front(slot);
        }
        slots_[slot].accept(seq);
    }

    std::size_t size() const noexcept { return index_.size(); }

private:
    std::uint32_t take_slot() {
        if (slots_.size() < max_) {
            slots_.emplace_back();
            return static_cast<std::uint32_t>(slots_.size() - 1);
        }
        const auto victim = oldest_;
        index_.erase(slots_[victim].sender);
        unlink(victim);
        return victim;
    }
    void unlink(std::uint32_t s) noexcept {
        auto& w = slots_[s];
        if (w.newer != none) slots_[w.newer].older = w.older;
        else newest_ = w.older;
        if (w.older != none) slots_[w.older].newer = w.newer;
        else oldest_ = w.newer;
        w.newer = w.older = none;
    }
    void link_front(std::uint32_t s) noexcept {
        auto& w = slots_[s];
        w.newer = none;
        w.older = newest_;
        if (newest_ != none) slots_[newest_].newer = s;
        newest_ = s;
        if (oldest_ == none) oldest_ = s;
    }

    std::size_t max_;
    std::vector<window> slots_;
    std::unordered_map<std::uint64_t, std::uint32_t> index_;
    std::uint32_t newest_ = none;
    std::uint32_t oldest_ = none;
};

} // namespace

struct opener::impl {
    ring_view keys;
    std::array<std::byte, 4> label_tag{};
    std::array<std::byte, ad_size> ad{};
    replay_table replay;

    impl(const std::shared_ptr<keyring::impl>& ring, std::string_view label, const replay_config& config)
        : keys(ring), replay(config.max_senders) {
        const auto h = hash_label(label);
        std::copy_n(h.begin(), label_tag.size(), label_tag.begin());
        std::ranges::copy(h, ad.begin() + header_size);
    }
};

opener::opener(const keyring& ring, std::string_view label, replay_config replay) {
    Expects(replay.validate().has_value());
    detail::sodium_init_once();
    impl_ = std::make_unique<impl>(ring.impl_, label, replay);
}
opener::~opener() = default;
opener::opener(opener&&) noexcept = default;
opener& opener::operator=(opener&&) noexcept = default;

std::size_t opener::tracked_senders() const noexcept { return impl_->replay.size(); }

result<opened> opener::open(std::span<const std::byte> sealed, std::span<std::byte> out) {
    auto& s = *impl_;
    if (sealed.size() < overhead) return errc::truncated;
    const std::byte* h = sealed.data();
    if (std::to_integer<std::uint8_t>(h[0]) != format_version) return errc::unsupported_version;
    if (std::memcmp(h + label_tag_at, s.label_tag.data(), s.label_tag.size()) != 0) return errc::wrong_cluster;
    const key_id id = load_be32(h + key_id_at);
    const auto* key = s.keys.current().find(id);
    if (!key) return errc::unknown_key;
    const std::uint64_t sender = load_be64(h + sender_at);
    const std::uint64_t sequence = load_be64(h + sequence_at);
    const auto slot = s.replay.find(sender);
    if (slot != none && s.replay.seen(slot, sequence)) return errc::replayed;
    const std::size_t size = sealed.size() - overhead;
    if (out.size() < size) return errc::invalid_argument;
    if (overlaps(sealed, out.first(size)) && out.data() != sealed.data() + header_size) return errc::invalid_argument;

    std::memcpy(s.ad.data(), h, header_size);
    unsigned long long written = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(u(out.data()), &written, nullptr, u(h + header_size),
                                                   sealed.size() - header_size, u(s.ad.data()), s.ad.size(),
                                                   u(h + nonce_at), key->bytes.data()) != 0)
        return errc::authentication_failed;
    s.replay.accept(slot, sender, sequence);
    return opened{sender, sequence, id, static_cast<std::size_t>(written)};
}

result<opened> opener::open(std::span<const std::byte> sealed, std::vector<std::byte>& out) {
    out.resize(sealed.size() < overhead ? 0 : sealed.size() - overhead);
    auto r = open(sealed, std::span{out});
    if (!r) out.clear();
    return r;
}

} // namespace swarm::inline v0::seal
