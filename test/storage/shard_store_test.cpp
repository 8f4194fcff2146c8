#include "helpers.hpp"

#include <fmt/format.h>

#include <fstream>

namespace swarm::storage {
namespace {

using namespace swarm::storage::testing;

std::vector<std::byte> bytes_of(const std::string& s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return {p, p + s.size()};
}

shard_id id_of(std::uint8_t tag, std::uint16_t index) {
    shard_id id;
    id.chunk.fill(tag);
    id.index = index;
    return id;
}

std::filesystem::path file_of(const std::filesystem::path& dir, const shard_id& id) {
    std::string name;
    for (auto b : id.chunk) name += fmt::format("{:02x}", b);
    return dir / "shards" / (name + "." + std::to_string(id.index));
}

class ShardStore : public ::testing::Test {
protected:
    scratch_dir dir;
    std::unique_ptr<shard_store> store = std::move(*open_local_shard_store(dir.path()));
    const std::vector<std::byte> payload = bytes_of(random_bytes(4096, 11));
    const shard_id id = id_of(0xab, 3);

    result<void> read(const shard_id& which, std::size_t size = 4096) {
        std::vector<std::byte> out(size);
        auto r = store->get(which, out);
        if (r) {
            EXPECT_EQ(out, payload);
        }
        return r;
    }
};

TEST_F(ShardStore, PutGetListRemove) {
    ASSERT_TRUE(store->put(id, payload));
    ASSERT_TRUE(store->sync());
    EXPECT_TRUE(read(id));
    EXPECT_TRUE(*store->contains(id));
    EXPECT_EQ(*store->list(), std::vector<shard_id>{id});
    ASSERT_TRUE(store->remove(id));
    EXPECT_FALSE(*store->contains(id));
    EXPECT_EQ(read(id).error(), errc::not_found);
    EXPECT_TRUE(store->remove(id)); // absent is fine
}

TEST_F(ShardStore, SurvivesReopening) {
    ASSERT_TRUE(store->put(id, payload));
    ASSERT_TRUE(store->sync());
    store = std::move(*open_local_shard_store(dir.path()));
    EXPECT_TRUE(read(id));
}

TEST_F(ShardStore, BitFlipIsDetected) {
    ASSERT_TRUE(store->put(id, payload));
    std::fstream f(file_of(dir.path(), id), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(1000);
    char c;
    f.read(&c, 1);
    c ^= 0x10;
    f.seekp(1000);
    f.write(&c, 1);
    f.close();
    EXPECT_EQ(read(id).error(), errc::malformed);
}

TEST_F(ShardStore, TruncationIsDetected) {
    ASSERT_TRUE(store->put(id, payload));
    std::filesystem::resize_file(file_of(dir.path(), id), 2000);
    EXPECT_EQ(read(id).error(), errc::truncated);
    std::filesystem::resize_file(file_of(dir.path(), id), 10);
    EXPECT_EQ(read(id).error(), errc::truncated);
}

TEST_F(ShardStore, TrailingBytesAreDetected) {
    ASSERT_TRUE(store->put(id, payload));
    std::ofstream(file_of(dir.path(), id), std::ios::binary | std::ios::app) << 'x';
    EXPECT_EQ(read(id).error(), errc::malformed);
}

TEST_F(ShardStore, AnotherShardsBytesAreRefused) {
    const shard_id other = id_of(0xab, 4);
    ASSERT_TRUE(store->put(other, payload));
    std::filesystem::copy_file(file_of(dir.path(), other), file_of(dir.path(), id));
    EXPECT_EQ(read(id).error(), errc::malformed);
}

TEST_F(ShardStore, WrongLengthIsRefused) {
    ASSERT_TRUE(store->put(id, payload));
    EXPECT_EQ(read(id, 4095).error(), errc::malformed);
    std::vector<std::byte> longer(4097);
    EXPECT_FALSE(store->get(id, longer));
}

TEST_F(ShardStore, LeftoverTemporaryFilesAreClearedAndNeverListed) {
    std::ofstream(dir.path() / "tmp" / "half-written", std::ios::binary) << "torn";
    std::ofstream(dir.path() / "shards" / "not-a-shard", std::ios::binary) << "junk";
    store = std::move(*open_local_shard_store(dir.path()));
    EXPECT_TRUE(std::filesystem::is_empty(dir.path() / "tmp"));
    EXPECT_TRUE(store->list()->empty());
}

TEST(ShardStoreOpen, UnusableDirectoryIsAClearError) {
    scratch_dir dir;
    std::ofstream(dir.path() / "file") << "x";
    auto r = open_local_shard_store(dir.path() / "file" / "below");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), errc::io_error);
    EXPECT_NE(r.error().message.find("below"), std::string::npos);
}

} // namespace
} // namespace swarm::storage
