#include "core/sodium_init.hpp"

#include <sodium.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace swarm::inline v0::detail {

void sodium_init_once() noexcept {
    static std::once_flag once;
    std::call_once(once, [] {
        if (::sodium_init() < 0) {
            std::fputs("swarm: libsodium failed to initialise\n", stderr);
            std::abort();
        }
    });
}

} // namespace swarm::inline v0::detail
