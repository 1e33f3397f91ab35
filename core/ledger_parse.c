/* ledger_parse.c: the watermark reply of ledger.md, from bytes to a
 * tl_ledger_wm (see ledger.h). Outside bytes: every way to be wrong has a
 * name, nothing is asserted on them, and nothing is read past `len`.
 *
 * 64-bit figures are decimal strings converted digit by digit: JSON numbers
 * lose precision above 2^53, so a figure sent as a number is refused (it may
 * already be wrong). The symbol id is the one JSON number of the reply (a
 * u32: exact in a double); it must be an integer 1..2^32-1.
 */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "assert.h"
#include "ledger.h"

const char *tl_ledger_err_name(enum tl_ledger_err e) {
    static const char *const names[TL_LEDGER_ERR_COUNT] = {
        [TL_LEDGER_OK] = "ok",
        [TL_LEDGER_ERR_TOO_LARGE] = "body_too_large",
        [TL_LEDGER_ERR_JSON] = "bad_json",
        [TL_LEDGER_ERR_NOT_OBJECT] = "not_object",
        [TL_LEDGER_ERR_MISSING] = "missing_member",
        [TL_LEDGER_ERR_DUPLICATE] = "duplicate_member",
        [TL_LEDGER_ERR_NOT_STRING] = "not_string",
        [TL_LEDGER_ERR_DECIMAL] = "bad_decimal",
        [TL_LEDGER_ERR_OVERFLOW] = "decimal_overflow",
        [TL_LEDGER_ERR_CHECKSUM] = "bad_checksum",
        [TL_LEDGER_ERR_SYMBOLS] = "symbols_not_array",
        [TL_LEDGER_ERR_TOO_MANY_SYMBOLS] = "too_many_symbols",
        [TL_LEDGER_ERR_SYMBOL] = "bad_symbol",
        [TL_LEDGER_ERR_DUPLICATE_SYMBOL] = "duplicate_symbol",
    };
    return (unsigned)e < TL_LEDGER_ERR_COUNT ? names[e] : "?";
}

/* "0" or [1-9][0-9]*, at most 2^64 - 1. */
static enum tl_ledger_err decimal(const cJSON *it, uint64_t *out) {
    if (it == NULL)
        return TL_LEDGER_ERR_MISSING;
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return TL_LEDGER_ERR_NOT_STRING;
    const char *s = it->valuestring;
    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
        return TL_LEDGER_ERR_DECIMAL;
    uint64_t v = 0;
    /* Bounded: a u64 has 20 digits; the 21st is an overflow or not a digit. */
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9')
            return TL_LEDGER_ERR_DECIMAL;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10u) {
            /* Tell a long string of digits (overflow) from garbage. */
            for (size_t k = i + 1; s[k] != '\0'; k++)
                if (s[k] < '0' || s[k] > '9')
                    return TL_LEDGER_ERR_DECIMAL;
            return TL_LEDGER_ERR_OVERFLOW;
        }
        v = v * 10u + d;
    }
    *out = v;
    return TL_LEDGER_OK;
}

static enum tl_ledger_err hex16(const cJSON *it, uint64_t *out) {
    if (it == NULL)
        return TL_LEDGER_ERR_MISSING;
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return TL_LEDGER_ERR_NOT_STRING;
    const char *s = it->valuestring;
    uint64_t v = 0;
    size_t i = 0;
    for (; s[i] != '\0' && i < 17; i++) {
        char c = s[i];
        uint64_t d;
        if (c >= '0' && c <= '9')
            d = (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (uint64_t)(c - 'a' + 10);
        else
            return TL_LEDGER_ERR_CHECKSUM;
        v = v << 4 | d;
    }
    if (i != 16)
        return TL_LEDGER_ERR_CHECKSUM;
    *out = v;
    return TL_LEDGER_OK;
}

/* The members of `obj` named in `names` (at most 8), each exactly once.
 * Unknown members are ignored (a newer ledger may add some). */
static enum tl_ledger_err members(const cJSON *obj, const char *const *names, size_t n,
                                  const cJSON **found, const char **member) {
    TL_ASSERT(n <= 8);
    for (size_t k = 0; k < n; k++)
        found[k] = NULL;
    /* Bounded by the body size: cJSON built the list from at most
     * TL_LEDGER_BODY_MAX bytes. */
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        if (c->string == NULL)
            continue;
        for (size_t k = 0; k < n; k++) {
            if (strcmp(c->string, names[k]) != 0)
                continue;
            if (found[k] != NULL) {
                *member = names[k];
                return TL_LEDGER_ERR_DUPLICATE;
            }
            found[k] = c;
        }
    }
    return TL_LEDGER_OK;
}

/* A string holding U+0000 would be cut short by cJSON ("12\u00003" would
 * read as "12"): refuse the escape anywhere. */
static bool has_nul_escape(const char *body, size_t len) {
    for (size_t i = 0; i + 6 <= len; i++) {
        if (body[i] == '\\' && body[i + 1] == 'u' && body[i + 2] == '0' && body[i + 3] == '0' &&
            body[i + 4] == '0' && body[i + 5] == '0')
            return true;
        if (body[i] == '\\')
            i++; /* an escaped backslash does not start an escape */
    }
    return false;
}

enum { M_SEQ, M_CHECKSUM, M_TRADES, M_QTY, M_NOTIONAL, M_SYMBOLS, M_TS, M_COUNT };
enum { S_SYMBOL, S_TRADES, S_QTY, S_NOTIONAL, S_COUNT };

static enum tl_ledger_err one_symbol(const cJSON *it, tl_ledger_symfigs *out, const char **member) {
    static const char *const names[S_COUNT] = {"symbol", "trades", "qty", "notional"};
    static const char *const where[S_COUNT] = {"symbols[].symbol", "symbols[].trades",
                                               "symbols[].qty", "symbols[].notional"};
    if (!cJSON_IsObject(it)) {
        *member = "symbols[]";
        return TL_LEDGER_ERR_SYMBOL;
    }
    const cJSON *m[S_COUNT];
    enum tl_ledger_err e = members(it, names, S_COUNT, m, member);
    if (e != TL_LEDGER_OK) {
        *member = "symbols[]";
        return e;
    }
    *member = where[S_SYMBOL];
    if (m[S_SYMBOL] == NULL)
        return TL_LEDGER_ERR_MISSING;
    if (!cJSON_IsNumber(m[S_SYMBOL]))
        return TL_LEDGER_ERR_SYMBOL;
    double d = m[S_SYMBOL]->valuedouble;
    /* NaN and infinities fail the range test; the cast is defined inside it. */
    if (!(d >= 1.0 && d <= 4294967295.0) || (double)(uint32_t)d != d)
        return TL_LEDGER_ERR_SYMBOL;
    memset(out, 0, sizeof *out);
    out->symbol = (uint32_t)d;
    uint64_t *dst[S_COUNT] = {NULL, &out->f.trades, &out->f.qty, &out->f.notional};
    for (int k = S_TRADES; k < S_COUNT; k++) {
        *member = where[k];
        e = decimal(m[k], dst[k]);
        if (e != TL_LEDGER_OK)
            return e;
    }
    return TL_LEDGER_OK;
}

static enum tl_ledger_err parse_root(const cJSON *root, tl_ledger_wm *out, const char **member) {
    static const char *const names[M_COUNT] = {"ledger_seq", "checksum", "trades", "qty",
                                               "notional",   "symbols",  "ts_ns"};
    if (!cJSON_IsObject(root))
        return TL_LEDGER_ERR_NOT_OBJECT;
    const cJSON *m[M_COUNT];
    enum tl_ledger_err e = members(root, names, M_COUNT, m, member);
    if (e != TL_LEDGER_OK)
        return e;
    *member = names[M_SEQ];
    if ((e = decimal(m[M_SEQ], &out->ledger_seq)) != TL_LEDGER_OK)
        return e;
    *member = names[M_CHECKSUM];
    if ((e = hex16(m[M_CHECKSUM], &out->checksum)) != TL_LEDGER_OK)
        return e;
    *member = names[M_TRADES];
    if ((e = decimal(m[M_TRADES], &out->total.trades)) != TL_LEDGER_OK)
        return e;
    *member = names[M_QTY];
    if ((e = decimal(m[M_QTY], &out->total.qty)) != TL_LEDGER_OK)
        return e;
    *member = names[M_NOTIONAL];
    if ((e = decimal(m[M_NOTIONAL], &out->total.notional)) != TL_LEDGER_OK)
        return e;
    *member = names[M_TS];
    if ((e = decimal(m[M_TS], &out->ts_ns)) != TL_LEDGER_OK)
        return e;
    *member = names[M_SYMBOLS];
    const cJSON *syms = m[M_SYMBOLS];
    if (syms == NULL)
        return TL_LEDGER_ERR_MISSING;
    if (!cJSON_IsArray(syms))
        return TL_LEDGER_ERR_SYMBOLS;
    uint32_t n = 0;
    for (const cJSON *it = syms->child; it != NULL; it = it->next) {
        if (n == TL_LEDGER_SYMBOLS_MAX)
            return TL_LEDGER_ERR_TOO_MANY_SYMBOLS;
        e = one_symbol(it, &out->symbols[n], member);
        if (e != TL_LEDGER_OK)
            return e;
        /* n <= 256: the quadratic scan costs at most 32640 compares. */
        for (uint32_t k = 0; k < n; k++) {
            if (out->symbols[k].symbol == out->symbols[n].symbol) {
                *member = "symbols[].symbol";
                return TL_LEDGER_ERR_DUPLICATE_SYMBOL;
            }
        }
        n++;
    }
    out->symbol_count = n;
    return TL_LEDGER_OK;
}

enum tl_ledger_err tl_ledger_parse(const char *body, size_t len, tl_ledger_wm *out,
                                   const char **member) {
    const char *unused;
    if (member == NULL)
        member = &unused;
    *member = "";
    if (len > TL_LEDGER_BODY_MAX)
        return TL_LEDGER_ERR_TOO_LARGE;
    /* A NUL byte, raw or escaped, would cut a C string short inside cJSON. */
    if (body == NULL || len == 0 || memchr(body, 0, len) != NULL || has_nul_escape(body, len))
        return TL_LEDGER_ERR_JSON;
    memset(out, 0, offsetof(tl_ledger_wm, symbols));
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (root == NULL)
        return TL_LEDGER_ERR_JSON;
    /* Nothing but white space may follow the value. */
    enum tl_ledger_err e = TL_LEDGER_OK;
    for (const char *p = end; p < body + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            e = TL_LEDGER_ERR_JSON;
            break;
        }
    }
    if (e == TL_LEDGER_OK)
        e = parse_root(root, out, member);
    cJSON_Delete(root);
    return e;
}
