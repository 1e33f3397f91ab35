/* api_int.h: the control API's state, shared by its files:
 *   api.c          listeners, MHD, requests, routing, suspension
 *   api_handlers.c the endpoints
 *   api_events.c   the out-queue events and the per-pass work (canary,
 *                  auto-resume, reconcile results)
 * Everything here belongs to the control thread.
 */
#ifndef TL_API_INT_H
#define TL_API_INT_H

#include <microhttpd.h>

#include "admin/api.h"
#include "admin/api_json.h"
#include "admin/incidents.h"
#include "admin/metrics.h"
#include "admin/log.h"
#include "admin/reconcile.h"
#include "core/canary.h"

#define TL_API_SLOTS     (2u * TL_API_CONNS + 8u)
#define TL_API_TOKEN_MAX 256u
#define TL_API_HALTS     8u /* SETTLEMENT_LAG halts of ours tracked for auto-resume */

enum api_wait {
    API_WAIT_NONE = 0,
    API_WAIT_POLICY, /* the loop's TL_OUT_CTL_ACK with our token */
    API_WAIT_ACTION, /* an action event past PLANNED for our id */
};

/* One request in progress (MHD's con_cls). */
typedef struct api_req {
    bool used;
    bool tcp;
    bool too_large;
    bool suspended;
    bool ready; /* its wait is over: answer on the next call */
    bool timed_out;
    uint8_t wait;            /* enum api_wait */
    uint64_t token;          /* POLICY */
    uint8_t id[TL_ID_BYTES]; /* ACTION */
    uint64_t deadline_ns;
    struct MHD_Connection *conn;
    uint32_t body_len;
    char body[TL_API_BODY_MAX];
} api_req;

typedef struct api_listener {
    struct tl_api *api;
    bool tcp;
    struct MHD_Daemon *mhd;
    int fd;
} api_listener;

struct tl_api {
    tl_api_deps deps;
    const tl_config *cfg;
    char instance_id[33];
    uint64_t rng;
    api_listener unix_l;
    api_listener tcp_l;
    uint16_t tcp_port;
    char socket_path[TL_CFG_PATH_MAX];
    bool have_token;
    char token[TL_API_TOKEN_MAX];
    size_t token_len;
    api_req *slots; /* [TL_API_SLOTS] */
    char *resp;     /* TL_API_RESP_BYTES */
    uint64_t now_mono_ns;
    uint64_t now_real_ns;

    /* what the control thread knows */
    tl_metrics metrics;
    tl_incidents incidents;
    tl_reconcile *reconcile;
    tl_modes modes;
    tl_modes_sym *modes_mem;
    tl_canary canary;
    tl_autoresume ar;
    uint8_t ar_last_verdict;
    uint64_t ar_replies_seen;
    struct {
        uint8_t id[TL_ID_BYTES];
        char ticket[TL_TICKET_MAX + 1];
    } halts[TL_API_HALTS];
    uint32_t halts_next;
    /* the policy: as asked (shadow) and as the loop confirmed */
    uint8_t pol_action;
    bool pol_dry_run;
    bool pol_armed;
    uint64_t pol_token;       /* the last POLICY message sent */
    uint64_t pol_acked_token; /* the last one the loop confirmed */
    uint8_t loop_action;
    bool loop_dry_run;
    bool loop_armed;
    /* inputs */
    uint64_t wal_seq;
    uint64_t wal_changed_ns;
    uint64_t ring_records;
    uint64_t ring_changed_ns;
    uint64_t peer_accepted;
    uint64_t peer_changed_ns;
    bool safe_mode; /* the engine's dead-man fallback is in force */
    uint64_t deadman_seen_ns;
    /* counters */
    uint64_t ctl_full_total; /* ctl queue full: a message waits for the next pass */
};

/* api.c */
/* Wakes suspended requests whose wait an event ended. */
void api_wake_policy(struct tl_api *a, uint64_t acked_token);
void api_wake_action(struct tl_api *a, const uint8_t id[TL_ID_BYTES]);
bool api_ctl_push(struct tl_api *a, const tl_ctl_msg *m);
void api_mint_id(struct tl_api *a, uint8_t id[TL_ID_BYTES]);

/* api_handlers.c: answers one routed request; returns the MHD result. */
typedef struct api_ctx {
    struct tl_api *a;
    api_req *r;
    struct MHD_Connection *conn;
    const char *method;
    const char *url;
} api_ctx;
enum MHD_Result api_route(api_ctx *x);
enum MHD_Result api_send_json(api_ctx *x, unsigned status, tl_jb *b);
enum MHD_Result api_send_error(api_ctx *x, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* api_bundle.c: POST /bundle, GET /bundle/{id}, the loop's bundle requests,
 * the export service's events (each pass). */
enum MHD_Result api_bundle_post(api_ctx *x);
enum MHD_Result api_bundle_get(api_ctx *x, const char *id);
void api_bundle_on_out(struct tl_api *a, const tl_out *o);
void api_bundle_pass(struct tl_api *a);

/* api_events.c */
void api_events_init(struct tl_api *a);
void api_events_on_out(struct tl_api *a, const tl_out *o);
void api_events_pass(struct tl_api *a);
/* Writes the canary and auto-resume state members into b. */
void api_resume_json(struct tl_api *a, tl_jb *b);
/* Fills the metrics' extra state. */
void api_metrics_extra(struct tl_api *a, tl_metrics_extra *x);

#endif
