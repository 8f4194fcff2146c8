// Opens arbitrary bytes under a fixed key and label: anything may be refused, nothing may crash, and what
// opens must open only once. Then seals the same bytes as plaintext, checks that a single flipped bit (chosen
// by the input) is refused and that the genuine message round-trips.
#include <swarm/core/seal.hpp>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace {

// The seeds in fuzz/corpus/fuzz_seal/ were sealed with this key and label, so mutations reach the AEAD.
constexpr std::string_view label = "fuzz";

const swarm::seal::keyring& ring() {
    static const swarm::seal::keyring keys = [] {
        swarm::seal::keyring k;
        std::array<std::byte, swarm::seal::key_size> key{};
        for (std::size_t i = 0; i < key.size(); ++i) key[i] = std::byte{static_cast<std::uint8_t>(i)};
        if (!k.add(key)) std::abort();
        return k;
    }();
    return keys;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto in = std::as_bytes(std::span{data, size});
    swarm::seal::opener opener(ring(), label, {.max_senders = 4});
    std::vector<std::byte> out;
    if (auto r = opener.open(in, out)) {
        if (r->size != size - swarm::seal::overhead || out.size() != r->size) std::abort();
        if (opener.open(in, out).error() != swarm::errc::replayed) std::abort();
    } else if (!out.empty()) {
        std::abort();
    }

    // A fresh opener: the input may itself have been a valid message from any sender.
    swarm::seal::opener fresh(ring(), label, {.max_senders = 4});
    swarm::seal::sealer sealer(ring(), label, 42, 1);
    auto sealed = sealer.seal(in);
    if (!sealed || sealed->size() != size + swarm::seal::overhead) std::abort();
    if (size != 0) {
        auto bad = *sealed;
        bad[data[0] % bad.size()] ^= std::byte{static_cast<std::uint8_t>(1u << (data[size - 1] % 8))};
        if (fresh.open(bad, out)) std::abort();
    }
    auto round = fresh.open(*sealed, out);
    if (!round || round->sender != 42 || round->sequence != 1 || !std::ranges::equal(out, in)) std::abort();
    return 0;
}
