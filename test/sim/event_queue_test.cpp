// The simulator's event queue must pop in exactly (time, insertion) order whatever the mix of near and far
// events, and survive an event scheduled before the window it had moved to.
#include "sim/event_queue.hpp"

#include <swarm/core/random.hpp>

#include <gtest/gtest.h>

#include <set>
#include <utility>

namespace swarm::sim::detail {
namespace {

TEST(sim_event_queue, pops_in_time_then_insertion_order_against_a_reference) {
    rng random(5);
    event_queue q;
    std::set<std::pair<std::int64_t, std::uint32_t>> reference; // (time, insertion number)
    std::int64_t now = 0;
    std::uint32_t next = 0;
    for (int round = 0; round < 200000; ++round) {
        const auto roll = random.below(100);
        if (roll < 55 || reference.empty()) {
            // Mostly near (within a few ms), some at the same instant, some far beyond the ring's horizon.
            std::int64_t delay = roll < 5 ? 0 : roll < 50 ? static_cast<std::int64_t>(random.below(3'000'000))
                                                         : static_cast<std::int64_t>(random.below(2'000'000'000));
            q.push(now + delay, next);
            reference.insert({now + delay, next});
            ++next;
        } else if (roll < 57) {
            // Look ahead (moving the ring to the next event), then schedule earlier than it, as run_until does.
            (void)q.top();
            q.push(now, next);
            reference.insert({now, next});
            ++next;
        } else {
            auto e = q.pop();
            auto expected = *reference.begin();
            reference.erase(reference.begin());
            ASSERT_EQ(e.time, expected.first) << "round " << round;
            ASSERT_EQ(e.index(), expected.second) << "round " << round;
            now = e.time;
        }
        ASSERT_EQ(q.size(), reference.size());
    }
    while (!reference.empty()) {
        auto e = q.pop();
        ASSERT_EQ(e.index(), reference.begin()->second);
        reference.erase(reference.begin());
    }
    EXPECT_TRUE(q.empty());
}

} // namespace
} // namespace swarm::sim::detail
