// Hot-path cost of metrics (the increments protocol code pays per packet) and of rendering a scrape.
#include <swarm/core/metrics.hpp>

#include <benchmark/benchmark.h>

#include <string>

namespace {

namespace metrics = swarm::metrics;

metrics::registry& shared_registry() {
    static metrics::registry r;
    return r;
}

void counter_inc(benchmark::State& state) {
    static auto& c = *shared_registry().add_counter("swarm_bench_events_total", "h").value();
    for (auto _ : state) c.inc();
    benchmark::DoNotOptimize(c.value());
}
BENCHMARK(counter_inc)->Threads(1)->Threads(2);

void gauge_inc(benchmark::State& state) {
    static auto& g = *shared_registry().add_gauge("swarm_bench_level", "h").value();
    for (auto _ : state) g.inc();
    benchmark::DoNotOptimize(g.value());
}
BENCHMARK(gauge_inc)->Threads(1)->Threads(2);

void histogram_observe(benchmark::State& state) {
    static auto& h = *shared_registry()
                          .add_histogram("swarm_bench_latency_seconds", "h", metrics::exponential_buckets(1e-5, 2, 20))
                          .value();
    double v = 1e-6;
    for (auto _ : state) {
        h.observe(v);
        v = v < 10 ? v * 1.7 : 1e-6;
    }
}
BENCHMARK(histogram_observe)->Threads(1)->Threads(2);

void labelled_lookup(benchmark::State& state) {
    static auto* f = shared_registry().add_counter_family("swarm_bench_refused_total", "h", {"reason"}).value();
    for (auto _ : state) f->labels({"wrong_key"}).inc();
}
BENCHMARK(labelled_lookup);

// A registry the size of a busy node: 50 families, 10 children each, a third of them histograms.
void render(benchmark::State& state) {
    metrics::registry r;
    for (int i = 0; i < 50; ++i) {
        auto name = "swarm_component_metric_" + std::to_string(i);
        for (int j = 0; j < 10; ++j) {
            std::string value = "value_" + std::to_string(j);
            if (i % 3 == 0)
                r.add_histogram_family(name + "_seconds", "help", metrics::exponential_buckets(1e-4, 4, 10), {"peer"})
                    .value()
                    ->labels({value})
                    .observe(0.01 * j);
            else
                r.add_counter_family(name + "_total", "help", {"peer"}).value()->labels({value}).inc(12345u * j);
        }
    }
    std::size_t bytes = 0;
    for (auto _ : state) {
        auto text = r.render();
        bytes = text.size();
        benchmark::DoNotOptimize(text.data());
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(bytes * state.iterations()));
    state.counters["text_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(render);

} // namespace

BENCHMARK_MAIN();
