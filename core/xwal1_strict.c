/* xwal1_strict.c: the reference xwal1 payload decoder, with cJSON.
 *
 * cJSON builds the tree and decodes the escapes, but alone it is neither
 * strict enough nor exact: it reads numbers through a double, takes any
 * byte <= 0x20 as whitespace, skips a BOM, and does not check UTF-8. So a
 * strict lexer runs first. It checks RFC 8259 (grammar, number syntax,
 * escapes, UTF-8, nesting <= TL_XWAL1_MAX_DEPTH) and writes a copy for
 * cJSON in which every token that carries text becomes a string with a
 * one-letter tag:
 *   "abc" -> "Sabc"   a string (key or value)
 *   "a\u0000" -> "Za\u0000"  a string holding U+0000 (cJSON would cut it
 *                            short; such a string is never a name)
 *   -12.5 -> "N-12.5" a number: its digits reach us intact
 * The tree walk then reads upstream's schema from that copy.
 *
 * This is the reference the fast scanner is compared with; it is written
 * independently of it (its own lexer and UTF-8 check), shares only the
 * schema and the accumulator, and allocates (cJSON does): not for the hot
 * path.
 */
#include "xwal1_int.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "assert.h"

/* ---- the lexer ---- */

typedef struct lx {
    const uint8_t *in;
    size_t len;
    size_t i;
    char *out;
    size_t n;
    size_t cap;
    xw_acc *acc;
} lx;

static bool lx_err(lx *l, const char *what) {
    xw_note(l->acc, TL_XWAL1_ERR_JSON, what, "", (uint32_t)l->i);
    return false;
}

static void put(lx *l, char c) {
    TL_ASSERT(l->n < l->cap);
    l->out[l->n++] = c;
}

static int hexval(uint8_t c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The code point of \uXXXX at in[i] (the backslash), or -1. */
static long u_escape(const lx *l, size_t i) {
    if (i + 6 > l->len || l->in[i] != '\\' || l->in[i + 1] != 'u')
        return -1;
    long v = 0;
    for (size_t k = 2; k < 6; k++) {
        int d = hexval(l->in[i + k]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Decodes one UTF-8 sequence by computing its code point, then rejects
 * overlong forms, surrogates and values above U+10FFFF. */
static size_t utf8_len(const uint8_t *p, size_t avail) {
    unsigned n;
    unsigned long cp;
    if ((p[0] & 0xE0) == 0xC0)
        n = 2, cp = p[0] & 0x1Fu;
    else if ((p[0] & 0xF0) == 0xE0)
        n = 3, cp = p[0] & 0x0Fu;
    else if ((p[0] & 0xF8) == 0xF0)
        n = 4, cp = p[0] & 0x07u;
    else
        return 0;
    if (avail < n)
        return 0;
    for (unsigned k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[k] & 0x3Fu);
    }
    static const unsigned long min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* A string at in[i] == '"'; writes "S...", or "Z..." when it holds \u0000. */
static bool lx_string(lx *l) {
    size_t start = l->i + 1, i = start;
    bool nul = false;
    for (;;) {
        if (i >= l->len) {
            l->i = i;
            return lx_err(l, "unterminated string");
        }
        uint8_t c = l->in[i];
        if (c == '"')
            break;
        if (c < 0x20) {
            l->i = i;
            return lx_err(l, "control character in string");
        }
        if (c == '\\') {
            if (i + 1 >= l->len) {
                l->i = i;
                return lx_err(l, "truncated escape");
            }
            uint8_t e = l->in[i + 1];
            if (e == 'u') {
                long cp = u_escape(l, i);
                if (cp < 0) {
                    l->i = i;
                    return lx_err(l, "invalid \\u escape");
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    long lo = u_escape(l, i + 6);
                    if (lo < 0xDC00 || lo > 0xDFFF) {
                        l->i = i;
                        return lx_err(l, "unpaired surrogate");
                    }
                    i += 12;
                    continue;
                }
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    l->i = i;
                    return lx_err(l, "unpaired surrogate");
                }
                nul |= cp == 0;
                i += 6;
                continue;
            }
            if (strchr("\"\\/bfnrt", e) == NULL || e == 0) {
                l->i = i;
                return lx_err(l, "invalid escape");
            }
            i += 2;
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_len(l->in + i, l->len - i);
            if (n == 0) {
                l->i = i;
                return lx_err(l, "invalid UTF-8");
            }
            i += n;
            continue;
        }
        i++;
    }
    put(l, '"');
    put(l, nul ? 'Z' : 'S');
    TL_ASSERT(l->n + (i - start) + 1 <= l->cap);
    memcpy(l->out + l->n, l->in + start, i - start);
    l->n += i - start;
    put(l, '"');
    l->i = i + 1;
    return true;
}

static bool digit_at(const lx *l, size_t i) {
    return i < l->len && l->in[i] >= '0' && l->in[i] <= '9';
}

static bool lx_number(lx *l) {
    size_t s = l->i, i = s;
    if (l->in[i] == '-')
        i++;
    if (!digit_at(l, i)) {
        l->i = i;
        return lx_err(l, "invalid number");
    }
    if (l->in[i] == '0') {
        i++;
    } else {
        while (digit_at(l, i))
            i++;
    }
    if (i < l->len && l->in[i] == '.') {
        i++;
        if (!digit_at(l, i)) {
            l->i = i;
            return lx_err(l, "invalid fraction");
        }
        while (digit_at(l, i))
            i++;
    }
    if (i < l->len && (l->in[i] == 'e' || l->in[i] == 'E')) {
        i++;
        if (i < l->len && (l->in[i] == '+' || l->in[i] == '-'))
            i++;
        if (!digit_at(l, i)) {
            l->i = i;
            return lx_err(l, "invalid exponent");
        }
        while (digit_at(l, i))
            i++;
    }
    /* "01": a number may not run into another digit (the grammar also
     * forbids what follows, but say why). */
    if (digit_at(l, i)) {
        l->i = i;
        return lx_err(l, "leading zero");
    }
    put(l, '"');
    put(l, 'N');
    TL_ASSERT(l->n + (i - s) + 1 <= l->cap);
    memcpy(l->out + l->n, l->in + s, i - s);
    l->n += i - s;
    put(l, '"');
    l->i = i;
    return true;
}

static bool lx_literal(lx *l) {
    static const char *const lits[3] = {"true", "false", "null"};
    for (unsigned k = 0; k < 3; k++) {
        size_t n = strlen(lits[k]);
        if (l->len - l->i >= n && memcmp(l->in + l->i, lits[k], n) == 0) {
            TL_ASSERT(l->n + n <= l->cap);
            memcpy(l->out + l->n, lits[k], n);
            l->n += n;
            l->i += n;
            return true;
        }
    }
    return lx_err(l, "invalid literal");
}

enum lx_state {
    LX_VALUE,     /* a value must come */
    LX_ARR_FIRST, /* after '[': a value or ']' */
    LX_OBJ_FIRST, /* after '{': a key or '}' */
    LX_KEY,       /* after ',' in an object */
    LX_COLON,     /* after a key */
    LX_AFTER,     /* after a value inside a container: ',' or the close */
    LX_END,       /* the top value is complete */
};

/* Checks the whole payload and writes the tagged copy. */
static bool lex(lx *l) {
    uint64_t is_obj = 0; /* bit d-1: container at depth d is an object */
    unsigned depth = 0;
    enum lx_state st = LX_VALUE;
    while (l->i < l->len) {
        uint8_t c = l->in[l->i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            l->i++;
            continue;
        }
        switch (st) {
            case LX_END:
                return lx_err(l, "trailing characters");
            case LX_COLON:
                if (c != ':')
                    return lx_err(l, "expected ':'");
                put(l, ':');
                l->i++;
                st = LX_VALUE;
                continue;
            case LX_OBJ_FIRST:
            case LX_KEY:
                if (c == '}' && st == LX_OBJ_FIRST)
                    goto close;
                if (c != '"')
                    return lx_err(l, "expected a key");
                if (!lx_string(l))
                    return false;
                st = LX_COLON;
                continue;
            case LX_AFTER: {
                bool obj = (is_obj >> (depth - 1)) & 1u;
                if (c == ',') {
                    put(l, ',');
                    l->i++;
                    st = obj ? LX_KEY : LX_VALUE;
                    continue;
                }
                if (c == (obj ? '}' : ']'))
                    goto close;
                return lx_err(l, "expected ',' or a close");
            }
            case LX_ARR_FIRST:
                if (c == ']')
                    goto close;
                /* a value */
                __attribute__((fallthrough));
            case LX_VALUE:
                if (c == '{' || c == '[') {
                    if (depth >= TL_XWAL1_MAX_DEPTH)
                        return lx_err(l, "nesting too deep");
                    depth++;
                    if (c == '{')
                        is_obj |= 1ull << (depth - 1);
                    else
                        is_obj &= ~(1ull << (depth - 1));
                    put(l, (char)c);
                    l->i++;
                    st = c == '{' ? LX_OBJ_FIRST : LX_ARR_FIRST;
                    continue;
                }
                if (c == '"') {
                    if (!lx_string(l))
                        return false;
                } else if (c == '-' || (c >= '0' && c <= '9')) {
                    if (!lx_number(l))
                        return false;
                } else if (c == 't' || c == 'f' || c == 'n') {
                    if (!lx_literal(l))
                        return false;
                } else {
                    return lx_err(l, "expected a value");
                }
                st = depth == 0 ? LX_END : LX_AFTER;
                continue;
        }
        TL_UNREACHABLE();
    close:
        TL_ASSERT(depth > 0);
        put(l, (char)c);
        l->i++;
        depth--;
        st = depth == 0 ? LX_END : LX_AFTER;
    }
    if (st != LX_END)
        return lx_err(l, "unexpected end");
    return true;
}

/* ---- the schema walk ---- */

typedef struct sx {
    xw_acc *acc;
    bool ev_bad;
} sx;

static void field_err(sx *s, const char *what, const char *field) {
    s->ev_bad = true;
    xw_note(s->acc, TL_XWAL1_ERR_BAD_FIELD, what, field, 0);
}

/* The text of a tagged string: 'S' strings are themselves; 'Z' strings
 * (U+0000 inside) are bad. */
static xw_str text_of(const char *tagged) {
    xw_str s = {0};
    s.set = true;
    s.stable = true; /* the tree lives until the decode ends */
    if (tagged[0] != 'S') {
        s.bad = true;
        return s;
    }
    size_t n = strlen(tagged + 1);
    s.p = tagged + 1;
    s.len = (uint32_t)(n > XW_STR_CAP ? XW_STR_CAP + 1u : n);
    s.bad = n > XW_STR_CAP;
    return s;
}

static bool is_text(const cJSON *c) {
    return cJSON_IsString(c) && (c->valuestring[0] == 'S' || c->valuestring[0] == 'Z');
}

static bool is_number(const cJSON *c) {
    return cJSON_IsString(c) && c->valuestring[0] == 'N';
}

/* The field a member names (-1: unknown, skipped as serde does; the lexer
 * checked it); notes a duplicate. */
static int member(sx *s, const cJSON *c, const xw_object *o, uint32_t *seen) {
    TL_ASSERT(c->string != NULL);
    xw_str k = text_of(c->string);
    int f = k.bad ? -1 : xw_field_find(o, k.p, k.len, -1);
    if (f < 0)
        return -1;
    if (*seen & (1u << f))
        field_err(s, "duplicate field", o->fields[f].name);
    *seen |= 1u << f;
    return f;
}

static void members_done(sx *s, const xw_object *o, uint32_t seen) {
    uint32_t missing = o->required & ~seen;
    if (missing != 0)
        field_err(s, "missing field", o->fields[__builtin_ctz(missing)].name);
}

/* A value that is no object or array of the schema; ev: its event, or
 * NULL for the record. */
static void walk_leaf(sx *s, const xw_field *fd, const cJSON *c, xw_event *ev) {
    xw_acc *a = s->acc;
    switch (fd->type) {
        case XW_T_STR: {
            if (!is_text(c)) {
                field_err(s, "expected a string", fd->name);
                return;
            }
            xw_str t = text_of(c->valuestring);
            switch (fd->role) {
                case XW_R_NONE:
                    break;
                case XW_R_SYMBOL:
                    if (ev != NULL)
                        ev->symbol = t;
                    else
                        xw_acc_symbol(a, &t);
                    break;
                case XW_R_STATE_HASH:
                    if (ev != NULL)
                        ev->ckpt_hash = t;
                    else
                        xw_acc_state_hash(a, &t);
                    break;
                case XW_R_PRICE:
                    ev->price = t;
                    break;
                case XW_R_QTY:
                    ev->qty = t;
                    break;
                default:
                    TL_UNREACHABLE();
            }
            return;
        }
        case XW_T_U64:
        case XW_T_U32:
        case XW_T_I64: {
            if (!is_number(c)) {
                field_err(s, "expected an integer", fd->name);
                return;
            }
            const char *num = c->valuestring + 1;
            size_t n = strlen(num);
            uint64_t u = 0;
            int64_t i = 0;
            bool ok = fd->type == XW_T_I64 ? xw_num_i64(num, n, &i) : xw_num_u64(num, n, &u);
            if (ok && fd->type == XW_T_U32 && u > UINT32_MAX)
                ok = false;
            if (!ok) {
                field_err(s, "not an integer of the field's type", fd->name);
                return;
            }
            if (fd->role == XW_R_SEQ) {
                if (ev != NULL)
                    ev->seq = u;
                else
                    a->seq = u;
            } else if (fd->role == XW_R_FENCE) {
                a->fence = u;
            } else if (fd->role == XW_R_TS) {
                ev->ts_ms = i;
            }
            return;
        }
        case XW_T_BOOL:
            if (!cJSON_IsBool(c))
                field_err(s, "expected a bool", fd->name);
            return;
        case XW_T_SIDE:
        case XW_T_OTYPE:
        case XW_T_MODE: {
            if (fd->type == XW_T_MODE && cJSON_IsNull(c)) {
                a->mode = TL_XWAL1_MODE_NULL;
                return;
            }
            if (!is_text(c)) {
                field_err(s, "expected a string", fd->name);
                return;
            }
            xw_str t = text_of(c->valuestring);
            bool valid = !t.bad;
            if (valid && fd->type == XW_T_SIDE) {
                valid = xw_side_valid(t.p, t.len);
            } else if (valid && fd->type == XW_T_OTYPE) {
                valid = xw_otype_valid(t.p, t.len);
            } else if (valid) {
                int m = xw_mode_find(t.p, t.len);
                valid = m >= 0;
                if (valid)
                    a->mode = (uint8_t)m;
            }
            if (!valid)
                field_err(s, "unknown variant", fd->name);
            return;
        }
        default:
            TL_UNREACHABLE();
    }
}

/* One walker per level of the schema, each calling only the next: no
 * recursion. */

static void walk_envelope(sx *s, const cJSON *obj, xw_event *ev) {
    if (!cJSON_IsObject(obj)) {
        field_err(s, "expected an object", "envelope");
        return;
    }
    uint32_t seen = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        int f = member(s, c, &xw_envelope, &seen);
        if (f >= 0)
            walk_leaf(s, &xw_envelope.fields[f], c, ev);
    }
    members_done(s, &xw_envelope, seen);
}

static void walk_body(sx *s, const cJSON *obj, const xw_object *o, xw_event *ev) {
    uint32_t seen = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        int f = member(s, c, o, &seen);
        if (f < 0)
            continue;
        if (o->fields[f].type == XW_T_ENVELOPE)
            walk_envelope(s, c, ev);
        else
            walk_leaf(s, &o->fields[f], c, ev);
    }
    members_done(s, o, seen);
}

static void walk_events(sx *s, const cJSON *arr) {
    if (!cJSON_IsArray(arr)) {
        field_err(s, "expected an array", "events");
        return;
    }
    for (const cJSON *e = arr->child; e != NULL; e = e->next) {
        xw_event ev;
        memset(&ev, 0, sizeof ev);
        ev.variant = -1;
        s->ev_bad = false;
        if (!cJSON_IsObject(e)) {
            field_err(s, "event: expected an object", "events");
        } else if (e->child == NULL) {
            field_err(s, "event: no variant", "events");
        } else {
            const cJSON *body = e->child;
            xw_str k = text_of(body->string);
            ev.variant = k.bad ? -1 : xw_variant_find(k.p, k.len);
            if (ev.variant < 0)
                field_err(s, "unknown variant", "events");
            else if (!cJSON_IsObject(body))
                field_err(s, "variant: expected an object", xw_variants[ev.variant].name);
            else
                walk_body(s, body, &xw_variants[ev.variant], &ev);
            if (body->next != NULL)
                field_err(s, "event: more than one key", "events");
        }
        ev.complete = ev.variant >= 0 && !s->ev_bad;
        xw_acc_event(s->acc, &ev);
    }
}

static void walk_record(sx *s, const cJSON *obj) {
    if (!cJSON_IsObject(obj)) {
        field_err(s, "expected an object", "WalRecord");
        return;
    }
    uint32_t seen = 0;
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        int f = member(s, c, &xw_record, &seen);
        if (f < 0)
            continue;
        if (xw_record.fields[f].type == XW_T_EVENTS)
            walk_events(s, c);
        else
            walk_leaf(s, &xw_record.fields[f], c, NULL);
    }
    members_done(s, &xw_record, seen);
}

enum tl_xwal1_err tl_xwal1_decode_strict(const uint8_t *payload, size_t len, tl_xwal1_rec *rec) {
    xw_acc acc;
    xw_acc_init(&acc, rec);
    /* Tagging adds 3 bytes to a number of at least 1 and 1 byte to a string
     * of at least 2: the copy is at most 4 * len, plus the NUL. */
    size_t cap = 4 * len + 1;
    lx l = {payload, len, 0, malloc(cap), 0, cap, &acc};
    if (l.out == NULL) {
        xw_note(&acc, TL_XWAL1_ERR_JSON, "out of memory", "", 0);
        return xw_acc_finish(&acc);
    }
    cJSON *root = NULL;
    if (lex(&l)) {
        put(&l, '\0');
        root = cJSON_ParseWithLengthOpts(l.out, l.n, NULL, 1);
        if (root == NULL) {
            /* cJSON refused what the lexer accepted: a disagreement the
             * tests look for; say so rather than guess. */
            xw_note(&acc, TL_XWAL1_ERR_JSON, "cJSON rejected the lexed payload", "", 0);
        } else {
            sx s = {&acc, false};
            walk_record(&s, root);
        }
    }
    enum tl_xwal1_err err = xw_acc_finish(&acc); /* before the tree it points into goes */
    cJSON_Delete(root);
    free(l.out);
    return err;
}
