/* test_reconcile_side.c: POST /reconcile's ledger and peer comparisons
 * (admin/reconcile.h), and the comparison they share with the hot loop's
 * checker (core/ledger.h tl_ledger_judge).
 *
 * A real native WAL is written with io/wal_writer (small segments, TRADEs on
 * two symbols, CHECKPOINTs carrying the running totals and a state hash);
 * the test keeps its own figures for every seq, independently of the code
 * under test. Watermarks and peer reports are built from those figures,
 * then bent: a double posting, a missing posting, a fork at ledger_seq, a
 * content fork, a ledger_seq outside the scope, a run that cannot anchor
 * its sums, and a peer whose state hash diverges. */
#include "testutil.h"

#include "test_wal_fixture.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>

#include "admin/reconcile.h"
#include "core/ledger.h"
#include "core/peer.h"
#include "io/wal_writer.h"

#define N_OPS   400u
#define MAX_SEQ 1024u

/* ---- the log, and what the test knows of it ---- */

typedef struct truth {
    uint64_t last_seq;
    uint64_t checksum[MAX_SEQ];
    uint16_t kind[MAX_SEQ];
    uint64_t seg_start[64]; /* the first seq of each segment, ascending */
    uint32_t n_seg;
    tl_ledger_figs total[MAX_SEQ];  /* over TRADEs <= seq */
    tl_ledger_figs sym[MAX_SEQ][3]; /* symbols 1 and 2 */
    uint8_t hash[MAX_SEQ][TL_STATE_HASH_BYTES];
} truth;

static truth T;
static char wal_dir[512];
static char *tmp;

static uint32_t eng_symbols(void *ctx, tl_wal_opener_symbol *out, uint32_t cap) {
    (void)ctx;
    assert_true(cap >= 2);
    memset(out, 0, 2 * sizeof *out);
    out[0].symbol = 1;
    memcpy(out[0].name, "AAA", 3);
    out[1].symbol = 2;
    memcpy(out[1].name, "BBB", 3);
    return 2;
}
static void eng_global(void *ctx, uint32_t *mode, uint32_t *wd) {
    (void)ctx;
    *mode = 0;
    *wd = 0;
}
static void eng_on_record(void *ctx, const uint8_t *rec, uint32_t len) {
    (void)ctx;
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    assert_int_equal(h->len, len);
    assert_true(h->seq < MAX_SEQ);
    T.checksum[h->seq] = h->checksum;
    T.kind[h->seq] = h->kind;
    /* figures carry forward; a TRADE adds below */
    if (h->seq > 1) {
        T.total[h->seq] = T.total[h->seq - 1];
        memcpy(T.sym[h->seq], T.sym[h->seq - 1], sizeof T.sym[0]);
    }
    if (h->seq > T.last_seq)
        T.last_seq = h->seq;
}
static void eng_on_durable(void *ctx, uint64_t seq, uint64_t seg, uint64_t off) {
    (void)ctx;
    (void)seq;
    (void)seg;
    (void)off;
}

static void add_fig(tl_ledger_figs *f, uint64_t qty, uint64_t notional) {
    f->trades++;
    f->qty += qty;
    f->notional += notional;
}

/* Writes the test's log into dir; flip_seq: that record's bytes are bent
 * (io/wal_writer's fault injection), 0 = none. */
static void write_wal(const char *dir, uint64_t flip_seq) {
    memset(&T, 0, sizeof T);
    tl_wal_config c;
    tl_wal_config_default(&c);
    c.dir = dir;
    c.segment_bytes = 8192;
    c.staging_bytes = 256u << 10;
    c.group_max_records = 16;
    c.sync_thread = false;
    c.initial_fence = 1;
    memcpy(c.engine_id, fx_engine, TL_ID_BYTES);
    tl_wal_ops ops = {.symbols = eng_symbols,
                      .global_mode = eng_global,
                      .on_record = eng_on_record,
                      .on_durable = eng_on_durable};
    tl_wal *w = NULL;
    assert_int_equal(tl_wal_open(&w, &c, &ops, NULL), TL_WAL_OK);
    if (flip_seq != 0)
        assert_int_equal(tl_wal_fault_arm(w, TL_WAL_FAULT_FLIP, flip_seq, 40), TL_WAL_OK);
    for (uint32_t i = 0; i < N_OPS; i++) {
        tl_wal_appended a;
        uint64_t t = 1000 + i;
        if (i % 3 == 1) {
            tl_body_trade b;
            memset(&b, 0, sizeof b);
            b.trade_id = i;
            b.price = 100 + i;
            b.qty = 1 + i % 7;
            b.taker_side = TL_SIDE_BUY;
            uint32_t sym = 1 + i % 2;
            assert_int_equal(tl_wal_append(w, TL_KIND_TRADE, sym, &b, sizeof b, t, &a), TL_WAL_OK);
            uint64_t q = (uint64_t)b.qty, n = (uint64_t)b.price * (uint64_t)b.qty;
            add_fig(&T.total[a.seq], q, n);
            add_fig(&T.sym[a.seq][sym], q, n);
        } else if (i % 25 == 24) {
            tl_body_checkpoint b;
            memset(&b, 0, sizeof b);
            memset(b.state_hash, (int)(i & 0xff), sizeof b.state_hash);
            /* the running totals up to the last record appended */
            uint64_t s = T.last_seq;
            b.trades_total = T.total[s].trades;
            b.qty_total = T.total[s].qty;
            b.notional_total = T.total[s].notional;
            assert_int_equal(tl_wal_append(w, TL_KIND_CHECKPOINT, 0, &b, sizeof b, t, &a),
                             TL_WAL_OK);
            memcpy(T.hash[a.seq], b.state_hash, TL_STATE_HASH_BYTES);
        } else {
            tl_body_order_new b = fx_order(i + 1);
            assert_int_equal(tl_wal_append(w, TL_KIND_ORDER_NEW, 1, &b, sizeof b, t, &a),
                             TL_WAL_OK);
        }
        assert_true(a.seq < MAX_SEQ);
        if (T.n_seg == 0 || T.seg_start[T.n_seg - 1] != a.segment_first_seq) {
            assert_true(T.n_seg < TL_ARRAY_LEN(T.seg_start));
            T.seg_start[T.n_seg++] = a.segment_first_seq;
        }
    }
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    assert_true(T.n_seg >= 4);
}

static int setup(void **state) {
    (void)state;
    tmp = tu_tmpdir("rcside");
    snprintf(wal_dir, sizeof wal_dir, "%s/wal", tmp);
    write_wal(wal_dir, 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tu_rm_rf(tmp);
    free(tmp);
    return 0;
}

/* ---- helpers ---- */

static uint64_t find_kind(uint64_t from, uint16_t kind) {
    for (uint64_t s = from; s <= T.last_seq; s++)
        if (T.kind[s] == kind)
            return s;
    fail_msg("no record of kind %u from %llu", kind, (unsigned long long)from);
    return 0;
}

static void wm_at(tl_reconcile_req *q, uint64_t s) {
    q->have_watermark = true;
    tl_ledger_wm *wm = &q->watermark;
    memset(wm, 0, sizeof *wm);
    wm->poll_id = 7;
    wm->ledger_seq = s;
    wm->checksum = T.checksum[s];
    wm->total = T.total[s];
    wm->symbol_count = 2;
    for (uint32_t k = 0; k < 2; k++) {
        wm->symbols[k].symbol = k + 1;
        wm->symbols[k].f = T.sym[s][k + 1];
    }
}

static tl_reconcile_req *req(uint64_t from, uint64_t to) {
    tl_reconcile_req *q = calloc(1, sizeof *q);
    assert_non_null(q);
    q->from_seq = from;
    q->to_seq = to;
    return q;
}

typedef struct result {
    uint8_t status;
    cJSON *j;
    char line[TL_RC_LINE_MAX];
} result;

static result *run(const tl_reconcile_req *q, bool ledger, bool peers) {
    tl_reconcile_cfg cfg = {
        .state_dir = tmp,
        .wal_dir = wal_dir,
        .dialect = TL_DIALECT_TLYWAL1,
        .instance_id = "00112233445566778899aabbccddeeff",
        .window_records = 1u << 12,
        .ledger_configured = ledger,
        .peers_configured = peers,
    };
    tl_rc_progress pr;
    atomic_init(&pr.records, 0);
    atomic_init(&pr.last_seq, 0);
    atomic_init(&pr.cancel, false);
    result *r = calloc(1, sizeof *r);
    assert_non_null(r);
    tl_rc_done d;
    r->status = tl_reconcile_run(&cfg, q, "rc-test", 1, r->line, sizeof r->line, &d, &pr);
    r->j = cJSON_Parse(r->line);
    if (getenv("RC_SHOW") != NULL) /* debugging: every result line */
        printf("%s\n", r->line);
    if (r->j == NULL)
        fail_msg("not JSON: %s", r->line);
    assert_int_equal(d.status, r->status);
    return r;
}

static const char *field(const result *r, const char *obj, const char *key) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(r->j, obj);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v))
        fail_msg("%s.%s missing in %s", obj, key, r->line);
    return v->valuestring;
}

static int by_check(const result *r, const char *check) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(r->j, "by_check");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, check);
    return cJSON_IsNumber(v) ? v->valueint : 0;
}

static void done(result *r, tl_reconcile_req *q) {
    cJSON_Delete(r->j);
    free(r);
    free(q);
}

/* ---- the ledger ---- */

static void test_ledger_consistent(void **state) {
    (void)state;
    uint64_t s = find_kind(T.last_seq / 2, TL_KIND_TRADE);
    tl_reconcile_req *q = req(1, T.last_seq);
    wm_at(q, s);
    result *r = run(q, true, false);
    assert_int_equal(r->status, TL_RC_CONSISTENT);
    assert_string_equal(field(r, "ledger", "outcome"), "consistent");
    assert_string_equal(field(r, "ledger", "totals"), "agree");
    assert_string_equal(field(r, "ledger", "symbols"), "compared");
    assert_string_equal(field(r, "peers", "outcome"), "not_configured");
    const cJSON *ours =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r->j, "ledger"), "ours");
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)T.total[s].trades);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(ours, "trades")->valuestring, want);
    assert_true(T.total[s].trades > 10);
    done(r, q);

    /* at the last seq, and at a CHECKPOINT, too */
    q = req(1, T.last_seq);
    wm_at(q, T.last_seq);
    r = run(q, true, false);
    assert_int_equal(r->status, TL_RC_CONSISTENT);
    assert_string_equal(field(r, "ledger", "outcome"), "consistent");
    done(r, q);
    q = req(1, T.last_seq);
    wm_at(q, find_kind(1, TL_KIND_CHECKPOINT));
    r = run(q, true, false);
    assert_string_equal(field(r, "ledger", "outcome"), "consistent");
    done(r, q);
}

static void test_ledger_double_posting(void **state) {
    (void)state;
    uint64_t s = find_kind(T.last_seq / 2, TL_KIND_TRADE);
    tl_reconcile_req *q = req(1, T.last_seq);
    wm_at(q, s);
    /* one trade of symbol 2 posted twice */
    q->watermark.total.trades++;
    q->watermark.total.qty += 3;
    q->watermark.total.notional += 3 * 150;
    q->watermark.symbols[1].f.trades++;
    q->watermark.symbols[1].f.qty += 3;
    q->watermark.symbols[1].f.notional += 3 * 150;
    result *r = run(q, true, false);
    assert_int_equal(r->status, TL_RC_MISMATCH);
    assert_string_equal(field(r, "ledger", "outcome"), "mismatch");
    assert_string_equal(field(r, "ledger", "totals"), "double_posting");
    assert_string_equal(field(r, "ledger", "check"), "LEDGER_DOUBLE_POSTING");
    assert_int_equal(by_check(r, "LEDGER_DOUBLE_POSTING"), 1); /* scoped to BBB, named once */
    assert_int_equal(by_check(r, "LEDGER_MISSING_POSTING"), 0);
    done(r, q);
}

static void test_ledger_missing_posting(void **state) {
    (void)state;
    uint64_t s = find_kind(T.last_seq / 2, TL_KIND_TRADE);
    tl_reconcile_req *q = req(1, T.last_seq);
    wm_at(q, s);
    /* the trade at s itself never posted */
    q->watermark.total = T.total[s - 1];
    uint32_t sym = T.sym[s][1].trades != T.sym[s - 1][1].trades ? 1 : 2;
    q->watermark.symbols[sym - 1].f = T.sym[s - 1][sym];
    result *r = run(q, true, false);
    assert_int_equal(r->status, TL_RC_MISMATCH);
    assert_string_equal(field(r, "ledger", "totals"), "missing_posting");
    assert_int_equal(by_check(r, "LEDGER_MISSING_POSTING"), 1);
    assert_int_equal(by_check(r, "LEDGER_DOUBLE_POSTING"), 0);
    done(r, q);

    /* a trade moved from one symbol to the other: totals agree, the symbols
     * do not (ledger.md: per-symbol figures too) */
    q = req(1, T.last_seq);
    wm_at(q, s);
    q->watermark.symbols[0].f.trades++;
    q->watermark.symbols[1].f.trades--;
    r = run(q, true, false);
    assert_int_equal(r->status, TL_RC_MISMATCH);
    assert_string_equal(field(r, "ledger", "totals"), "agree");
    assert_int_equal(by_check(r, "LEDGER_DOUBLE_POSTING"), 1);
    assert_int_equal(by_check(r, "LEDGER_MISSING_POSTING"), 1);
    done(r, q);
}

static void test_ledger_fork(void **state) {
    (void)state;
    uint64_t s = find_kind(T.last_seq / 2, TL_KIND_TRADE);
    tl_reconcile_req *q = req(1, T.last_seq);
    wm_at(q, s);
    q->watermark.checksum ^= 0x10;
    q->watermark.total.trades += 5; /* after a fork nothing else is compared */
    result *r = run(q, true, false);
    assert_int_equal(r->status, TL_RC_MISMATCH);
    assert_string_equal(field(r, "ledger", "totals"), "fork");
    assert_int_equal(by_check(r, "LEDGER_FORK"), 1);
    assert_int_equal(by_check(r, "LEDGER_DOUBLE_POSTING"), 0);
    done(r, q);

    /* same checksum and counts, another notional: a fork of content */
    q = req(1, T.last_seq);
    wm_at(q, s);
    q->watermark.total.notional += 1;
    r = run(q, true, false);
    assert_int_equal(r->status, TL_RC_MISMATCH);
    assert_string_equal(field(r, "ledger", "totals"), "content_fork");
    assert_int_equal(by_check(r, "LEDGER_FORK"), 1);
    done(r, q);
}

static void test_ledger_not_judged(void **state) {
    (void)state;
    uint64_t s = find_kind(T.last_seq / 2, TL_KIND_TRADE);
    /* ledger_seq outside the scope: named, never consistent */
    tl_reconcile_req *q = req(1, s - 5);
    wm_at(q, s);
    q->watermark.total.trades += 1; /* would be a mismatch if it were judged */
    result *r = run(q, true, false);
    assert_int_equal(r->status, TL_RC_CONSISTENT); /* the WAL range itself is clean */
    assert_string_equal(field(r, "ledger", "outcome"), "not_in_scope");
    assert_int_equal(by_check(r, "LEDGER_DOUBLE_POSTING"), 0);
    done(r, q);

    /* in the scope, but beyond the end of the log */
    q = req(1, T.last_seq + 100);
    wm_at(q, 1);
    q->watermark.ledger_seq = T.last_seq + 50;
    r = run(q, true, false);
    assert_string_equal(field(r, "ledger", "outcome"), "not_reached");
    done(r, q);

    /* no watermark accepted yet; ledger not configured */
    q = req(1, T.last_seq);
    r = run(q, true, false);
    assert_string_equal(field(r, "ledger", "outcome"), "no_watermark");
    done(r, q);
    q = req(1, T.last_seq);
    wm_at(q, s);
    r = run(q, false, false);
    assert_string_equal(field(r, "ledger", "outcome"), "not_configured");
    done(r, q);
}

/* A seq the log went past without (a corrupt record): named, not judged. */
static void test_ledger_not_read(void **state) {
    (void)state;
    char bent[512];
    snprintf(bent, sizeof bent, "%.400s/bent", tmp);
    write_wal(bent, 150);
    tl_reconcile_req *q = req(1, T.last_seq);
    wm_at(q, 150);
    char keep[sizeof wal_dir];
    memcpy(keep, wal_dir, sizeof keep);
    snprintf(wal_dir, sizeof wal_dir, "%s", bent);
    result *r = run(q, true, false);
    memcpy(wal_dir, keep, sizeof keep);
    write_wal(wal_dir, 0); /* the truth of the clean log again (same records) */
    assert_int_equal(r->status, TL_RC_MISMATCH); /* the WAL's own finding */
    assert_true(by_check(r, "WAL_CORRUPT") >= 1);
    assert_string_equal(field(r, "ledger", "outcome"), "not_read");
    assert_int_equal(by_check(r, "LEDGER_FORK"), 0);
    done(r, q);
}

/* A scope that starts mid-log: the sums anchor at the first CHECKPOINT read
 * (totals only), or not at all before it. */
static void test_ledger_mid_log(void **state) {
    (void)state;
    /* a segment after the first that holds a TRADE, then a CHECKPOINT */
    uint64_t seg = 0, ck = 0, before = 0;
    for (uint32_t i = 1; i + 1 < T.n_seg && ck == 0; i++) {
        uint64_t b = 0;
        for (uint64_t k = T.seg_start[i]; k < T.seg_start[i + 1]; k++) {
            if (T.kind[k] == TL_KIND_TRADE && b == 0)
                b = k;
            if (T.kind[k] == TL_KIND_CHECKPOINT && b != 0) {
                seg = T.seg_start[i];
                ck = k;
                before = b;
                break;
            }
        }
    }
    assert_true(seg > 1 && ck > before && before >= seg);
    uint64_t after = find_kind(ck + 1, TL_KIND_TRADE);

    tl_reconcile_req *q = req(seg, T.last_seq);
    wm_at(q, after);
    result *r = run(q, true, false);
    assert_int_equal(r->status, TL_RC_CONSISTENT);
    assert_string_equal(field(r, "ledger", "outcome"), "consistent");
    assert_string_equal(field(r, "ledger", "symbols"), "unanchored");
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)ck);
    const cJSON *ours =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r->j, "ledger"), "ours");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(ours, "anchor_seq")->valuestring, want);
    done(r, q);

    q = req(seg, T.last_seq);
    wm_at(q, after);
    q->watermark.total.trades++;
    r = run(q, true, false);
    assert_int_equal(r->status, TL_RC_MISMATCH);
    assert_int_equal(by_check(r, "LEDGER_DOUBLE_POSTING"), 1);
    done(r, q);

    /* before the segment's first CHECKPOINT: no anchor, said so */
    q = req(seg, T.last_seq);
    wm_at(q, before);
    q->watermark.total.trades++;
    r = run(q, true, false);
    assert_int_equal(r->status, TL_RC_CONSISTENT);
    assert_string_equal(field(r, "ledger", "outcome"), "unanchored");
    assert_int_equal(by_check(r, "LEDGER_DOUBLE_POSTING"), 0);
    done(r, q);
}

/* ---- peers ---- */

static void report(tl_peer_reported *p, uint8_t id, const uint64_t *seqs, uint32_t n) {
    memset(p, 0, sizeof *p);
    memset(p->node_id, id, TL_ID_BYTES);
    p->count = n;
    for (uint32_t i = 0; i < n; i++) {
        p->seq[i] = seqs[i];
        memcpy(p->hash[i], T.hash[seqs[i]], TL_STATE_HASH_BYTES);
    }
}

static void test_peers(void **state) {
    (void)state;
    uint64_t c1 = find_kind(T.last_seq / 3, TL_KIND_CHECKPOINT);
    uint64_t c2 = find_kind(c1 + 1, TL_KIND_CHECKPOINT);
    uint64_t c3 = find_kind(c2 + 1, TL_KIND_CHECKPOINT);
    /* A reported c3, c2, c1; B only c2, c1 (it lags): the last common is c2 */
    tl_reconcile_req *q = req(1, T.last_seq);
    q->n_peers = 2;
    report(&q->peers[0], 0xa1, (uint64_t[]){c3, c2, c1}, 3);
    report(&q->peers[1], 0xb2, (uint64_t[]){c2, c1}, 2);
    result *r = run(q, false, true);
    assert_int_equal(r->status, TL_RC_CONSISTENT);
    assert_string_equal(field(r, "peers", "outcome"), "consistent");
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)c2);
    assert_string_equal(field(r, "peers", "common_seq"), want);
    done(r, q);

    /* B's engine reached another state at c2 */
    q = req(1, T.last_seq);
    q->n_peers = 2;
    report(&q->peers[0], 0xa1, (uint64_t[]){c3, c2, c1}, 3);
    report(&q->peers[1], 0xb2, (uint64_t[]){c2, c1}, 2);
    q->peers[1].hash[0][5] ^= 1;
    r = run(q, false, true);
    assert_int_equal(r->status, TL_RC_MISMATCH);
    assert_string_equal(field(r, "peers", "outcome"), "mismatch");
    assert_int_equal(by_check(r, "STATE_HASH_DIVERGENCE"), 1);
    const cJSON *nodes =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r->j, "peers"), "nodes");
    assert_int_equal(cJSON_GetArraySize(nodes), 2);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(nodes, 0), "outcome")->valuestring,
        "consistent");
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(nodes, 1), "outcome")->valuestring,
        "mismatch");
    done(r, q);

    /* the common checkpoint outside the scope: named, not judged */
    q = req(1, c2 - 1);
    q->n_peers = 2;
    report(&q->peers[0], 0xa1, (uint64_t[]){c3, c2, c1}, 3);
    report(&q->peers[1], 0xb2, (uint64_t[]){c2, c1}, 2);
    q->peers[1].hash[0][5] ^= 1;
    r = run(q, false, true);
    assert_int_equal(r->status, TL_RC_CONSISTENT);
    assert_string_equal(field(r, "peers", "outcome"), "not_in_scope");
    done(r, q);

    /* nothing in common; nothing reported; a report that could not be read */
    q = req(1, T.last_seq);
    q->n_peers = 2;
    report(&q->peers[0], 0xa1, (uint64_t[]){c3}, 1);
    report(&q->peers[1], 0xb2, (uint64_t[]){c1}, 1);
    r = run(q, false, true);
    assert_string_equal(field(r, "peers", "outcome"), "no_common_checkpoint");
    done(r, q);
    q = req(1, T.last_seq);
    q->n_peers = 1;
    report(&q->peers[0], 0xa1, NULL, 0);
    r = run(q, false, true);
    assert_string_equal(field(r, "peers", "outcome"), "no_checkpoint");
    done(r, q);
    q = req(1, T.last_seq);
    q->n_peers = 1;
    report(&q->peers[0], 0xa1, (uint64_t[]){c1}, 1);
    q->peer_unread[0] = true;
    r = run(q, false, true);
    assert_string_equal(field(r, "peers", "outcome"), "unread");
    done(r, q);

    /* a seq every peer reported as a CHECKPOINT, where our log has another kind */
    uint64_t other = find_kind(c1 + 1, TL_KIND_ORDER_NEW);
    q = req(1, T.last_seq);
    q->n_peers = 1;
    report(&q->peers[0], 0xa1, (uint64_t[]){other}, 1);
    r = run(q, false, true);
    assert_string_equal(field(r, "peers", "outcome"), "not_a_checkpoint");
    done(r, q);
}

/* ---- core: what each peer reported, read from another thread ---- */

#define P_WIN    1024u
#define P_NOW    1000000000000ull
#define P_WRITES 20000u

typedef struct ph {
    tl_log log;
    void *win_mem;
    void *peer_mem;
    tl_peer p;
    tl_peer_local loc;
    uint8_t self[TL_ID_BYTES];
    uint64_t counter;
    _Atomic bool stop;
} ph;

static void ph_sink(void *ctx, const tl_finding *f) {
    (void)ctx;
    (void)f;
}

static void seq_hash(uint64_t seq, uint8_t out[TL_STATE_HASH_BYTES]) {
    for (uint32_t i = 0; i < TL_STATE_HASH_BYTES; i++)
        out[i] = (uint8_t)(seq * 13 + i);
}

static ph *ph_setup(void) {
    ph *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->win_mem = tu_aligned(64, tl_window_bytes(P_WIN));
    tl_log_init(&t->log, TL_DIALECT_TLYWAL1, t->win_mem, P_WIN, (tl_sink){ph_sink, t});
    tl_peer_cfg c;
    tl_peer_cfg_defaults(&c);
    c.node_count = 2;
    memset(c.nodes[0].node_id, 0xb0, TL_ID_BYTES);
    memset(c.nodes[1].node_id, 0xb1, TL_ID_BYTES);
    t->peer_mem = tu_aligned(64, tl_peer_mem_bytes(&c) + 64);
    tl_peer_init(&t->p, &c, &t->log, &t->log.win, t->peer_mem);
    memset(t->self, 0xaa, TL_ID_BYTES);
    t->loc.now_ns = P_NOW;
    t->loc.now_real_ns = P_NOW;
    t->loc.fence = 2;
    t->loc.attached = true;
    t->loc.leader_known = true;
    t->loc.is_leader = true;
    t->loc.self_id = t->self;
    t->counter = P_NOW - 1000000;
    return t;
}

static void ph_free(ph *t) {
    free(t->win_mem);
    free(t->peer_mem);
    free(t);
}

/* A standby's datagram from node i at seq (held: our log is not there). */
static void ph_rx(ph *t, uint32_t i, uint16_t kind, uint64_t seq, uint64_t counter) {
    tl_peer_ev ev;
    memset(&ev, 0, sizeof ev);
    ev.type = TL_PEER_EV_DGRAM;
    ev.node = (uint8_t)i;
    ev.msg.kind = kind;
    ev.msg.role = TL_PEER_STANDBY;
    memcpy(ev.msg.node_id, t->p.nodes[i].id, TL_ID_BYTES);
    ev.msg.counter = counter;
    ev.msg.ts_ns = t->loc.now_real_ns;
    ev.msg.applied_seq = seq;
    ev.msg.fence = 2;
    if (kind == TL_PEER_CHECKPOINT)
        seq_hash(seq, ev.msg.state_hash);
    tl_peer_receive(&t->p, &t->loc, &ev);
}

static void test_peer_reported(void **state) {
    (void)state;
    ph *t = ph_setup();
    tl_peer_reported r;
    assert_true(tl_peer_reported_read(&t->p, 0, &r));
    assert_int_equal(r.count, 0);
    assert_memory_equal(r.node_id, t->p.nodes[0].id, TL_ID_BYTES);
    /* five CHECKPOINTs, a HEARTBEAT and a replay: the newest four CHECKPOINTs */
    for (uint64_t k = 1; k <= 5; k++)
        ph_rx(t, 0, TL_PEER_CHECKPOINT, 100 * k, ++t->counter);
    ph_rx(t, 0, TL_PEER_HEARTBEAT, 777, ++t->counter);
    ph_rx(t, 0, TL_PEER_CHECKPOINT, 900, t->counter); /* replay: rejected */
    assert_true(tl_peer_reported_read(&t->p, 0, &r));
    assert_int_equal(r.count, TL_PEER_REPORTED_MAX);
    uint8_t want[TL_STATE_HASH_BYTES];
    for (uint32_t i = 0; i < r.count; i++) {
        assert_int_equal(r.seq[i], 100 * (5 - i));
        seq_hash(r.seq[i], want);
        assert_memory_equal(r.hash[i], want, TL_STATE_HASH_BYTES);
    }
    assert_true(tl_peer_reported_read(&t->p, 1, &r));
    assert_int_equal(r.count, 0);
    ph_free(t);
}

static void *ph_writer(void *arg) {
    ph *t = arg;
    for (uint64_t k = 1; k <= P_WRITES; k++)
        ph_rx(t, 1, TL_PEER_CHECKPOINT, k, ++t->counter);
    atomic_store(&t->stop, true);
    return NULL;
}

/* The loop writes while another thread reads: every copy read is whole (each
 * seq with its own hash, newest first, no slot from two writes). */
static void test_peer_reported_concurrent(void **state) {
    (void)state;
    ph *t = ph_setup();
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, ph_writer, t), 0);
    uint64_t reads = 0, misses = 0;
    uint8_t want[TL_STATE_HASH_BYTES];
    while (!atomic_load(&t->stop)) {
        tl_peer_reported r;
        if (!tl_peer_reported_read(&t->p, 1, &r)) {
            misses++;
            continue;
        }
        reads++;
        for (uint32_t i = 0; i < r.count; i++) {
            if (i > 0)
                assert_int_equal(r.seq[i], r.seq[i - 1] - 1);
            seq_hash(r.seq[i], want);
            assert_memory_equal(r.hash[i], want, TL_STATE_HASH_BYTES);
        }
    }
    pthread_join(th, NULL);
    tl_peer_reported r;
    assert_true(tl_peer_reported_read(&t->p, 1, &r));
    assert_int_equal(r.count, TL_PEER_REPORTED_MAX);
    assert_int_equal(r.seq[0], P_WRITES);
    print_message("concurrent: %llu whole reads, %llu gave up\n", (unsigned long long)reads,
                  (unsigned long long)misses);
    ph_free(t);
}

/* ---- core: tl_ledger_judge alone ---- */

typedef struct sink {
    unsigned n;
    tl_finding f[8];
} sink;
static void collect(void *ctx, const tl_finding *f) {
    sink *s = ctx;
    if (s->n < 8)
        s->f[s->n] = *f;
    s->n++;
}

static void test_judge_pure(void **state) {
    (void)state;
    sink k = {0};
    tl_log log;
    memset(&log, 0, sizeof log);
    log.sink = (tl_sink){collect, &k};
    log.next_finding_id = 1;
    tl_ledger_symfigs mine[2] = {{.symbol = 3, .f = {2, 20, 2000}}, {.symbol = 9, .f = {1, 5, 50}}};
    tl_ledger_ours o = {
        .seq = 40, .checksum = 0xabc, .total = {3, 25, 2050}, .symbols = mine, .symbol_count = 2};
    tl_ledger_wm *wm = calloc(1, sizeof *wm);
    wm->ledger_seq = 40;
    wm->checksum = 0xabc;
    wm->total = o.total;
    wm->symbol_count = 2;
    wm->symbols[0] = mine[1]; /* any order */
    wm->symbols[1] = mine[0];
    uint32_t facts = 99;
    assert_int_equal(tl_ledger_judge(&log, wm, &o, &facts), TL_LEDGER_AGREE);
    assert_int_equal(k.n, 0);
    assert_int_equal(facts, 0);

    /* the ledger leaves out symbol 9 and posts its trade on 3 twice over */
    wm->symbol_count = 1;
    wm->symbols[0] = (tl_ledger_symfigs){.symbol = 3, .f = {3, 25, 2050}};
    assert_int_equal(tl_ledger_judge(&log, wm, &o, &facts), TL_LEDGER_AGREE);
    assert_int_equal(facts, 2);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.f[0].check, TL_CHECK_LEDGER_DOUBLE_POSTING);
    assert_int_equal(k.f[0].symbol, 3);
    assert_int_equal(k.f[1].check, TL_CHECK_LEDGER_MISSING_POSTING);
    assert_int_equal(k.f[1].symbol, 9);
    assert_int_equal(k.f[0].seq, 40);

    /* wrapping: one trade fewer across 2^64 is still "missing" */
    k.n = 0;
    o.total.trades = 0;
    wm->total.trades = UINT64_MAX;
    o.symbols = NULL;
    o.symbol_count = 0;
    assert_int_equal(tl_ledger_judge(&log, wm, &o, NULL), TL_LEDGER_MISSING);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.f[0].symbol, 0);

    /* the checksum first */
    k.n = 0;
    wm->checksum = 0xabd;
    assert_int_equal(tl_ledger_judge(&log, wm, &o, NULL), TL_LEDGER_CHAIN_FORK);
    assert_int_equal(k.n, 1);
    assert_int_equal(k.f[0].check, TL_CHECK_LEDGER_FORK);
    assert_int_equal(k.f[0].checksum, 0xabd);
    assert_int_equal(k.f[0].checksum2, 0xabc);
    free(wm);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge_pure),
        cmocka_unit_test(test_peer_reported),
        cmocka_unit_test(test_peer_reported_concurrent),
        cmocka_unit_test(test_ledger_consistent),
        cmocka_unit_test(test_ledger_double_posting),
        cmocka_unit_test(test_ledger_missing_posting),
        cmocka_unit_test(test_ledger_fork),
        cmocka_unit_test(test_ledger_not_judged),
        cmocka_unit_test(test_ledger_mid_log),
        cmocka_unit_test(test_ledger_not_read),
        cmocka_unit_test(test_peers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
