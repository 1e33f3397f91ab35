/* test_wal_reader.c: the offline reader (io/wal_reader.h) on the shared
 * wal-clean vector and on directories built to break one reading rule of
 * wal.md each: every finding is checked for its check, rule, reason, segment,
 * offset and seq. */
#include "test_wal_fixture.h"

#include <cjson/cJSON.h>
#include <sys/stat.h>

#include "io/wal_reader.h"

#define SEG 16384u

static const uint8_t leader_a[TL_ID_BYTES] = {0xa, 0xa, 0xa, 0xa, 0xa, 0xa, 0xa, 0xa,
                                              0xa, 0xa, 0xa, 0xa, 0xa, 0xa, 0xa, 0xa};
static const uint8_t leader_b[TL_ID_BYTES] = {0xb, 0xb, 0xb, 0xb, 0xb, 0xb, 0xb, 0xb,
                                              0xb, 0xb, 0xb, 0xb, 0xb, 0xb, 0xb, 0xb};

/* What a read saw. */
#define MAX_RECS 4096
typedef struct seen {
    fx_findings fs;
    tl_wal_summary sum;
    unsigned n;
    uint64_t seq[MAX_RECS];
    uint64_t checksum[MAX_RECS];
    uint64_t parent[MAX_RECS];
    uint16_t kind[MAX_RECS];
    uint32_t symbol[MAX_RECS];
    uint64_t fence[MAX_RECS];
    uint32_t len[MAX_RECS];
    uint64_t seg[MAX_RECS];
    uint64_t off[MAX_RECS];
    uint8_t order[MAX_RECS];
    uint8_t body[MAX_RECS][24];
    unsigned nseg;
    tl_seg_hdr hdr[16];
    uint64_t seg_name[16];
    unsigned stop_after; /* 0 = never */
} seen;

static int on_rec(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result res) {
    seen *s = ctx;
    if (s->n < MAX_RECS) {
        unsigned i = s->n;
        s->seq[i] = v->seq;
        s->checksum[i] = v->checksum;
        s->parent[i] = v->parent;
        s->kind[i] = v->kind;
        s->symbol[i] = v->symbol;
        s->fence[i] = v->fence;
        s->len[i] = v->len;
        s->seg[i] = loc->segment;
        s->off[i] = loc->offset;
        s->order[i] = res.order;
        memcpy(s->body[i], v->body, v->body_len < 24 ? v->body_len : 24);
    }
    s->n++;
    return s->stop_after != 0 && s->n >= s->stop_after;
}

static void on_seg(void *ctx, const tl_seg_hdr *h, uint64_t name_first_seq) {
    seen *s = ctx;
    if (s->nseg < 16) {
        s->hdr[s->nseg] = *h;
        s->seg_name[s->nseg] = name_first_seq;
    }
    s->nseg++;
}

static seen *read_with(const char *dir, tl_wal_read_opts *o) {
    seen *s = calloc(1, sizeof *s);
    assert_non_null(s);
    tl_wal_read_opts local;
    if (o == NULL) {
        memset(&local, 0, sizeof local);
        o = &local;
    }
    o->sink = (tl_sink){fx_collect, &s->fs};
    o->on_record = on_rec;
    o->on_segment = on_seg;
    o->ctx = s;
    assert_int_equal(tl_wal_read_dir(dir, o, &s->sum), TL_WAL_OK);
    assert_int_equal(s->sum.findings_total, s->fs.n);
    return s;
}

static seen *read_dir(const char *dir) {
    return read_with(dir, NULL);
}

/* ---- the shared vector ---- */

static uint16_t kind_of(const cJSON *k) {
    if (cJSON_IsNumber(k))
        return (uint16_t)k->valuedouble;
    for (uint16_t i = 1; i <= TL_KIND_KNOWN_MAX; i++)
        if (strcmp(tl_kind_name(i), k->valuestring) == 0)
            return i;
    fail_msg("unknown kind %s", k->valuestring);
    return 0;
}

static void test_vector_wal_clean(void **state) {
    (void)state;
    seen *s = read_dir(tu_shared("spec/vectors/wal-clean"));
    fx_print_findings(&s->fs);
    assert_int_equal(s->fs.n, 0);
    size_t jn;
    uint8_t *jb = tu_read_file(tu_shared("spec/vectors/wal-clean.json"), &jn);
    cJSON *j = cJSON_ParseWithLength((const char *)jb, jn);
    assert_non_null(j);
    const cJSON *recs = cJSON_GetObjectItem(j, "records");
    unsigned want = (unsigned)cJSON_GetArraySize(recs);
    assert_int_equal(s->n, want);
    for (unsigned i = 0; i < want; i++) {
        const cJSON *r = cJSON_GetArrayItem(recs, (int)i);
        assert_int_equal(s->seq[i], (uint64_t)cJSON_GetObjectItem(r, "seq")->valuedouble);
        assert_int_equal(s->kind[i], kind_of(cJSON_GetObjectItem(r, "kind")));
        assert_int_equal(s->symbol[i], (uint32_t)cJSON_GetObjectItem(r, "symbol")->valuedouble);
        assert_int_equal(s->fence[i], (uint64_t)cJSON_GetObjectItem(r, "fence")->valuedouble);
        assert_int_equal(s->len[i], (uint32_t)cJSON_GetObjectItem(r, "len")->valuedouble);
        assert_true(s->checksum[i] == tu_hex64(cJSON_GetObjectItem(r, "checksum")->valuestring));
        assert_true(s->parent[i] == tu_hex64(cJSON_GetObjectItem(r, "parent")->valuestring));
        assert_int_equal(s->order[i], TL_ORDER_NEXT);
    }
    /* kind 99 is delivered, in order, and the next record chains from it. */
    assert_int_equal(s->kind[12], 99);
    assert_int_equal(s->seq[12], 13);
    assert_true(s->parent[13] == s->checksum[12]);
    /* LEADER_CHANGE 1 -> 2 at seq 3, leader = the engine id. */
    assert_int_equal(s->kind[2], TL_KIND_LEADER_CHANGE);
    assert_int_equal(s->fence[1], 1);
    assert_int_equal(s->fence[2], 2);
    assert_int_equal(s->sum.fence, 2);
    assert_int_equal(s->sum.fence_min, 1);
    assert_int_equal(s->sum.fence_max, 2);
    assert_memory_equal(s->sum.leader_id, fx_engine, TL_ID_BYTES);
    /* Segment headers: the first has no leader; the later ones carry it,
     * and the fence in force (2). */
    assert_int_equal(s->nseg, 3);
    assert_true(tl_id_is_zero(s->hdr[0].leader_id));
    assert_int_equal(s->hdr[0].fence, 1);
    for (unsigned k = 1; k < 3; k++) {
        assert_memory_equal(s->hdr[k].leader_id, fx_engine, TL_ID_BYTES);
        assert_int_equal(s->hdr[k].fence, 2);
        assert_int_equal(s->hdr[k].segment_index, k);
    }
    /* Later segments open with SYMBOL 1, SYMBOL 2, then restatements for
     * scope 0 (NORMAL) and ETHUSDT (2, CANCEL_ONLY). */
    static const uint64_t firsts[] = {39, 77};
    for (unsigned k = 0; k < 2; k++) {
        unsigned i = (unsigned)firsts[k] - 1;
        assert_int_equal(s->seg[i], firsts[k]);
        assert_int_equal(s->kind[i], TL_KIND_SYMBOL);
        assert_int_equal(s->symbol[i], 1);
        assert_string_equal((const char *)s->body[i], "BTCUSDT");
        assert_int_equal(s->kind[i + 1], TL_KIND_SYMBOL);
        assert_string_equal((const char *)s->body[i + 1], "ETHUSDT");
        for (unsigned m = 0; m < 2; m++) {
            tl_body_mode_change mc;
            memcpy(&mc, s->body[i + 2 + m], sizeof mc);
            assert_int_equal(s->kind[i + 2 + m], TL_KIND_MODE_CHANGE);
            assert_int_equal(s->symbol[i + 2 + m], m == 0 ? 0 : 2);
            assert_int_equal(mc.mode, m == 0 ? TL_MODE_NORMAL : TL_MODE_CANCEL_ONLY);
            assert_true(tl_id_is_restatement(mc.command_id));
        }
    }
    /* The applied MODE_CHANGE (seq 14) is not a restatement. */
    tl_body_mode_change mc;
    memcpy(&mc, s->body[13], sizeof mc);
    assert_int_equal(s->kind[13], TL_KIND_MODE_CHANGE);
    assert_false(tl_id_is_restatement(mc.command_id));
    /* Summary. */
    assert_int_equal(s->sum.segments_present, 3);
    assert_int_equal(s->sum.segments_read, 3);
    assert_int_equal(s->sum.records_total, want);
    assert_int_equal(s->sum.first_seq, 1);
    assert_int_equal(s->sum.last_seq, 103);
    assert_true(s->sum.last_checksum == 0x611779eabf559928ull);
    assert_int_equal(s->sum.expected_seq, 104);
    assert_true(s->sum.expected_parent == 0x611779eabf559928ull);
    assert_true(s->sum.anchor_verified);
    assert_int_equal(s->sum.tail, TL_WAL_TAIL_CLEAN);
    assert_int_equal(s->sum.tail_segment, 77);
    assert_int_equal(s->sum.tail_segment_index, 2);
    assert_int_equal(s->sum.tail_offset, 7008);
    assert_int_equal(s->sum.tail_records, 27);
    cJSON_Delete(j);
    free(jb);
    free(s);
}

/* A copy of wal-clean in a fresh directory, without some segments. */
static char *copy_vector(const char *tag, bool with_first) {
    char *dir = tu_tmpdir(tag);
    static const char *const names[] = {"00000000000000000001.wal", "00000000000000000039.wal",
                                        "00000000000000000077.wal"};
    for (unsigned i = with_first ? 0 : 1; i < 3; i++) {
        char rel[128], path[512];
        snprintf(rel, sizeof rel, "spec/vectors/wal-clean/%s", names[i]);
        size_t n;
        uint8_t *b = tu_read_file(tu_shared(rel), &n);
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        tu_write_file(path, b, n);
        free(b);
    }
    return dir;
}

static void test_start_mid_log(void **state) {
    (void)state;
    /* The log's first segment is gone: start at the lowest present, take its
     * prev_checksum and fence as given, and say the anchor is unverified. */
    char *dir = copy_vector("midlog", false);
    seen *s = read_dir(dir);
    fx_print_findings(&s->fs);
    assert_int_equal(s->fs.n, 0);
    assert_false(s->sum.anchor_verified);
    assert_int_equal(s->sum.anchor_segment, 39);
    assert_int_equal(s->n, 65);
    assert_int_equal(s->seq[0], 39);
    assert_int_equal(s->sum.last_seq, 103);
    /* The leader comes from the header where reading started. */
    assert_memory_equal(s->sum.leader_id, fx_engine, TL_ID_BYTES);
    free(s);

    /* A configured start seq: the segment holding it is read whole (so the
     * chain up to it is checked), records from it on are delivered. */
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.start_seq = 50;
    s = read_with(dir, &o);
    assert_int_equal(s->fs.n, 0);
    assert_int_equal(s->n, 54);
    assert_int_equal(s->seq[0], 50);
    assert_int_equal(s->sum.records_total, 65);
    assert_int_equal(s->sum.records_delivered, 54);
    assert_false(s->sum.anchor_verified);
    free(s);
    tu_rm_rf(dir);
    free(dir);

    /* Start seq in the full log's first segment: anchored at segment 0,
     * but not at the log's start: unverified. */
    dir = copy_vector("startseq", true);
    memset(&o, 0, sizeof o);
    o.start_seq = 77;
    s = read_with(dir, &o);
    assert_int_equal(s->fs.n, 0);
    assert_int_equal(s->sum.anchor_segment, 77);
    assert_int_equal(s->n, 27);
    free(s);
    memset(&o, 0, sizeof o);
    o.start_seq = 1;
    s = read_with(dir, &o);
    assert_true(s->sum.anchor_verified);
    free(s);
    tu_rm_rf(dir);
    free(dir);
}

static void test_names_and_stop(void **state) {
    (void)state;
    char *dir = copy_vector("names", true);
    char path[512];
    snprintf(path, sizeof path, "%s/00000000000000000104.wal.tmp", dir);
    tu_write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    tu_write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/1.wal", dir);
    tu_write_file(path, "x", 1);
    seen *s = calloc(1, sizeof *s);
    s->stop_after = 10;
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.on_record = on_rec;
    o.ctx = s;
    assert_int_equal(tl_wal_read_dir(dir, &o, &s->sum), TL_WAL_OK);
    assert_int_equal(s->sum.tmp_names, 1);
    assert_int_equal(s->sum.unknown_names, 2);
    assert_true(strcmp(s->sum.unknown_first, "notes.txt") == 0 ||
                strcmp(s->sum.unknown_first, "1.wal") == 0);
    assert_true(s->sum.stopped);
    assert_int_equal(s->sum.tail, TL_WAL_TAIL_STOPPED);
    assert_int_equal(s->n, 10);
    free(s);
    tu_rm_rf(dir);
    free(dir);

    tl_wal_summary sum;
    memset(&o, 0, sizeof o);
    assert_int_equal(tl_wal_read_dir("/nonexistent/tally", &o, &sum), TL_WAL_ERR_NOT_FOUND);
    o.window_records = 3;
    assert_int_equal(tl_wal_read_dir("/tmp", &o, &sum), TL_WAL_ERR_CONFIG);
}

/* ---- one rule each ---- */

typedef struct logb {
    char *dir;
    fx_chain c;
    fx_seg seg[8];
    unsigned nseg;
} logb;

static void lb_init(logb *b, const char *tag, uint64_t fence) {
    memset(b, 0, sizeof *b);
    b->dir = tu_tmpdir(tag);
    b->c = (fx_chain){1, 0, fence, 0};
}

/* Starts segment nseg at the chain's position. */
static fx_seg *lb_seg(logb *b, const uint8_t *leader) {
    fx_seg *s = &b->seg[b->nseg];
    fx_seg_init(s, SEG, b->nseg, b->c.seq, b->c.parent, b->c.fence, leader);
    b->nseg++;
    return s;
}

static void lb_orders(logb *b, fx_seg *s, unsigned n) {
    for (unsigned i = 0; i < n; i++)
        fx_order_new(s, &b->c);
}

static void lb_write(logb *b) {
    for (unsigned i = 0; i < b->nseg; i++)
        fx_seg_write(b->dir, &b->seg[i], NULL);
}

static void lb_done(logb *b) {
    for (unsigned i = 0; i < b->nseg; i++)
        fx_seg_free(&b->seg[i]);
    tu_rm_rf(b->dir);
    free(b->dir);
}

static seen *lb_read(logb *b) {
    lb_write(b);
    return read_dir(b->dir);
}

static uint64_t off_of(const fx_seg *s, const uint8_t *rec) {
    return (uint64_t)(rec - s->buf);
}

static void test_seq_gap(void **state) {
    (void)state;
    logb b;
    lb_init(&b, "gap", 2);
    fx_seg *s = lb_seg(&b, NULL);
    lb_orders(&b, s, 5);
    b.c.seq = 7; /* 6 never written */
    uint8_t *r = fx_order_new(s, &b.c);
    lb_orders(&b, s, 2);
    seen *x = lb_read(&b);
    fx_expect_one(&x->fs, TL_CHECK_SEQ_GAP, TL_RULE_SEQ, 0, 1, off_of(s, r), 7);
    assert_int_equal(x->fs.f[0].seq2, 6);
    assert_int_equal(x->n, 8);
    free(x);
    lb_done(&b);
}

static void test_seq_duplicate_and_fork(void **state) {
    (void)state;
    for (int fork = 0; fork < 2; fork++) {
        logb b;
        lb_init(&b, "dupfork", 2);
        fx_seg *s = lb_seg(&b, NULL);
        lb_orders(&b, s, 3);
        uint64_t parent3 = b.c.parent;
        uint8_t *r4 = fx_order_new(s, &b.c);
        fx_order_new(s, &b.c); /* 5 */
        uint8_t *again;
        if (!fork) {
            /* The same record again, byte for byte: a lower seq, same checksum. */
            again = s->buf + s->off;
            memcpy(again, r4, 104);
            s->off += 104;
        } else {
            /* Another record with seq 4: a fork. */
            tl_body_order_new ob = fx_order(999);
            again = fx_put_raw(s, 4, parent3, 2, TL_KIND_ORDER_NEW, 1, &ob, sizeof ob);
        }
        lb_orders(&b, s, 2); /* 6, 7 chain from 5 */
        seen *x = lb_read(&b);
        if (!fork) {
            fx_expect_one(&x->fs, TL_CHECK_SEQ_DUPLICATE, TL_RULE_SEQ, 0, 1, off_of(s, again), 4);
        } else {
            fx_expect_one(&x->fs, TL_CHECK_FORK, TL_RULE_SEQ, 0, 1, off_of(s, again), 4);
            assert_true(x->fs.f[0].checksum2 == tl_rec_hdr_of(r4)->checksum);
            assert_true(x->fs.f[0].checksum == tl_rec_hdr_of(again)->checksum);
            assert_int_equal(x->fs.f[0].source2, TL_SOURCE_WAL);
        }
        assert_int_equal(x->order[5], TL_ORDER_LOWER);
        assert_int_equal(x->sum.expected_seq, 8);
        free(x);
        lb_done(&b);
    }
}

static void test_seq_regression(void **state) {
    (void)state;
    /* A lower seq older than the window: its checksum cannot be compared. */
    logb b;
    lb_init(&b, "regr", 2);
    fx_seg *s = lb_seg(&b, NULL);
    lb_orders(&b, s, 1);
    uint8_t *r2 = fx_order_new(s, &b.c);
    lb_orders(&b, s, 10);
    uint8_t *old = s->buf + s->off;
    memcpy(old, r2, 104);
    s->off += 104;
    lb_orders(&b, s, 1);
    lb_write(&b);
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.window_records = 4;
    seen *x = read_with(b.dir, &o);
    fx_expect_one(&x->fs, TL_CHECK_SEQ_REGRESSION, TL_RULE_SEQ, TL_REASON_LOWER_EVICTED, 1,
                  off_of(s, old), 2);
    assert_int_equal(x->fs.f[0].seq2, 13);
    free(x);
    lb_done(&b);
}

static void test_chain_break(void **state) {
    (void)state;
    logb b;
    lb_init(&b, "chain", 2);
    fx_seg *s = lb_seg(&b, NULL);
    lb_orders(&b, s, 3);
    uint64_t want = b.c.parent;
    b.c.parent = 0xdeadbeefull;
    uint8_t *r = fx_order_new(s, &b.c); /* seq 4, wrong parent */
    lb_orders(&b, s, 3);                /* chain from 4: no second finding */
    seen *x = lb_read(&b);
    fx_expect_one(&x->fs, TL_CHECK_CHAIN_BREAK, TL_RULE_PARENT, 0, 1, off_of(s, r), 4);
    assert_true(x->fs.f[0].checksum2 == want);
    free(x);
    lb_done(&b);
}

static void test_fence_rules(void **state) {
    (void)state;
    /* A record below the fence in force. */
    logb b;
    lb_init(&b, "fence", 2);
    fx_seg *s = lb_seg(&b, NULL);
    lb_orders(&b, s, 3);
    b.c.fence = 1;
    uint8_t *r = fx_order_new(s, &b.c);
    b.c.fence = 2;
    lb_orders(&b, s, 2);
    seen *x = lb_read(&b);
    fx_expect_one(&x->fs, TL_CHECK_FENCE_REGRESSION, TL_RULE_FENCE, TL_REASON_FENCE_DROP, 1,
                  off_of(s, r), 4);
    assert_int_equal(x->fs.f[0].fence, 1);
    assert_int_equal(x->fs.f[0].fence2, 2);
    free(x);
    lb_done(&b);

    /* A rise without a LEADER_CHANGE: reported once, then followed. */
    lb_init(&b, "fence", 2);
    s = lb_seg(&b, NULL);
    lb_orders(&b, s, 3);
    b.c.fence = 3;
    r = fx_order_new(s, &b.c);
    lb_orders(&b, s, 2);
    x = lb_read(&b);
    fx_expect_one(&x->fs, TL_CHECK_FENCE_UNANNOUNCED, TL_RULE_FENCE, TL_REASON_FENCE_RISE, 1,
                  off_of(s, r), 4);
    assert_int_equal(x->sum.fence, 3);
    free(x);
    lb_done(&b);

    /* A good LEADER_CHANGE: no finding, the fence and the leader follow. */
    lb_init(&b, "fence", 2);
    s = lb_seg(&b, leader_a);
    lb_orders(&b, s, 2);
    fx_leader_change(s, &b.c, 5, leader_b);
    lb_orders(&b, s, 2);
    x = lb_read(&b);
    assert_int_equal(x->fs.n, 0);
    assert_int_equal(x->sum.fence, 5);
    assert_memory_equal(x->sum.leader_id, leader_b, TL_ID_BYTES);
    free(x);
    lb_done(&b);
}

static void test_bad_leader_change(void **state) {
    (void)state;
    /* (new_fence, prev_fence, header fence) -> the finding. Fence in force 2. */
    struct {
        uint64_t new_fence, prev_fence, hdr_fence;
        enum tl_check want;
        uint64_t fence_after;
    } cases[] = {
        {3, 1, 3, TL_CHECK_FENCE_UNANNOUNCED, 3}, /* prev_fence is not the fence in force */
        {2, 2, 2, TL_CHECK_FENCE_UNANNOUNCED, 2}, /* new_fence not above prev_fence */
        {3, 2, 1, TL_CHECK_FENCE_REGRESSION, 2},  /* header fence != new_fence, below */
        {3, 2, 4, TL_CHECK_FENCE_UNANNOUNCED, 4}, /* header fence != new_fence, above */
    };
    for (unsigned i = 0; i < TL_ARRAY_LEN(cases); i++) {
        logb b;
        lb_init(&b, "badlc", 2);
        fx_seg *s = lb_seg(&b, leader_a);
        lb_orders(&b, s, 2);
        tl_body_leader_change lc;
        lc.new_fence = cases[i].new_fence;
        lc.prev_fence = cases[i].prev_fence;
        memcpy(lc.leader_id, leader_b, TL_ID_BYTES);
        b.c.fence = cases[i].hdr_fence;
        uint8_t *r = fx_put(s, &b.c, TL_KIND_LEADER_CHANGE, 0, &lc, sizeof lc);
        b.c.fence = cases[i].fence_after;
        lb_orders(&b, s, 2);
        seen *x = lb_read(&b);
        fx_expect_one(&x->fs, cases[i].want, TL_RULE_FENCE, TL_REASON_LEADER_CHANGE, 1,
                      off_of(s, r), 3);
        assert_int_equal(x->sum.fence, cases[i].fence_after);
        free(x);
        lb_done(&b);
    }
}

/* Two segments where the second's header differs as `mut` says. */
typedef void (*hdr_mut)(logb *b, fx_seg *s2);

static void mut_fence_up(logb *b, fx_seg *s2) {
    (void)b;
    s2->hdr->fence = 3;
}
static void mut_fence_down(logb *b, fx_seg *s2) {
    (void)b;
    s2->hdr->fence = 1;
}
static void mut_leader(logb *b, fx_seg *s2) {
    (void)b;
    memcpy(s2->hdr->leader_id, leader_b, TL_ID_BYTES);
}
static void mut_index(logb *b, fx_seg *s2) {
    (void)b;
    s2->hdr->segment_index = 2;
}

static void test_segment_header_rules(void **state) {
    (void)state;
    struct {
        hdr_mut mut;
        enum tl_check check;
        unsigned rule, reason;
    } cases[] = {
        {mut_fence_up, TL_CHECK_FENCE_UNANNOUNCED, TL_RULE_FENCE, TL_REASON_HEADER_FENCE},
        {mut_fence_down, TL_CHECK_FENCE_REGRESSION, TL_RULE_FENCE, TL_REASON_HEADER_FENCE},
        {mut_leader, TL_CHECK_FENCE_UNANNOUNCED, TL_RULE_FENCE, TL_REASON_HEADER_LEADER},
        {mut_index, TL_CHECK_SEGMENT_GAP, TL_RULE_SEGMENT, TL_REASON_SEGMENT_INDEX},
    };
    for (unsigned i = 0; i < TL_ARRAY_LEN(cases); i++) {
        logb b;
        lb_init(&b, "hdr", 2);
        fx_seg *s1 = lb_seg(&b, leader_a);
        lb_orders(&b, s1, 5);
        fx_seg *s2 = lb_seg(&b, leader_a);
        cases[i].mut(&b, s2);
        fx_seg_reseal(s2);
        lb_orders(&b, s2, 5);
        fx_seg *s3 = lb_seg(&b, leader_a);
        if (cases[i].mut == mut_index) {
            s3->hdr->segment_index = 3;
            fx_seg_reseal(s3);
        }
        lb_orders(&b, s3, 2);
        seen *x = lb_read(&b);
        /* stream.c puts a SEGMENT_GAP's segment_index in `offset`; fence
         * and leader findings on a header have offset 0. */
        uint64_t off = cases[i].check == TL_CHECK_SEGMENT_GAP ? 2 : 0;
        fx_expect_one(&x->fs, cases[i].check, cases[i].rule, cases[i].reason, 6, off, 6);
        free(x);
        lb_done(&b);
    }
}

static void test_missing_segment(void **state) {
    (void)state;
    logb b;
    lb_init(&b, "missing", 2);
    for (unsigned k = 0; k < 4; k++)
        lb_orders(&b, lb_seg(&b, NULL), 4);
    lb_write(&b);
    char path[512];
    snprintf(path, sizeof path, "%s/00000000000000000005.wal", b.dir);
    assert_int_equal(unlink(path), 0);
    seen *x = read_dir(b.dir);
    fx_expect_one(&x->fs, TL_CHECK_SEGMENT_GAP, TL_RULE_SEGMENT, TL_REASON_SEGMENT_INDEX, 9, 2, 9);
    assert_int_equal(x->fs.f[0].seq2, 5);
    assert_int_equal(x->n, 12);
    free(x);
    lb_done(&b);
}

static void test_first_seq_and_prev_checksum(void **state) {
    (void)state;
    /* Segment 2 starts at 12 where 11 was expected (name and header agree). */
    logb b;
    lb_init(&b, "firstseq", 2);
    lb_orders(&b, lb_seg(&b, NULL), 10);
    b.c.seq = 12;
    lb_orders(&b, lb_seg(&b, NULL), 3);
    seen *x = lb_read(&b);
    fx_expect_one(&x->fs, TL_CHECK_SEGMENT_GAP, TL_RULE_SEGMENT, TL_REASON_SEGMENT_FIRST_SEQ, 12, 1,
                  12);
    assert_int_equal(x->fs.f[0].seq2, 11);
    free(x);
    lb_done(&b);

    /* Segment 2's prev_checksum is not the last record's checksum. */
    lb_init(&b, "prevck", 2);
    lb_orders(&b, lb_seg(&b, NULL), 10);
    uint64_t real = b.c.parent;
    b.c.parent = 0x5eed;
    lb_orders(&b, lb_seg(&b, NULL), 3);
    x = lb_read(&b);
    fx_expect_one(&x->fs, TL_CHECK_SEGMENT_GAP, TL_RULE_SEGMENT, TL_REASON_SEGMENT_PREV_CHECKSUM,
                  11, 1, 11);
    assert_true(x->fs.f[0].checksum == 0x5eed);
    assert_true(x->fs.f[0].checksum2 == real);
    free(x);
    lb_done(&b);
}

static void test_segment_name(void **state) {
    (void)state;
    /* The file name says 12, the header says 11. */
    logb b;
    lb_init(&b, "name", 2);
    fx_seg *s1 = lb_seg(&b, NULL);
    lb_orders(&b, s1, 10);
    fx_seg *s2 = lb_seg(&b, NULL);
    lb_orders(&b, s2, 3);
    fx_seg_write(b.dir, s1, NULL);
    fx_seg_write(b.dir, s2, "00000000000000000012.wal");
    seen *x = read_dir(b.dir);
    fx_expect_one(&x->fs, TL_CHECK_SEGMENT_GAP, TL_RULE_SEGMENT, TL_REASON_SEGMENT_NAME, 12, 0, 11);
    assert_int_equal(x->fs.f[0].seq2, 12);
    assert_int_equal(x->n, 13);
    free(x);
    b.nseg = 0; /* written by hand */
    fx_seg_free(s1);
    fx_seg_free(s2);
    lb_done(&b);
}

static void test_reordered_and_extra_segments(void **state) {
    (void)state;
    /* Reordered: files 11 and 21 hold each other's segment. */
    logb b;
    lb_init(&b, "reorder", 2);
    fx_seg *s[3];
    for (unsigned k = 0; k < 3; k++) {
        s[k] = lb_seg(&b, NULL);
        lb_orders(&b, s[k], 10);
    }
    fx_seg_write(b.dir, s[0], NULL);
    fx_seg_write(b.dir, s[2], "00000000000000000011.wal");
    fx_seg_write(b.dir, s[1], "00000000000000000021.wal");
    seen *x = read_dir(b.dir);
    static const struct {
        uint16_t reason;
        uint64_t segment;
    } want[] = {
        {TL_REASON_SEGMENT_NAME, 11},
        {TL_REASON_SEGMENT_INDEX, 11},
        {TL_REASON_SEGMENT_NAME, 21},
        {TL_REASON_SEGMENT_INDEX, 21},
    };
    if (x->fs.n != 4)
        fx_print_findings(&x->fs);
    assert_int_equal(x->fs.n, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_int_equal(x->fs.f[i].check, TL_CHECK_SEGMENT_GAP);
        assert_int_equal(x->fs.f[i].rule, TL_RULE_SEGMENT);
        assert_string_equal(tl_reason_name(x->fs.f[i].reason), tl_reason_name(want[i].reason));
        assert_int_equal(x->fs.f[i].segment, want[i].segment);
    }
    free(x);
    tu_rm_rf(b.dir);
    free(b.dir);
    b.dir = tu_tmpdir("extra");

    /* Extra: a copy of segment 11 under another name (15): its header
     * breaks the name and index rules, and its records come again as
     * duplicates (info); segment 21 then follows it cleanly. */
    lb_write(&b);
    fx_seg_write(b.dir, s[1], "00000000000000000015.wal");
    x = read_dir(b.dir);
    assert_int_equal(x->fs.n, 12);
    assert_int_equal(x->fs.f[0].check, TL_CHECK_SEGMENT_GAP);
    assert_int_equal(x->fs.f[0].reason, TL_REASON_SEGMENT_NAME);
    assert_int_equal(x->fs.f[0].segment, 15);
    assert_int_equal(x->fs.f[1].check, TL_CHECK_SEGMENT_GAP);
    assert_int_equal(x->fs.f[1].reason, TL_REASON_SEGMENT_INDEX);
    for (unsigned i = 2; i < 12; i++) {
        assert_int_equal(x->fs.f[i].check, TL_CHECK_SEQ_DUPLICATE);
        assert_int_equal(x->fs.f[i].segment, 15);
        assert_int_equal(x->fs.f[i].seq, 11 + (i - 2));
    }
    free(x);
    lb_done(&b);
}

static void test_torn_tail_vs_sealed(void **state) {
    (void)state;
    for (int sealed = 0; sealed < 2; sealed++) {
        logb b;
        lb_init(&b, "torn", 2);
        fx_seg *s1 = lb_seg(&b, NULL);
        lb_orders(&b, s1, 5);
        uint8_t *r = s1->buf + s1->off - 104; /* seq 5 */
        r[90] ^= 0x10;
        if (sealed) {
            /* The next segment follows the real chain (after seq 5). */
            lb_orders(&b, lb_seg(&b, NULL), 3);
        }
        seen *x = lb_read(&b);
        if (!sealed) {
            assert_int_equal(x->fs.n, 0);
            assert_int_equal(x->sum.tail, TL_WAL_TAIL_TENTATIVE);
            assert_int_equal(x->sum.tail_segment, 1);
            assert_int_equal(x->sum.tail_offset, off_of(s1, r));
            assert_int_equal(x->sum.tail_reason, TL_REC_ERR_CHECKSUM);
            assert_int_equal(x->sum.last_seq, 4);
        } else {
            fx_expect_one(&x->fs, TL_CHECK_WAL_CORRUPT, TL_RULE_CHECKSUM, TL_REC_ERR_CHECKSUM, 1,
                          off_of(s1, r), 5);
            /* one place, one finding: segment 6 re-anchors */
            assert_int_equal(x->sum.reanchors, 1);
            assert_int_equal(x->sum.tail, TL_WAL_TAIL_CLEAN);
            assert_int_equal(x->sum.last_seq, 8);
        }
        free(x);
        lb_done(&b);
    }
}

static void test_bad_len_sealed(void **state) {
    (void)state;
    logb b;
    lb_init(&b, "badlen", 2);
    fx_seg *s1 = lb_seg(&b, NULL);
    lb_orders(&b, s1, 5);
    tl_rec_hdr *h = (tl_rec_hdr *)(s1->buf + 4096 + 2 * 104);
    h->len = 12;
    lb_orders(&b, lb_seg(&b, NULL), 3);
    seen *x = lb_read(&b);
    fx_expect_one(&x->fs, TL_CHECK_WAL_CORRUPT, TL_RULE_LENGTH, TL_REC_ERR_LEN, 1, 4096 + 208, 3);
    free(x);
    lb_done(&b);
}

static void test_fresh_reread_by_durable_hint(void **state) {
    (void)state;
    logb b;
    lb_init(&b, "fresh", 2);
    fx_seg *s1 = lb_seg(&b, NULL);
    lb_orders(&b, s1, 6);
    uint8_t *r = s1->buf + 4096 + 4 * 104; /* seq 5 */
    r[99] ^= 1;
    lb_write(&b);
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.durable = (tl_walseg_durable){6, 1, 4096 + 6 * 104};
    seen *x = read_with(b.dir, &o);
    fx_expect_one(&x->fs, TL_CHECK_WAL_CORRUPT, TL_RULE_CHECKSUM, TL_REASON_TORN_FRESH_READ, 1,
                  off_of(s1, r), 5);
    assert_int_equal(x->sum.tail, TL_WAL_TAIL_CORRUPT);
    free(x);
    /* The durable point short of it: still a tentative tail. */
    memset(&o, 0, sizeof o);
    o.durable = (tl_walseg_durable){4, 1, 4096 + 4 * 104};
    x = read_with(b.dir, &o);
    assert_int_equal(x->fs.n, 0);
    assert_int_equal(x->sum.tail, TL_WAL_TAIL_TENTATIVE);
    free(x);

    /* A zero slot where the durable point says records are. */
    memset(r, 0, 2 * 104);
    lb_write(&b);
    memset(&o, 0, sizeof o);
    o.durable = (tl_walseg_durable){6, 1, 4096 + 6 * 104};
    x = read_with(b.dir, &o);
    fx_expect_one(&x->fs, TL_CHECK_WAL_CORRUPT, TL_RULE_SEGMENT, TL_REASON_SEGMENT_END, 1,
                  off_of(s1, r), 0);
    assert_int_equal(x->fs.f[0].seq2, 5);
    free(x);
    lb_done(&b);
}

static void test_invalid_header_newest_vs_sealed(void **state) {
    (void)state;
    /* Newest: an invalid header is a tentative tail at offset 0. */
    logb b;
    lb_init(&b, "hdrbad", 2);
    lb_orders(&b, lb_seg(&b, NULL), 5);
    fx_seg *s2 = lb_seg(&b, NULL);
    lb_orders(&b, s2, 5);
    memset(s2->buf, 0, 4096);
    seen *x = lb_read(&b);
    assert_int_equal(x->fs.n, 0);
    assert_int_equal(x->sum.tail, TL_WAL_TAIL_TENTATIVE);
    assert_int_equal(x->sum.tail_segment, 6);
    assert_int_equal(x->sum.tail_offset, 0);
    assert_int_equal(x->sum.tail_reason, TL_REASON_SEG_BASE + TL_SEG_ERR_CHECKSUM);
    assert_int_equal(x->n, 5);
    free(x);
    lb_done(&b);

    /* Sealed: WAL_CORRUPT on the header, and the next segment re-anchors. */
    lb_init(&b, "hdrbad", 2);
    lb_orders(&b, lb_seg(&b, NULL), 5);
    s2 = lb_seg(&b, NULL);
    lb_orders(&b, s2, 5);
    lb_orders(&b, lb_seg(&b, NULL), 5);
    memcpy(s2->buf, "TLYWALXX", 8);
    x = lb_read(&b);
    fx_expect_one(&x->fs, TL_CHECK_WAL_CORRUPT, TL_RULE_SEGMENT,
                  TL_REASON_SEG_BASE + TL_SEG_ERR_MAGIC, 6, 0, 0);
    assert_int_equal(x->n, 10);
    assert_int_equal(x->sum.reanchors, 1);
    free(x);
    lb_done(&b);
}

static void test_pad_and_field_rule_in_wal(void **state) {
    (void)state;
    /* A PAD in the WAL (rule 3): WAL_CORRUPT, and reading goes on with
     * expected_seq = its seq + 1 and expected_parent = its checksum. */
    logb b;
    lb_init(&b, "pad", 2);
    fx_seg *s = lb_seg(&b, NULL);
    lb_orders(&b, s, 3);
    uint8_t *pad = s->buf + s->off;
    tl_rec_meta next = {.parent = b.c.parent, .seq = 4, .fence = 2, .ts_ns = 9};
    assert_int_equal(tl_rec_encode_pad(pad, s->size - s->off, 128, &next), 128);
    s->off += 128;
    b.c.parent = tl_rec_hdr_of(pad)->checksum;
    b.c.seq = 5;
    lb_orders(&b, s, 3);
    seen *x = lb_read(&b);
    fx_expect_one(&x->fs, TL_CHECK_WAL_CORRUPT, TL_RULE_FIELDS, TL_REC_ERR_KIND, 1, off_of(s, pad),
                  4);
    assert_int_equal(x->n, 6);
    assert_int_equal(x->sum.expected_seq, 8);
    free(x);
    lb_done(&b);

    /* A nonzero reserved word in a record of a sealed segment. */
    lb_init(&b, "field", 2);
    s = lb_seg(&b, NULL);
    lb_orders(&b, s, 2);
    uint8_t *r = fx_order_new(s, &b.c);
    ((tl_rec_hdr *)r)->reserved = 7;
    fx_reseal_rec(r);
    b.c.parent = tl_rec_hdr_of(r)->checksum;
    lb_orders(&b, s, 2);
    lb_orders(&b, lb_seg(&b, NULL), 2);
    x = lb_read(&b);
    fx_expect_one(&x->fs, TL_CHECK_WAL_CORRUPT, TL_RULE_FIELDS, TL_REC_ERR_RESERVED, 1,
                  off_of(s, r), 3);
    assert_int_equal(x->n, 6);
    free(x);
    lb_done(&b);
}

static void test_first_segment_not_at_seq_1(void **state) {
    (void)state;
    /* A segment 0 must start at seq 1 with parent 0. */
    logb b;
    lb_init(&b, "seg0", 2);
    b.c.seq = 5;
    lb_orders(&b, lb_seg(&b, NULL), 3);
    seen *x = lb_read(&b);
    fx_expect_one(&x->fs, TL_CHECK_SEGMENT_GAP, TL_RULE_SEGMENT, TL_REASON_SEGMENT_FIRST_SEQ, 5, 0,
                  5);
    free(x);
    lb_done(&b);
}

static void test_empty_dir(void **state) {
    (void)state;
    char *dir = tu_tmpdir("empty");
    seen *x = read_dir(dir);
    assert_int_equal(x->sum.tail, TL_WAL_TAIL_EMPTY);
    assert_int_equal(x->sum.segments_present, 0);
    assert_int_equal(x->n, 0);
    free(x);
    tu_rm_rf(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_wal_clean),
        cmocka_unit_test(test_start_mid_log),
        cmocka_unit_test(test_names_and_stop),
        cmocka_unit_test(test_seq_gap),
        cmocka_unit_test(test_seq_duplicate_and_fork),
        cmocka_unit_test(test_seq_regression),
        cmocka_unit_test(test_chain_break),
        cmocka_unit_test(test_fence_rules),
        cmocka_unit_test(test_bad_leader_change),
        cmocka_unit_test(test_segment_header_rules),
        cmocka_unit_test(test_missing_segment),
        cmocka_unit_test(test_first_seq_and_prev_checksum),
        cmocka_unit_test(test_segment_name),
        cmocka_unit_test(test_reordered_and_extra_segments),
        cmocka_unit_test(test_torn_tail_vs_sealed),
        cmocka_unit_test(test_bad_len_sealed),
        cmocka_unit_test(test_fresh_reread_by_durable_hint),
        cmocka_unit_test(test_invalid_header_newest_vs_sealed),
        cmocka_unit_test(test_pad_and_field_rule_in_wal),
        cmocka_unit_test(test_first_segment_not_at_seq_1),
        cmocka_unit_test(test_empty_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
