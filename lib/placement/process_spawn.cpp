#include "placement/process_spawn.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <system_error>

extern char** environ;

namespace swarm::inline v0::placement::detail {
namespace {

std::atomic<bool> sigchld_forced{false};

std::string os_error(int e) { return std::generic_category().message(e); }

/// Closes a descriptor when it goes out of scope; the parent's copies of the output files are only needed
/// until posix_spawn has duplicated them into the child.
class fd_guard {
public:
    explicit fd_guard(int fd) noexcept : fd_(fd) {}
    ~fd_guard() {
        if (fd_ >= 0) ::close(fd_);
    }
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    int get() const noexcept { return fd_; }

private:
    int fd_;
};

detailed_result<int> open_output(const std::filesystem::path& path, std::string_view which) {
    const char* name = path.empty() ? "/dev/null" : path.c_str();
    int fd = ::open(name, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0) return error{errc::io_error, fmt::format("{} {}: {}", which, name, os_error(errno))};
    return fd;
}

/// A program that exists, is a regular file and may be executed by this process.
detailed_result<std::filesystem::path> check_executable(const std::filesystem::path& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        int e = errno;
        return error{e == ENOENT || e == ENOTDIR ? errc::not_found : errc::io_error,
                     fmt::format("program {}: {}", path.string(), os_error(e))};
    }
    if (!S_ISREG(st.st_mode))
        return error{errc::invalid_argument, fmt::format("program {}: not a regular file", path.string())};
    if (::access(path.c_str(), X_OK) != 0)
        return error{errc::invalid_argument, fmt::format("program {}: not executable", path.string())};
    return path;
}

detailed_result<std::filesystem::path> resolve_program(const workload_spec& spec) {
    const std::string& text = spec.program.native();
    if (text.find('/') != std::string::npos) {
        std::error_code ec;
        auto absolute = std::filesystem::absolute(spec.program, ec);
        if (ec) return error{errc::io_error, fmt::format("program {}: {}", text, ec.message())};
        return check_executable(absolute);
    }
    std::string search;
    if (auto it = spec.env.find("PATH"); it != spec.env.end()) {
        search = it->second;
    } else if (const char* host = std::getenv("PATH")) {
        search = host;
    }
    std::string_view rest = search;
    while (true) {
        auto colon = rest.find(':');
        std::string_view dir = rest.substr(0, colon);
        // An empty PATH element means the current directory, as execvp reads it.
        auto candidate = std::filesystem::path(dir.empty() ? std::string_view(".") : dir) / text;
        if (auto found = check_executable(candidate)) {
            std::error_code ec;
            auto absolute = std::filesystem::absolute(*found, ec);
            if (!ec) return absolute;
        }
        if (colon == std::string_view::npos) break;
        rest.remove_prefix(colon + 1);
    }
    return error{errc::not_found, fmt::format("program {}: not found in PATH ({})", text, search)};
}

} // namespace

void force_sigchld_watch(bool on) noexcept { sigchld_forced.store(on); }
bool sigchld_watch_forced() noexcept { return sigchld_forced.load(); }

detailed_result<launch_plan> plan_launch(const workload_spec& spec) {
    launch_plan plan;
    auto program = resolve_program(spec);
    if (!program) return program.error();
    plan.executable = std::move(*program);

    plan.argv.reserve(spec.args.size() + 1);
    plan.argv.push_back(spec.program.native());
    plan.argv.insert(plan.argv.end(), spec.args.begin(), spec.args.end());

    if (spec.inherit_env) {
        for (char** entry = environ; entry && *entry; ++entry) {
            std::string_view var(*entry);
            auto eq = var.find('=');
            if (eq == std::string_view::npos || spec.env.contains(std::string(var.substr(0, eq)))) continue;
            plan.envp.emplace_back(var);
        }
    }
    for (const auto& [key, value] : spec.env) plan.envp.push_back(key + "=" + value);

    if (!spec.working_dir.empty()) {
        std::error_code ec;
        auto absolute = std::filesystem::absolute(spec.working_dir, ec);
        auto status = std::filesystem::status(absolute, ec);
        if (!std::filesystem::exists(status))
            return error{errc::not_found, fmt::format("working_dir {}: no such directory", spec.working_dir.string())};
        if (!std::filesystem::is_directory(status))
            return error{errc::invalid_argument, fmt::format("working_dir {}: not a directory", spec.working_dir.string())};
        plan.working_dir = std::move(absolute);
    }

    // Opening both files now proves they are writable, so start() fails before anything runs.
    for (auto [path, out, which] : {std::tuple{&spec.stdout_path, &plan.stdout_path, "stdout_path"},
                                    std::tuple{&spec.stderr_path, &plan.stderr_path, "stderr_path"}}) {
        if (path->empty()) continue;
        std::error_code ec;
        *out = std::filesystem::absolute(*path, ec);
        if (ec) return error{errc::io_error, fmt::format("{} {}: {}", which, path->string(), ec.message())};
        auto fd = open_output(*out, which);
        if (!fd) return fd.error();
        ::close(*fd);
    }
    return plan;
}

detailed_result<pid_t> spawn(const launch_plan& plan) {
    auto out = open_output(plan.stdout_path, "stdout_path");
    if (!out) return out.error();
    fd_guard out_fd(*out);
    auto err = open_output(plan.stderr_path, "stderr_path");
    if (!err) return err.error();
    fd_guard err_fd(*err);

    std::vector<char*> argv;
    argv.reserve(plan.argv.size() + 1);
    for (const auto& a : plan.argv) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    envp.reserve(plan.envp.size() + 1);
    for (const auto& e : plan.envp) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    if (int e = ::posix_spawn_file_actions_init(&actions); e != 0)
        return error{errc::io_error, fmt::format("program {}: {}", plan.executable.string(), os_error(e))};
    if (int e = ::posix_spawnattr_init(&attr); e != 0) {
        ::posix_spawn_file_actions_destroy(&actions);
        return error{errc::io_error, fmt::format("program {}: {}", plan.executable.string(), os_error(e))};
    }

    sigset_t all;
    sigset_t none;
    ::sigfillset(&all);
    ::sigemptyset(&none);
    // A host that ignores SIGPIPE or blocks signals for its own threads must not pass that on.
    short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
    int rc = ::posix_spawnattr_setflags(&attr, flags);
    if (rc == 0) rc = ::posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0) rc = ::posix_spawnattr_setsigdefault(&attr, &all);
    if (rc == 0) rc = ::posix_spawnattr_setsigmask(&attr, &none);
    if (rc == 0) rc = ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(&actions, out_fd.get(), 1);
    if (rc == 0) rc = ::posix_spawn_file_actions_adddup2(&actions, err_fd.get(), 2);
    if (rc == 0 && !plan.working_dir.empty())
        rc = ::posix_spawn_file_actions_addchdir_np(&actions, plan.working_dir.c_str());
    // Sockets and files the host opened without O_CLOEXEC stay with the host.
    if (rc == 0) rc = ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);

    pid_t pid = 0;
    if (rc == 0) rc = ::posix_spawn(&pid, plan.executable.c_str(), &actions, &attr, argv.data(), envp.data());
    ::posix_spawnattr_destroy(&attr);
    ::posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        return error{rc == ENOENT               ? errc::not_found
                     : rc == ENOEXEC || rc == EACCES ? errc::invalid_argument
                                                     : errc::io_error,
                     fmt::format("program {}: cannot spawn: {}", plan.executable.string(), os_error(rc))};
    return pid;
}

} // namespace swarm::inline v0::placement::detail
