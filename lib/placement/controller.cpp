#include <swarm/placement/controller.hpp>

#include <algorithm>

namespace swarm::inline v0::placement {
namespace {

// admission_node uses timer 1 and ids from 2^32 up; this one is free.
constexpr net::timer_id retry_timer = 2;

std::string allocation_id(const std::string& workload, const std::string& group, std::uint32_t instance) {
    return workload + "/" + group + "/" + std::to_string(instance);
}

} // namespace

detailed_result<void> controller_config::validate() const {
    if (retry_interval <= duration::zero())
        return error{errc::config_invalid_value, "placement.controller.retry_interval: must be positive"};
    if (publish_grace <= duration::zero())
        return error{errc::config_invalid_value, "placement.controller.publish_grace: must be positive"};
    return admission.validate();
}

struct controller::impl {
    struct instance_at {
        node_key node;
        time_point since;
        bool published = false; // seen in the node's own allocations at least once
    };
    struct desired {
        workload work;
        bool in_flight = false;
        std::map<std::string, instance_at> running; // by allocation id
        std::map<std::string, std::pair<std::string, std::uint32_t>> ids; // allocation id -> group, instance
    };

    impl(net::transport& t, node self, controller_config cfg, std::optional<admission_security> security)
        : t_(t), cfg_(std::move(cfg)), admission_(t, std::move(self), cfg_.admission, std::move(security)) {}

    static void index(desired& d) {
        d.ids.clear();
        for (const auto& g : d.work.groups)
            for (std::uint32_t i = 0; i < g.count; ++i) d.ids[allocation_id(d.work.id, g.name, i)] = {g.name, i};
    }

    void lose(desired& d, std::map<std::string, instance_at>::iterator it) {
        d.running.erase(it);
        ++stats_.lost;
    }

    /// Folds the view into what is known to run: instances on nodes gone from it are lost, instances the
    /// nodes publish are running.
    void sync() {
        std::map<node_key, const node*> nodes;
        for (const auto& n : view_.snapshot.nodes) nodes[n.id] = &n;
        for (auto& [id, d] : desired_) {
            for (auto it = d.running.begin(); it != d.running.end();) {
                auto next = std::next(it);
                auto n = nodes.find(it->second.node);
                if (n == nodes.end()) {
                    lose(d, it);
                } else {
                    const auto& held = n->second->allocations;
                    const bool listed = std::any_of(held.begin(), held.end(), [&](const allocation& a) { return a.id == it->first; });
                    if (listed) {
                        it->second.published = true;
                    } else if (it->second.published || t_.now() - it->second.since > cfg_.publish_grace) {
                        lose(d, it); // evicted, released, or never made it into the node's metadata
                    }
                }
                it = next;
            }
            for (const auto& n : view_.snapshot.nodes)
                for (const auto& a : n.allocations) {
                    if (a.workload != id || !d.ids.contains(a.id)) continue;
                    d.running.try_emplace(a.id, instance_at{n.id, t_.now(), true});
                }
        }
    }

    void reconcile() {
        for (auto& [id, d] : desired_) {
            if (d.in_flight) continue;
            std::map<std::string, std::vector<std::uint32_t>> missing;
            for (const auto& [allocation, where] : d.ids)
                if (!d.running.contains(allocation)) missing[where.first].push_back(where.second);
            if (missing.empty()) continue;
            d.in_flight = true;
            ++stats_.attempts;
            const auto workload_id = id;
            // May complete at once (nothing feasible in the view); the map is not changed by that.
            admission_.place_instances(d.work, std::move(missing),
                                       [this, workload_id](const placement_outcome& o) { on_outcome(workload_id, o); });
        }
    }

    void on_outcome(const std::string& workload_id, const placement_outcome& o) {
        auto it = desired_.find(workload_id);
        if (it == desired_.end()) return; // forgotten meanwhile
        auto& d = it->second;
        d.in_flight = false;
        for (const auto& p : o.placed) {
            d.running[allocation_id(workload_id, p.group, p.instance)] = {p.node, t_.now(), false};
            ++stats_.placed;
        }
        if (!o.unplaced.empty()) {
            stats_.still_unplaced += o.unplaced.size();
            t_.set_timer(retry_timer, t_.now() + cfg_.retry_interval);
        } else {
            reconcile(); // instances lost while this attempt was in flight
        }
    }

    net::transport& t_;
    controller_config cfg_;
    admission_node admission_;
    std::map<std::string, desired, std::less<>> desired_;
    membership_view view_;
    controller_statistics stats_;
};

controller::controller(net::transport& transport, node self, controller_config config,
                       std::optional<admission_security> security)
    : impl_(std::make_unique<impl>(transport, std::move(self), std::move(config), std::move(security))) {}
controller::~controller() = default;

void controller::on_start() { impl_->admission_.on_start(); }
void controller::on_datagram(const net::endpoint& from, std::span<const std::byte> payload) {
    impl_->admission_.on_datagram(from, payload);
}
void controller::on_timer(net::timer_id id) {
    if (id == retry_timer) return impl_->reconcile();
    impl_->admission_.on_timer(id);
}
void controller::on_stream_open(net::stream_id stream, const net::endpoint& peer, bool inbound) {
    impl_->admission_.on_stream_open(stream, peer, inbound);
}
void controller::on_stream_frame(net::stream_id stream, std::span<const std::byte> frame) {
    impl_->admission_.on_stream_frame(stream, frame);
}
void controller::on_stream_writable(net::stream_id stream) { impl_->admission_.on_stream_writable(stream); }
void controller::on_stream_closed(net::stream_id stream, boost::system::error_code reason) {
    impl_->admission_.on_stream_closed(stream, reason);
}

detailed_result<void> controller::want(workload w) {
    if (auto valid = w.validate(); !valid) return valid;
    auto& d = impl_->desired_[w.id];
    d.work = std::move(w);
    impl::index(d);
    std::erase_if(d.running, [&](const auto& r) { return !d.ids.contains(r.first); }); // a smaller count
    impl_->sync();
    impl_->reconcile();
    return {};
}

void controller::forget(std::string_view workload_id) {
    if (auto it = impl_->desired_.find(workload_id); it != impl_->desired_.end()) impl_->desired_.erase(it);
}

void controller::set_view(membership_view view) {
    impl_->view_ = std::move(view);
    impl_->admission_.set_view(impl_->view_.snapshot, impl_->view_.addresses);
    impl_->sync();
    impl_->reconcile();
}

void controller::on_membership_event(const membership::event& e) {
    if (e.kind != membership::event_kind::failed && e.kind != membership::event_kind::left) return;
    const auto gone = key_of(e.subject.id);
    auto& v = impl_->view_;
    std::erase_if(v.snapshot.nodes, [&](const node& n) { return n.id == gone; });
    v.addresses.erase(gone);
    impl_->admission_.set_view(v.snapshot, v.addresses);
    impl_->sync();
    impl_->reconcile();
}

std::vector<assignment> controller::running() const {
    std::vector<assignment> out;
    for (const auto& [id, d] : impl_->desired_)
        for (const auto& [allocation, where] : d.running) {
            const auto& [group_name, instance] = d.ids.at(allocation);
            out.push_back({id, group_name, instance, where.node, 0});
        }
    std::sort(out.begin(), out.end(), [](const assignment& l, const assignment& r) {
        return std::tie(l.workload, l.group, l.instance) < std::tie(r.workload, r.group, r.instance);
    });
    return out;
}

const controller_statistics& controller::stats() const noexcept { return impl_->stats_; }
admission_node& controller::admission() noexcept { return impl_->admission_; }

} // namespace swarm::inline v0::placement
