/* ring_map.c: names, the control-block header, and tally's side of mapping a
 * ring (ring.md "Mapping", "Attaching", "Re-checking the name").
 *
 * Attaching is a non-blocking state machine driven with the caller's clock,
 * so the hot loop can keep beating while it waits and tests can run it on a
 * virtual clock:
 *   OPENING: open the name; once fstat shows >= 4096 bytes map [0, 4096);
 *            read the header until its checksum is right;
 *   SIZING:  wait until fstat shows >= 4096 + capacity, then map it all;
 *   READY.
 * A header that stays wrong for 1 s from the first successful open is
 * refused with the first reason that explains it.
 */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"

static const char *const err_names[TL_RING_ERR_COUNT] = {
    [TL_RING_OK] = "ok",
    [TL_RING_PENDING] = "pending",
    [TL_RING_ERR_NAME] = "bad_name",
    [TL_RING_ERR_CAPACITY] = "bad_capacity",
    [TL_RING_ERR_NOT_FOUND] = "not_found",
    [TL_RING_ERR_EXISTS] = "exists",
    [TL_RING_ERR_SYS] = "sys_error",
    [TL_RING_ERR_TOO_SMALL] = "too_small",
    [TL_RING_ERR_BAD_MAGIC] = "bad_magic",
    [TL_RING_ERR_BAD_VERSION] = "bad_version",
    [TL_RING_ERR_NOT_A_RING] = "not_a_ring",
    [TL_RING_ERR_HEADER_CHECKSUM] = "bad_header_checksum",
    [TL_RING_ERR_NO_SLOT] = "no_slot",
    [TL_RING_ERR_BAD_MODE] = "bad_mode",
};

const char *tl_ring_err_name(enum tl_ring_err e) {
    return (unsigned)e < TL_RING_ERR_COUNT ? err_names[e] : "?";
}

uint64_t tl_ring_now_mono_ns(void) {
    struct timespec ts;
    int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
    TL_ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool tl_ring_capacity_valid(uint64_t capacity) {
    return capacity >= TL_RING_MIN_CAPACITY && capacity <= TL_RING_MAX_CAPACITY &&
           (capacity & (capacity - 1)) == 0;
}

enum tl_ring_err tl_ring_resolve_name(const char *name, char *out, size_t out_len, bool *is_shm) {
    if (name == NULL || name[0] == '\0')
        return TL_RING_ERR_NAME;
    size_t n = strnlen(name, TL_RING_PATH_MAX);
    if (n >= TL_RING_PATH_MAX)
        return TL_RING_ERR_NAME;
    if (strchr(name, '/') != NULL) {
        if (n + 1 > out_len)
            return TL_RING_ERR_NAME;
        memcpy(out, name, n + 1);
        *is_shm = false;
        return TL_RING_OK;
    }
    if (n > TL_RING_NAME_MAX || n + sizeof "/tally." > out_len)
        return TL_RING_ERR_NAME;
    memcpy(out, "/tally.", 7);
    memcpy(out + 7, name, n + 1);
    *is_shm = true;
    return TL_RING_OK;
}

int tl_ring_obj_open(const char *path, bool is_shm, int flags, unsigned mode) {
    for (int tries = 0; tries < 100; tries++) {
        int fd = is_shm ? shm_open(path, flags | O_CLOEXEC, (mode_t)mode)
                        : open(path, flags | O_CLOEXEC, (mode_t)mode);
        if (fd >= 0 || errno != EINTR)
            return fd;
    }
    return -1;
}

int tl_ring_obj_unlink(const char *path, bool is_shm) {
    return is_shm ? shm_unlink(path) : unlink(path);
}

uint64_t tl_ring_header_checksum(const tl_ring_header *h) {
    return tl_xxh3(h, TL_RING_HEADER_CHECKED_BYTES);
}

void tl_ring_header_load(const tl_ring_ctl *ctl, tl_ring_header *out) {
    uint64_t w[8];
    /* Acquire on header_checksum pairs with the producer's release store of
     * it, which it makes last: if this load returns the producer's final
     * checksum, the header words it wrote before are visible to the relaxed
     * loads below. If it returns anything else, the copy may be partial,
     * and the checksum comparison (done by the caller) rejects it. */
    w[7] = atomic_load_explicit(&ctl->header_checksum, memory_order_acquire);
    for (unsigned i = 0; i < 7; i++) {
        /* Relaxed: ordered after the acquire above, which is all we need. */
        w[i] = atomic_load_explicit(&ctl->header_words[i], memory_order_relaxed);
    }
    memcpy(out, w, sizeof *out);
}

/* The fields first, so that a header that never checks is refused with the
 * reason an operator can act on. */
static enum tl_ring_err header_fields_check(const tl_ring_header *h) {
    if (memcmp(h->magic, TL_RING_MAGIC, 8) != 0)
        return TL_RING_ERR_BAD_MAGIC;
    if (h->version != TL_RING_VERSION)
        return TL_RING_ERR_BAD_VERSION;
    if (h->control_len != TL_RING_CONTROL_BYTES || !tl_ring_capacity_valid(h->capacity))
        return TL_RING_ERR_NOT_A_RING;
    return TL_RING_OK;
}

enum tl_ring_err tl_ring_header_check(const tl_ring_header *h) {
    enum tl_ring_err e = header_fields_check(h);
    if (e != TL_RING_OK)
        return e;
    if (tl_ring_header_checksum(h) != h->header_checksum)
        return TL_RING_ERR_HEADER_CHECKSUM;
    return TL_RING_OK;
}

/* ---- attach ---- */

static void map_views(tl_ring_map *m) {
    m->ctl = (tl_ring_ctl *)(void *)m->base;
    m->data = (_Atomic uint64_t *)(void *)(m->base + TL_RING_CONTROL_BYTES);
    m->capacity = m->header.capacity;
    m->mask = m->header.capacity - 1;
}

enum tl_ring_err tl_ring_map_init(tl_ring_map *m, const char *name) {
    memset(m, 0, sizeof *m);
    m->fd = -1;
    enum tl_ring_err e = tl_ring_resolve_name(name, m->path, sizeof m->path, &m->is_shm);
    if (e != TL_RING_OK) {
        m->phase = TL_MAP_FAILED;
        m->err = e;
        return e;
    }
    m->phase = TL_MAP_OPENING;
    return TL_RING_OK;
}

static void drop_mapping(tl_ring_map *m) {
    if (m->base != NULL && m->owns_mapping)
        munmap(m->base, m->map_bytes);
    m->base = NULL;
    m->map_bytes = 0;
    m->ctl = NULL;
    m->data = NULL;
}

static enum tl_ring_err fail(tl_ring_map *m, enum tl_ring_err e) {
    if (e == TL_RING_ERR_SYS)
        m->sys_errno = errno;
    drop_mapping(m);
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    m->phase = TL_MAP_FAILED;
    m->err = e;
    return e;
}

/* What to say when the 1 s are up and the header still does not check. */
static enum tl_ring_err refusal(tl_ring_map *m, uint64_t size) {
    if (size < TL_RING_CONTROL_BYTES || m->base == NULL)
        return fail(m, TL_RING_ERR_TOO_SMALL);
    tl_ring_header h;
    tl_ring_header_load(m->ctl, &h);
    enum tl_ring_err e = tl_ring_header_check(&h);
    if (e == TL_RING_OK) /* it became right just now: still too small */
        e = TL_RING_ERR_TOO_SMALL;
    return fail(m, e);
}

static enum tl_ring_err fstat_size(tl_ring_map *m, uint64_t *size) {
    struct stat st;
    if (fstat(m->fd, &st) != 0)
        return TL_RING_ERR_SYS;
    *size = st.st_size < 0 ? 0 : (uint64_t)st.st_size;
    m->identity.dev = (uint64_t)st.st_dev;
    m->identity.ino = (uint64_t)st.st_ino;
    return TL_RING_OK;
}

enum tl_ring_err tl_ring_map_step(tl_ring_map *m, uint64_t now_mono_ns) {
    if (m->phase == TL_MAP_READY)
        return TL_RING_OK;
    if (m->phase == TL_MAP_FAILED)
        return m->err; /* a refusal is final: start over with tl_ring_map_init */
    if (m->phase != TL_MAP_OPENING && m->phase != TL_MAP_SIZING)
        return TL_RING_ERR_NAME; /* closed, or never initialised */

    if (m->fd < 0) {
        /* Read-write: tally writes the consumer region and the mode words. */
        m->fd = tl_ring_obj_open(m->path, m->is_shm, O_RDWR, 0);
        if (m->fd < 0) {
            if (errno == ENOENT)
                return TL_RING_ERR_NOT_FOUND;
            m->sys_errno = errno;
            return fail(m, TL_RING_ERR_SYS);
        }
        m->started_ns = now_mono_ns;
    }
    bool late = now_mono_ns - m->started_ns >= TL_RING_ATTACH_TIMEOUT_NS;

    uint64_t size = 0;
    if (fstat_size(m, &size) != TL_RING_OK)
        return fail(m, TL_RING_ERR_SYS);

    if (m->phase == TL_MAP_OPENING) {
        if (size < TL_RING_CONTROL_BYTES)
            return late ? refusal(m, size) : TL_RING_PENDING;
        if (m->base == NULL) {
            void *p =
                mmap(NULL, TL_RING_CONTROL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
            if (p == MAP_FAILED)
                return fail(m, TL_RING_ERR_SYS);
            m->base = p;
            m->map_bytes = TL_RING_CONTROL_BYTES;
            m->owns_mapping = true;
            m->ctl = (tl_ring_ctl *)p;
        }
        tl_ring_header h;
        tl_ring_header_load(m->ctl, &h);
        if (tl_ring_header_checksum(&h) != h.header_checksum)
            return late ? refusal(m, size) : TL_RING_PENDING;
        /* A checked header with impossible fields is final: refuse now. */
        enum tl_ring_err e = header_fields_check(&h);
        if (e != TL_RING_OK)
            return fail(m, e);
        m->header = h;
        m->identity.created_ns = h.created_ns;
        m->identity.producer_pid = h.producer_pid;
        m->phase = TL_MAP_SIZING;
    }

    /* SIZING. The producer sizes the object before it writes the header, so
     * this normally passes at once. */
    uint64_t want = TL_RING_CONTROL_BYTES + m->header.capacity;
    if (size < want)
        return late ? fail(m, TL_RING_ERR_TOO_SMALL) : TL_RING_PENDING;
    drop_mapping(m);
    /* MAP_POPULATE: fault the ring in now, at attach, not on the hot path. */
    void *p = mmap(NULL, (size_t)want, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, m->fd, 0);
    if (p == MAP_FAILED)
        return fail(m, TL_RING_ERR_SYS);
    m->base = p;
    m->map_bytes = (size_t)want;
    m->owns_mapping = true;
    map_views(m);
    /* The mapping holds the object; the descriptor is not needed any more. */
    close(m->fd);
    m->fd = -1;
    m->phase = TL_MAP_READY;
    return TL_RING_OK;
}

enum tl_ring_err tl_ring_map_open_wait(tl_ring_map *m, const char *name, uint32_t timeout_ms) {
    enum tl_ring_err e = tl_ring_map_init(m, name);
    if (e != TL_RING_OK)
        return e;
    uint64_t start = tl_ring_now_mono_ns();
    for (;;) {
        uint64_t now = tl_ring_now_mono_ns();
        e = tl_ring_map_step(m, now);
        if (e != TL_RING_PENDING && e != TL_RING_ERR_NOT_FOUND)
            return e;
        if (now - start >= (uint64_t)timeout_ms * 1000000ull)
            return e;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

enum tl_ring_err tl_ring_map_from_memory(tl_ring_map *m, void *base, size_t len) {
    memset(m, 0, sizeof *m);
    m->fd = -1;
    m->phase = TL_MAP_FAILED;
    TL_ASSERT(((uintptr_t)base & 63u) == 0);
    if (len < TL_RING_CONTROL_BYTES)
        return TL_RING_ERR_TOO_SMALL;
    tl_ring_header h;
    tl_ring_header_load((const tl_ring_ctl *)base, &h);
    enum tl_ring_err e = tl_ring_header_check(&h);
    if (e != TL_RING_OK)
        return e;
    if (len - TL_RING_CONTROL_BYTES < h.capacity)
        return TL_RING_ERR_TOO_SMALL;
    m->header = h;
    m->base = base;
    m->map_bytes = len;
    m->owns_mapping = false;
    m->identity.created_ns = h.created_ns;
    m->identity.producer_pid = h.producer_pid;
    map_views(m);
    m->phase = TL_MAP_READY;
    return TL_RING_OK;
}

void tl_ring_map_close(tl_ring_map *m) {
    drop_mapping(m);
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
    m->phase = TL_MAP_CLOSED;
}

/* ---- identity ---- */

static enum tl_ring_err pread_all(int fd, void *buf, size_t n, off_t off) {
    size_t got = 0;
    for (int tries = 0; got < n && tries < 1000; tries++) {
        ssize_t r = pread(fd, (uint8_t *)buf + got, n - got, off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return TL_RING_ERR_SYS;
        if (r == 0)
            return TL_RING_PENDING; /* shorter than the header: not sized yet */
        got += (size_t)r;
    }
    return got == n ? TL_RING_OK : TL_RING_ERR_SYS;
}

enum tl_ring_err tl_ring_identity_read(const char *name, tl_ring_identity *out) {
    char path[TL_RING_PATH_MAX];
    bool is_shm;
    enum tl_ring_err e = tl_ring_resolve_name(name, path, sizeof path, &is_shm);
    if (e != TL_RING_OK)
        return e;
    int fd = tl_ring_obj_open(path, is_shm, O_RDONLY, 0);
    if (fd < 0)
        return errno == ENOENT ? TL_RING_ERR_NOT_FOUND : TL_RING_ERR_SYS;
    struct stat st;
    tl_ring_header h;
    e = TL_RING_OK;
    if (fstat(fd, &st) != 0)
        e = TL_RING_ERR_SYS;
    /* pread, not a mapping: the kernel copies, so reading while the
     * producer writes is no data race; the checksum says if it is whole. */
    if (e == TL_RING_OK)
        e = pread_all(fd, &h, sizeof h, 0);
    int saved = errno;
    close(fd);
    errno = saved;
    if (e != TL_RING_OK)
        return e;
    if (tl_ring_header_check(&h) != TL_RING_OK)
        return TL_RING_PENDING;
    out->dev = (uint64_t)st.st_dev;
    out->ino = (uint64_t)st.st_ino;
    out->created_ns = h.created_ns;
    out->producer_pid = h.producer_pid;
    return TL_RING_OK;
}

/* ---- consumer-region stores ---- */

void tl_ring_consumer_beat(tl_ring_map *m, uint64_t now_mono_ns) {
    TL_ASSERT(m->ctl != NULL && now_mono_ns != 0);
    /* Relaxed: the engine compares this standalone value with its own
     * clock; no other data is published through it. A clean stop orders
     * its last beat before state 0 with the release in set_state. */
    atomic_store_explicit(&m->ctl->consumer_heartbeat_mono_ns, now_mono_ns, memory_order_relaxed);
}

void tl_ring_consumer_set_state(tl_ring_map *m, enum tl_ring_consumer_state state) {
    TL_ASSERT(m->ctl != NULL && (unsigned)state <= TL_CONSUMER_HALTED);
    /* Release: the dead-man reads state (acquire) and then the heartbeat;
     * a reader that sees state 0 then sees at least the last beat stored
     * before it, so it records the right stop heartbeat. */
    atomic_store_explicit(&m->ctl->consumer_state, (uint32_t)state, memory_order_release);
}

void tl_ring_consumer_set_wal_seq(tl_ring_map *m, uint64_t seq) {
    TL_ASSERT(m->ctl != NULL);
    /* Relaxed: a standalone lower bound the engine reads to keep segments;
     * nothing else hangs on it, and a stale read only keeps more. */
    atomic_store_explicit(&m->ctl->consumer_wal_seq, seq, memory_order_relaxed);
}
