/* jsonw.c: see jsonw.h. */
#include "jsonw.h"

#include <stdio.h>
#include <string.h>

#include "core/assert.h"

void tl_jw_init(tl_jw *w) {
    w->n = 0;
    w->overflow = false;
    w->vals_len = 0;
}

size_t tl_json_escape(const char *s, size_t n, char *out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc = 0;
        switch (c) {
            case '"':
                esc = '"';
                break;
            case '\\':
                esc = '\\';
                break;
            case '\n':
                esc = 'n';
                break;
            case '\r':
                esc = 'r';
                break;
            case '\t':
                esc = 't';
                break;
            case '\b':
                esc = 'b';
                break;
            case '\f':
                esc = 'f';
                break;
            default:
                break;
        }
        if (esc) {
            if (o + 2 > cap)
                return SIZE_MAX;
            out[o++] = '\\';
            out[o++] = esc;
        } else if (c < 0x20) {
            if (o + 6 > cap)
                return SIZE_MAX;
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
        } else {
            if (o + 1 > cap)
                return SIZE_MAX;
            out[o++] = (char)c;
        }
    }
    return o;
}

static char *slot(tl_jw *w, const char *key, size_t need) {
    if (w->n == TL_JW_MEMBERS || w->vals_len + need > TL_JW_BYTES) {
        w->overflow = true;
        return NULL;
    }
    w->m[w->n].key = key;
    w->m[w->n].off = w->vals_len;
    w->m[w->n].len = 0;
    return w->vals + w->vals_len;
}

static void commit(tl_jw *w, size_t len) {
    w->m[w->n].len = (uint32_t)len;
    w->vals_len += (uint32_t)len;
    w->n++;
}

void tl_jw_strn(tl_jw *w, const char *key, const char *s, size_t n) {
    char *p = slot(w, key, 2);
    if (p == NULL)
        return;
    size_t room = TL_JW_BYTES - w->vals_len;
    p[0] = '"';
    size_t e = tl_json_escape(s, n, p + 1, room - 2);
    if (e == SIZE_MAX) {
        w->overflow = true;
        return;
    }
    p[1 + e] = '"';
    commit(w, e + 2);
}

void tl_jw_str(tl_jw *w, const char *key, const char *s) {
    tl_jw_strn(w, key, s, strlen(s));
}

void tl_jw_raw(tl_jw *w, const char *key, const char *json, size_t n) {
    char *p = slot(w, key, n);
    if (p == NULL)
        return;
    memcpy(p, json, n);
    commit(w, n);
}

void tl_jw_u64s(tl_jw *w, const char *key, uint64_t v) {
    char b[24];
    int n = snprintf(b, sizeof b, "\"%llu\"", (unsigned long long)v);
    tl_jw_raw(w, key, b, (size_t)n);
}

void tl_jw_int(tl_jw *w, const char *key, int64_t v) {
    char b[24];
    int n = snprintf(b, sizeof b, "%lld", (long long)v);
    tl_jw_raw(w, key, b, (size_t)n);
}

void tl_jw_bool(tl_jw *w, const char *key, bool v) {
    tl_jw_raw(w, key, v ? "true" : "false", v ? 4 : 5);
}

void tl_jw_hex(tl_jw *w, const char *key, const uint8_t *b, size_t n) {
    static const char hex[] = "0123456789abcdef";
    char *p = slot(w, key, 2 * n + 2);
    if (p == NULL)
        return;
    p[0] = '"';
    for (size_t i = 0; i < n; i++) {
        p[1 + 2 * i] = hex[b[i] >> 4];
        p[2 + 2 * i] = hex[b[i] & 15];
    }
    p[2 * n + 1] = '"';
    commit(w, 2 * n + 2);
}

size_t tl_jw_render(tl_jw *w, char *out, size_t cap) {
    if (w->overflow)
        return 0;
    /* Insertion sort by key: at most TL_JW_MEMBERS members. */
    for (uint32_t i = 1; i < w->n; i++) {
        for (uint32_t j = i; j > 0 && strcmp(w->m[j - 1].key, w->m[j].key) > 0; j--) {
            __typeof__(w->m[0]) t = w->m[j];
            w->m[j] = w->m[j - 1];
            w->m[j - 1] = t;
        }
    }
    size_t o = 0;
    if (cap < 2)
        return 0;
    out[o++] = '{';
    for (uint32_t i = 0; i < w->n; i++) {
        TL_ASSERT(i == 0 || strcmp(w->m[i - 1].key, w->m[i].key) != 0);
        size_t klen = strlen(w->m[i].key);
        size_t need = (i ? 1 : 0) + klen + 3 + w->m[i].len;
        if (o + need + 1 >= cap)
            return 0;
        if (i)
            out[o++] = ',';
        out[o++] = '"';
        memcpy(out + o, w->m[i].key, klen);
        o += klen;
        out[o++] = '"';
        out[o++] = ':';
        memcpy(out + o, w->vals + w->m[i].off, w->m[i].len);
        o += w->m[i].len;
    }
    out[o++] = '}';
    out[o] = '\0';
    return o;
}
