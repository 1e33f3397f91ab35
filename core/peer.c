/* peer.c: the TLYPEER1 datagram and the peer receiver and sender (see
 * peer.h). */
#include "peer.h"

#include <string.h>

#include "assert.h"

static const uint8_t peer_magic[8] = {'T', 'L', 'Y', 'P', 'E', 'E', 'R', '1'};

const char *tl_peer_reject_name(enum tl_peer_reject r) {
    switch (r) {
        case TL_PEER_OK:
            return "ok";
        case TL_PEER_REJ_MALFORMED:
            return "malformed";
        case TL_PEER_REJ_UNKNOWN_NODE:
            return "unknown_node";
        case TL_PEER_REJ_BAD_MAC:
            return "bad_mac";
        case TL_PEER_REJ_REPLAY:
            return "replay";
        case TL_PEER_REJ_STALE:
            return "stale";
        case TL_PEER_REJ_OUT_OF_WINDOW:
            return "out_of_window";
        default:
            return "?";
    }
}

static bool all_zero(const uint8_t *b, size_t n) {
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= b[i];
    return acc == 0;
}

enum tl_peer_reject tl_peer_parse(const uint8_t *buf, size_t len, tl_peer_msg *out) {
    if (buf == NULL || len != TL_PEER_DGRAM_BYTES)
        return TL_PEER_REJ_MALFORMED;
    /* A copy: the bytes may sit at any alignment in a receive buffer. */
    tl_peer_wire w;
    memcpy(&w, buf, sizeof w);
    if (memcmp(w.magic, peer_magic, sizeof peer_magic) != 0 || w.len != TL_PEER_DGRAM_BYTES)
        return TL_PEER_REJ_MALFORMED;
    if (w.kind != TL_PEER_HEARTBEAT && w.kind != TL_PEER_CHECKPOINT)
        return TL_PEER_REJ_MALFORMED;
    if (w.role != TL_PEER_LEADER && w.role != TL_PEER_STANDBY)
        return TL_PEER_REJ_MALFORMED;
    if (w.kind == TL_PEER_HEARTBEAT && !all_zero(w.state_hash, sizeof w.state_hash))
        return TL_PEER_REJ_MALFORMED;
    /* A CHECKPOINT names the seq of a CHECKPOINT record; seq 0 is never one. */
    if (w.kind == TL_PEER_CHECKPOINT && w.applied_seq == 0)
        return TL_PEER_REJ_MALFORMED;
    if (out != NULL) {
        out->kind = w.kind;
        out->role = w.role;
        memcpy(out->node_id, w.node_id, TL_ID_BYTES);
        out->counter = w.counter;
        out->ts_ns = w.ts_ns;
        out->applied_seq = w.applied_seq;
        out->applied_checksum = w.applied_checksum;
        out->fence = w.fence;
        memcpy(out->state_hash, w.state_hash, TL_STATE_HASH_BYTES);
    }
    return TL_PEER_OK;
}

void tl_peer_encode(const tl_peer_msg *m, tl_peer_mac_fn mac_fn, void *mac_ctx,
                    uint8_t out[TL_PEER_DGRAM_BYTES]) {
    tl_peer_wire w;
    memset(&w, 0, sizeof w);
    memcpy(w.magic, peer_magic, sizeof peer_magic);
    w.len = TL_PEER_DGRAM_BYTES;
    w.kind = m->kind;
    w.role = m->role;
    memcpy(w.node_id, m->node_id, TL_ID_BYTES);
    w.counter = m->counter;
    w.ts_ns = m->ts_ns;
    w.applied_seq = m->applied_seq;
    w.applied_checksum = m->applied_checksum;
    w.fence = m->fence;
    if (m->kind == TL_PEER_CHECKPOINT)
        memcpy(w.state_hash, m->state_hash, TL_STATE_HASH_BYTES);
    memcpy(out, &w, sizeof w);
    if (mac_fn != NULL)
        mac_fn(mac_ctx, out, TL_PEER_MAC_OFFSET, out + TL_PEER_MAC_OFFSET);
}

/* ---- configuration and memory ---- */

void tl_peer_cfg_defaults(tl_peer_cfg *c) {
    memset(c, 0, sizeof *c);
    c->beat_ms = 5;
    c->silent_ms = 100;
    c->max_skew_ms = 1000;
    c->lag_records = 100000;
    c->max_held = 64;
    c->ckpt_slots = 4096;
    c->confirmations = 3;
    c->send = true;
}

static size_t held_bytes(const tl_peer_cfg *c) {
    return (size_t)c->node_count * c->max_held * sizeof(tl_peer_msg);
}

size_t tl_peer_mem_bytes(const tl_peer_cfg *c) {
    return held_bytes(c) + (size_t)c->ckpt_slots * sizeof(tl_peer_ckpt);
}

void tl_peer_init(tl_peer *p, const tl_peer_cfg *cfg, tl_log *log, tl_window *win, void *mem) {
    TL_ASSERT(cfg->node_count <= TL_PEER_NODES_MAX);
    TL_ASSERT(cfg->max_held >= 1 && cfg->confirmations >= 1 && cfg->beat_ms >= 1);
    TL_ASSERT(cfg->ckpt_slots >= 2 && (cfg->ckpt_slots & (cfg->ckpt_slots - 1)) == 0);
    TL_ASSERT(((uintptr_t)mem & 7u) == 0);
    memset(p, 0, sizeof *p);
    p->cfg = *cfg;
    p->log = log;
    p->win = win;
    uint8_t *m = mem;
    for (uint32_t i = 0; i < cfg->node_count; i++) {
        tl_peer_node *n = &p->nodes[i];
        TL_ASSERT(!tl_id_is_zero(cfg->nodes[i].node_id));
        for (uint32_t k = 0; k < i; k++)
            TL_ASSERT(memcmp(cfg->nodes[k].node_id, cfg->nodes[i].node_id, TL_ID_BYTES) != 0);
        memcpy(n->id, cfg->nodes[i].node_id, TL_ID_BYTES);
        n->last_counter = cfg->nodes[i].last_counter;
        atomic_init(&n->counter_pub, n->last_counter);
        atomic_init(&n->ck_ver, 0);
        for (uint32_t k = 0; k < TL_PEER_REPORTED_MAX; k++) {
            atomic_init(&n->ck_seq[k], 0);
            for (uint32_t w = 0; w < TL_STATE_HASH_BYTES / 8; w++)
                atomic_init(&n->ck_hash[k][w], 0);
        }
        n->held = (tl_peer_msg *)(void *)(m + (size_t)i * cfg->max_held * sizeof(tl_peer_msg));
    }
    p->ckpts = (tl_peer_ckpt *)(void *)(m + held_bytes(cfg));
    memset(p->ckpts, 0, (size_t)cfg->ckpt_slots * sizeof(tl_peer_ckpt));
    atomic_init(&p->send_counter_pub, 0);
}

/* ---- what each node reported, for a reconcile on another thread ---- */

/* The loop, at an accepted CHECKPOINT datagram. A seqlock: the version goes
 * odd, the fields change, the version goes even again. Rare (one per
 * CHECKPOINT record) and a few relaxed stores: nothing for the hot loop. */
static void reported_put(tl_peer_node *n, const tl_peer_msg *m) {
    uint64_t v = atomic_load_explicit(&n->ck_ver, memory_order_relaxed);
    TL_ASSERT((v & 1u) == 0);
    /* Relaxed store, then a release fence: a reader that sees any field
     * below also sees the odd version (and retries). */
    atomic_store_explicit(&n->ck_ver, v + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    uint32_t k = n->ck_next % TL_PEER_REPORTED_MAX;
    atomic_store_explicit(&n->ck_seq[k], m->applied_seq, memory_order_relaxed);
    for (uint32_t w = 0; w < TL_STATE_HASH_BYTES / 8; w++) {
        uint64_t x;
        memcpy(&x, m->state_hash + 8 * w, 8);
        atomic_store_explicit(&n->ck_hash[k][w], x, memory_order_relaxed);
    }
    n->ck_next = (n->ck_next + 1) % TL_PEER_REPORTED_MAX;
    /* Release: the fields above happen before the even version. */
    atomic_store_explicit(&n->ck_ver, v + 2, memory_order_release);
}

#define REPORTED_TRIES 64u

bool tl_peer_reported_read(const tl_peer *p, uint32_t node, tl_peer_reported *out) {
    TL_ASSERT(node < p->cfg.node_count);
    tl_peer_node *n = (tl_peer_node *)&p->nodes[node]; /* atomics: loads only */
    for (uint32_t t = 0; t < REPORTED_TRIES; t++) {
        memset(out, 0, sizeof *out);
        memcpy(out->node_id, n->id, TL_ID_BYTES); /* set at init, before any thread */
        /* Acquire: the fields read below are at least as new as this version. */
        uint64_t v1 = atomic_load_explicit(&n->ck_ver, memory_order_acquire);
        if ((v1 & 1u) != 0)
            continue;
        uint64_t seq[TL_PEER_REPORTED_MAX];
        uint64_t hash[TL_PEER_REPORTED_MAX][TL_STATE_HASH_BYTES / 8];
        for (uint32_t k = 0; k < TL_PEER_REPORTED_MAX; k++) {
            seq[k] = atomic_load_explicit(&n->ck_seq[k], memory_order_relaxed);
            for (uint32_t w = 0; w < TL_STATE_HASH_BYTES / 8; w++)
                hash[k][w] = atomic_load_explicit(&n->ck_hash[k][w], memory_order_relaxed);
        }
        /* Acquire fence: the loads above complete before the version is read
         * again; an unchanged version means no write overlapped them. */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&n->ck_ver, memory_order_relaxed) != v1)
            continue;
        /* Newest first: the slot before the next one to write. The version
         * counts writes (2 per write), so it also tells which slot is next. */
        uint32_t next = (uint32_t)((v1 / 2) % TL_PEER_REPORTED_MAX);
        for (uint32_t i = 0; i < TL_PEER_REPORTED_MAX; i++) {
            uint32_t k = (next + TL_PEER_REPORTED_MAX - 1 - i) % TL_PEER_REPORTED_MAX;
            if (seq[k] == 0)
                break;
            out->seq[out->count] = seq[k];
            memcpy(out->hash[out->count], hash[k], TL_STATE_HASH_BYTES);
            out->count++;
        }
        return true;
    }
    return false;
}

/* ---- the local history: CHECKPOINT hashes ---- */

const uint8_t *tl_peer_ckpt_find(const tl_peer *p, uint64_t seq) {
    if (seq == 0)
        return NULL;
    const tl_peer_ckpt *c = &p->ckpts[seq & (p->cfg.ckpt_slots - 1)];
    return c->seq == seq ? c->hash : NULL;
}

static void pending_push(tl_peer *p, uint64_t seq) {
    if (p->pending_count == TL_PEER_PENDING_MAX) {
        /* Bounded: the oldest waiting CHECKPOINT gives way. */
        p->pending_head = (p->pending_head + 1) % TL_PEER_PENDING_MAX;
        p->pending_count--;
        p->c.pending_dropped++;
    }
    p->pending[(p->pending_head + p->pending_count) % TL_PEER_PENDING_MAX] = seq;
    p->pending_count++;
}

void tl_peer_on_record(tl_peer *p, const tl_rec_view *v) {
    if (v->seq == 0)
        return;
    if (p->lo_seq == 0 || v->seq < p->lo_seq)
        p->lo_seq = v->seq;
    if (v->kind != TL_KIND_CHECKPOINT || v->state_hash == NULL || v->n_events != 0)
        return;
    tl_peer_ckpt *c = &p->ckpts[v->seq & (p->cfg.ckpt_slots - 1)];
    if (c->seq > v->seq)
        return; /* a newer CHECKPOINT holds the slot: keep it */
    if (c->seq != 0 && c->seq != v->seq)
        p->c.ckpt_evicted++;
    c->seq = v->seq;
    memcpy(c->hash, v->state_hash, TL_STATE_HASH_BYTES);
    pending_push(p, v->seq);
}

void tl_peer_drop_above(tl_peer *p, uint64_t durable_seq) {
    for (uint32_t i = 0; i < p->cfg.ckpt_slots; i++) {
        if (p->ckpts[i].seq > durable_seq)
            memset(&p->ckpts[i], 0, sizeof p->ckpts[i]);
    }
    uint32_t w = 0;
    for (uint32_t k = 0; k < p->pending_count; k++) {
        uint64_t s = p->pending[(p->pending_head + k) % TL_PEER_PENDING_MAX];
        if (s <= durable_seq)
            p->pending[(p->pending_head + w++) % TL_PEER_PENDING_MAX] = s;
    }
    p->pending_count = w;
}

/* ---- findings ---- */

static void emit(tl_peer *p, enum tl_check check, const uint8_t node[TL_ID_BYTES], uint64_t seq,
                 uint64_t seq2) {
    tl_finding f;
    tl_finding_init(&f, check);
    f.source = TL_SOURCE_PEER;
    f.seq = seq;
    f.seq2 = seq2;
    memcpy(f.node, node, TL_ID_BYTES);
    tl_log_emit(p->log, &f);
}

static void emit_cmp(tl_peer *p, enum tl_check check, const tl_peer_node *n, const tl_peer_msg *m,
                     const tl_win_entry *e) {
    tl_finding f;
    tl_finding_init(&f, check);
    f.source = TL_SOURCE_PEER;
    f.source2 = TL_SOURCE_WAL; /* our durable history */
    f.seq = m->applied_seq;
    f.seq2 = m->applied_seq;
    f.checksum = e->checksum;
    f.checksum2 = m->applied_checksum;
    f.fence = e->fence;
    f.fence2 = m->fence;
    memcpy(f.node, n->id, TL_ID_BYTES);
    tl_log_emit(p->log, &f);
}

/* ---- receiving ---- */

static bool older_than_window(const tl_peer *p, uint64_t seq) {
    return tl_window_evicted(p->win, seq) || (p->lo_seq != 0 && seq < p->lo_seq);
}

/* Leadership first, on arrival (peer.md rule 3; behavior.md DUAL_LEADER,
 * STALE_PEER_LEADER). */
static void judge_leadership(tl_peer *p, tl_peer_node *n, const tl_peer_msg *m,
                             const tl_peer_local *loc) {
    if (m->role != TL_PEER_LEADER) {
        n->dual_reported = false;
        n->stale_confirm = 0;
        n->stale_reported = false;
        return;
    }
    if (loc->is_leader && m->fence >= loc->fence) {
        n->stale_confirm = 0;
        n->stale_reported = false;
        /* One fact per (node, fence): it claims LEADER at that fence. */
        if (!n->dual_reported || n->dual_fence != m->fence) {
            n->dual_reported = true;
            n->dual_fence = m->fence;
            tl_finding f;
            tl_finding_init(&f, TL_CHECK_DUAL_LEADER);
            f.source = TL_SOURCE_PEER;
            f.seq = m->applied_seq;
            f.seq2 = loc->durable_seq;
            f.checksum2 = m->applied_checksum;
            f.fence = loc->fence;
            f.fence2 = m->fence;
            memcpy(f.node, n->id, TL_ID_BYTES);
            tl_log_emit(p->log, &f);
        }
        return;
    }
    n->dual_reported = false;
    if (m->fence < loc->fence) {
        /* SEV2: confirmations in a row before it is raised, once per episode. */
        n->stale_confirm++;
        if (n->stale_confirm >= p->cfg.confirmations && !n->stale_reported) {
            n->stale_reported = true;
            tl_finding f;
            tl_finding_init(&f, TL_CHECK_STALE_PEER_LEADER);
            f.source = TL_SOURCE_PEER;
            f.seq = m->applied_seq;
            f.seq2 = loc->durable_seq;
            f.fence = loc->fence;
            f.fence2 = m->fence;
            memcpy(f.node, n->id, TL_ID_BYTES);
            tl_log_emit(p->log, &f);
        }
        return;
    }
    n->stale_confirm = 0;
    n->stale_reported = false;
}

/* The leader's applied seq, as far as we know: ours if we lead, else the
 * newest claim of a live peer leader with the highest fence. */
static bool leader_seq(const tl_peer *p, const tl_peer_local *loc, uint64_t *seq) {
    if (loc->is_leader) {
        *seq = loc->durable_seq;
        return true;
    }
    bool have = false;
    uint64_t best_fence = 0;
    for (uint32_t i = 0; i < p->cfg.node_count; i++) {
        const tl_peer_node *n = &p->nodes[i];
        if (!n->heard || n->silent || n->role != TL_PEER_LEADER)
            continue;
        if (!have || n->fence > best_fence) {
            have = true;
            best_fence = n->fence;
            *seq = n->applied_seq;
        }
    }
    return have;
}

/* STANDBY_LAG: judged at each HEARTBEAT (a beat), confirmations in a row. */
static void judge_lag(tl_peer *p, tl_peer_node *n, const tl_peer_msg *m, const tl_peer_local *loc) {
    if (m->kind != TL_PEER_HEARTBEAT)
        return;
    uint64_t lag = p->cfg.lag_records;
    if (m->role == TL_PEER_STANDBY) {
        uint64_t lead = 0;
        bool lagging =
            leader_seq(p, loc, &lead) && lead > m->applied_seq && lead - m->applied_seq > lag;
        if (!lagging) {
            n->lag_confirm = 0;
            n->lag_reported = false;
            return;
        }
        n->lag_confirm++;
        if (n->lag_confirm >= p->cfg.confirmations && !n->lag_reported) {
            n->lag_reported = true;
            emit(p, TL_CHECK_STANDBY_LAG, n->id, m->applied_seq, lead);
        }
        return;
    }
    /* A leader's beat: are we, a standby, trailing it? */
    if (loc->is_leader || !loc->leader_known || loc->self_id == NULL || loc->stale)
        return;
    bool lagging = m->applied_seq > loc->durable_seq && m->applied_seq - loc->durable_seq > lag;
    if (!lagging) {
        p->self_lag_confirm = 0;
        p->self_lag_reported = false;
        return;
    }
    p->self_lag_confirm++;
    if (p->self_lag_confirm >= p->cfg.confirmations && !p->self_lag_reported) {
        p->self_lag_reported = true;
        emit(p, TL_CHECK_STANDBY_LAG, loc->self_id, loc->durable_seq, m->applied_seq);
    }
}

/* Rule 3's comparison of one accepted datagram with our record at its
 * applied_seq, which the window holds and which is durable. */
static void compare(tl_peer *p, tl_peer_node *n, const tl_peer_msg *m, const tl_win_entry *e) {
    TL_ASSERT(e->seq == m->applied_seq);
    if (m->fence < e->fence) {
        /* Fences first: the sender is on the losing side of a failover we
         * recorded. Its leadership claim was judged on arrival. */
        p->c.fenced_out++;
        return;
    }
    bool hash_differs = false;
    if (m->kind == TL_PEER_CHECKPOINT && e->kind == TL_KIND_CHECKPOINT) {
        const uint8_t *h = tl_peer_ckpt_find(p, m->applied_seq);
        hash_differs = h != NULL && memcmp(h, m->state_hash, TL_STATE_HASH_BYTES) != 0;
    }
    bool sum_differs = e->checksum != m->applied_checksum;
    if (!hash_differs && !sum_differs) {
        p->c.compared++;
        return;
    }
    if (n->diverged_seq != 0 && m->applied_seq >= n->diverged_seq) {
        p->c.echo++; /* the history that diverged at diverged_seq, again */
        return;
    }
    n->diverged_seq = m->applied_seq;
    /* At a CHECKPOINT whose state hashes disagree the engines' states
     * diverged: that names the fact (the record bytes, and so the checksum,
     * differ with it). Otherwise the logs forked. */
    emit_cmp(p, hash_differs ? TL_CHECK_STATE_HASH_DIVERGENCE : TL_CHECK_PEER_LOG_FORK, n, m, e);
}

static void hold(tl_peer *p, tl_peer_node *n, const tl_peer_msg *m) {
    uint32_t cap = p->cfg.max_held;
    if (n->held_count == cap) {
        n->held_head = (n->held_head + 1) % cap;
        n->held_count--;
        p->held_total--;
        p->c.held_dropped++;
    }
    n->held[(n->held_head + n->held_count) % cap] = *m;
    n->held_count++;
    p->held_total++;
    p->c.held++;
}

enum judge { J_COMPARE, J_HOLD, J_DROP };

/* Can the comparison of seq happen now? */
static enum judge when(const tl_peer *p, const tl_peer_local *loc, uint64_t seq,
                       const tl_win_entry **e) {
    *e = NULL;
    if (seq > loc->durable_seq)
        return J_HOLD;
    if (older_than_window(p, seq))
        return J_DROP;
    tl_win_entry *w = tl_window_find(p->win, seq);
    if (w != NULL) {
        *e = w;
        return J_COMPARE;
    }
    /* Durable and read in order, yet not in the window: a seq our own log
     * lacks (its SEQ_GAP is the local finding). Nothing to compare. */
    return J_DROP;
}

/* Held datagrams of one node whose seq the local history has reached, in
 * the order they arrived. */
static uint32_t release_node(tl_peer *p, tl_peer_node *n, const tl_peer_local *loc) {
    uint32_t work = 0;
    uint32_t cap = p->cfg.max_held;
    uint32_t w = 0;
    for (uint32_t k = 0; k < n->held_count; k++) {
        uint32_t src = (n->held_head + k) % cap;
        const tl_win_entry *e;
        enum judge j = when(p, loc, n->held[src].applied_seq, &e);
        if (j == J_HOLD) {
            /* Kept, in FIFO order; w <= k, so dst never passes src. */
            uint32_t dst = (n->held_head + w) % cap;
            if (dst != src)
                n->held[dst] = n->held[src];
            w++;
            continue;
        }
        if (j == J_COMPARE)
            compare(p, n, &n->held[src], e);
        else
            p->c.uncompared++;
        work++;
    }
    p->held_total -= n->held_count - w;
    n->held_count = w;
    return work;
}

static uint32_t release_held(tl_peer *p, const tl_peer_local *loc) {
    uint32_t work = 0;
    for (uint32_t i = 0; i < p->cfg.node_count; i++)
        if (p->nodes[i].held_count > 0)
            work += release_node(p, &p->nodes[i], loc);
    return work;
}

void tl_peer_receive(tl_peer *p, const tl_peer_local *loc, const tl_peer_ev *ev) {
    switch (ev->type) {
        case TL_PEER_EV_REJECT: {
            unsigned r = ev->reason;
            if (r == TL_PEER_OK || r >= TL_PEER_REJ_COUNT)
                r = TL_PEER_REJ_MALFORMED;
            p->c.rejected[r]++;
            return;
        }
        case TL_PEER_EV_OWN:
            p->c.own_ignored++;
            return;
        case TL_PEER_EV_DGRAM:
            break;
        default:
            return;
    }
    const tl_peer_msg *m = &ev->msg;
    if (loc->self_id != NULL && memcmp(m->node_id, loc->self_id, TL_ID_BYTES) == 0) {
        p->c.own_ignored++;
        return;
    }
    if (ev->node >= p->cfg.node_count ||
        memcmp(p->nodes[ev->node].id, m->node_id, TL_ID_BYTES) != 0) {
        p->c.rejected[TL_PEER_REJ_UNKNOWN_NODE]++;
        return;
    }
    tl_peer_node *n = &p->nodes[ev->node];
    /* Rule 2: freshness. Nothing changes before the datagram passes. */
    if (m->counter <= n->last_counter) {
        p->c.rejected[TL_PEER_REJ_REPLAY]++;
        return;
    }
    uint64_t skew = p->cfg.max_skew_ms * 1000000ull;
    uint64_t dist =
        m->ts_ns > loc->now_real_ns ? m->ts_ns - loc->now_real_ns : loc->now_real_ns - m->ts_ns;
    if (dist > skew) {
        p->c.rejected[TL_PEER_REJ_STALE]++;
        return;
    }
    if (m->applied_seq != 0 && older_than_window(p, m->applied_seq)) {
        p->c.rejected[TL_PEER_REJ_OUT_OF_WINDOW]++;
        return;
    }
    /* Accepted. */
    n->last_counter = m->counter;
    /* release: the control thread persists it; a whole value is enough. */
    atomic_store_explicit(&n->counter_pub, m->counter, memory_order_release);
    n->heard = true;
    n->silent = false;
    n->last_valid_ns = loc->now_ns;
    n->role = m->role;
    n->applied_seq = m->applied_seq;
    n->fence = m->fence;
    p->c.accepted++;
    if (m->kind == TL_PEER_CHECKPOINT)
        reported_put(n, m);

    judge_leadership(p, n, m, loc);
    judge_lag(p, n, m, loc);
    if (m->applied_seq == 0)
        return; /* nothing durable at the sender yet */
    /* A node's datagrams are compared in the order they came: the ones it
     * holds go first (a CHECKPOINT held for its seq names the fact, not the
     * HEARTBEAT about the same seq that came after it). */
    if (n->held_count > 0)
        (void)release_node(p, n, loc);
    const tl_win_entry *e;
    switch (when(p, loc, m->applied_seq, &e)) {
        case J_COMPARE:
            compare(p, n, m, e);
            break;
        case J_HOLD:
            hold(p, n, m);
            break;
        default:
            p->c.uncompared++;
            break;
    }
}

static uint64_t next_counter(tl_peer *p, uint64_t now_real_ns) {
    uint64_t c = p->send_counter + 1;
    if (c < p->cfg.send_counter_floor)
        c = p->cfg.send_counter_floor;
    if (c < now_real_ns)
        c = now_real_ns;
    p->send_counter = c;
    /* release: read by the control thread, which persists it. */
    atomic_store_explicit(&p->send_counter_pub, c, memory_order_release);
    return c;
}

static int send_one(tl_peer *p, const tl_peer_local *loc, uint16_t kind, const tl_win_entry *e,
                    const uint8_t *hash, tl_peer_send_fn send_fn, void *send_ctx) {
    tl_peer_msg m;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    m.role = loc->is_leader ? TL_PEER_LEADER : TL_PEER_STANDBY;
    memcpy(m.node_id, loc->self_id, TL_ID_BYTES);
    m.counter = next_counter(p, loc->now_real_ns);
    m.ts_ns = loc->now_real_ns;
    m.applied_seq = e->seq;
    m.applied_checksum = e->checksum;
    m.fence = loc->fence;
    if (hash != NULL)
        memcpy(m.state_hash, hash, TL_STATE_HASH_BYTES);
    int rc = send_fn(send_ctx, &m);
    if (rc != 0)
        p->c.send_errors++;
    else if (kind == TL_PEER_CHECKPOINT)
        p->c.sent_checkpoint++;
    else
        p->c.sent_heartbeat++;
    return rc;
}

static uint32_t send_due(tl_peer *p, const tl_peer_local *loc, tl_peer_send_fn send_fn,
                         void *send_ctx) {
    /* peer.md rule 5: nothing while the engine's heartbeat is stale (its
     * incarnation ended) or its leader is unknown; nothing before anything
     * is durable. */
    if (!loc->attached || loc->stale || !loc->leader_known || loc->self_id == NULL ||
        loc->durable_seq == 0)
        return 0;
    uint32_t work = 0;
    /* A CHECKPOINT at once for each CHECKPOINT record once it is durable:
     * bounded by the FIFO's size. */
    while (p->pending_count > 0) {
        uint64_t seq = p->pending[p->pending_head];
        if (seq > loc->durable_seq)
            break;
        p->pending_head = (p->pending_head + 1) % TL_PEER_PENDING_MAX;
        p->pending_count--;
        const tl_win_entry *e = tl_window_find(p->win, seq);
        const uint8_t *h = tl_peer_ckpt_find(p, seq);
        if (e == NULL || e->kind != TL_KIND_CHECKPOINT || h == NULL)
            continue; /* left the window already: nothing true to say about it */
        (void)send_one(p, loc, TL_PEER_CHECKPOINT, e, h, send_fn, send_ctx);
        work++;
    }
    if (loc->now_ns >= p->next_beat_ns) {
        const tl_win_entry *e = tl_window_find(p->win, loc->durable_seq);
        if (e != NULL) {
            (void)send_one(p, loc, TL_PEER_HEARTBEAT, e, NULL, send_fn, send_ctx);
            p->next_beat_ns = loc->now_ns + p->cfg.beat_ms * 1000000ull;
            work++;
        }
    }
    return work;
}

uint32_t tl_peer_tick(tl_peer *p, const tl_peer_local *loc, tl_peer_send_fn send_fn,
                      void *send_ctx) {
    if (p->cfg.node_count == 0)
        return 0;
    if (!p->started) {
        /* The silence clock of every node starts with the loop. */
        p->started = true;
        for (uint32_t i = 0; i < p->cfg.node_count; i++)
            p->nodes[i].last_valid_ns = loc->now_ns;
        p->next_beat_ns = loc->now_ns;
    }
    uint32_t work = 0;
    if (p->held_total > 0 && loc->durable_seq != p->held_scan_seq) {
        p->held_scan_seq = loc->durable_seq;
        work += release_held(p, loc);
    }
    uint64_t silent = p->cfg.silent_ms * 1000000ull;
    for (uint32_t i = 0; i < p->cfg.node_count; i++) {
        tl_peer_node *n = &p->nodes[i];
        if (!n->silent && loc->now_ns - n->last_valid_ns > silent) {
            n->silent = true;
            emit(p, TL_CHECK_PEER_SILENT, n->id, n->applied_seq, loc->durable_seq);
        }
    }
    if (p->cfg.send && send_fn != NULL)
        work += send_due(p, loc, send_fn, send_ctx);
    return work;
}
