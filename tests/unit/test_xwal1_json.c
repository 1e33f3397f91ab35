/* test_xwal1_json.c: the xwal1 pieces below the verifier, one by one:
 * segment names, the CRC against zlib, the frame walker's verdicts, both
 * payload decoders (JSON rules, upstream's schema, tally's record rules and
 * their priority) and their agreement on hundreds of thousands of mutated
 * payloads, the symbol table, the binding to tl_rec_view, and the torn-tail
 * clock. Inputs are copied into exact-size heap buffers so that the
 * sanitizer build sees any read past the end. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/assert.h"
#include "core/xwal1.h"
#include "core/xwal1_int.h"

/* ---- helpers ---- */

static uint8_t *exact_copy(const void *p, size_t n) {
    uint8_t *b = malloc(n ? n : 1);
    assert_non_null(b);
    if (n)
        memcpy(b, p, n);
    return b;
}

static void assert_rec_equal(const tl_xwal1_rec *a, const tl_xwal1_rec *b) {
    assert_int_equal(a->err, b->err);
    if (a->err != TL_XWAL1_OK)
        return;
    assert_true(a->seq == b->seq);
    assert_true(a->fence == b->fence);
    assert_true(a->ts_ms == b->ts_ms);
    assert_int_equal(a->mode, b->mode);
    assert_int_equal(a->symbol_len, b->symbol_len);
    assert_string_equal(a->symbol, b->symbol);
    assert_memory_equal(a->state_hash, b->state_hash, TL_STATE_HASH_BYTES);
    assert_int_equal(a->n_events, b->n_events);
    assert_memory_equal(a->event_seqs, b->event_seqs, a->n_events * sizeof(uint64_t));
    assert_int_equal(a->n_trades, b->n_trades);
    for (uint32_t i = 0; i < a->n_trades; i++) {
        assert_true(a->trades[i].seq == b->trades[i].seq);
        assert_true(a->trades[i].price == b->trades[i].price);
        assert_true(a->trades[i].qty == b->trades[i].qty);
    }
    assert_true(a->qty_sum == b->qty_sum);
    assert_true(a->notional_sum == b->notional_sum);
}

/* Decodes with both paths from an exact-size copy; both must say `want`,
 * and agree on every output. Returns the fast path's record. */
static tl_xwal1_rec last;
static void expect_n(const char *payload, size_t n, enum tl_xwal1_err want) {
    uint8_t *b = exact_copy(payload, n);
    static tl_xwal1_rec s;
    enum tl_xwal1_err ef = tl_xwal1_decode(b, n, &last);
    enum tl_xwal1_err es = tl_xwal1_decode_strict(b, n, &s);
    if (ef != want || es != want)
        print_message("payload: %.*s\nfast %s (%s %s @%u), strict %s (%s %s), want %s\n", (int)n,
                      payload, tl_xwal1_err_name(ef), last.err_what, last.err_field, last.err_at,
                      tl_xwal1_err_name(es), s.err_what, s.err_field, tl_xwal1_err_name(want));
    assert_int_equal(ef, want);
    assert_int_equal(es, want);
    assert_rec_equal(&last, &s);
    free(b);
}

static void expect(const char *payload, enum tl_xwal1_err want) {
    expect_n(payload, strlen(payload), want);
}

#define H1 "e9e6027323a5a52cf57ea34aee82d866b74fcceb303a3f40223d40f3812ebb52"
#define ENV(seq, kind)                                                                             \
    "{\"event_id\":\"BTC-KRW-" #seq "-" kind "\",\"event_version\":1,\"symbol\":\"BTC-KRW\","      \
    "\"seq\":" #seq ",\"occurred_at_ms\":1795300796904,\"correlation_id\":\"corr-c1\","            \
    "\"causation_id\":\"c1\"}"

/* A record with one event of every kind that carries data for tally. */
static const char base[] =
    "{\"seq\":4,\"command_id\":\"c1\",\"symbol\":\"BTC-KRW\",\"events\":["
    "{\"OrderAccepted\":{\"envelope\":" ENV(
        1, "OrderAccepted") ",\"order_id\":\"ask-1\","
                            "\"user_id\":\"maker\",\"side\":\"Sell\",\"order_type\":\"Limit\","
                            "\"price\":\"100\","
                            "\"quantity\":\"5\"}},"
                            "{\"TradeExecuted\":{\"envelope\":" ENV(
                                2, "TradeExecuted") ",\"trade_id\":\"t\","
                                                    "\"maker_order_id\":\"a\",\"taker_order_id\":"
                                                    "\"b\",\"buyer_user_id\":\"u\","
                                                    "\"seller_user_id\":\"m\",\"price\":\"101\","
                                                    "\"quantity\":\"7\",\"quote_amount\":\"707\","
                                                    "\"fee_buyer\":\"0\",\"fee_seller\":\"0\"}},"
                                                    "{\"EngineCheckpoint\":{\"envelope\":" ENV(
                                                        4,
                                                        "EngineCheckpoint") ",\"state_hash\":\"" H1
                                                                            "\"}}],"
                                                                            "\"state_hash\":\"" H1
                                                                            "\",\"symbol_mode\":"
                                                                            "\"Normal\",\"fencing_"
                                                                            "token\":1}";

/* base with the first occurrence of `from` replaced by `to` (must exist). */
static char *with(const char *src, const char *from, const char *to) {
    const char *at = strstr(src, from);
    if (at == NULL)
        fail_msg("'%s' not in the payload", from);
    size_t a = (size_t)(at - src), f = strlen(from), t = strlen(to), n = strlen(src);
    char *out = malloc(n - f + t + 1);
    assert_non_null(out);
    memcpy(out, src, a);
    memcpy(out + a, to, t);
    memcpy(out + a + t, at + f, n - a - f + 1);
    return out;
}

static void expect_with(const char *from, const char *to, enum tl_xwal1_err want) {
    char *p = with(base, from, to);
    expect(p, want);
    free(p);
}

/* ---- names ---- */

static void test_segment_names(void **state) {
    (void)state;
    struct {
        const char *name;
        bool ok;
        uint64_t index;
    } cases[] = {
        {"segment-000001.wal", true, 1},
        {"segment-000042.wal", true, 42},
        {"segment-999999.wal", true, 999999},
        {"segment-1000000.wal", true, 1000000},
        {"segment-18446744073709551615.wal", true, UINT64_MAX},
        {"segment-18446744073709551616.wal", false, 0},
        {"segment-000000.wal", false, 0},
        {"segment-0000001.wal", false, 0},
        {"segment-1.wal", false, 0},
        {"segment-00001.wal", false, 0},
        {"segment-00000a.wal", false, 0},
        {"segment-000001.wal.tmp", false, 0},
        {"segment-000001.WAL", false, 0},
        {"Segment-000001.wal", false, 0},
        {"segment--00001.wal", false, 0},
        {"segment-+00001.wal", false, 0},
        {"segment-000001", false, 0},
        {"", false, 0},
        {"00000000000000000001.wal", false, 0},
    };
    for (size_t i = 0; i < TL_ARRAY_LEN(cases); i++) {
        uint64_t idx = 0;
        bool ok = tl_xwal1_segment_name_parse(cases[i].name, strlen(cases[i].name), &idx);
        if (ok != cases[i].ok)
            fail_msg("%s: got %d", cases[i].name, ok);
        if (ok)
            assert_true(idx == cases[i].index);
    }
    char buf[64];
    assert_int_equal(tl_xwal1_segment_name(buf, sizeof buf, 7), 18);
    assert_string_equal(buf, "segment-000007.wal");
    assert_int_equal(tl_xwal1_segment_name(buf, sizeof buf, 1234567), 19);
    assert_string_equal(buf, "segment-1234567.wal");
    assert_int_equal(tl_xwal1_segment_name(buf, sizeof buf, 0), 0);
    assert_int_equal(tl_xwal1_segment_name(buf, 18, 7), 0); /* no room for the NUL */
    for (uint64_t i = 1; i < 3000000; i = i * 3 + 1) {
        size_t n = tl_xwal1_segment_name(buf, sizeof buf, i);
        uint64_t back = 0;
        assert_true(n > 0 && tl_xwal1_segment_name_parse(buf, n, &back) && back == i);
    }
}

/* ---- CRC ---- */

static void test_crc_matches_zlib(void **state) {
    (void)state;
    enum { MAX = 5000 };
    uint8_t *buf = malloc(MAX + 16);
    assert_non_null(buf);
    uint64_t x = 0x243f6a8885a308d3ull;
    for (size_t i = 0; i < MAX + 16; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    print_message("crc32: %s\n", tl_xwal1_crc32_accelerated() ? "pclmul" : "zlib");
    for (size_t n = 0; n <= MAX; n += (n < 300 ? 1 : 7)) {
        for (size_t a = 0; a < 16; a += (n < 300 ? 1 : 5)) {
            uint32_t want = (uint32_t)crc32(0, buf + a, (uInt)n);
            assert_true(tl_xwal1_crc32(0, buf + a, n) == want);
            assert_true(tl_xwal1_crc32_zlib(0, buf + a, n) == want);
            /* continuation from a running crc, as zlib allows */
            size_t h = n / 3;
            uint32_t c = tl_xwal1_crc32(0, buf + a, h);
            assert_true(tl_xwal1_crc32(c, buf + a + h, n - h) == want);
        }
    }
    /* all-zero and all-ones inputs (folding constants show up there) */
    memset(buf, 0, MAX);
    assert_true(tl_xwal1_crc32(0, buf, MAX) == (uint32_t)crc32(0, buf, MAX));
    memset(buf, 0xFF, MAX);
    assert_true(tl_xwal1_crc32(0, buf, MAX) == (uint32_t)crc32(0, buf, MAX));
    free(buf);
}

/* ---- the walker ---- */

static size_t put_frame(uint8_t *dst, const void *payload, uint32_t len) {
    memcpy(dst, &len, 4);
    memcpy(dst + 4, payload, len);
    uint32_t c = (uint32_t)crc32(0, payload, len);
    memcpy(dst + 4 + len, &c, 4);
    return 8u + len;
}

/* Walks seg[0..n) from an exact-size copy; returns the final step. */
static enum tl_xwal1_step walk(const uint8_t *seg, size_t n, bool newest, unsigned *frames,
                               enum tl_xwal1_err *err, size_t *where) {
    uint8_t *b = exact_copy(seg, n);
    tl_xwal1_walker w;
    tl_xwal1_walker_init(&w, b, n, 0, newest);
    *frames = 0;
    enum tl_xwal1_step st;
    tl_xwal1_frame fr;
    while ((st = tl_xwal1_walker_next(&w, &fr, err)) == TL_XWAL1_FRAME) {
        assert_true(fr.payload >= b && fr.payload + fr.payload_len + 4 <= b + n);
        (*frames)++;
    }
    *where = w.last_off;
    /* stopped: it says the same again */
    enum tl_xwal1_err e2;
    assert_int_equal(tl_xwal1_walker_next(&w, &fr, &e2), st);
    assert_int_equal(e2, *err);
    free(b);
    return st;
}

static void expect_walk(const uint8_t *seg, size_t n, bool newest, enum tl_xwal1_step want_step,
                        enum tl_xwal1_err want_err, unsigned want_frames, size_t want_off) {
    unsigned frames;
    enum tl_xwal1_err err;
    size_t where;
    enum tl_xwal1_step st = walk(seg, n, newest, &frames, &err, &where);
    if (st != want_step || err != want_err || frames != want_frames ||
        (want_step != TL_XWAL1_END && where != want_off))
        fail_msg("got %s %s frames %u at %zu; want %s %s %u at %zu", tl_xwal1_step_name(st),
                 tl_xwal1_err_name(err), frames, where, tl_xwal1_step_name(want_step),
                 tl_xwal1_err_name(want_err), want_frames, want_off);
}

static void test_walker_verdicts(void **state) {
    (void)state;
    uint8_t seg[4096];
    const char *p1 = "{\"a\":1}", *p2 = "{\"bb\":2}";
    size_t n = 0;
    memcpy(seg, "XWALv1", 7);
    n = 7;
    size_t f2 = n + put_frame(seg + n, p1, 7);
    n = f2 + put_frame(seg + f2, p2, 8);
    size_t end = n;

    for (int newest = 0; newest < 2; newest++) {
        enum tl_xwal1_step torn = newest ? TL_XWAL1_TENTATIVE : TL_XWAL1_CORRUPT;
        /* clean */
        expect_walk(seg, end, newest, TL_XWAL1_END, TL_XWAL1_OK, 2, end);
        expect_walk(seg, 7, newest, TL_XWAL1_END, TL_XWAL1_OK, 0, 7);
        /* a file being created */
        expect_walk(seg, 0, newest, torn, TL_XWAL1_ERR_SHORT_MAGIC, 0, 0);
        expect_walk(seg, 3, newest, torn, TL_XWAL1_ERR_SHORT_MAGIC, 0, 0);
        /* torn frames: every cut inside the second frame */
        for (size_t cut = f2 + 1; cut < end; cut++) {
            enum tl_xwal1_err e = cut - f2 < 4       ? TL_XWAL1_ERR_SHORT_LENGTH
                                  : cut - f2 < 4 + 8 ? TL_XWAL1_ERR_SHORT_PAYLOAD
                                                     : TL_XWAL1_ERR_SHORT_CRC;
            expect_walk(seg, cut, newest, torn, e, 1, f2);
        }
        /* zero-filled tail, and a zero length followed by data */
        uint8_t z[4096];
        memcpy(z, seg, end);
        memset(z + end, 0, 100);
        expect_walk(z, end + 1, newest, torn, TL_XWAL1_ERR_SHORT_LENGTH, 2, end);
        expect_walk(z, end + 4, newest, torn, TL_XWAL1_ERR_ZERO_FILLED_TAIL, 2, end);
        expect_walk(z, end + 100, newest, torn, TL_XWAL1_ERR_ZERO_FILLED_TAIL, 2, end);
        z[end + 60] = 1;
        expect_walk(z, end + 100, newest, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_ZERO_LENGTH, 2, end);
        /* crc and payload bit flips: corrupt even in the newest segment */
        for (size_t i = f2 + 4; i < end; i++) {
            memcpy(z, seg, end);
            z[i] ^= 0x08;
            expect_walk(z, end, newest, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_CRC_MISMATCH, 1, f2);
        }
        /* bad magic */
        memcpy(z, seg, end);
        z[0] = 'Y';
        expect_walk(z, end, newest, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_BAD_MAGIC, 0, 0);
        expect_walk(z, 3, newest, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_BAD_MAGIC, 0, 0);
        memcpy(z, seg, end);
        z[6] = '1'; /* the NUL of the magic */
        expect_walk(z, end, newest, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_BAD_MAGIC, 0, 0);
        /* an absurd length: too large even if the bytes were there */
        memcpy(z, seg, end);
        uint32_t big = TL_XWAL1_MAX_PAYLOAD_BYTES + 1;
        memcpy(z + f2, &big, 4);
        expect_walk(z, end, newest, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_PAYLOAD_TOO_LARGE, 1, f2);
        big = 0xFFFFFFFFu;
        memcpy(z + f2, &big, 4);
        expect_walk(z, end, newest, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_PAYLOAD_TOO_LARGE, 1, f2);
        /* a torn frame, then a later frame appended after it (a restarted
         * writer): the torn length swallows the new bytes, the crc fails */
        memcpy(z, seg, f2 + 4 + 3); /* frame 2 torn 3 bytes into its payload */
        size_t m = f2 + 4 + 3;
        m += put_frame(z + m, p1, 7);
        expect_walk(z, m, newest, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_CRC_MISMATCH, 1, f2);
    }

    /* resuming a walk at a frame offset */
    uint8_t *b = exact_copy(seg, end);
    tl_xwal1_walker w;
    tl_xwal1_frame fr;
    enum tl_xwal1_err err;
    tl_xwal1_walker_init(&w, b, end, f2, true);
    assert_int_equal(tl_xwal1_walker_next(&w, &fr, &err), TL_XWAL1_FRAME);
    assert_true(fr.offset == f2 && fr.payload_len == 8 && fr.frame_len == 16);
    assert_int_equal(tl_xwal1_walker_next(&w, &fr, &err), TL_XWAL1_END);
    /* resumed past the end of a file that shrank: corrupt, not a crash */
    tl_xwal1_walker_init(&w, b, f2, end, true);
    assert_int_equal(tl_xwal1_walker_next(&w, &fr, &err), TL_XWAL1_CORRUPT);
    assert_int_equal(err, TL_XWAL1_ERR_SHORT_LENGTH);
    free(b);
}

/* Random segments: the walker never reads outside its buffer, always ends,
 * and its frames tile the bytes it accepted. */
static void test_walker_random(void **state) {
    (void)state;
    uint64_t x = 88172645463325252ull;
    uint8_t seg[600];
    for (int iter = 0; iter < 20000; iter++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = x % sizeof seg;
        memcpy(seg, "XWALv1", 7);
        size_t o = 7;
        while (o + 8 < n) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint32_t len = (uint32_t)(x % 40);
            if (o + 8 + len > n)
                break;
            o += put_frame(seg + o, "{\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", len);
        }
        for (size_t i = o; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            seg[i] = (x & 3) ? 0 : (uint8_t)(x >> 8);
        }
        if (x & 0x100 && n > 8) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            seg[x % n] ^= (uint8_t)(1u << (x >> 60 & 7));
        }
        unsigned frames;
        enum tl_xwal1_err err;
        size_t where;
        enum tl_xwal1_step st = walk(seg, n, (x >> 9) & 1, &frames, &err, &where);
        assert_true(st != TL_XWAL1_FRAME);
        assert_true(where <= n);
    }
}

/* ---- decoders: acceptance ---- */

static void test_decode_base(void **state) {
    (void)state;
    expect(base, TL_XWAL1_OK);
    assert_true(last.seq == 4 && last.fence == 1 && last.mode == TL_MODE_NORMAL);
    assert_string_equal(last.symbol, "BTC-KRW");
    assert_int_equal(last.n_events, 3);
    assert_true(last.event_seqs[0] == 1 && last.event_seqs[1] == 2 && last.event_seqs[2] == 4);
    assert_true(last.ts_ms == 1795300796904);
    assert_int_equal(last.n_trades, 1);
    assert_true(last.trades[0].seq == 2 && last.trades[0].price == 101 && last.trades[0].qty == 7);
    assert_true(last.qty_sum == 7 && last.notional_sum == 707);
    assert_int_equal(last.state_hash[0], 0xe9);
    assert_int_equal(last.state_hash[31], 0x52);
}

static void test_decode_json_rules(void **state) {
    (void)state;
    /* whitespace between every token is JSON */
    expect_with("{\"seq\":4,", " \t\r\n{ \"seq\" :\n4 ,\t", TL_XWAL1_OK);
    expect_with("\"fencing_token\":1}", "\"fencing_token\" : 1 } \n ", TL_XWAL1_OK);
    /* ... but nothing else after the value, and no other whitespace */
    expect_with("\"fencing_token\":1}", "\"fencing_token\":1}x", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":1}}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":1}{}", TL_XWAL1_ERR_JSON);
    expect_with("{\"seq\":4,", "{\x0b\"seq\":4,", TL_XWAL1_ERR_JSON);
    expect_with("{\"seq\":4,", "\xef\xbb\xbf{\"seq\":4,", TL_XWAL1_ERR_JSON); /* BOM */
    expect_with("\"fencing_token\":1}", "\"fencing_token\":1,}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":1", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\"1}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "fencing_token:1}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":1 2}", TL_XWAL1_ERR_JSON);
    expect_with("]", ",]", TL_XWAL1_ERR_JSON);
    expect_with("]", "}", TL_XWAL1_ERR_JSON);
    expect("", TL_XWAL1_ERR_JSON);
    expect("   ", TL_XWAL1_ERR_JSON);
    expect_n("\0\0\0\0", 4, TL_XWAL1_ERR_JSON); /* upstream's zero-filled tail */
    /* numbers: RFC 8259 grammar */
    expect_with("\"fencing_token\":1}", "\"fencing_token\":01}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":1.}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":.5}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":+1}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":1e}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":-}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":0x1}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":NaN}", TL_XWAL1_ERR_JSON);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":Infinity}", TL_XWAL1_ERR_JSON);
    /* literals */
    expect_with("\"symbol_mode\":\"Normal\"", "\"symbol_mode\":nul", TL_XWAL1_ERR_JSON);
    expect_with("\"symbol_mode\":\"Normal\"", "\"symbol_mode\":NULL", TL_XWAL1_ERR_JSON);
    expect_with("\"symbol_mode\":\"Normal\"", "\"symbol_mode\":nullx", TL_XWAL1_ERR_JSON);
    /* strings */
    expect_with("\"c1\"", "\"c\x01\"", TL_XWAL1_ERR_JSON); /* raw control */
    expect_with("\"c1\"", "\"c\t\"", TL_XWAL1_ERR_JSON);   /* raw tab */
    expect_with("\"c1\"", "\"c\x7f\"", TL_XWAL1_OK);       /* raw DEL is fine */
    expect_with("\"c1\"", "\"\\u0001\\n\\t\\\"\\\\\\/\\b\\f\\r\"", TL_XWAL1_OK);
    expect_with("\"c1\"", "\"\\x41\"", TL_XWAL1_ERR_JSON);
    expect_with("\"c1\"", "\"\\u00g1\"", TL_XWAL1_ERR_JSON);
    expect_with("\"c1\"", "\"\\u00\"", TL_XWAL1_ERR_JSON);
    expect_with("\"c1\"", "\"\\", TL_XWAL1_ERR_JSON);
    expect_with("\"c1\"", "\"\\ud83d\\ude00\"", TL_XWAL1_OK); /* a pair */
    expect_with("\"c1\"", "\"\\uD83D\\uDE00\"", TL_XWAL1_OK); /* upper-case hex */
    expect_with("\"c1\"", "\"\\ud83d\"", TL_XWAL1_ERR_JSON);  /* lone high */
    expect_with("\"c1\"", "\"\\ud83dx\"", TL_XWAL1_ERR_JSON);
    expect_with("\"c1\"", "\"\\ud83d\\u0041\"", TL_XWAL1_ERR_JSON);
    expect_with("\"c1\"", "\"\\ude00\"", TL_XWAL1_ERR_JSON); /* lone low */
    expect_with("\"c1\"", "\"\\u0000\"", TL_XWAL1_OK);       /* NUL is a character */
    /* UTF-8 */
    expect_with("\"c1\"", "\"\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac\"", TL_XWAL1_OK);
    expect_with("\"c1\"", "\"\xc0\x80\"", TL_XWAL1_ERR_JSON);         /* overlong */
    expect_with("\"c1\"", "\"\xc1\xbf\"", TL_XWAL1_ERR_JSON);         /* overlong */
    expect_with("\"c1\"", "\"\xe0\x9f\xbf\"", TL_XWAL1_ERR_JSON);     /* overlong */
    expect_with("\"c1\"", "\"\xf0\x8f\xbf\xbf\"", TL_XWAL1_ERR_JSON); /* overlong */
    expect_with("\"c1\"", "\"\xed\xa0\x80\"", TL_XWAL1_ERR_JSON);     /* a surrogate */
    expect_with("\"c1\"", "\"\xf4\x90\x80\x80\"", TL_XWAL1_ERR_JSON); /* > U+10FFFF */
    expect_with("\"c1\"", "\"\xf5\x80\x80\x80\"", TL_XWAL1_ERR_JSON);
    expect_with("\"c1\"", "\"\x80\"", TL_XWAL1_ERR_JSON);
    expect_with("\"c1\"", "\"\xc3\"", TL_XWAL1_ERR_JSON); /* truncated */
    expect_with("\"c1\"", "\"\xe2\x82\"", TL_XWAL1_ERR_JSON);
    expect_with("\"c1\"", "\"\xff\"", TL_XWAL1_ERR_JSON);
    expect_with("\"c1\"", "\"c1", TL_XWAL1_ERR_JSON);
    expect_with("{\"seq\":4,", "{\xc3\xa9\"seq\":4,", TL_XWAL1_ERR_JSON); /* outside a string */
    /* long strings go through the 16-byte scanner, with specials at every lane */
    char big[300];
    for (size_t k = 0; k < 40; k++) {
        char *p = big;
        *p++ = '"';
        for (size_t i = 0; i < 200; i++)
            *p++ = (char)('a' + i % 26);
        big[1 + k] = '\x7f';
        big[1 + k + 33] = '\\', big[1 + k + 34] = 'n';
        big[1 + k + 70] = '\xc3', big[1 + k + 71] = '\xa9';
        *p++ = '"';
        *p = '\0';
        expect_with("\"c1\"", big, TL_XWAL1_OK);
        big[1 + k + 100] = '\x1f';
        expect_with("\"c1\"", big, TL_XWAL1_ERR_JSON);
        big[1 + k + 100] = '\xc3'; /* a lead byte without its tail */
        expect_with("\"c1\"", big, TL_XWAL1_ERR_JSON);
    }
}

static void test_decode_depth(void **state) {
    (void)state;
    /* The record is depth 1: an unknown field's value may open 63 more
     * containers, arrays and objects mixed (the skipper's stack). */
    for (int levels = 60; levels <= 66; levels++) {
        char deep[600], field[700];
        char *p = deep;
        for (int i = 0; i < levels; i++)
            p += sprintf(p, "%s", (i & 1) ? "{\"k\":" : "[");
        if ((levels - 1) & 1)
            *p++ = '0'; /* the innermost object needs its member's value */
        for (int i = levels - 1; i >= 0; i--)
            *p++ = (i & 1) ? '}' : ']';
        *p = '\0';
        snprintf(field, sizeof field, "\"x\":%s,\"command_id\"", deep);
        char *s2 = with(base, "\"command_id\"", field);
        expect(s2, levels + 1 <= (int)TL_XWAL1_MAX_DEPTH ? TL_XWAL1_OK : TL_XWAL1_ERR_JSON);
        free(s2);
    }
}

static void test_decode_schema(void **state) {
    (void)state;
    /* every required record field */
    expect_with("\"seq\":4,", "", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"command_id\":\"c1\",", "", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"symbol\":\"BTC-KRW\",\"events\"", "\"events\"", TL_XWAL1_ERR_BAD_FIELD);
    expect_with(",\"state_hash\":\"" H1 "\",\"symbol_mode\"", ",\"symbol_mode\"",
                TL_XWAL1_ERR_BAD_FIELD);
    expect_with(",\"fencing_token\":1}", "}", TL_XWAL1_ERR_BAD_FIELD);
    /* symbol_mode is an Option: null or absent is fine */
    expect_with("\"symbol_mode\":\"Normal\",", "", TL_XWAL1_OK);
    assert_int_equal(last.mode, TL_XWAL1_MODE_NULL);
    expect_with("\"symbol_mode\":\"Normal\"", "\"symbol_mode\":null", TL_XWAL1_OK);
    assert_int_equal(last.mode, TL_XWAL1_MODE_NULL);
    expect_with("\"symbol_mode\":\"Normal\"", "\"symbol_mode\":\"HardHalt\"", TL_XWAL1_OK);
    assert_int_equal(last.mode, TL_MODE_HARD_HALT);
    expect_with("\"symbol_mode\":\"Normal\"", "\"symbol_mode\":\"normal\"", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"symbol_mode\":\"Normal\"", "\"symbol_mode\":{\"Normal\":null}",
                TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"symbol_mode\":\"Normal\"", "\"symbol_mode\":0", TL_XWAL1_ERR_BAD_FIELD);
    /* types */
    expect_with("\"seq\":4,", "\"seq\":\"4\",", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"seq\":4,", "\"seq\":4.0,", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"seq\":4,", "\"seq\":4e0,", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"seq\":4,", "\"seq\":-4,", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"seq\":4,", "\"seq\":null,", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"seq\":4,", "\"seq\":[4],", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"command_id\":\"c1\"", "\"command_id\":1", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"command_id\":\"c1\"", "\"command_id\":{}", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"events\":[", "\"events\":{\"a\":1},\"x\":[", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":18446744073709551615}", TL_XWAL1_OK);
    assert_true(last.fence == UINT64_MAX);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":18446744073709551616}",
                TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":99999999999999999999999}",
                TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":0}", TL_XWAL1_OK);
    expect_with("\"fencing_token\":1}", "\"fencing_token\":-0}", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"event_version\":1", "\"event_version\":4294967295", TL_XWAL1_OK);
    expect_with("\"event_version\":1", "\"event_version\":4294967296", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"occurred_at_ms\":1795300796904", "\"occurred_at_ms\":-5", TL_XWAL1_OK);
    expect_with("\"occurred_at_ms\":1795300796904", "\"occurred_at_ms\":-0",
                TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"occurred_at_ms\":1795300796904", "\"occurred_at_ms\":-9223372036854775808",
                TL_XWAL1_OK);
    expect_with("\"occurred_at_ms\":1795300796904", "\"occurred_at_ms\":-9223372036854775809",
                TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"occurred_at_ms\":1795300796904", "\"occurred_at_ms\":9223372036854775807",
                TL_XWAL1_OK);
    expect_with("\"occurred_at_ms\":1795300796904", "\"occurred_at_ms\":9223372036854775808",
                TL_XWAL1_ERR_BAD_FIELD);
    /* duplicates of known fields are errors, of unknown ones not */
    expect_with("\"seq\":4,", "\"seq\":4,\"seq\":4,", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"side\":\"Sell\"", "\"side\":\"Sell\",\"side\":\"Sell\"", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"seq\":4,", "\"seq\":4,\"zz\":1,\"zz\":[{\"q\":[null,true,false,-1.5e-3]}],",
                TL_XWAL1_OK);
    /* unknown fields anywhere are skipped */
    expect_with("\"event_version\":1", "\"event_version\":1,\"extra\":{\"a\":[1,\"b\"]}",
                TL_XWAL1_OK);
    expect_with("\"side\":\"Sell\"", "\"new\":\"x\",\"side\":\"Sell\"", TL_XWAL1_OK);
    /* the top value must be the record object (serde's array form is refused) */
    expect("[4,\"c1\",\"BTC-KRW\",[],\"" H1 "\",null,1]", TL_XWAL1_ERR_BAD_FIELD);
    expect("\"x\"", TL_XWAL1_ERR_BAD_FIELD);
    expect("4", TL_XWAL1_ERR_BAD_FIELD);
    expect("null", TL_XWAL1_ERR_BAD_FIELD);
    expect("{}", TL_XWAL1_ERR_BAD_FIELD);
    /* event shapes */
    expect_with("{\"OrderAccepted\":", "{\"OrderAccepted2\":", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("{\"OrderAccepted\":", "{\"orderAccepted\":", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"quantity\":\"5\"}}", "\"quantity\":\"5\"},\"x\":1}", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"events\":[", "\"events\":[{},", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"events\":[", "\"events\":[1,", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"events\":[", "\"events\":[\"EngineCheckpoint\",", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("{\"OrderAccepted\":{", "{\"OrderAccepted\":[],\"q\":{", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"side\":\"Sell\"", "\"side\":\"Short\"", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"side\":\"Sell\"", "\"side\":{\"Sell\":null}", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"order_type\":\"Limit\"", "\"order_type\":\"Market\"", TL_XWAL1_OK);
    expect_with("\"order_type\":\"Limit\"", "\"order_type\":\"Stop\"", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"trade_id\":\"t\",", "", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"envelope\":{\"event_id\":\"BTC-KRW-1", "\"envelope\":4,\"x\":{\"event_id\":\"1",
                TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"causation_id\":\"c1\"},\"order_id\"", "\"x\":1},\"order_id\"",
                TL_XWAL1_ERR_BAD_FIELD);
    /* BookDelta: u32 and bool */
#define BOOK_DELTA                                                                                 \
    "{\"BookDelta\":{\"envelope\":" ENV(3, "BookDelta") ",\"depth\":%s,\"is_snapshot\":%s}},"
    char buf[1024];
    struct {
        const char *depth, *snap;
        enum tl_xwal1_err want;
    } bds[] = {{"20", "true", TL_XWAL1_OK},
               {"0", "false", TL_XWAL1_OK},
               {"-1", "true", TL_XWAL1_ERR_BAD_FIELD},
               {"20", "1", TL_XWAL1_ERR_BAD_FIELD},
               {"20", "\"true\"", TL_XWAL1_ERR_BAD_FIELD},
               {"20", "null", TL_XWAL1_ERR_BAD_FIELD},
               {"4294967296", "true", TL_XWAL1_ERR_BAD_FIELD}};
    for (size_t i = 0; i < TL_ARRAY_LEN(bds); i++) {
        char ins[1200];
        snprintf(buf, sizeof buf, BOOK_DELTA, bds[i].depth, bds[i].snap);
        snprintf(ins, sizeof ins, "%s{\"EngineCheckpoint\"", buf);
        char *q = with(base, "{\"EngineCheckpoint\"", ins);
        expect(q, bds[i].want);
        if (bds[i].want == TL_XWAL1_OK)
            assert_int_equal(last.n_events, 4);
        free(q);
    }
    /* escaped keys and values are the same names */
    expect_with("\"seq\":4,", "\"s\\u0065q\":4,", TL_XWAL1_OK);
    expect_with("{\"OrderAccepted\":", "{\"Order\\u0041ccepted\":", TL_XWAL1_OK);
    expect_with("\"symbol_mode\":\"Normal\"", "\"symbol_mode\":\"Norm\\u0061l\"", TL_XWAL1_OK);
    expect_with("\"symbol\":\"BTC-KRW\",\"events\"", "\"symbol\":\"BTC\\u002dKRW\",\"events\"",
                TL_XWAL1_OK);
    assert_string_equal(last.symbol, "BTC-KRW");
    expect_with("\"side\":\"Sell\"", "\"side\":\"S\\u0065ll\"", TL_XWAL1_OK);
    expect_with("\"price\":\"101\"", "\"price\":\"1\\u00301\"", TL_XWAL1_OK);
    assert_true(last.trades[0].price == 101);
    /* a key holding U+0000 is no field name: the field is then missing */
    expect_with("\"seq\":4,", "\"seq\\u0000\":4,", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"seq\":4,", "\"seq\\u0000\":4,\"seq\":4,", TL_XWAL1_OK);
}

static void test_decode_record_rules(void **state) {
    (void)state;
    /* symbol */
    expect_with("\"symbol\":\"BTC-KRW\",\"events\"", "\"symbol\":\"BTC KRW\",\"events\"",
                TL_XWAL1_ERR_BAD_SYMBOL);
    expect_with("\"symbol\":\"BTC-KRW\",\"events\"", "\"symbol\":\"\",\"events\"",
                TL_XWAL1_ERR_BAD_SYMBOL);
    expect_with("\"symbol\":\"BTC-KRW\",\"events\"",
                "\"symbol\":\"ABCDEFGHIJKLMNOPQRSTUVWXY\",\"events\"", TL_XWAL1_ERR_BAD_SYMBOL);
    expect_with("\"symbol\":\"BTC-KRW\",\"events\"", "\"symbol\":\"BTC-KRW\\u0000\",\"events\"",
                TL_XWAL1_ERR_BAD_SYMBOL);
    expect_with("\"symbol\":\"BTC-KRW\",\"events\"", "\"symbol\":\"BTC-KR\xc3\xa9\",\"events\"",
                TL_XWAL1_ERR_BAD_SYMBOL);
    /* an envelope of another symbol */
    expect_with("\"symbol\":\"BTC-KRW\",\"seq\":2", "\"symbol\":\"ETH-KRW\",\"seq\":2",
                TL_XWAL1_ERR_BAD_SYMBOL);
    expect_with("\"symbol\":\"BTC-KRW\",\"seq\":4", "\"symbol\":\"BTC-KRWX\",\"seq\":4",
                TL_XWAL1_ERR_BAD_SYMBOL);
    /* state_hash */
    expect_with("\"state_hash\":\"" H1 "\",\"symbol_mode\"",
                "\"state_hash\":\"E9E6027323a5a52cf57ea34aee82d866b74fcceb303a3f40223d40f3812ebb52"
                "\",\"symbol_mode\"",
                TL_XWAL1_ERR_BAD_STATE_HASH);
    expect_with("\"state_hash\":\"" H1 "\",\"symbol_mode\"",
                "\"state_hash\":\"e9e6\",\"symbol_mode\"", TL_XWAL1_ERR_BAD_STATE_HASH);
    expect_with("\"state_hash\":\"" H1 "\",\"symbol_mode\"",
                "\"state_hash\":\"" H1 "0\",\"symbol_mode\"", TL_XWAL1_ERR_BAD_STATE_HASH);
    expect_with("\"state_hash\":\"" H1 "\",\"symbol_mode\"",
                "\"state_hash\":\"g9e6027323a5a52cf57ea34aee82d866b74fcceb303a3f40223d40f3812ebb52"
                "\",\"symbol_mode\"",
                TL_XWAL1_ERR_BAD_STATE_HASH);
    /* seqs */
    expect_with("\"seq\":4,", "\"seq\":3,", TL_XWAL1_ERR_SEQ_ORDER);
    expect_with("\"seq\":4,", "\"seq\":5,", TL_XWAL1_ERR_SEQ_ORDER);
    expect_with("\"seq\":2,\"occurred", "\"seq\":1,\"occurred", TL_XWAL1_ERR_SEQ_ORDER);
    expect_with("\"seq\":2,\"occurred", "\"seq\":0,\"occurred", TL_XWAL1_ERR_SEQ_ORDER);
    expect_with("\"seq\":1,\"occurred", "\"seq\":0,\"occurred", TL_XWAL1_ERR_SEQ_ORDER);
    expect_with("\"seq\":1,\"occurred", "\"seq\":3,\"occurred", TL_XWAL1_ERR_SEQ_ORDER);
    expect("{\"seq\":4,\"command_id\":\"c\",\"symbol\":\"BTC-KRW\",\"events\":[],\"state_hash\":"
           "\"" H1 "\",\"fencing_token\":1}",
           TL_XWAL1_ERR_SEQ_ORDER);
    /* the checkpoint */
    expect_with("{\"EngineCheckpoint\":{\"envelope\":{\"event_id\":\"BTC-KRW-4-EngineCheckpoint\","
                "\"event_version\":1,\"symbol\":\"BTC-KRW\",\"seq\":4,\"occurred_at_ms\":"
                "1795300796904,\"correlation_id\":\"corr-c1\",\"causation_id\":\"c1\"},"
                "\"state_hash\":\"" H1 "\"}}",
                "{\"OrderCanceled\":{\"envelope\":" ENV(
                    4, "OrderCanceled") ",\"order_id\":\"o\","
                                        "\"user_id\":\"u\",\"remaining_quantity\":\"1\"}}",
                TL_XWAL1_ERR_BAD_CHECKPOINT);
    expect_with("\"state_hash\":\"" H1 "\"}}",
                "\"state_hash\":\"f9e6027323a5a52cf57ea34aee82d866b74fcceb303a3f40223d40f3812ebb52"
                "\"}}",
                TL_XWAL1_ERR_BAD_CHECKPOINT);
    /* amounts */
    expect_with("\"price\":\"101\"", "\"price\":\"0101\"", TL_XWAL1_ERR_BAD_AMOUNT);
    expect_with("\"price\":\"101\"", "\"price\":\"\"", TL_XWAL1_ERR_BAD_AMOUNT);
    expect_with("\"price\":\"101\"", "\"price\":\"-1\"", TL_XWAL1_ERR_BAD_AMOUNT);
    expect_with("\"price\":\"101\"", "\"price\":\"1.5\"", TL_XWAL1_ERR_BAD_AMOUNT);
    expect_with("\"price\":\"101\"", "\"price\":\"18446744073709551616\"", TL_XWAL1_ERR_BAD_AMOUNT);
    expect_with("\"price\":\"101\"", "\"price\":\"18446744073709551615\"", TL_XWAL1_OK);
    expect_with("\"price\":\"101\"", "\"price\":101", TL_XWAL1_ERR_BAD_FIELD);
    expect_with("\"quantity\":\"7\"", "\"quantity\":\"0\"", TL_XWAL1_OK);
    /* OrderAccepted amounts are not tally's to judge (upstream writes them too) */
    expect_with("\"price\":\"100\"", "\"price\":\"x\"", TL_XWAL1_OK);
}

/* n events, the last a checkpoint; bad: the one before it lacks a field. */
static char *many_events(unsigned n, bool bad) {
    char *buf = malloc(400 * (n + 2));
    assert_non_null(buf);
    char *p = buf;
    p += sprintf(p, "{\"seq\":%u,\"command_id\":\"c\",\"symbol\":\"BTC-KRW\",\"events\":[", n);
    for (unsigned i = 1; i <= n; i++) {
        bool ck = i == n;
        p += sprintf(p,
                     "%s{\"%s\":{\"envelope\":{\"event_id\":\"e\",\"event_version\":1,"
                     "\"symbol\":\"BTC-KRW\",\"seq\":%u,\"occurred_at_ms\":1,"
                     "\"correlation_id\":\"c\",\"causation_id\":\"c\"},%s}}",
                     i > 1 ? "," : "", ck ? "EngineCheckpoint" : "OrderCanceled", i,
                     ck                  ? "\"state_hash\":\"" H1 "\""
                     : bad && i + 1 == n ? "\"order_id\":\"o\",\"user_id\":\"u\""
                                         : "\"order_id\":\"o\",\"user_id\":\"u\","
                                           "\"remaining_quantity\":\"1\"");
    }
    sprintf(p, "],\"state_hash\":\"" H1 "\",\"symbol_mode\":null,\"fencing_token\":2}");
    return buf;
}

static void test_decode_events_limit(void **state) {
    (void)state;
    /* TL_XWAL1_MAX_EVENTS events pass, one more is too_many_events */
    for (unsigned n = TL_XWAL1_MAX_EVENTS - 1; n <= TL_XWAL1_MAX_EVENTS + 2; n++) {
        char *buf = many_events(n, false);
        expect(buf, n <= TL_XWAL1_MAX_EVENTS ? TL_XWAL1_OK : TL_XWAL1_ERR_TOO_MANY_EVENTS);
        if (n <= TL_XWAL1_MAX_EVENTS) {
            assert_int_equal(last.n_events, n);
            for (unsigned i = 0; i < n; i++)
                assert_true(last.event_seqs[i] == i + 1);
        }
        free(buf);
        /* a schema error in an event past the limit still outranks it */
        buf = many_events(n, true);
        expect(buf, TL_XWAL1_ERR_BAD_FIELD);
        free(buf);
    }
    char *buf = many_events(TL_XWAL1_MAX_EVENTS * 4, false);
    expect(buf, TL_XWAL1_ERR_TOO_MANY_EVENTS);
    free(buf);
}

static void test_decode_priority(void **state) {
    (void)state;
    /* a JSON error anywhere outranks every schema error before it */
    char *p = with(base, "\"seq\":4,", "\"seq\":\"x\",");
    char *q = with(p, "\"fencing_token\":1}", "\"fencing_token\":1,}");
    expect(q, TL_XWAL1_ERR_JSON);
    free(q);
    q = with(p, "\"fencing_token\":1}", "\"fencing_token\":1}");
    expect(q, TL_XWAL1_ERR_BAD_FIELD);
    free(q);
    free(p);
    /* bad_field outranks the record rules */
    p = with(base, "\"symbol\":\"BTC-KRW\",\"events\"", "\"symbol\":\"B C\",\"events\"");
    q = with(p, "\"trade_id\":\"t\",", "");
    expect(p, TL_XWAL1_ERR_BAD_SYMBOL);
    expect(q, TL_XWAL1_ERR_BAD_FIELD);
    free(q);
    /* bad_symbol outranks bad_state_hash outranks seq order ... */
    q = with(p, H1 "\",\"symbol_mode", "00\",\"symbol_mode");
    expect(q, TL_XWAL1_ERR_BAD_SYMBOL);
    free(q);
    free(p);
    p = with(base, H1 "\",\"symbol_mode", "00\",\"symbol_mode");
    q = with(p, "\"seq\":4,", "\"seq\":5,");
    expect(q, TL_XWAL1_ERR_BAD_STATE_HASH);
    free(q);
    free(p);
    p = with(base, "\"seq\":4,", "\"seq\":5,");
    q = with(p, "\"price\":\"101\"", "\"price\":\"x\"");
    expect(q, TL_XWAL1_ERR_SEQ_ORDER);
    free(q);
    free(p);
}

static void test_decode_fixture_escapes(void **state) {
    (void)state;
    /* the escapes fixture's payloads decode alike, and a symbol, hash and
     * amount written with escapes (\u, surrogate pairs elsewhere) read the
     * same as plain ones */
    size_t n;
    uint8_t *seg =
        tu_read_file(tu_shared("fixtures/quanta-xwal1/escapes/wal/segment-000001.wal"), &n);
    tl_xwal1_walker w;
    tl_xwal1_walker_init(&w, seg, n, 0, true);
    tl_xwal1_frame fr;
    enum tl_xwal1_err err;
    unsigned frames = 0;
    while (tl_xwal1_walker_next(&w, &fr, &err) == TL_XWAL1_FRAME) {
        expect_n((const char *)fr.payload, fr.payload_len, TL_XWAL1_OK);
        frames++;
    }
    assert_int_equal(frames, 2);
    assert_true(last.seq == 7);
    free(seg);
}

/* Mutations of real payloads: both decoders give the same verdict and the
 * same record, every time. */
static uint64_t outcome[TL_XWAL1_ERR_COUNT];

static void mutate_and_compare(const uint8_t *src, size_t n, uint64_t seed, unsigned rounds) {
    static const char *const tokens[] = {
        "\"",
        "\\",
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        " ",
        "0",
        "-",
        ".",
        "e",
        "9",
        "null",
        "true",
        "\\u00",
        "\\ud83d",
        "\xc3",
        "\x80",
        "\x01",
        "\"seq\":",
        "\"x\":",
        "\\u0000",
        "18446744073709551616",
        "\"Normal\"",
        "\"events\":[]",
        "{\"EngineCheckpoint\":{}}",
    };
    uint64_t x = seed | 1;
    uint8_t *buf = malloc(n + 64);
    assert_non_null(buf);
    for (unsigned r = 0; r < rounds; r++) {
        memcpy(buf, src, n);
        size_t m = n;
        unsigned edits = 1 + (unsigned)(x % 3);
        for (unsigned e = 0; e < edits && m > 0; e++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = (size_t)(x >> 16) % m;
            switch (x % 6) {
                case 0: /* flip a bit */
                    buf[at] ^= (uint8_t)(1u << (x >> 8 & 7));
                    break;
                case 1: /* delete a byte */
                    memmove(buf + at, buf + at + 1, m - at - 1);
                    m--;
                    break;
                case 2: /* truncate */
                    m = at;
                    break;
                case 3: { /* insert a token */
                    const char *t = tokens[(x >> 24) % TL_ARRAY_LEN(tokens)];
                    size_t tl = strlen(t);
                    if (m + tl > n + 64)
                        break;
                    memmove(buf + at + tl, buf + at, m - at);
                    memcpy(buf + at, t, tl);
                    m += tl;
                    break;
                }
                case 4: /* a digit changes */
                    if (buf[at] >= '0' && buf[at] <= '9')
                        buf[at] = (uint8_t)('0' + (x >> 40) % 10);
                    else
                        buf[at] = (uint8_t)(x >> 32);
                    break;
                default: /* duplicate a span */
                    if (m + 20 <= n + 64 && at + 20 <= m) {
                        memmove(buf + at + 20, buf + at, m - at);
                        m += 20;
                    }
                    break;
            }
        }
        uint8_t *b = exact_copy(buf, m);
        static tl_xwal1_rec f, s;
        enum tl_xwal1_err ef = tl_xwal1_decode(b, m, &f);
        enum tl_xwal1_err es = tl_xwal1_decode_strict(b, m, &s);
        if (ef != es)
            fail_msg("decoders disagree (fast %s: %s %s @%u, strict %s: %s %s) on:\n%.*s",
                     tl_xwal1_err_name(ef), f.err_what, f.err_field, f.err_at,
                     tl_xwal1_err_name(es), s.err_what, s.err_field, (int)m, (const char *)b);
        assert_rec_equal(&f, &s);
        outcome[ef]++;
        free(b);
    }
    free(buf);
}

static void test_decoders_agree_on_mutations(void **state) {
    (void)state;
    static const char *const logs[] = {"basic", "restart", "stale_leader", "escapes"};
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    unsigned payloads = 0;
    for (size_t l = 0; l < TL_ARRAY_LEN(logs); l++) {
        for (int i = 1; i < 20; i++) {
            char rel[256];
            snprintf(rel, sizeof rel, "fixtures/quanta-xwal1/%s/wal/segment-%06d.wal", logs[l], i);
            FILE *f = fopen(tu_shared(rel), "rb");
            if (f == NULL)
                break;
            fclose(f);
            size_t n;
            uint8_t *seg = tu_read_file(tu_shared(rel), &n);
            tl_xwal1_walker w;
            tl_xwal1_walker_init(&w, seg, n, 0, true);
            tl_xwal1_frame fr;
            enum tl_xwal1_err err;
            while (tl_xwal1_walker_next(&w, &fr, &err) == TL_XWAL1_FRAME) {
                mutate_and_compare(fr.payload, fr.payload_len, seed++, 3000);
                mutate_and_compare((const uint8_t *)base, strlen(base), seed++, 300);
                payloads++;
            }
            free(seg);
        }
    }
    print_message("%u payloads x 3300 mutations: decoders agree:", payloads);
    for (int e = 0; e < TL_XWAL1_ERR_COUNT; e++) {
        if (outcome[e] != 0)
            print_message(" %s %llu", tl_xwal1_err_name((enum tl_xwal1_err)e),
                          (unsigned long long)outcome[e]);
    }
    print_message("\n");
    assert_true(payloads >= 50);
    /* the mutations reach every payload verdict, acceptance included */
    for (int e = TL_XWAL1_OK; e <= TL_XWAL1_ERR_BAD_AMOUNT; e++) {
        if (e == TL_XWAL1_OK || e >= TL_XWAL1_ERR_JSON)
            assert_true(outcome[e] > 0 || e == TL_XWAL1_ERR_TOO_MANY_EVENTS);
    }
}

/* The vector hex decoder equals the scalar one, valid or not. */
static void test_hex64(void **state) {
    (void)state;
    static const char alphabet[] = "0123456789abcdefABCDEFgz/:`@G\x00\x7f\xff";
    uint64_t x = 0x2545f4914f6cdd1dull;
    unsigned valid = 0;
    for (int iter = 0; iter < 200000; iter++) {
        char h[64];
        for (int i = 0; i < 64; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* mostly valid digits, sometimes one of the neighbours of a range */
            h[i] = (x & 0xF0) ? alphabet[x % 16] : alphabet[x % (sizeof alphabet - 1)];
        }
        xw_str s = {h, 64, false, true};
        uint8_t a[32], b[32];
        bool va = xw_hex64(&s, a), vb = xw_hex64_scalar(&s, b);
        assert_int_equal(va, vb);
        if (va) {
            assert_memory_equal(a, b, 32);
            valid++;
        }
    }
    assert_true(valid > 1000);
    xw_str s = {H1, 64, false, true};
    uint8_t out[32];
    assert_true(xw_hex64(&s, out));
    assert_int_equal(out[0], 0xe9);
    assert_int_equal(out[1], 0xe6);
    assert_int_equal(out[31], 0x52);
    s.len = 63;
    assert_false(xw_hex64(&s, out));
}

/* The fast decoder's paths give one record: the canonical shape with the
 * plain pre-pass, the canonical shape with checked strings (a non-ASCII
 * byte or an escape anywhere), the general parser (a space between
 * tokens), and payloads above the pre-pass's size. */
static void test_decode_paths_agree(void **state) {
    (void)state;
    static tl_xwal1_rec ref;
    assert_int_equal(tl_xwal1_decode((const uint8_t *)base, strlen(base), &ref), TL_XWAL1_OK);
    const char *variants[][2] = {
        {"\"c1\"", "\"c\xc3\xa9"
                   "1\""},             /* not plain */
        {"\"c1\"", "\"c\\u00e91\""},   /* an escape */
        {"\"c1\"", "\"c\\\"1\""},      /* an escaped quote */
        {"\"seq\":4,", "\"seq\": 4,"}, /* not canonical */
        {"\"symbol_mode\":\"Normal\",", "\"symbol_mode\":\"Normal\",\"new\":1,"},
        {"\"seq\":4,\"command_id\":\"c1\",", "\"command_id\":\"c1\",\"seq\":4,"},
    };
    for (size_t i = 0; i < TL_ARRAY_LEN(variants); i++) {
        char *p = with(base, variants[i][0], variants[i][1]);
        expect(p, TL_XWAL1_OK);
        assert_rec_equal(&last, &ref);
        free(p);
    }
    /* 64 events with long ids: above the pre-pass size, all checked */
    size_t cap = 64 * 1200;
    char *big = malloc(cap), *p = big;
    assert_non_null(big);
    char id[801];
    memset(id, 'x', 800);
    id[800] = '\0';
    p += sprintf(p, "{\"seq\":64,\"command_id\":\"c\",\"symbol\":\"BTC-KRW\",\"events\":[");
    for (unsigned i = 1; i <= 64; i++)
        p += sprintf(p,
                     "%s{\"%s\":{\"envelope\":{\"event_id\":\"%s\",\"event_version\":1,"
                     "\"symbol\":\"BTC-KRW\",\"seq\":%u,\"occurred_at_ms\":1,"
                     "\"correlation_id\":\"c\",\"causation_id\":\"c\"},%s}}",
                     i > 1 ? "," : "", i == 64 ? "EngineCheckpoint" : "OrderCanceled", id, i,
                     i == 64 ? "\"state_hash\":\"" H1 "\""
                             : "\"order_id\":\"o\",\"user_id\":\"u\",\"remaining_quantity\":\"1\"");
    sprintf(p, "],\"state_hash\":\"" H1 "\",\"symbol_mode\":null,\"fencing_token\":2}");
    assert_true(strlen(big) > 8192);
    expect(big, TL_XWAL1_OK);
    assert_int_equal(last.n_events, 64);
    free(big);
}

/* ---- symbols, binding, the tail clock ---- */

static void test_symtab(void **state) {
    (void)state;
    enum { CAP = 40 };
    void *mem = aligned_alloc(64, (tl_xwal1_symtab_bytes(CAP) + 63) & ~(size_t)63);
    assert_non_null(mem);
    tl_xwal1_symtab t;
    tl_xwal1_symtab_init(&t, mem, CAP);
    char name[32];
    for (unsigned i = 0; i < CAP; i++) {
        int n = snprintf(name, sizeof name, "S%u", i * 7919u);
        assert_int_equal(tl_xwal1_symtab_intern(&t, name, (size_t)n), i + 1);
        assert_int_equal(tl_xwal1_symtab_intern(&t, name, (size_t)n), i + 1);
    }
    for (unsigned i = 0; i < CAP; i++) {
        int n = snprintf(name, sizeof name, "S%u", i * 7919u);
        assert_int_equal(tl_xwal1_symtab_find(&t, name, (size_t)n), i + 1);
        assert_string_equal(tl_xwal1_symtab_get(&t, i + 1)->name, name);
    }
    assert_int_equal(tl_xwal1_symtab_intern(&t, "FULL", 4), 0);
    assert_int_equal(tl_xwal1_symtab_find(&t, "FULL", 4), 0);
    assert_int_equal(tl_xwal1_symtab_intern(&t, "S0", 2), 1); /* old names still resolve */
    assert_int_equal(tl_xwal1_symtab_intern(&t, "bad name", 8), 0);
    assert_int_equal(tl_xwal1_symtab_intern(&t, "", 0), 0);
    assert_null(tl_xwal1_symtab_get(&t, 0));
    assert_null(tl_xwal1_symtab_get(&t, CAP + 1));
    free(mem);
}

static void test_bind_kinds(void **state) {
    (void)state;
    void *mem = aligned_alloc(64, (tl_xwal1_symtab_bytes(4) + 63) & ~(size_t)63);
    assert_non_null(mem);
    tl_xwal1_symtab t;
    tl_xwal1_symtab_init(&t, mem, 4);
    struct {
        const char *mode;
        uint16_t kind;
    } steps[] = {
        {"\"Normal\"", TL_KIND_CHECKPOINT},
        {"null", TL_KIND_CHECKPOINT},
        {"\"CancelOnly\"", TL_KIND_MODE_CHANGE},
        {"\"CancelOnly\"", TL_KIND_CHECKPOINT},
        {"null", TL_KIND_CHECKPOINT},
        {"\"HardHalt\"", TL_KIND_MODE_CHANGE},
        {"\"Normal\"", TL_KIND_MODE_CHANGE},
        {"\"Normal\"", TL_KIND_CHECKPOINT},
    };
    uint64_t prev = 0;
    for (size_t i = 0; i < TL_ARRAY_LEN(steps); i++) {
        char mode[64];
        snprintf(mode, sizeof mode, "\"symbol_mode\":%s", steps[i].mode);
        char *p = with(base, "\"symbol_mode\":\"Normal\"", mode);
        static tl_xwal1_rec rec;
        assert_int_equal(tl_xwal1_decode((const uint8_t *)p, strlen(p), &rec), TL_XWAL1_OK);
        tl_xwal1_frame fr = {100, (const uint8_t *)p, (uint32_t)strlen(p), (uint32_t)strlen(p) + 8,
                             0};
        tl_rec_view v;
        assert_int_equal(tl_xwal1_bind(&t, &rec, &fr, &v), TL_XWAL1_OK);
        assert_int_equal(v.kind, steps[i].kind);
        assert_int_equal(v.symbol, 1);
        assert_true(v.seq == 4 && v.fence == 1 && v.len == strlen(p) + 8);
        assert_true(v.checksum == tl_xxh3(p, strlen(p)));
        assert_true(v.parent == prev);
        assert_true(v.ts_ns == 1795300796904ull * 1000000u);
        assert_true(v.n_events == 3 && v.event_seqs == rec.event_seqs);
        assert_ptr_equal(v.state_hash, rec.state_hash);
        assert_null(v.body);
        prev = v.checksum;
        free(p);
    }
    free(mem);
}

static void test_tail_clock(void **state) {
    (void)state;
    const uint64_t ms = 1000000u, grace = 1000;
    tl_xwal1_tail t;
    tl_xwal1_tail_init(&t);
    enum tl_xwal1_err e = TL_XWAL1_ERR_SHORT_PAYLOAD;
    /* a writer that stalls without writing more: tentative for ever */
    assert_int_equal(tl_xwal1_tail_observe(&t, true, 3, 700, e, 900, false, 0, grace),
                     TL_XWAL1_TAIL_WAIT);
    assert_int_equal(tl_xwal1_tail_observe(&t, true, 3, 700, e, 900, false, 5000 * ms, grace),
                     TL_XWAL1_TAIL_WAIT);
    /* growth, but the frame completes: clear */
    assert_int_equal(
        tl_xwal1_tail_observe(&t, false, 3, 0, TL_XWAL1_OK, 1800, false, 5001 * ms, grace),
        TL_XWAL1_TAIL_CLEAR);
    /* torn at 1800, bytes keep arriving, never completing: corrupt after the grace */
    assert_int_equal(tl_xwal1_tail_observe(&t, true, 3, 1800, e, 1900, false, 6000 * ms, grace),
                     TL_XWAL1_TAIL_WAIT);
    assert_int_equal(tl_xwal1_tail_observe(&t, true, 3, 1800, e, 2500, false, 6500 * ms, grace),
                     TL_XWAL1_TAIL_WAIT);
    assert_int_equal(tl_xwal1_tail_observe(&t, true, 3, 1800, TL_XWAL1_ERR_SHORT_CRC, 2600, false,
                                           7000 * ms, grace),
                     TL_XWAL1_TAIL_CORRUPT_STALLED);
    /* reported once: the next observation starts over */
    assert_int_equal(tl_xwal1_tail_observe(&t, true, 3, 1800, e, 2600, false, 7001 * ms, grace),
                     TL_XWAL1_TAIL_WAIT);
    /* a newer segment: corrupt at once */
    assert_int_equal(tl_xwal1_tail_observe(&t, true, 3, 1800, e, 2600, true, 7002 * ms, grace),
                     TL_XWAL1_TAIL_CORRUPT_NEWER);
    /* the tentative item moved (an earlier one completed): the clock restarts */
    assert_int_equal(tl_xwal1_tail_observe(&t, true, 4, 7, e, 100, false, 8000 * ms, grace),
                     TL_XWAL1_TAIL_WAIT);
    assert_int_equal(tl_xwal1_tail_observe(&t, true, 4, 900, e, 1000, false, 8999 * ms, grace),
                     TL_XWAL1_TAIL_WAIT);
    assert_int_equal(tl_xwal1_tail_observe(&t, true, 4, 900, e, 1100, false, 9998 * ms, grace),
                     TL_XWAL1_TAIL_WAIT);
    assert_int_equal(tl_xwal1_tail_observe(&t, true, 4, 900, e, 1100, false, 9999 * ms, grace),
                     TL_XWAL1_TAIL_CORRUPT_STALLED);
}

static void test_err_names(void **state) {
    (void)state;
    for (int e = 0; e < TL_XWAL1_ERR_COUNT; e++) {
        const char *n = tl_xwal1_err_name((enum tl_xwal1_err)e);
        assert_non_null(n);
        assert_true(strcmp(n, "?") != 0);
        for (const char *c = n; *c; c++)
            assert_true((*c >= 'a' && *c <= 'z') || *c == '_');
        for (int f = 0; f < e; f++)
            assert_true(strcmp(n, tl_xwal1_err_name((enum tl_xwal1_err)f)) != 0);
    }
    assert_string_equal(tl_xwal1_err_name(TL_XWAL1_ERR_SEQ_ORDER), "seq_order_in_record");
    assert_string_equal(tl_xwal1_err_name(TL_XWAL1_ERR_COUNT), "?");
    assert_int_equal(tl_xwal1_err_rule(TL_XWAL1_ERR_CRC_MISMATCH), TL_RULE_CHECKSUM);
    assert_int_equal(tl_xwal1_err_rule(TL_XWAL1_ERR_BAD_MAGIC), TL_RULE_SEGMENT);
    assert_int_equal(tl_xwal1_err_rule(TL_XWAL1_ERR_SHORT_CRC), TL_RULE_LENGTH);
    assert_int_equal(tl_xwal1_err_rule(TL_XWAL1_ERR_JSON), TL_RULE_FIELDS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segment_names),
        cmocka_unit_test(test_crc_matches_zlib),
        cmocka_unit_test(test_walker_verdicts),
        cmocka_unit_test(test_walker_random),
        cmocka_unit_test(test_decode_base),
        cmocka_unit_test(test_decode_json_rules),
        cmocka_unit_test(test_decode_depth),
        cmocka_unit_test(test_decode_schema),
        cmocka_unit_test(test_decode_record_rules),
        cmocka_unit_test(test_decode_events_limit),
        cmocka_unit_test(test_decode_priority),
        cmocka_unit_test(test_decode_fixture_escapes),
        cmocka_unit_test(test_decoders_agree_on_mutations),
        cmocka_unit_test(test_hex64),
        cmocka_unit_test(test_decode_paths_agree),
        cmocka_unit_test(test_symtab),
        cmocka_unit_test(test_bind_kinds),
        cmocka_unit_test(test_tail_clock),
        cmocka_unit_test(test_err_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
