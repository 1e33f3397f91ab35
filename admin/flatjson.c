/* flatjson.c: see flatjson.h.
 *
 * Invariants:
 * - every loop advances i and stops at len: the scan is O(len), no recursion;
 * - a string accepted by scan_string decodes (tl_fj_decode) into strict
 *   UTF-8 with no error path left: the escapes, surrogate pairs and raw
 *   multi-byte sequences were all checked here.
 */
#include "admin/flatjson.h"

#include <string.h>

#include "core/assert.h"

static const char *const fj_err_names[TL_FJ_ERR_COUNT] = {
    [TL_FJ_OK] = "ok",
    [TL_FJ_ERR_TOO_LONG] = "too_long",
    [TL_FJ_ERR_SYNTAX] = "syntax",
    [TL_FJ_ERR_NESTED] = "nested",
    [TL_FJ_ERR_TOO_MANY] = "too_many_members",
    [TL_FJ_ERR_CONTROL_CHAR] = "control_char",
    [TL_FJ_ERR_BAD_ESCAPE] = "bad_escape",
    [TL_FJ_ERR_BAD_UTF8] = "bad_utf8",
};

const char *tl_fj_err_name(enum tl_fj_err e) {
    return (unsigned)e < TL_FJ_ERR_COUNT ? fj_err_names[e] : "unknown";
}

static bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t skip_ws(const char *s, size_t i, size_t len) {
    while (i < len && is_ws(s[i]))
        i++;
    return i;
}

static int hex_val(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads 4 hex digits at s[i]; -1 if they are not there. */
static int32_t read_u4(const char *s, size_t i, size_t len) {
    if (len - i < 4)
        return -1;
    int32_t v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = hex_val(s[i + k]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

/* Length of the strict UTF-8 sequence at s[0, n), or 0 if invalid.
 * Unicode 15, table 3-7 (well-formed byte sequences). */
static size_t utf8_seq_len(const uint8_t *s, size_t n) {
    uint8_t b0 = s[0];
    if (b0 < 0x80)
        return 1;
    uint8_t lo = 0x80, hi = 0xBF;
    size_t need;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3;
        if (b0 == 0xE0)
            lo = 0xA0;
        else if (b0 == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4;
        if (b0 == 0xF0)
            lo = 0x90;
        else if (b0 == 0xF4)
            hi = 0x8F; /* <= U+10FFFF */
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < need; k++) {
        if (s[k] < 0x80 || s[k] > 0xBF)
            return 0;
    }
    return need;
}

bool tl_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_seq_len(s + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* s[i] is the opening quote. On success *end is the index just past the
 * closing quote and *escaped says whether a backslash occurred. */
static enum tl_fj_err scan_string(const char *s, size_t i, size_t len, size_t *end, bool *escaped) {
    TL_ASSERT(i < len && s[i] == '"');
    i++;
    *escaped = false;
    while (i < len) {
        uint8_t c = (uint8_t)s[i];
        if (c == '"') {
            *end = i + 1;
            return TL_FJ_OK;
        }
        if (c < 0x20)
            return TL_FJ_ERR_CONTROL_CHAR;
        if (c == '\\') {
            *escaped = true;
            if (i + 1 >= len)
                return TL_FJ_ERR_BAD_ESCAPE;
            char e = s[i + 1];
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                e == 't') {
                i += 2;
                continue;
            }
            if (e != 'u')
                return TL_FJ_ERR_BAD_ESCAPE;
            int32_t u = read_u4(s, i + 2, len);
            if (u < 0)
                return TL_FJ_ERR_BAD_ESCAPE;
            i += 6;
            /* An unpaired surrogate is valid JSON grammar but no Unicode
             * scalar value: it cannot become UTF-8. */
            if (u >= 0xDC00 && u <= 0xDFFF)
                return TL_FJ_ERR_BAD_UTF8; /* a low surrogate alone */
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (len - i < 2 || s[i] != '\\' || s[i + 1] != 'u')
                    return TL_FJ_ERR_BAD_UTF8;
                int32_t u2 = read_u4(s, i + 2, len);
                if (u2 < 0)
                    return TL_FJ_ERR_BAD_ESCAPE;
                if (u2 < 0xDC00 || u2 > 0xDFFF)
                    return TL_FJ_ERR_BAD_UTF8;
                i += 6;
            }
            continue;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq_len((const uint8_t *)s + i, len - i);
        if (k == 0)
            return TL_FJ_ERR_BAD_UTF8;
        i += k;
    }
    return TL_FJ_ERR_SYNTAX; /* unterminated */
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool scan_number(const char *s, size_t i, size_t len, size_t *end) {
    if (i < len && s[i] == '-')
        i++;
    if (i >= len || !is_digit(s[i]))
        return false;
    if (s[i] == '0') {
        i++;
    } else {
        while (i < len && is_digit(s[i]))
            i++;
    }
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || !is_digit(s[i]))
            return false;
        while (i < len && is_digit(s[i]))
            i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= len || !is_digit(s[i]))
            return false;
        while (i < len && is_digit(s[i]))
            i++;
    }
    *end = i;
    return true;
}

static bool scan_literal(const char *s, size_t i, size_t len, const char *lit, size_t *end) {
    size_t n = strlen(lit);
    if (len - i < n || memcmp(s + i, lit, n) != 0)
        return false;
    *end = i + n;
    return true;
}

enum tl_fj_err tl_fj_parse(const char *s, size_t len, tl_fj_member *members, size_t cap,
                           size_t *n) {
    *n = 0;
    if (len > TL_FJ_INPUT_MAX)
        return TL_FJ_ERR_TOO_LONG;
    size_t i = skip_ws(s, 0, len);
    if (i >= len || s[i] != '{')
        return TL_FJ_ERR_SYNTAX;
    i = skip_ws(s, i + 1, len);
    if (i < len && s[i] == '}') {
        i = skip_ws(s, i + 1, len);
        return i == len ? TL_FJ_OK : TL_FJ_ERR_SYNTAX;
    }
    /* Each iteration consumes at least `"":0,` so it runs at most len times. */
    for (;;) {
        if (i >= len || s[i] != '"')
            return TL_FJ_ERR_SYNTAX;
        tl_fj_member m = {0};
        size_t end = 0;
        enum tl_fj_err e = scan_string(s, i, len, &end, &m.key_escaped);
        if (e != TL_FJ_OK)
            return e;
        m.key_off = (uint32_t)(i + 1);
        m.key_len = (uint32_t)(end - i - 2);
        i = skip_ws(s, end, len);
        if (i >= len || s[i] != ':')
            return TL_FJ_ERR_SYNTAX;
        i = skip_ws(s, i + 1, len);
        if (i >= len)
            return TL_FJ_ERR_SYNTAX;
        char c = s[i];
        if (c == '"') {
            e = scan_string(s, i, len, &end, &m.val_escaped);
            if (e != TL_FJ_OK)
                return e;
            m.type = TL_FJ_STRING;
            m.val_off = (uint32_t)(i + 1);
            m.val_len = (uint32_t)(end - i - 2);
        } else {
            if (c == '{' || c == '[')
                return TL_FJ_ERR_NESTED;
            if (c == '-' || is_digit(c)) {
                if (!scan_number(s, i, len, &end))
                    return TL_FJ_ERR_SYNTAX;
                m.type = TL_FJ_NUMBER;
            } else if (scan_literal(s, i, len, "true", &end)) {
                m.type = TL_FJ_TRUE;
            } else if (scan_literal(s, i, len, "false", &end)) {
                m.type = TL_FJ_FALSE;
            } else if (scan_literal(s, i, len, "null", &end)) {
                m.type = TL_FJ_NULL;
            } else {
                return TL_FJ_ERR_SYNTAX;
            }
            m.val_off = (uint32_t)i;
            m.val_len = (uint32_t)(end - i);
        }
        if (*n >= cap)
            return TL_FJ_ERR_TOO_MANY;
        members[(*n)++] = m;
        i = skip_ws(s, end, len);
        if (i >= len)
            return TL_FJ_ERR_SYNTAX;
        if (s[i] == ',') {
            i = skip_ws(s, i + 1, len);
            continue;
        }
        if (s[i] != '}')
            return TL_FJ_ERR_SYNTAX;
        i = skip_ws(s, i + 1, len);
        return i == len ? TL_FJ_OK : TL_FJ_ERR_SYNTAX;
    }
}

static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool tl_fj_decode(const char *raw, size_t raw_len, char *out, size_t cap, size_t *out_len) {
    size_t o = 0;
    size_t i = 0;
    while (i < raw_len) {
        char tmp[4];
        size_t k;
        size_t adv;
        if (raw[i] != '\\') {
            tmp[0] = raw[i];
            k = 1;
            adv = 1;
        } else {
            /* tl_fj_parse validated the escape: it is complete. */
            TL_ASSERT(i + 1 < raw_len);
            char e = raw[i + 1];
            adv = 2;
            k = 1;
            switch (e) {
                case 'b':
                    tmp[0] = '\b';
                    break;
                case 'f':
                    tmp[0] = '\f';
                    break;
                case 'n':
                    tmp[0] = '\n';
                    break;
                case 'r':
                    tmp[0] = '\r';
                    break;
                case 't':
                    tmp[0] = '\t';
                    break;
                case 'u': {
                    int32_t u = read_u4(raw, i + 2, raw_len);
                    TL_ASSERT(u >= 0);
                    uint32_t cp = (uint32_t)u;
                    adv = 6;
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        int32_t u2 = read_u4(raw, i + 8, raw_len);
                        TL_ASSERT(u2 >= 0xDC00 && u2 <= 0xDFFF);
                        cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)u2 - 0xDC00);
                        adv = 12;
                    }
                    k = put_utf8(tmp, cp);
                    break;
                }
                default: /* '"', '\\', '/' */
                    tmp[0] = e;
                    break;
            }
        }
        if (cap - o < k) {
            *out_len = o;
            return false;
        }
        memcpy(out + o, tmp, k);
        o += k;
        i += adv;
    }
    *out_len = o;
    return true;
}

bool tl_fj_equals(const char *raw, size_t raw_len, bool escaped, const char *lit, size_t lit_len) {
    if (!escaped)
        return raw_len == lit_len && memcmp(raw, lit, lit_len) == 0;
    char buf[64];
    size_t n = 0;
    if (lit_len > sizeof buf || !tl_fj_decode(raw, raw_len, buf, sizeof buf, &n))
        return false;
    return n == lit_len && memcmp(buf, lit, lit_len) == 0;
}
