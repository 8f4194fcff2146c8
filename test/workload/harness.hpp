// A process driver on a real io_context thread, with every event recorded and bounded waits on them.
#pragma once

#include <swarm/placement/workload_driver.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace swarm::test {

using namespace std::chrono_literals;
using placement::workload_event;
using placement::workload_spec;
using placement::workload_state;

/// Waits here are bounds, not expectations: a healthy run finishes far sooner.
inline constexpr auto bound = std::chrono::seconds(10);

struct recorded_event {
    workload_event event;
    std::chrono::steady_clock::time_point at;
};

class driver_harness {
public:
    explicit driver_harness(placement::process_driver_config config = {}) : work_(io_.get_executor()) {
        driver_ = std::make_unique<placement::process_driver>(
            io_.get_executor(), [this](const workload_event& e) { record(e); }, std::move(config));
        thread_ = std::thread([this] { io_.run(); });
    }
    ~driver_harness() {
        driver_.reset();
        work_.reset();
        io_.stop();
        thread_.join();
    }

    placement::process_driver& driver() { return *driver_; }
    void destroy_driver() { driver_.reset(); }

    /// Called for each event after it is recorded, on the driver's strand.
    void on_event(std::function<void(const workload_event&)> hook) {
        std::lock_guard lock(mutex_);
        hook_ = std::move(hook);
    }

    /// True once `pred` holds over the events recorded so far; false after `bound`.
    bool wait_for(const std::function<bool(const std::vector<recorded_event>&)>& pred,
                  std::chrono::steady_clock::duration limit = bound) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, limit, [&] { return pred(events_); });
    }

    /// Waits until workload `id` reaches a terminal state; returns its events.
    std::vector<workload_event> wait_terminal(const std::string& id) {
        wait_for([&](const auto& events) {
            for (const auto& r : events)
                if (r.event.id == id && placement::is_terminal(r.event.state)) return true;
            return false;
        });
        return events_of(id);
    }

    /// Waits until workload `id` has reported `state` at least `count` times.
    bool wait_state(const std::string& id, workload_state state, std::size_t count = 1) {
        return wait_for([&](const auto& events) {
            std::size_t seen = 0;
            for (const auto& r : events) seen += r.event.id == id && r.event.state == state;
            return seen >= count;
        });
    }

    std::vector<workload_event> events_of(const std::string& id) {
        std::lock_guard lock(mutex_);
        std::vector<workload_event> out;
        for (const auto& r : events_)
            if (r.event.id == id) out.push_back(r.event);
        return out;
    }

    std::vector<recorded_event> recorded() {
        std::lock_guard lock(mutex_);
        return events_;
    }

private:
    void record(const workload_event& e) {
        std::function<void(const workload_event&)> hook;
        {
            std::lock_guard lock(mutex_);
            events_.push_back({e, std::chrono::steady_clock::now()});
            hook = hook_;
        }
        changed_.notify_all();
        if (hook) hook(e);
    }

    boost::asio::io_context io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
    std::unique_ptr<placement::process_driver> driver_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<recorded_event> events_;
    std::function<void(const workload_event&)> hook_;
};

/// A fresh directory per test, removed afterwards.
class temp_dir {
public:
    temp_dir() {
        auto base = std::filesystem::temp_directory_path();
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        path_ = base / ("swarm-workload-" + std::to_string(::getpid()) + "-" + (info ? info->name() : "x"));
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

/// Polls until `pred` holds, for at most `bound`.
inline bool eventually(const std::function<bool()>& pred, std::chrono::steady_clock::duration limit = bound) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

/// Gone, or a zombie nobody has reaped yet (in a container the reaper may be slow or absent): either way,
/// no longer running.
inline bool process_gone(pid_t pid) {
    if (::kill(pid, 0) != 0) return true;
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && (line[close + 2] == 'Z' || line[close + 2] == 'X');
}

/// A spec running `script` under /bin/sh, with output in `dir`.
inline workload_spec shell(const std::string& id, const std::string& script, const temp_dir& dir) {
    workload_spec s;
    s.id = id;
    s.program = "/bin/sh";
    s.args = {"-c", script};
    s.stdout_path = dir / (id + ".out");
    s.stderr_path = dir / (id + ".err");
    s.restart.when = placement::restart_policy::never;
    s.stop_grace = 2s;
    return s;
}

inline std::vector<workload_state> states(const std::vector<workload_event>& events) {
    std::vector<workload_state> out;
    for (const auto& e : events) out.push_back(e.state);
    return out;
}

} // namespace swarm::test
