// Prefix affinity records the first exact_blocks blocks of a prompt one by one and one block in `stride`
// beyond them: long shared prefixes still win, and stride 1 keeps block precision.
#include "support/random_text.hpp"

#include <swarm/core/config.hpp>
#include <swarm/dispatch/router.hpp>
#include <swarm/dispatch/scorers.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sd = swarm::dispatch;

namespace {

constexpr std::size_t block = 256; // router_config's default block_bytes

// `blocks` blocks of text from `seed`: equal seeds give equal text.
std::string text_of(std::uint64_t seed, std::size_t blocks) { return swarm_test::random_letters(seed, blocks * block); }

struct two_backends {
    sd::router r;

    explicit two_backends(sd::prefix_affinity_options o)
        : r(std::move(*sd::router::create({}, {{sd::prefix_affinity(o), 1.0}}))) {
        for (const char* id : {"x", "y"}) {
            sd::backend b;
            b.id = id;
            b.models = {"m"};
            b.endpoint = "127.0.0.1:1";
            EXPECT_TRUE(r.add(std::move(b)));
        }
    }

    std::string route(const std::string& prompt) {
        sd::request_view v;
        v.model = "m";
        v.prompt = std::as_bytes(std::span{prompt.data(), prompt.size()});
        auto d = r.route(v);
        EXPECT_TRUE(d) << d.error().describe();
        return d ? r.find(d->chosen)->info.id : std::string{};
    }

    // Routes `prompt` to `id` by taking the other backend out for the call.
    void record_on(const std::string& id, const std::string& prompt) {
        const std::string other = id == "x" ? "y" : "x";
        ASSERT_TRUE(r.set_health(other, false, false));
        ASSERT_EQ(route(prompt), id);
        ASSERT_TRUE(r.set_health(other, true, false));
    }
};

} // namespace

TEST(dispatch_prefix_sampling, a_longer_shared_prefix_beyond_the_exact_blocks_still_wins) {
    for (std::uint32_t stride : {1U, 4U, 8U}) {
        two_backends t({.blocks_per_backend = 8192, .exact_blocks = 16, .stride = stride});
        const std::string shared = text_of(1, 48);
        t.record_on("y", shared.substr(0, 20 * block) + text_of(2, 8)); // y: the first 20 blocks
        t.record_on("x", shared + text_of(3, 16));                      // x: the first 48 and more
        // A prompt sharing 40 blocks: x holds at least the first 39 of the recorded positions, y 20 at most.
        for (int i = 0; i < 3; ++i) EXPECT_EQ(t.route(shared.substr(0, 40 * block) + text_of(10 + i, 30)), "x") << stride;
    }
}

TEST(dispatch_prefix_sampling, stride_one_tells_apart_prefixes_a_block_apart) {
    two_backends t({.blocks_per_backend = 8192, .exact_blocks = 16, .stride = 1});
    const std::string shared = text_of(4, 40);
    t.record_on("x", shared.substr(0, 21 * block) + text_of(5, 4));
    t.record_on("y", shared.substr(0, 22 * block) + text_of(6, 4));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(t.route(shared.substr(0, 30 * block) + text_of(20 + i, 2)), "y");
}

TEST(dispatch_prefix_sampling, short_prompts_are_recorded_block_by_block) {
    // Within exact_blocks every block counts, whatever the stride.
    two_backends t({.blocks_per_backend = 8192, .exact_blocks = 16, .stride = 64});
    const std::string shared = text_of(7, 16);
    t.record_on("x", shared.substr(0, 5 * block) + text_of(8, 2));
    t.record_on("y", shared.substr(0, 6 * block) + text_of(9, 2));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(t.route(shared.substr(0, 12 * block) + text_of(30 + i, 1)), "y");
}

TEST(dispatch_prefix_sampling, bad_options_are_refused) {
    EXPECT_FALSE((sd::prefix_affinity_options{.blocks_per_backend = 8192, .exact_blocks = 0, .stride = 4}.validate()));
    EXPECT_FALSE((sd::prefix_affinity_options{.blocks_per_backend = 8192, .exact_blocks = 16, .stride = 0}.validate()));
    auto parsed = swarm::config::parse<sd::prefix_affinity_options>(R"({"exact_blocks": 8, "stride": 2})");
    ASSERT_TRUE(parsed) << parsed.error().describe();
    EXPECT_EQ(parsed->exact_blocks, 8u);
    EXPECT_EQ(parsed->stride, 2u);
    auto bad = swarm::config::parse<sd::prefix_affinity_options>(R"({"stride": 0})");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("stride"), std::string::npos) << bad.error().message;
}
