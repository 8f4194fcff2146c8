#include <swarm/storage/durability.hpp>

#include <gtest/gtest.h>

#include <cmath>

namespace swarm::storage {
namespace {

TEST(Durability, TenPlusFourReachesElevenNinesWithDailyRepair) {
    durability_params p; // 10+4, 14 nodes, 10% yearly failure, 24 h repair
    auto e = estimate_durability(p);
    ASSERT_TRUE(e) << e.error().describe();
    EXPECT_GE(e->nines, 11.0);
    EXPECT_GT(e->stripe_mttdl_years, 1e11);
    // The horizon probability agrees with the exponential law of the mean time to loss, as it must when loss
    // is rare.
    EXPECT_NEAR(e->stripe_loss_probability * e->stripe_mttdl_years, 1.0, 0.01);
}

TEST(Durability, WorseInputsGiveWorseDurability) {
    durability_params p;
    const double base = estimate_durability(p)->stripe_loss_probability;
    auto slower = p;
    slower.repair_hours = 24 * 7;
    EXPECT_GT(estimate_durability(slower)->stripe_loss_probability, base * 100);
    auto fewer = p;
    fewer.parity_shards = 2;
    fewer.nodes = 12;
    EXPECT_GT(estimate_durability(fewer)->stripe_loss_probability, base * 100);
    auto many = p;
    many.nodes = 100;
    many.stripes = 1'000'000;
    EXPECT_GT(estimate_durability(many)->system_loss_probability, base * 1000);
}

TEST(Durability, MonteCarloAgreesWhereLossIsCommon) {
    // A regime where loss happens often enough to count: 3+1, half the nodes fail yearly, slow repair.
    durability_params p;
    p.data_shards = 3;
    p.parity_shards = 1;
    p.nodes = 4;
    p.yearly_node_failure = 0.5;
    p.repair_hours = 24 * 30;
    auto model = estimate_durability(p);
    ASSERT_TRUE(model);
    const std::uint64_t trials = 40'000;
    auto simulated = simulate_stripe_loss(p, trials, 42);
    ASSERT_TRUE(simulated);
    const double q = model->stripe_loss_probability;
    const double sigma = std::sqrt(q * (1 - q) / static_cast<double>(trials));
    EXPECT_GT(q, 0.05);
    EXPECT_NEAR(*simulated, q, 4 * sigma);
}

TEST(Durability, BadParametersAreClearErrors) {
    auto expect_invalid = [](durability_params p, std::string_view words) {
        auto r = estimate_durability(p);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error(), errc::invalid_argument);
        EXPECT_NE(r.error().message.find(words), std::string::npos) << r.error().message;
    };
    durability_params p;
    p.nodes = 13;
    expect_invalid(p, "13 nodes");
    p = {};
    p.yearly_node_failure = 1.5;
    expect_invalid(p, "yearly_node_failure");
    p = {};
    p.repair_hours = 0;
    expect_invalid(p, "repair_hours");
    p = {};
    p.parity_shards = 0;
    expect_invalid(p, "shards out of range");
    EXPECT_FALSE(simulate_stripe_loss({}, 0, 1));
}

} // namespace
} // namespace swarm::storage
