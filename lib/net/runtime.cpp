#include <swarm/net/runtime.hpp>

#include <boost/asio/executor_work_guard.hpp>

#include <algorithm>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

namespace swarm::inline v0 {

struct runtime::impl {
    explicit impl(unsigned count) : io_(static_cast<int>(count)) {}

    boost::asio::io_context io_;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_{
        io_.get_executor()};
    std::vector<std::thread> threads_;
};

runtime::runtime(unsigned threads) : impl_(std::make_unique<impl>(std::max(threads, 1u))) {
    threads = std::max(threads, 1u);
    impl_->threads_.reserve(threads);
    for (unsigned i = 0; i < threads; ++i) {
        try {
            impl_->threads_.emplace_back([io = &impl_->io_] { io->run(); });
        } catch (const std::system_error&) {
            break; // the system is out of threads: run with the ones already started
        }
    }
}

runtime::~runtime() { stop(); }

runtime::runtime(runtime&&) noexcept = default;

runtime& runtime::operator=(runtime&& other) noexcept {
    if (this != &other) {
        stop();
        impl_ = std::move(other.impl_);
    }
    return *this;
}

boost::asio::any_io_executor runtime::get_executor() const noexcept {
    if (!impl_) return {};
    return impl_->io_.get_executor();
}

boost::asio::io_context& runtime::context() noexcept { return impl_->io_; }

unsigned runtime::thread_count() const noexcept {
    return impl_ ? static_cast<unsigned>(impl_->threads_.size()) : 0;
}

void runtime::stop() {
    if (!impl_) return;
    impl_->guard_.reset();
    impl_->io_.stop();
    const auto self = std::this_thread::get_id();
    for (auto& t : impl_->threads_) {
        if (!t.joinable()) continue;
        if (t.get_id() == self)
            t.detach();
        else
            t.join();
    }
    impl_->threads_.clear();
}

} // namespace swarm::inline v0
