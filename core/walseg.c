/* walseg.c: the per-segment walker (see walseg.h). */
#include "walseg.h"

#include <string.h>

#include "assert.h"

const char *tl_walseg_ev_name(enum tl_walseg_ev ev) {
    switch (ev) {
        case TL_WALSEG_HEADER:
            return "header";
        case TL_WALSEG_RECORD:
            return "record";
        case TL_WALSEG_NEED_MORE:
            return "need_more";
        case TL_WALSEG_END:
            return "end";
        case TL_WALSEG_TENTATIVE:
            return "tentative";
        case TL_WALSEG_CORRUPT:
            return "corrupt";
    }
    return "?";
}

void tl_walseg_init(tl_walseg *ws, uint64_t name_first_seq) {
    memset(ws, 0, sizeof *ws);
    ws->name_first_seq = name_first_seq;
    ws->next_seq = name_first_seq;
}

/* Does the buffer hold [off, off + need) of the file? */
static bool covers(uint64_t buf_off, size_t n, uint64_t off, uint64_t need) {
    return off >= buf_off && need <= n && off - buf_off <= n - need;
}

static void need_more(tl_walseg_event *ev, uint64_t off, uint64_t need) {
    TL_ASSERT(need > 0 && need <= TL_PAD_LIMIT_BYTES);
    ev->kind = TL_WALSEG_NEED_MORE;
    ev->offset = off;
    ev->len = (uint32_t)need;
}

/* Trigger 2 of wal.md for a failed record at o (or trigger 1, told by the
 * hint itself: the durable point lies in a later segment, so a newer segment
 * exists and this one is sealed). */
static bool durable_must_hold(const tl_walseg *ws, const tl_walseg_durable *d, uint64_t o) {
    if (d->seq == 0 || d->seq < ws->next_seq)
        return false;
    if (d->segment_first_seq > ws->name_first_seq)
        return true;
    return d->segment_first_seq == ws->name_first_seq && d->offset > o;
}

/* Trigger 2 for an end-of-records slot at o: a durable record of this
 * segment ends past it. A durable point in a later segment says nothing here:
 * the segment may have ended cleanly at o. */
static bool durable_past_end(const tl_walseg *ws, const tl_walseg_durable *d, uint64_t o) {
    return d->seq != 0 && d->seq >= ws->next_seq && d->segment_first_seq == ws->name_first_seq &&
           d->offset > o;
}

/* A rule 1 or rule 2 failure at o. */
static void record_failed(tl_walseg *ws, const tl_walseg_facts *facts, const uint8_t *buf,
                          uint64_t buf_off, size_t n, uint64_t o, enum tl_rec_err e,
                          tl_walseg_event *ev) {
    ev->offset = o;
    ev->expected_seq = ws->next_seq;
    ev->err = (uint8_t)e;
    ev->rule = e == TL_REC_ERR_CHECKSUM ? TL_RULE_CHECKSUM : TL_RULE_LENGTH;
    ev->reason = (uint16_t)e;
    /* The words are unverified: evidence for the operator, nothing more. */
    if (covers(buf_off, n, o, 24) && o + 24 <= facts->file_bytes) {
        const tl_rec_hdr *h = tl_rec_hdr_of(buf + (o - buf_off));
        ev->checksum = h->checksum;
        ev->seq = h->seq;
    }
    if (facts->sealed) {
        ev->kind = TL_WALSEG_CORRUPT;
        ws->done = true;
    } else if (durable_must_hold(ws, &facts->durable, o)) {
        ev->kind = TL_WALSEG_CORRUPT;
        ev->reason = TL_REASON_TORN_FRESH_READ;
        ws->done = true;
    } else {
        ev->kind = TL_WALSEG_TENTATIVE;
    }
}

static void header_step(tl_walseg *ws, const tl_walseg_facts *facts, const uint8_t *buf,
                        uint64_t buf_off, size_t n, tl_walseg_event *ev) {
    enum tl_seg_err e;
    if (facts->file_bytes < TL_SEG_HDR_BYTES) {
        e = TL_SEG_ERR_SHORT;
    } else if (!covers(buf_off, n, 0, TL_SEG_HDR_BYTES)) {
        need_more(ev, 0, TL_SEG_HDR_BYTES);
        return;
    } else {
        TL_ASSERT(buf_off == 0); /* covers() said so */
        e = tl_seg_hdr_check(buf, TL_SEG_HDR_BYTES);
    }
    if (e == TL_SEG_OK) {
        memcpy(&ws->hdr, buf, sizeof ws->hdr);
        ws->hdr_ok = true;
        ws->off = TL_SEG_HDR_BYTES;
        ws->next_seq = ws->hdr.first_seq;
        ev->kind = TL_WALSEG_HEADER;
        ev->offset = 0;
        return;
    }
    ev->offset = 0;
    ev->expected_seq = ws->next_seq;
    ev->rule = TL_RULE_SEGMENT;
    ev->reason = (uint16_t)(TL_REASON_SEG_BASE + e);
    ev->err = (uint8_t)e;
    /* The durable point is in this segment or a later one: the header was
     * complete long ago (writer ordering 2), so this read is final. */
    const tl_walseg_durable *d = &facts->durable;
    bool durable_here =
        d->seq != 0 && d->seq >= ws->name_first_seq && d->segment_first_seq >= ws->name_first_seq;
    if (facts->sealed || durable_here) {
        ev->kind = TL_WALSEG_CORRUPT;
        ws->done = true;
    } else {
        ev->kind = TL_WALSEG_TENTATIVE;
    }
}

void tl_walseg_next(tl_walseg *ws, const tl_walseg_facts *facts, uint8_t *buf, uint64_t buf_off,
                    size_t n, tl_walseg_event *ev) {
    TL_ASSERT(((uintptr_t)buf & 7u) == 0 && (buf_off & 7u) == 0);
    TL_ASSERT(buf != NULL || n == 0);
    memset(ev, 0, sizeof *ev);
    if (ws->done) {
        ev->kind = TL_WALSEG_END;
        ev->offset = ws->off;
        ev->expected_seq = ws->next_seq;
        return;
    }
    if (!ws->hdr_ok) {
        header_step(ws, facts, buf, buf_off, n, ev);
        return;
    }

    uint64_t o = ws->off;
    TL_ASSERT(o >= TL_SEG_HDR_BYTES && (o & 7u) == 0);
    uint64_t seg_end = ws->hdr.segment_size;
    uint64_t limit = seg_end < facts->file_bytes ? seg_end : facts->file_bytes;

    /* End of records: too little room left for a record header, or the file
     * stops exactly here (a file shorter than its segment_size). */
    if (o + TL_REC_HDR_BYTES > seg_end || o >= facts->file_bytes) {
        ev->kind = TL_WALSEG_END;
        ev->offset = o;
        ev->expected_seq = ws->next_seq;
        ws->done = facts->sealed;
        return;
    }
    if (o + TL_REC_HDR_BYTES > facts->file_bytes) {
        record_failed(ws, facts, buf, buf_off, n, o, TL_REC_ERR_TRUNCATED, ev);
        return;
    }
    if (!covers(buf_off, n, o, TL_REC_HDR_BYTES)) {
        need_more(ev, o, TL_REC_HDR_BYTES);
        return;
    }
    uint8_t *p = buf + (o - buf_off);
    const tl_rec_hdr *h = tl_rec_hdr_of(p);
    if (h->checksum == 0 && h->len == 0) {
        ev->offset = o;
        ev->expected_seq = ws->next_seq;
        if (!facts->sealed && durable_past_end(ws, &facts->durable, o)) {
            ev->kind = TL_WALSEG_CORRUPT;
            ev->rule = TL_RULE_SEGMENT;
            ev->reason = TL_REASON_SEGMENT_END;
            ev->seq = 0;
            ws->done = true;
            return;
        }
        ev->kind = TL_WALSEG_END;
        ws->done = facts->sealed;
        return;
    }
    enum tl_rec_err e = tl_rec_check_len(p, limit - o, TL_WHERE_WAL);
    if (e != TL_REC_OK) {
        record_failed(ws, facts, buf, buf_off, n, o, e, ev);
        return;
    }
    uint32_t len = h->len;
    if (!covers(buf_off, n, o, len)) {
        need_more(ev, o, len);
        return;
    }
    /* Rule 1 held just above: rules 2-3 only (tl_rec_verify would check the
     * length a second time). */
    e = tl_rec_verify_framed(p, TL_WHERE_WAL, NULL);
    if (e == TL_REC_ERR_CHECKSUM) {
        record_failed(ws, facts, buf, buf_off, n, o, e, ev);
        return;
    }
    ev->offset = o;
    ev->expected_seq = ws->next_seq;
    ev->rec = p;
    ev->len = len;
    ws->off = o + len;
    if (h->seq >= ws->next_seq)
        ws->next_seq = h->seq + 1;
    if (e != TL_REC_OK) {
        /* Rule 3: the checksum held, so len is the writer's and the walk goes
         * on; the record itself is WAL_CORRUPT wherever it is. */
        ev->kind = TL_WALSEG_CORRUPT;
        ev->rule = TL_RULE_FIELDS;
        ev->reason = (uint16_t)e;
        ev->err = (uint8_t)e;
        ev->seq = h->seq;
        ev->checksum = h->checksum;
        return;
    }
    ev->kind = TL_WALSEG_RECORD;
    ws->records_total++;
}

void tl_walseg_finding(const tl_walseg *ws, const tl_walseg_event *ev, tl_finding *f) {
    TL_ASSERT(ev->kind == TL_WALSEG_CORRUPT);
    tl_finding_init(f, TL_CHECK_WAL_CORRUPT);
    f->source = TL_SOURCE_WAL;
    f->rule = ev->rule;
    f->reason = ev->reason;
    f->segment = ws->name_first_seq;
    f->offset = ev->offset;
    f->seq = ev->seq;
    f->seq2 = ev->expected_seq;
    f->checksum = ev->checksum;
    if (ev->rec != NULL) {
        const tl_rec_hdr *h = tl_rec_hdr_of(ev->rec);
        f->fence = h->fence;
    }
}

void tl_walseg_stall_init(tl_walseg_stall *st) {
    memset(st, 0, sizeof *st);
}

bool tl_walseg_stall_step(tl_walseg_stall *st, uint64_t segment, const tl_walseg_event *ev,
                          uint64_t now_ns, bool producer_fresh, uint64_t grace_ns) {
    if (ev->kind == TL_WALSEG_NEED_MORE)
        return false; /* a read in progress says nothing about the tail */
    if (ev->kind != TL_WALSEG_TENTATIVE) {
        st->active = false;
        return false;
    }
    if (!st->active || st->segment != segment || st->offset != ev->offset) {
        st->active = true;
        st->segment = segment;
        st->offset = ev->offset;
        st->since_ns = now_ns;
        return false;
    }
    if (!producer_fresh || now_ns < st->since_ns) {
        /* The engine is down (or the clock went back): the tail stays
         * tentative, and only fresh-producer time counts. */
        st->since_ns = now_ns;
        return false;
    }
    if (now_ns - st->since_ns < grace_ns)
        return false;
    st->since_ns = now_ns;
    st->raised_total++;
    return true;
}

void tl_walseg_stall_finding(const tl_walseg_stall *st, tl_finding *f) {
    TL_ASSERT(st->active);
    tl_finding_init(f, TL_CHECK_WAL_LAG);
    f->source = TL_SOURCE_WAL;
    f->rule = TL_RULE_NONE;
    f->reason = TL_REASON_TORN_STALLED;
    f->segment = st->segment;
    f->offset = st->offset;
}
