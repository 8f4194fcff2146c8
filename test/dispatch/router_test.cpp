#include <swarm/core/config.hpp>
#include <swarm/core/random.hpp>
#include <swarm/dispatch/router.hpp>
#include <swarm/dispatch/scorers.hpp>

#include "dispatch/prefix_index.hpp"
#include "support/random_text.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace sd = swarm::dispatch;
using namespace std::chrono_literals;

namespace {

sd::backend make_backend(std::string id, std::string model = "llama", double weight = 1.0) {
    sd::backend b;
    b.id = std::move(id);
    b.models = {std::move(model)};
    b.endpoint = "127.0.0.1:8000";
    b.weight = weight;
    return b;
}

sd::router make_router(std::vector<sd::stage> pipeline, int backends, sd::router_config cfg = {}) {
    auto r = sd::router::create(cfg, std::move(pipeline));
    EXPECT_TRUE(r.has_value());
    for (int i = 0; i < backends; ++i) EXPECT_TRUE(r->add(make_backend("b" + std::to_string(i))).has_value());
    return std::move(*r);
}

std::string chosen_id(sd::router& r, const sd::request_view& req) {
    auto d = r.route(req);
    EXPECT_TRUE(d.has_value()) << (d.has_value() ? "" : d.error().describe());
    if (!d) return {};
    return r.find(d->chosen)->info.id;
}

sd::request_view text_request(std::string_view prompt, std::string_view model = "llama") {
    sd::request_view v;
    v.model = model;
    v.prompt = std::as_bytes(std::span{prompt.data(), prompt.size()});
    return v;
}

// `bytes` of prompt text derived from `seed`: equal seeds give equal prompts.
std::string prompt_of(std::uint64_t seed, std::size_t bytes) { return swarm_test::random_letters(seed, bytes); }

} // namespace

TEST(dispatch_router, round_robin_cycles_through_every_backend) {
    auto r = make_router({{sd::round_robin(), 1.0}}, 4);
    std::vector<std::string> seen;
    for (int i = 0; i < 12; ++i) seen.push_back(chosen_id(r, text_request("hello")));
    std::set<std::string> first(seen.begin(), seen.begin() + 4);
    EXPECT_EQ(first.size(), 4U);
    for (std::size_t i = 4; i < seen.size(); ++i) EXPECT_EQ(seen[i], seen[i - 4]) << i;
}

TEST(dispatch_router, round_robin_skips_an_unhealthy_backend) {
    auto r = make_router({{sd::round_robin(), 1.0}}, 3);
    ASSERT_TRUE(r.set_health("b1", false, false).has_value());
    std::map<std::string, int> count;
    for (int i = 0; i < 10; ++i) ++count[chosen_id(r, text_request("x"))];
    EXPECT_EQ(count.count("b1"), 0U);
    EXPECT_EQ(count["b0"], 5);
    EXPECT_EQ(count["b2"], 5);
}

TEST(dispatch_router, least_outstanding_picks_the_least_loaded) {
    auto r = make_router({{sd::least_outstanding(), 1.0}}, 3);
    const sd::backend_ref b0{r.find("b0")->slot, r.find("b0")->generation};
    const sd::backend_ref b2{r.find("b2")->slot, r.find("b2")->generation};
    for (int i = 0; i < 3; ++i) r.on_start(b0);
    r.on_start(b2);
    ASSERT_TRUE(r.set_reported_load("b1", 2, 0.5).has_value()); // the backend's own queue counts too
    EXPECT_EQ(chosen_id(r, text_request("x")), "b2");
    r.on_finish(b0, true, 1ms);
    r.on_finish(b0, true, 1ms);
    r.on_finish(b0, true, 1ms);
    EXPECT_EQ(chosen_id(r, text_request("x")), "b0");
}

TEST(dispatch_router, kv_cache_headroom_breaks_near_ties_in_load) {
    auto r = make_router({{sd::least_outstanding(), 1.0}, {sd::kv_cache_headroom(), 4.0}}, 3);
    ASSERT_TRUE(r.set_reported_load("b0", 0, 0.95).has_value());
    ASSERT_TRUE(r.set_reported_load("b1", 0, 0.10).has_value());
    ASSERT_TRUE(r.set_reported_load("b2", 0, 0.50).has_value());
    EXPECT_EQ(chosen_id(r, text_request("x")), "b1");
    const auto* b1 = r.find("b1");
    for (int i = 0; i < 2; ++i) r.on_start({b1->slot, b1->generation}); // 2 requests outweigh 0.4 of cache
    EXPECT_EQ(chosen_id(r, text_request("x")), "b2");
    EXPECT_EQ(r.set_reported_load("b1", 0, 1.5).error(), swarm::errc::invalid_argument);
}

TEST(dispatch_router, prefix_records_are_per_model) {
    auto r = sd::router::create({}, sd::prefix_affinity_pipeline());
    ASSERT_TRUE(r.has_value());
    for (int i = 0; i < 8; ++i) {
        auto b = make_backend("m" + std::to_string(i));
        b.models = {"a", "b"};
        ASSERT_TRUE(r->add(b).has_value());
    }
    // The same prompt under two models hashes to different blocks, so each model's first request is a miss
    // decided by its own rendezvous order; over many prompts the two orders differ.
    const sd::router_config cfg{};
    int differ = 0;
    for (int g = 0; g < 32; ++g) {
        const std::string p = prompt_of(500 + g, 1024);
        std::array<std::uint64_t, 4> ha{}, hb{};
        ASSERT_EQ(sd::prefix_blocks(cfg, text_request(p, "a"), ha), 4U);
        ASSERT_EQ(sd::prefix_blocks(cfg, text_request(p, "b"), hb), 4U);
        EXPECT_NE(ha, hb);
        differ += chosen_id(*r, text_request(p, "a")) != chosen_id(*r, text_request(p, "b")) ? 1 : 0;
    }
    EXPECT_GT(differ, 16);
}

TEST(dispatch_router, power_of_two_never_picks_the_more_loaded_of_its_two) {
    auto r = make_router({{sd::power_of_two(42), 1.0}}, 5);
    // Loads 0..4: the most loaded backend can never win a draw of two distinct candidates.
    for (int i = 0; i < 5; ++i) {
        const auto* s = r.find("b" + std::to_string(i));
        for (int k = 0; k < i; ++k) r.on_start({s->slot, s->generation});
    }
    std::map<std::string, int> count;
    for (int i = 0; i < 2000; ++i) ++count[chosen_id(r, text_request("x"))];
    EXPECT_EQ(count.count("b4"), 0U);
    EXPECT_GT(count["b0"], count["b1"]);
    EXPECT_GT(count["b1"], count["b2"]);
    EXPECT_GT(count["b2"], count["b3"]);
    // And with two backends it always takes the lighter.
    auto two = make_router({{sd::power_of_two(7), 1.0}}, 2);
    const auto* b1 = two.find("b1");
    two.on_start({b1->slot, b1->generation});
    for (int i = 0; i < 50; ++i) EXPECT_EQ(chosen_id(two, text_request("x")), "b0");
}

TEST(dispatch_router, weighted_random_follows_the_weights) {
    auto r = sd::router::create({}, {{sd::weighted_random(1234), 1.0}});
    ASSERT_TRUE(r.has_value());
    for (int i = 1; i <= 4; ++i) ASSERT_TRUE(r->add(make_backend("w" + std::to_string(i), "llama", i)).has_value());
    std::map<std::string, int> count;
    constexpr int picks = 20000;
    for (int i = 0; i < picks; ++i) ++count[chosen_id(*r, text_request("x"))];
    for (int i = 1; i <= 4; ++i)
        EXPECT_NEAR(count["w" + std::to_string(i)] / double{picks}, i / 10.0, 0.015) << i;
}

TEST(dispatch_router, session_affinity_keeps_most_sessions_when_the_set_changes) {
    auto r = make_router({{sd::session_affinity(), 1.0}}, 10);
    std::vector<std::string> keys;
    for (int i = 0; i < 2000; ++i) keys.push_back("session-" + std::to_string(i));
    auto assign = [&] {
        std::map<std::string, std::string> out;
        for (const auto& k : keys) {
            auto req = text_request("prompt");
            req.session_key = k;
            out[k] = chosen_id(r, req);
        }
        return out;
    };
    const auto before = assign();
    std::set<std::string> used;
    for (const auto& [k, b] : before) used.insert(b);
    EXPECT_EQ(used.size(), 10U); // sessions spread over every backend

    ASSERT_TRUE(r.add(make_backend("b10")).has_value());
    const auto grown = assign();
    int moved = 0;
    for (const auto& k : keys) {
        if (grown.at(k) == before.at(k)) continue;
        ++moved;
        EXPECT_EQ(grown.at(k), "b10"); // a session moves only to the newcomer
    }
    EXPECT_GT(moved, 2000 / 11 / 2);
    EXPECT_LT(moved, 2000 / 11 * 2);

    ASSERT_TRUE(r.remove("b3").has_value());
    const auto shrunk = assign();
    for (const auto& k : keys) {
        if (grown.at(k) != "b3") {
            EXPECT_EQ(shrunk.at(k), grown.at(k)) << k; // only b3's sessions move
        }
    }
}

TEST(dispatch_router, session_affinity_respects_its_load_bound) {
    auto r = make_router({{sd::session_affinity({.load_factor = 1.25}), 1.0}}, 4);
    std::map<std::string, int> in_flight;
    // One very popular session: its requests stay outstanding, so it must spill as loads reach the bound.
    for (int i = 0; i < 40; ++i) {
        auto req = text_request("prompt");
        req.session_key = "hot";
        auto d = r.route(req);
        ASSERT_TRUE(d.has_value());
        r.on_start(d->chosen);
        const int load = ++in_flight[r.find(d->chosen)->info.id];
        EXPECT_LE(load, std::ceil(1.25 * (i + 1) / 4.0)) << i;
    }
    EXPECT_EQ(in_flight.size(), 4U);
}

TEST(dispatch_router, prefix_affinity_sends_a_repeated_prefix_to_one_backend) {
    auto r = make_router(sd::prefix_affinity_pipeline(), 8);
    const std::string system = prompt_of(1, 4096);
    const std::string first = chosen_id(r, text_request(system + "question one"));
    for (int i = 0; i < 20; ++i) EXPECT_EQ(chosen_id(r, text_request(system + prompt_of(100 + i, 700))), first);
}

TEST(dispatch_router, prefix_affinity_spreads_distinct_prefixes) {
    auto r = make_router(sd::prefix_affinity_pipeline(), 8);
    std::map<std::string, int> count;
    for (int g = 0; g < 400; ++g) ++count[chosen_id(r, text_request(prompt_of(g, 1024)))];
    ASSERT_EQ(count.size(), 8U);
    for (const auto& [id, n] : count) {
        EXPECT_GT(n, 25) << id; // 50 expected each
        EXPECT_LT(n, 80) << id;
    }
}

TEST(dispatch_router, prefix_affinity_prefers_the_longest_cached_prefix) {
    auto r = make_router(sd::prefix_affinity_pipeline(), 8);
    const std::string shared = prompt_of(5, 1024);
    const std::string x = chosen_id(r, text_request(shared + prompt_of(6, 512)));
    // Take x out while a longer prompt over the same prefix is routed: it lands on another backend, which
    // then holds the longer prefix.
    ASSERT_TRUE(r.set_health(x, false, false).has_value());
    const std::string longer = shared + prompt_of(6, 512) + prompt_of(7, 2048);
    const std::string y = chosen_id(r, text_request(longer));
    ASSERT_NE(x, y);
    ASSERT_TRUE(r.set_health(x, true, false).has_value());
    EXPECT_EQ(chosen_id(r, text_request(longer + "and a follow-up")), y);
    // Both hold the shorter prefix; the same prompt keeps going to one of them, always the same one.
    const std::string shorter = chosen_id(r, text_request(shared + prompt_of(6, 512) + "other"));
    EXPECT_TRUE(shorter == x || shorter == y) << shorter;
}

TEST(dispatch_router, prefix_affinity_falls_back_when_the_preferred_backend_is_loaded) {
    auto r = make_router(sd::prefix_affinity_pipeline({.slack_requests = 2, .slack_fraction = 0}), 4);
    const std::string system = prompt_of(9, 2048);
    auto d = r.route(text_request(system + "a"));
    ASSERT_TRUE(d.has_value());
    const std::string home = r.find(d->chosen)->info.id;
    r.on_start(d->chosen);
    r.on_start(d->chosen);
    EXPECT_EQ(chosen_id(r, text_request(system + "b")), home); // 2 above the least: within the bound
    r.on_start(d->chosen);
    const std::string spill = chosen_id(r, text_request(system + "c")); // 3 above: over it
    EXPECT_NE(spill, home);
    // Once home drains, the prefix goes back to it... or to the spill backend, which now holds it too.
    for (int i = 0; i < 3; ++i) r.on_finish(d->chosen, true, 1ms);
    const std::string back = chosen_id(r, text_request(system + "d"));
    EXPECT_TRUE(back == home || back == spill);
    EXPECT_EQ(chosen_id(r, text_request(system + "e")), back);
}

TEST(dispatch_router, prefix_affinity_avoids_an_unhealthy_or_ejected_home) {
    auto r = make_router(sd::prefix_affinity_pipeline(), 4);
    const std::string system = prompt_of(11, 2048);
    const std::string home = chosen_id(r, text_request(system + "a"));
    ASSERT_TRUE(r.set_health(home, true, true).has_value());
    const std::string other = chosen_id(r, text_request(system + "b"));
    EXPECT_NE(other, home);
    ASSERT_TRUE(r.set_health(home, false, false).has_value());
    EXPECT_NE(chosen_id(r, text_request(system + "c")), home);
}

TEST(dispatch_router, prefix_affinity_hashes_token_ids_when_given) {
    auto r = make_router(sd::prefix_affinity_pipeline(), 8);
    std::vector<std::uint32_t> tokens(200);
    for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::uint32_t>(i * 7919 % 32000);
    sd::request_view req;
    req.model = "llama";
    req.tokens = tokens;
    const std::string first = chosen_id(r, req);
    tokens.resize(180);
    tokens.push_back(5);
    req.tokens = tokens;
    EXPECT_EQ(chosen_id(r, req), first);
}

TEST(dispatch_router, unhealthy_and_ejected_backends_are_never_chosen_nor_fallbacks) {
    auto r = make_router({{sd::round_robin(), 1.0}}, 5, {.max_fallbacks = 8});
    ASSERT_TRUE(r.set_health("b1", false, false).has_value());
    ASSERT_TRUE(r.set_health("b3", true, true).has_value());
    for (int i = 0; i < 20; ++i) {
        auto d = r.route(text_request("x"));
        ASSERT_TRUE(d.has_value());
        std::set<std::string> ids{r.find(d->chosen)->info.id};
        for (auto f : d->fallbacks()) ids.insert(r.find(f)->info.id);
        EXPECT_EQ(ids, (std::set<std::string>{"b0", "b2", "b4"}));
        EXPECT_EQ(d->fallbacks().size(), 2U);
    }
    for (int i : {0, 2, 4}) ASSERT_TRUE(r.set_health("b" + std::to_string(i), true, true).has_value());
    auto none = r.route(text_request("x"));
    ASSERT_FALSE(none.has_value());
    EXPECT_EQ(none.error(), swarm::errc::unreachable);
    EXPECT_NE(none.error().message.find("llama"), std::string::npos);
}

TEST(dispatch_router, unknown_model_and_empty_set_are_clear_errors) {
    auto r = make_router({{sd::least_outstanding(), 1.0}}, 1);
    auto unknown = r.route(text_request("x", "mistral"));
    ASSERT_FALSE(unknown.has_value());
    EXPECT_EQ(unknown.error(), swarm::errc::not_found);
    EXPECT_NE(unknown.error().message.find("mistral"), std::string::npos);

    ASSERT_TRUE(r.remove("b0").has_value());
    EXPECT_EQ(r.size(), 0U);
    auto empty = r.route(text_request("x"));
    ASSERT_FALSE(empty.has_value());
    EXPECT_EQ(empty.error(), swarm::errc::not_found);
    EXPECT_EQ(r.remove("b0").error(), swarm::errc::not_found);
}

TEST(dispatch_router, backend_set_changes_while_routing) {
    auto r = make_router({{sd::least_outstanding(), 1.0}}, 2);
    EXPECT_EQ(r.add(make_backend("b0")).error(), swarm::errc::already_exists);
    EXPECT_EQ(r.add(make_backend("")).error(), swarm::errc::invalid_argument);
    EXPECT_EQ(r.add(make_backend("z", "llama", 0.0)).error(), swarm::errc::invalid_argument);
    sd::backend none = make_backend("y");
    none.models.clear();
    EXPECT_EQ(r.add(none).error(), swarm::errc::invalid_argument);

    auto d = r.route(text_request("x"));
    ASSERT_TRUE(d.has_value());
    const sd::backend_ref old = d->chosen;
    ASSERT_TRUE(r.on_start(old));
    const std::string old_id = r.find(old)->info.id;
    ASSERT_TRUE(r.remove(old_id).has_value());
    EXPECT_FALSE(r.on_finish(old, true, 1ms)); // stale: ignored
    auto again = r.add(make_backend(old_id));
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->slot, old.slot); // the slot is reused, the ref is not
    EXPECT_EQ(r.find(old), nullptr);
    EXPECT_EQ(r.find(*again)->in_flight, 0U);

    // update moves a backend to another model without losing its counts.
    ASSERT_TRUE(r.on_start(*again));
    sd::backend moved = make_backend(old_id, "mistral");
    ASSERT_TRUE(r.update(moved).has_value());
    EXPECT_EQ(chosen_id(r, text_request("x", "mistral")), old_id);
    EXPECT_EQ(r.find(old_id)->in_flight, 1U);
    EXPECT_EQ(r.update(make_backend("nope")).error(), swarm::errc::not_found);
}

namespace {

// A host policy: prefer backends whose "zone" label matches the session key.
class zone_scorer final : public sd::scorer {
public:
    std::string_view name() const noexcept override { return "zone"; }
    void score(const sd::request_context& ctx, std::span<const sd::backend_state* const> candidates,
               std::span<sd::verdict> verdicts, std::span<double> scores) override {
        for (std::size_t i = 0; i < candidates.size(); ++i) {
            auto it = candidates[i]->info.labels.find("zone");
            const bool match = it != candidates[i]->info.labels.end() && it->second == ctx.request->session_key;
            if (match) scores[i] += 1.0;
            else verdicts[i] = sd::verdict::fallback;
        }
        ++calls;
    }
    void on_routed(const sd::request_context&, std::span<const sd::backend_state* const>, std::size_t) override {
        ++routed;
    }
    int calls = 0;
    int routed = 0;
};

} // namespace

TEST(dispatch_router, a_host_defined_scorer_plugs_in) {
    auto zone = std::make_shared<zone_scorer>();
    auto r = sd::router::create({}, {{zone, 1.0}, {sd::least_outstanding(), 0.01}});
    ASSERT_TRUE(r.has_value());
    for (const auto& [id, z] : std::vector<std::pair<std::string, std::string>>{{"a", "eu"}, {"b", "us"}, {"c", "us"}}) {
        auto b = make_backend(id);
        b.labels["zone"] = z;
        ASSERT_TRUE(r->add(b).has_value());
    }
    auto req = text_request("x");
    req.session_key = "eu";
    auto d = r->route(req);
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(r->find(d->chosen)->info.id, "a");
    ASSERT_EQ(d->fallbacks().size(), 2U); // the other zone, as fallbacks
    EXPECT_EQ(zone->calls, 1);
    EXPECT_EQ(zone->routed, 1);
    r->on_start(d->chosen);
    EXPECT_EQ(chosen_id(*r, req), "a"); // the zone outweighs load
}

TEST(dispatch_router, replicas_with_the_same_backends_make_the_same_choices) {
    auto a = sd::router::create({}, sd::prefix_affinity_pipeline());
    auto b = sd::router::create({}, sd::prefix_affinity_pipeline());
    ASSERT_TRUE(a && b);
    for (int i = 0; i < 16; ++i) ASSERT_TRUE(a->add(make_backend("n" + std::to_string(i))).has_value());
    for (int i = 15; i >= 0; --i) ASSERT_TRUE(b->add(make_backend("n" + std::to_string(i))).has_value());
    for (int i = 0; i < 300; ++i) {
        const std::string p = prompt_of(i % 37, 1536) + prompt_of(1000 + i, 300);
        EXPECT_EQ(chosen_id(*a, text_request(p)), chosen_id(*b, text_request(p))) << i;
    }
}

TEST(dispatch_router, create_rejects_a_bad_pipeline_or_config) {
    EXPECT_EQ(sd::router::create({}, {{nullptr, 1.0}}).error(), swarm::errc::config_invalid_value);
    EXPECT_EQ(sd::router::create({}, {{sd::round_robin(), -1.0}}).error(), swarm::errc::config_invalid_value);
    EXPECT_EQ(sd::router::create({.block_bytes = 0}, {}).error(), swarm::errc::config_invalid_value);
    EXPECT_EQ(sd::router::create({.max_fallbacks = 9}, {}).error(), swarm::errc::config_invalid_value);
    EXPECT_FALSE(sd::session_affinity_options{.load_factor = 0.5}.validate().has_value());
    EXPECT_FALSE(sd::prefix_affinity_options{.blocks_per_backend = 1}.validate().has_value());
}

TEST(dispatch_prefix_index, forgets_the_least_recently_recorded_blocks) {
    swarm::dispatch::detail::prefix_index index(8);
    for (std::uint64_t h = 1; h <= 8; ++h) index.touch(0, h * 2 + 1);
    for (std::uint64_t h = 1; h <= 8; ++h) EXPECT_NE(index.find(h * 2 + 1), nullptr) << h;
    for (std::uint64_t h = 9; h <= 12; ++h) index.touch(0, h * 2 + 1);
    for (std::uint64_t h = 1; h <= 4; ++h) EXPECT_EQ(index.find(h * 2 + 1), nullptr) << h;
    for (std::uint64_t h = 5; h <= 12; ++h) EXPECT_NE(index.find(h * 2 + 1), nullptr) << h;
    EXPECT_EQ(index.size(), 8U);
    // A block touched over and over stays while others churn through.
    for (std::uint64_t h = 100; h < 200; ++h) {
        index.touch(0, 7777);
        index.touch(0, h * 2 + 1);
    }
    EXPECT_NE(index.find(7777), nullptr);
    EXPECT_LE(index.size(), 8U);
    // Another backend's records are its own; forgetting one backend leaves the other's.
    index.touch(1, 7777);
    index.forget(0);
    ASSERT_NE(index.find(7777), nullptr);
    EXPECT_EQ(index.size(), 1U);
    index.forget(1);
    EXPECT_TRUE(index.empty());
}

TEST(dispatch_config, router_and_policy_options_load_from_json) {
    auto cfg = swarm::config::parse<sd::router_config>(R"({"block_bytes": 512, "max_fallbacks": 2})");
    ASSERT_TRUE(cfg.has_value()) << cfg.error().describe();
    EXPECT_EQ(cfg->block_bytes, 512U);
    EXPECT_EQ(cfg->max_fallbacks, 2U);
    auto bad = swarm::config::parse<sd::router_config>(R"({"max_fallbacks": 20})");
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error(), swarm::errc::config_invalid_value);
    auto load = swarm::config::parse<sd::bounded_load_options>(R"({"slack_requests": 4, "slack_fraction": 0.2})");
    ASSERT_TRUE(load.has_value());
    EXPECT_EQ(load->slack_requests, 4.0);
    EXPECT_FALSE(swarm::config::parse<sd::session_affinity_options>(R"({"load_factor": 0.9})").has_value());
    EXPECT_TRUE(swarm::config::parse<sd::prefix_affinity_options>(R"({"blocks_per_backend": 1024})").has_value());
}

TEST(dispatch_prefix_index, stays_consistent_under_random_churn) {
    // Three backends (under the four holders an entry keeps), a log of 32, 200 distinct blocks: every block a
    // backend touched within its last 15 touches must still be found with that backend as a holder, and the
    // table never holds more than the logs can name. Exercises eviction and backward-shift deletion.
    constexpr std::uint32_t capacity = 32;
    constexpr std::size_t window = capacity / 2 - 1;
    swarm::dispatch::detail::prefix_index index(capacity);
    std::array<std::vector<std::uint64_t>, 3> recent;
    std::uint64_t state = 99;
    for (int op = 0; op < 20000; ++op) {
        const std::uint64_t r = swarm::splitmix64(state);
        const auto slot = static_cast<std::uint32_t>(r % 3);
        if ((r >> 8) % 1000 == 0) {
            index.forget(slot);
            recent[slot].clear();
            continue;
        }
        const std::uint64_t h = ((r >> 16) % 200) * 2 + 3;
        index.touch(slot, h);
        recent[slot].push_back(h);
        if (recent[slot].size() > window) recent[slot].erase(recent[slot].begin());
        for (std::uint32_t s = 0; s < 3; ++s) {
            for (const std::uint64_t x : recent[s]) {
                const auto* e = index.find(x);
                ASSERT_NE(e, nullptr) << "op " << op << " slot " << s << " block " << x;
                const bool holds = std::any_of(e->holders.begin(), e->holders.end(),
                                               [&](const auto& hd) { return hd.slot == s; });
                ASSERT_TRUE(holds) << "op " << op << " slot " << s << " block " << x;
            }
        }
        ASSERT_LE(index.size(), 3U * capacity);
    }
}

TEST(dispatch_router, a_zero_weight_stage_still_filters_but_does_not_score) {
    // bounded_load at weight 0 keeps demoting the overloaded backend; least_outstanding at weight 0 would pick
    // the idle backend, and is ignored: round robin decides among the rest.
    auto r = make_router({{sd::bounded_load({.slack_requests = 0.0, .slack_fraction = 0.0}), 0.0},
                          {sd::least_outstanding(), 0.0},
                          {sd::round_robin(), 1.0}},
                         3);
    const auto* busy = r.find("b0");
    ASSERT_NE(busy, nullptr);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(r.on_start({busy->slot, busy->generation}));
    const auto* half = r.find("b1");
    ASSERT_TRUE(r.on_start({half->slot, half->generation}));
    ASSERT_TRUE(r.set_reported_load("b1", 0, 0.0).has_value());
    // b1 has one request and b2 none: with slack 0 both b0 and b1 are demoted, so b2 always wins.
    for (int i = 0; i < 4; ++i) EXPECT_EQ(chosen_id(r, text_request("x")), "b2");
    // With b1 idle again, round robin alternates between b1 and b2 (least_outstanding's zero weight changes
    // nothing), and never picks the overloaded b0.
    ASSERT_TRUE(r.on_finish({half->slot, half->generation}, true, 1ms));
    std::set<std::string> seen;
    for (int i = 0; i < 6; ++i) seen.insert(chosen_id(r, text_request("x")));
    EXPECT_EQ(seen, (std::set<std::string>{"b1", "b2"}));
}

TEST(dispatch_router, health_changes_take_effect_on_the_next_decision) {
    // route() skips the per-candidate health pass while every backend is usable; marking one unhealthy, ejecting
    // one through update(), and restoring them must each show in the very next decision.
    auto r = make_router({{sd::least_outstanding(), 1.0}}, 2, {.max_fallbacks = 1});
    ASSERT_TRUE(r.set_health("b0", false, false).has_value());
    for (int i = 0; i < 3; ++i) EXPECT_EQ(chosen_id(r, text_request("x")), "b1");
    auto b1 = make_backend("b1");
    b1.ejected = true;
    ASSERT_TRUE(r.update(b1).has_value());
    auto d = r.route(text_request("x"));
    ASSERT_FALSE(d.has_value());
    EXPECT_EQ(d.error(), swarm::errc::unreachable);
    ASSERT_TRUE(r.set_health("b0", true, false).has_value());
    EXPECT_EQ(chosen_id(r, text_request("x")), "b0");
    ASSERT_TRUE(r.remove("b1").has_value());
    ASSERT_TRUE(r.add(make_backend("b2")).has_value());
    std::set<std::string> seen;
    for (int i = 0; i < 4; ++i) {
        auto dd = r.route(text_request("x"));
        ASSERT_TRUE(dd.has_value());
        seen.insert(r.find(dd->chosen)->info.id);
        EXPECT_EQ(dd->fallbacks().size(), 1U) << "both backends usable again: one fallback";
        r.on_start(dd->chosen);
    }
    EXPECT_EQ(seen, (std::set<std::string>{"b0", "b2"}));
}

TEST(dispatch_router, load_counts_follow_a_backend_across_models_and_set_changes) {
    // The router mirrors each backend's load into a dense array per model; a backend serving two models, a
    // reported queue set through update(), and candidates shifting position on add/remove must all show.
    auto r = sd::router::create({}, {{sd::least_outstanding(), 1.0}});
    ASSERT_TRUE(r.has_value());
    auto both = make_backend("both");
    both.models = {"a", "b"};
    ASSERT_TRUE(r->add(both).has_value());
    ASSERT_TRUE(r->add(make_backend("only-b", "b")).has_value());
    // Two requests for model a land on "both" (its only backend): model b must now prefer "only-b".
    for (int i = 0; i < 2; ++i) {
        auto d = r->route(text_request("x", "a"));
        ASSERT_TRUE(d.has_value());
        r->on_start(d->chosen);
    }
    EXPECT_EQ(chosen_id(*r, text_request("x", "b")), "only-b");
    // A reported queue of 5 on "only-b" (through update) makes "both" (2 in flight) the lighter one.
    auto ob = make_backend("only-b", "b");
    ob.queued = 5;
    ASSERT_TRUE(r->update(ob).has_value());
    EXPECT_EQ(chosen_id(*r, text_request("x", "b")), "both");
    // New backends shift positions; the loads stay with their backends.
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(r->add(make_backend("n" + std::to_string(i), "b")).has_value());
    for (int i = 0; i < 6; ++i) {
        auto d = r->route(text_request("x", "b"));
        ASSERT_TRUE(d.has_value());
        const std::string id = r->find(d->chosen)->info.id;
        EXPECT_EQ(id.front(), 'n') << "an idle new backend beats the loaded ones, got " << id;
        r->on_start(d->chosen);
    }
    ASSERT_TRUE(r->remove("n0").has_value());
    ASSERT_TRUE(r->set_reported_load("only-b", 0, 0.0).has_value());
    // Every n* has one request, "both" two, "only-b" none now.
    EXPECT_EQ(chosen_id(*r, text_request("x", "b")), "only-b");
}

TEST(dispatch_router, session_affinity_without_a_session_hashes_the_prompt_opening) {
    auto r = make_router({{sd::session_affinity(), 1.0}}, 8);
    std::set<std::string> used;
    for (int p = 0; p < 40; ++p) {
        const std::string prompt = prompt_of(static_cast<std::uint64_t>(p), 600);
        const std::string first = chosen_id(r, text_request(prompt));
        used.insert(first);
        EXPECT_EQ(chosen_id(r, text_request(prompt)), first) << p; // nothing outstanding: the same one again
    }
    EXPECT_GE(used.size(), 5u); // distinct openings spread instead of all tying on one backend
}
