/* enginesim_standby.c: `tally-enginesim --standby`, a standby engine that is
 * really a standby, for the peer checks of peer.md.
 *
 * It follows the leader's log from the leader's WAL directory and, record
 * by record, in seq order:
 *   - applies it to its own books (enginesim_book.c, the leader's code), so
 *     it holds its own state and computes its own state hash;
 *   - persists it in its own WAL byte for byte (tl_wal_append_record; its
 *     segment headers are its own, with its own engine_id, and it starts a
 *     segment where the leader did, so the leader's openers open its
 *     segments too);
 *   - publishes it on its own ring (the writer's on_record), with its own
 *     producer heartbeat and wal_durable_*, so its own tallyd follows it
 *     exactly as it follows a leader.
 * A CHECKPOINT is the one record it does not copy: it writes the CHECKPOINT
 * of its own books under the leader's header (seq, parent, fence, ts). While
 * the two states agree the bytes are the leader's, to the byte. When they
 * disagree its CHECKPOINT carries its own state hash, and it cannot persist
 * the leader's next record (its parent is the leader's checksum): it has
 * diverged, says so, and stops following. It keeps beating and serving its
 * admin socket, so its tallyd reports what it has: the divergent seq.
 *
 * Only records the leader made durable are followed when --leader-ring
 * names the leader's ring (its wal_durable_* bound what is read: wal.md "a
 * leader ships a record to standbys only once it is durable"); without it,
 * every complete record in the leader's files is.
 *
 * Admin commands: a standby's log is the leader's, so while it follows it
 * writes no MODE_CHANGE of its own. It takes a command into its mode table
 * (it leads with those modes if it is promoted) and answers ok with
 * applied_seq 0; its tallyd sees EXECUTED, never APPLIED, and sends it
 * again now and then (same id: a duplicate). Once promoted it writes
 * MODE_CHANGE records like any leader.
 *
 * Faults (split-brain on purpose, for tests):
 *   nondeterministic@SEQ  its matching differs at SEQ (the first ORDER_NEW at
 *                         or after SEQ leaves one more order resting than
 *                         the leader's), so its next CHECKPOINT's state hash
 *                         diverges from the leader's: STATE_HASH_DIVERGENCE.
 *   promote@SEQ           it promotes itself while the leader lives: at SEQ
 *                         it writes LEADER_CHANGE{fence + 1, its id} and
 *                         then makes its own records (its own order flow at
 *                         --rate, CHECKPOINTs, HEARTBEATs), claiming LEADER:
 *                         DUAL_LEADER at the leader's tally.
 *
 * Single-threaded like the engine, plus the producer heartbeat thread and
 * the WAL writer's sync thread.
 */
#include "enginesim_standby.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin_key.h"
#include "admin/admin_proto.h"
#include "admin/engine_server.h"
#include "admin/modes.h"
#include "core/segment.h"
#include "core/walseg.h"
#include "enginesim_book.h"
#include "enginesim_lease.h"
#include "io/wal_reader.h"
#include "io/wal_writer.h"
#include "shm/ring.h"

#define SB_BUDGET       256u /* leader records per pass */
#define SB_RECEIVED_MAX 4096u
#define SB_BEAT_MS      10u

static volatile sig_atomic_t sb_stop;

static void on_signal(int sig) {
    (void)sig;
    sb_stop = 1;
}

enum sb_state {
    SB_FOLLOWING = 0,
    SB_DIVERGED, /* its own CHECKPOINT disagreed: it stopped following */
    SB_PROMOTED, /* promote@SEQ: it leads */
    SB_STOPPED,  /* the leader's log could not be followed (a gap, corruption) */
};

static const char *const state_names[] = {"following", "diverged", "promoted", "stopped"};

typedef struct sb_opts {
    const char *leader_wal;
    const char *leader_ring;
    const char *ring;
    const char *wal;
    const char *admin_socket;
    const char *sidecar_key;
    const char *operator_key;
    uint64_t seed;
    uint32_t symbols;
    uint32_t orders_per_symbol;
    double seconds;
    uint32_t linger_ms;
    uint64_t segment_bytes;
    uint64_t ring_capacity;
    uint64_t checkpoint_every;
    uint64_t rate;
    uint32_t heartbeat_ms;
    uint64_t nondet_seq;
    uint64_t promote_seq;
    bool stats;
    bool quiet;
} sb_opts;

typedef struct sb_seen {
    char cmd[20];
    uint8_t id[TL_ID_BYTES];
    bool has_id;
} sb_seen;

typedef struct sb {
    sb_opts o;
    sim_state st;
    uint8_t id[TL_ID_BYTES];
    enum sb_state state;
    /* its own log and ring */
    tl_wal *w;
    tl_ring_producer *ring;
    uint64_t next_seq;  /* the next seq it persists */
    uint64_t seg_first; /* first seq of its current segment */
    /* admin */
    tl_admin_modes modes;
    tl_admin_server *srv;
    tl_admin_key sidecar, operator_key;
    uint32_t nseen;
    uint64_t admin_lines;
    sb_seen seen[SB_RECEIVED_MAX];
    /* the leader's log */
    int lfd;
    tl_walseg ws;
    uint8_t *buf; /* 8-aligned */
    size_t buf_cap;
    bool have_lring;
    tl_ring_map lmap;
    tl_ring_durable_reader lrd;
    /* the heartbeat thread */
    pthread_t hb;
    bool hb_started;
    _Atomic bool hb_stop;
    /* own flow after promotion */
    uint64_t rng;
    uint64_t last_ckpt_seq;
    uint64_t next_due_ns;
    uint64_t last_record_ns;
    /* counters */
    uint64_t applied;
    uint64_t checkpoints;
    uint64_t checkpoint_mismatches;
    uint64_t faults_fired;
    uint64_t diverged_at;
    uint64_t promoted_at;
    uint64_t own_records;
    uint64_t rolls;
    /* --etcd (enginesim_lease.h): it campaigns while following and, on
     * winning, promotes with the put's revision as its fence */
    tl_es_lease *lease;
    uint64_t lease_fence;
    uint64_t next_campaign_ns;
} sb;

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void hex16(const uint8_t id[TL_ID_BYTES], char out[33]) {
    for (unsigned i = 0; i < TL_ID_BYTES; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static void say(const sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const sb *s, const char *fmt, ...) {
    (void)s;
    va_list ap;
    va_start(ap, fmt);
    fputs("tally-enginesim --standby: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- the engine id: <wal>/engine_id, 32 hex digits, made once ---- */

static int load_id(sb *s) {
    char path[600], buf[64];
    snprintf(path, sizeof path, "%s/engine_id", s->o.wal);
    FILE *f = fopen(path, "re");
    if (f != NULL) {
        bool ok = fgets(buf, sizeof buf, f) != NULL && strlen(buf) >= 32 &&
                  tl_admin_parse_id(buf, 32, s->id);
        fclose(f);
        if (!ok) {
            say(s, "%s: not 32 hex digits", path);
            return -1;
        }
        return 0;
    }
    if (getrandom(s->id, sizeof s->id, 0) != (ssize_t)sizeof s->id)
        return -1;
    char hex[33];
    hex16(s->id, hex);
    char tmp[620];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "we");
    if (f == NULL || fprintf(f, "%s\n", hex) != 33 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        if (f != NULL)
            fclose(f);
        say(s, "%s: %s", tmp, strerror(errno));
        return -1;
    }
    fclose(f);
    return rename(tmp, path);
}

/* ---- its own WAL and ring ---- */

static void wal_on_record(void *ctx, const uint8_t *rec, uint32_t len) {
    sb *s = ctx;
    if (s->ring != NULL)
        tl_ring_publish(s->ring, rec, len);
}

static void wal_on_durable(void *ctx, uint64_t seq, uint64_t seg, uint64_t off) {
    sb *s = ctx;
    /* The sync thread; the ring exists before the first append. */
    if (s->ring != NULL)
        tl_ring_set_durable(s->ring, seq, seg, off);
}

static void *hb_main(void *arg) {
    sb *s = arg;
    /* Relaxed: a stop flag that publishes nothing. */
    while (!atomic_load_explicit(&s->hb_stop, memory_order_relaxed)) {
        tl_ring_beat(s->ring, clock_ns(CLOCK_MONOTONIC));
        struct timespec ts = {0, SB_BEAT_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ---- the leader's segments ---- */

/* The leader segment holding seq (the highest first_seq <= seq), or, with
 * newer_than set, whether any segment is newer than that. */
static bool leader_segment(const sb *s, uint64_t seq, uint64_t *first) {
    DIR *d = opendir(s->o.leader_wal);
    if (d == NULL)
        return false;
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t f;
        if (!tl_seg_name_parse(e->d_name, &f) || f > seq)
            continue;
        if (!found || f > *first)
            *first = f;
        found = true;
    }
    closedir(d);
    return found;
}

static bool leader_newer(const sb *s, uint64_t than) {
    DIR *d = opendir(s->o.leader_wal);
    if (d == NULL)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        uint64_t f;
        found = tl_seg_name_parse(e->d_name, &f) && f > than;
    }
    closedir(d);
    return found;
}

static int open_leader_segment(sb *s, uint64_t first) {
    char path[700], name[32];
    tl_seg_name(name, sizeof name, first);
    snprintf(path, sizeof path, "%s/%s", s->o.leader_wal, name);
    s->lfd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->lfd < 0)
        return -1;
    tl_walseg_init(&s->ws, first);
    return 0;
}

static void close_leader_segment(sb *s) {
    if (s->lfd >= 0)
        close(s->lfd);
    s->lfd = -1;
}

static int ensure_buf(sb *s, size_t n) {
    if (n <= s->buf_cap)
        return 0;
    size_t cap = (n + 65535) & ~(size_t)65535;
    uint8_t *b = aligned_alloc(64, cap);
    if (b == NULL)
        return -1;
    free(s->buf);
    s->buf = b;
    s->buf_cap = cap;
    return 0;
}

/* ---- applying the leader's records ---- */

static void stop_following(sb *s, enum sb_state why) {
    s->state = why;
    close_leader_segment(s);
}

/* nondeterministic@SEQ: one more order rests here than at the leader. */
static void perturb(sb *s, const tl_rec_hdr *h) {
    uint32_t sym = sim_symbol_valid(&s->st, h->symbol) ? h->symbol : 1;
    sim_book *b = sim_book_of(&s->st, sym);
    tl_body_order_new o;
    memset(&o, 0, sizeof o);
    o.order_id = (1ull << 60) | h->seq;
    o.account = 999;
    o.price = b->base_price + SIM_LEVELS / 4; /* far from the flow's prices */
    o.qty = 1;
    o.side = TL_SIDE_BUY;
    o.type = TL_ORDER_LIMIT;
    uint8_t rec[128] __attribute__((aligned(8)));
    tl_rec_meta m = {.seq = h->seq,
                     .fence = h->fence,
                     .ts_ns = h->ts_ns,
                     .kind = TL_KIND_ORDER_NEW,
                     .symbol = sym};
    uint32_t len = tl_rec_encode(rec, sizeof rec, &m, &o, sizeof o);
    sim_replay(&s->st, rec, len); /* the books only: the log stays the leader's */
    s->faults_fired++;
    say(s, "fault nondeterministic: its matching left order %" PRIu64 " resting at seq %" PRIu64,
        o.order_id, h->seq);
}

static void mirror_meaning(sb *s, const uint8_t *rec) {
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    const uint8_t *body = rec + TL_REC_HDR_BYTES;
    if (h->kind == TL_KIND_SYMBOL) {
        char name[TL_SYMBOL_NAME_MAX + 1] = {0};
        memcpy(name, body, TL_SYMBOL_NAME_MAX);
        (void)tl_admin_modes_add_symbol(&s->modes, h->symbol, name, strlen(name));
    } else if (h->kind == TL_KIND_MODE_CHANGE) {
        tl_body_mode_change b;
        memcpy(&b, body, sizeof b);
        (void)tl_admin_modes_set(&s->modes, h->symbol, (enum tl_mode)b.mode);
        if (h->symbol == 0)
            s->modes.withdrawals_halted = b.withdrawals_halted != 0;
    }
}

static void promote(sb *s, uint64_t at_seq);

/* One record of the leader's log, in order. */
static void apply(sb *s, uint8_t *rec, uint32_t len) {
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    if (h->seq < s->next_seq)
        return; /* persisted before a restart */
    if (h->seq > s->next_seq) {
        say(s, "the leader's log skips from %" PRIu64 " to %" PRIu64 ": cannot follow", s->next_seq,
            h->seq);
        stop_following(s, SB_STOPPED);
        return;
    }
    if (s->o.promote_seq != 0 && h->seq >= s->o.promote_seq) {
        promote(s, h->seq);
        return;
    }
    const uint8_t *out_rec = rec;
    uint8_t own[TL_REC_HDR_BYTES + sizeof(tl_body_checkpoint)] __attribute__((aligned(8)));
    bool diverged = false;
    if (h->kind == TL_KIND_CHECKPOINT) {
        /* Its own state under the leader's header. */
        tl_body_checkpoint c;
        sim_checkpoint(&s->st, &c);
        tl_rec_meta m = {.parent = h->parent,
                         .seq = h->seq,
                         .fence = h->fence,
                         .ts_ns = h->ts_ns,
                         .kind = h->kind,
                         .symbol = h->symbol};
        uint32_t n = tl_rec_encode(own, sizeof own, &m, &c, sizeof c);
        s->checkpoints++;
        if (n != len || memcmp(own, rec, len) != 0) {
            s->checkpoint_mismatches++;
            diverged = true;
            out_rec = own;
            len = n;
        }
    } else {
        if (s->o.nondet_seq != 0 && h->seq >= s->o.nondet_seq && h->kind == TL_KIND_ORDER_NEW &&
            s->faults_fired == 0)
            perturb(s, h);
        sim_replay(&s->st, rec, len);
        mirror_meaning(s, rec);
    }
    tl_wal_appended a;
    enum tl_wal_err e = tl_wal_append_record(s->w, out_rec, len, &a);
    if (e != TL_WAL_OK) {
        say(s, "cannot persist seq %" PRIu64 ": %s", h->seq, tl_wal_err_name(e));
        stop_following(s, SB_STOPPED);
        return;
    }
    s->seg_first = a.segment_first_seq;
    s->next_seq = h->seq + 1;
    s->applied++;
    if (diverged) {
        s->diverged_at = h->seq;
        say(s,
            "its state hash at CHECKPOINT %" PRIu64 " differs from the leader's: diverged, "
            "following stops",
            h->seq);
        stop_following(s, SB_DIVERGED);
    }
}

/* The leader started a segment at first_seq: so does the standby. */
static void on_leader_header(sb *s, const tl_seg_hdr *hdr) {
    if (hdr->first_seq == s->next_seq && s->seg_first != s->next_seq && s->next_seq > 1) {
        if (tl_wal_roll(s->w) == TL_WAL_OK)
            s->rolls++;
    }
}

/* What the leader made durable bounds what is read of the segment. */
static uint64_t durable_limit(sb *s, uint64_t file_bytes, bool sealed) {
    if (!s->have_lring || sealed)
        return file_bytes; /* a segment is fsynced before the next one exists */
    tl_ring_durable d;
    (void)tl_ring_durable_read(&s->lrd, s->lmap.ctl, clock_ns(CLOCK_MONOTONIC), 1000, &d);
    uint64_t seg = s->ws.name_first_seq;
    uint64_t lim;
    if (d.seq == 0 || d.segment_first_seq < seg)
        lim = TL_SEG_HDR_BYTES; /* its header is durable before any record */
    else if (d.segment_first_seq == seg)
        lim = d.offset;
    else
        lim = file_bytes;
    return lim < file_bytes ? lim : file_bytes;
}

static uint32_t follow(sb *s) {
    if (s->lfd < 0) {
        uint64_t first = 0;
        if (!leader_segment(s, s->next_seq, &first) || open_leader_segment(s, first) != 0)
            return 0;
    }
    /* The facts first, then the read (core/walseg.h). */
    tl_walseg_facts facts;
    memset(&facts, 0, sizeof facts);
    facts.sealed = leader_newer(s, s->ws.name_first_seq);
    struct stat st;
    if (fstat(s->lfd, &st) != 0)
        return 0;
    uint64_t limit = durable_limit(s, (uint64_t)st.st_size, facts.sealed);
    facts.file_bytes = limit;
    uint64_t base = s->ws.off & ~(uint64_t)7;
    if (limit <= base || ensure_buf(s, limit - base) != 0)
        return 0;
    size_t got = 0, want = (size_t)(limit - base);
    while (got < want) {
        ssize_t r = pread(s->lfd, s->buf + got, want - got, (off_t)(base + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    uint32_t work = 0;
    for (uint32_t i = 0; i < SB_BUDGET && s->state == SB_FOLLOWING; i++) {
        tl_walseg_event ev;
        tl_walseg_next(&s->ws, &facts, s->buf, base, got, &ev);
        switch (ev.kind) {
            case TL_WALSEG_HEADER:
                on_leader_header(s, &s->ws.hdr);
                break;
            case TL_WALSEG_RECORD:
                apply(s, ev.rec, ev.len);
                work++;
                break;
            case TL_WALSEG_END:
                if (s->ws.done || facts.sealed)
                    close_leader_segment(s); /* the next one is found by seq */
                return work;
            case TL_WALSEG_CORRUPT:
                say(s, "the leader's segment %" PRIu64 " is corrupt at offset %" PRIu64 " (%s)",
                    s->ws.name_first_seq, ev.offset, tl_reason_name(ev.reason));
                stop_following(s, SB_STOPPED);
                return work;
            default: /* NEED_MORE, TENTATIVE: the rest is not there (or durable) yet */
                return work;
        }
    }
    return work;
}

/* ---- promotion and its own flow ---- */

static uint64_t rnd(sb *s) {
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int own_append(sb *s, uint16_t kind, uint32_t symbol, const void *body, uint32_t len) {
    tl_wal_appended a;
    enum tl_wal_err e = tl_wal_append(s->w, kind, symbol, body, len, clock_ns(CLOCK_REALTIME), &a);
    if (e != TL_WAL_OK) {
        say(s, "append %s: %s", tl_kind_name(kind), tl_wal_err_name(e));
        return -1;
    }
    s->next_seq = a.seq + 1;
    s->own_records++;
    s->last_record_ns = clock_ns(CLOCK_MONOTONIC);
    return 0;
}

static int emit_trade(void *ctx, uint32_t symbol, const tl_body_trade *t) {
    return own_append(ctx, TL_KIND_TRADE, symbol, t, sizeof *t);
}

static int emit_cancel(void *ctx, uint32_t symbol, const tl_body_order_cancel *c) {
    return own_append(ctx, TL_KIND_ORDER_CANCEL, symbol, c, sizeof *c);
}

static void promote(sb *s, uint64_t at_seq) {
    uint64_t fence = s->lease_fence != 0 ? s->lease_fence : tl_wal_fence(s->w) + 1;
    tl_wal_appended a;
    enum tl_wal_err e = tl_wal_leader_change(s->w, fence, s->id, clock_ns(CLOCK_REALTIME), &a);
    if (e != TL_WAL_OK) {
        say(s, "promote: LEADER_CHANGE: %s", tl_wal_err_name(e));
        stop_following(s, SB_STOPPED);
        return;
    }
    if (s->lease_fence == 0)
        s->faults_fired++;
    s->promoted_at = a.seq;
    s->next_seq = a.seq + 1;
    s->last_ckpt_seq = a.seq;
    s->last_record_ns = clock_ns(CLOCK_MONOTONIC);
    s->next_due_ns = s->last_record_ns;
    if (s->lease_fence != 0)
        say(s, "won the lease: LEADER_CHANGE to fence %" PRIu64 " at seq %" PRIu64 ", leading",
            fence, a.seq);
    else
        say(s,
            "fault promote: LEADER_CHANGE to fence %" PRIu64 " at seq %" PRIu64
            " (the leader's record there was not applied), leading from here",
            fence, at_seq);
    stop_following(s, SB_PROMOTED);
}

static uint32_t mode_of(const sb *s, uint32_t sym) {
    uint32_t a = tl_admin_modes_effective(&s->modes, sym);
    uint32_t f = tl_ring_effective_mode(s->ring, sym);
    return a > f ? a : f;
}

/* One order at the due time: the leader's kind of flow on its own books. */
static uint32_t lead(sb *s, uint64_t now) {
    uint64_t hb = (uint64_t)s->o.heartbeat_ms * 1000000ull;
    if (s->o.rate == 0 || now < s->next_due_ns) {
        if (hb != 0 && now - s->last_record_ns >= hb)
            (void)own_append(s, TL_KIND_HEARTBEAT, 0, NULL, 0);
        return 0;
    }
    s->next_due_ns += 1000000000ull / s->o.rate;
    if (s->next_due_ns < now)
        s->next_due_ns = now; /* no catch-up bursts after a stall */
    uint32_t sym = 1 + (uint32_t)(rnd(s) % s->st.nsym);
    if (mode_of(s, sym) >= TL_MODE_CANCEL_ONLY || !sim_has_room(&s->st, sym)) {
        (void)own_append(s, TL_KIND_HEARTBEAT, 0, NULL, 0);
        return 1;
    }
    sim_book *b = sim_book_of(&s->st, sym);
    tl_body_order_new o;
    memset(&o, 0, sizeof o);
    o.order_id = s->st.next_order_id;
    o.account = 1 + rnd(s) % 1000;
    o.side = (rnd(s) & 1) ? TL_SIDE_BUY : TL_SIDE_SELL;
    o.qty = 1 + (int64_t)(rnd(s) % 100);
    o.type = TL_ORDER_LIMIT;
    int64_t off = (int64_t)(rnd(s) % 25);
    o.price = o.side == TL_SIDE_BUY ? b->mid - 20 + off : b->mid + 20 - off;
    if (own_append(s, TL_KIND_ORDER_NEW, sym, &o, sizeof o) != 0)
        return 0;
    sim_emit em = {.ctx = s, .trade = emit_trade, .cancel = emit_cancel};
    (void)sim_new_order(&s->st, &o, sym, true, &em);
    if (s->o.checkpoint_every != 0 && s->next_seq - 1 - s->last_ckpt_seq >= s->o.checkpoint_every) {
        tl_body_checkpoint c;
        sim_checkpoint(&s->st, &c);
        if (own_append(s, TL_KIND_CHECKPOINT, 0, &c, sizeof c) == 0)
            s->last_ckpt_seq = s->next_seq - 1;
    }
    return 1;
}

/* ---- admin ---- */

static int srv_write_mode_change(void *ctx, uint32_t scope, enum tl_mode mode, bool wd,
                                 const uint8_t id[TL_ID_BYTES], uint64_t *applied_seq) {
    sb *s = ctx;
    if (s->state != SB_PROMOTED) {
        /* Its log is the leader's: the mode is kept, no record is written. */
        *applied_seq = 0;
        return 0;
    }
    tl_body_mode_change b;
    memset(&b, 0, sizeof b);
    b.mode = (uint32_t)mode;
    b.withdrawals_halted = wd ? 1u : 0u;
    memcpy(b.command_id, id, TL_ID_BYTES);
    if (own_append(s, TL_KIND_MODE_CHANGE, scope, &b, sizeof b) != 0)
        return -1;
    *applied_seq = s->next_seq - 1;
    return 0;
}

static int srv_cancel_all(void *ctx, uint32_t scope, const uint8_t id[TL_ID_BYTES]) {
    (void)id;
    sb *s = ctx;
    if (s->state != SB_PROMOTED)
        return -1; /* its orders are the leader's */
    uint32_t lo = scope == 0 ? 1 : scope, hi = scope == 0 ? s->st.nsym : scope;
    for (uint32_t sym = lo; sym <= hi && sim_symbol_valid(&s->st, sym); sym++) {
        uint64_t oid;
        while (sim_pick_resting(&s->st, sym, 0, &oid)) {
            tl_body_order_cancel c;
            if (!sim_cancel(&s->st, oid, &c) || emit_cancel(s, sym, &c) != 0)
                return -1;
        }
    }
    return 0;
}

static void srv_on_line(void *ctx, enum tl_admin_cmd cmd, const uint8_t *id, uint64_t arrival) {
    (void)arrival;
    sb *s = ctx;
    s->admin_lines++;
    if (s->nseen < SB_RECEIVED_MAX) {
        sb_seen *e = &s->seen[s->nseen++];
        snprintf(e->cmd, sizeof e->cmd, "%s", tl_admin_cmd_name(cmd));
        e->has_id = id != NULL;
        if (id != NULL)
            memcpy(e->id, id, TL_ID_BYTES);
    }
}

static int open_admin(sb *s) {
    if (s->o.admin_socket == NULL)
        return 0;
    if (tl_admin_key_load(&s->sidecar, s->o.sidecar_key) != TL_ADMIN_OK) {
        say(s, "--sidecar-key %s: cannot load", s->o.sidecar_key);
        return -1;
    }
    bool op = s->o.operator_key != NULL &&
              tl_admin_key_load(&s->operator_key, s->o.operator_key) == TL_ADMIN_OK;
    tl_admin_server_config sc = {
        .socket_path = s->o.admin_socket,
        .sidecar_key = &s->sidecar,
        .operator_key = op ? &s->operator_key : NULL,
        .modes = &s->modes,
        .ops = {.ctx = s,
                .write_mode_change = srv_write_mode_change,
                .cancel_all = srv_cancel_all,
                .on_line = srv_on_line},
    };
    enum tl_admin_err ae;
    s->srv = tl_admin_server_create(&sc, &ae);
    if (s->srv == NULL) {
        say(s, "admin socket %s: %s", s->o.admin_socket, tl_admin_err_name(ae));
        return -1;
    }
    return 0;
}

/* ---- start-up ---- */

/* A restart: its own log rebuilds its books, its modes, its role. */
static int replay_own(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result r) {
    (void)loc;
    (void)r;
    sb *s = ctx;
    if (v->body == NULL)
        return 0;
    const uint8_t *rec = v->body - TL_REC_HDR_BYTES;
    sim_replay(&s->st, rec, v->len);
    mirror_meaning(s, rec);
    if (v->kind == TL_KIND_LEADER_CHANGE) {
        tl_body_leader_change b;
        memcpy(&b, v->body, sizeof b);
        s->state = memcmp(b.leader_id, s->id, TL_ID_BYTES) == 0 ? SB_PROMOTED : SB_FOLLOWING;
    }
    if (v->kind == TL_KIND_CHECKPOINT)
        s->last_ckpt_seq = v->seq;
    return 0;
}

/* A new standby log starts as the leader's did: its first segment's fence
 * and leader. */
static int leader_first_header(sb *s, tl_seg_hdr *out) {
    uint64_t first = 0;
    for (int i = 0; i < 10000 && !sb_stop; i++) {
        if (leader_segment(s, 1, &first))
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (first != 1) {
        say(s, "%s holds no segment starting at seq 1: a new standby needs the whole log",
            s->o.leader_wal);
        return -1;
    }
    char path[700], name[32];
    tl_seg_name(name, sizeof name, 1);
    snprintf(path, sizeof path, "%s/%s", s->o.leader_wal, name);
    for (int i = 0; i < 10000 && !sb_stop; i++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        uint8_t h[TL_SEG_HDR_BYTES] __attribute__((aligned(8)));
        ssize_t n = fd >= 0 ? pread(fd, h, sizeof h, 0) : -1;
        if (fd >= 0)
            close(fd);
        if (n == (ssize_t)sizeof h && tl_seg_hdr_check(h, sizeof h) == TL_SEG_OK) {
            memcpy(out, h, sizeof *out);
            return 0;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    say(s, "%s: no valid header", path);
    return -1;
}

static int open_log(sb *s) {
    if (mkdir(s->o.wal, 0755) != 0 && errno != EEXIST) {
        say(s, "mkdir %s: %s", s->o.wal, strerror(errno));
        return -1;
    }
    if (load_id(s) != 0)
        return -1;
    tl_wal_config wc;
    tl_wal_config_default(&wc);
    wc.dir = s->o.wal;
    wc.segment_bytes = s->o.segment_bytes;
    memcpy(wc.engine_id, s->id, TL_ID_BYTES);
    wc.sync_thread = true;
    bool have_log = false;
    {
        DIR *d = opendir(s->o.wal);
        struct dirent *e;
        uint64_t f;
        while (d != NULL && (e = readdir(d)) != NULL)
            have_log |= tl_seg_name_parse(e->d_name, &f);
        if (d != NULL)
            closedir(d);
    }
    if (!have_log) {
        tl_seg_hdr h;
        if (leader_first_header(s, &h) != 0)
            return -1;
        wc.initial_fence = h.fence;
        memcpy(wc.initial_leader_id, h.leader_id, TL_ID_BYTES);
        if (h.segment_size > wc.segment_bytes)
            wc.segment_bytes = h.segment_size; /* every leader record fits */
    }
    tl_wal_ops ops = {.ctx = s, .on_record = wal_on_record, .on_durable = wal_on_durable};
    tl_wal_recovered rec;
    enum tl_wal_err e = tl_wal_open(&s->w, &wc, &ops, &rec);
    if (e != TL_WAL_OK) {
        say(s, "WAL %s: %s", s->o.wal, tl_wal_err_name(e));
        return -1;
    }
    s->next_seq = rec.last_seq + 1;
    s->seg_first = rec.segment_first_seq;
    if (!rec.new_log) {
        tl_wal_read_opts ro;
        memset(&ro, 0, sizeof ro);
        ro.on_record = replay_own;
        ro.ctx = s;
        tl_wal_summary sum;
        (void)tl_wal_read_dir(s->o.wal, &ro, &sum);
    }
    tl_walseg_durable d;
    tl_wal_durable(s->w, &d);
    tl_ring_durable rd = {
        .seq = d.seq, .segment_first_seq = d.segment_first_seq, .offset = d.offset};
    enum tl_ring_err re = tl_ring_create(s->o.ring, s->o.ring_capacity, s->id, &rd, &s->ring);
    if (re != TL_RING_OK) {
        say(s, "ring %s: %s", s->o.ring, tl_ring_err_name(re));
        return -1;
    }
    tl_ring_set_last_seq(s->ring, d.seq);
    tl_ring_beat(s->ring, clock_ns(CLOCK_MONOTONIC));
    atomic_init(&s->hb_stop, false);
    if (pthread_create(&s->hb, NULL, hb_main, s) != 0)
        return -1;
    s->hb_started = true;
    if (s->o.leader_ring != NULL) {
        enum tl_ring_err me = tl_ring_map_open_wait(&s->lmap, s->o.leader_ring, 10000);
        if (me != TL_RING_OK) {
            say(s, "--leader-ring %s: %s", s->o.leader_ring, tl_ring_err_name(me));
            return -1;
        }
        s->have_lring = true;
    }
    return 0;
}

/* ---- flags ---- */

static void usage(FILE *f) {
    fprintf(f,
            "usage: tally-enginesim --standby --leader-wal DIR --ring NAME --wal DIR [options]\n"
            "\n"
            "A standby engine: applies the leader's log (read from its WAL directory) to its\n"
            "own books, persists it byte for byte in its own WAL, publishes it on its own\n"
            "ring, and writes its own CHECKPOINTs (equal to the leader's while the states\n"
            "agree). Run its own tallyd on --ring and --wal.\n"
            "\n"
            "  --leader-wal DIR          the leader's WAL directory (read only)\n"
            "  --leader-ring NAME        the leader's ring: follow only what it made durable\n"
            "  --ring NAME --wal DIR     its own ring and WAL\n"
            "  --admin-socket PATH --sidecar-key FILE [--operator-key FILE]\n"
            "  --symbols N               as the leader's (default 8)\n"
            "  --orders-per-symbol N     as the leader's (default 4096)\n"
            "  --segment-bytes N         its segments (default 64M; at least the leader's)\n"
            "  --ring-capacity N         (default 64M)\n"
            "  --seconds S               run for S seconds (default: until SIGTERM)\n"
            "  --linger-ms N             accepted, for symmetry with the leader's flags\n"
            "  --rate N --checkpoint-every K --heartbeat-ms N --seed N\n"
            "                            its own flow once promoted (defaults 1000, 1000, 100, 1)\n"
            "  --fault nondeterministic@SEQ   its matching differs at SEQ: its state diverges\n"
            "  --fault promote@SEQ       it promotes itself at SEQ while the leader lives\n"
            "  --stats --quiet --help\n");
}

static bool parse_u64(const char *s, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        return false;
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1024 * 1024, end++;
    if (*end != '\0')
        return false;
    *out = (uint64_t)v * mul;
    return true;
}

static int parse(sb_opts *o, int argc, char **argv) {
    enum {
        O_STANDBY = 256,
        O_LWAL,
        O_LRING,
        O_RING,
        O_WAL,
        O_ADMIN,
        O_SIDECAR,
        O_OPERATOR,
        O_SYMBOLS,
        O_OPS,
        O_SEG,
        O_RINGCAP,
        O_SECONDS,
        O_LINGER,
        O_RATE,
        O_CKPT,
        O_HB,
        O_SEED,
        O_FAULT,
        O_STATS,
        O_QUIET,
        O_HELP
    };
    static const struct option lo[] = {
        {"standby", no_argument, NULL, O_STANDBY},
        {"leader-wal", required_argument, NULL, O_LWAL},
        {"leader-ring", required_argument, NULL, O_LRING},
        {"ring", required_argument, NULL, O_RING},
        {"wal", required_argument, NULL, O_WAL},
        {"admin-socket", required_argument, NULL, O_ADMIN},
        {"sidecar-key", required_argument, NULL, O_SIDECAR},
        {"operator-key", required_argument, NULL, O_OPERATOR},
        {"symbols", required_argument, NULL, O_SYMBOLS},
        {"orders-per-symbol", required_argument, NULL, O_OPS},
        {"segment-bytes", required_argument, NULL, O_SEG},
        {"ring-capacity", required_argument, NULL, O_RINGCAP},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"linger-ms", required_argument, NULL, O_LINGER},
        {"rate", required_argument, NULL, O_RATE},
        {"checkpoint-every", required_argument, NULL, O_CKPT},
        {"heartbeat-ms", required_argument, NULL, O_HB},
        {"seed", required_argument, NULL, O_SEED},
        {"fault", required_argument, NULL, O_FAULT},
        {"stats", no_argument, NULL, O_STATS},
        {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->symbols = 8;
    o->orders_per_symbol = 4096;
    o->segment_bytes = 64ull << 20;
    o->ring_capacity = 64ull << 20;
    o->checkpoint_every = 1000;
    o->rate = 1000;
    o->heartbeat_ms = 100;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        uint64_t v = 0;
        bool ok = true;
        switch (c) {
            case O_STANDBY:
                break;
            case O_LWAL:
                o->leader_wal = optarg;
                break;
            case O_LRING:
                o->leader_ring = optarg;
                break;
            case O_RING:
                o->ring = optarg;
                break;
            case O_WAL:
                o->wal = optarg;
                break;
            case O_ADMIN:
                o->admin_socket = optarg;
                break;
            case O_SIDECAR:
                o->sidecar_key = optarg;
                break;
            case O_OPERATOR:
                o->operator_key = optarg;
                break;
            case O_SYMBOLS:
                ok = parse_u64(optarg, &v) && v >= 1 && v <= 4096;
                o->symbols = (uint32_t)v;
                break;
            case O_OPS:
                ok = parse_u64(optarg, &v) && v >= 1 && v <= (1u << 20);
                o->orders_per_symbol = (uint32_t)v;
                break;
            case O_SEG:
                ok = parse_u64(optarg, &o->segment_bytes);
                break;
            case O_RINGCAP:
                ok = parse_u64(optarg, &o->ring_capacity);
                break;
            case O_SECONDS: {
                char *end = NULL;
                o->seconds = strtod(optarg, &end);
                ok = end != optarg && *end == '\0' && o->seconds >= 0 && o->seconds < 1e9;
                break;
            }
            case O_LINGER:
                ok = parse_u64(optarg, &v) && v <= 3600000;
                o->linger_ms = (uint32_t)v;
                break;
            case O_RATE:
                ok = parse_u64(optarg, &o->rate) && o->rate <= 1000000000ull;
                break;
            case O_CKPT:
                ok = parse_u64(optarg, &o->checkpoint_every);
                break;
            case O_HB:
                ok = parse_u64(optarg, &v) && v <= 60000;
                o->heartbeat_ms = (uint32_t)v;
                break;
            case O_SEED:
                ok = parse_u64(optarg, &o->seed);
                break;
            case O_FAULT: {
                const char *at = strchr(optarg, '@');
                ok = at != NULL && parse_u64(at + 1, &v) && v > 0;
                if (ok && (size_t)(at - optarg) == 16 &&
                    strncmp(optarg, "nondeterministic", 16) == 0)
                    o->nondet_seq = v;
                else if (ok && (size_t)(at - optarg) == 7 && strncmp(optarg, "promote", 7) == 0)
                    o->promote_seq = v;
                else
                    ok = false;
                break;
            }
            case O_STATS:
                o->stats = true;
                break;
            case O_QUIET:
                o->quiet = true;
                break;
            case O_HELP:
                usage(stdout);
                exit(0);
            default:
                usage(stderr);
                return -1;
        }
        if (!ok) {
            fprintf(stderr, "tally-enginesim --standby: bad value for --%s: %s\n",
                    lo[c - O_STANDBY].name, optarg ? optarg : "");
            return -1;
        }
    }
    if (optind != argc || o->leader_wal == NULL || o->ring == NULL || o->wal == NULL) {
        fprintf(stderr, "tally-enginesim --standby: --leader-wal, --ring and --wal are required\n");
        usage(stderr);
        return -1;
    }
    if (o->admin_socket != NULL && o->sidecar_key == NULL) {
        fprintf(stderr, "tally-enginesim --standby: --admin-socket needs --sidecar-key\n");
        return -1;
    }
    return 0;
}

/* ---- stats ---- */

static void print_stats(sb *s) {
    tl_walseg_durable d;
    tl_wal_durable(s->w, &d);
    printf("{\"standby\":true,\"state\":\"%s\",\"records\":%" PRIu64 ",\"seq\":%" PRIu64
           ",\"durable_seq\":%" PRIu64 ",\"fence\":%" PRIu64 ",\"checkpoints\":%" PRIu64
           ",\"checkpoint_mismatches\":%" PRIu64 ",\"diverged_at\":%" PRIu64
           ",\"promoted_at\":%" PRIu64 ",\"own_records\":%" PRIu64 ",\"rolls\":%" PRIu64
           ",\"faults_fired\":%" PRIu64 ",\"open_orders\":%" PRIu64
           ",\"modes\":{\"global\":\"%s\"},\"admin\":{\"lines\":%" PRIu64 ",\"received\":[",
           state_names[s->state], s->applied, s->next_seq - 1, d.seq, tl_wal_fence(s->w),
           s->checkpoints, s->checkpoint_mismatches, s->diverged_at, s->promoted_at, s->own_records,
           s->rolls, s->faults_fired, s->st.open_orders, tl_mode_name(s->modes.global_mode),
           s->admin_lines);
    for (uint32_t i = 0; i < s->nseen; i++) {
        char hex[33] = "";
        if (s->seen[i].has_id)
            hex16(s->seen[i].id, hex);
        printf("%s{\"cmd\":\"%s\",\"id\":\"%s\"}", i ? "," : "", s->seen[i].cmd, hex);
    }
    printf("]}}\n");
    fflush(stdout);
}

/* ---- main ---- */

/* --etcd: while following, try for the leader key every 100 ms (it is
 * free once the leader's lease expired). On winning: read the rest of the
 * leader's durable log (the old leader stopped before its lease could
 * expire), then LEADER_CHANGE{the put's revision} and lead. */
static void campaign(sb *s, uint64_t now) {
    s->next_campaign_ns = now + 100000000ull;
    uint64_t fence = 0;
    if (tl_es_lease_campaign(s->lease, now, &fence) != 1)
        return;
    uint64_t until = clock_ns(CLOCK_MONOTONIC) + 2000000000ull;
    /* Bounded: 2 s, or three quiet passes in a row. */
    for (int quiet = 0;
         quiet < 3 && s->state == SB_FOLLOWING && clock_ns(CLOCK_MONOTONIC) < until;) {
        if (follow(s) == 0) {
            quiet++;
            struct timespec ts = {0, 20000000};
            nanosleep(&ts, NULL);
        } else {
            quiet = 0;
        }
    }
    if (s->state != SB_FOLLOWING)
        return;
    s->lease_fence = fence;
    promote(s, s->next_seq);
}

/* Promoted with a lease: lead only while it holds. */
static bool lease_hold(sb *s, uint64_t now) {
    if (s->lease == NULL)
        return true;
    if (tl_es_lease_hold(s->lease, now))
        return true;
    say(s, "lost the lease: no longer leading");
    s->state = SB_STOPPED;
    return false;
}

int tl_enginesim_standby_main(int argc, char **argv) {
    static sb s_storage; /* large: not on the stack */
    sb *s = &s_storage;
    s->lfd = -1;
    tl_es_lease_opts lease_opts;
    if (tl_es_lease_args(&argc, argv, &lease_opts) != 0 || parse(&s->o, argc, argv) != 0)
        return 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    s->rng = s->o.seed ^ 0x7374616e64627921ull;
    if (sim_state_init(&s->st, s->o.symbols, s->o.orders_per_symbol) != 0 ||
        tl_admin_modes_init(&s->modes, 4096) != TL_ADMIN_OK) {
        say(s, "out of memory");
        return 1;
    }
    int rc = 0;
    if (open_log(s) != 0 || open_admin(s) != 0) {
        rc = 1;
        goto out;
    }
    if (lease_opts.etcd != NULL && (s->lease = tl_es_lease_open(&lease_opts, s->id)) == NULL) {
        rc = 1;
        goto out;
    }
    if (!s->o.quiet) {
        char hex[33];
        hex16(s->id, hex);
        say(s, "engine %s, %s from seq %" PRIu64 ", leader's log %s", hex, state_names[s->state],
            s->next_seq, s->o.leader_wal);
    }
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
    uint64_t run_ns = (uint64_t)(s->o.seconds * 1e9);
    while (!sb_stop) {
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        if (run_ns != 0 && now - t0 >= run_ns)
            break;
        uint32_t work = 0;
        if (s->state == SB_FOLLOWING)
            work += follow(s);
        else if (s->state == SB_PROMOTED && lease_hold(s, now))
            work += lead(s, now);
        if (s->state == SB_FOLLOWING && s->lease != NULL && now >= s->next_campaign_ns)
            campaign(s, now);
        if (s->srv != NULL)
            (void)tl_admin_server_poll(s->srv, clock_ns(CLOCK_REALTIME));
        if (work == 0) {
            tl_ring_flush(s->ring);
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    }
    tl_ring_flush(s->ring);
    if (tl_wal_sync(s->w) != TL_WAL_OK)
        rc = 2;
out:
    if (s->o.stats && s->w != NULL)
        print_stats(s);
    close_leader_segment(s);
    if (s->hb_started) {
        atomic_store_explicit(&s->hb_stop, true, memory_order_relaxed);
        pthread_join(s->hb, NULL);
    }
    tl_admin_server_destroy(s->srv);
    tl_es_lease_close(s->lease);
    if (s->w != NULL && tl_wal_close(s->w) != TL_WAL_OK && rc == 0)
        rc = 2;
    tl_ring_close(s->ring);
    if (s->have_lring)
        tl_ring_map_close(&s->lmap);
    tl_admin_modes_free(&s->modes);
    tl_admin_key_wipe(&s->sidecar);
    tl_admin_key_wipe(&s->operator_key);
    sim_state_free(&s->st);
    free(s->buf);
    return rc;
}
