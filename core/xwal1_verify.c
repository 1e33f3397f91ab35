/* xwal1_verify.c: the offline verification of a whole xwal1 log (see
 * xwal1.h): segment index continuity, frames, payloads, and reading rules
 * 4-6 through core/stream.c, with findings located by segment index, frame
 * offset and seq.
 *
 * Why one tl_log (window) and one tl_stream per symbol: the window is keyed
 * by seq (slot = seq & (capacity - 1)), and xwal1 seqs count per symbol, so
 * event seq 8 of BTC-KRW and event seq 8 of ETH-KRW are different facts. A
 * shared window would compare them (a false FORK) and let one symbol's seqs
 * evict the other's. Rules 4 and 6 hold per symbol too (wal.md: "Per symbol,
 * record seqs are strictly increasing"; the fencing token is per engine,
 * but a drop is judged against what the symbol's records showed). So each
 * symbol gets its own window, stream and fence in force, and findings carry
 * the symbol as their scope. The logs share one sink, which numbers the
 * findings of the whole log in detection order.
 */
#include <string.h>

#include "assert.h"
#include "checksum.h"
#include "xwal1.h"

#define WINDOW_RECORDS_MAX (1ull << 26)

static size_t align64(size_t n) {
    return (n + 63u) & ~(size_t)63u;
}

typedef struct layout {
    size_t symtab, logs, streams, ready, sums, wins, win_each, total;
} layout;

static bool layout_of(const tl_xwal1_verify_cfg *cfg, layout *L) {
    uint64_t wr = cfg->window_records;
    if (cfg->max_symbols < 1 || cfg->max_symbols > TL_XWAL1_MAX_SYMBOLS || wr < 2 ||
        wr > WINDOW_RECORDS_MAX || (wr & (wr - 1)) != 0)
        return false;
    size_t n = cfg->max_symbols, off = 0;
    L->symtab = off;
    off += align64(tl_xwal1_symtab_bytes(cfg->max_symbols));
    L->logs = off;
    off += align64(n * sizeof(tl_log));
    L->streams = off;
    off += align64(n * sizeof(tl_stream));
    L->ready = off;
    off += align64(n * sizeof(bool));
    L->sums = off;
    off += align64(n * sizeof(tl_xwal1_sym_summary));
    L->win_each = align64(tl_window_bytes(wr));
    L->wins = off;
    size_t wins;
    if (__builtin_mul_overflow(n, L->win_each, &wins) || __builtin_add_overflow(off, wins, &off))
        return false;
    L->total = off;
    return true;
}

size_t tl_xwal1_verifier_bytes(const tl_xwal1_verify_cfg *cfg) {
    layout L;
    return layout_of(cfg, &L) ? L.total : 0;
}

/* Every finding of the log leaves here: numbered, counted, sent. */
static void forward(tl_xwal1_verifier *v, tl_finding *f) {
    f->id = v->next_id++;
    f->dialect = TL_DIALECT_XWAL1;
    v->summary.findings++;
    TL_ASSERT(f->check < TL_CHECK_COUNT);
    v->summary.findings_by_check[f->check]++;
    if (f->check == TL_CHECK_WAL_CORRUPT)
        v->summary.corrupt++;
    if (f->symbol >= 1 && f->symbol <= v->symtab.count)
        v->sums[f->symbol - 1].findings++;
    v->out.emit(v->out.ctx, f);
}

static void log_sink(void *ctx, const tl_finding *f) {
    tl_xwal1_verifier *v = ctx;
    tl_finding copy = *f; /* the per-symbol log numbered it; the log-wide id wins */
    forward(v, &copy);
}

bool tl_xwal1_verifier_init(tl_xwal1_verifier *v, const tl_xwal1_verify_cfg *cfg, void *mem,
                            size_t mem_bytes, tl_sink sink) {
    layout L;
    if (!layout_of(cfg, &L) || mem_bytes < L.total || mem == NULL || sink.emit == NULL)
        return false;
    TL_ASSERT(((uintptr_t)mem & 63u) == 0);
    memset(v, 0, sizeof *v);
    uint8_t *m = mem;
    v->cfg = *cfg;
    tl_xwal1_symtab_init(&v->symtab, m + L.symtab, cfg->max_symbols);
    v->logs = (tl_log *)(m + L.logs);
    v->streams = (tl_stream *)(m + L.streams);
    v->log_ready = (bool *)(m + L.ready);
    v->sums = (tl_xwal1_sym_summary *)(m + L.sums);
    v->win_mem = m + L.wins;
    v->win_each_bytes = L.win_each;
    memset(v->log_ready, 0, cfg->max_symbols * sizeof(bool));
    memset(v->sums, 0, cfg->max_symbols * sizeof(tl_xwal1_sym_summary));
    v->out = sink;
    v->next_id = 1;
    return true;
}

/* The stream of symbol `id`; its window is cleared on first use only. */
static tl_stream *stream_for(tl_xwal1_verifier *v, uint32_t id) {
    TL_ASSERT(id >= 1 && id <= v->cfg.max_symbols);
    uint32_t i = id - 1;
    if (!v->log_ready[i]) {
        tl_sink s = {log_sink, v};
        tl_log_init(&v->logs[i], TL_DIALECT_XWAL1, v->win_mem + (size_t)i * v->win_each_bytes,
                    v->cfg.window_records, s);
        tl_stream_init(&v->streams[i], &v->logs[i], TL_SOURCE_WAL);
        v->log_ready[i] = true;
        v->sums[i].id = id;
    }
    return &v->streams[i];
}

static void corrupt(tl_xwal1_verifier *v, uint64_t index, uint64_t offset, enum tl_xwal1_err err,
                    const tl_xwal1_frame *fr) {
    tl_finding f;
    tl_finding_init(&f, TL_CHECK_WAL_CORRUPT);
    f.source = TL_SOURCE_WAL;
    f.rule = (uint8_t)tl_xwal1_err_rule(err);
    f.reason = (uint16_t)(TL_REASON_XWAL1_BASE + (unsigned)err);
    f.segment = index;
    f.offset = offset;
    if (fr != NULL)
        f.checksum = tl_xxh3(fr->payload, fr->payload_len); /* which bytes, for the bundle */
    forward(v, &f);
}

static void check_index(tl_xwal1_verifier *v, uint64_t index) {
    tl_xwal1_summary *s = &v->summary;
    if (!v->have_segment) {
        v->have_segment = true;
        s->first_index = index;
        /* Where reading starts: the log's first segment is index 1; a later
         * one is taken as given (wal.md "Where a reader starts"). */
        s->anchor_unverified = index != 1;
    } else if (index != s->last_index + 1) {
        tl_finding f;
        tl_finding_init(&f, TL_CHECK_SEGMENT_GAP);
        f.source = TL_SOURCE_WAL;
        f.rule = TL_RULE_SEGMENT;
        f.reason = TL_REASON_SEGMENT_INDEX;
        f.segment = index;
        f.seq2 = s->last_index + 1; /* the index expected */
        forward(v, &f);
    }
    s->last_index = index;
}

static void record(tl_xwal1_verifier *v, uint64_t index, const tl_xwal1_frame *fr) {
    tl_xwal1_rec *rec = &v->rec;
    enum tl_xwal1_err err = v->cfg.strict
                                ? tl_xwal1_decode_strict(fr->payload, fr->payload_len, rec)
                                : tl_xwal1_decode(fr->payload, fr->payload_len, rec);
    tl_rec_view view;
    if (err == TL_XWAL1_OK)
        err = tl_xwal1_bind(&v->symtab, rec, fr, &view);
    if (err != TL_XWAL1_OK) {
        /* The frame's crc held, so the next frame is where this one says:
         * go on reading (upstream stops; tally reports and keeps checking). */
        corrupt(v, index, fr->offset, err, fr);
        return;
    }
    tl_loc loc = {index, fr->offset};
    (void)tl_stream_record(stream_for(v, view.symbol), &view, &loc);
    v->summary.records++;
    tl_xwal1_sym_summary *s = &v->sums[view.symbol - 1];
    s->records++;
    s->last_seq = view.seq;
    s->last_fence = view.fence;
    memcpy(s->last_state_hash, rec->state_hash, TL_STATE_HASH_BYTES);
    s->mode = tl_xwal1_symtab_get(&v->symtab, view.symbol)->mode;
}

void tl_xwal1_verifier_segment(tl_xwal1_verifier *v, uint64_t index, const uint8_t *bytes,
                               size_t len, bool newest) {
    tl_xwal1_summary *s = &v->summary;
    s->segments++;
    s->bytes += len;
    check_index(v, index);

    tl_xwal1_walker w;
    tl_xwal1_walker_init(&w, bytes, len, 0, newest);
    /* Bounded: every FRAME step moves at least 8 bytes on, and the walker
     * stops for good at END, TENTATIVE or CORRUPT. */
    for (size_t steps = 0; steps <= len / TL_XWAL1_FRAME_OVERHEAD_BYTES + 1; steps++) {
        tl_xwal1_frame fr;
        enum tl_xwal1_err err;
        switch (tl_xwal1_walker_next(&w, &fr, &err)) {
            case TL_XWAL1_FRAME:
                s->frames++;
                record(v, index, &fr);
                continue;
            case TL_XWAL1_END:
                return;
            case TL_XWAL1_TENTATIVE:
                TL_ASSERT(newest);
                s->tentative = true;
                s->tentative_err = (uint8_t)err;
                s->tentative_segment = index;
                s->tentative_offset = w.last_off;
                return;
            case TL_XWAL1_CORRUPT:
                corrupt(v, index, w.last_off, err, NULL);
                return;
        }
        TL_UNREACHABLE();
    }
    TL_UNREACHABLE();
}

const tl_xwal1_summary *tl_xwal1_verifier_summary(const tl_xwal1_verifier *v) {
    return &v->summary;
}

const tl_xwal1_sym_summary *tl_xwal1_verifier_symbol(const tl_xwal1_verifier *v, uint32_t id) {
    if (id < 1 || id > v->symtab.count || !v->log_ready[id - 1])
        return NULL;
    return &v->sums[id - 1];
}

void tl_xwal1_verify(tl_xwal1_verifier *v, const tl_xwal1_segment_buf *segs, size_t n) {
    for (size_t i = 0; i < n; i++)
        tl_xwal1_verifier_segment(v, segs[i].index, segs[i].bytes, segs[i].len, i + 1 == n);
}
