/* xwal1_verify.c: the offline verification of a whole xwal1 log (see
 * xwal1.h): segment index continuity, frames, payloads, and reading rules
 * 4-6 through the shared checks (xwal1_checks.c: one window and one stream
 * per symbol), with findings located by segment index, frame offset and
 * seq. The live loop runs the same checks on the same decoded records, so
 * the two agree by construction. Here the findings are numbered in
 * detection order and summarised per symbol.
 */
#include <string.h>

#include "assert.h"
#include "checksum.h"
#include "xwal1.h"

static size_t align64(size_t n) {
    return (n + 63u) & ~(size_t)63u;
}

typedef struct layout {
    size_t symtab, sums, checks, total;
} layout;

static bool layout_of(const tl_xwal1_verify_cfg *cfg, layout *L) {
    size_t checks = tl_xwal1_checks_bytes(cfg->max_symbols, cfg->window_records);
    if (checks == 0)
        return false; /* max_symbols or window_records out of range */
    size_t n = cfg->max_symbols, off = 0;
    L->symtab = off;
    off += align64(tl_xwal1_symtab_bytes(cfg->max_symbols));
    L->sums = off;
    off += align64(n * sizeof(tl_xwal1_sym_summary));
    L->checks = off;
    if (__builtin_add_overflow(off, checks, &off))
        return false;
    L->total = off;
    return true;
}

size_t tl_xwal1_verifier_bytes(const tl_xwal1_verify_cfg *cfg) {
    layout L;
    return layout_of(cfg, &L) ? L.total : 0;
}

/* Every finding of the log leaves here: numbered, counted, sent. */
static void forward(void *ctx, const tl_finding *fin) {
    tl_xwal1_verifier *v = ctx;
    tl_finding copy = *fin; /* a per-symbol log numbered it; the log-wide id wins */
    tl_finding *f = &copy;
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
    v->sums = (tl_xwal1_sym_summary *)(m + L.sums);
    memset(v->sums, 0, cfg->max_symbols * sizeof(tl_xwal1_sym_summary));
    v->out = sink;
    v->next_id = 1;
    bool ok = tl_xwal1_checks_init(&v->checks, cfg->max_symbols, cfg->window_records, m + L.checks,
                                   L.total - L.checks, (tl_sink){forward, v});
    TL_ASSERT(ok); /* the layout sized it */
    return true;
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
        tl_xwal1_checks_corrupt_err(&v->checks, err, index, fr->offset,
                                    tl_xxh3(fr->payload, fr->payload_len));
        return;
    }
    tl_loc loc = {index, fr->offset};
    tl_stream_result res;
    bool have_log = tl_xwal1_checks_record(&v->checks, &view, &loc, &res);
    TL_ASSERT(have_log); /* the symbol table and the checks have one capacity */
    v->summary.records++;
    tl_xwal1_sym_summary *s = &v->sums[view.symbol - 1];
    s->id = view.symbol;
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
    if (!v->checks.have_segment) {
        s->first_index = index;
        s->anchor_unverified = index != 1;
    }
    s->last_index = index;
    tl_xwal1_checks_segment(&v->checks, index);

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
                tl_xwal1_checks_corrupt_err(&v->checks, err, index, w.last_off, 0);
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
    if (id < 1 || id > v->symtab.count || tl_xwal1_checks_stream(&v->checks, id) == NULL)
        return NULL;
    return &v->sums[id - 1];
}

void tl_xwal1_verify(tl_xwal1_verifier *v, const tl_xwal1_segment_buf *segs, size_t n) {
    for (size_t i = 0; i < n; i++)
        tl_xwal1_verifier_segment(v, segs[i].index, segs[i].bytes, segs[i].len, i + 1 == n);
}
