#include <swarm/membership/agent.hpp>

#include <swarm/core/metrics.hpp>
#include <swarm/net/resolve.hpp>
#include <swarm/net/runtime.hpp>

#include "core/sodium_init.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <sodium.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <exception>
#include <future>
#include <mutex>
#include <thread>
#include <utility>

namespace swarm::inline v0::membership {

detailed_result<std::vector<std::byte>> parse_cluster_key(std::string_view text) {
    ::swarm::detail::sodium_init_once();
    std::vector<std::byte> key(seal::key_size);
    auto* out = reinterpret_cast<unsigned char*>(key.data());
    std::size_t written = 0;
    const char* end = nullptr;
    if (text.size() == 2 * seal::key_size) {
        if (sodium_hex2bin(out, key.size(), text.data(), text.size(), nullptr, &written, &end) == 0 &&
            written == seal::key_size && end == text.data() + text.size())
            return key;
    } else if (sodium_base642bin(out, key.size(), text.data(), text.size(), nullptr, &written, &end,
                                 sodium_base64_VARIANT_ORIGINAL) == 0 &&
               written == seal::key_size && end == text.data() + text.size()) {
        return key;
    }
    sodium_memzero(key.data(), key.size());
    return error(errc::invalid_argument,
                 fmt::format("a cluster key must be 32 bytes written as 64 hex digits or 44 base64 characters "
                             "(got {} characters)",
                             text.size()));
}

detailed_result<void> agent_config::validate() const {
    if (auto v = driver.validate(); !v) return error(v.error().code, "driver: " + v.error().message);
    if (auto v = membership.validate(); !v) return v.error(); // its messages already name "membership.<key>"
    if (identity_file.empty()) return error(errc::config_missing_key, "identity_file: a key file path is required");
    if (cluster_keys.empty())
        return error(errc::config_missing_key, "cluster_keys: at least one key is required (the first seals)");
    for (std::size_t i = 0; i < cluster_keys.size(); ++i) {
        auto key = parse_cluster_key(cluster_keys[i]);
        if (!key) return error(errc::config_invalid_value, fmt::format("cluster_keys[{}]: {}", i, key.error().message));
        sodium_memzero(key->data(), key->size());
    }
    for (std::size_t i = 0; i < seeds.size(); ++i)
        if (seeds[i].empty()) return error(errc::config_invalid_value, fmt::format("seeds[{}]: empty", i));
    if (event_queue_capacity == 0) return error(errc::config_invalid_value, "event_queue_capacity: must be at least 1");
    if (call_timeout <= duration::zero()) return error(errc::config_invalid_value, "call_timeout: must be positive");
    if (leave_drain < duration::zero()) return error(errc::config_invalid_value, "leave_drain: must not be negative");
    if (auto v = gpu_telemetry.validate(); !v) return v.error(); // its messages name "gpu_telemetry.<key>"
    return {};
}

namespace {

// Set while agent code runs on an agent's strand, so a query made from a subscriber runs inline instead
// of waiting for the strand it is holding.
thread_local const void* on_strand_of = nullptr;

struct strand_mark {
    const void* previous;
    explicit strand_mark(const void* owner) noexcept : previous(on_strand_of) { on_strand_of = owner; }
    ~strand_mark() { on_strand_of = previous; }
    strand_mark(const strand_mark&) = delete;
    strand_mark& operator=(const strand_mark&) = delete;
};

// swim says goodbye in on_stop; halt() needs a stop that says nothing, as a crash would. This wrapper is the
// driver's protocol and forwards everything else unchanged.
class agent_protocol final : public net::protocol {
public:
    // `after` runs once swim has returned from each handler: where queued events reach subscribers.
    template <class... Args>
    explicit agent_protocol(std::function<void()> after, Args&&... args)
        : swim_(std::forward<Args>(args)...), after_(std::move(after)) {}

    swim& inner() noexcept { return swim_; }
    void silence() noexcept { silent_ = true; }
    void after() { after_(); }

    void on_start() override {
        swim_.on_start();
        after_();
    }
    void on_datagram(const net::endpoint& from, std::span<const std::byte> payload) override {
        swim_.on_datagram(from, payload);
        after_();
    }
    void on_timer(net::timer_id id) override {
        swim_.on_timer(id);
        after_();
    }
    void on_stream_open(net::stream_id s, const net::endpoint& peer, bool inbound) override {
        swim_.on_stream_open(s, peer, inbound);
        after_();
    }
    void on_stream_frame(net::stream_id s, std::span<const std::byte> frame) override {
        swim_.on_stream_frame(s, frame);
        after_();
    }
    void on_stream_writable(net::stream_id s) override {
        swim_.on_stream_writable(s);
        after_();
    }
    void on_stream_closed(net::stream_id s, boost::system::error_code reason) override {
        swim_.on_stream_closed(s, reason);
        after_();
    }
    void on_stop() override {
        if (!silent_) swim_.on_stop();
        after_();
    }

private:
    swim swim_;
    std::function<void()> after_;
    bool silent_ = false;
};

constexpr std::array<member_state, 4> all_states{member_state::alive, member_state::suspect, member_state::dead,
                                                 member_state::left};

template <class R>
result<R> fail(errc e) {
    return result<R>(boost::system::in_place_error, make_error_code(e));
}

std::uint64_t wall_clock_microseconds() {
    // The seal's replay windows need a restarted node to start above its previous life's sequences.
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

} // namespace

struct agent::impl : std::enable_shared_from_this<agent::impl> {
    impl(boost::asio::any_io_executor ex, agent_config c, std::shared_ptr<const identity> self, seal::keyring k)
        : executor(std::move(ex)), cfg(std::move(c)), me(std::move(self)), keys(std::move(k)),
          join_timer(executor), gpu_timer(executor) {
        register_metrics();
    }

    boost::asio::any_io_executor executor;
    agent_config cfg;
    std::shared_ptr<const identity> me;
    seal::keyring keys;
    // Set once by create(), before the agent is handed out; the protocol never reaches it.
    std::optional<net::socket_driver> driver;
    net::endpoint local;
    // Set by the factory on the strand; dereferenced only on the strand.
    agent_protocol* proto = nullptr;

    // Events.
    std::mutex events_mutex;
    std::deque<event> queue;
    std::uint64_t dropped = 0;
    std::atomic<std::uint64_t> dropped_total{0};
    std::function<void()> notify;
    std::vector<std::pair<subscription, std::shared_ptr<event_callback>>> subscribers;
    subscription next_subscription = 1;
    // Strand only: events emitted during the current protocol call, for subscribers once it returns.
    std::vector<event> pending;
    bool dispatching = false;

    // Joining: the seed strings, re-resolved on each retry until another member answers.
    std::mutex join_mutex;
    std::vector<std::string> seed_names;
    duration join_backoff{};
    bool join_running = false;
    // Set by stop: a resolution or timer already in flight must not re-arm the loop.
    bool join_stopped = false;
    boost::asio::steady_timer join_timer;

    // GPU telemetry: sampled off the strand on gpu_timer, applied on the strand.
    std::shared_ptr<gpu_provider> gpus;
    std::mutex gpu_mutex;
    bool gpu_stopped = false;
    boost::asio::steady_timer gpu_timer;
    // Strand only: the host's metadata as last set, and the GPU figures last published over it.
    metadata host_meta;
    std::vector<gpu> gpus_published;
    bool gpu_publish_failing = false;

    // Metrics, refreshed from swim::stats() on the strand.
    metrics::registry registry;
    std::array<metrics::gauge*, all_states.size()> members_by_state{};
    metrics::gauge* local_health = nullptr;
    metrics::counter* probes = nullptr;
    metrics::counter* probes_failed = nullptr;
    metrics::counter* suspicions = nullptr;
    metrics::counter* refutations = nullptr;
    metrics::counter* sent_bytes = nullptr;
    metrics::counter* received_bytes = nullptr;
    metrics::counter* sent_packets = nullptr;
    metrics::counter* received_packets = nullptr;
    std::array<metrics::counter*, refusal_count> refused{};
    metrics::counter* events_dropped_metric = nullptr;

    void register_metrics() {
        auto states = registry
                          .add_gauge_family("swarm_membership_members", "Members in this node's view, by state",
                                            {"state"})
                          .value();
        for (std::size_t i = 0; i < all_states.size(); ++i)
            members_by_state[i] = &states->labels({to_string(all_states[i])});
        local_health = registry
                           .add_gauge("swarm_membership_local_health",
                                      "Lifeguard local health score; 0 is healthy, higher stretches probe timing")
                           .value();
        probes = registry.add_counter("swarm_membership_probes_total", "Direct probes sent").value();
        probes_failed =
            registry.add_counter("swarm_membership_probes_failed_total", "Probes that got no ack in time").value();
        suspicions = registry.add_counter("swarm_membership_suspicions_total", "Members this node suspected").value();
        refutations =
            registry.add_counter("swarm_membership_refutations_total", "Suspicions of this node it refuted").value();
        sent_bytes = registry.add_counter("swarm_membership_sent_bytes_total", "Bytes sent").value();
        received_bytes = registry.add_counter("swarm_membership_received_bytes_total", "Bytes received").value();
        sent_packets = registry.add_counter("swarm_membership_sent_packets_total", "Packets sent").value();
        received_packets =
            registry.add_counter("swarm_membership_received_packets_total", "Packets received").value();
        auto refusals = registry
                            .add_counter_family("swarm_membership_packets_refused_total",
                                                "Packets dropped before processing, by reason", {"reason"})
                            .value();
        for (std::size_t i = 0; i < refusal_count; ++i)
            refused[i] = &refusals->labels({to_string(static_cast<refusal>(i))});
        events_dropped_metric = registry
                                    .add_counter("swarm_membership_events_dropped_total",
                                                 "Events dropped from the poll queue because it was full")
                                    .value();
    }

    static void catch_up(metrics::counter* c, std::uint64_t total) {
        if (total > c->value()) c->inc(total - c->value());
    }

    // On the strand.
    void refresh_metrics(const swim& s) {
        std::array<double, all_states.size()> counts{};
        for (const auto& m : s.members()) counts[static_cast<std::size_t>(m.state)] += 1;
        for (std::size_t i = 0; i < counts.size(); ++i) members_by_state[i]->set(counts[i]);
        local_health->set(s.local_health());
        const auto& st = s.stats();
        catch_up(probes, st.probes);
        catch_up(probes_failed, st.probes_failed);
        catch_up(suspicions, st.suspicions);
        catch_up(refutations, st.refutations);
        catch_up(sent_bytes, st.bytes_sent);
        catch_up(received_bytes, st.bytes_received);
        catch_up(sent_packets, st.packets_sent);
        catch_up(received_packets, st.packets_received);
        for (std::size_t i = 0; i < refusal_count; ++i) catch_up(refused[i], st.refused[i]);
        catch_up(events_dropped_metric, dropped_total.load(std::memory_order_relaxed));
    }

    // Runs `fn(swim&)` on the strand and waits for its answer, or inline when already there.
    template <class R, class F>
    result<R> call(F fn) {
        if (on_strand_of == this) {
            if (proto == nullptr) return fail<R>(errc::shut_down);
            return R(fn(proto->inner()));
        }
        if (driver->stopped()) return fail<R>(errc::shut_down);
        auto promise = std::make_shared<std::promise<R>>();
        auto answer = promise->get_future();
        driver->post([this, promise, fn = std::move(fn)](net::protocol&) mutable {
            {
                strand_mark mark(this);
                try {
                    promise->set_value(fn(proto->inner()));
                } catch (...) {
                    promise->set_exception(std::current_exception());
                }
            }
            proto->after();
        });
        if (answer.wait_for(cfg.call_timeout) != std::future_status::ready) return fail<R>(errc::timed_out);
        try {
            return answer.get();
        } catch (...) {
            // The driver stopped and dropped the request (a broken promise).
            return fail<R>(errc::shut_down);
        }
    }

    // From swim, on the strand, inside the protocol's call stack.
    void on_event(const event& e) {
        std::function<void()> wake;
        {
            std::lock_guard lock(events_mutex);
            if (queue.size() >= cfg.event_queue_capacity) {
                queue.pop_front();
                ++dropped;
                dropped_total.fetch_add(1, std::memory_order_relaxed);
            }
            if (queue.empty()) wake = notify;
            queue.push_back(e);
        }
        if (wake) {
            try {
                wake();
            } catch (const std::exception& ex) {
                cfg.log.error("membership agent: the notify function threw: {}", ex.what());
            } catch (...) {
                cfg.log.error("membership agent: the notify function threw");
            }
        }
        // Subscribers run once swim has returned, so they may query or steer the agent without re-entering
        // swim in the middle of its own work.
        pending.push_back(e);
    }

    // On the strand, after each protocol call. Events that subscribers cause are delivered by the same loop.
    void dispatch_pending() {
        if (dispatching) return;
        dispatching = true;
        strand_mark mark(this);
        while (!pending.empty()) {
            auto batch = std::exchange(pending, {});
            std::vector<std::shared_ptr<event_callback>> targets;
            {
                std::lock_guard lock(events_mutex);
                targets.reserve(subscribers.size());
                for (auto& [id, cb] : subscribers) targets.push_back(cb);
            }
            for (const auto& e : batch) {
                for (auto& cb : targets) {
                    try {
                        (*cb)(e);
                    } catch (const std::exception& ex) {
                        cfg.log.error("membership agent: an event subscriber threw: {}", ex.what());
                    } catch (...) {
                        cfg.log.error("membership agent: an event subscriber threw");
                    }
                }
            }
        }
        dispatching = false;
    }

    // --- joining -------------------------------------------------------------------------------------------
    void start_join(std::vector<std::string> more) {
        {
            std::lock_guard lock(join_mutex);
            for (auto& s : more)
                if (std::find(seed_names.begin(), seed_names.end(), s) == seed_names.end())
                    seed_names.push_back(std::move(s));
            if (seed_names.empty() || join_stopped) return;
            join_backoff = cfg.membership.join_retry_interval;
            if (join_running) return;
            join_running = true;
        }
        attempt_join();
    }

    void attempt_join() {
        std::vector<std::string> names;
        {
            std::lock_guard lock(join_mutex);
            if (join_stopped) return;
            names = seed_names;
        }
        struct resolving {
            std::mutex mutex;
            std::size_t remaining;
            std::vector<net::endpoint> found;
        };
        auto state = std::make_shared<resolving>();
        state->remaining = names.size();
        std::weak_ptr<impl> weak = weak_from_this();
        for (const auto& name : names) {
            net::async_resolve(executor, name, [weak, state, name](detailed_result<std::vector<net::endpoint>> r) {
                auto self = weak.lock();
                if (!self) return;
                std::vector<net::endpoint> all;
                {
                    std::lock_guard lock(state->mutex);
                    if (r) state->found.insert(state->found.end(), r->begin(), r->end());
                    if (--state->remaining != 0) {
                        if (!r) self->cfg.log.warning("membership agent: seed {}: {}", name, r.error().describe());
                        return;
                    }
                    all = std::move(state->found);
                }
                if (!r) self->cfg.log.warning("membership agent: seed {}: {}", name, r.error().describe());
                const auto me_at = self->local;
                std::erase(all, me_at);
                if (!all.empty())
                    self->driver->post([all = std::move(all)](net::protocol& p) mutable {
                        static_cast<agent_protocol&>(p).inner().join(std::move(all));
                    });
            });
        }
        schedule_join_check();
    }

    void schedule_join_check() {
        std::lock_guard lock(join_mutex);
        if (join_stopped) return;
        join_timer.expires_after(join_backoff);
        join_backoff = std::min(join_backoff * 2, cfg.membership.join_retry_max);
        std::weak_ptr<impl> weak = weak_from_this();
        join_timer.async_wait([weak](boost::system::error_code ec) {
            if (ec) return;
            auto self = weak.lock();
            if (!self) return;
            // Whether anyone answered is known on the strand only.
            self->driver->post([raw = self.get()](net::protocol& p) {
                const bool alone = static_cast<agent_protocol&>(p).inner().live_count() <= 1;
                if (alone) {
                    boost::asio::post(raw->executor, [weak = raw->weak_from_this()] {
                        if (auto s = weak.lock()) s->attempt_join();
                    });
                } else {
                    std::lock_guard l(raw->join_mutex);
                    raw->join_running = false;
                }
            });
        });
    }

    // --- GPU telemetry --------------------------------------------------------------------------------------
    void schedule_gpu_sample(duration after) {
        std::lock_guard lock(gpu_mutex);
        if (gpu_stopped) return;
        gpu_timer.expires_after(after);
        gpu_timer.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
            if (ec) return;
            if (auto self = weak.lock()) self->sample_gpus();
        });
    }

    // On the executor, not the strand: a provider may take milliseconds, and probes must not wait for it.
    void sample_gpus() {
        std::vector<gpu> now;
        try {
            now = gpus->sample();
        } catch (const std::exception& ex) {
            cfg.log.error("membership agent: the GPU provider threw: {}", ex.what());
        } catch (...) {
            cfg.log.error("membership agent: the GPU provider threw");
        }
        driver->post([raw = this, now = std::move(now)](net::protocol& p) mutable {
            raw->apply_gpus(static_cast<agent_protocol&>(p).inner(), std::move(now));
        });
        schedule_gpu_sample(cfg.gpu_telemetry.interval);
    }

    // On the strand. Compared with what was published, not with the last sample, so slow drift adds up.
    void apply_gpus(swim& s, std::vector<gpu> now) {
        if (!significant_change(gpus_published, now, cfg.gpu_telemetry)) return;
        if (auto r = s.set_metadata(with_gpus(host_meta, now)); !r) {
            // Retried at each sample; said once, not at every interval.
            if (!gpu_publish_failing)
                cfg.log.warning("membership agent: GPU metadata not published: {}", r.error().message());
            gpu_publish_failing = true;
            return;
        }
        gpu_publish_failing = false;
        cfg.log.debug("membership agent: published figures for {} GPUs", now.size());
        gpus_published = std::move(now);
    }

    void cancel_gpu_telemetry() {
        std::lock_guard lock(gpu_mutex);
        gpu_stopped = true;
        gpu_timer.cancel();
    }

    void cancel_join() {
        std::lock_guard lock(join_mutex);
        join_stopped = true;
        join_timer.cancel();
        join_running = false;
    }

    bool stop_driver(bool silent) {
        cancel_join();
        cancel_gpu_telemetry();
        if (on_strand_of == this) {
            // From a subscriber: the strand is ours, so act now; stop_and_wait cannot wait here anyway.
            if (proto != nullptr) {
                if (silent) proto->silence();
                refresh_metrics(proto->inner());
            }
            driver->stop();
            return false;
        }
        if (silent) driver->post([](net::protocol& p) { static_cast<agent_protocol&>(p).silence(); });
        // Keep the last snapshot renderable after the protocol is gone.
        driver->post([this](net::protocol& p) { refresh_metrics(static_cast<agent_protocol&>(p).inner()); });
        return driver->stop_and_wait();
    }
};

// --- agent -------------------------------------------------------------------------------------------------

agent::agent(std::unique_ptr<runtime> owned, std::shared_ptr<impl> p) noexcept
    : runtime_(std::move(owned)), impl_(std::move(p)) {}

agent::agent(agent&& other) noexcept
    : runtime_(std::move(other.runtime_)), impl_(std::move(other.impl_)) {}

agent& agent::operator=(agent&& other) noexcept {
    if (this != &other) {
        release();
        runtime_ = std::move(other.runtime_);
        impl_ = std::move(other.impl_);
    }
    return *this;
}

agent::~agent() { release(); }

void agent::release() noexcept {
    if (impl_) {
        impl_->stop_driver(false);
        impl_.reset();
    }
    runtime_.reset();
}

detailed_result<agent> agent::create(agent_config cfg, unsigned threads) {
    auto rt = std::make_unique<runtime>(threads);
    auto made = create(rt->get_executor(), std::move(cfg));
    if (!made) return made.error();
    made->runtime_ = std::move(rt);
    return std::move(*made);
}

detailed_result<agent> agent::create(boost::asio::any_io_executor executor, agent_config cfg) {
    if (!executor) return error(errc::invalid_argument, "membership agent: an executor is required");
    if (auto v = cfg.validate(); !v) return v.error();
    if (!cfg.driver.log.sink) cfg.driver.log = cfg.log;

    auto loaded = identity::load_or_create(cfg.identity_file);
    if (!loaded) return loaded.error();
    auto self = std::make_shared<const identity>(std::move(*loaded));

    seal::keyring keys;
    for (std::size_t i = 0; i < cfg.cluster_keys.size(); ++i) {
        auto key = parse_cluster_key(cfg.cluster_keys[i]);
        auto added = keys.add(*key);
        sodium_memzero(key->data(), key->size());
        if (!added)
            return error(added.error(), fmt::format("cluster_keys[{}]: {}", i, added.error() == errc::already_exists
                                                                                   ? "the same key appears twice"
                                                                                   : added.error().message()));
    }

    auto p = std::make_shared<impl>(executor, std::move(cfg), self, keys);
    auto* raw = p.get();
    auto driver = net::socket_driver::create(
        executor, raw->cfg.driver, [raw](net::transport& t) -> std::unique_ptr<net::protocol> {
            auto proto = std::make_unique<agent_protocol>(
                [raw] { raw->dispatch_pending(); }, t, raw->me, raw->keys, raw->cfg.membership, [raw](const event& e) { raw->on_event(e); },
                std::shared_ptr<signature_cache>{}, wall_clock_microseconds());
            raw->proto = proto.get();
            return proto;
        });
    if (!driver) return driver.error();
    p->driver.emplace(std::move(*driver));
    p->local = p->driver->local_endpoint();
    if (p->driver->stopped()) return error(errc::shut_down, "membership agent: the protocol failed to start (see the log)");
    p->cfg.log.info("membership agent: node {} at {}", self->id().short_string(), p->local.to_string());
    p->start_join(p->cfg.seeds);
    if (p->cfg.gpu_telemetry.enabled) {
        if (p->cfg.gpu_source) {
            p->gpus = p->cfg.gpu_source;
        } else if (auto nvml = std::make_shared<nvml_provider>(p->cfg.gpu_telemetry.nvml_library, p->cfg.log);
                   nvml->available()) {
            p->gpus = std::move(nvml);
        }
        if (p->gpus) p->schedule_gpu_sample(duration::zero());
    }
    return agent(nullptr, std::move(p));
}

const node_id& agent::id() const noexcept {
    static const node_id none{};
    return impl_ ? impl_->me->id() : none;
}

net::endpoint agent::local_endpoint() const noexcept { return impl_ ? impl_->local : net::endpoint{}; }

void agent::join(std::vector<std::string> seeds) {
    if (impl_) impl_->start_join(std::move(seeds));
}

result<void> agent::set_metadata(const metadata& meta) {
    if (!impl_) return make_error_code(errc::shut_down);
    auto r = impl_->call<result<void>>([meta, d = impl_.get()](swim& s) {
        auto published = s.set_metadata(with_gpus(meta, d->gpus_published));
        if (published) d->host_meta = meta;
        return published;
    });
    if (!r) return r.error();
    return *r;
}

bool agent::leave() {
    if (!impl_) return true;
    auto& d = *impl_;
    if (on_strand_of == impl_.get()) {
        // Cannot wait on the strand we hold: announce now, stop without the drain.
        if (d.proto) d.proto->inner().leave();
        return d.stop_driver(false);
    }
    auto said = d.call<bool>([](swim& s) {
        s.leave();
        return true;
    });
    if (said) std::this_thread::sleep_for(d.cfg.leave_drain);
    return d.stop_driver(false) && said.has_value();
}

bool agent::stop() { return impl_ ? impl_->stop_driver(false) : true; }

bool agent::halt() { return impl_ ? impl_->stop_driver(true) : true; }

bool agent::stopped() const noexcept { return !impl_ || impl_->driver->stopped(); }

result<seal::key_id> agent::install_key(std::string_view text) {
    auto key = parse_cluster_key(text);
    if (!key) return key.error().code;
    auto r = install_key(*key);
    sodium_memzero(key->data(), key->size());
    return r;
}

result<seal::key_id> agent::install_key(std::span<const std::byte> key) {
    if (!impl_) return make_error_code(errc::shut_down);
    return impl_->keys.add(key);
}

result<void> agent::use_key(seal::key_id id) {
    if (!impl_) return make_error_code(errc::shut_down);
    return impl_->keys.make_primary(id);
}

result<void> agent::use_key(std::string_view text) {
    auto key = parse_cluster_key(text);
    if (!key) return key.error().code;
    const auto id = seal::id_of(std::span<const std::byte, seal::key_size>(key->data(), seal::key_size));
    sodium_memzero(key->data(), key->size());
    return use_key(id);
}

result<void> agent::remove_key(seal::key_id id) {
    if (!impl_) return make_error_code(errc::shut_down);
    return impl_->keys.remove(id);
}

result<void> agent::remove_key(std::string_view text) {
    auto key = parse_cluster_key(text);
    if (!key) return key.error().code;
    const auto id = seal::id_of(std::span<const std::byte, seal::key_size>(key->data(), seal::key_size));
    sodium_memzero(key->data(), key->size());
    return remove_key(id);
}

std::vector<seal::key_id> agent::key_ids() const { return impl_ ? impl_->keys.ids() : std::vector<seal::key_id>{}; }

result<std::vector<member>> agent::members() const {
    if (!impl_) return make_error_code(errc::shut_down);
    return impl_->call<std::vector<member>>([](swim& s) { return s.members(); });
}

result<std::optional<member>> agent::find(const node_id& id) const {
    if (!impl_) return make_error_code(errc::shut_down);
    return impl_->call<std::optional<member>>([id](swim& s) { return s.find(id); });
}

result<statistics> agent::stats() const {
    if (!impl_) return make_error_code(errc::shut_down);
    return impl_->call<statistics>([](swim& s) { return s.stats(); });
}

std::string agent::metrics_text() const {
    if (!impl_) return {};
    auto* d = impl_.get();
    (void)d->call<bool>([d](swim& s) {
        d->refresh_metrics(s);
        return true;
    });
    return d->registry.render();
}

agent::subscription agent::subscribe(event_callback callback) {
    if (!impl_ || !callback) return 0;
    std::lock_guard lock(impl_->events_mutex);
    const auto id = impl_->next_subscription++;
    impl_->subscribers.emplace_back(id, std::make_shared<event_callback>(std::move(callback)));
    return id;
}

void agent::unsubscribe(subscription id) {
    if (!impl_) return;
    std::lock_guard lock(impl_->events_mutex);
    std::erase_if(impl_->subscribers, [id](const auto& s) { return s.first == id; });
}

std::size_t agent::poll(std::vector<event>& out, std::size_t max) {
    if (!impl_) return 0;
    std::lock_guard lock(impl_->events_mutex);
    const auto n = std::min(max, impl_->queue.size());
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(std::move(impl_->queue.front()));
        impl_->queue.pop_front();
    }
    return n;
}

void agent::set_notify(std::function<void()> notify) {
    if (!impl_) return;
    std::lock_guard lock(impl_->events_mutex);
    impl_->notify = std::move(notify);
}

std::uint64_t agent::events_dropped() const noexcept {
    return impl_ ? impl_->dropped_total.load(std::memory_order_relaxed) : 0;
}

} // namespace swarm::inline v0::membership
