// Shard transfer: the protocol under the simulator (virtual time) and on loopback sockets, its codec and config.
#include "mesh_support.hpp"

#include <swarm/core/wire.hpp>

#include <algorithm>
#include <future>

namespace swarm::storage {
namespace {

using namespace swarm::storage::testing;

TEST(transfer_sim, every_operation_round_trips) {
    sim_mesh mesh(1);
    auto remote = mesh.remote(0);
    const auto payload = random_bytes(3000, 1);
    ASSERT_TRUE(remote->put(shard(1, 2), payload));
    ASSERT_TRUE(remote->sync());
    std::vector<std::byte> out(payload.size());
    ASSERT_TRUE(remote->get(shard(1, 2), out));
    EXPECT_EQ(out, payload);
    EXPECT_TRUE(*remote->contains(shard(1, 2)));
    EXPECT_FALSE(*remote->contains(shard(1, 3)));
    // The server really stored it: its local store has the same bytes.
    std::vector<std::byte> local(payload.size());
    ASSERT_TRUE(mesh.local(0).get(shard(1, 2), local));
    EXPECT_EQ(local, payload);
    EXPECT_EQ(*remote->list(), std::vector<shard_id>{shard(1, 2)});
    EXPECT_EQ(remote->get(shard(9, 9), out).error(), errc::not_found);
    std::vector<std::byte> wrong(10);
    EXPECT_FALSE(remote->get(shard(1, 2), wrong)); // the server refuses a length that is not the stored one
    ASSERT_TRUE(remote->remove(shard(1, 2)));
    EXPECT_FALSE(*remote->contains(shard(1, 2)));
    EXPECT_TRUE(remote->list()->empty());
}

TEST(transfer_sim, list_pages_through_every_shard_in_order) {
    auto config = transfer_defaults();
    config.list_page = 3;
    sim_mesh mesh(1, config);
    auto remote = mesh.remote(0);
    std::vector<shard_id> expected;
    for (std::uint8_t t = 0; t < 4; ++t)
        for (std::uint16_t i = 0; i < 3; ++i) {
            ASSERT_TRUE(remote->put(shard(t, i), random_bytes(10, t * 10u + i)));
            expected.push_back(shard(t, i));
        }
    EXPECT_EQ(*remote->list(), expected);
}

TEST(transfer_sim, a_node_with_another_key_or_cluster_is_refused_with_a_clear_error) {
    sim_mesh mesh(1);
    // A second client node with a different key, then one with the right key but another cluster label.
    auto& net = mesh.network();
    const auto intruder = net.add_node();
    ASSERT_TRUE(net.add_protocol(intruder, sim_mesh::port, make_shard_transfer(transfer_defaults(99), nullptr)));
    auto wrong_key = make_remote_shard_store(make_sim_channel(net, intruder, sim_mesh::port, 60s), mesh.address(0));
    ASSERT_TRUE(wrong_key->put(shard(1, 1), random_bytes(10, 1))); // pipelined: the refusal comes at sync()
    EXPECT_EQ(wrong_key->sync().error(), errc::unknown_key);

    const auto stranger = net.add_node();
    ASSERT_TRUE(net.add_protocol(stranger, sim_mesh::port, make_shard_transfer(transfer_defaults(7, "other"), nullptr)));
    auto wrong_label = make_remote_shard_store(make_sim_channel(net, stranger, sim_mesh::port, 60s), mesh.address(0));
    EXPECT_EQ(wrong_label->contains(shard(1, 1)).error(), errc::wrong_cluster);

    EXPECT_FALSE(*mesh.local(0).contains(shard(1, 1)));
    EXPECT_EQ(mesh.server_protocol(0)->stats().frames_refused, 2u);
}

TEST(transfer_sim, a_crashed_peer_fails_fast_and_serves_again_after_restart) {
    sim_mesh mesh(1);
    auto remote = mesh.remote(0);
    ASSERT_TRUE(remote->put(shard(1, 1), random_bytes(100, 1)));
    ASSERT_TRUE(remote->sync());
    ASSERT_TRUE(mesh.network().crash(mesh.node(0)));
    auto r = remote->contains(shard(1, 1));
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error() == errc::connection_reset || r.error() == errc::timed_out) << r.error().message();
    // Within the backoff, the next call fails at once instead of waiting for another connect timeout.
    const auto before = mesh.network().now();
    EXPECT_FALSE(remote->contains(shard(1, 1)));
    EXPECT_EQ(mesh.network().now(), before);

    ASSERT_TRUE(mesh.network().restart(mesh.node(0)));
    mesh.network().run_for(2s); // past the backoff
    EXPECT_TRUE(*remote->contains(shard(1, 1))); // the node's disk kept the shard
}

TEST(transfer_sim, a_request_to_a_stalled_peer_times_out_at_its_deadline) {
    auto config = transfer_defaults();
    config.request_timeout = 2s;
    sim_mesh mesh(1, config);
    auto remote = mesh.remote(0);
    ASSERT_TRUE(remote->contains(shard(1, 1))); // the stream is open
    ASSERT_TRUE(mesh.network().pause(mesh.node(0)));
    const auto before = mesh.network().now();
    EXPECT_EQ(remote->contains(shard(1, 1)).error(), errc::timed_out);
    EXPECT_GE(mesh.network().now() - before, 2s);
    EXPECT_LT(mesh.network().now() - before, 3s);
    EXPECT_EQ(mesh.client_protocol().stats().requests_timed_out, 1u);
}

// Issues `count` puts of `size` bytes at once from the client and returns the virtual time until all replied.
duration burst(sim_mesh& mesh, std::size_t count, std::size_t size) {
    auto& net = mesh.network();
    std::size_t done = 0, failed = 0;
    const auto start = net.now();
    net.at(start, [&] {
        for (std::size_t i = 0; i < count; ++i) {
            transfer_request r{transfer_op::put, shard(static_cast<std::uint8_t>(i), 0)};
            r.payload = random_bytes(size, i);
            mesh.client_protocol().call(mesh.address(0), std::move(r), [&](transfer_reply reply) {
                ++done;
                failed += reply.status ? 1 : 0;
            });
        }
    });
    EXPECT_TRUE(net.run_until([&] { return done == count; }, start + 60s));
    EXPECT_EQ(failed, 0u);
    return net.now() - start;
}

TEST(transfer_sim, the_window_bounds_bytes_in_flight_per_peer) {
    sim::network_config slow;
    slow.default_link.latency = 20ms; // 40 ms per round trip
    auto narrow = transfer_defaults();
    narrow.max_inflight_bytes = 17 * 1024; // two 8 KiB puts at a time
    sim_mesh a(1, narrow, slow);
    const auto narrow_time = burst(a, 16, 8 * 1024);
    sim_mesh b(1, transfer_defaults(), slow);
    const auto wide_time = burst(b, 16, 8 * 1024);
    // 8 round trips at least with the narrow window; the wide one sends all 128 KiB at once (within the
    // simulated TCP window).
    EXPECT_GE(narrow_time, 8 * 40ms);
    EXPECT_LT(wide_time, narrow_time / 3);
    EXPECT_EQ(a.server_protocol(0)->stats().requests_served, 16u);
}

TEST(transfer_sim, requests_beyond_the_queue_or_the_shard_size_fail_at_once) {
    auto config = transfer_defaults();
    config.max_queued_requests = 2;
    config.max_shard_size = 1000;
    config.max_server_queue_bytes = config.max_inflight_bytes + 1000;
    sim_mesh mesh(1, config);
    auto remote = mesh.remote(0);
    // put() is pipelined: the refusal surfaces at the next sync(), and the sync after that is clean.
    ASSERT_TRUE(remote->put(shard(1, 1), random_bytes(1001, 1)));
    EXPECT_EQ(remote->sync().error(), errc::too_large);
    EXPECT_TRUE(remote->sync());
    std::vector<errc> results;
    auto& net = mesh.network();
    net.at(net.now(), [&] {
        for (int i = 0; i < 3; ++i)
            mesh.client_protocol().call(mesh.address(0), {transfer_op::sync}, [&](transfer_reply r) {
                results.push_back(r.status ? static_cast<errc>(r.status.value()) : errc{});
            });
    });
    net.run_until([&] { return results.size() == 3; }, net.now() + 10s);
    ASSERT_EQ(results.size(), 3u);
    EXPECT_EQ(results[0], errc::too_large); // the third call, refused while the first two wait for the stream
    EXPECT_EQ(results[1], errc{});
    EXPECT_EQ(results[2], errc{});
}

TEST(transfer_sim, prefetched_gets_overlap_and_a_later_put_is_never_hidden) {
    sim::network_config slow;
    slow.default_link.latency = 20ms; // 40 ms per round trip
    sim_mesh mesh(1, transfer_defaults(), slow);
    auto remote = mesh.remote(0);
    for (std::uint16_t i = 0; i < 5; ++i) ASSERT_TRUE(remote->put(shard(1, i), random_bytes(1000, i)));
    ASSERT_TRUE(remote->sync());
    auto& net = mesh.network();
    std::vector<std::byte> out(1000);

    auto start = net.now();
    for (std::uint16_t i = 0; i < 5; ++i) ASSERT_TRUE(remote->get(shard(1, i), out));
    const auto one_by_one = net.now() - start;
    start = net.now();
    for (std::uint16_t i = 0; i < 5; ++i) remote->prefetch(shard(1, i), 1000);
    for (std::uint16_t i = 0; i < 5; ++i) {
        ASSERT_TRUE(remote->get(shard(1, i), out));
        EXPECT_EQ(out, random_bytes(1000, i));
    }
    const auto overlapped = net.now() - start;
    EXPECT_GE(one_by_one, 5 * 40ms);
    EXPECT_LT(overlapped, 2 * 40ms);

    // A put after the prefetch wins; so does a remove.
    remote->prefetch(shard(1, 0), 1000);
    ASSERT_TRUE(remote->put(shard(1, 0), random_bytes(1000, 77)));
    ASSERT_TRUE(remote->get(shard(1, 0), out));
    EXPECT_EQ(out, random_bytes(1000, 77));
    remote->prefetch(shard(1, 1), 1000);
    ASSERT_TRUE(remote->remove(shard(1, 1)));
    EXPECT_EQ(remote->get(shard(1, 1), out).error(), errc::not_found);
}

/// A test double for a broken or hostile peer: connects and sends fixed frames, records what comes back.
class raw_client final : public net::protocol {
public:
    raw_client(net::transport& t, net::endpoint server, std::vector<std::vector<std::byte>> frames,
               std::vector<std::vector<std::byte>>& received, bool& closed)
        : t_(t), server_(server), frames_(std::move(frames)), received_(received), closed_(closed) {}
    void on_start() override { t_.connect(server_); }
    void on_datagram(const net::endpoint&, std::span<const std::byte>) override {}
    void on_stream_open(net::stream_id s, const net::endpoint&, bool) override {
        for (const auto& f : frames_) t_.write(s, f);
    }
    void on_stream_frame(net::stream_id, std::span<const std::byte> f) override { received_.emplace_back(f.begin(), f.end()); }
    void on_stream_closed(net::stream_id, boost::system::error_code) override { closed_ = true; }

private:
    net::transport& t_;
    net::endpoint server_;
    std::vector<std::vector<std::byte>> frames_;
    std::vector<std::vector<std::byte>>& received_;
    bool& closed_;
};

std::vector<std::byte> frame_of(std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return {p, p + s.size()};
}

TEST(transfer_sim, garbage_from_a_peer_gets_a_reject_and_a_closed_stream) {
    const std::vector<std::pair<std::vector<std::byte>, errc>> cases = {
        {frame_of("nonsense"), errc::malformed},
        {frame_of("HSWST"), errc::truncated},
        {frame_of("HSWST\x02................"), errc::unsupported_version},
        {frame_of("HSWST\x01................extra"), errc::malformed},
    };
    for (const auto& [bad, why] : cases) {
        sim_mesh mesh(1);
        auto& net = mesh.network();
        std::vector<std::vector<std::byte>> received;
        bool closed = false;
        const auto n = net.add_node();
        ASSERT_TRUE(net.add_protocol(n, 9, [&, f = bad](net::transport& t) {
            return std::make_unique<raw_client>(t, mesh.address(0), std::vector<std::vector<std::byte>>{f}, received, closed);
        }));
        net.run_until([&] { return closed; }, net.now() + 10s);
        EXPECT_TRUE(closed);
        ASSERT_EQ(received.size(), 2u); // the server's hello, then its reject
        const auto& reject = received[1];
        ASSERT_EQ(reject.size(), 8u);
        EXPECT_EQ(reject[0], std::byte{'R'});
        EXPECT_EQ(static_cast<int>(reject[7]), static_cast<int>(why));
        EXPECT_EQ(mesh.server_protocol(0)->stats().frames_refused, 1u);
    }
}

TEST(transfer_wire, decoders_reject_bad_bytes_with_a_clear_error) {
    std::vector<std::byte> good;
    transfer_request put{transfer_op::put, shard(3, 4)};
    put.payload = random_bytes(50, 3);
    transfer_wire::encode({77, put}, good);
    auto round = transfer_wire::decode_request(good, 1000);
    ASSERT_TRUE(round);
    EXPECT_EQ(round->id, 77u);
    EXPECT_EQ(round->request.payload, put.payload);
    EXPECT_EQ(round->request.shard, shard(3, 4));

    for (std::size_t cut = 0; cut < good.size(); ++cut)
        EXPECT_EQ(transfer_wire::decode_request(std::span(good).first(cut), 1000).error(), errc::truncated) << cut;
    auto longer = good;
    longer.push_back(std::byte{0});
    EXPECT_EQ(transfer_wire::decode_request(longer, 1000).error(), errc::malformed);
    EXPECT_EQ(transfer_wire::decode_request(good, 49).error(), errc::too_large);
    auto bad_op = good;
    bad_op[9] = std::byte{42};
    EXPECT_EQ(transfer_wire::decode_request(bad_op, 1000).error(), errc::malformed);

    transfer_wire::reply_message list{5, transfer_op::list, {}};
    list.reply.shards = {shard(1, 1), shard(2, 2)};
    list.reply.more = true;
    std::vector<std::byte> reply;
    transfer_wire::encode(list, reply);
    auto decoded = transfer_wire::decode_reply(reply, 1000);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->reply.shards, list.reply.shards);
    EXPECT_TRUE(decoded->reply.more);
    auto huge_count = reply;
    huge_count[12] = std::byte{0xff}; // the count's top byte: more entries than bytes left
    EXPECT_EQ(transfer_wire::decode_reply(huge_count, 1000).error(), errc::truncated);
    EXPECT_EQ(transfer_wire::decode_reply(good, 1000).error(), errc::malformed); // a request is no reply
}

TEST(transfer_config_test, invalid_values_are_named) {
    auto c = transfer_defaults();
    EXPECT_TRUE(c.validate());
    c.max_server_queue_bytes = 10;
    auto r = c.validate();
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("max_server_queue_bytes"), std::string::npos);
    c = transfer_defaults();
    c.request_timeout = 0s;
    EXPECT_NE(c.validate().error().message.find("request_timeout"), std::string::npos);
    c = transfer_defaults();
    c.cluster_label.clear();
    EXPECT_NE(c.validate().error().message.find("cluster_label"), std::string::npos);
}

// Loopback TCP: three storage nodes and a client, each a socket_driver on one runtime.
class loopback_mesh {
public:
    explicit loopback_mesh(std::size_t n, transfer_config config = transfer_defaults()) : rt_(2) {
        for (std::size_t i = 0; i < n; ++i) {
            auto local = open_local_shard_store(dir_.path() / ("node" + std::to_string(i)));
            EXPECT_TRUE(local);
            locals_.push_back(std::move(*local));
            net::driver_config dc;
            dc.bind = net::endpoint::v4(0x7f000001, 0);
            auto d = net::socket_driver::create(rt_.get_executor(), dc, make_shard_transfer(config, locals_.back().get()));
            EXPECT_TRUE(d) << d.error().describe();
            drivers_.push_back(std::move(*d));
        }
        net::driver_config dc;
        dc.bind = net::endpoint::v4(0x7f000001, 0);
        auto c = net::socket_driver::create(rt_.get_executor(), dc, make_shard_transfer(config, nullptr));
        EXPECT_TRUE(c);
        client_.emplace(std::move(*c));
        channel_ = make_socket_channel(*client_, config.request_timeout + 5s);
    }
    ~loopback_mesh() {
        client_.reset();
        drivers_.clear();
        rt_.stop();
    }
    std::unique_ptr<shard_store> remote(std::size_t i) {
        return make_remote_shard_store(channel_, drivers_[i].local_endpoint());
    }
    net::endpoint address(std::size_t i) const { return drivers_[i].local_endpoint(); }
    void stop(std::size_t i) { drivers_[i].stop_and_wait(); }
    shard_store& local(std::size_t i) { return *locals_[i]; }
    const std::filesystem::path& root() const { return dir_.path(); }

private:
    scratch_dir dir_;
    swarm::runtime rt_;
    std::vector<std::unique_ptr<shard_store>> locals_;
    std::vector<net::socket_driver> drivers_;
    std::optional<net::socket_driver> client_;
    std::shared_ptr<transfer_channel> channel_;
};

TEST(transfer_tcp, every_operation_round_trips_over_loopback) {
    loopback_mesh mesh(1);
    auto remote = mesh.remote(0);
    const auto payload = random_bytes(200'000, 5);
    ASSERT_TRUE(remote->put(shard(1, 0), payload));
    ASSERT_TRUE(remote->sync());
    std::vector<std::byte> out(payload.size());
    ASSERT_TRUE(remote->get(shard(1, 0), out));
    EXPECT_EQ(out, payload);
    EXPECT_TRUE(*remote->contains(shard(1, 0)));
    EXPECT_EQ(*remote->list(), std::vector<shard_id>{shard(1, 0)});
    ASSERT_TRUE(remote->remove(shard(1, 0)));
    EXPECT_EQ(remote->get(shard(1, 0), out).error(), errc::not_found);
}

TEST(transfer_tcp, a_stopped_node_is_a_clear_error_not_a_hang) {
    loopback_mesh mesh(1);
    auto remote = mesh.remote(0);
    ASSERT_TRUE(remote->contains(shard(1, 1)));
    mesh.stop(0);
    auto r = remote->contains(shard(1, 1));
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error() == errc::connection_reset || r.error() == errc::connection_refused) << r.error().message();
}

TEST(transfer_tcp, object_store_over_remote_nodes_survives_a_lost_node_and_repairs_elsewhere) {
    loopback_mesh mesh(7);
    mesh_placement placement;
    for (std::size_t i = 0; i < 7; ++i) ASSERT_TRUE(placement.upsert({node_name(i), mesh.address(i), "z" + std::to_string(i), "", 0, true}));
    std::vector<std::unique_ptr<shard_store>> stores;
    for (std::size_t i = 0; i < 7; ++i) stores.push_back(mesh.remote(i));
    auto opened = object_store::open(mesh.root() / "catalog", std::move(stores), small_config(4, 2), placement.placement(6));
    ASSERT_TRUE(opened) << opened.error().describe();
    auto& store = *opened;
    const auto secret = generate_convergence_secret();
    const auto reader = generate_reader_keys();
    const auto data = random_text(300'000, 9);
    std::istringstream in(data);
    ASSERT_TRUE(store.put("obj", in, {secret, {reader.public_key}, {}}));

    mesh.stop(3);
    ASSERT_TRUE(placement.set_live(3, false));
    std::ostringstream out;
    auto got = store.get("obj", out, reader);
    ASSERT_TRUE(got) << got.error().describe();
    EXPECT_EQ(out.str(), data);

    repair_options options;
    options.relocate = placement.relocation();
    auto report = store.repair({}, options);
    ASSERT_TRUE(report) << report.error().describe();
    EXPECT_GT(report->shards_rebuilt, 0u);
    EXPECT_EQ(report->shards_relocated, report->shards_rebuilt);
    auto health = store.verify();
    ASSERT_TRUE(health);
    EXPECT_TRUE(health->healthy()) << health->missing_shards << " missing";
}

} // namespace
} // namespace swarm::storage
