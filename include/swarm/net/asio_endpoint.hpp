// Conversions between swarm::net::endpoint and Boost.Asio's address and endpoint types.
#pragma once

#include <swarm/net/endpoint.hpp>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/basic_endpoint.hpp>

namespace swarm::inline v0::net {

/// An IPv4 address for IPv4 endpoints (swarm holds them IPv4-mapped), an IPv6 address otherwise.
inline boost::asio::ip::address to_asio_address(const endpoint& e) {
    if (e.is_v4()) return boost::asio::ip::address_v4(e.v4_address());
    return boost::asio::ip::address_v6(e.address());
}

/// IPv4 and IPv4-mapped IPv6 addresses give the same swarm endpoint, so a dual-stack socket's peers compare
/// equal to the endpoints other nodes advertise.
inline endpoint from_asio(const boost::asio::ip::address& address, std::uint16_t port) {
    if (address.is_v4()) return endpoint::v4(address.to_v4().to_uint(), port);
    return endpoint(address.to_v6().to_bytes(), port);
}

template <class Protocol>
boost::asio::ip::basic_endpoint<Protocol> to_asio(const endpoint& e) {
    return {to_asio_address(e), e.port()};
}

template <class Protocol>
endpoint from_asio(const boost::asio::ip::basic_endpoint<Protocol>& e) {
    return from_asio(e.address(), e.port());
}

} // namespace swarm::inline v0::net
