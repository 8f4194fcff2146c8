#include <swarm/net/resolve.hpp>

#include <swarm/net/asio_endpoint.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/post.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <memory>

namespace swarm::inline v0::net {
namespace {

using udp = boost::asio::ip::udp;

struct host_port {
    std::string host;
    std::string port;
};

detailed_result<host_port> split(std::string_view text) {
    auto bad = [&](std::string_view why) {
        return error{errc::invalid_argument, fmt::format("'{}' is not host:port: {}", text, why)};
    };
    std::string_view host, port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return bad("no closing ']'");
        if (close + 1 >= text.size() || text[close + 1] != ':') return bad("no ':port' after ']'");
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return bad("no ':port'");
        if (text.find(':') != colon) return bad("an IPv6 address needs brackets");
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    if (host.empty()) return bad("empty host");
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535)
        return bad("the port must be a number from 0 to 65535");
    return host_port{std::string(host), std::string(port)};
}

std::vector<endpoint> collect(const udp::resolver::results_type& results) {
    std::vector<endpoint> out;
    for (const auto& entry : results) {
        auto e = from_asio(entry.endpoint());
        if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
    }
    return out;
}

error lookup_failed(const host_port& hp, const boost::system::error_code& ec) {
    return {errc::not_found, fmt::format("cannot resolve '{}': {}", hp.host, ec.message())};
}

} // namespace

detailed_result<std::vector<endpoint>> resolve(std::string_view text) {
    auto hp = split(text);
    if (!hp) return hp.error();
    if (auto literal = endpoint::parse(text)) return std::vector<endpoint>{*literal};
    boost::asio::io_context io;
    udp::resolver resolver(io);
    boost::system::error_code ec;
    auto results = resolver.resolve(hp->host, hp->port, udp::resolver::numeric_service, ec);
    if (ec) return lookup_failed(*hp, ec);
    auto out = collect(results);
    if (out.empty()) return error{errc::not_found, fmt::format("'{}' has no address", hp->host)};
    return out;
}

void async_resolve(boost::asio::any_io_executor executor, std::string_view text, resolve_handler handler) {
    auto hp = split(text);
    if (!hp) {
        boost::asio::post(executor, [handler = std::move(handler), e = hp.error()]() mutable { handler(e); });
        return;
    }
    if (auto literal = endpoint::parse(text)) {
        boost::asio::post(executor, [handler = std::move(handler), e = *literal]() mutable {
            handler(std::vector<endpoint>{e});
        });
        return;
    }
    auto resolver = std::make_shared<udp::resolver>(executor);
    resolver->async_resolve(
        hp->host, hp->port, udp::resolver::numeric_service,
        [resolver, hp = *hp, handler = std::move(handler)](const boost::system::error_code& ec,
                                                           const udp::resolver::results_type& results) mutable {
            if (ec) return handler(lookup_failed(hp, ec));
            auto out = collect(results);
            if (out.empty()) return handler(error{errc::not_found, fmt::format("'{}' has no address", hp.host)});
            handler(std::move(out));
        });
}

} // namespace swarm::inline v0::net
