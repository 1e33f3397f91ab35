/* libtally_engine.h: what a C matching engine embeds so that tally can
 * reconcile it. The one public header of libtally_engine.so.
 *
 * A small API over a hard interface (ring.md, wal.md, engine-admin.md). The
 * library ties together, so that every engine gets them right:
 *   - the WAL writer (io/wal_writer): the single writer of the log, with
 *     group commit on a sync thread; each fdatasync publishes wal_durable_*
 *     into the ring (a seqlock);
 *   - the ring producer (shm/): every record the writer appends, segment
 *     openers included, is published on the ring as soon as it is made,
 *     before it is durable;
 *   - a heartbeat thread that stores the producer heartbeat every beat_ms,
 *     idle or not, and that WAL I/O never blocks;
 *   - the admin socket server and the mode table (admin/engine_server): an
 *     accepted command writes its MODE_CHANGE, command id included, through
 *     the same writer; cancel_all calls back into the engine;
 *   - the dead-man check on tally's heartbeat, with its fallback;
 *   - recovery at start: the torn tail cut, the mode table, the remembered
 *     command ids and the symbols rebuilt from the log, the engine's own
 *     state replayed through a callback, and a new ring incarnation created
 *     before anything is published;
 *   - the engine id, leader changes, and retirement of old segments.
 *
 * THREADING CONTRACT. One thread, the *engine thread*, owns the engine: it
 * calls every tl_engine_* function (tl_engine_open and tl_engine_close
 * included). The library's callbacks (tl_engine_ops) run on that thread,
 * inside the call that caused them: replay inside tl_engine_open; admin
 * commands, cancel_all, the dead-man fallback and on_admin_line inside
 * tl_engine_poll. There is therefore one writer of the log and no lock on
 * the hot path: the admin server's MODE_CHANGE and the engine's own records
 * are appended by the same thread, in one order. A callback may call
 * tl_engine_append (cancel_all must). The library runs two threads of its
 * own, which never call back: the WAL sync thread (the disk, then
 * wal_durable_*) and the heartbeat thread (producer_heartbeat_mono_ns).
 *
 * THE ENGINE'S LOOP, typically:
 *     for (;;) {
 *         while (an order is ready) {
 *             if (tl_engine_mode(e, order.symbol) >= TL_MODE_CANCEL_ONLY) reject;
 *             else match, tl_engine_append(e, TL_KIND_ORDER_NEW / TRADE ...);
 *         }
 *         tl_engine_poll(e, now_real_ns);   // at least every millisecond
 *         if (nothing to do) { tl_engine_idle(e); sleep or spin; }
 *     }
 *
 * Memory: everything is allocated by tl_engine_open. Appends, publishes and
 * mode checks never allocate and make no system call (the sync thread does
 * the I/O).
 */
#ifndef TL_LIBTALLY_ENGINE_H
#define TL_LIBTALLY_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/record.h" /* the record contract: kinds, bodies, modes */
#include "shm/ring.h"    /* tally_deadman_expired(), the spec's name */

typedef struct tl_engine tl_engine;

/* Named errors; tl_engine_err_name gives the stable snake_case name. */
enum tl_engine_err {
    TL_ENGINE_OK = 0,
    TL_ENGINE_ERR_CONFIG,      /* "bad_config": a configuration value is out of range */
    TL_ENGINE_ERR_NOMEM,       /* "out_of_memory": start-up allocation failed */
    TL_ENGINE_ERR_ENGINE_ID,   /* "engine_id": the engine_id file cannot be read or made */
    TL_ENGINE_ERR_KEY,         /* "key": an admin key file failed to load */
    TL_ENGINE_ERR_ADMIN,       /* "admin_socket": the admin socket cannot be served */
    TL_ENGINE_ERR_WAL,         /* "wal": the WAL writer failed (tl_engine_wal_err says why) */
    TL_ENGINE_ERR_WAL_CORRUPT, /* "wal_corrupt": recovery found a finding in the log */
    TL_ENGINE_ERR_WAL_STATE,   /* "wal_state": the log's SYMBOL / MODE_CHANGE records conflict */
    TL_ENGINE_ERR_RING,        /* "ring": the ring object cannot be created */
    TL_ENGINE_ERR_SYMBOL,      /* "bad_symbol": id 0, a bad name, or taken by another symbol */
    TL_ENGINE_ERR_KIND,        /* "bad_kind": a kind only the library writes, or kind 0 */
    TL_ENGINE_ERR_RECORD,      /* "bad_record": a body too short or outside its domain */
    TL_ENGINE_ERR_FENCE,       /* "fence": not above the fence in force */
    TL_ENGINE_ERR_CALLBACK,    /* "callback": a required tl_engine_ops callback is missing */
    TL_ENGINE_ERR_FAULT,       /* "fault": a fault cannot be armed (seq passed, table full) */
    TL_ENGINE_ERR_COUNT,
};
const char *tl_engine_err_name(enum tl_engine_err e);

/* What the engine does when tally's heartbeat goes stale (ring.md "Dead-man
 * heartbeat"). Both write a MODE_CHANGE on scope 0 with a zero command_id;
 * both are left only by an operator command, never because the heartbeat
 * came back. */
enum tl_engine_fallback {
    TL_ENGINE_FALLBACK_SAFE_MODE = 0, /* global CANCEL_ONLY (the default) */
    TL_ENGINE_FALLBACK_FLATTEN = 1,   /* ops.cancel_all(0), then global CANCEL_ONLY */
};

/* A symbol the engine lists from the start. */
typedef struct tl_engine_symbol {
    uint32_t id;      /* nonzero; ids 1..3583 have a fast-path word on the ring */
    const char *name; /* [A-Za-z0-9._-]{1,24} */
} tl_engine_symbol;

#define TL_ENGINE_DEFAULT_BEAT_MS     10u
#define TL_ENGINE_DEFAULT_DEADMAN_MS  250u
#define TL_ENGINE_DEFAULT_MAX_SYMBOLS 4096u
#define TL_ENGINE_ID_FILE             "engine_id" /* in the WAL directory: 32 hex + '\n' */

typedef struct tl_engine_config {
    /* -- the WAL (wal.md) -- */
    const char *wal_dir;         /* required; created if missing */
    uint64_t segment_bytes;      /* default 64 MiB; a multiple of 4096, >= 8192 */
    uint64_t staging_bytes;      /* writer's staging ring, default 8 MiB (power of two) */
    uint64_t group_max_bytes;    /* group commit: sync at this many unsynced bytes, */
    uint32_t group_max_records;  /* ... or records, */
    uint64_t group_max_delay_ns; /* ... or when the oldest is this old (default 200 us) */
    bool sync_thread;            /* default true: the hot path never waits for the disk */
    bool recovery_full_scan;     /* default true: verify (and replay) every segment at open;
                                  * false: the last two only */
    /* -- the ring (ring.md) -- */
    const char *ring_name;  /* required: "<name>" for /tally.<name>, or a file path */
    uint64_t ring_capacity; /* default 64 MiB; a power of two >= 1 MiB */
    uint32_t beat_ms;       /* producer heartbeat period, default 10 */
    /* -- the admin socket (engine-admin.md) -- */
    const char *admin_socket; /* NULL: no socket (the mode table still works) */
    const char *sidecar_key_path;
    const char *operator_key_path;   /* NULL: operator lines get bad_mac */
    const uint8_t *sidecar_key_raw;  /* 32 bytes, instead of the path (tests) */
    const uint8_t *operator_key_raw; /* 32 bytes, instead of the path (tests) */
    uint32_t admin_max_conns;        /* 0: 16 */
    uint32_t remembered_ids;         /* 0: 65536 */
    /* -- the dead-man (ring.md) -- */
    uint32_t deadman_ms; /* default 250; 0 turns the check off */
    enum tl_engine_fallback deadman_fallback;
    /* -- identity and leadership -- */
    /* The fence this engine leads with (default 1). A new log gets a first
     * segment with header fence 0 and, at open, LEADER_CHANGE{fence, 0, the
     * engine id}. An existing log whose fence in force is lower gets that
     * LEADER_CHANGE at open (a new term); equal: none; higher: open fails
     * with TL_ENGINE_ERR_FENCE (a stale leader must not write). */
    uint64_t fence;
    /* The engine id is 16 random bytes made at the first start and kept in
     * <wal_dir>/engine_id. These bytes are used instead of random ones when
     * the file is made (deterministic simulations); NULL: getrandom(2). */
    const uint8_t *engine_id_if_new;
    /* -- symbols -- */
    uint32_t max_symbols; /* default 4096 */
    /* Listed at open. A new log declares them in its first segment's
     * openers; an existing log gets a SYMBOL record for each it lacks. */
    const tl_engine_symbol *symbols;
    uint32_t symbols_count;
    /* -- determinism (tests, the simulator's --fixed-clock) -- */
    /* Nonzero: the WAL writer stamps its segment headers (created_ns) with
     * this instead of the real clock, so two seeded runs are byte-identical.
     * Records the library writes itself take ops.now_real_ns. */
    uint64_t fixed_clock_ns;
} tl_engine_config;

/* Fills every default above; the caller sets wal_dir, ring_name and the
 * rest. */
void tl_engine_config_default(tl_engine_config *cfg);

/* Fault injection (see the end of this header). */
enum tl_engine_fault {
    TL_ENGINE_FAULT_NONE = 0,
    TL_ENGINE_FAULT_FORK,              /* "fork" */
    TL_ENGINE_FAULT_DUP,               /* "dup" */
    TL_ENGINE_FAULT_GAP,               /* "gap" */
    TL_ENGINE_FAULT_REORDER,           /* "reorder" */
    TL_ENGINE_FAULT_PARENT,            /* "parent" */
    TL_ENGINE_FAULT_FENCE_REGRESS,     /* "fence_regress" */
    TL_ENGINE_FAULT_FENCE_UNANNOUNCED, /* "fence_unannounced" */
    TL_ENGINE_FAULT_FLIP,              /* "flip" */
    TL_ENGINE_FAULT_CRASH,             /* "crash" */
    TL_ENGINE_FAULT_COUNT,
};
const char *tl_engine_fault_name(enum tl_engine_fault f);
/* Parses a name above; TL_ENGINE_FAULT_NONE if unknown. */
enum tl_engine_fault tl_engine_fault_parse(const char *s, size_t n);

/* The engine's side of the contract. Every callback runs on the engine
 * thread (see the threading contract). */
typedef struct tl_engine_ops {
    void *ctx;
    /* Cancel every resting order in scope (0 = every symbol), appending an
     * ORDER_CANCEL for each with tl_engine_append. Return 0, or -1 (the
     * admin sender then gets engine_error and retries). The library writes
     * the MODE_CHANGE after it. Called for the admin cancel_all and for the
     * FLATTEN fallback. Required when admin_socket is set or the fallback
     * is FLATTEN. */
    int (*cancel_all)(void *ctx, uint32_t scope);
    /* At open: every record of the recovered log, in seq order (rec is the
     * whole record, header included, valid during the call), so the engine
     * rebuilds its books. Optional. tl_engine_append may not be called
     * from it. */
    void (*replay)(void *ctx, const uint8_t *rec, uint32_t len);
    /* The library wrote a MODE_CHANGE (an admin command, or the dead-man
     * fallback with a zero command_id). Optional. */
    void (*on_mode_change)(void *ctx, uint32_t scope, uint32_t mode, bool withdrawals_halted,
                           const uint8_t command_id[TL_ID_BYTES], uint64_t seq);
    /* An admin line arrived: cmd is "set_symbol_mode", "cancel_all",
     * "withdrawals_halt", "ping", or "" when the line did not parse;
     * command_id is NULL when it could not be read; arrival_mono_ns is
     * CLOCK_MONOTONIC right after the recv() that completed the line.
     * Optional. */
    void (*on_admin_line)(void *ctx, const char *cmd, const uint8_t *command_id,
                          uint64_t arrival_mono_ns);
    /* The engine's wall clock for the records the library writes itself
     * (MODE_CHANGE, SYMBOL, LEADER_CHANGE). Optional: NULL reads
     * CLOCK_REALTIME. */
    uint64_t (*now_real_ns)(void *ctx);
    /* A fault fired (fault injection only): seq is the record it hit, and
     * publish_mono_ns the CLOCK_MONOTONIC time just before the ring publish
     * that carries it. Optional. */
    void (*on_fault)(void *ctx, enum tl_engine_fault kind, uint64_t seq, uint64_t publish_mono_ns);
} tl_engine_ops;

/* What tl_engine_open found and did. */
typedef struct tl_engine_recovered {
    bool new_log;              /* the WAL directory held no segment */
    bool new_engine_id;        /* the engine_id file was made now */
    bool torn;                 /* a torn tail was cut at torn_offset */
    uint64_t torn_offset;      /* in the newest segment */
    uint64_t last_seq;         /* the end of the recovered log (0: none) */
    uint64_t fence;            /* the fence in force at that end */
    uint64_t records;          /* records replayed */
    uint32_t symbols;          /* symbols known after recovery (the config's included) */
    uint32_t mode_changes;     /* MODE_CHANGE records replayed (restatements included) */
    uint32_t command_ids;      /* command ids remembered from them */
    uint64_t consumer_wal_seq; /* carried over from the old ring object (0: none) */
    bool leader_change;        /* open wrote a LEADER_CHANGE */
    uint8_t engine_id[TL_ID_BYTES];
    /* TL_ENGINE_ERR_WAL_CORRUPT: the first finding (check name, seq, segment,
     * offset); TL_ENGINE_ERR_WAL: the writer's error name. */
    const char *finding_check;
    uint64_t finding_seq;
    uint64_t finding_segment;
    uint64_t finding_offset;
    uint64_t findings_total;
} tl_engine_recovered;

/* Opens the engine: loads the keys, reads or makes the engine id, binds the
 * admin socket, recovers the WAL (cut the torn tail; rebuild symbols, the
 * mode table and the remembered command ids from the log; replay every
 * record through ops->replay), creates the new ring incarnation with
 * wal_durable_* = the recovered end of the log and consumer_wal_seq carried
 * from the old object, starts the heartbeat and sync threads, then writes
 * the SYMBOL records the log lacks and the LEADER_CHANGE the fence asks for.
 * Records written inside the writer's own recovery (a new log's first
 * openers) are durable before the ring exists: tally reads them from the
 * WAL (ring.md: it attaches at wal_durable_seq + 1).
 * rec may be NULL. On error *out is NULL and err (cap bytes, may be NULL)
 * holds one line saying why; whatever ops->replay was fed is then to be
 * discarded (a log with a finding is refused, and feeding stops at it). */
enum tl_engine_err tl_engine_open(const tl_engine_config *cfg, const tl_engine_ops *ops,
                                  tl_engine **out, tl_engine_recovered *rec, char *err, size_t cap);

/* Appends a record of `kind` (ORDER_NEW, ORDER_CANCEL, TRADE, CHECKPOINT,
 * HEARTBEAT, or a kind above TL_KIND_KNOWN_MAX) for `symbol` (0: none) with
 * body_len bytes of body (at least the kind's v1 size). It gets the next
 * seq, the chain's parent and the fence in force; it is published on the
 * ring before this returns, and becomes durable in the background. ts_ns
 * is the engine's wall clock. *seq (may be NULL) is its seq. MODE_CHANGE,
 * SYMBOL and LEADER_CHANGE have their own functions (TL_ENGINE_ERR_KIND).
 * A writer failure is TL_ENGINE_ERR_WAL and sticks. */
enum tl_engine_err tl_engine_append(tl_engine *e, uint16_t kind, uint32_t symbol, const void *body,
                                    uint32_t body_len, uint64_t ts_ns, uint64_t *seq);

/* Lists a new symbol: registers it in the mode table and appends its SYMBOL
 * record (later segments declare it in their openers). The same (id, name)
 * again is a no-op; an id or a name taken by another symbol is
 * TL_ENGINE_ERR_SYMBOL. */
enum tl_engine_err tl_engine_add_symbol(tl_engine *e, uint32_t id, const char *name);

/* This engine becomes leader with new_fence (> the fence in force):
 * LEADER_CHANGE{new_fence, prev_fence, leader_id}. leader_id NULL: this
 * engine's id. */
enum tl_engine_err tl_engine_leader_change(tl_engine *e, uint64_t new_fence,
                                           const uint8_t leader_id[TL_ID_BYTES]);

/* The effective mode of a symbol (enum tl_mode): the max of the admin-set
 * global mode, the admin-set symbol mode and the ring's fast-path words
 * (fast_global_mode, fast_symbol_mode[symbol]). O(1), no allocation, no
 * system call: check it before accepting every order.
 *   NORMAL: everything; CANCEL_ONLY: reject new orders; SOFT_HALT: no
 *   matching, cancels accepted; HARD_HALT: reject everything. */
uint32_t tl_engine_mode(const tl_engine *e, uint32_t symbol);
/* The fast-path part alone, and its epoch (+1 on every write by tally): an
 * engine may poll the epoch, one load, to notice a raise at once. */
uint32_t tl_engine_fast_mode(const tl_engine *e, uint32_t symbol);
uint64_t tl_engine_fast_epoch(const tl_engine *e);
/* Withdrawals halted by an admin command or by the fast-path word. */
bool tl_engine_withdrawals_halted(const tl_engine *e);

/* The engine's periodic work; never blocks: serves the admin socket
 * (commands run here, on this thread), runs the dead-man check and its
 * fallback, and syncs the WAL inline when there is no sync thread.
 * now_real_ns is the engine's CLOCK_REALTIME (admin commands are judged
 * stale against it). Call it at least every millisecond: it makes one
 * poll(2) system call. Returns the admin lines handled, or -1 with
 * TL_ENGINE_ERR_WAL in *err (may be NULL) when the writer has failed. */
int tl_engine_poll(tl_engine *e, uint64_t now_real_ns, enum tl_engine_err *err);

/* The engine is about to idle (sleep, block, or spin without records):
 * stores the ring's publish hint up to the newest record (ring.md step 3). */
void tl_engine_idle(tl_engine *e);

/* Makes every record appended so far durable; returns after wal_durable_*
 * on the ring covers them. */
enum tl_engine_err tl_engine_sync(tl_engine *e);

/* Deletes the WAL segments that are no longer needed: every record below
 * min(snapshot_seq + 1, the ring's consumer_wal_seq). snapshot_seq is the
 * last seq the engine's own snapshot covers. Until tally has stored a
 * consumer_wal_seq, nothing is deleted. *deleted may be NULL. */
enum tl_engine_err tl_engine_retire(tl_engine *e, uint64_t snapshot_seq, uint32_t *deleted);

/* Flushes the publish hint, syncs the WAL, stops the threads, removes the
 * admin socket, unmaps the ring (never unlinks it: tally must see the
 * incarnation end) and frees everything. Returns the first error met.
 * NULL is allowed. */
enum tl_engine_err tl_engine_close(tl_engine *e);

/* ---- introspection ---- */

typedef struct tl_engine_stats {
    uint64_t next_seq;    /* the seq the next record gets */
    uint64_t fence;       /* in force */
    uint64_t durable_seq; /* wal_durable_seq */
    uint64_t records_published;
    uint64_t ring_position; /* bytes published, PADs included */
    uint64_t ring_pads;
    uint32_t global_mode; /* admin-set */
    bool withdrawals_halted;
    uint64_t admin_lines;
    uint64_t admin_applied;
    uint64_t admin_duplicates;
    uint64_t admin_rejected;
    uint64_t deadman_fallbacks; /* times the fallback fired */
    uint32_t deadman_state;     /* enum tl_deadman_verdict of the last check */
    uint64_t faults_fired;
} tl_engine_stats;
void tl_engine_get_stats(const tl_engine *e, tl_engine_stats *out);

const uint8_t *tl_engine_id(const tl_engine *e);
/* The WAL writer's error after TL_ENGINE_ERR_WAL ("io_error", "failed", ...)
 * and the failing system call ("fdatasync") with its errno, if any. */
const char *tl_engine_wal_err(const tl_engine *e, const char **sys_op, int *sys_errno);

/* The ring producer, for tally_deadman_expired() (ring.md's name) and for
 * tools. The library already runs the dead-man check in tl_engine_poll;
 * calling tally_deadman_expired yourself, on the engine thread, is allowed
 * and sees the same state. */
tl_ring_producer *tl_engine_ring(tl_engine *e);

/* ======================================================================
 * FAULT INJECTION: for the engine simulator and tests only. Each fault
 * writes exactly the bytes tally exists to catch; never arm one in
 * production.
 *
 * A fault is armed for a seq not yet written and fires on the record that
 * gets that seq, whoever appends it (the engine, the admin server, the
 * writer's segment openers). A record-level fault (gap, reorder, parent,
 * fence_*) needs the record to come through tl_engine_append or the
 * library's own writes; when openers use up the seq first, it fires on the
 * next record instead (on_fault says which seq). At most
 * TL_ENGINE_FAULTS_MAX faults, one per seq.
 *
 *   FORK   the ring gets another record for seq S (same seq, parent, fence
 *          and ts, 8 more body bytes "tly-fork"), the WAL the real one; the
 *          chain goes on from the WAL's.
 *   DUP    the record of seq S is published on the ring again, with the
 *          REPLAY flag, after the next record (or at the next idle): a
 *          benign replay, a lower seq.
 *   GAP    seq S is never written: the record carries S + 1, parent = the
 *          last checksum.
 *   REORDER  the record for S is held; the next one is written as S + 1
 *          (parent = the held one's checksum), then the held S: S + 1
 *          before S, on the ring and in the WAL.
 *   PARENT the record S carries a wrong parent (the right one xor
 *          0x5a5a5a5a5a5a5a5a).
 *   FENCE_REGRESS  the record S carries fence - 1.
 *   FENCE_UNANNOUNCED  from S on the fence is + 1, with no LEADER_CHANGE.
 *   FLIP   the WAL copy of S has byte 32 (ts_ns) xor 0xff (the writer's
 *          FLIP hook); the ring's copy is right. WAL only.
 *   CRASH  the WAL write of S stops after 40 bytes and the writer stops as a
 *          crashed process would (the TEAR hook); records go on being
 *          published on the ring until the next append fails, then call
 *          tl_engine_fault_crash_now(). A plain restart recovers.
 * ====================================================================== */

#define TL_ENGINE_FAULTS_MAX 64u

enum tl_engine_err tl_engine_fault_arm(tl_engine *e, enum tl_engine_fault kind, uint64_t seq);
/* True once a CRASH fault's torn write has happened (the writer stopped). */
bool tl_engine_fault_crashed(const tl_engine *e);
/* Dies like kill -9 right now: stores the ring's publish hint (so every
 * record published is visible), then _exit(137). No sync, no cleanup. */
_Noreturn void tl_engine_fault_crash_now(tl_engine *e);

#endif
