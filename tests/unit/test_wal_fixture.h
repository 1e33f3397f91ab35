/* test_wal_fixture.h: builds native WAL segments byte by byte for the WAL
 * tests (test_walseg.c, test_wal_reader.c, test_wal_writer.c), so each test
 * can break exactly one rule. Header-only: the test glob builds every
 * test_*.c as its own program. Uses only core/record.h and core/segment.h. */
#ifndef TEST_WAL_FIXTURE_H
#define TEST_WAL_FIXTURE_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include "core/assert.h"
#include "core/finding.h"
#include "core/record.h"
#include "core/segment.h"

/* The chain a hand-built log follows. */
typedef struct fx_chain {
    uint64_t seq;    /* next seq */
    uint64_t parent; /* checksum of seq - 1 */
    uint64_t fence;
    uint64_t ts_ns;
} fx_chain;

typedef struct fx_seg {
    uint8_t *buf; /* segment_size bytes, 64-aligned */
    size_t size;
    size_t off; /* where the next record goes */
    tl_seg_hdr *hdr;
    uint64_t name_seq; /* the file name's first_seq (the header may be broken) */
} fx_seg;

static const uint8_t fx_engine[TL_ID_BYTES] = {0, 1, 2,  3,  4,  5,  6,  7,
                                               8, 9, 10, 11, 12, 13, 14, 15};

static inline void fx_seg_init(fx_seg *s, size_t size, uint64_t index, uint64_t first_seq,
                               uint64_t prev_checksum, uint64_t fence,
                               const uint8_t leader[TL_ID_BYTES]) {
    s->buf = aligned_alloc(64, size);
    assert_non_null(s->buf);
    memset(s->buf, 0, size);
    s->size = size;
    s->off = TL_SEG_HDR_BYTES;
    s->hdr = (tl_seg_hdr *)s->buf;
    s->hdr->version = TL_SEG_VERSION;
    s->hdr->header_len = TL_SEG_HDR_BYTES;
    s->hdr->segment_index = index;
    s->hdr->first_seq = first_seq;
    s->name_seq = first_seq;
    s->hdr->prev_checksum = prev_checksum;
    s->hdr->fence = fence;
    memcpy(s->hdr->engine_id, fx_engine, TL_ID_BYTES);
    s->hdr->created_ns = 1795000000000000000ull;
    s->hdr->segment_size = size;
    if (leader != NULL)
        memcpy(s->hdr->leader_id, leader, TL_ID_BYTES);
    tl_seg_hdr_seal(s->hdr);
}

/* Re-seals the header after a test changed a field. */
static inline void fx_seg_reseal(fx_seg *s) {
    tl_seg_hdr_seal(s->hdr);
}

static inline void fx_seg_free(fx_seg *s) {
    free(s->buf);
    s->buf = NULL;
}

/* Appends a record with explicit header values (no chain update). */
static inline uint8_t *fx_put_raw(fx_seg *s, uint64_t seq, uint64_t parent, uint64_t fence,
                                  uint16_t kind, uint32_t symbol, const void *body,
                                  uint32_t body_len) {
    uint8_t *dst = s->buf + s->off;
    tl_rec_meta m = {.parent = parent,
                     .seq = seq,
                     .fence = fence,
                     .ts_ns = 1795000000000000000ull + seq,
                     .kind = kind,
                     .flags = 0,
                     .symbol = symbol};
    uint32_t len = tl_rec_encode(dst, s->size - s->off, &m, body, body_len);
    assert_true(len > 0);
    s->off += len;
    return dst;
}

/* Appends the chain's next record. */
static inline uint8_t *fx_put(fx_seg *s, fx_chain *c, uint16_t kind, uint32_t symbol,
                              const void *body, uint32_t body_len) {
    uint8_t *r = fx_put_raw(s, c->seq, c->parent, c->fence, kind, symbol, body, body_len);
    c->parent = tl_rec_hdr_of(r)->checksum;
    c->seq++;
    return r;
}

/* Re-computes a record's checksum after a test changed a header or body
 * byte, so that it passes rule 2 and breaks only what the test broke. */
static inline void fx_reseal_rec(uint8_t *rec) {
    tl_rec_hdr *h = (tl_rec_hdr *)rec;
    h->checksum = tl_rec_compute_checksum(rec, h->len);
}

static inline tl_body_order_new fx_order(uint64_t id) {
    tl_body_order_new b;
    memset(&b, 0, sizeof b);
    b.order_id = id;
    b.account = 7;
    b.price = 100 + (int64_t)id;
    b.qty = 3;
    b.side = TL_SIDE_BUY;
    b.type = TL_ORDER_LIMIT;
    return b;
}

/* An ORDER_NEW as the chain's next record. */
static inline uint8_t *fx_order_new(fx_seg *s, fx_chain *c) {
    tl_body_order_new b = fx_order(c->seq);
    return fx_put(s, c, TL_KIND_ORDER_NEW, 1, &b, sizeof b);
}

static inline uint8_t *fx_leader_change(fx_seg *s, fx_chain *c, uint64_t new_fence,
                                        const uint8_t leader[TL_ID_BYTES]) {
    tl_body_leader_change b;
    b.new_fence = new_fence;
    b.prev_fence = c->fence;
    memcpy(b.leader_id, leader, TL_ID_BYTES);
    c->fence = new_fence;
    return fx_put(s, c, TL_KIND_LEADER_CHANGE, 0, &b, sizeof b);
}

static inline uint8_t *fx_symbol(fx_seg *s, fx_chain *c, uint32_t id, const char *name) {
    tl_body_symbol b;
    memset(&b, 0, sizeof b);
    memcpy(b.name, name, strlen(name));
    return fx_put(s, c, TL_KIND_SYMBOL, id, &b, sizeof b);
}

/* Writes the segment as `name` (NULL: its first_seq's name) in dir. */
static inline void fx_seg_write(const char *dir, const fx_seg *s, const char *name) {
    char fname[TL_SEG_NAME_BYTES + 1];
    if (name == NULL) {
        tl_seg_name(fname, sizeof fname, s->name_seq);
        name = fname;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tu_write_file(path, s->buf, s->size);
}

/* A collecting sink. */
#define FX_MAX_FINDINGS 64
typedef struct fx_findings {
    tl_finding f[FX_MAX_FINDINGS];
    unsigned n;
} fx_findings;

static inline void fx_collect(void *ctx, const tl_finding *f) {
    fx_findings *c = ctx;
    if (c->n < FX_MAX_FINDINGS)
        c->f[c->n] = *f;
    c->n++;
}

static inline void fx_print_findings(const fx_findings *c) {
    char buf[1024];
    for (unsigned i = 0; i < c->n && i < FX_MAX_FINDINGS; i++) {
        tl_finding_json(&c->f[i], buf, sizeof buf);
        print_message("finding %u: %s\n", i, buf);
    }
}

/* Asserts the only finding is `check` with rule and reason, at segment and
 * offset, about seq. */
static inline void fx_expect_one(const fx_findings *c, enum tl_check check, unsigned rule,
                                 unsigned reason, uint64_t segment, uint64_t offset, uint64_t seq) {
    if (c->n != 1)
        fx_print_findings(c);
    assert_int_equal(c->n, 1);
    const tl_finding *f = &c->f[0];
    if (f->check != check || f->rule != rule || f->reason != reason || f->segment != segment ||
        f->offset != offset || f->seq != seq)
        fx_print_findings(c);
    assert_string_equal(tl_check_name((enum tl_check)f->check), tl_check_name(check));
    assert_int_equal(f->rule, rule);
    assert_string_equal(tl_reason_name(f->reason), tl_reason_name(reason));
    assert_int_equal(f->segment, segment);
    assert_int_equal(f->offset, offset);
    assert_int_equal(f->seq, seq);
    assert_int_equal(f->source, TL_SOURCE_WAL);
}

#endif
