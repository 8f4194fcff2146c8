// Payload buffers for datagrams and frames in flight, recycled by power-of-two size class so that the
// steady state of a simulation allocates nothing per message.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace swarm::inline v0::sim::detail {

class buffer_pool {
public:
    static constexpr std::size_t min_size = 64;

    std::byte* allocate(std::size_t size) {
        const std::size_t c = size_class(size);
        if (c >= free_.size()) free_.resize(c + 1);
        auto& list = free_[c];
        if (!list.empty()) {
            std::byte* p = list.back();
            list.pop_back();
            return p;
        }
        owned_.push_back(std::make_unique_for_overwrite<std::byte[]>(min_size << c));
        return owned_.back().get();
    }

    void release(std::byte* p, std::size_t size) {
        if (p != nullptr) free_[size_class(size)].push_back(p);
    }

private:
    static std::size_t size_class(std::size_t size) noexcept {
        if (size <= min_size) return 0;
        return static_cast<std::size_t>(std::bit_width((size - 1) / min_size));
    }

    std::vector<std::vector<std::byte*>> free_;
    std::vector<std::unique_ptr<std::byte[]>> owned_;
};

} // namespace swarm::inline v0::sim::detail
