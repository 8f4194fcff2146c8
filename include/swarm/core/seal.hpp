// Message protection: XChaCha20-Poly1305 over datagrams, with a keyring for rotation, a cluster label bound
// into every message, and a per-sender replay window.
//
// Sealed datagram (version 1), header in clear and authenticated:
//   0   u8      format version (1)
//   1   4 bytes label tag: the first 4 bytes of the label hash, BLAKE2b-256 of a domain string and the label
//   5   4 bytes key id: the first 4 bytes of BLAKE2b keyed with the key, over a fixed string
//   9   u64 BE  sender
//   17  u64 BE  sequence
//   25  8 bytes salt, random per sealer
//   33  ...     ciphertext, then the 16-byte Poly1305 tag
// Associated data: the 33 header bytes followed by the full 32-byte label hash.
//
// Nonces: the 24-byte nonce is header bytes 9..33 (sender, sequence, salt). A sealer never repeats a sequence
// (it counts up and refuses to wrap), so one sealer never repeats a nonce; two sealers with the same sender
// id (a restart, a misconfiguration) differ in their random 64-bit salts. Deriving the nonce instead of
// drawing 24 random bytes per message costs nothing per message and spends no header space beyond the salt.
//
// Wrong cluster: the label tag is in clear so that a message for another cluster is reported as
// errc::wrong_cluster before any cryptography. The tag is a hint, not a proof: the full label hash is what
// is authenticated, so a label whose tag collides still fails with errc::authentication_failed, and a forged
// header can only make a datagram be dropped under another error code. The tag does reveal to an observer
// which cluster a datagram belongs to; labels are not secrets.
//
// Replay: the opener keeps, per sender, the highest sequence it authenticated and a bitmap of the 1,024
// sequences below it. A sequence already seen, or 1,024 or more below the highest, is errc::replayed. Senders
// enter the table only after a message from them authenticates, so forged traffic cannot flush it. The table
// is bounded (replay_config::max_senders) and evicts the least recently heard sender. Residual risk: once a
// sender is evicted, messages of it that an attacker recorded can be replayed once each, until the
// sender's next genuine message re-enters it. An opener that restarts starts with an empty table and has
// the same exposure for every sender. Size the table above the cluster size so that eviction never touches
// live members, and let the protocol above reject stale content (incarnations, timestamps) as well.
//
// Restarts: a restarted sender must start above the sequences its previous life used, or its messages are
// rejected as replays until it passes them. The caller chooses the first sequence, e.g. the wall-clock time
// in microseconds (safe while the clock does not step back and the sender averages under one message per
// microsecond; 2^64 microseconds is about 584,000 years), or a persisted epoch counter shifted left by 32.
//
// Threading: keyring methods may be called from any thread at any time; a sealer or an opener is used from
// one thread (strand) at a time, and picks up keyring changes at its next call.
#pragma once

#include <swarm/core/error.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace swarm::inline v0::seal {

inline constexpr std::size_t key_size = 32;
inline constexpr std::size_t header_size = 33;
inline constexpr std::size_t tag_size = 16;
/// Bytes a sealed datagram has beyond its plaintext.
inline constexpr std::size_t overhead = header_size + tag_size;
/// The sealed format this build writes and reads.
inline constexpr std::uint8_t format_version = 1;

/// The first 4 bytes of a keyed BLAKE2b of the key: names the key in headers without revealing it.
using key_id = std::uint32_t;

/// Computes the id a key has in sealed headers.
key_id id_of(std::span<const std::byte, key_size> key) noexcept;

/// One primary key, used to seal, plus any number of keys accepted when opening. Rotation: add() the new
/// key on every node, make_primary() it everywhere, then remove() the old one. Key bytes are wiped when
/// they leave the ring. Copies of a keyring share one set of keys, and so do the sealers and openers made
/// from it: a change through any copy is seen by all.
class keyring {
public:
    /// An empty ring: sealing fails with errc::unknown_key until a key is added.
    keyring();
    ~keyring();
    keyring(const keyring&);
    keyring& operator=(const keyring&);

    /// Adds a key (the first one added becomes primary). errc::invalid_argument unless it is key_size bytes;
    /// errc::already_exists when a key with the same id is already in the ring.
    result<key_id> add(std::span<const std::byte> key);
    /// errc::not_found when no key has this id.
    result<void> make_primary(key_id id);
    /// errc::invalid_argument for the primary key (make another primary first); errc::not_found.
    result<void> remove(key_id id);

    std::optional<key_id> primary() const;
    bool contains(key_id id) const;
    /// Every key id, the primary first.
    std::vector<key_id> ids() const;

    struct impl;

private:
    friend class sealer;
    friend class opener;
    std::shared_ptr<impl> impl_;
};

/// Seals datagrams from one sender. Not thread-safe; a moved-from sealer may only be destroyed or assigned.
class sealer {
public:
    /// Bytes a sealed datagram has beyond its plaintext (the namespace's overhead, for sealer::overhead users).
    static constexpr std::size_t overhead = ::swarm::seal::overhead;

    /// first_sequence: the sequence of the first message; see "Restarts" above for choosing it.
    /// salt: leave it empty in production (drawn from the OS); the simulator passes one drawn from its seed so
    /// that a run replays bit for bit. Two sealers with one sender and key must never share a salt.
    sealer(const keyring& keys, std::string_view label, std::uint64_t sender, std::uint64_t first_sequence,
           std::optional<std::uint64_t> salt = std::nullopt);
    ~sealer();
    sealer(sealer&&) noexcept;
    sealer& operator=(sealer&&) noexcept;

    /// Writes plaintext.size() + overhead bytes to out and returns that size. The plaintext may sit exactly in
    /// place, at out + header_size (a message encoded there is sealed without a copy). Errors:
    /// errc::invalid_argument when out is too small or overlaps plaintext otherwise, errc::unknown_key when
    /// the ring has no key, errc::too_large once the sequence space is exhausted.
    result<std::size_t> seal(std::span<const std::byte> plaintext, std::span<std::byte> out);
    /// The same, into a new vector.
    result<std::vector<std::byte>> seal(std::span<const std::byte> plaintext);

    std::uint64_t sender() const noexcept;
    /// The sequence the next message will carry.
    std::uint64_t next_sequence() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// The opener's replay bookkeeping.
struct replay_config {
    /// Senders whose windows are kept; the least recently heard is evicted beyond this.
    std::size_t max_senders = 4096;

    detailed_result<void> validate() const;
};

/// What open() authenticated.
struct opened {
    std::uint64_t sender = 0;
    std::uint64_t sequence = 0;
    key_id key = 0;
    /// Plaintext bytes written to out.
    std::size_t size = 0;
};

/// Opens datagrams from any sender of one cluster. Not thread-safe; a moved-from opener may only be
/// destroyed or assigned.
class opener {
public:
    /// replay must be valid (see replay_config::validate()); an invalid one is a contract violation.
    opener(const keyring& keys, std::string_view label, replay_config replay = {});
    ~opener();
    opener(opener&&) noexcept;
    opener& operator=(opener&&) noexcept;

    /// Authenticates and decrypts into out: at least sealed.size() - overhead bytes, not overlapping sealed
    /// unless exactly in place (out starting at sealed + header_size).
    /// Errors, in the order they are checked: errc::truncated (shorter than overhead),
    /// errc::unsupported_version, errc::wrong_cluster, errc::unknown_key, errc::replayed,
    /// errc::invalid_argument (out too small or overlapping), errc::authentication_failed. On failure out
    /// holds no plaintext, and the replay window moves only when a message authenticates.
    result<opened> open(std::span<const std::byte> sealed, std::span<std::byte> out);
    /// The same, into out resized to the plaintext.
    result<opened> open(std::span<const std::byte> sealed, std::vector<std::byte>& out);

    /// Senders currently tracked (at most replay_config::max_senders).
    std::size_t tracked_senders() const noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace swarm::inline v0::seal
