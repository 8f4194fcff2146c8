// The gateway on loopback against fault_backend (a test double): passthrough, streaming, resilience, admission,
// auth, and bad input.
#include "client.hpp"
#include "fault_backend.hpp"

#include <swarm/dispatch/gateway.hpp>
#include <swarm/dispatch/scorers.hpp>

#include "dispatch/gateway_detail.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <thread>

namespace {

namespace d = swarm::dispatch;
using namespace swarm_test;
using namespace std::chrono_literals;

behaviour answer(unsigned status, std::string body) {
    behaviour b;
    b.status = status;
    b.body = std::move(body);
    return b;
}
behaviour delayed(std::chrono::milliseconds d) {
    behaviour b;
    b.delay = d;
    return b;
}
behaviour resets() {
    behaviour b;
    b.reset = true;
    return b;
}
behaviour stream(std::vector<std::string> events, std::size_t hold_after = SIZE_MAX, bool reset_at_hold = false) {
    behaviour b;
    b.events = std::move(events);
    b.hold_after = hold_after;
    b.reset_at_hold = reset_at_hold;
    return b;
}
d::backend_config backend_of(std::string url, std::string api, std::vector<std::string> models) {
    d::backend_config c;
    c.url = std::move(url);
    c.api = std::move(api);
    c.models = std::move(models);
    return c;
}
d::api_key_config key_of(std::string key, double rate = 0, double burst = 10) {
    d::api_key_config k;
    k.key = std::move(key);
    k.requests_per_second = rate;
    k.burst = burst;
    return k;
}
d::request_view model_view(std::string_view model) {
    d::request_view v;
    v.model = model;
    return v;
}

d::gateway_config base_config(std::initializer_list<const fault_backend*> backends) {
    d::gateway_config cfg;
    cfg.listen = swarm::net::endpoint::v4(0x7f000001, 0);
    for (const auto* b : backends) {
        d::backend_config c;
        c.url = b->url();
        cfg.backends.push_back(c);
    }
    cfg.health_interval = 200ms;
    cfg.connect_timeout = 500ms;
    cfg.retry_backoff = 1ms;
    cfg.request_timeout = 5s;
    return cfg;
}

struct running {
    d::gateway gw;
    std::uint16_t port;
};

running start(d::gateway_config cfg) {
    auto gw = d::gateway::create(std::move(cfg));
    EXPECT_TRUE(gw) << gw.error().describe();
    auto port = gw->start();
    EXPECT_TRUE(port) << port.error().describe();
    return {std::move(*gw), *port};
}

const std::string chat = R"({"model":"m","messages":[{"role":"user","content":"hello"}],"x_extra":{"keep":[1,2.50,"é"]}})";
const std::string chat_stream = R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})";

boost::json::value parse(const std::string& s) {
    boost::system::error_code ec;
    auto v = boost::json::parse(s, ec);
    return ec ? boost::json::value{} : v;
}

// OpenAI's error object: {"error":{"message","type","param","code"}}.
std::string error_code_of(const reply& r) {
    auto v = parse(r.body);
    if (!v.is_object() || !v.as_object().contains("error")) return "<no error object>";
    const auto& e = v.as_object().at("error").as_object();
    if (!e.contains("message") || !e.contains("type") || !e.contains("param") || !e.contains("code"))
        return "<incomplete error object>";
    return e.at("code").is_string() ? std::string(e.at("code").as_string()) : "<null>";
}

template <class F>
bool eventually(F f, std::chrono::milliseconds timeout = 3s) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        if (f()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return f();
}

TEST(Gateway, NonStreamedPassesBodiesThroughByteForByteWithIdsAndTrace) {
    fault_backend b({"m"});
    b.set(answer(200, R"({"id":"x",  "weird" : [1, 2.50]})"));
    auto g = start(base_config({&b}));
    const std::string trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    auto r = call(g.port, "POST", "/v1/chat/completions", chat,
                  fmt::format("x-request-id: req-42\r\ntraceparent: {}\r\nAuthorization: Bearer secret\r\n"
                              "Connection: keep-alive, x-hop\r\nx-hop: 1\r\nx-end-to-end: kept\r\n",
                              trace));
    ASSERT_EQ(r.status, 200u);
    EXPECT_EQ(r.body, R"({"id":"x",  "weird" : [1, 2.50]})");
    EXPECT_EQ(b.last_body(), chat);
    EXPECT_EQ(b.last_target(), "/v1/chat/completions");
    EXPECT_EQ(r.header("x-request-id"), "req-42");
    EXPECT_EQ(b.last_header("x-request-id"), "req-42");
    // Same trace, the gateway's own span id.
    auto up = b.last_header("traceparent");
    ASSERT_EQ(up.size(), trace.size());
    EXPECT_EQ(up.substr(0, 36), trace.substr(0, 36));
    EXPECT_NE(up.substr(36, 16), trace.substr(36, 16));
    EXPECT_EQ(up.substr(52), "-01");
    // The client's credentials for the gateway are not the backend's business, nor are hop-by-hop fields.
    EXPECT_EQ(b.last_header("authorization"), "");
    EXPECT_EQ(b.last_header("x-hop"), "");
    EXPECT_EQ(b.last_header("x-end-to-end"), "kept");

    // Without ids, the gateway makes them.
    auto r2 = call(g.port, "POST", "/v1/completions", R"({"model":"m","prompt":"x"})");
    ASSERT_EQ(r2.status, 200u);
    EXPECT_EQ(r2.header("x-request-id").size(), 32u);
    EXPECT_EQ(b.last_header("traceparent").size(), 55u);
}

TEST(Gateway, StreamChunksReachTheClientWhileTheBackendIsStillStreaming) {
    fault_backend b({"m"});
    b.set(stream({R"({"role":"assistant"})", R"({"c":"one"})", R"({"c":"two"})", "[DONE]"}, 2));
    auto g = start(base_config({&b}));
    raw_client c(g.port);
    c.send(http_request("POST", "/v1/chat/completions", chat_stream));
    // The backend holds the stream open after two events: both must already be at the client.
    ASSERT_TRUE(c.read_until(R"(data: {"c":"one"})", 5s)) << c.data();
    EXPECT_EQ(b.held(), 1);
    EXPECT_EQ(c.data().find("[DONE]"), std::string::npos);
    b.release();
    ASSERT_TRUE(c.read_until("\r\n0\r\n\r\n", 5s)) << c.data();
    EXPECT_NE(c.data().find(R"(data: {"role":"assistant"})"), std::string::npos);
    EXPECT_NE(c.data().find("data: [DONE]\n\n"), std::string::npos);
    EXPECT_NE(c.data().find("text/event-stream"), std::string::npos);
}

TEST(Gateway, StreamsToHttp10ClientsEndWithTheConnection) {
    fault_backend b({"m"});
    b.set(stream({R"({"c":"one"})", "[DONE]"}));
    auto g = start(base_config({&b}));
    raw_client c(g.port);
    c.send(fmt::format("POST /v1/chat/completions HTTP/1.0\r\nHost: g\r\nContent-Length: {}\r\n\r\n{}",
                       chat_stream.size(), chat_stream));
    EXPECT_TRUE(c.closed_within(5s));
    EXPECT_NE(c.data().find("data: {\"c\":\"one\"}\n\ndata: [DONE]\n\n"), std::string::npos) << c.data();
    EXPECT_EQ(c.data().find("chunked"), std::string::npos) << c.data();
}

TEST(Gateway, FailsOverBeforeTheFirstByte) {
    fault_backend bad({"m"}), good({"m"});
    bad.set(resets());
    good.set(answer(200, R"({"ok":1})"));
    auto cfg = base_config({&bad, &good});
    cfg.policy = d::routing_policy::round_robin;
    cfg.breaker_failures = 100; // keep the failing backend in rotation for this test
    auto g = start(std::move(cfg));
    for (int i = 0; i < 6; ++i) {
        auto r = call(g.port, "POST", "/v1/chat/completions", chat);
        ASSERT_EQ(r.status, 200u) << r.body;
        EXPECT_EQ(r.body, R"({"ok":1})");
    }
    EXPECT_GE(bad.posts(), 2);
    EXPECT_EQ(good.posts(), 6);

    // A 503 is retried too; the last one is passed on when no backend is left.
    bad.set(answer(503, R"({"busy":true})"));
    good.set(answer(503, R"({"busy":2})"));
    auto r = call(g.port, "POST", "/v1/chat/completions", chat);
    EXPECT_EQ(r.status, 503u);
    EXPECT_NE(r.body.find("busy"), std::string::npos);
}

TEST(Gateway, NoRetryOnceTheFirstByteIsSent) {
    fault_backend first({"m"}), second({"m"});
    auto dies = stream({R"({"c":"one"})", R"({"c":"two"})"}, 1, true);
    first.set(dies);
    second.set(dies);
    auto cfg = base_config({&first, &second});
    auto g = start(std::move(cfg));
    raw_client c(g.port);
    c.send(http_request("POST", "/v1/chat/completions", chat_stream));
    ASSERT_TRUE(c.read_until(R"({"c":"one"})", 5s)) << c.data();
    first.release();
    second.release();
    // The stream is cut (no last chunk) and the connection closed; nothing was generated twice.
    EXPECT_TRUE(c.closed_within(5s));
    EXPECT_EQ(c.data().find("\r\n0\r\n\r\n"), std::string::npos);
    EXPECT_EQ(first.posts() + second.posts(), 1);
}

TEST(Gateway, DeadlineAnswers504) {
    fault_backend slow({"m"});
    slow.set(delayed(3000ms));
    auto cfg = base_config({&slow});
    cfg.request_timeout = 300ms;
    auto g = start(std::move(cfg));
    auto r = call(g.port, "POST", "/v1/chat/completions", chat);
    EXPECT_EQ(r.status, 504u);
    EXPECT_EQ(error_code_of(r), "upstream_timeout");
}

TEST(Gateway, FullQueueAnswers429) {
    fault_backend b({"m"});
    b.set(stream({"1", "2"}, 1));
    auto cfg = base_config({&b});
    cfg.max_in_flight = 1;
    cfg.max_queued = 1;
    cfg.queue_timeout = 5s;
    auto g = start(std::move(cfg));
    raw_client first(g.port);
    first.send(http_request("POST", "/v1/chat/completions", chat_stream));
    ASSERT_TRUE(first.read_until("data: 1", 5s));
    raw_client queued(g.port);
    queued.send(http_request("POST", "/v1/chat/completions", chat_stream));
    ASSERT_TRUE(eventually([&] {
        auto m = call(g.port, "GET", "/metrics");
        return m.body.find("swarm_dispatch_gateway_queued 1") != std::string::npos;
    }));
    auto r = call(g.port, "POST", "/v1/chat/completions", chat);
    EXPECT_EQ(r.status, 429u);
    EXPECT_EQ(error_code_of(r), "queue_full");
    EXPECT_EQ(r.header("retry-after"), "1");
    b.release();
    EXPECT_TRUE(first.read_until("\r\n0\r\n\r\n"));
    EXPECT_TRUE(queued.read_until("\r\n0\r\n\r\n")); // the queued one was served once the slot freed
}

TEST(Gateway, BreakerEjectsAFailingBackend) {
    fault_backend bad({"m"}), good({"m"});
    bad.set(answer(500, "{}"));
    good.set(answer(200, R"({"ok":1})"));
    auto cfg = base_config({&bad, &good});
    cfg.policy = d::routing_policy::round_robin;
    cfg.breaker_failures = 2;
    cfg.breaker_open_time = 30s;
    auto g = start(std::move(cfg));
    for (int i = 0; i < 10; ++i) {
        auto r = call(g.port, "POST", "/v1/chat/completions", chat);
        ASSERT_EQ(r.status, 200u) << r.body;
    }
    EXPECT_EQ(bad.posts(), 2); // then ejected: the router stops choosing it
    auto m = call(g.port, "GET", "/metrics");
    EXPECT_NE(m.body.find(fmt::format("swarm_dispatch_gateway_breaker_open_total{{backend=\"{}\"}} 1", bad.url())),
              std::string::npos)
        << m.body;
}

TEST(Gateway, HedgingAsksASecondBackendWhenTheFirstIsSlow) {
    fault_backend slow({"m"}), fast({"m"});
    auto late = answer(200, R"({"from":"slow"})");
    late.delay = 3000ms;
    slow.set(late);
    fast.set(answer(200, R"({"from":"fast"})"));
    auto cfg = base_config({&slow, &fast});
    cfg.policy = d::routing_policy::round_robin;
    cfg.hedge_after = 50ms;
    auto g = start(std::move(cfg));
    for (int i = 0; i < 4; ++i) {
        auto r = call(g.port, "POST", "/v1/chat/completions", chat);
        ASSERT_EQ(r.status, 200u);
        EXPECT_EQ(r.body, R"({"from":"fast"})"); // never the slow backend's late answer
    }
    // Round robin made the slow backend the first choice twice: both times hedged, and the slow attempt
    // abandoned (its connection closed while the backend was still working).
    EXPECT_EQ(slow.posts(), 2);
    EXPECT_TRUE(eventually([&] { return slow.cancelled() == 2; }));
    auto m = call(g.port, "GET", "/metrics");
    EXPECT_NE(m.body.find("swarm_dispatch_gateway_hedges_total 2"), std::string::npos) << m.body;
}

TEST(Gateway, ClientDisconnectCancelsTheUpstreamRequest) {
    fault_backend b({"m"});
    b.set(delayed(10000ms));
    auto g = start(base_config({&b}));
    {
        raw_client c(g.port);
        c.send(http_request("POST", "/v1/chat/completions", chat));
        ASSERT_TRUE(eventually([&] { return b.held() == 1; }));
        c.close();
    }
    EXPECT_TRUE(eventually([&] { return b.cancelled() == 1; }));

    // Streams too.
    b.set(stream({"1", "2"}, 1));
    {
        raw_client c(g.port);
        c.send(http_request("POST", "/v1/chat/completions", chat_stream));
        ASSERT_TRUE(c.read_until("data: 1"));
        c.close();
    }
    EXPECT_TRUE(eventually([&] { return b.cancelled() == 2; }));
    auto m = call(g.port, "GET", "/metrics");
    EXPECT_NE(m.body.find("swarm_dispatch_gateway_client_cancelled_total 2"), std::string::npos) << m.body;
}

TEST(Gateway, BearerKeysAndRateLimits) {
    fault_backend b({"m"});
    auto cfg = base_config({&b});
    cfg.api_keys.push_back(key_of("sk-one", 0.01, 2));
    cfg.api_keys.push_back(key_of("sk-two"));
    auto g = start(std::move(cfg));
    auto none = call(g.port, "POST", "/v1/chat/completions", chat);
    EXPECT_EQ(none.status, 401u);
    EXPECT_EQ(error_code_of(none), "invalid_api_key");
    auto wrong = call(g.port, "POST", "/v1/chat/completions", chat, "Authorization: Bearer sk-on\r\n");
    EXPECT_EQ(wrong.status, 401u);
    EXPECT_EQ(b.posts(), 0);
    EXPECT_EQ(call(g.port, "POST", "/v1/chat/completions", chat, "Authorization: Bearer sk-one\r\n").status, 200u);
    EXPECT_EQ(call(g.port, "POST", "/v1/chat/completions", chat, "Authorization: bearer sk-one\r\n").status, 200u);
    auto limited = call(g.port, "POST", "/v1/chat/completions", chat, "Authorization: Bearer sk-one\r\n");
    EXPECT_EQ(limited.status, 429u);
    EXPECT_EQ(error_code_of(limited), "rate_limit_exceeded");
    EXPECT_FALSE(limited.header("retry-after").empty());
    // Another key has its own bucket; health endpoints need no key.
    EXPECT_EQ(call(g.port, "POST", "/v1/chat/completions", chat, "Authorization: Bearer sk-two\r\n").status, 200u);
    EXPECT_EQ(call(g.port, "GET", "/healthz").status, 200u);
    EXPECT_EQ(call(g.port, "GET", "/v1/models").status, 401u);
}

TEST(Gateway, ModelsAreMergedAcrossBackends) {
    fault_backend one({"alpha", "beta"}), two({"beta", "gamma"});
    auto g = start(base_config({&one, &two}));
    auto r = call(g.port, "GET", "/v1/models");
    ASSERT_EQ(r.status, 200u);
    auto v = parse(r.body);
    std::vector<std::string> ids;
    for (const auto& m : v.at("data").as_array()) ids.emplace_back(m.at("id").as_string());
    EXPECT_EQ(ids, (std::vector<std::string>{"alpha", "beta", "gamma"}));
    EXPECT_EQ(call(g.port, "GET", "/v1/models/gamma").status, 200u);
    EXPECT_EQ(call(g.port, "GET", "/v1/models/delta").status, 404u);
    EXPECT_EQ(call(g.port, "GET", "/readyz").status, 200u);
}

TEST(Gateway, MetricsCountRequestsAndScrapeBackendLoad) {
    fault_backend b({"m"});
    b.set_metrics("vllm:num_requests_waiting{model_name=\"m\"} 7\nvllm:kv_cache_usage_perc{model_name=\"m\"} 0.5\n");
    auto g = start(base_config({&b}));
    ASSERT_EQ(call(g.port, "POST", "/v1/chat/completions", chat).status, 200u);
    reply m;
    // The backend's own queue, scraped from its /metrics, is what the router sees as its reported load.
    ASSERT_TRUE(eventually([&] {
        m = call(g.port, "GET", "/metrics");
        return m.body.find(fmt::format("swarm_dispatch_gateway_backend_queued{{backend=\"{}\"}} 7", b.url())) !=
               std::string::npos;
    })) << m.body;
    EXPECT_NE(m.body.find(fmt::format("swarm_dispatch_gateway_backend_kv_cache_usage{{backend=\"{}\"}} 0.5", b.url())),
              std::string::npos);
    EXPECT_EQ(m.status, 200u);
    EXPECT_EQ(m.header("content-type"), "text/plain; version=0.0.4");
    EXPECT_NE(m.body.find("swarm_dispatch_gateway_requests_total{path=\"chat_completions\",code=\"200\"} 1"),
              std::string::npos)
        << m.body;
    EXPECT_NE(m.body.find("swarm_dispatch_gateway_request_duration_seconds_count"), std::string::npos);
}

TEST(Gateway, TgiAndKserveAdaptersRouteByApi) {
    fault_backend openai({"m"}), tgi({}), kserve({});
    auto cfg = base_config({&openai});
    cfg.backends.push_back(backend_of(tgi.url(), "tgi", {"bloom"}));
    cfg.backends.push_back(backend_of(kserve.url(), "kserve-v2", {"resnet"}));
    auto g = start(std::move(cfg));
    auto r = call(g.port, "POST", "/generate", R"({"inputs":"hi","parameters":{}})");
    EXPECT_EQ(r.status, 200u) << r.body;
    EXPECT_EQ(tgi.posts(), 1);
    EXPECT_EQ(tgi.last_target(), "/generate");
    auto k = call(g.port, "POST", "/v2/models/resnet/infer", R"({"inputs":[]})");
    EXPECT_EQ(k.status, 200u) << k.body;
    EXPECT_EQ(kserve.posts(), 1);
    EXPECT_EQ(kserve.last_target(), "/v2/models/resnet/infer");
    EXPECT_EQ(call(g.port, "GET", "/v2/models/resnet/ready").status, 200u);
    // The TGI model answers OpenAI paths too; the KServe model does not.
    EXPECT_EQ(call(g.port, "POST", "/v1/chat/completions", R"({"model":"bloom","messages":[]})").status, 200u);
    EXPECT_EQ(tgi.posts(), 2);
    EXPECT_EQ(call(g.port, "POST", "/v1/chat/completions", R"({"model":"resnet","messages":[]})").status, 404u);
    EXPECT_EQ(openai.posts(), 0);
}

// ---- bad input: a clear 4xx, no crash, and the next request is fine ----

class BadInput : public ::testing::Test {
protected:
    void SetUp() override {
        auto cfg = base_config({&backend_});
        cfg.max_body_bytes = 1024;
        cfg.header_timeout = 300ms;
        cfg.body_timeout = 300ms;
        g_.emplace(start(std::move(cfg)));
    }
    void TearDown() override {
        auto r = call(g_->port, "POST", "/v1/chat/completions", chat);
        EXPECT_EQ(r.status, 200u) << "a good request after the bad one";
    }
    reply raw(std::string_view bytes) {
        raw_client c(g_->port);
        c.send(bytes);
        return c.read_response(5s);
    }
    fault_backend backend_{{"m"}};
    std::optional<running> g_;
};

TEST_F(BadInput, MalformedJson) {
    auto r = call(g_->port, "POST", "/v1/chat/completions", R"({"model":"m",)");
    EXPECT_EQ(r.status, 400u);
    EXPECT_EQ(error_code_of(r), "invalid_json");
    EXPECT_EQ(call(g_->port, "POST", "/v1/chat/completions", "[1,2]").status, 400u);
    auto deep = std::string(200, '[') + std::string(200, ']');
    EXPECT_EQ(call(g_->port, "POST", "/v1/chat/completions", deep).status, 400u);
}

TEST_F(BadInput, MissingOrUnknownModel) {
    auto missing = call(g_->port, "POST", "/v1/chat/completions", R"({"messages":[]})");
    EXPECT_EQ(missing.status, 400u);
    EXPECT_EQ(error_code_of(missing), "missing_required_parameter");
    EXPECT_EQ(call(g_->port, "POST", "/v1/chat/completions", R"({"model":7})").status, 400u);
    auto unknown = call(g_->port, "POST", "/v1/chat/completions", R"({"model":"nope","messages":[]})");
    EXPECT_EQ(unknown.status, 404u);
    EXPECT_EQ(error_code_of(unknown), "model_not_found");
    EXPECT_EQ(call(g_->port, "POST", "/v1/chat/completions", R"({"model":"m","stream":"yes"})").status, 400u);
    EXPECT_EQ(call(g_->port, "GET", "/v1/chat/completions").status, 405u);
    EXPECT_EQ(call(g_->port, "GET", "/nowhere").status, 404u);
}

TEST_F(BadInput, BodyOverTheLimitIs413) {
    auto big = fmt::format(R"({{"model":"m","prompt":"{}"}})", std::string(2000, 'x'));
    auto r = call(g_->port, "POST", "/v1/completions", big);
    EXPECT_EQ(r.status, 413u);
    EXPECT_EQ(error_code_of(r), "body_too_large");
    // Chunked, so the size is only known while reading.
    auto chunked = raw(fmt::format("POST /v1/completions HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "{:x}\r\n{}\r\n0\r\n\r\n",
                                   big.size(), big));
    EXPECT_EQ(chunked.status, 413u);
    EXPECT_EQ(backend_.posts(), 0);
}

TEST_F(BadInput, SlowLorisHeadAndBodyTimeOut) {
    raw_client c(g_->port);
    c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\n");
    auto r = c.read_response(3s);
    EXPECT_EQ(r.status, 408u);
    EXPECT_EQ(error_code_of(r), "timeout");
    raw_client body(g_->port);
    body.send("POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nContent-Length: 100\r\n\r\n{\"mo");
    EXPECT_EQ(body.read_response(3s).status, 408u);
}

TEST_F(BadInput, InvalidUtf8) {
    auto r = call(g_->port, "POST", "/v1/chat/completions", "{\"model\":\"m\",\"messages\":\"\xff\xfe\"}");
    EXPECT_EQ(r.status, 400u);
    EXPECT_EQ(error_code_of(r), "invalid_json");
}

TEST_F(BadInput, RequestSmuggling) {
    const std::string body = R"({"model":"m","messages":[]})";
    auto both = raw(fmt::format("POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nContent-Length: {}\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                                body.size()));
    EXPECT_EQ(both.status, 400u);
    auto both_reversed = raw("POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n"
                             "Content-Length: 5\r\n\r\n0\r\n\r\n");
    EXPECT_EQ(both_reversed.status, 400u);
    auto dup = raw(fmt::format("POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nContent-Length: {0}\r\n"
                               "Content-Length: {0}\r\n\r\n{1}",
                               body.size(), body));
    EXPECT_EQ(dup.status, 400u);
    auto listed = raw(fmt::format("POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nContent-Length: {0}, {0}\r\n\r\n{1}",
                                  body.size(), body));
    EXPECT_EQ(listed.status, 400u);
    auto fold = raw(fmt::format("POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nX-Thing: a\r\n b\r\n"
                                "Content-Length: {}\r\n\r\n{}",
                                body.size(), body));
    EXPECT_EQ(fold.status, 400u);
    auto gzip = raw("POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n");
    EXPECT_EQ(gzip.status, 400u);
    auto garbage = raw("NOT HTTP AT ALL\r\n\r\n");
    EXPECT_EQ(garbage.status, 400u);
    EXPECT_EQ(backend_.posts(), 0);
}

TEST_F(BadInput, HeadOverTheLimitIs431) {
    auto r = raw(fmt::format("GET /healthz HTTP/1.1\r\nHost: g\r\nX-Big: {}\r\n\r\n", std::string(20000, 'a')));
    EXPECT_EQ(r.status, 431u);
}

TEST(GatewayScrape, PrometheusLoadSignals) {
    auto load = d::parse_prometheus_load("# HELP x\n"
                                         "vllm:num_requests_waiting{model_name=\"a\"} 3\n"
                                         "vllm:num_requests_waiting{model_name=\"b\"} 2 1700000000\n"
                                         "vllm:num_requests_running 4\n"
                                         "vllm:kv_cache_usage_perc{a=\"}\"} 0.5\n"
                                         "llamacpp:requests_deferred 1\n"
                                         "other_metric 99\n"
                                         "vllm:num_requests_waiting NaN\n"
                                         "garbage line\n");
    EXPECT_TRUE(load.any);
    EXPECT_EQ(load.waiting, 6);
    EXPECT_EQ(load.running, 4);
    EXPECT_EQ(load.kv_usage, 0.5);
    EXPECT_FALSE(d::parse_prometheus_load("up 1\n").any);
}

// ---- configuration and membership ----

TEST(GatewayConfig, LoadsFromJsonAndRejectsBadValues) {
    auto cfg = swarm::config::parse<d::gateway_config>(R"({
        "listen": "127.0.0.1:8080",
        "backends": [{"url": "http://10.0.0.1:8000", "api": "tgi", "models": ["x"]}],
        "api_keys": [{"key": "k", "requests_per_second": 5, "burst": 10}],
        "policy": "least_outstanding",
        "request_timeout": "30s"
    })");
    ASSERT_TRUE(cfg) << cfg.error().describe();
    EXPECT_EQ(cfg->backends.at(0).api, "tgi");
    EXPECT_EQ(cfg->policy, d::routing_policy::least_outstanding);
    EXPECT_EQ(cfg->request_timeout, std::chrono::seconds(30));
    // Written back, it reads the same.
    auto again = swarm::config::from_json<d::gateway_config>(swarm::config::to_json(*cfg));
    ASSERT_TRUE(again) << again.error().describe();
    EXPECT_EQ(again->api_keys.at(0).requests_per_second, 5);
    EXPECT_EQ(again->backends.at(0).models, std::vector<std::string>{"x"});

    auto bad_url = swarm::config::parse<d::gateway_config>(R"({"backends": [{"url": "https://x:1"}]})");
    ASSERT_FALSE(bad_url);
    EXPECT_NE(bad_url.error().message.find("http://"), std::string::npos) << bad_url.error().message;
    auto bad_api = swarm::config::parse<d::gateway_config>(R"({"backends": [{"url": "http://x:1", "api": "grpc"}]})");
    ASSERT_FALSE(bad_api);
    EXPECT_NE(bad_api.error().message.find("grpc"), std::string::npos);
    EXPECT_FALSE(swarm::config::parse<d::gateway_config>(R"({"max_attempts": 0})"));
    EXPECT_FALSE(swarm::config::parse<d::gateway_config>(R"({"policy": "random"})"));
    EXPECT_FALSE(swarm::config::parse<d::gateway_config>(R"({"api_keys": [{"key": ""}]})"));
    EXPECT_FALSE(swarm::config::parse<d::gateway_config>(
        R"({"backends": [{"url": "http://x:1"}, {"url": "http://x:1"}]})"));
}

TEST(GatewayApi, MisuseAndBadBackendsAreReported) {
    fault_backend b({"m"});
    auto cfg = base_config({&b});
    cfg.max_in_flight = 0;
    auto bad = d::gateway::create(cfg);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error(), swarm::errc::config_invalid_value);
    EXPECT_NE(bad.error().message.find("max_in_flight"), std::string::npos);

    auto g = start(base_config({&b}));
    auto again = g.gw.start();
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error(), swarm::errc::already_exists);

    // The same port twice: the second cannot bind, and says where.
    auto taken = base_config({&b});
    taken.listen.set_port(g.port);
    auto second = d::gateway::create(taken).value();
    auto bound = second.start();
    ASSERT_FALSE(bound);
    EXPECT_EQ(bound.error(), swarm::errc::io_error);
    EXPECT_NE(bound.error().message.find(std::to_string(g.port)), std::string::npos) << bound.error().message;

    // An invalid entry is skipped and named; the valid ones still apply.
    d::backend_config good;
    good.url = b.url();
    auto r = g.gw.set_backends({backend_of("http://nowhere/x", "openai", {"z"}), good});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("http://nowhere/x"), std::string::npos) << r.error().message;
    EXPECT_TRUE(eventually([&] { return call(g.port, "POST", "/v1/chat/completions", chat).status == 200; }));
}

swarm::membership::member member_with(std::uint8_t seed, swarm::membership::member_state state,
                                      std::vector<swarm::membership::served_model> models) {
    swarm::membership::member m;
    swarm::node_id::bytes_type bytes{};
    bytes[0] = std::byte{seed};
    m.id = swarm::node_id(bytes);
    m.state = state;
    auto meta = std::make_shared<swarm::membership::metadata>();
    meta->models = std::move(models);
    m.meta = std::move(meta);
    return m;
}

TEST(GatewayMembership, BackendsFromMetadataSyncARouter) {
    using swarm::membership::member_state;
    std::vector<swarm::membership::member> members{
        member_with(1, member_state::alive, {{"llama", "http://10.0.0.1:8000", "openai"},
                                             {"qwen", "http://10.0.0.1:8000", "openai"},
                                             {"bert", "http://10.0.0.1:9000", "kserve-v2"}}),
        member_with(2, member_state::suspect, {{"llama", "http://10.0.0.2:8000", "openai"}}),
        member_with(3, member_state::dead, {{"llama", "http://10.0.0.3:8000", "openai"}}),
        member_with(4, member_state::alive, {{"bad", "ftp://x", "openai"}, {"odd", "http://x:1", "soap"}}),
    };
    auto list = d::backends_from_members(members);
    ASSERT_EQ(list.size(), 3u);
    EXPECT_EQ(list[0].models, (std::vector<std::string>{"llama", "qwen"}));

    auto r = d::router::create({}, {{d::least_outstanding(), 1.0}});
    ASSERT_TRUE(r);
    d::member_sync sync;
    ASSERT_TRUE(sync.apply(*r, members));
    EXPECT_EQ(r->size(), 3u);
    auto routed = r->route(model_view("llama"));
    ASSERT_TRUE(routed);
    EXPECT_EQ(r->find(routed->chosen)->info.endpoint, "http://10.0.0.1:8000"); // the suspect one is unhealthy
    EXPECT_TRUE(r->route(model_view("kserve-v2:bert")));

    members.erase(members.begin()); // member 1 left the snapshot entirely
    ASSERT_TRUE(sync.apply(*r, members));
    EXPECT_EQ(r->size(), 1u);
    EXPECT_FALSE(r->route(model_view("llama"))); // only the suspect backend is left, and it is unhealthy
}

TEST(GatewayMembership, GatewayServesBackendsFromMembers) {
    fault_backend b({});
    auto cfg = base_config({});
    auto g = start(std::move(cfg));
    std::vector<swarm::membership::member> members{
        member_with(1, swarm::membership::member_state::alive, {{"mesh-model", b.url(), "openai"}})};
    ASSERT_TRUE(g.gw.sync_members(members));
    EXPECT_EQ(call(g.port, "POST", "/v1/chat/completions", R"({"model":"mesh-model","messages":[]})").status, 200u);
    EXPECT_EQ(b.posts(), 1);
    ASSERT_TRUE(g.gw.sync_members({}));
    EXPECT_EQ(call(g.port, "POST", "/v1/chat/completions", R"({"model":"mesh-model","messages":[]})").status, 404u);
}

} // namespace

namespace {

swarm::membership::member gpu_member(std::uint8_t seed, const fault_backend& b, std::uint32_t utilisation_percent) {
    auto m = member_with(seed, swarm::membership::member_state::alive, {{"gpu-model", b.url(), "openai"}});
    auto meta = std::make_shared<swarm::membership::metadata>(*m.meta);
    meta->capacity.gpus = {{"L4", 24ULL << 30, 4ULL << 30, utilisation_percent}};
    m.meta = std::move(meta);
    return m;
}

} // namespace

TEST(GatewayMembership, RequestsAvoidANodeWhoseGpusAreSaturated) {
    fault_backend hot({}), cool({});
    auto cfg = base_config({});
    cfg.policy = d::routing_policy::round_robin; // would alternate, were it not for the telemetry
    auto g = start(std::move(cfg));
    const std::string body = R"({"model":"gpu-model","messages":[]})";
    ASSERT_TRUE(g.gw.sync_members(std::vector{gpu_member(1, hot, 99), gpu_member(2, cool, 20)}));
    for (int i = 0; i < 4; ++i) EXPECT_EQ(call(g.port, "POST", "/v1/chat/completions", body).status, 200u);
    EXPECT_EQ(hot.posts(), 0);
    EXPECT_EQ(cool.posts(), 4);

    // Both saturated: still served rather than refused.
    ASSERT_TRUE(g.gw.sync_members(std::vector{gpu_member(1, hot, 99), gpu_member(2, cool, 97)}));
    for (int i = 0; i < 4; ++i) EXPECT_EQ(call(g.port, "POST", "/v1/chat/completions", body).status, 200u);
    EXPECT_EQ(hot.posts() + cool.posts(), 8);
    EXPECT_GT(hot.posts(), 0);
}

TEST(GatewayConfig, BackendUrlsAreParsedStrictly) {
    auto v4 = d::parse_http_url("http://127.0.0.1:8080/");
    ASSERT_TRUE(v4) << v4.error().message;
    EXPECT_EQ(v4->host_header, "127.0.0.1:8080");
    auto v6 = d::parse_http_url("http://[::1]:9000");
    ASSERT_TRUE(v6) << v6.error().message;
    EXPECT_EQ(v6->host, "::1");
    EXPECT_EQ(v6->host_header, "[::1]:9000");
    auto name = d::parse_http_url("http://model-server.local");
    ASSERT_TRUE(name);
    EXPECT_EQ(name->port, "80");
    // Found by fuzz_gateway_http: a host of stray brackets and colons used to be accepted as a name.
    for (const char* bad : {"http://][:1:]:8080/", "http://::1:8080", "http://[example.com]:80", "http://ho$t:1",
                            "http://[::1]x", "http://:80", "http://h:0", "http://h:65536", "https://h:1", "http://h/p"}) {
        auto r = d::parse_http_url(bad);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_NE(r.error().message.find(bad), std::string::npos) << r.error().message;
        }
    }
}

TEST(Gateway, SessionAffinityKeepsASessionOnOneBackendAndSpreadsSessions) {
    fault_backend b0({"m"}), b1({"m"}), b2({"m"});
    auto cfg = base_config({&b0, &b1, &b2});
    cfg.policy = d::routing_policy::session_affinity;
    auto g = start(std::move(cfg));
    const std::array<const fault_backend*, 3> all{&b0, &b1, &b2};
    const auto served_by = [&](const std::string& header, const std::string& body) {
        std::array<int, 3> before{};
        for (std::size_t i = 0; i < 3; ++i) before[i] = all[i]->posts();
        EXPECT_EQ(call(g.port, "POST", "/v1/chat/completions", body, header).status, 200u);
        for (std::size_t i = 0; i < 3; ++i)
            if (all[i]->posts() != before[i]) return static_cast<int>(i);
        return -1;
    };
    std::set<int> used;
    for (int s = 0; s < 12; ++s) {
        const std::string header = fmt::format("x-session-id: session-{}\r\n", s);
        const int first = served_by(header, chat);
        ASSERT_GE(first, 0);
        used.insert(first);
        for (int again = 0; again < 2; ++again) EXPECT_EQ(served_by(header, chat), first) << s;
    }
    EXPECT_GE(used.size(), 2u); // twelve sessions do not all land on one backend
    // The "user" field names a session too.
    const std::string by_user = R"({"model":"m","user":"alice","messages":[{"role":"user","content":"hello"}]})";
    const int alice = served_by("", by_user);
    EXPECT_EQ(served_by("", by_user), alice);

    auto parsed = swarm::config::parse<d::gateway_config>(R"({"policy": "weighted"})");
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->policy, d::routing_policy::weighted);
}
