// Streams on loopback: framing, limits, closes, failures, flow control and a bounded stop.
#include "harness.hpp"

#include <swarm/net/asio_endpoint.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

namespace swarm::test {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

class streams : public ::testing::Test {
protected:
    swarm::runtime runtime_{2}; // two threads, so that a missing strand shows (under TSan especially)
    asio::any_io_executor ex() { return runtime_.get_executor(); }
};

std::vector<std::byte> numbered(std::uint32_t n, std::size_t size) {
    std::vector<std::byte> frame(size);
    for (std::size_t i = 0; i < size; ++i) frame[i] = static_cast<std::byte>((n * 31 + i) & 0xff);
    if (size >= 4) std::memcpy(frame.data(), &n, 4);
    return frame;
}

std::vector<event> frames_on(const node& n, net::stream_id id) {
    std::vector<event> out;
    for (auto& e : n.events->all())
        if (e.what == kind::frame && e.id == id) out.push_back(std::move(e));
    return out;
}

TEST_F(streams, frames_arrive_whole_and_in_order_both_ways) {
    auto a = start(ex());
    auto b = start(ex());
    const auto [out, in] = open_stream(a, b);
    EXPECT_EQ(a.events->wait(is(kind::open, out))->peer, b.address());
    EXPECT_EQ(b.stats().streams_accepted, 1u);
    EXPECT_EQ(a.stats().streams_opened, 1u);

    constexpr std::uint32_t count = 2000;
    a.call([out](probe& p) {
        for (std::uint32_t i = 0; i < count; ++i) p.transport().write(out, numbered(i, 4 + i % 300));
        p.transport().write(out, {}); // an empty frame is a frame too
    });
    ASSERT_EQ(b.events->wait_count(is(kind::frame, in), count + 1), count + 1);
    const auto got = frames_on(b, in);
    for (std::uint32_t i = 0; i < count; ++i) ASSERT_EQ(got[i].data, numbered(i, 4 + i % 300)) << i;
    EXPECT_TRUE(got[count].data.empty());

    b.call([in](probe& p) { p.transport().write(in, bytes("reply")); });
    const auto reply = a.events->wait(is(kind::frame, out));
    ASSERT_TRUE(reply);
    EXPECT_EQ(text(reply->data), "reply");
    EXPECT_EQ(a.stats().frames_sent, count + 1);
    EXPECT_EQ(b.stats().frames_received, count + 1);
}

TEST_F(streams, a_one_mebibyte_frame_arrives_intact) {
    auto a = start(ex());
    auto b = start(ex());
    const auto [out, in] = open_stream(a, b);
    const auto big = numbered(7, 1024 * 1024);
    a.call([out = out, big](probe& p) {
        p.transport().write(out, bytes("before"));
        p.transport().write(out, big);
        p.transport().write(out, bytes("after"));
    });
    ASSERT_EQ(b.events->wait_count(is(kind::frame, in), 3), 3u);
    const auto got = frames_on(b, in);
    EXPECT_EQ(text(got[0].data), "before");
    EXPECT_EQ(got[1].data, big);
    EXPECT_EQ(text(got[2].data), "after");
}

TEST_F(streams, a_frame_over_the_receivers_limit_closes_the_stream) {
    auto small = loopback_v4();
    small.max_frame_size = 1024;
    auto a = start(ex());
    auto b = start(ex(), small);
    const auto [out, in] = open_stream(a, b);
    a.call([out = out](probe& p) {
        p.transport().write(out, std::vector<std::byte>(1024)); // exactly the limit: fine
        p.transport().write(out, std::vector<std::byte>(1025));
    });
    const auto closed = b.events->wait(is(kind::closed, in));
    ASSERT_TRUE(closed);
    EXPECT_EQ(closed->reason, errc::message_too_large);
    EXPECT_EQ(frames_on(b, in).size(), 1u);
    EXPECT_TRUE(a.events->wait(is(kind::closed, out))); // reset or closed: either way, gone
    EXPECT_GE(b.stats().streams_reset, 1u);
}

TEST_F(streams, writing_a_frame_over_the_local_limit_closes_the_stream) {
    auto small = loopback_v4();
    small.max_frame_size = 1024;
    auto a = start(ex(), small);
    auto b = start(ex());
    const auto [out, in] = open_stream(a, b);
    EXPECT_EQ(a.call([](probe& p) { return p.transport().max_frame_size(); }), 1024u);
    a.call([out = out](probe& p) { p.transport().write(out, std::vector<std::byte>(1025)); });
    const auto closed = a.events->wait(is(kind::closed, out));
    ASSERT_TRUE(closed);
    EXPECT_EQ(closed->reason, errc::message_too_large);
    EXPECT_TRUE(b.events->wait(is(kind::closed, in)));
}

TEST_F(streams, connecting_to_a_closed_port_is_refused) {
    auto a = start(ex());
    asio::io_context io;
    tcp::acceptor gone(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    const auto port = gone.local_endpoint().port();
    gone.close();
    const auto id = a.call([port](probe& p) { return p.transport().connect(net::endpoint::v4(0x7f000001, port)); });
    const auto closed = a.events->wait(is(kind::closed, id));
    ASSERT_TRUE(closed);
    EXPECT_EQ(closed->reason, errc::connection_refused);
    EXPECT_FALSE(a.events->wait(is(kind::open, id), 0ms));
}

TEST_F(streams, a_connect_that_gets_no_answer_times_out) {
    // Linux drops SYNs to a listener whose accept queue is full: a loopback port that never answers.
    asio::io_context io;
    tcp::acceptor full(io);
    full.open(tcp::v4());
    full.bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    full.listen(0);
    std::vector<tcp::socket> fillers;
    for (int i = 0; i < 3; ++i) {
        fillers.emplace_back(io);
        // Started, never waited for: `io` does not run, and the kernel sends the SYN at once.
        fillers.back().async_connect(full.local_endpoint(), [](const boost::system::error_code&) {});
    }
    auto config = loopback_v4();
    config.connect_timeout = 200ms;
    auto a = start(ex(), config);
    const auto port = full.local_endpoint().port();
    const auto id = a.call([port](probe& p) { return p.transport().connect(net::endpoint::v4(0x7f000001, port)); });
    const auto outcome = a.events->wait([id](const event& e) {
        return (e.what == kind::open || e.what == kind::closed) && e.id == id;
    });
    ASSERT_TRUE(outcome);
    if (outcome->what == kind::open) GTEST_SKIP() << "this kernel answered a full accept queue";
    EXPECT_EQ(outcome->reason, errc::timed_out);
}

TEST_F(streams, the_closing_side_flushes_and_both_sides_see_an_orderly_close) {
    auto a = start(ex());
    auto b = start(ex());
    const auto [out, in] = open_stream(a, b);
    b.call([in = in](probe& p) {
        for (int i = 0; i < 3; ++i) p.transport().write(in, bytes("last words " + std::to_string(i)));
        p.transport().close(in);
        p.transport().write(in, bytes("too late")); // ignored after close
    });
    const auto closed = a.events->wait(is(kind::closed, out));
    ASSERT_TRUE(closed);
    EXPECT_FALSE(closed->reason) << closed->reason.message();
    const auto got = frames_on(a, out);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(text(got[2].data), "last words 2");
    const auto local = b.events->wait(is(kind::closed, in));
    ASSERT_TRUE(local);
    EXPECT_FALSE(local->reason) << local->reason.message();
    EXPECT_EQ(a.call([out = out](probe& p) { return p.transport().queued_bytes(out); }), 0u);
}

TEST_F(streams, frames_written_while_connecting_are_sent_and_an_early_close_flushes_them) {
    auto a = start(ex());
    auto b = start(ex());
    const auto target = b.address();
    const auto id = a.call([target](probe& p) {
        auto& t = p.transport();
        const auto s = t.connect(target);
        t.write(s, bytes("first"));
        t.write(s, bytes("second"));
        t.close(s);
        return s;
    });
    const auto local = a.events->wait(is(kind::closed, id));
    ASSERT_TRUE(local);
    EXPECT_FALSE(local->reason) << local->reason.message();
    EXPECT_TRUE(a.events->wait(is(kind::open, id), 0ms));
    const auto accepted = b.events->wait([](const event& e) { return e.what == kind::open && e.inbound; });
    ASSERT_TRUE(accepted);
    const auto closed = b.events->wait(is(kind::closed, accepted->id));
    ASSERT_TRUE(closed);
    EXPECT_FALSE(closed->reason) << closed->reason.message();
    const auto got = frames_on(b, accepted->id);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(text(got[0].data), "first");
    EXPECT_EQ(text(got[1].data), "second");
}

TEST_F(streams, a_stopped_peer_closes_its_streams) {
    auto a = start(ex());
    auto quick = loopback_v4();
    quick.stop_grace = 0s;
    auto b = start(ex(), quick);
    const auto [out, in] = open_stream(a, b);
    (void)in;
    ASSERT_TRUE(b.driver->stop_and_wait());
    const auto closed = a.events->wait(is(kind::closed, out));
    ASSERT_TRUE(closed); // orderly or reset, depending on timing: never silent
    if (closed->reason) {
        EXPECT_EQ(closed->reason, errc::connection_reset);
    }
}

TEST_F(streams, writable_fires_once_the_queue_drains_below_the_low_watermark) {
    auto config = loopback_v4();
    config.high_watermark = 256 * 1024;
    config.low_watermark = 64 * 1024;
    auto a = start(ex(), config);
    auto b = start(ex());
    const auto [out, in] = open_stream(a, b);
    const auto queued = a.call([out = out](probe& p) {
        for (std::uint32_t i = 0; i < 64; ++i) p.transport().write(out, numbered(i, 64 * 1024));
        return p.transport().queued_bytes(out);
    });
    EXPECT_EQ(queued, 64u * 64 * 1024);
    const auto writable = a.events->wait(is(kind::writable, out));
    ASSERT_TRUE(writable);
    EXPECT_LE(writable->queued, config.low_watermark);
    ASSERT_EQ(b.events->wait_count(is(kind::frame, in), 64), 64u);
    EXPECT_EQ(a.events->wait_count(is(kind::writable, out), 1, 0ms), 1u);
    EXPECT_EQ(frames_on(b, in)[63].data, numbered(63, 64 * 1024));
}

TEST_F(streams, stop_is_bounded_when_the_peer_never_reads) {
    // A listener that never accepts: the kernel completes the handshake, nobody reads.
    asio::io_context io;
    tcp::acceptor sink(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    const auto port = sink.local_endpoint().port();
    auto config = loopback_v4();
    config.stop_grace = 200ms;
    config.high_watermark = 1024 * 1024;
    config.low_watermark = 512 * 1024;
    hooks keep_busy;
    auto fill = [](probe& p, net::stream_id id) {
        while (p.transport().queued_bytes(id) < 8 * 1024 * 1024) p.transport().write(id, std::vector<std::byte>(65536));
    };
    keep_busy.on_open = [fill](probe& p, net::stream_id id, bool) { fill(p, id); };
    keep_busy.on_writable = fill;
    auto a = start(ex(), config, keep_busy);
    const auto id = a.call([port](probe& p) { return p.transport().connect(net::endpoint::v4(0x7f000001, port)); });
    ASSERT_TRUE(a.events->wait(is(kind::open, id)));
    EXPECT_GT(a.call([id](probe& p) { return p.transport().queued_bytes(id); }), 0u);
    EXPECT_TRUE(a.driver->stop_and_wait());
    EXPECT_TRUE(a.events->wait(is(kind::stop), 0ms));
}

TEST_F(streams, garbage_on_the_port_closes_that_stream_and_the_node_serves_others) {
    auto b = start(ex());
    asio::io_context io;
    tcp::socket raw(io);
    raw.connect(net::to_asio<tcp>(b.address()));
    const unsigned char huge[] = {0xff, 0xff, 0xff, 0xf0, 'j', 'u', 'n', 'k'};
    asio::write(raw, asio::buffer(huge));
    const auto opened = b.events->wait([](const event& e) { return e.what == kind::open && e.inbound; });
    ASSERT_TRUE(opened);
    const auto closed = b.events->wait(is(kind::closed, opened->id));
    ASSERT_TRUE(closed);
    EXPECT_EQ(closed->reason, errc::message_too_large);
    // The driver closed its end: the raw client reads end of stream or a reset, not a hang.
    char one = 0;
    boost::system::error_code ec;
    asio::read(raw, asio::buffer(&one, 1), ec);
    EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();

    auto a = start(ex());
    const auto [out, in] = open_stream(a, b);
    a.call([out = out](probe& p) { p.transport().write(out, bytes("still here")); });
    const auto frame = b.events->wait(is(kind::frame, in));
    ASSERT_TRUE(frame);
    EXPECT_EQ(text(frame->data), "still here");
}

TEST_F(streams, a_connection_broken_inside_a_frame_is_a_reset) {
    auto b = start(ex());
    asio::io_context io;
    tcp::socket raw(io);
    raw.connect(net::to_asio<tcp>(b.address()));
    const unsigned char partial[] = {0, 0, 0, 10, 'h', 'a', 'l', 'f'};
    asio::write(raw, asio::buffer(partial));
    raw.shutdown(tcp::socket::shutdown_send);
    const auto opened = b.events->wait([](const event& e) { return e.what == kind::open && e.inbound; });
    ASSERT_TRUE(opened);
    const auto closed = b.events->wait(is(kind::closed, opened->id));
    ASSERT_TRUE(closed);
    EXPECT_EQ(closed->reason, errc::connection_reset);
}

TEST_F(streams, inbound_streams_beyond_the_limit_are_refused) {
    auto one = loopback_v4();
    one.max_streams = 1;
    auto a = start(ex());
    auto b = start(ex(), one);
    open_stream(a, b);
    const auto target = b.address();
    const auto second = a.call([target](probe& p) { return p.transport().connect(target); });
    const auto closed = a.events->wait(is(kind::closed, second));
    ASSERT_TRUE(closed);
    EXPECT_TRUE(closed->reason);
    EXPECT_EQ(b.stats().streams_refused, 1u);
    EXPECT_EQ(b.stats().streams_accepted, 1u);

    // Outbound streams count too.
    const auto third = b.call([](probe& p) { return p.transport().connect(net::endpoint::v4(0x7f000001, 9)); });
    const auto refused = b.events->wait(is(kind::closed, third));
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->reason, errc::too_large);
}

TEST_F(streams, an_idle_stream_times_out) {
    auto config = loopback_v4();
    config.idle_timeout = 100ms;
    auto a = start(ex(), config);
    auto b = start(ex());
    const auto [out, in] = open_stream(a, b);
    const auto closed = a.events->wait(is(kind::closed, out));
    ASSERT_TRUE(closed);
    EXPECT_EQ(closed->reason, errc::timed_out);
    EXPECT_TRUE(b.events->wait(is(kind::closed, in)));
}

TEST_F(streams, ipv6_streams_work_when_ipv6_does) {
    auto first = try_start(ex(), loopback_v6());
    if (!first) GTEST_SKIP() << "no IPv6 loopback here: " << first.error().describe();
    auto a = std::move(*first);
    ASSERT_TRUE(a.events->wait(is(kind::start)));
    auto b = start(ex(), loopback_v6());
    const auto [out, in] = open_stream(a, b);
    a.call([out = out](probe& p) { p.transport().write(out, bytes("six")); });
    const auto frame = b.events->wait(is(kind::frame, in));
    ASSERT_TRUE(frame);
    EXPECT_EQ(text(frame->data), "six");
    EXPECT_EQ(b.events->wait(is(kind::open, in))->peer.to_string().rfind("[::1]:", 0), 0u);
}

TEST_F(streams, stop_says_goodbye_and_flushes_streams) {
    auto a = start(ex());
    auto b = start(ex());
    const auto [out, in] = open_stream(a, b);
    a.driver->post([out = out](net::protocol& p) {
        auto& self = dynamic_cast<probe&>(p);
        self.transport().write(out, std::vector<std::byte>(512 * 1024));
    });
    ASSERT_TRUE(a.driver->stop_and_wait());
    const auto frame = b.events->wait(is(kind::frame, in));
    ASSERT_TRUE(frame);
    EXPECT_EQ(frame->data.size(), 512u * 1024);
    const auto closed = b.events->wait(is(kind::closed, in));
    ASSERT_TRUE(closed);
    EXPECT_FALSE(closed->reason) << closed->reason.message();
}

} // namespace
} // namespace swarm::test
