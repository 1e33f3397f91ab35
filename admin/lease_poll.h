/* lease_poll.h: tallyd's control-thread side of the lease authority
 * (ledger.md "Lease authority: etcd v3"): every lease.poll_ms it reads the
 * leader key with io/etcd_client (POST /v3/kv/range, non-blocking, one
 * reused connection, lease.timeout_ms per request), parses the reply with
 * core/lease.h, stamps the receive times and hands the reading to the hot
 * loop through a queue of its own (80-byte slots; the loop pops them in
 * order, tl_loop_ops.lease_poll).
 *
 * Every outcome reaches the loop, failures too (fail = unreachable or
 * rejected, with no key data): the loop counts failures in a row for
 * LEASE_UNREACHABLE and never judges with them. A full queue drops the new
 * reading (counted); the loop drains it every step, so that means the hot
 * loop is stuck, and its own silence check takes over. Rejections are
 * logged when the reason changes, not at every poll.
 */
#ifndef TL_LEASE_POLL_H
#define TL_LEASE_POLL_H

#include <stdbool.h>
#include <stdint.h>

#include "admin/config.h"
#include "core/lease.h"
#include "core/loop.h"
#include "io/etcd_client.h"
#include "shm/spsc.h"

#define TL_LEASE_QUEUE_SLOTS 64u

typedef struct tl_lease_poll_stats {
    uint64_t polls;                              /* requests started */
    uint64_t readings_ok;                        /* parsed and queued */
    uint64_t failed[TL_ETCD_ERR_COUNT];          /* by transfer reason */
    uint64_t parse_rejected[TL_LEASE_ERR_COUNT]; /* by parse reason */
    uint64_t queue_full;                         /* a reading dropped */
    uint64_t busy_skips;                         /* a poll due while one was in flight */
    /* libcurl would not start a request (also counted in failed[config]) */
    uint64_t start_refused;
    uint64_t last_ok_mono_ns; /* the last good reading queued */
    uint64_t last_revision;   /* its H */
} tl_lease_poll_stats;

typedef struct tl_lease_poll tl_lease_poll;

/* Fills lc->lease from the config (enabled iff lease.endpoint is set). */
void tl_lease_poll_loop_cfg(const tl_config *c, tl_loop_cfg *lc);

/* Opens the client. q: an initialized SPSC queue of sizeof(tl_lease_reading)
 * slots; this thread is its producer. With an empty endpoint *out is NULL
 * and 0 is returned; an endpoint without lease.key is an error. */
int tl_lease_poll_open(tl_lease_poll **out, const tl_config *c, tl_spsc *q, char *err,
                       size_t err_cap);
void tl_lease_poll_close(tl_lease_poll *p);

/* One control-thread pass: starts a request when one is due, drives the
 * one in flight, and queues what it brought. Never blocks. */
void tl_lease_poll_pass(tl_lease_poll *p, uint64_t now_mono_ns);

void tl_lease_poll_get_stats(const tl_lease_poll *p, tl_lease_poll_stats *out);
/* The same counters in place (stable pointer, control thread only): what
 * /metrics renders as tally_lease_rejected_total{stage,reason}. */
const tl_lease_poll_stats *tl_lease_poll_stats_of(const tl_lease_poll *p);

#endif
