/* Part of fake_nvml.c (included once): the shared call counter. */
/* ------------------------------------------------------------------ */
/* Call counter shared through a file (mmap), for tests and benchmarks  */
/* ------------------------------------------------------------------ */

/*
 * Layout: 128 slots of 64 bytes. Slot 0 is the total ("*total*"), slots 1.. are one per function:
 * 56 bytes of NUL-padded name, then a little-endian uint64 count. Slots 112..127 record the Linux
 * thread ids that made calls: 8 bytes tid (0 = free), 56 bytes unused.
 */
#define COUNTER_SLOTS 128
#define COUNTER_SLOT_BYTES 64
#define COUNTER_NAME_BYTES 56
#define COUNTER_TID_FIRST 112
#define COUNTER_FILE_BYTES (COUNTER_SLOTS * COUNTER_SLOT_BYTES)

static unsigned char *g_counter;
static char g_counter_path[4096];

static void counter_unmap(void) {
    if (g_counter) munmap(g_counter, COUNTER_FILE_BYTES);
    g_counter = NULL;
    g_counter_path[0] = 0;
}

static void counter_map(const char *path) {
    if (g_counter && strcmp(path, g_counter_path) == 0) return;
    counter_unmap();
    if (!path[0]) return;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "fake-nvml: cannot open counter %s: %s\n", path, strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size < COUNTER_FILE_BYTES) {
        if (ftruncate(fd, COUNTER_FILE_BYTES) != 0) {
            close(fd);
            return;
        }
    }
    void *map = mmap(NULL, COUNTER_FILE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return;
    g_counter = map;
    snprintf(g_counter_path, sizeof g_counter_path, "%s", path);
    if (!g_counter[0]) strcpy((char *)g_counter, "*total*");
}

static void counter_add(int slot, const char *name) {
    unsigned char *base = g_counter;
    if (!base || slot <= 0 || slot >= COUNTER_TID_FIRST) return;
    unsigned char *entry = base + slot * COUNTER_SLOT_BYTES;
    if (!entry[0]) strncpy((char *)entry, name, COUNTER_NAME_BYTES - 1);
    __atomic_fetch_add((uint64_t *)(entry + COUNTER_NAME_BYTES), 1, __ATOMIC_RELAXED);
    __atomic_fetch_add((uint64_t *)(base + COUNTER_NAME_BYTES), 1, __ATOMIC_RELAXED);
    uint64_t tid = (uint64_t)syscall(SYS_gettid);
    for (int s = COUNTER_TID_FIRST; s < COUNTER_SLOTS; s++) {
        uint64_t *cell = (uint64_t *)(base + s * COUNTER_SLOT_BYTES);
        uint64_t seen = __atomic_load_n(cell, __ATOMIC_RELAXED);
        if (seen == tid) return;
        if (seen == 0) {
            uint64_t expected = 0;
            if (__atomic_compare_exchange_n(cell, &expected, tid, 0, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED))
                return;
            if (expected == tid) return;
        }
    }
}
