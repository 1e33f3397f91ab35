/* api_json.h: a bounded JSON writer for the control API's responses.
 *
 * Members come out in the order written (responses have a fixed, documented
 * shape; the audit log, which needs sorted keys, uses jsonw.h). It writes
 * into a caller's buffer and never allocates; on overflow it says so and the
 * caller answers 500 rather than serve a cut document. 64-bit values that
 * can exceed 2^53 (seqs, nanosecond times, ids) go out as decimal strings,
 * as in the audit log, so no JSON reader rounds them.
 */
#ifndef TL_API_JSON_H
#define TL_API_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TL_JB_DEPTH 16u

typedef struct tl_jb {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
    uint32_t depth;
    bool first[TL_JB_DEPTH]; /* no member written yet at this depth */
    char close[TL_JB_DEPTH]; /* '}' or ']' that ends this depth */
} tl_jb;

void tl_jb_init(tl_jb *b, char *buf, size_t cap);
/* key is NULL inside arrays and for the top value. */
void tl_jb_obj(tl_jb *b, const char *key);
void tl_jb_arr(tl_jb *b, const char *key);
void tl_jb_end(tl_jb *b); /* closes the innermost object or array */
void tl_jb_str(tl_jb *b, const char *key, const char *s);
void tl_jb_strn(tl_jb *b, const char *key, const char *s, size_t n);
void tl_jb_u64s(tl_jb *b, const char *key, uint64_t v); /* "123" */
void tl_jb_int(tl_jb *b, const char *key, int64_t v);   /* 123 (counts, small values) */
void tl_jb_num(tl_jb *b, const char *key, double v);
void tl_jb_bool(tl_jb *b, const char *key, bool v);
void tl_jb_null(tl_jb *b, const char *key);
void tl_jb_hex(tl_jb *b, const char *key, const uint8_t *p, size_t n);
void tl_jb_raw(tl_jb *b, const char *key, const char *json, size_t n); /* valid JSON */
/* The document, NUL-terminated; NULL after an overflow or with open scopes. */
const char *tl_jb_done(tl_jb *b, size_t *len);

#endif
