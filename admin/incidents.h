/* incidents.h: findings grouped per incident, with their actions and their
 * bundle, for GET /incidents and GET /incidents/{id}; and the recent actions
 * by command id (GET /actions/{id}, and requests that wait for an action).
 *
 * The loop numbers incidents (tl_finding.incident: SEV1/SEV2 findings with
 * less than incident_gap_ms between them share one) and tags the actions
 * they plan with it. This file only groups what the out-queue brings. All
 * memory is taken once at init; the newest TL_INC_MAX incidents are kept,
 * each with its first TL_INC_FINDINGS findings and TL_INC_ACTIONS actions
 * (the rest are counted). Incident numbers restart with tallyd; the audit
 * log keeps the history.
 */
#ifndef TL_INCIDENTS_H
#define TL_INCIDENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/api_json.h"
#include "admin/bundle.h"
#include "core/loop.h"

#define TL_INC_MAX        128u
#define TL_INC_FINDINGS   32u
#define TL_INC_ACTIONS    32u
#define TL_RECENT_ACTIONS 256u

/* One command's lifecycle, compact. */
typedef struct tl_inc_action {
    uint8_t id[TL_ID_BYTES];
    uint8_t cmd;
    uint8_t mode;
    uint8_t from_mode;
    uint8_t key;
    uint8_t on;
    uint8_t origin;
    uint8_t state; /* the latest: enum tl_action_state */
    uint8_t block;
    uint8_t severity;
    uint16_t error; /* tl_admin_wire when FAILED */
    uint16_t check;
    uint64_t incident;
    uint64_t finding_id;
    uint64_t applied_seq;
    uint64_t detect_to_send_ns;
    uint64_t detect_to_applied_ns;
    uint64_t first_real_ns; /* when the control thread first saw it */
    uint64_t last_real_ns;
    char symbol[TL_SYMBOL_NAME_MAX + 1];
    char ticket[TL_TICKET_MAX + 1];
} tl_inc_action;

typedef struct tl_incident {
    uint64_t id; /* 0 = free slot */
    uint64_t opened_real_ns;
    uint64_t last_real_ns;
    uint64_t from_seq;
    uint64_t to_seq;
    uint8_t severity; /* the highest */
    uint8_t classes;  /* tl_class bits of all its findings */
    uint64_t findings_total;
    uint64_t by_check[TL_CHECK_COUNT];
    uint32_t n_findings;
    tl_finding findings[TL_INC_FINDINGS];
    uint32_t n_actions;
    uint64_t actions_total;
    tl_inc_action actions[TL_INC_ACTIONS];
    /* the forensic bundle */
    bool bundle_requested;
    uint64_t bundle_from_seq;
    uint64_t bundle_to_seq;
    char bundle_id[48];
    char bundle_path[TL_BUNDLE_PATH_MAX]; /* the service's paths: never cut */
    char bundle_state[24];  /* "requested", "queued", "exporting", "done", "degraded", "failed" */
    char bundle_error[256]; /* failed: the error's name; degraded: the parts missing (all
                             * TL_BUNDLE_DEG_COUNT names fit) */
} tl_incident;

typedef struct tl_incidents {
    tl_incident *inc; /* [TL_INC_MAX], a ring: newest at (head + count - 1) */
    uint32_t head;
    uint32_t count;
    uint64_t evicted_total;
    tl_inc_action recent[TL_RECENT_ACTIONS]; /* a ring by first sight */
    uint32_t recent_next;
    uint32_t recent_count;
} tl_incidents;

/* Allocates the tables (start-up). Returns false when out of memory. */
bool tl_incidents_init(tl_incidents *t);
void tl_incidents_free(tl_incidents *t);

/* An out-queue event (findings, actions, bundle requests). now_real_ns is
 * the control thread's clock, for the times shown. */
void tl_incidents_on_out(tl_incidents *t, const tl_out *o, uint64_t now_real_ns);

/* A bundle worker's progress for an incident (admin/bundle, when present). */
void tl_incidents_bundle(tl_incidents *t, uint64_t incident, const char *bundle_id,
                         const char *path, const char *state);

/* The bundle's named error (failed) or its degradations ("" for none). */
void tl_incidents_bundle_error(tl_incidents *t, uint64_t incident, const char *error);

const tl_incident *tl_incidents_get(const tl_incidents *t, uint64_t id);
const tl_inc_action *tl_incidents_action(const tl_incidents *t, const uint8_t id[TL_ID_BYTES]);

/* JSON: the list (newest first, at most limit, summaries), one incident in
 * full, one action. */
void tl_incidents_json_list(const tl_incidents *t, uint32_t limit, tl_jb *b);
void tl_incidents_json_one(const tl_incident *inc, tl_jb *b);
void tl_inc_action_json(const tl_inc_action *a, tl_jb *b, const char *key);

#endif
