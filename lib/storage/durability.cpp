#include <swarm/storage/durability.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace swarm::inline v0::storage {

namespace {
constexpr double hours_per_year = 8766;
constexpr double max_uniformisation_steps = 1e7;

double failure_rate(const durability_params& p) { return -std::log1p(-p.yearly_node_failure); }
double repair_rate(const durability_params& p) { return hours_per_year / p.repair_hours; }
} // namespace

detailed_result<void> durability_params::validate() const {
    if (data_shards < 1 || parity_shards < 1 || data_shards + parity_shards > 255)
        return error{errc::invalid_argument, fmt::format("durability: {}+{} shards out of range", data_shards, parity_shards)};
    if (nodes < data_shards + parity_shards)
        return error{errc::invalid_argument,
                     fmt::format("durability: {} nodes cannot hold {} shards on distinct nodes", nodes, data_shards + parity_shards)};
    if (!(yearly_node_failure > 0 && yearly_node_failure < 1))
        return error{errc::invalid_argument, "durability: yearly_node_failure must be in (0, 1)"};
    if (!(repair_hours > 0) || !std::isfinite(repair_hours))
        return error{errc::invalid_argument, "durability: repair_hours must be positive"};
    if (!(horizon_years > 0) || !std::isfinite(horizon_years))
        return error{errc::invalid_argument, "durability: horizon_years must be positive"};
    if (stripes < 1) return error{errc::invalid_argument, "durability: stripes must be at least 1"};
    const double n = data_shards + parity_shards;
    if ((n * failure_rate(*this) + n * repair_rate(*this)) * horizon_years > max_uniformisation_steps)
        return error{errc::invalid_argument, "durability: repair rate times horizon too large to evaluate"};
    return {};
}

detailed_result<durability_estimate> estimate_durability(const durability_params& params) {
    if (auto r = params.validate(); !r) return r.error();
    const unsigned n = params.data_shards + params.parity_shards;
    const unsigned m = params.parity_shards;
    const double lambda = failure_rate(params);
    const double mu = repair_rate(params);
    auto up = [&](unsigned i) { return (n - i) * lambda; };
    auto down = [&](unsigned i) { return i * mu; };

    durability_estimate out;
    // Mean time to absorption: tau_j, the expected time from first reaching j to first reaching j+1.
    double tau = 0;
    for (unsigned j = 0; j <= m; ++j) {
        tau = 1 / up(j) + (j == 0 ? 0 : down(j) / up(j) * tau);
        out.stripe_mttdl_years += tau;
    }

    // Uniformisation: P(t) = sum_j Poisson(j; L t) (I + Q/L)^j, with the absorbing state kept apart so its
    // tiny probability never cancels against the transient mass.
    double rate_bound = 0;
    for (unsigned i = 0; i <= m; ++i) rate_bound = std::max(rate_bound, up(i) + down(i));
    const double lt = rate_bound * params.horizon_years;
    const auto steps = static_cast<std::uint64_t>(lt + 12 * std::sqrt(lt) + 64);
    std::vector<double> v(m + 1, 0.0), next(m + 1);
    v[0] = 1;
    double absorbed = 0, loss = 0, tail = 1; // tail: Poisson mass not yet added
    for (std::uint64_t j = 0; j <= steps; ++j) {
        const double weight = std::exp(-lt + static_cast<double>(j) * std::log(lt) - std::lgamma(static_cast<double>(j) + 1));
        loss += weight * absorbed;
        tail -= weight;
        std::fill(next.begin(), next.end(), 0.0);
        for (unsigned i = 0; i <= m; ++i) {
            const double stay = 1 - (up(i) + down(i)) / rate_bound;
            next[i] += v[i] * stay;
            if (i > 0) next[i - 1] += v[i] * down(i) / rate_bound;
            if (i < m) next[i + 1] += v[i] * up(i) / rate_bound;
            else absorbed += v[i] * up(i) / rate_bound;
        }
        v.swap(next);
    }
    loss += std::max(tail, 0.0) * absorbed; // the unsummed tail, bounded by the mass absorbed so far
    out.stripe_loss_probability = std::clamp(loss, 0.0, 1.0);

    // Loss needs m+1 nodes down at once that a stripe spans. A stripe spans C(n, m+1) such sets out of the
    // C(nodes, m+1) there are, so beyond C(nodes, m+1) / C(n, m+1) stripes more stripes add no new ways to lose
    // data: that many groups, taken as independent, bound the system figure.
    auto log_choose = [](double a, double b) { return std::lgamma(a + 1) - std::lgamma(b + 1) - std::lgamma(a - b + 1); };
    const double log_groups = log_choose(params.nodes, m + 1) - log_choose(n, m + 1);
    const double groups = std::min(static_cast<double>(params.stripes), std::exp(std::min(log_groups, 700.0)));
    out.system_loss_probability = -std::expm1(groups * std::log1p(-out.stripe_loss_probability));
    out.nines = out.system_loss_probability > 0 ? -std::log10(out.system_loss_probability) : INFINITY;
    return out;
}

detailed_result<double> simulate_stripe_loss(const durability_params& params, std::uint64_t trials, std::uint64_t seed) {
    if (auto r = params.validate(); !r) return r.error();
    if (trials == 0) return error{errc::invalid_argument, "durability: trials must be at least 1"};
    const unsigned n = params.data_shards + params.parity_shards;
    const double lambda = failure_rate(params);
    const double mu = repair_rate(params);
    std::mt19937_64 random(seed);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    auto exponential = [&](double rate) { return -std::log1p(-unit(random)) / rate; };
    std::vector<double> next_event(n);
    std::vector<bool> failed(n);
    std::uint64_t losses = 0;
    for (std::uint64_t t = 0; t < trials; ++t) {
        // Each node on its own clock: alive until a failure, then down until its repair completes.
        for (unsigned i = 0; i < n; ++i) {
            failed[i] = false;
            next_event[i] = exponential(lambda);
        }
        unsigned down = 0;
        while (true) {
            const auto it = std::min_element(next_event.begin(), next_event.end());
            const double now = *it;
            if (now > params.horizon_years) break;
            const auto i = static_cast<std::size_t>(it - next_event.begin());
            failed[i] = !failed[i];
            down = failed[i] ? down + 1 : down - 1;
            if (down > params.parity_shards) {
                ++losses;
                break;
            }
            next_event[i] = now + exponential(failed[i] ? mu : lambda);
        }
    }
    return static_cast<double>(losses) / static_cast<double>(trials);
}

} // namespace swarm::inline v0::storage
