// Configuration: plain structs that describe their fields once, loaded from and saved to one JSON shape.
//
// A config struct lists its fields in a member template; reading, writing, unknown-key detection and
// error paths all come from that one list:
//
//     struct membership_config {
//         swarm::duration probe_interval = std::chrono::seconds(1);
//         std::vector<swarm::net::endpoint> seeds;
//         template <class F> void describe(F& f) {
//             f("probe_interval", probe_interval);
//             f("seeds", seeds, swarm::config::required);
//         }
//         swarm::detailed_result<void> validate() const;
//     };
//     auto cfg = swarm::config::load_file<membership_config>("membership.json");
//
// Supported field types: bool, every integer width (range-checked), float and double, std::string,
// std::filesystem::path (a string), swarm::duration (JSON string "250ms", "1.5s", "1m30s"), swarm::net::endpoint ("127.0.0.1:7946",
// "[::1]:7946"), enums with a name table (see describe_enum below), std::vector<T>,
// std::map<std::string, T>, std::optional<T> (null or absent) and nested described structs.
// Missing keys keep the struct's defaults unless marked `required`; unknown and duplicate keys are errors. After a struct
// is read, its validate() runs (nested ones first). Errors name the full key path ("membership.seeds[2]")
// and what was expected.
#pragma once

#include <swarm/core/clock.hpp>
#include <swarm/core/error.hpp>
#include <swarm/net/endpoint.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace swarm::inline v0::config {

/// Per-field options, the optional third argument of a describe() call.
struct field_options {
    bool required = false; // absent key is errc::config_missing_key instead of keeping the default
};
inline constexpr field_options required{.required = true};

/// One entry of an enum's name table. An enum takes part in configuration when a function
/// `describe_enum(E)` is found by argument-dependent lookup and returns a range of these, e.g.
///     constexpr std::array<swarm::config::enum_name<mode>, 2> describe_enum(mode) {
///         return {{{mode::fast, "fast"}, {mode::safe, "safe"}}};
///     }
template <class E>
struct enum_name {
    E value;
    std::string_view name;
};

/// Parses "250ms", "1.5s", "2m", "1h", "10us", "5ns", or a sum of such terms ("1m30s"); an optional leading
/// '-'. Units: ns, us, ms, s, m, h. Fractions are exact to the nanosecond. Fails with
/// errc::config_invalid_value on anything else, or on overflow of the 64-bit nanosecond count.
result<duration> parse_duration(std::string_view text);

/// The shortest exact form in one unit: 1500ms -> "1500ms", 2 minutes -> "2m", 0 -> "0s".
std::string format_duration(duration d);

namespace detail {

struct probe_visitor {
    template <class V>
    void operator()(std::string_view, V&, field_options = {}) {}
};

template <class T>
concept described = std::is_class_v<T> && requires(T& t, probe_visitor& v) { t.describe(v); };

template <class T>
concept validatable = requires(const T& t) {
    { t.validate() } -> std::same_as<detailed_result<void>>;
};

template <class T>
concept named_enum = std::is_enum_v<T> && requires(T e) {
    { describe_enum(e).begin()->name } -> std::convertible_to<std::string_view>;
};

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

template <class T>
struct is_string_map : std::false_type {};
template <class T, class C, class A>
struct is_string_map<std::map<std::string, T, C, A>> : std::true_type {};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class>
inline constexpr bool unsupported_type = false;

// Non-template pieces, in lib/core/config.cpp. `path` is the dotted key path of the value ("" at the top).
using maybe_error = std::optional<error>;
std::string join_key(std::string_view path, std::string_view key);
std::string join_index(std::string_view path, std::size_t index);
error wrong_type(std::string_view path, std::string_view expected, const boost::json::value& got);
error invalid_value(std::string_view path, std::string_view expected, const boost::json::value& got);
error missing_key(std::string_view path, std::string_view key);
error in_context(std::string_view path, const error& e);
maybe_error check_unknown_keys(const boost::json::object& object, std::span<const std::string_view> known,
                               std::string_view path);
maybe_error read_bool(const boost::json::value& v, bool& out, std::string_view path);
maybe_error read_signed(const boost::json::value& v, std::int64_t min, std::int64_t max, std::int64_t& out,
                        std::string_view path);
maybe_error read_unsigned(const boost::json::value& v, std::uint64_t max, std::uint64_t& out,
                          std::string_view path);
maybe_error read_double(const boost::json::value& v, double max_magnitude, double& out, std::string_view path);
maybe_error read_string(const boost::json::value& v, std::string& out, std::string_view path);
maybe_error read_duration(const boost::json::value& v, duration& out, std::string_view path);
maybe_error read_endpoint(const boost::json::value& v, net::endpoint& out, std::string_view path);
std::string enum_choices(std::span<const std::string_view> names);
detailed_result<boost::json::value> parse_json(std::string_view text);
detailed_result<std::string> read_text_file(const std::filesystem::path& path);
detailed_result<void> write_text_file(const std::filesystem::path& path, std::string_view text);
std::string pretty_print(const boost::json::value& v);
error in_file(const std::filesystem::path& path, const error& e);

template <class T>
maybe_error read_value(const boost::json::value& v, T& out, const std::string& path);

struct key_collector {
    std::vector<std::string_view> names;
    template <class V>
    void operator()(std::string_view key, V&, field_options = {}) {
        names.push_back(key);
    }
};

class object_reader {
public:
    object_reader(const boost::json::object& object, const std::string& path) : object_(object), path_(path) {}

    template <class V>
    void operator()(std::string_view key, V& member, field_options options = {}) {
        if (failure_) return;
        auto it = object_.find(key);
        if (it == object_.end()) {
            if (options.required) failure_ = missing_key(path_, key);
            return;
        }
        failure_ = read_value(it->value(), member, join_key(path_, key));
    }

    maybe_error failure() && { return std::move(failure_); }

private:
    const boost::json::object& object_;
    const std::string& path_;
    maybe_error failure_;
};

template <described T>
maybe_error read_struct(const boost::json::value& v, T& out, const std::string& path) {
    if (!v.is_object()) return wrong_type(path, "an object", v);
    const auto& object = v.get_object();
    // Unknown keys first: a misspelt key explains a "missing required key" better than the other way round.
    key_collector keys;
    out.describe(keys);
    if (auto e = check_unknown_keys(object, keys.names, path)) return e;
    object_reader reader(object, path);
    out.describe(reader);
    if (auto e = std::move(reader).failure()) return e;
    if constexpr (validatable<T>) {
        if (auto valid = out.validate(); !valid) return in_context(path, valid.error());
    }
    return std::nullopt;
}

template <class T>
maybe_error read_value(const boost::json::value& v, T& out, const std::string& path) {
    if constexpr (std::is_same_v<T, bool>) {
        return read_bool(v, out, path);
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
        std::int64_t x = 0;
        if (auto e = read_signed(v, std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), x, path))
            return e;
        out = static_cast<T>(x);
        return std::nullopt;
    } else if constexpr (std::is_integral_v<T>) {
        std::uint64_t x = 0;
        if (auto e = read_unsigned(v, std::numeric_limits<T>::max(), x, path)) return e;
        out = static_cast<T>(x);
        return std::nullopt;
    } else if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>) {
        double x = 0;
        if (auto e = read_double(v, static_cast<double>(std::numeric_limits<T>::max()), x, path)) return e;
        out = static_cast<T>(x);
        return std::nullopt;
    } else if constexpr (std::is_same_v<T, std::string>) {
        return read_string(v, out, path);
    } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
        std::string text;
        if (auto e = read_string(v, text, path)) return e;
        out = std::move(text);
        return std::nullopt;
    } else if constexpr (std::is_same_v<T, duration>) {
        return read_duration(v, out, path);
    } else if constexpr (std::is_same_v<T, net::endpoint>) {
        return read_endpoint(v, out, path);
    } else if constexpr (named_enum<T>) {
        if (v.is_string()) {
            for (const auto& entry : describe_enum(T{})) {
                if (std::string_view(entry.name) == std::string_view(v.get_string())) {
                    out = entry.value;
                    return std::nullopt;
                }
            }
        }
        std::vector<std::string_view> names;
        for (const auto& entry : describe_enum(T{})) names.push_back(entry.name);
        if (!v.is_string()) return wrong_type(path, enum_choices(names), v);
        return invalid_value(path, enum_choices(names), v);
    } else if constexpr (is_optional<T>::value) {
        if (v.is_null()) {
            out.reset();
            return std::nullopt;
        }
        typename T::value_type inner{};
        if (auto e = read_value(v, inner, path)) return e;
        out = std::move(inner);
        return std::nullopt;
    } else if constexpr (is_vector<T>::value) {
        if (!v.is_array()) return wrong_type(path, "an array", v);
        const auto& array = v.get_array();
        T items;
        items.reserve(array.size());
        for (std::size_t i = 0; i < array.size(); ++i) {
            typename T::value_type item{};
            if (auto e = read_value(array[i], item, join_index(path, i))) return e;
            items.push_back(std::move(item));
        }
        out = std::move(items);
        return std::nullopt;
    } else if constexpr (is_string_map<T>::value) {
        if (!v.is_object()) return wrong_type(path, "an object", v);
        T items;
        for (const auto& entry : v.get_object()) {
            typename T::mapped_type item{};
            if (auto e = read_value(entry.value(), item, join_key(path, entry.key()))) return e;
            items.emplace(std::string(entry.key()), std::move(item));
        }
        out = std::move(items);
        return std::nullopt;
    } else if constexpr (described<T>) {
        return read_struct(v, out, path);
    } else {
        static_assert(unsupported_type<T>, "this type cannot appear in a configuration struct");
    }
}

template <class T>
boost::json::value write_value(const T& v);

class object_writer {
public:
    explicit object_writer(boost::json::object& object) : object_(object) {}
    template <class V>
    void operator()(std::string_view key, const V& member, field_options = {}) {
        object_[key] = write_value(member);
    }

private:
    boost::json::object& object_;
};

template <class T>
boost::json::value write_value(const T& v) {
    if constexpr (std::is_same_v<T, bool>) {
        return v;
    } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
        return static_cast<std::int64_t>(v);
    } else if constexpr (std::is_integral_v<T>) {
        return static_cast<std::uint64_t>(v);
    } else if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>) {
        return static_cast<double>(v);
    } else if constexpr (std::is_same_v<T, std::string>) {
        return boost::json::string(v);
    } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
        return boost::json::string(v.string());
    } else if constexpr (std::is_same_v<T, duration>) {
        return boost::json::string(format_duration(v));
    } else if constexpr (std::is_same_v<T, net::endpoint>) {
        return boost::json::string(v.to_string());
    } else if constexpr (named_enum<T>) {
        for (const auto& entry : describe_enum(T{}))
            if (entry.value == v) return boost::json::string(entry.name);
        // A value missing from the table is written as its number, which reading then rejects loudly.
        return static_cast<std::int64_t>(v);
    } else if constexpr (is_optional<T>::value) {
        if (!v) return nullptr;
        return write_value(*v);
    } else if constexpr (is_vector<T>::value) {
        boost::json::array array;
        array.reserve(v.size());
        for (const auto& item : v) array.push_back(write_value(item));
        return array;
    } else if constexpr (is_string_map<T>::value) {
        boost::json::object object;
        for (const auto& [key, item] : v) object[key] = write_value(item);
        return object;
    } else if constexpr (described<T>) {
        boost::json::object object;
        object_writer writer(object);
        // describe() is a non-const member so that one list serves reading and writing; write from a copy.
        T copy = v;
        copy.describe(writer);
        return object;
    } else {
        static_assert(unsupported_type<T>, "this type cannot appear in a configuration struct");
    }
}

} // namespace detail

/// Reads a described struct from a JSON value, then validates it.
template <detail::described T>
detailed_result<T> from_json(const boost::json::value& json) {
    T out{};
    if (auto e = detail::read_struct(json, out, std::string())) return std::move(*e);
    return out;
}

/// The JSON shape from_json reads; every field is written, an empty optional as null.
template <detail::described T>
boost::json::value to_json(const T& value) {
    return detail::write_value(value);
}

/// Parses JSON text; malformed text fails with errc::malformed naming the line and column.
template <detail::described T>
detailed_result<T> parse(std::string_view json_text) {
    auto json = detail::parse_json(json_text);
    if (!json) return json.error();
    return from_json<T>(*json);
}

/// Reads and parses a file; every error message starts with the file's path.
template <detail::described T>
detailed_result<T> load_file(const std::filesystem::path& path) {
    auto text = detail::read_text_file(path);
    if (!text) return text.error();
    auto value = parse<T>(*text);
    if (!value) return detail::in_file(path, value.error());
    return value;
}

/// Writes indented JSON atomically: a temporary file beside the target, fsync, rename, fsync of the
/// directory. A crash leaves the old file or the new one, never a mix. An existing file's mode is kept.
template <detail::described T>
detailed_result<void> save_file(const std::filesystem::path& path, const T& value) {
    return detail::write_text_file(path, detail::pretty_print(to_json(value)));
}

} // namespace swarm::inline v0::config
