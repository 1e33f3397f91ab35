/* test_admin_proto.c: the admin protocol's lines (admin/admin_proto.h), the
 * flat JSON scanner, the HMAC keys and key files, the mode table and the
 * applied-id table. The spec vector must verify and be rebuilt byte for
 * byte; every bad_request variant must be named; the scanner must never
 * accept what cJSON rejects; the HMAC must equal OpenSSL's HMAC(). */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin_key.h"
#include "admin/admin_proto.h"
#include "admin/applied_ids.h"
#include "admin/flatjson.h"
#include "admin/modes.h"
#include "core/assert.h"

#define ID_HEX "0123456789abcdef0123456789abcdef"

static tl_admin_key vector_key;

static void load_vector_key(void) {
    size_t n;
    uint8_t *k = tu_read_file(tu_shared("spec/vectors/peer.key"), &n);
    assert_int_equal(n, 32);
    tl_admin_key_init(&vector_key, k);
    free(k);
}

static void hex_of(const uint8_t *b, size_t n, char *out) {
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* body is the line up to (not including) ,"mac":... ; out gets the signed
 * line without '\n'. */
static size_t sign_body(const tl_admin_key *k, const char *body, size_t body_len, char *out,
                        size_t cap) {
    uint8_t mac[32];
    char hex[65];
    tl_admin_key_mac2(k, body, body_len, "}", 1, mac);
    hex_of(mac, 32, hex);
    assert_true(body_len + 74 < cap);
    memcpy(out, body, body_len);
    int n = snprintf(out + body_len, cap - body_len, ",\"mac\":\"%s\"}", hex);
    assert_int_equal(n, 74);
    return body_len + 74;
}

static enum tl_admin_err parse_signed(const char *body, tl_admin_request *req,
                                      tl_admin_line_info *info) {
    char line[8192];
    size_t n = sign_body(&vector_key, body, strlen(body), line, sizeof line);
    return tl_admin_request_parse(line, n, req, info);
}

/* ---- the vector ---- */

static void test_vector_verifies(void **state) {
    (void)state;
    size_t n;
    char *line = (char *)tu_read_file(tu_shared("spec/vectors/admin-request.jsonl"), &n);
    assert_true(n > 1 && line[n - 1] == '\n');
    tl_admin_request req;
    tl_admin_line_info info;
    assert_int_equal(tl_admin_request_parse(line, n - 1, &req, &info), TL_ADMIN_OK);
    assert_int_equal(tl_admin_request_verify_mac(line, &info, &vector_key), TL_ADMIN_OK);
    assert_true(info.id_readable);
    assert_int_equal(req.cmd, TL_ADMIN_CMD_SET_SYMBOL_MODE);
    assert_int_equal(req.key, TL_ADMIN_KEY_SIDECAR);
    assert_int_equal(req.mode, TL_MODE_HARD_HALT);
    assert_false(req.has_from_mode);
    assert_string_equal(req.symbol, "BTCUSDT");
    assert_string_equal(req.reason, "split_brain:fork seq=8812");
    assert_string_equal(req.ticket, "INC-20261121-0007");
    assert_true(req.issued_ns == 1795000000000000000ull);
    assert_true(req.fence == 7);
    char hex[33] = {0};
    tl_admin_format_id(req.id, hex);
    assert_string_equal(hex, ID_HEX);
    /* The mac is over the line minus 74 bytes, then "}". */
    assert_int_equal(info.signed_len, n - 1 - 74);

    /* Another key, and a flipped signed byte, both fail. */
    uint8_t other[32];
    memset(other, 7, sizeof other);
    tl_admin_key k2;
    tl_admin_key_init(&k2, other);
    assert_int_equal(tl_admin_request_verify_mac(line, &info, &k2), TL_ADMIN_ERR_BAD_MAC);
    /* Any single hex digit of the mac changed: bad_mac (the whole mac is
     * compared, wherever the difference is). */
    char *flip = strdup(line);
    for (size_t i = 0; i < 64; i++) {
        memcpy(flip, line, n);
        char *d = flip + n - 1 - 74 + 8 + i;
        *d = *d == '0' ? '1' : '0';
        assert_int_equal(tl_admin_request_parse(flip, n - 1, &req, &info), TL_ADMIN_OK);
        assert_int_equal(tl_admin_request_verify_mac(flip, &info, &vector_key),
                         TL_ADMIN_ERR_BAD_MAC);
    }
    free(flip);
    char *copy = strdup(line);
    char *p = strstr(copy, "fork");
    p[0] = 'F';
    assert_int_equal(tl_admin_request_parse(copy, n - 1, &req, &info), TL_ADMIN_OK);
    assert_int_equal(tl_admin_request_verify_mac(copy, &info, &vector_key), TL_ADMIN_ERR_BAD_MAC);
    free(copy);
    free(line);
}

static void test_vector_rebuilt(void **state) {
    (void)state;
    size_t n;
    char *want = (char *)tu_read_file(tu_shared("spec/vectors/admin-request.jsonl"), &n);
    /* From the fields alone. */
    tl_admin_request req = {0};
    assert_true(tl_admin_parse_id(ID_HEX, 32, req.id));
    req.cmd = TL_ADMIN_CMD_SET_SYMBOL_MODE;
    req.key = TL_ADMIN_KEY_SIDECAR;
    req.mode = TL_MODE_HARD_HALT;
    assert_true(tl_admin_request_set_symbol(&req, "BTCUSDT", 7));
    assert_true(tl_admin_request_set_reason(&req, "split_brain:fork seq=8812", 25));
    assert_true(tl_admin_request_set_ticket(&req, "INC-20261121-0007", 17));
    req.issued_ns = 1795000000000000000ull;
    req.fence = 7;
    char buf[TL_ADMIN_LINE_MAX];
    size_t len = 0;
    assert_int_equal(tl_admin_request_build(&req, &vector_key, buf, sizeof buf, &len), TL_ADMIN_OK);
    assert_int_equal(len, n);
    assert_memory_equal(buf, want, n);

    /* And from its own parse. */
    tl_admin_request back;
    tl_admin_line_info info;
    assert_int_equal(tl_admin_request_parse(want, n - 1, &back, &info), TL_ADMIN_OK);
    assert_int_equal(tl_admin_request_build(&back, &vector_key, buf, sizeof buf, &len),
                     TL_ADMIN_OK);
    assert_int_equal(len, n);
    assert_memory_equal(buf, want, n);

    /* Every cap below the line's length is refused, without overrun. */
    for (size_t cap = 0; cap < n; cap++) {
        char *small = malloc(cap + 1);
        assert_int_equal(tl_admin_request_build(&req, &vector_key, small, cap, &len),
                         TL_ADMIN_ERR_BUFFER_TOO_SMALL);
        free(small);
    }
    free(want);
}

/* ---- HMAC ---- */

static void test_hmac_matches_openssl(void **state) {
    (void)state;
    srand(12345);
    uint8_t msg[5000];
    for (int iter = 0; iter < 400; iter++) {
        uint8_t kb[32];
        for (int i = 0; i < 32; i++)
            kb[i] = (uint8_t)rand();
        size_t n = (size_t)rand() % sizeof msg;
        for (size_t i = 0; i < n; i++)
            msg[i] = (uint8_t)rand();
        size_t split = n ? (size_t)rand() % (n + 1) : 0;
        tl_admin_key k;
        tl_admin_key_init(&k, kb);
        uint8_t ours[32], ref[32];
        unsigned ref_len = 0;
        tl_admin_key_mac2(&k, msg, split, msg + split, n - split, ours);
        assert_non_null(HMAC(EVP_sha256(), kb, 32, msg, n, ref, &ref_len));
        assert_int_equal(ref_len, 32);
        assert_memory_equal(ours, ref, 32);
    }
}

/* ---- request building ---- */

static tl_admin_request base_request(enum tl_admin_cmd cmd) {
    tl_admin_request req = {0};
    assert_true(tl_admin_parse_id("fedcba98765432100123456789abcdef", 32, req.id));
    req.cmd = cmd;
    req.key = TL_ADMIN_KEY_SIDECAR;
    req.mode = TL_MODE_CANCEL_ONLY;
    tl_admin_request_set_symbol(&req, "ETHUSDT", 7);
    tl_admin_request_set_reason(&req, "ledger", 6);
    tl_admin_request_set_ticket(&req, "T-1", 3);
    req.issued_ns = 1;
    req.fence = 0;
    return req;
}

static void build_and_reparse(const tl_admin_request *req, const char *expect) {
    char buf[TL_ADMIN_LINE_MAX];
    size_t len = 0;
    assert_int_equal(tl_admin_request_build(req, &vector_key, buf, sizeof buf, &len), TL_ADMIN_OK);
    assert_true(len >= 76 && buf[len - 1] == '\n');
    if (expect != NULL) {
        /* Everything before the mac is exactly expect. */
        assert_int_equal(len - 75, strlen(expect));
        assert_memory_equal(buf, expect, len - 75);
    }
    tl_admin_request back;
    tl_admin_line_info info;
    assert_int_equal(tl_admin_request_parse(buf, len - 1, &back, &info), TL_ADMIN_OK);
    assert_int_equal(tl_admin_request_verify_mac(buf, &info, &vector_key), TL_ADMIN_OK);
    assert_memory_equal(back.id, req->id, 16);
    assert_int_equal(back.cmd, req->cmd);
    assert_int_equal(back.key, req->key);
    assert_true(back.issued_ns == req->issued_ns && back.fence == req->fence);
    if (req->cmd == TL_ADMIN_CMD_SET_SYMBOL_MODE || req->cmd == TL_ADMIN_CMD_CANCEL_ALL) {
        assert_int_equal(back.symbol_len, req->symbol_len);
        assert_memory_equal(back.symbol, req->symbol, req->symbol_len);
    }
    if (req->cmd == TL_ADMIN_CMD_SET_SYMBOL_MODE) {
        assert_int_equal(back.mode, req->mode);
        assert_int_equal(back.has_from_mode, req->has_from_mode);
        if (req->has_from_mode)
            assert_int_equal(back.from_mode, req->from_mode);
    }
    if (req->cmd == TL_ADMIN_CMD_WITHDRAWALS_HALT)
        assert_int_equal(back.on, req->on);
    if (req->cmd != TL_ADMIN_CMD_PING) {
        assert_int_equal(back.reason_len, req->reason_len);
        assert_memory_equal(back.reason, req->reason, req->reason_len);
        assert_int_equal(back.ticket_len, req->ticket_len);
        assert_memory_equal(back.ticket, req->ticket, req->ticket_len);
    }
}

static void test_build_every_command(void **state) {
    (void)state;
    tl_admin_request r = base_request(TL_ADMIN_CMD_SET_SYMBOL_MODE);
    build_and_reparse(&r, "{\"v\":1,\"id\":\"fedcba98765432100123456789abcdef\","
                          "\"cmd\":\"set_symbol_mode\",\"symbol\":\"ETHUSDT\","
                          "\"mode\":\"CANCEL_ONLY\",\"reason\":\"ledger\",\"ticket\":\"T-1\","
                          "\"issued_ns\":\"1\",\"fence\":\"0\",\"key\":\"sidecar\"");
    r.key = TL_ADMIN_KEY_OPERATOR;
    r.has_from_mode = true;
    r.from_mode = TL_MODE_HARD_HALT;
    r.mode = TL_MODE_SOFT_HALT;
    r.issued_ns = UINT64_MAX;
    r.fence = 18446744073709551615ull;
    build_and_reparse(&r, "{\"v\":1,\"id\":\"fedcba98765432100123456789abcdef\","
                          "\"cmd\":\"set_symbol_mode\",\"symbol\":\"ETHUSDT\","
                          "\"mode\":\"SOFT_HALT\",\"from_mode\":\"HARD_HALT\","
                          "\"reason\":\"ledger\",\"ticket\":\"T-1\","
                          "\"issued_ns\":\"18446744073709551615\","
                          "\"fence\":\"18446744073709551615\",\"key\":\"operator\"");
    r = base_request(TL_ADMIN_CMD_CANCEL_ALL);
    tl_admin_request_set_symbol(&r, "*", 1);
    build_and_reparse(&r, "{\"v\":1,\"id\":\"fedcba98765432100123456789abcdef\","
                          "\"cmd\":\"cancel_all\",\"symbol\":\"*\",\"reason\":\"ledger\","
                          "\"ticket\":\"T-1\",\"issued_ns\":\"1\",\"fence\":\"0\","
                          "\"key\":\"sidecar\"");
    r = base_request(TL_ADMIN_CMD_WITHDRAWALS_HALT);
    r.on = true;
    build_and_reparse(&r, "{\"v\":1,\"id\":\"fedcba98765432100123456789abcdef\","
                          "\"cmd\":\"withdrawals_halt\",\"on\":true,\"reason\":\"ledger\","
                          "\"ticket\":\"T-1\",\"issued_ns\":\"1\",\"fence\":\"0\","
                          "\"key\":\"sidecar\"");
    r.on = false;
    build_and_reparse(&r, NULL);
    r = base_request(TL_ADMIN_CMD_PING);
    build_and_reparse(&r, "{\"v\":1,\"id\":\"fedcba98765432100123456789abcdef\","
                          "\"cmd\":\"ping\",\"issued_ns\":\"1\",\"fence\":\"0\","
                          "\"key\":\"sidecar\"");
}

static void test_build_escaping(void **state) {
    (void)state;
    tl_admin_request r = base_request(TL_ADMIN_CMD_SET_SYMBOL_MODE);
    /* Every control byte, quotes, backslashes, slash, DEL and multi-byte
     * UTF-8 (2, 3 and 4 bytes) survive the trip. */
    char reason[256];
    size_t n = 0;
    for (int c = 1; c < 0x20; c++)
        reason[n++] = (char)c;
    const char *rest = "\"\\/\x7f"
                       "\xc3\xa9"
                       "\xe2\x82\xac"
                       "\xf0\x9f\x98\x80"
                       "end";
    memcpy(reason + n, rest, strlen(rest));
    n += strlen(rest);
    assert_true(tl_admin_request_set_reason(&r, reason, n));
    assert_true(tl_admin_request_set_ticket(&r, "\"\\", 2));
    build_and_reparse(&r, NULL);
    char buf[TL_ADMIN_LINE_MAX];
    size_t len;
    assert_int_equal(tl_admin_request_build(&r, &vector_key, buf, sizeof buf, &len), TL_ADMIN_OK);
    assert_null(memchr(buf, '\r', len));
    assert_ptr_equal(memchr(buf, '\n', len), buf + len - 1);
    assert_non_null(strstr(buf, "\\u0001"));
    assert_non_null(strstr(buf, "\\n"));
    assert_non_null(strstr(buf, "\\r"));
    assert_non_null(strstr(buf, "\\\"\\\\/"));
    /* The longest possible line fits: 256 control bytes and 64 too. */
    memset(reason, 1, 256);
    assert_true(tl_admin_request_set_reason(&r, reason, 256));
    assert_true(tl_admin_request_set_ticket(&r, reason, 64));
    build_and_reparse(&r, NULL);
}

static void test_build_refuses_bad_fields(void **state) {
    (void)state;
    char buf[TL_ADMIN_LINE_MAX];
    size_t len;
    tl_admin_request r = base_request(TL_ADMIN_CMD_SET_SYMBOL_MODE);
    memset(r.id, 0, 16);
    assert_int_equal(tl_admin_request_build(&r, &vector_key, buf, sizeof buf, &len),
                     TL_ADMIN_ERR_RESERVED_ID);
    memset(r.id, 0xff, 16);
    assert_int_equal(tl_admin_request_build(&r, &vector_key, buf, sizeof buf, &len),
                     TL_ADMIN_ERR_RESERVED_ID);
    r = base_request(TL_ADMIN_CMD_SET_SYMBOL_MODE);
    tl_admin_request_set_symbol(&r, "BTC/USDT", 8);
    assert_int_equal(tl_admin_request_build(&r, &vector_key, buf, sizeof buf, &len),
                     TL_ADMIN_ERR_BAD_SYMBOL);
    tl_admin_request_set_symbol(&r, "", 0);
    assert_int_equal(tl_admin_request_build(&r, &vector_key, buf, sizeof buf, &len),
                     TL_ADMIN_ERR_BAD_SYMBOL);
    r = base_request(TL_ADMIN_CMD_SET_SYMBOL_MODE);
    r.mode = TL_MODE_COUNT;
    assert_int_equal(tl_admin_request_build(&r, &vector_key, buf, sizeof buf, &len),
                     TL_ADMIN_ERR_UNKNOWN_MODE);
    r = base_request(TL_ADMIN_CMD_SET_SYMBOL_MODE);
    tl_admin_request_set_reason(&r, "\xff", 1);
    assert_int_equal(tl_admin_request_build(&r, &vector_key, buf, sizeof buf, &len),
                     TL_ADMIN_ERR_BAD_REASON);
    tl_admin_request_set_reason(&r, "a\0b", 3);
    assert_int_equal(tl_admin_request_build(&r, &vector_key, buf, sizeof buf, &len),
                     TL_ADMIN_ERR_BAD_REASON);
    r = base_request(TL_ADMIN_CMD_SET_SYMBOL_MODE);
    tl_admin_request_set_ticket(&r, "\xed\xa0\x80", 3); /* an encoded surrogate */
    assert_int_equal(tl_admin_request_build(&r, &vector_key, buf, sizeof buf, &len),
                     TL_ADMIN_ERR_BAD_TICKET);
    r = base_request(TL_ADMIN_CMD_NONE);
    assert_int_equal(tl_admin_request_build(&r, &vector_key, buf, sizeof buf, &len),
                     TL_ADMIN_ERR_UNKNOWN_CMD);
    r = base_request(TL_ADMIN_CMD_PING);
    r.key = TL_ADMIN_KEY_NONE;
    assert_int_equal(tl_admin_request_build(&r, &vector_key, buf, sizeof buf, &len),
                     TL_ADMIN_ERR_UNKNOWN_KEY);
    char big[300];
    memset(big, 'a', sizeof big);
    assert_false(tl_admin_request_set_reason(&r, big, 257));
    assert_true(tl_admin_request_set_reason(&r, big, 256));
    assert_false(tl_admin_request_set_ticket(&r, big, 65));
    assert_false(tl_admin_request_set_symbol(&r, big, 25));
}

/* ---- every bad_request ---- */

#define PRE  "{\"v\":1,\"id\":\"" ID_HEX "\""
#define SSM  ",\"cmd\":\"set_symbol_mode\",\"symbol\":\"BTCUSDT\",\"mode\":\"HARD_HALT\""
#define RT   ",\"reason\":\"r\",\"ticket\":\"t\""
#define TAIL ",\"issued_ns\":\"5\",\"fence\":\"7\",\"key\":\"sidecar\""

typedef struct bad_case {
    const char *body; /* signed with a good mac */
    enum tl_admin_err want;
    bool id_readable;
} bad_case;

static const bad_case bad_cases[] = {
    {PRE SSM RT TAIL, TL_ADMIN_OK, true},
    /* JSON shape */
    {"", TL_ADMIN_ERR_NOT_JSON, false},
    {"[1,2", TL_ADMIN_ERR_NOT_JSON, false},
    {"hello", TL_ADMIN_ERR_NOT_JSON, false},
    {PRE SSM RT ",\"issued_ns\":\"5\",\"fence\":\"7\",\"key\":\"sidecar\",", TL_ADMIN_ERR_NOT_JSON,
     false},
    {PRE SSM ",\"reason\":\"\xff\",\"ticket\":\"t\"" TAIL, TL_ADMIN_ERR_BAD_UTF8, false},
    {PRE SSM ",\"reason\":\"\xc0\xaf\",\"ticket\":\"t\"" TAIL, TL_ADMIN_ERR_BAD_UTF8, false},
    {PRE SSM ",\"reason\":\"\\ud800\",\"ticket\":\"t\"" TAIL, TL_ADMIN_ERR_BAD_UTF8, false},
    {PRE SSM ",\"reason\":\"\\udc00x\",\"ticket\":\"t\"" TAIL, TL_ADMIN_ERR_BAD_UTF8, false},
    {PRE SSM ",\"reason\":\"\\q\",\"ticket\":\"t\"" TAIL, TL_ADMIN_ERR_NOT_JSON, false},
    {PRE SSM ",\"reason\":\"\t\",\"ticket\":\"t\"" TAIL, TL_ADMIN_ERR_NOT_JSON, false},
    {PRE SSM ",\"reason\":{\"a\":1},\"ticket\":\"t\"" TAIL, TL_ADMIN_ERR_WRONG_TYPE, false},
    {PRE SSM ",\"reason\":[],\"ticket\":\"t\"" TAIL, TL_ADMIN_ERR_WRONG_TYPE, false},
    /* members */
    {PRE SSM RT ",\"extra\":1" TAIL, TL_ADMIN_ERR_UNKNOWN_MEMBER, true},
    {PRE SSM ",\"reason\":\"r\",\"reason\":\"r\",\"ticket\":\"t\"" TAIL,
     TL_ADMIN_ERR_DUPLICATE_MEMBER, true},
    {PRE SSM ",\"ticket\":\"t\",\"reason\":\"r\"" TAIL, TL_ADMIN_ERR_MEMBER_ORDER, true},
    {"{\"id\":\"" ID_HEX "\",\"v\":1" SSM RT TAIL, TL_ADMIN_ERR_MEMBER_ORDER, true},
    {"{\"v\":1,\"id\":\"" ID_HEX "\",\"id\":\"" ID_HEX "\"" SSM RT TAIL,
     TL_ADMIN_ERR_DUPLICATE_MEMBER, false},
    {"{\"id\":\"" ID_HEX "\"" SSM RT TAIL, TL_ADMIN_ERR_MISSING_MEMBER, true},
    {PRE ",\"cmd\":\"set_symbol_mode\",\"symbol\":\"BTCUSDT\"" RT TAIL, TL_ADMIN_ERR_MISSING_MEMBER,
     true},
    {PRE SSM ",\"ticket\":\"t\"" TAIL, TL_ADMIN_ERR_MISSING_MEMBER, true},
    {PRE SSM ",\"reason\":\"r\"" TAIL, TL_ADMIN_ERR_MISSING_MEMBER, true},
    {PRE SSM RT ",\"fence\":\"7\",\"key\":\"sidecar\"", TL_ADMIN_ERR_MISSING_MEMBER, true},
    {PRE SSM RT ",\"issued_ns\":\"5\",\"key\":\"sidecar\"", TL_ADMIN_ERR_MISSING_MEMBER, true},
    {PRE SSM RT ",\"issued_ns\":\"5\",\"fence\":\"7\"", TL_ADMIN_ERR_MISSING_MEMBER, true},
    {PRE ",\"cmd\":\"cancel_all\"" RT TAIL, TL_ADMIN_ERR_MISSING_MEMBER, true},
    {PRE ",\"cmd\":\"withdrawals_halt\"" RT TAIL, TL_ADMIN_ERR_MISSING_MEMBER, true},
    {PRE ",\"cmd\":\"cancel_all\",\"symbol\":\"*\",\"mode\":\"HARD_HALT\"" RT TAIL,
     TL_ADMIN_ERR_UNEXPECTED_MEMBER, true},
    {PRE ",\"cmd\":\"ping\",\"symbol\":\"*\"" TAIL, TL_ADMIN_ERR_UNEXPECTED_MEMBER, true},
    {PRE ",\"cmd\":\"withdrawals_halt\",\"symbol\":\"*\",\"on\":true" RT TAIL,
     TL_ADMIN_ERR_UNEXPECTED_MEMBER, true},
    {PRE SSM ",\"on\":true" RT TAIL, TL_ADMIN_ERR_UNEXPECTED_MEMBER, true},
    {PRE ",\"cmd\":\"cancel_all\",\"symbol\":\"*\",\"from_mode\":\"NORMAL\"" RT TAIL,
     TL_ADMIN_ERR_UNEXPECTED_MEMBER, true},
    /* ping may carry a reason and a ticket */
    {PRE ",\"cmd\":\"ping\"" RT TAIL, TL_ADMIN_OK, true},
    {PRE ",\"cmd\":\"ping\"" TAIL, TL_ADMIN_OK, true},
    /* v */
    {"{\"v\":2,\"id\":\"" ID_HEX "\"" SSM RT TAIL, TL_ADMIN_ERR_BAD_VERSION, true},
    {"{\"v\":1.0,\"id\":\"" ID_HEX "\"" SSM RT TAIL, TL_ADMIN_ERR_BAD_VERSION, true},
    {"{\"v\":1e0,\"id\":\"" ID_HEX "\"" SSM RT TAIL, TL_ADMIN_ERR_BAD_VERSION, true},
    {"{\"v\":-1,\"id\":\"" ID_HEX "\"" SSM RT TAIL, TL_ADMIN_ERR_BAD_VERSION, true},
    {"{\"v\":\"1\",\"id\":\"" ID_HEX "\"" SSM RT TAIL, TL_ADMIN_ERR_WRONG_TYPE, true},
    {"{\"v\":true,\"id\":\"" ID_HEX "\"" SSM RT TAIL, TL_ADMIN_ERR_WRONG_TYPE, true},
    {"{\"v\":null,\"id\":\"" ID_HEX "\"" SSM RT TAIL, TL_ADMIN_ERR_WRONG_TYPE, true},
    {"{\"v\":01,\"id\":\"" ID_HEX "\"" SSM RT TAIL, TL_ADMIN_ERR_NOT_JSON, false},
    /* id */
    {"{\"v\":1,\"id\":\"0123456789ABCDEF0123456789abcdef\"" SSM RT TAIL, TL_ADMIN_ERR_BAD_ID,
     false},
    {"{\"v\":1,\"id\":\"0123456789abcdef0123456789abcde\"" SSM RT TAIL, TL_ADMIN_ERR_BAD_ID, false},
    {"{\"v\":1,\"id\":\"0123456789abcdef0123456789abcdef0\"" SSM RT TAIL, TL_ADMIN_ERR_BAD_ID,
     false},
    {"{\"v\":1,\"id\":\"\\u0030123456789abcdef0123456789abcdef\"" SSM RT TAIL, TL_ADMIN_ERR_BAD_ID,
     false},
    {"{\"v\":1,\"id\":\"\"" SSM RT TAIL, TL_ADMIN_ERR_BAD_ID, false},
    {"{\"v\":1,\"id\":12" SSM RT TAIL, TL_ADMIN_ERR_WRONG_TYPE, false},
    {"{\"v\":1,\"id\":\"00000000000000000000000000000000\"" SSM RT TAIL, TL_ADMIN_ERR_RESERVED_ID,
     true},
    {"{\"v\":1,\"id\":\"ffffffffffffffffffffffffffffffff\"" SSM RT TAIL, TL_ADMIN_ERR_RESERVED_ID,
     true},
    /* cmd, symbol, mode, on */
    {PRE ",\"cmd\":\"halt\"" RT TAIL, TL_ADMIN_ERR_UNKNOWN_CMD, true},
    {PRE ",\"cmd\":\"PING\"" TAIL, TL_ADMIN_ERR_UNKNOWN_CMD, true},
    {PRE ",\"cmd\":1" TAIL, TL_ADMIN_ERR_WRONG_TYPE, true},
    {PRE ",\"cmd\":\"set_symbol_mode\",\"symbol\":\"BTC/USDT\",\"mode\":\"HARD_HALT\"" RT TAIL,
     TL_ADMIN_ERR_BAD_SYMBOL, true},
    {PRE ",\"cmd\":\"set_symbol_mode\",\"symbol\":\"\",\"mode\":\"HARD_HALT\"" RT TAIL,
     TL_ADMIN_ERR_BAD_SYMBOL, true},
    {PRE ",\"cmd\":\"set_symbol_mode\",\"symbol\":\"ABCDEFGHIJKLMNOPQRSTUVWXY\",\"mode\":"
         "\"HARD_HALT\"" RT TAIL,
     TL_ADMIN_ERR_BAD_SYMBOL, true},
    {PRE ",\"cmd\":\"set_symbol_mode\",\"symbol\":\"ABCDEFGHIJKLMNOPQRSTUVWX\",\"mode\":"
         "\"HARD_HALT\"" RT TAIL,
     TL_ADMIN_OK, true},
    {PRE ",\"cmd\":\"set_symbol_mode\",\"symbol\":\"BTC\\u0000X\",\"mode\":\"HARD_HALT\"" RT TAIL,
     TL_ADMIN_ERR_BAD_SYMBOL, true},
    {PRE ",\"cmd\":\"set_symbol_mode\",\"symbol\":\"**\",\"mode\":\"HARD_HALT\"" RT TAIL,
     TL_ADMIN_ERR_BAD_SYMBOL, true},
    {PRE ",\"cmd\":\"set_symbol_mode\",\"symbol\":\"BTCUSDT\",\"mode\":\"halt\"" RT TAIL,
     TL_ADMIN_ERR_UNKNOWN_MODE, true},
    {PRE ",\"cmd\":\"set_symbol_mode\",\"symbol\":\"BTCUSDT\",\"mode\":\"hard_halt\"" RT TAIL,
     TL_ADMIN_ERR_UNKNOWN_MODE, true},
    {PRE ",\"cmd\":\"set_symbol_mode\",\"symbol\":\"BTCUSDT\",\"mode\":3" RT TAIL,
     TL_ADMIN_ERR_WRONG_TYPE, true},
    {PRE SSM ",\"from_mode\":\"LOW\"" RT TAIL, TL_ADMIN_ERR_UNKNOWN_MODE, true},
    {PRE ",\"cmd\":\"withdrawals_halt\",\"on\":\"true\"" RT TAIL, TL_ADMIN_ERR_WRONG_TYPE, true},
    {PRE ",\"cmd\":\"withdrawals_halt\",\"on\":1" RT TAIL, TL_ADMIN_ERR_WRONG_TYPE, true},
    /* reason, ticket */
    {PRE SSM ",\"reason\":\"a\\u0000b\",\"ticket\":\"t\"" TAIL, TL_ADMIN_ERR_BAD_REASON, true},
    {PRE SSM ",\"reason\":7,\"ticket\":\"t\"" TAIL, TL_ADMIN_ERR_WRONG_TYPE, true},
    {PRE SSM ",\"reason\":\"r\",\"ticket\":\"\\u0000\"" TAIL, TL_ADMIN_ERR_BAD_TICKET, true},
    {PRE SSM ",\"reason\":\"r\",\"ticket\":false" TAIL, TL_ADMIN_ERR_WRONG_TYPE, true},
    /* issued_ns, fence */
    {PRE SSM RT ",\"issued_ns\":\"+5\",\"fence\":\"7\",\"key\":\"sidecar\"",
     TL_ADMIN_ERR_BAD_NUMBER, true},
    {PRE SSM RT ",\"issued_ns\":\"-5\",\"fence\":\"7\",\"key\":\"sidecar\"",
     TL_ADMIN_ERR_BAD_NUMBER, true},
    {PRE SSM RT ",\"issued_ns\":\"05\",\"fence\":\"7\",\"key\":\"sidecar\"",
     TL_ADMIN_ERR_BAD_NUMBER, true},
    {PRE SSM RT ",\"issued_ns\":\"\",\"fence\":\"7\",\"key\":\"sidecar\"", TL_ADMIN_ERR_BAD_NUMBER,
     true},
    {PRE SSM RT ",\"issued_ns\":\" 5\",\"fence\":\"7\",\"key\":\"sidecar\"",
     TL_ADMIN_ERR_BAD_NUMBER, true},
    {PRE SSM RT ",\"issued_ns\":\"5e3\",\"fence\":\"7\",\"key\":\"sidecar\"",
     TL_ADMIN_ERR_BAD_NUMBER, true},
    {PRE SSM RT ",\"issued_ns\":\"\\u0035\",\"fence\":\"7\",\"key\":\"sidecar\"",
     TL_ADMIN_ERR_BAD_NUMBER, true},
    {PRE SSM RT ",\"issued_ns\":\"18446744073709551616\",\"fence\":\"7\",\"key\":\"sidecar\"",
     TL_ADMIN_ERR_BAD_NUMBER, true},
    {PRE SSM RT ",\"issued_ns\":\"99999999999999999999\",\"fence\":\"7\",\"key\":\"sidecar\"",
     TL_ADMIN_ERR_BAD_NUMBER, true},
    {PRE SSM RT ",\"issued_ns\":\"184467440737095516150\",\"fence\":\"7\",\"key\":\"sidecar\"",
     TL_ADMIN_ERR_BAD_NUMBER, true},
    {PRE SSM RT ",\"issued_ns\":\"18446744073709551615\",\"fence\":\"0\",\"key\":\"sidecar\"",
     TL_ADMIN_OK, true},
    {PRE SSM RT ",\"issued_ns\":5,\"fence\":\"7\",\"key\":\"sidecar\"", TL_ADMIN_ERR_WRONG_TYPE,
     true},
    {PRE SSM RT ",\"issued_ns\":\"5\",\"fence\":\"0x7\",\"key\":\"sidecar\"",
     TL_ADMIN_ERR_BAD_NUMBER, true},
    {PRE SSM RT ",\"issued_ns\":\"5\",\"fence\":7,\"key\":\"sidecar\"", TL_ADMIN_ERR_WRONG_TYPE,
     true},
    /* key */
    {PRE SSM RT ",\"issued_ns\":\"5\",\"fence\":\"7\",\"key\":\"root\"", TL_ADMIN_ERR_UNKNOWN_KEY,
     true},
    {PRE SSM RT ",\"issued_ns\":\"5\",\"fence\":\"7\",\"key\":\"Sidecar\"",
     TL_ADMIN_ERR_UNKNOWN_KEY, true},
    {PRE SSM RT ",\"issued_ns\":\"5\",\"fence\":\"7\",\"key\":\"operator\"", TL_ADMIN_OK, true},
};

static void test_bad_request_variants(void **state) {
    (void)state;
    for (size_t i = 0; i < TL_ARRAY_LEN(bad_cases); i++) {
        tl_admin_request req;
        tl_admin_line_info info;
        enum tl_admin_err e = parse_signed(bad_cases[i].body, &req, &info);
        if (e != bad_cases[i].want || info.id_readable != bad_cases[i].id_readable)
            fail_msg("case %zu: %s: got %s (id_readable %d), want %s (%d)", i, bad_cases[i].body,
                     tl_admin_err_name(e), info.id_readable, tl_admin_err_name(bad_cases[i].want),
                     bad_cases[i].id_readable);
        assert_int_equal(tl_admin_err_wire(e),
                         e == TL_ADMIN_OK ? TL_ADMIN_WIRE_NONE : TL_ADMIN_WIRE_BAD_REQUEST);
    }
}

static void test_bad_request_framing(void **state) {
    (void)state;
    tl_admin_request req;
    tl_admin_line_info info;
    char line[8192];
    const char *body = PRE SSM RT TAIL;
    size_t n = sign_body(&vector_key, body, strlen(body), line, sizeof line);

    /* A \r anywhere, even signed and inside a string. */
    char crb[512];
    snprintf(crb, sizeof crb, "%s", PRE SSM ",\"reason\":\"a\rb\",\"ticket\":\"t\"" TAIL);
    char crl[1024];
    size_t crn = sign_body(&vector_key, crb, strlen(crb), crl, sizeof crl);
    assert_int_equal(tl_admin_request_parse(crl, crn, &req, &info), TL_ADMIN_ERR_CARRIAGE_RETURN);
    char tmp[8192];
    memcpy(tmp, line, n);
    tmp[n] = '\r';
    assert_int_equal(tl_admin_request_parse(tmp, n + 1, &req, &info), TL_ADMIN_ERR_CARRIAGE_RETURN);
    memcpy(tmp, line, n);
    tmp[n] = '\n';
    assert_int_equal(tl_admin_request_parse(tmp, n + 1, &req, &info),
                     TL_ADMIN_ERR_EMBEDDED_NEWLINE);

    /* The suffix, byte by byte. */
    /* {text before the hex, text after it} */
    static const char *const bad_suffixes[][2] = {
        {", \"mac\":\"", "\"}"},      /* space before "mac" */
        {",\"mac\":\"", "\" }"},      /* space before the brace */
        {",\"mac\":\"", "\"} "},      /* trailing space */
        {",\"mac\": \"", "\"}"},      /* space after the colon */
        {",\"m\\u0061c\":\"", "\"}"}, /* an escaped key */
    };
    uint8_t mac[32];
    char hex[65];
    tl_admin_key_mac2(&vector_key, body, strlen(body), "}", 1, mac);
    hex_of(mac, 32, hex);
    for (size_t i = 0; i < TL_ARRAY_LEN(bad_suffixes); i++) {
        int k = snprintf(tmp, sizeof tmp, "%s%s%s%s", body, bad_suffixes[i][0], hex,
                         bad_suffixes[i][1]);
        enum tl_admin_err e = tl_admin_request_parse(tmp, (size_t)k, &req, &info);
        if (e != TL_ADMIN_ERR_BAD_SUFFIX)
            fail_msg("suffix case %zu: %s", i, tl_admin_err_name(e));
        assert_true(info.id_readable);
    }
    /* Uppercase or short mac hex: the member itself is malformed. */
    for (int i = 0; hex[i]; i++)
        if (hex[i] >= 'a')
            hex[i] = (char)(hex[i] - 'a' + 'A');
    int k = snprintf(tmp, sizeof tmp, "%s,\"mac\":\"%s\"}", body, hex);
    assert_int_equal(tl_admin_request_parse(tmp, (size_t)k, &req, &info),
                     TL_ADMIN_ERR_BAD_MAC_FORMAT);
    k = snprintf(tmp, sizeof tmp, "%s,\"mac\":\"abcd\"}", body);
    assert_int_equal(tl_admin_request_parse(tmp, (size_t)k, &req, &info),
                     TL_ADMIN_ERR_BAD_MAC_FORMAT);
    k = snprintf(tmp, sizeof tmp, "%s,\"mac\":7}", body);
    assert_int_equal(tl_admin_request_parse(tmp, (size_t)k, &req, &info), TL_ADMIN_ERR_WRONG_TYPE);
    k = snprintf(tmp, sizeof tmp, "%s}", body);
    assert_int_equal(tl_admin_request_parse(tmp, (size_t)k, &req, &info),
                     TL_ADMIN_ERR_MISSING_MEMBER);
    /* A mac that appears twice. */
    k = snprintf(tmp, sizeof tmp, "%s,\"mac\":\"%s\",\"mac\":\"%s\"}", body, hex, hex);
    assert_int_equal(tl_admin_request_parse(tmp, (size_t)k, &req, &info),
                     TL_ADMIN_ERR_DUPLICATE_MEMBER);

    /* Length: 4095 bytes before the '\n' is allowed (leading JSON whitespace
     * pads the line; it is signed like everything else), 4096 is not. */
    size_t pad = TL_ADMIN_LINE_MAX - 1 - n;
    char *big = malloc(TL_ADMIN_LINE_MAX + 16);
    memset(big, ' ', pad);
    memcpy(big + pad, body, strlen(body));
    size_t bn = sign_body(&vector_key, big, pad + strlen(body), tmp, sizeof tmp);
    assert_int_equal(bn, TL_ADMIN_LINE_MAX - 1);
    assert_int_equal(tl_admin_request_parse(tmp, bn, &req, &info), TL_ADMIN_OK);
    assert_int_equal(tl_admin_request_verify_mac(tmp, &info, &vector_key), TL_ADMIN_OK);
    memset(big, ' ', pad + 1);
    memcpy(big + pad + 1, body, strlen(body));
    bn = sign_body(&vector_key, big, pad + 1 + strlen(body), tmp, sizeof tmp);
    assert_int_equal(bn, TL_ADMIN_LINE_MAX);
    assert_int_equal(tl_admin_request_parse(tmp, bn, &req, &info), TL_ADMIN_ERR_LINE_TOO_LONG);
    assert_false(info.id_readable);
    free(big);

    /* Too many members. */
    char many[2048] = PRE SSM RT TAIL;
    for (int i = 0; i < 8; i++)
        strcat(many, ",\"x\":1");
    assert_int_equal(parse_signed(many, &req, &info), TL_ADMIN_ERR_TOO_MANY_MEMBERS);

    /* Reason and ticket lengths, counted in bytes once decoded. */
    char body2[4096];
    char r256[257], r257[258];
    memset(r256, 'x', 256);
    r256[256] = 0;
    memset(r257, 'x', 257);
    r257[257] = 0;
    snprintf(body2, sizeof body2, PRE SSM ",\"reason\":\"%s\",\"ticket\":\"t\"" TAIL, r256);
    assert_int_equal(parse_signed(body2, &req, &info), TL_ADMIN_OK);
    assert_int_equal(req.reason_len, 256);
    snprintf(body2, sizeof body2, PRE SSM ",\"reason\":\"%s\",\"ticket\":\"t\"" TAIL, r257);
    assert_int_equal(parse_signed(body2, &req, &info), TL_ADMIN_ERR_BAD_REASON);
    /* 128 two-byte characters: 256 bytes, fine; 129: 258 bytes, too long. */
    char u[600] = "";
    for (int i = 0; i < 128; i++)
        strcat(u, "\xc3\xa9");
    snprintf(body2, sizeof body2, PRE SSM ",\"reason\":\"%s\",\"ticket\":\"t\"" TAIL, u);
    assert_int_equal(parse_signed(body2, &req, &info), TL_ADMIN_OK);
    strcat(u, "\\u00e9");
    snprintf(body2, sizeof body2, PRE SSM ",\"reason\":\"%s\",\"ticket\":\"t\"" TAIL, u);
    assert_int_equal(parse_signed(body2, &req, &info), TL_ADMIN_ERR_BAD_REASON);
    /* Escapes shrink when decoded: 256 "\n" escapes are 512 raw bytes. */
    char esc[1100] = "";
    for (int i = 0; i < 256; i++)
        strcat(esc, "\\n");
    snprintf(body2, sizeof body2, PRE SSM ",\"reason\":\"%s\",\"ticket\":\"t\"" TAIL, esc);
    assert_int_equal(parse_signed(body2, &req, &info), TL_ADMIN_OK);
    assert_int_equal(req.reason_len, 256);
    char t64[65], t65[66];
    memset(t64, 't', 64);
    t64[64] = 0;
    memset(t65, 't', 65);
    t65[65] = 0;
    snprintf(body2, sizeof body2, PRE SSM ",\"reason\":\"r\",\"ticket\":\"%s\"" TAIL, t64);
    assert_int_equal(parse_signed(body2, &req, &info), TL_ADMIN_OK);
    snprintf(body2, sizeof body2, PRE SSM ",\"reason\":\"r\",\"ticket\":\"%s\"" TAIL, t65);
    assert_int_equal(parse_signed(body2, &req, &info), TL_ADMIN_ERR_BAD_TICKET);
    /* Escaped member names are the same names (JSON equality). */
    assert_int_equal(
        parse_signed(PRE SSM ",\"r\\u0065ason\":\"r\",\"ticket\":\"t\"" TAIL, &req, &info),
        TL_ADMIN_OK);
    assert_int_equal(parse_signed(PRE ",\"cmd\":\"set_symbol_mode\",\"symbol\":\"BTC\\u0055SDT\","
                                      "\"mode\":\"HARD_\\u0048ALT\"" RT TAIL,
                                  &req, &info),
                     TL_ADMIN_OK);
    assert_string_equal(req.symbol, "BTCUSDT");
    assert_int_equal(req.mode, TL_MODE_HARD_HALT);
}

static void test_digest_ignores_issued_ns_only(void **state) {
    (void)state;
    char l1[1024], l2[1024], l3[1024];
    tl_admin_request req;
    tl_admin_line_info i1, i2, i3;
    const char *b1 = PRE SSM RT ",\"issued_ns\":\"5\",\"fence\":\"7\",\"key\":\"sidecar\"";
    const char *b2 =
        PRE SSM RT ",\"issued_ns\":\"17950000000\",\"fence\":\"7\",\"key\":\"sidecar\"";
    const char *b3 = PRE SSM RT ",\"issued_ns\":\"5\",\"fence\":\"8\",\"key\":\"sidecar\"";
    size_t n1 = sign_body(&vector_key, b1, strlen(b1), l1, sizeof l1);
    size_t n2 = sign_body(&vector_key, b2, strlen(b2), l2, sizeof l2);
    size_t n3 = sign_body(&vector_key, b3, strlen(b3), l3, sizeof l3);
    assert_int_equal(tl_admin_request_parse(l1, n1, &req, &i1), TL_ADMIN_OK);
    assert_int_equal(tl_admin_request_parse(l2, n2, &req, &i2), TL_ADMIN_OK);
    assert_int_equal(tl_admin_request_parse(l3, n3, &req, &i3), TL_ADMIN_OK);
    uint8_t d1[16], d2[16], d3[16];
    tl_admin_request_digest(l1, &i1, d1);
    tl_admin_request_digest(l2, &i2, d2);
    tl_admin_request_digest(l3, &i3, d3);
    assert_memory_equal(d1, d2, 16);
    assert_memory_not_equal(d1, d3, 16);
}

/* ---- replies ---- */

static void reply_roundtrip(const tl_admin_reply *r, const char *want) {
    char buf[TL_ADMIN_REPLY_MAX];
    size_t n = tl_admin_reply_build(r, buf, sizeof buf);
    assert_true(n > 0);
    if (want != NULL) {
        assert_int_equal(n, strlen(want));
        assert_memory_equal(buf, want, n);
    }
    tl_admin_reply back;
    assert_int_equal(tl_admin_reply_parse(buf, n - 1, &back), TL_ADMIN_OK);
    assert_int_equal(back.ok, r->ok);
    assert_int_equal(back.id_present, r->id_present);
    if (r->id_present)
        assert_memory_equal(back.id, r->id, 16);
    if (!r->ok) {
        assert_int_equal(back.error, r->error);
        return;
    }
    assert_int_equal(back.cmd, r->cmd);
    assert_int_equal(back.duplicate, r->duplicate);
    if (r->cmd != TL_ADMIN_CMD_PING) {
        assert_true(back.has_applied_seq);
        assert_true(back.applied_seq == r->applied_seq);
    }
    if (r->cmd == TL_ADMIN_CMD_SET_SYMBOL_MODE || r->cmd == TL_ADMIN_CMD_CANCEL_ALL) {
        assert_string_equal(back.symbol, r->symbol);
        assert_int_equal(back.mode, r->mode);
    }
    if (r->cmd == TL_ADMIN_CMD_WITHDRAWALS_HALT)
        assert_int_equal(back.on, r->on);
}

static void test_reply_shapes(void **state) {
    (void)state;
    tl_admin_reply r = {0};
    assert_true(tl_admin_parse_id(ID_HEX, 32, r.id));
    r.id_present = true;
    r.ok = true;
    r.cmd = TL_ADMIN_CMD_SET_SYMBOL_MODE;
    strcpy(r.symbol, "BTCUSDT");
    r.symbol_len = 7;
    r.mode = TL_MODE_HARD_HALT;
    r.applied_seq = 88213;
    /* engine-admin.md's example, byte for byte. */
    reply_roundtrip(&r, "{\"v\":1,\"id\":\"" ID_HEX "\",\"ok\":true,\"cmd\":\"set_symbol_mode\","
                        "\"symbol\":\"BTCUSDT\",\"mode\":\"HARD_HALT\",\"applied_seq\":\"88213\","
                        "\"duplicate\":false}\n");
    r.duplicate = true;
    r.applied_seq = UINT64_MAX;
    reply_roundtrip(&r, NULL);
    r.cmd = TL_ADMIN_CMD_CANCEL_ALL;
    strcpy(r.symbol, "*");
    r.symbol_len = 1;
    reply_roundtrip(&r, NULL);
    r.cmd = TL_ADMIN_CMD_WITHDRAWALS_HALT;
    r.on = true;
    r.applied_seq = 0;
    reply_roundtrip(&r, "{\"v\":1,\"id\":\"" ID_HEX "\",\"ok\":true,\"cmd\":\"withdrawals_halt\","
                        "\"on\":true,\"applied_seq\":\"0\",\"duplicate\":true}\n");
    r.cmd = TL_ADMIN_CMD_PING;
    r.duplicate = false;
    reply_roundtrip(&r, "{\"v\":1,\"id\":\"" ID_HEX "\",\"ok\":true,\"cmd\":\"ping\","
                        "\"duplicate\":false}\n");
    memset(&r, 0, sizeof r);
    assert_true(tl_admin_parse_id(ID_HEX, 32, r.id));
    r.id_present = true;
    for (int w = TL_ADMIN_WIRE_BAD_REQUEST; w <= TL_ADMIN_WIRE_ENGINE_ERROR; w++) {
        r.error = (enum tl_admin_wire)w;
        reply_roundtrip(&r, NULL);
    }
    r.error = TL_ADMIN_WIRE_BAD_MAC;
    reply_roundtrip(&r, "{\"v\":1,\"id\":\"" ID_HEX "\",\"ok\":false,\"error\":\"bad_mac\"}\n");
    r.id_present = false;
    r.error = TL_ADMIN_WIRE_BAD_REQUEST;
    reply_roundtrip(&r, "{\"v\":1,\"id\":\"\",\"ok\":false,\"error\":\"bad_request\"}\n");
    /* Too small a buffer. */
    char tiny[10];
    assert_int_equal(tl_admin_reply_build(&r, tiny, sizeof tiny), 0);
}

static void test_reply_parse_rejects(void **state) {
    (void)state;
    static const char *bad[] = {
        "",
        "{}",
        "{\"v\":2,\"id\":\"\",\"ok\":false,\"error\":\"bad_mac\"}",
        "{\"v\":1,\"id\":\"ABC\",\"ok\":false,\"error\":\"bad_mac\"}",
        "{\"v\":1,\"id\":\"\",\"ok\":\"false\",\"error\":\"bad_mac\"}",
        "{\"v\":1,\"id\":\"\",\"ok\":false}",
        "{\"v\":1,\"id\":\"\",\"ok\":false,\"error\":\"bad_mac\",\"error\":\"bad_mac\"}",
        "{\"v\":1,\"id\":\"\",\"ok\":true,\"cmd\":\"ping\"}",
        "{\"v\":1,\"id\":\"\",\"ok\":true,\"cmd\":\"nope\",\"duplicate\":false}",
        "{\"v\":1,\"id\":\"\",\"ok\":true,\"cmd\":\"set_symbol_mode\",\"symbol\":\"A\","
        "\"applied_seq\":\"1\",\"duplicate\":false}",
        "{\"v\":1,\"id\":\"\",\"ok\":true,\"cmd\":\"set_symbol_mode\",\"symbol\":\"A\","
        "\"mode\":\"NORMAL\",\"applied_seq\":\"+1\",\"duplicate\":false}",
        "{\"v\":1,\"id\":\"\",\"ok\":true,\"cmd\":\"set_symbol_mode\",\"symbol\":\"A\","
        "\"mode\":\"NORMAL\",\"applied_seq\":1,\"duplicate\":false}",
        "{\"v\":1,\"id\":\"\",\"ok\":true,\"cmd\":\"set_symbol_mode\",\"symbol\":\"A/B\","
        "\"mode\":\"NORMAL\",\"applied_seq\":\"1\",\"duplicate\":false}",
        "{\"v\":1,\"id\":\"\",\"ok\":true,\"cmd\":\"withdrawals_halt\",\"applied_seq\":\"1\","
        "\"duplicate\":false}",
        "{\"v\":1,\"id\":\"\",\"ok\":true,\"cmd\":\"cancel_all\",\"symbol\":\"A\","
        "\"duplicate\":false}",
    };
    for (size_t i = 0; i < TL_ARRAY_LEN(bad); i++) {
        tl_admin_reply r;
        if (tl_admin_reply_parse(bad[i], strlen(bad[i]), &r) != TL_ADMIN_ERR_BAD_REPLY)
            fail_msg("reply case %zu accepted: %s", i, bad[i]);
    }
    /* Unknown members are ignored; an unknown error name is kept as such. */
    const char *ok1 = "{\"v\":1,\"id\":\"\",\"ok\":false,\"error\":\"rate_limited\",\"detail\":1}";
    tl_admin_reply r;
    assert_int_equal(tl_admin_reply_parse(ok1, strlen(ok1), &r), TL_ADMIN_OK);
    assert_int_equal(r.error, TL_ADMIN_WIRE_UNKNOWN);
    assert_false(tl_admin_wire_definitive(r.error));
    const char *ok2 = "{\"v\":1,\"id\":\"\",\"ok\":true,\"cmd\":\"cancel_all\",\"symbol\":\"A\","
                      "\"applied_seq\":\"9\",\"duplicate\":false,\"x\":[1,2]}";
    /* A nested value anywhere makes it not a flat object. */
    assert_int_equal(tl_admin_reply_parse(ok2, strlen(ok2), &r), TL_ADMIN_ERR_BAD_REPLY);
    const char *ok3 = "{\"v\":1,\"id\":\"\",\"ok\":true,\"cmd\":\"cancel_all\",\"symbol\":\"A\","
                      "\"applied_seq\":\"9\",\"duplicate\":false}";
    assert_int_equal(tl_admin_reply_parse(ok3, strlen(ok3), &r), TL_ADMIN_OK);
    assert_true(r.applied_seq == 9);
}

static void test_wire_errors(void **state) {
    (void)state;
    /* Every detailed name is distinct, snake_case, and maps consistently. */
    for (int i = 0; i < TL_ADMIN_ERR_COUNT; i++) {
        const char *a = tl_admin_err_name((enum tl_admin_err)i);
        assert_non_null(a);
        assert_true(strlen(a) > 0);
        for (const char *p = a; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || *p == '_' || (*p >= '0' && *p <= '9'));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(a, tl_admin_err_name((enum tl_admin_err)j));
    }
    assert_int_equal(tl_admin_err_wire(TL_ADMIN_ERR_LINE_TOO_LONG), TL_ADMIN_WIRE_BAD_REQUEST);
    assert_int_equal(tl_admin_err_wire(TL_ADMIN_ERR_ID_REUSED), TL_ADMIN_WIRE_BAD_REQUEST);
    assert_int_equal(tl_admin_err_wire(TL_ADMIN_ERR_BAD_MAC), TL_ADMIN_WIRE_BAD_MAC);
    assert_int_equal(tl_admin_err_wire(TL_ADMIN_ERR_KEY_NOT_CONFIGURED), TL_ADMIN_WIRE_BAD_MAC);
    assert_int_equal(tl_admin_err_wire(TL_ADMIN_ERR_STALE_COMMAND), TL_ADMIN_WIRE_STALE_COMMAND);
    assert_int_equal(tl_admin_err_wire(TL_ADMIN_ERR_FORBIDDEN), TL_ADMIN_WIRE_FORBIDDEN);
    assert_int_equal(tl_admin_err_wire(TL_ADMIN_ERR_FROM_MODE_REQUIRED),
                     TL_ADMIN_WIRE_PRECONDITION_FAILED);
    assert_int_equal(tl_admin_err_wire(TL_ADMIN_ERR_UNKNOWN_SYMBOL), TL_ADMIN_WIRE_UNKNOWN_SYMBOL);
    assert_int_equal(tl_admin_err_wire(TL_ADMIN_ERR_ENGINE), TL_ADMIN_WIRE_ENGINE_ERROR);
    assert_int_equal(tl_admin_err_wire(TL_ADMIN_ERR_KEY_PERMISSIONS), TL_ADMIN_WIRE_NONE);
    assert_int_equal(tl_admin_err_wire(TL_ADMIN_OK), TL_ADMIN_WIRE_NONE);
    for (int w = TL_ADMIN_WIRE_BAD_REQUEST; w <= TL_ADMIN_WIRE_ENGINE_ERROR; w++) {
        const char *name = tl_admin_wire_name((enum tl_admin_wire)w);
        assert_int_equal(tl_admin_wire_parse(name, strlen(name)), w);
    }
    assert_true(tl_admin_wire_definitive(TL_ADMIN_WIRE_FORBIDDEN));
    assert_true(tl_admin_wire_definitive(TL_ADMIN_WIRE_UNKNOWN_SYMBOL));
    assert_true(tl_admin_wire_definitive(TL_ADMIN_WIRE_BAD_REQUEST));
    assert_true(tl_admin_wire_definitive(TL_ADMIN_WIRE_PRECONDITION_FAILED));
    assert_false(tl_admin_wire_definitive(TL_ADMIN_WIRE_BAD_MAC));
    assert_false(tl_admin_wire_definitive(TL_ADMIN_WIRE_STALE_COMMAND));
    assert_false(tl_admin_wire_definitive(TL_ADMIN_WIRE_ENGINE_ERROR));
}

/* ---- numbers ---- */

static void test_u64(void **state) {
    (void)state;
    uint64_t v = 0;
    assert_true(tl_admin_parse_u64("0", 1, &v) && v == 0);
    assert_true(tl_admin_parse_u64("18446744073709551615", 20, &v) && v == UINT64_MAX);
    assert_true(tl_admin_parse_u64("18446744073709551614", 20, &v) && v == UINT64_MAX - 1);
    assert_false(tl_admin_parse_u64("18446744073709551616", 20, &v));
    assert_false(tl_admin_parse_u64("28446744073709551615", 20, &v));
    assert_false(tl_admin_parse_u64("100000000000000000000", 21, &v));
    assert_false(tl_admin_parse_u64("", 0, &v));
    assert_false(tl_admin_parse_u64("+1", 2, &v));
    assert_false(tl_admin_parse_u64("-1", 2, &v));
    assert_false(tl_admin_parse_u64("00", 2, &v));
    assert_false(tl_admin_parse_u64("1 ", 2, &v));
    assert_false(tl_admin_parse_u64("1.0", 3, &v));
    /* format <-> parse over a spread of values */
    uint64_t x = 1;
    for (int i = 0; i < 2000; i++) {
        char d[20];
        size_t n = tl_admin_format_u64(x, d);
        uint64_t back = 0;
        assert_true(tl_admin_parse_u64(d, n, &back));
        assert_true(back == x);
        char ref[32];
        snprintf(ref, sizeof ref, "%llu", (unsigned long long)x);
        assert_int_equal(n, strlen(ref));
        assert_memory_equal(d, ref, n);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
    }
}

/* ---- the flat JSON scanner against cJSON ---- */

static bool fj_agrees_with_cjson(const char *s, size_t n) {
    tl_fj_member m[32];
    size_t k = 0;
    enum tl_fj_err e = tl_fj_parse(s, n, m, 32, &k);
    if (e != TL_FJ_OK)
        return true; /* we may be stricter than cJSON */
    cJSON *j = cJSON_ParseWithLength(s, n);
    if (j == NULL || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return false;
    }
    const cJSON *c = j->child;
    for (size_t i = 0; i < k; i++, c = c->next) {
        if (c == NULL)
            goto bad;
        char key[4096];
        size_t kn = 0;
        assert_true(tl_fj_decode(s + m[i].key_off, m[i].key_len, key, sizeof key, &kn));
        if (memchr(key, 0, kn) == NULL && (strlen(c->string) != kn || memcmp(c->string, key, kn)))
            goto bad;
        if (m[i].type == TL_FJ_STRING) {
            char val[4096];
            size_t vn = 0;
            assert_true(tl_fj_decode(s + m[i].val_off, m[i].val_len, val, sizeof val, &vn));
            if (!cJSON_IsString(c))
                goto bad;
            if (memchr(val, 0, vn) == NULL &&
                (strlen(c->valuestring) != vn || memcmp(c->valuestring, val, vn)))
                goto bad;
            assert_true(tl_utf8_valid((const uint8_t *)val, vn));
        } else if (m[i].type == TL_FJ_NUMBER && !cJSON_IsNumber(c)) {
            goto bad;
        } else if (m[i].type == TL_FJ_TRUE && !cJSON_IsTrue(c)) {
            goto bad;
        } else if (m[i].type == TL_FJ_FALSE && !cJSON_IsFalse(c)) {
            goto bad;
        } else if (m[i].type == TL_FJ_NULL && !cJSON_IsNull(c)) {
            goto bad;
        }
    }
    if (c != NULL)
        goto bad;
    cJSON_Delete(j);
    return true;
bad:
    cJSON_Delete(j);
    return false;
}

static void test_flatjson(void **state) {
    (void)state;
    static const struct {
        const char *s;
        enum tl_fj_err want;
        size_t members;
    } cases[] = {
        {"{}", TL_FJ_OK, 0},
        {" \t{ } \n", TL_FJ_OK, 0},
        {"{\"a\":1}", TL_FJ_OK, 1},
        {"{\"a\":-0.5e+7,\"b\":true,\"c\":false,\"d\":null,\"e\":\"x\"}", TL_FJ_OK, 5},
        {"{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}", TL_FJ_OK, 1},
        {"{\"a\":1,}", TL_FJ_ERR_SYNTAX, 1},
        {"{,}", TL_FJ_ERR_SYNTAX, 0},
        {"{\"a\" 1}", TL_FJ_ERR_SYNTAX, 0},
        {"{\"a\":1}x", TL_FJ_ERR_SYNTAX, 1},
        {"{\"a\":1}{}", TL_FJ_ERR_SYNTAX, 1},
        {"{\"a\":01}", TL_FJ_ERR_SYNTAX, 0},
        {"{\"a\":1.}", TL_FJ_ERR_SYNTAX, 0},
        {"{\"a\":.5}", TL_FJ_ERR_SYNTAX, 0},
        {"{\"a\":+1}", TL_FJ_ERR_SYNTAX, 0},
        {"{\"a\":1e}", TL_FJ_ERR_SYNTAX, 0},
        {"{\"a\":-}", TL_FJ_ERR_SYNTAX, 0},
        {"{\"a\":tru}", TL_FJ_ERR_SYNTAX, 0},
        {"{\"a\":True}", TL_FJ_ERR_SYNTAX, 0},
        {"{\"a\":\"x}", TL_FJ_ERR_SYNTAX, 0},
        {"{\"a\":{}}", TL_FJ_ERR_NESTED, 0},
        {"{\"a\":[]}", TL_FJ_ERR_NESTED, 0},
        {"[]", TL_FJ_ERR_SYNTAX, 0},
        {"\"a\"", TL_FJ_ERR_SYNTAX, 0},
        {"{\"a\":\"\x01\"}", TL_FJ_ERR_CONTROL_CHAR, 0},
        {"{\"a\":\"\\x\"}", TL_FJ_ERR_BAD_ESCAPE, 0},
        {"{\"a\":\"\\u12\"}", TL_FJ_ERR_BAD_ESCAPE, 0},
        {"{\"a\":\"\\u12g4\"}", TL_FJ_ERR_BAD_ESCAPE, 0},
        {"{\"a\":\"\\ud800\\u12\"}", TL_FJ_ERR_BAD_ESCAPE, 0},
        {"{\"a\":\"\\ud800\"}", TL_FJ_ERR_BAD_UTF8, 0},
        {"{\"a\":\"\\ud800\\ud800\"}", TL_FJ_ERR_BAD_UTF8, 0},
        {"{\"a\":\"\\udfff\"}", TL_FJ_ERR_BAD_UTF8, 0},
        {"{\"a\":\"\xc3\"}", TL_FJ_ERR_BAD_UTF8, 0},
        {"{\"a\":\"\xe0\x80\x80\"}", TL_FJ_ERR_BAD_UTF8, 0},
        {"{\"a\":\"\xed\xa0\x80\"}", TL_FJ_ERR_BAD_UTF8, 0},
        {"{\"a\":\"\xf4\x90\x80\x80\"}", TL_FJ_ERR_BAD_UTF8, 0},
        {"{\"a\":\"\xf0\x9f\x98\x80\xef\xbf\xbf\"}", TL_FJ_OK, 1},
        {"{\"a\":1,\"a\":2}", TL_FJ_OK, 2},
    };
    for (size_t i = 0; i < TL_ARRAY_LEN(cases); i++) {
        tl_fj_member m[8];
        size_t n = 99;
        enum tl_fj_err e = tl_fj_parse(cases[i].s, strlen(cases[i].s), m, 8, &n);
        if (e != cases[i].want || (e == TL_FJ_OK && n != cases[i].members))
            fail_msg("fj case %zu %s: got %s n=%zu", i, cases[i].s, tl_fj_err_name(e), n);
        assert_true(fj_agrees_with_cjson(cases[i].s, strlen(cases[i].s)));
    }
    tl_fj_member m[2];
    size_t n;
    assert_int_equal(tl_fj_parse("{\"a\":1,\"b\":2,\"c\":3}", 19, m, 2, &n), TL_FJ_ERR_TOO_MANY);
    /* Decoding: surrogate pair to 4 bytes; a cap that is too small. */
    const char *raw = "a\\u00e9\\ud83d\\ude00";
    char out[16];
    assert_true(tl_fj_decode(raw, strlen(raw), out, sizeof out, &n));
    assert_int_equal(n, 1 + 2 + 4);
    assert_memory_equal(out, "a\xc3\xa9\xf0\x9f\x98\x80", 7);
    assert_false(tl_fj_decode(raw, strlen(raw), out, 5, &n));
    assert_true(tl_fj_equals("v", 1, false, "v", 1));
    assert_true(tl_fj_equals("\\u0076", 6, true, "v", 1));
    assert_false(tl_fj_equals("vv", 2, false, "v", 1));
}

/* Mutations of valid lines: nothing crashes, the scanner never accepts what
 * cJSON rejects, and every request that parses is rebuilt identically
 * (parse -> build -> parse is a fixed point). */
static void test_mutations(void **state) {
    (void)state;
    const char *seeds[] = {
        PRE SSM RT TAIL,
        PRE ",\"cmd\":\"withdrawals_halt\",\"on\":false,\"reason\":\"\\u00e9\\n\",\"ticket\":"
            "\"t\"" TAIL,
        PRE ",\"cmd\":\"cancel_all\",\"symbol\":\"*\"" RT TAIL,
        PRE ",\"cmd\":\"ping\"" TAIL,
    };
    static const char alphabet[] = "{}[]\":,\\u0123456789abcdefABCDEF tnrfe.-+\x01\x7f\xc3\xa9\xff";
    srand(777);
    for (int iter = 0; iter < 60000; iter++) {
        const char *seed = seeds[iter % TL_ARRAY_LEN(seeds)];
        char body[1024];
        size_t n = strlen(seed);
        memcpy(body, seed, n);
        int edits = 1 + rand() % 3;
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)rand() % (n + 1);
            int op = rand() % 3;
            char ch = alphabet[(size_t)rand() % (sizeof alphabet - 1)];
            if (op == 0 && at < n) {
                body[at] = ch;
            } else if (op == 1 && n + 1 < sizeof body - 100) {
                memmove(body + at + 1, body + at, n - at);
                body[at] = ch;
                n++;
            } else if (at < n) {
                memmove(body + at, body + at + 1, n - at - 1);
                n--;
            }
        }
        char line[2048];
        size_t ln = sign_body(&vector_key, body, n, line, sizeof line);
        assert_true(fj_agrees_with_cjson(line, ln));
        tl_admin_request req;
        tl_admin_line_info info;
        if (tl_admin_request_parse(line, ln, &req, &info) != TL_ADMIN_OK)
            continue;
        assert_int_equal(tl_admin_request_verify_mac(line, &info, &vector_key), TL_ADMIN_OK);
        char built[TL_ADMIN_LINE_MAX];
        size_t bn = 0;
        assert_int_equal(tl_admin_request_build(&req, &vector_key, built, sizeof built, &bn),
                         TL_ADMIN_OK);
        tl_admin_request again;
        tl_admin_line_info info2;
        assert_int_equal(tl_admin_request_parse(built, bn - 1, &again, &info2), TL_ADMIN_OK);
        if (req.cmd == TL_ADMIN_CMD_PING) {
            /* The builder leaves a ping's optional reason and ticket out. */
            tl_admin_request_set_reason(&req, "", 0);
            tl_admin_request_set_ticket(&req, "", 0);
            memset(req.reason, 0, sizeof req.reason);
            memset(req.ticket, 0, sizeof req.ticket);
        }
        assert_memory_equal(&req, &again, sizeof req);
    }
}

/* ---- key files ---- */

static void test_key_files(void **state) {
    (void)state;
    char *dir = tu_tmpdir("adminkey");
    char path[512];
    uint8_t bytes[33];
    for (int i = 0; i < 33; i++)
        bytes[i] = (uint8_t)i;
    tl_admin_key k, ref;
    tl_admin_key_init(&ref, bytes);
    uint8_t m1[32], m2[32];

    snprintf(path, sizeof path, "%s/good", dir);
    tu_write_file(path, bytes, 32);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(tl_admin_key_load(&k, path), TL_ADMIN_OK);
    tl_admin_key_mac2(&k, "abc", 3, NULL, 0, m1);
    tl_admin_key_mac2(&ref, "abc", 3, NULL, 0, m2);
    assert_memory_equal(m1, m2, 32);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(tl_admin_key_load(&k, path), TL_ADMIN_OK);
    const unsigned modes[] = {0644, 0640, 0604, 0620, 0602, 0660, 0601, 0610};
    for (size_t i = 0; i < TL_ARRAY_LEN(modes); i++) {
        assert_int_equal(chmod(path, modes[i]), 0);
        assert_int_equal(tl_admin_key_load(&k, path), TL_ADMIN_ERR_KEY_PERMISSIONS);
    }
    snprintf(path, sizeof path, "%s/short", dir);
    tu_write_file(path, bytes, 31);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(tl_admin_key_load(&k, path), TL_ADMIN_ERR_KEY_SIZE);
    snprintf(path, sizeof path, "%s/long", dir);
    tu_write_file(path, bytes, 33);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(tl_admin_key_load(&k, path), TL_ADMIN_ERR_KEY_SIZE);
    snprintf(path, sizeof path, "%s/empty", dir);
    tu_write_file(path, bytes, 0);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(tl_admin_key_load(&k, path), TL_ADMIN_ERR_KEY_SIZE);
    snprintf(path, sizeof path, "%s/sub", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(tl_admin_key_load(&k, path), TL_ADMIN_ERR_KEY_NOT_REGULAR);
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(tl_admin_key_load(&k, path), TL_ADMIN_ERR_KEY_OPEN);
    /* The spec's vector key, through a symlink (secret mounts use them). */
    snprintf(path, sizeof path, "%s/good", dir);
    assert_int_equal(chmod(path, 0600), 0);
    char link[512];
    snprintf(link, sizeof link, "%s/link", dir);
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(tl_admin_key_load(&k, link), TL_ADMIN_OK);
    tl_admin_key_wipe(&k);
    assert_int_equal(k.loaded, 0);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- the mode table ---- */

static void test_modes(void **state) {
    (void)state;
    tl_admin_modes m;
    assert_int_equal(tl_admin_modes_init(&m, 0), TL_ADMIN_ERR_BAD_CONFIG);
    assert_int_equal(tl_admin_modes_init(&m, 300), TL_ADMIN_OK);
    char name[32];
    for (uint32_t i = 1; i <= 300; i++) {
        int n = snprintf(name, sizeof name, "SYM%u.X", i);
        assert_int_equal(tl_admin_modes_add_symbol(&m, i * 7, name, (size_t)n), TL_ADMIN_OK);
    }
    assert_int_equal(tl_admin_modes_add_symbol(&m, 9999, "MORE", 4), TL_ADMIN_ERR_BAD_CONFIG);
    /* The same symbol again is fine; a clash is not. */
    assert_int_equal(tl_admin_modes_add_symbol(&m, 7, "SYM1.X", 6), TL_ADMIN_OK);
    assert_int_equal(tl_admin_modes_add_symbol(&m, 8, "SYM1.X", 6), TL_ADMIN_ERR_BAD_CONFIG);
    assert_int_equal(tl_admin_modes_add_symbol(&m, 7, "OTHER", 5), TL_ADMIN_ERR_BAD_CONFIG);
    assert_int_equal(tl_admin_modes_add_symbol(&m, 14, "SYM1.X", 6), TL_ADMIN_ERR_BAD_CONFIG);
    assert_int_equal(tl_admin_modes_add_symbol(&m, 0, "ZERO", 4), TL_ADMIN_ERR_BAD_SYMBOL);
    assert_int_equal(tl_admin_modes_add_symbol(&m, 5, "A B", 3), TL_ADMIN_ERR_BAD_SYMBOL);
    assert_int_equal(tl_admin_modes_add_symbol(&m, 5, "*", 1), TL_ADMIN_ERR_BAD_SYMBOL);
    for (uint32_t i = 1; i <= 300; i++) {
        int n = snprintf(name, sizeof name, "SYM%u.X", i);
        uint32_t id = 0;
        assert_true(tl_admin_modes_lookup(&m, name, (size_t)n, &id));
        assert_int_equal(id, i * 7);
        const tl_admin_symbol *s = tl_admin_modes_symbol(&m, id);
        assert_non_null(s);
        assert_memory_equal(s->name, name, (size_t)n);
    }
    uint32_t id;
    assert_false(tl_admin_modes_lookup(&m, "NOPE", 4, &id));
    assert_false(tl_admin_modes_lookup(&m, "", 0, &id));
    assert_null(tl_admin_modes_symbol(&m, 8));
    assert_null(tl_admin_modes_symbol(&m, 0));
    /* Effective = max(global, own). */
    assert_int_equal(tl_admin_modes_effective(&m, 7), TL_MODE_NORMAL);
    assert_true(tl_admin_modes_set(&m, 7, TL_MODE_SOFT_HALT));
    assert_int_equal(tl_admin_modes_effective(&m, 7), TL_MODE_SOFT_HALT);
    assert_int_equal(tl_admin_modes_effective(&m, 14), TL_MODE_NORMAL);
    assert_true(tl_admin_modes_set(&m, 0, TL_MODE_CANCEL_ONLY));
    assert_int_equal(tl_admin_modes_effective(&m, 7), TL_MODE_SOFT_HALT);
    assert_int_equal(tl_admin_modes_effective(&m, 14), TL_MODE_CANCEL_ONLY);
    assert_true(tl_admin_modes_set(&m, 0, TL_MODE_HARD_HALT));
    assert_int_equal(tl_admin_modes_effective(&m, 7), TL_MODE_HARD_HALT);
    assert_int_equal(tl_admin_modes_scope(&m, 7), TL_MODE_SOFT_HALT);
    assert_false(tl_admin_modes_set(&m, 8, TL_MODE_HARD_HALT));
    assert_false(tl_admin_modes_set(&m, 7, (enum tl_mode)4));
    tl_admin_modes_free(&m);
}

/* ---- the applied-id table ---- */

static void test_applied_ids(void **state) {
    (void)state;
    tl_admin_applied_ids t;
    assert_int_equal(tl_admin_applied_ids_init(&t, 0), TL_ADMIN_ERR_BAD_CONFIG);
    const uint32_t cap = 1000;
    assert_int_equal(tl_admin_applied_ids_init(&t, cap), TL_ADMIN_OK);
    /* Insert 5 * cap ids; at every step exactly the last cap are found. */
    for (uint32_t i = 0; i < 5 * cap; i++) {
        tl_admin_applied e = {0};
        /* Simple, structured ids on purpose. */
        memcpy(e.id, &i, sizeof i);
        e.id[15] = 1;
        e.applied_seq = i;
        tl_admin_applied_ids_insert(&t, &e);
        if (i % 97 == 0 || i > 5 * cap - 3) {
            for (uint32_t j = 0; j <= i; j++) {
                uint8_t id[16] = {0};
                memcpy(id, &j, sizeof j);
                id[15] = 1;
                tl_admin_applied *f = tl_admin_applied_ids_find(&t, id);
                if (i - j < cap) {
                    assert_non_null(f);
                    assert_true(f->applied_seq == j);
                } else {
                    assert_null(f);
                }
            }
        }
    }
    assert_int_equal(t.count, cap);
    assert_true(t.evicted == 4 * cap);
    tl_admin_applied_ids_free(&t);
}

int main(void) {
    load_vector_key();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_verifies),
        cmocka_unit_test(test_vector_rebuilt),
        cmocka_unit_test(test_hmac_matches_openssl),
        cmocka_unit_test(test_build_every_command),
        cmocka_unit_test(test_build_escaping),
        cmocka_unit_test(test_build_refuses_bad_fields),
        cmocka_unit_test(test_bad_request_variants),
        cmocka_unit_test(test_bad_request_framing),
        cmocka_unit_test(test_digest_ignores_issued_ns_only),
        cmocka_unit_test(test_reply_shapes),
        cmocka_unit_test(test_reply_parse_rejects),
        cmocka_unit_test(test_wire_errors),
        cmocka_unit_test(test_u64),
        cmocka_unit_test(test_flatjson),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_key_files),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_applied_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
