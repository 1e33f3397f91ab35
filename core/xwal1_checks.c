/* xwal1_checks.c: the checks of an xwal1 log after decoding, one window and
 * one stream per symbol (see xwal1.h "the checks after decoding"). The
 * offline verifier (xwal1_verify.c) and the live loop (loop.c) both run
 * them, so one set of bytes gives one set of findings whichever reads it.
 *
 * Invariants:
 * - ready[i] implies logs[i] and streams[i] are initialised over window i;
 *   `used` is the highest id with ready set, so the gauges scan 1..used.
 * - A finding leaves through `out` exactly once, in detection order.
 */
#include <string.h>

#include "assert.h"
#include "xwal1.h"

#define WINDOW_RECORDS_MAX (1ull << 26)

static size_t align64(size_t n) {
    return (n + 63u) & ~(size_t)63u;
}

typedef struct layout {
    size_t logs, streams, ready, wins, win_each, total;
} layout;

static bool layout_of(uint32_t max_symbols, uint64_t wr, layout *L) {
    if (max_symbols < 1 || max_symbols > TL_XWAL1_MAX_SYMBOLS || wr < 2 ||
        wr > WINDOW_RECORDS_MAX || (wr & (wr - 1)) != 0)
        return false;
    size_t n = max_symbols, off = 0;
    L->logs = off;
    off += align64(n * sizeof(tl_log));
    L->streams = off;
    off += align64(n * sizeof(tl_stream));
    L->ready = off;
    off += align64(n * sizeof(bool));
    L->win_each = align64(tl_window_bytes(wr));
    L->wins = off;
    size_t wins;
    if (__builtin_mul_overflow(n, L->win_each, &wins) || __builtin_add_overflow(off, wins, &off))
        return false;
    L->total = off;
    return true;
}

size_t tl_xwal1_checks_bytes(uint32_t max_symbols, uint64_t window_records) {
    layout L;
    return layout_of(max_symbols, window_records, &L) ? L.total : 0;
}

/* A per-symbol log's finding: to the one sink (which numbers it). */
static void log_sink(void *ctx, const tl_finding *f) {
    tl_xwal1_checks *c = ctx;
    c->out.emit(c->out.ctx, f);
}

bool tl_xwal1_checks_init(tl_xwal1_checks *c, uint32_t max_symbols, uint64_t window_records,
                          void *mem, size_t mem_bytes, tl_sink out) {
    layout L;
    if (!layout_of(max_symbols, window_records, &L) || mem == NULL || mem_bytes < L.total ||
        out.emit == NULL)
        return false;
    TL_ASSERT(((uintptr_t)mem & 63u) == 0);
    memset(c, 0, sizeof *c);
    uint8_t *m = mem;
    c->max_symbols = max_symbols;
    c->window_records = window_records;
    c->logs = (tl_log *)(m + L.logs);
    c->streams = (tl_stream *)(m + L.streams);
    c->ready = (bool *)(m + L.ready);
    c->win_mem = m + L.wins;
    c->win_each_bytes = L.win_each;
    memset(c->ready, 0, (size_t)max_symbols * sizeof(bool));
    c->out = out;
    return true;
}

static void ready_one(tl_xwal1_checks *c, uint32_t i) {
    tl_log_init(&c->logs[i], TL_DIALECT_XWAL1, c->win_mem + (size_t)i * c->win_each_bytes,
                c->window_records, (tl_sink){log_sink, c});
    tl_stream_init(&c->streams[i], &c->logs[i], TL_SOURCE_WAL);
    c->ready[i] = true;
}

void tl_xwal1_checks_prepare(tl_xwal1_checks *c) {
    for (uint32_t i = 0; i < c->max_symbols; i++) {
        if (!c->ready[i])
            ready_one(c, i);
    }
}

void tl_xwal1_checks_segment(tl_xwal1_checks *c, uint64_t index) {
    if (!c->have_segment) {
        c->have_segment = true;
        c->first_index = index;
        /* Where reading starts: the log's first segment is index 1; a later
         * one is taken as given (wal.md "Where a reader starts"). */
        c->anchor_unverified = index != 1;
    } else if (index != c->last_index + 1) {
        tl_finding f;
        tl_finding_init(&f, TL_CHECK_SEGMENT_GAP);
        f.source = TL_SOURCE_WAL;
        f.rule = TL_RULE_SEGMENT;
        f.reason = TL_REASON_SEGMENT_INDEX;
        f.segment = index;
        f.seq2 = c->last_index + 1; /* the index expected */
        f.detect_ns = c->now_ns;
        c->out.emit(c->out.ctx, &f);
    }
    c->last_index = index;
}

bool tl_xwal1_checks_record(tl_xwal1_checks *c, const tl_rec_view *v, const tl_loc *loc,
                            tl_stream_result *res) {
    if (v->symbol < 1 || v->symbol > c->max_symbols)
        return false;
    uint32_t i = v->symbol - 1;
    if (!c->ready[i])
        ready_one(c, i);
    if (v->symbol > c->used)
        c->used = v->symbol;
    c->logs[i].now_ns = c->now_ns;
    *res = tl_stream_record(&c->streams[i], v, loc);
    return true;
}

void tl_xwal1_checks_corrupt(tl_xwal1_checks *c, enum tl_rule rule, uint16_t reason, uint64_t index,
                             uint64_t offset, uint64_t checksum) {
    tl_finding f;
    tl_finding_init(&f, TL_CHECK_WAL_CORRUPT);
    f.source = TL_SOURCE_WAL;
    f.rule = (uint8_t)rule;
    f.reason = reason;
    f.segment = index;
    f.offset = offset;
    f.checksum = checksum; /* which bytes, for the bundle */
    f.detect_ns = c->now_ns;
    c->out.emit(c->out.ctx, &f);
}

void tl_xwal1_checks_corrupt_err(tl_xwal1_checks *c, enum tl_xwal1_err err, uint64_t index,
                                 uint64_t offset, uint64_t checksum) {
    tl_xwal1_checks_corrupt(c, tl_xwal1_err_rule(err),
                            (uint16_t)(TL_REASON_XWAL1_BASE + (unsigned)err), index, offset,
                            checksum);
}

const tl_stream *tl_xwal1_checks_stream(const tl_xwal1_checks *c, uint32_t id) {
    if (id < 1 || id > c->max_symbols || !c->ready[id - 1])
        return NULL;
    return &c->streams[id - 1];
}

uint64_t tl_xwal1_checks_fence(const tl_xwal1_checks *c) {
    uint64_t f = 0;
    for (uint32_t i = 0; i < c->used; i++) {
        const tl_stream *s = &c->streams[i];
        if (c->ready[i] && s->fence_known && s->fence > f)
            f = s->fence;
    }
    return f;
}

uint64_t tl_xwal1_checks_read_seq(const tl_xwal1_checks *c) {
    uint64_t r = 0;
    for (uint32_t i = 0; i < c->used; i++) {
        const tl_stream *s = &c->streams[i];
        if (c->ready[i] && s->anchored && s->expected_seq - 1 > r)
            r = s->expected_seq - 1;
    }
    return r;
}

void tl_xwal1_checks_totals(const tl_xwal1_checks *c, uint64_t *dup_total,
                            uint64_t *uncompared_total) {
    *dup_total = 0;
    *uncompared_total = 0;
    for (uint32_t i = 0; i < c->used; i++) {
        if (!c->ready[i])
            continue;
        *dup_total += c->logs[i].dup_total;
        *uncompared_total += c->logs[i].uncompared_total;
    }
}
