// A raw HTTP/1.1 client for the gateway tests: sends exactly the bytes a test writes (so it can send malformed
// and smuggling requests) and reads with a deadline on every call, so a test never hangs.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace swarm_test {

using namespace std::chrono_literals;

struct reply {
    unsigned status = 0; // 0: no complete response arrived
    std::map<std::string, std::string> headers; // lower-case names
    std::string body;
    std::string header(std::string_view name) const {
        auto it = headers.find(std::string(name));
        return it == headers.end() ? std::string{} : it->second;
    }
};

class raw_client {
public:
    explicit raw_client(std::uint16_t port) {
        socket_.connect({boost::asio::ip::address_v4::loopback(), port});
        socket_.set_option(boost::asio::ip::tcp::no_delay(true));
    }

    void send(std::string_view bytes) {
        boost::system::error_code ec;
        boost::asio::write(socket_, boost::asio::buffer(bytes), ec);
    }

    /// Reads until `needle` is in what was read, the peer closes, or `timeout`; true when the needle was found.
    bool read_until(std::string_view needle, std::chrono::milliseconds timeout = 5s) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (data_.find(needle) == std::string::npos) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
            if (left <= 0ms || !read_some(left)) return data_.find(needle) != std::string::npos;
        }
        return true;
    }

    /// True when the peer closed the connection within `timeout`.
    bool closed_within(std::chrono::milliseconds timeout) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
            if (!read_some(left)) return eof_;
        }
        return false;
    }

    /// One complete response (parsed from what arrives), or status 0 after `timeout`.
    reply read_response(std::chrono::milliseconds timeout = 10s) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            boost::beast::http::response_parser<boost::beast::http::string_body> p;
            p.eager(true);
            boost::system::error_code ec;
            std::size_t used = 0;
            while (used < data_.size() && !p.is_done()) {
                auto n = p.put(boost::asio::buffer(data_.data() + used, data_.size() - used), ec);
                if (ec) break;
                used += n;
                if (n == 0) break;
            }
            if (!p.is_done() && eof_ && p.is_header_done() && !p.chunked() && !p.content_length()) {
                p.put_eof(ec); // a body delimited by the close
            }
            if (p.is_done()) {
                reply r;
                r.status = p.get().result_int();
                for (const auto& f : p.get()) {
                    std::string name(f.name_string());
                    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                    r.headers[name] = std::string(f.value());
                }
                r.body = p.get().body();
                data_.erase(0, used);
                return r;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
            if (left <= 0ms || !read_some(left)) {
                if (eof_ && !data_.empty() && left > 0ms) continue; // one more parse with put_eof
                return {};
            }
        }
    }

    const std::string& data() const { return data_; }
    void close() {
        boost::system::error_code ec;
        socket_.close(ec);
    }

private:
    bool read_some(std::chrono::milliseconds timeout) {
        if (eof_) return false;
        bool done = false;
        boost::system::error_code ec;
        std::size_t n = 0;
        socket_.async_read_some(boost::asio::buffer(buf_), [&](boost::system::error_code e, std::size_t k) {
            ec = e;
            n = k;
            done = true;
        });
        io_.restart();
        io_.run_for(timeout);
        if (!done) {
            socket_.cancel();
            io_.restart();
            io_.run();
            data_.append(buf_.data(), n);
            return false;
        }
        data_.append(buf_.data(), n);
        if (ec) eof_ = true;
        return !ec;
    }

    boost::asio::io_context io_;
    boost::asio::ip::tcp::socket socket_{io_};
    std::array<char, 16384> buf_{};
    std::string data_;
    bool eof_ = false;
};

inline std::string http_request(std::string_view method, std::string_view target, std::string_view body,
                                std::string_view extra_headers = {}) {
    return fmt::format("{} {} HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n{}Content-Length: {}\r\n\r\n{}",
                       method, target, extra_headers, body.size(), body);
}

/// One request on a new connection.
inline reply call(std::uint16_t port, std::string_view method, std::string_view target, std::string_view body = {},
                  std::string_view extra_headers = {}, std::chrono::milliseconds timeout = 10s) {
    raw_client c(port);
    c.send(http_request(method, target, body, extra_headers));
    return c.read_response(timeout);
}

} // namespace swarm_test
