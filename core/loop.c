/* loop.c: the reconciler loop (see loop.h). */
#include "loop.h"

#include <string.h>

#include "assert.h"

/* Symbol ids with a fast-path slot (ring.md): 1..3583. */
#define FAST_SYMBOL_SLOTS 3584u

void tl_loop_cfg_defaults(tl_loop_cfg *c) {
    memset(c, 0, sizeof *c);
    c->dialect = TL_DIALECT_TLYWAL1;
    c->window_records = 1u << 20;
    c->max_symbols = 4096;
    c->max_inflight = 64;
    c->backlog = 4096;
    c->confirmations = 3;
    c->durable_grace_ms = 200;
    c->torn_grace_ms = 1000;
    c->lag_halt_ms = 2000;
    c->engine_stale_ms = 250;
    c->incident_gap_ms = 300000;
    c->apply_timeout_ms = 1000;
    c->retry_max_ms = 250;
    c->bundle_margin = 1000;
    c->budget = 256;
    c->ring = true;
    c->xwal1_symbols = TL_XWAL1_SYMBOLS_DEFAULT;
    c->xwal1_window_records = TL_XWAL1_WINDOW_RECORDS_DEFAULT;
    c->xwal1_max_sends = 8;
    tl_policy_cfg_defaults(&c->policy);
    tl_peer_cfg_defaults(&c->peer);
    tl_ledger_cfg_defaults(&c->ledger);
    tl_lease_cfg_defaults(&c->lease);
}

static size_t align64(size_t n) {
    return (n + 63u) & ~(size_t)63u;
}

/* The shared seq-keyed window. An xwal1 log's records go to the per-symbol
 * windows instead (tl_xwal1_checks), so this one only serves the checks
 * that key on a global seq (peers, ledger), which an xwal1 log never feeds:
 * it is kept minimal. */
static uint64_t main_window(const tl_loop_cfg *c) {
    return c->dialect == TL_DIALECT_XWAL1 && c->window_records > 1024 ? 1024 : c->window_records;
}

static size_t xwal1_bytes(const tl_loop_cfg *c) {
    if (c->dialect != TL_DIALECT_XWAL1)
        return 0;
    size_t n = tl_xwal1_checks_bytes(c->xwal1_symbols, c->xwal1_window_records);
    TL_ASSERT(n != 0); /* xwal1_symbols 1..4096, xwal1_window_records a power of two */
    return align64(n);
}

size_t tl_loop_mem_bytes(const tl_loop_cfg *c) {
    return align64(tl_window_bytes(main_window(c))) + align64(tl_symtab_bytes(c->max_symbols)) +
           align64((size_t)c->max_inflight * sizeof(tl_action)) +
           align64((size_t)c->backlog * sizeof(tl_out)) + align64(tl_peer_mem_bytes(&c->peer)) +
           align64(tl_ledger_mem_bytes(&c->ledger)) + xwal1_bytes(c);
}

static void on_finding(void *ctx, const tl_finding *f);
static void xwal1_sink(void *ctx, const tl_finding *f);

void tl_loop_init(tl_loop *l, const tl_loop_cfg *cfg, const tl_loop_ops *ops, void *mem) {
    TL_ASSERT(((uintptr_t)mem & 63u) == 0);
    TL_ASSERT(cfg->max_inflight >= 2 && cfg->backlog >= 2 && cfg->budget >= 1);
    TL_ASSERT(ops->wal_poll != NULL && ops->ctl_poll != NULL && ops->send != NULL &&
              ops->reply_poll != NULL && ops->fast_mode != NULL && ops->fast_withdrawals != NULL &&
              ops->emit != NULL);
    memset(l, 0, sizeof *l);
    l->cfg = *cfg;
    l->ops = *ops;
    uint8_t *p = mem;
    void *win = p;
    p += align64(tl_window_bytes(main_window(cfg)));
    void *syms = p;
    p += align64(tl_symtab_bytes(cfg->max_symbols));
    l->inflight = (tl_action *)p;
    p += align64((size_t)cfg->max_inflight * sizeof(tl_action));
    l->backlog = (tl_out *)p;
    p += align64((size_t)cfg->backlog * sizeof(tl_out));
    tl_log_init(&l->log, (enum tl_dialect)cfg->dialect, win, main_window(cfg),
                (tl_sink){on_finding, l});
    tl_stream_init(&l->wal, &l->log, TL_SOURCE_WAL);
    tl_stream_init(&l->ring, &l->log, TL_SOURCE_RING);
    tl_symtab_init(&l->syms, syms, cfg->max_symbols);
    tl_policy_init(&l->policy, &cfg->policy);
    l->rng = cfg->id_seed;
    atomic_init(&l->beat_ns, 0);
    tl_peer_cfg pc = cfg->peer;
    pc.confirmations = cfg->confirmations;
    tl_peer_init(&l->peer, &pc, &l->log, &l->log.win, p);
    tl_ledger_cfg lc = cfg->ledger;
    lc.confirmations = cfg->confirmations;
    tl_ledger_init(&l->ledger, &lc, &l->log, p + align64(tl_peer_mem_bytes(&cfg->peer)));
    if (cfg->dialect == TL_DIALECT_XWAL1) {
        uint8_t *x =
            p + align64(tl_peer_mem_bytes(&cfg->peer)) + align64(tl_ledger_mem_bytes(&cfg->ledger));
        bool ok = tl_xwal1_checks_init(&l->xwal1, cfg->xwal1_symbols, cfg->xwal1_window_records, x,
                                       xwal1_bytes(cfg), (tl_sink){xwal1_sink, l});
        TL_ASSERT(ok);
        tl_xwal1_checks_prepare(&l->xwal1); /* every window's pages touched now */
    }
    tl_lease_init(&l->lease, &cfg->lease, &l->log);
    tl_decided_init(&l->decided);
}

void tl_loop_decided_add(tl_loop *l, const tl_decided_key *k) {
    TL_ASSERT(l->c.iterations == 0); /* before the hot thread owns the loop */
    tl_decided_add(&l->decided, k);
}

uint64_t tl_loop_last_delivered(const tl_loop *l) {
    if (l->cfg.dialect == TL_DIALECT_XWAL1)
        return tl_xwal1_checks_read_seq(&l->xwal1); /* per symbol: the highest */
    uint64_t ld = l->durable_seq;
    if (l->wal.anchored && l->wal.expected_seq - 1 > ld)
        ld = l->wal.expected_seq - 1;
    if (l->ring.anchored && l->ring.expected_seq - 1 > ld)
        ld = l->ring.expected_seq - 1;
    return ld;
}

uint64_t tl_loop_fence(const tl_loop *l) {
    if (l->cfg.dialect == TL_DIALECT_XWAL1)
        return tl_xwal1_checks_fence(&l->xwal1);
    uint64_t f = l->wal.fence_known ? l->wal.fence : 0;
    if (l->ring.fence_known && l->ring.fence > f)
        f = l->ring.fence;
    return f;
}

void tl_loop_stats_snapshot(const tl_loop *l, tl_loop_stats *o) {
    memset(o, 0, sizeof *o);
    o->c = l->c;
    o->now_ns = l->now_ns;
    o->dup_total = l->log.dup_total;
    o->replay_old_total = l->log.replay_old_total;
    o->uncompared_total = l->log.uncompared_total;
    o->engine_seq = tl_loop_last_delivered(l);
    o->wal_seq = l->wal.anchored ? l->wal.expected_seq - 1 : 0;
    if (l->cfg.dialect == TL_DIALECT_XWAL1) {
        uint64_t dup, uncompared;
        tl_xwal1_checks_totals(&l->xwal1, &dup, &uncompared);
        o->dup_total += dup;
        o->uncompared_total += uncompared;
        o->wal_seq = o->engine_seq;
    }
    o->durable_seq = l->durable_seq;
    o->fence = tl_loop_fence(l);
    o->heartbeat_mono_ns = l->engine.heartbeat_mono_ns;
    o->inflight = l->inflight_count;
    o->backlog = l->backlog_count;
    o->engine_stale = l->engine_stale;
    o->engine_attached = l->engine.attached;
    o->stage_action = l->policy.cfg.action;
    o->dry_run = l->policy.cfg.dry_run;
    o->armed = l->policy.cfg.armed;
    o->global_mode = l->syms.global_mode;
    o->withdrawals_halted = l->syms.withdrawals_halted;
    o->peer = l->peer.c;
    for (uint32_t i = 0; i < l->peer.cfg.node_count; i++)
        o->peer_applied_seq[i] = l->peer.nodes[i].applied_seq;
    tl_ledger_stats_get(&l->ledger, l->durable_seq, &o->ledger);
    tl_lease_stats_get(&l->lease, l->engine.attached ? l->engine.engine_id : NULL, &o->lease);
}

/* ---- out to the control thread ---- */

static bool backlog_push(tl_loop *l, const tl_out *o) {
    if (l->backlog_count == l->cfg.backlog)
        return false;
    uint32_t i = (l->backlog_head + l->backlog_count) % l->cfg.backlog;
    l->backlog[i] = *o;
    l->backlog_count++;
    l->c.out_backlogged++;
    return true;
}

static void out(tl_loop *l, const tl_out *o) {
    /* Order is kept: nothing overtakes the backlog. */
    if (l->backlog_count == 0 && l->ops.emit(l->ops.ctx, o))
        return;
    if (backlog_push(l, o))
        return;
    /* Full: an info finding is only counted; anything else displaces the
     * oldest info finding in the backlog, or, failing that, is counted. */
    if (o->type == TL_OUT_FINDING && o->u.finding.severity == TL_SEV_INFO) {
        l->c.out_dropped_info++;
        return;
    }
    for (uint32_t k = 0; k < l->backlog_count; k++) {
        tl_out *b = &l->backlog[(l->backlog_head + k) % l->cfg.backlog];
        if (b->type == TL_OUT_FINDING && b->u.finding.severity == TL_SEV_INFO) {
            *b = *o;
            l->c.out_dropped_info++;
            return;
        }
    }
    l->c.out_dropped_info++;
}

static uint32_t flush_backlog(tl_loop *l) {
    uint32_t n = 0;
    while (l->backlog_count > 0 && n < l->cfg.budget) {
        if (!l->ops.emit(l->ops.ctx, &l->backlog[l->backlog_head]))
            break;
        l->backlog_head = (l->backlog_head + 1) % l->cfg.backlog;
        l->backlog_count--;
        n++;
    }
    return n;
}

static void out_action(tl_loop *l, const tl_action *a) {
    tl_out o;
    o.type = TL_OUT_ACTION;
    o.u.action = *a;
    out(l, &o);
}

/* ---- actions ---- */

static tl_action *inflight_find(tl_loop *l, const uint8_t id[TL_ID_BYTES]) {
    for (uint32_t i = 0; i < l->inflight_count; i++) {
        if (memcmp(l->inflight[i].id, id, TL_ID_BYTES) == 0)
            return &l->inflight[i];
    }
    return NULL;
}

static void inflight_remove(tl_loop *l, tl_action *a) {
    uint32_t i = (uint32_t)(a - l->inflight);
    TL_ASSERT(i < l->inflight_count);
    l->inflight[i] = l->inflight[l->inflight_count - 1];
    l->inflight_count--;
}

/* An in-flight action that already covers `a`: same command and scope, and
 * at least as strict. A second finding then joins it instead of sending the
 * same command again. */
static tl_action *inflight_covering(tl_loop *l, const tl_action *a) {
    for (uint32_t i = 0; i < l->inflight_count; i++) {
        tl_action *b = &l->inflight[i];
        if (b->cmd != a->cmd || b->symbol != a->symbol || b->key != a->key)
            continue;
        if (a->cmd == TL_CMD_SET_SYMBOL_MODE && b->mode >= a->mode && a->key == TL_KEY_SIDECAR)
            return b;
        if (a->cmd == TL_CMD_WITHDRAWALS_HALT && b->on == a->on)
            return b;
    }
    return NULL;
}

static bool inflight_on_scope(tl_loop *l, uint32_t scope) {
    for (uint32_t i = 0; i < l->inflight_count; i++) {
        if (l->inflight[i].cmd == TL_CMD_SET_SYMBOL_MODE && l->inflight[i].symbol == scope)
            return true;
    }
    return false;
}

static const char *family_word(uint16_t check) {
    switch (tl_check_info_of((enum tl_check)check)->family) {
        case TL_FAMILY_SPLIT_BRAIN:
            return "split_brain";
        case TL_FAMILY_LEDGER:
            return "ledger";
        case TL_FAMILY_LOG_INTEGRITY:
            return "log_integrity";
        case TL_FAMILY_SETTLEMENT:
            return "settlement";
        case TL_FAMILY_WAL_LAG:
            return "wal_lag";
        default:
            return "alert";
    }
}

/* Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm). */
static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

/* Decimal digits of v, no locale and no allocation: the halt path formats
 * its reason and ticket with these, not with snprintf. */
static size_t put_u64(char *p, uint64_t v) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

static size_t put_padded(char *p, uint64_t v, size_t width) {
    char tmp[20];
    size_t n = put_u64(tmp, v);
    size_t pad = n < width ? width - n : 0;
    for (size_t i = 0; i < pad; i++)
        p[i] = '0';
    memcpy(p + pad, tmp, n);
    return pad + n;
}

static size_t put_str(char *p, const char *s) {
    size_t n = strlen(s);
    memcpy(p, s, n);
    return n;
}

/* The engine's admin socket takes names. A scope we cannot name is widened
 * to `*`: stricter, never weaker. */
static void name_scope(tl_loop *l, tl_action *a) {
    if (a->symbol != 0) {
        tl_sym *s = tl_symtab_find(&l->syms, a->symbol);
        if (s != NULL && s->has_name) {
            memcpy(a->symbol_name, s->name, sizeof a->symbol_name);
            return;
        }
        a->symbol = 0;
    }
    a->symbol_name[0] = '*';
    a->symbol_name[1] = '\0';
}

static void describe(tl_loop *l, tl_action *a) {
    if (a->reason[0] == '\0' && a->check != TL_CHECK_NONE) {
        /* "split_brain:fork seq=8812" */
        char *p = a->reason;
        p += put_str(p, family_word(a->check));
        *p++ = ':';
        for (const char *n = tl_check_name((enum tl_check)a->check); *n != '\0'; n++)
            *p++ = (char)(*n >= 'A' && *n <= 'Z' ? *n - 'A' + 'a' : *n);
        p += put_str(p, " seq=");
        p += put_u64(p, a->seq);
        *p = '\0';
        TL_ASSERT((size_t)(p - a->reason) < sizeof a->reason);
    }
    if (a->ticket[0] == '\0') {
        /* "INC-20261121-0007" */
        int y;
        unsigned m, d;
        civil_from_days((int64_t)(l->now_real_ns / 86400000000000ull), &y, &m, &d);
        char *p = a->ticket;
        p += put_str(p, "INC-");
        p += put_padded(p, (uint64_t)(y < 0 ? 0 : y), 4);
        p += put_padded(p, m, 2);
        p += put_padded(p, d, 2);
        *p++ = '-';
        p += put_padded(p, a->incident % 10000, 4);
        *p = '\0';
    }
    if (a->fence == 0)
        a->fence = tl_loop_fence(l);
}

static uint64_t backoff_ns(const tl_loop *l, uint32_t sends) {
    uint64_t ms = 1;
    for (uint32_t i = 1; i < sends && ms < l->cfg.retry_max_ms; i++)
        ms *= 2;
    if (ms > l->cfg.retry_max_ms)
        ms = l->cfg.retry_max_ms;
    return ms * 1000000ull;
}

static void send_now(tl_loop *l, tl_action *a) {
    a->issued_ns = l->now_real_ns;
    int rc = l->ops.send(l->ops.ctx, a, l->now_real_ns);
    if (rc == 0) {
        a->sends++;
        l->c.sends++;
        if (a->sent_ns == 0)
            a->sent_ns = l->now_ns;
        a->next_try_ns = l->now_ns + backoff_ns(l, a->sends);
    } else {
        /* No connection, or the socket is full: try again soon. */
        a->next_try_ns = l->now_ns + backoff_ns(l, a->sends + 1);
    }
}

static void raise_fast(tl_loop *l, const tl_action *a) {
    if (a->cmd == TL_CMD_WITHDRAWALS_HALT && a->on) {
        l->ops.fast_withdrawals(l->ops.ctx, true);
        l->fast_withdrawals_on = true;
        return;
    }
    if (a->cmd != TL_CMD_SET_SYMBOL_MODE || a->key != TL_KEY_SIDECAR)
        return;
    if (a->symbol == 0) {
        if (a->mode > l->fast_global) {
            l->ops.fast_mode(l->ops.ctx, 0, a->mode);
            l->fast_global = a->mode;
        }
        return;
    }
    if (a->symbol >= FAST_SYMBOL_SLOTS)
        return; /* no slot: only the admin command carries it */
    tl_sym *s = tl_symtab_get(&l->syms, a->symbol);
    if (s != NULL && a->mode > s->fast_mode) {
        l->ops.fast_mode(l->ops.ctx, a->symbol, a->mode);
        s->fast_mode = a->mode;
    }
}

/* The gates (core/policy.c), after the in-flight coalescing. A SEV1 action
 * the rate limit would stop is not dropped: one action on `*` at the
 * strictest planned mode takes the place of the per-symbol ones. */
static enum tl_block decide(tl_loop *l, tl_action *a, bool *coalesced) {
    /* Only the action table's actions join one in flight: an operator's (or
     * a canary step's) action always gets its own events, which the control
     * thread waits for by id. */
    *coalesced = a->origin == TL_ORIGIN_FINDING && inflight_covering(l, a) != NULL;
    if (*coalesced)
        return TL_BLOCK_NONE;
    enum tl_block b = tl_policy_gate(&l->policy, a, &l->syms, l->now_ns);
    if (b == TL_BLOCK_RATE_LIMITED && a->severity == TL_SEV_SEV1 &&
        a->cmd == TL_CMD_SET_SYMBOL_MODE && a->symbol != 0) {
        a->symbol = 0;
        name_scope(l, a);
        *coalesced = inflight_covering(l, a) != NULL;
        b = TL_BLOCK_NONE;
    }
    return b;
}

/* An action that passed every gate: it gets its id and an in-flight slot
 * (awaiting APPLIED). With every slot taken it still goes out once, with its
 * word first, untracked. */
static tl_action *admit(tl_loop *l, tl_action *a) {
    a->state = TL_ACT_EXECUTED;
    if (tl_id_is_zero(a->id))
        tl_action_id_mint(&l->rng, l->cfg.tag_seed, a->id);
    l->c.actions_executed++;
    tl_policy_executed(&l->policy, l->now_ns);
    if (l->inflight_count == l->cfg.max_inflight)
        return a;
    tl_action *slot = &l->inflight[l->inflight_count++];
    *slot = *a;
    return slot;
}

/* The audit's view of a planned action: PLANNED, then BLOCKED{reason} or
 * EXECUTED. */
static void account(tl_loop *l, tl_action *a, enum tl_block b, const tl_action *executed) {
    tl_action p = *a;
    p.state = TL_ACT_PLANNED;
    l->c.actions_planned++;
    out_action(l, &p);
    if (b != TL_BLOCK_NONE) {
        p.state = TL_ACT_BLOCKED;
        p.block = (uint8_t)b;
        l->c.actions_blocked[b]++;
        out_action(l, &p);
        return;
    }
    out_action(l, executed);
}

/* One action from the control thread (manual escalation, canary steps,
 * rollbacks, auto-resume). */
static void plan_one(tl_loop *l, tl_action *a) {
    name_scope(l, a);
    bool coalesced;
    enum tl_block b = decide(l, a, &coalesced);
    if (coalesced) {
        l->c.actions_coalesced++;
        return;
    }
    a->planned_ns = l->now_ns;
    describe(l, a);
    if (b != TL_BLOCK_NONE) {
        account(l, a, b, NULL);
        return;
    }
    raise_fast(l, a);
    tl_action *slot = admit(l, a);
    send_now(l, slot);
    account(l, a, b, slot);
}

static void open_incident(tl_loop *l, tl_finding *f) {
    if (f->severity < TL_SEV_SEV2)
        return;
    uint64_t gap = l->cfg.incident_gap_ms * 1000000ull;
    if (l->incident == 0 || l->now_ns - l->incident_last_ns > gap || l->incident_last_ns == 0) {
        l->incident++;
        l->incident_from_seq = f->seq;
        l->incident_to_seq = f->seq;
    }
    l->incident_last_ns = l->now_ns;
    if (f->seq != 0 && (f->seq < l->incident_from_seq || l->incident_from_seq == 0))
        l->incident_from_seq = f->seq;
    if (f->seq > l->incident_to_seq)
        l->incident_to_seq = f->seq;
    f->incident = l->incident;
}

/* The sink of every finding. Called inside tl_stream_record, so a fork
 * seen on the ring is on its way to the engine before the next record is
 * read. Latency first: the gates are decided and the fast-path words raised
 * before anything else, then the commands are formatted and sent, and only
 * then do the finding and the action events go to the control thread. */
static void on_finding(void *ctx, const tl_finding *fin) {
    tl_loop *l = ctx;
    tl_finding f = *fin;
    TL_ASSERT(f.check < TL_CHECK_COUNT);
    l->c.findings[f.check]++;
    open_incident(l, &f);

    tl_action acts[4];
    enum tl_block verdict[4];
    bool coalesced[4];
    tl_action *executed[4];
    int n = tl_policy_plan(&f, l->cfg.dialect, acts, 4);
    TL_ASSERT(n >= 0 && n <= 4);
    if (n > 0 && l->decided.count > 0 && tl_decided_has(&l->decided, &f)) {
        /* Met again reading the retained log after a restart: its actions
         * went out when it was first seen, and an operator may have resumed
         * since. Reported and audited below, not acted on again. */
        l->c.findings_decided_before++;
        n = 0;
    }
    /* 1. decide, and raise the words: the engine's hot path halts now */
    for (int i = 0; i < n; i++) {
        acts[i].incident = f.incident;
        acts[i].planned_ns = l->now_ns;
        name_scope(l, &acts[i]);
        verdict[i] = decide(l, &acts[i], &coalesced[i]);
        if (!coalesced[i] && verdict[i] == TL_BLOCK_NONE)
            raise_fast(l, &acts[i]);
    }
    /* 2. the commands, on the admin socket */
    for (int i = 0; i < n; i++) {
        executed[i] = NULL;
        if (coalesced[i])
            continue;
        describe(l, &acts[i]);
        if (verdict[i] == TL_BLOCK_NONE) {
            executed[i] = admit(l, &acts[i]);
            send_now(l, executed[i]);
        }
    }
    /* 3. the trace, in audit order */
    tl_out o;
    o.type = TL_OUT_FINDING;
    o.u.finding = f;
    out(l, &o);
    /* A repeat merged into an action in flight still widens the incident's
     * bundle to its seq (the service merges the requests); an alert row may
     * want one too (STALE_PEER_LEADER). */
    bool bundle = tl_policy_wants_bundle(&f, acts, n);
    for (int i = 0; i < n; i++) {
        if (coalesced[i]) {
            l->c.actions_coalesced++;
            continue;
        }
        account(l, &acts[i], verdict[i], executed[i]);
    }
    if (bundle && l->policy.cfg.bundle_auto) {
        tl_out b;
        memset(&b, 0, sizeof b);
        b.type = TL_OUT_BUNDLE;
        b.u.bundle.incident = f.incident;
        b.u.bundle.finding_id = f.id;
        uint64_t from = l->incident_from_seq, to = l->incident_to_seq;
        b.u.bundle.from_seq = from > l->cfg.bundle_margin ? from - l->cfg.bundle_margin : 1;
        b.u.bundle.to_seq = to + l->cfg.bundle_margin;
        out(l, &b);
    }
}

static void emit_check(tl_loop *l, enum tl_check check, enum tl_severity sev, uint16_t reason,
                       uint64_t seq, uint64_t seq2) {
    tl_finding f;
    tl_finding_init(&f, check);
    f.severity = (uint8_t)sev;
    f.reason = reason;
    f.seq = seq;
    f.seq2 = seq2;
    f.source = TL_SOURCE_ENGINE;
    tl_log_emit(&l->log, &f);
}

/* ---- what records mean ---- */

/* An xwal1 log carries no command id of tally's, so its symbol_mode is the
 * only trace of a command: an action in flight that set this scope to this
 * mode counts as APPLIED when the log shows the mode. The oldest such action
 * is taken (it was sent first). Only records read once the tailer has
 * reached the end of the log count: in catch-up, a symbol_mode is history
 * (an old halt, later resumed), and matching it would stop the retries of a
 * command that may never have arrived. An acknowledged command whose mode
 * the log already showed is settled in on_reply instead. */
static tl_action *xwal1_applied(tl_loop *l, uint32_t scope, uint8_t mode) {
    if (!l->xwal1_live)
        return NULL;
    tl_action *best = NULL;
    for (uint32_t i = 0; i < l->inflight_count; i++) {
        tl_action *a = &l->inflight[i];
        if (a->cmd != TL_CMD_SET_SYMBOL_MODE || a->symbol != scope || a->mode != mode)
            continue;
        if (best == NULL || a->planned_ns < best->planned_ns)
            best = a;
    }
    return best;
}

/* The action took effect (seen in the log, or, where the log cannot show
 * it, accepted by the engine): it leaves the in-flight table. */
static void mark_applied(tl_loop *l, tl_action *a, uint64_t seq) {
    a->state = TL_ACT_APPLIED;
    a->applied_ns = l->now_ns;
    a->applied_seq = seq;
    l->c.actions_applied++;
    tl_policy_applied(&l->policy, a->check, a->symbol, l->now_ns);
    out_action(l, a);
    inflight_remove(l, a);
}
static void on_mode_change(tl_loop *l, const tl_rec_view *v) {
    if (v->body == NULL || v->body_len < sizeof(tl_body_mode_change))
        return;
    tl_body_mode_change b;
    memcpy(&b, v->body, sizeof b);
    uint32_t scope = v->symbol;
    uint8_t prev = tl_symtab_set_mode(&l->syms, scope, (uint8_t)b.mode, v->seq);
    if (scope == 0)
        l->syms.withdrawals_halted = (uint8_t)b.withdrawals_halted;

    tl_action *a = inflight_find(l, b.command_id);
    if (a == NULL && l->cfg.dialect == TL_DIALECT_XWAL1 && tl_id_is_zero(b.command_id))
        a = xwal1_applied(l, scope, (uint8_t)b.mode);
    /* Every MODE_CHANGE goes out (restatements too): the control thread's
     * view of the modes (canary resume, /capabilities) is built from them. */
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_MODE_SEEN;
    memcpy(o.u.mode.command_id, b.command_id, TL_ID_BYTES);
    o.u.mode.scope = scope;
    o.u.mode.mode = (uint8_t)b.mode;
    o.u.mode.prev_mode = prev;
    o.u.mode.withdrawals_halted = (uint8_t)b.withdrawals_halted;
    o.u.mode.ours = !tl_id_is_zero(b.command_id) && !tl_id_is_restatement(b.command_id) &&
                    tl_action_id_is_ours(b.command_id, l->cfg.tag_seed);
    o.u.mode.matched = a != NULL;
    o.u.mode.seq = v->seq;
    out(l, &o);
    if (a != NULL)
        mark_applied(l, a, v->seq);

    /* tally lowers a fast word only when it sees a relaxation applied on
     * that scope, with no action of its own pending there (ring.md). */
    if (b.mode < prev && !inflight_on_scope(l, scope)) {
        if (scope == 0 && l->fast_global > b.mode) {
            l->ops.fast_mode(l->ops.ctx, 0, (uint8_t)b.mode);
            l->fast_global = (uint8_t)b.mode;
        } else if (scope != 0 && scope < FAST_SYMBOL_SLOTS) {
            tl_sym *s = tl_symtab_find(&l->syms, scope);
            if (s != NULL && s->fast_mode > b.mode) {
                l->ops.fast_mode(l->ops.ctx, scope, (uint8_t)b.mode);
                s->fast_mode = (uint8_t)b.mode;
            }
        }
    }
    if (scope == 0 && !b.withdrawals_halted && l->fast_withdrawals_on && prev >= b.mode &&
        !inflight_on_scope(l, 0)) {
        l->ops.fast_withdrawals(l->ops.ctx, false);
        l->fast_withdrawals_on = false;
    }
}

static void lease_local(const tl_loop *l, tl_lease_local *loc);

static void apply_meaning(tl_loop *l, const tl_rec_view *v) {
    tl_peer_on_record(&l->peer, v); /* CHECKPOINT state hashes, for peers */
    if (l->cfg.lease.enabled) {
        tl_lease_local loc;
        lease_local(l, &loc);
        tl_lease_record(&l->lease, v, &loc); /* STALE_LEADER, UNKNOWN_LEASE */
    }
    if (v->kind == TL_KIND_CHECKPOINT)
        tl_ledger_checkpoint(&l->ledger, v); /* running totals: the ledger sums' anchor */
    switch (v->kind) {
        case TL_KIND_SYMBOL:
            if (v->body != NULL) {
                const char *name = (const char *)v->body;
                size_t n = strnlen(name, TL_SYMBOL_NAME_MAX);
                const tl_sym *old = tl_symtab_find(&l->syms, v->symbol);
                bool known = old != NULL && old->has_name &&
                             strnlen(old->name, sizeof old->name) == n &&
                             memcmp(old->name, name, n) == 0;
                tl_symtab_name(&l->syms, v->symbol, name, n);
                if (!known && v->symbol != 0) {
                    /* Names reach the control thread once (segments restate them). */
                    tl_out o;
                    memset(&o, 0, sizeof o);
                    o.type = TL_OUT_SYMBOL;
                    o.u.symbol.id = v->symbol;
                    memcpy(o.u.symbol.name, name, n);
                    out(l, &o);
                }
            }
            break;
        case TL_KIND_MODE_CHANGE:
            on_mode_change(l, v);
            break;
        default:
            break;
    }
}

/* ---- WAL_LAG ---- */

static void lag_sample(tl_loop *l, uint64_t seq) {
    if (seq <= l->durable_seq)
        return;
    if (l->lag_count > 0 && l->now_ns - l->lag_last_sample_ns < 100000u)
        return; /* one sample per 100 us bounds the FIFO at 4096 x 100 us */
    if (l->lag_count == TL_LAG_SAMPLES)
        return; /* the oldest samples are the ones that matter */
    uint32_t i = (l->lag_head + l->lag_count) % TL_LAG_SAMPLES;
    l->lag[i].seq = seq;
    l->lag[i].seen_ns = l->now_ns;
    l->lag_count++;
    l->lag_last_sample_ns = l->now_ns;
}

static void lag_reset(tl_loop *l) {
    l->lag_count = 0;
    l->lag_confirmations = 0;
    l->lag_alerted = false;
    l->lag_escalated = false;
}

static void lag_check(tl_loop *l) {
    while (l->lag_count > 0 && l->lag[l->lag_head].seq <= l->durable_seq) {
        l->lag_head = (l->lag_head + 1) % TL_LAG_SAMPLES;
        l->lag_count--;
    }
    if (l->lag_count == 0) {
        lag_reset(l);
        return;
    }
    if (l->engine_stale)
        return; /* paused while the producer's heartbeat is stale */
    const tl_wal_lag_sample *oldest = &l->lag[l->lag_head];
    uint64_t age = l->now_ns - oldest->seen_ns;
    uint64_t grace = l->cfg.durable_grace_ms * 1000000ull;
    if (age <= grace)
        return;
    if (l->now_ns >= l->lag_next_confirm_ns) {
        l->lag_confirmations++;
        l->lag_next_confirm_ns = l->now_ns + grace;
    }
    if (l->lag_confirmations >= l->cfg.confirmations && !l->lag_alerted) {
        l->lag_alerted = true;
        emit_check(l, TL_CHECK_WAL_LAG, TL_SEV_SEV2, TL_REASON_RING_NOT_DURABLE, oldest->seq,
                   l->durable_seq);
    }
    if (age > l->cfg.lag_halt_ms * 1000000ull && l->lag_alerted && !l->lag_escalated) {
        l->lag_escalated = true;
        emit_check(l, TL_CHECK_WAL_LAG, TL_SEV_SEV1, TL_REASON_RING_NOT_DURABLE, oldest->seq,
                   l->durable_seq);
    }
}

/* ---- the engine's state ---- */

/* An incarnation ended: its provisional ring records leave the window and
 * never make a FORK or a SEQ_REGRESSION (ring.md). */
static void drop_provisional(tl_loop *l) {
    l->c.ring_undurable_dropped +=
        tl_window_drop_above(&l->log.win, l->durable_seq, TL_WIN_SRC_RING);
    tl_peer_drop_above(&l->peer, l->durable_seq);
    lag_reset(l);
    l->ring.anchored = false;
}

static void poll_engine(tl_loop *l) {
    if (l->ops.engine_status == NULL)
        return;
    tl_engine_status st;
    l->ops.engine_status(l->ops.ctx, &st);
    if (!st.attached)
        return;
    l->engine = st;
    if (st.durable_valid && st.durable_seq > l->durable_seq)
        l->durable_seq = st.durable_seq;
    if (st.durable_valid && !st.durable_read_failed)
        l->durable_read_ns = l->now_ns;
    uint64_t stale_ns = l->cfg.engine_stale_ms * 1000000ull;
    bool stale = st.heartbeat_mono_ns == 0 || l->now_ns > st.heartbeat_mono_ns + stale_ns;
    if (stale && !l->engine_stale) {
        l->engine_stale = true;
        emit_check(l, TL_CHECK_ENGINE_SILENT, TL_SEV_DEGRADED, TL_REASON_NONE, l->durable_seq, 0);
        drop_provisional(l);
    } else if (!stale && l->engine_stale) {
        l->engine_stale = false;
    }
}

/* ---- sources ---- */

static void on_ring(tl_loop *l, const tl_src_ring_ev *ev) {
    tl_finding f;
    switch (ev->type) {
        case TL_SRC_RING_RECORD: {
            l->c.records_ring++;
            tl_rec_view v;
            tl_rec_view_native(&v, ev->rec, ev->replay);
            if (!l->ring.anchored || l->ring.expected_seq != ev->expected_seq)
                tl_stream_resync(&l->ring, ev->expected_seq);
            tl_loc loc = {0, ev->position};
            tl_stream_result r = tl_stream_record(&l->ring, &v, &loc);
            if (r.seen == TL_SEEN_FIRST)
                apply_meaning(l, &v);
            if (r.order != TL_ORDER_LOWER)
                lag_sample(l, v.seq);
            break;
        }
        case TL_SRC_RING_LAPPED:
            l->c.ring_lapped++;
            tl_finding_init(&f, TL_CHECK_RING_LAPPED);
            f.source = TL_SOURCE_RING;
            f.offset = ev->position;
            f.seq = tl_loop_last_delivered(l);
            tl_log_emit(&l->log, &f);
            break;
        case TL_SRC_RING_ATTACHED:
            tl_stream_resync(&l->ring, ev->expected_seq);
            break;
        case TL_SRC_RING_CORRUPT:
            tl_finding_init(&f, TL_CHECK_RING_CORRUPT);
            f.source = TL_SOURCE_RING;
            f.rule = TL_RULE_RING;
            f.reason = ev->reason;
            f.offset = ev->position;
            f.seq = ev->seq;
            tl_log_emit(&l->log, &f);
            break;
        default:
            break;
    }
}

static void clear_tentative(tl_loop *l) {
    l->tentative = false;
    l->tentative_alerted = false;
}

/* ---- xwal1: one log and stream per symbol (core/xwal1.h) ---- */

/* A per-symbol log's finding (or a segment's, a frame's): numbered by the
 * loop's log like every other finding, then on_finding. */
static void xwal1_sink(void *ctx, const tl_finding *f) {
    tl_loop *l = ctx;
    tl_finding copy = *f;
    tl_log_emit(&l->log, &copy);
}

/* xwal1 has no SYMBOL record: a symbol's name comes with its records, and
 * reaches the symbol table (the actions' scope names) and the control
 * thread before the record's findings can need it. */
static void xwal1_name(tl_loop *l, const tl_wal_ev *ev) {
    uint32_t id = ev->view.symbol;
    tl_sym *s = tl_symtab_find(&l->syms, id);
    if (ev->symbol_name == NULL || (s != NULL && s->has_name))
        return;
    size_t n = strnlen(ev->symbol_name, TL_SYMBOL_NAME_MAX);
    tl_symtab_name(&l->syms, id, ev->symbol_name, n);
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_SYMBOL;
    o.u.symbol.id = id;
    memcpy(o.u.symbol.name, ev->symbol_name, n);
    out(l, &o);
}

/* The same facts as tl_xwal1_verifier on the same bytes: the checks are
 * shared (tl_xwal1_checks); the tailer walks, decodes and binds. */
static void on_wal_xwal1(tl_loop *l, const tl_wal_ev *ev) {
    tl_xwal1_checks *x = &l->xwal1;
    x->now_ns = l->now_ns;
    switch (ev->type) {
        case TL_WAL_EV_SEGMENT:
            clear_tentative(l);
            tl_xwal1_checks_segment(x, ev->name_first_seq);
            break;
        case TL_WAL_EV_RECORD: {
            l->c.records_wal++;
            clear_tentative(l);
            xwal1_name(l, ev);
            tl_stream_result r;
            if (!tl_xwal1_checks_record(x, &ev->view, &ev->loc, &r)) {
                /* A symbol past the loop's tables: nothing can be checked. */
                tl_xwal1_checks_corrupt_err(x, TL_XWAL1_ERR_TOO_MANY_SYMBOLS, ev->loc.segment,
                                            ev->loc.offset, ev->view.checksum);
                break;
            }
            if (r.seen == TL_SEEN_FIRST)
                apply_meaning(l, &ev->view);
            break;
        }
        case TL_WAL_EV_CORRUPT:
            clear_tentative(l);
            tl_xwal1_checks_corrupt(x, (enum tl_rule)ev->rule, ev->reason, ev->loc.segment,
                                    ev->loc.offset, ev->checksum);
            break;
        case TL_WAL_EV_CAUGHT_UP:
            l->xwal1_live = true;
            break;
        case TL_WAL_EV_TENTATIVE:
            /* State only: the tailer owns this dialect's torn-tail clock (no
             * heartbeat to pause it) and reports CORRUPT itself, so
             * tentative_check skips xwal1 and tentative_since_ns stays
             * unused here (set anyway, for /status readers of the state). */
            if (!l->tentative || l->tentative_loc.segment != ev->loc.segment ||
                l->tentative_loc.offset != ev->loc.offset)
                l->tentative_since_ns = l->now_ns;
            l->tentative = true;
            l->tentative_loc = ev->loc;
            l->tentative_seq = ev->seq;
            break;
        default:
            break;
    }
}

static void on_wal(tl_loop *l, const tl_wal_ev *ev) {
    tl_finding f;
    if (l->cfg.dialect == TL_DIALECT_XWAL1) {
        on_wal_xwal1(l, ev);
        return;
    }
    switch (ev->type) {
        case TL_WAL_EV_SEGMENT:
            TL_ASSERT(ev->hdr != NULL);
            clear_tentative(l);
            tl_stream_segment(&l->wal, ev->hdr, ev->name_first_seq, &ev->loc);
            break;
        case TL_WAL_EV_RECORD: {
            l->c.records_wal++;
            clear_tentative(l);
            tl_ledger_wal_record(&l->ledger, ev->view.seq); /* the first starts the sums */
            tl_stream_result r = tl_stream_record(&l->wal, &ev->view, &ev->loc);
            if (r.seen == TL_SEEN_FIRST)
                apply_meaning(l, &ev->view);
            break;
        }
        case TL_WAL_EV_CORRUPT:
            clear_tentative(l);
            tl_finding_init(&f, TL_CHECK_WAL_CORRUPT);
            f.source = TL_SOURCE_WAL;
            f.rule = ev->rule;
            f.reason = ev->reason;
            f.seq = ev->seq;
            f.segment = ev->loc.segment;
            f.offset = ev->loc.offset;
            f.symbol = 0;
            f.checksum = ev->checksum;
            tl_log_emit(&l->log, &f);
            if (ev->rule == TL_RULE_FIELDS)
                tl_stream_step_over(&l->wal, ev->seq, ev->checksum);
            else if (ev->reason >= TL_REASON_SEG_BASE && ev->reason < TL_REASON_SEGMENT_INDEX)
                tl_stream_segment_unreadable(&l->wal); /* its header */
            else
                tl_stream_reanchor(&l->wal); /* the rest of its segment is lost to us */
            break;
        case TL_WAL_EV_TENTATIVE:
            if (!l->tentative || l->tentative_loc.segment != ev->loc.segment ||
                l->tentative_loc.offset != ev->loc.offset) {
                l->tentative = true;
                l->tentative_alerted = false;
                l->tentative_loc = ev->loc;
                l->tentative_seq = ev->seq;
                l->tentative_since_ns = l->now_ns;
            }
            break;
        default:
            break;
    }
}

static void tentative_check(tl_loop *l) {
    if (!l->tentative || l->tentative_alerted)
        return;
    /* xwal1: the tailer judges its torn tail (io/xwal1_tail.c, wal.md: a
     * newer segment, or frames arriving after it for torn_grace_ms) and
     * emits WAL_CORRUPT torn_stalled; a WAL_LAG here would report it twice.
     * The engine attachment below is a ring's, which xwal1 has none of. */
    if (l->cfg.dialect == TL_DIALECT_XWAL1)
        return;
    /* While the engine is down its recovery will truncate the torn tail. */
    if (l->engine_stale || !l->engine.attached)
        return;
    if (l->now_ns - l->tentative_since_ns > l->cfg.torn_grace_ms * 1000000ull) {
        l->tentative_alerted = true;
        tl_finding f;
        tl_finding_init(&f, TL_CHECK_WAL_LAG);
        f.source = TL_SOURCE_WAL;
        f.reason = TL_REASON_TORN_STALLED;
        f.seq = l->tentative_seq;
        f.segment = l->tentative_loc.segment;
        f.offset = l->tentative_loc.offset;
        tl_log_emit(&l->log, &f);
    }
}

/* ---- peers (core/peer.h) ---- */

/* The stream whose current leader is the newest: the ring runs ahead. */
static const tl_stream *leader_stream(const tl_loop *l) {
    const tl_stream *r = &l->ring, *w = &l->wal;
    if (r->leader_known && (!w->leader_known || r->fence > w->fence))
        return r;
    return w->leader_known ? w : NULL;
}

static void peer_local(const tl_loop *l, tl_peer_local *p) {
    memset(p, 0, sizeof *p);
    p->now_ns = l->now_ns;
    p->now_real_ns = l->now_real_ns;
    /* The durable history: durable at the engine and read in order from
     * its WAL, so the window holds it. */
    uint64_t wal_read = l->wal.anchored ? l->wal.expected_seq - 1 : 0;
    p->durable_seq = l->cfg.ring && l->durable_seq < wal_read ? l->durable_seq : wal_read;
    p->fence = tl_loop_fence(l);
    p->attached = l->engine.attached;
    p->stale = l->engine_stale;
    const tl_stream *s = leader_stream(l);
    p->leader_known = s != NULL;
    if (l->engine.attached && !tl_id_is_zero(l->engine.engine_id)) {
        p->self_id = l->engine.engine_id;
        p->is_leader = s != NULL && !l->engine_stale &&
                       memcmp(s->leader_id, l->engine.engine_id, TL_ID_BYTES) == 0;
    }
}

static uint32_t peer_step(tl_loop *l) {
    if (l->cfg.peer.node_count == 0)
        return 0;
    tl_peer_local loc;
    peer_local(l, &loc);
    uint32_t work = 0;
    if (l->ops.peer_poll != NULL) {
        tl_peer_ev ev;
        for (uint32_t i = 0; i < l->cfg.budget && l->ops.peer_poll(l->ops.ctx, loc.self_id, &ev);
             i++, work++)
            tl_peer_receive(&l->peer, &loc, &ev);
    }
    return work + tl_peer_tick(&l->peer, &loc, l->ops.peer_send, l->ops.ctx);
}

/* ---- the settlement ledger (core/ledger.h) ---- */

/* The fold follows the durable log; replies wait at the front of their queue
 * while tl_ledger_reply holds them. Runs after the engine's durable seq was
 * read this step, so LEDGER_AHEAD is judged against a read made after the
 * reply arrived (durable_read_ns). Without a ring (xwal1) the WAL read in
 * order is the durable log. */
static uint32_t ledger_step(tl_loop *l) {
    if (!l->cfg.ledger.enabled)
        return 0;
    uint64_t wal_read = l->wal.anchored ? l->wal.expected_seq - 1 : 0;
    bool ring = l->ops.engine_status != NULL;
    uint64_t durable = ring ? l->durable_seq : wal_read;
    uint64_t read_ns = ring ? l->durable_read_ns : l->now_ns;
    uint32_t work = tl_ledger_fold(&l->ledger, durable, wal_read);
    if (l->ops.ledger_front != NULL) {
        /* Bounded: the queue holds a few replies (one per poll). */
        for (uint32_t i = 0; i < 16; i++) {
            const tl_ledger_wm *wm = l->ops.ledger_front(l->ops.ctx);
            if (wm == NULL ||
                !tl_ledger_reply(&l->ledger, wm, l->now_ns, l->now_real_ns, durable, read_ns))
                break;
            l->ops.ledger_pop(l->ops.ctx);
            work++;
        }
    }
    tl_ledger_tick(&l->ledger, l->now_ns);
    return work;
}

/* ---- the lease authority (core/lease.h) ---- */

/* The local engine as the lease checks see it: its id (the ring header's),
 * whether its log's current leader is that id, and the fence in force. */
static void lease_local(const tl_loop *l, tl_lease_local *loc) {
    memset(loc, 0, sizeof *loc);
    loc->fence = tl_loop_fence(l);
    if (!l->engine.attached || tl_id_is_zero(l->engine.engine_id))
        return;
    loc->self_id = l->engine.engine_id;
    const tl_stream *s = leader_stream(l);
    loc->is_leader = s != NULL && memcmp(s->leader_id, l->engine.engine_id, TL_ID_BYTES) == 0;
}

static uint32_t lease_step(tl_loop *l) {
    if (!l->cfg.lease.enabled)
        return 0;
    uint32_t work = 0;
    if (l->ops.lease_poll != NULL) {
        tl_lease_local loc;
        lease_local(l, &loc);
        tl_lease_reading r;
        /* Bounded: one reading per poll_ms arrives; 16 a step drains a
         * backlog quickly without starving the other sources. */
        for (uint32_t i = 0; i < 16 && l->ops.lease_poll(l->ops.ctx, &r); i++, work++)
            tl_lease_take(&l->lease, &r, &loc, l->now_ns);
    }
    tl_lease_tick(&l->lease, l->now_ns);
    return work;
}

/* ---- replies and retries ---- */

/* An xwal1 log records per-symbol modes only, and a symbol_mode record only
 * when the mode changes. So for some accepted commands the engine's "ok" is
 * the only evidence there will be (docs/spec-deviations.md): a cancel_all,
 * a withdrawals halt, a mode on `*` (the log has no global mode), and a
 * symbol mode the log already shows for that symbol (no change to record). */
static bool xwal1_settled_by_ack(tl_loop *l, const tl_action *a) {
    if (a->cmd == TL_CMD_CANCEL_ALL || a->cmd == TL_CMD_WITHDRAWALS_HALT)
        return true;
    if (a->cmd != TL_CMD_SET_SYMBOL_MODE)
        return false;
    if (a->symbol == 0)
        return true;
    const tl_sym *s = tl_symtab_find(&l->syms, a->symbol);
    return s != NULL && s->mode_seq != 0 && s->mode == a->mode;
}

static void on_reply(tl_loop *l, const tl_cmd_reply *r) {
    tl_action *a = inflight_find(l, r->id);
    if (a == NULL)
        return; /* applied already, or not ours */
    bool relax = a->key == TL_KEY_OPERATOR && a->from_mode != TL_FROM_MODE_NONE;
    if (r->ok) {
        a->acked = 1;
        a->next_try_ns = l->now_ns + l->cfg.apply_timeout_ms * 1000000ull;
        if (a->applied_seq == 0)
            a->applied_seq = r->applied_seq;
        if (l->cfg.dialect == TL_DIALECT_XWAL1 && xwal1_settled_by_ack(l, a))
            mark_applied(l, a, a->applied_seq);
        return;
    }
    if (r->definitive || relax) {
        /* A relaxation with the operator key is never sent again after an
         * error (behavior.md). */
        a->state = TL_ACT_FAILED;
        a->error = r->error;
        l->c.actions_failed++;
        out_action(l, a);
        inflight_remove(l, a);
        return;
    }
    a->acked = 0;
    a->next_try_ns = l->now_ns + backoff_ns(l, a->sends);
}

static uint32_t retries(tl_loop *l) {
    uint32_t n = 0;
    /* Bounded: each pass either moves to the next slot or removes one. */
    for (uint32_t i = 0; i < l->inflight_count;) {
        tl_action *a = &l->inflight[i];
        if (l->now_ns < a->next_try_ns) {
            i++;
            continue;
        }
        if (l->cfg.dialect == TL_DIALECT_XWAL1 && a->acked && a->sends >= l->cfg.xwal1_max_sends) {
            /* Accepted by the engine, sent that often, never seen in the
             * log: re-sending it forever would only hide that. Named, so an
             * operator checks the engine by hand. An unanswered command is
             * still retried (it may never have arrived, behavior.md). */
            a->state = TL_ACT_FAILED;
            a->error = TL_LOOP_ERR_NEVER_APPLIED;
            l->c.actions_failed++;
            l->c.actions_never_applied++;
            out_action(l, a);
            inflight_remove(l, a); /* the last one moved into slot i */
            n++;
            continue;
        }
        /* Same id, every member as first sent but issued_ns and mac. */
        l->c.send_retries++;
        send_now(l, a);
        if (a->acked)
            a->next_try_ns = l->now_ns + l->cfg.apply_timeout_ms * 1000000ull;
        n++;
        i++;
    }
    return n;
}

/* ---- the control thread's messages ---- */

static void on_ctl(tl_loop *l, tl_ctl_msg *m) {
    switch (m->type) {
        case TL_CTL_POLICY: {
            l->policy.cfg.action = m->action;
            l->policy.cfg.dry_run = m->dry_run;
            l->policy.cfg.armed = m->armed;
            /* The kill switch's answer: in force from this step on. */
            tl_out o;
            memset(&o, 0, sizeof o);
            o.type = TL_OUT_CTL_ACK;
            o.u.ack.ctl_type = TL_CTL_POLICY;
            o.u.ack.action = l->policy.cfg.action;
            o.u.ack.dry_run = l->policy.cfg.dry_run;
            o.u.ack.armed = l->policy.cfg.armed;
            o.u.ack.token = m->token;
            out(l, &o);
            break;
        }
        case TL_CTL_MODE:
        case TL_CTL_ACTION: {
            tl_action a = m->act;
            if (a.symbol == 0 && strcmp(a.symbol_name, "*") != 0) {
                tl_sym *s = tl_symtab_by_name(&l->syms, a.symbol_name, strlen(a.symbol_name));
                if (s != NULL)
                    a.symbol = s->id;
            }
            if (a.symbol == 0 && strcmp(a.symbol_name, "*") != 0) {
                /* A name the log never declared. Acting on `*` instead would
                 * widen a manual halt to every symbol, and a relaxation to a
                 * global one: refused, and said so. */
                a.detect_ns = l->now_ns;
                a.planned_ns = l->now_ns;
                a.state = TL_ACT_PLANNED;
                l->c.actions_planned++;
                out_action(l, &a);
                a.state = TL_ACT_BLOCKED;
                a.block = TL_BLOCK_SYMBOL_NOT_ALLOWED;
                l->c.actions_blocked[TL_BLOCK_SYMBOL_NOT_ALLOWED]++;
                out_action(l, &a);
                break;
            }
            if (a.symbol != 0) {
                /* describe() widens an unnamed scope; a named manual scope
                 * keeps its name even if the log has not declared it. */
                tl_sym *s = tl_symtab_find(&l->syms, a.symbol);
                if (s == NULL || !s->has_name)
                    tl_symtab_name(&l->syms, a.symbol, a.symbol_name, strlen(a.symbol_name));
            }
            a.detect_ns = l->now_ns;
            plan_one(l, &a);
            break;
        }
        case TL_CTL_RESEND: {
            /* After a restart: an EXECUTED action of the audit with neither
             * APPLIED nor FAILED goes out again, same id. */
            if (inflight_find(l, m->act.id) != NULL || l->inflight_count == l->cfg.max_inflight)
                break;
            tl_action *slot = &l->inflight[l->inflight_count++];
            *slot = m->act;
            slot->state = TL_ACT_EXECUTED;
            slot->origin = TL_ORIGIN_RESTART;
            slot->acked = 0;
            slot->next_try_ns = l->now_ns;
            raise_fast(l, slot);
            break;
        }
        case TL_CTL_INCARNATION:
            drop_provisional(l);
            if (m->durable_seq > l->durable_seq)
                l->durable_seq = m->durable_seq;
            /* Actions carry over: raise the words again on the new object. */
            if (l->fast_global != TL_MODE_NORMAL)
                l->ops.fast_mode(l->ops.ctx, 0, l->fast_global);
            if (l->fast_withdrawals_on)
                l->ops.fast_withdrawals(l->ops.ctx, true);
            for (uint32_t i = 0; i < l->syms.capacity; i++) {
                tl_sym *s = &l->syms.slots[i];
                if (s->id != 0 && s->fast_mode != TL_MODE_NORMAL && s->id < FAST_SYMBOL_SLOTS)
                    l->ops.fast_mode(l->ops.ctx, s->id, s->fast_mode);
            }
            break;
        case TL_CTL_DUAL_PRODUCER: {
            tl_finding f;
            tl_finding_init(&f, TL_CHECK_DUAL_PRODUCER);
            f.source = TL_SOURCE_RING;
            f.seq = tl_loop_last_delivered(l);
            tl_log_emit(&l->log, &f);
            break;
        }
        case TL_CTL_STOP:
            l->stopping = true;
            break;
        default:
            break;
    }
}

void tl_loop_warm(tl_loop *l) {
    tl_finding f;
    tl_finding_init(&f, TL_CHECK_FORK);
    f.seq = tl_loop_last_delivered(l);
    tl_action acts[4];
    int n = tl_policy_plan(&f, l->cfg.dialect, acts, 4);
    for (int i = 0; i < n; i++) {
        name_scope(l, &acts[i]);
        l->warm_sink ^= (uint64_t)tl_policy_gate(&l->policy, &acts[i], &l->syms, l->now_ns);
        l->warm_sink ^= (uint64_t)(inflight_covering(l, &acts[i]) != NULL);
        describe(l, &acts[i]);
        l->warm_sink ^= (uint64_t)(unsigned char)acts[i].reason[0];
    }
}

uint32_t tl_loop_step(tl_loop *l, uint64_t now_mono_ns, uint64_t now_real_ns) {
    TL_ASSERT(now_mono_ns >= l->now_ns);
    l->now_ns = now_mono_ns;
    l->now_real_ns = now_real_ns;
    l->log.now_ns = now_mono_ns;
    l->c.iterations++;
    /* Relaxed: a liveness beat for /healthz; nothing is published with it. */
    atomic_store_explicit(&l->beat_ns, now_mono_ns, memory_order_relaxed);

    uint32_t work = flush_backlog(l);
    uint32_t budget = l->cfg.budget;

    /* Operator commands first: the kill switch takes effect before the
     * next action. */
    tl_ctl_msg m;
    for (uint32_t i = 0; i < budget && l->ops.ctl_poll(l->ops.ctx, &m); i++, work++)
        on_ctl(l, &m);

    poll_engine(l);

    if (l->cfg.ring && l->ops.ring_poll != NULL) {
        tl_src_ring_ev ev;
        for (uint32_t i = 0; i < budget; i++) {
            if (!l->ops.ring_poll(l->ops.ctx, tl_loop_last_delivered(l), &ev))
                break;
            on_ring(l, &ev);
            work++;
        }
    }

    tl_wal_ev wev;
    for (uint32_t i = 0; i < budget && l->ops.wal_poll(l->ops.ctx, &wev); i++, work++)
        on_wal(l, &wev);

    work += peer_step(l);
    work += ledger_step(l);
    work += lease_step(l);

    tl_cmd_reply r;
    for (uint32_t i = 0; i < budget && l->ops.reply_poll(l->ops.ctx, &r); i++, work++)
        on_reply(l, &r);

    work += retries(l);
    lag_check(l);
    tentative_check(l);
    return work;
}
