/* wal_tail.c: the live WAL tailer on io_uring (see wal_tail.h).
 *
 * Phases: EMPTY (no segment yet) -> OPEN (openat in flight) -> STAT (statx of
 * the new descriptor) -> READ (walking; `parked` at the tail) -> NEXT (the
 * segment is done: open the predicted name, else list the directory) -> OPEN
 * ... ; ERROR retries the open of the segment it failed on.
 *
 * Invariants:
 * - Read slots form a FIFO in submission order (q_head, q_count). The reads
 *   of one epoch are contiguous: each starts where the previous one was asked
 *   to end. A pipeline reset bumps `epoch`; the slots of an older epoch are
 *   stale and are dropped unread once their CQE is in. A slot's buffer is
 *   reused only after it left the FIFO, which needs its CQE: the kernel never
 *   writes into a buffer we read.
 * - The walker's place (ws.off) is at or after the head live slot's offset.
 * - The carry holds [carry_off, carry_off + carry_n) of the current segment,
 *   copied from reads of the current epoch, and is in use while ws.off lies
 *   inside it. It is rewritten only by a later step, so an event's view into
 *   it stays valid until the next poll; a slot an event points into is the
 *   FIFO head, never free.
 * - Every read carries the facts (sealed, file size, durable hint) sampled
 *   when it was submitted, which is before the kernel read the bytes: the
 *   contract of core/walseg. A reassembled record is judged with the facts of
 *   its oldest piece (sampled before every piece).
 * - At most one openat, one statx of the current file and one probe are in
 *   flight; their buffers (path, struct statx) live here until the CQE.
 * - Everything in flight is counted (`inflight`); the SQ and CQ are sized
 *   for the most that can be in flight, so an SQE is always available.
 */
#include "wal_tail.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/segment.h"
#include "wal_dir.h"

/* The most one walker step may ask for (a record, or a header), plus room. */
#define CARRY_BYTES (TL_PAD_LIMIT_BYTES + 4096u - (TL_PAD_LIMIT_BYTES % 4096u))
_Static_assert(CARRY_BYTES >= TL_PAD_LIMIT_BYTES && CARRY_BYTES % 4096u == 0, "carry");
_Static_assert(TL_SEG_HDR_BYTES <= CARRY_BYTES, "a header fits the carry");

#define STEP_MAX      512u /* walker steps per poll round */
#define ROUND_MAX     4u   /* submit-and-reap rounds per poll */
#define CLOSE_MAX     4u   /* closes in flight before a direct close(2) */
#define READ_RETRIES  8u   /* a short or interrupted read is continued this often */
#define OTHER_OPS_MAX (3u + CLOSE_MAX + 1u) /* open, statx, probe, closes, cancel */

enum ud_type { UD_READ = 1, UD_STATX, UD_PROBE, UD_OPEN, UD_CLOSE, UD_CANCEL };

static uint64_t ud_make(enum ud_type ty, uint32_t x) {
    return ((uint64_t)ty << 56) | x;
}

enum phase { PH_EMPTY = 0, PH_OPEN, PH_STAT, PH_READ, PH_NEXT, PH_ERROR };

enum slot_state { SLOT_FREE = 0, SLOT_INFLIGHT, SLOT_DONE };

typedef struct tail_slot {
    uint8_t *buf;
    uint8_t state; /* enum slot_state */
    uint8_t retries;
    int err;        /* DONE: 0, or the read's errno */
    uint32_t epoch; /* the pipeline epoch it was submitted in */
    uint32_t want;  /* bytes asked for */
    uint32_t got;   /* bytes read so far */
    int fd;
    uint32_t stat_changes; /* t->stat_changes when it was submitted */
    uint64_t off;          /* file offset */
    tl_walseg_facts facts;
} tail_slot;

/* The segment being read. */
typedef struct tail_seg {
    uint64_t name; /* first_seq of its file name */
    int fd;        /* -1: not open */
    bool active;   /* ws walks `name` */
    bool sealed;   /* a newer segment is known to exist */
    bool stat_ok;
    uint64_t file_bytes; /* from the last statx */
    uint64_t stat_size;
    int64_t stat_mtime_ns;
    tl_walseg_facts stat_facts; /* sealed and durable as of the last statx's submission */
    tl_walseg ws;
} tail_seg;

struct tl_wal_tailer {
    tl_wal_tail_cfg cfg;
    int dirfd;
    struct io_uring ring;
    bool ring_ok;
    bool registered;
    uint8_t *bufs; /* read_ahead * buf_bytes */
    uint8_t *carry;
    tail_slot slots[TL_WAL_TAIL_MAX_READ_AHEAD];
    uint32_t q_head, q_count, stale_count, epoch;
    uint32_t inflight;        /* every op whose CQE is still to come */
    uint32_t closes_inflight; /* of which closes */
    uint64_t read_off;        /* where the next read of this epoch starts */
    uint64_t carry_off;
    uint32_t carry_n;
    tl_walseg_facts carry_facts;
    uint32_t carry_stat_changes;
    tail_seg cur;
    uint8_t phase; /* enum phase */
    uint32_t seg_gen;
    /* open */
    uint64_t open_name;
    bool open_speculative; /* the predicted name: ENOENT is no news */
    bool open_inflight;
    uint32_t open_gen;
    char open_path[TL_SEG_NAME_BYTES + 1];
    /* statx of the current file */
    bool stat_inflight;
    tl_walseg_facts stat_sub_facts;
    struct statx stx_cur;
    uint64_t last_stat_ns; /* when the last one was submitted */
    /* probe of a newer segment's name */
    bool probe_inflight;
    uint64_t probe_name;
    char probe_path[TL_SEG_NAME_BYTES + 1];
    struct statx stx_probe;
    uint64_t next_probe_ns;
    uint64_t probe_found; /* the newest name a probe found (0: none): older ones are sealed */
    /* the directory */
    tl_wal_dir dir;
    uint64_t next_rescan_ns;
    /* NEXT */
    uint64_t next_guess; /* the predicted name: last seq + 1 */
    bool next_tried_guess;
    bool waiting;
    /* ERROR */
    uint64_t err_name;
    uint64_t retry_ns;
    /* the durable hint */
    tl_walseg_durable hint;
    bool hint_ever;
    bool hint_pending; /* given since the last slow path */
    uint64_t hint_at_ns;
    /* parked at the tail */
    bool parked;
    bool park_tentative;
    uint64_t park_off;
    tl_walseg_facts park_facts;
    uint32_t park_stat_changes; /* of the read the walker parked on */
    uint32_t stat_changes;      /* statx results that saw the file change */
    bool following;             /* it has parked once: read the tail in small reads */
    bool burst;                 /* the log goes on past whole reads: read ahead in full */
    /* CAUGHT_UP */
    bool progress;
    bool caught_up_ever;
    bool caught_up_due;
    /* position */
    uint64_t read_seq;
    uint64_t read_seg;
    bool anchor_set;
    uint64_t now_ns;
    tl_wal_tail_stats st;
};

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts); /* vDSO: no system call */
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tl_wal_tail_cfg_default(tl_wal_tail_cfg *c) {
    memset(c, 0, sizeof *c);
    c->read_ahead = TL_WAL_TAIL_DEFAULT_READ_AHEAD;
    c->buf_bytes = TL_WAL_TAIL_DEFAULT_BUF_BYTES;
    c->tail_bytes = TL_WAL_TAIL_DEFAULT_TAIL_BYTES;
    c->stat_interval_ns = TL_WAL_TAIL_DEFAULT_STAT_NS;
    c->hint_stat_interval_ns = TL_WAL_TAIL_DEFAULT_HINT_STAT_NS;
    c->rescan_interval_ns = TL_WAL_TAIL_DEFAULT_RESCAN_NS;
    c->hint_timeout_ns = TL_WAL_TAIL_DEFAULT_HINT_NS;
    c->recent_ns = TL_WAL_TAIL_DEFAULT_RECENT_NS;
}

const char *tl_wal_tail_state_name(enum tl_wal_tail_state s) {
    switch (s) {
        case TL_WAL_TAIL_ST_EMPTY:
            return "empty";
        case TL_WAL_TAIL_ST_OPENING:
            return "opening";
        case TL_WAL_TAIL_ST_READING:
            return "reading";
        case TL_WAL_TAIL_ST_FOLLOWING:
            return "following";
        case TL_WAL_TAIL_ST_WAITING:
            return "waiting";
        case TL_WAL_TAIL_ST_IO_ERROR:
            return "io_error";
        case TL_WAL_TAIL_ST_COUNT:
            break;
    }
    return "?";
}

static bool cfg_valid(const tl_wal_tail_cfg *c) {
    if (c->dir == NULL || c->read_ahead < 1 || c->read_ahead > TL_WAL_TAIL_MAX_READ_AHEAD)
        return false;
    if (c->buf_bytes < TL_WAL_TAIL_MIN_BUF_BYTES || c->buf_bytes > TL_WAL_TAIL_MAX_BUF_BYTES ||
        c->buf_bytes % 4096u != 0)
        return false;
    if (c->tail_bytes < 4096u || c->tail_bytes > c->buf_bytes || c->tail_bytes % 4096u != 0)
        return false;
    if ((uint64_t)c->read_ahead * c->buf_bytes > TL_WAL_TAIL_MAX_TOTAL_BYTES)
        return false;
    return c->stat_interval_ns > 0 && c->hint_stat_interval_ns > 0 && c->rescan_interval_ns > 0 &&
           c->hint_timeout_ns > 0;
}

/* ---- io_uring plumbing ---- */

static struct io_uring_sqe *sqe_get(tl_wal_tail *t) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
    /* The SQ holds read_ahead + OTHER_OPS_MAX entries and is submitted on
     * every poll: it cannot be full (see the top of the file). */
    TL_ASSERT(sqe != NULL);
    t->inflight++;
    return sqe;
}

static void queue_close(tl_wal_tail *t, int fd) {
    if (fd < 0)
        return;
    if (t->closes_inflight >= CLOSE_MAX) {
        /* Never seen: closes complete within microseconds. A close(2) of a
         * regular file does not block. */
        close(fd);
        return;
    }
    struct io_uring_sqe *sqe = sqe_get(t);
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, ud_make(UD_CLOSE, 0));
    t->closes_inflight++;
}

static void record_ioerr(tl_wal_tail *t, const char *op, int err, uint64_t segment) {
    t->st.io_errors_total++;
    t->st.last_ioerr = (tl_wal_ioerr){op, err};
    t->st.last_ioerr_segment = segment;
}

/* ---- the read pipeline ---- */

static tail_slot *head_slot(tl_wal_tail *t) {
    return t->q_count > 0 ? &t->slots[t->q_head] : NULL;
}

static void release_head(tl_wal_tail *t) {
    tail_slot *s = head_slot(t);
    TL_ASSERT(s != NULL && s->state == SLOT_DONE);
    if (s->epoch != t->epoch) {
        TL_ASSERT(t->stale_count > 0);
        t->stale_count--;
        t->st.stale_reads_total++;
    }
    s->state = SLOT_FREE;
    t->q_head = (t->q_head + 1) % t->cfg.read_ahead;
    t->q_count--;
}

/* Drops completed stale reads at the head of the FIFO. */
static void drop_stale(tl_wal_tail *t) {
    for (uint32_t i = 0; i < TL_WAL_TAIL_MAX_READ_AHEAD && t->stale_count > 0; i++) {
        tail_slot *s = head_slot(t);
        if (s == NULL || s->epoch == t->epoch || s->state != SLOT_DONE)
            return;
        release_head(t);
    }
}

/* Forgets every read and the carry: the next read starts at the walker. */
static void reset_pipeline(tl_wal_tail *t) {
    t->epoch++;
    t->stale_count = t->q_count;
    t->carry_n = 0;
    t->read_off = t->cur.ws.off;
    drop_stale(t);
}

static void prep_read(tl_wal_tail *t, tail_slot *s, uint32_t idx) {
    struct io_uring_sqe *sqe = sqe_get(t);
    uint8_t *dst = s->buf + s->got;
    unsigned n = s->want - s->got;
    uint64_t off = s->off + s->got;
    if (t->registered)
        io_uring_prep_read_fixed(sqe, s->fd, dst, n, off, (int)idx);
    else
        io_uring_prep_read(sqe, s->fd, dst, n, off);
    io_uring_sqe_set_data64(sqe, ud_make(UD_READ, idx));
}

static void submit_read(tl_wal_tail *t, uint32_t len, const tl_walseg_facts *facts) {
    TL_ASSERT(t->q_count < t->cfg.read_ahead && len > 0 && len <= t->cfg.buf_bytes);
    uint32_t idx = (t->q_head + t->q_count) % t->cfg.read_ahead;
    tail_slot *s = &t->slots[idx];
    TL_ASSERT(s->state == SLOT_FREE);
    s->state = SLOT_INFLIGHT;
    s->retries = 0;
    s->err = 0;
    s->epoch = t->epoch;
    s->want = len;
    s->got = 0;
    s->fd = t->cur.fd;
    s->stat_changes = t->stat_changes;
    s->off = t->read_off;
    s->facts = *facts;
    t->q_count++;
    t->read_off += len;
    t->st.reads_total++;
    prep_read(t, s, idx);
}

static void on_read(tl_wal_tail *t, uint32_t idx, int res) {
    TL_ASSERT(idx < t->cfg.read_ahead);
    tail_slot *s = &t->slots[idx];
    TL_ASSERT(s->state == SLOT_INFLIGHT);
    bool live = s->epoch == t->epoch;
    if (res < 0) {
        if (live && (res == -EINTR || res == -EAGAIN) && s->retries < READ_RETRIES) {
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
    uint64_t end = s->off + s->got;
    if (live && res > 0 && s->got < s->want && end < s->facts.file_bytes &&
        s->retries < READ_RETRIES) {
        s->retries++; /* a short read before the end of the file: go on */
        prep_read(t, s, idx);
        return;
    }
    /* The file ends here as far as this read saw (it shrank, or the kernel
     * kept stopping short): judge the bytes there are, never more. */
    if (s->got < s->want && end < s->facts.file_bytes)
        s->facts.file_bytes = end;
    s->state = SLOT_DONE;
}

/* ---- facts ---- */

static bool same_durable(const tl_walseg_durable *a, const tl_walseg_durable *b) {
    return a->seq == b->seq && a->segment_first_seq == b->segment_first_seq &&
           a->offset == b->offset;
}

/* A preallocated file: its size cannot matter to the walker any more. */
static bool seg_full(const tail_seg *c) {
    return c->ws.hdr_ok && c->stat_ok && c->file_bytes >= c->ws.hdr.segment_size;
}

/* The facts a read submitted now carries. For a file that may still grow, the
 * size must have been sampled after the other facts (else a durable offset
 * past a stale size reads as a torn record): the last statx and the facts
 * as they were when it was submitted. */
static void usable_facts(const tl_wal_tail *t, tl_walseg_facts *f) {
    const tail_seg *c = &t->cur;
    if (seg_full(c)) {
        f->sealed = c->sealed;
        f->file_bytes = c->file_bytes;
        f->durable = t->hint;
    } else {
        *f = c->stat_facts;
    }
}

static bool hint_active(const tl_wal_tail *t) {
    return t->hint_ever && t->now_ns - t->hint_at_ns <= t->cfg.hint_timeout_ns;
}

/* The hint says durable data lies past `off` of segment `name`. */
static bool durable_beyond(const tl_walseg_durable *d, uint64_t name, uint64_t off) {
    return d->seq != 0 &&
           (d->segment_first_seq > name || (d->segment_first_seq == name && d->offset > off));
}

/* ---- the directory ---- */

static bool rescan(tl_wal_tail *t) {
    t->st.dir_scans_total++;
    enum tl_wal_err e = tl_wal_dir_scan(&t->dir, t->dirfd);
    if (e == TL_WAL_ERR_IO) {
        record_ioerr(t, t->dir.ioerr.op, t->dir.ioerr.sys_errno, 0);
        return false;
    }
    if (e != TL_WAL_OK) {
        record_ioerr(t, "wal_dir_scan", ENOBUFS, 0); /* too many segments */
        return false;
    }
    return true;
}

/* The lowest listed segment above `name`, or 0. */
static uint64_t listed_after(const tl_wal_tail *t, uint64_t name) {
    int64_t i = tl_wal_dir_find(&t->dir, name);
    uint64_t j = (uint64_t)(i + 1);
    return j < t->dir.count ? t->dir.first_seqs[j] : 0;
}

static void begin_open(tl_wal_tail *t, uint64_t name, bool speculative) {
    t->phase = PH_OPEN;
    t->open_name = name;
    t->open_speculative = speculative;
}

static void choose_start(tl_wal_tail *t) {
    if (t->dir.count == 0) {
        t->phase = PH_EMPTY;
        if (!t->caught_up_ever)
            t->caught_up_due = true;
        return;
    }
    int64_t i = 0;
    if (t->cfg.start_seq > 1) {
        i = tl_wal_dir_find(&t->dir, t->cfg.start_seq);
        if (i < 0)
            i = 0; /* below the lowest segment present: start there */
    }
    begin_open(t, t->dir.first_seqs[i], false);
}

/* ---- segment transitions ---- */

static void segment_done(tl_wal_tail *t) {
    tail_seg *c = &t->cur;
    queue_close(t, c->fd);
    c->fd = -1;
    t->seg_gen++; /* statx and probe results about it are stale */
    reset_pipeline(t);
    t->parked = false;
    t->phase = PH_NEXT;
    t->next_guess = c->ws.next_seq > c->name ? c->ws.next_seq : c->name + 1;
    t->next_tried_guess = false;
    t->waiting = false;
    t->next_rescan_ns = t->now_ns; /* if the guess is missing, list at once */
}

static void io_error(tl_wal_tail *t, const char *op, int err, uint64_t segment) {
    record_ioerr(t, op, err, segment);
    tail_seg *c = &t->cur;
    queue_close(t, c->fd);
    c->fd = -1;
    t->seg_gen++;
    reset_pipeline(t);
    t->parked = false;
    t->phase = PH_ERROR;
    t->err_name = segment;
    t->retry_ns = t->now_ns + t->cfg.rescan_interval_ns;
}

static void on_open(tl_wal_tail *t, int res) {
    tail_seg *c = &t->cur;
    uint64_t name = t->open_name;
    if (res >= 0) {
        t->st.segments_opened++;
        if (!(c->active && c->name == name)) {
            /* A new segment (else: the same one again after an error, and the
             * walk resumes where it stopped). */
            c->name = name;
            c->active = true;
            c->sealed = listed_after(t, name) != 0 || t->probe_found > name;
            c->file_bytes = 0;
            tl_walseg_init(&c->ws, name);
            t->burst = c->sealed || !t->following;
        }
        c->fd = res;
        c->stat_ok = false;
        t->seg_gen++;
        t->phase = PH_STAT;
        return;
    }
    int err = -res;
    if (err != ENOENT) {
        io_error(t, "openat", err, name);
        return;
    }
    if (t->open_speculative) {
        t->phase = c->active ? PH_NEXT : PH_EMPTY;
        return;
    }
    /* Listed, or the segment we were reading: deleted behind us. */
    t->st.segments_missing_total++;
    t->st.last_missing_segment = name;
    t->next_rescan_ns = t->now_ns;
    if (c->active && c->name == name) {
        /* Its rest is lost: go on with the next segment (the loop's stream
         * sees the gap in the next header). */
        segment_done(t);
        return;
    }
    t->phase = c->active ? PH_NEXT : PH_EMPTY;
    t->next_tried_guess = true;
}

static void on_stat(tl_wal_tail *t, int res) {
    tail_seg *c = &t->cur;
    t->st.statx_total++;
    if (res < 0) {
        if (t->phase == PH_STAT)
            io_error(t, "statx", -res, c->name);
        else
            record_ioerr(t, "statx", -res, c->name);
        return;
    }
    uint64_t size = t->stx_cur.stx_size;
    int64_t mtime =
        (int64_t)t->stx_cur.stx_mtime.tv_sec * 1000000000ll + (int64_t)t->stx_cur.stx_mtime.tv_nsec;
    /* Timestamps are coarse (a clock tick): a write in the tick of the last
     * statx leaves the mtime as it was. A recent mtime is a change too. */
    int64_t age = (int64_t)clock_ns(CLOCK_REALTIME) - mtime;
    bool recent = age < (int64_t)t->cfg.recent_ns && age > -(int64_t)t->cfg.recent_ns;
    bool changed = !c->stat_ok || size != c->stat_size || mtime != c->stat_mtime_ns || recent;
    c->stat_ok = true;
    c->stat_size = size;
    c->stat_mtime_ns = mtime;
    c->file_bytes = size;
    c->stat_facts = t->stat_sub_facts;
    c->stat_facts.file_bytes = size;
    if (changed)
        t->stat_changes++;
    if (t->phase == PH_STAT) {
        t->phase = PH_READ;
        t->parked = false;
        reset_pipeline(t);
    }
}

static void on_probe(tl_wal_tail *t, int res) {
    t->st.probes_total++;
    if (res != 0)
        return; /* ENOENT: not there yet */
    if (t->phase == PH_EMPTY) {
        t->next_rescan_ns = t->now_ns; /* a log appeared: list it now */
        return;
    }
    uint64_t name = t->probe_name;
    if (name > t->probe_found)
        t->probe_found = name;
    if (t->cur.active && name > t->cur.name)
        t->cur.sealed = true;
}

static void on_cqe(tl_wal_tail *t, uint64_t u, int res) {
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

static void reap(tl_wal_tail *t) {
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

/* Returns how many SQEs went to the kernel. */
static unsigned submit(tl_wal_tail *t) {
    if (io_uring_sq_ready(&t->ring) == 0)
        return 0;
    int r = io_uring_submit(&t->ring);
    if (r < 0) {
        /* EAGAIN, EBUSY, EINTR: the SQEs stay queued for the next poll. */
        if (r != -EAGAIN && r != -EBUSY && r != -EINTR)
            record_ioerr(t, "io_uring_enter", -r, t->cur.name);
        return 0;
    }
    return (unsigned)r;
}

/* ---- scheduling I/O ---- */

static void submit_open(tl_wal_tail *t) {
    tl_seg_name(t->open_path, sizeof t->open_path, t->open_name);
    struct io_uring_sqe *sqe = sqe_get(t);
    io_uring_prep_openat(sqe, t->dirfd, t->open_path, O_RDONLY | O_CLOEXEC, 0);
    io_uring_sqe_set_data64(sqe, ud_make(UD_OPEN, ++t->open_gen));
    t->open_inflight = true;
}

/* The open begin_open asked for, unless an older one is still in flight (its
 * answer is dropped; the PH_OPEN schedule submits ours after it). */
static void open_now(tl_wal_tail *t) {
    TL_ASSERT(t->phase == PH_OPEN);
    if (!t->open_inflight)
        submit_open(t);
}

static void submit_stat(tl_wal_tail *t) {
    TL_ASSERT(!t->stat_inflight && t->cur.fd >= 0);
    t->stat_sub_facts.sealed = t->cur.sealed;
    t->stat_sub_facts.durable = t->hint;
    t->stat_sub_facts.file_bytes = 0;
    struct io_uring_sqe *sqe = sqe_get(t);
    io_uring_prep_statx(sqe, t->cur.fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_MTIME, &t->stx_cur);
    io_uring_sqe_set_data64(sqe, ud_make(UD_STATX, t->seg_gen));
    t->stat_inflight = true;
    t->last_stat_ns = t->now_ns;
}

static void submit_probe(tl_wal_tail *t, uint64_t name) {
    TL_ASSERT(!t->probe_inflight);
    t->probe_name = name;
    tl_seg_name(t->probe_path, sizeof t->probe_path, name);
    struct io_uring_sqe *sqe = sqe_get(t);
    io_uring_prep_statx(sqe, t->dirfd, t->probe_path, 0, STATX_TYPE, &t->stx_probe);
    io_uring_sqe_set_data64(sqe, ud_make(UD_PROBE, t->seg_gen));
    t->probe_inflight = true;
    t->next_probe_ns = t->now_ns + t->cfg.stat_interval_ns;
}

static void issue_reads(tl_wal_tail *t) {
    tail_seg *c = &t->cur;
    tl_walseg_facts u;
    usable_facts(t, &u);
    uint64_t seg_end = u.file_bytes;
    if (c->ws.hdr_ok && c->ws.hdr.segment_size < seg_end)
        seg_end = c->ws.hdr.segment_size;
    bool ahead = u.sealed || t->burst;
    uint64_t want_end = seg_end;
    if (!ahead) {
        /* At the tail: a small read, or up to the durable point. */
        want_end = c->ws.off + t->cfg.tail_bytes;
        const tl_walseg_durable *d = &u.durable;
        if (d->seq != 0 && d->segment_first_seq == c->name && d->offset > want_end)
            want_end = d->offset;
        if (want_end > seg_end)
            want_end = seg_end;
    }
    uint32_t live = t->q_count - t->stale_count;
    for (uint32_t i = 0; i < t->cfg.read_ahead && t->q_count < t->cfg.read_ahead; i++) {
        uint64_t len;
        if (t->read_off < want_end) {
            len = want_end - t->read_off;
            if (!ahead)
                len = (len + 4095u) & ~(uint64_t)4095u;
            if (len > t->cfg.buf_bytes)
                len = t->cfg.buf_bytes;
        } else if (live == 0) {
            /* The walker waits at read_off and nothing is on its way: read,
             * even past the known end (the read says what is there). */
            len = t->cfg.tail_bytes;
        } else {
            break;
        }
        submit_read(t, (uint32_t)len, &u);
        live++;
    }
}

static void read_tick(tl_wal_tail *t) {
    tail_seg *c = &t->cur;
    bool hint_mode = hint_active(t);
    /* A newer segment seals this one: the hint's, or the predicted name. */
    if (!c->sealed && !t->probe_inflight && t->now_ns >= t->next_probe_ns) {
        uint64_t name = 0;
        if (hint_mode && t->hint.segment_first_seq > c->name)
            name = t->hint.segment_first_seq;
        else if (!hint_mode && t->parked && c->ws.next_seq > c->name)
            name = c->ws.next_seq;
        if (name != 0)
            submit_probe(t, name);
    }
    /* Without a hint, a torn tail is judged once a newer segment exists, and
     * its name cannot be predicted if the torn seq was used up: list. */
    if (!c->sealed && !hint_mode && t->parked && t->park_tentative &&
        t->now_ns >= t->next_rescan_ns) {
        t->next_rescan_ns = t->now_ns + t->cfg.rescan_interval_ns;
        if (rescan(t) && listed_after(t, c->name) != 0)
            c->sealed = true;
    }
    if (!t->stat_inflight) {
        bool facts_moved =
            !same_durable(&c->stat_facts.durable, &t->hint) || c->stat_facts.sealed != c->sealed;
        bool want = !seg_full(c) && facts_moved;
        /* The interval of the mode in force now: a hint that stopped coming
         * hands over to the fast cadence at once. */
        uint64_t every = hint_mode ? t->cfg.hint_stat_interval_ns : t->cfg.stat_interval_ns;
        if (t->parked && t->now_ns - t->last_stat_ns >= every)
            want = true;
        if (want)
            submit_stat(t);
    }
    if (!t->parked)
        issue_reads(t);
}

static void next_tick(tl_wal_tail *t) {
    if (t->open_inflight)
        return;
    if (!t->next_tried_guess || (t->waiting && t->now_ns >= t->next_probe_ns)) {
        /* The predicted name first: a name from an older listing could skip
         * a segment created since. */
        t->next_tried_guess = true;
        t->next_probe_ns = t->now_ns + t->cfg.stat_interval_ns;
        begin_open(t, t->next_guess, true);
        open_now(t);
        return;
    }
    if (t->now_ns < t->next_rescan_ns)
        return;
    t->next_rescan_ns = t->now_ns + t->cfg.rescan_interval_ns;
    uint64_t name = rescan(t) ? listed_after(t, t->cur.name) : 0;
    if (name != 0) {
        if (name != t->next_guess) {
            t->st.segments_missing_total++; /* the predicted one is not there */
            t->st.last_missing_segment = t->next_guess;
        }
        begin_open(t, name, false);
        open_now(t);
        return;
    }
    if (!t->waiting) {
        t->waiting = true;
        if (t->progress || !t->caught_up_ever)
            t->caught_up_due = true;
    }
}

static void schedule(tl_wal_tail *t) {
    drop_stale(t);
    switch ((enum phase)t->phase) {
        case PH_EMPTY:
            /* The first segment expected: the hint's, or a new log's. A probe
             * between listings starts the tail without waiting for one. */
            if (!t->probe_inflight && t->now_ns >= t->next_probe_ns)
                submit_probe(t, hint_active(t) && t->hint.segment_first_seq != 0
                                    ? t->hint.segment_first_seq
                                    : 1);
            if (t->now_ns >= t->next_rescan_ns) {
                t->next_rescan_ns = t->now_ns + t->cfg.rescan_interval_ns;
                if (rescan(t) && t->dir.count > 0) {
                    choose_start(t);
                    open_now(t);
                }
            }
            break;
        case PH_OPEN:
            if (!t->open_inflight)
                submit_open(t);
            break;
        case PH_STAT:
            if (!t->stat_inflight)
                submit_stat(t);
            break;
        case PH_READ:
            read_tick(t);
            break;
        case PH_NEXT:
            next_tick(t);
            break;
        case PH_ERROR:
            if (t->now_ns >= t->retry_ns) {
                begin_open(t, t->err_name, false);
                open_now(t);
            }
            break;
    }
}

/* ---- walking ---- */

enum { STEP_IDLE = 0, STEP_PROGRESS, STEP_EVENT };

static bool carry_active(const tl_wal_tail *t) {
    uint64_t o = t->cur.ws.off;
    return t->carry_n > 0 && o >= t->carry_off && o < t->carry_off + t->carry_n;
}

/* The walk cannot go on with these reads (a hole after a short read): read
 * again from the walker. */
static int resync(tl_wal_tail *t) {
    reset_pipeline(t);
    return STEP_PROGRESS;
}

/* Copies the file's bytes up to `end` into the carry, from the reads in
 * flight, oldest first. */
static int carry_extend(tl_wal_tail *t, uint64_t o, uint64_t end) {
    TL_ASSERT(o >= t->carry_off && o < t->carry_off + t->carry_n);
    if (o > t->carry_off) {
        uint32_t drop = (uint32_t)(o - t->carry_off);
        memmove(t->carry, t->carry + drop, t->carry_n - drop);
        t->carry_n -= drop;
        t->carry_off = o;
    }
    TL_ASSERT(end > o && end - o <= CARRY_BYTES);
    for (uint32_t i = 0; i < 2u * TL_WAL_TAIL_MAX_READ_AHEAD + 2u; i++) {
        uint64_t carry_end = t->carry_off + t->carry_n;
        if (carry_end >= end)
            return STEP_PROGRESS;
        drop_stale(t);
        tail_slot *h = head_slot(t);
        if (h == NULL || h->epoch != t->epoch || h->state != SLOT_DONE)
            return STEP_IDLE; /* the scheduler reads at read_off == carry_end */
        if (h->err != 0) {
            io_error(t, "read", h->err, t->cur.name);
            return STEP_PROGRESS;
        }
        uint64_t h_end = h->off + h->got;
        if (h->off > carry_end || h_end < carry_end)
            return resync(t);
        uint64_t stop = end < h_end ? end : h_end;
        if (stop > carry_end) {
            memcpy(t->carry + t->carry_n, h->buf + (carry_end - h->off), stop - carry_end);
            t->carry_n += (uint32_t)(stop - carry_end);
            /* The oldest piece's facts, and the smallest size any piece saw. */
            if (h->facts.file_bytes < t->carry_facts.file_bytes)
                t->carry_facts.file_bytes = h->facts.file_bytes;
        }
        if (stop == h_end)
            release_head(t); /* all of it is in the carry now */
    }
    return STEP_PROGRESS;
}

static int need_more(tl_wal_tail *t, tail_slot *h, const tl_walseg_event *we) {
    uint64_t o = we->offset;
    uint64_t end = o + we->len;
    if (carry_active(t))
        return carry_extend(t, o, end);
    TL_ASSERT(h != NULL);
    uint64_t h_end = h->off + h->got;
    if (o < h->off)
        return resync(t);
    if (o >= h_end) {
        /* The walk went through the whole read: more of the log follows. */
        if (h->got == h->want)
            t->burst = true;
        release_head(t);
        return STEP_PROGRESS;
    }
    /* A record (or header) straddles two reads: reassemble it. */
    t->st.carried_total++;
    t->burst = true;
    t->carry_off = o;
    t->carry_n = (uint32_t)(h_end - o);
    t->carry_facts = h->facts;
    t->carry_stat_changes = h->stat_changes;
    memcpy(t->carry, h->buf + (o - h->off), t->carry_n);
    release_head(t);
    return carry_extend(t, o, end);
}

static void park(tl_wal_tail *t, const tl_walseg_facts *facts, uint32_t stat_changes,
                 bool tentative) {
    t->parked = true;
    t->park_stat_changes = stat_changes;
    t->park_tentative = tentative;
    t->park_off = t->cur.ws.off;
    t->park_facts = *facts;
    t->following = true;
    t->burst = false;
    reset_pipeline(t);
    if (t->progress || !t->caught_up_ever)
        t->caught_up_due = true;
    if (tentative)
        t->next_rescan_ns = t->now_ns + t->cfg.rescan_interval_ns;
}

/* Read the tail again: something that may change the verdict changed. */
static bool rearm_due(tl_wal_tail *t) {
    tl_walseg_facts u;
    usable_facts(t, &u);
    const tl_walseg_facts *p = &t->park_facts;
    if (u.sealed && !p->sealed)
        return true;
    if (!same_durable(&u.durable, &p->durable) &&
        durable_beyond(&u.durable, t->cur.name, t->park_off))
        return true;
    /* A statx that completed after the parking read was submitted saw a
     * change that read may have missed. */
    return t->stat_changes != t->park_stat_changes;
}

static int emit_caught_up(tl_wal_tail *t, tl_wal_ev *ev) {
    ev->type = TL_WAL_EV_CAUGHT_UP;
    ev->loc = (tl_loc){t->cur.active ? t->cur.name : 0, t->cur.active ? t->cur.ws.off : 0};
    t->caught_up_due = false;
    t->caught_up_ever = true;
    t->progress = false;
    t->st.caught_up_total++;
    return STEP_EVENT;
}

static void fill_fault(tl_wal_tail *t, const tl_walseg_event *we, tl_wal_ev *ev) {
    ev->rule = we->rule;
    ev->reason = we->reason;
    ev->loc = (tl_loc){t->cur.name, we->offset};
    ev->seq = we->seq != 0 ? we->seq : we->expected_seq;
    ev->checksum = we->checksum;
}

static int step_read(tl_wal_tail *t, tl_wal_ev *ev) {
    tail_seg *c = &t->cur;
    if (t->parked) {
        if (t->caught_up_due)
            return emit_caught_up(t, ev);
        if (!rearm_due(t))
            return STEP_IDLE;
        t->parked = false;
        t->st.rereads_total++;
        reset_pipeline(t);
        return STEP_PROGRESS;
    }
    drop_stale(t);
    uint8_t *buf;
    uint64_t boff;
    size_t n;
    tl_walseg_facts facts;
    uint32_t stat_changes;
    tail_slot *h = NULL;
    if (carry_active(t)) {
        buf = t->carry;
        boff = t->carry_off;
        n = t->carry_n;
        facts = t->carry_facts;
        stat_changes = t->carry_stat_changes;
    } else {
        t->carry_n = 0;
        h = head_slot(t);
        if (h == NULL || h->epoch != t->epoch || h->state != SLOT_DONE)
            return STEP_IDLE;
        if (h->err != 0) {
            io_error(t, "read", h->err, c->name);
            return STEP_PROGRESS;
        }
        buf = h->buf;
        boff = h->off;
        n = h->got;
        facts = h->facts;
        stat_changes = h->stat_changes;
    }
    tl_walseg_event we;
    tl_walseg_next(&c->ws, &facts, buf, boff, n, &we);
    switch ((enum tl_walseg_ev)we.kind) {
        case TL_WALSEG_NEED_MORE:
            return need_more(t, h, &we);
        case TL_WALSEG_HEADER:
            ev->type = TL_WAL_EV_SEGMENT;
            ev->hdr = &c->ws.hdr;
            ev->name_first_seq = c->name;
            ev->loc = (tl_loc){c->name, 0};
            if (!t->anchor_set) {
                t->anchor_set = true;
                t->st.anchor_segment = c->name;
                t->st.anchor_verified = c->ws.hdr.segment_index == 0 && t->cfg.start_seq <= 1;
            }
            t->st.segments_total++;
            t->progress = true;
            return STEP_EVENT;
        case TL_WALSEG_RECORD:
            ev->type = TL_WAL_EV_RECORD;
            tl_rec_view_native(&ev->view, we.rec, false);
            ev->loc = (tl_loc){c->name, we.offset};
            if (ev->view.seq > t->read_seq) {
                t->read_seq = ev->view.seq;
                t->read_seg = c->name;
            }
            t->st.records_total++;
            t->progress = true;
            return STEP_EVENT;
        case TL_WALSEG_CORRUPT:
            ev->type = TL_WAL_EV_CORRUPT;
            fill_fault(t, &we, ev);
            t->st.corrupt_total++;
            t->progress = true;
            if (c->ws.done)
                segment_done(t); /* rule 1/2 or the header: its rest is lost */
            return STEP_EVENT;
        case TL_WALSEG_TENTATIVE:
            TL_ASSERT(!c->ws.done);
            ev->type = TL_WAL_EV_TENTATIVE;
            fill_fault(t, &we, ev);
            t->st.tentative_total++;
            park(t, &facts, stat_changes, true);
            return STEP_EVENT;
        case TL_WALSEG_END:
            if (c->ws.done)
                segment_done(t);
            else
                park(t, &facts, stat_changes, false);
            return STEP_PROGRESS;
    }
    TL_UNREACHABLE();
}

static int step(tl_wal_tail *t, tl_wal_ev *ev) {
    switch ((enum phase)t->phase) {
        case PH_READ:
            return step_read(t, ev);
        case PH_EMPTY:
        case PH_NEXT:
            if (t->caught_up_due && (t->phase == PH_EMPTY || t->waiting))
                return emit_caught_up(t, ev);
            return STEP_IDLE;
        case PH_OPEN:
        case PH_STAT:
        case PH_ERROR:
            return STEP_IDLE;
    }
    TL_UNREACHABLE();
}

bool tl_wal_tail_poll(tl_wal_tail *t, tl_wal_ev *ev) {
    memset(ev, 0, sizeof *ev);
    /* Fast path: the next record is usually in a read already. The I/O side
     * (reap, schedule, submit) runs when a step did anything else: a read
     * consumed (its slot is free for the next read at once), a segment
     * ended, or the walker waits. No decision of a step depends on the clock
     * being fresher than the last slow path. */
    if (step(t, ev) == STEP_EVENT)
        return true;
    t->now_ns = clock_ns(CLOCK_MONOTONIC);
    if (t->hint_pending) {
        t->hint_pending = false;
        t->hint_at_ns = t->now_ns;
    }
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
        /* Another round only if this one changed something the scheduler
         * may act on (a read consumed, a segment done) or sent I/O. */
        if (!progressed && sent == 0)
            break;
    }
    submit(t);
    return false;
}

bool tl_wal_tail_poll_op(void *ctx, tl_wal_ev *ev) {
    return tl_wal_tail_poll(ctx, ev);
}

void tl_wal_tail_durable(tl_wal_tail *t, bool valid, uint64_t durable_seq,
                         uint64_t segment_first_seq, uint64_t offset) {
    if (!valid || durable_seq == 0)
        return; /* keep the last good snapshot (ring.md); 0 is "none yet" */
    t->hint = (tl_walseg_durable){durable_seq, segment_first_seq, offset};
    t->hint_ever = true;
    t->hint_pending = true; /* stamped with the clock of the next slow path */
}

tl_wal_tail_pos tl_wal_tail_position(const tl_wal_tail *t) {
    if (!t->hint_ever || t->read_seq == 0)
        return (tl_wal_tail_pos){0, 0};
    if (t->read_seq <= t->hint.seq)
        return (tl_wal_tail_pos){t->read_seq, t->read_seg};
    /* Read past the durable point: the durable record is read, and the hint
     * names its segment. */
    return (tl_wal_tail_pos){t->hint.seq, t->hint.segment_first_seq};
}

void tl_wal_tail_get_stats(const tl_wal_tail *t, tl_wal_tail_stats *s) {
    *s = t->st;
    switch ((enum phase)t->phase) {
        case PH_EMPTY:
            s->state = TL_WAL_TAIL_ST_EMPTY;
            break;
        case PH_OPEN:
        case PH_STAT:
            s->state = TL_WAL_TAIL_ST_OPENING;
            break;
        case PH_READ:
            s->state = t->parked ? TL_WAL_TAIL_ST_FOLLOWING : TL_WAL_TAIL_ST_READING;
            break;
        case PH_NEXT:
            s->state = t->waiting ? TL_WAL_TAIL_ST_WAITING : TL_WAL_TAIL_ST_OPENING;
            break;
        case PH_ERROR:
            s->state = TL_WAL_TAIL_ST_IO_ERROR;
            break;
    }
    s->registered = t->registered;
    s->hint_mode = hint_active(t);
    s->segment = t->cur.active ? t->cur.name : 0;
    s->offset = t->cur.active ? t->cur.ws.off : 0;
    s->read_seq = t->read_seq;
    s->read_ahead = t->cfg.read_ahead;
    s->buf_bytes = t->cfg.buf_bytes;
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->cfg.read_ahead; i++)
        n += t->slots[i].state == SLOT_INFLIGHT;
    s->reads_in_flight = n;
}

/* ---- open and close ---- */

static void register_buffers(tl_wal_tail *t) {
    size_t total = (size_t)t->cfg.read_ahead * t->cfg.buf_bytes;
    if (t->cfg.no_register)
        return;
    if (total > TL_WAL_TAIL_REGISTER_LIMIT_BYTES) {
        t->st.register_errno = E2BIG;
        return;
    }
    struct iovec iov[TL_WAL_TAIL_MAX_READ_AHEAD];
    for (uint32_t i = 0; i < t->cfg.read_ahead; i++)
        iov[i] = (struct iovec){t->slots[i].buf, t->cfg.buf_bytes};
    int r = io_uring_register_buffers(&t->ring, iov, t->cfg.read_ahead);
    if (r == 0) {
        t->registered = true;
        return;
    }
    /* ENOMEM or EPERM from the memlock limit: plain reads do the same work
     * with one page-pinning per read more. */
    t->st.register_errno = -r;
}

enum tl_wal_err tl_wal_tail_open(tl_wal_tail **out, const tl_wal_tail_cfg *cfg, tl_wal_ioerr *err) {
    *out = NULL;
    tl_wal_ioerr dummy;
    if (err == NULL)
        err = &dummy;
    *err = (tl_wal_ioerr){0};
    if (cfg == NULL || !cfg_valid(cfg))
        return TL_WAL_ERR_CONFIG;
    tl_wal_tail *t = calloc(1, sizeof *t);
    if (t == NULL)
        return TL_WAL_ERR_NOMEM;
    t->cfg = *cfg;
    t->cfg.dir = NULL; /* the caller's string: not kept */
    t->dirfd = -1;
    t->cur.fd = -1;
    enum tl_wal_err rc = TL_WAL_OK;

    t->dirfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t->dirfd < 0) {
        *err = (tl_wal_ioerr){"open", errno};
        rc = errno == ENOENT ? TL_WAL_ERR_NOT_FOUND : TL_WAL_ERR_IO;
        goto fail;
    }
    rc = tl_wal_dir_init(&t->dir, cfg->dir_max_entries);
    if (rc != TL_WAL_OK)
        goto fail;
    size_t total = (size_t)cfg->read_ahead * cfg->buf_bytes;
    t->bufs = aligned_alloc(4096, total);
    t->carry = aligned_alloc(4096, CARRY_BYTES);
    if (t->bufs == NULL || t->carry == NULL) {
        rc = TL_WAL_ERR_NOMEM;
        goto fail;
    }
    /* Touch every page now, not in the first reads. */
    memset(t->bufs, 0, total);
    memset(t->carry, 0, CARRY_BYTES);
    for (uint32_t i = 0; i < cfg->read_ahead; i++)
        t->slots[i].buf = t->bufs + (size_t)i * cfg->buf_bytes;

    /* Entries for every op that can be in flight at once (top of file). */
    int r = io_uring_queue_init(cfg->read_ahead + OTHER_OPS_MAX + 8u, &t->ring, 0);
    if (r < 0) {
        *err = (tl_wal_ioerr){"io_uring_queue_init", -r};
        rc = TL_WAL_ERR_IO;
        goto fail;
    }
    t->ring_ok = true;
    register_buffers(t);

    t->st.dir_scans_total++;
    rc = tl_wal_dir_scan(&t->dir, t->dirfd);
    if (rc != TL_WAL_OK) {
        *err = t->dir.ioerr;
        goto fail;
    }
    t->now_ns = clock_ns(CLOCK_MONOTONIC);
    t->next_rescan_ns = t->now_ns + cfg->rescan_interval_ns;
    choose_start(t);
    *out = t;
    return TL_WAL_OK;
fail:
    tl_wal_tail_close(t);
    return rc;
}

void tl_wal_tail_close(tl_wal_tail *t) {
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
    if (t->cur.fd >= 0)
        close(t->cur.fd);
    if (t->dirfd >= 0)
        close(t->dirfd);
    tl_wal_dir_free(&t->dir);
    /* A read still in flight could write into freed memory: leak instead. */
    if (drained) {
        free(t->bufs);
        free(t->carry);
        free(t);
    }
}
