// A fast stub OpenAI backend for the dispatch side-by-side benchmark (bench/dispatch/run-side-by-side): the
// fixed point every proxy is measured against, so it does as little as possible per request.
//
//   swarm_bench_dispatch_stub [--listen 127.0.0.1:0] [--port-file PATH] [--chunks N] [--chunk-interval-us U]
//
// One thread, HTTP/1.1 keep-alive. GET /v1/models lists the model "stub". POST /v1/chat/completions (or
// /v1/completions) answers a 1 KB chat.completion; with "stream":true in the body it answers N SSE chunks
// (chunked transfer encoding), one every U microseconds, each token's text carrying "t=" and the steady-clock
// nanoseconds when it was written, so a client on the same machine measures each chunk's one-way delay (in the
// text, not in a field of its own, because proxies that rebuild chunks, LiteLLM's, keep only known
// fields). Prints "listening on 127.0.0.1:PORT".
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

struct options {
    std::string host = "127.0.0.1";
    unsigned short port = 0;
    std::string port_file;
    int chunks = 20;
    int chunk_interval_us = 500;
};

std::string whole_response() {
    // A chat.completion whose body is 1 KB (padded in the content), with its headers.
    const std::string head = R"({"id":"chatcmpl-stub","object":"chat.completion","created":1,"model":"stub","choices":[{"index":0,"message":{"role":"assistant","content":")";
    const std::string tail = R"("},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":200,"total_tokens":208}})";
    const std::string body = head + std::string(1024 - head.size() - tail.size(), 'x') + tail;
    return fmt::format("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}", body.size(), body);
}

std::string models_response() {
    const std::string body = R"({"object":"list","data":[{"id":"stub","object":"model","created":1,"owned_by":"swarm-bench"}]})";
    return fmt::format("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}", body.size(), body);
}

std::string chunk(std::string_view payload) { return fmt::format("{:x}\r\n{}\r\n", payload.size(), payload); }

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

asio::awaitable<void> serve(tcp::socket socket, const options& o) {
    static const std::string whole = whole_response();
    static const std::string models = models_response();
    static const std::string not_found =
        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 38\r\n\r\n"
        R"({"error":{"message":"no such route"}})" "\n";
    socket.set_option(tcp::no_delay(true));
    beast::flat_buffer buffer;
    asio::steady_timer timer(socket.get_executor());
    for (;;) {
        http::request<http::string_body> req;
        auto [ec, n] = co_await http::async_read(socket, buffer, req, asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        const std::string_view target = req.target();
        if (req.method() == http::verb::get && target == "/v1/models") {
            co_await asio::async_write(socket, asio::buffer(models), asio::as_tuple(asio::use_awaitable));
        } else if (req.method() == http::verb::post &&
                   (target == "/v1/chat/completions" || target == "/v1/completions")) {
            const bool stream = req.body().find("\"stream\":true") != std::string::npos ||
                                req.body().find("\"stream\": true") != std::string::npos;
            if (!stream) {
                auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(whole), asio::as_tuple(asio::use_awaitable));
                if (wec) co_return;
                continue;
            }
            std::string out = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n";
            for (int i = 0; i < o.chunks; ++i) {
                out += chunk(fmt::format(
                    "data: {{\"id\":\"chatcmpl-stub\",\"object\":\"chat.completion.chunk\",\"model\":\"stub\","
                    "\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token{} t={} \"}},\"finish_reason\":null}}]}}\n\n",
                    i, now_ns()));
                auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
                if (wec) co_return;
                out.clear();
                timer.expires_after(std::chrono::microseconds(o.chunk_interval_us));
                co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
            }
            out += chunk("data: [DONE]\n\n");
            out += "0\r\n\r\n";
            auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(out), asio::as_tuple(asio::use_awaitable));
            if (wec) co_return;
        } else {
            co_await asio::async_write(socket, asio::buffer(not_found), asio::as_tuple(asio::use_awaitable));
        }
        if (!req.keep_alive()) co_return;
    }
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, const options& o) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) continue;
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), o), asio::detached);
    }
}

int usage(const char* why) {
    std::fprintf(stderr, "swarm_bench_dispatch_stub: %s\nusage: swarm_bench_dispatch_stub [--listen HOST:PORT] "
                         "[--port-file PATH] [--chunks N] [--chunk-interval-us U]\n", why);
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
            if (a == "--listen") {
                const auto colon = v.rfind(':');
                if (colon == std::string::npos) return usage("--listen takes HOST:PORT");
                o.host = v.substr(0, colon);
                o.port = static_cast<unsigned short>(std::stoul(v.substr(colon + 1)));
            } else if (a == "--port-file") {
                o.port_file = v;
            } else if (a == "--chunks") {
                o.chunks = std::stoi(v);
            } else if (a == "--chunk-interval-us") {
                o.chunk_interval_us = std::stoi(v);
            } else {
                return usage("unknown option");
            }
        } catch (const std::exception&) {
            return usage("a number was expected");
        }
    }
    if (o.chunks < 1 || o.chunk_interval_us < 0) return usage("--chunks must be >= 1 and --chunk-interval-us >= 0");
    asio::io_context io(1);
    boost::system::error_code ec;
    const auto address = asio::ip::make_address(o.host, ec);
    if (ec) return usage("bad listen address");
    tcp::acceptor acceptor(io);
    const tcp::endpoint where{address, o.port};
    acceptor.open(where.protocol(), ec);
    if (!ec) acceptor.bind(where, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        std::fprintf(stderr, "swarm_bench_dispatch_stub: cannot listen on %s:%u: %s\n", o.host.c_str(), o.port,
                     ec.message().c_str());
        return 1;
    }
    const auto port = acceptor.local_endpoint().port();
    if (!o.port_file.empty()) std::ofstream(o.port_file) << port << "\n";
    fmt::print("listening on {}:{}\n", o.host, port);
    std::fflush(stdout);
    asio::co_spawn(io, accept_loop(acceptor, o), asio::detached);
    io.run();
}
