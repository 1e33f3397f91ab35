/* api_events.c: what the control API learns from the out-queue, and the
 * work it does every control pass: the canary and auto-resume machines
 * (core/canary.h), their actions into the loop's queue and their notes into
 * the audit log, and the reconcile worker's finished runs.
 */
#include "api_int.h"

#include <stdio.h>
#include <string.h>

#include "core/assert.h"

void api_events_init(tl_api *a) {
    const tl_config *c = a->cfg;
    tl_metrics_init(&a->metrics);
    tl_modes_init(&a->modes, a->modes_mem, a->deps.max_symbols);
    tl_canary_cfg cc = {
        .window_ms = c->canary_window_ms,
        .tag_seed = a->deps.tag_seed,
        .id_seed = a->rng ^ 0x5a5a5a5a5a5a5a5aull,
    };
    tl_canary_init(&a->canary, &cc, &a->modes);
    tl_autoresume_cfg ac = {
        .clean_cycles = (uint32_t)c->auto_resume_clean_cycles,
        .min_pause_ms = c->auto_resume_min_pause_ms,
        .cooldown_ms = c->auto_resume_cooldown_ms,
        .operator_key = a->deps.operator_key,
        .tag_seed = a->deps.tag_seed,
        .id_seed = a->rng ^ 0xa5a5a5a5a5a5a5a5ull,
    };
    tl_autoresume_init(&a->ar, &ac);
    a->ar_last_verdict = TL_AR_NOT_HALTED;
    const tl_policy_cfg *p = a->deps.policy;
    a->pol_action = a->loop_action = p->action;
    a->pol_dry_run = a->loop_dry_run = p->dry_run;
    a->pol_armed = a->loop_armed = p->armed;
}

static void track_halt(tl_api *a, const tl_action *act) {
    uint32_t i = a->halts_next++ % TL_API_HALTS;
    memcpy(a->halts[i].id, act->id, TL_ID_BYTES);
    snprintf(a->halts[i].ticket, sizeof a->halts[i].ticket, "%s", act->ticket);
}

static const char *halt_ticket(tl_api *a, const uint8_t id[TL_ID_BYTES]) {
    if (tl_id_is_zero(id))
        return NULL;
    for (uint32_t i = 0; i < TL_API_HALTS; i++)
        if (memcmp(a->halts[i].id, id, TL_ID_BYTES) == 0)
            return a->halts[i].ticket;
    return NULL;
}

static void on_mode(tl_api *a, const tl_mode_seen *m) {
    tl_modes_set(&a->modes, m->scope, m->mode, m->withdrawals_halted);
    if (m->scope == 0) {
        if (tl_id_is_zero(m->command_id)) {
            /* The engine's dead-man fired (ring.md): it records its
             * fallback with a zero command id. */
            a->safe_mode = m->mode >= TL_MODE_CANCEL_ONLY;
            a->deadman_seen_ns = a->now_mono_ns;
            tl_jw w;
            tl_jw_init(&w);
            tl_jw_str(&w, "mode", tl_mode_name(m->mode));
            tl_jw_u64s(&w, "seq", m->seq);
            (void)tl_audit_append(a->deps.audit, &w, "DEADMAN_SEEN", a->now_real_ns);
            tl_logf("tallyd: the engine's dead-man fired at seq %llu: global mode %s",
                    (unsigned long long)m->seq, tl_mode_name(m->mode));
        } else if (m->mode < TL_MODE_CANCEL_ONLY) {
            a->safe_mode = false;
        }
        const char *ticket = halt_ticket(a, m->command_id);
        if (ticket != NULL)
            tl_autoresume_halt_applied(&a->ar, m->command_id, ticket, m->prev_mode, a->now_mono_ns);
        tl_autoresume_global_mode(&a->ar, m->mode, m->command_id, a->now_mono_ns);
    }
    tl_canary_on_mode(&a->canary, m->command_id, m->scope, a->now_mono_ns);
}

static void on_stats(tl_api *a, const tl_loop_stats *st) {
    uint64_t now = a->now_mono_ns;
    if (st->wal_seq != a->wal_seq) {
        a->wal_seq = st->wal_seq;
        a->wal_changed_ns = now;
    }
    if (st->c.records_ring != a->ring_records) {
        a->ring_records = st->c.records_ring;
        a->ring_changed_ns = now;
    }
    if (st->peer.accepted != a->peer_accepted) {
        a->peer_accepted = st->peer.accepted;
        a->peer_changed_ns = now;
    }
    /* Auto-resume: judged once per new ledger reply, with the ledger's own
     * count of polls in a row below T2. */
    if (st->ledger.replies_total != a->ar_replies_seen) {
        a->ar_replies_seen = st->ledger.replies_total;
        tl_action act;
        enum tl_ar_verdict v =
            tl_autoresume_poll_count(&a->ar, st->ledger.lag_clean_polls, now, &act);
        if (v != a->ar_last_verdict && a->ar.state != TL_AR_IDLE)
            tl_logf("tallyd: auto-resume: %s", tl_ar_verdict_name(v));
        a->ar_last_verdict = (uint8_t)v;
        if (v == TL_AR_RESUME) {
            tl_ctl_msg m;
            memset(&m, 0, sizeof m);
            m.type = TL_CTL_ACTION;
            m.act = act;
            tl_jw w;
            tl_jw_init(&w);
            tl_jw_hex(&w, "id", act.id, TL_ID_BYTES);
            tl_jw_str(&w, "mode", tl_mode_name(act.mode));
            tl_jw_str(&w, "from_mode", tl_mode_name(act.from_mode));
            tl_jw_int(&w, "clean_polls", a->ar.clean);
            tl_jw_str(&w, "ticket", act.ticket);
            (void)tl_audit_append(a->deps.audit, &w, "AUTO_RESUME", a->now_real_ns);
            if (!api_ctl_push(a, &m)) {
                /* The queue holds 256: full means the loop is stuck. The
                 * machine goes back to waiting; the next reply retries. */
                a->ar.state = TL_AR_HALTED;
            } else {
                a->metrics.auto_resumes++;
            }
        }
    }
}

void api_events_on_out(tl_api *a, const tl_out *o) {
    tl_metrics_on_out(&a->metrics, o);
    tl_incidents_on_out(&a->incidents, o, a->now_real_ns);
    api_bundle_on_out(a, o); /* after the incident: it links the bundle */
    switch (o->type) {
        case TL_OUT_FINDING:
            tl_canary_on_finding(&a->canary, &o->u.finding, a->now_mono_ns);
            break;
        case TL_OUT_ACTION: {
            const tl_action *act = &o->u.action;
            if (act->state == TL_ACT_EXECUTED && act->check == TL_CHECK_SETTLEMENT_LAG &&
                act->cmd == TL_CMD_SET_SYMBOL_MODE && act->symbol == 0 &&
                act->mode == TL_MODE_SOFT_HALT && act->origin == TL_ORIGIN_FINDING)
                track_halt(a, act);
            tl_canary_on_action(&a->canary, act, a->now_mono_ns);
            tl_autoresume_on_action(&a->ar, act, a->now_mono_ns);
            if (act->state != TL_ACT_PLANNED && !tl_id_is_zero(act->id))
                api_wake_action(a, act->id);
            break;
        }
        case TL_OUT_MODE_SEEN:
            on_mode(a, &o->u.mode);
            break;
        case TL_OUT_SYMBOL: {
            const tl_symbol_seen *s = &o->u.symbol;
            if (tl_modes_declare(&a->modes, s->id, s->name, strnlen(s->name, sizeof s->name)) !=
                NULL)
                tl_canary_on_symbol(&a->canary, s->id, a->now_mono_ns);
            break;
        }
        case TL_OUT_CTL_ACK:
            if (o->u.ack.ctl_type == TL_CTL_POLICY) {
                a->loop_action = o->u.ack.action;
                a->loop_dry_run = o->u.ack.dry_run;
                a->loop_armed = o->u.ack.armed;
                if (o->u.ack.token > a->pol_acked_token)
                    a->pol_acked_token = o->u.ack.token;
                api_wake_policy(a, o->u.ack.token);
            }
            break;
        case TL_OUT_STATS:
            on_stats(a, &o->u.stats);
            break;
        default:
            break;
    }
}

static void audit_note(tl_api *a, const tl_canary_note *n) {
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_str(&w, "symbol", n->symbol);
    if (n->kind != TL_NOTE_SESSION_ENDED && n->kind != TL_NOTE_WITHDRAWALS_RESUMED &&
        n->kind != TL_NOTE_WITHDRAWALS_FAILED)
        tl_jw_str(&w, "mode", tl_mode_name(n->mode));
    if (n->from_mode != TL_FROM_MODE_NONE)
        tl_jw_str(&w, "from_mode", tl_mode_name(n->from_mode));
    if (n->window_ms != 0)
        tl_jw_u64s(&w, "window_ms", n->window_ms);
    if (n->check != TL_CHECK_NONE) {
        tl_jw_str(&w, "check", tl_check_name((enum tl_check)n->check));
        tl_jw_u64s(&w, "finding_id", n->finding_id);
    }
    if (n->kind == TL_NOTE_PINS_APPLIED || n->kind == TL_NOTE_BATCH_DONE)
        tl_jw_int(&w, "count", n->count);
    if (n->kind == TL_NOTE_BATCH_DONE)
        tl_jw_int(&w, "failed", n->failed);
    if (n->detail[0] != '\0')
        tl_jw_str(&w, "detail", n->detail);
    tl_jw_str(&w, "ticket", a->canary.ticket);
    (void)tl_audit_append(a->deps.audit, &w, tl_canary_note_name(n->kind), a->now_real_ns);
    if (n->kind != TL_NOTE_PIN)
        tl_logf("tallyd: resume: %s %s%s%s", tl_canary_note_name(n->kind), n->symbol,
                n->detail[0] != '\0' ? ": " : "", n->detail);
    if (n->kind == TL_NOTE_CANARY_PASSED)
        a->metrics.canary_passed++;
    if (n->kind == TL_NOTE_ROLLED_BACK)
        a->metrics.canary_rolled_back++;
}

void api_events_pass(tl_api *a) {
    api_bundle_pass(a);
    tl_rc_done d;
    while (tl_reconcile_poll_done(a->reconcile, &d)) {
        a->metrics.reconcile_runs++;
        if (d.status == TL_RC_MISMATCH)
            a->metrics.reconcile_mismatch++;
        tl_jw w;
        tl_jw_init(&w);
        tl_jw_str(&w, "id", d.id);
        tl_jw_str(&w, "status", tl_rc_status_name(d.status));
        tl_jw_u64s(&w, "findings", d.findings);
        tl_jw_u64s(&w, "records", d.records);
        tl_jw_u64s(&w, "from_seq", d.from_seq);
        tl_jw_u64s(&w, "to_seq", d.to_seq);
        (void)tl_audit_append(a->deps.audit, &w, "RECONCILE_DONE", a->now_real_ns);
        tl_logf("tallyd: reconcile %s [%llu, %llu]: %s (%llu findings, %llu records)", d.id,
                (unsigned long long)d.from_seq, (unsigned long long)d.to_seq,
                tl_rc_status_name(d.status), (unsigned long long)d.findings,
                (unsigned long long)d.records);
    }
    tl_canary_tick(&a->canary, a->now_mono_ns);
    const tl_action *act;
    while ((act = tl_canary_peek(&a->canary)) != NULL) {
        tl_ctl_msg m;
        memset(&m, 0, sizeof m);
        m.type = TL_CTL_ACTION;
        m.act = *act;
        if (!api_ctl_push(a, &m))
            break; /* the next pass */
        tl_canary_pop(&a->canary);
    }
    tl_canary_note n;
    bool wrote = false;
    while (tl_canary_note_pop(&a->canary, &n)) {
        audit_note(a, &n);
        wrote = true;
    }
    if (wrote)
        (void)tl_audit_sync(a->deps.audit);
}

void api_resume_json(tl_api *a, tl_jb *b) {
    const tl_canary *c = &a->canary;
    tl_jb_bool(b, "operator_key", a->deps.operator_key);
    tl_jb_obj(b, "canary");
    tl_jb_str(b, "phase", tl_canary_phase_name(c->phase));
    tl_jb_str(b, "last_outcome", tl_canary_outcome_name(c->outcome));
    if (c->canary != 0) {
        tl_modes_sym *s = tl_modes_find(&a->modes, c->canary);
        tl_jb_str(b, "symbol", s != NULL && s->has_name ? s->name : "?");
        tl_jb_str(b, "from_mode", tl_mode_name(c->canary_from));
        tl_jb_str(b, "to_mode", tl_mode_name(c->canary_to));
        tl_jb_str(b, "path", c->global_path ? "global" : "symbol");
        tl_jb_u64s(b, "window_ms", c->window_ms);
        if (c->phase == TL_CANARY_WATCHING) {
            uint64_t end = c->window_start_ns + c->window_ms * 1000000ull;
            tl_jb_u64s(b, "window_left_ms",
                       end > a->now_mono_ns ? (end - a->now_mono_ns) / 1000000ull : 0);
        }
    }
    tl_jb_str(b, "ticket", c->ticket);
    tl_jb_bool(b, "passed", c->passed);
    if (c->passed)
        tl_jb_str(b, "passed_level", tl_mode_name(c->passed_level));
    tl_jb_bool(b, "session", c->session);
    if (c->session)
        tl_jb_str(b, "session_mode", tl_mode_name(c->session_mode));
    tl_jb_int(b, "pins_sent", c->pins_sent);
    tl_jb_int(b, "pins_applied", c->pins_applied);
    tl_jb_int(b, "pins_queued", c->pins_queued);
    tl_jb_obj(b, "batch");
    tl_jb_int(b, "total", c->batch_total);
    tl_jb_int(b, "applied", c->batch_applied);
    tl_jb_int(b, "failed", c->batch_failed);
    tl_jb_end(b);
    tl_jb_int(b, "passed_total", (int64_t)c->passed_total);
    tl_jb_int(b, "rolled_back_total", (int64_t)c->rolled_back_total);
    tl_jb_int(b, "aborted_total", (int64_t)c->aborted_total);
    tl_jb_end(b);
    tl_jb_obj(b, "auto_resume");
    tl_jb_str(b, "state", tl_ar_state_name(a->ar.state));
    tl_jb_str(b, "last_verdict", tl_ar_verdict_name(a->ar_last_verdict));
    tl_jb_int(b, "clean_polls", a->ar.clean);
    tl_jb_bool(b, "hard_halt_seen", a->ar.hard);
    if (a->ar.state != TL_AR_IDLE)
        tl_jb_str(b, "resume_to", tl_mode_name(a->ar.resume_to));
    tl_jb_int(b, "resumes_total", (int64_t)a->ar.resumes_total);
    tl_jb_end(b);
    tl_jb_obj(b, "engine");
    tl_jb_str(b, "global_mode", tl_mode_name(a->modes.global_mode));
    tl_jb_bool(b, "withdrawals_halted", a->modes.withdrawals_halted);
    tl_jb_arr(b, "held");
    uint32_t shown = 0;
    for (uint32_t i = 0; i < a->modes.count && shown < 256; i++) {
        const tl_modes_sym *s = &a->modes.syms[i];
        if (s->mode == TL_MODE_NORMAL)
            continue;
        tl_jb_obj(b, NULL);
        tl_jb_str(b, "symbol", s->has_name ? s->name : "?");
        tl_jb_str(b, "mode", tl_mode_name(s->mode));
        tl_jb_str(b, "effective", tl_mode_name(tl_modes_effective(&a->modes, s)));
        tl_jb_end(b);
        shown++;
    }
    tl_jb_end(b);
    tl_jb_end(b);
}

void api_metrics_extra(tl_api *a, tl_metrics_extra *x) {
    memset(x, 0, sizeof *x);
    x->now_mono_ns = a->now_mono_ns;
    x->start_mono_ns = a->deps.start_mono_ns;
    x->stage_action = a->pol_action;
    x->dry_run = a->pol_dry_run;
    x->armed = a->pol_armed;
    /* Relaxed: a liveness stamp. */
    uint64_t beat = atomic_load_explicit(a->deps.beat_ns, memory_order_relaxed);
    x->hot_beat_age_ns = beat != 0 && a->now_mono_ns > beat ? a->now_mono_ns - beat : 0;
    x->hot_healthy = beat != 0 && x->hot_beat_age_ns <= (uint64_t)TL_API_STALE_MS * 1000000ull;
    x->ledger_configured = a->cfg->ledger_url[0] != '\0';
    x->lease_configured = a->cfg->lease_endpoint[0] != '\0';
    x->peers_configured = a->cfg->peer_count > 0;
    x->canary_phase = a->canary.phase;
    x->autoresume_state = a->ar.state;
    if (a->deps.audit != NULL) {
        x->audit_write_errors = a->deps.audit->write_errors;
        x->audit_queued = a->deps.audit->queue_count;
    }
    x->safe_mode = a->safe_mode;
    x->webhooks = a->deps.webhooks;
    x->lease_poll = a->deps.lease_poll;
}
