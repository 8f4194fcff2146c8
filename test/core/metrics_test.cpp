#include <swarm/core/metrics.hpp>

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <iomanip>
#include <locale>
#include <map>
#include <sstream>
#include <thread>

namespace {

using namespace std::chrono_literals;
namespace metrics = swarm::metrics;

// Fills a registry the same way for the exact-text, locale and parse-back tests.
void populate(metrics::registry& r) {
    auto refused = r.add_counter_family("swarm_membership_packets_refused_total",
                                        "Packets dropped before processing.", {"reason"})
                       .value();
    refused->labels({"wrong_key"}).inc(1234567);
    refused->labels({"replayed"}).inc();
    auto members = r.add_gauge("swarm_membership_members", "Live members in the local view.\nIncludes self; path C:\\swarm.")
                       .value();
    members->set(1234567.5);
    auto latency = r.add_histogram_family("swarm_dispatch_request_duration_seconds", "Request latency.",
                                          {0.25, 1, 2.5}, {"backend"})
                       .value();
    auto& h = latency->labels({"a\"b\\c\nd"});
    h.observe(0.25);
    h.observe(0.5);
    h.observe(4.0);
    (void)r.add_gauge_family("swarm_placement_queue_depth_items", "", {"queue"}).value();
}

constexpr std::string_view expected_text =
    R"(# HELP swarm_dispatch_request_duration_seconds Request latency.
# TYPE swarm_dispatch_request_duration_seconds histogram
swarm_dispatch_request_duration_seconds_bucket{backend="a\"b\\c\nd",le="0.25"} 1
swarm_dispatch_request_duration_seconds_bucket{backend="a\"b\\c\nd",le="1"} 2
swarm_dispatch_request_duration_seconds_bucket{backend="a\"b\\c\nd",le="2.5"} 2
swarm_dispatch_request_duration_seconds_bucket{backend="a\"b\\c\nd",le="+Inf"} 3
swarm_dispatch_request_duration_seconds_sum{backend="a\"b\\c\nd"} 4.75
swarm_dispatch_request_duration_seconds_count{backend="a\"b\\c\nd"} 3
# HELP swarm_membership_members Live members in the local view.\nIncludes self; path C:\\swarm.
# TYPE swarm_membership_members gauge
swarm_membership_members 1234567.5
# HELP swarm_membership_packets_refused_total Packets dropped before processing.
# TYPE swarm_membership_packets_refused_total counter
swarm_membership_packets_refused_total{reason="replayed"} 1
swarm_membership_packets_refused_total{reason="wrong_key"} 1234567
# HELP swarm_placement_queue_depth_items
# TYPE swarm_placement_queue_depth_items gauge
)";

TEST(metrics, renders_the_prometheus_text_format_exactly) {
    metrics::registry r;
    populate(r);
    EXPECT_EQ(r.render(), expected_text);
}

struct comma_decimal : std::numpunct<char> {
    char do_decimal_point() const override { return ','; }
    char do_thousands_sep() const override { return '.'; }
    std::string do_grouping() const override { return "\3"; }
};

TEST(metrics, rendering_ignores_the_global_locale) {
    metrics::registry r;
    populate(r);
    auto previous = std::locale::global(std::locale(std::locale::classic(), new comma_decimal));
    // The locale is really in force: a stream built now writes 1.234.567,5.
    std::ostringstream probe;
    probe << std::fixed << std::setprecision(1) << 1234567.5;
    auto text = r.render();
    std::locale::global(previous);
    EXPECT_EQ(probe.str(), "1.234.567,5");
    EXPECT_EQ(text, expected_text);
}

struct sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

// A strict reader of the text format: every line is a HELP, a TYPE or a sample; label values unescaped.
std::vector<sample> parse_exposition(std::string_view text, std::map<std::string, std::string>& types) {
    std::vector<sample> samples;
    while (!text.empty()) {
        auto end = text.find('\n');
        EXPECT_NE(end, std::string_view::npos) << "the last line must end with a newline";
        if (end == std::string_view::npos) break;
        auto line = text.substr(0, end);
        text.remove_prefix(end + 1);
        if (line.starts_with("# HELP ")) continue;
        if (line.starts_with("# TYPE ")) {
            auto rest = line.substr(7);
            auto space = rest.find(' ');
            types[std::string(rest.substr(0, space))] = std::string(rest.substr(space + 1));
            continue;
        }
        sample s;
        std::size_t i = 0;
        while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
        s.name = std::string(line.substr(0, i));
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (line.at(i) != '}') {
                auto eq = line.find('=', i);
                std::string key(line.substr(i, eq - i));
                i = eq + 1;
                EXPECT_EQ(line.at(i), '"');
                ++i;
                std::string value;
                while (line.at(i) != '"') {
                    if (line[i] == '\\') {
                        ++i;
                        value += line.at(i) == 'n' ? '\n' : line[i];
                    } else {
                        value += line[i];
                    }
                    ++i;
                }
                ++i;
                s.labels[key] = value;
                if (line.at(i) == ',') ++i;
            }
            ++i;
        }
        EXPECT_EQ(line.at(i), ' ') << line;
        auto number = line.substr(i + 1);
        if (number == "+Inf") {
            s.value = INFINITY;
        } else {
            auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), s.value);
            EXPECT_TRUE(ec == std::errc{} && ptr == number.data() + number.size()) << line;
        }
        samples.push_back(std::move(s));
    }
    return samples;
}

TEST(metrics, rendered_text_parses_back_to_the_recorded_values) {
    metrics::registry r;
    populate(r);
    auto busy = r.add_histogram("swarm_core_busy_seconds", "Busy time.", metrics::exponential_buckets(0.001, 10, 4)).value();
    busy->observe(2ms);
    busy->observe(std::numeric_limits<double>::quiet_NaN());
    std::map<std::string, std::string> types;
    auto samples = parse_exposition(r.render(), types);
    ASSERT_EQ(samples.size(), 16u);
    EXPECT_EQ(types.size(), 5u);
    for (const auto& s : samples) {
        // Every sample belongs to a declared family.
        std::string base = s.name;
        for (std::string_view suffix : {"_bucket", "_sum", "_count"})
            if (base.ends_with(suffix) && !types.contains(base)) base.resize(base.size() - suffix.size());
        EXPECT_TRUE(types.contains(base)) << s.name;
    }
    auto find = [&](std::string_view name, std::string_view label, std::string_view value) {
        for (const auto& s : samples)
            if (s.name == name && (label.empty() || s.labels.at(std::string(label)) == value)) return s.value;
        ADD_FAILURE() << "no sample " << name;
        return -1.0;
    };
    EXPECT_EQ(find("swarm_membership_packets_refused_total", "reason", "wrong_key"), 1234567);
    EXPECT_EQ(find("swarm_membership_members", "", ""), 1234567.5);
    EXPECT_EQ(find("swarm_dispatch_request_duration_seconds_sum", "backend", "a\"b\\c\nd"), 4.75);
    EXPECT_EQ(find("swarm_core_busy_seconds_bucket", "le", "0.001"), 0);
    EXPECT_EQ(find("swarm_core_busy_seconds_bucket", "le", "0.01"), 1);
    EXPECT_EQ(find("swarm_core_busy_seconds_bucket", "le", "1"), 1);
    EXPECT_EQ(find("swarm_core_busy_seconds_bucket", "le", "+Inf"), 2);
    EXPECT_EQ(find("swarm_core_busy_seconds_count", "", ""), 2);
    EXPECT_TRUE(std::isnan(find("swarm_core_busy_seconds_sum", "", "")));
}

TEST(metrics, histogram_bounds_are_inclusive_upper_limits) {
    std::vector<double> bounds{1, 2};
    metrics::histogram h(bounds);
    for (double v : {-5.0, 1.0, 1.5, 2.0, 2.0000001, 1e300}) h.observe(v);
    auto s = h.collect();
    EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{2, 4, 6}));
    EXPECT_EQ(s.count, 6u);
    h.observe(1500ms);
    EXPECT_EQ(h.collect().cumulative[1], 5u);
    EXPECT_EQ(metrics::linear_buckets(1, 0.5, 3), (std::vector<double>{1, 1.5, 2}));
    EXPECT_EQ(metrics::exponential_buckets(1, 4, 3), (std::vector<double>{1, 4, 16}));
}

TEST(metrics, gauges_move_both_ways) {
    metrics::gauge g;
    g.inc();
    g.inc(2.5);
    g.dec(0.5);
    EXPECT_EQ(g.value(), 3.0);
    g.set(-1);
    EXPECT_EQ(g.value(), -1.0);
}

TEST(metrics, concurrent_increments_are_all_counted) {
    metrics::registry r;
    auto& c = r.add_counter_family("swarm_test_events_total", "h", {"kind"}).value()->labels({"a"});
    auto* h = r.add_histogram("swarm_test_sizes_bytes", "h", {10}).value();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 20000; ++i) {
                c.inc();
                h->observe(static_cast<double>(i % 20));
            }
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(c.value(), 80000u);
    auto s = h->collect();
    EXPECT_EQ(s.cumulative, (std::vector<std::uint64_t>{44000, 80000}));
    EXPECT_EQ(s.sum, 4.0 * 1000 * 190);
}

TEST(metrics, bad_names_and_buckets_are_refused_with_reasons) {
    metrics::registry r;
    auto bad_name = r.add_counter("9lives_total", "h");
    ASSERT_FALSE(bad_name.has_value());
    EXPECT_EQ(bad_name.error(), swarm::errc::invalid_argument);
    EXPECT_EQ(bad_name.error().message, "metric name '9lives_total' is invalid: names match [a-zA-Z_:][a-zA-Z0-9_:]*");
    EXPECT_FALSE(r.add_gauge("", "h").has_value());
    EXPECT_FALSE(r.add_gauge("swarm-dash", "h").has_value());
    EXPECT_TRUE(r.add_gauge("swarm:recorded_rule", "h").has_value());

    auto bad_label = r.add_counter_family("swarm_x_total", "h", {"ok", "bad-label"});
    ASSERT_FALSE(bad_label.has_value());
    EXPECT_EQ(bad_label.error().message, "label name 'bad-label' of metric 'swarm_x_total' is invalid: label names "
                                         "match [a-zA-Z_][a-zA-Z0-9_]* and do not start with __");
    EXPECT_FALSE(r.add_counter_family("swarm_x_total", "h", {"__reserved"}).has_value());
    EXPECT_FALSE(r.add_counter_family("swarm_x_total", "h", {"a:b"}).has_value());
    EXPECT_EQ(r.add_counter_family("swarm_x_total", "h", {"a", "a"}).error().message,
              "label name 'a' appears twice in metric 'swarm_x_total'");
    EXPECT_EQ(r.add_histogram_family("swarm_h_seconds", "h", {1}, {"le"}).error().message,
              "label name 'le' of histogram 'swarm_h_seconds' is reserved for bucket bounds");
    for (auto bounds : {std::vector<double>{1, 1}, std::vector<double>{2, 1}, std::vector<double>{1, INFINITY},
                        std::vector<double>{NAN}}) {
        auto e = r.add_histogram("swarm_h_seconds", "h", bounds);
        ASSERT_FALSE(e.has_value());
        EXPECT_EQ(e.error().message,
                  "bucket bounds of histogram 'swarm_h_seconds' must be finite and strictly increasing (+Inf is always added)");
    }
    // Nothing refused was registered.
    EXPECT_EQ(r.render(), "# HELP swarm:recorded_rule h\n# TYPE swarm:recorded_rule gauge\nswarm:recorded_rule 0\n");
}

TEST(metrics, registering_twice_returns_the_same_metric_or_a_conflict) {
    metrics::registry r;
    auto first = r.add_counter("swarm_a_total", "help").value();
    auto again = r.add_counter("swarm_a_total", "help");
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(*again, first);
    for (auto conflict : {r.add_counter("swarm_a_total", "other help").error(),
                          r.add_gauge("swarm_a_total", "help").error(),
                          r.add_counter_family("swarm_a_total", "help", {"l"}).error()}) {
        EXPECT_EQ(conflict, swarm::errc::already_exists);
        EXPECT_EQ(conflict.message,
                  "metric 'swarm_a_total' is already registered with a different type, help, labels or buckets");
    }
    auto h = r.add_histogram("swarm_b_seconds", "h", {1, 2}).value();
    EXPECT_EQ(r.add_histogram("swarm_b_seconds", "h", {1, 2}).value(), h);
    EXPECT_EQ(r.add_histogram("swarm_b_seconds", "h", {1, 3}).error(), swarm::errc::already_exists);
    // Pointers survive moving the registry.
    first->inc(7);
    metrics::registry moved = std::move(r);
    EXPECT_EQ(moved.add_counter("swarm_a_total", "help").value()->value(), 7u);
}

} // namespace
