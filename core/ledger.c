/* ledger.c: the settlement ledger checker (see ledger.h).
 *
 * Invariants (asserted where they are cheap):
 *   - base_seq <= posted_seq <= fold_seq once started;
 *   - the FIFO holds the durable TRADEs in (posted_seq, fold_seq], oldest
 *     first, except those dropped when it was full (floor_*) and those the
 *     fold skipped (last_gap);
 *   - unposted == Σ of the FIFO's entries (wrapping), so tally's totals at
 *     posted_seq are run − unposted;
 *   - for each tracked symbol: `prev` is the ledger's figures at the previous
 *     reply taken, `ours` the sum of the trades popped since.
 */
#include "ledger.h"

#include <string.h>

#include "assert.h"

#define NS_PER_MS 1000000ull

void tl_ledger_cfg_defaults(tl_ledger_cfg *c) {
    memset(c, 0, sizeof *c);
    c->enabled = false;
    c->confirmations = 3;
    c->max_age_ms = 1000;
    c->ahead_slack = 0;
    c->lag_throttle_ms = 2000;
    c->lag_halt_ms = 10000;
    c->fifo_trades = 1u << 19;
    c->fold_budget = 2048;
    c->pop_budget = 2048;
}

static size_t align64(size_t n) {
    return (n + 63u) & ~(size_t)63u;
}

size_t tl_ledger_mem_bytes(const tl_ledger_cfg *c) {
    if (!c->enabled)
        return 0;
    return align64((size_t)c->fifo_trades * sizeof(tl_ledger_trade)) +
           align64(TL_LEDGER_TRACK_SLOTS * sizeof(tl_ledger_track)) +
           align64(TL_LEDGER_TRACK_MAX * sizeof(uint16_t));
}

void tl_ledger_init(tl_ledger *g, const tl_ledger_cfg *cfg, tl_log *log, void *mem) {
    memset(g, 0, sizeof *g);
    g->cfg = *cfg;
    g->log = log;
    g->win = &log->win;
    if (!cfg->enabled)
        return;
    TL_ASSERT(cfg->fifo_trades >= 2 && (cfg->fifo_trades & (cfg->fifo_trades - 1)) == 0);
    TL_ASSERT(cfg->fold_budget >= 1 && cfg->pop_budget >= 1 && cfg->confirmations >= 1);
    TL_ASSERT(cfg->lag_halt_ms >= cfg->lag_throttle_ms);
    TL_ASSERT(mem != NULL && ((uintptr_t)mem & 63u) == 0);
    uint8_t *p = mem;
    g->fifo = (tl_ledger_trade *)p;
    g->fifo_cap = cfg->fifo_trades;
    /* Touched now, at start-up, so the hot loop never takes its page faults. */
    memset(g->fifo, 0, (size_t)cfg->fifo_trades * sizeof(tl_ledger_trade));
    p += align64((size_t)cfg->fifo_trades * sizeof(tl_ledger_trade));
    g->track = (tl_ledger_track *)p;
    memset(g->track, 0, TL_LEDGER_TRACK_SLOTS * sizeof(tl_ledger_track));
    p += align64(TL_LEDGER_TRACK_SLOTS * sizeof(tl_ledger_track));
    g->track_list = (uint16_t *)p;
    g->stale_reason = TL_REASON_LEDGER_SILENT;
}

/* ---- wrapping figures ---- */

static tl_ledger_figs figs_sub(tl_ledger_figs a, tl_ledger_figs b) {
    tl_ledger_figs r = {a.trades - b.trades, a.qty - b.qty, a.notional - b.notional};
    return r;
}

static tl_ledger_figs figs_add(tl_ledger_figs a, tl_ledger_figs b) {
    tl_ledger_figs r = {a.trades + b.trades, a.qty + b.qty, a.notional + b.notional};
    return r;
}

static bool figs_zero(tl_ledger_figs a) {
    return (a.trades | a.qty | a.notional) == 0;
}

enum tl_ledger_verdict tl_ledger_classify(tl_ledger_figs d) {
    if (d.trades != 0)
        return (int64_t)d.trades > 0 ? TL_LEDGER_DOUBLE : TL_LEDGER_MISSING;
    if (d.qty != 0 || d.notional != 0)
        return TL_LEDGER_CONTENT;
    return TL_LEDGER_AGREE;
}

enum tl_check tl_ledger_verdict_check(enum tl_ledger_verdict v) {
    switch (v) {
        case TL_LEDGER_DOUBLE:
            return TL_CHECK_LEDGER_DOUBLE_POSTING;
        case TL_LEDGER_MISSING:
            return TL_CHECK_LEDGER_MISSING_POSTING;
        case TL_LEDGER_CONTENT:
        case TL_LEDGER_CHAIN_FORK:
            return TL_CHECK_LEDGER_FORK;
        default:
            TL_UNREACHABLE();
    }
}

/* ---- findings ---- */

static void emit_to(tl_log *log, enum tl_check check, enum tl_severity sev, uint16_t reason,
                    uint32_t symbol, uint64_t seq, uint64_t seq2, uint64_t checksum,
                    uint64_t checksum2) {
    tl_finding f;
    tl_finding_init(&f, check);
    f.severity = (uint8_t)sev;
    f.source = TL_SOURCE_LEDGER;
    f.reason = reason;
    f.symbol = symbol;
    f.seq = seq;
    f.seq2 = seq2;
    f.checksum = checksum;
    f.checksum2 = checksum2;
    tl_log_emit(log, &f);
}

static void emit(tl_ledger *g, enum tl_check check, enum tl_severity sev, uint16_t reason,
                 uint32_t symbol, uint64_t seq, uint64_t seq2, uint64_t checksum,
                 uint64_t checksum2) {
    emit_to(g->log, check, sev, reason, symbol, seq, seq2, checksum, checksum2);
}

/* ---- the fold ---- */

void tl_ledger_wal_record(tl_ledger *g, uint64_t seq) {
    if (!g->cfg.enabled || g->started || seq == 0)
        return;
    g->started = true;
    g->base_seq = seq - 1;
    g->fold_seq = seq - 1;
    g->posted_seq = seq - 1;
    g->anchored = seq == 1; /* nothing precedes seq 1: the sums are absolute */
}

void tl_ledger_checkpoint(tl_ledger *g, const tl_rec_view *v) {
    if (!g->cfg.enabled || v->body == NULL || v->body_len < sizeof(tl_body_checkpoint))
        return;
    tl_body_checkpoint b;
    memcpy(&b, v->body, sizeof b);
    tl_ledger_ckpt *c = &g->ckpt[g->ckpt_next++ % TL_LEDGER_CHECKPOINTS];
    c->seq = v->seq;
    c->checksum = v->checksum;
    c->f.trades = b.trades_total;
    c->f.qty = b.qty_total;
    c->f.notional = b.notional_total;
}

static void anchor_at(tl_ledger *g, const tl_win_entry *e) {
    for (uint32_t i = 0; i < TL_LEDGER_CHECKPOINTS; i++) {
        const tl_ledger_ckpt *c = &g->ckpt[i];
        /* The checksum too: a provisional ring copy of an ended incarnation
         * may have left another body for this seq. */
        if (c->seq != e->seq || c->checksum != e->checksum)
            continue;
        if (!g->anchored) {
            g->run = c->f;
            g->anchored = true;
        } else if (!figs_zero(figs_sub(g->run, c->f))) {
            g->st.checkpoint_mismatch++;
        }
        return;
    }
}

static void fifo_push(tl_ledger *g, const tl_ledger_trade *t) {
    uint64_t mask = g->fifo_cap - 1;
    if (g->fifo_count == g->fifo_cap) {
        /* Full: the oldest unposted trade leaves. A reply below it can no
         * longer be compared (floor_seq), and the lag clock keeps its age. */
        const tl_ledger_trade *o = &g->fifo[g->fifo_head];
        g->unposted = figs_sub(g->unposted, (tl_ledger_figs){1, o->qty, o->notional});
        if (!g->floor_active)
            g->floor_ts_ns = o->ts_ns;
        g->floor_active = true;
        g->floor_seq = o->seq;
        g->fifo_head = (g->fifo_head + 1) & mask;
        g->fifo_count--;
        g->st.fifo_dropped_total++;
    }
    g->fifo[(g->fifo_head + g->fifo_count) & mask] = *t;
    g->fifo_count++;
    tl_ledger_figs_add_trade(&g->unposted, t->qty, t->notional);
}

/* ---- per-symbol tracking ---- */

static tl_ledger_track *track_get(tl_ledger *g, uint32_t symbol) {
    uint32_t mask = TL_LEDGER_TRACK_SLOTS - 1;
    uint32_t h = (uint32_t)(((uint64_t)symbol * 0x9e3779b97f4a7c15ull) >> 40) & mask;
    for (uint32_t i = 0; i < TL_LEDGER_TRACK_SLOTS; i++) {
        uint32_t k = (h + i) & mask;
        tl_ledger_track *t = &g->track[k];
        if (t->used && t->symbol == symbol)
            return t;
        if (!t->used) {
            if (g->track_count == TL_LEDGER_TRACK_MAX)
                return NULL;
            t->used = 1;
            t->symbol = symbol;
            g->track_list[g->track_count++] = (uint16_t)k;
            return t;
        }
    }
    return NULL;
}

/* A FIFO entry; its symbol's slot is looked up once, here, not at every pop. */
static void trade_of(tl_ledger *g, const tl_win_entry *e, tl_ledger_trade *t) {
    t->seq = e->seq;
    t->ts_ns = e->ts_ns;
    t->qty = e->qty;
    t->notional = e->notional;
    t->symbol = e->symbol;
    tl_ledger_track *k = track_get(g, e->symbol);
    t->track = k != NULL ? (uint32_t)(k - g->track) : TL_LEDGER_NO_TRACK;
}

uint32_t tl_ledger_fold(tl_ledger *g, uint64_t durable_seq, uint64_t settled_seq) {
    if (!g->cfg.enabled || !g->started)
        return 0;
    uint32_t n = 0;
    while (g->fold_seq < durable_seq && n < g->cfg.fold_budget) {
        uint64_t s = g->fold_seq + 1;
        const tl_win_entry *e = tl_window_find(g->win, s);
        if (e == NULL) {
            if (s > settled_seq && !tl_window_evicted(g->win, s))
                break; /* not delivered yet */
            /* Never coming: the WAL passed it (a gap, a corrupt record), or
             * the window moved on. Its figures are unknown from here on. */
            g->st.gaps_total++;
            g->anchored = false;
            g->last_gap = s;
            g->fold_seq = s;
            n++;
            continue;
        }
        if (e->kind == TL_KIND_TRADE) {
            tl_ledger_trade t;
            trade_of(g, e, &t);
            fifo_push(g, &t);
            tl_ledger_figs_add_trade(&g->run, t.qty, t.notional);
        } else if (e->kind == TL_KIND_CHECKPOINT) {
            anchor_at(g, e);
        }
        g->fold_seq = s;
        n++;
    }
    return n;
}

/* ---- popping ---- */

/* The trades the ledger has now posted, oldest first, into each symbol's
 * `ours`; at most `budget` of them. True when every trade <= s is off. */
static bool pop_to(tl_ledger *g, uint64_t s, uint32_t budget) {
    uint64_t mask = g->fifo_cap - 1;
    for (uint32_t n = 0; g->fifo_count > 0 && g->fifo[g->fifo_head].seq <= s; n++) {
        if (n == budget)
            return false;
        const tl_ledger_trade *t = &g->fifo[g->fifo_head];
        g->posted_seq = t->seq; /* the FIFO holds (posted_seq, fold_seq] at every step */
        g->unposted = figs_sub(g->unposted, (tl_ledger_figs){1, t->qty, t->notional});
        if (t->track != TL_LEDGER_NO_TRACK) {
            tl_ledger_figs_add_trade(&g->track[t->track].ours, t->qty, t->notional);
        } else if (!g->track_overflow) {
            g->track_overflow = true;
            g->st.track_overflow_total++;
        }
        g->fifo_head = (g->fifo_head + 1) & mask;
        g->fifo_count--;
    }
    if (g->floor_active && s >= g->floor_seq)
        g->floor_active = false;
    return true;
}

/* ledger_seq went down to s: the trades in (s, posted_seq] are unposted
 * again. Rebuilt from the window, O(posted_seq - s); false (and nothing
 * changed) if the window no longer holds them all or the FIFO has no room. */
static bool unpop_to(tl_ledger *g, uint64_t s) {
    TL_ASSERT(s < g->posted_seq);
    if (g->posted_seq - s > g->win->capacity || (g->floor_active && s < g->floor_seq))
        return false;
    uint64_t trades = 0;
    for (uint64_t q = s + 1; q <= g->posted_seq; q++) {
        const tl_win_entry *e = tl_window_find(g->win, q);
        if (e == NULL)
            return false;
        trades += e->kind == TL_KIND_TRADE;
    }
    if (g->fifo_count + trades > g->fifo_cap)
        return false;
    uint64_t mask = g->fifo_cap - 1;
    for (uint64_t q = g->posted_seq; q > s; q--) {
        const tl_win_entry *e = tl_window_find(g->win, q);
        TL_ASSERT(e != NULL);
        if (e->kind != TL_KIND_TRADE)
            continue;
        g->fifo_head = (g->fifo_head + mask) & mask; /* one slot back */
        tl_ledger_trade *t = &g->fifo[g->fifo_head];
        trade_of(g, e, t);
        g->fifo_count++;
        tl_ledger_figs_add_trade(&g->unposted, e->qty, e->notional);
        /* `ours` counts the trades popped since the previous reply: these
         * are unposted again. */
        if (t->track != TL_LEDGER_NO_TRACK)
            g->track[t->track].ours =
                figs_sub(g->track[t->track].ours, (tl_ledger_figs){1, e->qty, e->notional});
    }
    g->posted_seq = s;
    return true;
}

typedef struct sym_verdict {
    uint32_t symbol;
    uint8_t verdict;
    uint8_t covered;
} sym_verdict;

/* Walks the reply's symbols and every tracked one: with `judge`, the ledger's
 * delta (reply − prev) against ours goes into out[]; in any case prev
 * becomes the reply's figures (0 for a symbol it does not list) and ours 0.
 * Returns how many verdicts it wrote; *ok_out false if a symbol found no
 * slot (the deltas cannot be trusted this time). */
static uint32_t track_pass(tl_ledger *g, const tl_ledger_wm *wm, bool judge, sym_verdict *out,
                           bool *ok_out) {
    uint32_t n = 0;
    bool ok = !g->track_overflow;
    for (uint32_t i = 0; i < wm->symbol_count; i++) {
        const tl_ledger_symfigs *s = &wm->symbols[i];
        tl_ledger_track *t = track_get(g, s->symbol);
        if (t == NULL) {
            ok = false;
            if (!g->track_overflow) {
                g->track_overflow = true;
                g->st.track_overflow_total++;
            }
            continue;
        }
        t->in_reply = 1;
        if (judge) {
            enum tl_ledger_verdict v =
                tl_ledger_classify(figs_sub(figs_sub(s->f, t->prev), t->ours));
            if (v != TL_LEDGER_AGREE)
                out[n++] = (sym_verdict){s->symbol, (uint8_t)v, 0};
        }
        t->prev = s->f;
        memset(&t->ours, 0, sizeof t->ours);
    }
    for (uint32_t i = 0; i < g->track_count; i++) {
        tl_ledger_track *t = &g->track[g->track_list[i]];
        if (t->in_reply) {
            t->in_reply = 0;
            continue;
        }
        if (judge) {
            tl_ledger_figs none = {0, 0, 0};
            enum tl_ledger_verdict v =
                tl_ledger_classify(figs_sub(figs_sub(none, t->prev), t->ours));
            if (v != TL_LEDGER_AGREE)
                out[n++] = (sym_verdict){t->symbol, (uint8_t)v, 0};
        }
        memset(&t->prev, 0, sizeof t->prev);
        memset(&t->ours, 0, sizeof t->ours);
    }
    *ok_out = ok;
    return n;
}

/* Names the facts of one comparison: the totals' verdict, scoped to the
 * symbols whose figures show the same fact (at most TL_LEDGER_SCOPES_MAX,
 * else `*`), then the per-symbol facts the totals do not show. Shared by
 * the checker and tl_ledger_judge, so both name a fact the same way. */
static void report(tl_log *log, enum tl_ledger_verdict total, sym_verdict *sv, uint32_t nv,
                   uint64_t s, uint64_t seq2, uint64_t checksum) {
    if (total != TL_LEDGER_AGREE) {
        uint32_t same = 0;
        for (uint32_t i = 0; i < nv; i++)
            same += sv[i].verdict == total;
        for (uint32_t i = 0; i < nv; i++) {
            if (sv[i].verdict != total)
                continue;
            sv[i].covered = 1;
            if (same <= TL_LEDGER_SCOPES_MAX)
                emit_to(log, tl_ledger_verdict_check(total), TL_SEV_SEV1,
                        total == TL_LEDGER_CONTENT ? TL_REASON_LEDGER_CONTENT : TL_REASON_NONE,
                        sv[i].symbol, s, seq2, checksum, checksum);
        }
        if (same == 0 || same > TL_LEDGER_SCOPES_MAX)
            emit_to(log, tl_ledger_verdict_check(total), TL_SEV_SEV1,
                    total == TL_LEDGER_CONTENT ? TL_REASON_LEDGER_CONTENT : TL_REASON_NONE, 0, s,
                    seq2, checksum, checksum);
    }
    /* Per-symbol facts the totals do not show (a trade posted on the wrong
     * symbol balances out in the totals). */
    uint32_t left = 0, first = 0;
    for (uint32_t i = 0; i < nv; i++) {
        if (sv[i].covered)
            continue;
        if (left == 0)
            first = i;
        left++;
    }
    if (left > TL_LEDGER_SCOPES_MAX) {
        emit_to(log, tl_ledger_verdict_check((enum tl_ledger_verdict)sv[first].verdict),
                TL_SEV_SEV1,
                sv[first].verdict == TL_LEDGER_CONTENT ? TL_REASON_LEDGER_CONTENT : TL_REASON_NONE,
                0, s, seq2, checksum, checksum);
    } else {
        for (uint32_t i = 0; i < nv; i++) {
            if (sv[i].covered)
                continue;
            emit_to(log, tl_ledger_verdict_check((enum tl_ledger_verdict)sv[i].verdict),
                    TL_SEV_SEV1,
                    sv[i].verdict == TL_LEDGER_CONTENT ? TL_REASON_LEDGER_CONTENT : TL_REASON_NONE,
                    sv[i].symbol, s, seq2, checksum, checksum);
        }
    }
}

/* Step 2's fact: the ledger followed another log than tally's. */
static void report_fork(tl_log *log, uint64_t s, uint64_t ledger_checksum, uint64_t our_checksum) {
    emit_to(log, TL_CHECK_LEDGER_FORK, TL_SEV_SEV1, TL_REASON_NONE, 0, s, 0, ledger_checksum,
            our_checksum);
}

/* Steps 3 and 4: counts, then qty and notional, totals and per symbol. */
static void compare_content(tl_ledger *g, const tl_ledger_wm *wm) {
    uint64_t s = wm->ledger_seq;
    tl_ledger_figs ours = figs_sub(g->run, g->unposted);
    /* The FIFO lacks a skipped trade: totals hold at or above the last gap,
     * deltas between replies on the same side of it. */
    bool deltas = g->have_prev && g->prev_seq >= g->last_gap;
    enum tl_ledger_verdict total = TL_LEDGER_AGREE;
    if (g->anchored && s >= g->last_gap) {
        /* Absolute: a difference is named when it changes, not at every
         * reply it persists in. */
        tl_ledger_figs diff = figs_sub(wm->total, ours);
        total = tl_ledger_classify(figs_sub(diff, g->reported_diff));
        g->reported_diff = diff;
    } else if (deltas) {
        tl_ledger_figs d =
            figs_sub(figs_sub(wm->total, g->prev_ledger), figs_sub(ours, g->prev_ours));
        total = tl_ledger_classify(d);
        /* Remembered, so that anchoring later does not name it again. */
        g->reported_diff = figs_add(g->reported_diff, d);
    }

    sym_verdict sv[TL_LEDGER_SYMBOLS_MAX + TL_LEDGER_TRACK_MAX];
    bool sym_ok = true;
    uint32_t nv = track_pass(g, wm, deltas, sv, &sym_ok);
    if (!sym_ok)
        nv = 0;

    report(g->log, total, sv, nv, s, deltas ? g->prev_seq : 0, wm->checksum);
    g->have_prev = true;
    g->prev_seq = s;
    g->prev_ledger = wm->total;
    g->prev_ours = ours;
}

/* A reply whose deltas cannot be judged: the per-symbol baseline moves to it. */
static void rebase(tl_ledger *g, const tl_ledger_wm *wm) {
    bool ok;
    (void)track_pass(g, wm, false, NULL, &ok);
    g->have_prev = false;
}

/* ---- SETTLEMENT_LAG ---- */

static void lag_poll(tl_ledger *g, const tl_ledger_wm *wm) {
    uint64_t head_seq = 0, head_ts = 0;
    if (g->floor_active) {
        head_seq = g->floor_seq;
        head_ts = g->floor_ts_ns;
    } else if (g->fifo_count > 0) {
        head_seq = g->fifo[g->fifo_head].seq;
        head_ts = g->fifo[g->fifo_head].ts_ns;
    }
    uint64_t lag = head_ts != 0 && wm->recv_real_ns > head_ts ? wm->recv_real_ns - head_ts : 0;
    g->st.lag_ns = lag;
    if (lag <= g->cfg.lag_throttle_ms * NS_PER_MS) {
        g->st.lag_polls = 0;
        g->st.lag_clean_polls++;
        g->lag_alerted = false;
        g->lag_escalated = false;
        return;
    }
    g->st.lag_clean_polls = 0;
    g->st.lag_polls++;
    if (g->st.lag_polls >= g->cfg.confirmations && !g->lag_alerted) {
        g->lag_alerted = true;
        emit(g, TL_CHECK_SETTLEMENT_LAG, TL_SEV_SEV2, TL_REASON_NONE, 0, head_seq, wm->ledger_seq,
             0, 0);
    }
    if (g->lag_alerted && !g->lag_escalated && lag > g->cfg.lag_halt_ms * NS_PER_MS) {
        g->lag_escalated = true;
        emit(g, TL_CHECK_SETTLEMENT_LAG, TL_SEV_SEV1, TL_REASON_NONE, 0, head_seq, wm->ledger_seq,
             0, 0);
    }
}

/* ---- one reply ---- */

static uint64_t age_ns(uint64_t ts_ns, uint64_t now_ns) {
    return now_ns > ts_ns ? now_ns - ts_ns : 0;
}

static bool held(tl_ledger *g, const tl_ledger_wm *wm) {
    if (g->held_poll_id != wm->poll_id) {
        g->held_poll_id = wm->poll_id;
        g->st.held_total++;
    }
    return false;
}

static void below_window(tl_ledger *g, const tl_ledger_wm *wm) {
    g->st.unchecked_total++;
    g->stale_reason = TL_REASON_LEDGER_BELOW;
    if (!g->stale_reported) {
        g->stale_reported = true;
        emit(g, TL_CHECK_LEDGER_STALE, TL_SEV_DEGRADED, TL_REASON_LEDGER_BELOW, 0, wm->ledger_seq,
             g->base_seq, wm->checksum, 0);
    }
    rebase(g, wm);
}

bool tl_ledger_reply(tl_ledger *g, const tl_ledger_wm *wm, uint64_t now_mono_ns,
                     uint64_t now_real_ns, uint64_t durable_seq, uint64_t durable_read_ns) {
    TL_ASSERT(g->cfg.enabled);
    (void)now_mono_ns;
    uint64_t max_age = g->cfg.max_age_ms * NS_PER_MS;
    uint64_t s = wm->ledger_seq;

    /* Too old when it came, or held until it became too old: not compared. */
    if (age_ns(wm->ts_ns, wm->recv_real_ns) > max_age || age_ns(wm->ts_ns, now_real_ns) > max_age) {
        g->st.replies_total++;
        g->st.old_total++;
        g->stale_reason = TL_REASON_LEDGER_OLD;
        return true;
    }
    /* LEDGER_AHEAD needs a durable read made after the reply arrived. */
    if (durable_read_ns < wm->recv_mono_ns)
        return held(g, wm);

    /* 1. ahead? Judged once, against the first such read. */
    if (g->judged_poll_id != wm->poll_id && durable_seq != 0) {
        g->judged_poll_id = wm->poll_id;
        if (durable_seq != 0 && s > durable_seq && s - durable_seq > g->cfg.ahead_slack) {
            g->st.replies_total++;
            g->st.ahead_total++;
            g->last_fresh_ns = wm->recv_mono_ns; /* it answers; it is wrong */
            g->stale_reported = false;
            g->seen_any = true;
            g->last_seen_seq = s;
            if (!g->ahead_reported) {
                g->ahead_reported = true;
                emit(g, TL_CHECK_LEDGER_AHEAD, TL_SEV_SEV1, TL_REASON_NONE, 0, s, durable_seq,
                     wm->checksum, 0);
            }
            return true;
        }
    }
    /* Not read yet: held until it is (the caller bounds it by max_age). */
    if (!g->started || s > g->fold_seq)
        return held(g, wm);
    /* The trades up to s leave the FIFO, pop_budget per step: held until
     * they are all off. */
    if (s >= g->posted_seq && !pop_to(g, s, g->cfg.pop_budget))
        return held(g, wm);

    g->st.replies_total++;
    g->ahead_reported = false;
    /* 1. rewind? */
    bool rewound = g->seen_any && s < g->last_seen_seq;
    if (rewound)
        emit(g, TL_CHECK_LEDGER_REWIND, TL_SEV_SEV1, TL_REASON_NONE, 0, s, g->last_seen_seq,
             wm->checksum, 0);
    g->seen_any = true;
    g->last_seen_seq = s;
    g->st.ledger_seq = s;
    g->st.last_recv_ns = wm->recv_mono_ns;

    bool positioned;
    if (s >= g->posted_seq) {
        TL_ASSERT(pop_to(g, s, 1)); /* done above: nothing left to pop */
        g->posted_seq = s;
        positioned = true;
    } else {
        positioned = unpop_to(g, s);
    }
    TL_ASSERT(g->posted_seq <= g->fold_seq);
    if (rewound)
        g->have_prev = false;

    const tl_win_entry *e = s != 0 ? tl_window_find(g->win, s) : NULL;
    if (s != 0 &&
        (!positioned || e == NULL || s <= g->base_seq || (g->floor_active && s < g->floor_seq))) {
        below_window(g, wm);
        lag_poll(g, wm);
        return true;
    }
    g->last_fresh_ns = wm->recv_mono_ns;
    g->stale_reported = false;
    g->stale_reason = TL_REASON_LEDGER_SILENT;
    if (s == 0) {
        /* The ledger has consumed nothing yet: nothing to compare. */
        rebase(g, wm);
        lag_poll(g, wm);
        return true;
    }
    g->st.compared_total++;
    /* 2. the checksum at ledger_seq: which log did it follow? */
    if (e->checksum != wm->checksum) {
        if (!g->fork_reported) {
            g->fork_reported = true;
            report_fork(g->log, s, wm->checksum, e->checksum);
        }
        rebase(g, wm);
        lag_poll(g, wm);
        return true;
    }
    g->fork_reported = false;
    /* 3 and 4. */
    compare_content(g, wm);
    lag_poll(g, wm);
    return true;
}

void tl_ledger_tick(tl_ledger *g, uint64_t now_mono_ns) {
    if (!g->cfg.enabled)
        return;
    if (g->last_fresh_ns == 0) {
        g->last_fresh_ns = now_mono_ns; /* the clock starts with the loop */
        return;
    }
    if (g->stale_reported || age_ns(g->last_fresh_ns, now_mono_ns) <= g->cfg.max_age_ms * NS_PER_MS)
        return;
    g->stale_reported = true;
    emit(g, TL_CHECK_LEDGER_STALE, TL_SEV_DEGRADED, g->stale_reason, 0, g->st.ledger_seq,
         g->fold_seq, 0, 0);
}

void tl_ledger_stats_get(const tl_ledger *g, uint64_t durable_seq, tl_ledger_stats *out) {
    *out = g->st;
    out->lag_records = durable_seq > g->st.ledger_seq ? durable_seq - g->st.ledger_seq : 0;
    out->fold_seq = g->fold_seq;
    out->unposted = g->fifo_count;
    out->anchored = g->anchored;
}

/* ---- one watermark against absolute figures (the on-demand reconcile) ---- */

/* tally's figures of one symbol: a binary search of the sorted list. */
static tl_ledger_figs ours_of(const tl_ledger_ours *o, uint32_t symbol) {
    uint32_t lo = 0, hi = o->symbol_count;
    while (lo < hi) { /* at most 33 rounds */
        uint32_t mid = lo + (hi - lo) / 2;
        if (o->symbols[mid].symbol < symbol)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < o->symbol_count && o->symbols[lo].symbol == symbol)
        return o->symbols[lo].f;
    return (tl_ledger_figs){0, 0, 0};
}

static bool in_reply(const tl_ledger_wm *wm, uint32_t symbol) {
    for (uint32_t i = 0; i < wm->symbol_count; i++)
        if (wm->symbols[i].symbol == symbol)
            return true;
    return false;
}

enum tl_ledger_verdict tl_ledger_judge(tl_log *log, const tl_ledger_wm *wm,
                                       const tl_ledger_ours *ours, uint32_t *symbol_facts) {
    TL_ASSERT(ours->seq == wm->ledger_seq && wm->symbol_count <= TL_LEDGER_SYMBOLS_MAX);
    TL_ASSERT(ours->symbols != NULL || ours->symbol_count == 0);
    TL_ASSERT(ours->symbol_count <= TL_LEDGER_TRACK_MAX);
    if (symbol_facts != NULL)
        *symbol_facts = 0;
    /* 2. the checksum at ledger_seq: another log, nothing else compares. */
    if (wm->checksum != ours->checksum) {
        report_fork(log, wm->ledger_seq, wm->checksum, ours->checksum);
        return TL_LEDGER_CHAIN_FORK;
    }
    /* 3 and 4, the totals. */
    enum tl_ledger_verdict total = tl_ledger_classify(figs_sub(wm->total, ours->total));
    /* ... and every symbol either side names (absent = 0). */
    sym_verdict sv[TL_LEDGER_SYMBOLS_MAX + TL_LEDGER_TRACK_MAX];
    uint32_t nv = 0;
    if (ours->symbols != NULL) {
        for (uint32_t i = 1; i < ours->symbol_count; i++)
            TL_ASSERT(ours->symbols[i - 1].symbol < ours->symbols[i].symbol);
        for (uint32_t i = 0; i < wm->symbol_count; i++) {
            const tl_ledger_symfigs *s = &wm->symbols[i];
            enum tl_ledger_verdict v = tl_ledger_classify(figs_sub(s->f, ours_of(ours, s->symbol)));
            if (v != TL_LEDGER_AGREE)
                sv[nv++] = (sym_verdict){s->symbol, (uint8_t)v, 0};
        }
        for (uint32_t i = 0; i < ours->symbol_count; i++) {
            const tl_ledger_symfigs *s = &ours->symbols[i];
            if (in_reply(wm, s->symbol))
                continue;
            enum tl_ledger_verdict v =
                tl_ledger_classify(figs_sub((tl_ledger_figs){0, 0, 0}, s->f));
            if (v != TL_LEDGER_AGREE)
                sv[nv++] = (sym_verdict){s->symbol, (uint8_t)v, 0};
        }
    }
    TL_ASSERT(nv <= TL_ARRAY_LEN(sv));
    if (symbol_facts != NULL)
        *symbol_facts = nv;
    report(log, total, sv, nv, wm->ledger_seq, 0, wm->checksum);
    return total;
}
