// The process driver with real processes: output capture, environment, restarts, stops, process groups.
#include "harness.hpp"

#include "placement/process_spawn.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>

#include <cstdlib>

namespace swarm::test {
namespace {

using placement::restart_policy;

TEST(process_driver, runs_a_command_and_captures_its_output) {
    temp_dir dir;
    driver_harness h;
    auto spec = shell("hello", "echo hello; echo oops >&2; exit 0", dir);
    ASSERT_TRUE(h.driver().start(spec));

    auto events = h.wait_terminal("hello");
    ASSERT_EQ(states(events), (std::vector{workload_state::pending, workload_state::running, workload_state::exited}));
    EXPECT_GT(events[1].pid, 0);
    EXPECT_EQ(events[2].exit.code, 0);
    EXPECT_FALSE(events[2].exit.signal);
    EXPECT_EQ(read_file(spec.stdout_path), "hello\n");
    EXPECT_EQ(read_file(spec.stderr_path), "oops\n");
    struct stat st {};
    ASSERT_EQ(::stat(spec.stdout_path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777 & ~0640u, 0u) << "output files are not world-readable";

    auto status = h.driver().status("hello");
    ASSERT_TRUE(status);
    EXPECT_EQ(status->state, workload_state::exited);
    EXPECT_EQ(status->last_exit.code, 0);
}

TEST(process_driver, output_is_appended_across_runs_and_both_streams_may_share_a_file) {
    temp_dir dir;
    driver_harness h;
    auto spec = shell("twice", "echo out; echo err >&2", dir);
    spec.stderr_path = spec.stdout_path;
    ASSERT_TRUE(h.driver().start(spec));
    h.wait_terminal("twice");
    ASSERT_TRUE(h.driver().start(spec)) << "a terminal id may be started again";
    EXPECT_TRUE(h.wait_state("twice", workload_state::exited, 2));
    EXPECT_EQ(read_file(spec.stdout_path), "out\nerr\nout\nerr\n");
}

TEST(process_driver, environment_is_explicit_unless_inherited) {
    temp_dir dir;
    driver_harness h;
    ::setenv("SWARM_WORKLOAD_TEST_HOST", "from-host", 1);
    auto isolated = shell("isolated", "echo \"[$FOO][$SWARM_WORKLOAD_TEST_HOST]\"", dir);
    isolated.env = {{"FOO", "bar baz"}};
    auto inherited = shell("inherited", "echo \"[$FOO][$SWARM_WORKLOAD_TEST_HOST]\"", dir);
    inherited.env = {{"FOO", "override"}};
    inherited.inherit_env = true;
    ASSERT_TRUE(h.driver().start(isolated));
    ASSERT_TRUE(h.driver().start(inherited));
    h.wait_terminal("isolated");
    h.wait_terminal("inherited");
    ::unsetenv("SWARM_WORKLOAD_TEST_HOST");
    EXPECT_EQ(read_file(isolated.stdout_path), "[bar baz][]\n");
    EXPECT_EQ(read_file(inherited.stdout_path), "[override][from-host]\n");
}

TEST(process_driver, working_directory_and_arguments_are_honoured) {
    temp_dir dir;
    std::filesystem::create_directory(dir / "work");
    driver_harness h;
    auto spec = shell("cwd", "pwd; for a in \"$@\"; do echo \"<$a>\"; done; echo made > here.txt", dir);
    spec.args.insert(spec.args.end(), {"argv0", "one two", "", "three"});
    spec.working_dir = dir / "work";
    ASSERT_TRUE(h.driver().start(spec));
    h.wait_terminal("cwd");
    auto real = std::filesystem::canonical(dir / "work").string();
    EXPECT_EQ(read_file(spec.stdout_path), real + "\n<one two>\n<>\n<three>\n");
    EXPECT_EQ(read_file(dir / "work" / "here.txt"), "made\n");
}

TEST(process_driver, the_child_gets_neither_the_hosts_signal_settings_nor_its_descriptors) {
    temp_dir dir;
    driver_harness h;
    // A host that ignores SIGPIPE, blocks SIGUSR1 on the calling thread and holds a descriptor without
    // O_CLOEXEC: common, and none of it may leak into the workload.
    struct sigaction old_pipe {};
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &old_pipe);
    sigset_t usr1;
    sigset_t old_mask;
    ::sigemptyset(&usr1);
    ::sigaddset(&usr1, SIGUSR1);
    ::pthread_sigmask(SIG_BLOCK, &usr1, &old_mask);
    int leaked = ::open("/dev/null", O_RDONLY);
    ASSERT_GE(leaked, 3);

    auto signals = shell("signals", "", dir);
    signals.program = "/bin/grep";
    signals.args = {"-E", "^(SigBlk|SigIgn)", "/proc/self/status"};
    auto fds = shell("fds", "ls /proc/$$/fd", dir);
    auto started_signals = h.driver().start(signals);
    auto started_fds = h.driver().start(fds);
    ::close(leaked);
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    ::sigaction(SIGPIPE, &old_pipe, nullptr);
    ASSERT_TRUE(started_signals);
    ASSERT_TRUE(started_fds);
    h.wait_terminal("signals");
    h.wait_terminal("fds");

    std::istringstream status(read_file(signals.stdout_path));
    std::string name;
    std::string blocked;
    std::string ignored;
    status >> name >> blocked >> name >> ignored;
    EXPECT_EQ(std::stoull(blocked, nullptr, 16), 0u) << "no signal blocked";
    EXPECT_EQ(std::stoull(ignored, nullptr, 16) & (1ull << (SIGPIPE - 1)), 0u) << "SIGPIPE not ignored";
    EXPECT_EQ(read_file(fds.stdout_path), "0\n1\n2\n");
}

TEST(process_driver, a_bare_program_name_is_found_in_path) {
    temp_dir dir;
    driver_harness h;
    workload_spec spec;
    spec.id = "bare";
    spec.program = "sh";
    spec.args = {"-c", "exit 7"};
    spec.env = {{"PATH", "/nonexistent:/bin:/usr/bin"}};
    spec.restart.when = restart_policy::never;
    ASSERT_TRUE(h.driver().start(spec));
    auto events = h.wait_terminal("bare");
    ASSERT_EQ(events.back().state, workload_state::exited) << "never restarts, so a failure code is a plain exit";
    EXPECT_EQ(events.back().exit.code, 7);
}

TEST(process_driver, a_crash_restarts_with_growing_backoff_then_fails) {
    temp_dir dir;
    driver_harness h;
    auto spec = shell("crash", "echo run; exit 3", dir);
    spec.restart = {.when = restart_policy::on_failure, .max_restarts = 2, .initial_backoff = 60ms,
                    .max_backoff = 1s, .multiplier = 2, .reset_after = 1h};
    ASSERT_TRUE(h.driver().start(spec));
    auto events = h.wait_terminal("crash");

    using enum workload_state;
    ASSERT_EQ(states(events), (std::vector{pending, running, pending, running, pending, running, failed}));
    EXPECT_EQ(events[2].exit.code, 3);
    EXPECT_EQ(events[2].restarts, 1u);
    EXPECT_EQ(events[4].restarts, 2u);
    EXPECT_EQ(events[6].exit.code, 3);
    EXPECT_EQ(events[6].restarts, 2u);
    EXPECT_NE(events[6].message.find("gave up"), std::string::npos) << events[6].message;
    EXPECT_EQ(read_file(spec.stdout_path), "run\nrun\nrun\n");

    // The backoff is a lower bound on the gap between an exit and the next start: 60 ms, then 120 ms.
    std::vector<std::chrono::steady_clock::time_point> at;
    for (const auto& r : h.recorded())
        if (r.event.id == "crash") at.push_back(r.at);
    EXPECT_GE(at[3] - at[2], 60ms);
    EXPECT_GE(at[5] - at[4], 120ms);
}

TEST(process_driver, on_failure_does_not_restart_a_clean_exit_but_always_does) {
    temp_dir dir;
    driver_harness h;
    workload_spec clean;
    clean.id = "clean";
    clean.program = "/bin/true";
    clean.restart = {.when = restart_policy::on_failure, .max_restarts = 3, .initial_backoff = 10ms};
    auto again = clean;
    again.id = "again";
    again.restart.when = restart_policy::always;
    again.restart.max_restarts = 2;
    ASSERT_TRUE(h.driver().start(clean));
    ASSERT_TRUE(h.driver().start(again));

    using enum workload_state;
    EXPECT_EQ(states(h.wait_terminal("clean")), (std::vector{pending, running, exited}));
    auto events = h.wait_terminal("again");
    EXPECT_EQ(states(events), (std::vector{pending, running, pending, running, pending, running, failed}));
    EXPECT_EQ(events[2].exit.code, 0);
}

TEST(process_driver, death_by_signal_is_a_failure) {
    temp_dir dir;
    driver_harness h;
    auto spec = shell("selfkill", "kill -KILL $$", dir);
    spec.restart = {.when = restart_policy::on_failure, .max_restarts = 1, .initial_backoff = 10ms};
    ASSERT_TRUE(h.driver().start(spec));
    auto events = h.wait_terminal("selfkill");
    ASSERT_EQ(events.back().state, workload_state::failed);
    EXPECT_EQ(events.back().exit.signal, SIGKILL);
    EXPECT_FALSE(events.back().exit.code);
}

TEST(process_driver, stop_is_graceful_when_the_process_honours_term) {
    temp_dir dir;
    driver_harness h;
    auto spec = shell("polite", "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done", dir);
    spec.restart.when = restart_policy::always; // a stop is never undone by the restart policy
    ASSERT_TRUE(h.driver().start(spec));
    ASSERT_TRUE(eventually([&] { return read_file(spec.stdout_path) == "ready\n"; }));

    auto begun = std::chrono::steady_clock::now();
    ASSERT_TRUE(h.driver().stop("polite", 10s));
    auto events = h.wait_terminal("polite");
    EXPECT_LT(std::chrono::steady_clock::now() - begun, 5s) << "did not wait for the grace to run out";
    ASSERT_EQ(events.back().state, workload_state::stopped);
    EXPECT_EQ(events.back().exit.code, 0);
    EXPECT_EQ(read_file(spec.stdout_path), "ready\nbye\n");
    EXPECT_TRUE(h.driver().stop("polite")) << "stopping a stopped workload changes nothing";
}

TEST(process_driver, a_process_that_ignores_term_is_killed_after_the_grace) {
    temp_dir dir;
    driver_harness h;
    auto spec = shell("stubborn", "trap '' TERM; echo ready; while :; do sleep 0.05; done", dir);
    spec.stop_grace = 150ms;
    ASSERT_TRUE(h.driver().start(spec));
    ASSERT_TRUE(eventually([&] { return read_file(spec.stdout_path) == "ready\n"; }));

    auto begun = std::chrono::steady_clock::now();
    ASSERT_TRUE(h.driver().stop("stubborn"));
    auto mid = h.driver().status("stubborn");
    ASSERT_TRUE(mid);
    EXPECT_TRUE(mid->stopping);
    auto events = h.wait_terminal("stubborn");
    EXPECT_GE(std::chrono::steady_clock::now() - begun, 150ms);
    ASSERT_EQ(events.back().state, workload_state::stopped);
    EXPECT_EQ(events.back().exit.signal, SIGKILL);
}

pid_t read_pid(const std::filesystem::path& file) {
    pid_t pid = 0;
    eventually([&] {
        auto text = read_file(file);
        if (text.empty() || text.back() != '\n') return false;
        pid = static_cast<pid_t>(std::stol(text));
        return true;
    });
    return pid;
}

TEST(process_driver, grandchildren_die_with_a_stopped_workload) {
    temp_dir dir;
    driver_harness h;
    auto spec = shell("parent", "sleep 30 & echo $! > " + (dir / "child.pid").string() + "; wait", dir);
    ASSERT_TRUE(h.driver().start(spec));
    pid_t grandchild = read_pid(dir / "child.pid");
    ASSERT_GT(grandchild, 0);
    EXPECT_FALSE(process_gone(grandchild));
    ASSERT_TRUE(h.driver().stop("parent", 2s));
    EXPECT_EQ(h.wait_terminal("parent").back().state, workload_state::stopped);
    EXPECT_TRUE(eventually([&] { return process_gone(grandchild); }));
}

TEST(process_driver, grandchildren_die_when_the_main_process_exits) {
    temp_dir dir;
    driver_harness h;
    auto spec = shell("leaver", "sleep 30 & echo $! > " + (dir / "child.pid").string() + "; exit 0", dir);
    ASSERT_TRUE(h.driver().start(spec));
    pid_t grandchild = read_pid(dir / "child.pid");
    ASSERT_GT(grandchild, 0);
    EXPECT_EQ(h.wait_terminal("leaver").back().state, workload_state::exited);
    EXPECT_TRUE(eventually([&] { return process_gone(grandchild); }));
}

TEST(process_driver, stopping_during_a_backoff_is_immediate) {
    temp_dir dir;
    driver_harness h;
    auto spec = shell("waiting", "exit 1", dir);
    spec.restart = {.when = restart_policy::on_failure, .max_restarts = std::nullopt, .initial_backoff = 1h, .max_backoff = 1h};
    ASSERT_TRUE(h.driver().start(spec));
    ASSERT_TRUE(h.wait_state("waiting", workload_state::pending, 2));
    ASSERT_TRUE(h.driver().stop("waiting"));
    using enum workload_state;
    EXPECT_EQ(states(h.wait_terminal("waiting")), (std::vector{pending, running, pending, stopped}));
}

TEST(process_driver, destruction_kills_what_is_left) {
    temp_dir dir;
    driver_harness h;
    auto spec = shell("orphan", "sleep 30 & echo $! > " + (dir / "child.pid").string() + "; wait", dir);
    ASSERT_TRUE(h.driver().start(spec));
    pid_t grandchild = read_pid(dir / "child.pid");
    ASSERT_GT(grandchild, 0);
    ASSERT_TRUE(h.wait_state("orphan", workload_state::running));
    pid_t main = h.driver().status("orphan")->pid;
    auto begun = std::chrono::steady_clock::now();
    h.destroy_driver();
    EXPECT_LT(std::chrono::steady_clock::now() - begun, 3s);
    EXPECT_TRUE(eventually([&] { return process_gone(main) && process_gone(grandchild); }));
    EXPECT_FALSE(h.wait_for([](const auto& events) { return events.size() > 2; }, 50ms))
        << "no events after destruction";
}

TEST(process_driver, the_handler_may_call_back_into_the_driver) {
    temp_dir dir;
    driver_harness h;
    auto first = shell("first", "exit 0", dir);
    auto second = shell("second", "echo second", dir);
    h.on_event([&](const workload_event& e) {
        if (e.id == "first" && e.state == workload_state::exited) {
            EXPECT_TRUE(h.driver().forget("first"));
            EXPECT_TRUE(h.driver().start(second));
        }
    });
    ASSERT_TRUE(h.driver().start(first));
    EXPECT_EQ(h.wait_terminal("second").back().state, workload_state::exited);
    EXPECT_EQ(h.driver().status("first").error(), errc::not_found);
    EXPECT_EQ(read_file(second.stdout_path), "second\n");
}

TEST(process_driver, a_run_longer_than_reset_after_starts_the_backoff_over) {
    temp_dir dir;
    driver_harness h;
    // The first run is long enough to count as healthy; the ones after it crash at once.
    auto marker = dir / "ran-once";
    auto spec = shell("flaky", "if [ -e " + marker.string() + " ]; then exit 2; fi; touch " + marker.string() +
                                   "; sleep 0.3; exit 2", dir);
    spec.restart = {.when = restart_policy::on_failure, .max_restarts = 1, .initial_backoff = 10ms,
                    .max_backoff = 1s, .multiplier = 2, .reset_after = 200ms};
    ASSERT_TRUE(h.driver().start(spec));
    auto events = h.wait_terminal("flaky");
    using enum workload_state;
    // One restart allowed in a row: the healthy first run does not use it up.
    EXPECT_EQ(states(events), (std::vector{pending, running, pending, running, failed}));
}

TEST(process_driver, a_moved_driver_keeps_its_workloads_and_the_empty_one_refuses) {
    temp_dir dir;
    boost::asio::io_context io;
    std::vector<workload_event> events;
    placement::process_driver first(io.get_executor(), [&](const workload_event& e) { events.push_back(e); });
    ASSERT_TRUE(first.start(shell("moved", "exit 0", dir)));
    placement::process_driver second(std::move(first));
    EXPECT_EQ(first.start(shell("other", "exit 0", dir)).error(), errc::shut_down);
    EXPECT_EQ(first.stop("moved").error(), errc::shut_down);
    EXPECT_TRUE(first.list().empty());
    // Nothing runs the io_context until now: start() answered synchronously and the events waited.
    io.run_for(bound);
    ASSERT_EQ(states(events), (std::vector{workload_state::pending, workload_state::running, workload_state::exited}));
    EXPECT_EQ(second.status("moved")->state, workload_state::exited);
}

TEST(process_driver, the_factory_makes_a_driver_behind_the_interface) {
    temp_dir dir;
    boost::asio::io_context io;
    std::vector<workload_event> events;
    std::unique_ptr<placement::workload_driver> driver =
        placement::process_driver::factory()(io.get_executor(), [&](const workload_event& e) { events.push_back(e); });
    ASSERT_TRUE(driver->start(shell("via-factory", "exit 4", dir)));
    io.run_for(bound);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().state, workload_state::exited);
    EXPECT_EQ(events.back().exit.code, 4);
}

TEST(process_driver, stop_all_stops_everything_then_says_so_and_refuses_new_work) {
    temp_dir dir;
    driver_harness h;
    auto polite = shell("polite", "trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done", dir);
    auto stubborn = shell("stubborn", "trap '' TERM; echo ready; while :; do sleep 0.05; done", dir);
    auto waiting = shell("waiting", "exit 1", dir);
    waiting.restart = {.when = restart_policy::on_failure, .max_restarts = std::nullopt, .initial_backoff = 1h,
                       .max_backoff = 1h};
    auto done = shell("done", "exit 0", dir);
    for (const auto* s : {&polite, &stubborn, &waiting, &done}) ASSERT_TRUE(h.driver().start(*s));
    ASSERT_TRUE(eventually([&] {
        return read_file(polite.stdout_path) == "ready\n" && read_file(stubborn.stdout_path) == "ready\n";
    }));
    ASSERT_TRUE(h.wait_state("waiting", workload_state::pending, 2));
    h.wait_terminal("done");

    std::mutex m;
    std::condition_variable cv;
    bool all_stopped = false;
    std::size_t events_before_done = 0;
    h.driver().stop_all(200ms, [&] {
        std::lock_guard lock(m);
        all_stopped = true;
        events_before_done = h.recorded().size();
        cv.notify_all();
    });
    EXPECT_EQ(h.driver().start(shell("late", "exit 0", dir)).error(), errc::shut_down);
    {
        std::unique_lock lock(m);
        ASSERT_TRUE(cv.wait_for(lock, bound, [&] { return all_stopped; }));
    }
    for (const auto* id : {"polite", "stubborn", "waiting"})
        EXPECT_EQ(h.events_of(id).back().state, workload_state::stopped) << id;
    EXPECT_EQ(h.events_of("done").back().state, workload_state::exited);
    EXPECT_EQ(h.events_of("stubborn").back().exit.signal, SIGKILL);
    EXPECT_EQ(events_before_done, h.recorded().size()) << "done comes after every event";
}

TEST(process_driver, list_shows_every_workload_by_id) {
    temp_dir dir;
    driver_harness h;
    ASSERT_TRUE(h.driver().start(shell("b", "exit 0", dir)));
    ASSERT_TRUE(h.driver().start(shell("a", "exit 0", dir)));
    h.wait_terminal("a");
    h.wait_terminal("b");
    auto all = h.driver().list();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].id, "a");
    EXPECT_EQ(all[1].id, "b");
}

TEST(process_driver, a_child_reaped_by_the_host_is_reported_without_a_status) {
    temp_dir dir;
    driver_harness h;
    // SIGCHLD ignored: the kernel reaps every child at once, before the driver can read its status.
    struct sigaction old {};
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGCHLD, &ignore, &old);
    auto spec = shell("lost", "exit 0", dir);
    spec.restart = {.when = restart_policy::on_failure, .max_restarts = 0};
    auto started = h.driver().start(spec);
    ASSERT_TRUE(started) << started.error().describe();
    auto events = h.wait_terminal("lost");
    ::sigaction(SIGCHLD, &old, nullptr);
    ASSERT_EQ(events.back().state, workload_state::failed) << "a lost status counts as a failure";
    EXPECT_FALSE(events.back().exit.code);
    EXPECT_FALSE(events.back().exit.signal);
}

/// The SIGCHLD fallback for kernels without pidfds, forced on here.
class sigchld_fallback : public ::testing::Test {
protected:
    void SetUp() override { placement::detail::force_sigchld_watch(true); }
    void TearDown() override { placement::detail::force_sigchld_watch(false); }
};

TEST_F(sigchld_fallback, sees_exits_restarts_and_stops) {
    temp_dir dir;
    driver_harness h;
    auto crash = shell("crash", "exit 3", dir);
    crash.restart = {.when = restart_policy::on_failure, .max_restarts = 2, .initial_backoff = 10ms};
    auto ok = shell("ok", "echo fine", dir);
    auto stubborn = shell("stubborn", "trap '' TERM; echo ready; while :; do sleep 0.05; done", dir);
    stubborn.stop_grace = 100ms;
    ASSERT_TRUE(h.driver().start(crash));
    ASSERT_TRUE(h.driver().start(ok));
    ASSERT_TRUE(h.driver().start(stubborn));

    using enum workload_state;
    EXPECT_EQ(states(h.wait_terminal("crash")), (std::vector{pending, running, pending, running, pending, running, failed}));
    EXPECT_EQ(states(h.wait_terminal("ok")), (std::vector{pending, running, exited}));
    ASSERT_TRUE(eventually([&] { return read_file(stubborn.stdout_path) == "ready\n"; }));
    ASSERT_TRUE(h.driver().stop("stubborn"));
    auto events = h.wait_terminal("stubborn");
    EXPECT_EQ(events.back().state, stopped);
    EXPECT_EQ(events.back().exit.signal, SIGKILL);
}

TEST_F(sigchld_fallback, kills_grandchildren_and_what_is_left_at_destruction) {
    temp_dir dir;
    driver_harness h;
    auto leaver = shell("leaver", "sleep 30 & echo $! > " + (dir / "leaver.pid").string() + "; exit 0", dir);
    auto stays = shell("stays", "sleep 30 & echo $! > " + (dir / "stays.pid").string() + "; wait", dir);
    ASSERT_TRUE(h.driver().start(leaver));
    ASSERT_TRUE(h.driver().start(stays));
    pid_t left_behind = read_pid(dir / "leaver.pid");
    pid_t still_running = read_pid(dir / "stays.pid");
    ASSERT_GT(left_behind, 0);
    ASSERT_GT(still_running, 0);
    EXPECT_EQ(h.wait_terminal("leaver").back().state, workload_state::exited);
    EXPECT_TRUE(eventually([&] { return process_gone(left_behind); }));
    ASSERT_TRUE(h.wait_state("stays", workload_state::running));
    EXPECT_FALSE(process_gone(still_running));
    h.destroy_driver();
    EXPECT_TRUE(eventually([&] { return process_gone(still_running); }));
}

} // namespace
} // namespace swarm::test
