// Repair progress: the events and metrics a repair run reports, kept apart from the repair loop itself.
#pragma once

#include <swarm/storage/object_store.hpp>

namespace swarm::inline v0::storage::detail {

class repair_progress {
public:
    explicit repair_progress(const repair_options& options);

    void rebuilt(const repair_report& totals, const chunk_id& stripe, unsigned shard, std::size_t from, std::size_t to);
    /// After each stripe: emits stripe_unrecoverable (when it is) and stripe_scanned, and adds what the stripe
    /// moved to the counters.
    void scanned(const repair_report& totals, const chunk_id& stripe, bool unrecoverable);

private:
    const repair_options& options_;
    repair_report counted_; // what the counters already hold from this run
    metrics::counter* stripes_ = nullptr;
    metrics::counter* rebuilt_ = nullptr;
    metrics::counter* relocated_ = nullptr;
    metrics::counter* read_ = nullptr;
    metrics::counter* written_ = nullptr;
    metrics::counter* unrecoverable_ = nullptr;
};

} // namespace swarm::inline v0::storage::detail
