// Private helpers shared by the placement sources.
#pragma once

#include <swarm/placement/scheduler.hpp>

#include <array>
#include <charconv>
#include <optional>
#include <string_view>

namespace swarm::inline v0::placement {

/// Up to four numeric components; "v1.2" and "1.2.0" compare equal. A pre-release or build suffix after
/// '-' or '+' is ignored, because label versions in the wild carry them and users compare the numbers.
using version = std::array<std::uint64_t, 4>;

inline std::optional<version> parse_version(std::string_view text) {
    if (!text.empty() && (text.front() == 'v' || text.front() == 'V')) text.remove_prefix(1);
    if (const auto cut = text.find_first_of("-+"); cut != std::string_view::npos) text = text.substr(0, cut);
    if (text.empty()) return std::nullopt;
    version v{};
    std::size_t part = 0;
    while (true) {
        if (part == v.size()) return std::nullopt;
        const auto* end = text.data() + text.size();
        auto [next, ec] = std::from_chars(text.data(), end, v[part]);
        if (ec != std::errc{} || next == text.data()) return std::nullopt;
        ++part;
        if (next == end) return v;
        if (*next != '.') return std::nullopt;
        text.remove_prefix(static_cast<std::size_t>(next - text.data()) + 1);
    }
}

detailed_result<void> check_constraint(const constraint& c, std::string_view where);
detailed_result<void> check_node_resources(const resources& r, std::string_view where);

} // namespace swarm::inline v0::placement
