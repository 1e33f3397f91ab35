/* flatjson.h: a bounded, allocation-free scanner for one flat JSON object.
 *
 * The engine admin protocol (engine-admin.md) carries one JSON object per
 * line whose members are strings, numbers and booleans, never nested. This
 * scanner accepts exactly RFC 8259 JSON for such objects and reports where
 * each member's key and value lie in the input; it never copies or
 * allocates, so it can run on tally's hot loop and inside the engine.
 *
 * Why not cJSON: cJSON allocates per node, turns numbers into doubles
 * ("v":1.0 would read as 1), and decodes "\u0000" into a NUL that silently
 * truncates the C string ("BTC\u0000X" would read as the valid symbol
 * "BTC"). Here every string is validated as it is scanned (escapes, no raw
 * control bytes, strict UTF-8, paired surrogates), so a string that scanned
 * always decodes into valid UTF-8, with its true length.
 *
 * A nested object or array, or null, is reported as such (the caller maps
 * them to "wrong type"); duplicate keys are kept, in order, so the caller can
 * reject them.
 */
#ifndef TL_FLATJSON_H
#define TL_FLATJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tl_fj_type {
    TL_FJ_STRING = 1,
    TL_FJ_NUMBER = 2,
    TL_FJ_TRUE = 3,
    TL_FJ_FALSE = 4,
    TL_FJ_NULL = 5,
};

/* The order is the order of the checks; names are stable snake_case. */
enum tl_fj_err {
    TL_FJ_OK = 0,
    TL_FJ_ERR_TOO_LONG,     /* input longer than TL_FJ_INPUT_MAX */
    TL_FJ_ERR_SYNTAX,       /* not a JSON object (or trailing bytes) */
    TL_FJ_ERR_NESTED,       /* a member value is an object or an array */
    TL_FJ_ERR_TOO_MANY,     /* more members than the caller's array holds */
    TL_FJ_ERR_CONTROL_CHAR, /* raw byte < 0x20 inside a string */
    TL_FJ_ERR_BAD_ESCAPE,   /* unknown escape, or \u without 4 hex digits */
    TL_FJ_ERR_BAD_UTF8,     /* raw bytes that are not strict UTF-8, or an unpaired surrogate */
    TL_FJ_ERR_COUNT,
};

#define TL_FJ_INPUT_MAX 65535u

/* Offsets are into the scanned input. For a string, [off, off+len) is the raw
 * text between the quotes (escapes not yet decoded); for other types it is
 * the token itself ("1", "-2.5e3", "true", ...). */
typedef struct tl_fj_member {
    uint32_t key_off;
    uint32_t key_len;
    uint32_t val_off;
    uint32_t val_len;
    uint8_t type;        /* enum tl_fj_type */
    bool key_escaped;    /* the raw key contains a backslash */
    bool val_escaped;    /* the raw string value contains a backslash */
    uint8_t reserved[1]; /* zero */
} tl_fj_member;

/* Scans one JSON object occupying all of s[0, len) (whitespace allowed around
 * it). Fills members[0, *n). On error *n holds the members scanned so far. */
enum tl_fj_err tl_fj_parse(const char *s, size_t len, tl_fj_member *members, size_t cap, size_t *n);

const char *tl_fj_err_name(enum tl_fj_err e);

/* Decodes a raw string that tl_fj_parse accepted into out (UTF-8, no NUL
 * terminator added). Returns false, with *out_len the decoded length so far,
 * when the result would exceed cap. */
bool tl_fj_decode(const char *raw, size_t raw_len, char *out, size_t cap, size_t *out_len);

/* Compares a raw (possibly escaped) key or string with a plain literal,
 * without decoding into a buffer. */
bool tl_fj_equals(const char *raw, size_t raw_len, bool escaped, const char *lit, size_t lit_len);

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool tl_utf8_valid(const uint8_t *s, size_t n);

#endif
