// The real driver on loopback: datagram round trips (one at a time and pipelined) and stream throughput.
//
// Each benchmark runs two socket_drivers on a swarm::runtime; the traffic is driven from inside the protocols,
// so what is measured is the driver and the kernel, not hand-offs to the benchmark thread. The raw_* cases
// are the same traffic on bare sockets, the floor and ceiling to compare with.
#include <swarm/net/driver.hpp>
#include <swarm/net/runtime.hpp>

#include <benchmark/benchmark.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <thread>

namespace {

using namespace std::chrono_literals;
namespace net = swarm::net;

/// A protocol whose handlers are whatever the benchmark plugs in.
struct scripted final : net::protocol {
    explicit scripted(net::transport& t) : transport(t) {}
    net::transport& transport;
    std::function<void(const net::endpoint&, std::span<const std::byte>)> datagram;
    std::function<void(net::stream_id, bool)> open;
    std::function<void(net::stream_id, std::span<const std::byte>)> frame;
    std::function<void(net::stream_id)> writable;

    void on_datagram(const net::endpoint& from, std::span<const std::byte> payload) override {
        if (datagram) datagram(from, payload);
    }
    void on_stream_open(net::stream_id id, const net::endpoint&, bool inbound) override {
        if (open) open(id, inbound);
    }
    void on_stream_frame(net::stream_id id, std::span<const std::byte> f) override {
        if (frame) frame(id, f);
    }
    void on_stream_writable(net::stream_id id) override {
        if (writable) writable(id);
    }
};

struct pair_of_nodes {
    swarm::runtime runtime;
    std::optional<net::socket_driver> a, b;
    scripted* pa = nullptr;
    scripted* pb = nullptr;

    explicit pair_of_nodes(unsigned threads) : runtime(threads) {
        net::driver_config config;
        config.bind = net::endpoint::v4(0x7f000001, 0);
        a.emplace(make(config, pa));
        b.emplace(make(config, pb));
    }
    ~pair_of_nodes() {
        a.reset();
        b.reset();
        runtime.stop();
    }

    net::socket_driver make(const net::driver_config& config, scripted*& out) {
        std::promise<void> built;
        auto driver = net::socket_driver::create(runtime.get_executor(), config, [&](net::transport& t) {
            auto p = std::make_unique<scripted>(t);
            out = p.get();
            built.set_value();
            return p;
        });
        built.get_future().wait();
        return std::move(*driver);
    }

    /// Runs `fn` on `driver`'s strand and waits for it.
    void on(net::socket_driver& driver, std::function<void()> fn) {
        std::promise<void> done;
        driver.post([&](net::protocol&) {
            fn();
            done.set_value();
        });
        done.get_future().wait();
    }
};

// Round trips of 64-byte datagrams with `window` in flight; one iteration is 2,000 round trips.
void datagram_round_trips(benchmark::State& state) {
    const auto window = static_cast<int>(state.range(0));
    constexpr int per_iteration = 2000;
    pair_of_nodes nodes(1); // one thread, as the raw baseline: no cross-thread wake-ups
    const auto a_address = nodes.a->local_endpoint();
    const auto b_address = nodes.b->local_endpoint();
    std::vector<std::byte> payload(64);
    nodes.on(*nodes.b, [&] {
        nodes.pb->datagram = [&](const net::endpoint&, std::span<const std::byte> p) {
            nodes.pb->transport.send(a_address, p);
        };
    });
    int sent = 0, returned = 0;
    std::promise<void>* finished = nullptr;
    nodes.on(*nodes.a, [&] {
        nodes.pa->datagram = [&](const net::endpoint&, std::span<const std::byte>) {
            if (++returned == per_iteration) {
                finished->set_value();
            } else if (sent < per_iteration) {
                ++sent;
                nodes.pa->transport.send(b_address, payload);
            }
        };
    });
    for (auto _ : state) {
        std::promise<void> done;
        auto future = done.get_future();
        nodes.on(*nodes.a, [&] {
            finished = &done;
            sent = returned = 0;
            for (int i = 0; i < window; ++i, ++sent) nodes.pa->transport.send(b_address, payload);
        });
        if (future.wait_for(10s) != std::future_status::ready) {
            state.SkipWithError("datagrams lost on loopback; the window never refilled");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * per_iteration);
    // Seconds per round trip (with `window` in flight, the mean interval between completions).
    state.counters["per_round_trip"] = benchmark::Counter(static_cast<double>(state.iterations() * per_iteration),
                                                          benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(datagram_round_trips)->Arg(1)->Arg(32)->UseRealTime()->Unit(benchmark::kMillisecond);

// One stream, frames of `size` bytes written as fast as flow control allows; one iteration is 64 MiB.
void stream_throughput(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    constexpr std::size_t per_iteration = 64 * 1024 * 1024;
    pair_of_nodes nodes(2); // sender and receiver on their own threads, as the raw baseline
    const auto b_address = nodes.b->local_endpoint();
    std::size_t received = 0;
    std::promise<void>* finished = nullptr;
    std::promise<net::stream_id> opened;
    nodes.on(*nodes.b, [&] {
        nodes.pb->frame = [&](net::stream_id, std::span<const std::byte> f) {
            received += f.size();
            if (received >= per_iteration && finished) {
                finished->set_value();
                finished = nullptr;
            }
        };
    });
    std::vector<std::byte> frame(size);
    std::size_t to_write = 0;
    auto fill = [&](net::stream_id id) {
        auto& t = nodes.pa->transport;
        // Stop at the high watermark and let on_stream_writable call again, as a protocol should.
        while (to_write > 0 && t.queued_bytes(id) < 4 * 1024 * 1024) {
            t.write(id, frame);
            to_write -= std::min(to_write, size);
        }
    };
    nodes.on(*nodes.a, [&] {
        nodes.pa->open = [&](net::stream_id id, bool) { opened.set_value(id); };
        nodes.pa->writable = fill;
        nodes.pa->transport.connect(b_address);
    });
    const auto id = opened.get_future().get();
    for (auto _ : state) {
        std::promise<void> done;
        auto future = done.get_future();
        nodes.on(*nodes.b, [&] {
            received = 0;
            finished = &done;
        });
        nodes.on(*nodes.a, [&] {
            to_write = per_iteration;
            fill(id);
        });
        if (future.wait_for(30s) != std::future_status::ready) {
            state.SkipWithError("stream stalled");
            break;
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * per_iteration));
}
BENCHMARK(stream_throughput)->Arg(1024)->Arg(64 * 1024)->Arg(1024 * 1024)->UseRealTime()->Unit(benchmark::kMillisecond);

// The floor for datagram_round_trips/1: the same 64-byte round trips as bare system calls on one thread,
// no reactor, no strand, no protocol.
void raw_udp_round_trips(benchmark::State& state) {
    namespace asio = boost::asio;
    using asio::ip::udp;
    constexpr int per_iteration = 2000;
    asio::io_context io;
    const udp::endpoint any(asio::ip::address_v4::loopback(), 0);
    udp::socket a(io, any), b(io, any);
    const auto a_address = a.local_endpoint();
    const auto b_address = b.local_endpoint();
    std::vector<std::byte> payload(64), in(65536);
    udp::endpoint from;
    for (auto _ : state) {
        for (int i = 0; i < per_iteration; ++i) {
            a.send_to(asio::buffer(payload), b_address);
            const auto n = b.receive_from(asio::buffer(in), from);
            b.send_to(asio::buffer(in.data(), n), a_address);
            a.receive_from(asio::buffer(in), from);
        }
    }
    state.SetItemsProcessed(state.iterations() * per_iteration);
    state.counters["per_round_trip"] = benchmark::Counter(static_cast<double>(state.iterations() * per_iteration),
                                                          benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(raw_udp_round_trips)->UseRealTime()->Unit(benchmark::kMillisecond);

// The ceiling for stream_throughput: 64 MiB in 64 KiB blocking writes, read by a second thread.
void raw_tcp_throughput(benchmark::State& state) {
    namespace asio = boost::asio;
    using asio::ip::tcp;
    constexpr std::size_t per_iteration = 64 * 1024 * 1024;
    asio::io_context io;
    tcp::acceptor listener(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket writer(io), reader(io);
    writer.connect(listener.local_endpoint());
    listener.accept(reader);
    writer.set_option(tcp::no_delay(true));
    std::vector<std::byte> block(64 * 1024);
    for (auto _ : state) {
        std::thread drain([&] {
            std::vector<std::byte> in(64 * 1024);
            std::size_t got = 0;
            while (got < per_iteration) got += reader.read_some(asio::buffer(in));
        });
        for (std::size_t sent = 0; sent < per_iteration; sent += block.size()) asio::write(writer, asio::buffer(block));
        drain.join();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * per_iteration));
}
BENCHMARK(raw_tcp_throughput)->UseRealTime()->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
