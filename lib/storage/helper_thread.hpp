// One background thread that runs one job at a time: the second stage of the put and get pipelines.
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace swarm::inline v0::storage::detail {

class helper_thread {
public:
    helper_thread() = default;
    ~helper_thread();
    helper_thread(const helper_thread&) = delete;
    helper_thread& operator=(const helper_thread&) = delete;

    /// Runs `job` on the helper (started on first use), after waiting for any job still running.
    void start(std::function<void()> job);
    /// Blocks until the current job, if any, has finished; rethrows what it threw.
    void wait();
    /// As wait(), but drops the job's exception: for unwinding, where the caller already has an error.
    void wait_quietly() noexcept;

private:
    void loop();

    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::function<void()> job_;
    std::exception_ptr failure_;
    bool busy_ = false;
    bool stopping_ = false;
};

/// Waits for the helper when a scope ends, so a job never outlives the buffers and locals it uses.
class helper_scope {
public:
    explicit helper_scope(helper_thread* helper) noexcept : helper_(helper) {}
    ~helper_scope() {
        if (helper_) helper_->wait_quietly();
    }
    helper_scope(const helper_scope&) = delete;
    helper_scope& operator=(const helper_scope&) = delete;

private:
    helper_thread* helper_;
};

} // namespace swarm::inline v0::storage::detail
