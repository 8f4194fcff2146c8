#include <swarm/net/endpoint.hpp>

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace swarm::inline v0::net {
namespace {
constexpr std::uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
}

bool endpoint::is_v4() const noexcept { return std::memcmp(address_.data(), v4_prefix, 12) == 0; }

std::uint32_t endpoint::v4_address() const noexcept {
    return (std::uint32_t{address_[12]} << 24) | (std::uint32_t{address_[13]} << 16) |
           (std::uint32_t{address_[14]} << 8) | std::uint32_t{address_[15]};
}

bool endpoint::is_unspecified() const noexcept {
    if (is_v4()) return v4_address() == 0;
    for (auto b : address_)
        if (b != 0) return false;
    return true;
}

std::string endpoint::to_string() const {
    char text[INET6_ADDRSTRLEN] = {};
    std::string out;
    if (is_v4()) {
        ::inet_ntop(AF_INET, address_.data() + 12, text, sizeof text);
        out = text;
    } else {
        ::inet_ntop(AF_INET6, address_.data(), text, sizeof text);
        out = std::string("[") + text + "]";
    }
    return out + ":" + std::to_string(port_);
}

result<endpoint> endpoint::parse(std::string_view input) {
    std::string_view host, port_text;
    if (!input.empty() && input.front() == '[') {
        auto close = input.find(']');
        if (close == std::string_view::npos || close + 1 >= input.size() || input[close + 1] != ':')
            return make_error_code(errc::malformed);
        host = input.substr(1, close - 1);
        port_text = input.substr(close + 2);
    } else {
        auto colon = input.rfind(':');
        if (colon == std::string_view::npos || input.find(':') != colon) return make_error_code(errc::malformed);
        host = input.substr(0, colon);
        port_text = input.substr(colon + 1);
    }
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535 || port_text.empty())
        return make_error_code(errc::malformed);
    if (host.size() >= INET6_ADDRSTRLEN) return make_error_code(errc::malformed);
    char host_z[INET6_ADDRSTRLEN] = {};
    std::memcpy(host_z, host.data(), host.size());
    endpoint e;
    e.port_ = static_cast<std::uint16_t>(port);
    if (std::uint8_t v4[4]; ::inet_pton(AF_INET, host_z, v4) == 1) {
        std::memcpy(e.address_.data(), v4_prefix, 12);
        std::memcpy(e.address_.data() + 12, v4, 4);
        return e;
    }
    if (::inet_pton(AF_INET6, host_z, e.address_.data()) == 1) return e;
    return make_error_code(errc::malformed);
}

} // namespace swarm::inline v0::net
