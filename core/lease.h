/* lease.h: the lease authority (ledger.md "Lease authority: etcd v3"), parsed
 * and checked.
 *
 * Leadership is a key in etcd. Its value is the leader's engine_id in hex,
 * its mod_revision the fencing token the leader writes its records with.
 * tally reads the key through etcd's JSON gateway (POST /v3/kv/range) every
 * lease.poll_ms on the control thread and hands each reading to the hot loop.
 *
 * Two halves, both pure:
 *
 * The reply. tl_lease_parse() turns the body of a range reply into a
 * tl_lease_reading or a named rejection (enum tl_lease_err). etcd's gateway
 * writes keys and values in base64, int64 fields as decimal strings, and
 * leaves empty fields out (no "kvs" and no "count" when the key is absent).
 * Parsed strictly: int64 fields must be strings of digits (no sign, no
 * leading zero, at most 2^63 - 1, converted digit by digit, never through a
 * double); base64 is canonical (padding, no stray bytes); the one kv must be
 * the key asked for; the value must be an engine id (32 hex digits);
 * count must agree with kvs; mod_revision <= header.revision. It runs on the
 * control thread (cJSON allocates while it parses).
 *
 * The checker. tl_lease keeps the newest reading (L = its holder, R = the
 * key's mod_revision, H = the reply's header.revision, and its receive
 * times) and judges, in the reconciler loop, allocation free:
 *   - STALE_LEADER, per record's first copy (tl_lease_record): the local
 *     engine acts as leader (its log's current leader is its own
 *     engine_id), the newest reading is conclusive (H >= the record's
 *     fence: else it predates the put that made the engine leader, and only
 *     the next reading tells), the key is absent, or it is held by another
 *     engine with R > the record's fence, and the record's ts_ns is later
 *     than grace_ms after the receive time of the first reading of the run
 *     of readings (the newest included) that do not name the local engine:
 *     when the loss was first seen, the engine had grace_ms to notice it. A
 *     standby (its log's leader is another engine) never triggers it.
 *   - UNKNOWN_LEASE, at each reading (against the fence in force) and per
 *     record (against its fence): the key is present with R < the fence and
 *     H >= the fence (conclusive); the same engine's records could only
 *     carry a fence above R if an older authority answers (a restored
 *     backup) or another writer's put was lost (split-brain).
 *   - LEASE_UNREACHABLE (degraded): `confirmations` failed readings in a
 *     row (the transfer failed or the reply was rejected), or no reading of
 *     any kind for stale_ms (the poller itself is stuck).
 * One fact, one finding: each is raised once per episode. STALE_LEADER's
 * episode ends at a reading whose holder is the local engine; UNKNOWN_LEASE's
 * at a conclusive reading with R >= the fence in force; LEASE_UNREACHABLE's
 * at the next good reading.
 */
#ifndef TL_LEASE_H
#define TL_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "stream.h"

#define TL_LEASE_BODY_MAX  16384u /* range reply bytes; one kv needs well under 1 KiB */
#define TL_LEASE_KEY_MAX   256u   /* key bytes (before base64) */
#define TL_LEASE_INT64_MAX 9223372036854775807ull

/* How a reading ended (tl_lease_reading.fail). */
enum tl_lease_fail {
    TL_LEASE_FAIL_NONE = 0,    /* a good reading */
    TL_LEASE_FAIL_UNREACHABLE, /* the request failed: connect, timeout, transport, HTTP status */
    TL_LEASE_FAIL_REJECTED,    /* a reply came but failed tl_lease_parse */
};

/* One reading of the leader key, with what the control thread adds (its
 * running number and the receive times). 80 bytes: it crosses to the hot
 * loop through a queue of its own (admin/lease_poll.h). */
typedef struct tl_lease_reading {
    uint64_t poll_id;      /* 1, 2, ...: set by the poller */
    uint64_t recv_mono_ns; /* CLOCK_MONOTONIC when the reply was complete */
    uint64_t recv_real_ns; /* CLOCK_REALTIME then: compared with records' ts_ns */
    uint64_t revision;     /* H: header.revision */
    uint64_t mod_revision; /* R: the key's mod_revision (0 when absent) */
    uint64_t create_revision;
    uint64_t lease_id;           /* the key's lease (0: none) */
    uint8_t holder[TL_ID_BYTES]; /* L: the value, an engine_id (zero when absent) */
    uint8_t present;             /* the key exists */
    uint8_t fail;                /* enum tl_lease_fail */
    uint16_t detail;             /* fail: the poller's reason code (logs only) */
    uint32_t zero;
} tl_lease_reading;

/* Why a range reply was rejected. Stable names: tl_lease_err_name(). */
enum tl_lease_err {
    TL_LEASE_OK = 0,
    TL_LEASE_ERR_TOO_LARGE,  /* body_too_large: over TL_LEASE_BODY_MAX */
    TL_LEASE_ERR_JSON,       /* bad_json: not JSON, bytes after the value, or \u0000 */
    TL_LEASE_ERR_NOT_OBJECT, /* not_object: the reply, header or a kv is not an object */
    TL_LEASE_ERR_MISSING,    /* missing_member */
    TL_LEASE_ERR_DUPLICATE,  /* duplicate_member */
    TL_LEASE_ERR_NOT_STRING, /* not_string: an int64 or bytes field sent otherwise */
    TL_LEASE_ERR_DECIMAL,    /* bad_decimal: empty, sign, leading zero, non-digit */
    TL_LEASE_ERR_OVERFLOW,   /* int64_overflow: above 2^63 - 1 */
    TL_LEASE_ERR_BASE64,     /* bad_base64 */
    TL_LEASE_ERR_KVS,        /* kvs_not_array */
    TL_LEASE_ERR_TOO_MANY,   /* too_many_kvs: a range of one key holds at most one */
    TL_LEASE_ERR_COUNT_KVS,  /* count_mismatch: count disagrees with kvs */
    TL_LEASE_ERR_OTHER_KEY,  /* other_key: the kv is not the key asked for */
    TL_LEASE_ERR_VALUE,      /* bad_value: the value is not an engine id (32 hex digits) */
    TL_LEASE_ERR_REVISION,   /* revision_order: mod_revision > header.revision, or 0 */
    TL_LEASE_ERR_COUNT,
};

const char *tl_lease_err_name(enum tl_lease_err e);

/* Parses a range reply of len bytes (not NUL-terminated) for the key
 * (key_len raw bytes). On success fills revision .. present of *out (the
 * poller's members are left zero). On error *out is unspecified and
 * *member (may be NULL) names the offending member ("header.revision",
 * "kvs[0].value", ...). */
enum tl_lease_err tl_lease_parse(const char *body, size_t len, const uint8_t *key, size_t key_len,
                                 tl_lease_reading *out, const char **member);

/* Base64 (RFC 4648, padded). Encode: returns the length written (NUL
 * added), or 0 if cap is too small. Decode: canonical input only (length a
 * multiple of 4, padding only at the end, unused bits zero); returns the
 * decoded length, or -1. */
size_t tl_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap);
long tl_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);

/* ---- the checker ---- */

typedef struct tl_lease_cfg {
    bool enabled;           /* lease.endpoint is set */
    uint32_t confirmations; /* failed readings in a row for LEASE_UNREACHABLE; default 3 */
    uint64_t grace_ms;      /* lease.grace_ms, default 200 */
    uint64_t stale_ms;      /* no reading at all this long: LEASE_UNREACHABLE; default 1000 */
} tl_lease_cfg;

void tl_lease_cfg_defaults(tl_lease_cfg *c);

/* What the loop knows of the local engine when it judges. */
typedef struct tl_lease_local {
    const uint8_t *self_id; /* the local engine_id, NULL while unknown */
    bool is_leader;         /* the log's current leader is self_id */
    uint64_t fence;         /* the fence in force (0: unknown) */
} tl_lease_local;

typedef struct tl_lease_stats {
    uint64_t readings_total;     /* readings taken off the queue */
    uint64_t ok_total;           /* good readings */
    uint64_t failed_total;       /* fail = unreachable */
    uint64_t rejected_total;     /* fail = rejected */
    uint64_t inconclusive_total; /* judgements deferred: H below the fence */
    uint64_t last_ok_ns;         /* mono receive time of the newest good reading (0: none) */
    uint64_t revision;           /* its H */
    uint64_t mod_revision;       /* its R */
    uint8_t present;             /* its key exists */
    uint8_t holder_is_local;     /* its holder is the local engine */
    uint8_t unreachable;         /* a LEASE_UNREACHABLE episode is open */
    uint8_t zero;
    uint32_t fails_in_row;
} tl_lease_stats;

typedef struct tl_lease {
    tl_lease_cfg cfg;
    tl_log *log; /* findings go through tl_log_emit */
    bool have;   /* cur holds a good reading */
    tl_lease_reading cur;
    /* real: the receive time of the first reading of the current run of
     * good readings that do not name the local engine (0: the newest names
     * it). Polls come every few ms, far inside grace_ms: the ts_ns rule is
     * measured from when the loss was first read, not from the newest
     * reading, which is always fresh. */
    uint64_t lost_since_real_ns;
    uint64_t last_any_ns; /* mono: the newest reading of any kind, or the first tick */
    /* The newest record's first copy (0: none yet): an UNKNOWN_LEASE raised
     * at a reading names it as evidence, the last record written with the
     * fence in force that the authority does not back. */
    uint64_t last_seq;
    uint64_t last_checksum;
    bool stale_reported;
    bool unknown_reported;
    tl_lease_stats st;
} tl_lease;

void tl_lease_init(tl_lease *g, const tl_lease_cfg *cfg, tl_log *log);

/* One reading from the queue, in order (poll_id grows). loc: the local
 * engine now (UNKNOWN_LEASE against the fence in force). */
void tl_lease_take(tl_lease *g, const tl_lease_reading *r, const tl_lease_local *loc,
                   uint64_t now_mono_ns);

/* A record's first copy (ring or WAL), after the stream took it (so a
 * LEADER_CHANGE in it already names the current leader). */
void tl_lease_record(tl_lease *g, const tl_rec_view *v, const tl_lease_local *loc);

/* Each step: LEASE_UNREACHABLE when nothing was read for stale_ms. */
void tl_lease_tick(tl_lease *g, uint64_t now_mono_ns);

void tl_lease_stats_get(const tl_lease *g, const uint8_t *self_id, tl_lease_stats *out);

#endif
