#include <swarm/placement/admission.hpp>

#include <swarm/core/wire.hpp>

#include <algorithm>
#include <limits>
#include <set>
#include <unordered_map>

namespace swarm::inline v0::placement {
namespace {

enum class message_type : std::uint8_t { request = 1, response = 2, commit = 3, release = 4 };

constexpr net::timer_id lease_timer = 1;
constexpr net::timer_id request_timer_base = std::uint64_t{1} << 32;
constexpr std::size_t max_text = 1024;
constexpr std::size_t max_ids = 100'000;

struct request {
    std::uint64_t id = 0;
    std::string allocation; // "<workload>/<group>/<instance>"
    std::string workload;
    std::string group;
    std::int32_t priority = 0;
    resources demand;
    bool allow_preemption = false;
    bool reserve = false;
    std::uint32_t instance = 0;
};

struct response {
    std::uint64_t id = 0;
    bool admitted = false;
    resources used; // after the decision
    std::vector<std::string> evicted;
};

void put_resources(wire::writer& w, const resources& r) {
    w.svarint(r.cpu_millis);
    w.svarint(r.memory_bytes);
    w.svarint(r.disk_bytes);
    w.svarint(r.gpus);
    w.varint(r.devices.size());
    for (const auto& [name, count] : r.devices) {
        w.string(name);
        w.svarint(count);
    }
}

resources get_resources(wire::reader& r) {
    resources out;
    out.cpu_millis = r.svarint();
    out.memory_bytes = r.svarint();
    out.disk_bytes = r.svarint();
    out.gpus = r.svarint();
    const auto n = r.count(256, 2);
    for (std::size_t i = 0; i < n && r.ok(); ++i) {
        std::string name(r.utf8(max_text));
        out.devices.emplace_back(std::move(name), r.svarint());
    }
    if (out.cpu_millis < 0 || out.memory_bytes < 0 || out.disk_bytes < 0 || out.gpus < 0) r.fail(errc::malformed);
    for (const auto& [name, count] : out.devices)
        if (count < 0) r.fail(errc::malformed);
    return out;
}

std::vector<std::byte> encode(const request& q) {
    std::vector<std::byte> out;
    wire::writer w(out);
    auto m = w.begin_message(static_cast<std::uint64_t>(message_type::request));
    w.varint(q.id);
    w.string(q.allocation);
    w.string(q.workload);
    w.string(q.group);
    w.svarint(q.priority);
    put_resources(w, q.demand);
    w.boolean(q.allow_preemption);
    w.boolean(q.reserve);
    w.varint(q.instance);
    w.end_message(m);
    w.finish();
    return out;
}

std::vector<std::byte> encode(const response& a) {
    std::vector<std::byte> out;
    wire::writer w(out);
    auto m = w.begin_message(static_cast<std::uint64_t>(message_type::response));
    w.varint(a.id);
    w.boolean(a.admitted);
    put_resources(w, a.used);
    w.varint(a.evicted.size());
    for (const auto& e : a.evicted) w.string(e);
    w.end_message(m);
    w.finish();
    return out;
}

std::vector<std::byte> encode_ids(message_type type, const std::vector<std::string>& ids) {
    std::vector<std::byte> out;
    wire::writer w(out);
    auto m = w.begin_message(static_cast<std::uint64_t>(type));
    w.varint(ids.size());
    for (const auto& id : ids) w.string(id);
    w.end_message(m);
    w.finish();
    return out;
}

std::int64_t device_count(const resources& r, std::string_view name) {
    for (const auto& [n, c] : r.devices)
        if (n == name) return c;
    return 0;
}

void add(resources& into, const resources& r, std::int64_t sign) {
    into.cpu_millis += sign * r.cpu_millis;
    into.memory_bytes += sign * r.memory_bytes;
    into.disk_bytes += sign * r.disk_bytes;
    into.gpus += sign * r.gpus;
    for (const auto& device : r.devices) {
        auto it = std::find_if(into.devices.begin(), into.devices.end(),
                               [&](const auto& d) { return d.first == device.first; });
        if (it == into.devices.end())
            into.devices.emplace_back(device.first, sign * device.second);
        else
            it->second += sign * device.second;
    }
}

bool fits(const resources& capacity, const resources& used, const resources& demand) {
    if (used.cpu_millis + demand.cpu_millis > capacity.cpu_millis) return false;
    if (used.memory_bytes + demand.memory_bytes > capacity.memory_bytes) return false;
    if (used.disk_bytes + demand.disk_bytes > capacity.disk_bytes) return false;
    if (used.gpus + demand.gpus > capacity.gpus) return false;
    for (const auto& [name, count] : demand.devices)
        if (device_count(used, name) + count > device_count(capacity, name)) return false;
    return true;
}

/// Resources as a magnitude, to prefer evicting one large allocation over several small ones.
double weight(const resources& r) {
    return static_cast<double>(r.cpu_millis) / 1000.0 + static_cast<double>(r.memory_bytes) / double(1 << 30) +
           static_cast<double>(r.gpus) * 8.0;
}

frame_refusal refusal_for(const boost::system::error_code& e) {
    if (e == errc::wrong_cluster) return frame_refusal::wrong_cluster;
    if (e == errc::unknown_key) return frame_refusal::unknown_key;
    if (e == errc::replayed) return frame_refusal::replayed;
    if (e == errc::authentication_failed) return frame_refusal::authentication_failed;
    return frame_refusal::unsealed;
}

} // namespace

std::string_view to_string(frame_refusal r) noexcept {
    switch (r) {
    case frame_refusal::malformed: return "malformed";
    case frame_refusal::unsealed: return "unsealed";
    case frame_refusal::wrong_cluster: return "wrong_cluster";
    case frame_refusal::unknown_key: return "unknown_key";
    case frame_refusal::replayed: return "replayed";
    case frame_refusal::authentication_failed: return "authentication_failed";
    }
    return "unknown";
}

detailed_result<void> admission_config::validate() const {
    if (max_rounds == 0 || max_rounds > 64)
        return error{errc::config_invalid_value, "placement.admission.max_rounds: 1 to 64"};
    if (request_timeout <= duration::zero())
        return error{errc::config_invalid_value, "placement.admission.request_timeout: must be positive"};
    if (reservation_lease <= request_timeout)
        return error{errc::config_invalid_value, "placement.admission.reservation_lease: must exceed request_timeout"};
    return scheduling.validate();
}

struct admission_node::impl {
    // One place() call in progress.
    struct attempt {
        workload work;
        completion done;
        std::map<std::string, std::vector<std::uint32_t>> remaining; // group -> instances still to place
        std::vector<std::pair<assignment, std::string>> admitted;    // with the allocation id
        std::vector<eviction> evictions;
        std::vector<explanation> last_unplaced;
        std::uint32_t rounds = 0;
        std::uint32_t refusals = 0;
        std::size_t pending = 0;
    };

    struct outstanding {
        std::uint64_t attempt = 0;
        request req;
        assignment target;
        std::uint32_t instance = 0;
        std::optional<net::stream_id> stream;
    };

    struct sealing {
        seal::sealer out;
        seal::opener in;
    };

    impl(net::transport& t, node self, admission_config cfg, std::optional<admission_security> security)
        : t_(t), self_(std::move(self)), cfg_(std::move(cfg)) {
        // Schedulers sharing one seed sample the same nodes and collide at the same targets; each node
        // draws its own (from the simulator's seed under the simulator, so runs still replay).
        if (cfg_.scheduling.seed == 0) cfg_.scheduling.seed = t.random()();
        if (security) {
            const auto first = security->first_sequence
                                   ? security->first_sequence
                                   : static_cast<std::uint64_t>(t.now().time_since_epoch().count() / 1000) + 1;
            // Only uniqueness matters for the salt; the transport's generator replays under the simulator.
            seal_.emplace(sealing{seal::sealer(security->keys, security->cluster_label, security->sender, first, t.random()()),
                                  seal::opener(security->keys, security->cluster_label)});
        }
    }

    void refuse(frame_refusal why) { ++stats_.dropped[static_cast<std::size_t>(why)]; }

    /// Writes one message, sealed when this node seals.
    void send_frame(net::stream_id stream, std::vector<std::byte> plain) {
        if (!seal_) return t_.write(stream, plain);
        auto sealed = seal_->out.seal(plain);
        if (!sealed) {
            // Only a ring without keys or an exhausted sequence space get here: nothing can be sent safely.
            t_.log().error("placement: cannot seal an admission message: {}", sealed.error().message());
            return;
        }
        t_.write(stream, *sealed);
    }

    /// The message inside a frame, or nothing (counted) when the frame does not open.
    std::optional<std::vector<std::byte>> open_frame(std::span<const std::byte> frame) {
        if (!seal_) return std::vector<std::byte>(frame.begin(), frame.end());
        std::vector<std::byte> plain;
        auto opened = seal_->in.open(frame, plain);
        if (!opened) {
            refuse(refusal_for(opened.error()));
            return std::nullopt;
        }
        return plain;
    }

    void changed() {
        if (hook_) hook_(self_);
    }

    // --- target side -----------------------------------------------------------------------------------

    resources used() const {
        resources total;
        for (const auto& a : self_.allocations) add(total, a.demand, +1);
        return total;
    }

    response decide(const request& q) {
        ++stats_.requests;
        const auto held_before = self_.allocations.size();
        auto a = decide_once(q);
        if (!a.evicted.empty() || self_.allocations.size() != held_before) changed();
        return a;
    }

    response decide_once(const request& q) {
        response a;
        a.id = q.id;
        const bool exists = std::any_of(self_.allocations.begin(), self_.allocations.end(),
                                        [&](const allocation& x) { return x.id == q.allocation; });
        if (exists) {
            // A retry of a request already admitted: answer the same, admit nothing twice.
            a.admitted = true;
            a.used = used();
            return a;
        }
        auto current = used();
        if (!fits(self_.capacity, current, q.demand) && q.allow_preemption) {
            // Least disruptive: lowest priority first, and within it the largest, so fewer are evicted.
            std::vector<const allocation*> victims;
            for (const auto& x : self_.allocations)
                if (x.priority < q.priority) victims.push_back(&x);
            std::sort(victims.begin(), victims.end(), [](const allocation* l, const allocation* r) {
                if (l->priority != r->priority) return l->priority < r->priority;
                if (weight(l->demand) != weight(r->demand)) return weight(l->demand) > weight(r->demand);
                return l->id < r->id;
            });
            auto freed = current;
            std::vector<std::string> chosen;
            for (const auto* v : victims) {
                if (fits(self_.capacity, freed, q.demand)) break;
                add(freed, v->demand, -1);
                chosen.push_back(v->id);
            }
            if (fits(self_.capacity, freed, q.demand)) {
                std::erase_if(self_.allocations, [&](const allocation& x) {
                    return std::find(chosen.begin(), chosen.end(), x.id) != chosen.end();
                });
                for (const auto& id : chosen) leases_.erase(id);
                stats_.evicted += chosen.size();
                a.evicted = std::move(chosen);
                current = freed;
            }
        }
        if (fits(self_.capacity, current, q.demand)) {
            allocation x;
            x.id = q.allocation;
            x.workload = q.workload;
            x.group = q.group;
            x.instance = q.instance;
            x.priority = q.priority;
            x.demand = q.demand;
            self_.allocations.push_back(std::move(x));
            if (q.reserve) {
                leases_[q.allocation] = t_.now() + cfg_.reservation_lease;
                arm_lease_timer();
            }
            a.admitted = true;
        }
        ++(a.admitted ? stats_.admitted : stats_.refused);
        a.used = used();
        return a;
    }

    void commit(const std::vector<std::string>& ids) {
        for (const auto& id : ids) leases_.erase(id);
    }

    void release(const std::vector<std::string>& ids) {
        const auto removed = std::erase_if(self_.allocations, [&](const allocation& x) {
            return std::find(ids.begin(), ids.end(), x.id) != ids.end();
        });
        for (const auto& id : ids) leases_.erase(id);
        if (removed > 0) changed();
    }

    void arm_lease_timer() {
        if (leases_.empty()) return t_.cancel_timer(lease_timer);
        auto first = std::min_element(leases_.begin(), leases_.end(),
                                      [](const auto& l, const auto& r) { return l.second < r.second; });
        t_.set_timer(lease_timer, first->second);
    }

    void on_lease_timer() {
        std::vector<std::string> expired;
        for (const auto& [id, until] : leases_)
            if (until <= t_.now()) expired.push_back(id);
        release(expired);
        arm_lease_timer();
    }

    void on_inbound_frame(net::stream_id stream, std::span<const std::byte> sealed) {
        auto plain = open_frame(sealed);
        if (!plain) return t_.close(stream);
        std::span<const std::byte> frame(*plain);
        wire::reader r(frame);
        auto m = r.begin_message(frame.size());
        const auto type = static_cast<message_type>(m.type);
        if (r.ok() && type == message_type::request) {
            request q;
            q.id = r.varint();
            q.allocation = std::string(r.utf8(max_text));
            q.workload = std::string(r.utf8(max_text));
            q.group = std::string(r.utf8(max_text));
            q.priority = static_cast<std::int32_t>(r.svarint());
            q.demand = get_resources(r);
            q.allow_preemption = r.boolean();
            q.reserve = r.boolean();
            q.instance = static_cast<std::uint32_t>(r.varint_max(std::numeric_limits<std::uint32_t>::max()));
            r.end_message(m, wire::trailing::skip);
            if (r.finish() && !q.allocation.empty()) {
                send_frame(stream, encode(decide(q)));
                return; // the scheduler closes when it has the answer
            }
        } else if (r.ok() && (type == message_type::commit || type == message_type::release)) {
            std::vector<std::string> ids(r.count(max_ids));
            for (auto& id : ids) id = std::string(r.utf8(max_text));
            r.end_message(m, wire::trailing::skip);
            if (r.finish()) {
                type == message_type::commit ? commit(ids) : release(ids);
                t_.close(stream);
                return;
            }
        }
        refuse(frame_refusal::malformed);
        t_.log().warning("placement: refused a malformed admission message from stream {}", stream);
        t_.close(stream);
    }

    // --- scheduler side --------------------------------------------------------------------------------

    /// Every instance when `only` is empty, else just those.
    void place(workload w, std::map<std::string, std::vector<std::uint32_t>> only, completion done) {
        const auto id = next_attempt_++;
        auto& a = attempts_[id];
        a.done = std::move(done);
        auto invalid = [&](std::string why) {
            a.work = std::move(w);
            explanation e;
            e.workload = a.work.id;
            e.summary = std::move(why);
            a.last_unplaced.push_back(std::move(e));
            finish(id);
        };
        if (auto valid = w.validate(); !valid) return invalid(valid.error().describe());
        for (auto& entry : only) {
            const auto& name = entry.first;
            auto& instances = entry.second;
            auto g = std::find_if(w.groups.begin(), w.groups.end(), [&name](const group& x) { return x.name == name; });
            if (g == w.groups.end()) return invalid("workload '" + w.id + "' has no group '" + name + "'");
            std::sort(instances.begin(), instances.end());
            instances.erase(std::unique(instances.begin(), instances.end()), instances.end());
            if (!instances.empty() && instances.back() >= g->count)
                return invalid("workload '" + w.id + "' group '" + name + "': instance " + std::to_string(instances.back()) +
                               " is not below its count " + std::to_string(g->count));
        }
        for (const auto& g : w.groups) {
            auto& list = a.remaining[g.name];
            if (only.empty()) {
                for (std::uint32_t i = 0; i < g.count; ++i) list.push_back(i);
            } else if (auto it = only.find(g.name); it != only.end()) {
                list = it->second;
            }
        }
        a.work = std::move(w);
        round(id);
    }

    void round(std::uint64_t id) {
        auto& a = attempts_.at(id);
        ++a.rounds;
        // Plan only what is still unplaced, over the view as it now stands.
        workload rest = a.work;
        rest.groups.clear();
        for (const auto& g : a.work.groups) {
            const auto& left = a.remaining[g.name];
            if (left.empty()) continue;
            group copy = g;
            copy.count = static_cast<std::uint32_t>(left.size());
            rest.groups.push_back(std::move(copy));
        }
        // The planner's usage follows its own plans, which admissions confirm; building it is O(view), so
        // it is rebuilt only when the targets' word departs from the plans (see forget_planner()).
        if (!planner_) {
            auto sched = scheduler::create(view_, cfg_.scheduling);
            if (!sched) {
                explanation e;
                e.workload = a.work.id;
                e.summary = sched.error().describe();
                a.last_unplaced = {std::move(e)};
                return fail(id);
            }
            planner_.emplace(std::move(*sched));
        }
        auto planned = planner_->schedule(std::span<const workload>(&rest, 1));
        if (!planned) {
            explanation e;
            e.workload = a.work.id;
            e.summary = planned.error().describe();
            a.last_unplaced = {std::move(e)};
            return fail(id);
        }
        a.last_unplaced = planned->unplaced;
        // The planner assumed these evictions; what the targets really evict comes back in their answers.
        if (!planned->evictions.empty()) forget_planner();
        // A gang that cannot be planned whole in this view cannot be admitted whole either.
        if (planned->assignments.empty() || (a.work.gang && !planned->unplaced.empty())) {
            if (!planned->assignments.empty()) forget_planner(); // planned, never asked
            return fail(id);
        }
        std::vector<std::uint64_t> unreachable;
        for (const auto& asg : planned->assignments) {
            auto address = addresses_.find(asg.node);
            const auto instance = a.remaining[asg.group].at(asg.instance);
            outstanding o;
            o.attempt = id;
            o.instance = instance;
            o.target = asg;
            o.target.instance = instance;
            o.req.id = next_request_++;
            o.req.workload = a.work.id;
            o.req.group = asg.group;
            o.req.allocation = a.work.id + "/" + asg.group + "/" + std::to_string(instance);
            o.req.priority = a.work.priority;
            o.req.allow_preemption = a.work.allow_preemption;
            o.req.reserve = a.work.gang;
            o.req.instance = instance;
            for (const auto& g : a.work.groups)
                if (g.name == asg.group) o.req.demand = g.demand;
            ++a.pending;
            if (address == addresses_.end()) {
                // The view names a node we cannot reach: as good as a refusal, once the round is sent.
                unreachable.push_back(o.req.id);
                requests_.emplace(o.req.id, std::move(o));
                continue;
            }
            const auto stream = t_.connect(address->second);
            o.stream = stream;
            by_stream_[stream] = o.req.id;
            send_frame(stream, encode(o.req));
            t_.set_timer(request_timer_base + o.req.id, t_.now() + cfg_.request_timeout);
            requests_.emplace(o.req.id, std::move(o));
        }
        // Answered only now: an answer may start the next round or finish the attempt.
        for (auto request_id : unreachable) answer(request_id, std::nullopt);
    }

    /// A request's outcome: an answer, or nothing (timeout, refused connection, garbage).
    void answer(std::uint64_t request_id, std::optional<response> reply) {
        auto it = requests_.find(request_id);
        if (it == requests_.end()) return;
        auto o = std::move(it->second);
        requests_.erase(it);
        t_.cancel_timer(request_timer_base + request_id);
        if (o.stream) {
            by_stream_.erase(*o.stream);
            t_.close(*o.stream);
        }
        auto found = attempts_.find(o.attempt);
        if (found == attempts_.end()) return;
        auto& a = found->second;
        --a.pending;
        auto node_in_view = std::find_if(view_.nodes.begin(), view_.nodes.end(),
                                         [&](const node& n) { return n.id == o.target.node; });
        if (reply && reply->admitted) {
            auto& left = a.remaining[o.target.group];
            std::erase(left, o.instance);
            a.admitted.emplace_back(o.target, o.req.allocation);
            for (const auto& victim : reply->evicted)
                a.evictions.push_back({o.target.node, victim, 0, a.work.id});
            if (node_in_view != view_.nodes.end()) {
                allocation x;
                x.id = o.req.allocation;
                x.workload = a.work.id;
                x.group = o.target.group;
                x.instance = o.instance;
                x.priority = a.work.priority;
                x.demand = o.req.demand;
                std::erase_if(node_in_view->allocations, [&](const allocation& y) {
                    return std::find(reply->evicted.begin(), reply->evicted.end(), y.id) != reply->evicted.end();
                });
                node_in_view->allocations.push_back(std::move(x));
            }
            if (!reply->evicted.empty()) forget_planner();
        } else {
            ++a.refusals;
            forget_planner();
            if (node_in_view != view_.nodes.end()) {
                if (reply) {
                    // The target's word replaces our guess: what it reports in use is what is in use.
                    allocation observed;
                    observed.id = "observed-usage";
                    observed.priority = std::numeric_limits<std::int32_t>::max();
                    observed.demand = reply->used;
                    node_in_view->allocations = {std::move(observed)};
                } else {
                    // Silent: keep it out of the next rounds by treating it as full.
                    allocation full;
                    full.id = "unreachable";
                    full.priority = std::numeric_limits<std::int32_t>::max();
                    full.demand = node_in_view->capacity;
                    node_in_view->allocations = {std::move(full)};
                }
            }
        }
        if (a.pending > 0) return;
        const bool all_placed = std::all_of(a.remaining.begin(), a.remaining.end(),
                                            [](const auto& g) { return g.second.empty(); });
        if (all_placed) return succeed(o.attempt);
        if (a.rounds >= cfg_.max_rounds) return fail(o.attempt);
        round(o.attempt);
    }

    /// The view changed in a way the planner did not plan: the next round builds a new one from the view.
    void forget_planner() { planner_.reset(); }

    void send_ids(const node_key& target, message_type type, std::vector<std::string> ids) {
        auto address = addresses_.find(target);
        if (address == addresses_.end() || ids.empty()) return;
        const auto stream = t_.connect(address->second);
        send_frame(stream, encode_ids(type, ids));
        t_.close(stream);
    }

    /// Groups the admitted allocations by node and sends `type` for them.
    void notify_targets(const attempt& a, message_type type) {
        std::map<node_key, std::vector<std::string>> by_node;
        for (const auto& [asg, allocation_id] : a.admitted) by_node[asg.node].push_back(allocation_id);
        for (auto& [target, ids] : by_node) send_ids(target, type, std::move(ids));
    }

    void succeed(std::uint64_t id) {
        auto& a = attempts_.at(id);
        if (a.work.gang) notify_targets(a, message_type::commit);
        finish(id);
    }

    void fail(std::uint64_t id) {
        auto& a = attempts_.at(id);
        if (a.work.gang) {
            // All or nothing: give back what was reserved, here and on the targets.
            notify_targets(a, message_type::release);
            for (const auto& admitted : a.admitted) {
                const auto& asg = admitted.first;
                const auto& allocation_id = admitted.second;
                a.remaining[asg.group].push_back(asg.instance); // a failed gang leaves every instance unplaced
                auto n = std::find_if(view_.nodes.begin(), view_.nodes.end(), [&](const node& x) { return x.id == asg.node; });
                if (n != view_.nodes.end())
                    std::erase_if(n->allocations, [&](const allocation& x) { return x.id == allocation_id; });
            }
            for (auto& [group_name, left] : a.remaining) std::sort(left.begin(), left.end());
            if (!a.admitted.empty()) forget_planner();
            a.admitted.clear();
            a.evictions.clear();
        }
        finish(id);
    }

    void finish(std::uint64_t id) {
        auto node = attempts_.extract(id);
        auto& a = node.mapped();
        placement_outcome out;
        out.workload = a.work.id;
        for (auto& [asg, allocation_id] : a.admitted) out.placed.push_back(asg);
        out.evictions = std::move(a.evictions);
        out.rounds = a.rounds;
        out.refusals = a.refusals;
        // Every instance still unplaced is explained: by the planner where it said why, else by admission.
        for (const auto& unplaced_group : a.remaining) {
            const auto& group_name = unplaced_group.first;
            for (auto instance : unplaced_group.second) {
                auto e = std::find_if(a.last_unplaced.begin(), a.last_unplaced.end(),
                                      [&](const explanation& x) { return x.group == group_name; });
                explanation x = e != a.last_unplaced.end() ? *e : explanation{};
                x.workload = a.work.id;
                x.group = group_name;
                x.instance = instance;
                x.admission_refused = a.refusals;
                if (x.summary.empty())
                    x.summary = "refused by the target nodes' admission " + std::to_string(a.refusals) +
                                " times over " + std::to_string(a.rounds) + " rounds";
                out.unplaced.push_back(std::move(x));
            }
        }
        if (a.remaining.empty() && !a.last_unplaced.empty()) out.unplaced = a.last_unplaced; // invalid workload
        if (a.done) a.done(out);
    }

    void on_outbound_frame(net::stream_id stream, std::span<const std::byte> sealed) {
        auto it = by_stream_.find(stream);
        if (it == by_stream_.end()) return t_.close(stream);
        const auto request_id = it->second;
        auto plain = open_frame(sealed);
        if (!plain) return answer(request_id, std::nullopt);
        std::span<const std::byte> frame(*plain);
        wire::reader r(frame);
        auto m = r.begin_message(frame.size());
        response a;
        if (r.ok() && static_cast<message_type>(m.type) == message_type::response) {
            a.id = r.varint();
            a.admitted = r.boolean();
            a.used = get_resources(r);
            const auto n = r.count(max_ids);
            for (std::size_t i = 0; i < n && r.ok(); ++i) a.evicted.emplace_back(r.utf8(max_text));
            r.end_message(m, wire::trailing::skip);
        } else {
            r.fail(errc::malformed);
        }
        if (!r.finish() || a.id != request_id) {
            refuse(frame_refusal::malformed);
            return answer(request_id, std::nullopt);
        }
        answer(request_id, std::move(a));
    }

    net::transport& t_;
    node self_;
    admission_config cfg_;
    std::map<std::string, time_point> leases_;
    cluster view_;
    std::map<node_key, net::endpoint> addresses_;
    std::map<std::uint64_t, attempt> attempts_;
    std::map<std::uint64_t, outstanding> requests_;
    std::unordered_map<net::stream_id, std::uint64_t> by_stream_;
    std::set<net::stream_id> inbound_;
    std::uint64_t next_attempt_ = 1;
    std::uint64_t next_request_ = 1;
    std::optional<scheduler> planner_;
    std::optional<sealing> seal_;
    change_hook hook_;
    admission_statistics stats_;
};

admission_node::admission_node(net::transport& transport, node self, admission_config config,
                               std::optional<admission_security> security)
    : impl_(std::make_unique<impl>(transport, std::move(self), std::move(config), std::move(security))) {}
admission_node::~admission_node() = default;

void admission_node::on_datagram(const net::endpoint&, std::span<const std::byte>) {}

void admission_node::on_timer(net::timer_id id) {
    if (id == lease_timer) return impl_->on_lease_timer();
    if (id >= request_timer_base) impl_->answer(id - request_timer_base, std::nullopt);
}

void admission_node::on_stream_open(net::stream_id stream, const net::endpoint&, bool inbound) {
    if (inbound) impl_->inbound_.insert(stream);
}

void admission_node::on_stream_frame(net::stream_id stream, std::span<const std::byte> frame) {
    if (impl_->inbound_.contains(stream)) return impl_->on_inbound_frame(stream, frame);
    impl_->on_outbound_frame(stream, frame);
}

void admission_node::on_stream_closed(net::stream_id stream, boost::system::error_code) {
    impl_->inbound_.erase(stream);
    if (auto it = impl_->by_stream_.find(stream); it != impl_->by_stream_.end()) impl_->answer(it->second, std::nullopt);
}

void admission_node::set_view(cluster snapshot, std::map<node_key, net::endpoint> addresses) {
    impl_->view_ = std::move(snapshot);
    impl_->addresses_ = std::move(addresses);
    impl_->forget_planner();
}

void admission_node::place(workload w, completion done) { impl_->place(std::move(w), {}, std::move(done)); }

void admission_node::place_instances(workload w, std::map<std::string, std::vector<std::uint32_t>> instances,
                                     completion done) {
    impl_->place(std::move(w), std::move(instances), std::move(done));
}

void admission_node::on_change(change_hook hook) { impl_->hook_ = std::move(hook); }
const admission_statistics& admission_node::stats() const noexcept { return impl_->stats_; }

const node& admission_node::self() const noexcept { return impl_->self_; }
resources admission_node::free() const {
    auto out = impl_->self_.capacity;
    add(out, impl_->used(), -1);
    return out;
}

} // namespace swarm::inline v0::placement
