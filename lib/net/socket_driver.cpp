#include <swarm/net/asio_endpoint.hpp>
#include <swarm/net/driver.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <exception>
#include <future>
#include <random>
#include <unordered_map>
#include <vector>

namespace swarm::inline v0::net {
namespace {

namespace asio = boost::asio;
using udp = asio::ip::udp;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// Big enough that 64 KiB frames (a common chunk size) parse in place, small enough per stream.
constexpr std::size_t read_buffer_size = 128 * 1024;
constexpr std::size_t udp_buffer_size = 65'536; // larger than any datagram, so none is truncated unseen
constexpr std::size_t max_gather_frames = 64;
constexpr std::size_t max_receive_batch = 32;
constexpr std::size_t max_gather_bytes = 1024 * 1024;
constexpr std::size_t large_frame_step = 1024 * 1024;
constexpr int bind_attempts = 32;
constexpr auto accept_retry_delay = std::chrono::milliseconds(100);
constexpr int socket_buffer_bytes = 4 * 1024 * 1024; // a burst of gossip should not overflow the default

asio::steady_timer::time_point to_steady(time_point t) {
    return std::chrono::time_point_cast<asio::steady_timer::duration>(t);
}

// Transport errors are reported as swarm codes so that protocols see the same codes under the simulator.
error_code map_error(const error_code& ec, bool connecting) {
    if (ec == asio::error::connection_refused) return errc::connection_refused;
    if (ec == asio::error::timed_out) return errc::timed_out;
    if (ec == asio::error::host_unreachable || ec == asio::error::network_unreachable ||
        ec == asio::error::address_family_not_supported || ec == boost::system::errc::address_not_available)
        return errc::unreachable;
    return connecting ? errc::unreachable : errc::connection_reset;
}

void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) noexcept {
    counter.fetch_add(by, std::memory_order_relaxed);
}

struct counters {
    std::atomic<std::uint64_t> datagrams_sent{0}, datagram_bytes_sent{0}, datagrams_received{0},
        datagram_bytes_received{0}, datagrams_dropped_oversize{0}, datagrams_dropped_send_error{0},
        datagrams_dropped_queue_full{0}, streams_opened{0}, streams_accepted{0}, streams_refused{0},
        streams_reset{0}, frames_sent{0}, frames_received{0}, stream_bytes_sent{0}, stream_bytes_received{0};
};

struct queued_datagram {
    udp::endpoint to;
    std::vector<std::byte> payload;
};

struct timer_entry {
    explicit timer_entry(const asio::any_io_executor& ex) : timer(ex) {}
    asio::steady_timer timer;
    std::uint64_t generation = 0;
};

enum class stream_phase { connecting, open, half_closed, closed };

struct stream_state {
    stream_state(stream_id i, tcp::socket s, endpoint p, bool in)
        : id(i), socket(std::move(s)), timer(socket.get_executor()), peer(p), inbound(in),
          read_buffer(read_buffer_size) {}

    stream_id id;
    tcp::socket socket;
    // One timer per stream, for whichever deadline its phase has: connect, idle, or the peer's FIN.
    asio::steady_timer timer;
    std::uint64_t timer_generation = 0;
    endpoint peer;
    bool inbound;
    stream_phase phase = stream_phase::connecting;
    bool close_requested = false;
    time_point last_activity{};

    // Frames with their length prefix; those being written stay at the front until the write completes.
    std::deque<std::vector<std::byte>> queue;
    std::size_t queued_bytes = 0; // payload bytes in `queue`
    bool writing = false;
    std::size_t frames_in_flight = 0;
    bool above_high = false;
    std::vector<asio::const_buffer> gather;

    // Small frames are parsed in place from read_buffer; a frame that cannot fit is read into large_frame,
    // which grows with the bytes that actually arrive, never ahead of them to the size the prefix claims.
    std::vector<std::byte> read_buffer;
    std::size_t read_begin = 0;
    std::size_t read_end = 0;
    std::vector<std::byte> large_frame;
    std::size_t large_have = 0;
    std::size_t large_size = 0;
    bool reading_large = false;
};

using stream_ptr = std::shared_ptr<stream_state>;

std::uint32_t load_be32(const std::byte* p) noexcept {
    return (std::to_integer<std::uint32_t>(p[0]) << 24) | (std::to_integer<std::uint32_t>(p[1]) << 16) |
           (std::to_integer<std::uint32_t>(p[2]) << 8) | std::to_integer<std::uint32_t>(p[3]);
}

std::uint64_t os_seed() {
    std::random_device device;
    return (std::uint64_t{device()} << 32) ^ device();
}

} // namespace

class socket_driver::impl final : public transport, public std::enable_shared_from_this<impl> {
public:
    impl(const asio::any_io_executor& executor, driver_config config)
        : strand_(asio::make_strand(executor)), config_(std::move(config)), udp_(strand_), acceptor_(strand_),
          grace_(strand_), accept_retry_(strand_), udp_buffer_(udp_buffer_size), rng_(os_seed()) {}

    detailed_result<void> bind();
    void start(const protocol_factory& factory);
    void post(std::function<void(protocol&)> fn);
    void launch(protocol_factory factory);
    void stop(std::function<void()> done);
    void begin_stop(std::function<void()> done);

    driver_stats stats() const noexcept;
    endpoint bound_endpoint() const noexcept { return bound_; }
    const driver_config& config() const noexcept { return config_; }
    bool stopped() const noexcept { return stopped_.load(std::memory_order_acquire); }
    bool on_strand() const noexcept { return strand_.running_in_this_thread(); }

    // transport
    time_point now() const noexcept override { return clock_.now(); }
    endpoint local_endpoint() const noexcept override { return advertised_; }
    rng& random() noexcept override { return rng_; }
    const logger& log() const noexcept override { return config_.log; }
    std::size_t max_datagram_size() const noexcept override { return config_.max_datagram_size; }
    void send(const endpoint& to, std::span<const std::byte> payload) override;
    void set_timer(timer_id id, time_point deadline) override;
    void cancel_timer(timer_id id) override { timers_.erase(id); }
    stream_id connect(const endpoint& to) override;
    void write(stream_id stream, std::span<const std::byte> frame) override;
    std::size_t queued_bytes(stream_id stream) const noexcept override;
    std::size_t max_frame_size() const noexcept override { return config_.max_frame_size; }
    void close(stream_id stream) override;

private:
    enum class state { starting, running, stopping, stopped };

    template <class F>
    void invoke(F&& f) noexcept {
        try {
            f(*protocol_);
        } catch (const std::exception& e) {
            config_.log.error("swarm.net {}: protocol handler threw: {}", bound_.to_string(), e.what());
        } catch (...) {
            config_.log.error("swarm.net {}: protocol handler threw a non-standard exception", bound_.to_string());
        }
    }
    // Events reach the protocol only while running: after on_stop it has said goodbye.
    template <class F>
    void deliver(F&& f) noexcept {
        if (state_ == state::running && protocol_) invoke(std::forward<F>(f));
    }

    // UDP
    void receive();
    void on_receive(const error_code& ec, std::size_t size);
    void handle_datagram(std::size_t size);
    bool udp_target(const endpoint& to, udp::endpoint& out) const;
    void flush_datagrams();
    void on_datagram_sent(const error_code& ec, std::size_t size);
    // timers
    void on_timer_fired(timer_id id, std::uint64_t generation, const error_code& ec);
    // streams
    void accept();
    void on_accept(const error_code& ec, tcp::socket socket);
    void on_connected(const stream_ptr& s, const error_code& ec);
    void after_open(const stream_ptr& s);
    void arm_stream_timer(const stream_ptr& s, time_point deadline);
    void on_stream_timer(const stream_ptr& s, std::uint64_t generation, const error_code& ec);
    void start_write(const stream_ptr& s);
    void on_written(const stream_ptr& s, const error_code& ec);
    void start_read(const stream_ptr& s);
    void on_read(const stream_ptr& s, const error_code& ec, std::size_t size);
    void on_read_large(const stream_ptr& s, const error_code& ec, std::size_t size);
    bool parse_frames(const stream_ptr& s);
    void on_frame(const stream_ptr& s, std::span<const std::byte> frame);
    void on_read_error(const stream_ptr& s, const error_code& ec);
    void maybe_shutdown(const stream_ptr& s);
    void finish(const stream_ptr& s, error_code reason);
    void finish_later(const stream_ptr& s, error_code reason);
    void report_closed_later(stream_id id, error_code reason);
    stream_ptr find(stream_id id) const;
    // stop
    void check_drained();
    void hard_stop();

    asio::strand<asio::any_io_executor> strand_;
    const driver_config config_;
    endpoint bound_;
    endpoint advertised_;
    real_clock clock_;
    counters stats_;
    std::atomic<bool> stopped_{false};
    state state_ = state::starting;

    udp::socket udp_;
    tcp::acceptor acceptor_;
    asio::steady_timer grace_;
    asio::steady_timer accept_retry_;
    std::vector<std::byte> udp_buffer_;
    udp::endpoint udp_sender_;
    std::deque<queued_datagram> udp_queue_;
    bool udp_sending_ = false;

    std::unordered_map<timer_id, std::unique_ptr<timer_entry>> timers_;
    std::uint64_t timer_generation_ = 0;
    std::unordered_map<stream_id, stream_ptr> streams_;
    stream_id next_stream_ = 1;

    std::vector<std::function<void()>> stop_waiters_;
    bool hard_stop_posted_ = false;
    rng rng_;
    // Last, so that it is destroyed first: the protocol may touch its transport on the way out.
    std::unique_ptr<protocol> protocol_;
};

// ---- setup -------------------------------------------------------------------------------------------------

detailed_result<void> socket_driver::impl::bind() {
    const auto address = to_asio_address(config_.bind);
    const bool dual_stack = address.is_v6() && address.is_unspecified();
    for (int attempt = 1;; ++attempt) {
        error_code ec;
        udp::socket datagrams(strand_);
        tcp::acceptor listener(strand_);
        datagrams.open(address.is_v4() ? udp::v4() : udp::v6(), ec);
        if (!ec && dual_stack) datagrams.set_option(asio::ip::v6_only(false), ec);
        if (!ec) datagrams.bind(udp::endpoint(address, config_.bind.port()), ec);
        if (ec)
            return error{ec, fmt::format("cannot bind UDP to {}: {}", config_.bind.to_string(), ec.message())};
        const auto port = datagrams.local_endpoint(ec).port();
        if (ec) return error{ec, fmt::format("cannot read the UDP port bound at {}", config_.bind.to_string())};

        listener.open(address.is_v4() ? tcp::v4() : tcp::v6(), ec);
        if (!ec) listener.set_option(asio::socket_base::reuse_address(true), ec);
        if (!ec && dual_stack) listener.set_option(asio::ip::v6_only(false), ec);
        if (!ec) listener.bind(tcp::endpoint(address, port), ec);
        if (!ec) listener.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            // The ephemeral port UDP got may be taken for TCP: try another.
            if (config_.bind.port() == 0 && ec == asio::error::address_in_use && attempt < bind_attempts) continue;
            auto where = config_.bind;
            where.set_port(port);
            return error{ec, fmt::format("cannot bind TCP to {}: {}", where.to_string(), ec.message())};
        }
        datagrams.non_blocking(true, ec);
        if (ec) return error{ec, "cannot make the UDP socket non-blocking"};
        // Larger buffers absorb bursts; the kernel caps them, and a refusal is not worth failing for.
        error_code ignored;
        datagrams.set_option(asio::socket_base::receive_buffer_size(socket_buffer_bytes), ignored);
        datagrams.set_option(asio::socket_base::send_buffer_size(socket_buffer_bytes), ignored);

        udp_ = std::move(datagrams);
        acceptor_ = std::move(listener);
        bound_ = config_.bind;
        bound_.set_port(port);
        advertised_ = config_.advertise.value_or(bound_);
        if (advertised_.port() == 0) advertised_.set_port(port);
        if (advertised_.is_unspecified())
            config_.log.warning("swarm.net: bound to {} with no advertise address; peers cannot reach {}",
                                bound_.to_string(), advertised_.to_string());
        return {};
    }
}

void socket_driver::impl::start(const protocol_factory& factory) {
    try {
        protocol_ = factory(*this);
    } catch (const std::exception& e) {
        config_.log.error("swarm.net {}: protocol factory threw: {}", bound_.to_string(), e.what());
    } catch (...) {
        config_.log.error("swarm.net {}: protocol factory threw a non-standard exception", bound_.to_string());
    }
    if (!protocol_) {
        config_.log.error("swarm.net {}: no protocol to run; the driver stops", bound_.to_string());
        hard_stop();
        return;
    }
    state_ = state::running;
    deliver([](protocol& p) { p.on_start(); });
    if (state_ != state::running) return;
    receive();
    accept();
}

void socket_driver::impl::post(std::function<void(protocol&)> fn) {
    asio::post(strand_, [self = shared_from_this(), fn = std::move(fn)] {
        if (self->protocol_ && self->state_ != state::stopped) self->invoke(fn);
    });
}

driver_stats socket_driver::impl::stats() const noexcept {
    auto r = [](const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); };
    driver_stats s;
    s.datagrams_sent = r(stats_.datagrams_sent);
    s.datagram_bytes_sent = r(stats_.datagram_bytes_sent);
    s.datagrams_received = r(stats_.datagrams_received);
    s.datagram_bytes_received = r(stats_.datagram_bytes_received);
    s.datagrams_dropped_oversize = r(stats_.datagrams_dropped_oversize);
    s.datagrams_dropped_send_error = r(stats_.datagrams_dropped_send_error);
    s.datagrams_dropped_queue_full = r(stats_.datagrams_dropped_queue_full);
    s.streams_opened = r(stats_.streams_opened);
    s.streams_accepted = r(stats_.streams_accepted);
    s.streams_refused = r(stats_.streams_refused);
    s.streams_reset = r(stats_.streams_reset);
    s.frames_sent = r(stats_.frames_sent);
    s.frames_received = r(stats_.frames_received);
    s.stream_bytes_sent = r(stats_.stream_bytes_sent);
    s.stream_bytes_received = r(stats_.stream_bytes_received);
    return s;
}

// ---- UDP ---------------------------------------------------------------------------------------------------

void socket_driver::impl::receive() {
    udp_.async_receive_from(asio::buffer(udp_buffer_), udp_sender_,
                            [self = shared_from_this()](const error_code& ec, std::size_t size) {
                                self->on_receive(ec, size);
                            });
}

void socket_driver::impl::on_receive(const error_code& ec, std::size_t size) {
    if (state_ == state::stopped || ec == asio::error::operation_aborted) return;
    if (ec) {
        // ICMP errors for earlier sends surface here on some systems; the socket is still usable.
        config_.log.debug("swarm.net {}: receive: {}", bound_.to_string(), ec.message());
    } else {
        handle_datagram(size);
        // Whatever else is already queued in the kernel is read now, without a trip through the reactor
        // per datagram; bounded so that timers and streams on this strand are not starved.
        for (std::size_t i = 0; i < max_receive_batch && state_ != state::stopped; ++i) {
            error_code more;
            const auto n = udp_.receive_from(asio::buffer(udp_buffer_), udp_sender_, 0, more);
            if (more) break;
            handle_datagram(n);
        }
    }
    if (state_ != state::stopped) receive();
}

void socket_driver::impl::handle_datagram(std::size_t size) {
    if (size > config_.max_datagram_size) {
        bump(stats_.datagrams_dropped_oversize);
        return;
    }
    bump(stats_.datagrams_received);
    bump(stats_.datagram_bytes_received, size);
    const auto from = from_asio(udp_sender_);
    deliver([&](protocol& p) { p.on_datagram(from, std::span<const std::byte>(udp_buffer_.data(), size)); });
}

bool socket_driver::impl::udp_target(const endpoint& to, udp::endpoint& out) const {
    if (bound_.is_v4()) {
        if (!to.is_v4()) return false;
        out = udp::endpoint(asio::ip::address_v4(to.v4_address()), to.port());
    } else {
        // An IPv6 socket reaches IPv4 peers through their mapped address when it is dual-stack.
        out = udp::endpoint(asio::ip::address_v6(to.address()), to.port());
    }
    return true;
}

void socket_driver::impl::send(const endpoint& to, std::span<const std::byte> payload) {
    if (state_ == state::stopped) return;
    if (payload.size() > config_.max_datagram_size) {
        bump(stats_.datagrams_dropped_oversize);
        return;
    }
    udp::endpoint target;
    if (!udp_target(to, target)) {
        bump(stats_.datagrams_dropped_send_error);
        return;
    }
    if (udp_queue_.empty() && !udp_sending_) {
        // Most sends fit in the socket buffer: send now, and queue only when the kernel says "later".
        error_code ec;
        udp_.send_to(asio::buffer(payload.data(), payload.size()), target, 0, ec);
        if (!ec) {
            bump(stats_.datagrams_sent);
            bump(stats_.datagram_bytes_sent, payload.size());
            return;
        }
        if (ec != asio::error::would_block && ec != asio::error::try_again) {
            bump(stats_.datagrams_dropped_send_error);
            config_.log.debug("swarm.net {}: send to {}: {}", bound_.to_string(), to.to_string(), ec.message());
            return;
        }
    }
    if (udp_queue_.size() >= config_.max_queued_datagrams) {
        bump(stats_.datagrams_dropped_queue_full);
        return;
    }
    udp_queue_.push_back({target, std::vector<std::byte>(payload.begin(), payload.end())});
    if (!udp_sending_) flush_datagrams();
}

void socket_driver::impl::flush_datagrams() {
    udp_sending_ = true;
    const auto& next = udp_queue_.front();
    udp_.async_send_to(asio::buffer(next.payload), next.to,
                       [self = shared_from_this()](const error_code& ec, std::size_t size) {
                           self->on_datagram_sent(ec, size);
                       });
}

void socket_driver::impl::on_datagram_sent(const error_code& ec, std::size_t size) {
    udp_sending_ = false;
    if (state_ == state::stopped) {
        udp_queue_.clear();
        return;
    }
    if (ec) {
        bump(stats_.datagrams_dropped_send_error);
    } else {
        bump(stats_.datagrams_sent);
        bump(stats_.datagram_bytes_sent, size);
    }
    udp_queue_.pop_front();
    if (!udp_queue_.empty())
        flush_datagrams();
    else
        check_drained();
}

// ---- timers ------------------------------------------------------------------------------------------------

void socket_driver::impl::set_timer(timer_id id, time_point deadline) {
    if (state_ != state::starting && state_ != state::running) return;
    auto& entry = timers_[id];
    if (!entry) entry = std::make_unique<timer_entry>(strand_);
    // A wait that already completed but has not run yet cannot be cancelled; the generation tells it apart.
    entry->generation = ++timer_generation_;
    entry->timer.expires_at(to_steady(deadline));
    entry->timer.async_wait([self = shared_from_this(), id, generation = entry->generation](const error_code& ec) {
        self->on_timer_fired(id, generation, ec);
    });
}

void socket_driver::impl::on_timer_fired(timer_id id, std::uint64_t generation, const error_code& ec) {
    if (ec) return;
    const auto it = timers_.find(id);
    if (it == timers_.end() || it->second->generation != generation) return;
    timers_.erase(it);
    deliver([id](protocol& p) { p.on_timer(id); });
}

// ---- streams -----------------------------------------------------------------------------------------------

stream_ptr socket_driver::impl::find(stream_id id) const {
    const auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second;
}

std::size_t socket_driver::impl::queued_bytes(stream_id id) const noexcept {
    const auto it = streams_.find(id);
    return it == streams_.end() ? 0 : it->second->queued_bytes;
}

void socket_driver::impl::accept() {
    acceptor_.async_accept([self = shared_from_this()](const error_code& ec, tcp::socket socket) {
        self->on_accept(ec, std::move(socket));
    });
}

void socket_driver::impl::on_accept(const error_code& ec, tcp::socket socket) {
    if (state_ == state::stopped || ec == asio::error::operation_aborted) return;
    if (ec) {
        // Out of descriptors, typically: back off instead of spinning on the same error.
        config_.log.warning("swarm.net {}: accept: {}", bound_.to_string(), ec.message());
        accept_retry_.expires_after(accept_retry_delay);
        accept_retry_.async_wait([self = shared_from_this()](const error_code& e) {
            if (!e && self->state_ == state::running) self->accept();
        });
        return;
    }
    accept();
    error_code peer_ec;
    const auto remote = socket.remote_endpoint(peer_ec);
    if (peer_ec) return; // gone before we looked
    if (state_ != state::running || streams_.size() >= config_.max_streams) {
        // Counted before the reset: the peer may act on the reset before this line would otherwise run.
        bump(stats_.streams_refused);
        // A reset tells the peer at once, where an orderly close would look like a stream that opened.
        error_code ignored;
        socket.set_option(asio::socket_base::linger(true, 0), ignored);
        socket.close(ignored);
        return;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto s = std::make_shared<stream_state>(next_stream_++, std::move(socket), from_asio(remote), true);
    s->phase = stream_phase::open;
    streams_.emplace(s->id, s);
    bump(stats_.streams_accepted);
    after_open(s);
}

stream_id socket_driver::impl::connect(const endpoint& to) {
    const auto id = next_stream_++;
    if (state_ != state::starting && state_ != state::running) {
        report_closed_later(id, errc::shut_down);
        return id;
    }
    if (streams_.size() >= config_.max_streams) {
        report_closed_later(id, errc::too_large);
        return id;
    }
    const auto target = to_asio<tcp>(to);
    tcp::socket socket(strand_);
    error_code ec;
    socket.open(target.protocol(), ec);
    // Leave from the bound address when it is a specific one, so peers see the address this node binds.
    const auto local = to_asio_address(bound_);
    if (!ec && !local.is_unspecified() && local.is_v4() == target.address().is_v4())
        socket.bind(tcp::endpoint(local, 0), ec);
    if (ec) {
        report_closed_later(id, map_error(ec, true));
        return id;
    }
    auto s = std::make_shared<stream_state>(id, std::move(socket), to, false);
    streams_.emplace(id, s);
    arm_stream_timer(s, now() + config_.connect_timeout);
    s->socket.async_connect(target, [self = shared_from_this(), s](const error_code& e) { self->on_connected(s, e); });
    return id;
}

void socket_driver::impl::on_connected(const stream_ptr& s, const error_code& ec) {
    if (s->phase != stream_phase::connecting) return; // timed out or closed meanwhile
    if (ec) {
        finish(s, map_error(ec, true));
        return;
    }
    error_code ignored;
    s->socket.set_option(tcp::no_delay(true), ignored);
    s->phase = stream_phase::open;
    bump(stats_.streams_opened);
    after_open(s);
}

void socket_driver::impl::after_open(const stream_ptr& s) {
    s->last_activity = now();
    ++s->timer_generation;
    s->timer.cancel();
    if (config_.idle_timeout) arm_stream_timer(s, s->last_activity + *config_.idle_timeout);
    deliver([&](protocol& p) { p.on_stream_open(s->id, s->peer, s->inbound); });
    if (s->phase == stream_phase::closed) return;
    start_read(s);
    if (!s->writing && !s->queue.empty())
        start_write(s);
    else
        maybe_shutdown(s);
}

void socket_driver::impl::arm_stream_timer(const stream_ptr& s, time_point deadline) {
    const auto generation = ++s->timer_generation;
    s->timer.expires_at(to_steady(deadline));
    s->timer.async_wait([self = shared_from_this(), s, generation](const error_code& ec) {
        self->on_stream_timer(s, generation, ec);
    });
}

void socket_driver::impl::on_stream_timer(const stream_ptr& s, std::uint64_t generation, const error_code& ec) {
    if (ec || generation != s->timer_generation) return;
    switch (s->phase) {
    case stream_phase::connecting: finish(s, errc::timed_out); break;
    case stream_phase::half_closed: finish(s, {}); break; // our side is flushed; the peer is slow to close
    case stream_phase::open: {
        if (!config_.idle_timeout) break;
        const auto due = s->last_activity + *config_.idle_timeout;
        if (now() >= due)
            finish(s, errc::timed_out);
        else
            arm_stream_timer(s, due);
        break;
    }
    case stream_phase::closed: break;
    }
}

void socket_driver::impl::write(stream_id id, std::span<const std::byte> frame) {
    const auto s = find(id);
    if (!s || s->close_requested || s->phase == stream_phase::half_closed) {
        config_.log.debug("swarm.net {}: write to stream {} that is closing or gone", bound_.to_string(), id);
        return;
    }
    if (frame.size() > config_.max_frame_size) {
        s->close_requested = true; // no further writes; the error is reported from the strand, not from here
        finish_later(s, errc::message_too_large);
        return;
    }
    const auto size = static_cast<std::uint32_t>(frame.size());
    std::vector<std::byte> framed(4 + frame.size());
    framed[0] = static_cast<std::byte>(size >> 24);
    framed[1] = static_cast<std::byte>(size >> 16);
    framed[2] = static_cast<std::byte>(size >> 8);
    framed[3] = static_cast<std::byte>(size);
    if (!frame.empty()) std::memcpy(framed.data() + 4, frame.data(), frame.size());
    s->queue.push_back(std::move(framed));
    s->queued_bytes += frame.size();
    if (s->queued_bytes >= config_.high_watermark) s->above_high = true;
    if (s->phase == stream_phase::open && !s->writing) start_write(s);
}

void socket_driver::impl::start_write(const stream_ptr& s) {
    // Several frames per system call, one write in flight: the rest wait in the queue.
    s->gather.clear();
    std::size_t bytes = 0;
    for (const auto& framed : s->queue) {
        if (s->gather.size() == max_gather_frames || bytes >= max_gather_bytes) break;
        s->gather.push_back(asio::buffer(framed));
        bytes += framed.size();
    }
    s->frames_in_flight = s->gather.size();
    s->writing = true;
    asio::async_write(s->socket, s->gather,
                      [self = shared_from_this(), s](const error_code& ec, std::size_t) { self->on_written(s, ec); });
}

void socket_driver::impl::on_written(const stream_ptr& s, const error_code& ec) {
    s->writing = false;
    if (s->phase == stream_phase::closed) {
        s->queue.clear();
        s->queued_bytes = 0;
        check_drained();
        return;
    }
    if (ec) {
        finish(s, map_error(ec, false));
        return;
    }
    for (std::size_t i = 0; i < s->frames_in_flight; ++i) {
        const auto payload = s->queue.front().size() - 4;
        s->queued_bytes -= payload;
        bump(stats_.frames_sent);
        bump(stats_.stream_bytes_sent, payload);
        s->queue.pop_front();
    }
    s->frames_in_flight = 0;
    s->last_activity = now();
    if (!s->queue.empty())
        start_write(s);
    else
        maybe_shutdown(s);
    if (s->above_high && s->queued_bytes <= config_.low_watermark) {
        s->above_high = false;
        if (!s->close_requested) deliver([&](protocol& p) { p.on_stream_writable(s->id); });
    }
    check_drained();
}

void socket_driver::impl::start_read(const stream_ptr& s) {
    auto self = shared_from_this();
    if (s->reading_large) {
        if (s->large_have == s->large_frame.size())
            // Doubling keeps the copies linear; the bytes held stay within twice what arrived.
            s->large_frame.resize(std::min(s->large_size, std::max(2 * s->large_have, large_frame_step)));
        s->socket.async_read_some(
            asio::buffer(s->large_frame.data() + s->large_have, s->large_frame.size() - s->large_have),
            [self, s](const error_code& ec, std::size_t size) { self->on_read_large(s, ec, size); });
        return;
    }
    if (s->read_begin == s->read_end) {
        s->read_begin = s->read_end = 0;
    } else if (s->read_end == s->read_buffer.size()) {
        std::memmove(s->read_buffer.data(), s->read_buffer.data() + s->read_begin, s->read_end - s->read_begin);
        s->read_end -= s->read_begin;
        s->read_begin = 0;
    }
    s->socket.async_read_some(
        asio::buffer(s->read_buffer.data() + s->read_end, s->read_buffer.size() - s->read_end),
        [self, s](const error_code& ec, std::size_t size) { self->on_read(s, ec, size); });
}

void socket_driver::impl::on_read(const stream_ptr& s, const error_code& ec, std::size_t size) {
    if (s->phase == stream_phase::closed) return;
    if (ec) {
        on_read_error(s, ec);
        return;
    }
    s->read_end += size;
    s->last_activity = now();
    if (parse_frames(s)) start_read(s);
}

bool socket_driver::impl::parse_frames(const stream_ptr& s) {
    while (s->read_end - s->read_begin >= 4) {
        const std::byte* head = s->read_buffer.data() + s->read_begin;
        const std::size_t size = load_be32(head);
        // Checked before anything is allocated: a length prefix is only a claim.
        if (size > config_.max_frame_size) {
            config_.log.debug("swarm.net {}: stream {} from {} sent a {}-byte frame over the {}-byte limit",
                              bound_.to_string(), s->id, s->peer.to_string(), size, config_.max_frame_size);
            finish(s, errc::message_too_large);
            return false;
        }
        const std::size_t available = s->read_end - s->read_begin - 4;
        if (available >= size) {
            s->read_begin += 4 + size;
            on_frame(s, std::span<const std::byte>(head + 4, size));
            if (s->phase == stream_phase::closed) return false;
            continue;
        }
        if (4 + size > s->read_buffer.size()) {
            s->large_frame.resize(std::max(available, std::min(size, large_frame_step)));
            std::memcpy(s->large_frame.data(), head + 4, available);
            s->large_have = available;
            s->large_size = size;
            s->reading_large = true;
            s->read_begin = s->read_end = 0;
        }
        break;
    }
    return true;
}

void socket_driver::impl::on_read_large(const stream_ptr& s, const error_code& ec, std::size_t size) {
    if (s->phase == stream_phase::closed) return;
    if (ec) {
        on_read_error(s, ec);
        return;
    }
    s->last_activity = now();
    s->large_have += size;
    if (s->large_have < s->large_size) {
        start_read(s);
        return;
    }
    s->reading_large = false;
    s->large_have = 0;
    const auto frame = std::move(s->large_frame); // releases the memory once delivered
    s->large_frame = {};
    on_frame(s, frame);
    if (s->phase != stream_phase::closed) start_read(s);
}

void socket_driver::impl::on_frame(const stream_ptr& s, std::span<const std::byte> frame) {
    bump(stats_.frames_received);
    bump(stats_.stream_bytes_received, frame.size());
    // Frames that arrive after the protocol asked to close are not its concern any more.
    if (s->phase != stream_phase::open || s->close_requested) return;
    deliver([&](protocol& p) { p.on_stream_frame(s->id, frame); });
}

void socket_driver::impl::on_read_error(const stream_ptr& s, const error_code& ec) {
    if (ec == asio::error::operation_aborted) return; // we closed it; finish() has reported
    if (ec == asio::error::eof) {
        // End of stream between frames is an orderly close; in the middle of one, the peer broke off.
        const bool partial = s->reading_large || s->read_end != s->read_begin;
        finish(s, partial ? error_code(errc::connection_reset) : error_code{});
        return;
    }
    finish(s, map_error(ec, false));
}

void socket_driver::impl::close(stream_id id) {
    const auto s = find(id);
    if (!s || s->close_requested) return;
    s->close_requested = true;
    maybe_shutdown(s);
}

void socket_driver::impl::maybe_shutdown(const stream_ptr& s) {
    if (!s->close_requested || s->phase != stream_phase::open || s->writing || !s->queue.empty()) return;
    // Half-close and wait (bounded) for the peer's end: closing with its bytes unread would reset the
    // connection and could destroy frames it has not read yet.
    error_code ignored;
    s->socket.shutdown(tcp::socket::shutdown_send, ignored);
    s->phase = stream_phase::half_closed;
    arm_stream_timer(s, now() + config_.connect_timeout);
}

void socket_driver::impl::finish(const stream_ptr& s, error_code reason) {
    if (s->phase == stream_phase::closed) return;
    s->phase = stream_phase::closed;
    ++s->timer_generation;
    s->timer.cancel();
    error_code ignored;
    s->socket.close(ignored);
    if (!s->writing) {
        s->queue.clear();
        s->queued_bytes = 0;
    }
    streams_.erase(s->id);
    if (reason) bump(stats_.streams_reset);
    deliver([&](protocol& p) { p.on_stream_closed(s->id, reason); });
    check_drained();
}

void socket_driver::impl::finish_later(const stream_ptr& s, error_code reason) {
    asio::post(strand_, [self = shared_from_this(), s, reason] { self->finish(s, reason); });
}

void socket_driver::impl::report_closed_later(stream_id id, error_code reason) {
    bump(stats_.streams_reset);
    asio::post(strand_, [self = shared_from_this(), id, reason] {
        self->deliver([&](protocol& p) { p.on_stream_closed(id, reason); });
    });
}

// ---- stop --------------------------------------------------------------------------------------------------

void socket_driver::impl::begin_stop(std::function<void()> done) {
    if (done) stop_waiters_.push_back(std::move(done));
    if (state_ == state::stopped) {
        hard_stop(); // runs the waiters
        return;
    }
    if (state_ == state::stopping) return;
    state_ = state::stopping;
    error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
    if (protocol_) invoke([](protocol& p) { p.on_stop(); });
    timers_.clear(); // after on_stop too: timers set there would never be delivered
    std::vector<stream_ptr> streams;
    streams.reserve(streams_.size());
    for (const auto& entry : streams_) streams.push_back(entry.second);
    for (const auto& s : streams) {
        if (s->phase == stream_phase::connecting) {
            finish(s, errc::shut_down);
        } else {
            s->close_requested = true;
            maybe_shutdown(s);
        }
    }
    grace_.expires_after(config_.stop_grace);
    grace_.async_wait([self = shared_from_this()](const error_code& ec) {
        if (!ec) self->hard_stop();
    });
    check_drained();
}

void socket_driver::impl::check_drained() {
    if (state_ != state::stopping || hard_stop_posted_ || udp_sending_ || !udp_queue_.empty()) return;
    for (const auto& entry : streams_)
        if (entry.second->writing || !entry.second->queue.empty()) return;
    // Posted, never run inline: the caller may be inside a protocol handler.
    hard_stop_posted_ = true;
    asio::post(strand_, [self = shared_from_this()] { self->hard_stop(); });
}

void socket_driver::impl::hard_stop() {
    if (state_ != state::stopped) {
        state_ = state::stopped;
        error_code ignored;
        grace_.cancel();
        accept_retry_.cancel();
        acceptor_.close(ignored);
        udp_.close(ignored);
        if (!udp_sending_) udp_queue_.clear(); // else the aborted send still reads its buffer
        timers_.clear();
        auto streams = std::move(streams_);
        streams_.clear();
        for (auto& entry : streams) {
            auto& s = *entry.second;
            s.phase = stream_phase::closed;
            ++s.timer_generation;
            s.timer.cancel();
            s.socket.close(ignored);
            if (!s.writing) s.queue.clear();
        }
        protocol_.reset();
        stopped_.store(true, std::memory_order_release);
    }
    auto waiters = std::move(stop_waiters_);
    stop_waiters_.clear();
    for (auto& done : waiters) {
        try {
            done();
        } catch (...) {
            config_.log.error("swarm.net {}: a stop callback threw", bound_.to_string());
        }
    }
}

// ---- socket_driver -----------------------------------------------------------------------------------------

void socket_driver::impl::launch(protocol_factory factory) {
    asio::post(strand_, [self = shared_from_this(), factory = std::move(factory)] { self->start(factory); });
}

void socket_driver::impl::stop(std::function<void()> done) {
    asio::post(strand_, [self = shared_from_this(), done = std::move(done)]() mutable {
        self->begin_stop(std::move(done));
    });
}

socket_driver::socket_driver(std::shared_ptr<impl> p) noexcept : impl_(std::move(p)) {}

socket_driver::socket_driver(socket_driver&&) noexcept = default;

socket_driver& socket_driver::operator=(socket_driver&& other) noexcept {
    if (this != &other) {
        release();
        impl_ = std::move(other.impl_);
    }
    return *this;
}

socket_driver::~socket_driver() { release(); }

void socket_driver::release() noexcept {
    if (!impl_ || impl_->stopped()) return;
    if (impl_->on_strand())
        impl_->stop({});
    else
        stop_and_wait();
}

detailed_result<socket_driver> socket_driver::create(asio::any_io_executor executor, driver_config config,
                                                     protocol_factory factory) {
    if (!executor) return error{errc::invalid_argument, "socket_driver needs an executor"};
    if (!factory) return error{errc::invalid_argument, "socket_driver needs a protocol factory"};
    if (auto valid = config.validate(); !valid) return valid.error();
    auto p = std::make_shared<impl>(executor, std::move(config));
    if (auto bound = p->bind(); !bound) return bound.error();
    p->launch(std::move(factory));
    return socket_driver(std::move(p));
}

endpoint socket_driver::local_endpoint() const noexcept { return impl_ ? impl_->local_endpoint() : endpoint{}; }

endpoint socket_driver::bound_endpoint() const noexcept { return impl_ ? impl_->bound_endpoint() : endpoint{}; }

driver_stats socket_driver::stats() const noexcept { return impl_ ? impl_->stats() : driver_stats{}; }

void socket_driver::post(std::function<void(protocol&)> fn) {
    if (impl_ && fn) impl_->post(std::move(fn));
}

void socket_driver::stop(std::function<void()> done) {
    if (impl_) impl_->stop(std::move(done));
}

bool socket_driver::stop_and_wait() {
    if (!impl_ || impl_->stopped()) return true;
    if (impl_->on_strand()) {
        impl_->stop({});
        return false;
    }
    auto finished = std::make_shared<std::promise<void>>();
    auto future = finished->get_future();
    impl_->stop([finished] { finished->set_value(); });
    future.wait_for(impl_->config().stop_grace + std::chrono::seconds(2));
    return impl_->stopped();
}

bool socket_driver::stopped() const noexcept { return !impl_ || impl_->stopped(); }

} // namespace swarm::inline v0::net
