// The logger hook: a level and a function, silent unless the host sets both.
#pragma once

#include <fmt/format.h>

#include <functional>
#include <string_view>

namespace swarm::inline v0 {

enum class log_level { trace, debug, info, warning, error, off };

std::string_view to_string(log_level) noexcept;

/// Callbacks run on the thread that logs, possibly a swarm thread: they must not block or call back into swarm.
struct logger {
    log_level level = log_level::off;
    std::function<void(log_level, std::string_view)> sink;

    bool enabled(log_level l) const noexcept { return sink && l >= level && l != log_level::off; }

    /// Formats only when the level is enabled, so a silent logger costs one comparison.
    template <class... Args>
    void log(log_level l, fmt::format_string<Args...> format, Args&&... args) const {
        if (!enabled(l)) return;
        sink(l, fmt::format(format, std::forward<Args>(args)...));
    }
    template <class... Args>
    void debug(fmt::format_string<Args...> f, Args&&... a) const { log(log_level::debug, f, std::forward<Args>(a)...); }
    template <class... Args>
    void info(fmt::format_string<Args...> f, Args&&... a) const { log(log_level::info, f, std::forward<Args>(a)...); }
    template <class... Args>
    void warning(fmt::format_string<Args...> f, Args&&... a) const { log(log_level::warning, f, std::forward<Args>(a)...); }
    template <class... Args>
    void error(fmt::format_string<Args...> f, Args&&... a) const { log(log_level::error, f, std::forward<Args>(a)...); }
};

} // namespace swarm::inline v0
