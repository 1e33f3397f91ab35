/* ring_producer.c: the engine's side of the ring (ring.md "Producer").
 *
 * Start-up makes a new incarnation (a fresh object under the name) and may
 * allocate; publishing never allocates, never makes a system call and never
 * waits for the consumer.
 *
 * Invariants of the producer (asserted where cheap):
 *   - position is a record boundary, a multiple of 8, and only grows;
 *   - the room left before the end, r = capacity - (position & mask), is
 *     capacity or at least 64 (the PAD rule keeps it so), so a PAD always
 *     has a legal length 64 <= r < 65600;
 *   - `published` is a record boundary at or behind position, and lags it
 *     by less than capacity/8 + one item (so, as ring.md requires, publish
 *     never lags the newest commit by more than capacity/8 + 65600 bytes).
 */
#include "ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"

enum old_object {
    OLD_NONE = 0,   /* nothing under the name */
    OLD_RING,       /* a ring with a valid header: *wal_seq is its consumer_wal_seq */
    OLD_UNFINISHED, /* a ring whose creator died before its header was whole */
    OLD_FOREIGN,    /* something else: never unlinked */
};

/* Looks at what the name holds before it is replaced. pread, not a mapping:
 * a kernel copy cannot race with a live tally. A name that holds something
 * other than a ring (a file path typed wrong, say) is left alone: the
 * engine must not delete an operator's file. */
static enum old_object inspect_old(const char *path, bool is_shm, uint64_t *wal_seq) {
    int fd = tl_ring_obj_open(path, is_shm, O_RDONLY, 0);
    if (fd < 0)
        return errno == ENOENT ? OLD_NONE : OLD_FOREIGN;
    uint8_t buf[512];
    size_t got = 0;
    for (int tries = 0; got < sizeof buf && tries < 100; tries++) {
        ssize_t r = pread(fd, buf + got, sizeof buf - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got == sizeof buf) {
        tl_ring_header h;
        memcpy(&h, buf, sizeof h);
        if (tl_ring_header_check(&h) == TL_RING_OK) {
            memcpy(wal_seq, buf + offsetof(tl_ring_ctl, consumer_wal_seq), sizeof *wal_seq);
            return OLD_RING;
        }
    }
    if (got >= 8 && memcmp(buf, TL_RING_MAGIC, 8) == 0)
        return OLD_UNFINISHED;
    /* Sized but not yet written (all zero so far), or not even sized. */
    size_t n = got < sizeof(tl_ring_header) ? got : sizeof(tl_ring_header);
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= buf[i];
    return acc == 0 ? OLD_UNFINISHED : OLD_FOREIGN;
}

static uint64_t realtime_ns(void) {
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    TL_ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int ftruncate_retry(int fd, off_t len) {
    for (int tries = 0; tries < 100; tries++) {
        if (ftruncate(fd, len) == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
    return -1;
}

enum tl_ring_err tl_ring_create(const char *name, uint64_t capacity,
                                const uint8_t engine_id[TL_ID_BYTES],
                                const tl_ring_durable *recovered, tl_ring_producer **out) {
    *out = NULL;
    if (!tl_ring_capacity_valid(capacity))
        return TL_RING_ERR_CAPACITY;
    tl_ring_producer *p = calloc(1, sizeof *p);
    if (p == NULL)
        return TL_RING_ERR_SYS;
    enum tl_ring_err e = tl_ring_resolve_name(name, p->path, sizeof p->path, &p->is_shm);
    if (e != TL_RING_OK) {
        free(p);
        return e;
    }
    p->stage = aligned_alloc(64, TL_RING_COPY_BYTES);
    if (p->stage == NULL) {
        free(p);
        return TL_RING_ERR_SYS;
    }

    /* Every start is a new incarnation: carry the consumer's restart point
     * over, so the engine keeps the segments tally may still need. */
    enum old_object old = inspect_old(p->path, p->is_shm, &p->old_consumer_wal_seq);
    if (old == OLD_FOREIGN) {
        free(p->stage);
        free(p);
        return TL_RING_ERR_NOT_A_RING;
    }
    p->old_object_found = old == OLD_RING;
    if (old != OLD_NONE && tl_ring_obj_unlink(p->path, p->is_shm) != 0 && errno != ENOENT)
        goto sys_fail;
    int fd = tl_ring_obj_open(p->path, p->is_shm, O_RDWR | O_CREAT | O_EXCL, 0660);
    if (fd < 0) {
        e = errno == EEXIST ? TL_RING_ERR_EXISTS : TL_RING_ERR_SYS;
        int saved = errno;
        free(p->stage);
        free(p);
        errno = saved;
        return e;
    }
    size_t bytes = (size_t)(TL_RING_CONTROL_BYTES + capacity);
    /* Sized once, never shrunk: a consumer's mapping stays valid. */
    if (ftruncate_retry(fd, (off_t)bytes) != 0)
        goto sys_fail_fd;
    struct stat st;
    if (fstat(fd, &st) != 0)
        goto sys_fail_fd;
    /* MAP_POPULATE: take the page faults now, not on the hot path. */
    void *map = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED)
        goto sys_fail_fd;
    close(fd);

    p->map = map;
    p->map_bytes = bytes;
    p->ctl = (tl_ring_ctl *)map;
    p->data = (_Atomic uint64_t *)(void *)((uint8_t *)map + TL_RING_CONTROL_BYTES);
    p->capacity = capacity;
    p->mask = capacity - 1;
    p->publish_every_bytes = capacity / 8;
    p->position = 0;
    p->published = 0;

    tl_ring_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, TL_RING_MAGIC, 8);
    h.version = TL_RING_VERSION;
    h.control_len = TL_RING_CONTROL_BYTES;
    h.capacity = capacity;
    memcpy(h.engine_id, engine_id, TL_ID_BYTES);
    h.created_ns = realtime_ns();
    h.producer_pid = (uint32_t)getpid();
    h.header_checksum = tl_ring_header_checksum(&h);
    p->identity.dev = (uint64_t)st.st_dev;
    p->identity.ino = (uint64_t)st.st_ino;
    p->identity.created_ns = h.created_ns;
    p->identity.producer_pid = h.producer_pid;

    tl_ring_ctl *ctl = p->ctl;
    /* Everything before header_checksum is relaxed: the release store of
     * the checksum below orders all of it before any consumer that
     * acquires a matching checksum (tl_ring_header_load). */
    if (recovered != NULL) {
        atomic_store_explicit(&ctl->wal_durable_seq, recovered->seq, memory_order_relaxed);
        atomic_store_explicit(&ctl->wal_durable_segment_first_seq, recovered->segment_first_seq,
                              memory_order_relaxed);
        atomic_store_explicit(&ctl->wal_durable_offset, recovered->offset, memory_order_relaxed);
    }
    atomic_store_explicit(&ctl->consumer_wal_seq, p->old_consumer_wal_seq, memory_order_relaxed);
    uint64_t words[8];
    memcpy(words, &h, sizeof h);
    for (unsigned i = 0; i < 7; i++)
        atomic_store_explicit(&ctl->header_words[i], words[i], memory_order_relaxed);
    /* Release, last: the commit of the header (ring.md "written last"). */
    atomic_store_explicit(&ctl->header_checksum, words[7], memory_order_release);
    *out = p;
    return TL_RING_OK;

sys_fail_fd : {
    int saved = errno;
    close(fd);
    errno = saved;
}
sys_fail : {
    int saved = errno;
    free(p->stage);
    free(p);
    errno = saved;
    return TL_RING_ERR_SYS;
}
}

void tl_ring_close(tl_ring_producer *p) {
    if (p == NULL)
        return;
    if (p->map != NULL)
        munmap(p->map, p->map_bytes);
    free(p->stage);
    free(p);
}

/* Stores `publish` = position. Release: a consumer that acquires this value
 * (a fresh load) sees every commit before it, so `publish` is a boundary
 * whose records are all complete. */
static inline void publish_now(tl_ring_producer *p, uint64_t position) {
    atomic_store_explicit(&p->ctl->publish, position, memory_order_release);
    /* Relaxed: a metrics hint, same cache line, nothing depends on it. */
    atomic_store_explicit(&p->ctl->last_seq, p->last_seq, memory_order_relaxed);
    p->published = position;
    p->since_publish = 0;
}

/* The hint cadence of ring.md step 3, checked after every item (a PAD
 * counts as one, so the lag bound holds across a PAD and its record too). */
static inline void maybe_publish(tl_ring_producer *p, uint64_t position) {
    uint32_t n = p->since_publish + 1;
    p->since_publish = n;
    if (n >= TL_RING_PUBLISH_EVERY_RECORDS || position - p->published >= p->publish_every_bytes)
        publish_now(p, position);
}

/* Steps 1 and 2 of ring.md for one item laid out at `src`, written at dst.
 * Everything the caller needs from *p is read before this is called: the
 * compiler must assume the atomic stores below may alias *p. */
static inline void write_item(_Atomic uint64_t *restrict dst, const uint64_t *restrict src,
                              uint32_t words) {
    /* Release fence before the relaxed stores: a consumer whose relaxed
     * loads see any of the words below, and which then issues an acquire
     * fence (its "fresh" publish load), also sees every store made before
     * this fence, in particular the last `publish`. A copy torn by this
     * overwrite therefore always comes with a publish value that shows the
     * lap. */
    atomic_thread_fence(memory_order_release);
    /* Relaxed 8-byte stores of every word but seq (word 2). Records are
     * 8-aligned and 8-sized, so no store tears and no load races. */
    atomic_store_explicit(&dst[0], src[0], memory_order_relaxed);
    atomic_store_explicit(&dst[1], src[1], memory_order_relaxed);
#pragma GCC unroll 4
    for (uint32_t i = 3; i < words; i++)
        atomic_store_explicit(&dst[i], src[i], memory_order_relaxed);
    /* The commit: release orders all the words above before the stamp, so
     * a consumer that acquires the stamp copies a whole record. */
    atomic_store_explicit(&dst[2], src[2], memory_order_release);
}

/* How far ahead the producer asks for lines to write. The lines ahead of it
 * hold last lap's bytes, long since out of cache in a big ring; asking for
 * them (for write) this far ahead hides the miss behind the records in
 * between. The consumer never reads there (it is behind the producer,
 * unless lapped, and then the bytes are overwritten anyway). */
#define PF_WRITE_AHEAD_BYTES 2048u

/* PREFETCHW (ask for a line in exclusive state, ready to be written) is not
 * in the x86-64 baseline, so without this __builtin_prefetch(p, 1, ...)
 * degrades to a read prefetch and every store still needs an ownership
 * upgrade. CPUs without PRFCHW decode the instruction as a NOP. */
#if defined(__x86_64__)
#define TL_PREFETCHW_TARGET __attribute__((target("prfchw")))
#else
#define TL_PREFETCHW_TARGET
#endif

/* The record at the producer's position (a PAD's or the record's). */
static inline void write_at_position(tl_ring_producer *p, const void *item, uint32_t len) {
    uint64_t position = p->position;
    const uint8_t *base = (const uint8_t *)(const void *)p->data;
    for (uint64_t a = (position + PF_WRITE_AHEAD_BYTES) & ~(uint64_t)63;
         a < position + len + PF_WRITE_AHEAD_BYTES; a += 64)
        __builtin_prefetch(base + (a & p->mask), 1, 3);
    write_item(p->data + ((position & p->mask) >> 3), (const uint64_t *)item, len >> 3);
    position += len;
    p->position = position;
    maybe_publish(p, position);
}

/* A PAD of the room left, then the record at offset 0 of the next lap. Out
 * of line: once per lap at most, and it keeps the hot path's frame small. */
static TL_PREFETCHW_TARGET __attribute__((noinline)) void
publish_after_pad(tl_ring_producer *p, const void *rec, uint32_t len, uint32_t pad_len) {
    const tl_rec_hdr *next = (const tl_rec_hdr *)rec;
    tl_rec_meta m = {
        .parent = next->parent,
        .seq = next->seq,
        .fence = next->fence,
        .ts_ns = next->ts_ns,
    };
    uint32_t n = tl_rec_encode_pad(p->stage, TL_RING_COPY_BYTES, pad_len, &m);
    TL_ASSERT(n == pad_len);
    write_at_position(p, p->stage, pad_len);
    TL_ASSERT((p->position & p->mask) == 0);
    p->pads++;
    p->last_seq = next->seq;
    write_at_position(p, rec, len);
}

TL_PREFETCHW_TARGET void tl_ring_publish(tl_ring_producer *p, const void *rec, uint32_t len) {
    const tl_rec_hdr *h = (const tl_rec_hdr *)rec;
    /* The engine's own records: these are invariants of its code. */
    TL_ASSERT(((uintptr_t)rec & 7u) == 0 && len == h->len && len >= TL_REC_HDR_BYTES &&
              len <= TL_REC_MAX_BYTES && (len & 7u) == 0 && h->seq != 0 && h->kind != TL_KIND_PAD);

    uint64_t r = p->capacity - (p->position & p->mask);
    TL_ASSERT(r >= TL_REC_HDR_BYTES);
    /* ring.md: in place iff len <= r and (r - len == 0 or r - len >= 64);
     * otherwise a PAD of r bytes first, then the record at offset 0. */
    if (__builtin_expect(len > r || (r != len && r - len < TL_REC_HDR_BYTES), 0)) {
        TL_ASSERT(r < TL_PAD_LIMIT_BYTES);
        publish_after_pad(p, rec, len, (uint32_t)r);
        return;
    }
    p->last_seq = h->seq;
    write_at_position(p, rec, len);
}

uint32_t tl_ring_publish_encode(tl_ring_producer *p, tl_rec_meta *m, const void *body,
                                uint32_t body_len) {
    uint32_t len = tl_rec_encode(p->stage, TL_RING_COPY_BYTES, m, body, body_len);
    if (len == 0)
        return 0;
    tl_ring_publish(p, p->stage, len);
    return len;
}

void tl_ring_flush(tl_ring_producer *p) {
    if (p->published != p->position)
        publish_now(p, p->position);
}

void tl_ring_beat(tl_ring_producer *p, uint64_t now_mono_ns) {
    /* Relaxed: a standalone value that tally compares with its own clock. */
    atomic_store_explicit(&p->ctl->producer_heartbeat_mono_ns, now_mono_ns, memory_order_relaxed);
}

void tl_ring_set_last_seq(tl_ring_producer *p, uint64_t seq) {
    p->last_seq = seq;
    /* Relaxed: a metrics hint. */
    atomic_store_explicit(&p->ctl->last_seq, seq, memory_order_relaxed);
}

void tl_ring_set_durable(tl_ring_producer *p, uint64_t seq, uint64_t segment_first_seq,
                         uint64_t offset) {
    tl_ring_durable d = {.seq = seq, .segment_first_seq = segment_first_seq, .offset = offset};
    tl_ring_durable_write(p->ctl, &p->durable_gen, &d);
}
