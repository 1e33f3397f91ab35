/* test_record_vectors.c: the records of ../shared/spec/vectors decode exactly
 * as the independent encoder's JSON says, and tally's encoder reproduces
 * their bytes. This test walks the segments by hand, with only core/record.h
 * and core/segment.h, so a bug in the WAL reader cannot hide one here. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/record.h"
#include "core/segment.h"

static const char *const segs[] = {
    "spec/vectors/wal-clean/00000000000000000001.wal",
    "spec/vectors/wal-clean/00000000000000000039.wal",
    "spec/vectors/wal-clean/00000000000000000077.wal",
};

static cJSON *load_json(const char *rel) {
    size_t n;
    uint8_t *buf = tu_read_file(tu_shared(rel), &n);
    cJSON *j = cJSON_ParseWithLength((const char *)buf, n);
    free(buf);
    assert_non_null(j);
    return j;
}

static uint16_t kind_of(const cJSON *k) {
    if (cJSON_IsNumber(k))
        return (uint16_t)k->valuedouble;
    for (uint16_t i = 1; i <= TL_KIND_KNOWN_MAX; i++)
        if (strcmp(tl_kind_name(i), k->valuestring) == 0)
            return i;
    fail_msg("unknown kind %s", k->valuestring);
    return 0;
}

static void test_wal_clean_records(void **state) {
    (void)state;
    cJSON *j = load_json("spec/vectors/wal-clean.json");
    const cJSON *recs = cJSON_GetObjectItem(j, "records");
    int idx = 0;
    uint64_t prev_last_checksum = 0;
    uint8_t *copy = aligned_alloc(8, 65536);
    for (size_t s = 0; s < sizeof segs / sizeof segs[0]; s++) {
        size_t n;
        uint8_t *buf = tu_read_file(tu_shared(segs[s]), &n);
        assert_int_equal(n, 8192);
        assert_int_equal(tl_seg_hdr_check(buf, n), TL_SEG_OK);
        const tl_seg_hdr *sh = (const tl_seg_hdr *)buf;
        assert_int_equal(sh->segment_index, s);
        assert_int_equal(sh->segment_size, 8192);
        assert_true(sh->prev_checksum == prev_last_checksum);
        char name[32];
        tl_seg_name(name, sizeof name, sh->first_seq);
        assert_non_null(strstr(segs[s], name));
        size_t off = TL_SEG_HDR_BYTES;
        bool first = true;
        while (off + TL_REC_HDR_BYTES <= n) {
            const tl_rec_hdr *h = (const tl_rec_hdr *)(buf + off);
            if (h->checksum == 0 && h->len == 0)
                break; /* end of records */
            assert_int_equal(tl_rec_check_len(buf + off, n - off, TL_WHERE_WAL), TL_REC_OK);
            memcpy(copy, buf + off, h->len);
            bool replay = true;
            assert_int_equal(tl_rec_verify(copy, h->len, TL_WHERE_WAL, &replay), TL_REC_OK);
            assert_false(replay);
            const cJSON *r = cJSON_GetArrayItem(recs, idx);
            assert_non_null(r);
            assert_int_equal(h->seq, (uint64_t)cJSON_GetObjectItem(r, "seq")->valuedouble);
            assert_int_equal(h->kind, kind_of(cJSON_GetObjectItem(r, "kind")));
            assert_int_equal(h->symbol, (uint32_t)cJSON_GetObjectItem(r, "symbol")->valuedouble);
            assert_int_equal(h->fence, (uint64_t)cJSON_GetObjectItem(r, "fence")->valuedouble);
            assert_int_equal(h->len, (uint32_t)cJSON_GetObjectItem(r, "len")->valuedouble);
            assert_true(h->checksum == tu_hex64(cJSON_GetObjectItem(r, "checksum")->valuestring));
            assert_true(h->parent == tu_hex64(cJSON_GetObjectItem(r, "parent")->valuestring));
            if (first) {
                assert_int_equal(h->seq, sh->first_seq);
                assert_true(h->parent == sh->prev_checksum);
                first = false;
            }
            /* Re-encode from the decoded fields: identical bytes. */
            tl_rec_meta m = {.parent = h->parent,
                             .seq = h->seq,
                             .fence = h->fence,
                             .ts_ns = h->ts_ns,
                             .kind = h->kind,
                             .flags = h->flags,
                             .symbol = h->symbol};
            uint8_t *re = aligned_alloc(8, 65536);
            uint32_t len = tl_rec_encode(re, 65536, &m, buf + off + 64, h->body_len);
            assert_int_equal(len, h->len);
            assert_memory_equal(re, buf + off, len);
            free(re);
            prev_last_checksum = h->checksum;
            off += h->len;
            idx++;
        }
        free(buf);
    }
    assert_int_equal(idx, cJSON_GetArraySize(recs));
    free(copy);
    cJSON_Delete(j);
}

static void test_replay_seq5(void **state) {
    (void)state;
    size_t n;
    uint8_t *buf = tu_read_file(tu_shared("spec/vectors/replay-seq5.bin"), &n);
    assert_int_equal(n, 104);
    const tl_rec_hdr *h = (const tl_rec_hdr *)buf;
    assert_int_equal(h->seq, 5);
    assert_true(h->flags & TL_REC_FLAG_REPLAY);
    assert_true(h->checksum == 0x8e403449da4b7db8ull);
    /* With the bit set the hash does not verify ... */
    assert_true(tl_rec_compute_checksum(buf, h->len) != h->checksum);
    /* ... and the reader's rule (clear it in the copy first) does. */
    uint8_t *copy = aligned_alloc(8, 128);
    memcpy(copy, buf, n);
    bool replay = false;
    assert_int_equal(tl_rec_verify(copy, n, TL_WHERE_RING, &replay), TL_REC_OK);
    assert_true(replay);
    /* In a WAL the same bytes are corrupt: REPLAY is never set there. */
    memcpy(copy, buf, n);
    assert_int_equal(tl_rec_verify(copy, n, TL_WHERE_WAL, &replay), TL_REC_ERR_FLAGS);
    free(copy);
    free(buf);
}

/* Each field rule of wal.md on a record whose checksum is made valid again
 * after the damage, so that rule 3 (not rule 2) must catch it. */
static void test_field_rules(void **state) {
    (void)state;
    uint8_t *rec = aligned_alloc(8, 256);
    tl_body_order_new b = {.order_id = 1,
                           .account = 2,
                           .price = 3,
                           .qty = 4,
                           .side = TL_SIDE_BUY,
                           .type = TL_ORDER_LIMIT};
    tl_rec_meta m = {.seq = 7, .fence = 1, .ts_ns = 1, .kind = TL_KIND_ORDER_NEW, .symbol = 1};
    uint32_t len = tl_rec_encode(rec, 256, &m, &b, sizeof b);
    assert_int_equal(len, 104);
    tl_rec_hdr *h = (tl_rec_hdr *)rec;
#define RESEAL()  (h->checksum = tl_rec_compute_checksum(rec, h->len))
#define EXPECT(e) assert_int_equal(tl_rec_verify(rec, 256, TL_WHERE_WAL, NULL), (e))
    EXPECT(TL_REC_OK);
    h->body_len = 41;
    RESEAL();
    EXPECT(TL_REC_ERR_BODY_LEN);
    h->body_len = 40;
    h->kind = 0;
    RESEAL();
    EXPECT(TL_REC_ERR_KIND);
    h->kind = TL_KIND_PAD;
    RESEAL();
    EXPECT(TL_REC_ERR_KIND);
    h->kind = TL_KIND_ORDER_NEW;
    h->reserved = 1;
    RESEAL();
    EXPECT(TL_REC_ERR_RESERVED);
    h->reserved = 0;
    h->flags = 2;
    RESEAL();
    EXPECT(TL_REC_ERR_FLAGS);
    h->flags = 0;
    h->seq = 0;
    RESEAL();
    EXPECT(TL_REC_ERR_SEQ0);
    h->seq = 7;
    rec[64 + 33] = 3;
    RESEAL();
    EXPECT(TL_REC_ERR_BODY);
    rec[64 + 33] = 1;
    rec[64 + 35] = 1;
    RESEAL();
    EXPECT(TL_REC_ERR_BODY);
    rec[64 + 35] = 0;
    RESEAL();
    EXPECT(TL_REC_OK);
    /* short body: a TRADE with an ORDER_NEW-sized body */
    h->kind = TL_KIND_TRADE;
    RESEAL();
    EXPECT(TL_REC_ERR_SHORT_BODY);
    h->kind = TL_KIND_ORDER_NEW;
    /* padding: body_len 36 leaves 4 padding bytes; make one nonzero */
    h->body_len = 36;
    rec[64 + 37] = 9;
    RESEAL();
    EXPECT(TL_REC_ERR_PADDING);
    /* a flipped bit anywhere after the checksum word fails rule 2 */
    h->body_len = 40;
    rec[64 + 37] = 0;
    RESEAL();
    EXPECT(TL_REC_OK);
    for (uint32_t bit = 64; bit < 104 * 8; bit += 37) {
        rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        enum tl_rec_err e = tl_rec_verify(rec, 256, TL_WHERE_WAL, NULL);
        assert_true(e == TL_REC_ERR_CHECKSUM || e == TL_REC_ERR_LEN || e == TL_REC_ERR_TRUNCATED);
        rec[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* rule 1 */
    h->len = 60;
    EXPECT(TL_REC_ERR_LEN);
    h->len = 106;
    EXPECT(TL_REC_ERR_LEN);
    h->len = 65544;
    EXPECT(TL_REC_ERR_LEN);
    h->len = 264;
    EXPECT(TL_REC_ERR_TRUNCATED);
#undef RESEAL
#undef EXPECT
    free(rec);
}

static void test_symbol_names(void **state) {
    (void)state;
    assert_true(tl_symbol_name_valid("BTCUSDT", 7));
    assert_true(tl_symbol_name_valid("BTC-KRW.x_1", 11));
    assert_false(tl_symbol_name_valid("", 0));
    assert_false(tl_symbol_name_valid("BTC/USD", 7));
    assert_false(tl_symbol_name_valid("ABCDEFGHIJKLMNOPQRSTUVWXY", 25));
    assert_true(tl_symbol_name_valid("ABCDEFGHIJKLMNOPQRSTUVWX", 24));
    assert_int_equal(tl_mode_parse("HARD_HALT", 9), TL_MODE_HARD_HALT);
    assert_int_equal(tl_mode_parse("HARD_HAL", 8), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wal_clean_records),
        cmocka_unit_test(test_replay_seq5),
        cmocka_unit_test(test_field_rules),
        cmocka_unit_test(test_symbol_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
