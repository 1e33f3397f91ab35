/* test_loop_bundle.c: the reconciler loop's forensic bundle requests
 * (core/loop.c, TL_OUT_BUNDLE; behavior.md "Forensic bundle" and the action
 * table), driven through a WAL source of real records:
 *   - a SEV1 (SEQ_GAP: log integrity, CANCEL_ONLY + bundle) requests one
 *     bundle for its incident, the incident's seq range widened by
 *     bundle_margin on both sides (and clamped at seq 1);
 *   - a second SEV1 of the same incident whose action is coalesced into the
 *     one still in flight requests again, widened to cover both;
 *   - bundle.auto = false: findings and actions as before, no request;
 *   - the policy's rows: which families ask for a bundle (core/policy.h). */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "core/policy.h"

#define MAXREC    4096u
#define REC_BYTES 64u

typedef struct w {
    uint8_t (*recs)[REC_BYTES];
    uint64_t nrecs;
    uint64_t next;
    bool seg_sent;
    tl_seg_hdr hdr;
    uint64_t parent;
    uint64_t seq;
    /* what came out */
    tl_out outs[512];
    uint32_t nouts;
    uint32_t sends;
    tl_loop *loop;
    void *mem;
} w;

/* Appends heartbeats for seqs [seq, seq + n); skip leaves a gap first. */
static void records(w *s, uint64_t n, uint64_t skip) {
    s->seq += skip;
    for (uint64_t i = 0; i < n; i++) {
        assert_true(s->nrecs < MAXREC);
        tl_rec_meta m = {.parent = s->parent,
                         .seq = s->seq++,
                         .fence = 1,
                         .ts_ns = 1000 + s->seq,
                         .kind = TL_KIND_HEARTBEAT,
                         .symbol = 0};
        uint8_t *r = s->recs[s->nrecs++];
        assert_true(tl_rec_encode(r, REC_BYTES, &m, NULL, 0) > 0);
        s->parent = tl_rec_hdr_of(r)->checksum;
    }
}

static bool wal_poll(void *ctx, tl_wal_ev *ev) {
    w *s = ctx;
    memset(ev, 0, sizeof *ev);
    if (!s->seg_sent) {
        s->seg_sent = true;
        memset(&s->hdr, 0, sizeof s->hdr);
        s->hdr.first_seq = 1;
        s->hdr.fence = 1;
        memset(s->hdr.leader_id, 0x11, 16);
        ev->type = TL_WAL_EV_SEGMENT;
        ev->hdr = &s->hdr;
        ev->name_first_seq = 1;
        ev->loc.segment = 1;
        return true;
    }
    if (s->next >= s->nrecs)
        return false;
    ev->type = TL_WAL_EV_RECORD;
    tl_rec_view_native(&ev->view, s->recs[s->next], false);
    ev->loc.segment = 1;
    ev->loc.offset = 4096 + s->next * REC_BYTES;
    s->next++;
    return true;
}

static bool ctl_poll(void *ctx, tl_ctl_msg *m) {
    (void)ctx;
    (void)m;
    return false;
}

/* Accepted, never answered: the first action stays in flight, so a repeat
 * is coalesced into it. */
static int send_op(void *ctx, const tl_action *a, uint64_t now_real_ns) {
    (void)a;
    (void)now_real_ns;
    w *s = ctx;
    s->sends++;
    return 0;
}

static bool reply_poll(void *ctx, tl_cmd_reply *r) {
    (void)ctx;
    (void)r;
    return false;
}

static void fast_mode(void *ctx, uint32_t scope, uint8_t mode) {
    (void)ctx;
    (void)scope;
    (void)mode;
}

static void fast_withdrawals(void *ctx, bool on) {
    (void)ctx;
    (void)on;
}

static bool emit(void *ctx, const tl_out *o) {
    w *s = ctx;
    assert_true(s->nouts < 512);
    s->outs[s->nouts++] = *o;
    return true;
}

static void start(w *s, bool bundle_auto, uint64_t margin) {
    memset(s, 0, sizeof *s);
    s->recs = calloc(MAXREC, REC_BYTES);
    assert_non_null(s->recs);
    s->seq = 1;
    tl_loop_cfg lc;
    tl_loop_cfg_defaults(&lc);
    lc.ring = false;
    lc.window_records = 1u << 12;
    lc.max_symbols = 64;
    lc.max_inflight = 32;
    lc.backlog = 256;
    lc.tag_seed = 42;
    lc.id_seed = 7;
    lc.bundle_margin = margin;
    lc.policy.bundle_auto = bundle_auto;
    lc.policy.armed = true;
    lc.policy.dry_run = false;
    s->mem = tu_aligned(64, tl_loop_mem_bytes(&lc));
    s->loop = tu_aligned(64, sizeof *s->loop);
    tl_loop_ops ops = {
        .ctx = s,
        .wal_poll = wal_poll,
        .ctl_poll = ctl_poll,
        .send = send_op,
        .reply_poll = reply_poll,
        .fast_mode = fast_mode,
        .fast_withdrawals = fast_withdrawals,
        .emit = emit,
    };
    tl_loop_init(s->loop, &lc, &ops, s->mem);
}

static void stop(w *s) {
    free(s->loop);
    free(s->mem);
    free(s->recs);
}

static void run(w *s) {
    /* Until the source is drained (each step takes up to a budget). */
    for (int i = 0; i < 64; i++)
        tl_loop_step(s->loop, 1000000000ull + (uint64_t)i * 1000000ull,
                     1795000000000000000ull + (uint64_t)i * 1000000ull);
    assert_int_equal(s->next, s->nrecs);
}

static uint32_t count(const w *s, uint8_t type, uint16_t check) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->nouts; i++)
        if (s->outs[i].type == type &&
            (type != TL_OUT_FINDING || s->outs[i].u.finding.check == check))
            n++;
    return n;
}

static const tl_out *nth(const w *s, uint8_t type, uint16_t check, uint32_t k) {
    for (uint32_t i = 0; i < s->nouts; i++)
        if (s->outs[i].type == type &&
            (type != TL_OUT_FINDING || s->outs[i].u.finding.check == check) && k-- == 0)
            return &s->outs[i];
    return NULL;
}

static void test_sev1_requests_with_margin(void **state) {
    (void)state;
    w s;
    start(&s, true, 100);
    records(&s, 499, 0); /* 1..499 */
    records(&s, 200, 1); /* 501..700: 500 is missing */
    run(&s);
    assert_int_equal(count(&s, TL_OUT_FINDING, TL_CHECK_SEQ_GAP), 1);
    const tl_finding *f = &nth(&s, TL_OUT_FINDING, TL_CHECK_SEQ_GAP, 0)->u.finding;
    assert_int_equal(f->severity, TL_SEV_SEV1);
    assert_true(f->incident != 0);
    assert_true(s.sends > 0); /* CANCEL_ONLY went out */
    assert_int_equal(count(&s, TL_OUT_BUNDLE, 0), 1);
    const tl_bundle_req *b = &nth(&s, TL_OUT_BUNDLE, 0, 0)->u.bundle;
    assert_int_equal(b->incident, f->incident);
    assert_int_equal(b->finding_id, f->id);
    assert_true(f->seq >= 500 && f->seq <= 501);
    assert_int_equal(b->from_seq, f->seq - 100);
    assert_int_equal(b->to_seq, f->seq + 100);
    /* the request comes after its finding (audit order) */
    const tl_out *fo = nth(&s, TL_OUT_FINDING, TL_CHECK_SEQ_GAP, 0);
    const tl_out *bo = nth(&s, TL_OUT_BUNDLE, 0, 0);
    assert_true(fo < bo);
    stop(&s);
}

static void test_margin_clamped_at_one(void **state) {
    (void)state;
    w s;
    start(&s, true, 1000);
    records(&s, 9, 0); /* 1..9 */
    records(&s, 5, 1); /* 11..15 */
    run(&s);
    assert_int_equal(count(&s, TL_OUT_BUNDLE, 0), 1);
    const tl_bundle_req *b = &nth(&s, TL_OUT_BUNDLE, 0, 0)->u.bundle;
    const tl_finding *f = &nth(&s, TL_OUT_FINDING, TL_CHECK_SEQ_GAP, 0)->u.finding;
    assert_int_equal(b->from_seq, 1);
    assert_int_equal(b->to_seq, f->seq + 1000);
    stop(&s);
}

static void test_coalesced_repeat_still_requests(void **state) {
    (void)state;
    w s;
    start(&s, true, 10);
    records(&s, 99, 0);  /* 1..99 */
    records(&s, 100, 1); /* 101..200 */
    records(&s, 100, 1); /* 202..301 */
    run(&s);
    assert_int_equal(count(&s, TL_OUT_FINDING, TL_CHECK_SEQ_GAP), 2);
    const tl_finding *f1 = &nth(&s, TL_OUT_FINDING, TL_CHECK_SEQ_GAP, 0)->u.finding;
    const tl_finding *f2 = &nth(&s, TL_OUT_FINDING, TL_CHECK_SEQ_GAP, 1)->u.finding;
    assert_int_equal(f1->incident, f2->incident); /* one incident */
    tl_loop_stats st;
    tl_loop_stats_snapshot(s.loop, &st);
    /* the repeat's CANCEL_ONLY merged into the one in flight ... */
    assert_true(st.c.actions_coalesced >= 1);
    /* ... and still asked for the incident's bundle, widened to both */
    assert_int_equal(count(&s, TL_OUT_BUNDLE, 0), 2);
    const tl_bundle_req *b2 = &nth(&s, TL_OUT_BUNDLE, 0, 1)->u.bundle;
    assert_int_equal(b2->incident, f1->incident);
    assert_int_equal(b2->finding_id, f2->id);
    assert_int_equal(b2->from_seq, f1->seq - 10);
    assert_int_equal(b2->to_seq, f2->seq + 10);
    stop(&s);
}

static void test_bundle_auto_off(void **state) {
    (void)state;
    w s;
    start(&s, false, 100);
    records(&s, 499, 0);
    records(&s, 200, 1);
    run(&s);
    assert_int_equal(count(&s, TL_OUT_FINDING, TL_CHECK_SEQ_GAP), 1);
    assert_true(s.sends > 0); /* the action still goes */
    assert_int_equal(count(&s, TL_OUT_BUNDLE, 0), 0);
    stop(&s);
}

/* The action table's bundle column (behavior.md): every SEV1 row, and
 * STALE_PEER_LEADER's alert; not STANDBY_LAG, settlement or WAL lag. */
static void test_policy_rows(void **state) {
    (void)state;
    static const struct {
        uint16_t check;
        uint8_t sev;
        bool bundle;
    } rows[] = {
        {TL_CHECK_FORK, TL_SEV_SEV1, true},
        {TL_CHECK_SEQ_GAP, TL_SEV_SEV1, true},
        {TL_CHECK_STALE_PEER_LEADER, TL_SEV_SEV2, true},
        {TL_CHECK_STANDBY_LAG, TL_SEV_SEV2, false},
        {TL_CHECK_SETTLEMENT_LAG, TL_SEV_SEV1, false},
        {TL_CHECK_WAL_LAG, TL_SEV_SEV2, false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        tl_finding f;
        tl_finding_init(&f, (enum tl_check)rows[i].check);
        f.severity = rows[i].sev;
        f.seq = 10;
        tl_action acts[4];
        int n = tl_policy_plan(&f, TL_DIALECT_TLYWAL1, acts, 4);
        bool any = false;
        for (int k = 0; k < n; k++)
            any |= acts[k].bundle != 0;
        bool wants = tl_policy_wants_bundle(&f, acts, n);
        if (wants != rows[i].bundle)
            fail_msg("%s: bundle %d, the table says %d",
                     tl_check_name((enum tl_check)rows[i].check), wants, rows[i].bundle);
        /* a row with actions carries the flag on them; an alert-only row
         * (no action) asks through tl_policy_wants_bundle alone */
        if (n > 0)
            assert_int_equal(any, rows[i].bundle);
    }
    /* STALE_PEER_LEADER plans no action (no local halt) */
    tl_finding f;
    tl_finding_init(&f, TL_CHECK_STALE_PEER_LEADER);
    f.severity = TL_SEV_SEV2;
    tl_action acts[4];
    assert_int_equal(tl_policy_plan(&f, TL_DIALECT_TLYWAL1, acts, 4), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sev1_requests_with_margin),
        cmocka_unit_test(test_margin_clamped_at_one),
        cmocka_unit_test(test_coalesced_repeat_still_requests),
        cmocka_unit_test(test_bundle_auto_off),
        cmocka_unit_test(test_policy_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
