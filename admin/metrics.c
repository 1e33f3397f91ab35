/* metrics.c: tally's Prometheus metrics (see metrics.h). */
#include "metrics.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "admin/lease_poll.h"
#include "io/xwal1_tail.h"
#include "core/assert.h"
#include "core/canary.h"

const double tl_hist_bounds_s[TL_HIST_BUCKETS] = {
    1e-6, 2.5e-6, 5e-6,   1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
    5e-3, 1e-2,   2.5e-2, 5e-2, 0.1,    0.25, 0.5,  1.0,    2.5,  5.0,  10.0,
};

void tl_hist_observe(tl_hist *h, double seconds) {
    if (seconds < 0)
        seconds = 0;
    h->count++;
    h->sum_s += seconds;
    for (uint32_t i = 0; i < TL_HIST_BUCKETS; i++) {
        if (seconds <= tl_hist_bounds_s[i]) {
            h->buckets[i]++;
            return;
        }
    }
    h->inf++;
}

const char *tl_metric_action_name(unsigned a) {
    static const char *const names[TL_MA_COUNT] = {
        "normal",           "cancel_only",        "soft_halt",  "hard_halt",
        "withdrawals_halt", "withdrawals_resume", "cancel_all", "other",
    };
    return a < TL_MA_COUNT ? names[a] : "other";
}

enum tl_metric_action tl_metric_action_of(const tl_action *a) {
    switch (a->cmd) {
        case TL_CMD_SET_SYMBOL_MODE:
            return a->mode < TL_MODE_COUNT ? (enum tl_metric_action)a->mode : TL_MA_OTHER;
        case TL_CMD_WITHDRAWALS_HALT:
            return a->on ? TL_MA_WITHDRAWALS_HALT : TL_MA_WITHDRAWALS_RESUME;
        case TL_CMD_CANCEL_ALL:
            return TL_MA_CANCEL_ALL;
        default:
            return TL_MA_OTHER;
    }
}

void tl_metrics_init(tl_metrics *m) {
    memset(m, 0, sizeof *m);
}

void tl_metrics_on_out(tl_metrics *m, const tl_out *o) {
    switch (o->type) {
        case TL_OUT_FINDING: {
            const tl_finding *f = &o->u.finding;
            if (f->check >= TL_CHECK_COUNT)
                return;
            m->findings_ev[f->check]++;
            if (f->severity >= TL_SEV_SEV2) {
                for (unsigned b = 0; b < TL_CLASS_COUNT; b++)
                    if (f->cls & (1u << b))
                        m->mismatch[b]++;
            }
            return;
        }
        case TL_OUT_ACTION: {
            const tl_action *a = &o->u.action;
            unsigned k = tl_metric_action_of(a);
            switch (a->state) {
                case TL_ACT_PLANNED:
                    m->planned[k]++;
                    return;
                case TL_ACT_BLOCKED:
                    if (a->block < TL_BLOCK_COUNT)
                        m->blocked[k][a->block]++;
                    return;
                case TL_ACT_EXECUTED:
                    m->executed[k]++;
                    /* Not for retries after a restart: their detection was
                     * in another process. */
                    if (a->detect_ns != 0 && a->sent_ns >= a->detect_ns)
                        tl_hist_observe(&m->detect_to_send,
                                        (double)(a->sent_ns - a->detect_ns) / 1e9);
                    return;
                case TL_ACT_APPLIED:
                    m->applied[k]++;
                    if (a->detect_ns != 0 && a->applied_ns >= a->detect_ns)
                        tl_hist_observe(&m->detect_to_applied,
                                        (double)(a->applied_ns - a->detect_ns) / 1e9);
                    return;
                case TL_ACT_FAILED:
                    m->failed[k]++;
                    return;
                case TL_ACT_RECOVERED:
                    m->recovered++;
                    return;
                default:
                    return;
            }
        }
        case TL_OUT_MODE_SEEN:
            m->mode_changes++;
            if (tl_id_is_zero(o->u.mode.command_id))
                m->deadman_expired++;
            return;
        case TL_OUT_SYMBOL:
            m->symbols++;
            return;
        case TL_OUT_BUNDLE:
            m->bundles_requested++;
            return;
        case TL_OUT_STATS:
            m->st = o->u.stats;
            m->have_stats = true;
            m->stats_total++;
            return;
        default:
            return;
    }
}

/* ---- rendering ---- */

typedef struct out {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
} out;

__attribute__((format(printf, 2, 3))) static void put(out *o, const char *fmt, ...) {
    if (o->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->overflow = true;
        return;
    }
    o->len += (size_t)n;
}

static void family(out *o, const char *name, const char *type, const char *help) {
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t max64(uint64_t a, uint64_t b) {
    return a > b ? a : b;
}

static void hist(out *o, const char *name, const char *help, const tl_hist *h) {
    family(o, name, "histogram", help);
    uint64_t cum = 0;
    for (uint32_t i = 0; i < TL_HIST_BUCKETS; i++) {
        cum += h->buckets[i];
        put(o, "%s_bucket{le=\"%g\"} %llu\n", name, tl_hist_bounds_s[i], (unsigned long long)cum);
    }
    cum += h->inf;
    TL_ASSERT(cum == h->count);
    put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    put(o, "%s_sum %.9g\n%s_count %llu\n", name, h->sum_s, name, (unsigned long long)h->count);
}

/* tl_loop_stats.iter_hist: bucket i counts iterations < 64 ns << i, the last
 * one everything above. */
static void iter_hist(out *o, const tl_metrics *m) {
    const char *name = "tally_loop_iteration_seconds";
    family(o, name, "histogram", "Time of one hot loop iteration, sampled (one in 64 is timed).");
    const tl_loop_stats *st = &m->st;
    uint64_t cum = 0;
    for (uint32_t i = 0; i + 1 < TL_LOOP_HIST_BUCKETS; i++) {
        cum += st->iter_hist[i];
        put(o, "%s_bucket{le=\"%g\"} %llu\n", name, (double)(64ull << i) / 1e9,
            (unsigned long long)cum);
    }
    cum += st->iter_hist[TL_LOOP_HIST_BUCKETS - 1];
    put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    put(o, "%s_sum %.9g\n%s_count %llu\n", name, (double)st->iter_sum_ns / 1e9, name,
        (unsigned long long)st->iter_samples);
}

static void per_action(out *o, const char *name, const char *help, const uint64_t v[TL_MA_COUNT]) {
    family(o, name, "counter", help);
    for (unsigned k = 0; k < TL_MA_COUNT; k++)
        put(o, "%s{action=\"%s\"} %llu\n", name, tl_metric_action_name(k),
            (unsigned long long)v[k]);
}

/* The xwal1 tailer (io/xwal1_tail.h): a stuck or failing tailer shows as
 * a state other than following/waiting with counters that stop, or as
 * io_error with a growing streak. Families always, samples with xwal1. */
static void tail_metrics(out *o, const tl_tail_gauges *g) {
    family(o, "tally_wal_tail_state", "gauge",
           "The xwal1 WAL tailer's state: 1 for the current one (io_error: retrying a segment "
           "it cannot open or read).");
    for (unsigned s = 0; g->configured && s < TL_XWAL1_TAIL_ST_COUNT; s++)
        put(o, "tally_wal_tail_state{state=\"%s\"} %u\n",
            tl_xwal1_tail_state_name((enum tl_xwal1_tail_state)s), g->state == s ? 1u : 0u);
    family(o, "tally_wal_tail_io_error_streak", "gauge",
           "Failed opens and reads of the xwal1 tailer since it last read a record.");
    if (g->configured)
        put(o, "tally_wal_tail_io_error_streak %llu\n", (unsigned long long)g->io_error_streak);
    family(o, "tally_wal_tail_segment", "gauge", "The xwal1 segment index being read (0: none).");
    if (g->configured)
        put(o, "tally_wal_tail_segment %llu\n", (unsigned long long)g->segment);
    family(o, "tally_wal_tail_offset_bytes", "gauge",
           "The offset of the next frame in the xwal1 segment being read.");
    if (g->configured)
        put(o, "tally_wal_tail_offset_bytes %llu\n", (unsigned long long)g->offset);
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
#define TAIL_C(n, f, h) {"tally_wal_tail_" n "_total", h, offsetof(tl_tail_gauges, f)}
        TAIL_C("io_errors", io_errors_total, "Failed opens and reads of xwal1 segments."),
        TAIL_C("reads", reads_total, "Reads of xwal1 segments completed (io_uring)."),
        TAIL_C("read_bytes", bytes_read, "Bytes read from xwal1 segments."),
        TAIL_C("frames", frames_total, "xwal1 frames whose crc held."),
        TAIL_C("segments", segments_total, "xwal1 segments opened in order."),
        TAIL_C("dir_scans", dir_scans_total, "Listings of the xwal1 WAL directory."),
        TAIL_C("rereads", rereads_total, "Tails of an xwal1 segment read again after a change."),
        TAIL_C("tentative", tentative_total, "Torn xwal1 tails seen (tentative, not findings)."),
        TAIL_C("corrupt", corrupt_total, "WAL_CORRUPT reported by the xwal1 tailer."),
        TAIL_C("segments_missing", segments_missing_total,
               "xwal1 segments predicted or listed that were not there."),
        TAIL_C("caught_up", caught_up_total, "Times the xwal1 tailer read all there was."),
#undef TAIL_C
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        family(o, counters[i].name, "counter", counters[i].help);
        uint64_t v;
        memcpy(&v, (const char *)g + counters[i].off, sizeof v);
        if (g->configured)
            put(o, "%s %llu\n", counters[i].name, (unsigned long long)v);
    }
}

static double age_s(uint64_t now_ns, uint64_t then_ns) {
    return then_ns == 0 || now_ns < then_ns ? 0.0 : (double)(now_ns - then_ns) / 1e9;
}

size_t tl_metrics_render(const tl_metrics *m, const tl_metrics_extra *x, char *buf, size_t cap) {
    TL_ASSERT(cap > 0);
    out o = {buf, cap, 0, false};
    const tl_loop_stats *st = &m->st;

    family(&o, "tally_records_total", "counter", "Records read, by source.");
    put(&o, "tally_records_total{source=\"ring\"} %llu\n", (unsigned long long)st->c.records_ring);
    put(&o, "tally_records_total{source=\"wal\"} %llu\n", (unsigned long long)st->c.records_wal);
    put(&o, "tally_records_total{source=\"peer\"} %llu\n", (unsigned long long)st->peer.accepted);

    family(&o, "tally_findings_total", "counter",
           "Findings, by check and runbook class (info and degraded included).");
    for (unsigned c = 1; c < TL_CHECK_COUNT; c++) {
        const tl_check_info *ci = tl_check_info_of((enum tl_check)c);
        uint64_t n = max64(m->findings_ev[c], st->c.findings[c]);
        for (unsigned b = 0; b < TL_CLASS_COUNT; b++) {
            if (ci->cls & (1u << b))
                put(&o, "tally_findings_total{check=\"%s\",class=\"%s\"} %llu\n", ci->name,
                    tl_class_name(1u << b), (unsigned long long)n);
        }
    }

    family(&o, "tally_mismatch_total", "counter",
           "SEV1 and SEV2 findings, by class (info findings never count here).");
    for (unsigned b = 0; b < TL_CLASS_COUNT; b++)
        put(&o, "tally_mismatch_total{class=\"%s\"} %llu\n", tl_class_name(1u << b),
            (unsigned long long)m->mismatch[b]);

    per_action(&o, "tally_action_planned_total", "Actions planned, by action.", m->planned);
    per_action(&o, "tally_action_executed_total", "Actions sent to the engine, by action.",
               m->executed);
    per_action(&o, "tally_action_applied_total",
               "Actions applied (their MODE_CHANGE seen), by action.", m->applied);
    per_action(&o, "tally_action_failed_total", "Actions the engine refused, by action.",
               m->failed);
    family(&o, "tally_action_blocked_total", "counter",
           "Actions blocked by a gate, by action and reason.");
    for (unsigned k = 0; k < TL_MA_COUNT; k++) {
        for (unsigned r = 1; r < TL_BLOCK_COUNT; r++) {
            /* Every series from the start, zeros too: increase() needs a
             * sample before the first block to see it. */
            put(&o, "tally_action_blocked_total{action=\"%s\",reason=\"%s\"} %llu\n",
                tl_metric_action_name(k), tl_block_name((uint8_t)r),
                (unsigned long long)m->blocked[k][r]);
        }
    }
    family(&o, "tally_action_recovered_total", "counter",
           "Commands found applied in the WAL but not in the audit log (RECOVERED).");
    put(&o, "tally_action_recovered_total %llu\n", (unsigned long long)m->recovered);

    family(&o, "tally_engine_seq", "gauge", "Highest engine seq read in order (ring or WAL).");
    put(&o, "tally_engine_seq %llu\n", (unsigned long long)st->engine_seq);
    family(&o, "tally_wal_durable_seq", "gauge", "The engine's wal_durable_seq as last read.");
    put(&o, "tally_wal_durable_seq %llu\n", (unsigned long long)st->durable_seq);
    family(&o, "tally_ledger_seq", "gauge", "The ledger's last watermark ledger_seq.");
    if (x->ledger_configured)
        put(&o, "tally_ledger_seq %llu\n", (unsigned long long)st->ledger.ledger_seq);
    family(&o, "tally_peer_applied_seq", "gauge", "A peer's last applied_seq, by node.");
    family(&o, "tally_settlement_lag_seconds", "gauge",
           "Age of the oldest durable TRADE the ledger has not posted.");
    family(&o, "tally_settlement_lag_records", "gauge",
           "Durable records the ledger has not reached.");
    if (x->ledger_configured) {
        put(&o, "tally_settlement_lag_seconds %.9g\n", (double)st->ledger.lag_ns / 1e9);
        put(&o, "tally_settlement_lag_records %llu\n", (unsigned long long)st->ledger.lag_records);
    }
    family(&o, "tally_ring_lag_bytes", "gauge", "Bytes published on the ring and not yet read.");
    put(&o, "tally_ring_lag_bytes %llu\n", (unsigned long long)st->ring_lag_bytes);
    family(&o, "tally_ring_lapped_total", "counter",
           "Times the ring lapped the consumer (the gap is read from the WAL).");
    put(&o, "tally_ring_lapped_total %llu\n", (unsigned long long)st->c.ring_lapped);
    tail_metrics(&o, &st->tail);
    family(&o, "tally_findings_decided_before_total", "counter",
           "Findings met again reading an xwal1 log after a restart whose actions a previous "
           "run already planned (reported, not acted on again).");
    put(&o, "tally_findings_decided_before_total %llu\n",
        (unsigned long long)st->c.findings_decided_before);
    family(&o, "tally_peer_rejected_total", "counter", "Peer datagrams dropped, by reason.");
    if (x->peers_configured) {
        for (unsigned r = 0; r < TL_PEER_REJ_COUNT; r++)
            put(&o, "tally_peer_rejected_total{reason=\"%s\"} %llu\n",
                tl_peer_reject_name((enum tl_peer_reject)r),
                (unsigned long long)st->peer.rejected[r]);
    }
    family(&o, "tally_last_snapshot_age_seconds", "gauge",
           "Age of the last reading of an outside input, by input.");
    if (x->ledger_configured && m->have_stats)
        put(&o, "tally_last_snapshot_age_seconds{input=\"ledger\"} %.6f\n",
            age_s(x->now_mono_ns,
                  st->ledger.last_recv_ns != 0 ? st->ledger.last_recv_ns : x->start_mono_ns));
    if (x->lease_configured && m->have_stats)
        put(&o, "tally_last_snapshot_age_seconds{input=\"lease\"} %.6f\n",
            age_s(x->now_mono_ns,
                  st->lease.last_ok_ns != 0 ? st->lease.last_ok_ns : x->start_mono_ns));
    /* Each family's samples right after its HELP and TYPE: the exposition
     * format wants every metric's lines in one group. */
    family(&o, "tally_lease_revision", "gauge",
           "The lease authority's newest good reading: its header revision (H), the leader "
           "key's mod_revision (R, 0 when absent).");
    if (x->lease_configured) {
        put(&o, "tally_lease_revision{field=\"header\"} %llu\n",
            (unsigned long long)st->lease.revision);
        put(&o, "tally_lease_revision{field=\"mod\"} %llu\n",
            (unsigned long long)st->lease.mod_revision);
    }
    family(&o, "tally_lease_unreachable", "gauge", "1 while LEASE_UNREACHABLE holds.");
    if (x->lease_configured)
        put(&o, "tally_lease_unreachable %u\n", (unsigned)st->lease.unreachable);
    family(&o, "tally_lease_readings_total", "counter", "Lease readings, by outcome.");
    if (x->lease_configured) {
        put(&o, "tally_lease_readings_total{outcome=\"ok\"} %llu\n",
            (unsigned long long)st->lease.ok_total);
        put(&o, "tally_lease_readings_total{outcome=\"failed\"} %llu\n",
            (unsigned long long)st->lease.failed_total);
        put(&o, "tally_lease_readings_total{outcome=\"rejected\"} %llu\n",
            (unsigned long long)st->lease.rejected_total);
    }
    /* Why readings failed, from the poller (control thread): stage "fetch"
     * is the transfer (io/etcd_client.h's names), "parse" the reply
     * (core/lease.h's names). Two stages keep the label sets distinct:
     * both sides have a body_too_large. */
    family(&o, "tally_lease_rejected_total", "counter",
           "Lease readings that failed, by stage (fetch, parse) and reason.");
    if (x->lease_poll != NULL) {
        for (unsigned r = 1; r < TL_ETCD_ERR_COUNT; r++)
            put(&o, "tally_lease_rejected_total{stage=\"fetch\",reason=\"%s\"} %llu\n",
                tl_etcd_err_name((enum tl_etcd_err)r),
                (unsigned long long)x->lease_poll->failed[r]);
        for (unsigned r = 1; r < TL_LEASE_ERR_COUNT; r++)
            put(&o, "tally_lease_rejected_total{stage=\"parse\",reason=\"%s\"} %llu\n",
                tl_lease_err_name((enum tl_lease_err)r),
                (unsigned long long)x->lease_poll->parse_rejected[r]);
    }
    family(&o, "tally_lease_inconclusive_total", "counter",
           "Lease judgements deferred: the reading's revision was below the fence (ledger.md race "
           "rules).");
    if (x->lease_configured)
        put(&o, "tally_lease_inconclusive_total %llu\n",
            (unsigned long long)st->lease.inconclusive_total);

    family(&o, "tally_reconcile_runs_total", "counter", "On-demand reconciles finished.");
    put(&o, "tally_reconcile_runs_total %llu\n", (unsigned long long)m->reconcile_runs);
    family(&o, "tally_reconcile_runs_with_mismatch_total", "counter",
           "On-demand reconciles that found a mismatch.");
    put(&o, "tally_reconcile_runs_with_mismatch_total %llu\n",
        (unsigned long long)m->reconcile_mismatch);

    family(&o, "tally_bundle_requests_total", "counter",
           "Forensic bundles the action table asked for (SEV1 actions).");
    put(&o, "tally_bundle_requests_total %llu\n", (unsigned long long)m->bundles_requested);
    family(&o, "tally_bundles_total", "counter",
           "Forensic bundle exports finished, by result (degraded: made, a part missing).");
    put(&o, "tally_bundles_total{result=\"done\"} %llu\n",
        (unsigned long long)(m->bundles_done - m->bundles_degraded));
    put(&o, "tally_bundles_total{result=\"degraded\"} %llu\n",
        (unsigned long long)m->bundles_degraded);
    put(&o, "tally_bundles_total{result=\"failed\"} %llu\n", (unsigned long long)m->bundles_failed);

    hist(&o, "tally_detect_to_send_seconds", "From a finding's detection to its command's send.",
         &m->detect_to_send);
    hist(&o, "tally_detect_to_applied_seconds",
         "From a finding's detection to its command's MODE_CHANGE on the ring.",
         &m->detect_to_applied);
    iter_hist(&o, m);

    /* tally's own state: what the alert rules and an operator need. */
    family(&o, "tally_deadman_expired_total", "counter",
           "Engine dead-man fallbacks seen (a MODE_CHANGE with a zero command id).");
    put(&o, "tally_deadman_expired_total %llu\n", (unsigned long long)m->deadman_expired);
    family(&o, "tally_engine_safe_mode", "gauge",
           "1 while the engine's dead-man fallback mode is in force.");
    put(&o, "tally_engine_safe_mode %llu\n", (unsigned long long)x->safe_mode);
    family(&o, "tally_armed", "gauge",
           "1 when actions may reach the engine (action=live, "
           "armed, not dry_run).");
    put(&o, "tally_armed %d\n",
        x->stage_action == TL_ACTION_LIVE && x->armed && !x->dry_run ? 1 : 0);
    family(&o, "tally_stage", "gauge", "The enablement stage: 1 for the one in force.");
    tl_policy_cfg pc;
    memset(&pc, 0, sizeof pc);
    pc.action = x->stage_action;
    pc.dry_run = x->dry_run;
    pc.armed = x->armed;
    const char *stage = tl_policy_stage(&pc);
    static const char *const stages[] = {"detect", "plan", "blocked", "live"};
    for (unsigned i = 0; i < 4; i++)
        put(&o, "tally_stage{stage=\"%s\"} %d\n", stages[i], strcmp(stage, stages[i]) == 0);
    family(&o, "tally_up", "gauge", "1 while the hot loop beats.");
    put(&o, "tally_up %d\n", x->hot_healthy ? 1 : 0);
    family(&o, "tally_engine_heartbeat_age_seconds", "gauge",
           "Age of the engine's producer heartbeat at the last snapshot.");
    if (m->have_stats && st->engine_attached)
        put(&o, "tally_engine_heartbeat_age_seconds %.6f\n",
            age_s(st->now_ns, st->heartbeat_mono_ns));
    family(&o, "tally_engine_mode", "gauge", "The engine's global mode (0 NORMAL .. 3 HARD_HALT).");
    put(&o, "tally_engine_mode %u\n", (unsigned)st->global_mode);
    family(&o, "tally_withdrawals_halted", "gauge", "1 while withdrawals are halted.");
    put(&o, "tally_withdrawals_halted %u\n", (unsigned)st->withdrawals_halted);
    family(&o, "tally_actions_in_flight", "gauge", "Commands sent and not yet applied.");
    put(&o, "tally_actions_in_flight %llu\n", (unsigned long long)st->inflight);
    family(&o, "tally_out_dropped_info_total", "counter",
           "Info findings only counted because the control queue was full.");
    put(&o, "tally_out_dropped_info_total %llu\n", (unsigned long long)st->c.out_dropped_info);
    family(&o, "tally_canary_phase", "gauge", "The canary resume's phase: 1 for the current one.");
    for (uint8_t p = 0; p < TL_CANARY_PHASE_COUNT; p++)
        put(&o, "tally_canary_phase{phase=\"%s\"} %d\n", tl_canary_phase_name(p),
            x->canary_phase == p);
    family(&o, "tally_canary_total", "counter", "Canary windows that ended, by outcome.");
    put(&o, "tally_canary_total{outcome=\"passed\"} %llu\n", (unsigned long long)m->canary_passed);
    put(&o, "tally_canary_total{outcome=\"rolled_back\"} %llu\n",
        (unsigned long long)m->canary_rolled_back);
    family(&o, "tally_auto_resume_total", "counter", "Settlement-lag SOFT_HALTs lifted by tally.");
    put(&o, "tally_auto_resume_total %llu\n", (unsigned long long)m->auto_resumes);
    family(&o, "tally_audit_write_errors_total", "counter",
           "Audit log writes or fsyncs that failed (lines are kept and written again).");
    put(&o, "tally_audit_write_errors_total %llu\n", (unsigned long long)x->audit_write_errors);
    family(&o, "tally_audit_queued_lines", "gauge", "Audit lines waiting for the disk.");
    put(&o, "tally_audit_queued_lines %llu\n", (unsigned long long)x->audit_queued);
    /* Alert webhooks: each family followed by its sample (one group each). */
    const tl_webhook_stats *wh = x->webhooks;
    family(&o, "tally_webhook_sent_total", "counter",
           "Alert webhook deliveries acknowledged (2xx), over every URL.");
    if (wh != NULL)
        put(&o, "tally_webhook_sent_total %llu\n", (unsigned long long)wh->sent);
    family(&o, "tally_webhook_failed_total", "counter",
           "Alert webhook POST attempts that failed (a request libcurl would not start too).");
    if (wh != NULL)
        put(&o, "tally_webhook_failed_total %llu\n", (unsigned long long)wh->failed);
    family(&o, "tally_webhook_retried_total", "counter",
           "Alert webhook POST attempts that were retries.");
    if (wh != NULL)
        put(&o, "tally_webhook_retried_total %llu\n", (unsigned long long)wh->retried);
    family(&o, "tally_webhook_dropped_total", "counter",
           "Alert webhook deliveries given up: the queue overflowed (oldest dropped) or a 4xx.");
    if (wh != NULL)
        put(&o, "tally_webhook_dropped_total %llu\n", (unsigned long long)wh->dropped);
    family(&o, "tally_webhook_pending", "gauge", "Alert webhook deliveries still to make.");
    if (wh != NULL)
        put(&o, "tally_webhook_pending %llu\n", (unsigned long long)wh->pending);
    family(&o, "tally_webhook_refused_total", "counter",
           "Alerts never queued, by reason: unformatted (did not fit the message buffer), "
           "invalid (the queue refused the body: empty or too long).");
    if (wh != NULL) {
        put(&o, "tally_webhook_refused_total{reason=\"unformatted\"} %llu\n",
            (unsigned long long)wh->unformatted);
        put(&o, "tally_webhook_refused_total{reason=\"invalid\"} %llu\n",
            (unsigned long long)wh->refused);
    }
    family(&o, "tally_control_requests_total", "counter",
           "Control API requests answered, by status class.");
    for (unsigned k = 1; k <= 5; k++)
        put(&o, "tally_control_requests_total{code=\"%uxx\"} %llu\n", k,
            (unsigned long long)m->http_requests[k]);
    return o.overflow ? 0 : o.len;
}
