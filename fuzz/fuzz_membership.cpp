// The membership message handler under arbitrary input. The bytes are sealed with the cluster's key first,
// so the fuzzer reaches the decoders and the state machine behind the seal, not just the AEAD check. Nothing
// may crash, and no input may make the node consider itself anything but alive.
#include <swarm/membership/swim.hpp>

#include <cstdlib>
#include <map>
#include <memory>

namespace {

/// A stand-in for a driver: sends go nowhere, streams never connect, timers fire as time moves on.
class null_transport final : public swarm::net::transport {
public:
    swarm::time_point now() const noexcept override { return now_; }
    swarm::net::endpoint local_endpoint() const noexcept override { return swarm::net::endpoint::v4(0x7f000001, 7946); }
    swarm::rng& random() noexcept override { return rng_; }
    const swarm::logger& log() const noexcept override { return log_; }
    std::size_t max_datagram_size() const noexcept override { return 1472; }
    void send(const swarm::net::endpoint&, std::span<const std::byte>) override {}
    void set_timer(swarm::net::timer_id id, swarm::time_point at) override { timers_[id] = at; }
    void cancel_timer(swarm::net::timer_id id) override { timers_.erase(id); }
    swarm::net::stream_id connect(const swarm::net::endpoint&) override { return ++next_stream_; }
    void write(swarm::net::stream_id, std::span<const std::byte>) override {}
    std::size_t queued_bytes(swarm::net::stream_id) const noexcept override { return 0; }
    std::size_t max_frame_size() const noexcept override { return 16 << 20; }
    void close(swarm::net::stream_id) override {}
    /// Moves time on and fires the timers that came due.
    void tick(swarm::net::protocol& p) {
        now_ += std::chrono::milliseconds(100);
        for (auto it = timers_.begin(); it != timers_.end();) {
            if (it->second > now_) {
                ++it;
                continue;
            }
            const auto id = it->first;
            timers_.erase(it);
            p.on_timer(id);
            it = timers_.begin();
        }
    }

private:
    swarm::time_point now_{std::chrono::seconds(1)};
    swarm::rng rng_{1};
    swarm::logger log_;
    swarm::net::stream_id next_stream_ = 1000;
    std::map<swarm::net::timer_id, swarm::time_point> timers_;
};

struct harness {
    swarm::seal::keyring keys;
    null_transport transport;
    std::shared_ptr<const swarm::identity> self;
    std::unique_ptr<swarm::membership::swim> node;
    std::uint64_t sequence = 1;

    harness() {
        std::array<std::byte, 32> key{};
        key.fill(std::byte{7});
        if (!keys.add(key)) std::abort();
        std::array<std::byte, 32> seed{};
        self = std::make_shared<const swarm::identity>(swarm::identity::from_seed(seed));
        node = std::make_unique<swarm::membership::swim>(transport, self, keys, swarm::membership::config{});
        node->on_start();
    }
};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static harness h;
    if (size == 0) return 0;
    const auto in = std::as_bytes(std::span{data + 1, size - 1});
    const auto from = swarm::net::endpoint::v4(0x7f000002, 7946);
    h.transport.tick(*h.node);
    switch (data[0] % 3) {
    case 0: h.node->on_datagram(from, in); break; // unsealed: refused at the seal
    case 1: {
        swarm::seal::sealer s(h.keys, "swarm", 42, ++h.sequence, 1);
        h.node->on_datagram(from, s.seal(in).value());
        break;
    }
    default: {
        swarm::seal::sealer s(h.keys, "swarm", 43, ++h.sequence, 2);
        const swarm::net::stream_id stream = 1 + h.sequence;
        h.node->on_stream_open(stream, from, true);
        h.node->on_stream_frame(stream, s.seal(in).value());
        h.node->on_stream_closed(stream, {});
        break;
    }
    }
    auto me = h.node->find(h.self->id());
    if (!me || me->state != swarm::membership::member_state::alive) std::abort();
    return 0;
}
