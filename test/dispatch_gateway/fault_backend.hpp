// Test double: a fault-injecting model server. A real Beast HTTP/1.1 server on loopback, on its own thread,
// that answers POSTs as the test scripts it (status, delay, connection reset, server-sent events with a hold
// in the middle) and counts what it saw (requests, bodies, headers, clients that went away while it waited).
#pragma once

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

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>

namespace swarm_test {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

struct behaviour {
    unsigned status = 200;
    std::string body = R"({"id":"r1","object":"chat.completion","choices":[]})";
    std::chrono::milliseconds delay{0}; // before the response head
    bool reset = false;                 // abort the connection (RST) instead of answering
    std::vector<std::string> events;    // non-empty: a chunked text/event-stream, one chunk per event
    std::size_t hold_after = SIZE_MAX;  // events sent before waiting for release()
    bool reset_at_hold = false;         // when released from the hold: abort the connection (RST)
};

class fault_backend {
public:
    explicit fault_backend(std::vector<std::string> models) : models_(std::move(models)) {
        acceptor_.open(tcp::v4());
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind({asio::ip::address_v4::loopback(), 0});
        acceptor_.listen();
        port_ = acceptor_.local_endpoint().port();
        asio::co_spawn(io_, accept(), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }
    ~fault_backend() {
        asio::post(io_, [this] {
            stopping_ = true;
            boost::system::error_code ec;
            acceptor_.close(ec);
            for (auto* s : sockets_) s->close(ec);
        });
        thread_.join();
    }
    fault_backend(const fault_backend&) = delete;
    fault_backend& operator=(const fault_backend&) = delete;

    std::uint16_t port() const { return port_; }
    std::string url() const { return fmt::format("http://127.0.0.1:{}", port_); }

    void set(behaviour b) {
        std::lock_guard lock(mu_);
        behaviour_ = std::move(b);
    }
    void release() { released_ = true; }
    void set_metrics(std::string text) {
        std::lock_guard lock(mu_);
        metrics_ = std::move(text);
    }

    int posts() const { return posts_; }
    int held() const { return held_; }           // requests waiting in a delay or a hold right now
    int cancelled() const { return cancelled_; } // clients that closed while the backend was waiting
    int connections() const { return connections_; }
    std::string last_body() const {
        std::lock_guard lock(mu_);
        return last_body_;
    }
    std::string last_header(std::string_view name) const {
        std::lock_guard lock(mu_);
        auto it = last_headers_.find(std::string(name));
        return it == last_headers_.end() ? std::string{} : it->second;
    }
    std::string last_target() const {
        std::lock_guard lock(mu_);
        return last_target_;
    }

private:
    static constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

    asio::awaitable<void> accept() {
        while (!stopping_) {
            auto [ec, s] = co_await acceptor_.async_accept(nothrow);
            if (ec) co_return;
            ++connections_;
            asio::co_spawn(io_, serve(std::move(s)), asio::detached);
        }
    }

    static bool peer_closed(tcp::socket& s) {
        char b = 0;
        const auto n = ::recv(s.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
        return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
    }

    // Waits `d`, or until released when `until_released`; false when the client went away meanwhile.
    asio::awaitable<bool> wait(tcp::socket& s, std::chrono::milliseconds d, bool until_released) {
        ++held_;
        asio::steady_timer t(io_);
        const auto end = std::chrono::steady_clock::now() + d;
        bool alive = true;
        while (!stopping_ && (until_released ? !released_.load() : std::chrono::steady_clock::now() < end)) {
            if (peer_closed(s)) {
                ++cancelled_;
                alive = false;
                break;
            }
            t.expires_after(std::chrono::milliseconds(5));
            co_await t.async_wait(nothrow);
        }
        --held_;
        co_return alive && !stopping_;
    }

    static void abort(tcp::socket& s) {
        boost::system::error_code ec;
        s.set_option(asio::socket_base::linger(true, 0), ec);
        s.close(ec);
    }

    asio::awaitable<void> serve(tcp::socket s) {
        sockets_.insert(&s);
        boost::beast::flat_buffer buffer;
        for (;;) {
            http::request<http::string_body> req;
            auto [ec, n] = co_await http::async_read(s, buffer, req, nothrow);
            if (ec) break;
            std::string out;
            if (req.method() == http::verb::get) {
                std::lock_guard lock(mu_);
                if (req.target() == "/v1/models") {
                    std::string data;
                    for (const auto& m : models_)
                        data += fmt::format("{}{{\"id\":\"{}\",\"object\":\"model\",\"created\":1,\"owned_by\":\"fault\"}}",
                                            data.empty() ? "" : ",", m);
                    out = reply(200, "application/json", fmt::format(R"({{"object":"list","data":[{}]}})", data));
                } else if (req.target() == "/metrics") {
                    out = metrics_.empty() ? reply(404, "text/plain", "no metrics")
                                           : reply(200, "text/plain; version=0.0.4", metrics_);
                } else {
                    out = reply(200, "application/json", "{}"); // /health, /v2/health/ready, /v2/models/x/ready
                }
            } else {
                behaviour b;
                {
                    std::lock_guard lock(mu_);
                    b = behaviour_;
                    last_body_ = req.body();
                    last_target_ = std::string(req.target());
                    last_headers_.clear();
                    for (const auto& f : req) {
                        std::string name(f.name_string());
                        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                        last_headers_[name] = std::string(f.value());
                    }
                }
                ++posts_;
                if (b.delay.count() > 0 && !co_await wait(s, b.delay, false)) break;
                if (b.reset) {
                    abort(s);
                    break;
                }
                if (b.events.empty()) {
                    out = reply(b.status, "application/json", b.body);
                } else {
                    std::string head = fmt::format("HTTP/1.1 {} X\r\nContent-Type: text/event-stream\r\n"
                                                   "Transfer-Encoding: chunked\r\n\r\n",
                                                   b.status);
                    auto [wec, wn] = co_await asio::async_write(s, asio::buffer(head), nothrow);
                    if (wec) break;
                    bool ok = true;
                    for (std::size_t i = 0; i < b.events.size() && ok; ++i) {
                        if (i == b.hold_after) {
                            if (!co_await wait(s, {}, true)) {
                                ok = false;
                                break;
                            }
                            if (b.reset_at_hold) {
                                abort(s);
                                ok = false;
                                break;
                            }
                        }
                        auto event = fmt::format("data: {}\n\n", b.events[i]);
                        auto chunk = fmt::format("{:x}\r\n{}\r\n", event.size(), event);
                        auto [cec, cn] = co_await asio::async_write(s, asio::buffer(chunk), nothrow);
                        ok = !cec;
                    }
                    if (!ok) break;
                    out = "0\r\n\r\n";
                }
            }
            auto [wec, wn] = co_await asio::async_write(s, asio::buffer(out), nothrow);
            if (wec || !req.keep_alive()) break;
        }
        sockets_.erase(&s);
    }

    static std::string reply(unsigned status, std::string_view type, std::string_view body) {
        return fmt::format("HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{}", status, type,
                           body.size(), body);
    }

    std::vector<std::string> models_;
    asio::io_context io_{1};
    tcp::acceptor acceptor_{io_};
    std::uint16_t port_ = 0;
    std::thread thread_;
    bool stopping_ = false;
    std::set<tcp::socket*> sockets_;

    mutable std::mutex mu_;
    behaviour behaviour_;
    std::string metrics_;
    std::string last_body_;
    std::string last_target_;
    std::map<std::string, std::string> last_headers_;
    std::atomic<bool> released_{false};
    std::atomic<int> posts_{0};
    std::atomic<int> held_{0};
    std::atomic<int> cancelled_{0};
    std::atomic<int> connections_{0};
};

} // namespace swarm_test
