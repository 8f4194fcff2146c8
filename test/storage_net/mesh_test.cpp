// Placement over membership, and a 20-node simulated mesh that loses a node and gets its redundancy back.
#include "mesh_support.hpp"
#include "support/flip_byte.hpp"

#include <swarm/core/metrics.hpp>

#include <map>
#include <set>

namespace swarm::storage {
namespace {

using namespace swarm::storage::testing;

// An object store over every node of the mesh, 10+4, shards placed by `placement`.
detailed_result<object_store> open_over(sim_mesh& mesh, const mesh_placement& placement,
                                        object_store_config config = small_config(10, 4),
                                        const std::string& catalog = "catalog") {
    std::vector<std::unique_ptr<shard_store>> stores;
    for (std::size_t i = 0; i < mesh.size(); ++i) stores.push_back(mesh.remote(i));
    return object_store::open(mesh.root() / catalog, std::move(stores), config, placement.placement(14));
}

chunk_id stripe_of(std::uint64_t i) {
    chunk_id id{};
    for (std::size_t b = 0; b < 8; ++b) id[b] = static_cast<std::uint8_t>(i >> (8 * b));
    id[31] = 0x77;
    return id;
}

mesh_placement zoned(std::size_t nodes, std::size_t zones, std::size_t racks_per_zone) {
    mesh_placement m;
    for (std::size_t i = 0; i < nodes; ++i)
        EXPECT_TRUE(m.upsert({node_name(i), net::endpoint::v4(0x7f000001, static_cast<std::uint16_t>(7000 + i)),
                              "z" + std::to_string(i % zones), "r" + std::to_string((i / zones) % racks_per_zone), 0, true}));
    return m;
}

TEST(mesh_placement_test, spreads_a_stripe_over_zones_and_racks) {
    const auto m = zoned(20, 5, 2); // 5 zones of 4 nodes in 2 racks each
    for (std::uint64_t s = 0; s < 200; ++s) {
        auto placed = m.place(stripe_of(s), 14);
        ASSERT_TRUE(placed);
        std::set<std::size_t> distinct(placed->begin(), placed->end());
        EXPECT_EQ(distinct.size(), 14u);
        std::map<std::string, int> zones, racks;
        for (auto i : *placed) {
            ++zones[m.nodes()[i].zone];
            ++racks[m.nodes()[i].zone + "/" + m.nodes()[i].rack];
        }
        for (const auto& [z, n] : zones) EXPECT_LE(n, 3) << z; // 14 over 5 zones: never more than ceil(14/5)
        for (const auto& [r, n] : racks) EXPECT_LE(n, 2) << r; // 14 over 10 racks
    }
    // As many zones as shards: one shard per zone.
    const auto wide = zoned(20, 10, 1);
    auto placed = wide.place(stripe_of(1), 10);
    ASSERT_TRUE(placed);
    std::set<std::string> zones;
    for (auto i : *placed) zones.insert(wide.nodes()[i].zone);
    EXPECT_EQ(zones.size(), 10u);
}

TEST(mesh_placement_test, losing_a_node_moves_only_the_shards_it_held) {
    auto m = zoned(20, 1, 1); // no failure domains: pure rendezvous
    std::vector<std::set<std::size_t>> before;
    for (std::uint64_t s = 0; s < 300; ++s) {
        auto p = m.place(stripe_of(s), 6);
        before.emplace_back(p->begin(), p->end());
    }
    ASSERT_TRUE(m.set_live(4, false));
    std::size_t moved = 0;
    for (std::uint64_t s = 0; s < 300; ++s) {
        auto p = m.place(stripe_of(s), 6);
        std::set<std::size_t> after(p->begin(), p->end());
        EXPECT_FALSE(after.contains(4));
        std::vector<std::size_t> gone;
        std::ranges::set_difference(before[s], after, std::back_inserter(gone));
        if (before[s].contains(4)) {
            EXPECT_EQ(gone, std::vector<std::size_t>{4});
            ++moved;
        } else {
            EXPECT_TRUE(gone.empty());
        }
    }
    EXPECT_GT(moved, 50u); // about 6/20 of 300
}

TEST(mesh_placement_test, more_free_disk_draws_more_shards) {
    mesh_placement m;
    for (std::size_t i = 0; i < 10; ++i)
        ASSERT_TRUE(m.upsert({node_name(i), {}, "", "", i == 0 ? 4'000'000'000ull : 1'000'000'000ull, true}));
    std::vector<int> count(10);
    for (std::uint64_t s = 0; s < 2000; ++s) ++count[(*m.place(stripe_of(s), 1))[0]];
    // Weighted 4:1 against each of the nine others: about 4/13 of the draws.
    EXPECT_GT(count[0], 2000 * 3 / 13);
    EXPECT_LT(count[0], 2000 * 5 / 13);
}

TEST(mesh_placement_test, too_few_live_nodes_is_data_unavailable) {
    auto m = zoned(5, 5, 1);
    EXPECT_EQ(m.place(stripe_of(1), 6).error(), errc::data_unavailable);
    EXPECT_EQ(m.set_live(9, false).error(), errc::not_found);
    std::vector<std::optional<std::size_t>> wrong(3);
    EXPECT_EQ(m.place(stripe_of(1), 4, wrong).error(), errc::invalid_argument);
}

TEST(mesh_placement_test, follows_the_membership_view) {
    mesh_placement m;
    std::vector<membership::member> view;
    for (std::size_t i = 0; i < 3; ++i) {
        membership::member member;
        member.id = node_name(i);
        member.address = net::endpoint::v4(0x0a000001 + static_cast<std::uint32_t>(i), 7946);
        auto meta = std::make_shared<membership::metadata>();
        meta->labels = {{"zone", "z" + std::to_string(i)}, {"rack", "r1"}};
        meta->available.disk_bytes = 1000 * (i + 1);
        member.meta = meta;
        view.push_back(member);
    }
    m.update(view, 7500);
    ASSERT_EQ(m.nodes().size(), 3u);
    EXPECT_EQ(m.nodes()[1].zone, "z1");
    EXPECT_EQ(m.nodes()[1].rack, "r1");
    EXPECT_EQ(m.nodes()[2].available_disk, 3000u);
    EXPECT_EQ(m.nodes()[0].address, net::endpoint::v4(0x0a000001, 7500));
    // Node 1 dies and the view is reordered: the indices stay, only liveness changes.
    view[1].state = membership::member_state::dead;
    std::swap(view[0], view[2]);
    m.update(view, 7500);
    ASSERT_EQ(m.nodes().size(), 3u);
    EXPECT_FALSE(m.nodes()[1].live);
    EXPECT_TRUE(m.nodes()[0].live);
    EXPECT_EQ(*m.index_of(node_name(2)), 2u);
}

TEST(mesh_placement_test, the_node_table_survives_a_restart_and_bad_files_are_named) {
    scratch_dir dir;
    auto m = zoned(5, 2, 2);
    ASSERT_TRUE(m.set_live(3, false));
    ASSERT_TRUE(m.save(dir.path() / "mesh.bin"));
    auto back = mesh_placement::load(dir.path() / "mesh.bin");
    ASSERT_TRUE(back) << back.error().describe();
    ASSERT_EQ(back->nodes().size(), 5u);
    for (std::size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(back->nodes()[i].id, m.nodes()[i].id);
        EXPECT_EQ(back->nodes()[i].address, m.nodes()[i].address);
        EXPECT_EQ(back->nodes()[i].zone, m.nodes()[i].zone);
        EXPECT_EQ(back->nodes()[i].live, m.nodes()[i].live);
    }
    EXPECT_EQ(*back->place(stripe_of(5), 3), *m.place(stripe_of(5), 3));

    EXPECT_EQ(mesh_placement::load(dir.path() / "absent").error(), errc::not_found);
    const auto full = std::filesystem::file_size(dir.path() / "mesh.bin");
    std::filesystem::resize_file(dir.path() / "mesh.bin", full - 3);
    auto cut = mesh_placement::load(dir.path() / "mesh.bin");
    ASSERT_FALSE(cut);
    EXPECT_EQ(cut.error(), errc::truncated);
    EXPECT_NE(cut.error().message.find("mesh.bin"), std::string::npos);
}

// The scenario: 20 nodes in 5 zones, objects stored 10+4, one node crashes; every get succeeds before
// and after repair, and repair reads exactly k shards per stripe and rebuilds on other nodes what the lost
// node held, reporting it as events and metrics.
TEST(mesh_sim, a_lost_node_is_repaired_onto_the_others) {
    sim_mesh mesh(20);
    auto placement = mesh.placement(5);
    auto opened = open_over(mesh, placement);
    ASSERT_TRUE(opened) << opened.error().describe();
    auto& store = *opened;
    const auto secret = generate_convergence_secret();
    const auto reader = generate_reader_keys();
    std::vector<std::string> data;
    for (int i = 0; i < 3; ++i) {
        data.push_back(random_text(150'000 + 1000 * static_cast<std::size_t>(i), 100 + static_cast<std::uint64_t>(i)));
        std::istringstream in(data.back());
        ASSERT_TRUE(store.put("obj" + std::to_string(i), in, {secret, {reader.public_key}, {}}));
    }
    const auto get_all = [&] {
        for (int i = 0; i < 3; ++i) {
            std::ostringstream out;
            auto r = store.get("obj" + std::to_string(i), out, reader);
            ASSERT_TRUE(r) << r.error().describe();
            EXPECT_EQ(out.str(), data[static_cast<std::size_t>(i)]);
        }
    };
    get_all();

    const std::size_t victim = 7;
    const auto lost = mesh.local(victim).list()->size();
    ASSERT_GT(lost, 0u);
    ASSERT_TRUE(mesh.network().crash(mesh.node(victim)));
    ASSERT_TRUE(placement.set_live(victim, false)); // what membership would report
    get_all();
    auto degraded = store.verify();
    ASSERT_TRUE(degraded);
    EXPECT_EQ(degraded->unreachable_shards, lost);
    EXPECT_EQ(degraded->corrupt_shards, 0u);
    EXPECT_FALSE(degraded->healthy());

    metrics::registry registry;
    std::map<repair_event_kind, std::uint64_t> events;
    std::set<std::size_t> targets;
    repair_options options;
    options.relocate = placement.relocation();
    options.metrics = &registry;
    options.on_event = [&](const repair_event& e) {
        ++events[e.kind];
        if (e.kind == repair_event_kind::shard_rebuilt) {
            EXPECT_EQ(e.from_store, victim);
            targets.insert(e.to_store);
        }
    };
    auto report = store.repair({}, options);
    ASSERT_TRUE(report) << report.error().describe();
    EXPECT_EQ(report->shards_rebuilt, lost);
    EXPECT_EQ(report->shards_relocated, lost);
    EXPECT_EQ(report->unrecoverable_stripes, 0u);
    EXPECT_EQ(report->shards_read, 10 * report->stripes); // exactly k per stripe
    EXPECT_EQ(events[repair_event_kind::shard_rebuilt], lost);
    EXPECT_EQ(events[repair_event_kind::stripe_scanned], report->stripes);
    EXPECT_FALSE(targets.contains(victim));
    EXPECT_GT(targets.size(), 1u); // spread, not all onto one node
    const auto text = registry.render();
    EXPECT_NE(text.find("swarm_storage_repair_shards_rebuilt_total " + std::to_string(lost)), std::string::npos) << text;
    EXPECT_NE(text.find("swarm_storage_repair_bytes_read_total " + std::to_string(report->bytes_read)), std::string::npos);

    // Full redundancy without the lost node: every shard readable where the catalog now says it is.
    auto health = store.verify();
    ASSERT_TRUE(health);
    EXPECT_TRUE(health->healthy()) << health->missing_shards << " missing, " << health->corrupt_shards << " corrupt";
    get_all();
    // A second run finds nothing to do.
    auto again = store.repair({}, options);
    ASSERT_TRUE(again);
    EXPECT_EQ(again->shards_rebuilt, 0u);
}

TEST(mesh_sim, a_node_that_joins_after_open_takes_new_stripes_and_repairs) {
    sim_mesh mesh(20);
    auto placement = mesh.placement(5);
    auto opened = open_over(mesh, placement);
    ASSERT_TRUE(opened) << opened.error().describe();
    auto& store = *opened;
    const auto secret = generate_convergence_secret();
    const auto reader = generate_reader_keys();
    std::vector<std::string> data;
    const auto put = [&](int i) {
        data.push_back(random_text(120'000, 300 + static_cast<std::uint64_t>(i)));
        std::istringstream in(data.back());
        ASSERT_TRUE(store.put("obj" + std::to_string(i), in, {secret, {reader.public_key}, {}}));
    };
    put(0);
    put(1);

    // Node 20 joins in a zone of its own: membership adds it to the placement table, the store gets its index.
    const std::size_t joined = mesh.add_storage_node();
    auto index = placement.upsert({node_name(joined), mesh.address(joined), "z5", "r10", 0, true});
    ASSERT_TRUE(index);
    auto added = store.add_store(mesh.remote(joined));
    ASSERT_TRUE(added) << added.error().describe();
    ASSERT_EQ(*added, *index);
    EXPECT_TRUE(mesh.local(joined).list()->empty());
    put(2);
    put(3);
    EXPECT_GT(mesh.local(joined).list()->size(), 0u) << "new stripes skipped the node that joined";

    // A node dies: the joined node can take its shards.
    ASSERT_TRUE(mesh.network().crash(mesh.node(4)));
    ASSERT_TRUE(placement.set_live(4, false));
    std::set<std::size_t> targets;
    repair_options options;
    options.relocate = placement.relocation();
    options.on_event = [&](const repair_event& e) {
        if (e.kind == repair_event_kind::shard_rebuilt) targets.insert(e.to_store);
    };
    auto report = store.repair({}, options);
    ASSERT_TRUE(report) << report.error().describe();
    EXPECT_EQ(report->unrecoverable_stripes, 0u);
    EXPECT_TRUE(targets.contains(joined));
    auto health = store.verify();
    ASSERT_TRUE(health);
    EXPECT_TRUE(health->healthy());
    for (int i = 0; i < 4; ++i) {
        std::ostringstream out;
        ASSERT_TRUE(store.get("obj" + std::to_string(i), out, reader));
        EXPECT_EQ(out.str(), data[static_cast<std::size_t>(i)]);
    }
}

// Reads take the first k shards to arrive: a node 3 s away (each way) holds a shard of every stripe, a data
// shard of most; with two extra shards asked for, a get does not wait for it, and without them it does.
TEST(mesh_sim, a_slow_node_does_not_hold_reads_back) {
    sim_mesh mesh(14);
    auto placement = mesh.placement(7);
    auto config = small_config(10, 4);
    const auto reader = generate_reader_keys();
    const std::string data = random_text(400'000, 77);
    const std::size_t slow = 3;
    sim::link_config far;
    far.latency = 3s;
    const auto timed_get = [&](object_store& store) {
        const auto start = mesh.network().now();
        std::ostringstream out;
        auto r = store.get("obj", out, reader);
        EXPECT_TRUE(r) << r.error().describe();
        EXPECT_EQ(out.str(), data);
        return mesh.network().now() - start;
    };
    {
        auto store = open_over(mesh, placement, config);
        ASSERT_TRUE(store) << store.error().describe();
        std::istringstream in(data);
        ASSERT_TRUE(store->put("obj", in, {generate_convergence_secret(), {reader.public_key}, {}}));
        ASSERT_TRUE(mesh.network().set_link(mesh.client(), mesh.node(slow), far));
        ASSERT_TRUE(mesh.network().set_link(mesh.node(slow), mesh.client(), far));
        EXPECT_LT(timed_get(*store), 1s);
        // Two fast nodes' shards corrupted too: of the 12 asked, 9 are good and fast, so each bad one is caught
        // and another shard asked for, still without waiting for the slow node.
        std::size_t flipped = 0;
        for (const char* node : {"node0", "node1"})
            for (const auto& f : std::filesystem::directory_iterator(mesh.root() / node / "shards")) {
                swarm_test::flip_byte(f.path(), 200);
                ++flipped;
            }
        ASSERT_GT(flipped, 0u);
        EXPECT_LT(timed_get(*store), 1s);
    }
    // The same catalog read k shards at a time: every stripe whose data shard is on the slow node waits 6 s.
    config.extra_reads = 0;
    auto strict = open_over(mesh, placement, config);
    ASSERT_TRUE(strict) << strict.error().describe();
    EXPECT_GE(timed_get(*strict), 6s);
}

} // namespace
} // namespace swarm::storage
