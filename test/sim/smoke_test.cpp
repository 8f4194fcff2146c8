#include <swarm/sim/network.hpp>
#include <gtest/gtest.h>
TEST(sim_smoke, creates) { auto n = swarm::sim::network::create({}); ASSERT_TRUE(n); }
