/* wal_writer.h: the engine's native WAL writer (wal.md), part of
 * libtally_engine.
 *
 * The writer owns the hash chain: it assigns seq and parent, stamps the fence
 * in force, and places records in segments (`%020llu.wal`, preallocated,
 * header via .tmp + fdatasync + rename + fsync(dir), segment i fdatasync'd
 * before segment i+1 exists, no record spans two segments). Each segment after
 * the first opens with a SYMBOL record per listed symbol and MODE_CHANGE
 * restatements (command_id ff x16) for scope 0 and every symbol not NORMAL;
 * the log's first segment opens with the SYMBOL declarations. The writer asks
 * the engine for them through tl_wal_ops when a segment starts.
 *
 * Two sides, one staging buffer:
 *
 *   producer  the engine thread that calls tl_wal_append & co. It encodes
 *             each record straight into a single-producer/single-consumer
 *             staging ring in memory: no system call, no lock, no disk. It
 *             alone owns the chain and the placement of records in segments.
 *   consumer  the I/O side: moves staged records to the segment file with
 *             pwrite (one call per contiguous run), creates segments, and
 *             fdatasyncs a batch (group commit: max bytes, max records or max
 *             delay), then calls on_durable(durable_seq, segment_first_seq,
 *             durable_offset).
 *
 * With `sync_thread` the consumer is a background thread, so the engine's hot
 * path never waits for the disk (only for staging space, if the disk falls
 * behind by staging_bytes). Without it the consumer runs on the producer's
 * thread, inside tl_wal_append (when a group fills), tl_wal_poll (when the
 * oldest unsynced record is older than the max delay) and tl_wal_sync.
 *
 * Threads. One producer thread calls append / leader_change / roll / sync /
 * poll / retire / fault_arm. on_record, symbols and global_mode are called on
 * that thread. on_durable is called on the consumer's thread (the sync thread,
 * or the producer's thread without one), never concurrently with itself, in
 * increasing durable_seq order. tl_wal_durable() may be called from any
 * thread.
 *
 * Open recovers (wal.md writer ordering 4): it reads the log with the offline
 * reader (every segment, or the last two with recovery_full_scan off),
 * refuses a log with any finding (a corrupt sealed segment, a broken chain,
 * ...) with TL_WAL_ERR_CORRUPT, truncates after the last valid record (zeros
 * to the end of the segment, fdatasync) and continues there with the torn
 * record's seq. If the newest segment holds nothing but openers (a crash
 * while a segment was starting), the openers are written again, so a reader
 * that starts there learns every name and mode. Everything open writes is
 * durable when it returns; tl_wal_recovered says where the log ends, for the
 * engine to publish as wal_durable_* and to rebuild its state from.
 *
 * A standby persists the leader's records byte for byte with
 * tl_wal_append_record; it cannot add openers of its own (they would take
 * seqs), so it leaves ops.symbols NULL and calls tl_wal_roll where the leader
 * started a segment.
 */
#ifndef TL_WAL_WRITER_H
#define TL_WAL_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/finding.h"
#include "core/record.h"
#include "core/walseg.h"
#include "wal_err.h"

#define TL_WAL_DEFAULT_SEGMENT_BYTES   (64ull << 20)
#define TL_WAL_DEFAULT_STAGING_BYTES   (8ull << 20)
#define TL_WAL_MIN_STAGING_BYTES       (256ull << 10)
#define TL_WAL_DEFAULT_GROUP_BYTES     (1ull << 20)
#define TL_WAL_DEFAULT_GROUP_RECORDS   4096u
#define TL_WAL_DEFAULT_GROUP_DELAY_NS  200000ull /* 200 us */
#define TL_WAL_DEFAULT_MAX_SYMBOLS     4096u
#define TL_WAL_DEFAULT_RECOVERY_WINDOW (1u << 16)

/* One listed symbol, as the engine knows it when a segment starts. */
typedef struct tl_wal_opener_symbol {
    uint32_t symbol;               /* id, nonzero */
    uint32_t mode;                 /* enum tl_mode; not NORMAL -> a restatement */
    uint32_t withdrawals_halted;   /* for that restatement's body (0/1) */
    char name[TL_SYMBOL_NAME_MAX]; /* NUL-padded, [A-Za-z0-9._-]{1,24} */
} tl_wal_opener_symbol;

typedef struct tl_wal_ops {
    void *ctx;
    /* The listed symbols, at most cap; returns how many. NULL: segments get
     * no openers (a standby, see above). Producer thread. */
    uint32_t (*symbols)(void *ctx, tl_wal_opener_symbol *out, uint32_t cap);
    /* The global mode (scope 0) and the withdrawals flag, for the scope-0
     * restatement. NULL: NORMAL, 0. Producer thread. */
    void (*global_mode)(void *ctx, uint32_t *mode, uint32_t *withdrawals_halted);
    /* Every record the writer appends, openers included, in seq order, right
     * after it is encoded (the engine publishes these bytes on the ring).
     * Records written inside tl_wal_open (a new log's declarations, an
     * opener repair) come here too; they are durable when open returns.
     * May be NULL. Producer thread. */
    void (*on_record)(void *ctx, const uint8_t *rec, uint32_t len);
    /* After each fdatasync that made new records durable. May be NULL.
     * Consumer thread; not called during tl_wal_open. */
    void (*on_durable)(void *ctx, uint64_t durable_seq, uint64_t segment_first_seq,
                       uint64_t durable_offset);
} tl_wal_ops;

typedef struct tl_wal_config {
    const char *dir;        /* created if missing; locked (flock) while open */
    uint64_t segment_bytes; /* multiple of 4096, >= 8192, <= 16 GiB */
    uint8_t engine_id[TL_ID_BYTES];
    uint64_t initial_fence;                 /* header fence of a new log's first segment */
    uint8_t initial_leader_id[TL_ID_BYTES]; /* its header leader_id (zero = unknown) */
    uint32_t max_symbols;                   /* openers capacity */
    uint64_t staging_bytes;                 /* power of two >= 256 KiB */
    uint64_t group_max_bytes;               /* sync when this many bytes are unsynced */
    uint32_t group_max_records;             /* ... or this many records */
    uint64_t group_max_delay_ns;            /* ... or the oldest is this old */
    bool sync_thread;                       /* a background thread does the I/O */
    bool recovery_full_scan;                /* open verifies every segment (else the last two) */
    uint64_t recovery_window;               /* reader window at open (power of two) */
    uint32_t dir_max_entries;               /* 0 = TL_WAL_DIR_DEFAULT_MAX */
    /* Test hook (determinism, for the engine simulator's --fixed-clock):
     * nonzero replaces CLOCK_REALTIME in the stamps the writer makes itself
     * (segment headers' created_ns, openers written inside tl_wal_open), so
     * two seeded runs give byte-identical segments. 0 (the default): the
     * real clock. Never set it in production. */
    uint64_t fixed_real_ns;
} tl_wal_config;

/* Fills the defaults above; dir and engine_id are the caller's. */
void tl_wal_config_default(tl_wal_config *c);

/* Where the log ends after open: the engine publishes (last_seq,
 * segment_first_seq, offset) as wal_durable_*. */
typedef struct tl_wal_recovered {
    bool new_log;           /* the directory held no segment */
    bool torn;              /* a torn tail was cut */
    bool openers_rewritten; /* the newest segment's openers were written again */
    bool anchor_verified;   /* the scan started at the log's first segment */
    uint64_t torn_offset;   /* where the cut started (torn only) */
    uint64_t last_seq;      /* 0: no record */
    uint64_t last_checksum; /* the parent of the next record */
    uint64_t fence;         /* in force */
    uint8_t leader_id[TL_ID_BYTES];
    uint64_t segment_first_seq; /* the newest segment */
    uint64_t segment_index;
    uint64_t offset;   /* end of the last record in it */
    uint32_t segments; /* segment files present */
    uint64_t records_scanned;
    tl_finding first_finding; /* TL_WAL_ERR_CORRUPT: why (check NONE otherwise) */
    uint64_t findings_total;
    tl_wal_ioerr ioerr; /* TL_WAL_ERR_IO: the call and errno */
} tl_wal_recovered;

typedef struct tl_wal tl_wal;

/* Opens (and recovers, or creates) the log. rec may be NULL. On error *out
 * is NULL; rec says why for TL_WAL_ERR_CORRUPT. */
enum tl_wal_err tl_wal_open(tl_wal **out, const tl_wal_config *cfg, const tl_wal_ops *ops,
                            tl_wal_recovered *rec);

/* What an append made. rec points into the staging ring and stays readable
 * until the next call on this writer from the producer thread. */
typedef struct tl_wal_appended {
    uint64_t seq;
    uint64_t checksum;
    uint64_t segment_first_seq;
    uint64_t offset; /* in that segment */
    const uint8_t *rec;
    uint32_t len;
} tl_wal_appended;

/* Appends a record of `kind` (not 0, PAD or LEADER_CHANGE) for `symbol` with
 * `body` (body_len bytes, at least the kind's v1 size, its fields in their
 * domains). ts_ns is the engine's wall clock. out may be NULL. */
enum tl_wal_err tl_wal_append(tl_wal *w, uint16_t kind, uint32_t symbol, const void *body,
                              uint32_t body_len, uint64_t ts_ns, tl_wal_appended *out);

/* Writes LEADER_CHANGE{new_fence, prev_fence = the fence in force, leader_id}
 * with header fence new_fence; new_fence must be above the fence in force. */
enum tl_wal_err tl_wal_leader_change(tl_wal *w, uint64_t new_fence,
                                     const uint8_t leader_id[TL_ID_BYTES], uint64_t ts_ns,
                                     tl_wal_appended *out);

/* Appends a prebuilt record byte for byte (a standby persisting the
 * leader's): it must pass rules 1-3, carry the next seq, the last checksum as
 * parent, and the fence in force (or be a valid LEADER_CHANGE). */
enum tl_wal_err tl_wal_append_record(tl_wal *w, const uint8_t *rec, uint32_t len,
                                     tl_wal_appended *out);

/* The next record starts a new segment. */
enum tl_wal_err tl_wal_roll(tl_wal *w);

/* Makes every record appended so far durable; returns after on_durable. */
enum tl_wal_err tl_wal_sync(tl_wal *w);

/* Without a sync thread: syncs if the oldest unsynced record is older than
 * group_max_delay_ns. Call it when the engine idles. With one: no-op. */
enum tl_wal_err tl_wal_poll(tl_wal *w);

/* The last durable point. Any thread. */
void tl_wal_durable(tl_wal *w, tl_walseg_durable *out);

/* The chain's next seq, the last checksum and the fence in force. Producer
 * thread. */
uint64_t tl_wal_next_seq(const tl_wal *w);
uint64_t tl_wal_last_checksum(const tl_wal *w);
uint64_t tl_wal_fence(const tl_wal *w);

/* Deletes whole segments whose records are all below keep_from_seq (the
 * engine passes min(snapshot covered seq, the ring's consumer_wal_seq)),
 * oldest first, never the newest. *deleted may be NULL. */
enum tl_wal_err tl_wal_retire(tl_wal *w, uint64_t keep_from_seq, uint32_t *deleted);

/* Why the writer failed (TL_WAL_ERR_IO / TL_WAL_ERR_FAILED). */
tl_wal_ioerr tl_wal_last_ioerr(tl_wal *w);

/* Syncs what was appended, stops the thread, closes and frees. Returns the
 * first error met. A writer that failed (or crashed through a fault) is only
 * freed. */
enum tl_wal_err tl_wal_close(tl_wal *w);

/* ---- fault injection (tests, the engine simulator) ---- */

enum tl_wal_fault_kind {
    TL_WAL_FAULT_NONE = 0,
    /* Write only the first `arg` bytes of record `seq` (nothing after it, no
     * sync), then stop as a crashed process would: every later call fails
     * with TL_WAL_ERR_FAILED. Close the writer and open it again to recover. */
    TL_WAL_FAULT_TEAR,
    /* Write record `seq` with byte `arg` xor 0xff (its checksum then fails),
     * and go on; the staging copy (and on_record's bytes) stay right. */
    TL_WAL_FAULT_FLIP,
};

/* Arms one fault for a seq not yet appended. Producer thread. */
enum tl_wal_err tl_wal_fault_arm(tl_wal *w, enum tl_wal_fault_kind kind, uint64_t seq,
                                 uint32_t arg);

/* FAULT INJECTION ONLY (tests, the engine simulator's --fault flags): it
 * writes exactly the records tally exists to catch. Never in production.
 *
 * Appends a prebuilt record byte for byte, like tl_wal_append_record, but
 * without its chain checks: any seq, parent and fence. The record must be
 * well formed (rules 1-3 for the WAL: length, checksum, field rules; a
 * LEADER_CHANGE is not accepted here). Then the writer follows it:
 *   - a seq at or above the next seq: next_seq = seq + 1, last_checksum =
 *     its checksum (a gap, a broken parent, the first half of a reorder);
 *   - a lower seq (the second half of a reorder, a replay) leaves the chain
 *     where it was, as a reader's expected_* stay (wal.md rule 4);
 *   - the fence in force becomes max(fence in force, its fence), so a raised
 *     fence stays (FENCE_UNANNOUNCED) and a lowered one does not
 *     (FENCE_REGRESSION).
 * It never starts a segment with openers: they would take the seqs the
 * fault is about. on_record sees it like any record. Producer thread. */
enum tl_wal_err tl_wal_append_raw(tl_wal *w, const uint8_t *rec, uint32_t len,
                                  tl_wal_appended *out);

#endif
