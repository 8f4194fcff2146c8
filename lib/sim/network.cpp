#include <swarm/sim/network.hpp>

#include "sim/buffer_pool.hpp"
#include "sim/event_queue.hpp"

#include <fmt/format.h>
#include <gsl/gsl>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <unordered_map>

namespace swarm::inline v0::sim {
namespace {

using detail::buffer_pool;
using detail::event_queue;

constexpr std::uint64_t mix_k = 0x9e3779b97f4a7c15ULL;

std::uint64_t mix(std::uint64_t h, std::uint64_t v) noexcept {
    h = (h ^ v) * mix_k;
    return h ^ (h >> 29);
}

__extension__ using wide = unsigned __int128;

/// Multiplies to 128 bits and folds the halves: one multiply mixes two words.
std::uint64_t fold_mul(std::uint64_t a, std::uint64_t b) noexcept {
    const wide r = static_cast<wide>(a) * b;
    return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

/// A fast 64-bit hash of a payload, one folded multiply per 16 bytes (in the style of wyhash). Not
/// cryptographic; it only has to make different traces differ.
std::uint64_t hash_payload(const std::byte* p, std::size_t n) noexcept {
    constexpr std::uint64_t s0 = 0xa0761d6478bd642fULL, s1 = 0xe7037ed1a0b428dbULL, s2 = 0x8ebc6af09c88c6e3ULL;
    std::uint64_t h = s0 ^ n;
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        std::uint64_t w1, w2;
        std::memcpy(&w1, p + i, 8);
        std::memcpy(&w2, p + i + 8, 8);
        h = fold_mul(w1 ^ s1, w2 ^ h);
    }
    if (i < n) {
        std::byte tail[16]{};
        std::memcpy(tail, p + i, n - i);
        std::uint64_t w1, w2;
        std::memcpy(&w1, tail, 8);
        std::memcpy(&w2, tail + 8, 8);
        h = fold_mul(w1 ^ s1, w2 ^ h);
    }
    return fold_mul(h ^ s2, n ^ s1);
}

std::uint64_t splitmix(std::uint64_t x) noexcept {
    x += mix_k;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

error invalid(std::string message) { return error{errc::config_invalid_value, std::move(message)}; }

bool is_probability(double p) noexcept { return p >= 0 && p <= 1; }

enum class event_kind : std::uint8_t {
    datagram,
    timer,
    callback,
    start,            // on_start of a protocol
    stream_syn,       // a connect reaches the listener
    stream_syn_ack,   // the listener's answer reaches the connector
    stream_refused,   // no listener: the connector learns it
    stream_frame,     // a frame (or the close marker) reaches one side
    stream_ack,       // the receiver's acknowledgement reaches the sender: window space
    stream_fail,      // a side learns its stream broke (reason in aux)
    stream_connect_timeout,
    stream_partition_check,
};

constexpr std::uint8_t flag_fin = 1;

/// Datagram payloads up to this size travel inside their event record, next to it in memory.
constexpr std::size_t inline_payload = 200;

/// One pending event. The pool holds every datagram in flight and each is read once long after it was
/// written, so a small payload sits in the record itself: one contiguous block instead of two cache misses.
struct alignas(64) event {
    std::int64_t sent_at;
    std::uint64_t aux;  // timer id, stream connection index, callback index, error value
    std::uint64_t hash; // payload hash
    std::byte* data;
    std::uint32_t size;
    node_id node;       // the node the event is for
    node_id src;
    std::uint32_t gen;  // timer generation, node incarnation or stream side
    std::uint16_t port; // destination port, or protocol slot for timers and start
    std::uint16_t src_port;
    event_kind kind;
    std::uint8_t flags;
    std::byte bytes[inline_payload]; // the payload when data is null
};

/// Per-sender state of one link: burst loss, jitter correlation and the bandwidth FIFO.
struct link_state {
    std::int64_t busy_until = 0;
    float last_deviate = 0; // float keeps a node's hot state in one cache line
    bool bad = false;
};

/// A link configuration with its derived constants.
struct link {
    link_config config;
    double ns_per_byte = 0;
    bool plain = true; // constant latency, no loss, duplication, reordering or bandwidth limit

    explicit link(const link_config& c) : config(c) {
        if (c.bandwidth_bits_per_second > 0) ns_per_byte = 8e9 / static_cast<double>(c.bandwidth_bits_per_second);
        plain = (c.distribution == latency_distribution::constant || c.jitter.count() == 0) && c.loss == 0 &&
                c.burst_loss.p_good_to_bad == 0 && c.duplicate == 0 && c.reorder == 0 &&
                c.bandwidth_bits_per_second == 0 && !c.block_datagrams;
    }
};

struct pair_link {
    link l;
    link_state state;
};

class sim_transport;

struct protocol_slot {
    std::uint16_t port = 0;
    net::protocol_factory factory;
    std::unique_ptr<sim_transport> transport;
    std::unique_ptr<net::protocol> proto;
    std::unordered_map<net::timer_id, std::uint32_t> timers; // id -> generation of the armed deadline
};

/// What the per-message path reads, packed apart from the rest of a node so 10,000 of them stay in cache.
struct alignas(64) hot_node {
    net::protocol* first_proto = nullptr; // the protocol in slot 0, the common single-protocol case
    std::uint32_t v4 = 0;                 // the IPv4 address in host order, 0 for IPv6 nodes
    std::uint16_t first_port = 0;
    node_state state = node_state::running;
    link_state default_state;
    rng random;
};
static_assert(sizeof(hot_node) == 64);

/// A growable array whose elements never move (chunks of 4096), indexed with a shift and a mask.
template <class T>
class chunked_array {
public:
    T& operator[](std::size_t i) noexcept { return chunks_[i >> shift][i & mask]; }
    const T& operator[](std::size_t i) const noexcept { return chunks_[i >> shift][i & mask]; }
    std::size_t size() const noexcept { return size_; }
    T& emplace_back() {
        if ((size_ >> shift) == chunks_.size()) chunks_.push_back(std::make_unique<T[]>(std::size_t{1} << shift));
        return (*this)[size_++];
    }

private:
    static constexpr std::size_t shift = 12;
    static constexpr std::size_t mask = (std::size_t{1} << shift) - 1;
    std::vector<std::unique_ptr<T[]>> chunks_;
    std::size_t size_ = 0;
};

struct node {
    net::endpoint address; // port 0
    std::uint32_t incarnation = 0;
    std::uint32_t timer_gen = 0;
    std::uint32_t held_datagrams = 0;
    group_id group = 0;
    bool in_group = false;
    sim::disk storage;
    std::vector<std::unique_ptr<protocol_slot>> slots;
    std::vector<std::uint32_t> held; // events waiting for resume()
};

struct frame {
    std::byte* data;
    std::uint32_t size;
    bool fin;
};

enum class side_state : std::uint8_t { connecting, open, closing, closed };

struct stream_side {
    std::uint32_t conn = 0; // index of its connection
    node_id node = 0;
    std::uint16_t slot = 0;
    std::uint32_t incarnation = 0;
    net::stream_id id = 0;
    side_state state = side_state::closed;
    /// The connect completed (a side closed while still connecting has not).
    bool established = false;
    bool above_high = false;
    std::size_t queued = 0;
    std::size_t in_flight = 0;
    std::int64_t last_arrival = 0;
    std::deque<frame> queue;
};

struct connection {
    stream_side side[2];
    std::uint16_t port = 0; // the listener's port
    /// Bumped when the record is reused, so events for the old stream find it gone (kept in event::port).
    std::uint16_t generation = 0;
    bool check_pending = false;
};

struct partition_rule {
    partition_id id;
    bool one_way;
    std::vector<std::uint8_t> side; // per node: 0 not involved, else group number (one way: 1 from, 2 to)
};

} // namespace

struct network::impl {
    network* owner = nullptr; // follows moves, so scheduled actions never hold a stale network pointer
    network_config config;
    link default_link;
    std::int64_t now = 0;
    event_queue queue;
    std::vector<event> events;
    std::vector<std::uint32_t> free_events;
    std::vector<std::function<void()>> callbacks;
    std::vector<std::uint32_t> free_callbacks;
    buffer_pool buffers;
    chunked_array<node> nodes;
    chunked_array<hot_node> hot;
    std::unordered_map<net::endpoint, node_id> by_address;
    std::uint32_t next_auto_address = 0x7f000001;
    rng random;
    std::uint64_t trace = 0x6a09e667f3bcc908ULL;
    counters stats;
    std::function<void(const datagram_record&)> observer;

    std::unordered_map<std::uint64_t, pair_link> pair_links;
    std::map<std::pair<group_id, group_id>, std::size_t> group_links;
    std::vector<link> group_link_configs;
    std::unordered_map<std::uint64_t, link_state> group_states; // (sender, link index)

    std::vector<partition_rule> partitions;
    partition_id next_partition = 1;

    std::vector<connection> connections;
    std::vector<std::uint32_t> free_connections;
    std::unordered_map<net::stream_id, std::uint64_t> streams; // id -> connection index * 2 + side
    net::stream_id next_stream = 1;

    gilbert_elliott saved_burst;
    int bursts_active = 0;

    explicit impl(const network_config& c) : config(c), default_link(c.default_link), random(splitmix(c.seed)) {}

    ~impl() {
        // Protocols may touch their transport while being destroyed; tear them down first.
        for (std::size_t i = 0; i < nodes.size(); ++i)
            for (auto& s : nodes[i].slots) s->proto.reset();
    }

    // ----- events -----
    std::uint32_t new_event(event_kind kind, node_id target) {
        std::uint32_t index;
        if (!free_events.empty()) {
            index = free_events.back();
            free_events.pop_back();
        } else {
            // The queue packs event indices in 24 bits: 16.7 million pending events at once.
            Expects(events.size() <= detail::queue_entry::index_mask);
            index = static_cast<std::uint32_t>(events.size());
            events.emplace_back();
        }
        event& e = events[index];
        // Field by field: zeroing the inline payload too would cost more than the rest of the event.
        e.sent_at = 0;
        e.aux = 0;
        e.hash = 0;
        e.data = nullptr;
        e.size = 0;
        e.node = target;
        e.src = 0;
        e.gen = 0;
        e.port = 0;
        e.src_port = 0;
        e.kind = kind;
        e.flags = 0;
        return index;
    }
    void schedule(std::uint32_t index, std::int64_t when) { queue.push(std::max(when, now), index); }

    void record(std::int64_t sent, node_id from, node_id to, std::size_t size, std::uint64_t payload_hash,
                outcome result) {
        // Two folded multiplies cover time, endpoints, outcome, size and payload.
        const std::uint64_t what = (std::uint64_t{static_cast<std::uint8_t>(result)} << 56) ^ size ^ payload_hash;
        trace = fold_mul(trace ^ static_cast<std::uint64_t>(now), ((std::uint64_t{from} << 32) | to) ^ mix_k);
        trace = fold_mul(trace ^ what, 0x94d049bb133111ebULL);
        if (result == outcome::delivered) {
            ++stats.delivered;
            stats.bytes_delivered += size;
        } else {
            ++stats.dropped[static_cast<std::size_t>(result)];
        }
        if (observer)
            observer(datagram_record{time_point{duration{sent}}, time_point{duration{now}}, from, to, size, result});
    }

    // ----- nodes -----
    node_id lookup(const net::endpoint& to) const noexcept {
        // Automatic addresses map straight to node ids; read the IPv4-mapped bytes inline, as this runs per send.
        const auto& a = to.address();
        std::uint64_t head;
        std::memcpy(&head, a.data(), 8);
        if (head == 0 && a[8] == 0 && a[9] == 0 && a[10] == 0xff && a[11] == 0xff) {
            const std::uint32_t v4 = (std::uint32_t{a[12]} << 24) | (std::uint32_t{a[13]} << 16) |
                                     (std::uint32_t{a[14]} << 8) | std::uint32_t{a[15]};
            const std::uint32_t guess = v4 - 0x7f000001u;
            if (guess < hot.size() && hot[guess].v4 == v4) return guess;
        }
        net::endpoint key{to.address(), 0};
        auto it = by_address.find(key);
        return it == by_address.end() ? no_node : it->second;
    }

    protocol_slot* slot_for_port(node& n, std::uint16_t port) noexcept {
        for (auto& s : n.slots)
            if (s->port == port) return s.get();
        return nullptr;
    }

    node_id add_node_at(const net::endpoint& address);
    void build(node_id id, protocol_slot& slot, std::uint16_t slot_index);
    void do_crash(node_id id);
    void do_resume(node_id id);

    // ----- links -----
    struct link_ref {
        const link* l;
        link_state* state;
    };
    link_ref link_for(node_id from, node_id to) {
        if (!pair_links.empty()) {
            auto it = pair_links.find((std::uint64_t{from} << 32) | to);
            if (it != pair_links.end()) return {&it->second.l, &it->second.state};
        }
        if (!group_links.empty()) {
            const node& a = nodes[from];
            const node& b = nodes[to];
            if (a.in_group && b.in_group) {
                auto it = group_links.find({a.group, b.group});
                if (it != group_links.end()) {
                    auto& st = group_states[(std::uint64_t{from} << 32) | it->second];
                    return {&group_link_configs[it->second], &st};
                }
            }
        }
        return {&default_link, &hot[from].default_state};
    }

    /// The zero-mean jitter deviate of the configured shape (unit spread), AR(1)-correlated.
    double deviate(const link_config& c, link_state& st) {
        double z = 0;
        switch (c.distribution) {
        case latency_distribution::constant: return 0;
        case latency_distribution::uniform: z = 2 * random.unit() - 1; break;
        case latency_distribution::normal: z = normal(); break;
        case latency_distribution::pareto: z = pareto(); break;
        case latency_distribution::pareto_normal: z = 0.75 * pareto() + 0.25 * normal(); break;
        }
        if (c.correlation > 0) {
            z = c.correlation * st.last_deviate + std::sqrt(1 - c.correlation * c.correlation) * z;
            if (c.distribution == latency_distribution::uniform) z = std::clamp(z, -1.0, 1.0);
            st.last_deviate = static_cast<float>(z);
        }
        return z;
    }
    double normal() {
        // Box-Muller; one draw per call keeps the random stream simple to reason about.
        double u1 = 1.0 - random.unit();
        double u2 = random.unit();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    }
    double pareto() {
        // Pareto with shape 3 and scale 1 has mean 1.5 and standard deviation sqrt(3)/2.
        double x = std::cbrt(1.0 / (1.0 - random.unit()));
        return (x - 1.5) / 0.8660254037844386;
    }

    /// Latency of one transmission on the link, with the bandwidth FIFO; -1 when the FIFO is full.
    std::int64_t transit(const link& l, link_state& st, std::size_t size, bool reliable) {
        const link_config& c = l.config;
        std::int64_t delay = c.latency.count();
        if (c.reorder > 0 && random.chance(c.reorder)) {
            delay = 0;
        } else if (c.jitter.count() > 0 && c.distribution != latency_distribution::constant) {
            delay += static_cast<std::int64_t>(static_cast<double>(c.jitter.count()) * deviate(c, st));
            delay = std::max<std::int64_t>(0, delay);
        }
        if (c.bandwidth_bits_per_second > 0) {
            std::int64_t start = std::max(now, st.busy_until);
            auto backlog = static_cast<double>(start - now) / l.ns_per_byte;
            if (!reliable && backlog + static_cast<double>(size) > static_cast<double>(c.queue_limit_bytes)) return -1;
            st.busy_until = start + std::llround(static_cast<double>(size) * l.ns_per_byte);
            delay += st.busy_until - now;
        }
        return delay;
    }

    bool lost(const link_config& c, link_state& st) {
        bool drop = false;
        if (c.burst_loss.p_good_to_bad > 0) {
            const auto& ge = c.burst_loss;
            st.bad = st.bad ? !random.chance(ge.p_bad_to_good) : random.chance(ge.p_good_to_bad);
            drop = random.chance(st.bad ? ge.loss_in_bad : ge.loss_in_good);
        }
        if (c.loss > 0 && random.chance(c.loss)) drop = true;
        return drop;
    }

    static bool lossy(const link_config& c) noexcept { return c.loss > 0 || c.burst_loss.p_good_to_bad > 0; }

    /// Streams pass from `from` to `to`: no partition and no stream block between them.
    bool stream_path(node_id from, node_id to) {
        return (partitions.empty() || reachable(from, to)) && !link_for(from, to).l->config.block_streams;
    }

    bool reachable(node_id from, node_id to) const noexcept {
        for (const auto& p : partitions) {
            std::uint8_t a = p.side[from], b = p.side[to];
            if (a == 0 || b == 0) continue;
            if (p.one_way ? (a == 1 && b == 2) : a != b) return false;
        }
        return true;
    }

    // ----- datagrams -----
    void send(node_id from, std::uint16_t from_port, const net::endpoint& to, std::span<const std::byte> payload) {
        const std::size_t size = payload.size();
        ++stats.sent;
        stats.bytes_sent += size;
        const std::uint64_t ph = hash_payload(payload.data(), size);
        const node_id dst = lookup(to);
        if (dst == no_node) {
            if (size > default_link.config.mtu) return record(now, from, no_node, size, ph, outcome::too_large);
            return record(now, from, no_node, size, ph, outcome::unknown_address);
        }
        link_ref lr = link_for(from, dst);
        const link& l = *lr.l;
        if (size > l.config.mtu) return record(now, from, dst, size, ph, outcome::too_large);
        if (!partitions.empty() && !reachable(from, dst)) return record(now, from, dst, size, ph, outcome::partitioned);
        int copies = 1;
        if (!l.plain) {
            if (l.config.block_datagrams) return record(now, from, dst, size, ph, outcome::blocked);
            if (lost(l.config, *lr.state)) return record(now, from, dst, size, ph, outcome::lost);
            if (l.config.duplicate > 0 && random.chance(l.config.duplicate)) copies = 2;
        }
        for (int i = 0; i < copies; ++i) {
            std::int64_t delay = l.plain ? l.config.latency.count() : transit(l, *lr.state, size, false);
            if (delay < 0) {
                record(now, from, dst, size, ph, outcome::queue_full);
                continue;
            }
            if (i == 1) ++stats.duplicated;
            std::uint32_t index = new_event(event_kind::datagram, dst);
            event& e = events[index];
            e.sent_at = now;
            e.hash = ph;
            e.size = static_cast<std::uint32_t>(size);
            if (size > inline_payload) e.data = buffers.allocate(size);
            if (size > 0) std::memcpy(e.data ? e.data : e.bytes, payload.data(), size);
            e.src = from;
            e.src_port = from_port;
            e.port = to.port();
            schedule(index, now + delay);
        }
    }

    void deliver(const event& e) {
        const hot_node& h = hot[e.node];
        net::protocol* p = nullptr;
        if (h.state == node_state::crashed) {
            record(e.sent_at, e.src, e.node, e.size, e.hash, outcome::crashed);
        } else {
            if (h.first_port == e.port) p = h.first_proto;
            else if (protocol_slot* slot = slot_for_port(nodes[e.node], e.port)) p = slot->proto.get();
            record(e.sent_at, e.src, e.node, e.size, e.hash, p ? outcome::delivered : outcome::no_listener);
        }
        if (p) {
            const hot_node& from = hot[e.src];
            const net::endpoint source = from.v4 != 0 ? net::endpoint::v4(from.v4, e.src_port)
                                                      : net::endpoint{nodes[e.src].address.address(), e.src_port};
            p->on_datagram(source, std::span<const std::byte>(e.data ? e.data : e.bytes, e.size));
        }
        buffers.release(e.data, e.size);
    }

    // ----- timers -----
    void set_timer(node_id id, std::uint16_t slot_index, net::timer_id timer, time_point deadline) {
        node& n = nodes[id];
        std::uint32_t gen = ++n.timer_gen;
        n.slots[slot_index]->timers[timer] = gen;
        std::uint32_t index = new_event(event_kind::timer, id);
        event& e = events[index];
        e.aux = timer;
        e.gen = gen;
        e.port = slot_index;
        schedule(index, deadline.time_since_epoch().count());
    }
    void fire_timer(const event& e) {
        protocol_slot& slot = *nodes[e.node].slots[e.port];
        auto it = slot.timers.find(e.aux);
        if (it == slot.timers.end() || it->second != e.gen || !slot.proto) return;
        slot.timers.erase(it);
        ++stats.timers_fired;
        slot.proto->on_timer(e.aux);
    }

    // ----- streams -----
    stream_side* side_of(net::stream_id id, std::size_t* conn_index = nullptr, int* which = nullptr) {
        auto it = streams.find(id);
        if (it == streams.end()) return nullptr;
        auto ci = static_cast<std::size_t>(it->second >> 1);
        int w = static_cast<int>(it->second & 1);
        if (conn_index) *conn_index = ci;
        if (which) *which = w;
        return &connections[ci].side[w];
    }
    bool alive(const stream_side& s) const noexcept {
        return s.state != side_state::closed && hot[s.node].state != node_state::crashed &&
               nodes[s.node].incarnation == s.incarnation;
    }
    net::protocol* proto_of(const stream_side& s) {
        return nodes[s.node].slots[s.slot]->proto.get();
    }
    net::endpoint endpoint_of_side(const stream_side& s) {
        return net::endpoint{nodes[s.node].address.address(), nodes[s.node].slots[s.slot]->port};
    }
    void stream_event(event_kind kind, std::size_t conn, int which, std::int64_t when, std::uint64_t aux = 0) {
        const stream_side& s = connections[conn].side[which];
        std::uint32_t index = new_event(kind, s.node);
        event& e = events[index];
        e.aux = aux;
        e.gen = static_cast<std::uint32_t>(which);
        e.src = static_cast<node_id>(conn);
        e.port = connections[conn].generation;
        schedule(index, when);
    }
    /// Closes one side; once both are closed the record is recycled for the next connect().
    void close_side(stream_side& s) {
        for (auto& f : s.queue) buffers.release(f.data, f.size);
        s.queue.clear();
        s.queued = 0;
        s.state = side_state::closed;
        streams.erase(s.id);
        connection& c = connections[s.conn];
        if (c.side[0].state == side_state::closed && c.side[1].state == side_state::closed) {
            const std::uint32_t index = s.conn;
            const auto generation = static_cast<std::uint16_t>(c.generation + 1);
            c = connection{};
            c.generation = generation;
            free_connections.push_back(index);
        }
    }
    /// Closes one side and tells its protocol why. A side that was closing by its own choice hears it too:
    /// on_stream_closed comes once for every stream, whoever closed it, as the socket driver does.
    void fail_side(std::size_t conn, int which, boost::system::error_code reason) {
        stream_side& s = connections[conn].side[which];
        if (s.state == side_state::closed) return;
        if (!alive(s)) {
            close_side(s);
            return;
        }
        net::stream_id id = s.id;
        net::protocol* p = proto_of(s);
        close_side(s);
        if (p) p->on_stream_closed(id, reason);
    }

    /// Stream frames feed the trace like datagrams, marked apart (bit 40) so the two never collide.
    void trace_frame(node_id from, node_id to, const event& e, outcome result) {
        std::uint64_t h = mix(trace, static_cast<std::uint64_t>(now));
        h = mix(h, (std::uint64_t{from} << 32) | to);
        h = mix(h, (std::uint64_t{static_cast<std::uint8_t>(result)} << 32) | e.size | (std::uint64_t{1} << 40) |
                       (std::uint64_t{e.flags} << 48));
        trace = mix(h, e.hash);
    }

    std::uint64_t connect(node_id from, std::uint16_t slot_index, const net::endpoint& to);
    void write(net::stream_id id, std::span<const std::byte> data);
    void close(net::stream_id id);
    void pump(std::size_t conn, int which);
    void handle_stream(const event& e);
    void break_streams_of(node_id id);
    void partition_changed();

    void dispatch(std::uint32_t index);
    void prefetch_ahead() const noexcept;
    /// Runs events due at or before `limit`; stops early, returning true, once `done` holds.
    bool run_events(std::int64_t limit, const std::function<bool()>* done);
};

// ----- the transport each protocol sees -----
namespace {

class sim_transport final : public net::transport {
public:
    sim_transport(network::impl& net, node_id node, std::uint16_t slot, std::uint16_t port)
        : net_(net), node_(node), slot_(slot), port_(port) {}

    time_point now() const noexcept override { return time_point{duration{net_.now}}; }
    net::endpoint local_endpoint() const noexcept override {
        return net::endpoint{net_.nodes[node_].address.address(), port_};
    }
    rng& random() noexcept override { return net_.hot[node_].random; }
    const logger& log() const noexcept override { return net_.config.log; }
    std::size_t max_datagram_size() const noexcept override { return net_.default_link.config.mtu; }
    void send(const net::endpoint& to, std::span<const std::byte> payload) override {
        net_.send(node_, port_, to, payload);
    }
    void set_timer(net::timer_id id, time_point deadline) override { net_.set_timer(node_, slot_, id, deadline); }
    void cancel_timer(net::timer_id id) override { net_.nodes[node_].slots[slot_]->timers.erase(id); }
    net::stream_id connect(const net::endpoint& to) override { return net_.connect(node_, slot_, to); }
    void write(net::stream_id stream, std::span<const std::byte> frame) override { net_.write(stream, frame); }
    std::size_t queued_bytes(net::stream_id stream) const noexcept override {
        const stream_side* s = net_.side_of(stream);
        return s ? s->queued : 0;
    }
    std::size_t max_frame_size() const noexcept override { return net_.config.streams.max_frame_size; }
    void close(net::stream_id stream) override { net_.close(stream); }

private:
    network::impl& net_;
    node_id node_;
    std::uint16_t slot_;
    std::uint16_t port_;
};

} // namespace

node_id network::impl::add_node_at(const net::endpoint& address) {
    auto id = static_cast<node_id>(nodes.size());
    node& n = nodes.emplace_back();
    n.address = net::endpoint{address.address(), 0};
    hot_node& h = hot.emplace_back();
    h.random.reseed(splitmix(config.seed ^ splitmix(0x5157u + id)));
    if (n.address.is_v4() && n.address.v4_address() != 0) h.v4 = n.address.v4_address();
    by_address.emplace(n.address, id);
    for (auto& p : partitions) p.side.push_back(0);
    return id;
}

void network::impl::build(node_id id, protocol_slot& slot, std::uint16_t slot_index) {
    node& n = nodes[id];
    slot.transport = std::make_unique<sim_transport>(*this, id, slot_index, slot.port);
    slot.proto = slot.factory(*slot.transport);
    if (!slot.proto) {
        config.log.warning("sim: the factory for port {} of node {} returned no protocol", slot.port, id);
        return;
    }
    std::uint32_t index = new_event(event_kind::start, id);
    events[index].port = slot_index;
    events[index].gen = n.incarnation;
    schedule(index, now);
    if (slot_index == 0) {
        hot[id].first_proto = slot.proto.get();
        hot[id].first_port = slot.port;
    }
}

void network::impl::do_crash(node_id id) {
    node& n = nodes[id];
    if (hot[id].state == node_state::crashed) return;
    hot[id].state = node_state::crashed;
    hot[id].first_proto = nullptr;
    ++n.incarnation;
    for (std::uint32_t index : n.held) {
        event& e = events[index];
        if (e.kind == event_kind::datagram) {
            record(e.sent_at, e.src, e.node, e.size, e.hash, outcome::crashed);
            buffers.release(e.data, e.size);
        } else if (e.kind == event_kind::stream_frame) {
            buffers.release(e.data, e.size);
        }
        free_events.push_back(index);
    }
    n.held.clear();
    n.held_datagrams = 0;
    for (auto& s : n.slots) {
        s->timers.clear();
        s->proto.reset();
        s->transport.reset();
    }
    break_streams_of(id);
}

void network::impl::do_resume(node_id id) {
    node& n = nodes[id];
    if (hot[id].state != node_state::paused) return;
    hot[id].state = node_state::running;
    // Everything that waited runs now, in the order it came due.
    std::vector<std::uint32_t> held;
    held.swap(n.held);
    n.held_datagrams = 0;
    for (std::uint32_t index : held) schedule(index, now);
}

// ----- streams -----

std::uint64_t network::impl::connect(node_id from, std::uint16_t slot_index, const net::endpoint& to) {
    const net::stream_id id = next_stream++;
    std::size_t conn = connections.size();
    if (!free_connections.empty()) {
        conn = free_connections.back();
        free_connections.pop_back();
    } else {
        connections.emplace_back();
    }
    connection& c = connections[conn];
    c.side[0].conn = c.side[1].conn = static_cast<std::uint32_t>(conn);
    c.port = to.port();
    stream_side& s = c.side[0];
    s.node = from;
    s.slot = slot_index;
    s.incarnation = nodes[from].incarnation;
    s.id = id;
    s.state = side_state::connecting;
    streams.emplace(id, std::uint64_t{conn} << 1);
    const node_id dst = lookup(to);
    if (dst == no_node) {
        stream_event(event_kind::stream_fail, conn, 0, now, static_cast<std::uint64_t>(errc::unreachable));
        return id;
    }
    c.side[1].node = dst;
    stream_event(event_kind::stream_connect_timeout, conn, 0, now + config.streams.connect_timeout.count());
    if (!stream_path(from, dst) || !stream_path(dst, from) || hot[dst].state == node_state::crashed)
        return id; // the SYN is lost
    link_ref lr = link_for(from, dst);
    // A lost SYN or SYN-ACK is retried after syn_retry, then twice as long, as TCP does; the handshake is
    // decided here, at connect time, so that the listener sees one SYN.
    std::int64_t wait = 0;
    if (lossy(lr.l->config) || lossy(link_for(dst, from).l->config)) {
        link_ref back = link_for(dst, from);
        std::int64_t rto = config.streams.syn_retry.count();
        while (lost(lr.l->config, *lr.state) || lost(back.l->config, *back.state)) {
            wait += rto;
            rto *= 2;
            if (wait >= config.streams.connect_timeout.count()) return id; // every try was lost: it times out
        }
    }
    std::int64_t delay = wait + transit(*lr.l, *lr.state, 64, true);
    std::uint32_t index = new_event(event_kind::stream_syn, dst);
    events[index].src = static_cast<node_id>(conn);
    events[index].port = c.generation;
    schedule(index, now + delay);
    return id;
}

void network::impl::write(net::stream_id id, std::span<const std::byte> data) {
    std::size_t conn = 0;
    int which = 0;
    stream_side* s = side_of(id, &conn, &which);
    if (s == nullptr || s->state == side_state::closing || s->state == side_state::closed) return;
    if (data.size() > config.streams.max_frame_size) {
        config.log.warning("sim: stream {} frame of {} bytes over the {} byte limit; stream reset", id, data.size(),
                           config.streams.max_frame_size);
        stream_event(event_kind::stream_fail, conn, which, now, static_cast<std::uint64_t>(errc::message_too_large));
        const stream_side& peer = connections[conn].side[1 - which];
        if (peer.state == side_state::open) {
            const link_ref lr = link_for(s->node, peer.node);
            stream_event(event_kind::stream_fail, conn, 1 - which, now + lr.l->config.latency.count(),
                         static_cast<std::uint64_t>(errc::connection_reset));
        }
        return;
    }
    frame f{buffers.allocate(data.size()), static_cast<std::uint32_t>(data.size()), false};
    if (!data.empty()) std::memcpy(f.data, data.data(), data.size());
    s->queue.push_back(f);
    s->queued += data.size();
    if (s->queued > config.streams.high_watermark) s->above_high = true;
    if (s->state == side_state::open) pump(conn, which);
}

void network::impl::close(net::stream_id id) {
    std::size_t conn = 0;
    int which = 0;
    stream_side* s = side_of(id, &conn, &which);
    if (s == nullptr || s->state == side_state::closing || s->state == side_state::closed) return;
    if (s->state == side_state::connecting) {
        // Never connected: nothing to flush, the peer (if it accepted meanwhile) sees an orderly close.
        s->queue.push_back(frame{nullptr, 0, true});
        s->state = side_state::closing;
        return;
    }
    s->queue.push_back(frame{nullptr, 0, true});
    s->state = side_state::closing;
    pump(conn, which);
}

void network::impl::pump(std::size_t conn, int which) {
    connection& c = connections[conn];
    stream_side& s = c.side[which];
    stream_side& peer = c.side[1 - which];
    if (!stream_path(s.node, peer.node)) {
        if (!c.check_pending && !s.queue.empty()) {
            c.check_pending = true;
            stream_event(event_kind::stream_partition_check, conn, which, now + config.streams.break_timeout.count());
        }
        return;
    }
    const std::size_t window = config.streams.window_bytes;
    while (!s.queue.empty() && (s.in_flight == 0 || s.in_flight + s.queue.front().size <= window)) {
        frame f = s.queue.front();
        s.queue.pop_front();
        s.queued -= f.size;
        s.in_flight += f.size;
        link_ref lr = link_for(s.node, peer.node);
        // Each loss of the frame costs one retransmission timeout, doubling; past break_timeout TCP gives up.
        std::int64_t retransmitted = 0;
        if (lossy(lr.l->config)) {
            std::int64_t rto = config.streams.retransmit_timeout.count();
            while (lost(lr.l->config, *lr.state) && retransmitted <= config.streams.break_timeout.count()) {
                retransmitted += rto;
                rto *= 2;
            }
        }
        if (retransmitted > config.streams.break_timeout.count()) {
            buffers.release(f.data, f.size);
            stream_event(event_kind::stream_fail, conn, which, now + config.streams.break_timeout.count(),
                         static_cast<std::uint64_t>(errc::timed_out));
            stream_event(event_kind::stream_fail, conn, 1 - which, now + config.streams.break_timeout.count(),
                         static_cast<std::uint64_t>(errc::timed_out));
            return;
        }
        std::int64_t arrival = now + retransmitted + transit(*lr.l, *lr.state, f.size + 40, true);
        arrival = std::max(arrival, s.last_arrival); // the stream is ordered whatever the jitter
        s.last_arrival = arrival;
        std::uint32_t index = new_event(event_kind::stream_frame, peer.node);
        event& e = events[index];
        e.data = f.data;
        e.size = f.size;
        e.hash = hash_payload(f.data, f.size);
        e.sent_at = now;
        e.flags = f.fin ? flag_fin : 0;
        e.gen = static_cast<std::uint32_t>(1 - which);
        e.src = static_cast<node_id>(conn);
        e.port = c.generation;
        schedule(index, arrival);
        if (f.fin) break;
    }
}

void network::impl::handle_stream(const event& e) {
    const auto conn = static_cast<std::size_t>(e.src);
    const int which = static_cast<int>(e.gen);
    if (connections[conn].generation != e.port) { // the stream is long gone and its record reused
        if (e.kind == event_kind::stream_frame) buffers.release(e.data, e.size);
        return;
    }
    switch (e.kind) {
    case event_kind::stream_syn: {
        connection& c = connections[conn];
        stream_side& a = c.side[0];
        if (!alive(a)) return;
        node& n = nodes[e.node];
        if (hot[e.node].state == node_state::crashed) return; // no answer: the connector times out
        protocol_slot* slot = slot_for_port(n, c.port);
        const link_ref back = link_for(e.node, a.node);
        const std::int64_t delay = transit(*back.l, *back.state, 64, true);
        if (slot == nullptr || !slot->proto) {
            stream_event(event_kind::stream_refused, conn, 0, now + delay);
            return;
        }
        stream_side& b = c.side[1];
        b.node = e.node;
        for (std::size_t i = 0; i < n.slots.size(); ++i)
            if (n.slots[i].get() == slot) b.slot = static_cast<std::uint16_t>(i);
        b.incarnation = n.incarnation;
        b.id = next_stream++;
        b.state = side_state::open;
        streams.emplace(b.id, (std::uint64_t{conn} << 1) | 1);
        stream_event(event_kind::stream_syn_ack, conn, 0, now + delay);
        const net::stream_id id = b.id;
        const net::endpoint peer = endpoint_of_side(a);
        slot->proto->on_stream_open(id, peer, true);
        return;
    }
    case event_kind::stream_syn_ack: {
        stream_side& a = connections[conn].side[0];
        if (!alive(a)) return;
        const bool closing = a.state == side_state::closing;
        a.established = true;
        if (!closing) a.state = side_state::open;
        pump(conn, 0);
        if (closing) return;
        const net::stream_id id = a.id;
        const net::endpoint peer = endpoint_of_side(connections[conn].side[1]);
        if (net::protocol* p = proto_of(a)) p->on_stream_open(id, peer, false);
        return;
    }
    case event_kind::stream_refused: {
        stream_side& a = connections[conn].side[0];
        if (a.state == side_state::connecting || a.state == side_state::closing)
            fail_side(conn, 0, make_error_code(errc::connection_refused));
        return;
    }
    case event_kind::stream_connect_timeout: {
        stream_side& a = connections[conn].side[0];
        if (a.state == side_state::connecting || (a.state == side_state::closing && !a.established))
            fail_side(conn, 0, make_error_code(errc::timed_out));
        return;
    }
    case event_kind::stream_fail:
        fail_side(conn, which, make_error_code(static_cast<errc>(e.aux)));
        return;
    case event_kind::stream_frame: {
        stream_side& r = connections[conn].side[which];
        const stream_side& sender = connections[conn].side[1 - which];
        const bool fin = (e.flags & flag_fin) != 0;
        if (!alive(r) || (r.state == side_state::closing && !fin)) {
            trace_frame(sender.node, r.node, e, outcome::crashed);
            buffers.release(e.data, e.size);
            return;
        }
        if (!fin) {
            ++stats.stream_frames;
            stats.stream_bytes += e.size;
        }
        trace_frame(sender.node, r.node, e, outcome::delivered);
        // The acknowledgement frees window space at the sender one reverse trip later.
        if (e.size > 0) {
            const link_ref back = link_for(r.node, sender.node);
            stream_event(event_kind::stream_ack, conn, 1 - which, now + back.l->config.latency.count(), e.size);
        }
        const net::stream_id id = r.id;
        net::protocol* p = proto_of(r);
        if (fin) {
            // The FIN arrived: the closer's close is complete, and the receiver sees an orderly end (or, if it
            // was closing as well, its own close completes). Both hear of it, after the state has settled.
            stream_side& s = connections[conn].side[1 - which];
            net::stream_id closer_id = 0;
            net::protocol* closer = nullptr;
            if (s.state == side_state::closing && s.queue.empty() && alive(s)) {
                closer_id = s.id;
                closer = proto_of(s);
                close_side(s);
            }
            close_side(r);
            if (closer) closer->on_stream_closed(closer_id, {});
            if (p) p->on_stream_closed(id, {});
        } else if (p) {
            p->on_stream_frame(id, std::span<const std::byte>(e.data, e.size));
        }
        buffers.release(e.data, e.size);
        return;
    }
    case event_kind::stream_ack: {
        stream_side& s = connections[conn].side[which];
        if (!alive(s)) return;
        s.in_flight -= std::min<std::size_t>(s.in_flight, e.aux);
        pump(conn, which);
        stream_side& again = connections[conn].side[which];
        if (again.state == side_state::open && again.above_high && again.queued <= config.streams.low_watermark) {
            again.above_high = false;
            if (net::protocol* p = proto_of(again)) p->on_stream_writable(again.id);
        }
        return;
    }
    case event_kind::stream_partition_check: {
        connection& c = connections[conn];
        c.check_pending = false;
        const node_id a = c.side[0].node, b = c.side[1].node;
        if (!stream_path(a, b) || !stream_path(b, a)) {
            fail_side(conn, 0, make_error_code(errc::timed_out));
            fail_side(conn, 1, make_error_code(errc::timed_out));
            return;
        }
        for (int w = 0; w < 2; ++w)
            if (alive(connections[conn].side[w]) && connections[conn].side[w].state != side_state::connecting)
                pump(conn, w);
        return;
    }
    default: return;
    }
}

void network::impl::break_streams_of(node_id id) {
    for (std::size_t conn = 0; conn < connections.size(); ++conn) {
        connection& c = connections[conn];
        for (int w = 0; w < 2; ++w) {
            stream_side& s = c.side[w];
            if (s.node != id || s.state == side_state::closed) continue;
            close_side(s);
            stream_side& peer = c.side[1 - w];
            if (peer.state == side_state::open || peer.state == side_state::closing)
                stream_event(event_kind::stream_fail, conn, 1 - w, now + config.streams.break_timeout.count(),
                             static_cast<std::uint64_t>(errc::connection_reset));
        }
    }
}

void network::impl::partition_changed() {
    for (std::size_t conn = 0; conn < connections.size(); ++conn) {
        connection& c = connections[conn];
        bool live = false;
        for (auto& s : c.side) live = live || (s.state == side_state::open || s.state == side_state::closing);
        if (!live) continue;
        const node_id a = c.side[0].node, b = c.side[1].node;
        if (!reachable(a, b) || !reachable(b, a)) {
            if (!c.check_pending) {
                c.check_pending = true;
                stream_event(event_kind::stream_partition_check, conn, 0, now + config.streams.break_timeout.count());
            }
        } else {
            for (int w = 0; w < 2; ++w)
                if (alive(connections[conn].side[w]) && connections[conn].side[w].state != side_state::connecting)
                    pump(conn, w);
        }
    }
}

void network::impl::dispatch(std::uint32_t index) {
    ++stats.events;
    event& held = events[index];
    if (held.kind != event_kind::callback && hot[held.node].state == node_state::paused) {
        node& n = nodes[held.node];
        if (held.kind == event_kind::datagram) {
            if (n.held_datagrams >= config.paused_queue_limit) {
                record(held.sent_at, held.src, held.node, held.size, held.hash, outcome::paused_overflow);
                buffers.release(held.data, held.size);
                free_events.push_back(index);
                return;
            }
            ++n.held_datagrams;
        }
        n.held.push_back(index);
        return;
    }
    const event e = held;
    free_events.push_back(index);
    switch (e.kind) {
    case event_kind::datagram: deliver(e); return;
    case event_kind::timer: fire_timer(e); return;
    case event_kind::callback: {
        std::function<void()> fn = std::move(callbacks[e.aux]);
        free_callbacks.push_back(static_cast<std::uint32_t>(e.aux));
        fn();
        return;
    }
    case event_kind::start: {
        node& n = nodes[e.node];
        if (n.incarnation != e.gen || hot[e.node].state == node_state::crashed) return;
        if (auto& p = n.slots[e.port]->proto) p->on_start();
        return;
    }
    default: handle_stream(e); return;
    }
}

// ----- configuration -----

double gilbert_elliott::expected_loss() const noexcept {
    if (p_good_to_bad <= 0) return loss_in_good;
    const double bad = p_good_to_bad / (p_good_to_bad + p_bad_to_good);
    return (1 - bad) * loss_in_good + bad * loss_in_bad;
}

detailed_result<void> gilbert_elliott::validate() const {
    if (!is_probability(p_good_to_bad))
        return invalid(fmt::format("burst_loss.p_good_to_bad {} is not in [0, 1]", p_good_to_bad));
    if (!is_probability(p_bad_to_good))
        return invalid(fmt::format("burst_loss.p_bad_to_good {} is not in [0, 1]", p_bad_to_good));
    if (p_good_to_bad > 0 && p_bad_to_good == 0)
        return invalid("burst_loss.p_bad_to_good is 0: the link would stay in the bad state forever");
    if (!is_probability(loss_in_good))
        return invalid(fmt::format("burst_loss.loss_in_good {} is not in [0, 1]", loss_in_good));
    if (!is_probability(loss_in_bad))
        return invalid(fmt::format("burst_loss.loss_in_bad {} is not in [0, 1]", loss_in_bad));
    return {};
}

detailed_result<void> link_config::validate() const {
    if (latency.count() < 0) return invalid(fmt::format("link latency {} ns is negative", latency.count()));
    if (jitter.count() < 0) return invalid(fmt::format("link jitter {} ns is negative", jitter.count()));
    if (!(correlation >= 0 && correlation < 1))
        return invalid(fmt::format("link correlation {} is not in [0, 1)", correlation));
    if (!is_probability(loss)) return invalid(fmt::format("link loss {} is not in [0, 1]", loss));
    if (auto r = burst_loss.validate(); !r) return r;
    if (!is_probability(duplicate)) return invalid(fmt::format("link duplicate {} is not in [0, 1]", duplicate));
    if (!is_probability(reorder)) return invalid(fmt::format("link reorder {} is not in [0, 1]", reorder));
    if (mtu == 0) return invalid("link mtu is 0: no datagram could pass");
    if (mtu > 65507) return invalid(fmt::format("link mtu {} is over the 65507-byte UDP maximum", mtu));
    if (bandwidth_bits_per_second > 0 && queue_limit_bytes < mtu)
        return invalid(fmt::format("link queue_limit_bytes {} is smaller than the mtu {}", queue_limit_bytes, mtu));
    return {};
}

detailed_result<void> stream_config::validate() const {
    if (connect_timeout.count() <= 0) return invalid("streams.connect_timeout must be positive");
    if (break_timeout.count() <= 0) return invalid("streams.break_timeout must be positive");
    if (window_bytes == 0) return invalid("streams.window_bytes is 0: nothing could be sent");
    if (low_watermark > high_watermark)
        return invalid(fmt::format("streams.low_watermark {} is above high_watermark {}",
                                   low_watermark, high_watermark));
    if (max_frame_size == 0) return invalid("streams.max_frame_size is 0");
    if (max_frame_size > 0xffffffffu) return invalid("streams.max_frame_size is over 4 GiB");
    if (syn_retry.count() <= 0) return invalid("streams.syn_retry must be positive");
    if (retransmit_timeout.count() <= 0) return invalid("streams.retransmit_timeout must be positive");
    return {};
}

detailed_result<void> network_config::validate() const {
    if (auto r = default_link.validate(); !r) return r;
    if (auto r = streams.validate(); !r) return r;
    if (paused_queue_limit == 0) return invalid("paused_queue_limit is 0");
    return {};
}

detailed_result<void> random_faults::validate() const {
    if (end < begin) return invalid("random_faults.end is before begin");
    for (double rate : {crashes_per_hour, pauses_per_hour, partitions_per_hour, loss_bursts_per_hour})
        if (!(rate >= 0 && rate < 1e9))
            return invalid(fmt::format("random_faults rate {} is negative or absurd", rate));
    for (duration d : {downtime, pause_length, partition_length, loss_burst_length})
        if (d.count() <= 0) return invalid("random_faults durations must be positive");
    return burst.validate();
}

std::string_view to_string(outcome o) noexcept {
    switch (o) {
    case outcome::delivered: return "delivered";
    case outcome::lost: return "lost";
    case outcome::partitioned: return "partitioned";
    case outcome::too_large: return "too_large";
    case outcome::queue_full: return "queue_full";
    case outcome::crashed: return "crashed";
    case outcome::paused_overflow: return "paused_overflow";
    case outcome::no_listener: return "no_listener";
    case outcome::unknown_address: return "unknown_address";
    case outcome::blocked: return "blocked";
    }
    return "unknown";
}

std::string_view to_string(fault_kind k) noexcept {
    switch (k) {
    case fault_kind::crash: return "crash";
    case fault_kind::restart: return "restart";
    case fault_kind::pause: return "pause";
    case fault_kind::resume: return "resume";
    case fault_kind::isolate: return "isolate";
    case fault_kind::partition_halves: return "partition_halves";
    case fault_kind::heal_all: return "heal_all";
    case fault_kind::loss_burst: return "loss_burst";
    }
    return "unknown";
}

std::uint64_t counters::dropped_total() const noexcept {
    std::uint64_t total = 0;
    for (auto d : dropped) total += d;
    return total;
}

detailed_result<fault_schedule> make_random_faults(const random_faults& config, std::size_t node_count,
                                                   std::uint64_t seed) {
    if (auto r = config.validate(); !r) return r.error();
    if (node_count == 0 && (config.crashes_per_hour > 0 || config.pauses_per_hour > 0))
        return invalid("random faults on nodes need at least one node");
    fault_schedule schedule;
    rng random(splitmix(seed ^ 0xfa017ULL));
    const double span_ns = static_cast<double>((config.end - config.begin).count());
    auto draw = [&](double per_hour, auto&& make) {
        if (per_hour <= 0) return;
        const double mean_gap = 3.6e12 / per_hour;
        double t = 0;
        for (;;) {
            t += -std::log(1.0 - random.unit()) * mean_gap;
            if (t >= span_ns) break;
            fault f;
            f.at = config.begin + duration{static_cast<std::int64_t>(t)};
            make(f);
            schedule.faults.push_back(f);
        }
    };
    draw(config.crashes_per_hour, [&](fault& f) {
        f.kind = fault_kind::crash;
        f.node = static_cast<node_id>(random.below(node_count));
        f.length = config.downtime;
    });
    draw(config.pauses_per_hour, [&](fault& f) {
        f.kind = fault_kind::pause;
        f.node = static_cast<node_id>(random.below(node_count));
        f.length = config.pause_length;
    });
    draw(config.partitions_per_hour, [&](fault& f) {
        f.kind = fault_kind::partition_halves;
        f.length = config.partition_length;
    });
    draw(config.loss_bursts_per_hour, [&](fault& f) {
        f.kind = fault_kind::loss_burst;
        f.length = config.loss_burst_length;
        f.burst = config.burst;
    });
    std::stable_sort(schedule.faults.begin(), schedule.faults.end(),
                     [](const fault& a, const fault& b) { return a.at < b.at; });
    return schedule;
}

// ----- network -----

network::network(std::unique_ptr<impl> state) : impl_(std::move(state)) { impl_->owner = this; }
network::network(network&& other) noexcept : impl_(std::move(other.impl_)) {
    if (impl_) impl_->owner = this;
}
network& network::operator=(network&& other) noexcept {
    impl_ = std::move(other.impl_);
    if (impl_) impl_->owner = this;
    return *this;
}
network::~network() = default;

detailed_result<network> network::create(const network_config& config) {
    if (auto r = config.validate(); !r) return r.error();
    return network(std::make_unique<impl>(config));
}

node_id network::add_node() {
    while (impl_->by_address.contains(net::endpoint::v4(impl_->next_auto_address, 0))) ++impl_->next_auto_address;
    return impl_->add_node_at(net::endpoint::v4(impl_->next_auto_address++, 0));
}

detailed_result<node_id> network::add_node(const net::endpoint& address) {
    if (address.is_unspecified()) return error{errc::invalid_argument, "a node needs a specified address"};
    if (impl_->by_address.contains(net::endpoint{address.address(), 0}))
        return error{errc::already_exists, fmt::format("address {} is taken by another node", address.to_string())};
    return impl_->add_node_at(address);
}

detailed_result<void> network::add_protocol(node_id id, std::uint16_t port, net::protocol_factory factory) {
    if (id >= impl_->nodes.size()) return error{errc::not_found, fmt::format("no node {}", id)};
    if (port == 0) return error{errc::invalid_argument, "a protocol needs a port other than 0"};
    if (!factory) return error{errc::invalid_argument, "the protocol factory is empty"};
    node& n = impl_->nodes[id];
    if (impl_->slot_for_port(n, port))
        return error{errc::already_exists, fmt::format("node {} already has port {}", id, port)};
    if (n.slots.size() >= 0xffff) return error{errc::too_large, "too many protocols on one node"};
    auto slot = std::make_unique<protocol_slot>();
    slot->port = port;
    slot->factory = std::move(factory);
    n.slots.push_back(std::move(slot));
    const auto slot_index = static_cast<std::uint16_t>(n.slots.size() - 1);
    if (impl_->hot[id].state != node_state::crashed) {
        impl_->build(id, *n.slots.back(), slot_index);
        if (!n.slots.back()->proto) {
            n.slots.pop_back();
            return error{errc::invalid_argument, fmt::format("the factory for port {} returned no protocol", port)};
        }
    }
    return {};
}

std::size_t network::node_count() const noexcept { return impl_->nodes.size(); }

net::endpoint network::endpoint_of(node_id id, std::uint16_t port) const {
    Expects(id < impl_->nodes.size());
    return net::endpoint{impl_->nodes[id].address.address(), port};
}

std::optional<node_id> network::node_at(const net::endpoint& address) const noexcept {
    node_id id = impl_->lookup(address);
    if (id == no_node) return std::nullopt;
    return id;
}

net::protocol* network::protocol_at(node_id id, std::uint16_t port) const noexcept {
    if (id >= impl_->nodes.size()) return nullptr;
    protocol_slot* s = impl_->slot_for_port(impl_->nodes[id], port);
    return s ? s->proto.get() : nullptr;
}

sim::disk& network::disk(node_id id) {
    Expects(id < impl_->nodes.size());
    return impl_->nodes[id].storage;
}

node_state network::state(node_id id) const {
    Expects(id < impl_->nodes.size());
    return impl_->hot[id].state;
}

result<void> network::crash(node_id id) {
    if (id >= impl_->nodes.size()) return make_error_code(errc::not_found);
    impl_->do_crash(id);
    return {};
}

result<void> network::restart(node_id id) {
    if (id >= impl_->nodes.size()) return make_error_code(errc::not_found);
    impl_->do_crash(id);
    node& n = impl_->nodes[id];
    impl_->hot[id].state = node_state::running;
    for (std::size_t i = 0; i < n.slots.size(); ++i) impl_->build(id, *n.slots[i], static_cast<std::uint16_t>(i));
    return {};
}

result<void> network::pause(node_id id) {
    if (id >= impl_->nodes.size()) return make_error_code(errc::not_found);
    hot_node& h = impl_->hot[id];
    if (h.state == node_state::crashed) return make_error_code(errc::invalid_argument);
    h.state = node_state::paused;
    return {};
}

result<void> network::resume(node_id id) {
    if (id >= impl_->nodes.size()) return make_error_code(errc::not_found);
    impl_->do_resume(id);
    return {};
}

detailed_result<void> network::set_default_link(const link_config& config) {
    if (auto r = config.validate(); !r) return r;
    impl_->default_link = link(config);
    return {};
}

detailed_result<void> network::set_link(node_id from, node_id to, const link_config& config) {
    if (from >= impl_->nodes.size() || to >= impl_->nodes.size())
        return error{errc::not_found, fmt::format("no link {} -> {}: unknown node", from, to)};
    if (auto r = config.validate(); !r) return r;
    impl_->pair_links.insert_or_assign((std::uint64_t{from} << 32) | to, pair_link{link(config), {}});
    return {};
}

void network::clear_link(node_id from, node_id to) { impl_->pair_links.erase((std::uint64_t{from} << 32) | to); }

result<void> network::set_group(node_id id, group_id group) {
    if (id >= impl_->nodes.size()) return make_error_code(errc::not_found);
    impl_->nodes[id].group = group;
    impl_->nodes[id].in_group = true;
    return {};
}

detailed_result<void> network::set_group_link(group_id from, group_id to, const link_config& config) {
    if (auto r = config.validate(); !r) return r;
    auto [it, inserted] = impl_->group_links.try_emplace({from, to}, impl_->group_link_configs.size());
    if (inserted) impl_->group_link_configs.emplace_back(config);
    else impl_->group_link_configs[it->second] = link(config);
    return {};
}

const link_config& network::default_link() const noexcept { return impl_->default_link.config; }

detailed_result<partition_id> network::partition(const std::vector<std::vector<node_id>>& groups) {
    if (groups.size() < 2) return error{errc::invalid_argument, "a partition needs at least two groups"};
    if (groups.size() > 255) return error{errc::too_large, "a partition has at most 255 groups"};
    partition_rule rule{impl_->next_partition, false, std::vector<std::uint8_t>(impl_->nodes.size(), 0)};
    for (std::size_t g = 0; g < groups.size(); ++g)
        for (node_id id : groups[g]) {
            if (id >= impl_->nodes.size())
                return error{errc::not_found, fmt::format("partition names unknown node {}", id)};
            if (rule.side[id] != 0)
                return error{errc::invalid_argument, fmt::format("node {} is in two partition groups", id)};
            rule.side[id] = static_cast<std::uint8_t>(g + 1);
        }
    ++impl_->next_partition;
    impl_->partitions.push_back(std::move(rule));
    impl_->partition_changed();
    return impl_->partitions.back().id;
}

detailed_result<partition_id> network::partition_one_way(std::span<const node_id> from, std::span<const node_id> to) {
    partition_rule rule{impl_->next_partition, true, std::vector<std::uint8_t>(impl_->nodes.size(), 0)};
    for (int pass = 0; pass < 2; ++pass)
        for (node_id id : pass == 0 ? from : to) {
            if (id >= impl_->nodes.size())
                return error{errc::not_found, fmt::format("partition names unknown node {}", id)};
            if (rule.side[id] != 0) return error{errc::invalid_argument, fmt::format("node {} is on both sides", id)};
            rule.side[id] = static_cast<std::uint8_t>(pass + 1);
        }
    ++impl_->next_partition;
    impl_->partitions.push_back(std::move(rule));
    impl_->partition_changed();
    return impl_->partitions.back().id;
}

detailed_result<partition_id> network::isolate(node_id id) {
    if (id >= impl_->nodes.size()) return error{errc::not_found, fmt::format("cannot isolate unknown node {}", id)};
    partition_rule rule{impl_->next_partition++, false, std::vector<std::uint8_t>(impl_->nodes.size(), 2)};
    rule.side[id] = 1;
    impl_->partitions.push_back(std::move(rule));
    impl_->partition_changed();
    return impl_->partitions.back().id;
}

partition_id network::split_halves() {
    const std::size_t n = impl_->nodes.size();
    partition_rule rule{impl_->next_partition++, false, std::vector<std::uint8_t>(n, 2)};
    std::fill(rule.side.begin(), rule.side.begin() + static_cast<std::ptrdiff_t>(n / 2), std::uint8_t{1});
    impl_->partitions.push_back(std::move(rule));
    impl_->partition_changed();
    return impl_->partitions.back().id;
}

result<void> network::heal(partition_id id) {
    auto& ps = impl_->partitions;
    auto it = std::find_if(ps.begin(), ps.end(), [id](const partition_rule& p) { return p.id == id; });
    if (it == ps.end()) return make_error_code(errc::not_found);
    ps.erase(it);
    impl_->partition_changed();
    return {};
}

void network::heal_all() {
    impl_->partitions.clear();
    impl_->partition_changed();
}

void network::heal_at(partition_id id, time_point when) {
    at(when, [s = impl_.get(), id] { (void)s->owner->heal(id); });
}

bool network::reachable(node_id from, node_id to) const noexcept {
    if (from >= impl_->nodes.size() || to >= impl_->nodes.size()) return false;
    return impl_->reachable(from, to);
}

detailed_result<void> network::apply(const fault_schedule& schedule) {
    for (const fault& f : schedule.faults) {
        if (f.at.time_since_epoch().count() < impl_->now)
            return error{errc::invalid_argument, fmt::format("fault {} at {} ns is in the past", to_string(f.kind),
                                                             f.at.time_since_epoch().count())};
        const bool on_node = f.kind == fault_kind::crash || f.kind == fault_kind::restart ||
                             f.kind == fault_kind::pause || f.kind == fault_kind::resume ||
                             f.kind == fault_kind::isolate;
        if (on_node && f.node >= impl_->nodes.size())
            return error{errc::not_found, fmt::format("fault {} names unknown node {}", to_string(f.kind), f.node)};
        if (f.length.count() < 0) return error{errc::invalid_argument, "a fault length cannot be negative"};
        if (f.kind == fault_kind::loss_burst)
            if (auto r = f.burst.validate(); !r) return r;
    }
    for (const fault& f : schedule.faults) at(f.at, [s = impl_.get(), f] { s->owner->run_fault(f); });
    return {};
}

void network::run_fault(const fault& f) {
    impl* s = impl_.get();
    const time_point undo = now() + f.length;
    const bool timed = f.length.count() > 0;
    switch (f.kind) {
    case fault_kind::crash:
        (void)crash(f.node);
        if (timed) at(undo, [s, n = f.node] { (void)s->owner->restart(n); });
        break;
    case fault_kind::restart: (void)restart(f.node); break;
    case fault_kind::pause:
        (void)pause(f.node);
        if (timed) at(undo, [s, n = f.node] { (void)s->owner->resume(n); });
        break;
    case fault_kind::resume: (void)resume(f.node); break;
    case fault_kind::isolate: {
        auto p = isolate(f.node);
        if (timed && p) heal_at(*p, undo);
        break;
    }
    case fault_kind::partition_halves: {
        auto p = split_halves();
        if (timed) heal_at(p, undo);
        break;
    }
    case fault_kind::heal_all: heal_all(); break;
    case fault_kind::loss_burst: {
        // Overlapping bursts share one saved model; the last to end restores it.
        if (s->bursts_active++ == 0) s->saved_burst = s->default_link.config.burst_loss;
        link_config c = s->default_link.config;
        c.burst_loss = f.burst;
        s->default_link = link(c);
        if (timed)
            at(undo, [s] {
                if (--s->bursts_active > 0) return;
                link_config restored = s->default_link.config;
                restored.burst_loss = s->saved_burst;
                s->default_link = link(restored);
            });
        break;
    }
    }
}

time_point network::now() const noexcept { return time_point{duration{impl_->now}}; }

void network::at(time_point when, std::function<void()> callback) {
    std::uint32_t slot;
    if (!impl_->free_callbacks.empty()) {
        slot = impl_->free_callbacks.back();
        impl_->free_callbacks.pop_back();
        impl_->callbacks[slot] = std::move(callback);
    } else {
        slot = static_cast<std::uint32_t>(impl_->callbacks.size());
        impl_->callbacks.push_back(std::move(callback));
    }
    std::uint32_t index = impl_->new_event(event_kind::callback, 0);
    impl_->events[index].aux = slot;
    impl_->schedule(index, when.time_since_epoch().count());
}

void network::after(duration delay, std::function<void()> callback) { at(now() + delay, std::move(callback)); }

namespace {
/// Events are read about a millisecond of virtual time after they were written, long after they left the
/// cache at 10,000 nodes: fetching the record a few events ahead overlaps those misses with useful work.
constexpr std::size_t prefetch_distance = 12;
}

void network::impl::prefetch_ahead() const noexcept {
    const auto* next = queue.ahead(prefetch_distance);
    if (!next) return;
    const auto* record = reinterpret_cast<const char*>(&events[next->index()]);
    for (std::size_t line = 0; line < sizeof(event); line += 64) __builtin_prefetch(record + line);
}

bool network::step() {
    if (impl_->queue.empty()) return false;
    auto entry = impl_->queue.pop();
    impl_->now = entry.time;
    impl_->dispatch(entry.index());
    return true;
}

bool network::impl::run_events(std::int64_t limit, const std::function<bool()>* done) {
    while (!queue.empty() && queue.top().time <= limit) {
        auto entry = queue.pop();
        prefetch_ahead();
        now = entry.time;
        dispatch(entry.index());
        if (done && (*done)()) return true;
    }
    now = std::max(now, limit);
    return false;
}

void network::run_until(time_point until) { impl_->run_events(until.time_since_epoch().count(), nullptr); }

void network::run_for(duration span) { run_until(now() + span); }

bool network::run_until(const std::function<bool()>& done, time_point deadline) {
    if (done()) return true;
    return impl_->run_events(deadline.time_since_epoch().count(), &done) || done();
}

std::size_t network::pending_events() const noexcept { return impl_->queue.size(); }
std::uint64_t network::trace_hash() const noexcept { return impl_->trace; }
const counters& network::stats() const noexcept { return impl_->stats; }
void network::set_observer(std::function<void(const datagram_record&)> observer) {
    impl_->observer = std::move(observer);
}

} // namespace swarm::inline v0::sim
