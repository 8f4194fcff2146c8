// The membership protocol's messages and their encoding (swarm::wire), private to the implementation.
//
// A datagram's plaintext (inside the seal) is a sequence of wire messages: at most one probe message (ping,
// ping_req, ack, nack) first, then piggy-backed updates (alive, suspect, dead, metadata, user). A stream
// frame's plaintext is exactly one message (push_pull, push_pull_reply, ping, tcp_ack, meta_request,
// metadata, view_digest).
//
// State claims are signed by whoever makes them: an alive claim by the member itself (so nobody else can
// revive or move it), a suspect or dead claim by its accuser (so accusations are attributable). Signatures
// cover a domain string, the hash of the cluster label, and the claim's encoded fields.
#pragma once

#include <swarm/core/identity.hpp>
#include <swarm/core/wire.hpp>
#include <swarm/membership/types.hpp>
#include <swarm/net/endpoint.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace swarm::inline v0::membership::detail {

enum class message_type : std::uint8_t {
    ping = 1,
    ping_req = 2,
    ack = 3,
    nack = 4,
    alive = 5,
    suspect = 6,
    dead = 7,
    user = 8,
    metadata = 9,
    removal = 10,
    push_pull = 20,
    push_pull_reply = 21,
    tcp_ack = 23,
    meta_request = 24,
    view_digest = 25,
};

using digest = std::array<std::byte, 16>;
using public_key = identity::ed25519_public_key;
using signature = identity::signature;

/// The first 8 bytes of an id: enough for a probe to notice it reached the wrong node.
std::uint64_t id_prefix(const node_id& id) noexcept;

struct ping {
    std::uint32_t sequence = 0;
    std::uint64_t target = 0; // id_prefix of the node the prober meant
};

struct ping_req {
    std::uint32_t sequence = 0;
    node_id target;
    net::endpoint target_address;
    bool want_nack = false;
};

struct ack {
    std::uint32_t sequence = 0;
    /// The acker's view digest and live count, when it sends them (an ack to a direct probe): a prober
    /// whose view keeps differing from its peers' runs a digest exchange early. Older decoders skip it.
    std::optional<digest> view;
    std::uint64_t live = 0;
};

struct alive_claim {
    node_id id;
    public_key signing_key{};
    std::uint64_t incarnation = 0;
    net::endpoint address;
    digest meta_digest{}; // zero when there is no metadata
    std::uint32_t meta_size = 0;
    signature sig{};
};

struct accusation {
    node_id target;
    std::uint64_t incarnation = 0;
    node_id accuser; // the target itself in a dead claim means it left
    signature sig{};
};

/// A member removed on evidence rather than on one accuser's word: `evidence` holds suspicions of `claim.target`
/// signed by distinct members (each carries its own target, the same as the claim's). The claim itself is
/// signed by whoever assembled the evidence. A receiver that checks every signature removes the target and
/// ignores its refutations for a while: one refutable suspicion cannot remove a node that still answers
/// sometimes (a grey failure), many independent ones can.
struct removal {
    accusation claim;
    std::vector<accusation> evidence;
};
inline constexpr std::size_t max_removal_evidence = 16;

struct metadata_message {
    node_id id;
    std::uint64_t incarnation = 0;
    std::span<const std::byte> meta; // a view into the packet
};

/// One member in a full state exchange.
struct member_record {
    alive_claim alive;
    member_state state = member_state::alive;
    std::optional<accusation> accused; // for suspect, dead and left
    std::span<const std::byte> meta;   // inline metadata, possibly empty
};

/// Everything a signature covers: domain, label hash, fields.
std::vector<std::byte> signed_bytes(const alive_claim& c, const digest& label_hash);
std::vector<std::byte> signed_bytes(message_type kind, const accusation& a, const digest& label_hash);

digest hash16(std::span<const std::byte> bytes) noexcept;

void encode(wire::writer& w, const ping& m);
void encode(wire::writer& w, const ping_req& m);
void encode(wire::writer& w, message_type kind, const ack& m); // ack, nack, tcp_ack
void encode(wire::writer& w, const alive_claim& c);
void encode(wire::writer& w, message_type kind, const accusation& a); // suspect or dead
void encode(wire::writer& w, const metadata_message& m);
void encode(wire::writer& w, const removal& m);
void encode(wire::writer& w, message_type kind, std::span<const member_record> state); // push_pull(_reply)
void encode_meta_request(wire::writer& w, const node_id& id, std::uint64_t incarnation);
/// A summary of the live view (see swim.cpp's view_digest()): a periodic exchange starts with it, and full
/// state follows only when the two summaries differ.
void encode_view_digest(wire::writer& w, const digest& d, std::uint64_t live);

// Body decoders: called after begin_message() with the reader inside the body.
void decode_body(wire::reader& r, ping& m);
void decode_body(wire::reader& r, ping_req& m);
void decode_body(wire::reader& r, ack& m);
void decode_body(wire::reader& r, alive_claim& c);
void decode_body(wire::reader& r, accusation& a);
void decode_body(wire::reader& r, metadata_message& m, std::size_t max_meta);
void decode_body(wire::reader& r, removal& m);
void decode_body(wire::reader& r, std::vector<member_record>& state, std::size_t max_members, std::size_t max_meta);
void decode_meta_request(wire::reader& r, node_id& id, std::uint64_t& incarnation);
void decode_view_digest(wire::reader& r, digest& d, std::uint64_t& live);

} // namespace swarm::inline v0::membership::detail
