/* test_canary_loop.c: the real reconciler loop (core/loop.c) and the real
 * control-thread side (admin/api*: events, canary, kill switch; no HTTP
 * listener) against a simulated engine, on a virtual clock, over many seeds.
 *
 * Each seed draws a number of symbols, when a fork halts everything, when an
 * operator asks for a canary resume, whether a recurrence (a seq gap) falls
 * into the window, and whether the kill switch goes on. Properties checked
 * at every step, on the simulated engine's own modes:
 *   - safety: while a resume runs, no symbol but the canary is ever below
 *     the halt mode in effect, and the canary never more than one level;
 *   - a recurrence in the window rolls the canary back to the halt mode;
 *     a clean window passes;
 *   - with the kill switch on, nothing but a rollback reaches the engine;
 *   - every MODE_CHANGE reaches the control thread once, every symbol name
 *     once (segments restate them), and a manual action on a name the log
 *     never declared is BLOCKED, never widened to `*`.
 * A failing seed prints itself; TL_SIM_SEED=<n> runs one.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/api_int.h"
#include "core/loop.h"

#define MAXREC      40000u
#define REC_BYTES   128u
#define MS          1000000ull
#define RESTATE_MS  300u /* a new segment's openers every so often */
#define MAX_PENDING 256u

typedef struct cmd {
    tl_action a;
    uint64_t due_ns;
} cmd;

typedef struct sim {
    uint64_t rng;
    uint64_t now;
    /* the engine */
    uint32_t nsyms;
    uint8_t global;
    uint8_t own[32];
    bool withdrawals;
    uint64_t next_seq;
    uint64_t parent;
    uint64_t gap_at; /* a seq never written (the recurrence) */
    uint64_t fork_at;
    uint8_t (*recs)[REC_BYTES];
    uint64_t nrecs;
    uint64_t wal_next;
    bool seg_sent;
    tl_seg_hdr hdr;
    cmd pending[MAX_PENDING];
    uint32_t npending;
    tl_cmd_reply replies[MAX_PENDING];
    uint32_t nreplies;
    uint32_t reply_next;
    uint64_t mode_changes_written;
    uint64_t last_restate_ns;
    uint32_t commands_received;
    uint32_t non_rollback_received_after_kill;
    bool kill_acked;
    /* tally */
    tl_spsc out;
    tl_spsc ctl;
    tl_loop *loop;
    void *loop_mem;
    tl_audit audit;
    tl_api *api;
    _Atomic uint64_t *beat; /* the loop's */
    tl_config cfg;
    tl_policy_cfg pol;
    char *dir;
    /* what the control thread saw */
    uint64_t mode_seen;
    uint32_t symbol_events[32];
    uint32_t blocked_unknown;
    bool executed_star_by_manual;
    char why[256];
} sim;

static uint64_t rnd(sim *s) {
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t below(sim *s, uint64_t n) {
    return rnd(s) % n;
}

/* ---- the engine's log ---- */

static void append(sim *s, uint16_t kind, uint32_t symbol, const void *body, uint32_t body_len) {
    uint64_t seq = s->next_seq++;
    if (seq == s->gap_at)
        seq = s->next_seq++;
    assert_true(s->nrecs < MAXREC);
    tl_rec_meta m = {.parent = s->parent,
                     .seq = seq,
                     .fence = 1,
                     .ts_ns = s->now + 1,
                     .kind = kind,
                     .symbol = symbol};
    uint8_t *r = s->recs[s->nrecs++];
    uint32_t len = tl_rec_encode(r, REC_BYTES, &m, body, body_len);
    assert_true(len > 0);
    if (seq == s->fork_at) {
        /* a second writer: the same seq again, other content (a FORK) */
        tl_rec_meta m2 = m;
        m2.ts_ns += 7;
        uint8_t *r2 = s->recs[s->nrecs++];
        assert_true(tl_rec_encode(r2, REC_BYTES, &m2, body, body_len) > 0);
    }
    s->parent = tl_rec_hdr_of(r)->checksum;
}

static void append_mode(sim *s, uint32_t scope, const uint8_t id[16]) {
    tl_body_mode_change b;
    memset(&b, 0, sizeof b);
    b.mode = scope == 0 ? s->global : s->own[scope];
    b.withdrawals_halted = s->withdrawals;
    memcpy(b.command_id, id, 16);
    append(s, TL_KIND_MODE_CHANGE, scope, &b, sizeof b);
    s->mode_changes_written++;
}

static void openers(sim *s) {
    for (uint32_t i = 1; i <= s->nsyms; i++) {
        tl_body_symbol b;
        memset(&b, 0, sizeof b);
        snprintf(b.name, sizeof b.name, "S%u", i);
        append(s, TL_KIND_SYMBOL, i, &b, sizeof b);
    }
    static const uint8_t restate[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    if (s->next_seq > 1 + s->nsyms) {
        append_mode(s, 0, restate);
        for (uint32_t i = 1; i <= s->nsyms; i++)
            if (s->own[i] != TL_MODE_NORMAL)
                append_mode(s, i, restate);
    }
}

static uint8_t effective(const sim *s, uint32_t id) {
    return s->own[id] > s->global ? s->own[id] : s->global;
}

static void engine_apply(sim *s, const tl_action *a) {
    tl_cmd_reply r;
    memset(&r, 0, sizeof r);
    memcpy(r.id, a->id, 16);
    r.ok = true;
    if (a->cmd == TL_CMD_WITHDRAWALS_HALT) {
        if (!a->on && a->key != TL_KEY_OPERATOR) {
            r.ok = false;
            r.definitive = true;
        } else {
            s->withdrawals = a->on;
        }
    } else {
        uint32_t scope = 0;
        if (strcmp(a->symbol_name, "*") != 0) {
            for (uint32_t i = 1; i <= s->nsyms; i++) {
                char n[16];
                snprintf(n, sizeof n, "S%u", i);
                if (strcmp(n, a->symbol_name) == 0)
                    scope = i;
            }
            if (scope == 0) {
                r.ok = false;
                r.definitive = true; /* unknown_symbol */
            }
        }
        uint8_t *cur = scope == 0 ? &s->global : &s->own[scope];
        if (r.ok && a->key == TL_KEY_SIDECAR) {
            if (a->mode > *cur)
                *cur = a->mode;
        } else if (r.ok) {
            if (a->from_mode != *cur) {
                r.ok = false;
                r.definitive = true; /* precondition_failed */
            } else {
                *cur = a->mode;
            }
        }
        if (r.ok)
            append_mode(s, scope, a->id);
    }
    if (r.ok && a->cmd == TL_CMD_WITHDRAWALS_HALT)
        append_mode(s, 0, a->id);
    assert_true(s->nreplies < MAX_PENDING);
    s->replies[s->nreplies++] = r;
}

/* ---- the loop's ops ---- */

static bool wal_poll(void *ctx, tl_wal_ev *ev) {
    sim *s = ctx;
    memset(ev, 0, sizeof *ev);
    if (!s->seg_sent) {
        s->seg_sent = true;
        memset(&s->hdr, 0, sizeof s->hdr);
        s->hdr.first_seq = 1;
        s->hdr.fence = 1;
        memset(s->hdr.leader_id, 0x11, 16);
        ev->type = TL_WAL_EV_SEGMENT;
        ev->hdr = &s->hdr;
        ev->name_first_seq = 1;
        ev->loc.segment = 1;
        return true;
    }
    if (s->wal_next >= s->nrecs)
        return false;
    ev->type = TL_WAL_EV_RECORD;
    tl_rec_view_native(&ev->view, s->recs[s->wal_next], false);
    ev->loc.segment = 1;
    ev->loc.offset = 4096 + s->wal_next * REC_BYTES;
    s->wal_next++;
    return true;
}

static bool ctl_poll(void *ctx, tl_ctl_msg *m) {
    sim *s = ctx;
    return tl_spsc_pop(&s->ctl, m);
}

static int send_op(void *ctx, const tl_action *a, uint64_t now_real_ns) {
    (void)now_real_ns;
    sim *s = ctx;
    for (uint32_t i = 0; i < s->npending; i++)
        if (memcmp(s->pending[i].a.id, a->id, 16) == 0)
            return 0; /* a retry: the same command */
    assert_true(s->npending < MAX_PENDING);
    s->commands_received++;
    if (s->kill_acked && a->origin != TL_ORIGIN_ROLLBACK)
        s->non_rollback_received_after_kill++;
    s->pending[s->npending].a = *a;
    s->pending[s->npending].due_ns = s->now + (1 + below(s, 3)) * MS;
    s->npending++;
    return 0;
}

static bool reply_poll(void *ctx, tl_cmd_reply *r) {
    sim *s = ctx;
    if (s->reply_next >= s->nreplies) {
        s->reply_next = s->nreplies = 0;
        return false;
    }
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
    return tl_spsc_push(&s->out, o);
}

/* ---- the control thread's side ---- */

static void control_pass(sim *s) {
    tl_out o;
    while (tl_spsc_pop(&s->out, &o)) {
        if (o.type == TL_OUT_MODE_SEEN)
            s->mode_seen++;
        if (o.type == TL_OUT_SYMBOL && o.u.symbol.id < 32)
            s->symbol_events[o.u.symbol.id]++;
        if (o.type == TL_OUT_CTL_ACK && o.u.ack.action == TL_ACTION_NONE)
            s->kill_acked = true;
        if (o.type == TL_OUT_ACTION && o.u.action.origin == TL_ORIGIN_MANUAL &&
            strcmp(o.u.action.ticket, "UNKNOWN") == 0) {
            if (o.u.action.state == TL_ACT_BLOCKED &&
                o.u.action.block == TL_BLOCK_SYMBOL_NOT_ALLOWED)
                s->blocked_unknown++;
            if (o.u.action.state == TL_ACT_EXECUTED)
                s->executed_star_by_manual = true;
        }
        tl_api_on_out(s->api, &o, s->now, s->now + 1000000000ull);
    }
    tl_api_pass(s->api, s->now, s->now + 1000000000ull);
}

static void setup(sim *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->rng = seed * 0x2545f4914f6cdd1dull + 1;
    s->recs = calloc(MAXREC, REC_BYTES);
    assert_non_null(s->recs);
    s->next_seq = 1;
    s->now = 1000 * MS;
    s->nsyms = 2 + (uint32_t)below(s, 20);
    assert_int_equal(tl_spsc_init(&s->out, 8192, sizeof(tl_out)), 0);
    assert_int_equal(tl_spsc_init(&s->ctl, 256, sizeof(tl_ctl_msg)), 0);
    tl_loop_cfg lc;
    tl_loop_cfg_defaults(&lc);
    lc.ring = false;
    lc.window_records = 1u << 14;
    lc.max_symbols = 64;
    lc.max_inflight = 32;
    lc.backlog = 256;
    lc.tag_seed = 42;
    lc.id_seed = seed;
    lc.incident_gap_ms = 1;
    lc.policy.bundle_auto = false;
    s->pol = lc.policy;
    s->loop_mem = tu_aligned(64, tl_loop_mem_bytes(&lc));
    s->loop = tu_aligned(64, sizeof *s->loop);
    tl_loop_ops ops = {
        .ctx = s,
        .wal_poll = wal_poll,
        .ctl_poll = ctl_poll,
        .send = send_op,
        .reply_poll = reply_poll,
        .fast_mode = fast_mode,
        .fast_withdrawals = fast_withdrawals,
        .emit = emit,
    };
    tl_loop_init(s->loop, &lc, &ops, s->loop_mem);
    s->beat = &s->loop->beat_ns;
    s->dir = tu_tmpdir("canaryloop");
    tl_config_defaults(&s->cfg);
    snprintf(s->cfg.state_dir, sizeof s->cfg.state_dir, "%s", s->dir);
    s->cfg.control_socket[0] = '\0'; /* no HTTP: the machines alone */
    s->cfg.control_listen[0] = '\0';
    s->cfg.canary_window_ms = 500;
    char err[512];
    if (tl_audit_open(&s->audit, s->dir, 1 << 26, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    tl_api_deps d = {
        .cfg = &s->cfg,
        .ctl = &s->ctl,
        .audit = &s->audit,
        .beat_ns = s->beat,
        .policy = &s->pol,
        .tag_seed = 42,
        .operator_key = true,
        .dialect = TL_DIALECT_TLYWAL1,
        .max_symbols = 64,
        .start_mono_ns = s->now,
    };
    if (tl_api_create(&s->api, &d, err, sizeof err) != 0)
        fail_msg("%s", err);
    openers(s);
}

static void teardown(sim *s) {
    tl_api_destroy(s->api);
    tl_audit_close(&s->audit);
    tu_rm_rf(s->dir);
    free(s->dir);
    free(s->loop);
    free(s->loop_mem);
    free(s->recs);
    tl_spsc_destroy(&s->out);
    tl_spsc_destroy(&s->ctl);
}

/* One millisecond of the world. */
static void step(sim *s) {
    s->now += MS;
    /* the engine: records (a halted engine writes heartbeats), commands */
    uint64_t k = below(s, 4);
    for (uint64_t i = 0; i < k && s->nrecs + 64 < MAXREC; i++) {
        if (s->global >= TL_MODE_SOFT_HALT || below(s, 3) == 0) {
            append(s, TL_KIND_HEARTBEAT, 0, NULL, 0);
        } else {
            tl_body_order_new on = {.order_id = s->next_seq,
                                    .account = 7,
                                    .price = 100,
                                    .qty = 1,
                                    .side = 1,
                                    .type = 1};
            append(s, TL_KIND_ORDER_NEW, 1 + (uint32_t)below(s, s->nsyms), &on, sizeof on);
        }
    }
    if (s->now - s->last_restate_ns > RESTATE_MS * MS && s->nrecs + 64 < MAXREC) {
        s->last_restate_ns = s->now;
        openers(s);
    }
    for (uint32_t i = 0; i < s->npending;) {
        if (s->pending[i].due_ns <= s->now) {
            engine_apply(s, &s->pending[i].a);
            s->pending[i] = s->pending[--s->npending];
        } else {
            i++;
        }
    }
    tl_loop_step(s->loop, s->now, s->now + 1000000000ull);
    control_pass(s);
}

static tl_api *A(sim *s) {
    return s->api;
}

/* Safety while a resume runs: only the canary may be below the halt mode,
 * and by one level at most. */
static bool safe(sim *s, uint8_t halt, uint32_t canary) {
    for (uint32_t i = 1; i <= s->nsyms; i++) {
        uint8_t e = effective(s, i);
        if (i == canary ? e + 1 < halt : e < halt) {
            snprintf(s->why, sizeof s->why, "S%u effective %s below %s (canary S%u)", i,
                     tl_mode_name(e), tl_mode_name(halt), canary);
            return false;
        }
    }
    return true;
}

static int run_seed(uint64_t seed) {
    sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    setup(s, seed);
    int bad = 0;
    s->fork_at = 200 + below(s, 300);
    bool recurrence = below(s, 2) == 0;
    bool kill = below(s, 4) == 0;
    uint32_t canary = 1 + (uint32_t)below(s, s->nsyms);
    /* a manual escalation on a name the log never declared */
    {
        tl_ctl_msg m;
        memset(&m, 0, sizeof m);
        m.type = TL_CTL_MODE;
        api_mint_id(A(s), m.act.id);
        m.act.cmd = TL_CMD_SET_SYMBOL_MODE;
        m.act.mode = TL_MODE_HARD_HALT;
        m.act.from_mode = TL_FROM_MODE_NONE;
        m.act.origin = TL_ORIGIN_MANUAL;
        strcpy(m.act.symbol_name, "NOTDECLARED");
        strcpy(m.act.reason, "sim");
        strcpy(m.act.ticket, "UNKNOWN");
        assert_true(tl_spsc_push(&s->ctl, &m));
    }
    /* until the fork has halted everything */
    int i = 0;
    for (; i < 5000 && !(s->global == TL_MODE_HARD_HALT && s->withdrawals); i++)
        step(s);
    if (s->global != TL_MODE_HARD_HALT) {
        snprintf(s->why, sizeof s->why, "the fork never halted (global %s)",
                 tl_mode_name(s->global));
        bad = 1;
        goto out;
    }
    for (int k = 0; k < 50; k++)
        step(s);
    /* the operator: a canary resume */
    tl_resume_req q;
    memset(&q, 0, sizeof q);
    q.kind = TL_RESUME_CANARY;
    snprintf(q.symbol, sizeof q.symbol, "S%u", canary);
    q.window_ms = 500;
    strcpy(q.ticket, "INC-SIM");
    enum tl_resume_err e = tl_canary_request(&A(s)->canary, &q, s->now);
    if (e != TL_RESUME_OK) {
        snprintf(s->why, sizeof s->why, "resume refused: %s", tl_resume_err_name(e));
        bad = 1;
        goto out;
    }
    uint64_t stepped_at = 0;
    bool gap_set = false;
    for (int k = 0; k < 3000 && A(s)->canary.phase != TL_CANARY_IDLE; k++) {
        step(s);
        if (!safe(s, TL_MODE_HARD_HALT, canary)) {
            bad = 1;
            goto out;
        }
        if (A(s)->canary.phase == TL_CANARY_WATCHING && stepped_at == 0) {
            stepped_at = s->now;
            if (kill) {
                /* the kill switch: a rollback must still go through */
                tl_ctl_msg m;
                memset(&m, 0, sizeof m);
                m.type = TL_CTL_POLICY;
                m.action = TL_ACTION_NONE;
                m.armed = true;
                m.token = 99;
                assert_true(tl_spsc_push(&s->ctl, &m));
            }
        }
        if (recurrence && stepped_at != 0 && !gap_set && s->now - stepped_at > 100 * MS) {
            s->gap_at = s->next_seq + 2;
            gap_set = true;
        }
    }
    uint8_t outcome = A(s)->canary.outcome;
    uint8_t want = recurrence ? TL_CANARY_OUT_ROLLED_BACK : TL_CANARY_OUT_PASSED;
    if (outcome != want) {
        snprintf(s->why, sizeof s->why, "outcome %s, want %s (phase %s)",
                 tl_canary_outcome_name(outcome), tl_canary_outcome_name(want),
                 tl_canary_phase_name(A(s)->canary.phase));
        bad = 1;
        goto out;
    }
    for (int k = 0; k < 50; k++)
        step(s);
    if (recurrence && effective(s, canary) != TL_MODE_HARD_HALT) {
        snprintf(s->why, sizeof s->why, "the canary is at %s after the rollback",
                 tl_mode_name(effective(s, canary)));
        bad = 1;
    }
    if (!recurrence && effective(s, canary) != TL_MODE_SOFT_HALT) {
        snprintf(s->why, sizeof s->why, "the canary is at %s after passing",
                 tl_mode_name(effective(s, canary)));
        bad = 1;
    }
    if (!safe(s, TL_MODE_HARD_HALT, canary))
        bad = 1;
    if (kill && s->non_rollback_received_after_kill != 0) {
        snprintf(s->why, sizeof s->why, "%u commands reached the engine after the kill switch",
                 s->non_rollback_received_after_kill);
        bad = 1;
    }
    if (s->blocked_unknown != 1 || s->executed_star_by_manual) {
        snprintf(s->why, sizeof s->why, "the undeclared name: blocked %u, executed %d",
                 s->blocked_unknown, s->executed_star_by_manual);
        bad = 1;
    }
    /* every MODE_CHANGE once; every name once, restatements or not */
    while (s->wal_next < s->nrecs)
        step(s);
    step(s);
    if (s->mode_seen != s->mode_changes_written) {
        snprintf(s->why, sizeof s->why, "%llu MODE_CHANGEs seen, %llu written",
                 (unsigned long long)s->mode_seen, (unsigned long long)s->mode_changes_written);
        bad = 1;
    }
    for (uint32_t k = 1; k <= s->nsyms; k++)
        if (s->symbol_events[k] != 1) {
            snprintf(s->why, sizeof s->why, "S%u named %u times", k, s->symbol_events[k]);
            bad = 1;
        }
out:
    if (bad)
        printf("seed %llu (%u symbols, canary S%u, recurrence %d, kill %d): %s\n",
               (unsigned long long)seed, s->nsyms, canary, recurrence, kill, s->why);
    teardown(s);
    free(s);
    return bad;
}

static void test_seeds(void **state) {
    (void)state;
    const char *one = getenv("TL_SIM_SEED");
    if (one != NULL) {
        assert_int_equal(run_seed(strtoull(one, NULL, 10)), 0);
        return;
    }
    const char *n = getenv("TL_SIM_SEEDS");
    uint64_t seeds = n != NULL ? strtoull(n, NULL, 10) : 60;
    int failed = 0;
    for (uint64_t seed = 1; seed <= seeds; seed++)
        failed += run_seed(seed);
    assert_int_equal(failed, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
