// Metrics: counters, gauges and fixed-bucket histograms, optionally labelled, rendered in the Prometheus text
// exposition format (version 0.0.4).
//
//     swarm::metrics::registry reg;
//     auto refused = reg.add_counter_family("swarm_membership_packets_refused_total",
//                                           "Packets dropped before processing", {"reason"}).value();
//     auto& wrong_key = refused->labels({"wrong_key"});  // look up once, keep the reference
//     wrong_key.inc();                                    // hot path: one relaxed atomic add
//     std::string text = reg.render();
//
// Names follow swarm_<component>_<name>_<unit>[_total]. Increments are lock-free; creating a labelled child
// and rendering take a mutex. Numbers are written with std::to_chars, so the output ignores the locale.
#pragma once

#include <swarm/core/clock.hpp>
#include <swarm/core/error.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::inline v0::metrics {

/// A count that only goes up.
class counter {
public:
    void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

/// A value that goes up and down.
class gauge {
public:
    void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
    void inc(double d = 1) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
    void dec(double d = 1) noexcept { value_.fetch_sub(d, std::memory_order_relaxed); }
    double value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> value_{0};
};

/// Observations counted into buckets with fixed upper bounds (inclusive), plus their sum.
class histogram {
public:
    /// `bounds` strictly increasing and finite (registry checks this); a +Inf bucket is always added.
    explicit histogram(std::span<const double> bounds);

    void observe(double value) noexcept;
    /// Durations are observed in seconds, the Prometheus base unit.
    void observe(duration d) noexcept { observe(std::chrono::duration<double>(d).count()); }

    struct snapshot {
        std::vector<double> bounds;
        std::vector<std::uint64_t> cumulative; // one per bound, then +Inf (which equals count)
        double sum = 0;
        std::uint64_t count = 0;
    };
    /// A copy of the counts; consistent per bucket, and count always equals the +Inf bucket.
    snapshot collect() const;

private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_; // per bucket, not cumulative: one add per observe
    std::atomic<double> sum_{0};
};

/// `count` bounds: start, start + width, ...
std::vector<double> linear_buckets(double start, double width, std::size_t count);
/// `count` bounds: start, start * factor, ...
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);

namespace detail {
struct label_values_less {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
        return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                            [](std::string_view x, std::string_view y) { return x < y; });
    }
};
} // namespace detail

/// Metrics of one name and type, one child per combination of label values. Owned by a registry.
template <class M>
class family {
public:
    /// The child for these label values, one per label name and in the same order; created on first use
    /// and valid as long as the registry. Takes a lock: look it up once and keep the reference.
    /// Passing the wrong number of values is a programming error (a contract violation).
    M& labels(std::span<const std::string_view> values);
    M& labels(std::initializer_list<std::string_view> values) { return labels(std::span(values.begin(), values.size())); }

    const std::string& name() const noexcept { return name_; }
    const std::vector<std::string>& label_names() const noexcept { return label_names_; }

    family(const family&) = delete;
    family& operator=(const family&) = delete;

private:
    friend class registry;
    family(std::string name, std::string help, std::vector<std::string> label_names, std::vector<double> bounds);
    void render(std::string& out) const;

    std::string name_;
    std::string help_;
    std::vector<std::string> label_names_;
    std::vector<double> bounds_; // histograms only
    mutable std::mutex mutex_;
    std::map<std::vector<std::string>, std::unique_ptr<M>, detail::label_values_less> children_;
};

extern template class family<counter>;
extern template class family<gauge>;
extern template class family<histogram>;

/// Owns metric families and renders them. Registration is idempotent: registering the same name with the
/// same type, help, labels and buckets returns the existing family. Errors (errc::invalid_argument, or
/// errc::already_exists for a conflicting definition) name the metric and the rule it breaks.
/// Returned pointers stay valid for the registry's lifetime, moves included.
class registry {
public:
    registry();
    registry(registry&&) noexcept;
    registry& operator=(registry&&) noexcept;
    ~registry();

    detailed_result<family<counter>*> add_counter_family(std::string_view name, std::string_view help,
                                                         std::vector<std::string> label_names);
    detailed_result<family<gauge>*> add_gauge_family(std::string_view name, std::string_view help,
                                                     std::vector<std::string> label_names);
    detailed_result<family<histogram>*> add_histogram_family(std::string_view name, std::string_view help,
                                                             std::vector<double> bounds,
                                                             std::vector<std::string> label_names);

    /// Unlabelled metrics: a family with no labels and its one child.
    detailed_result<counter*> add_counter(std::string_view name, std::string_view help);
    detailed_result<gauge*> add_gauge(std::string_view name, std::string_view help);
    detailed_result<histogram*> add_histogram(std::string_view name, std::string_view help,
                                              std::vector<double> bounds);

    /// Every family, sorted by name, in the Prometheus text format (Content-Type
    /// "text/plain; version=0.0.4"). Labelled children appear sorted by their label values.
    std::string render() const;

private:
    template <class M>
    detailed_result<family<M>*> add_family(std::string_view name, std::string_view help,
                                           std::vector<std::string> label_names, std::vector<double> bounds);

    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace swarm::inline v0::metrics
