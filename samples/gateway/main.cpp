// swarm_gateway: an OpenAI-compatible gateway in front of the model servers named on the command line.
//
// Usage:
//   swarm_gateway --listen 127.0.0.1:0 [--port-file PATH] --backend URL [--backend URL ...]
//                 [--api-key KEY ...] [--config FILE.json]
//
// --config loads a dispatch::gateway_config (JSON); the other flags add to it (--listen replaces its listen
// address). Each backend's models are learned from its GET /v1/models. Once listening it prints exactly one
// line, "listening on ADDRESS:PORT", to stdout, and writes PORT to --port-file when given. SIGINT and SIGTERM
// stop it gracefully (requests in progress get five seconds to finish).
// Exit status: 0 after a clean stop, 1 when it cannot listen, 2 for a usage or config error.
#include <swarm/core/config.hpp>
#include <swarm/dispatch/gateway.hpp>

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
               "[--backend URL ...] [--api-key KEY ...] [--config FILE.json]\n",
               problem);
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    namespace d = swarm::dispatch;
    std::optional<std::string> listen, port_file, config_file;
    std::vector<std::string> backends, keys;
    for (int i = 1; i < argc; ++i) {
        const std::string_view flag = argv[i];
        if (i + 1 >= argc) return usage(fmt::format("{} needs a value", flag));
        const std::string value = argv[++i];
        if (flag == "--listen") listen = value;
        else if (flag == "--port-file") port_file = value;
        else if (flag == "--config") config_file = value;
        else if (flag == "--backend") backends.push_back(value);
        else if (flag == "--api-key") keys.push_back(value);
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
    if (cfg.backends.empty()) return usage("at least one --backend (or backends in --config) is required");

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

    int signal = 0;
    sigwait(&stop_signals, &signal);
    fmt::print(stderr, "swarm_gateway: {} received, stopping\n", signal == SIGINT ? "SIGINT" : "SIGTERM");
    gw->stop(std::chrono::seconds(5));
    return 0;
}
