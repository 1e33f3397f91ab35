/* test_ledger_parse.c: the watermark reply parser (core/ledger.h,
 * tl_ledger_parse): ledger.md's example, and every rejection by name and
 * member. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ledger.h"

static tl_ledger_wm wm;

static enum tl_ledger_err parse(const char *body, const char **member) {
    return tl_ledger_parse(body, strlen(body), &wm, member);
}

#define SPEC_EXAMPLE                                                                               \
    "{\"ledger_seq\":\"88190\",\"checksum\":\"9f0c4e2a11d3b7e5\",\"trades\":\"41210\","            \
    "\"notional\":\"1234567890123\",\"qty\":\"98765432\","                                         \
    "\"symbols\":[{\"symbol\":1,\"trades\":\"20000\",\"notional\":\"5\",\"qty\":\"6\"}],"          \
    "\"ts_ns\":\"1795000000000000000\"}"

static void test_spec_example(void **state) {
    (void)state;
    const char *member = NULL;
    assert_int_equal(parse(SPEC_EXAMPLE, &member), TL_LEDGER_OK);
    assert_int_equal(wm.ledger_seq, 88190);
    assert_int_equal(wm.checksum, 0x9f0c4e2a11d3b7e5ull);
    assert_int_equal(wm.total.trades, 41210);
    assert_int_equal(wm.total.notional, 1234567890123ull);
    assert_int_equal(wm.total.qty, 98765432);
    assert_int_equal(wm.ts_ns, 1795000000000000000ull);
    assert_int_equal(wm.symbol_count, 1);
    assert_int_equal(wm.symbols[0].symbol, 1);
    assert_int_equal(wm.symbols[0].f.trades, 20000);
    assert_int_equal(wm.symbols[0].f.notional, 5);
    assert_int_equal(wm.symbols[0].f.qty, 6);
    assert_int_equal(wm.poll_id, 0);
    /* white space around, unknown members ignored, empty symbols */
    assert_int_equal(parse(" \n{\"ledger_seq\":\"0\",\"checksum\":\"0000000000000000\","
                           "\"trades\":\"0\",\"qty\":\"0\",\"notional\":\"0\",\"symbols\":[],"
                           "\"ts_ns\":\"0\",\"future\":{\"x\":[1,2]}}\r\n",
                           NULL),
                     TL_LEDGER_OK);
    assert_int_equal(wm.symbol_count, 0);
}

static void test_extremes(void **state) {
    (void)state;
    assert_int_equal(parse("{\"ledger_seq\":\"18446744073709551615\",\"checksum\":"
                           "\"ffffffffffffffff\",\"trades\":\"18446744073709551615\",\"qty\":\"1\","
                           "\"notional\":\"10000000000000000000\",\"symbols\":[{\"symbol\":"
                           "4294967295,\"trades\":\"1\",\"qty\":\"2\",\"notional\":\"3\"}],"
                           "\"ts_ns\":\"1\"}",
                           NULL),
                     TL_LEDGER_OK);
    assert_true(wm.ledger_seq == UINT64_MAX);
    assert_true(wm.checksum == UINT64_MAX);
    assert_true(wm.total.trades == UINT64_MAX);
    assert_true(wm.total.notional == 10000000000000000000ull);
    assert_int_equal(wm.symbols[0].symbol, 4294967295u);
}

/* Replaces the first occurrence of `from` in the spec example. */
static enum tl_ledger_err variant(const char *from, const char *to, const char **member) {
    static char buf[4096];
    const char *ex = SPEC_EXAMPLE;
    const char *at = strstr(ex, from);
    assert_non_null(at);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - ex), ex, to, at + strlen(from));
    return parse(buf, member);
}

typedef struct bad {
    const char *from, *to;
    enum tl_ledger_err err;
    const char *member;
} bad;

static void test_rejections(void **state) {
    (void)state;
    static const bad cases[] = {
        /* figures sent as JSON numbers: precision is already lost above 2^53 */
        {"\"88190\"", "88190", TL_LEDGER_ERR_NOT_STRING, "ledger_seq"},
        {"\"41210\"", "41210", TL_LEDGER_ERR_NOT_STRING, "trades"},
        {"\"98765432\"", "null", TL_LEDGER_ERR_NOT_STRING, "qty"},
        {"\"1795000000000000000\"", "1.795e18", TL_LEDGER_ERR_NOT_STRING, "ts_ns"},
        {"\"20000\"", "20000", TL_LEDGER_ERR_NOT_STRING, "symbols[].trades"},
        /* decimal strings */
        {"\"88190\"", "\"-1\"", TL_LEDGER_ERR_DECIMAL, "ledger_seq"},
        {"\"88190\"", "\"+1\"", TL_LEDGER_ERR_DECIMAL, "ledger_seq"},
        {"\"88190\"", "\"088190\"", TL_LEDGER_ERR_DECIMAL, "ledger_seq"},
        {"\"88190\"", "\"00\"", TL_LEDGER_ERR_DECIMAL, "ledger_seq"},
        {"\"88190\"", "\"\"", TL_LEDGER_ERR_DECIMAL, "ledger_seq"},
        {"\"88190\"", "\"1.0\"", TL_LEDGER_ERR_DECIMAL, "ledger_seq"},
        {"\"88190\"", "\" 1\"", TL_LEDGER_ERR_DECIMAL, "ledger_seq"},
        {"\"88190\"", "\"1e3\"", TL_LEDGER_ERR_DECIMAL, "ledger_seq"},
        {"\"88190\"", "\"0x10\"", TL_LEDGER_ERR_DECIMAL, "ledger_seq"},
        {"\"41210\"", "\"18446744073709551616\"", TL_LEDGER_ERR_OVERFLOW, "trades"},
        {"\"41210\"", "\"99999999999999999999999\"", TL_LEDGER_ERR_OVERFLOW, "trades"},
        {"\"41210\"", "\"184467440737095516150x\"", TL_LEDGER_ERR_DECIMAL, "trades"},
        {"\"5\"", "\"-5\"", TL_LEDGER_ERR_DECIMAL, "symbols[].notional"},
        /* the checksum */
        {"9f0c4e2a11d3b7e5", "9F0C4E2A11D3B7E5", TL_LEDGER_ERR_CHECKSUM, "checksum"},
        {"9f0c4e2a11d3b7e5", "9f0c4e2a11d3b7e", TL_LEDGER_ERR_CHECKSUM, "checksum"},
        {"9f0c4e2a11d3b7e5", "9f0c4e2a11d3b7e50", TL_LEDGER_ERR_CHECKSUM, "checksum"},
        {"9f0c4e2a11d3b7e5", "9f0c4e2a11d3b7g5", TL_LEDGER_ERR_CHECKSUM, "checksum"},
        {"9f0c4e2a11d3b7e5", "", TL_LEDGER_ERR_CHECKSUM, "checksum"},
        {"\"9f0c4e2a11d3b7e5\"", "11", TL_LEDGER_ERR_NOT_STRING, "checksum"},
        /* members */
        {"\"ledger_seq\"", "\"ledger_sequence\"", TL_LEDGER_ERR_MISSING, "ledger_seq"},
        {"\"checksum\"", "\"hash\"", TL_LEDGER_ERR_MISSING, "checksum"},
        {"\"ts_ns\"", "\"ts\"", TL_LEDGER_ERR_MISSING, "ts_ns"},
        {"\"symbols\"", "\"syms\"", TL_LEDGER_ERR_MISSING, "symbols"},
        {"\"qty\":\"98765432\"", "\"qty\":\"1\",\"qty\":\"1\"", TL_LEDGER_ERR_DUPLICATE, "qty"},
        /* symbols */
        {"[{", "{\"a\":[{", TL_LEDGER_ERR_JSON, ""},
        {"\"symbols\":[", "\"symbols\":{\"x\":", TL_LEDGER_ERR_JSON, ""},
        {"[{\"symbol\":1", "[{\"symbol\":0", TL_LEDGER_ERR_SYMBOL, "symbols[].symbol"},
        {"[{\"symbol\":1", "[{\"symbol\":-1", TL_LEDGER_ERR_SYMBOL, "symbols[].symbol"},
        {"[{\"symbol\":1", "[{\"symbol\":1.5", TL_LEDGER_ERR_SYMBOL, "symbols[].symbol"},
        {"[{\"symbol\":1", "[{\"symbol\":4294967296", TL_LEDGER_ERR_SYMBOL, "symbols[].symbol"},
        {"[{\"symbol\":1", "[{\"symbol\":\"1\"", TL_LEDGER_ERR_SYMBOL, "symbols[].symbol"},
        {"[{\"symbol\":1,", "[{", TL_LEDGER_ERR_MISSING, "symbols[].symbol"},
        {"\"trades\":\"20000\",", "", TL_LEDGER_ERR_MISSING, "symbols[].trades"},
        {"[{\"symbol\":1", "[7,{\"symbol\":1", TL_LEDGER_ERR_SYMBOL, "symbols[]"},
        {"[{\"symbol\":1,", "[{\"symbol\":1,\"symbol\":2,", TL_LEDGER_ERR_DUPLICATE, "symbols[]"},
        /* NUL inside a string would cut it short */
        {"\"88190\"", "\"88\\u0000190\"", TL_LEDGER_ERR_JSON, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *member = NULL;
        enum tl_ledger_err e = variant(cases[i].from, cases[i].to, &member);
        if (e != cases[i].err || strcmp(member, cases[i].member) != 0)
            fail_msg("case %zu (%s -> %s): got %s at \"%s\", want %s at \"%s\"", i, cases[i].from,
                     cases[i].to, tl_ledger_err_name(e), member, tl_ledger_err_name(cases[i].err),
                     cases[i].member);
    }
}

static void test_symbols_array(void **state) {
    (void)state;
    const char *member;
    assert_int_equal(
        variant("[{\"symbol\":1,\"trades\":\"20000\",\"notional\":\"5\",\"qty\":\"6\"}]", "{}",
                &member),
        TL_LEDGER_ERR_SYMBOLS);
    assert_string_equal(member, "symbols");
    assert_int_equal(
        variant("[{\"symbol\":1,\"trades\":\"20000\",\"notional\":\"5\",\"qty\":\"6\"}]",
                "[{\"symbol\":1,\"trades\":\"1\",\"notional\":\"1\",\"qty\":\"1\"},"
                "{\"symbol\":1,\"trades\":\"1\",\"notional\":\"1\",\"qty\":\"1\"}]",
                &member),
        TL_LEDGER_ERR_DUPLICATE_SYMBOL);
    /* 256 symbols are fine, 257 are not */
    for (int n = 256; n <= 257; n++) {
        size_t cap = 64 * 300 + 512;
        char *b = malloc(cap);
        size_t o = (size_t)snprintf(b, cap,
                                    "{\"ledger_seq\":\"1\",\"checksum\":\"0000000000000001\","
                                    "\"trades\":\"0\",\"qty\":\"0\",\"notional\":\"0\","
                                    "\"ts_ns\":\"1\",\"symbols\":[");
        for (int i = 0; i < n; i++)
            o += (size_t)snprintf(b + o, cap - o,
                                  "%s{\"symbol\":%d,\"trades\":\"1\",\"qty\":\"1\","
                                  "\"notional\":\"1\"}",
                                  i ? "," : "", i + 1);
        o += (size_t)snprintf(b + o, cap - o, "]}");
        enum tl_ledger_err e = tl_ledger_parse(b, o, &wm, NULL);
        assert_int_equal(e, n == 256 ? TL_LEDGER_OK : TL_LEDGER_ERR_TOO_MANY_SYMBOLS);
        if (n == 256)
            assert_int_equal(wm.symbol_count, 256);
        free(b);
    }
}

static void test_shapes(void **state) {
    (void)state;
    const char *member;
    assert_int_equal(parse("", &member), TL_LEDGER_ERR_JSON);
    assert_int_equal(parse("{", &member), TL_LEDGER_ERR_JSON);
    assert_int_equal(parse("not json", &member), TL_LEDGER_ERR_JSON);
    assert_int_equal(parse("[]", &member), TL_LEDGER_ERR_NOT_OBJECT);
    assert_int_equal(parse("\"x\"", &member), TL_LEDGER_ERR_NOT_OBJECT);
    assert_int_equal(parse("{}", &member), TL_LEDGER_ERR_MISSING);
    assert_string_equal(member, "ledger_seq");
    assert_int_equal(parse(SPEC_EXAMPLE " x", &member), TL_LEDGER_ERR_JSON);
    assert_int_equal(parse(SPEC_EXAMPLE SPEC_EXAMPLE, &member), TL_LEDGER_ERR_JSON);
    /* a raw NUL byte inside the length */
    char b[sizeof SPEC_EXAMPLE];
    memcpy(b, SPEC_EXAMPLE, sizeof b);
    b[20] = '\0';
    assert_int_equal(tl_ledger_parse(b, sizeof b - 1, &wm, &member), TL_LEDGER_ERR_JSON);
    /* the length is respected: a prefix is not the whole reply */
    assert_int_equal(tl_ledger_parse(SPEC_EXAMPLE, strlen(SPEC_EXAMPLE) - 1, &wm, &member),
                     TL_LEDGER_ERR_JSON);
    /* refused before parsing */
    size_t big = TL_LEDGER_BODY_MAX + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    assert_int_equal(tl_ledger_parse(huge, big, &wm, &member), TL_LEDGER_ERR_TOO_LARGE);
    free(huge);
    /* deep nesting is an error, not a crash */
    size_t deep = 20000;
    char *d = malloc(deep * 2 + 1);
    for (size_t i = 0; i < deep; i++) {
        d[i] = '[';
        d[deep + i] = ']';
    }
    assert_int_equal(tl_ledger_parse(d, deep * 2, &wm, &member), TL_LEDGER_ERR_JSON);
    free(d);
    /* names */
    for (int e = 0; e < TL_LEDGER_ERR_COUNT; e++)
        assert_true(strcmp(tl_ledger_err_name((enum tl_ledger_err)e), "?") != 0);
    assert_string_equal(tl_ledger_err_name(TL_LEDGER_ERR_COUNT), "?");
    assert_string_equal(tl_ledger_err_name(TL_LEDGER_ERR_NOT_STRING), "not_string");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_example), cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_rejections),   cmocka_unit_test(test_symbols_array),
        cmocka_unit_test(test_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
