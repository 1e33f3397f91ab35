/* api.h: tallyd's operator surface: the control API (behavior.md "Control
 * API"), served by libmicrohttpd on the control thread, and the state it
 * shows and changes: metrics, incidents, on-demand reconciles, the kill
 * switch, manual escalation, canary resume and settlement-lag auto-resume.
 *
 * Threads. Everything here runs on the control thread: MHD in external
 * mode (MHD_run, non-blocking, once per control pass; epoll inside), the
 * out-queue events, the canary and auto-resume machines. It never reads
 * the hot loop's memory: it knows the loop through the out-queue (events
 * and 100 ms stats snapshots) and tl_loop.beat_ns (an atomic), and talks to
 * it through the ctl queue only. The one other thread is the reconcile
 * worker (admin/reconcile.h).
 *
 * A slow or hostile client cannot stall the control thread: sockets are
 * non-blocking, each listener takes at most TL_API_CONNS connections, idle
 * ones are dropped after TL_API_TIMEOUT_S, headers are bounded by MHD's
 * memory limit and bodies by TL_API_BODY_MAX (413 beyond). Requests that
 * wait for the hot loop (POST /policy, POST /actions/mode) are suspended,
 * never waited for, and answered when the loop's event arrives or at their
 * deadline.
 *
 * Endpoints (every one on control.socket, mode 0600; the GET ones also on
 * control.listen, where a POST needs `Authorization: Bearer <token>` of
 * control.token_file, else 403):
 *   GET  /healthz                 200 {"status":"ok"} while the hot loop beats, else 503
 *   GET  /capabilities            version, features, stage, policy, inputs and their ages
 *   GET  /metrics                 Prometheus text format 0.0.4
 *   POST /policy                  {"action","dry_run","armed"}: the kill switch
 *   GET  /policy                  the policy in force
 *   POST /actions/mode            {"symbol","mode","reason","ticket"}: manual escalation
 *   GET  /actions/{id}            one command's lifecycle
 *   POST /resume                  canary resume: {"symbol","window_ms","ticket","reason"},
 *                                 or {"symbols":[...]} (a batch), or {"withdrawals":true}
 *   GET  /resume                  the canary and auto-resume state
 *   POST /reconcile               {"from_seq","to_seq","symbols"}: 202 {"id"}
 *   GET  /reconcile/results       ?status=MISMATCH&limit=N, newest first
 *   GET  /reconcile/{id}          one run (queued, running with progress, or done)
 *   GET  /incidents[/{id}]        findings grouped per incident, actions, bundle
 *   POST /bundle                  {"incident","from_seq","to_seq"}: 202 {"id","path"}
 *   GET  /bundle/{id}             a forensic bundle's progress (admin/bundle.h)
 * Errors are {"error":{"code","message"}} with a stable snake_case code.
 */
#ifndef TL_API_H
#define TL_API_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/audit.h"
#include "admin/config.h"
#include "io/webhook.h"
#include "core/loop.h"
#include "shm/spsc.h"

#define TL_API_CONNS      32u        /* per listener */
#define TL_API_TIMEOUT_S  5u         /* an idle connection is closed */
#define TL_API_BODY_MAX   16384u     /* request body bytes; more is 413 */
#define TL_API_WAIT_MS    2000u      /* a suspended request's deadline */
#define TL_API_STALE_MS   1000u      /* the hot loop's beat older than this: 503 */
#define TL_API_RESP_BYTES (2u << 20) /* the largest response */

typedef struct tl_api_deps {
    const tl_config *cfg;
    tl_spsc *ctl;                /* the loop's command queue (we are its producer) */
    tl_audit *audit;             /* written on the control thread only */
    _Atomic uint64_t *beat_ns;   /* tl_loop.beat_ns */
    const tl_policy_cfg *policy; /* the policy the loop starts with */
    uint64_t tag_seed;           /* command ids (tl_action_id_mint) */
    bool operator_key;           /* keys.operator is configured */
    uint8_t dialect;             /* enum tl_dialect */
    uint32_t max_symbols;
    uint64_t start_mono_ns;
    const tl_webhook_stats *webhooks; /* alert delivery counters; NULL: no webhooks */
    /* the lease poller's counters (admin/lease_poll.h); NULL: no lease */
    const struct tl_lease_poll_stats *lease_poll;
    struct tl_bundle_svc *bundle; /* forensic bundles (admin/bundle.h); NULL: none */
    /* POST /reconcile's snapshots: the ledger poller's newest accepted
     * watermark (tl_ledger_poll_last, a call on this thread: tl_api does not
     * link the daemon's poller; NULL: no ledger) and the loop's peer state,
     * read through its seqlock only (NULL: no peers). */
    const struct tl_ledger_poll *ledger_poll;
    bool (*ledger_last)(const struct tl_ledger_poll *p, tl_ledger_wm *out);
    const struct tl_peer *peer;
} tl_api_deps;

typedef struct tl_api tl_api;

/* Binds the listeners (control.socket, control.listen), reads the token,
 * loads the reconcile results and starts the reconcile worker. */
int tl_api_create(tl_api **out, const tl_api_deps *deps, char *err, size_t cap);
/* Answers what is suspended, stops the listeners and the worker. */
void tl_api_destroy(tl_api *a);

/* Each out-queue event, in order (control.c's on_out). */
void tl_api_on_out(tl_api *a, const tl_out *o, uint64_t now_mono_ns, uint64_t now_real_ns);
/* Once per control pass: serve HTTP, move the canary, feed the loop. */
void tl_api_pass(tl_api *a, uint64_t now_mono_ns, uint64_t now_real_ns);

/* The TCP port actually bound (control.listen with port 0), 0 if none. */
uint16_t tl_api_tcp_port(const tl_api *a);
const char *tl_api_instance_id(const tl_api *a);

#endif
