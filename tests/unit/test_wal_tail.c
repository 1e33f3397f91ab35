/* test_wal_tail.c: the live WAL tailer (io/wal_tail.h) on real files and a
 * real io_uring.
 *
 * - catch-up over multi-segment logs written by io/wal_writer: the event
 *   sequence (segments, records, corruption: seq, checksum, segment, offset,
 *   rule, reason) equals io/wal_reader's view of the same directory, for
 *   buffer sizes from 4 KiB (every record straddles reads) to 1 MiB;
 * - registered buffers, plain reads, a config over 6 MiB and a child whose
 *   memlock limit refuses the registration give identical events;
 * - live follow with a writer thread (sync thread, durable hint through a
 *   seqlock like the ring's), across many segment rollovers, with and
 *   without the hint (statx polling);
 * - torn tails: one that heals, one the durable hint makes WAL_CORRUPT, one
 *   a newer segment makes WAL_CORRUPT, a crash and the writer's recovery
 *   (TENTATIVE, then the rewritten record, never CORRUPT);
 * - a bit flip, a bad len and a field rule in a sealed segment;
 * - segments deleted behind the tailer, a missing next segment, an empty
 *   directory, an unreadable segment, bad configs; start_seq and the
 *   anchor; the saved position never beyond the durable hint.
 */
#include "test_wal_fixture.h"

#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "io/wal_dir.h"
#include "io/wal_reader.h"
#include "io/wal_tail.h"
#include "io/wal_writer.h"

/* ---- events as a test sees them ---- */

typedef struct tev {
    uint8_t type; /* enum tl_wal_ev_type */
    uint8_t rule;
    uint16_t reason;
    uint64_t seg;
    uint64_t off;
    uint64_t seq;
    uint64_t checksum;
    uint64_t seg_index; /* SEGMENT */
    uint32_t len;       /* RECORD */
} tev;

#define TLOG_CAP 200000u
typedef struct tlog {
    tev *e;
    unsigned n;
} tlog;

static tlog *tlog_new(void) {
    tlog *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->e = calloc(TLOG_CAP, sizeof *l->e);
    assert_non_null(l->e);
    return l;
}

static void tlog_free(tlog *l) {
    free(l->e);
    free(l);
}

static void tlog_add(tlog *l, const tev *e) {
    assert_true(l->n < TLOG_CAP);
    l->e[l->n++] = *e;
}

static const char *ev_name(uint8_t type) {
    static const char *const names[] = {"none",    "segment",   "record",
                                        "corrupt", "tentative", "caught_up"};
    return type < 6 ? names[type] : "?";
}

static void tev_print(const char *who, unsigned i, const tev *e) {
    print_message("%s[%u] %s seg=%llu off=%llu seq=%llu ck=%016llx rule=%u reason=%s\n", who, i,
                  ev_name(e->type), (unsigned long long)e->seg, (unsigned long long)e->off,
                  (unsigned long long)e->seq, (unsigned long long)e->checksum, e->rule,
                  tl_reason_name(e->reason));
}

/* Records a tailer event, and checks that a RECORD's bytes are there and
 * whole at the time of the event (its checksum over the view). */
static void record_ev(tlog *l, const tl_wal_ev *ev) {
    tev e;
    memset(&e, 0, sizeof e);
    e.type = ev->type;
    e.seg = ev->loc.segment;
    e.off = ev->loc.offset;
    switch (ev->type) {
        case TL_WAL_EV_SEGMENT:
            assert_non_null(ev->hdr);
            assert_int_equal(ev->name_first_seq, ev->loc.segment);
            assert_int_equal(ev->loc.offset, 0);
            assert_int_equal(tl_seg_hdr_check((const uint8_t *)ev->hdr, TL_SEG_HDR_BYTES),
                             TL_SEG_OK);
            e.seg_index = ev->hdr->segment_index;
            e.seq = ev->hdr->first_seq;
            break;
        case TL_WAL_EV_RECORD: {
            const uint8_t *rec = ev->view.body - TL_REC_HDR_BYTES;
            assert_int_equal(((uintptr_t)rec & 7u), 0);
            assert_true(tl_rec_compute_checksum(rec, ev->view.len) == ev->view.checksum);
            assert_int_equal(tl_rec_hdr_of(rec)->seq, ev->view.seq);
            e.seq = ev->view.seq;
            e.checksum = ev->view.checksum;
            e.len = ev->view.len;
            break;
        }
        case TL_WAL_EV_CORRUPT:
        case TL_WAL_EV_TENTATIVE:
            e.rule = ev->rule;
            e.reason = ev->reason;
            e.seq = ev->seq;
            e.checksum = ev->checksum;
            break;
        case TL_WAL_EV_CAUGHT_UP:
            break;
        default:
            fail_msg("unknown event type %u", ev->type);
    }
    tlog_add(l, &e);
}

/* ---- the durable hint, published like the ring's seqlock (ring.md) ---- */

typedef struct shint {
    _Atomic uint64_t gen;
    _Atomic uint64_t seq;
    _Atomic uint64_t seg;
    _Atomic uint64_t off;
} shint;

static void shint_store(shint *h, uint64_t seq, uint64_t seg, uint64_t off) {
    uint64_t g = atomic_load_explicit(&h->gen, memory_order_relaxed);
    atomic_store_explicit(&h->gen, g + 1, memory_order_relaxed);
    /* release fence: the odd gen is visible before any of the three stores */
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&h->seq, seq, memory_order_relaxed);
    atomic_store_explicit(&h->seg, seg, memory_order_relaxed);
    atomic_store_explicit(&h->off, off, memory_order_relaxed);
    /* release: the three stores are visible before the even gen */
    atomic_store_explicit(&h->gen, g + 2, memory_order_release);
}

static bool shint_load(shint *h, uint64_t *seq, uint64_t *seg, uint64_t *off) {
    /* acquire: the loads below see the stores before g1's even store */
    uint64_t g1 = atomic_load_explicit(&h->gen, memory_order_acquire);
    *seq = atomic_load_explicit(&h->seq, memory_order_relaxed);
    *seg = atomic_load_explicit(&h->seg, memory_order_relaxed);
    *off = atomic_load_explicit(&h->off, memory_order_relaxed);
    /* acquire fence: the three loads complete before g2 is read */
    atomic_thread_fence(memory_order_acquire);
    uint64_t g2 = atomic_load_explicit(&h->gen, memory_order_relaxed);
    return g1 == g2 && (g1 & 1u) == 0;
}

/* ---- driving the tailer ---- */

typedef bool (*until_fn)(const tlog *l, void *arg);

static void idle(void) {
    struct timespec ts = {0, 20000}; /* backoff idling: 20 us */
    nanosleep(&ts, NULL);
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Polls until `until` holds (checked after each event and each idle poll),
 * giving the hint from h (NULL: no hint) every step. Returns whether it held
 * before timeout_ms. */
static bool drive(tl_wal_tail *t, shint *h, tlog *l, until_fn until, void *arg,
                  uint64_t timeout_ms) {
    uint64_t end = now_ms() + timeout_ms;
    for (;;) {
        uint64_t seq = 0, seg = 0, off = 0;
        bool ok = h != NULL && shint_load(h, &seq, &seg, &off);
        tl_wal_tail_durable(t, ok, seq, seg, off);
        tl_wal_ev ev;
        if (tl_wal_tail_poll(t, &ev)) {
            record_ev(l, &ev);
        } else {
            if (until != NULL && until(l, arg))
                return true;
            if (now_ms() > end)
                return false;
            idle();
            continue;
        }
        if (until != NULL && until(l, arg))
            return true;
        if (now_ms() > end)
            return false;
    }
}

/* Polls for `ms` and returns how many events came. */
static unsigned drive_for(tl_wal_tail *t, shint *h, tlog *l, uint64_t ms) {
    unsigned before = l->n;
    drive(t, h, l, NULL, NULL, ms);
    return l->n - before;
}

static bool until_caught_up(const tlog *l, void *arg) {
    (void)arg;
    return l->n > 0 && l->e[l->n - 1].type == TL_WAL_EV_CAUGHT_UP;
}

static bool until_type(const tlog *l, void *arg) {
    return l->n > 0 && l->e[l->n - 1].type == *(const uint8_t *)arg;
}

/* CAUGHT_UP after a record with seq >= *arg. */
typedef struct seen_seq {
    uint64_t seq;
    bool seen;
    unsigned scanned;
} seen_seq;

static bool until_caught_up_after(const tlog *l, void *arg) {
    seen_seq *s = arg;
    for (; s->scanned < l->n; s->scanned++) {
        const tev *e = &l->e[s->scanned];
        if (e->type == TL_WAL_EV_RECORD && e->seq >= s->seq)
            s->seen = true;
        if (e->type == TL_WAL_EV_CAUGHT_UP && s->seen)
            return true;
    }
    return false;
}

/* With a hint, statx polls every hint_stat_ns (0: the default). A huge
 * value leaves the hint alone to drive the re-reads. */
#define HINT_ONLY_NS (3600ull * 1000000000ull)

static tl_wal_tail *open_tail_ex(const char *dir, uint32_t read_ahead, uint32_t buf_bytes,
                                 uint64_t hint_stat_ns) {
    tl_wal_tail_cfg c;
    tl_wal_tail_cfg_default(&c);
    if (hint_stat_ns != 0)
        c.hint_stat_interval_ns = hint_stat_ns;
    c.dir = dir;
    c.read_ahead = read_ahead;
    c.buf_bytes = buf_bytes;
    c.tail_bytes = buf_bytes < c.tail_bytes ? buf_bytes : c.tail_bytes;
    c.rescan_interval_ns = 5000000; /* 5 ms: tests wait less */
    tl_wal_tail *t;
    tl_wal_ioerr err;
    assert_int_equal(tl_wal_tail_open(&t, &c, &err), TL_WAL_OK);
    return t;
}

static tl_wal_tail *open_tail(const char *dir, uint32_t read_ahead, uint32_t buf_bytes) {
    return open_tail_ex(dir, read_ahead, buf_bytes, 0);
}

static tl_wal_tail_stats stats_of(const tl_wal_tail *t) {
    tl_wal_tail_stats s;
    tl_wal_tail_get_stats(t, &s);
    return s;
}

/* Reads `dir` to CAUGHT_UP (no hint) and returns the events. */
static tlog *tail_all(const char *dir, uint32_t read_ahead, uint32_t buf_bytes, bool no_register,
                      tl_wal_tail_stats *st) {
    tl_wal_tail_cfg c;
    tl_wal_tail_cfg_default(&c);
    c.dir = dir;
    c.read_ahead = read_ahead;
    c.buf_bytes = buf_bytes;
    c.tail_bytes = buf_bytes < c.tail_bytes ? buf_bytes : c.tail_bytes;
    c.no_register = no_register;
    c.rescan_interval_ns = 5000000;
    tl_wal_tail *t;
    assert_int_equal(tl_wal_tail_open(&t, &c, NULL), TL_WAL_OK);
    tlog *l = tlog_new();
    assert_true(drive(t, NULL, l, until_caught_up, NULL, 20000));
    if (st != NULL)
        tl_wal_tail_get_stats(t, st);
    tl_wal_tail_close(t);
    return l;
}

/* ---- the offline reader's view, as events ---- */

typedef struct rview {
    tlog *l;
    fx_findings fs;
    tl_wal_summary sum;
} rview;

static void rv_segment(void *ctx, const tl_seg_hdr *h, uint64_t name) {
    rview *r = ctx;
    tev e = {
        .type = TL_WAL_EV_SEGMENT, .seg = name, .seq = h->first_seq, .seg_index = h->segment_index};
    tlog_add(r->l, &e);
}

static int rv_record(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result res) {
    (void)res;
    rview *r = ctx;
    tev e = {.type = TL_WAL_EV_RECORD,
             .seg = loc->segment,
             .off = loc->offset,
             .seq = v->seq,
             .checksum = v->checksum,
             .len = v->len};
    tlog_add(r->l, &e);
    return 0;
}

static void rv_finding(void *ctx, const tl_finding *f) {
    rview *r = ctx;
    fx_collect(&r->fs, f);
    if (f->check != TL_CHECK_WAL_CORRUPT)
        return; /* rules 4-6 are the loop's, not the tailer's */
    tev e = {.type = TL_WAL_EV_CORRUPT,
             .rule = f->rule,
             .reason = f->reason,
             .seg = f->segment,
             .off = f->offset,
             .seq = f->seq != 0 ? f->seq : f->seq2,
             .checksum = f->checksum};
    tlog_add(r->l, &e);
}

static rview *reader_view(const char *dir, const tl_walseg_durable *durable) {
    rview *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->l = tlog_new();
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.sink = (tl_sink){rv_finding, r};
    o.on_record = rv_record;
    o.on_segment = rv_segment;
    o.ctx = r;
    if (durable != NULL)
        o.durable = *durable;
    assert_int_equal(tl_wal_read_dir(dir, &o, &r->sum), TL_WAL_OK);
    return r;
}

static void rview_free(rview *r) {
    tlog_free(r->l);
    free(r);
}

/* The tailer's events without TENTATIVE and CAUGHT_UP equal the reader's. */
static void expect_same(const tlog *tail, const tlog *want) {
    unsigned j = 0;
    for (unsigned i = 0; i < tail->n; i++) {
        const tev *a = &tail->e[i];
        if (a->type == TL_WAL_EV_TENTATIVE || a->type == TL_WAL_EV_CAUGHT_UP)
            continue;
        if (j >= want->n) {
            tev_print("tail", i, a);
            fail_msg("tailer has more events than the reader (%u)", want->n);
        }
        const tev *b = &want->e[j];
        bool same = a->type == b->type && a->seg == b->seg && a->off == b->off &&
                    a->seq == b->seq && a->checksum == b->checksum;
        if (a->type == TL_WAL_EV_SEGMENT)
            same = same && a->seg_index == b->seg_index;
        if (a->type == TL_WAL_EV_RECORD)
            same = same && a->len == b->len;
        if (a->type == TL_WAL_EV_CORRUPT)
            same = same && a->rule == b->rule && a->reason == b->reason;
        if (!same) {
            tev_print("tail", i, a);
            tev_print("reader", j, b);
            fail_msg("event %u differs", j);
        }
        j++;
    }
    if (j != want->n) {
        tev_print("reader", j, &want->e[j]);
        fail_msg("tailer has %u events, the reader %u", j, want->n);
    }
}

/* Two tailer runs gave the same events (all of them). */
static void expect_identical(const tlog *a, const tlog *b) {
    assert_int_equal(a->n, b->n);
    for (unsigned i = 0; i < a->n; i++) {
        if (memcmp(&a->e[i], &b->e[i], sizeof a->e[i]) != 0) {
            tev_print("a", i, &a->e[i]);
            tev_print("b", i, &b->e[i]);
            fail_msg("event %u differs", i);
        }
    }
}

static unsigned count_type(const tlog *l, uint8_t type) {
    unsigned n = 0;
    for (unsigned i = 0; i < l->n; i++)
        n += l->e[i].type == type;
    return n;
}

/* ---- logs written by io/wal_writer ---- */

typedef struct weng {
    shint *hint;
    /* on_record: checksum by seq */
    uint64_t *ck;
    uint64_t ck_cap;
    uint64_t last_seq;
} weng;

static uint32_t weng_symbols(void *ctx, tl_wal_opener_symbol *out, uint32_t cap) {
    (void)ctx;
    assert_true(cap >= 2);
    memset(out, 0, 2 * sizeof *out);
    out[0].symbol = 1;
    memcpy(out[0].name, "BTCUSDT", 7);
    out[1].symbol = 2;
    memcpy(out[1].name, "ETHUSDT", 7);
    return 2;
}

static void weng_record(void *ctx, const uint8_t *rec, uint32_t len) {
    (void)len;
    weng *e = ctx;
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    if (e->ck != NULL && h->seq < e->ck_cap)
        e->ck[h->seq] = h->checksum;
    e->last_seq = h->seq;
}

static void weng_durable(void *ctx, uint64_t seq, uint64_t seg, uint64_t off) {
    weng *e = ctx;
    if (e->hint != NULL)
        shint_store(e->hint, seq, seg, off);
}

static tl_wal *open_writer(const char *dir, weng *e, uint64_t segment_bytes, bool thread,
                           tl_wal_recovered *rec) {
    tl_wal_config c;
    tl_wal_config_default(&c);
    c.dir = dir;
    c.segment_bytes = segment_bytes;
    c.staging_bytes = 1u << 20;
    c.group_max_records = 16;
    c.group_max_delay_ns = 100000;
    c.sync_thread = thread;
    c.initial_fence = 1;
    memcpy(c.engine_id, fx_engine, TL_ID_BYTES);
    tl_wal_ops ops = {
        .ctx = e, .symbols = weng_symbols, .on_record = weng_record, .on_durable = weng_durable};
    tl_wal *w;
    tl_wal_recovered r;
    assert_int_equal(tl_wal_open(&w, &c, &ops, rec != NULL ? rec : &r), TL_WAL_OK);
    return w;
}

/* A small deterministic generator. */
static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static uint8_t big_body[TL_REC_BODY_MAX];

/* Appends one ORDER_NEW whose body is body_len bytes (bytes past the v1 body
 * are ignored by readers, so they carry a pattern). */
static tl_wal_appended append_sized(tl_wal *w, uint64_t id, uint32_t body_len) {
    tl_body_order_new b = fx_order(id);
    memcpy(big_body, &b, sizeof b);
    for (uint32_t j = sizeof b; j < body_len; j++)
        big_body[j] = (uint8_t)(id * 7u + j);
    tl_wal_appended a;
    assert_int_equal(tl_wal_append(w, TL_KIND_ORDER_NEW, 1, big_body, body_len, 1000 + id, &a),
                     TL_WAL_OK);
    return a;
}

/* A closed log of n records with bodies of 40..max_body bytes. */
static void write_log(const char *dir, unsigned n, uint64_t segment_bytes, uint32_t max_body,
                      uint64_t seed) {
    weng e;
    memset(&e, 0, sizeof e);
    tl_wal *w = open_writer(dir, &e, segment_bytes, false, NULL);
    for (unsigned i = 0; i < n; i++) {
        uint32_t body = 40u + (uint32_t)(lcg(&seed) % (max_body - 39u));
        if (i % 97 == 5)
            body = max_body; /* the largest, now and then */
        append_sized(w, i, body);
    }
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
}

static unsigned segment_count(const char *dir) {
    tl_wal_dir d;
    assert_int_equal(tl_wal_dir_init(&d, 4096), TL_WAL_OK);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    assert_int_equal(tl_wal_dir_scan(&d, fd), TL_WAL_OK);
    unsigned n = d.count;
    close(fd);
    tl_wal_dir_free(&d);
    return n;
}

static uint64_t nth_segment(const char *dir, unsigned i) {
    tl_wal_dir d;
    assert_int_equal(tl_wal_dir_init(&d, 4096), TL_WAL_OK);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    assert_int_equal(tl_wal_dir_scan(&d, fd), TL_WAL_OK);
    assert_true(i < d.count);
    uint64_t s = d.first_seqs[i];
    close(fd);
    tl_wal_dir_free(&d);
    return s;
}

static void seg_path(char *out, size_t cap, const char *dir, uint64_t first_seq) {
    char name[TL_SEG_NAME_BYTES + 1];
    tl_seg_name(name, sizeof name, first_seq);
    size_t n = strlen(dir);
    assert_true(n + 1 + strlen(name) < cap);
    memcpy(out, dir, n);
    out[n] = '/';
    memcpy(out + n + 1, name, strlen(name) + 1);
}

static void pwrite_at(const char *path, const void *buf, size_t n, uint64_t off) {
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
    close(fd);
}

static void pread_at(const char *path, void *buf, size_t n, uint64_t off) {
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, n, (off_t)off), (ssize_t)n);
    close(fd);
}

/* ---- catch-up ---- */

static void catch_up_case(const char *dir, uint32_t read_ahead, uint32_t buf_bytes,
                          bool expect_carry) {
    rview *r = reader_view(dir, NULL);
    assert_int_equal(r->fs.n, 0);
    tl_wal_tail_stats st;
    tlog *l = tail_all(dir, read_ahead, buf_bytes, false, &st);
    expect_same(l, r->l);
    /* Ends with exactly one CAUGHT_UP, and nothing torn in a clean log. */
    assert_int_equal(l->e[l->n - 1].type, TL_WAL_EV_CAUGHT_UP);
    assert_int_equal(count_type(l, TL_WAL_EV_CAUGHT_UP), 1);
    assert_int_equal(count_type(l, TL_WAL_EV_TENTATIVE), 0);
    assert_int_equal(st.records_total, r->sum.records_total);
    assert_int_equal(st.segments_total, r->sum.segments_read);
    assert_int_equal(st.read_seq, r->sum.last_seq);
    assert_int_equal(st.state, TL_WAL_TAIL_ST_FOLLOWING);
    assert_true(st.anchor_verified);
    if (expect_carry)
        assert_true(st.carried_total > 0);
    assert_int_equal(st.reads_in_flight, 0);
    assert_int_equal(st.io_errors_total, 0);
    tlog_free(l);
    rview_free(r);
}

static void test_catch_up_matches_reader(void **state) {
    (void)state;
    char *dir = tu_tmpdir("tail-catchup");
    write_log(dir, 1500, 16384, 3000, 42);
    assert_true(segment_count(dir) > 40);
    catch_up_case(dir, 1, 4096, true);
    catch_up_case(dir, 2, 8192, true);
    /* Reads larger than a segment: nothing straddles. */
    catch_up_case(dir, 4, 64u << 10, false);
    catch_up_case(dir, 4, 1u << 20, false);
    catch_up_case(dir, 8, 1u << 20, false); /* 8 MiB: not registered */
    tu_rm_rf(dir);
    free(dir);
}

/* Records up to 64 KiB: each spans many 4 KiB reads. */
static void test_catch_up_large_records(void **state) {
    (void)state;
    char *dir = tu_tmpdir("tail-large");
    write_log(dir, 120, 256u << 10, TL_REC_BODY_MAX, 7);
    assert_true(segment_count(dir) > 5);
    catch_up_case(dir, 1, 4096, true);
    catch_up_case(dir, 3, 12288, true);
    catch_up_case(dir, 16, 64u << 10, true);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- registered buffers and the fallback ---- */

/* Drops CAP_IPC_LOCK from the effective set, so the memlock limit applies to
 * root too. */
static int drop_ipc_lock(void) {
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0)
        return -1;
    d[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
    d[CAP_IPC_LOCK / 32].permitted &= ~(1u << (CAP_IPC_LOCK % 32));
    return (int)syscall(SYS_capset, &h, d);
}

static void test_registered_vs_plain(void **state) {
    (void)state;
    char *dir = tu_tmpdir("tail-reg");
    write_log(dir, 600, 16384, 2000, 3);
    tl_wal_tail_stats s_reg, s_plain, s_big;
    tlog *reg = tail_all(dir, 4, 64u << 10, false, &s_reg);
    tlog *plain = tail_all(dir, 4, 64u << 10, true, &s_plain);
    tlog *big = tail_all(dir, 7, 1u << 20, false, &s_big);
    assert_true(s_reg.registered);
    assert_int_equal(s_reg.register_errno, 0);
    assert_false(s_plain.registered);
    assert_int_equal(s_plain.register_errno, 0); /* disabled, not refused */
    assert_false(s_big.registered);
    assert_int_equal(s_big.register_errno, E2BIG);
    expect_identical(reg, plain);
    /* Other read sizes: other TENTATIVE/CAUGHT_UP places cannot differ in a
     * clean log, so the whole sequences match too. */
    expect_identical(reg, big);

    /* A child whose memlock limit refuses the registration. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int code = 0;
        struct rlimit rl = {64u << 10, 64u << 10};
        if (drop_ipc_lock() != 0 || setrlimit(RLIMIT_MEMLOCK, &rl) != 0)
            _exit(10);
        tl_wal_tail_cfg c;
        tl_wal_tail_cfg_default(&c);
        c.dir = dir;
        c.read_ahead = 4;
        c.buf_bytes = 64u << 10;
        tl_wal_tail *t;
        if (tl_wal_tail_open(&t, &c, NULL) != TL_WAL_OK)
            _exit(11);
        tl_wal_tail_stats st;
        tl_wal_tail_get_stats(t, &st);
        if (st.registered)
            code = 12;
        else if (st.register_errno != ENOMEM && st.register_errno != EPERM)
            code = 13;
        unsigned i = 0;
        uint64_t end = now_ms() + 20000;
        while (code == 0 && now_ms() < end) {
            tl_wal_ev ev;
            if (!tl_wal_tail_poll(t, &ev)) {
                idle();
                continue;
            }
            if (i >= reg->n) {
                code = 14;
                break;
            }
            const tev *w = &reg->e[i++];
            uint64_t seq = ev.type == TL_WAL_EV_RECORD    ? ev.view.seq
                           : ev.type == TL_WAL_EV_SEGMENT ? ev.hdr->first_seq
                                                          : ev.seq;
            if (ev.type != w->type || ev.loc.segment != w->seg || ev.loc.offset != w->off ||
                seq != w->seq)
                code = 15;
            if (ev.type == TL_WAL_EV_CAUGHT_UP)
                break;
        }
        if (code == 0 && i != reg->n)
            code = 16;
        tl_wal_tail_close(t);
        _exit(code);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    tlog_free(reg);
    tlog_free(plain);
    tlog_free(big);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- live follow ---- */

typedef struct live {
    const char *dir;
    shint *hint;
    weng eng;
    unsigned n;
    uint64_t seed;
    _Atomic bool done;
    uint64_t last_ck;
} live;

static void *live_writer(void *arg) {
    live *lv = arg;
    tl_wal *w = open_writer(lv->dir, &lv->eng, 16384, true, NULL);
    uint64_t seed = lv->seed;
    for (unsigned i = 0; i < lv->n; i++) {
        uint32_t body = 40u + (uint32_t)(lcg(&seed) % 2500u);
        tl_wal_appended a = append_sized(w, i, body);
        lv->last_ck = a.checksum;
        if (i % 4 == 0) {
            struct timespec ts = {0, 50000}; /* a steady rate: ~4 records / 50 us */
            nanosleep(&ts, NULL);
        }
    }
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    atomic_store_explicit(&lv->done, true, memory_order_release);
    return NULL;
}

static void live_follow(bool with_hint) {
    char *dir = tu_tmpdir(with_hint ? "tail-live" : "tail-live-nohint");
    shint hint;
    memset(&hint, 0, sizeof hint);
    live lv;
    memset(&lv, 0, sizeof lv);
    lv.dir = dir;
    lv.hint = &hint;
    lv.eng.hint = &hint;
    lv.n = 1500;
    lv.seed = with_hint ? 11 : 12;
    lv.eng.ck_cap = 4u * lv.n; /* records and every segment's openers */
    lv.eng.ck = calloc(lv.eng.ck_cap, sizeof *lv.eng.ck);
    assert_non_null(lv.eng.ck);
    /* The writer creates the log: start it, wait for the first segment. */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, live_writer, &lv), 0);
    tl_wal_tail_cfg c;
    tl_wal_tail_cfg_default(&c);
    c.dir = dir;
    c.read_ahead = 2;
    c.buf_bytes = 8192;
    c.tail_bytes = 4096;
    c.rescan_interval_ns = 5000000;
    if (with_hint)
        c.hint_stat_interval_ns = HINT_ONLY_NS; /* the hint alone drives it */
    tl_wal_tail *t;
    assert_int_equal(tl_wal_tail_open(&t, &c, NULL), TL_WAL_OK);
    tlog *l = tlog_new();
    /* Follow while the writer writes; then until everything was read. */
    uint64_t last = lv.n; /* append ids 0..n-1 after the 3 openers of segment 1 */
    uint64_t end = now_ms() + 60000;
    while (!atomic_load_explicit(&lv.done, memory_order_acquire) && now_ms() < end)
        drive(t, with_hint ? &hint : NULL, l, NULL, NULL, 5);
    assert_true(atomic_load_explicit(&lv.done, memory_order_acquire));
    assert_int_equal(pthread_join(th, NULL), 0);
    last = lv.eng.last_seq;
    seen_seq ss = {.seq = last};
    assert_true(drive(t, with_hint ? &hint : NULL, l, until_caught_up_after, &ss, 20000));
    tl_wal_tail_stats st = stats_of(t);

    /* Every seq once, in order, with the writer's checksum; never CORRUPT. */
    uint64_t next = 1;
    for (unsigned i = 0; i < l->n; i++) {
        const tev *e = &l->e[i];
        if (e->type == TL_WAL_EV_CORRUPT)
            tev_print("tail", i, e);
        assert_int_not_equal(e->type, TL_WAL_EV_CORRUPT);
        if (e->type != TL_WAL_EV_RECORD)
            continue;
        assert_int_equal(e->seq, next);
        assert_true(e->seq < lv.eng.ck_cap);
        assert_true(e->checksum == lv.eng.ck[e->seq]);
        next++;
    }
    assert_int_equal(next, last + 1);
    assert_int_equal(l->e[l->n - 1].type, TL_WAL_EV_CAUGHT_UP);
    /* The same as the offline reader of the finished log (locations too). */
    rview *r = reader_view(dir, NULL);
    assert_int_equal(r->fs.n, 0);
    expect_same(l, r->l);
    unsigned segs = segment_count(dir);
    assert_true(segs >= 20);
    assert_int_equal(st.segments_total, segs);
    assert_true(st.carried_total > 0); /* records straddled 8 KiB reads */
    assert_int_equal(st.corrupt_total, 0);
    print_message("live %s: %u segments, %llu records, %llu reads, %llu carried, %llu rereads, "
                  "%llu statx, %llu probes, %llu scans, %llu tentative\n",
                  with_hint ? "hint" : "statx", segs, (unsigned long long)st.records_total,
                  (unsigned long long)st.reads_total, (unsigned long long)st.carried_total,
                  (unsigned long long)st.rereads_total, (unsigned long long)st.statx_total,
                  (unsigned long long)st.probes_total, (unsigned long long)st.dir_scans_total,
                  (unsigned long long)st.tentative_total);
    if (with_hint) {
        assert_true(st.hint_mode);
        /* one per open, and a size refresh before a header was read: no polling */
        assert_true(st.statx_total < 2 * st.segments_opened);
        tl_wal_tail_pos p = tl_wal_tail_position(t);
        uint64_t hseq, hseg, hoff;
        assert_true(shint_load(&hint, &hseq, &hseg, &hoff));
        assert_int_equal(p.seq, last); /* all durable after close */
        assert_int_equal(hseq, last);
        assert_int_equal(p.segment_first_seq, hseg);
    } else {
        assert_false(st.hint_mode);
        assert_true(st.statx_total > 10);
        assert_true(st.probes_total > 0);
        tl_wal_tail_pos p = tl_wal_tail_position(t);
        assert_int_equal(p.seq, 0); /* never beyond a durable hint it has not seen */
    }
    rview_free(r);
    tl_wal_tail_close(t);
    tlog_free(l);
    free(lv.eng.ck);
    tu_rm_rf(dir);
    free(dir);
}

static void test_live_follow_hint(void **state) {
    (void)state;
    live_follow(true);
}

static void test_live_follow_statx(void **state) {
    (void)state;
    live_follow(false);
}

/* ---- torn tails (hand-built segments) ---- */

/* Segment 1 (index 0) with records 1..5 and record 6 built aside; the file
 * holds the first `torn_bytes` bytes of record 6. */
typedef struct torn {
    char *dir;
    char path[512];
    fx_seg s;
    fx_chain ch;
    uint64_t off6;
    uint32_t len6;
    _Alignas(8) uint8_t rec6[256];
    uint64_t ck5;
} torn;

static void torn_build(torn *tn, const char *tag, uint32_t torn_bytes) {
    tn->dir = tu_tmpdir(tag);
    fx_seg_init(&tn->s, 16384, 0, 1, 0, 1, NULL);
    tn->ch = (fx_chain){.seq = 1, .parent = 0, .fence = 1};
    for (int i = 0; i < 5; i++)
        fx_order_new(&tn->s, &tn->ch);
    tn->ck5 = tn->ch.parent;
    tn->off6 = tn->s.off;
    uint8_t *r6 = fx_order_new(&tn->s, &tn->ch);
    tn->len6 = tl_rec_hdr_of(r6)->len;
    memcpy(tn->rec6, r6, tn->len6);
    memset(r6 + torn_bytes, 0, tn->len6 - torn_bytes);
    fx_seg_write(tn->dir, &tn->s, NULL);
    seg_path(tn->path, sizeof tn->path, tn->dir, 1);
}

static void torn_free(torn *tn) {
    fx_seg_free(&tn->s);
    tu_rm_rf(tn->dir);
    free(tn->dir);
}

/* Drives to the first TENTATIVE, then the CAUGHT_UP after it, and checks the
 * events: SEGMENT, records 1..5, TENTATIVE at record 6. */
static void torn_expect_tentative(tl_wal_tail *t, shint *h, tlog *l, const torn *tn,
                                  uint16_t reason) {
    assert_true(drive(t, h, l, until_caught_up, NULL, 5000));
    assert_int_equal(l->n, 8);
    assert_int_equal(l->e[0].type, TL_WAL_EV_SEGMENT);
    for (unsigned i = 1; i <= 5; i++) {
        assert_int_equal(l->e[i].type, TL_WAL_EV_RECORD);
        assert_int_equal(l->e[i].seq, i);
    }
    const tev *e = &l->e[6];
    assert_int_equal(e->type, TL_WAL_EV_TENTATIVE);
    assert_int_equal(e->seg, 1);
    assert_int_equal(e->off, tn->off6);
    assert_int_equal(e->seq, 6);
    assert_string_equal(tl_reason_name(e->reason), tl_reason_name(reason));
    assert_int_equal(l->e[7].type, TL_WAL_EV_CAUGHT_UP);
    assert_int_equal(stats_of(t).state, TL_WAL_TAIL_ST_FOLLOWING);
}

static void test_torn_tail_heals(void **state) {
    (void)state;
    torn tn;
    torn_build(&tn, "tail-heal", 50);
    shint h;
    memset(&h, 0, sizeof h);
    shint_store(&h, 5, 1, tn.off6);
    tl_wal_tail *t = open_tail_ex(tn.dir, 2, 8192, HINT_ONLY_NS);
    tlog *l = tlog_new();
    torn_expect_tentative(t, &h, l, &tn, TL_REC_ERR_CHECKSUM);
    /* Nothing changes: at most the same TENTATIVE again (the loop times it). */
    unsigned before = l->n;
    drive_for(t, &h, l, 30);
    for (unsigned i = before; i < l->n; i++) {
        assert_int_equal(l->e[i].type, TL_WAL_EV_TENTATIVE);
        assert_int_equal(l->e[i].off, tn.off6);
    }
    before = l->n;
    /* The writer completes the record and makes it durable. */
    pwrite_at(tn.path, tn.rec6, tn.len6, tn.off6);
    shint_store(&h, 6, 1, tn.off6 + tn.len6);
    seen_seq next_cu = {.seen = true, .scanned = l->n}; /* the next CAUGHT_UP */
    assert_true(drive(t, &h, l, until_caught_up_after, &next_cu, 5000));
    while (l->e[before].type == TL_WAL_EV_TENTATIVE)
        before++; /* read just before the hint moved */
    assert_int_equal(l->n, before + 2);
    assert_int_equal(l->e[before].type, TL_WAL_EV_RECORD);
    assert_int_equal(l->e[before].seq, 6);
    assert_int_equal(l->e[before].off, tn.off6);
    assert_true(l->e[before].checksum == tl_rec_hdr_of(tn.rec6)->checksum);
    assert_int_equal(count_type(l, TL_WAL_EV_CORRUPT), 0);
    tl_wal_tail_pos p = tl_wal_tail_position(t);
    assert_int_equal(p.seq, 6);
    assert_int_equal(p.segment_first_seq, 1);
    tl_wal_tail_close(t);
    tlog_free(l);
    torn_free(&tn);
}

/* Without a hint the statx fallback sees the completion too. */
static void test_torn_tail_heals_statx(void **state) {
    (void)state;
    torn tn;
    torn_build(&tn, "tail-heal-statx", 50);
    tl_wal_tail *t = open_tail(tn.dir, 2, 8192);
    tlog *l = tlog_new();
    torn_expect_tentative(t, NULL, l, &tn, TL_REC_ERR_CHECKSUM);
    pwrite_at(tn.path, tn.rec6, tn.len6, tn.off6);
    seen_seq ss = {.seq = 6, .scanned = l->n};
    assert_true(drive(t, NULL, l, until_caught_up_after, &ss, 5000));
    assert_int_equal(count_type(l, TL_WAL_EV_RECORD), 6);
    assert_int_equal(count_type(l, TL_WAL_EV_CORRUPT), 0);
    assert_true(stats_of(t).statx_total > 0);
    tl_wal_tail_close(t);
    tlog_free(l);
    torn_free(&tn);
}

/* The hint stops coming (the ring went away): after hint_timeout_ns the tail
 * is followed by statx polling, and the completed record is read although
 * no hint ever covered it (statx polling with a hint is off here). */
static void test_hint_stops_then_statx(void **state) {
    (void)state;
    torn tn;
    torn_build(&tn, "tail-hint-stops", 50);
    shint h;
    memset(&h, 0, sizeof h);
    shint_store(&h, 5, 1, tn.off6);
    tl_wal_tail_cfg c;
    tl_wal_tail_cfg_default(&c);
    c.dir = tn.dir;
    c.read_ahead = 2;
    c.buf_bytes = 8192;
    c.tail_bytes = 8192;
    c.hint_stat_interval_ns = HINT_ONLY_NS;
    c.hint_timeout_ns = 20000000; /* 20 ms */
    tl_wal_tail *t;
    assert_int_equal(tl_wal_tail_open(&t, &c, NULL), TL_WAL_OK);
    tlog *l = tlog_new();
    torn_expect_tentative(t, &h, l, &tn, TL_REC_ERR_CHECKSUM);
    assert_true(stats_of(t).hint_mode);
    uint64_t statx_before = stats_of(t).statx_total;
    drive_for(t, &h, l, 30);
    assert_int_equal(stats_of(t).statx_total, statx_before); /* the hint drives: no polling */
    drive_for(t, NULL, l, 40);                               /* no hint for 40 ms */
    tl_wal_tail_stats st = stats_of(t);
    assert_false(st.hint_mode);
    assert_true(st.statx_total > statx_before);
    pwrite_at(tn.path, tn.rec6, tn.len6, tn.off6);
    seen_seq ss = {.seq = 6, .scanned = l->n};
    assert_true(drive(t, NULL, l, until_caught_up_after, &ss, 5000));
    assert_int_equal(count_type(l, TL_WAL_EV_RECORD), 6);
    assert_int_equal(count_type(l, TL_WAL_EV_CORRUPT), 0);
    /* Never beyond the last hint it saw (seq 5). */
    assert_int_equal(tl_wal_tail_position(t).seq, 5);
    tl_wal_tail_close(t);
    tlog_free(l);
    torn_free(&tn);
}

/* The durable hint passes the torn record: a fresh re-read fails -> CORRUPT,
 * as io/wal_reader says with the same hint. */
static void test_torn_tail_durable_corrupt(void **state) {
    (void)state;
    torn tn;
    torn_build(&tn, "tail-durable", 50);
    shint h;
    memset(&h, 0, sizeof h);
    shint_store(&h, 5, 1, tn.off6);
    tl_wal_tail *t = open_tail_ex(tn.dir, 2, 8192, HINT_ONLY_NS);
    tlog *l = tlog_new();
    torn_expect_tentative(t, &h, l, &tn, TL_REC_ERR_CHECKSUM);
    shint_store(&h, 6, 1, tn.off6 + tn.len6);
    uint8_t want = TL_WAL_EV_CORRUPT;
    assert_true(drive(t, &h, l, until_type, &want, 5000));
    const tev *e = &l->e[l->n - 1];
    assert_int_equal(e->rule, TL_RULE_CHECKSUM);
    assert_string_equal(tl_reason_name(e->reason), tl_reason_name(TL_REASON_TORN_FRESH_READ));
    assert_int_equal(e->seg, 1);
    assert_int_equal(e->off, tn.off6);
    assert_int_equal(e->seq, 6);
    /* the reader with the same hint */
    tl_walseg_durable d = {6, 1, tn.off6 + tn.len6};
    rview *r = reader_view(tn.dir, &d);
    expect_same(l, r->l);
    fx_expect_one(&r->fs, TL_CHECK_WAL_CORRUPT, TL_RULE_CHECKSUM, TL_REASON_TORN_FRESH_READ, 1,
                  tn.off6, 6);
    /* Then it waits for a newer segment and says it caught up. */
    assert_true(drive(t, &h, l, until_caught_up, NULL, 5000));
    assert_int_equal(stats_of(t).state, TL_WAL_TAIL_ST_WAITING);
    rview_free(r);
    tl_wal_tail_close(t);
    tlog_free(l);
    torn_free(&tn);
}

/* A newer segment appears (no hint): the torn record is final -> CORRUPT,
 * and reading goes on in the new segment. */
static void test_torn_tail_newer_segment(void **state) {
    (void)state;
    torn tn;
    torn_build(&tn, "tail-newer", 50);
    tl_wal_tail *t = open_tail(tn.dir, 2, 8192);
    tlog *l = tlog_new();
    torn_expect_tentative(t, NULL, l, &tn, TL_REC_ERR_CHECKSUM);
    /* The next segment, named by the torn record's seq (6). */
    fx_seg s2;
    fx_seg_init(&s2, 16384, 1, 6, tn.ck5, 1, NULL);
    fx_chain ch = {.seq = 6, .parent = tn.ck5, .fence = 1};
    for (int i = 0; i < 3; i++)
        fx_order_new(&s2, &ch);
    fx_seg_write(tn.dir, &s2, NULL);
    seen_seq ss = {.seq = 8, .scanned = l->n};
    assert_true(drive(t, NULL, l, until_caught_up_after, &ss, 5000));
    /* The torn record may be observed again (TENTATIVE, same place) before
     * the new segment is seen; then it is final. */
    unsigned k = 8;
    while (k < l->n && l->e[k].type == TL_WAL_EV_TENTATIVE) {
        assert_int_equal(l->e[k].off, tn.off6);
        k++;
    }
    assert_true(k + 1 < l->n);
    const tev *e = &l->e[k];
    assert_int_equal(e->type, TL_WAL_EV_CORRUPT);
    assert_int_equal(e->rule, TL_RULE_CHECKSUM);
    assert_string_equal(tl_reason_name(e->reason), tl_reason_name(TL_REC_ERR_CHECKSUM));
    assert_int_equal(e->off, tn.off6);
    assert_int_equal(l->e[k + 1].type, TL_WAL_EV_SEGMENT);
    assert_int_equal(l->e[k + 1].seg, 6);
    rview *r = reader_view(tn.dir, NULL);
    expect_same(l, r->l);
    assert_int_equal(r->fs.n, 1); /* the sealed segment's CORRUPT, and nothing else */
    rview_free(r);
    fx_seg_free(&s2);
    tl_wal_tail_close(t);
    tlog_free(l);
    torn_free(&tn);
}

/* The newest segment's header is not valid yet: TENTATIVE at offset 0, then
 * the segment once the header is there. */
static void test_tentative_header(void **state) {
    (void)state;
    char *dir = tu_tmpdir("tail-hdr");
    fx_seg s;
    fx_seg_init(&s, 8192, 0, 1, 0, 1, NULL);
    fx_chain ch = {.seq = 1, .fence = 1};
    fx_order_new(&s, &ch);
    uint8_t hdr[TL_SEG_HDR_BYTES];
    memcpy(hdr, s.buf, sizeof hdr);
    memset(s.buf + 100, 0, TL_SEG_HDR_BYTES - 100); /* half written */
    fx_seg_write(dir, &s, NULL);
    tl_wal_tail *t = open_tail(dir, 1, 4096);
    tlog *l = tlog_new();
    assert_true(drive(t, NULL, l, until_caught_up, NULL, 5000));
    assert_int_equal(l->n, 2);
    assert_int_equal(l->e[0].type, TL_WAL_EV_TENTATIVE);
    assert_int_equal(l->e[0].off, 0);
    assert_int_equal(l->e[0].rule, TL_RULE_SEGMENT);
    assert_string_equal(tl_reason_name(l->e[0].reason),
                        tl_reason_name(TL_REASON_SEG_BASE + TL_SEG_ERR_CHECKSUM));
    char path[512];
    seg_path(path, sizeof path, dir, 1);
    pwrite_at(path, hdr, sizeof hdr, 0);
    seen_seq ss = {.seq = 1, .scanned = l->n};
    assert_true(drive(t, NULL, l, until_caught_up_after, &ss, 5000));
    assert_int_equal(count_type(l, TL_WAL_EV_SEGMENT), 1);
    assert_int_equal(count_type(l, TL_WAL_EV_RECORD), 1);
    assert_int_equal(count_type(l, TL_WAL_EV_CORRUPT), 0);
    tl_wal_tail_close(t);
    tlog_free(l);
    fx_seg_free(&s);
    tu_rm_rf(dir);
    free(dir);
}

/* A crash mid-record (TL_WAL_FAULT_TEAR) and the writer's recovery: the tail
 * says TENTATIVE, then delivers the rewritten record; never CORRUPT. */
static void test_crash_and_recovery(void **state) {
    (void)state;
    char *dir = tu_tmpdir("tail-crash");
    shint h;
    memset(&h, 0, sizeof h);
    weng e;
    memset(&e, 0, sizeof e);
    e.hint = &h;
    tl_wal *w = open_writer(dir, &e, 16384, false, NULL);
    for (unsigned i = 0; i < 60; i++)
        append_sized(w, i, 100);
    assert_int_equal(tl_wal_sync(w), TL_WAL_OK);
    tl_wal_tail *t = open_tail(dir, 2, 8192);
    tlog *l = tlog_new();
    seen_seq ss = {.seq = e.last_seq};
    assert_true(drive(t, &h, l, until_caught_up_after, &ss, 5000));

    uint64_t s = tl_wal_next_seq(w) + 2;
    assert_int_equal(tl_wal_fault_arm(w, TL_WAL_FAULT_TEAR, s, 50), TL_WAL_OK);
    tl_wal_appended torn_at = {0};
    for (unsigned i = 0; i < 6; i++) {
        tl_body_order_new ob = fx_order(500 + i);
        tl_wal_appended a;
        if (tl_wal_append(w, TL_KIND_ORDER_NEW, 1, &ob, sizeof ob, 1, &a) == TL_WAL_OK &&
            a.seq == s)
            torn_at = a;
    }
    assert_int_equal(torn_at.seq, s);
    assert_int_equal(tl_wal_sync(w), TL_WAL_ERR_FAILED); /* the crash */
    assert_int_equal(tl_wal_close(w), TL_WAL_ERR_FAILED);

    uint8_t want = TL_WAL_EV_TENTATIVE;
    assert_true(drive(t, &h, l, until_type, &want, 5000));
    const tev *te = &l->e[l->n - 1];
    assert_int_equal(te->seg, torn_at.segment_first_seq);
    assert_int_equal(te->off, torn_at.offset);
    assert_int_equal(te->seq, s);
    /* The engine is down: the tail stays tentative. */
    drive_for(t, &h, l, 20);

    tl_wal_recovered rec;
    w = open_writer(dir, &e, 16384, false, &rec);
    assert_true(rec.torn);
    assert_int_equal(rec.last_seq, s - 1);
    /* The new engine publishes where its log ends. */
    shint_store(&h, rec.last_seq, rec.segment_first_seq, rec.offset);
    drive_for(t, &h, l, 20);
    tl_body_order_new ob = fx_order(9999);
    tl_wal_appended again;
    assert_int_equal(tl_wal_append(w, TL_KIND_ORDER_NEW, 1, &ob, sizeof ob, 2, &again), TL_WAL_OK);
    assert_int_equal(again.seq, s);
    assert_int_equal(again.offset, torn_at.offset);
    for (unsigned i = 0; i < 40; i++)
        append_sized(w, 10000 + i, 200);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    ss = (seen_seq){.seq = e.last_seq, .scanned = l->n};
    assert_true(drive(t, &h, l, until_caught_up_after, &ss, 5000));
    assert_int_equal(count_type(l, TL_WAL_EV_CORRUPT), 0);
    /* seq s once, with the rewritten content; every seq in order once. */
    uint64_t next = 1;
    for (unsigned i = 0; i < l->n; i++) {
        if (l->e[i].type != TL_WAL_EV_RECORD)
            continue;
        assert_int_equal(l->e[i].seq, next);
        if (l->e[i].seq == s)
            assert_true(l->e[i].checksum == again.checksum);
        next++;
    }
    assert_int_equal(next, e.last_seq + 1);
    rview *r = reader_view(dir, NULL);
    assert_int_equal(r->fs.n, 0);
    expect_same(l, r->l);
    rview_free(r);
    tl_wal_tail_close(t);
    tlog_free(l);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- corruption in a sealed segment ---- */

static void corrupt_case(const char *tag, void (*damage)(const char *path, uint64_t off),
                         uint8_t rule, uint16_t reason) {
    char *dir = tu_tmpdir(tag);
    write_log(dir, 300, 16384, 600, 9);
    assert_true(segment_count(dir) >= 4);
    uint64_t seg2 = nth_segment(dir, 1);
    /* the 5th record of the second segment */
    rview *clean = reader_view(dir, NULL);
    const tev *victim = NULL;
    unsigned k = 0;
    for (unsigned i = 0; i < clean->l->n && victim == NULL; i++) {
        const tev *e = &clean->l->e[i];
        if (e->type == TL_WAL_EV_RECORD && e->seg == seg2 && ++k == 5)
            victim = e;
    }
    assert_non_null(victim);
    uint64_t vseq = victim->seq, voff = victim->off;
    char path[512];
    seg_path(path, sizeof path, dir, seg2);
    damage(path, voff);
    rview *r = reader_view(dir, NULL);
    tlog *l = tail_all(dir, 2, 8192, false, NULL);
    expect_same(l, r->l);
    unsigned n = 0;
    for (unsigned i = 0; i < l->n; i++) {
        const tev *e = &l->e[i];
        if (e->type != TL_WAL_EV_CORRUPT)
            continue;
        n++;
        assert_int_equal(e->rule, rule);
        assert_string_equal(tl_reason_name(e->reason), tl_reason_name(reason));
        assert_int_equal(e->seg, seg2);
        assert_int_equal(e->off, voff);
        assert_int_equal(e->seq, vseq);
    }
    assert_int_equal(n, 1);
    /* The segments after it are read. */
    assert_true(l->e[l->n - 2].type == TL_WAL_EV_RECORD);
    assert_int_equal(l->e[l->n - 2].seq, clean->sum.last_seq);
    rview_free(clean);
    rview_free(r);
    tlog_free(l);
    tu_rm_rf(dir);
    free(dir);
}

static void flip_body(const char *path, uint64_t off) {
    uint8_t b;
    pread_at(path, &b, 1, off + 70);
    b ^= 0x10;
    pwrite_at(path, &b, 1, off + 70);
}

static void bad_len(const char *path, uint64_t off) {
    uint32_t len = 65544; /* above the limit */
    pwrite_at(path, &len, 4, off + 40);
}

static void bad_reserved(const char *path, uint64_t off) {
    _Alignas(8) static uint8_t rec[TL_REC_MAX_BYTES];
    pread_at(path, rec, TL_REC_HDR_BYTES, off);
    uint32_t len = tl_rec_hdr_of(rec)->len;
    pread_at(path, rec, len, off);
    ((tl_rec_hdr *)rec)->reserved = 1;
    fx_reseal_rec(rec);
    pwrite_at(path, rec, len, off);
}

static void test_bit_flip_sealed(void **state) {
    (void)state;
    corrupt_case("tail-flip", flip_body, TL_RULE_CHECKSUM, TL_REC_ERR_CHECKSUM);
}

static void test_bad_len_sealed(void **state) {
    (void)state;
    corrupt_case("tail-len", bad_len, TL_RULE_LENGTH, TL_REC_ERR_LEN);
}

static void test_field_rule_sealed(void **state) {
    (void)state;
    corrupt_case("tail-fields", bad_reserved, TL_RULE_FIELDS, TL_REC_ERR_RESERVED);
}

/* ---- segments that go away ---- */

static void test_segment_deleted_behind(void **state) {
    (void)state;
    char *dir = tu_tmpdir("tail-deleted");
    write_log(dir, 200, 16384, 800, 5);
    assert_true(segment_count(dir) >= 5);
    uint64_t s1 = nth_segment(dir, 0), s3 = nth_segment(dir, 2), s4 = nth_segment(dir, 3);
    rview *r = reader_view(dir, NULL);
    tl_wal_tail *t = open_tail(dir, 1, 4096);
    tlog *l = tlog_new();
    uint8_t want = TL_WAL_EV_SEGMENT;
    assert_true(drive(t, NULL, l, until_type, &want, 5000));
    /* Delete the segment being read and one ahead. */
    char path[512];
    seg_path(path, sizeof path, dir, s1);
    assert_int_equal(unlink(path), 0);
    seg_path(path, sizeof path, dir, s3);
    assert_int_equal(unlink(path), 0);
    assert_true(drive(t, NULL, l, until_caught_up, NULL, 10000));
    /* Everything but segment 3, in order. */
    unsigned j = 0;
    for (unsigned i = 0; i < r->l->n; i++) {
        if (r->l->e[i].seg == s3)
            continue;
        while (j < l->n && l->e[j].type == TL_WAL_EV_CAUGHT_UP)
            j++;
        assert_true(j < l->n);
        assert_int_equal(l->e[j].type, r->l->e[i].type);
        assert_int_equal(l->e[j].seq, r->l->e[i].seq);
        assert_int_equal(l->e[j].seg, r->l->e[i].seg);
        j++;
    }
    assert_int_equal(count_type(l, TL_WAL_EV_CORRUPT), 0);
    tl_wal_tail_stats st = stats_of(t);
    assert_int_equal(st.segments_missing_total, 1);
    assert_int_equal(st.last_missing_segment, s3);
    assert_int_equal(st.io_errors_total, 0);
    assert_true(st.dir_scans_total >= 2);
    /* The SEGMENT after the hole is segment 4 (the loop names the gap). */
    bool saw4 = false;
    for (unsigned i = 0; i < l->n; i++)
        saw4 |= l->e[i].type == TL_WAL_EV_SEGMENT && l->e[i].seg == s4;
    assert_true(saw4);
    rview_free(r);
    tl_wal_tail_close(t);
    tlog_free(l);
    tu_rm_rf(dir);
    free(dir);
}

/* The listed next segment vanishes before it is opened: the tailer waits,
 * says it caught up, and picks the segment up when it comes back. */
static void test_missing_next_segment(void **state) {
    (void)state;
    char *dir = tu_tmpdir("tail-missing");
    write_log(dir, 60, 16384, 600, 8);
    unsigned nseg = segment_count(dir);
    assert_true(nseg >= 2);
    uint64_t last = nth_segment(dir, nseg - 1);
    char path[512], saved[512];
    seg_path(path, sizeof path, dir, last);
    snprintf(saved, sizeof saved, "%s.saved", dir);
    tl_wal_tail *t = open_tail(dir, 2, 8192);
    assert_int_equal(rename(path, saved), 0); /* gone after the listing */
    tlog *l = tlog_new();
    assert_true(drive(t, NULL, l, until_caught_up, NULL, 5000));
    tl_wal_tail_stats st = stats_of(t);
    assert_int_equal(st.state, TL_WAL_TAIL_ST_WAITING);
    assert_int_equal(count_type(l, TL_WAL_EV_SEGMENT), nseg - 1);
    assert_true(st.dir_scans_total >= 2);
    /* Still waiting, quietly. */
    assert_int_equal(drive_for(t, NULL, l, 30), 0);
    assert_int_equal(rename(saved, path), 0);
    rview *r = reader_view(dir, NULL);
    seen_seq ss = {.seq = r->sum.last_seq, .scanned = l->n};
    assert_true(drive(t, NULL, l, until_caught_up_after, &ss, 5000));
    expect_same(l, r->l);
    assert_int_equal(stats_of(t).state, TL_WAL_TAIL_ST_FOLLOWING);
    rview_free(r);
    tl_wal_tail_close(t);
    tlog_free(l);
    tu_rm_rf(dir);
    free(dir);
}

static void test_empty_dir_then_log(void **state) {
    (void)state;
    char *dir = tu_tmpdir("tail-empty");
    tl_wal_tail *t = open_tail(dir, 2, 8192);
    tlog *l = tlog_new();
    assert_true(drive(t, NULL, l, until_caught_up, NULL, 5000));
    assert_int_equal(l->n, 1);
    assert_int_equal(stats_of(t).state, TL_WAL_TAIL_ST_EMPTY);
    char sub[512];
    snprintf(sub, sizeof sub, "%s.w", dir);
    write_log(sub, 40, 16384, 300, 1);
    /* move the finished log into the watched directory */
    for (unsigned i = 0; i < segment_count(sub); i++) {
        uint64_t s = nth_segment(sub, i);
        char a[512], b[512];
        seg_path(a, sizeof a, sub, s);
        seg_path(b, sizeof b, dir, s);
        assert_int_equal(rename(a, b), 0);
    }
    tu_rm_rf(sub);
    rview *r = reader_view(dir, NULL);
    seen_seq ss = {.seq = r->sum.last_seq, .scanned = l->n};
    assert_true(drive(t, NULL, l, until_caught_up_after, &ss, 5000));
    expect_same(l, r->l);
    assert_int_equal(count_type(l, TL_WAL_EV_CAUGHT_UP), 2);
    rview_free(r);
    tl_wal_tail_close(t);
    tlog_free(l);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- errors ---- */

static void test_open_errors(void **state) {
    (void)state;
    tl_wal_tail *t = (tl_wal_tail *)1;
    tl_wal_ioerr err;
    tl_wal_tail_cfg c;
    tl_wal_tail_cfg_default(&c);
    c.dir = "/nonexistent/tally-wal";
    assert_int_equal(tl_wal_tail_open(&t, &c, &err), TL_WAL_ERR_NOT_FOUND);
    assert_null(t);
    assert_string_equal(err.op, "open");
    assert_int_equal(err.sys_errno, ENOENT);
    c.dir = "/etc/hostname"; /* not a directory */
    assert_int_equal(tl_wal_tail_open(&t, &c, &err), TL_WAL_ERR_IO);
    assert_int_equal(err.sys_errno, ENOTDIR);
    c.dir = "/tmp";
    tl_wal_tail_cfg bad = c;
    bad.read_ahead = 0;
    assert_int_equal(tl_wal_tail_open(&t, &bad, &err), TL_WAL_ERR_CONFIG);
    bad = c;
    bad.read_ahead = TL_WAL_TAIL_MAX_READ_AHEAD + 1;
    assert_int_equal(tl_wal_tail_open(&t, &bad, &err), TL_WAL_ERR_CONFIG);
    bad = c;
    bad.buf_bytes = 5000;
    assert_int_equal(tl_wal_tail_open(&t, &bad, &err), TL_WAL_ERR_CONFIG);
    bad = c;
    bad.tail_bytes = c.buf_bytes * 2;
    assert_int_equal(tl_wal_tail_open(&t, &bad, &err), TL_WAL_ERR_CONFIG);
    bad = c;
    bad.dir = NULL;
    assert_int_equal(tl_wal_tail_open(&t, &bad, &err), TL_WAL_ERR_CONFIG);
    assert_string_equal(tl_wal_tail_state_name(TL_WAL_TAIL_ST_IO_ERROR), "io_error");
    assert_string_equal(tl_wal_tail_state_name(TL_WAL_TAIL_ST_FOLLOWING), "following");
    tl_wal_tail_close(NULL);
}

/* A segment name that cannot be read (a directory): reported in the stats,
 * retried, and read once it is a real segment. */
static void test_unreadable_segment(void **state) {
    (void)state;
    char *dir = tu_tmpdir("tail-unreadable");
    char path[512];
    seg_path(path, sizeof path, dir, 1);
    assert_int_equal(mkdir(path, 0700), 0);
    tl_wal_tail *t = open_tail(dir, 2, 8192);
    tlog *l = tlog_new();
    drive_for(t, NULL, l, 30);
    assert_int_equal(l->n, 0);
    /* It cycles: IO_ERROR, a retry every 5 ms (open, statx, read), IO_ERROR. */
    tl_wal_tail_stats st = stats_of(t);
    for (unsigned i = 0; i < 1000 && st.state != TL_WAL_TAIL_ST_IO_ERROR; i++) {
        drive_for(t, NULL, l, 1);
        st = stats_of(t);
    }
    assert_int_equal(l->n, 0);
    assert_int_equal(st.state, TL_WAL_TAIL_ST_IO_ERROR);
    assert_true(st.io_errors_total >= 2); /* retried */
    assert_string_equal(st.last_ioerr.op, "read");
    assert_int_equal(st.last_ioerr.sys_errno, EISDIR);
    assert_int_equal(st.last_ioerr_segment, 1);
    assert_int_equal(rmdir(path), 0);
    fx_seg s;
    fx_seg_init(&s, 8192, 0, 1, 0, 1, NULL);
    fx_chain ch = {.seq = 1, .fence = 1};
    for (int i = 0; i < 3; i++)
        fx_order_new(&s, &ch);
    fx_seg_write(dir, &s, NULL);
    assert_true(drive(t, NULL, l, until_caught_up, NULL, 5000));
    assert_int_equal(count_type(l, TL_WAL_EV_RECORD), 3);
    fx_seg_free(&s);
    tl_wal_tail_close(t);
    tlog_free(l);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- where reading starts; the saved position ---- */

static void test_start_seq_and_anchor(void **state) {
    (void)state;
    char *dir = tu_tmpdir("tail-start");
    write_log(dir, 200, 16384, 800, 4);
    uint64_t s2 = nth_segment(dir, 2), s3 = nth_segment(dir, 3);
    tl_wal_tail_cfg c;
    tl_wal_tail_cfg_default(&c);
    c.dir = dir;
    c.buf_bytes = 64u << 10;
    c.start_seq = s2 + 1; /* inside the third segment */
    tl_wal_tail *t;
    assert_int_equal(tl_wal_tail_open(&t, &c, NULL), TL_WAL_OK);
    tlog *l = tlog_new();
    assert_true(drive(t, NULL, l, until_caught_up, NULL, 5000));
    assert_int_equal(l->e[0].type, TL_WAL_EV_SEGMENT);
    assert_int_equal(l->e[0].seg, s2);
    assert_int_equal(l->e[1].seq, s2); /* the whole segment, openers first */
    tl_wal_tail_stats st = stats_of(t);
    assert_false(st.anchor_verified);
    assert_int_equal(st.anchor_segment, s2);
    tl_wal_tail_close(t);
    tlog_free(l);
    /* The log's first two segments gone: the lowest present, unverified. */
    char path[512];
    for (unsigned i = 0; i < 2; i++) {
        seg_path(path, sizeof path, dir, nth_segment(dir, 0));
        assert_int_equal(unlink(path), 0);
    }
    c.start_seq = 0;
    assert_int_equal(tl_wal_tail_open(&t, &c, NULL), TL_WAL_OK);
    l = tlog_new();
    assert_true(drive(t, NULL, l, until_caught_up, NULL, 5000));
    assert_int_equal(l->e[0].seg, s2);
    st = stats_of(t);
    assert_false(st.anchor_verified);
    tl_wal_tail_close(t);
    tlog_free(l);
    /* A start_seq past every segment: the newest. */
    c.start_seq = 1u << 30;
    assert_int_equal(tl_wal_tail_open(&t, &c, NULL), TL_WAL_OK);
    l = tlog_new();
    assert_true(drive(t, NULL, l, until_caught_up, NULL, 5000));
    assert_int_equal(l->e[0].seg, nth_segment(dir, segment_count(dir) - 1));
    (void)s3;
    tl_wal_tail_close(t);
    tlog_free(l);
    tu_rm_rf(dir);
    free(dir);
}

static void test_position_never_beyond_durable(void **state) {
    (void)state;
    char *dir = tu_tmpdir("tail-pos");
    write_log(dir, 100, 16384, 500, 2);
    rview *r = reader_view(dir, NULL);
    /* the record with seq 30 */
    const tev *r30 = NULL;
    for (unsigned i = 0; i < r->l->n; i++)
        if (r->l->e[i].type == TL_WAL_EV_RECORD && r->l->e[i].seq == 30)
            r30 = &r->l->e[i];
    assert_non_null(r30);
    tl_wal_tail *t = open_tail(dir, 2, 8192);
    tl_wal_tail_pos p = tl_wal_tail_position(t);
    assert_int_equal(p.seq, 0);
    shint h;
    memset(&h, 0, sizeof h);
    shint_store(&h, 30, r30->seg, r30->off + r30->len);
    tlog *l = tlog_new();
    assert_true(drive(t, &h, l, until_caught_up, NULL, 5000));
    p = tl_wal_tail_position(t);
    assert_int_equal(p.seq, 30);
    assert_int_equal(p.segment_first_seq, r30->seg);
    /* a hint past what was read: the position is what was read */
    shint_store(&h, 1000, 999, 4096);
    drive_for(t, &h, l, 5);
    p = tl_wal_tail_position(t);
    assert_int_equal(p.seq, r->sum.last_seq);
    assert_int_equal(p.segment_first_seq, r->l->e[r->l->n - 1].seg);
    /* the tailer plugs into the loop as its WAL source */
    tl_loop_ops ops;
    memset(&ops, 0, sizeof ops);
    ops.ctx = t;
    ops.wal_poll = tl_wal_tail_poll_op;
    tl_wal_ev ev;
    drive_for(t, &h, l, 5);
    assert_false(ops.wal_poll(ops.ctx, &ev));
    rview_free(r);
    tl_wal_tail_close(t);
    tlog_free(l);
    tu_rm_rf(dir);
    free(dir);
}

/* The shared vector: the tailer and the reader agree on it. */
static void test_vector_wal_clean(void **state) {
    (void)state;
    const char *dir = tu_shared("spec/vectors/wal-clean");
    rview *r = reader_view(dir, NULL);
    assert_int_equal(r->fs.n, 0);
    tlog *l = tail_all(dir, 1, 4096, false, NULL);
    expect_same(l, r->l);
    assert_int_equal(count_type(l, TL_WAL_EV_RECORD), 103);
    tlog_free(l);
    rview_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_wal_clean),
        cmocka_unit_test(test_catch_up_matches_reader),
        cmocka_unit_test(test_catch_up_large_records),
        cmocka_unit_test(test_registered_vs_plain),
        cmocka_unit_test(test_live_follow_hint),
        cmocka_unit_test(test_live_follow_statx),
        cmocka_unit_test(test_torn_tail_heals),
        cmocka_unit_test(test_torn_tail_heals_statx),
        cmocka_unit_test(test_hint_stops_then_statx),
        cmocka_unit_test(test_torn_tail_durable_corrupt),
        cmocka_unit_test(test_torn_tail_newer_segment),
        cmocka_unit_test(test_tentative_header),
        cmocka_unit_test(test_crash_and_recovery),
        cmocka_unit_test(test_bit_flip_sealed),
        cmocka_unit_test(test_bad_len_sealed),
        cmocka_unit_test(test_field_rule_sealed),
        cmocka_unit_test(test_segment_deleted_behind),
        cmocka_unit_test(test_missing_next_segment),
        cmocka_unit_test(test_empty_dir_then_log),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_unreadable_segment),
        cmocka_unit_test(test_start_seq_and_anchor),
        cmocka_unit_test(test_position_never_beyond_durable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
