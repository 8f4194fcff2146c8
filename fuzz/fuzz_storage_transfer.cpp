// The shard transfer protocol's untrusted input: the message codec, and the protocol itself fed by a peer.
//  1. decode_request / decode_reply on the raw bytes: anything may be refused, nothing may crash, and what
//     decodes re-encodes to exactly the input (the encoding has one form).
//  2. A server over an in-memory shard store (a test double) gets a hello, then the input as frames (split at
//     0xff bytes), then the input sealed with the cluster key behind its nonce, so the decoder and every
//     shard_store call behind the seal are reached.
//  3. A client with a request in flight gets the same: the input sealed as the server's reply.
#include <swarm/storage/transfer.hpp>

#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

namespace {

using namespace swarm;
using namespace swarm::storage;

constexpr std::size_t max_shard = 4096;

class memory_store final : public shard_store {
public:
    result<void> put(const shard_id& id, std::span<const std::byte> payload) override {
        shards_[key(id)].assign(payload.begin(), payload.end());
        return {};
    }
    result<void> get(const shard_id& id, std::span<std::byte> out) override {
        auto it = shards_.find(key(id));
        if (it == shards_.end()) return errc::not_found;
        if (it->second.size() != out.size()) return errc::truncated;
        std::memcpy(out.data(), it->second.data(), out.size());
        return {};
    }
    result<void> remove(const shard_id& id) override {
        shards_.erase(key(id));
        return {};
    }
    result<bool> contains(const shard_id& id) override { return shards_.contains(key(id)); }
    result<std::vector<shard_id>> list() override {
        std::vector<shard_id> out;
        for (const auto& [k, v] : shards_) out.push_back(k.second);
        return out;
    }
    result<void> sync() override { return {}; }

private:
    static std::pair<std::vector<std::uint8_t>, shard_id> key(const shard_id& id) {
        return {std::vector<std::uint8_t>(id.chunk.begin(), id.chunk.end()), id};
    }
    struct less {
        bool operator()(const std::pair<std::vector<std::uint8_t>, shard_id>& a,
                        const std::pair<std::vector<std::uint8_t>, shard_id>& b) const {
            return std::tie(a.first, a.second.index) < std::tie(b.first, b.second.index);
        }
    };
    std::map<std::pair<std::vector<std::uint8_t>, shard_id>, std::vector<std::byte>, less> shards_;
};

// A transport test double: records written frames, never delivers anything by itself.
class recording_transport final : public net::transport {
public:
    time_point now() const noexcept override { return time_point{}; }
    net::endpoint local_endpoint() const noexcept override { return net::endpoint::v4(0x7f000001, 1); }
    rng& random() noexcept override { return rng_; }
    const logger& log() const noexcept override { return log_; }
    std::size_t max_datagram_size() const noexcept override { return 1200; }
    void send(const net::endpoint&, std::span<const std::byte>) override {}
    void set_timer(net::timer_id, time_point) override {}
    void cancel_timer(net::timer_id) override {}
    net::stream_id connect(const net::endpoint&) override { return 1; }
    void write(net::stream_id, std::span<const std::byte> frame) override { written.emplace_back(frame.begin(), frame.end()); }
    std::size_t queued_bytes(net::stream_id) const noexcept override { return 0; }
    std::size_t max_frame_size() const noexcept override { return 1 << 20; }
    void close(net::stream_id) override { closed = true; }

    std::vector<std::vector<std::byte>> written;
    bool closed = false;

private:
    rng rng_{1};
    logger log_;
};

const seal::keyring& ring() {
    static const seal::keyring keys = [] {
        seal::keyring k;
        std::array<std::byte, seal::key_size> key{};
        key.fill(std::byte{7});
        if (!k.add(key)) std::abort();
        return k;
    }();
    return keys;
}

transfer_config config() {
    transfer_config c;
    c.cluster_label = "fuzz";
    c.keys = ring();
    c.max_shard_size = max_shard;
    c.max_inflight_bytes = 64 * 1024;
    c.max_server_queue_bytes = c.max_inflight_bytes + max_shard;
    c.list_page = 16;
    return c;
}

std::vector<std::byte> hello(std::uint8_t fill) {
    std::vector<std::byte> f{std::byte{'H'}, std::byte{'S'}, std::byte{'W'}, std::byte{'S'}, std::byte{'T'}, std::byte{1}};
    f.resize(22, std::byte{fill});
    return f;
}

// `input` sealed behind the nonce the receiver sent in its hello (bytes 6..22 of that frame).
std::vector<std::byte> sealed_for(const std::vector<std::byte>& receiver_hello, std::span<const std::byte> input) {
    std::vector<std::byte> plain(receiver_hello.begin() + 6, receiver_hello.begin() + 22);
    plain.insert(plain.end(), input.begin(), input.end());
    seal::sealer sealer(ring(), "storage-transfer:fuzz", 99, 0, 1);
    auto sealed = sealer.seal(plain);
    if (!sealed) std::abort();
    std::vector<std::byte> frame{std::byte{'S'}};
    frame.insert(frame.end(), sealed->begin(), sealed->end());
    return frame;
}

void codec(std::span<const std::byte> in) {
    if (auto r = transfer_wire::decode_request(in, max_shard)) {
        std::vector<std::byte> again;
        transfer_wire::encode(*r, again);
        if (again.size() != in.size() || std::memcmp(again.data(), in.data(), in.size()) != 0) std::abort();
    }
    if (auto r = transfer_wire::decode_reply(in, max_shard)) {
        std::vector<std::byte> again;
        transfer_wire::encode(*r, again);
        if (again.size() != in.size() || std::memcmp(again.data(), in.data(), in.size()) != 0) std::abort();
    }
}

void server(std::span<const std::byte> in) {
    memory_store store;
    recording_transport t;
    shard_transfer p(t, config(), &store);
    p.on_stream_open(5, net::endpoint::v4(0x7f000001, 2), true);
    if (t.written.size() != 1) std::abort();
    const auto server_hello = t.written[0];
    p.on_stream_frame(5, hello(3));
    p.on_stream_frame(5, sealed_for(server_hello, in));
    // The raw input as frames too, on a second stream.
    p.on_stream_open(6, net::endpoint::v4(0x7f000001, 3), true);
    std::size_t start = 0;
    for (std::size_t i = 0; i <= in.size(); ++i)
        if (i == in.size() || in[i] == std::byte{0xff}) {
            p.on_stream_frame(6, in.subspan(start, i - start));
            start = i + 1;
        }
    p.on_stream_closed(5, {});
    p.on_stream_closed(6, {});
}

void client(std::span<const std::byte> in) {
    recording_transport t;
    shard_transfer p(t, config(), nullptr);
    int replies = 0;
    transfer_request get{transfer_op::get, {}};
    get.length = in.empty() ? 0 : std::to_integer<std::uint32_t>(in[0]);
    p.call(net::endpoint::v4(0x7f000001, 9), std::move(get), [&](transfer_reply) { ++replies; });
    p.on_stream_open(1, net::endpoint::v4(0x7f000001, 9), false);
    if (t.written.size() != 1) std::abort();
    p.on_stream_frame(1, hello(4)); // the "server" hello; the client now sends its request
    p.on_stream_frame(1, sealed_for(t.written[0], in));
    p.on_stream_closed(1, {});
    p.on_stop();
    if (replies != 1) std::abort(); // answered, refused or failed: exactly once either way
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto in = std::as_bytes(std::span{data, size});
    codec(in);
    server(in);
    client(in);
    return 0;
}
