// Durability calculator: the chance that a k+m stripe loses more than m shards within a horizon.
#pragma once

#include <swarm/core/error.hpp>

#include <cstdint>

namespace swarm::inline v0::storage {

struct durability_params {
    unsigned data_shards = 10;
    unsigned parity_shards = 4;
    unsigned nodes = 14;                  // shards of one stripe sit on distinct nodes
    double yearly_node_failure = 0.10;    // probability that a node fails within a year
    double repair_hours = 24;             // mean time to rebuild one lost shard
    std::uint64_t stripes = 1;            // stripes stored; placements are random over the nodes
    double horizon_years = 1;

    detailed_result<void> validate() const;
};

struct durability_estimate {
    double stripe_loss_probability = 0;   // one stripe, over the horizon
    double system_loss_probability = 0;   // any stripe, over the horizon
    double stripe_mttdl_years = 0;        // mean time to data loss of one stripe
    double nines = 0;                     // -log10(system_loss_probability)
};

/// A birth-death Markov chain per stripe: state i = shards lost; each of the k+m-i live nodes fails at rate
/// lambda = -ln(1 - yearly_node_failure); each lost shard is rebuilt independently at rate 1/repair_hours;
/// state m+1 is loss. The horizon probability is exact (uniformisation). For many stripes, loss needs some
/// m+1 nodes down together that one stripe spans; the system figure treats min(stripes, C(nodes, m+1) /
/// C(k+m, m+1)) groups as independent, an approximation that errs towards more loss.
detailed_result<durability_estimate> estimate_durability(const durability_params& params);

/// Simulates nodes failing and being repaired, event by event, for `trials` horizons of one stripe; returns
/// the fraction that lost data. A cross-check of the chain in regimes where loss is common enough to count.
detailed_result<double> simulate_stripe_loss(const durability_params& params, std::uint64_t trials,
                                             std::uint64_t seed);

} // namespace swarm::inline v0::storage
