// Waiting on real sockets and processes: poll a condition every 20 ms, for a bounded time.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace swarm_test {

inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return condition();
}

} // namespace swarm_test
