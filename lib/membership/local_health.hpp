// Lifeguard's local health multiplier: a node that misses its own deadlines trusts its own view less.
#pragma once

#include <swarm/core/clock.hpp>

#include <algorithm>

namespace swarm::inline v0::membership::detail {

/// The score rises when this node shows signs of being the slow one (probes it sent went unanswered
/// although helpers were reachable, expected nacks never came, it had to refute a suspicion of itself)
/// and falls with every probe that succeeds. Probe intervals and timeouts are stretched by score + 1.
class local_health {
public:
    explicit local_health(int max_score) noexcept : max_(std::max(max_score, 0)) {}

    void apply(int delta) noexcept { score_ = std::clamp(score_ + delta, 0, max_); }
    int score() const noexcept { return score_; }
    duration scale(duration d) const noexcept { return d * (score_ + 1); }

private:
    int max_;
    int score_ = 0;
};

} // namespace swarm::inline v0::membership::detail
