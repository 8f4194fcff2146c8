#include "core/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace swarm::inline v0::detail {
namespace {

std::atomic<unsigned> temp_counter{0};

class fd_guard {
public:
    explicit fd_guard(int fd) noexcept : fd_(fd) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const noexcept { return fd_; }
    // close() reports write-back errors on some filesystems, so its result matters for the data file.
    int close() noexcept {
        int rc = ::close(fd_);
        fd_ = -1;
        return rc;
    }

private:
    int fd_;
};

error io_failure(std::string_view what, const std::filesystem::path& path, std::string_view action, int err) {
    return {errc::io_error, std::string("cannot ") + std::string(action) + " " + std::string(what) + " " +
                                path.string() + ": " + errno_text(err)};
}

bool write_all(int fd, std::span<const std::byte> data) {
    while (!data.empty()) {
        auto n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data = data.subspan(static_cast<std::size_t>(n));
    }
    return true;
}

} // namespace

std::string errno_text(int error_number) {
    char buffer[256] = {};
    // The GNU strerror_r returns the text, which may or may not be the buffer.
    return ::strerror_r(error_number, buffer, sizeof buffer);
}

detailed_result<void> write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> data,
                                            const atomic_write_options& options) {
    auto directory = path.parent_path();
    if (directory.empty()) directory = ".";

    mode_t mode = options.mode;
    bool exact_mode = false;
    if (struct stat existing{}; ::stat(path.c_str(), &existing) == 0) {
        if (!options.replace) return error{errc::already_exists, std::string(options.what) + " " + path.string() + " already exists"};
        if (options.keep_existing_mode) {
            mode = existing.st_mode & 07777;
            exact_mode = true;
        }
    }

    std::filesystem::path temp;
    int fd = -1;
    for (int attempt = 0; attempt < 16 && fd < 0; ++attempt) {
        temp = path;
        temp += ".tmp." + std::to_string(::getpid()) + "." + std::to_string(temp_counter.fetch_add(1));
        fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) return io_failure(options.what, path, "create a temporary file for", errno);
    fd_guard file(fd);

    auto fail = [&](std::string_view action) {
        int err = errno;
        ::unlink(temp.c_str());
        return io_failure(options.what, path, action, err);
    };
    if (exact_mode && ::fchmod(file.get(), mode) != 0) return fail("set the mode of");
    if (!write_all(file.get(), data)) return fail("write");
    if (::fsync(file.get()) != 0) return fail("flush");
    if (file.close() != 0) return fail("close");

    if (options.replace) {
        if (::rename(temp.c_str(), path.c_str()) != 0) return fail("rename the temporary file over");
    } else {
        // link() refuses an existing target, so of two concurrent creators exactly one wins.
        if (::link(temp.c_str(), path.c_str()) != 0) {
            if (errno == EEXIST) {
                ::unlink(temp.c_str());
                return error{errc::already_exists, std::string(options.what) + " " + path.string() + " already exists"};
            }
            return fail("link the temporary file to");
        }
        ::unlink(temp.c_str());
    }

    fd_guard dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0 || ::fsync(dir.get()) != 0)
        return io_failure(options.what, path, "flush the directory of", errno);
    return {};
}

} // namespace swarm::inline v0::detail
