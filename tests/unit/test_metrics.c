/* test_metrics.c: admin/metrics.c. A scripted run of out-queue events
 * (findings of every severity, action lifecycles, MODE_CHANGEs, stats
 * snapshots) is rendered, the text is parsed back with a strict reader of
 * the exposition format, and every value is checked against the script. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/lease_poll.h"
#include "admin/metrics.h"
#include "core/canary.h"

/* ---- a strict reader of the text format ---- */

#define MAX_SAMPLES 4096

typedef struct sample {
    char name[96];
    char labels[160]; /* as written, without braces */
    double value;
} sample;

typedef struct parsed {
    sample s[MAX_SAMPLES];
    int n;
    char help[128][96];
    char type[128][96];
    char type_of[128][16];
    int nh;
    int nt;
} parsed;

static bool name_ok(const char *p, size_t n) {
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static int family_index(parsed *p, const char *name) {
    for (int i = 0; i < p->nt; i++) {
        size_t n = strlen(p->type[i]);
        if (strncmp(name, p->type[i], n) == 0 &&
            (name[n] == '\0' || strcmp(name + n, "_bucket") == 0 || strcmp(name + n, "_sum") == 0 ||
             strcmp(name + n, "_count") == 0))
            return i;
    }
    return -1;
}

static void parse_text(const char *text, size_t len, parsed *p) {
    memset(p, 0, sizeof *p);
    const char *end = text + len;
    const char *line = text;
    assert_true(len > 0 && text[len - 1] == '\n');
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        assert_non_null(nl);
        size_t n = (size_t)(nl - line);
        char buf[512];
        assert_true(n < sizeof buf);
        memcpy(buf, line, n);
        buf[n] = '\0';
        if (strncmp(buf, "# HELP ", 7) == 0) {
            char *sp = strchr(buf + 7, ' ');
            assert_non_null(sp);
            *sp = '\0';
            assert_true(name_ok(buf + 7, strlen(buf + 7)));
            assert_true(strlen(sp + 1) > 0);
            snprintf(p->help[p->nh++], 96, "%.95s", buf + 7);
        } else if (strncmp(buf, "# TYPE ", 7) == 0) {
            char *sp = strchr(buf + 7, ' ');
            assert_non_null(sp);
            *sp = '\0';
            assert_true(strcmp(sp + 1, "counter") == 0 || strcmp(sp + 1, "gauge") == 0 ||
                        strcmp(sp + 1, "histogram") == 0);
            /* HELP comes right before TYPE, for the same name */
            assert_true(p->nh == p->nt + 1);
            assert_string_equal(p->help[p->nt], buf + 7);
            snprintf(p->type_of[p->nt], 16, "%.15s", sp + 1);
            snprintf(p->type[p->nt++], 96, "%.95s", buf + 7);
        } else {
            assert_true(buf[0] != '#');
            assert_true(p->n < MAX_SAMPLES);
            sample *s = &p->s[p->n++];
            char *brace = strchr(buf, '{');
            char *sp = strrchr(buf, ' ');
            assert_non_null(sp);
            if (brace != NULL && brace < sp) {
                char *close = strchr(brace, '}');
                assert_non_null(close);
                assert_true(close + 1 == sp);
                snprintf(s->name, sizeof s->name, "%.*s", (int)(brace - buf), buf);
                snprintf(s->labels, sizeof s->labels, "%.*s", (int)(close - brace - 1), brace + 1);
                /* label="value"[,label="value"]* */
                const char *q = s->labels;
                while (*q) {
                    const char *eq = strchr(q, '=');
                    assert_non_null(eq);
                    assert_true(name_ok(q, (size_t)(eq - q)));
                    assert_true(eq[1] == '"');
                    const char *vend = strchr(eq + 2, '"');
                    assert_non_null(vend);
                    q = vend + 1;
                    if (*q == ',')
                        q++;
                    else
                        assert_true(*q == '\0');
                }
            } else {
                snprintf(s->name, sizeof s->name, "%.*s", (int)(sp - buf), buf);
            }
            assert_true(name_ok(s->name, strlen(s->name)));
            char *vend;
            s->value = strtod(sp + 1, &vend);
            assert_true(*vend == '\0' && vend != sp + 1);
            /* every sample belongs to the family declared last */
            int fi = family_index(p, s->name);
            assert_int_equal(fi, p->nt - 1);
        }
        line = nl + 1;
    }
}

static double get(const parsed *p, const char *name, const char *labels) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->s[i].name, name) == 0 && strcmp(p->s[i].labels, labels) == 0)
            return p->s[i].value;
    fail_msg("no sample %s{%s}", name, labels);
    return NAN;
}

static bool has_family(const parsed *p, const char *name, const char *type) {
    for (int i = 0; i < p->nt; i++)
        if (strcmp(p->type[i], name) == 0)
            return strcmp(p->type_of[i], type) == 0;
    return false;
}

/* Histogram: buckets cumulative and ascending, +Inf == _count. */
static void check_hist(const parsed *p, const char *name, double count, double sum) {
    char bucket[128], cnt[128], sm[128];
    snprintf(bucket, sizeof bucket, "%s_bucket", name);
    snprintf(cnt, sizeof cnt, "%s_count", name);
    snprintf(sm, sizeof sm, "%s_sum", name);
    double last = -1, last_le = -1;
    bool inf = false;
    for (int i = 0; i < p->n; i++) {
        if (strcmp(p->s[i].name, bucket) != 0)
            continue;
        assert_false(inf);
        assert_true(p->s[i].value >= last);
        last = p->s[i].value;
        const char *le = p->s[i].labels;
        assert_true(strncmp(le, "le=\"", 4) == 0);
        if (strcmp(le, "le=\"+Inf\"") == 0) {
            inf = true;
            assert_true(last == count);
        } else {
            double b = strtod(le + 4, NULL);
            assert_true(b > last_le);
            last_le = b;
        }
    }
    assert_true(inf);
    assert_true(get(p, cnt, "") == count);
    assert_true(fabs(get(p, sm, "") - sum) < 1e-9 * (1 + sum));
}

/* ---- the scripted run ---- */

static tl_out finding(uint16_t check, uint8_t sev) {
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_FINDING;
    tl_finding_init(&o.u.finding, check);
    o.u.finding.severity = sev;
    return o;
}

static tl_out action(uint8_t state, uint8_t cmd, uint8_t mode, uint8_t block) {
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_ACTION;
    tl_action *a = &o.u.action;
    a->state = state;
    a->cmd = cmd;
    a->mode = mode;
    a->on = cmd == TL_CMD_WITHDRAWALS_HALT;
    a->block = block;
    a->from_mode = TL_FROM_MODE_NONE;
    return o;
}

static void test_scripted_run(void **state) {
    (void)state;
    tl_metrics *m = calloc(1, sizeof *m);
    assert_non_null(m);
    tl_metrics_init(m);
    /* findings: 2 FORK (SEV1), 1 UNCLASSIFIED (missing + out_of_order), 3
     * SEQ_DUPLICATE (info), 1 WAL_LAG SEV2, 1 ENGINE_SILENT (degraded) */
    tl_out o;
    for (int i = 0; i < 2; i++) {
        o = finding(TL_CHECK_FORK, TL_SEV_SEV1);
        tl_metrics_on_out(m, &o);
    }
    o = finding(TL_CHECK_UNCLASSIFIED, TL_SEV_SEV1);
    tl_metrics_on_out(m, &o);
    for (int i = 0; i < 3; i++) {
        o = finding(TL_CHECK_SEQ_DUPLICATE, TL_SEV_INFO);
        tl_metrics_on_out(m, &o);
    }
    o = finding(TL_CHECK_WAL_LAG, TL_SEV_SEV2);
    tl_metrics_on_out(m, &o);
    o = finding(TL_CHECK_ENGINE_SILENT, TL_SEV_DEGRADED);
    tl_metrics_on_out(m, &o);
    /* actions: HARD_HALT planned+executed+applied (detect 1 ms before the
     * send, 3 ms before applied); withdrawals planned+executed+failed; a
     * CANCEL_ONLY planned+blocked{cooldown}; another blocked{detect_only} */
    o = action(TL_ACT_PLANNED, TL_CMD_SET_SYMBOL_MODE, TL_MODE_HARD_HALT, 0);
    tl_metrics_on_out(m, &o);
    o = action(TL_ACT_EXECUTED, TL_CMD_SET_SYMBOL_MODE, TL_MODE_HARD_HALT, 0);
    o.u.action.detect_ns = 1000000000;
    o.u.action.sent_ns = 1001000000;
    tl_metrics_on_out(m, &o);
    o.u.action.state = TL_ACT_APPLIED;
    o.u.action.applied_ns = 1003000000;
    tl_metrics_on_out(m, &o);
    o = action(TL_ACT_PLANNED, TL_CMD_WITHDRAWALS_HALT, 0, 0);
    tl_metrics_on_out(m, &o);
    o = action(TL_ACT_EXECUTED, TL_CMD_WITHDRAWALS_HALT, 0, 0);
    o.u.action.detect_ns = 1000000000;
    o.u.action.sent_ns = 1000002000; /* 2 us */
    tl_metrics_on_out(m, &o);
    o.u.action.state = TL_ACT_FAILED;
    tl_metrics_on_out(m, &o);
    o = action(TL_ACT_PLANNED, TL_CMD_SET_SYMBOL_MODE, TL_MODE_CANCEL_ONLY, 0);
    tl_metrics_on_out(m, &o);
    o = action(TL_ACT_BLOCKED, TL_CMD_SET_SYMBOL_MODE, TL_MODE_CANCEL_ONLY, TL_BLOCK_COOLDOWN);
    tl_metrics_on_out(m, &o);
    o = action(TL_ACT_BLOCKED, TL_CMD_SET_SYMBOL_MODE, TL_MODE_HARD_HALT, TL_BLOCK_DETECT_ONLY);
    tl_metrics_on_out(m, &o);
    /* the dead-man: a MODE_CHANGE with a zero command id; and one of ours */
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_MODE_SEEN;
    o.u.mode.mode = TL_MODE_CANCEL_ONLY;
    tl_metrics_on_out(m, &o);
    o.u.mode.command_id[0] = 7;
    tl_metrics_on_out(m, &o);
    /* a stats snapshot: the loop counted 5 info duplicates (2 were only
     * counted, the queue was full), records and a sampled histogram */
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_STATS;
    tl_loop_stats *st = &o.u.stats;
    st->c.records_ring = 1000;
    st->c.records_wal = 990;
    st->c.findings[TL_CHECK_SEQ_DUPLICATE] = 5;
    st->c.findings[TL_CHECK_FORK] = 1; /* behind the events: the larger wins */
    st->c.ring_lapped = 4;
    st->engine_seq = 12345;
    st->durable_seq = 12300;
    st->ring_lag_bytes = 4096;
    st->iter_hist[0] = 10; /* < 64 ns */
    st->iter_hist[3] = 5;  /* < 512 ns */
    st->iter_hist[TL_LOOP_HIST_BUCKETS - 1] = 1;
    st->iter_samples = 16;
    st->iter_sum_ns = 5000;
    st->global_mode = TL_MODE_HARD_HALT;
    st->lease.inconclusive_total = 11;
    tl_metrics_on_out(m, &o);
    m->reconcile_runs = 3;
    m->reconcile_mismatch = 1;

    tl_metrics_extra x;
    memset(&x, 0, sizeof x);
    x.stage_action = TL_ACTION_LIVE;
    x.armed = true;
    x.hot_healthy = true;
    x.canary_phase = TL_CANARY_WATCHING;
    /* the lease poller's and the webhooks' own counters */
    tl_lease_poll_stats lp;
    memset(&lp, 0, sizeof lp);
    lp.failed[TL_ETCD_ERR_TIMEOUT] = 7;
    lp.failed[TL_ETCD_ERR_CONFIG] = 2; /* refused starts */
    lp.parse_rejected[TL_LEASE_ERR_JSON] = 3;
    lp.parse_rejected[TL_LEASE_ERR_TOO_LARGE] = 1;
    x.lease_poll = &lp;
    x.lease_configured = true;
    tl_webhook_stats ws;
    memset(&ws, 0, sizeof ws);
    ws.failed = 4;
    ws.refused = 5;
    ws.unformatted = 6;
    x.webhooks = &ws;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n = tl_metrics_render(m, &x, buf, cap);
    assert_true(n > 0 && n < cap);
    parsed *p = calloc(1, sizeof *p);
    assert_non_null(p);
    parse_text(buf, n, p);

    /* every family of behavior.md's table, with its type */
    static const char *const counters[] = {
        "tally_records_total",
        "tally_findings_total",
        "tally_mismatch_total",
        "tally_action_planned_total",
        "tally_action_executed_total",
        "tally_action_applied_total",
        "tally_action_blocked_total",
        "tally_ring_lapped_total",
        "tally_peer_rejected_total",
        "tally_reconcile_runs_total",
        "tally_reconcile_runs_with_mismatch_total",
        "tally_deadman_expired_total",
    };
    static const char *const gauges[] = {
        "tally_engine_seq",       "tally_wal_durable_seq",           "tally_ledger_seq",
        "tally_peer_applied_seq", "tally_settlement_lag_seconds",    "tally_settlement_lag_records",
        "tally_ring_lag_bytes",   "tally_last_snapshot_age_seconds",
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        assert_true(has_family(p, counters[i], "counter"));
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++)
        assert_true(has_family(p, gauges[i], "gauge"));
    assert_true(has_family(p, "tally_detect_to_send_seconds", "histogram"));
    assert_true(has_family(p, "tally_detect_to_applied_seconds", "histogram"));
    assert_true(has_family(p, "tally_loop_iteration_seconds", "histogram"));

    /* values against the script */
    assert_true(get(p, "tally_records_total", "source=\"ring\"") == 1000);
    assert_true(get(p, "tally_records_total", "source=\"wal\"") == 990);
    assert_true(get(p, "tally_findings_total", "check=\"FORK\",class=\"out_of_order\"") == 2);
    assert_true(get(p, "tally_findings_total", "check=\"SEQ_DUPLICATE\",class=\"dup\"") == 5);
    assert_true(get(p, "tally_findings_total", "check=\"UNCLASSIFIED\",class=\"missing\"") == 1);
    assert_true(get(p, "tally_findings_total", "check=\"UNCLASSIFIED\",class=\"out_of_order\"") ==
                1);
    assert_true(get(p, "tally_findings_total", "check=\"ENGINE_SILENT\",class=\"delay\"") == 1);
    /* mismatch: SEV1/SEV2 only: 2 FORK + UNCLASSIFIED in out_of_order, UNCLASSIFIED in
     * missing, WAL_LAG in delay; the duplicates never count */
    assert_true(get(p, "tally_mismatch_total", "class=\"out_of_order\"") == 3);
    assert_true(get(p, "tally_mismatch_total", "class=\"missing\"") == 1);
    assert_true(get(p, "tally_mismatch_total", "class=\"delay\"") == 1);
    assert_true(get(p, "tally_mismatch_total", "class=\"dup\"") == 0);
    assert_true(get(p, "tally_action_planned_total", "action=\"hard_halt\"") == 1);
    assert_true(get(p, "tally_action_planned_total", "action=\"withdrawals_halt\"") == 1);
    assert_true(get(p, "tally_action_planned_total", "action=\"cancel_only\"") == 1);
    assert_true(get(p, "tally_action_executed_total", "action=\"hard_halt\"") == 1);
    assert_true(get(p, "tally_action_executed_total", "action=\"withdrawals_halt\"") == 1);
    assert_true(get(p, "tally_action_applied_total", "action=\"hard_halt\"") == 1);
    assert_true(get(p, "tally_action_applied_total", "action=\"withdrawals_halt\"") == 0);
    assert_true(get(p, "tally_action_failed_total", "action=\"withdrawals_halt\"") == 1);
    assert_true(
        get(p, "tally_action_blocked_total", "action=\"cancel_only\",reason=\"cooldown\"") == 1);
    assert_true(
        get(p, "tally_action_blocked_total", "action=\"hard_halt\",reason=\"detect_only\"") == 1);
    assert_true(get(p, "tally_engine_seq", "") == 12345);
    assert_true(get(p, "tally_wal_durable_seq", "") == 12300);
    assert_true(get(p, "tally_ring_lag_bytes", "") == 4096);
    assert_true(get(p, "tally_ring_lapped_total", "") == 4);
    assert_true(get(p, "tally_reconcile_runs_total", "") == 3);
    assert_true(get(p, "tally_reconcile_runs_with_mismatch_total", "") == 1);
    assert_true(get(p, "tally_deadman_expired_total", "") == 1);
    assert_true(get(p, "tally_armed", "") == 1);
    assert_true(get(p, "tally_stage", "stage=\"live\"") == 1);
    assert_true(get(p, "tally_stage", "stage=\"detect\"") == 0);
    assert_true(get(p, "tally_canary_phase", "phase=\"watching\"") == 1);
    assert_true(get(p, "tally_engine_mode", "") == TL_MODE_HARD_HALT);
    assert_true(get(p, "tally_lease_rejected_total", "stage=\"fetch\",reason=\"timeout\"") == 7);
    assert_true(get(p, "tally_lease_rejected_total", "stage=\"fetch\",reason=\"config\"") == 2);
    assert_true(get(p, "tally_lease_rejected_total", "stage=\"fetch\",reason=\"connect\"") == 0);
    assert_true(get(p, "tally_lease_rejected_total", "stage=\"parse\",reason=\"bad_json\"") == 3);
    assert_true(get(p, "tally_lease_rejected_total", "stage=\"parse\",reason=\"body_too_large\"") ==
                1);
    assert_true(get(p, "tally_lease_inconclusive_total", "") == 11);
    assert_true(get(p, "tally_webhook_failed_total", "") == 4);
    assert_true(get(p, "tally_webhook_refused_total", "reason=\"invalid\"") == 5);
    assert_true(get(p, "tally_webhook_refused_total", "reason=\"unformatted\"") == 6);
    /* histograms: sends at 1 ms and 2 us, one applied at 3 ms */
    check_hist(p, "tally_detect_to_send_seconds", 2, 0.001 + 0.000002);
    assert_true(get(p, "tally_detect_to_send_seconds_bucket", "le=\"2.5e-06\"") == 1);
    assert_true(get(p, "tally_detect_to_send_seconds_bucket", "le=\"0.001\"") == 2);
    check_hist(p, "tally_detect_to_applied_seconds", 1, 0.003);
    assert_true(get(p, "tally_detect_to_applied_seconds_bucket", "le=\"0.0025\"") == 0);
    assert_true(get(p, "tally_detect_to_applied_seconds_bucket", "le=\"0.005\"") == 1);
    check_hist(p, "tally_loop_iteration_seconds", 16, 5e-6);
    assert_true(get(p, "tally_loop_iteration_seconds_bucket", "le=\"6.4e-08\"") == 10);
    assert_true(get(p, "tally_loop_iteration_seconds_bucket", "le=\"5.12e-07\"") == 15);
    /* not configured: the families are there, without samples */
    for (int i = 0; i < p->n; i++) {
        assert_string_not_equal(p->s[i].name, "tally_ledger_seq");
        assert_string_not_equal(p->s[i].name, "tally_peer_rejected_total");
    }
    /* a buffer too small: nothing partial */
    assert_int_equal(tl_metrics_render(m, &x, buf, n - 1), 0);
    assert_int_equal(tl_metrics_render(m, &x, buf, n + 1), n);
    free(p);
    free(buf);
    free(m);
}

static void test_histogram_bounds(void **state) {
    (void)state;
    tl_hist h;
    memset(&h, 0, sizeof h);
    tl_hist_observe(&h, 0);
    tl_hist_observe(&h, 1e-6); /* on a bound: that bucket */
    tl_hist_observe(&h, 11.0); /* above the last bound */
    tl_hist_observe(&h, -1.0); /* clamped */
    assert_int_equal(h.buckets[0], 3);
    assert_int_equal(h.inf, 1);
    assert_int_equal(h.count, 4);
    for (unsigned i = 1; i < TL_HIST_BUCKETS; i++)
        assert_true(tl_hist_bounds_s[i] > tl_hist_bounds_s[i - 1]);
    tl_action a;
    memset(&a, 0, sizeof a);
    a.cmd = TL_CMD_WITHDRAWALS_HALT;
    a.on = 0;
    assert_int_equal(tl_metric_action_of(&a), TL_MA_WITHDRAWALS_RESUME);
    a.cmd = TL_CMD_SET_SYMBOL_MODE;
    a.mode = TL_MODE_NORMAL;
    assert_string_equal(tl_metric_action_name(tl_metric_action_of(&a)), "normal");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scripted_run),
        cmocka_unit_test(test_histogram_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
