/* jsonw.h: a JSON object writer whose keys come out sorted bytewise.
 *
 * The audit log (behavior.md) wants sorted keys and no whitespace outside
 * strings, so that a line hashes the same whoever re-serializes it. Members
 * are added in any order and rendered once, sorted. Bounded: at most
 * TL_JW_MEMBERS members and cap bytes of output; overflow is reported, never
 * a partial line.
 */
#ifndef TL_JSONW_H
#define TL_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TL_JW_MEMBERS 48u
#define TL_JW_BYTES   8192u

typedef struct tl_jw {
    struct {
        const char *key; /* static or caller-owned until render */
        uint32_t off;    /* rendered value in vals[] */
        uint32_t len;
    } m[TL_JW_MEMBERS];
    uint32_t n;
    bool overflow;
    char vals[TL_JW_BYTES];
    uint32_t vals_len;
} tl_jw;

void tl_jw_init(tl_jw *w);
void tl_jw_str(tl_jw *w, const char *key, const char *s);            /* escaped string */
void tl_jw_strn(tl_jw *w, const char *key, const char *s, size_t n); /* escaped string */
void tl_jw_u64s(tl_jw *w, const char *key, uint64_t v);              /* "123" (64-bit as string) */
void tl_jw_int(tl_jw *w, const char *key, int64_t v);                /* 123 (small numbers) */
void tl_jw_bool(tl_jw *w, const char *key, bool v);
void tl_jw_hex(tl_jw *w, const char *key, const uint8_t *b, size_t n); /* lowercase hex string */
void tl_jw_raw(tl_jw *w, const char *key, const char *json, size_t n); /* already valid JSON */
/* Renders `{...}` into out; returns its length, or 0 on overflow. */
size_t tl_jw_render(tl_jw *w, char *out, size_t cap);

/* Escapes s (n bytes) as a JSON string body into out; returns bytes written,
 * or SIZE_MAX if it does not fit. Bytes >= 0x80 pass through (the caller
 * gives UTF-8); control bytes become \u00XX. */
size_t tl_json_escape(const char *s, size_t n, char *out, size_t cap);

#endif
