#include <swarm/membership/gpu_telemetry.hpp>

#include <fmt/format.h>

#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace swarm::inline v0::membership {

namespace {

// The few NVML types and entry points used here, declared from NVIDIA's public API reference so that no
// NVIDIA header is needed to build. All NVML calls return nvmlReturn_t, an int where 0 is NVML_SUCCESS.
namespace nvml {
using return_t = int;
constexpr return_t success = 0;
struct device_st;
using device_t = device_st*;
struct memory_t {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
};
struct utilization_t {
    unsigned int gpu;
    unsigned int memory;
};
// NVML_DEVICE_NAME_V2_BUFFER_SIZE: large enough for any device name.
constexpr unsigned name_buffer_size = 96;

using init_fn = return_t (*)();
using shutdown_fn = return_t (*)();
using count_fn = return_t (*)(unsigned int*);
using handle_fn = return_t (*)(unsigned int, device_t*);
using name_fn = return_t (*)(device_t, char*, unsigned int);
using memory_fn = return_t (*)(device_t, memory_t*);
using utilization_fn = return_t (*)(device_t, utilization_t*);
using error_string_fn = const char* (*)(return_t);
} // namespace nvml

template <class Fn>
Fn symbol(void* handle, const char* name) {
    // POSIX guarantees that dlsym's object pointer converts to a function pointer.
    return reinterpret_cast<Fn>(::dlsym(handle, name));
}

} // namespace

struct nvml_provider::impl {
    std::string library;
    logger log;
    void* handle = nullptr;
    bool initialised = false;
    nvml::shutdown_fn shutdown = nullptr;
    nvml::count_fn count = nullptr;
    nvml::handle_fn device_at = nullptr;
    nvml::name_fn name = nullptr;
    nvml::memory_fn memory = nullptr;
    nvml::utilization_fn utilization = nullptr;
    nvml::error_string_fn error_string = nullptr;
    // A failing query is logged once until queries succeed again, so a broken driver does not flood the log.
    bool query_failing = false;

    std::string describe(nvml::return_t r) const {
        const char* text = error_string != nullptr ? error_string(r) : nullptr;
        return text != nullptr ? fmt::format("{} (NVML error {})", text, r) : fmt::format("NVML error {}", r);
    }

    void open() {
        handle = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) {
            const char* why = ::dlerror();
            log.debug("gpu telemetry: NVML not loaded ({}); no GPUs reported", why != nullptr ? why : library);
            return;
        }
        auto init = symbol<nvml::init_fn>(handle, "nvmlInit_v2");
        shutdown = symbol<nvml::shutdown_fn>(handle, "nvmlShutdown");
        count = symbol<nvml::count_fn>(handle, "nvmlDeviceGetCount_v2");
        device_at = symbol<nvml::handle_fn>(handle, "nvmlDeviceGetHandleByIndex_v2");
        name = symbol<nvml::name_fn>(handle, "nvmlDeviceGetName");
        memory = symbol<nvml::memory_fn>(handle, "nvmlDeviceGetMemoryInfo");
        utilization = symbol<nvml::utilization_fn>(handle, "nvmlDeviceGetUtilizationRates");
        error_string = symbol<nvml::error_string_fn>(handle, "nvmlErrorString"); // optional: messages only
        if (init == nullptr || shutdown == nullptr || count == nullptr || device_at == nullptr || name == nullptr ||
            memory == nullptr || utilization == nullptr) {
            log.debug("gpu telemetry: {} lacks an NVML function; no GPUs reported", library);
            close();
            return;
        }
        if (const auto r = init(); r != nvml::success) {
            log.debug("gpu telemetry: nvmlInit failed: {}; no GPUs reported", describe(r));
            close();
            return;
        }
        initialised = true;
        log.debug("gpu telemetry: NVML loaded from {}", library);
    }

    void close() noexcept {
        if (initialised) shutdown();
        initialised = false;
        if (handle != nullptr) ::dlclose(handle);
        handle = nullptr;
    }

    void failed(std::string_view what, nvml::return_t r) {
        if (!query_failing) log.debug("gpu telemetry: {} failed: {}", what, describe(r));
        query_failing = true;
    }

    std::vector<gpu> sample() {
        std::vector<gpu> out;
        if (!initialised) return out;
        unsigned int n = 0;
        if (const auto r = count(&n); r != nvml::success) {
            failed("nvmlDeviceGetCount", r);
            return out;
        }
        bool all_answered = true;
        out.reserve(n);
        for (unsigned int i = 0; i < n; ++i) {
            nvml::device_t dev = nullptr;
            if (const auto r = device_at(i, &dev); r != nvml::success) {
                // A device NVML cannot open (lost, or not ours to see) is left out rather than reported blank.
                failed(fmt::format("nvmlDeviceGetHandleByIndex({})", i), r);
                all_answered = false;
                continue;
            }
            gpu g;
            std::array<char, nvml::name_buffer_size> text{};
            if (const auto r = name(dev, text.data(), text.size()); r == nvml::success) {
                g.model.assign(text.data(), ::strnlen(text.data(), text.size()));
            } else {
                failed(fmt::format("nvmlDeviceGetName({})", i), r);
                all_answered = false;
            }
            nvml::memory_t mem{};
            if (const auto r = memory(dev, &mem); r == nvml::success) {
                g.memory_bytes = mem.total;
                g.memory_used_bytes = std::min(mem.used, mem.total);
            } else {
                failed(fmt::format("nvmlDeviceGetMemoryInfo({})", i), r);
                all_answered = false;
            }
            nvml::utilization_t util{};
            if (const auto r = utilization(dev, &util); r == nvml::success) {
                g.utilisation_percent = std::min(util.gpu, 100u);
            } else {
                failed(fmt::format("nvmlDeviceGetUtilizationRates({})", i), r);
                all_answered = false;
            }
            out.push_back(std::move(g));
        }
        if (all_answered) query_failing = false;
        return out;
    }
};

nvml_provider::nvml_provider(std::string library, logger log) : impl_(std::make_unique<impl>()) {
    impl_->library = std::move(library);
    impl_->log = std::move(log);
    impl_->open();
}

nvml_provider::~nvml_provider() { impl_->close(); }

bool nvml_provider::available() const noexcept { return impl_->initialised; }

std::vector<gpu> nvml_provider::sample() { return impl_->sample(); }

detailed_result<void> gpu_telemetry_config::validate() const {
    auto bad = [](std::string what) { return error{errc::config_invalid_value, std::move(what)}; };
    if (!enabled) return {};
    if (nvml_library.empty()) return bad("gpu_telemetry.nvml_library: must not be empty");
    if (interval <= duration::zero()) return bad("gpu_telemetry.interval: must be positive");
    if (utilisation_threshold > 100)
        return bad(fmt::format("gpu_telemetry.utilisation_threshold: {} is more than 100 percentage points",
                               utilisation_threshold));
    if (!(memory_threshold >= 0 && memory_threshold <= 1))
        return bad(fmt::format("gpu_telemetry.memory_threshold: {} is not a fraction between 0 and 1", memory_threshold));
    return {};
}

bool significant_change(const std::vector<gpu>& published, const std::vector<gpu>& now,
                        const gpu_telemetry_config& cfg) noexcept {
    if (published.size() != now.size()) return true;
    for (std::size_t i = 0; i < now.size(); ++i) {
        const auto& was = published[i];
        const auto& is = now[i];
        if (was.model != is.model || was.memory_bytes != is.memory_bytes) return true;
        const auto util_moved = is.utilisation_percent > was.utilisation_percent
                                    ? is.utilisation_percent - was.utilisation_percent
                                    : was.utilisation_percent - is.utilisation_percent;
        if (util_moved > 0 && util_moved >= cfg.utilisation_threshold) return true;
        const auto mem_moved = is.memory_used_bytes > was.memory_used_bytes ? is.memory_used_bytes - was.memory_used_bytes
                                                                            : was.memory_used_bytes - is.memory_used_bytes;
        if (mem_moved > 0 && static_cast<double>(mem_moved) >= cfg.memory_threshold * static_cast<double>(is.memory_bytes))
            return true;
    }
    return false;
}

metadata with_gpus(metadata host, const std::vector<gpu>& gpus) {
    if (gpus.empty()) return host;
    host.capacity.gpus = gpus;
    host.available.gpus = gpus;
    for (auto& g : host.available.gpus) g.memory_bytes -= std::min(g.memory_used_bytes, g.memory_bytes);
    return host;
}

} // namespace swarm::inline v0::membership
