// The gateway's added cost on loopback, side by side with the anchor (the same client straight to the backend)
// in one run.
//
//   swarm_bench_gateway latency [--requests N]   1 KB non-streamed requests, one keep-alive connection, closed
//                                                loop; direct and through the gateway alternate in blocks of 500
//   swarm_bench_gateway stream [--chunks N]      a backend streaming N SSE chunks each stamped with its send time;
//                                                the client's receive time minus the stamp, direct and through
//   swarm_bench_gateway rps [--seconds S] [--connections C]
//                                                saturation: C closed-loop connections, requests per second,
//                                                direct and through (the gateway runs on one thread = one core)
//
// The backend is a minimal Beast server on its own thread (a fast stub: fixed 1 KB answer, no model).
#include <swarm/dispatch/gateway.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <memory>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using clk = std::chrono::steady_clock;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

std::int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(clk::now().time_since_epoch()).count(); }

// The fast stub backend.
class stub {
public:
    explicit stub(int chunks) : chunks_(chunks) {
        acceptor_.open(tcp::v4());
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind({asio::ip::address_v4::loopback(), 0});
        acceptor_.listen();
        port = acceptor_.local_endpoint().port();
        answer_ = std::string(R"({"id":"x","object":"chat.completion","pad":")") + std::string(1024 - 52, 'a') +
                  R"("})";
        asio::co_spawn(io_, accept(), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~stub() {
        io_.stop();
        thread_.join();
    }
    std::uint16_t port = 0;

private:
    asio::awaitable<void> accept() {
        for (;;) {
            auto [ec, s] = co_await acceptor_.async_accept(nothrow);
            if (ec) co_return;
            s.set_option(tcp::no_delay(true));
            asio::co_spawn(io_, serve(std::move(s)), asio::detached);
        }
    }
    asio::awaitable<void> serve(tcp::socket s) {
        boost::beast::flat_buffer buf;
        for (;;) {
            http::request<http::string_body> req;
            auto [ec, n] = co_await http::async_read(s, buf, req, nothrow);
            if (ec) co_return;
            if (req.method() == http::verb::get) {
                http::response<http::string_body> r{http::status::ok, 11};
                r.set(http::field::content_type, "application/json");
                r.body() = R"({"object":"list","data":[{"id":"m","object":"model"}]})";
                r.prepare_payload();
                co_await http::async_write(s, r, nothrow);
                continue;
            }
            if (req.body().find("\"stream\":true") == std::string::npos) {
                http::response<http::string_body> r{http::status::ok, 11};
                r.set(http::field::content_type, "application/json");
                r.body() = answer_;
                r.prepare_payload();
                auto [wec, wn] = co_await http::async_write(s, r, nothrow);
                if (wec) co_return;
                continue;
            }
            std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
            co_await asio::async_write(s, asio::buffer(head), nothrow);
            asio::steady_timer t(io_);
            for (int i = 0; i < chunks_; ++i) {
                // Spaced out so each chunk travels alone (no coalescing on either hop).
                t.expires_after(std::chrono::microseconds(200));
                co_await t.async_wait(nothrow);
                auto event = fmt::format("data: {:020}\n\n", now_ns());
                auto chunk = fmt::format("{:x}\r\n{}\r\n", event.size(), event);
                co_await asio::async_write(s, asio::buffer(chunk), nothrow);
            }
            co_await asio::async_write(s, asio::buffer(std::string_view("0\r\n\r\n")), nothrow);
        }
    }
    int chunks_;
    std::string answer_;
    asio::io_context io_{1};
    tcp::acceptor acceptor_{io_};
    std::thread thread_;
};

const std::string body_1k = [] {
    std::string prompt(1024 - 80, 'p');
    return fmt::format(R"({{"model":"m","messages":[{{"role":"user","content":"{}"}}]}})", prompt);
}();

std::string request_text(bool stream) {
    auto body = stream ? std::string(R"({"model":"m","stream":true,"messages":[]})") : body_1k;
    return fmt::format("POST /v1/chat/completions HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                       "Content-Length: {}\r\n\r\n{}",
                       body.size(), body);
}

struct sync_client {
    asio::io_context io;
    tcp::socket s{io};
    boost::beast::flat_buffer buf;
    explicit sync_client(std::uint16_t port) {
        s.connect({asio::ip::address_v4::loopback(), port});
        s.set_option(tcp::no_delay(true));
    }
    bool once(const std::string& req) {
        boost::system::error_code ec;
        asio::write(s, asio::buffer(req), ec);
        http::response<http::string_body> r;
        http::read(s, buf, r, ec);
        return !ec && r.result_int() == 200;
    }
};

double pct(std::vector<double>& v, double p) {
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

struct gateway_up {
    swarm::dispatch::gateway gw;
    std::uint16_t port;
};
gateway_up start_gateway(std::uint16_t backend) {
    swarm::dispatch::gateway_config cfg;
    cfg.listen = swarm::net::endpoint::v4(0x7f000001, 0);
    swarm::dispatch::backend_config b;
    b.url = fmt::format("http://127.0.0.1:{}", backend);
    cfg.backends.push_back(b);
    cfg.scrape_metrics = false;
    auto gw = swarm::dispatch::gateway::create(std::move(cfg)).value();
    auto port = gw.start().value();
    return {std::move(gw), port};
}

int latency(int requests) {
    stub backend(0);
    auto g = start_gateway(backend.port);
    sync_client direct(backend.port), via(g.port);
    const auto req = request_text(false);
    for (int i = 0; i < 2000; ++i) (void)(direct.once(req) && via.once(req)); // warm up
    std::vector<double> d, v;
    for (int done = 0; done < requests; done += 500) {
        for (int k = 0; k < 2; ++k) {
            auto& client = k == 0 ? direct : via;
            auto& out = k == 0 ? d : v;
            for (int i = 0; i < 500; ++i) {
                auto t0 = clk::now();
                if (!client.once(req)) return 1;
                out.push_back(std::chrono::duration<double, std::micro>(clk::now() - t0).count());
            }
        }
    }
    fmt::print("1 KB non-streamed, {} requests each, closed loop, one keep-alive connection (us)\n", d.size());
    fmt::print("{:>10} {:>10} {:>10} {:>10}\n", "", "p50", "p99", "p99.9");
    const double dp50 = pct(d, 0.5), dp99 = pct(d, 0.99), dp999 = pct(d, 0.999);
    const double vp50 = pct(v, 0.5), vp99 = pct(v, 0.99), vp999 = pct(v, 0.999);
    fmt::print("{:>10} {:>10.1f} {:>10.1f} {:>10.1f}\n", "direct", dp50, dp99, dp999);
    fmt::print("{:>10} {:>10.1f} {:>10.1f} {:>10.1f}\n", "gateway", vp50, vp99, vp999);
    fmt::print("{:>10} {:>10.1f} {:>10.1f} {:>10.1f}\n", "added", vp50 - dp50, vp99 - dp99, vp999 - dp999);
    fmt::print("{:>10} {:>10.2f} {:>10.2f} {:>10.2f}\n", "ratio", vp50 / dp50, vp99 / dp99, vp999 / dp999);
    return 0;
}

int stream(int chunks) {
    stub backend(chunks);
    auto g = start_gateway(backend.port);
    const auto req = request_text(true);
    struct result {
        std::vector<double> lag;
        int coalesced = 0; // reads that carried more than one chunk
    };
    auto run = [&](std::uint16_t port) {
        result out;
        auto& lag = out.lag;
        sync_client c(port);
        boost::system::error_code ec;
        asio::write(c.s, asio::buffer(req), ec);
        std::string data;
        std::array<char, 4096> buf{};
        std::size_t scanned = 0;
        while (!ec && data.find("0\r\n\r\n", scanned > 8 ? scanned - 8 : 0) == std::string::npos) {
            auto n = c.s.read_some(asio::buffer(buf), ec);
            const auto arrived = now_ns();
            data.append(buf.data(), n);
            int in_this_read = 0;
            for (auto p = data.find("data: ", scanned); p != std::string::npos && p + 26 <= data.size();
                 p = data.find("data: ", scanned)) {
                lag.push_back(static_cast<double>(arrived - std::stoll(data.substr(p + 6, 20))) / 1000.0);
                scanned = p + 26;
                ++in_this_read;
            }
            if (in_this_read > 1) ++out.coalesced;
        }
        return out;
    };
    (void)run(backend.port);
    (void)run(g.port);
    auto direct = run(backend.port);
    auto through = run(g.port);
    auto& d = direct.lag;
    auto& v = through.lag;
    fmt::print("SSE chunk delay, backend send -> client receive, {} chunks each (us)\n", d.size());
    fmt::print("{:>10} {:>10} {:>10} {:>10}\n", "", "p50", "p99", "p99.9");
    const double dp50 = pct(d, 0.5), dp99 = pct(d, 0.99), dp999 = pct(d, 0.999);
    const double vp50 = pct(v, 0.5), vp99 = pct(v, 0.99), vp999 = pct(v, 0.999);
    fmt::print("{:>10} {:>10.1f} {:>10.1f} {:>10.1f}\n", "direct", dp50, dp99, dp999);
    fmt::print("{:>10} {:>10.1f} {:>10.1f} {:>10.1f}\n", "gateway", vp50, vp99, vp999);
    fmt::print("{:>10} {:>10.1f} {:>10.1f} {:>10.1f}\n", "added", vp50 - dp50, vp99 - dp99, vp999 - dp999);
    fmt::print("chunks received: direct {}, through the gateway {} of {}; client reads holding more than one chunk: "
               "direct {}, through the gateway {}\n",
               d.size(), v.size(), chunks, direct.coalesced, through.coalesced);
    return 0;
}

int rps(int seconds, int connections) {
    stub backend(0);
    auto g = start_gateway(backend.port);
    const auto req = request_text(false);
    auto measure = [&](std::uint16_t port) {
        std::atomic<bool> stop{false};
        std::atomic<long> total{0};
        std::vector<std::thread> threads;
        // Two client threads (the machine has two cores; the stub and the gateway take one thread each).
        for (int t = 0; t < 2; ++t)
            threads.emplace_back([&, t] {
                std::vector<std::unique_ptr<sync_client>> cs;
                for (int i = t; i < connections; i += 2) cs.push_back(std::make_unique<sync_client>(port));
                long n = 0;
                // Pipelining-free round robin over this thread's connections: each in flight one at a time.
                while (!stop.load(std::memory_order_relaxed)) {
                    boost::system::error_code ec;
                    for (auto& c : cs) asio::write(c->s, asio::buffer(req), ec);
                    for (auto& c : cs) {
                        http::response<http::string_body> r;
                        http::read(c->s, c->buf, r, ec);
                        ++n;
                    }
                }
                total += n;
            });
        std::this_thread::sleep_for(std::chrono::seconds(seconds));
        stop = true;
        for (auto& t : threads) t.join();
        return static_cast<double>(total.load()) / seconds;
    };
    const double d = measure(backend.port);
    const double v = measure(g.port);
    fmt::print("saturation, {} connections, {} s each: direct {:.0f} req/s, through the gateway {:.0f} req/s "
               "(ratio {:.2f})\n",
               connections, seconds, d, v, v / d);
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string mode = argc > 1 ? argv[1] : "latency";
    int requests = 20000, chunks = 2000, seconds = 3, connections = 16;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string_view f = argv[i];
        int v = std::atoi(argv[i + 1]);
        if (f == "--requests") requests = v;
        else if (f == "--chunks") chunks = v;
        else if (f == "--seconds") seconds = v;
        else if (f == "--connections") connections = v;
        else {
            fmt::print(stderr, "unknown option {}\n", f);
            return 2;
        }
    }
    if (mode == "latency") return latency(requests);
    if (mode == "stream") return stream(chunks);
    if (mode == "rps") return rps(seconds, connections);
    fmt::print(stderr, "usage: swarm_bench_gateway latency|stream|rps [options]\n");
    return 2;
}
