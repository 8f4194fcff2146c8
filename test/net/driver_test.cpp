// The real driver on loopback: datagrams, timers, configuration, the runtime, name resolution.
#include "harness.hpp"

#include <swarm/net/asio_endpoint.hpp>
#include <swarm/net/resolve.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <thread>

namespace swarm::test {
namespace {

namespace asio = boost::asio;

class driver : public ::testing::Test {
protected:
    swarm::runtime runtime_{2}; // two threads, so that a missing strand shows (under TSan especially)
    asio::any_io_executor ex() { return runtime_.get_executor(); }
};

auto datagram_saying(std::string_view what) {
    return [what = std::string(what)](const event& e) { return e.what == kind::datagram && text(e.data) == what; };
}

TEST_F(driver, two_nodes_exchange_datagrams_over_ipv4) {
    auto a = start(ex());
    auto b = start(ex());
    EXPECT_TRUE(a.address().is_v4());
    EXPECT_NE(a.address().port(), 0);
    const auto to = b.address();
    a.call([to](probe& p) { p.transport().send(to, bytes("hello")); });
    const auto got = b.events->wait(datagram_saying("hello"));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->peer, a.address());

    const auto back = a.address();
    b.call([back](probe& p) { p.transport().send(back, bytes("hi yourself")); });
    EXPECT_TRUE(a.events->wait(datagram_saying("hi yourself")));
    EXPECT_EQ(a.stats().datagrams_sent, 1u);
    EXPECT_EQ(a.stats().datagram_bytes_sent, 5u);
    EXPECT_EQ(b.stats().datagrams_received, 1u);
    EXPECT_EQ(a.stats().datagrams_received, 1u);
}

TEST_F(driver, two_nodes_exchange_datagrams_over_ipv6) {
    auto first = try_start(ex(), loopback_v6());
    if (!first) GTEST_SKIP() << "no IPv6 loopback here: " << first.error().describe();
    auto a = std::move(*first);
    auto b = start(ex(), loopback_v6());
    ASSERT_TRUE(a.events->wait(is(kind::start)));
    EXPECT_FALSE(a.address().is_v4());
    EXPECT_EQ(a.address().to_string().rfind("[::1]:", 0), 0u);
    const auto to = b.address();
    a.call([to](probe& p) { p.transport().send(to, bytes("over six")); });
    const auto got = b.events->wait(datagram_saying("over six"));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->peer, a.address());
}

TEST_F(driver, a_dual_stack_node_talks_to_ipv4_peers) {
    auto config = loopback_v4();
    config.bind = *net::endpoint::parse("[::]:0");
    config.advertise = *net::endpoint::parse("[::1]:0");
    auto first = try_start(ex(), config);
    if (!first) GTEST_SKIP() << "no IPv6 here: " << first.error().describe();
    auto dual = std::move(*first);
    ASSERT_TRUE(dual.events->wait(is(kind::start)));
    auto v4 = start(ex());
    const auto port = dual.driver->bound_endpoint().port();
    const auto to = net::endpoint::v4(0x7f000001, port);
    v4.call([to](probe& p) { p.transport().send(to, bytes("from four")); });
    const auto got = dual.events->wait(datagram_saying("from four"));
    ASSERT_TRUE(got);
    // The sender shows up as the IPv4 endpoint it advertises, not as an IPv4-mapped IPv6 one.
    EXPECT_EQ(got->peer, v4.address());
    const auto back = got->peer;
    dual.call([back](probe& p) { p.transport().send(back, bytes("from six")); });
    EXPECT_TRUE(v4.events->wait(datagram_saying("from six")));
}

TEST_F(driver, oversize_datagrams_are_dropped_and_counted_on_both_sides) {
    auto small = loopback_v4();
    small.max_datagram_size = 1000;
    auto a = start(ex(), small);
    auto b = start(ex(), small);
    auto big = start(ex());
    const auto to = b.address();
    EXPECT_EQ(a.call([](probe& p) { return p.transport().max_datagram_size(); }), 1000u);

    a.call([to](probe& p) {
        p.transport().send(to, std::vector<std::byte>(1001));
        p.transport().send(to, bytes("after the big one"));
    });
    EXPECT_EQ(a.stats().datagrams_dropped_oversize, 1u);
    EXPECT_EQ(a.stats().datagrams_sent, 1u);

    // A peer with a larger limit sends one; the receiver drops it.
    big.call([to](probe& p) {
        p.transport().send(to, std::vector<std::byte>(2000));
        p.transport().send(to, bytes("small again"));
    });
    ASSERT_TRUE(b.events->wait(datagram_saying("small again")));
    ASSERT_TRUE(b.events->wait(datagram_saying("after the big one")));
    for (const auto& e : b.events->all()) EXPECT_LE(e.data.size(), 1000u);
    EXPECT_EQ(b.stats().datagrams_dropped_oversize, 1u);
    EXPECT_EQ(b.stats().datagrams_received, 2u);
}

TEST_F(driver, a_datagram_of_the_maximum_size_arrives_whole) {
    auto a = start(ex());
    auto b = start(ex());
    std::vector<std::byte> payload(65'507);
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::byte>(i * 7);
    const auto to = b.address();
    a.call([to, payload](probe& p) { p.transport().send(to, payload); });
    const auto got = b.events->wait(is(kind::datagram));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->data, payload);
}

TEST_F(driver, an_ipv4_node_counts_a_send_to_an_ipv6_peer_as_an_error) {
    auto a = start(ex());
    const auto v6 = *net::endpoint::parse("[::1]:9");
    a.call([v6](probe& p) { p.transport().send(v6, bytes("x")); });
    EXPECT_EQ(a.stats().datagrams_dropped_send_error, 1u);
}

TEST_F(driver, timers_fire_rearm_and_cancel) {
    auto a = start(ex());
    a.call([](probe& p) {
        auto& t = p.transport();
        const auto now = t.now();
        t.set_timer(1, now + 20ms);  // fires
        t.set_timer(2, now + 10ms);  // moved later, past timer 3
        t.set_timer(2, now + 150ms);
        t.set_timer(3, now + 60ms);  // fires while 2 waits
        t.set_timer(4, now + 30ms);  // cancelled
        t.cancel_timer(4);
        t.set_timer(5, now + 500ms); // moved earlier
        t.set_timer(5, now + 40ms);
        t.cancel_timer(99);          // never armed: harmless
    });
    ASSERT_TRUE(a.events->wait(is(kind::timer, 2)));
    std::vector<std::uint64_t> fired;
    for (const auto& e : a.events->all())
        if (e.what == kind::timer) fired.push_back(e.id);
    EXPECT_EQ(fired, (std::vector<std::uint64_t>{1, 5, 3, 2}));

    // A timer can be armed again from its own expiry.
    a.call([](probe& p) { p.transport().set_timer(1, p.transport().now() + 5ms); });
    EXPECT_EQ(a.events->wait_count(is(kind::timer, 1), 2), 2u);
}

TEST_F(driver, post_runs_on_the_strand_even_with_two_threads) {
    swarm::runtime two(2);
    ASSERT_EQ(two.thread_count(), 2u);
    auto a = start(two.get_executor());
    auto b = start(two.get_executor());
    constexpr int posters = 4, per_poster = 300, datagrams = 200;
    std::vector<std::thread> threads;
    for (int t = 0; t < posters; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < per_poster; ++i) a.driver->post([](net::protocol& p) {
                auto& self = dynamic_cast<probe&>(p);
                probe::scope s(self);
                ++self.counter;
            });
        });
    const auto to = a.address();
    b.call([to](probe& p) {
        for (int i = 0; i < datagrams; ++i) p.transport().send(to, bytes("tick"));
    });
    for (auto& t : threads) t.join();
    // Loopback may drop datagrams under load; posts are never dropped.
    const auto received = a.events->wait_count(is(kind::datagram), datagrams, 2s);
    const auto [count, overlaps] = a.call([](probe& p) { return std::pair{p.counter, p.overlaps.load()}; });
    EXPECT_EQ(count, std::uint64_t{posters * per_poster} + received);
    EXPECT_EQ(overlaps, 0);
    a.driver.reset();
    b.driver.reset();
    two.stop();
}

TEST_F(driver, an_exception_from_the_protocol_is_logged_and_the_node_keeps_serving) {
    struct thrower final : net::protocol {
        std::shared_ptr<std::atomic<int>> seen;
        explicit thrower(std::shared_ptr<std::atomic<int>> s) : seen(std::move(s)) {}
        void on_datagram(const net::endpoint&, std::span<const std::byte>) override {
            ++*seen;
            throw std::runtime_error("bad datagram");
        }
    };
    auto seen = std::make_shared<std::atomic<int>>(0);
    auto errors = std::make_shared<std::atomic<int>>(0);
    auto config = loopback_v4();
    config.log.level = log_level::error;
    config.log.sink = [errors](log_level, std::string_view line) {
        if (line.find("bad datagram") != std::string_view::npos) ++*errors;
    };
    auto d = net::socket_driver::create(ex(), config, [seen](net::transport&) {
        return std::make_unique<thrower>(seen);
    });
    ASSERT_TRUE(d);
    auto a = start(ex());
    const auto to = d->local_endpoint();
    a.call([to](probe& p) {
        p.transport().send(to, bytes("one"));
        p.transport().send(to, bytes("two"));
    });
    for (int i = 0; i < 1000 && seen->load() < 2; ++i) std::this_thread::sleep_for(5ms);
    EXPECT_EQ(seen->load(), 2);
    EXPECT_EQ(errors->load(), 2);
    EXPECT_TRUE(d->stop_and_wait());
}

TEST_F(driver, stop_and_wait_on_the_strand_starts_the_stop_without_blocking) {
    auto a = start(ex());
    auto* self = &*a.driver;
    std::promise<bool> waited;
    a.driver->post([self, &waited](net::protocol&) { waited.set_value(self->stop_and_wait()); });
    auto f = waited.get_future();
    ASSERT_EQ(f.wait_for(wait_limit), std::future_status::ready);
    EXPECT_FALSE(f.get());
    EXPECT_TRUE(a.driver->stop_and_wait());
    EXPECT_TRUE(a.events->wait(is(kind::stop), 0ms));
}

TEST_F(driver, advertise_address_is_what_local_endpoint_reports) {
    auto config = loopback_v4();
    config.advertise = *net::endpoint::parse("192.0.2.7:7946");
    auto a = start(ex(), config);
    EXPECT_EQ(a.address().to_string(), "192.0.2.7:7946");
    EXPECT_EQ(a.driver->bound_endpoint().v4_address(), 0x7f000001u);
    EXPECT_NE(a.driver->bound_endpoint().port(), 7946);
    EXPECT_EQ(a.call([](probe& p) { return p.transport().local_endpoint(); }).to_string(), "192.0.2.7:7946");

    // Port 0 in the advertise address means the bound port.
    config.advertise = *net::endpoint::parse("192.0.2.7:0");
    auto b = start(ex(), config);
    EXPECT_EQ(b.address().port(), b.driver->bound_endpoint().port());
    EXPECT_EQ(b.address().v4_address(), 0xc0000207u);
}

TEST_F(driver, udp_and_tcp_share_one_port_and_a_taken_port_is_an_error) {
    auto a = start(ex());
    // The TCP listener is on the same port as the datagrams.
    asio::io_context io;
    asio::ip::tcp::socket raw(io);
    boost::system::error_code ec;
    raw.connect(net::to_asio<asio::ip::tcp>(a.address()), ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_TRUE(a.events->wait([](const event& e) { return e.what == kind::open && e.inbound; }));

    auto config = loopback_v4();
    config.bind = a.address();
    auto clash = try_start(ex(), config);
    ASSERT_FALSE(clash);
    EXPECT_EQ(clash.error().code, asio::error::address_in_use);
    EXPECT_NE(clash.error().message.find(a.address().to_string()), std::string::npos) << clash.error().message;
}

TEST_F(driver, bad_configuration_is_refused_with_a_reason) {
    auto expect_refused = [&](net::driver_config config, std::string_view field) {
        const auto valid = config.validate();
        ASSERT_FALSE(valid) << field;
        EXPECT_EQ(valid.error(), errc::config_invalid_value);
        EXPECT_NE(valid.error().message.find(field), std::string::npos) << valid.error().message;
        auto created = try_start(ex(), config);
        ASSERT_FALSE(created);
        EXPECT_EQ(created.error(), errc::config_invalid_value);
    };
    EXPECT_TRUE(loopback_v4().validate());
    auto c = loopback_v4();
    c.max_datagram_size = 0;
    expect_refused(c, "max_datagram_size");
    c.max_datagram_size = 65'508;
    expect_refused(c, "max_datagram_size");
    auto v6 = loopback_v6();
    v6.max_datagram_size = 65'527;
    EXPECT_TRUE(v6.validate()); // IPv6 has no header inside the 16-bit length
    c = loopback_v4();
    c.max_frame_size = 0;
    expect_refused(c, "max_frame_size");
    c.max_frame_size = std::size_t{1} << 32;
    expect_refused(c, "max_frame_size");
    c = loopback_v4();
    c.connect_timeout = 0s;
    expect_refused(c, "connect_timeout");
    c = loopback_v4();
    c.idle_timeout = -1s;
    expect_refused(c, "idle_timeout");
    c = loopback_v4();
    c.high_watermark = 0;
    expect_refused(c, "high_watermark");
    c = loopback_v4();
    c.low_watermark = c.high_watermark;
    expect_refused(c, "low_watermark");
    c = loopback_v4();
    c.max_streams = 0;
    expect_refused(c, "max_streams");
    c = loopback_v4();
    c.max_queued_datagrams = 0;
    expect_refused(c, "max_queued_datagrams");
    c = loopback_v4();
    c.stop_grace = -1ms;
    expect_refused(c, "stop_grace");
    c = loopback_v4();
    c.advertise = net::endpoint::v4(0, 7946);
    expect_refused(c, "advertise");
}

TEST_F(driver, creation_needs_a_factory_and_an_executor) {
    auto no_factory = net::socket_driver::create(ex(), loopback_v4(), {});
    ASSERT_FALSE(no_factory);
    EXPECT_EQ(no_factory.error(), errc::invalid_argument);
    auto no_executor = net::socket_driver::create({}, loopback_v4(), [](net::transport&) {
        return std::unique_ptr<net::protocol>{};
    });
    ASSERT_FALSE(no_executor);
    EXPECT_EQ(no_executor.error(), errc::invalid_argument);
}

TEST_F(driver, a_factory_that_builds_nothing_leaves_a_stopped_driver) {
    std::vector<std::string> logged;
    std::mutex mutex;
    auto config = loopback_v4();
    config.log.level = log_level::error;
    config.log.sink = [&](log_level, std::string_view line) {
        std::lock_guard lock(mutex);
        logged.emplace_back(line);
    };
    auto d = net::socket_driver::create(ex(), config, [](net::transport&) -> std::unique_ptr<net::protocol> {
        throw std::runtime_error("no luck");
    });
    ASSERT_TRUE(d);
    EXPECT_TRUE(d->stop_and_wait());
    EXPECT_TRUE(d->stopped());
    std::lock_guard lock(mutex);
    ASSERT_FALSE(logged.empty());
    EXPECT_NE(logged.front().find("no luck"), std::string::npos);
}

TEST_F(driver, stop_calls_on_stop_then_done_and_later_posts_are_dropped) {
    auto a = start(ex());
    std::promise<void> done;
    a.driver->stop([&] { done.set_value(); });
    ASSERT_EQ(done.get_future().wait_for(wait_limit), std::future_status::ready);
    EXPECT_TRUE(a.driver->stopped());
    EXPECT_TRUE(a.events->wait(is(kind::stop), 0ms));
    // A second stop only reports completion.
    std::promise<void> again;
    a.driver->stop([&] { again.set_value(); });
    EXPECT_EQ(again.get_future().wait_for(wait_limit), std::future_status::ready);
    std::atomic<bool> ran{false};
    a.driver->post([&](net::protocol&) { ran = true; });
    std::promise<void> flushed;
    asio::post(ex(), [&] { flushed.set_value(); });
    flushed.get_future().wait_for(wait_limit);
    EXPECT_FALSE(ran);
    EXPECT_TRUE(a.driver->stop_and_wait());
}

TEST_F(driver, a_moved_from_driver_is_empty_and_harmless) {
    auto a = start(ex());
    const auto address = a.address();
    net::socket_driver moved = std::move(*a.driver);
    EXPECT_EQ(moved.local_endpoint(), address);
    EXPECT_EQ(a.driver->local_endpoint(), net::endpoint{});
    a.driver->post([](net::protocol&) {});
    EXPECT_TRUE(a.driver->stop_and_wait());
    EXPECT_TRUE(moved.stop_and_wait());
}

TEST(runtime, runs_work_on_its_threads_and_stops_twice) {
    swarm::runtime rt(2);
    EXPECT_EQ(rt.thread_count(), 2u);
    std::promise<std::thread::id> where;
    asio::post(rt.get_executor(), [&] { where.set_value(std::this_thread::get_id()); });
    auto f = where.get_future();
    ASSERT_EQ(f.wait_for(wait_limit), std::future_status::ready);
    EXPECT_NE(f.get(), std::this_thread::get_id());
    // A timer far in the future must not hold stop() up.
    asio::steady_timer far(rt.get_executor(), 1h);
    far.async_wait([](const boost::system::error_code&) {});
    rt.stop();
    rt.stop();
    EXPECT_EQ(rt.thread_count(), 0u);
    swarm::runtime zero(0);
    EXPECT_EQ(zero.thread_count(), 1u);
}

TEST(resolve, localhost_gives_loopback_addresses) {
    auto r = net::resolve("localhost:1234");
    ASSERT_TRUE(r) << r.error().describe();
    ASSERT_FALSE(r->empty());
    const bool has_loopback = std::any_of(r->begin(), r->end(), [](const net::endpoint& e) {
        return e.to_string() == "127.0.0.1:1234" || e.to_string() == "[::1]:1234";
    });
    EXPECT_TRUE(has_loopback);
    for (const auto& e : *r) EXPECT_EQ(e.port(), 1234);
    std::vector<net::endpoint> unique(r->begin(), r->end());
    std::sort(unique.begin(), unique.end());
    EXPECT_EQ(std::unique(unique.begin(), unique.end()), unique.end());
}

TEST(resolve, literals_need_no_lookup_and_bad_text_is_refused) {
    auto v4 = net::resolve("10.1.2.3:80");
    ASSERT_TRUE(v4);
    EXPECT_EQ(*v4, std::vector<net::endpoint>{*net::endpoint::parse("10.1.2.3:80")});
    auto v6 = net::resolve("[2001:db8::1]:443");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->front().to_string(), "[2001:db8::1]:443");
    for (auto bad : {"localhost", "localhost:", "localhost:65536", "localhost:http", ":80", "[::1", "[::1]80",
                     "::1:80"}) {
        auto r = net::resolve(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error(), errc::invalid_argument) << bad;
    }
    auto missing = net::resolve("no-such-host.invalid:80");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(), errc::not_found);
}

TEST(resolve, asynchronously_on_an_executor) {
    swarm::runtime rt(1);
    std::promise<detailed_result<std::vector<net::endpoint>>> answer;
    net::async_resolve(rt.get_executor(), "localhost:99",
                       [&](detailed_result<std::vector<net::endpoint>> r) { answer.set_value(std::move(r)); });
    auto f = answer.get_future();
    ASSERT_EQ(f.wait_for(wait_limit), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->empty());
    std::promise<detailed_result<std::vector<net::endpoint>>> refused;
    net::async_resolve(rt.get_executor(), "nonsense",
                       [&](detailed_result<std::vector<net::endpoint>> e) { refused.set_value(std::move(e)); });
    auto g = refused.get_future();
    ASSERT_EQ(g.wait_for(wait_limit), std::future_status::ready);
    auto bad = g.get();
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), errc::invalid_argument);
}

} // namespace
} // namespace swarm::test
