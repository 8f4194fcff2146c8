// The gateway following a real mesh: two membership agents on loopback; one advertises a model server (the
// fault_backend test double) in its metadata, the gateway syncs from the other's view and routes to it.
#include "support/eventually.hpp"
#include "support/fast_agent.hpp"
#include "support/scratch_dir.hpp"
#include "client.hpp"
#include "fault_backend.hpp"

#include <swarm/dispatch/gateway.hpp>
#include <swarm/membership/agent.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <thread>

#include <stdlib.h>

namespace {

namespace d = swarm::dispatch;
namespace m = swarm::membership;
using namespace swarm_test;
using namespace std::chrono_literals;

struct temp_dir : swarm_test::scratch_dir {
    temp_dir() : scratch_dir("swarm-gateway") {}
};

m::agent_config agent_config(const std::filesystem::path& identity, std::vector<std::string> seeds) {
    return swarm_test::fast_agent_config(identity, std::string(64, '5'), std::move(seeds));
}

using swarm_test::eventually;

TEST(GatewayMesh, RoutesToModelsAdvertisedInMembershipMetadata) {
    temp_dir dir;
    fault_backend server({});
    auto a = m::agent::create(agent_config(dir.path() / "a.key", {}));
    ASSERT_TRUE(a) << a.error().describe();
    auto b = m::agent::create(agent_config(dir.path() / "b.key", {a->local_endpoint().to_string()}));
    ASSERT_TRUE(b) << b.error().describe();
    m::metadata meta;
    meta.models.push_back({"mesh-llama", server.url(), "openai"});
    ASSERT_TRUE(b->set_metadata(meta));

    d::gateway_config cfg;
    cfg.listen = swarm::net::endpoint::v4(0x7f000001, 0);
    cfg.health_interval = 200ms;
    auto gw = d::gateway::create(std::move(cfg)).value();
    auto port = gw.start().value();

    const std::string chat = R"({"model":"mesh-llama","messages":[{"role":"user","content":"hi"}]})";
    // The gateway follows a's view of the mesh, as swarm_gateway --mesh does once a second.
    ASSERT_TRUE(eventually([&] {
        auto members = a->members();
        if (!members || !gw.sync_members(*members)) return false;
        return call(port, "POST", "/v1/chat/completions", chat).status == 200;
    })) << "the advertised model never became routable";
    EXPECT_GE(server.posts(), 1);
    auto models = call(port, "GET", "/v1/models");
    EXPECT_NE(models.body.find("mesh-llama"), std::string::npos) << models.body;

    // b leaves: the model goes with it.
    ASSERT_TRUE(b->leave());
    ASSERT_TRUE(eventually([&] {
        auto members = a->members();
        if (!members || !gw.sync_members(*members)) return false;
        return call(port, "POST", "/v1/chat/completions", chat).status == 404;
    }));
}

} // namespace
