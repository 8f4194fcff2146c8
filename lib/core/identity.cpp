#include <swarm/core/identity.hpp>

#include "core/atomic_file.hpp"
#include "core/sodium_init.hpp"

#include <gsl/assert>
#include <sodium.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace swarm::inline v0 {
namespace {

// Key file, version 1, 172 bytes:
//   magic "SWARMKEY" | version u16 BE | reserved u16 (zero) | Ed25519 secret key (seed and public key, 64) |
//   X25519 secret key (32) | X25519 public key (32) | BLAKE2b-256 of everything before it (32)
constexpr std::array<unsigned char, 8> key_file_magic{'S', 'W', 'A', 'R', 'M', 'K', 'E', 'Y'};
constexpr std::uint16_t key_file_version = 1;
constexpr std::size_t header_size = 12;
constexpr std::size_t sign_secret_offset = header_size;
constexpr std::size_t box_secret_offset = sign_secret_offset + crypto_sign_SECRETKEYBYTES;
constexpr std::size_t box_public_offset = box_secret_offset + crypto_box_SECRETKEYBYTES;
constexpr std::size_t checksum_offset = box_public_offset + crypto_box_PUBLICKEYBYTES;
constexpr std::size_t key_file_size = checksum_offset + crypto_generichash_BYTES;
static_assert(key_file_size == 172);

// A stack buffer for secrets that is wiped however the scope is left.
template <std::size_t N>
struct secret_buffer {
    std::array<unsigned char, N> bytes{};
    secret_buffer() = default;
    secret_buffer(const secret_buffer&) = delete;
    secret_buffer& operator=(const secret_buffer&) = delete;
    ~secret_buffer() { ::sodium_memzero(bytes.data(), bytes.size()); }
};

const unsigned char* as_uchar(const std::byte* p) noexcept { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* as_uchar(std::byte* p) noexcept { return reinterpret_cast<unsigned char*>(p); }

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string to_hex(std::span<const std::byte> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string text;
    text.reserve(bytes.size() * 2);
    for (auto b : bytes) {
        text += digits[std::to_integer<unsigned>(b) >> 4];
        text += digits[std::to_integer<unsigned>(b) & 0xf];
    }
    return text;
}

error corrupt(const std::filesystem::path& path, std::string_view why) {
    return {errc::key_file_corrupt, "key file " + path.string() + " is corrupt: " + std::string(why)};
}

} // namespace

node_id node_id::from_public_key(std::span<const std::byte, 32> ed25519_public) {
    detail::sodium_init_once();
    bytes_type out{};
    ::crypto_generichash(as_uchar(out.data()), out.size(), as_uchar(ed25519_public.data()), ed25519_public.size(),
                         nullptr, 0);
    return node_id(out);
}

detailed_result<node_id> node_id::parse(std::string_view hex) {
    if (hex.size() != size * 2)
        return error{errc::malformed,
                     "a node id is 64 hex digits, got " + std::to_string(hex.size()) + " characters"};
    bytes_type out{};
    for (std::size_t i = 0; i < size; ++i) {
        int high = hex_digit(hex[2 * i]);
        int low = hex_digit(hex[2 * i + 1]);
        if (high < 0 || low < 0) {
            auto at = high < 0 ? 2 * i : 2 * i + 1;
            return error{errc::malformed, "a node id is 64 hex digits, got '" + std::string(1, hex[at]) +
                                              "' at position " + std::to_string(at)};
        }
        out[i] = static_cast<std::byte>((high << 4) | low);
    }
    return node_id(out);
}

std::string node_id::to_string() const { return to_hex(bytes_); }
std::string node_id::short_string() const { return to_hex(std::span(bytes_).first<8>()); }

struct identity::keys {
    std::array<unsigned char, crypto_sign_SECRETKEYBYTES> sign_secret{};
    std::array<unsigned char, crypto_box_SECRETKEYBYTES> box_secret{};
    ed25519_public_key sign_public{};
    x25519_public_key box_public{};
    node_id id;

    keys() = default;
    keys(const keys&) = delete;
    keys& operator=(const keys&) = delete;
    ~keys() {
        ::sodium_memzero(sign_secret.data(), sign_secret.size());
        ::sodium_memzero(box_secret.data(), box_secret.size());
    }
};

identity::identity(std::unique_ptr<keys> k) noexcept : keys_(std::move(k)) {}
identity::identity(identity&&) noexcept = default;
identity& identity::operator=(identity&&) noexcept = default;
identity::~identity() = default;

identity identity::generate() {
    detail::sodium_init_once();
    auto k = std::make_unique<keys>();
    ::crypto_sign_keypair(as_uchar(k->sign_public.data()), k->sign_secret.data());
    ::crypto_box_keypair(as_uchar(k->box_public.data()), k->box_secret.data());
    k->id = node_id::from_public_key(k->sign_public);
    return identity(std::move(k));
}

identity identity::from_seed(std::span<const std::byte, 32> seed) {
    detail::sodium_init_once();
    auto k = std::make_unique<keys>();
    ::crypto_sign_seed_keypair(as_uchar(k->sign_public.data()), k->sign_secret.data(),
                               reinterpret_cast<const unsigned char*>(seed.data()));
    // The box key pair gets its own seed, derived from the given one, so the two keys are independent.
    std::array<unsigned char, crypto_box_SEEDBYTES> box_seed{};
    static constexpr char domain[] = "swarm identity box seed";
    ::crypto_generichash(box_seed.data(), box_seed.size(), reinterpret_cast<const unsigned char*>(seed.data()),
                         seed.size(), reinterpret_cast<const unsigned char*>(domain), sizeof domain - 1);
    ::crypto_box_seed_keypair(as_uchar(k->box_public.data()), k->box_secret.data(), box_seed.data());
    ::sodium_memzero(box_seed.data(), box_seed.size());
    k->id = node_id::from_public_key(k->sign_public);
    return identity(std::move(k));
}

const node_id& identity::id() const noexcept {
    Expects(keys_);
    return keys_->id;
}

const identity::ed25519_public_key& identity::signing_public_key() const noexcept {
    Expects(keys_);
    return keys_->sign_public;
}

const identity::x25519_public_key& identity::box_public_key() const noexcept {
    Expects(keys_);
    return keys_->box_public;
}

identity::signature identity::sign(std::span<const std::byte> message) const {
    Expects(keys_);
    signature sig{};
    ::crypto_sign_detached(as_uchar(sig.data()), nullptr, as_uchar(message.data()), message.size(),
                           keys_->sign_secret.data());
    return sig;
}

bool identity::verify(const ed25519_public_key& signer, std::span<const std::byte> message, const signature& sig) {
    detail::sodium_init_once();
    return ::crypto_sign_verify_detached(as_uchar(sig.data()), as_uchar(message.data()), message.size(),
                                         as_uchar(signer.data())) == 0;
}

result<std::vector<std::byte>> identity::seal_to(const x25519_public_key& recipient,
                                                std::span<const std::byte> plaintext) {
    detail::sodium_init_once();
    std::vector<std::byte> sealed(plaintext.size() + seal_overhead);
    if (::crypto_box_seal(as_uchar(sealed.data()), as_uchar(plaintext.data()), plaintext.size(),
                          as_uchar(recipient.data())) != 0)
        return make_error_code(errc::invalid_argument);
    return sealed;
}

result<std::vector<std::byte>> identity::open_sealed(std::span<const std::byte> ciphertext) const {
    Expects(keys_);
    if (ciphertext.size() < seal_overhead) return make_error_code(errc::truncated);
    std::vector<std::byte> plain(ciphertext.size() - seal_overhead);
    if (::crypto_box_seal_open(as_uchar(plain.data()), as_uchar(ciphertext.data()), ciphertext.size(),
                               as_uchar(keys_->box_public.data()), keys_->box_secret.data()) != 0)
        return make_error_code(errc::authentication_failed);
    return plain;
}

detailed_result<void> identity::save(const std::filesystem::path& path) const { return write(path, true); }

detailed_result<void> identity::write(const std::filesystem::path& path, bool replace) const {
    Expects(keys_);
    secret_buffer<key_file_size> file;
    auto& b = file.bytes;
    std::memcpy(b.data(), key_file_magic.data(), key_file_magic.size());
    b[8] = static_cast<unsigned char>(key_file_version >> 8);
    b[9] = static_cast<unsigned char>(key_file_version & 0xff);
    std::memcpy(b.data() + sign_secret_offset, keys_->sign_secret.data(), keys_->sign_secret.size());
    std::memcpy(b.data() + box_secret_offset, keys_->box_secret.data(), keys_->box_secret.size());
    std::memcpy(b.data() + box_public_offset, keys_->box_public.data(), keys_->box_public.size());
    ::crypto_generichash(b.data() + checksum_offset, crypto_generichash_BYTES, b.data(), checksum_offset, nullptr, 0);
    return detail::write_file_atomically(path, std::as_bytes(std::span(b)),
                                         {.mode = 0600, .keep_existing_mode = false, .replace = replace,
                                          .what = "key file"});
}

detailed_result<identity> identity::load(const std::filesystem::path& path) {
    detail::sodium_init_once();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT) return error{errc::not_found, "key file " + path.string() + " does not exist"};
        return error{errc::io_error, "cannot open key file " + path.string() + ": " + detail::errno_text(err)};
    }
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } close_on_exit{fd};

    struct stat info{};
    if (::fstat(fd, &info) != 0)
        return error{errc::io_error, "cannot stat key file " + path.string() + ": " + detail::errno_text(errno)};
    if (!S_ISREG(info.st_mode))
        return error{errc::io_error, "key file " + path.string() + " is not a regular file"};
    if ((info.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
        return error{errc::key_file_permissions, "key file " + path.string() +
                                                     " is accessible by group or others (mode " + mode +
                                                     "); restrict it with chmod 600 " + path.string()};
    }

    // One byte more than a valid file, so an overlong file is told apart from a valid one.
    secret_buffer<key_file_size + 1> file;
    std::size_t size = 0;
    while (size < file.bytes.size()) {
        auto n = ::read(fd, file.bytes.data() + size, file.bytes.size() - size);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return error{errc::io_error, "cannot read key file " + path.string() + ": " + detail::errno_text(errno)};
        if (n == 0) break;
        size += static_cast<std::size_t>(n);
    }
    const auto& b = file.bytes;
    if (size < header_size || std::memcmp(b.data(), key_file_magic.data(), key_file_magic.size()) != 0)
        return corrupt(path, "it does not start with the swarm key file magic");
    unsigned version = (unsigned{b[8]} << 8) | b[9];
    if (version != key_file_version)
        return corrupt(path, "version " + std::to_string(version) + ", this build reads version " +
                                 std::to_string(key_file_version));
    if (size != key_file_size)
        return corrupt(path, size > key_file_size ? "longer than " + std::to_string(key_file_size) + " bytes"
                                                  : std::to_string(size) + " bytes instead of " +
                                                        std::to_string(key_file_size));
    std::array<unsigned char, crypto_generichash_BYTES> checksum{};
    ::crypto_generichash(checksum.data(), checksum.size(), b.data(), checksum_offset, nullptr, 0);
    if (::sodium_memcmp(checksum.data(), b.data() + checksum_offset, checksum.size()) != 0)
        return corrupt(path, "checksum mismatch");
    if (b[10] != 0 || b[11] != 0) return corrupt(path, "reserved header bytes are not zero");

    auto k = std::make_unique<keys>();
    std::memcpy(k->sign_secret.data(), b.data() + sign_secret_offset, k->sign_secret.size());
    std::memcpy(k->box_secret.data(), b.data() + box_secret_offset, k->box_secret.size());
    std::memcpy(k->box_public.data(), b.data() + box_public_offset, k->box_public.size());
    ::crypto_sign_ed25519_sk_to_pk(as_uchar(k->sign_public.data()), k->sign_secret.data());

    // The checksum only catches accidents; a public key that does not belong to its secret key would make
    // this node sign as one identity and be addressed as another.
    secret_buffer<crypto_sign_SECRETKEYBYTES> derived_secret;
    std::array<unsigned char, crypto_sign_PUBLICKEYBYTES> derived_public{};
    ::crypto_sign_seed_keypair(derived_public.data(), derived_secret.bytes.data(), k->sign_secret.data());
    if (std::memcmp(derived_public.data(), k->sign_public.data(), derived_public.size()) != 0)
        return corrupt(path, "the Ed25519 public key does not match its secret key");
    std::array<unsigned char, crypto_box_PUBLICKEYBYTES> derived_box_public{};
    ::crypto_scalarmult_base(derived_box_public.data(), k->box_secret.data());
    if (std::memcmp(derived_box_public.data(), k->box_public.data(), derived_box_public.size()) != 0)
        return corrupt(path, "the X25519 public key does not match its secret key");
    k->id = node_id::from_public_key(k->sign_public);
    return identity(std::move(k));
}

detailed_result<identity> identity::load_or_create(const std::filesystem::path& path) {
    auto loaded = load(path);
    if (loaded || loaded.error() != errc::not_found) return loaded;
    auto fresh = generate();
    auto written = fresh.write(path, false);
    // Another process created the file between our load and our write: its identity wins, so load it.
    if (!written && written.error() == errc::already_exists) return load(path);
    if (!written) return written.error();
    return fresh;
}

} // namespace swarm::inline v0
