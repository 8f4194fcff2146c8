// Cost of loading a node-sized configuration: parse, validate, and write it back.
#include <swarm/core/config.hpp>

#include <benchmark/benchmark.h>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include <array>
#include <chrono>

namespace {

using namespace std::chrono_literals;
namespace config = swarm::config;

enum class mode { fast, safe };
constexpr std::array<config::enum_name<mode>, 2> describe_enum(mode) { return {{{mode::fast, "fast"}, {mode::safe, "safe"}}}; }

struct peer_config {
    swarm::net::endpoint address;
    std::map<std::string, std::string> labels;
    std::optional<swarm::duration> timeout;
    template <class F>
    void describe(F& f) {
        f("address", address, config::required);
        f("labels", labels);
        f("timeout", timeout);
    }
};

struct bench_config {
    std::string name;
    swarm::duration probe_interval = 1s;
    std::uint32_t fanout = 3;
    mode transfer = mode::safe;
    std::vector<peer_config> peers;
    template <class F>
    void describe(F& f) {
        f("name", name);
        f("probe_interval", probe_interval);
        f("fanout", fanout);
        f("transfer", transfer);
        f("peers", peers);
    }
    swarm::detailed_result<void> validate() const { return {}; }
};

std::string make_text(int peers) {
    bench_config c;
    c.name = "bench";
    for (int i = 0; i < peers; ++i) {
        peer_config p;
        p.address = swarm::net::endpoint::v4(0x0a000000u + static_cast<std::uint32_t>(i), 7946);
        // fmt rather than "r" + std::to_string(i), which trips GCC 12's -Wrestrict false positive at -O3.
        p.labels = {{"zone", fmt::format("eu-{}", i % 3)}, {"rack", fmt::format("r{}", i)}};
        p.timeout = 1500ms;
        c.peers.push_back(p);
    }
    return boost::json::serialize(config::to_json(c));
}

void parse_config(benchmark::State& state) {
    auto text = make_text(static_cast<int>(state.range(0)));
    for (auto _ : state) {
        auto r = config::parse<bench_config>(text);
        benchmark::DoNotOptimize(r);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(text.size() * state.iterations()));
}
BENCHMARK(parse_config)->Arg(10)->Arg(1000);

void write_config(benchmark::State& state) {
    auto c = config::parse<bench_config>(make_text(static_cast<int>(state.range(0)))).value();
    for (auto _ : state) {
        auto json = config::to_json(c);
        benchmark::DoNotOptimize(json);
    }
}
BENCHMARK(write_config)->Arg(10)->Arg(1000);

} // namespace

BENCHMARK_MAIN();
