/* test_stream.c: reading rules 4-6 and the cross-source comparison of
 * core/stream.c, on records built with core/record.c. Every case asserts the
 * exact findings, and that one fact makes one finding even when both the
 * ring and the WAL stream see it. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/stream.h"

enum { WIN = 64, MAXF = 64 };

typedef struct fixture {
    tl_log log;
    tl_stream wal;
    tl_stream ring;
    void *mem;
    tl_finding f[MAXF];
    int nf;
    /* the engine's chain */
    uint64_t seq;
    uint64_t parent;
    uint64_t fence;
    uint8_t rec[1024] __attribute__((aligned(8)));
    uint8_t rec2[1024] __attribute__((aligned(8)));
} fixture;

static void collect(void *ctx, const tl_finding *f) {
    fixture *x = ctx;
    assert_true(x->nf < MAXF);
    x->f[x->nf++] = *f;
}

static int setup(void **state) {
    fixture *x = calloc(1, sizeof *x);
    x->mem = tu_aligned(64, tl_window_bytes(WIN));
    tl_log_init(&x->log, TL_DIALECT_TLYWAL1, x->mem, WIN, (tl_sink){collect, x});
    tl_stream_init(&x->wal, &x->log, TL_SOURCE_WAL);
    tl_stream_init(&x->ring, &x->log, TL_SOURCE_RING);
    uint8_t leader[16] = {1};
    tl_stream_anchor(&x->wal, 1, 0, 1, leader);
    tl_stream_anchor(&x->ring, 1, 0, 1, leader);
    x->seq = 1;
    x->parent = 0;
    x->fence = 1;
    *state = x;
    return 0;
}

static int teardown(void **state) {
    fixture *x = *state;
    free(x->mem);
    free(x);
    return 0;
}

/* Encodes the next record of the chain into buf (does not advance). */
static uint32_t make(fixture *x, uint8_t *buf, uint64_t seq, uint64_t parent, uint64_t fence,
                     uint16_t kind, int64_t qty) {
    (void)x;
    tl_rec_meta m = {.parent = parent,
                     .seq = seq,
                     .fence = fence,
                     .ts_ns = 1000 + seq,
                     .kind = kind,
                     .symbol = 1};
    if (kind == TL_KIND_TRADE) {
        tl_body_trade b = {.trade_id = seq, .price = 100, .qty = qty, .taker_side = 1};
        return tl_rec_encode(buf, 1024, &m, &b, sizeof b);
    }
    if (kind == TL_KIND_HEARTBEAT)
        return tl_rec_encode(buf, 1024, &m, NULL, 0);
    TL_ASSERT(0);
    return 0;
}

/* Next record of the chain, advancing it. */
static const uint8_t *next(fixture *x, int64_t qty) {
    make(x, x->rec, x->seq, x->parent, x->fence, TL_KIND_TRADE, qty);
    x->parent = tl_rec_hdr_of(x->rec)->checksum;
    x->seq++;
    return x->rec;
}

static tl_stream_result feed(fixture *x, tl_stream *s, const uint8_t *rec) {
    (void)x;
    tl_rec_view v;
    tl_rec_view_native(&v, rec, false);
    tl_loc loc = {.segment = 1, .offset = 4096};
    return tl_stream_record(s, &v, &loc);
}

static void test_clean_both_sources(void **state) {
    fixture *x = *state;
    uint8_t copy[32][1024] __attribute__((aligned(8)));
    for (int i = 0; i < 32; i++) {
        memcpy(copy[i], next(x, i + 1), 1024);
        tl_stream_result r = feed(x, &x->ring, copy[i]);
        assert_int_equal(r.order, TL_ORDER_NEXT);
        assert_int_equal(r.seen, TL_SEEN_FIRST);
    }
    for (int i = 0; i < 32; i++) {
        tl_stream_result r = feed(x, &x->wal, copy[i]);
        assert_int_equal(r.order, TL_ORDER_NEXT);
        assert_int_equal(r.seen, TL_SEEN_MATCH);
    }
    assert_int_equal(x->nf, 0);
}

static void test_wal_gap_is_seq_gap_ring_gap_is_not(void **state) {
    fixture *x = *state;
    feed(x, &x->wal, next(x, 1));
    feed(x, &x->ring, x->rec);
    next(x, 2); /* seq 2 never reaches either source */
    const uint8_t *r3 = next(x, 3);
    tl_stream_result r = feed(x, &x->ring, r3);
    assert_int_equal(r.order, TL_ORDER_GAP);
    assert_int_equal(x->nf, 0);
    r = feed(x, &x->wal, r3);
    assert_int_equal(r.order, TL_ORDER_GAP);
    assert_int_equal(x->nf, 1);
    assert_int_equal(x->f[0].check, TL_CHECK_SEQ_GAP);
    assert_int_equal(x->f[0].cls, TL_CLASS_MISSING);
    assert_int_equal(x->f[0].seq, 3);
    assert_int_equal(x->f[0].seq2, 2);
    assert_int_equal(x->f[0].source, TL_SOURCE_WAL);
    assert_int_equal(x->f[0].rule, TL_RULE_SEQ);
    assert_int_equal(x->wal.expected_seq, 4);
}

static void test_lower_same_source_is_duplicate_other_source_is_not(void **state) {
    fixture *x = *state;
    uint8_t r1[1024] __attribute__((aligned(8)));
    memcpy(r1, next(x, 1), 1024);
    feed(x, &x->wal, r1);
    feed(x, &x->wal, next(x, 2));
    feed(x, &x->ring, r1); /* the ring's first copy of 1: expected */
    assert_int_equal(x->nf, 0);
    tl_stream_result r = feed(x, &x->wal, r1); /* the WAL again: a duplicate */
    assert_int_equal(r.order, TL_ORDER_LOWER);
    assert_int_equal(r.seen, TL_SEEN_DUPLICATE);
    assert_int_equal(x->nf, 1);
    assert_int_equal(x->f[0].check, TL_CHECK_SEQ_DUPLICATE);
    assert_int_equal(x->f[0].severity, TL_SEV_INFO);
    assert_int_equal(x->wal.expected_seq, 3);
}

static void test_lower_other_checksum_is_fork_only(void **state) {
    fixture *x = *state;
    feed(x, &x->wal, next(x, 1));
    feed(x, &x->wal, next(x, 2));
    make(x, x->rec2, 1, 0, 1, TL_KIND_TRADE, 99); /* another seq 1 */
    tl_stream_result r = feed(x, &x->wal, x->rec2);
    assert_int_equal(r.order, TL_ORDER_LOWER);
    assert_int_equal(r.seen, TL_SEEN_CONFLICT);
    assert_int_equal(x->nf, 1);
    assert_int_equal(x->f[0].check, TL_CHECK_FORK);
    assert_int_equal(x->f[0].cls, TL_CLASS_OUT_OF_ORDER);
    assert_int_equal(x->f[0].seq, 1);
    assert_true(x->f[0].checksum == tl_rec_hdr_of(x->rec2)->checksum);
    assert_int_equal(x->f[0].source2, TL_SOURCE_WAL);
    /* The same fork seen again from the ring: still one finding. */
    feed(x, &x->ring, x->rec2);
    assert_int_equal(x->nf, 1);
}

static void test_ring_vs_wal_fork_and_chain_echo(void **state) {
    fixture *x = *state;
    /* seq 1 agreed; the ring carries X at 2, the WAL persists Y at 2, and 3
     * chains from Y (what was persisted). */
    uint8_t r1[1024] __attribute__((aligned(8)));
    memcpy(r1, next(x, 1), 1024);
    feed(x, &x->ring, r1);
    uint64_t p1 = x->parent;
    make(x, x->rec2, 2, p1, 1, TL_KIND_TRADE, 50); /* X */
    feed(x, &x->ring, x->rec2);
    uint8_t y[1024] __attribute__((aligned(8)));
    memcpy(y, next(x, 2), 1024); /* Y */
    uint8_t r3[1024] __attribute__((aligned(8)));
    memcpy(r3, next(x, 3), 1024);
    feed(x, &x->ring, r3); /* parent(3) = Y != X, but X is provisional */
    assert_int_equal(x->nf, 0);
    feed(x, &x->wal, r1);
    feed(x, &x->wal, y);
    assert_int_equal(x->nf, 1);
    assert_int_equal(x->f[0].check, TL_CHECK_FORK);
    assert_int_equal(x->f[0].seq, 2);
    assert_int_equal(x->f[0].source, TL_SOURCE_WAL);
    assert_int_equal(x->f[0].source2, TL_SOURCE_RING);
    feed(x, &x->wal, r3); /* the WAL's own chain is intact */
    assert_int_equal(x->nf, 1);
}

static void test_chain_break_once(void **state) {
    fixture *x = *state;
    uint8_t r1[1024] __attribute__((aligned(8)));
    memcpy(r1, next(x, 1), 1024);
    feed(x, &x->wal, r1);
    feed(x, &x->ring, r1);
    make(x, x->rec2, 2, 12345, 1, TL_KIND_TRADE, 2); /* broken parent */
    feed(x, &x->ring, x->rec2);                      /* predecessor is durable: the ring names it */
    assert_int_equal(x->nf, 1);
    assert_int_equal(x->f[0].check, TL_CHECK_CHAIN_BREAK);
    assert_int_equal(x->f[0].source, TL_SOURCE_RING);
    assert_int_equal(x->f[0].rule, TL_RULE_PARENT);
    assert_true(x->f[0].checksum2 == tl_rec_hdr_of(r1)->checksum);
    feed(x, &x->wal, x->rec2); /* the WAL sees the same fact: no second finding */
    assert_int_equal(x->nf, 1);
}

static void test_fence_regression_and_unannounced(void **state) {
    fixture *x = *state;
    feed(x, &x->wal, next(x, 1));
    x->fence = 3; /* a rise without LEADER_CHANGE */
    const uint8_t *r = next(x, 2);
    feed(x, &x->ring, r);
    feed(x, &x->wal, r);
    assert_int_equal(x->nf, 1);
    assert_int_equal(x->f[0].check, TL_CHECK_FENCE_UNANNOUNCED);
    assert_int_equal(x->f[0].fence, 3);
    assert_int_equal(x->f[0].fence2, 1);
    /* followed afterwards: no repeat */
    feed(x, &x->wal, next(x, 3));
    assert_int_equal(x->nf, 1);
    x->fence = 2; /* a stale writer */
    feed(x, &x->wal, next(x, 4));
    assert_int_equal(x->nf, 2);
    assert_int_equal(x->f[1].check, TL_CHECK_FENCE_REGRESSION);
    assert_int_equal(x->f[1].fence2, 3);
    assert_int_equal(x->wal.fence, 3); /* the fence in force never goes down */
}

static void test_leader_change(void **state) {
    fixture *x = *state;
    feed(x, &x->wal, next(x, 1));
    tl_body_leader_change b = {.new_fence = 5, .prev_fence = 1, .leader_id = {7}};
    tl_rec_meta m = {
        .parent = x->parent, .seq = 2, .fence = 5, .ts_ns = 9, .kind = TL_KIND_LEADER_CHANGE};
    tl_rec_encode(x->rec, 1024, &m, &b, sizeof b);
    feed(x, &x->wal, x->rec);
    assert_int_equal(x->nf, 0);
    assert_int_equal(x->wal.fence, 5);
    assert_int_equal(x->wal.leader_id[0], 7);
    /* A LEADER_CHANGE whose prev_fence is not the fence in force. */
    x->parent = tl_rec_hdr_of(x->rec)->checksum;
    tl_body_leader_change bad = {.new_fence = 9, .prev_fence = 4, .leader_id = {8}};
    tl_rec_meta m2 = {
        .parent = x->parent, .seq = 3, .fence = 9, .ts_ns = 10, .kind = TL_KIND_LEADER_CHANGE};
    tl_rec_encode(x->rec, 1024, &m2, &bad, sizeof bad);
    feed(x, &x->wal, x->rec);
    assert_int_equal(x->nf, 1);
    assert_int_equal(x->f[0].check, TL_CHECK_FENCE_UNANNOUNCED);
    assert_int_equal(x->f[0].reason, TL_REASON_LEADER_CHANGE);
}

static void test_lower_older_than_window_is_regression(void **state) {
    fixture *x = *state;
    uint8_t r1[1024] __attribute__((aligned(8)));
    memcpy(r1, next(x, 1), 1024);
    feed(x, &x->wal, r1);
    for (int i = 0; i < WIN + 4; i++)
        feed(x, &x->wal, next(x, 1));
    assert_int_equal(x->nf, 0);
    tl_stream_result r = feed(x, &x->wal, r1);
    assert_int_equal(r.order, TL_ORDER_LOWER);
    assert_int_equal(r.seen, TL_SEEN_UNCOMPARED);
    assert_int_equal(x->nf, 1);
    assert_int_equal(x->f[0].check, TL_CHECK_SEQ_REGRESSION);
    assert_int_equal(x->f[0].reason, TL_REASON_LOWER_EVICTED);
    /* A ring REPLAY that old is only counted. */
    tl_rec_view v;
    tl_rec_view_native(&v, r1, true);
    tl_loc loc = {0, 0};
    tl_stream_result rr = tl_stream_record(&x->ring, &v, &loc);
    (void)rr;
    assert_int_equal(x->nf, 1);
}

static void test_reordered_pair(void **state) {
    fixture *x = *state;
    feed(x, &x->wal, next(x, 1));
    uint8_t r2[1024] __attribute__((aligned(8)));
    memcpy(r2, next(x, 2), 1024);
    feed(x, &x->wal, next(x, 3)); /* 3 before 2 */
    feed(x, &x->wal, r2);
    assert_int_equal(x->nf, 2);
    assert_int_equal(x->f[0].check, TL_CHECK_SEQ_GAP);
    assert_int_equal(x->f[1].check, TL_CHECK_SEQ_REGRESSION);
    assert_int_equal(x->f[1].reason, TL_REASON_LOWER_UNSEEN);
    assert_int_equal(x->wal.expected_seq, 4);
}

static void test_resync_learns_from_window(void **state) {
    fixture *x = *state;
    uint8_t recs[8][1024] __attribute__((aligned(8)));
    for (int i = 0; i < 8; i++) {
        memcpy(recs[i], next(x, i + 1), 1024);
        feed(x, &x->wal, recs[i]);
    }
    /* the ring was lapped and re-attaches at 6; 1..5 came from the WAL */
    tl_stream_resync(&x->ring, 6);
    assert_true(x->ring.parent_known);
    feed(x, &x->ring, recs[5]);
    feed(x, &x->ring, recs[6]);
    feed(x, &x->ring, recs[4]); /* a ring record below E: compared, expected */
    assert_int_equal(x->nf, 0);
}

static void test_segment_rules(void **state) {
    fixture *x = *state;
    tl_stream s;
    tl_stream_init(&s, &x->log, TL_SOURCE_WAL);
    tl_seg_hdr h;
    memset(&h, 0, sizeof h);
    h.segment_index = 0;
    h.first_seq = 1;
    h.fence = 1;
    tl_loc loc = {1, 0};
    assert_false(tl_stream_segment(&s, &h, 1, &loc));
    assert_int_equal(x->nf, 0);
    s.expected_seq = 40;
    s.expected_parent = 777;
    h.segment_index = 1;
    h.first_seq = 40;
    h.prev_checksum = 777;
    loc.segment = 40;
    assert_false(tl_stream_segment(&s, &h, 40, &loc));
    assert_int_equal(x->nf, 0);
    /* a missing segment: index jumps */
    h.segment_index = 3;
    h.first_seq = 90;
    h.prev_checksum = 5;
    loc.segment = 90;
    assert_true(tl_stream_segment(&s, &h, 90, &loc));
    assert_int_equal(x->nf, 1);
    assert_int_equal(x->f[0].check, TL_CHECK_SEGMENT_GAP);
    assert_int_equal(x->f[0].reason, TL_REASON_SEGMENT_INDEX);
    assert_int_equal(s.expected_seq, 90);
    /* header fence not the one in force */
    h.segment_index = 4;
    h.first_seq = 90;
    h.prev_checksum = 5;
    h.fence = 2;
    assert_false(tl_stream_segment(&s, &h, 90, &loc));
    assert_int_equal(x->nf, 2);
    assert_int_equal(x->f[1].check, TL_CHECK_FENCE_UNANNOUNCED);
    assert_int_equal(x->f[1].reason, TL_REASON_HEADER_FENCE);
}

static void test_xwal1_events(void **state) {
    fixture *x = *state;
    void *mem = tu_aligned(64, tl_window_bytes(WIN));
    tl_log log;
    tl_log_init(&log, TL_DIALECT_XWAL1, mem, WIN, (tl_sink){collect, x});
    tl_stream s;
    tl_stream_init(&s, &log, TL_SOURCE_WAL);
    /* stale_leader's shape: 3(1) 6(1) 10(2) 8(1) 9(1) 14(2) */
    struct {
        uint64_t ev[4];
        uint32_t n;
        uint64_t fence;
        uint64_t checksum;
    } recs[] = {
        {{2, 3}, 2, 1, 0x11}, {{5, 6}, 2, 1, 0x22}, {{8, 9, 10}, 3, 2, 0x33},
        {{7, 8}, 2, 1, 0x44}, {{9}, 1, 1, 0x55},    {{12, 13, 14}, 3, 2, 0x66},
    };
    int want_after[] = {0, 0, 0, 2, 4, 4};
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++) {
        tl_rec_view v = {0};
        v.checksum = recs[i].checksum;
        v.seq = recs[i].ev[recs[i].n - 1];
        v.fence = recs[i].fence;
        v.kind = TL_KIND_CHECKPOINT;
        v.symbol = 1;
        v.event_seqs = recs[i].ev;
        v.n_events = recs[i].n;
        tl_loc loc = {1, 7 + i};
        tl_stream_record(&s, &v, &loc);
        assert_int_equal(x->nf, want_after[i]);
    }
    assert_int_equal(x->f[0].check, TL_CHECK_FORK);
    assert_int_equal(x->f[0].seq, 8);
    assert_int_equal(x->f[0].symbol, 1);
    assert_int_equal(x->f[1].check, TL_CHECK_FENCE_REGRESSION);
    assert_int_equal(x->f[2].check, TL_CHECK_FORK);
    assert_int_equal(x->f[2].seq, 9);
    assert_int_equal(x->f[3].check, TL_CHECK_FENCE_REGRESSION);
    free(mem);
}

/* xwal1: a record whose first event seq is not above the previous record's
 * seq (an overlap with nothing to compare), and a stale writer's record
 * whose seqs were never used: both named. */
static void test_xwal1_overlap_and_stale_unseen(void **state) {
    fixture *x = *state;
    void *mem = tu_aligned(64, tl_window_bytes(WIN));
    tl_log log;
    tl_log_init(&log, TL_DIALECT_XWAL1, mem, WIN, (tl_sink){collect, x});
    tl_stream s;
    tl_stream_init(&s, &log, TL_SOURCE_WAL);
    uint64_t ev10[] = {8, 9, 10}, ev14[] = {7, 14}, ev5[] = {4, 5};
    struct {
        const uint64_t *ev;
        uint32_t n;
        uint64_t fence;
        uint64_t checksum;
    } recs[] = {{ev10, 3, 2, 0x10}, {ev14, 2, 2, 0x14}, {ev5, 2, 1, 0x05}};
    for (size_t i = 0; i < 3; i++) {
        tl_rec_view v = {0};
        v.checksum = recs[i].checksum;
        v.seq = recs[i].ev[recs[i].n - 1];
        v.fence = recs[i].fence;
        v.kind = TL_KIND_CHECKPOINT;
        v.symbol = 1;
        v.event_seqs = recs[i].ev;
        v.n_events = recs[i].n;
        tl_loc loc = {1, 100 * i};
        tl_stream_record(&s, &v, &loc);
    }
    assert_int_equal(x->nf, 3);
    assert_int_equal(x->f[0].check, TL_CHECK_SEQ_REGRESSION); /* 14 overlaps with event 7 */
    assert_int_equal(x->f[0].seq, 7);
    assert_int_equal(x->f[1].check, TL_CHECK_SEQ_REGRESSION);   /* record 5: lower, unseen */
    assert_int_equal(x->f[2].check, TL_CHECK_FENCE_REGRESSION); /* ... by a stale writer */
    free(mem);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_clean_both_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_gap_is_seq_gap_ring_gap_is_not, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lower_same_source_is_duplicate_other_source_is_not,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_lower_other_checksum_is_fork_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_vs_wal_fork_and_chain_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_break_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fence_regression_and_unannounced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leader_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lower_older_than_window_is_regression, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reordered_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resync_learns_from_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xwal1_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xwal1_overlap_and_stale_unseen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
