/* api_json.c: a bounded JSON writer (see api_json.h). */
#include "api_json.h"

#include <stdio.h>
#include <string.h>

#include "admin/jsonw.h"
#include "core/assert.h"

void tl_jb_init(tl_jb *b, char *buf, size_t cap) {
    TL_ASSERT(cap >= 2);
    memset(b, 0, sizeof *b);
    b->buf = buf;
    b->cap = cap;
    b->first[0] = true;
    buf[0] = '\0';
}

static void raw(tl_jb *b, const char *s, size_t n) {
    if (b->overflow)
        return;
    if (n >= b->cap - b->len) {
        b->overflow = true;
        return;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void esc(tl_jb *b, const char *s, size_t n) {
    if (b->overflow)
        return;
    raw(b, "\"", 1);
    size_t room = b->cap - b->len;
    size_t w = room > 1 ? tl_json_escape(s, n, b->buf + b->len, room - 1) : SIZE_MAX;
    if (w == SIZE_MAX) {
        b->overflow = true;
        return;
    }
    b->len += w;
    b->buf[b->len] = '\0';
    raw(b, "\"", 1);
}

static void member(tl_jb *b, const char *key) {
    TL_ASSERT(b->depth < TL_JB_DEPTH);
    if (!b->first[b->depth])
        raw(b, ",", 1);
    b->first[b->depth] = false;
    if (key != NULL) {
        esc(b, key, strlen(key));
        raw(b, ":", 1);
    }
}

static void open_(tl_jb *b, const char *key, char c) {
    member(b, key);
    raw(b, &c, 1);
    TL_ASSERT(b->depth + 1 < TL_JB_DEPTH);
    b->depth++;
    b->first[b->depth] = true;
    b->close[b->depth] = c == '{' ? '}' : ']';
}

void tl_jb_obj(tl_jb *b, const char *key) {
    open_(b, key, '{');
}

void tl_jb_arr(tl_jb *b, const char *key) {
    open_(b, key, '[');
}

void tl_jb_end(tl_jb *b) {
    TL_ASSERT(b->depth > 0);
    char c = b->close[b->depth];
    b->depth--;
    raw(b, &c, 1);
}

void tl_jb_str(tl_jb *b, const char *key, const char *s) {
    member(b, key);
    esc(b, s, strlen(s));
}

void tl_jb_strn(tl_jb *b, const char *key, const char *s, size_t n) {
    member(b, key);
    esc(b, s, n);
}

void tl_jb_u64s(tl_jb *b, const char *key, uint64_t v) {
    char t[32];
    int n = snprintf(t, sizeof t, "\"%llu\"", (unsigned long long)v);
    member(b, key);
    raw(b, t, (size_t)n);
}

void tl_jb_int(tl_jb *b, const char *key, int64_t v) {
    char t[32];
    int n = snprintf(t, sizeof t, "%lld", (long long)v);
    member(b, key);
    raw(b, t, (size_t)n);
}

void tl_jb_num(tl_jb *b, const char *key, double v) {
    char t[40];
    int n = v != v ? snprintf(t, sizeof t, "null") : snprintf(t, sizeof t, "%.9g", v);
    member(b, key);
    raw(b, t, (size_t)n);
}

void tl_jb_bool(tl_jb *b, const char *key, bool v) {
    member(b, key);
    raw(b, v ? "true" : "false", v ? 4 : 5);
}

void tl_jb_null(tl_jb *b, const char *key) {
    member(b, key);
    raw(b, "null", 4);
}

void tl_jb_hex(tl_jb *b, const char *key, const uint8_t *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    member(b, key);
    raw(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        char t[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
        raw(b, t, 2);
    }
    raw(b, "\"", 1);
}

void tl_jb_raw(tl_jb *b, const char *key, const char *json, size_t n) {
    member(b, key);
    raw(b, json, n);
}

const char *tl_jb_done(tl_jb *b, size_t *len) {
    if (b->overflow || b->depth != 0)
        return NULL;
    *len = b->len;
    return b->buf;
}
