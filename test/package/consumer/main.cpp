// Exercises a little of the public API through the installed headers and library.
#include <swarm/core/error.hpp>
#include <swarm/net/endpoint.hpp>

#include <cstdio>

int main() {
    auto parsed = swarm::net::endpoint::parse("127.0.0.1:7946");
    if (!parsed || parsed->to_string() != "127.0.0.1:7946") return 1;
    auto bad = swarm::net::endpoint::parse("not an endpoint");
    if (bad || bad.error() != swarm::errc::malformed) return 2;
    std::puts("consumer ok");
    return 0;
}
