/* test_ledger.c: the settlement ledger checker of core/ledger.h.
 *
 * A harness puts records straight into a window (as the streams do), keeps
 * the truth of the log (every record's kind, symbol, figures), and builds
 * watermarks from it: a correct ledger's reply, or one with a fault. Each
 * check of ledger.md is driven positive and negative; then holds, the
 * window's floor, staleness, SETTLEMENT_LAG with confirmations, anchoring at
 * a CHECKPOINT, gaps, FIFO overflow and the wrapping arithmetic. The shared
 * vector's watermarks are checked in test_ledger_vectors.c, the reply parser
 * in test_ledger_parse.c.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ledger.h"

#define MAXREC 8192
#define MAXF   128
#define T0     1795000000000000000ull /* the spec's example clock */
#define MS     1000000ull

typedef struct truth {
    uint16_t kind;
    uint32_t symbol;
    uint64_t qty, notional, checksum, ts;
} truth;

typedef struct h {
    tl_log log;
    void *win_mem;
    void *mem;
    tl_ledger g;
    tl_ledger_cfg cfg;
    tl_finding f[MAXF];
    int nf;
    truth t[MAXREC];
    uint64_t next_seq; /* next seq to make */
    uint64_t durable;
    uint64_t now_mono;
    uint64_t now_real;
    uint64_t poll_id;
    tl_ledger_figs ckpt_base; /* the totals a CHECKPOINT carries start here */
} h;

static void sink(void *ctx, const tl_finding *f) {
    h *x = ctx;
    assert_true(x->nf < MAXF);
    x->f[x->nf++] = *f;
}

static h *h_new(uint64_t window, void (*tweak)(tl_ledger_cfg *)) {
    h *x = calloc(1, sizeof *x);
    assert_non_null(x);
    x->win_mem = tu_aligned(64, tl_window_bytes(window));
    tl_log_init(&x->log, TL_DIALECT_TLYWAL1, x->win_mem, window, (tl_sink){sink, x});
    tl_ledger_cfg_defaults(&x->cfg);
    x->cfg.enabled = true;
    x->cfg.fifo_trades = 1024;
    x->cfg.lag_throttle_ms = 2000;
    x->cfg.lag_halt_ms = 10000;
    if (tweak != NULL)
        tweak(&x->cfg);
    size_t bytes = tl_ledger_mem_bytes(&x->cfg);
    x->mem = tu_aligned(64, bytes);
    tl_ledger_init(&x->g, &x->cfg, &x->log, x->mem);
    x->next_seq = 1;
    x->now_mono = 1000 * MS;
    x->now_real = T0;
    return x;
}

static void h_free(h *x) {
    free(x->win_mem);
    free(x->mem);
    free(x);
}

/* The engine makes a record at the current real time; the window gets it. */
static uint64_t h_rec(h *x, uint16_t kind, uint32_t symbol, uint64_t qty, uint64_t price) {
    uint64_t seq = x->next_seq++;
    assert_true(seq < MAXREC);
    truth *t = &x->t[seq];
    t->kind = kind;
    t->symbol = symbol;
    t->qty = kind == TL_KIND_TRADE ? qty : 0;
    t->notional = kind == TL_KIND_TRADE ? price * qty : 0; /* wrapping, as ledger.md */
    t->checksum = 0x9e3779b97f4a7c15ull * seq + 1;
    t->ts = x->now_real;
    tl_win_entry *e = tl_window_put(&x->log.win, seq);
    assert_non_null(e);
    e->checksum = t->checksum;
    e->ts_ns = t->ts;
    e->kind = kind;
    e->symbol = symbol;
    e->qty = t->qty;
    e->notional = t->notional;
    e->srcs = TL_WIN_SRC_WAL;
    if (seq == 1 || x->g.started == false)
        tl_ledger_wal_record(&x->g, seq);
    return seq;
}

static uint64_t h_trade(h *x, uint32_t symbol, uint64_t qty, uint64_t price) {
    return h_rec(x, TL_KIND_TRADE, symbol, qty, price);
}

/* Totals over seq 1..s (what a correct ledger posted). */
static tl_ledger_figs truth_total(h *x, uint64_t s) {
    tl_ledger_figs f = x->ckpt_base;
    for (uint64_t q = 1; q <= s; q++)
        if (x->t[q].kind == TL_KIND_TRADE)
            tl_ledger_figs_add_trade(&f, x->t[q].qty, x->t[q].notional);
    return f;
}

/* A CHECKPOINT carrying the running totals after it. */
static uint64_t h_ckpt(h *x) {
    uint64_t seq = h_rec(x, TL_KIND_CHECKPOINT, 0, 0, 0);
    tl_ledger_figs f = truth_total(x, seq);
    tl_body_checkpoint b;
    memset(&b, 0, sizeof b);
    b.trades_total = f.trades;
    b.qty_total = f.qty;
    b.notional_total = f.notional;
    tl_rec_view v;
    memset(&v, 0, sizeof v);
    v.seq = seq;
    v.checksum = x->t[seq].checksum;
    v.kind = TL_KIND_CHECKPOINT;
    v.body = (const uint8_t *)&b;
    v.body_len = sizeof b;
    tl_ledger_checkpoint(&x->g, &v);
    return seq;
}

static void h_durable(h *x, uint64_t seq) {
    x->durable = seq;
    /* Bounded: the budget is large; loop until the fold stops moving. */
    for (int i = 0; i < 1000 && tl_ledger_fold(&x->g, x->durable, x->durable) > 0; i++)
        ;
}

static void h_time(h *x, uint64_t ms) {
    x->now_mono += ms * MS;
    x->now_real += ms * MS;
}

/* A correct reply at ledger_seq s, made and received now. */
static tl_ledger_wm *wm_at(h *x, uint64_t s) {
    tl_ledger_wm *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->poll_id = ++x->poll_id;
    w->recv_mono_ns = x->now_mono;
    w->recv_real_ns = x->now_real;
    w->ts_ns = x->now_real;
    w->ledger_seq = s;
    w->checksum = s != 0 ? x->t[s].checksum : 0;
    w->total = truth_total(x, s);
    for (uint64_t q = 1; q <= s; q++) {
        if (x->t[q].kind != TL_KIND_TRADE)
            continue;
        uint32_t k = 0;
        while (k < w->symbol_count && w->symbols[k].symbol != x->t[q].symbol)
            k++;
        if (k == w->symbol_count) {
            w->symbols[k].symbol = x->t[q].symbol;
            w->symbol_count++;
        }
        tl_ledger_figs_add_trade(&w->symbols[k].f, x->t[q].qty, x->t[q].notional);
    }
    return w;
}

static tl_ledger_symfigs *wm_sym(tl_ledger_wm *w, uint32_t symbol) {
    for (uint32_t k = 0; k < w->symbol_count; k++)
        if (w->symbols[k].symbol == symbol)
            return &w->symbols[k];
    fail_msg("symbol %u not in the reply", symbol);
    return NULL;
}

/* Offers the reply as the loop does: a durable read made now. */
static bool offer(h *x, tl_ledger_wm *w) {
    bool taken = tl_ledger_reply(&x->g, w, x->now_mono, x->now_real, x->durable, x->now_mono);
    tl_ledger_tick(&x->g, x->now_mono);
    return taken;
}

static void offer_free(h *x, tl_ledger_wm *w) {
    assert_true(offer(x, w));
    free(w);
}

static int count(h *x, enum tl_check c) {
    int n = 0;
    for (int i = 0; i < x->nf; i++)
        n += x->f[i].check == c;
    return n;
}

static const tl_finding *find(h *x, enum tl_check c) {
    for (int i = 0; i < x->nf; i++)
        if (x->f[i].check == c)
            return &x->f[i];
    fail_msg("no %s finding", tl_check_name(c));
    return NULL;
}

/* A little market: trades on symbols 1..3 among orders and heartbeats. */
static void market(h *x, int n) {
    for (int i = 0; i < n; i++) {
        switch (i % 5) {
            case 0:
                h_trade(x, 1 + (uint32_t)(i % 3), 1 + (uint64_t)(i % 7), 100 + (uint64_t)i);
                break;
            case 1:
                h_rec(x, TL_KIND_ORDER_NEW, 1 + (uint32_t)(i % 3), 0, 0);
                break;
            case 2:
                h_trade(x, 1 + (uint32_t)((i + 1) % 3), 2, 250);
                break;
            default:
                h_rec(x, TL_KIND_HEARTBEAT, 0, 0, 0);
                break;
        }
    }
}

/* ---- a correct ledger ---- */

static void test_clean(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    tl_ledger_tick(&x->g, x->now_mono);
    for (int round = 0; round < 50; round++) {
        market(x, 37);
        h_durable(x, x->next_seq - 1);
        h_time(x, 20);
        /* the ledger trails by a few records */
        uint64_t s = x->durable > 10 ? x->durable - (uint64_t)(round % 10) : x->durable;
        offer_free(x, wm_at(x, s));
    }
    assert_int_equal(x->nf, 0);
    tl_ledger_stats st;
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.compared_total, 50);
    assert_int_equal(st.anchored, 1);
    assert_int_equal(st.ledger_seq, x->durable - 9);
    assert_int_equal(st.lag_records, 9);
    h_free(x);
}

/* ---- 1. ahead ---- */

static void slack2(tl_ledger_cfg *c) {
    c->ahead_slack = 2;
}

static void test_ahead(void **state) {
    (void)state;
    h *x = h_new(4096, slack2);
    market(x, 40);
    h_durable(x, 30);
    /* durable + slack is allowed: held until read, then compared */
    tl_ledger_wm *w = wm_at(x, 32);
    assert_false(offer(x, w));
    assert_int_equal(x->nf, 0);
    h_durable(x, 32);
    assert_true(offer(x, w));
    free(w);
    assert_int_equal(x->nf, 0);
    /* beyond it: LEDGER_AHEAD, scope `*`, once per episode */
    offer_free(x, wm_at(x, 35));
    assert_int_equal(count(x, TL_CHECK_LEDGER_AHEAD), 1);
    const tl_finding *f = find(x, TL_CHECK_LEDGER_AHEAD);
    assert_int_equal(f->seq, 35);
    assert_int_equal(f->seq2, 32);
    assert_int_equal(f->symbol, 0);
    assert_int_equal(f->severity, TL_SEV_SEV1);
    assert_int_equal(f->source, TL_SOURCE_LEDGER);
    offer_free(x, wm_at(x, 36));
    assert_int_equal(count(x, TL_CHECK_LEDGER_AHEAD), 1);
    h_free(x);
}

static void test_ahead_needs_durable(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 20);
    /* durable 0 means none yet: never ahead; the reply waits */
    tl_ledger_wm *w = wm_at(x, 15);
    assert_false(offer(x, w));
    assert_int_equal(x->nf, 0);
    /* a durable read older than the reply: held, not judged */
    h_durable(x, 10);
    assert_false(tl_ledger_reply(&x->g, w, x->now_mono, x->now_real, 10, x->now_mono - 1));
    assert_int_equal(x->nf, 0);
    /* judged against the first read after it arrived: ahead */
    assert_true(tl_ledger_reply(&x->g, w, x->now_mono, x->now_real, 10, x->now_mono));
    assert_int_equal(count(x, TL_CHECK_LEDGER_AHEAD), 1);
    free(w);
    h_free(x);
}

/* ---- hold ---- */

static void test_hold_until_read(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 30);
    h_durable(x, 20); /* tally has read to 20; the engine is durable to 20 */
    tl_ledger_wm *w = wm_at(x, 20);
    offer_free(x, w);
    /* The engine says 30 is durable, but tally's window lacks 25..30 yet. */
    x->next_seq = 25; /* pretend 25.. are not delivered */
    memset(&x->t[25], 0, sizeof x->t[25] * 6);
    for (uint64_t q = 25; q <= 30; q++) {
        tl_win_entry *e = tl_window_find(&x->log.win, q);
        memset(e, 0, sizeof *e);
    }
    x->durable = 30;
    (void)tl_ledger_fold(&x->g, 30, 20);
    w = wm_at(x, 28);
    for (int i = 0; i < 5; i++) {
        h_time(x, 1);
        assert_false(offer(x, w));
    }
    market(x, 6); /* 25..30 arrive */
    (void)tl_ledger_fold(&x->g, 30, 30);
    w->checksum = x->t[28].checksum;
    w->total = truth_total(x, 28);
    w->symbol_count = 0; /* per-symbol: rebuilt below */
    tl_ledger_wm *fresh = wm_at(x, 28);
    memcpy(w->symbols, fresh->symbols, sizeof w->symbols);
    w->symbol_count = fresh->symbol_count;
    free(fresh);
    assert_true(offer(x, w));
    free(w);
    assert_int_equal(x->nf, 0);
    tl_ledger_stats st;
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.held_total, 1);
    assert_int_equal(st.compared_total, 2);
    h_free(x);
}

/* ---- 1. rewind ---- */

static void test_rewind(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 100);
    h_durable(x, 100);
    offer_free(x, wm_at(x, 60));
    offer_free(x, wm_at(x, 60)); /* the same seq again is no rewind */
    offer_free(x, wm_at(x, 80));
    assert_int_equal(x->nf, 0);
    offer_free(x, wm_at(x, 70));
    assert_int_equal(count(x, TL_CHECK_LEDGER_REWIND), 1);
    const tl_finding *f = find(x, TL_CHECK_LEDGER_REWIND);
    assert_int_equal(f->seq, 70);
    assert_int_equal(f->seq2, 80);
    assert_int_equal(f->symbol, 0);
    /* The rewound reply is otherwise right: no other finding, and the
     * trades in (70, 80] count as unposted again. */
    assert_int_equal(x->nf, 1);
    offer_free(x, wm_at(x, 90));
    offer_free(x, wm_at(x, 100));
    assert_int_equal(x->nf, 1);
    h_free(x);
}

/* ---- 2. fork ---- */

static void test_fork_checksum(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 60);
    h_durable(x, 60);
    offer_free(x, wm_at(x, 40));
    tl_ledger_wm *w = wm_at(x, 50);
    w->checksum ^= 1;
    offer_free(x, w);
    assert_int_equal(count(x, TL_CHECK_LEDGER_FORK), 1);
    const tl_finding *f = find(x, TL_CHECK_LEDGER_FORK);
    assert_int_equal(f->seq, 50);
    assert_int_equal(f->checksum, x->t[50].checksum ^ 1);
    assert_int_equal(f->checksum2, x->t[50].checksum);
    assert_int_equal(f->symbol, 0);
    assert_int_equal(f->reason, TL_REASON_NONE);
    /* the same forked log again: one fact, one finding */
    w = wm_at(x, 55);
    w->checksum ^= 1;
    offer_free(x, w);
    assert_int_equal(x->nf, 1);
    /* back on our log: no finding */
    offer_free(x, wm_at(x, 60));
    assert_int_equal(x->nf, 1);
    h_free(x);
}

/* ---- 3. double and missing postings ---- */

static void test_double_posting(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 50);
    uint64_t t = h_trade(x, 2, 5, 300);
    market(x, 50);
    h_durable(x, x->next_seq - 1);
    offer_free(x, wm_at(x, t - 5));
    /* the ledger posted the trade at t twice */
    tl_ledger_wm *w = wm_at(x, t + 10);
    w->total.trades += 1;
    w->total.qty += 5;
    w->total.notional += 1500;
    tl_ledger_symfigs *s = wm_sym(w, 2);
    s->f.trades += 1;
    s->f.qty += 5;
    s->f.notional += 1500;
    offer_free(x, w);
    assert_int_equal(x->nf, 1);
    const tl_finding *f = find(x, TL_CHECK_LEDGER_DOUBLE_POSTING);
    assert_int_equal(f->symbol, 2); /* the affected symbol, from the deltas */
    assert_int_equal(f->seq, t + 10);
    assert_int_equal(f->seq2, t - 5); /* it happened in (seq2, seq] */
    assert_int_equal(f->severity, TL_SEV_SEV1);
    /* The next replies carry the same surplus: not a new fact. */
    for (uint64_t k = 15; k <= 45; k += 15) {
        w = wm_at(x, t + k);
        w->total.trades += 1;
        w->total.qty += 5;
        w->total.notional += 1500;
        s = wm_sym(w, 2);
        s->f.trades += 1;
        s->f.qty += 5;
        s->f.notional += 1500;
        offer_free(x, w);
    }
    assert_int_equal(x->nf, 1);
    h_free(x);
}

static void test_missing_posting(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 50);
    uint64_t t = h_trade(x, 3, 4, 1000);
    market(x, 50);
    h_durable(x, x->next_seq - 1);
    offer_free(x, wm_at(x, t - 1));
    offer_free(x, wm_at(x, t - 1));
    assert_int_equal(x->nf, 0);
    tl_ledger_wm *w = wm_at(x, t);
    w->total.trades -= 1;
    w->total.qty -= 4;
    w->total.notional -= 4000;
    tl_ledger_symfigs *s = wm_sym(w, 3);
    s->f.trades -= 1;
    s->f.qty -= 4;
    s->f.notional -= 4000;
    offer_free(x, w);
    assert_int_equal(x->nf, 1);
    const tl_finding *f = find(x, TL_CHECK_LEDGER_MISSING_POSTING);
    assert_int_equal(f->symbol, 3);
    assert_int_equal(f->seq, t);
    h_free(x);
}

/* ---- 4. content ---- */

static void test_content_fork(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 50);
    uint64_t t = h_trade(x, 1, 7, 100);
    market(x, 10);
    h_durable(x, x->next_seq - 1);
    offer_free(x, wm_at(x, t - 1));
    /* equal counts, another qty */
    tl_ledger_wm *w = wm_at(x, t + 5);
    w->total.qty += 1;
    wm_sym(w, 1)->f.qty += 1;
    offer_free(x, w);
    assert_int_equal(x->nf, 1);
    const tl_finding *f = find(x, TL_CHECK_LEDGER_FORK);
    assert_int_equal(f->reason, TL_REASON_LEDGER_CONTENT);
    assert_int_equal(f->symbol, 1);
    /* equal counts and qty, another notional, totals only: scope `*` */
    w = wm_at(x, t + 8);
    w->total.qty += 1; /* the earlier difference persists */
    wm_sym(w, 1)->f.qty += 1;
    w->total.notional += 3;
    offer_free(x, w);
    assert_int_equal(x->nf, 2);
    assert_int_equal(x->f[1].check, TL_CHECK_LEDGER_FORK);
    assert_int_equal(x->f[1].symbol, 0);
    h_free(x);
}

/* A trade posted on the wrong symbol: the totals agree, the deltas do not. */
static void test_wrong_symbol(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 30);
    uint64_t t = h_trade(x, 1, 2, 500);
    market(x, 10);
    h_durable(x, x->next_seq - 1);
    offer_free(x, wm_at(x, t - 1));
    tl_ledger_wm *w = wm_at(x, t + 3);
    tl_ledger_symfigs *a = wm_sym(w, 1), *b = wm_sym(w, 2);
    a->f.trades -= 1;
    a->f.qty -= 2;
    a->f.notional -= 1000;
    b->f.trades += 1;
    b->f.qty += 2;
    b->f.notional += 1000;
    offer_free(x, w);
    assert_int_equal(x->nf, 2);
    assert_int_equal(count(x, TL_CHECK_LEDGER_MISSING_POSTING), 1);
    assert_int_equal(count(x, TL_CHECK_LEDGER_DOUBLE_POSTING), 1);
    assert_int_equal(find(x, TL_CHECK_LEDGER_MISSING_POSTING)->symbol, 1);
    assert_int_equal(find(x, TL_CHECK_LEDGER_DOUBLE_POSTING)->symbol, 2);
    h_free(x);
}

/* A symbol the reply drops is a delta to zero. */
static void test_symbol_dropped(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 30);
    h_durable(x, 30);
    offer_free(x, wm_at(x, 20));
    tl_ledger_wm *w = wm_at(x, 30);
    tl_ledger_symfigs *s3 = wm_sym(w, 3);
    tl_ledger_figs lost = s3->f;
    *s3 = w->symbols[w->symbol_count - 1];
    w->symbol_count--;
    w->total.trades -= lost.trades;
    w->total.qty -= lost.qty;
    w->total.notional -= lost.notional;
    offer_free(x, w);
    assert_int_equal(count(x, TL_CHECK_LEDGER_MISSING_POSTING), 1);
    assert_int_equal(find(x, TL_CHECK_LEDGER_MISSING_POSTING)->symbol, 3);
    h_free(x);
}

/* ---- anchoring ---- */

static void test_unanchored_then_checkpoint(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    /* history tally never read: 40 records, then tally starts at 41 */
    market(x, 40);
    for (uint64_t q = 1; q <= 40; q++)
        memset(tl_window_find(&x->log.win, q), 0, sizeof(tl_win_entry));
    x->g.started = false;
    memset(&x->g, 0, sizeof x->g);
    tl_ledger_init(&x->g, &x->cfg, &x->log, x->mem);
    market(x, 30); /* 41..70: the fold starts at 41, unanchored */
    h_durable(x, 70);
    tl_ledger_stats st;
    tl_ledger_stats_get(&x->g, 70, &st);
    assert_int_equal(st.anchored, 0);
    /* below the start: unchecked, LEDGER_STALE */
    offer_free(x, wm_at(x, 30));
    assert_int_equal(count(x, TL_CHECK_LEDGER_STALE), 1);
    assert_int_equal(find(x, TL_CHECK_LEDGER_STALE)->reason, TL_REASON_LEDGER_BELOW);
    assert_int_equal(find(x, TL_CHECK_LEDGER_STALE)->severity, TL_SEV_DEGRADED);
    /* totals as deltas between replies: a double posting shows */
    offer_free(x, wm_at(x, 50));
    tl_ledger_wm *w = wm_at(x, 60);
    w->total.trades += 1;
    offer_free(x, w);
    assert_int_equal(count(x, TL_CHECK_LEDGER_DOUBLE_POSTING), 1);
    assert_int_equal(find(x, TL_CHECK_LEDGER_DOUBLE_POSTING)->symbol, 0);
    /* a CHECKPOINT anchors the sums; the known surplus is not named again */
    uint64_t c = h_ckpt(x);
    market(x, 10);
    h_durable(x, x->next_seq - 1);
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.anchored, 1);
    w = wm_at(x, c + 5);
    w->total.trades += 1;
    offer_free(x, w);
    assert_int_equal(count(x, TL_CHECK_LEDGER_DOUBLE_POSTING), 1);
    /* a new absolute difference is */
    w = wm_at(x, c + 8);
    w->total.trades += 2;
    offer_free(x, w);
    assert_int_equal(count(x, TL_CHECK_LEDGER_DOUBLE_POSTING), 2);
    h_free(x);
}

/* A CHECKPOINT whose totals disagree with the anchored sums is counted. */
static void test_checkpoint_mismatch(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 20);
    x->ckpt_base.trades = 5; /* the engine's running total is off by 5 */
    (void)h_ckpt(x);
    x->ckpt_base.trades = 0;
    h_durable(x, x->next_seq - 1);
    tl_ledger_stats st;
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.checkpoint_mismatch, 1);
    assert_int_equal(x->nf, 0);
    h_free(x);
}

/* ---- the window's floor ---- */

static void test_below_window(void **state) {
    (void)state;
    h *x = h_new(64, NULL);
    market(x, 200); /* the window keeps the last 64 */
    h_durable(x, 200);
    offer_free(x, wm_at(x, 100));
    assert_int_equal(count(x, TL_CHECK_LEDGER_STALE), 1);
    tl_ledger_stats st;
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.unchecked_total, 1);
    assert_int_equal(st.compared_total, 0);
    /* once per episode */
    offer_free(x, wm_at(x, 120));
    assert_int_equal(count(x, TL_CHECK_LEDGER_STALE), 1);
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.unchecked_total, 2);
    /* in the window again: compared, no finding */
    offer_free(x, wm_at(x, 190));
    offer_free(x, wm_at(x, 200));
    assert_int_equal(x->nf, 1);
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.compared_total, 2);
    h_free(x);
}

/* A gap the WAL passed: skipped, the sums lose their anchor. */
static void test_gap_skipped(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 30);
    uint64_t g = x->next_seq;
    market(x, 30);
    memset(tl_window_find(&x->log.win, g), 0, sizeof(tl_win_entry));
    /* not settled yet: the fold waits at g - 1 */
    (void)tl_ledger_fold(&x->g, 60, g - 1);
    assert_int_equal(x->g.fold_seq, g - 1);
    (void)tl_ledger_fold(&x->g, 60, 60);
    assert_int_equal(x->g.fold_seq, 60);
    x->durable = 60;
    tl_ledger_stats st;
    tl_ledger_stats_get(&x->g, 60, &st);
    assert_int_equal(st.gaps_total, 1);
    assert_int_equal(st.anchored, 0);
    assert_int_equal(x->t[g].kind, TL_KIND_TRADE); /* the lost seq was a trade */
    /* Checksums still compare on both sides of the gap; sums across it do
     * not (and are not claimed to). */
    offer_free(x, wm_at(x, g - 2));
    offer_free(x, wm_at(x, g + 5));
    assert_int_equal(x->nf, 0);
    /* deltas between replies above the gap do */
    tl_ledger_wm *w = wm_at(x, 50);
    w->total.trades += 1;
    offer_free(x, w);
    assert_int_equal(count(x, TL_CHECK_LEDGER_DOUBLE_POSTING), 1);
    tl_ledger_stats_get(&x->g, 60, &st);
    assert_int_equal(st.compared_total, 3);
    h_free(x);
}

/* ---- staleness ---- */

static void test_stale(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    tl_ledger_tick(&x->g, x->now_mono);
    market(x, 20);
    h_durable(x, 20);
    offer_free(x, wm_at(x, 10));
    /* a reply older than max_age when it came: not compared */
    tl_ledger_wm *w = wm_at(x, 5); /* would be a rewind if compared */
    w->ts_ns -= 1001 * MS;
    offer_free(x, w);
    assert_int_equal(x->nf, 0);
    tl_ledger_stats st;
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.old_total, 1);
    assert_int_equal(st.compared_total, 1);
    /* within max_age: nothing yet */
    h_time(x, 900);
    tl_ledger_tick(&x->g, x->now_mono);
    assert_int_equal(x->nf, 0);
    /* past it: LEDGER_STALE, degraded, once */
    h_time(x, 200);
    tl_ledger_tick(&x->g, x->now_mono);
    tl_ledger_tick(&x->g, x->now_mono + 1);
    assert_int_equal(count(x, TL_CHECK_LEDGER_STALE), 1);
    const tl_finding *f = find(x, TL_CHECK_LEDGER_STALE);
    assert_int_equal(f->severity, TL_SEV_DEGRADED);
    assert_int_equal(f->reason, TL_REASON_LEDGER_OLD);
    /* a good reply ends the episode; silence starts a new one */
    offer_free(x, wm_at(x, 20));
    h_time(x, 1500);
    tl_ledger_tick(&x->g, x->now_mono);
    assert_int_equal(count(x, TL_CHECK_LEDGER_STALE), 2);
    assert_int_equal(x->f[x->nf - 1].reason, TL_REASON_LEDGER_SILENT);
    h_free(x);
}

/* A reply held until it is older than max_age is dropped. */
static void slack10(tl_ledger_cfg *c) {
    c->ahead_slack = 10;
}

static void test_held_expires(void **state) {
    (void)state;
    h *x = h_new(4096, slack10);
    market(x, 20);
    h_durable(x, 10);
    tl_ledger_wm *w = wm_at(x, 15);
    assert_false(offer(x, w));
    h_time(x, 1001);
    assert_true(offer(x, w));
    free(w);
    tl_ledger_stats st;
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.old_total, 1);
    assert_int_equal(st.compared_total, 0);
    h_free(x);
}

/* ---- SETTLEMENT_LAG ---- */

static void test_lag(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 10);
    h_durable(x, 10);
    offer_free(x, wm_at(x, 10));
    uint64_t t = h_trade(x, 1, 1, 100); /* the ledger will not post it */
    uint64_t s = t - 1;
    market(x, 5);
    h_durable(x, x->next_seq - 1);
    /* below T2: nothing */
    for (int i = 0; i < 10; i++) {
        h_time(x, 100);
        offer_free(x, wm_at(x, s));
    }
    assert_int_equal(x->nf, 0);
    /* above T2: SEV2 after 3 polls in a row */
    h_time(x, 1000); /* age 2000 ms: not above */
    offer_free(x, wm_at(x, s));
    h_time(x, 20);
    offer_free(x, wm_at(x, s));
    h_time(x, 20);
    offer_free(x, wm_at(x, s));
    assert_int_equal(x->nf, 0);
    h_time(x, 20);
    offer_free(x, wm_at(x, s));
    assert_int_equal(x->nf, 1);
    const tl_finding *f = find(x, TL_CHECK_SETTLEMENT_LAG);
    assert_int_equal(f->severity, TL_SEV_SEV2);
    assert_int_equal(f->seq, t);
    assert_int_equal(f->seq2, s);
    assert_int_equal(f->symbol, 0);
    tl_ledger_stats st;
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.lag_ns, 2060 * MS);
    assert_int_equal(st.lag_polls, 3);
    /* still above T2, below T3: no new finding */
    for (int i = 0; i < 10; i++) {
        h_time(x, 500);
        offer_free(x, wm_at(x, s));
    }
    assert_int_equal(x->nf, 1);
    /* above T3: SEV1, once */
    h_time(x, 3000);
    offer_free(x, wm_at(x, s));
    h_time(x, 20);
    offer_free(x, wm_at(x, s));
    assert_int_equal(x->nf, 2);
    assert_int_equal(x->f[1].check, TL_CHECK_SETTLEMENT_LAG);
    assert_int_equal(x->f[1].severity, TL_SEV_SEV1);
    /* posted: clean polls count, the episode ends */
    offer_free(x, wm_at(x, x->durable));
    offer_free(x, wm_at(x, x->durable));
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.lag_ns, 0);
    assert_int_equal(st.lag_polls, 0);
    assert_int_equal(st.lag_clean_polls, 2);
    assert_int_equal(x->nf, 2);
    h_free(x);
}

/* Orders and heartbeats in a quiet market never make it lag. */
static void test_lag_quiet_market(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 10);
    h_durable(x, 10);
    offer_free(x, wm_at(x, 10));
    for (int i = 0; i < 100; i++) {
        h_rec(x, i % 2 ? TL_KIND_HEARTBEAT : TL_KIND_ORDER_NEW, 1, 0, 0);
        h_durable(x, x->next_seq - 1);
        h_time(x, 200);
        offer_free(x, wm_at(x, 10)); /* the ledger stays at 10 */
    }
    assert_int_equal(x->nf, 0);
    tl_ledger_stats st;
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.lag_ns, 0);
    assert_int_equal(st.lag_records, 100);
    h_free(x);
}

/* One confirmation short, then below T2: the count starts again. */
static void test_lag_confirmations_in_a_row(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    uint64_t t = h_trade(x, 1, 1, 1);
    h_durable(x, t);
    h_time(x, 2500);
    offer_free(x, wm_at(x, 0));
    offer_free(x, wm_at(x, 0));
    offer_free(x, wm_at(x, t)); /* posted: below T2 */
    uint64_t u = h_trade(x, 1, 1, 1);
    h_durable(x, u);
    h_time(x, 2500);
    offer_free(x, wm_at(x, t));
    offer_free(x, wm_at(x, t));
    assert_int_equal(x->nf, 0);
    offer_free(x, wm_at(x, t));
    assert_int_equal(count(x, TL_CHECK_SETTLEMENT_LAG), 1);
    h_free(x);
}

/* ---- the FIFO's bound ---- */

static void small_fifo(tl_ledger_cfg *c) {
    c->fifo_trades = 4;
}

static void test_fifo_overflow(void **state) {
    (void)state;
    h *x = h_new(4096, small_fifo);
    uint64_t first = h_trade(x, 1, 1, 10);
    uint64_t first_ts = x->now_real;
    for (int i = 0; i < 9; i++) {
        h_time(x, 10);
        h_trade(x, 1, 1, 10);
    }
    h_durable(x, x->next_seq - 1);
    tl_ledger_stats st;
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.fifo_dropped_total, 6);
    assert_int_equal(st.unposted, 4);
    /* a reply below the dropped trades cannot be compared */
    offer_free(x, wm_at(x, first + 2));
    assert_int_equal(count(x, TL_CHECK_LEDGER_STALE), 1);
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.unchecked_total, 1);
    /* the lag clock still runs from the oldest dropped trade */
    assert_int_equal(st.lag_ns, x->now_real - first_ts);
    /* past them: compared again, and right */
    offer_free(x, wm_at(x, first + 7));
    offer_free(x, wm_at(x, first + 9));
    assert_int_equal(x->nf, 1);
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.compared_total, 2);
    assert_int_equal(st.lag_ns, 0);
    h_free(x);
}

/* ---- wrapping arithmetic ---- */

static void test_wrapping(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    /* A CHECKPOINT anchors the sums 3 short of 2^64: the totals wrap. */
    x->ckpt_base = (tl_ledger_figs){UINT64_MAX - 2, UINT64_MAX - 2, UINT64_MAX - 2};
    tl_ledger_wal_record(&x->g, 1);
    x->g.anchored = false; /* as if the log started before seq 1 */
    (void)h_ckpt(x);
    /* qty and price near 2^63: (u64)price * (u64)qty wraps too */
    uint64_t big = (1ull << 63) + 12345;
    h_trade(x, 1, big, 3);
    h_trade(x, 2, 7, big);
    h_trade(x, 1, UINT64_MAX, UINT64_MAX);
    h_trade(x, 2, 1, 1);
    h_durable(x, x->next_seq - 1);
    tl_ledger_wm *w = wm_at(x, x->durable);
    /* the totals passed 2^64 and wrapped */
    assert_true(w->total.trades < 5);
    offer_free(x, wm_at(x, 2));
    offer_free(x, w);
    assert_int_equal(x->nf, 0);
    /* a double posting across the wrap is still a double posting */
    h_trade(x, 1, 1, 1);
    h_durable(x, x->next_seq - 1);
    w = wm_at(x, x->durable);
    w->total.trades += 1;
    w->total.qty += 1;
    w->total.notional += 1;
    wm_sym(w, 1)->f.trades += 1;
    wm_sym(w, 1)->f.qty += 1;
    wm_sym(w, 1)->f.notional += 1;
    offer_free(x, w);
    assert_int_equal(count(x, TL_CHECK_LEDGER_DOUBLE_POSTING), 1);
    assert_int_equal(find(x, TL_CHECK_LEDGER_DOUBLE_POSTING)->symbol, 1);
    /* and one short, across the wrap the other way, is missing */
    h_trade(x, 2, 1, 1);
    h_durable(x, x->next_seq - 1);
    w = wm_at(x, x->durable);
    w->total.trades += 1 - 2; /* the surplus, minus the new trade */
    w->total.qty += 1 - 1;
    w->total.notional += 1 - 1;
    wm_sym(w, 1)->f.trades += 1;
    wm_sym(w, 1)->f.qty += 1;
    wm_sym(w, 1)->f.notional += 1;
    wm_sym(w, 2)->f.trades -= 1;
    wm_sym(w, 2)->f.qty -= 1;
    wm_sym(w, 2)->f.notional -= 1;
    offer_free(x, w);
    assert_int_equal(count(x, TL_CHECK_LEDGER_MISSING_POSTING), 1);
    assert_int_equal(find(x, TL_CHECK_LEDGER_MISSING_POSTING)->symbol, 2);
    h_free(x);
}

/* ---- the pop budget ---- */

static void pop2(tl_ledger_cfg *c) {
    c->pop_budget = 2;
}

/* A reply whose trades take several steps to pop is held meanwhile; one
 * dropped halfway leaves the state whole for the next (even a lower one). */
static void test_pop_budget(void **state) {
    (void)state;
    h *x = h_new(4096, pop2);
    market(x, 10);
    h_durable(x, 10);
    tl_ledger_wm *w = wm_at(x, 10);
    while (!offer(x, w))
        ;
    free(w);
    for (int i = 0; i < 12; i++)
        h_trade(x, 1 + (uint32_t)(i % 3), 1, 10 + (uint64_t)i);
    h_durable(x, x->next_seq - 1); /* trades at 11..22 */
    w = wm_at(x, 22);
    int held = 0;
    while (!offer(x, w))
        held++;
    free(w);
    assert_int_equal(held, 5); /* 12 trades, 2 per step: taken at the 6th */
    assert_int_equal(x->nf, 0);
    /* one popped halfway, then dropped as too old */
    for (int i = 0; i < 6; i++)
        h_trade(x, 1 + (uint32_t)(i % 3), 2, 7);
    h_durable(x, x->next_seq - 1); /* trades at 23..28 */
    w = wm_at(x, 28);
    assert_false(offer(x, w));
    assert_int_equal(x->g.posted_seq, 24);
    h_time(x, 1001);
    assert_true(offer(x, w));
    free(w);
    /* a reply below what was popped, above what was taken: no rewind, and
     * the popped trades are unposted again */
    w = wm_at(x, 23);
    while (!offer(x, w))
        ;
    free(w);
    assert_int_equal(x->g.posted_seq, 23);
    w = wm_at(x, 28);
    while (!offer(x, w))
        ;
    free(w);
    /* only the second of silence while the dropped reply waited */
    assert_int_equal(x->nf, 1);
    assert_int_equal(x->f[0].check, TL_CHECK_LEDGER_STALE);
    tl_ledger_stats st;
    tl_ledger_stats_get(&x->g, x->durable, &st);
    assert_int_equal(st.compared_total, 4);
    assert_int_equal(st.old_total, 1);
    assert_int_equal(st.unposted, 0);
    h_free(x);
}

/* ledger_seq 0: nothing consumed yet, nothing compared, no finding. */
static void test_seq_zero(void **state) {
    (void)state;
    h *x = h_new(4096, NULL);
    market(x, 10);
    h_durable(x, 10);
    offer_free(x, wm_at(x, 0));
    offer_free(x, wm_at(x, 0));
    offer_free(x, wm_at(x, 10));
    assert_int_equal(x->nf, 0);
    offer_free(x, wm_at(x, 0)); /* back to 0 is a rewind */
    assert_int_equal(count(x, TL_CHECK_LEDGER_REWIND), 1);
    h_free(x);
}

/* Disabled: no memory, nothing happens. */
static void test_disabled(void **state) {
    (void)state;
    tl_ledger_cfg c;
    tl_ledger_cfg_defaults(&c);
    assert_false(c.enabled);
    assert_int_equal(tl_ledger_mem_bytes(&c), 0);
    tl_log log;
    void *win = tu_aligned(64, tl_window_bytes(16));
    tl_log_init(&log, TL_DIALECT_TLYWAL1, win, 16, (tl_sink){sink, NULL});
    tl_ledger g;
    tl_ledger_init(&g, &c, &log, NULL);
    tl_ledger_wal_record(&g, 1);
    assert_int_equal(tl_ledger_fold(&g, 10, 10), 0);
    tl_ledger_tick(&g, 1);
    tl_ledger_tick(&g, 10000000000ull);
    assert_false(g.started);
    free(win);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_ahead),
        cmocka_unit_test(test_ahead_needs_durable),
        cmocka_unit_test(test_hold_until_read),
        cmocka_unit_test(test_rewind),
        cmocka_unit_test(test_fork_checksum),
        cmocka_unit_test(test_double_posting),
        cmocka_unit_test(test_missing_posting),
        cmocka_unit_test(test_content_fork),
        cmocka_unit_test(test_wrong_symbol),
        cmocka_unit_test(test_symbol_dropped),
        cmocka_unit_test(test_unanchored_then_checkpoint),
        cmocka_unit_test(test_checkpoint_mismatch),
        cmocka_unit_test(test_below_window),
        cmocka_unit_test(test_gap_skipped),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_held_expires),
        cmocka_unit_test(test_lag),
        cmocka_unit_test(test_lag_quiet_market),
        cmocka_unit_test(test_lag_confirmations_in_a_row),
        cmocka_unit_test(test_fifo_overflow),
        cmocka_unit_test(test_wrapping),
        cmocka_unit_test(test_pop_budget),
        cmocka_unit_test(test_seq_zero),
        cmocka_unit_test(test_disabled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
