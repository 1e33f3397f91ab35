/* engine_int.h: libtally_engine's private state, shared by engine.c (open,
 * recovery, the append path, poll, close) and engine_fault.c (the fault
 * injection of the simulator). Not installed: engines include
 * libtally_engine.h only.
 *
 * Ownership (see the threading contract in libtally_engine.h):
 *   - the engine thread owns everything here except what is marked;
 *   - the WAL sync thread reads `ring` (set before the first append, so the
 *     writer's release of its staging head orders it) and writes the ring's
 *     wal_durable_* seqlock through on_durable: the only writer of it after
 *     open;
 *   - the heartbeat thread reads `ring` (set before it starts) and the stop
 *     flag under hb_mu.
 */
#ifndef TL_ENGINE_INT_H
#define TL_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "admin/engine_server.h"
#include "admin/libtally_engine.h"
#include "admin/modes.h"
#include "io/wal_writer.h"
#include "shm/ring.h"

/* One armed fault. */
typedef struct tl_eng_fault_slot {
    uint64_t seq;
    uint8_t kind; /* enum tl_engine_fault */
    bool done;    /* its action is taken (for FLIP/CRASH: armed in the writer) */
    bool stamped; /* on_fault reported (or it never will: missed) */
} tl_eng_fault_slot;

typedef struct tl_eng_faults {
    tl_eng_fault_slot tab[TL_ENGINE_FAULTS_MAX]; /* unsorted; searched linearly */
    uint32_t count;
    /* The writer's FLIP/TEAR hook holds one fault at a time: the slot in
     * it, or -1. */
    int writer_slot;
    bool crash_armed; /* a CRASH was handed to the writer */
    /* REORDER: the record for hold_seq, encoded, not yet written. */
    bool holding;
    uint64_t hold_seq;
    uint32_t hold_len;
    uint8_t *hold; /* TL_REC_MAX_BYTES */
    /* DUP: a copy of the record to publish again with REPLAY. */
    bool dup_pending;
    uint64_t dup_seq;
    uint32_t dup_len;
    uint8_t *dup; /* TL_REC_MAX_BYTES */
    int dup_slot;
    bool dup_fresh; /* set by the record itself: the copy goes after the next */
    /* A record-level fault's record: stamped at its ring publish. */
    uint64_t stamp_seq; /* 0: none */
    int stamp_slot;
    uint8_t *scratch; /* TL_RING_COPY_BYTES: encoded fault records */
    uint64_t fired;
} tl_eng_faults;

struct tl_engine {
    tl_engine_config cfg; /* the strings are copies below */
    tl_engine_ops ops;
    uint8_t engine_id[TL_ID_BYTES];

    /* hot: touched on every append or order check */
    tl_wal *wal;
    tl_ring_producer *ring;
    bool fault_hot;  /* faults armed or in flight: appends take the slow path */
    bool ring_hook;  /* on_record takes the fault path */
    bool wal_failed; /* the writer failed: sticks */
    enum tl_wal_err wal_err;
    uint64_t records_published;
    tl_admin_modes modes;

    /* admin */
    tl_admin_server *srv; /* NULL without admin_socket */
    tl_admin_key sidecar_key;
    tl_admin_key operator_key;
    bool has_operator_key;

    /* dead-man */
    bool deadman_tripped; /* fallback fired for the current expiry */
    uint32_t deadman_state;
    uint64_t deadman_fallbacks;

    /* heartbeat thread */
    pthread_t hb_thread;
    bool hb_started;
    pthread_mutex_t hb_mu;
    pthread_cond_t hb_cv;
    bool hb_stop; /* under hb_mu */

    tl_eng_faults fx;

    /* string copies */
    char *wal_dir;
    char *ring_name;
    char *admin_socket;
};

/* The wall clock of records the library writes itself. */
uint64_t tl_eng_record_ts(tl_engine *e);
/* Maps a writer error and makes a failure stick. */
enum tl_engine_err tl_eng_wal_rc(tl_engine *e, enum tl_wal_err rc);
/* The append path every record of the library and the engine takes. */
enum tl_engine_err tl_eng_append(tl_engine *e, uint16_t kind, uint32_t symbol, const void *body,
                                 uint32_t body_len, uint64_t ts_ns, uint64_t *seq);

/* engine_fault.c */
enum tl_engine_err tl_eng_faults_init(tl_eng_faults *fx);
void tl_eng_faults_free(tl_eng_faults *fx);
/* tl_eng_append when e->fault_hot. */
enum tl_engine_err tl_eng_fault_append(tl_engine *e, uint16_t kind, uint32_t symbol,
                                       const void *body, uint32_t body_len, uint64_t ts_ns,
                                       uint64_t *seq);
/* on_record when e->ring_hook. */
void tl_eng_fault_on_record(tl_engine *e, const uint8_t *rec, uint32_t len);
/* Writes a held REORDER record and publishes a pending DUP: before a sync,
 * a leader change, a close. */
enum tl_engine_err tl_eng_fault_flush(tl_engine *e);
/* The engine idles: a pending DUP goes out now. */
void tl_eng_fault_idle(tl_engine *e);

#endif
