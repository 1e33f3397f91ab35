/* test_admin_server.c: the engine's admin server (admin/engine_server.h) and
 * tally's client (admin/admin_client.h), over real Unix sockets in one
 * process, with a fake engine that records the MODE_CHANGEs it is asked to
 * write. Semantics first (through tl_admin_server_handle_line, which is the
 * path every socket line takes), then the socket behaviour: ordering,
 * pipelining, partial lines, byte-by-byte senders, long lines, peers that
 * vanish, back-pressure, and the client's reply matching. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin_client.h"
#include "admin/admin_proto.h"
#include "admin/engine_server.h"
#include "admin/modes.h"
#include "core/assert.h"

#define NOW 1795000000000000000ull
#define SEC 1000000000ull
#define BTC 1u
#define ETH 2u

typedef struct written {
    uint32_t scope;
    enum tl_mode mode;
    bool withdrawals_halted;
    uint8_t id[16];
    uint64_t seq;
} written;

typedef struct engine {
    uint64_t next_seq;
    int writes;
    written log[1024];
    int cancels;
    uint32_t cancel_scope[64];
    bool fail_write;
    bool fail_cancel;
    int lines;
    enum tl_admin_cmd last_cmd;
    bool last_id_null;
    uint64_t last_arrival;
    int replies;
    enum tl_admin_err last_detail;
    bool last_req_null;
} engine;

typedef struct fx {
    char *dir;
    char path[256];
    tl_admin_key sidecar;
    tl_admin_key operator_;
    tl_admin_key wrong;
    tl_admin_modes modes;
    engine eng;
    tl_admin_server *srv;
    char reply_line[TL_ADMIN_REPLY_MAX];
    size_t reply_len;
} fx;

static int eng_write(void *ctx, uint32_t scope, enum tl_mode mode, bool wd, const uint8_t id[16],
                     uint64_t *seq) {
    engine *e = ctx;
    if (e->fail_write)
        return -1;
    assert_true(e->writes < (int)TL_ARRAY_LEN(e->log));
    written *w = &e->log[e->writes++];
    w->scope = scope;
    w->mode = mode;
    w->withdrawals_halted = wd;
    memcpy(w->id, id, 16);
    w->seq = e->next_seq++;
    *seq = w->seq;
    return 0;
}

static int eng_cancel(void *ctx, uint32_t scope, const uint8_t id[16]) {
    (void)id;
    engine *e = ctx;
    if (e->fail_cancel)
        return -1;
    e->cancel_scope[e->cancels++ % 64] = scope;
    return 0;
}

static void eng_on_line(void *ctx, enum tl_admin_cmd cmd, const uint8_t *id, uint64_t arrival) {
    engine *e = ctx;
    e->lines++;
    e->last_cmd = cmd;
    e->last_id_null = id == NULL;
    e->last_arrival = arrival;
}

static void eng_on_reply(void *ctx, const tl_admin_request *req, const tl_admin_reply *r,
                         enum tl_admin_err detail) {
    (void)r;
    engine *e = ctx;
    e->replies++;
    e->last_detail = detail;
    e->last_req_null = req == NULL;
}

static uint64_t mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * SEC + (uint64_t)ts.tv_nsec;
}

/* Generous, so that slow sanitizer or valgrind runs never trip it; the
 * stall test sets its own. */
static uint32_t fx_stall_ms = 20000;

static tl_admin_server *make_server(fx *f, uint32_t max_conns, uint32_t ids, bool with_operator) {
    tl_admin_server_config cfg = {
        .socket_path = f->path,
        .max_conns = max_conns,
        .remembered_ids = ids,
        .stall_timeout_ms = fx_stall_ms,
        .sidecar_key = &f->sidecar,
        .operator_key = with_operator ? &f->operator_ : NULL,
        .modes = &f->modes,
        .ops = {.ctx = &f->eng,
                .write_mode_change = eng_write,
                .cancel_all = eng_cancel,
                .on_line = eng_on_line,
                .on_reply = eng_on_reply},
    };
    enum tl_admin_err err;
    tl_admin_server *s = tl_admin_server_create(&cfg, &err);
    if (s == NULL)
        fail_msg("server: %s (%s)", tl_admin_err_name(err), strerror(errno));
    return s;
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir("adminsrv");
    snprintf(f->path, sizeof f->path, "%s/admin.sock", f->dir);
    size_t n;
    uint8_t *k = tu_read_file(tu_shared("spec/vectors/peer.key"), &n);
    assert_int_equal(n, 32);
    tl_admin_key_init(&f->sidecar, k);
    for (int i = 0; i < 32; i++)
        k[i] = (uint8_t)(0xa0 + i);
    tl_admin_key_init(&f->operator_, k);
    for (int i = 0; i < 32; i++)
        k[i] = (uint8_t)(0x55);
    tl_admin_key_init(&f->wrong, k);
    free(k);
    assert_int_equal(tl_admin_modes_init(&f->modes, 64), TL_ADMIN_OK);
    assert_int_equal(tl_admin_modes_add_symbol(&f->modes, BTC, "BTCUSDT", 7), TL_ADMIN_OK);
    assert_int_equal(tl_admin_modes_add_symbol(&f->modes, ETH, "ETHUSDT", 7), TL_ADMIN_OK);
    f->eng.next_seq = 1000;
    f->srv = make_server(f, 0, 0, true);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    tl_admin_server_destroy(f->srv);
    tl_admin_modes_free(&f->modes);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static tl_admin_request rq(enum tl_admin_cmd cmd, const char *symbol, enum tl_mode mode,
                           uint8_t id_byte) {
    tl_admin_request r = {0};
    for (int i = 0; i < 16; i++)
        r.id[i] = (uint8_t)(id_byte + i);
    r.cmd = cmd;
    r.key = TL_ADMIN_KEY_SIDECAR;
    r.mode = (uint8_t)mode;
    tl_admin_request_set_symbol(&r, symbol, strlen(symbol));
    tl_admin_request_set_reason(&r, "split_brain:fork seq=8812", 25);
    tl_admin_request_set_ticket(&r, "INC-1", 5);
    r.issued_ns = NOW;
    r.fence = 7;
    return r;
}

static const tl_admin_key *key_for(fx *f, const tl_admin_request *r) {
    return r->key == TL_ADMIN_KEY_OPERATOR ? &f->operator_ : &f->sidecar;
}

/* Handles a raw line (no '\n') and parses the reply. */
static tl_admin_reply handle_raw(fx *f, const char *line, size_t len, uint64_t now) {
    f->reply_len = tl_admin_server_handle_line(f->srv, line, len, now, mono_now(), f->reply_line,
                                               sizeof f->reply_line);
    assert_true(f->reply_len > 0 && f->reply_line[f->reply_len - 1] == '\n');
    tl_admin_reply r;
    assert_int_equal(tl_admin_reply_parse(f->reply_line, f->reply_len - 1, &r), TL_ADMIN_OK);
    return r;
}

static tl_admin_reply handle_signed(fx *f, const tl_admin_request *req, const tl_admin_key *k,
                                    uint64_t now) {
    char line[TL_ADMIN_LINE_MAX];
    size_t len = 0;
    assert_int_equal(tl_admin_request_build(req, k, line, sizeof line, &len), TL_ADMIN_OK);
    return handle_raw(f, line, len - 1, now);
}

static tl_admin_reply handle(fx *f, const tl_admin_request *req) {
    return handle_signed(f, req, key_for(f, req), NOW);
}

static void expect_error(const tl_admin_reply *r, enum tl_admin_wire w) {
    if (r->ok || r->error != w)
        fail_msg("want %s, got ok=%d error=%s", tl_admin_wire_name(w), r->ok,
                 tl_admin_wire_name(r->error));
}

/* ---- semantics ---- */

static void test_vector_line_applies(void **state) {
    fx *f = *state;
    size_t n;
    char *line = (char *)tu_read_file(tu_shared("spec/vectors/admin-request.jsonl"), &n);
    tl_admin_reply r = handle_raw(f, line, n - 1, NOW);
    const char *want = "{\"v\":1,\"id\":\"0123456789abcdef0123456789abcdef\",\"ok\":true,"
                       "\"cmd\":\"set_symbol_mode\",\"symbol\":\"BTCUSDT\",\"mode\":\"HARD_HALT\","
                       "\"applied_seq\":\"1000\",\"duplicate\":false}\n";
    assert_int_equal(f->reply_len, strlen(want));
    assert_memory_equal(f->reply_line, want, f->reply_len);
    assert_true(r.ok);
    assert_int_equal(f->eng.writes, 1);
    assert_int_equal(f->eng.log[0].scope, BTC);
    assert_int_equal(f->eng.log[0].mode, TL_MODE_HARD_HALT);
    assert_false(f->eng.log[0].withdrawals_halted);
    uint8_t id[16];
    assert_true(tl_admin_parse_id("0123456789abcdef0123456789abcdef", 32, id));
    assert_memory_equal(f->eng.log[0].id, id, 16);
    assert_int_equal(tl_admin_modes_effective(&f->modes, BTC), TL_MODE_HARD_HALT);
    assert_int_equal(tl_admin_modes_effective(&f->modes, ETH), TL_MODE_NORMAL);
    assert_int_equal(f->eng.lines, 1);
    assert_int_equal(f->eng.last_cmd, TL_ADMIN_CMD_SET_SYMBOL_MODE);
    assert_false(f->eng.last_id_null);
    assert_int_equal(f->eng.last_detail, TL_ADMIN_OK);
    /* Resent: the same reply, marked duplicate, nothing written. */
    r = handle_raw(f, line, n - 1, NOW + 60 * SEC);
    const char *dup = "{\"v\":1,\"id\":\"0123456789abcdef0123456789abcdef\",\"ok\":true,"
                      "\"cmd\":\"set_symbol_mode\",\"symbol\":\"BTCUSDT\",\"mode\":\"HARD_HALT\","
                      "\"applied_seq\":\"1000\",\"duplicate\":true}\n";
    assert_int_equal(f->reply_len, strlen(dup));
    assert_memory_equal(f->reply_line, dup, f->reply_len);
    assert_int_equal(f->eng.writes, 1);
    free(line);
}

static void test_bad_mac(void **state) {
    fx *f = *state;
    tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_HARD_HALT, 1);
    tl_admin_reply rep = handle_signed(f, &r, &f->wrong, NOW);
    expect_error(&rep, TL_ADMIN_WIRE_BAD_MAC);
    assert_true(rep.id_present);
    assert_memory_equal(rep.id, r.id, 16);
    /* Signed with the operator key but naming the sidecar key. */
    rep = handle_signed(f, &r, &f->operator_, NOW);
    expect_error(&rep, TL_ADMIN_WIRE_BAD_MAC);
    assert_int_equal(f->eng.writes, 0);
    assert_int_equal(f->eng.last_detail, TL_ADMIN_ERR_BAD_MAC);
    /* bad_request comes before bad_mac. */
    r.reason_len = 0;
    char line[TL_ADMIN_LINE_MAX];
    size_t len;
    assert_int_equal(tl_admin_request_build(&r, &f->wrong, line, sizeof line, &len), TL_ADMIN_OK);
    char *p = strstr(line, "\"fence\"");
    memcpy(p, "\"fencE\"", 7);
    rep = handle_raw(f, line, len - 1, NOW);
    expect_error(&rep, TL_ADMIN_WIRE_BAD_REQUEST);
    /* bad_mac comes before stale_command and forbidden. */
    r = rq(TL_ADMIN_CMD_WITHDRAWALS_HALT, "", TL_MODE_NORMAL, 2);
    r.on = false;
    r.issued_ns = NOW - 3600 * SEC;
    rep = handle_signed(f, &r, &f->wrong, NOW);
    expect_error(&rep, TL_ADMIN_WIRE_BAD_MAC);
    const tl_admin_server_stats *st = tl_admin_server_get_stats(f->srv);
    assert_int_equal(st->rejected[TL_ADMIN_ERR_BAD_MAC], 3);
    assert_int_equal(st->rejected[TL_ADMIN_ERR_UNKNOWN_MEMBER], 1);
}

static void test_operator_key_not_configured(void **state) {
    fx *f = *state;
    tl_admin_server_destroy(f->srv);
    f->srv = make_server(f, 0, 0, false);
    tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_HARD_HALT, 1);
    r.key = TL_ADMIN_KEY_OPERATOR;
    tl_admin_reply rep = handle(f, &r);
    expect_error(&rep, TL_ADMIN_WIRE_BAD_MAC);
    assert_int_equal(tl_admin_server_get_stats(f->srv)->rejected[TL_ADMIN_ERR_KEY_NOT_CONFIGURED],
                     1);
    r.key = TL_ADMIN_KEY_SIDECAR;
    rep = handle(f, &r);
    assert_true(rep.ok);
}

static void test_duplicates(void **state) {
    fx *f = *state;
    tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "ETHUSDT", TL_MODE_CANCEL_ONLY, 9);
    tl_admin_reply first = handle(f, &r);
    assert_true(first.ok);
    assert_false(first.duplicate);
    assert_int_equal(first.mode, TL_MODE_CANCEL_ONLY);
    assert_int_equal(f->eng.writes, 1);
    char first_line[TL_ADMIN_REPLY_MAX];
    memcpy(first_line, f->reply_line, f->reply_len);
    size_t first_len = f->reply_len;

    /* Something else happens to the scope in between. */
    tl_admin_request other = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "ETHUSDT", TL_MODE_HARD_HALT, 50);
    assert_true(handle(f, &other).ok);
    assert_int_equal(f->eng.writes, 2);

    /* A retry: same id, fresh issued_ns, signed again. The first reply comes
     * back (mode CANCEL_ONLY as it was, not HARD_HALT), with duplicate:true. */
    r.issued_ns = NOW + 2 * SEC;
    tl_admin_reply dup = handle(f, &r);
    assert_true(dup.ok && dup.duplicate);
    assert_int_equal(dup.mode, TL_MODE_CANCEL_ONLY);
    assert_true(dup.applied_seq == first.applied_seq);
    assert_int_equal(f->eng.writes, 2);
    /* Byte for byte the first reply except the duplicate flag. */
    assert_int_equal(f->reply_len, first_len - 5 + 4);
    assert_memory_equal(f->reply_line, first_line, first_len - strlen("false}\n"));

    /* Duplicate comes before stale: a retry an hour late still gets it. */
    r.issued_ns = NOW - 3600 * SEC;
    dup = handle(f, &r);
    assert_true(dup.ok && dup.duplicate);

    /* The same id with anything else changed is a bad request. */
    tl_admin_request changed = r;
    changed.issued_ns = NOW;
    changed.fence = 8;
    expect_error((tl_admin_reply[]){handle(f, &changed)}, TL_ADMIN_WIRE_BAD_REQUEST);
    changed = r;
    tl_admin_request_set_reason(&changed, "other", 5);
    expect_error((tl_admin_reply[]){handle(f, &changed)}, TL_ADMIN_WIRE_BAD_REQUEST);
    changed = r;
    changed.mode = TL_MODE_SOFT_HALT;
    expect_error((tl_admin_reply[]){handle(f, &changed)}, TL_ADMIN_WIRE_BAD_REQUEST);
    changed = r;
    changed.key = TL_ADMIN_KEY_OPERATOR;
    changed.has_from_mode = true;
    changed.from_mode = TL_MODE_HARD_HALT;
    expect_error((tl_admin_reply[]){handle(f, &changed)}, TL_ADMIN_WIRE_BAD_REQUEST);
    changed = r;
    changed.cmd = TL_ADMIN_CMD_CANCEL_ALL;
    expect_error((tl_admin_reply[]){handle(f, &changed)}, TL_ADMIN_WIRE_BAD_REQUEST);
    assert_int_equal(tl_admin_server_get_stats(f->srv)->rejected[TL_ADMIN_ERR_ID_REUSED], 5);
    assert_int_equal(f->eng.writes, 2);
    /* A reused id whose mac is bad is bad_mac (the mac is checked first). */
    dup = handle_signed(f, &changed, &f->wrong, NOW);
    expect_error(&dup, TL_ADMIN_WIRE_BAD_MAC);
    /* Pings are never remembered. */
    tl_admin_request ping = rq(TL_ADMIN_CMD_PING, "", TL_MODE_NORMAL, 77);
    assert_true(handle(f, &ping).ok);
    tl_admin_reply pr = handle(f, &ping);
    assert_true(pr.ok);
    assert_false(pr.duplicate);
    assert_int_equal(tl_admin_server_get_stats(f->srv)->duplicates, 2);
}

static void test_sidecar_only_escalates(void **state) {
    fx *f = *state;
    tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_SOFT_HALT, 1);
    tl_admin_reply rep = handle(f, &r);
    assert_true(rep.ok);
    assert_int_equal(rep.mode, TL_MODE_SOFT_HALT);
    /* A lower request changes nothing, but is applied (a MODE_CHANGE with
     * the mode in force) and the reply shows the mode in force. */
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_NORMAL, 2);
    rep = handle(f, &r);
    assert_true(rep.ok);
    assert_int_equal(rep.mode, TL_MODE_SOFT_HALT);
    assert_int_equal(f->eng.writes, 2);
    assert_int_equal(f->eng.log[1].mode, TL_MODE_SOFT_HALT);
    assert_memory_equal(f->eng.log[1].id, r.id, 16);
    assert_int_equal(tl_admin_modes_scope(&f->modes, BTC), TL_MODE_SOFT_HALT);
    /* from_mode with the sidecar key is ignored: never refuse a halt. */
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_HARD_HALT, 3);
    r.has_from_mode = true;
    r.from_mode = TL_MODE_NORMAL;
    rep = handle(f, &r);
    assert_true(rep.ok);
    assert_int_equal(rep.mode, TL_MODE_HARD_HALT);
    /* Equal: unchanged, still written. */
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_HARD_HALT, 4);
    assert_true(handle(f, &r).ok);
    assert_int_equal(f->eng.writes, 4);
    /* Global scope. */
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "*", TL_MODE_CANCEL_ONLY, 5);
    rep = handle(f, &r);
    assert_true(rep.ok);
    assert_string_equal(rep.symbol, "*");
    assert_int_equal(f->eng.log[4].scope, 0);
    assert_int_equal(tl_admin_modes_effective(&f->modes, ETH), TL_MODE_CANCEL_ONLY);
    assert_int_equal(tl_admin_modes_effective(&f->modes, BTC), TL_MODE_HARD_HALT);
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "*", TL_MODE_NORMAL, 6);
    rep = handle(f, &r);
    assert_int_equal(rep.mode, TL_MODE_CANCEL_ONLY);
}

static void test_operator_relaxes_with_from_mode(void **state) {
    fx *f = *state;
    tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_HARD_HALT, 1);
    assert_true(handle(f, &r).ok);
    /* No from_mode: refused. */
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_SOFT_HALT, 2);
    r.key = TL_ADMIN_KEY_OPERATOR;
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_PRECONDITION_FAILED);
    assert_int_equal(f->eng.last_detail, TL_ADMIN_ERR_FROM_MODE_REQUIRED);
    /* A stale belief: refused, so it cannot undo a halt issued in between. */
    r.has_from_mode = true;
    r.from_mode = TL_MODE_SOFT_HALT;
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_PRECONDITION_FAILED);
    assert_int_equal(f->eng.last_detail, TL_ADMIN_ERR_PRECONDITION_FAILED);
    assert_int_equal(f->eng.writes, 1);
    assert_int_equal(tl_admin_modes_scope(&f->modes, BTC), TL_MODE_HARD_HALT);
    /* The right belief: one level down. A failed attempt is not remembered,
     * so the same id may be used again once it is right. */
    r.from_mode = TL_MODE_HARD_HALT;
    tl_admin_reply rep = handle(f, &r);
    assert_true(rep.ok);
    assert_int_equal(rep.mode, TL_MODE_SOFT_HALT);
    assert_int_equal(tl_admin_modes_scope(&f->modes, BTC), TL_MODE_SOFT_HALT);
    assert_int_equal(f->eng.log[1].mode, TL_MODE_SOFT_HALT);
    /* Down to NORMAL. */
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_NORMAL, 3);
    r.key = TL_ADMIN_KEY_OPERATOR;
    r.has_from_mode = true;
    r.from_mode = TL_MODE_SOFT_HALT;
    assert_true(handle(f, &r).ok);
    assert_int_equal(tl_admin_modes_scope(&f->modes, BTC), TL_MODE_NORMAL);
    /* The operator raising needs no from_mode, but one given is checked. */
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_CANCEL_ONLY, 4);
    r.key = TL_ADMIN_KEY_OPERATOR;
    assert_true(handle(f, &r).ok);
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_HARD_HALT, 5);
    r.key = TL_ADMIN_KEY_OPERATOR;
    r.has_from_mode = true;
    r.from_mode = TL_MODE_NORMAL;
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_PRECONDITION_FAILED);
    /* precondition_failed comes after stale_command. */
    r.issued_ns = NOW + 6 * SEC;
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_STALE_COMMAND);
}

static void test_withdrawals_and_forbidden(void **state) {
    fx *f = *state;
    tl_admin_request g = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "*", TL_MODE_SOFT_HALT, 1);
    assert_true(handle(f, &g).ok);
    tl_admin_request r = rq(TL_ADMIN_CMD_WITHDRAWALS_HALT, "", TL_MODE_NORMAL, 2);
    r.on = true;
    tl_admin_reply rep = handle(f, &r);
    assert_true(rep.ok);
    assert_true(rep.on);
    assert_true(rep.has_applied_seq);
    assert_true(f->modes.withdrawals_halted);
    /* A MODE_CHANGE on scope 0 with the current global mode. */
    assert_int_equal(f->eng.log[1].scope, 0);
    assert_int_equal(f->eng.log[1].mode, TL_MODE_SOFT_HALT);
    assert_true(f->eng.log[1].withdrawals_halted);
    /* Later MODE_CHANGEs carry the flag in force. */
    tl_admin_request s = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "ETHUSDT", TL_MODE_HARD_HALT, 3);
    assert_true(handle(f, &s).ok);
    assert_true(f->eng.log[2].withdrawals_halted);
    /* The sidecar key may not lift it. */
    r = rq(TL_ADMIN_CMD_WITHDRAWALS_HALT, "", TL_MODE_NORMAL, 4);
    r.on = false;
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_FORBIDDEN);
    assert_true(f->modes.withdrawals_halted);
    assert_int_equal(f->eng.writes, 3);
    /* forbidden comes after stale_command. */
    r.issued_ns = NOW - 6 * SEC;
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_STALE_COMMAND);
    /* The operator key may. */
    r = rq(TL_ADMIN_CMD_WITHDRAWALS_HALT, "", TL_MODE_NORMAL, 5);
    r.on = false;
    r.key = TL_ADMIN_KEY_OPERATOR;
    rep = handle(f, &r);
    assert_true(rep.ok);
    assert_false(rep.on);
    assert_false(f->modes.withdrawals_halted);
    assert_false(f->eng.log[3].withdrawals_halted);
    assert_int_equal(f->eng.log[3].mode, TL_MODE_SOFT_HALT);
}

static void test_stale(void **state) {
    fx *f = *state;
    const struct {
        int64_t skew_ns;
        bool ok;
    } cases[] = {
        {0, true},
        {(int64_t)(5 * SEC), true},
        {-(int64_t)(5 * SEC), true},
        {(int64_t)(5 * SEC) + 1, false},
        {-(int64_t)(5 * SEC) - 1, false},
        {(int64_t)(3600 * SEC), false},
    };
    for (size_t i = 0; i < TL_ARRAY_LEN(cases); i++) {
        tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_CANCEL_ONLY,
                                (uint8_t)(10 + i * 16));
        r.issued_ns = (uint64_t)((int64_t)NOW + cases[i].skew_ns);
        tl_admin_reply rep = handle(f, &r);
        if (cases[i].ok)
            assert_true(rep.ok);
        else
            expect_error(&rep, TL_ADMIN_WIRE_STALE_COMMAND);
    }
    /* Extremes of the clock do not wrap. */
    tl_admin_request r = rq(TL_ADMIN_CMD_PING, "", TL_MODE_NORMAL, 200);
    r.issued_ns = UINT64_MAX;
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_STALE_COMMAND);
    r.issued_ns = 0;
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_STALE_COMMAND);
    r.issued_ns = 4 * SEC;
    expect_error((tl_admin_reply[]){handle_signed(f, &r, &f->sidecar, UINT64_MAX)},
                 TL_ADMIN_WIRE_STALE_COMMAND);
    /* A stale command is not applied, so a fresh retry with its id applies. */
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "ETHUSDT", TL_MODE_HARD_HALT, 201);
    r.issued_ns = NOW - 10 * SEC;
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_STALE_COMMAND);
    r.issued_ns = NOW;
    tl_admin_reply rep = handle(f, &r);
    assert_true(rep.ok && !rep.duplicate);
}

static void test_unknown_symbol_and_cancel_all(void **state) {
    fx *f = *state;
    tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "XRPUSDT", TL_MODE_HARD_HALT, 1);
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_UNKNOWN_SYMBOL);
    /* unknown_symbol is the last check: stale first. */
    r.issued_ns = NOW + 60 * SEC;
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_STALE_COMMAND);
    /* An operator relaxation on an unknown symbol: the precondition cannot
     * be evaluated; unknown_symbol. */
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "XRPUSDT", TL_MODE_NORMAL, 2);
    r.key = TL_ADMIN_KEY_OPERATOR;
    r.has_from_mode = true;
    r.from_mode = TL_MODE_HARD_HALT;
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_UNKNOWN_SYMBOL);
    r = rq(TL_ADMIN_CMD_CANCEL_ALL, "XRPUSDT", TL_MODE_NORMAL, 3);
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_UNKNOWN_SYMBOL);
    assert_int_equal(f->eng.writes, 0);
    assert_int_equal(f->eng.cancels, 0);

    /* cancel_all: cancels, then writes a MODE_CHANGE with the mode in force. */
    tl_admin_request h = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "ETHUSDT", TL_MODE_SOFT_HALT, 4);
    assert_true(handle(f, &h).ok);
    r = rq(TL_ADMIN_CMD_CANCEL_ALL, "ETHUSDT", TL_MODE_NORMAL, 5);
    tl_admin_reply rep = handle(f, &r);
    assert_true(rep.ok);
    assert_int_equal(rep.cmd, TL_ADMIN_CMD_CANCEL_ALL);
    assert_string_equal(rep.symbol, "ETHUSDT");
    assert_int_equal(rep.mode, TL_MODE_SOFT_HALT);
    assert_int_equal(f->eng.cancels, 1);
    assert_int_equal(f->eng.cancel_scope[0], ETH);
    assert_int_equal(f->eng.log[1].scope, ETH);
    assert_int_equal(f->eng.log[1].mode, TL_MODE_SOFT_HALT);
    assert_memory_equal(f->eng.log[1].id, r.id, 16);
    assert_true(rep.applied_seq == f->eng.log[1].seq);
    r = rq(TL_ADMIN_CMD_CANCEL_ALL, "*", TL_MODE_NORMAL, 6);
    assert_true(handle(f, &r).ok);
    assert_int_equal(f->eng.cancel_scope[1], 0);
    assert_int_equal(f->eng.log[2].scope, 0);
}

static void test_engine_failure(void **state) {
    fx *f = *state;
    f->eng.fail_write = true;
    tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_HARD_HALT, 1);
    tl_admin_reply rep = handle(f, &r);
    expect_error(&rep, TL_ADMIN_WIRE_ENGINE_ERROR);
    assert_false(tl_admin_wire_definitive(rep.error));
    /* Not applied: the mode table did not move, the id is not remembered. */
    assert_int_equal(tl_admin_modes_scope(&f->modes, BTC), TL_MODE_NORMAL);
    f->eng.fail_write = false;
    rep = handle(f, &r);
    assert_true(rep.ok && !rep.duplicate);
    assert_int_equal(tl_admin_modes_scope(&f->modes, BTC), TL_MODE_HARD_HALT);
    f->eng.fail_cancel = true;
    r = rq(TL_ADMIN_CMD_CANCEL_ALL, "BTCUSDT", TL_MODE_NORMAL, 2);
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_ENGINE_ERROR);
    assert_int_equal(f->eng.writes, 1);
    f->eng.fail_write = true;
    r = rq(TL_ADMIN_CMD_WITHDRAWALS_HALT, "", TL_MODE_NORMAL, 3);
    r.on = true;
    expect_error((tl_admin_reply[]){handle(f, &r)}, TL_ADMIN_WIRE_ENGINE_ERROR);
    assert_false(f->modes.withdrawals_halted);
}

static void test_ping(void **state) {
    fx *f = *state;
    tl_admin_request r = rq(TL_ADMIN_CMD_PING, "", TL_MODE_NORMAL, 1);
    tl_admin_reply rep = handle(f, &r);
    assert_true(rep.ok);
    assert_int_equal(rep.cmd, TL_ADMIN_CMD_PING);
    assert_false(rep.has_applied_seq);
    assert_int_equal(f->eng.writes, 0);
    assert_int_equal(tl_admin_server_get_stats(f->srv)->pings, 1);
    assert_int_equal(f->eng.last_cmd, TL_ADMIN_CMD_PING);
    /* A bad line still reaches on_line, with no command and no id. */
    rep = handle_raw(f, "nope", 4, NOW);
    expect_error(&rep, TL_ADMIN_WIRE_BAD_REQUEST);
    assert_false(rep.id_present);
    assert_int_equal(f->eng.last_cmd, TL_ADMIN_CMD_NONE);
    assert_true(f->eng.last_id_null);
    assert_true(f->eng.last_req_null);
    assert_int_equal(f->eng.last_detail, TL_ADMIN_ERR_NOT_JSON);
}

static void test_restart_rebuilds_ids(void **state) {
    fx *f = *state;
    /* The engine replays its log: a restatement, then an applied command. */
    tl_body_mode_change b = {.mode = TL_MODE_CANCEL_ONLY, .withdrawals_halted = 0};
    memset(b.command_id, 0xff, 16);
    assert_true(tl_admin_server_replay_mode_change(f->srv, 0, &b, 5));
    tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_HARD_HALT, 1);
    b.mode = TL_MODE_HARD_HALT;
    b.withdrawals_halted = 1;
    memcpy(b.command_id, r.id, 16);
    assert_true(tl_admin_server_replay_mode_change(f->srv, BTC, &b, 42));
    memset(b.command_id, 0, 16);
    assert_true(tl_admin_server_replay_mode_change(f->srv, ETH, &b, 43));
    b.mode = 9;
    assert_false(tl_admin_server_replay_mode_change(f->srv, ETH, &b, 44));
    b.mode = TL_MODE_NORMAL;
    assert_false(tl_admin_server_replay_mode_change(f->srv, 99, &b, 44));
    assert_int_equal(tl_admin_modes_scope(&f->modes, 0), TL_MODE_CANCEL_ONLY);
    assert_int_equal(tl_admin_modes_scope(&f->modes, BTC), TL_MODE_HARD_HALT);
    assert_true(f->modes.withdrawals_halted);
    /* Reserved ids are state, never commands. */
    uint8_t ff[16], zero[16] = {0};
    memset(ff, 0xff, 16);
    assert_false(tl_admin_server_remember(f->srv, ff, 0, TL_MODE_NORMAL, false, 1));
    assert_false(tl_admin_server_remember(f->srv, zero, 0, TL_MODE_NORMAL, false, 1));
    assert_false(tl_admin_server_remember(f->srv, r.id, BTC, TL_MODE_NORMAL, false, 1));
    /* tally retries after the restart: duplicate, with the logged seq. */
    r.issued_ns = NOW + SEC;
    tl_admin_reply rep = handle(f, &r);
    assert_true(rep.ok && rep.duplicate);
    assert_true(rep.applied_seq == 42);
    assert_int_equal(rep.mode, TL_MODE_HARD_HALT);
    assert_string_equal(rep.symbol, "BTCUSDT");
    assert_int_equal(f->eng.writes, 0);
    /* The first resend binds the id to its signed bytes. */
    tl_admin_request changed = r;
    tl_admin_request_set_reason(&changed, "x", 1);
    expect_error((tl_admin_reply[]){handle(f, &changed)}, TL_ADMIN_WIRE_BAD_REQUEST);
    /* A remembered id on another scope is a reused id. */
    tl_admin_request w = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "ETHUSDT", TL_MODE_HARD_HALT, 100);
    assert_true(tl_admin_server_remember(f->srv, w.id, BTC, TL_MODE_HARD_HALT, false, 50));
    expect_error((tl_admin_reply[]){handle(f, &w)}, TL_ADMIN_WIRE_BAD_REQUEST);
    tl_admin_request wh = rq(TL_ADMIN_CMD_WITHDRAWALS_HALT, "", TL_MODE_NORMAL, 120);
    wh.on = true;
    assert_true(tl_admin_server_remember(f->srv, wh.id, 0, TL_MODE_CANCEL_ONLY, true, 51));
    rep = handle(f, &wh);
    assert_true(rep.ok && rep.duplicate && rep.on);
    assert_true(rep.applied_seq == 51);
}

static void test_remembered_ids_bounded(void **state) {
    fx *f = *state;
    tl_admin_server_destroy(f->srv);
    f->srv = make_server(f, 0, 4, true);
    tl_admin_request first = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_CANCEL_ONLY, 1);
    assert_true(handle(f, &first).ok);
    for (uint8_t i = 0; i < 3; i++) {
        tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_CANCEL_ONLY,
                                (uint8_t)(20 + i * 16));
        assert_true(handle(f, &r).ok);
    }
    assert_true(handle(f, &first).duplicate);
    tl_admin_request fifth = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_CANCEL_ONLY, 200);
    assert_true(handle(f, &fifth).ok);
    /* The oldest was evicted: applied again (written again). */
    int before = f->eng.writes;
    tl_admin_reply rep = handle(f, &first);
    assert_true(rep.ok && !rep.duplicate);
    assert_int_equal(f->eng.writes, before + 1);
}

/* ---- sockets ---- */

static void sleep_us(long us) {
    struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};
    nanosleep(&ts, NULL);
}

/* Polls the server and the client until a reply arrives (or 5 s pass). */
static enum tl_admin_err pump_reply(fx *f, tl_admin_client *c, tl_admin_reply *rep,
                                    uint8_t id[16]) {
    for (int i = 0; i < 50000; i++) {
        tl_admin_server_poll(f->srv, NOW);
        if (tl_admin_client_wants_write(c)) {
            enum tl_admin_err fe = tl_admin_client_flush(c);
            if (fe != TL_ADMIN_OK && fe != TL_ADMIN_ERR_WOULD_BLOCK)
                return fe;
        }
        enum tl_admin_err e = tl_admin_client_recv(c, rep, id);
        if (e != TL_ADMIN_ERR_WOULD_BLOCK)
            return e;
        sleep_us(i < 100 ? 10 : 100);
    }
    return TL_ADMIN_ERR_WOULD_BLOCK;
}

static void set_sun_path(struct sockaddr_un *a, const char *path) {
    size_t n = strlen(path);
    assert_true(n < sizeof a->sun_path);
    memcpy(a->sun_path, path, n + 1);
}

static int raw_connect(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    set_sun_path(&a, path);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void raw_send(int fd, const void *p, size_t n) {
    size_t put = 0;
    while (put < n) {
        ssize_t w = send(fd, (const char *)p + put, n - put, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        put += (size_t)w;
    }
}

/* Reads until '\n' count lines arrived or EOF, polling the server between
 * tries. Returns bytes read; *eof says whether the server closed. */
static size_t raw_read(fx *f, int fd, char *buf, size_t cap, int lines, bool *eof) {
    size_t got = 0;
    *eof = false;
    for (int i = 0; i < 50000; i++) {
        tl_admin_server_poll(f->srv, NOW);
        ssize_t r = recv(fd, buf + got, cap - got - 1, MSG_DONTWAIT);
        if (r > 0) {
            got += (size_t)r;
            buf[got] = 0;
            int nl = 0;
            for (size_t k = 0; k < got; k++)
                nl += buf[k] == '\n';
            if (nl >= lines && lines > 0)
                return got;
            continue;
        }
        if (r == 0 || (r < 0 && errno == ECONNRESET)) {
            *eof = true;
            return got;
        }
        sleep_us(i < 100 ? 10 : 100);
    }
    return got;
}

static void test_socket_mode_and_client_roundtrip(void **state) {
    fx *f = *state;
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_string_equal(tl_admin_server_path(f->srv), f->path);

    tl_admin_client *c = malloc(sizeof *c);
    tl_admin_client_init(c);
    tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "*", TL_MODE_HARD_HALT, 1);
    assert_int_equal(tl_admin_client_send(c, &r, &f->sidecar), TL_ADMIN_ERR_NOT_CONNECTED);
    assert_int_equal(tl_admin_client_connect(c, f->path), TL_ADMIN_OK);
    uint64_t before = mono_now();
    assert_int_equal(tl_admin_client_send(c, &r, &f->sidecar), TL_ADMIN_OK);
    assert_int_equal(tl_admin_client_pending(c), 1);
    tl_admin_reply rep;
    uint8_t id[16];
    assert_int_equal(pump_reply(f, c, &rep, id), TL_ADMIN_OK);
    assert_true(rep.ok);
    assert_memory_equal(id, r.id, 16);
    assert_memory_equal(rep.id, r.id, 16);
    assert_int_equal(rep.mode, TL_MODE_HARD_HALT);
    assert_int_equal(tl_admin_client_pending(c), 0);
    assert_int_equal(tl_admin_modes_scope(&f->modes, 0), TL_MODE_HARD_HALT);
    /* The arrival stamp is CLOCK_MONOTONIC, taken after the client sent. */
    assert_true(f->eng.last_arrival >= before && f->eng.last_arrival <= mono_now());
    assert_int_equal(tl_admin_server_conn_count(f->srv), 1);
    tl_admin_client_close(c);
    for (int i = 0; i < 1000 && tl_admin_server_conn_count(f->srv) > 0; i++) {
        tl_admin_server_poll(f->srv, NOW);
        sleep_us(100);
    }
    assert_int_equal(tl_admin_server_conn_count(f->srv), 0);
    free(c);
}

static void test_pipelined_in_order(void **state) {
    fx *f = *state;
    tl_admin_client *c = malloc(sizeof *c);
    tl_admin_client_init(c);
    assert_int_equal(tl_admin_client_connect(c, f->path), TL_ADMIN_OK);
    /* 64 requests on one connection before the server runs at all: mixed
     * commands, some failing; replies must come back in order. */
    tl_admin_request reqs[64];
    for (int i = 0; i < 64; i++) {
        enum tl_mode m = (enum tl_mode)(i % 4);
        reqs[i] =
            rq(i % 5 == 4 ? TL_ADMIN_CMD_PING : TL_ADMIN_CMD_SET_SYMBOL_MODE,
               i % 3 == 0 ? "BTCUSDT" : (i % 3 == 1 ? "ETHUSDT" : "NOPE"), m, (uint8_t)(i * 3 + 1));
        reqs[i].id[15] = (uint8_t)i;
        assert_int_equal(tl_admin_client_send(c, &reqs[i], &f->sidecar), TL_ADMIN_OK);
    }
    tl_admin_request extra = rq(TL_ADMIN_CMD_PING, "", TL_MODE_NORMAL, 250);
    assert_int_equal(tl_admin_client_send(c, &extra, &f->sidecar), TL_ADMIN_ERR_WOULD_BLOCK);
    for (int i = 0; i < 64; i++) {
        tl_admin_reply rep;
        uint8_t id[16];
        assert_int_equal(pump_reply(f, c, &rep, id), TL_ADMIN_OK);
        assert_memory_equal(id, reqs[i].id, 16);
        if (reqs[i].cmd == TL_ADMIN_CMD_PING) {
            assert_true(rep.ok);
        } else if (i % 3 == 2) {
            expect_error(&rep, TL_ADMIN_WIRE_UNKNOWN_SYMBOL);
        } else {
            assert_true(rep.ok);
            assert_int_equal(rep.cmd, TL_ADMIN_CMD_SET_SYMBOL_MODE);
        }
    }
    assert_int_equal(tl_admin_client_pending(c), 0);
    assert_int_equal(c->stats.replies, 64);
    tl_admin_client_close(c);
    free(c);
}

static void test_backpressure_does_not_drop_replies(void **state) {
    fx *f = *state;
    /* A raw peer sends 12000 pings without reading: the server's reply
     * buffer fills and it stops taking lines (back-pressure), the peer's
     * sends then block; once the peer reads, everything is answered, in
     * order, nothing lost. */
    int fd = raw_connect(f->path);
    int flags = fcntl(fd, F_GETFL);
    assert_int_equal(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
    const int total = 12000;
    char line[TL_ADMIN_LINE_MAX];
    char *blob = malloc((size_t)total * 200);
    size_t blob_len = 0;
    for (int i = 0; i < total; i++) {
        tl_admin_request r = rq(TL_ADMIN_CMD_PING, "", TL_MODE_NORMAL, 1);
        r.id[14] = (uint8_t)(i >> 8);
        r.id[15] = (uint8_t)i;
        size_t len;
        assert_int_equal(tl_admin_request_build(&r, &f->sidecar, line, sizeof line, &len),
                         TL_ADMIN_OK);
        memcpy(blob + blob_len, line, len);
        blob_len += len;
    }
    /* Phase 1: send without reading until the peer's sends stop. */
    size_t put = 0;
    int blocked = 0;
    for (int spins = 0; put < blob_len && blocked < 200 && spins < 200000; spins++) {
        ssize_t w = send(fd, blob + put, blob_len - put, MSG_NOSIGNAL);
        if (w > 0) {
            put += (size_t)w;
            blocked = 0;
        } else {
            assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
            blocked++;
        }
        tl_admin_server_poll(f->srv, NOW);
    }
    assert_true(put < blob_len); /* the peer was pushed back */
    assert_true(tl_admin_server_get_stats(f->srv)->reply_stalls > 0);
    /* Phase 2: read and send until every reply is in. */
    size_t cap = (size_t)total * 200;
    char *out = malloc(cap);
    size_t got = 0;
    int lines = 0;
    for (int spins = 0; lines < total && spins < 1000000; spins++) {
        if (put < blob_len) {
            ssize_t w = send(fd, blob + put, blob_len - put, MSG_NOSIGNAL);
            if (w > 0)
                put += (size_t)w;
        }
        tl_admin_server_poll(f->srv, NOW);
        ssize_t r = recv(fd, out + got, cap - got, 0);
        if (r > 0) {
            for (ssize_t k = 0; k < r; k++)
                lines += out[got + (size_t)k] == '\n';
            got += (size_t)r;
        } else {
            assert_true(r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        }
    }
    assert_int_equal(lines, total);
    lines = 0;
    char *p = out;
    for (char *nl; (nl = memchr(p, '\n', (size_t)(out + got - p))) != NULL; p = nl + 1) {
        tl_admin_reply rep;
        assert_int_equal(tl_admin_reply_parse(p, (size_t)(nl - p), &rep), TL_ADMIN_OK);
        assert_true(rep.ok);
        assert_int_equal(rep.id[15], (uint8_t)lines);
        assert_int_equal(rep.id[14], (uint8_t)(lines >> 8));
        lines++;
    }
    assert_int_equal(lines, total);
    assert_int_equal(tl_admin_server_get_stats(f->srv)->pings, total);
    close(fd);
    free(out);
    free(blob);
}

static void test_many_short_lines(void **state) {
    fx *f = *state;
    /* 3000 empty lines in one send: each is a bad_request with "id":"",
     * handled 64 per poll (the rest waits for the next poll, without any
     * new event) and held back while the reply buffer is full. */
    int fd = raw_connect(f->path);
    char *nl = malloc(3000);
    memset(nl, '\n', 3000);
    raw_send(fd, nl, 3000);
    const char *want = "{\"v\":1,\"id\":\"\",\"ok\":false,\"error\":\"bad_request\"}\n";
    size_t cap = 3000 * strlen(want) + 1;
    char *out = malloc(cap);
    bool eof;
    size_t got = raw_read(f, fd, out, cap, 3000, &eof);
    assert_false(eof);
    assert_int_equal(got, 3000 * strlen(want));
    for (int i = 0; i < 3000; i++)
        assert_memory_equal(out + (size_t)i * strlen(want), want, strlen(want));
    assert_int_equal(tl_admin_server_get_stats(f->srv)->rejected[TL_ADMIN_ERR_NOT_JSON], 3000);
    close(fd);
    free(out);
    free(nl);
}

static void test_half_closed_non_reader_dropped(void **state) {
    fx *f = *state;
    /* A peer that floods requests, shuts its write side and never reads:
     * the server stalls on it, then drops it after the stall time. */
    tl_admin_server_destroy(f->srv);
    fx_stall_ms = 300;
    f->srv = make_server(f, 0, 0, true);
    fx_stall_ms = 20000;
    int fd = raw_connect(f->path);
    int flags = fcntl(fd, F_GETFL);
    assert_int_equal(fcntl(fd, F_SETFL, flags | O_NONBLOCK), 0);
    tl_admin_request r = rq(TL_ADMIN_CMD_PING, "", TL_MODE_NORMAL, 1);
    char line[TL_ADMIN_LINE_MAX];
    size_t len;
    assert_int_equal(tl_admin_request_build(&r, &f->sidecar, line, sizeof line, &len), TL_ADMIN_OK);
    int blocked = 0;
    for (int spins = 0; blocked < 200 && spins < 400000; spins++) {
        ssize_t w = send(fd, line, len, MSG_NOSIGNAL);
        if (w > 0 && (size_t)w < len)
            break; /* a partial line: fine, the peer is about to stop */
        blocked = w > 0 ? 0 : blocked + 1;
        tl_admin_server_poll(f->srv, NOW);
    }
    assert_true(blocked >= 200);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    uint64_t start = mono_now();
    while (tl_admin_server_conn_count(f->srv) > 0 && mono_now() - start < 5 * SEC) {
        tl_admin_server_poll(f->srv, NOW);
        sleep_us(1000);
    }
    uint64_t took = mono_now() - start;
    assert_int_equal(tl_admin_server_conn_count(f->srv), 0);
    assert_true(took >= 150 * 1000000ull);
    assert_int_equal(tl_admin_server_get_stats(f->srv)->conns_stalled, 1);
    assert_true(tl_admin_server_get_stats(f->srv)->reply_stalls > 0);
    close(fd);
}

static void test_byte_by_byte(void **state) {
    fx *f = *state;
    int fd = raw_connect(f->path);
    tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "ETHUSDT", TL_MODE_SOFT_HALT, 1);
    char line[TL_ADMIN_LINE_MAX];
    size_t len;
    assert_int_equal(tl_admin_request_build(&r, &f->sidecar, line, sizeof line, &len), TL_ADMIN_OK);
    for (size_t i = 0; i < len; i++) {
        raw_send(fd, line + i, 1);
        tl_admin_server_poll(f->srv, NOW);
        if (i + 1 < len)
            assert_int_equal(f->eng.lines, 0);
    }
    char buf[1024];
    bool eof;
    size_t got = raw_read(f, fd, buf, sizeof buf, 1, &eof);
    assert_false(eof);
    tl_admin_reply rep;
    assert_int_equal(tl_admin_reply_parse(buf, got - 1, &rep), TL_ADMIN_OK);
    assert_true(rep.ok);
    assert_int_equal(f->eng.lines, 1);
    assert_int_equal(tl_admin_modes_scope(&f->modes, ETH), TL_MODE_SOFT_HALT);
    close(fd);
}

static void test_long_line_closes(void **state) {
    fx *f = *state;
    int fd = raw_connect(f->path);
    /* First a good line, then one of 5000 bytes: the good one is answered,
     * the long one gets bad_request with "id":"" and the connection closes. */
    tl_admin_request r = rq(TL_ADMIN_CMD_PING, "", TL_MODE_NORMAL, 1);
    char line[TL_ADMIN_LINE_MAX];
    size_t len;
    assert_int_equal(tl_admin_request_build(&r, &f->sidecar, line, sizeof line, &len), TL_ADMIN_OK);
    raw_send(fd, line, len);
    char big[5001];
    memset(big, 'x', sizeof big);
    big[0] = '{';
    big[5000] = '\n';
    raw_send(fd, big, sizeof big);
    char buf[2048];
    bool eof;
    size_t got = raw_read(f, fd, buf, sizeof buf, 0, &eof);
    assert_true(eof);
    const char *want_tail = "{\"v\":1,\"id\":\"\",\"ok\":false,\"error\":\"bad_request\"}\n";
    char *nl = memchr(buf, '\n', got);
    assert_non_null(nl);
    tl_admin_reply rep;
    assert_int_equal(tl_admin_reply_parse(buf, (size_t)(nl - buf), &rep), TL_ADMIN_OK);
    assert_true(rep.ok);
    assert_int_equal((size_t)(buf + got - (nl + 1)), strlen(want_tail));
    assert_memory_equal(nl + 1, want_tail, strlen(want_tail));
    assert_int_equal(tl_admin_server_get_stats(f->srv)->rejected[TL_ADMIN_ERR_LINE_TOO_LONG], 1);
    assert_int_equal(tl_admin_server_conn_count(f->srv), 0);
    close(fd);

    /* Exactly 4096 bytes with the '\n' is a line (padded with leading JSON
     * whitespace, which is signed like the rest); 4097 is not. */
    fd = raw_connect(f->path);
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_CANCEL_ONLY, 2);
    assert_int_equal(tl_admin_request_build(&r, &f->sidecar, line, sizeof line, &len), TL_ADMIN_OK);
    size_t body = len - 75; /* up to the mac */
    char padded[TL_ADMIN_LINE_MAX + 8];
    size_t pad = TL_ADMIN_LINE_MAX - len;
    memset(padded, ' ', pad);
    memcpy(padded + pad, line, body);
    uint8_t mac[32];
    tl_admin_key_mac2(&f->sidecar, padded, pad + body, "}", 1, mac);
    char hex[65];
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", mac[i]);
    int k = snprintf(padded + pad + body, sizeof padded - pad - body, ",\"mac\":\"%s\"}\n", hex);
    assert_int_equal(pad + body + (size_t)k, TL_ADMIN_LINE_MAX);
    raw_send(fd, padded, TL_ADMIN_LINE_MAX);
    got = raw_read(f, fd, buf, sizeof buf, 1, &eof);
    assert_false(eof);
    assert_int_equal(tl_admin_reply_parse(buf, got - 1, &rep), TL_ADMIN_OK);
    assert_true(rep.ok);
    assert_int_equal(tl_admin_modes_scope(&f->modes, BTC), TL_MODE_CANCEL_ONLY);
    /* One more space: too long. */
    r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_SOFT_HALT, 3);
    assert_int_equal(tl_admin_request_build(&r, &f->sidecar, line, sizeof line, &len), TL_ADMIN_OK);
    char *over = malloc(TL_ADMIN_LINE_MAX + 1);
    memset(over, ' ', TL_ADMIN_LINE_MAX + 1 - len);
    memcpy(over + TL_ADMIN_LINE_MAX + 1 - len, line, len);
    raw_send(fd, over, TL_ADMIN_LINE_MAX + 1);
    got = raw_read(f, fd, buf, sizeof buf, 0, &eof);
    assert_true(eof);
    assert_int_equal(got, strlen(want_tail));
    assert_memory_equal(buf, want_tail, got);
    assert_int_equal(tl_admin_modes_scope(&f->modes, BTC), TL_MODE_CANCEL_ONLY);
    free(over);
    close(fd);
}

static void test_peer_closes_mid_line(void **state) {
    fx *f = *state;
    int fd = raw_connect(f->path);
    tl_admin_request r = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_HARD_HALT, 1);
    char line[TL_ADMIN_LINE_MAX];
    size_t len;
    assert_int_equal(tl_admin_request_build(&r, &f->sidecar, line, sizeof line, &len), TL_ADMIN_OK);
    raw_send(fd, line, len / 2);
    for (int i = 0; i < 20; i++)
        tl_admin_server_poll(f->srv, NOW);
    assert_int_equal(tl_admin_server_conn_count(f->srv), 1);
    close(fd);
    for (int i = 0; i < 1000 && tl_admin_server_conn_count(f->srv) > 0; i++) {
        tl_admin_server_poll(f->srv, NOW);
        sleep_us(100);
    }
    assert_int_equal(tl_admin_server_conn_count(f->srv), 0);
    assert_int_equal(tl_admin_server_get_stats(f->srv)->partial_lines_dropped, 1);
    assert_int_equal(f->eng.lines, 0);
    assert_int_equal(f->eng.writes, 0);

    /* A peer that sends whole lines then shuts its write side down still
     * gets every reply, then the server closes. */
    fd = raw_connect(f->path);
    raw_send(fd, line, len);
    r = rq(TL_ADMIN_CMD_PING, "", TL_MODE_NORMAL, 2);
    size_t len2;
    char line2[TL_ADMIN_LINE_MAX];
    assert_int_equal(tl_admin_request_build(&r, &f->sidecar, line2, sizeof line2, &len2),
                     TL_ADMIN_OK);
    raw_send(fd, line2, len2);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    char buf[2048];
    bool eof;
    raw_read(f, fd, buf, sizeof buf, 0, &eof);
    assert_true(eof);
    int lines = 0;
    for (char *p = buf; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    assert_int_equal(lines, 2);
    assert_int_equal(f->eng.writes, 1);
    close(fd);
}

static void test_max_conns(void **state) {
    fx *f = *state;
    tl_admin_server_destroy(f->srv);
    f->srv = make_server(f, 2, 0, true);
    int a = raw_connect(f->path), b = raw_connect(f->path), c = raw_connect(f->path);
    for (int i = 0; i < 50; i++)
        tl_admin_server_poll(f->srv, NOW);
    assert_int_equal(tl_admin_server_conn_count(f->srv), 2);
    assert_int_equal(tl_admin_server_get_stats(f->srv)->conns_refused, 1);
    /* The refused one sees EOF; the others still work. */
    char buf[256];
    bool eof;
    raw_read(f, c, buf, sizeof buf, 0, &eof);
    assert_true(eof);
    tl_admin_request r = rq(TL_ADMIN_CMD_PING, "", TL_MODE_NORMAL, 1);
    char line[TL_ADMIN_LINE_MAX];
    size_t len;
    assert_int_equal(tl_admin_request_build(&r, &f->sidecar, line, sizeof line, &len), TL_ADMIN_OK);
    raw_send(b, line, len);
    size_t got = raw_read(f, b, buf, sizeof buf, 1, &eof);
    assert_true(got > 0 && !eof);
    close(a);
    close(b);
    close(c);
}

static void test_socket_path_rules(void **state) {
    fx *f = *state;
    /* A live server on the path: refused. */
    tl_admin_server_config cfg = {
        .socket_path = f->path,
        .sidecar_key = &f->sidecar,
        .modes = &f->modes,
        .ops = {.ctx = &f->eng, .write_mode_change = eng_write, .cancel_all = eng_cancel}};
    enum tl_admin_err err;
    assert_null(tl_admin_server_create(&cfg, &err));
    assert_int_equal(err, TL_ADMIN_ERR_ADDR_IN_USE);
    /* A stale socket left by a dead engine: replaced. */
    char stale[300];
    snprintf(stale, sizeof stale, "%s/stale.sock", f->dir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    set_sun_path(&a, stale);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    close(fd);
    cfg.socket_path = stale;
    cfg.socket_mode = 0660;
    tl_admin_server *s2 = tl_admin_server_create(&cfg, &err);
    assert_non_null(s2);
    struct stat st;
    assert_int_equal(stat(stale, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    tl_admin_server_destroy(s2);
    assert_int_not_equal(stat(stale, &st), 0); /* removed on destroy */
    /* A regular file is never removed. */
    char regular[300];
    snprintf(regular, sizeof regular, "%s/file", f->dir);
    tu_write_file(regular, "x", 1);
    cfg.socket_path = regular;
    assert_null(tl_admin_server_create(&cfg, &err));
    assert_int_equal(err, TL_ADMIN_ERR_ADDR_IN_USE);
    assert_int_equal(stat(regular, &st), 0);
    /* Too long a path. */
    char lp[200];
    memset(lp, 'a', sizeof lp - 1);
    lp[0] = '/';
    lp[sizeof lp - 1] = 0;
    cfg.socket_path = lp;
    assert_null(tl_admin_server_create(&cfg, &err));
    assert_int_equal(err, TL_ADMIN_ERR_PATH_TOO_LONG);
    /* Missing callbacks or keys. */
    cfg.socket_path = stale;
    cfg.ops.cancel_all = NULL;
    assert_null(tl_admin_server_create(&cfg, &err));
    assert_int_equal(err, TL_ADMIN_ERR_BAD_CONFIG);
    cfg.ops.cancel_all = eng_cancel;
    cfg.sidecar_key = NULL;
    assert_null(tl_admin_server_create(&cfg, &err));
    assert_int_equal(err, TL_ADMIN_ERR_BAD_CONFIG);
    /* A client to nowhere. */
    tl_admin_client *c = malloc(sizeof *c);
    tl_admin_client_init(c);
    assert_int_equal(tl_admin_client_connect(c, stale), TL_ADMIN_ERR_IO);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(tl_admin_client_connect(c, lp), TL_ADMIN_ERR_PATH_TOO_LONG);
    free(c);
}

/* A fake server (a raw listening socket) for the client's reply matching. */
static int fake_listen(const char *path) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    set_sun_path(&a, path);
    unlink(path);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

static enum tl_admin_err client_wait(tl_admin_client *c, tl_admin_reply *rep, uint8_t id[16]) {
    for (int i = 0; i < 20000; i++) {
        enum tl_admin_err e = tl_admin_client_recv(c, rep, id);
        if (e != TL_ADMIN_ERR_WOULD_BLOCK)
            return e;
        sleep_us(100);
    }
    return TL_ADMIN_ERR_WOULD_BLOCK;
}

static void test_client_reply_matching(void **state) {
    fx *f = *state;
    char path[300];
    snprintf(path, sizeof path, "%s/fake.sock", f->dir);
    int lfd = fake_listen(path);
    tl_admin_client *c = malloc(sizeof *c);
    tl_admin_client_init(c);
    tl_admin_reply rep;
    uint8_t id[16];
    char idhex[33] = {0};

    /* 1. Replies in order, one of them with "id":"" (matched by order), one
     *    delivered in two pieces. */
    assert_int_equal(tl_admin_client_connect(c, path), TL_ADMIN_OK);
    int s = accept(lfd, NULL, NULL);
    tl_admin_request a = rq(TL_ADMIN_CMD_PING, "", TL_MODE_NORMAL, 1);
    tl_admin_request b = rq(TL_ADMIN_CMD_PING, "", TL_MODE_NORMAL, 2);
    assert_int_equal(tl_admin_client_send(c, &a, &f->sidecar), TL_ADMIN_OK);
    assert_int_equal(tl_admin_client_send(c, &b, &f->sidecar), TL_ADMIN_OK);
    assert_int_equal(tl_admin_client_recv(c, &rep, id), TL_ADMIN_ERR_WOULD_BLOCK);
    char out[512];
    tl_admin_format_id(a.id, idhex);
    int n = snprintf(out, sizeof out,
                     "{\"v\":1,\"id\":\"%s\",\"ok\":true,\"cmd\":\"ping\",\"duplicate\":false}\n"
                     "{\"v\":1,\"id\":\"\",\"ok\":false,",
                     idhex);
    raw_send(s, out, (size_t)n);
    assert_int_equal(client_wait(c, &rep, id), TL_ADMIN_OK);
    assert_memory_equal(id, a.id, 16);
    assert_true(rep.ok);
    assert_int_equal(tl_admin_client_recv(c, &rep, id), TL_ADMIN_ERR_WOULD_BLOCK);
    raw_send(s, "\"error\":\"bad_request\"}\n", 23);
    size_t first_len = (size_t)(strchr(out, '\n') - out) + 1;
    assert_int_equal(client_wait(c, &rep, id), TL_ADMIN_OK);
    assert_memory_equal(id, b.id, 16);
    assert_false(rep.ok);
    assert_false(rep.id_present);
    assert_int_equal(rep.error, TL_ADMIN_WIRE_BAD_REQUEST);
    /* 2. A reply nobody asked for: the stream is out of step; closed. */
    raw_send(s, out, first_len);
    assert_int_equal(client_wait(c, &rep, id), TL_ADMIN_ERR_REPLY_UNEXPECTED);
    assert_false(tl_admin_client_connected(c));
    close(s);

    /* 3. A reply for another id. */
    assert_int_equal(tl_admin_client_connect(c, path), TL_ADMIN_OK);
    s = accept(lfd, NULL, NULL);
    assert_int_equal(tl_admin_client_send(c, &b, &f->sidecar), TL_ADMIN_OK);
    raw_send(s, out, first_len); /* answers a, not b */
    assert_int_equal(client_wait(c, &rep, id), TL_ADMIN_ERR_REPLY_ID_MISMATCH);
    assert_false(tl_admin_client_connected(c));
    close(s);

    /* 4. Garbage, and a line longer than 4096 bytes. */
    assert_int_equal(tl_admin_client_connect(c, path), TL_ADMIN_OK);
    s = accept(lfd, NULL, NULL);
    assert_int_equal(tl_admin_client_send(c, &b, &f->sidecar), TL_ADMIN_OK);
    raw_send(s, "hello\n", 6);
    assert_int_equal(client_wait(c, &rep, id), TL_ADMIN_ERR_BAD_REPLY);
    close(s);
    assert_int_equal(tl_admin_client_connect(c, path), TL_ADMIN_OK);
    s = accept(lfd, NULL, NULL);
    assert_int_equal(tl_admin_client_send(c, &b, &f->sidecar), TL_ADMIN_OK);
    char *big = malloc(5000);
    memset(big, ' ', 5000);
    raw_send(s, big, 5000);
    assert_int_equal(client_wait(c, &rep, id), TL_ADMIN_ERR_BAD_REPLY);
    free(big);
    close(s);
    assert_int_equal(c->stats.bad_replies, 4);

    /* 5. The server goes away: conn_closed. */
    assert_int_equal(tl_admin_client_connect(c, path), TL_ADMIN_OK);
    s = accept(lfd, NULL, NULL);
    close(s);
    assert_int_equal(client_wait(c, &rep, id), TL_ADMIN_ERR_CONN_CLOSED);
    assert_false(tl_admin_client_connected(c));

    /* 6. A server that never reads: the client queues up to its bounds and
     *    then says would_block, never blocking. */
    assert_int_equal(tl_admin_client_connect(c, path), TL_ADMIN_OK);
    s = accept(lfd, NULL, NULL);
    tl_admin_request big_req = rq(TL_ADMIN_CMD_SET_SYMBOL_MODE, "BTCUSDT", TL_MODE_HARD_HALT, 3);
    char reason[256];
    memset(reason, 1, sizeof reason); /* escaped as \u0001: a 2 KB line */
    tl_admin_request_set_reason(&big_req, reason, sizeof reason);
    int queued = 0;
    enum tl_admin_err e = TL_ADMIN_OK;
    for (int i = 0; i < 1000 && e == TL_ADMIN_OK; i++) {
        big_req.id[15] = (uint8_t)i;
        e = tl_admin_client_send(c, &big_req, &f->sidecar);
        if (e == TL_ADMIN_OK)
            queued++;
    }
    assert_int_equal(e, TL_ADMIN_ERR_WOULD_BLOCK);
    assert_int_equal(queued, (int)tl_admin_client_pending(c));
    assert_true(queued > 0 && queued <= (int)TL_ADMIN_CLIENT_PENDING_MAX);
    /* Malformed lines are refused before anything is queued. */
    assert_int_equal(tl_admin_client_send_line(c, a.id, "x", 1), TL_ADMIN_ERR_EMBEDDED_NEWLINE);
    assert_int_equal(tl_admin_client_send_line(c, a.id, "a\nb\n", 4),
                     TL_ADMIN_ERR_EMBEDDED_NEWLINE);
    close(s);
    tl_admin_client_close(c);
    assert_int_equal(tl_admin_client_pending(c), 0);
    close(lfd);
    free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vector_line_applies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_mac, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operator_key_not_configured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sidecar_only_escalates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operator_relaxes_with_from_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_withdrawals_and_forbidden, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_symbol_and_cancel_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_rebuilds_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remembered_ids_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_mode_and_client_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_does_not_drop_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_short_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_half_closed_non_reader_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_by_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_closes_mid_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_conns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_path_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_reply_matching, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
