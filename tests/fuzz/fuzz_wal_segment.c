/* fuzz_wal_segment.c: arbitrary bytes as one or two native WAL segments,
 * walked by core/walseg and checked by core/stream (libFuzzer).
 *
 * Properties: nothing crashes or hangs (every walk is bounded), and the walker
 * gives the same events whether it sees the whole file at once or through a
 * small window re-read at every NEED_MORE (the way the io_uring tailer and
 * the offline reader feed it); a mismatch aborts.
 *
 * Input: 16 control bytes, then the file bytes.
 *   ctl[0] bit 0: the first segment is sealed (a second one follows)
 *          bit 1: write a valid header at offset 0 (so records get explored)
 *          bit 2: re-seal every record's checksum (so rules 3-6 get explored)
 *          bit 3: split the bytes into two segments
 *   ctl[1..7]:   a durable hint (seq, offset) in small units
 *   ctl[8..15]:  the window size for the chunked walk, and the stream window
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/finding.h"
#include "core/record.h"
#include "core/segment.h"
#include "core/stream.h"
#include "core/walseg.h"

#define MAX_FILE   (256u << 10)
#define MAX_EVENTS 8192u

static uint8_t file_a[MAX_FILE] __attribute__((aligned(64))); /* pristine */
static uint8_t file_b[MAX_FILE] __attribute__((aligned(64)));
static uint8_t work[MAX_FILE] __attribute__((aligned(64))); /* the full walk's buffer */
static uint8_t win_buf[MAX_FILE] __attribute__((aligned(64)));
static tl_walseg_event ev_full[MAX_EVENTS];
static uint64_t findings;

static void count(void *ctx, const tl_finding *f) {
    (void)ctx;
    (void)f;
    findings++;
}

static void valid_header(uint8_t *buf, size_t n, uint64_t index, uint64_t first_seq) {
    if (n < TL_SEG_HDR_BYTES)
        return;
    tl_seg_hdr *h = (tl_seg_hdr *)buf;
    uint64_t fence = h->fence;
    uint64_t prev = h->prev_checksum;
    memset(h, 0, sizeof *h);
    h->version = TL_SEG_VERSION;
    h->header_len = TL_SEG_HDR_BYTES;
    h->segment_index = index;
    h->first_seq = first_seq;
    h->prev_checksum = prev;
    h->fence = fence & 7;
    h->segment_size = n < TL_SEG_MIN_BYTES ? TL_SEG_MIN_BYTES : (n + 4095) & ~(size_t)4095;
    tl_seg_hdr_seal(h);
}

/* Gives every record-shaped slot a correct checksum, so the fuzzer's bytes
 * reach the field and stream rules. Bounded by the file. */
static void reseal(uint8_t *buf, size_t n) {
    size_t o = TL_SEG_HDR_BYTES;
    while (o + TL_REC_HDR_BYTES <= n) {
        tl_rec_hdr *h = (tl_rec_hdr *)(buf + o);
        uint32_t len = h->len;
        if (len < TL_REC_HDR_BYTES || (len & 7u) != 0 || len > TL_REC_MAX_BYTES || len > n - o)
            return;
        uint16_t flags = h->flags;
        h->flags = (uint16_t)(flags & ~TL_REC_FLAG_REPLAY);
        h->checksum = tl_rec_compute_checksum(buf + o, len);
        h->flags = flags;
        o += len;
    }
}

/* Walks with the whole file in the buffer; returns the event count. */
static unsigned walk_full(uint8_t *buf, size_t n, uint64_t name, const tl_walseg_facts *f,
                          tl_stream *st, tl_log *log) {
    tl_walseg ws;
    tl_walseg_init(&ws, name);
    unsigned k = 0;
    while (k < MAX_EVENTS) {
        tl_walseg_event *ev = &ev_full[k++];
        tl_walseg_next(&ws, f, buf, 0, n, ev);
        if (ev->kind == TL_WALSEG_NEED_MORE)
            abort(); /* the whole file is there */
        tl_loc loc = {name, ev->offset};
        if (ev->kind == TL_WALSEG_HEADER) {
            tl_stream_segment(st, &ws.hdr, name, &loc);
        } else if (ev->kind == TL_WALSEG_RECORD) {
            tl_rec_view v;
            tl_rec_view_native(&v, ev->rec, false);
            tl_stream_record(st, &v, &loc);
        } else if (ev->kind == TL_WALSEG_CORRUPT) {
            tl_finding fd;
            tl_walseg_finding(&ws, ev, &fd);
            tl_log_emit(log, &fd);
            if (ev->rule != TL_RULE_FIELDS) {
                st->segment_known = false;
                break;
            }
        } else {
            break; /* END, TENTATIVE */
        }
    }
    return k;
}

/* The same walk through a window of `win` bytes, re-read at NEED_MORE. */
static void walk_chunked(const uint8_t *file, size_t n, uint64_t name, const tl_walseg_facts *f,
                         size_t win, unsigned want) {
    tl_walseg ws;
    tl_walseg_init(&ws, name);
    uint64_t buf_off = 0;
    size_t have = 0;
    unsigned k = 0;
    /* Each read is followed by an event; bounded by twice the events. */
    for (unsigned step = 0; step < 2 * MAX_EVENTS + 4 && k < want; step++) {
        tl_walseg_event ev;
        tl_walseg_next(&ws, f, win_buf, buf_off, have, &ev);
        if (ev.kind == TL_WALSEG_NEED_MORE) {
            if (ev.len > win)
                abort(); /* the walker asks for at most one record */
            buf_off = ev.offset & ~(uint64_t)7;
            have = n > buf_off ? n - buf_off : 0;
            if (have > win)
                have = win;
            memcpy(win_buf, file + buf_off, have);
            continue;
        }
        const tl_walseg_event *e = &ev_full[k++];
        if (ev.kind != e->kind || ev.offset != e->offset || ev.rule != e->rule ||
            ev.reason != e->reason || ev.len != e->len || ev.seq != e->seq)
            abort();
    }
    if (k != want)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 16)
        return 0;
    const uint8_t *ctl = data;
    data += 16;
    size -= 16;
    if (size > 2 * MAX_FILE - 16)
        size = 2 * MAX_FILE - 16;
    bool two = (ctl[0] & 8) != 0 && size >= 2 * TL_SEG_HDR_BYTES;
    size_t na = two ? size / 2 : size, nb = two ? size - na : 0;
    na &= ~(size_t)7;
    nb &= ~(size_t)7;
    if (na > MAX_FILE || nb > MAX_FILE)
        return 0;
    memcpy(file_a, data, na);
    memcpy(file_b, data + (two ? size / 2 : 0), nb);
    if (ctl[0] & 2) {
        valid_header(file_a, na, 0, 1);
        if (two)
            valid_header(file_b, nb, 1, 1 + (ctl[1] & 63));
    }
    if (ctl[0] & 4) {
        reseal(file_a, na);
        if (two)
            reseal(file_b, nb);
    }
    uint64_t window = 2ull << (ctl[9] & 7);
    static uint8_t win_mem[256 * sizeof(tl_win_entry)] __attribute__((aligned(64)));
    tl_log log;
    tl_log_init(&log, TL_DIALECT_TLYWAL1, win_mem, window, (tl_sink){count, NULL});
    tl_stream st;
    tl_stream_init(&st, &log, TL_SOURCE_WAL);

    tl_walseg_facts fa = {
        .sealed = two || (ctl[0] & 1) != 0,
        .file_bytes = na,
        .durable = {ctl[2] & 1 ? 0 : (uint64_t)ctl[3], 1 + (ctl[4] & 1), (uint64_t)ctl[5] * 64},
    };
    size_t win = 4096 + 8 * (size_t)(ctl[8] | (ctl[10] << 8));
    if (win > MAX_FILE)
        win = MAX_FILE;
    /* The walker may clear REPLAY bits in the buffer it is given (as
     * tl_rec_verify does): each walk gets its own copy of the file. */
    memcpy(work, file_a, na);
    unsigned k = walk_full(work, na, 1, &fa, &st, &log);
    walk_chunked(file_a, na, 1, &fa, win < 65536 + 4096 ? 65536 + 4096 : win, k);
    if (two) {
        tl_walseg_facts fb = {.sealed = false, .file_bytes = nb, .durable = fa.durable};
        uint64_t name = ((tl_seg_hdr *)file_b)->first_seq;
        memcpy(work, file_b, nb);
        k = walk_full(work, nb, name, &fb, &st, &log);
        walk_chunked(file_b, nb, name, &fb, 65536 + 4096, k);
    }
    return 0;
}
