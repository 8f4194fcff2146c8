// A protocol that records what the driver feeds it, and helpers to drive it from a test thread with bounds.
#pragma once

#include <swarm/net/driver.hpp>
#include <swarm/net/runtime.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::test {

using namespace std::chrono_literals;
namespace net = swarm::net;

inline constexpr auto wait_limit = 10s; // generous: ASan and a shared 2-core machine

enum class kind { start, datagram, timer, open, frame, writable, closed, stop };

struct event {
    kind what{};
    net::endpoint peer{};
    std::vector<std::byte> data{};
    std::uint64_t id = 0;
    bool inbound = false;
    boost::system::error_code reason{};
    std::size_t queued = 0;
};

inline std::vector<std::byte> bytes(std::string_view text) {
    std::vector<std::byte> out(text.size());
    if (!text.empty()) std::memcpy(out.data(), text.data(), text.size());
    return out;
}

inline std::string text(const std::vector<std::byte>& data) {
    return {reinterpret_cast<const char*>(data.data()), data.size()};
}

/// Every event a probe saw, in order; waits are bounded.
class journal {
public:
    void push(event e) {
        {
            std::lock_guard lock(mutex_);
            events_.push_back(std::move(e));
        }
        changed_.notify_all();
    }

    /// The first event matching `match` at position `from` or later, waiting for it at most `limit`.
    std::optional<event> wait(const std::function<bool(const event&)>& match,
                              std::chrono::milliseconds limit = wait_limit, std::size_t from = 0) {
        std::unique_lock lock(mutex_);
        std::optional<event> found;
        changed_.wait_for(lock, limit, [&] {
            for (std::size_t i = from; i < events_.size(); ++i)
                if (match(events_[i])) {
                    found = events_[i];
                    return true;
                }
            return false;
        });
        return found;
    }

    std::size_t size() const {
        std::lock_guard lock(mutex_);
        return events_.size();
    }

    /// Waits until at least `n` events match; returns how many did.
    std::size_t wait_count(const std::function<bool(const event&)>& match, std::size_t n,
                           std::chrono::milliseconds limit = wait_limit) {
        std::unique_lock lock(mutex_);
        std::size_t count = 0;
        changed_.wait_for(lock, limit, [&] {
            count = 0;
            for (const auto& e : events_) count += match(e) ? 1 : 0;
            return count >= n;
        });
        return count;
    }

    std::vector<event> all() const {
        std::lock_guard lock(mutex_);
        return events_;
    }

private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<event> events_;
};

inline auto is(kind k) {
    return [k](const event& e) { return e.what == k; };
}
inline auto is(kind k, std::uint64_t id) {
    return [k, id](const event& e) { return e.what == k && e.id == id; };
}

class probe;

/// Optional behaviour, run inside the protocol's handlers.
struct hooks {
    std::function<void(probe&, net::stream_id, bool inbound)> on_open;
    std::function<void(probe&, net::stream_id)> on_writable;
};

class probe final : public net::protocol {
public:
    probe(net::transport& t, std::shared_ptr<journal> j, hooks h)
        : transport_(t), journal_(std::move(j)), hooks_(std::move(h)) {}

    net::transport& transport() { return transport_; }
    journal& events() { return *journal_; }
    /// Counts calls into the protocol that overlapped another one: the strand guarantees zero.
    std::atomic<int> overlaps{0};
    std::uint64_t counter = 0; // touched only on the strand, on purpose without synchronisation

    class scope {
    public:
        explicit scope(probe& p) : p_(p) {
            if (p_.inside_.fetch_add(1) != 0) ++p_.overlaps;
        }
        ~scope() { p_.inside_.fetch_sub(1); }
        scope(const scope&) = delete;
        scope& operator=(const scope&) = delete;

    private:
        probe& p_;
    };

    void on_start() override {
        scope s(*this);
        journal_->push({.what = kind::start});
    }
    void on_datagram(const net::endpoint& from, std::span<const std::byte> payload) override {
        scope s(*this);
        ++counter;
        journal_->push({.what = kind::datagram, .peer = from, .data = {payload.begin(), payload.end()}});
    }
    void on_timer(net::timer_id id) override {
        scope s(*this);
        journal_->push({.what = kind::timer, .id = id});
    }
    void on_stream_open(net::stream_id id, const net::endpoint& peer, bool inbound) override {
        scope s(*this);
        journal_->push({.what = kind::open, .peer = peer, .id = id, .inbound = inbound});
        if (hooks_.on_open) hooks_.on_open(*this, id, inbound);
    }
    void on_stream_frame(net::stream_id id, std::span<const std::byte> frame) override {
        scope s(*this);
        journal_->push({.what = kind::frame, .data = {frame.begin(), frame.end()}, .id = id});
    }
    void on_stream_writable(net::stream_id id) override {
        scope s(*this);
        journal_->push({.what = kind::writable, .id = id, .queued = transport_.queued_bytes(id)});
        if (hooks_.on_writable) hooks_.on_writable(*this, id);
    }
    void on_stream_closed(net::stream_id id, boost::system::error_code reason) override {
        scope s(*this);
        journal_->push({.what = kind::closed, .id = id, .reason = reason});
    }
    void on_stop() override {
        scope s(*this);
        journal_->push({.what = kind::stop});
    }

private:
    net::transport& transport_;
    std::shared_ptr<journal> journal_;
    hooks hooks_;
    std::atomic<int> inside_{0};
};

inline net::driver_config loopback_v4() {
    net::driver_config config;
    config.bind = net::endpoint::v4(0x7f000001, 0);
    return config;
}

inline net::driver_config loopback_v6() {
    net::driver_config config;
    config.bind = *net::endpoint::parse("[::1]:0");
    return config;
}

struct node {
    std::shared_ptr<journal> events = std::make_shared<journal>();
    std::optional<net::socket_driver> driver;

    net::endpoint address() const { return driver->local_endpoint(); }
    net::driver_stats stats() const { return driver->stats(); }

    /// Runs `fn` on the node's strand and returns its result; throws if that takes longer than the limit.
    template <class F>
    auto call(F fn) {
        using R = decltype(fn(std::declval<probe&>()));
        auto done = std::make_shared<std::promise<R>>();
        auto result = done->get_future();
        driver->post([done, fn = std::move(fn)](net::protocol& p) mutable {
            auto& self = dynamic_cast<probe&>(p);
            if constexpr (std::is_void_v<R>) {
                fn(self);
                done->set_value();
            } else {
                done->set_value(fn(self));
            }
        });
        if (result.wait_for(wait_limit) != std::future_status::ready)
            throw std::runtime_error("the node did not run the call in time");
        return result.get();
    }
};

inline detailed_result<node> try_start(boost::asio::any_io_executor executor, net::driver_config config,
                                       hooks h = {}) {
    node n;
    auto events = n.events;
    auto driver = net::socket_driver::create(std::move(executor), std::move(config),
                                             [events, h](net::transport& t) -> std::unique_ptr<net::protocol> {
                                                 return std::make_unique<probe>(t, events, h);
                                             });
    if (!driver) return driver.error();
    n.driver.emplace(std::move(*driver));
    return n;
}

inline node start(boost::asio::any_io_executor executor, net::driver_config config = loopback_v4(), hooks h = {}) {
    auto n = try_start(std::move(executor), std::move(config), std::move(h));
    if (!n) throw std::runtime_error("cannot start a node: " + n.error().describe());
    if (!n->events->wait(is(kind::start))) throw std::runtime_error("the node did not start in time");
    return std::move(*n);
}

/// Opens a stream from `from` to `to` and waits for both ends; returns {outbound id, inbound id}.
inline std::pair<net::stream_id, net::stream_id> open_stream(node& from, node& to) {
    const auto mark = to.events->size();
    const auto target = to.address();
    const auto id = from.call([target](probe& p) { return p.transport().connect(target); });
    if (!from.events->wait(is(kind::open, id))) throw std::runtime_error("the stream did not open");
    const auto accepted =
        to.events->wait([](const event& e) { return e.what == kind::open && e.inbound; }, wait_limit, mark);
    if (!accepted) throw std::runtime_error("the peer did not see the stream open");
    return {id, accepted->id};
}

} // namespace swarm::test
