// A storage mesh on loopback: starts N nodes in this process (each serving its own shard directory over TCP),
// stores objects 4+2 across them, and runs one command against it.
//
//   swarm_storage DIR put NAME FILE        store FILE as NAME (progress bar for large files)
//   swarm_storage DIR get NAME FILE [--offset N] [--length N]
//   swarm_storage DIR ls [PREFIX]
//   swarm_storage DIR stat NAME
//   swarm_storage DIR rm NAME
//   swarm_storage DIR verify [NAME]
//   swarm_storage DIR repair [NAME]        rebuild missing shards; those of a lost node go to other nodes
// Options, before or after the command: --nodes N (default 8, at least 6; repair needs a node free of the stripe), --lose I (do not start node I, as
// if it had failed: reads go around it and repair moves its shards).
//
// DIR holds node0..nodeN-1 (shard files), catalog/, mesh.bin (the node table) and keys.bin (the cluster key, the convergence secret and
// the reader key pair, created on first use with mode 0600; a real deployment keeps these in a key store).
#include <swarm/net/driver.hpp>
#include <swarm/net/runtime.hpp>
#include <swarm/storage/mesh.hpp>
#include <swarm/storage/object_store.hpp>
#include <swarm/storage/transfer.hpp>

#include <fmt/format.h>

#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <streambuf>
#include <string>
#include <vector>

namespace fs = std::filesystem;
namespace ss = swarm::storage;
using namespace std::chrono_literals;

namespace {

struct keys {
    std::array<std::byte, 32> cluster{};
    ss::key32 secret{};
    ss::reader_keys reader;
};

std::optional<keys> load_or_create_keys(const fs::path& file) {
    keys k;
    if (std::ifstream in(file, std::ios::binary); in) {
        in.read(reinterpret_cast<char*>(k.cluster.data()), 32);
        in.read(reinterpret_cast<char*>(k.secret.data()), 32);
        in.read(reinterpret_cast<char*>(k.reader.public_key.data()), 32);
        in.read(reinterpret_cast<char*>(k.reader.secret_key.data()), 32);
        if (!in) return std::nullopt;
        return k;
    }
    const auto cluster = ss::generate_convergence_secret(); // 32 random bytes, whatever they are used for
    std::memcpy(k.cluster.data(), cluster.data(), 32);
    k.secret = ss::generate_convergence_secret();
    k.reader = ss::generate_reader_keys();
    std::ofstream out(file, std::ios::binary);
    ::chmod(file.c_str(), 0600);
    out.write(reinterpret_cast<const char*>(k.cluster.data()), 32);
    out.write(reinterpret_cast<const char*>(k.secret.data()), 32);
    out.write(reinterpret_cast<const char*>(k.reader.public_key.data()), 32);
    out.write(reinterpret_cast<const char*>(k.reader.secret_key.data()), 32);
    if (!out) return std::nullopt;
    return k;
}

// A one-line progress bar on stderr, redrawn at most ten times a second.
class progress_bar {
public:
    progress_bar(std::string label, std::uint64_t total) : label_(std::move(label)), total_(total) {}
    void update(std::uint64_t done) {
        const auto now = std::chrono::steady_clock::now();
        if (total_ < 1024 * 1024 || (done < total_ && now - last_ < 100ms)) return;
        last_ = now;
        const double f = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
        const int filled = static_cast<int>(f * 30);
        fmt::print(stderr, "\r{} [{:#<{}}{:<{}}] {:5.1f}% {:.1f}/{:.1f} MiB", label_, "", filled, "", 30 - filled,
                   100 * f, static_cast<double>(done) / 1048576.0, static_cast<double>(total_) / 1048576.0);
        if (done >= total_) fmt::print(stderr, "\n");
    }

private:
    std::string label_;
    std::uint64_t total_;
    std::chrono::steady_clock::time_point last_{};
};

// Counts what get() writes, for the progress bar.
class counting_buf final : public std::streambuf {
public:
    counting_buf(std::streambuf& to, progress_bar& bar) : to_(to), bar_(bar) {}

protected:
    std::streamsize xsputn(const char* s, std::streamsize n) override {
        const auto w = to_.sputn(s, n);
        done_ += static_cast<std::uint64_t>(w);
        bar_.update(done_);
        return w;
    }
    int_type overflow(int_type c) override {
        if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
        const char ch = traits_type::to_char_type(c);
        return xsputn(&ch, 1) == 1 ? c : traits_type::eof();
    }

private:
    std::streambuf& to_;
    progress_bar& bar_;
    std::uint64_t done_ = 0;
};

bool number(std::string_view s, std::uint64_t& out) {
    return std::from_chars(s.data(), s.data() + s.size(), out).ec == std::errc{} && !s.empty();
}

swarm::node_id node_name(std::size_t i) {
    swarm::node_id::bytes_type b{};
    b[0] = std::byte{0x53};
    b[1] = static_cast<std::byte>(i);
    return swarm::node_id(b);
}

int usage(const char* self) {
    fmt::print(stderr,
               "usage: {} DIR put NAME FILE | get NAME FILE [--offset N] [--length N] | ls [PREFIX] | stat NAME |\n"
               "       rm NAME | verify [NAME] | repair [NAME]     options: --nodes N, --lose I\n",
               self);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args;
    std::uint64_t nodes = 8, offset = 0, length = UINT64_MAX;
    std::optional<std::uint64_t> lose;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        std::uint64_t* target = a == "--nodes" ? &nodes : a == "--offset" ? &offset : a == "--length" ? &length : nullptr;
        if (a == "--lose") target = &lose.emplace();
        if (target) {
            if (i + 1 >= argc || !number(argv[i + 1], *target)) {
                fmt::print(stderr, "{} expects a number\n", a);
                return 2;
            }
            ++i;
        } else {
            args.emplace_back(a);
        }
    }
    if (args.size() < 2) return usage(argv[0]);
    if (nodes < 6 || nodes > 64) {
        fmt::print(stderr, "--nodes must be 6 to 64 (4+2 shards on distinct nodes, with room to repair)\n");
        return 2;
    }
    if (lose && *lose >= nodes) {
        fmt::print(stderr, "--lose {} names no node (0 to {})\n", *lose, nodes - 1);
        return 2;
    }
    const fs::path dir = args[0];
    const std::string command = args[1];
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) {
        fmt::print(stderr, "cannot create {}: {}\n", dir.string(), ec.message());
        return 1;
    }
    auto k = load_or_create_keys(dir / "keys.bin");
    if (!k) {
        fmt::print(stderr, "{}: unreadable or unwritable key file\n", (dir / "keys.bin").string());
        return 1;
    }

    ss::transfer_config transfer;
    transfer.cluster_label = "swarm-storage-sample";
    (void)transfer.keys.add(k->cluster);
    swarm::runtime rt(2);
    std::vector<std::unique_ptr<ss::shard_store>> locals;
    std::vector<swarm::net::socket_driver> drivers;
    // The node table maps store indices (what the catalog records) to nodes; it outlives each run.
    auto table = ss::mesh_placement::load(dir / "mesh.bin");
    if (!table && table.error() != swarm::errc::not_found) {
        fmt::print(stderr, "{}\n", table.error().describe());
        return 1;
    }
    ss::mesh_placement mesh = table ? std::move(*table) : ss::mesh_placement{};
    if (mesh.nodes().size() > nodes) {
        fmt::print(stderr, "this mesh already has {} nodes: pass --nodes {} or more\n", mesh.nodes().size(), mesh.nodes().size());
        return 2;
    }
    swarm::net::driver_config dc;
    dc.bind = swarm::net::endpoint::v4(0x7f000001, 0);
    for (std::size_t i = 0; i < nodes; ++i) {
        auto local = ss::open_local_shard_store(dir / fmt::format("node{}", i));
        if (!local) {
            fmt::print(stderr, "node {}: {}\n", i, local.error().describe());
            return 1;
        }
        locals.push_back(std::move(*local));
        swarm::net::endpoint address = swarm::net::endpoint::v4(0x7f000001, 1); // nothing listens: refused
        if (!lose || *lose != i) {
            auto d = swarm::net::socket_driver::create(rt.get_executor(), dc, ss::make_shard_transfer(transfer, locals.back().get()));
            if (!d) {
                fmt::print(stderr, "node {}: {}\n", i, d.error().describe());
                return 1;
            }
            address = d->local_endpoint();
            drivers.push_back(std::move(*d));
        }
        (void)mesh.upsert({node_name(i), address, fmt::format("zone{}", i % 3), fmt::format("rack{}", i), 0, !lose || *lose != i});
    }
    if (auto saved = mesh.save(dir / "mesh.bin"); !saved) {
        fmt::print(stderr, "{}\n", saved.error().describe());
        return 1;
    }
    auto client = swarm::net::socket_driver::create(rt.get_executor(), dc, ss::make_shard_transfer(transfer, nullptr));
    if (!client) {
        fmt::print(stderr, "client: {}\n", client.error().describe());
        return 1;
    }
    auto channel = ss::make_socket_channel(*client, transfer.request_timeout + 5s);
    std::vector<std::unique_ptr<ss::shard_store>> stores;
    for (const auto& n : mesh.nodes()) stores.push_back(ss::make_remote_shard_store(channel, n.address));
    ss::object_store_config config;
    config.erasure = {4, 2};
    auto opened = ss::object_store::open(dir / "catalog", std::move(stores), config, mesh.placement(config.erasure.total()));
    if (!opened) {
        fmt::print(stderr, "{}\n", opened.error().describe());
        return 1;
    }
    auto& store = *opened;

    const auto fail = [](const swarm::error& e) {
        fmt::print(stderr, "error: {}\n", e.describe());
        return 1;
    };
    const auto arg = [&](std::size_t i) -> std::string { return i < args.size() ? args[i] : std::string{}; };
    if (command == "put" && args.size() == 4) {
        progress_bar bar("put", fs::file_size(arg(3), ec));
        auto r = store.put_file(arg(2), arg(3), {k->secret, {k->reader.public_key}, [&](std::uint64_t d) { bar.update(d); }});
        if (!r) return fail(r.error());
        fmt::print("{}: {} bytes, {} chunks ({} new), {} shard bytes written\n", r->name, r->size, r->chunks, r->new_chunks, r->stored_bytes);
    } else if (command == "get" && args.size() == 4) {
        auto info = store.stat(arg(2));
        if (!info) return fail(info.error());
        std::ofstream file(arg(3), std::ios::binary | std::ios::trunc);
        if (!file) return fail({swarm::errc::io_error, "cannot create " + arg(3)});
        progress_bar bar("get", std::min(length, info->size > offset ? info->size - offset : 0));
        counting_buf counted(*file.rdbuf(), bar);
        std::ostream out(&counted);
        auto r = store.get(arg(2), out, k->reader, {offset, length});
        if (!r) return fail(r.error());
        fmt::print("{}: {} bytes written to {}\n", arg(2), *r, arg(3));
    } else if (command == "ls" && args.size() <= 3) {
        auto r = store.list(arg(2));
        if (!r) return fail(r.error());
        for (const auto& o : *r) fmt::print("{:>12}  {:>6} chunks  {}\n", o.size, o.chunks, o.name);
    } else if (command == "stat" && args.size() == 3) {
        auto r = store.stat(arg(2));
        if (!r) return fail(r.error());
        fmt::print("name {}\nsize {}\nchunks {}\n", r->name, r->size, r->chunks);
    } else if (command == "rm" && args.size() == 3) {
        if (auto r = store.remove(arg(2)); !r) return fail(r.error());
        fmt::print("removed {}\n", arg(2));
    } else if (command == "verify" && args.size() <= 3) {
        auto r = store.verify(arg(2));
        if (!r) return fail(r.error());
        fmt::print("{} stripes: {} shards missing, {} unreachable, {} corrupt, {} inconsistent, {} unrecoverable -> {}\n",
                   r->stripes, r->missing_shards, r->unreachable_shards, r->corrupt_shards, r->inconsistent_stripes,
                   r->unrecoverable_stripes,
                   r->healthy() ? "healthy" : "needs repair");
        return r->healthy() ? 0 : 3;
    } else if (command == "repair" && args.size() <= 3) {
        ss::repair_options options;
        options.relocate = mesh.relocation();
        options.on_event = [](const ss::repair_event& e) {
            if (e.kind == ss::repair_event_kind::shard_rebuilt)
                fmt::print(stderr, "\rrebuilt {} shards ({} moved), {} stripes scanned", e.totals.shards_rebuilt,
                           e.totals.shards_relocated, e.totals.stripes);
        };
        auto r = store.repair(arg(2), options);
        if (!r) return fail(r.error());
        fmt::print(stderr, "\n");
        fmt::print("{} stripes, {} shards read ({} bytes), {} rebuilt ({} moved to other nodes, {} bytes), {} unrecoverable\n",
                   r->stripes, r->shards_read, r->bytes_read, r->shards_rebuilt, r->shards_relocated, r->bytes_written,
                   r->unrecoverable_stripes);
    } else {
        return usage(argv[0]);
    }
    return 0;
}
