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
    /* what the control thread and the engine's admin socket hand the loop */
    tl_ctl_msg ctl[8];
    size_t n_ctl, ctl_head;
    tl_cmd_reply replies[64];
    size_t n_replies, reply_head;
    bool ack_sends; /* every send is answered ok */
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
    harness *h = ctx;
    if (h->ctl_head == h->n_ctl)
        return false;
    *m = h->ctl[h->ctl_head++];
    return true;
}

static int h_send(void *ctx, const tl_action *a, uint64_t now_real_ns) {
    (void)now_real_ns;
    harness *h = ctx;
    assert_true(h->n_sent < TL_ARRAY_LEN(h->sent));
    h->sent[h->n_sent++] = *a;
    if (h->ack_sends) {
        assert_true(h->n_replies < TL_ARRAY_LEN(h->replies));
        tl_cmd_reply *r = &h->replies[h->n_replies++];
        memset(r, 0, sizeof *r);
        memcpy(r->id, a->id, TL_ID_BYTES);
        r->ok = true;
    }
    return 0;
}

static bool h_reply_poll(void *ctx, tl_cmd_reply *r) {
    harness *h = ctx;
    if (h->reply_head == h->n_replies)
        return false;
    *r = h->replies[h->reply_head++];
    return true;
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

/* The action events the loop sent out, by state. */
static size_t h_actions(const harness *h, uint8_t state, const tl_action **last) {
    size_t n = 0;
    for (size_t i = 0; i < h->n_out; i++) {
        if (h->out[i].type != TL_OUT_ACTION || h->out[i].u.action.state != state)
            continue;
        n++;
        if (last != NULL)
            *last = &h->out[i].u.action;
    }
    return n;
}

/* A manual HARD_HALT of BTC-KRW, as POST /actions/mode hands it over. */
static void h_ctl_hard_halt(harness *h) {
    assert_true(h->n_ctl < TL_ARRAY_LEN(h->ctl));
    tl_ctl_msg *m = &h->ctl[h->n_ctl++];
    memset(m, 0, sizeof *m);
    m->type = TL_CTL_MODE;
    m->act.id[0] = 0x5a;
    m->act.id[15] = (uint8_t)h->n_ctl;
    m->act.cmd = TL_CMD_SET_SYMBOL_MODE;
    m->act.key = TL_KEY_SIDECAR;
    m->act.mode = TL_MODE_HARD_HALT;
    m->act.from_mode = TL_FROM_MODE_NONE;
    m->act.origin = TL_ORIGIN_MANUAL;
    m->act.severity = TL_SEV_SEV1;
    strcpy(m->act.symbol_name, "BTC-KRW");
}

/* Steps until cond(h) holds, within 5 s. */
static void h_until(harness *h, bool (*cond)(const harness *)) {
    uint64_t end = xt_now_ms() + 5000;
    while (!cond(h)) {
        if (tl_loop_step(&h->loop, mono_ns(), 1) == 0)
            xt_sleep_us(50);
        if (xt_now_ms() > end)
            fail_msg("timed out: %zu sent, %u in flight", h->n_sent, h->loop.inflight_count);
    }
}

static bool h_acked(const harness *h) {
    return h->n_sent >= 1 && h->reply_head == h->n_replies && h->loop.inflight_count == 1 &&
           h->loop.inflight[0].acked;
}

static bool h_none_in_flight(const harness *h) {
    return h->loop.inflight_count == 0;
}

/* A restart reads the retained log again (no saved position): the findings
 * the audit shows decided are reported again, the same, but no action goes
 * out again for them (core/decided.h). A new fault afterwards is acted on. */
static void test_restart_does_not_act_again(void **state) {
    (void)state;
    xt_log l;
    xt_load(&l, "stale_leader");
    char *dir = tu_tmpdir("xwtl-restart");
    xt_write_seg(dir, 1, l.segs[0].bytes, l.segs[0].len);
    static harness h;
    h_open(&h, dir);
    h_run(&h, 6);
    static xt_findings first;
    size_t n = h_findings(&h, &first);
    assert_int_equal(n, 4);
    assert_int_equal(h.n_sent, 2);
    h_close(&h);

    /* the restart: the audit's FINDING lines, as admin/audit.c reads them */
    h_open(&h, dir);
    for (size_t i = 0; i < n; i++) {
        tl_decided_key k = tl_decided_key_of(&first.f[i]);
        tl_loop_decided_add(&h.loop, &k);
    }
    h_run(&h, 6);
    h_expect_offline(&h, dir);
    static xt_findings again;
    assert_int_equal(h_findings(&h, &again), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(again.f[i].check, first.f[i].check);
        assert_true(again.f[i].seq == first.f[i].seq && again.f[i].offset == first.f[i].offset);
    }
    assert_int_equal(h.n_sent, 0);
    assert_int_equal(h.loop.inflight_count, 0);
    assert_int_equal(h_actions(&h, TL_ACT_PLANNED, NULL), 0);
    assert_true(h.loop.c.findings_decided_before >= 1);

    /* segment 1 again as segment 2, record 14 with another command id: new
     * findings (a fork of 14 among them), acted on */
    xt_seg *g = &l.segs[0];
    uint8_t *b = malloc(g->len);
    memcpy(b, g->bytes, g->len);
    size_t o = g->off[g->n_frames - 1];
    uint32_t len = (uint32_t)(g->flen[g->n_frames - 1] - 8);
    char *c1 = memmem(b + o + 4, len, "\"command_id\":\"B-c2\"", 19);
    assert_non_null(c1);
    c1[16] = 'X';
    uint32_t c = (uint32_t)crc32(0, b + o + 4, len);
    memcpy(b + o + 4 + len, &c, 4);
    xt_write_seg(dir, 2, b, g->len);
    free(b);
    h_run(&h, 12);
    assert_true(h.n_sent >= 1);
    assert_int_equal(h.sent[0].cmd, TL_CMD_SET_SYMBOL_MODE);
    assert_int_equal(h.sent[0].mode, TL_MODE_HARD_HALT);
    assert_string_equal(h.sent[0].symbol_name, "BTC-KRW");
    /* its finding is a new one: segment 2, which the first run never read */
    bool fork = false;
    h_findings(&h, &again);
    for (size_t i = n; i < again.n; i++) {
        assert_true(again.f[i].segment == 2);
        fork |= again.f[i].check == TL_CHECK_FORK; /* at an event seq of record 14 */
    }
    assert_true(fork);
    h_close(&h);
    xt_rmdir(dir);
    xt_free(&l);
}

/* xwal1 carries no command id: an action in flight is APPLIED when the log
 * shows the symbol_mode it asked for on its symbol (basic's record 31 is
 * HardHalt). */
static void test_mode_in_log_applies_the_action(void **state) {
    (void)state;
    xt_log l;
    xt_load(&l, "basic");
    char *dir = tu_tmpdir("xwtl-applied");
    static harness h;
    h_open(&h, dir);
    h.ack_sends = true;
    size_t n = 0;
    for (size_t s = 0; s < l.n; s++) {
        xt_append(dir, l.segs[s].index, l.segs[s].bytes, TL_XWAL1_MAGIC_BYTES);
        for (size_t k = 0; k < l.segs[s].n_frames; k++) {
            if (n == 11) {
                /* SoftHalt so far; the HardHalt record is next */
                h_ctl_hard_halt(&h);
                h_until(&h, h_acked);
                assert_int_equal(h_actions(&h, TL_ACT_APPLIED, NULL), 0);
            }
            xt_append(dir, l.segs[s].index, l.segs[s].bytes + l.segs[s].off[k], l.segs[s].flen[k]);
            h_run(&h, ++n);
        }
    }
    const tl_action *a = NULL;
    assert_int_equal(h_actions(&h, TL_ACT_APPLIED, &a), 1);
    assert_true(a->applied_seq == 31);
    assert_int_equal(a->mode, TL_MODE_HARD_HALT);
    assert_int_equal(h.loop.inflight_count, 0);
    assert_true(h.loop.c.actions_applied == 1);
    assert_int_equal(h_actions(&h, TL_ACT_FAILED, NULL), 0);
    /* the MODE_SEEN of record 31 says it matched an action */
    size_t matched = 0;
    for (size_t i = 0; i < h.n_out; i++)
        matched += h.out[i].type == TL_OUT_MODE_SEEN && h.out[i].u.mode.matched;
    assert_int_equal(matched, 1);
    h_close(&h);
    xt_rmdir(dir);
    xt_free(&l);
}

/* An accepted action the log never shows applied is FAILED never_applied
 * after xwal1_max_sends sends, not re-sent forever; an unanswered one is
 * still retried (it may never have arrived). */
static void test_never_applied_is_failed_after_a_bound(void **state) {
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_shared("fixtures/quanta-xwal1/basic/wal"));
    static harness h;
    h_open(&h, dir);
    h_run(&h, 15); /* the log ends in Normal */
    h.loop.cfg.apply_timeout_ms = 1;
    h.loop.cfg.retry_max_ms = 1;

    /* unanswered: retried past the bound */
    h_ctl_hard_halt(&h);
    uint64_t end = xt_now_ms() + 5000;
    while (h.n_sent < 3u * h.loop.cfg.xwal1_max_sends) {
        if (tl_loop_step(&h.loop, mono_ns(), 1) == 0)
            xt_sleep_us(50);
        assert_true(xt_now_ms() < end);
    }
    assert_int_equal(h.loop.inflight_count, 1);
    assert_int_equal(h_actions(&h, TL_ACT_FAILED, NULL), 0);

    /* answered from now on: FAILED once the bound is reached */
    h.ack_sends = true;
    size_t before = h.n_sent;
    h_until(&h, h_none_in_flight);
    assert_true(h.n_sent - before <= 1); /* the next send is acked, then it fails */
    const tl_action *a = NULL;
    assert_int_equal(h_actions(&h, TL_ACT_FAILED, &a), 1);
    assert_int_equal(a->error, TL_LOOP_ERR_NEVER_APPLIED);
    assert_true(a->sends >= h.loop.cfg.xwal1_max_sends);
    assert_true(h.loop.c.actions_never_applied == 1);
    assert_int_equal(h_actions(&h, TL_ACT_APPLIED, NULL), 0);

    /* a fresh one, acked from the start: exactly xwal1_max_sends sends */
    h_ctl_hard_halt(&h);
    before = h.n_sent;
    h_until(&h, h_acked);
    h_until(&h, h_none_in_flight);
    assert_int_equal(h.n_sent - before, h.loop.cfg.xwal1_max_sends);
    assert_int_equal(h_actions(&h, TL_ACT_FAILED, NULL), 2);
    h_close(&h);
}

/* A withdrawals halt never shows in an xwal1 log (it records symbol modes
 * only): accepted by the engine, it is APPLIED at once. The HARD_HALT the
 * same fork asks for waits for its symbol_mode in the log. */
static void test_accepted_withdrawals_halt_is_applied(void **state) {
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", tu_shared("fixtures/quanta-xwal1/stale_leader/wal"));
    static harness h;
    h_open(&h, dir);
    h.ack_sends = true;
    h_run(&h, 6);
    uint64_t end = xt_now_ms() + 5000;
    while (h_actions(&h, TL_ACT_APPLIED, NULL) == 0) {
        if (tl_loop_step(&h.loop, mono_ns(), 1) == 0)
            xt_sleep_us(50);
        assert_true(xt_now_ms() < end);
    }
    const tl_action *a = NULL;
    assert_int_equal(h_actions(&h, TL_ACT_APPLIED, &a), 1);
    assert_int_equal(a->cmd, TL_CMD_WITHDRAWALS_HALT);
    assert_int_equal(h.loop.inflight_count, 1); /* the HARD_HALT, acked, not applied */
    assert_int_equal(h.loop.inflight[0].cmd, TL_CMD_SET_SYMBOL_MODE);
    assert_true(h.loop.inflight[0].acked);
    h_close(&h);
}

/* Through the loop, not a copy of its dispatch: a missing segment is
 * SEGMENT_GAP at the segment read, as offline (core/loop.c calls
 * tl_xwal1_checks_segment for each segment the tailer opens). */
static void test_missing_segment_through_the_loop(void **state) {
    (void)state;
    xt_log l;
    xt_load(&l, "basic");
    char *dir = tu_tmpdir("xwtl-gap");
    size_t records = 0;
    for (size_t s = 0; s < l.n; s++) {
        if (l.segs[s].index == 2)
            continue;
        xt_write_seg(dir, l.segs[s].index, l.segs[s].bytes, l.segs[s].len);
        records += l.segs[s].n_frames;
    }
    static harness h;
    h_open(&h, dir);
    h_run(&h, records);
    h_expect_offline(&h, dir);
    static xt_findings fs;
    h_findings(&h, &fs);
    size_t gaps = 0;
    for (size_t i = 0; i < fs.n; i++) {
        if (fs.f[i].check != TL_CHECK_SEGMENT_GAP)
            continue;
        gaps++;
        assert_true(fs.f[i].segment == 3 && fs.f[i].seq2 == 2);
    }
    assert_int_equal(gaps, 1);
    h_close(&h);
    xt_rmdir(dir);
    xt_free(&l);
}

/* Steps the loop for ms milliseconds of real time. */
static void h_idle(harness *h, uint64_t ms) {
    uint64_t end = xt_now_ms() + ms;
    while (xt_now_ms() < end) {
        if (tl_loop_step(&h->loop, mono_ns(), 1) == 0)
            xt_sleep_us(200);
    }
}

/* While the newest segment grows, the tailer probes the next name but does
 * not list the directory (readdir on the hot thread, every 100 ms before);
 * once the file has stayed unchanged for list_quiet_ns, it lists again (a
 * writer that skipped an index stops writing here). */
static void test_no_listing_while_the_file_grows(void **state) {
    (void)state;
    xt_log l;
    xt_load(&l, "default_8MiB");
    assert_int_equal(l.n, 1);
    char *dir = tu_tmpdir("xwtl-quiet");
    xt_append(dir, 1, l.segs[0].bytes, TL_XWAL1_MAGIC_BYTES);
    static harness h;
    h_open(&h, dir);
    xt_append(dir, 1, l.segs[0].bytes + l.segs[0].off[0], l.segs[0].flen[0]);
    h_run(&h, 1);
    tl_xwal1_tail_stats st;
    tl_xwal1_tail_get_stats(h.t, &st);
    uint64_t scans = st.dir_scans_total;
    /* 1.4 s of growth, a frame every 100 ms: longer than list_quiet_ns */
    for (size_t k = 1; k < l.segs[0].n_frames; k++) {
        h_idle(&h, 100);
        xt_append(dir, 1, l.segs[0].bytes + l.segs[0].off[k], l.segs[0].flen[k]);
        h_run(&h, k + 1);
    }
    tl_xwal1_tail_get_stats(h.t, &st);
    assert_true(st.dir_scans_total == scans);
    assert_true(st.probes_total > 10); /* the next name was looked for */
    /* quiet: listings again */
    h_idle(&h, 1500);
    tl_xwal1_tail_get_stats(h.t, &st);
    assert_true(st.dir_scans_total > scans);
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
        cmocka_unit_test(test_restart_does_not_act_again),
        cmocka_unit_test(test_mode_in_log_applies_the_action),
        cmocka_unit_test(test_never_applied_is_failed_after_a_bound),
        cmocka_unit_test(test_accepted_withdrawals_halt_is_applied),
        cmocka_unit_test(test_missing_segment_through_the_loop),
        cmocka_unit_test(test_no_listing_while_the_file_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
