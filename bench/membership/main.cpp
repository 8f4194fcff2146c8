// Membership at scale under the simulator, three profiles side by side: swarm's defaults, memberlist's LAN
// defaults, and plain SWIM (no Lifeguard). Every node runs the real protocol with sealing and signatures on.
//
// One cluster per (profile, seed) goes through the phases below in order, each measured on its own:
//   bootstrap    N nodes start together and join through node 0: virtual seconds until every node sees N.
//   steady       a quiet window after --settle-seconds: bytes sent per member per second (sealed datagrams and
//                stream frames, from the protocol's counters): mean, p99 and max over members; wall and CPU
//                seconds per simulated hour.
//   loss         uniform loss of 1, 5, 10, 20% for --loss-minutes each: "failed" events about healthy members,
//                suspicions per member per minute, grey-rule removals.
//   crash        --crashes nodes crash together: seconds until 99% and 100% of the running nodes declare each
//                one dead (one sample per crashed node).
//   grey         1% of the nodes (at least one) lose 80% of their packets both ways: seconds until every healthy
//                node has removed all of them, healthy members declared dead, and the most distinct view sizes
//                any healthy node went through. The grey nodes are then crashed.
//   udp_blocked  1% of the nodes with datagrams blocked both ways, streams open, for --flap-minutes: "failed"
//                events about them and about healthy members.
//   flap         1% of the nodes lose all ingress for 20 s, then have it for 20 s, for --flap-minutes: "failed"
//                events per observer per flapper, healthy members declared dead, seconds to one view after.
//   slow         the slow-node matrix: C members stalled D s every I s for --slow-minutes, for (C, D, I) in
//                (1, 2, 10), (N/100, 5, 30), (N/10, 1, 10): "failed" events about the slow and about the healthy.
//   rotation     a new key installed node by node over 10 s, made primary over 10 s, the old one removed over
//                10 s: seconds until one view with the new key only, packets refused, healthy declared dead.
//   partition    50/50 (nodes [0, N/2) against the rest) and one-versus-rest, for 1 minute and for
//                --partition-minutes, each healed: seconds until every running node sees every running node.
// Output: CSV rows `profile,seed,nodes,metric,value`; rows with seed "all" summarise the per-seed samples
// (p50/p99/p99.9 of the crash times, the mean of the rest). A value of -1 means "not within the bound".
//
// Usage: swarm_bench_membership [--nodes N] [--seeds S] [--first-seed K] [--scenario all|bootstrap|steady|
//        loss|crash|grey|udp_blocked|flap|slow|rotation|partition, or several joined by commas]
//        [--profile all|swarm|memberlist|plain] [--steady-seconds T] [--settle-seconds T] [--loss-minutes M]
//        [--partition-minutes P] [--crashes C] [--slow-minutes M] [--flap-minutes M] [--grey-accusers K]
// Bootstrap is always measured (every phase needs a formed cluster); then --settle-seconds (120) pass before
// the steady window, so join gossip has drained.
#include <swarm/membership/swim.hpp>
#include <swarm/sim/network.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace sim = swarm::sim;
namespace ms = swarm::membership;

constexpr std::uint16_t port = 7946;

struct options {
    std::size_t nodes = 200;
    std::uint64_t seeds = 3;
    std::uint64_t first_seed = 1;
    std::string scenario = "all";
    std::string profile = "all";
    double steady_seconds = 60;
    double settle_seconds = 120;
    double loss_minutes = 2;
    double partition_minutes = 10;
    std::size_t crashes = 3;
    double slow_minutes = 2;
    double flap_minutes = 2;
    /// Overrides swarm's config::grey_accusers when set (0 turns the grey-failure rule off).
    std::optional<unsigned> grey_accusers;
};

double seconds(swarm::duration d) { return std::chrono::duration<double>(d).count(); }

/// One cluster under the simulator, with what the benchmark watches: every "failed" event (observer,
/// subject, time) and every node's view size as its events change it.
class cluster {
public:
    cluster(std::uint64_t seed, std::size_t n, const ms::config& cfg) : net_(make_network(seed)) {
        view_.assign(n, 1);
        sizes_.resize(n);
        for (std::size_t i = 0; i < n; ++i) add(seed, cfg);
    }

    sim::network& net() { return net_; }
    std::size_t size() const { return ids_.size(); }
    ms::swim* at(sim::node_id n) { return net_.protocol_of<ms::swim>(n, port); }
    bool running(sim::node_id n) const { return net_.state(n) == sim::node_state::running; }

    std::size_t running_count() const {
        std::size_t c = 0;
        for (sim::node_id n = 0; n < ids_.size(); ++n) c += running(n) ? 1 : 0;
        return c;
    }

    /// Every running node sees exactly `expected` live members.
    bool all_see(std::size_t expected) {
        for (sim::node_id n = 0; n < ids_.size(); ++n)
            if (running(n) && at(n)->live_count() != expected) return false;
        return true;
    }

    /// Runs in steps of `step` until `done()` or `limit` has passed; the time taken, or -1.
    double run_until(const std::function<bool()>& done, swarm::duration limit, swarm::duration step = 100ms) {
        const auto start = net_.now();
        while (net_.now() - start < limit) {
            if (done()) return seconds(net_.now() - start);
            net_.run_for(step);
        }
        return done() ? seconds(net_.now() - start) : -1;
    }

    struct failure {
        swarm::time_point at;
        sim::node_id observer;
        sim::node_id subject;
    };
    const std::vector<failure>& failures() const { return failures_; }
    std::optional<sim::node_id> index_of(const swarm::node_id& id) const {
        auto it = index_.find(id);
        if (it == index_.end()) return std::nullopt;
        return it->second;
    }

    static std::array<std::byte, 32> old_key() {
        std::array<std::byte, 32> key{};
        key.fill(std::byte{0x42});
        return key;
    }
    static std::array<std::byte, 32> new_key() {
        std::array<std::byte, 32> key{};
        key.fill(std::byte{0x17});
        return key;
    }
    swarm::seal::keyring& ring(sim::node_id n) { return rings_[n]; }

    /// Protocol counters summed over the running nodes.
    ms::statistics totals() {
        ms::statistics t;
        for (sim::node_id n = 0; n < ids_.size(); ++n) {
            if (!running(n)) continue;
            const auto& s = at(n)->stats();
            t.suspicions += s.suspicions;
            t.refutations += s.refutations;
            t.removals += s.removals;
            t.tcp_probes += s.tcp_probes;
            t.probes_failed += s.probes_failed;
            for (std::size_t k = 0; k < t.refused.size(); ++k) t.refused[k] += s.refused[k];
        }
        return t;
    }

    /// From now on, remember each node's distinct view sizes (starting with the current one).
    void track_view_sizes() {
        tracking_ = true;
        for (std::size_t n = 0; n < sizes_.size(); ++n) sizes_[n] = {view_[n]};
    }
    std::size_t distinct_sizes(sim::node_id n) const { return sizes_[n].size(); }

private:
    static sim::network make_network(std::uint64_t seed) {
        sim::network_config c;
        c.seed = seed;
        // The membership tests' link: 1 ms +- 0.2 ms, a LAN.
        c.default_link.latency = 1ms;
        c.default_link.jitter = 200us;
        c.default_link.distribution = sim::latency_distribution::uniform;
        return std::move(sim::network::create(c).value());
    }

    void add(std::uint64_t seed, ms::config cfg) {
        const auto node = net_.add_node();
        std::array<std::byte, 32> bytes{};
        for (std::size_t i = 0; i < 8; ++i) {
            bytes[i] = static_cast<std::byte>(seed >> (8 * i));
            bytes[8 + i] = static_cast<std::byte>(std::uint64_t{node} >> (8 * i));
        }
        auto id = std::make_shared<const swarm::identity>(swarm::identity::from_seed(bytes));
        index_.emplace(id->id(), node);
        ids_.push_back(id);
        if (node != 0) cfg.seeds = {net_.endpoint_of(0, port)};
        // A keyring per node (copies of a ring share it), so a key rotation can reach nodes one at a time.
        swarm::seal::keyring ring;
        (void)ring.add(old_key());
        rings_.push_back(ring);
        auto result = net_.add_protocol(node, port, [this, id, cfg, node, ring](swarm::net::transport& t) {
            return std::make_unique<ms::swim>(
                t, id, ring, cfg, [this, node](const ms::event& e) { on_event(node, e); }, cache_);
        });
        if (!result) {
            fmt::print(stderr, "cannot add node: {}\n", result.error().describe());
            std::exit(1);
        }
    }

    void on_event(sim::node_id observer, const ms::event& e) {
        switch (e.kind) {
        case ms::event_kind::joined:
        case ms::event_kind::rejoined: ++view_[observer]; break;
        case ms::event_kind::failed:
            --view_[observer];
            if (auto subject = index_of(e.subject.id)) failures_.push_back({net_.now(), observer, *subject});
            break;
        case ms::event_kind::left: --view_[observer]; break;
        default: return;
        }
        if (tracking_) sizes_[observer].insert(view_[observer]);
    }

    sim::network net_;
    std::vector<swarm::seal::keyring> rings_;
    std::shared_ptr<ms::signature_cache> cache_ = std::make_shared<ms::signature_cache>(1 << 20);
    std::vector<std::shared_ptr<const swarm::identity>> ids_;
    std::unordered_map<swarm::node_id, sim::node_id> index_;
    std::vector<failure> failures_;
    std::vector<std::size_t> view_;
    std::vector<std::set<std::size_t>> sizes_;
    bool tracking_ = false;
};

/// `count` distinct running nodes other than node 0 (everyone's seed), spread over the id range by `seed`.
/// Running only: an earlier phase may have crashed some, and an impairment of a crashed node measures nothing.
std::vector<sim::node_id> spread(cluster& c, std::size_t count, std::uint64_t seed) {
    std::vector<sim::node_id> candidates;
    for (sim::node_id i = 1; i < c.size(); ++i)
        if (c.running(i)) candidates.push_back(i);
    std::vector<sim::node_id> out;
    if (candidates.empty()) return out;
    const std::size_t stride = std::max<std::size_t>(1, candidates.size() / std::max<std::size_t>(count, 1));
    for (std::size_t k = 0; k < count && k < candidates.size(); ++k)
        out.push_back(candidates[(seed * 7919 + k * stride) % candidates.size()]);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return -1;
    std::sort(v.begin(), v.end());
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank > 0 ? rank - 1 : 0)];
}

struct sink {
    std::string profile;
    std::size_t nodes;
    std::map<std::string, std::vector<double>> samples; // metric -> per-seed or per-crash values

    void row(std::uint64_t seed, const std::string& metric, double value) {
        fmt::print("{},{},{},{},{:.3f}\n", profile, seed, nodes, metric, value);
        std::fflush(stdout);
        samples[metric].push_back(value);
    }

    void summary() {
        for (const auto& [metric, values] : samples) {
            const bool censored = std::any_of(values.begin(), values.end(), [](double v) { return v < 0; });
            auto out = [&](const std::string& name, double v) {
                fmt::print("{},all,{},{},{:.3f}\n", profile, nodes, name, censored ? -1.0 : v);
            };
            if (metric.starts_with("crash_")) {
                out(metric + "_p50", percentile(values, 0.50));
                out(metric + "_p99", percentile(values, 0.99));
                out(metric + "_p999", percentile(values, 0.999));
            } else if (metric.find("_max") != std::string::npos) {
                out(metric, *std::max_element(values.begin(), values.end()));
            } else {
                double sum = 0;
                for (double v : values) sum += v;
                out(metric + "_mean", sum / static_cast<double>(values.size()));
            }
        }
        std::fflush(stdout);
    }
};

void run_one(const options& o, const ms::config& cfg, std::uint64_t seed, sink& out) {
    auto want = [&](std::string_view s) {
        return o.scenario == "all" || fmt::format(",{},", o.scenario).find(fmt::format(",{},", s)) != std::string::npos;
    };
    cluster c(seed, o.nodes, cfg);
    auto& net = c.net();
    const auto n = o.nodes;

    // bootstrap
    const double boot = c.run_until([&] { return c.all_see(n); }, 300s);
    out.row(seed, "bootstrap_all_see_n_s", boot);
    if (boot < 0) return; // nothing further is meaningful on a cluster that never formed
    // Let joining traffic (gossip queues full of join claims) drain out of the steady-state window.
    net.run_for(std::chrono::duration_cast<swarm::duration>(std::chrono::duration<double>(o.settle_seconds)));

    // steady
    {
        std::vector<std::uint64_t> before(n);
        std::uint64_t packets = 0;
        for (sim::node_id i = 0; i < n; ++i) {
            before[i] = c.at(i)->stats().bytes_sent;
            packets -= c.at(i)->stats().packets_sent;
        }
        const auto wall_start = std::chrono::steady_clock::now();
        const auto cpu_start = std::clock();
        const auto window = std::chrono::duration_cast<swarm::duration>(std::chrono::duration<double>(o.steady_seconds));
        net.run_for(window);
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
        // CPU time too: on a shared VM, wall time moves with the other tenants' load.
        const double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
        std::vector<double> rate(n);
        for (sim::node_id i = 0; i < n; ++i) {
            rate[i] = static_cast<double>(c.at(i)->stats().bytes_sent - before[i]) / o.steady_seconds;
            packets += c.at(i)->stats().packets_sent;
        }
        if (want("steady")) {
            double sum = 0;
            for (double r : rate) sum += r;
            out.row(seed, "bytes_per_s_per_member_mean", sum / static_cast<double>(n));
            out.row(seed, "bytes_per_s_per_member_p99", percentile(rate, 0.99));
            out.row(seed, "bytes_per_s_per_member_max", *std::max_element(rate.begin(), rate.end()));
            out.row(seed, "packets_per_s_per_member",
                    static_cast<double>(packets) / static_cast<double>(n) / o.steady_seconds);
            out.row(seed, "wall_s_per_sim_hour", wall / o.steady_seconds * 3600);
            out.row(seed, "cpu_s_per_sim_hour", cpu / o.steady_seconds * 3600);
        }
    }

    // loss
    if (want("loss")) {
        const auto loss_window = std::chrono::duration_cast<swarm::duration>(std::chrono::duration<double>(o.loss_minutes * 60));
        for (double loss : {0.01, 0.05, 0.10, 0.20}) {
            const auto mark = c.failures().size();
            const auto before = c.totals();
            auto link = net.default_link();
            link.loss = loss;
            (void)net.set_default_link(link);
            net.run_for(loss_window);
            link.loss = 0;
            (void)net.set_default_link(link);
            const auto pct = static_cast<int>(std::lround(loss * 100));
            const auto after = c.totals();
            out.row(seed, fmt::format("false_dead_loss_{}pct", pct), static_cast<double>(c.failures().size() - mark));
            out.row(seed, fmt::format("suspicions_per_member_min_loss_{}pct", pct),
                    static_cast<double>(after.suspicions - before.suspicions) / static_cast<double>(n) / o.loss_minutes);
            out.row(seed, fmt::format("removals_loss_{}pct", pct), static_cast<double>(after.removals - before.removals));
            // Back to one view before the next level, so each level starts from the same place.
            c.run_until([&] { return c.all_see(c.running_count()); }, 120s);
        }
    }

    // crash
    if (want("crash")) {
        std::vector<sim::node_id> crashed;
        // Spread over the id range by the seed; never node 0, the seed everyone joined through.
        for (std::size_t k = 0; k < o.crashes && k + 1 < n; ++k)
            crashed.push_back(static_cast<sim::node_id>(1 + (seed * 7919 + k * (n / (o.crashes + 1) + 1)) % (n - 1)));
        std::sort(crashed.begin(), crashed.end());
        crashed.erase(std::unique(crashed.begin(), crashed.end()), crashed.end());
        const auto mark = c.failures().size();
        const auto at = net.now();
        for (auto k : crashed) (void)net.crash(k);
        const std::size_t observers = c.running_count();
        c.run_until([&] { return c.all_see(observers); }, 60s);
        net.run_for(1s);
        for (auto k : crashed) {
            std::vector<double> seen;
            std::set<sim::node_id> counted;
            for (std::size_t i = mark; i < c.failures().size(); ++i) {
                const auto& f = c.failures()[i];
                if (f.subject == k && c.running(f.observer) && counted.insert(f.observer).second)
                    seen.push_back(seconds(f.at - at));
            }
            std::sort(seen.begin(), seen.end());
            const auto need99 = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(observers)));
            out.row(seed, "crash_to_dead_99pct_s", seen.size() >= need99 ? seen[need99 - 1] : -1);
            out.row(seed, "crash_to_dead_100pct_s", seen.size() >= observers ? seen[observers - 1] : -1);
        }
    }

    // grey
    if (want("grey")) {
        const std::size_t count = std::max<std::size_t>(1, n / 100);
        // Spread over the running nodes other than node 0 (the crash phase may have taken some out).
        std::vector<sim::node_id> candidates;
        for (sim::node_id i = 1; i < n; ++i)
            if (c.running(i)) candidates.push_back(i);
        std::vector<sim::node_id> grey;
        for (std::size_t k = 0; k < count && k < candidates.size(); ++k)
            grey.push_back(candidates[k * candidates.size() / count]);
        std::set<sim::node_id> grey_set(grey.begin(), grey.end());
        auto lossy = net.default_link();
        lossy.loss = 0.8;
        // Group links apply only between nodes that are both in a group: everyone goes in group 0 first.
        for (sim::node_id i = 0; i < n; ++i) (void)net.set_group(i, 0);
        for (auto g : grey) (void)net.set_group(g, 1);
        (void)net.set_group_link(1, 0, lossy);
        (void)net.set_group_link(0, 1, lossy);
        (void)net.set_group_link(1, 1, lossy);
        c.track_view_sizes();
        const auto mark = c.failures().size();
        auto removed = [&] {
            for (sim::node_id i = 0; i < n; ++i) {
                if (!c.running(i) || grey_set.contains(i)) continue;
                for (auto g : grey)
                    if (auto m = c.at(i)->find(c.at(g)->id()); m && (m->state == ms::member_state::alive ||
                                                                      m->state == ms::member_state::suspect))
                        return false;
            }
            return true;
        };
        out.row(seed, "grey_removed_s", c.run_until(removed, 120s));
        net.run_for(30s);
        std::size_t false_dead = 0;
        for (std::size_t i = mark; i < c.failures().size(); ++i) {
            const auto& f = c.failures()[i];
            if (!grey_set.contains(f.subject) && !grey_set.contains(f.observer) && c.running(f.subject)) ++false_dead;
        }
        std::size_t most = 0;
        for (sim::node_id i = 0; i < n; ++i)
            if (c.running(i) && !grey_set.contains(i)) most = std::max(most, c.distinct_sizes(i));
        out.row(seed, "grey_false_dead", static_cast<double>(false_dead));
        out.row(seed, "grey_view_sizes_max", static_cast<double>(most));
        // The grey nodes are taken out, as an operator would, so the partition phase starts clean.
        for (auto g : grey) (void)net.crash(g);
        c.run_until([&] { return c.all_see(c.running_count()); }, 120s);
    }

    // grey-adjacent: 1% of the nodes with datagrams blocked both ways, streams working (a UDP firewall)
    if (want("udp_blocked")) {
        const auto blocked = spread(c, std::max<std::size_t>(1, n / 100), seed);
        auto link = net.default_link();
        link.block_datagrams = true;
        for (sim::node_id i = 0; i < n; ++i) (void)net.set_group(i, 0);
        for (auto b : blocked) (void)net.set_group(b, 2);
        (void)net.set_group_link(2, 0, link);
        (void)net.set_group_link(0, 2, link);
        (void)net.set_group_link(2, 2, link);
        const auto mark = c.failures().size();
        net.run_for(std::chrono::duration_cast<swarm::duration>(std::chrono::duration<double>(o.flap_minutes * 60)));
        std::size_t of_blocked = 0, of_healthy = 0;
        std::set<sim::node_id> set(blocked.begin(), blocked.end());
        for (std::size_t i = mark; i < c.failures().size(); ++i)
            {
                const auto& f = c.failures()[i];
                // What the impaired nodes themselves conclude about others is not a false death of those.
                if (set.contains(f.subject)) ++of_blocked;
                else if (!set.contains(f.observer) && c.running(f.subject)) ++of_healthy;
            }
        out.row(seed, "udp_blocked_dead_events_of_blocked", static_cast<double>(of_blocked));
        out.row(seed, "udp_blocked_false_dead_healthy", static_cast<double>(of_healthy));
        for (sim::node_id i = 0; i < n; ++i) (void)net.set_group(i, 0);
        c.run_until([&] { return c.all_see(c.running_count()); }, 120s);
    }

    // flapping: 1% of the nodes lose all ingress for 20 s, then have it for 20 s, and so on
    if (want("flap")) {
        const auto flappers = spread(c, std::max<std::size_t>(1, n / 100), seed + 1);
        std::vector<sim::node_id> rest;
        std::set<sim::node_id> set(flappers.begin(), flappers.end());
        for (sim::node_id i = 0; i < n; ++i)
            if (!set.contains(i) && c.running(i)) rest.push_back(i);
        const auto mark = c.failures().size();
        const auto end = net.now() + std::chrono::duration_cast<swarm::duration>(std::chrono::duration<double>(o.flap_minutes * 60));
        while (net.now() < end) {
            const auto cut = net.partition_one_way(rest, flappers).value();
            net.run_for(20s);
            (void)net.heal(cut);
            net.run_for(20s);
        }
        std::size_t of_flappers = 0, of_healthy = 0;
        for (std::size_t i = mark; i < c.failures().size(); ++i)
            {
                const auto& f = c.failures()[i];
                // What the impaired nodes themselves conclude about others is not a false death of those.
                if (set.contains(f.subject)) ++of_flappers;
                else if (!set.contains(f.observer) && c.running(f.subject)) ++of_healthy;
            }
        out.row(seed, "flap_dead_events_per_observer_per_flapper",
                static_cast<double>(of_flappers) / static_cast<double>(rest.size() * flappers.size()));
        out.row(seed, "flap_false_dead_healthy", static_cast<double>(of_healthy));
        out.row(seed, "flap_one_view_after_s", c.run_until([&] { return c.all_see(c.running_count()); }, 120s));
    }

    // slow nodes: C members stalled for D seconds every I seconds
    if (want("slow")) {
        struct cell {
            std::size_t count;
            int stall_s;
            int every_s;
        };
        for (const cell m : {cell{1, 2, 10}, cell{std::max<std::size_t>(1, n / 100), 5, 30},
                             cell{std::max<std::size_t>(1, n / 10), 1, 10}}) {
            const auto slow = spread(c, m.count, seed + 2);
            std::set<sim::node_id> set(slow.begin(), slow.end());
            const auto mark = c.failures().size();
            const auto end = net.now() + std::chrono::duration_cast<swarm::duration>(std::chrono::duration<double>(o.slow_minutes * 60));
            while (net.now() < end) {
                for (auto k : slow) (void)net.pause(k);
                net.run_for(std::chrono::seconds(m.stall_s));
                for (auto k : slow) (void)net.resume(k);
                net.run_for(std::chrono::seconds(m.every_s - m.stall_s));
            }
            std::size_t of_slow = 0, of_healthy = 0;
            for (std::size_t i = mark; i < c.failures().size(); ++i)
                {
                const auto& f = c.failures()[i];
                // What the impaired nodes themselves conclude about others is not a false death of those.
                if (set.contains(f.subject)) ++of_slow;
                else if (!set.contains(f.observer) && c.running(f.subject)) ++of_healthy;
            }
            const auto name = fmt::format("slow_C{}_D{}s_I{}s", m.count, m.stall_s, m.every_s);
            out.row(seed, name + "_dead_events_of_slow", static_cast<double>(of_slow));
            out.row(seed, name + "_false_dead_healthy", static_cast<double>(of_healthy));
            c.run_until([&] { return c.all_see(c.running_count()); }, 120s);
        }
    }

    // key rotation across the cluster, one node at a time: install the new key everywhere, then make it
    // primary everywhere, then remove the old one; each step spread over 10 s
    if (want("rotation")) {
        const auto before = c.totals();
        const auto mark = c.failures().size();
        const auto start = net.now();
        auto step = [&](const std::function<void(swarm::seal::keyring&)>& action) {
            for (sim::node_id i = 0; i < n; ++i) {
                net.at(net.now() + 10s * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(n),
                       [&c, i, action] { action(c.ring(i)); });
            }
            net.run_for(10s);
        };
        std::optional<swarm::seal::key_id> new_id, old_id = c.ring(0).primary();
        step([&](swarm::seal::keyring& r) { new_id = r.add(cluster::new_key()).value(); });
        step([&](swarm::seal::keyring& r) { (void)r.make_primary(*new_id); });
        step([&](swarm::seal::keyring& r) { (void)r.remove(*old_id); });
        const double converged = c.run_until([&] { return c.all_see(c.running_count()); }, 60s);
        const auto after = c.totals();
        std::uint64_t refused = 0;
        for (std::size_t k = 0; k < after.refused.size(); ++k) refused += after.refused[k] - before.refused[k];
        out.row(seed, "rotation_s", converged < 0 ? -1 : seconds(net.now() - start));
        out.row(seed, "rotation_refused_packets", static_cast<double>(refused));
        out.row(seed, "rotation_false_dead", static_cast<double>(c.failures().size() - mark));
    }

    // partitions: 50/50 and one-versus-rest, 1 and 10 minutes, each healed: until every running node sees
    // every running node
    if (want("partition")) {
        for (const bool halves : {true, false}) {
            for (const double minutes : {1.0, o.partition_minutes}) {
                const auto id = halves ? net.split_halves() : net.isolate(spread(c, 1, seed + 3)[0]).value();
                net.run_for(std::chrono::duration_cast<swarm::duration>(std::chrono::duration<double>(minutes * 60)));
                (void)net.heal(id);
                const auto expected = c.running_count();
                out.row(seed, fmt::format("partition_{}_{}min_heal_to_one_view_s", halves ? "halves" : "one_vs_rest",
                                          static_cast<int>(minutes)),
                        c.run_until([&] { return c.all_see(expected); }, 300s, 250ms));
            }
        }
    }
}

bool parse(int argc, char** argv, options& o) {
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (i + 1 >= argc) return false;
        const char* v = argv[++i];
        if (a == "--nodes") o.nodes = std::strtoull(v, nullptr, 10);
        else if (a == "--seeds") o.seeds = std::strtoull(v, nullptr, 10);
        else if (a == "--first-seed") o.first_seed = std::strtoull(v, nullptr, 10);
        else if (a == "--scenario") o.scenario = v;
        else if (a == "--profile") o.profile = v;
        else if (a == "--steady-seconds") o.steady_seconds = std::strtod(v, nullptr);
        else if (a == "--settle-seconds") o.settle_seconds = std::strtod(v, nullptr);
        else if (a == "--loss-minutes") o.loss_minutes = std::strtod(v, nullptr);
        else if (a == "--partition-minutes") o.partition_minutes = std::strtod(v, nullptr);
        else if (a == "--crashes") o.crashes = std::strtoull(v, nullptr, 10);
        else if (a == "--slow-minutes") o.slow_minutes = std::strtod(v, nullptr);
        else if (a == "--flap-minutes") o.flap_minutes = std::strtod(v, nullptr);
        else if (a == "--grey-accusers") o.grey_accusers = static_cast<unsigned>(std::strtoul(v, nullptr, 10));
        else return false;
    }
    return o.nodes >= 4 && o.seeds >= 1 && o.steady_seconds > 0;
}

} // namespace

int main(int argc, char** argv) {
    options o;
    if (!parse(argc, argv, o)) {
        fmt::print(stderr, "usage: {} [--nodes N] [--seeds S] [--first-seed K] [--scenario all|bootstrap|steady|loss|"
                           "crash|grey|udp_blocked|flap|slow|rotation|partition] [--profile all|swarm|memberlist|plain] "
                           "[--steady-seconds T] [--settle-seconds T] [--loss-minutes M] [--partition-minutes P] "
                           "[--crashes C] [--slow-minutes M] [--flap-minutes M] [--grey-accusers K]\n",
                   argv[0]);
        return 2;
    }
    auto swarm = ms::config::swarm_profile();
    if (o.grey_accusers) swarm.grey_accusers = *o.grey_accusers;
    const std::vector<std::pair<std::string, ms::config>> profiles = {
        {"swarm", swarm},
        {"memberlist", ms::config::memberlist_lan()},
        {"plain", ms::config::plain_swim()},
    };
    fmt::print("profile,seed,nodes,metric,value\n");
    for (const auto& [name, cfg] : profiles) {
        if (o.profile != "all" && o.profile != name) continue;
        sink out{name, o.nodes, {}};
        for (std::uint64_t s = o.first_seed; s < o.first_seed + o.seeds; ++s) run_one(o, cfg, s, out);
        out.summary();
    }
    return 0;
}
