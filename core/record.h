/* record.h: the engine record of wal.md, byte for byte.
 *
 * One layout serves the WAL and the ring: a 64-byte header, a body, zero
 * padding to a multiple of 8. The checksum is XXH3-64 of bytes [8, len) with
 * the REPLAY flag clear, so a ring record and a WAL record of one seq compare
 * by checksum alone.
 *
 * This file is the contract as types: every offset is asserted at compile
 * time, and the three rules a lone record must pass (length, checksum, field
 * rules: wal.md "Reading rules" 1-3) live here so the WAL reader, the
 * io_uring tailer and the ring consumer share one implementation. Rules 4-6
 * (seq, parent, fence) need history and live in core/stream.c.
 *
 * Host byte order must be little-endian (x86_64, aarch64): records are read
 * in place, never byte-swapped.
 */
#ifndef TL_RECORD_H
#define TL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "checksum.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "tally reads records in place");

#define TL_REC_HDR_BYTES 64u
#define TL_REC_MAX_BYTES 65536u
#define TL_REC_BODY_MAX  (TL_REC_MAX_BYTES - TL_REC_HDR_BYTES)
/* A ring PAD has 64 <= len < TL_PAD_LIMIT_BYTES (ring.md): PAD alone may exceed 65536. */
#define TL_PAD_LIMIT_BYTES (65536u + 64u)

enum tl_kind {
    TL_KIND_INVALID = 0,
    TL_KIND_ORDER_NEW = 1,
    TL_KIND_ORDER_CANCEL = 2,
    TL_KIND_TRADE = 3,
    TL_KIND_CHECKPOINT = 4,
    TL_KIND_LEADER_CHANGE = 5,
    TL_KIND_MODE_CHANGE = 6,
    TL_KIND_HEARTBEAT = 7,
    TL_KIND_SYMBOL = 8,
    TL_KIND_KNOWN_MAX = 8, /* kinds above are skipped, but counted and chained */
    TL_KIND_PAD = 0xFFFF,  /* ring only */
};

#define TL_REC_FLAG_REPLAY 0x0001u
#define TL_REC_FLAGS_KNOWN TL_REC_FLAG_REPLAY

typedef struct tl_rec_hdr {
    uint64_t checksum; /* XXH3-64 of [8, len) with REPLAY clear; never 0 */
    uint64_t parent;   /* checksum of seq - 1 */
    uint64_t seq;      /* engine_seq; 1 is the first, 0 never valid */
    uint64_t fence;    /* fencing token in force */
    uint64_t ts_ns;    /* engine wall clock (CLOCK_REALTIME) */
    uint32_t len;      /* roundup8(64 + body_len), 64..65536 */
    uint16_t kind;     /* enum tl_kind */
    uint16_t flags;    /* TL_REC_FLAG_* */
    uint32_t symbol;   /* symbol id, 0 = none / global scope */
    uint32_t body_len; /* bytes of body used */
    uint64_t reserved; /* zero */
} tl_rec_hdr;

_Static_assert(sizeof(tl_rec_hdr) == 64, "record header is 64 bytes");
_Static_assert(offsetof(tl_rec_hdr, checksum) == 0, "wal.md");
_Static_assert(offsetof(tl_rec_hdr, parent) == 8, "wal.md");
_Static_assert(offsetof(tl_rec_hdr, seq) == 16, "wal.md");
_Static_assert(offsetof(tl_rec_hdr, fence) == 24, "wal.md");
_Static_assert(offsetof(tl_rec_hdr, ts_ns) == 32, "wal.md");
_Static_assert(offsetof(tl_rec_hdr, len) == 40, "wal.md");
_Static_assert(offsetof(tl_rec_hdr, kind) == 44, "wal.md");
_Static_assert(offsetof(tl_rec_hdr, flags) == 46, "wal.md");
_Static_assert(offsetof(tl_rec_hdr, symbol) == 48, "wal.md");
_Static_assert(offsetof(tl_rec_hdr, body_len) == 52, "wal.md");
_Static_assert(offsetof(tl_rec_hdr, reserved) == 56, "wal.md");

/* ---- bodies (offsets from body start) ---- */

enum tl_side { TL_SIDE_BUY = 1, TL_SIDE_SELL = 2 };
enum tl_order_type { TL_ORDER_LIMIT = 1, TL_ORDER_MARKET = 2 };

typedef struct tl_body_order_new {
    uint64_t order_id;
    uint64_t account;
    int64_t price;
    int64_t qty;
    uint8_t side; /* enum tl_side */
    uint8_t type; /* enum tl_order_type */
    uint8_t zero[6];
} tl_body_order_new;
_Static_assert(sizeof(tl_body_order_new) == 40, "wal.md");
_Static_assert(offsetof(tl_body_order_new, account) == 8, "wal.md");
_Static_assert(offsetof(tl_body_order_new, price) == 16, "wal.md");
_Static_assert(offsetof(tl_body_order_new, qty) == 24, "wal.md");
_Static_assert(offsetof(tl_body_order_new, side) == 32, "wal.md");
_Static_assert(offsetof(tl_body_order_new, type) == 33, "wal.md");
_Static_assert(offsetof(tl_body_order_new, zero) == 34, "wal.md");

typedef struct tl_body_order_cancel {
    uint64_t order_id;
    uint64_t account;
    int64_t remaining_qty;
} tl_body_order_cancel;
_Static_assert(sizeof(tl_body_order_cancel) == 24, "wal.md");
_Static_assert(offsetof(tl_body_order_cancel, account) == 8, "wal.md");
_Static_assert(offsetof(tl_body_order_cancel, remaining_qty) == 16, "wal.md");

typedef struct tl_body_trade {
    uint64_t trade_id;
    uint64_t maker_order;
    uint64_t taker_order;
    uint64_t maker_account;
    uint64_t taker_account;
    int64_t price;
    int64_t qty;
    uint8_t taker_side;
    uint8_t zero[7];
} tl_body_trade;
_Static_assert(sizeof(tl_body_trade) == 64, "wal.md");
_Static_assert(offsetof(tl_body_trade, maker_order) == 8, "wal.md");
_Static_assert(offsetof(tl_body_trade, taker_order) == 16, "wal.md");
_Static_assert(offsetof(tl_body_trade, maker_account) == 24, "wal.md");
_Static_assert(offsetof(tl_body_trade, taker_account) == 32, "wal.md");
_Static_assert(offsetof(tl_body_trade, price) == 40, "wal.md");
_Static_assert(offsetof(tl_body_trade, qty) == 48, "wal.md");
_Static_assert(offsetof(tl_body_trade, taker_side) == 56, "wal.md");
_Static_assert(offsetof(tl_body_trade, zero) == 57, "wal.md");

#define TL_STATE_HASH_BYTES 32u

typedef struct tl_body_checkpoint {
    uint8_t state_hash[TL_STATE_HASH_BYTES]; /* engine state after this seq */
    uint64_t open_orders;
    uint64_t trades_total;   /* wrapping running sums over all TRADEs <= seq (ledger.md) */
    uint64_t qty_total;      /* sum of (u64)qty */
    uint64_t notional_total; /* sum of (u64)price * (u64)qty */
} tl_body_checkpoint;
_Static_assert(sizeof(tl_body_checkpoint) == 64, "wal.md");
_Static_assert(offsetof(tl_body_checkpoint, open_orders) == 32, "wal.md");
_Static_assert(offsetof(tl_body_checkpoint, trades_total) == 40, "wal.md");
_Static_assert(offsetof(tl_body_checkpoint, qty_total) == 48, "wal.md");
_Static_assert(offsetof(tl_body_checkpoint, notional_total) == 56, "wal.md");

#define TL_ID_BYTES 16u /* engine_id, leader_id, node_id, command_id */

typedef struct tl_body_leader_change {
    uint64_t new_fence;
    uint64_t prev_fence;
    uint8_t leader_id[TL_ID_BYTES];
} tl_body_leader_change;
_Static_assert(sizeof(tl_body_leader_change) == 32, "wal.md");
_Static_assert(offsetof(tl_body_leader_change, prev_fence) == 8, "wal.md");
_Static_assert(offsetof(tl_body_leader_change, leader_id) == 16, "wal.md");

enum tl_mode {
    TL_MODE_NORMAL = 0,
    TL_MODE_CANCEL_ONLY = 1,
    TL_MODE_SOFT_HALT = 2,
    TL_MODE_HARD_HALT = 3,
    TL_MODE_COUNT = 4,
};

typedef struct tl_body_mode_change {
    uint32_t mode;               /* enum tl_mode */
    uint32_t withdrawals_halted; /* 0 or 1 */
    uint8_t command_id[TL_ID_BYTES];
} tl_body_mode_change;
_Static_assert(sizeof(tl_body_mode_change) == 24, "wal.md");
_Static_assert(offsetof(tl_body_mode_change, withdrawals_halted) == 4, "wal.md");
_Static_assert(offsetof(tl_body_mode_change, command_id) == 8, "wal.md");

#define TL_SYMBOL_NAME_MAX 24u

typedef struct tl_body_symbol {
    char name[TL_SYMBOL_NAME_MAX]; /* NUL-padded, [A-Za-z0-9._-]{1,24} */
} tl_body_symbol;
_Static_assert(sizeof(tl_body_symbol) == 24, "wal.md");

/* ---- helpers ---- */

static inline uint32_t tl_rec_len_for_body(uint32_t body_len) {
    return (TL_REC_HDR_BYTES + body_len + 7u) & ~7u;
}

/* The v1 body sizes by kind, 0..TL_KIND_KNOWN_MAX (0 for INVALID and
 * HEARTBEAT). A table, so rule 3's inline path needs no call. */
extern const uint8_t tl_kind_v1_table[TL_KIND_KNOWN_MAX + 1];

/* The v1 body size of a known kind (the least body_len allowed), 0 for
 * HEARTBEAT and for kinds above TL_KIND_KNOWN_MAX. */
static inline uint32_t tl_kind_v1_body_bytes(uint16_t kind) {
    return kind <= TL_KIND_KNOWN_MAX ? tl_kind_v1_table[kind] : 0u;
}
const char *tl_kind_name(uint16_t kind); /* "ORDER_NEW", ..., "PAD", "UNKNOWN" */

const char *tl_mode_name(uint32_t mode); /* "NORMAL" .. "HARD_HALT", "?" */
/* Parses "NORMAL" .. "HARD_HALT"; returns -1 when it is none of them. */
int tl_mode_parse(const char *s, size_t n);

/* [A-Za-z0-9._-]{1,24} */
bool tl_symbol_name_valid(const char *s, size_t n);

/* The 16-byte ids reserved by engine-admin.md. */
bool tl_id_is_zero(const uint8_t id[TL_ID_BYTES]);
bool tl_id_is_restatement(const uint8_t id[TL_ID_BYTES]); /* ff x 16 */

static inline const tl_rec_hdr *tl_rec_hdr_of(const void *rec) {
    return (const tl_rec_hdr *)rec;
}

static inline const void *tl_rec_body(const void *rec) {
    return (const uint8_t *)rec + TL_REC_HDR_BYTES;
}

/* XXH3-64 of [8, len). The REPLAY flag must already be clear in `rec`. */
static inline uint64_t tl_rec_compute_checksum(const void *rec, uint32_t len) {
    return tl_xxh3((const uint8_t *)rec + 8, (size_t)len - 8);
}

/* ---- the three lone-record rules ---- */

/* Where the record was found: a PAD is legal only on the ring, REPLAY only on
 * the ring. */
enum tl_rec_where { TL_WHERE_WAL = 0, TL_WHERE_RING = 1 };

/* Why a record failed. The order of the enum is the order of the checks. */
enum tl_rec_err {
    TL_REC_OK = 0,
    /* rule 1: length */
    TL_REC_ERR_LEN,       /* len not a multiple of 8, below 64, or above the limit */
    TL_REC_ERR_TRUNCATED, /* len runs past the bytes available (segment or region end) */
    /* rule 2: checksum */
    TL_REC_ERR_CHECKSUM,
    /* rule 3: field rules */
    TL_REC_ERR_BODY_LEN,   /* len != roundup8(64 + body_len) */
    TL_REC_ERR_KIND,       /* kind 0, or a PAD outside the ring */
    TL_REC_ERR_RESERVED,   /* nonzero reserved header word */
    TL_REC_ERR_FLAGS,      /* unknown flag bits, or REPLAY in the WAL */
    TL_REC_ERR_PADDING,    /* nonzero bytes after the body */
    TL_REC_ERR_SHORT_BODY, /* body_len below the kind's v1 size */
    TL_REC_ERR_SEQ0,       /* seq 0 is never valid */
    TL_REC_ERR_PAD_SHAPE,  /* a PAD with symbol, flags or body_len set, or a nonzero body */
    TL_REC_ERR_BODY, /* a body field outside its domain (side, type, mode, name, zero bytes) */
    TL_REC_ERR_COUNT,
};

const char *tl_rec_err_name(enum tl_rec_err e); /* stable snake_case, e.g. "bad_checksum" */

/* Rule 1 on the bytes at `rec` with `avail` bytes readable from there.
 * Reads only the header; needs avail >= 64 to say more than TRUNCATED.
 * Inline: the WAL walker runs it on every record. */
static inline enum tl_rec_err tl_rec_check_len(const uint8_t *rec, size_t avail,
                                               enum tl_rec_where where) {
    if (avail < TL_REC_HDR_BYTES)
        return TL_REC_ERR_TRUNCATED;
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    uint32_t len = h->len;
    /* Only a PAD may exceed 65536, and only on the ring. Its kind is not yet
     * verified here (the checksum comes after), so the larger bound is taken
     * on the kind word's say-so; rule 3 then rejects a PAD outside the ring. */
    uint32_t limit = (where == TL_WHERE_RING && h->kind == TL_KIND_PAD) ? TL_PAD_LIMIT_BYTES - 8
                                                                        : TL_REC_MAX_BYTES;
    if (len < TL_REC_HDR_BYTES || (len & 7u) != 0 || len > limit)
        return TL_REC_ERR_LEN;
    if (len > avail)
        return TL_REC_ERR_TRUNCATED;
    return TL_REC_OK;
}

/* Rule 3 in full, in the order of enum tl_rec_err: the first rule that
 * fails is the one named. Out of line; tl_rec_check_fields comes here for
 * anything its inline path does not pass. */
enum tl_rec_err tl_rec_check_fields_full(const uint8_t *rec, enum tl_rec_where where, bool replay);

/* Kinds whose rule 3 the inline path decides (bit k: kind k, k < 16): every
 * kind below 16 but INVALID, MODE_CHANGE and SYMBOL (their body rules are
 * rarer and longer). Kinds 16..0xFFFE have no body rules either; PAD
 * (0xFFFF) has its own, out of line. */
#define TL_REC_INLINE_KINDS                                                                        \
    ((uint32_t)0xFFFFu &                                                                           \
     ~((1u << TL_KIND_INVALID) | (1u << TL_KIND_MODE_CHANGE) | (1u << TL_KIND_SYMBOL)))

/* Rule 3 on a record that passed rules 1 and 2.
 *
 * Almost every record is an ORDER_NEW, ORDER_CANCEL, TRADE, CHECKPOINT or
 * HEARTBEAT whose fields are all good: that case is decided here, inline,
 * with the tests folded into a few branches. Anything else (a failed rule,
 * PAD, MODE_CHANGE, SYMBOL) goes to tl_rec_check_fields_full, which decides
 * on its own and names the first failure. So this path only ever answers
 * TL_REC_OK, and only where the full check would (tests/unit/
 * test_record_fast.c compares the two over mutated records). */
static inline enum tl_rec_err tl_rec_check_fields(const uint8_t *rec, enum tl_rec_where where,
                                                  bool replay) {
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    uint32_t kind = h->kind, len = h->len, body_len = h->body_len;
    /* Rule 1 held, so 64 <= len: the last word is inside the record. With
     * len == roundup8(64 + body_len) the padding is its top 0..7 bytes
     * (little-endian); the double shift makes the mask 0 for no padding. */
    uint32_t pad_bytes = len - TL_REC_HDR_BYTES - body_len;
    uint64_t last;
    memcpy(&last, rec + len - 8, sizeof last);
    uint64_t pad_mask = ~(uint64_t)0 << 1 << (63u - 8u * (pad_bytes & 7u));
    bool inline_kind = kind < 16 ? ((TL_REC_INLINE_KINDS >> kind) & 1u) != 0 : kind != TL_KIND_PAD;
    uint32_t v1_bytes = tl_kind_v1_body_bytes((uint16_t)kind);
    /* Bitwise on purpose: every test is cheap and side-effect free, and one
     * branch on their conjunction beats a branch per test. The operands are
     * unsigned 0/1 values, not bools, so no compiler reads it as a typo. */
    bool ok = ((unsigned)(body_len <= TL_REC_BODY_MAX) &
               (unsigned)(tl_rec_len_for_body(body_len) == len) & (unsigned)inline_kind &
               (unsigned)(h->reserved == 0) & (unsigned)((h->flags & ~TL_REC_FLAGS_KNOWN) == 0) &
               ((unsigned)!replay | (unsigned)(where == TL_WHERE_RING)) &
               (unsigned)((last & pad_mask) == 0) & (unsigned)(body_len >= v1_bytes) &
               (unsigned)(h->seq != 0)) != 0;
    if (__builtin_expect(ok, 1)) {
        /* The body words below lie within body_len (>= the v1 size). A side
         * or type byte b is in {1, 2} iff b - 1 < 2 (unsigned). */
        _Static_assert(TL_SIDE_BUY == 1 && TL_SIDE_SELL == 2 && TL_ORDER_LIMIT == 1 &&
                           TL_ORDER_MARKET == 2,
                       "the domain tests below");
        uint64_t w;
        switch (kind) {
            case TL_KIND_ORDER_NEW: /* side, type, zero[6] */
                memcpy(&w, rec + TL_REC_HDR_BYTES + offsetof(tl_body_order_new, side), sizeof w);
                ok = ((w & 0xffu) - 1u) < 2u && (((w >> 8) & 0xffu) - 1u) < 2u && (w >> 16) == 0;
                break;
            case TL_KIND_TRADE: /* taker_side, zero[7] */
                memcpy(&w, rec + TL_REC_HDR_BYTES + offsetof(tl_body_trade, taker_side), sizeof w);
                ok = ((w & 0xffu) - 1u) < 2u && (w >> 8) == 0;
                break;
            default:
                break;
        }
        if (__builtin_expect(ok, 1))
            return TL_REC_OK;
    }
    return tl_rec_check_fields_full(rec, where, replay);
}

/* Rules 2-3 on a private, mutable, 8-aligned copy whose rule 1 already held
 * (tl_rec_check_len, or the ring consumer's copy checks): clears REPLAY in
 * the copy (and says whether it was set; replay may be NULL) before the
 * checksum, as wal.md and ring.md require. */
static inline enum tl_rec_err tl_rec_verify_framed(uint8_t *rec, enum tl_rec_where where,
                                                   bool *replay) {
    tl_rec_hdr *h = (tl_rec_hdr *)(void *)rec;
    bool r = (h->flags & TL_REC_FLAG_REPLAY) != 0;
    h->flags &= (uint16_t)~TL_REC_FLAG_REPLAY;
    if (replay != NULL)
        *replay = r;
    if (__builtin_expect(h->checksum == 0 || tl_rec_compute_checksum(rec, h->len) != h->checksum,
                         0))
        return TL_REC_ERR_CHECKSUM;
    return tl_rec_check_fields(rec, where, r);
}

/* Rules 1-3 on a private, mutable, 8-aligned copy (see tl_rec_verify_framed). */
enum tl_rec_err tl_rec_verify(uint8_t *rec, size_t avail, enum tl_rec_where where, bool *replay);

/* ---- encoding ---- */

typedef struct tl_rec_meta {
    uint64_t parent;
    uint64_t seq;
    uint64_t fence;
    uint64_t ts_ns; /* may come back +1 (a checksum of 0 is never written) */
    uint16_t kind;
    uint16_t flags; /* REPLAY is left out of the checksum */
    uint32_t symbol;
} tl_rec_meta;

/* Writes header, body and zero padding to dst (8-aligned, cap bytes) and sets
 * the checksum. Returns len, or 0 when body_len > TL_REC_BODY_MAX or the record
 * does not fit in cap. m->ts_ns is updated if the never-0 rule bumped it. */
uint32_t tl_rec_encode(uint8_t *dst, size_t cap, tl_rec_meta *m, const void *body,
                       uint32_t body_len);

/* A ring PAD of pad_len bytes in front of the record described by `next`
 * (its seq, parent, fence and ts_ns). Returns pad_len, or 0 if the length is
 * not a legal PAD length or cap is too small. */
uint32_t tl_rec_encode_pad(uint8_t *dst, size_t cap, uint32_t pad_len, const tl_rec_meta *next);

#endif
