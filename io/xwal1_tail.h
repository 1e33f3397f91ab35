/* xwal1_tail.h: the live tailer of an xwal1 log (the quanta trading core's
 * WAL, wal.md "Dialect xwal1") on io_uring, owned by tallyd's hot loop: the
 * `wal_poll` source of core/loop.h when wal.dialect is "xwal1".
 *
 * Single-threaded and non-blocking: no lock, no allocation after open, every
 * buffer, count and loop bounded. On the poll path the system calls are
 * io_uring submits (reads, openat, statx, close) and, while the next
 * segment's name is missing, a directory listing (getdents64) at most every
 * rescan_interval_ns.
 *
 * What it does:
 *   open      lists the directory and starts at the lowest
 *             `segment-%06d.wal` present (wal.md "Where a reader starts":
 *             an index other than 1 is an unverified anchor, no finding).
 *   catch up  reads each segment into one contiguous buffer with read_ahead
 *             reads of read_bytes in flight (READ_FIXED into the registered
 *             buffer when it is <= 6 MiB and the kernel allows it, else
 *             plain READ), walks its frames with core/xwal1's walker,
 *             decodes each payload with the fast decoder and binds it
 *             (tl_xwal1_bind: checksum, tally's per-symbol chain, kind).
 *             The buffer holds the largest frame plus the reads in flight;
 *             bytes already walked are moved out when room runs short.
 *   follow    at the end of the newest segment it parks, and every
 *             stat_interval_ns it statx()es the file (size, mtime; a recent
 *             mtime counts as a change, timestamps are coarse) and probes the
 *             predicted next name, index + 1. While that name is missing it
 *             lists the directory (a log whose next index was skipped). A
 *             change reads the tail again from the frame it stopped at.
 *   next      a segment is done when it ends and a newer one is known, or
 *             after a fault that loses its rest. The next is opened by its
 *             predicted name first, else the listing's lowest higher index
 *             (counted in segments_missing_total; the loop names the
 *             SEGMENT_GAP).
 *
 * A short item at the end of the buffer is a verdict only once the reads
 * have reached the end of the file (a read that returned 0); it is then
 * judged with `newest` = no newer segment was known when that read was
 * submitted (the facts precede the bytes). That is the offline verifier's
 * rule, applied to the bytes as they were at that read.
 *
 * Torn tail (wal.md; this engine publishes no durable position and no
 * heartbeat): frames are written whole with an fsync per record, so a short
 * frame, a length of zero or a zero-filled tail (a crash artifact: a
 * deliberate deviation from upstream, which refuses to start on it) at the
 * end of the newest segment is TENTATIVE. It becomes CORRUPT
 *   - when a newer segment appears: the tail is read again with newest =
 *     false, and the walker's own verdict is reported (reason short_payload,
 *     zero_filled_tail, ...: the offline verifier's finding on those bytes);
 *   - when it stays unchanged for cfg.torn_grace_ms while the file grows
 *     after it (tl_xwal1_tail_observe): reason torn_stalled.
 * A zero run longer than the buffer is scanned read by read (zero_scan).
 *
 * Saved position: none. xwal1 seqs count per symbol, so no one seq names a
 * place in the log, and the checks (an event seq used again, a fencing
 * token that drops) need the history in the windows: a restart reads the
 * whole retained log again (at verify speed), wal.start_seq is not used.
 *
 * Events (tl_wal_ev of core/loop.h), one per poll:
 *   SEGMENT    a segment file opened: hdr NULL, name_first_seq = its index,
 *              loc = {index, 0}. Before its first frame (even a bad magic:
 *              the index still takes its place in the sequence).
 *   RECORD     a frame whose crc held and whose payload decoded and bound:
 *              view (event_seqs and state_hash point into the tailer, valid
 *              until the next poll), symbol_name (the symbol's name, stable),
 *              loc = {index, frame offset}. A MODE_CHANGE view carries a
 *              tl_body_mode_change (mode, no command id) as its body, so the
 *              loop learns the symbol's mode as from a native record.
 *   CORRUPT    WAL_CORRUPT: rule and reason (TL_REASON_XWAL1_BASE + err, or
 *              TL_REASON_TORN_STALLED), loc, checksum (XXH3 of the payload
 *              when its crc held, else 0), seq 0. After a framing fault the
 *              rest of the segment is lost and the tailer moves to the next;
 *              after a payload fault it reads on.
 *   TENTATIVE  the newest segment's tail is torn at loc; reason is
 *              TL_REASON_XWAL1_BASE + err. Reported at each walk that finds
 *              it (after a change), the timer is the tailer's.
 *   CAUGHT_UP  it has read everything there is, once per catch-up.
 *
 * Errors: open returns a named tl_wal_err. Later, a segment that cannot be
 * opened or read is reported in the stats (state IO_ERROR, last_ioerr,
 * io_errors_total) and retried every rescan_interval_ns; the walk resumes
 * where it stopped.
 */
#ifndef TL_XWAL1_TAIL_H
#define TL_XWAL1_TAIL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/loop.h"
#include "core/xwal1.h"
#include "wal_err.h"

#define TL_XWAL1_TAIL_MAX_READ_AHEAD     64u
#define TL_XWAL1_TAIL_DEFAULT_READ_AHEAD 4u
#define TL_XWAL1_TAIL_MIN_READ_BYTES     4096u
#define TL_XWAL1_TAIL_MAX_READ_BYTES     (16u << 20)
#define TL_XWAL1_TAIL_DEFAULT_READ_BYTES (256u << 10)
#define TL_XWAL1_TAIL_TAIL_BYTES         (64u << 10) /* the first read at the tail */
/* Room for the largest frame (8 + TL_XWAL1_MAX_PAYLOAD_BYTES), page-rounded. */
#define TL_XWAL1_TAIL_FRAME_ROOM            (TL_XWAL1_MAX_PAYLOAD_BYTES + 4096u)
#define TL_XWAL1_TAIL_REGISTER_LIMIT_BYTES  (6u << 20)    /* the 8 MiB memlock limit, with room */
#define TL_XWAL1_TAIL_DEFAULT_STAT_NS       1000000ull    /* 1 ms */
#define TL_XWAL1_TAIL_DEFAULT_RESCAN_NS     100000000ull  /* 100 ms */
#define TL_XWAL1_TAIL_DEFAULT_RECENT_NS     50000000ull   /* 50 ms */
#define TL_XWAL1_TAIL_DEFAULT_LIST_QUIET_NS 1000000000ull /* 1 s */
#define TL_XWAL1_TAIL_DEFAULT_TORN_GRACE_MS 1000u

typedef struct tl_xwal1_tail_cfg {
    const char *dir;
    uint32_t max_symbols;        /* 1..TL_XWAL1_MAX_SYMBOLS: ids the loop has logs for */
    uint32_t read_ahead;         /* reads in flight, 1..64 */
    uint32_t read_bytes;         /* bytes per read: a multiple of 4096, 4 KiB..16 MiB */
    uint64_t stat_interval_ns;   /* statx and name probes at the tail */
    uint64_t rescan_interval_ns; /* directory listings while a name is missing; retries */
    uint64_t recent_ns;          /* an mtime this recent: read the tail again anyway */
    /* At the tail, a listing (for a skipped index: the predicted name is
     * probed every stat interval anyway) only once the current file has not
     * changed for this long: an engine that writes elsewhere stops writing
     * here, and one that writes here has not skipped. Keeps readdir off the
     * hot thread while the log grows. 0: every rescan interval. */
    uint64_t list_quiet_ns;
    uint64_t torn_grace_ms; /* wal.torn_grace_ms */
    bool no_register;       /* never register the buffer (plain READ) */
} tl_xwal1_tail_cfg;

/* Fills the defaults above (max_symbols 256); dir is the caller's. */
void tl_xwal1_tail_cfg_default(tl_xwal1_tail_cfg *c);

/* The buffer the tailer allocates for cfg: TL_XWAL1_TAIL_FRAME_ROOM +
 * read_ahead * read_bytes. */
uint64_t tl_xwal1_tail_buf_bytes(const tl_xwal1_tail_cfg *c);

typedef struct tl_xwal1_tailer tl_xwal1_tailer;

/* Opens the directory, lists it, sets up io_uring, the buffer and the
 * symbol table (all allocation happens here). On error *out is NULL and err
 * (may be NULL) says which call failed: TL_WAL_ERR_CONFIG,
 * TL_WAL_ERR_NOT_FOUND (no directory), TL_WAL_ERR_IO, TL_WAL_ERR_NOMEM. */
enum tl_wal_err tl_xwal1_tail_open(tl_xwal1_tailer **out, const tl_xwal1_tail_cfg *cfg,
                                   tl_wal_ioerr *err);

/* Waits for the I/O in flight (the kernel writes into our buffer), then
 * frees everything. Not for the hot path. NULL is a no-op. */
void tl_xwal1_tail_close(tl_xwal1_tailer *t);

/* One event, or false when nothing is ready. Never blocks. */
bool tl_xwal1_tail_poll(tl_xwal1_tailer *t, tl_wal_ev *ev);

/* The same, shaped for tl_loop_ops.wal_poll (ctx is the tailer). */
bool tl_xwal1_tail_poll_op(void *ctx, tl_wal_ev *ev);

/* The symbols bound so far (ids 1..count), names included. */
const tl_xwal1_symtab *tl_xwal1_tail_symbols(const tl_xwal1_tailer *t);

enum tl_xwal1_tail_state {
    TL_XWAL1_TAIL_ST_EMPTY = 0, /* the directory holds no segment yet */
    TL_XWAL1_TAIL_ST_OPENING,   /* a segment's openat is in flight */
    TL_XWAL1_TAIL_ST_READING,   /* reading a segment (catching up) */
    TL_XWAL1_TAIL_ST_FOLLOWING, /* parked at the end of the newest segment */
    TL_XWAL1_TAIL_ST_WAITING,   /* the segment is done; the next is not there (yet) */
    TL_XWAL1_TAIL_ST_IO_ERROR,  /* a segment could not be opened or read: retrying */
    TL_XWAL1_TAIL_ST_COUNT,
};

const char *tl_xwal1_tail_state_name(enum tl_xwal1_tail_state s); /* "empty", ... */

typedef struct tl_xwal1_tail_stats {
    uint8_t state;        /* enum tl_xwal1_tail_state */
    bool registered;      /* READ_FIXED into the registered buffer */
    int register_errno;   /* why not: the kernel's errno, E2BIG over 6 MiB; 0 otherwise */
    bool anchor_verified; /* the first segment read was index 1 */
    uint64_t anchor_segment;
    uint64_t segment; /* the current segment's index (0: none) */
    uint64_t offset;  /* the next frame's offset in it */
    uint32_t symbols; /* bound so far */
    uint32_t buf_bytes;
    uint64_t reads_total;
    uint64_t bytes_read;
    uint64_t frames_total;   /* crc-valid frames */
    uint64_t records_total;  /* RECORD events */
    uint64_t segments_total; /* SEGMENT events */
    uint64_t statx_total;
    uint64_t probes_total;
    uint64_t dir_scans_total;
    uint64_t compactions_total; /* walked bytes moved out of the buffer */
    uint64_t rereads_total;     /* the tail read again after a change */
    uint64_t zero_scans_total;  /* reads of a zero run longer than the buffer */
    uint64_t tentative_total;
    uint64_t corrupt_total;
    uint64_t stalled_total; /* of which torn_stalled */
    uint64_t caught_up_total;
    uint64_t segments_missing_total; /* the predicted or a listed segment was not there */
    uint64_t last_missing_segment;
    uint64_t io_errors_total;
    uint64_t io_error_streak; /* failures since the last record or catch-up */
    tl_wal_ioerr last_ioerr;
    uint64_t last_ioerr_segment;
} tl_xwal1_tail_stats;

void tl_xwal1_tail_get_stats(const tl_xwal1_tailer *t, tl_xwal1_tail_stats *s);
/* The same, as the loop's stats snapshot carries them (core/loop.h). */
void tl_xwal1_tail_gauges(const tl_xwal1_tailer *t, tl_tail_gauges *g);

#endif
