/* xwal1_fast.c: the fast xwal1 payload decoder.
 *
 * One pass over the bytes, no tree, no allocation, no recursion. It knows
 * upstream's schema (xwal1_int.h), so it walks the record, the events array,
 * each event's variant object and its envelope with typed field handlers,
 * and skips the values of unknown fields with an explicit stack. It still
 * checks all of RFC 8259 everywhere (it never accepts what the cJSON
 * reference rejects, and the reverse: test_xwal1_json and fuzz_xwal1 hold
 * it to that).
 *
 * Speed (bench/bench_xwal1.c) comes from three things:
 *   - a pre-pass, 64 bytes a step with SSE2: if the payload is plain
 *     (printable ASCII, no backslash: what upstream writes for ASCII ids)
 *     no string needs a byte checked, and a bitmap of its quotes gives each
 *     string's end at once; otherwise strings are scanned 16 bytes a step
 *     (one mask finds '"', '\\', control and non-ASCII bytes together);
 *   - the canonical path: upstream's serde_json writes each struct's fields
 *     in declaration order, compact, with no others, so the next key is
 *     known and compared as a literal `,"name":` (two 16-byte loads); any
 *     other shape falls back to the general parser below, which names the
 *     verdict, so the shortcut never changes one;
 *   - only the strings tally needs are decoded (symbol, hashes, amounts,
 *     enums).
 *
 * Errors: a JSON error stops the pass at once (nothing after it can be
 * trusted). A schema error is noted and the pass goes on, because a JSON
 * error later in the payload outranks it (xwal1.h).
 */
#include "xwal1_int.h"

#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "assert.h"

/* Payloads up to this size get the plain pre-pass (its bitmap is on the
 * stack); larger ones, rare, are read by the scanners alone. */
#define PLAIN_MAX_BYTES 8192u
#define PLAIN_WORDS     (PLAIN_MAX_BYTES / 64u)

typedef struct fx {
    const uint8_t *p;
    const uint8_t *base;
    const uint8_t *end;
    xw_acc *acc;
    /* Set when the payload is plain (printable ASCII, no backslash): bit i
     * says byte i is a '"'. Every string is then valid as it stands. */
    const uint64_t *quotes;
    uint32_t depth; /* open containers; the record object is 1 */
    bool ev_bad;    /* a schema error inside the current event */
    char key_buf[XW_STR_CAP];
    char tmp_buf[XW_STR_CAP];
    char ev_symbol_buf[XW_STR_CAP];
    char ev_ckpt_buf[XW_STR_CAP];
    char ev_price_buf[XW_STR_CAP];
    char ev_qty_buf[XW_STR_CAP];
} fx;

/* A string as it sits in the payload, between its quotes. */
typedef struct raw_str {
    const uint8_t *p;
    size_t len;
    bool esc; /* holds a backslash escape */
} raw_str;

static inline uint32_t at_of(const fx *x, const uint8_t *p) {
    return (uint32_t)(p - x->base);
}

static bool json_err(fx *x, const uint8_t *p, const char *what) {
    xw_note(x->acc, TL_XWAL1_ERR_JSON, what, "", at_of(x, p));
    return false;
}

static void field_err(fx *x, const char *what, const char *field) {
    x->ev_bad = true;
    xw_note(x->acc, TL_XWAL1_ERR_BAD_FIELD, what, field, at_of(x, x->p));
}

static inline int peek(const fx *x) {
    return x->p < x->end ? *x->p : -1;
}

static void ws_slow(fx *x) {
    while (x->p < x->end) {
        uint8_t c = *x->p;
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            return;
        x->p++;
    }
}

/* Upstream writes compact JSON: the next byte is almost always a token. */
static inline void ws(fx *x) {
    const uint8_t *p = x->p;
    if (p < x->end && p[0] > 0x20)
        return;
    ws_slow(x);
}

static int hex4(const uint8_t *p) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* Validates the escape at *pp (a backslash) and steps over it. */
static bool skip_escape(fx *x, const uint8_t **pp) {
    const uint8_t *p = *pp;
    if (x->end - p < 2)
        return json_err(x, p, "truncated escape");
    switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            *pp = p + 2;
            return true;
        case 'u':
            break;
        default:
            return json_err(x, p, "invalid escape");
    }
    if (x->end - p < 6)
        return json_err(x, p, "truncated \\u escape");
    int cp = hex4(p + 2);
    if (cp < 0)
        return json_err(x, p, "invalid \\u escape");
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return json_err(x, p, "lone low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (x->end - p < 12 || p[6] != '\\' || p[7] != 'u')
            return json_err(x, p, "lone high surrogate");
        int lo = hex4(p + 8);
        if (lo < 0xDC00 || lo > 0xDFFF)
            return json_err(x, p, "lone high surrogate");
        *pp = p + 12;
        return true;
    }
    *pp = p + 6;
    return true;
}

static bool scan_string_checked(fx *x, raw_str *s);

/* At a '"': the string to its closing quote. In a plain payload that is
 * the next bit of the quote bitmap (its bytes need no checks); else each
 * byte is checked. */
static inline bool scan_string(fx *x, raw_str *s) {
    if (x->quotes == NULL)
        return scan_string_checked(x, s);
    size_t from = (size_t)(x->p - x->base) + 1, n = (size_t)(x->end - x->base);
    size_t w = from >> 6;
    uint64_t bits = from < n ? x->quotes[w] & (~0ull << (from & 63)) : 0;
    while (bits == 0) {
        if (++w * 64 >= n)
            return json_err(x, x->p, "unterminated string");
        bits = x->quotes[w];
    }
    size_t q = w * 64 + (size_t)__builtin_ctzll(bits);
    s->p = x->p + 1;
    s->len = q - from;
    s->esc = false;
    x->p = x->base + q + 1;
    return true;
}

/* Finds the closing quote, checking escapes, control bytes and UTF-8 on
 * the way. */
static bool scan_string_checked(fx *x, raw_str *s) {
    const uint8_t *p = x->p + 1;
    const uint8_t *end = x->end;
    bool esc = false;
    for (;;) {
#ifdef __SSE2__
        const __m128i quote = _mm_set1_epi8('"');
        const __m128i bslash = _mm_set1_epi8('\\');
        const __m128i space = _mm_set1_epi8(0x20);
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)p);
            /* Signed compare: bytes >= 0x80 are negative, so "< 0x20" finds
             * control bytes and the start of every UTF-8 sequence at once. */
            __m128i m =
                _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                             _mm_cmplt_epi8(v, space));
            unsigned mask = (unsigned)_mm_movemask_epi8(m);
            if (mask != 0) {
                p += __builtin_ctz(mask);
                goto special;
            }
            p += 16;
        }
#endif
        while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p >= end)
            return json_err(x, x->p, "unterminated string");
#ifdef __SSE2__
    special:
#endif
        if (*p == '"')
            break;
        if (*p == '\\') {
            esc = true;
            if (!skip_escape(x, &p))
                return false;
            continue;
        }
        if (*p < 0x20)
            return json_err(x, p, "control character in string");
        size_t n = xw_utf8_seq(p, end);
        if (n == 0)
            return json_err(x, p, "invalid UTF-8");
        p += n;
    }
    s->p = x->p + 1;
    s->len = (size_t)(p - s->p);
    s->esc = esc;
    x->p = p + 1;
    return true;
}

/* The decoded value of a string tally looks into; see xw_str. */
static void decode(const raw_str *r, char *buf, xw_str *out) {
    out->set = true;
    out->bad = false;
    out->stable = !r->esc;
    if (!r->esc) {
        /* Raw bytes never hold U+0000: a control byte fails the scan. */
        out->p = (const char *)r->p;
        out->len = (uint32_t)(r->len < XW_STR_CAP + 1u ? r->len : XW_STR_CAP + 1u);
        out->bad = r->len > XW_STR_CAP;
        return;
    }
    const uint8_t *p = r->p, *e = r->p + r->len;
    size_t n = 0;
    while (p < e) {
        uint32_t cp;
        if (*p != '\\') {
            if (n >= XW_STR_CAP)
                goto bad;
            buf[n++] = (char)*p++;
            continue;
        }
        switch (p[1]) {
            case 'b':
                cp = '\b';
                break;
            case 'f':
                cp = '\f';
                break;
            case 'n':
                cp = '\n';
                break;
            case 'r':
                cp = '\r';
                break;
            case 't':
                cp = '\t';
                break;
            case 'u':
                cp = (uint32_t)hex4(p + 2);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    /* the scan checked the pair */
                    cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)hex4(p + 8) - 0xDC00);
                    p += 6;
                }
                p += 4;
                break;
            default:
                cp = p[1]; /* '"', '\\', '/' */
                break;
        }
        p += 2;
        if (cp == 0)
            goto bad;
        uint8_t u[4];
        size_t k;
        if (cp < 0x80) {
            u[0] = (uint8_t)cp, k = 1;
        } else if (cp < 0x800) {
            u[0] = (uint8_t)(0xC0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3F)), k = 2;
        } else if (cp < 0x10000) {
            u[0] = (uint8_t)(0xE0 | cp >> 12), u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
            u[2] = (uint8_t)(0x80 | (cp & 0x3F)), k = 3;
        } else {
            u[0] = (uint8_t)(0xF0 | cp >> 18), u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
            u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)), u[3] = (uint8_t)(0x80 | (cp & 0x3F)), k = 4;
        }
        if (n + k > XW_STR_CAP)
            goto bad;
        memcpy(buf + n, u, k);
        n += k;
    }
    out->p = buf;
    out->len = (uint32_t)n;
    return;
bad:
    out->p = buf;
    out->len = 0;
    out->bad = true;
}

typedef struct num {
    bool neg;
    bool is_int; /* no fraction, no exponent */
    bool ovf;    /* the integer part is above 2^64 - 1 */
    uint64_t mag;
} num;

static inline bool is_digit(const fx *x, const uint8_t *p) {
    return p < x->end && *p >= '0' && *p <= '9';
}

/* Eight ASCII digits at p, as a number (the SWAR method of simdjson and
 * Lemire): false if any of the 8 bytes is not a digit. */
static inline bool eight_digits(const uint8_t *p, uint64_t *out) {
    uint64_t v;
    memcpy(&v, p, 8);
    if (((v & 0xF0F0F0F0F0F0F0F0ull) |
         (((v + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) >> 4)) != 0x3333333333333333ull)
        return false;
    v = (v & 0x0F0F0F0F0F0F0F0Full) * 2561 >> 8;
    v = (v & 0x00FF00FF00FF00FFull) * 6553601 >> 16;
    *out = (v & 0x0000FFFF0000FFFFull) * 42949672960001ull >> 32;
    return true;
}

/* RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static inline __attribute__((always_inline)) bool scan_number(fx *x, num *n) {
    const uint8_t *p = x->p;
    n->neg = false, n->is_int = true, n->ovf = false, n->mag = 0;
    if (*p == '-') {
        n->neg = true;
        p++;
    }
    if (!is_digit(x, p))
        return json_err(x, p, "invalid number");
    if (*p == '0') {
        p++;
        if (is_digit(x, p))
            return json_err(x, p, "leading zero");
    } else {
        /* 19 digits never overflow a u64: check only past them */
        const uint8_t *stop = x->end - p > 19 ? p + 19 : x->end;
        uint64_t v = 0;
        unsigned d;
        uint64_t eight;
        if (stop - p >= 8 && eight_digits(p, &eight)) {
            v = eight; /* timestamps: 13 digits */
            p += 8;
        }
        while (p < stop && (d = (unsigned)(*p - '0')) < 10) {
            v = v * 10 + d;
            p++;
        }
        bool ovf = false;
        while (is_digit(x, p)) {
            d = (unsigned)(*p++ - '0');
            ovf |= __builtin_mul_overflow(v, 10u, &v);
            ovf |= __builtin_add_overflow(v, d, &v);
        }
        n->mag = v;
        n->ovf = ovf;
    }
    if (p < x->end && *p == '.') {
        p++;
        if (!is_digit(x, p))
            return json_err(x, p, "invalid fraction");
        while (is_digit(x, p))
            p++;
        n->is_int = false;
    }
    if (p < x->end && (*p | 0x20) == 'e') {
        p++;
        if (p < x->end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(x, p))
            return json_err(x, p, "invalid exponent");
        while (is_digit(x, p))
            p++;
        n->is_int = false;
    }
    x->p = p;
    return true;
}

static bool scan_literal(fx *x) {
    static const struct {
        const char *s;
        size_t n;
    } lits[3] = {{"true", 4}, {"false", 5}, {"null", 4}};
    for (unsigned i = 0; i < 3; i++) {
        if ((size_t)(x->end - x->p) >= lits[i].n && memcmp(x->p, lits[i].s, lits[i].n) == 0) {
            x->p += lits[i].n;
            return true;
        }
    }
    return json_err(x, x->p, "invalid literal");
}

static bool open_container(fx *x) {
    if (x->depth >= TL_XWAL1_MAX_DEPTH)
        return json_err(x, x->p, "nesting too deep");
    x->depth++;
    x->p++;
    return true;
}

/* At a key: the string, then ':'. */
static bool scan_key(fx *x, raw_str *k) {
    if (peek(x) != '"')
        return json_err(x, x->p, "expected a key");
    if (!scan_string(x, k))
        return false;
    ws(x);
    if (peek(x) != ':')
        return json_err(x, x->p, "expected ':'");
    x->p++;
    ws(x);
    return true;
}

/* Any JSON value, checked and stepped over. Iterative: bit i of `stack`
 * says whether the i-th open container (relative) is an object. */
static bool skip_value(fx *x) {
    uint64_t stack = 0;
    uint32_t lvl = 0;
    raw_str k;
    for (;;) {
        /* a value */
        ws(x);
        int c = peek(x);
        bool done = true; /* the value is complete (not an opened container) */
        if (c == '{' || c == '[') {
            if (!open_container(x))
                return false;
            TL_ASSERT(lvl < 64);
            if (c == '{')
                stack |= 1ull << lvl;
            else
                stack &= ~(1ull << lvl);
            lvl++;
            ws(x);
            if (peek(x) == (c == '{' ? '}' : ']')) {
                x->p++;
                x->depth--;
                lvl--;
            } else {
                if (c == '{' && !scan_key(x, &k))
                    return false;
                done = false;
            }
        } else if (c == '"') {
            if (!scan_string(x, &k))
                return false;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            num n;
            if (!scan_number(x, &n))
                return false;
        } else if (c == 't' || c == 'f' || c == 'n') {
            if (!scan_literal(x))
                return false;
        } else {
            return json_err(x, x->p, "expected a value");
        }
        if (!done)
            continue;
        /* after a value: close containers, or a ',' to the next value */
        for (;;) {
            if (lvl == 0)
                return true;
            ws(x);
            bool obj = (stack >> (lvl - 1)) & 1u;
            c = peek(x);
            if (c == ',') {
                x->p++;
                ws(x);
                if (obj && !scan_key(x, &k))
                    return false;
                break;
            }
            if (c == (obj ? '}' : ']')) {
                x->p++;
                x->depth--;
                lvl--;
                continue;
            }
            return json_err(x, x->p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
}

/* ---- typed values: a wrong type is a bad_field, and the value is still
 * checked as JSON and stepped over ---- */

static bool val_string(fx *x, raw_str *r, bool *ok, const char *field) {
    if (peek(x) == '"') {
        *ok = true;
        return scan_string(x, r);
    }
    *ok = false;
    field_err(x, "expected a string", field);
    return skip_value(x);
}

/* Is the number a value of the integer type? */
static inline bool int_of(uint8_t type, const num *n, uint64_t *u, int64_t *i) {
    if (!n->is_int || n->ovf)
        return false;
    switch (type) {
        case XW_T_U64:
            *u = n->mag;
            return !n->neg;
        case XW_T_U32:
            *u = n->mag;
            return !n->neg && n->mag <= UINT32_MAX;
        case XW_T_I64:
            if (n->neg) {
                /* serde_json reads "-0" as the float -0.0 */
                *i = n->mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)n->mag;
                return n->mag != 0 && n->mag <= (uint64_t)INT64_MAX + 1u;
            }
            *i = (int64_t)n->mag;
            return n->mag <= (uint64_t)INT64_MAX;
        default:
            TL_UNREACHABLE();
    }
}

static bool val_int(fx *x, uint8_t type, uint64_t *u, int64_t *i, const char *field) {
    int c = peek(x);
    if (c != '-' && !(c >= '0' && c <= '9')) {
        field_err(x, "expected an integer", field);
        return skip_value(x);
    }
    num n;
    if (!scan_number(x, &n))
        return false;
    if (!int_of(type, &n, u, i))
        field_err(x, "not an integer of the field's type", field);
    return true;
}

static bool val_bool(fx *x, const char *field) {
    int c = peek(x);
    if (c == 't' || c == 'f') {
        const uint8_t *p = x->p;
        if (!scan_literal(x))
            return false;
        if (*p == 't' || *p == 'f')
            return true;
    } else if (!skip_value(x)) {
        return false;
    }
    field_err(x, "expected a bool", field);
    return true;
}

/* Is the string one of the unit variants of the field's enum? A mode is
 * also stored. */
static bool enum_value(fx *x, const xw_field *fd, const raw_str *r) {
    xw_str s;
    decode(r, x->tmp_buf, &s);
    if (s.bad)
        return false;
    if (fd->type == XW_T_SIDE)
        return xw_side_valid(s.p, s.len);
    if (fd->type == XW_T_OTYPE)
        return xw_otype_valid(s.p, s.len);
    int m = xw_mode_find(s.p, s.len);
    if (m < 0)
        return false;
    x->acc->mode = (uint8_t)m;
    return true;
}

/* side, order_type, symbol_mode: a unit variant, in its string form. */
static bool val_enum(fx *x, const xw_field *fd) {
    int c = peek(x);
    if (fd->type == XW_T_MODE && c == 'n') {
        const uint8_t *p = x->p;
        if (!scan_literal(x))
            return false;
        if (*p == 'n') {
            x->acc->mode = TL_XWAL1_MODE_NULL;
            return true;
        }
        field_err(x, "expected null or a mode", fd->name);
        return true;
    }
    raw_str r;
    bool ok;
    if (!val_string(x, &r, &ok, fd->name))
        return false;
    if (!ok)
        return true;
    if (!enum_value(x, fd, &r))
        field_err(x, "unknown variant", fd->name);
    return true;
}

/* Does the input continue with `"name":` of field f? */
static inline bool lit_match(const fx *x, const xw_field *f) {
    size_t n = f->lit_len;
    TL_ASSERT(n <= XW_LIT_BYTES);
#ifdef __SSE2__
    if (x->end - x->p >= (ptrdiff_t)XW_LIT_BYTES) {
        __m128i a0 = _mm_loadu_si128((const __m128i *)x->p);
        __m128i a1 = _mm_loadu_si128((const __m128i *)(x->p + 16));
        __m128i b0 = _mm_loadu_si128((const __m128i *)f->lit);
        __m128i b1 = _mm_loadu_si128((const __m128i *)(f->lit + 16));
        uint32_t eq = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a0, b0)) |
                      (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a1, b1)) << 16;
        return (eq & f->lit_mask) == f->lit_mask;
    }
#endif
    return (size_t)(x->end - x->p) >= n && memcmp(x->p, f->lit, n) == 0;
}

/* The field or variant a key names. */
static bool key_str(fx *x, const raw_str *k, xw_str *s) {
    decode(k, x->key_buf, s);
    return !s->bad;
}

/* ---- the objects of the schema ----
 *
 * One parser per level (record, events, event, variant body, envelope),
 * each calling only the next: no recursion. They share a member iterator
 * that finds each key (first as the raw `"name":` upstream writes next,
 * else by scanning and looking it up), notes duplicates and, at the close,
 * missing fields. */

typedef struct members {
    const xw_object *o;
    uint32_t seen; /* bit i: fields[i] was read */
    int hint;      /* the field expected next */
    bool first;
} members;

/* At the '{' of an object of schema o. */
static inline bool members_open(fx *x, members *m, const xw_object *o) {
    if (!open_container(x))
        return false;
    m->o = o;
    m->seen = 0;
    m->hint = 0;
    m->first = true;
    return true;
}

/* Moves to the next member's value: 1 with *f its field (-1: an unknown
 * key, whose value the caller skips, as serde does), 0 past the closing
 * '}', -1 on a JSON error. */
static inline int members_next(fx *x, members *m, int *f) {
    const xw_object *o = m->o;
    ws(x);
    int c = peek(x);
    if (c == '}') {
        x->p++;
        x->depth--;
        uint32_t missing = o->required & ~m->seen;
        if (missing != 0)
            field_err(x, "missing field", o->fields[__builtin_ctz(missing)].name);
        return 0;
    }
    if (!m->first) {
        if (c != ',') {
            json_err(x, x->p, "expected ',' or '}'");
            return -1;
        }
        x->p++;
        ws(x);
    }
    m->first = false;
    if (m->hint < o->n_fields && lit_match(x, &o->fields[m->hint])) {
        /* the raw bytes `"name":` are that key, unescaped */
        x->p += o->fields[m->hint].lit_len;
        ws(x);
        *f = m->hint;
    } else {
        raw_str k;
        if (!scan_key(x, &k))
            return -1;
        xw_str ks;
        *f = key_str(x, &k, &ks) ? xw_field_find(o, ks.p, ks.len, m->hint) : -1;
        if (*f < 0)
            return 1;
    }
    m->hint = *f + 1;
    if (m->seen & (1u << *f))
        field_err(x, "duplicate field", o->fields[*f].name);
    m->seen |= 1u << *f;
    return 1;
}

/* What a string field means to tally (its role); ev: the event it belongs
 * to, or NULL for the record. */
static void str_role(fx *x, const xw_field *fd, xw_event *ev, const raw_str *r) {
    xw_str s;
    switch (fd->role) {
        case XW_R_NONE:
            return;
        case XW_R_SYMBOL:
            if (ev != NULL) {
                decode(r, x->ev_symbol_buf, &ev->symbol);
            } else {
                decode(r, x->tmp_buf, &s);
                xw_acc_symbol(x->acc, &s);
            }
            return;
        case XW_R_STATE_HASH:
            if (ev != NULL) {
                decode(r, x->ev_ckpt_buf, &ev->ckpt_hash);
            } else {
                decode(r, x->tmp_buf, &s);
                xw_acc_state_hash(x->acc, &s);
            }
            return;
        case XW_R_PRICE:
            decode(r, x->ev_price_buf, &ev->price);
            return;
        case XW_R_QTY:
            decode(r, x->ev_qty_buf, &ev->qty);
            return;
        default:
            TL_UNREACHABLE();
    }
}

static void int_role(fx *x, const xw_field *fd, xw_event *ev, uint64_t u, int64_t i) {
    if (fd->role == XW_R_SEQ) {
        if (ev != NULL)
            ev->seq = u;
        else
            x->acc->seq = u;
    } else if (fd->role == XW_R_FENCE) {
        x->acc->fence = u;
    } else if (fd->role == XW_R_TS) {
        ev->ts_ms = i;
    }
}

/* A value that is no object or array of the schema. */
static bool parse_leaf(fx *x, const xw_field *fd, xw_event *ev) {
    switch (fd->type) {
        case XW_T_STR: {
            raw_str r;
            bool ok;
            if (!val_string(x, &r, &ok, fd->name))
                return false;
            if (ok)
                str_role(x, fd, ev, &r);
            return true;
        }
        case XW_T_U64:
        case XW_T_U32:
        case XW_T_I64: {
            uint64_t u = 0;
            int64_t i = 0;
            if (!val_int(x, fd->type, &u, &i, fd->name))
                return false;
            int_role(x, fd, ev, u, i);
            return true;
        }
        case XW_T_BOOL:
            return val_bool(x, fd->name);
        case XW_T_SIDE:
        case XW_T_OTYPE:
        case XW_T_MODE:
            return val_enum(x, fd);
        default:
            TL_UNREACHABLE();
    }
}

static bool parse_envelope(fx *x, xw_event *ev) {
    if (peek(x) != '{') {
        field_err(x, "expected an object", "envelope");
        return skip_value(x);
    }
    members m;
    if (!members_open(x, &m, &xw_envelope))
        return false;
    int f, more;
    while ((more = members_next(x, &m, &f)) > 0) {
        if (!(f < 0 ? skip_value(x) : parse_leaf(x, &xw_envelope.fields[f], ev)))
            return false;
    }
    return more == 0;
}

/* The object of a variant, at its '{'. */
static bool parse_body(fx *x, const xw_object *o, xw_event *ev) {
    members m;
    if (!members_open(x, &m, o))
        return false;
    int f, more;
    while ((more = members_next(x, &m, &f)) > 0) {
        bool ok = f < 0                                ? skip_value(x)
                  : o->fields[f].type == XW_T_ENVELOPE ? parse_envelope(x, ev)
                                                       : parse_leaf(x, &o->fields[f], ev);
        if (!ok)
            return false;
    }
    return more == 0;
}

/* One element of `events`: {"Variant":{...}}. */
static bool parse_event(fx *x) {
    xw_event ev;
    memset(&ev, 0, sizeof ev);
    ev.variant = -1;
    x->ev_bad = false;
    if (peek(x) != '{') {
        field_err(x, "event: expected an object", "events");
        if (!skip_value(x))
            return false;
        xw_acc_event(x->acc, &ev);
        return true;
    }
    if (!open_container(x))
        return false;
    ws(x);
    if (peek(x) == '}') {
        x->p++;
        x->depth--;
        field_err(x, "event: no variant", "events");
        xw_acc_event(x->acc, &ev);
        return true;
    }
    raw_str k;
    if (!scan_key(x, &k))
        return false;
    xw_str ks;
    ev.variant = key_str(x, &k, &ks) ? xw_variant_find(ks.p, ks.len) : -1;
    if (ev.variant < 0) {
        field_err(x, "unknown variant", "events");
        if (!skip_value(x))
            return false;
    } else if (peek(x) != '{') {
        field_err(x, "variant: expected an object", xw_variants[ev.variant].name);
        if (!skip_value(x))
            return false;
    } else if (!parse_body(x, &xw_variants[ev.variant], &ev)) {
        return false;
    }
    ws(x);
    while (peek(x) == ',') {
        /* an externally tagged enum is an object with exactly one key */
        x->p++;
        ws(x);
        field_err(x, "event: more than one key", "events");
        if (!scan_key(x, &k) || !skip_value(x))
            return false;
        ws(x);
    }
    if (peek(x) != '}')
        return json_err(x, x->p, "expected ',' or '}'");
    x->p++;
    x->depth--;
    ev.complete = ev.variant >= 0 && !x->ev_bad;
    xw_acc_event(x->acc, &ev);
    return true;
}

static bool parse_events(fx *x) {
    if (peek(x) != '[') {
        field_err(x, "expected an array", "events");
        return skip_value(x);
    }
    if (!open_container(x))
        return false;
    ws(x);
    if (peek(x) == ']') {
        x->p++;
        x->depth--;
        return true;
    }
    for (;;) {
        if (!parse_event(x))
            return false;
        ws(x);
        int c = peek(x);
        if (c == ',') {
            x->p++;
            ws(x);
            continue;
        }
        if (c == ']') {
            x->p++;
            break;
        }
        return json_err(x, x->p, "expected ',' or ']'");
    }
    x->depth--;
    return true;
}

static bool parse_record(fx *x) {
    members m;
    if (!members_open(x, &m, &xw_record))
        return false;
    int f, more;
    while ((more = members_next(x, &m, &f)) > 0) {
        bool ok = f < 0 ? skip_value(x)
                  : xw_record.fields[f].type == XW_T_EVENTS
                      ? parse_events(x)
                      : parse_leaf(x, &xw_record.fields[f], NULL);
        if (!ok)
            return false;
    }
    return more == 0;
}

static bool parse_top(fx *x) {
    ws(x);
    if (x->p >= x->end)
        return json_err(x, x->p, "no value");
    if (*x->p == '{') {
        if (!parse_record(x))
            return false;
    } else {
        field_err(x, "expected an object", "WalRecord");
        if (!skip_value(x))
            return false;
    }
    ws(x);
    if (x->p != x->end)
        return json_err(x, x->p, "trailing characters");
    return true;
}

/* ---- the canonical path ----
 *
 * serde_json writes every record of upstream the same way: compact, the
 * fields of each struct in declaration order, symbol_mode always present,
 * no other fields. For that shape the next key is known: a comma and the
 * literal `"name":` are compared, then the value is read with the same
 * checked scanners as above. On any other shape, or on any record rule
 * broken, it gives up and the general parser reads the payload from the
 * start (and names the verdict). So it only ever accepts what the general
 * parser accepts, with the same record; it only skips the work that the
 * shape makes moot (whitespace, lookups, duplicate and missing fields,
 * unknown fields, depth). Like the general parser, one function per level. */

/* Field i of o, with its comma when it is not the first. */
static inline bool canon_key(fx *x, const xw_object *o, int i) {
    if (i > 0) {
        if (x->p >= x->end || *x->p != ',')
            return false;
        x->p++;
    }
    if (!lit_match(x, &o->fields[i]))
        return false;
    x->p += o->fields[i].lit_len;
    return true;
}

static inline bool canon_char(fx *x, uint8_t c) {
    if (x->p >= x->end || *x->p != c)
        return false;
    x->p++;
    return true;
}

/* Inlined into the per-level loops: ~9% fewer instructions per record. */
static inline __attribute__((always_inline)) bool canon_leaf(fx *x, const xw_field *fd,
                                                             xw_event *ev) {
    int c = peek(x);
    switch (fd->type) {
        case XW_T_STR: {
            raw_str r;
            if (c != '"' || !scan_string(x, &r))
                return false;
            if (fd->role != XW_R_NONE)
                str_role(x, fd, ev, &r);
            return true;
        }
        case XW_T_U64:
        case XW_T_U32:
        case XW_T_I64: {
            num n;
            uint64_t u = 0;
            int64_t i = 0;
            if ((c != '-' && !(c >= '0' && c <= '9')) || !scan_number(x, &n) ||
                !int_of(fd->type, &n, &u, &i))
                return false;
            int_role(x, fd, ev, u, i);
            return true;
        }
        case XW_T_BOOL:
            if (c != 't' && c != 'f')
                return false;
            return scan_literal(x);
        case XW_T_SIDE:
        case XW_T_OTYPE:
        case XW_T_MODE: {
            if (fd->type == XW_T_MODE && c == 'n') {
                if (!scan_literal(x) || x->p[-1] != 'l')
                    return false;
                x->acc->mode = TL_XWAL1_MODE_NULL;
                return true;
            }
            raw_str r;
            return c == '"' && scan_string(x, &r) && enum_value(x, fd, &r);
        }
        default:
            TL_UNREACHABLE();
    }
}

static bool canon_envelope(fx *x, xw_event *ev) {
    if (!canon_char(x, '{'))
        return false;
    for (int i = 0; i < xw_envelope.n_fields; i++) {
        if (!canon_key(x, &xw_envelope, i) || !canon_leaf(x, &xw_envelope.fields[i], ev))
            return false;
    }
    return canon_char(x, '}');
}

static bool canon_body(fx *x, const xw_object *o, xw_event *ev) {
    if (!canon_char(x, '{'))
        return false;
    for (int i = 0; i < o->n_fields; i++) {
        if (!canon_key(x, o, i))
            return false;
        bool ok = o->fields[i].type == XW_T_ENVELOPE ? canon_envelope(x, ev)
                                                     : canon_leaf(x, &o->fields[i], ev);
        if (!ok)
            return false;
    }
    return canon_char(x, '}');
}

static bool canon_event(fx *x) {
    xw_event ev;
    memset(&ev, 0, sizeof ev);
    raw_str k;
    if (!canon_char(x, '{') || peek(x) != '"' || !scan_string(x, &k) || k.esc ||
        !canon_char(x, ':'))
        return false;
    ev.variant = xw_variant_find((const char *)k.p, k.len);
    if (ev.variant < 0 || !canon_body(x, &xw_variants[ev.variant], &ev) || !canon_char(x, '}'))
        return false;
    ev.complete = true;
    xw_acc_event(x->acc, &ev);
    return true;
}

static bool canon_events(fx *x) {
    if (!canon_char(x, '['))
        return false;
    if (canon_char(x, ']'))
        return true;
    do {
        if (!canon_event(x))
            return false;
    } while (canon_char(x, ','));
    return canon_char(x, ']');
}

static bool canon_record(fx *x) {
    if (!canon_char(x, '{'))
        return false;
    for (int i = 0; i < xw_record.n_fields; i++) {
        if (!canon_key(x, &xw_record, i))
            return false;
        bool ok = xw_record.fields[i].type == XW_T_EVENTS
                      ? canon_events(x)
                      : canon_leaf(x, &xw_record.fields[i], NULL);
        if (!ok)
            return false;
    }
    return canon_char(x, '}') && x->p == x->end;
}

static void fx_init(fx *x, const uint8_t *payload, size_t len, xw_acc *acc,
                    const uint64_t *quotes) {
    x->p = payload;
    x->base = payload;
    x->end = payload + len;
    x->acc = acc;
    x->quotes = quotes;
    x->depth = 0;
    x->ev_bad = false;
}

/* The pre-pass: is the payload plain (every byte printable ASCII or DEL,
 * none a backslash)? Then strings need no escape, control or UTF-8 checks,
 * and the bitmap of its quotes, filled here, finds their ends. */
static bool plain_scan(const uint8_t *p, size_t n, uint64_t quotes[PLAIN_WORDS]) {
    TL_ASSERT(n <= PLAIN_MAX_BYTES);
    memset(quotes, 0, ((n + 63) / 64) * sizeof(uint64_t));
    size_t i = 0;
    unsigned special = 0;
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    /* 64 bytes a step: one bitmap word each */
    for (; i + 64 <= n; i += 64) {
        __m128i v0 = _mm_loadu_si128((const __m128i *)(p + i));
        __m128i v1 = _mm_loadu_si128((const __m128i *)(p + i + 16));
        __m128i v2 = _mm_loadu_si128((const __m128i *)(p + i + 32));
        __m128i v3 = _mm_loadu_si128((const __m128i *)(p + i + 48));
        /* signed: < 0x20 is a control byte or >= 0x80 */
        __m128i low =
            _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v0, space), _mm_cmplt_epi8(v1, space)),
                         _mm_or_si128(_mm_cmplt_epi8(v2, space), _mm_cmplt_epi8(v3, space)));
        __m128i bs =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v0, bslash), _mm_cmpeq_epi8(v1, bslash)),
                         _mm_or_si128(_mm_cmpeq_epi8(v2, bslash), _mm_cmpeq_epi8(v3, bslash)));
        __m128i sp = _mm_or_si128(low, bs);
        uint64_t q = (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v0, quote)) |
                     (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v1, quote)) << 16 |
                     (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v2, quote)) << 32 |
                     (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v3, quote)) << 48;
        special |= (unsigned)_mm_movemask_epi8(sp);
        quotes[i >> 6] = q;
    }
    /* the rest, 16 bytes a step; the last step may overlap bytes already
     * done, which only sets their bits again */
    while (i < n && n >= 16) {
        size_t at = i + 16 <= n ? i : n - 16;
        __m128i v = _mm_loadu_si128((const __m128i *)(p + at));
        special |= (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmplt_epi8(v, space), _mm_cmpeq_epi8(v, bslash)));
        unsigned q = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, quote));
        /* the 16 bytes may straddle two bitmap words */
        quotes[at >> 6] |= (uint64_t)q << (at & 63);
        if ((at & 63) > 48)
            quotes[(at >> 6) + 1] |= (uint64_t)q >> (64 - (at & 63));
        i = at + 16;
    }
#endif
    for (; i < n; i++) {
        special |= p[i] < 0x20 || p[i] >= 0x80 || p[i] == '\\';
        quotes[i >> 6] |= (uint64_t)(p[i] == '"') << (i & 63);
    }
    return special == 0;
}

enum tl_xwal1_err tl_xwal1_decode(const uint8_t *payload, size_t len, tl_xwal1_rec *rec) {
    xw_acc acc;
    fx x;
    uint64_t quotes[PLAIN_WORDS];
    bool plain = len <= PLAIN_MAX_BYTES && plain_scan(payload, len, quotes);
    xw_acc_init(&acc, rec);
    fx_init(&x, payload, len, &acc, plain ? quotes : NULL);
    if (canon_record(&x)) {
        TL_ASSERT(acc.err == TL_XWAL1_OK);
        if (xw_acc_finish(&acc) == TL_XWAL1_OK)
            return TL_XWAL1_OK;
    }
    /* Not the canonical shape, or a rule broken: the general parser reads it
     * all again and names the verdict. */
    xw_acc_init(&acc, rec);
    fx_init(&x, payload, len, &acc, plain ? quotes : NULL);
    (void)parse_top(&x); /* a JSON error is noted in acc and outranks everything */
    return xw_acc_finish(&acc);
}
