// An IP endpoint (address and port), the same value type for real and simulated nodes.
#pragma once

#include <swarm/core/error.hpp>

#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace swarm::inline v0::net {

/// IPv4 addresses are held IPv4-mapped (::ffff:a.b.c.d), so one representation covers both families.
class endpoint {
public:
    using address_bytes = std::array<std::uint8_t, 16>;

    constexpr endpoint() noexcept = default;
    constexpr endpoint(const address_bytes& v6, std::uint16_t port) noexcept : address_(v6), port_(port) {}

    /// An IPv4 endpoint; `address` in host byte order (127.0.0.1 is 0x7f000001).
    static constexpr endpoint v4(std::uint32_t address, std::uint16_t port) noexcept {
        address_bytes bytes{};
        bytes[10] = 0xff;
        bytes[11] = 0xff;
        bytes[12] = static_cast<std::uint8_t>(address >> 24);
        bytes[13] = static_cast<std::uint8_t>(address >> 16);
        bytes[14] = static_cast<std::uint8_t>(address >> 8);
        bytes[15] = static_cast<std::uint8_t>(address);
        return {bytes, port};
    }

    /// Parses a literal "a.b.c.d:port" or "[v6]:port"; names are resolved elsewhere, never here.
    static result<endpoint> parse(std::string_view text);

    constexpr const address_bytes& address() const noexcept { return address_; }
    constexpr std::uint16_t port() const noexcept { return port_; }
    constexpr void set_port(std::uint16_t p) noexcept { port_ = p; }
    bool is_v4() const noexcept;
    /// The IPv4 address in host byte order; meaningful only when is_v4().
    std::uint32_t v4_address() const noexcept;
    bool is_unspecified() const noexcept;

    /// "127.0.0.1:7946" or "[::1]:7946".
    std::string to_string() const;

    friend constexpr auto operator<=>(const endpoint&, const endpoint&) noexcept = default;

private:
    address_bytes address_{};
    std::uint16_t port_ = 0;
};

} // namespace swarm::inline v0::net

template <>
struct std::hash<swarm::net::endpoint> {
    std::size_t operator()(const swarm::net::endpoint& e) const noexcept {
        std::uint64_t hi = 0, lo = 0;
        for (int i = 0; i < 8; ++i) hi = (hi << 8) | e.address()[i];
        for (int i = 8; i < 16; ++i) lo = (lo << 8) | e.address()[i];
        std::uint64_t h = (hi * 0x9e3779b97f4a7c15ULL) ^ (lo + 0x632be59bd9b4e019ULL + e.port());
        h ^= h >> 29;
        h *= 0xbf58476d1ce4e5b9ULL;
        return static_cast<std::size_t>(h ^ (h >> 32));
    }
};
