#include "storage/catalog.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <cstring>
#include <utility>

namespace swarm::inline v0::storage::detail {

namespace {

class statement {
public:
    statement() = default;
    statement(sqlite3* db, const char* sql) { sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr); }
    statement(statement&& o) noexcept : stmt_(std::exchange(o.stmt_, nullptr)) {}
    statement& operator=(statement&& o) noexcept {
        std::swap(stmt_, o.stmt_);
        return *this;
    }
    ~statement() { sqlite3_finalize(stmt_); }

    bool valid() const noexcept { return stmt_ != nullptr; }
    sqlite3_stmt* get() const noexcept { return stmt_; }

    // Each use starts clean, so a statement left mid-way by an error does not poison the next call.
    statement& reset() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
        return *this;
    }
    statement& bind(int i, std::span<const std::uint8_t> blob) {
        sqlite3_bind_blob(stmt_, i, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC);
        return *this;
    }
    statement& bind(int i, std::string_view text) {
        // An empty view may carry a null pointer, which SQLite would bind as NULL rather than ''.
        sqlite3_bind_text(stmt_, i, text.empty() ? "" : text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
        return *this;
    }
    statement& bind(int i, std::uint64_t v) {
        sqlite3_bind_int64(stmt_, i, static_cast<sqlite3_int64>(v));
        return *this;
    }
    int step() { return sqlite3_step(stmt_); }

    std::vector<std::uint8_t> blob(int col) const {
        const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt_, col));
        return {p, p + sqlite3_column_bytes(stmt_, col)};
    }
    chunk_id id(int col) const {
        chunk_id out{};
        if (sqlite3_column_bytes(stmt_, col) == 32) std::memcpy(out.data(), sqlite3_column_blob(stmt_, col), 32);
        return out;
    }
    std::uint64_t u64(int col) const { return static_cast<std::uint64_t>(sqlite3_column_int64(stmt_, col)); }
    std::string text(int col) const {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
        return {p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))};
    }

private:
    sqlite3_stmt* stmt_ = nullptr;
};

// 64 KiB pages keep a manifest with a small object inlined (about 4.4 KB for 4 KiB of data) inside its leaf
// page, where 4 KiB pages would spill it to overflow pages and double its footprint. The WAL is checkpointed
// often and trimmed so that it stays a small fraction of what it indexes.
const char* const schema = R"(
PRAGMA page_size=65536;
PRAGMA journal_mode=WAL;
PRAGMA wal_autocheckpoint=64;
PRAGMA journal_size_limit=4194304;
PRAGMA synchronous=FULL;
CREATE TABLE IF NOT EXISTS objects(name TEXT PRIMARY KEY, size INTEGER NOT NULL, chunks INTEGER NOT NULL,
                                   manifest BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stripes(id BLOB PRIMARY KEY, refs INTEGER NOT NULL, stored_size INTEGER NOT NULL,
                                   locations BLOB NOT NULL) WITHOUT ROWID;
)";

result<void> done(int rc) {
    if (rc == SQLITE_DONE || rc == SQLITE_ROW || rc == SQLITE_OK) return {};
    return make_error_code(errc::io_error);
}

} // namespace

struct connection {
    sqlite3* db = nullptr;
    ~connection() { sqlite3_close_v2(db); }
};

struct catalog::impl {
    connection conn; // declared first, so destroyed after the statements
    sqlite3*& db = conn.db;
    statement begin, commit, rollback, get_manifest, get_stripe, put_object, delete_object, add_stripe, add_ref,
        drop_ref, orphans, delete_orphans, list, all_stripes, set_locations;

    result<void> exec(statement& s) { return done(s.step()); }

    // Runs `body` in a transaction; rolls back on any failure.
    template <class F>
    auto transaction(F&& body) -> decltype(body()) {
        if (auto r = exec(begin.reset()); !r) return r.error();
        auto out = body();
        if (!out || !exec(commit.reset())) {
            exec(rollback.reset());
            if (out) return make_error_code(errc::io_error);
        }
        return out;
    }

    result<std::vector<stripe_row>> release(std::span<const chunk_id> released) {
        for (const auto& id : released)
            if (auto r = exec(drop_ref.reset().bind(1, id)); !r) return r.error();
        std::vector<stripe_row> gone;
        auto& q = orphans.reset();
        int rc;
        while ((rc = q.step()) == SQLITE_ROW) gone.push_back({q.id(0), q.u64(1), q.blob(2)});
        if (rc != SQLITE_DONE) return make_error_code(errc::io_error);
        if (auto r = exec(delete_orphans.reset()); !r) return r.error();
        return gone;
    }
};

catalog::catalog(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
catalog::catalog(catalog&&) noexcept = default;
catalog& catalog::operator=(catalog&&) noexcept = default;
catalog::~catalog() = default;

detailed_result<catalog> catalog::open(const std::filesystem::path& file) {
    auto p = std::make_unique<impl>();
    if (sqlite3_open_v2(file.c_str(), &p->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK)
        return error{errc::io_error, fmt::format("cannot open catalog {}: {}", file.string(), sqlite3_errmsg(p->db))};
    char* message = nullptr;
    if (sqlite3_exec(p->db, schema, nullptr, nullptr, &message) != SQLITE_OK) {
        error e{errc::io_error, fmt::format("catalog {}: {}", file.string(), message ? message : "schema failed")};
        sqlite3_free(message);
        return e;
    }
    sqlite3_busy_timeout(p->db, 5000);
    p->begin = statement(p->db, "BEGIN IMMEDIATE");
    p->commit = statement(p->db, "COMMIT");
    p->rollback = statement(p->db, "ROLLBACK");
    p->get_manifest = statement(p->db, "SELECT manifest FROM objects WHERE name = ?1");
    p->get_stripe = statement(p->db, "SELECT stored_size, locations FROM stripes WHERE id = ?1");
    p->put_object = statement(p->db, "INSERT OR REPLACE INTO objects(name, size, chunks, manifest) VALUES(?1, ?2, ?3, ?4)");
    p->delete_object = statement(p->db, "DELETE FROM objects WHERE name = ?1");
    p->add_stripe = statement(p->db, "INSERT OR IGNORE INTO stripes(id, refs, stored_size, locations) VALUES(?1, 0, ?2, ?3)");
    p->add_ref = statement(p->db, "UPDATE stripes SET refs = refs + 1 WHERE id = ?1");
    p->drop_ref = statement(p->db, "UPDATE stripes SET refs = refs - 1 WHERE id = ?1");
    p->orphans = statement(p->db, "SELECT id, stored_size, locations FROM stripes WHERE refs <= 0");
    p->delete_orphans = statement(p->db, "DELETE FROM stripes WHERE refs <= 0");
    p->list = statement(p->db, "SELECT name, size, chunks FROM objects WHERE substr(name, 1, length(?1)) = ?1 ORDER BY name");
    p->all_stripes = statement(p->db, "SELECT id, stored_size, locations FROM stripes ORDER BY id");
    p->set_locations = statement(p->db, "UPDATE stripes SET locations = ?2 WHERE id = ?1");
    for (const statement* s : {&p->begin, &p->commit, &p->rollback, &p->get_manifest, &p->get_stripe, &p->put_object,
                               &p->delete_object, &p->add_stripe, &p->add_ref, &p->drop_ref, &p->orphans,
                               &p->delete_orphans, &p->list, &p->all_stripes, &p->set_locations})
        if (!s->valid()) return error{errc::io_error, fmt::format("catalog {}: {}", file.string(), sqlite3_errmsg(p->db))};
    return catalog(std::move(p));
}

result<std::optional<std::vector<std::uint8_t>>> catalog::manifest(std::string_view name) {
    auto& q = impl_->get_manifest.reset().bind(1, name);
    const int rc = q.step();
    if (rc == SQLITE_ROW) return std::optional(q.blob(0));
    if (rc == SQLITE_DONE) return std::optional<std::vector<std::uint8_t>>{};
    return make_error_code(errc::io_error);
}

result<std::optional<stripe_row>> catalog::stripe(const chunk_id& id) {
    auto& q = impl_->get_stripe.reset().bind(1, id);
    const int rc = q.step();
    if (rc == SQLITE_ROW) return std::optional(stripe_row{id, q.u64(0), q.blob(1)});
    if (rc == SQLITE_DONE) return std::optional<stripe_row>{};
    return make_error_code(errc::io_error);
}

result<std::vector<stripe_row>> catalog::commit(std::string_view name, std::uint64_t size, std::uint64_t chunks,
                                              std::span<const std::uint8_t> manifest, std::span<const chunk_id> referenced,
                                              std::span<const stripe_row> added, std::span<const chunk_id> released) {
    return impl_->transaction([&]() -> result<std::vector<stripe_row>> {
        for (const auto& s : added)
            if (auto r = impl_->exec(impl_->add_stripe.reset().bind(1, s.id).bind(2, s.stored_size).bind(3, s.locations)); !r)
                return r.error();
        for (const auto& id : referenced)
            if (auto r = impl_->exec(impl_->add_ref.reset().bind(1, id)); !r) return r.error();
        if (auto r = impl_->exec(impl_->put_object.reset().bind(1, name).bind(2, size).bind(3, chunks).bind(4, manifest)); !r)
            return r.error();
        return impl_->release(released);
    });
}

result<std::vector<stripe_row>> catalog::remove(std::string_view name, std::span<const chunk_id> released) {
    return impl_->transaction([&]() -> result<std::vector<stripe_row>> {
        if (auto r = impl_->exec(impl_->delete_object.reset().bind(1, name)); !r) return r.error();
        return impl_->release(released);
    });
}

result<void> catalog::set_locations(const chunk_id& id, std::span<const std::uint8_t> locations) {
    return impl_->exec(impl_->set_locations.reset().bind(1, id).bind(2, locations));
}

result<std::vector<object_row>> catalog::list(std::string_view prefix) {
    std::vector<object_row> out;
    auto& q = impl_->list.reset().bind(1, prefix);
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back({q.text(0), q.u64(1), q.u64(2)});
    if (rc != SQLITE_DONE) return make_error_code(errc::io_error);
    return out;
}

result<std::vector<stripe_row>> catalog::stripes() {
    std::vector<stripe_row> out;
    auto& q = impl_->all_stripes.reset();
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back({q.id(0), q.u64(1), q.blob(2)});
    if (rc != SQLITE_DONE) return make_error_code(errc::io_error);
    return out;
}

} // namespace swarm::inline v0::storage::detail
