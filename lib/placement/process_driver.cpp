// The built-in workload driver. State is guarded by one mutex so that start() can answer synchronously from
// any thread, even one that has not started the executor yet; every Asio completion runs on one strand, and
// events are queued under the mutex and handed to the host on that strand with the mutex released.
#include <swarm/placement/workload_driver.hpp>

#include "placement/process_spawn.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>
#include <gsl/assert>

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace swarm::inline v0::placement {

namespace asio = boost::asio;

namespace {

error invalid(std::string message) { return {errc::config_invalid_value, std::move(message)}; }

// Through syscall(): glibc 2.36 declares its pidfd_open wrapper without C linkage, so C++ cannot link to it.
int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

std::string describe_exit(const exit_status& e) {
    if (e.code) return fmt::format("exited with code {}", *e.code);
    if (e.signal) return fmt::format("killed by signal {} ({})", *e.signal, ::strsignal(*e.signal));
    return "ended with its status lost (reaped elsewhere)";
}

} // namespace

std::string_view to_string(workload_state s) noexcept {
    switch (s) {
    case workload_state::pending: return "pending";
    case workload_state::running: return "running";
    case workload_state::exited: return "exited";
    case workload_state::failed: return "failed";
    case workload_state::stopped: return "stopped";
    }
    return "unknown";
}

detailed_result<void> restart_policy::validate() const {
    if (initial_backoff < duration::zero()) return invalid("initial_backoff: must not be negative");
    if (max_backoff < initial_backoff) return invalid("max_backoff: must be at least initial_backoff");
    if (!std::isfinite(multiplier) || multiplier < 1 || multiplier > 1000)
        return invalid("multiplier: must be in [1, 1000]");
    if (reset_after < duration::zero()) return invalid("reset_after: must not be negative");
    return {};
}

detailed_result<void> workload_spec::validate() const {
    if (id.empty() || id.size() > 128) return invalid("id: must be 1 to 128 characters");
    for (char c : id)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
            return invalid(fmt::format("id '{}': only letters, digits, '.', '_' and '-'", id));
    if (program.empty()) return invalid(fmt::format("workload '{}': program is empty", id));
    if (has_nul(program.native())) return invalid(fmt::format("workload '{}': program contains NUL", id));
    for (std::size_t i = 0; i < args.size(); ++i)
        if (has_nul(args[i])) return invalid(fmt::format("workload '{}': args[{}] contains NUL", id, i));
    for (const auto& [key, value] : env) {
        if (key.empty() || key.find('=') != std::string::npos || has_nul(key))
            return invalid(fmt::format("workload '{}': env key '{}' must be non-empty, without '=' or NUL", id, key));
        if (has_nul(value)) return invalid(fmt::format("workload '{}': env.{} contains NUL", id, key));
    }
    for (const auto* p : {&working_dir, &stdout_path, &stderr_path})
        if (has_nul(p->native())) return invalid(fmt::format("workload '{}': a path contains NUL", id));
    if (stop_grace < duration::zero()) return invalid(fmt::format("workload '{}': stop_grace must not be negative", id));
    if (auto r = restart.validate(); !r)
        return error{r.error().code, fmt::format("workload '{}': restart.{}", id, r.error().message)};
    return {};
}

detailed_result<void> process_driver_config::validate() const {
    if (reap_timeout < duration::zero() || reap_timeout > std::chrono::minutes(1))
        return invalid("reap_timeout: must be in [0, 1m]");
    return {};
}

class process_driver::impl : public std::enable_shared_from_this<impl> {
public:
    impl(asio::any_io_executor executor, workload_event_handler on_event, process_driver_config config)
        : strand_(asio::make_strand(executor)), handler_(std::move(on_event)), config_(std::move(config)) {
        Expects(config_.validate().has_value());
        use_pidfd_ = !detail::sigchld_watch_forced() && probe_pidfd();
        if (!use_pidfd_) {
            // Installed before any spawn, so no child's SIGCHLD can be missed.
            sigchld_.emplace(strand_, SIGCHLD);
        }
    }

    void arm_sigchld() {
        if (!sigchld_) return;
        sigchld_->async_wait([self = shared_from_this()](boost::system::error_code ec, int) {
            if (ec) return;
            self->on_sigchld();
        });
    }

    detailed_result<void> start(workload_spec spec) {
        if (auto valid = spec.validate(); !valid) return valid.error();
        auto plan = detail::plan_launch(spec);
        if (!plan) return error{plan.error().code, fmt::format("workload '{}': {}", spec.id, plan.error().message)};

        std::unique_lock lock(mutex_);
        if (closed_ || stopping_all_) return error{errc::shut_down, "process driver is shutting down"};
        auto it = workloads_.find(spec.id);
        if (it != workloads_.end() && !is_terminal(it->second->state))
            return error{errc::already_exists, fmt::format("workload '{}' already exists", spec.id)};

        auto w = std::make_shared<workload>(strand_);
        w->plan = std::move(*plan);
        w->backoff = spec.restart.initial_backoff;
        w->spec = std::move(spec);
        auto pid = launch(*w);
        if (!pid) return error{pid.error().code, fmt::format("workload '{}': {}", w->spec.id, pid.error().message)};
        if (it != workloads_.end()) workloads_.erase(it);
        workloads_.emplace(w->spec.id, w);
        emit(*w, {}, "accepted");
        w->state = workload_state::running;
        emit(*w, {}, fmt::format("started {} as pid {}", w->plan.executable.string(), w->pid));
        watch(w);
        return {};
    }

    result<void> stop(std::string_view id, std::optional<duration> grace) {
        std::unique_lock lock(mutex_);
        if (closed_) return errc::shut_down;
        auto it = workloads_.find(id);
        if (it == workloads_.end()) return errc::not_found;
        stop_one(it->second, grace);
        return {};
    }

    void stop_all(std::optional<duration> grace, std::function<void()> done) {
        std::unique_lock lock(mutex_);
        if (closed_) return;
        stopping_all_ = true;
        if (done) all_stopped_.push_back(std::move(done));
        for (auto& [id, w] : workloads_) stop_one(w, grace);
        notify_if_all_stopped();
    }

    result<workload_status> status(std::string_view id) const {
        std::unique_lock lock(mutex_);
        auto w = find(id);
        if (!w) return errc::not_found;
        return snapshot(*w);
    }

    std::vector<workload_status> list() const {
        std::unique_lock lock(mutex_);
        std::vector<workload_status> out;
        out.reserve(workloads_.size());
        for (const auto& [id, w] : workloads_) out.push_back(snapshot(*w));
        return out;
    }

    result<void> forget(std::string_view id) {
        std::unique_lock lock(mutex_);
        auto it = workloads_.find(id);
        if (it == workloads_.end()) return errc::not_found;
        if (!is_terminal(it->second->state)) return errc::invalid_argument;
        workloads_.erase(it);
        return {};
    }

    /// Kills what is left and reaps it, bounded by reap_timeout; no event is delivered afterwards.
    void shutdown() {
        std::vector<pid_t> pids;
        {
            std::unique_lock lock(mutex_);
            if (closed_) return;
            closed_ = true;
            events_.clear();
            for (auto& [id, w] : workloads_) {
                ++w->timer_token;
                w->timer.cancel();
                if (w->pid != 0) {
                    signal_group(*w, SIGKILL);
                    pids.push_back(w->pid);
                    w->pid = 0;
                }
                w->pidfd.reset();
            }
            if (sigchld_) sigchld_->cancel();
            // The host's handler may be running on another thread right now; it must finish before the
            // driver (and whatever the handler refers to) goes away. It is not allowed to block, so this is short.
            idle_.wait(lock, [&] { return !delivering_ || delivering_thread_ == std::this_thread::get_id(); });
        }
        auto deadline = std::chrono::steady_clock::now() + config_.reap_timeout;
        for (pid_t pid : pids) {
            while (true) {
                siginfo_t info{};
                int rc = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG);
                if (rc != 0 || info.si_pid == pid) break;
                if (std::chrono::steady_clock::now() >= deadline) {
                    config_.log.warning("process driver: pid {} not reaped within the reap timeout", pid);
                    break;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
    }

private:
    struct workload {
        explicit workload(const asio::strand<asio::any_io_executor>& s) : timer(s) {}
        workload_spec spec;
        detail::launch_plan plan;
        workload_state state = workload_state::pending;
        pid_t pid = 0; // of the running process, which leads its own process group; 0 when none runs
        std::optional<asio::posix::stream_descriptor> pidfd;
        asio::steady_timer timer; // the restart backoff while pending, the kill deadline while stopping
        std::uint64_t timer_token = 0; // a timer completion whose token is stale does nothing
        bool stopping = false;
        unsigned restarts = 0;
        unsigned in_a_row = 0; // restarts since the last healthy run
        duration backoff{};
        exit_status last_exit;
        std::chrono::steady_clock::time_point started_at;
    };
    using workload_ptr = std::shared_ptr<workload>;

    static bool probe_pidfd() {
        int fd = open_pidfd(::getpid());
        if (fd < 0) return false;
        ::close(fd);
        return true;
    }

    const workload* find(std::string_view id) const {
        auto it = workloads_.find(id);
        return it == workloads_.end() ? nullptr : it->second.get();
    }

    static workload_status snapshot(const workload& w) {
        return {.id = w.spec.id, .state = w.state, .pid = w.pid, .stopping = w.stopping,
                .restarts = w.restarts, .last_exit = w.last_exit};
    }

    /// SIGTERM now, SIGKILL after the grace; a workload waiting out a backoff stops at once. Under the mutex.
    void stop_one(const workload_ptr& w, std::optional<duration> grace) {
        if (is_terminal(w->state) || w->stopping) return;
        if (w->state == workload_state::pending) {
            // Waiting out a backoff: nothing runs, so the stop is immediate.
            ++w->timer_token;
            w->timer.cancel();
            w->state = workload_state::stopped;
            emit(*w, {}, "stopped while waiting to restart");
            return;
        }
        w->stopping = true;
        signal_group(*w, SIGTERM);
        w->timer.expires_after(grace.value_or(w->spec.stop_grace));
        auto token = ++w->timer_token;
        w->timer.async_wait(asio::bind_executor(strand_, [self = shared_from_this(), w, token](boost::system::error_code) {
            std::unique_lock lock(self->mutex_);
            if (self->closed_ || token != w->timer_token || w->pid == 0) return;
            self->signal_group(*w, SIGKILL);
        }));
    }

    /// After stop_all(): once nothing is live, runs the callers' `done` on the strand, after the events
    /// queued so far. Under the mutex.
    void notify_if_all_stopped() {
        if (all_stopped_.empty()) return;
        for (const auto& [id, w] : workloads_)
            if (!is_terminal(w->state)) return;
        asio::post(strand_, [self = shared_from_this(), callbacks = std::move(all_stopped_)] {
            if (self->closed_flag()) return;
            for (const auto& fn : callbacks) {
                try {
                    fn();
                } catch (...) {
                    self->config_.log.error("workload driver: a stop_all callback threw");
                }
            }
        });
        all_stopped_.clear();
    }

    bool closed_flag() {
        std::unique_lock lock(mutex_);
        return closed_;
    }

    /// Spawns the process and opens its pidfd; on failure nothing is left running. Under the mutex.
    detailed_result<pid_t> launch(workload& w) {
        auto pid = detail::spawn(w.plan);
        if (!pid) return pid;
        if (use_pidfd_) {
            int fd = open_pidfd(*pid);
            if (fd < 0 && errno == ESRCH) {
                // Already reaped by someone else (see the header); watch() reports the run as lost.
            } else if (fd < 0) {
                int e = errno;
                ::kill(-*pid, SIGKILL);
                ::waitpid(*pid, nullptr, 0);
                return error{errc::io_error, fmt::format("pidfd_open: {}", ::strerror(e))};
            }
            if (fd >= 0) w.pidfd.emplace(strand_, fd);
        }
        w.pid = *pid;
        w.started_at = std::chrono::steady_clock::now();
        return pid;
    }

    /// Waits for the running process to end. Under the mutex.
    void watch(const workload_ptr& w) {
        pid_t pid = w->pid;
        if (!use_pidfd_) {
            arm_sigchld_once();
            return;
        }
        if (!w->pidfd) {
            asio::post(strand_, [self = shared_from_this(), w, pid] {
                std::unique_lock lock(self->mutex_);
                if (!self->closed_ && w->pid == pid) self->reap(w);
            });
            return;
        }
        w->pidfd->async_wait(asio::posix::descriptor_base::wait_read,
                             [self = shared_from_this(), w, pid](boost::system::error_code ec) {
                                 if (ec) return;
                                 std::unique_lock lock(self->mutex_);
                                 if (self->closed_ || w->pid != pid) return;
                                 if (!self->reap(w)) self->watch(w);
                             });
    }

    void arm_sigchld_once() {
        if (sigchld_armed_) return;
        sigchld_armed_ = true;
        arm_sigchld();
    }

    void on_sigchld() {
        std::unique_lock lock(mutex_);
        sigchld_armed_ = false;
        if (closed_) return;
        std::vector<workload_ptr> live;
        for (auto& [id, w] : workloads_)
            if (w->pid != 0) live.push_back(w);
        for (auto& w : live) reap(w);
        if (std::any_of(workloads_.begin(), workloads_.end(), [](const auto& kv) { return kv.second->pid != 0; }))
            arm_sigchld_once();
    }

    /// If the process has ended: kill what is left of its group, collect its status and decide what comes
    /// next. Returns false when it is still running. Under the mutex.
    bool reap(const workload_ptr& w) {
        siginfo_t info{};
        // WNOWAIT keeps the leader a zombie, so its pid (the group id) cannot be reused while the rest of the
        // group is killed.
        int rc = ::waitid(P_PID, static_cast<id_t>(w->pid), &info, WEXITED | WNOHANG | WNOWAIT);
        exit_status exit;
        if (rc != 0) {
            // ECHILD: someone else reaped it (a host that ignores SIGCHLD or waits for any child); its
            // status is lost, and the pid may already be reused, so the group is left alone.
            if (errno != ECHILD) return false;
            config_.log.warning("workload {}: pid {} was reaped by someone else", w->spec.id, w->pid);
        } else {
            if (info.si_pid == 0) return false;
            ::kill(-w->pid, SIGKILL);
            siginfo_t reaped{};
            ::waitid(P_PID, static_cast<id_t>(w->pid), &reaped, WEXITED | WNOHANG);
            if (info.si_code == CLD_EXITED) {
                exit.code = info.si_status;
            } else {
                exit.signal = info.si_status;
            }
        }
        w->pid = 0;
        w->pidfd.reset();
        w->last_exit = exit;
        ++w->timer_token;
        w->timer.cancel();
        after_exit(w, exit);
        return true;
    }

    void after_exit(const workload_ptr& w, const exit_status& exit) {
        const auto& policy = w->spec.restart;
        if (w->stopping) {
            w->stopping = false;
            w->state = workload_state::stopped;
            emit(*w, exit, fmt::format("stopped: {}", describe_exit(exit)));
            return;
        }
        if (std::chrono::steady_clock::now() - w->started_at >= policy.reset_after) {
            w->in_a_row = 0;
            w->backoff = policy.initial_backoff;
        }
        bool wanted = policy.when == restart_policy::always ||
                      (policy.when == restart_policy::on_failure && !exit.success());
        if (!wanted) {
            w->state = workload_state::exited;
            emit(*w, exit, describe_exit(exit));
            return;
        }
        if (policy.max_restarts && w->in_a_row >= *policy.max_restarts) {
            w->state = workload_state::failed;
            emit(*w, exit, fmt::format("{}; gave up after {} restarts in a row", describe_exit(exit), w->in_a_row));
            return;
        }
        ++w->in_a_row;
        ++w->restarts;
        auto delay = w->backoff;
        double next = static_cast<double>(w->backoff.count()) * policy.multiplier;
        w->backoff = next >= static_cast<double>(policy.max_backoff.count())
                         ? policy.max_backoff
                         : duration(static_cast<duration::rep>(next));
        w->state = workload_state::pending;
        std::string limit = policy.max_restarts ? fmt::format(" of {}", *policy.max_restarts) : std::string();
        emit(*w, exit, fmt::format("{}; restart {}{} in {}", describe_exit(exit), w->in_a_row, limit,
                                   config::format_duration(delay)));
        w->timer.expires_after(delay);
        auto token = ++w->timer_token;
        w->timer.async_wait(asio::bind_executor(strand_, [self = shared_from_this(), w, token](boost::system::error_code) {
            std::unique_lock lock(self->mutex_);
            if (self->closed_ || token != w->timer_token || w->state != workload_state::pending) return;
            self->restart(w);
        }));
    }

    void restart(const workload_ptr& w) {
        auto pid = launch(*w);
        if (!pid) {
            w->state = workload_state::failed;
            emit(*w, {}, fmt::format("restart failed: {}", pid.error().message));
            return;
        }
        w->state = workload_state::running;
        emit(*w, {}, fmt::format("restarted as pid {}", w->pid));
        watch(w);
    }

    void signal_group(const workload& w, int sig) {
        if (w.pid != 0 && ::kill(-w.pid, sig) != 0 && errno != ESRCH)
            config_.log.warning("process driver: signal {} to group {} failed: {}", sig, w.pid, ::strerror(errno));
    }

    /// Queues an event with the workload's current state. Under the mutex.
    void emit(const workload& w, const exit_status& exit, std::string message) {
        events_.push_back({.id = w.spec.id, .state = w.state, .pid = w.state == workload_state::running ? w.pid : 0,
                           .exit = exit, .restarts = w.restarts, .message = std::move(message)});
        config_.log.debug("workload {}: {} ({})", w.spec.id, to_string(w.state), events_.back().message);
        if (!draining_) {
            draining_ = true;
            asio::post(strand_, [self = shared_from_this()] { self->drain(); });
        }
        // Posted after the drain, so `done` sees every event delivered first.
        if (is_terminal(w.state)) notify_if_all_stopped();
    }

    void drain() {
        std::unique_lock lock(mutex_);
        while (!events_.empty() && !closed_) {
            auto event = std::move(events_.front());
            events_.pop_front();
            delivering_ = true;
            delivering_thread_ = std::this_thread::get_id();
            lock.unlock();
            if (handler_) {
                try {
                    handler_(event);
                } catch (const std::exception& e) {
                    config_.log.error("workload event handler threw: {}", e.what());
                } catch (...) {
                    config_.log.error("workload event handler threw");
                }
            }
            lock.lock();
            delivering_ = false;
            idle_.notify_all();
        }
        draining_ = false;
    }

    asio::strand<asio::any_io_executor> strand_;
    workload_event_handler handler_;
    process_driver_config config_;
    bool use_pidfd_ = true;
    std::optional<asio::signal_set> sigchld_;
    bool sigchld_armed_ = false;

    mutable std::mutex mutex_;
    std::map<std::string, workload_ptr, std::less<>> workloads_;
    std::deque<workload_event> events_;
    bool draining_ = false;
    bool delivering_ = false;
    std::thread::id delivering_thread_;
    std::condition_variable idle_;
    bool closed_ = false;
    bool stopping_all_ = false;
    std::vector<std::function<void()>> all_stopped_;
};

process_driver::process_driver(asio::any_io_executor executor, workload_event_handler on_event,
                               process_driver_config config)
    : impl_(std::make_shared<impl>(std::move(executor), std::move(on_event), std::move(config))) {}

process_driver::~process_driver() {
    if (impl_) impl_->shutdown();
}

process_driver::process_driver(process_driver&& other) noexcept : impl_(std::move(other.impl_)) {}

process_driver& process_driver::operator=(process_driver&& other) noexcept {
    if (this != &other) {
        if (impl_) impl_->shutdown();
        impl_ = std::move(other.impl_);
    }
    return *this;
}

detailed_result<void> process_driver::start(workload_spec spec) {
    if (!impl_) return error{errc::shut_down, "process driver is empty (moved from)"};
    return impl_->start(std::move(spec));
}

result<void> process_driver::stop(std::string_view id, std::optional<duration> grace) {
    if (!impl_) return errc::shut_down;
    return impl_->stop(id, grace);
}

result<workload_status> process_driver::status(std::string_view id) const {
    if (!impl_) return errc::not_found;
    return impl_->status(id);
}

void process_driver::stop_all(std::optional<duration> grace, std::function<void()> done) {
    if (impl_) impl_->stop_all(grace, std::move(done));
}

std::vector<workload_status> process_driver::list() const { return impl_ ? impl_->list() : std::vector<workload_status>{}; }

result<void> process_driver::forget(std::string_view id) {
    if (!impl_) return errc::not_found;
    return impl_->forget(id);
}

workload_driver_factory process_driver::factory(process_driver_config config) {
    return [config](asio::any_io_executor executor, workload_event_handler on_event) -> std::unique_ptr<workload_driver> {
        return std::make_unique<process_driver>(std::move(executor), std::move(on_event), config);
    };
}

} // namespace swarm::inline v0::placement
