/* lease.c: the lease checks of ledger.md (see lease.h). */
#include "lease.h"

#include <string.h>

#include "assert.h"

void tl_lease_cfg_defaults(tl_lease_cfg *c) {
    memset(c, 0, sizeof *c);
    c->confirmations = 3;
    c->grace_ms = 200;
    c->stale_ms = 1000;
}

void tl_lease_init(tl_lease *g, const tl_lease_cfg *cfg, tl_log *log) {
    TL_ASSERT(log != NULL);
    memset(g, 0, sizeof *g);
    g->cfg = *cfg;
    if (g->cfg.confirmations == 0)
        g->cfg.confirmations = 1;
    g->log = log;
}

static bool holder_is(const tl_lease_reading *r, const uint8_t *self_id) {
    return self_id != NULL && r->present && memcmp(r->holder, self_id, TL_ID_BYTES) == 0;
}

static void emit(tl_lease *g, enum tl_check check, uint16_t reason, uint64_t seq, uint64_t fence,
                 uint64_t checksum) {
    tl_finding f;
    tl_finding_init(&f, check);
    f.source = TL_SOURCE_LEASE;
    f.reason = reason;
    f.seq = seq;
    f.fence = fence;
    f.checksum = checksum;
    if (g->have) {
        f.fence2 = g->cur.mod_revision; /* R: the authority's fencing token */
        f.seq2 = g->cur.revision;       /* H: the revision the reading saw */
        memcpy(f.node, g->cur.holder, TL_ID_BYTES);
    }
    tl_log_emit(g->log, &f);
}

/* UNKNOWN_LEASE against fence F: the key is present with R < F, and the
 * reading saw the store at or past F (H >= F), so the put that made F
 * cannot be still to come. */
static void judge_unknown(tl_lease *g, uint64_t fence, uint64_t seq, uint64_t checksum) {
    if (!g->have || fence == 0 || !g->cur.present)
        return;
    if (g->cur.revision < fence) {
        g->st.inconclusive_total++; /* read again first */
        return;
    }
    if (g->cur.mod_revision >= fence)
        return;
    if (g->unknown_reported)
        return;
    g->unknown_reported = true;
    emit(g, TL_CHECK_UNKNOWN_LEASE, TL_REASON_LEASE_BEHIND, seq, fence, checksum);
}

void tl_lease_take(tl_lease *g, const tl_lease_reading *r, const tl_lease_local *loc,
                   uint64_t now_mono_ns) {
    if (!g->cfg.enabled)
        return;
    g->st.readings_total++;
    g->last_any_ns = now_mono_ns;
    if (r->fail != TL_LEASE_FAIL_NONE) {
        if (r->fail == TL_LEASE_FAIL_REJECTED)
            g->st.rejected_total++;
        else
            g->st.failed_total++;
        g->st.fails_in_row++;
        if (g->st.fails_in_row >= g->cfg.confirmations && !g->st.unreachable) {
            g->st.unreachable = 1;
            tl_finding f;
            tl_finding_init(&f, TL_CHECK_LEASE_UNREACHABLE);
            f.source = TL_SOURCE_LEASE;
            f.reason = r->fail == TL_LEASE_FAIL_REJECTED ? TL_REASON_LEASE_REJECTED
                                                         : TL_REASON_LEASE_FAILED;
            f.seq2 = g->st.fails_in_row;
            tl_log_emit(g->log, &f);
        }
        return;
    }
    /* Only the newest reading counts: the queue keeps the poller's order,
     * so an older one can only be a bug upstream; it is ignored. */
    if (g->have && r->poll_id <= g->cur.poll_id)
        return;
    g->st.ok_total++;
    g->st.fails_in_row = 0;
    g->st.unreachable = 0;
    g->cur = *r;
    g->have = true;
    if (holder_is(r, loc->self_id))
        g->lost_since_real_ns = 0;
    else if (g->lost_since_real_ns == 0)
        g->lost_since_real_ns = r->recv_real_ns;
    g->st.last_ok_ns = r->recv_mono_ns;
    /* Episodes end when the authority agrees again. */
    if (holder_is(r, loc->self_id))
        g->stale_reported = false;
    if (r->present && loc->fence != 0 && r->revision >= loc->fence && r->mod_revision >= loc->fence)
        g->unknown_reported = false;
    judge_unknown(g, loc->fence, g->last_seq, g->last_checksum);
}

void tl_lease_record(tl_lease *g, const tl_rec_view *v, const tl_lease_local *loc) {
    if (!g->cfg.enabled)
        return;
    g->last_seq = v->seq;
    g->last_checksum = v->checksum;
    if (!g->have)
        return;
    const tl_lease_reading *r = &g->cur;
    judge_unknown(g, v->fence, v->seq, v->checksum);
    /* STALE_LEADER: an engine acting as leader whose authority says it is
     * not, judged only on records written after the reading (+ grace): a
     * record from before it, read late, proves nothing. */
    if (!loc->is_leader || loc->self_id == NULL || g->stale_reported || holder_is(r, loc->self_id))
        return;
    uint64_t since = g->lost_since_real_ns != 0 ? g->lost_since_real_ns : r->recv_real_ns;
    if (v->ts_ns <= since + g->cfg.grace_ms * 1000000ull)
        return;
    if (r->revision < v->fence) {
        /* The reading predates the put that made this fence: read again. */
        g->st.inconclusive_total++;
        return;
    }
    uint16_t reason;
    if (!r->present)
        reason = TL_REASON_LEASE_ABSENT; /* nobody holds it: any fence is stale */
    else if (!holder_is(r, loc->self_id) && v->fence < r->mod_revision)
        reason = TL_REASON_LEASE_OTHER;
    else
        return;
    g->stale_reported = true;
    emit(g, TL_CHECK_STALE_LEADER, reason, v->seq, v->fence, v->checksum);
}

void tl_lease_tick(tl_lease *g, uint64_t now_mono_ns) {
    if (!g->cfg.enabled)
        return;
    if (g->last_any_ns == 0) {
        g->last_any_ns = now_mono_ns; /* the clock of silence starts at the first step */
        return;
    }
    if (g->st.unreachable || now_mono_ns - g->last_any_ns <= g->cfg.stale_ms * 1000000ull)
        return;
    g->st.unreachable = 1;
    tl_finding f;
    tl_finding_init(&f, TL_CHECK_LEASE_UNREACHABLE);
    f.source = TL_SOURCE_LEASE;
    f.reason = TL_REASON_LEASE_SILENT;
    tl_log_emit(g->log, &f);
}

void tl_lease_stats_get(const tl_lease *g, const uint8_t *self_id, tl_lease_stats *out) {
    *out = g->st;
    if (g->have) {
        out->revision = g->cur.revision;
        out->mod_revision = g->cur.mod_revision;
        out->present = g->cur.present;
        out->holder_is_local = holder_is(&g->cur, self_id);
    }
}
