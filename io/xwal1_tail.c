/* xwal1_tail.c: the live xwal1 tailer on io_uring (see xwal1_tail.h).
 *
 * Phases: EMPTY (no segment yet) -> OPEN (openat in flight) -> READ
 * (reading and walking; `parked` at the end of the newest segment) -> NEXT
 * (the segment is done: open index + 1, else list the directory) -> OPEN
 * ... ; ERROR retries the open of the segment it failed on.
 *
 * The buffer holds the segment's bytes [buf_off, buf_off + filled), read
 * in this epoch; reads in flight fill [filled, next_boff). Invariants:
 * - The reads of an epoch cover consecutive file ranges, and sit in the
 *   FIFO in submission order; `filled` grows only from the FIFO head, by
 *   reads that completed whole, or by the first that met the end of the
 *   file (`at_eof`; the ones after it are dropped).
 * - A reset (new epoch) makes every read in flight stale. No read is
 *   submitted, and the buffer is not moved, while a stale read is in flight
 *   (stale_inflight > 0): the kernel never writes into bytes we walk.
 * - buf_off <= w_off <= buf_off + filled, except in a zero scan (zscan),
 *   where the buffer holds the bytes after the zeros already checked and
 *   w_off stays at the zero length.
 * - w_off is 0 until the magic passed, then the offset of the next frame.
 * - At most one openat, one statx of the current file and one name probe
 *   are in flight; their buffers live here until the CQE. Answers about an
 *   older segment (seg_gen) are dropped.
 * - Everything in flight is counted (`inflight`); the SQ and CQ hold the
 *   most that can be in flight, so an SQE is always available.
 * - An event's view points into `rec` and `mode_body`, rewritten only by
 *   the next RECORD: valid until the next poll.
 */
#include "xwal1_tail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/checksum.h"

#define STEP_MAX      512u                  /* walker steps per poll round */
#define ROUND_MAX     4u                    /* submit-and-reap rounds per poll */
#define CLOSE_MAX     4u                    /* closes in flight before a direct close(2) */
#define READ_RETRIES  8u                    /* an interrupted read, or one chasing a growing file */
#define OTHER_OPS_MAX (3u + CLOSE_MAX + 1u) /* open, statx, probe, closes, cancel */
#define DENTS_BYTES   (32u << 10)
#define DENTS_CALLS   (1u << 20) /* getdents64 calls per listing: > 10^9 names */
#define NAME_BYTES    32u

enum ud_type { UD_READ = 1, UD_STATX, UD_PROBE, UD_OPEN, UD_CLOSE, UD_CANCEL };

static uint64_t ud_make(enum ud_type ty, uint32_t x) {
    return ((uint64_t)ty << 56) | x;
}

enum phase { PH_EMPTY = 0, PH_OPEN, PH_READ, PH_NEXT, PH_ERROR };

enum slot_state { SLOT_FREE = 0, SLOT_INFLIGHT, SLOT_DONE };

typedef struct rd_slot {
    uint8_t state; /* enum slot_state */
    bool stale;    /* its epoch ended: freed when its CQE comes */
    bool eof;      /* a read returned 0: the file ended at off + got */
    bool sealed;   /* a newer segment was known at its last submission */
    uint8_t retries;
    uint32_t stat_changes; /* t->stat_changes at its last submission */
    int err;               /* DONE: 0, or the read's errno */
    uint32_t boff;         /* where its bytes go in the buffer */
    uint32_t want;
    uint32_t got;
    int fd;
    uint64_t off; /* file offset */
} rd_slot;

struct tl_xwal1_tailer {
    tl_xwal1_tail_cfg cfg;
    int dirfd;
    struct io_uring ring;
    bool ring_ok;
    bool registered;
    uint8_t *buf;
    uint32_t buf_bytes;
    uint8_t *dents;    /* getdents64 buffer */
    uint32_t inflight; /* every op whose CQE is still to come */
    uint32_t closes_inflight;
    /* symbols and the record being delivered */
    tl_xwal1_symtab syms;
    void *syms_mem;
    tl_xwal1_rec *rec;
    tl_body_mode_change mode_body;
    /* reads */
    rd_slot slots[TL_XWAL1_TAIL_MAX_READ_AHEAD];
    uint32_t q_head, q_count;
    uint32_t stale_inflight;
    uint64_t buf_off;          /* file offset of buf[0] */
    uint32_t filled;           /* contiguous bytes read into buf[0..filled) */
    uint32_t next_boff;        /* where the next read of this epoch goes */
    bool at_eof;               /* this epoch's reads met the end of the file at buf_off + filled */
    bool eof_sealed;           /* a newer segment was known before that read */
    uint32_t eof_stat_changes; /* statx changes seen before that read */
    uint32_t zchecked;         /* zscan: bytes of the buffer known to be zeros */
    bool wide;                 /* read ahead in full (else one small read at the tail) */
    /* the current segment */
    bool cur_active;
    uint64_t cur_index;
    int cur_fd;
    bool sealed;    /* a newer segment is known to exist */
    uint64_t w_off; /* 0: the magic is next; else the next frame's offset */
    bool seg_due;   /* its SEGMENT event is owed */
    bool zscan;     /* scanning a zero run longer than the buffer, from w_off */
    uint8_t phase;  /* enum phase */
    uint32_t seg_gen;
    /* parked at the end of the newest segment */
    bool parked;
    bool park_tentative;
    bool park_sealed;
    uint8_t park_err;
    uint64_t park_off;
    uint64_t park_eof; /* the file's end as that walk saw it */
    uint32_t park_stat_changes;
    bool following;  /* it has parked once: the first read at the tail is small */
    bool stall_due;  /* the torn tail stayed torn past the grace: report it */
    bool shrunk_due; /* the file is now shorter than frames read */
    tl_xwal1_tail tail;
    /* statx of the current file */
    bool stat_inflight;
    struct statx stx_cur;
    bool stat_ok;
    uint64_t stat_size;
    int64_t stat_mtime_ns;
    uint32_t stat_changes;
    uint64_t changed_ns; /* when statx last saw the file change (or it was opened) */
    uint64_t next_stat_ns;
    /* probe of index + 1 */
    bool probe_inflight;
    bool probe_missing; /* the last probe found nothing: listings may help */
    uint64_t probe_index;
    char probe_path[NAME_BYTES];
    struct statx stx_probe;
    /* open */
    bool open_inflight;
    bool open_speculative; /* the predicted name: ENOENT is no news */
    uint32_t open_gen;
    uint64_t open_index;
    char open_path[NAME_BYTES];
    /* the directory */
    uint64_t max_listed; /* the highest index the last listing showed */
    uint64_t next_rescan_ns;
    /* NEXT / EMPTY */
    bool next_tried;
    bool waiting;
    uint64_t next_probe_ns;
    /* ERROR */
    uint64_t err_index;
    uint64_t retry_ns;
    /* CAUGHT_UP */
    bool progress;
    bool caught_up_ever;
    bool caught_up_due;
    bool anchor_set;
    uint64_t now_ns;
    tl_xwal1_tail_stats st;
};

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts); /* vDSO: no system call */
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tl_xwal1_tail_cfg_default(tl_xwal1_tail_cfg *c) {
    memset(c, 0, sizeof *c);
    c->max_symbols = 256;
    c->read_ahead = TL_XWAL1_TAIL_DEFAULT_READ_AHEAD;
    c->read_bytes = TL_XWAL1_TAIL_DEFAULT_READ_BYTES;
    c->stat_interval_ns = TL_XWAL1_TAIL_DEFAULT_STAT_NS;
    c->rescan_interval_ns = TL_XWAL1_TAIL_DEFAULT_RESCAN_NS;
    c->recent_ns = TL_XWAL1_TAIL_DEFAULT_RECENT_NS;
    c->list_quiet_ns = TL_XWAL1_TAIL_DEFAULT_LIST_QUIET_NS;
    c->torn_grace_ms = TL_XWAL1_TAIL_DEFAULT_TORN_GRACE_MS;
}

uint64_t tl_xwal1_tail_buf_bytes(const tl_xwal1_tail_cfg *c) {
    return (uint64_t)TL_XWAL1_TAIL_FRAME_ROOM + (uint64_t)c->read_ahead * c->read_bytes;
}

const char *tl_xwal1_tail_state_name(enum tl_xwal1_tail_state s) {
    switch (s) {
        case TL_XWAL1_TAIL_ST_EMPTY:
            return "empty";
        case TL_XWAL1_TAIL_ST_OPENING:
            return "opening";
        case TL_XWAL1_TAIL_ST_READING:
            return "reading";
        case TL_XWAL1_TAIL_ST_FOLLOWING:
            return "following";
        case TL_XWAL1_TAIL_ST_WAITING:
            return "waiting";
        case TL_XWAL1_TAIL_ST_IO_ERROR:
            return "io_error";
        case TL_XWAL1_TAIL_ST_COUNT:
            break;
    }
    return "?";
}

static bool cfg_valid(const tl_xwal1_tail_cfg *c) {
    if (c->dir == NULL || c->max_symbols < 1 || c->max_symbols > TL_XWAL1_MAX_SYMBOLS)
        return false;
    if (c->read_ahead < 1 || c->read_ahead > TL_XWAL1_TAIL_MAX_READ_AHEAD)
        return false;
    if (c->read_bytes < TL_XWAL1_TAIL_MIN_READ_BYTES ||
        c->read_bytes > TL_XWAL1_TAIL_MAX_READ_BYTES || c->read_bytes % 4096u != 0)
        return false;
    if (tl_xwal1_tail_buf_bytes(c) > UINT32_MAX)
        return false;
    return c->stat_interval_ns > 0 && c->rescan_interval_ns > 0;
}

/* ---- io_uring plumbing ---- */

static struct io_uring_sqe *sqe_get(tl_xwal1_tailer *t) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
    /* The SQ holds read_ahead + OTHER_OPS_MAX entries and is submitted on
     * every poll: it cannot be full (see the top of the file). */
    TL_ASSERT(sqe != NULL);
    t->inflight++;
    return sqe;
}

static void queue_close(tl_xwal1_tailer *t, int fd) {
    if (fd < 0)
        return;
    if (t->closes_inflight >= CLOSE_MAX) {
        close(fd); /* never seen: closes complete in microseconds */
        return;
    }
    struct io_uring_sqe *sqe = sqe_get(t);
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, ud_make(UD_CLOSE, 0));
    t->closes_inflight++;
}

static void record_ioerr(tl_xwal1_tailer *t, const char *op, int err, uint64_t segment) {
    t->st.io_errors_total++;
    t->st.io_error_streak++;
    t->st.last_ioerr = (tl_wal_ioerr){op, err};
    t->st.last_ioerr_segment = segment;
}

static unsigned submit(tl_xwal1_tailer *t) {
    if (io_uring_sq_ready(&t->ring) == 0)
        return 0;
    int r = io_uring_submit(&t->ring);
    if (r < 0) {
        /* EAGAIN, EBUSY, EINTR: the SQEs stay queued for the next poll. */
        if (r != -EAGAIN && r != -EBUSY && r != -EINTR)
            record_ioerr(t, "io_uring_enter", -r, t->cur_index);
        return 0;
    }
    return (unsigned)r;
}

/* ---- the read pipeline ---- */

static rd_slot *head_slot(tl_xwal1_tailer *t) {
    return t->q_count > 0 ? &t->slots[t->q_head] : NULL;
}

/* Drops every read of the FIFO: those in flight become stale. */
static void drop_queue(tl_xwal1_tailer *t) {
    for (uint32_t k = 0; k < t->q_count; k++) {
        rd_slot *s = &t->slots[(t->q_head + k) % t->cfg.read_ahead];
        if (s->state == SLOT_INFLIGHT) {
            s->stale = true;
            t->stale_inflight++;
        } else {
            s->state = SLOT_FREE;
        }
    }
    t->q_head = 0;
    t->q_count = 0;
}

/* Ends the epoch: the reads in flight are stale, the buffer starts again at
 * file offset `from`, empty. */
static void reset_reads(tl_xwal1_tailer *t, uint64_t from) {
    drop_queue(t);
    t->buf_off = from;
    t->filled = 0;
    t->next_boff = 0;
    t->at_eof = false;
    t->eof_sealed = false;
    t->zchecked = 0;
    t->wide = !t->following || t->sealed;
}

static void prep_read(tl_xwal1_tailer *t, rd_slot *s, uint32_t idx) {
    struct io_uring_sqe *sqe = sqe_get(t);
    uint8_t *dst = t->buf + s->boff + s->got;
    unsigned n = s->want - s->got;
    uint64_t off = s->off + s->got;
    s->sealed = t->sealed; /* sampled before the kernel reads the bytes */
    s->stat_changes = t->stat_changes;
    if (t->registered)
        io_uring_prep_read_fixed(sqe, s->fd, dst, n, off, 0);
    else
        io_uring_prep_read(sqe, s->fd, dst, n, off);
    io_uring_sqe_set_data64(sqe, ud_make(UD_READ, idx));
}

static void submit_read(tl_xwal1_tailer *t, uint32_t len) {
    TL_ASSERT(t->q_count < t->cfg.read_ahead && t->stale_inflight == 0);
    TL_ASSERT(len > 0 && t->next_boff + len <= t->buf_bytes);
    uint32_t idx = (t->q_head + t->q_count) % t->cfg.read_ahead;
    rd_slot *s = &t->slots[idx];
    TL_ASSERT(s->state == SLOT_FREE);
    memset(s, 0, sizeof *s);
    s->state = SLOT_INFLIGHT;
    s->boff = t->next_boff;
    s->want = len;
    s->fd = t->cur_fd;
    s->off = t->buf_off + t->next_boff;
    t->q_count++;
    t->next_boff += len;
    t->st.reads_total++;
    prep_read(t, s, idx);
}

static void on_read(tl_xwal1_tailer *t, uint32_t idx, int res) {
    TL_ASSERT(idx < t->cfg.read_ahead);
    rd_slot *s = &t->slots[idx];
    TL_ASSERT(s->state == SLOT_INFLIGHT);
    if (s->stale) {
        TL_ASSERT(t->stale_inflight > 0);
        t->stale_inflight--;
        s->stale = false;
        s->state = SLOT_FREE;
        return;
    }
    if (res < 0) {
        if ((res == -EINTR || res == -EAGAIN) && s->retries < READ_RETRIES) {
            s->retries++;
            prep_read(t, s, idx);
            return;
        }
        s->err = -res;
        s->state = SLOT_DONE;
        return;
    }
    s->got += (uint32_t)res;
    t->st.bytes_read += (uint64_t)res;
    if (res == 0) {
        s->eof = true; /* a regular file's read returns 0 only at its end */
    } else if (s->got < s->want) {
        if (s->retries < READ_RETRIES) {
            s->retries++; /* short: the file ends here, or grows; ask again */
            prep_read(t, s, idx);
            return;
        }
        s->eof = true; /* still growing: judge what there is, read again later */
    }
    s->state = SLOT_DONE;
}

/* ---- the directory ---- */

/* Lists the directory: the lowest index above `after` (0 if none), and
 * the highest index (max_listed). false on an I/O error (recorded). */
static bool list_dir(tl_xwal1_tailer *t, uint64_t after, uint64_t *lowest) {
    t->st.dir_scans_total++;
    *lowest = 0;
    uint64_t hi = 0;
    if (lseek(t->dirfd, 0, SEEK_SET) < 0) {
        record_ioerr(t, "lseek", errno, 0);
        return false;
    }
    for (uint32_t calls = 0; calls < DENTS_CALLS; calls++) {
        ssize_t n = getdents64(t->dirfd, t->dents, DENTS_BYTES);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            record_ioerr(t, "getdents64", errno, 0);
            return false;
        }
        if (n == 0)
            break;
        /* Bounded: each entry is at least a header long, within n bytes. */
        for (ssize_t p = 0; p < n;) {
            const struct dirent64 *de = (const struct dirent64 *)(t->dents + p);
            if (de->d_reclen == 0)
                break;
            p += de->d_reclen;
            uint64_t i;
            if (!tl_xwal1_segment_name_parse(de->d_name, strlen(de->d_name), &i))
                continue;
            if (i > hi)
                hi = i;
            if (i > after && (*lowest == 0 || i < *lowest))
                *lowest = i;
        }
    }
    t->max_listed = hi;
    return true;
}

/* ---- segment transitions ---- */

static void begin_open(tl_xwal1_tailer *t, uint64_t index, bool speculative) {
    t->phase = PH_OPEN;
    t->open_index = index;
    t->open_speculative = speculative;
}

static void tail_clear(tl_xwal1_tailer *t) {
    (void)tl_xwal1_tail_observe(&t->tail, false, 0, 0, TL_XWAL1_OK, 0, false, t->now_ns, 0);
}

/* The segment is done (read to its end, or its rest lost): the next one. */
static void segment_done(tl_xwal1_tailer *t) {
    queue_close(t, t->cur_fd);
    t->cur_fd = -1;
    t->seg_gen++; /* statx and probe answers about it are stale */
    reset_reads(t, 0);
    t->parked = false;
    t->zscan = false;
    t->stall_due = false;
    t->shrunk_due = false;
    tail_clear(t);
    t->phase = PH_NEXT;
    t->next_tried = false;
    t->waiting = false;
    t->next_rescan_ns = t->now_ns; /* if index + 1 is missing, list at once */
}

static void io_error(tl_xwal1_tailer *t, const char *op, int err) {
    record_ioerr(t, op, err, t->cur_index);
    queue_close(t, t->cur_fd);
    t->cur_fd = -1;
    t->seg_gen++;
    reset_reads(t, t->w_off);
    t->parked = false;
    t->zscan = false;
    t->phase = PH_ERROR;
    t->err_index = t->cur_index;
    t->retry_ns = t->now_ns + t->cfg.rescan_interval_ns;
}

static void on_open(tl_xwal1_tailer *t, int res) {
    uint64_t index = t->open_index;
    if (res >= 0) {
        if (!(t->cur_active && t->cur_index == index)) {
            /* A new segment (else: the same one again after an error, and
             * the walk resumes where it stopped). */
            t->cur_active = true;
            t->cur_index = index;
            t->w_off = 0;
            t->seg_due = true;
            /* The listing (or a probe) was made before this open, so a
             * newer segment it showed existed before any read of this one. */
            t->sealed = t->max_listed > index;
            tail_clear(t);
            if (!t->anchor_set) {
                t->anchor_set = true;
                t->st.anchor_segment = index;
                t->st.anchor_verified = index == 1;
            }
        }
        t->cur_fd = res;
        t->seg_gen++;
        t->changed_ns = t->now_ns;
        t->stat_ok = false;
        t->probe_missing = false;
        t->next_stat_ns = t->now_ns;
        t->next_probe_ns = t->now_ns;
        t->phase = PH_READ;
        t->parked = false;
        reset_reads(t, t->w_off);
        return;
    }
    int err = -res;
    if (err != ENOENT) {
        record_ioerr(t, "openat", err, index);
        t->phase = PH_ERROR;
        t->err_index = index;
        t->retry_ns = t->now_ns + t->cfg.rescan_interval_ns;
        return;
    }
    if (t->open_speculative) {
        t->phase = t->cur_active ? PH_NEXT : PH_EMPTY;
        return;
    }
    /* Listed, or the segment we were reading: deleted before we opened it. */
    t->st.segments_missing_total++;
    t->st.last_missing_segment = index;
    t->next_rescan_ns = t->now_ns;
    if (t->cur_active && t->cur_index == index) {
        segment_done(t); /* its rest is lost to us */
        return;
    }
    t->phase = t->cur_active ? PH_NEXT : PH_EMPTY;
    t->next_tried = true;
}

static void on_stat(tl_xwal1_tailer *t, int res) {
    t->st.statx_total++;
    if (res < 0) {
        record_ioerr(t, "statx", -res, t->cur_index);
        return;
    }
    uint64_t size = t->stx_cur.stx_size;
    int64_t mtime =
        (int64_t)t->stx_cur.stx_mtime.tv_sec * 1000000000ll + (int64_t)t->stx_cur.stx_mtime.tv_nsec;
    /* Timestamps are coarse (a clock tick): a write in the tick of the last
     * statx leaves the mtime as it was. A recent mtime is a change too. */
    int64_t age = (int64_t)clock_ns(CLOCK_REALTIME) - mtime;
    bool recent = age < (int64_t)t->cfg.recent_ns && age > -(int64_t)t->cfg.recent_ns;
    bool changed = !t->stat_ok || size != t->stat_size || mtime != t->stat_mtime_ns || recent;
    t->stat_ok = true;
    t->stat_size = size;
    t->stat_mtime_ns = mtime;
    if (changed) {
        t->stat_changes++;
        t->changed_ns = t->now_ns;
    }
    /* Bytes that held frames already read are gone (a truncation). */
    if (t->w_off >= TL_XWAL1_MAGIC_BYTES && size < t->w_off)
        t->shrunk_due = true;
}

static void on_probe(tl_xwal1_tailer *t, int res) {
    t->st.probes_total++;
    if (res != 0) {
        t->probe_missing = true; /* ENOENT: not there yet */
        return;
    }
    if (t->cur_active && t->probe_index > t->cur_index)
        t->sealed = true;
}

static void on_cqe(tl_xwal1_tailer *t, uint64_t u, int res) {
    uint32_t x = (uint32_t)u;
    switch ((enum ud_type)(u >> 56)) {
        case UD_READ:
            on_read(t, x, res);
            break;
        case UD_STATX:
            t->stat_inflight = false;
            if (x == t->seg_gen)
                on_stat(t, res);
            break;
        case UD_PROBE:
            t->probe_inflight = false;
            if (x == t->seg_gen)
                on_probe(t, res);
            break;
        case UD_OPEN:
            t->open_inflight = false;
            if (x == t->open_gen && t->phase == PH_OPEN)
                on_open(t, res);
            else if (res >= 0)
                queue_close(t, res); /* an answer nobody waits for */
            break;
        case UD_CLOSE:
            TL_ASSERT(t->closes_inflight > 0);
            t->closes_inflight--;
            break;
        case UD_CANCEL:
            break;
        default:
            TL_UNREACHABLE();
    }
}

static void reap(tl_xwal1_tailer *t) {
    struct io_uring_cqe *cqe;
    /* Bounded by what is in flight: every op has one CQE. */
    for (uint32_t i = 0; i < t->cfg.read_ahead + OTHER_OPS_MAX + 8u; i++) {
        if (io_uring_peek_cqe(&t->ring, &cqe) != 0)
            return;
        uint64_t u = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&t->ring, cqe);
        TL_ASSERT(t->inflight > 0);
        t->inflight--;
        on_cqe(t, u, res);
    }
}

/* ---- scheduling I/O ---- */

static void submit_open(tl_xwal1_tailer *t) {
    size_t n = tl_xwal1_segment_name(t->open_path, sizeof t->open_path, t->open_index);
    TL_ASSERT(n != 0);
    struct io_uring_sqe *sqe = sqe_get(t);
    io_uring_prep_openat(sqe, t->dirfd, t->open_path, O_RDONLY | O_CLOEXEC, 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_OPEN, ++t->open_gen));
    t->open_inflight = true;
}

static void submit_stat(tl_xwal1_tailer *t) {
    TL_ASSERT(!t->stat_inflight && t->cur_fd >= 0);
    struct io_uring_sqe *sqe = sqe_get(t);
    io_uring_prep_statx(sqe, t->cur_fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_MTIME, &t->stx_cur);
    io_uring_sqe_set_data64(sqe, ud_make(UD_STATX, t->seg_gen));
    t->stat_inflight = true;
    t->next_stat_ns = t->now_ns + t->cfg.stat_interval_ns;
}

static void submit_probe(tl_xwal1_tailer *t, uint64_t index) {
    TL_ASSERT(!t->probe_inflight);
    t->probe_index = index;
    size_t n = tl_xwal1_segment_name(t->probe_path, sizeof t->probe_path, index);
    TL_ASSERT(n != 0);
    struct io_uring_sqe *sqe = sqe_get(t);
    io_uring_prep_statx(sqe, t->dirfd, t->probe_path, 0, STATX_TYPE, &t->stx_probe);
    io_uring_sqe_set_data64(sqe, ud_make(UD_PROBE, t->seg_gen));
    t->probe_inflight = true;
    t->next_probe_ns = t->now_ns + t->cfg.stat_interval_ns;
}

/* Moves the bytes already walked out of the buffer, when no read is in
 * flight (a read in flight writes where it was told to). */
static void compact(tl_xwal1_tailer *t) {
    if (t->q_count != 0 || t->stale_inflight != 0 || t->zscan || t->w_off <= t->buf_off)
        return;
    uint64_t shift = t->w_off - t->buf_off;
    TL_ASSERT(shift <= t->filled);
    memmove(t->buf, t->buf + shift, t->filled - (uint32_t)shift);
    t->buf_off = t->w_off;
    t->filled -= (uint32_t)shift;
    t->next_boff = t->filled;
    t->st.compactions_total++;
}

static void issue_reads(tl_xwal1_tailer *t) {
    if (t->at_eof || t->stale_inflight != 0)
        return;
    if (t->buf_bytes - t->next_boff < t->cfg.read_bytes)
        compact(t);
    uint32_t small =
        TL_XWAL1_TAIL_TAIL_BYTES < t->cfg.read_bytes ? TL_XWAL1_TAIL_TAIL_BYTES : t->cfg.read_bytes;
    for (uint32_t i = 0; i < t->cfg.read_ahead && t->q_count < t->cfg.read_ahead; i++) {
        if (!t->wide && t->q_count > 0)
            break; /* at the tail: one small read, wider once one comes back full */
        uint32_t len = t->wide ? t->cfg.read_bytes : small;
        uint32_t room = t->buf_bytes - t->next_boff;
        if (len > room)
            len = room;
        if (len == 0)
            break;
        submit_read(t, len);
    }
}

/* Read the tail again: something that may change the verdict changed. */
static void rearm(tl_xwal1_tailer *t) {
    t->parked = false;
    t->zscan = false;
    t->st.rereads_total++;
    reset_reads(t, t->w_off);
}

static void read_tick(tl_xwal1_tailer *t) {
    if (!t->parked) {
        issue_reads(t);
        return;
    }
    /* A newer segment seals this one: the predicted name first. */
    if (!t->sealed && !t->probe_inflight && t->now_ns >= t->next_probe_ns)
        submit_probe(t, t->cur_index + 1);
    /* ... and while that name is missing, a listing (a skipped index). */
    if (!t->sealed && t->probe_missing && t->now_ns >= t->next_rescan_ns &&
        t->now_ns - t->changed_ns >= t->cfg.list_quiet_ns) {
        t->next_rescan_ns = t->now_ns + t->cfg.rescan_interval_ns;
        uint64_t lowest;
        if (list_dir(t, t->cur_index, &lowest) && lowest != 0)
            t->sealed = true;
    }
    if (!t->stat_inflight && t->now_ns >= t->next_stat_ns)
        submit_stat(t);
    if (t->stall_due)
        return; /* decided: step_read reports it */
    if ((t->sealed && !t->park_sealed) || t->stat_changes != t->park_stat_changes) {
        rearm(t); /* the walk judges the fresh bytes (and runs the clock) */
        return;
    }
    if (t->park_tentative) {
        /* The torn-tail clock runs without new bytes too. */
        enum tl_xwal1_tail_verdict v = tl_xwal1_tail_observe(
            &t->tail, true, t->cur_index, t->park_off, (enum tl_xwal1_err)t->park_err, t->park_eof,
            false, t->now_ns, t->cfg.torn_grace_ms);
        if (v == TL_XWAL1_TAIL_CORRUPT_STALLED)
            t->stall_due = true;
    }
}

static void next_tick(tl_xwal1_tailer *t) {
    if (t->open_inflight)
        return;
    if (!t->next_tried || (t->waiting && t->now_ns >= t->next_probe_ns)) {
        /* The predicted name first: index + 1. */
        t->next_tried = true;
        t->next_probe_ns = t->now_ns + t->cfg.stat_interval_ns;
        begin_open(t, t->cur_index + 1, true);
        submit_open(t);
        return;
    }
    if (t->now_ns < t->next_rescan_ns)
        return;
    t->next_rescan_ns = t->now_ns + t->cfg.rescan_interval_ns;
    uint64_t lowest;
    if (list_dir(t, t->cur_index, &lowest) && lowest != 0) {
        t->st.segments_missing_total++; /* index + 1 is not there */
        t->st.last_missing_segment = t->cur_index + 1;
        begin_open(t, lowest, false);
        submit_open(t);
        return;
    }
    if (!t->waiting) {
        t->waiting = true;
        if (t->progress || !t->caught_up_ever)
            t->caught_up_due = true;
    }
}

static void empty_tick(tl_xwal1_tailer *t) {
    if (t->open_inflight)
        return;
    if (t->now_ns >= t->next_probe_ns) {
        /* A new log starts at index 1: open it as soon as it is there. */
        t->next_probe_ns = t->now_ns + t->cfg.stat_interval_ns;
        begin_open(t, 1, true);
        submit_open(t);
        return;
    }
    if (t->now_ns >= t->next_rescan_ns) {
        t->next_rescan_ns = t->now_ns + t->cfg.rescan_interval_ns;
        uint64_t lowest;
        if (list_dir(t, 0, &lowest) && lowest != 0) {
            begin_open(t, lowest, false);
            submit_open(t);
        }
    }
}

static void schedule(tl_xwal1_tailer *t) {
    switch ((enum phase)t->phase) {
        case PH_EMPTY:
            empty_tick(t);
            break;
        case PH_OPEN:
            if (!t->open_inflight)
                submit_open(t);
            break;
        case PH_READ:
            read_tick(t);
            break;
        case PH_NEXT:
            next_tick(t);
            break;
        case PH_ERROR:
            if (t->now_ns >= t->retry_ns && !t->open_inflight) {
                begin_open(t, t->err_index, false);
                submit_open(t);
            }
            break;
    }
}

/* ---- walking ---- */

enum { STEP_IDLE = 0, STEP_PROGRESS, STEP_EVENT };

/* Takes the completed reads at the head of the FIFO into `filled`.
 * false after an I/O error (the tailer is in ERROR). */
static bool advance(tl_xwal1_tailer *t) {
    for (uint32_t i = 0; i < TL_XWAL1_TAIL_MAX_READ_AHEAD && t->q_count > 0; i++) {
        rd_slot *s = head_slot(t);
        if (s->state != SLOT_DONE)
            return true;
        if (s->err != 0) {
            io_error(t, "read", s->err);
            return false;
        }
        TL_ASSERT(s->boff == t->filled);
        t->filled += s->got;
        s->state = SLOT_FREE;
        t->q_head = (t->q_head + 1) % t->cfg.read_ahead;
        t->q_count--;
        if (s->eof) {
            /* The file ended here as this read saw it; the reads after it
             * saw a file that ended before them. */
            drop_queue(t);
            t->next_boff = t->filled;
            t->at_eof = true;
            t->eof_sealed = s->sealed;
            t->eof_stat_changes = s->stat_changes;
            return true;
        }
        if (s->got == s->want)
            t->wide = true; /* the log goes on past a whole read */
    }
    return true;
}

static void emit_fault(tl_xwal1_tailer *t, tl_wal_ev *ev, uint8_t type, enum tl_rule rule,
                       uint16_t reason, uint64_t offset, uint64_t checksum) {
    ev->type = type;
    ev->rule = (uint8_t)rule;
    ev->reason = reason;
    ev->loc = (tl_loc){t->cur_index, offset};
    ev->seq = 0;
    ev->checksum = checksum;
}

static uint16_t xreason(enum tl_xwal1_err e) {
    return (uint16_t)(TL_REASON_XWAL1_BASE + (unsigned)e);
}

static int emit_corrupt(tl_xwal1_tailer *t, tl_wal_ev *ev, enum tl_xwal1_err err, uint64_t off,
                        uint64_t checksum) {
    emit_fault(t, ev, TL_WAL_EV_CORRUPT, tl_xwal1_err_rule(err), xreason(err), off, checksum);
    t->st.corrupt_total++;
    t->progress = true;
    return STEP_EVENT;
}

static int emit_caught_up(tl_xwal1_tailer *t, tl_wal_ev *ev) {
    ev->type = TL_WAL_EV_CAUGHT_UP;
    ev->loc = (tl_loc){t->cur_active ? t->cur_index : 0, t->cur_active ? t->w_off : 0};
    t->caught_up_due = false;
    t->caught_up_ever = true;
    t->progress = false;
    t->st.caught_up_total++;
    return STEP_EVENT;
}

static void park(tl_xwal1_tailer *t, bool tentative, uint64_t off, enum tl_xwal1_err err) {
    t->parked = true;
    t->park_tentative = tentative;
    /* The facts the verdict rests on: those sampled before the read that
     * met the end of the file. Anything learnt since re-reads the tail. */
    t->park_sealed = t->eof_sealed;
    t->park_off = off;
    t->park_err = (uint8_t)err;
    t->park_eof = t->buf_off + t->filled;
    t->park_stat_changes = t->eof_stat_changes;
    t->following = true;
    t->st.io_error_streak = 0; /* every byte of the file read */
    /* Probe index + 1 and stat the file at once: in a catch-up over many
     * segments the next one is usually there. */
    t->next_probe_ns = t->now_ns;
    t->next_stat_ns = t->now_ns + t->cfg.stat_interval_ns;
    if (t->progress || !t->caught_up_ever)
        t->caught_up_due = true;
}

/* A frame whose crc held: its payload, decoded and bound. */
static int deliver(tl_xwal1_tailer *t, const tl_xwal1_frame *fr, tl_wal_ev *ev) {
    tl_xwal1_rec *rec = t->rec;
    enum tl_xwal1_err err = tl_xwal1_decode(fr->payload, fr->payload_len, rec);
    if (err == TL_XWAL1_OK)
        err = tl_xwal1_bind(&t->syms, rec, fr, &ev->view);
    if (err != TL_XWAL1_OK) {
        /* The next frame is where this one's length says: read on. */
        memset(&ev->view, 0, sizeof ev->view);
        return emit_corrupt(t, ev, err, fr->offset, tl_xxh3(fr->payload, fr->payload_len));
    }
    ev->type = TL_WAL_EV_RECORD;
    ev->loc = (tl_loc){t->cur_index, fr->offset};
    const tl_xwal1_sym *y = tl_xwal1_symtab_get(&t->syms, ev->view.symbol);
    TL_ASSERT(y != NULL);
    ev->symbol_name = y->name;
    if (ev->view.kind == TL_KIND_MODE_CHANGE) {
        /* As a native MODE_CHANGE body: the mode, and no command id (this
         * log carries none of tally's). */
        memset(&t->mode_body, 0, sizeof t->mode_body);
        t->mode_body.mode = rec->mode;
        ev->view.body = (const uint8_t *)&t->mode_body;
        ev->view.body_len = sizeof t->mode_body;
    }
    t->st.records_total++;
    t->st.io_error_streak = 0; /* reading again */
    t->progress = true;
    return STEP_EVENT;
}

/* The walk stopped torn at `off` with every byte of the file read. */
static int torn_at_eof(tl_xwal1_tailer *t, tl_wal_ev *ev, enum tl_xwal1_err err, uint64_t off) {
    if (t->eof_sealed) {
        /* A newer segment existed before this read: the tail is final. */
        emit_corrupt(t, ev, err, off, 0);
        segment_done(t);
        return STEP_EVENT;
    }
    enum tl_xwal1_tail_verdict v =
        tl_xwal1_tail_observe(&t->tail, true, t->cur_index, off, err, t->buf_off + t->filled, false,
                              t->now_ns, t->cfg.torn_grace_ms);
    if (v == TL_XWAL1_TAIL_CORRUPT_STALLED) {
        t->st.stalled_total++;
        emit_fault(t, ev, TL_WAL_EV_CORRUPT, TL_RULE_LENGTH, TL_REASON_TORN_STALLED, off, 0);
        t->st.corrupt_total++;
        t->progress = true;
        segment_done(t); /* a length-prefixed log has no resync point */
        return STEP_EVENT;
    }
    TL_ASSERT(v == TL_XWAL1_TAIL_WAIT);
    emit_fault(t, ev, TL_WAL_EV_TENTATIVE, tl_xwal1_err_rule(err), xreason(err), off, 0);
    t->st.tentative_total++;
    park(t, true, off, err);
    return STEP_EVENT;
}

static bool is_torn(enum tl_xwal1_err e) {
    return e == TL_XWAL1_ERR_SHORT_MAGIC || e == TL_XWAL1_ERR_SHORT_LENGTH ||
           e == TL_XWAL1_ERR_SHORT_PAYLOAD || e == TL_XWAL1_ERR_SHORT_CRC ||
           e == TL_XWAL1_ERR_ZERO_FILLED_TAIL;
}

static bool all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0)
            return false;
    }
    return true;
}

/* A length of zero at w_off followed by more zeros than the buffer holds:
 * the zeros already checked are dropped and the rest is read through. The
 * walker's verdicts, for a run it cannot hold: a nonzero byte is
 * zero_length (CORRUPT); zeros to the end of the file are a zero-filled
 * tail. */
static int zscan_step(tl_xwal1_tailer *t, tl_wal_ev *ev) {
    if (!all_zero(t->buf + t->zchecked, t->filled - t->zchecked)) {
        emit_corrupt(t, ev, TL_XWAL1_ERR_ZERO_LENGTH, t->w_off, 0);
        segment_done(t);
        return STEP_EVENT;
    }
    t->zchecked = t->filled;
    if (t->at_eof) {
        t->zscan = false; /* a re-read starts again at the zero length */
        return torn_at_eof(t, ev, TL_XWAL1_ERR_ZERO_FILLED_TAIL, t->w_off);
    }
    if (t->next_boff == t->buf_bytes && t->q_count == 0 && t->stale_inflight == 0) {
        t->st.zero_scans_total++;
        uint64_t from = t->buf_off + t->filled;
        reset_reads(t, from);
        return STEP_PROGRESS;
    }
    return STEP_IDLE;
}

static int step_read(tl_xwal1_tailer *t, tl_wal_ev *ev) {
    if (t->seg_due) {
        t->seg_due = false;
        ev->type = TL_WAL_EV_SEGMENT;
        ev->hdr = NULL;
        ev->name_first_seq = t->cur_index;
        ev->loc = (tl_loc){t->cur_index, 0};
        t->st.segments_total++;
        t->progress = true;
        return STEP_EVENT;
    }
    if (t->shrunk_due) {
        t->shrunk_due = false;
        uint64_t off = t->w_off;
        emit_corrupt(t, ev, TL_XWAL1_ERR_SHORT_LENGTH, off, 0);
        segment_done(t);
        return STEP_EVENT;
    }
    if (t->parked) {
        if (t->stall_due) {
            t->stall_due = false;
            t->st.stalled_total++;
            emit_fault(t, ev, TL_WAL_EV_CORRUPT, TL_RULE_LENGTH, TL_REASON_TORN_STALLED,
                       t->park_off, 0);
            t->st.corrupt_total++;
            t->progress = true;
            segment_done(t);
            return STEP_EVENT;
        }
        if (t->caught_up_due)
            return emit_caught_up(t, ev);
        return STEP_IDLE;
    }
    if (!advance(t))
        return STEP_PROGRESS;
    if (t->zscan)
        return zscan_step(t, ev);
    /* Until the reads meet the end of the file, a short item at the end
     * of the buffer is only bytes not read yet: walk as if newest. */
    bool newest = t->at_eof ? !t->eof_sealed : true;
    tl_xwal1_walker w;
    tl_xwal1_walker_init_window(&w, t->buf, t->filled, t->buf_off, t->w_off, newest);
    tl_xwal1_frame fr;
    enum tl_xwal1_err err;
    enum tl_xwal1_step r = tl_xwal1_walker_next(&w, &fr, &err);
    if (t->w_off == 0 && w.off >= TL_XWAL1_MAGIC_BYTES)
        t->w_off = TL_XWAL1_MAGIC_BYTES; /* the magic passed */
    switch (r) {
        case TL_XWAL1_FRAME:
            t->w_off = fr.offset + fr.frame_len;
            t->st.frames_total++;
            return deliver(t, &fr, ev);
        case TL_XWAL1_CORRUPT:
            if (!is_torn(err) || t->at_eof) {
                /* bad magic, zero length, too large, crc: final wherever it
                 * is; a torn one only once the file's end was read. */
                emit_corrupt(t, ev, err, w.last_off, 0);
                segment_done(t);
                return STEP_EVENT;
            }
            break;
        case TL_XWAL1_END:
        case TL_XWAL1_TENTATIVE:
            if (t->at_eof) {
                if (r == TL_XWAL1_TENTATIVE)
                    return torn_at_eof(t, ev, err, w.last_off);
                tail_clear(t);
                if (t->eof_sealed) {
                    segment_done(t);
                } else {
                    park(t, false, w.last_off, TL_XWAL1_OK);
                }
                return STEP_PROGRESS;
            }
            break;
    }
    /* More bytes are needed. A buffer full from the walker with nothing in
     * flight can only hold a zero run: a frame always fits
     * (TL_XWAL1_TAIL_FRAME_ROOM). */
    if (t->next_boff == t->buf_bytes && t->q_count == 0 && t->stale_inflight == 0 &&
        t->buf_off == t->w_off) {
        TL_ASSERT(err == TL_XWAL1_ERR_ZERO_FILLED_TAIL);
        t->zscan = true;
        t->st.zero_scans_total++;
        reset_reads(t, t->buf_off + t->filled);
        return STEP_PROGRESS;
    }
    return STEP_IDLE;
}

static int step(tl_xwal1_tailer *t, tl_wal_ev *ev) {
    switch ((enum phase)t->phase) {
        case PH_READ:
            return step_read(t, ev);
        case PH_EMPTY:
        case PH_NEXT:
            if (t->caught_up_due && (t->phase == PH_EMPTY || t->waiting))
                return emit_caught_up(t, ev);
            return STEP_IDLE;
        case PH_OPEN:
        case PH_ERROR:
            return STEP_IDLE;
    }
    TL_UNREACHABLE();
}

bool tl_xwal1_tail_poll(tl_xwal1_tailer *t, tl_wal_ev *ev) {
    memset(ev, 0, sizeof *ev);
    /* Fast path: the next frame is usually in the buffer already. The I/O
     * side (reap, schedule, submit) runs when a step found nothing to say. */
    if (step(t, ev) == STEP_EVENT)
        return true;
    t->now_ns = clock_ns(CLOCK_MONOTONIC);
    for (uint32_t round = 0; round < ROUND_MAX; round++) {
        reap(t);
        schedule(t);
        unsigned sent = submit(t);
        /* Reads served from the page cache complete inside the submit. */
        reap(t);
        bool progressed = false;
        for (uint32_t i = 0; i < STEP_MAX; i++) {
            int r = step(t, ev);
            if (r == STEP_EVENT) {
                submit(t); /* a close a step queued */
                return true;
            }
            if (r == STEP_IDLE)
                break;
            progressed = true;
        }
        if (!progressed && sent == 0)
            break;
    }
    submit(t);
    return false;
}

bool tl_xwal1_tail_poll_op(void *ctx, tl_wal_ev *ev) {
    return tl_xwal1_tail_poll(ctx, ev);
}

const tl_xwal1_symtab *tl_xwal1_tail_symbols(const tl_xwal1_tailer *t) {
    return &t->syms;
}

void tl_xwal1_tail_get_stats(const tl_xwal1_tailer *t, tl_xwal1_tail_stats *s) {
    *s = t->st;
    switch ((enum phase)t->phase) {
        case PH_EMPTY:
            s->state = TL_XWAL1_TAIL_ST_EMPTY;
            break;
        case PH_OPEN:
            s->state = TL_XWAL1_TAIL_ST_OPENING;
            break;
        case PH_READ:
            s->state = t->parked ? TL_XWAL1_TAIL_ST_FOLLOWING : TL_XWAL1_TAIL_ST_READING;
            break;
        case PH_NEXT:
            s->state = t->waiting ? TL_XWAL1_TAIL_ST_WAITING : TL_XWAL1_TAIL_ST_OPENING;
            break;
        case PH_ERROR:
            s->state = TL_XWAL1_TAIL_ST_IO_ERROR;
            break;
    }
    s->registered = t->registered;
    s->segment = t->cur_active ? t->cur_index : 0;
    s->offset = t->cur_active ? t->w_off : 0;
    s->symbols = t->syms.count;
    s->buf_bytes = t->buf_bytes;
}

void tl_xwal1_tail_gauges(const tl_xwal1_tailer *t, tl_tail_gauges *g) {
    tl_xwal1_tail_stats s;
    tl_xwal1_tail_get_stats(t, &s);
    memset(g, 0, sizeof *g);
    g->configured = true;
    g->state = s.state;
    g->io_error = s.state == TL_XWAL1_TAIL_ST_IO_ERROR;
    g->last_errno = s.last_ioerr.sys_errno;
    g->last_op = s.last_ioerr.op; /* a string literal: safe on another thread */
    g->last_ioerr_segment = s.last_ioerr_segment;
    g->io_error_streak = s.io_error_streak;
    g->io_errors_total = s.io_errors_total;
    g->segment = s.segment;
    g->offset = s.offset;
    g->reads_total = s.reads_total;
    g->bytes_read = s.bytes_read;
    g->frames_total = s.frames_total;
    g->segments_total = s.segments_total;
    g->dir_scans_total = s.dir_scans_total;
    g->rereads_total = s.rereads_total;
    g->tentative_total = s.tentative_total;
    g->corrupt_total = s.corrupt_total;
    g->segments_missing_total = s.segments_missing_total;
    g->caught_up_total = s.caught_up_total;
}

/* ---- open and close ---- */

static void register_buffer(tl_xwal1_tailer *t) {
    if (t->cfg.no_register)
        return;
    if (t->buf_bytes > TL_XWAL1_TAIL_REGISTER_LIMIT_BYTES) {
        t->st.register_errno = E2BIG;
        return;
    }
    struct iovec iov = {t->buf, t->buf_bytes};
    int r = io_uring_register_buffers(&t->ring, &iov, 1);
    if (r == 0) {
        t->registered = true;
        return;
    }
    /* ENOMEM or EPERM from the memlock limit: plain reads do the same work
     * with one page-pinning per read more. */
    t->st.register_errno = -r;
}

enum tl_wal_err tl_xwal1_tail_open(tl_xwal1_tailer **out, const tl_xwal1_tail_cfg *cfg,
                                   tl_wal_ioerr *err) {
    *out = NULL;
    tl_wal_ioerr dummy;
    if (err == NULL)
        err = &dummy;
    *err = (tl_wal_ioerr){0};
    if (cfg == NULL || !cfg_valid(cfg))
        return TL_WAL_ERR_CONFIG;
    tl_xwal1_tailer *t = calloc(1, sizeof *t);
    if (t == NULL)
        return TL_WAL_ERR_NOMEM;
    t->cfg = *cfg;
    t->cfg.dir = NULL; /* the caller's string: not kept */
    t->dirfd = -1;
    t->cur_fd = -1;
    enum tl_wal_err rc = TL_WAL_OK;

    t->dirfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t->dirfd < 0) {
        *err = (tl_wal_ioerr){"open", errno};
        rc = errno == ENOENT ? TL_WAL_ERR_NOT_FOUND : TL_WAL_ERR_IO;
        goto fail;
    }
    t->buf_bytes = (uint32_t)tl_xwal1_tail_buf_bytes(cfg);
    t->buf = aligned_alloc(4096, t->buf_bytes);
    t->dents = aligned_alloc(64, DENTS_BYTES);
    t->rec = aligned_alloc(64, (sizeof *t->rec + 63) & ~(size_t)63);
    size_t sbytes = (tl_xwal1_symtab_bytes(cfg->max_symbols) + 63) & ~(size_t)63;
    t->syms_mem = aligned_alloc(64, sbytes);
    if (t->buf == NULL || t->dents == NULL || t->rec == NULL || t->syms_mem == NULL) {
        rc = TL_WAL_ERR_NOMEM;
        goto fail;
    }
    /* Touch every page now, not in the first reads. */
    memset(t->buf, 0, t->buf_bytes);
    memset(t->rec, 0, sizeof *t->rec);
    tl_xwal1_symtab_init(&t->syms, t->syms_mem, cfg->max_symbols);

    /* Entries for every op that can be in flight at once (top of file). */
    int r = io_uring_queue_init(cfg->read_ahead + OTHER_OPS_MAX + 8u, &t->ring, 0);
    if (r < 0) {
        *err = (tl_wal_ioerr){"io_uring_queue_init", -r};
        rc = TL_WAL_ERR_IO;
        goto fail;
    }
    t->ring_ok = true;
    register_buffer(t);

    t->now_ns = clock_ns(CLOCK_MONOTONIC);
    uint64_t lowest;
    if (!list_dir(t, 0, &lowest)) {
        *err = t->st.last_ioerr;
        rc = TL_WAL_ERR_IO;
        goto fail;
    }
    t->next_rescan_ns = t->now_ns + cfg->rescan_interval_ns;
    if (lowest == 0) {
        t->phase = PH_EMPTY;
        t->caught_up_due = true;
        t->next_probe_ns = t->now_ns;
    } else {
        begin_open(t, lowest, false);
    }
    *out = t;
    return TL_WAL_OK;
fail:
    tl_xwal1_tail_close(t);
    return rc;
}

void tl_xwal1_tail_close(tl_xwal1_tailer *t) {
    if (t == NULL)
        return;
    bool drained = true;
    if (t->ring_ok) {
        if (t->inflight > 0) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
            if (sqe != NULL) {
                io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
                io_uring_sqe_set_data64(sqe, ud_make(UD_CANCEL, 0));
                t->inflight++;
            }
            io_uring_submit(&t->ring);
        }
        /* Bounded: 1000 waits of 10 ms. Reads of a regular file end soon. */
        for (uint32_t i = 0; i < 1000u && t->inflight > 0; i++) {
            struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10000000};
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe_timeout(&t->ring, &cqe, &ts) != 0)
                continue;
            uint64_t u = io_uring_cqe_get_data64(cqe);
            int res = cqe->res;
            io_uring_cqe_seen(&t->ring, cqe);
            t->inflight--;
            if ((u >> 56) == UD_OPEN && res >= 0)
                close(res);
        }
        drained = t->inflight == 0;
        if (t->registered)
            io_uring_unregister_buffers(&t->ring);
        io_uring_queue_exit(&t->ring);
    }
    if (t->cur_fd >= 0)
        close(t->cur_fd);
    if (t->dirfd >= 0)
        close(t->dirfd);
    free(t->dents);
    free(t->rec);
    free(t->syms_mem);
    /* A read still in flight could write into freed memory: leak instead. */
    if (drained) {
        free(t->buf);
        free(t);
    }
}
