// Representative swarm messages written with the wire codec: a membership-like gossip (member records with
// ids, addresses, incarnations, states and labels, each record a nested section) and a small ping. Shared by
// the wire fuzzer, the codec tests and the codec benchmarks; not part of the library.
#pragma once

#include <swarm/core/wire.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace sample {

namespace wire = swarm::wire;

enum class message_type : std::uint64_t { ping = 1, gossip = 2 };
enum class member_state : std::uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };

inline constexpr std::size_t max_body = 64 * 1024;
inline constexpr std::size_t max_members = 512;
inline constexpr std::size_t max_labels = 64;
inline constexpr std::size_t max_address = 255;
inline constexpr std::size_t max_label_text = 1024;

struct ping {
    std::uint64_t sequence = 0;
    std::int64_t clock_offset_us = 0;
    bool want_ack = false;
    friend bool operator==(const ping&, const ping&) = default;
};

struct label {
    std::string_view key;
    std::string_view value;
    friend bool operator==(const label&, const label&) = default;
};

/// Views into the decoded buffer; labels of member i are labels[first_label, first_label + label_count).
struct member {
    std::array<std::byte, 32> id{};
    std::string_view address;
    std::uint64_t incarnation = 0;
    member_state state = member_state::alive;
    std::size_t first_label = 0;
    std::size_t label_count = 0;
    friend bool operator==(const member&, const member&) = default;
};

/// Reused between decodes so that steady-state decoding allocates nothing.
struct gossip {
    std::uint64_t from_incarnation = 0;
    std::vector<member> members;
    std::vector<label> labels;
    std::span<const std::byte> piggyback; // an opaque nested payload
    friend bool operator==(const gossip& a, const gossip& b) {
        return a.from_incarnation == b.from_incarnation && a.members == b.members && a.labels == b.labels &&
               std::ranges::equal(a.piggyback, b.piggyback);
    }
};

inline void encode(wire::writer& w, const ping& p) {
    const auto body = w.begin_message(static_cast<std::uint64_t>(message_type::ping));
    w.varint(p.sequence);
    w.svarint(p.clock_offset_us);
    w.boolean(p.want_ack);
    w.end_message(body);
}

inline void encode(wire::writer& w, const gossip& g) {
    const auto body = w.begin_message(static_cast<std::uint64_t>(message_type::gossip));
    w.varint(g.from_incarnation);
    w.varint(g.members.size());
    for (const auto& m : g.members) {
        const auto record = w.begin_section();
        w.raw(m.id);
        w.string(m.address);
        w.varint(m.incarnation);
        w.u8(static_cast<std::uint8_t>(m.state));
        w.varint(m.label_count);
        for (std::size_t i = 0; i < m.label_count; ++i) {
            w.string(g.labels[m.first_label + i].key);
            w.string(g.labels[m.first_label + i].value);
        }
        w.end_section(record);
    }
    w.bytes(g.piggyback);
    w.end_message(body);
}

/// Reads the envelope and returns the message type (errc::malformed for an unknown one); the reader is left
/// inside the body.
inline message_type begin_envelope(wire::reader& r, wire::reader::message& m) {
    m = r.begin_message(max_body);
    if (r.ok() && m.type != static_cast<std::uint64_t>(message_type::ping) &&
        m.type != static_cast<std::uint64_t>(message_type::gossip))
        r.fail(swarm::errc::malformed);
    return static_cast<message_type>(m.type);
}

inline void decode_body(wire::reader& r, ping& p) {
    p.sequence = r.varint();
    p.clock_offset_us = r.svarint();
    p.want_ack = r.boolean();
}

inline void decode_body(wire::reader& r, gossip& g, wire::trailing t) {
    g.members.clear();
    g.labels.clear();
    g.from_incarnation = r.varint();
    // Every record takes at least 37 bytes (length, id, address length, incarnation, state, label count).
    const auto n = r.count(max_members, 37);
    g.members.reserve(n);
    for (std::size_t i = 0; i < n && r.ok(); ++i) {
        const auto record = r.begin_section(max_body);
        auto& m = g.members.emplace_back();
        r.raw_into(std::span{m.id});
        m.address = r.utf8(max_address);
        m.incarnation = r.varint();
        const auto state = r.u8();
        if (state > static_cast<std::uint8_t>(member_state::left)) r.fail(swarm::errc::malformed);
        m.state = static_cast<member_state>(state);
        m.first_label = g.labels.size();
        m.label_count = r.count(max_labels, 2);
        for (std::size_t j = 0; j < m.label_count && r.ok(); ++j)
            g.labels.push_back({r.utf8(max_label_text), r.utf8(max_label_text)});
        r.end_section(record, t);
    }
    g.piggyback = r.bytes(max_body);
}

/// Decodes one whole ping datagram: envelope, body, nothing after it.
inline swarm::result<void> decode(std::span<const std::byte> in, ping& p, wire::trailing t = wire::trailing::reject) {
    wire::reader r(in);
    wire::reader::message m;
    if (begin_envelope(r, m) != message_type::ping) r.fail(swarm::errc::malformed);
    decode_body(r, p);
    r.end_message(m, t);
    return r.finish();
}

inline swarm::result<void> decode(std::span<const std::byte> in, gossip& g, wire::trailing t = wire::trailing::reject) {
    wire::reader r(in);
    wire::reader::message m;
    if (begin_envelope(r, m) != message_type::gossip) r.fail(swarm::errc::malformed);
    decode_body(r, g, t);
    r.end_message(m, t);
    return r.finish();
}

} // namespace sample
