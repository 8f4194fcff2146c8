#include <swarm/core/config.hpp>

#include "core/atomic_file.hpp"

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <set>

namespace swarm::inline v0::config {
namespace {

struct unit {
    std::string_view name;
    std::uint64_t nanoseconds;
};
// Two-letter units first, so "ms" is not read as "m" followed by garbage.
constexpr std::array<unit, 7> parse_units{{{"ns", 1},
                                           {"us", 1'000},
                                           {"ms", 1'000'000},
                                           {"\xc2\xb5s", 1'000}, // "µs", as Go writes it
                                           {"s", 1'000'000'000},
                                           {"m", 60'000'000'000},
                                           {"h", 3'600'000'000'000}}};
constexpr std::array<unit, 6> format_units{{{"h", 3'600'000'000'000},
                                            {"m", 60'000'000'000},
                                            {"s", 1'000'000'000},
                                            {"ms", 1'000'000},
                                            {"us", 1'000},
                                            {"ns", 1}}};

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

} // namespace

result<duration> parse_duration(std::string_view text) {
    const auto invalid = make_error_code(errc::config_invalid_value);
    bool negative = false;
    if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
        negative = text.front() == '-';
        text.remove_prefix(1);
    }
    if (text == "0") return duration{0};
    if (text.empty()) return invalid;
    std::uint64_t total = 0;
    const std::uint64_t limit = negative ? std::uint64_t{1} << 63 : (std::uint64_t{1} << 63) - 1;
    while (!text.empty()) {
        std::uint64_t whole = 0;
        std::size_t digits = 0;
        while (!text.empty() && is_digit(text.front())) {
            if (__builtin_mul_overflow(whole, 10u, &whole) ||
                __builtin_add_overflow(whole, static_cast<unsigned>(text.front() - '0'), &whole))
                return invalid;
            text.remove_prefix(1);
            ++digits;
        }
        std::string_view fraction;
        if (!text.empty() && text.front() == '.') {
            text.remove_prefix(1);
            std::size_t n = 0;
            while (n < text.size() && is_digit(text[n])) ++n;
            fraction = text.substr(0, n);
            text.remove_prefix(n);
            digits += n;
        }
        if (digits == 0) return invalid;
        const unit* found = nullptr;
        for (const auto& u : parse_units) {
            if (text.starts_with(u.name)) {
                found = &u;
                break;
            }
        }
        if (!found) return invalid;
        text.remove_prefix(found->name.size());
        std::uint64_t term = 0;
        if (__builtin_mul_overflow(whole, found->nanoseconds, &term)) return invalid;
        // Each fraction digit is worth a tenth of the previous one; below a nanosecond it stops counting.
        std::uint64_t scale = found->nanoseconds;
        for (char c : fraction) {
            scale /= 10;
            term += static_cast<std::uint64_t>(c - '0') * scale;
        }
        if (__builtin_add_overflow(total, term, &total) || total > limit) return invalid;
    }
    if (negative) return duration{static_cast<duration::rep>(0 - total)};
    return duration{static_cast<duration::rep>(total)};
}

std::string format_duration(duration d) {
    auto count = d.count();
    if (count == 0) return "0s";
    std::string sign = count < 0 ? "-" : "";
    // Magnitude as unsigned so the most negative count does not overflow.
    std::uint64_t magnitude = count < 0 ? 0 - static_cast<std::uint64_t>(count) : static_cast<std::uint64_t>(count);
    for (const auto& u : format_units)
        if (magnitude % u.nanoseconds == 0) return sign + std::to_string(magnitude / u.nanoseconds) + std::string(u.name);
    return sign + std::to_string(magnitude) + "ns";
}

namespace detail {
namespace {

std::string display(std::string_view path) { return path.empty() ? std::string("top level") : std::string(path); }

bool plain_key(std::string_view key) {
    return !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-';
    });
}

std::string quoted(std::string_view s) { return boost::json::serialize(boost::json::string(s)); }

std::string describe_json(const boost::json::value& v) {
    switch (v.kind()) {
    case boost::json::kind::null: return "null";
    case boost::json::kind::bool_: return v.get_bool() ? "boolean true" : "boolean false";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
    case boost::json::kind::double_: return "number " + boost::json::serialize(v);
    case boost::json::kind::string: {
        auto s = v.get_string().subview();
        constexpr std::size_t shown = 60;
        if (s.size() > shown) return "string " + quoted(s.substr(0, shown)) + "...";
        return "string " + quoted(s);
    }
    case boost::json::kind::array: return "an array";
    case boost::json::kind::object: return "an object";
    }
    return "a JSON value";
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string integer_range(std::int64_t min, std::uint64_t max) {
    return "an integer from " + std::to_string(min) + " to " + std::to_string(max);
}

} // namespace

std::string join_key(std::string_view path, std::string_view key) {
    if (!plain_key(key)) return std::string(path) + "[" + quoted(key) + "]";
    if (path.empty()) return std::string(key);
    return std::string(path) + "." + std::string(key);
}

std::string join_index(std::string_view path, std::size_t index) {
    return std::string(path) + "[" + std::to_string(index) + "]";
}

error wrong_type(std::string_view path, std::string_view expected, const boost::json::value& got) {
    return {errc::config_wrong_type,
            display(path) + ": expected " + std::string(expected) + ", got " + describe_json(got)};
}

error invalid_value(std::string_view path, std::string_view expected, const boost::json::value& got) {
    return {errc::config_invalid_value,
            display(path) + ": expected " + std::string(expected) + ", got " + describe_json(got)};
}

error missing_key(std::string_view path, std::string_view key) {
    return {errc::config_missing_key, "missing required key '" + join_key(path, key) + "'"};
}

error in_context(std::string_view path, const error& e) {
    if (path.empty()) return e;
    return {e.code, std::string(path) + ": " + e.message};
}

maybe_error check_unknown_keys(const boost::json::object& object, std::span<const std::string_view> known,
                               std::string_view path) {
    for (const auto& entry : object) {
        std::string_view key = entry.key();
        if (std::find(known.begin(), known.end(), key) != known.end()) continue;
        std::string message = "unknown key '" + join_key(path, key) + "'";
        std::string_view best;
        std::size_t best_distance = std::max<std::size_t>(2, key.size() / 4) + 1;
        for (auto candidate : known) {
            auto d = edit_distance(key, candidate);
            if (d < best_distance) {
                best = candidate;
                best_distance = d;
            }
        }
        if (!best.empty()) message += ", did you mean '" + std::string(best) + "'?";
        return error{errc::config_unknown_key, std::move(message)};
    }
    return std::nullopt;
}

maybe_error read_bool(const boost::json::value& v, bool& out, std::string_view path) {
    if (!v.is_bool()) return wrong_type(path, "true or false", v);
    out = v.get_bool();
    return std::nullopt;
}

maybe_error read_signed(const boost::json::value& v, std::int64_t min, std::int64_t max, std::int64_t& out,
                        std::string_view path) {
    const auto expected = integer_range(min, static_cast<std::uint64_t>(max));
    std::int64_t x = 0;
    if (v.is_int64()) {
        x = v.get_int64();
    } else if (v.is_uint64()) {
        return invalid_value(path, expected, v); // only values above INT64_MAX are stored as uint64
    } else if (v.is_double()) {
        // 1e3 is a double in JSON parsers; accept it when it is a whole number in range.
        double d = v.get_double();
        if (!(std::trunc(d) == d && d >= -0x1p63 && d < 0x1p63)) return invalid_value(path, expected, v);
        x = static_cast<std::int64_t>(d);
    } else {
        return wrong_type(path, expected, v);
    }
    if (x < min || x > max) return invalid_value(path, expected, v);
    out = x;
    return std::nullopt;
}

maybe_error read_unsigned(const boost::json::value& v, std::uint64_t max, std::uint64_t& out,
                          std::string_view path) {
    const auto expected = integer_range(0, max);
    std::uint64_t x = 0;
    if (v.is_int64()) {
        if (v.get_int64() < 0) return invalid_value(path, expected, v);
        x = static_cast<std::uint64_t>(v.get_int64());
    } else if (v.is_uint64()) {
        x = v.get_uint64();
    } else if (v.is_double()) {
        double d = v.get_double();
        if (!(std::trunc(d) == d && d >= 0 && d < 0x1p64)) return invalid_value(path, expected, v);
        x = static_cast<std::uint64_t>(d);
    } else {
        return wrong_type(path, expected, v);
    }
    if (x > max) return invalid_value(path, expected, v);
    out = x;
    return std::nullopt;
}

maybe_error read_double(const boost::json::value& v, double max_magnitude, double& out, std::string_view path) {
    if (!v.is_number()) return wrong_type(path, "a number", v);
    double d = v.to_number<double>();
    if (!(std::fabs(d) <= max_magnitude)) return invalid_value(path, "a number in the range of a float", v);
    out = d;
    return std::nullopt;
}

maybe_error read_string(const boost::json::value& v, std::string& out, std::string_view path) {
    if (!v.is_string()) return wrong_type(path, "a string", v);
    out = std::string(v.get_string());
    return std::nullopt;
}

maybe_error read_duration(const boost::json::value& v, duration& out, std::string_view path) {
    if (!v.is_string()) return wrong_type(path, R"(a duration such as "500ms")", v);
    auto parsed = parse_duration(v.get_string());
    if (!parsed) return invalid_value(path, R"(a duration such as "500ms", "1.5s" or "2m" (units ns, us, ms, s, m, h))", v);
    out = *parsed;
    return std::nullopt;
}

maybe_error read_endpoint(const boost::json::value& v, net::endpoint& out, std::string_view path) {
    constexpr std::string_view expected = R"(an endpoint such as "127.0.0.1:7946" or "[::1]:7946")";
    if (!v.is_string()) return wrong_type(path, expected, v);
    auto parsed = net::endpoint::parse(v.get_string());
    if (!parsed) return invalid_value(path, expected, v);
    out = *parsed;
    return std::nullopt;
}

std::string enum_choices(std::span<const std::string_view> names) {
    std::string text = "one of ";
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0) text += ", ";
        text += quoted(names[i]);
    }
    return text;
}

namespace {

std::string position(std::string_view text, std::size_t offset) {
    offset = std::min(offset, text.size());
    auto before = text.substr(0, offset);
    auto line = 1 + std::count(before.begin(), before.end(), '\n');
    auto last_newline = before.rfind('\n');
    auto column = last_newline == std::string_view::npos ? offset + 1 : offset - last_newline;
    return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// A second pass over text already known to be valid JSON: Boost.JSON keeps the last of duplicate keys
// silently, and in a configuration file the first one is then edited in vain.
class duplicate_key_finder {
public:
    static constexpr std::size_t max_array_size = -1;
    static constexpr std::size_t max_object_size = -1;
    static constexpr std::size_t max_string_size = -1;
    static constexpr std::size_t max_key_size = -1;

    using ec_type = boost::system::error_code;
    using sv = boost::json::string_view;

    std::optional<std::string> duplicate; // the key path of the first duplicate found

    bool on_document_begin(ec_type&) { return true; }
    bool on_document_end(ec_type&) { return true; }
    bool on_array_begin(ec_type&) { return enter(false); }
    bool on_array_end(std::size_t, ec_type&) { return leave(); }
    bool on_object_begin(ec_type&) { return enter(true); }
    bool on_object_end(std::size_t, ec_type&) { return leave(); }
    bool on_string_part(sv, std::size_t, ec_type&) { return true; }
    bool on_string(sv, std::size_t, ec_type&) { return value_done(); }
    bool on_key_part(sv s, std::size_t, ec_type&) {
        key_.append(s.data(), s.size());
        return true;
    }
    bool on_key(sv s, std::size_t, ec_type& ec) {
        key_.append(s.data(), s.size());
        auto& top = frames_.back();
        top.key = std::move(key_);
        key_.clear();
        if (!top.keys.insert(top.key).second) {
            duplicate = path();
            ec = make_error_code(errc::malformed);
            return false;
        }
        return true;
    }
    bool on_number_part(sv, ec_type&) { return true; }
    bool on_int64(std::int64_t, sv, ec_type&) { return value_done(); }
    bool on_uint64(std::uint64_t, sv, ec_type&) { return value_done(); }
    bool on_double(double, sv, ec_type&) { return value_done(); }
    bool on_bool(bool, ec_type&) { return value_done(); }
    bool on_null(ec_type&) { return value_done(); }
    bool on_comment_part(sv, ec_type&) { return true; }
    bool on_comment(sv, ec_type&) { return true; }

private:
    struct frame {
        bool object = false;
        std::size_t index = 0;
        std::string key;
        std::set<std::string, std::less<>> keys;
    };
    bool enter(bool object) {
        frames_.emplace_back().object = object;
        return true;
    }
    bool leave() {
        frames_.pop_back();
        return value_done();
    }
    bool value_done() {
        if (!frames_.empty() && !frames_.back().object) ++frames_.back().index;
        return true;
    }
    std::string path() const {
        std::string p;
        for (const auto& f : frames_) p = f.object ? join_key(p, f.key) : join_index(p, f.index);
        return p;
    }

    std::vector<frame> frames_;
    std::string key_;
};

} // namespace

detailed_result<boost::json::value> parse_json(std::string_view text) {
    boost::json::parser parser;
    parser.reset();
    boost::system::error_code ec;
    std::size_t consumed = parser.write(text.data(), text.size(), ec);
    if (ec)
        return error{errc::malformed, "malformed JSON at " + position(text, consumed) + ": " + ec.message()};

    boost::json::basic_parser<duplicate_key_finder> finder(boost::json::parse_options{});
    consumed = finder.write_some(false, text.data(), text.size(), ec);
    if (finder.handler().duplicate)
        return error{errc::malformed,
                     "duplicate key '" + *finder.handler().duplicate + "' at " + position(text, consumed)};
    return parser.release();
}

detailed_result<std::string> read_text_file(const std::filesystem::path& path) {
    constexpr std::size_t max_size = 64 << 20; // far above any configuration; stops reading a device or a log
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT) return error{errc::not_found, "configuration file " + path.string() + " does not exist"};
        return error{errc::io_error, "cannot open configuration file " + path.string() + ": " + swarm::detail::errno_text(err)};
    }
    std::string text;
    char buffer[16384];
    for (;;) {
        auto n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            return error{errc::io_error, "cannot read configuration file " + path.string() + ": " + swarm::detail::errno_text(err)};
        }
        if (n == 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
        if (text.size() > max_size) {
            ::close(fd);
            return error{errc::too_large, "configuration file " + path.string() + " is larger than 64 MiB"};
        }
    }
    ::close(fd);
    return text;
}

detailed_result<void> write_text_file(const std::filesystem::path& path, std::string_view text) {
    return swarm::detail::write_file_atomically(path, std::as_bytes(std::span(text.data(), text.size())),
                                 {.mode = 0644, .keep_existing_mode = true, .replace = true,
                                  .what = "configuration file"});
}

namespace {

void pretty(const boost::json::value& v, std::string& out, std::size_t indent) {
    auto newline = [&](std::size_t depth) {
        out += '\n';
        out.append(depth * 2, ' ');
    };
    if (v.is_object() && !v.get_object().empty()) {
        out += '{';
        bool first = true;
        for (const auto& entry : v.get_object()) {
            if (!first) out += ',';
            first = false;
            newline(indent + 1);
            out += quoted(entry.key());
            out += ": ";
            pretty(entry.value(), out, indent + 1);
        }
        newline(indent);
        out += '}';
    } else if (v.is_array() && !v.get_array().empty()) {
        out += '[';
        bool first = true;
        for (const auto& item : v.get_array()) {
            if (!first) out += ',';
            first = false;
            newline(indent + 1);
            pretty(item, out, indent + 1);
        }
        newline(indent);
        out += ']';
    } else {
        out += boost::json::serialize(v);
    }
}

} // namespace

std::string pretty_print(const boost::json::value& v) {
    std::string out;
    pretty(v, out, 0);
    out += '\n';
    return out;
}

error in_file(const std::filesystem::path& path, const error& e) {
    return {e.code, path.string() + ": " + e.message};
}

} // namespace detail
} // namespace swarm::inline v0::config
