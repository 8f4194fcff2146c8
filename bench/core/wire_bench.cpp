// Encode and decode of representative messages: a membership gossip with 8 member records and a small ping.
#include "../../fuzz/sample_messages.hpp"

#include <benchmark/benchmark.h>

#include <array>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct gossip_fixture {
    std::vector<std::string> text{"10.0.0.17:7946", "[2001:db8::17]:7946", "zone", "eu-west-1a", "gpu", "h100",
                                  "models", "llama-3-8b,qwen-2-7b"};
    std::array<std::byte, 512> piggyback{};
    sample::gossip message;

    gossip_fixture() {
        message.from_incarnation = 123456;
        for (std::size_t i = 0; i < 8; ++i) {
            sample::member m;
            for (std::size_t j = 0; j < m.id.size(); ++j) m.id[j] = std::byte(static_cast<unsigned char>(i * 31 + j));
            m.address = text[i % 2];
            m.incarnation = 1'000'000 + i * 17;
            m.state = static_cast<sample::member_state>(i % 3);
            m.first_label = message.labels.size();
            m.label_count = 3;
            message.labels.push_back({text[2], text[3]});
            message.labels.push_back({text[4], text[5]});
            message.labels.push_back({text[6], text[7]});
            message.members.push_back(m);
        }
        message.piggyback = std::span{piggyback}.first(64);
    }
};

template <class Message>
std::vector<std::byte> encoded(const Message& m) {
    std::vector<std::byte> out;
    swarm::wire::writer w(out);
    sample::encode(w, m);
    (void)w.finish();
    return out;
}

void wire_encode_gossip8(benchmark::State& state) {
    gossip_fixture f;
    std::vector<std::byte> out;
    out.reserve(2048);
    for (auto _ : state) {
        out.clear();
        swarm::wire::writer w(out);
        sample::encode(w, f.message);
        benchmark::DoNotOptimize(w.finish());
        benchmark::ClobberMemory();
    }
    state.counters["bytes"] = static_cast<double>(out.size());
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * out.size()));
}
BENCHMARK(wire_encode_gossip8);

void wire_encode_gossip8_span(benchmark::State& state) {
    gossip_fixture f;
    std::array<std::byte, 2048> out{};
    std::size_t size = 0;
    for (auto _ : state) {
        swarm::wire::writer w{std::span<std::byte>(out)};
        sample::encode(w, f.message);
        size = w.size();
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}
BENCHMARK(wire_encode_gossip8_span);

void wire_decode_gossip8(benchmark::State& state) {
    gossip_fixture f;
    const auto in = encoded(f.message);
    sample::gossip back;
    for (auto _ : state) {
        auto r = sample::decode(in, back);
        if (!r) std::abort();
        benchmark::DoNotOptimize(back.members.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * in.size()));
}
BENCHMARK(wire_decode_gossip8);

void wire_encode_ping(benchmark::State& state) {
    sample::ping p{987654321, -1500, true};
    std::array<std::byte, 64> out{};
    for (auto _ : state) {
        benchmark::DoNotOptimize(p); // or the whole encoding folds into constants
        swarm::wire::writer w{std::span<std::byte>(out)};
        sample::encode(w, p);
        benchmark::DoNotOptimize(w.size());
        benchmark::ClobberMemory();
    }
}
BENCHMARK(wire_encode_ping);

void wire_decode_ping(benchmark::State& state) {
    const auto in = encoded(sample::ping{987654321, -1500, true});
    sample::ping back;
    for (auto _ : state) {
        benchmark::DoNotOptimize(in.data());
        auto r = sample::decode(in, back);
        if (!r) std::abort();
        benchmark::DoNotOptimize(back);
    }
}
BENCHMARK(wire_decode_ping);

} // namespace
