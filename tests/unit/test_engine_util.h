/* test_engine_util.h: helpers of the libtally_engine and tally-enginesim
 * tests (test_engine.c, test_engine_sim.c): read a WAL directory back with
 * the offline reader (records and findings), walk the records of a
 * file-backed ring, and small conveniences. Static functions: each test
 * file includes it once. */
#ifndef TL_TEST_ENGINE_UTIL_H
#define TL_TEST_ENGINE_UTIL_H

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/finding.h"
#include "core/record.h"
#include "io/wal_reader.h"
#include "shm/ring.h"

#define TE_FINDINGS_MAX 256u
#define TE_UNUSED       __attribute__((unused))

/* One record as read back (from the WAL or the ring). */
typedef struct te_rec {
    uint64_t seq;
    uint64_t checksum;
    uint64_t parent;
    uint64_t fence;
    uint64_t ts_ns;
    uint64_t segment; /* WAL: its segment; ring: 0 */
    uint64_t offset;  /* WAL: offset in the segment; ring: position */
    uint32_t len;
    uint32_t symbol;
    uint16_t kind;
    uint16_t flags;
    uint32_t body_len;
    uint8_t body[64]; /* the first 64 body bytes */
} te_rec;

typedef struct te_log {
    te_rec *recs;
    size_t n, cap;
    tl_finding findings[TE_FINDINGS_MAX];
    uint32_t nfindings;
    uint64_t findings_total;
    tl_wal_summary sum;
} te_log;

static TE_UNUSED void te_push(te_log *l, const te_rec *r) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->recs = realloc(l->recs, l->cap * sizeof *l->recs);
        assert_non_null(l->recs);
    }
    l->recs[l->n++] = *r;
}

static TE_UNUSED void te_free(te_log *l) {
    free(l->recs);
    memset(l, 0, sizeof *l);
}

static TE_UNUSED void te_emit(void *ctx, const tl_finding *f) {
    te_log *l = ctx;
    if (l->nfindings < TE_FINDINGS_MAX)
        l->findings[l->nfindings++] = *f;
    l->findings_total++;
}

static TE_UNUSED int te_on_record(void *ctx, const tl_rec_view *v, const tl_loc *loc,
                                  tl_stream_result res) {
    (void)res;
    te_log *l = ctx;
    te_rec r;
    memset(&r, 0, sizeof r);
    r.seq = v->seq;
    r.checksum = v->checksum;
    r.parent = v->parent;
    r.fence = v->fence;
    r.ts_ns = v->ts_ns;
    r.segment = loc->segment;
    r.offset = loc->offset;
    r.len = v->len;
    r.symbol = v->symbol;
    r.kind = v->kind;
    r.body_len = v->body_len;
    memcpy(r.body, v->body, v->body_len < sizeof r.body ? v->body_len : sizeof r.body);
    te_push(l, &r);
    return 0;
}

/* Reads a WAL directory; durable (may be NULL) is the ring's wal_durable_*. */
static TE_UNUSED void te_read_wal(const char *dir, const tl_walseg_durable *durable, te_log *out) {
    memset(out, 0, sizeof *out);
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.sink = (tl_sink){te_emit, out};
    o.on_record = te_on_record;
    o.ctx = out;
    if (durable != NULL)
        o.durable = *durable;
    enum tl_wal_err rc = tl_wal_read_dir(dir, &o, &out->sum);
    if (rc != TL_WAL_OK)
        fail_msg("reading %s: %s", dir, tl_wal_err_name(rc));
}

static TE_UNUSED void te_print_findings(const te_log *l) {
    for (uint32_t i = 0; i < l->nfindings; i++) {
        char buf[1024];
        tl_finding_json(&l->findings[i], buf, sizeof buf);
        fprintf(stderr, "  finding: %s\n", buf);
    }
}

static TE_UNUSED void te_expect_clean(const te_log *l) {
    if (l->findings_total != 0) {
        te_print_findings(l);
        fail_msg("%llu finding(s)", (unsigned long long)l->findings_total);
    }
}

/* The first finding with this check, or NULL. */
static TE_UNUSED const tl_finding *te_find(const te_log *l, enum tl_check check) {
    for (uint32_t i = 0; i < l->nfindings; i++) {
        if (l->findings[i].check == check)
            return &l->findings[i];
    }
    return NULL;
}

/* The i-th record with this seq (i = 0: the first), or NULL. */
static TE_UNUSED const te_rec *te_seq(const te_log *l, uint64_t seq, unsigned i) {
    for (size_t k = 0; k < l->n; k++) {
        if (l->recs[k].seq == seq && i-- == 0)
            return &l->recs[k];
    }
    return NULL;
}

/* Walks a file-backed ring from position 0 up to its `publish` (after the
 * producer is gone: nothing moves), the records of the first lap only.
 * Records are checked (length and checksum, REPLAY cleared first). */
static TE_UNUSED void te_read_ring(const char *path, te_log *out, tl_ring_durable *durable) {
    memset(out, 0, sizeof *out);
    size_t n = 0;
    uint8_t *img = tu_read_file(path, &n);
    assert_true(n >= TL_RING_CONTROL_BYTES + TL_RING_MIN_CAPACITY);
    const tl_ring_ctl *ctl = (const tl_ring_ctl *)(const void *)img;
    uint64_t cap = atomic_load(&ctl->header_words[2]);
    uint64_t pub = atomic_load(&ctl->publish);
    assert_true(n == TL_RING_CONTROL_BYTES + cap);
    assert_true(pub <= cap); /* the tests size rings so nothing laps */
    if (durable != NULL) {
        durable->seq = atomic_load(&ctl->wal_durable_seq);
        durable->segment_first_seq = atomic_load(&ctl->wal_durable_segment_first_seq);
        durable->offset = atomic_load(&ctl->wal_durable_offset);
    }
    uint8_t *copy = tu_aligned(64, TL_RING_COPY_BYTES);
    for (uint64_t pos = 0; pos < pub;) {
        const uint8_t *p = img + TL_RING_CONTROL_BYTES + pos;
        const tl_rec_hdr *h = tl_rec_hdr_of(p);
        assert_true(h->len >= 64 && h->len % 8 == 0 && pos + h->len <= cap);
        if (h->kind == TL_KIND_PAD) {
            pos += h->len;
            continue;
        }
        memcpy(copy, p, h->len);
        bool replay = false;
        enum tl_rec_err e = tl_rec_verify(copy, h->len, TL_WHERE_RING, &replay);
        if (e != TL_REC_OK)
            fail_msg("ring record at %llu: %s", (unsigned long long)pos, tl_rec_err_name(e));
        te_rec r;
        memset(&r, 0, sizeof r);
        const tl_rec_hdr *c = tl_rec_hdr_of(copy);
        r.seq = c->seq;
        r.checksum = c->checksum;
        r.parent = c->parent;
        r.fence = c->fence;
        r.ts_ns = c->ts_ns;
        r.offset = pos;
        r.len = c->len;
        r.symbol = c->symbol;
        r.kind = c->kind;
        r.flags = replay ? TL_REC_FLAG_REPLAY : 0;
        r.body_len = c->body_len;
        memcpy(r.body, copy + 64, c->body_len < sizeof r.body ? c->body_len : sizeof r.body);
        te_push(out, &r);
        pos += h->len;
    }
    free(copy);
    free(img);
}

static TE_UNUSED uint64_t te_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static TE_UNUSED uint64_t te_real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static TE_UNUSED void te_sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#endif
