/*
 * A fake libnvidia-ml.so.1 for tests and benchmarks.
 *
 * The real pynvml (nvidia-ml-py) loads this library by its soname and calls it exactly as it
 * calls NVIDIA's library, so the code under test runs unchanged. The GPUs it reports come from
 * a JSON file named by $FAKE_NVML_CONFIG (format documented in tests/fakes/nvml.py); the file is
 * read again whenever its inode, size or mtime changes, so a test can change GPU state while a
 * process runs. Handles stay valid across re-reads (they point into fixed tables).
 *
 * Options in the config: "fail_init" (make nvmlInit fail), "call_delay_us" + "call_delay_mode"
 * (make every call take time, like a real driver ioctl), "counter_path" (a shared file where
 * every call is counted per function and the calling threads' ids are recorded).
 *
 * Parts: counter.h (shared call counter), json.h (config parser), functions.h (counted calls).
 * Build: gcc -shared -fPIC -O2 -Wl,-soname,libnvidia-ml.so.1 -o libnvidia-ml.so.1 fake_nvml.c -lpthread
 * Define OMIT_<function name> to leave a function out (pynvml then raises FunctionNotFound).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;
typedef struct fake_device *nvmlDevice_t;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_TIMEOUT = 10,
    NVML_ERROR_LIBRARY_NOT_FOUND = 12,
    NVML_ERROR_FUNCTION_NOT_FOUND = 13,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_RESET_REQUIRED = 16,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

#define NVML_MEMORY_V2 0x02000028u
#define NVML_TEMPERATURE_V1 0x0100000Cu
#define FAKE_MAX_MIG_PER_GPU 7

/* ------------------------------------------------------------------ */
/* Device tables                                                        */
/* ------------------------------------------------------------------ */

#define MAX_DEVICES 64
#define MAX_MIG 7
#define MAX_PROCS 64
#define TEXT 96

enum {
    UNS_UTILIZATION = 1 << 0,
    UNS_MEMORY = 1 << 1,
    UNS_TEMPERATURE = 1 << 2,
    UNS_POWER_USAGE = 1 << 3,
    UNS_POWER_LIMIT = 1 << 4,
    UNS_PROCESSES = 1 << 5,
    UNS_GRAPHICS_PROCESSES = 1 << 6,
    UNS_MIG_MODE = 1 << 7,
    UNS_PCIE = 1 << 8,
    UNS_MINOR_NUMBER = 1 << 9,
};

static const struct {
    const char *name;
    unsigned bit;
} UNSUPPORTED_NAMES[] = {
    {"utilization", UNS_UTILIZATION},
    {"memory", UNS_MEMORY},
    {"temperature", UNS_TEMPERATURE},
    {"power_usage", UNS_POWER_USAGE},
    {"power_limit", UNS_POWER_LIMIT},
    {"processes", UNS_PROCESSES},
    {"graphics_processes", UNS_GRAPHICS_PROCESSES},
    {"mig_mode", UNS_MIG_MODE},
    {"pcie", UNS_PCIE},
    {"minor_number", UNS_MINOR_NUMBER},
};

typedef struct {
    unsigned pid;
    unsigned long long used_memory;
} fake_process;

typedef struct {
    unsigned pid;
    unsigned long long usedGpuMemory;
    unsigned gpuInstanceId;
    unsigned computeInstanceId;
} nvmlProcessInfo_v3_t;

typedef struct fake_device {
    int present;
    int is_mig;
    int index;     /* NVML index of the GPU (of the parent for a MIG instance) */
    int mig_index; /* slot under the parent, MIG instances only */
    struct fake_device *parent;
    char name[TEXT];
    char uuid[TEXT];
    unsigned long long memory_total, memory_used, memory_reserved;
    unsigned utilization_gpu, utilization_memory;
    unsigned temperature;
    unsigned power_usage_mw, power_limit_mw;
    int lost;        /* every query answers NVML_ERROR_GPU_IS_LOST */
    int handle_lost; /* even nvmlDeviceGetHandleByIndex fails */
    unsigned unsupported;
    int process_count;
    fake_process processes[MAX_PROCS];
    int graphics_count;
    fake_process graphics[MAX_PROCS];
    int mig_enabled;
    int mig_count;
    unsigned pcie_generation, pcie_width, pcie_tx_kb, pcie_rx_kb;
    unsigned minor_number; /* N of /dev/nvidiaN */
} fake_device;

static fake_device g_devices[MAX_DEVICES];
static fake_device g_migs[MAX_DEVICES][MAX_MIG];
static int g_device_count;
static char g_driver_version[80] = "0.0";
static int g_cuda_version;
static int g_fail_init;
static long g_call_delay_us;
static int g_call_delay_spin;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_init_count;
static int g_config_loaded;
static struct stat g_config_stat;
static char g_config_path[4096];

#include "counter.h"
#include "json.h"

/* ------------------------------------------------------------------ */
/* Config -> device tables                                              */
/* ------------------------------------------------------------------ */

static unsigned parse_unsupported(const json *dev) {
    json *list = json_get(dev, "unsupported");
    unsigned mask = 0;
    if (!list || list->type != J_ARRAY) return 0;
    for (int i = 0; i < list->count; i++) {
        json *item = list->items[i];
        int known = 0;
        if (item->type != J_STRING) continue;
        for (size_t k = 0; k < sizeof UNSUPPORTED_NAMES / sizeof UNSUPPORTED_NAMES[0]; k++) {
            if (strcmp(item->string, UNSUPPORTED_NAMES[k].name) == 0) {
                mask |= UNSUPPORTED_NAMES[k].bit;
                known = 1;
            }
        }
        if (!known) fprintf(stderr, "fake-nvml: unknown unsupported field '%s'\n", item->string);
    }
    return mask;
}

static int parse_processes(const json *dev, const char *key, fake_process *out) {
    json *list = json_get(dev, key);
    int n = 0;
    if (!list || list->type != J_ARRAY) return 0;
    for (int i = 0; i < list->count && n < MAX_PROCS; i++) {
        json *p = list->items[i];
        if (p->type != J_OBJECT) continue;
        out[n].pid = (unsigned)get_number(p, "pid", 0);
        json *used = json_get(p, "used_memory");
        /* null used_memory = NVML_VALUE_NOT_AVAILABLE, as on Windows WDDM / some containers */
        out[n].used_memory = used && used->type == J_NUMBER ? (unsigned long long)used->number
                                                            : 0xFFFFFFFFFFFFFFFFull;
        n++;
    }
    return n;
}

static void fill_device(fake_device *d, const json *src, int index) {
    char text[TEXT];
    memset(d, 0, sizeof *d);
    d->present = 1;
    d->index = index;
    snprintf(text, sizeof text, "NVIDIA Fake GPU %d", index);
    get_text(src, "name", d->name, sizeof d->name, text);
    snprintf(text, sizeof text, "GPU-00000000-0000-0000-0000-%012d", index);
    get_text(src, "uuid", d->uuid, sizeof d->uuid, text);
    d->memory_total = (unsigned long long)get_number(src, "memory_total", 80.0 * (1ull << 30));
    d->memory_used = (unsigned long long)get_number(src, "memory_used", 0);
    d->memory_reserved = (unsigned long long)get_number(src, "memory_reserved", 0);
    d->utilization_gpu = (unsigned)get_number(src, "utilization_gpu", 0);
    d->utilization_memory = (unsigned)get_number(src, "utilization_memory", 0);
    d->temperature = (unsigned)get_number(src, "temperature", 40);
    d->power_usage_mw = (unsigned)(get_number(src, "power_usage", 60.0) * 1000.0 + 0.5);
    d->power_limit_mw = (unsigned)(get_number(src, "power_limit", 300.0) * 1000.0 + 0.5);
    d->lost = get_bool(src, "lost");
    d->handle_lost = get_bool(src, "handle_lost");
    d->unsupported = parse_unsupported(src);
    d->process_count = parse_processes(src, "processes", d->processes);
    d->graphics_count = parse_processes(src, "graphics_processes", d->graphics);
    d->pcie_generation = (unsigned)get_number(src, "pcie_generation", 4);
    d->pcie_width = (unsigned)get_number(src, "pcie_width", 16);
    d->pcie_tx_kb = (unsigned)get_number(src, "pcie_tx_kb", 1000);
    d->pcie_rx_kb = (unsigned)get_number(src, "pcie_rx_kb", 2000);
    d->minor_number = (unsigned)get_number(src, "minor_number", index);
}

static void apply_config(const json *root) {
    json *devices = json_get(root, "devices");
    get_text(root, "driver_version", g_driver_version, sizeof g_driver_version, "550.54.15");
    g_cuda_version = (int)get_number(root, "cuda_version", 12040);
    g_call_delay_us = (long)get_number(root, "call_delay_us", 0);
    json *mode = json_get(root, "call_delay_mode");
    g_call_delay_spin = mode && mode->type == J_STRING && strcmp(mode->string, "spin") == 0;

    json *fail = json_get(root, "fail_init");
    g_fail_init = NVML_SUCCESS;
    if (fail && fail->type == J_STRING) {
        if (strcmp(fail->string, "no_permission") == 0) g_fail_init = NVML_ERROR_NO_PERMISSION;
        else if (strcmp(fail->string, "unknown") == 0) g_fail_init = NVML_ERROR_UNKNOWN;
        else g_fail_init = NVML_ERROR_DRIVER_NOT_LOADED;
    } else if (fail && fail->type == J_NUMBER) {
        g_fail_init = (int)fail->number;
    } else if (fail && fail->type == J_BOOL && fail->boolean) {
        g_fail_init = NVML_ERROR_DRIVER_NOT_LOADED;
    }

    char counter_path[4096];
    get_text(root, "counter_path", counter_path, sizeof counter_path, "");
    counter_map(counter_path);

    int count = 0;
    for (int i = 0; devices && devices->type == J_ARRAY && i < devices->count; i++) {
        if (count >= MAX_DEVICES) break;
        json *src = devices->items[i];
        if (src->type != J_OBJECT) continue;
        fake_device *d = &g_devices[count];
        fill_device(d, src, count);
        json *mig = json_get(src, "mig");
        d->mig_enabled = mig && mig->type == J_ARRAY;
        d->mig_count = 0;
        for (int m = 0; d->mig_enabled && m < mig->count && m < MAX_MIG; m++) {
            json *msrc = mig->items[m];
            if (msrc->type != J_OBJECT) continue;
            fake_device *md = &g_migs[count][d->mig_count];
            fill_device(md, msrc, count);
            char text[TEXT];
            snprintf(text, sizeof text, "%.80s MIG %d", d->name, d->mig_count);
            get_text(msrc, "name", md->name, sizeof md->name, text);
            snprintf(text, sizeof text, "MIG-%08d-0000-0000-0000-%012d", count, d->mig_count);
            get_text(msrc, "uuid", md->uuid, sizeof md->uuid, text);
            md->is_mig = 1;
            md->mig_index = d->mig_count;
            md->parent = d;
            /* Like real MIG devices: no utilization, temperature or power per instance. */
            md->unsupported |= UNS_UTILIZATION | UNS_TEMPERATURE | UNS_POWER_USAGE |
                               UNS_POWER_LIMIT | UNS_MIG_MODE | UNS_PCIE | UNS_MINOR_NUMBER;
            md->lost = md->lost || d->lost;
            d->mig_count++;
        }
        for (int m = d->mig_count; m < MAX_MIG; m++) g_migs[count][m].present = 0;
        if (d->mig_enabled) d->unsupported |= UNS_UTILIZATION;
        count++;
    }
    for (int i = count; i < MAX_DEVICES; i++) {
        g_devices[i].present = 0;
        for (int m = 0; m < MAX_MIG; m++) g_migs[i][m].present = 0;
    }
    g_device_count = count;
}

/* Re-reads the config when the file changed (called with g_lock held). Returns 0 on failure. */
static int reload_config(void) {
    const char *path = getenv("FAKE_NVML_CONFIG");
    if (!path || !path[0]) {
        /* No config (or it was unset since): a machine with the driver but no GPU. */
        if (!g_config_loaded || g_config_path[0]) {
            json empty = {.type = J_OBJECT};
            apply_config(&empty);
            g_config_path[0] = 0;
            g_config_loaded = 1;
        }
        return 1;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fake-nvml: cannot read %s: %s\n", path, strerror(errno));
        return g_config_loaded;
    }
    if (g_config_loaded && strcmp(path, g_config_path) == 0 && st.st_ino == g_config_stat.st_ino &&
        st.st_size == g_config_stat.st_size &&
        st.st_mtim.tv_sec == g_config_stat.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == g_config_stat.st_mtim.tv_nsec)
        return 1;
    FILE *f = fopen(path, "rb");
    if (!f) return g_config_loaded;
    char *text = malloc((size_t)st.st_size + 1);
    size_t n = text ? fread(text, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!text) return g_config_loaded;
    text[n] = 0;
    json_cursor c = {.p = text, .end = text + n};
    json *root = parse_value(&c);
    skip_space(&c);
    if (root && c.p != c.end) c.error = "trailing characters";
    if (!root || c.error || root->type != J_OBJECT) {
        fprintf(stderr, "fake-nvml: bad config %s at byte %ld: %s (keeping the last good one)\n",
                path, (long)(c.p - text), c.error ? c.error : "not an object");
        json_free(root);
        free(text);
        return g_config_loaded;
    }
    apply_config(root);
    json_free(root);
    free(text);
    g_config_stat = st;
    snprintf(g_config_path, sizeof g_config_path, "%s", path);
    g_config_loaded = 1;
    return 1;
}

/* ------------------------------------------------------------------ */
/* Call bookkeeping                                                     */
/* ------------------------------------------------------------------ */

enum {
#define FN(name) SLOT_##name,
    SLOT_TOTAL = 0,
#include "functions.h"
#undef FN
    SLOT_END
};

static void simulate_latency(long delay_us) {
    if (delay_us <= 0) return;
    struct timespec start, now;
    if (g_call_delay_spin) {
        clock_gettime(CLOCK_MONOTONIC, &start);
        do {
            clock_gettime(CLOCK_MONOTONIC, &now);
        } while ((now.tv_sec - start.tv_sec) * 1000000L + (now.tv_nsec - start.tv_nsec) / 1000L <
                 delay_us);
    } else {
        struct timespec wait = {.tv_sec = delay_us / 1000000L, .tv_nsec = (delay_us % 1000000L) * 1000L};
        while (nanosleep(&wait, &wait) != 0 && errno == EINTR) {
        }
    }
}

/* Every entry point starts here: count, simulate the driver's latency, lock, refresh config. */
static void enter(int slot, const char *name) {
    pthread_mutex_lock(&g_lock);
    reload_config();
    counter_add(slot, name);
    long delay = g_call_delay_us;
    pthread_mutex_unlock(&g_lock);
    simulate_latency(delay);
    pthread_mutex_lock(&g_lock);
}

static nvmlReturn_t leave(nvmlReturn_t ret) {
    pthread_mutex_unlock(&g_lock);
    return ret;
}

#define ENTER(name) enter(SLOT_##name, #name)

static int owns(const fake_device *d) {
    const fake_device *first = &g_devices[0], *last = &g_devices[MAX_DEVICES];
    const fake_device *mfirst = &g_migs[0][0], *mlast = &g_migs[MAX_DEVICES - 1][MAX_MIG];
    return (d >= first && d < last) || (d >= mfirst && d < mlast);
}

/* Validates a handle and the device's state; returns NVML_SUCCESS when the query may proceed. */
static nvmlReturn_t check_device(nvmlDevice_t d, unsigned needs) {
    if (!g_init_count) return NVML_ERROR_UNINITIALIZED;
    if (!d || !owns(d)) return NVML_ERROR_INVALID_ARGUMENT;
    if (!d->present || d->lost) return NVML_ERROR_GPU_IS_LOST;
    if (d->unsupported & needs) return NVML_ERROR_NOT_SUPPORTED;
    return NVML_SUCCESS;
}

#define CHECK(d, needs)                                                                            \
    do {                                                                                           \
        nvmlReturn_t check_ret = check_device((d), (needs));                                       \
        if (check_ret != NVML_SUCCESS) return leave(check_ret);                                    \
    } while (0)

#define NEED_POINTER(p)                                                                            \
    do {                                                                                           \
        if (!(p)) return leave(NVML_ERROR_INVALID_ARGUMENT);                                       \
    } while (0)

/* Defines the NVML query `fn`, which answers one unsigned field of the device: the shape most
 * device queries share (a NOT_SUPPORTED bit in `needs`, a null pointer refused). */
#define UNSIGNED_DEVICE_QUERY(fn, needs, member)                                                   \
    EXPORT nvmlReturn_t fn(nvmlDevice_t device, unsigned *value) {                                 \
        ENTER(fn);                                                                                 \
        CHECK(device, needs);                                                                      \
        NEED_POINTER(value);                                                                       \
        *value = device->member;                                                                   \
        return leave(NVML_SUCCESS);                                                                \
    }

static nvmlReturn_t copy_text(char *out, unsigned length, const char *text) {
    if (!out) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(text) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, text);
    return NVML_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Exported NVML API                                                    */
/* ------------------------------------------------------------------ */

static nvmlReturn_t do_init(void) {
    if (g_fail_init != NVML_SUCCESS) return leave(g_fail_init);
    g_init_count++;
    return leave(NVML_SUCCESS);
}

#ifndef OMIT_nvmlInitWithFlags
EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned flags) {
    (void)flags;
    ENTER(nvmlInitWithFlags);
    return do_init();
}
#endif

#ifndef OMIT_nvmlInit_v2
EXPORT nvmlReturn_t nvmlInit_v2(void) {
    ENTER(nvmlInit_v2);
    return do_init();
}
#endif

#ifndef OMIT_nvmlInit
EXPORT nvmlReturn_t nvmlInit(void) {
    ENTER(nvmlInit);
    return do_init();
}
#endif

#ifndef OMIT_nvmlShutdown
EXPORT nvmlReturn_t nvmlShutdown(void) {
    ENTER(nvmlShutdown);
    if (!g_init_count) return leave(NVML_ERROR_UNINITIALIZED);
    g_init_count--;
    return leave(NVML_SUCCESS);
}
#endif

EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
    case NVML_ERROR_NOT_FOUND: return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_TIMEOUT: return "Timeout";
    case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    case NVML_ERROR_RESET_REQUIRED: return "GPU requires restart";
    case NVML_ERROR_ARGUMENT_VERSION_MISMATCH: return "Argument version mismatch";
    default: return "Unknown Error";
    }
}

#ifndef OMIT_nvmlSystemGetDriverVersion
EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned length) {
    ENTER(nvmlSystemGetDriverVersion);
    if (!g_init_count) return leave(NVML_ERROR_UNINITIALIZED);
    return leave(copy_text(version, length, g_driver_version));
}
#endif

#ifndef OMIT_nvmlSystemGetNVMLVersion
EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned length) {
    ENTER(nvmlSystemGetNVMLVersion);
    if (!g_init_count) return leave(NVML_ERROR_UNINITIALIZED);
    char text[96];
    snprintf(text, sizeof text, "%d.%s", g_cuda_version / 1000, g_driver_version);
    return leave(copy_text(version, length, text));
}
#endif

static nvmlReturn_t cuda_version(int *out) {
    if (!g_init_count) return leave(NVML_ERROR_UNINITIALIZED);
    NEED_POINTER(out);
    *out = g_cuda_version;
    return leave(NVML_SUCCESS);
}

#ifndef OMIT_nvmlSystemGetCudaDriverVersion
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *version) {
    ENTER(nvmlSystemGetCudaDriverVersion);
    return cuda_version(version);
}
#endif

#ifndef OMIT_nvmlSystemGetCudaDriverVersion_v2
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version) {
    ENTER(nvmlSystemGetCudaDriverVersion_v2);
    return cuda_version(version);
}
#endif

static nvmlReturn_t device_count(unsigned *count) {
    if (!g_init_count) return leave(NVML_ERROR_UNINITIALIZED);
    NEED_POINTER(count);
    *count = (unsigned)g_device_count;
    return leave(NVML_SUCCESS);
}

#ifndef OMIT_nvmlDeviceGetCount_v2
EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned *count) {
    ENTER(nvmlDeviceGetCount_v2);
    return device_count(count);
}
#endif

#ifndef OMIT_nvmlDeviceGetCount
EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned *count) {
    ENTER(nvmlDeviceGetCount);
    return device_count(count);
}
#endif

static nvmlReturn_t handle_by_index(unsigned index, nvmlDevice_t *device) {
    if (!g_init_count) return leave(NVML_ERROR_UNINITIALIZED);
    NEED_POINTER(device);
    if (index >= (unsigned)g_device_count) return leave(NVML_ERROR_INVALID_ARGUMENT);
    if (g_devices[index].handle_lost) return leave(NVML_ERROR_GPU_IS_LOST);
    *device = &g_devices[index];
    return leave(NVML_SUCCESS);
}

#ifndef OMIT_nvmlDeviceGetHandleByIndex_v2
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *device) {
    ENTER(nvmlDeviceGetHandleByIndex_v2);
    return handle_by_index(index, device);
}
#endif

#ifndef OMIT_nvmlDeviceGetHandleByIndex
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned index, nvmlDevice_t *device) {
    ENTER(nvmlDeviceGetHandleByIndex);
    return handle_by_index(index, device);
}
#endif

#ifndef OMIT_nvmlDeviceGetHandleByUUID
EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *device) {
    ENTER(nvmlDeviceGetHandleByUUID);
    if (!g_init_count) return leave(NVML_ERROR_UNINITIALIZED);
    NEED_POINTER(uuid);
    NEED_POINTER(device);
    for (int i = 0; i < g_device_count; i++) {
        if (strcmp(g_devices[i].uuid, uuid) == 0) {
            *device = &g_devices[i];
            return leave(NVML_SUCCESS);
        }
        for (int m = 0; m < g_devices[i].mig_count; m++) {
            if (strcmp(g_migs[i][m].uuid, uuid) == 0) {
                *device = &g_migs[i][m];
                return leave(NVML_SUCCESS);
            }
        }
    }
    return leave(NVML_ERROR_NOT_FOUND);
}
#endif

#ifndef OMIT_nvmlDeviceGetIndex
EXPORT nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned *index) {
    ENTER(nvmlDeviceGetIndex);
    CHECK(device, 0);
    NEED_POINTER(index);
    if (device->is_mig) return leave(NVML_ERROR_INVALID_ARGUMENT);
    *index = (unsigned)device->index;
    return leave(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceGetName
EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned length) {
    ENTER(nvmlDeviceGetName);
    CHECK(device, 0);
    return leave(copy_text(name, length, device->name));
}
#endif

#ifndef OMIT_nvmlDeviceGetUUID
EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned length) {
    ENTER(nvmlDeviceGetUUID);
    CHECK(device, 0);
    return leave(copy_text(uuid, length, device->uuid));
}
#endif

typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
    unsigned version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

static unsigned long long memory_free(const fake_device *d) {
    unsigned long long taken = d->memory_used + d->memory_reserved;
    return taken >= d->memory_total ? 0 : d->memory_total - taken;
}

#ifndef OMIT_nvmlDeviceGetMemoryInfo
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    ENTER(nvmlDeviceGetMemoryInfo);
    CHECK(device, UNS_MEMORY);
    NEED_POINTER(memory);
    /* v1 counts reserved memory as used, as the real library does. */
    memory->total = device->memory_total;
    memory->used = device->memory_used + device->memory_reserved;
    memory->free = memory_free(device);
    return leave(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceGetMemoryInfo_v2
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    ENTER(nvmlDeviceGetMemoryInfo_v2);
    CHECK(device, UNS_MEMORY);
    NEED_POINTER(memory);
    if (memory->version != NVML_MEMORY_V2) return leave(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    memory->total = device->memory_total;
    memory->reserved = device->memory_reserved;
    memory->used = device->memory_used;
    memory->free = memory_free(device);
    return leave(NVML_SUCCESS);
}
#endif

typedef struct {
    unsigned gpu, memory;
} nvmlUtilization_t;

#ifndef OMIT_nvmlDeviceGetUtilizationRates
EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *util) {
    ENTER(nvmlDeviceGetUtilizationRates);
    CHECK(device, UNS_UTILIZATION);
    NEED_POINTER(util);
    util->gpu = device->utilization_gpu;
    util->memory = device->utilization_memory;
    return leave(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceGetTemperature
EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned *temp) {
    ENTER(nvmlDeviceGetTemperature);
    CHECK(device, UNS_TEMPERATURE);
    NEED_POINTER(temp);
    if (sensor != 0) return leave(NVML_ERROR_INVALID_ARGUMENT);
    *temp = device->temperature;
    return leave(NVML_SUCCESS);
}
#endif

typedef struct {
    unsigned version;
    int sensorType;
    int temperature;
} nvmlTemperature_v1_t;

#ifndef OMIT_nvmlDeviceGetTemperatureV
EXPORT nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t device, nvmlTemperature_v1_t *temp) {
    ENTER(nvmlDeviceGetTemperatureV);
    CHECK(device, UNS_TEMPERATURE);
    NEED_POINTER(temp);
    if (temp->version != NVML_TEMPERATURE_V1) return leave(NVML_ERROR_ARGUMENT_VERSION_MISMATCH);
    if (temp->sensorType != 0) return leave(NVML_ERROR_INVALID_ARGUMENT);
    temp->temperature = (int)device->temperature;
    return leave(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceGetPowerUsage
UNSIGNED_DEVICE_QUERY(nvmlDeviceGetPowerUsage, UNS_POWER_USAGE, power_usage_mw)
#endif

/* MIG instances answer NOT_SUPPORTED: their processes open their GPU's device file. */
#ifndef OMIT_nvmlDeviceGetMinorNumber
UNSIGNED_DEVICE_QUERY(nvmlDeviceGetMinorNumber, UNS_MINOR_NUMBER, minor_number)
#endif

#ifndef OMIT_nvmlDeviceGetEnforcedPowerLimit
UNSIGNED_DEVICE_QUERY(nvmlDeviceGetEnforcedPowerLimit, UNS_POWER_LIMIT, power_limit_mw)
#endif

#ifndef OMIT_nvmlDeviceGetPowerManagementLimit
UNSIGNED_DEVICE_QUERY(nvmlDeviceGetPowerManagementLimit, UNS_POWER_LIMIT, power_limit_mw)
#endif

/* The two-call protocol of the running-process queries: a size probe, then the copy. */
static nvmlReturn_t copy_processes(const fake_device *d, const fake_process *list, int n,
                                   unsigned *count, nvmlProcessInfo_v3_t *infos) {
    NEED_POINTER(count);
    if (!infos || *count < (unsigned)n) {
        *count = (unsigned)n;
        return leave(n == 0 ? NVML_SUCCESS : NVML_ERROR_INSUFFICIENT_SIZE);
    }
    for (int i = 0; i < n; i++) {
        infos[i].pid = list[i].pid;
        infos[i].usedGpuMemory = list[i].used_memory;
        infos[i].gpuInstanceId = d->is_mig ? (unsigned)d->mig_index + 1 : 0xFFFFFFFFu;
        infos[i].computeInstanceId = d->is_mig ? 0 : 0xFFFFFFFFu;
    }
    *count = (unsigned)n;
    return leave(NVML_SUCCESS);
}

/* A MIG-enabled GPU reports the processes of all its instances, like the real library. */
static int gather_processes(const fake_device *d, int graphics, fake_process *out) {
    int n = 0;
    const fake_process *own = graphics ? d->graphics : d->processes;
    int own_count = graphics ? d->graphics_count : d->process_count;
    for (int i = 0; i < own_count && n < MAX_PROCS; i++) out[n++] = own[i];
    if (!d->is_mig && d->mig_enabled) {
        int index = (int)(d - g_devices);
        for (int m = 0; m < d->mig_count; m++) {
            const fake_device *md = &g_migs[index][m];
            const fake_process *list = graphics ? md->graphics : md->processes;
            int count = graphics ? md->graphics_count : md->process_count;
            for (int i = 0; i < count && n < MAX_PROCS; i++) out[n++] = list[i];
        }
    }
    return n;
}

#ifndef OMIT_nvmlDeviceGetComputeRunningProcesses_v3
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned *count,
                                                           nvmlProcessInfo_v3_t *infos) {
    ENTER(nvmlDeviceGetComputeRunningProcesses_v3);
    CHECK(device, UNS_PROCESSES);
    fake_process all[MAX_PROCS];
    int n = gather_processes(device, 0, all);
    return copy_processes(device, all, n, count, infos);
}
#endif

#ifndef OMIT_nvmlDeviceGetGraphicsRunningProcesses_v3
EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t device, unsigned *count,
                                                            nvmlProcessInfo_v3_t *infos) {
    ENTER(nvmlDeviceGetGraphicsRunningProcesses_v3);
    CHECK(device, UNS_GRAPHICS_PROCESSES);
    fake_process all[MAX_PROCS];
    int n = gather_processes(device, 1, all);
    return copy_processes(device, all, n, count, infos);
}
#endif

#ifndef OMIT_nvmlDeviceGetMigMode
EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned *current, unsigned *pending) {
    ENTER(nvmlDeviceGetMigMode);
    CHECK(device, UNS_MIG_MODE);
    NEED_POINTER(current);
    NEED_POINTER(pending);
    *current = *pending = device->mig_enabled ? 1u : 0u;
    return leave(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceGetMaxMigDeviceCount
EXPORT nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t device, unsigned *count) {
    ENTER(nvmlDeviceGetMaxMigDeviceCount);
    CHECK(device, UNS_MIG_MODE);
    NEED_POINTER(count);
    if (device->is_mig) return leave(NVML_ERROR_INVALID_ARGUMENT);
    *count = device->mig_enabled ? FAKE_MAX_MIG_PER_GPU : 0u;
    return leave(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceGetMigDeviceHandleByIndex
EXPORT nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t device, unsigned index,
                                                       nvmlDevice_t *mig_device) {
    ENTER(nvmlDeviceGetMigDeviceHandleByIndex);
    CHECK(device, 0);
    NEED_POINTER(mig_device);
    if (device->is_mig || !device->mig_enabled || index >= FAKE_MAX_MIG_PER_GPU)
        return leave(NVML_ERROR_INVALID_ARGUMENT);
    /* Empty slots answer NOT_FOUND, as on a GPU with fewer instances than it could hold. */
    if (index >= (unsigned)device->mig_count) return leave(NVML_ERROR_NOT_FOUND);
    *mig_device = &g_migs[device - g_devices][index];
    return leave(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceGetDeviceHandleFromMigDeviceHandle
EXPORT nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvmlDevice_t mig_device,
                                                                nvmlDevice_t *device) {
    ENTER(nvmlDeviceGetDeviceHandleFromMigDeviceHandle);
    CHECK(mig_device, 0);
    NEED_POINTER(device);
    if (!mig_device->is_mig) return leave(NVML_ERROR_INVALID_ARGUMENT);
    *device = mig_device->parent;
    return leave(NVML_SUCCESS);
}
#endif

#ifndef OMIT_nvmlDeviceIsMigDeviceHandle
EXPORT nvmlReturn_t nvmlDeviceIsMigDeviceHandle(nvmlDevice_t device, unsigned *is_mig) {
    ENTER(nvmlDeviceIsMigDeviceHandle);
    CHECK(device, 0);
    NEED_POINTER(is_mig);
    *is_mig = device->is_mig ? 1u : 0u;
    return leave(NVML_SUCCESS);
}
#endif

/* What jupyterlab-nvdashboard queries (used by benchmarks/gpu_sampler.py as the baseline). */

#ifndef OMIT_nvmlDeviceGetNvLinkVersion
EXPORT nvmlReturn_t nvmlDeviceGetNvLinkVersion(nvmlDevice_t device, unsigned link, unsigned *version) {
    (void)link;
    (void)version;
    ENTER(nvmlDeviceGetNvLinkVersion);
    CHECK(device, 0);
    return leave(NVML_ERROR_NOT_SUPPORTED);
}
#endif

#ifndef OMIT_nvmlDeviceGetMaxPcieLinkGeneration
UNSIGNED_DEVICE_QUERY(nvmlDeviceGetMaxPcieLinkGeneration, UNS_PCIE, pcie_generation)
#endif

#ifndef OMIT_nvmlDeviceGetMaxPcieLinkWidth
UNSIGNED_DEVICE_QUERY(nvmlDeviceGetMaxPcieLinkWidth, UNS_PCIE, pcie_width)
#endif

#ifndef OMIT_nvmlDeviceGetPcieThroughput
EXPORT nvmlReturn_t nvmlDeviceGetPcieThroughput(nvmlDevice_t device, int counter, unsigned *value) {
    ENTER(nvmlDeviceGetPcieThroughput);
    CHECK(device, UNS_PCIE);
    NEED_POINTER(value);
    if (counter == 0) *value = device->pcie_tx_kb;
    else if (counter == 1) *value = device->pcie_rx_kb;
    else return leave(NVML_ERROR_INVALID_ARGUMENT);
    return leave(NVML_SUCCESS);
}
#endif
