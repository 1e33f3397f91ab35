/* loop.h: the reconciler loop, pure.
 *
 * One tl_loop owns every piece of check state. It is driven through ops, the
 * way the kernel drives a driver through file_operations: the ring consumer
 * (shm/), the WAL tailer (io/) and the control thread's queue are sources; the
 * actuator (admin/) is the sink. Time comes in as arguments. So the whole
 * reconciler runs inside one test process on a virtual clock, fed a history
 * generated from a seed (tests/unit/test_sim.c), and a failing seed replays
 * exactly.
 *
 * The path of a record, ring to halt:
 *   ring_poll -> tl_stream_record (rules 4-6, window) -> finding
 *     -> tl_policy_plan -> tl_policy_gate -> fast_word -> send
 *   ... the engine applies it and writes a MODE_CHANGE ...
 *   ring_poll -> MODE_CHANGE with our command id -> APPLIED
 * Findings and action events leave through `emit` to the control thread,
 * which audits, counts, alerts and bundles. The loop never blocks, never
 * allocates after tl_loop_init and never reads a clock.
 */
#ifndef TL_LOOP_H
#define TL_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "finding.h"
#include "lease.h"
#include "ledger.h"
#include "peer.h"
#include "policy.h"
#include "record.h"
#include "segment.h"
#include "stream.h"
#include "symtab.h"
#include "window.h"
#include "xwal1.h"
#include "decided.h"

/* ---- sources ---- */

enum tl_src_ring_type {
    TL_SRC_RING_NONE = 0, /* nothing committed at the consumer's position */
    TL_SRC_RING_RECORD,   /* a verified record (PADs never come here) */
    TL_SRC_RING_LAPPED,   /* the producer lapped us; the WAL fills the gap */
    TL_SRC_RING_ATTACHED, /* (re)attached: expected_seq is the new E */
    TL_SRC_RING_CORRUPT,  /* RING_CORRUPT; the consumer re-attaches by itself */
};

typedef struct tl_src_ring_ev {
    uint8_t type;
    bool replay;           /* RECORD: the REPLAY flag was set (cleared in the copy) */
    uint16_t reason;       /* CORRUPT: enum tl_reason */
    uint32_t len;          /* RECORD */
    const uint8_t *rec;    /* RECORD: the verified private copy, valid until the next poll */
    uint64_t position;     /* ring position of the record or of the fault */
    uint64_t expected_seq; /* RECORD: the E it was judged against; ATTACHED: the new E */
    uint64_t seq;          /* CORRUPT: the seq if it could be read, else 0 */
} tl_src_ring_ev;

enum tl_wal_ev_type {
    TL_WAL_EV_NONE = 0,
    TL_WAL_EV_SEGMENT,   /* a segment header that passed tl_seg_hdr_check */
    TL_WAL_EV_RECORD,    /* a record that passed rules 1-3 */
    TL_WAL_EV_CORRUPT,   /* WAL_CORRUPT: rule, reason, loc, seq */
    TL_WAL_EV_TENTATIVE, /* the newest segment's tail failed rule 1/2 at loc (may heal) */
    TL_WAL_EV_CAUGHT_UP, /* the tailer read everything there is, for now */
};

typedef struct tl_wal_ev {
    uint8_t type;
    uint8_t rule;    /* CORRUPT: enum tl_rule */
    uint16_t reason; /* CORRUPT / TENTATIVE: enum tl_reason or tl_rec_err */
    tl_loc loc;
    const tl_seg_hdr *hdr;   /* SEGMENT */
    uint64_t name_first_seq; /* SEGMENT: the first_seq in the file name (xwal1: the index) */
    tl_rec_view view;        /* RECORD */
    uint64_t seq;            /* CORRUPT / TENTATIVE: the seq if known, else expected */
    uint64_t checksum;       /* CORRUPT with rule 3: the record passed its checksum */
    const char *symbol_name; /* RECORD, xwal1: the name of view.symbol (NUL-terminated) */
} tl_wal_ev;

/* What the ring's control block says about the engine (ring.md). */
typedef struct tl_engine_status {
    bool attached;                /* a ring is mapped */
    uint64_t heartbeat_mono_ns;   /* producer_heartbeat_mono_ns */
    bool durable_valid;           /* the seqlock read gave a consistent snapshot */
    bool durable_stuck_odd;       /* the gen stayed odd */
    uint64_t durable_seq;         /* wal_durable_seq (0 = none yet) */
    uint64_t durable_segment_seq; /* wal_durable_segment_first_seq */
    uint64_t durable_offset;      /* wal_durable_offset */
    bool durable_read_failed;     /* this read was torn or odd: durable_seq is an older snapshot */
    uint8_t engine_id[TL_ID_BYTES]; /* the ring header's engine_id: our peer node id */
} tl_engine_status;

/* ---- the control thread's queue into the loop ---- */

enum tl_ctl_type {
    TL_CTL_NONE = 0,
    TL_CTL_POLICY,        /* POST /policy: action, dry_run, armed (the kill switch) */
    TL_CTL_MODE,          /* POST /actions/mode: a manual escalation */
    TL_CTL_RESEND,        /* restart: an audited EXECUTED action to send again */
    TL_CTL_INCARNATION,   /* the ring object was replaced (a new engine start) */
    TL_CTL_DUAL_PRODUCER, /* the old object's producer still beats */
    TL_CTL_ACTION,        /* canary resume steps, rollbacks, auto-resume (prebuilt action) */
    TL_CTL_STOP,          /* clean stop */
};

typedef struct tl_ctl_msg {
    uint8_t type;
    uint8_t action;       /* POLICY: enum tl_stage_action */
    bool dry_run;         /* POLICY */
    bool armed;           /* POLICY */
    uint64_t durable_seq; /* INCARNATION: the new object's wal_durable_seq */
    uint64_t token;       /* POLICY: echoed in its TL_OUT_CTL_ACK */
    tl_action act;        /* MODE / RESEND / ACTION */
} tl_ctl_msg;

/* ---- sink: replies from the engine's admin socket ---- */

typedef struct tl_cmd_reply {
    uint8_t id[TL_ID_BYTES];
    bool ok;
    bool duplicate;
    bool definitive; /* forbidden, unknown_symbol, bad_request, precondition_failed */
    uint16_t error;  /* the actuator's error code (0 when ok) */
    uint64_t applied_seq;
} tl_cmd_reply;

/* ---- out to the control thread ---- */

enum tl_out_type {
    TL_OUT_FINDING = 1,
    TL_OUT_ACTION,    /* an action changed state (PLANNED, BLOCKED, EXECUTED, APPLIED, FAILED) */
    TL_OUT_MODE_SEEN, /* a MODE_CHANGE not matched to a pending action */
    TL_OUT_BUNDLE,    /* the action table asks for a forensic bundle */
    TL_OUT_RECONNECT, /* the admin connection failed: reconnect with backoff */
    TL_OUT_STATS,     /* a periodic snapshot of the loop's counters (tallyd's hot thread) */
    TL_OUT_SYMBOL,    /* a SYMBOL record named a symbol for the first time */
    TL_OUT_CTL_ACK,   /* a POLICY message took effect */
};

typedef struct tl_mode_seen {
    uint8_t command_id[TL_ID_BYTES];
    uint32_t scope;
    uint8_t mode;
    uint8_t prev_mode;
    uint8_t withdrawals_halted;
    uint8_t ours;    /* the id carries this tally's tag: a command of ours not pending */
    uint8_t matched; /* it applied an action in flight (its APPLIED event follows) */
    uint64_t seq;
} tl_mode_seen;

/* The control thread's view of symbols and modes is built from these and
 * from every MODE_CHANGE (tl_mode_seen), never from the loop's memory. */
typedef struct tl_symbol_seen {
    uint32_t id;
    char name[TL_SYMBOL_NAME_MAX + 1];
} tl_symbol_seen;

typedef struct tl_ctl_ack {
    uint8_t ctl_type; /* enum tl_ctl_type */
    uint8_t action;   /* the policy now in force */
    uint8_t dry_run;
    uint8_t armed;
    uint64_t token;
} tl_ctl_ack;

typedef struct tl_bundle_req {
    uint64_t incident;
    uint64_t finding_id;
    uint64_t from_seq;
    uint64_t to_seq;
} tl_bundle_req;

typedef struct tl_loop_counters {
    uint64_t records_ring;
    uint64_t records_wal;
    uint64_t findings[TL_CHECK_COUNT];
    uint64_t actions_planned;
    uint64_t actions_blocked[TL_BLOCK_COUNT];
    uint64_t actions_executed;
    uint64_t actions_applied;
    uint64_t actions_failed;
    uint64_t actions_coalesced;
    uint64_t sends;
    uint64_t send_retries;
    uint64_t ring_lapped;
    uint64_t ring_undurable_dropped;
    uint64_t out_backlogged;
    uint64_t out_dropped_info; /* info findings only counted when the queue was full */
    uint64_t iterations;
    /* xwal1: findings a previous run decided on, met again in catch-up:
     * reported, their actions not planned again (core/decided.h) */
    uint64_t findings_decided_before;
    uint64_t actions_never_applied; /* xwal1: FAILED never_applied after xwal1_max_sends */
} tl_loop_counters;

/* The xwal1 tailer's state and counters (io/xwal1_tail.h), copied into the
 * loop's stats snapshot by the shell so the control thread (/metrics,
 * /capabilities) sees a tailer that is stuck or failing. */
typedef struct tl_tail_gauges {
    bool configured;     /* an xwal1 tailer runs */
    bool io_error;       /* it is retrying a segment it cannot open or read */
    uint8_t state;       /* enum tl_xwal1_tail_state */
    int last_errno;      /* of the last failed call (0: none) */
    const char *last_op; /* its name, a static string ("openat", "read"), or NULL */
    uint64_t last_ioerr_segment;
    uint64_t io_error_streak; /* failures since the tailer last made progress */
    uint64_t io_errors_total;
    uint64_t segment; /* the current segment's index (0: none) */
    uint64_t offset;  /* the next frame's offset in it */
    uint64_t reads_total;
    uint64_t bytes_read;
    uint64_t frames_total;
    uint64_t segments_total;
    uint64_t dir_scans_total;
    uint64_t rereads_total;
    uint64_t tentative_total;
    uint64_t corrupt_total;
    uint64_t segments_missing_total;
    uint64_t caught_up_total;
} tl_tail_gauges;

#define TL_LOOP_HIST_BUCKETS 24u /* bucket i: iteration time < 64 ns << i */

/* What the control thread's metrics are built from, sent every 100 ms. */
typedef struct tl_loop_stats {
    tl_loop_counters c;
    uint64_t now_ns;
    uint64_t dup_total;
    uint64_t replay_old_total;
    uint64_t uncompared_total;
    uint64_t engine_seq;  /* highest seq read in order (ring or WAL) */
    uint64_t wal_seq;     /* highest seq the WAL stream read in order */
    uint64_t durable_seq; /* wal_durable_seq as last read */
    uint64_t fence;
    uint64_t heartbeat_mono_ns;
    uint64_t inflight;
    uint64_t backlog;
    uint8_t engine_stale;
    uint8_t engine_attached;
    uint8_t stage_action;
    uint8_t dry_run;
    uint8_t armed;
    uint8_t global_mode;
    uint8_t withdrawals_halted;
    /* sampled by the shell around tl_loop_step */
    uint64_t iter_hist[TL_LOOP_HIST_BUCKETS];
    uint64_t iter_sum_ns;
    uint64_t iter_samples;
    uint64_t ring_lag_bytes; /* publish - consumer position (tally_ring_lag_bytes) */
    /* peer datagrams (peer.md): tally_peer_rejected_total{reason} and more */
    tl_peer_counters peer;
    /* tally_peer_applied_seq{node}: by node, in the config's order (0: none yet) */
    uint64_t peer_applied_seq[TL_PEER_NODES_MAX];
    /* the settlement ledger (ledger.md): tally_ledger_seq, tally_settlement_lag_* */
    tl_ledger_stats ledger;
    /* the lease authority (ledger.md): its newest reading, LEASE_UNREACHABLE */
    tl_lease_stats lease;
    /* the WAL tailer's own (filled by the shell: core never reads them) */
    tl_tail_gauges tail;
} tl_loop_stats;

typedef struct tl_out {
    uint8_t type; /* enum tl_out_type */
    union {
        tl_finding finding;
        tl_action action;
        tl_mode_seen mode;
        tl_bundle_req bundle;
        tl_loop_stats stats;
        tl_symbol_seen symbol;
        tl_ctl_ack ack;
    } u;
} tl_out;

typedef struct tl_loop_ops {
    void *ctx;
    /* sources; each returns false when nothing is pending */
    bool (*ring_poll)(void *ctx, uint64_t last_delivered_seq, tl_src_ring_ev *ev); /* may be NULL */
    bool (*wal_poll)(void *ctx, tl_wal_ev *ev);
    bool (*ctl_poll)(void *ctx, tl_ctl_msg *msg);
    void (*engine_status)(void *ctx, tl_engine_status *st); /* may be NULL (no ring) */
    /* sink */
    /* Sends one command without blocking: 0 sent, -1 not now (no connection,
     * or the socket would block); the loop retries with backoff. */
    int (*send)(void *ctx, const tl_action *a, uint64_t now_real_ns);
    bool (*reply_poll)(void *ctx, tl_cmd_reply *r);
    /* The fast-path mode words (ring.md): raise before the send. */
    void (*fast_mode)(void *ctx, uint32_t scope, uint8_t mode);
    void (*fast_withdrawals)(void *ctx, bool on);
    /* Out to the control thread: false when the queue is full (the loop
     * keeps it and tries again). */
    bool (*emit)(void *ctx, const tl_out *o);
    /* Peer datagrams (core/peer.h), both may be NULL. peer_poll: one event
     * of the receive path, shape, identity and mac already checked (self_id:
     * our engine_id, NULL while unknown); false when nothing is pending.
     * peer_send: signs and sends one datagram to every peer; 0 or -1. */
    bool (*peer_poll)(void *ctx, const uint8_t *self_id, tl_peer_ev *ev);
    int (*peer_send)(void *ctx, const tl_peer_msg *m);
    /* Ledger watermarks (core/ledger.h), both may be NULL: the reply at the
     * front of the queue (NULL when empty), which stays there while the loop
     * holds it; ledger_pop drops it once taken. */
    const tl_ledger_wm *(*ledger_front)(void *ctx);
    void (*ledger_pop)(void *ctx);
    /* Lease readings (core/lease.h), may be NULL: the next one, in the
     * poller's order; false when none is pending. */
    bool (*lease_poll)(void *ctx, tl_lease_reading *r);
} tl_loop_ops;

typedef struct tl_loop_cfg {
    uint8_t dialect;           /* enum tl_dialect */
    uint64_t window_records;   /* power of two; default 1048576 */
    uint32_t max_symbols;      /* power of two; default 4096 */
    uint32_t max_inflight;     /* actions awaiting APPLIED; default 64 */
    uint32_t backlog;          /* out events kept while the queue is full; default 4096 */
    uint32_t confirmations;    /* SEV2 confirmations in a row; default 3 */
    uint64_t durable_grace_ms; /* wal.durable_grace_ms, default 200 */
    uint64_t torn_grace_ms;    /* wal.torn_grace_ms, default 1000 */
    uint64_t lag_halt_ms;      /* wal.lag_halt_ms, default 2000 */
    uint64_t engine_stale_ms;  /* engine.stale_ms, default 250 */
    uint64_t incident_gap_ms;  /* a quiet period that closes an incident; default 300000 */
    uint64_t apply_timeout_ms; /* re-send an acknowledged command not yet applied; 1000 */
    uint64_t retry_max_ms;     /* retry backoff cap; default 250 */
    uint64_t bundle_margin;    /* seqs around an incident's range in a bundle; default 1000 */
    uint32_t budget;           /* events per source per step; default 256 */
    uint64_t id_seed;          /* random, for command ids (from getrandom at start) */
    uint64_t tag_seed;         /* from the sidecar key: recognises our own ids */
    bool ring;                 /* a ring is configured (xwal1 engines have none) */
    /* xwal1: seqs count per symbol, so the WAL's checks run in one window
     * and stream per symbol (core/xwal1.h tl_xwal1_checks), for symbol ids
     * 1..xwal1_symbols, each window xwal1_window_records seqs (a power of
     * two); all allocated at start-up. Unused for the native dialect. */
    uint32_t xwal1_symbols;        /* default 256 */
    uint64_t xwal1_window_records; /* default TL_XWAL1_WINDOW_RECORDS_DEFAULT */
    /* xwal1: an action is APPLIED when the log shows the symbol_mode it
     * asked for; one the log cannot show (withdrawals_halt, cancel_all, a
     * mode never written) is FAILED never_applied after this many sends
     * instead of being re-sent every apply_timeout_ms forever; default 8 */
    uint32_t xwal1_max_sends;
    tl_policy_cfg policy;
    tl_peer_cfg peer; /* node_count 0: no peers */
    /* the settlement ledger; enabled = false: no ledger checks */
    tl_ledger_cfg ledger;
    /* the lease authority; enabled = false: no lease checks */
    tl_lease_cfg lease;
} tl_loop_cfg;

void tl_loop_cfg_defaults(tl_loop_cfg *c);

/* Bytes tl_loop_init needs for its bounded tables (window, symbols,
 * in-flight actions, out backlog). Allocate once, 64-aligned. */
size_t tl_loop_mem_bytes(const tl_loop_cfg *c);

typedef struct tl_wal_lag_sample {
    uint64_t seq;
    uint64_t seen_ns;
} tl_wal_lag_sample;

#define TL_LAG_SAMPLES 4096u

typedef struct tl_loop {
    tl_loop_cfg cfg;
    tl_loop_ops ops;
    tl_log log;
    tl_stream wal;
    tl_stream ring;
    tl_symtab syms;
    tl_policy policy;
    uint64_t rng;
    /* time of the current step */
    uint64_t now_ns;
    uint64_t now_real_ns;
    /* engine */
    tl_engine_status engine;
    bool engine_stale;
    uint64_t durable_seq; /* highest durable seq seen in this incarnation */
    bool stopping;
    /* in-flight actions (EXECUTED, awaiting APPLIED or FAILED) */
    tl_action *inflight;
    uint32_t inflight_count;
    /* fast-path words we raised, to raise again on a new ring object */
    uint8_t fast_global;
    bool fast_withdrawals_on;
    /* WAL_LAG: ring seqs not yet durable, sampled, oldest first */
    tl_wal_lag_sample lag[TL_LAG_SAMPLES];
    uint32_t lag_head;
    uint32_t lag_count;
    uint64_t lag_last_sample_ns;
    uint32_t lag_confirmations;
    uint64_t lag_next_confirm_ns;
    bool lag_alerted;
    bool lag_escalated;
    /* a tentative WAL tail and since when */
    /* xwal1: the tailer reached the end of the log once; records read from
     * then on were written after that, so a symbol_mode among them can
     * answer a command (xwal1_applied). */
    bool xwal1_live;
    bool tentative;
    tl_loc tentative_loc;
    uint64_t tentative_seq;
    uint64_t tentative_since_ns;
    bool tentative_alerted;
    /* incidents */
    uint64_t incident;
    uint64_t incident_last_ns;
    uint64_t incident_from_seq;
    uint64_t incident_to_seq;
    /* out backlog when the control queue is full */
    tl_out *backlog;
    uint32_t backlog_head;
    uint32_t backlog_count;
    /* liveness for /healthz: the loop's last beat (mono ns), read by the control thread */
    _Atomic uint64_t beat_ns;
    uint64_t warm_sink; /* keeps tl_loop_warm's work from being optimized away */
    tl_loop_counters c;
    tl_peer peer; /* the peer receiver and sender (core/peer.h) */
    /* the settlement ledger checker (core/ledger.h) */
    tl_ledger ledger;
    /* mono: the last successful read of wal_durable_seq (LEDGER_AHEAD) */
    uint64_t durable_read_ns;
    /* the lease checker (core/lease.h) */
    tl_lease lease;
    /* xwal1: the WAL's per-symbol logs and streams (cfg.dialect XWAL1) */
    tl_xwal1_checks xwal1;
    /* xwal1: findings a previous run decided on (tl_loop_decided_add) */
    tl_decided decided;
} tl_loop;

/* mem: tl_loop_mem_bytes(cfg) bytes, 64-aligned, owned by the caller. */
void tl_loop_init(tl_loop *l, const tl_loop_cfg *cfg, const tl_loop_ops *ops, void *mem);

/* xwal1: a finding a previous run of tally audited (admin/audit.c reads
 * them back). Met again while the retained log is read again, it is still
 * reported, but no action is planned for it. Call between tl_loop_init and
 * the first tl_loop_step (the hot thread owns the loop afterwards). */
void tl_loop_decided_add(tl_loop *l, const tl_decided_key *k);

/* The FAILED error of an action the log never showed applied (xwal1); the
 * shell names it "never_applied" (admin/admin_err.h keeps the same value). */
#define TL_LOOP_ERR_NEVER_APPLIED 8u

/* One pass over every source; returns how much work it did (0 = idle). */
uint32_t tl_loop_step(tl_loop *l, uint64_t now_mono_ns, uint64_t now_real_ns);

/* Runs the planning path of an action (plan, name, gates, describe) on a
 * synthetic finding, without effects, so that its code and data are in
 * cache when a real halt comes: the halt path runs rarely, so it would
 * otherwise run cold (measured: 10 us more per halt). */
void tl_loop_warm(tl_loop *l);

/* The highest seq delivered in order by either source. */
uint64_t tl_loop_last_delivered(const tl_loop *l);

/* The fence the engine last wrote with, as far as the loop has read. */
uint64_t tl_loop_fence(const tl_loop *l);

/* A snapshot of the counters (the shell adds its iteration histogram). */
void tl_loop_stats_snapshot(const tl_loop *l, tl_loop_stats *out);

#endif
