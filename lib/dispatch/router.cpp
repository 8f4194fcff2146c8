#include <swarm/dispatch/router.hpp>

#include "dispatch/hash.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <unordered_map>
#include <utility>

namespace swarm::inline v0::dispatch {

namespace {

struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using string_map = std::unordered_map<std::string, V, string_hash, std::equal_to<>>;

constexpr std::uint64_t session_seed = 0x5E55'1011'0000'0001ULL;
constexpr std::uint64_t block_seed = 0xB10C'0000'0000'0001ULL;

// Candidates are kept in (key, id) order, which is the tie-break: independent of the order backends arrived.
bool candidate_less(const backend_state* a, const backend_state* b) noexcept {
    return a->key != b->key ? a->key < b->key : a->info.id < b->info.id;
}

detailed_result<void> check_backend(const backend& b) {
    if (b.id.empty()) return error{errc::invalid_argument, "backend id is empty"};
    if (b.models.empty()) return error{errc::invalid_argument, fmt::format("backend '{}' serves no model", b.id)};
    for (const auto& m : b.models)
        if (m.empty()) return error{errc::invalid_argument, fmt::format("backend '{}' lists an empty model name", b.id)};
    if (!(b.weight > 0.0) || !std::isfinite(b.weight))
        return error{errc::invalid_argument, fmt::format("backend '{}': weight must be finite and > 0", b.id)};
    if (!(b.kv_cache_usage >= 0.0 && b.kv_cache_usage <= 1.0))
        return error{errc::invalid_argument, fmt::format("backend '{}': kv_cache_usage must be within 0..1", b.id)};
    if (!(b.gpu_utilisation >= 0.0 && b.gpu_utilisation <= 1.0) || !(b.gpu_memory_usage >= 0.0 && b.gpu_memory_usage <= 1.0))
        return error{errc::invalid_argument,
                     fmt::format("backend '{}': gpu_utilisation and gpu_memory_usage must be within 0..1", b.id)};
    return {};
}

} // namespace

detailed_result<void> router_config::validate() const {
    if (block_bytes == 0) return error{errc::config_invalid_value, "block_bytes: must be > 0"};
    if (block_tokens == 0) return error{errc::config_invalid_value, "block_tokens: must be > 0"};
    if (max_blocks == 0) return error{errc::config_invalid_value, "max_blocks: must be > 0"};
    if (max_fallbacks > max_fallback_limit)
        return error{errc::config_invalid_value, fmt::format("max_fallbacks: at most {}", max_fallback_limit)};
    return {};
}

std::size_t prefix_blocks(const router_config& config, const request_view& request, std::span<std::uint64_t> out) {
    const std::byte* data = request.prompt.data();
    std::size_t size = request.prompt.size();
    std::size_t block = config.block_bytes;
    if (!request.tokens.empty()) {
        data = reinterpret_cast<const std::byte*>(request.tokens.data());
        size = request.tokens.size_bytes();
        block = std::size_t{config.block_tokens} * sizeof(std::uint32_t);
    }
    const std::size_t n = std::min(size / block, out.size());
    // Seeded with the model: one backend's caches for two models are separate, and so are their records.
    std::uint64_t chain = detail::hash_string(request.model, block_seed);
    for (std::size_t i = 0; i < n; ++i) {
        // Each block is hashed on its own (independent work the CPU overlaps: the old seed-chained form
        // serialised every multiply of the prompt) and then chained onto its predecessor, so equal hashes
        // still mean equal prefixes.
        chain = detail::chain_step(chain, detail::hash_bytes(data + i * block, block, block_seed));
        out[i] = chain | 1; // never 0: the prefix index uses 0 for an empty slot
    }
    return n;
}

struct router::impl {
    struct model_entry {
        std::string name;
        std::vector<const backend_state*> candidates;
        std::vector<std::uint32_t> loads; // request_context::loads, parallel to candidates
        std::uint64_t version = 0;        // request_context::candidates_version
    };

    router_config config;
    std::vector<stage> pipeline;
    std::vector<std::unique_ptr<backend_state>> slots; // null: free
    std::vector<std::uint32_t> free_slots;
    string_map<std::uint32_t> by_id;
    string_map<std::uint32_t> model_index;
    std::vector<model_entry> models;
    // By slot: the (model index, candidate position) pairs where the backend's load is mirrored.
    std::vector<std::vector<std::pair<std::uint32_t, std::uint32_t>>> places;
    std::size_t count = 0;
    std::uint32_t next_generation = 1;
    std::size_t unusable = 0;       // backends unhealthy or ejected: while 0, route() skips the health pass
    bool any_uses_blocks = false;

    // Scratch space reused by every route(): no allocation per request once grown.
    std::vector<std::uint64_t> blocks;
    std::vector<verdict> verdicts;
    std::vector<double> total;
    std::vector<double> partial;

    backend_state* lookup(std::string_view id) const noexcept {
        auto it = by_id.find(id);
        return it == by_id.end() ? nullptr : slots[it->second].get();
    }

    backend_state* at(backend_ref b) const noexcept {
        if (b.slot >= slots.size()) return nullptr;
        backend_state* s = slots[b.slot].get();
        return s && s->generation == b.generation ? s : nullptr;
    }

    static std::uint32_t load_of(const backend_state& s) noexcept {
        const std::uint64_t l = std::uint64_t{s.in_flight} + s.info.queued;
        return static_cast<std::uint32_t>(std::min<std::uint64_t>(l, std::numeric_limits<std::uint32_t>::max()));
    }

    // After a model's candidate list changed: positions moved, so rewrite its loads and every candidate's place.
    void reindex(std::uint32_t m) {
        model_entry& e = models[m];
        // Process-wide, so versions never repeat even across routers (a host might share a scorer between two).
        static std::atomic<std::uint64_t> next_version{1};
        e.version = next_version.fetch_add(1, std::memory_order_relaxed);
        e.loads.resize(e.candidates.size());
        for (std::size_t p = 0; p < e.candidates.size(); ++p) {
            const backend_state* c = e.candidates[p];
            e.loads[p] = load_of(*c);
            auto& pl = places[c->slot];
            auto it = std::find_if(pl.begin(), pl.end(), [m](const auto& x) { return x.first == m; });
            if (it == pl.end()) pl.emplace_back(m, static_cast<std::uint32_t>(p));
            else it->second = static_cast<std::uint32_t>(p);
        }
    }

    // The backend's load changed: mirror it wherever it is a candidate.
    void sync_load(const backend_state& s) noexcept {
        const std::uint32_t l = load_of(s);
        for (const auto& [m, p] : places[s.slot]) models[m].loads[p] = l;
    }

    void link(backend_state* s) {
        if (places.size() <= s->slot) places.resize(std::size_t{s->slot} + 1);
        for (const auto& m : s->info.models) {
            auto [it, fresh] = model_index.try_emplace(m, static_cast<std::uint32_t>(models.size()));
            if (fresh) models.push_back({m, {}, {}, 0});
            auto& list = models[it->second].candidates;
            if (std::find(list.begin(), list.end(), s) != list.end()) continue; // a model listed twice
            list.insert(std::upper_bound(list.begin(), list.end(), s, candidate_less), s);
            reindex(it->second);
        }
    }

    void unlink(const backend_state* s) {
        // Model entries stay (their index is scorer state); an emptied one routes to not_found.
        places[s->slot].clear();
        for (const auto& m : s->info.models) {
            auto it = model_index.find(m);
            if (it == model_index.end()) continue;
            auto& list = models[it->second].candidates;
            list.erase(std::remove(list.begin(), list.end(), s), list.end());
            reindex(it->second);
        }
    }

    void forget(const backend_state& s) {
        for (auto& st : pipeline) st.policy->on_removed(s);
    }
};

router::router(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
router::router(router&&) noexcept = default;
router& router::operator=(router&&) noexcept = default;
router::~router() = default;

detailed_result<router> router::create(router_config config, std::vector<stage> pipeline) {
    if (auto ok = config.validate(); !ok) return ok.error();
    for (std::size_t i = 0; i < pipeline.size(); ++i) {
        if (!pipeline[i].policy)
            return error{errc::config_invalid_value, fmt::format("pipeline[{}]: no policy", i)};
        if (!(pipeline[i].weight >= 0.0) || !std::isfinite(pipeline[i].weight))
            return error{errc::config_invalid_value, fmt::format("pipeline[{}] ({}): weight must be finite and >= 0", i,
                                                                 pipeline[i].policy->name())};
    }
    auto p = std::make_unique<impl>();
    p->config = config;
    p->pipeline = std::move(pipeline);
    for (const auto& st : p->pipeline) p->any_uses_blocks = p->any_uses_blocks || st.policy->uses_blocks();
    p->blocks.resize(config.max_blocks);
    return router{std::move(p)};
}

detailed_result<backend_ref> router::add(backend b) {
    if (auto ok = check_backend(b); !ok) return ok.error();
    auto& d = *impl_;
    if (d.by_id.contains(std::string_view{b.id}))
        return error{errc::already_exists, fmt::format("backend '{}' is already present", b.id)};
    std::uint32_t slot;
    if (!d.free_slots.empty()) {
        slot = d.free_slots.back();
        d.free_slots.pop_back();
    } else {
        slot = static_cast<std::uint32_t>(d.slots.size());
        d.slots.emplace_back();
    }
    auto s = std::make_unique<backend_state>();
    s->key = detail::hash_string(b.id);
    s->info = std::move(b);
    s->slot = slot;
    // A router-wide counter, so a ref to a removed backend never matches whoever reuses its slot.
    const std::uint32_t generation = d.next_generation++;
    s->generation = generation;
    d.by_id.emplace(s->info.id, slot);
    d.link(s.get());
    d.unusable += s->usable() ? 0 : 1;
    d.slots[slot] = std::move(s);
    ++d.count;
    return backend_ref{slot, generation};
}

detailed_result<backend_ref> router::update(backend b) {
    if (auto ok = check_backend(b); !ok) return ok.error();
    auto& d = *impl_;
    backend_state* s = d.lookup(b.id);
    if (!s) return error{errc::not_found, fmt::format("backend '{}' is not present", b.id)};
    const bool relink = s->info.models != b.models;
    if (relink) d.unlink(s);
    d.unusable -= s->usable() ? 0 : 1;
    s->info = std::move(b);
    d.unusable += s->usable() ? 0 : 1;
    if (relink) d.link(s);
    d.sync_load(*s); // the reported queue may have changed
    return backend_ref{s->slot, s->generation};
}

result<void> router::remove(std::string_view id) {
    auto& d = *impl_;
    auto it = d.by_id.find(id);
    if (it == d.by_id.end()) return make_error_code(errc::not_found);
    const std::uint32_t slot = it->second;
    std::unique_ptr<backend_state> s = std::move(d.slots[slot]);
    d.unlink(s.get());
    d.forget(*s);
    d.unusable -= s->usable() ? 0 : 1;
    d.by_id.erase(it);
    d.free_slots.push_back(slot);
    --d.count;
    return {};
}

result<void> router::set_health(std::string_view id, bool healthy, bool ejected) {
    backend_state* s = impl_->lookup(id);
    if (!s) return make_error_code(errc::not_found);
    impl_->unusable -= s->usable() ? 0 : 1;
    s->info.healthy = healthy;
    s->info.ejected = ejected;
    impl_->unusable += s->usable() ? 0 : 1;
    return {};
}

result<void> router::set_reported_load(std::string_view id, std::uint32_t queued, double kv_cache_usage) {
    backend_state* s = impl_->lookup(id);
    if (!s) return make_error_code(errc::not_found);
    if (!(kv_cache_usage >= 0.0 && kv_cache_usage <= 1.0)) return make_error_code(errc::invalid_argument);
    s->info.queued = queued;
    s->info.kv_cache_usage = kv_cache_usage;
    impl_->sync_load(*s);
    return {};
}

detailed_result<route_decision> router::route(const request_view& request) {
    auto& d = *impl_;
    auto mit = d.model_index.find(request.model);
    if (mit == d.model_index.end())
        return error{errc::not_found, fmt::format("no backend serves model '{}'", request.model)};
    const auto& entry = d.models[mit->second];
    const std::span<const backend_state* const> candidates{entry.candidates};
    const std::size_t n = candidates.size();
    if (n == 0) return error{errc::not_found, fmt::format("no backend serves model '{}'", request.model)};

    request_context ctx;
    ctx.request = &request;
    ctx.model_index = mit->second;
    ctx.candidates_version = entry.version;
    ctx.loads = entry.loads;
    const std::size_t nblocks =
        prefix_blocks(d.config, request, std::span{d.blocks}.first(d.any_uses_blocks ? d.blocks.size() : 1));
    ctx.blocks = std::span<const std::uint64_t>{d.blocks.data(), d.any_uses_blocks ? nblocks : 0};
    if (nblocks > 0) {
        ctx.affinity_key = d.blocks[0];
    } else if (!request.tokens.empty()) {
        ctx.affinity_key = detail::hash_bytes(reinterpret_cast<const std::byte*>(request.tokens.data()),
                                              request.tokens.size_bytes(), block_seed);
    } else {
        ctx.affinity_key = detail::hash_bytes(request.prompt.data(), request.prompt.size(), block_seed);
    }
    if (!request.session_key.empty()) ctx.session_hash = detail::hash_string(request.session_key, session_seed) | 1;

    if (d.verdicts.size() < n) {
        d.verdicts.resize(n);
        d.total.resize(n);
        d.partial.resize(n);
    }
    const std::span<verdict> verdicts{d.verdicts.data(), n};
    const std::span<double> total{d.total.data(), n};
    const std::span<double> partial{d.partial.data(), n};
    std::size_t usable = 0;
    if (d.unusable == 0) {
        std::fill(verdicts.begin(), verdicts.end(), verdict::preferred);
        usable = n;
    } else {
        for (std::size_t i = 0; i < n; ++i) {
            const bool ok = candidates[i]->usable();
            verdicts[i] = ok ? verdict::preferred : verdict::excluded;
            usable += ok ? 1 : 0;
        }
    }
    std::fill(total.begin(), total.end(), 0.0);
    if (usable == 0)
        return error{errc::unreachable,
                     fmt::format("all {} backends of model '{}' are unhealthy or ejected", n, request.model)};

    for (const auto& st : d.pipeline) {
        if (st.weight == 1.0) {
            st.policy->score(ctx, candidates, verdicts, total);
            continue;
        }
        if (st.weight == 0.0) {
            // Only its verdicts count: the scores land in scratch space nobody reads, unzeroed.
            st.policy->score(ctx, candidates, verdicts, partial);
            continue;
        }
        std::fill(partial.begin(), partial.end(), 0.0);
        st.policy->score(ctx, candidates, verdicts, partial);
        for (std::size_t i = 0; i < n; ++i) total[i] += st.weight * partial[i];
    }

    // The best 1 + max_fallbacks candidates in one pass: lower verdict first, then higher score, then
    // candidate order (a strict comparison keeps the earlier of equals ahead).
    const auto better = [&](std::size_t a, std::size_t b) {
        return verdicts[a] != verdicts[b] ? verdicts[a] < verdicts[b] : total[a] > total[b];
    };
    std::array<std::size_t, router_config::max_fallback_limit + 1> top{};
    const std::size_t want = std::size_t{d.config.max_fallbacks} + 1;
    std::size_t ntop = 0;
    // Once the list is full, most candidates lose to its last entry; that entry's verdict and score are kept
    // in registers so the common case is two compares.
    verdict last_verdict = verdict::excluded;
    double last_score = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const verdict v = verdicts[i];
        if (v > last_verdict || (v == last_verdict && !(total[i] > last_score))) continue;
        if (v == verdict::excluded) continue;
        std::size_t j = ntop < want ? ntop++ : want - 1;
        for (; j > 0 && better(i, top[j - 1]); --j) top[j] = top[j - 1];
        top[j] = i;
        if (ntop == want) {
            last_verdict = verdicts[top[ntop - 1]];
            last_score = total[top[ntop - 1]];
        }
    }
    if (ntop == 0)
        return error{errc::unreachable, fmt::format("every backend of model '{}' was excluded by the policy", request.model)};

    const std::size_t best = top[0];
    route_decision out;
    out.chosen = {candidates[best]->slot, candidates[best]->generation};
    for (std::size_t k = 1; k < ntop; ++k)
        out.fallback_storage[out.fallback_count++] = {candidates[top[k]]->slot, candidates[top[k]]->generation};

    for (const auto& st : d.pipeline) st.policy->on_routed(ctx, candidates, best);
    return out;
}

bool router::on_start(backend_ref b) {
    backend_state* s = impl_->at(b);
    if (!s) return false;
    ++s->in_flight;
    impl_->sync_load(*s);
    return true;
}

bool router::on_finish(backend_ref b, bool ok, std::chrono::nanoseconds latency) {
    backend_state* s = impl_->at(b);
    if (!s) return false;
    if (s->in_flight > 0) --s->in_flight;
    impl_->sync_load(*s);
    if (ok) {
        ++s->completed;
        s->latency_ewma = s->completed == 1 ? latency : s->latency_ewma + (latency - s->latency_ewma) / 8;
    } else {
        ++s->failed;
    }
    return true;
}

const backend_state* router::find(backend_ref b) const noexcept {
    return impl_->at(b);
}

const backend_state* router::find(std::string_view id) const noexcept { return impl_->lookup(id); }

std::size_t router::size() const noexcept { return impl_->count; }

const router_config& router::config() const noexcept { return impl_->config; }

} // namespace swarm::inline v0::dispatch
