/* alerts.c: alert webhooks on tallyd's control thread (see alerts.h). */
#include "alerts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_err.h"
#include "admin/jsonw.h"
#include "core/assert.h"

struct tl_alerts {
    tl_webhook *hook;
    enum tl_alert_format fmt;
    char instance[64];
    uint64_t unformatted; /* events that did not fit a message (never expected) */
    char body[TL_WEBHOOK_BODY_MAX];
};

bool tl_alert_wanted(const tl_out *o) {
    if (o->type == TL_OUT_FINDING)
        return o->u.finding.severity >= TL_SEV_SEV2;
    return o->type == TL_OUT_ACTION;
}

/* "2026-11-21T10:00:00.123Z" */
static void rfc3339(uint64_t real_ns, char out[32]) {
    time_t secs = (time_t)(real_ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(real_ns / 1000000ull % 1000u));
}

/* "out_of_order", or "missing,out_of_order" for two classes. */
static void class_text(uint8_t cls, char *out, size_t cap) {
    size_t n = 0;
    out[0] = '\0';
    for (unsigned bit = 1; bit < (1u << TL_CLASS_COUNT); bit <<= 1) {
        if ((cls & bit) == 0)
            continue;
        int w = snprintf(out + n, cap - n, "%s%s", n ? "," : "", tl_class_name(bit));
        if (w < 0 || (size_t)w >= cap - n)
            return;
        n += (size_t)w;
    }
}

static size_t action_json(const tl_action *a, char *out, size_t cap) {
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_hex(&w, "id", a->id, TL_ID_BYTES);
    tl_jw_str(&w, "cmd", tl_cmd_name(a->cmd));
    tl_jw_str(&w, "symbol", a->symbol_name);
    if (a->cmd == TL_CMD_SET_SYMBOL_MODE)
        tl_jw_str(&w, "mode", tl_mode_name(a->mode));
    if (a->cmd == TL_CMD_WITHDRAWALS_HALT)
        tl_jw_bool(&w, "on", a->on);
    tl_jw_str(&w, "reason", a->reason);
    tl_jw_str(&w, "ticket", a->ticket);
    tl_jw_u64s(&w, "fence", a->fence);
    if (a->check != TL_CHECK_NONE)
        tl_jw_str(&w, "check", tl_check_name((enum tl_check)a->check));
    tl_jw_u64s(&w, "finding_id", a->finding_id);
    tl_jw_u64s(&w, "incident", a->incident);
    tl_jw_str(&w, "origin", tl_origin_name(a->origin));
    tl_jw_str(&w, "severity", tl_severity_name((enum tl_severity)a->severity));
    tl_jw_str(&w, "state", tl_action_state_name(a->state));
    if (a->state == TL_ACT_BLOCKED)
        tl_jw_str(&w, "block_reason", tl_block_name(a->block));
    if (a->state == TL_ACT_FAILED)
        tl_jw_str(&w, "error", tl_admin_wire_name((enum tl_admin_wire)a->error));
    if (a->state == TL_ACT_APPLIED)
        tl_jw_u64s(&w, "applied_seq", a->applied_seq);
    return tl_jw_render(&w, out, cap);
}

static size_t format_tally(const char *instance, const tl_out *o, uint64_t now_real_ns, char *out,
                           size_t cap) {
    char inner[TL_WEBHOOK_BODY_MAX];
    size_t n;
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_str(&w, "instance", instance);
    tl_jw_u64s(&w, "ts_ns", now_real_ns);
    if (o->type == TL_OUT_FINDING) {
        n = tl_finding_json(&o->u.finding, inner, sizeof inner);
        if (n == 0 || n >= sizeof inner - 1)
            return 0;
        tl_jw_str(&w, "type", "finding");
        tl_jw_raw(&w, "finding", inner, n);
    } else {
        n = action_json(&o->u.action, inner, sizeof inner);
        if (n == 0)
            return 0;
        tl_jw_str(&w, "type", "action");
        tl_jw_str(&w, "state", tl_action_state_name(o->u.action.state));
        tl_jw_raw(&w, "action", inner, n);
    }
    return tl_jw_render(&w, out, cap);
}

static size_t format_alertmanager(const char *instance, const tl_out *o, uint64_t now_real_ns,
                                  char *out, size_t cap) {
    char labels[1024], ann[TL_WEBHOOK_BODY_MAX], desc[TL_WEBHOOK_BODY_MAX], summary[256];
    char cls[64], scope[32], starts[32], alert[TL_WEBHOOK_BODY_MAX];
    tl_jw l;
    tl_jw_init(&l);
    tl_jw_str(&l, "instance", instance);
    if (o->type == TL_OUT_FINDING) {
        const tl_finding *f = &o->u.finding;
        class_text(f->cls, cls, sizeof cls);
        if (f->symbol == 0)
            snprintf(scope, sizeof scope, "*");
        else
            snprintf(scope, sizeof scope, "%u", f->symbol);
        tl_jw_str(&l, "alertname", tl_check_name((enum tl_check)f->check));
        tl_jw_str(&l, "severity", tl_severity_name((enum tl_severity)f->severity));
        tl_jw_str(&l, "class", cls);
        tl_jw_str(&l, "scope", scope);
        tl_jw_str(&l, "event", "finding");
        snprintf(summary, sizeof summary, "%s %s (%s) on %s at seq %llu",
                 tl_severity_name((enum tl_severity)f->severity),
                 tl_check_name((enum tl_check)f->check), cls, scope, (unsigned long long)f->seq);
        size_t n = tl_finding_json(f, desc, sizeof desc);
        if (n == 0 || n >= sizeof desc - 1)
            return 0;
    } else {
        const tl_action *a = &o->u.action;
        const char *check =
            a->check != TL_CHECK_NONE ? tl_check_name((enum tl_check)a->check) : "TALLY_ACTION";
        cls[0] = '\0';
        if (a->check != TL_CHECK_NONE && a->check < TL_CHECK_COUNT)
            class_text(tl_check_info_of((enum tl_check)a->check)->cls, cls, sizeof cls);
        tl_jw_str(&l, "alertname", check);
        tl_jw_str(&l, "severity", tl_severity_name((enum tl_severity)a->severity));
        tl_jw_str(&l, "class", cls);
        tl_jw_str(&l, "scope", a->symbol_name);
        tl_jw_str(&l, "event", "action");
        tl_jw_str(&l, "state", tl_action_state_name(a->state));
        tl_jw_str(&l, "action", tl_cmd_name(a->cmd));
        snprintf(summary, sizeof summary, "%s %s %s%s%s (%s)", tl_action_state_name(a->state),
                 tl_cmd_name(a->cmd), a->symbol_name, a->cmd == TL_CMD_SET_SYMBOL_MODE ? " " : "",
                 a->cmd == TL_CMD_SET_SYMBOL_MODE ? tl_mode_name(a->mode) : "", check);
        if (action_json(a, desc, sizeof desc) == 0)
            return 0;
    }
    size_t ln = tl_jw_render(&l, labels, sizeof labels);
    tl_jw an;
    tl_jw_init(&an);
    tl_jw_str(&an, "summary", summary);
    tl_jw_str(&an, "description", desc);
    size_t annn = tl_jw_render(&an, ann, sizeof ann);
    if (ln == 0 || annn == 0)
        return 0;
    rfc3339(now_real_ns, starts);
    tl_jw a;
    tl_jw_init(&a);
    tl_jw_raw(&a, "labels", labels, ln);
    tl_jw_raw(&a, "annotations", ann, annn);
    tl_jw_str(&a, "startsAt", starts);
    size_t n = tl_jw_render(&a, alert, sizeof alert);
    if (n == 0 || n + 3 > cap)
        return 0;
    out[0] = '[';
    memcpy(out + 1, alert, n);
    out[n + 1] = ']';
    out[n + 2] = '\0';
    return n + 2;
}

size_t tl_alert_format(enum tl_alert_format fmt, const char *instance, const tl_out *o,
                       uint64_t now_real_ns, char *out, size_t cap) {
    if (!tl_alert_wanted(o))
        return 0;
    return fmt == TL_ALERT_ALERTMANAGER ? format_alertmanager(instance, o, now_real_ns, out, cap)
                                        : format_tally(instance, o, now_real_ns, out, cap);
}

int tl_alerts_open(tl_alerts **out, const tl_config *c, char *err, size_t err_cap) {
    *out = NULL;
    if (c->webhook_count == 0)
        return 0;
    tl_alerts *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, err_cap, "webhooks: out of memory");
        return -1;
    }
    a->fmt =
        strcmp(c->webhook_format, "alertmanager") == 0 ? TL_ALERT_ALERTMANAGER : TL_ALERT_TALLY;
    snprintf(a->instance, sizeof a->instance, "tallyd");
    const char *urls[TL_WEBHOOK_URLS_MAX];
    uint32_t n = c->webhook_count < TL_WEBHOOK_URLS_MAX ? c->webhook_count : TL_WEBHOOK_URLS_MAX;
    for (uint32_t i = 0; i < n; i++)
        urls[i] = c->webhook_urls[i];
    tl_webhook_cfg wc = {
        .urls = urls,
        .url_count = n,
        .queue = c->webhook_queue > TL_WEBHOOK_QUEUE_MAX ? TL_WEBHOOK_QUEUE_MAX
                                                         : (uint32_t)c->webhook_queue,
        .timeout_ms = c->webhook_timeout_ms,
    };
    if (tl_webhook_open(&a->hook, &wc, err, err_cap) != 0) {
        free(a);
        return -1;
    }
    *out = a;
    return 0;
}

void tl_alerts_close(tl_alerts *a) {
    if (a == NULL)
        return;
    tl_webhook_close(a->hook);
    free(a);
}

void tl_alerts_set_instance(tl_alerts *a, const char *instance_id) {
    if (a != NULL)
        snprintf(a->instance, sizeof a->instance, "%s", instance_id);
}

void tl_alerts_on_out(tl_alerts *a, const tl_out *o, uint64_t now_real_ns) {
    if (a == NULL || !tl_alert_wanted(o))
        return;
    size_t n = tl_alert_format(a->fmt, a->instance, o, now_real_ns, a->body, sizeof a->body);
    if (n == 0) {
        a->unformatted++;
        tl_webhook_note_unformatted(a->hook); /* exported: tally_webhook_refused_total */
        return;
    }
    /* n <= the body max, so it is always queued; a refusal would be a bug,
     * and is counted (stats.refused) rather than lost. */
    (void)tl_webhook_post(a->hook, a->body, n);
}

void tl_alerts_pass(tl_alerts *a, uint64_t now_mono_ns) {
    if (a != NULL)
        tl_webhook_pass(a->hook, now_mono_ns);
}

void tl_alerts_flush(tl_alerts *a, uint64_t timeout_ms) {
    if (a != NULL)
        tl_webhook_flush(a->hook, timeout_ms);
}

const tl_webhook_stats *tl_alerts_stats(const tl_alerts *a) {
    return tl_webhook_stats_of(a->hook);
}
