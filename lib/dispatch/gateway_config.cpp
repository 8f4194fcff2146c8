// Gateway configuration checks and backends from membership metadata.
#include <swarm/dispatch/gateway.hpp>

#include "dispatch/gateway_detail.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>

namespace swarm::inline v0::dispatch {

namespace {

error invalid(std::string message) { return {errc::config_invalid_value, std::move(message)}; }

bool known_api(std::string_view api) { return api == "openai" || api == "tgi" || api == "kserve-v2"; }

} // namespace

detailed_result<void> backend_config::validate() const {
    if (auto u = parse_http_url(url); !u) return invalid(fmt::format("url: {}", u.error().message));
    if (!known_api(api)) return invalid(fmt::format("api: \"{}\" is not one of openai, tgi, kserve-v2", api));
    if (!(weight > 0) || !std::isfinite(weight)) return invalid("weight: must be a finite number > 0");
    for (const auto& m : models)
        if (m.empty()) return invalid("models: a model name is empty");
    return {};
}

detailed_result<void> api_key_config::validate() const {
    if (key.empty()) return invalid("key: must not be empty");
    if (!(requests_per_second >= 0) || !std::isfinite(requests_per_second))
        return invalid("requests_per_second: must be a finite number >= 0");
    if (!(burst >= 1) || !std::isfinite(burst)) return invalid("burst: must be a finite number >= 1");
    return {};
}

detailed_result<void> gateway_config::validate() const {
    std::set<std::string, std::less<>> ids;
    for (std::size_t i = 0; i < backends.size(); ++i) {
        if (auto r = backends[i].validate(); !r) return invalid(fmt::format("backends[{}].{}", i, r.error().message));
        const auto& id = backends[i].id.empty() ? backends[i].url : backends[i].id;
        if (!ids.insert(id).second) return invalid(fmt::format("backends[{}]: id \"{}\" appears twice", i, id));
    }
    for (std::size_t i = 0; i < api_keys.size(); ++i)
        if (auto r = api_keys[i].validate(); !r) return invalid(fmt::format("api_keys[{}].{}", i, r.error().message));
    if (auto r = routing.validate(); !r) return r;
    if (auto r = gpu_saturation.validate(); !r) return invalid("gpu_saturation." + r.error().message);
    auto positive = [](duration d) { return d > duration::zero(); };
    if (!positive(header_timeout) || !positive(body_timeout) || !positive(keep_alive_timeout) ||
        !positive(request_timeout) || !positive(stream_idle_timeout) || !positive(connect_timeout) ||
        !positive(pool_idle_timeout) || !positive(queue_timeout) || !positive(health_interval) ||
        !positive(breaker_open_time))
        return invalid("timeouts and intervals must be > 0");
    if (retry_backoff < duration::zero()) return invalid("retry_backoff: must be >= 0");
    if (hedge_after < duration::zero()) return invalid("hedge_after: must be >= 0 (0: no hedging)");
    if (max_header_bytes < 256) return invalid("max_header_bytes: must be >= 256");
    if (max_body_bytes == 0 || max_response_bytes == 0) return invalid("max_body_bytes, max_response_bytes: must be > 0");
    if (max_connections_per_backend == 0) return invalid("max_connections_per_backend: must be > 0");
    if (max_attempts == 0 || max_attempts > 1 + router_config::max_fallback_limit)
        return invalid(fmt::format("max_attempts: must be 1..{}", 1 + router_config::max_fallback_limit));
    if (!(retry_budget_ratio >= 0) || !std::isfinite(retry_budget_ratio))
        return invalid("retry_budget_ratio: must be a finite number >= 0");
    if (breaker_failures == 0) return invalid("breaker_failures: must be > 0");
    if (max_in_flight == 0) return invalid("max_in_flight: must be > 0");
    return {};
}

namespace {

struct gpu_figures {
    double utilisation = 0.0;
    double memory_usage = 0.0;
};

// A node's GPUs as one backend's figures: mean utilisation, memory used over memory in all.
gpu_figures gpu_figures_of(const membership::metadata& meta) {
    gpu_figures f;
    const auto& gpus = meta.capacity.gpus;
    if (gpus.empty()) return f;
    double busy = 0.0, used = 0.0, total = 0.0;
    for (const auto& g : gpus) {
        busy += std::min(g.utilisation_percent, 100U) / 100.0;
        used += static_cast<double>(std::min(g.memory_used_bytes, g.memory_bytes));
        total += static_cast<double>(g.memory_bytes);
    }
    f.utilisation = busy / static_cast<double>(gpus.size());
    f.memory_usage = total > 0.0 ? used / total : 0.0;
    return f;
}

} // namespace

std::vector<backend_config> backends_from_members(std::span<const membership::member> members) {
    std::vector<backend_config> out;
    for (const auto& m : members) {
        if (!m.meta || (m.state != membership::member_state::alive && m.state != membership::member_state::suspect))
            continue;
        const auto gpu = gpu_figures_of(*m.meta);
        // One backend per (endpoint, api): a server that serves several models is one backend with several.
        std::map<std::pair<std::string, std::string>, std::vector<std::string>> servers;
        for (const auto& s : m.meta->models) {
            if (s.name.empty() || !known_api(s.api) || !parse_http_url(s.endpoint)) continue;
            servers[{s.endpoint, s.api}].push_back(s.name);
        }
        for (auto& [key, models] : servers) {
            backend_config b;
            b.id = fmt::format("{}/{}", m.id.to_string(), key.first);
            b.url = key.first;
            b.api = key.second;
            std::sort(models.begin(), models.end());
            models.erase(std::unique(models.begin(), models.end()), models.end());
            b.models = std::move(models);
            b.gpu_utilisation = gpu.utilisation;
            b.gpu_memory_usage = gpu.memory_usage;
            out.push_back(std::move(b));
        }
    }
    return out;
}

backend router_backend(const backend_config& b, std::span<const std::string> models) {
    backend out;
    out.id = b.id;
    out.endpoint = b.url;
    out.weight = b.weight;
    out.gpu_utilisation = b.gpu_utilisation;
    out.gpu_memory_usage = b.gpu_memory_usage;
    for (const auto& m : models) {
        if (b.api == "kserve-v2") {
            out.models.push_back("kserve-v2:" + m);
        } else {
            out.models.push_back(m); // TGI serves the OpenAI paths too
            if (b.api == "tgi") out.models.push_back("tgi:" + m);
        }
    }
    out.labels["api"] = b.api;
    return out;
}

detailed_result<void> member_sync::apply(router& r, std::span<const membership::member> members) {
    std::set<std::string, std::less<>> suspect;
    for (const auto& m : members)
        if (m.state == membership::member_state::suspect) suspect.insert(m.id.to_string());
    std::set<std::string, std::less<>> now;
    for (auto& c : backends_from_members(members)) {
        backend b = router_backend(c, c.models);
        const bool is_suspect = suspect.contains(std::string_view(c.id).substr(0, c.id.find('/')));
        if (const auto* old = r.find(c.id)) {
            // Health and reported load belong to the host's checks; a suspect member overrides health.
            b.healthy = !is_suspect && old->info.healthy;
            b.ejected = old->info.ejected;
            b.queued = old->info.queued;
            b.kv_cache_usage = old->info.kv_cache_usage;
            if (auto u = r.update(std::move(b)); !u) return u.error();
        } else {
            b.healthy = !is_suspect;
            if (auto a = r.add(std::move(b)); !a) return a.error();
        }
        now.insert(std::move(c.id));
    }
    for (const auto& id : ids_)
        if (!now.contains(id)) (void)r.remove(id);
    ids_ = std::move(now);
    return {};
}

} // namespace swarm::inline v0::dispatch
