// The load generator of the dispatch side-by-side benchmark (bench/dispatch/run-side-by-side).
//
//   swarm_bench_dispatch_load --target HOST:PORT --mode rate|saturate|stream [--rate R] [--seconds S]
//                             [--connections C] [--pid PID] [--model NAME]
//
// rate:     open loop at a fixed rate (wrk2's way): connection k of C sends requests k, k+C, k+2C, ... each at
//           its scheduled time t0 + i/R, and a request's latency runs from its scheduled time, so a slow
//           response also charges the requests queued behind it (no coordinated omission). 1 KB non-streamed
//           chat completions, keep-alive.
// saturate: C connections send back to back for S seconds: requests per second; with --pid, also the CPU
//           seconds PID used meanwhile (from /proc/PID/stat), so requests per second per core of that process.
// stream:   streamed chat completions at a fixed rate; the stub stamps each chunk with its steady-clock send
//           time, and the delay of each chunk is its arrival minus that stamp.
// Prints one JSON object. One thread.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <unistd.h>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

struct options {
    std::string host;
    std::string port;
    std::string mode = "rate";
    double rate = 1000;
    double seconds = 5;
    int connections = 16;
    long pid = 0;
    std::string model = "stub";
};

struct results {
    std::vector<double> latency_us; // per request (rate, saturate) or per chunk (stream)
    std::size_t ok = 0;
    std::size_t errors = 0;
};

std::string request_body(const std::string& model, bool stream) {
    // About 1 KB of JSON, like a short chat turn.
    const std::string head = fmt::format(R"({{"model":"{}","stream":{},"max_tokens":32,"messages":[{{"role":"user","content":")",
                                         model, stream ? "true" : "false");
    const std::string tail = R"("}]})";
    return head + std::string(1024 - head.size() - tail.size(), 'q') + tail;
}

double cpu_seconds(long pid) {
    // utime + stime, fields 14 and 15 of /proc/PID/stat (after the parenthesised command name).
    std::ifstream f(fmt::format("/proc/{}/stat", pid));
    std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto close = all.rfind(')');
    if (close == std::string::npos) return -1;
    std::istringstream rest(all.substr(close + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && rest >> field; ++i)
        if (i >= 14) ticks += std::stod(field);
    return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double us_since(steady::time_point t) { return std::chrono::duration<double, std::micro>(steady::now() - t).count(); }

asio::awaitable<bool> connect(tcp::socket& s, const tcp::resolver::results_type& where) {
    auto [ec, ep] = co_await asio::async_connect(s, where, asio::as_tuple(asio::use_awaitable));
    if (ec) co_return false;
    s.set_option(tcp::no_delay(true));
    co_return true;
}

// One connection's share of the run.
asio::awaitable<void> worker(int k, const options& o, const tcp::resolver::results_type& where, steady::time_point t0,
                             steady::time_point end, results& r) {
    auto ex = co_await asio::this_coro::executor;
    tcp::socket socket(ex);
    asio::steady_timer timer(ex);
    beast::flat_buffer buffer;
    const bool stream = o.mode == "stream";
    http::request<http::string_body> req{http::verb::post, "/v1/chat/completions", 11};
    req.set(http::field::host, o.host);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::authorization, "Bearer bench-key");
    req.body() = request_body(o.model, stream);
    req.prepare_payload();
    const auto period = std::chrono::duration<double>(1.0 / o.rate);
    bool connected = false;
    for (std::size_t i = static_cast<std::size_t>(k);; i += static_cast<std::size_t>(o.connections)) {
        steady::time_point start = steady::now();
        if (o.mode != "saturate") {
            start = t0 + std::chrono::duration_cast<steady::duration>(period * static_cast<double>(i));
            if (start >= end) break;
            if (start > steady::now()) {
                timer.expires_at(start);
                co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
            }
        } else if (start >= end) {
            break;
        }
        if (!connected) {
            socket = tcp::socket(ex);
            buffer.clear();
            connected = co_await connect(socket, where);
            if (!connected) {
                ++r.errors;
                continue;
            }
        }
        auto [wec, wn] = co_await http::async_write(socket, req, asio::as_tuple(asio::use_awaitable));
        if (wec) {
            ++r.errors;
            connected = false;
            continue;
        }
        bool ok = true;
        if (!stream) {
            http::response<http::string_body> res;
            auto [rec, rn] = co_await http::async_read(socket, buffer, res, asio::as_tuple(asio::use_awaitable));
            ok = !rec && res.result() == http::status::ok;
            if (ok) r.latency_us.push_back(us_since(start));
            if (rec || !res.keep_alive()) connected = false;
        } else {
            // Each SSE chunk as it arrives: its "t=" stamp against now.
            http::response_parser<http::string_body> parser;
            parser.body_limit(1 << 20);
            std::string pending;
            std::vector<double> delays;
            auto on_chunk = [&](std::uint64_t, std::string_view body, boost::system::error_code& ec) -> std::size_t {
                const auto now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
                pending.append(body);
                for (std::size_t at; (at = pending.find("t=")) != std::string::npos;) {
                    std::int64_t sent = 0;
                    const char* p = pending.data() + at + 2;
                    auto [end_ptr, err] = std::from_chars(p, pending.data() + pending.size(), sent);
                    if (err != std::errc{} || end_ptr == pending.data() + pending.size()) break; // partial: wait
                    delays.push_back(static_cast<double>(now_ns - sent) / 1000.0);
                    pending.erase(0, static_cast<std::size_t>(end_ptr - pending.data()));
                }
                ec = {};
                return body.size();
            };
            parser.on_chunk_body(on_chunk);
            auto [rec, rn] = co_await http::async_read(socket, buffer, parser, asio::as_tuple(asio::use_awaitable));
            ok = !rec && parser.get().result() == http::status::ok && !delays.empty();
            if (ok) r.latency_us.insert(r.latency_us.end(), delays.begin(), delays.end());
            if (rec || !parser.get().keep_alive()) connected = false;
        }
        ++(ok ? r.ok : r.errors);
    }
}

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

int usage(const char* why) {
    std::fprintf(stderr,
                 "swarm_bench_dispatch_load: %s\nusage: swarm_bench_dispatch_load --target HOST:PORT "
                 "--mode rate|saturate|stream [--rate R] [--seconds S] [--connections C] [--pid PID] [--model NAME]\n",
                 why);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (i + 1 >= argc) return usage("every option takes a value");
        const std::string v = argv[++i];
        try {
            if (a == "--target") {
                const auto colon = v.rfind(':');
                if (colon == std::string::npos) return usage("--target takes HOST:PORT");
                o.host = v.substr(0, colon);
                o.port = v.substr(colon + 1);
            } else if (a == "--mode") {
                o.mode = v;
            } else if (a == "--rate") {
                o.rate = std::stod(v);
            } else if (a == "--seconds") {
                o.seconds = std::stod(v);
            } else if (a == "--connections") {
                o.connections = std::stoi(v);
            } else if (a == "--pid") {
                o.pid = std::stol(v);
            } else if (a == "--model") {
                o.model = v;
            } else {
                return usage("unknown option");
            }
        } catch (const std::exception&) {
            return usage("a number was expected");
        }
    }
    if (o.host.empty()) return usage("--target is required");
    if (o.mode != "rate" && o.mode != "saturate" && o.mode != "stream") return usage("--mode must be rate, saturate or stream");
    if (!(o.rate > 0) || !(o.seconds > 0) || o.connections < 1) return usage("--rate, --seconds and --connections must be > 0");

    asio::io_context io(1);
    tcp::resolver resolver(io);
    boost::system::error_code ec;
    const auto where = resolver.resolve(o.host, o.port, ec);
    if (ec) return usage("cannot resolve --target");
    results r;
    const auto t0 = steady::now() + std::chrono::milliseconds(50);
    const auto end = t0 + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.seconds));
    const double cpu0 = o.pid ? cpu_seconds(o.pid) : 0;
    for (int k = 0; k < o.connections; ++k) asio::co_spawn(io, worker(k, o, where, t0, end, r), asio::detached);
    io.run();
    const double elapsed = std::chrono::duration<double>(steady::now() - t0).count();
    const double cpu = o.pid ? cpu_seconds(o.pid) - cpu0 : 0;
    auto& v = r.latency_us;
    fmt::print(R"({{"mode":"{}","ok":{},"errors":{},"seconds":{:.3f},"rps":{:.1f},"p50_us":{:.1f},"p99_us":{:.1f},"p999_us":{:.1f},"samples":{},"target_cpu_s":{:.3f}}})"
               "\n",
               o.mode, r.ok, r.errors, elapsed, static_cast<double>(r.ok) / elapsed, percentile(v, 0.5), percentile(v, 0.99),
               percentile(v, 0.999), v.size(), cpu);
    return r.ok > 0 ? 0 : 1;
}
