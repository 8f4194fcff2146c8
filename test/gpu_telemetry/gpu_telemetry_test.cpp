// GPU telemetry: the NVML provider against a fake NVML library the tests build (test/gpu_telemetry/fake_nvml.c,
// a test double for libnvidia-ml.so.1), and agents on loopback publishing GPU figures to each other.
#include "support/eventually.hpp"
#include "support/fast_agent.hpp"
#include "support/scratch_dir.hpp"
#include <swarm/core/config.hpp>
#include <swarm/membership/agent.hpp>
#include <swarm/membership/gpu_telemetry.hpp>
#include <swarm/net/runtime.hpp>

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#ifndef SWARM_FAKE_NVML
#error "the build defines SWARM_FAKE_NVML, the path of the fake NVML library"
#endif

namespace {

namespace m = swarm::membership;
using namespace std::chrono_literals;

constexpr std::uint64_t gib = 1ull << 30;
const std::string fake_library = SWARM_FAKE_NVML;

/// The fake's controls, resolved from the same loaded copy the provider uses.
struct fake_nvml {
    void* handle = ::dlopen(fake_library.c_str(), RTLD_NOW | RTLD_LOCAL);
    void (*set)(unsigned, unsigned, unsigned long long) =
        reinterpret_cast<void (*)(unsigned, unsigned, unsigned long long)>(::dlsym(handle, "fake_nvml_set"));
    int (*live_inits)() = reinterpret_cast<int (*)()>(::dlsym(handle, "fake_nvml_live_inits"));

    fake_nvml() {
        if (handle == nullptr || set == nullptr || live_inits == nullptr)
            throw std::runtime_error("cannot load the fake NVML library " + fake_library);
        // The scripted starting figures; a previous test in this process may have changed them.
        set(0, 25, 1 * gib);
        set(1, 0, 0);
    }
    ~fake_nvml() { ::dlclose(handle); }
    fake_nvml(const fake_nvml&) = delete;
    fake_nvml& operator=(const fake_nvml&) = delete;
};

struct captured_log {
    std::mutex mu;
    std::vector<std::pair<swarm::log_level, std::string>> lines;

    swarm::logger logger() {
        return {swarm::log_level::trace, [this](swarm::log_level l, std::string_view text) {
                    std::lock_guard lock(mu);
                    lines.emplace_back(l, std::string(text));
                }};
    }
    std::size_t count_at_least(swarm::log_level level) {
        std::lock_guard lock(mu);
        std::size_t n = 0;
        for (const auto& [l, text] : lines) n += l >= level;
        return n;
    }
    std::string all() {
        std::lock_guard lock(mu);
        std::string out;
        for (const auto& [l, text] : lines) out += std::string(swarm::to_string(l)) + ": " + text + "\n";
        return out;
    }
};

// --- the provider -------------------------------------------------------------------------------------------

TEST(nvml_provider, reports_the_fake_gpus_and_follows_their_figures) {
    fake_nvml fake;
    m::nvml_provider nvml(fake_library);
    ASSERT_TRUE(nvml.available());
    auto gpus = nvml.sample();
    ASSERT_EQ(gpus.size(), 2u);
    EXPECT_EQ(gpus[0].model, "Swarm Fake GPU 80GB");
    EXPECT_EQ(gpus[0].memory_bytes, 80 * gib);
    EXPECT_EQ(gpus[0].memory_used_bytes, 1 * gib);
    EXPECT_EQ(gpus[0].utilisation_percent, 25u);
    EXPECT_EQ(gpus[1].model, "Swarm Fake GPU 24GB");
    EXPECT_EQ(gpus[1].memory_bytes, 24 * gib);
    EXPECT_EQ(gpus[1].memory_used_bytes, 0u);
    EXPECT_EQ(gpus[1].utilisation_percent, 0u);

    fake.set(1, 97, 20 * gib);
    gpus = nvml.sample();
    ASSERT_EQ(gpus.size(), 2u);
    EXPECT_EQ(gpus[1].utilisation_percent, 97u);
    EXPECT_EQ(gpus[1].memory_used_bytes, 20 * gib);
    EXPECT_EQ(gpus[0].utilisation_percent, 25u);
}

TEST(nvml_provider, shuts_nvml_down_when_destroyed) {
    fake_nvml fake;
    {
        m::nvml_provider nvml(fake_library);
        ASSERT_TRUE(nvml.available());
        EXPECT_EQ(fake.live_inits(), 1);
    }
    EXPECT_EQ(fake.live_inits(), 0);
}

TEST(nvml_provider, a_missing_library_is_silently_absent) {
    captured_log log;
    m::nvml_provider nvml("/nonexistent/libnvidia-ml.so.1", log.logger());
    EXPECT_FALSE(nvml.available());
    EXPECT_TRUE(nvml.sample().empty());
    EXPECT_TRUE(nvml.sample().empty());
    // One debug line that says why, nothing louder, and nothing more on each sample.
    ASSERT_EQ(log.lines.size(), 1u) << log.all();
    EXPECT_EQ(log.lines[0].first, swarm::log_level::debug);
    EXPECT_NE(log.lines[0].second.find("NVML not loaded"), std::string::npos) << log.all();
}

TEST(nvml_provider, a_library_without_nvml_functions_is_absent) {
    captured_log log;
    // Any shared library that is not NVML: the C math library is everywhere.
    m::nvml_provider nvml("libm.so.6", log.logger());
    EXPECT_FALSE(nvml.available());
    EXPECT_TRUE(nvml.sample().empty());
    ASSERT_EQ(log.lines.size(), 1u) << log.all();
    EXPECT_EQ(log.lines[0].first, swarm::log_level::debug);
    EXPECT_NE(log.lines[0].second.find("lacks an NVML function"), std::string::npos) << log.all();
}

TEST(nvml_provider, a_failing_init_is_silently_absent) {
    fake_nvml fake;
    captured_log log;
    ::setenv("SWARM_FAKE_NVML_INIT_FAIL", "1", 1);
    std::optional<m::nvml_provider> nvml;
    nvml.emplace(fake_library, log.logger());
    ::unsetenv("SWARM_FAKE_NVML_INIT_FAIL");
    EXPECT_FALSE(nvml->available());
    EXPECT_TRUE(nvml->sample().empty());
    ASSERT_EQ(log.lines.size(), 1u) << log.all();
    EXPECT_EQ(log.lines[0].first, swarm::log_level::debug);
    EXPECT_NE(log.lines[0].second.find("Driver Not Loaded"), std::string::npos) << log.all();
    nvml.reset();
    // A failed init is not shut down, and nothing was left initialised.
    EXPECT_EQ(fake.live_inits(), 0);
}

// --- when figures are worth republishing ----------------------------------------------------------------------

TEST(gpu_telemetry, significant_change_follows_the_thresholds) {
    m::gpu_telemetry_config cfg;
    cfg.utilisation_threshold = 10;
    cfg.memory_threshold = 0.05;
    const std::vector<m::gpu> was{{"A", 80 * gib, 10 * gib, 50}};
    auto with = [&](std::function<void(m::gpu&)> change) {
        auto now = was;
        change(now[0]);
        return now;
    };
    EXPECT_FALSE(m::significant_change(was, was, cfg));
    EXPECT_FALSE(m::significant_change(was, with([](m::gpu& g) { g.utilisation_percent = 59; }), cfg));
    EXPECT_TRUE(m::significant_change(was, with([](m::gpu& g) { g.utilisation_percent = 60; }), cfg));
    EXPECT_TRUE(m::significant_change(was, with([](m::gpu& g) { g.utilisation_percent = 40; }), cfg));
    // 5% of 80 GiB is 4 GiB.
    EXPECT_FALSE(m::significant_change(was, with([](m::gpu& g) { g.memory_used_bytes = 13 * gib; }), cfg));
    EXPECT_TRUE(m::significant_change(was, with([](m::gpu& g) { g.memory_used_bytes = 14 * gib; }), cfg));
    EXPECT_TRUE(m::significant_change(was, with([](m::gpu& g) { g.memory_used_bytes = 6 * gib; }), cfg));
    EXPECT_TRUE(m::significant_change(was, with([](m::gpu& g) { g.model = "B"; }), cfg));
    EXPECT_TRUE(m::significant_change(was, with([](m::gpu& g) { g.memory_bytes = 40 * gib; }), cfg));
    EXPECT_TRUE(m::significant_change(was, {}, cfg));
    EXPECT_TRUE(m::significant_change({}, was, cfg));
    EXPECT_FALSE(m::significant_change({}, {}, cfg));
    // Zero thresholds: any movement counts.
    cfg.utilisation_threshold = 0;
    cfg.memory_threshold = 0;
    EXPECT_TRUE(m::significant_change(was, with([](m::gpu& g) { g.utilisation_percent = 51; }), cfg));
    EXPECT_TRUE(m::significant_change(was, with([](m::gpu& g) { g.memory_used_bytes += 1; }), cfg));
    EXPECT_FALSE(m::significant_change(was, was, cfg));
}

TEST(gpu_telemetry, with_gpus_keeps_the_host_metadata_and_reports_free_memory_as_available) {
    m::metadata host;
    host.labels["zone"] = "eu-1a";
    host.capacity.cpu_millicores = 8000;
    host.capacity.gpus = {{"host says", 1, 0, 0}};
    const std::vector<m::gpu> sampled{{"A", 80 * gib, 30 * gib, 70}, {"B", 24 * gib, 0, 0}};
    const auto out = m::with_gpus(host, sampled);
    EXPECT_EQ(out.labels, host.labels);
    EXPECT_EQ(out.capacity.cpu_millicores, 8000u);
    EXPECT_EQ(out.capacity.gpus, sampled);
    ASSERT_EQ(out.available.gpus.size(), 2u);
    EXPECT_EQ(out.available.gpus[0].model, "A");
    EXPECT_EQ(out.available.gpus[0].memory_bytes, 50 * gib);
    EXPECT_EQ(out.available.gpus[0].utilisation_percent, 70u);
    EXPECT_EQ(out.available.gpus[1].memory_bytes, 24 * gib);
    // Nothing sampled: the host's own GPU figures stand.
    EXPECT_EQ(m::with_gpus(host, {}), host);
}

TEST(gpu_telemetry, config_loads_from_json_and_bad_values_name_their_key) {
    auto c = swarm::config::parse<m::gpu_telemetry_config>(
        R"({"enabled": true, "nvml_library": "/opt/nvidia/libnvidia-ml.so.1", "interval": "2s",
            "utilisation_threshold": 5, "memory_threshold": 0.1})");
    ASSERT_TRUE(c.has_value()) << c.error().describe();
    EXPECT_EQ(c->nvml_library, "/opt/nvidia/libnvidia-ml.so.1");
    EXPECT_EQ(c->interval, 2s);
    EXPECT_EQ(c->utilisation_threshold, 5u);

    auto expect_bad = [](const char* json, const char* key) {
        auto bad = swarm::config::parse<m::gpu_telemetry_config>(json);
        ASSERT_FALSE(bad.has_value()) << json;
        EXPECT_EQ(bad.error().code, swarm::errc::config_invalid_value) << json;
        EXPECT_NE(bad.error().message.find(key), std::string::npos) << bad.error().message;
    };
    expect_bad(R"({"interval": "0s"})", "gpu_telemetry.interval");
    expect_bad(R"({"utilisation_threshold": 101})", "gpu_telemetry.utilisation_threshold");
    expect_bad(R"({"memory_threshold": 1.5})", "gpu_telemetry.memory_threshold");
    expect_bad(R"({"memory_threshold": -0.1})", "gpu_telemetry.memory_threshold");
    expect_bad(R"({"nvml_library": ""})", "gpu_telemetry.nvml_library");
    // Turned off, the other values do not matter.
    EXPECT_TRUE(swarm::config::parse<m::gpu_telemetry_config>(R"({"enabled": false, "interval": "0s"})").has_value());
}

// --- agents on loopback ---------------------------------------------------------------------------------------

struct temp_dir : swarm_test::scratch_dir {
    temp_dir() : scratch_dir("swarm-gpu") {}
};

using swarm_test::eventually;

/// A provider the test scripts: what a host plugs in when its GPUs are not NVIDIA's.
class scripted_provider final : public m::gpu_provider {
public:
    void set(std::vector<m::gpu> gpus) {
        std::lock_guard lock(mu_);
        gpus_ = std::move(gpus);
    }
    std::vector<m::gpu> sample() override {
        std::lock_guard lock(mu_);
        ++samples_;
        return gpus_;
    }
    std::size_t samples() {
        std::lock_guard lock(mu_);
        return samples_;
    }

private:
    std::mutex mu_;
    std::vector<m::gpu> gpus_;
    std::size_t samples_ = 0;
};

/// Two agents on loopback: `gpu` with GPU telemetry as configured by the test, `observer` without.
struct pair_of_agents {
    swarm::runtime rt{2};
    temp_dir dir;
    std::optional<m::agent> gpu;
    std::optional<m::agent> observer;

    m::agent_config config(const std::string& name) const {
        auto c = swarm_test::fast_agent_config(dir.path() / (name + ".key"), std::string(64, 'c'));
        c.gpu_telemetry.interval = 50ms;
        c.leave_drain = 0ms;
        return c;
    }

    void start(m::agent_config with_gpus) {
        auto obs = config("observer");
        obs.gpu_telemetry.enabled = false;
        auto made = m::agent::create(rt.get_executor(), std::move(obs));
        if (!made) throw std::runtime_error(made.error().describe());
        observer.emplace(std::move(*made));
        with_gpus.seeds = {observer->local_endpoint().to_string()};
        made = m::agent::create(rt.get_executor(), std::move(with_gpus));
        if (!made) throw std::runtime_error(made.error().describe());
        gpu.emplace(std::move(*made));
    }

    /// The GPU node's metadata as the observer sees it.
    std::shared_ptr<const m::metadata> seen() const {
        auto found = observer->find(gpu->id());
        if (!found || !*found) return nullptr;
        return (*found)->meta;
    }

    ~pair_of_agents() {
        gpu.reset();
        observer.reset();
    }
};

TEST(gpu_telemetry_agent, publishes_nvml_figures_and_republishes_when_they_move) {
    fake_nvml fake;
    pair_of_agents net;
    auto cfg = net.config("gpu");
    cfg.gpu_telemetry.nvml_library = fake_library;
    net.start(std::move(cfg));
    m::metadata host;
    host.labels["zone"] = "eu-1a";
    host.models.push_back({"llama-3-8b", "http://127.0.0.1:8080", "openai"});
    ASSERT_TRUE(net.gpu->set_metadata(host));

    ASSERT_TRUE(eventually([&] {
        auto meta = net.seen();
        return meta && meta->capacity.gpus.size() == 2 && meta->labels == host.labels;
    }));
    auto meta = net.seen();
    EXPECT_EQ(meta->models, host.models);
    EXPECT_EQ(meta->capacity.gpus[0].model, "Swarm Fake GPU 80GB");
    EXPECT_EQ(meta->capacity.gpus[0].memory_bytes, 80 * gib);
    EXPECT_EQ(meta->capacity.gpus[0].utilisation_percent, 25u);
    EXPECT_EQ(meta->capacity.gpus[1].model, "Swarm Fake GPU 24GB");
    ASSERT_EQ(meta->available.gpus.size(), 2u);
    EXPECT_EQ(meta->available.gpus[0].memory_bytes, 79 * gib);

    // The second GPU gets busy: the observer learns it without the host doing anything.
    fake.set(1, 90, 12 * gib);
    ASSERT_TRUE(eventually([&] {
        auto now = net.seen();
        return now && now->capacity.gpus.size() == 2 && now->capacity.gpus[1].utilisation_percent == 90;
    }));
    meta = net.seen();
    EXPECT_EQ(meta->capacity.gpus[1].memory_used_bytes, 12 * gib);
    EXPECT_EQ(meta->available.gpus[1].memory_bytes, 12 * gib);
    EXPECT_EQ(meta->labels, host.labels);
}

TEST(gpu_telemetry_agent, a_host_provider_replaces_nvml_and_its_absence_restores_the_host_figures) {
    auto provider = std::make_shared<scripted_provider>();
    provider->set({{"Host Accelerator X", 16 * gib, 2 * gib, 40}});
    pair_of_agents net;
    auto cfg = net.config("gpu");
    cfg.gpu_source = provider;
    net.start(std::move(cfg));
    m::metadata host;
    host.capacity.gpus = {{"declared by the host", 8 * gib, 0, 0}};
    ASSERT_TRUE(net.gpu->set_metadata(host));
    ASSERT_TRUE(eventually([&] {
        auto meta = net.seen();
        return meta && meta->capacity.gpus.size() == 1 && meta->capacity.gpus[0].model == "Host Accelerator X";
    }));

    // The provider stops finding GPUs: what the host declared is published again.
    provider->set({});
    EXPECT_TRUE(eventually([&] {
        auto meta = net.seen();
        return meta && *meta == host;
    }));
}

TEST(gpu_telemetry_agent, figures_too_large_to_publish_are_reported_once_and_the_host_metadata_stands) {
    captured_log log;
    auto provider = std::make_shared<scripted_provider>();
    // A model name beyond the metadata limit (membership.max_metadata_bytes, 64 KiB).
    provider->set({{std::string(70 * 1024, 'x'), 16 * gib, 0, 0}});
    pair_of_agents net;
    auto cfg = net.config("gpu");
    cfg.gpu_source = provider;
    cfg.log = log.logger();
    net.start(std::move(cfg));
    m::metadata host;
    host.labels["zone"] = "eu-1c";
    ASSERT_TRUE(net.gpu->set_metadata(host));
    ASSERT_TRUE(eventually([&] {
        auto meta = net.seen();
        return meta && *meta == host;
    }));
    ASSERT_TRUE(eventually([&] { return log.count_at_least(swarm::log_level::warning) > 0; }));
    // Five more samples, each refused again, and still one warning.
    const auto seen = provider->samples();
    ASSERT_TRUE(eventually([&] { return provider->samples() >= seen + 6; }));
    net.gpu.reset();
    EXPECT_EQ(log.count_at_least(swarm::log_level::warning), 1u) << log.all();
    EXPECT_NE(log.all().find("GPU metadata not published"), std::string::npos) << log.all();
}

TEST(gpu_telemetry_agent, without_nvml_the_metadata_is_the_hosts_and_nothing_is_logged_above_debug) {
    captured_log log;
    pair_of_agents net;
    auto cfg = net.config("gpu");
    cfg.gpu_telemetry.nvml_library = "/nonexistent/libnvidia-ml.so.1";
    cfg.log = log.logger();
    net.start(std::move(cfg));
    m::metadata host;
    host.labels["zone"] = "eu-1b";
    host.capacity.gpus = {{"declared by the host", 8 * gib, 0, 0}};
    ASSERT_TRUE(net.gpu->set_metadata(host));
    ASSERT_TRUE(eventually([&] {
        auto meta = net.seen();
        return meta && *meta == host;
    }));
    net.gpu.reset();
    EXPECT_EQ(log.count_at_least(swarm::log_level::warning), 0u) << log.all();
    EXPECT_NE(log.all().find("debug: gpu telemetry: NVML not loaded"), std::string::npos) << log.all();
}

TEST(gpu_telemetry_agent, a_bad_telemetry_config_is_refused_naming_the_key) {
    temp_dir dir;
    m::agent_config c;
    c.driver.bind = swarm::net::endpoint::parse("127.0.0.1:0").value();
    c.identity_file = dir.path() / "node.key";
    c.cluster_keys = {std::string(64, 'c')};
    c.gpu_telemetry.interval = 0ms;
    auto made = m::agent::create(std::move(c));
    ASSERT_FALSE(made);
    EXPECT_EQ(made.error().code, swarm::errc::config_invalid_value);
    EXPECT_NE(made.error().message.find("gpu_telemetry.interval"), std::string::npos) << made.error().message;
}

} // namespace
