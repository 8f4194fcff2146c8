#include <swarm/core/identity.hpp>

#include <gtest/gtest.h>
#include <sodium.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <thread>
#include <unordered_set>

namespace {

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

std::vector<unsigned char> read_all(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::filesystem::path& path, const std::vector<unsigned char>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// The file's checksum is BLAKE2b-256 of the bytes before it; recomputing it simulates a deliberate edit.
void reseal_checksum(std::vector<unsigned char>& file) {
    ASSERT_EQ(file.size(), 172u);
    crypto_generichash(file.data() + 140, 32, file.data(), 140, nullptr, 0);
}

TEST(node_id, prints_and_parses_hex) {
    auto id = swarm::identity::generate().id();
    auto text = id.to_string();
    EXPECT_EQ(text.size(), 64u);
    EXPECT_EQ(text.find_first_not_of("0123456789abcdef"), std::string::npos);
    EXPECT_EQ(id.short_string(), text.substr(0, 16));
    EXPECT_EQ(swarm::node_id::parse(text).value(), id);
    std::string upper = text;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(swarm::node_id::parse(upper).value(), id);
}

TEST(node_id, parse_errors_say_what_is_wrong) {
    auto short_text = swarm::node_id::parse("abcd");
    ASSERT_FALSE(short_text.has_value());
    EXPECT_EQ(short_text.error(), swarm::errc::malformed);
    EXPECT_EQ(short_text.error().message, "a node id is 64 hex digits, got 4 characters");
    std::string bad(64, '0');
    bad[5] = 'g';
    auto bad_char = swarm::node_id::parse(bad);
    ASSERT_FALSE(bad_char.has_value());
    EXPECT_EQ(bad_char.error().message, "a node id is 64 hex digits, got 'g' at position 5");
}

TEST(node_id, is_blake2b_of_the_signing_key_and_orders_and_hashes) {
    auto a = swarm::identity::generate();
    auto b = swarm::identity::generate();
    std::array<unsigned char, 32> expected{};
    crypto_generichash(expected.data(), expected.size(), reinterpret_cast<const unsigned char*>(a.signing_public_key().data()),
                       32, nullptr, 0);
    EXPECT_EQ(std::memcmp(expected.data(), a.id().bytes().data(), 32), 0);
    EXPECT_EQ(swarm::node_id::from_public_key(a.signing_public_key()), a.id());
    EXPECT_NE(a.id(), b.id());
    EXPECT_TRUE(a.id() < b.id() || b.id() < a.id());
    std::unordered_set<swarm::node_id> ids{a.id(), b.id(), a.id()};
    EXPECT_EQ(ids.size(), 2u);
}

TEST(identity, signatures_verify_only_for_the_signer_and_the_message) {
    auto alice = swarm::identity::generate();
    auto bob = swarm::identity::generate();
    auto sig = alice.sign(bytes_of("join cluster"));
    EXPECT_TRUE(swarm::identity::verify(alice.signing_public_key(), bytes_of("join cluster"), sig));
    EXPECT_FALSE(swarm::identity::verify(alice.signing_public_key(), bytes_of("join clusteR"), sig));
    EXPECT_FALSE(swarm::identity::verify(bob.signing_public_key(), bytes_of("join cluster"), sig));
    sig[10] ^= std::byte{1};
    EXPECT_FALSE(swarm::identity::verify(alice.signing_public_key(), bytes_of("join cluster"), sig));
}

TEST(identity, sealed_boxes_open_only_for_the_recipient) {
    auto alice = swarm::identity::generate();
    auto bob = swarm::identity::generate();
    auto sealed = swarm::identity::seal_to(bob.box_public_key(), bytes_of("data key")).value();
    EXPECT_EQ(sealed.size(), 8 + swarm::identity::seal_overhead);
    auto opened = bob.open_sealed(sealed);
    ASSERT_TRUE(opened.has_value());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(opened->data()), opened->size()), "data key");
    EXPECT_EQ(alice.open_sealed(sealed).error(), swarm::errc::authentication_failed);
    sealed.back() ^= std::byte{1};
    EXPECT_EQ(bob.open_sealed(sealed).error(), swarm::errc::authentication_failed);
    sealed.resize(swarm::identity::seal_overhead - 1);
    EXPECT_EQ(bob.open_sealed(sealed).error(), swarm::errc::truncated);
    // The empty message still seals and opens.
    auto empty = bob.open_sealed(swarm::identity::seal_to(bob.box_public_key(), {}).value());
    ASSERT_TRUE(empty.has_value());
    EXPECT_TRUE(empty->empty());
    // A low-order recipient key would let anyone open the box: refused.
    EXPECT_EQ(swarm::identity::seal_to(swarm::identity::x25519_public_key{}, bytes_of("x")).error(),
              swarm::errc::invalid_argument);
}

TEST(identity, moves_keep_the_keys) {
    auto a = swarm::identity::generate();
    auto id = a.id();
    swarm::identity b = std::move(a);
    EXPECT_EQ(b.id(), id);
    auto c = swarm::identity::generate();
    c = std::move(b);
    EXPECT_EQ(c.id(), id);
    EXPECT_TRUE(swarm::identity::verify(c.signing_public_key(), bytes_of("m"), c.sign(bytes_of("m"))));
}

class key_file : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("swarm_identity_test_" + std::to_string(::getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::remove_all(dir_);
        std::filesystem::create_directories(dir_);
        path_ = dir_ / "node.key";
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    swarm::error load_error() {
        auto r = swarm::identity::load(path_);
        EXPECT_FALSE(r.has_value());
        return r.has_value() ? swarm::error{} : r.error();
    }

    std::filesystem::path dir_;
    std::filesystem::path path_;
};

TEST_F(key_file, save_then_load_restores_the_same_keys_with_owner_only_mode) {
    auto original = swarm::identity::generate();
    ASSERT_TRUE(original.save(path_).has_value());
    struct stat info{};
    ASSERT_EQ(::stat(path_.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    EXPECT_EQ(info.st_size, 172);

    auto loaded = swarm::identity::load(path_);
    ASSERT_TRUE(loaded.has_value()) << loaded.error().describe();
    EXPECT_EQ(loaded->id(), original.id());
    EXPECT_EQ(loaded->signing_public_key(), original.signing_public_key());
    EXPECT_EQ(loaded->box_public_key(), original.box_public_key());
    EXPECT_TRUE(swarm::identity::verify(original.signing_public_key(), bytes_of("x"), loaded->sign(bytes_of("x"))));
    EXPECT_TRUE(loaded->open_sealed(swarm::identity::seal_to(original.box_public_key(), bytes_of("k")).value()).has_value());
    // Saving again replaces the file with the new keys; no temporary file stays behind.
    auto other = swarm::identity::generate();
    ASSERT_TRUE(other.save(path_).has_value());
    EXPECT_EQ(swarm::identity::load(path_).value().id(), other.id());
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), std::filesystem::directory_iterator()), 1);
}

TEST_F(key_file, missing_and_unreadable_files_are_told_apart) {
    auto missing = load_error();
    EXPECT_EQ(missing, swarm::errc::not_found);
    EXPECT_EQ(missing.message, "key file " + path_.string() + " does not exist");
    std::filesystem::create_directory(path_);
    auto directory = load_error();
    EXPECT_EQ(directory, swarm::errc::io_error);
    EXPECT_NE(directory.message.find(path_.string()), std::string::npos);
    auto unwritable = swarm::identity::generate().save(dir_ / "absent" / "node.key");
    ASSERT_FALSE(unwritable.has_value());
    EXPECT_EQ(unwritable.error(), swarm::errc::io_error);
}

TEST_F(key_file, group_or_other_access_is_refused) {
    ASSERT_TRUE(swarm::identity::generate().save(path_).has_value());
    for (auto mode : {0640, 0604, 0610}) {
        ASSERT_EQ(::chmod(path_.c_str(), static_cast<mode_t>(mode)), 0);
        auto e = load_error();
        EXPECT_EQ(e, swarm::errc::key_file_permissions);
        EXPECT_NE(e.message.find("chmod 600 " + path_.string()), std::string::npos) << e.message;
    }
    ASSERT_EQ(::chmod(path_.c_str(), 0400), 0);
    EXPECT_TRUE(swarm::identity::load(path_).has_value());
}

TEST_F(key_file, damaged_files_are_reported_corrupt) {
    ASSERT_TRUE(swarm::identity::generate().save(path_).has_value());
    const auto good = read_all(path_);
    auto expect_corrupt = [&](std::vector<unsigned char> bytes, std::string_view why) {
        write_all(path_, bytes);
        ::chmod(path_.c_str(), 0600);
        auto e = load_error();
        EXPECT_EQ(e, swarm::errc::key_file_corrupt) << why;
        EXPECT_NE(e.message.find(why), std::string::npos) << e.message;
        EXPECT_NE(e.message.find(path_.string()), std::string::npos) << e.message;
    };
    expect_corrupt({}, "magic");
    expect_corrupt({good.begin(), good.begin() + 100}, "100 bytes instead of 172");
    auto longer = good;
    longer.push_back(0);
    expect_corrupt(longer, "longer than 172 bytes");
    auto magic = good;
    magic[0] = 'X';
    expect_corrupt(magic, "magic");
    auto version = good;
    version[9] = 2;
    expect_corrupt(version, "version 2, this build reads version 1");
    auto flipped = good;
    flipped[50] ^= 0x40;
    expect_corrupt(flipped, "checksum mismatch");
    auto wrong_sign_public = good;
    wrong_sign_public[12 + 40] ^= 1; // the public half of the Ed25519 secret key
    reseal_checksum(wrong_sign_public);
    expect_corrupt(wrong_sign_public, "Ed25519 public key does not match");
    auto wrong_box_public = good;
    wrong_box_public[108] ^= 1;
    reseal_checksum(wrong_box_public);
    expect_corrupt(wrong_box_public, "X25519 public key does not match");
}

TEST_F(key_file, load_or_create_creates_once_then_loads) {
    auto first = swarm::identity::load_or_create(path_);
    ASSERT_TRUE(first.has_value()) << first.error().describe();
    struct stat info{};
    ASSERT_EQ(::stat(path_.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    auto second = swarm::identity::load_or_create(path_);
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->id(), first->id());
}

TEST_F(key_file, concurrent_load_or_create_agrees_on_one_identity) {
    std::vector<std::optional<swarm::node_id>> ids(4);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < ids.size(); ++i)
        threads.emplace_back([&, i] {
            if (auto r = swarm::identity::load_or_create(path_)) ids[i] = r->id();
        });
    for (auto& t : threads) t.join();
    auto on_disk = swarm::identity::load(path_).value().id();
    for (const auto& id : ids) EXPECT_EQ(id, on_disk);
}

TEST_F(key_file, load_or_create_never_replaces_a_damaged_or_exposed_file) {
    ASSERT_TRUE(swarm::identity::generate().save(path_).has_value());
    auto bytes = read_all(path_);
    bytes[60] ^= 0xff;
    write_all(path_, bytes);
    ::chmod(path_.c_str(), 0600);
    auto corrupt = swarm::identity::load_or_create(path_);
    ASSERT_FALSE(corrupt.has_value());
    EXPECT_EQ(corrupt.error(), swarm::errc::key_file_corrupt);
    EXPECT_EQ(read_all(path_), bytes);

    ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
    auto exposed = swarm::identity::load_or_create(path_);
    ASSERT_FALSE(exposed.has_value());
    EXPECT_EQ(exposed.error(), swarm::errc::key_file_permissions);
    EXPECT_EQ(read_all(path_), bytes);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_), std::filesystem::directory_iterator()), 1);
}

} // namespace
