// The gateway's handling of bytes from outside: a client's request as the gateway parses it (Beast's request
// parser with the gateway's limits, then its own head checks), a backend's Prometheus /metrics text, and
// backend URLs from configuration or membership metadata. The first byte picks which; none may crash, and
// what they return must be consistent.
#include "dispatch/gateway_detail.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace http = boost::beast::http;

namespace {

void client_request(std::string_view bytes) {
    // The head is checked raw first, as the gateway does once it has read the head.
    if (auto end = bytes.find("\r\n\r\n"); end != std::string_view::npos) (void)swarm::dispatch::raw_head_problem(bytes.substr(0, end + 4));
    http::request_parser<http::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(64 * 1024);
    parser.eager(true);
    boost::beast::error_code ec;
    std::size_t used = 0;
    while (used < bytes.size() && !ec && !parser.is_done()) {
        const std::size_t n = parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
        if (n == 0 && !ec) break; // needs more bytes than there are
        used += n;
    }
    if (parser.is_header_done()) {
        if (auto problem = swarm::dispatch::head_problem(parser); problem && problem->empty()) std::abort();
    }
    if (parser.is_done() && parser.get().body().size() > 64 * 1024) std::abort(); // the limit held
}

void metrics_text(std::string_view text) {
    const auto load = swarm::dispatch::parse_prometheus_load(text);
    if (!std::isfinite(load.waiting) || !std::isfinite(load.running)) std::abort();
    if (load.kv_usage != -1 && !(load.kv_usage >= 0 && load.kv_usage <= 1)) std::abort();
    if (!load.any && (load.waiting != 0 || load.running != 0 || load.kv_usage != -1)) std::abort();
}

void backend_url(std::string_view url) {
    auto parsed = swarm::dispatch::parse_http_url(url);
    if (!parsed) {
        if (parsed.error().message.empty()) std::abort(); // an error names its problem
        return;
    }
    if (parsed->host.empty() || parsed->port.empty()) std::abort();
    // What parsed must parse again to the same thing from its canonical form.
    auto again = swarm::dispatch::parse_http_url("http://" + parsed->host_header);
    if (!again || again->host != parsed->host || again->port != parsed->port) std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 3) {
    case 0: client_request(rest); break;
    case 1: metrics_text(rest); break;
    default: backend_url(rest); break;
    }
    return 0;
}
