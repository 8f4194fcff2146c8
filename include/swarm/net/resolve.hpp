// Name resolution: "host:port" to every address the resolver knows, IPv4 and IPv6 alike.
#pragma once

#include <swarm/core/error.hpp>
#include <swarm/net/endpoint.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::inline v0::net {

/// Every A and AAAA record for "host:port" or "[v6]:port", duplicates removed, in the resolver's order.
/// A literal address is returned as is, without a lookup. Blocks for as long as the system resolver does.
/// Errors: errc::invalid_argument for text that is not host:port, errc::not_found when the name does not
/// resolve.
detailed_result<std::vector<endpoint>> resolve(std::string_view host_port);

using resolve_handler = std::function<void(detailed_result<std::vector<endpoint>>)>;

/// The same, without blocking: `handler` runs on `executor` once the lookup completes.
void async_resolve(boost::asio::any_io_executor executor, std::string_view host_port, resolve_handler handler);

} // namespace swarm::inline v0::net
