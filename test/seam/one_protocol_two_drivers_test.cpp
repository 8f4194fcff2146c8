// The seam: one protocol object, unchanged, under the simulator and on real sockets, tells the same story.
#include <swarm/net/driver.hpp>
#include <swarm/net/runtime.hpp>
#include <swarm/sim/network.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <future>
#include <mutex>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace net = swarm::net;

std::vector<std::byte> bytes(std::string_view s) {
    std::vector<std::byte> out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}
std::string text(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

/// What a node saw, in order, without timings or ids: the part of its life both drivers must agree on.
struct transcript {
    std::mutex mutex;
    std::vector<std::string> lines;
    std::promise<void> done;
    void add(std::string line) {
        std::lock_guard lock(mutex);
        lines.push_back(std::move(line));
        if (lines.back() == "closed ok") done.set_value();
    }
};

/// Pings its peer three times over datagrams (a timer paces them), then opens a stream, sends three frames
/// that the peer echoes, and closes it. The responder answers pings and echoes frames.
class pinger final : public net::protocol {
public:
    pinger(net::transport& t, transcript& log, std::optional<net::endpoint> peer) : t_(t), log_(log), peer_(peer) {}

    void on_start() override {
        if (peer_) t_.set_timer(1, t_.now() + 10ms);
    }
    void on_timer(net::timer_id) override {
        if (sent_ < 3) {
            t_.send(*peer_, bytes("ping " + std::to_string(sent_++)));
            t_.set_timer(1, t_.now() + 10ms);
        } else {
            stream_ = t_.connect(*peer_);
        }
    }
    void on_datagram(const net::endpoint& from, std::span<const std::byte> payload) override {
        const auto message = text(payload);
        log_.add("datagram " + message);
        if (message.starts_with("ping ")) t_.send(from, bytes("pong " + message.substr(5)));
    }
    void on_stream_open(net::stream_id s, const net::endpoint&, bool inbound) override {
        log_.add(inbound ? "accepted" : "connected");
        if (!inbound)
            for (int i = 0; i < 3; ++i) t_.write(s, bytes("frame " + std::to_string(i)));
    }
    void on_stream_frame(net::stream_id s, std::span<const std::byte> frame) override {
        const auto message = text(frame);
        log_.add("frame " + message);
        if (!peer_) {
            t_.write(s, frame);
        } else if (message == "frame 2") {
            t_.close(s);
        }
    }
    void on_stream_closed(net::stream_id, boost::system::error_code reason) override {
        log_.add(reason ? "closed " + reason.message() : "closed ok");
    }

private:
    net::transport& t_;
    transcript& log_;
    std::optional<net::endpoint> peer_;
    std::optional<net::stream_id> stream_;
    int sent_ = 0;
};

const std::vector<std::string> expected_pinger = {
    "datagram pong 0", "datagram pong 1", "datagram pong 2", "connected",
    "frame frame 0",   "frame frame 1",   "frame frame 2",   "closed ok"};
const std::vector<std::string> expected_responder = {
    "datagram ping 0", "datagram ping 1", "datagram ping 2", "accepted",
    "frame frame 0",   "frame frame 1",   "frame frame 2",   "closed ok"};

TEST(seam, the_same_protocol_tells_the_same_story_under_the_simulator) {
    auto network = swarm::sim::network::create({});
    ASSERT_TRUE(network.has_value());
    auto& sim = *network;
    transcript responder_log, pinger_log;
    const auto a = sim.add_node();
    const auto b = sim.add_node();
    ASSERT_TRUE(sim.add_protocol(a, 7000, [&](net::transport& t) {
        return std::make_unique<pinger>(t, responder_log, std::nullopt);
    }));
    const auto responder_address = sim.endpoint_of(a, 7000);
    ASSERT_TRUE(sim.add_protocol(b, 7000, [&](net::transport& t) {
        return std::make_unique<pinger>(t, pinger_log, responder_address);
    }));
    sim.run_for(5s);
    EXPECT_EQ(pinger_log.lines, expected_pinger);
    EXPECT_EQ(responder_log.lines, expected_responder);
}

TEST(seam, the_same_protocol_tells_the_same_story_on_real_sockets) {
    swarm::runtime rt(2);
    transcript responder_log, pinger_log;
    net::driver_config config;
    config.bind = net::endpoint::v4(0x7f000001, 0);
    auto responder = net::socket_driver::create(rt.get_executor(), config, [&](net::transport& t) {
        return std::make_unique<pinger>(t, responder_log, std::nullopt);
    });
    ASSERT_TRUE(responder.has_value()) << responder.error().describe();
    const auto responder_address = responder->local_endpoint();
    auto initiator = net::socket_driver::create(rt.get_executor(), config, [&](net::transport& t) {
        return std::make_unique<pinger>(t, pinger_log, responder_address);
    });
    ASSERT_TRUE(initiator.has_value()) << initiator.error().describe();
    ASSERT_EQ(pinger_log.done.get_future().wait_for(10s), std::future_status::ready);
    ASSERT_EQ(responder_log.done.get_future().wait_for(10s), std::future_status::ready);
    EXPECT_TRUE(initiator->stop_and_wait());
    EXPECT_TRUE(responder->stop_and_wait());
    std::lock_guard l1(pinger_log.mutex), l2(responder_log.mutex);
    EXPECT_EQ(pinger_log.lines, expected_pinger);
    EXPECT_EQ(responder_log.lines, expected_responder);
}

} // namespace
