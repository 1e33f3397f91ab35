/* alerts.h: tallyd's alert webhooks (behavior.md "Action table"; issue 4.6),
 * the control thread's side: every SEV1/SEV2 finding and every action event
 * (each state change: PLANNED, BLOCKED, EXECUTED, APPLIED, FAILED) that the
 * hot loop sends out becomes one JSON message, POSTed to every
 * webhooks.urls entry by io/webhook.h (libcurl multi, retries with
 * exponential backoff, a bounded FIFO of webhooks.queue messages that drops
 * the oldest, webhooks.timeout_ms per POST). The hot loop never waits on
 * any of it: it only ever pushes onto its out-queue.
 *
 * Two shapes (webhooks.format):
 *   "tally"         one object: {"type":"finding"|"action","instance",
 *                   "ts_ns", "finding":{...} (the audit's finding JSON) or
 *                   "state" and "action":{...}}, keys sorted;
 *   "alertmanager"  an Alertmanager-compatible array of one alert:
 *                   [{"labels":{"alertname":<check>,"severity","class",
 *                   "scope","instance","event",(actions: "state","action")},
 *                   "annotations":{"summary","description"},
 *                   "startsAt":<RFC 3339>}], what POST /api/v2/alerts takes.
 */
#ifndef TL_ALERTS_H
#define TL_ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/config.h"
#include "core/loop.h"
#include "io/webhook.h"

enum tl_alert_format {
    TL_ALERT_TALLY = 0,
    TL_ALERT_ALERTMANAGER,
};

/* Whether an out-queue event is alerted: SEV1/SEV2 findings and action
 * events. */
bool tl_alert_wanted(const tl_out *o);

/* One event as a message body; returns its length, or 0 if it is not
 * alerted or does not fit cap. instance: tallyd's instance id. */
size_t tl_alert_format(enum tl_alert_format fmt, const char *instance, const tl_out *o,
                       uint64_t now_real_ns, char *out, size_t cap);

typedef struct tl_alerts tl_alerts;

/* With no webhooks.urls *out is NULL and 0 is returned. */
int tl_alerts_open(tl_alerts **out, const tl_config *c, char *err, size_t err_cap);
void tl_alerts_close(tl_alerts *a);
/* The instance id the alerts carry (the control API's). */
void tl_alerts_set_instance(tl_alerts *a, const char *instance_id);

/* Each out-queue event, in order (control.c). NULL a: no-op. */
void tl_alerts_on_out(tl_alerts *a, const tl_out *o, uint64_t now_real_ns);
/* Once per control pass: drives the POSTs. Never blocks. */
void tl_alerts_pass(tl_alerts *a, uint64_t now_mono_ns);
/* At stop: up to timeout_ms for what is pending. */
void tl_alerts_flush(tl_alerts *a, uint64_t timeout_ms);

/* The delivery counters (stable pointer, kept current by every call). */
const tl_webhook_stats *tl_alerts_stats(const tl_alerts *a);

#endif
