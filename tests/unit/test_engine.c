/* test_engine.c: libtally_engine end to end in one process, on real files,
 * real shared memory (a file-backed ring and a POSIX shm one) and a real
 * admin socket: records reach the ring (read with shm's consumer) and the
 * WAL (read with io's reader: no findings), wal_durable_* follows the
 * syncs, admin commands change the modes and write MODE_CHANGE with their
 * command id, the sidecar key cannot relax, a restart rebuilds the modes,
 * the symbols and the remembered command ids from the log (a resend after a
 * restart is a duplicate), the dead-man fires (SAFE_MODE and FLATTEN) only
 * once armed and not after a clean stop, the fast-path words count in the
 * effective mode, the heartbeat thread beats while the engine idles,
 * retirement keeps what tally needs, and the named errors. */
#include "test_engine_util.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin_client.h"
#include "admin/admin_proto.h"
#include "admin/libtally_engine.h"

#define BTC 1u
#define ETH 2u
#define SEC 1000000000ull
/* The dead-man's max age in these tests, and how long they stay silent:
 * generous, so that a descheduled test thread (2 noisy vCPUs, sanitizers)
 * never looks like a dead consumer. */
#define DM_MS         200u
#define DM_SILENCE_MS 700u

static const uint8_t sidecar_raw[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                        12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                        23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t operator_raw[32] = {
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf};
static const tl_engine_symbol symbols[] = {{BTC, "BTCUSDT"}, {ETH, "ETHUSDT"}};

/* ---- the engine behind tl_engine_ops ---- */

typedef struct fake {
    tl_engine *e;
    /* resting orders, cancelled by cancel_all */
    uint64_t resting[64];
    uint32_t resting_sym[64];
    uint32_t nresting;
    int cancel_alls;
    uint32_t cancel_scope;
    bool fail_cancel;
    /* replay */
    uint64_t replayed;
    uint64_t replay_first, replay_last;
    bool replay_in_order;
    /* mode changes */
    int mode_changes;
    uint32_t mc_scope, mc_mode;
    uint8_t mc_id[16];
    uint64_t mc_seq;
    /* admin lines */
    int lines;
    char last_cmd[32];
    uint64_t last_arrival;
} fake;

static int fk_cancel_all(void *ctx, uint32_t scope) {
    fake *f = ctx;
    f->cancel_alls++;
    f->cancel_scope = scope;
    if (f->fail_cancel)
        return -1;
    uint32_t keep = 0;
    for (uint32_t i = 0; i < f->nresting; i++) {
        if (scope != 0 && f->resting_sym[i] != scope) {
            f->resting[keep] = f->resting[i];
            f->resting_sym[keep++] = f->resting_sym[i];
            continue;
        }
        tl_body_order_cancel c = {.order_id = f->resting[i], .account = 7, .remaining_qty = 5};
        if (tl_engine_append(f->e, TL_KIND_ORDER_CANCEL, f->resting_sym[i], &c, sizeof c,
                             te_real_ns(), NULL) != TL_ENGINE_OK)
            return -1;
    }
    f->nresting = keep;
    return 0;
}

static void fk_replay(void *ctx, const uint8_t *rec, uint32_t len) {
    fake *f = ctx;
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    assert_int_equal(h->len, len);
    assert_int_equal(tl_rec_compute_checksum(rec, len), h->checksum);
    if (f->replayed == 0)
        f->replay_first = h->seq;
    else if (h->seq != f->replay_last + 1)
        f->replay_in_order = false;
    f->replay_last = h->seq;
    f->replayed++;
}

static void fk_mode_change(void *ctx, uint32_t scope, uint32_t mode, bool wd, const uint8_t id[16],
                           uint64_t seq) {
    (void)wd;
    fake *f = ctx;
    f->mode_changes++;
    f->mc_scope = scope;
    f->mc_mode = mode;
    memcpy(f->mc_id, id, 16);
    f->mc_seq = seq;
}

static void fk_line(void *ctx, const char *cmd, const uint8_t *id, uint64_t arrival) {
    (void)id;
    fake *f = ctx;
    f->lines++;
    snprintf(f->last_cmd, sizeof f->last_cmd, "%s", cmd);
    f->last_arrival = arrival;
}

static tl_engine_ops fk_ops(fake *f) {
    return (tl_engine_ops){.ctx = f,
                           .cancel_all = fk_cancel_all,
                           .replay = fk_replay,
                           .on_mode_change = fk_mode_change,
                           .on_admin_line = fk_line};
}

/* ---- fixture ---- */

typedef struct fx {
    char *dir;
    char wal[512];
    char ring[512];
    char sock[512];
    tl_engine_config cfg;
    fake fk;
    tl_engine_recovered rec;
    tl_admin_key sidecar, operator_;
    tl_admin_client cli;
    uint8_t next_id;
} fx;

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir("engine");
    snprintf(f->wal, sizeof f->wal, "%s/wal", f->dir);
    snprintf(f->ring, sizeof f->ring, "%s/ring", f->dir);
    snprintf(f->sock, sizeof f->sock, "%s/admin.sock", f->dir);
    tl_engine_config_default(&f->cfg);
    f->cfg.wal_dir = f->wal;
    f->cfg.ring_name = f->ring;
    f->cfg.ring_capacity = 1u << 20;
    f->cfg.segment_bytes = 64u << 10;
    f->cfg.staging_bytes = 256u << 10;
    f->cfg.admin_socket = f->sock;
    f->cfg.sidecar_key_raw = sidecar_raw;
    f->cfg.operator_key_raw = operator_raw;
    f->cfg.symbols = symbols;
    f->cfg.symbols_count = 2;
    f->cfg.deadman_ms = 0;
    tl_admin_key_init(&f->sidecar, sidecar_raw);
    tl_admin_key_init(&f->operator_, operator_raw);
    tl_admin_client_init(&f->cli);
    f->fk.replay_in_order = true;
    f->next_id = 1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    tl_admin_client_close(&f->cli);
    if (f->fk.e != NULL)
        tl_engine_close(f->fk.e);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void open_engine(fx *f) {
    char err[256];
    tl_engine_ops ops = fk_ops(&f->fk);
    f->fk.replayed = 0;
    f->fk.replay_in_order = true;
    enum tl_engine_err rc = tl_engine_open(&f->cfg, &ops, &f->fk.e, &f->rec, err, sizeof err);
    if (rc != TL_ENGINE_OK)
        fail_msg("open: %s: %s", tl_engine_err_name(rc), err);
}

static void close_engine(fx *f) {
    tl_admin_client_close(&f->cli);
    assert_int_equal(tl_engine_close(f->fk.e), TL_ENGINE_OK);
    f->fk.e = NULL;
}

static uint64_t order_new(fx *f, uint32_t sym, uint64_t id) {
    tl_body_order_new o = {.order_id = id,
                           .account = 7,
                           .price = 100,
                           .qty = 5,
                           .side = TL_SIDE_BUY,
                           .type = TL_ORDER_LIMIT};
    uint64_t seq = 0;
    assert_int_equal(
        tl_engine_append(f->fk.e, TL_KIND_ORDER_NEW, sym, &o, sizeof o, te_real_ns(), &seq),
        TL_ENGINE_OK);
    f->fk.resting[f->fk.nresting] = id;
    f->fk.resting_sym[f->fk.nresting++] = sym;
    return seq;
}

/* ---- admin over the real socket ---- */

static tl_admin_request mkreq(fx *f, enum tl_admin_cmd cmd, const char *symbol, enum tl_mode mode,
                              enum tl_admin_key_id key) {
    tl_admin_request r;
    memset(&r, 0, sizeof r);
    uint8_t b = f->next_id++;
    for (int i = 0; i < 16; i++)
        r.id[i] = (uint8_t)(b * 17 + i + 1);
    r.cmd = cmd;
    r.key = key;
    r.mode = (uint8_t)mode;
    if (symbol != NULL)
        tl_admin_request_set_symbol(&r, symbol, strlen(symbol));
    tl_admin_request_set_reason(&r, "test", 4);
    tl_admin_request_set_ticket(&r, "INC-1", 5);
    r.issued_ns = te_real_ns();
    return r;
}

/* Sends one request and polls the engine until its reply is back. */
static tl_admin_reply send_cmd(fx *f, const tl_admin_request *req) {
    if (!tl_admin_client_connected(&f->cli)) {
        enum tl_admin_err ce = TL_ADMIN_ERR_IO;
        for (int tries = 0; tries < 100 && ce != TL_ADMIN_OK; tries++) {
            ce = tl_admin_client_connect(&f->cli, f->sock);
            if (ce != TL_ADMIN_OK)
                te_sleep_ms(1);
        }
        assert_int_equal(ce, TL_ADMIN_OK);
    }
    const tl_admin_key *k = req->key == TL_ADMIN_KEY_OPERATOR ? &f->operator_ : &f->sidecar;
    assert_int_equal(tl_admin_client_send(&f->cli, req, k), TL_ADMIN_OK);
    tl_admin_reply rep;
    uint8_t id[16];
    for (int i = 0; i < 5000; i++) {
        tl_admin_client_flush(&f->cli);
        enum tl_engine_err err;
        assert_true(tl_engine_poll(f->fk.e, te_real_ns(), &err) >= 0);
        enum tl_admin_err r = tl_admin_client_recv(&f->cli, &rep, id);
        if (r == TL_ADMIN_OK) {
            assert_memory_equal(id, req->id, 16);
            return rep;
        }
        assert_int_equal(r, TL_ADMIN_ERR_WOULD_BLOCK);
        te_sleep_ms(1);
    }
    fail_msg("no reply");
    return rep;
}

/* ---- tests ---- */

static void test_records_reach_ring_and_wal(void **state) {
    fx *f = *state;
    open_engine(f);
    assert_true(f->rec.new_log);
    assert_true(f->rec.new_engine_id);
    assert_true(f->rec.leader_change);
    assert_int_equal(f->rec.fence, 1);
    assert_int_equal(f->rec.symbols, 2);
    /* The engine id is kept in the WAL directory, as hex. */
    char idpath[600];
    snprintf(idpath, sizeof idpath, "%s/engine_id", f->wal);
    size_t n;
    uint8_t *idfile = tu_read_file(idpath, &n);
    assert_int_equal(n, 33);
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", tl_engine_id(f->fk.e)[i]);
    assert_memory_equal(idfile, hex, 32);
    free(idfile);

    /* Follow the ring with shm's consumer while appending. */
    tl_ring_map m;
    assert_int_equal(tl_ring_map_open_wait(&m, f->ring, 1000), TL_RING_OK);
    assert_memory_equal(m.header.engine_id, tl_engine_id(f->fk.e), 16);
    assert_int_equal(m.header.producer_pid, (uint32_t)getpid());
    tl_ring_consumer c;
    assert_int_equal(tl_ring_consumer_init(&c, &m), TL_RING_OK);
    /* The ring starts right after what the writer's recovery made durable
     * (the new log's SYMBOL openers): the LEADER_CHANGE. */
    tl_ring_durable_reader dr;
    memset(&dr, 0, sizeof dr);
    tl_ring_durable d0;
    assert_int_equal(tl_ring_durable_read(&dr, m.ctl, te_mono_ns(), 250, &d0), TL_DURABLE_ACCEPTED);
    uint64_t first = atomic_load(&m.data[2]); /* the seq word of the record at 0 */
    assert_int_equal(first, 3);               /* SYMBOL 1, SYMBOL 2, then LEADER_CHANGE */
    tl_ring_consumer_start_at(&c, 0, first);

    uint64_t last = 0;
    for (uint64_t i = 0; i < 3000; i++) {
        uint64_t seq = order_new(f, i % 2 ? BTC : ETH, 1000 + i);
        /* +1, or more where a new segment's openers took seqs first */
        assert_true(seq > (last ? last : first) && seq <= (last ? last : first) + 4);
        last = seq;
        f->fk.nresting = 0;
    }
    tl_engine_idle(f->fk.e);
    uint64_t ring_sums[4096] = {0};
    uint64_t got = 0, expect = first;
    tl_ring_event ev;
    for (int spins = 0; spins < 100000 && expect <= last; spins++) {
        enum tl_ring_ev t = tl_ring_poll(&c, expect - 1, &ev);
        if (t == TL_RING_EV_NONE)
            continue;
        assert_int_equal(t, TL_RING_EV_RECORD);
        assert_int_equal(ev.seq, expect);
        assert_false(ev.replay);
        ring_sums[ev.seq % 4096] = tl_rec_hdr_of(ev.rec)->checksum;
        expect++;
        got++;
    }
    assert_int_equal(got, last - first + 1); /* openers included: every seq */
    assert_int_equal(c.stats.corrupt, 0);

    /* Durable: after a sync the ring says so. */
    assert_int_equal(tl_engine_sync(f->fk.e), TL_ENGINE_OK);
    tl_ring_durable d;
    assert_int_equal(tl_ring_durable_read(&dr, m.ctl, te_mono_ns(), 250, &d), TL_DURABLE_ACCEPTED);
    assert_int_equal(d.seq, last);
    assert_true(d.seq > d0.seq);
    tl_engine_stats es;
    tl_engine_get_stats(f->fk.e, &es);
    assert_int_equal(es.durable_seq, last);
    assert_int_equal(es.next_seq, last + 1);
    assert_true(es.records_published >= got);

    /* The WAL: every record, no finding, the ring's checksums. */
    te_log wal;
    tl_walseg_durable wd = {d.seq, d.segment_first_seq, d.offset};
    te_read_wal(f->wal, &wd, &wal);
    te_expect_clean(&wal);
    assert_int_equal(wal.sum.last_seq, last);
    assert_true(wal.sum.segments_present > 3); /* 64 KiB segments: it rolled */
    assert_int_equal(wal.sum.tail_offset, d.offset);
    assert_int_equal(wal.sum.tail_segment, d.segment_first_seq);
    for (size_t i = 0; i < wal.n; i++) {
        const te_rec *r = &wal.recs[i];
        if (r->seq >= first && r->seq > last - 4000)
            assert_int_equal(r->checksum, ring_sums[r->seq % 4096]);
    }
    /* The first records: SYMBOL declarations, then the LEADER_CHANGE. */
    assert_int_equal(wal.recs[0].kind, TL_KIND_SYMBOL);
    assert_int_equal(wal.recs[1].kind, TL_KIND_SYMBOL);
    assert_int_equal(wal.recs[2].kind, TL_KIND_LEADER_CHANGE);
    assert_int_equal(wal.recs[0].fence, 0);
    assert_int_equal(wal.recs[2].fence, 1);
    assert_memory_equal(wal.recs[2].body + 16, tl_engine_id(f->fk.e), 16);
    te_free(&wal);
    tl_ring_consumer_free(&c);
    tl_ring_map_close(&m);
    close_engine(f);
}

static void test_append_errors(void **state) {
    fx *f = *state;
    open_engine(f);
    tl_engine *e = f->fk.e;
    tl_body_mode_change mc = {0};
    assert_int_equal(tl_engine_append(e, TL_KIND_MODE_CHANGE, 0, &mc, sizeof mc, 1, NULL),
                     TL_ENGINE_ERR_KIND);
    assert_int_equal(tl_engine_append(e, TL_KIND_LEADER_CHANGE, 0, &mc, sizeof mc, 1, NULL),
                     TL_ENGINE_ERR_KIND);
    assert_int_equal(tl_engine_append(e, TL_KIND_INVALID, 0, NULL, 0, 1, NULL), TL_ENGINE_ERR_KIND);
    tl_body_order_new o = {.order_id = 1, .price = 1, .qty = 1, .side = 3, .type = 1};
    assert_int_equal(tl_engine_append(e, TL_KIND_ORDER_NEW, BTC, &o, sizeof o, 1, NULL),
                     TL_ENGINE_ERR_RECORD);
    assert_int_equal(tl_engine_append(e, TL_KIND_ORDER_NEW, BTC, &o, 8, 1, NULL),
                     TL_ENGINE_ERR_RECORD);
    /* Symbols: a new one, the same again, clashes. */
    assert_int_equal(tl_engine_add_symbol(e, 3, "SOL-USD.x"), TL_ENGINE_OK);
    assert_int_equal(tl_engine_add_symbol(e, 3, "SOL-USD.x"), TL_ENGINE_OK);
    assert_int_equal(tl_engine_add_symbol(e, 3, "OTHER"), TL_ENGINE_ERR_SYMBOL);
    assert_int_equal(tl_engine_add_symbol(e, 4, "BTCUSDT"), TL_ENGINE_ERR_SYMBOL);
    assert_int_equal(tl_engine_add_symbol(e, 0, "ZERO"), TL_ENGINE_ERR_SYMBOL);
    assert_int_equal(tl_engine_add_symbol(e, 5, "bad name"), TL_ENGINE_ERR_SYMBOL);
    /* Fences. */
    assert_int_equal(tl_engine_leader_change(e, 1, NULL), TL_ENGINE_ERR_FENCE);
    assert_int_equal(tl_engine_leader_change(e, 5, NULL), TL_ENGINE_OK);
    tl_engine_stats es;
    tl_engine_get_stats(e, &es);
    assert_int_equal(es.fence, 5);
    assert_string_equal(tl_engine_err_name(TL_ENGINE_ERR_WAL_CORRUPT), "wal_corrupt");
    assert_string_equal(tl_engine_fault_name(TL_ENGINE_FAULT_FENCE_UNANNOUNCED),
                        "fence_unannounced");
    assert_int_equal(tl_engine_fault_parse("reorder", 7), TL_ENGINE_FAULT_REORDER);
    assert_int_equal(tl_engine_fault_parse("nope", 4), TL_ENGINE_FAULT_NONE);
    close_engine(f);

    /* A restart with a lower fence is a stale leader: refused. */
    f->cfg.fence = 3;
    char err[256];
    tl_engine_ops ops = fk_ops(&f->fk);
    tl_engine *e2 = NULL;
    assert_int_equal(tl_engine_open(&f->cfg, &ops, &e2, NULL, err, sizeof err),
                     TL_ENGINE_ERR_FENCE);
    assert_null(e2);
    /* Equal: no LEADER_CHANGE; the new symbol came back from the log. */
    f->cfg.fence = 5;
    open_engine(f);
    assert_false(f->rec.leader_change);
    assert_int_equal(f->rec.symbols, 3);
    assert_int_equal(tl_engine_add_symbol(f->fk.e, 3, "OTHER"), TL_ENGINE_ERR_SYMBOL);
    close_engine(f);

    /* Bad configurations are named. */
    tl_engine_config bad = f->cfg;
    bad.ring_capacity = 3 << 20;
    assert_int_equal(tl_engine_open(&bad, &ops, &e2, NULL, err, sizeof err), TL_ENGINE_ERR_CONFIG);
    bad = f->cfg;
    bad.wal_dir = NULL;
    assert_int_equal(tl_engine_open(&bad, &ops, &e2, NULL, err, sizeof err), TL_ENGINE_ERR_CONFIG);
    bad = f->cfg;
    tl_engine_ops no_cancel = ops;
    no_cancel.cancel_all = NULL;
    assert_int_equal(tl_engine_open(&bad, &no_cancel, &e2, NULL, err, sizeof err),
                     TL_ENGINE_ERR_CONFIG);
    bad.sidecar_key_raw = NULL;
    bad.sidecar_key_path = "/nonexistent/key";
    assert_int_equal(tl_engine_open(&bad, &ops, &e2, NULL, err, sizeof err), TL_ENGINE_ERR_KEY);
}

static void test_admin_commands(void **state) {
    fx *f = *state;
    open_engine(f);
    tl_engine *e = f->fk.e;
    order_new(f, BTC, 1);
    order_new(f, ETH, 2);
    order_new(f, BTC, 3);
    assert_int_equal(tl_engine_mode(e, BTC), TL_MODE_NORMAL);

    /* HARD_HALT on one symbol, from the sidecar. */
    tl_admin_request r1 =
        mkreq(f, TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_HARD_HALT, TL_ADMIN_KEY_SIDECAR);
    tl_admin_reply rep = send_cmd(f, &r1);
    assert_true(rep.ok);
    assert_false(rep.duplicate);
    assert_int_equal(rep.mode, TL_MODE_HARD_HALT);
    uint64_t halt_seq = rep.applied_seq;
    assert_int_equal(tl_engine_mode(e, BTC), TL_MODE_HARD_HALT);
    assert_int_equal(tl_engine_mode(e, ETH), TL_MODE_NORMAL);
    assert_int_equal(f->fk.mode_changes, 1);
    assert_int_equal(f->fk.mc_seq, halt_seq);
    assert_memory_equal(f->fk.mc_id, r1.id, 16);
    assert_string_equal(f->fk.last_cmd, "set_symbol_mode");
    assert_true(f->fk.last_arrival > 0 && f->fk.last_arrival <= te_mono_ns());

    /* The sidecar cannot relax: the mode stays, a MODE_CHANGE is still
     * written (the applied loop), with the mode in force. */
    tl_admin_request r2 =
        mkreq(f, TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_NORMAL, TL_ADMIN_KEY_SIDECAR);
    rep = send_cmd(f, &r2);
    assert_true(rep.ok);
    assert_int_equal(rep.mode, TL_MODE_HARD_HALT);
    uint64_t noop_seq = rep.applied_seq;
    assert_int_equal(tl_engine_mode(e, BTC), TL_MODE_HARD_HALT);

    /* Global CANCEL_ONLY, withdrawals halted; the sidecar cannot lift it. */
    tl_admin_request r3 =
        mkreq(f, TL_ADMIN_CMD_SET_SYMBOL_MODE, "*", TL_MODE_CANCEL_ONLY, TL_ADMIN_KEY_SIDECAR);
    assert_true(send_cmd(f, &r3).ok);
    assert_int_equal(tl_engine_mode(e, ETH), TL_MODE_CANCEL_ONLY);
    tl_admin_request r4 =
        mkreq(f, TL_ADMIN_CMD_WITHDRAWALS_HALT, NULL, TL_MODE_NORMAL, TL_ADMIN_KEY_SIDECAR);
    r4.on = true;
    assert_true(send_cmd(f, &r4).ok);
    assert_true(tl_engine_withdrawals_halted(e));
    tl_admin_request r5 =
        mkreq(f, TL_ADMIN_CMD_WITHDRAWALS_HALT, NULL, TL_MODE_NORMAL, TL_ADMIN_KEY_SIDECAR);
    r5.on = false;
    rep = send_cmd(f, &r5);
    assert_false(rep.ok);
    assert_int_equal(rep.error, TL_ADMIN_WIRE_FORBIDDEN);
    assert_true(tl_engine_withdrawals_halted(e));

    /* cancel_all on BTC: the engine's ORDER_CANCELs, then the MODE_CHANGE. */
    tl_admin_request r6 =
        mkreq(f, TL_ADMIN_CMD_CANCEL_ALL, "BTCUSDT", TL_MODE_NORMAL, TL_ADMIN_KEY_SIDECAR);
    rep = send_cmd(f, &r6);
    assert_true(rep.ok);
    assert_int_equal(f->fk.cancel_alls, 1);
    assert_int_equal(f->fk.cancel_scope, BTC);
    assert_int_equal(f->fk.nresting, 1); /* ETH's order stays */
    uint64_t cancel_all_seq = rep.applied_seq;

    /* A failing cancel_all: engine_error, nothing remembered or written. */
    f->fk.fail_cancel = true;
    tl_admin_request r7 =
        mkreq(f, TL_ADMIN_CMD_CANCEL_ALL, "*", TL_MODE_NORMAL, TL_ADMIN_KEY_SIDECAR);
    rep = send_cmd(f, &r7);
    assert_false(rep.ok);
    assert_int_equal(rep.error, TL_ADMIN_WIRE_ENGINE_ERROR);
    f->fk.fail_cancel = false;

    /* The operator relaxes BTC, with from_mode. */
    tl_admin_request r8 =
        mkreq(f, TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_NORMAL, TL_ADMIN_KEY_OPERATOR);
    r8.has_from_mode = true;
    r8.from_mode = TL_MODE_HARD_HALT;
    assert_true(send_cmd(f, &r8).ok);
    assert_int_equal(tl_engine_mode(e, BTC), TL_MODE_CANCEL_ONLY); /* the global one */

    /* The fast-path words count too, and are read on the hot path. */
    tl_ring_map m;
    assert_int_equal(tl_ring_map_open_wait(&m, f->ring, 1000), TL_RING_OK);
    uint64_t ep = tl_engine_fast_epoch(e);
    bool changed = false;
    assert_int_equal(tl_ring_fast_raise_symbol(m.ctl, ETH, TL_MODE_HARD_HALT, &changed),
                     TL_RING_OK);
    assert_true(changed);
    assert_true(tl_engine_fast_epoch(e) > ep);
    assert_int_equal(tl_engine_fast_mode(e, ETH), TL_MODE_HARD_HALT);
    assert_int_equal(tl_engine_mode(e, ETH), TL_MODE_HARD_HALT);
    assert_int_equal(tl_engine_mode(e, BTC), TL_MODE_CANCEL_ONLY);
    assert_int_equal(tl_ring_fast_raise_global(m.ctl, TL_MODE_SOFT_HALT, &changed), TL_RING_OK);
    assert_int_equal(tl_engine_mode(e, BTC), TL_MODE_SOFT_HALT);
    tl_ring_map_close(&m);

    /* Every applied command is a MODE_CHANGE with its id, at applied_seq. */
    assert_int_equal(tl_engine_sync(e), TL_ENGINE_OK);
    te_log wal;
    te_read_wal(f->wal, NULL, &wal);
    te_expect_clean(&wal);
    const te_rec *mc = te_seq(&wal, halt_seq, 0);
    assert_non_null(mc);
    assert_int_equal(mc->kind, TL_KIND_MODE_CHANGE);
    assert_int_equal(mc->symbol, BTC);
    tl_body_mode_change b;
    memcpy(&b, mc->body, sizeof b);
    assert_int_equal(b.mode, TL_MODE_HARD_HALT);
    assert_memory_equal(b.command_id, r1.id, 16);
    mc = te_seq(&wal, noop_seq, 0);
    memcpy(&b, mc->body, sizeof b);
    assert_int_equal(b.mode, TL_MODE_HARD_HALT);
    assert_memory_equal(b.command_id, r2.id, 16);
    /* cancel_all: two ORDER_CANCELs (orders 1 and 3) right before it. */
    mc = te_seq(&wal, cancel_all_seq, 0);
    memcpy(&b, mc->body, sizeof b);
    assert_memory_equal(b.command_id, r6.id, 16);
    assert_int_equal(te_seq(&wal, cancel_all_seq - 1, 0)->kind, TL_KIND_ORDER_CANCEL);
    assert_int_equal(te_seq(&wal, cancel_all_seq - 2, 0)->kind, TL_KIND_ORDER_CANCEL);
    assert_int_equal(te_seq(&wal, cancel_all_seq - 3, 0)->kind, TL_KIND_MODE_CHANGE);
    te_free(&wal);
    tl_engine_stats es;
    tl_engine_get_stats(e, &es);
    assert_int_equal(es.admin_applied, 6);
    assert_int_equal(es.admin_rejected, 2);
    assert_int_equal(es.global_mode, TL_MODE_CANCEL_ONLY);

    /* ---- restart: modes, withdrawals and ids come back from the log ---- */
    uint64_t before = es.next_seq - 1;
    close_engine(f);
    open_engine(f);
    e = f->fk.e;
    assert_false(f->rec.new_log);
    assert_false(f->rec.new_engine_id);
    assert_int_equal(f->rec.last_seq, before);
    assert_int_equal(f->fk.replayed, before);
    assert_true(f->fk.replay_in_order);
    assert_int_equal(f->fk.replay_first, 1);
    assert_int_equal(f->rec.command_ids, 6);
    assert_int_equal(tl_engine_mode(e, BTC),
                     TL_MODE_CANCEL_ONLY); /* the new ring has no fast words */
    assert_int_equal(tl_engine_mode(e, ETH), TL_MODE_CANCEL_ONLY);
    assert_true(tl_engine_withdrawals_halted(e));
    tl_engine_get_stats(e, &es);
    assert_int_equal(es.global_mode, TL_MODE_CANCEL_ONLY);

    /* A resend of the first command (fresh issued_ns): duplicate, the
     * original seq, nothing written. */
    r1.issued_ns = te_real_ns();
    rep = send_cmd(f, &r1);
    assert_true(rep.ok);
    assert_true(rep.duplicate);
    assert_int_equal(rep.applied_seq, halt_seq);
    tl_engine_get_stats(e, &es);
    assert_int_equal(es.next_seq - 1, before);
    /* The id of the refused cancel_all was never applied: it runs now. */
    r7.issued_ns = te_real_ns();
    rep = send_cmd(f, &r7);
    assert_true(rep.ok);
    assert_false(rep.duplicate);
    close_engine(f);
}

static void test_restart_new_ring_incarnation(void **state) {
    fx *f = *state;
    f->cfg.admin_socket = NULL; /* the mode table works without a socket */
    open_engine(f);
    for (uint64_t i = 0; i < 500; i++) {
        order_new(f, BTC, i + 1);
        f->fk.nresting = 0;
    }
    assert_int_equal(tl_engine_sync(f->fk.e), TL_ENGINE_OK);
    tl_engine_stats es;
    tl_engine_get_stats(f->fk.e, &es);
    /* tally's restart point, stored in the old object, must carry over. */
    tl_ring_map m;
    assert_int_equal(tl_ring_map_open_wait(&m, f->ring, 1000), TL_RING_OK);
    tl_ring_consumer_set_wal_seq(&m, 123);
    tl_ring_identity old_id = m.identity;
    tl_ring_map_close(&m);
    close_engine(f);

    open_engine(f);
    assert_int_equal(f->rec.consumer_wal_seq, 123);
    assert_int_equal(f->rec.last_seq, es.next_seq - 1);
    assert_int_equal(tl_ring_map_open_wait(&m, f->ring, 1000), TL_RING_OK);
    assert_false(tl_ring_identity_equal(&m.identity, &old_id));
    assert_int_equal(atomic_load(&m.ctl->consumer_wal_seq), 123);
    /* wal_durable_* is the recovered end of the log, before any publish. */
    tl_ring_durable_reader dr;
    memset(&dr, 0, sizeof dr);
    tl_ring_durable d;
    assert_int_equal(tl_ring_durable_read(&dr, m.ctl, te_mono_ns(), 250, &d), TL_DURABLE_ACCEPTED);
    assert_int_equal(d.seq, es.next_seq - 1);
    assert_int_equal(atomic_load(&m.ctl->publish), 0);
    /* The next record is the next seq, the first on the new ring. */
    uint64_t seq = order_new(f, ETH, 9999);
    assert_int_equal(seq, es.next_seq);
    tl_engine_idle(f->fk.e);
    assert_int_equal(atomic_load(&m.data[2]), seq);
    tl_ring_map_close(&m);
    close_engine(f);
}

/* Opens the engine with a consumer that beats. */
static void deadman_open(fx *f, tl_ring_map *m, uint32_t deadman_ms, enum tl_engine_fallback fb) {
    f->cfg.deadman_ms = deadman_ms;
    f->cfg.deadman_fallback = fb;
    open_engine(f);
    assert_int_equal(tl_ring_map_open_wait(m, f->ring, 1000), TL_RING_OK);
}

static void poll_for(fx *f, unsigned ms) {
    uint64_t end = te_mono_ns() + (uint64_t)ms * 1000000ull;
    while (te_mono_ns() < end) {
        assert_true(tl_engine_poll(f->fk.e, te_real_ns(), NULL) >= 0);
        te_sleep_ms(2);
    }
}

static void beat_for(fx *f, tl_ring_map *m, unsigned ms) {
    uint64_t end = te_mono_ns() + (uint64_t)ms * 1000000ull;
    while (te_mono_ns() < end) {
        tl_ring_consumer_beat(m, te_mono_ns());
        assert_true(tl_engine_poll(f->fk.e, te_real_ns(), NULL) >= 0);
        te_sleep_ms(2);
    }
}

static void test_deadman_safe_mode(void **state) {
    fx *f = *state;
    tl_ring_map m;
    deadman_open(f, &m, DM_MS, TL_ENGINE_FALLBACK_SAFE_MODE);
    order_new(f, BTC, 1);
    /* No consumer heartbeat yet: disarmed, whatever the time. */
    poll_for(f, DM_SILENCE_MS);
    tl_engine_stats es;
    tl_engine_get_stats(f->fk.e, &es);
    assert_int_equal(es.deadman_fallbacks, 0);
    assert_int_equal(es.deadman_state, TL_DEADMAN_DISARMED);
    /* A consumer beats: armed, fresh. */
    tl_ring_consumer_beat(&m, te_mono_ns());
    tl_ring_consumer_set_state(&m, TL_CONSUMER_FOLLOWING);
    beat_for(f, &m, 100);
    tl_engine_get_stats(f->fk.e, &es);
    assert_int_equal(es.deadman_state, TL_DEADMAN_OK);
    assert_int_equal(tl_engine_mode(f->fk.e, BTC), TL_MODE_NORMAL);
    /* It stops (a crash: the state stays FOLLOWING). */
    poll_for(f, DM_SILENCE_MS);
    tl_engine_get_stats(f->fk.e, &es);
    assert_int_equal(es.deadman_fallbacks, 1);
    assert_int_equal(es.deadman_state, TL_DEADMAN_EXPIRED);
    assert_int_equal(tl_engine_mode(f->fk.e, BTC), TL_MODE_CANCEL_ONLY);
    assert_int_equal(tl_engine_mode(f->fk.e, ETH), TL_MODE_CANCEL_ONLY);
    assert_int_equal(f->fk.cancel_alls, 0); /* SAFE_MODE cancels nothing */
    assert_int_equal(f->fk.mc_scope, 0);
    assert_true(tl_id_is_zero(f->fk.mc_id));
    uint64_t fallback_seq = f->fk.mc_seq;
    /* The heartbeat returns: the fallback stays (only an operator lifts it). */
    beat_for(f, &m, 100);
    assert_int_equal(tl_engine_mode(f->fk.e, BTC), TL_MODE_CANCEL_ONLY);
    tl_engine_get_stats(f->fk.e, &es);
    assert_int_equal(es.deadman_fallbacks, 1);
    tl_admin_request r =
        mkreq(f, TL_ADMIN_CMD_SET_SYMBOL_MODE, "*", TL_MODE_NORMAL, TL_ADMIN_KEY_OPERATOR);
    r.has_from_mode = true;
    r.from_mode = TL_MODE_CANCEL_ONLY;
    tl_ring_consumer_beat(&m, te_mono_ns());
    assert_true(send_cmd(f, &r).ok);
    assert_int_equal(tl_engine_mode(f->fk.e, BTC), TL_MODE_NORMAL);
    /* The fallback is in the log: MODE_CHANGE, scope 0, CANCEL_ONLY, zero id. */
    assert_int_equal(tl_engine_sync(f->fk.e), TL_ENGINE_OK);
    te_log wal;
    te_read_wal(f->wal, NULL, &wal);
    te_expect_clean(&wal);
    const te_rec *mc = te_seq(&wal, fallback_seq, 0);
    assert_int_equal(mc->kind, TL_KIND_MODE_CHANGE);
    assert_int_equal(mc->symbol, 0);
    tl_body_mode_change b;
    memcpy(&b, mc->body, sizeof b);
    assert_int_equal(b.mode, TL_MODE_CANCEL_ONLY);
    assert_true(tl_id_is_zero(b.command_id));
    te_free(&wal);
    tl_ring_map_close(&m);
    close_engine(f);
}

static void test_deadman_flatten(void **state) {
    fx *f = *state;
    tl_ring_map m;
    deadman_open(f, &m, DM_MS, TL_ENGINE_FALLBACK_FLATTEN);
    order_new(f, BTC, 1);
    order_new(f, ETH, 2);
    tl_ring_consumer_beat(&m, te_mono_ns());
    tl_ring_consumer_set_state(&m, TL_CONSUMER_FOLLOWING);
    beat_for(f, &m, 50);
    poll_for(f, DM_SILENCE_MS);
    assert_int_equal(f->fk.cancel_alls, 1);
    assert_int_equal(f->fk.cancel_scope, 0);
    assert_int_equal(f->fk.nresting, 0);
    assert_int_equal(tl_engine_mode(f->fk.e, ETH), TL_MODE_CANCEL_ONLY);
    uint64_t fallback_seq = f->fk.mc_seq;
    assert_int_equal(tl_engine_sync(f->fk.e), TL_ENGINE_OK);
    te_log wal;
    te_read_wal(f->wal, NULL, &wal);
    te_expect_clean(&wal);
    assert_int_equal(te_seq(&wal, fallback_seq, 0)->kind, TL_KIND_MODE_CHANGE);
    assert_int_equal(te_seq(&wal, fallback_seq - 1, 0)->kind, TL_KIND_ORDER_CANCEL);
    assert_int_equal(te_seq(&wal, fallback_seq - 2, 0)->kind, TL_KIND_ORDER_CANCEL);
    te_free(&wal);
    tl_ring_map_close(&m);
    close_engine(f);
    /* After a restart the fallback is still in force (it is in the log). */
    open_engine(f);
    assert_int_equal(tl_engine_mode(f->fk.e, BTC), TL_MODE_CANCEL_ONLY);
    close_engine(f);
}

static void test_deadman_clean_stop(void **state) {
    fx *f = *state;
    tl_ring_map m;
    deadman_open(f, &m, DM_MS, TL_ENGINE_FALLBACK_SAFE_MODE);
    tl_ring_consumer_beat(&m, te_mono_ns());
    tl_ring_consumer_set_state(&m, TL_CONSUMER_FOLLOWING);
    beat_for(f, &m, 50);
    /* A planned stop: state 0, then silence. */
    tl_ring_consumer_set_state(&m, TL_CONSUMER_ABSENT);
    poll_for(f, DM_SILENCE_MS);
    tl_engine_stats es;
    tl_engine_get_stats(f->fk.e, &es);
    assert_int_equal(es.deadman_fallbacks, 0);
    assert_int_equal(es.deadman_state, TL_DEADMAN_DISARMED);
    assert_int_equal(tl_engine_mode(f->fk.e, BTC), TL_MODE_NORMAL);
    /* tally comes back (beats first), then crashes: it fires again. */
    beat_for(f, &m, 30);
    tl_ring_consumer_set_state(&m, TL_CONSUMER_CATCHING_UP);
    beat_for(f, &m, 30);
    poll_for(f, DM_SILENCE_MS);
    tl_engine_get_stats(f->fk.e, &es);
    assert_int_equal(es.deadman_fallbacks, 1);
    assert_true(tally_deadman_expired(tl_engine_ring(f->fk.e), DM_MS));
    tl_ring_map_close(&m);
    close_engine(f);
}

static void test_heartbeat_thread(void **state) {
    fx *f = *state;
    f->cfg.beat_ms = 5;
    open_engine(f);
    tl_ring_map m;
    assert_int_equal(tl_ring_map_open_wait(&m, f->ring, 1000), TL_RING_OK);
    uint64_t h0 = tl_ring_producer_heartbeat(&m);
    assert_true(h0 > 0);
    /* The engine thread does nothing at all; beats go on. */
    unsigned changes = 0;
    uint64_t last = h0;
    for (int i = 0; i < 40; i++) {
        te_sleep_ms(5);
        uint64_t h = tl_ring_producer_heartbeat(&m);
        if (h != last)
            changes++;
        last = h;
    }
    assert_true(changes >= 3); /* about 40 on a quiet machine */
    assert_true(te_mono_ns() - last < 250ull * 1000000ull);
    tl_ring_map_close(&m);
    close_engine(f);
}

static void test_retire(void **state) {
    fx *f = *state;
    f->cfg.segment_bytes = 16u << 10;
    f->cfg.admin_socket = NULL;
    open_engine(f);
    for (uint64_t i = 0; i < 2000; i++) {
        order_new(f, BTC, i + 1);
        f->fk.nresting = 0;
    }
    assert_int_equal(tl_engine_sync(f->fk.e), TL_ENGINE_OK);
    te_log wal;
    te_read_wal(f->wal, NULL, &wal);
    uint32_t segs = wal.sum.segments_present;
    assert_true(segs > 10);
    te_free(&wal);
    /* tally has not stored a restart point: nothing goes. */
    uint32_t deleted = 99;
    assert_int_equal(tl_engine_retire(f->fk.e, 1500, &deleted), TL_ENGINE_OK);
    assert_int_equal(deleted, 0);
    /* tally restarts from 1000: the snapshot (1500) is not the limit. */
    tl_ring_map m;
    assert_int_equal(tl_ring_map_open_wait(&m, f->ring, 1000), TL_RING_OK);
    tl_ring_consumer_set_wal_seq(&m, 1000);
    assert_int_equal(tl_engine_retire(f->fk.e, 1500, &deleted), TL_ENGINE_OK);
    assert_true(deleted > 0);
    te_read_wal(f->wal, NULL, &wal);
    te_expect_clean(&wal);
    assert_true(wal.sum.first_seq <= 1000);
    assert_true(wal.sum.first_seq > 100);
    assert_false(wal.sum.anchor_verified);
    te_free(&wal);
    /* The snapshot is the limit now. */
    tl_ring_consumer_set_wal_seq(&m, 1900);
    assert_int_equal(tl_engine_retire(f->fk.e, 1200, &deleted), TL_ENGINE_OK);
    te_read_wal(f->wal, NULL, &wal);
    te_expect_clean(&wal);
    assert_true(wal.sum.first_seq <= 1201);
    te_free(&wal);
    tl_ring_map_close(&m);
    close_engine(f);
    /* A restart from the retired log works (the openers declare the
     * symbols again). */
    open_engine(f);
    assert_int_equal(f->rec.symbols, 2);
    close_engine(f);
}

static void test_posix_shm_ring_and_corrupt_log(void **state) {
    fx *f = *state;
    char name[64];
    snprintf(name, sizeof name, "test_engine_%d", (int)getpid());
    f->cfg.ring_name = name;
    f->cfg.admin_socket = NULL;
    f->cfg.segment_bytes = 16u << 10;
    open_engine(f);
    for (uint64_t i = 0; i < 600; i++) {
        order_new(f, BTC, i + 1);
        f->fk.nresting = 0;
    }
    tl_ring_map m;
    assert_int_equal(tl_ring_map_open_wait(&m, name, 1000), TL_RING_OK);
    assert_true(m.is_shm);
    tl_ring_map_close(&m);
    close_engine(f);
    char path[600];
    snprintf(path, sizeof path, "/tally.%s", name);
    assert_int_equal(shm_unlink(path), 0); /* the engine never unlinks it */
    f->cfg.ring_name = f->ring;
    /* Corrupt a sealed segment: the engine refuses to start, and says where. */
    te_log wal;
    te_read_wal(f->wal, NULL, &wal);
    assert_non_null(te_seq(&wal, 100, 0));
    const te_rec victim_copy = *te_seq(&wal, 100, 0), *victim = &victim_copy;
    snprintf(path, sizeof path, "%s/%020llu.wal", f->wal, (unsigned long long)victim->segment);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, (long)victim->offset + 70, SEEK_SET);
    fputc(0x42, fp);
    fclose(fp);
    te_free(&wal);
    char err[256];
    tl_engine_ops ops = fk_ops(&f->fk);
    tl_engine *e2 = NULL;
    tl_engine_recovered rec;
    assert_int_equal(tl_engine_open(&f->cfg, &ops, &e2, &rec, err, sizeof err),
                     TL_ENGINE_ERR_WAL_CORRUPT);
    assert_null(e2);
    assert_string_equal(rec.finding_check, "WAL_CORRUPT");
    assert_int_equal(rec.finding_seq, 100); /* the header was intact: the body byte broke it */
    assert_int_equal(rec.finding_segment, victim->segment);
    assert_non_null(strstr(err, "WAL_CORRUPT"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_reach_ring_and_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_new_ring_incarnation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadman_safe_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadman_flatten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadman_clean_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_posix_shm_ring_and_corrupt_log, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
