#include <swarm/core/metrics.hpp>

#include <gsl/assert>

#include <charconv>
#include <cmath>
#include <type_traits>
#include <variant>

namespace swarm::inline v0::metrics {
namespace {

bool name_char(char c, bool first, bool allow_colon) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
           (!first && c >= '0' && c <= '9');
}

bool valid_name(std::string_view name, bool allow_colon) noexcept {
    if (name.empty()) return false;
    for (std::size_t i = 0; i < name.size(); ++i)
        if (!name_char(name[i], i == 0, allow_colon)) return false;
    return true;
}

template <class M>
constexpr std::string_view type_name() {
    if constexpr (std::is_same_v<M, counter>) return "counter";
    else if constexpr (std::is_same_v<M, gauge>) return "gauge";
    else return "histogram";
}

void append_uint(std::string& out, std::uint64_t v) {
    char buffer[24];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
    out.append(buffer, end);
}

// Prometheus spells the special values NaN, +Inf and -Inf; everything else is the shortest exact form.
void append_double(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
    } else if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
    } else {
        char buffer[32];
        auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
        out.append(buffer, end);
    }
}

void append_help(std::string& out, std::string_view help) {
    for (char c : help) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
}

void append_label_value(std::string& out, std::string_view value) {
    for (char c : value) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
}

// {a="x",b="y",le="0.5"}; nothing at all when there are no labels.
void append_labels(std::string& out, const std::vector<std::string>& names, const std::vector<std::string>& values,
                   const std::string* le = nullptr) {
    if (names.empty() && !le) return;
    out += '{';
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i > 0) out += ',';
        out += names[i];
        out += "=\"";
        append_label_value(out, values[i]);
        out += '"';
    }
    if (le) {
        if (!names.empty()) out += ',';
        out += "le=\"";
        out += *le;
        out += '"';
    }
    out += '}';
}

} // namespace

histogram::histogram(std::span<const double> bounds)
    : bounds_(bounds.begin(), bounds.end()), counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {}

void histogram::observe(double value) noexcept {
    // Bounds are inclusive upper limits (le); NaN is above every bound.
    auto bucket = std::isnan(value) ? bounds_.size()
                                    : static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                                                               bounds_.begin());
    counts_[bucket].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
}

histogram::snapshot histogram::collect() const {
    snapshot s;
    s.bounds = bounds_;
    s.cumulative.resize(bounds_.size() + 1);
    std::uint64_t running = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        running += counts_[i].load(std::memory_order_relaxed);
        s.cumulative[i] = running;
    }
    s.count = running;
    s.sum = sum_.load(std::memory_order_relaxed);
    return s;
}

std::vector<double> linear_buckets(double start, double width, std::size_t count) {
    std::vector<double> bounds(count);
    for (std::size_t i = 0; i < count; ++i) bounds[i] = start + width * static_cast<double>(i);
    return bounds;
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count) {
    std::vector<double> bounds(count);
    double bound = start;
    for (std::size_t i = 0; i < count; ++i, bound *= factor) bounds[i] = bound;
    return bounds;
}

template <class M>
family<M>::family(std::string name, std::string help, std::vector<std::string> label_names, std::vector<double> bounds)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)), bounds_(std::move(bounds)) {}

template <class M>
M& family<M>::labels(std::span<const std::string_view> values) {
    Expects(values.size() == label_names_.size());
    std::lock_guard lock(mutex_);
    auto it = children_.find(values);
    if (it == children_.end()) {
        std::unique_ptr<M> child;
        if constexpr (std::is_same_v<M, histogram>) child = std::make_unique<histogram>(bounds_);
        else child = std::make_unique<M>();
        it = children_.emplace(std::vector<std::string>(values.begin(), values.end()), std::move(child)).first;
    }
    return *it->second;
}

template <class M>
void family<M>::render(std::string& out) const {
    out += "# HELP ";
    out += name_;
    if (!help_.empty()) {
        out += ' ';
        append_help(out, help_);
    }
    out += "\n# TYPE ";
    out += name_;
    out += ' ';
    out += type_name<M>();
    out += '\n';
    std::lock_guard lock(mutex_);
    for (const auto& [values, child] : children_) {
        if constexpr (std::is_same_v<M, histogram>) {
            auto s = child->collect();
            std::string le;
            for (std::size_t i = 0; i <= s.bounds.size(); ++i) {
                le.clear();
                if (i < s.bounds.size()) append_double(le, s.bounds[i]);
                else le = "+Inf";
                out += name_;
                out += "_bucket";
                append_labels(out, label_names_, values, &le);
                out += ' ';
                append_uint(out, s.cumulative[i]);
                out += '\n';
            }
            out += name_;
            out += "_sum";
            append_labels(out, label_names_, values);
            out += ' ';
            append_double(out, s.sum);
            out += '\n';
            out += name_;
            out += "_count";
            append_labels(out, label_names_, values);
            out += ' ';
            append_uint(out, s.count);
            out += '\n';
        } else {
            out += name_;
            append_labels(out, label_names_, values);
            out += ' ';
            if constexpr (std::is_same_v<M, counter>) append_uint(out, child->value());
            else append_double(out, child->value());
            out += '\n';
        }
    }
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

struct registry::impl {
    using any_family = std::variant<std::unique_ptr<family<counter>>, std::unique_ptr<family<gauge>>,
                                    std::unique_ptr<family<histogram>>>;
    struct entry {
        std::string help;
        any_family metric;
    };
    mutable std::mutex mutex;
    std::map<std::string, entry, std::less<>> families;
};

registry::registry() : impl_(std::make_unique<impl>()) {}
registry::registry(registry&&) noexcept = default;
registry& registry::operator=(registry&&) noexcept = default;
registry::~registry() = default;

template <class M>
detailed_result<family<M>*> registry::add_family(std::string_view name, std::string_view help,
                                                 std::vector<std::string> label_names, std::vector<double> bounds) {
    const std::string quoted = "'" + std::string(name) + "'";
    if (!valid_name(name, true))
        return error{errc::invalid_argument,
                     "metric name " + quoted + " is invalid: names match [a-zA-Z_:][a-zA-Z0-9_:]*"};
    for (std::size_t i = 0; i < label_names.size(); ++i) {
        const auto& label = label_names[i];
        if (!valid_name(label, false) || label.starts_with("__"))
            return error{errc::invalid_argument, "label name '" + label + "' of metric " + quoted +
                                                     " is invalid: label names match [a-zA-Z_][a-zA-Z0-9_]* "
                                                     "and do not start with __"};
        if (std::is_same_v<M, histogram> && label == "le")
            return error{errc::invalid_argument,
                         "label name 'le' of histogram " + quoted + " is reserved for bucket bounds"};
        for (std::size_t j = 0; j < i; ++j)
            if (label_names[j] == label)
                return error{errc::invalid_argument, "label name '" + label + "' appears twice in metric " + quoted};
    }
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
            return error{errc::invalid_argument,
                         "bucket bounds of histogram " + quoted +
                             " must be finite and strictly increasing (+Inf is always added)"};
    }

    std::lock_guard lock(impl_->mutex);
    if (auto it = impl_->families.find(name); it != impl_->families.end()) {
        auto* existing = std::get_if<std::unique_ptr<family<M>>>(&it->second.metric);
        if (existing && it->second.help == help && (*existing)->label_names_ == label_names &&
            (*existing)->bounds_ == bounds)
            return existing->get();
        return error{errc::already_exists, "metric " + quoted +
                                               " is already registered with a different type, help, labels or buckets"};
    }
    auto created = std::unique_ptr<family<M>>(
        new family<M>(std::string(name), std::string(help), std::move(label_names), std::move(bounds)));
    auto* result = created.get();
    impl_->families.emplace(std::string(name), impl::entry{std::string(help), std::move(created)});
    return result;
}

detailed_result<family<counter>*> registry::add_counter_family(std::string_view name, std::string_view help,
                                                               std::vector<std::string> label_names) {
    return add_family<counter>(name, help, std::move(label_names), {});
}

detailed_result<family<gauge>*> registry::add_gauge_family(std::string_view name, std::string_view help,
                                                           std::vector<std::string> label_names) {
    return add_family<gauge>(name, help, std::move(label_names), {});
}

detailed_result<family<histogram>*> registry::add_histogram_family(std::string_view name, std::string_view help,
                                                                   std::vector<double> bounds,
                                                                   std::vector<std::string> label_names) {
    return add_family<histogram>(name, help, std::move(label_names), std::move(bounds));
}

detailed_result<counter*> registry::add_counter(std::string_view name, std::string_view help) {
    auto f = add_counter_family(name, help, {});
    if (!f) return f.error();
    return &(*f)->labels({});
}

detailed_result<gauge*> registry::add_gauge(std::string_view name, std::string_view help) {
    auto f = add_gauge_family(name, help, {});
    if (!f) return f.error();
    return &(*f)->labels({});
}

detailed_result<histogram*> registry::add_histogram(std::string_view name, std::string_view help,
                                                    std::vector<double> bounds) {
    auto f = add_histogram_family(name, help, std::move(bounds), {});
    if (!f) return f.error();
    return &(*f)->labels({});
}

std::string registry::render() const {
    std::string out;
    std::lock_guard lock(impl_->mutex);
    for (const auto& [name, entry] : impl_->families)
        std::visit([&](const auto& f) { f->render(out); }, entry.metric);
    return out;
}

} // namespace swarm::inline v0::metrics
