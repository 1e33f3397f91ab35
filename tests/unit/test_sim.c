/* test_sim.c: deterministic simulation of the whole reconciler loop.
 *
 * One process, one virtual clock. A simulated engine makes a history from a
 * seed: orders, trades, heartbeats, symbol declarations, group-committed
 * durability, ring laps, replays, engine restarts (new incarnations with
 * undurable records rewritten), and the admin socket that applies tally's
 * commands and writes their MODE_CHANGE. The loop of core/loop.c runs on it
 * through its ops, exactly as in tallyd.
 *
 * Each seed draws benign noise and up to two injected faults. Each fault
 * fixes the findings it must cause and the actions of the action table; the
 * run must raise those, raise no SEV1/SEV2 finding that no fault explains,
 * and see every executed command APPLIED. A clean seed must act never.
 *
 * A failing seed prints itself; run it alone with TL_SIM_SEED=<n>.
 * TL_SIM_SEEDS=<n> sets how many seeds run (default 1000).
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"

enum {
    MAXSEQ = 6000,
    REC_BYTES = 192,
    SEG_RECORDS = 50,
    RING_CAP = 48, /* records the sim ring holds before it laps its consumer */
    MAX_CMDS = 256,
    MAX_FAULTS = 2,
};

enum fault {
    F_NONE = 0,
    F_FORK,
    F_GAP,
    F_REORDER,
    F_CHAIN,
    F_FENCE_REGRESS,
    F_FENCE_UNANNOUNCED,
    F_CORRUPT,
    F_DUP,
    F_COUNT,
};

static const char *const fault_names[F_COUNT] = {
    "none",    "fork", "gap", "reorder", "chain", "fence_regress", "fence_unannounced",
    "corrupt", "dup",
};

static bool sim_verbose;

typedef struct rec {
    uint8_t b[REC_BYTES] __attribute__((aligned(8)));
} rec;

typedef struct cmd {
    uint8_t id[16];
    uint8_t cmd;
    uint8_t mode;
    uint32_t scope;
    uint64_t due_ns; /* when the engine applies it */
    bool applied;
} cmd;

typedef struct sim {
    uint64_t seed;
    uint64_t rng;
    uint64_t now;
    /* engine */
    uint64_t next_seq;
    uint64_t parent;
    uint64_t fence;
    uint8_t mode_global;
    uint8_t withdrawals;
    rec *wal;  /* the persisted record of each seq */
    rec *ring; /* what the ring carried for it (differs only for a fork) */
    bool *on_ring;
    bool *in_wal;
    bool *ring_seen; /* the consumer received the ring copy of this seq */
    uint64_t made_ns[MAXSEQ + 2];
    /* the WAL's order of seqs and how far it has been delivered */
    uint64_t wal_order[MAXSEQ + 2];
    uint64_t wal_n;
    uint64_t wal_next;
    uint64_t durable; /* seqs made before now - durable_delay are durable */
    uint64_t durable_delay_ns;
    uint64_t seg_index;
    uint64_t seg_records;
    tl_seg_hdr seg_hdr;
    bool seg_pending;
    uint64_t corrupt_seq;
    /* ring */
    uint64_t ring_order[MAXSEQ + 2];
    uint64_t ring_n;
    uint64_t ring_next;
    bool ring_attach_pending;
    uint64_t ring_attach_e;
    uint64_t replay_seq; /* a REPLAY to deliver next, 0 = none */
    rec replay_buf;
    rec ring_copy;
    uint64_t ring_e; /* the sim consumer's E (ring.md step 4) */
    bool reorder_hold;
    uint64_t wal_fence; /* the fence in force after the records the WAL delivered */
    uint32_t stall_steps;
    uint64_t heartbeat_ns;
    bool down;
    uint64_t up_at_ns;
    bool incarnation_pending;
    uint64_t incarnation_durable;
    /* faults */
    int nfaults;
    enum fault faults[MAX_FAULTS];
    uint64_t fault_seq[MAX_FAULTS];
    uint64_t restart_before; /* restarts happen only before this seq */
    /* the admin socket */
    cmd cmds[MAX_CMDS];
    int ncmds;
    tl_cmd_reply replies[MAX_CMDS];
    int nreplies, reply_next;
    /* what the loop reported */
    uint64_t findings[TL_CHECK_COUNT];
    uint64_t sev_findings[TL_CHECK_COUNT];
    uint64_t executed, applied, failed;
    /* distinct commands seen at the engine: (cmd, scope, mode) */
    uint32_t sent_set[32];
    int sent_n;
} sim;

static uint64_t rnd(sim *s) {
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t below(sim *s, uint64_t n) {
    return n == 0 ? 0 : rnd(s) % n;
}

static bool has_fault(sim *s, enum fault f, uint64_t seq) {
    for (int i = 0; i < s->nfaults; i++)
        if (s->faults[i] == f && s->fault_seq[i] == seq)
            return true;
    return false;
}

/* ---- the engine ---- */

static void encode(sim *s, rec *r, uint64_t seq, uint64_t parent, uint64_t fence, uint16_t kind,
                   uint32_t symbol, const void *body, uint32_t body_len) {
    tl_rec_meta m = {.parent = parent,
                     .seq = seq,
                     .fence = fence,
                     .ts_ns = s->now + 1,
                     .kind = kind,
                     .symbol = symbol};
    uint32_t len = tl_rec_encode(r->b, REC_BYTES, &m, body, body_len);
    assert_true(len > 0);
}

static void append(sim *s, uint16_t kind, uint32_t symbol, const void *body, uint32_t body_len) {
    uint64_t seq = s->next_seq;
    assert_true(seq <= MAXSEQ);
    if (has_fault(s, F_GAP, seq)) {
        seq = ++s->next_seq; /* seq is never written */
    }
    uint64_t fence = s->fence;
    if (has_fault(s, F_FENCE_UNANNOUNCED, seq))
        fence = ++s->fence;
    if (has_fault(s, F_FENCE_REGRESS, seq))
        fence = s->fence - 1;
    uint64_t parent = has_fault(s, F_CHAIN, seq) ? 0xdeadbeefull : s->parent;
    encode(s, &s->wal[seq], seq, parent, fence, kind, symbol, body, body_len);
    s->ring[seq] = s->wal[seq];
    if (has_fault(s, F_FORK, seq)) {
        /* The ring carries another record for this seq than the WAL. */
        tl_body_trade t = {.trade_id = 999999, .price = 1, .qty = 1, .taker_side = 1};
        encode(s, &s->ring[seq], seq, parent, fence, TL_KIND_TRADE, 1, &t, sizeof t);
    }
    s->parent = tl_rec_hdr_of(s->wal[seq].b)->checksum;
    s->made_ns[seq] = s->now;
    if (sim_verbose && (has_fault(s, F_FORK, seq) || has_fault(s, F_REORDER, seq)))
        printf("  t=%llu made fault seq %llu ring=%016llx wal=%016llx\n",
               (unsigned long long)s->now, (unsigned long long)seq,
               (unsigned long long)tl_rec_hdr_of(s->ring[seq].b)->checksum,
               (unsigned long long)tl_rec_hdr_of(s->wal[seq].b)->checksum);
    s->on_ring[seq] = true;
    s->in_wal[seq] = true;
    if (has_fault(s, F_REORDER, seq)) {
        s->reorder_hold = true; /* published after the next one */
    } else {
        s->ring_order[s->ring_n++] = seq;
        s->wal_order[s->wal_n++] = seq;
    }
    if (s->reorder_hold && !has_fault(s, F_REORDER, seq)) {
        /* The held seq - 1 goes out after seq, in the WAL and on the ring. */
        s->ring_order[s->ring_n++] = seq - 1;
        s->wal_order[s->wal_n++] = seq - 1;
        s->reorder_hold = false;
    }
    if (has_fault(s, F_DUP, seq))
        s->ring_order[s->ring_n++] = seq; /* published twice: a benign duplicate */
    s->next_seq = seq + 1;
}

static void make_record(sim *s) {
    uint32_t sym = 1 + (uint32_t)below(s, 3);
    if (s->reorder_hold) {
        append(s, TL_KIND_HEARTBEAT, 0, NULL, 0);
        return;
    }
    if (s->mode_global >= TL_MODE_SOFT_HALT) {
        append(s, TL_KIND_HEARTBEAT, 0, NULL, 0);
        return;
    }
    switch (below(s, 4)) {
        case 0: {
            tl_body_trade t = {.trade_id = s->next_seq,
                               .price = 100 + (int64_t)below(s, 9),
                               .qty = 1 + (int64_t)below(s, 5),
                               .taker_side = 1};
            append(s, TL_KIND_TRADE, sym, &t, sizeof t);
            break;
        }
        case 1:
            append(s, TL_KIND_HEARTBEAT, 0, NULL, 0);
            break;
        default: {
            tl_body_order_new o = {.order_id = s->next_seq,
                                   .account = 7,
                                   .price = 100,
                                   .qty = 1,
                                   .side = 1,
                                   .type = 1};
            if (s->mode_global >= TL_MODE_CANCEL_ONLY) {
                tl_body_order_cancel c = {.order_id = s->next_seq, .account = 7};
                append(s, TL_KIND_ORDER_CANCEL, sym, &c, sizeof c);
            } else {
                append(s, TL_KIND_ORDER_NEW, sym, &o, sizeof o);
            }
            break;
        }
    }
}

static void declare_symbols(sim *s) {
    static const char *const names[] = {"S1", "S2", "S3"};
    for (uint32_t i = 0; i < 3; i++) {
        tl_body_symbol b;
        memset(&b, 0, sizeof b);
        memcpy(b.name, names[i], strlen(names[i]));
        append(s, TL_KIND_SYMBOL, i + 1, &b, sizeof b);
    }
}

static void engine_apply_due(sim *s) {
    for (int i = 0; i < s->ncmds; i++) {
        cmd *c = &s->cmds[i];
        if (c->applied || c->due_ns > s->now || s->down)
            continue;
        c->applied = true;
        tl_body_mode_change b;
        memset(&b, 0, sizeof b);
        uint32_t scope = c->scope;
        if (c->cmd == TL_CMD_SET_SYMBOL_MODE) {
            if (scope == 0 && c->mode > s->mode_global)
                s->mode_global = c->mode;
            b.mode = scope == 0 ? s->mode_global : c->mode;
        } else if (c->cmd == TL_CMD_WITHDRAWALS_HALT) {
            s->withdrawals = 1;
            scope = 0;
            b.mode = s->mode_global;
        }
        b.withdrawals_halted = s->withdrawals;
        memcpy(b.command_id, c->id, 16);
        append(s, TL_KIND_MODE_CHANGE, scope, &b, sizeof b);
        tl_cmd_reply *r = &s->replies[s->nreplies++];
        memset(r, 0, sizeof *r);
        memcpy(r->id, c->id, 16);
        r->ok = true;
        r->applied_seq = s->next_seq - 1;
    }
}

/* ---- the loop's ops ---- */

static bool ring_poll(void *ctx, uint64_t last_delivered, tl_src_ring_ev *ev) {
    sim *s = ctx;
    memset(ev, 0, sizeof *ev);
    if (s->down || s->incarnation_pending)
        return false;
    if (s->stall_steps > 0)
        return false;
    if (s->ring_attach_pending) {
        /* ring.md: E = max(the record's seq, last delivered + 1); for a new
         * incarnation, E = wal_durable_seq + 1. */
        uint64_t e = s->ring_attach_e;
        if (e == 0) {
            uint64_t at = s->ring_next < s->ring_n ? s->ring_order[s->ring_next] : s->next_seq;
            e = at > last_delivered + 1 ? at : last_delivered + 1;
        }
        s->ring_attach_pending = false;
        s->ring_attach_e = 0;
        ev->type = TL_SRC_RING_ATTACHED;
        ev->expected_seq = e;
        s->ring_e = e;
        return true;
    }
    if (s->replay_seq != 0) {
        uint64_t seq = s->replay_seq;
        s->replay_seq = 0;
        memcpy(s->replay_buf.b, s->wal[seq].b, REC_BYTES);
        ev->type = TL_SRC_RING_RECORD;
        ev->rec = s->replay_buf.b;
        ev->replay = true;
        ev->len = tl_rec_hdr_of(ev->rec)->len;
        ev->expected_seq = s->ring_e;
        ev->position = seq * 128;
        return true;
    }
    if (s->ring_next >= s->ring_n)
        return false;
    if (s->ring_n - s->ring_next > RING_CAP) {
        /* The producer lapped us: count it, then re-attach at publish, a
         * hint that may lag the newest commit by up to 64 records. */
        uint64_t lag = below(s, 48);
        s->ring_next = s->ring_n - 1 - (lag < s->ring_n - 1 ? lag : 0);
        s->ring_attach_pending = true;
        ev->type = TL_SRC_RING_LAPPED;
        ev->position = s->ring_next * 128;
        return true;
    }
    uint64_t seq = s->ring_order[s->ring_next++];
    s->ring_seen[seq] = true;
    memcpy(s->ring_copy.b, s->ring[seq].b, REC_BYTES);
    ev->type = TL_SRC_RING_RECORD;
    ev->rec = s->ring_copy.b;
    ev->len = tl_rec_hdr_of(ev->rec)->len;
    ev->expected_seq = s->ring_e;
    ev->position = seq * 128;
    /* the consumer's E rule (ring.md step 4) */
    if (seq >= s->ring_e)
        s->ring_e = seq + 1;
    return true;
}

static bool wal_poll(void *ctx, tl_wal_ev *ev) {
    sim *s = ctx;
    memset(ev, 0, sizeof *ev);
    if (s->wal_next >= s->wal_n)
        return false;
    uint64_t seq = s->wal_order[s->wal_next];
    if (seq > s->durable)
        return false; /* the tailer follows wal_durable_seq */
    bool near_fault = false;
    for (int i = 0; i < s->nfaults; i++)
        if ((s->faults[i] == F_GAP || s->faults[i] == F_REORDER) && seq + 2 >= s->fault_seq[i] &&
            seq <= s->fault_seq[i] + 2)
            near_fault = true;
    if (s->seg_records == 0 || (s->seg_records >= SEG_RECORDS && !near_fault)) {
        if (!s->seg_pending) {
            memset(&s->seg_hdr, 0, sizeof s->seg_hdr);
            s->seg_hdr.segment_index = s->seg_index++;
            s->seg_hdr.first_seq = seq;
            s->seg_hdr.prev_checksum = tl_rec_hdr_of(s->wal[seq].b)->parent;
            /* the fence in force before the segment's first record */
            s->seg_hdr.fence = s->wal_next > 0 ? s->wal_fence : 5;
            if (s->wal_next > 0) {
                uint64_t prev = s->wal_order[s->wal_next - 1];
                s->seg_hdr.prev_checksum = tl_rec_hdr_of(s->wal[prev].b)->checksum;
            }
            s->seg_pending = true;
            s->seg_records = 0;
            ev->type = TL_WAL_EV_SEGMENT;
            ev->hdr = &s->seg_hdr;
            ev->name_first_seq = seq;
            ev->loc.segment = seq;
            return true;
        }
        s->seg_pending = false;
    }
    s->wal_next++;
    s->seg_records++;
    if (tl_rec_hdr_of(s->wal[seq].b)->fence > s->wal_fence)
        s->wal_fence = tl_rec_hdr_of(s->wal[seq].b)->fence;
    if (has_fault(s, F_CORRUPT, seq)) {
        ev->type = TL_WAL_EV_CORRUPT;
        ev->rule = TL_RULE_FIELDS;
        ev->reason = TL_REC_ERR_PADDING;
        ev->seq = seq;
        ev->checksum = tl_rec_hdr_of(s->wal[seq].b)->checksum;
        ev->loc.segment = s->seg_hdr.first_seq;
        ev->loc.offset = 4096 + s->seg_records * 128;
        return true;
    }
    ev->type = TL_WAL_EV_RECORD;
    tl_rec_view_native(&ev->view, s->wal[seq].b, false);
    ev->loc.segment = s->seg_hdr.first_seq;
    ev->loc.offset = 4096 + s->seg_records * 128;
    return true;
}

static tl_ctl_msg pending_ctl;
static bool ctl_pending;

static bool ctl_poll(void *ctx, tl_ctl_msg *m) {
    sim *s = ctx;
    if (s->incarnation_pending && !s->down) {
        memset(m, 0, sizeof *m);
        m->type = TL_CTL_INCARNATION;
        m->durable_seq = s->incarnation_durable;
        s->incarnation_pending = false;
        s->ring_attach_pending = true;
        s->ring_attach_e = s->incarnation_durable + 1;
        return true;
    }
    if (ctl_pending) {
        *m = pending_ctl;
        ctl_pending = false;
        return true;
    }
    return false;
}

static void engine_status(void *ctx, tl_engine_status *st) {
    sim *s = ctx;
    memset(st, 0, sizeof *st);
    st->attached = true;
    st->heartbeat_mono_ns = s->heartbeat_ns;
    st->durable_valid = true;
    st->durable_seq = s->durable;
}

static int send_cmd(void *ctx, const tl_action *a, uint64_t now_real) {
    sim *s = ctx;
    (void)now_real;
    if (s->down)
        return -1;
    for (int i = 0; i < s->ncmds; i++) {
        if (memcmp(s->cmds[i].id, a->id, 16) == 0) {
            if (s->cmds[i].applied && s->nreplies < MAX_CMDS) {
                tl_cmd_reply *r = &s->replies[s->nreplies++];
                memset(r, 0, sizeof *r);
                memcpy(r->id, a->id, 16);
                r->ok = true;
                r->duplicate = true;
            }
            return 0;
        }
    }
    assert_true(s->ncmds < MAX_CMDS);
    cmd *c = &s->cmds[s->ncmds++];
    memset(c, 0, sizeof *c);
    memcpy(c->id, a->id, 16);
    c->cmd = a->cmd;
    c->mode = a->mode;
    c->scope = a->symbol;
    c->due_ns = s->now + below(s, 2000000);
    uint32_t key = (uint32_t)a->cmd << 24 | (uint32_t)a->mode << 16 | (a->symbol & 0xffff);
    bool seen = false;
    for (int i = 0; i < s->sent_n; i++)
        seen |= s->sent_set[i] == key;
    if (!seen && s->sent_n < 32)
        s->sent_set[s->sent_n++] = key;
    return 0;
}

static bool reply_poll(void *ctx, tl_cmd_reply *r) {
    sim *s = ctx;
    if (s->reply_next >= s->nreplies)
        return false;
    *r = s->replies[s->reply_next++];
    return true;
}

static void fast_mode(void *ctx, uint32_t scope, uint8_t mode) {
    (void)ctx;
    (void)scope;
    (void)mode;
}

static void fast_withdrawals(void *ctx, bool on) {
    (void)ctx;
    (void)on;
}

static bool emit(void *ctx, const tl_out *o) {
    sim *s = ctx;
    if (o->type == TL_OUT_FINDING) {
        const tl_finding *f = &o->u.finding;
        if (sim_verbose && f->check != TL_CHECK_RING_LAPPED) {
            char buf[1024];
            tl_finding_json(f, buf, sizeof buf);
            printf("  t=%llu %s\n", (unsigned long long)s->now, buf);
        }
        s->findings[f->check]++;
        if (f->severity >= TL_SEV_SEV2)
            s->sev_findings[f->check]++;
    } else if (o->type == TL_OUT_ACTION) {
        if (o->u.action.state == TL_ACT_EXECUTED)
            s->executed++;
        if (o->u.action.state == TL_ACT_APPLIED)
            s->applied++;
        if (o->u.action.state == TL_ACT_FAILED)
            s->failed++;
    }
    return true;
}

/* ---- one run ---- */

static void sim_step(sim *s, tl_loop *l, uint64_t total, bool make, bool laps, bool restarts,
                     bool replays) {
    s->now += make ? 1000 + below(s, 200000) : 500000;
    if (!s->down)
        s->heartbeat_ns = s->now;
    if (!s->down) {
        uint64_t k = make ? below(s, 4) : 0;
        for (uint64_t i = 0; i < k && s->next_seq < total; i++)
            make_record(s);
        engine_apply_due(s);
    }
    /* group commit */
    for (uint64_t q = s->durable + 1; q < s->next_seq; q++) {
        if (s->made_ns[q] == 0 && !s->in_wal[q])
            continue; /* a gap seq */
        if (s->made_ns[q] + s->durable_delay_ns > s->now)
            break;
        if (s->reorder_hold && q == s->next_seq - 1)
            break;
        s->durable = q;
    }
    /* noise: a consumer stall long enough to be lapped */
    if (laps && s->stall_steps == 0 && below(s, 300) == 0)
        s->stall_steps = 20 + (uint32_t)below(s, 40);
    if (s->stall_steps > 0)
        s->stall_steps--;
    /* noise: a ring replay of a durable seq */
    if (replays && s->replay_seq == 0 && s->durable > 10 && below(s, 200) == 0) {
        uint64_t q = s->durable - below(s, 5);
        if (s->in_wal[q] && !has_fault(s, F_FORK, q) && s->made_ns[q] != 0 && q < s->ring_e)
            s->replay_seq = q;
    }
    /* noise: an engine restart (kill -9): undurable records are lost and
     * rewritten with other content by the next incarnation */
    if (restarts && !s->down && s->next_seq < s->restart_before && below(s, 500) == 0 &&
        s->durable > 5) {
        s->down = true;
        s->up_at_ns = s->now + 1000000ull * (1 + below(s, 400));
        uint64_t d = s->durable;
        for (uint64_t q = d + 1; q < s->next_seq; q++) {
            s->in_wal[q] = false;
            s->made_ns[q] = 0;
        }
        uint64_t w = 0;
        for (uint64_t i = 0; i < s->wal_n; i++)
            if (s->wal_order[i] <= d)
                s->wal_order[w++] = s->wal_order[i];
        s->wal_n = w;
        if (s->wal_next > w)
            s->wal_next = w;
        s->ring_n = s->ring_next; /* the rest of the old ring is never read */
        s->next_seq = d + 1;
        s->parent = tl_rec_hdr_of(s->wal[d].b)->checksum;
        s->incarnation_durable = d;
        s->replay_seq = 0;
    }
    if (s->down && s->now >= s->up_at_ns) {
        s->down = false;
        s->incarnation_pending = true;
        s->heartbeat_ns = s->now;
        if (replays && s->durable > 3)
            s->replay_seq = s->durable - 1;
    }
    tl_loop_step(l, s->now, s->now + 1795000000000000000ull);
}

static uint32_t key_of(uint8_t c, uint8_t mode, uint32_t scope) {
    return (uint32_t)c << 24 | (uint32_t)mode << 16 | (scope & 0xffff);
}

static void expect_for(sim *s, int fi, enum tl_check *checks, int *nc, uint32_t *acts, int *na,
                       bool *allow_regression) {
    enum fault f = s->faults[fi];
    switch (f) {
        case F_FORK:
            /* A fork is two copies; a consumer lapped over the ring copy
             * never saw one of them, and nothing can tell. */
            if (!s->ring_seen[s->fault_seq[fi]])
                return;
            checks[(*nc)++] = TL_CHECK_FORK;
            break;
        case F_GAP:
            checks[(*nc)++] = TL_CHECK_SEQ_GAP;
            break;
        case F_REORDER:
            /* s+1 before s: the WAL names the gap. The late s is a
             * SEQ_REGRESSION only if neither source had delivered it yet
             * (a consumer that re-attached at s saw it in order). */
            checks[(*nc)++] = TL_CHECK_SEQ_GAP;
            *allow_regression = true;
            break;
        case F_CHAIN:
            checks[(*nc)++] = TL_CHECK_CHAIN_BREAK;
            break;
        case F_FENCE_REGRESS:
            checks[(*nc)++] = TL_CHECK_FENCE_REGRESSION;
            break;
        case F_FENCE_UNANNOUNCED:
            checks[(*nc)++] = TL_CHECK_FENCE_UNANNOUNCED;
            break;
        case F_CORRUPT:
            checks[(*nc)++] = TL_CHECK_WAL_CORRUPT;
            break;
        default:
            return;
    }
    const tl_check_info *ci = tl_check_info_of(checks[*nc - 1]);
    if (ci->family == TL_FAMILY_SPLIT_BRAIN) {
        acts[(*na)++] = key_of(TL_CMD_SET_SYMBOL_MODE, TL_MODE_HARD_HALT, 0);
        acts[(*na)++] = key_of(TL_CMD_WITHDRAWALS_HALT, 0, 0);
    } else {
        acts[(*na)++] = key_of(TL_CMD_SET_SYMBOL_MODE, TL_MODE_CANCEL_ONLY, 0);
    }
}

static int run_seed(uint64_t seed, bool verbose) {
    sim *s = calloc(1, sizeof *s);
    s->wal = calloc(MAXSEQ + 2, sizeof(rec));
    s->ring = calloc(MAXSEQ + 2, sizeof(rec));
    s->on_ring = calloc(MAXSEQ + 2, 1);
    s->in_wal = calloc(MAXSEQ + 2, 1);
    s->ring_seen = calloc(MAXSEQ + 2, 1);
    s->seed = seed;
    s->rng = seed * 0x2545f4914f6cdd1dull + 1;
    s->now = 1000000000ull;
    s->next_seq = 1;
    s->fence = 5;
    s->ring_e = 1;
    s->durable_delay_ns = 1000000ull * (1 + below(s, 120)); /* well within the 200 ms grace */
    uint64_t total = 1500 + below(s, 2000);
    s->restart_before = total / 2;
    /* faults in the second half; about one seed in five is clean */
    uint64_t r = below(s, 10);
    s->nfaults = r < 2 ? 0 : r < 8 ? 1 : 2;
    for (int i = 0; i < s->nfaults; i++) {
        s->faults[i] = (enum fault)(1 + below(s, F_COUNT - 1));
        s->fault_seq[i] = total / 2 + 50 + below(s, total / 3) + (uint64_t)i * 7;
    }
    if (s->nfaults == 2 && s->fault_seq[1] - s->fault_seq[0] < 5)
        s->fault_seq[1] += 5;
    bool laps = below(s, 2) == 0;
    bool restarts = below(s, 3) == 0;
    bool replays = below(s, 2) == 0;

    tl_loop_cfg cfg;
    tl_loop_cfg_defaults(&cfg);
    cfg.window_records = 4096; /* more than the ring ever runs ahead of the WAL here */
    cfg.max_symbols = 64;
    cfg.backlog = 64;
    cfg.id_seed = seed;
    cfg.tag_seed = 42;
    void *mem = tu_aligned(64, tl_loop_mem_bytes(&cfg));
    tl_loop *l = tu_aligned(64, sizeof *l);
    tl_loop_ops ops = {
        .ctx = s,
        .ring_poll = ring_poll,
        .wal_poll = wal_poll,
        .ctl_poll = ctl_poll,
        .engine_status = engine_status,
        .send = send_cmd,
        .reply_poll = reply_poll,
        .fast_mode = fast_mode,
        .fast_withdrawals = fast_withdrawals,
        .emit = emit,
    };
    tl_loop_init(l, &cfg, &ops, mem);
    ctl_pending = false;
    s->heartbeat_ns = s->now;

    declare_symbols(s);
    uint64_t steps = 0;
    while (s->next_seq < total && steps < 200000) {
        steps++;
        sim_step(s, l, total, true, laps, restarts, replays);
    }
    /* let everything become durable, be delivered and be applied */
    for (int i = 0; i < 4000; i++)
        sim_step(s, l, total, false, false, false, false);

    /* judge */
    enum tl_check want[8];
    int nw = 0;
    uint32_t acts[8];
    int na = 0;
    bool allow_regression = false;
    for (int i = 0; i < s->nfaults; i++)
        expect_for(s, i, want, &nw, acts, &na, &allow_regression);
    int bad = 0;
    char why[512] = "";
    for (int i = 0; i < nw; i++) {
        if (s->sev_findings[want[i]] == 0) {
            snprintf(why + strlen(why), sizeof why - strlen(why), " missing %s;",
                     tl_check_name(want[i]));
            bad = 1;
        }
    }
    for (int c = 1; c < TL_CHECK_COUNT; c++) {
        if (s->sev_findings[c] == 0)
            continue;
        bool ok = c == TL_CHECK_SEQ_REGRESSION && allow_regression;
        for (int i = 0; i < nw; i++)
            ok |= want[i] == (enum tl_check)c;
        if (!ok) {
            snprintf(why + strlen(why), sizeof why - strlen(why), " unexpected %s x%llu;",
                     tl_check_name((enum tl_check)c), (unsigned long long)s->sev_findings[c]);
            bad = 1;
        }
    }
    for (int i = 0; i < na; i++) {
        bool sent = false;
        for (int k = 0; k < s->sent_n; k++) {
            sent |= s->sent_set[k] == acts[i];
            /* an in-flight HARD_HALT on * covers a CANCEL_ONLY on * */
            sent |= acts[i] == key_of(TL_CMD_SET_SYMBOL_MODE, TL_MODE_CANCEL_ONLY, 0) &&
                    s->sent_set[k] == key_of(TL_CMD_SET_SYMBOL_MODE, TL_MODE_HARD_HALT, 0);
        }
        if (!sent) {
            snprintf(why + strlen(why), sizeof why - strlen(why), " action %08x not sent;",
                     acts[i]);
            bad = 1;
        }
    }
    for (int k = 0; k < s->sent_n; k++) {
        bool wanted = false;
        for (int i = 0; i < na; i++)
            wanted |= s->sent_set[k] == acts[i];
        if (!wanted) {
            snprintf(why + strlen(why), sizeof why - strlen(why), " action %08x unexpected;",
                     s->sent_set[k]);
            bad = 1;
        }
    }
    if (s->applied != s->executed || s->failed != 0) {
        snprintf(why + strlen(why), sizeof why - strlen(why),
                 " executed %llu applied %llu failed %llu;", (unsigned long long)s->executed,
                 (unsigned long long)s->applied, (unsigned long long)s->failed);
        bad = 1;
    }
    if (bad || verbose) {
        printf("seed %llu: faults", (unsigned long long)seed);
        for (int i = 0; i < s->nfaults; i++)
            printf(" %s@%llu", fault_names[s->faults[i]], (unsigned long long)s->fault_seq[i]);
        printf(" laps=%d restarts=%d replays=%d lapped=%llu undurable_dropped=%llu%s%s\n", laps,
               restarts, replays, (unsigned long long)l->c.ring_lapped,
               (unsigned long long)l->c.ring_undurable_dropped, bad ? " FAILED:" : "", why);
    }
    free(mem);
    free(l);
    free(s->wal);
    free(s->ring);
    free(s->on_ring);
    free(s->in_wal);
    free(s->ring_seen);
    free(s);
    return bad;
}

static void test_seeds(void **state) {
    (void)state;
    const char *one = getenv("TL_SIM_SEED");
    if (one != NULL) {
        sim_verbose = true;
        assert_int_equal(run_seed(strtoull(one, NULL, 10), true), 0);
        return;
    }
    const char *n_env = getenv("TL_SIM_SEEDS");
    uint64_t n = n_env != NULL ? strtoull(n_env, NULL, 10) : 1000;
    int failures = 0;
    for (uint64_t seed = 1; seed <= n; seed++)
        failures += run_seed(seed, false);
    if (failures)
        fail_msg("%d of %llu seeds failed (rerun one with TL_SIM_SEED=<n>)", failures,
                 (unsigned long long)n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
