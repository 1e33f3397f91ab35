/* actuator.h: the loop's sink. It turns a tl_action into a signed admin line
 * (engine-admin.md) and sends it on the kept connection, and it reads the
 * engine's replies back.
 *
 * Ownership is split so the hot loop never waits:
 * - the hot loop owns the client: it sends and receives without blocking;
 * - the control thread connects (and reconnects with backoff 1, 2, 4 ...
 *   250 ms) and hands a connected socket over through one atomic slot.
 * When the connection breaks, the loop closes it and raises `want_connect`;
 * its in-flight actions are sent again (same id, fresh issued_ns and mac)
 * once the new socket arrives.
 */
#ifndef TL_ACTUATOR_H
#define TL_ACTUATOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "admin/admin_client.h"
#include "admin/admin_key.h"
#include "core/loop.h"

typedef struct tl_actuator {
    /* hot loop */
    tl_admin_client client;
    tl_admin_key sidecar;
    tl_admin_key operator_key;
    bool has_operator;
    uint64_t sends;
    uint64_t send_failures;
    uint64_t replies;
    uint64_t pings;
    char warm_line[TL_ADMIN_LINE_MAX];
    /* shared */
    _Atomic int handoff_fd;    /* control -> loop: a connected socket, or -1 */
    _Atomic bool want_connect; /* loop -> control: (re)connect please */
    _Atomic uint64_t connects; /* control: successful connects */
    _Atomic uint64_t connect_errors;
    /* control thread */
    char path[256];
    uint64_t next_try_ns;
    uint64_t backoff_ms;
} tl_actuator;

/* Keys are copied in. operator_key may be NULL. */
void tl_actuator_init(tl_actuator *x, const char *socket_path, const tl_admin_key *sidecar,
                      const tl_admin_key *operator_key);

/* The loop's ops (ctx = the actuator). */
int tl_actuator_send(void *ctx, const tl_action *a, uint64_t now_real_ns);
bool tl_actuator_reply(void *ctx, tl_cmd_reply *r);

/* Hot loop, when idle: builds and signs a HARD_HALT line (not sent) so the
 * halt path stays in cache, and with `ping` sends an admin ping. */
void tl_actuator_warm(tl_actuator *x, uint64_t now_real_ns, bool ping);

/* Control thread: connect when the loop asks (or at start), with backoff.
 * Never blocks: a Unix socket connects at once or fails. */
void tl_actuator_control_tick(tl_actuator *x, uint64_t now_mono_ns);

/* Builds the request of an action (also used by tests and tallyctl). */
bool tl_actuator_request(const tl_action *a, uint64_t issued_ns, tl_admin_request *req);

#endif
