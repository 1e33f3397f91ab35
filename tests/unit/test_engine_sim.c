/* test_engine_sim.c: tally-enginesim, the reference engine, and its books.
 *
 * In process: the multiset state hash does not depend on the order the
 * same resting orders arrived in; partial fills and cancels keep it equal
 * to a recomputation; replaying the records rebuilds the same state.
 * As a process (bench/tally-enginesim): --fixed-clock twice with one seed
 * gives byte-identical WAL directories and ring records; the CHECKPOINT
 * running sums equal a recomputation over the WAL's TRADEs and their state
 * hashes a replay; each --fault writes exactly its bytes, and the offline
 * reader (or the ring) names it; crash@S then a plain restart gives a clean
 * WAL with S written again, other content; the admin socket halts the
 * flow, and SIGTERM stops it cleanly. */
#include "test_engine_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "admin/admin_client.h"
#include "admin/admin_proto.h"
#include "enginesim_book.h"

extern char **environ;

/* ---- running the simulator ---- */

typedef struct simrun {
    char *dir;
    char wal[512];
    char ring[512];
    char out[512]; /* its stdout */
    char lat[512]; /* its latency log */
} simrun;

static void sr_init(simrun *r, const char *tag) {
    memset(r, 0, sizeof *r);
    r->dir = tu_tmpdir(tag);
    snprintf(r->wal, sizeof r->wal, "%s/wal", r->dir);
    snprintf(r->ring, sizeof r->ring, "%s/ring", r->dir);
    snprintf(r->out, sizeof r->out, "%s/stdout", r->dir);
    snprintf(r->lat, sizeof r->lat, "%s/latency.jsonl", r->dir);
}

static void sr_free(simrun *r) {
    tu_rm_rf(r->dir);
    free(r->dir);
}

/* Starts the simulator on r with extra arguments (NULL-terminated). */
static pid_t sim_spawn(const simrun *r, const char *const *extra) {
    const char *argv[64];
    int n = 0;
    argv[n++] = tu_build_path("bench/tally-enginesim");
    argv[n++] = "--ring";
    argv[n++] = r->ring;
    argv[n++] = "--wal";
    argv[n++] = r->wal;
    argv[n++] = "--latency-log";
    argv[n++] = r->lat;
    argv[n++] = "--quiet";
    argv[n++] = "--stats";
    for (int i = 0; extra[i] != NULL; i++) {
        assert_true(n < 62);
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, r->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        fail_msg("spawn %s: %s", argv[0], strerror(rc));
    return pid;
}

static int sim_wait(pid_t pid) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            fail_msg("waitpid: %s", strerror(errno));
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

static int sim_run(const simrun *r, const char *const *extra) {
    return sim_wait(sim_spawn(r, extra));
}

/* A number from the --stats JSON: "key":123 */
static uint64_t stat_u64(const simrun *r, const char *key) {
    size_t n;
    char *s = (char *)tu_read_file(r->out, &n);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(s, pat);
    if (p == NULL)
        fail_msg("no %s in %s", key, s);
    uint64_t v = strtoull(p + strlen(pat), NULL, 10);
    free(s);
    return v;
}

static bool file_has(const char *path, const char *needle) {
    size_t n;
    char *s = (char *)tu_read_file(path, &n);
    bool found = strstr(s, needle) != NULL;
    free(s);
    return found;
}

/* ---- the books, in process ---- */

static tl_body_order_new mk_order(uint64_t id, uint8_t side, int64_t price, int64_t qty) {
    tl_body_order_new o;
    memset(&o, 0, sizeof o);
    o.order_id = id;
    o.account = 100 + id;
    o.price = price;
    o.qty = qty;
    o.side = side;
    o.type = TL_ORDER_LIMIT;
    return o;
}

typedef struct sink {
    int trades, cancels;
    tl_body_trade last_trade;
} sink;

static int sk_trade(void *ctx, uint32_t symbol, const tl_body_trade *t) {
    (void)symbol;
    sink *s = ctx;
    s->trades++;
    s->last_trade = *t;
    return 0;
}

static int sk_cancel(void *ctx, uint32_t symbol, const tl_body_order_cancel *c) {
    (void)symbol;
    (void)c;
    sink *s = ctx;
    s->cancels++;
    return 0;
}

static void test_book_hash_order_independent(void **state) {
    (void)state;
    sim_state a, b;
    assert_int_equal(sim_state_init(&a, 2, 64), 0);
    assert_int_equal(sim_state_init(&b, 2, 64), 0);
    sink sk = {0};
    sim_emit em = {.ctx = &sk, .trade = sk_trade, .cancel = sk_cancel};
    int64_t p1 = a.books[0].base_price, p2 = a.books[1].base_price;
    tl_body_order_new os[6] = {
        mk_order(1, TL_SIDE_BUY, p1 + 100, 10), mk_order(2, TL_SIDE_BUY, p1 + 101, 7),
        mk_order(3, TL_SIDE_SELL, p1 + 200, 3), mk_order(4, TL_SIDE_SELL, p1 + 200, 9),
        mk_order(5, TL_SIDE_BUY, p2 + 50, 1),   mk_order(6, TL_SIDE_BUY, p1 + 100, 2),
    };
    uint32_t sym[6] = {1, 1, 1, 1, 2, 1};
    for (int i = 0; i < 6; i++)
        assert_int_equal(sim_new_order(&a, &os[i], sym[i], true, &em), 0);
    for (int i = 5; i >= 0; i--)
        assert_int_equal(sim_new_order(&b, &os[i], sym[i], true, &em), 0);
    assert_int_equal(sk.trades, 0);
    assert_memory_equal(a.hash, b.hash, 32);
    assert_int_equal(a.open_orders, 6);
    /* It is the sum of the per-order hashes, mod 2^256. */
    uint64_t want[4] = {0};
    for (int i = 0; i < 6; i++) {
        uint64_t h[4];
        sim_order_hash(sym[i], os[i].side, os[i].order_id, os[i].account, os[i].price, os[i].qty,
                       h);
        unsigned __int128 c = 0;
        for (int k = 0; k < 4; k++) {
            unsigned __int128 s = (unsigned __int128)want[k] + h[k] + c;
            want[k] = (uint64_t)s;
            c = s >> 64;
        }
    }
    assert_memory_equal(a.hash, want, 32);
    uint64_t zero[4] = {0};
    assert_memory_not_equal(a.hash, zero, 32);

    /* A partial fill: a sell of 8 at the best bid takes 7 from order 2
     * (101) and 1 from order 1 (100, first in time). In b, the same state
     * is reached by orders that never traded. */
    tl_body_order_new taker = mk_order(7, TL_SIDE_SELL, p1 + 100, 8);
    assert_int_equal(sim_new_order(&a, &taker, 1, true, &em), 0);
    assert_int_equal(sk.trades, 2);
    assert_int_equal(sk.last_trade.maker_order, 1);
    assert_int_equal(sk.last_trade.qty, 1);
    assert_int_equal(sk.last_trade.taker_order, 7);
    assert_int_equal(sk.last_trade.price, p1 + 100);
    assert_int_equal(sk.last_trade.taker_side, TL_SIDE_SELL);
    assert_int_equal(a.trades_total, 2);
    assert_int_equal(a.qty_total, 8);
    assert_int_equal(a.notional_total, (uint64_t)(p1 + 101) * 7 + (uint64_t)(p1 + 100) * 1);
    tl_body_order_cancel c;
    assert_true(sim_cancel(&b, 2, &c));
    assert_int_equal(c.remaining_qty, 7);
    assert_true(sim_cancel(&b, 1, &c));
    tl_body_order_new o1 = mk_order(1, TL_SIDE_BUY, p1 + 100, 9);
    assert_int_equal(sim_new_order(&b, &o1, 1, true, &em), 0);
    assert_memory_equal(a.hash, b.hash, 32);
    assert_int_equal(a.open_orders, b.open_orders);
    /* Cancels subtract exactly: back to the empty hash. */
    uint64_t ids[] = {1, 3, 4, 5, 6};
    for (int i = 0; i < 5; i++) {
        assert_true(sim_cancel(&a, ids[i], &c));
        assert_true(sim_cancel(&b, ids[i], &c));
    }
    assert_memory_equal(a.hash, zero, 32);
    assert_memory_equal(b.hash, zero, 32);
    assert_int_equal(a.open_orders, 0);
    /* A market order sweeps and its remainder is cancelled, never rests. */
    tl_body_order_new s1 = mk_order(10, TL_SIDE_SELL, p1 + 300, 4);
    assert_int_equal(sim_new_order(&a, &s1, 1, true, &em), 0);
    tl_body_order_new mkt = mk_order(11, TL_SIDE_BUY, 0, 10);
    mkt.type = TL_ORDER_MARKET;
    int cancels = sk.cancels;
    assert_int_equal(sim_new_order(&a, &mkt, 1, true, &em), 0);
    assert_int_equal(sk.cancels, cancels + 1);
    assert_int_equal(a.open_orders, 0);
    assert_memory_equal(a.hash, zero, 32);
    /* Out of the ladder, or out of room: refused, nothing changes. */
    tl_body_order_new far = mk_order(12, TL_SIDE_BUY, p1 - 1, 1);
    assert_int_equal(sim_new_order(&a, &far, 1, true, &em), -2);
    sim_state_free(&a);
    sim_state_free(&b);
}

/* ---- replaying a WAL into a fresh book ---- */

typedef struct replay_ctx {
    sim_state st;
    uint64_t trades, qty, notional; /* recomputed from the TRADEs */
    uint64_t checkpoints, sums_ok;
    uint64_t records;
} replay_ctx;

static int replay_record(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result res) {
    (void)loc;
    (void)res;
    replay_ctx *r = ctx;
    r->records++;
    if (v->kind == TL_KIND_TRADE) {
        tl_body_trade t;
        memcpy(&t, v->body, sizeof t);
        r->trades++;
        r->qty += (uint64_t)t.qty;
        r->notional += (uint64_t)t.price * (uint64_t)t.qty;
    } else if (v->kind == TL_KIND_CHECKPOINT) {
        tl_body_checkpoint c;
        memcpy(&c, v->body, sizeof c);
        r->checkpoints++;
        if (c.trades_total == r->trades && c.qty_total == r->qty && c.notional_total == r->notional)
            r->sums_ok++;
    }
    sim_replay(&r->st, v->body - TL_REC_HDR_BYTES, v->len);
    return 0;
}

static void replay_wal(const char *dir, uint32_t nsym, replay_ctx *r) {
    memset(r, 0, sizeof *r);
    assert_int_equal(sim_state_init(&r->st, nsym, 4096), 0);
    te_log findings;
    memset(&findings, 0, sizeof findings);
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.sink = (tl_sink){te_emit, &findings};
    o.on_record = replay_record;
    o.ctx = r;
    tl_wal_summary sum;
    assert_int_equal(tl_wal_read_dir(dir, &o, &sum), TL_WAL_OK);
    te_expect_clean(&findings);
}

static void test_sums_and_state_hash_match_wal(void **state) {
    (void)state;
    simrun r;
    sr_init(&r, "simsums");
    const char *args[] = {"--fixed-clock",
                          "--seed",
                          "7",
                          "--symbols",
                          "5",
                          "--records",
                          "40000",
                          "--checkpoint-every",
                          "500",
                          "--segment-bytes",
                          "256K",
                          "--ring-capacity",
                          "8M",
                          NULL};
    assert_int_equal(sim_run(&r, args), 0);
    replay_ctx rc;
    replay_wal(r.wal, 5, &rc);
    assert_true(rc.checkpoints >= 70);
    assert_true(rc.trades > 1000);
    /* Every CHECKPOINT's running sums equal the recomputation up to it. */
    assert_int_equal(rc.sums_ok, rc.checkpoints);
    /* Every state hash (and open_orders) equals the replayed books'. */
    assert_int_equal(rc.st.ckpt_checked, rc.checkpoints);
    assert_int_equal(rc.st.ckpt_mismatch, 0);
    assert_int_equal(rc.st.replay_unknown, 0);
    assert_int_equal(rc.st.replay_overflow, 0);
    /* ... and what the simulator printed at the end. */
    assert_int_equal(stat_u64(&r, "trades_total"), rc.trades);
    assert_int_equal(stat_u64(&r, "qty_total"), rc.qty);
    assert_int_equal(stat_u64(&r, "notional_total"), rc.notional);
    assert_int_equal(stat_u64(&r, "open_orders"), rc.st.open_orders);
    assert_true(stat_u64(&r, "records") >= 40000);
    sim_state_free(&rc.st);

    /* A restart replays the log and goes on with the same sums. */
    const char *more[] = {"--fixed-clock",
                          "--seed",
                          "7",
                          "--symbols",
                          "5",
                          "--records",
                          "5000",
                          "--checkpoint-every",
                          "500",
                          "--segment-bytes",
                          "256K",
                          "--ring-capacity",
                          "8M",
                          NULL};
    assert_int_equal(sim_run(&r, more), 0);
    assert_true(stat_u64(&r, "replay_checkpoints_checked") >= 70);
    assert_int_equal(stat_u64(&r, "replay_checkpoint_mismatches"), 0);
    replay_wal(r.wal, 5, &rc);
    assert_int_equal(rc.sums_ok, rc.checkpoints);
    assert_int_equal(rc.st.ckpt_mismatch, 0);
    sim_state_free(&rc.st);
    sr_free(&r);
}

/* ---- determinism ---- */

/* Every file of dir a equals the one of the same name in dir b. Returns
 * the number of files compared. */
static int same_dirs(const char *a, const char *b) {
    DIR *d = opendir(a);
    assert_non_null(d);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char pa[1024], pb[1024];
        snprintf(pa, sizeof pa, "%s/%s", a, de->d_name);
        snprintf(pb, sizeof pb, "%s/%s", b, de->d_name);
        size_t na, nb;
        uint8_t *ba = tu_read_file(pa, &na);
        uint8_t *bb = tu_read_file(pb, &nb);
        if (na != nb || memcmp(ba, bb, na) != 0)
            fail_msg("%s differs from %s", pa, pb);
        free(ba);
        free(bb);
        files++;
    }
    closedir(d);
    return files;
}

static int count_files(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_fixed_clock_is_byte_identical(void **state) {
    (void)state;
    simrun r1, r2, r3;
    sr_init(&r1, "simdet1");
    sr_init(&r2, "simdet2");
    sr_init(&r3, "simdet3");
    const char *args[] = {
        "--fixed-clock", "--seed",          "42",     "--symbols", "6",
        "--records",     "30000",           "--rate", "0",         "--segment-bytes",
        "128K",          "--ring-capacity", "8M",     NULL};
    const char *other[] = {
        "--fixed-clock", "--seed",          "43",     "--symbols", "6",
        "--records",     "30000",           "--rate", "0",         "--segment-bytes",
        "128K",          "--ring-capacity", "8M",     NULL};
    assert_int_equal(sim_run(&r1, args), 0);
    assert_int_equal(sim_run(&r2, args), 0);
    assert_int_equal(sim_run(&r3, other), 0);
    /* The WAL directories: every segment and the engine_id, byte for byte. */
    assert_int_equal(count_files(r1.wal), count_files(r2.wal));
    int files = same_dirs(r1.wal, r2.wal);
    assert_true(files >= 10);
    /* The ring: the data region, byte for byte (the control block holds a
     * pid and a creation time). */
    size_t n1, n2;
    uint8_t *g1 = tu_read_file(r1.ring, &n1);
    uint8_t *g2 = tu_read_file(r2.ring, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(g1 + TL_RING_CONTROL_BYTES, g2 + TL_RING_CONTROL_BYTES,
                        n1 - TL_RING_CONTROL_BYTES);
    assert_int_equal(atomic_load(&((tl_ring_ctl *)(void *)g1)->publish),
                     atomic_load(&((tl_ring_ctl *)(void *)g2)->publish));
    free(g1);
    free(g2);
    /* Another seed: another log. */
    char p1[1024], p3[1024];
    snprintf(p1, sizeof p1, "%s/%020llu.wal", r1.wal, 1ull);
    snprintf(p3, sizeof p3, "%s/%020llu.wal", r3.wal, 1ull);
    size_t a, b;
    uint8_t *s1 = tu_read_file(p1, &a);
    uint8_t *s3 = tu_read_file(p3, &b);
    assert_true(a != b || memcmp(s1, s3, a) != 0);
    free(s1);
    free(s3);
    /* The logs are clean. */
    te_log wal;
    te_read_wal(r1.wal, NULL, &wal);
    te_expect_clean(&wal);
    assert_true(wal.sum.last_seq >= 30000);
    te_free(&wal);
    sr_free(&r1);
    sr_free(&r2);
    sr_free(&r3);
}

/* ---- faults ---- */

#define FAULT_SEQ 1000u

/* Runs the simulator with one fault at FAULT_SEQ; reads WAL and ring. */
static void fault_run(simrun *r, const char *fault, const char *segment_bytes, te_log *wal,
                      te_log *ring) {
    char spec[64];
    snprintf(spec, sizeof spec, "%s@%u", fault, FAULT_SEQ);
    const char *args[] = {"--fixed-clock",
                          "--seed",
                          "3",
                          "--symbols",
                          "4",
                          "--records",
                          "3000",
                          "--segment-bytes",
                          segment_bytes,
                          "--ring-capacity",
                          "4M",
                          "--fault",
                          spec,
                          NULL};
    assert_int_equal(sim_run(r, args), 0);
    te_read_wal(r->wal, NULL, wal);
    te_read_ring(r->ring, ring, NULL);
    char needle[96];
    snprintf(needle, sizeof needle, "\"event\":\"fault\",\"kind\":\"%s\"", fault);
    assert_true(file_has(r->lat, needle));
    assert_int_equal(stat_u64(r, "faults_fired"), 1);
}

static void expect_one(const te_log *wal, enum tl_check check) {
    if (wal->findings_total != 1 || wal->findings[0].check != check) {
        te_print_findings(wal);
        fail_msg("want exactly one %s, got %llu finding(s)", tl_check_name(check),
                 (unsigned long long)wal->findings_total);
    }
}

static void test_fault_gap(void **state) {
    (void)state;
    simrun r;
    sr_init(&r, "fgap");
    te_log wal, ring;
    fault_run(&r, "gap", "1M", &wal, &ring);
    expect_one(&wal, TL_CHECK_SEQ_GAP);
    assert_int_equal(wal.findings[0].seq2, FAULT_SEQ); /* the missing seq */
    assert_int_equal(wal.findings[0].seq, FAULT_SEQ + 1);
    assert_null(te_seq(&wal, FAULT_SEQ, 0));
    assert_null(te_seq(&ring, FAULT_SEQ, 0));
    const te_rec *before = te_seq(&wal, FAULT_SEQ - 1, 0), *after = te_seq(&wal, FAULT_SEQ + 1, 0);
    assert_non_null(before);
    assert_non_null(after);
    assert_int_equal(after->parent, before->checksum);
    assert_int_equal(after->offset, before->offset + before->len); /* nothing in between */
    assert_int_equal(te_seq(&ring, FAULT_SEQ + 1, 0)->checksum, after->checksum);
    assert_int_equal(te_seq(&wal, FAULT_SEQ + 2, 0)->parent, after->checksum);
    te_free(&wal);
    te_free(&ring);
    sr_free(&r);
}

static void test_fault_parent(void **state) {
    (void)state;
    simrun r;
    sr_init(&r, "fparent");
    te_log wal, ring;
    fault_run(&r, "parent", "1M", &wal, &ring);
    expect_one(&wal, TL_CHECK_CHAIN_BREAK);
    assert_int_equal(wal.findings[0].seq, FAULT_SEQ);
    const te_rec *prev = te_seq(&wal, FAULT_SEQ - 1, 0), *s = te_seq(&wal, FAULT_SEQ, 0);
    assert_int_equal(s->parent, prev->checksum ^ 0x5a5a5a5a5a5a5a5aull);
    assert_int_equal(te_seq(&wal, FAULT_SEQ + 1, 0)->parent, s->checksum);
    assert_int_equal(te_seq(&ring, FAULT_SEQ, 0)->checksum, s->checksum);
    te_free(&wal);
    te_free(&ring);
    sr_free(&r);
}

static void test_fault_fence_regress(void **state) {
    (void)state;
    simrun r;
    sr_init(&r, "ffreg");
    te_log wal, ring;
    fault_run(&r, "fence_regress", "1M", &wal, &ring);
    expect_one(&wal, TL_CHECK_FENCE_REGRESSION);
    assert_int_equal(wal.findings[0].seq, FAULT_SEQ);
    assert_int_equal(te_seq(&wal, FAULT_SEQ, 0)->fence, 0);
    assert_int_equal(te_seq(&wal, FAULT_SEQ - 1, 0)->fence, 1);
    assert_int_equal(te_seq(&wal, FAULT_SEQ + 1, 0)->fence, 1);
    assert_int_equal(te_seq(&ring, FAULT_SEQ, 0)->fence, 0);
    te_free(&wal);
    te_free(&ring);
    sr_free(&r);
}

static void test_fault_fence_unannounced(void **state) {
    (void)state;
    simrun r;
    sr_init(&r, "ffun");
    te_log wal, ring;
    fault_run(&r, "fence_unannounced", "64K", &wal, &ring);
    expect_one(&wal, TL_CHECK_FENCE_UNANNOUNCED);
    assert_int_equal(wal.findings[0].seq, FAULT_SEQ);
    assert_int_equal(te_seq(&wal, FAULT_SEQ - 1, 0)->fence, 1);
    assert_int_equal(te_seq(&wal, FAULT_SEQ, 0)->fence, 2);
    /* From S on, every record (and later segment header) carries 2. */
    assert_int_equal(wal.recs[wal.n - 1].fence, 2);
    assert_int_equal(wal.sum.fence, 2);
    for (size_t i = 0; i < wal.n; i++) {
        if (wal.recs[i].kind == TL_KIND_LEADER_CHANGE)
            assert_true(wal.recs[i].seq < FAULT_SEQ);
    }
    te_free(&wal);
    te_free(&ring);
    sr_free(&r);
}

static void test_fault_reorder(void **state) {
    (void)state;
    simrun r;
    sr_init(&r, "freorder");
    te_log wal, ring;
    fault_run(&r, "reorder", "1M", &wal, &ring);
    /* S + 1 first (seq S missing there), then S: a lower seq never seen. */
    if (wal.findings_total != 2 || wal.findings[0].check != TL_CHECK_SEQ_GAP ||
        wal.findings[1].check != TL_CHECK_SEQ_REGRESSION) {
        te_print_findings(&wal);
        fail_msg("want SEQ_GAP then SEQ_REGRESSION");
    }
    assert_int_equal(wal.findings[0].seq2, FAULT_SEQ);
    assert_int_equal(wal.findings[1].seq, FAULT_SEQ);
    const te_rec *a = te_seq(&wal, FAULT_SEQ, 0), *b = te_seq(&wal, FAULT_SEQ + 1, 0);
    const te_rec *prev = te_seq(&wal, FAULT_SEQ - 1, 0);
    assert_int_equal(b->offset, prev->offset + prev->len);
    assert_int_equal(a->offset, b->offset + b->len);
    assert_int_equal(a->parent, prev->checksum);
    assert_int_equal(b->parent, a->checksum);
    assert_int_equal(te_seq(&wal, FAULT_SEQ + 2, 0)->parent, b->checksum);
    /* The ring has them in the same order. */
    const te_rec *ra = te_seq(&ring, FAULT_SEQ, 0), *rb = te_seq(&ring, FAULT_SEQ + 1, 0);
    assert_true(rb->offset < ra->offset);
    assert_int_equal(ra->checksum, a->checksum);
    assert_int_equal(rb->checksum, b->checksum);
    te_free(&wal);
    te_free(&ring);
    sr_free(&r);
}

static void test_fault_flip(void **state) {
    (void)state;
    simrun r;
    sr_init(&r, "fflip");
    te_log wal, ring;
    /* 64 KiB segments: the segment of S is sealed by the end of the run. */
    fault_run(&r, "flip", "64K", &wal, &ring);
    expect_one(&wal, TL_CHECK_WAL_CORRUPT);
    assert_int_equal(wal.findings[0].reason, TL_REC_ERR_CHECKSUM);
    assert_null(te_seq(&wal, FAULT_SEQ, 0));
    assert_true(wal.findings[0].segment < wal.sum.tail_segment); /* sealed */
    /* The reader cannot trust the rest of that segment; the next one
     * re-anchors it, and everything after is read. */
    assert_int_equal(wal.sum.reanchors, 1);
    assert_int_equal(wal.sum.last_seq, te_seq(&ring, wal.sum.last_seq, 0)->seq);
    /* WAL only: the ring's copy is whole, and the chain goes on from it. */
    const te_rec *rs = te_seq(&ring, FAULT_SEQ, 0);
    assert_non_null(rs);
    assert_int_equal(rs->parent, te_seq(&wal, FAULT_SEQ - 1, 0)->checksum);
    assert_int_equal(te_seq(&ring, FAULT_SEQ + 1, 0)->parent, rs->checksum);
    /* The flipped byte is ts_ns's lowest: the bytes on disk differ from the
     * ring's in exactly that byte. */
    char path[1024];
    snprintf(path, sizeof path, "%s/%020llu.wal", r.wal,
             (unsigned long long)wal.findings[0].segment);
    size_t n;
    uint8_t *seg = tu_read_file(path, &n);
    const tl_rec_hdr *h = tl_rec_hdr_of(seg + wal.findings[0].offset);
    assert_int_equal(h->seq, FAULT_SEQ);
    assert_int_equal(h->ts_ns, rs->ts_ns ^ 0xffu);
    assert_int_equal(h->checksum, rs->checksum);
    free(seg);
    te_free(&wal);
    te_free(&ring);
    sr_free(&r);
}

static void test_fault_fork(void **state) {
    (void)state;
    simrun r;
    sr_init(&r, "ffork");
    te_log wal, ring;
    fault_run(&r, "fork", "1M", &wal, &ring);
    te_expect_clean(&wal); /* the WAL alone is a good log */
    const te_rec *w = te_seq(&wal, FAULT_SEQ, 0), *g = te_seq(&ring, FAULT_SEQ, 0);
    assert_non_null(w);
    assert_non_null(g);
    assert_null(te_seq(&ring, FAULT_SEQ, 1)); /* one copy on the ring */
    assert_true(g->checksum != w->checksum);
    assert_int_equal(g->parent, w->parent);
    assert_int_equal(g->fence, w->fence);
    assert_int_equal(g->ts_ns, w->ts_ns);
    assert_int_equal(g->kind, w->kind);
    assert_int_equal(g->body_len, w->body_len + 8);
    assert_memory_equal(g->body, w->body, w->body_len);
    /* The chain continues from the WAL's record, on the ring too. */
    assert_int_equal(te_seq(&ring, FAULT_SEQ + 1, 0)->parent, w->checksum);
    assert_int_equal(te_seq(&ring, FAULT_SEQ - 1, 0)->checksum,
                     te_seq(&wal, FAULT_SEQ - 1, 0)->checksum);
    te_free(&wal);
    te_free(&ring);
    sr_free(&r);
}

static void test_fault_dup(void **state) {
    (void)state;
    simrun r;
    sr_init(&r, "fdup");
    te_log wal, ring;
    fault_run(&r, "dup", "1M", &wal, &ring);
    te_expect_clean(&wal);
    const te_rec *first = te_seq(&ring, FAULT_SEQ, 0), *again = te_seq(&ring, FAULT_SEQ, 1);
    assert_non_null(first);
    assert_non_null(again);
    assert_null(te_seq(&ring, FAULT_SEQ, 2));
    assert_int_equal(first->flags, 0);
    assert_int_equal(again->flags, TL_REC_FLAG_REPLAY);
    assert_int_equal(again->checksum, first->checksum);
    assert_int_equal(first->checksum, te_seq(&wal, FAULT_SEQ, 0)->checksum);
    /* Later: after S + 1, so the consumer sees a lower seq. */
    assert_true(again->offset > te_seq(&ring, FAULT_SEQ + 1, 0)->offset);
    te_free(&wal);
    te_free(&ring);
    sr_free(&r);
}

static void test_fault_crash_then_restart(void **state) {
    (void)state;
    simrun r;
    sr_init(&r, "fcrash");
    const char *args[] = {"--fixed-clock",
                          "--seed",
                          "5",
                          "--symbols",
                          "4",
                          "--records",
                          "200000",
                          "--segment-bytes",
                          "1M",
                          "--ring-capacity",
                          "64M",
                          "--fault",
                          "crash@2000",
                          NULL};
    assert_int_equal(sim_run(&r, args), 137);
    assert_true(file_has(r.lat, "\"kind\":\"crash\",\"seq\":2000"));
    /* The ring of the dead incarnation: seq 2000 and more published, above
     * the durable seq. */
    te_log ring;
    tl_ring_durable d;
    te_read_ring(r.ring, &ring, &d);
    const te_rec *old = te_seq(&ring, 2000, 0);
    assert_non_null(old);
    assert_true(d.seq < 2000);
    assert_non_null(te_seq(&ring, 2001, 0));
    uint64_t old_checksum = old->checksum;
    /* The WAL ends in the torn write of 2000: a tentative tail. */
    te_log wal;
    te_read_wal(r.wal, NULL, &wal);
    te_expect_clean(&wal);
    assert_int_equal(wal.sum.last_seq, 1999);
    assert_int_equal(wal.sum.tail, TL_WAL_TAIL_TENTATIVE);
    te_free(&wal);
    te_free(&ring);

    /* A plain restart: the tail is cut, 2000 is written again, with other
     * content, and the log is clean. */
    const char *again[] = {
        "--fixed-clock", "--seed",          "5",  "--symbols",       "4",   "--records",
        "3000",          "--segment-bytes", "1M", "--ring-capacity", "64M", NULL};
    assert_int_equal(sim_run(&r, again), 0);
    assert_int_equal(stat_u64(&r, "replay_checkpoint_mismatches"), 0);
    te_read_wal(r.wal, NULL, &wal);
    te_expect_clean(&wal);
    assert_true(wal.sum.last_seq >= 4999);
    const te_rec *now = te_seq(&wal, 2000, 0);
    assert_non_null(now);
    assert_null(te_seq(&wal, 2000, 1));
    assert_true(now->checksum != old_checksum);
    assert_int_equal(now->parent, te_seq(&wal, 1999, 0)->checksum);
    te_free(&wal);
    /* The new incarnation's ring starts after the recovered end. */
    te_read_ring(r.ring, &ring, &d);
    assert_true(ring.n > 0);
    assert_int_equal(ring.recs[0].seq, 2000);
    te_free(&ring);
    sr_free(&r);
}

/* ---- the admin socket, SIGTERM ---- */

static void test_admin_halt_and_sigterm(void **state) {
    (void)state;
    simrun r;
    sr_init(&r, "simadmin");
    char sock[600], keyp[600];
    snprintf(sock, sizeof sock, "%s/admin.sock", r.dir);
    snprintf(keyp, sizeof keyp, "%s/sidecar.key", r.dir);
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    tu_write_file(keyp, key, sizeof key);
    assert_int_equal(chmod(keyp, 0600), 0);
    const char *args[] = {
        "--admin-socket", sock, "--sidecar-key",   keyp, "--symbols",       "4",  "--rate", "5000",
        "--seconds",      "60", "--segment-bytes", "1M", "--ring-capacity", "4M", NULL};
    pid_t pid = sim_spawn(&r, args);
    tl_admin_client cli;
    tl_admin_client_init(&cli);
    enum tl_admin_err ce = TL_ADMIN_ERR_IO;
    for (int i = 0; i < 3000 && ce != TL_ADMIN_OK; i++) {
        ce = tl_admin_client_connect(&cli, sock);
        if (ce != TL_ADMIN_OK)
            te_sleep_ms(2);
    }
    assert_int_equal(ce, TL_ADMIN_OK);
    te_sleep_ms(200); /* let the flow write some orders */
    tl_admin_key k;
    tl_admin_key_init(&k, key);
    tl_admin_request req;
    memset(&req, 0, sizeof req);
    for (int i = 0; i < 16; i++)
        req.id[i] = (uint8_t)(0x40 + i);
    req.cmd = TL_ADMIN_CMD_SET_SYMBOL_MODE;
    req.key = TL_ADMIN_KEY_SIDECAR;
    req.mode = TL_MODE_HARD_HALT;
    tl_admin_request_set_symbol(&req, "*", 1);
    tl_admin_request_set_reason(&req, "split_brain:test", 16);
    tl_admin_request_set_ticket(&req, "INC-7", 5);
    req.issued_ns = te_real_ns();
    assert_int_equal(tl_admin_client_send(&cli, &req, &k), TL_ADMIN_OK);
    tl_admin_reply rep;
    uint8_t id[16];
    enum tl_admin_err re = TL_ADMIN_ERR_WOULD_BLOCK;
    for (int i = 0; i < 5000 && re == TL_ADMIN_ERR_WOULD_BLOCK; i++) {
        tl_admin_client_flush(&cli);
        re = tl_admin_client_recv(&cli, &rep, id);
        if (re == TL_ADMIN_ERR_WOULD_BLOCK)
            te_sleep_ms(1);
    }
    assert_int_equal(re, TL_ADMIN_OK);
    assert_true(rep.ok);
    assert_int_equal(rep.mode, TL_MODE_HARD_HALT);
    uint64_t applied = rep.applied_seq;
    tl_admin_client_close(&cli);
    te_sleep_ms(500); /* the flow goes on, rejected; heartbeats mark the quiet */
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(sim_wait(pid), 0);
    /* Stats: the mode, rejections, the command and its arrival stamp. */
    assert_true(file_has(r.out, "\"global\":\"HARD_HALT\""));
    assert_true(stat_u64(&r, "rejected_new") > 0);
    assert_true(
        file_has(r.out, "\"cmd\":\"set_symbol_mode\",\"id\":\"404142434445464748494a4b4c4d4e4f\""));
    assert_true(stat_u64(&r, "arrival_mono_ns") > 0);
    assert_true(file_has(r.lat, "\"event\":\"admin_line\",\"cmd\":\"set_symbol_mode\""));
    /* The log: the MODE_CHANGE with the id at applied_seq, and after it no
     * order of any kind (HARD_HALT rejects cancels too). */
    te_log wal;
    te_read_wal(r.wal, NULL, &wal);
    te_expect_clean(&wal);
    const te_rec *mc = te_seq(&wal, applied, 0);
    assert_non_null(mc);
    assert_int_equal(mc->kind, TL_KIND_MODE_CHANGE);
    assert_int_equal(mc->symbol, 0);
    assert_memory_equal(mc->body + 8, req.id, 16);
    size_t orders_before = 0;
    for (size_t i = 0; i < wal.n; i++) {
        const te_rec *x = &wal.recs[i];
        bool order = x->kind == TL_KIND_ORDER_NEW || x->kind == TL_KIND_ORDER_CANCEL ||
                     x->kind == TL_KIND_TRADE;
        if (x->seq > applied)
            assert_false(order);
        else
            orders_before += order;
    }
    assert_true(orders_before > 10);
    assert_true(wal.recs[wal.n - 1].seq > applied); /* heartbeats went on */
    te_free(&wal);
    sr_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_book_hash_order_independent),
        cmocka_unit_test(test_sums_and_state_hash_match_wal),
        cmocka_unit_test(test_fixed_clock_is_byte_identical),
        cmocka_unit_test(test_fault_gap),
        cmocka_unit_test(test_fault_parent),
        cmocka_unit_test(test_fault_fence_regress),
        cmocka_unit_test(test_fault_fence_unannounced),
        cmocka_unit_test(test_fault_reorder),
        cmocka_unit_test(test_fault_flip),
        cmocka_unit_test(test_fault_fork),
        cmocka_unit_test(test_fault_dup),
        cmocka_unit_test(test_fault_crash_then_restart),
        cmocka_unit_test(test_admin_halt_and_sigterm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
