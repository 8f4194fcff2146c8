// Workload drivers: start admitted work on this node, supervise it, stop it, and report what happens.
//
// `workload_driver` is the interface the node programs against; `process_driver` is the built-in one,
// running a command as a local process group.
//
// Lifecycle of one workload, as events report it (each event carries the state the workload is now in):
//
//     pending -> running -> exited | failed | stopped
//                   \-> pending (the run ended, a restart is due after the backoff) -> running -> ...
//
// - pending: accepted, or waiting out a restart backoff; the event after a run ended carries its exit.
// - running: a process is up (the event carries its pid).
// - exited: the last run ended on its own and the policy does not restart it (the exit code or signal says how).
// - failed: the driver gave up: restarts exhausted (max_restarts), or a restart could not be spawned.
// - stopped: stop() ended it.
// The last three are terminal: the id stays listed with its final status until forget() or a new start().
#pragma once

#include <swarm/core/clock.hpp>
#include <swarm/core/config.hpp>
#include <swarm/core/error.hpp>
#include <swarm/core/logger.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <array>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::inline v0::placement {

struct restart_policy {
    enum mode {
        never,      // a run that ends is final
        on_failure, // restart after a non-zero exit or death by a signal; a clean exit (0) is final
        always,     // restart after any exit
    };
    mode when = on_failure;
    /// Restarts in a row before the workload is `failed`; none means no limit. A run that lasts
    /// reset_after counts as healthy and the count starts over.
    std::optional<unsigned> max_restarts;
    /// Delay before the first restart; each further one multiplies it, up to max_backoff.
    duration initial_backoff = std::chrono::seconds(1);
    duration max_backoff = std::chrono::minutes(1);
    double multiplier = 2.0;
    /// A run at least this long resets the backoff (and the restart count) to the start.
    duration reset_after = std::chrono::minutes(1);

    detailed_result<void> validate() const;

    template <class F>
    void describe(F& f) {
        f("when", when);
        f("max_restarts", max_restarts);
        f("initial_backoff", initial_backoff);
        f("max_backoff", max_backoff);
        f("multiplier", multiplier);
        f("reset_after", reset_after);
    }
};

constexpr std::array<config::enum_name<restart_policy::mode>, 3> describe_enum(restart_policy::mode) {
    return {{{restart_policy::never, "never"},
             {restart_policy::on_failure, "on_failure"},
             {restart_policy::always, "always"}}};
}

/// What to run. Paths are taken as given; a relative one is relative to the host process's working
/// directory at start(), not to working_dir.
struct workload_spec {
    /// Unique among the driver's live workloads: letters, digits, '.', '_', '-', at most 128.
    std::string id;
    /// A path (containing '/'), or a bare name looked up in PATH (the workload's own PATH when env sets
    /// one, else the host's).
    std::filesystem::path program;
    /// Arguments after argv[0]; argv[0] is `program` as written.
    std::vector<std::string> args;
    /// Environment of the process; with inherit_env these override the host's own variables.
    std::map<std::string, std::string> env;
    bool inherit_env = false;
    /// Where the process starts; empty: the host's working directory. Must exist.
    std::filesystem::path working_dir;
    /// Output is appended to these files, created with mode 0640 (less the umask); their directories must
    /// exist. Empty: discarded. Both may name the same file. stdin is /dev/null.
    std::filesystem::path stdout_path;
    std::filesystem::path stderr_path;
    restart_policy restart;
    /// How long stop() waits after SIGTERM before SIGKILL, unless stop() is given its own grace.
    duration stop_grace = std::chrono::seconds(10);

    /// Checks the spec itself (id, names, durations); files and the program are checked by start().
    detailed_result<void> validate() const;

    template <class F>
    void describe(F& f) {
        f("id", id, config::required);
        f("program", program, config::required);
        f("args", args);
        f("env", env);
        f("inherit_env", inherit_env);
        f("working_dir", working_dir);
        f("stdout_path", stdout_path);
        f("stderr_path", stderr_path);
        f("restart", restart);
        f("stop_grace", stop_grace);
    }
};

enum class workload_state { pending, running, exited, failed, stopped };

std::string_view to_string(workload_state) noexcept;
/// exited, failed and stopped: nothing will run again under this id.
constexpr bool is_terminal(workload_state s) noexcept {
    return s == workload_state::exited || s == workload_state::failed || s == workload_state::stopped;
}

/// How a run ended: one of the two is set once a run has ended, neither when its status was lost (a host
/// that reaps every child itself took it), which counts as a failure.
struct exit_status {
    std::optional<int> code;   // it exited with this code
    std::optional<int> signal; // it was killed by this signal

    bool success() const noexcept { return code && *code == 0; }
    friend bool operator==(const exit_status&, const exit_status&) = default;
};

/// One change of a workload's state, in the order they happened.
struct workload_event {
    std::string id;
    workload_state state = workload_state::pending;
    /// The pid of the process when state is running; 0 otherwise.
    int pid = 0;
    /// How the run that just ended ended; empty when no run ended with this change.
    exit_status exit;
    /// Restarts so far under this id.
    unsigned restarts = 0;
    /// For a person: why, what next ("exited with code 3; restart 1 of 3 in 100ms").
    std::string message;
};

/// A snapshot of one workload.
struct workload_status {
    std::string id;
    workload_state state = workload_state::pending;
    int pid = 0;
    /// stop() was called and the process has not yet ended.
    bool stopping = false;
    unsigned restarts = 0;
    /// How the most recent run ended; empty before the first run ends.
    exit_status last_exit;
};

/// Called for every event, on the driver's executor (one at a time, in order), never under a driver lock.
/// It may call back into the driver; it must not block.
using workload_event_handler = std::function<void(const workload_event&)>;

/// The interface a node uses to run admitted work. Implementations take their event handler at
/// construction; every member may be called from any thread, and from inside the handler.
class workload_driver {
public:
    virtual ~workload_driver() = default;

    /// Starts a workload; on success its pending and running events follow on the executor. On failure
    /// nothing was started and no event is sent. Errors name the thing at fault:
    /// the spec's own (errc::config_invalid_value), errc::already_exists for an id that is live,
    /// errc::not_found for a program or working directory that does not exist, errc::invalid_argument for
    /// a program that is not an executable file, errc::io_error for an output file that cannot be opened,
    /// errc::shut_down after shutdown.
    virtual detailed_result<void> start(workload_spec spec) = 0;

    /// Stops a workload: SIGTERM, then SIGKILL after `grace` (the spec's stop_grace when absent). A pending
    /// workload is stopped at once. Stopping a stopping or terminal workload changes nothing.
    /// errc::not_found for an unknown id.
    virtual result<void> stop(std::string_view id, std::optional<duration> grace = std::nullopt) = 0;

    /// The gentle half of shutting down: refuses new starts (errc::shut_down), stops every live workload
    /// as stop() does, and runs `done` on the executor, after their events, once none is live. Bounded by
    /// the graces, as long as the processes die when killed. Destroying the driver is the hard half.
    virtual void stop_all(std::optional<duration> grace, std::function<void()> done) = 0;

    /// errc::not_found for an unknown id.
    virtual result<workload_status> status(std::string_view id) const = 0;
    /// Every workload known, live and terminal, ordered by id.
    virtual std::vector<workload_status> list() const = 0;
    /// Drops a terminal workload's record. errc::not_found for an unknown id, errc::invalid_argument for a
    /// live one.
    virtual result<void> forget(std::string_view id) = 0;
};

using workload_driver_factory =
    std::function<std::unique_ptr<workload_driver>(boost::asio::any_io_executor, workload_event_handler)>;

struct process_driver_config {
    /// The destructor waits this long for SIGKILLed processes to be reaped before leaving them behind.
    duration reap_timeout = std::chrono::seconds(2);
    /// Not part of the JSON shape.
    logger log;

    detailed_result<void> validate() const;

    template <class F>
    void describe(F& f) {
        f("reap_timeout", reap_timeout);
    }
};

/// Runs each workload as a process in its own process group, spawned with posix_spawn: no thread per
/// child. Exits are watched through a pidfd (Linux 5.3 and later), or through SIGCHLD where pidfds are
/// unavailable. Signals go to the whole group, and when a workload's main process ends, whatever is left
/// of its group is killed, so grandchildren do not outlive it. A process that leaves its group (setsid)
/// escapes this. File descriptors of the host other than the three standard ones are not inherited.
///
/// The host must not reap children it did not start (waitpid(-1), SIGCHLD set to SIG_IGN): that takes the
/// exit status away, and the run is then reported as a failure with no code.
///
/// The destructor SIGKILLs every live workload and waits (at most reap_timeout) for them to be reaped;
/// no events are sent after destruction begins. Destroy it before the executor's io_context.
class process_driver final : public workload_driver {
public:
    /// `config` must be valid (validate()); events go to `on_event` on a strand of `executor`.
    process_driver(boost::asio::any_io_executor executor, workload_event_handler on_event,
                   process_driver_config config = {});
    ~process_driver() override;
    /// A moved-from driver is empty: start() and stop() fail with errc::shut_down, status() and forget()
    /// with errc::not_found, list() is empty, stop_all() never calls `done`.
    process_driver(process_driver&&) noexcept;
    /// Shuts down the driver this one held first, as the destructor does.
    process_driver& operator=(process_driver&&) noexcept;
    process_driver(const process_driver&) = delete;
    process_driver& operator=(const process_driver&) = delete;

    detailed_result<void> start(workload_spec spec) override;
    result<void> stop(std::string_view id, std::optional<duration> grace = std::nullopt) override;
    void stop_all(std::optional<duration> grace, std::function<void()> done) override;
    result<workload_status> status(std::string_view id) const override;
    std::vector<workload_status> list() const override;
    result<void> forget(std::string_view id) override;

    /// A factory for hosts that choose their driver at construction.
    static workload_driver_factory factory(process_driver_config config = {});

private:
    class impl;
    std::shared_ptr<impl> impl_;
};

} // namespace swarm::inline v0::placement
