#include <swarm/net/driver.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <cstdint>
#include <limits>

namespace swarm::inline v0::net {
namespace {

error invalid(std::string message) { return {errc::config_invalid_value, std::move(message)}; }

} // namespace

detailed_result<void> driver_config::validate() const {
    // IPv4's 16-bit total length less its 20-byte header and UDP's 8; IPv6's payload length less UDP's 8.
    const std::size_t datagram_limit = bind.is_v4() ? 65'507 : 65'527;
    if (max_datagram_size == 0 || max_datagram_size > datagram_limit)
        return invalid(fmt::format("max_datagram_size must be between 1 and {} for bind address {}, not {}",
                                   datagram_limit, bind.to_string(), max_datagram_size));
    if (max_frame_size == 0 || max_frame_size > std::numeric_limits<std::uint32_t>::max())
        return invalid(fmt::format("max_frame_size must be between 1 and {} (a 4-byte length prefix), not {}",
                                   std::numeric_limits<std::uint32_t>::max(), max_frame_size));
    if (connect_timeout <= duration::zero())
        return invalid(fmt::format("connect_timeout must be positive, not {}", connect_timeout));
    if (idle_timeout && *idle_timeout <= duration::zero())
        return invalid(fmt::format("idle_timeout must be positive when set, not {}", *idle_timeout));
    if (high_watermark == 0) return invalid("high_watermark must be positive");
    if (low_watermark >= high_watermark)
        return invalid(fmt::format("low_watermark ({}) must be below high_watermark ({})", low_watermark,
                                   high_watermark));
    if (max_streams == 0) return invalid("max_streams must be at least 1");
    if (max_queued_datagrams == 0) return invalid("max_queued_datagrams must be at least 1");
    if (stop_grace < duration::zero())
        return invalid(fmt::format("stop_grace must not be negative, not {}", stop_grace));
    if (advertise && advertise->is_unspecified())
        return invalid(fmt::format("advertise must be an address peers can reach, not {}", advertise->to_string()));
    return {};
}

} // namespace swarm::inline v0::net
