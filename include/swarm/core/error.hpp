// Errors: one category for everything swarm reports, and result types built on Boost.System.
#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <string_view>
#include <type_traits>

namespace swarm::inline v0 {

/// Error codes pinned forever: a value, once released, keeps its meaning. New codes go at the end.
enum class errc : int {
    // Input that is not what it claims to be.
    invalid_argument = 1,
    truncated = 2,           // fewer bytes than the encoding requires
    malformed = 3,           // bytes present but not a valid encoding
    too_large = 4,           // a length or count over the configured or absolute bound
    unsupported_version = 5, // a version this build does not speak
    // Message protection.
    authentication_failed = 10, // tag, signature or key mismatch
    replayed = 11,              // already seen from this sender
    wrong_cluster = 12,         // sealed for another cluster label
    unknown_key = 13,           // sealed with a key not in the keyring
    // Configuration.
    config_unknown_key = 20,
    config_wrong_type = 21,
    config_invalid_value = 22,
    config_missing_key = 23,
    // Identity and files.
    io_error = 30,
    key_file_corrupt = 31,
    key_file_permissions = 32,
    not_found = 33,
    already_exists = 34,
    // Transport.
    connection_refused = 40,
    connection_reset = 41,
    timed_out = 42,
    cancelled = 43,
    shut_down = 44,
    unreachable = 45,
    message_too_large = 46,
    // Storage.
    data_unavailable = 50, // fewer intact shards than a stripe needs
};

const boost::system::error_category& swarm_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), swarm_category()};
}

/// Fallible calls whose error code says everything.
template <class T>
using result = boost::system::result<T>;

/// An error code plus a sentence for a person: which key, which file, what was expected.
struct error {
    boost::system::error_code code;
    std::string message;

    error() = default;
    error(boost::system::error_code c, std::string m = {}) : code(c), message(std::move(m)) {}
    error(errc c, std::string m = {}) : code(make_error_code(c)), message(std::move(m)) {}

    /// "message (category:code text)", or just the code's text when there is no message.
    std::string describe() const;
    friend bool operator==(const error& e, errc c) noexcept { return e.code == make_error_code(c); }
};

/// Thrown only by result<T, error>::value() when the caller asks for a value that is absent.
[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& loc);

/// Fallible calls whose failure needs explaining in words (configuration, files).
template <class T>
using detailed_result = boost::system::result<T, error>;

} // namespace swarm::inline v0

template <>
struct boost::system::is_error_code_enum<swarm::errc> : std::true_type {};
