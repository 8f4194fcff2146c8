#include "messages.hpp"

#include <sodium.h>

#include <cstring>

namespace swarm::inline v0::membership::detail {
namespace {

void put_id(wire::writer& w, const node_id& id) { w.raw(id.bytes()); }

node_id get_id(wire::reader& r) {
    node_id::bytes_type bytes{};
    r.raw_into(std::span<std::byte, node_id::size>(bytes));
    return node_id(bytes);
}

void put_endpoint(wire::writer& w, const net::endpoint& e) {
    w.raw(std::as_bytes(std::span(e.address())));
    w.u16(e.port());
}

net::endpoint get_endpoint(wire::reader& r) {
    net::endpoint::address_bytes address{};
    const auto raw = r.raw(address.size());
    if (!raw.empty()) std::memcpy(address.data(), raw.data(), address.size());
    const auto port = r.u16();
    return {address, port};
}

template <std::size_t N>
void get_array(wire::reader& r, std::array<std::byte, N>& out) {
    r.raw_into(std::span<std::byte, N>(out));
}

void put_alive_fields(wire::writer& w, const alive_claim& c) {
    put_id(w, c.id);
    w.raw(c.signing_key);
    w.varint(c.incarnation);
    put_endpoint(w, c.address);
    w.raw(c.meta_digest);
    w.varint(c.meta_size);
}

void put_accusation_fields(wire::writer& w, const accusation& a) {
    put_id(w, a.target);
    w.varint(a.incarnation);
    put_id(w, a.accuser);
}

member_state state_from(std::uint8_t v, wire::reader& r) {
    if (v > static_cast<std::uint8_t>(member_state::left)) {
        r.fail(errc::malformed);
        return member_state::alive;
    }
    return static_cast<member_state>(v);
}

} // namespace

std::uint64_t id_prefix(const node_id& id) noexcept {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | std::to_integer<std::uint64_t>(id.bytes()[i]);
    return v;
}

digest hash16(std::span<const std::byte> bytes) noexcept {
    digest out{};
    crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(),
                       reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), nullptr, 0);
    return out;
}

std::vector<std::byte> signed_bytes(const alive_claim& c, const digest& label_hash) {
    std::vector<std::byte> out;
    {
        wire::writer w(out);
        w.string("swarm/membership/alive/1");
        w.raw(label_hash);
        put_alive_fields(w, c);
    }
    return out;
}

std::vector<std::byte> signed_bytes(message_type kind, const accusation& a, const digest& label_hash) {
    std::vector<std::byte> out;
    {
        wire::writer w(out);
        w.string(kind == message_type::dead      ? "swarm/membership/dead/1"
                 : kind == message_type::removal ? "swarm/membership/removal/1"
                                                 : "swarm/membership/suspect/1");
        w.raw(label_hash);
        put_accusation_fields(w, a);
    }
    return out;
}

void encode(wire::writer& w, const ping& m) {
    auto s = w.begin_message(static_cast<std::uint64_t>(message_type::ping));
    w.varint(m.sequence);
    w.u64(m.target);
    w.end_message(s);
}

void encode(wire::writer& w, const ping_req& m) {
    auto s = w.begin_message(static_cast<std::uint64_t>(message_type::ping_req));
    w.varint(m.sequence);
    put_id(w, m.target);
    put_endpoint(w, m.target_address);
    w.boolean(m.want_nack);
    w.end_message(s);
}

void encode(wire::writer& w, message_type kind, const ack& m) {
    auto s = w.begin_message(static_cast<std::uint64_t>(kind));
    w.varint(m.sequence);
    if (m.view) {
        w.raw(*m.view);
        w.varint(m.live);
    }
    w.end_message(s);
}

void encode(wire::writer& w, const alive_claim& c) {
    auto s = w.begin_message(static_cast<std::uint64_t>(message_type::alive));
    put_alive_fields(w, c);
    w.raw(c.sig);
    w.end_message(s);
}

void encode(wire::writer& w, message_type kind, const accusation& a) {
    auto s = w.begin_message(static_cast<std::uint64_t>(kind));
    put_accusation_fields(w, a);
    w.raw(a.sig);
    w.end_message(s);
}

void encode(wire::writer& w, const metadata_message& m) {
    auto s = w.begin_message(static_cast<std::uint64_t>(message_type::metadata));
    put_id(w, m.id);
    w.varint(m.incarnation);
    w.bytes(m.meta);
    w.end_message(s);
}

void encode(wire::writer& w, message_type kind, std::span<const member_record> state) {
    auto s = w.begin_message(static_cast<std::uint64_t>(kind));
    w.varint(state.size());
    for (const auto& rec : state) {
        auto item = w.begin_section();
        put_alive_fields(w, rec.alive);
        w.raw(rec.alive.sig);
        w.u8(static_cast<std::uint8_t>(rec.state));
        w.boolean(rec.accused.has_value());
        if (rec.accused) {
            put_accusation_fields(w, *rec.accused);
            w.raw(rec.accused->sig);
        }
        w.bytes(rec.meta);
        w.end_section(item);
    }
    w.end_message(s);
}

void encode(wire::writer& w, const removal& m) {
    auto s = w.begin_message(static_cast<std::uint64_t>(message_type::removal));
    put_accusation_fields(w, m.claim);
    w.raw(m.claim.sig);
    w.varint(m.evidence.size());
    // Every piece of evidence is about the claim's target, so the target is not repeated.
    for (const auto& a : m.evidence) {
        w.varint(a.incarnation);
        put_id(w, a.accuser);
        w.raw(a.sig);
    }
    w.end_message(s);
}

void encode_meta_request(wire::writer& w, const node_id& id, std::uint64_t incarnation) {
    auto s = w.begin_message(static_cast<std::uint64_t>(message_type::meta_request));
    put_id(w, id);
    w.varint(incarnation);
    w.end_message(s);
}

void encode_view_digest(wire::writer& w, const digest& d, std::uint64_t live) {
    auto s = w.begin_message(static_cast<std::uint64_t>(message_type::view_digest));
    w.raw(d);
    w.varint(live);
    w.end_message(s);
}

void decode_body(wire::reader& r, ping& m) {
    m.sequence = static_cast<std::uint32_t>(r.varint_max(0xffffffffu));
    m.target = r.u64();
}

void decode_body(wire::reader& r, ping_req& m) {
    m.sequence = static_cast<std::uint32_t>(r.varint_max(0xffffffffu));
    m.target = get_id(r);
    m.target_address = get_endpoint(r);
    m.want_nack = r.boolean();
}

void decode_body(wire::reader& r, ack& m) {
    m.sequence = static_cast<std::uint32_t>(r.varint_max(0xffffffffu));
    if (r.remaining() > 0) {
        m.view.emplace();
        get_array(r, *m.view);
        m.live = r.varint();
    }
}

namespace {
void decode_alive_fields(wire::reader& r, alive_claim& c) {
    c.id = get_id(r);
    get_array(r, c.signing_key);
    c.incarnation = r.varint();
    c.address = get_endpoint(r);
    get_array(r, c.meta_digest);
    c.meta_size = static_cast<std::uint32_t>(r.varint_max(0xffffffffu));
    get_array(r, c.sig);
}
void decode_accusation_fields(wire::reader& r, accusation& a) {
    a.target = get_id(r);
    a.incarnation = r.varint();
    a.accuser = get_id(r);
    get_array(r, a.sig);
}
} // namespace

void decode_body(wire::reader& r, alive_claim& c) { decode_alive_fields(r, c); }
void decode_body(wire::reader& r, accusation& a) { decode_accusation_fields(r, a); }

void decode_body(wire::reader& r, metadata_message& m, std::size_t max_meta) {
    m.id = get_id(r);
    m.incarnation = r.varint();
    m.meta = r.bytes(max_meta);
}

void decode_body(wire::reader& r, removal& m) {
    decode_accusation_fields(r, m.claim);
    // Each piece is at least 97 bytes (incarnation, id, signature): the count is checked against what remains.
    const auto n = r.count(max_removal_evidence, 1 + node_id::size + sizeof(signature));
    m.evidence.clear();
    m.evidence.reserve(n);
    for (std::size_t i = 0; i < n && r.ok(); ++i) {
        accusation a;
        a.target = m.claim.target;
        a.incarnation = r.varint();
        a.accuser = get_id(r);
        get_array(r, a.sig);
        if (r.ok()) m.evidence.push_back(a);
    }
}

void decode_body(wire::reader& r, std::vector<member_record>& state, std::size_t max_members, std::size_t max_meta) {
    // An alive claim alone is well over 100 bytes, so a count can be checked against what remains.
    const auto n = r.count(max_members, 100);
    state.clear();
    state.reserve(n);
    for (std::size_t i = 0; i < n && r.ok(); ++i) {
        member_record rec;
        auto item = r.begin_section(max_meta + 1024);
        decode_alive_fields(r, rec.alive);
        rec.state = state_from(r.u8(), r);
        if (r.boolean()) {
            rec.accused.emplace();
            decode_accusation_fields(r, *rec.accused);
        }
        rec.meta = r.bytes(max_meta);
        r.end_section(item, wire::trailing::skip);
        if (r.ok()) state.push_back(rec);
    }
}

void decode_meta_request(wire::reader& r, node_id& id, std::uint64_t& incarnation) {
    id = get_id(r);
    incarnation = r.varint();
}

void decode_view_digest(wire::reader& r, digest& d, std::uint64_t& live) {
    get_array(r, d);
    live = r.varint();
}

} // namespace swarm::inline v0::membership::detail
