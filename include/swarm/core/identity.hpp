// Node identity: an Ed25519 key pair that signs, an X25519 key pair that receives sealed boxes, and the
// node id derived from the signing key. Keys live in a small versioned file readable by the owner only.
#pragma once

#include <swarm/core/error.hpp>

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::inline v0 {

/// 32 bytes: BLAKE2b-256 of the node's Ed25519 public key. Ordered and hashable, so it keys maps and sets.
class node_id {
public:
    static constexpr std::size_t size = 32;
    using bytes_type = std::array<std::byte, size>;

    /// The all-zero id, which no key produces in practice; useful as "none yet".
    constexpr node_id() noexcept = default;
    constexpr explicit node_id(const bytes_type& bytes) noexcept : bytes_(bytes) {}

    /// The id of the node whose Ed25519 public key this is.
    static node_id from_public_key(std::span<const std::byte, 32> ed25519_public);

    /// Reads 64 hex digits (either case); errc::malformed with a sentence on anything else.
    static detailed_result<node_id> parse(std::string_view hex);

    /// 64 lowercase hex digits.
    std::string to_string() const;
    /// The first 8 bytes as 16 hex digits, for logs.
    std::string short_string() const;

    constexpr const bytes_type& bytes() const noexcept { return bytes_; }

    friend constexpr auto operator<=>(const node_id&, const node_id&) noexcept = default;

private:
    bytes_type bytes_{};
};

/// A node's secret keys. Movable, not copyable; the secrets are wiped (sodium_memzero) when destroyed.
/// A moved-from identity holds no keys and may only be assigned to or destroyed. Const members may be
/// called from several threads at once.
class identity {
public:
    using ed25519_public_key = std::array<std::byte, 32>;
    using x25519_public_key = std::array<std::byte, 32>;
    using signature = std::array<std::byte, 64>;
    /// crypto_box_seal adds an ephemeral public key and a tag to every sealed message.
    static constexpr std::size_t seal_overhead = 48;

    /// Fresh random keys.
    static identity generate();
    /// Keys derived from a 32-byte seed: the same seed gives the same identity. For simulations and tests that
    /// must replay; a production node uses generate() or a key file.
    static identity from_seed(std::span<const std::byte, 32> seed);

    /// Reads a key file written by save(). Errors, each naming the path: errc::not_found (no such file),
    /// errc::io_error (cannot be read), errc::key_file_permissions (group or others have any access, as ssh
    /// refuses), errc::key_file_corrupt (size, magic, version, checksum, or a public key that does not match
    /// its secret key).
    static detailed_result<identity> load(const std::filesystem::path& path);

    /// load(), or when and only when the file does not exist, generate() and save. Any other failure is
    /// returned and the file left as it is: a damaged key file is never silently replaced by a new identity.
    /// Two processes racing to create the same file end up with the same identity.
    static detailed_result<identity> load_or_create(const std::filesystem::path& path);

    /// Writes the key file with mode 0600, atomically (temporary file, fsync, rename, fsync of the directory).
    /// Replaces an existing file. Fails with errc::io_error naming the path.
    detailed_result<void> save(const std::filesystem::path& path) const;

    identity(identity&&) noexcept;
    identity& operator=(identity&&) noexcept;
    identity(const identity&) = delete;
    identity& operator=(const identity&) = delete;
    ~identity();

    const node_id& id() const noexcept;
    const ed25519_public_key& signing_public_key() const noexcept;
    const x25519_public_key& box_public_key() const noexcept;

    /// A detached Ed25519 signature of `message`.
    signature sign(std::span<const std::byte> message) const;
    /// Whether `sig` is `signer`'s signature of `message`.
    static bool verify(const ed25519_public_key& signer, std::span<const std::byte> message, const signature& sig);

    /// An anonymous sealed box only the holder of `recipient`'s secret key can open;
    /// seal_overhead bytes longer than `plaintext`. errc::invalid_argument when `recipient` is not a usable
    /// public key (a low-order point such as all zeros, which would make the box readable by anyone).
    static result<std::vector<std::byte>> seal_to(const x25519_public_key& recipient,
                                                  std::span<const std::byte> plaintext);
    /// Opens a box sealed to this identity: errc::truncated when shorter than seal_overhead,
    /// errc::authentication_failed when it was sealed to another key or altered.
    result<std::vector<std::byte>> open_sealed(std::span<const std::byte> ciphertext) const;

private:
    struct keys;
    explicit identity(std::unique_ptr<keys> k) noexcept;
    detailed_result<void> write(const std::filesystem::path& path, bool replace) const;
    std::unique_ptr<keys> keys_;
};

} // namespace swarm::inline v0

template <>
struct std::hash<swarm::node_id> {
    std::size_t operator()(const swarm::node_id& id) const noexcept {
        // The id is already a uniform hash; its first bytes are as good as any mix of them.
        std::size_t h = 0;
        for (std::size_t i = 0; i < sizeof h; ++i) h = (h << 8) | std::to_integer<std::size_t>(id.bytes()[i]);
        return h;
    }
};
