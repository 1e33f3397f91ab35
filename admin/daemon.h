/* daemon.h: tallyd's parts and how they are wired.
 *
 *   main thread     start-up (config, locks, keys, audit recovery, ring
 *                   attach, WAL tailer, loop), then waits for a signal
 *   hot loop        one pinned thread: tl_loop_step() over the ring consumer,
 *                   the io_uring WAL tailer, the control queue and the
 *                   actuator; never blocks, never allocates (hotloop.c)
 *   control thread  everything slow: the audit log and its fsyncs, admin
 *                   (re)connects, the 100 ms ring re-check, the saved
 *                   position, logging (control.c)
 *
 * Two lock-free SPSC queues join them: `out` (loop -> control: findings,
 * action events) and `ctl` (control -> loop: operator commands, resends,
 * incarnations). Everything else the threads share is an atomic with its
 * order argued at the site.
 */
#ifndef TL_DAEMON_H
#define TL_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "admin/actuator.h"
#include "admin/alerts.h"
#include "admin/api.h"
#include "admin/audit.h"
#include "admin/bundle.h"
#include "admin/config.h"
#include "admin/lease_poll.h"
#include "admin/ledger_poll.h"
#include "core/loop.h"
#include "io/peer_dpdk.h"
#include "io/peer_mac.h"
#include "io/peer_udp.h"
#include "io/wal_tail.h"
#include "io/xwal1_tail.h"
#include "shm/ring.h"
#include "shm/spsc.h"

#define TL_DAEMON_OUT_SLOTS 8192u
#define TL_DAEMON_CTL_SLOTS 256u

/* A ring object and its consumer, handed from the control thread (which
 * maps it) to the hot loop (which follows it). */
typedef struct tl_ring_side {
    tl_ring_map map;
    tl_ring_consumer cons;
    tl_ring_durable_reader durable;
    bool ready;
} tl_ring_side;

typedef struct tl_daemon {
    tl_config cfg;
    tl_loop_cfg lcfg;
    char config_path[512];

    /* the loop and its memory */
    tl_loop *loop;
    void *loop_mem;

    /* ring: `ring` is the hot loop's; `next_ring` is a new incarnation the
     * control thread prepared, handed over through `ring_handoff`. */
    tl_ring_side *ring;
    tl_ring_side rings[2];
    _Atomic(tl_ring_side *) ring_handoff;
    _Atomic(tl_ring_side *) ring_retired; /* the old side, back to the control thread */
    uint64_t ring_beat_ns;
    bool consumer_following;

    /* WAL */
    tl_wal_tail *tail;
    tl_xwal1_tailer *xtail;     /* wal.dialect "xwal1": its tailer instead of `tail` */
    _Atomic uint64_t saved_seq; /* the tailer's restart position, for the control thread */

    /* sink */
    tl_actuator act;

    /* peers (peer.md): the receive path, the kernel socket (it sends on
     * both paths), the keys; the control thread persists the counters */
    tl_peer_udp *peer_udp;
    tl_peer_dpdk *peer_dpdk; /* peer.io "dpdk": receives; NULL otherwise */
    tl_peer_keyring *peer_keys;
    tl_peer_key *peer_key;                      /* ours: keys.peer */
    uint64_t peer_saved[TL_PEER_NODES_MAX + 1]; /* persisted: the nodes', then ours */
    uint64_t last_peer_save_ns;

    /* queues */
    tl_spsc out;
    tl_spsc ctl;
    tl_spsc ledger_q; /* control -> loop: parsed ledger watermarks (admin/ledger_poll.h) */
    tl_spsc lease_q;  /* control -> loop: lease readings (admin/lease_poll.h) */

    /* the ledger poller (control thread); NULL when ledger.url is empty */
    tl_ledger_poll *ledger;
    /* the lease poller (control thread); NULL when lease.endpoint is empty */
    tl_lease_poll *lease;
    /* alert webhooks (control thread); NULL when webhooks.urls is empty */
    tl_alerts *alerts;

    /* control thread state */
    tl_audit audit;
    tl_audit_recovery *recovery;
    int lock_fd;
    int engine_lock_fd;
    uint8_t engine_id[TL_ID_BYTES];
    uint64_t last_recheck_ns;
    uint64_t last_position_ns;
    uint64_t findings_logged;
    tl_api *api;           /* the operator surface (admin/api.h): control thread only */
    tl_bundle_svc *bundle; /* forensic bundles: its own worker (admin/bundle.h) */

    /* lifecycle */
    _Atomic bool stop;
    _Atomic bool hot_stopped;
    pthread_t hot_thread;
    pthread_t control_thread;
    bool hot_pinned;
    bool mlocked;
} tl_daemon;

/* hotloop.c */
void tl_hot_ops(tl_daemon *d, tl_loop_ops *ops);
void *tl_hot_main(void *arg);

/* control.c */
void *tl_control_main(void *arg);
/* One pass of the control thread's work (also run once more at stop). */
void tl_control_pass(tl_daemon *d, uint64_t now_mono_ns, uint64_t now_real_ns);
/* Peer counters in <state_dir>/peer_counters: out[i] for the configured
 * node i, out[TL_PEER_NODES_MAX] ours (0 = none). Load: 0, or -1 when the
 * file exists but cannot be read. Save: when they moved (every second,
 * and at stop). */
int tl_peer_counters_load(const tl_daemon *d, uint64_t out[TL_PEER_NODES_MAX + 1]);
void tl_peer_counters_save(tl_daemon *d);

uint64_t tl_now_mono_ns(void);
uint64_t tl_now_real_ns(void);

#endif
