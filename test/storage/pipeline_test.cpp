// The put and get pipelines: the same stripes as the one-thread path, and their error paths, with stores
// that fail part way through.
#include "helpers.hpp"

#include "storage/helper_thread.hpp"

#include <fmt/format.h>

#include <atomic>
#include <stdexcept>
#include <thread>

namespace swarm::storage::testing {
namespace {

object_store_config with_pipeline(object_store_config c, bool on) {
    c.pipeline = on;
    return c;
}

// Test double: a local store on a disk that starts failing after a number of puts or gets, which cannot be
// arranged with a real disk here.
class failing_store final : public shard_store {
public:
    failing_store(std::unique_ptr<shard_store> inner, int puts, int gets)
        : inner_(std::move(inner)), puts_left_(puts), gets_left_(gets) {}

    result<void> put(const shard_id& id, std::span<const std::byte> payload) override {
        if (puts_left_-- <= 0) return make_error_code(errc::io_error);
        return inner_->put(id, payload);
    }
    result<void> get(const shard_id& id, std::span<std::byte> out) override {
        if (gets_left_-- <= 0) return make_error_code(errc::io_error);
        return inner_->get(id, out);
    }
    result<void> remove(const shard_id& id) override { return inner_->remove(id); }
    result<bool> contains(const shard_id& id) override { return inner_->contains(id); }
    result<std::vector<shard_id>> list() override { return inner_->list(); }
    result<void> sync() override { return inner_->sync(); }

private:
    std::unique_ptr<shard_store> inner_;
    int puts_left_;
    int gets_left_;
};

// 14 local stores; the first `failing` of them wrapped in failing_store.
struct rigged {
    scratch_dir dir;
    std::optional<object_store> store;
    key32 secret = generate_convergence_secret();
    reader_keys reader = generate_reader_keys();

    rigged(unsigned failing, int puts, int gets) {
        const auto config = small_config();
        std::vector<std::unique_ptr<shard_store>> stores;
        for (unsigned i = 0; i < config.erasure.total(); ++i) {
            auto s = open_local_shard_store(dir.path() / ("node" + std::to_string(i)));
            EXPECT_TRUE(s);
            if (i < failing) stores.push_back(std::make_unique<failing_store>(std::move(*s), puts, gets));
            else stores.push_back(std::move(*s));
        }
        auto opened = object_store::open(dir.path() / "catalog", std::move(stores), config);
        EXPECT_TRUE(opened) << opened.error().describe();
        store.emplace(std::move(*opened));
    }
    detailed_result<object_info> put(const std::string& name, const std::string& data) {
        std::istringstream in(data);
        return store->put(name, in, {secret, {reader.public_key}, {}});
    }
};

// Test double: a local store that, like one driven by the simulator, may only be called from the thread that
// opened it; it counts calls from any other thread.
class one_thread_store final : public shard_store {
public:
    one_thread_store(std::unique_ptr<shard_store> inner, std::atomic<int>& foreign)
        : inner_(std::move(inner)), foreign_(foreign) {}

    result<void> put(const shard_id& id, std::span<const std::byte> payload) override { return check(), inner_->put(id, payload); }
    result<void> get(const shard_id& id, std::span<std::byte> out) override { return check(), inner_->get(id, out); }
    result<void> remove(const shard_id& id) override { return check(), inner_->remove(id); }
    result<bool> contains(const shard_id& id) override { return check(), inner_->contains(id); }
    result<std::vector<shard_id>> list() override { return check(), inner_->list(); }
    result<void> sync() override { return check(), inner_->sync(); }
    void prefetch(const shard_id& id, std::size_t length) override { check(), inner_->prefetch(id, length); }
    bool callable_from_any_thread() const noexcept override { return false; }

private:
    void check() {
        if (std::this_thread::get_id() != owner_) ++foreign_;
    }
    std::unique_ptr<shard_store> inner_;
    std::atomic<int>& foreign_;
    std::thread::id owner_ = std::this_thread::get_id();
};

TEST(Pipeline, StoresBoundToOneThreadAreOnlyCalledFromIt) {
    scratch_dir dir;
    std::atomic<int> foreign{0};
    auto config = with_pipeline(small_config(), true);
    std::vector<std::unique_ptr<shard_store>> stores;
    for (unsigned i = 0; i < config.erasure.total(); ++i) {
        auto s = open_local_shard_store(dir.path() / ("node" + std::to_string(i)));
        ASSERT_TRUE(s);
        stores.push_back(std::make_unique<one_thread_store>(std::move(*s), foreign));
    }
    auto opened = object_store::open(dir.path() / "catalog", std::move(stores), config);
    ASSERT_TRUE(opened) << opened.error().describe();
    const auto data = random_bytes(600'000, 37);
    const auto secret = generate_convergence_secret();
    const auto reader = generate_reader_keys();
    std::istringstream in(data);
    ASSERT_TRUE(opened->put("x", in, {secret, {reader.public_key}, {}}));
    std::ostringstream out;
    ASSERT_TRUE(opened->get("x", out, reader));
    EXPECT_EQ(out.str(), data);
    for (const auto& f : std::filesystem::directory_iterator(dir.path() / "node3" / "shards"))
        std::filesystem::remove(f.path());
    auto repaired = opened->repair();
    ASSERT_TRUE(repaired) << repaired.error().describe();
    EXPECT_GT(repaired->shards_rebuilt, 0U);
    EXPECT_EQ(foreign.load(), 0);
}

TEST(Pipeline, PipelinedAndOneThreadPutsMakeTheSameStripes) {
    const auto data = random_bytes(700'000, 31); // dozens of content-defined chunks
    cluster c(with_pipeline(small_config(), false));
    auto serial = c.put("serial", data);
    ASSERT_TRUE(serial) << serial.error().describe();
    ASSERT_GT(serial->chunks, 10U);
    c.reopen(with_pipeline(small_config(), true));
    auto piped = c.put("piped", data);
    ASSERT_TRUE(piped) << piped.error().describe();
    EXPECT_EQ(piped->chunks, serial->chunks);
    EXPECT_EQ(piped->new_chunks, 0U); // same chunk ids: every stripe deduplicated against the serial put
    EXPECT_EQ(c.get("serial"), data);
    EXPECT_EQ(c.get("piped"), data);
    EXPECT_EQ(c.get("piped", {123'457, 300'001}), data.substr(123'457, 300'001));
    c.reopen(with_pipeline(small_config(), false));
    EXPECT_EQ(c.get("piped"), data);
}

TEST(Pipeline, AStoreFailingMidPutLeavesNothingVisibleAndGarbageCollects) {
    rigged r(1, 5, 1'000'000); // store 0 fails its sixth put: several stripes in
    ASSERT_TRUE(r.put("kept", random_bytes(30'000, 32)));
    auto failed = r.put("broken", random_bytes(600'000, 33));
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error(), errc::io_error);
    EXPECT_NE(failed.error().message.find("to store 0"), std::string::npos) << failed.error().message;
    auto stat = r.store->stat("broken");
    ASSERT_FALSE(stat);
    EXPECT_EQ(stat.error(), errc::not_found);
    auto listed = r.store->list();
    ASSERT_TRUE(listed);
    ASSERT_EQ(listed->size(), 1U);
    EXPECT_EQ((*listed)[0].name, "kept");
    auto gc = r.store->collect_garbage();
    ASSERT_TRUE(gc);
    EXPECT_GT(gc->shards_removed, 0U); // the stripes written before the failure
    auto verified = r.store->verify();
    ASSERT_TRUE(verified);
    EXPECT_EQ(verified->missing_shards + verified->corrupt_shards, 0U);
}

TEST(Pipeline, GetReadsAroundStoresThatFailAndNamesTheStripeWhenTooManyDo) {
    const auto data = random_bytes(500'000, 34);
    {
        rigged r(4, 1'000'000, 0); // four stores refuse every read: any k of the rest serve
        ASSERT_TRUE(r.put("four", data));
        std::ostringstream out;
        auto got = r.store->get("four", out, r.reader);
        ASSERT_TRUE(got) << got.error().describe();
        EXPECT_EQ(out.str(), data);
    }
    rigged r(5, 1'000'000, 10); // five stores start refusing after some stripes: the helper's fetch fails
    ASSERT_TRUE(r.put("five", data));
    std::ostringstream out;
    auto got = r.store->get("five", out, r.reader);
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error(), errc::data_unavailable);
    EXPECT_NE(got.error().message.find("only 9 intact shards of the 10 needed"), std::string::npos) << got.error().message;
    EXPECT_GT(out.str().size(), 0U); // the stripes before the failure were delivered
    EXPECT_EQ(out.str(), data.substr(0, out.str().size()));
}

TEST(Pipeline, GetReadsAroundLyingShardsWhicheverThreadOpensTheStripe) {
    // The helper opens every third stripe itself: a lying shard must be read around there too.
    const auto data = random_bytes(300'000, 36);
    cluster c(small_config(4, 2));
    ASSERT_TRUE(c.put("x", data));
    std::size_t rewritten = 0;
    for (std::size_t node = 0; node < c.nodes(); ++node) { // data shard 0 of every stripe: valid header, wrong bytes
        auto store = std::move(*open_local_shard_store(c.node_dir(node)));
        for (const auto& id : *store->list()) {
            if (id.index != 0) continue;
            std::string file;
            for (auto b : id.chunk) file += fmt::format("{:02x}", b);
            const auto size = std::filesystem::file_size(c.shards_dir(node) / (file + ".0")) - 56;
            ASSERT_TRUE(store->put(id, std::vector<std::byte>(size, std::byte{0x5a})));
            ++rewritten;
        }
        ASSERT_TRUE(store->sync());
    }
    ASSERT_GE(rewritten, 6U);
    EXPECT_EQ(c.store().verify("x")->inconsistent_stripes, rewritten);
    EXPECT_EQ(c.get("x"), data);
    EXPECT_EQ(c.get("x", {50'000, 200'000}), data.substr(50'000, 200'000));
}

TEST(Pipeline, RepairSplitAcrossTwoThreadsReadsAndRebuildsWhatOneThreadDoes) {
    const auto data = random_bytes(400'000, 35);
    cluster c(with_pipeline(small_config(), false));
    ASSERT_TRUE(c.put("x", data));
    auto damage = [&] {
        c.lose_node(4);
        for (const auto& f : c.shard_files(9)) std::filesystem::resize_file(f, 100); // corrupt: read, refused
    };
    damage();
    auto serial = c.store().repair();
    ASSERT_TRUE(serial) << serial.error().describe();
    c.reopen(with_pipeline(small_config(), true));
    damage();
    auto split = c.store().repair();
    ASSERT_TRUE(split) << split.error().describe();
    EXPECT_GT(split->shards_rebuilt, split->stripes); // node 4 everywhere, plus node 9 where it was read
    EXPECT_EQ(split->shards_rebuilt, serial->shards_rebuilt);
    EXPECT_EQ(split->shards_read, serial->shards_read);
    EXPECT_EQ(split->bytes_read, serial->bytes_read);
    EXPECT_EQ(split->unrecoverable_stripes, 0U);
    auto deep = c.store().verify();
    ASSERT_TRUE(deep);
    EXPECT_EQ(deep->missing_shards, 0U);
    EXPECT_EQ(deep->corrupt_shards, serial->stripes - (split->shards_rebuilt - split->stripes)); // node 9 where unread
    EXPECT_EQ(c.get("x"), data);
}

TEST(HelperThread, AJobsExceptionReachesTheWaiterAndTheThreadCarriesOn) {
    detail::helper_thread helper;
    std::atomic<int> runs{0};
    helper.start([&] {
        ++runs;
        throw std::runtime_error("job failed");
    });
    EXPECT_THROW(helper.wait(), std::runtime_error);
    helper.start([&] { ++runs; });
    EXPECT_NO_THROW(helper.wait());
    helper.start([] { throw std::runtime_error("dropped"); });
    helper.wait_quietly();
    EXPECT_NO_THROW(helper.wait());
    EXPECT_EQ(runs.load(), 2);
}

} // namespace
} // namespace swarm::storage::testing
