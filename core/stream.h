/* stream.h: reading rules 4-6 of wal.md (seq, parent, fence) and the
 * cross-source comparison, for one source of records.
 *
 * A stream is one ordered source: the WAL, or the ring. Each keeps its own
 * (expected_seq, expected_parent, fence, leader), as wal.md's reader does.
 * Every record it accepts is also compared with the shared window (window.h):
 * a seq seen by both sources must carry one checksum, or it is a FORK.
 *
 * The same code serves the offline WAL reader, the io_uring tailer and the
 * ring consumer's records (ARCHITECTURE.md: "verify, per-record rules shared
 * by the ring and WAL paths"); callers have already applied rules 1-3
 * (core/record.h) to the bytes. Findings leave through the log's sink.
 *
 * Which stream names a fact, so that one fact is one finding:
 * - SEQ_GAP is the WAL's: a seq the ring skipped (it was lapped, say) is read
 *   from the WAL, and only a WAL without it is a gap.
 * - CHAIN_BREAK on the ring is raised only when the predecessor is durable
 *   (the WAL has confirmed it). Over provisional ring records a broken
 *   parent may be the echo of a fork at seq - 1, which the WAL copy will name
 *   exactly; the WAL stream checks every parent anyway.
 * - Fence rules and lower-seq classification run on both: the ring sees a
 *   stale writer's record within nanoseconds.
 * - The window's `reported` bits stop the second stream from naming a fact
 *   the first one named.
 */
#ifndef TL_STREAM_H
#define TL_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "finding.h"
#include "record.h"
#include "segment.h"
#include "window.h"

enum tl_dialect {
    TL_DIALECT_TLYWAL1 = 0, /* native */
    TL_DIALECT_XWAL1 = 1,   /* quanta trading core */
};

#define TL_XWAL1_MAX_EVENTS 1024u /* a capacity limit: more is too_many_events */

/* A record as every check sees it, whatever its dialect. */
typedef struct tl_rec_view {
    uint64_t checksum;
    uint64_t parent; /* native: the header's; xwal1: the previous record's (tally chains) */
    uint64_t seq;    /* native: engine_seq; xwal1: the record's last event seq */
    uint64_t fence;
    uint64_t ts_ns;
    uint32_t len; /* bytes in the log (record, or xwal1 frame) */
    uint32_t symbol;
    uint16_t kind;
    bool replay;         /* the ring's REPLAY flag was set (cleared in the copy) */
    const uint8_t *body; /* native body, body_len bytes; NULL for xwal1 */
    uint32_t body_len;
    const uint8_t *state_hash;  /* CHECKPOINT or xwal1 record state hash (32 bytes), or NULL */
    const uint64_t *event_seqs; /* xwal1: every event seq of the record, ascending */
    uint32_t n_events;          /* xwal1 only; 0 for native */
} tl_rec_view;

/* A view of a native record that passed rules 1-3. */
void tl_rec_view_native(tl_rec_view *v, const uint8_t *rec, bool replay);

/* Where a record sits: segment id (native: its first_seq, as in the file
 * name; xwal1: its index) and byte offset, or 0 and the ring position. */
typedef struct tl_loc {
    uint64_t segment;
    uint64_t offset;
} tl_loc;

/* State shared by the streams of one engine log. */
typedef struct tl_log {
    tl_window win;
    tl_sink sink;
    uint64_t now_ns;          /* loop time, set by the caller before each batch */
    uint64_t next_finding_id; /* ids start at 1 */
    uint8_t dialect;          /* enum tl_dialect */
    uint64_t findings_total;
    uint64_t dup_total;        /* SEQ_DUPLICATE */
    uint64_t replay_old_total; /* REPLAY records older than the window: counted, no finding */
    uint64_t uncompared_total; /* copies whose seq had left the window */
} tl_log;

/* window_mem: tl_window_bytes(window_records) bytes, 64-aligned. */
void tl_log_init(tl_log *log, enum tl_dialect dialect, void *window_mem, uint64_t window_records,
                 tl_sink sink);

/* Gives the finding an id and the loop time, and sends it to the sink. */
void tl_log_emit(tl_log *log, tl_finding *f);

typedef struct tl_stream {
    tl_log *log;
    uint8_t source;  /* TL_SOURCE_RING or TL_SOURCE_WAL */
    uint8_t src_bit; /* TL_WIN_SRC_* of this source */
    bool anchored;   /* expected_seq is known */
    bool parent_known;
    bool fence_known;
    bool leader_known;
    bool segment_known; /* segment_index is known (WAL only) */
    bool reanchor;      /* a record could not be read: the next segment header anchors anew */
    uint64_t expected_seq;
    uint64_t expected_parent;
    uint64_t fence;
    uint8_t leader_id[TL_ID_BYTES];
    uint64_t segment_index;
    uint64_t resync_seq; /* the E of the last (re)attach: lower seqs below it are backlog */
    /* counters */
    uint64_t records_total;
    uint64_t lower_total;
    uint64_t gap_records_total; /* seqs skipped (for the ring: read from the WAL instead) */
} tl_stream;

void tl_stream_init(tl_stream *s, tl_log *log, enum tl_source source);

/* Anchors a stream where reading starts: expected_seq and parent, the fence
 * in force and the leader (all-zero leader = unknown). */
void tl_stream_anchor(tl_stream *s, uint64_t expected_seq, uint64_t expected_parent, uint64_t fence,
                      const uint8_t leader_id[TL_ID_BYTES]);

/* The ring (re)attached with E = expected_seq: the parent and the fence in
 * force are taken from the window's seq - 1 if it holds it, else they are
 * learnt from the next record without a finding. */
void tl_stream_resync(tl_stream *s, uint64_t expected_seq);

/* A segment header that passed tl_seg_hdr_check, about to be read. The first
 * segment a reader opens anchors the stream from its header (the anchor is
 * unverified unless it is segment 0), and so does the segment after one
 * whose rest could not be read (`reanchor`: its WAL_CORRUPT already named
 * the fact, so the continuity rules would only repeat it, except for
 * segment_index, which is still checked); every later one is checked against the
 * stream: segment_index consecutive, first_seq == expected_seq,
 * prev_checksum == expected_parent (else SEGMENT_GAP), header fence and
 * leader_id == those in force (else FENCE_UNANNOUNCED). name_first_seq is the
 * first_seq in the file's name. Returns true if the stream re-anchored on
 * this header after a finding. */
bool tl_stream_segment(tl_stream *s, const tl_seg_hdr *h, uint64_t name_first_seq,
                       const tl_loc *loc);

/* A record that failed rule 3 passed its checksum, so its seq and checksum
 * are known: reading goes on after it (wal.md), unless its seq is lower. */
void tl_stream_step_over(tl_stream *s, uint64_t seq, uint64_t checksum);

/* The rest of a segment could not be read (a WAL_CORRUPT that failed rule 1
 * or 2): the next segment header anchors the stream anew. */
void tl_stream_reanchor(tl_stream *s);

/* A segment whose header could not be read: it still takes its place in the
 * index sequence, and the next header anchors the stream anew. */
void tl_stream_segment_unreadable(tl_stream *s);

enum tl_order {
    TL_ORDER_NEXT = 0, /* seq == expected_seq */
    TL_ORDER_GAP,      /* seq > expected_seq */
    TL_ORDER_LOWER,    /* seq < expected_seq */
};

enum tl_seen {
    TL_SEEN_FIRST = 0,  /* the first copy of this seq: the window holds it now */
    TL_SEEN_MATCH,      /* a copy from the other source agreed */
    TL_SEEN_DUPLICATE,  /* a copy from the same source agreed: SEQ_DUPLICATE */
    TL_SEEN_CONFLICT,   /* another copy disagreed: FORK */
    TL_SEEN_UNCOMPARED, /* the seq had left the window: nothing to compare */
};

typedef struct tl_stream_result {
    uint8_t order; /* enum tl_order */
    uint8_t seen;  /* enum tl_seen */
} tl_stream_result;

/* Rules 4-6 and the window comparison for one record; findings go to the
 * log's sink. The caller uses `seen == TL_SEEN_FIRST` to apply the record's
 * meaning (modes, checkpoints, sums) exactly once per seq. */
tl_stream_result tl_stream_record(tl_stream *s, const tl_rec_view *r, const tl_loc *loc);

#endif
