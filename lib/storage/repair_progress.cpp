#include "storage/repair_progress.hpp"

namespace swarm::inline v0::storage::detail {

namespace {

metrics::counter* counter_in(metrics::registry* registry, std::string_view name, std::string_view help) {
    if (!registry) return nullptr;
    auto c = registry->add_counter(name, help);
    return c ? *c : nullptr; // a conflicting definition already in the registry leaves this counter out
}

} // namespace

repair_progress::repair_progress(const repair_options& options)
    : options_(options),
      stripes_(counter_in(options.metrics, "swarm_storage_repair_stripes_scanned_total", "Stripes checked by repair")),
      rebuilt_(counter_in(options.metrics, "swarm_storage_repair_shards_rebuilt_total", "Shards rebuilt by repair")),
      relocated_(counter_in(options.metrics, "swarm_storage_repair_shards_relocated_total",
                            "Rebuilt shards written to another store than the one that lost them")),
      read_(counter_in(options.metrics, "swarm_storage_repair_bytes_read_total", "Shard bytes read by repair")),
      written_(counter_in(options.metrics, "swarm_storage_repair_bytes_written_total", "Shard bytes written by repair")),
      unrecoverable_(counter_in(options.metrics, "swarm_storage_repair_stripes_unrecoverable_total",
                                "Stripes repair found with fewer intact shards than it needs")) {}

void repair_progress::rebuilt(const repair_report& totals, const chunk_id& stripe, unsigned shard, std::size_t from,
                              std::size_t to) {
    if (options_.on_event) options_.on_event({repair_event_kind::shard_rebuilt, stripe, shard, from, to, totals});
}

void repair_progress::scanned(const repair_report& totals, const chunk_id& stripe, bool unrecoverable) {
    const auto add = [](metrics::counter* c, std::uint64_t now, std::uint64_t& before) {
        if (c) c->inc(now - before);
        before = now;
    };
    add(stripes_, totals.stripes, counted_.stripes);
    add(rebuilt_, totals.shards_rebuilt, counted_.shards_rebuilt);
    add(relocated_, totals.shards_relocated, counted_.shards_relocated);
    add(read_, totals.bytes_read, counted_.bytes_read);
    add(written_, totals.bytes_written, counted_.bytes_written);
    add(unrecoverable_, totals.unrecoverable_stripes, counted_.unrecoverable_stripes);
    if (!options_.on_event) return;
    if (unrecoverable) options_.on_event({repair_event_kind::stripe_unrecoverable, stripe, 0, 0, 0, totals});
    options_.on_event({repair_event_kind::stripe_scanned, stripe, 0, 0, 0, totals});
}

} // namespace swarm::inline v0::storage::detail
