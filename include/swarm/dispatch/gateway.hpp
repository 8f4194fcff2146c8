// The gateway: an OpenAI-compatible HTTP server (Boost.Beast) in front of model servers, routing through a
// dispatch::router.
//
//     auto cfg = swarm::config::load_file<swarm::dispatch::gateway_config>("gateway.json").value();
//     auto gw = swarm::dispatch::gateway::create(std::move(cfg)).value();
//     auto port = gw.start().value();      // listening; serves on the gateway's own thread
//     ...
//     gw.stop();                           // stops accepting, lets requests finish for drain_timeout, then closes
//
// Paths: /v1/chat/completions, /v1/completions, /v1/embeddings (model from the JSON body), /v1/models (merged
// over every backend), TGI's /generate and /generate_stream (model from the x-model header, or the only TGI
// model), KServe v2's /v2/models/{m}/{ready,infer,generate,generate_stream}, and the gateway's own /healthz,
// /readyz, /v2/health/ready and /metrics. Request bodies go to the backend byte for byte; responses come back
// as they arrive (server-sent events chunk by chunk, never buffered whole).
//
// Resilience: a deadline per request (to the first byte for streams, then an idle bound between chunks);
// retries only before the first response byte reaches the client, with jittered exponential backoff and a
// retry budget; a circuit breaker per backend that ejects it from the router and lets one trial through after
// a cool-down; optional hedging of non-streamed requests; admission control (a bounded number in flight, a
// bounded queue, then 429). A client that disconnects cancels its upstream request. docs/gateway.md has more.
//
// Threading: the gateway runs on one thread of its own; every public member function may be called from any
// other thread (they post to it and wait). Moving a started gateway is fine; it keeps running.
#pragma once

#include <swarm/core/clock.hpp>
#include <swarm/core/config.hpp>
#include <swarm/core/error.hpp>
#include <swarm/core/logger.hpp>
#include <swarm/core/metrics.hpp>
#include <swarm/dispatch/router.hpp>
#include <swarm/dispatch/scorers.hpp>
#include <swarm/membership/types.hpp>
#include <swarm/net/endpoint.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace swarm::inline v0::dispatch {

/// A model server the gateway may send to.
struct backend_config {
    std::string id;                  // unique; defaults to the URL when empty
    std::string url;                 // "http://host:port" (plain HTTP; no path)
    std::string api = "openai";      // "openai", "tgi" or "kserve-v2" (membership::served_model::api)
    std::vector<std::string> models; // empty: learned from the backend (GET /v1/models, TGI's GET /info)
    double weight = 1.0;
    // GPU telemetry of the serving node, 0..1 (router.hpp's backend): filled by backends_from_members from
    // membership metadata, never read from a configuration file.
    double gpu_utilisation = 0.0;
    double gpu_memory_usage = 0.0;

    template <class F>
    void describe(F& f) {
        f("id", id);
        f("url", url, config::required);
        f("api", api);
        f("models", models);
        f("weight", weight);
    }
    detailed_result<void> validate() const;
};

/// A bearer key and its rate limit (a token bucket; rate 0 means unlimited).
struct api_key_config {
    std::string key;
    double requests_per_second = 0;
    double burst = 10;

    template <class F>
    void describe(F& f) {
        f("key", key, config::required);
        f("requests_per_second", requests_per_second);
        f("burst", burst);
    }
    detailed_result<void> validate() const;
};

/// How routing policies are picked from configuration.
/// session_affinity: consistent hashing with bounded loads on the request's "user" field or x-session-id
/// header (else its prompt's first block); weighted: random in proportion to backend_config::weight.
enum class routing_policy : std::uint8_t {
    prefix_affinity,
    least_outstanding,
    round_robin,
    power_of_two,
    session_affinity,
    weighted
};
constexpr std::array<config::enum_name<routing_policy>, 6> describe_enum(routing_policy) {
    return {{{routing_policy::prefix_affinity, "prefix_affinity"},
             {routing_policy::least_outstanding, "least_outstanding"},
             {routing_policy::round_robin, "round_robin"},
             {routing_policy::power_of_two, "power_of_two"},
             {routing_policy::session_affinity, "session_affinity"},
             {routing_policy::weighted, "weighted"}}};
}

struct gateway_config {
    net::endpoint listen{};                  // port 0: any free port (start() returns it)
    std::vector<backend_config> backends;
    std::vector<api_key_config> api_keys;    // empty: no authentication
    routing_policy policy = routing_policy::prefix_affinity;
    router_config routing;
    // Backends whose GPUs (membership metadata) are this busy or this full become fallbacks, whatever the policy.
    gpu_saturation_options gpu_saturation;

    // Client side.
    std::size_t max_header_bytes = 16 * 1024;   // 431 over it
    std::size_t max_body_bytes = 4 * 1024 * 1024; // 413 over it
    duration header_timeout = std::chrono::seconds(10); // the whole request head must arrive within it
    duration body_timeout = std::chrono::seconds(30);
    duration keep_alive_timeout = std::chrono::seconds(60); // idle client connections

    // Upstream side.
    duration request_timeout = std::chrono::seconds(120);   // to the whole response, or a stream's first byte
    duration stream_idle_timeout = std::chrono::seconds(60); // between a stream's chunks
    duration connect_timeout = std::chrono::seconds(2);
    std::uint32_t max_connections_per_backend = 64;
    duration pool_idle_timeout = std::chrono::seconds(30);
    std::size_t max_response_bytes = 64 * 1024 * 1024; // a non-streamed response is held whole up to this

    // Retries (before the first response byte only).
    std::uint32_t max_attempts = 3;                  // first try included; at most 1 + router max_fallbacks
    duration retry_backoff = std::chrono::milliseconds(25); // doubled each retry, jittered by +-50%
    // The retry budget is a token bucket: each request adds retry_budget_ratio tokens, each retry takes one,
    // and it holds at most retry_budget_burst (its starting level, so a quiet gateway still retries).
    double retry_budget_ratio = 0.2;
    std::uint32_t retry_budget_burst = 10;

    // Hedging of non-streamed requests: when the first backend has not answered within hedge_after, the next
    // one is asked too (one of max_attempts); the first answer wins. Zero: off.
    duration hedge_after = duration::zero();

    // Circuit breaker per backend.
    std::uint32_t breaker_failures = 5;              // consecutive failures that open it
    duration breaker_open_time = std::chrono::seconds(5); // doubled for each consecutive opening, up to 8x

    // Admission.
    std::uint32_t max_in_flight = 1024;      // requests being proxied at once
    std::uint32_t max_queued = 1024;         // waiting for a slot; beyond it: 429
    duration queue_timeout = std::chrono::seconds(5);

    // Backend health and load.
    duration health_interval = std::chrono::seconds(2); // health checks, model lists and /metrics scrapes
    bool scrape_metrics = true;

    template <class F>
    void describe(F& f) {
        f("listen", listen);
        f("backends", backends);
        f("api_keys", api_keys);
        f("policy", policy);
        f("routing", routing);
        f("gpu_saturation", gpu_saturation);
        f("max_header_bytes", max_header_bytes);
        f("max_body_bytes", max_body_bytes);
        f("header_timeout", header_timeout);
        f("body_timeout", body_timeout);
        f("keep_alive_timeout", keep_alive_timeout);
        f("request_timeout", request_timeout);
        f("stream_idle_timeout", stream_idle_timeout);
        f("connect_timeout", connect_timeout);
        f("max_connections_per_backend", max_connections_per_backend);
        f("pool_idle_timeout", pool_idle_timeout);
        f("max_response_bytes", max_response_bytes);
        f("max_attempts", max_attempts);
        f("retry_backoff", retry_backoff);
        f("retry_budget_ratio", retry_budget_ratio);
        f("retry_budget_burst", retry_budget_burst);
        f("hedge_after", hedge_after);
        f("breaker_failures", breaker_failures);
        f("breaker_open_time", breaker_open_time);
        f("max_in_flight", max_in_flight);
        f("max_queued", max_queued);
        f("queue_timeout", queue_timeout);
        f("health_interval", health_interval);
        f("scrape_metrics", scrape_metrics);
    }
    detailed_result<void> validate() const;
};

/// One backend per (member, endpoint, api) that an alive member advertises in its metadata; suspect members'
/// backends are marked unhealthy. Ids are "<node id>/<endpoint>".
std::vector<backend_config> backends_from_members(std::span<const membership::member> members);

/// Keeps a router in step with membership for hosts that use the router without the gateway.
class member_sync {
public:
    /// Makes `r` hold the backends the members advertise (backends_from_members): adds new ones, updates the
    /// rest (keeping their counts, health verdicts and cache records; a suspect member's are unhealthy), and
    /// removes the ones it added earlier that are gone from this snapshot.
    detailed_result<void> apply(router& r, std::span<const membership::member> members);

private:
    std::set<std::string, std::less<>> ids_;
};

class gateway {
public:
    /// Fails with config_invalid_value on a bad config.
    static detailed_result<gateway> create(gateway_config config, logger log = {});

    gateway(gateway&&) noexcept;
    gateway& operator=(gateway&&) noexcept;
    ~gateway(); // stop()s

    /// Binds, runs the first round of health checks (which learns the backends' models; bounded by
    /// connect_timeout + health_interval), and serves; returns the bound port. io_error (naming the address)
    /// when it cannot bind; already_exists when started before.
    detailed_result<std::uint16_t> start();
    /// Stops accepting, gives requests in progress drain_timeout, then closes everything. Idempotent.
    void stop(duration drain_timeout = std::chrono::seconds(5));

    /// Replaces the backend set: new ones are added, known ids updated (counts and affinity records kept),
    /// missing ones removed once their requests finish. Invalid entries are skipped and reported.
    detailed_result<void> set_backends(std::vector<backend_config> backends);
    /// set_backends(backends_from_members(members)).
    detailed_result<void> sync_members(std::span<const membership::member> members);

    /// The gateway's metrics (also served at /metrics).
    const metrics::registry& metrics() const noexcept;

private:
    struct impl;
    explicit gateway(std::unique_ptr<impl> p) noexcept;
    std::unique_ptr<impl> impl_;
};

} // namespace swarm::inline v0::dispatch
