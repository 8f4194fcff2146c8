// Put and get of one object over 14 nodes on loopback TCP (shard_transfer on socket_driver, one runtime with
// two threads), against the same object_store over 14 local shard stores, in the same run and on the same
// tmpfs. Wall-clock GB/s, and GB per CPU second of the whole process (all threads), which a loaded machine
// disturbs less; each ratio is network / local.
//
// Usage: swarm_bench_storage_net [--size-mib N] [--dir DIR]     (defaults: 256 MiB, /dev/shm)
#include <swarm/net/driver.hpp>
#include <swarm/net/runtime.hpp>
#include <swarm/storage/object_store.hpp>
#include <swarm/storage/transfer.hpp>

#include <fmt/format.h>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <streambuf>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace swarm::storage;
using namespace std::chrono_literals;

namespace {

// Streams `size` pseudo-random bytes without holding them: the object is never whole in memory.
class source_buf final : public std::streambuf {
public:
    explicit source_buf(std::uint64_t size) : left_(size), block_(1 << 20) {
        std::mt19937_64 gen(42);
        for (std::size_t i = 0; i < block_.size(); i += 8) {
            const auto v = gen();
            std::memcpy(block_.data() + i, &v, 8);
        }
    }

protected:
    int_type underflow() override {
        if (left_ == 0) return traits_type::eof();
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left_, block_.size()));
        block_[0] = static_cast<char>(left_ >> 20); // each block differs, so nothing deduplicates
        left_ -= n;
        setg(block_.data(), block_.data(), block_.data() + n);
        return traits_type::to_int_type(block_[0]);
    }

private:
    std::uint64_t left_;
    std::vector<char> block_;
};

class sink_buf final : public std::streambuf {
protected:
    std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
    int_type overflow(int_type c) override { return traits_type::not_eof(c); }
};

// CPU seconds of the whole process (every thread, user plus kernel): on a loaded machine, work per byte is
// steadier than wall time, and the network path's work is spread over the runtime's threads.
double process_cpu() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    const auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
    return sec(u.ru_utime) + sec(u.ru_stime);
}

struct figures {
    double put = 0, get = 0;         // wall-clock GB/s
    double put_cpu = 0, get_cpu = 0; // GB per process CPU second
};

figures run(object_store& store, std::uint64_t size, const reader_keys& reader, const put_options& options) {
    figures f;
    source_buf src(size);
    std::istream in(&src);
    const double c0 = process_cpu();
    auto t0 = std::chrono::steady_clock::now();
    auto put = store.put("bench", in, options);
    auto t1 = std::chrono::steady_clock::now();
    const double c1 = process_cpu();
    if (!put) {
        fmt::print(stderr, "put: {}\n", put.error().describe());
        std::exit(1);
    }
    sink_buf sink;
    std::ostream out(&sink);
    auto got = store.get("bench", out, reader);
    auto t2 = std::chrono::steady_clock::now();
    const double c2 = process_cpu();
    if (!got || *got != size) {
        fmt::print(stderr, "get failed\n");
        std::exit(1);
    }
    const auto gbps = [&](auto d) { return static_cast<double>(size) / std::chrono::duration<double>(d).count() / 1e9; };
    f.put = gbps(t1 - t0);
    f.get = gbps(t2 - t1);
    f.put_cpu = static_cast<double>(size) / (c1 - c0) / 1e9;
    f.get_cpu = static_cast<double>(size) / (c2 - c1) / 1e9;
    return f;
}

} // namespace

int main(int argc, char** argv) {
    std::uint64_t size_mib = 256;
    fs::path root = "/dev/shm";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--size-mib") == 0) size_mib = std::stoull(argv[i + 1]);
        else if (std::strcmp(argv[i], "--dir") == 0) root = argv[i + 1];
        else {
            fmt::print(stderr, "usage: {} [--size-mib N] [--dir DIR]\n", argv[0]);
            return 2;
        }
    }
    const std::uint64_t size = size_mib << 20;
    const fs::path dir = root / fmt::format("swarm-bench-storage-net-{}", ::getpid());
    constexpr std::size_t nodes = 14;
    object_store_config config; // 10+4, content-defined 1 MiB chunks
    const auto reader = generate_reader_keys();
    const put_options options{generate_convergence_secret(), {reader.public_key}, {}};

    figures local;
    {
        std::vector<std::unique_ptr<shard_store>> stores;
        for (std::size_t i = 0; i < nodes; ++i) stores.push_back(std::move(*open_local_shard_store(dir / "local" / fmt::format("n{}", i))));
        auto store = object_store::open(dir / "local" / "catalog", std::move(stores), config);
        if (!store) return fmt::print(stderr, "{}\n", store.error().describe()), 1;
        local = run(*store, size, reader, options);
    }
    figures remote;
    {
        transfer_config transfer;
        std::array<std::byte, 32> key{};
        key.fill(std::byte{1});
        (void)transfer.keys.add(key);
        swarm::runtime rt(2);
        std::vector<std::unique_ptr<shard_store>> locals;
        std::vector<swarm::net::socket_driver> drivers;
        swarm::net::driver_config dc;
        dc.bind = swarm::net::endpoint::v4(0x7f000001, 0);
        for (std::size_t i = 0; i < nodes; ++i) {
            locals.push_back(std::move(*open_local_shard_store(dir / "net" / fmt::format("n{}", i))));
            drivers.push_back(std::move(*swarm::net::socket_driver::create(rt.get_executor(), dc, make_shard_transfer(transfer, locals.back().get()))));
        }
        auto client = swarm::net::socket_driver::create(rt.get_executor(), dc, make_shard_transfer(transfer, nullptr));
        auto channel = make_socket_channel(*client, 30s);
        std::vector<std::unique_ptr<shard_store>> stores;
        for (auto& d : drivers) stores.push_back(make_remote_shard_store(channel, d.local_endpoint()));
        auto store = object_store::open(dir / "net" / "catalog", std::move(stores), config);
        if (!store) return fmt::print(stderr, "{}\n", store.error().describe()), 1;
        remote = run(*store, size, reader, options);
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
    fmt::print("object {} MiB, 10+4 over 14 stores\n", size_mib);
    fmt::print("| path | local GB/s wall | TCP GB/s wall | ratio | local GB/CPU-s | TCP GB/CPU-s | ratio |\n");
    fmt::print("|---|---|---|---|---|---|---|\n");
    fmt::print("| put | {:.3f} | {:.3f} | {:.2f} | {:.3f} | {:.3f} | {:.2f} |\n", local.put, remote.put, remote.put / local.put,
               local.put_cpu, remote.put_cpu, remote.put_cpu / local.put_cpu);
    fmt::print("| get | {:.3f} | {:.3f} | {:.2f} | {:.3f} | {:.3f} | {:.2f} |\n", local.get, remote.get, remote.get / local.get,
               local.get_cpu, remote.get_cpu, remote.get_cpu / local.get_cpu);
    return 0;
}
