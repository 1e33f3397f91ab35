/* xwal1_payload.c: the meaning of an xwal1 payload, shared by both decoders
 * (see xwal1_int.h): upstream's serde schema, and the accumulator that
 * applies the record rules and the error priority of xwal1.h. */
#include "xwal1_int.h"

#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "assert.h"

/* ---- the schema (model.rs / wal.rs of the trading core) ---- */

/* lit: `"name":`, what upstream writes before the value */
#define LIT(n) (uint8_t)(sizeof(n) + 2), (uint32_t)((1ull << (sizeof(n) + 2)) - 1), "\"" n "\":"
#define F(n, t, r)                                                                                 \
    { n, (uint8_t)(sizeof(n) - 1), t, r, false, LIT(n) }
#define F_OPT(n, t, r)                                                                             \
    { n, (uint8_t)(sizeof(n) - 1), t, r, true, LIT(n) }
#define ALL(n) ((uint32_t)((1ull << (n)) - 1))
#define OBJ(name, list)                                                                            \
    { name, (uint8_t)(sizeof(name) - 1), TL_ARRAY_LEN(list), ALL(TL_ARRAY_LEN(list)), list }

static const xw_field record_fields[] = {
    F("seq", XW_T_U64, XW_R_SEQ),
    F("command_id", XW_T_STR, XW_R_NONE),
    F("symbol", XW_T_STR, XW_R_SYMBOL),
    F("events", XW_T_EVENTS, XW_R_NONE),
    F("state_hash", XW_T_STR, XW_R_STATE_HASH),
    /* Option<SymbolMode>: serde takes a missing Option field as None. */
    F_OPT("symbol_mode", XW_T_MODE, XW_R_MODE),
    F("fencing_token", XW_T_U64, XW_R_FENCE),
};

static const xw_field envelope_fields[] = {
    F("event_id", XW_T_STR, XW_R_NONE),     F("event_version", XW_T_U32, XW_R_NONE),
    F("symbol", XW_T_STR, XW_R_SYMBOL),     F("seq", XW_T_U64, XW_R_SEQ),
    F("occurred_at_ms", XW_T_I64, XW_R_TS), F("correlation_id", XW_T_STR, XW_R_NONE),
    F("causation_id", XW_T_STR, XW_R_NONE),
};

static const xw_field order_accepted_fields[] = {
    F("envelope", XW_T_ENVELOPE, XW_R_NONE), F("order_id", XW_T_STR, XW_R_NONE),
    F("user_id", XW_T_STR, XW_R_NONE),       F("side", XW_T_SIDE, XW_R_NONE),
    F("order_type", XW_T_OTYPE, XW_R_NONE),  F("price", XW_T_STR, XW_R_NONE),
    F("quantity", XW_T_STR, XW_R_NONE),
};

static const xw_field order_rejected_fields[] = {
    F("envelope", XW_T_ENVELOPE, XW_R_NONE), F("order_id", XW_T_STR, XW_R_NONE),
    F("user_id", XW_T_STR, XW_R_NONE),       F("reject_code", XW_T_STR, XW_R_NONE),
    F("detail", XW_T_STR, XW_R_NONE),
};

static const xw_field order_canceled_fields[] = {
    F("envelope", XW_T_ENVELOPE, XW_R_NONE),
    F("order_id", XW_T_STR, XW_R_NONE),
    F("user_id", XW_T_STR, XW_R_NONE),
    F("remaining_quantity", XW_T_STR, XW_R_NONE),
};

static const xw_field cancel_rejected_fields[] = {
    F("envelope", XW_T_ENVELOPE, XW_R_NONE), F("order_id", XW_T_STR, XW_R_NONE),
    F("user_id", XW_T_STR, XW_R_NONE),       F("reject_code", XW_T_STR, XW_R_NONE),
    F("detail", XW_T_STR, XW_R_NONE),
};

static const xw_field trade_executed_fields[] = {
    F("envelope", XW_T_ENVELOPE, XW_R_NONE),  F("trade_id", XW_T_STR, XW_R_NONE),
    F("maker_order_id", XW_T_STR, XW_R_NONE), F("taker_order_id", XW_T_STR, XW_R_NONE),
    F("buyer_user_id", XW_T_STR, XW_R_NONE),  F("seller_user_id", XW_T_STR, XW_R_NONE),
    F("price", XW_T_STR, XW_R_PRICE),         F("quantity", XW_T_STR, XW_R_QTY),
    F("quote_amount", XW_T_STR, XW_R_NONE),   F("fee_buyer", XW_T_STR, XW_R_NONE),
    F("fee_seller", XW_T_STR, XW_R_NONE),
};

static const xw_field book_delta_fields[] = {
    F("envelope", XW_T_ENVELOPE, XW_R_NONE),
    F("depth", XW_T_U32, XW_R_NONE),
    F("is_snapshot", XW_T_BOOL, XW_R_NONE),
};

static const xw_field engine_checkpoint_fields[] = {
    F("envelope", XW_T_ENVELOPE, XW_R_NONE),
    F("state_hash", XW_T_STR, XW_R_STATE_HASH),
};

const xw_object xw_record = {"WalRecord", 9, TL_ARRAY_LEN(record_fields),
                             ALL(TL_ARRAY_LEN(record_fields)) & ~(1u << 5), record_fields};
const xw_object xw_envelope = OBJ("EventEnvelope", envelope_fields);
const xw_object xw_variants[XW_V_COUNT] = {
    [XW_V_ORDER_ACCEPTED] = OBJ("OrderAccepted", order_accepted_fields),
    [XW_V_ORDER_REJECTED] = OBJ("OrderRejected", order_rejected_fields),
    [XW_V_ORDER_CANCELED] = OBJ("OrderCanceled", order_canceled_fields),
    [XW_V_CANCEL_REJECTED] = OBJ("CancelRejected", cancel_rejected_fields),
    [XW_V_TRADE_EXECUTED] = OBJ("TradeExecuted", trade_executed_fields),
    [XW_V_BOOK_DELTA] = OBJ("BookDelta", book_delta_fields),
    [XW_V_ENGINE_CHECKPOINT] = OBJ("EngineCheckpoint", engine_checkpoint_fields),
};

_Static_assert(TL_ARRAY_LEN(trade_executed_fields) <= XW_MAX_FIELDS, "seen masks are 32-bit");

#undef LIT
#undef F
#undef F_OPT
#undef ALL
#undef OBJ

static bool name_is(const char *name, uint8_t name_len, const char *key, size_t n) {
    return name_len == n && memcmp(name, key, n) == 0;
}

int xw_field_find(const xw_object *o, const char *key, size_t n, int hint) {
    if (hint >= 0 && hint < o->n_fields &&
        name_is(o->fields[hint].name, o->fields[hint].len, key, n))
        return hint;
    for (int i = 0; i < o->n_fields; i++) {
        if (name_is(o->fields[i].name, o->fields[i].len, key, n))
            return i;
    }
    return -1;
}

int xw_variant_find(const char *key, size_t n) {
    for (int i = 0; i < XW_V_COUNT; i++) {
        if (name_is(xw_variants[i].name, xw_variants[i].len, key, n))
            return i;
    }
    return -1;
}

int xw_mode_find(const char *s, size_t n) {
    static const struct {
        const char *name;
        uint8_t len;
    } modes[TL_MODE_COUNT] = {
        [TL_MODE_NORMAL] = {"Normal", 6},
        [TL_MODE_CANCEL_ONLY] = {"CancelOnly", 10},
        [TL_MODE_SOFT_HALT] = {"SoftHalt", 8},
        [TL_MODE_HARD_HALT] = {"HardHalt", 8},
    };
    for (int i = 0; i < (int)TL_MODE_COUNT; i++) {
        if (name_is(modes[i].name, modes[i].len, s, n))
            return i;
    }
    return -1;
}

bool xw_side_valid(const char *s, size_t n) {
    return name_is("Buy", 3, s, n) || name_is("Sell", 4, s, n);
}

bool xw_otype_valid(const char *s, size_t n) {
    return name_is("Limit", 5, s, n) || name_is("Market", 6, s, n);
}

/* ---- strings and numbers ---- */

bool xw_str_eq(const xw_str *a, const xw_str *b) {
    return a->set && b->set && !a->bad && !b->bad && a->len == b->len &&
           memcmp(a->p, b->p, a->len) == 0;
}

bool xw_str_is(const xw_str *a, const char *lit, size_t n) {
    return a->set && !a->bad && a->len == n && memcmp(a->p, lit, n) == 0;
}

bool xw_num_u64(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9)
            return false; /* '-', '.', 'e': not a u64 */
        if (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, d, &v))
            return false;
    }
    *out = v;
    return true;
}

bool xw_num_i64(const char *s, size_t n, int64_t *out) {
    bool neg = n > 0 && s[0] == '-';
    uint64_t mag;
    if (!xw_num_u64(s + neg, n - neg, &mag))
        return false;
    if (neg) {
        /* serde_json turns "-0" into the float -0.0, which no i64 accepts. */
        if (mag == 0 || mag > (uint64_t)INT64_MAX + 1u)
            return false;
        *out = mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag;
        return true;
    }
    if (mag > (uint64_t)INT64_MAX)
        return false;
    *out = (int64_t)mag;
    return true;
}

bool xw_amount(const xw_str *s, uint64_t *out) {
    if (!s->set || s->bad || s->len == 0 || (s->len > 1 && s->p[0] == '0'))
        return false;
    return xw_num_u64(s->p, s->len, out);
}

/* Lowercase hex digit values plus one; 0 for every other byte. */
static const uint8_t hex_lower_1[256] = {
    ['0'] = 1, ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

bool xw_hex64(const xw_str *s, uint8_t out[TL_STATE_HASH_BYTES]) {
    if (!s->set || s->bad || s->len != TL_XWAL1_STATE_HASH_HEX)
        return false;
#ifdef __SSE2__
    /* 16 digits a step: d = c - '0' in 0..9, or l = c - 'a' in 0..5; then
     * the pairs (high nibble first) are joined in 16-bit lanes. */
    const __m128i zero = _mm_set1_epi8('0'), a = _mm_set1_epi8('a');
    const __m128i ten = _mm_set1_epi8(10), six = _mm_set1_epi8(6), neg = _mm_set1_epi8(-1);
    const __m128i low = _mm_set1_epi16(0x00FF);
    unsigned valid = 0xFFFF;
    __m128i packed[4];
    for (unsigned k = 0; k < 4; k++) {
        __m128i c = _mm_loadu_si128((const __m128i *)(s->p + 16 * k));
        __m128i d = _mm_sub_epi8(c, zero), l = _mm_sub_epi8(c, a);
        __m128i is_d = _mm_and_si128(_mm_cmpgt_epi8(d, neg), _mm_cmplt_epi8(d, ten));
        __m128i is_l = _mm_and_si128(_mm_cmpgt_epi8(l, neg), _mm_cmplt_epi8(l, six));
        valid &= (unsigned)_mm_movemask_epi8(_mm_or_si128(is_d, is_l));
        __m128i v = _mm_or_si128(_mm_and_si128(is_d, d), _mm_and_si128(is_l, _mm_add_epi8(l, ten)));
        /* lane = hi | lo << 8 (little-endian): byte = hi << 4 | lo */
        packed[k] = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(v, low), 4), _mm_srli_epi16(v, 8));
    }
    if (valid != 0xFFFF)
        return false;
    _mm_storeu_si128((__m128i *)out, _mm_packus_epi16(packed[0], packed[1]));
    _mm_storeu_si128((__m128i *)(out + 16), _mm_packus_epi16(packed[2], packed[3]));
    return true;
#else
    return xw_hex64_scalar(s, out);
#endif
}

/* The scalar form (and the reference the tests hold the vector one to). */
bool xw_hex64_scalar(const xw_str *s, uint8_t out[TL_STATE_HASH_BYTES]) {
    if (!s->set || s->bad || s->len != TL_XWAL1_STATE_HASH_HEX)
        return false;
    int bad = 0; /* any -1 sets the sign bit: one branch for the 64 digits */
    for (unsigned i = 0; i < TL_STATE_HASH_BYTES; i++) {
        int hi = hex_lower_1[(uint8_t)s->p[2 * i]] - 1,
            lo = hex_lower_1[(uint8_t)s->p[2 * i + 1]] - 1;
        bad |= hi | lo;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return bad >= 0;
}

size_t xw_utf8_seq(const uint8_t *p, const uint8_t *end) {
    /* RFC 3629, table 3-7 of Unicode: the second byte's range depends on the
     * first; the others are 80..BF. */
    uint8_t c = p[0];
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c == 0xE0) {
        n = 3, lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
        n = 3;
    } else if (c == 0xED) {
        n = 3, hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c == 0xF0) {
        n = 4, lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
        n = 4;
    } else if (c == 0xF4) {
        n = 4, hi = 0x8F; /* <= U+10FFFF */
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    }
    return n;
}

/* ---- the accumulator ---- */

void xw_acc_init(xw_acc *a, tl_xwal1_rec *rec) {
    memset(a, 0, sizeof *a);
    a->rec = rec;
    a->err = TL_XWAL1_OK;
    a->mode = TL_XWAL1_MODE_NULL;
    a->last_variant = -1;
    rec->err = TL_XWAL1_OK;
    rec->n_events = 0;
    rec->n_trades = 0;
    rec->qty_sum = 0;
    rec->notional_sum = 0;
}

void xw_note(xw_acc *a, enum tl_xwal1_err err, const char *what, const char *field, uint32_t at) {
    TL_ASSERT(err >= TL_XWAL1_ERR_JSON && err <= TL_XWAL1_ERR_BAD_AMOUNT);
    if (a->err != TL_XWAL1_OK && a->err <= err)
        return;
    a->err = (uint8_t)err;
    a->what = what;
    a->field = field != NULL ? field : "";
    a->at = at;
}

/* Keeps a string past the decoder's next use of its scratch buffers. */
static void copy_str(xw_str *dst, char *buf, const xw_str *src) {
    *dst = *src;
    if (src->set && !src->bad && !src->stable) {
        TL_ASSERT(src->len <= XW_STR_CAP);
        memcpy(buf, src->p, src->len);
        dst->p = buf;
    }
}

void xw_acc_symbol(xw_acc *a, const xw_str *s) {
    copy_str(&a->symbol, a->symbol_buf, s);
}

void xw_acc_state_hash(xw_acc *a, const xw_str *s) {
    copy_str(&a->state_hash, a->hash_buf, s);
}

void xw_acc_event(xw_acc *a, const xw_event *ev) {
    tl_xwal1_rec *rec = a->rec;
    a->n_events++;
    if (!ev->complete)
        return; /* its bad_field is noted; nothing of it is used */
    TL_ASSERT(ev->variant >= 0 && ev->variant < XW_V_COUNT);

    if (ev->seq == 0) {
        a->seq_bad = true;
        a->seq_what = "event seq 0";
    } else if (a->n_complete > 0 && ev->seq <= a->prev_seq) {
        a->seq_bad = true;
        a->seq_what = "event seqs not ascending";
    }
    a->prev_seq = ev->seq;
    if (a->n_complete < TL_XWAL1_MAX_EVENTS)
        rec->event_seqs[a->n_complete] = ev->seq;
    a->n_complete++;

    if (!a->env_symbol_set) {
        copy_str(&a->env_symbol, a->env_symbol_buf, &ev->symbol);
        a->env_symbol_set = true;
    } else if (!xw_str_eq(&a->env_symbol, &ev->symbol)) {
        a->env_symbol_mismatch = true;
    }

    a->last_variant = ev->variant;
    a->last_seq = ev->seq;
    a->last_ts_ms = ev->ts_ms;
    if (ev->variant == XW_V_ENGINE_CHECKPOINT)
        copy_str(&a->last_ckpt, a->last_ckpt_buf, &ev->ckpt_hash);

    if (ev->variant == XW_V_TRADE_EXECUTED) {
        uint64_t price, qty;
        if (!xw_amount(&ev->price, &price) || !xw_amount(&ev->qty, &qty)) {
            a->amount_bad = true;
        } else if (rec->n_trades < TL_XWAL1_MAX_EVENTS) {
            tl_xwal1_trade *t = &rec->trades[rec->n_trades++];
            t->seq = ev->seq;
            t->price = price;
            t->qty = qty;
            rec->qty_sum += qty; /* wrapping, as ledger.md's sums */
            rec->notional_sum += price * qty;
        }
    }
}

enum tl_xwal1_err xw_acc_finish(xw_acc *a) {
    tl_xwal1_rec *rec = a->rec;
    /* The rules below only mean something for a record that is all there;
     * noting them anyway is harmless: json_error and bad_field outrank them. */
    if (a->n_events > TL_XWAL1_MAX_EVENTS)
        xw_note(a, TL_XWAL1_ERR_TOO_MANY_EVENTS, "more events than TL_XWAL1_MAX_EVENTS", "events",
                0);
    if (!a->symbol.set || a->symbol.bad || !tl_symbol_name_valid(a->symbol.p, a->symbol.len))
        xw_note(a, TL_XWAL1_ERR_BAD_SYMBOL, "symbol not [A-Za-z0-9._-]{1,24}", "symbol", 0);
    else if (a->env_symbol_mismatch ||
             (a->env_symbol_set && !xw_str_eq(&a->env_symbol, &a->symbol)))
        xw_note(a, TL_XWAL1_ERR_BAD_SYMBOL, "an envelope symbol differs from the record's",
                "symbol", 0);
    uint8_t hash[TL_STATE_HASH_BYTES];
    if (!xw_hex64(&a->state_hash, hash))
        xw_note(a, TL_XWAL1_ERR_BAD_STATE_HASH, "state_hash not 64 lowercase hex digits",
                "state_hash", 0);
    if (a->n_complete == 0)
        xw_note(a, TL_XWAL1_ERR_SEQ_ORDER, "no events", "events", 0);
    else if (a->seq_bad)
        xw_note(a, TL_XWAL1_ERR_SEQ_ORDER, a->seq_what, "seq", 0);
    else if (a->seq != a->last_seq)
        xw_note(a, TL_XWAL1_ERR_SEQ_ORDER, "record seq is not its last event's seq", "seq", 0);
    if (a->last_variant != XW_V_ENGINE_CHECKPOINT)
        xw_note(a, TL_XWAL1_ERR_BAD_CHECKPOINT, "last event is not an EngineCheckpoint", "events",
                0);
    else if (!xw_str_eq(&a->last_ckpt, &a->state_hash))
        xw_note(a, TL_XWAL1_ERR_BAD_CHECKPOINT, "checkpoint state_hash differs from the record's",
                "state_hash", 0);
    if (a->amount_bad)
        xw_note(a, TL_XWAL1_ERR_BAD_AMOUNT, "trade price or quantity not a decimal u64",
                "TradeExecuted", 0);

    rec->err = a->err;
    rec->err_what = a->err == TL_XWAL1_OK ? "" : a->what;
    rec->err_field = a->err == TL_XWAL1_OK ? "" : a->field;
    rec->err_at = a->at;
    if (a->err != TL_XWAL1_OK)
        return (enum tl_xwal1_err)a->err;

    TL_ASSERT(a->n_complete == a->n_events && a->n_events <= TL_XWAL1_MAX_EVENTS);
    rec->seq = a->seq;
    rec->fence = a->fence;
    rec->ts_ms = a->last_ts_ms;
    rec->mode = a->mode;
    rec->n_events = (uint32_t)a->n_events;
    rec->symbol_len = (uint8_t)a->symbol.len;
    memcpy(rec->symbol, a->symbol.p, a->symbol.len);
    rec->symbol[a->symbol.len] = '\0';
    memcpy(rec->state_hash, hash, sizeof hash);
    return TL_XWAL1_OK;
}
