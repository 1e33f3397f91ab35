/* peer.h: the peer checkpoint datagram TLYPEER1 (peer.md) and what a tally
 * does with its peers' datagrams, pure.
 *
 * Each tally tells its peers' tallies, in 136-byte UDP datagrams, what its
 * engine has made durable: the seq, the log checksum there, the fence it
 * believes current, and at CHECKPOINT records the engine's state hash. Each
 * compares what its peers say with its own engine's durable history. This
 * file holds:
 *
 *   - the wire layout, asserted byte for byte, an encoder (the mac comes
 *     from a callback: core/ has no crypto) and the shape parser (rule 1's
 *     length, magic, kind, role, zero HEARTBEAT hash);
 *   - the receiver (rules 2-4): freshness (replay, stale), the window test
 *     (out_of_window), leadership on arrival (DUAL_LEADER,
 *     STALE_PEER_LEADER), fences first, datagrams held until the local
 *     engine gets there, the comparisons (PEER_LOG_FORK,
 *     STATE_HASH_DIVERGENCE), STANDBY_LAG and PEER_SILENT;
 *   - the sender's schedule (rule 5 and "Transport"): a HEARTBEAT every
 *     beat_ms, a CHECKPOINT as soon as each CHECKPOINT record is durable,
 *     the strictly increasing counter, and silence while the engine's
 *     heartbeat is stale or its leader unknown.
 *
 * What is not here: the mac (io/peer_mac: shape, identity and mac are
 * checked before the loop sees a datagram, and a datagram that fails them
 * arrives here as a counted rejection), sockets and DPDK (io/peer_udp,
 * io/peer_dpdk), and persistence of the counters (tallyd's control thread,
 * which reads the atomics below).
 *
 * Invariants:
 *   - a rejected datagram never changes state (only its counter moves);
 *   - a node's last accepted counter only grows;
 *   - every buffer is bounded: max_held datagrams per node, a CHECKPOINT
 *     hash table of ckpt_slots entries, TL_PEER_PENDING_MAX CHECKPOINTs
 *     waiting to be sent;
 *   - one fact, one finding: a node whose history diverged from ours at s
 *     is reported once; its later datagrams at seqs >= s are the echo of
 *     that fact and are only counted (peer_echo).
 */
#ifndef TL_PEER_H
#define TL_PEER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "finding.h"
#include "record.h"
#include "stream.h"
#include "window.h"

#define TL_PEER_DGRAM_BYTES  136u
#define TL_PEER_MAC_OFFSET   104u /* the mac covers bytes [0, 104) */
#define TL_PEER_MAC_BYTES    32u
#define TL_PEER_DEFAULT_PORT 7471u
#define TL_PEER_NODES_MAX    16u
#define TL_PEER_PENDING_MAX  64u /* durable-pending CHECKPOINTs to send */
#define TL_PEER_REPORTED_MAX 4u  /* CHECKPOINTs each node reported, kept for a reconcile */

/* The datagram on the wire, little-endian, naturally aligned. */
typedef struct tl_peer_wire {
    uint8_t magic[8]; /* "TLYPEER1" */
    uint32_t len;     /* 136 */
    uint16_t kind;    /* enum tl_peer_kind */
    uint16_t role;    /* enum tl_peer_role */
    uint8_t node_id[TL_ID_BYTES];
    uint64_t counter;
    uint64_t ts_ns;
    uint64_t applied_seq;
    uint64_t applied_checksum;
    uint64_t fence;
    uint8_t state_hash[TL_STATE_HASH_BYTES];
    uint8_t mac[TL_PEER_MAC_BYTES];
} tl_peer_wire;

_Static_assert(sizeof(tl_peer_wire) == TL_PEER_DGRAM_BYTES, "peer.md: 136 bytes");
_Static_assert(offsetof(tl_peer_wire, magic) == 0, "peer.md");
_Static_assert(offsetof(tl_peer_wire, len) == 8, "peer.md");
_Static_assert(offsetof(tl_peer_wire, kind) == 12, "peer.md");
_Static_assert(offsetof(tl_peer_wire, role) == 14, "peer.md");
_Static_assert(offsetof(tl_peer_wire, node_id) == 16, "peer.md");
_Static_assert(offsetof(tl_peer_wire, counter) == 32, "peer.md");
_Static_assert(offsetof(tl_peer_wire, ts_ns) == 40, "peer.md");
_Static_assert(offsetof(tl_peer_wire, applied_seq) == 48, "peer.md");
_Static_assert(offsetof(tl_peer_wire, applied_checksum) == 56, "peer.md");
_Static_assert(offsetof(tl_peer_wire, fence) == 64, "peer.md");
_Static_assert(offsetof(tl_peer_wire, state_hash) == 72, "peer.md");
_Static_assert(offsetof(tl_peer_wire, mac) == TL_PEER_MAC_OFFSET, "peer.md");

enum tl_peer_kind { TL_PEER_HEARTBEAT = 1, TL_PEER_CHECKPOINT = 2 };
enum tl_peer_role { TL_PEER_LEADER = 1, TL_PEER_STANDBY = 2 };

/* A datagram's fields, as parsed (the mac is not kept). */
typedef struct tl_peer_msg {
    uint16_t kind; /* enum tl_peer_kind */
    uint16_t role; /* enum tl_peer_role */
    uint8_t node_id[TL_ID_BYTES];
    uint64_t counter;
    uint64_t ts_ns;
    uint64_t applied_seq;
    uint64_t applied_checksum;
    uint64_t fence;
    uint8_t state_hash[TL_STATE_HASH_BYTES];
} tl_peer_msg;

/* Why a datagram was dropped: tally_peer_rejected_total{reason}. The order
 * is the order of the receiver rules. */
enum tl_peer_reject {
    TL_PEER_OK = 0,
    TL_PEER_REJ_MALFORMED,     /* "malformed": length, magic, kind, role, HEARTBEAT hash */
    TL_PEER_REJ_UNKNOWN_NODE,  /* "unknown_node": node_id not configured with a key */
    TL_PEER_REJ_BAD_MAC,       /* "bad_mac" */
    TL_PEER_REJ_REPLAY,        /* "replay": counter not above the last accepted */
    TL_PEER_REJ_STALE,         /* "stale": ts_ns outside max_skew_ms of our clock */
    TL_PEER_REJ_OUT_OF_WINDOW, /* "out_of_window": applied_seq older than our window */
    TL_PEER_REJ_COUNT,
};

const char *tl_peer_reject_name(enum tl_peer_reject r); /* stable snake_case */

/* Rule 1's shape: length 136, magic, len field, known kind and role, zero
 * hash in a HEARTBEAT, and a nonzero applied_seq in a CHECKPOINT. Fills
 * *out (may be NULL) on TL_PEER_OK. Never reads past len. */
enum tl_peer_reject tl_peer_parse(const uint8_t *buf, size_t len, tl_peer_msg *out);

/* Computes HMAC-SHA256(key, bytes[0, 104)) into mac (io/peer_mac). */
typedef void (*tl_peer_mac_fn)(void *ctx, const uint8_t *bytes, size_t len,
                               uint8_t mac[TL_PEER_MAC_BYTES]);

/* Writes the 136 bytes of m: the fields, then the mac from mac_fn (NULL:
 * zero mac, for a caller that signs afterwards). */
void tl_peer_encode(const tl_peer_msg *m, tl_peer_mac_fn mac_fn, void *mac_ctx,
                    uint8_t out[TL_PEER_DGRAM_BYTES]);

/* ---- what the receive path hands the loop ---- */

enum tl_peer_ev_type {
    TL_PEER_EV_NONE = 0,
    TL_PEER_EV_DGRAM,  /* shape, identity and mac passed: msg, node */
    TL_PEER_EV_REJECT, /* dropped before the loop: reason (malformed, unknown_node, bad_mac) */
    TL_PEER_EV_OWN,    /* our own datagram looped back: ignored, not counted as rejected */
};

typedef struct tl_peer_ev {
    uint8_t type;   /* enum tl_peer_ev_type */
    uint8_t reason; /* REJECT: enum tl_peer_reject */
    uint8_t node;   /* DGRAM: index of the sender in tl_peer_cfg.nodes */
    tl_peer_msg msg;
} tl_peer_ev;

/* ---- configuration ---- */

typedef struct tl_peer_node_cfg {
    uint8_t node_id[TL_ID_BYTES];
    uint64_t last_counter; /* persisted: the last counter accepted from it (0 = none) */
} tl_peer_node_cfg;

typedef struct tl_peer_cfg {
    uint32_t node_count; /* 0: the peer protocol is off */
    tl_peer_node_cfg nodes[TL_PEER_NODES_MAX];
    uint64_t beat_ms;       /* HEARTBEAT period, default 5 */
    uint64_t silent_ms;     /* PEER_SILENT after this long without a valid datagram, 100 */
    uint64_t max_skew_ms;   /* stale beyond this distance from our clock, 1000 */
    uint64_t lag_records;   /* STANDBY_LAG threshold, 100000 */
    uint32_t max_held;      /* datagrams held per node, default 64 */
    uint32_t ckpt_slots;    /* CHECKPOINT state hashes kept (power of two), 4096 */
    uint32_t confirmations; /* SEV2 confirmations in a row (the loop's), 3 */
    bool send;              /* send datagrams (false: receive only) */
    /* The persisted send counter: the first datagram carries
     * max(send_counter_floor, CLOCK_REALTIME ns) (peer.md: persisted + 1). */
    uint64_t send_counter_floor;
} tl_peer_cfg;

void tl_peer_cfg_defaults(tl_peer_cfg *c);

/* Bytes of memory tl_peer_init needs (held datagrams, CHECKPOINT hashes). */
size_t tl_peer_mem_bytes(const tl_peer_cfg *c);

/* ---- the local engine, as the loop sees it this step ---- */

typedef struct tl_peer_local {
    uint64_t now_ns;      /* loop time (CLOCK_MONOTONIC) */
    uint64_t now_real_ns; /* CLOCK_REALTIME, for ts_ns and skew */
    /* The local durable history reaches this seq: durable at the engine and
     * read in order from its WAL (the loop's window holds every seq up to it
     * that the log has). */
    uint64_t durable_seq;
    uint64_t fence; /* the fence the local engine writes with, as read */
    bool attached;  /* a ring (the engine's heartbeat) is followed */
    bool stale;     /* the engine's heartbeat is stale */
    bool leader_known;
    bool is_leader;         /* the log's current leader is our engine_id */
    const uint8_t *self_id; /* our engine_id; NULL while unknown */
} tl_peer_local;

/* Sends one datagram (the io layer signs it); 0 sent, -1 not. */
typedef int (*tl_peer_send_fn)(void *ctx, const tl_peer_msg *m);

/* ---- state ---- */

typedef struct tl_peer_node {
    uint8_t id[TL_ID_BYTES];
    uint64_t last_counter;
    /* the last counter accepted, for the control thread to persist */
    _Atomic uint64_t counter_pub;
    /* what it last said (accepted datagrams only) */
    bool heard;
    uint16_t role;
    uint64_t applied_seq;
    uint64_t fence;
    uint64_t last_valid_ns;
    bool silent;
    /* datagrams held until our engine reaches their seq: a FIFO */
    tl_peer_msg *held;
    uint32_t held_head;
    uint32_t held_count;
    /* leadership */
    bool dual_reported;
    uint64_t dual_fence;
    uint32_t stale_confirm;
    bool stale_reported;
    /* STANDBY_LAG of this node (a standby) */
    uint32_t lag_confirm;
    bool lag_reported;
    /* the first seq at which its history diverged from ours (0 = none) */
    uint64_t diverged_seq;
    /* The last TL_PEER_REPORTED_MAX CHECKPOINTs it reported (accepted
     * datagrams), for an on-demand reconcile on another thread: a seqlock,
     * written by the loop only, read by tl_peer_reported_read. ck_ver is odd
     * while a write is under way. */
    _Atomic uint64_t ck_ver;
    _Atomic uint64_t ck_seq[TL_PEER_REPORTED_MAX]; /* 0 = empty; slot ck_next - 1 is the newest */
    _Atomic uint64_t ck_hash[TL_PEER_REPORTED_MAX][TL_STATE_HASH_BYTES / 8];
    uint32_t ck_next; /* the loop's: the next slot to write */
} tl_peer_node;

typedef struct tl_peer_ckpt {
    uint64_t seq; /* 0 = empty */
    uint8_t hash[TL_STATE_HASH_BYTES];
} tl_peer_ckpt;

typedef struct tl_peer_counters {
    uint64_t rejected[TL_PEER_REJ_COUNT]; /* tally_peer_rejected_total{reason} */
    uint64_t accepted;                    /* tally_records_total{source="peer"} */
    uint64_t own_ignored;                 /* our own datagrams looped back */
    uint64_t compared;                    /* comparisons that agreed */
    uint64_t fenced_out;                  /* f < f_s: no comparison (fences first) */
    uint64_t held;                        /* datagrams held for later */
    uint64_t held_dropped;                /* held ones pushed out by newer (oldest first) */
    uint64_t uncompared;                  /* durable seqs our log lacks, or that left the window */
    uint64_t echo;                        /* mismatches after a node's first divergence */
    uint64_t sent_heartbeat;
    uint64_t sent_checkpoint;
    uint64_t send_errors;
    uint64_t pending_dropped; /* CHECKPOINTs to send pushed out of the pending FIFO */
    uint64_t ckpt_evicted;    /* CHECKPOINT hashes overwritten in the table */
} tl_peer_counters;

typedef struct tl_peer {
    tl_peer_cfg cfg;
    tl_log *log;
    tl_window *win;
    tl_peer_node nodes[TL_PEER_NODES_MAX];
    tl_peer_ckpt *ckpts; /* [cfg.ckpt_slots], at seq & (slots - 1) */
    uint64_t lo_seq;     /* the lowest seq the local history ever held (0 = none) */
    /* sending */
    uint64_t send_counter; /* the last counter sent (0 = none yet) */
    _Atomic uint64_t send_counter_pub;
    uint64_t next_beat_ns;
    uint64_t pending[TL_PEER_PENDING_MAX]; /* CHECKPOINT seqs not yet sent, FIFO */
    uint32_t pending_head;
    uint32_t pending_count;
    /* receiving */
    bool started;
    uint64_t held_scan_seq; /* durable_seq at the last scan of the held datagrams */
    uint32_t held_total;
    /* our own lag behind a leader peer (when we are a standby) */
    uint32_t self_lag_confirm;
    bool self_lag_reported;
    tl_peer_counters c;
} tl_peer;

/* mem: tl_peer_mem_bytes(cfg) bytes, 8-aligned. log and win are the loop's. */
void tl_peer_init(tl_peer *p, const tl_peer_cfg *cfg, tl_log *log, tl_window *win, void *mem);

/* A record's first copy took effect (core/loop.c apply_meaning): a
 * CHECKPOINT's state hash goes into the table and its seq into the send
 * FIFO. */
void tl_peer_on_record(tl_peer *p, const tl_rec_view *v);

/* An incarnation ended: records above durable_seq were never durable and
 * leave the table and the send FIFO (they may come back with other bytes). */
void tl_peer_drop_above(tl_peer *p, uint64_t durable_seq);

/* One event from the receive path (rules 2-4). */
void tl_peer_receive(tl_peer *p, const tl_peer_local *loc, const tl_peer_ev *ev);

/* Once per loop step, after the sources: held datagrams the local engine has
 * reached, PEER_SILENT, and what to send (through send_fn). Returns the
 * work done (datagrams compared or sent). */
uint32_t tl_peer_tick(tl_peer *p, const tl_peer_local *loc, tl_peer_send_fn send_fn,
                      void *send_ctx);

/* What one node reported last, as another thread reads it. */
typedef struct tl_peer_reported {
    uint8_t node_id[TL_ID_BYTES];
    uint32_t count;                     /* CHECKPOINTs below, 0..TL_PEER_REPORTED_MAX */
    uint64_t seq[TL_PEER_REPORTED_MAX]; /* newest first */
    uint8_t hash[TL_PEER_REPORTED_MAX][TL_STATE_HASH_BYTES];
} tl_peer_reported;

/* Any thread: a consistent copy of the CHECKPOINTs node reported (node <
 * cfg.node_count). False when the loop kept writing through every one of a
 * bounded number of tries: the caller asks again later. */
bool tl_peer_reported_read(const tl_peer *p, uint32_t node, tl_peer_reported *out);

/* The CHECKPOINT state hash the table holds for seq, or NULL. */
const uint8_t *tl_peer_ckpt_find(const tl_peer *p, uint64_t seq);

#endif
