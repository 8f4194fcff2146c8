#include "helpers.hpp"
#include "support/flip_byte.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>

namespace swarm::storage {
namespace {

using namespace swarm::storage::testing;

constexpr std::size_t large_size = 100'000'000; // about 7 s under ASan on two cores

TEST(ObjectStore, RoundTripsAtTheEdgeSizes) {
    auto config = small_config();
    config.chunking.mode = chunking_mode::fixed;
    const std::size_t chunk = config.chunking.max_size;
    cluster c(config);
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, chunk - 1, chunk, chunk + 1, 3 * chunk + 17}) {
        const auto name = "obj-" + std::to_string(size);
        const auto data = random_bytes(size, size);
        auto put = c.put(name, data);
        ASSERT_TRUE(put) << put.error().describe();
        EXPECT_EQ(put->size, size);
        EXPECT_EQ(put->chunks, (size + chunk - 1) / chunk);
        EXPECT_EQ(c.get(name), data) << size;
        EXPECT_EQ(c.store().stat(name)->size, size);
    }
}

TEST(ObjectStore, RoundTripsALargeObjectWithContentDefinedChunks) {
    object_store_config config; // the defaults: 10+4, 1 MiB average chunks
    cluster c(config);
    const auto data = random_bytes(large_size, 7);
    std::uint64_t last_progress = 0;
    auto options = c.writer();
    options.progress = [&](std::uint64_t done) {
        EXPECT_GT(done, last_progress);
        last_progress = done;
    };
    std::istringstream in(data);
    auto put = c.store().put("big", in, options);
    ASSERT_TRUE(put) << put.error().describe();
    EXPECT_EQ(last_progress, data.size());
    EXPECT_GT(put->chunks, large_size / config.chunking.max_size);
    EXPECT_EQ(c.get("big"), data);
}

TEST(ObjectStore, SmallObjectsLiveInTheManifest) {
    object_store_config config;
    cluster c(config);
    ASSERT_TRUE(c.put("tiny", "hello"));
    ASSERT_TRUE(c.put("empty", ""));
    EXPECT_EQ(c.total_shard_files(), 0U);
    EXPECT_EQ(c.get("tiny"), "hello");
    EXPECT_EQ(c.get("empty"), "");
    EXPECT_EQ(c.get("tiny", {1, 3}), "ell");
    std::string text;
    while (text.size() < 12'000) text += "compressible, and small enough to inline. ";
    ASSERT_TRUE(c.put("text", text));
    EXPECT_EQ(c.total_shard_files(), 0U);
    EXPECT_EQ(c.get("text"), text);
}

TEST(ObjectStore, AStreamAlreadyBrokenIsAnErrorNotAnEmptyObject) {
    cluster c(small_config());
    std::istringstream in("data");
    in.setstate(std::ios::failbit);
    auto r = c.store().put("x", in, c.writer());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::io_error);
    EXPECT_FALSE(c.store().stat("x"));
}

TEST(ObjectStore, AnyKOfTheShardsServeAGet) {
    cluster c(small_config());
    const auto data = random_bytes(300'000, 8);
    ASSERT_TRUE(c.put("x", data));
    // Lose four of fourteen nodes: every stripe keeps exactly ten shards.
    for (std::size_t node : {0U, 3U, 7U, 13U}) c.lose_node(node);
    EXPECT_EQ(c.get("x"), data);
    c.lose_node(5);
    std::ostringstream out;
    auto r = c.store().get("x", out, c.reader());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::data_unavailable);
}

TEST(ObjectStore, RangeReadsReturnTheRightBytesAndTouchOnlyTheirStripes) {
    auto config = small_config(4, 2);
    config.chunking.mode = chunking_mode::fixed;
    cluster c(config);
    const auto data = random_bytes(10 * 65536, 9);
    ASSERT_TRUE(c.put("x", data));
    EXPECT_EQ(c.get("x", {0, 10}), data.substr(0, 10));
    EXPECT_EQ(c.get("x", {65530, 20}), data.substr(65530, 20));
    EXPECT_EQ(c.get("x", {data.size() - 5, 100}), data.substr(data.size() - 5));
    EXPECT_EQ(c.get("x", {data.size(), 100}), "");
    std::ostringstream out;
    auto past = c.store().get("x", out, c.reader(), {data.size() + 1, 1});
    ASSERT_FALSE(past);
    EXPECT_EQ(past.error(), errc::invalid_argument);
    // Wipe every node: nothing is left but the catalog, so a read of zero bytes still works, and a read of
    // one byte fails: the read path fetched the stripe it needed and no other.
    for (std::size_t i = 0; i < c.nodes(); ++i) c.lose_node(i);
    EXPECT_EQ(c.get("x", {100, 0}), "");
    auto one = c.store().get("x", out, c.reader(), {100, 1});
    ASSERT_FALSE(one);
    EXPECT_EQ(one.error(), errc::data_unavailable);
}

TEST(ObjectStore, RangeReadsSkipStripesOutsideTheRange) {
    auto config = small_config(4, 2);
    config.chunking.mode = chunking_mode::fixed;
    cluster c(config);
    const auto first = random_bytes(65536, 10), second = random_bytes(65536, 11);
    ASSERT_TRUE(c.put("a", first));
    std::set<std::filesystem::path> first_stripe;
    for (std::size_t i = 0; i < c.nodes(); ++i)
        for (const auto& f : c.shard_files(i)) first_stripe.insert(f);
    ASSERT_TRUE(c.put("b", first + second)); // shares its first stripe with "a"
    std::size_t removed = 0;
    for (std::size_t i = 0; i < c.nodes(); ++i)
        for (const auto& f : c.shard_files(i))
            if (!first_stripe.contains(f)) {
                std::filesystem::remove(f); // every shard of the second stripe
                ++removed;
            }
    EXPECT_EQ(removed, 6U);
    EXPECT_EQ(c.get("b", {0, 65536}), first);
    EXPECT_EQ(c.get("b", {1000, 5}), first.substr(1000, 5));
    std::ostringstream out;
    EXPECT_EQ(c.store().get("b", out, c.reader(), {65535, 2}).error(), errc::data_unavailable);
}

using swarm_test::flip_byte;

TEST(ObjectStore, EveryKindOfCorruptionIsDetectedSkippedAndRepaired) {
    auto config = small_config();
    cluster c(config);
    const auto data = random_bytes(400'000, 12);
    ASSERT_TRUE(c.put("x", data));
    ASSERT_TRUE(c.store().verify("x")->healthy());
    const auto files0 = c.shard_files(0), files1 = c.shard_files(1), files2 = c.shard_files(2);
    ASSERT_GE(files0.size(), 3U);
    flip_byte(files0[0], 200);                                         // bit flip in the payload
    std::filesystem::resize_file(files1[0], 30);                       // truncation
    std::filesystem::copy_file(files0[1], files2[0], std::filesystem::copy_options::overwrite_existing); // wrong shard
    std::filesystem::rename(files2[1], files2[2] .string() + ".swap");  // swapped pair on one node
    std::filesystem::rename(files2[2], files2[1]);
    std::filesystem::rename(files2[2].string() + ".swap", files2[2]);
    std::filesystem::remove(c.shard_files(3)[0]);                      // missing

    auto report = c.store().verify("x");
    ASSERT_TRUE(report);
    EXPECT_EQ(report->missing_shards, 1U);
    EXPECT_EQ(report->corrupt_shards, 5U);
    EXPECT_EQ(report->unrecoverable_stripes, 0U);
    EXPECT_EQ(c.get("x"), data); // reads skip all of it

    auto repaired = c.store().repair("x", {.deep = true, .progress = {}});
    ASSERT_TRUE(repaired) << repaired.error().describe();
    EXPECT_EQ(repaired->shards_rebuilt, 6U);
    EXPECT_TRUE(c.store().verify("x")->healthy());
    for (std::size_t i = 0; i < 4; ++i) c.lose_node(i + 4); // the repaired shards now carry reads
    EXPECT_EQ(c.get("x"), data);
}

TEST(ObjectStore, AShardWithAValidChecksumButWrongBytesIsReportedAndReadAround) {
    auto config = small_config(4, 2);
    cluster c(config);
    const auto data = random_bytes(3000, 13); // one stripe
    ASSERT_TRUE(c.put("x", data));
    // Rewrite data shard 0, the first a read uses, with other bytes and a valid header, through the store API
    // as a faulty or hostile node would.
    bool rewritten = false;
    for (std::size_t node = 0; node < c.nodes() && !rewritten; ++node) {
        auto store = std::move(*open_local_shard_store(c.node_dir(node)));
        for (const auto& id : *store->list()) {
            if (id.index != 0) continue;
            const auto size = std::filesystem::file_size(c.shard_files(node)[0]) - 56;
            ASSERT_TRUE(store->put(id, std::vector<std::byte>(size, std::byte{0x5a})));
            ASSERT_TRUE(store->sync());
            rewritten = true;
        }
    }
    ASSERT_TRUE(rewritten);
    auto report = c.store().verify("x");
    ASSERT_TRUE(report);
    EXPECT_EQ(report->inconsistent_stripes, 1U);
    EXPECT_FALSE(report->healthy());
    // A get leaves the lying shard out once the stripe fails to authenticate.
    EXPECT_EQ(c.get("x"), data);
}

TEST(ObjectStore, RepairAfterLosingANodeReadsExactlyKPerStripe) {
    auto config = small_config();
    cluster c(config);
    const auto data = random_bytes(500'000, 14);
    ASSERT_TRUE(c.put("x", data));
    const auto lost = c.shard_files(6).size();
    c.lose_node(6);
    std::uint64_t progress = 0;
    auto r = c.store().repair({}, {.deep = false, .progress = [&](std::uint64_t s) { progress = s; }});
    ASSERT_TRUE(r) << r.error().describe();
    EXPECT_EQ(r->shards_rebuilt, lost);
    EXPECT_EQ(r->shards_read, r->stripes * 10);
    EXPECT_EQ(progress, r->stripes);
    EXPECT_EQ(c.shard_files(6).size(), lost);
    EXPECT_TRUE(c.store().verify()->healthy());
    EXPECT_EQ(c.get("x"), data);
}

TEST(ObjectStore, RestartKeepsEverything) {
    cluster c(small_config());
    const auto a = random_bytes(200'000, 15), b = random_bytes(3'000, 16);
    ASSERT_TRUE(c.put("dir/a", a));
    ASSERT_TRUE(c.put("dir/b", b));
    ASSERT_TRUE(c.put("other", b));
    c.reopen();
    EXPECT_EQ(c.get("dir/a"), a);
    EXPECT_EQ(c.get("dir/b"), b);
    auto listed = c.store().list("dir/");
    ASSERT_TRUE(listed);
    ASSERT_EQ(listed->size(), 2U);
    EXPECT_EQ((*listed)[0].name, "dir/a");
    EXPECT_EQ((*listed)[0].size, a.size());
    EXPECT_EQ(c.store().list()->size(), 3U);
}

TEST(ObjectStore, ACrashMidPutLeavesNoVisibleObject) {
    cluster c(small_config());
    const auto data = random_bytes(400'000, 17);
    ASSERT_TRUE(c.put("kept", "still here after the crash, and longer than the inline limit of zero"));
    const auto before = c.total_shard_files();
    c.close();
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        c.reopen();
        auto options = c.writer();
        // Dies abruptly with several stripes on disk and the catalog not yet written.
        options.progress = [](std::uint64_t done) {
            if (done > 100'000) ::_exit(0);
        };
        std::istringstream in(data);
        (void)c.store().put("partial", in, options);
        ::_exit(1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0) << "the child finished the put instead of crashing";
    c.reopen();
    EXPECT_GT(c.total_shard_files(), before);
    auto stat = c.store().stat("partial");
    ASSERT_FALSE(stat);
    EXPECT_EQ(stat.error(), errc::not_found);
    EXPECT_EQ(c.store().list()->size(), 1U);
    auto gc = c.store().collect_garbage();
    ASSERT_TRUE(gc);
    EXPECT_EQ(gc->shards_removed, c.total_shard_files() + gc->shards_removed - before);
    EXPECT_EQ(c.total_shard_files(), before);
    EXPECT_EQ(c.get("kept"), "still here after the crash, and longer than the inline limit of zero");
}

TEST(ObjectStore, AFailingInputStreamLeavesNoVisibleObject) {
    cluster c(small_config());
    std::istringstream in(random_bytes(1'000'000, 18)); // more than the read-ahead buffer holds
    auto options = c.writer();
    options.progress = [&](std::uint64_t) { in.setstate(std::ios::badbit); };
    auto r = c.store().put("broken", in, options);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::io_error);
    EXPECT_FALSE(c.store().stat("broken"));
}

TEST(ObjectStore, AnEditedFileSharesItsUnchangedChunks) {
    cluster c(small_config());
    const auto v1 = random_bytes(1'000'000, 19);
    auto v2 = v1;
    v2.insert(500'000, "a paragraph inserted in the middle of the file");
    auto first = c.put("doc-v1", v1);
    auto second = c.put("doc-v2", v2);
    ASSERT_TRUE(first && second);
    EXPECT_EQ(first->new_chunks, first->chunks);
    EXPECT_LE(second->new_chunks, 3U);
    EXPECT_LT(second->stored_bytes * 10, first->stored_bytes);
    EXPECT_EQ(c.get("doc-v2"), v2);
    // Dropping v1 keeps every stripe v2 still uses.
    ASSERT_TRUE(c.store().remove("doc-v1"));
    EXPECT_EQ(c.get("doc-v2"), v2);
    ASSERT_TRUE(c.store().remove("doc-v2"));
    EXPECT_EQ(c.total_shard_files(), 0U);
}

TEST(ObjectStore, ReplacingAnObjectCollectsTheOldShards) {
    cluster c(small_config());
    ASSERT_TRUE(c.put("x", random_bytes(100'000, 20)));
    const auto data = random_bytes(50'000, 21);
    ASSERT_TRUE(c.put("x", data));
    EXPECT_EQ(c.get("x"), data);
    EXPECT_EQ(c.store().list()->size(), 1U);
    const auto files = c.total_shard_files();
    ASSERT_TRUE(c.store().remove("x"));
    EXPECT_GT(files, 0U);
    EXPECT_EQ(c.total_shard_files(), 0U);
    auto again = c.store().remove("x");
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), errc::not_found);
}

TEST(ObjectStore, AWrongKeyIsAClearError) {
    cluster c(small_config());
    const auto second_reader = generate_reader_keys();
    auto options = c.writer();
    options.readers.push_back(second_reader.public_key);
    const auto data = random_bytes(30'000, 22);
    std::istringstream in(data);
    ASSERT_TRUE(c.store().put("shared", in, options));
    std::ostringstream out;
    ASSERT_TRUE(c.store().get("shared", out, second_reader));
    EXPECT_EQ(out.str(), data);

    const auto stranger = generate_reader_keys();
    auto r = c.store().get("shared", out, stranger);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::authentication_failed);
    EXPECT_NE(r.error().message.find("no key wrapped for this reader"), std::string::npos);

    reader_keys impostor = stranger;
    impostor.public_key = second_reader.public_key; // claims a reader's public key without its secret
    r = c.store().get("shared", out, impostor);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::authentication_failed);
}

TEST(ObjectStore, CompressibleDataIsStoredCompressed) {
    auto config = small_config();
    config.compression = compression_mode::automatic;
    cluster c(config);
    std::string text;
    while (text.size() < 500'000) text += "log line " + std::to_string(text.size() % 977) + " ok\n";
    auto put = c.put("log", text);
    ASSERT_TRUE(put);
    EXPECT_LT(put->stored_bytes, text.size() / 2);
    EXPECT_EQ(c.get("log"), text);
}

TEST(ObjectStore, FilesInAndOut) {
    cluster c(small_config());
    const auto data = random_bytes(123'456, 23);
    const auto in = c.root() / "in.bin", out = c.root() / "out.bin";
    std::ofstream(in, std::ios::binary) << data;
    ASSERT_TRUE(c.store().put_file("f", in, c.writer()));
    ASSERT_TRUE(c.store().get_file("f", out, c.reader(), {1000, 2000}));
    std::ifstream back(out, std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(back), {}), data.substr(1000, 2000));
    auto missing = c.store().put_file("g", c.root() / "nope", c.writer());
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error(), errc::not_found);
}

TEST(ObjectStore, BadInputsAreClearErrors) {
    cluster c(small_config());
    EXPECT_EQ(c.put("", "x").error(), errc::invalid_argument);
    EXPECT_EQ(c.put(std::string(2000, 'n'), "x").error(), errc::invalid_argument);
    std::istringstream in("x");
    put_options no_readers;
    EXPECT_EQ(c.store().put("x", in, no_readers).error(), errc::invalid_argument);
    std::ostringstream out;
    EXPECT_EQ(c.store().get("absent", out, c.reader()).error(), errc::not_found);
    EXPECT_EQ(c.store().stat("absent").error(), errc::not_found);
    EXPECT_EQ(c.store().verify("absent").error(), errc::not_found);
}

TEST(ObjectStoreConfig, InvalidSettingsAreRejectedWithAReason) {
    auto expect_invalid = [](object_store_config config, std::string_view words) {
        auto r = config.validate();
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error(), errc::config_invalid_value);
        EXPECT_NE(r.error().message.find(words), std::string::npos) << r.error().message;
    };
    object_store_config c;
    EXPECT_TRUE(c.validate());
    c.erasure = {0, 4};
    expect_invalid(c, "data_shards");
    c.erasure = {200, 100};
    expect_invalid(c, "255");
    c = {};
    c.chunking.avg_size = 1000 * 1000;
    expect_invalid(c, "power of two");
    c = {};
    c.chunking.min_size = 8 << 20;
    expect_invalid(c, "min_size <= avg_size");
    c = {};
    c.inline_limit = c.chunking.max_size + 1;
    expect_invalid(c, "inline_limit");

    scratch_dir dir;
    std::vector<std::unique_ptr<shard_store>> too_few;
    for (int i = 0; i < 5; ++i) too_few.push_back(std::move(*open_local_shard_store(dir.path() / std::to_string(i))));
    auto r = object_store::open(dir.path() / "catalog", std::move(too_few));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::invalid_argument);
    EXPECT_NE(r.error().message.find("5 shard stores"), std::string::npos);
}

} // namespace
} // namespace swarm::storage

namespace swarm::storage {
namespace {

using namespace swarm::storage::testing;

TEST(ObjectStore, TheAutomaticCipherResolvesAndObjectsKeepTheirOwn) {
    EXPECT_NE(fastest_cipher(), cipher_suite::automatic);
    auto config = small_config();
    config.cipher = cipher_suite::xchacha20_poly1305;
    cluster c(config);
    const auto data = random_bytes(50'000, 30);
    ASSERT_TRUE(c.put("old", data));
    config.cipher = cipher_suite::aes256_gcm;
    if (!config.validate()) GTEST_SKIP() << "no AES-NI here";
    c.reopen(config);
    auto again = c.put("new", data);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->new_chunks, again->chunks); // the other suite seals other stripes: no false dedup
    EXPECT_EQ(c.get("old"), data);
    EXPECT_EQ(c.get("new"), data);
}

TEST(ObjectStore, RepairHonoursItsRateLimit) {
    auto config = small_config(4, 2);
    config.chunking.mode = chunking_mode::fixed;
    cluster c(config);
    ASSERT_TRUE(c.put("x", random_bytes(8 * 65536, 31)));
    c.lose_node(1);
    const auto start = std::chrono::steady_clock::now();
    auto r = c.store().repair({}, {.deep = false, .max_bytes_per_second = 2'000'000, .progress = {}});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->shards_rebuilt, 8U);
    // Eight stripes move about 8 x 5 x 16 KiB; all but the last stripe's bytes must wait for the budget.
    const double moved_before_last = static_cast<double>(r->bytes_read + r->bytes_written) * 7 / 8;
    EXPECT_GE(seconds, moved_before_last / 2'000'000 * 0.9);
    EXPECT_TRUE(c.store().verify()->healthy());
}

} // namespace
} // namespace swarm::storage

#include "storage/crypto.hpp"

namespace swarm::storage {
namespace {

using namespace swarm::storage::testing;

bool any_file_contains(const std::filesystem::path& root, std::string_view needle) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
        if (!e.is_regular_file()) continue;
        std::ifstream f(e.path(), std::ios::binary);
        const std::string content(std::istreambuf_iterator<char>(f), {});
        if (content.find(needle) != std::string::npos) return true;
    }
    return false;
}

std::string_view as_text(const key32& k) { return {reinterpret_cast<const char*>(k.data()), k.size()}; }

TEST(ObjectStore, NoSecretOrPlaintextReachesTheDisk) {
    auto config = small_config(4, 2);
    config.chunking.mode = chunking_mode::fixed;
    config.compression = compression_mode::none;
    config.inline_limit = 8192;
    cluster c(config);
    const auto big = random_bytes(65536, 40), small = random_bytes(5000, 41);
    ASSERT_TRUE(c.put("big", big));
    ASSERT_TRUE(c.put("small", small)); // inline, in the catalog
    c.close();                          // checkpoints the catalog's WAL into its file
    const auto keys = detail::derive_chunk_keys(c.secret(), fastest_cipher(),
                                                {reinterpret_cast<const std::uint8_t*>(big.data()), big.size()});
    EXPECT_TRUE(any_file_contains(c.root(), as_text(keys.id))); // the id is public: the search works
    EXPECT_FALSE(any_file_contains(c.root(), as_text(keys.key)));
    EXPECT_FALSE(any_file_contains(c.root(), as_text(c.secret())));
    EXPECT_FALSE(any_file_contains(c.root(), as_text(c.reader().secret_key)));
    EXPECT_FALSE(any_file_contains(c.root(), std::string_view(big).substr(1000, 32)));
    EXPECT_FALSE(any_file_contains(c.root(), std::string_view(small).substr(1000, 32)));
}

} // namespace
} // namespace swarm::storage

namespace swarm::storage {
namespace {

using namespace swarm::storage::testing;

TEST(ObjectStore, StoresAddedAfterOpenTakeNewStripesAndKeepTheOldOnesReadable) {
    auto config = small_config(4, 2);
    cluster c(config);
    std::vector<std::string> data;
    for (int i = 0; i < 4; ++i) {
        data.push_back(random_bytes(40000, 100 + i));
        ASSERT_TRUE(c.put("before-" + std::to_string(i), data.back()));
    }
    // Four nodes join the mesh: stores 6..9.
    for (std::size_t expected = 6; expected < 10; ++expected) EXPECT_EQ(c.add_node(), expected);
    for (int i = 0; i < 12; ++i) {
        data.push_back(random_bytes(40000, 200 + i));
        ASSERT_TRUE(c.put("after-" + std::to_string(i), data.back()));
    }
    std::size_t on_new = 0;
    for (std::size_t node = 6; node < 10; ++node) on_new += c.shard_files(node).size();
    EXPECT_GT(on_new, 0u) << "no stripe written after the stores joined went to them";
    for (int i = 0; i < 4; ++i) EXPECT_EQ(c.get("before-" + std::to_string(i)), data[static_cast<std::size_t>(i)]);
    for (int i = 0; i < 12; ++i) EXPECT_EQ(c.get("after-" + std::to_string(i)), data[4 + static_cast<std::size_t>(i)]);

    // A restart with all ten stores, and the loss of a joined node, repaired.
    c.reopen();
    c.lose_node(7);
    auto repaired = c.store().repair();
    ASSERT_TRUE(repaired) << repaired.error().describe();
    for (int i = 0; i < 12; ++i) EXPECT_EQ(c.get("after-" + std::to_string(i)), data[4 + static_cast<std::size_t>(i)]);
    auto verified = c.store().verify();
    ASSERT_TRUE(verified);
    EXPECT_TRUE(verified->healthy()) << verified->missing_shards << " missing";
}

TEST(ObjectStore, AddingANullStoreOrTheTwoHundredAndFiftySeventhIsRefused) {
    cluster c(small_config(4, 2));
    auto null_store = c.store().add_store(nullptr);
    ASSERT_FALSE(null_store);
    EXPECT_EQ(null_store.error().code, swarm::errc::invalid_argument);
    for (std::size_t i = 6; i < 256; ++i) {
        auto s = open_local_shard_store(c.root() / "extra" / std::to_string(i));
        ASSERT_TRUE(s);
        ASSERT_TRUE(c.store().add_store(std::move(*s)));
    }
    auto s = open_local_shard_store(c.root() / "extra" / "256");
    ASSERT_TRUE(s);
    auto over = c.store().add_store(std::move(*s));
    ASSERT_FALSE(over);
    EXPECT_EQ(over.error().code, swarm::errc::too_large);
}

TEST(ObjectStore, MoreExtraReadsThanParityShardsIsRefused) {
    auto config = small_config(4, 2);
    config.extra_reads = 3;
    auto r = config.validate();
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("extra_reads"), std::string::npos) << r.error().message;
    config.extra_reads = 2;
    EXPECT_TRUE(config.validate());
}

} // namespace
} // namespace swarm::storage
