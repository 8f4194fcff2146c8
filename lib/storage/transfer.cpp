#include <swarm/storage/transfer.hpp>

#include <swarm/core/wire.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <map>
#include <optional>

namespace swarm::inline v0::storage {

detailed_result<void> transfer_config::validate() const {
    if (cluster_label.empty()) return error{errc::config_invalid_value, "cluster_label must not be empty"};
    if (max_inflight_bytes < 1024) return error{errc::config_invalid_value, "max_inflight_bytes must be at least 1024"};
    if (max_queued_requests < 1) return error{errc::config_invalid_value, "max_queued_requests must be at least 1"};
    if (max_shard_size < 1 || max_shard_size > 0xFFFF'FFFFu - 4096)
        return error{errc::config_invalid_value, "max_shard_size must be 1 to 2^32 - 4097 bytes"};
    if (max_server_queue_bytes < max_inflight_bytes + max_shard_size)
        return error{errc::config_invalid_value,
                     fmt::format("max_server_queue_bytes {} is below max_inflight_bytes + max_shard_size ({})",
                                 max_server_queue_bytes, max_inflight_bytes + max_shard_size)};
    if (list_page < 1 || list_page > 65536) return error{errc::config_invalid_value, "list_page must be 1 to 65536"};
    if (request_timeout <= duration::zero()) return error{errc::config_invalid_value, "request_timeout must be positive"};
    if (peer_down_backoff < duration::zero()) return error{errc::config_invalid_value, "peer_down_backoff must not be negative"};
    return {};
}

namespace transfer_wire {

namespace {

constexpr std::uint8_t request_kind = 1;
constexpr std::uint8_t reply_kind = 2;
constexpr std::size_t shard_id_size = 32 + 2;

void put_shard(wire::writer& w, const shard_id& id) {
    w.raw(std::as_bytes(std::span(id.chunk)));
    w.u16(id.index);
}
shard_id get_shard(wire::reader& r) {
    shard_id id;
    const auto raw = r.raw(32);
    if (raw.size() == 32) std::memcpy(id.chunk.data(), raw.data(), 32);
    id.index = r.u16();
    return id;
}
bool known_op(std::uint8_t op) { return op >= 1 && op <= 6; }

std::uint16_t status_value(boost::system::error_code ec) {
    if (!ec) return 0;
    if (ec.category() == swarm_category() && ec.value() > 0 && ec.value() <= 0xFFFF) return static_cast<std::uint16_t>(ec.value());
    return static_cast<std::uint16_t>(errc::io_error);
}

} // namespace

void encode(const request_message& m, std::vector<std::byte>& out) {
    wire::writer w(out);
    w.u8(request_kind);
    w.u64(m.id);
    w.u8(static_cast<std::uint8_t>(m.request.op));
    switch (m.request.op) {
    case transfer_op::put:
        put_shard(w, m.request.shard);
        w.u32(static_cast<std::uint32_t>(m.request.payload.size()));
        w.raw(m.request.payload);
        break;
    case transfer_op::get:
        put_shard(w, m.request.shard);
        w.u32(m.request.length);
        break;
    case transfer_op::remove:
    case transfer_op::contains: put_shard(w, m.request.shard); break;
    case transfer_op::list:
        w.boolean(m.request.after);
        put_shard(w, m.request.shard);
        w.u32(m.request.length);
        break;
    case transfer_op::sync: break;
    }
    (void)w.finish();
}

void encode(const reply_message& m, std::vector<std::byte>& out) {
    wire::writer w(out);
    w.u8(reply_kind);
    w.u64(m.id);
    w.u8(static_cast<std::uint8_t>(m.op));
    const auto status = status_value(m.reply.status);
    w.u16(status);
    if (status == 0) {
        switch (m.op) {
        case transfer_op::get:
            w.u32(static_cast<std::uint32_t>(m.reply.payload.size()));
            w.raw(m.reply.payload);
            break;
        case transfer_op::contains: w.boolean(m.reply.present); break;
        case transfer_op::list:
            w.u32(static_cast<std::uint32_t>(m.reply.shards.size()));
            for (const auto& s : m.reply.shards) put_shard(w, s);
            w.boolean(m.reply.more);
            break;
        default: break;
        }
    }
    (void)w.finish();
}

result<request_message> decode_request(std::span<const std::byte> bytes, std::size_t max_shard_size) {
    wire::reader r(bytes);
    request_message m;
    if (r.u8() != request_kind) r.fail(errc::malformed);
    m.id = r.u64();
    const auto op = r.u8();
    if (r.ok() && !known_op(op)) r.fail(errc::malformed);
    m.request.op = static_cast<transfer_op>(op);
    if (r.ok()) {
        switch (m.request.op) {
        case transfer_op::put: {
            m.request.shard = get_shard(r);
            const auto n = r.u32();
            if (r.ok() && n > max_shard_size) r.fail(errc::too_large);
            const auto raw = r.raw(n);
            m.request.payload.assign(raw.begin(), raw.end());
            break;
        }
        case transfer_op::get:
            m.request.shard = get_shard(r);
            m.request.length = r.u32();
            if (r.ok() && m.request.length > max_shard_size) r.fail(errc::too_large);
            break;
        case transfer_op::remove:
        case transfer_op::contains: m.request.shard = get_shard(r); break;
        case transfer_op::list:
            m.request.after = r.boolean();
            m.request.shard = get_shard(r);
            m.request.length = r.u32();
            break;
        case transfer_op::sync: break;
        }
    }
    r.expect_end();
    if (auto f = r.finish(); !f) return f.error();
    return m;
}

result<reply_message> decode_reply(std::span<const std::byte> bytes, std::size_t max_shard_size) {
    wire::reader r(bytes);
    reply_message m;
    if (r.u8() != reply_kind) r.fail(errc::malformed);
    m.id = r.u64();
    const auto op = r.u8();
    if (r.ok() && !known_op(op)) r.fail(errc::malformed);
    m.op = static_cast<transfer_op>(op);
    const auto status = r.u16();
    if (status != 0) m.reply.status = make_error_code(static_cast<errc>(status));
    if (r.ok() && status == 0) {
        switch (m.op) {
        case transfer_op::get: {
            const auto n = r.u32();
            if (r.ok() && n > max_shard_size) r.fail(errc::too_large);
            const auto raw = r.raw(n);
            m.reply.payload.assign(raw.begin(), raw.end());
            break;
        }
        case transfer_op::contains: m.reply.present = r.boolean(); break;
        case transfer_op::list: {
            const auto n = r.u32();
            if (r.ok() && n > r.remaining() / shard_id_size) r.fail(errc::truncated);
            if (r.ok()) m.reply.shards.reserve(n);
            for (std::uint32_t i = 0; i < n && r.ok(); ++i) m.reply.shards.push_back(get_shard(r));
            m.reply.more = r.boolean();
            break;
        }
        default: break;
        }
    }
    r.expect_end();
    if (auto f = r.finish(); !f) return f.error();
    return m;
}

} // namespace transfer_wire

namespace {

using nonce = std::array<std::byte, 16>;
constexpr std::array<std::byte, 4> magic{std::byte{'S'}, std::byte{'W'}, std::byte{'S'}, std::byte{'T'}};
constexpr std::uint8_t protocol_version = 1;
constexpr std::byte hello_kind{'H'};
constexpr std::byte reject_kind{'R'};
constexpr std::byte sealed_kind{'S'};
constexpr std::size_t hello_size = 1 + 4 + 1 + 16;
constexpr std::size_t reject_size = 1 + 4 + 1 + 2;
// Per-request bookkeeping beyond payloads, counted against the window so that empty requests are bounded too.
constexpr std::size_t request_overhead = 128;

nonce random_nonce(rng& random) {
    nonce n;
    for (std::size_t i = 0; i < n.size(); i += 8) {
        const std::uint64_t v = random();
        std::memcpy(n.data() + i, &v, 8);
    }
    return n;
}

std::vector<std::byte> hello_frame(const nonce& n) {
    std::vector<std::byte> f(hello_size);
    f[0] = hello_kind;
    std::memcpy(f.data() + 1, magic.data(), 4);
    f[5] = std::byte{protocol_version};
    std::memcpy(f.data() + 6, n.data(), 16);
    return f;
}

std::vector<std::byte> reject_frame(errc why) {
    std::vector<std::byte> f(reject_size);
    f[0] = reject_kind;
    std::memcpy(f.data() + 1, magic.data(), 4);
    f[5] = std::byte{protocol_version};
    const auto v = static_cast<std::uint16_t>(why);
    f[6] = static_cast<std::byte>(v >> 8);
    f[7] = static_cast<std::byte>(v & 0xFF);
    return f;
}

// Checks the clear part shared by hello and reject frames.
result<void> check_clear(std::span<const std::byte> frame, std::size_t size) {
    if (frame.size() < 6) return errc::truncated;
    if (std::memcmp(frame.data() + 1, magic.data(), 4) != 0) return errc::malformed;
    if (frame[5] != std::byte{protocol_version}) return errc::unsupported_version;
    if (frame.size() != size) return frame.size() < size ? errc::truncated : errc::malformed;
    return {};
}

// One direction's sealing state on one stream.
struct channel_keys {
    nonce mine{};   // what the peer must put first in every sealed plaintext
    nonce theirs{}; // what we put first in ours
    bool ready = false; // the peer's hello has arrived
    std::optional<seal::sealer> sealer;
    std::optional<seal::opener> opener;
    std::optional<std::uint64_t> peer_sender;
    std::uint64_t expect_sequence = 0;

    channel_keys(const transfer_config& config, const std::string& label, rng& random)
        : mine(random_nonce(random)) {
        const std::uint64_t sender = random();
        sealer.emplace(config.keys, label, sender, 0, random());
        opener.emplace(config.keys, label, seal::replay_config{.max_senders = 1});
    }

    // The frame for `message` (its encoding appended by `encode`), sealed for the peer.
    template <class Encode>
    result<std::vector<std::byte>> seal_frame(Encode&& encode) {
        std::vector<std::byte> frame(1 + seal::header_size);
        frame[0] = sealed_kind;
        frame.insert(frame.end(), theirs.begin(), theirs.end());
        encode(frame);
        const std::size_t plain = frame.size() - 1 - seal::header_size;
        frame.resize(frame.size() + seal::tag_size);
        auto sealed = sealer->seal(std::span<const std::byte>(frame.data() + 1 + seal::header_size, plain),
                                   std::span<std::byte>(frame.data() + 1, plain + seal::overhead));
        if (!sealed) return sealed.error();
        return frame;
    }

    // Opens a sealed frame into `out` (the message, nonce stripped). Errors: the seal's, or malformed when the
    // frame is out of order, from another sender or bound to another stream.
    result<void> open_frame(std::span<const std::byte> frame, std::vector<std::byte>& out) {
        if (frame.empty() || frame[0] != sealed_kind) return errc::malformed;
        auto opened = opener->open(frame.subspan(1), out);
        if (!opened) return opened.error();
        if ((peer_sender && *peer_sender != opened->sender) || opened->sequence != expect_sequence) return errc::malformed;
        if (out.size() < mine.size() || std::memcmp(out.data(), mine.data(), mine.size()) != 0) return errc::malformed;
        peer_sender = opened->sender;
        ++expect_sequence;
        out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(mine.size()));
        return {};
    }
};

errc as_errc(boost::system::error_code ec, errc otherwise) {
    return ec.category() == swarm_category() ? static_cast<errc>(ec.value()) : otherwise;
}

} // namespace

struct shard_transfer::impl {
    struct pending {
        std::uint64_t id = 0;
        transfer_request request;
        transfer_callback done;
        std::size_t cost = 0;
    };
    struct peer {
        std::optional<net::stream_id> stream;
        std::optional<channel_keys> keys;
        bool opened = false; // the connect completed
        std::deque<pending> queue;
        std::map<std::uint64_t, pending> inflight;
        std::size_t inflight_bytes = 0;
        time_point down_until{};
        errc down_reason = errc::unreachable;
    };
    struct server_stream {
        channel_keys keys;
    };

    net::transport& t;
    transfer_config config;
    shard_store* local;
    std::string label;
    transfer_stats stats;
    bool stopping = false;
    std::uint64_t next_id = 1;
    std::map<net::endpoint, peer> peers;                  // never erased: one entry per peer ever called
    std::map<net::stream_id, net::endpoint> client_streams;
    std::map<net::stream_id, server_stream> server_streams;
    std::map<std::uint64_t, net::endpoint> owners;        // request id (also its timer id) -> peer
    std::vector<std::byte> scratch;

    impl(net::transport& tr, transfer_config c, shard_store* l)
        : t(tr), config(std::move(c)), local(l), label("storage-transfer:" + config.cluster_label) {}

    static void finish(pending& p, transfer_reply reply) {
        auto done = std::move(p.done);
        if (done) done(std::move(reply));
    }
    static transfer_reply failure(errc e) {
        transfer_reply r;
        r.status = make_error_code(e);
        return r;
    }

    std::size_t cost_of(const transfer_request& r) const {
        std::size_t c = request_overhead + r.payload.size();
        if (r.op == transfer_op::get) c += r.length;
        if (r.op == transfer_op::list) c += std::size_t{r.length} * 34;
        return c;
    }

    void call(const net::endpoint& to, transfer_request request, transfer_callback done) {
        if (stopping) {
            if (done) done(failure(errc::shut_down));
            return;
        }
        if (request.payload.size() > config.max_shard_size || (request.op == transfer_op::get && request.length > config.max_shard_size)) {
            if (done) done(failure(errc::too_large));
            return;
        }
        if (request.op == transfer_op::list) request.length = std::clamp<std::uint32_t>(request.length, 1, config.list_page);
        auto& p = peers[to];
        if (!p.stream && t.now() < p.down_until) {
            if (done) done(failure(p.down_reason));
            return;
        }
        if (p.queue.size() >= config.max_queued_requests) {
            if (done) done(failure(errc::too_large));
            return;
        }
        const std::uint64_t id = next_id++;
        const std::size_t cost = cost_of(request);
        p.queue.push_back({id, std::move(request), std::move(done), cost});
        owners[id] = to;
        t.set_timer(id, t.now() + config.request_timeout);
        if (!p.stream) {
            p.keys.emplace(config, label, t.random());
            p.opened = false;
            p.stream = t.connect(to);
            client_streams[*p.stream] = to;
        } else {
            pump(p);
        }
    }

    void pump(peer& p) {
        if (!p.stream || !p.keys || !p.keys->ready) return;
        while (!p.queue.empty() && (p.inflight_bytes == 0 || p.inflight_bytes + p.queue.front().cost <= config.max_inflight_bytes)) {
            pending next = std::move(p.queue.front());
            p.queue.pop_front();
            auto frame = p.keys->seal_frame([&](std::vector<std::byte>& out) {
                transfer_wire::encode(transfer_wire::request_message{next.id, std::move(next.request)}, out);
            });
            if (!frame) {
                forget(next.id);
                finish(next, failure(as_errc(frame.error(), errc::io_error)));
                continue;
            }
            stats.requests_sent += 1;
            stats.bytes_sent += frame->size();
            t.write(*p.stream, *frame);
            p.inflight_bytes += next.cost;
            p.inflight.emplace(next.id, std::move(next));
        }
    }

    void forget(std::uint64_t id) {
        owners.erase(id);
        t.cancel_timer(id);
    }

    // Fails every request waiting on `p` with `why`; callbacks run last, after the state is consistent.
    void fail_peer(peer& p, errc why, bool include_queued) {
        std::vector<pending> failed;
        for (auto& [id, q] : p.inflight) failed.push_back(std::move(q));
        p.inflight.clear();
        p.inflight_bytes = 0;
        if (include_queued) {
            for (auto& q : p.queue) failed.push_back(std::move(q));
            p.queue.clear();
        }
        for (auto& q : failed) {
            forget(q.id);
            finish(q, failure(why));
        }
    }

    void refuse_client(net::stream_id stream, errc why) {
        stats.frames_refused += 1;
        lose_stream(stream, why, true);
        t.close(stream);
    }

    // The client stream to a peer is gone (closed, broken, or given up by us). Its driver-side close may still
    // be reported later; by then the stream is unknown here and ignored.
    void lose_stream(net::stream_id stream, errc why, bool refused, bool broken = false) {
        auto c = client_streams.find(stream);
        if (c == client_streams.end()) return;
        const net::endpoint to = c->second;
        client_streams.erase(c);
        auto& p = peers[to];
        if (p.stream != stream) return;
        p.stream.reset();
        p.keys.reset();
        if (!p.opened || refused || broken) {
            // Nobody answered, the stream broke, or the peer and we disagree on keys or format: fail what waits,
            // and fail fast for a while rather than queueing behind timeouts or repeating the refusal.
            p.down_until = t.now() + config.peer_down_backoff;
            p.down_reason = why;
            fail_peer(p, why, true);
            return;
        }
        // Requests on the wire are lost with the stream; those still queued get a fresh one.
        fail_peer(p, why, false);
        if (!p.queue.empty() && !stopping) {
            p.keys.emplace(config, label, t.random());
            p.opened = false;
            p.stream = t.connect(to);
            client_streams[*p.stream] = to;
        }
    }

    void client_frame(net::stream_id stream, peer& p, std::span<const std::byte> frame) {
        if (!p.keys) return;
        if (frame.empty()) return refuse_client(stream, errc::truncated);
        if (frame[0] == reject_kind) {
            if (auto ok = check_clear(frame, reject_size); !ok) return refuse_client(stream, errc::malformed);
            const auto v = static_cast<std::uint16_t>((std::to_integer<unsigned>(frame[6]) << 8) | std::to_integer<unsigned>(frame[7]));
            lose_stream(stream, v == 0 ? errc::connection_reset : static_cast<errc>(v), true);
            t.close(stream);
            return;
        }
        if (!p.keys->ready) {
            if (frame[0] != hello_kind) return refuse_client(stream, errc::malformed);
            if (auto ok = check_clear(frame, hello_size); !ok) return refuse_client(stream, as_errc(ok.error(), errc::malformed));
            std::memcpy(p.keys->theirs.data(), frame.data() + 6, 16);
            p.keys->ready = true;
            pump(p);
            return;
        }
        stats.bytes_received += frame.size();
        if (auto ok = p.keys->open_frame(frame, scratch); !ok) return refuse_client(stream, as_errc(ok.error(), errc::malformed));
        auto m = transfer_wire::decode_reply(scratch, config.max_shard_size);
        if (!m) return refuse_client(stream, errc::malformed);
        auto it = p.inflight.find(m->id);
        if (it == p.inflight.end()) return; // timed out already
        if (it->second.request.op != m->op) return refuse_client(stream, errc::malformed);
        pending done = std::move(it->second);
        p.inflight.erase(it);
        p.inflight_bytes -= done.cost;
        forget(done.id);
        stats.replies_received += 1;
        if (!m->reply.status && m->op == transfer_op::get && m->reply.payload.size() != done.request.length)
            m->reply = failure(errc::malformed);
        pump(p);
        finish(done, std::move(m->reply));
    }

    void refuse_server(net::stream_id stream, errc why) {
        stats.frames_refused += 1;
        t.write(stream, reject_frame(why));
        t.close(stream);
        server_streams.erase(stream);
    }

    void server_frame(net::stream_id stream, server_stream& s, std::span<const std::byte> frame) {
        if (!s.keys.ready) {
            if (frame.empty() || frame[0] != hello_kind) return refuse_server(stream, errc::malformed);
            if (auto ok = check_clear(frame, hello_size); !ok) return refuse_server(stream, as_errc(ok.error(), errc::malformed));
            std::memcpy(s.keys.theirs.data(), frame.data() + 6, 16);
            s.keys.ready = true;
            return;
        }
        stats.bytes_received += frame.size();
        if (auto ok = s.keys.open_frame(frame, scratch); !ok) return refuse_server(stream, as_errc(ok.error(), errc::malformed));
        auto m = transfer_wire::decode_request(scratch, config.max_shard_size);
        if (!m) return refuse_server(stream, as_errc(m.error(), errc::malformed));
        transfer_wire::reply_message reply{m->id, m->request.op, {}};
        serve(m->request, reply.reply);
        auto out = s.keys.seal_frame([&](std::vector<std::byte>& f) { transfer_wire::encode(reply, f); });
        if (!out) return refuse_server(stream, as_errc(out.error(), errc::io_error));
        stats.requests_served += 1;
        stats.bytes_sent += out->size();
        t.write(stream, *out);
        if (t.queued_bytes(stream) > config.max_server_queue_bytes) refuse_server(stream, errc::too_large);
    }

    void serve(transfer_request& request, transfer_reply& reply) {
        const auto status = [&](auto r) {
            if (!r) reply.status = r.error();
        };
        switch (request.op) {
        case transfer_op::put: status(local->put(request.shard, request.payload)); break;
        case transfer_op::get:
            reply.payload.resize(request.length);
            status(local->get(request.shard, reply.payload));
            if (reply.status) reply.payload.clear();
            break;
        case transfer_op::remove: status(local->remove(request.shard)); break;
        case transfer_op::contains: {
            auto r = local->contains(request.shard);
            if (r) reply.present = *r;
            else reply.status = r.error();
            break;
        }
        case transfer_op::list: {
            auto all = local->list();
            if (!all) {
                reply.status = all.error();
                break;
            }
            const auto less = [](const shard_id& a, const shard_id& b) {
                return std::tie(a.chunk, a.index) < std::tie(b.chunk, b.index);
            };
            std::ranges::sort(*all, less);
            auto from = request.after ? std::ranges::upper_bound(*all, request.shard, less) : all->begin();
            const auto left = static_cast<std::size_t>(all->end() - from);
            const std::size_t page = std::min<std::size_t>(left, std::min(request.length, config.list_page));
            reply.shards.assign(from, from + static_cast<std::ptrdiff_t>(page));
            reply.more = page < left;
            break;
        }
        case transfer_op::sync: status(local->sync()); break;
        }
    }
};

shard_transfer::shard_transfer(net::transport& transport, transfer_config config, shard_store* local)
    : impl_(std::make_unique<impl>(transport, std::move(config), local)) {}
shard_transfer::~shard_transfer() = default;

void shard_transfer::call(const net::endpoint& peer, transfer_request request, transfer_callback done) {
    impl_->call(peer, std::move(request), std::move(done));
}

const transfer_stats& shard_transfer::stats() const noexcept { return impl_->stats; }

void shard_transfer::on_timer(net::timer_id id) {
    auto owner = impl_->owners.find(id);
    if (owner == impl_->owners.end()) return;
    auto& p = impl_->peers[owner->second];
    impl_->owners.erase(owner);
    std::optional<impl::pending> expired;
    if (auto it = p.inflight.find(id); it != p.inflight.end()) {
        expired = std::move(it->second);
        p.inflight_bytes -= expired->cost;
        p.inflight.erase(it);
    } else if (auto q = std::ranges::find(p.queue, id, &impl::pending::id); q != p.queue.end()) {
        expired = std::move(*q);
        p.queue.erase(q);
    }
    if (!expired) return;
    impl_->stats.requests_timed_out += 1;
    impl_->pump(p);
    impl::finish(*expired, impl::failure(errc::timed_out));
}

void shard_transfer::on_stream_open(net::stream_id stream, const net::endpoint&, bool inbound) {
    if (inbound) {
        if (impl_->stopping) return impl_->t.close(stream);
        if (!impl_->local) {
            impl_->t.write(stream, reject_frame(errc::not_found)); // a client-only node stores nothing
            impl_->t.close(stream);
            return;
        }
        auto [it, added] = impl_->server_streams.emplace(stream, impl::server_stream{channel_keys(impl_->config, impl_->label, impl_->t.random())});
        (void)added;
        impl_->t.write(stream, hello_frame(it->second.keys.mine));
        return;
    }
    auto c = impl_->client_streams.find(stream);
    if (c == impl_->client_streams.end()) return;
    auto& p = impl_->peers[c->second];
    p.opened = true;
    impl_->t.write(stream, hello_frame(p.keys->mine));
}

void shard_transfer::on_stream_frame(net::stream_id stream, std::span<const std::byte> frame) {
    if (auto s = impl_->server_streams.find(stream); s != impl_->server_streams.end())
        return impl_->server_frame(stream, s->second, frame);
    if (auto c = impl_->client_streams.find(stream); c != impl_->client_streams.end()) {
        auto& p = impl_->peers[c->second];
        if (p.stream == stream) impl_->client_frame(stream, p, frame);
    }
}

void shard_transfer::on_stream_closed(net::stream_id stream, boost::system::error_code reason) {
    if (impl_->server_streams.erase(stream) > 0) return;
    impl_->lose_stream(stream, reason ? as_errc(reason, errc::connection_reset) : errc::connection_reset, false, bool(reason));
}

void shard_transfer::on_stop() {
    impl_->stopping = true;
    for (auto& [to, p] : impl_->peers) {
        impl_->fail_peer(p, errc::shut_down, true);
        if (p.stream) impl_->t.close(*p.stream);
    }
    for (auto& [stream, s] : impl_->server_streams) impl_->t.close(stream);
}

net::protocol_factory make_shard_transfer(transfer_config config, shard_store* local) {
    return [config = std::move(config), local](net::transport& t) -> std::unique_ptr<net::protocol> {
        return std::make_unique<shard_transfer>(t, config, local);
    };
}

} // namespace swarm::inline v0::storage
