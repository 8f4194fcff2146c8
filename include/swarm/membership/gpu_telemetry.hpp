// GPU telemetry: where a node's GPU figures come from, and when they are worth gossiping again.
//
// The agent samples a gpu_provider every gpu_telemetry_config::interval, off the protocol's strand, and
// republishes its metadata only when the figures moved beyond the thresholds, so a busy GPU does not turn
// into a stream of metadata updates. The default provider reads NVML, loaded at run time: a build needs no
// NVIDIA headers or libraries, and a machine without them simply reports no GPUs.
#pragma once

#include <swarm/core/clock.hpp>
#include <swarm/core/error.hpp>
#include <swarm/core/logger.hpp>
#include <swarm/membership/types.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace swarm::inline v0::membership {

/// A source of GPU figures a host can plug into the agent (agent_config::gpu_provider). sample() is called
/// from a swarm thread, never concurrently with itself; it may take a few milliseconds but must not block
/// for long, and must not throw (an exception is caught, logged and treated as "no GPUs").
class gpu_provider {
public:
    virtual ~gpu_provider() = default;
    /// Every GPU now: model, total memory, memory in use, utilisation. Empty when there are none or the
    /// source is unavailable; the agent then leaves the host's own GPU metadata untouched.
    virtual std::vector<gpu> sample() = 0;
};

/// NVML (the NVIDIA Management Library) through dlopen. Construction never fails: where the library is
/// missing, lacks a function, or nvmlInit fails, the provider is absent (available() is false, sample()
/// is empty) and says so once in a debug log line. A device that fails a query is reported with the
/// figures that did answer. nvmlShutdown runs on destruction.
class nvml_provider final : public gpu_provider {
public:
    static constexpr const char* default_library = "libnvidia-ml.so.1";

    /// `library` is a file name searched the dlopen way, or a path.
    explicit nvml_provider(std::string library = default_library, logger log = {});
    ~nvml_provider() override;
    nvml_provider(const nvml_provider&) = delete;
    nvml_provider& operator=(const nvml_provider&) = delete;

    bool available() const noexcept;
    std::vector<gpu> sample() override;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

struct gpu_telemetry_config {
    /// Sample and publish GPU figures. With nothing to report (no NVML, no GPUs) it costs one failed
    /// dlopen at start.
    bool enabled = true;
    /// The NVML library for the default provider; ignored when the host plugs its own provider.
    std::string nvml_library = nvml_provider::default_library;
    /// How often the provider is sampled.
    duration interval = std::chrono::seconds(5);
    /// Republish when a GPU's utilisation moved by at least this many percentage points since the figures
    /// last published (0: on any change).
    unsigned utilisation_threshold = 10;
    /// ... or its memory in use moved by at least this fraction of its total memory (0: on any change).
    double memory_threshold = 0.05;

    detailed_result<void> validate() const;
    template <class F>
    void describe(F& f) {
        f("enabled", enabled);
        f("nvml_library", nvml_library);
        f("interval", interval);
        f("utilisation_threshold", utilisation_threshold);
        f("memory_threshold", memory_threshold);
    }
};

/// Whether `now` differs from `published` enough to republish: a GPU appeared, disappeared or changed
/// model or total memory, or one moved beyond the thresholds of `cfg`.
bool significant_change(const std::vector<gpu>& published, const std::vector<gpu>& now,
                        const gpu_telemetry_config& cfg) noexcept;

/// `host` with its GPU lists replaced by `gpus`: capacity.gpus as sampled, available.gpus the same devices
/// with memory_bytes the memory still free. With `gpus` empty, `host` is returned unchanged.
metadata with_gpus(metadata host, const std::vector<gpu>& gpus);

} // namespace swarm::inline v0::membership
