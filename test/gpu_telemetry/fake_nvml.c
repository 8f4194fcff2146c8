/* Test double for libnvidia-ml.so.1: exports the NVML functions swarm's nvml_provider resolves, with scripted
 * values, so the provider and the agent can be tested where no NVIDIA driver exists. Two GPUs. Setting
 * SWARM_FAKE_NVML_INIT_FAIL (to anything but "0") makes nvmlInit_v2 fail as it does without a driver.
 * The fake_nvml_* functions let a test change the figures and see whether NVML was shut down. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_SUCCESS 0
#define FAKE_ERROR_INVALID_ARGUMENT 2
#define FAKE_ERROR_INSUFFICIENT_SIZE 7
#define FAKE_ERROR_DRIVER_NOT_LOADED 9
#define FAKE_ERROR_UNINITIALIZED 1
#define FAKE_DEVICES 2u

struct fake_device {
    const char* name;
    unsigned long long total;
    atomic_ullong used;
    atomic_uint utilisation;
};

struct fake_memory {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
};

struct fake_utilization {
    unsigned int gpu;
    unsigned int memory;
};

static struct fake_device devices[FAKE_DEVICES] = {
    {"Swarm Fake GPU 80GB", 80ull << 30, 1ull << 30, 25},
    {"Swarm Fake GPU 24GB", 24ull << 30, 0, 0},
};

static atomic_int live_inits = 0;

static int initialised(void) { return atomic_load(&live_inits) > 0; }

int nvmlInit_v2(void) {
    const char* fail = getenv("SWARM_FAKE_NVML_INIT_FAIL");
    if (fail != NULL && *fail != '\0' && strcmp(fail, "0") != 0) return FAKE_ERROR_DRIVER_NOT_LOADED;
    atomic_fetch_add(&live_inits, 1);
    return FAKE_SUCCESS;
}

int nvmlShutdown(void) {
    if (!initialised()) return FAKE_ERROR_UNINITIALIZED;
    atomic_fetch_sub(&live_inits, 1);
    return FAKE_SUCCESS;
}

const char* nvmlErrorString(int result) {
    switch (result) {
    case FAKE_SUCCESS: return "Success";
    case FAKE_ERROR_UNINITIALIZED: return "Uninitialized";
    case FAKE_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case FAKE_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case FAKE_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}

int nvmlDeviceGetCount_v2(unsigned int* count) {
    if (!initialised()) return FAKE_ERROR_UNINITIALIZED;
    if (count == NULL) return FAKE_ERROR_INVALID_ARGUMENT;
    *count = FAKE_DEVICES;
    return FAKE_SUCCESS;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, struct fake_device** device) {
    if (!initialised()) return FAKE_ERROR_UNINITIALIZED;
    if (index >= FAKE_DEVICES || device == NULL) return FAKE_ERROR_INVALID_ARGUMENT;
    *device = &devices[index];
    return FAKE_SUCCESS;
}

int nvmlDeviceGetName(struct fake_device* device, char* name, unsigned int length) {
    if (!initialised()) return FAKE_ERROR_UNINITIALIZED;
    if (device == NULL || name == NULL) return FAKE_ERROR_INVALID_ARGUMENT;
    size_t n = strlen(device->name);
    if (n + 1 > length) return FAKE_ERROR_INSUFFICIENT_SIZE;
    memcpy(name, device->name, n + 1);
    return FAKE_SUCCESS;
}

int nvmlDeviceGetMemoryInfo(struct fake_device* device, struct fake_memory* memory) {
    if (!initialised()) return FAKE_ERROR_UNINITIALIZED;
    if (device == NULL || memory == NULL) return FAKE_ERROR_INVALID_ARGUMENT;
    memory->total = device->total;
    memory->used = atomic_load(&device->used);
    memory->free = memory->total - memory->used;
    return FAKE_SUCCESS;
}

int nvmlDeviceGetUtilizationRates(struct fake_device* device, struct fake_utilization* utilization) {
    if (!initialised()) return FAKE_ERROR_UNINITIALIZED;
    if (device == NULL || utilization == NULL) return FAKE_ERROR_INVALID_ARGUMENT;
    utilization->gpu = atomic_load(&device->utilisation);
    utilization->memory = 0;
    return FAKE_SUCCESS;
}

/* Test controls. */
void fake_nvml_set(unsigned int index, unsigned int utilisation, unsigned long long used) {
    if (index >= FAKE_DEVICES) return;
    atomic_store(&devices[index].utilisation, utilisation);
    atomic_store(&devices[index].used, used);
}

int fake_nvml_live_inits(void) { return atomic_load(&live_inits); }
