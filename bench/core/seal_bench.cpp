// Sealing and opening next to raw libsodium XChaCha20-Poly1305 on the same buffers, and the ratio between them.
//
// The raw anchor encrypts with the same key, a 24-byte nonce and 65 bytes of associated data (what seal uses:
// the header plus the label hash), so the ratio is the cost of swarm's framing and bookkeeping: writing and
// parsing the header, the keyring check, and the replay window.
#include <swarm/core/seal.hpp>

#include <benchmark/benchmark.h>
#include <sodium.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

constexpr std::array<std::int64_t, 4> sizes{64, 512, 1400, 64 * 1024};
constexpr std::string_view label = "bench-cluster";

std::array<std::byte, swarm::seal::key_size> bench_key() {
    std::array<std::byte, swarm::seal::key_size> k{};
    for (std::size_t i = 0; i < k.size(); ++i) k[i] = std::byte(static_cast<unsigned char>(0x40 + i));
    return k;
}

swarm::seal::keyring bench_ring() {
    swarm::seal::keyring ring;
    if (!ring.add(bench_key())) std::abort();
    return ring;
}

unsigned char* u(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }
const unsigned char* u(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }

void seal_seal(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    auto ring = bench_ring();
    swarm::seal::sealer sealer(ring, label, 1, 1);
    std::vector<std::byte> plain(size, std::byte{0x61}), out(size + swarm::seal::overhead);
    for (auto _ : state) {
        auto r = sealer.seal(plain, out);
        benchmark::DoNotOptimize(r);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void seal_raw_encrypt(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    const auto key = bench_key();
    std::vector<std::byte> plain(size, std::byte{0x61}), out(size + swarm::seal::overhead);
    std::array<std::byte, 65> ad{};
    std::array<std::byte, 24> nonce{};
    std::uint64_t counter = 0;
    for (auto _ : state) {
        std::memcpy(nonce.data(), &++counter, sizeof counter);
        unsigned long long written = 0;
        crypto_aead_xchacha20poly1305_ietf_encrypt(u(out.data() + 33), &written, u(plain.data()), size, u(ad.data()),
                                                   ad.size(), nullptr, u(nonce.data()), u(key.data()));
        benchmark::DoNotOptimize(written);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void seal_open(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    auto ring = bench_ring();
    swarm::seal::sealer sealer(ring, label, 1, 1);
    // Each sealed message opens once, so a batch is sealed up front and the opener renewed between batches.
    const std::size_t batch = size >= 16 * 1024 ? 64 : 1024;
    std::vector<std::byte> plain(size, std::byte{0x61});
    std::vector<std::vector<std::byte>> sealed;
    for (std::size_t i = 0; i < batch; ++i) sealed.push_back(*sealer.seal(plain));
    std::vector<std::byte> out(size);
    auto opener = std::make_unique<swarm::seal::opener>(ring, label);
    std::size_t next = 0;
    for (auto _ : state) {
        if (next == batch) {
            state.PauseTiming();
            opener = std::make_unique<swarm::seal::opener>(ring, label);
            next = 0;
            state.ResumeTiming();
        }
        auto r = opener->open(sealed[next++], std::span{out});
        if (!r) std::abort();
        benchmark::DoNotOptimize(r);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void seal_raw_decrypt(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    const auto key = bench_key();
    std::vector<std::byte> plain(size, std::byte{0x61}), sealed(size + swarm::seal::tag_size), out(size);
    std::array<std::byte, 65> ad{};
    std::array<std::byte, 24> nonce{};
    unsigned long long written = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(u(sealed.data()), &written, u(plain.data()), size, u(ad.data()),
                                               ad.size(), nullptr, u(nonce.data()), u(key.data()));
    for (auto _ : state) {
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(u(out.data()), &written, nullptr, u(sealed.data()),
                                                       sealed.size(), u(ad.data()), ad.size(), u(nonce.data()),
                                                       u(key.data())) != 0)
            std::abort();
        benchmark::DoNotOptimize(written);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * state.range(0));
}

void register_all() {
    for (auto size : sizes) {
        benchmark::RegisterBenchmark("seal/raw_encrypt", seal_raw_encrypt)->Arg(size);
        benchmark::RegisterBenchmark("seal/seal", seal_seal)->Arg(size);
        benchmark::RegisterBenchmark("seal/raw_decrypt", seal_raw_decrypt)->Arg(size);
        benchmark::RegisterBenchmark("seal/open", seal_open)->Arg(size);
    }
}

/// Prints the usual table, then seal / raw_encrypt and open / raw_decrypt per size, in CPU time: on a
/// shared machine wall time mostly measures the neighbours.
class ratio_reporter : public benchmark::ConsoleReporter {
public:
    void ReportRuns(const std::vector<Run>& runs) override {
        ConsoleReporter::ReportRuns(runs);
        // With --benchmark_repetitions the median stands for the benchmark, otherwise its one run.
        for (const auto& run : runs) {
            if (run.error_occurred) continue;
            const auto name = run.run_name.str();
            if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "median") {
                ns_[name] = run.GetAdjustedCPUTime();
                medians_.insert(name);
            } else if (run.run_type == Run::RT_Iteration && !medians_.contains(name)) {
                ns_[name] = run.GetAdjustedCPUTime();
            }
        }
    }
    void Finalize() override {
        ConsoleReporter::Finalize();
        if (ns_.empty()) return;
        std::printf("\n%-8s %12s %12s %8s %12s %12s %8s\n", "size", "raw enc ns", "seal ns", "ratio", "raw dec ns",
                    "open ns", "ratio");
        for (auto size : sizes) {
            const auto at = [&](const char* name) {
                auto it = ns_.find(std::string(name) + "/" + std::to_string(size));
                return it == ns_.end() ? 0.0 : it->second;
            };
            const double e = at("seal/raw_encrypt"), s = at("seal/seal"), d = at("seal/raw_decrypt"),
                         o = at("seal/open");
            if (e == 0 || d == 0) continue;
            std::printf("%-8lld %12.1f %12.1f %8.3f %12.1f %12.1f %8.3f\n", static_cast<long long>(size), e, s, s / e,
                        d, o, o / d);
        }
    }

private:
    std::map<std::string, double> ns_;
    std::set<std::string> medians_;
};

} // namespace

int main(int argc, char** argv) {
    if (sodium_init() < 0) return 1;
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    ratio_reporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    return 0;
}
