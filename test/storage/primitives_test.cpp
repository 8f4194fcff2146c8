#include "helpers.hpp"

#include "storage/chunker.hpp"
#include "storage/crypto.hpp"
#include "storage/erasure.hpp"
#include "storage/manifest.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <set>

namespace swarm::storage {
namespace {

using namespace swarm::storage::testing;

std::vector<std::size_t> cut(const detail::chunker& c, const std::string& data) {
    std::vector<std::size_t> sizes;
    const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
    for (std::size_t at = 0; at < data.size();) {
        const std::size_t n = c.next(std::span(p + at, data.size() - at));
        sizes.push_back(n);
        at += n;
    }
    return sizes;
}

TEST(Erasure, EveryKOfKPlusMRebuildsEveryShard) {
    for (auto [k, m] : {std::pair{4U, 2U}, std::pair{3U, 3U}}) {
        detail::erasure_code code(k, m);
        const std::size_t len = 1000;
        const unsigned n = k + m;
        std::vector<std::vector<std::uint8_t>> shards(n, std::vector<std::uint8_t>(len));
        const auto data = random_bytes(k * len, k * 31 + m);
        for (unsigned i = 0; i < k; ++i) std::memcpy(shards[i].data(), data.data() + i * len, len);
        std::vector<const std::uint8_t*> in(k);
        std::vector<std::uint8_t*> out(m);
        for (unsigned i = 0; i < k; ++i) in[i] = shards[i].data();
        for (unsigned i = 0; i < m; ++i) out[i] = shards[k + i].data();
        code.encode(len, in.data(), out.data());
        // Every subset of exactly k shards rebuilds all the others.
        for (unsigned mask = 0; mask < (1U << n); ++mask) {
            if (static_cast<unsigned>(__builtin_popcount(mask)) != k) continue;
            std::vector<unsigned> present, wanted;
            std::vector<const std::uint8_t*> inputs;
            for (unsigned i = 0; i < n; ++i) {
                if (mask & (1U << i)) {
                    present.push_back(i);
                    inputs.push_back(shards[i].data());
                } else {
                    wanted.push_back(i);
                }
            }
            std::vector<std::vector<std::uint8_t>> rebuilt(wanted.size(), std::vector<std::uint8_t>(len));
            std::vector<std::uint8_t*> outputs;
            for (auto& r : rebuilt) outputs.push_back(r.data());
            ASSERT_TRUE(code.reconstruct(len, present, inputs.data(), wanted, outputs.data()));
            for (std::size_t w = 0; w < wanted.size(); ++w) EXPECT_EQ(rebuilt[w], shards[wanted[w]]) << "mask " << mask;
        }
    }
}

TEST(Erasure, FewerThanKShardsIsRefused) {
    detail::erasure_code code(4, 2);
    std::vector<std::uint8_t> a(16), b(16), c(16), out(16);
    const std::uint8_t* in[] = {a.data(), b.data(), c.data()};
    std::uint8_t* outs[] = {out.data()};
    const unsigned present[] = {0, 1, 2};
    const unsigned wanted[] = {3};
    EXPECT_FALSE(code.reconstruct(16, present, in, wanted, outs));
}

TEST(Chunker, FixedCutsAtMaxSize) {
    detail::chunker c({chunking_mode::fixed, 64, 1024, 1024});
    const auto sizes = cut(c, random_bytes(5000, 1));
    EXPECT_EQ(sizes, (std::vector<std::size_t>{1024, 1024, 1024, 1024, 904}));
}

TEST(Chunker, ContentDefinedSizesStayInBounds) {
    chunking_config config{chunking_mode::content_defined, 2048, 8192, 32768};
    detail::chunker c(config);
    const auto data = random_bytes(1 << 20, 2);
    const auto sizes = cut(c, data);
    EXPECT_EQ(std::accumulate(sizes.begin(), sizes.end(), std::size_t{0}), data.size());
    for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
        EXPECT_GE(sizes[i], config.min_size);
        EXPECT_LE(sizes[i], config.max_size);
    }
    const double mean = static_cast<double>(data.size()) / static_cast<double>(sizes.size());
    EXPECT_GT(mean, 4096);
    EXPECT_LT(mean, 16384);
}

TEST(Chunker, AnInsertionMovesOnlyNearbyBoundaries) {
    detail::chunker c({chunking_mode::content_defined, 2048, 8192, 32768});
    const auto data = random_bytes(1 << 20, 3);
    auto edited = data;
    edited.insert(data.size() / 2, "an edit in the middle");
    auto boundaries = [&](const std::string& d) {
        std::set<std::string> chunks;
        std::size_t at = 0;
        for (auto n : cut(c, d)) {
            chunks.insert(d.substr(at, n));
            at += n;
        }
        return chunks;
    };
    const auto a = boundaries(data), b = boundaries(edited);
    std::size_t shared = 0;
    for (const auto& chunk : b) shared += a.count(chunk);
    EXPECT_GE(shared + 3, b.size()); // at most a couple of chunks differ
}

TEST(Crypto, ChunkIdsDependOnTheOwnerSecret) {
    ASSERT_TRUE(detail::crypto_ready());
    const auto data = random_bytes(1000, 4);
    const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
    const key32 alice = generate_convergence_secret(), bob = generate_convergence_secret();
    const auto a1 = detail::derive_chunk_keys(alice, cipher_suite::xchacha20_poly1305, bytes);
    const auto a2 = detail::derive_chunk_keys(alice, cipher_suite::xchacha20_poly1305, bytes);
    const auto b = detail::derive_chunk_keys(bob, cipher_suite::xchacha20_poly1305, bytes);
    EXPECT_EQ(a1.id, a2.id);
    EXPECT_EQ(a1.key, a2.key);
    EXPECT_NE(a1.id, b.id);
    EXPECT_NE(a1.key, b.key);
    EXPECT_NE(a1.id, a1.key);
}

TEST(Crypto, SealedChunksOpenOnlyWithTheirKeyAndIntact) {
    for (auto suite : {cipher_suite::xchacha20_poly1305, cipher_suite::aes256_gcm}) {
        if (!detail::cipher_available(suite)) continue;
        const auto data = random_bytes(777, 5);
        const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
        const key32 key = detail::random_key();
        std::vector<std::uint8_t> sealed(data.size() + detail::tag_size), opened(data.size());
        detail::seal_chunk(suite, key, bytes, sealed.data());
        ASSERT_TRUE(detail::open_chunk(suite, key, sealed, opened.data()));
        EXPECT_EQ(std::memcmp(opened.data(), data.data(), data.size()), 0);
        EXPECT_FALSE(detail::open_chunk(suite, detail::random_key(), sealed, opened.data()));
        sealed[100] ^= 1;
        EXPECT_FALSE(detail::open_chunk(suite, key, sealed, opened.data()));
    }
}

TEST(Crypto, ChunksOpenInPlace) {
    // get opens each stripe inside its shard buffer; a size past the AEADs' multi-block paths.
    for (auto suite : {cipher_suite::xchacha20_poly1305, cipher_suite::aes256_gcm}) {
        if (!detail::cipher_available(suite)) continue;
        const auto data = random_bytes(100'003, 6);
        const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
        const key32 key = detail::random_key();
        std::vector<std::uint8_t> sealed(data.size() + detail::tag_size);
        detail::seal_chunk(suite, key, bytes, sealed.data());
        ASSERT_TRUE(detail::open_chunk(suite, key, sealed, sealed.data()));
        EXPECT_EQ(std::memcmp(sealed.data(), data.data(), data.size()), 0);
    }
}

TEST(Crypto, WrappedKeysOpenOnlyForTheirReader) {
    const auto alice = generate_reader_keys(), bob = generate_reader_keys();
    const key32 data_key = detail::random_key();
    const auto wrapped = detail::wrap_key(data_key, alice.public_key);
    EXPECT_EQ(detail::unwrap_key(wrapped, alice), data_key);
    EXPECT_FALSE(detail::unwrap_key(wrapped, bob));
}

TEST(Crypto, CompressionIsSkippedWhenItDoesNotPay) {
    detail::compressor z;
    std::vector<std::uint8_t> out;
    const auto noise = random_bytes(256 * 1024, 6);
    EXPECT_FALSE(z.compress({reinterpret_cast<const std::uint8_t*>(noise.data()), noise.size()}, out));
    std::string text;
    while (text.size() < 256 * 1024) text += "the same line of text, again and again. ";
    ASSERT_TRUE(z.compress({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}, out));
    EXPECT_LT(out.size(), text.size() / 4);
    std::vector<std::uint8_t> back(text.size());
    ASSERT_TRUE(z.decompress(out, back));
    EXPECT_EQ(std::memcmp(back.data(), text.data(), text.size()), 0);
}

detail::manifest sample_manifest() {
    detail::manifest m;
    m.data_shards = 10;
    m.parity_shards = 4;
    m.size = 300;
    m.readers.push_back({generate_reader_keys().public_key, {}});
    m.chunks.push_back({detail::random_key(), 100, 116, false});
    m.chunks.push_back({detail::random_key(), 200, 90, true});
    m.sealed_keys.assign(24 + 2 * 32 + 16, 7);
    return m;
}

TEST(Manifest, RoundTrips) {
    const auto m = sample_manifest();
    const auto bytes = m.encode();
    auto back = detail::manifest::decode(bytes);
    ASSERT_TRUE(back) << back.error().describe();
    EXPECT_EQ(back->size, 300U);
    EXPECT_EQ(back->chunks.size(), 2U);
    EXPECT_EQ(back->chunks[1].id, m.chunks[1].id);
    EXPECT_TRUE(back->chunks[1].compressed);
    EXPECT_EQ(back->readers[0].public_key, m.readers[0].public_key);
    EXPECT_EQ(back->encode(), bytes);
    // Compact: fixed fields plus one reader (112), two chunk entries (~37 each) and the key table (104).
    EXPECT_LT(bytes.size(), 310U);
}

TEST(Manifest, EveryTruncationAndBadMagicIsAnError) {
    const auto bytes = sample_manifest().encode();
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        auto r = detail::manifest::decode(std::span(bytes.data(), n));
        ASSERT_FALSE(r) << "prefix of " << n << " bytes decoded";
        EXPECT_EQ(r.error(), errc::malformed);
    }
    auto bad = bytes;
    bad[0] = 'X';
    EXPECT_FALSE(detail::manifest::decode(bad));
    bad = bytes;
    bad[4] = 9;
    auto r = detail::manifest::decode(bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::unsupported_version);
}

} // namespace
} // namespace swarm::storage
