/* test_wal_tail_bench.c: numbers for the live WAL tailer (io/wal_tail.h).
 * Prints medians and spreads; asserts only correctness (record counts, no
 * finding), never a timing. TL_BENCH_MB scales the catch-up log (default 32).
 *
 * 1. Catch-up throughput over a warm page cache: the offline reader (pread,
 *    4 MiB buffer) against the tailer with registered buffers, plain reads,
 *    8 x 1 MiB (over the 6 MiB registration limit) and 1 x 64 KiB.
 * 2. Follow latency: a writer thread (sync thread, group commit) stamps each
 *    record with CLOCK_MONOTONIC; the tailer's delivery time minus the stamp,
 *    following by the durable hint alone, and by statx polling alone; with the
 *    hint also the time from the test loop first seeing a hint that covers a
 *    record to its delivery. The loop idles with 10 us sleeps (shared vCPUs).
 */
#include "test_wal_fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "io/wal_reader.h"
#include "io/wal_tail.h"
#include "io/wal_writer.h"

#define RUNS 5

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- the durable hint (a seqlock, as in ring.md) ---- */

typedef struct shint {
    _Atomic uint64_t gen, seq, seg, off;
} shint;

static void shint_store(shint *h, uint64_t seq, uint64_t seg, uint64_t off) {
    uint64_t g = atomic_load_explicit(&h->gen, memory_order_relaxed);
    atomic_store_explicit(&h->gen, g + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release); /* odd gen before the stores */
    atomic_store_explicit(&h->seq, seq, memory_order_relaxed);
    atomic_store_explicit(&h->seg, seg, memory_order_relaxed);
    atomic_store_explicit(&h->off, off, memory_order_relaxed);
    atomic_store_explicit(&h->gen, g + 2, memory_order_release); /* stores before even gen */
}

static bool shint_load(shint *h, uint64_t *seq, uint64_t *seg, uint64_t *off) {
    uint64_t g1 = atomic_load_explicit(&h->gen, memory_order_acquire); /* loads after g1 */
    *seq = atomic_load_explicit(&h->seq, memory_order_relaxed);
    *seg = atomic_load_explicit(&h->seg, memory_order_relaxed);
    *off = atomic_load_explicit(&h->off, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire); /* loads before g2 */
    uint64_t g2 = atomic_load_explicit(&h->gen, memory_order_relaxed);
    return g1 == g2 && (g1 & 1u) == 0;
}

typedef struct beng {
    shint *hint;
    uint64_t last_seq;
} beng;

static uint32_t b_symbols(void *ctx, tl_wal_opener_symbol *out, uint32_t cap) {
    (void)ctx;
    assert_true(cap >= 1);
    memset(out, 0, sizeof *out);
    out[0].symbol = 1;
    memcpy(out[0].name, "BTCUSDT", 7);
    return 1;
}

static void b_record(void *ctx, const uint8_t *rec, uint32_t len) {
    (void)len;
    ((beng *)ctx)->last_seq = tl_rec_hdr_of(rec)->seq;
}

static void b_durable(void *ctx, uint64_t seq, uint64_t seg, uint64_t off) {
    beng *e = ctx;
    if (e->hint != NULL)
        shint_store(e->hint, seq, seg, off);
}

static tl_wal *open_writer(const char *dir, beng *e, uint64_t segment_bytes, bool thread) {
    tl_wal_config c;
    tl_wal_config_default(&c);
    c.dir = dir;
    c.segment_bytes = segment_bytes;
    c.sync_thread = thread;
    c.initial_fence = 1;
    memcpy(c.engine_id, fx_engine, TL_ID_BYTES);
    tl_wal_ops ops = {
        .ctx = e, .symbols = b_symbols, .on_record = b_record, .on_durable = b_durable};
    tl_wal *w;
    tl_wal_recovered r;
    assert_int_equal(tl_wal_open(&w, &c, &ops, &r), TL_WAL_OK);
    return w;
}

/* ---- 1. catch-up ---- */

static int count_rec(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result res) {
    (void)v;
    (void)loc;
    (void)res;
    (*(uint64_t *)ctx)++;
    return 0;
}

static uint64_t run_reader(const char *dir, uint64_t *records) {
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.on_record = count_rec;
    o.ctx = records;
    tl_wal_summary sum;
    *records = 0;
    uint64_t t0 = mono_ns();
    assert_int_equal(tl_wal_read_dir(dir, &o, &sum), TL_WAL_OK);
    uint64_t dt = mono_ns() - t0;
    assert_int_equal(sum.findings_total, 0);
    return dt;
}

static uint64_t run_tail(const char *dir, uint32_t ra, uint32_t buf, bool no_register,
                         uint64_t *records, tl_wal_tail_stats *st) {
    tl_wal_tail_cfg c;
    tl_wal_tail_cfg_default(&c);
    c.dir = dir;
    c.read_ahead = ra;
    c.buf_bytes = buf;
    c.tail_bytes = buf < c.tail_bytes ? buf : c.tail_bytes;
    c.no_register = no_register;
    tl_wal_tail *t;
    assert_int_equal(tl_wal_tail_open(&t, &c, NULL), TL_WAL_OK);
    *records = 0;
    uint64_t t0 = mono_ns();
    for (;;) {
        tl_wal_ev ev;
        if (!tl_wal_tail_poll(t, &ev))
            continue; /* a busy poll, as on the pinned core */
        assert_true(ev.type != TL_WAL_EV_CORRUPT && ev.type != TL_WAL_EV_TENTATIVE);
        if (ev.type == TL_WAL_EV_RECORD)
            (*records)++;
        if (ev.type == TL_WAL_EV_CAUGHT_UP)
            break;
    }
    uint64_t dt = mono_ns() - t0;
    tl_wal_tail_get_stats(t, st);
    tl_wal_tail_close(t);
    return dt;
}

static void report(const char *what, uint64_t *ns, uint64_t bytes, uint64_t records) {
    qsort(ns, RUNS, sizeof *ns, cmp_u64);
    double med = (double)ns[RUNS / 2] / 1e9, lo = (double)ns[0] / 1e9,
           hi = (double)ns[RUNS - 1] / 1e9;
    print_message("%-34s median %7.1f MB/s %6.2f Mrec/s  (runs %.1f..%.1f MB/s)\n", what,
                  (double)bytes / med / 1e6, (double)records / med / 1e6, (double)bytes / hi / 1e6,
                  (double)bytes / lo / 1e6);
}

static void test_bench_catch_up(void **state) {
    (void)state;
    const char *env = getenv("TL_BENCH_MB");
    uint64_t mb = env != NULL ? strtoull(env, NULL, 10) : 32;
    char *dir = tu_tmpdir("tail-bench");
    beng e = {0};
    tl_wal *w = open_writer(dir, &e, 16ull << 20, false);
    uint8_t body[256];
    memset(body, 0x5a, sizeof body);
    tl_body_order_new ob = fx_order(1);
    memcpy(body, &ob, sizeof ob);
    uint64_t target = mb << 20, bytes = 0;
    while (bytes < target) {
        tl_wal_appended a;
        assert_int_equal(tl_wal_append(w, TL_KIND_ORDER_NEW, 1, body, 184, 1, &a), TL_WAL_OK);
        bytes += tl_rec_len_for_body(184);
    }
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    uint64_t recs = 0, ns[RUNS];
    run_reader(dir, &recs); /* warm the page cache */
    print_message("catch-up over %llu MiB, %llu records (256 B), 16 MiB segments, warm cache\n",
                  (unsigned long long)mb, (unsigned long long)recs);
    uint64_t want = recs;
    for (int i = 0; i < RUNS; i++) {
        ns[i] = run_reader(dir, &recs);
        assert_int_equal(recs, want);
    }
    report("wal_reader (pread, 4 MiB)", ns, bytes, recs);
    static const struct {
        const char *name;
        uint32_t ra, buf;
        bool no_reg;
        bool expect_reg;
    } cases[] = {
        {"tail 4 x 1 MiB registered", 4, 1u << 20, false, true},
        {"tail 4 x 1 MiB plain", 4, 1u << 20, true, false},
        {"tail 8 x 1 MiB (over 6 MiB: plain)", 8, 1u << 20, false, false},
        {"tail 2 x 256 KiB registered", 2, 256u << 10, false, true},
        {"tail 1 x 64 KiB registered", 1, 64u << 10, false, true},
    };
    for (unsigned k = 0; k < TL_ARRAY_LEN(cases); k++) {
        tl_wal_tail_stats st;
        for (int i = 0; i < RUNS; i++) {
            ns[i] = run_tail(dir, cases[k].ra, cases[k].buf, cases[k].no_reg, &recs, &st);
            assert_int_equal(recs, want);
        }
        assert_int_equal(st.registered, cases[k].expect_reg);
        report(cases[k].name, ns, bytes, recs);
    }
    tu_rm_rf(dir);
    free(dir);
}

/* ---- 2. follow latency ---- */

typedef struct lat {
    const char *dir;
    shint hint;
    beng eng;
    unsigned n;
    _Atomic bool done;
} lat;

static void *lat_writer(void *arg) {
    lat *l = arg;
    tl_wal *w = open_writer(l->dir, &l->eng, 4ull << 20, true);
    for (unsigned i = 0; i < l->n; i++) {
        tl_body_order_new ob = fx_order(i);
        assert_int_equal(tl_wal_append(w, TL_KIND_ORDER_NEW, 1, &ob, sizeof ob, mono_ns(), NULL),
                         TL_WAL_OK);
        struct timespec ts = {0, 100000}; /* ~10k records/s */
        nanosleep(&ts, NULL);
    }
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    atomic_store_explicit(&l->done, true, memory_order_release);
    return NULL;
}

static void follow_latency(bool hint) {
    char *dir = tu_tmpdir("tail-lat");
    lat *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->dir = dir;
    l->n = 3000;
    l->eng.hint = &l->hint;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, lat_writer, l), 0);
    tl_wal_tail_cfg c;
    tl_wal_tail_cfg_default(&c);
    c.dir = dir;
    c.buf_bytes = 256u << 10;
    c.hint_stat_interval_ns = 3600ull * 1000000000ull; /* the hint alone */
    tl_wal_tail *t;
    assert_int_equal(tl_wal_tail_open(&t, &c, NULL), TL_WAL_OK);
    uint64_t *lat_ns = calloc(l->n + 16, sizeof *lat_ns);
    assert_non_null(lat_ns);
    /* When the test loop first saw a hint covering each seq (hint mode). */
    uint64_t cap = 2u * l->n + 64u, prev_hint = 0;
    uint64_t *hint_seen = calloc(cap, sizeof *hint_seen);
    uint64_t *react_ns = calloc(cap, sizeof *react_ns);
    assert_true(hint_seen != NULL && react_ns != NULL);
    unsigned got = 0, reacts = 0, early = 0;
    uint64_t end = mono_ns() + 60ull * 1000000000ull;
    while (mono_ns() < end) {
        uint64_t seq = 0, seg = 0, off = 0;
        bool ok = hint && shint_load(&l->hint, &seq, &seg, &off);
        if (ok && seq > prev_hint) {
            uint64_t now = mono_ns();
            for (uint64_t s = prev_hint + 1; s <= seq && s < cap; s++)
                hint_seen[s] = now;
            prev_hint = seq;
        }
        tl_wal_tail_durable(t, ok, seq, seg, off);
        tl_wal_ev ev;
        if (!tl_wal_tail_poll(t, &ev)) {
            if (atomic_load_explicit(&l->done, memory_order_acquire) && got >= l->n)
                break;
            /* Backoff idling: the writer's two threads need the 2 vCPUs. */
            struct timespec ts = {0, 10000};
            nanosleep(&ts, NULL);
            continue;
        }
        assert_true(ev.type != TL_WAL_EV_CORRUPT);
        if (ev.type != TL_WAL_EV_RECORD)
            continue;
        uint64_t now = mono_ns();
        if (hint && ev.view.seq < cap) {
            if (hint_seen[ev.view.seq] != 0)
                react_ns[reacts++] = now - hint_seen[ev.view.seq];
            else
                early++; /* read past the durable point */
        }
        if (ev.view.kind == TL_KIND_ORDER_NEW && got < l->n)
            lat_ns[got++] = now - ev.view.ts_ns;
    }
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(got, l->n);
    tl_wal_tail_stats st;
    tl_wal_tail_get_stats(t, &st);
    qsort(lat_ns, got, sizeof *lat_ns, cmp_u64);
    print_message("follow by %-5s: append->delivered median %6.1f us, p90 %6.1f us, p99 %7.1f us, "
                  "max %7.1f us (%u records, %llu reads, %llu statx, %llu rereads)\n",
                  hint ? "hint" : "statx", (double)lat_ns[got / 2] / 1e3,
                  (double)lat_ns[got * 9 / 10] / 1e3, (double)lat_ns[got * 99 / 100] / 1e3,
                  (double)lat_ns[got - 1] / 1e3, got, (unsigned long long)st.reads_total,
                  (unsigned long long)st.statx_total, (unsigned long long)st.rereads_total);
    if (hint && reacts > 0) {
        qsort(react_ns, reacts, sizeof *react_ns, cmp_u64);
        print_message("  hint seen -> delivered: median %6.1f us, p90 %6.1f us, p99 %7.1f us "
                      "(%u records; %u read before their hint)\n",
                      (double)react_ns[reacts / 2] / 1e3, (double)react_ns[reacts * 9 / 10] / 1e3,
                      (double)react_ns[reacts * 99 / 100] / 1e3, reacts, early);
    }
    tl_wal_tail_close(t);
    free(hint_seen);
    free(react_ns);
    free(lat_ns);
    free(l);
    tu_rm_rf(dir);
    free(dir);
}

static void test_bench_follow_hint(void **state) {
    (void)state;
    follow_latency(true);
}

static void test_bench_follow_statx(void **state) {
    (void)state;
    follow_latency(false);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bench_catch_up),
        cmocka_unit_test(test_bench_follow_hint),
        cmocka_unit_test(test_bench_follow_statx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
