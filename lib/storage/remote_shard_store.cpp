// remote_shard_store and the two channels that carry its calls onto a shard_transfer's strand.
#include <swarm/net/driver.hpp>
#include <swarm/sim/network.hpp>
#include <swarm/storage/transfer.hpp>

#include <cstring>
#include <future>
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

    transfer_reply call(const net::endpoint& peer, transfer_request request) override {
        if (driver_.stopped()) return failure(errc::shut_down);
        auto promise = std::make_shared<std::promise<transfer_reply>>();
        auto future = promise->get_future();
        auto shared = std::make_shared<transfer_request>(std::move(request));
        driver_.post([promise, shared, peer](net::protocol& p) {
            auto* transfer = dynamic_cast<shard_transfer*>(&p);
            if (!transfer) return promise->set_value(failure(errc::invalid_argument));
            transfer->call(peer, std::move(*shared), [promise](transfer_reply r) { promise->set_value(std::move(r)); });
        });
        if (future.wait_for(wait_) != std::future_status::ready) return failure(errc::timed_out);
        try {
            return future.get();
        } catch (const std::future_error&) {
            // The driver dropped the call or the protocol with it: it is stopping.
            return failure(errc::shut_down);
        }
    }

private:
    net::socket_driver& driver_;
    duration wait_;
};

class sim_channel final : public transfer_channel {
public:
    sim_channel(sim::network& network, sim::node_id node, std::uint16_t port, duration wait)
        : network_(network), node_(node), port_(port), wait_(wait) {}

    transfer_reply call(const net::endpoint& peer, transfer_request request) override {
        if (!network_.protocol_of<shard_transfer>(node_, port_)) return failure(errc::shut_down);
        // Shared with the callback, which may outlive this call when the simulation gives up first.
        auto reply = std::make_shared<std::optional<transfer_reply>>();
        auto shared = std::make_shared<transfer_request>(std::move(request));
        network_.at(network_.now(), [this, reply, shared, peer] {
            auto* transfer = network_.protocol_of<shard_transfer>(node_, port_);
            if (!transfer) {
                *reply = failure(errc::shut_down);
                return;
            }
            transfer->call(peer, std::move(*shared), [reply](transfer_reply r) { *reply = std::move(r); });
        });
        network_.run_until([&] { return reply->has_value(); }, network_.now() + wait_);
        if (!reply->has_value()) return failure(errc::timed_out);
        return std::move(**reply);
    }

private:
    sim::network& network_;
    sim::node_id node_;
    std::uint16_t port_;
    duration wait_;
};

class remote_shard_store final : public shard_store {
public:
    remote_shard_store(std::shared_ptr<transfer_channel> channel, net::endpoint peer)
        : channel_(std::move(channel)), peer_(peer) {}

    result<void> put(const shard_id& id, std::span<const std::byte> payload) override {
        transfer_request r{transfer_op::put, id};
        r.payload.assign(payload.begin(), payload.end());
        return changed(call(std::move(r)));
    }
    result<void> get(const shard_id& id, std::span<std::byte> out) override {
        if (out.size() > UINT32_MAX) return errc::too_large;
        transfer_request r{transfer_op::get, id};
        r.length = static_cast<std::uint32_t>(out.size());
        auto reply = call(std::move(r));
        if (reply.status) return reply.status;
        std::memcpy(out.data(), reply.payload.data(), out.size()); // the protocol checked the length
        return {};
    }
    result<void> remove(const shard_id& id) override { return changed(call({transfer_op::remove, id})); }
    result<bool> contains(const shard_id& id) override {
        auto reply = call({transfer_op::contains, id});
        if (reply.status) return result<bool>(boost::system::in_place_error, reply.status);
        return reply.present;
    }
    result<std::vector<shard_id>> list() override {
        std::vector<shard_id> all;
        transfer_request r{transfer_op::list};
        r.length = UINT32_MAX; // the server's page size bounds it
        for (;;) {
            auto reply = call(r);
            if (reply.status) return reply.status;
            all.insert(all.end(), reply.shards.begin(), reply.shards.end());
            if (!reply.more || reply.shards.empty()) return all;
            r.after = true;
            r.shard = reply.shards.back();
        }
    }
    result<void> sync() override {
        // Nothing written through this store since the last sync: nothing to make durable, and no round trip
        // (so syncing every store of a mesh does not fail on a node that was never written to).
        if (!dirty_) return {};
        auto r = status(call({transfer_op::sync}));
        if (r) dirty_ = false;
        return r;
    }

private:
    transfer_reply call(transfer_request r) { return channel_->call(peer_, std::move(r)); }
    result<void> changed(const transfer_reply& reply) {
        if (!reply.status) dirty_ = true;
        return status(reply);
    }
    static result<void> status(const transfer_reply& reply) {
        if (reply.status) return reply.status;
        return {};
    }

    std::shared_ptr<transfer_channel> channel_;
    net::endpoint peer_;
    bool dirty_ = false; // a put or remove succeeded since the last successful sync
};

} // namespace

std::shared_ptr<transfer_channel> make_socket_channel(net::socket_driver& driver, duration wait_limit) {
    return std::make_shared<socket_channel>(driver, wait_limit);
}

std::shared_ptr<transfer_channel> make_sim_channel(sim::network& network, std::uint32_t node, std::uint16_t port,
                                                   duration wait_limit) {
    return std::make_shared<sim_channel>(network, node, port, wait_limit);
}

std::unique_ptr<shard_store> make_remote_shard_store(std::shared_ptr<transfer_channel> channel, net::endpoint peer) {
    return std::make_unique<remote_shard_store>(std::move(channel), peer);
}

} // namespace swarm::inline v0::storage
