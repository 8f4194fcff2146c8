// Shared fixtures for the storage tests: scratch directories on tmpfs where there is one, random bytes.
#pragma once

#include "support/scratch_dir.hpp"

#include <swarm/storage/object_store.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace swarm::storage::testing {

class scratch_dir : public swarm_test::scratch_dir {
public:
    scratch_dir() : swarm_test::scratch_dir("swarm-storage-test") {}
};

inline std::string random_bytes(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::string out(n, '\0');
    for (std::size_t i = 0; i < n; i += 8) {
        const std::uint64_t v = gen();
        for (std::size_t j = 0; j < 8 && i + j < n; ++j) out[i + j] = static_cast<char>(v >> (8 * j));
    }
    return out;
}

/// N local shard stores under one directory, and an object_store over them, reopenable as after a restart.
class cluster {
public:
    explicit cluster(object_store_config config, std::size_t nodes = 0) : config_(config) {
        nodes_ = nodes ? nodes : config.erasure.total();
        reopen();
    }

    void reopen() {
        store_.reset();
        std::vector<std::unique_ptr<shard_store>> stores;
        for (std::size_t i = 0; i < nodes_; ++i) {
            auto s = open_local_shard_store(node_dir(i));
            EXPECT_TRUE(s) << s.error().describe();
            stores.push_back(std::move(*s));
        }
        auto opened = object_store::open(dir_.path() / "catalog", std::move(stores), config_);
        EXPECT_TRUE(opened) << opened.error().describe();
        store_.emplace(std::move(*opened));
    }

    void reopen(const object_store_config& config) {
        config_ = config;
        reopen();
    }
    void close() { store_.reset(); }

    /// A new node's local store, added to the open object_store (and to every reopen after).
    std::size_t add_node() {
        auto s = open_local_shard_store(node_dir(nodes_));
        EXPECT_TRUE(s) << s.error().describe();
        auto index = store_->add_store(std::move(*s));
        EXPECT_TRUE(index) << index.error().describe();
        EXPECT_EQ(*index, nodes_);
        return nodes_++;
    }

    object_store& store() { return *store_; }
    std::filesystem::path node_dir(std::size_t i) const { return dir_.path() / ("node" + std::to_string(i)); }
    std::filesystem::path shards_dir(std::size_t i) const { return node_dir(i) / "shards"; }
    const std::filesystem::path& root() const { return dir_.path(); }
    std::size_t nodes() const { return nodes_; }

    std::vector<std::filesystem::path> shard_files(std::size_t node) const {
        std::vector<std::filesystem::path> out;
        for (const auto& e : std::filesystem::directory_iterator(shards_dir(node))) out.push_back(e.path());
        std::sort(out.begin(), out.end());
        return out;
    }
    std::size_t total_shard_files() const {
        std::size_t n = 0;
        for (std::size_t i = 0; i < nodes_; ++i) n += shard_files(i).size();
        return n;
    }
    void lose_node(std::size_t i) {
        for (const auto& f : shard_files(i)) std::filesystem::remove(f);
    }

    put_options writer() const { return {secret_, {reader_.public_key}, {}}; }
    const key32& secret() const { return secret_; }
    const reader_keys& reader() const { return reader_; }

    detailed_result<object_info> put(const std::string& name, const std::string& data) {
        std::istringstream in(data);
        return store_->put(name, in, writer());
    }
    std::string get(const std::string& name, byte_range range = {}) {
        std::ostringstream out;
        auto r = store_->get(name, out, reader_, range);
        EXPECT_TRUE(r) << r.error().describe();
        return out.str();
    }

private:
    object_store_config config_;
    std::size_t nodes_;
    scratch_dir dir_;
    std::optional<object_store> store_;
    key32 secret_ = generate_convergence_secret();
    reader_keys reader_ = generate_reader_keys();
};

/// Small chunks so tests cover many stripes with little data.
inline object_store_config small_config(unsigned k = 10, unsigned m = 4) {
    object_store_config c;
    c.erasure = {k, m};
    c.chunking = {chunking_mode::content_defined, 4096, 16384, 65536};
    c.inline_limit = 0;
    return c;
}

} // namespace swarm::storage::testing
