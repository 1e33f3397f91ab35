/* reconcile.h: on-demand full reconcile of a scope (POST /reconcile), off
 * the hot loop.
 *
 * One worker thread (low priority) takes requests from a bounded queue and
 * re-verifies the WAL over [from_seq, to_seq]: reading rules 1-6, chain,
 * seqs and fences, with its own window and its own io_uring ring:
 *   - native (tlywal1): io/wal_tail (io_uring reads into its own buffers,
 *     never registered, so the hot loop's registered buffers keep the
 *     memlock budget) feeding a private core/stream;
 *   - xwal1: each segment file read whole through an io_uring ring of its
 *     own, then core/xwal1's verifier.
 * A finding counts when its seq lies in the scope (or it has none), and, if
 * the scope names symbols, when it is on `*` or on one of them.
 *
 * The ledger at its current watermark (ledger.md): while it reads, the run
 * keeps wrapping u64 sums of the TRADE records (count, qty, price x qty,
 * overall and per symbol), anchored at seq 1 or at the first CHECKPOINT it
 * reads (totals only: a CHECKPOINT has no per-symbol figures); records
 * before from_seq in the first segment are summed too. At the watermark's
 * ledger_seq the figures go to core/ledger's tl_ledger_judge, the checker's
 * own comparison (LEDGER_FORK, LEDGER_DOUBLE_POSTING,
 * LEDGER_MISSING_POSTING). A watermark the run cannot judge says why by
 * name (not_in_scope, not_reached, unanchored, no_watermark), never
 * consistent.
 *
 * Peers at the last common checkpoint (peer.md): the highest seq every
 * peer that reported a CHECKPOINT has reported; the WAL's CHECKPOINT
 * state_hash there is compared with each peer's (STATE_HASH_DIVERGENCE).
 *
 * Each finished run becomes one JSON line, appended (and fsynced) to
 * <state_dir>/results.jsonl; the newest TL_RC_KEEP lines are kept in memory
 * for GET /reconcile/results and reloaded at start. A run that could not
 * read its scope (the segments are gone, an I/O error) is ERROR, never
 * CONSISTENT.
 *
 * Threads: the control thread submits and reads; the worker runs. They
 * share the queue and the kept results under one mutex (neither is the hot
 * loop).
 */
#ifndef TL_RECONCILE_H
#define TL_RECONCILE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/api_json.h"
#include "core/finding.h"
#include "core/ledger.h"
#include "core/peer.h"
#include "core/record.h"

#define TL_RC_SYMBOLS  16u   /* symbols in one scope */
#define TL_RC_QUEUE    8u    /* requests waiting */
#define TL_RC_KEEP     512u  /* results kept in memory */
#define TL_RC_LINE_MAX 8192u /* one result's JSON line (16 peers, 8 findings) */
#define TL_RC_FIRST    8u    /* findings shown in full per result */
#define TL_RC_ID_MAX   40u

enum tl_rc_status {
    TL_RC_QUEUED = 0,
    TL_RC_RUNNING,
    TL_RC_CONSISTENT,
    TL_RC_MISMATCH,
    TL_RC_ERROR, /* the scope could not be read: never called consistent */
    TL_RC_STATUS_COUNT,
};
const char *tl_rc_status_name(uint8_t s); /* "QUEUED", ..., "CONSISTENT", "MISMATCH", "ERROR" */
/* Parses a status name (case-sensitive); -1 if unknown. */
int tl_rc_status_parse(const char *s);

typedef struct tl_reconcile_req {
    uint64_t from_seq; /* >= 1 */
    uint64_t to_seq;   /* >= from_seq */
    uint32_t n_symbols;
    char symbols[TL_RC_SYMBOLS][TL_SYMBOL_NAME_MAX + 1];
    /* Taken on the control thread when the request is submitted, so the run
     * judges one consistent state whatever the loop does meanwhile: the
     * newest watermark the ledger poller accepted (admin/ledger_poll.h)... */
    bool have_watermark;
    tl_ledger_wm watermark;
    /* ... and the CHECKPOINTs each configured peer last reported (core/peer.h,
     * read through its seqlock); unread: the loop kept writing, not read. */
    uint32_t n_peers;
    bool peer_unread[TL_PEER_NODES_MAX];
    tl_peer_reported peers[TL_PEER_NODES_MAX];
} tl_reconcile_req;

typedef struct tl_reconcile_cfg {
    const char *state_dir;
    const char *wal_dir;
    uint8_t dialect;         /* enum tl_dialect */
    const char *instance_id; /* 32 hex */
    uint64_t window_records; /* power of two; 0 = 65536 */
    bool ledger_configured;
    bool peers_configured;
} tl_reconcile_cfg;

/* A run that finished, for the control thread's metrics and audit. */
typedef struct tl_rc_done {
    char id[TL_RC_ID_MAX];
    uint8_t status;
    uint64_t findings;
    uint64_t records;
    uint64_t from_seq;
    uint64_t to_seq;
} tl_rc_done;

typedef struct tl_reconcile tl_reconcile;

/* Loads the kept results and starts the worker. */
int tl_reconcile_start(tl_reconcile **out, const tl_reconcile_cfg *cfg, char *err, size_t cap);
/* Stops the worker (a run in progress is abandoned, not recorded) and frees. */
void tl_reconcile_stop(tl_reconcile *r);

/* Queues a request; id_out gets its id. -1 when the queue is full. */
int tl_reconcile_submit(tl_reconcile *r, const tl_reconcile_req *q, uint64_t now_real_ns,
                        char id_out[TL_RC_ID_MAX]);
/* Finished runs since the last call, oldest first. */
bool tl_reconcile_poll_done(tl_reconcile *r, tl_rc_done *out);

/* JSON members for GET /reconcile/results: "results": [...] newest first,
 * filtered by status (-1: any), at most limit. */
void tl_reconcile_json_results(tl_reconcile *r, int status, uint32_t limit, tl_jb *b);
/* The members of one run (queued, running with its progress, or finished);
 * false if the id is unknown. */
bool tl_reconcile_json_one(tl_reconcile *r, const char *id, tl_jb *b);

/* The verification itself, synchronous (the worker's body; tests). Writes
 * the result's JSON line into line (NUL-terminated) and returns its status. */
typedef struct tl_rc_progress {
    _Atomic uint64_t records;  /* records of the scope checked so far */
    _Atomic uint64_t last_seq; /* the last seq read */
    _Atomic bool cancel;       /* set by another thread: stop at once */
} tl_rc_progress;
uint8_t tl_reconcile_run(const tl_reconcile_cfg *cfg, const tl_reconcile_req *q, const char *id,
                         uint64_t started_real_ns, char *line, size_t cap, tl_rc_done *done,
                         tl_rc_progress *progress);

#endif
