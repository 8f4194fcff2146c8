// Private file helpers shared by configuration and identity: atomic replacement and errno sentences.
#pragma once

#include <swarm/core/error.hpp>

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>

namespace swarm::inline v0::detail {

struct atomic_write_options {
    mode_t mode = 0644;             // for a new file, before the umask
    bool keep_existing_mode = true; // replacing a file keeps its permission bits
    bool replace = true;            // false: fail with errc::already_exists when the target exists
    std::string_view what = "file"; // names the file in messages: "cannot write key file /x: ..."
};

/// Writes a temporary file beside `path` (O_CREAT|O_EXCL, `mode`), fsyncs it, moves it into place (rename,
/// or link when not replacing, so a concurrent creator is never overwritten), then fsyncs the directory.
/// A failure before the move leaves the target untouched and removes the temporary file; only the final
/// directory fsync can fail after the new content is in place.
detailed_result<void> write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> data,
                                            const atomic_write_options& options);

/// strerror_r as a std::string.
std::string errno_text(int error_number);

} // namespace swarm::inline v0::detail
