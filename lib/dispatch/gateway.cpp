// The gateway: Beast server, upstream connection pools, retries, breakers, admission, health checks.
//
// Everything runs on one io_context thread, so the router (a single-strand object) and all state here need no
// locks. Each client connection is one coroutine; a proxied request is awaited inline in it, with a second
// coroutine watching the client socket so that a disconnect closes the upstream connection at once.
#include <swarm/dispatch/gateway.hpp>

#include "core/sodium_init.hpp"
#include "dispatch/gateway_detail.hpp"

#include <swarm/dispatch/scorers.hpp>
#include <swarm/net/asio_endpoint.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <sodium.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <tuple>

namespace swarm::inline v0::dispatch {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using asio::awaitable;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

using steady = std::chrono::steady_clock;

time_point now() { return std::chrono::time_point_cast<duration>(steady::now()); }
steady::time_point to_steady(time_point t) { return steady::time_point(t.time_since_epoch()); }

bool iequals(std::string_view a, std::string_view b) { return beast::iequals(a, b); }

// Fields that describe one hop's connection, never forwarded (RFC 9110 7.6.1), plus the ones the gateway
// sets itself.
bool hop_by_hop(std::string_view name) {
    static constexpr std::array<std::string_view, 11> names{
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate", "content-length", "expect"};
    return std::any_of(names.begin(), names.end(), [&](std::string_view n) { return iequals(n, name); });
}

std::string hex(std::span<const unsigned char> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(bytes.size() * 2);
    for (auto b : bytes) {
        s.push_back(digits[b >> 4]);
        s.push_back(digits[b & 15]);
    }
    return s;
}

// Request and span ids need to be unique, not secret: a generator seeded once from the system's entropy
// costs no system call per request (randombytes_buf does).
std::string random_hex(std::mt19937_64& rng, std::size_t bytes) {
    std::array<unsigned char, 32> buf{};
    for (std::size_t i = 0; i < bytes; i += 8) {
        const auto v = rng();
        std::memcpy(buf.data() + i, &v, std::min<std::size_t>(8, bytes - i));
    }
    return hex({buf.data(), bytes});
}

bool is_lower_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// W3C traceparent: "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"; the gateway is a hop, so it keeps
// the trace id and flags and sends its own parent id. A missing or invalid one starts a new trace.
std::string next_traceparent(std::mt19937_64& rng, std::string_view incoming) {
    if (incoming.size() == 55 && incoming.substr(0, 3) == "00-" && incoming[35] == '-' && incoming[52] == '-') {
        auto trace = incoming.substr(3, 32);
        auto parent = incoming.substr(36, 16);
        auto flags = incoming.substr(53, 2);
        if (is_lower_hex(trace) && is_lower_hex(parent) && is_lower_hex(flags) &&
            trace != std::string(32, '0') && parent != std::string(16, '0'))
            return fmt::format("00-{}-{}-{}", trace, random_hex(rng, 8), flags);
    }
    return fmt::format("00-{}-{}-01", random_hex(rng, 16), random_hex(rng, 8));
}

bool sane_request_id(std::string_view id) {
    return !id.empty() && id.size() <= 128 &&
           std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

using response = http::response<http::string_body>;

// A message with a sized string body as one gather write of its head and its body. Beast's serializer does the
// same with several times the instructions (a fifth of the gateway's per request); a chunked message still
// goes through it.
template <class Stream, bool IsRequest>
awaitable<std::tuple<boost::system::error_code, std::size_t>> write_message(
    Stream& stream, http::message<IsRequest, http::string_body>& m) {
    if (m.chunked()) co_return co_await http::async_write(stream, m, nothrow);
    std::string head;
    head.reserve(512);
    if constexpr (IsRequest) {
        head.append(m.method_string()).append(" ").append(m.target()).append(m.version() >= 11 ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
    } else {
        char code[4];
        auto [end, ec] = std::to_chars(code, code + sizeof code, m.result_int());
        (void)ec;
        head.append(m.version() >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ").append(code, end).append(" ").append(m.reason()).append("\r\n");
    }
    for (const auto& f : m) head.append(f.name_string()).append(": ").append(f.value()).append("\r\n");
    head.append("\r\n");
    const std::array<asio::const_buffer, 2> parts{asio::buffer(head), asio::buffer(m.body())};
    co_return co_await asio::async_write(stream, parts, nothrow);
}

// OpenAI's error object.
response error_response(http::status status, std::string_view message, std::string_view type,
                        std::string_view code, std::string_view param = {}) {
    json::object e;
    e["message"] = message;
    e["type"] = type;
    e["param"] = param.empty() ? json::value(nullptr) : json::value(param);
    e["code"] = code.empty() ? json::value(nullptr) : json::value(code);
    json::object o;
    o["error"] = std::move(e);
    response r{status, 11};
    r.set(http::field::content_type, "application/json");
    r.body() = json::serialize(o);
    return r;
}

response json_response(http::status status, const json::value& v) {
    response r{status, 11};
    r.set(http::field::content_type, "application/json");
    r.body() = json::serialize(v);
    return r;
}

enum class breaker_state : std::uint8_t { closed, open, half_open };

struct upstream_conn;

std::uint64_t seed_from_sodium() {
    detail::sodium_init_once();
    std::uint64_t seed = 0;
    randombytes_buf(&seed, sizeof seed);
    return seed;
}

struct backend_entry {
    backend_config cfg;
    http_url url;
    std::vector<std::string> learned_models;   // from the backend when cfg.models is empty
    json::object model_objects;                // id -> the backend's /v1/models entry
    bool registered = false;                   // in the router
    bool removed = false;
    bool healthy = false;                      // last health check
    bool checked_once = false;
    bool scrape = true;                        // cleared when the backend has no /metrics

    // Pool.
    std::vector<std::unique_ptr<upstream_conn>> idle;
    std::uint32_t open = 0;
    std::deque<asio::steady_timer*> waiters;

    // Breaker.
    breaker_state breaker = breaker_state::closed;
    std::uint32_t consecutive_failures = 0;
    std::uint32_t openings = 0;
    bool trial_in_flight = false;

    const std::vector<std::string>& models() const { return cfg.models.empty() ? learned_models : cfg.models; }
};

struct key_entry {
    std::array<unsigned char, crypto_generichash_BYTES> hash{};
    double rate = 0;
    double burst = 0;
    double tokens = 0;
    time_point last{};
};

struct core {
    // First member, so it is destroyed last: every socket and timer below belongs to it.
    asio::io_context io{1};
    gateway_config cfg;
    logger log;
    router rt;
    metrics::registry reg;
    tcp::acceptor acceptor{io};
    std::thread thread;
    bool started = false;
    bool stopping = false;
    bool stopped = false;
    std::atomic<int> first_checks_pending{0};

    std::map<std::string, std::shared_ptr<backend_entry>, std::less<>> backends;
    std::set<beast::tcp_stream*> streams; // every open connection, closed on a hard stop
    std::set<asio::steady_timer*> timers; // every pending wait, cancelled on a hard stop
    std::set<beast::tcp_stream*> idle_clients;
    std::uint32_t active_requests = 0;

    std::uint32_t in_flight = 0;
    std::deque<std::pair<asio::steady_timer*, bool*>> admission_queue;
    double retry_tokens = 0;
    std::vector<key_entry> keys;
    std::mt19937_64 rng{seed_from_sodium()};

    metrics::family<metrics::counter>* requests_total = nullptr;
    metrics::family<metrics::counter>* rejected_total = nullptr;
    metrics::family<metrics::counter>* upstream_total = nullptr;
    metrics::counter* retries_total = nullptr;
    metrics::counter* cancelled_total = nullptr;
    metrics::counter* hedges_total = nullptr;
    metrics::family<metrics::counter>* breaker_open_total = nullptr;
    metrics::histogram* duration_seconds = nullptr;
    metrics::gauge* in_flight_gauge = nullptr;
    metrics::gauge* queued_gauge = nullptr;
    metrics::family<metrics::gauge>* backend_queued = nullptr;
    metrics::family<metrics::gauge>* backend_kv = nullptr;

    core(gateway_config c, logger l, router r) : cfg(std::move(c)), log(std::move(l)), rt(std::move(r)) {}

    // ---- registration of waits and connections, for a bounded shutdown ----

    struct tracked_timer {
        core& g;
        asio::steady_timer timer;
        explicit tracked_timer(core& gw) : g(gw), timer(gw.io) { g.timers.insert(&timer); }
        ~tracked_timer() { g.timers.erase(&timer); }
        tracked_timer(const tracked_timer&) = delete;
        tracked_timer& operator=(const tracked_timer&) = delete;
    };

    // Sleeps until `t`; false when woken early (cancelled: shutdown, or a waiter being signalled).
    awaitable<bool> sleep_until(time_point t) {
        if (stopping) co_return false;
        tracked_timer tt(*this);
        tt.timer.expires_at(to_steady(t));
        auto [ec] = co_await tt.timer.async_wait(nothrow);
        co_return !ec && !stopping;
    }

    void hard_close() {
        for (auto* s : std::vector(streams.begin(), streams.end())) s->close();
        for (auto* t : std::vector(timers.begin(), timers.end())) t->cancel();
        for (auto& [id, b] : backends) b->idle.clear();
    }

    detailed_result<void> init();
    void apply_backends(std::vector<backend_config> list, std::vector<std::string>& problems);
    void register_backend(backend_entry& b);
    void start_backend_loop(const std::shared_ptr<backend_entry>& b);

    awaitable<void> accept_loop();
    awaitable<void> session(tcp::socket socket);
    awaitable<void> backend_loop(std::shared_ptr<backend_entry> b);
    awaitable<void> drain(duration timeout);
};

// ---- upstream connections ----

struct upstream_conn {
    core& g;
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    time_point idle_since{};
    bool reused = false;
    explicit upstream_conn(core& gw) : g(gw), stream(gw.io) { g.streams.insert(&stream); }
    ~upstream_conn() { g.streams.erase(&stream); }
    upstream_conn(const upstream_conn&) = delete;
    upstream_conn& operator=(const upstream_conn&) = delete;
};

struct acquired {
    std::unique_ptr<upstream_conn> conn;
    error failure;
};

void wake_one(backend_entry& b) {
    if (b.waiters.empty()) return;
    b.waiters.front()->cancel();
    b.waiters.pop_front();
}

// Gives a connection back: kept for reuse when the exchange ended cleanly, else closed.
void release(core& g, backend_entry& b, std::unique_ptr<upstream_conn> c, bool reusable) {
    if (!c) return;
    if (reusable && !b.removed && !g.stopping && c->stream.socket().is_open()) {
        c->idle_since = now();
        c->reused = true;
        c->stream.expires_never();
        b.idle.push_back(std::move(c));
    } else {
        c.reset();
        --b.open;
    }
    wake_one(b);
}

// A connection to `b` by `deadline`: an idle one (newest first) unless `fresh`, else a new one while under the
// per-backend bound, else waits for one to come back.
awaitable<acquired> acquire(core& g, std::shared_ptr<backend_entry> b, time_point deadline, bool fresh) {
    for (;;) {
        if (g.stopping) co_return acquired{nullptr, {errc::shut_down, "gateway stopping"}};
        while (!b->idle.empty()) {
            auto c = std::move(b->idle.back());
            b->idle.pop_back();
            if (!fresh && now() - c->idle_since < g.cfg.pool_idle_timeout && c->stream.socket().is_open())
                co_return acquired{std::move(c), {}};
            c.reset();
            --b->open;
        }
        if (b->open < g.cfg.max_connections_per_backend) {
            ++b->open;
            auto c = std::make_unique<upstream_conn>(g);
            tcp::resolver resolver(g.io);
            auto [rec, results] = co_await resolver.async_resolve(b->url.host, b->url.port, nothrow);
            if (!rec) {
                c->stream.expires_at(to_steady(std::min(deadline, now() + g.cfg.connect_timeout)));
                auto [cec, ep] = co_await c->stream.async_connect(results, nothrow);
                rec = cec;
            }
            if (rec) {
                c.reset();
                --b->open;
                wake_one(*b);
                auto code = rec == beast::error::timeout ? errc::timed_out : errc::connection_refused;
                co_return acquired{nullptr, {code, fmt::format("connect to {}: {}", b->url.host_header, rec.message())}};
            }
            c->stream.socket().set_option(tcp::no_delay(true));
            co_return acquired{std::move(c), {}};
        }
        {
            core::tracked_timer tt(g);
            tt.timer.expires_at(to_steady(deadline));
            b->waiters.push_back(&tt.timer);
            auto [ec] = co_await tt.timer.async_wait(nothrow);
            if (auto it = std::find(b->waiters.begin(), b->waiters.end(), &tt.timer); it != b->waiters.end())
                b->waiters.erase(it);
            if (!ec) co_return acquired{nullptr, {errc::timed_out, "no free connection to the backend in time"}};
        }
    }
}

// One HTTP exchange for health checks, model lists and /metrics scrapes.
struct simple_result {
    unsigned status = 0;
    std::string body;
};
awaitable<detailed_result<simple_result>> simple_request(core& g, std::shared_ptr<backend_entry> b,
                                                         http::verb verb, std::string target, duration timeout) {
    const auto deadline = now() + timeout;
    auto a = co_await acquire(g, b, deadline, false);
    if (!a.conn) co_return a.failure;
    auto& c = *a.conn;
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, b->url.host_header);
    req.set(http::field::user_agent, "swarm-gateway");
    req.keep_alive(true);
    c.stream.expires_at(to_steady(deadline));
    auto [wec, wn] = co_await http::async_write(c.stream, req, nothrow);
    http::response_parser<http::string_body> p;
    p.body_limit(16 * 1024 * 1024);
    boost::system::error_code ec = wec;
    if (!ec) std::tie(ec, std::ignore) = co_await http::async_read(c.stream, c.buffer, p, nothrow);
    if (ec) {
        release(g, *b, std::move(a.conn), false);
        co_return error{ec == beast::error::timeout ? errc::timed_out : errc::connection_reset,
                        fmt::format("{} {}: {}", std::string_view(http::to_string(verb)), target, ec.message())};
    }
    const bool keep = p.get().keep_alive();
    simple_result r{p.get().result_int(), std::move(p.get().body())};
    release(g, *b, std::move(a.conn), keep);
    co_return r;
}

} // namespace

// ---- backends ----

detailed_result<http_url> parse_http_url(std::string_view url) {
    constexpr std::string_view scheme = "http://";
    if (url.substr(0, scheme.size()) != scheme)
        return error{errc::invalid_argument, fmt::format("\"{}\" is not an http:// URL", url)};
    auto rest = url.substr(scheme.size());
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    if (rest.find_first_of("/?#@ ") != std::string_view::npos)
        return error{errc::invalid_argument, fmt::format("\"{}\": only scheme, host and port are allowed", url)};
    http_url out;
    std::string_view host, port;
    if (!rest.empty() && rest.front() == '[') {
        auto close = rest.find(']');
        if (close == std::string_view::npos) return error{errc::invalid_argument, fmt::format("\"{}\": unclosed [", url)};
        host = rest.substr(1, close - 1);
        auto tail = rest.substr(close + 1);
        if (!tail.empty() && tail.front() != ':')
            return error{errc::invalid_argument, fmt::format("\"{}\": junk after ]", url)};
        port = tail.empty() ? std::string_view{} : tail.substr(1);
    } else {
        auto colon = rest.rfind(':');
        host = rest.substr(0, colon);
        port = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    }
    if (host.empty()) return error{errc::invalid_argument, fmt::format("\"{}\": no host", url)};
    // A name or IPv4 address (letters, digits, '.', '-', '_'), or in brackets an IPv6 address (hex digits,
    // ':', '.' for an embedded IPv4, '%' and a zone): anything else would only fail later, when resolved.
    const bool bracketed = rest.front() == '[';
    for (const char ch : host) {
        const bool alnum = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        const bool ok = bracketed ? alnum || ch == ':' || ch == '.' || ch == '%' : alnum || ch == '.' || ch == '-' || ch == '_';
        if (!ok) return error{errc::invalid_argument, fmt::format("\"{}\": bad character in the host", url)};
    }
    if (bracketed && host.find(':') == std::string_view::npos)
        return error{errc::invalid_argument, fmt::format("\"{}\": brackets hold an IPv6 address", url)};
    if (port.empty()) port = "80";
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || ptr != port.data() + port.size() || value == 0 || value > 65535)
        return error{errc::invalid_argument, fmt::format("\"{}\": bad port", url)};
    out.host = std::string(host);
    out.port = std::string(port);
    out.host_header = host.find(':') != std::string_view::npos ? fmt::format("[{}]:{}", host, port)
                                                               : fmt::format("{}:{}", host, port);
    return out;
}

scraped_load parse_prometheus_load(std::string_view text) {
    scraped_load out;
    double kv_sum = 0;
    int kv_count = 0;
    while (!text.empty()) {
        auto eol = text.find('\n');
        auto line = text.substr(0, eol);
        text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
        if (line.empty() || line.front() == '#') continue;
        auto name_end = line.find_first_of("{ ");
        if (name_end == std::string_view::npos) continue;
        auto name = line.substr(0, name_end);
        auto value_start = line.find(' ', line[name_end] == '{' ? line.find('}', name_end) : name_end);
        if (value_start == std::string_view::npos) continue;
        auto value_text = line.substr(value_start + 1);
        value_text = value_text.substr(0, value_text.find(' ')); // a timestamp may follow
        double v = 0;
        auto [ptr, ec] = std::from_chars(value_text.data(), value_text.data() + value_text.size(), v);
        if (ec != std::errc{} || !std::isfinite(v)) continue;
        if (name == "vllm:num_requests_waiting" || name == "llamacpp:requests_deferred" ||
            name == "sglang:num_queue_reqs" || name == "tgi_queue_size") {
            out.waiting += v;
            out.any = true;
        } else if (name == "vllm:num_requests_running" || name == "llamacpp:requests_processing" ||
                   name == "sglang:num_running_reqs") {
            out.running += v;
            out.any = true;
        } else if (name == "vllm:kv_cache_usage_perc" || name == "vllm:gpu_cache_usage_perc" ||
                   name == "llamacpp:kv_cache_usage_ratio") {
            kv_sum += v;
            ++kv_count;
            out.any = true;
        }
    }
    if (kv_count) out.kv_usage = std::clamp(kv_sum / kv_count, 0.0, 1.0);
    return out;
}

void core::register_backend(backend_entry& b) {
    const bool want = !b.removed && b.healthy && !b.models().empty();
    if (!want && !b.checked_once) return;
    backend d = router_backend(b.cfg, b.models());
    d.healthy = b.healthy;
    d.ejected = b.breaker == breaker_state::open;
    if (d.models.empty()) {
        if (b.registered) (void)rt.remove(b.cfg.id);
        b.registered = false;
        return;
    }
    if (const auto* old = rt.find(b.cfg.id)) {
        d.queued = old->info.queued;
        d.kv_cache_usage = old->info.kv_cache_usage;
        (void)rt.update(std::move(d));
    } else if (auto r = rt.add(std::move(d)); !r) {
        log.warning("gateway: backend {}: {}", b.cfg.id, r.error().describe());
        return;
    }
    b.registered = true;
}

void core::apply_backends(std::vector<backend_config> list, std::vector<std::string>& problems) {
    std::set<std::string, std::less<>> wanted;
    for (auto& c : list) {
        if (c.id.empty()) c.id = c.url;
        if (auto v = c.validate(); !v) {
            problems.push_back(fmt::format("backend {}: {}", c.id, v.error().message));
            continue;
        }
        if (!wanted.insert(c.id).second) {
            problems.push_back(fmt::format("backend {}: appears twice", c.id));
            continue;
        }
        auto it = backends.find(c.id);
        if (it != backends.end() && it->second->cfg.url == c.url && it->second->cfg.api == c.api) {
            it->second->cfg = std::move(c);
            register_backend(*it->second);
            continue;
        }
        if (it != backends.end()) { // a new address: a new backend under the old id
            it->second->removed = true;
            it->second->idle.clear();
            if (it->second->registered) (void)rt.remove(it->first);
            backends.erase(it);
        }
        auto b = std::make_shared<backend_entry>();
        b->url = parse_http_url(c.url).value();
        b->cfg = std::move(c);
        // Backends described with their models (membership metadata) are routable before the first check.
        b->healthy = !b->cfg.models.empty();
        b->checked_once = b->healthy;
        register_backend(*b);
        backends.emplace(b->cfg.id, b);
        if (started) start_backend_loop(b);
    }
    for (auto it = backends.begin(); it != backends.end();) {
        if (wanted.contains(it->first)) {
            ++it;
            continue;
        }
        it->second->removed = true;
        it->second->idle.clear();
        if (it->second->registered) (void)rt.remove(it->first);
        it = backends.erase(it);
    }
}

void core::start_backend_loop(const std::shared_ptr<backend_entry>& b) {
    asio::co_spawn(io, backend_loop(b), asio::detached);
}

// Health checks, model discovery and load scraping, once per health_interval per backend.
awaitable<void> core::backend_loop(std::shared_ptr<backend_entry> b) {
    bool first = true;
    while (!stopping && !b->removed) {
        const auto timeout = cfg.connect_timeout + cfg.health_interval;
        bool ok = false;
        if (b->cfg.api == "openai") {
            auto r = co_await simple_request(*this, b, http::verb::get, "/v1/models", timeout);
            ok = r && r->status == 200;
            if (ok) {
                boost::system::error_code ec;
                auto v = json::parse(r->body, ec);
                const auto* data = (!ec && v.is_object()) ? v.as_object().if_contains("data") : nullptr;
                if (data && data->is_array()) {
                    std::vector<std::string> names;
                    json::object objects;
                    for (const auto& m : data->as_array()) {
                        const auto* id = m.is_object() ? m.as_object().if_contains("id") : nullptr;
                        if (!id || !id->is_string() || id->as_string().empty()) continue;
                        names.emplace_back(id->as_string());
                        objects[id->as_string()] = m;
                    }
                    b->learned_models = std::move(names);
                    b->model_objects = std::move(objects);
                } else {
                    ok = false;
                }
            }
        } else if (b->cfg.api == "tgi") {
            auto r = co_await simple_request(*this, b, http::verb::get, "/health", timeout);
            ok = r && r->status == 200;
            if (ok && b->cfg.models.empty()) {
                auto info = co_await simple_request(*this, b, http::verb::get, "/info", timeout);
                boost::system::error_code ec;
                auto v = info && info->status == 200 ? json::parse(info->body, ec) : json::value{};
                const auto* id = v.is_object() ? v.as_object().if_contains("model_id") : nullptr;
                if (id && id->is_string() && !id->as_string().empty())
                    b->learned_models = {std::string(id->as_string())};
            }
        } else {
            auto r = co_await simple_request(*this, b, http::verb::get, "/v2/health/ready", timeout);
            ok = r && r->status == 200;
        }
        if (b->removed || stopping) break;
        if (ok != b->healthy || first) log.info("gateway: backend {} {}", b->cfg.id, ok ? "healthy" : "unhealthy");
        b->healthy = ok;
        b->checked_once = true;
        register_backend(*b);
        if (ok && cfg.scrape_metrics && b->scrape) {
            auto m = co_await simple_request(*this, b, http::verb::get, "/metrics", timeout);
            if (m && m->status == 404) b->scrape = false; // no such endpoint: stop asking
            if (m && m->status == 200 && !b->removed) {
                auto load = parse_prometheus_load(m->body);
                if (load.any) {
                    const auto* st = rt.find(b->cfg.id);
                    // The backend's running count includes this gateway's own requests, which the router
                    // already counts as in flight; only the rest (other gateways' requests) is added.
                    const double local = st ? st->in_flight : 0;
                    const double queued = load.waiting + std::max(0.0, load.running - local);
                    const double kv = load.kv_usage >= 0 ? load.kv_usage : (st ? st->info.kv_cache_usage : 0.0);
                    (void)rt.set_reported_load(b->cfg.id, static_cast<std::uint32_t>(std::lround(queued)), kv);
                    backend_queued->labels({b->cfg.id}).set(queued);
                    backend_kv->labels({b->cfg.id}).set(kv);
                }
            }
        }
        // Idle connections past their timeout are closed here too, not only when next acquired.
        std::erase_if(b->idle, [&](const std::unique_ptr<upstream_conn>& c) {
            if (now() - c->idle_since < cfg.pool_idle_timeout) return false;
            --b->open;
            return true;
        });
        if (first) {
            first = false;
            first_checks_pending.fetch_sub(1);
        }
        if (!co_await sleep_until(now() + cfg.health_interval)) break;
    }
    if (first) first_checks_pending.fetch_sub(1);
}

// ---- the client side ----

namespace {

enum class api_path : std::uint8_t { openai, tgi, kserve };

struct route_target {
    api_path api = api_path::openai;
    std::string model_key;   // the router's model key
    std::string model;       // as the client named it
    std::string prompt;      // bytes for prefix affinity
    std::string session;
    bool stream = false;
    std::string_view metric; // path label
};

struct client_conn {
    core& g;
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    client_conn(core& gw, tcp::socket s) : g(gw), stream(std::move(s)), buffer(gw.cfg.max_header_bytes + 1) {
        g.streams.insert(&stream);
    }
    ~client_conn() {
        g.streams.erase(&stream);
        g.idle_clients.erase(&stream);
    }
    client_conn(const client_conn&) = delete;
    client_conn& operator=(const client_conn&) = delete;
};

// One attempt's hold on a backend connection.
struct leg {
    bool abandoned = false;                    // a hedge won: stop and give the connection up
    beast::tcp_stream* upstream = nullptr;     // the connection in use
};

// What a proxied exchange shares with the coroutine watching its client.
struct exchange {
    bool done = false;
    bool client_gone = false;
    std::vector<std::shared_ptr<leg>> legs;    // their connections are closed when the client leaves
    asio::steady_timer* sleeping = nullptr;    // a backoff or hedge wait, cut short when the client leaves
};

awaitable<void> watch_client(std::shared_ptr<exchange> ex, client_conn* c, core* g) {
    auto& socket = c->stream.socket();
    auto [ec] = co_await socket.async_wait(tcp::socket::wait_read, nothrow);
    if (ex->done || ec) co_return;
    // Readable: either the peer closed (peek sees 0 bytes or an error) or it pipelined its next request.
    char byte = 0;
    boost::system::error_code pec;
    socket.non_blocking(true, pec);
    const auto n = socket.receive(asio::buffer(&byte, 1), tcp::socket::message_peek, pec);
    if (pec == asio::error::would_block || (!pec && n > 0)) co_return;
    ex->client_gone = true;
    g->cancelled_total->inc();
    for (auto& l : ex->legs)
        if (l->upstream) l->upstream->close();
    if (ex->sleeping) ex->sleeping->cancel();
}

} // namespace

namespace {

// An attempt's result.
struct attempt_result {
    enum class kind : std::uint8_t { committed, failed, client_gone } what = kind::failed;
    bool keep_client = true;
    bool backend_fault = false;          // counts against the breaker
    unsigned status = 0;                 // the client's status when committed
    error failure;                       // when failed
    std::optional<response> held;        // the answer to write (committed), or a retryable status to pass on
};

// Two hedged attempts of one request.
struct race {
    std::array<std::optional<attempt_result>, 2> results;
    std::array<std::shared_ptr<leg>, 2> legs;
    int spawned = 0;
    int finished = 0;
    asio::steady_timer* wake = nullptr; // cancelled when an attempt finishes
};

} // namespace

namespace {

class server {
public:
    server(core& g, client_conn& c) : g_(g), c_(c) {}

    awaitable<bool> handle(http::request<http::string_body>& req);

private:
    awaitable<bool> write(response res, const http::request<http::string_body>& req, std::string_view metric,
                          bool force_close = false) {
        const auto code = res.result_int();
        res.version(11);
        res.set(http::field::server, "swarm-gateway");
        res.set("x-request-id", request_id_);
        const bool keep = !force_close && req.keep_alive() && !g_.stopping;
        res.keep_alive(keep);
        res.prepare_payload();
        c_.stream.expires_after(g_.cfg.stream_idle_timeout);
        auto [ec, n] = co_await write_message(c_.stream, res);
        count(metric, code);
        co_return !ec && keep;
    }

    void count(std::string_view metric, unsigned code) {
        char buf[8];
        auto [ptr, e] = std::to_chars(buf, buf + sizeof buf, code);
        (void)e;
        g_.requests_total->labels({metric, std::string_view(buf, ptr)}).inc();
        g_.duration_seconds->observe(std::chrono::duration<double>(now() - started_).count());
    }

    bool check_auth(const http::request<http::string_body>& req, std::optional<response>& err);
    json::value merged_models() const;
    std::optional<response> parse_target(const http::request<http::string_body>& req, std::string_view path,
                                         route_target& t);
    awaitable<bool> proxy(http::request<http::string_body>& req, route_target& t);
    awaitable<attempt_result> attempt(std::shared_ptr<backend_entry> b, http::request<http::string_body>& req,
                                      const route_target& t, time_point deadline, std::shared_ptr<exchange> ex,
                                      std::shared_ptr<leg> lg);
    awaitable<attempt_result> run_attempt(backend_ref ref, std::shared_ptr<backend_entry> b,
                                          http::request<http::string_body>& req, const route_target& t,
                                          time_point deadline, std::shared_ptr<exchange> ex, std::shared_ptr<leg> lg);
    std::shared_ptr<backend_entry> candidate(backend_ref ref) const;

    core& g_;
    client_conn& c_;
    std::string request_id_;
    std::string traceparent_;
    time_point started_ = now();
};

bool server::check_auth(const http::request<http::string_body>& req, std::optional<response>& err) {
    if (g_.keys.empty()) return true;
    auto auth = req[http::field::authorization];
    constexpr std::string_view bearer = "bearer ";
    if (auth.size() <= bearer.size() || !iequals(auth.substr(0, bearer.size()), bearer)) {
        err = error_response(http::status::unauthorized,
                             "Missing bearer authentication in header (Authorization: Bearer <key>).",
                             "invalid_request_error", "invalid_api_key");
        g_.rejected_total->labels({"unauthorized"}).inc();
        return false;
    }
    auto presented = auth.substr(bearer.size());
    std::array<unsigned char, crypto_generichash_BYTES> hash{};
    crypto_generichash(hash.data(), hash.size(), reinterpret_cast<const unsigned char*>(presented.data()),
                       presented.size(), nullptr, 0);
    // Every key is compared, each in constant time over fixed-size hashes, so timing reveals neither which
    // key matched nor how much of one did.
    key_entry* match = nullptr;
    for (auto& k : g_.keys) {
        const bool equal = sodium_memcmp(k.hash.data(), hash.data(), hash.size()) == 0;
        if (equal) match = &k;
    }
    if (!match) {
        err = error_response(http::status::unauthorized, "Incorrect API key provided.", "invalid_request_error",
                             "invalid_api_key");
        g_.rejected_total->labels({"unauthorized"}).inc();
        return false;
    }
    if (match->rate > 0) {
        const auto t = now();
        const double elapsed = std::chrono::duration<double>(t - match->last).count();
        match->tokens = std::min(match->burst, match->tokens + elapsed * match->rate);
        match->last = t;
        if (match->tokens < 1) {
            const auto wait = static_cast<long>(std::ceil((1 - match->tokens) / match->rate));
            err = error_response(http::status::too_many_requests,
                                 "Rate limit reached for this API key; retry after the time in Retry-After.",
                                 "requests", "rate_limit_exceeded");
            err->set(http::field::retry_after, std::to_string(std::max(1L, wait)));
            g_.rejected_total->labels({"rate_limited"}).inc();
            return false;
        }
        match->tokens -= 1;
    }
    return true;
}

json::value server::merged_models() const {
    std::map<std::string, json::value> merged;
    for (const auto& [id, b] : g_.backends) {
        if (!b->registered || b->cfg.api == "kserve-v2") continue;
        for (const auto& m : b->models()) {
            if (merged.contains(m)) continue;
            if (const auto* o = b->model_objects.if_contains(m)) {
                merged[m] = *o;
            } else {
                merged[m] = json::object{{"id", m}, {"object", "model"}, {"created", 0}, {"owned_by", "swarm"}};
            }
        }
    }
    json::array data;
    for (auto& [name, v] : merged) data.push_back(std::move(v));
    return json::object{{"object", "list"}, {"data", std::move(data)}};
}

std::string prompt_bytes(const json::value* v) {
    if (!v) return {};
    if (v->is_string()) return std::string(v->as_string());
    return json::serialize(*v);
}

// Fills `t` from the request; an error response when the body is not what the path needs.
std::optional<response> server::parse_target(const http::request<http::string_body>& req, std::string_view path,
                                             route_target& t) {
    // /v2/models/{m}/{ready,infer,generate,generate_stream}: the model is in the path, the body passes as is.
    if (path.substr(0, 11) == "/v2/models/") {
        auto rest = path.substr(11);
        auto slash = rest.find('/');
        if (slash == 0)
            return error_response(http::status::not_found, fmt::format("Unknown path {}", path),
                                  "invalid_request_error", "unknown_url");
        if (slash == std::string_view::npos) slash = rest.size(); // the model's metadata
        t.api = api_path::kserve;
        t.model = std::string(rest.substr(0, slash));
        t.model_key = "kserve-v2:" + t.model;
        const auto verb = slash < rest.size() ? rest.substr(slash + 1) : std::string_view{};
        t.stream = verb == "generate_stream";
        t.metric = "kserve";
        if (t.stream || verb == "generate") {
            boost::system::error_code ec;
            auto v = json::parse(req.body(), ec);
            if (!ec && v.is_object()) t.prompt = prompt_bytes(v.as_object().if_contains("text_input"));
        }
        return std::nullopt;
    }
    if (req.method() != http::verb::post)
        return error_response(http::status::method_not_allowed, fmt::format("{} requires POST", path),
                              "invalid_request_error", "method_not_allowed");
    boost::system::error_code ec;
    json::parse_options opts;
    opts.max_depth = 64;
    auto v = json::parse(req.body(), ec, {}, opts);
    if (ec)
        return error_response(http::status::bad_request,
                              fmt::format("The request body is not valid JSON ({}).", ec.message()),
                              "invalid_request_error", "invalid_json");
    if (!v.is_object())
        return error_response(http::status::bad_request, "The request body must be a JSON object.",
                              "invalid_request_error", "invalid_json");
    const auto& o = v.as_object();
    if (const auto* s = o.if_contains("stream")) {
        if (!s->is_bool() && !s->is_null())
            return error_response(http::status::bad_request, "'stream' must be a boolean.", "invalid_request_error",
                                  "invalid_type", "stream");
        t.stream = s->is_bool() && s->as_bool();
    }
    if (const auto* u = o.if_contains("user"); u && u->is_string()) t.session = std::string(u->as_string());
    if (auto s = req["x-session-id"]; !s.empty()) t.session = std::string(s);
    if (path == "/generate" || path == "/generate_stream") {
        t.api = api_path::tgi;
        t.stream = path == "/generate_stream";
        t.metric = "tgi";
        t.prompt = prompt_bytes(o.if_contains("inputs"));
        if (auto m = req["x-model"]; !m.empty()) {
            t.model = std::string(m);
        } else {
            std::set<std::string> names;
            for (const auto& [id, b] : g_.backends)
                if (b->cfg.api == "tgi") names.insert(b->models().begin(), b->models().end());
            if (names.size() != 1)
                return error_response(http::status::bad_request,
                                      names.empty() ? "No TGI backend is known."
                                                    : "Several TGI models are served: name one in the x-model header.",
                                      "invalid_request_error", "model_not_found");
            t.model = *names.begin();
        }
        t.model_key = "tgi:" + t.model;
        return std::nullopt;
    }
    const auto* model = o.if_contains("model");
    if (!model)
        return error_response(http::status::bad_request, "You must provide a model parameter.",
                              "invalid_request_error", "missing_required_parameter", "model");
    if (!model->is_string() || model->as_string().empty())
        return error_response(http::status::bad_request, "'model' must be a non-empty string.",
                              "invalid_request_error", "invalid_type", "model");
    t.model = std::string(model->as_string());
    t.model_key = t.model;
    if (path == "/v1/chat/completions") {
        t.metric = "chat_completions";
        t.prompt = prompt_bytes(o.if_contains("messages"));
    } else if (path == "/v1/completions") {
        t.metric = "completions";
        t.prompt = prompt_bytes(o.if_contains("prompt"));
    } else {
        t.metric = "embeddings";
        t.prompt = prompt_bytes(o.if_contains("input"));
    }
    return std::nullopt;
}

awaitable<bool> server::handle(http::request<http::string_body>& req) {
    started_ = now();
    auto rid = req["x-request-id"];
    request_id_ = sane_request_id(rid) ? std::string(rid) : random_hex(g_.rng, 16);
    traceparent_ = next_traceparent(g_.rng, req["traceparent"]);

    std::string_view target = req.target();
    auto path = target.substr(0, target.find('?'));

    if (path == "/healthz" || path == "/v2/health/live") {
        // Built outside the co_await: GCC 12 cannot keep an initializer list's array in a coroutine frame.
        json::object status;
        status["status"] = "ok";
        co_return co_await write(json_response(http::status::ok, status), req, "health");
    }
    if (path == "/readyz" || path == "/v2/health/ready") {
        bool ready = false;
        for (const auto& [id, b] : g_.backends) ready = ready || (b->registered && b->healthy);
        json::object body;
        body["ready"] = ready;
        co_return co_await write(json_response(ready ? http::status::ok : http::status::service_unavailable, body),
                                 req, "health");
    }
    if (path == "/metrics") {
        response r{http::status::ok, 11};
        r.set(http::field::content_type, "text/plain; version=0.0.4");
        r.body() = g_.reg.render();
        co_return co_await write(std::move(r), req, "metrics");
    }

    const bool known = path == "/v1/chat/completions" || path == "/v1/completions" || path == "/v1/embeddings" ||
                       path == "/v1/models" || path.substr(0, 11) == "/v1/models/" || path == "/generate" ||
                       path == "/generate_stream" || path.substr(0, 11) == "/v2/models/";
    if (!known)
        co_return co_await write(error_response(http::status::not_found, fmt::format("Unknown path {}", path),
                                                "invalid_request_error", "unknown_url"),
                                 req, "unknown");
    std::optional<response> err;
    if (!check_auth(req, err)) co_return co_await write(std::move(*err), req, "auth");

    if (path == "/v1/models" || path.substr(0, 11) == "/v1/models/") {
        if (req.method() != http::verb::get)
            co_return co_await write(error_response(http::status::method_not_allowed, "/v1/models requires GET",
                                                    "invalid_request_error", "method_not_allowed"),
                                     req, "models");
        auto all = merged_models();
        if (path == "/v1/models") co_return co_await write(json_response(http::status::ok, all), req, "models");
        const auto name = path.substr(11);
        for (const auto& m : all.as_object().at("data").as_array())
            if (m.as_object().at("id").as_string() == name)
                co_return co_await write(json_response(http::status::ok, m), req, "models");
        co_return co_await write(error_response(http::status::not_found,
                                                fmt::format("The model '{}' does not exist", name),
                                                "invalid_request_error", "model_not_found", "model"),
                                 req, "models");
    }

    route_target t;
    if (auto bad = parse_target(req, path, t)) co_return co_await write(std::move(*bad), req, "bad_request");
    co_return co_await proxy(req, t);
}

struct admission_slot {
    core* g = nullptr;
    ~admission_slot() {
        if (!g) return;
        if (!g->admission_queue.empty()) { // hand the slot straight to the oldest waiter
            auto [timer, granted] = g->admission_queue.front();
            g->admission_queue.pop_front();
            *granted = true;
            timer->cancel();
        } else {
            --g->in_flight;
        }
        g->in_flight_gauge->set(g->in_flight);
        g->queued_gauge->set(static_cast<double>(g->admission_queue.size()));
    }
};

std::shared_ptr<backend_entry> server::candidate(backend_ref ref) const {
    const auto* st = g_.rt.find(ref);
    if (!st) return nullptr;
    auto it = g_.backends.find(st->info.id);
    if (it == g_.backends.end()) return nullptr;
    if (it->second->breaker == breaker_state::half_open && it->second->trial_in_flight) return nullptr; // one trial
    return it->second;
}

// One attempt with the router's load accounting and the breaker around it.
awaitable<attempt_result> server::run_attempt(backend_ref ref, std::shared_ptr<backend_entry> b,
                                              http::request<http::string_body>& req, const route_target& t,
                                              time_point deadline, std::shared_ptr<exchange> ex,
                                              std::shared_ptr<leg> lg) {
    const bool trial = b->breaker == breaker_state::half_open;
    if (trial) b->trial_in_flight = true;
    g_.rt.on_start(ref);
    const auto t0 = now();
    auto last = co_await attempt(b, req, t, deadline, ex, lg);
    const bool ok = last.what == attempt_result::kind::committed && last.status < 500;
    g_.rt.on_finish(ref, ok, now() - t0);
    if (trial) b->trial_in_flight = false;
    g_.upstream_total
        ->labels({b->cfg.id, ok ? "ok" : (last.what == attempt_result::kind::client_gone ? "cancelled" : "failed")})
        .inc();
    // Breaker: consecutive faults open it (the router stops choosing the backend) for a cool-down that
    // doubles with each consecutive opening; then one trial decides.
    if (last.backend_fault) {
        ++b->consecutive_failures;
        if (!b->removed && (trial || b->consecutive_failures >= g_.cfg.breaker_failures) &&
            b->breaker != breaker_state::open) {
            b->breaker = breaker_state::open;
            g_.breaker_open_total->labels({b->cfg.id}).inc();
            g_.log.warning("gateway: backend {} ejected after {} consecutive failures", b->cfg.id,
                           b->consecutive_failures);
            (void)g_.rt.set_health(b->cfg.id, b->healthy, true);
            const auto cool = g_.cfg.breaker_open_time * (1u << std::min<std::uint32_t>(b->openings, 3));
            ++b->openings;
            asio::co_spawn(
                g_.io,
                [](core* g, std::shared_ptr<backend_entry> be, duration d) -> awaitable<void> {
                    co_await g->sleep_until(now() + d);
                    if (be->removed || g->stopping || be->breaker != breaker_state::open) co_return;
                    be->breaker = breaker_state::half_open;
                    (void)g->rt.set_health(be->cfg.id, be->healthy, false);
                }(&g_, b, cool),
                asio::detached);
        }
    } else if (last.what == attempt_result::kind::committed) {
        b->consecutive_failures = 0;
        if (b->breaker != breaker_state::closed) {
            b->breaker = breaker_state::closed;
            b->openings = 0;
            (void)g_.rt.set_health(b->cfg.id, b->healthy, false);
        }
    }
    co_return last;
}

awaitable<bool> server::proxy(http::request<http::string_body>& req, route_target& t) {
    // Admission: a slot now, a place in the bounded queue, or 429.
    admission_slot slot;
    auto ex = std::make_shared<exchange>();
    if (g_.in_flight < g_.cfg.max_in_flight) {
        ++g_.in_flight;
        slot.g = &g_;
    } else if (g_.admission_queue.size() < g_.cfg.max_queued) {
        core::tracked_timer tt(g_);
        bool granted = false;
        tt.timer.expires_after(g_.cfg.queue_timeout);
        g_.admission_queue.emplace_back(&tt.timer, &granted);
        g_.queued_gauge->set(static_cast<double>(g_.admission_queue.size()));
        co_await tt.timer.async_wait(nothrow);
        if (granted) {
            slot.g = &g_;
        } else {
            auto it = std::find_if(g_.admission_queue.begin(), g_.admission_queue.end(),
                                   [&](const auto& w) { return w.first == &tt.timer; });
            if (it != g_.admission_queue.end()) g_.admission_queue.erase(it);
            g_.queued_gauge->set(static_cast<double>(g_.admission_queue.size()));
        }
    }
    if (!slot.g) {
        g_.rejected_total->labels({"queue_full"}).inc();
        auto r = error_response(http::status::too_many_requests,
                                "The gateway is at capacity and its queue is full; retry later.", "requests",
                                "queue_full");
        r.set(http::field::retry_after, "1");
        co_return co_await write(std::move(r), req, t.metric);
    }
    g_.in_flight_gauge->set(g_.in_flight);

    request_view view;
    view.model = t.model_key;
    view.session_key = t.session;
    view.prompt = std::as_bytes(std::span(t.prompt.data(), t.prompt.size()));
    auto decision = g_.rt.route(view);
    if (!decision) {
        if (decision.error() == errc::not_found)
            co_return co_await write(error_response(http::status::not_found,
                                                    fmt::format("The model '{}' does not exist", t.model),
                                                    "invalid_request_error", "model_not_found", "model"),
                                     req, t.metric);
        co_return co_await write(error_response(http::status::service_unavailable,
                                                fmt::format("No healthy backend serves the model '{}'", t.model),
                                                "server_error", "no_healthy_backend"),
                                 req, t.metric);
    }
    std::vector<backend_ref> order{decision->chosen};
    for (auto f : decision->fallbacks()) order.push_back(f);

    // Retries draw on a budget refilled by traffic, so a failing fleet is not hit with a multiple of its load.
    g_.retry_tokens = std::min<double>(g_.cfg.retry_budget_burst, g_.retry_tokens + g_.cfg.retry_budget_ratio);

    const auto deadline = started_ + g_.cfg.request_timeout;
    asio::co_spawn(g_.io, watch_client(ex, &c_, &g_), asio::detached);
    attempt_result last;
    std::uint32_t attempts = 0;
    bool any_tried = false;
    const bool hedge = !t.stream && g_.cfg.hedge_after > duration::zero() && g_.cfg.max_attempts >= 2;
    for (std::size_t i = 0; i < order.size() && attempts < g_.cfg.max_attempts; ++i) {
        auto b = candidate(order[i]);
        if (!b) continue;
        if (any_tried) {
            if (g_.retry_tokens < 1) break;
            g_.retry_tokens -= 1;
            g_.retries_total->inc();
            // Jittered exponential backoff, cut short by the deadline or the client leaving.
            std::uniform_real_distribution<double> jitter(0.5, 1.5);
            const auto base = g_.cfg.retry_backoff * (1u << std::min<std::uint32_t>(attempts - 1, 10));
            const auto pause = std::chrono::duration_cast<duration>(base * jitter(g_.rng));
            if (now() + pause >= deadline) break;
            core::tracked_timer tt(g_);
            tt.timer.expires_after(pause);
            ex->sleeping = &tt.timer;
            co_await tt.timer.async_wait(nothrow);
            ex->sleeping = nullptr;
            if (ex->client_gone || g_.stopping) break;
        }
        const bool first = !any_tried;
        any_tried = true;
        ++attempts;
        if (!(hedge && first)) {
            auto lg = std::make_shared<leg>();
            ex->legs.push_back(lg);
            last = co_await run_attempt(order[i], b, req, t, deadline, ex, lg);
        } else {
            // Hedging: when the first backend has not answered by hedge_after, the next one is asked too; the
            // first complete answer wins and the other attempt is abandoned (its connection closed).
            auto rc = std::make_shared<race>();
            auto spawn = [&](int k, backend_ref ref, std::shared_ptr<backend_entry> be) {
                auto lg = std::make_shared<leg>();
                ex->legs.push_back(lg);
                rc->legs[static_cast<std::size_t>(k)] = lg;
                ++rc->spawned;
                asio::co_spawn(
                    g_.io,
                    [](server* self, int index, std::shared_ptr<race> r, backend_ref rf, std::shared_ptr<backend_entry> bb,
                       http::request<http::string_body>* rq, const route_target* tg, time_point dl,
                       std::shared_ptr<exchange> x, std::shared_ptr<leg> l) -> awaitable<void> {
                        auto res = co_await self->run_attempt(rf, std::move(bb), *rq, *tg, dl, std::move(x), std::move(l));
                        r->results[static_cast<std::size_t>(index)] = std::move(res);
                        ++r->finished;
                        if (r->wake) r->wake->cancel();
                    }(this, k, rc, ref, std::move(be), &req, &t, deadline, ex, lg),
                    asio::detached);
            };
            auto wait = [&](time_point until) -> awaitable<void> {
                if (g_.stopping) { // timers are being cancelled: just yield until the legs see their closed sockets
                    co_await asio::post(g_.io, asio::use_awaitable);
                    co_return;
                }
                core::tracked_timer tt(g_);
                tt.timer.expires_at(to_steady(until));
                rc->wake = &tt.timer;
                ex->sleeping = &tt.timer;
                co_await tt.timer.async_wait(nothrow);
                rc->wake = nullptr;
                ex->sleeping = nullptr;
            };
            auto winner = [&]() -> int {
                for (int k = 0; k < 2; ++k) {
                    const auto& r = rc->results[static_cast<std::size_t>(k)];
                    if (r && r->what == attempt_result::kind::committed) return k;
                }
                return -1;
            };
            spawn(0, order[i], b);
            const auto hedge_at = std::min(deadline, now() + g_.cfg.hedge_after);
            while (rc->finished == 0 && now() < hedge_at && !ex->client_gone && !g_.stopping) co_await wait(hedge_at);
            if (rc->finished == 0 && !ex->client_gone && !g_.stopping && attempts < g_.cfg.max_attempts) {
                for (std::size_t j = i + 1; j < order.size(); ++j) {
                    if (auto hb = candidate(order[j])) {
                        spawn(1, order[j], hb);
                        g_.hedges_total->inc();
                        ++attempts;
                        i = j;
                        break;
                    }
                }
            }
            while (winner() < 0 && rc->finished < rc->spawned) co_await wait(now() + std::chrono::milliseconds(100));
            const int w = winner();
            for (std::size_t k = 0; k < 2; ++k) {
                if (static_cast<int>(k) == w || !rc->legs[k] || rc->results[k]) continue;
                rc->legs[k]->abandoned = true;
                if (rc->legs[k]->upstream) rc->legs[k]->upstream->close();
            }
            // The loser finishes at once (its socket is closed); this frame must outlive it.
            while (rc->finished < rc->spawned) co_await wait(now() + std::chrono::milliseconds(100));
            if (w >= 0) {
                last = std::move(*rc->results[static_cast<std::size_t>(w)]);
            } else {
                // Both failed: pass on an answer the backend gave, if either did.
                auto& a = rc->results[0];
                auto& z = rc->results[1];
                last = std::move(z && (z->held || !a->held) ? *z : *a);
            }
        }
        if (last.what != attempt_result::kind::failed || now() >= deadline) break;
    }
    ex->done = true;
    boost::system::error_code ignore;
    c_.stream.socket().cancel(ignore); // ends the watcher's wait
    if (last.what == attempt_result::kind::client_gone || ex->client_gone) {
        count(t.metric, 499);
        co_return false;
    }
    if (last.what == attempt_result::kind::committed) {
        if (last.held) co_return co_await write(std::move(*last.held), req, t.metric);
        count(t.metric, last.status);
        co_return last.keep_client;
    }
    if (last.held) co_return co_await write(std::move(*last.held), req, t.metric);
    if (!any_tried)
        co_return co_await write(error_response(http::status::service_unavailable,
                                                fmt::format("No backend for '{}' can take the request now", t.model),
                                                "server_error", "no_healthy_backend"),
                                 req, t.metric);
    if (last.failure == errc::timed_out || now() >= deadline)
        co_return co_await write(error_response(http::status::gateway_timeout,
                                                "The backend did not answer within the request deadline.",
                                                "timeout", "upstream_timeout"),
                                 req, t.metric);
    co_return co_await write(error_response(http::status::bad_gateway,
                                            fmt::format("The backend failed: {}", last.failure.message),
                                            "server_error", "upstream_error"),
                             req, t.metric);
}

// Fields the Connection field names are hop-by-hop as well (RFC 9110 7.6.1).
bool named_by_connection(const http::fields& h, std::string_view name) {
    for (auto token : http::token_list(h[http::field::connection]))
        if (iequals(token, name)) return true;
    return false;
}

void copy_fields(const http::fields& from, http::fields& to) {
    for (const auto& f : from)
        if (!hop_by_hop(f.name_string()) && !named_by_connection(from, f.name_string()))
            to.insert(f.name_string(), f.value());
}

awaitable<attempt_result> server::attempt(std::shared_ptr<backend_entry> b, http::request<http::string_body>& req,
                                          const route_target& t, time_point deadline, std::shared_ptr<exchange> ex,
                                          std::shared_ptr<leg> lg) {
    attempt_result out;
    http::request<http::string_body> up{req.method(), req.target(), 11};
    for (const auto& f : req)
        if (!hop_by_hop(f.name_string()) && !named_by_connection(req, f.name_string()) &&
            f.name() != http::field::host && f.name() != http::field::authorization &&
            !iequals(f.name_string(), "traceparent") && !iequals(f.name_string(), "x-request-id"))
            up.insert(f.name_string(), f.value());
    up.set(http::field::host, b->url.host_header);
    up.set("x-request-id", request_id_);
    up.set("traceparent", traceparent_);
    up.keep_alive(true);
    up.body() = req.body(); // byte for byte; kept in req for a retry
    up.prepare_payload();

    // A pooled connection the backend closed while idle fails before any response byte: one more try on a
    // new connection, not counted against the backend.
    for (int round = 0; round < 2; ++round) {
        auto a = co_await acquire(g_, b, deadline, round > 0);
        if (ex->client_gone || lg->abandoned) {
            release(g_, *b, std::move(a.conn), false);
            out.what = attempt_result::kind::client_gone;
            co_return out;
        }
        if (!a.conn) {
            out.failure = a.failure;
            out.backend_fault = a.failure != errc::shut_down;
            co_return out;
        }
        auto conn = std::move(a.conn);
        lg->upstream = &conn->stream;
        conn->stream.expires_at(to_steady(deadline));
        auto [wec, wn] = co_await write_message(conn->stream, up);
        http::response_parser<http::buffer_body> p;
        p.body_limit(boost::none);
        boost::system::error_code ec = wec;
        if (!ec) std::tie(ec, std::ignore) = co_await http::async_read_header(conn->stream, conn->buffer, p, nothrow);
        if (ex->client_gone || lg->abandoned) {
            lg->upstream = nullptr;
            release(g_, *b, std::move(conn), false);
            out.what = attempt_result::kind::client_gone;
            co_return out;
        }
        if (ec) {
            const bool stale = conn->reused && ec != beast::error::timeout && round == 0;
            lg->upstream = nullptr;
            release(g_, *b, std::move(conn), false);
            if (stale) continue;
            out.failure = {ec == beast::error::timeout ? errc::timed_out : errc::connection_reset,
                           fmt::format("{}: {}", b->cfg.id, ec.message())};
            out.backend_fault = true;
            co_return out;
        }

        const unsigned status = p.get().result_int();
        const bool retryable = status >= 500 || status == 429;
        const bool relay = t.stream && !retryable;
        // Not value-initialised: the parser writes what is read, and zeroing 16 KiB per attempt was a tenth of
        // the gateway's instructions per request.
        std::array<char, 16 * 1024> chunk;
        std::string whole; // non-streamed (or retryable) bodies are held whole, so a failure mid-body can retry
        bool header_sent = false;
        http::response<http::empty_body> head{p.get().result(), 11};
        copy_fields(p.get(), head);
        head.set(http::field::server, "swarm-gateway");
        head.set("x-request-id", request_id_);
        // HTTP/1.0 clients cannot read chunked bodies: theirs is relayed as is and ends with the connection.
        const bool chunked = req.version() >= 11;
        const bool keep_client = req.keep_alive() && !g_.stopping && (chunked || !relay);
        head.keep_alive(keep_client);
        head.chunked(chunked);
        http::response_serializer<http::empty_body> head_sr{head};
        boost::system::error_code client_ec;

        while (!p.is_done()) {
            p.get().body().data = chunk.data();
            p.get().body().size = chunk.size();
            conn->stream.expires_at(to_steady(header_sent ? now() + g_.cfg.stream_idle_timeout : deadline));
            auto [rec, rn] = co_await http::async_read_some(conn->stream, conn->buffer, p, nothrow);
            if (rec == http::error::need_buffer) rec = {};
            const std::size_t got = chunk.size() - p.get().body().size;
            if (ex->client_gone || lg->abandoned) {
                lg->upstream = nullptr;
                release(g_, *b, std::move(conn), false);
                out.what = attempt_result::kind::client_gone;
                co_return out;
            }
            if (rec) {
                lg->upstream = nullptr;
                release(g_, *b, std::move(conn), false);
                out.backend_fault = true;
                out.failure = {rec == beast::error::timeout ? errc::timed_out : errc::connection_reset,
                               fmt::format("{}: {}", b->cfg.id, rec.message())};
                if (!header_sent) co_return out;
                // Already streaming: the client gets a truncated response (no last chunk) and a closed connection.
                out.what = attempt_result::kind::committed;
                out.status = status;
                out.keep_client = false;
                co_return out;
            }
            if (!relay) {
                if (whole.size() + got > g_.cfg.max_response_bytes) {
                    lg->upstream = nullptr;
                    release(g_, *b, std::move(conn), false);
                    out.failure = {errc::too_large, "the backend's response is over max_response_bytes"};
                    co_return out;
                }
                whole.append(chunk.data(), got);
                continue;
            }
            if (got == 0) continue;
            // Committed from here: the first body byte goes to the client, and every later one as it arrives.
            c_.stream.expires_after(g_.cfg.stream_idle_timeout);
            if (!header_sent) {
                std::tie(client_ec, std::ignore) = co_await http::async_write_header(c_.stream, head_sr, nothrow);
                header_sent = true;
            }
            if (!client_ec && chunked)
                std::tie(client_ec, std::ignore) =
                    co_await asio::async_write(c_.stream, http::make_chunk(asio::buffer(chunk.data(), got)), nothrow);
            else if (!client_ec)
                std::tie(client_ec, std::ignore) =
                    co_await asio::async_write(c_.stream, asio::buffer(chunk.data(), got), nothrow);
            if (client_ec || ex->client_gone || lg->abandoned) {
                lg->upstream = nullptr;
                release(g_, *b, std::move(conn), false);
                out.what = attempt_result::kind::client_gone;
                co_return out;
            }
        }
        lg->upstream = nullptr;
        release(g_, *b, std::move(conn), p.get().keep_alive());

        if (relay) {
            c_.stream.expires_after(g_.cfg.stream_idle_timeout);
            if (!header_sent) std::tie(client_ec, std::ignore) = co_await http::async_write_header(c_.stream, head_sr, nothrow);
            if (!client_ec && chunked)
                std::tie(client_ec, std::ignore) = co_await asio::async_write(c_.stream, http::make_chunk_last(), nothrow);
            out.what = attempt_result::kind::committed;
            out.status = status;
            out.keep_client = !client_ec && keep_client;
            co_return out;
        }
        response res{p.get().result(), 11};
        copy_fields(p.get(), res);
        res.body() = std::move(whole);
        if (retryable) {
            out.held = std::move(res);
            out.backend_fault = status >= 500;
            out.failure = {errc::unreachable, fmt::format("{} answered {}", b->cfg.id, status)};
            co_return out;
        }
        // Held for proxy() to write: with hedging, two attempts may run and only the winner answers.
        out.what = attempt_result::kind::committed;
        out.status = status;
        out.held = std::move(res);
        co_return out;
    }
    co_return out;
}

} // namespace

std::optional<std::string> raw_head_problem(std::string_view head) {
    if (head.find("\r\n ") != std::string_view::npos || head.find("\r\n\t") != std::string_view::npos)
        return "obsolete line folding (obs-fold) in a header field";
    return std::nullopt;
}

std::optional<std::string> head_problem(const http::request_parser<http::string_body>& p) {
    const auto& h = p.get();
    if (h.count(http::field::content_length) > 1 ||
        h[http::field::content_length].find(',') != std::string_view::npos)
        return "more than one Content-Length";
    if (h.count(http::field::transfer_encoding) > 1) return "more than one Transfer-Encoding";
    if (auto te = h[http::field::transfer_encoding]; !te.empty() && !iequals(te, "chunked"))
        return "Transfer-Encoding other than chunked";
    if (h.count(http::field::host) != 1) return "exactly one Host field is required";
    return std::nullopt;
}

// A deadline for operations on a bare socket: cancels them when it passes; fired() says that it did.
class op_deadline {
public:
    op_deadline(core& g, tcp::socket& s, duration d) : tt_(g) {
        tt_.timer.expires_after(d);
        tt_.timer.async_wait([&s, st = state_](boost::system::error_code ec) {
            // Cancelled, or the guarded operation already finished (the socket may be gone): touch nothing.
            if (ec || !st->armed) return;
            st->fired = true;
            boost::system::error_code ignore;
            s.cancel(ignore);
        });
    }
    ~op_deadline() {
        state_->armed = false;
        tt_.timer.cancel();
    }
    bool fired() const { return state_->fired; }
    op_deadline(const op_deadline&) = delete;
    op_deadline& operator=(const op_deadline&) = delete;

private:
    struct state {
        bool armed = true;
        bool fired = false;
    };
    core::tracked_timer tt_;
    std::shared_ptr<state> state_ = std::make_shared<state>();
};

awaitable<void> core::session(tcp::socket socket) {
    boost::system::error_code ignore;
    socket.set_option(tcp::no_delay(true), ignore);
    client_conn c(*this, std::move(socket));
    auto bad = [&](http::status s, std::string message, std::string_view code) -> awaitable<void> {
        auto r = error_response(s, message, "invalid_request_error", code);
        r.set(http::field::server, "swarm-gateway");
        r.keep_alive(false);
        r.prepare_payload();
        c.stream.expires_after(std::chrono::seconds(2));
        co_await http::async_write(c.stream, r, nothrow);
        requests_total->labels({"bad_request", std::to_string(static_cast<unsigned>(s))}).inc();
        boost::system::error_code e;
        c.stream.socket().shutdown(tcp::socket::shutdown_both, e);
    };
    while (!stopping) {
        // Idle between requests: the keep-alive timeout. Once a byte arrives, the whole head must arrive within
        // header_timeout, however slowly it trickles (slow-loris).
        if (c.buffer.size() == 0) {
            idle_clients.insert(&c.stream);
            c.stream.expires_after(cfg.keep_alive_timeout);
            auto [ec, n] = co_await c.stream.async_read_some(c.buffer.prepare(std::min<std::size_t>(4096, c.buffer.max_size())), nothrow);
            idle_clients.erase(&c.stream);
            if (ec || stopping) co_return;
            c.buffer.commit(n);
        }
        // The head and body reads go to the bare socket under a deadline that cancels rather than closes (as
        // tcp_stream's would), so a slow client still gets its 408.
        c.stream.expires_never();
        std::size_t head_size = 0;
        boost::system::error_code hec;
        {
            op_deadline limit(*this, c.stream.socket(), cfg.header_timeout);
            std::tie(hec, head_size) =
                co_await asio::async_read_until(c.stream.socket(), c.buffer, "\r\n\r\n", nothrow);
            if (limit.fired()) hec = beast::error::timeout;
        }
        if (hec == asio::error::not_found) {
            co_await bad(http::status::request_header_fields_too_large, "The request head is too large.",
                         "header_too_large");
            co_return;
        }
        if (hec == beast::error::timeout) {
            co_await bad(http::status::request_timeout, "The request head did not arrive in time.", "timeout");
            co_return;
        }
        if (hec) co_return;
        const std::string_view head(static_cast<const char*>(c.buffer.data().data()), head_size);
        if (auto problem = raw_head_problem(head)) {
            co_await bad(http::status::bad_request, *problem, "bad_request");
            co_return;
        }
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(cfg.max_header_bytes));
        parser.body_limit(cfg.max_body_bytes);
        auto [pec, pn] = co_await http::async_read_header(c.stream, c.buffer, parser, nothrow);
        if (pec == http::error::body_limit) {
            co_await bad(http::status::payload_too_large,
                         fmt::format("The request body is over the limit of {} bytes.", cfg.max_body_bytes),
                         "body_too_large");
            co_return;
        }
        if (pec) {
            co_await bad(http::status::bad_request, fmt::format("Malformed HTTP request: {}.", pec.message()),
                         "bad_request");
            co_return;
        }
        if (auto problem = head_problem(parser)) {
            co_await bad(http::status::bad_request, *problem, "bad_request");
            co_return;
        }
        if (iequals(parser.get()[http::field::expect], "100-continue")) {
            http::response<http::empty_body> cont{http::status::continue_, 11};
            co_await http::async_write(c.stream, cont, nothrow);
        }
        boost::system::error_code bec;
        {
            op_deadline limit(*this, c.stream.socket(), cfg.body_timeout);
            std::tie(bec, std::ignore) = co_await http::async_read(c.stream.socket(), c.buffer, parser, nothrow);
            if (limit.fired()) bec = beast::error::timeout;
        }
        if (bec == http::error::body_limit) {
            co_await bad(http::status::payload_too_large,
                         fmt::format("The request body is over the limit of {} bytes.", cfg.max_body_bytes),
                         "body_too_large");
            co_return;
        }
        if (bec == beast::error::timeout) {
            co_await bad(http::status::request_timeout, "The request body did not arrive in time.", "timeout");
            co_return;
        }
        if (bec) {
            if (bec != http::error::end_of_stream && bec != asio::error::eof && bec != asio::error::connection_reset)
                co_await bad(http::status::bad_request, fmt::format("Malformed HTTP body: {}.", bec.message()),
                             "bad_request");
            co_return;
        }
        auto req = parser.release();
        ++active_requests;
        server s(*this, c);
        const bool keep = co_await s.handle(req);
        --active_requests;
        if (!keep) {
            boost::system::error_code e;
            c.stream.socket().shutdown(tcp::socket::shutdown_send, e);
            co_return;
        }
    }
}

awaitable<void> core::accept_loop() {
    while (!stopping) {
        auto [ec, socket] = co_await acceptor.async_accept(nothrow);
        if (ec) {
            if (stopping || ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) co_return;
            // Out of descriptors and the like: pause instead of spinning.
            co_await sleep_until(now() + std::chrono::milliseconds(50));
            continue;
        }
        asio::co_spawn(io, session(std::move(socket)), asio::detached);
    }
}

// Graceful stop: idle clients are closed now, busy ones get until `timeout` to finish, then everything closes.
awaitable<void> core::drain(duration timeout) {
    const auto until = now() + timeout;
    while (active_requests > 0 && now() < until) {
        asio::steady_timer t(io);
        t.expires_after(std::chrono::milliseconds(10));
        co_await t.async_wait(nothrow);
    }
    hard_close();
}

detailed_result<void> core::init() {
    detail::sodium_init_once();
    auto c = [&](std::string_view n, std::string_view h, std::vector<std::string> labels) {
        return reg.add_counter_family(n, h, std::move(labels)).value();
    };
    requests_total = c("swarm_dispatch_gateway_requests_total", "Requests answered, by path and status", {"path", "code"});
    rejected_total = c("swarm_dispatch_gateway_rejected_total", "Requests refused before routing", {"reason"});
    upstream_total = c("swarm_dispatch_gateway_upstream_attempts_total", "Attempts sent to backends", {"backend", "outcome"});
    breaker_open_total = c("swarm_dispatch_gateway_breaker_open_total", "Times a backend's breaker opened", {"backend"});
    retries_total = reg.add_counter("swarm_dispatch_gateway_retries_total", "Retries sent to another backend").value();
    cancelled_total =
        reg.add_counter("swarm_dispatch_gateway_client_cancelled_total", "Requests whose client disconnected").value();
    hedges_total = reg.add_counter("swarm_dispatch_gateway_hedges_total", "Hedged second attempts sent").value();
    duration_seconds = reg.add_histogram("swarm_dispatch_gateway_request_duration_seconds", "Time to answer a request",
                                         metrics::exponential_buckets(0.0001, 4, 10))
                           .value();
    in_flight_gauge = reg.add_gauge("swarm_dispatch_gateway_in_flight", "Requests being proxied").value();
    queued_gauge = reg.add_gauge("swarm_dispatch_gateway_queued", "Requests waiting for admission").value();
    backend_queued = reg.add_gauge_family("swarm_dispatch_gateway_backend_queued",
                                          "Requests queued at a backend as its /metrics reports them", {"backend"})
                         .value();
    backend_kv = reg.add_gauge_family("swarm_dispatch_gateway_backend_kv_cache_usage",
                                      "KV cache usage (0..1) a backend's /metrics reports", {"backend"})
                     .value();
    retry_tokens = cfg.retry_budget_burst;
    for (const auto& k : cfg.api_keys) {
        key_entry e;
        crypto_generichash(e.hash.data(), e.hash.size(), reinterpret_cast<const unsigned char*>(k.key.data()),
                           k.key.size(), nullptr, 0);
        e.rate = k.requests_per_second;
        e.burst = k.burst;
        e.tokens = k.burst;
        e.last = now();
        keys.push_back(e);
    }
    std::vector<std::string> problems;
    apply_backends(cfg.backends, problems);
    if (!problems.empty()) return error{errc::config_invalid_value, problems.front()};
    return {};
}

// ---- the public object ----

struct gateway::impl : core {
    using core::core;
};

detailed_result<gateway> gateway::create(gateway_config config, logger log) {
    if (auto v = config.validate(); !v) return v.error();
    std::vector<stage> pipeline;
    switch (config.policy) {
    case routing_policy::prefix_affinity: pipeline = prefix_affinity_pipeline(); break;
    case routing_policy::least_outstanding: pipeline = {{least_outstanding(), 1.0}}; break;
    case routing_policy::round_robin: pipeline = {{round_robin(), 1.0}}; break;
    case routing_policy::power_of_two: pipeline = {{power_of_two(std::random_device{}()), 1.0}}; break;
    case routing_policy::session_affinity: pipeline = {{session_affinity(), 1.0}}; break;
    case routing_policy::weighted: pipeline = {{weighted_random(std::random_device{}()), 1.0}}; break;
    }
    // First, so the policy's own filters and scores see saturated GPUs as fallbacks already.
    pipeline.insert(pipeline.begin(), stage{gpu_saturation(config.gpu_saturation), 1.0});
    auto r = router::create(config.routing, std::move(pipeline));
    if (!r) return r.error();
    auto p = std::make_unique<impl>(std::move(config), std::move(log), std::move(*r));
    if (auto i = p->init(); !i) return i.error();
    return gateway(std::move(p));
}

gateway::gateway(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
gateway::gateway(gateway&&) noexcept = default;
gateway& gateway::operator=(gateway&& o) noexcept {
    if (this != &o) {
        stop();
        impl_ = std::move(o.impl_);
    }
    return *this;
}
gateway::~gateway() { stop(); }

detailed_result<std::uint16_t> gateway::start() {
    auto& g = *impl_;
    if (g.started) return error{errc::already_exists, "the gateway is already started"};
    boost::system::error_code ec;
    const auto ep = net::to_asio<tcp>(g.cfg.listen);
    g.acceptor.open(ep.protocol(), ec);
    if (!ec) g.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) g.acceptor.bind(ep, ec);
    if (!ec) g.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return error{errc::io_error, fmt::format("listen on {}: {}", g.cfg.listen.to_string(), ec.message())};
    const auto port = g.acceptor.local_endpoint().port();
    g.started = true;
    g.first_checks_pending = static_cast<int>(g.backends.size());
    for (auto& [id, b] : g.backends) g.start_backend_loop(b);
    asio::co_spawn(g.io, g.accept_loop(), asio::detached);
    g.thread = std::thread([&g] { g.io.run(); });
    // The first round of health checks (which also learns the models) runs before start() returns, so the
    // first requests find their backends; bounded by one check's timeout.
    const auto until = now() + g.cfg.connect_timeout + g.cfg.health_interval + std::chrono::milliseconds(100);
    while (g.first_checks_pending.load() > 0 && now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return port;
}

void gateway::stop(duration drain_timeout) {
    if (!impl_) return;
    auto& g = *impl_;
    if (!g.started || g.stopped) return;
    g.stopped = true;
    asio::post(g.io, [&g, drain_timeout] {
        g.stopping = true;
        boost::system::error_code ec;
        g.acceptor.close(ec);
        for (auto* s : std::vector(g.idle_clients.begin(), g.idle_clients.end())) s->close();
        for (auto* t : std::vector(g.timers.begin(), g.timers.end())) t->cancel();
        asio::co_spawn(g.io, g.drain(drain_timeout), asio::detached);
    });
    g.thread.join();
}

detailed_result<void> gateway::set_backends(std::vector<backend_config> backends) {
    auto& g = *impl_;
    auto apply = [&g, list = std::move(backends)]() mutable -> detailed_result<void> {
        std::vector<std::string> problems;
        g.apply_backends(std::move(list), problems);
        if (!problems.empty()) return error{errc::invalid_argument, problems.front()};
        return {};
    };
    if (!g.started || g.stopped) return apply();
    std::promise<detailed_result<void>> done;
    auto f = done.get_future();
    asio::post(g.io, [&] { done.set_value(apply()); });
    return f.get();
}

detailed_result<void> gateway::sync_members(std::span<const membership::member> members) {
    return set_backends(backends_from_members(members));
}

const metrics::registry& gateway::metrics() const noexcept { return impl_->reg; }

} // namespace swarm::inline v0::dispatch
