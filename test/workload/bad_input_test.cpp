// Bad input to the process driver: each is refused with an error naming the culprit, and nothing starts.
#include "harness.hpp"

#include <swarm/core/config.hpp>

#include <fstream>

namespace swarm::test {
namespace {

using placement::restart_policy;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class bad_input : public ::testing::Test {
protected:
    /// Starting `spec` fails with `code`, the message names `culprit`, and nothing was started or reported.
    void expect_refused(const workload_spec& spec, errc code, const std::string& culprit) {
        auto r = h.driver().start(spec);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error(), code) << r.error().describe();
        EXPECT_TRUE(contains(r.error().message, culprit)) << r.error().message << " does not name " << culprit;
        EXPECT_EQ(h.driver().status(spec.id).error(), errc::not_found);
        EXPECT_TRUE(h.driver().list().empty());
    }
    void TearDown() override {
        // Refusals send no events; give a stray one the time to show up.
        if (refusals_only) {
            EXPECT_FALSE(h.wait_for([](const auto& events) { return !events.empty(); }, 50ms));
        }
    }

    bool refusals_only = true;

    temp_dir dir;
    driver_harness h;
};

TEST_F(bad_input, a_missing_program) {
    auto spec = shell("missing", "", dir);
    spec.program = dir / "no-such-program";
    expect_refused(spec, errc::not_found, "no-such-program");
    spec.program = "no-such-program-anywhere";
    spec.env = {{"PATH", "/bin"}};
    expect_refused(spec, errc::not_found, "no-such-program-anywhere");
}

TEST_F(bad_input, a_file_that_is_not_executable) {
    auto script = dir / "script.sh";
    std::ofstream(script) << "#!/bin/sh\necho hi\n";
    std::filesystem::permissions(script, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    auto spec = shell("noexec", "", dir);
    spec.program = script;
    spec.args.clear();
    expect_refused(spec, errc::invalid_argument, "script.sh");
    spec.program = dir.path();
    expect_refused(spec, errc::invalid_argument, "not a regular file");
    // Executable bits on something that is neither a binary nor a script: the exec itself fails.
    auto junk = dir / "junk";
    std::ofstream(junk) << "\x01\x02 not a program\n";
    std::filesystem::permissions(junk, std::filesystem::perms::owner_all);
    spec.program = junk;
    expect_refused(spec, errc::invalid_argument, "junk");
}

TEST_F(bad_input, an_output_path_that_cannot_be_written) {
    auto spec = shell("unwritable", "echo hi", dir);
    spec.stdout_path = dir / "no-such-dir" / "out.log";
    expect_refused(spec, errc::io_error, "no-such-dir/out.log");
    spec.stdout_path = dir / "ok.out";
    spec.stderr_path = dir.path(); // a directory
    expect_refused(spec, errc::io_error, "stderr_path");
}

TEST_F(bad_input, a_working_directory_that_does_not_exist) {
    auto spec = shell("nowhere", "pwd", dir);
    spec.working_dir = dir / "absent";
    expect_refused(spec, errc::not_found, "absent");
}

TEST_F(bad_input, a_spec_that_does_not_validate) {
    auto spec = shell("ok", "true", dir);
    spec.id = "";
    expect_refused(spec, errc::config_invalid_value, "id");
    spec.id = "has space";
    expect_refused(spec, errc::config_invalid_value, "has space");
    spec.id = "env";
    spec.env = {{"A=B", "c"}};
    expect_refused(spec, errc::config_invalid_value, "A=B");
    spec.env.clear();
    spec.restart.multiplier = 0.5;
    expect_refused(spec, errc::config_invalid_value, "restart.multiplier");
}

TEST_F(bad_input, a_duplicate_id_and_unknown_ids) {
    refusals_only = false;
    auto spec = shell("dup", "sleep 5", dir);
    ASSERT_TRUE(h.driver().start(spec));
    auto again = h.driver().start(spec);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), errc::already_exists);
    EXPECT_TRUE(contains(again.error().message, "dup"));
    EXPECT_EQ(h.driver().forget("dup").error(), errc::invalid_argument) << "a live workload cannot be forgotten";

    EXPECT_EQ(h.driver().stop("ghost").error(), errc::not_found);
    EXPECT_EQ(h.driver().status("ghost").error(), errc::not_found);
    EXPECT_EQ(h.driver().forget("ghost").error(), errc::not_found);

    ASSERT_TRUE(h.driver().stop("dup", 1s));
    EXPECT_EQ(h.wait_terminal("dup").back().state, workload_state::stopped);
    EXPECT_TRUE(h.driver().forget("dup"));
    EXPECT_TRUE(h.driver().list().empty());
}

TEST(workload_spec_json, round_trips_and_names_bad_keys) {
    auto spec = config::parse<workload_spec>(R"({
        "id": "llama", "program": "/usr/bin/llama-server", "args": ["--port", "8080"],
        "env": {"OMP_NUM_THREADS": "2"}, "working_dir": "/srv", "stdout_path": "/var/log/llama.out",
        "restart": {"when": "always", "max_restarts": 5, "initial_backoff": "500ms", "max_backoff": "30s"},
        "stop_grace": "20s"})");
    ASSERT_TRUE(spec) << spec.error().describe();
    EXPECT_EQ(spec->restart.when, restart_policy::always);
    EXPECT_EQ(spec->restart.max_restarts, 5u);
    EXPECT_EQ(spec->restart.initial_backoff, 500ms);
    EXPECT_EQ(spec->stop_grace, 20s);
    EXPECT_EQ(spec->args, (std::vector<std::string>{"--port", "8080"}));
    auto back = config::from_json<workload_spec>(config::to_json(*spec));
    ASSERT_TRUE(back);
    EXPECT_EQ(back->program, spec->program);
    EXPECT_EQ(back->env, spec->env);

    auto typo = config::parse<workload_spec>(R"({"id": "x", "program": "/bin/true", "restart": {"when": "sometimes"}})");
    ASSERT_FALSE(typo);
    EXPECT_TRUE(contains(typo.error().message, "restart.when")) << typo.error().message;
    auto missing = config::parse<workload_spec>(R"({"id": "x"})");
    ASSERT_FALSE(missing);
    EXPECT_TRUE(contains(missing.error().message, "program")) << missing.error().message;
    auto backwards = config::parse<workload_spec>(
        R"({"id": "x", "program": "/bin/true", "restart": {"initial_backoff": "1m", "max_backoff": "1s"}})");
    ASSERT_FALSE(backwards);
    EXPECT_TRUE(contains(backwards.error().message, "max_backoff")) << backwards.error().message;
}

} // namespace
} // namespace swarm::test
