/* test_record_fast.c: rule 3's inline path (tl_rec_check_fields in
 * core/record.h) gives the verdict of the full check (tl_rec_check_fields_full)
 * on every record: good ones of every kind and shape, and records mutated at
 * random and at the edges of each field rule, both where a record can be
 * found (WAL, ring) and with REPLAY set or not. The inline path only ever
 * answers OK by itself, so this proves it never passes a record the full
 * check refuses, and never refuses one (it hands those to the full check). */
#include "testutil.h"

#include <string.h>

#include "core/record.h"

#define BUF_BYTES 512u
#define MUTANTS   200000u

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) {
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* A good body of `kind` (body_len bytes, zero past the v1 fields). */
static void good_body(uint16_t kind, uint8_t *body, uint32_t body_len) {
    memset(body, 0, body_len);
    if (kind == TL_KIND_ORDER_NEW && body_len >= sizeof(tl_body_order_new)) {
        tl_body_order_new b = {.order_id = 1, .qty = 3, .side = TL_SIDE_SELL, .type = 2};
        memcpy(body, &b, sizeof b);
    } else if (kind == TL_KIND_TRADE && body_len >= sizeof(tl_body_trade)) {
        tl_body_trade b = {.trade_id = 9, .price = 5, .qty = 2, .taker_side = TL_SIDE_BUY};
        memcpy(body, &b, sizeof b);
    } else if (kind == TL_KIND_MODE_CHANGE && body_len >= sizeof(tl_body_mode_change)) {
        tl_body_mode_change b = {.mode = TL_MODE_HARD_HALT, .withdrawals_halted = 1};
        memcpy(body, &b, sizeof b);
    } else if (kind == TL_KIND_SYMBOL && body_len >= sizeof(tl_body_symbol)) {
        memcpy(body, "BTC-USD_1.x", 11);
    }
}

static const uint16_t kinds[] = {
    TL_KIND_ORDER_NEW,
    TL_KIND_ORDER_CANCEL,
    TL_KIND_TRADE,
    TL_KIND_CHECKPOINT,
    TL_KIND_LEADER_CHANGE,
    TL_KIND_MODE_CHANGE,
    TL_KIND_HEARTBEAT,
    TL_KIND_SYMBOL,
    9,
    15,
    16,
    0xFFFE,
};

/* Encodes a good record of kind with v1 size + extra body bytes. */
static uint32_t make(uint8_t *buf, uint16_t kind, uint32_t extra) {
    uint8_t body[BUF_BYTES];
    uint32_t body_len = tl_kind_v1_body_bytes(kind) + extra;
    good_body(kind, body, body_len);
    tl_rec_meta m = {.parent = 7, .seq = 42, .fence = 3, .ts_ns = 99, .kind = kind, .symbol = 5};
    uint32_t len = tl_rec_encode(buf, BUF_BYTES, &m, body, body_len);
    assert_true(len > 0);
    return len;
}

static void put_u16(uint8_t *p, uint16_t v) {
    memcpy(p, &v, sizeof v);
}
static void put_u32(uint8_t *p, uint32_t v) {
    memcpy(p, &v, sizeof v);
}
static void put_u64(uint8_t *p, uint64_t v) {
    memcpy(p, &v, sizeof v);
}

/* One mutation: a field set to an edge of its rule, or a random byte. */
static void mutate(uint8_t *rec, uint32_t len) {
    static const uint16_t edge_kinds[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 0xFFFE, 0xFFFF};
    uint32_t body_len;
    memcpy(&body_len, rec + 52, sizeof body_len);
    switch (rnd() % 10) {
        case 0:
            put_u16(rec + 44, edge_kinds[rnd() % (sizeof edge_kinds / sizeof edge_kinds[0])]);
            break;
        case 1: {
            static const uint16_t flags[] = {0, 1, 2, 3, 0x8000, 0xFFFF};
            put_u16(rec + 46, flags[rnd() % 6]);
            break;
        }
        case 2: {
            uint32_t cands[] = {0,      1,        24,       39,        40,           63,
                                64,     len - 64, len - 63, len - 57,  len - 56,     len - 65,
                                65472u, 65473u,   ~0u,      ~0u - 60u, body_len + 1, body_len - 1};
            put_u32(rec + 52, cands[rnd() % (sizeof cands / sizeof cands[0])]);
            break;
        }
        case 3:
            put_u64(rec + 56, rnd() % 3 == 0 ? 0 : (uint64_t)1 << (rnd() % 64));
            break;
        case 4:
            put_u64(rec + 16, rnd() % 2 == 0 ? 0 : 1);
            break;
        case 5: /* padding, and the last body bytes */
            rec[len - 1 - rnd() % 9] ^= (uint8_t)(1u << (rnd() % 8));
            break;
        case 6: /* side / type / zero bytes of ORDER_NEW and TRADE, mode of MODE_CHANGE */
            if (len > 64 + 40) {
                uint32_t at = 64 + (uint32_t)(rnd() % 2 == 0 ? 32 + rnd() % 8 : rnd() % 64);
                if (at < len)
                    rec[at] = (uint8_t)(rnd() % 4 == 0 ? rnd() : rnd() % 4);
            }
            break;
        case 7:
            put_u32(rec + 48, rnd() % 2 == 0 ? 0 : 5); /* symbol: SYMBOL needs one */
            break;
        default: {
            uint32_t at = (uint32_t)(8 + rnd() % (len - 8)); /* any byte but the checksum */
            rec[at] ^= (uint8_t)(1u << (rnd() % 8));
            break;
        }
    }
}

static void check_both(const uint8_t *rec, uint32_t *hits) {
    for (int where = TL_WHERE_WAL; where <= TL_WHERE_RING; where++) {
        /* The fields rules assume rule 1 held. */
        if (tl_rec_check_len(rec, BUF_BYTES, (enum tl_rec_where)where) != TL_REC_OK)
            continue;
        for (int replay = 0; replay <= 1; replay++) {
            enum tl_rec_err full = tl_rec_check_fields_full(rec, (enum tl_rec_where)where, replay);
            enum tl_rec_err fast = tl_rec_check_fields(rec, (enum tl_rec_where)where, replay);
            if (fast != full) {
                const tl_rec_hdr *h = tl_rec_hdr_of(rec);
                fail_msg(
                    "kind %u len %u body_len %u flags %u where %d replay %d: inline %s, full %s",
                    h->kind, h->len, h->body_len, h->flags, where, replay, tl_rec_err_name(fast),
                    tl_rec_err_name(full));
            }
            hits[full]++;
        }
    }
}

static void test_good_records_of_every_kind(void **state) {
    (void)state;
    uint64_t buf[BUF_BYTES / 8];
    uint8_t *rec = (uint8_t *)buf;
    uint32_t hits[TL_REC_ERR_COUNT] = {0};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (uint32_t extra = 0; extra < 20; extra++) {
            make(rec, kinds[k], extra);
            check_both(rec, hits);
        }
    }
    /* A PAD: legal on the ring only. */
    tl_rec_meta next = {.seq = 9, .parent = 1, .fence = 1, .ts_ns = 2};
    for (uint32_t n = 64; n <= 256; n += 8) {
        assert_int_equal(tl_rec_encode_pad(rec, BUF_BYTES, n, &next), n);
        check_both(rec, hits);
    }
    assert_true(hits[TL_REC_OK] > 0);
    assert_true(hits[TL_REC_ERR_KIND] > 0);  /* PAD in the WAL */
    assert_true(hits[TL_REC_ERR_FLAGS] > 0); /* REPLAY in the WAL */
}

static void test_mutants_agree(void **state) {
    (void)state;
    uint64_t buf[BUF_BYTES / 8];
    uint8_t *rec = (uint8_t *)buf;
    uint32_t hits[TL_REC_ERR_COUNT] = {0};
    for (uint32_t i = 0; i < MUTANTS; i++) {
        uint16_t kind = kinds[rnd() % (sizeof kinds / sizeof kinds[0])];
        uint32_t len = make(rec, kind, (uint32_t)(rnd() % 24));
        memset(rec + len, 0, BUF_BYTES - len);
        for (uint64_t m = 1 + rnd() % 3; m > 0; m--)
            mutate(rec, len);
        check_both(rec, hits);
    }
    /* Every verdict of rule 3 was reached, so every branch was compared. */
    for (int e = TL_REC_OK; e < TL_REC_ERR_COUNT; e++) {
        if (e == TL_REC_ERR_LEN || e == TL_REC_ERR_TRUNCATED || e == TL_REC_ERR_CHECKSUM)
            continue; /* rules 1-2: not rule 3's */
        if (hits[e] == 0)
            fail_msg("no mutant reached %s", tl_rec_err_name((enum tl_rec_err)e));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_records_of_every_kind),
        cmocka_unit_test(test_mutants_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
