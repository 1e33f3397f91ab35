/* test_xwal1.c: the offline verification of xwal1 logs, on the fixtures
 * written by the unmodified quanta trading core
 * (../shared/fixtures/quanta-xwal1) and on corrupted copies of them: the
 * upstream verdicts, every record against upstream's own records.jsonl,
 * the stale_leader split-brain, and each kind of damage reported with its
 * reason, segment index, offset and seq. Every run is made with the fast
 * decoder and with the cJSON reference, and both must agree. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/assert.h"
#include "core/xwal1.h"

#define LAST_HASH_BASIC "ecaf219352bd5eb9bfb0a9d3479287d1d00d75d2411ee824278b69e0514eaecc"

/* ---- a log in memory ---- */

#define MAX_SEGS 32

typedef struct log_buf {
    tl_xwal1_segment_buf segs[MAX_SEGS];
    size_t n;
} log_buf;

/* Exact-size heap copies, so the sanitizer build sees any over-read. */
static void add_seg(log_buf *l, uint64_t index, const uint8_t *bytes, size_t len) {
    assert_true(l->n < MAX_SEGS);
    uint8_t *b = malloc(len ? len : 1);
    assert_non_null(b);
    if (len)
        memcpy(b, bytes, len);
    l->segs[l->n].index = index;
    l->segs[l->n].bytes = b;
    l->segs[l->n].len = len;
    l->n++;
}

static void load_log(log_buf *l, const char *scenario) {
    memset(l, 0, sizeof *l);
    for (int i = 1; i < MAX_SEGS; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "fixtures/quanta-xwal1/%s/wal/segment-%06d.wal", scenario, i);
        FILE *f = fopen(tu_shared(rel), "rb");
        if (f == NULL)
            break;
        fclose(f);
        size_t n;
        uint8_t *b = tu_read_file(tu_shared(rel), &n);
        add_seg(l, (uint64_t)i, b, n);
        free(b);
    }
    assert_true(l->n > 0);
}

static void free_log(log_buf *l) {
    for (size_t i = 0; i < l->n; i++)
        free((void *)l->segs[i].bytes);
    l->n = 0;
}

/* The bytes of segment i, writable. */
static uint8_t *seg_bytes(log_buf *l, size_t i) {
    return (uint8_t *)l->segs[i].bytes;
}

static void seg_resize(log_buf *l, size_t i, size_t len) {
    uint8_t *b = realloc(seg_bytes(l, i), len ? len : 1);
    assert_non_null(b);
    if (len > l->segs[i].len)
        memset(b + l->segs[i].len, 0, len - l->segs[i].len);
    l->segs[i].bytes = b;
    l->segs[i].len = len;
}

static void seg_drop(log_buf *l, size_t i) {
    free(seg_bytes(l, i));
    memmove(&l->segs[i], &l->segs[i + 1], (l->n - i - 1) * sizeof l->segs[0]);
    l->n--;
}

/* ---- running the verifier ---- */

#define MAX_FINDINGS 64

typedef struct run {
    tl_finding f[MAX_FINDINGS];
    size_t n;
    tl_xwal1_summary sum;
    tl_xwal1_sym_summary sym[4];
    char sym_name[4][TL_SYMBOL_NAME_MAX + 1];
    uint32_t n_syms;
} run;

static void collect(void *ctx, const tl_finding *f) {
    run *r = ctx;
    assert_true(r->n < MAX_FINDINGS);
    r->f[r->n++] = *f;
}

static void verify_one(const log_buf *l, bool strict, run *r) {
    memset(r, 0, sizeof *r);
    tl_xwal1_verify_cfg cfg = {4, 1024, strict};
    size_t bytes = tl_xwal1_verifier_bytes(&cfg);
    assert_true(bytes > 0);
    void *mem = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    assert_non_null(mem);
    static tl_xwal1_verifier v;
    tl_sink sink = {collect, r};
    assert_true(tl_xwal1_verifier_init(&v, &cfg, mem, bytes, sink));
    tl_xwal1_verify(&v, l->segs, l->n);
    r->sum = *tl_xwal1_verifier_summary(&v);
    r->n_syms = v.symtab.count;
    for (uint32_t id = 1; id <= v.symtab.count && id <= 4; id++) {
        const tl_xwal1_sym_summary *s = tl_xwal1_verifier_symbol(&v, id);
        assert_non_null(s);
        r->sym[id - 1] = *s;
        strcpy(r->sym_name[id - 1], tl_xwal1_symtab_get(&v.symtab, id)->name);
    }
    free(mem);
}

static void print_findings(const run *r) {
    for (size_t i = 0; i < r->n; i++) {
        char buf[1024];
        tl_finding_json(&r->f[i], buf, sizeof buf);
        print_message("  %s\n", buf);
    }
}

/* Both decoders, same findings and summary. */
static void verify(const log_buf *l, run *r) {
    static run strict;
    verify_one(l, false, r);
    verify_one(l, true, &strict);
    if (r->n != strict.n) {
        print_findings(r);
        print_findings(&strict);
    }
    assert_int_equal(r->n, strict.n);
    for (size_t i = 0; i < r->n; i++)
        assert_memory_equal(&r->f[i], &strict.f[i], sizeof r->f[i]);
    assert_memory_equal(&r->sum, &strict.sum, sizeof r->sum);
    assert_memory_equal(r->sym, strict.sym, sizeof r->sym);
}

static void expect_clean(const run *r, uint64_t records, uint64_t last_seq) {
    if (r->n != 0)
        print_findings(r);
    assert_int_equal(r->n, 0);
    assert_false(r->sum.tentative);
    assert_true(r->sum.records == records && r->sum.frames == records);
    assert_int_equal(r->n_syms, 1);
    assert_string_equal(r->sym_name[0], "BTC-KRW");
    assert_true(r->sym[0].records == records);
    assert_true(r->sym[0].last_seq == last_seq);
}

static void expect_hash(const uint8_t h[32], const char *hex) {
    char got[65];
    for (int i = 0; i < 32; i++)
        snprintf(got + 2 * i, 3, "%02x", h[i]);
    assert_string_equal(got, hex);
}

/* The one finding of check `check` at (segment, offset), with reason. */
static const tl_finding *expect_finding(const run *r, size_t i, enum tl_check check,
                                        unsigned reason, uint64_t segment, uint64_t offset) {
    if (i >= r->n) {
        print_findings(r);
        fail_msg("finding %zu missing", i);
    }
    const tl_finding *f = &r->f[i];
    if (f->check != check || f->reason != reason || f->segment != segment || f->offset != offset) {
        print_findings(r);
        fail_msg("finding %zu: %s reason %u at %llu:%llu; want %s reason %u at %llu:%llu", i,
                 tl_check_name((enum tl_check)f->check), f->reason, (unsigned long long)f->segment,
                 (unsigned long long)f->offset, tl_check_name(check), reason,
                 (unsigned long long)segment, (unsigned long long)offset);
    }
    assert_int_equal(f->source, TL_SOURCE_WAL);
    assert_int_equal(f->dialect, TL_DIALECT_XWAL1);
    assert_true(f->id == i + 1);
    return f;
}

static unsigned xr(enum tl_xwal1_err e) {
    return TL_REASON_XWAL1_BASE + (unsigned)e;
}

/* A single WAL_CORRUPT at (segment, offset) for err, and nothing else. */
static void expect_corrupt(const run *r, enum tl_xwal1_err err, uint64_t segment, uint64_t offset) {
    expect_finding(r, 0, TL_CHECK_WAL_CORRUPT, xr(err), segment, offset);
    assert_int_equal(r->f[0].rule, tl_xwal1_err_rule(err));
    if (r->n != 1)
        print_findings(r);
    assert_int_equal(r->n, 1);
    assert_true(r->sum.corrupt == 1);
}

/* ---- the fixtures: upstream's verdicts ---- */

static void test_fixture_basic_family(void **state) {
    (void)state;
    static const char *const names[] = {"basic", "default_8MiB", "tiny_segments"};
    static const size_t segs[] = {4, 1, 16};
    for (size_t i = 0; i < TL_ARRAY_LEN(names); i++) {
        log_buf l;
        load_log(&l, names[i]);
        assert_int_equal(l.n, segs[i]);
        static run r;
        verify(&l, &r);
        expect_clean(&r, 15, 38);
        expect_hash(r.sym[0].last_state_hash, LAST_HASH_BASIC);
        assert_true(r.sum.segments == segs[i] && r.sum.first_index == 1 &&
                    !r.sum.anchor_unverified);
        assert_int_equal(r.sym[0].mode, TL_MODE_NORMAL);
        free_log(&l);
    }
}

static void test_fixture_restart(void **state) {
    (void)state;
    log_buf l;
    load_log(&l, "restart");
    static run r;
    verify(&l, &r);
    expect_clean(&r, 30, 76);
    free_log(&l);
}

static void test_fixture_escapes(void **state) {
    (void)state;
    log_buf l;
    load_log(&l, "escapes");
    static run r;
    verify(&l, &r);
    expect_clean(&r, 2, 7);
    free_log(&l);
}

/* records.jsonl is what upstream's replay returned: every decoded record
 * must carry its seq, fencing_token, state_hash, symbol_mode and event
 * seqs, by both decoders. */
static void compare_with_jsonl(const char *scenario, unsigned want_records) {
    log_buf l;
    load_log(&l, scenario);
    char rel[256];
    snprintf(rel, sizeof rel, "fixtures/quanta-xwal1/%s/records.jsonl", scenario);
    size_t jn;
    char *jsonl = (char *)tu_read_file(tu_shared(rel), &jn);
    char *line = jsonl;
    unsigned records = 0;
    for (size_t s = 0; s < l.n; s++) {
        tl_xwal1_walker w;
        tl_xwal1_walker_init(&w, l.segs[s].bytes, l.segs[s].len, 0, s + 1 == l.n);
        tl_xwal1_frame fr;
        enum tl_xwal1_err err;
        while (tl_xwal1_walker_next(&w, &fr, &err) == TL_XWAL1_FRAME) {
            char *nl = strchr(line, '\n');
            assert_non_null(nl);
            *nl = '\0';
            cJSON *j = cJSON_Parse(line);
            assert_non_null(j);
            line = nl + 1;
            for (int strict = 0; strict < 2; strict++) {
                static tl_xwal1_rec rec;
                err = strict ? tl_xwal1_decode_strict(fr.payload, fr.payload_len, &rec)
                             : tl_xwal1_decode(fr.payload, fr.payload_len, &rec);
                assert_int_equal(err, TL_XWAL1_OK);
                /* the fixtures' numbers are small: cJSON's doubles are exact */
                assert_true((double)rec.seq == cJSON_GetObjectItem(j, "seq")->valuedouble);
                assert_true((double)rec.fence ==
                            cJSON_GetObjectItem(j, "fencing_token")->valuedouble);
                expect_hash(rec.state_hash, cJSON_GetObjectItem(j, "state_hash")->valuestring);
                assert_string_equal(rec.symbol, cJSON_GetObjectItem(j, "symbol")->valuestring);
                const cJSON *mode = cJSON_GetObjectItem(j, "symbol_mode");
                if (cJSON_IsNull(mode)) {
                    assert_int_equal(rec.mode, TL_XWAL1_MODE_NULL);
                } else {
                    static const char *const modes[] = {"Normal", "CancelOnly", "SoftHalt",
                                                        "HardHalt"};
                    assert_true(rec.mode < 4);
                    assert_string_equal(modes[rec.mode], mode->valuestring);
                }
                const cJSON *events = cJSON_GetObjectItem(j, "events");
                assert_int_equal(rec.n_events, cJSON_GetArraySize(events));
                uint32_t i = 0, trades = 0;
                for (const cJSON *e = events->child; e != NULL; e = e->next, i++) {
                    const cJSON *body = e->child;
                    const cJSON *env = cJSON_GetObjectItem(body, "envelope");
                    assert_true((double)rec.event_seqs[i] ==
                                cJSON_GetObjectItem(env, "seq")->valuedouble);
                    if (strcmp(body->string, "TradeExecuted") == 0) {
                        const tl_xwal1_trade *t = &rec.trades[trades++];
                        assert_true(t->seq == rec.event_seqs[i]);
                        assert_true(
                            t->price ==
                            strtoull(cJSON_GetObjectItem(body, "price")->valuestring, NULL, 10));
                        assert_true(
                            t->qty ==
                            strtoull(cJSON_GetObjectItem(body, "quantity")->valuestring, NULL, 10));
                    }
                }
                assert_int_equal(rec.n_trades, trades);
            }
            cJSON_Delete(j);
            records++;
        }
    }
    assert_int_equal(*line, '\0'); /* every line was a frame */
    assert_int_equal(records, want_records);
    free(jsonl);
    free_log(&l);
}

static void test_records_jsonl(void **state) {
    (void)state;
    compare_with_jsonl("basic", 15);
    compare_with_jsonl("default_8MiB", 15);
    compare_with_jsonl("tiny_segments", 15);
    compare_with_jsonl("restart", 30);
    compare_with_jsonl("escapes", 2);
    compare_with_jsonl("stale_leader", 6);
}

/* Two engines wrote one log: record seqs (tokens) 3 (1), 6 (1), 10 (2),
 * 8 (1), 9 (1), 14 (2). Event seqs 8 and 9 were used inside record 10. */
static void test_stale_leader(void **state) {
    (void)state;
    log_buf l;
    load_log(&l, "stale_leader");
    static run r;
    verify(&l, &r);
    print_findings(&r);
    assert_int_equal(r.n, 4);
    /* record 8 at offset 2717 and record 9 at offset 3445 of segment 1 */
    const uint64_t off8 = 2717, off9 = 3445;
    const tl_finding *f;
    f = expect_finding(&r, 0, TL_CHECK_FORK, TL_REASON_NONE, 1, off8);
    assert_true(f->seq == 8 && f->fence == 1 && f->fence2 == 2 && f->source2 == TL_SOURCE_WAL);
    assert_true(f->checksum != f->checksum2 && f->checksum2 != 0);
    f = expect_finding(&r, 1, TL_CHECK_FENCE_REGRESSION, TL_REASON_FENCE_DROP, 1, off8);
    assert_true(f->seq == 8 && f->fence == 1 && f->fence2 == 2);
    f = expect_finding(&r, 2, TL_CHECK_FORK, TL_REASON_NONE, 1, off9);
    assert_true(f->seq == 9 && f->fence == 1 && f->fence2 == 2);
    f = expect_finding(&r, 3, TL_CHECK_FENCE_REGRESSION, TL_REASON_FENCE_DROP, 1, off9);
    assert_true(f->seq == 9);
    for (size_t i = 0; i < r.n; i++) {
        const tl_finding *g = &r.f[i];
        assert_int_equal(g->cls, TL_CLASS_OUT_OF_ORDER);
        assert_int_equal(g->severity, TL_SEV_SEV1);
        assert_int_equal(tl_check_info_of((enum tl_check)g->check)->family,
                         TL_FAMILY_SPLIT_BRAIN); /* HARD_HALT */
        assert_int_equal(g->symbol, 1);          /* scope BTC-KRW */
    }
    /* record 14 (offset 3913) continued normally: nothing about it */
    assert_true(r.sum.records == 6 && r.sym[0].last_seq == 14 && r.sym[0].last_fence == 2);
    expect_hash(r.sym[0].last_state_hash,
                "c8aa10feda71e1d5ce073caa96a10bae85a86e198599bd9be601af9547d0e0b5");
    free_log(&l);
}

/* ---- corruption of copies of the fixtures ---- */

/* basic's frames: seg 1 at 7, 765, 1523, 2276 (3842 bytes); seg 2 at 7,
 * 728, 1480, 2901 (3660); seg 3 at 7, 478, 1229, 1698, 2167, 2634 (3398);
 * seg 4 at 7 (988). */
static void test_truncations(void **state) {
    (void)state;
    static run r;
    log_buf l;
    struct {
        size_t seg;
        size_t keep;
        enum tl_xwal1_err err;
        uint64_t at;
        uint64_t records; /* read before the damage, in all */
    } cases[] = {
        {0, 765 + 2, TL_XWAL1_ERR_SHORT_LENGTH, 765, 1 + 4 + 6 + 1},
        {0, 765 + 4 + 100, TL_XWAL1_ERR_SHORT_PAYLOAD, 765, 12},
        {0, 765 + 4, TL_XWAL1_ERR_SHORT_PAYLOAD, 765, 12},
        {0, 3842 - 2, TL_XWAL1_ERR_SHORT_CRC, 2276, 14},
        {0, 3842 - 4, TL_XWAL1_ERR_SHORT_CRC, 2276, 14},
        {1, 2901 + 4 + 751, TL_XWAL1_ERR_SHORT_CRC, 2901, 14},
        {2, 3, TL_XWAL1_ERR_SHORT_MAGIC, 0, 9},
    };
    for (size_t i = 0; i < TL_ARRAY_LEN(cases); i++) {
        /* in a sealed segment: corruption */
        load_log(&l, "basic");
        seg_resize(&l, cases[i].seg, cases[i].keep);
        verify(&l, &r);
        expect_corrupt(&r, cases[i].err, cases[i].seg + 1, cases[i].at);
        assert_true(r.sum.records == cases[i].records);
        assert_false(r.sum.tentative);
        free_log(&l);
    }
    /* the same cuts in the newest segment: a tentative torn tail */
    for (size_t i = 0; i < TL_ARRAY_LEN(cases); i++) {
        load_log(&l, "basic");
        while (l.n > cases[i].seg + 1)
            seg_drop(&l, l.n - 1);
        seg_resize(&l, cases[i].seg, cases[i].keep);
        verify(&l, &r);
        if (r.n != 0)
            print_findings(&r);
        assert_int_equal(r.n, 0);
        assert_true(r.sum.tentative);
        assert_int_equal(r.sum.tentative_err, cases[i].err);
        assert_true(r.sum.tentative_segment == cases[i].seg + 1);
        assert_true(r.sum.tentative_offset == cases[i].at);
        free_log(&l);
    }
    /* upstream's clean end: nothing after the last frame */
    load_log(&l, "basic");
    seg_resize(&l, 0, 2276);
    verify(&l, &r);
    assert_int_equal(r.n, 0);
    assert_true(r.sum.records == 14);
    free_log(&l);
}

static void test_bit_flips(void **state) {
    (void)state;
    static run r;
    log_buf l;
    /* a payload bit: crc_mismatch at the frame; the rest of that segment
     * is unreadable, the next segments are read */
    load_log(&l, "basic");
    seg_bytes(&l, 1)[728 + 4 + 100] ^= 0x10;
    verify(&l, &r);
    expect_corrupt(&r, TL_XWAL1_ERR_CRC_MISMATCH, 2, 728);
    assert_true(r.sum.records == 4 + 1 + 6 + 1);
    free_log(&l);
    /* a crc bit */
    load_log(&l, "basic");
    seg_bytes(&l, 2)[3398 - 1] ^= 0x80;
    verify(&l, &r);
    expect_corrupt(&r, TL_XWAL1_ERR_CRC_MISMATCH, 3, 2634);
    assert_true(r.sum.records == 14);
    free_log(&l);
    /* in the newest segment too: a frame that is all there must match */
    load_log(&l, "basic");
    seg_bytes(&l, 3)[988 - 1] ^= 0x01;
    verify(&l, &r);
    expect_corrupt(&r, TL_XWAL1_ERR_CRC_MISMATCH, 4, 7);
    assert_false(r.sum.tentative);
    free_log(&l);
    /* a length bit: the frame now runs past the segment (sealed: corrupt) */
    load_log(&l, "basic");
    seg_bytes(&l, 0)[1523 + 1] ^= 0x40;
    verify(&l, &r);
    expect_corrupt(&r, TL_XWAL1_ERR_SHORT_PAYLOAD, 1, 1523);
    free_log(&l);
    /* every single-bit flip anywhere in segment 2: reported there, never a crash */
    load_log(&l, "basic");
    for (size_t at = 0; at < l.segs[1].len; at += 13) {
        seg_bytes(&l, 1)[at] ^= 0x04;
        verify(&l, &r);
        assert_true(r.n >= 1);
        bool here = false;
        for (size_t i = 0; i < r.n; i++)
            here |= r.f[i].check == TL_CHECK_WAL_CORRUPT && r.f[i].segment == 2;
        assert_true(here);
        seg_bytes(&l, 1)[at] ^= 0x04;
    }
    free_log(&l);
}

static void test_bad_magic(void **state) {
    (void)state;
    static run r;
    log_buf l;
    load_log(&l, "basic");
    seg_bytes(&l, 2)[0] = 'Y';
    verify(&l, &r);
    expect_corrupt(&r, TL_XWAL1_ERR_BAD_MAGIC, 3, 0);
    assert_true(r.sum.records == 4 + 4 + 1); /* segment 3's six are unread */
    free_log(&l);
    /* the newest segment too: a whole wrong magic is no file being created */
    load_log(&l, "basic");
    seg_bytes(&l, 3)[6] = 'x';
    verify(&l, &r);
    expect_corrupt(&r, TL_XWAL1_ERR_BAD_MAGIC, 4, 0);
    free_log(&l);
}

static void test_zero_filled_tail(void **state) {
    (void)state;
    static run r;
    log_buf l;
    /* newest segment: a crash artifact, tentative (upstream refuses to start) */
    load_log(&l, "basic");
    seg_resize(&l, 3, 988 + 4096);
    verify(&l, &r);
    assert_int_equal(r.n, 0);
    assert_true(r.sum.tentative && r.sum.tentative_err == TL_XWAL1_ERR_ZERO_FILLED_TAIL);
    assert_true(r.sum.tentative_segment == 4 && r.sum.tentative_offset == 988);
    assert_true(r.sum.records == 15);
    free_log(&l);
    /* a sealed segment: corruption */
    load_log(&l, "basic");
    seg_resize(&l, 1, 3660 + 100);
    verify(&l, &r);
    expect_corrupt(&r, TL_XWAL1_ERR_ZERO_FILLED_TAIL, 2, 3660);
    assert_true(r.sum.records == 15);
    free_log(&l);
    /* zeros, then a frame appended after them (a restarted writer): corrupt */
    load_log(&l, "basic");
    seg_resize(&l, 3, 988 + 64 + 988 - 7);
    memcpy(seg_bytes(&l, 3) + 988 + 64, seg_bytes(&l, 3) + 7, 988 - 7);
    verify(&l, &r);
    expect_corrupt(&r, TL_XWAL1_ERR_ZERO_LENGTH, 4, 988);
    free_log(&l);
}

static void test_segment_gaps(void **state) {
    (void)state;
    static run r;
    log_buf l;
    /* missing segment 2 */
    load_log(&l, "basic");
    seg_drop(&l, 1);
    verify(&l, &r);
    const tl_finding *f =
        expect_finding(&r, 0, TL_CHECK_SEGMENT_GAP, TL_REASON_SEGMENT_INDEX, 3, 0);
    assert_true(f->seq2 == 2); /* the index expected */
    assert_int_equal(f->rule, TL_RULE_SEGMENT);
    assert_int_equal(f->symbol, 0); /* scope * */
    assert_int_equal(r.n, 1);       /* xwal1 seqs have gaps by design: no SEQ_GAP */
    assert_true(r.sum.records == 11);
    free_log(&l);

    /* segment 2 listed twice: SEGMENT_GAP, and its records are duplicates */
    log_buf src;
    load_log(&src, "basic");
    static const size_t twice[] = {0, 1, 1, 2, 3};
    static const uint64_t twice_idx[] = {1, 2, 2, 3, 4};
    for (size_t i = 0; i < 5; i++)
        add_seg(&l, twice_idx[i], src.segs[twice[i]].bytes, src.segs[twice[i]].len);
    verify(&l, &r);
    f = expect_finding(&r, 0, TL_CHECK_SEGMENT_GAP, TL_REASON_SEGMENT_INDEX, 2, 0);
    assert_true(f->seq2 == 3);
    static const uint64_t dup_off[4] = {7, 728, 1480, 2901};
    static const uint64_t dup_seq[4] = {16, 18, 23, 26};
    for (size_t i = 0; i < 4; i++) {
        f = expect_finding(&r, 1 + i, TL_CHECK_SEQ_DUPLICATE, TL_REASON_NONE, 2, dup_off[i]);
        assert_true(f->seq == dup_seq[i]);
        assert_int_equal(f->severity, TL_SEV_INFO);
    }
    assert_int_equal(r.n, 5);
    free_log(&l);

    /* a copy of segment 2 under the next index (names shifted): only duplicates */
    for (size_t i = 0; i < 5; i++)
        add_seg(&l, i + 1, src.segs[twice[i]].bytes, src.segs[twice[i]].len);
    verify(&l, &r);
    for (size_t i = 0; i < 4; i++) {
        f = expect_finding(&r, i, TL_CHECK_SEQ_DUPLICATE, TL_REASON_NONE, 3, dup_off[i]);
        assert_true(f->seq == dup_seq[i]);
    }
    assert_int_equal(r.n, 4);
    assert_true(r.sum.records == 19);
    free_log(&l);

    /* reordered: 1, 3, 2, 4. Segment 2's records come after seq 35: lower
     * seqs never seen, SEQ_REGRESSION each */
    static const size_t order[] = {0, 2, 1, 3};
    for (size_t i = 0; i < 4; i++)
        add_seg(&l, order[i] + 1, src.segs[order[i]].bytes, src.segs[order[i]].len);
    verify(&l, &r);
    f = expect_finding(&r, 0, TL_CHECK_SEGMENT_GAP, TL_REASON_SEGMENT_INDEX, 3, 0);
    assert_true(f->seq2 == 2);
    f = expect_finding(&r, 1, TL_CHECK_SEGMENT_GAP, TL_REASON_SEGMENT_INDEX, 2, 0);
    assert_true(f->seq2 == 4);
    for (size_t i = 0; i < 4; i++) {
        f = expect_finding(&r, 2 + i, TL_CHECK_SEQ_REGRESSION, TL_REASON_LOWER_UNSEEN, 2,
                           dup_off[i]);
        assert_true(f->seq == dup_seq[i]);
    }
    f = expect_finding(&r, 6, TL_CHECK_SEGMENT_GAP, TL_REASON_SEGMENT_INDEX, 4, 0);
    assert_true(f->seq2 == 3);
    assert_int_equal(r.n, 7);
    free_log(&l);
    free_log(&src);

    /* starting past index 1 (old segments gone): anchor unverified, no finding */
    load_log(&l, "basic");
    seg_drop(&l, 0);
    verify(&l, &r);
    assert_int_equal(r.n, 0);
    assert_true(r.sum.anchor_unverified && r.sum.first_index == 2);
    free_log(&l);
}

static size_t put_frame(uint8_t *dst, const void *payload, uint32_t len) {
    memcpy(dst, &len, 4);
    memcpy(dst + 4, payload, len);
    uint32_t c = (uint32_t)crc32(0, payload, len);
    memcpy(dst + 4 + len, &c, 4);
    return 8u + len;
}

static void test_torn_then_appended(void **state) {
    (void)state;
    static run r;
    log_buf l;
    /* segment 4's frame torn after 300 payload bytes, then a restarted
     * writer appends a whole frame (segment 3's last) after it */
    load_log(&l, "basic");
    const uint8_t *s3 = l.segs[2].bytes;
    size_t keep = 7 + 4 + 300, add = 3398 - 2634;
    seg_resize(&l, 3, keep + add);
    memcpy(seg_bytes(&l, 3) + keep, s3 + 2634, add);
    verify(&l, &r);
    expect_corrupt(&r, TL_XWAL1_ERR_CRC_MISMATCH, 4, 7);
    free_log(&l);
    /* if what follows is still shorter than the torn frame claims, offline
     * it reads as a tentative tail; the live loop's clock
     * (tl_xwal1_tail_observe) turns it into WAL_CORRUPT: test_xwal1_json */
    load_log(&l, "basic");
    s3 = l.segs[2].bytes;
    keep = 7 + 4 + 300;
    seg_resize(&l, 3, keep + 200);
    memcpy(seg_bytes(&l, 3) + keep, s3 + 2634, 200);
    verify(&l, &r);
    assert_int_equal(r.n, 0);
    assert_true(r.sum.tentative && r.sum.tentative_err == TL_XWAL1_ERR_SHORT_PAYLOAD &&
                r.sum.tentative_offset == 7);
    free_log(&l);
}

/* A frame whose crc holds but whose JSON does not: reported at its offset,
 * and the frames after it are still read. */
static void test_payload_errors(void **state) {
    (void)state;
    static run r;
    log_buf l;
    struct {
        const char *from, *to;
        enum tl_xwal1_err err;
    } cases[] = {
        {"\"fencing_token\":1}", "\"fencing_tokex\":1}", TL_XWAL1_ERR_BAD_FIELD},
        {"\"fencing_token\":1}", "\"fencing_token\":1,", TL_XWAL1_ERR_JSON},
        {"\"symbol\":\"BTC-KRW\",\"events\"", "\"symbol\":\"BTC KRW\",\"events\"",
         TL_XWAL1_ERR_BAD_SYMBOL},
        {"\"seq\":16,\"command_id\"", "\"seq\":17,\"command_id\"", TL_XWAL1_ERR_SEQ_ORDER},
        {"],\"state_hash\":\"ae", "],\"state_hash\":\"AE", TL_XWAL1_ERR_BAD_STATE_HASH},
        /* the first state_hash is the EngineCheckpoint event's */
        {"\"state_hash\":\"ae", "\"state_hash\":\"ee", TL_XWAL1_ERR_BAD_CHECKPOINT},
        {"\"OrderCanceled\"", "\"OrderCancelled\"", TL_XWAL1_ERR_BAD_FIELD},
    };
    for (size_t i = 0; i < TL_ARRAY_LEN(cases); i++) {
        load_log(&l, "basic");
        /* rewrite segment 2's first frame (seq 16) */
        const uint8_t *s = l.segs[1].bytes;
        uint32_t len;
        memcpy(&len, s + 7, 4);
        char *payload = malloc(len + 64);
        assert_non_null(payload);
        memcpy(payload, s + 11, len);
        payload[len] = '\0';
        char *at = strstr(payload, cases[i].from);
        assert_non_null(at);
        size_t fl = strlen(cases[i].from), tlen = strlen(cases[i].to);
        memmove(at + tlen, at + fl, strlen(at + fl) + 1);
        memcpy(at, cases[i].to, tlen);
        uint32_t nlen = (uint32_t)strlen(payload);
        size_t rest = l.segs[1].len - (7 + 8 + len);
        uint8_t *seg = malloc(7 + 8 + nlen + rest);
        assert_non_null(seg);
        memcpy(seg, s, 7);
        put_frame(seg + 7, payload, nlen);
        memcpy(seg + 7 + 8 + nlen, s + 7 + 8 + len, rest);
        free(seg_bytes(&l, 1));
        l.segs[1].bytes = seg;
        l.segs[1].len = 7 + 8 + nlen + rest;
        verify(&l, &r);
        expect_corrupt(&r, cases[i].err, 2, 7);
        assert_int_equal(r.f[0].rule, TL_RULE_FIELDS);
        assert_true(r.f[0].checksum == tl_xxh3(payload, nlen));
        assert_true(r.sum.records == 14 && r.sum.frames == 15);
        free(payload);
        free_log(&l);
    }
}

/* Rewrites every frame of a segment with `from` -> `to` (same length) in
 * each payload, and recomputes the crcs. */
static void rename_symbol(log_buf *l, size_t s, const char *from, const char *to) {
    uint8_t *b = seg_bytes(l, s);
    size_t o = 7, n = strlen(from);
    assert_int_equal(n, strlen(to));
    while (o + 8 <= l->segs[s].len) {
        uint32_t len;
        memcpy(&len, b + o, 4);
        uint8_t *p = b + o + 4;
        for (size_t i = 0; i + n <= len; i++) {
            if (memcmp(p + i, from, n) == 0)
                memcpy(p + i, to, n);
        }
        uint32_t c = (uint32_t)crc32(0, p, len);
        memcpy(p + len, &c, 4);
        o += 8 + len;
    }
}

/* Seqs count per symbol: two symbols with the same seqs are no fork, and
 * each keeps its own order, fence and summary. */
static void test_two_symbols(void **state) {
    (void)state;
    static run r;
    log_buf l, eth;
    load_log(&l, "basic");
    load_log(&eth, "basic");
    for (size_t s = 0; s < eth.n; s++)
        rename_symbol(&eth, s, "BTC-KRW", "ETH-KRW");
    /* interleave: BTC 1, ETH 1, BTC 2, ETH 2, ... as segments 1..8 */
    log_buf mix = {0};
    for (size_t s = 0; s < 4; s++) {
        add_seg(&mix, 2 * s + 1, l.segs[s].bytes, l.segs[s].len);
        add_seg(&mix, 2 * s + 2, eth.segs[s].bytes, eth.segs[s].len);
    }
    verify(&mix, &r);
    if (r.n)
        print_findings(&r);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.n_syms, 2);
    assert_string_equal(r.sym_name[0], "BTC-KRW");
    assert_string_equal(r.sym_name[1], "ETH-KRW");
    for (int i = 0; i < 2; i++)
        assert_true(r.sym[i].records == 15 && r.sym[i].last_seq == 38);
    assert_true(r.sum.records == 30);
    free_log(&mix);

    /* ETH forks at its own seq 14 (another record 14 after the first):
     * the finding names ETH only */
    for (size_t s = 0; s < 4; s++) {
        add_seg(&mix, s + 1, l.segs[s].bytes, l.segs[s].len);
    }
    add_seg(&mix, 5, eth.segs[0].bytes, eth.segs[0].len);
    /* ETH's segment 1 again, with its last record changed */
    add_seg(&mix, 6, eth.segs[0].bytes, eth.segs[0].len);
    uint8_t *b = seg_bytes(&mix, 5);
    uint8_t *p = b + 2276 + 4;
    uint32_t len;
    memcpy(&len, b + 2276, 4);
    char *c1 = memmem(p, len, "\"command_id\":\"c4\"", 17);
    assert_non_null(c1);
    c1[15] = 'X';
    uint32_t c = (uint32_t)crc32(0, p, len);
    memcpy(p + len, &c, 4);
    verify(&mix, &r);
    print_findings(&r);
    /* the three unchanged records are duplicates; 14's events fork */
    size_t forks = 0, dups = 0;
    for (size_t i = 0; i < r.n; i++) {
        if (r.f[i].check == TL_CHECK_FORK) {
            forks++;
            assert_int_equal(r.f[i].symbol, 2);
            assert_true(r.f[i].seq == 11 && r.f[i].seq2 == 14); /* the first event of 14 */
            assert_true(r.f[i].segment == 6 && r.f[i].offset == 2276);
        } else {
            assert_int_equal(r.f[i].check, TL_CHECK_SEQ_DUPLICATE);
            assert_int_equal(r.f[i].symbol, 2);
            dups++;
        }
    }
    assert_true(forks == 1 && dups == 3);
    free_log(&mix);
    free_log(&l);
    free_log(&eth);
}

static void test_verifier_config(void **state) {
    (void)state;
    tl_xwal1_verify_cfg bad[] = {
        {0, 1024, false}, {TL_XWAL1_MAX_SYMBOLS + 1, 1024, false}, {4, 1000, false}, {4, 1, false},
        {4, 0, false},
    };
    for (size_t i = 0; i < TL_ARRAY_LEN(bad); i++)
        assert_int_equal(tl_xwal1_verifier_bytes(&bad[i]), 0);
    tl_xwal1_verify_cfg ok = {2, 64, false};
    size_t n = tl_xwal1_verifier_bytes(&ok);
    assert_true(n > 0);
    void *mem = aligned_alloc(64, (n + 63) & ~(size_t)63);
    static tl_xwal1_verifier v;
    static run r;
    tl_sink sink = {collect, &r};
    assert_false(tl_xwal1_verifier_init(&v, &ok, mem, n - 1, sink));
    assert_true(tl_xwal1_verifier_init(&v, &ok, mem, n, sink));
    free(mem);
}

/* More symbols than the table holds: the records of the extra symbol are
 * reported, not dropped silently. */
static void test_too_many_symbols(void **state) {
    (void)state;
    log_buf l, eth;
    load_log(&l, "default_8MiB");
    load_log(&eth, "default_8MiB");
    rename_symbol(&eth, 0, "BTC-KRW", "ETH-KRW");
    add_seg(&l, 2, eth.segs[0].bytes, eth.segs[0].len);
    tl_xwal1_verify_cfg cfg = {1, 64, false};
    size_t n = tl_xwal1_verifier_bytes(&cfg);
    void *mem = aligned_alloc(64, (n + 63) & ~(size_t)63);
    static tl_xwal1_verifier v;
    static run r;
    memset(&r, 0, sizeof r);
    tl_sink sink = {collect, &r};
    assert_true(tl_xwal1_verifier_init(&v, &cfg, mem, n, sink));
    tl_xwal1_verify(&v, l.segs, l.n);
    assert_int_equal(r.n, 15);
    for (size_t i = 0; i < r.n; i++) {
        assert_int_equal(r.f[i].check, TL_CHECK_WAL_CORRUPT);
        assert_int_equal(r.f[i].reason, xr(TL_XWAL1_ERR_TOO_MANY_SYMBOLS));
        assert_true(r.f[i].segment == 2);
    }
    free(mem);
    free_log(&l);
    free_log(&eth);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_basic_family),
        cmocka_unit_test(test_fixture_restart),
        cmocka_unit_test(test_fixture_escapes),
        cmocka_unit_test(test_records_jsonl),
        cmocka_unit_test(test_stale_leader),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_zero_filled_tail),
        cmocka_unit_test(test_segment_gaps),
        cmocka_unit_test(test_torn_then_appended),
        cmocka_unit_test(test_payload_errors),
        cmocka_unit_test(test_two_symbols),
        cmocka_unit_test(test_verifier_config),
        cmocka_unit_test(test_too_many_symbols),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
