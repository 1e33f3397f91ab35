/* test_wal_writer.c: the native WAL writer (io/wal_writer.h), checked with
 * the offline reader: round trips over many small segments (inline and with
 * the sync thread), segment openers, leader changes, group commit and
 * on_durable, recovery after a torn write or a crash while a segment starts,
 * refusal of a corrupt sealed segment, retirement, standby replication, and
 * the named errors of every API. */
#include "test_wal_fixture.h"

#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "io/wal_reader.h"
#include "io/wal_writer.h"

static const uint8_t node_l[TL_ID_BYTES] = {'l', 'e', 'a', 'd', 'e', 'r', '-', 'o',
                                            'n', 'e', 0,   0,   0,   0,   0,   1};
static const uint8_t node_m[TL_ID_BYTES] = {'l', 'e', 'a', 'd', 'e', 'r', '-', 't',
                                            'w', 'o', 0,   0,   0,   0,   0,   2};

/* ---- a fake engine behind tl_wal_ops ---- */

#define MAX_LOG 8192
typedef struct eng {
    tl_wal_opener_symbol syms[4];
    uint32_t nsyms;
    uint32_t gmode, gwd;
    /* on_record */
    unsigned nrec;
    uint64_t rec_seq[MAX_LOG];
    uint64_t rec_checksum[MAX_LOG];
    /* on_durable */
    unsigned ndur;
    uint64_t dur_seq, dur_seg, dur_off;
    bool dur_monotonic;
    bool dur_on_other_thread;
    pthread_t producer;
    pthread_mutex_t mu;
} eng;

static void eng_init(eng *e) {
    memset(e, 0, sizeof *e);
    static const char *const names[] = {"BTCUSDT", "ETHUSDT", "SOL-USD.x"};
    for (uint32_t i = 0; i < 3; i++) {
        e->syms[i].symbol = i + 1;
        memcpy(e->syms[i].name, names[i], strlen(names[i]));
    }
    e->nsyms = 3;
    e->dur_monotonic = true;
    e->producer = pthread_self();
    pthread_mutex_init(&e->mu, NULL);
}

static uint32_t eng_symbols(void *ctx, tl_wal_opener_symbol *out, uint32_t cap) {
    eng *e = ctx;
    assert_true(cap >= e->nsyms);
    memcpy(out, e->syms, e->nsyms * sizeof *out);
    return e->nsyms;
}

static void eng_global(void *ctx, uint32_t *mode, uint32_t *wd) {
    eng *e = ctx;
    *mode = e->gmode;
    *wd = e->gwd;
}

static void eng_on_record(void *ctx, const uint8_t *rec, uint32_t len) {
    eng *e = ctx;
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    assert_int_equal(h->len, len);
    assert_int_equal(tl_rec_compute_checksum(rec, len), h->checksum);
    if (e->nrec < MAX_LOG) {
        e->rec_seq[e->nrec] = h->seq;
        e->rec_checksum[e->nrec] = h->checksum;
    }
    e->nrec++;
}

static void eng_on_durable(void *ctx, uint64_t seq, uint64_t seg, uint64_t off) {
    eng *e = ctx;
    pthread_mutex_lock(&e->mu);
    if (seq <= e->dur_seq)
        e->dur_monotonic = false;
    if (!pthread_equal(pthread_self(), e->producer))
        e->dur_on_other_thread = true;
    e->dur_seq = seq;
    e->dur_seg = seg;
    e->dur_off = off;
    e->ndur++;
    pthread_mutex_unlock(&e->mu);
}

static tl_wal_ops eng_ops(eng *e) {
    return (tl_wal_ops){.ctx = e,
                        .symbols = eng_symbols,
                        .global_mode = eng_global,
                        .on_record = eng_on_record,
                        .on_durable = eng_on_durable};
}

static tl_wal_config small_cfg(const char *dir, bool thread) {
    tl_wal_config c;
    tl_wal_config_default(&c);
    c.dir = dir;
    c.segment_bytes = 8192;
    c.staging_bytes = 256u << 10;
    c.group_max_records = 16;
    c.sync_thread = thread;
    c.initial_fence = 1;
    memcpy(c.engine_id, fx_engine, TL_ID_BYTES);
    return c;
}

/* ---- reading the result back ---- */

#define MAX_READ 8192
typedef struct back {
    fx_findings fs;
    tl_wal_summary sum;
    unsigned n;
    uint64_t seq[MAX_READ];
    uint64_t checksum[MAX_READ];
    uint16_t kind[MAX_READ];
    uint32_t symbol[MAX_READ];
    uint64_t seg[MAX_READ];
    uint64_t off[MAX_READ];
    uint8_t body[MAX_READ][32];
    unsigned nseg;
    tl_seg_hdr hdr[256];
} back;

static int back_rec(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result res) {
    (void)res;
    back *b = ctx;
    if (b->n < MAX_READ) {
        b->seq[b->n] = v->seq;
        b->checksum[b->n] = v->checksum;
        b->kind[b->n] = v->kind;
        b->symbol[b->n] = v->symbol;
        b->seg[b->n] = loc->segment;
        b->off[b->n] = loc->offset;
        memcpy(b->body[b->n], v->body, v->body_len < 32 ? v->body_len : 32);
    }
    b->n++;
    return 0;
}

static void back_seg(void *ctx, const tl_seg_hdr *h, uint64_t name) {
    back *b = ctx;
    assert_int_equal(h->first_seq, name);
    if (b->nseg < 256)
        b->hdr[b->nseg] = *h;
    b->nseg++;
}

static back *read_back(const char *dir) {
    back *b = calloc(1, sizeof *b);
    assert_non_null(b);
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.sink = (tl_sink){fx_collect, &b->fs};
    o.on_record = back_rec;
    o.on_segment = back_seg;
    o.ctx = b;
    assert_int_equal(tl_wal_read_dir(dir, &o, &b->sum), TL_WAL_OK);
    if (b->fs.n != 0)
        fx_print_findings(&b->fs);
    return b;
}

static uint8_t *read_segment_file(const char *dir, uint64_t first_seq, size_t *n) {
    char path[512], name[32];
    tl_seg_name(name, sizeof name, first_seq);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return tu_read_file(path, n);
}

static bool all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* ---- a mixed workload ---- */

static tl_wal_appended append_order(tl_wal *w, uint64_t id) {
    tl_body_order_new b = fx_order(id);
    tl_wal_appended a;
    assert_int_equal(tl_wal_append(w, TL_KIND_ORDER_NEW, 1, &b, sizeof b, 1000 + id, &a),
                     TL_WAL_OK);
    return a;
}

static void append_mode(tl_wal *w, eng *e, uint32_t symbol, uint32_t mode) {
    tl_body_mode_change b;
    memset(&b, 0, sizeof b);
    b.mode = mode;
    b.command_id[0] = 0x42; /* an admin command: not a restatement */
    assert_int_equal(tl_wal_append(w, TL_KIND_MODE_CHANGE, symbol, &b, sizeof b, 5, NULL),
                     TL_WAL_OK);
    if (symbol == 0)
        e->gmode = mode;
    else
        e->syms[symbol - 1].mode = mode;
}

static void workload(tl_wal *w, eng *e, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        uint64_t t = 2000 + i;
        switch (i % 7) {
            case 0:
            case 1:
                append_order(w, i);
                break;
            case 2: {
                tl_body_order_cancel b = {i, 7, 1};
                assert_int_equal(tl_wal_append(w, TL_KIND_ORDER_CANCEL, 2, &b, sizeof b, t, NULL),
                                 TL_WAL_OK);
                break;
            }
            case 3: {
                tl_body_trade b;
                memset(&b, 0, sizeof b);
                b.trade_id = i;
                b.price = 101;
                b.qty = 2;
                b.taker_side = TL_SIDE_SELL;
                assert_int_equal(tl_wal_append(w, TL_KIND_TRADE, 1, &b, sizeof b, t, NULL),
                                 TL_WAL_OK);
                break;
            }
            case 4: {
                tl_body_checkpoint b;
                memset(&b, (int)i, sizeof b);
                assert_int_equal(tl_wal_append(w, TL_KIND_CHECKPOINT, 0, &b, sizeof b, t, NULL),
                                 TL_WAL_OK);
                break;
            }
            case 5:
                assert_int_equal(tl_wal_append(w, TL_KIND_HEARTBEAT, 0, NULL, 0, t, NULL),
                                 TL_WAL_OK);
                break;
            case 6: {
                uint8_t b[13] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
                assert_int_equal(tl_wal_append(w, 99, 3, b, sizeof b, t, NULL), TL_WAL_OK);
                break;
            }
        }
        if (i == 300)
            append_mode(w, e, 2, TL_MODE_CANCEL_ONLY);
        if (i == 500)
            append_mode(w, e, 0, TL_MODE_SOFT_HALT);
        if (i == 600)
            append_mode(w, e, 0, TL_MODE_NORMAL);
        if (i == 700) {
            tl_wal_appended a;
            assert_int_equal(tl_wal_leader_change(w, 3, node_m, t, &a), TL_WAL_OK);
            assert_int_equal(tl_wal_fence(w), 3);
        }
        if (i == 900)
            append_mode(w, e, 3, TL_MODE_HARD_HALT);
        if (i == 1100)
            append_mode(w, e, 2, TL_MODE_NORMAL);
    }
}

/* Every segment after the first opens with SYMBOL 1..3, the scope-0
 * restatement and one per non-NORMAL symbol, as the modes applied before it
 * say; every header carries the fence and leader in force. */
static void check_openers(const back *b) {
    uint32_t modes[4] = {0, 0, 0, 0};
    uint64_t fence = b->hdr[0].fence;
    uint8_t leader[TL_ID_BYTES];
    memcpy(leader, b->hdr[0].leader_id, TL_ID_BYTES);
    unsigned segi = 0;
    for (unsigned i = 0; i < b->n; i++) {
        if (segi + 1 < b->nseg && b->seq[i] == b->hdr[segi + 1].first_seq) {
            segi++;
            const tl_seg_hdr *h = &b->hdr[segi];
            assert_int_equal(h->segment_index, segi);
            assert_int_equal(h->fence, fence);
            assert_memory_equal(h->leader_id, leader, TL_ID_BYTES);
            assert_int_equal(h->segment_size, 8192);
            assert_memory_equal(h->engine_id, fx_engine, TL_ID_BYTES);
            unsigned k = i;
            for (uint32_t s = 1; s <= 3; s++, k++) {
                assert_int_equal(b->kind[k], TL_KIND_SYMBOL);
                assert_int_equal(b->symbol[k], s);
            }
            assert_string_equal((const char *)b->body[i + 2], "SOL-USD.x");
            for (uint32_t s = 0; s <= 3; s++) {
                if (s != 0 && modes[s] == TL_MODE_NORMAL)
                    continue;
                tl_body_mode_change mc;
                memcpy(&mc, b->body[k], sizeof mc);
                assert_int_equal(b->kind[k], TL_KIND_MODE_CHANGE);
                assert_int_equal(b->symbol[k], s);
                assert_int_equal(mc.mode, modes[s]);
                assert_true(tl_id_is_restatement(mc.command_id));
                k++;
            }
            /* nothing else before the engine's own records */
            assert_true(b->kind[k] != TL_KIND_SYMBOL);
            if (b->kind[k] == TL_KIND_MODE_CHANGE) {
                tl_body_mode_change mc;
                memcpy(&mc, b->body[k], sizeof mc);
                assert_false(tl_id_is_restatement(mc.command_id));
            }
        }
        if (b->kind[i] == TL_KIND_MODE_CHANGE) {
            tl_body_mode_change mc;
            memcpy(&mc, b->body[i], sizeof mc);
            if (!tl_id_is_restatement(mc.command_id))
                modes[b->symbol[i]] = mc.mode;
        }
        if (b->kind[i] == TL_KIND_LEADER_CHANGE) {
            tl_body_leader_change lc;
            memcpy(&lc, b->body[i], sizeof lc);
            fence = lc.new_fence;
            memcpy(leader, lc.leader_id, TL_ID_BYTES);
        }
    }
    assert_int_equal(segi + 1, b->nseg);
}

static void round_trip(bool thread) {
    char *dir = tu_tmpdir(thread ? "wrt-thread" : "wrt-inline");
    eng *e = calloc(1, sizeof *e);
    eng_init(e);
    tl_wal_config cfg = small_cfg(dir, thread);
    tl_wal_ops ops = eng_ops(e);
    tl_wal *w;
    tl_wal_recovered rec;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    assert_true(rec.new_log);
    assert_int_equal(rec.last_seq, 3); /* the SYMBOL declarations */
    assert_int_equal(rec.segment_first_seq, 1);
    assert_int_equal(rec.offset, 4096 + 3 * 88);
    assert_int_equal(e->ndur, 0); /* not during open */
    assert_int_equal(tl_wal_next_seq(w), 4);
    tl_wal_appended a;
    assert_int_equal(tl_wal_leader_change(w, 2, node_l, 1, &a), TL_WAL_OK);
    assert_int_equal(a.seq, 4);
    workload(w, e, 1500);
    uint64_t last = tl_wal_next_seq(w) - 1;
    uint64_t last_ck = tl_wal_last_checksum(w);
    assert_int_equal(tl_wal_sync(w), TL_WAL_OK);
    tl_walseg_durable d;
    tl_wal_durable(w, &d);
    assert_int_equal(d.seq, last);
    pthread_mutex_lock(&e->mu);
    assert_int_equal(e->dur_seq, last);
    assert_int_equal(e->dur_seg, d.segment_first_seq);
    assert_int_equal(e->dur_off, d.offset);
    assert_true(e->dur_monotonic);
    assert_true(e->ndur > 10);
    assert_true(e->dur_on_other_thread == thread);
    pthread_mutex_unlock(&e->mu);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);

    back *b = read_back(dir);
    assert_int_equal(b->fs.n, 0);
    assert_int_equal(b->n, last);
    assert_int_equal(e->nrec, last);
    for (unsigned i = 0; i < b->n; i++) {
        assert_int_equal(b->seq[i], i + 1);
        assert_int_equal(e->rec_seq[i], i + 1);
        assert_true(b->checksum[i] == e->rec_checksum[i]);
    }
    assert_true(b->sum.last_checksum == last_ck);
    assert_true(b->nseg > 20);
    assert_int_equal(b->sum.fence, 3);
    assert_memory_equal(b->sum.leader_id, node_m, TL_ID_BYTES);
    assert_true(b->sum.anchor_verified);
    assert_int_equal(b->sum.tail, TL_WAL_TAIL_CLEAN);
    assert_int_equal(b->sum.tail_segment, d.segment_first_seq);
    assert_int_equal(b->sum.tail_offset, d.offset);
    /* the first segment: SYMBOL declarations only, then the LEADER_CHANGE */
    assert_int_equal(b->hdr[0].fence, 1);
    assert_true(tl_id_is_zero(b->hdr[0].leader_id));
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(b->kind[i], TL_KIND_SYMBOL);
    assert_int_equal(b->kind[3], TL_KIND_LEADER_CHANGE);
    check_openers(b);
    /* the files: preallocated to segment_bytes */
    struct stat st;
    char path[512], name[32];
    tl_seg_name(name, sizeof name, b->hdr[5].first_seq);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 8192);
    free(b);

    /* Open again: a clean tail, nothing cut, the chain continues. */
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    assert_false(rec.new_log);
    assert_false(rec.torn);
    assert_false(rec.openers_rewritten);
    assert_int_equal(rec.last_seq, last);
    assert_true(rec.last_checksum == last_ck);
    assert_int_equal(rec.fence, 3);
    assert_memory_equal(rec.leader_id, node_m, TL_ID_BYTES);
    assert_int_equal(rec.segment_first_seq, d.segment_first_seq);
    assert_int_equal(rec.offset, d.offset);
    assert_true(rec.anchor_verified);
    a = append_order(w, 77);
    assert_int_equal(a.seq, last + 1);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    b = read_back(dir);
    assert_int_equal(b->fs.n, 0);
    assert_int_equal(b->n, last + 1);
    free(b);
    pthread_mutex_destroy(&e->mu);
    free(e);
    tu_rm_rf(dir);
    free(dir);
}

static void test_round_trip_inline(void **state) {
    (void)state;
    round_trip(false);
}

static void test_round_trip_thread(void **state) {
    (void)state;
    round_trip(true);
}

/* A crash in the middle of writing a record: recovery cuts it, and that
 * seq is written again. */
static void torn(bool thread) {
    char *dir = tu_tmpdir("torn");
    eng *e = calloc(1, sizeof *e);
    eng_init(e);
    tl_wal_config cfg = small_cfg(dir, thread);
    tl_wal_ops ops = eng_ops(e);
    tl_wal *w;
    tl_wal_recovered rec;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    for (unsigned i = 0; i < 80; i++)
        append_order(w, i);
    assert_int_equal(tl_wal_sync(w), TL_WAL_OK);
    uint64_t s = tl_wal_next_seq(w) + 3;
    assert_int_equal(tl_wal_fault_arm(w, TL_WAL_FAULT_TEAR, s, 50), TL_WAL_OK);
    tl_wal_appended at[10];
    uint64_t before_ck = 0;
    for (unsigned i = 0; i < 10; i++) {
        /* Up to seq s the appends succeed; after it the consumer may have
         * crashed already (with the thread, or a group that filled). */
        tl_body_order_new ob = fx_order(1000 + i);
        enum tl_wal_err rc = tl_wal_append(w, TL_KIND_ORDER_NEW, 1, &ob, sizeof ob, 1, &at[i]);
        if (i <= 3)
            assert_int_equal(rc, TL_WAL_OK);
        else if (rc != TL_WAL_OK)
            assert_int_equal(rc, TL_WAL_ERR_FAILED);
        if (i < 3)
            assert_int_equal(at[i].seq, s - 3 + i);
        if (at[i].seq == s - 1)
            before_ck = at[i].checksum;
    }
    assert_int_equal(at[3].seq, s);
    assert_int_equal(tl_wal_sync(w), TL_WAL_ERR_FAILED);
    assert_int_equal(tl_wal_append(w, TL_KIND_HEARTBEAT, 0, NULL, 0, 1, NULL), TL_WAL_ERR_FAILED);
    assert_string_equal(tl_wal_last_ioerr(w).op, "fault_tear");
    assert_int_equal(tl_wal_close(w), TL_WAL_ERR_FAILED);

    /* The file holds the first 50 bytes of record s, then zeros. */
    size_t n;
    uint8_t *f = read_segment_file(dir, at[3].segment_first_seq, &n);
    assert_int_equal(tl_rec_hdr_of(f + at[3].offset)->seq, s);
    assert_true(all_zero(f + at[3].offset + 50, n - at[3].offset - 50));
    free(f);
    back *b = read_back(dir);
    assert_int_equal(b->fs.n, 0);
    assert_int_equal(b->sum.tail, TL_WAL_TAIL_TENTATIVE);
    assert_int_equal(b->sum.tail_offset, at[3].offset);
    free(b);

    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    assert_true(rec.torn);
    assert_int_equal(rec.torn_offset, at[3].offset);
    assert_int_equal(rec.last_seq, s - 1);
    assert_true(rec.last_checksum == before_ck);
    assert_int_equal(rec.segment_first_seq, at[3].segment_first_seq);
    assert_int_equal(rec.offset, at[3].offset);
    f = read_segment_file(dir, at[3].segment_first_seq, &n);
    assert_true(all_zero(f + at[3].offset, n - at[3].offset));
    free(f);
    /* seq s again, with other content */
    tl_wal_appended again = append_order(w, 5555);
    assert_int_equal(again.seq, s);
    assert_int_equal(again.offset, at[3].offset);
    assert_true(again.checksum != at[3].checksum);
    for (unsigned i = 0; i < 20; i++)
        append_order(w, 6000 + i);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    b = read_back(dir);
    assert_int_equal(b->fs.n, 0);
    assert_int_equal(b->sum.tail, TL_WAL_TAIL_CLEAN);
    assert_int_equal(b->sum.last_seq, s + 20);
    assert_true(b->checksum[s - 1] == again.checksum);
    free(b);
    pthread_mutex_destroy(&e->mu);
    free(e);
    tu_rm_rf(dir);
    free(dir);
}

static void test_torn_write_inline(void **state) {
    (void)state;
    torn(false);
}

static void test_torn_write_thread(void **state) {
    (void)state;
    torn(true);
}

/* A crash while a segment starts: its openers are missing or partial. */
static void test_crash_in_openers(void **state) {
    (void)state;
    for (uint32_t written = 0; written < 3; written++) {
        char *dir = tu_tmpdir("openers");
        eng *e = calloc(1, sizeof *e);
        eng_init(e);
        e->syms[1].mode = TL_MODE_CANCEL_ONLY;
        tl_wal_config cfg = small_cfg(dir, false);
        tl_wal_ops ops = eng_ops(e);
        tl_wal *w;
        tl_wal_recovered rec;
        assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
        for (unsigned i = 0; i < 10; i++)
            append_order(w, i);
        assert_int_equal(tl_wal_roll(w), TL_WAL_OK);
        uint64_t first = tl_wal_next_seq(w);
        /* the crash hits the opener at first + written */
        assert_int_equal(tl_wal_fault_arm(w, TL_WAL_FAULT_TEAR, first + written, 0), TL_WAL_OK);
        /* the crash may surface in this append already (a full group) */
        tl_body_order_new ob = fx_order(99);
        enum tl_wal_err rc = tl_wal_append(w, TL_KIND_ORDER_NEW, 1, &ob, sizeof ob, 1, NULL);
        assert_true(rc == TL_WAL_OK || rc == TL_WAL_ERR_FAILED);
        assert_int_equal(tl_wal_sync(w), TL_WAL_ERR_FAILED);
        assert_int_equal(tl_wal_close(w), TL_WAL_ERR_FAILED);

        assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
        assert_true(rec.openers_rewritten);
        assert_int_equal(rec.segment_first_seq, first);
        /* 3 SYMBOL, scope 0, ETHUSDT */
        assert_int_equal(rec.last_seq, first + written - 1 + 5);
        append_order(w, 100);
        assert_int_equal(tl_wal_close(w), TL_WAL_OK);
        back *b = read_back(dir);
        assert_int_equal(b->fs.n, 0);
        assert_int_equal(b->nseg, 2);
        /* the newest segment: what survived, then the full opener set */
        unsigned i = (unsigned)first - 1 + written;
        for (uint32_t s = 1; s <= 3; s++)
            assert_int_equal(b->kind[i + s - 1], TL_KIND_SYMBOL);
        assert_int_equal(b->kind[i + 3], TL_KIND_MODE_CHANGE);
        assert_int_equal(b->symbol[i + 3], 0);
        assert_int_equal(b->kind[i + 4], TL_KIND_MODE_CHANGE);
        assert_int_equal(b->symbol[i + 4], 2);
        assert_int_equal(b->kind[i + 5], TL_KIND_ORDER_NEW);
        free(b);
        pthread_mutex_destroy(&e->mu);
        free(e);
        tu_rm_rf(dir);
        free(dir);
    }
}

static void test_garbage_past_tail_is_cut(void **state) {
    (void)state;
    /* Pages a crash persisted past a hole are not part of the log. */
    char *dir = tu_tmpdir("hole");
    eng *e = calloc(1, sizeof *e);
    eng_init(e);
    tl_wal_config cfg = small_cfg(dir, false);
    cfg.segment_bytes = 65536;
    tl_wal_ops ops = eng_ops(e);
    tl_wal *w;
    tl_wal_recovered rec;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    tl_wal_appended a = append_order(w, 1);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    uint64_t end = a.offset + a.len;
    char path[512];
    snprintf(path, sizeof path, "%s/00000000000000000001.wal", dir);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    uint8_t junk[200];
    memset(junk, 0xa5, sizeof junk);
    assert_int_equal(pwrite(fd, junk, sizeof junk, (off_t)(end + 8192)), (ssize_t)sizeof junk);
    close(fd);
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    assert_false(rec.torn);
    assert_int_equal(rec.offset, end);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    size_t n;
    uint8_t *f = read_segment_file(dir, 1, &n);
    assert_int_equal(n, 65536);
    assert_true(all_zero(f + end, n - end));
    free(f);
    pthread_mutex_destroy(&e->mu);
    free(e);
    tu_rm_rf(dir);
    free(dir);
}

static void test_refuse_corrupt_sealed(void **state) {
    (void)state;
    char *dir = tu_tmpdir("refuse");
    eng *e = calloc(1, sizeof *e);
    eng_init(e);
    tl_wal_config cfg = small_cfg(dir, false);
    tl_wal_ops ops = eng_ops(e);
    tl_wal *w;
    tl_wal_recovered rec;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    assert_int_equal(tl_wal_fault_arm(w, TL_WAL_FAULT_FLIP, 10, 70), TL_WAL_OK);
    tl_wal_appended at10 = {0};
    for (unsigned i = 0; i < 200; i++) {
        tl_wal_appended a = append_order(w, i);
        if (a.seq == 10)
            at10 = a;
    }
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    assert_int_equal(at10.segment_first_seq, 1);
    back *b = read_back(dir);
    assert_int_equal(b->fs.n, 1);
    free(b);

    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_ERR_CORRUPT);
    assert_null(w);
    assert_int_equal(rec.findings_total, 1);
    assert_int_equal(rec.first_finding.check, TL_CHECK_WAL_CORRUPT);
    assert_int_equal(rec.first_finding.rule, TL_RULE_CHECKSUM);
    assert_int_equal(rec.first_finding.reason, TL_REC_ERR_CHECKSUM);
    assert_int_equal(rec.first_finding.segment, 1);
    assert_int_equal(rec.first_finding.offset, at10.offset);
    assert_int_equal(rec.first_finding.seq, 10);
    assert_string_equal(tl_wal_err_name(TL_WAL_ERR_CORRUPT), "wal_corrupt");

    /* Scanning only the last two segments, the writer opens. */
    cfg.recovery_full_scan = false;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    assert_false(rec.anchor_verified);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    pthread_mutex_destroy(&e->mu);
    free(e);
    tu_rm_rf(dir);
    free(dir);
}

static void test_retire(void **state) {
    (void)state;
    char *dir = tu_tmpdir("retire");
    eng *e = calloc(1, sizeof *e);
    eng_init(e);
    tl_wal_config cfg = small_cfg(dir, true);
    tl_wal_ops ops = eng_ops(e);
    tl_wal *w;
    tl_wal_recovered rec;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    for (unsigned i = 0; i < 400; i++)
        append_order(w, i);
    assert_int_equal(tl_wal_sync(w), TL_WAL_OK);
    back *b = read_back(dir);
    unsigned nseg = b->nseg;
    assert_true(nseg >= 8);
    uint64_t f5 = b->hdr[5].first_seq, f6 = b->hdr[6].first_seq;
    free(b);
    uint32_t del = 99;
    assert_int_equal(tl_wal_retire(w, 0, &del), TL_WAL_OK);
    assert_int_equal(del, 0);
    assert_int_equal(tl_wal_retire(w, f6 - 1, &del), TL_WAL_OK);
    assert_int_equal(del, 5); /* 0..4; 5 still holds f6 - 1 */
    assert_int_equal(tl_wal_retire(w, f6 - 1, &del), TL_WAL_OK);
    assert_int_equal(del, 0);
    b = read_back(dir);
    assert_int_equal(b->fs.n, 0);
    assert_false(b->sum.anchor_verified);
    assert_int_equal(b->hdr[0].first_seq, f5);
    assert_int_equal(b->nseg, nseg - 5);
    free(b);
    /* Everything but the newest. */
    assert_int_equal(tl_wal_retire(w, UINT64_MAX, &del), TL_WAL_OK);
    assert_int_equal(del, nseg - 6);
    for (unsigned i = 0; i < 30; i++)
        append_order(w, i);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    /* A log that starts mid-way opens (anchor unverified) and goes on. */
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    assert_false(rec.anchor_verified);
    append_order(w, 1);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    b = read_back(dir);
    assert_int_equal(b->fs.n, 0);
    free(b);
    pthread_mutex_destroy(&e->mu);
    free(e);
    tu_rm_rf(dir);
    free(dir);
}

static void test_group_commit_inline(void **state) {
    (void)state;
    char *dir = tu_tmpdir("group");
    eng *e = calloc(1, sizeof *e);
    eng_init(e);
    tl_wal_config cfg = small_cfg(dir, false);
    cfg.segment_bytes = 1 << 20;
    cfg.group_max_records = 10;
    cfg.group_max_bytes = 1 << 30;
    cfg.group_max_delay_ns = 10ull * 1000000000ull;
    tl_wal_ops ops = eng_ops(e);
    tl_wal *w;
    tl_wal_recovered rec;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    assert_int_equal(rec.last_seq, 3);
    tl_wal_appended a[95];
    for (unsigned i = 0; i < 95; i++) {
        a[i] = append_order(w, i);
        /* a sync every 10 records: at seqs 13, 23, ... */
        assert_int_equal(e->ndur, (a[i].seq - 3) / 10);
        if (e->ndur > 0) {
            uint64_t want = 3 + 10 * e->ndur;
            assert_int_equal(e->dur_seq, want);
            const tl_wal_appended *x = &a[want - 4];
            assert_int_equal(e->dur_seg, x->segment_first_seq);
            assert_int_equal(e->dur_off, x->offset + x->len);
        }
    }
    assert_int_equal(tl_wal_poll(w), TL_WAL_OK); /* not old enough */
    assert_int_equal(e->ndur, 9);
    assert_int_equal(tl_wal_sync(w), TL_WAL_OK);
    assert_int_equal(e->ndur, 10);
    assert_int_equal(e->dur_seq, 98);
    assert_int_equal(tl_wal_sync(w), TL_WAL_OK); /* nothing new: no call */
    assert_int_equal(e->ndur, 10);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);

    /* The max delay, inline: tl_wal_poll syncs once the oldest is old. */
    cfg.group_max_delay_ns = 50000000; /* 50 ms */
    e->ndur = 0;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    append_order(w, 1);
    append_order(w, 2);
    assert_int_equal(e->ndur, 0);
    struct timespec ts = {0, 60000000};
    nanosleep(&ts, NULL);
    assert_int_equal(tl_wal_poll(w), TL_WAL_OK);
    assert_int_equal(e->ndur, 1);
    assert_int_equal(e->dur_seq, 100);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    pthread_mutex_destroy(&e->mu);
    free(e);
    tu_rm_rf(dir);
    free(dir);
}

static void test_group_delay_thread(void **state) {
    (void)state;
    /* With the sync thread, a lone record becomes durable within the max
     * delay without any call: the consumer's nap ends and it syncs. */
    char *dir = tu_tmpdir("delay");
    eng *e = calloc(1, sizeof *e);
    eng_init(e);
    tl_wal_config cfg = small_cfg(dir, true);
    cfg.group_max_records = 1000;
    cfg.group_max_delay_ns = 2000000; /* 2 ms */
    tl_wal_ops ops = eng_ops(e);
    tl_wal *w;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, NULL), TL_WAL_OK);
    tl_wal_appended a = append_order(w, 1);
    tl_walseg_durable d = {0};
    for (unsigned i = 0; i < 5000 && d.seq != a.seq; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        tl_wal_durable(w, &d);
    }
    assert_int_equal(d.seq, a.seq);
    assert_int_equal(d.offset, a.offset + a.len);
    /* An idle consumer wakes for the next record too. */
    a = append_order(w, 2);
    for (unsigned i = 0; i < 5000 && d.seq != a.seq; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        tl_wal_durable(w, &d);
    }
    assert_int_equal(d.seq, a.seq);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    pthread_mutex_destroy(&e->mu);
    free(e);
    tu_rm_rf(dir);
    free(dir);
}

static void test_backpressure_thread(void **state) {
    (void)state;
    /* Far more than the staging ring holds, in big records: the producer
     * waits for room and nothing is lost. */
    char *dir = tu_tmpdir("backpressure");
    eng *e = calloc(1, sizeof *e);
    eng_init(e);
    tl_wal_config cfg = small_cfg(dir, true);
    cfg.segment_bytes = 1 << 20;
    tl_wal_ops ops = eng_ops(e);
    tl_wal *w;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, NULL), TL_WAL_OK);
    static uint8_t body[60000];
    for (unsigned i = 0; i < 200; i++) {
        memset(body, (int)i, sizeof body);
        assert_int_equal(tl_wal_append(w, 120, 0, body, sizeof body, i, NULL), TL_WAL_OK);
    }
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    back *b = read_back(dir);
    assert_int_equal(b->fs.n, 0);
    /* the declarations, the records, and 3 SYMBOL + 1 restatement per later segment */
    assert_int_equal(b->n, 3 + 200 + 4 * (b->nseg - 1));
    assert_true(b->nseg > 5);
    free(b);
    pthread_mutex_destroy(&e->mu);
    free(e);
    tu_rm_rf(dir);
    free(dir);
}

static void test_large_runs(void **state) {
    (void)state;
    /* A backlog of several MiB staged before one drain: the consumer splits
     * it into pwrites of at most 1 MiB, each at its own file offset. */
    for (int thread = 0; thread < 2; thread++) {
        char *dir = tu_tmpdir("runs");
        eng *e = calloc(1, sizeof *e);
        eng_init(e);
        tl_wal_config cfg = small_cfg(dir, thread);
        cfg.segment_bytes = 8u << 20;
        cfg.staging_bytes = 8u << 20;
        cfg.group_max_bytes = 6u << 20;
        cfg.group_max_records = 100000;
        cfg.group_max_delay_ns = 10ull * 1000000000ull;
        tl_wal_ops ops = eng_ops(e);
        tl_wal *w;
        assert_int_equal(tl_wal_open(&w, &cfg, &ops, NULL), TL_WAL_OK);
        static uint8_t body[1000];
        for (unsigned i = 0; i < 5000; i++) {
            memset(body, (int)i, sizeof body);
            assert_int_equal(tl_wal_append(w, 120, 0, body, sizeof body, i, NULL), TL_WAL_OK);
        }
        assert_int_equal(tl_wal_close(w), TL_WAL_OK);
        back *b = read_back(dir);
        assert_int_equal(b->fs.n, 0);
        assert_int_equal(b->n, 3 + 5000 + 4 * (b->nseg - 1));
        free(b);
        pthread_mutex_destroy(&e->mu);
        free(e);
        tu_rm_rf(dir);
        free(dir);
    }
}

static void test_exact_ring_wrap(void **state) {
    (void)state;
    /* Every entry is 128 bytes after an opening of 384 (a SEG marker and
     * three SYMBOLs): records end exactly at the staging ring's end, with no
     * WRAP marker, and a drain's run must not run across that end. */
    for (int thread = 0; thread < 2; thread++) {
        char *dir = tu_tmpdir("exactwrap");
        eng *e = calloc(1, sizeof *e);
        eng_init(e);
        tl_wal_config cfg = small_cfg(dir, thread);
        cfg.segment_bytes = 8u << 20;
        cfg.staging_bytes = 256u << 10;
        cfg.group_max_records = 1000;
        cfg.group_max_bytes = 1u << 30;
        cfg.group_max_delay_ns = 10ull * 1000000000ull;
        tl_wal_ops ops = eng_ops(e);
        tl_wal *w;
        assert_int_equal(tl_wal_open(&w, &cfg, &ops, NULL), TL_WAL_OK);
        tl_body_trade t;
        memset(&t, 0, sizeof t);
        t.qty = 1;
        t.taker_side = TL_SIDE_BUY;
        for (unsigned i = 0; i < 20000; i++) {
            t.trade_id = i;
            tl_wal_appended a;
            assert_int_equal(tl_wal_append(w, TL_KIND_TRADE, 1, &t, sizeof t, i, &a), TL_WAL_OK);
            assert_int_equal(a.len, 128);
        }
        assert_int_equal(tl_wal_close(w), TL_WAL_OK);
        back *b = read_back(dir);
        assert_int_equal(b->fs.n, 0);
        assert_int_equal(b->nseg, 1);
        assert_int_equal(b->sum.last_seq, 20003);
        free(b);
        pthread_mutex_destroy(&e->mu);
        free(e);
        tu_rm_rf(dir);
        free(dir);
    }
}

static void test_errors(void **state) {
    (void)state;
    char *dir = tu_tmpdir("errors");
    eng *e = calloc(1, sizeof *e);
    eng_init(e);
    tl_wal_config cfg = small_cfg(dir, false);
    tl_wal_ops ops = eng_ops(e);
    tl_wal *w, *w2;
    tl_wal_config bad = cfg;
    bad.segment_bytes = 8000;
    assert_int_equal(tl_wal_open(&w, &bad, &ops, NULL), TL_WAL_ERR_CONFIG);
    bad.segment_bytes = 4096;
    assert_int_equal(tl_wal_open(&w, &bad, &ops, NULL), TL_WAL_ERR_CONFIG);
    bad = cfg;
    bad.staging_bytes = 300000;
    assert_int_equal(tl_wal_open(&w, &bad, &ops, NULL), TL_WAL_ERR_CONFIG);

    assert_int_equal(tl_wal_open(&w, &cfg, &ops, NULL), TL_WAL_OK);
    assert_int_equal(tl_wal_open(&w2, &cfg, &ops, NULL), TL_WAL_ERR_LOCKED);
    assert_string_equal(tl_wal_err_name(TL_WAL_ERR_LOCKED), "wal_locked");

    tl_body_order_new ob = fx_order(1);
    assert_int_equal(tl_wal_append(w, 0, 0, &ob, sizeof ob, 1, NULL), TL_WAL_ERR_KIND);
    assert_int_equal(tl_wal_append(w, TL_KIND_PAD, 0, NULL, 0, 1, NULL), TL_WAL_ERR_KIND);
    assert_int_equal(tl_wal_append(w, TL_KIND_LEADER_CHANGE, 0, &ob, 32, 1, NULL), TL_WAL_ERR_KIND);
    assert_int_equal(tl_wal_append(w, TL_KIND_ORDER_NEW, 1, &ob, 39, 1, NULL), TL_WAL_ERR_RECORD);
    ob.side = 3;
    assert_int_equal(tl_wal_append(w, TL_KIND_ORDER_NEW, 1, &ob, sizeof ob, 1, NULL),
                     TL_WAL_ERR_RECORD);
    tl_body_symbol sb;
    memset(&sb, 0, sizeof sb);
    memcpy(sb.name, "BAD NAME", 8);
    assert_int_equal(tl_wal_append(w, TL_KIND_SYMBOL, 9, &sb, sizeof sb, 1, NULL),
                     TL_WAL_ERR_RECORD);
    static uint8_t big[TL_REC_BODY_MAX + 1];
    assert_int_equal(tl_wal_append(w, 100, 0, big, 7000, 1, NULL), TL_WAL_ERR_TOO_BIG);
    assert_int_equal(tl_wal_append(w, 100, 0, big, sizeof big, 1, NULL), TL_WAL_ERR_TOO_BIG);
    assert_int_equal(tl_wal_leader_change(w, 1, node_l, 1, NULL), TL_WAL_ERR_FENCE);
    assert_int_equal(tl_wal_leader_change(w, 0, node_l, 1, NULL), TL_WAL_ERR_FENCE);
    assert_int_equal(tl_wal_fault_arm(w, TL_WAL_FAULT_TEAR, 1, 0), TL_WAL_ERR_SEQ);
    /* an opener set that cannot be written */
    e->syms[0].name[0] = ' ';
    assert_int_equal(tl_wal_roll(w), TL_WAL_OK); /* the segment has records: a roll is due */
    assert_int_equal(tl_wal_append(w, TL_KIND_HEARTBEAT, 0, NULL, 0, 1, NULL), TL_WAL_ERR_RECORD);
    e->syms[0].name[0] = 'B';
    /* nothing of the above reached the log; it goes on */
    append_order(w, 5);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    back *b = read_back(dir);
    assert_int_equal(b->fs.n, 0);
    assert_int_equal(b->n, 3 + 4 + 1); /* declarations, openers of segment 1, the append */
    assert_int_equal(b->nseg, 2);
    free(b);
    pthread_mutex_destroy(&e->mu);
    free(e);
    tu_rm_rf(dir);
    free(dir);
}

typedef struct copy_ctx {
    tl_wal *w;
    uint64_t seg;
    unsigned n;
    enum tl_wal_err first_err;
} copy_ctx;

static int copy_rec(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result res) {
    (void)res;
    copy_ctx *c = ctx;
    if (c->n > 0 && loc->segment != c->seg)
        assert_int_equal(tl_wal_roll(c->w), TL_WAL_OK);
    c->seg = loc->segment;
    const uint8_t *rec = v->body - TL_REC_HDR_BYTES;
    enum tl_wal_err rc = tl_wal_append_record(c->w, rec, v->len, NULL);
    if (rc != TL_WAL_OK && c->first_err == TL_WAL_OK)
        c->first_err = rc;
    c->n++;
    return 0;
}

static void test_standby_append_record(void **state) {
    (void)state;
    /* A leader's log, then a standby that persists its records byte for
     * byte, rolling where the leader's segments start. */
    char *ldir = tu_tmpdir("leader"), *sdir = tu_tmpdir("standby");
    eng *e = calloc(1, sizeof *e);
    eng_init(e);
    tl_wal_config cfg = small_cfg(ldir, false);
    tl_wal_ops ops = eng_ops(e);
    tl_wal *w;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, NULL), TL_WAL_OK);
    assert_int_equal(tl_wal_leader_change(w, 2, node_l, 1, NULL), TL_WAL_OK);
    workload(w, e, 800);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);

    tl_wal_config scfg = small_cfg(sdir, true);
    uint8_t standby_id[TL_ID_BYTES] = {9, 9, 9};
    memcpy(scfg.engine_id, standby_id, TL_ID_BYTES);
    tl_wal_ops sops = {0};
    assert_int_equal(tl_wal_open(&w, &scfg, &sops, NULL), TL_WAL_OK);
    copy_ctx cc = {w, 0, 0, TL_WAL_OK};
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.on_record = copy_rec;
    o.ctx = &cc;
    tl_wal_summary sum;
    assert_int_equal(tl_wal_read_dir(ldir, &o, &sum), TL_WAL_OK);
    assert_int_equal(cc.first_err, TL_WAL_OK);
    assert_int_equal(cc.n, sum.records_total);

    /* Refusals: a wrong seq, a wrong parent, a wrong fence, bad bytes. */
    uint8_t rec[128] __attribute__((aligned(8)));
    tl_body_order_new ob = fx_order(1);
    tl_rec_meta m = {.parent = tl_wal_last_checksum(w),
                     .seq = tl_wal_next_seq(w),
                     .fence = tl_wal_fence(w),
                     .ts_ns = 1,
                     .kind = TL_KIND_ORDER_NEW,
                     .symbol = 1};
    tl_rec_meta mm = m;
    mm.seq++;
    uint32_t len = tl_rec_encode(rec, sizeof rec, &mm, &ob, sizeof ob);
    assert_int_equal(tl_wal_append_record(w, rec, len, NULL), TL_WAL_ERR_SEQ);
    mm = m;
    mm.parent ^= 1;
    len = tl_rec_encode(rec, sizeof rec, &mm, &ob, sizeof ob);
    assert_int_equal(tl_wal_append_record(w, rec, len, NULL), TL_WAL_ERR_PARENT);
    mm = m;
    mm.fence = 1;
    len = tl_rec_encode(rec, sizeof rec, &mm, &ob, sizeof ob);
    assert_int_equal(tl_wal_append_record(w, rec, len, NULL), TL_WAL_ERR_FENCE);
    mm = m;
    len = tl_rec_encode(rec, sizeof rec, &mm, &ob, sizeof ob);
    rec[70] ^= 1;
    assert_int_equal(tl_wal_append_record(w, rec, len, NULL), TL_WAL_ERR_RECORD);
    rec[70] ^= 1;
    assert_int_equal(tl_wal_append_record(w, rec, 60, NULL), TL_WAL_ERR_RECORD);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);

    back *lb = read_back(ldir), *sb = read_back(sdir);
    assert_int_equal(lb->fs.n, 0);
    assert_int_equal(sb->fs.n, 0);
    assert_int_equal(lb->n, sb->n);
    for (unsigned i = 0; i < lb->n; i++) {
        assert_true(lb->checksum[i] == sb->checksum[i]);
        assert_int_equal(lb->seg[i], sb->seg[i]);
        assert_int_equal(lb->off[i], sb->off[i]);
    }
    assert_int_equal(lb->nseg, sb->nseg);
    for (unsigned k = 0; k < lb->nseg; k++) {
        assert_int_equal(lb->hdr[k].first_seq, sb->hdr[k].first_seq);
        assert_int_equal(lb->hdr[k].fence, sb->hdr[k].fence);
        assert_memory_equal(sb->hdr[k].engine_id, standby_id, TL_ID_BYTES);
    }
    free(lb);
    free(sb);
    pthread_mutex_destroy(&e->mu);
    free(e);
    tu_rm_rf(ldir);
    tu_rm_rf(sdir);
    free(ldir);
    free(sdir);
}

static void test_continue_vector_log(void **state) {
    (void)state;
    /* The writer recovers a log made by the independent encoder and goes on
     * with its chain. */
    char *dir = tu_tmpdir("vector");
    static const char *const names[] = {"00000000000000000001.wal", "00000000000000000039.wal",
                                        "00000000000000000077.wal"};
    for (unsigned i = 0; i < 3; i++) {
        char rel[128], path[512];
        snprintf(rel, sizeof rel, "spec/vectors/wal-clean/%s", names[i]);
        size_t n;
        uint8_t *b = tu_read_file(tu_shared(rel), &n);
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        tu_write_file(path, b, n);
        free(b);
    }
    eng *e = calloc(1, sizeof *e);
    eng_init(e);
    tl_wal_config cfg = small_cfg(dir, false);
    tl_wal_ops ops = eng_ops(e);
    tl_wal *w;
    tl_wal_recovered rec;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, &rec), TL_WAL_OK);
    assert_int_equal(rec.last_seq, 103);
    assert_true(rec.last_checksum == 0x611779eabf559928ull);
    assert_int_equal(rec.fence, 2);
    assert_memory_equal(rec.leader_id, fx_engine, TL_ID_BYTES);
    assert_int_equal(rec.segment_first_seq, 77);
    assert_int_equal(rec.segment_index, 2);
    assert_int_equal(rec.offset, 7008);
    assert_int_equal(rec.records_scanned, 103);
    tl_walseg_durable d;
    tl_wal_durable(w, &d);
    assert_int_equal(d.seq, 103);
    assert_int_equal(d.segment_first_seq, 77);
    assert_int_equal(d.offset, 7008);
    tl_wal_appended a = append_order(w, 1);
    assert_int_equal(a.seq, 104);
    assert_int_equal(a.offset, 7008);
    for (unsigned i = 0; i < 40; i++)
        append_order(w, i);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    back *b = read_back(dir);
    assert_int_equal(b->fs.n, 0);
    /* 41 records, and 3 SYMBOL + 1 restatement in each new segment */
    assert_true(b->nseg >= 4);
    assert_int_equal(b->sum.last_seq, 144 + 4 * (b->nseg - 3));
    free(b);
    pthread_mutex_destroy(&e->mu);
    free(e);
    tu_rm_rf(dir);
    free(dir);
}

static void test_stale_tmp_removed(void **state) {
    (void)state;
    char *dir = tu_tmpdir("staletmp");
    eng *e = calloc(1, sizeof *e);
    eng_init(e);
    tl_wal_config cfg = small_cfg(dir, false);
    tl_wal_ops ops = eng_ops(e);
    tl_wal *w;
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, NULL), TL_WAL_OK);
    append_order(w, 1);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/00000000000000000005.wal.tmp", dir);
    tu_write_file(path, "partial", 7);
    snprintf(path, sizeof path, "%s/keep.tmp", dir);
    tu_write_file(path, "x", 1);
    assert_int_equal(tl_wal_open(&w, &cfg, &ops, NULL), TL_WAL_OK);
    struct stat st;
    snprintf(path, sizeof path, "%s/00000000000000000005.wal.tmp", dir);
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/keep.tmp", dir); /* not ours: left alone */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
    pthread_mutex_destroy(&e->mu);
    free(e);
    tu_rm_rf(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_inline),
        cmocka_unit_test(test_round_trip_thread),
        cmocka_unit_test(test_torn_write_inline),
        cmocka_unit_test(test_torn_write_thread),
        cmocka_unit_test(test_crash_in_openers),
        cmocka_unit_test(test_garbage_past_tail_is_cut),
        cmocka_unit_test(test_refuse_corrupt_sealed),
        cmocka_unit_test(test_retire),
        cmocka_unit_test(test_group_commit_inline),
        cmocka_unit_test(test_group_delay_thread),
        cmocka_unit_test(test_backpressure_thread),
        cmocka_unit_test(test_large_runs),
        cmocka_unit_test(test_exact_ring_wrap),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_standby_append_record),
        cmocka_unit_test(test_continue_vector_log),
        cmocka_unit_test(test_stale_tmp_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
