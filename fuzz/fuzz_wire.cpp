// Decodes arbitrary bytes as the representative messages. Whatever decodes strictly must re-encode to the
// very same bytes (the encoding is canonical); whatever decodes leniently (skipping appended fields) must
// re-encode to something that decodes strictly to the same value.
#include "sample_messages.hpp"

#include <cstdint>
#include <cstdlib>
#include <vector>

namespace {

template <class Message>
std::vector<std::byte> reencode(const Message& m) {
    std::vector<std::byte> out;
    swarm::wire::writer w(out);
    sample::encode(w, m);
    if (!w.finish()) std::abort(); // a vector writer cannot fail
    return out;
}

template <class Message>
void check(std::span<const std::byte> in) {
    Message strict;
    if (sample::decode(in, strict, swarm::wire::trailing::reject)) {
        if (!std::ranges::equal(reencode(strict), in)) std::abort();
    }
    Message lenient;
    if (sample::decode(in, lenient, swarm::wire::trailing::skip)) {
        const auto again = reencode(lenient);
        Message back;
        if (!sample::decode(again, back, swarm::wire::trailing::reject) || !(back == lenient)) std::abort();
    } else if (sample::decode(in, strict, swarm::wire::trailing::reject)) {
        std::abort(); // strict acceptance implies lenient acceptance
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto in = std::as_bytes(std::span{data, size});
    check<sample::gossip>(in);
    check<sample::ping>(in);
    return 0;
}
