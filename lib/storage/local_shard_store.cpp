// One directory of shard files. A file is header + payload; the header names the shard and checksums the
// payload, so a torn, truncated, flipped or misplaced file is never served as the shard.
#include <swarm/storage/shard_store.hpp>

#include <fmt/format.h>
#include <isa-l/crc64.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <system_error>

namespace swarm::inline v0::storage {

namespace {

constexpr std::array<std::uint8_t, 4> magic{'S', 'W', 'S', 'H'};
constexpr std::uint8_t version = 1;
constexpr std::size_t header_size = 56; // magic 4, version 1, pad 1, index 2, length 8, crc64 8, chunk id 32

struct header {
    std::array<std::uint8_t, header_size> bytes{};

    static header make(const shard_id& id, std::uint64_t length, std::uint64_t crc) {
        header h;
        std::memcpy(h.bytes.data(), magic.data(), 4);
        h.bytes[4] = version;
        std::memcpy(h.bytes.data() + 6, &id.index, 2);
        std::memcpy(h.bytes.data() + 8, &length, 8);
        std::memcpy(h.bytes.data() + 16, &crc, 8);
        std::memcpy(h.bytes.data() + 24, id.chunk.data(), 32);
        return h;
    }
    std::uint64_t length() const {
        std::uint64_t v;
        std::memcpy(&v, bytes.data() + 8, 8);
        return v;
    }
    std::uint64_t crc() const {
        std::uint64_t v;
        std::memcpy(&v, bytes.data() + 16, 8);
        return v;
    }
    bool names(const shard_id& id) const {
        std::uint16_t index;
        std::memcpy(&index, bytes.data() + 6, 2);
        return std::memcmp(bytes.data(), magic.data(), 4) == 0 && bytes[4] == version && index == id.index &&
               std::memcmp(bytes.data() + 24, id.chunk.data(), 32) == 0;
    }
};

std::uint64_t checksum(std::span<const std::byte> payload) {
    return crc64_ecma_refl(0, reinterpret_cast<const unsigned char*>(payload.data()), payload.size());
}

std::string file_name(const shard_id& id) {
    std::string name;
    name.reserve(70);
    for (auto b : id.chunk) fmt::format_to(std::back_inserter(name), "{:02x}", b);
    fmt::format_to(std::back_inserter(name), ".{}", id.index);
    return name;
}

std::optional<shard_id> parse_name(std::string_view name) {
    if (name.size() < 66 || name[64] != '.') return std::nullopt;
    shard_id id;
    for (std::size_t i = 0; i < 32; ++i) {
        unsigned v = 0;
        for (std::size_t j = 0; j < 2; ++j) {
            const char c = name[2 * i + j];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
            else return std::nullopt;
        }
        id.chunk[i] = static_cast<std::uint8_t>(v);
    }
    unsigned index = 0;
    for (char c : name.substr(65)) {
        if (c < '0' || c > '9' || index > 6553) return std::nullopt;
        index = index * 10 + static_cast<unsigned>(c - '0');
    }
    if (index > 0xffff) return std::nullopt;
    id.index = static_cast<std::uint16_t>(index);
    return id;
}

class fd_guard {
public:
    explicit fd_guard(int fd) : fd_(fd) {}
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }

private:
    int fd_;
};

boost::system::error_code io_failure() {
    return errno == ENOENT ? make_error_code(errc::not_found) : make_error_code(errc::io_error);
}

class local_shard_store final : public shard_store {
public:
    local_shard_store(std::filesystem::path root, int shards_dir_fd)
        : root_(std::move(root)), shards_(root_ / "shards"), tmp_(root_ / "tmp"), dir_fd_(shards_dir_fd) {}

    result<void> put(const shard_id& id, std::span<const std::byte> payload) override {
        const header h = header::make(id, payload.size(), checksum(payload));
        const std::string name = file_name(id);
        const auto tmp = tmp_ / fmt::format("{}.{}", name, counter_++);
        fd_guard fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (fd.get() < 0) return make_error_code(errc::io_error);
        std::array<iovec, 2> parts{iovec{const_cast<std::uint8_t*>(h.bytes.data()), h.bytes.size()},
                                   iovec{const_cast<std::byte*>(payload.data()), payload.size()}};
        const auto total = static_cast<ssize_t>(h.bytes.size() + payload.size());
        ssize_t written = 0;
        // One writev almost always suffices; a short write falls back to plain writes of the rest.
        written = ::writev(fd.get(), parts.data(), 2);
        while (written >= 0 && written < total) {
            const auto done = static_cast<std::size_t>(written);
            const std::byte* from = done < header_size ? reinterpret_cast<const std::byte*>(h.bytes.data()) + done
                                                       : payload.data() + (done - header_size);
            const std::size_t left = done < header_size ? header_size - done : payload.size() - (done - header_size);
            const ssize_t n = ::write(fd.get(), from, left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            written += n;
        }
        if (written != total || ::fdatasync(fd.get()) != 0) {
            ::unlink(tmp.c_str());
            return make_error_code(errc::io_error);
        }
        if (::close(fd.release()) != 0 || ::rename(tmp.c_str(), (shards_ / name).c_str()) != 0) {
            ::unlink(tmp.c_str());
            return make_error_code(errc::io_error);
        }
        dirty_ = true;
        return {};
    }

    result<void> get(const shard_id& id, std::span<std::byte> out) override {
        fd_guard fd(::open((shards_ / file_name(id)).c_str(), O_RDONLY | O_CLOEXEC));
        if (fd.get() < 0) return io_failure();
        header h;
        // One readv normally does it all; the probe byte past the payload catches a file that is too long.
        std::byte extra;
        std::array<iovec, 3> parts{iovec{h.bytes.data(), h.bytes.size()}, iovec{out.data(), out.size()}, iovec{&extra, 1}};
        const ssize_t want = static_cast<ssize_t>(header_size + out.size());
        ssize_t got = ::readv(fd.get(), parts.data(), 3);
        if (got > want) return make_error_code(errc::malformed);
        const bool at_end = got == want; // a regular file reads short only at its end
        while (got >= 0 && got < want) { // short reads: continue with plain reads
            const auto done = static_cast<std::size_t>(got);
            std::byte* to = done < header_size ? reinterpret_cast<std::byte*>(h.bytes.data()) + done
                                               : out.data() + (done - header_size);
            const std::size_t left = done < header_size ? header_size - done : out.size() - (done - header_size);
            const ssize_t n = ::read(fd.get(), to, left);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got += n;
        }
        if (got < 0) return make_error_code(errc::io_error);
        if (got < want) return make_error_code(errc::truncated);
        // After short reads the end is not established yet: one more read must find it.
        if (!at_end && ::read(fd.get(), &extra, 1) != 0) return make_error_code(errc::malformed);
        if (!h.names(id) || h.length() != out.size() || h.crc() != checksum(out)) return make_error_code(errc::malformed);
        return {};
    }

    result<void> remove(const shard_id& id) override {
        if (::unlink((shards_ / file_name(id)).c_str()) != 0) {
            if (errno == ENOENT) return {};
            return make_error_code(errc::io_error);
        }
        dirty_ = true;
        return {};
    }

    result<bool> contains(const shard_id& id) override {
        struct stat st;
        if (::stat((shards_ / file_name(id)).c_str(), &st) == 0) return true;
        if (errno == ENOENT) return false;
        return {boost::system::in_place_error, make_error_code(errc::io_error)};
    }

    result<std::vector<shard_id>> list() override {
        std::vector<shard_id> out;
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator(shards_, ec))
            if (auto id = parse_name(entry.path().filename().string())) out.push_back(*id);
        if (ec) return make_error_code(errc::io_error);
        return out;
    }

    result<void> sync() override {
        if (!dirty_) return {};
        if (::fsync(dir_fd_.get()) != 0) return make_error_code(errc::io_error);
        dirty_ = false;
        return {};
    }

private:
    std::filesystem::path root_;
    std::filesystem::path shards_;
    std::filesystem::path tmp_;
    fd_guard dir_fd_;
    std::uint64_t counter_ = 0;
    bool dirty_ = false;
};

} // namespace

detailed_result<std::unique_ptr<shard_store>> open_local_shard_store(const std::filesystem::path& directory) {
    std::error_code ec;
    std::filesystem::create_directories(directory / "shards", ec);
    if (!ec) std::filesystem::create_directories(directory / "tmp", ec);
    if (ec) return error{errc::io_error, fmt::format("cannot create shard store {}: {}", directory.string(), ec.message())};
    // Temporary files are puts that never reached their rename: a crash left them, nothing refers to them.
    for (const auto& entry : std::filesystem::directory_iterator(directory / "tmp", ec)) std::filesystem::remove(entry.path(), ec);
    const int fd = ::open((directory / "shards").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return error{errc::io_error, fmt::format("cannot open {}: {}", (directory / "shards").string(), std::strerror(errno))};
    return std::unique_ptr<shard_store>(std::make_unique<local_shard_store>(directory, fd));
}

} // namespace swarm::inline v0::storage
