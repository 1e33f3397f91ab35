/* fuzz_admin_line.c: libFuzzer target for the engine admin protocol's line
 * parsers (admin/admin_proto.h, admin/flatjson.h) and the server's handling
 * of a line (admin/engine_server.h), all of which read outside bytes.
 *
 * Properties checked on every input (a failure aborts through TL_ASSERT):
 * 1. the flat JSON scanner never accepts what cJSON rejects, and agrees with
 *    cJSON on every member it accepts;
 * 2. a request that parses is rebuilt by the builder into a line that parses
 *    to the same request (parse -> build -> parse is a fixed point), and
 *    every rejection has a name and maps to bad_request;
 * 3. a reply that parses survives build -> parse;
 * 4. the input, signed with the sidecar key as the body of a line, goes
 *    through the server's full check order and semantics (the mac passes,
 *    so duplicates, stale, forbidden, precondition and the mode table are
 *    reached), always producing exactly one well-formed reply.
 *
 * Build (clang only): link with tl_admin, tl_core, OpenSSL crypto, cJSON
 * (and xxhash through tl_core), -fsanitize=fuzzer.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "admin/admin_key.h"
#include "admin/admin_proto.h"
#include "admin/engine_server.h"
#include "admin/flatjson.h"
#include "admin/modes.h"
#include "core/assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tl_admin_key key;
static tl_admin_modes modes;
static tl_admin_server *srv;
static uint64_t next_seq = 1;

static int fz_write(void *ctx, uint32_t scope, enum tl_mode mode, bool wd, const uint8_t id[16],
                    uint64_t *seq) {
    (void)ctx;
    (void)wd;
    TL_ASSERT((unsigned)mode < TL_MODE_COUNT);
    TL_ASSERT(!tl_id_is_zero(id) && !tl_id_is_restatement(id));
    TL_ASSERT(scope == 0 || tl_admin_modes_symbol(&modes, scope) != NULL);
    *seq = next_seq++;
    return (next_seq % 61) == 0 ? -1 : 0; /* now and then the log fails */
}

static int fz_cancel(void *ctx, uint32_t scope, const uint8_t id[16]) {
    (void)ctx;
    (void)id;
    TL_ASSERT(scope == 0 || tl_admin_modes_symbol(&modes, scope) != NULL);
    return 0;
}

static void init_once(void) {
    if (srv != NULL)
        return;
    uint8_t k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (uint8_t)i;
    tl_admin_key_init(&key, k);
    TL_ASSERT(tl_admin_modes_init(&modes, 8) == TL_ADMIN_OK);
    TL_ASSERT(tl_admin_modes_add_symbol(&modes, 1, "BTCUSDT", 7) == TL_ADMIN_OK);
    TL_ASSERT(tl_admin_modes_add_symbol(&modes, 2, "ETHUSDT", 7) == TL_ADMIN_OK);
    static char path[108];
    snprintf(path, sizeof path, "/tmp/tally-fuzz-admin-%d.sock", (int)getpid());
    tl_admin_server_config cfg = {
        .socket_path = path,
        .remembered_ids = 64, /* small: eviction is exercised */
        .sidecar_key = &key,
        .operator_key = &key,
        .modes = &modes,
        .ops = {.write_mode_change = fz_write, .cancel_all = fz_cancel},
    };
    enum tl_admin_err err;
    srv = tl_admin_server_create(&cfg, &err);
    TL_ASSERT(srv != NULL);
    /* The socket file is not needed: only handle_line is driven. */
    unlink(path);
}

static void check_flatjson(const char *s, size_t n) {
    tl_fj_member m[TL_ADMIN_MEMBERS_MAX];
    size_t k = 0;
    if (tl_fj_parse(s, n, m, TL_ADMIN_MEMBERS_MAX, &k) != TL_FJ_OK)
        return;
    cJSON *j = cJSON_ParseWithLength(s, n);
    TL_ASSERT(j != NULL && cJSON_IsObject(j));
    const cJSON *c = j->child;
    for (size_t i = 0; i < k; i++, c = c->next) {
        TL_ASSERT(c != NULL);
        if (m[i].type == TL_FJ_STRING) {
            TL_ASSERT(cJSON_IsString(c));
            char val[TL_FJ_INPUT_MAX];
            size_t vn = 0;
            TL_ASSERT(tl_fj_decode(s + m[i].val_off, m[i].val_len, val, sizeof val, &vn));
            TL_ASSERT(tl_utf8_valid((const uint8_t *)val, vn));
            if (memchr(val, 0, vn) == NULL)
                TL_ASSERT(strlen(c->valuestring) == vn && memcmp(c->valuestring, val, vn) == 0);
        } else if (m[i].type == TL_FJ_NUMBER) {
            TL_ASSERT(cJSON_IsNumber(c));
        } else if (m[i].type == TL_FJ_TRUE) {
            TL_ASSERT(cJSON_IsTrue(c));
        } else if (m[i].type == TL_FJ_FALSE) {
            TL_ASSERT(cJSON_IsFalse(c));
        } else {
            TL_ASSERT(cJSON_IsNull(c));
        }
    }
    TL_ASSERT(c == NULL);
    cJSON_Delete(j);
}

static void check_request(const char *line, size_t n) {
    tl_admin_request req;
    tl_admin_line_info info;
    enum tl_admin_err e = tl_admin_request_parse(line, n, &req, &info);
    TL_ASSERT((unsigned)e < TL_ADMIN_ERR_COUNT);
    if (e != TL_ADMIN_OK) {
        TL_ASSERT(tl_admin_err_wire(e) == TL_ADMIN_WIRE_BAD_REQUEST);
        return;
    }
    (void)tl_admin_request_verify_mac(line, &info, &key);
    uint8_t d[TL_ADMIN_DIGEST_BYTES];
    tl_admin_request_digest(line, &info, d);
    char built[TL_ADMIN_LINE_MAX];
    size_t bn = 0;
    TL_ASSERT(tl_admin_request_build(&req, &key, built, sizeof built, &bn) == TL_ADMIN_OK);
    tl_admin_request again;
    tl_admin_line_info info2;
    TL_ASSERT(tl_admin_request_parse(built, bn - 1, &again, &info2) == TL_ADMIN_OK);
    TL_ASSERT(tl_admin_request_verify_mac(built, &info2, &key) == TL_ADMIN_OK);
    if (req.cmd == TL_ADMIN_CMD_PING) { /* a ping's reason and ticket are left out */
        req.reason_len = 0;
        req.ticket_len = 0;
        memset(req.reason, 0, sizeof req.reason);
        memset(req.ticket, 0, sizeof req.ticket);
    }
    TL_ASSERT(memcmp(&req, &again, sizeof req) == 0);
}

static void check_reply(const char *line, size_t n) {
    tl_admin_reply r;
    if (tl_admin_reply_parse(line, n, &r) != TL_ADMIN_OK)
        return;
    if (!r.ok && r.error == TL_ADMIN_WIRE_UNKNOWN)
        return; /* not ours to build */
    char buf[TL_ADMIN_REPLY_MAX];
    size_t bn = tl_admin_reply_build(&r, buf, sizeof buf);
    TL_ASSERT(bn > 0);
    tl_admin_reply back;
    TL_ASSERT(tl_admin_reply_parse(buf, bn - 1, &back) == TL_ADMIN_OK);
    TL_ASSERT(back.ok == r.ok && back.id_present == r.id_present);
    TL_ASSERT(!r.id_present || memcmp(back.id, r.id, 16) == 0);
    if (!r.ok) {
        TL_ASSERT(back.error == r.error);
        return;
    }
    TL_ASSERT(back.cmd == r.cmd && back.duplicate == r.duplicate);
    TL_ASSERT(back.has_applied_seq == r.has_applied_seq && back.applied_seq == r.applied_seq);
}

static void check_server(const char *body, size_t n) {
    /* body + ,"mac":"<hmac>"} : the mac is right whatever the body is. */
    static char line[TL_ADMIN_LINE_MAX + 128];
    if (n + TL_ADMIN_MAC_SUFFIX > sizeof line)
        return;
    memcpy(line, body, n);
    uint8_t mac[32];
    tl_admin_key_mac2(&key, body, n, "}", 1, mac);
    static const char hx[] = "0123456789abcdef";
    size_t o = n;
    memcpy(line + o, ",\"mac\":\"", 8);
    o += 8;
    for (int i = 0; i < 32; i++) {
        line[o++] = hx[mac[i] >> 4];
        line[o++] = hx[mac[i] & 15];
    }
    line[o++] = '"';
    line[o++] = '}';
    tl_admin_request req;
    tl_admin_line_info info;
    uint64_t now = 0;
    if (tl_admin_request_parse(line, o, &req, &info) == TL_ADMIN_OK)
        now = req.issued_ns + (req.fence & 3u) * 3000000000ull; /* 6 and 9 s: stale */
    char reply[TL_ADMIN_REPLY_MAX];
    size_t rn = tl_admin_server_handle_line(srv, line, o, now, 0, reply, sizeof reply);
    TL_ASSERT(rn > 0 && reply[rn - 1] == '\n');
    tl_admin_reply r;
    TL_ASSERT(tl_admin_reply_parse(reply, rn - 1, &r) == TL_ADMIN_OK);
    /* Effective modes stay in range whatever happened. */
    for (uint32_t s = 0; s <= 2; s++)
        TL_ASSERT((unsigned)tl_admin_modes_effective(&modes, s) < TL_MODE_COUNT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_once();
    const char *s = (const char *)data;
    check_flatjson(s, size);
    check_request(s, size);
    check_reply(s, size);
    check_server(s, size);
    return 0;
}
