/* metrics.h: tally's Prometheus metrics (behavior.md "Metrics"), kept and
 * rendered by the control thread.
 *
 * Built only from what reaches the control thread: the loop's out-queue
 * events (findings, action lifecycle events, MODE_CHANGEs) and its
 * TL_OUT_STATS snapshots, sent every 100 ms. Nothing here reads the hot
 * loop's memory. Counters that the loop also counts (findings per check,
 * records, laps) take the larger of the two, so a finding shows at once
 * and one dropped from a full queue (info only) is still counted.
 *
 * tally_mismatch_total counts SEV1 and SEV2 findings only, per class; a
 * finding of two classes (UNCLASSIFIED: missing + out_of_order) counts in
 * both, as tally_findings_total does. The dead-man is observable as
 * tally_deadman_expired_total: the engine records its fallback as a
 * MODE_CHANGE with a zero command id (ring.md), which tally reads like any
 * other record.
 *
 * Rendering writes the text exposition format 0.0.4 into a caller's buffer
 * (allocated once); every family has HELP and TYPE, also when it has no
 * sample yet (an input that is not configured).
 */
#ifndef TL_METRICS_H
#define TL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "io/webhook.h"

/* The `action` label: what a command does. */
enum tl_metric_action {
    TL_MA_NORMAL = 0, /* set_symbol_mode NORMAL */
    TL_MA_CANCEL_ONLY,
    TL_MA_SOFT_HALT,
    TL_MA_HARD_HALT,
    TL_MA_WITHDRAWALS_HALT,
    TL_MA_WITHDRAWALS_RESUME,
    TL_MA_CANCEL_ALL,
    TL_MA_OTHER,
    TL_MA_COUNT,
};
const char *tl_metric_action_name(unsigned a); /* "hard_halt", "withdrawals_halt", ... */
enum tl_metric_action tl_metric_action_of(const tl_action *a);

#define TL_HIST_BUCKETS 22u

typedef struct tl_hist {
    uint64_t buckets[TL_HIST_BUCKETS]; /* not cumulative: observations <= bound i, > bound i-1 */
    uint64_t inf;                      /* above the last bound */
    uint64_t count;
    double sum_s;
} tl_hist;

/* Seconds: 1 us .. 10 s, 1-2.5-5 steps. */
extern const double tl_hist_bounds_s[TL_HIST_BUCKETS];
void tl_hist_observe(tl_hist *h, double seconds);

typedef struct tl_metrics {
    /* from events */
    uint64_t findings_ev[TL_CHECK_COUNT];
    uint64_t mismatch[TL_CLASS_COUNT]; /* index: bit position of the class */
    uint64_t planned[TL_MA_COUNT];
    uint64_t executed[TL_MA_COUNT];
    uint64_t applied[TL_MA_COUNT];
    uint64_t failed[TL_MA_COUNT];
    uint64_t blocked[TL_MA_COUNT][TL_BLOCK_COUNT];
    uint64_t recovered;
    tl_hist detect_to_send;
    tl_hist detect_to_applied;
    uint64_t mode_changes;
    uint64_t deadman_expired;
    uint64_t symbols;
    uint64_t bundles_requested;
    uint64_t bundles_done; /* kept by the control thread (admin/api_bundle.c) */
    uint64_t bundles_degraded;
    uint64_t bundles_failed;
    /* the last snapshot */
    bool have_stats;
    tl_loop_stats st;
    uint64_t stats_total;
    /* kept by the control thread */
    uint64_t reconcile_runs;
    uint64_t reconcile_mismatch;
    uint64_t canary_passed;
    uint64_t canary_rolled_back;
    uint64_t auto_resumes;
    uint64_t http_requests[6]; /* by status class: 1xx .. 5xx, index 1..5 */
} tl_metrics;

void tl_metrics_init(tl_metrics *m);
/* One out-queue event. */
void tl_metrics_on_out(tl_metrics *m, const tl_out *o);

/* State the metrics show that is not theirs to keep. */
typedef struct tl_metrics_extra {
    uint64_t now_mono_ns;
    uint64_t start_mono_ns; /* tallyd's start: the age of an input never heard */
    uint8_t stage_action;   /* enum tl_stage_action, as the control thread knows it */
    bool dry_run;
    bool armed;
    bool hot_healthy;
    uint64_t hot_beat_age_ns;
    bool ledger_configured;
    bool lease_configured;
    bool peers_configured;
    uint8_t canary_phase; /* enum tl_canary_phase */
    uint8_t autoresume_state;
    uint64_t audit_write_errors;
    uint64_t audit_queued;
    uint64_t safe_mode;               /* the engine's dead-man fallback is in force */
    const tl_webhook_stats *webhooks; /* alert webhooks (io/webhook.h); NULL: none */
    /* the lease poller's counters (admin/lease_poll.h); NULL: no lease */
    const struct tl_lease_poll_stats *lease_poll;
} tl_metrics_extra;

/* Renders every family into buf; returns the length, or 0 if cap is too
 * small (nothing partial is ever served). */
size_t tl_metrics_render(const tl_metrics *m, const tl_metrics_extra *x, char *buf, size_t cap);

#endif
