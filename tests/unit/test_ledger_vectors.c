/* test_ledger_vectors.c: the shared vector's ledger watermarks
 * (wal-clean.json: watermark_at_9, watermark_at_last) against tally's prefix
 * sums over the wal-clean log, read with io/wal_reader's on_record.
 *
 * Three ways, each of which must agree with the independent encoder:
 *   1. the sums computed here from each TRADE body (ledger.md: count,
 *      Σ(u64)qty, Σ(u64)price×(u64)qty, wrapping), per symbol too, and the
 *      checksum of the record at ledger_seq;
 *   2. every CHECKPOINT's running totals equal those sums at its seq;
 *   3. core/ledger's checker over a window filled from the same records:
 *      both watermarks (through tl_ledger_parse) compare with no finding.
 */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ledger.h"
#include "io/wal_reader.h"

#define MAXSEQ 256
#define MAXSYM 8

typedef struct log_sums {
    tl_ledger_figs total[MAXSEQ];       /* after seq */
    tl_ledger_figs sym[MAXSEQ][MAXSYM]; /* after seq, per symbol id < MAXSYM */
    uint64_t checksum[MAXSEQ];
    tl_win_entry entry[MAXSEQ];
    uint64_t last;
    unsigned checkpoints;
    unsigned checkpoint_bad;
    tl_body_checkpoint ckpt[MAXSEQ];
    bool is_ckpt[MAXSEQ];
} log_sums;

static int on_record(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result res) {
    (void)loc;
    (void)res;
    log_sums *s = ctx;
    assert_true(v->seq > 0 && v->seq < MAXSEQ);
    assert_int_equal(v->seq, s->last + 1); /* in order, no gap */
    uint64_t q = v->seq;
    s->total[q] = s->total[q - 1];
    memcpy(s->sym[q], s->sym[q - 1], sizeof s->sym[q]);
    s->checksum[q] = v->checksum;
    tl_win_entry *e = &s->entry[q];
    e->seq = q;
    e->checksum = v->checksum;
    e->ts_ns = v->ts_ns;
    e->kind = v->kind;
    e->symbol = v->symbol;
    if (v->kind == TL_KIND_TRADE) {
        tl_body_trade t;
        assert_true(v->body_len >= sizeof t);
        memcpy(&t, v->body, sizeof t);
        uint64_t qty = (uint64_t)t.qty, notional = (uint64_t)t.price * (uint64_t)t.qty;
        tl_ledger_figs_add_trade(&s->total[q], qty, notional);
        assert_true(v->symbol < MAXSYM);
        tl_ledger_figs_add_trade(&s->sym[q][v->symbol], qty, notional);
        e->qty = qty;
        e->notional = notional;
    }
    if (v->kind == TL_KIND_CHECKPOINT) {
        memcpy(&s->ckpt[q], v->body, sizeof s->ckpt[q]);
        s->is_ckpt[q] = true;
        s->checkpoints++;
        if (s->ckpt[q].trades_total != s->total[q].trades ||
            s->ckpt[q].qty_total != s->total[q].qty ||
            s->ckpt[q].notional_total != s->total[q].notional)
            s->checkpoint_bad++;
    }
    s->last = q;
    return 0;
}

static log_sums *read_vector(void) {
    log_sums *s = calloc(1, sizeof *s);
    assert_non_null(s);
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.on_record = on_record;
    o.ctx = s;
    tl_wal_summary sum;
    assert_int_equal(tl_wal_read_dir(tu_shared("spec/vectors/wal-clean"), &o, &sum), TL_WAL_OK);
    assert_int_equal(sum.findings_total, 0);
    assert_int_equal(sum.last_seq, s->last);
    return s;
}

/* The vector's watermark object, as a reply body (the vector has no ts_ns;
 * a reply must carry one). */
static char *vector_body(const char *which, uint64_t ts_ns) {
    size_t len;
    uint8_t *j = tu_read_file(tu_shared("spec/vectors/wal-clean.json"), &len);
    cJSON *root = cJSON_ParseWithLength((const char *)j, len);
    assert_non_null(root);
    cJSON *wm = cJSON_DetachItemFromObject(root, which);
    assert_non_null(wm);
    char ts[24];
    snprintf(ts, sizeof ts, "%llu", (unsigned long long)ts_ns);
    cJSON_AddStringToObject(wm, "ts_ns", ts);
    char *body = cJSON_PrintUnformatted(wm);
    cJSON_Delete(wm);
    cJSON_Delete(root);
    free(j);
    return body;
}

static void expect_equal(const log_sums *s, const tl_ledger_wm *w) {
    uint64_t q = w->ledger_seq;
    assert_true(q >= 1 && q <= s->last);
    assert_int_equal(w->checksum, s->checksum[q]);
    assert_int_equal(w->total.trades, s->total[q].trades);
    assert_int_equal(w->total.qty, s->total[q].qty);
    assert_int_equal(w->total.notional, s->total[q].notional);
    unsigned listed = 0;
    for (uint32_t sym = 0; sym < MAXSYM; sym++) {
        const tl_ledger_figs *f = &s->sym[q][sym];
        if (f->trades == 0)
            continue;
        bool found = false;
        for (uint32_t k = 0; k < w->symbol_count; k++) {
            if (w->symbols[k].symbol != sym)
                continue;
            found = true;
            assert_int_equal(w->symbols[k].f.trades, f->trades);
            assert_int_equal(w->symbols[k].f.qty, f->qty);
            assert_int_equal(w->symbols[k].f.notional, f->notional);
        }
        assert_true(found);
        listed++;
    }
    assert_int_equal(listed, w->symbol_count);
}

static void test_vector_sums(void **state) {
    (void)state;
    log_sums *s = read_vector();
    assert_int_equal(s->last, 103);
    const char *which[2] = {"watermark_at_9", "watermark_at_last"};
    uint64_t want_seq[2] = {9, 103};
    for (int i = 0; i < 2; i++) {
        char *body = vector_body(which[i], 1);
        tl_ledger_wm *w = calloc(1, sizeof *w);
        const char *member = NULL;
        assert_int_equal(tl_ledger_parse(body, strlen(body), w, &member), TL_LEDGER_OK);
        assert_int_equal(w->ledger_seq, want_seq[i]);
        expect_equal(s, w);
        free(w);
        free(body);
    }
    /* The CHECKPOINTs carry the same running totals. */
    assert_true(s->checkpoints >= 2);
    assert_int_equal(s->checkpoint_bad, 0);
    free(s);
}

static tl_finding found[16];
static int nfound;

static void sink(void *ctx, const tl_finding *f) {
    (void)ctx;
    if (nfound < 16)
        found[nfound] = *f;
    nfound++;
}

/* The checker itself, from seq 1 and from a mid-log start anchored at the
 * first CHECKPOINT. */
static void run_checker(const log_sums *s, uint64_t start) {
    tl_log log;
    void *win = tu_aligned(64, tl_window_bytes(256));
    tl_log_init(&log, TL_DIALECT_TLYWAL1, win, 256, (tl_sink){sink, NULL});
    tl_ledger_cfg c;
    tl_ledger_cfg_defaults(&c);
    c.enabled = true;
    c.fifo_trades = 64;
    void *mem = tu_aligned(64, tl_ledger_mem_bytes(&c));
    tl_ledger g;
    tl_ledger_init(&g, &c, &log, mem);
    nfound = 0;
    for (uint64_t q = start; q <= s->last; q++) {
        tl_win_entry *e = tl_window_put(&log.win, q);
        assert_non_null(e);
        *e = s->entry[q];
        tl_ledger_wal_record(&g, q);
        if (s->is_ckpt[q]) {
            tl_rec_view v;
            memset(&v, 0, sizeof v);
            v.seq = q;
            v.checksum = s->checksum[q];
            v.kind = TL_KIND_CHECKPOINT;
            v.body = (const uint8_t *)&s->ckpt[q];
            v.body_len = sizeof s->ckpt[q];
            tl_ledger_checkpoint(&g, &v);
        }
    }
    while (tl_ledger_fold(&g, s->last, s->last) > 0)
        ;
    tl_ledger_stats st;
    tl_ledger_stats_get(&g, s->last, &st);
    assert_int_equal(st.anchored, 1);
    const char *which[2] = {"watermark_at_9", "watermark_at_last"};
    uint64_t now = 1795000000000000000ull;
    for (int i = 0; i < 2; i++) {
        char *body = vector_body(which[i], now);
        tl_ledger_wm *w = calloc(1, sizeof *w);
        assert_int_equal(tl_ledger_parse(body, strlen(body), w, NULL), TL_LEDGER_OK);
        w->poll_id = (uint64_t)i + 1;
        w->recv_mono_ns = 1000;
        w->recv_real_ns = now;
        assert_true(tl_ledger_reply(&g, w, 1000, now, s->last, 1000));
        free(w);
        free(body);
    }
    tl_ledger_stats_get(&g, s->last, &st);
    if (start == 1) {
        assert_int_equal(st.compared_total, 2);
        assert_int_equal(nfound, 0);
    } else {
        /* seq 9 is before the start: unchecked; the last compares clean */
        assert_int_equal(st.unchecked_total, 1);
        assert_int_equal(st.compared_total, 1);
        assert_int_equal(nfound, 1);
        assert_int_equal(found[0].check, TL_CHECK_LEDGER_STALE);
    }
    free(win);
    free(mem);
}

static void test_vector_checker(void **state) {
    (void)state;
    log_sums *s = read_vector();
    run_checker(s, 1);
    /* from the first CHECKPOINT on, anchored by its running totals */
    uint64_t c = 0;
    for (uint64_t q = 1; q <= s->last && c == 0; q++)
        if (s->is_ckpt[q])
            c = q;
    assert_true(c > 9);
    run_checker(s, c);
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_sums),
        cmocka_unit_test(test_vector_checker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
