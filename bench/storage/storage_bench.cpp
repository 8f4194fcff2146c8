// The storage data path against its ceiling, one core, one run. Raw primitives first (memcpy, BLAKE2b,
// AEAD, ISA-L encode and decode, chunking, CRC), then swarm put/get/repair of a large object over 14 local
// shard stores on tmpfs and on disk, then many small puts. Every swarm figure is also given as a ratio to
// the ceiling measured above it in the same run:
//   C_put = 1 / (1/T_aead + 1/T_hash + 1/T_encode)     (seal, content-address, erasure-code each byte once)
//   C_get = 1 / (1/T_open + 1/T_decode4)              (decode with 4 shards lost, then open)
//   repair references = ISA-L rebuild of one shard from k plus a check of the k shards read and the one written
//   (R_hash with BLAKE2b, R_crc with CRC-64), per byte rebuilt.
//
// Each put and get runs twice: on one core (object_store_config::pipeline off; CPU time of the thread) and on
// two (pipeline on: the helper thread hashes the next chunk, or fetches and decodes the next stripe). The
// two-core figure is bytes / max(CPU of the calling thread, CPU of the helper), the wall time the pipeline
// takes on two otherwise idle cores (it does not count waiting between the stages); wall time is given too.
//
// Usage: swarm_bench_storage [--size-mib N] [--small N] [--tmpfs DIR] [--disk DIR] [--disk-size-mib N]
#include "storage/chunker.hpp"
#include "storage/crypto.hpp"
#include "storage/erasure.hpp"

#include <swarm/storage/durability.hpp>
#include <swarm/storage/object_store.hpp>

#include <fmt/format.h>
#include <isa-l/crc64.h>
#include <sodium.h>

#include <time.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <streambuf>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace swarm::storage;
using clock_type = std::chrono::steady_clock;

namespace {

// This machine is shared: CPU time of the calling thread (user + kernel, syscalls included) is what one core
// spends, whatever else runs beside it. Disk figures add wall time, which also counts waiting for fsync.
struct stopwatch {
    clock_type::time_point wall = clock_type::now();
    double cpu = thread_cpu();
    double process = process_cpu();

    static double seconds(clockid_t id) {
        timespec ts{};
        clock_gettime(id, &ts);
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
    }
    static double thread_cpu() { return seconds(CLOCK_THREAD_CPUTIME_ID); }
    static double process_cpu() { return seconds(CLOCK_PROCESS_CPUTIME_ID); }
    double cpu_seconds() const { return thread_cpu() - cpu; }
    double wall_seconds() const { return std::chrono::duration<double>(clock_type::now() - wall).count(); }
    // CPU seconds of the two pipeline stages: this thread, and everything else the process spent (the helper).
    struct stages {
        double caller = 0, helper = 0;
        double critical_path() const { return std::max(caller, helper); }
    };
    stages stage_seconds() const {
        const double mine = cpu_seconds();
        return {mine, process_cpu() - process - mine};
    }
};

// Repeats f (which processes `bytes`) for at least 0.5 s; returns GB/s (1e9 bytes per second).
double rate(std::size_t bytes, const std::function<void()>& f) {
    f(); // warm caches and lazily built tables
    std::size_t iterations = 0;
    const stopwatch start;
    double elapsed = 0;
    do {
        f();
        ++iterations;
        elapsed = start.cpu_seconds();
    } while (elapsed < 0.5);
    return static_cast<double>(bytes) * static_cast<double>(iterations) / elapsed / 1e9;
}

void fill_random(std::uint8_t* p, std::size_t n, std::uint64_t seed) {
    for (std::size_t i = 0; i < n; i += 8) {
        seed += 0x9e3779b97f4a7c15ULL;
        std::uint64_t z = seed;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        std::memcpy(p + i, &z, std::min<std::size_t>(8, n - i));
    }
}

class null_buffer : public std::streambuf {
protected:
    int_type overflow(int_type c) override { return c; }
    std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
};

std::uint64_t disk_usage(const fs::path& root) {
    std::uint64_t total = 0;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        struct stat st;
        if (::lstat(e.path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) total += static_cast<std::uint64_t>(st.st_blocks) * 512;
    }
    return total;
}

long max_rss_mib() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss / 1024;
}

struct bench_cluster {
    fs::path root;
    object_store store;

    static object_store open(const fs::path& root, const object_store_config& config) {
        std::vector<std::unique_ptr<shard_store>> stores;
        for (unsigned i = 0; i < config.erasure.total(); ++i)
            stores.push_back(std::move(open_local_shard_store(root / fmt::format("node{:02}", i)).value()));
        return std::move(object_store::open(root / "catalog", std::move(stores), config).value());
    }
    static bench_cluster make(const fs::path& root, const object_store_config& config) {
        fs::remove_all(root);
        return {root, open(root, config)};
    }
    void reopen(const object_store_config& config) { store = open(root, config); }
    void lose_node(unsigned i) {
        for (const auto& e : fs::directory_iterator(root / fmt::format("node{:02}", i) / "shards")) fs::remove(e.path());
    }
};

struct ceilings {
    double put = 0, get = 0, repair_crc = 0, repair_hash = 0; // GB/s; repair in bytes rebuilt per second
};

std::string ratio(double value, double ceiling) { return fmt::format("{:.2f}", value / ceiling); }

} // namespace

int main(int argc, char** argv) {
    std::uint64_t size_mib = 1024, small_count = 100'000, disk_size_mib = 1024;
    fs::path tmpfs = "/dev/shm/swarm-bench-storage", disk = "/var/tmp/swarm-bench-storage";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        if (flag == "--size-mib") size_mib = std::stoull(argv[i + 1]);
        else if (flag == "--small") small_count = std::stoull(argv[i + 1]);
        else if (flag == "--tmpfs") tmpfs = argv[i + 1];
        else if (flag == "--disk") disk = argv[i + 1];
        else if (flag == "--disk-size-mib") disk_size_mib = std::stoull(argv[i + 1]);
    }
    if (!swarm::storage::detail::crypto_ready()) return 1;
    constexpr std::size_t chunk = 1 << 20;
    const unsigned k = 10, m = 4;
    std::vector<std::uint8_t> plain(chunk), sealed(chunk + 64), out(chunk + 64);
    fill_random(plain.data(), chunk, 1);
    const key32 key = swarm::storage::detail::random_key();

    fmt::print("## raw primitives, 1 MiB buffers, one core (GB/s)\n");
    const double t_memcpy = rate(chunk, [&] { std::memcpy(out.data(), plain.data(), chunk); });
    const double t_hash = rate(chunk, [&] { crypto_generichash(out.data(), 32, plain.data(), chunk, key.data(), 32); });
    const double t_xchacha = rate(chunk, [&] { swarm::storage::detail::seal_chunk(cipher_suite::xchacha20_poly1305, key, plain, sealed.data()); });
    const bool has_aes = swarm::storage::detail::cipher_available(cipher_suite::aes256_gcm);
    const double t_aes = has_aes ? rate(chunk, [&] { swarm::storage::detail::seal_chunk(cipher_suite::aes256_gcm, key, plain, sealed.data()); }) : 0;
    const cipher_suite suite = has_aes && t_aes > t_xchacha ? cipher_suite::aes256_gcm : cipher_suite::xchacha20_poly1305;
    const double t_aead = std::max(t_xchacha, t_aes);
    swarm::storage::detail::seal_chunk(suite, key, plain, sealed.data());
    const double t_open = rate(chunk, [&] {
        if (!swarm::storage::detail::open_chunk(suite, key, std::span(sealed.data(), chunk + 16), out.data())) std::abort();
    });

    swarm::storage::detail::erasure_code code(k, m);
    const std::size_t frag = (chunk + 16 + k - 1) / k;
    std::vector<std::uint8_t> stripe(k * frag);
    std::memcpy(stripe.data(), sealed.data(), chunk + 16);
    std::vector<std::vector<std::uint8_t>> parity(m, std::vector<std::uint8_t>(frag));
    std::vector<const std::uint8_t*> data_ptrs(k);
    std::vector<std::uint8_t*> parity_ptrs(m);
    for (unsigned i = 0; i < k; ++i) data_ptrs[i] = stripe.data() + i * frag;
    for (unsigned i = 0; i < m; ++i) parity_ptrs[i] = parity[i].data();
    const double t_encode = rate(k * frag, [&] { code.encode(frag, data_ptrs.data(), parity_ptrs.data()); });
    // Decode with four data shards lost: rebuild 0..3 from 4..13.
    std::vector<unsigned> present{4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, wanted{0, 1, 2, 3};
    std::vector<const std::uint8_t*> inputs;
    for (unsigned i = 4; i < k; ++i) inputs.push_back(data_ptrs[i]);
    for (unsigned i = 0; i < m; ++i) inputs.push_back(parity_ptrs[i]);
    std::vector<std::vector<std::uint8_t>> lost(4, std::vector<std::uint8_t>(frag));
    std::vector<std::uint8_t*> lost_ptrs;
    for (auto& l : lost) lost_ptrs.push_back(l.data());
    const double t_decode4 = rate(k * frag, [&] { code.reconstruct(frag, present, inputs.data(), wanted, lost_ptrs.data()); });
    const double t_crc = rate(chunk, [&] { (void)crc64_ecma_refl(0, plain.data(), chunk); });
    // Repair references, per byte rebuilt, for one shard rebuilt from k: ISA-L's rebuild plus the check of
    // the k shards read and the one written, once with CRC-64 (what the shard store checks) and once with
    // BLAKE2b (the "decode plus hashing", hashing what is read).
    std::vector<unsigned> present1{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, wanted1{0};
    std::vector<const std::uint8_t*> inputs1;
    for (unsigned i = 1; i < k; ++i) inputs1.push_back(data_ptrs[i]);
    inputs1.push_back(parity_ptrs[0]);
    const double t_repair_crc = rate(frag, [&] {
        code.reconstruct(frag, present1, inputs1.data(), wanted1, lost_ptrs.data());
        for (auto* p : inputs1) (void)crc64_ecma_refl(0, p, frag);
        (void)crc64_ecma_refl(0, lost_ptrs[0], frag);
    });
    const double t_repair_hash = 1 / (1 / rate(frag, [&] { code.reconstruct(frag, present1, inputs1.data(), wanted1, lost_ptrs.data()); }) +
                                      (k + 1) / t_hash);

    std::vector<std::uint8_t> big(64 << 20);
    fill_random(big.data(), big.size(), 2);
    const chunking_config cdc{};
    swarm::storage::detail::chunker chunker(cdc);
    const double t_cdc = rate(big.size(), [&] {
        for (std::size_t at = 0; at < big.size();) at += chunker.next(std::span(big.data() + at, big.size() - at));
    });
    swarm::storage::detail::compressor zstd;
    std::vector<std::uint8_t> packed;
    const double t_zstd_probe = rate(chunk, [&] { (void)zstd.compress(plain, packed); });

    ceilings c;
    c.put = 1 / (1 / t_aead + 1 / t_hash + 1 / t_encode);
    c.get = 1 / (1 / t_open + 1 / t_decode4);
    c.repair_crc = t_repair_crc;
    c.repair_hash = t_repair_hash;
    fmt::print("| primitive | GB/s per CPU second |\n|---|---|\n");
    fmt::print("| memcpy | {:.2f} |\n| BLAKE2b-256 keyed (T_hash) | {:.2f} |\n", t_memcpy, t_hash);
    fmt::print("| XChaCha20-Poly1305 seal | {:.2f} |\n", t_xchacha);
    if (has_aes) fmt::print("| AES-256-GCM seal | {:.2f} |\n", t_aes);
    else fmt::print("| AES-256-GCM seal | not available on this CPU |\n");
    fmt::print("| chosen AEAD: {} open | {:.2f} |\n", suite == cipher_suite::aes256_gcm ? "AES-256-GCM" : "XChaCha20-Poly1305", t_open);
    fmt::print("| ISA-L encode 10+4 (T_ec, per data byte) | {:.2f} |\n| ISA-L decode, 4 erasures (per data byte) | {:.2f} |\n",
               t_encode, t_decode4);
    fmt::print("| CRC-64 (ISA-L) | {:.2f} |\n| FastCDC chunking, 1 MiB average | {:.2f} |\n", t_crc, t_cdc);
    fmt::print("| zstd probe that declines random data | {:.2f} |\n", t_zstd_probe);
    fmt::print("| repair reference R_crc: rebuild 1 shard from 10 + CRC-64 of 11, per byte rebuilt | {:.2f} |\n", t_repair_crc);
    fmt::print("| repair reference R_hash: rebuild 1 shard from 10 + BLAKE2b of 11, per byte rebuilt | {:.3f} |\n", t_repair_hash);
    fmt::print("\nC_put = {:.3f} GB/s, C_get = {:.3f} GB/s\n\n", c.put, c.get);

    const durability_params durability{}; // 10+4, 14 nodes, 10 % yearly node failure, 24 h repair, one year
    const auto estimate = estimate_durability(durability).value();
    fmt::print("durability, 10+4 on 14 nodes, 10 %/year node failure, 24 h repair: stripe loss {:.3g}/year, "
               "MTTDL {:.3g} years, {:.1f} nines\n\n",
               estimate.stripe_loss_probability, estimate.stripe_mttdl_years, estimate.nines);

    const std::uint64_t size = size_mib << 20;
    const fs::path source = tmpfs.parent_path() / "swarm-bench-storage-source.bin";
    {
        std::ofstream f(source, std::ios::binary | std::ios::trunc);
        for (std::uint64_t done = 0; done < size; done += big.size()) {
            fill_random(big.data(), big.size(), 1000 + done);
            f.write(reinterpret_cast<const char*>(big.data()), static_cast<std::streamsize>(std::min<std::uint64_t>(big.size(), size - done)));
        }
    }
    big = {};
    const auto writer = reader_keys(generate_reader_keys());
    put_options options{generate_convergence_secret(), {writer.public_key}, {}};
    null_buffer sink_buffer;
    std::ostream sink(&sink_buffer);

    auto run_large = [&](const fs::path& root, std::uint64_t bytes, chunking_mode mode, compression_mode compression,
                         bool full, const char* label) {
        object_store_config config;
        config.cipher = suite;
        config.chunking.mode = mode;
        config.compression = compression;
        const double gb = static_cast<double>(bytes) / 1e9;
        auto open_input = [&](std::ifstream& in, std::istringstream& partial_in) -> std::istream& {
            in.open(source, std::ios::binary);
            if (bytes == size) return in;
            std::string partial(bytes, '\0'); // a prefix of the source, read through the same stream interface
            in.read(partial.data(), static_cast<std::streamsize>(bytes));
            partial_in.str(std::move(partial));
            return partial_in;
        };
        // One row: the one-core run, then the two-core run.
        auto row = [&](const std::string& what, double one_core_s, stopwatch::stages two_core, double wall_s, double ceiling,
                       const char* of) {
            const double two_core_s = two_core.critical_path();
            fmt::print("| {} {} | {:.3f} | {}{} | {:.3f} | {}{} | {:.2f} s / {:.2f} s | {:.3f} |\n", label, what, gb / one_core_s,
                       ratio(gb / one_core_s, ceiling), of, gb / two_core_s, ratio(gb / two_core_s, ceiling), of,
                       two_core.caller, two_core.helper, gb / wall_s);
        };
        std::optional<bench_cluster> cl;
        double put1 = 0, put_wall = 0;
        stopwatch::stages put2;
        std::uint64_t on_disk = 0;
        for (bool pipeline : {false, true}) {
            config.pipeline = pipeline;
            cl.reset();
            cl.emplace(bench_cluster::make(root, config));
            std::ifstream in;
            std::istringstream partial_in;
            std::istream& input = open_input(in, partial_in);
            stopwatch t;
            auto put = cl->store.put("big", input, options);
            if (!put) {
                fmt::print("put failed: {}\n", put.error().describe());
                return;
            }
            if (pipeline) {
                put2 = t.stage_seconds();
                put_wall = t.wall_seconds();
            } else {
                put1 = t.cpu_seconds();
            }
            on_disk = disk_usage(root);
        }
        row(mode == chunking_mode::fixed ? "put, fixed 4 MiB chunks" : "put, FastCDC", put1, put2, put_wall, c.put, "");
        if (!full) {
            cl.reset();
            fs::remove_all(root);
            return;
        }
        // Both kinds of get over the same shards: the store reopened with the pipeline off, then on.
        auto gets = [&](const std::string& what) {
            double one = 0, wall = 0;
            stopwatch::stages two;
            for (bool pipeline : {false, true}) {
                config.pipeline = pipeline;
                cl->reopen(config);
                stopwatch t;
                auto got = cl->store.get("big", sink, writer);
                if (!got || *got != bytes) {
                    fmt::print("get failed\n");
                    return false;
                }
                if (pipeline) {
                    two = t.stage_seconds();
                    wall = t.wall_seconds();
                } else {
                    one = t.cpu_seconds();
                }
            }
            row(what, one, two, wall, c.get, " C_get");
            return true;
        };
        if (!gets("get, all shards")) return;
        // Repair of one lost node, on one core and then on two (the helper reads half of each stripe's shards).
        double rep1 = 0, rep_wall = 0, rebuilt_gb = 0;
        stopwatch::stages rep2;
        std::optional<repair_report> rep;
        for (bool pipeline : {false, true}) {
            config.pipeline = pipeline;
            cl->reopen(config);
            cl->lose_node(5);
            stopwatch t;
            auto r = cl->store.repair();
            if (!r) return;
            if (pipeline) {
                rep2 = t.stage_seconds();
                rep_wall = t.wall_seconds();
            } else {
                rep1 = t.cpu_seconds();
            }
            rebuilt_gb = static_cast<double>(r->bytes_written) / 1e9;
            rep = *r;
        }
        const double rep1_rate = rebuilt_gb / rep1, rep2_rate = rebuilt_gb / rep2.critical_path();
        fmt::print("| {} repair of one lost node ({} shards rebuilt, {} read = k per stripe), GB rebuilt per second | {:.3f} | "
                   "time {:.2f}x R_hash, {:.2f}x R_crc | {:.3f} | time {:.2f}x R_hash, {:.2f}x R_crc | {:.2f} s / {:.2f} s | {:.3f} |\n",
                   label, rep->shards_rebuilt, rep->shards_read, rep1_rate, c.repair_hash / rep1_rate, c.repair_crc / rep1_rate,
                   rep2_rate, c.repair_hash / rep2_rate, c.repair_crc / rep2_rate, rep2.caller, rep2.helper, rebuilt_gb / rep_wall);
        for (unsigned node : {0U, 3U, 7U, 13U}) cl->lose_node(node);
        if (!gets("get, 4 of 14 shards lost")) return;
        fmt::print("| {} bytes on disk per byte stored | {:.3f} | | | | | |\n", label, static_cast<double>(on_disk) / static_cast<double>(bytes));
        cl.reset();
        fs::remove_all(root);
    };

    fmt::print("## swarm, {} MiB object, 10+4 over 14 local shard stores\n", size_mib);
    fmt::print("| operation | 1 core: GB/s per CPU second | ratio (to C_put unless stated) | 2 cores: GB/s, critical path | ratio | "
               "2 cores: CPU s caller / helper | 2 cores: GB/s wall |\n|---|---|---|---|---|---|---|\n");
    run_large(tmpfs, size, chunking_mode::fixed, compression_mode::none, true, "tmpfs");
    run_large(tmpfs, size, chunking_mode::content_defined, compression_mode::none, false, "tmpfs");
    run_large(tmpfs, size, chunking_mode::content_defined, compression_mode::automatic, false, "tmpfs, zstd auto,");
    if (disk_size_mib > 0)
        run_large(disk, std::min(size, disk_size_mib << 20), chunking_mode::fixed, compression_mode::none, true, "disk");
    fmt::print("\nmax RSS after the large objects: {} MiB\n\n", max_rss_mib());
    fs::remove(source);

    if (small_count > 0) {
        object_store_config config;
        config.cipher = suite;
        auto cl = bench_cluster::make(tmpfs, config);
        std::string object(4096, '\0');
        const stopwatch t;
        for (std::uint64_t i = 0; i < small_count; ++i) {
            fill_random(reinterpret_cast<std::uint8_t*>(object.data()), object.size(), 77 + i);
            std::istringstream in(object);
            if (!cl.store.put(fmt::format("small/{:08}", i), in, options)) return 1;
        }
        const double s = t.cpu_seconds(), wall = t.wall_seconds();
        const double stored = static_cast<double>(small_count) * 4096;
        fmt::print("## {} puts of 4 KiB on tmpfs\n| figure | value |\n|---|---|\n", small_count);
        fmt::print("| puts per CPU second | {:.0f} |\n| puts per wall second | {:.0f} |\n| bytes on disk per byte stored | {:.3f} |\n",
                   static_cast<double>(small_count) / s, static_cast<double>(small_count) / wall,
                   static_cast<double>(disk_usage(tmpfs)) / stored);
        fs::remove_all(tmpfs);
    }
    return 0;
}
