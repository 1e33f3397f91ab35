/* wal_reader.h: the offline reader of a native WAL directory.
 *
 * It reads every segment in seq order with pread into one aligned buffer
 * (allocated once per call), walks each with core/walseg (rules 1-3, the
 * torn-tail rules) and checks the records with core/stream (rules 4-6, the
 * across-segment rules, the window comparison). Findings go to the caller's
 * sink with the segment (its first_seq, i.e. its file name), offset, seq and
 * rule. A summary says what was read and how the log ends.
 *
 * Offline, the newest segment's torn tail (a rule 1/2 failure, or an invalid
 * header) is reported in the summary as a tentative tail at an offset, never
 * as corruption: the engine's recovery truncates it. A durable hint in the
 * options (the ring's wal_durable_*) turns that into WAL_CORRUPT where wal.md
 * says data must be.
 *
 * Where reading starts (wal.md): at start_seq if given (the segment that holds
 * it), else at the lowest segment present. That segment's prev_checksum and
 * fence are taken as given; unless it is the log's first segment (index 0)
 * the summary says the anchor is unverified. All records of the starting
 * segment are checked (so the chain up to start_seq is too); the per-record
 * callback sees only seqs >= start_seq.
 *
 * After a WAL_CORRUPT that ends a segment (a rule 1/2 failure or a bad header
 * in a sealed segment), the next segment's header re-anchors the stream
 * (counted in `reanchors`), so that one corrupt place is one finding and not a
 * SEGMENT_GAP too.
 *
 * The reader is a library: tallyctl (wal verify), the ledger sums, bundle
 * verification and reconcile reuse it through on_record.
 */
#ifndef TL_WAL_READER_H
#define TL_WAL_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/finding.h"
#include "core/stream.h"
#include "core/walseg.h"
#include "wal_err.h"

#define TL_WAL_READ_DEFAULT_WINDOW (1u << 16)
#define TL_WAL_READ_DEFAULT_BUF    (4u << 20)
#define TL_WAL_READ_MIN_BUF        (128u << 10)

typedef struct tl_wal_read_opts {
    uint64_t start_seq;        /* 0 = from the lowest segment present */
    uint64_t window_records;   /* power of two >= 2; 0 = TL_WAL_READ_DEFAULT_WINDOW */
    size_t buf_bytes;          /* read buffer, multiple of 4096 >= 128 KiB; 0 = 4 MiB */
    uint32_t dir_max_entries;  /* 0 = TL_WAL_DIR_DEFAULT_MAX */
    tl_walseg_durable durable; /* the engine's wal_durable_*, if known (else zero) */
    tl_sink sink;              /* findings; emit may be NULL (then only counted) */
    /* Each verified record in order of the log, seq >= start_seq. Return
     * nonzero to stop reading (summary.stopped). */
    int (*on_record)(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result res);
    /* Each valid segment header, before its records (may be NULL). */
    void (*on_segment)(void *ctx, const tl_seg_hdr *h, uint64_t name_first_seq);
    void *ctx;
} tl_wal_read_opts;

enum tl_wal_tail {
    TL_WAL_TAIL_EMPTY = 0, /* no segment */
    TL_WAL_TAIL_CLEAN,     /* the newest segment ends at an end-of-records slot */
    TL_WAL_TAIL_TENTATIVE, /* a torn record (or header) at tail_offset of the newest segment */
    TL_WAL_TAIL_CORRUPT,   /* the newest segment ends in WAL_CORRUPT */
    TL_WAL_TAIL_STOPPED,   /* on_record asked to stop */
};

const char *tl_wal_tail_name(enum tl_wal_tail t); /* "empty", "clean", ... */

typedef struct tl_wal_summary {
    /* directory */
    uint32_t segments_present; /* segment names found */
    uint32_t segments_read;
    uint32_t tmp_names;
    uint32_t unknown_names;
    char unknown_first[64]; /* the first unknown name, if any */
    /* records */
    uint64_t records_total;     /* that passed rules 1-3 */
    uint64_t records_delivered; /* given to on_record */
    uint64_t corrupt_total;     /* WAL_CORRUPT findings */
    uint64_t findings_total;    /* all findings */
    uint64_t first_seq;         /* first and last record read (0 = none) */
    uint64_t last_seq;
    uint64_t last_checksum;
    uint64_t fence_min; /* over the records read */
    uint64_t fence_max;
    /* the reader's state at the end (the next record it would expect) */
    uint64_t expected_seq;
    uint64_t expected_parent;
    uint64_t fence;                 /* in force */
    uint8_t leader_id[TL_ID_BYTES]; /* current leader; zero = unknown */
    bool anchor_verified;           /* reading started at the log's first segment */
    uint64_t anchor_segment;        /* first_seq (name) of the segment reading started in */
    uint32_t reanchors;             /* re-anchors after a corrupt segment end */
    bool stopped;
    /* how the log ends */
    uint8_t tail;          /* enum tl_wal_tail */
    uint64_t tail_segment; /* newest segment read (its name's first_seq) */
    uint64_t tail_segment_index;
    uint64_t tail_segment_size; /* from its header (0 if invalid) */
    uint64_t tail_offset;       /* end of its last valid record = where a torn record starts */
    uint16_t tail_reason;       /* TENTATIVE/CORRUPT: the reason (finding.h) */
    uint64_t tail_records;      /* valid records in the newest segment */
    /* an error that stopped the read */
    tl_wal_ioerr ioerr;
} tl_wal_summary;

/* Reads the directory at `path`. Returns TL_WAL_OK when the log was read
 * (findings or not: they are in the sink and the summary), or the error that
 * stopped it (the summary then holds what was read before). */
enum tl_wal_err tl_wal_read_dir(const char *path, const tl_wal_read_opts *opts,
                                tl_wal_summary *sum);

#endif
