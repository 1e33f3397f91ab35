/* fuzz_xwal1.c: libFuzzer target for the xwal1 reader (core/xwal1*.c).
 *
 * Outside bytes reach tally here, so every input must end in a named
 * verdict, never a crash, a hang or a read outside the buffer, and the two
 * payload decoders must agree. For each input:
 *   1. the input as a payload: fast scanner and cJSON reference give the
 *      same error, and the same record when they accept it;
 *   2. the input as a log: the first byte picks the shape (bit 0: last
 *      segment is the newest; bit 1: prepend the magic so random bytes get
 *      to the frames; bits 2-3: split into 1-3 segments at offsets from the
 *      next bytes); each segment is walked, every frame decoded both ways;
 *   3. the whole log through the offline verifier (decoder, binding,
 *      core/stream.c rules 4-6), once with each decoder: same findings.
 *
 * Build (clang 14):
 *   cmake -S . -B build-fuzz -DTL_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *   link deps: tl_core (built with -fsanitize=fuzzer-no-link,address,undefined),
 *              cjson, z, xxhash; the target itself with -fsanitize=fuzzer,address,undefined
 * Run:
 *   ./fuzz_xwal1 -dict=tests/fuzz/fuzz_xwal1.dict corpus/ \
 *       ../shared/fixtures/quanta-xwal1/{basic,escapes,stale_leader}/wal/
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/xwal1.h"

#define MAX_FINDINGS 256

typedef struct collected {
    tl_finding f[MAX_FINDINGS];
    size_t n;
    uint64_t total;
} collected;

static void collect(void *ctx, const tl_finding *f) {
    collected *c = ctx;
    if (c->n < MAX_FINDINGS)
        c->f[c->n++] = *f;
    c->total++;
}

static void same_rec(const tl_xwal1_rec *a, const tl_xwal1_rec *b) {
    if (a->err != b->err)
        abort();
    if (a->err != TL_XWAL1_OK)
        return;
    if (a->seq != b->seq || a->fence != b->fence || a->ts_ms != b->ts_ms || a->mode != b->mode ||
        a->symbol_len != b->symbol_len || memcmp(a->symbol, b->symbol, a->symbol_len) != 0 ||
        memcmp(a->state_hash, b->state_hash, TL_STATE_HASH_BYTES) != 0 ||
        a->n_events != b->n_events ||
        memcmp(a->event_seqs, b->event_seqs, a->n_events * sizeof(uint64_t)) != 0 ||
        a->n_trades != b->n_trades ||
        memcmp(a->trades, b->trades, a->n_trades * sizeof(tl_xwal1_trade)) != 0 ||
        a->qty_sum != b->qty_sum || a->notional_sum != b->notional_sum)
        abort();
    /* what the binding relies on */
    if (a->n_events < 1 || a->n_events > TL_XWAL1_MAX_EVENTS ||
        a->seq != a->event_seqs[a->n_events - 1] || a->seq == 0 ||
        !tl_symbol_name_valid(a->symbol, a->symbol_len))
        abort();
    for (uint32_t i = 1; i < a->n_events; i++) {
        if (a->event_seqs[i] <= a->event_seqs[i - 1])
            abort();
    }
}

static void decode_both(const uint8_t *p, size_t n) {
    static tl_xwal1_rec fast, strict;
    (void)tl_xwal1_decode(p, n, &fast);
    (void)tl_xwal1_decode_strict(p, n, &strict);
    same_rec(&fast, &strict);
}

static void run_verifier(const tl_xwal1_segment_buf *segs, size_t n, bool strict, collected *out) {
    static void *mem[2];
    static tl_xwal1_verifier v[2];
    tl_xwal1_verify_cfg cfg = {4, 64, strict};
    size_t bytes = tl_xwal1_verifier_bytes(&cfg);
    if (mem[strict] == NULL) {
        mem[strict] = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
        if (mem[strict] == NULL)
            abort();
    }
    memset(out, 0, sizeof *out);
    tl_sink sink = {collect, out};
    if (!tl_xwal1_verifier_init(&v[strict], &cfg, mem[strict], bytes, sink))
        abort();
    tl_xwal1_verify(&v[strict], segs, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    decode_both(data, size);
    if (size < 3)
        return 0;

    uint8_t shape = data[0];
    bool newest = shape & 1u, magic = shape & 2u;
    size_t nsegs = 1 + (shape >> 2 & 3u) % 3;
    const uint8_t *body = data + 3;
    size_t body_len = size - 3;
    size_t cuts[4] = {0, 0, 0, body_len};
    cuts[1] = nsegs > 1 ? data[1] * body_len / 256 : body_len;
    cuts[2] = nsegs > 2 ? cuts[1] + data[2] * (body_len - cuts[1]) / 256 : body_len;

    tl_xwal1_segment_buf segs[4];
    uint8_t *bufs[3] = {NULL, NULL, NULL};
    for (size_t s = 0; s < nsegs; s++) {
        size_t from = cuts[s], to = s + 1 == nsegs ? body_len : cuts[s + 1];
        size_t len = to - from + (magic ? TL_XWAL1_MAGIC_BYTES : 0);
        /* exact-size copies: ASan sees any read past a segment */
        bufs[s] = malloc(len ? len : 1);
        if (bufs[s] == NULL)
            abort();
        size_t o = 0;
        if (magic) {
            memcpy(bufs[s], TL_XWAL1_MAGIC, TL_XWAL1_MAGIC_BYTES);
            o = TL_XWAL1_MAGIC_BYTES;
        }
        memcpy(bufs[s] + o, body + from, to - from);
        segs[s].index = s + 1;
        segs[s].bytes = bufs[s];
        segs[s].len = len;

        tl_xwal1_walker w;
        tl_xwal1_walker_init(&w, bufs[s], len, 0, newest && s + 1 == nsegs);
        tl_xwal1_frame fr;
        enum tl_xwal1_err err;
        enum tl_xwal1_step st;
        size_t frames = 0;
        while ((st = tl_xwal1_walker_next(&w, &fr, &err)) == TL_XWAL1_FRAME) {
            if (fr.payload < bufs[s] || fr.payload + fr.payload_len + 4 > bufs[s] + len)
                abort();
            decode_both(fr.payload, fr.payload_len);
            if (++frames > len)
                abort(); /* no progress: cannot happen */
        }
        if (st == TL_XWAL1_TENTATIVE && !(newest && s + 1 == nsegs))
            abort();
        if ((st == TL_XWAL1_END) != (err == TL_XWAL1_OK))
            abort();
    }

    static collected a, b;
    /* The verifier reads its last segment as the newest: to seal the input's
     * segments, a segment holding only the magic follows them. */
    static const uint8_t only_magic[TL_XWAL1_MAGIC_BYTES] = "XWALv1";
    size_t nlog = nsegs;
    if (!newest) {
        segs[nlog].index = nlog + 1;
        segs[nlog].bytes = only_magic;
        segs[nlog].len = sizeof only_magic;
        nlog++;
    }
    run_verifier(segs, nlog, false, &a);
    run_verifier(segs, nlog, true, &b);
    if (a.total != b.total || a.n != b.n || memcmp(a.f, b.f, a.n * sizeof a.f[0]) != 0)
        abort();

    for (size_t s = 0; s < nsegs; s++)
        free(bufs[s]);
    return 0;
}
