#include <swarm/dispatch/scorers.hpp>

#include "dispatch/hash.hpp"
#include "dispatch/prefix_index.hpp"

#include <swarm/core/random.hpp>

#include <fmt/format.h>
#include <gsl/assert>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace swarm::inline v0::dispatch {

namespace {

// The best verdict any candidate still has: randomised policies draw among those only.
verdict best_verdict(std::span<const verdict> verdicts) noexcept {
    verdict best = verdict::excluded;
    for (verdict v : verdicts) best = std::min(best, v);
    return best;
}

// The candidates' loads as one dense array: the router's, or (for a host calling score() without one) gathered
// into `scratch`.
std::span<const std::uint32_t> dense_loads(const request_context& ctx, std::span<const backend_state* const> candidates,
                                           std::vector<std::uint32_t>& scratch) {
    if (ctx.loads.size() == candidates.size()) return ctx.loads;
    scratch.resize(candidates.size());
    for (std::size_t i = 0; i < candidates.size(); ++i)
        scratch[i] = static_cast<std::uint32_t>(std::min(candidates[i]->load(), 4294967295.0));
    return scratch;
}

class round_robin_scorer final : public scorer {
public:
    std::string_view name() const noexcept override { return "round_robin"; }

    void score(const request_context& ctx, std::span<const backend_state* const> candidates, std::span<verdict>,
               std::span<double> scores) override {
        const std::size_t n = candidates.size();
        const std::size_t cursor = cursor_for(ctx.model_index) % n;
        // The candidate at the cursor scores 1, the one before it scores least: filtered ones are skipped.
        const double step = 1.0 / static_cast<double>(n);
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t behind = i >= cursor ? i - cursor : i + n - cursor;
            scores[i] += 1.0 - static_cast<double>(behind) * step;
        }
    }

    void on_routed(const request_context& ctx, std::span<const backend_state* const> candidates,
                   std::size_t chosen) override {
        cursor_for(ctx.model_index) = (chosen + 1) % candidates.size();
    }

private:
    std::size_t& cursor_for(std::uint32_t model) {
        if (model >= cursors_.size()) cursors_.resize(model + 1, 0);
        return cursors_[model];
    }
    std::vector<std::size_t> cursors_;
};

class least_outstanding_scorer final : public scorer {
public:
    std::string_view name() const noexcept override { return "least_outstanding"; }
    void score(const request_context& ctx, std::span<const backend_state* const> candidates, std::span<verdict>,
               std::span<double> scores) override {
        const std::span<const std::uint32_t> loads = dense_loads(ctx, candidates, loads_);
        for (std::size_t i = 0; i < candidates.size(); ++i) scores[i] -= static_cast<double>(loads[i]);
    }

private:
    std::vector<std::uint32_t> loads_;
};

class kv_cache_headroom_scorer final : public scorer {
public:
    std::string_view name() const noexcept override { return "kv_cache_headroom"; }
    void score(const request_context&, std::span<const backend_state* const> candidates, std::span<verdict>,
               std::span<double> scores) override {
        for (std::size_t i = 0; i < candidates.size(); ++i) scores[i] -= candidates[i]->info.kv_cache_usage;
    }
};

class gpu_saturation_scorer final : public scorer {
public:
    explicit gpu_saturation_scorer(gpu_saturation_options o) : o_(o) {}
    std::string_view name() const noexcept override { return "gpu_saturation"; }
    void score(const request_context&, std::span<const backend_state* const> candidates, std::span<verdict> verdicts,
               std::span<double>) override {
        for (std::size_t i = 0; i < candidates.size(); ++i) {
            const backend& b = candidates[i]->info;
            if (verdicts[i] == verdict::preferred &&
                (b.gpu_utilisation >= o_.max_utilisation || b.gpu_memory_usage >= o_.max_memory_usage))
                verdicts[i] = verdict::fallback;
        }
    }

private:
    gpu_saturation_options o_;
};

class power_of_two_scorer final : public scorer {
public:
    explicit power_of_two_scorer(std::uint64_t seed) : state_(seed) {}
    std::string_view name() const noexcept override { return "power_of_two"; }

    void score(const request_context&, std::span<const backend_state* const> candidates,
               std::span<verdict> verdicts, std::span<double> scores) override {
        const verdict best = best_verdict(verdicts);
        pool_.clear();
        for (std::size_t i = 0; i < candidates.size(); ++i)
            if (verdicts[i] == best) pool_.push_back(i);
        if (pool_.empty()) return;
        if (pool_.size() == 1) {
            scores[pool_[0]] += 2.0;
            return;
        }
        const std::size_t m = pool_.size();
        const std::size_t a = pool_[splitmix64(state_) % m];
        std::size_t bi = splitmix64(state_) % (m - 1);
        if (pool_[bi] == a) bi = m - 1; // draw without replacement: the last one stands in for the first pick
        const std::size_t b = pool_[bi];
        const bool a_wins = candidates[a]->load() <= candidates[b]->load();
        scores[a_wins ? a : b] += 2.0;
        scores[a_wins ? b : a] += 1.0;
    }

private:
    std::uint64_t state_;
    std::vector<std::size_t> pool_;
};

class weighted_random_scorer final : public scorer {
public:
    explicit weighted_random_scorer(std::uint64_t seed) : state_(seed) {}
    std::string_view name() const noexcept override { return "weighted_random"; }

    void score(const request_context&, std::span<const backend_state* const> candidates,
               std::span<verdict> verdicts, std::span<double> scores) override {
        const verdict best = best_verdict(verdicts);
        double sum = 0.0;
        for (std::size_t i = 0; i < candidates.size(); ++i)
            if (verdicts[i] == best) sum += candidates[i]->info.weight;
        if (!(sum > 0.0)) return;
        double u = static_cast<double>(splitmix64(state_) >> 11) * 0x1.0p-53 * sum;
        std::size_t pick = candidates.size();
        for (std::size_t i = 0; i < candidates.size(); ++i) {
            if (verdicts[i] != best) continue;
            pick = i; // the last eligible one absorbs rounding at the top of the range
            u -= candidates[i]->info.weight;
            if (u < 0.0) break;
        }
        if (pick < candidates.size()) scores[pick] += 1.0;
    }

private:
    std::uint64_t state_;
};

class bounded_load_scorer final : public scorer {
public:
    explicit bounded_load_scorer(bounded_load_options o) : o_(o) {}
    std::string_view name() const noexcept override { return "bounded_load"; }

    void score(const request_context& ctx, std::span<const backend_state* const> candidates,
               std::span<verdict> verdicts, std::span<double>) override {
        // Loads are whole numbers, read from the router's dense array (or gathered once when a host calls
        // without it): both passes are branch-free over contiguous integers.
        const std::size_t n = candidates.size();
        const std::span<const std::uint32_t> loads = dense_loads(ctx, candidates, loads_);
        std::uint32_t least = std::numeric_limits<std::uint32_t>::max();
        std::uint64_t sum = 0;
        std::uint32_t count = 0;
        for (std::size_t i = 0; i < n; ++i) {
            // Masks rather than branches, so the compiler can vectorise the pass.
            const std::uint32_t keep = 0U - static_cast<std::uint32_t>(verdicts[i] == verdict::preferred);
            least = std::min(least, loads[i] | ~keep);
            sum += loads[i] & keep;
            count += keep & 1U;
        }
        if (count == 0) return;
        const double limit = static_cast<double>(least) +
                             std::max(o_.slack_requests, o_.slack_fraction * static_cast<double>(sum) / static_cast<double>(count));
        // A whole-number load exceeds `limit` exactly when it exceeds floor(limit).
        const auto bound = static_cast<std::uint32_t>(std::min(std::floor(limit), 4294967295.0));
        // preferred (0) becomes fallback (1) by adding 1 where it is over the bound.
        static_assert(static_cast<int>(verdict::preferred) == 0 && static_cast<int>(verdict::fallback) == 1);
        auto* v = reinterpret_cast<std::uint8_t*>(verdicts.data());
        for (std::size_t i = 0; i < n; ++i)
            v[i] = static_cast<std::uint8_t>(v[i] + static_cast<std::uint8_t>(v[i] == 0 && loads[i] > bound));
    }

private:
    bounded_load_options o_;
    std::vector<std::uint32_t> loads_; // scratch, by candidate position
};

class session_affinity_scorer final : public scorer {
public:
    explicit session_affinity_scorer(session_affinity_options o) : o_(o) {}
    std::string_view name() const noexcept override { return "session_affinity"; }

    void score(const request_context& ctx, std::span<const backend_state* const> candidates,
               std::span<verdict> verdicts, std::span<double> scores) override {
        // Without a session key the prompt's first block stands in for one: such requests spread by it under
        // the same load bound, and a repeated opening keeps its backend, instead of all tying on one.
        const std::uint64_t key = ctx.session_hash != 0 ? ctx.session_hash : ctx.affinity_key;
        double total = 0.0;
        std::size_t count = 0;
        for (std::size_t i = 0; i < candidates.size(); ++i) {
            if (verdicts[i] != verdict::preferred) continue;
            total += candidates[i]->load();
            ++count;
        }
        const double capacity =
            count == 0 ? 0.0 : std::ceil(o_.load_factor * (total + 1.0) / static_cast<double>(count));
        for (std::size_t i = 0; i < candidates.size(); ++i) {
            if (verdicts[i] == verdict::excluded) continue;
            const double w = detail::rendezvous(key, candidates[i]->key);
            const bool within = verdicts[i] == verdict::preferred && candidates[i]->load() + 1.0 <= capacity;
            scores[i] += within ? 1.0 + w : w;
        }
    }

private:
    session_affinity_options o_;
};

class prefix_affinity_scorer final : public scorer {
public:
    explicit prefix_affinity_scorer(prefix_affinity_options o)
        : index_(o.blocks_per_backend), exact_(o.exact_blocks), stride_(o.stride) {}
    std::string_view name() const noexcept override { return "prefix_affinity"; }
    bool uses_blocks() const noexcept override { return true; }

    void score(const request_context& ctx, std::span<const backend_state* const> candidates,
               std::span<verdict> verdicts, std::span<double> scores) override {
        const std::size_t n = candidates.size();
        matched_ = 0;
        matched_samples_ = 0;
        sample_positions(ctx.blocks.size());
        // Start the index's cache misses for every recorded position now (the table is large and cold): the
        // binary search below and on_routed's recording then find their lines loaded instead of waiting on each.
        if (!index_.empty())
            for (const std::uint32_t k : samples_) index_.prefetch(ctx.blocks[k]);
        const model_cache& mc = cache_for(ctx, candidates);
        for (std::size_t i = 0; i < n; ++i) scores[i] += detail::rendezvous(ctx.affinity_key, mc.keys[i]);
        if (ctx.blocks.empty() || index_.empty()) return;

        // Position of `slot` among this request's preferred candidates, or n.
        const auto preferred_position = [&](std::uint32_t slot) -> std::size_t {
            if (slot >= mc.position.size()) return n;
            const std::size_t p = mc.position[slot];
            return p < n && verdicts[p] == verdict::preferred ? p : n;
        };
        const auto held = [&](std::size_t k) {
            const auto* e = index_.find(ctx.blocks[samples_[k]]);
            if (!e) return false;
            for (const auto& h : e->holders)
                if (h.slot != detail::prefix_index::no_slot && preferred_position(h.slot) < n) return true;
            return false;
        };
        // Blocks are chained, so a backend holding block k normally holds 0..k: the longest prefix held by a
        // preferred candidate is a binary search over the recorded positions, log2 of their number lookups.
        if (!held(0)) return;
        std::size_t lo = 0, hi = samples_.size();
        while (hi - lo > 1) {
            const std::size_t mid = lo + (hi - lo) / 2;
            (held(mid) ? lo : hi) = mid;
        }
        const auto* e = index_.find(ctx.blocks[samples_[lo]]);
        matched_samples_ = lo + 1;
        matched_ = samples_[lo] + 1;
        holders_.fill(detail::prefix_index::no_slot);
        for (std::size_t k = 0; k < e->holders.size(); ++k) {
            const auto& h = e->holders[k];
            if (h.slot == detail::prefix_index::no_slot) continue;
            if (const std::size_t p = preferred_position(h.slot); p < n) {
                scores[p] += static_cast<double>(matched_) + 1.0;
                holders_[k] = h.slot;
            }
        }
    }

    void on_routed(const request_context& ctx, std::span<const backend_state* const> candidates,
                   std::size_t chosen) override {
        const std::uint32_t slot = candidates[chosen]->slot;
        // The chosen backend held the first matched_ blocks, recorded together when they were last
        // refreshed; while the first of them is still recent, so are the rest, and only the new blocks
        // need recording. That turns ~100 lookups for a long shared prompt into one plus the new tail.
        const bool held_prefix = matched_ > 0 && std::find(holders_.begin(), holders_.end(), slot) != holders_.end();
        const std::size_t from = held_prefix && index_.recent(slot, ctx.blocks[0]) ? matched_samples_ : 0;
        recorded_.clear();
        for (std::size_t k = from; k < samples_.size(); ++k) recorded_.push_back(ctx.blocks[samples_[k]]);
        index_.touch_all(slot, recorded_);
    }

    void on_removed(const backend_state& b) override { index_.forget(b.slot); }

private:
    // Derived from a model's candidate list, rebuilt when the router says the list changed: the per-request
    // passes then read two dense arrays instead of following a pointer per candidate.
    struct model_cache {
        std::uint64_t version = 0;
        std::vector<std::uint64_t> keys;      // by candidate position
        std::vector<std::uint32_t> position;  // slot -> candidate position; absent slots map past the end
    };

    const model_cache& cache_for(const request_context& ctx, std::span<const backend_state* const> candidates) {
        if (ctx.model_index >= models_.size()) models_.resize(std::size_t{ctx.model_index} + 1);
        model_cache& mc = models_[ctx.model_index];
        if (mc.version == ctx.candidates_version && ctx.candidates_version != 0 && mc.keys.size() == candidates.size())
            return mc;
        mc.version = ctx.candidates_version;
        mc.keys.resize(candidates.size());
        std::uint32_t max_slot = 0;
        for (std::size_t i = 0; i < candidates.size(); ++i) {
            mc.keys[i] = candidates[i]->key;
            max_slot = std::max(max_slot, candidates[i]->slot);
        }
        mc.position.assign(candidates.empty() ? 0 : std::size_t{max_slot} + 1, std::numeric_limits<std::uint32_t>::max());
        for (std::size_t i = 0; i < candidates.size(); ++i) mc.position[candidates[i]->slot] = static_cast<std::uint32_t>(i);
        return mc;
    }

    // The block positions recorded for a prompt of `blocks` blocks: every one below exact_, then every
    // stride_-th, then the last.
    void sample_positions(std::size_t blocks) {
        samples_.clear();
        for (std::size_t k = 0; k < blocks && k < exact_; ++k) samples_.push_back(static_cast<std::uint32_t>(k));
        for (std::size_t k = std::size_t{exact_} + stride_ - 1; k < blocks; k += stride_)
            samples_.push_back(static_cast<std::uint32_t>(k));
        if (blocks > exact_ && samples_.back() != blocks - 1) samples_.push_back(static_cast<std::uint32_t>(blocks - 1));
    }

    detail::prefix_index index_;
    std::uint32_t exact_;
    std::uint32_t stride_;
    std::vector<model_cache> models_; // by model index
    // What score() found for the request on_routed() then records.
    std::vector<std::uint32_t> samples_;   // positions of the blocks recorded and looked up
    std::vector<std::uint64_t> recorded_;  // scratch: the hashes on_routed() records
    std::size_t matched_samples_ = 0;      // how many of samples_ the best candidate holds
    std::size_t matched_ = 0;
    std::array<std::uint32_t, detail::prefix_index::max_holders> holders_{};
};

} // namespace

detailed_result<void> gpu_saturation_options::validate() const {
    if (!(max_utilisation > 0.0 && max_utilisation <= 1.0))
        return error{errc::config_invalid_value, "max_utilisation: must be within (0, 1]"};
    if (!(max_memory_usage > 0.0 && max_memory_usage <= 1.0))
        return error{errc::config_invalid_value, "max_memory_usage: must be within (0, 1]"};
    return {};
}

detailed_result<void> bounded_load_options::validate() const {
    if (!(slack_requests >= 0.0) || !std::isfinite(slack_requests))
        return error{errc::config_invalid_value, "slack_requests: must be finite and >= 0"};
    if (!(slack_fraction >= 0.0) || !std::isfinite(slack_fraction))
        return error{errc::config_invalid_value, "slack_fraction: must be finite and >= 0"};
    return {};
}

detailed_result<void> session_affinity_options::validate() const {
    if (!(load_factor >= 1.0) || !std::isfinite(load_factor))
        return error{errc::config_invalid_value, "load_factor: must be finite and >= 1"};
    return {};
}

detailed_result<void> prefix_affinity_options::validate() const {
    if (blocks_per_backend < 2) return error{errc::config_invalid_value, "blocks_per_backend: must be >= 2"};
    if (blocks_per_backend > (1U << 30)) return error{errc::config_invalid_value, "blocks_per_backend: at most 2^30"};
    if (exact_blocks < 1) return error{errc::config_invalid_value, "exact_blocks: must be >= 1"};
    if (stride < 1 || stride > 1024) return error{errc::config_invalid_value, "stride: must be within 1..1024"};
    return {};
}

std::shared_ptr<scorer> round_robin() { return std::make_shared<round_robin_scorer>(); }
std::shared_ptr<scorer> least_outstanding() { return std::make_shared<least_outstanding_scorer>(); }
std::shared_ptr<scorer> kv_cache_headroom() { return std::make_shared<kv_cache_headroom_scorer>(); }
std::shared_ptr<scorer> power_of_two(std::uint64_t seed) { return std::make_shared<power_of_two_scorer>(seed); }
std::shared_ptr<scorer> weighted_random(std::uint64_t seed) { return std::make_shared<weighted_random_scorer>(seed); }
std::shared_ptr<scorer> gpu_saturation(gpu_saturation_options options) {
    Expects(options.validate().has_value());
    return std::make_shared<gpu_saturation_scorer>(options);
}
std::shared_ptr<scorer> bounded_load(bounded_load_options options) {
    Expects(options.validate().has_value());
    return std::make_shared<bounded_load_scorer>(options);
}
std::shared_ptr<scorer> session_affinity(session_affinity_options options) {
    Expects(options.validate().has_value());
    return std::make_shared<session_affinity_scorer>(options);
}
std::shared_ptr<scorer> prefix_affinity(prefix_affinity_options options) {
    Expects(options.validate().has_value());
    return std::make_shared<prefix_affinity_scorer>(options);
}

std::vector<stage> prefix_affinity_pipeline(bounded_load_options load, prefix_affinity_options prefix) {
    return {stage{bounded_load(load), 1.0}, stage{prefix_affinity(prefix), 1.0}};
}

} // namespace swarm::inline v0::dispatch
