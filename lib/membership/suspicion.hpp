// Lifeguard's suspicion timer: starts long and shrinks as independent members confirm the suspicion.
#pragma once

#include <swarm/core/clock.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace swarm::inline v0::membership::detail {

/// timeout(c) = max(min, max - (max - min) * log(c + 1) / log(k + 1)) for c independent confirmations out of
/// k expected: one accuser waits the long timeout, so a slow but healthy node has time to refute; many
/// accusers agree quickly, so a real failure is declared fast.
template <class Id>
class suspicion {
public:
    suspicion(Id accuser, time_point start, duration min_timeout, duration max_timeout, unsigned expected) noexcept
        : start_(start), min_(min_timeout), max_(std::max(min_timeout, max_timeout)), expected_(expected) {
        confirmers_.push_back(std::move(accuser));
    }

    /// Records a confirmation; false when this member had already accused (no new information).
    bool confirm(const Id& from) {
        if (std::find(confirmers_.begin(), confirmers_.end(), from) != confirmers_.end()) return false;
        if (confirmations() >= expected_) return false;
        confirmers_.push_back(from);
        return true;
    }

    unsigned confirmations() const noexcept { return static_cast<unsigned>(confirmers_.size() - 1); }

    time_point deadline() const noexcept {
        if (expected_ == 0) return start_ + min_;
        const double fraction = std::log(confirmations() + 1.0) / std::log(expected_ + 1.0);
        const auto span = std::chrono::duration<double, std::nano>(max_ - min_) * std::min(fraction, 1.0);
        const auto timeout = max_ - std::chrono::duration_cast<duration>(span);
        return start_ + std::max(timeout, min_);
    }

    time_point started() const noexcept { return start_; }

private:
    time_point start_;
    duration min_;
    duration max_;
    unsigned expected_;
    std::vector<Id> confirmers_; // the first is the original accuser
};

} // namespace swarm::inline v0::membership::detail
