// Shared fixtures for the network storage tests: a cluster key, scratch directories, nodes under the simulator
// and on loopback, each serving a real local shard store.
#pragma once

#include "support/scratch_dir.hpp"

#include <swarm/net/driver.hpp>
#include <swarm/net/runtime.hpp>
#include <swarm/sim/network.hpp>
#include <swarm/storage/mesh.hpp>
#include <swarm/storage/object_store.hpp>
#include <swarm/storage/transfer.hpp>

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace swarm::storage::testing {

using namespace std::chrono_literals;

class scratch_dir : public swarm_test::scratch_dir {
public:
    scratch_dir() : swarm_test::scratch_dir("swarm-storage-net-test") {}
};

inline std::string random_text(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::string out(n, '\0');
    for (auto& c : out) c = static_cast<char>(gen());
    return out;
}

inline std::vector<std::byte> random_bytes(std::size_t n, std::uint64_t seed) {
    const auto s = random_text(n, seed);
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return {p, p + n};
}

inline shard_id shard(std::uint8_t tag, std::uint16_t index) {
    shard_id id;
    id.chunk.fill(tag);
    id.index = index;
    return id;
}

inline swarm::node_id node_name(std::size_t i) {
    swarm::node_id::bytes_type b{};
    b[0] = std::byte{0x5a};
    b[1] = static_cast<std::byte>(i >> 8);
    b[2] = static_cast<std::byte>(i);
    return swarm::node_id(b);
}

inline std::array<std::byte, 32> key_bytes(std::uint8_t fill) {
    std::array<std::byte, 32> k{};
    k.fill(std::byte{fill});
    return k;
}

inline transfer_config transfer_defaults(std::uint8_t key = 7, std::string label = "test-cluster") {
    transfer_config c;
    c.cluster_label = std::move(label);
    EXPECT_TRUE(c.keys.add(key_bytes(key)));
    return c;
}

/// Small chunks so tests cover many stripes with little data.
inline object_store_config small_config(unsigned k, unsigned m) {
    object_store_config c;
    c.erasure = {k, m};
    c.chunking = {chunking_mode::content_defined, 4096, 16384, 65536};
    c.inline_limit = 0;
    return c;
}

/// `n` storage nodes and one client node under the simulator. Each storage node serves a local shard store in
/// its own directory (the simulated node's "disk" is a real directory, so it survives a crash).
class sim_mesh {
public:
    static constexpr std::uint16_t port = 7400;

    explicit sim_mesh(std::size_t n, transfer_config config = transfer_defaults(), sim::network_config net = {})
        : network_(std::move(*sim::network::create(net))), config_(config) {
        for (std::size_t i = 0; i < n; ++i) add_storage_node();
        client_ = network_.add_node();
        EXPECT_TRUE(network_.add_protocol(client_, port, make_shard_transfer(config, nullptr)));
        channel_ = make_sim_channel(network_, client_, port, 60s);
    }

    /// One more storage node serving its own local store; returns its index.
    std::size_t add_storage_node() {
        auto local = open_local_shard_store(dir_.path() / ("node" + std::to_string(nodes_.size())));
        EXPECT_TRUE(local) << local.error().describe();
        locals_.push_back(std::move(*local));
        nodes_.push_back(network_.add_node());
        EXPECT_TRUE(network_.add_protocol(nodes_.back(), port, make_shard_transfer(config_, locals_.back().get())));
        return nodes_.size() - 1;
    }

    sim::network& network() { return network_; }
    sim::node_id node(std::size_t i) const { return nodes_[i]; }
    sim::node_id client() const { return client_; }
    std::size_t size() const { return nodes_.size(); }
    net::endpoint address(std::size_t i) const { return network_.endpoint_of(nodes_[i], port); }
    shard_store& local(std::size_t i) { return *locals_[i]; }
    std::unique_ptr<shard_store> remote(std::size_t i) { return make_remote_shard_store(channel_, address(i)); }
    shard_transfer& client_protocol() { return *network_.protocol_of<shard_transfer>(client_, port); }
    shard_transfer* server_protocol(std::size_t i) { return network_.protocol_of<shard_transfer>(nodes_[i], port); }
    const std::filesystem::path& root() const { return dir_.path(); }

    /// The mesh as placement sees it: node i in zone i % zones, rack i % (2 * zones).
    mesh_placement placement(std::size_t zones) const {
        mesh_placement m;
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            EXPECT_TRUE(m.upsert({node_name(i), address(i), "z" + std::to_string(i % zones),
                                  "r" + std::to_string(i % (2 * zones)), 0, true}));
        return m;
    }

private:
    scratch_dir dir_;
    sim::network network_;
    transfer_config config_;
    std::vector<std::unique_ptr<shard_store>> locals_;
    std::vector<sim::node_id> nodes_;
    sim::node_id client_ = 0;
    std::shared_ptr<transfer_channel> channel_;
};

} // namespace swarm::storage::testing
