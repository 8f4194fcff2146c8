// GPU telemetry in routing: the gpu_saturation filter, and the figures backends_from_members derives from
// membership metadata.
#include <swarm/core/config.hpp>
#include <swarm/dispatch/gateway.hpp>
#include <swarm/dispatch/router.hpp>
#include <swarm/dispatch/scorers.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace sd = swarm::dispatch;

namespace {

sd::backend gpu_backend(std::string id, double utilisation, double memory_usage) {
    sd::backend b;
    b.id = std::move(id);
    b.models = {"llama"};
    b.endpoint = "127.0.0.1:8000";
    b.gpu_utilisation = utilisation;
    b.gpu_memory_usage = memory_usage;
    return b;
}

sd::request_view llama() {
    sd::request_view v;
    v.model = "llama";
    return v;
}

std::string route_once(sd::router& r, std::string_view prompt) {
    sd::request_view v;
    v.model = "llama";
    v.prompt = std::as_bytes(std::span{prompt.data(), prompt.size()});
    auto d = r.route(v);
    EXPECT_TRUE(d.has_value());
    return d ? r.find(d->chosen)->info.id : std::string{};
}

} // namespace

TEST(dispatch_gpu_saturation, a_saturated_gpu_loses_its_prefix_home_until_it_cools) {
    auto pipeline = sd::prefix_affinity_pipeline();
    pipeline.insert(pipeline.begin(), sd::stage{sd::gpu_saturation(), 1.0});
    auto r = sd::router::create({}, std::move(pipeline));
    ASSERT_TRUE(r);
    for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(r->add(gpu_backend(id, 0.2, 0.3)));
    const std::string prompt(4096, 'p');
    const std::string home = route_once(*r, prompt);
    EXPECT_EQ(route_once(*r, prompt), home); // the prefix sticks while the GPUs are cool

    ASSERT_TRUE(r->update(gpu_backend(home, 0.99, 0.3))); // busy
    const std::string away = route_once(*r, prompt);
    EXPECT_NE(away, home);
    ASSERT_TRUE(r->update(gpu_backend(home, 0.2, 0.97))); // full
    EXPECT_NE(route_once(*r, prompt), home);
    ASSERT_TRUE(r->update(gpu_backend(home, 0.2, 0.3))); // cool again: the cached prefix wins it back
    EXPECT_EQ(route_once(*r, prompt), home);
}

TEST(dispatch_gpu_saturation, saturated_backends_still_serve_when_nothing_else_can) {
    auto r = sd::router::create({}, {{sd::gpu_saturation({.max_utilisation = 0.9, .max_memory_usage = 0.9}), 1.0},
                                     {sd::least_outstanding(), 1.0}});
    ASSERT_TRUE(r);
    ASSERT_TRUE(r->add(gpu_backend("a", 0.95, 0.1)));
    ASSERT_TRUE(r->add(gpu_backend("b", 0.1, 0.92)));
    auto d = r->route(llama());
    ASSERT_TRUE(d) << d.error().describe();
    ASSERT_TRUE(r->add(gpu_backend("c", 0.5, 0.5)));
    for (int i = 0; i < 4; ++i) {
        // c is the one preferred backend, however loaded: the others are fallbacks.
        auto c = r->route(llama());
        ASSERT_TRUE(c);
        EXPECT_EQ(r->find(c->chosen)->info.id, "c");
        r->on_start(c->chosen);
    }
}

TEST(dispatch_gpu_saturation, bad_figures_and_options_are_refused) {
    auto r = sd::router::create({}, {{sd::least_outstanding(), 1.0}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->add(gpu_backend("a", 1.5, 0.0)).error().code, swarm::errc::invalid_argument);
    EXPECT_EQ(r->add(gpu_backend("a", 0.0, -0.1)).error().code, swarm::errc::invalid_argument);
    EXPECT_FALSE((sd::gpu_saturation_options{.max_utilisation = 0.0}.validate()));
    EXPECT_FALSE((sd::gpu_saturation_options{.max_memory_usage = 1.1}.validate()));
    auto parsed = swarm::config::parse<sd::gpu_saturation_options>(R"({"max_utilisation": 0.8})");
    ASSERT_TRUE(parsed);
    EXPECT_DOUBLE_EQ(parsed->max_utilisation, 0.8);
    EXPECT_FALSE(swarm::config::parse<sd::gateway_config>(R"({"gpu_saturation": {"max_memory_usage": 2}})"));
}

TEST(dispatch_gpu_saturation, figures_come_from_the_members_gpus) {
    swarm::membership::member m;
    m.state = swarm::membership::member_state::alive;
    auto meta = std::make_shared<swarm::membership::metadata>();
    meta->models = {{"llama", "http://10.0.0.1:8000", "openai"}};
    const std::uint64_t gib = 1ULL << 30;
    meta->capacity.gpus = {{"H100", 80 * gib, 60 * gib, 90}, {"H100", 80 * gib, 20 * gib, 30}};
    m.meta = meta;
    auto list = sd::backends_from_members(std::span{&m, 1});
    ASSERT_EQ(list.size(), 1u);
    EXPECT_DOUBLE_EQ(list[0].gpu_utilisation, 0.6); // (90 + 30) / 2 percent
    EXPECT_DOUBLE_EQ(list[0].gpu_memory_usage, 0.5); // 80 of 160 GiB

    meta->capacity.gpus.clear(); // no GPU: nothing to filter on
    list = sd::backends_from_members(std::span{&m, 1});
    EXPECT_EQ(list[0].gpu_utilisation, 0.0);
    EXPECT_EQ(list[0].gpu_memory_usage, 0.0);
}
