// Private to the process driver: turning a workload_spec into a spawned process group.
#pragma once

#include <swarm/core/error.hpp>
#include <swarm/placement/workload_driver.hpp>

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace swarm::inline v0::placement::detail {

/// Everything start() checked once, ready to spawn again on every restart.
struct launch_plan {
    std::filesystem::path executable; // absolute, checked to be an executable regular file
    std::vector<std::string> argv;
    std::vector<std::string> envp; // "KEY=value"
    std::filesystem::path working_dir;
    std::filesystem::path stdout_path;
    std::filesystem::path stderr_path;
};

/// Resolves the program, builds argv and the environment, checks the working directory and that the output
/// files can be opened (creating them). Errors name the program, directory or file at fault.
detailed_result<launch_plan> plan_launch(const workload_spec& spec);

/// posix_spawn in a new process group with stdin from /dev/null, stdout and stderr appended to the plan's
/// files, default signal dispositions, an empty signal mask and no inherited descriptors above 2.
detailed_result<pid_t> spawn(const launch_plan& plan);

/// Test hook: when set before a process_driver is constructed, it watches exits through SIGCHLD even where
/// pidfds work, so the fallback is exercised on every kernel.
void force_sigchld_watch(bool on) noexcept;
bool sigchld_watch_forced() noexcept;

} // namespace swarm::inline v0::placement::detail
