/* walseg.h: the per-segment walker of the native WAL (wal.md), rules 1-3 and
 * the torn-tail rules, over bytes a caller has read.
 *
 * One walker walks one segment file. It does no I/O: the caller reads the
 * file (pread, io_uring, mmap) into an 8-aligned, mutable buffer holding
 * [buf_off, buf_off + n) of the file and calls tl_walseg_next(). Each call
 * yields one event:
 *
 *   HEADER     the segment header at offset 0 passed tl_seg_hdr_check; it is
 *              copied into the walker (ws->hdr). Feed it to tl_stream_segment.
 *   RECORD     a record that passed rules 1-3 (tl_rec_verify), in the
 *              caller's buffer at ev->rec. Feed it to tl_stream_record.
 *   NEED_MORE  the walker needs [ev->offset, ev->offset + ev->len) of the file
 *              in the buffer: read it (more may be read) and call again.
 *   END        the end of records at ev->offset: a slot whose checksum word
 *              and len are zero, fewer than 64 bytes before the segment end,
 *              or the end of a file that stops at a record boundary.
 *   TENTATIVE  a rule 1 or 2 failure at ev->offset of the newest segment (or
 *              an invalid header of the newest segment, offset 0): maybe a
 *              record still being written. Not a finding.
 *   CORRUPT    WAL_CORRUPT at ev->offset; tl_walseg_finding() fills the
 *              finding (rule, named reason, segment, offset, seq).
 *
 * The walker keeps its position, so END and TENTATIVE are not final for the
 * newest segment: the caller reads the same offset again later and calls
 * again. They are final (ws->done) for a sealed segment, as is CORRUPT after
 * a rule 1/2 failure. A rule 3 failure (a record that passes its checksum but
 * breaks a field rule: WAL_CORRUPT even at the tail, and a PAD in the WAL is
 * one) has a trustworthy len, so the walker steps over it and goes on;
 * ev->rec points at it, and wal.md says reading goes on with
 * expected_seq = seq + 1 and expected_parent = checksum.
 *
 * Facts and fresh re-reads. With each call the caller passes facts: whether
 * the segment is sealed (a newer segment exists), the file size, and the
 * engine's wal_durable_* hint (ring.md seqlock snapshot; zero if none). THE
 * FACTS MUST HAVE BEEN SAMPLED BEFORE THE READ THAT FILLED THE BUFFER. Then a
 * buffer read under a fact that triggers a fresh re-read (wal.md "Torn tail vs
 * corruption": 1. a newer segment exists, 2. wal_durable_seq >= expected_seq
 * and the durable offset is past o) *is* that fresh read, and a failure in it
 * is final: CORRUPT. A tentative record is thus re-read by the ordinary loop:
 * sample the facts, read again from ev->offset, call again. Keeping an old
 * buffer across a change of facts breaks the contract (it would turn a torn
 * tail that has since been completed into corruption).
 *
 *   - sealed segment, rule 1/2 failure:  CORRUPT, rule 1/2, reason tl_rec_err
 *   - newest segment, rule 1/2 failure, durable hint past it (trigger 2; or
 *     the hint lies in a later segment, trigger 1): CORRUPT, rule 1/2, reason
 *     TL_REASON_TORN_FRESH_READ (ev->err keeps the tl_rec_err)
 *   - newest segment, END slot while the hint says a durable record ends past
 *     it in this segment: CORRUPT, TL_RULE_SEGMENT, TL_REASON_SEGMENT_END
 *   - rule 3 failure anywhere: CORRUPT, rule 3, reason tl_rec_err
 *   - invalid header: sealed, or the hint says this segment holds durable
 *     records: CORRUPT, TL_RULE_SEGMENT, TL_REASON_SEG_BASE + tl_seg_err;
 *     else TENTATIVE with the same rule and reason.
 * An END slot in a sealed segment is not judged here: the next segment's
 * header says whether the segment ended cleanly (tl_stream_segment:
 * SEGMENT_GAP), one fact, one finding.
 *
 * A writer that stalls (wal.md): the walker only says TENTATIVE at (segment,
 * offset). The loop owns time: tl_walseg_stall_step() takes each event, the
 * loop time and whether the producer's heartbeat is fresh (and its
 * incarnation alive), and says when a tentative record has stayed so for
 * wal.torn_grace_ms while the producer was fresh: raise WAL_LAG
 * (tl_walseg_stall_finding). While the producer is stale or gone the clock
 * restarts and the tail stays tentative: the engine's recovery will truncate
 * it and write that seq again.
 */
#ifndef TL_WALSEG_H
#define TL_WALSEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "finding.h"
#include "record.h"
#include "segment.h"

/* The engine's wal_durable_* (ring.md), as last read. seq 0 = none. */
typedef struct tl_walseg_durable {
    uint64_t seq;               /* highest seq the engine has fsynced */
    uint64_t segment_first_seq; /* the segment that holds it */
    uint64_t offset;            /* end of the last durable record in that segment */
} tl_walseg_durable;

/* What the caller knew before it read the bytes it passes (see above). */
typedef struct tl_walseg_facts {
    bool sealed;         /* a newer segment exists */
    uint64_t file_bytes; /* the file's size (fstat) */
    tl_walseg_durable durable;
} tl_walseg_facts;

enum tl_walseg_ev {
    TL_WALSEG_HEADER = 1,
    TL_WALSEG_RECORD,
    TL_WALSEG_NEED_MORE,
    TL_WALSEG_END,
    TL_WALSEG_TENTATIVE,
    TL_WALSEG_CORRUPT,
};

const char *tl_walseg_ev_name(enum tl_walseg_ev ev); /* "header", "record", ... */

typedef struct tl_walseg_event {
    uint8_t kind;          /* enum tl_walseg_ev */
    uint8_t rule;          /* TENTATIVE/CORRUPT: enum tl_rule */
    uint16_t reason;       /* TENTATIVE/CORRUPT: the finding's reason (finding.h) */
    uint8_t err;           /* TENTATIVE/CORRUPT: the tl_rec_err or tl_seg_err found */
    uint32_t len;          /* RECORD: its len; NEED_MORE: bytes needed from offset */
    uint64_t offset;       /* file offset of the record, slot or header (0) */
    uint64_t expected_seq; /* the seq the walker expected at offset (max seen + 1) */
    uint64_t seq;      /* TENTATIVE/CORRUPT: the seq word there if readable (unverified), else 0 */
    uint64_t checksum; /* TENTATIVE/CORRUPT: the checksum word there if readable, else 0 */
    uint8_t *rec;      /* RECORD, and CORRUPT of rule 3: the record in the caller's buffer */
} tl_walseg_event;

typedef struct tl_walseg {
    uint64_t name_first_seq; /* the segment id: first_seq from the file name */
    uint64_t off;            /* the next offset to look at: 0 = the header */
    uint64_t next_seq;       /* the seq expected at `off` (max seen + 1) */
    uint64_t records_total;  /* records yielded */
    bool hdr_ok;
    bool done; /* nothing more will come from this segment */
    tl_seg_hdr hdr;
} tl_walseg;

void tl_walseg_init(tl_walseg *ws, uint64_t name_first_seq);

/* One step (see the top of this file). buf is 8-aligned and holds
 * [buf_off, buf_off + n) of the file; buf_off is a multiple of 8. The
 * walker may clear the REPLAY bit of a record in buf (tl_rec_verify), so buf
 * is the caller's private read buffer. Once ws->done, every call says END at
 * the offset where the walk stopped and changes nothing. */
void tl_walseg_next(tl_walseg *ws, const tl_walseg_facts *facts, uint8_t *buf, uint64_t buf_off,
                    size_t n, tl_walseg_event *ev);

/* WAL_CORRUPT for a CORRUPT event, with its rule, reason, segment, offset and
 * (if readable) seq and checksum; seq2 is the seq the walker expected there.
 * The caller gives it to tl_log_emit. */
void tl_walseg_finding(const tl_walseg *ws, const tl_walseg_event *ev, tl_finding *f);

/* ---- a writer that stalls: timing owned by the loop ---- */

typedef struct tl_walseg_stall {
    bool active;      /* a tentative record is being timed */
    uint64_t segment; /* where */
    uint64_t offset;
    uint64_t since_ns; /* loop time the timing (re)started */
    uint64_t raised_total;
} tl_walseg_stall;

void tl_walseg_stall_init(tl_walseg_stall *st);

/* Feed every event of the segment being followed (HEADER/RECORD/END/...
 * clear the timer; TENTATIVE starts or continues it). producer_fresh: the
 * producer's heartbeat is fresh and its incarnation alive. Returns true when
 * WAL_LAG is due now: the same tentative place has stayed so for grace_ns of
 * fresh-producer time; it then restarts the timer, so a stall that lasts
 * raises once per grace period (behavior.md: one confirmation per grace). */
bool tl_walseg_stall_step(tl_walseg_stall *st, uint64_t segment, const tl_walseg_event *ev,
                          uint64_t now_ns, bool producer_fresh, uint64_t grace_ns);

/* WAL_LAG, reason TL_REASON_TORN_STALLED, at the stalled place. */
void tl_walseg_stall_finding(const tl_walseg_stall *st, tl_finding *f);

#endif
