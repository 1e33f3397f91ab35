/* wal_writer.c: the native WAL writer (see wal_writer.h).
 *
 * The staging ring. A byte ring of staging_bytes (a power of two) between the
 * producer and the consumer, positions as u64 byte counters that only grow.
 * Its entries are records (their own bytes: len from the header, kind != 0)
 * and markers: a 64-byte record-shaped header with kind 0 whose checksum word
 * says which marker (SEG: a new segment starts, its header fields follow;
 * WRAP: the rest of the ring up to its end is unused). An entry never wraps:
 * with r bytes left before the end, an entry of e bytes goes at the head iff
 * e <= r and (r - e == 0 or r - e >= 64), else a WRAP of r bytes comes first
 * (the rule of ring.md's PAD), so r is always 0 or >= 64 and a WRAP fits.
 *
 * Ownership:
 *   - producer (struct prod): the chain (next_seq, last_checksum, fence,
 *     leader), where records go (segment, offset), the ring's head. It writes
 *     entry bytes only in [head, tail + staging_bytes).
 *   - consumer (struct cons): the segment file descriptor, the file offset,
 *     what is written and what is synced, the ring's read position. It only
 *     reads entry bytes in [tail, head).
 *   - shared, C11 atomics: head (producer -> consumer), tail and durable_pos
 *     (consumer -> producer), sync_req (producer -> consumer), the durable
 *     triple under a seqlock (consumer -> anyone), failed (consumer ->
 *     producer), sleep_state and waiters (the wake-up protocol), stop, and the
 *     armed fault.
 * Without a sync thread both roles run on the producer's thread, in order,
 * and the same code holds.
 *
 * Wake-ups. The consumer sleeps on c_cv (state IDLE: nothing to sync; NAP:
 * unsynced records, until the group delay ends). The producer wakes it by
 * CAS-ing the state to KICKED and signalling under the mutex: for every
 * append when IDLE, when a group fills while it NAPs, and for a sync request.
 * Producers that wait (for staging room, or for durability in tl_wal_sync)
 * sleep on p_cv after raising `waiters`; the consumer broadcasts after it
 * moves tail or durable_pos if anyone waits. Both are the Dekker pattern: a
 * store, a seq_cst fence, a load on each side, so either the sleeper sees the
 * news or the waker sees the sleeper; the mutex closes the gap between the
 * check and the wait.
 */
#include "wal_writer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/segment.h"
#include "wal_dir.h"
#include "wal_reader.h"

enum { MARK_SEG = 1, MARK_WRAP = 2 };

/* A SEG marker in the staging ring. */
typedef struct seg_marker {
    tl_rec_hdr h; /* kind 0, checksum MARK_SEG, len sizeof(seg_marker) */
    uint64_t segment_index;
    uint64_t first_seq;
    uint64_t prev_checksum;
    uint64_t fence;
    uint64_t segment_bytes;
    uint8_t leader_id[TL_ID_BYTES];
} seg_marker;
_Static_assert(sizeof(seg_marker) % 8 == 0, "staging entries are 8-aligned");

enum sleep_state { AWAKE = 0, IDLE = 1, NAP = 2, KICKED = 3 };

/* One pwrite moves at most this much, so the producer gets room back while a
 * large backlog is written. */
#define RUN_MAX_BYTES (1u << 20)

#define SYMBOL_REC_BYTES          (TL_REC_HDR_BYTES + (uint32_t)sizeof(tl_body_symbol))
#define MODE_REC_BYTES            (TL_REC_HDR_BYTES + (uint32_t)sizeof(tl_body_mode_change))
#define LEADER_REC_BYTES          (TL_REC_HDR_BYTES + (uint32_t)sizeof(tl_body_leader_change))
#define PRODUCER_WAIT_BACKSTOP_NS 100000000ull /* re-kick every 100 ms while waiting */

struct prod {
    uint64_t next_seq;
    uint64_t last_checksum;
    uint64_t fence;
    uint8_t leader_id[TL_ID_BYTES];
    uint64_t seg_index; /* the segment records go to now */
    uint64_t seg_first_seq;
    uint64_t seg_off;
    uint64_t seg_bytes;
    bool roll_pending;
    uint64_t head;              /* the ring head, published with `head` */
    uint64_t tail_seen;         /* last tail loaded */
    uint64_t unsynced_since_ns; /* without a thread: the first append since a sync */
    tl_wal_opener_symbol *syms;
    uint8_t *scratch;   /* append_record verifies here */
    tl_wal_ioerr ioerr; /* the producer's own last I/O error (retire) */
};

struct cons {
    int fd; /* the newest segment, -1 before the first */
    uint64_t seg_first_seq;
    uint64_t seg_off;
    uint64_t seg_bytes;
    uint64_t pos;         /* ring read position: entries below are handled */
    uint64_t written_seq; /* last record written to its file (0 none) */
    uint64_t written_seg;
    uint64_t written_off;
    uint64_t synced_seq; /* last record made durable and published */
    uint64_t unsynced_bytes;
    uint64_t unsynced_records;
    uint64_t unsynced_since_ns;
    bool in_open;     /* no on_durable while tl_wal_open runs */
    uint8_t *scratch; /* FLIP faults */
};

struct tl_wal {
    tl_wal_config cfg;
    char *dir;
    tl_wal_ops ops;
    int dirfd;
    uint8_t *staging;
    uint64_t staging_bytes;
    uint64_t mask;
    tl_wal_dir list; /* for retire; allocated at open */
    bool threaded;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t c_cv; /* the consumer sleeps here */
    pthread_cond_t p_cv; /* the producer waits here */
    tl_wal_ioerr ioerr;  /* written once, before `failed` (release) */

    struct prod p;
    struct cons c;

    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) _Atomic uint64_t tail;
    _Atomic uint64_t durable_pos;
    _Alignas(64) _Atomic uint64_t sync_req;
    _Atomic int failed; /* enum tl_wal_err, 0 = none */
    _Atomic int sleep_state;
    _Atomic int waiters;
    _Atomic bool stop;
    _Alignas(64) _Atomic uint64_t dur_gen; /* seqlock over the three below */
    _Atomic uint64_t dur_seq;
    _Atomic uint64_t dur_seg;
    _Atomic uint64_t dur_off;
    _Atomic int fault_kind;
    _Atomic uint64_t fault_seq;
    _Atomic uint32_t fault_arg;
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The writer's own stamps: the real clock, or the test hook's fixed value. */
static uint64_t writer_real_ns(const tl_wal *w) {
    return w->cfg.fixed_real_ns != 0 ? w->cfg.fixed_real_ns : real_ns();
}

static int pwrite_full(int fd, const uint8_t *buf, size_t n, uint64_t off) {
    size_t put = 0;
    while (put < n) {
        ssize_t r = pwrite(fd, buf + put, n - put, (off_t)(off + put));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO;
            return -1;
        }
        put += (size_t)r;
    }
    return 0;
}

static int fdatasync_retry(int fd) {
    for (int tries = 0; tries < 16; tries++) {
        if (fdatasync(fd) == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
    errno = EINTR;
    return -1;
}

static int fsync_retry(int fd) {
    for (int tries = 0; tries < 16; tries++) {
        if (fsync(fd) == 0)
            return 0;
        if (errno != EINTR)
            return -1;
    }
    errno = EINTR;
    return -1;
}

static enum tl_wal_err failed_of(tl_wal *w) {
    /* acquire: pairs with set_failed's release, so w->ioerr is readable. */
    return (enum tl_wal_err)atomic_load_explicit(&w->failed, memory_order_acquire);
}

static void notify_producer(tl_wal *w);

/* The consumer's first failure sticks; every later producer call sees it. */
static enum tl_wal_err set_failed(tl_wal *w, enum tl_wal_err e, const char *op, int err) {
    if (atomic_load_explicit(&w->failed, memory_order_relaxed) == 0) {
        w->ioerr = (tl_wal_ioerr){op, err};
        /* release: the ioerr above is visible to whoever sees `failed`. */
        atomic_store_explicit(&w->failed, (int)e, memory_order_release);
    }
    notify_producer(w);
    return e;
}

static enum tl_wal_err io_failed(tl_wal *w, const char *op) {
    return set_failed(w, TL_WAL_ERR_IO, op, errno);
}

static uint32_t opener_count_restated(const tl_wal_opener_symbol *s, uint32_t n) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        k += s[i].mode != TL_MODE_NORMAL;
    return k;
}

/* ------------------------------------------------------------------ */
/* wake-ups                                                            */

static void lock(tl_wal *w) {
    int rc = pthread_mutex_lock(&w->mu);
    TL_ASSERT(rc == 0);
}

static void unlock(tl_wal *w) {
    int rc = pthread_mutex_unlock(&w->mu);
    TL_ASSERT(rc == 0);
}

/* Is a group full, as the producer sees it? Relaxed loads: a heuristic for
 * when to wake a napping consumer early; the nap's deadline bounds it. */
static bool group_full(tl_wal *w) {
    uint64_t dpos = atomic_load_explicit(&w->durable_pos, memory_order_relaxed);
    uint64_t dseq = atomic_load_explicit(&w->dur_seq, memory_order_relaxed);
    return w->p.head - dpos >= w->cfg.group_max_bytes ||
           (w->p.next_seq - 1) - dseq >= w->cfg.group_max_records;
}

/* Producer side of the wake-up (see the top of the file). */
static void kick(tl_wal *w, bool force) {
    /* seq_cst fence: orders our earlier store of head / sync_req / stop
     * before the load of sleep_state, against the consumer's store of
     * sleep_state, fence, load of head in consumer_sleep: one of the two
     * loads sees the other side's store. */
    atomic_thread_fence(memory_order_seq_cst);
    int st = atomic_load_explicit(&w->sleep_state, memory_order_relaxed);
    if (st == AWAKE || st == KICKED)
        return;
    if (st == NAP && !force && !group_full(w))
        return;
    /* relaxed CAS: the mutex below orders the wake-up; if the CAS fails the
     * consumer woke by itself and will look at head again. */
    if (!atomic_compare_exchange_strong_explicit(&w->sleep_state, &st, KICKED, memory_order_relaxed,
                                                 memory_order_relaxed))
        return;
    lock(w);
    pthread_cond_signal(&w->c_cv);
    unlock(w);
}

/* Consumer side: wakes producers that wait for room or durability. */
static void notify_producer(tl_wal *w) {
    if (!w->threaded)
        return;
    /* seq_cst fence: orders our store of tail / durable_pos / failed before
     * the load of waiters, against the producer's increment of waiters, fence,
     * check (producer_wait). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&w->waiters, memory_order_relaxed) == 0)
        return;
    lock(w);
    pthread_cond_broadcast(&w->p_cv);
    unlock(w);
}

static struct timespec abs_mono(uint64_t t_ns) {
    struct timespec ts = {(time_t)(t_ns / 1000000000ull), (long)(t_ns % 1000000000ull)};
    return ts;
}

/* Producer waits until ready(w, arg) or a failure. */
static void producer_wait(tl_wal *w, bool (*ready)(tl_wal *, uint64_t), uint64_t arg) {
    TL_ASSERT(w->threaded);
    kick(w, true);
    lock(w);
    atomic_fetch_add_explicit(&w->waiters, 1, memory_order_relaxed);
    /* seq_cst fence: pairs with notify_producer's (see there). */
    atomic_thread_fence(memory_order_seq_cst);
    while (!ready(w, arg) && failed_of(w) == TL_WAL_OK) {
        struct timespec ts = abs_mono(mono_ns() + PRODUCER_WAIT_BACKSTOP_NS);
        int rc = pthread_cond_timedwait(&w->p_cv, &w->mu, &ts);
        TL_ASSERT(rc == 0 || rc == ETIMEDOUT);
        if (rc == ETIMEDOUT) {
            /* A backstop only: the protocol needs no timeout. Kick again
             * without the lock held by us in kick()'s path. */
            unlock(w);
            kick(w, true);
            lock(w);
        }
    }
    atomic_fetch_sub_explicit(&w->waiters, 1, memory_order_relaxed);
    unlock(w);
}

/* ------------------------------------------------------------------ */
/* consumer: files                                                     */

static void publish_durable(tl_wal *w) {
    /* The seqlock of ring.md, single writer: odd, fence, fields, even. */
    uint64_t g = atomic_load_explicit(&w->dur_gen, memory_order_relaxed);
    atomic_store_explicit(&w->dur_gen, g + 1, memory_order_relaxed);
    /* release fence: the odd gen is visible before any field changes. */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&w->dur_seq, w->c.written_seq, memory_order_relaxed);
    atomic_store_explicit(&w->dur_seg, w->c.written_seg, memory_order_relaxed);
    atomic_store_explicit(&w->dur_off, w->c.written_off, memory_order_relaxed);
    /* release: the fields are visible before the even gen. */
    atomic_store_explicit(&w->dur_gen, g + 2, memory_order_release);
}

/* fdatasync what was written, publish it, tell the engine. */
static enum tl_wal_err do_sync(tl_wal *w) {
    if (w->c.unsynced_bytes > 0) {
        TL_ASSERT(w->c.fd >= 0);
        if (fdatasync_retry(w->c.fd) != 0)
            return io_failed(w, "fdatasync");
    }
    w->c.unsynced_bytes = 0;
    w->c.unsynced_records = 0;
    w->c.unsynced_since_ns = 0;
    if (w->c.written_seq != w->c.synced_seq) {
        TL_ASSERT(w->c.written_seq > w->c.synced_seq);
        publish_durable(w);
        w->c.synced_seq = w->c.written_seq;
        if (w->ops.on_durable != NULL && !w->c.in_open)
            w->ops.on_durable(w->ops.ctx, w->c.written_seq, w->c.written_seg, w->c.written_off);
    }
    /* release: pairs with the producer's acquire in sync_ready. */
    atomic_store_explicit(&w->durable_pos, w->c.pos, memory_order_release);
    notify_producer(w);
    return TL_WAL_OK;
}

/* Writer ordering 2: header under .tmp, fdatasync, rename, fsync(dir). */
static enum tl_wal_err create_segment(tl_wal *w, const seg_marker *m, int *fd_out) {
    char fin[TL_SEG_NAME_BYTES + 1], tmp[TL_SEG_NAME_BYTES + 8];
    tl_seg_name(fin, sizeof fin, m->first_seq);
    snprintf(tmp, sizeof tmp, "%s.tmp", fin);
    int fd = openat(w->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) {
        /* A leftover of a crash during creation: never renamed, never read. */
        if (unlinkat(w->dirfd, tmp, 0) != 0)
            return io_failed(w, "unlinkat");
        fd = openat(w->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    }
    if (fd < 0)
        return io_failed(w, "openat");
    const char *op = NULL;
    if (fallocate(fd, 0, 0, (off_t)m->segment_bytes) != 0) {
        if (errno != EOPNOTSUPP || ftruncate(fd, (off_t)m->segment_bytes) != 0)
            op = "fallocate";
    }
    tl_seg_hdr h;
    memset(&h, 0, sizeof h);
    h.version = TL_SEG_VERSION;
    h.header_len = TL_SEG_HDR_BYTES;
    h.segment_index = m->segment_index;
    h.first_seq = m->first_seq;
    h.prev_checksum = m->prev_checksum;
    h.fence = m->fence;
    memcpy(h.engine_id, w->cfg.engine_id, TL_ID_BYTES);
    h.created_ns = writer_real_ns(w);
    h.segment_size = m->segment_bytes;
    memcpy(h.leader_id, m->leader_id, TL_ID_BYTES);
    tl_seg_hdr_seal(&h);
    if (op == NULL && pwrite_full(fd, (const uint8_t *)&h, sizeof h, 0) != 0)
        op = "pwrite";
    if (op == NULL && fdatasync_retry(fd) != 0)
        op = "fdatasync";
    if (op == NULL && renameat2(w->dirfd, tmp, w->dirfd, fin, RENAME_NOREPLACE) != 0) {
        if (errno == EINVAL || errno == ENOSYS) {
            /* A filesystem without RENAME_NOREPLACE: check, then rename. */
            struct stat st;
            if (fstatat(w->dirfd, fin, &st, 0) == 0) {
                errno = EEXIST;
                op = "renameat";
            } else if (renameat(w->dirfd, tmp, w->dirfd, fin) != 0) {
                op = "renameat";
            }
        } else {
            op = "renameat2";
        }
    }
    if (op == NULL && fsync_retry(w->dirfd) != 0)
        op = "fsync(dir)";
    if (op != NULL) {
        int err = errno;
        close(fd);
        unlinkat(w->dirfd, tmp, 0);
        errno = err;
        return io_failed(w, op);
    }
    *fd_out = fd;
    return TL_WAL_OK;
}

static enum tl_wal_err segment_switch(tl_wal *w, const seg_marker *m) {
    if (w->c.fd >= 0) {
        /* Writer ordering 1: segment i is durable before segment i+1 exists,
         * so "sealed => complete" holds for every reader. */
        enum tl_wal_err rc = do_sync(w);
        if (rc != TL_WAL_OK)
            return rc;
        close(w->c.fd);
        w->c.fd = -1;
    }
    int fd = -1;
    enum tl_wal_err rc = create_segment(w, m, &fd);
    if (rc != TL_WAL_OK)
        return rc;
    w->c.fd = fd;
    w->c.seg_first_seq = m->first_seq;
    w->c.seg_off = TL_SEG_HDR_BYTES;
    w->c.seg_bytes = m->segment_bytes;
    return TL_WAL_OK;
}

/* Releases ring room up to pos. */
static void release_tail(tl_wal *w, uint64_t pos) {
    w->c.pos = pos;
    /* release: our reads of the entries below pos (the pwrite returned) are
     * done before the producer, acquiring tail, overwrites them. */
    atomic_store_explicit(&w->tail, pos, memory_order_release);
    notify_producer(w);
}

typedef struct run {
    uint64_t ring_pos; /* ring position of the first byte */
    uint64_t file_off;
    uint64_t bytes;
    uint64_t records;
    uint64_t last_seq;
} run;

static enum tl_wal_err flush_run(tl_wal *w, run *r, uint64_t pos_after) {
    if (r->bytes > 0) {
        TL_ASSERT((r->ring_pos & w->mask) + r->bytes <= w->staging_bytes);
        const uint8_t *src = w->staging + (r->ring_pos & w->mask);
        if (pwrite_full(w->c.fd, src, r->bytes, r->file_off) != 0)
            return io_failed(w, "pwrite");
        /* max: only a fault's lower seq (tl_wal_append_raw) can come after a
         * higher one; durable_seq never goes back. */
        if (r->last_seq > w->c.written_seq)
            w->c.written_seq = r->last_seq;
        w->c.written_seg = w->c.seg_first_seq;
        w->c.written_off = r->file_off + r->bytes;
        if (w->c.unsynced_bytes == 0)
            w->c.unsynced_since_ns = mono_ns();
        w->c.unsynced_bytes += r->bytes;
        w->c.unsynced_records += r->records;
    }
    release_tail(w, pos_after);
    r->ring_pos = pos_after;
    r->file_off += r->bytes; /* the next run starts where this one ended */
    r->bytes = 0;
    r->records = 0;
    TL_ASSERT(r->file_off == w->c.seg_off);
    return TL_WAL_OK;
}

/* An armed fault on the record at p (ring position pos). */
static enum tl_wal_err apply_fault(tl_wal *w, int kind, uint32_t arg, const uint8_t *p,
                                   uint32_t len, uint64_t *pos) {
    uint64_t off = w->c.seg_off;
    if (kind == TL_WAL_FAULT_TEAR) {
        uint32_t k = arg < len ? arg : len - 1;
        if (k > 0 && pwrite_full(w->c.fd, p, k, off) != 0)
            return io_failed(w, "pwrite");
        /* A crash: nothing after this, no sync. */
        return set_failed(w, TL_WAL_ERR_FAILED, "fault_tear", 0);
    }
    TL_ASSERT(kind == TL_WAL_FAULT_FLIP);
    memcpy(w->c.scratch, p, len);
    w->c.scratch[arg % len] ^= 0xffu;
    if (pwrite_full(w->c.fd, w->c.scratch, len, off) != 0)
        return io_failed(w, "pwrite");
    const tl_rec_hdr *h = tl_rec_hdr_of(p);
    if (h->seq > w->c.written_seq)
        w->c.written_seq = h->seq;
    w->c.written_seg = w->c.seg_first_seq;
    w->c.written_off = off + len;
    if (w->c.unsynced_bytes == 0)
        w->c.unsynced_since_ns = mono_ns();
    w->c.unsynced_bytes += len;
    w->c.unsynced_records++;
    w->c.seg_off = off + len;
    *pos += len;
    release_tail(w, *pos);
    return TL_WAL_OK;
}

/* Moves every published entry to the files (no sync, but a segment switch
 * syncs the segment it leaves). */
static enum tl_wal_err consumer_drain(tl_wal *w) {
    if (failed_of(w) != TL_WAL_OK)
        return failed_of(w);
    /* acquire: pairs with publish(); every entry below head is written. */
    uint64_t head = atomic_load_explicit(&w->head, memory_order_acquire);
    /* acquire: pairs with tl_wal_fault_arm's release; loaded after head, so a
     * fault armed before its record was published is seen. */
    int fkind = atomic_load_explicit(&w->fault_kind, memory_order_acquire);
    uint64_t fseq = atomic_load_explicit(&w->fault_seq, memory_order_relaxed);
    uint32_t farg = atomic_load_explicit(&w->fault_arg, memory_order_relaxed);
    uint64_t pos = w->c.pos;
    run r = {pos, w->c.seg_off, 0, 0, 0};
    enum tl_wal_err rc = TL_WAL_OK;
    /* Bounded: each step consumes an entry of at least 64 bytes. */
    while (pos != head && rc == TL_WAL_OK) {
        TL_ASSERT(head - pos <= w->staging_bytes);
        const uint8_t *p = w->staging + (pos & w->mask);
        const tl_rec_hdr *h = tl_rec_hdr_of(p);
        TL_ASSERT(h->len >= TL_REC_HDR_BYTES && (h->len & 7u) == 0 && h->len <= head - pos);
        if (h->kind == TL_KIND_INVALID) {
            rc = flush_run(w, &r, pos);
            if (rc != TL_WAL_OK)
                break;
            if (h->checksum == MARK_SEG) {
                rc = segment_switch(w, (const seg_marker *)p);
                if (rc != TL_WAL_OK)
                    break;
            } else {
                TL_ASSERT(h->checksum == MARK_WRAP);
            }
            pos += h->len;
            r = (run){pos, w->c.seg_off, 0, 0, 0};
            release_tail(w, pos);
            continue;
        }
        TL_ASSERT(w->c.fd >= 0 && w->c.seg_off + h->len <= w->c.seg_bytes);
        if (fkind != TL_WAL_FAULT_NONE && h->seq == fseq) {
            rc = flush_run(w, &r, pos);
            if (rc != TL_WAL_OK)
                break;
            /* relaxed: only the consumer disarms; the producer arms again
             * only for a later seq. */
            atomic_store_explicit(&w->fault_kind, TL_WAL_FAULT_NONE, memory_order_relaxed);
            rc = apply_fault(w, fkind, farg, p, h->len, &pos);
            fkind = TL_WAL_FAULT_NONE;
            r = (run){pos, w->c.seg_off, 0, 0, 0};
            continue;
        }
        r.bytes += h->len;
        r.records++;
        if (h->seq > r.last_seq)
            r.last_seq = h->seq;
        w->c.seg_off += h->len;
        pos += h->len;
        /* A run is contiguous in memory too: it ends at the ring's end (an
         * entry that ends exactly there needs no WRAP marker). */
        if (r.bytes >= RUN_MAX_BYTES || (pos & w->mask) == 0)
            rc = flush_run(w, &r, pos);
    }
    if (rc == TL_WAL_OK)
        rc = flush_run(w, &r, pos);
    return rc;
}

static bool sync_due(tl_wal *w, uint64_t now_ns, bool stopping) {
    /* acquire: pairs with tl_wal_sync's release; nothing more is needed
     * since the records it covers were published with head. */
    uint64_t req = atomic_load_explicit(&w->sync_req, memory_order_acquire);
    uint64_t dpos = atomic_load_explicit(&w->durable_pos, memory_order_relaxed);
    if (req > dpos)
        return true;
    if (w->c.unsynced_records == 0)
        return false;
    return stopping || w->c.unsynced_bytes >= w->cfg.group_max_bytes ||
           w->c.unsynced_records >= w->cfg.group_max_records ||
           now_ns - w->c.unsynced_since_ns >= w->cfg.group_max_delay_ns;
}

static void consumer_sleep(tl_wal *w) {
    bool nap = w->c.unsynced_records > 0;
    uint64_t deadline = w->c.unsynced_since_ns + w->cfg.group_max_delay_ns;
    lock(w);
    atomic_store_explicit(&w->sleep_state, nap ? NAP : IDLE, memory_order_relaxed);
    /* seq_cst fence: pairs with kick()'s (see there). */
    atomic_thread_fence(memory_order_seq_cst);
    for (;;) {
        bool work = atomic_load_explicit(&w->head, memory_order_relaxed) != w->c.pos ||
                    atomic_load_explicit(&w->sync_req, memory_order_relaxed) >
                        atomic_load_explicit(&w->durable_pos, memory_order_relaxed) ||
                    atomic_load_explicit(&w->stop, memory_order_relaxed);
        if (work || atomic_load_explicit(&w->sleep_state, memory_order_relaxed) == KICKED)
            break;
        if (nap) {
            struct timespec ts = abs_mono(deadline);
            int rc = pthread_cond_timedwait(&w->c_cv, &w->mu, &ts);
            TL_ASSERT(rc == 0 || rc == ETIMEDOUT);
            if (rc == ETIMEDOUT)
                break;
        } else {
            int rc = pthread_cond_wait(&w->c_cv, &w->mu);
            TL_ASSERT(rc == 0);
        }
    }
    atomic_store_explicit(&w->sleep_state, AWAKE, memory_order_relaxed);
    unlock(w);
}

static void *consumer_main(void *arg) {
    tl_wal *w = arg;
    for (;;) {
        enum tl_wal_err rc = consumer_drain(w);
        /* acquire: pairs with tl_wal_close's release of stop, after its last
         * publish; the drain below sees everything. */
        bool stopping = atomic_load_explicit(&w->stop, memory_order_acquire);
        if (rc == TL_WAL_OK && sync_due(w, mono_ns(), stopping))
            rc = do_sync(w);
        if (rc != TL_WAL_OK)
            break; /* failed is set; producers were told */
        uint64_t head = atomic_load_explicit(&w->head, memory_order_acquire);
        if (stopping && head == w->c.pos && w->c.unsynced_records == 0)
            break;
        if (head != w->c.pos)
            continue;
        consumer_sleep(w);
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* producer                                                            */

static bool room_ready(tl_wal *w, uint64_t need) {
    /* acquire: see reserve(). */
    w->p.tail_seen = atomic_load_explicit(&w->tail, memory_order_acquire);
    return w->staging_bytes - (w->p.head - w->p.tail_seen) >= need;
}

static bool sync_ready(tl_wal *w, uint64_t target) {
    /* acquire: pairs with do_sync's release of durable_pos. */
    return atomic_load_explicit(&w->durable_pos, memory_order_acquire) >= target;
}

/* Room for an entry of `bytes` at the head (after a WRAP if needed). */
static enum tl_wal_err reserve(tl_wal *w, uint32_t bytes, uint8_t **out) {
    TL_ASSERT(bytes >= TL_REC_HDR_BYTES && (bytes & 7u) == 0 && bytes <= TL_REC_MAX_BYTES);
    uint64_t size = w->staging_bytes;
    for (;;) {
        enum tl_wal_err f = failed_of(w);
        if (f != TL_WAL_OK)
            return TL_WAL_ERR_FAILED;
        uint64_t r = size - (w->p.head & w->mask);
        bool wrap = !(bytes <= r && (r - bytes == 0 || r - bytes >= TL_REC_HDR_BYTES));
        uint64_t need = wrap ? r + bytes : bytes;
        if (size - (w->p.head - w->p.tail_seen) >= need || room_ready(w, need)) {
            if (wrap) {
                TL_ASSERT(r >= TL_REC_HDR_BYTES);
                tl_rec_hdr *m = (tl_rec_hdr *)(w->staging + (w->p.head & w->mask));
                memset(m, 0, sizeof *m);
                m->checksum = MARK_WRAP;
                m->len = (uint32_t)r;
                w->p.head += r;
            }
            *out = w->staging + (w->p.head & w->mask);
            return TL_WAL_OK;
        }
        /* The ring is full: the disk is behind by staging_bytes. */
        if (!w->threaded) {
            /* Publish what is staged (a WRAP is only written once room is
             * found, so head is an entry boundary) and write it out. */
            atomic_store_explicit(&w->head, w->p.head, memory_order_release);
            enum tl_wal_err rc = consumer_drain(w);
            if (rc != TL_WAL_OK)
                return TL_WAL_ERR_FAILED;
        } else {
            atomic_store_explicit(&w->head, w->p.head, memory_order_release);
            producer_wait(w, room_ready, need);
        }
    }
}

/* Makes the staged entries visible to the consumer. */
static void publish(tl_wal *w) {
    /* release: the entry bytes are written before the consumer, acquiring
     * head, reads them. */
    atomic_store_explicit(&w->head, w->p.head, memory_order_release);
    if (w->threaded)
        kick(w, false);
}

/* Encodes the next record of the chain at the head and commits it. The
 * caller has placed it (seg_off + len fits). */
static enum tl_wal_err emit(tl_wal *w, uint16_t kind, uint32_t symbol, uint64_t fence,
                            const void *body, uint32_t body_len, uint64_t ts_ns,
                            tl_wal_appended *out) {
    uint32_t len = tl_rec_len_for_body(body_len);
    TL_ASSERT(w->p.seg_off + len <= w->p.seg_bytes);
    uint8_t *dst;
    enum tl_wal_err rc = reserve(w, len, &dst);
    if (rc != TL_WAL_OK)
        return rc;
    tl_rec_meta m = {.parent = w->p.last_checksum,
                     .seq = w->p.next_seq,
                     .fence = fence,
                     .ts_ns = ts_ns,
                     .kind = kind,
                     .flags = 0,
                     .symbol = symbol};
    uint32_t got = tl_rec_encode(dst, len, &m, body, body_len);
    TL_ASSERT(got == len);
    /* Nothing is published until the fields are right: the writer never
     * writes a record a reader would call WAL_CORRUPT. */
    if (tl_rec_check_fields(dst, TL_WHERE_WAL, false) != TL_REC_OK)
        return TL_WAL_ERR_RECORD;
    const tl_rec_hdr *h = tl_rec_hdr_of(dst);
    if (out != NULL) {
        *out = (tl_wal_appended){.seq = h->seq,
                                 .checksum = h->checksum,
                                 .segment_first_seq = w->p.seg_first_seq,
                                 .offset = w->p.seg_off,
                                 .rec = dst,
                                 .len = len};
    }
    w->p.head += len;
    w->p.seg_off += len;
    w->p.last_checksum = h->checksum;
    w->p.next_seq++;
    if (w->ops.on_record != NULL)
        w->ops.on_record(w->ops.ctx, dst, len);
    return TL_WAL_OK;
}

static bool opener_valid(const tl_wal_opener_symbol *s) {
    size_t n = strnlen(s->name, TL_SYMBOL_NAME_MAX);
    for (size_t i = n; i < TL_SYMBOL_NAME_MAX; i++) {
        if (s->name[i] != '\0')
            return false;
    }
    return s->symbol != 0 && tl_symbol_name_valid(s->name, n) && s->mode < TL_MODE_COUNT &&
           s->withdrawals_halted <= 1;
}

/* Writes the openers of the segment records now go to: SYMBOL for each
 * listed symbol, then (restate) the MODE_CHANGE restatements. */
static enum tl_wal_err write_openers(tl_wal *w, uint32_t nsym, bool restate, uint32_t gmode,
                                     uint32_t gwd, uint64_t ts_ns) {
    const tl_wal_opener_symbol *s = w->p.syms;
    for (uint32_t i = 0; i < nsym; i++) {
        tl_body_symbol b;
        memcpy(b.name, s[i].name, sizeof b.name);
        enum tl_wal_err rc =
            emit(w, TL_KIND_SYMBOL, s[i].symbol, w->p.fence, &b, sizeof b, ts_ns, NULL);
        if (rc != TL_WAL_OK)
            return rc;
    }
    if (!restate)
        return TL_WAL_OK;
    tl_body_mode_change mc;
    mc.mode = gmode;
    mc.withdrawals_halted = gwd;
    memset(mc.command_id, 0xff, sizeof mc.command_id);
    enum tl_wal_err rc = emit(w, TL_KIND_MODE_CHANGE, 0, w->p.fence, &mc, sizeof mc, ts_ns, NULL);
    for (uint32_t i = 0; i < nsym && rc == TL_WAL_OK; i++) {
        if (s[i].mode == TL_MODE_NORMAL)
            continue;
        mc.mode = s[i].mode;
        mc.withdrawals_halted = s[i].withdrawals_halted;
        rc = emit(w, TL_KIND_MODE_CHANGE, s[i].symbol, w->p.fence, &mc, sizeof mc, ts_ns, NULL);
    }
    return rc;
}

/* Asks the engine for the openers and checks they fit with `then_len`
 * after them in a fresh segment. */
static enum tl_wal_err gather_openers(tl_wal *w, bool restate, uint32_t then_len, uint32_t *nsym,
                                      uint32_t *gmode, uint32_t *gwd) {
    *nsym = 0;
    *gmode = TL_MODE_NORMAL;
    *gwd = 0;
    if (w->ops.symbols == NULL)
        return TL_WAL_OK;
    uint32_t n = w->ops.symbols(w->ops.ctx, w->p.syms, w->cfg.max_symbols);
    TL_ASSERT(n <= w->cfg.max_symbols); /* the callback's contract */
    for (uint32_t i = 0; i < n; i++) {
        if (!opener_valid(&w->p.syms[i]))
            return TL_WAL_ERR_RECORD;
    }
    if (w->ops.global_mode != NULL)
        w->ops.global_mode(w->ops.ctx, gmode, gwd);
    if (*gmode >= TL_MODE_COUNT || *gwd > 1)
        return TL_WAL_ERR_RECORD;
    uint64_t bytes = (uint64_t)n * SYMBOL_REC_BYTES;
    if (restate)
        bytes += (1u + (uint64_t)opener_count_restated(w->p.syms, n)) * MODE_REC_BYTES;
    if (TL_SEG_HDR_BYTES + bytes + then_len > w->cfg.segment_bytes)
        return TL_WAL_ERR_TOO_BIG;
    *nsym = n;
    return TL_WAL_OK;
}

/* Starts a new segment (the first of the log if `first`), with openers
 * unless `openers` is false, so that a record of then_len fits after them. */
static enum tl_wal_err start_segment(tl_wal *w, bool first, bool openers, uint32_t then_len,
                                     uint64_t ts_ns) {
    uint32_t nsym = 0, gmode = 0, gwd = 0;
    if (TL_SEG_HDR_BYTES + (uint64_t)then_len > w->cfg.segment_bytes)
        return TL_WAL_ERR_TOO_BIG;
    if (openers) {
        enum tl_wal_err rc = gather_openers(w, !first, then_len, &nsym, &gmode, &gwd);
        if (rc != TL_WAL_OK)
            return rc;
    }
    uint8_t *dst;
    enum tl_wal_err rc = reserve(w, sizeof(seg_marker), &dst);
    if (rc != TL_WAL_OK)
        return rc;
    seg_marker *m = (seg_marker *)dst;
    memset(m, 0, sizeof *m);
    m->h.checksum = MARK_SEG;
    m->h.len = sizeof *m;
    m->segment_index = first ? 0 : w->p.seg_index + 1;
    m->first_seq = w->p.next_seq;
    m->prev_checksum = w->p.last_checksum;
    m->fence = w->p.fence;
    m->segment_bytes = w->cfg.segment_bytes;
    memcpy(m->leader_id, w->p.leader_id, TL_ID_BYTES);
    w->p.head += sizeof *m;
    w->p.seg_index = m->segment_index;
    w->p.seg_first_seq = m->first_seq;
    w->p.seg_off = TL_SEG_HDR_BYTES;
    w->p.seg_bytes = m->segment_bytes;
    w->p.roll_pending = false;
    if (!openers)
        return TL_WAL_OK;
    return write_openers(w, nsym, !first, gmode, gwd, ts_ns);
}

/* Makes room for a record of len in the current segment. */
static enum tl_wal_err place(tl_wal *w, uint32_t len, bool openers, uint64_t ts_ns) {
    if (!w->p.roll_pending && w->p.seg_off + len <= w->p.seg_bytes)
        return TL_WAL_OK;
    return start_segment(w, false, openers && w->ops.symbols != NULL, len, ts_ns);
}

/* Group commit without a thread; with one, publish() kicked the consumer. */
static enum tl_wal_err after_append(tl_wal *w) {
    publish(w);
    if (w->threaded)
        return TL_WAL_OK;
    bool full = w->p.head - atomic_load_explicit(&w->durable_pos, memory_order_relaxed) >=
                    w->cfg.group_max_bytes ||
                (w->p.next_seq - 1) - w->c.synced_seq >= w->cfg.group_max_records;
    if (!full && w->cfg.group_max_delay_ns == 0)
        full = true;
    if (!full) {
        uint64_t now = mono_ns();
        if (w->p.unsynced_since_ns == 0)
            w->p.unsynced_since_ns = now;
        else if (now - w->p.unsynced_since_ns >= w->cfg.group_max_delay_ns)
            full = true;
    }
    if (!full)
        return TL_WAL_OK;
    w->p.unsynced_since_ns = 0;
    enum tl_wal_err rc = consumer_drain(w);
    if (rc == TL_WAL_OK)
        rc = do_sync(w);
    return rc == TL_WAL_OK ? TL_WAL_OK : TL_WAL_ERR_FAILED;
}

static enum tl_wal_err check_usable(tl_wal *w) {
    return failed_of(w) != TL_WAL_OK ? TL_WAL_ERR_FAILED : TL_WAL_OK;
}

enum tl_wal_err tl_wal_append(tl_wal *w, uint16_t kind, uint32_t symbol, const void *body,
                              uint32_t body_len, uint64_t ts_ns, tl_wal_appended *out) {
    enum tl_wal_err rc = check_usable(w);
    if (rc != TL_WAL_OK)
        return rc;
    if (kind == TL_KIND_INVALID || kind == TL_KIND_PAD || kind == TL_KIND_LEADER_CHANGE)
        return TL_WAL_ERR_KIND;
    if (body_len > TL_REC_BODY_MAX)
        return TL_WAL_ERR_TOO_BIG;
    if (body_len < tl_kind_v1_body_bytes(kind) || (body_len > 0 && body == NULL))
        return TL_WAL_ERR_RECORD;
    uint32_t len = tl_rec_len_for_body(body_len);
    rc = place(w, len, true, ts_ns);
    if (rc == TL_WAL_OK)
        rc = emit(w, kind, symbol, w->p.fence, body, body_len, ts_ns, out);
    if (rc != TL_WAL_OK) {
        publish(w); /* whatever the roll staged stays valid */
        return rc;
    }
    return after_append(w);
}

enum tl_wal_err tl_wal_leader_change(tl_wal *w, uint64_t new_fence,
                                     const uint8_t leader_id[TL_ID_BYTES], uint64_t ts_ns,
                                     tl_wal_appended *out) {
    enum tl_wal_err rc = check_usable(w);
    if (rc != TL_WAL_OK)
        return rc;
    if (new_fence <= w->p.fence)
        return TL_WAL_ERR_FENCE;
    tl_body_leader_change b;
    b.new_fence = new_fence;
    b.prev_fence = w->p.fence;
    memcpy(b.leader_id, leader_id, TL_ID_BYTES);
    /* A roll here writes its openers (and its header) with the old fence:
     * the fence in force before the segment's first record. */
    rc = place(w, LEADER_REC_BYTES, true, ts_ns);
    if (rc == TL_WAL_OK)
        rc = emit(w, TL_KIND_LEADER_CHANGE, 0, new_fence, &b, sizeof b, ts_ns, out);
    if (rc != TL_WAL_OK) {
        publish(w);
        return rc;
    }
    w->p.fence = new_fence;
    memcpy(w->p.leader_id, leader_id, TL_ID_BYTES);
    return after_append(w);
}

enum tl_wal_err tl_wal_append_record(tl_wal *w, const uint8_t *rec, uint32_t len,
                                     tl_wal_appended *out) {
    enum tl_wal_err rc = check_usable(w);
    if (rc != TL_WAL_OK)
        return rc;
    if (len < TL_REC_HDR_BYTES || len > TL_REC_MAX_BYTES || (len & 7u) != 0)
        return TL_WAL_ERR_RECORD;
    uint8_t *s = w->p.scratch;
    memcpy(s, rec, len);
    bool replay = false;
    if (tl_rec_verify(s, len, TL_WHERE_WAL, &replay) != TL_REC_OK || tl_rec_hdr_of(s)->len != len)
        return TL_WAL_ERR_RECORD;
    const tl_rec_hdr *h = tl_rec_hdr_of(s);
    if (h->seq != w->p.next_seq)
        return TL_WAL_ERR_SEQ;
    if (h->parent != w->p.last_checksum)
        return TL_WAL_ERR_PARENT;
    uint64_t new_fence = w->p.fence;
    tl_body_leader_change lc;
    if (h->kind == TL_KIND_LEADER_CHANGE) {
        memcpy(&lc, s + TL_REC_HDR_BYTES, sizeof lc);
        if (lc.new_fence != h->fence || lc.prev_fence != w->p.fence ||
            lc.new_fence <= lc.prev_fence)
            return TL_WAL_ERR_FENCE;
        new_fence = lc.new_fence;
    } else if (h->fence != w->p.fence) {
        return TL_WAL_ERR_FENCE;
    }
    /* Openers would take seqs the leader's records carry: none here. */
    rc = place(w, len, false, h->ts_ns);
    uint8_t *dst = NULL;
    if (rc == TL_WAL_OK)
        rc = reserve(w, len, &dst);
    if (rc != TL_WAL_OK) {
        publish(w);
        return rc;
    }
    memcpy(dst, s, len);
    if (out != NULL) {
        *out = (tl_wal_appended){.seq = h->seq,
                                 .checksum = h->checksum,
                                 .segment_first_seq = w->p.seg_first_seq,
                                 .offset = w->p.seg_off,
                                 .rec = dst,
                                 .len = len};
    }
    w->p.head += len;
    w->p.seg_off += len;
    w->p.last_checksum = h->checksum;
    w->p.next_seq++;
    if (h->kind == TL_KIND_LEADER_CHANGE) {
        w->p.fence = new_fence;
        memcpy(w->p.leader_id, lc.leader_id, TL_ID_BYTES);
    }
    if (w->ops.on_record != NULL)
        w->ops.on_record(w->ops.ctx, dst, len);
    return after_append(w);
}

enum tl_wal_err tl_wal_append_raw(tl_wal *w, const uint8_t *rec, uint32_t len,
                                  tl_wal_appended *out) {
    enum tl_wal_err rc = check_usable(w);
    if (rc != TL_WAL_OK)
        return rc;
    if (len < TL_REC_HDR_BYTES || len > TL_REC_MAX_BYTES || (len & 7u) != 0)
        return TL_WAL_ERR_RECORD;
    uint8_t *s = w->p.scratch;
    memcpy(s, rec, len);
    bool replay = false;
    if (tl_rec_verify(s, len, TL_WHERE_WAL, &replay) != TL_REC_OK || tl_rec_hdr_of(s)->len != len)
        return TL_WAL_ERR_RECORD;
    const tl_rec_hdr *h = tl_rec_hdr_of(s);
    if (h->kind == TL_KIND_LEADER_CHANGE)
        return TL_WAL_ERR_KIND;
    /* No openers: they would take seqs from next_seq, which the fault may
     * have just skipped or be about to reuse. */
    rc = place(w, len, false, h->ts_ns);
    uint8_t *dst = NULL;
    if (rc == TL_WAL_OK)
        rc = reserve(w, len, &dst);
    if (rc != TL_WAL_OK) {
        publish(w);
        return rc;
    }
    memcpy(dst, s, len);
    if (out != NULL) {
        *out = (tl_wal_appended){.seq = h->seq,
                                 .checksum = h->checksum,
                                 .segment_first_seq = w->p.seg_first_seq,
                                 .offset = w->p.seg_off,
                                 .rec = dst,
                                 .len = len};
    }
    w->p.head += len;
    w->p.seg_off += len;
    if (h->seq >= w->p.next_seq) {
        w->p.next_seq = h->seq + 1;
        w->p.last_checksum = h->checksum;
    }
    if (h->fence > w->p.fence)
        w->p.fence = h->fence;
    if (w->ops.on_record != NULL)
        w->ops.on_record(w->ops.ctx, dst, len);
    return after_append(w);
}

enum tl_wal_err tl_wal_roll(tl_wal *w) {
    enum tl_wal_err rc = check_usable(w);
    if (rc != TL_WAL_OK)
        return rc;
    /* A segment holds at least one record: an empty one is not left behind. */
    if (w->p.seg_off > TL_SEG_HDR_BYTES)
        w->p.roll_pending = true;
    return TL_WAL_OK;
}

enum tl_wal_err tl_wal_sync(tl_wal *w) {
    enum tl_wal_err rc = check_usable(w);
    if (rc != TL_WAL_OK)
        return rc;
    publish(w);
    if (!w->threaded) {
        w->p.unsynced_since_ns = 0;
        rc = consumer_drain(w);
        if (rc == TL_WAL_OK)
            rc = do_sync(w);
        return rc == TL_WAL_OK ? TL_WAL_OK : TL_WAL_ERR_FAILED;
    }
    uint64_t target = w->p.head;
    /* release: the request is seen after the head it names (published
     * above); the consumer acquires it in sync_due. */
    atomic_store_explicit(&w->sync_req, target, memory_order_release);
    producer_wait(w, sync_ready, target);
    return check_usable(w);
}

enum tl_wal_err tl_wal_poll(tl_wal *w) {
    enum tl_wal_err rc = check_usable(w);
    if (rc != TL_WAL_OK || w->threaded)
        return rc;
    if (w->p.unsynced_since_ns == 0 ||
        mono_ns() - w->p.unsynced_since_ns < w->cfg.group_max_delay_ns)
        return TL_WAL_OK;
    return tl_wal_sync(w);
}

void tl_wal_durable(tl_wal *w, tl_walseg_durable *out) {
    /* The seqlock read of ring.md; the writer holds it odd for three stores,
     * so a few tries suffice; yield if it is descheduled mid-update. */
    for (uint32_t tries = 0;; tries++) {
        uint64_t g1 = atomic_load_explicit(&w->dur_gen, memory_order_acquire);
        out->seq = atomic_load_explicit(&w->dur_seq, memory_order_relaxed);
        out->segment_first_seq = atomic_load_explicit(&w->dur_seg, memory_order_relaxed);
        out->offset = atomic_load_explicit(&w->dur_off, memory_order_relaxed);
        /* acquire fence: the field loads happen before the second gen load. */
        atomic_thread_fence(memory_order_acquire);
        uint64_t g2 = atomic_load_explicit(&w->dur_gen, memory_order_relaxed);
        if (g1 == g2 && (g1 & 1u) == 0)
            return;
        TL_ASSERT(tries < (1u << 24));
        if ((tries & 63u) == 63u)
            sched_yield();
    }
}

uint64_t tl_wal_next_seq(const tl_wal *w) {
    return w->p.next_seq;
}

uint64_t tl_wal_last_checksum(const tl_wal *w) {
    return w->p.last_checksum;
}

uint64_t tl_wal_fence(const tl_wal *w) {
    return w->p.fence;
}

tl_wal_ioerr tl_wal_last_ioerr(tl_wal *w) {
    /* The consumer's failure (read after the acquire in failed_of), else the
     * producer's own last error. */
    if (failed_of(w) == TL_WAL_OK)
        return w->p.ioerr;
    return w->ioerr;
}

enum tl_wal_err tl_wal_fault_arm(tl_wal *w, enum tl_wal_fault_kind kind, uint64_t seq,
                                 uint32_t arg) {
    if (kind != TL_WAL_FAULT_TEAR && kind != TL_WAL_FAULT_FLIP)
        return TL_WAL_ERR_CONFIG;
    if (seq < w->p.next_seq)
        return TL_WAL_ERR_SEQ;
    atomic_store_explicit(&w->fault_seq, seq, memory_order_relaxed);
    atomic_store_explicit(&w->fault_arg, arg, memory_order_relaxed);
    /* release: seq and arg are visible to the consumer that acquires kind. */
    atomic_store_explicit(&w->fault_kind, (int)kind, memory_order_release);
    return TL_WAL_OK;
}

enum tl_wal_err tl_wal_retire(tl_wal *w, uint64_t keep_from_seq, uint32_t *deleted) {
    uint32_t n = 0;
    if (deleted != NULL)
        *deleted = 0;
    enum tl_wal_err rc = tl_wal_dir_scan(&w->list, w->dirfd);
    if (rc != TL_WAL_OK) {
        w->p.ioerr = w->list.ioerr;
        return rc;
    }
    /* Segment i holds seqs [first_i, first_{i+1}): it goes iff
     * first_{i+1} <= keep_from_seq. The newest never goes (i + 1 < count):
     * the consumer writes only the newest, so this races with nothing. */
    for (uint32_t i = 0; i + 1 < w->list.count; i++) {
        if (w->list.first_seqs[i + 1] > keep_from_seq)
            break;
        char name[TL_SEG_NAME_BYTES + 1];
        tl_seg_name(name, sizeof name, w->list.first_seqs[i]);
        if (unlinkat(w->dirfd, name, 0) != 0 && errno != ENOENT) {
            w->p.ioerr = (tl_wal_ioerr){"unlinkat", errno};
            rc = TL_WAL_ERR_IO;
            break;
        }
        n++;
    }
    if (n > 0 && fsync_retry(w->dirfd) != 0 && rc == TL_WAL_OK) {
        w->p.ioerr = (tl_wal_ioerr){"fsync(dir)", errno};
        rc = TL_WAL_ERR_IO;
    }
    if (deleted != NULL)
        *deleted = n;
    return rc;
}

/* ------------------------------------------------------------------ */
/* open, recovery, close                                               */

static bool config_valid(const tl_wal_config *c) {
    uint64_t s = c->staging_bytes, win = c->recovery_window;
    return c->dir != NULL && c->segment_bytes % 4096u == 0 &&
           c->segment_bytes >= TL_SEG_MIN_BYTES && c->segment_bytes <= TL_SEG_MAX_BYTES &&
           s >= TL_WAL_MIN_STAGING_BYTES && (s & (s - 1)) == 0 && s <= (1ull << 34) &&
           c->max_symbols > 0 && c->max_symbols <= (1u << 20) && c->group_max_bytes > 0 &&
           c->group_max_records > 0 && win >= 2 && (win & (win - 1)) == 0 && win <= (1ull << 30);
}

void tl_wal_config_default(tl_wal_config *c) {
    memset(c, 0, sizeof *c);
    c->segment_bytes = TL_WAL_DEFAULT_SEGMENT_BYTES;
    c->max_symbols = TL_WAL_DEFAULT_MAX_SYMBOLS;
    c->staging_bytes = TL_WAL_DEFAULT_STAGING_BYTES;
    c->group_max_bytes = TL_WAL_DEFAULT_GROUP_BYTES;
    c->group_max_records = TL_WAL_DEFAULT_GROUP_RECORDS;
    c->group_max_delay_ns = TL_WAL_DEFAULT_GROUP_DELAY_NS;
    c->recovery_full_scan = true;
    c->recovery_window = TL_WAL_DEFAULT_RECOVERY_WINDOW;
}

/* What the recovery scan keeps. */
typedef struct scan_state {
    uint64_t newest;         /* first_seq of the newest segment */
    bool newest_has_payload; /* a record other than an opener in it */
    uint64_t last_seg;       /* where the last record ends */
    uint64_t last_end;
    tl_finding first;
    uint64_t findings;
} scan_state;

static void scan_emit(void *ctx, const tl_finding *f) {
    scan_state *s = ctx;
    if (s->findings++ == 0)
        s->first = *f;
}

static bool is_opener(const tl_rec_view *v) {
    if (v->kind == TL_KIND_SYMBOL)
        return true;
    if (v->kind != TL_KIND_MODE_CHANGE || v->body_len < sizeof(tl_body_mode_change))
        return false;
    tl_body_mode_change b;
    memcpy(&b, v->body, sizeof b);
    return tl_id_is_restatement(b.command_id);
}

static int scan_record(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result res) {
    (void)res;
    scan_state *s = ctx;
    if (loc->segment == s->newest && !is_opener(v))
        s->newest_has_payload = true;
    s->last_seg = loc->segment;
    s->last_end = loc->offset + v->len;
    return 0;
}

/* Zeros [off, size) of the segment and syncs it (writer ordering 4). */
static enum tl_wal_err cut_tail(tl_wal *w, int fd, uint64_t off, uint64_t size) {
    if (off < size) {
        if (fallocate(fd, FALLOC_FL_ZERO_RANGE, (off_t)off, (off_t)(size - off)) != 0) {
            if (errno != EOPNOTSUPP)
                return io_failed(w, "fallocate(zero_range)");
            /* No ZERO_RANGE here: write the zeros. */
            memset(w->c.scratch, 0, TL_REC_MAX_BYTES);
            for (uint64_t at = off; at < size;) {
                uint64_t k = size - at < TL_REC_MAX_BYTES ? size - at : TL_REC_MAX_BYTES;
                if (pwrite_full(fd, w->c.scratch, (size_t)k, at) != 0)
                    return io_failed(w, "pwrite(zeros)");
                at += k;
            }
        }
    }
    if (fdatasync_retry(fd) != 0)
        return io_failed(w, "fdatasync");
    return TL_WAL_OK;
}

static void consumer_at(tl_wal *w, int fd, uint64_t seg, uint64_t off, uint64_t bytes) {
    w->c.fd = fd;
    w->c.seg_first_seq = seg;
    w->c.seg_off = off;
    w->c.seg_bytes = bytes;
}

static enum tl_wal_err recover(tl_wal *w, tl_wal_recovered *rec) {
    enum tl_wal_err rc = tl_wal_dir_scan(&w->list, w->dirfd);
    if (rc != TL_WAL_OK) {
        w->p.ioerr = w->list.ioerr;
        return rc;
    }
    rec->segments = w->list.count;
    uint64_t now = writer_real_ns(w);
    if (w->list.count == 0) {
        /* A new log: segment 0 at seq 1, parent 0, the initial fence. */
        rec->new_log = true;
        rec->anchor_verified = true;
        w->p.next_seq = 1;
        w->p.last_checksum = 0;
        w->p.fence = w->cfg.initial_fence;
        memcpy(w->p.leader_id, w->cfg.initial_leader_id, TL_ID_BYTES);
        rc = start_segment(w, true, w->ops.symbols != NULL, 0, now);
        if (rc != TL_WAL_OK)
            return rc;
        publish(w);
        rc = consumer_drain(w);
        if (rc == TL_WAL_OK)
            rc = do_sync(w);
        if (rc != TL_WAL_OK)
            return rc;
    } else {
        scan_state ss;
        memset(&ss, 0, sizeof ss);
        ss.newest = w->list.first_seqs[w->list.count - 1];
        tl_wal_read_opts o;
        memset(&o, 0, sizeof o);
        o.window_records = w->cfg.recovery_window;
        o.dir_max_entries = w->cfg.dir_max_entries;
        if (!w->cfg.recovery_full_scan && w->list.count >= 2)
            o.start_seq = w->list.first_seqs[w->list.count - 2];
        o.sink = (tl_sink){scan_emit, &ss};
        o.on_record = scan_record;
        o.ctx = &ss;
        tl_wal_summary sum;
        rc = tl_wal_read_dir(w->dir, &o, &sum);
        if (rc != TL_WAL_OK) {
            w->p.ioerr = sum.ioerr;
            return rc;
        }
        rec->records_scanned = sum.records_total;
        rec->anchor_verified = sum.anchor_verified;
        rec->findings_total = ss.findings;
        if (ss.findings > 0) {
            rec->first_finding = ss.first;
            return TL_WAL_ERR_CORRUPT;
        }
        if (sum.tail_segment != ss.newest || sum.tail_segment_size == 0)
            return TL_WAL_ERR_NEWEST_HEADER;
        TL_ASSERT(sum.tail == TL_WAL_TAIL_CLEAN || sum.tail == TL_WAL_TAIL_TENTATIVE);
        char name[TL_SEG_NAME_BYTES + 1];
        tl_seg_name(name, sizeof name, ss.newest);
        int fd = openat(w->dirfd, name, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return io_failed(w, "openat");
        consumer_at(w, fd, ss.newest, sum.tail_offset, sum.tail_segment_size);
        /* Truncate after the last valid record: whatever follows it (a torn
         * record, or pages a crash persisted past a hole) was never durable. */
        rc = cut_tail(w, fd, sum.tail_offset, sum.tail_segment_size);
        if (rc != TL_WAL_OK)
            return rc;
        rec->torn = sum.tail == TL_WAL_TAIL_TENTATIVE;
        rec->torn_offset = rec->torn ? sum.tail_offset : 0;

        w->p.next_seq = sum.expected_seq;
        w->p.last_checksum = sum.expected_parent;
        w->p.fence = sum.fence;
        memcpy(w->p.leader_id, sum.leader_id, TL_ID_BYTES);
        w->p.seg_index = sum.tail_segment_index;
        w->p.seg_first_seq = ss.newest;
        w->p.seg_off = sum.tail_offset;
        w->p.seg_bytes = sum.tail_segment_size;
        /* What is on disk is durable now (cut_tail synced the newest; the
         * sealed ones were synced before their successors existed). */
        w->c.written_seq = sum.expected_seq - 1;
        w->c.written_seg = ss.last_seg != 0 ? ss.last_seg : ss.newest;
        w->c.written_off = ss.last_seg != 0 ? ss.last_end : TL_SEG_HDR_BYTES;
        publish_durable(w);
        w->c.synced_seq = w->c.written_seq;

        if (!ss.newest_has_payload && w->ops.symbols != NULL) {
            /* A crash while the segment was starting: its openers may be
             * incomplete. Write them again (a repeated SYMBOL declares the
             * same name, a restatement is state), so a reader that starts
             * here learns every name and mode. */
            uint32_t nsym, gmode, gwd;
            bool restate = sum.tail_segment_index > 0;
            rc = gather_openers(w, restate, 0, &nsym, &gmode, &gwd);
            if (rc == TL_WAL_OK) {
                uint64_t bytes = (uint64_t)nsym * SYMBOL_REC_BYTES +
                                 (restate ? (1u + opener_count_restated(w->p.syms, nsym)) *
                                                (uint64_t)MODE_REC_BYTES
                                          : 0);
                if (w->p.seg_off + bytes > w->p.seg_bytes) {
                    w->p.roll_pending = true; /* the next append rolls, with openers */
                } else if (bytes > 0) {
                    rc = write_openers(w, nsym, restate, gmode, gwd, now);
                    rec->openers_rewritten = true;
                }
            }
            if (rc != TL_WAL_OK)
                return rc;
            publish(w);
            rc = consumer_drain(w);
            if (rc == TL_WAL_OK)
                rc = do_sync(w);
            if (rc != TL_WAL_OK)
                return rc;
        }
    }
    tl_walseg_durable d;
    tl_wal_durable(w, &d);
    rec->last_seq = w->p.next_seq - 1;
    rec->last_checksum = w->p.last_checksum;
    rec->fence = w->p.fence;
    memcpy(rec->leader_id, w->p.leader_id, TL_ID_BYTES);
    rec->segment_first_seq = w->p.seg_first_seq;
    rec->segment_index = w->p.seg_index;
    rec->offset = w->p.seg_off;
    TL_ASSERT(d.seq == rec->last_seq);
    return TL_WAL_OK;
}

/* Leftover "*.tmp" files of a crash during segment creation: never renamed,
 * so never part of the log. */
static enum tl_wal_err remove_stale_tmp(tl_wal *w) {
    int fd = openat(w->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return io_failed(w, "openat");
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return io_failed(w, "fdopendir");
    }
    enum tl_wal_err rc = TL_WAL_OK;
    /* Bounded by the directory: readdir visits each entry once. */
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                rc = io_failed(w, "readdir");
            break;
        }
        char base[TL_SEG_NAME_BYTES + 1];
        size_t n = strlen(de->d_name);
        uint64_t seq;
        if (n != TL_SEG_NAME_BYTES + 4 || strcmp(de->d_name + TL_SEG_NAME_BYTES, ".tmp") != 0)
            continue;
        memcpy(base, de->d_name, TL_SEG_NAME_BYTES);
        base[TL_SEG_NAME_BYTES] = '\0';
        if (!tl_seg_name_parse(base, &seq))
            continue;
        if (unlinkat(w->dirfd, de->d_name, 0) != 0 && errno != ENOENT) {
            rc = io_failed(w, "unlinkat");
            break;
        }
    }
    closedir(d);
    return rc;
}

static void wal_free(tl_wal *w) {
    if (w->c.fd >= 0)
        close(w->c.fd);
    if (w->dirfd >= 0)
        close(w->dirfd); /* drops the flock */
    tl_wal_dir_free(&w->list);
    pthread_cond_destroy(&w->c_cv);
    pthread_cond_destroy(&w->p_cv);
    pthread_mutex_destroy(&w->mu);
    free(w->staging);
    free(w->p.syms);
    free(w->p.scratch);
    free(w->c.scratch);
    free(w->dir);
    free(w);
}

enum tl_wal_err tl_wal_open(tl_wal **out, const tl_wal_config *cfg, const tl_wal_ops *ops,
                            tl_wal_recovered *rec) {
    *out = NULL;
    tl_wal_recovered rec_local;
    if (rec == NULL)
        rec = &rec_local;
    memset(rec, 0, sizeof *rec);
    if (!config_valid(cfg))
        return TL_WAL_ERR_CONFIG;
    tl_wal *w = calloc(1, sizeof *w);
    if (w == NULL)
        return TL_WAL_ERR_NOMEM;
    w->cfg = *cfg;
    w->cfg.dir = NULL;
    if (ops != NULL)
        w->ops = *ops;
    w->dirfd = -1;
    w->c.fd = -1;
    w->staging_bytes = cfg->staging_bytes;
    w->mask = cfg->staging_bytes - 1;
    w->dir = strdup(cfg->dir);
    w->staging = aligned_alloc(4096, cfg->staging_bytes);
    w->p.syms = calloc(cfg->max_symbols, sizeof *w->p.syms);
    w->p.scratch = aligned_alloc(64, TL_REC_MAX_BYTES);
    w->c.scratch = aligned_alloc(64, TL_REC_MAX_BYTES);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->c_cv, &ca);
    pthread_cond_init(&w->p_cv, &ca);
    pthread_condattr_destroy(&ca);
    enum tl_wal_err rc = tl_wal_dir_init(&w->list, cfg->dir_max_entries);
    if (rc == TL_WAL_OK && (w->dir == NULL || w->staging == NULL || w->p.syms == NULL ||
                            w->p.scratch == NULL || w->c.scratch == NULL))
        rc = TL_WAL_ERR_NOMEM;
    if (rc != TL_WAL_OK) {
        wal_free(w);
        return rc;
    }
    /* Touch the staging ring now: no page fault on the hot path later. */
    memset(w->staging, 0, cfg->staging_bytes);

    if (mkdir(cfg->dir, 0755) != 0 && errno != EEXIST) {
        rc = errno == ENOENT ? TL_WAL_ERR_NOT_FOUND : io_failed(w, "mkdir");
    } else {
        w->dirfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (w->dirfd < 0)
            rc = io_failed(w, "open(dir)");
        else if (flock(w->dirfd, LOCK_EX | LOCK_NB) != 0)
            rc = errno == EWOULDBLOCK ? TL_WAL_ERR_LOCKED : io_failed(w, "flock");
    }
    if (rc == TL_WAL_OK)
        rc = remove_stale_tmp(w);
    if (rc == TL_WAL_OK) {
        w->c.in_open = true;
        rc = recover(w, rec);
        w->c.in_open = false;
    }
    if (rc == TL_WAL_OK && failed_of(w) != TL_WAL_OK)
        rc = failed_of(w);
    if (rc == TL_WAL_OK && cfg->sync_thread) {
        w->threaded = true;
        if (pthread_create(&w->thread, NULL, consumer_main, w) != 0) {
            w->threaded = false;
            rc = io_failed(w, "pthread_create");
        } else {
            w->thread_started = true;
        }
    }
    if (rc != TL_WAL_OK) {
        rec->ioerr = tl_wal_last_ioerr(w);
        wal_free(w);
        return rc;
    }
    *out = w;
    return TL_WAL_OK;
}

enum tl_wal_err tl_wal_close(tl_wal *w) {
    enum tl_wal_err rc = TL_WAL_OK;
    if (failed_of(w) == TL_WAL_OK)
        rc = tl_wal_sync(w);
    else
        rc = failed_of(w);
    if (w->thread_started) {
        /* release: pairs with consumer_main's acquire of stop. */
        atomic_store_explicit(&w->stop, true, memory_order_release);
        kick(w, true);
        int jr = pthread_join(w->thread, NULL);
        TL_ASSERT(jr == 0);
    }
    wal_free(w);
    return rc;
}
