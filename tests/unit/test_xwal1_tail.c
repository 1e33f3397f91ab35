/* test_xwal1_tail.c: the live xwal1 tailer (io/xwal1_tail.c) on real files
 * through io_uring. Whatever it reads, caught up or while the log grows, its
 * events fed to the shared checks must give the findings the offline
 * verifier gives on the same bytes, and its records must be the frames of
 * the log, in order, decoded and bound. Beyond the offline rules, the torn
 * tail's clock: a torn frame heals, or becomes WAL_CORRUPT when a newer
 * segment appears or the file grows after it for wal.torn_grace_ms. */
#include "test_xwal1_tail_util.h"

#include <pthread.h>

static const char *const scenarios[] = {"basic",   "default_8MiB", "tiny_segments",
                                        "restart", "stale_leader", "escapes"};

/* ---- the records a log must give, by walking, decoding, binding ---- */

typedef struct ref {
    xt_ev ev[256];
    size_t n;
} ref;

static void ref_of(const xt_log *l, ref *r) {
    memset(r, 0, sizeof *r);
    void *mem = tu_aligned(64, tl_xwal1_symtab_bytes(XT_SYMBOLS));
    tl_xwal1_symtab st;
    tl_xwal1_symtab_init(&st, mem, XT_SYMBOLS);
    static tl_xwal1_rec rec;
    for (size_t s = 0; s < l->n; s++) {
        const xt_seg *g = &l->segs[s];
        for (size_t k = 0; k < g->n_frames; k++) {
            tl_xwal1_frame fr = {g->off[k], g->bytes + g->off[k] + 4, (uint32_t)(g->flen[k] - 8),
                                 (uint32_t)g->flen[k], 0};
            tl_rec_view v;
            if (tl_xwal1_decode(fr.payload, fr.payload_len, &rec) != TL_XWAL1_OK ||
                tl_xwal1_bind(&st, &rec, &fr, &v) != TL_XWAL1_OK)
                continue;
            assert_true(r->n < 256);
            xt_ev *e = &r->ev[r->n++];
            e->type = TL_WAL_EV_RECORD;
            e->loc = (tl_loc){g->index, g->off[k]};
            e->seq = v.seq;
            e->checksum = v.checksum;
            e->parent = v.parent;
            e->fence = v.fence;
            e->first_event = v.event_seqs[0];
            e->n_events = v.n_events;
            e->symbol = v.symbol;
            e->kind = v.kind;
            e->mode = v.kind == TL_KIND_MODE_CHANGE ? rec.mode : 0;
            snprintf(e->name, sizeof e->name, "%s", rec.symbol);
        }
    }
    free(mem);
}

/* The live RECORD events are exactly the reference, in order. */
static void expect_records(const xt_live *x, const ref *r) {
    size_t k = 0;
    for (size_t i = 0; i < x->n_ev; i++) {
        const xt_ev *e = &x->ev[i];
        if (e->type != TL_WAL_EV_RECORD)
            continue;
        assert_true(k < r->n);
        const xt_ev *w = &r->ev[k++];
        if (e->loc.segment != w->loc.segment || e->loc.offset != w->loc.offset ||
            e->seq != w->seq || e->checksum != w->checksum || e->parent != w->parent ||
            e->fence != w->fence || e->first_event != w->first_event ||
            e->n_events != w->n_events || e->symbol != w->symbol || e->kind != w->kind ||
            e->mode != w->mode || strcmp(e->name, w->name) != 0)
            fail_msg("record %zu: seq %llu at %llu:%llu, want seq %llu at %llu:%llu", k - 1,
                     (unsigned long long)e->seq, (unsigned long long)e->loc.segment,
                     (unsigned long long)e->loc.offset, (unsigned long long)w->seq,
                     (unsigned long long)w->loc.segment, (unsigned long long)w->loc.offset);
    }
    assert_int_equal(k, r->n);
}

static tl_xwal1_tail_stats stats_of(const xt_live *x) {
    tl_xwal1_tail_stats s;
    tl_xwal1_tail_get_stats(x->t, &s);
    return s;
}

/* Catch-up over dir (as it is) with cfg's read shape: the offline findings,
 * and the reference records. */
static void catch_up_case(const char *dir, const xt_log *l, uint32_t read_ahead,
                          uint32_t read_bytes, bool no_register) {
    tl_xwal1_tail_cfg c;
    xt_cfg(&c, dir);
    c.read_ahead = read_ahead;
    c.read_bytes = read_bytes;
    c.no_register = no_register;
    static xt_live x;
    xt_live_open_cfg(&x, &c);
    xt_drive(&x, xt_until_caught_up, NULL, 10000);
    static xt_offline off;
    xt_offline_dir(dir, &off);
    xt_expect_same(&x.fs, &off.fs);
    static ref r;
    ref_of(l, &r);
    expect_records(&x, &r);
    assert_true(x.records == off.sum.records);
    tl_xwal1_tail_stats s = stats_of(&x);
    assert_int_equal(s.segments_total, l->n);
    assert_true(s.frames_total == off.sum.frames);
    assert_int_equal(s.state, TL_XWAL1_TAIL_ST_FOLLOWING);
    assert_true(s.segment == l->segs[l->n - 1].index);
    assert_true(s.anchor_verified);
    assert_int_equal(x.corrupt, 0);
    assert_int_equal(x.tentative, 0);
    if (!no_register)
        assert_true(s.registered || s.register_errno != 0);
    else
        assert_false(s.registered);
    xt_live_close(&x);
}

/* Every fixture, as upstream wrote it: the offline findings (stale_leader's
 * FORK and FENCE_REGRESSION for records 8 and 9, nothing else), whatever
 * the read shape. */
static void test_catch_up_fixtures(void **state) {
    (void)state;
    static const struct {
        uint32_t read_ahead, read_bytes;
        bool no_register;
    } shapes[] = {{4, 256u << 10, false}, {1, 4096, true}, {3, 4096, false}, {64, 8192, true}};
    for (size_t s = 0; s < TL_ARRAY_LEN(scenarios); s++) {
        xt_log l;
        xt_load(&l, scenarios[s]);
        char rel[256];
        snprintf(rel, sizeof rel, "fixtures/quanta-xwal1/%s/wal", scenarios[s]);
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", tu_shared(rel));
        for (size_t k = 0; k < TL_ARRAY_LEN(shapes); k++)
            catch_up_case(dir, &l, shapes[k].read_ahead, shapes[k].read_bytes,
                          shapes[k].no_register);
        xt_free(&l);
    }

    /* stale_leader, spelled out */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_shared("fixtures/quanta-xwal1/stale_leader/wal"));
    static xt_live x;
    xt_live_open(&x, dir);
    xt_drive(&x, xt_until_caught_up, NULL, 10000);
    assert_int_equal(x.fs.n, 4);
    static const uint16_t checks[4] = {TL_CHECK_FORK, TL_CHECK_FENCE_REGRESSION, TL_CHECK_FORK,
                                       TL_CHECK_FENCE_REGRESSION};
    static const uint64_t seqs[4] = {8, 8, 9, 9}, offs[4] = {2717, 2717, 3445, 3445};
    for (size_t i = 0; i < 4; i++) {
        const tl_finding *f = &x.fs.f[i];
        assert_int_equal(f->check, checks[i]);
        assert_true(f->seq == seqs[i] && f->segment == 1 && f->offset == offs[i]);
        assert_int_equal(f->symbol, 1); /* BTC-KRW: the scope of the HARD_HALT */
        assert_int_equal(f->cls, TL_CLASS_OUT_OF_ORDER);
        assert_int_equal(f->severity, TL_SEV_SEV1);
        assert_true(f->fence == 1 && f->fence2 == 2);
    }
    assert_string_equal(tl_xwal1_symtab_get(tl_xwal1_tail_symbols(x.t), 1)->name, "BTC-KRW");
    xt_live_close(&x);
}

/* ---- frames larger than reads, a segment larger than the buffer ---- */

static size_t put_frame(uint8_t *dst, const void *payload, uint32_t len) {
    memcpy(dst, &len, 4);
    memcpy(dst + 4, payload, len);
    uint32_t c = (uint32_t)crc32(0, payload, len);
    memcpy(dst + 4 + len, &c, 4);
    return 8u + len;
}

/* A 15 MiB segment: basic's frames, each followed by a frame whose crc
 * holds but whose payload is no JSON (json_error, reading goes on), of
 * sizes up to the largest payload tally reads. The buffer (4 MiB + reads)
 * holds a fraction: walked bytes are moved out, frames span reads. */
static void test_large_segment(void **state) {
    (void)state;
    xt_log l;
    xt_load(&l, "basic");
    static const uint32_t junk[] = {100000, 1u << 20, TL_XWAL1_MAX_PAYLOAD_BYTES,     3000000,
                                    17,     2500000,  TL_XWAL1_MAX_PAYLOAD_BYTES - 1, 600000};
    size_t cap = 7 + 15u * 8192 + 16u * (TL_XWAL1_MAX_PAYLOAD_BYTES + 8u);
    uint8_t *seg = malloc(cap);
    uint8_t *filler = malloc(TL_XWAL1_MAX_PAYLOAD_BYTES);
    assert_true(seg != NULL && filler != NULL);
    memset(filler, 'x', TL_XWAL1_MAX_PAYLOAD_BYTES);
    memcpy(seg, TL_XWAL1_MAGIC, TL_XWAL1_MAGIC_BYTES);
    size_t n = TL_XWAL1_MAGIC_BYTES, j = 0;
    for (size_t s = 0; s < l.n; s++) {
        for (size_t k = 0; k < l.segs[s].n_frames; k++) {
            memcpy(seg + n, l.segs[s].bytes + l.segs[s].off[k], l.segs[s].flen[k]);
            n += l.segs[s].flen[k];
            if (j < TL_ARRAY_LEN(junk))
                n += put_frame(seg + n, filler, junk[j++]);
        }
    }
    assert_true(n <= cap && n > 15u * 1000000u);
    char *dir = tu_tmpdir("xwt-large");
    xt_write_seg(dir, 1, seg, n);
    static const uint32_t shapes[][2] = {{4, 256u << 10}, {2, 4096}, {8, 1u << 20}};
    for (size_t k = 0; k < TL_ARRAY_LEN(shapes); k++) {
        tl_xwal1_tail_cfg c;
        xt_cfg(&c, dir);
        c.read_ahead = shapes[k][0];
        c.read_bytes = shapes[k][1];
        static xt_live x;
        xt_live_open_cfg(&x, &c);
        xt_drive(&x, xt_until_caught_up, NULL, 20000);
        static xt_offline off;
        xt_offline_dir(dir, &off);
        xt_expect_same(&x.fs, &off.fs);
        assert_int_equal(x.records, 15);
        assert_int_equal(x.corrupt, TL_ARRAY_LEN(junk)); /* json_error each */
        for (size_t i = 0; i < x.fs.n; i++)
            assert_int_equal(x.fs.f[i].reason, xt_reason(TL_XWAL1_ERR_JSON));
        tl_xwal1_tail_stats s = stats_of(&x);
        assert_true(s.compactions_total > 0);
        assert_true(s.bytes_read >= n);
        assert_true(s.offset == n);
        xt_live_close(&x);
    }
    xt_rmdir(dir);
    free(seg);
    free(filler);
    xt_free(&l);
}

/* ---- live growth ---- */

/* Appends scenario's frames one at a time (a segment's magic when it
 * starts), polling the tailer to CAUGHT_UP after each; then the offline
 * findings of the directory, and the reference records. */
static void grow_case(const char *scenario) {
    xt_log l;
    xt_load(&l, scenario);
    char *dir = tu_tmpdir("xwt-grow");
    static xt_live x;
    xt_live_open(&x, dir);
    xt_drive(&x, xt_until_caught_up, NULL, 5000); /* an empty directory */
    size_t want = 0;
    for (size_t s = 0; s < l.n; s++) {
        const xt_seg *g = &l.segs[s];
        xt_append(dir, g->index, g->bytes, TL_XWAL1_MAGIC_BYTES);
        for (size_t k = 0; k < g->n_frames; k++) {
            xt_append(dir, g->index, g->bytes + g->off[k], g->flen[k]);
            want++;
            xt_drive(&x, xt_until_records, &want, 5000);
        }
    }
    static xt_offline off;
    xt_offline_dir(dir, &off);
    xt_expect_same(&x.fs, &off.fs);
    static ref r;
    ref_of(&l, &r);
    expect_records(&x, &r);
    assert_int_equal(x.segments, l.n);
    assert_int_equal(x.corrupt, 0);
    tl_xwal1_tail_stats s = stats_of(&x);
    /* Growth is seen by statx, a new segment by its probe (with one frame
     * per segment, the probe may win every time). */
    bool statx_seen = s.statx_total > 0 || strcmp(scenario, "tiny_segments") == 0;
    if (!(s.rereads_total > 0 && statx_seen && s.probes_total > 0))
        fail_msg("%s: rereads %llu statx %llu probes %llu", scenario,
                 (unsigned long long)s.rereads_total, (unsigned long long)s.statx_total,
                 (unsigned long long)s.probes_total);
    xt_live_close(&x);
    xt_rmdir(dir);
    xt_free(&l);
}

static void test_live_growth(void **state) {
    (void)state;
    for (size_t s = 0; s < TL_ARRAY_LEN(scenarios); s++)
        grow_case(scenarios[s]);
}

/* The writer on its own thread at its own pace, as upstream's engine is. */
typedef struct writer_arg {
    const xt_log *l;
    const char *dir;
    uint64_t seed;
} writer_arg;

static void *writer_main(void *p) {
    writer_arg *a = p;
    uint64_t x = a->seed;
    for (size_t s = 0; s < a->l->n; s++) {
        const xt_seg *g = &a->l->segs[s];
        xt_append(a->dir, g->index, g->bytes, TL_XWAL1_MAGIC_BYTES);
        for (size_t k = 0; k < g->n_frames; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            xt_append(a->dir, g->index, g->bytes + g->off[k], g->flen[k]);
            xt_sleep_us((unsigned)((x >> 33) % 3000u));
        }
    }
    return NULL;
}

static void test_live_growth_threaded(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        const char *scenario = scenarios[seed % TL_ARRAY_LEN(scenarios)];
        xt_log l;
        xt_load(&l, scenario);
        char *dir = tu_tmpdir("xwt-thr");
        static xt_live x;
        xt_live_open(&x, dir);
        writer_arg a = {&l, dir, seed};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, writer_main, &a), 0);
        static ref r;
        ref_of(&l, &r);
        size_t want = r.n;
        xt_drive(&x, xt_until_records, &want, 20000);
        pthread_join(th, NULL);
        xt_drive_for(&x, 20);
        static xt_offline off;
        xt_offline_dir(dir, &off);
        xt_expect_same(&x.fs, &off.fs);
        expect_records(&x, &r);
        assert_int_equal(x.corrupt, 0); /* whole frames, fsynced: never torn */
        xt_live_close(&x);
        xt_rmdir(dir);
        xt_free(&l);
    }
}

/* ---- the torn tail ---- */

/* basic's segments 1-3 whole, and segment 4's magic: the live directory a
 * torn-tail case starts from (segment 4's one frame is at 7, 981 bytes). */
static char *torn_dir(xt_log *l, xt_live *x) {
    xt_load(l, "basic");
    char *dir = tu_tmpdir("xwt-torn");
    for (size_t s = 0; s < 3; s++)
        xt_write_seg(dir, l->segs[s].index, l->segs[s].bytes, l->segs[s].len);
    xt_append(dir, 4, l->segs[3].bytes, TL_XWAL1_MAGIC_BYTES);
    xt_live_open(x, dir);
    size_t want = 14;
    xt_drive(x, xt_until_records, &want, 5000);
    return dir;
}

/* A frame written in pieces (a stalled writer, not a crash): tentative
 * while torn, no finding once whole. */
static void test_torn_heals(void **state) {
    (void)state;
    static const size_t cuts[][2] = {{2, 0}, {4, 0}, {4 + 500, 0}, {981 - 2, 0}, {3, 700}};
    for (size_t c = 0; c < TL_ARRAY_LEN(cuts); c++) {
        xt_log l;
        static xt_live x;
        char *dir = torn_dir(&l, &x);
        const uint8_t *fr = l.segs[3].bytes + 7;
        size_t done = 0;
        for (size_t p = 0; p < 2 && cuts[c][p] != 0; p++) {
            xt_append(dir, 4, fr + done, cuts[c][p] - done);
            done = cuts[c][p];
            size_t want = x.tentative + 1;
            xt_drive(&x, xt_until_tentative, &want, 5000);
            const xt_ev *e = xt_last(&x, TL_WAL_EV_TENTATIVE);
            assert_true(e->loc.segment == 4 && e->loc.offset == 7);
            enum tl_xwal1_err err = done < 4     ? TL_XWAL1_ERR_SHORT_LENGTH
                                    : done < 977 ? TL_XWAL1_ERR_SHORT_PAYLOAD
                                                 : TL_XWAL1_ERR_SHORT_CRC;
            assert_int_equal(e->reason, xt_reason(err));
        }
        xt_append(dir, 4, fr + done, 981 - done);
        size_t want = 15;
        xt_drive(&x, xt_until_records, &want, 5000);
        xt_drive_for(&x, 250); /* past torn_grace_ms: nothing more */
        assert_int_equal(x.corrupt, 0);
        assert_int_equal(x.fs.n, 0);
        static xt_offline off;
        xt_offline_dir(dir, &off);
        xt_expect_same(&x.fs, &off.fs);
        xt_live_close(&x);
        xt_rmdir(dir);
        xt_free(&l);
    }
    /* a segment being created shows its magic a byte at a time */
    xt_log l;
    xt_load(&l, "basic");
    char *dir = tu_tmpdir("xwt-magic");
    static xt_live x;
    xt_live_open(&x, dir);
    xt_drive(&x, xt_until_caught_up, NULL, 5000);
    xt_append(dir, 1, l.segs[0].bytes, 3);
    size_t one = 1;
    xt_drive(&x, xt_until_tentative, &one, 5000);
    assert_int_equal(xt_last(&x, TL_WAL_EV_TENTATIVE)->reason, xt_reason(TL_XWAL1_ERR_SHORT_MAGIC));
    assert_true(xt_last(&x, TL_WAL_EV_TENTATIVE)->loc.offset == 0);
    xt_append(dir, 1, l.segs[0].bytes + 3, l.segs[0].len - 3);
    size_t want = l.segs[0].n_frames;
    xt_drive(&x, xt_until_records, &want, 5000);
    assert_int_equal(x.fs.n, 0);
    xt_live_close(&x);
    xt_rmdir(dir);
    xt_free(&l);
}

/* A crash tore a frame; the restarted writer appends after the torn bytes.
 * Enough to complete the torn frame's length: a crc mismatch at once, as
 * offline. Less: the file grows after a frame that never completes, and
 * after wal.torn_grace_ms it is WAL_CORRUPT torn_stalled. */
static void test_torn_then_appended(void **state) {
    (void)state;
    xt_log l;
    static xt_live x;
    char *dir = torn_dir(&l, &x);
    const xt_seg *s3 = &l.segs[2];
    xt_append(dir, 4, l.segs[3].bytes + 7, 4 + 300);
    size_t one = 1;
    xt_drive(&x, xt_until_tentative, &one, 5000);
    /* segment 3's last frame, whole (764 bytes) */
    size_t last = s3->n_frames - 1;
    xt_append(dir, 4, s3->bytes + s3->off[last], s3->flen[last]);
    xt_drive(&x, xt_until_corrupt, &one, 5000);
    static xt_offline off;
    xt_offline_dir(dir, &off);
    xt_expect_same(&x.fs, &off.fs);
    assert_int_equal(x.fs.n, 1);
    assert_int_equal(x.fs.f[0].reason, xt_reason(TL_XWAL1_ERR_CRC_MISMATCH));
    assert_true(x.fs.f[0].segment == 4 && x.fs.f[0].offset == 7);
    xt_live_close(&x);
    xt_rmdir(dir);
    xt_free(&l);

    dir = torn_dir(&l, &x);
    xt_append(dir, 4, l.segs[3].bytes + 7, 4 + 300);
    xt_drive(&x, xt_until_tentative, &one, 5000);
    uint64_t t0 = xt_now_ms();
    /* 200 bytes of a frame: still shorter than the torn frame claims */
    xt_append(dir, 4, l.segs[2].bytes + 2634, 200);
    xt_drive(&x, xt_until_corrupt, &one, 5000);
    assert_true(xt_now_ms() - t0 >= 150); /* torn_grace_ms */
    assert_int_equal(x.fs.n, 1);
    const tl_finding *f = &x.fs.f[0];
    assert_int_equal(f->check, TL_CHECK_WAL_CORRUPT);
    assert_int_equal(f->reason, TL_REASON_TORN_STALLED);
    assert_int_equal(f->rule, TL_RULE_LENGTH);
    assert_true(f->segment == 4 && f->offset == 7);
    assert_int_equal(stats_of(&x).stalled_total, 1);
    /* offline, the same bytes are only a tentative tail: the clock is live */
    xt_offline_dir(dir, &off);
    assert_int_equal(off.fs.n, 0);
    assert_true(off.sum.tentative && off.sum.tentative_offset == 7);
    /* the rest of segment 4 is lost; segment 5 is read when it comes */
    xt_write_seg(dir, 5, l.segs[0].bytes, l.segs[0].len);
    size_t want = 14 + l.segs[0].n_frames;
    xt_drive(&x, xt_until_records, &want, 5000);
    assert_int_equal(x.fs.n, 5); /* + segment 1's records again: SEQ_DUPLICATE */
    for (size_t i = 1; i < 5; i++)
        assert_int_equal(x.fs.f[i].check, TL_CHECK_SEQ_DUPLICATE);
    xt_live_close(&x);
    xt_rmdir(dir);
    xt_free(&l);

    /* a torn tail that does not grow stays tentative (a stalled writer, or
     * a crashed engine that has not restarted): no finding */
    dir = torn_dir(&l, &x);
    xt_append(dir, 4, l.segs[3].bytes + 7, 4 + 300);
    xt_drive(&x, xt_until_tentative, &one, 5000);
    xt_drive_for(&x, 400);
    assert_int_equal(x.corrupt, 0);
    assert_int_equal(stats_of(&x).state, TL_XWAL1_TAIL_ST_FOLLOWING);
    xt_live_close(&x);
    xt_rmdir(dir);
    xt_free(&l);
}

/* A newer segment after a torn tail: the tail is read again as sealed, and
 * reported as the offline verifier reports the same bytes. */
static void test_torn_then_newer_segment(void **state) {
    (void)state;
    static const struct {
        size_t keep;
        enum tl_xwal1_err err;
    } cases[] = {{4 + 300, TL_XWAL1_ERR_SHORT_PAYLOAD},
                 {2, TL_XWAL1_ERR_SHORT_LENGTH},
                 {981 - 1, TL_XWAL1_ERR_SHORT_CRC}};
    for (size_t c = 0; c < TL_ARRAY_LEN(cases); c++) {
        xt_log l;
        static xt_live x;
        char *dir = torn_dir(&l, &x);
        xt_append(dir, 4, l.segs[3].bytes + 7, cases[c].keep);
        size_t one = 1;
        xt_drive(&x, xt_until_tentative, &one, 5000);
        /* the engine restarted on a new segment (it carries segment 4's frame) */
        xt_write_seg(dir, 5, l.segs[3].bytes, l.segs[3].len);
        size_t want = 15;
        xt_drive(&x, xt_until_records, &want, 5000);
        static xt_offline off;
        xt_offline_dir(dir, &off);
        xt_expect_same(&x.fs, &off.fs);
        assert_int_equal(x.fs.n, 1);
        assert_int_equal(x.fs.f[0].reason, xt_reason(cases[c].err));
        assert_true(x.fs.f[0].segment == 4 && x.fs.f[0].offset == 7);
        xt_live_close(&x);
        xt_rmdir(dir);
        xt_free(&l);
    }
}

/* ---- zeros at the tail ---- */

static void test_zero_filled_tail(void **state) {
    (void)state;
    xt_log l;
    static xt_live x;
    static xt_offline off;
    size_t one = 1;
    uint8_t *zeros = calloc(1, 9u << 20);
    assert_non_null(zeros);

    /* a crash artifact: tentative, however long it stays */
    char *dir = torn_dir(&l, &x);
    xt_append(dir, 4, l.segs[3].bytes + 7, 981);
    xt_append(dir, 4, zeros, 4096);
    xt_drive(&x, xt_until_tentative, &one, 5000);
    const xt_ev *e = xt_last(&x, TL_WAL_EV_TENTATIVE);
    assert_int_equal(e->reason, xt_reason(TL_XWAL1_ERR_ZERO_FILLED_TAIL));
    assert_true(e->loc.offset == 988);
    xt_drive_for(&x, 300);
    assert_int_equal(x.corrupt, 0);
    /* ... and corruption once a newer segment exists */
    xt_write_seg(dir, 5, l.segs[3].bytes, l.segs[3].len);
    xt_drive(&x, xt_until_corrupt, &one, 5000);
    size_t want = 16;
    xt_drive(&x, xt_until_records, &want, 5000);
    xt_offline_dir(dir, &off);
    xt_expect_same(&x.fs, &off.fs);
    assert_int_equal(x.fs.f[0].reason, xt_reason(TL_XWAL1_ERR_ZERO_FILLED_TAIL));
    xt_live_close(&x);
    xt_rmdir(dir);
    xt_free(&l);

    /* zeros, then a frame (a restarted writer): zero_length at once */
    dir = torn_dir(&l, &x);
    xt_append(dir, 4, zeros, 64);
    xt_drive(&x, xt_until_tentative, &one, 5000);
    xt_append(dir, 4, l.segs[3].bytes + 7, 981);
    xt_drive(&x, xt_until_corrupt, &one, 5000);
    xt_offline_dir(dir, &off);
    xt_expect_same(&x.fs, &off.fs);
    assert_int_equal(x.fs.f[0].reason, xt_reason(TL_XWAL1_ERR_ZERO_LENGTH));
    assert_true(x.fs.f[0].offset == 7);
    xt_live_close(&x);
    xt_rmdir(dir);
    xt_free(&l);

    /* a zero run longer than the buffer: scanned through, still tentative;
     * a byte after it makes it zero_length */
    dir = torn_dir(&l, &x);
    xt_append(dir, 4, zeros, 9u << 20);
    xt_drive(&x, xt_until_tentative, &one, 10000);
    assert_int_equal(xt_last(&x, TL_WAL_EV_TENTATIVE)->reason,
                     xt_reason(TL_XWAL1_ERR_ZERO_FILLED_TAIL));
    assert_true(stats_of(&x).zero_scans_total > 0);
    assert_int_equal(x.corrupt, 0);
    xt_append(dir, 4, "\x01", 1);
    xt_drive(&x, xt_until_corrupt, &one, 10000);
    xt_offline_dir(dir, &off);
    xt_expect_same(&x.fs, &off.fs);
    assert_int_equal(x.fs.f[0].reason, xt_reason(TL_XWAL1_ERR_ZERO_LENGTH));
    xt_live_close(&x);
    xt_rmdir(dir);
    xt_free(&l);

    /* ... and a newer segment after it: zero_filled_tail, as offline */
    dir = torn_dir(&l, &x);
    xt_append(dir, 4, zeros, 9u << 20);
    xt_drive(&x, xt_until_tentative, &one, 10000);
    xt_write_seg(dir, 5, l.segs[3].bytes, l.segs[3].len);
    want = 15;
    xt_drive(&x, xt_until_records, &want, 10000);
    xt_offline_dir(dir, &off);
    xt_expect_same(&x.fs, &off.fs);
    assert_int_equal(x.fs.n, 1);
    assert_int_equal(x.fs.f[0].reason, xt_reason(TL_XWAL1_ERR_ZERO_FILLED_TAIL));
    assert_true(x.fs.f[0].segment == 4 && x.fs.f[0].offset == 7);
    xt_live_close(&x);
    xt_rmdir(dir);
    xt_free(&l);
    free(zeros);
}

/* ---- segments: missing, duplicated, bad ---- */

static void dir_case(const xt_log *l, const size_t *order, const uint64_t *names, size_t n,
                     size_t want_findings) {
    char *dir = tu_tmpdir("xwt-segs");
    for (size_t i = 0; i < n; i++)
        xt_write_seg(dir, names[i], l->segs[order[i]].bytes, l->segs[order[i]].len);
    static xt_live x;
    xt_live_open(&x, dir);
    xt_drive(&x, xt_until_caught_up, NULL, 5000);
    static xt_offline off;
    xt_offline_dir(dir, &off);
    xt_expect_same(&x.fs, &off.fs);
    assert_int_equal(x.fs.n, want_findings);
    xt_live_close(&x);
    xt_rmdir(dir);
}

static void test_segments(void **state) {
    (void)state;
    xt_log l;
    xt_load(&l, "basic");
    /* missing segment 3 */
    dir_case(&l, (const size_t[]){0, 1, 3}, (const uint64_t[]){1, 2, 4}, 3, 1);
    /* segment 2's bytes again as 3 (the rest shifted): four SEQ_DUPLICATEs */
    dir_case(&l, (const size_t[]){0, 1, 1, 2, 3}, (const uint64_t[]){1, 2, 3, 4, 5}, 5, 4);
    /* reordered contents: SEQ_REGRESSIONs */
    dir_case(&l, (const size_t[]){0, 2, 1, 3}, (const uint64_t[]){1, 2, 3, 4}, 4, 4);
    /* old segments gone: an unverified anchor, no finding */
    dir_case(&l, (const size_t[]){2, 3}, (const uint64_t[]){3, 4}, 2, 0);
    /* two symbols with the same seqs: no fork */
    xt_log eth;
    xt_load(&eth, "basic");
    for (size_t s = 0; s < eth.n; s++)
        xt_rename(&eth.segs[s], "BTC-KRW", "ETH-KRW");
    char *dir = tu_tmpdir("xwt-two");
    for (size_t s = 0; s < 4; s++) {
        xt_write_seg(dir, 2 * s + 1, l.segs[s].bytes, l.segs[s].len);
        xt_write_seg(dir, 2 * s + 2, eth.segs[s].bytes, eth.segs[s].len);
    }
    static xt_live x;
    xt_live_open(&x, dir);
    xt_drive(&x, xt_until_caught_up, NULL, 5000);
    assert_int_equal(x.fs.n, 0);
    assert_int_equal(x.records, 30);
    const tl_xwal1_symtab *st = tl_xwal1_tail_symbols(x.t);
    assert_int_equal(st->count, 2);
    assert_string_equal(tl_xwal1_symtab_get(st, 2)->name, "ETH-KRW");
    xt_live_close(&x);
    xt_rmdir(dir);
    xt_free(&eth);

    /* live: segment 3 never comes, 4 does (found by listing) */
    dir = tu_tmpdir("xwt-skip");
    xt_write_seg(dir, 1, l.segs[0].bytes, l.segs[0].len);
    xt_write_seg(dir, 2, l.segs[1].bytes, l.segs[1].len);
    xt_live_open(&x, dir);
    size_t want = 8;
    xt_drive(&x, xt_until_records, &want, 5000);
    xt_write_seg(dir, 4, l.segs[3].bytes, l.segs[3].len);
    want = 9;
    xt_drive(&x, xt_until_records, &want, 5000);
    static xt_offline off;
    xt_offline_dir(dir, &off);
    xt_expect_same(&x.fs, &off.fs);
    assert_int_equal(x.fs.n, 1);
    assert_int_equal(x.fs.f[0].check, TL_CHECK_SEGMENT_GAP);
    assert_true(x.fs.f[0].segment == 4 && x.fs.f[0].seq2 == 3);
    assert_true(stats_of(&x).dir_scans_total >= 2 && stats_of(&x).segments_missing_total >= 1);
    xt_live_close(&x);
    xt_rmdir(dir);

    /* a bad magic: that segment is lost, the next is read */
    dir = tu_tmpdir("xwt-magic");
    xt_write_seg(dir, 1, l.segs[0].bytes, l.segs[0].len);
    uint8_t *b = malloc(l.segs[1].len);
    memcpy(b, l.segs[1].bytes, l.segs[1].len);
    b[2] ^= 0x20;
    xt_write_seg(dir, 2, b, l.segs[1].len);
    free(b);
    xt_write_seg(dir, 3, l.segs[2].bytes, l.segs[2].len);
    xt_live_open(&x, dir);
    xt_drive(&x, xt_until_caught_up, NULL, 5000);
    xt_offline_dir(dir, &off);
    xt_expect_same(&x.fs, &off.fs);
    assert_int_equal(x.fs.f[0].reason, xt_reason(TL_XWAL1_ERR_BAD_MAGIC));
    assert_true(x.fs.f[0].segment == 2 && x.fs.f[0].offset == 0);
    assert_int_equal(x.records, 10);
    xt_live_close(&x);
    xt_rmdir(dir);

    /* flipped bits in a payload and in a crc of a sealed segment */
    dir = tu_tmpdir("xwt-flip");
    xt_write_seg(dir, 1, l.segs[0].bytes, l.segs[0].len);
    b = malloc(l.segs[1].len);
    memcpy(b, l.segs[1].bytes, l.segs[1].len);
    b[728 + 4 + 100] ^= 0x10;
    xt_write_seg(dir, 2, b, l.segs[1].len);
    memcpy(b, l.segs[1].bytes, l.segs[1].len);
    xt_write_seg(dir, 3, l.segs[2].bytes, l.segs[2].len);
    b = realloc(b, l.segs[3].len);
    memcpy(b, l.segs[3].bytes, l.segs[3].len);
    b[l.segs[3].len - 1] ^= 0x01;
    xt_write_seg(dir, 4, b, l.segs[3].len);
    free(b);
    xt_live_open(&x, dir);
    xt_drive(&x, xt_until_caught_up, NULL, 5000);
    xt_offline_dir(dir, &off);
    xt_expect_same(&x.fs, &off.fs);
    assert_int_equal(x.fs.n, 2);
    assert_int_equal(x.fs.f[0].reason, xt_reason(TL_XWAL1_ERR_CRC_MISMATCH));
    assert_true(x.fs.f[0].segment == 2 && x.fs.f[0].offset == 728);
    assert_true(x.fs.f[1].segment == 4 && x.fs.f[1].offset == 7);
    xt_live_close(&x);
    xt_rmdir(dir);
    xt_free(&l);
}

/* A file shorter than frames already read: the bytes are gone. */
static void test_truncated_behind(void **state) {
    (void)state;
    xt_log l;
    xt_load(&l, "basic");
    char *dir = tu_tmpdir("xwt-trunc");
    xt_write_seg(dir, 1, l.segs[0].bytes, l.segs[0].len);
    static xt_live x;
    xt_live_open(&x, dir);
    size_t want = 4;
    xt_drive(&x, xt_until_records, &want, 5000);
    char path[512];
    xt_seg_path(path, sizeof path, dir, 1);
    assert_int_equal(truncate(path, 1523), 0);
    size_t one = 1;
    xt_drive(&x, xt_until_corrupt, &one, 5000);
    assert_int_equal(x.fs.f[0].reason, xt_reason(TL_XWAL1_ERR_SHORT_LENGTH));
    assert_true(x.fs.f[0].segment == 1 && x.fs.f[0].offset == l.segs[0].len);
    xt_live_close(&x);
    xt_rmdir(dir);
    xt_free(&l);
}

static void test_open_errors(void **state) {
    (void)state;
    tl_xwal1_tail_cfg c;
    xt_cfg(&c, "/nonexistent/xwal1");
    tl_xwal1_tailer *t;
    tl_wal_ioerr e;
    assert_int_equal(tl_xwal1_tail_open(&t, &c, &e), TL_WAL_ERR_NOT_FOUND);
    assert_null(t);
    assert_string_equal(e.op, "open");
    char *dir = tu_tmpdir("xwt-cfg");
    xt_cfg(&c, dir);
    c.read_bytes = 1000; /* not a multiple of 4096 */
    assert_int_equal(tl_xwal1_tail_open(&t, &c, NULL), TL_WAL_ERR_CONFIG);
    xt_cfg(&c, dir);
    c.max_symbols = 0;
    assert_int_equal(tl_xwal1_tail_open(&t, &c, NULL), TL_WAL_ERR_CONFIG);
    xt_cfg(&c, dir);
    c.read_ahead = TL_XWAL1_TAIL_MAX_READ_AHEAD + 1;
    assert_int_equal(tl_xwal1_tail_open(&t, &c, NULL), TL_WAL_ERR_CONFIG);
    xt_cfg(&c, dir);
    assert_int_equal(tl_xwal1_tail_open(&t, &c, NULL), TL_WAL_OK);
    tl_xwal1_tail_stats s;
    tl_xwal1_tail_get_stats(t, &s);
    assert_int_equal(s.state, TL_XWAL1_TAIL_ST_EMPTY);
    assert_string_equal(tl_xwal1_tail_state_name((enum tl_xwal1_tail_state)s.state), "empty");
    /* the default buffer (4 MiB + 4 x 256 KiB) is registrable */
    assert_true(s.buf_bytes <= TL_XWAL1_TAIL_REGISTER_LIMIT_BYTES);
    tl_xwal1_tail_close(t);
    tl_xwal1_tail_close(NULL);
    xt_rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catch_up_fixtures),
        cmocka_unit_test(test_large_segment),
        cmocka_unit_test(test_live_growth),
        cmocka_unit_test(test_live_growth_threaded),
        cmocka_unit_test(test_torn_heals),
        cmocka_unit_test(test_torn_then_appended),
        cmocka_unit_test(test_torn_then_newer_segment),
        cmocka_unit_test(test_zero_filled_tail),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_truncated_behind),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
