#include <swarm/core/config.hpp>

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

using namespace std::chrono_literals;
namespace config = swarm::config;

enum class transfer_mode { fast, safe };

constexpr std::array<config::enum_name<transfer_mode>, 2> describe_enum(transfer_mode) {
    return {{{transfer_mode::fast, "fast"}, {transfer_mode::safe, "safe"}}};
}

struct membership_config {
    swarm::duration probe_interval = 1s;
    std::uint16_t suspicion_multiplier = 4;
    std::vector<swarm::net::endpoint> seeds;

    template <class F>
    void describe(F& f) {
        f("probe_interval", probe_interval);
        f("suspicion_multiplier", suspicion_multiplier);
        f("seeds", seeds);
    }
    swarm::detailed_result<void> validate() const {
        if (probe_interval <= swarm::duration::zero())
            return swarm::error{swarm::errc::config_invalid_value, "probe_interval must be positive"};
        return {};
    }
};

struct storage_config {
    std::string directory = "/var/lib/swarm";
    transfer_mode mode = transfer_mode::safe;
    std::optional<std::uint64_t> quota_bytes;

    template <class F>
    void describe(F& f) {
        f("directory", directory, config::required);
        f("mode", mode);
        f("quota_bytes", quota_bytes);
    }
};

// The worked example: nested structs, a vector, a map, an optional, an enum, durations and endpoints.
struct node_config {
    std::string name = "node";
    std::filesystem::path key_file = "node.key";
    bool verbose = false;
    double cpu_share = 0.5;
    std::int8_t priority = 0;
    swarm::net::endpoint bind = swarm::net::endpoint::v4(0x7f000001, 7946);
    std::map<std::string, std::string> labels;
    std::optional<swarm::duration> shutdown_grace;
    membership_config membership;
    std::optional<storage_config> storage;
    std::vector<storage_config> extra_stores;

    template <class F>
    void describe(F& f) {
        f("name", name);
        f("key_file", key_file);
        f("verbose", verbose);
        f("cpu_share", cpu_share);
        f("priority", priority);
        f("bind", bind);
        f("labels", labels);
        f("shutdown_grace", shutdown_grace);
        f("membership", membership);
        f("storage", storage);
        f("extra_stores", extra_stores);
    }
    swarm::detailed_result<void> validate() const {
        if (cpu_share < 0 || cpu_share > 1)
            return swarm::error{swarm::errc::config_invalid_value, "cpu_share must be between 0 and 1"};
        return {};
    }
};

constexpr std::string_view full_example = R"({
  "name": "gpu-7",
  "key_file": "/etc/swarm/gpu-7.key",
  "verbose": true,
  "cpu_share": 0.25,
  "priority": -3,
  "bind": "[::1]:7000",
  "labels": {"zone": "eu-1", "rack": "r12"},
  "shutdown_grace": "1.5s",
  "membership": {
    "probe_interval": "250ms",
    "suspicion_multiplier": 6,
    "seeds": ["127.0.0.1:7946", "[::1]:7947"]
  },
  "storage": {"directory": "/data", "mode": "fast", "quota_bytes": 1099511627776},
  "extra_stores": [{"directory": "/a"}, {"directory": "/b", "quota_bytes": null}]
})";

swarm::error parse_error(std::string_view text) {
    auto r = config::parse<node_config>(text);
    EXPECT_FALSE(r.has_value()) << text;
    return r.has_value() ? swarm::error{} : r.error();
}

TEST(config, reads_every_field_kind_of_the_worked_example) {
    auto r = config::parse<node_config>(full_example);
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    const auto& c = *r;
    EXPECT_EQ(c.name, "gpu-7");
    EXPECT_EQ(c.key_file, std::filesystem::path("/etc/swarm/gpu-7.key"));
    EXPECT_TRUE(c.verbose);
    EXPECT_EQ(c.cpu_share, 0.25);
    EXPECT_EQ(c.priority, -3);
    EXPECT_EQ(c.bind.to_string(), "[::1]:7000");
    EXPECT_EQ(c.labels, (std::map<std::string, std::string>{{"rack", "r12"}, {"zone", "eu-1"}}));
    EXPECT_EQ(c.shutdown_grace, std::optional<swarm::duration>(1500ms));
    EXPECT_EQ(c.membership.probe_interval, 250ms);
    EXPECT_EQ(c.membership.suspicion_multiplier, 6);
    ASSERT_EQ(c.membership.seeds.size(), 2u);
    EXPECT_EQ(c.membership.seeds[1].to_string(), "[::1]:7947");
    ASSERT_TRUE(c.storage.has_value());
    EXPECT_EQ(c.storage->mode, transfer_mode::fast);
    EXPECT_EQ(c.storage->quota_bytes, std::optional<std::uint64_t>(1ULL << 40));
    ASSERT_EQ(c.extra_stores.size(), 2u);
    EXPECT_EQ(c.extra_stores[0].directory, "/a");
    EXPECT_EQ(c.extra_stores[0].mode, transfer_mode::safe); // default kept inside a vector element
    EXPECT_FALSE(c.extra_stores[1].quota_bytes.has_value());
}

TEST(config, missing_keys_keep_defaults) {
    auto r = config::parse<node_config>(R"({"membership": {"seeds": []}})");
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(r->name, "node");
    EXPECT_EQ(r->membership.probe_interval, 1s);
    EXPECT_EQ(r->membership.suspicion_multiplier, 4);
    EXPECT_EQ(r->bind.to_string(), "127.0.0.1:7946");
    EXPECT_FALSE(r->storage.has_value());
    EXPECT_TRUE(config::parse<node_config>("{}").has_value());
}

TEST(config, round_trips_through_json_text_and_back) {
    auto first = config::parse<node_config>(full_example);
    ASSERT_TRUE(first.has_value());
    auto json = config::to_json(*first);
    auto second = config::from_json<node_config>(json);
    ASSERT_TRUE(second.has_value()) << second.error().describe();
    EXPECT_EQ(config::to_json(*second), json);
    EXPECT_EQ(json.at("shutdown_grace"), "1500ms");
    EXPECT_EQ(json.at("key_file"), "/etc/swarm/gpu-7.key");
    EXPECT_EQ(json.at("membership").at("seeds").at(0), "127.0.0.1:7946");
    EXPECT_EQ(json.at("storage").at("mode"), "fast");
    EXPECT_TRUE(json.at("extra_stores").at(1).at("quota_bytes").is_null());
    // Defaults round-trip too, with every key present in the written shape.
    auto defaults = config::to_json(node_config{});
    EXPECT_TRUE(defaults.at("storage").is_null());
    EXPECT_EQ(defaults.at("membership").at("probe_interval"), "1s");
    EXPECT_TRUE(config::from_json<node_config>(defaults).has_value());
}

TEST(config, wrong_type_names_the_full_path_and_what_was_expected) {
    auto e = parse_error(R"({"membership": {"probe_interval": 500}})");
    EXPECT_EQ(e, swarm::errc::config_wrong_type);
    EXPECT_EQ(e.message, R"(membership.probe_interval: expected a duration such as "500ms", got number 500)");

    e = parse_error(R"({"verbose": "yes"})");
    EXPECT_EQ(e.message, R"(verbose: expected true or false, got string "yes")");
    e = parse_error(R"({"membership": {"seeds": "127.0.0.1:1"}})");
    EXPECT_EQ(e.message, R"(membership.seeds: expected an array, got string "127.0.0.1:1")");
    e = parse_error(R"({"labels": {"zone": 3}})");
    EXPECT_EQ(e.message, R"(labels.zone: expected a string, got number 3)");
    e = parse_error(R"({"storage": {"directory": "/d", "mode": 1}})");
    EXPECT_EQ(e.message, R"(storage.mode: expected one of "fast", "safe", got number 1)");
    e = parse_error("[1, 2]");
    EXPECT_EQ(e, swarm::errc::config_wrong_type);
    EXPECT_EQ(e.message, "top level: expected an object, got an array");
}

TEST(config, integers_are_range_checked_for_their_width) {
    auto e = parse_error(R"({"membership": {"suspicion_multiplier": 70000}})");
    EXPECT_EQ(e, swarm::errc::config_invalid_value);
    EXPECT_EQ(e.message, "membership.suspicion_multiplier: expected an integer from 0 to 65535, got number 70000");
    EXPECT_EQ(parse_error(R"({"membership": {"suspicion_multiplier": -1}})"), swarm::errc::config_invalid_value);
    EXPECT_EQ(parse_error(R"({"priority": 128})").message, "priority: expected an integer from -128 to 127, got number 128");
    EXPECT_EQ(parse_error(R"({"priority": 1.5})"), swarm::errc::config_invalid_value);
    EXPECT_EQ(parse_error(R"({"priority": "1"})"), swarm::errc::config_wrong_type);
    EXPECT_EQ(parse_error(R"({"storage": {"directory": "/d", "quota_bytes": 18446744073709551616}})"),
              swarm::errc::config_invalid_value);
    auto r = config::parse<node_config>(R"({"priority": -128, "storage": {"directory": "/d", "quota_bytes": 18446744073709551615}})");
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(r->priority, -128);
    EXPECT_EQ(r->storage->quota_bytes, std::optional<std::uint64_t>(18446744073709551615ULL));
    // A whole number written as 1e2 is still an integer.
    r = config::parse<node_config>(R"({"priority": 1e2})");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->priority, 100);
}

TEST(config, unknown_keys_are_errors_with_a_suggestion) {
    auto e = parse_error(R"({"membership": {"probe_intervl": "1s"}})");
    EXPECT_EQ(e, swarm::errc::config_unknown_key);
    EXPECT_EQ(e.message, "unknown key 'membership.probe_intervl', did you mean 'probe_interval'?");
    e = parse_error(R"({"extra_stores": [{"directory": "/a"}, {"directory": "/b", "colour": "red"}]})");
    EXPECT_EQ(e.message, "unknown key 'extra_stores[1].colour'");
    // Reported before the required key that the typo left missing.
    e = parse_error(R"({"storage": {"directry": "/d"}})");
    EXPECT_EQ(e.message, "unknown key 'storage.directry', did you mean 'directory'?");
}

TEST(config, required_keys_must_be_present) {
    auto e = parse_error(R"({"storage": {"mode": "safe"}})");
    EXPECT_EQ(e, swarm::errc::config_missing_key);
    EXPECT_EQ(e.message, "missing required key 'storage.directory'");
    EXPECT_EQ(parse_error(R"({"extra_stores": [{}]})").message, "missing required key 'extra_stores[0].directory'");
}

TEST(config, invalid_values_say_what_is_accepted) {
    auto e = parse_error(R"({"membership": {"probe_interval": "5 parsecs"}})");
    EXPECT_EQ(e, swarm::errc::config_invalid_value);
    EXPECT_EQ(e.message, R"(membership.probe_interval: expected a duration such as "500ms", "1.5s" or "2m" (units ns, us, ms, s, m, h), got string "5 parsecs")");
    e = parse_error(R"({"bind": "localhost:80"})");
    EXPECT_EQ(e, swarm::errc::config_invalid_value);
    EXPECT_EQ(e.message, R"(bind: expected an endpoint such as "127.0.0.1:7946" or "[::1]:7946", got string "localhost:80")");
    e = parse_error(R"({"storage": {"directory": "/d", "mode": "reckless"}})");
    EXPECT_EQ(e.message, R"(storage.mode: expected one of "fast", "safe", got string "reckless")");
    e = parse_error(R"({"labels": {"a.b": 1}})");
    EXPECT_EQ(e.message, R"(labels["a.b"]: expected a string, got number 1)");
}

TEST(config, validate_runs_on_nested_and_top_level_structs) {
    auto e = parse_error(R"({"membership": {"probe_interval": "-1s"}})");
    EXPECT_EQ(e, swarm::errc::config_invalid_value);
    EXPECT_EQ(e.message, "membership: probe_interval must be positive");
    e = parse_error(R"({"cpu_share": 2})");
    EXPECT_EQ(e.message, "cpu_share must be between 0 and 1");
}

TEST(config, malformed_json_reports_line_and_column) {
    auto e = parse_error("{\n  \"name\": \"x\",\n  \"verbose\": tru\n}");
    EXPECT_EQ(e, swarm::errc::malformed);
    EXPECT_TRUE(e.message.starts_with("malformed JSON at line 3, column 14: ")) << e.message;
    e = parse_error("{\"name\": \"x\"");
    EXPECT_EQ(e, swarm::errc::malformed);
    EXPECT_TRUE(e.message.starts_with("malformed JSON at line 1, column 13: ")) << e.message;
    e = parse_error("{\n  \"membership\": {\"seeds\": [], \"seeds\": []}\n}");
    EXPECT_EQ(e, swarm::errc::malformed);
    EXPECT_EQ(e.message, "duplicate key 'membership.seeds' at line 2, column 37");
    e = parse_error(R"({"extra_stores": [{"directory": "/a"}, {"directory": "/b", "directory": "/c"}]})");
    EXPECT_EQ(e.message, "duplicate key 'extra_stores[1].directory' at line 1, column 70");
    e = parse_error("{} {}");
    EXPECT_EQ(e, swarm::errc::malformed);
    EXPECT_EQ(parse_error(""), swarm::errc::malformed);
}

TEST(config, durations_parse_and_format_exactly) {
    struct sample {
        std::string_view text;
        swarm::duration value;
    };
    for (auto [text, value] : {sample{"250ms", 250ms}, sample{"1.5s", 1500ms}, sample{"2m", 2min},
                               sample{"1h", 1h}, sample{"10us", 10us}, sample{"5ns", 5ns}, sample{"0", 0s},
                               sample{"1m30s", 90s}, sample{".5s", 500ms}, sample{"-2s", -2s},
                               sample{"0.000000001s", 1ns}, sample{"9223372036854775807ns", swarm::duration::max()}}) {
        auto parsed = config::parse_duration(text);
        ASSERT_TRUE(parsed.has_value()) << text;
        EXPECT_EQ(*parsed, value) << text;
        EXPECT_EQ(config::parse_duration(config::format_duration(value)).value(), value) << text;
    }
    for (auto text : {"", "5", "s", "1.s5", "5 s", "5sec", "1d", "--1s", "9223372036854775808ns", "99999999999h", "1.2.3s"})
        EXPECT_FALSE(config::parse_duration(text).has_value()) << text;
    EXPECT_EQ(config::format_duration(1500ms), "1500ms");
    EXPECT_EQ(config::format_duration(120s), "2m");
    EXPECT_EQ(config::format_duration(-3h), "-3h");
    EXPECT_EQ(config::format_duration(swarm::duration::min()), "-9223372036854775808ns");
}

class config_file : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("swarm_config_test_" + std::to_string(::getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }
    std::filesystem::path dir_;
};

TEST_F(config_file, save_then_load_gives_the_same_config) {
    auto original = config::parse<node_config>(full_example).value();
    auto path = dir_ / "node.json";
    ASSERT_TRUE(config::save_file(path, original).has_value());
    auto loaded = config::load_file<node_config>(path);
    ASSERT_TRUE(loaded.has_value()) << loaded.error().describe();
    EXPECT_EQ(config::to_json(*loaded), config::to_json(original));
    // Indented for people, and no temporary file left behind.
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_NE(text.str().find("\n  \"membership\": {\n    \"probe_interval\": \"250ms\""), std::string::npos) << text.str();
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), std::filesystem::directory_iterator()), 1);
}

TEST_F(config_file, replacing_keeps_the_existing_file_mode) {
    auto path = dir_ / "node.json";
    ASSERT_TRUE(config::save_file(path, node_config{}).has_value());
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    node_config changed;
    changed.name = "changed";
    ASSERT_TRUE(config::save_file(path, changed).has_value());
    EXPECT_EQ(config::load_file<node_config>(path).value().name, "changed");
    EXPECT_EQ(std::filesystem::status(path).permissions(),
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST_F(config_file, load_errors_name_the_file) {
    auto missing = config::load_file<node_config>(dir_ / "absent.json");
    ASSERT_FALSE(missing.has_value());
    EXPECT_EQ(missing.error(), swarm::errc::not_found);
    EXPECT_NE(missing.error().message.find("absent.json"), std::string::npos);

    auto not_a_file = config::load_file<node_config>(dir_);
    ASSERT_FALSE(not_a_file.has_value());
    EXPECT_EQ(not_a_file.error(), swarm::errc::io_error);

    auto path = dir_ / "bad.json";
    std::ofstream(path) << "{\"membership\": {\"probe_interval\": 500}}";
    auto bad = config::load_file<node_config>(path);
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().message, path.string() + R"(: membership.probe_interval: expected a duration such as "500ms", got number 500)");

    auto unwritable = config::save_file(dir_ / "no" / "such" / "dir.json", node_config{});
    ASSERT_FALSE(unwritable.has_value());
    EXPECT_EQ(unwritable.error(), swarm::errc::io_error);
}

} // namespace
