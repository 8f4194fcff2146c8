// Placement driven by a real membership view: SWIM runs beside shard_transfer on every simulated node, the
// storage nodes advertise their zone, rack and free disk as metadata, and the client's view is what places
// shards and decides which ones repair moves.
#include "mesh_support.hpp"

#include <swarm/core/identity.hpp>
#include <swarm/membership/swim.hpp>

#include <map>

namespace swarm::storage {
namespace {

using namespace swarm::storage::testing;

constexpr std::uint16_t membership_port = 7946;

std::vector<membership::member> storage_members(const membership::swim& view) {
    // The client is a member too, but stores nothing: storage nodes are the ones that advertise a zone.
    std::vector<membership::member> out;
    for (auto& m : view.members())
        if (m.meta && m.meta->labels.contains("zone")) out.push_back(std::move(m));
    return out;
}

TEST(mesh_membership, a_node_declared_dead_by_membership_loses_its_shards_to_live_ones) {
    sim::network_config net_config;
    net_config.seed = 11;
    sim_mesh mesh(16, transfer_defaults(), net_config);
    auto& net = mesh.network();
    seal::keyring ring;
    ASSERT_TRUE(ring.add(key_bytes(0x42)));
    std::vector<sim::node_id> all;
    for (std::size_t i = 0; i < mesh.size(); ++i) all.push_back(mesh.node(i));
    all.push_back(mesh.client());
    for (auto node : all) {
        std::array<std::byte, 32> seed{};
        seed[0] = static_cast<std::byte>(node);
        seed[1] = std::byte{0x11};
        auto id = std::make_shared<const identity>(identity::from_seed(seed));
        membership::config cfg;
        if (node != all.front()) cfg.seeds = {net.endpoint_of(all.front(), membership_port)};
        ASSERT_TRUE(net.add_protocol(node, membership_port, [id, ring, cfg](net::transport& t) {
            return std::make_unique<membership::swim>(t, id, ring, cfg);
        }));
    }
    const auto swim_at = [&](sim::node_id n) { return net.protocol_of<membership::swim>(n, membership_port); };
    net.run_for(10ms);
    for (std::size_t i = 0; i < mesh.size(); ++i) {
        membership::metadata meta;
        meta.labels = {{"zone", "z" + std::to_string(i % 4)}, {"rack", "r" + std::to_string(i % 8)}};
        meta.available.disk_bytes = 100ull << 30;
        ASSERT_TRUE(swim_at(mesh.node(i))->set_metadata(meta));
    }
    auto& client_view = *swim_at(mesh.client());
    ASSERT_TRUE(net.run_until([&] { return storage_members(client_view).size() == mesh.size(); }, net.now() + 60s));

    mesh_placement placement;
    placement.update(storage_members(client_view), sim_mesh::port);
    ASSERT_EQ(placement.nodes().size(), mesh.size());
    std::vector<std::unique_ptr<shard_store>> stores;
    std::map<net::endpoint, std::size_t> node_of_address;
    for (std::size_t i = 0; i < mesh.size(); ++i) node_of_address[mesh.address(i)] = i;
    for (const auto& n : placement.nodes()) {
        ASSERT_TRUE(node_of_address.contains(n.address)) << n.address.to_string();
        stores.push_back(mesh.remote(node_of_address[n.address]));
    }
    auto opened = object_store::open(mesh.root() / "catalog", std::move(stores), small_config(8, 4), placement.placement(12));
    ASSERT_TRUE(opened) << opened.error().describe();
    auto& store = *opened;
    const auto secret = generate_convergence_secret();
    const auto reader = generate_reader_keys();
    const auto data = random_text(120'000, 5);
    std::istringstream in(data);
    ASSERT_TRUE(store.put("obj", in, {secret, {reader.public_key}, {}}));

    // Crash a storage node; membership declares it dead and the view turns it off for placement.
    const std::size_t victim_index = 5; // store index in the placement, whichever node that is
    const auto victim = node_of_address[placement.nodes()[victim_index].address];
    const auto held = mesh.local(victim).list()->size();
    ASSERT_GT(held, 0u);
    ASSERT_TRUE(net.crash(mesh.node(victim)));
    const auto victim_id = placement.nodes()[victim_index].id;
    ASSERT_TRUE(net.run_until(
        [&] {
            auto m = client_view.find(victim_id);
            return m && m->state == membership::member_state::dead;
        },
        net.now() + 120s));
    placement.update(storage_members(client_view), sim_mesh::port);
    EXPECT_FALSE(placement.nodes()[victim_index].live);

    repair_options options;
    options.relocate = placement.relocation();
    auto report = store.repair({}, options);
    ASSERT_TRUE(report) << report.error().describe();
    EXPECT_EQ(report->shards_rebuilt, held);
    EXPECT_EQ(report->shards_relocated, held);
    auto health = store.verify();
    ASSERT_TRUE(health);
    EXPECT_TRUE(health->healthy());
    std::ostringstream out;
    ASSERT_TRUE(store.get("obj", out, reader));
    EXPECT_EQ(out.str(), data);
}

} // namespace
} // namespace swarm::storage
