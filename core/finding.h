/* finding.h: what a check reports, in the operators' runbook taxonomy.
 *
 * A finding names one fact: a `check` (behavior.md's table), a `class` (delay,
 * dup, missing, out_of_order), a severity, a scope (a symbol, or 0 for `*`)
 * and its evidence: seqs, checksums, fences, sources and the place in the
 * log (segment and offset, or ring position). Findings are plain fixed-size
 * values so they can cross the lock-free queue from the hot loop to the
 * control thread without allocation.
 */
#ifndef TL_FINDING_H
#define TL_FINDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

enum tl_check {
    TL_CHECK_NONE = 0,
    TL_CHECK_SEQ_GAP,
    TL_CHECK_SEQ_DUPLICATE,
    TL_CHECK_SEQ_REGRESSION,
    TL_CHECK_FORK,
    TL_CHECK_DUAL_PRODUCER,
    TL_CHECK_CHAIN_BREAK,
    TL_CHECK_WAL_CORRUPT,
    TL_CHECK_RING_CORRUPT,
    TL_CHECK_SEGMENT_GAP,
    TL_CHECK_FENCE_REGRESSION,
    TL_CHECK_FENCE_UNANNOUNCED,
    TL_CHECK_STALE_LEADER,
    TL_CHECK_UNKNOWN_LEASE,
    TL_CHECK_DUAL_LEADER,
    TL_CHECK_STALE_PEER_LEADER,
    TL_CHECK_STATE_HASH_DIVERGENCE,
    TL_CHECK_PEER_LOG_FORK,
    TL_CHECK_LEDGER_AHEAD,
    TL_CHECK_LEDGER_FORK,
    TL_CHECK_LEDGER_DOUBLE_POSTING,
    TL_CHECK_LEDGER_MISSING_POSTING,
    TL_CHECK_LEDGER_REWIND,
    TL_CHECK_SETTLEMENT_LAG,
    TL_CHECK_WAL_LAG,
    TL_CHECK_STANDBY_LAG,
    TL_CHECK_RING_LAPPED,
    TL_CHECK_UNCLASSIFIED,
    TL_CHECK_PEER_SILENT,
    TL_CHECK_LEDGER_STALE,
    TL_CHECK_LEASE_UNREACHABLE,
    TL_CHECK_ENGINE_SILENT,
    TL_CHECK_COUNT,
};

/* The runbook classes. A bit set, because UNCLASSIFIED is missing +
 * out_of_order (the worst case). */
enum tl_class {
    TL_CLASS_DELAY = 1u << 0,
    TL_CLASS_DUP = 1u << 1,
    TL_CLASS_MISSING = 1u << 2,
    TL_CLASS_OUT_OF_ORDER = 1u << 3,
};
#define TL_CLASS_COUNT 4

enum tl_severity {
    TL_SEV_INFO = 0,     /* counted, no action */
    TL_SEV_DEGRADED = 1, /* an input stopped answering: no action */
    TL_SEV_SEV2 = 2,     /* needs `confirmations` in a row */
    TL_SEV_SEV1 = 3,     /* acts on the first observation */
};

/* Which row of the action table a SEV1/SEV2 finding falls under. */
enum tl_family {
    TL_FAMILY_NONE = 0,
    TL_FAMILY_SPLIT_BRAIN,   /* HARD_HALT + withdrawals halt + bundle */
    TL_FAMILY_LEDGER,        /* CANCEL_ONLY on affected symbols + withdrawals halt + bundle */
    TL_FAMILY_LOG_INTEGRITY, /* CANCEL_ONLY on * + bundle */
    TL_FAMILY_SETTLEMENT,    /* alert at T2, SOFT_HALT at T3 */
    TL_FAMILY_WAL_LAG,       /* alert, CANCEL_ONLY after wal.lag_halt_ms */
    TL_FAMILY_ALERT,         /* alert only (STANDBY_LAG, STALE_PEER_LEADER + bundle) */
};

/* Where a record or a fact came from. */
enum tl_source {
    TL_SOURCE_NONE = 0,
    TL_SOURCE_RING,
    TL_SOURCE_WAL,
    TL_SOURCE_PEER,
    TL_SOURCE_LEDGER,
    TL_SOURCE_LEASE,
    TL_SOURCE_ENGINE,
    TL_SOURCE_OPERATOR,
    TL_SOURCE_COUNT,
};

typedef struct tl_check_info {
    const char *name; /* "SEQ_GAP" */
    uint8_t cls;      /* enum tl_class bits */
    uint8_t severity; /* the table's severity (SETTLEMENT_LAG starts at SEV2) */
    uint8_t family;   /* enum tl_family */
} tl_check_info;

const tl_check_info *tl_check_info_of(enum tl_check check);
const char *tl_check_name(enum tl_check check);
/* Parses a check name; returns TL_CHECK_NONE if unknown. */
enum tl_check tl_check_parse(const char *s, size_t n);
const char *
tl_class_name(unsigned cls_bit); /* one bit: "delay", "dup", "missing", "out_of_order" */
const char *tl_severity_name(enum tl_severity sev); /* "info", "degraded", "SEV2", "SEV1" */
const char *tl_source_name(enum tl_source src);     /* "ring", "wal", ... */

/* Reading rules of wal.md, for the `rule` member. */
enum tl_rule {
    TL_RULE_NONE = 0,
    TL_RULE_LENGTH = 1,
    TL_RULE_CHECKSUM = 2,
    TL_RULE_FIELDS = 3,
    TL_RULE_SEQ = 4,
    TL_RULE_PARENT = 5,
    TL_RULE_FENCE = 6,
    TL_RULE_SEGMENT = 7, /* the across-segments rules and the segment header */
    TL_RULE_RING = 8,    /* ring.md consumer protocol */
};

/* `reason` refines a check: a tl_rec_err for *_CORRUPT on a record, a
 * tl_seg_err for a segment header, or one of these. */
enum tl_reason {
    TL_REASON_NONE = 0,
    /* values below 64 are enum tl_rec_err */
    TL_REASON_SEG_BASE = 64,       /* + enum tl_seg_err */
    TL_REASON_SEGMENT_INDEX = 128, /* segment_index not consecutive */
    TL_REASON_SEGMENT_FIRST_SEQ,   /* first_seq != last seq + 1 */
    TL_REASON_SEGMENT_PREV_CHECKSUM,
    TL_REASON_SEGMENT_NAME,     /* file name disagrees with first_seq */
    TL_REASON_SEGMENT_END,      /* a sealed segment ends with a torn record */
    TL_REASON_HEADER_FENCE,     /* segment header fence != fence in force */
    TL_REASON_HEADER_LEADER,    /* segment header leader_id != current leader */
    TL_REASON_LEADER_CHANGE,    /* a LEADER_CHANGE that breaks its rules */
    TL_REASON_FENCE_RISE,       /* fence above the one in force, no LEADER_CHANGE */
    TL_REASON_FENCE_DROP,       /* fence below the one in force */
    TL_REASON_REPLAY_FLAG,      /* a REPLAY record at or above E (ring) */
    TL_REASON_TORN_FRESH_READ,  /* a tentative record failed its fresh re-read */
    TL_REASON_TORN_STALLED,     /* a tentative record stayed so past wal.torn_grace_ms */
    TL_REASON_RING_COPY,        /* three copies failed their checksum */
    TL_REASON_RING_PAD,         /* a PAD whose len is not the room to the end */
    TL_REASON_RING_LEN,         /* a len that cannot be a record */
    TL_REASON_RING_NOT_DURABLE, /* WAL_LAG: ring record not durable after grace */
    TL_REASON_LOWER_UNSEEN,     /* a lower seq in the window's range never seen before */
    TL_REASON_LOWER_EVICTED,    /* a lower seq older than the window */
    TL_REASON_LEDGER_SILENT,    /* LEDGER_STALE: no reply compared within max_age_ms */
    TL_REASON_LEDGER_OLD,       /* LEDGER_STALE: replies older than max_age_ms */
    TL_REASON_LEDGER_BELOW,     /* LEDGER_STALE: ledger_seq below the window */
    TL_REASON_LEDGER_CONTENT,   /* LEDGER_FORK: equal counts, other qty or notional */
    TL_REASON_LEASE_ABSENT,     /* STALE_LEADER: nobody holds the leader key */
    TL_REASON_LEASE_OTHER,      /* STALE_LEADER: another engine holds it, at a higher revision */
    TL_REASON_LEASE_BEHIND,     /* UNKNOWN_LEASE: the key's mod_revision is below the fence */
    TL_REASON_LEASE_FAILED,     /* LEASE_UNREACHABLE: requests to etcd fail */
    TL_REASON_LEASE_REJECTED,   /* LEASE_UNREACHABLE: etcd's replies are rejected */
    TL_REASON_LEASE_SILENT,     /* LEASE_UNREACHABLE: no reading at all for a while */
};

/* "bad_checksum", "segment_first_seq", ... for any `reason` value. */
const char *tl_reason_name(unsigned reason);
/* The first reason code whose name is s (names repeat across the ranges
 * above, so this is a canonical code for the name, not always the one
 * that made it), or 0 when none. Bounded: TL_REASON_XWAL1_BASE + 64 names. */
uint16_t tl_reason_parse(const char *s);

typedef struct tl_finding {
    uint64_t id;      /* tally's own running number of findings */
    uint16_t check;   /* enum tl_check */
    uint8_t cls;      /* enum tl_class bits */
    uint8_t severity; /* enum tl_severity */
    uint8_t source;   /* enum tl_source: where this copy or fact came from */
    uint8_t source2;  /* the other copy's source (FORK, cross checks), or NONE */
    uint8_t rule;     /* enum tl_rule */
    uint8_t dialect;  /* enum tl_dialect of the log */
    uint16_t reason;  /* enum tl_reason / tl_rec_err / TL_REASON_SEG_BASE + tl_seg_err */
    uint16_t pad0;
    uint32_t symbol;           /* scope: a symbol id, 0 = `*` */
    uint64_t seq;              /* the seq in question (0 = none) */
    uint64_t seq2;             /* the other seq: the expected one, the end of a range, a peer's */
    uint64_t checksum;         /* this copy's checksum */
    uint64_t checksum2;        /* the other copy's, or the expected parent */
    uint64_t fence;            /* this record's fence */
    uint64_t fence2;           /* the fence in force, or the other side's */
    uint64_t segment;          /* segment id (native: first_seq of the file; xwal1: index) */
    uint64_t offset;           /* byte offset in the segment, or ring position */
    uint64_t detect_ns;        /* loop time at detection (CLOCK_MONOTONIC) */
    uint64_t incident;         /* the incident the loop grouped it into (0 = none) */
    uint8_t node[TL_ID_BYTES]; /* peer node for peer checks */
} tl_finding;

_Static_assert(sizeof(tl_finding) <= 128, "a finding fits two cache lines");

/* Fills check, cls, severity from the table; zeroes the rest. */
void tl_finding_init(tl_finding *f, enum tl_check check);

/* One line of JSON (no newline) describing the finding; returns the length
 * written, truncating at cap - 1. Used by the audit log and tallyctl. */
size_t tl_finding_json(const tl_finding *f, char *buf, size_t cap);

/* Where findings go. The hot loop's sink pushes to a lock-free queue; tests
 * collect them in an array. */
typedef struct tl_sink {
    void (*emit)(void *ctx, const tl_finding *f);
    void *ctx;
} tl_sink;

#endif
