// Time as protocols see it: a monotonic time_point read from a clock the host or the simulator provides.
#pragma once

#include <atomic>
#include <chrono>

namespace swarm::inline v0 {

using duration = std::chrono::nanoseconds;
/// Monotonic time. The simulator's virtual time starts at time_point{} (zero).
using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;

/// The one way code above the drivers reads time; the real clock and the virtual clock implement it.
class clock {
public:
    virtual ~clock() = default;
    virtual time_point now() const noexcept = 0;
};

/// std::chrono::steady_clock.
class real_clock final : public clock {
public:
    time_point now() const noexcept override {
        return std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
    }
};

/// A clock that moves only when told to; safe to read from several threads.
class virtual_clock final : public clock {
public:
    explicit virtual_clock(time_point start = {}) noexcept : now_(start.time_since_epoch().count()) {}
    time_point now() const noexcept override { return time_point{duration{now_.load(std::memory_order_acquire)}}; }
    /// Moves time forward; time never goes back, so an earlier point is ignored.
    void advance_to(time_point t) noexcept {
        auto target = t.time_since_epoch().count();
        auto current = now_.load(std::memory_order_relaxed);
        while (target > current && !now_.compare_exchange_weak(current, target, std::memory_order_acq_rel)) {}
    }
    void advance(duration d) noexcept { advance_to(now() + d); }

private:
    std::atomic<duration::rep> now_;
};

} // namespace swarm::inline v0
