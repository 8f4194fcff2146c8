// A fresh directory for one test, removed with everything in it when the test ends. On tmpfs where there is
// one: tests fsync file by file, and tmpfs keeps that fast.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace swarm_test {

class scratch_dir {
public:
    explicit scratch_dir(std::string_view prefix = "swarm-test") {
        std::error_code ec;
        const auto root = std::filesystem::is_directory("/dev/shm", ec) ? std::filesystem::path("/dev/shm")
                                                                        : std::filesystem::temp_directory_path();
        std::string pattern = (root / (std::string(prefix) + "-XXXXXX")).string();
        if (::mkdtemp(pattern.data())) path_ = pattern;
    }
    ~scratch_dir() {
        std::error_code ec;
        if (!path_.empty()) std::filesystem::remove_all(path_, ec);
    }
    scratch_dir(const scratch_dir&) = delete;
    scratch_dir& operator=(const scratch_dir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

} // namespace swarm_test
