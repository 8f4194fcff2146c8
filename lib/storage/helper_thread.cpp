#include "storage/helper_thread.hpp"

#include <utility>

namespace swarm::inline v0::storage::detail {

helper_thread::~helper_thread() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
}

void helper_thread::start(std::function<void()> job) {
    wait();
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    {
        std::lock_guard lock(mutex_);
        job_ = std::move(job);
        busy_ = true;
    }
    changed_.notify_all();
}

void helper_thread::wait() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return !busy_; });
    if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
}

void helper_thread::wait_quietly() noexcept {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return !busy_; });
    failure_ = nullptr;
}

void helper_thread::loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        changed_.wait(lock, [this] { return busy_ || stopping_; });
        if (!busy_) return; // stopping, nothing queued
        auto job = std::move(job_);
        lock.unlock();
        std::exception_ptr failure;
        try {
            job();
        } catch (...) {
            failure = std::current_exception();
        }
        lock.lock();
        failure_ = failure;
        busy_ = false;
        changed_.notify_all();
    }
}

} // namespace swarm::inline v0::storage::detail
