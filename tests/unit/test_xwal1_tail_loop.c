/* test_xwal1_tail_loop.c: the reconciler loop (core/loop.c) with an xwal1
 * log and no ring, fed by the io_uring tailer over real files: per-symbol
 * windows (two symbols with the same seqs are no fork), the findings of the
 * offline verifier, the symbol names reaching the symbol table, and the
 * split-brain action scoped to the affected symbol (behavior.md: HARD_HALT
 * on the affected symbols for xwal1 logs, withdrawals halted). */
#include "test_xwal1_tail_util.h"

#include "core/loop.h"

#define MAX_OUT 512u

typedef struct harness {
    tl_loop loop;
    void *mem;
    tl_xwal1_tailer *t;
    tl_out out[MAX_OUT];
    size_t n_out;
    tl_action sent[64];
    size_t n_sent;
    size_t caught_up;
    size_t records;
} harness;

static bool h_wal_poll(void *ctx, tl_wal_ev *ev) {
    harness *h = ctx;
    bool got = tl_xwal1_tail_poll(h->t, ev);
    if (got && ev->type == TL_WAL_EV_CAUGHT_UP)
        h->caught_up++;
    if (got && ev->type == TL_WAL_EV_RECORD)
        h->records++;
    return got;
}

static bool h_ctl_poll(void *ctx, tl_ctl_msg *m) {
    (void)ctx;
    (void)m;
    return false;
}

static int h_send(void *ctx, const tl_action *a, uint64_t now_real_ns) {
    (void)now_real_ns;
    harness *h = ctx;
    assert_true(h->n_sent < TL_ARRAY_LEN(h->sent));
    h->sent[h->n_sent++] = *a;
    return 0;
}

static bool h_reply_poll(void *ctx, tl_cmd_reply *r) {
    (void)ctx;
    (void)r;
    return false;
}

static void h_fast_mode(void *ctx, uint32_t scope, uint8_t mode) {
    (void)ctx;
    (void)scope;
    (void)mode;
}

static void h_fast_withdrawals(void *ctx, bool on) {
    (void)ctx;
    (void)on;
}

static bool h_emit(void *ctx, const tl_out *o) {
    harness *h = ctx;
    if (o->type == TL_OUT_STATS)
        return true;
    assert_true(h->n_out < MAX_OUT);
    h->out[h->n_out++] = *o;
    return true;
}

static void h_open(harness *h, const char *dir) {
    memset(h, 0, sizeof *h);
    tl_loop_cfg c;
    tl_loop_cfg_defaults(&c);
    c.dialect = TL_DIALECT_XWAL1;
    c.ring = false;
    c.max_symbols = 16;
    c.xwal1_symbols = XT_SYMBOLS;
    c.xwal1_window_records = XT_WINDOW;
    c.id_seed = 7;
    size_t bytes = tl_loop_mem_bytes(&c);
    h->mem = tu_aligned(64, bytes);
    tl_loop_ops ops = {
        .ctx = h,
        .wal_poll = h_wal_poll,
        .ctl_poll = h_ctl_poll,
        .send = h_send,
        .reply_poll = h_reply_poll,
        .fast_mode = h_fast_mode,
        .fast_withdrawals = h_fast_withdrawals,
        .emit = h_emit,
    };
    tl_loop_init(&h->loop, &c, &ops, h->mem);
    tl_xwal1_tail_cfg tc;
    xt_cfg(&tc, dir);
    assert_int_equal(tl_xwal1_tail_open(&h->t, &tc, NULL), TL_WAL_OK);
}

static void h_close(harness *h) {
    tl_xwal1_tail_close(h->t);
    free(h->mem);
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Steps the loop until the tailer has caught up after `records` records. */
static void h_run(harness *h, size_t records) {
    uint64_t end = xt_now_ms() + 10000;
    size_t seen = h->caught_up;
    while (!(h->records >= records && h->caught_up > seen)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t real = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        if (tl_loop_step(&h->loop, mono_ns(), real) == 0)
            xt_sleep_us(50);
        if (xt_now_ms() > end)
            fail_msg("timed out: %zu records", h->records);
    }
}

static size_t h_findings(const harness *h, xt_findings *fs) {
    memset(fs, 0, sizeof *fs);
    for (size_t i = 0; i < h->n_out; i++) {
        if (h->out[i].type != TL_OUT_FINDING)
            continue;
        tl_finding f = h->out[i].u.finding;
        f.detect_ns = 0;
        f.incident = 0;
        fs->f[fs->n++] = f;
        fs->next_id = f.id;
    }
    return fs->n;
}

/* Renumbers as a fresh count, so ids compare with the verifier's. */
static void h_expect_offline(const harness *h, const char *dir) {
    static xt_findings live;
    h_findings(h, &live);
    static xt_offline off;
    xt_offline_dir(dir, &off);
    xt_expect_same(&live, &off.fs);
}

static const tl_out *h_first(const harness *h, uint8_t type) {
    for (size_t i = 0; i < h->n_out; i++) {
        if (h->out[i].type == type)
            return &h->out[i];
    }
    return NULL;
}

/* stale_leader: FORK and FENCE_REGRESSION on records 8 and 9 of BTC-KRW;
 * one HARD_HALT on BTC-KRW (not `*`) and withdrawals halted, the later
 * findings joining the action in flight. */
static void test_stale_leader_halts_the_symbol(void **state) {
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_shared("fixtures/quanta-xwal1/stale_leader/wal"));
    static harness h;
    h_open(&h, dir);
    h_run(&h, 6);
    h_expect_offline(&h, dir);
    static xt_findings fs;
    assert_int_equal(h_findings(&h, &fs), 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(fs.f[i].symbol, 1);
        assert_int_equal(fs.f[i].dialect, TL_DIALECT_XWAL1);
    }
    /* the name reached the symbol table and the control thread first */
    const tl_out *sym = h_first(&h, TL_OUT_SYMBOL);
    assert_non_null(sym);
    assert_true(sym < h_first(&h, TL_OUT_FINDING));
    assert_int_equal(sym->u.symbol.id, 1);
    assert_string_equal(sym->u.symbol.name, "BTC-KRW");
    const tl_sym *s = tl_symtab_find(&h.loop.syms, 1);
    assert_true(s != NULL && s->has_name);
    assert_string_equal(s->name, "BTC-KRW");
    /* the actions */
    assert_int_equal(h.n_sent, 2);
    assert_int_equal(h.sent[0].cmd, TL_CMD_SET_SYMBOL_MODE);
    assert_int_equal(h.sent[0].mode, TL_MODE_HARD_HALT);
    assert_int_equal(h.sent[0].symbol, 1);
    assert_string_equal(h.sent[0].symbol_name, "BTC-KRW");
    assert_int_equal(h.sent[0].check, TL_CHECK_FORK);
    assert_true(h.sent[0].seq == 8);
    assert_true(h.sent[0].fence == 2); /* the token in force */
    assert_int_equal(h.sent[1].cmd, TL_CMD_WITHDRAWALS_HALT);
    assert_string_equal(h.sent[1].symbol_name, "*");
    assert_true(h.loop.c.actions_coalesced >= 3);
    /* gauges: per symbol, the highest */
    assert_true(tl_loop_fence(&h.loop) == 2);
    assert_true(tl_loop_last_delivered(&h.loop) == 14);
    assert_true(h.loop.c.records_wal == 6);
    h_close(&h);
}

/* basic, written live: no finding, and the modes of its records reach the
 * symbol table (CANCEL_ONLY ... back to NORMAL) as MODE_SEEN events. */
static void test_basic_live_modes(void **state) {
    (void)state;
    xt_log l;
    xt_load(&l, "basic");
    char *dir = tu_tmpdir("xwtl-basic");
    static harness h;
    h_open(&h, dir);
    size_t n = 0;
    for (size_t s = 0; s < l.n; s++) {
        xt_append(dir, l.segs[s].index, l.segs[s].bytes, TL_XWAL1_MAGIC_BYTES);
        for (size_t k = 0; k < l.segs[s].n_frames; k++) {
            xt_append(dir, l.segs[s].index, l.segs[s].bytes + l.segs[s].off[k], l.segs[s].flen[k]);
            h_run(&h, ++n);
        }
    }
    h_expect_offline(&h, dir);
    assert_int_equal(h.loop.c.findings[TL_CHECK_WAL_CORRUPT], 0);
    assert_int_equal(h.n_sent, 0);
    size_t modes = 0;
    uint8_t seen[4] = {0}, last = 0;
    for (size_t i = 0; i < h.n_out; i++) {
        if (h.out[i].type != TL_OUT_MODE_SEEN)
            continue;
        const tl_mode_seen *m = &h.out[i].u.mode;
        assert_int_equal(m->scope, 1);
        assert_false(m->ours);
        assert_false(m->matched);
        assert_true(m->mode < 4);
        seen[m->mode] = 1;
        last = m->mode;
        modes++;
    }
    assert_true(modes >= 4);
    for (int m = 0; m < 4; m++)
        assert_true(seen[m]); /* all four symbol modes */
    assert_int_equal(tl_symtab_mode(&h.loop.syms, 1), last);
    h_close(&h);
    xt_rmdir(dir);
    xt_free(&l);
}

/* Two symbols whose seqs coincide: one window per symbol, no false FORK.
 * Then ETH-KRW forks at its own record 14: the HARD_HALT names ETH-KRW. */
static void test_two_symbols_scoped(void **state) {
    (void)state;
    xt_log l, eth;
    xt_load(&l, "basic");
    xt_load(&eth, "basic");
    for (size_t s = 0; s < eth.n; s++)
        xt_rename(&eth.segs[s], "BTC-KRW", "ETH-KRW");
    char *dir = tu_tmpdir("xwtl-two");
    for (size_t s = 0; s < 4; s++) {
        xt_write_seg(dir, 2 * s + 1, l.segs[s].bytes, l.segs[s].len);
        xt_write_seg(dir, 2 * s + 2, eth.segs[s].bytes, eth.segs[s].len);
    }
    static harness h;
    h_open(&h, dir);
    h_run(&h, 30);
    h_expect_offline(&h, dir);
    static xt_findings fs;
    assert_int_equal(h_findings(&h, &fs), 0);
    assert_string_equal(tl_symtab_find(&h.loop.syms, 2)->name, "ETH-KRW");

    /* ETH's first segment again, its last record changed: a fork on ETH */
    xt_seg *g = &eth.segs[0];
    uint8_t *b = malloc(g->len);
    memcpy(b, g->bytes, g->len);
    size_t o = g->off[g->n_frames - 1];
    uint32_t len = (uint32_t)(g->flen[g->n_frames - 1] - 8);
    char *c1 = memmem(b + o + 4, len, "\"command_id\":\"c4\"", 17);
    assert_non_null(c1);
    c1[15] = 'X';
    uint32_t c = (uint32_t)crc32(0, b + o + 4, len);
    memcpy(b + o + 4 + len, &c, 4);
    xt_write_seg(dir, 9, b, g->len);
    free(b);
    h_run(&h, 34);
    h_expect_offline(&h, dir);
    h_findings(&h, &fs);
    size_t forks = 0;
    for (size_t i = 0; i < fs.n; i++) {
        assert_int_equal(fs.f[i].symbol, 2);
        forks += fs.f[i].check == TL_CHECK_FORK;
    }
    assert_int_equal(forks, 1);
    assert_int_equal(h.n_sent, 2);
    assert_int_equal(h.sent[0].mode, TL_MODE_HARD_HALT);
    assert_string_equal(h.sent[0].symbol_name, "ETH-KRW");
    assert_int_equal(h.sent[1].cmd, TL_CMD_WITHDRAWALS_HALT);
    h_close(&h);
    xt_rmdir(dir);
    xt_free(&l);
    xt_free(&eth);
}

/* A torn tail that the writer grows past without completing: the loop
 * reports WAL_CORRUPT torn_stalled (log integrity: CANCEL_ONLY on `*`). */
static void test_torn_stalled_through_the_loop(void **state) {
    (void)state;
    xt_log l;
    xt_load(&l, "basic");
    char *dir = tu_tmpdir("xwtl-torn");
    for (size_t s = 0; s < 3; s++)
        xt_write_seg(dir, l.segs[s].index, l.segs[s].bytes, l.segs[s].len);
    xt_append(dir, 4, l.segs[3].bytes, TL_XWAL1_MAGIC_BYTES + 4 + 300);
    static harness h;
    h_open(&h, dir);
    h_run(&h, 14);
    assert_true(h.loop.tentative);
    assert_true(h.loop.tentative_loc.segment == 4 && h.loop.tentative_loc.offset == 7);
    xt_append(dir, 4, l.segs[2].bytes + 2634, 200);
    uint64_t end = xt_now_ms() + 5000;
    while (h.loop.c.findings[TL_CHECK_WAL_CORRUPT] == 0) {
        if (tl_loop_step(&h.loop, mono_ns(), 0) == 0)
            xt_sleep_us(50);
        assert_true(xt_now_ms() < end);
    }
    static xt_findings fs;
    assert_int_equal(h_findings(&h, &fs), 1);
    assert_int_equal(fs.f[0].reason, TL_REASON_TORN_STALLED);
    assert_true(fs.f[0].segment == 4 && fs.f[0].offset == 7);
    assert_int_equal(h.n_sent, 1);
    assert_int_equal(h.sent[0].mode, TL_MODE_CANCEL_ONLY);
    assert_string_equal(h.sent[0].symbol_name, "*");
    h_close(&h);
    xt_rmdir(dir);
    xt_free(&l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_leader_halts_the_symbol),
        cmocka_unit_test(test_basic_live_modes),
        cmocka_unit_test(test_two_symbols_scoped),
        cmocka_unit_test(test_torn_stalled_through_the_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
