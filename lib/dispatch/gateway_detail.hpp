// Pieces of the gateway shared between its files and its tests.
#pragma once

#include <swarm/core/error.hpp>
#include <swarm/dispatch/gateway.hpp>

#include <boost/beast/http.hpp>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::inline v0::dispatch {

struct http_url {
    std::string host; // without brackets for IPv6
    std::string port;
    std::string host_header; // "host:port" as it goes in a Host field
};

/// "http://host[:port][/]"; anything else (https, a path, userinfo, no host) is an error naming the problem.
detailed_result<http_url> parse_http_url(std::string_view url);

/// The router's description of a configured backend serving `models`: id, endpoint, weight, GPU figures, and
/// the model keys (OpenAI paths use the plain name, which TGI serves too; TGI's native paths "tgi:<model>",
/// KServe v2's "kserve-v2:<model>", so a path only routes to servers that speak it). Health and reported load
/// are left to the caller.
backend router_backend(const backend_config& b, std::span<const std::string> models);

/// Load signals in a Prometheus text exposition that the router uses, summed over label sets.
struct scraped_load {
    bool any = false;        // some known metric was present
    double waiting = 0;      // vllm:num_requests_waiting, llamacpp:requests_deferred, tgi_queue_size, ...
    double running = 0;      // vllm:num_requests_running, llamacpp:requests_processing
    double kv_usage = -1;    // vllm:kv_cache_usage_perc (0..1); -1: not reported
};
scraped_load parse_prometheus_load(std::string_view text);

/// Checks of a client's request head, which the gateway refuses with 400 naming the problem: on the raw bytes
/// before Beast parses them (obsolete line folding), and on the parsed fields (request smuggling: two
/// Content-Lengths, a Transfer-Encoding other than chunked, not exactly one Host).
std::optional<std::string> raw_head_problem(std::string_view head);
std::optional<std::string> head_problem(const boost::beast::http::request_parser<boost::beast::http::string_body>& p);

} // namespace swarm::inline v0::dispatch
