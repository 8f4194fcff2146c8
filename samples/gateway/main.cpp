// swarm_gateway: an OpenAI-compatible gateway in front of the model servers named on the command line.
//
// Usage:
//   swarm_gateway --listen 127.0.0.1:0 [--port-file PATH] --backend URL [--backend URL ...]
//                 [--api-key KEY ...] [--config FILE.json] [--mesh AGENT.json [--seed HOST:PORT ...]]
//
// --config loads a dispatch::gateway_config (JSON); the other flags add to it (--listen replaces its listen
// address). Each backend's models are learned from its GET /v1/models. Once listening it prints exactly one
// line, "listening on ADDRESS:PORT", to stdout, and writes PORT to --port-file when given. SIGINT and SIGTERM
// stop it gracefully (requests in progress get five seconds to finish).
//
// Mesh mode: --mesh loads a membership::agent_config (bind address, identity file, cluster keys; see
// samples/membership/node1.json) and --seed adds seeds to it. The gateway joins the mesh and, every second,
// serves the backends the members advertise in their metadata (served_model entries) next to the --backend
// ones; --backend is then optional.
// Exit status: 0 after a clean stop, 1 when it cannot listen, 2 for a usage or config error.
#include <swarm/core/config.hpp>
#include <swarm/dispatch/gateway.hpp>
#include <swarm/membership/agent.hpp>

#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

int usage(std::string_view problem) {
    fmt::print(stderr,
               "swarm_gateway: {}\nusage: swarm_gateway --listen HOST:PORT [--port-file PATH] --backend URL "
               "[--backend URL ...] [--api-key KEY ...] [--config FILE.json] [--mesh AGENT.json [--seed HOST:PORT ...]]\n",
               problem);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    namespace d = swarm::dispatch;
    std::optional<std::string> listen, port_file, config_file, mesh_file;
    std::vector<std::string> backends, keys, seeds;
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (i + 1 >= argc) return usage(fmt::format("{} needs a value", flag));
        const std::string value = argv[++i];
        if (flag == "--listen") listen = value;
        else if (flag == "--port-file") port_file = value;
        else if (flag == "--config") config_file = value;
        else if (flag == "--backend") backends.push_back(value);
        else if (flag == "--api-key") keys.push_back(value);
        else if (flag == "--mesh") mesh_file = value;
        else if (flag == "--seed") seeds.push_back(value);
        else return usage(fmt::format("unknown option {}", flag));
    }

    d::gateway_config cfg;
    if (config_file) {
        auto loaded = swarm::config::load_file<d::gateway_config>(*config_file);
        if (!loaded) return usage(fmt::format("config error: {}", loaded.error().describe()));
        cfg = std::move(*loaded);
    }
    if (listen) {
        auto ep = swarm::net::endpoint::parse(*listen);
        if (!ep) return usage(fmt::format("--listen {}: not HOST:PORT", *listen));
        cfg.listen = *ep;
    } else if (!config_file) {
        return usage("--listen is required");
    }
    for (auto& url : backends) {
        d::backend_config b;
        b.url = std::move(url);
        cfg.backends.push_back(std::move(b));
    }
    for (auto& k : keys) {
        d::api_key_config a;
        a.key = std::move(k);
        cfg.api_keys.push_back(std::move(a));
    }
    if (!seeds.empty() && !mesh_file) return usage("--seed needs --mesh AGENT.json (identity and cluster keys)");
    if (cfg.backends.empty() && !mesh_file)
        return usage("at least one --backend (or backends in --config, or --mesh) is required");
    std::optional<swarm::membership::agent_config> mesh_cfg;
    if (mesh_file) {
        auto loaded = swarm::config::load_file<swarm::membership::agent_config>(*mesh_file);
        if (!loaded) return usage(fmt::format("mesh config error: {}", loaded.error().describe()));
        mesh_cfg = std::move(*loaded);
        for (auto& s : seeds) mesh_cfg->seeds.push_back(std::move(s));
    }
    const auto static_backends = cfg.backends;

    // Blocked before the gateway's thread starts, so that thread inherits the mask and sigwait() here gets them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    auto shown = cfg.listen;
    swarm::logger log{swarm::log_level::info,
                      [](swarm::log_level level, std::string_view line) {
                          fmt::print(stderr, "{} {}\n", swarm::to_string(level), line);
                      }};
    auto gw = d::gateway::create(std::move(cfg), std::move(log));
    if (!gw) return usage(fmt::format("config error: {}", gw.error().describe()));
    auto port = gw->start();
    if (!port) {
        fmt::print(stderr, "swarm_gateway: {}\n", port.error().describe());
        return 1;
    }
    if (port_file) {
        std::ofstream out(*port_file, std::ios::trunc);
        out << *port << '\n';
        out.close();
        if (!out) {
            fmt::print(stderr, "swarm_gateway: cannot write {}\n", *port_file);
            return 1;
        }
    }
    shown.set_port(*port);
    fmt::print("listening on {}\n", shown.to_string());
    std::fflush(stdout);

    std::optional<swarm::membership::agent> agent;
    if (mesh_cfg) {
        auto a = swarm::membership::agent::create(std::move(*mesh_cfg));
        if (!a) {
            fmt::print(stderr, "swarm_gateway: cannot join the mesh: {}\n", a.error().describe());
            return 1;
        }
        agent.emplace(std::move(*a));
    }

    int signal = 0;
    for (;;) {
        // Wakes every second in mesh mode to follow membership; otherwise just waits for the signal.
        if (!agent) {
            sigwait(&stop_signals, &signal);
            break;
        }
        timespec tick{1, 0};
        signal = sigtimedwait(&stop_signals, nullptr, &tick);
        if (signal > 0) break;
        if (auto members = agent->members()) {
            auto all = static_backends;
            for (auto& b : d::backends_from_members(*members)) all.push_back(std::move(b));
            if (auto r = gw->set_backends(std::move(all)); !r)
                fmt::print(stderr, "swarm_gateway: {}\n", r.error().describe());
        }
    }
    fmt::print(stderr, "swarm_gateway: {} received, stopping\n", signal == SIGINT ? "SIGINT" : "SIGTERM");
    gw->stop(std::chrono::seconds(5));
    if (agent) (void)agent->leave();
    return 0;
}
