// remote_shard_store and the two channels that carry its calls onto a shard_transfer's strand.
#include <swarm/net/driver.hpp>
#include <swarm/sim/network.hpp>
#include <swarm/storage/transfer.hpp>

#include <cstring>
#include <deque>
#include <functional>
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <utility>
#include <optional>

namespace swarm::inline v0::storage {

namespace {

transfer_reply failure(errc e) {
    transfer_reply r;
    r.status = make_error_code(e);
    return r;
}

class socket_channel final : public transfer_channel {
public:
    socket_channel(net::socket_driver& driver, duration wait) : driver_(driver), wait_(wait) {}

    void start(const net::endpoint& peer, transfer_request request, transfer_callback done) override {
        auto state = state_;
        // Guarded so that `done` runs exactly once: by the protocol, or here if the driver drops the call.
        struct once {
            std::shared_ptr<shared> state;
            transfer_callback done;
            bool ran = false;
            void operator()(transfer_reply r) {
                {
                    std::lock_guard lock(state->mutex);
                    if (ran) return;
                    ran = true;
                    done(std::move(r));
                }
                state->changed.notify_all();
            }
            ~once() {
                if (!ran && done) (*this)(failure(errc::shut_down));
            }
        };
        auto finish = std::make_shared<once>(); // built in place: a copy would run the destructor's fallback
        finish->state = state;
        finish->done = std::move(done);
        if (driver_.stopped()) return (*finish)(failure(errc::shut_down));
        auto shared_request = std::make_shared<transfer_request>(std::move(request));
        driver_.post([finish, shared_request, peer](net::protocol& p) {
            auto* transfer = dynamic_cast<shard_transfer*>(&p);
            if (!transfer) return (*finish)(failure(errc::invalid_argument));
            transfer->call(peer, std::move(*shared_request), [finish](transfer_reply r) { (*finish)(std::move(r)); });
        });
    }

    bool wait(const std::function<bool()>& ready) override {
        std::unique_lock lock(state_->mutex);
        return state_->changed.wait_for(lock, wait_, ready);
    }
    void locked(const std::function<void()>& f) override {
        std::lock_guard lock(state_->mutex);
        f();
    }

private:
    struct shared {
        std::mutex mutex;
        std::condition_variable changed;
    };
    net::socket_driver& driver_;
    duration wait_;
    std::shared_ptr<shared> state_ = std::make_shared<shared>();
};

class sim_channel final : public transfer_channel {
public:
    sim_channel(sim::network& network, sim::node_id node, std::uint16_t port, duration wait)
        : network_(network), node_(node), port_(port), wait_(wait) {}

    void start(const net::endpoint& peer, transfer_request request, transfer_callback done) override {
        if (!network_.protocol_of<shard_transfer>(node_, port_)) return done(failure(errc::shut_down));
        auto shared_request = std::make_shared<transfer_request>(std::move(request));
        auto shared_done = std::make_shared<transfer_callback>(std::move(done));
        network_.at(network_.now(), [this, shared_request, shared_done, peer] {
            auto* transfer = network_.protocol_of<shard_transfer>(node_, port_);
            if (!transfer) return (*shared_done)(failure(errc::shut_down));
            transfer->call(peer, std::move(*shared_request), std::move(*shared_done));
        });
    }

    bool wait(const std::function<bool()>& ready) override {
        if (ready()) return true;
        return network_.run_until(ready, network_.now() + wait_);
    }
    void locked(const std::function<void()>& f) override { f(); } // one thread runs the simulation
    bool callable_from_any_thread() const noexcept override { return false; }

private:
    sim::network& network_;
    sim::node_id node_;
    std::uint16_t port_;
    duration wait_;
};

class remote_shard_store final : public shard_store {
public:
    remote_shard_store(std::shared_ptr<transfer_channel> channel, net::endpoint peer, std::size_t max_pending)
        : channel_(std::move(channel)), peer_(peer), max_pending_(max_pending) {}

    ~remote_shard_store() override {
        // Callbacks hold the pipeline state, not this object; waiting only bounds what is left in flight.
        (void)channel_->wait([p = pipeline_] { return p->pending_bytes == 0; });
    }

    result<void> put(const shard_id& id, std::span<const std::byte> payload) override {
        forget_prefetched(id);
        auto p = pipeline_;
        const std::size_t n = payload.size() + 1; // an empty shard still counts
        // Room in the pipeline is claimed inside the predicate, under the lock the callbacks take.
        const bool room = channel_->wait([&] {
            if (p->pending_bytes != 0 && p->pending_bytes + n > max_pending_) return false;
            p->pending_bytes += n;
            return true;
        });
        if (!room) return errc::timed_out;
        transfer_request r{transfer_op::put, id};
        r.payload.assign(payload.begin(), payload.end());
        channel_->start(peer_, std::move(r), [p, n](transfer_reply reply) {
            p->pending_bytes -= n;
            if (reply.status && !p->failed) p->failed = reply.status;
            if (!reply.status) p->dirty = true;
        });
        return {};
    }
    void prefetch(const shard_id& id, std::size_t length) override { prefetch_notify(id, length, {}); }

    void prefetch_notify(const shard_id& id, std::size_t length, std::function<void()> arrived) override {
        if (length > UINT32_MAX) {
            if (arrived) arrived(); // get() fails at once
            return;
        }
        auto p = pipeline_;
        std::uint64_t serial = 0;
        bool arrived_already = false;
        channel_->locked([&] {
            for (auto& f : p->fetches)
                if (f.id == id && f.length == length) { // already on its way
                    arrived_already = f.reply.has_value();
                    if (!arrived_already && arrived) // both waiters are told
                        f.arrived = [first = std::move(f.arrived), second = std::move(arrived)] {
                            if (first) first();
                            second();
                        };
                    return;
                }
            if (p->fetches.size() >= max_prefetched) { // never asked for: its reply is dropped
                // Whoever waits on it is told now; its get() will fetch it afresh.
                if (p->fetches.front().arrived) std::exchange(p->fetches.front().arrived, {})();
                p->fetches.pop_front();
            }
            serial = ++p->serial;
            p->fetches.push_back({serial, id, length, std::nullopt, std::move(arrived)});
        });
        if (arrived_already && arrived) arrived();
        if (serial == 0) return;
        transfer_request r{transfer_op::get, id};
        r.length = static_cast<std::uint32_t>(length);
        channel_->start(peer_, std::move(r), [p, serial](transfer_reply reply) {
            for (auto& f : p->fetches)
                if (f.serial == serial) {
                    f.reply = std::move(reply);
                    if (f.arrived) std::exchange(f.arrived, {})();
                }
        });
    }
    bool wait_until(const std::function<bool()>& done) override { return channel_->wait(done); }
    void cancel_prefetch(const shard_id& id) override { forget_prefetched(id); }
    result<void> get(const shard_id& id, std::span<std::byte> out) override {
        if (out.size() > UINT32_MAX) return errc::too_large;
        auto reply = take_prefetched(id, out.size());
        if (!reply) {
            transfer_request r{transfer_op::get, id};
            r.length = static_cast<std::uint32_t>(out.size());
            reply = channel_->call(peer_, std::move(r));
        }
        if (reply->status) return reply->status;
        std::memcpy(out.data(), reply->payload.data(), out.size()); // the protocol checked the length
        return {};
    }
    result<void> remove(const shard_id& id) override {
        forget_prefetched(id);
        auto reply = channel_->call(peer_, {transfer_op::remove, id});
        if (reply.status) return reply.status;
        mark_dirty();
        return {};
    }
    result<bool> contains(const shard_id& id) override {
        auto reply = channel_->call(peer_, {transfer_op::contains, id});
        if (reply.status) return result<bool>(boost::system::in_place_error, reply.status);
        return reply.present;
    }
    result<std::vector<shard_id>> list() override {
        std::vector<shard_id> all;
        transfer_request r{transfer_op::list};
        r.length = UINT32_MAX; // the server's page size bounds it
        for (;;) {
            auto reply = channel_->call(peer_, r);
            if (reply.status) return reply.status;
            all.insert(all.end(), reply.shards.begin(), reply.shards.end());
            if (!reply.more || reply.shards.empty()) return all;
            r.after = true;
            r.shard = reply.shards.back();
        }
    }
    bool callable_from_any_thread() const noexcept override { return channel_->callable_from_any_thread(); }

    result<void> sync() override {
        auto p = pipeline_;
        if (!channel_->wait([&] { return p->pending_bytes == 0; })) return errc::timed_out;
        boost::system::error_code failed;
        bool dirty = false;
        channel_->locked([&] {
            failed = std::exchange(p->failed, {});
            dirty = p->dirty;
        });
        if (failed) return failed; // a pipelined put was refused: the caller must not count on it
        // Nothing written through this store since the last sync: nothing to make durable, and no round trip
        // (so syncing every store of a mesh does not fail on a node that was never written to).
        if (!dirty) return {};
        auto reply = channel_->call(peer_, {transfer_op::sync});
        if (reply.status) return reply.status;
        channel_->locked([&] { p->dirty = false; });
        return {};
    }

private:
    // Touched by callbacks under the channel's lock, and here only under it too (wait() predicates, locked()).
    struct fetch {
        std::uint64_t serial = 0;
        shard_id id;
        std::size_t length = 0;
        std::optional<transfer_reply> reply;
        std::function<void()> arrived; // prefetch_notify's, called when the reply lands
    };
    static constexpr std::size_t max_prefetched = 64;
    struct pipeline {
        std::deque<fetch> fetches; // prefetched gets, oldest first
        std::uint64_t serial = 0;
        std::size_t pending_bytes = 0;
        boost::system::error_code failed;
        bool dirty = false; // a put or remove succeeded since the last successful sync
    };
    // The prefetched reply for this get, waiting for it if it is still on its way; nullopt when none was asked
    // for (or it was dropped), and the caller fetches it now.
    std::optional<transfer_reply> take_prefetched(const shard_id& id, std::size_t length) {
        auto p = pipeline_;
        std::uint64_t serial = 0;
        channel_->locked([&] {
            for (const auto& f : p->fetches)
                if (f.id == id && f.length == length) serial = f.serial;
        });
        if (serial == 0) return std::nullopt;
        std::optional<transfer_reply> out;
        const auto find = [&] { return std::ranges::find(p->fetches, serial, &fetch::serial); };
        channel_->wait([&] {
            auto it = find();
            if (it == p->fetches.end()) return true; // evicted by newer prefetches
            if (!it->reply) return false;
            out = std::move(it->reply);
            p->fetches.erase(it);
            return true;
        });
        if (!out) { // the wait gave up: forget the entry so a late reply finds nothing
            channel_->locked([&] {
                if (auto it = find(); it != p->fetches.end()) p->fetches.erase(it);
            });
        }
        return out;
    }
    // A put or remove makes any prefetched copy stale.
    void forget_prefetched(const shard_id& id) {
        auto p = pipeline_;
        channel_->locked([&] { std::erase_if(p->fetches, [&](const fetch& f) { return f.id == id; }); });
    }
    void mark_dirty() {
        channel_->locked([&] { pipeline_->dirty = true; });
    }

    std::shared_ptr<transfer_channel> channel_;
    net::endpoint peer_;
    std::size_t max_pending_;
    std::shared_ptr<pipeline> pipeline_ = std::make_shared<pipeline>();
};

} // namespace

std::shared_ptr<transfer_channel> make_socket_channel(net::socket_driver& driver, duration wait_limit) {
    return std::make_shared<socket_channel>(driver, wait_limit);
}

std::shared_ptr<transfer_channel> make_sim_channel(sim::network& network, std::uint32_t node, std::uint16_t port,
                                                   duration wait_limit) {
    return std::make_shared<sim_channel>(network, node, port, wait_limit);
}

std::unique_ptr<shard_store> make_remote_shard_store(std::shared_ptr<transfer_channel> channel, net::endpoint peer,
                                                    std::size_t max_pending_put_bytes) {
    return std::make_unique<remote_shard_store>(std::move(channel), peer, std::max<std::size_t>(max_pending_put_bytes, 1));
}

transfer_reply transfer_channel::call(const net::endpoint& peer, transfer_request request) {
    auto reply = std::make_shared<std::optional<transfer_reply>>();
    start(peer, std::move(request), [reply](transfer_reply r) { *reply = std::move(r); });
    if (!wait([&] { return reply->has_value(); })) return failure(errc::timed_out);
    return std::move(**reply);
}

} // namespace swarm::inline v0::storage
