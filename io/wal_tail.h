/* wal_tail.h: the live tailer of a native WAL directory, on io_uring, owned by
 * tallyd's hot loop (the `wal_poll` source of core/loop.h).
 *
 * Single-threaded and non-blocking: no lock, no allocation after open, every
 * buffer and count bounded. On the poll path the only system calls are
 * io_uring submits (reads, the next segment's openat, statx, close) and,
 * when an expected segment is missing, a directory listing (io/wal_dir).
 *
 * What it does:
 *   open     lists the directory and starts in the segment holding
 *            cfg.start_seq, or at the lowest segment present (wal.md "Where a
 *            reader starts": an anchor other than segment 0 is unverified,
 *            see stats.anchor_verified). Every record of that first segment
 *            is delivered, so the loop learns the openers (names, modes).
 *   catch up reads the retained WAL with read_ahead reads of buf_bytes in
 *            flight, into registered buffers (READ_FIXED) when
 *            read_ahead * buf_bytes <= 6 MiB and the kernel allows it, else
 *            plain READ (stats.registered, stats.register_errno).
 *   follow   once it has read everything there is (CAUGHT_UP), it parks at
 *            the tail of the newest segment and reads again when:
 *            - the durable hint (tl_wal_tail_durable, every loop step) moves
 *              past the place it parked at, or names a newer segment;
 *            - a statx of the file (size, mtime) through io_uring says it
 *              changed (or its mtime is recent: timestamps are coarse): at
 *              most every stat_interval_ns without a hint, and every
 *              hint_stat_interval_ns with one, so that bytes past the
 *              durable point (a record torn by a crash, a writer stalled
 *              mid-record) are seen and reported TENTATIVE too;
 *            - a newer segment appears: the hint's segment, or the predicted
 *              name (`%020llu.wal` of the last seq + 1) probed by statx. The
 *              current segment is then sealed, and its rest is read again to
 *              its end.
 *
 * Verification is core/walseg's (rules 1-3 and the torn-tail rules), used
 * unchanged. Its facts (sealed, file size, durable hint) are sampled when a
 * read is submitted, so they always precede the read that filled the buffer;
 * a record reassembled from two reads (the carry buffer) is judged with the
 * facts of the older read. For a file shorter than its segment_size (not
 * preallocated) the file size is refreshed by a statx submitted after the
 * facts it is paired with, so a durable offset is never judged against a
 * stale size.
 *
 * Events (tl_wal_ev of core/loop.h), one per poll:
 *   SEGMENT    a header that passed tl_seg_hdr_check: hdr (valid until the
 *              next segment starts, at least until the next poll),
 *              name_first_seq, loc = {segment, 0}.
 *   RECORD     a record that passed rules 1-3: view over bytes that stay
 *              valid until the next poll; loc = {segment, offset}.
 *   CORRUPT    WAL_CORRUPT: rule, reason, loc, seq (the seq word if readable,
 *              else the seq expected there) and checksum (verified for rule 3;
 *              for rules 1/2 the unverified word, as io/wal_reader reports
 *              it). After rule 1/2 or a header, the rest of the segment is
 *              lost and the tailer moves to the next one.
 *   TENTATIVE  the newest segment's tail failed rule 1/2 (or its header is
 *              not valid yet) at loc: reported each time it is observed
 *              again; the loop owns the torn_grace timer.
 *   CAUGHT_UP  it has read everything there is, once per catch-up (after any
 *              SEGMENT/RECORD/CORRUPT since the last one).
 *
 * Errors: open returns a named tl_wal_err. Later, a segment that cannot be
 * opened or read is reported in the stats (state IO_ERROR, last_ioerr with the
 * call and errno, io_errors_total) and retried every rescan_interval_ns; the
 * walk resumes where it stopped. A segment deleted behind the tailer is read
 * to its end through the open descriptor; one deleted before it was opened
 * makes the tailer list the directory again and go on with the next segment
 * present (counted in segments_missing_total; the loop's stream names the
 * SEGMENT_GAP).
 */
#ifndef TL_WAL_TAIL_H
#define TL_WAL_TAIL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/loop.h"
#include "core/walseg.h"
#include "wal_err.h"

#define TL_WAL_TAIL_MAX_READ_AHEAD       64u
#define TL_WAL_TAIL_DEFAULT_READ_AHEAD   4u
#define TL_WAL_TAIL_MIN_BUF_BYTES        4096u
#define TL_WAL_TAIL_MAX_BUF_BYTES        (64u << 20)
#define TL_WAL_TAIL_DEFAULT_BUF_BYTES    (1u << 20)
#define TL_WAL_TAIL_MAX_TOTAL_BYTES      (256ull << 20) /* read_ahead * buf_bytes */
#define TL_WAL_TAIL_DEFAULT_TAIL_BYTES   (64u << 10)
#define TL_WAL_TAIL_REGISTER_LIMIT_BYTES (6u << 20)   /* the 8 MiB memlock limit, with room */
#define TL_WAL_TAIL_DEFAULT_STAT_NS      1000000ull   /* 1 ms */
#define TL_WAL_TAIL_DEFAULT_HINT_STAT_NS 10000000ull  /* 10 ms */
#define TL_WAL_TAIL_DEFAULT_RESCAN_NS    100000000ull /* 100 ms */
#define TL_WAL_TAIL_DEFAULT_HINT_NS      100000000ull /* 100 ms */
#define TL_WAL_TAIL_DEFAULT_RECENT_NS    50000000ull  /* 50 ms */

typedef struct tl_wal_tail_cfg {
    const char *dir;
    uint64_t start_seq;             /* 0 or 1: the lowest segment present */
    uint32_t read_ahead;            /* reads in flight, 1..64 */
    uint32_t buf_bytes;             /* bytes per read: a multiple of 4096, 4 KiB..64 MiB;
                                       read_ahead * buf_bytes <= 256 MiB */
    uint32_t tail_bytes;            /* read size at the tail: multiple of 4096, <= buf_bytes */
    uint64_t stat_interval_ns;      /* statx polls and name probes without a hint */
    uint64_t hint_stat_interval_ns; /* statx polls at the tail with a hint */
    uint64_t rescan_interval_ns;    /* directory listings while a segment is missing; retries */
    uint64_t hint_timeout_ns;       /* a hint not refreshed for this long: poll with statx */
    uint64_t recent_ns;             /* an mtime this recent: read the tail again anyway */
    uint32_t dir_max_entries;       /* 0 = TL_WAL_DIR_DEFAULT_MAX */
    bool no_register;               /* never register buffers (plain READ) */
} tl_wal_tail_cfg;

/* Fills the defaults above; dir is the caller's. */
void tl_wal_tail_cfg_default(tl_wal_tail_cfg *c);

/* The tag differs from the type name: io/wal_reader.h owns `enum tl_wal_tail`. */
typedef struct tl_wal_tailer tl_wal_tail;

/* Opens the directory, lists it, sets up io_uring and the buffers (all
 * allocation happens here). On error *out is NULL and err (may be NULL) says
 * which call failed: TL_WAL_ERR_CONFIG, TL_WAL_ERR_NOT_FOUND (no directory),
 * TL_WAL_ERR_IO (open, getdents, io_uring_queue_init), TL_WAL_ERR_NOMEM,
 * TL_WAL_ERR_TOO_MANY_SEGMENTS. */
enum tl_wal_err tl_wal_tail_open(tl_wal_tail **out, const tl_wal_tail_cfg *cfg, tl_wal_ioerr *err);

/* Waits for the reads in flight (the kernel writes into our buffers), then
 * frees everything. Not for the hot path. NULL is a no-op. */
void tl_wal_tail_close(tl_wal_tail *t);

/* The engine's wal_durable_* as read from the ring's seqlock this step
 * (ring.md). valid = false (no ring, a torn read) keeps the last valid
 * snapshot for judging; after hint_timeout_ns without a valid one, the tail is
 * followed by statx polling. A durable_seq of 0 is "none yet". */
void tl_wal_tail_durable(tl_wal_tail *t, bool valid, uint64_t durable_seq,
                         uint64_t segment_first_seq, uint64_t offset);

/* One event, or false when nothing is ready. Never blocks. */
bool tl_wal_tail_poll(tl_wal_tail *t, tl_wal_ev *ev);

/* The same, shaped for tl_loop_ops.wal_poll (ctx is the tailer). */
bool tl_wal_tail_poll_op(void *ctx, tl_wal_ev *ev);

/* Where a restart may resume: the highest seq delivered as a RECORD that is
 * <= the last valid durable hint (wal.md: never beyond wal_durable_seq), and
 * the segment holding it. {0, 0} before any record, or when no valid hint
 * was ever given. */
typedef struct tl_wal_tail_pos {
    uint64_t seq;
    uint64_t segment_first_seq;
} tl_wal_tail_pos;

tl_wal_tail_pos tl_wal_tail_position(const tl_wal_tail *t);

enum tl_wal_tail_state {
    TL_WAL_TAIL_ST_EMPTY = 0, /* the directory holds no segment yet */
    TL_WAL_TAIL_ST_OPENING,   /* a segment's openat/statx is in flight */
    TL_WAL_TAIL_ST_READING,   /* reading a segment (catching up) */
    TL_WAL_TAIL_ST_FOLLOWING, /* parked at the tail of the newest segment */
    TL_WAL_TAIL_ST_WAITING,   /* the segment is done; the next is not there (yet) */
    TL_WAL_TAIL_ST_IO_ERROR,  /* a segment could not be opened or read: retrying */
    TL_WAL_TAIL_ST_COUNT,
};

const char *tl_wal_tail_state_name(enum tl_wal_tail_state s); /* "empty", "opening", ... */

typedef struct tl_wal_tail_stats {
    uint8_t state;           /* enum tl_wal_tail_state */
    bool registered;         /* READ_FIXED into registered buffers */
    int register_errno;      /* why not: the kernel's errno, E2BIG over 6 MiB; 0 otherwise */
    bool hint_mode;          /* following by the durable hint (else by statx) */
    bool anchor_verified;    /* the first header read was segment 0, from the start */
    uint64_t anchor_segment; /* the segment reading started in */
    uint64_t segment;        /* the current segment (first_seq of its name); 0: none */
    uint64_t offset;         /* the walker's place in it */
    uint64_t read_seq;       /* the highest seq delivered */
    uint32_t reads_in_flight;
    uint32_t read_ahead;
    uint32_t buf_bytes;
    uint64_t reads_total;
    uint64_t bytes_read;
    uint64_t records_total;
    uint64_t segments_total;  /* SEGMENT events */
    uint64_t segments_opened; /* openat that succeeded */
    uint64_t statx_total;
    uint64_t probes_total; /* statx of a newer segment's name */
    uint64_t dir_scans_total;
    uint64_t carried_total; /* records and headers reassembled across reads */
    uint64_t rereads_total; /* the tail read again after a change */
    uint64_t stale_reads_total;
    uint64_t tentative_total;
    uint64_t corrupt_total;
    uint64_t caught_up_total;
    uint64_t segments_missing_total; /* a listed or predicted segment was not there */
    uint64_t last_missing_segment;   /* the name (first_seq) of the last one */
    uint64_t io_errors_total;
    tl_wal_ioerr last_ioerr;     /* the last failed call and its errno */
    uint64_t last_ioerr_segment; /* the segment it was about */
} tl_wal_tail_stats;

void tl_wal_tail_get_stats(const tl_wal_tail *t, tl_wal_tail_stats *s);

#endif
