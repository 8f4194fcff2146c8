// swarm_membership: one member of a mesh on real sockets, started from a JSON config file.
//
// Joins the configured seeds, prints each membership event as it happens (time, kind, node id, address,
// state, and the member's GPUs when it publishes any) until SIGINT or SIGTERM, then leaves gracefully. Events are pulled with poll() on the main thread,
// woken by set_notify(), the way a binding for another language would consume them.
//
// Usage: swarm_membership config.json      (try node1.json and node2.json side by side)
// Exit status: 0 after a clean leave, 1 when the agent cannot start, 2 for a config error.
#include <swarm/core/config.hpp>
#include <swarm/membership/agent.hpp>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>
#include <vector>

namespace {

namespace m = swarm::membership;

std::atomic<bool> interrupted{false};

extern "C" void on_signal(int) { interrupted.store(true); }

std::string wall_time() {
    const auto now = std::chrono::system_clock::now();
    const auto t = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm utc{};
    ::gmtime_r(&t, &utc);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                       utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, ms);
}

void print(const m::event& e) {
    // GPU figures, where the member publishes them (NVML telemetry, on by default): model, utilisation, memory.
    std::string gpus;
    if (e.subject.meta)
        for (const auto& g : e.subject.meta->capacity.gpus)
            gpus += fmt::format(" [{} {}% {:.1f}/{:.1f} GiB]", g.model, g.utilisation_percent,
                                static_cast<double>(g.memory_used_bytes) / (1 << 30),
                                static_cast<double>(g.memory_bytes) / (1 << 30));
    fmt::print("{} {:<8} {} {} {}{}\n", wall_time(), m::to_string(e.kind), e.subject.id.short_string(),
               e.subject.address.to_string(), m::to_string(e.subject.state), gpus);
    std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        fmt::print(stderr, "usage: {} config.json\n", argc > 0 ? argv[0] : "swarm_membership");
        return 2;
    }
    auto cfg = swarm::config::load_file<m::agent_config>(argv[1]);
    if (!cfg) {
        fmt::print(stderr, "swarm_membership: config error: {}\n", cfg.error().describe());
        return 2;
    }
    cfg->log = {swarm::log_level::info, [](swarm::log_level level, std::string_view line) {
                    fmt::print(stderr, "{} {} {}\n", wall_time(), swarm::to_string(level), line);
                }};

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);

    auto node = m::agent::create(std::move(*cfg));
    if (!node) {
        const bool config_error = node.error().code.category() == swarm::swarm_category() &&
                                  node.error().code.value() >= static_cast<int>(swarm::errc::config_unknown_key) &&
                                  node.error().code.value() <= static_cast<int>(swarm::errc::key_file_permissions);
        fmt::print(stderr, "swarm_membership: cannot start: {}\n", node.error().describe());
        return config_error ? 2 : 1;
    }
    fmt::print("{} started  {} {}\n", wall_time(), node->id().short_string(), node->local_endpoint().to_string());
    std::fflush(stdout);

    std::mutex mu;
    std::condition_variable cv;
    bool ready = false;
    // Runs on a swarm thread: only wakes the main thread.
    node->set_notify([&] {
        std::lock_guard lock(mu);
        ready = true;
        cv.notify_one();
    });

    std::vector<m::event> events;
    while (!interrupted.load()) {
        {
            std::unique_lock lock(mu);
            // Bounded, so a signal (which cannot touch the condition variable) is noticed within 200 ms.
            cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return ready; });
            ready = false;
        }
        events.clear();
        node->poll(events);
        for (const auto& e : events) print(e);
    }

    fmt::print("{} leaving\n", wall_time());
    std::fflush(stdout);
    const bool clean = node->leave();
    events.clear();
    node->poll(events);
    for (const auto& e : events) print(e);
    return clean ? 0 : 1;
}
