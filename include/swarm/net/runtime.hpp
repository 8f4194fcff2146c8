// An io_context and the threads that run it, for hosts that have no executor of their own.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <memory>

namespace swarm::inline v0 {

/// Owns an io_context kept alive by a work guard and `threads` threads running it. Drivers and components
/// built on get_executor() must be stopped and destroyed before the runtime that runs them.
class runtime {
public:
    /// Starts `threads` threads (at least one). If the system refuses some, it runs with those it got;
    /// thread_count() says how many.
    explicit runtime(unsigned threads = 1);
    /// Stops, as stop() does.
    ~runtime();
    runtime(runtime&&) noexcept;
    runtime& operator=(runtime&&) noexcept;
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;

    /// An empty executor for a moved-from runtime.
    boost::asio::any_io_executor get_executor() const noexcept;
    /// Not for a moved-from runtime.
    boost::asio::io_context& context() noexcept;
    unsigned thread_count() const noexcept;

    /// Stops the io_context and joins the threads. Bounded as long as no handler blocks; idempotent.
    /// Handlers not yet run are destroyed with the runtime, which is how pending operations release what
    /// they hold. Called from one of the runtime's own threads, it cannot join that thread and detaches it.
    void stop();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace swarm::inline v0
