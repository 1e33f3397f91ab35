/* xwal1_int.h: what the two xwal1 payload decoders share (private to core/).
 *
 * The fast scanner (xwal1_fast.c) and the cJSON reference (xwal1_strict.c)
 * read JSON independently: that is what the differential fuzzer compares.
 * What they share is the *meaning* of a well-formed payload, which is
 * simple and unit-tested on its own:
 *   - the serde schema of upstream's WalRecord and CoreEvent variants
 *     (quanta-exchange/exchange-platform, services/trading-core/src/model.rs);
 *   - the accumulator: each decoder feeds it the fields and events it read,
 *     and it applies the semantic rules and the error priority of xwal1.h.
 */
#ifndef TL_XWAL1_INT_H
#define TL_XWAL1_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xwal1.h"

/* ---- the schema ---- */

enum xw_type {
    XW_T_STR = 0,
    XW_T_U64,
    XW_T_U32,
    XW_T_I64,
    XW_T_BOOL,
    XW_T_SIDE,     /* "Buy" | "Sell" */
    XW_T_OTYPE,    /* "Limit" | "Market" */
    XW_T_MODE,     /* null | "Normal" | "CancelOnly" | "SoftHalt" | "HardHalt" */
    XW_T_ENVELOPE, /* EventEnvelope object */
    XW_T_EVENTS,   /* array of externally tagged CoreEvent */
};

/* What a field means to tally (beyond its type). */
enum xw_role {
    XW_R_NONE = 0,
    XW_R_SEQ,        /* record seq / envelope seq */
    XW_R_FENCE,      /* fencing_token */
    XW_R_SYMBOL,     /* record symbol / envelope symbol */
    XW_R_STATE_HASH, /* record state_hash / EngineCheckpoint state_hash */
    XW_R_MODE,       /* symbol_mode */
    XW_R_TS,         /* envelope occurred_at_ms */
    XW_R_PRICE,      /* TradeExecuted price */
    XW_R_QTY,        /* TradeExecuted quantity */
};

#define XW_LIT_BYTES 32u

typedef struct xw_field {
    const char *name;
    uint8_t len;
    uint8_t type; /* enum xw_type */
    uint8_t role; /* enum xw_role */
    bool optional;
    /* `"name":` as upstream writes it, zero-padded to 32 bytes so the fast
     * scanner can compare it with two 16-byte loads. */
    uint8_t lit_len;
    uint32_t lit_mask; /* the low lit_len bits */
    char lit[XW_LIT_BYTES];
} xw_field;

#define XW_MAX_FIELDS 16

typedef struct xw_object {
    const char *name; /* variant name for events */
    uint8_t len;
    uint8_t n_fields;
    uint32_t required; /* bit i: fields[i] is required */
    const xw_field *fields;
} xw_object;

enum xw_variant {
    XW_V_ORDER_ACCEPTED = 0,
    XW_V_ORDER_REJECTED,
    XW_V_ORDER_CANCELED,
    XW_V_CANCEL_REJECTED,
    XW_V_TRADE_EXECUTED,
    XW_V_BOOK_DELTA,
    XW_V_ENGINE_CHECKPOINT,
    XW_V_COUNT,
};

extern const xw_object xw_record;
extern const xw_object xw_envelope;
extern const xw_object xw_variants[XW_V_COUNT];

/* Index of the field named key[0..n) in o, or -1. Tries `hint` first (the
 * field after the previous one: upstream writes them in declaration order). */
int xw_field_find(const xw_object *o, const char *key, size_t n, int hint);
/* The variant named key[0..n), or -1. */
int xw_variant_find(const char *key, size_t n);
/* "Normal".."HardHalt" -> enum tl_mode, or -1. */
int xw_mode_find(const char *s, size_t n);
bool xw_side_valid(const char *s, size_t n);
bool xw_otype_valid(const char *s, size_t n);

/* ---- decoded strings ---- */

/* Strings tally looks into are at most this long; a longer one, or one
 * that holds U+0000, is `bad`: it equals nothing and is no valid name,
 * hash, mode or amount. */
#define XW_STR_CAP 64u

typedef struct xw_str {
    const char *p; /* len bytes */
    uint32_t len;
    bool bad;
    bool set;
    bool stable; /* p lives as long as the decode (the payload, the cJSON
                    tree), not in a scratch buffer the decoder reuses */
} xw_str;

bool xw_str_eq(const xw_str *a, const xw_str *b);
bool xw_str_is(const xw_str *a, const char *lit, size_t n);

/* ---- numbers from their digits ---- */

/* `s` is a JSON number (RFC 8259 grammar, already checked). */
bool xw_num_u64(const char *s, size_t n, uint64_t *out);
bool xw_num_i64(const char *s, size_t n, int64_t *out);
/* A decimal amount as u64::to_string writes it: [0-9]+, no leading zero. */
bool xw_amount(const xw_str *s, uint64_t *out);
/* 64 lowercase hex digits -> 32 bytes. */
bool xw_hex64(const xw_str *s, uint8_t out[TL_STATE_HASH_BYTES]);
bool xw_hex64_scalar(const xw_str *s, uint8_t out[TL_STATE_HASH_BYTES]); /* tests */

/* ---- the accumulator ---- */

/* One element of `events`, as a decoder read it. */
typedef struct xw_event {
    int variant;   /* enum xw_variant, or -1 */
    bool complete; /* every field present once with its type */
    uint64_t seq;
    int64_t ts_ms;
    xw_str symbol;     /* envelope symbol */
    xw_str ckpt_hash;  /* EngineCheckpoint state_hash */
    xw_str price, qty; /* TradeExecuted */
} xw_event;

typedef struct xw_acc {
    tl_xwal1_rec *rec;
    uint8_t err; /* lowest (most important) error noted so far */
    const char *what;
    const char *field;
    uint32_t at;
    /* record fields */
    uint64_t seq;
    uint64_t fence;
    uint8_t mode;
    xw_str symbol;
    xw_str state_hash;
    char symbol_buf[XW_STR_CAP];
    char hash_buf[XW_STR_CAP];
    /* events */
    uint64_t n_events;
    uint64_t n_complete;
    uint64_t prev_seq;
    bool seq_bad;
    const char *seq_what;
    bool env_symbol_set;
    bool env_symbol_mismatch;
    xw_str env_symbol;
    char env_symbol_buf[XW_STR_CAP];
    int last_variant;
    uint64_t last_seq;
    int64_t last_ts_ms;
    xw_str last_ckpt;
    char last_ckpt_buf[XW_STR_CAP];
    bool amount_bad;
} xw_acc;

void xw_acc_init(xw_acc *a, tl_xwal1_rec *rec);
/* Keeps the most important error; for equals, the first noted. */
void xw_note(xw_acc *a, enum tl_xwal1_err err, const char *what, const char *field, uint32_t at);
/* Record-level strings: copied, so the decoder's buffers may be reused. */
void xw_acc_symbol(xw_acc *a, const xw_str *s);
void xw_acc_state_hash(xw_acc *a, const xw_str *s);
/* Every element of `events`, in order, complete or not. */
void xw_acc_event(xw_acc *a, const xw_event *ev);
/* Applies the rules that need the whole record, fills rec; returns rec->err. */
enum tl_xwal1_err xw_acc_finish(xw_acc *a);

/* ---- UTF-8 ---- */

/* Length (2-4) of the valid UTF-8 sequence starting at p (p[0] >= 0x80),
 * or 0 if it is invalid (overlong, surrogate, > U+10FFFF, truncated). */
size_t xw_utf8_seq(const uint8_t *p, const uint8_t *end);

#endif
