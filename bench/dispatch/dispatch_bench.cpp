// Dispatch router: decision latency, and a prefix-affinity simulation against round-robin, least-load and an
// oracle.
//
//   swarm_bench_dispatch latency [--quick] [--only-backends N] [--only-kb K] [--only-policy prefix|least|rr]
//                                              p50/p99 of route() over 8..10,000 backends, prompts 1..32 KB
//   swarm_bench_dispatch sim [--requests N] [--backends B] [--groups G] [--zipf S] [--capacity C] [--seed X]
//   swarm_bench_dispatch                       both
//
// The simulation runs in virtual time: Poisson arrivals; each request is a group's system prompt (Zipf
// popularity over groups) plus a unique user part; each backend has a true LRU cache of prompt blocks; a
// request's service time is a fixed decode time plus prefill for the blocks its backend did not have cached.
// Cached tokens = the longest prefix of the request's blocks present in the chosen backend's LRU when it
// starts, in tokens (64 per 256-byte block). Load imbalance = coefficient of variation of requests per backend.
#include <swarm/core/random.hpp>
#include <swarm/dispatch/router.hpp>
#include <swarm/dispatch/scorers.hpp>

#include "dispatch/hash.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <list>
#include <memory>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sd = swarm::dispatch;
using clock_type = std::chrono::steady_clock;

namespace {

struct rng {
    std::uint64_t state;
    std::uint64_t next() { return swarm::splitmix64(state); }
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
    std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

std::string random_text(rng& r, std::size_t bytes) {
    std::string s(bytes, ' ');
    for (std::size_t i = 0; i < bytes; i += 8) {
        const std::uint64_t w = r.next();
        for (std::size_t k = 0; k < 8 && i + k < bytes; ++k) s[i + k] = static_cast<char>('a' + ((w >> (8 * k)) & 0xff) % 26);
    }
    return s;
}

sd::request_view view_of(const std::string& prompt) {
    sd::request_view v;
    v.model = "llama";
    v.prompt = std::as_bytes(std::span{prompt.data(), prompt.size()});
    return v;
}

double percentile(std::vector<double>& v, double p) {
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

sd::router build_router(std::vector<sd::stage> pipeline, std::size_t backends) {
    auto r = sd::router::create({}, std::move(pipeline));
    if (!r) std::abort();
    for (std::size_t i = 0; i < backends; ++i) {
        sd::backend b;
        b.id = fmt::format("backend-{}", i);
        b.models = {"llama"};
        b.endpoint = fmt::format("10.0.{}.{}:8000", i / 256, i % 256);
        if (!r->add(std::move(b))) std::abort();
    }
    return std::move(*r);
}

// ---- decision latency ------------------------------------------------------------------------------------

void latency(bool quick, std::size_t only_backends, std::size_t only_kb, std::string_view only_policy) {
    fmt::print("## decision latency (one thread, Release)\n\n");
    fmt::print("| policy | backends | prompt | p50 us | p99 us | mean us |\n|---|---|---|---|---|---|\n");
    const std::size_t measured = quick ? 5000 : 30000;
    for (const std::size_t prompt_bytes : {1024UL, 8192UL, 32768UL}) {
        if (only_kb != 0 && prompt_bytes != only_kb * 1024) continue;
        // 256 groups; each prompt is 3/4 its group's shared prefix and 1/4 its own.
        rng r{prompt_bytes};
        std::vector<std::string> prefixes;
        for (int g = 0; g < 256; ++g) prefixes.push_back(random_text(r, prompt_bytes * 3 / 4));
        std::vector<std::string> prompts;
        for (int i = 0; i < 1024; ++i)
            prompts.push_back(prefixes[r.below(prefixes.size())] + random_text(r, prompt_bytes - prompt_bytes * 3 / 4));
        for (const std::size_t backends : {8UL, 64UL, 1024UL, 10000UL}) {
            if (only_backends != 0 && backends != only_backends) continue;
            struct named {
                const char* name;
                std::vector<sd::stage> pipeline;
            };
            std::vector<named> policies;
            if (only_policy.empty() || only_policy == "prefix")
                policies.push_back({"prefix affinity + bounded load", sd::prefix_affinity_pipeline()});
            if (only_policy.empty() || only_policy == "least")
                policies.push_back({"least outstanding", {{sd::least_outstanding(), 1.0}}});
            if (only_policy.empty() || only_policy == "rr") policies.push_back({"round robin", {{sd::round_robin(), 1.0}}});
            for (auto& p : policies) {
                auto router = build_router(std::move(p.pipeline), backends);
                // Keep about two requests outstanding per backend (at most 4096), so load signals move.
                std::vector<sd::backend_ref> outstanding(std::min<std::size_t>(2 * backends, 4096));
                std::size_t head = 0, filled = 0;
                std::vector<double> us;
                us.reserve(measured);
                const std::size_t warmup = std::max<std::size_t>(2000, 2 * backends);
                for (std::size_t i = 0; i < warmup + measured; ++i) {
                    const auto req = view_of(prompts[i % prompts.size()]);
                    const auto t0 = clock_type::now();
                    auto d = router.route(req);
                    const auto t1 = clock_type::now();
                    if (!d) std::abort();
                    if (i >= warmup) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
                    router.on_start(d->chosen);
                    if (filled == outstanding.size()) router.on_finish(outstanding[head], true, std::chrono::milliseconds(1));
                    else ++filled;
                    outstanding[head] = d->chosen;
                    head = (head + 1) % outstanding.size();
                }
                double mean = 0;
                for (double x : us) mean += x;
                mean /= static_cast<double>(us.size());
                fmt::print("| {} | {} | {} KB | {:.2f} | {:.2f} | {:.2f} |\n", p.name, backends, prompt_bytes / 1024,
                           percentile(us, 0.5), percentile(us, 0.99), mean);
            }
        }
    }
    // The block hashing alone, for reference.
    rng r{1};
    const std::string big = random_text(r, 32768);
    std::vector<std::uint64_t> blocks(4096);
    std::vector<double> us;
    for (int i = 0; i < 20000; ++i) {
        const auto t0 = clock_type::now();
        const auto n = sd::prefix_blocks({}, view_of(big), blocks);
        const auto t1 = clock_type::now();
        if (n != 128) std::abort();
        us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    fmt::print("\nhashing a 32 KB prompt into 128 chained blocks: p50 {:.2f} us, p99 {:.2f} us\n\n", percentile(us, 0.5),
               percentile(us, 0.99));
}

// ---- prefix-affinity simulation ----------------------------------------------------------------------------

struct sim_options {
    std::size_t requests = 40000;
    std::size_t backends = 64;
    std::size_t groups = 512;
    double zipf = 1.1;
    std::size_t capacity = 4096; // blocks per backend's LRU (64 tokens each: 262k tokens)
    std::uint64_t seed = 1;
    double in_flight_per_backend = 8; // offered load, in mean outstanding requests per backend
};

constexpr double tokens_per_block = 64;           // 256 bytes of text
constexpr double decode_s = 0.150;                // per request
constexpr double prefill_s_per_block = 0.002;     // uncached block
constexpr double cached_s_per_block = 0.00005;    // cached block (still read)

class lru_cache {
public:
    explicit lru_cache(std::size_t capacity) : capacity_(capacity) {}
    bool contains(std::uint64_t h) const { return map_.contains(h); }
    void touch(std::uint64_t h) {
        if (auto it = map_.find(h); it != map_.end()) {
            order_.splice(order_.begin(), order_, it->second);
            return;
        }
        order_.push_front(h);
        map_.emplace(h, order_.begin());
        if (map_.size() > capacity_) {
            map_.erase(order_.back());
            order_.pop_back();
        }
    }
    std::size_t prefix_hit(std::span<const std::uint64_t> blocks) const {
        std::size_t k = 0;
        while (k < blocks.size() && contains(blocks[k])) ++k;
        return k;
    }

private:
    std::size_t capacity_;
    std::list<std::uint64_t> order_;
    std::unordered_map<std::uint64_t, std::list<std::uint64_t>::iterator> map_;
};

// The oracle: sees every backend's real cache. Among the candidates left preferred by the same load bound, the
// longest real cached prefix wins; misses go by the same rendezvous on the first block.
class oracle_scorer final : public sd::scorer {
public:
    oracle_scorer(const std::vector<lru_cache>& caches, const std::unordered_map<std::uint64_t, std::size_t>& backend_of_key)
        : caches_(caches), backend_of_key_(backend_of_key) {}
    std::string_view name() const noexcept override { return "oracle"; }
    bool uses_blocks() const noexcept override { return true; }
    void score(const sd::request_context& ctx, std::span<const sd::backend_state* const> candidates,
               std::span<sd::verdict> verdicts, std::span<double> scores) override {
        for (std::size_t i = 0; i < candidates.size(); ++i) {
            const double w = sd::detail::rendezvous(ctx.affinity_key, candidates[i]->key);
            const std::size_t hit = verdicts[i] == sd::verdict::preferred
                                        ? caches_[backend_of_key_.at(candidates[i]->key)].prefix_hit(ctx.blocks)
                                        : 0;
            scores[i] += hit > 0 ? static_cast<double>(hit) + 1.0 + w : w;
        }
    }

private:
    const std::vector<lru_cache>& caches_;
    const std::unordered_map<std::uint64_t, std::size_t>& backend_of_key_;
};

struct sim_result {
    double cached_tokens = 0;
    double prompt_tokens = 0;
    double cov_requests = 0;
    double mean_in_flight = 0;
    double p99_latency_s = 0;
};

double cov(const std::vector<double>& v) {
    double mean = 0;
    for (double x : v) mean += x;
    mean /= static_cast<double>(v.size());
    double var = 0;
    for (double x : v) var += (x - mean) * (x - mean);
    var /= static_cast<double>(v.size());
    return mean > 0 ? std::sqrt(var) / mean : 0;
}

enum class policy { prefix, round_robin, least_load, oracle };

sim_result simulate(policy which, const sim_options& o) {
    std::vector<lru_cache> caches(o.backends, lru_cache(o.capacity));
    std::unordered_map<std::uint64_t, std::size_t> backend_of_key;
    const sd::bounded_load_options bound{}; // the same bound for prefix affinity and the oracle
    std::vector<sd::stage> pipeline;
    switch (which) {
    case policy::prefix:
        pipeline = sd::prefix_affinity_pipeline(bound, {.blocks_per_backend = static_cast<std::uint32_t>(o.capacity)});
        break;
    case policy::round_robin: pipeline = {{sd::round_robin(), 1.0}}; break;
    case policy::least_load: pipeline = {{sd::least_outstanding(), 1.0}}; break;
    case policy::oracle:
        pipeline = {{sd::bounded_load(bound), 1.0}, {std::make_shared<oracle_scorer>(caches, backend_of_key), 1.0}};
        break;
    }
    auto router = build_router(std::move(pipeline), o.backends);
    std::vector<std::size_t> index_of_slot(o.backends);
    for (std::size_t i = 0; i < o.backends; ++i) {
        const auto* s = router.find(fmt::format("backend-{}", i));
        backend_of_key[s->key] = i;
        index_of_slot[s->slot] = i;
    }

    // Workload: the same for every policy (same seed).
    rng r{o.seed};
    std::vector<std::string> systems(o.groups);
    for (auto& s : systems) s = random_text(r, 4096 + r.below(20 * 1024));
    std::vector<double> cdf(o.groups);
    double acc = 0;
    for (std::size_t g = 0; g < o.groups; ++g) cdf[g] = acc += 1.0 / std::pow(static_cast<double>(g + 1), o.zipf);
    for (auto& c : cdf) c /= acc;
    const double mean_service = decode_s + 0.02; // rough, only to set the offered load
    const double rate = static_cast<double>(o.backends) * o.in_flight_per_backend / mean_service;

    struct finish {
        double at;
        sd::backend_ref who;
        bool operator>(const finish& f) const { return at > f.at; }
    };
    std::priority_queue<finish, std::vector<finish>, std::greater<>> running;
    std::vector<double> served(o.backends, 0);
    std::vector<std::uint64_t> blocks(4096);
    std::vector<double> latencies;
    sim_result out;
    double now = 0, in_flight_area = 0, last = 0;
    std::size_t in_flight = 0;
    for (std::size_t i = 0; i < o.requests; ++i) {
        now += -std::log(1.0 - r.uniform()) / rate;
        while (!running.empty() && running.top().at <= now) {
            in_flight_area += static_cast<double>(in_flight) * (running.top().at - last);
            last = running.top().at;
            router.on_finish(running.top().who, true, std::chrono::milliseconds(1));
            running.pop();
            --in_flight;
        }
        in_flight_area += static_cast<double>(in_flight) * (now - last);
        last = now;
        const auto g = static_cast<std::size_t>(std::lower_bound(cdf.begin(), cdf.end(), r.uniform()) - cdf.begin());
        const std::string prompt = systems[std::min(g, o.groups - 1)] + random_text(r, 512 + r.below(3584));
        const auto req = view_of(prompt);
        const std::size_t n = sd::prefix_blocks(router.config(), req, blocks);
        const std::span<const std::uint64_t> bs{blocks.data(), n};
        auto d = router.route(req);
        if (!d) std::abort();
        const std::size_t b = index_of_slot[d->chosen.slot];
        const std::size_t hit = caches[b].prefix_hit(bs);
        for (const auto h : bs) caches[b].touch(h);
        out.cached_tokens += static_cast<double>(hit) * tokens_per_block;
        out.prompt_tokens += static_cast<double>(n) * tokens_per_block;
        served[b] += 1;
        const double service = decode_s + prefill_s_per_block * static_cast<double>(n - hit) +
                               cached_s_per_block * static_cast<double>(hit);
        latencies.push_back(service);
        router.on_start(d->chosen);
        running.push({now + service, d->chosen});
        ++in_flight;
    }
    out.cov_requests = cov(served);
    out.mean_in_flight = in_flight_area / now / static_cast<double>(o.backends);
    out.p99_latency_s = percentile(latencies, 0.99);
    return out;
}

void sim(const sim_options& o) {
    fmt::print("## prefix-affinity simulation\n\n");
    fmt::print("{} requests, {} backends with an LRU of {} blocks (64 tokens each), {} groups with 4-24 KB system "
               "prompts, Zipf {}, user part 0.5-4 KB, offered load {} requests in flight per backend, seed {}\n\n",
               o.requests, o.backends, o.capacity, o.groups, o.zipf, o.in_flight_per_backend, o.seed);
    fmt::print("| policy | cached tokens | of prompt tokens | of oracle | CoV requests/backend | mean in flight/backend | "
               "p99 service s |\n|---|---|---|---|---|---|---|\n");
    const auto oracle = simulate(policy::oracle, o);
    for (const auto& [name, p] : std::vector<std::pair<const char*, policy>>{{"oracle", policy::oracle},
                                                                              {"prefix affinity", policy::prefix},
                                                                              {"round robin", policy::round_robin},
                                                                              {"least load", policy::least_load}}) {
        const auto res = p == policy::oracle ? oracle : simulate(p, o);
        fmt::print("| {} | {:.0f} | {:.1f}% | {:.1f}% | {:.3f} | {:.2f} | {:.3f} |\n", name, res.cached_tokens,
                   100 * res.cached_tokens / res.prompt_tokens, 100 * res.cached_tokens / oracle.cached_tokens,
                   res.cov_requests, res.mean_in_flight, res.p99_latency_s);
    }
    fmt::print("\n");
}

} // namespace

int main(int argc, char** argv) {
    bool quick = false, run_latency = true, run_sim = true;
    std::size_t only_backends = 0, only_kb = 0;
    std::string only_policy;
    sim_options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        const auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
        if (a == "latency") run_sim = false;
        else if (a == "sim") run_latency = false;
        else if (a == "--quick") quick = true;
        else if (a == "--only-backends") only_backends = std::stoul(next());
        else if (a == "--only-kb") only_kb = std::stoul(next());
        else if (a == "--only-policy") only_policy = next();
        else if (a == "--requests") o.requests = std::stoul(next());
        else if (a == "--backends") o.backends = std::stoul(next());
        else if (a == "--groups") o.groups = std::stoul(next());
        else if (a == "--zipf") o.zipf = std::stod(next());
        else if (a == "--capacity") o.capacity = std::stoul(next());
        else if (a == "--seed") o.seed = std::stoull(next());
        else if (a == "--load") o.in_flight_per_backend = std::stod(next());
        else {
            fmt::print(stderr, "unknown argument {}\n", a);
            return 2;
        }
    }
    if (quick) o.requests = std::min<std::size_t>(o.requests, 10000);
    if (run_latency) latency(quick, only_backends, only_kb, only_policy);
    if (run_sim) sim(o);
    return 0;
}
