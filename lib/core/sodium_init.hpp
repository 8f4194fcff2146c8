// libsodium must be initialised once before use; every swarm entry point that uses it calls this first.
#pragma once

namespace swarm::inline v0::detail {

/// Runs sodium_init() exactly once per process (std::call_once); aborts if libsodium cannot start,
/// since no key can be generated safely without its random source.
void sodium_init_once() noexcept;

} // namespace swarm::inline v0::detail
