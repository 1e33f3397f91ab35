/* stream.c: reading rules 4-6 and the window comparison (see stream.h). */
#include "stream.h"

#include <string.h>

#include "assert.h"

void tl_rec_view_native(tl_rec_view *v, const uint8_t *rec, bool replay) {
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    const uint8_t *body = rec + TL_REC_HDR_BYTES;
    /* Every member, once: no zeroing pass first (this runs for every record
     * of both sources). Padding bytes are left as they are; nothing
     * compares views bytewise. */
    v->checksum = h->checksum;
    v->parent = h->parent;
    v->seq = h->seq;
    v->fence = h->fence;
    v->ts_ns = h->ts_ns;
    v->len = h->len;
    v->symbol = h->symbol;
    v->kind = h->kind;
    v->replay = replay;
    v->body = body;
    v->body_len = h->body_len;
    /* state_hash is the checkpoint body's first member */
    v->state_hash = h->kind == TL_KIND_CHECKPOINT ? body : NULL;
    v->event_seqs = NULL; /* native: one seq per record */
    v->n_events = 0;
}

void tl_log_init(tl_log *log, enum tl_dialect dialect, void *window_mem, uint64_t window_records,
                 tl_sink sink) {
    memset(log, 0, sizeof *log);
    TL_ASSERT(sink.emit != NULL);
    tl_window_init(&log->win, window_mem, window_records);
    log->sink = sink;
    log->dialect = (uint8_t)dialect;
    log->next_finding_id = 1;
}

void tl_log_emit(tl_log *log, tl_finding *f) {
    TL_ASSERT(f->check != TL_CHECK_NONE && f->check < TL_CHECK_COUNT);
    f->id = log->next_finding_id++;
    f->detect_ns = log->now_ns;
    f->dialect = log->dialect;
    log->findings_total++;
    log->sink.emit(log->sink.ctx, f);
}

void tl_stream_init(tl_stream *s, tl_log *log, enum tl_source source) {
    TL_ASSERT(source == TL_SOURCE_RING || source == TL_SOURCE_WAL);
    memset(s, 0, sizeof *s);
    s->log = log;
    s->source = (uint8_t)source;
    s->src_bit = source == TL_SOURCE_RING ? TL_WIN_SRC_RING : TL_WIN_SRC_WAL;
}

void tl_stream_anchor(tl_stream *s, uint64_t expected_seq, uint64_t expected_parent, uint64_t fence,
                      const uint8_t leader_id[TL_ID_BYTES]) {
    TL_ASSERT(expected_seq != 0);
    s->anchored = true;
    s->expected_seq = expected_seq;
    s->expected_parent = expected_parent;
    s->parent_known = true;
    s->fence = fence;
    s->fence_known = true;
    s->leader_known = leader_id != NULL && !tl_id_is_zero(leader_id);
    if (s->leader_known)
        memcpy(s->leader_id, leader_id, TL_ID_BYTES);
}

void tl_stream_resync(tl_stream *s, uint64_t expected_seq) {
    TL_ASSERT(expected_seq != 0);
    s->anchored = true;
    s->expected_seq = expected_seq;
    s->resync_seq = expected_seq;
    const tl_win_entry *prev = tl_window_find(&s->log->win, expected_seq - 1);
    s->parent_known = prev != NULL;
    s->fence_known = prev != NULL;
    if (prev != NULL) {
        s->expected_parent = prev->checksum;
        s->fence = prev->fence;
    }
}

void tl_stream_step_over(tl_stream *s, uint64_t seq, uint64_t checksum) {
    if (seq == 0 || (s->anchored && seq < s->expected_seq))
        return;
    s->anchored = true;
    s->expected_seq = seq + 1;
    s->expected_parent = checksum;
    s->parent_known = true;
}

void tl_stream_reanchor(tl_stream *s) {
    s->reanchor = true;
}

void tl_stream_segment_unreadable(tl_stream *s) {
    s->reanchor = true;
    if (s->segment_known)
        s->segment_index++;
}

static void source2_of(tl_finding *f, uint8_t srcs) {
    f->source2 = (srcs & TL_WIN_SRC_WAL)    ? TL_SOURCE_WAL
                 : (srcs & TL_WIN_SRC_RING) ? TL_SOURCE_RING
                                            : TL_SOURCE_NONE;
}

/* A finding about record r, with its evidence filled in. */
static void finding_for(const tl_stream *s, tl_finding *f, enum tl_check check,
                        const tl_rec_view *r, const tl_loc *loc, enum tl_rule rule) {
    tl_finding_init(f, check);
    f->source = s->source;
    f->rule = (uint8_t)rule;
    f->seq = r->seq;
    f->checksum = r->checksum;
    f->fence = r->fence;
    /* The native log is one global sequence: a fork or a broken chain touches
     * every symbol. xwal1 counts per symbol. */
    f->symbol = s->log->dialect == TL_DIALECT_XWAL1 ? r->symbol : 0;
    if (loc != NULL) {
        f->segment = loc->segment;
        f->offset = loc->offset;
    }
}

bool tl_stream_segment(tl_stream *s, const tl_seg_hdr *h, uint64_t name_first_seq,
                       const tl_loc *loc) {
    TL_ASSERT(s->source == TL_SOURCE_WAL);
    tl_log *log = s->log;
    tl_finding f;
    bool gap = false;

    if (h->first_seq != name_first_seq) {
        tl_finding_init(&f, TL_CHECK_SEGMENT_GAP);
        f.source = s->source;
        f.rule = TL_RULE_SEGMENT;
        f.reason = TL_REASON_SEGMENT_NAME;
        f.seq = h->first_seq;
        f.seq2 = name_first_seq;
        f.segment = loc->segment;
        tl_log_emit(log, &f);
        gap = true;
    }

    if (s->reanchor && s->segment_known && h->segment_index != s->segment_index + 1) {
        tl_finding_init(&f, TL_CHECK_SEGMENT_GAP);
        f.source = s->source;
        f.rule = TL_RULE_SEGMENT;
        f.reason = TL_REASON_SEGMENT_INDEX;
        f.seq = h->first_seq;
        f.segment = loc->segment;
        f.offset = h->segment_index;
        tl_log_emit(log, &f);
    }
    if (!s->segment_known || !s->anchored || s->reanchor) {
        s->reanchor = false;
        /* Where reading starts: take the header as given. Segment 0 of a log
         * must start at seq 1 with no parent. */
        if (h->segment_index == 0 && (h->first_seq != 1 || h->prev_checksum != 0)) {
            tl_finding_init(&f, TL_CHECK_SEGMENT_GAP);
            f.source = s->source;
            f.rule = TL_RULE_SEGMENT;
            f.reason =
                h->first_seq != 1 ? TL_REASON_SEGMENT_FIRST_SEQ : TL_REASON_SEGMENT_PREV_CHECKSUM;
            f.seq = h->first_seq;
            f.seq2 = 1;
            f.checksum = h->prev_checksum;
            f.segment = loc->segment;
            tl_log_emit(log, &f);
        }
        tl_stream_anchor(s, h->first_seq, h->prev_checksum, h->fence, h->leader_id);
        s->segment_index = h->segment_index;
        s->segment_known = true;
        return false;
    }

    if (h->segment_index != s->segment_index + 1 || h->first_seq != s->expected_seq ||
        h->prev_checksum != s->expected_parent) {
        tl_finding_init(&f, TL_CHECK_SEGMENT_GAP);
        f.source = s->source;
        f.rule = TL_RULE_SEGMENT;
        f.reason = h->segment_index != s->segment_index + 1 ? TL_REASON_SEGMENT_INDEX
                   : h->first_seq != s->expected_seq        ? TL_REASON_SEGMENT_FIRST_SEQ
                                                            : TL_REASON_SEGMENT_PREV_CHECKSUM;
        f.seq = h->first_seq;
        f.seq2 = s->expected_seq;
        f.checksum = h->prev_checksum;
        f.checksum2 = s->expected_parent;
        f.segment = loc->segment;
        f.offset = h->segment_index;
        tl_log_emit(log, &f);
        gap = true;
    }
    if (!gap) {
        if (s->fence_known && h->fence != s->fence) {
            tl_finding_init(&f, h->fence < s->fence ? TL_CHECK_FENCE_REGRESSION
                                                    : TL_CHECK_FENCE_UNANNOUNCED);
            f.source = s->source;
            f.rule = TL_RULE_FENCE;
            f.reason = TL_REASON_HEADER_FENCE;
            f.seq = h->first_seq;
            f.fence = h->fence;
            f.fence2 = s->fence;
            f.segment = loc->segment;
            tl_log_emit(log, &f);
        }
        if (s->leader_known && !tl_id_is_zero(h->leader_id) &&
            memcmp(h->leader_id, s->leader_id, TL_ID_BYTES) != 0) {
            tl_finding_init(&f, TL_CHECK_FENCE_UNANNOUNCED);
            f.source = s->source;
            f.rule = TL_RULE_FENCE;
            f.reason = TL_REASON_HEADER_LEADER;
            f.seq = h->first_seq;
            f.fence = h->fence;
            f.fence2 = s->fence;
            f.segment = loc->segment;
            memcpy(f.node, h->leader_id, TL_ID_BYTES);
            tl_log_emit(log, &f);
        }
    }
    s->segment_index = h->segment_index;
    if (gap) {
        /* One fact, one finding: re-anchor on the header so the records of
         * this segment do not each report the same break again. */
        uint64_t fence = s->fence_known && s->fence > h->fence ? s->fence : h->fence;
        tl_stream_anchor(s, h->first_seq, h->prev_checksum, fence,
                         s->leader_known ? s->leader_id : h->leader_id);
    }
    return gap;
}

/* Rule 6 for a record read in order (NEXT or GAP). */
static void check_fence(tl_stream *s, const tl_rec_view *r, const tl_loc *loc, tl_win_entry *e) {
    tl_log *log = s->log;
    tl_finding f;
    enum tl_check bad = TL_CHECK_NONE;
    uint16_t reason = TL_REASON_NONE;

    if (!s->fence_known) {
        s->fence = r->fence;
        s->fence_known = true;
    }
    if (log->dialect == TL_DIALECT_XWAL1) {
        /* No LEADER_CHANGE in this dialect: a rise is allowed, a drop is not. */
        if (r->fence < s->fence) {
            bad = TL_CHECK_FENCE_REGRESSION;
            reason = TL_REASON_FENCE_DROP;
        }
    } else if (r->kind == TL_KIND_LEADER_CHANGE) {
        tl_body_leader_change b;
        TL_ASSERT(r->body != NULL && r->body_len >= sizeof b);
        memcpy(&b, r->body, sizeof b);
        bool ok = r->fence == b.new_fence && b.prev_fence == s->fence && b.new_fence > b.prev_fence;
        if (!ok) {
            bad = r->fence < s->fence ? TL_CHECK_FENCE_REGRESSION : TL_CHECK_FENCE_UNANNOUNCED;
            reason = TL_REASON_LEADER_CHANGE;
        }
        if (r->fence >= s->fence) {
            memcpy(s->leader_id, b.leader_id, TL_ID_BYTES);
            s->leader_known = !tl_id_is_zero(b.leader_id);
        }
    } else if (r->fence < s->fence) {
        bad = TL_CHECK_FENCE_REGRESSION;
        reason = TL_REASON_FENCE_DROP;
    } else if (r->fence > s->fence) {
        bad = TL_CHECK_FENCE_UNANNOUNCED;
        reason = TL_REASON_FENCE_RISE;
    }

    if (bad != TL_CHECK_NONE && !(e != NULL && (e->reported & TL_WIN_REP_FENCE))) {
        finding_for(s, &f, bad, r, loc, TL_RULE_FENCE);
        f.reason = reason;
        f.fence2 = s->fence;
        tl_log_emit(log, &f);
        if (e != NULL)
            e->reported |= TL_WIN_REP_FENCE;
    }
    /* The fence in force never goes down: a stale writer's record does not
     * lower it, and an unannounced rise is reported once, then followed. */
    if (r->fence > s->fence)
        s->fence = r->fence;
}

/* The window entry of a first copy of seq from this stream. */
static tl_win_entry entry_of(const tl_stream *s, const tl_rec_view *r, uint64_t seq) {
    tl_win_entry e = {
        .seq = seq,
        .checksum = r->checksum,
        .fence = r->fence,
        .ts_ns = r->ts_ns,
        .symbol = r->symbol,
        .kind = r->kind,
        .srcs = s->src_bit,
    };
    if (r->kind == TL_KIND_TRADE && r->body != NULL) {
        tl_body_trade t;
        memcpy(&t, r->body, sizeof t);
        e.qty = (uint64_t)t.qty;
        e.notional = (uint64_t)t.price * (uint64_t)t.qty; /* wrapping, as ledger.md */
    }
    return e;
}

/* Compares a copy of seq with the window (or enters it) and raises FORK or
 * SEQ_DUPLICATE; `lower` says the stream had already passed this seq. */
static enum tl_seen compare_one(tl_stream *s, const tl_rec_view *r, uint64_t seq, const tl_loc *loc,
                                bool lower, bool *forked, bool *fence_back) {
    tl_log *log = s->log;
    tl_win_entry *e = tl_window_find(&log->win, seq);
    tl_finding f;
    if (e != NULL) {
        if (e->checksum == r->checksum) {
            if ((e->srcs & s->src_bit) || r->replay) {
                e->srcs |= s->src_bit;
                return TL_SEEN_DUPLICATE;
            }
            e->srcs |= s->src_bit;
            return TL_SEEN_MATCH;
        }
        if (!(e->reported & TL_WIN_REP_FORK) && !*forked) {
            finding_for(s, &f, TL_CHECK_FORK, r, loc, TL_RULE_SEQ);
            f.seq = seq;
            f.seq2 = r->seq;
            f.checksum2 = e->checksum;
            f.fence2 = e->fence;
            source2_of(&f, e->srcs);
            tl_log_emit(log, &f);
            e->reported |= TL_WIN_REP_FORK;
            *forked = true;
        }
        if (lower && r->fence < e->fence)
            *fence_back = true;
        return TL_SEEN_CONFLICT;
    }
    const tl_win_entry first = entry_of(s, r, seq);
    if (tl_window_store(&log->win, &first) == NULL) {
        log->uncompared_total++; /* evicted */
        return TL_SEEN_UNCOMPARED;
    }
    return TL_SEEN_FIRST;
}

static uint64_t first_seq_of(const tl_rec_view *r) {
    return r->n_events > 0 ? r->event_seqs[0] : r->seq;
}

/* Compares every seq the record covers (one, or each xwal1 event seq). */
static enum tl_seen compare_all(tl_stream *s, const tl_rec_view *r, const tl_loc *loc, bool lower,
                                bool *fence_back) {
    bool forked = false;
    if (r->n_events == 0)
        return compare_one(s, r, r->seq, loc, lower, &forked, fence_back);
    TL_ASSERT(r->n_events <= TL_XWAL1_MAX_EVENTS);
    enum tl_seen worst = TL_SEEN_FIRST;
    bool all_dup = true, any_first = false;
    for (uint32_t i = 0; i < r->n_events; i++) {
        enum tl_seen seen = compare_one(s, r, r->event_seqs[i], loc, lower, &forked, fence_back);
        if (seen == TL_SEEN_CONFLICT)
            worst = TL_SEEN_CONFLICT;
        if (seen != TL_SEEN_DUPLICATE)
            all_dup = false;
        if (seen == TL_SEEN_FIRST)
            any_first = true;
    }
    if (worst == TL_SEEN_CONFLICT)
        return worst;
    if (all_dup)
        return TL_SEEN_DUPLICATE;
    return any_first ? TL_SEEN_FIRST : TL_SEEN_MATCH;
}

/* The common case, decided first: a native record in order and clean. Its
 * seq is expected_seq, its parent and fence are the known ones in force,
 * it is no LEADER_CHANGE and carries no REPLAY, and the window holds either
 * nothing for its seq yet (the first copy enters) or the other source's
 * copy with the same checksum (a match). Rules 4-6 then find nothing, and
 * the general path below would make exactly these changes; every test is
 * made before anything changes, so any other record goes there untouched.
 * Returns false for those. */
static bool record_in_order(tl_stream *s, const tl_rec_view *r, tl_stream_result *res) {
    tl_log *log = s->log;
    bool clean = (log->dialect == TL_DIALECT_TLYWAL1) & s->anchored & s->parent_known &
                 s->fence_known & (r->seq == s->expected_seq) & (r->parent == s->expected_parent) &
                 (r->fence == s->fence) & (r->kind != TL_KIND_LEADER_CHANGE) & !r->replay;
    if (!clean)
        return false;
    TL_ASSERT(r->n_events == 0);
    tl_win_entry *e = tl_window_slot(&log->win, r->seq);
    if (e->seq == r->seq) {
        /* A FORK or a SEQ_DUPLICATE is the general path's to name. */
        if (e->checksum != r->checksum || (e->srcs & s->src_bit) != 0)
            return false;
        e->srcs |= s->src_bit;
        res->seen = TL_SEEN_MATCH;
    } else {
        const tl_win_entry first = entry_of(s, r, r->seq);
        if (tl_window_store(&log->win, &first) == NULL)
            return false; /* evicted: uncompared, counted there */
        res->seen = TL_SEEN_FIRST;
    }
    res->order = TL_ORDER_NEXT;
    s->records_total++;
    s->expected_seq = r->seq + 1;
    s->expected_parent = r->checksum;
    return true;
}

tl_stream_result tl_stream_record(tl_stream *s, const tl_rec_view *r, const tl_loc *loc) {
    TL_ASSERT(r->seq != 0 && r->kind != TL_KIND_PAD);
    tl_stream_result fast;
    if (__builtin_expect(record_in_order(s, r, &fast), 1))
        return fast;
    tl_log *log = s->log;
    tl_finding f;
    tl_stream_result res = {TL_ORDER_NEXT, TL_SEEN_FIRST};
    bool xwal1 = log->dialect == TL_DIALECT_XWAL1;
    s->records_total++;

    if (!s->anchored) {
        /* No segment header or attach told us where we are: the first record
         * anchors the stream, unverified. */
        s->anchored = true;
        s->expected_seq = xwal1 ? first_seq_of(r) : r->seq;
        s->parent_known = false;
    }

    /* Rule 4: seq. For xwal1 a record is in order when its first event seq is
     * above the previous record's seq; gaps between records are by design. */
    uint64_t lead = xwal1 ? first_seq_of(r) : r->seq;
    bool overlap = false;
    if (r->seq < s->expected_seq) {
        res.order = TL_ORDER_LOWER;
    } else if (lead == s->expected_seq || (xwal1 && lead > s->expected_seq)) {
        res.order = TL_ORDER_NEXT;
    } else if (lead > s->expected_seq) {
        res.order = TL_ORDER_GAP;
    } else {
        /* xwal1: the record's events overlap seqs already used (first event
         * <= previous seq < this seq). The per-event comparison names a
         * conflict; without one it is still out of order (below). */
        res.order = TL_ORDER_NEXT;
        overlap = true;
    }

    if (res.order == TL_ORDER_LOWER) {
        s->lower_total++;
        bool fence_back = false;
        uint64_t first = first_seq_of(r);
        bool evicted =
            tl_window_evicted(&log->win, first) && tl_window_find(&log->win, first) == NULL;
        bool held = false;
        for (uint32_t i = 0; i < (r->n_events ? r->n_events : 1); i++) {
            if (tl_window_find(&log->win, r->n_events ? r->event_seqs[i] : r->seq) != NULL)
                held = true;
        }
        if (!held && !evicted && s->source == TL_SOURCE_RING && r->seq < s->resync_seq) {
            /* ring.md: after an attach at E, ring records below E arrive as
             * lower seqs. One the WAL has not delivered yet is kept, as the
             * first copy, for the WAL's copy to be compared with. */
            res.seen = (uint8_t)compare_all(s, r, loc, true, &fence_back);
            return res;
        }
        if (!held) {
            if (r->replay) {
                /* A ring replay of a seq we have not seen: an engine recovery
                 * replays below the durable seq; keep it for the WAL's copy
                 * to be compared with, or count it if it is too old. */
                if (evicted)
                    log->replay_old_total++;
                else
                    (void)compare_all(s, r, loc, true, &fence_back);
                res.seen = evicted ? TL_SEEN_UNCOMPARED : TL_SEEN_FIRST;
                return res;
            }
            finding_for(s, &f, TL_CHECK_SEQ_REGRESSION, r, loc, TL_RULE_SEQ);
            f.reason = evicted ? TL_REASON_LOWER_EVICTED : TL_REASON_LOWER_UNSEEN;
            f.seq2 = s->expected_seq;
            tl_log_emit(log, &f);
            res.seen = evicted ? TL_SEEN_UNCOMPARED : compare_all(s, r, loc, true, &fence_back);
            /* A stale writer's record is a distinct fact from its seq: in
             * xwal1 the fence in force is what it regresses against. */
            if (xwal1 && s->fence_known && r->fence < s->fence) {
                finding_for(s, &f, TL_CHECK_FENCE_REGRESSION, r, loc, TL_RULE_FENCE);
                f.reason = TL_REASON_FENCE_DROP;
                f.fence2 = s->fence;
                tl_log_emit(log, &f);
            }
            return res;
        }
        res.seen = (uint8_t)compare_all(s, r, loc, true, &fence_back);
        if (res.seen == TL_SEEN_DUPLICATE) {
            log->dup_total++;
            finding_for(s, &f, TL_CHECK_SEQ_DUPLICATE, r, loc, TL_RULE_SEQ);
            f.seq2 = s->expected_seq;
            tl_log_emit(log, &f);
        }
        /* Rule 6 for a lower seq is checked against the fence recorded for
         * that seq, not the fence in force (wal.md rule 4). */
        if (fence_back || (xwal1 && s->fence_known && r->fence < s->fence)) {
            finding_for(s, &f, TL_CHECK_FENCE_REGRESSION, r, loc, TL_RULE_FENCE);
            f.reason = TL_REASON_FENCE_DROP;
            f.fence2 = s->fence;
            tl_log_emit(log, &f);
        }
        return res;
    }

    /* Compare with the window first, so that the entry exists and carries
     * the `reported` bits of the findings below for the other stream. */
    bool fence_back = false;
    res.seen = (uint8_t)compare_all(s, r, loc, false, &fence_back);
    if (res.seen == TL_SEEN_DUPLICATE) {
        log->dup_total++;
        finding_for(s, &f, TL_CHECK_SEQ_DUPLICATE, r, loc, TL_RULE_SEQ);
        tl_log_emit(log, &f);
    }
    tl_win_entry *e = tl_window_find(&log->win, r->seq);
    if (overlap && res.seen != TL_SEEN_CONFLICT) {
        /* wal.md: each record's first event seq is above the previous
         * record's seq. Nothing to compare the overlap with. */
        finding_for(s, &f, TL_CHECK_SEQ_REGRESSION, r, loc, TL_RULE_SEQ);
        f.reason = TL_REASON_LOWER_UNSEEN;
        f.seq = lead;
        f.seq2 = s->expected_seq;
        tl_log_emit(log, &f);
    }

    if (res.order == TL_ORDER_GAP) {
        s->gap_records_total += r->seq - s->expected_seq;
        /* Only the WAL names a gap: what the ring skipped comes from the WAL. */
        if (s->source == TL_SOURCE_WAL && !(e != NULL && (e->reported & TL_WIN_REP_GAP))) {
            finding_for(s, &f, TL_CHECK_SEQ_GAP, r, loc, TL_RULE_SEQ);
            f.seq2 = s->expected_seq; /* seqs seq2 .. seq - 1 are missing */
            tl_log_emit(log, &f);
            if (e != NULL)
                e->reported |= TL_WIN_REP_GAP;
        }
    } else if (!xwal1) {
        /* Rule 5: parent. */
        uint64_t want = s->expected_parent;
        bool known = s->parent_known;
        const tl_win_entry *prev = tl_window_find(&log->win, r->seq - 1);
        if (!known && prev != NULL) {
            want = prev->checksum;
            known = true;
        }
        /* On the ring, only against a durable predecessor (see stream.h). */
        bool judge = s->source == TL_SOURCE_WAL || (prev != NULL && (prev->srcs & TL_WIN_SRC_WAL));
        if (known && judge && r->parent != want &&
            !(e != NULL && (e->reported & TL_WIN_REP_CHAIN))) {
            finding_for(s, &f, TL_CHECK_CHAIN_BREAK, r, loc, TL_RULE_PARENT);
            f.checksum2 = want;
            f.seq2 = r->seq - 1;
            tl_log_emit(log, &f);
            if (e != NULL)
                e->reported |= TL_WIN_REP_CHAIN;
        }
    }

    /* Rule 6: fence. */
    check_fence(s, r, loc, e);

    s->expected_seq = r->seq + 1;
    s->expected_parent = r->checksum;
    s->parent_known = true;
    return res;
}
