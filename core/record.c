/* record.c: encode, and the lone-record rules 1-3 of wal.md. */
#include "record.h"

#include <string.h>

#include "assert.h"

const uint8_t tl_kind_v1_table[TL_KIND_KNOWN_MAX + 1] = {
    [TL_KIND_ORDER_NEW] = sizeof(tl_body_order_new),
    [TL_KIND_ORDER_CANCEL] = sizeof(tl_body_order_cancel),
    [TL_KIND_TRADE] = sizeof(tl_body_trade),
    [TL_KIND_CHECKPOINT] = sizeof(tl_body_checkpoint),
    [TL_KIND_LEADER_CHANGE] = sizeof(tl_body_leader_change),
    [TL_KIND_MODE_CHANGE] = sizeof(tl_body_mode_change),
    [TL_KIND_SYMBOL] = sizeof(tl_body_symbol),
};
_Static_assert(TL_KIND_KNOWN_MAX == TL_KIND_SYMBOL && sizeof(tl_body_checkpoint) <= UINT8_MAX,
               "one row per known kind; every v1 size fits the table");

const char *tl_kind_name(uint16_t kind) {
    switch (kind) {
        case TL_KIND_ORDER_NEW:
            return "ORDER_NEW";
        case TL_KIND_ORDER_CANCEL:
            return "ORDER_CANCEL";
        case TL_KIND_TRADE:
            return "TRADE";
        case TL_KIND_CHECKPOINT:
            return "CHECKPOINT";
        case TL_KIND_LEADER_CHANGE:
            return "LEADER_CHANGE";
        case TL_KIND_MODE_CHANGE:
            return "MODE_CHANGE";
        case TL_KIND_HEARTBEAT:
            return "HEARTBEAT";
        case TL_KIND_SYMBOL:
            return "SYMBOL";
        case TL_KIND_PAD:
            return "PAD";
        case TL_KIND_INVALID:
            return "INVALID";
        default:
            return "UNKNOWN";
    }
}

static const char *const mode_names[TL_MODE_COUNT] = {"NORMAL", "CANCEL_ONLY", "SOFT_HALT",
                                                      "HARD_HALT"};

const char *tl_mode_name(uint32_t mode) {
    return mode < TL_MODE_COUNT ? mode_names[mode] : "?";
}

int tl_mode_parse(const char *s, size_t n) {
    for (int m = 0; m < TL_MODE_COUNT; m++) {
        if (strlen(mode_names[m]) == n && memcmp(mode_names[m], s, n) == 0)
            return m;
    }
    return -1;
}

bool tl_symbol_name_valid(const char *s, size_t n) {
    if (n < 1 || n > TL_SYMBOL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool tl_id_is_zero(const uint8_t id[TL_ID_BYTES]) {
    uint8_t acc = 0;
    for (unsigned i = 0; i < TL_ID_BYTES; i++)
        acc |= id[i];
    return acc == 0;
}

bool tl_id_is_restatement(const uint8_t id[TL_ID_BYTES]) {
    uint8_t acc = 0xff;
    for (unsigned i = 0; i < TL_ID_BYTES; i++)
        acc &= id[i];
    return acc == 0xff;
}

static const char *const rec_err_names[TL_REC_ERR_COUNT] = {
    [TL_REC_OK] = "ok",
    [TL_REC_ERR_LEN] = "bad_len",
    [TL_REC_ERR_TRUNCATED] = "truncated",
    [TL_REC_ERR_CHECKSUM] = "bad_checksum",
    [TL_REC_ERR_BODY_LEN] = "bad_body_len",
    [TL_REC_ERR_KIND] = "bad_kind",
    [TL_REC_ERR_RESERVED] = "nonzero_reserved",
    [TL_REC_ERR_FLAGS] = "bad_flags",
    [TL_REC_ERR_PADDING] = "nonzero_padding",
    [TL_REC_ERR_SHORT_BODY] = "short_body",
    [TL_REC_ERR_SEQ0] = "seq_zero",
    [TL_REC_ERR_PAD_SHAPE] = "bad_pad",
    [TL_REC_ERR_BODY] = "bad_body_field",
};

const char *tl_rec_err_name(enum tl_rec_err e) {
    return (unsigned)e < TL_REC_ERR_COUNT ? rec_err_names[e] : "?";
}

static bool all_zero(const uint8_t *p, size_t n) {
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

/* Domain rules of the v1 bodies. Bytes past the v1 size are ignored (later
 * versions may add fields), so only the v1 prefix is looked at. */
static bool body_fields_ok(const tl_rec_hdr *h, const uint8_t *body) {
    switch (h->kind) {
        case TL_KIND_ORDER_NEW: {
            tl_body_order_new b;
            memcpy(&b, body, sizeof b);
            return (b.side == TL_SIDE_BUY || b.side == TL_SIDE_SELL) &&
                   (b.type == TL_ORDER_LIMIT || b.type == TL_ORDER_MARKET) &&
                   all_zero(b.zero, sizeof b.zero);
        }
        case TL_KIND_TRADE: {
            tl_body_trade b;
            memcpy(&b, body, sizeof b);
            return (b.taker_side == TL_SIDE_BUY || b.taker_side == TL_SIDE_SELL) &&
                   all_zero(b.zero, sizeof b.zero);
        }
        case TL_KIND_MODE_CHANGE: {
            tl_body_mode_change b;
            memcpy(&b, body, sizeof b);
            return b.mode < TL_MODE_COUNT && b.withdrawals_halted <= 1;
        }
        case TL_KIND_SYMBOL: {
            const char *name = (const char *)body;
            size_t n = 0;
            while (n < TL_SYMBOL_NAME_MAX && name[n] != '\0')
                n++;
            return tl_symbol_name_valid(name, n) &&
                   all_zero((const uint8_t *)name + n, TL_SYMBOL_NAME_MAX - n) && h->symbol != 0;
        }
        default:
            return true;
    }
}

enum tl_rec_err tl_rec_check_fields_full(const uint8_t *rec, enum tl_rec_where where, bool replay) {
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    const uint8_t *body = rec + TL_REC_HDR_BYTES;

    if (h->kind == TL_KIND_PAD) {
        if (where != TL_WHERE_RING)
            return TL_REC_ERR_KIND;
        if (h->symbol != 0 || h->flags != 0 || h->body_len != 0)
            return TL_REC_ERR_PAD_SHAPE;
        if (h->reserved != 0)
            return TL_REC_ERR_RESERVED;
        if (!all_zero(body, h->len - TL_REC_HDR_BYTES))
            return TL_REC_ERR_PAD_SHAPE;
        if (h->seq == 0)
            return TL_REC_ERR_SEQ0;
        return TL_REC_OK;
    }
    if (h->body_len > TL_REC_BODY_MAX || tl_rec_len_for_body(h->body_len) != h->len)
        return TL_REC_ERR_BODY_LEN;
    if (h->kind == TL_KIND_INVALID)
        return TL_REC_ERR_KIND;
    if (h->reserved != 0)
        return TL_REC_ERR_RESERVED;
    if ((h->flags & ~TL_REC_FLAGS_KNOWN) != 0 || (replay && where != TL_WHERE_RING))
        return TL_REC_ERR_FLAGS;
    if (!all_zero(body + h->body_len, h->len - TL_REC_HDR_BYTES - h->body_len))
        return TL_REC_ERR_PADDING;
    if (h->body_len < tl_kind_v1_body_bytes(h->kind))
        return TL_REC_ERR_SHORT_BODY;
    if (h->seq == 0)
        return TL_REC_ERR_SEQ0;
    if (!body_fields_ok(h, body))
        return TL_REC_ERR_BODY;
    return TL_REC_OK;
}

enum tl_rec_err tl_rec_verify(uint8_t *rec, size_t avail, enum tl_rec_where where, bool *replay) {
    TL_ASSERT(((uintptr_t)rec & 7u) == 0);
    enum tl_rec_err e = tl_rec_check_len(rec, avail, where);
    if (e != TL_REC_OK)
        return e;
    return tl_rec_verify_framed(rec, where, replay);
}

static void seal(uint8_t *dst, uint32_t len, tl_rec_meta *m) {
    tl_rec_hdr *h = (tl_rec_hdr *)dst;
    uint16_t flags = h->flags;
    h->flags = (uint16_t)(flags & ~TL_REC_FLAG_REPLAY);
    /* wal.md: a checksum is never 0; a writer that gets 0 adds 1 to ts_ns.
     * Bounded: XXH3 yields 0 for two consecutive ts_ns with probability 2^-128. */
    for (int tries = 0; tries < 4; tries++) {
        uint64_t c = tl_rec_compute_checksum(dst, len);
        if (c != 0) {
            h->checksum = c;
            h->flags = flags;
            m->ts_ns = h->ts_ns;
            return;
        }
        h->ts_ns += 1;
    }
    TL_UNREACHABLE();
}

uint32_t tl_rec_encode(uint8_t *dst, size_t cap, tl_rec_meta *m, const void *body,
                       uint32_t body_len) {
    TL_ASSERT(((uintptr_t)dst & 7u) == 0);
    if (body_len > TL_REC_BODY_MAX)
        return 0;
    uint32_t len = tl_rec_len_for_body(body_len);
    if (len > cap)
        return 0;
    tl_rec_hdr *h = (tl_rec_hdr *)dst;
    h->checksum = 0;
    h->parent = m->parent;
    h->seq = m->seq;
    h->fence = m->fence;
    h->ts_ns = m->ts_ns;
    h->len = len;
    h->kind = m->kind;
    h->flags = m->flags;
    h->symbol = m->symbol;
    h->body_len = body_len;
    h->reserved = 0;
    if (body_len > 0)
        memcpy(dst + TL_REC_HDR_BYTES, body, body_len);
    memset(dst + TL_REC_HDR_BYTES + body_len, 0, len - TL_REC_HDR_BYTES - body_len);
    seal(dst, len, m);
    return len;
}

uint32_t tl_rec_encode_pad(uint8_t *dst, size_t cap, uint32_t pad_len, const tl_rec_meta *next) {
    TL_ASSERT(((uintptr_t)dst & 7u) == 0);
    if (pad_len < TL_REC_HDR_BYTES || pad_len >= TL_PAD_LIMIT_BYTES || (pad_len & 7u) != 0 ||
        pad_len > cap)
        return 0;
    tl_rec_hdr *h = (tl_rec_hdr *)dst;
    h->checksum = 0;
    h->parent = next->parent;
    h->seq = next->seq;
    h->fence = next->fence;
    h->ts_ns = next->ts_ns;
    h->len = pad_len;
    h->kind = TL_KIND_PAD;
    h->flags = 0;
    h->symbol = 0;
    h->body_len = 0;
    h->reserved = 0;
    memset(dst + TL_REC_HDR_BYTES, 0, pad_len - TL_REC_HDR_BYTES);
    /* A PAD's ts_ns equals the next record's, so it cannot be bumped: a PAD
     * whose checksum is 0 (probability 2^-64) is written as is, and a reader
     * sees a checksum failure, retries, and re-attaches. */
    h->checksum = tl_rec_compute_checksum(dst, pad_len);
    return pad_len;
}
