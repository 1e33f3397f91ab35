/* enginesim_lease.h: real leader election through etcd for tally-enginesim
 * (ledger.md "Lease authority: etcd v3"), over etcd's JSON gateway.
 *
 * An engine campaigns for the leader key: it grants itself a lease (TTL)
 * and, in one transaction that succeeds only if the key is absent or
 * already names it, puts its engine_id (hex) under that lease. The put's
 * revision (the key's mod_revision) is its fence: it writes a LEADER_CHANGE
 * with new_fence = that revision, and every record after it carries it.
 * While it leads it keeps the lease alive (every TTL/3) and reads the key.
 *
 * Losing the lease ends its term honestly:
 *   - etcd refuses a keepalive (the lease expired or was revoked), or the
 *     key names another engine: it stops at once;
 *   - it cannot reach etcd: it stops at its local deadline, the send time
 *     of its last successful keepalive + TTL - a margin. etcd expires the
 *     lease no earlier than its receipt of that keepalive + TTL, so the
 *     engine has stopped writing before anyone else can win the key.
 * A stopped engine writes nothing (no HEARTBEAT record either: a record is
 * a claim of leadership) and campaigns again while it can reach etcd.
 *
 * Flags (removed from argv by tl_es_lease_args before the simulator parses
 * the rest):
 *   --etcd URL              etcd's client URL (e.g. http://127.0.0.1:2379)
 *   --lease-key KEY         the leader key
 *   --lease-ttl S           the lease TTL in seconds (default 2)
 *   --lease-wait-ms MS      how long the first campaign may wait for the key
 *                           (default 30000; the standby waits forever)
 *   --lease-partition-ms MS after MS of leading, stop talking to etcd (a
 *                           network partition); SIGUSR1 does it at once
 *   --lease-stale           fault: on losing the lease keep writing with the
 *                           old fence (a stale leader: STALE_LEADER)
 *
 * Blocking HTTP on the engine's one thread, each request bounded by 250 ms:
 * a simulator's shortcut, not what a production engine would do.
 */
#ifndef TL_ENGINESIM_LEASE_H
#define TL_ENGINESIM_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TL_ES_ID_BYTES 16u

typedef struct tl_es_lease_opts {
    const char *etcd;
    const char *key;
    uint32_t ttl_s;
    uint32_t wait_ms;
    uint32_t partition_ms;
    bool stale;
} tl_es_lease_opts;

/* Takes the lease flags out of argv (argc shrinks). Returns 0, or -1 with a
 * message on stderr for a bad value. o->etcd stays NULL without --etcd. */
int tl_es_lease_args(int *argc, char **argv, tl_es_lease_opts *o);

typedef struct tl_es_lease tl_es_lease;

/* NULL on error (message on stderr). id: the engine's id. */
tl_es_lease *tl_es_lease_open(const tl_es_lease_opts *o, const uint8_t id[TL_ES_ID_BYTES]);
void tl_es_lease_close(tl_es_lease *l);

/* One attempt to win the key: 1 won (*fence = the put's revision), 0 held
 * by another engine, -1 etcd could not be reached or refused. */
int tl_es_lease_campaign(tl_es_lease *l, uint64_t now_mono_ns, uint64_t *fence);

/* Campaigns until won or wait_ms passed (sleeping 50 ms between tries):
 * 1 won, 0 not. */
int tl_es_lease_campaign_wait(tl_es_lease *l, uint32_t wait_ms, uint64_t *fence);

/* While leading, each pass: keepalive and key check when due. Returns false
 * once the term is over (see the top of this file); with --lease-stale it
 * says so once on stderr and keeps returning true. */
bool tl_es_lease_hold(tl_es_lease *l, uint64_t now_mono_ns);

/* True while the engine holds (or, stale, believes it holds) the lease. */
bool tl_es_lease_leading(const tl_es_lease *l);

/* Stops talking to etcd from now on (also SIGUSR1). */
void tl_es_lease_partition(tl_es_lease *l);

/* Reads <wal_dir>/engine_id (32 hex digits) if it exists: 1; else makes a
 * random id for the engine's first start: 0 (pass it as engine_id_if_new);
 * -1 if the file exists but cannot be read. */
int tl_es_lease_engine_id(const char *wal_dir, uint8_t id[TL_ES_ID_BYTES]);

struct tl_engine;

/* The engine's side of a pass (tally-enginesim's leader): holds the lease
 * while leading; campaigns again every 200 ms while not (and reachable),
 * and on winning writes LEADER_CHANGE{the new fence} through the library.
 * Returns whether the engine may write records now. */
bool tl_es_lease_step(tl_es_lease *l, struct tl_engine *e, uint64_t now_mono_ns);

/* Counters for --stats: terms won, keepalives, and how the last term ended. */
void tl_es_lease_stats_json(const tl_es_lease *l, char *out, size_t cap);

#endif
