/* ledger.h: the settlement ledger's watermark (ledger.md), parsed and checked.
 *
 * Two halves, both pure:
 *
 * The reply. tl_ledger_parse() turns the body of `GET /v1/watermark` into a
 * fixed-size tl_ledger_wm, or into a named rejection (enum tl_ledger_err):
 * 64-bit figures must be decimal strings (unsigned, no sign, no leading
 * zeros, at most 2^64 - 1, converted digit by digit, never through a double);
 * the checksum exactly 16 lowercase hex digits; at most TL_LEDGER_SYMBOLS_MAX
 * symbols. Bodies over TL_LEDGER_BODY_MAX bytes are refused before parsing.
 * It runs on the control thread (cJSON allocates while it parses).
 *
 * The checker. tl_ledger keeps tally's side of the comparison, fed by the
 * reconciler loop (core/loop.c) on the hot thread, bounded and allocation
 * free after tl_ledger_init:
 *   - the fold: a cursor walks the window (core/window.h) in seq order up to
 *     the engine's durable seq, adding each durable TRADE to the running
 *     sums `run` (count, Σ(u64)qty, Σ(u64)price×(u64)qty, wrapping u64) and
 *     appending it to a FIFO of unposted trades. Amortized O(1) per record,
 *     at most fold_budget records per step. The sums are absolute
 *     ("anchored") when the fold starts at seq 1, or once it passes a
 *     CHECKPOINT whose running totals were captured from its body
 *     (tl_ledger_checkpoint, from the loop's apply_meaning);
 *   - a watermark at ledger_seq s pops the FIFO up to s. Then tally's totals
 *     at s are run − Σ(FIFO) (the FIFO's sum is kept), O(1); the popped
 *     trades, per symbol, are tally's per-symbol deltas since the previous
 *     watermark. The oldest trade left in the FIFO is the oldest durable
 *     TRADE the ledger has not posted: SETTLEMENT_LAG's clock.
 * One check costs O(trades posted since the previous watermark + symbols in
 * the reply), whatever the lag (bench/bench_ledger.c); the first part is
 * spread over steps, at most pop_budget trades per step (the reply stays
 * held until its trades are off the FIFO), so no step of the hot loop pays
 * for a burst.
 *
 * Checks per watermark, in ledger.md's order: LEDGER_AHEAD (ledger_seq >
 * durable + ahead_slack, against a durable read made after the reply
 * arrived; durable 0 = none yet, never ahead), then a watermark tally has
 * not folded yet is held (the caller keeps it at the front of its queue),
 * LEDGER_REWIND, the window lookup (below the window: counted unchecked,
 * LEDGER_STALE), LEDGER_FORK on the checksum, then the counts
 * (LEDGER_DOUBLE_POSTING / LEDGER_MISSING_POSTING) and, with equal counts,
 * qty and notional (LEDGER_FORK, reason ledger_content). Totals are compared
 * absolutely when anchored, else as deltas between two watermarks; per-symbol
 * figures always as deltas between two watermarks both in the window. A
 * discrepancy is named once: the absolute comparison reports a change of
 * the difference, not its persistence. Findings are scoped to the symbols
 * whose deltas show the same fact (at most TL_LEDGER_SCOPES_MAX), else `*`.
 */
#ifndef TL_LEDGER_H
#define TL_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream.h"
#include "window.h"

#define TL_LEDGER_SYMBOLS_MAX 256u   /* symbols in one reply; more is too_many_symbols */
#define TL_LEDGER_BODY_MAX    65536u /* reply bytes; 256 symbols need about 30 KiB */
#define TL_LEDGER_TRACK_MAX   512u   /* symbols tally tracks for per-symbol deltas */
#define TL_LEDGER_TRACK_SLOTS 1024u  /* open addressing, load <= 1/2 */
#define TL_LEDGER_CHECKPOINTS 16u    /* CHECKPOINT totals captured, awaiting the fold */
#define TL_LEDGER_SCOPES_MAX  8u     /* per-symbol findings of one fact; more: one on `*` */

/* The three figures ledger.md keeps per scope, wrapping u64. */
typedef struct tl_ledger_figs {
    uint64_t trades;
    uint64_t qty;
    uint64_t notional;
} tl_ledger_figs;

typedef struct tl_ledger_symfigs {
    uint32_t symbol;
    uint32_t zero;
    tl_ledger_figs f;
} tl_ledger_symfigs;

/* One parsed reply, with what the control thread adds: its running number
 * and the receive times. ~8.3 KiB: it crosses to the hot loop through a
 * queue of its own (admin/ledger_poll.h). */
typedef struct tl_ledger_wm {
    uint64_t poll_id;      /* 1, 2, ...: set by the poller */
    uint64_t recv_mono_ns; /* CLOCK_MONOTONIC when the reply was complete */
    uint64_t recv_real_ns; /* CLOCK_REALTIME then */
    uint64_t ledger_seq;
    uint64_t checksum;
    uint64_t ts_ns; /* the ledger's clock when it made the reply */
    tl_ledger_figs total;
    uint32_t symbol_count;
    uint32_t zero;
    tl_ledger_symfigs symbols[TL_LEDGER_SYMBOLS_MAX];
} tl_ledger_wm;

/* Why a reply body was rejected. Stable names: tl_ledger_err_name(). */
enum tl_ledger_err {
    TL_LEDGER_OK = 0,
    TL_LEDGER_ERR_TOO_LARGE,        /* body_too_large: over TL_LEDGER_BODY_MAX */
    TL_LEDGER_ERR_JSON,             /* bad_json: not JSON, or bytes after the value */
    TL_LEDGER_ERR_NOT_OBJECT,       /* not_object */
    TL_LEDGER_ERR_MISSING,          /* missing_member */
    TL_LEDGER_ERR_DUPLICATE,        /* duplicate_member */
    TL_LEDGER_ERR_NOT_STRING,       /* not_string: a figure sent as a JSON number */
    TL_LEDGER_ERR_DECIMAL,          /* bad_decimal: empty, sign, leading zero, non-digit */
    TL_LEDGER_ERR_OVERFLOW,         /* decimal_overflow: above 2^64 - 1 */
    TL_LEDGER_ERR_CHECKSUM,         /* bad_checksum: not 16 lowercase hex digits */
    TL_LEDGER_ERR_SYMBOLS,          /* symbols_not_array */
    TL_LEDGER_ERR_TOO_MANY_SYMBOLS, /* too_many_symbols */
    TL_LEDGER_ERR_SYMBOL,           /* bad_symbol: not an object, or id not 1..2^32-1 */
    TL_LEDGER_ERR_DUPLICATE_SYMBOL, /* duplicate_symbol */
    TL_LEDGER_ERR_COUNT,
};

const char *tl_ledger_err_name(enum tl_ledger_err e);

/* Parses a reply body of len bytes (not NUL-terminated). On success fills
 * ledger_seq .. symbols of *out (poll_id and the receive times are the
 * caller's, left zero). On error *out is unspecified and *member (may be
 * NULL) names the offending member ("ledger_seq", "symbols[3].qty", ...). */
enum tl_ledger_err tl_ledger_parse(const char *body, size_t len, tl_ledger_wm *out,
                                   const char **member);

/* Adds one TRADE to a scope's figures (ledger.md: wrapping u64). */
static inline void tl_ledger_figs_add_trade(tl_ledger_figs *f, uint64_t qty, uint64_t notional) {
    f->trades += 1;
    f->qty += qty;
    f->notional += notional;
}

/* ---- the comparison, shared by the checker and the on-demand reconcile ---- */

/* What one comparison of ledger.md's steps 2-4 says. */
enum tl_ledger_verdict {
    TL_LEDGER_AGREE = 0,
    TL_LEDGER_DOUBLE,     /* step 3: more trades: LEDGER_DOUBLE_POSTING */
    TL_LEDGER_MISSING,    /* step 3: fewer trades: LEDGER_MISSING_POSTING */
    TL_LEDGER_CONTENT,    /* step 4: equal counts, other qty or notional: LEDGER_FORK */
    TL_LEDGER_CHAIN_FORK, /* step 2: another checksum at ledger_seq: LEDGER_FORK */
};

/* Steps 3 and 4 on d = the ledger's figures − tally's (wrapping). Counts
 * are compared as a signed difference, so the verdict is right across the
 * 2^64 wrap. */
enum tl_ledger_verdict tl_ledger_classify(tl_ledger_figs d);
/* The check a verdict other than AGREE names. */
enum tl_check tl_ledger_verdict_check(enum tl_ledger_verdict v);

/* tally's absolute figures at one seq of its log, for tl_ledger_judge. */
typedef struct tl_ledger_ours {
    uint64_t seq;         /* the watermark's ledger_seq, read by tally */
    uint64_t checksum;    /* of tally's record at seq */
    tl_ledger_figs total; /* anchored sums over every TRADE <= seq */
    /* Per symbol, absolute, sorted by symbol (symbols tally saw no trade of
     * may be left out: they count 0). NULL: not known (the sums were
     * anchored at a CHECKPOINT, which has totals only); totals are then
     * compared alone. */
    const tl_ledger_symfigs *symbols;
    uint32_t symbol_count;
} tl_ledger_ours;

/* One watermark against tally's absolute figures at its ledger_seq, in
 * ledger.md's order: the checksum (a fork ends the comparison), then
 * counts, then qty and notional, for the totals and for every symbol. The
 * findings go to log, scoped as the checker scopes them (the symbols whose
 * figures show the totals' fact, at most TL_LEDGER_SCOPES_MAX, else `*`;
 * then per-symbol facts the totals do not show). Pure and bounded
 * (TL_LEDGER_SYMBOLS_MAX x TL_LEDGER_TRACK_MAX). Returns the totals' verdict;
 * *symbol_facts (may be NULL) gets the number of symbols that disagree. */
enum tl_ledger_verdict tl_ledger_judge(tl_log *log, const tl_ledger_wm *wm,
                                       const tl_ledger_ours *ours, uint32_t *symbol_facts);

/* ---- the checker ---- */

typedef struct tl_ledger_cfg {
    bool enabled;             /* ledger.url is set */
    uint32_t confirmations;   /* SETTLEMENT_LAG polls above T2 in a row; default 3 */
    uint64_t max_age_ms;      /* ledger.max_age_ms, default 1000 */
    uint64_t ahead_slack;     /* ledger.ahead_slack, default 0 */
    uint64_t lag_throttle_ms; /* T2, default 2000 */
    uint64_t lag_halt_ms;     /* T3, default 10000 */
    uint64_t fifo_trades;     /* unposted trades kept: power of two >= 2; default 2^19 */
    uint32_t fold_budget;     /* window entries folded per step; default 2048 */
    uint32_t pop_budget;      /* posted trades taken off the FIFO per step; default 2048 */
} tl_ledger_cfg;

void tl_ledger_cfg_defaults(tl_ledger_cfg *c);

#define TL_LEDGER_NO_TRACK UINT32_MAX

/* An unposted durable trade (40 bytes). */
typedef struct tl_ledger_trade {
    uint64_t seq;
    uint64_t ts_ns; /* the engine's stamp */
    uint64_t qty;
    uint64_t notional;
    uint32_t symbol;
    uint32_t track; /* its symbol's slot in the track table, or TL_LEDGER_NO_TRACK */
} tl_ledger_trade;

/* Per symbol: the ledger's figures at the previous watermark and tally's
 * trades popped since. */
typedef struct tl_ledger_track {
    uint32_t symbol;
    uint8_t used;
    uint8_t in_reply; /* scratch during one check */
    uint16_t zero;
    tl_ledger_figs prev;
    tl_ledger_figs ours;
} tl_ledger_track;

typedef struct tl_ledger_ckpt {
    uint64_t seq; /* 0 = empty */
    uint64_t checksum;
    tl_ledger_figs f;
} tl_ledger_ckpt;

/* Counters and gauges for metrics (tl_loop_stats carries a copy). */
typedef struct tl_ledger_stats {
    uint64_t ledger_seq;      /* the last ledger_seq taken (tally_ledger_seq) */
    uint64_t lag_records;     /* durable − ledger_seq, clamped at 0 */
    uint64_t lag_ns;          /* age of the oldest unposted durable TRADE at the last poll */
    uint64_t last_recv_ns;    /* mono receive time of the last reply taken (0 = none) */
    uint64_t fold_seq;        /* the fold cursor */
    uint64_t unposted;        /* trades in the FIFO */
    uint64_t replies_total;   /* replies the loop took off its queue */
    uint64_t compared_total;  /* compared at ledger_seq */
    uint64_t held_total;      /* replies held at least once (not read yet / no durable read) */
    uint64_t old_total;       /* older than max_age_ms: not compared */
    uint64_t unchecked_total; /* below the window (tally_ledger_unchecked_total) */
    uint64_t ahead_total;
    uint64_t fifo_dropped_total;   /* unposted trades dropped: the FIFO was full */
    uint64_t gaps_total;           /* seqs the fold skipped: never in the window */
    uint64_t checkpoint_mismatch;  /* a CHECKPOINT's totals != the anchored sums */
    uint64_t track_overflow_total; /* per-symbol checks skipped: too many symbols */
    uint32_t lag_polls;            /* polls in a row above T2 */
    uint32_t lag_clean_polls;      /* polls in a row below T2 (auto-resume) */
    uint8_t anchored;
} tl_ledger_stats;

typedef struct tl_ledger {
    tl_ledger_cfg cfg;
    tl_log *log;    /* findings go through tl_log_emit */
    tl_window *win; /* the log's window */
    /* the fold */
    bool started;
    bool anchored;
    uint64_t base_seq;  /* the fold started after this seq */
    uint64_t fold_seq;  /* every durable record <= fold_seq is folded */
    uint64_t last_gap;  /* the last seq the fold skipped (0 = none): sums across it do
                           not compare, deltas only from replies at or above it */
    tl_ledger_figs run; /* sums over TRADEs <= fold_seq (absolute when anchored) */
    tl_ledger_ckpt ckpt[TL_LEDGER_CHECKPOINTS];
    uint32_t ckpt_next;
    /* unposted durable trades, oldest first */
    tl_ledger_trade *fifo;
    uint64_t fifo_cap;
    uint64_t fifo_head;
    uint64_t fifo_count;
    tl_ledger_figs unposted; /* Σ of the FIFO */
    bool floor_active;       /* trades were dropped that the ledger has not passed */
    uint64_t floor_seq;      /* the newest dropped */
    uint64_t floor_ts_ns;    /* the oldest dropped still unposted */
    /* the ledger's side */
    uint64_t posted_seq; /* the FIFO holds the trades in (posted_seq, fold_seq] */
    bool seen_any;
    uint64_t last_seen_seq;  /* the last ledger_seq taken (REWIND) */
    uint64_t judged_poll_id; /* AHEAD is judged once per reply */
    uint64_t held_poll_id;
    bool have_prev; /* a previous watermark to take deltas from */
    uint64_t prev_seq;
    tl_ledger_figs prev_ledger;   /* its totals */
    tl_ledger_figs prev_ours;     /* ours at prev_seq */
    tl_ledger_figs reported_diff; /* ledger − ours last named (absolute comparison) */
    tl_ledger_track *track;       /* TL_LEDGER_TRACK_SLOTS */
    uint16_t *track_list;         /* used slots, TL_LEDGER_TRACK_MAX */
    uint32_t track_count;
    bool track_overflow; /* a popped trade found no slot: per-symbol deltas are off */
    /* episodes: one fact, one finding */
    bool ahead_reported;
    bool fork_reported;
    bool stale_reported;
    uint64_t last_fresh_ns; /* mono: the last reply compared, or start */
    uint16_t stale_reason;  /* why replies do not count (enum tl_reason) */
    /* SETTLEMENT_LAG */
    bool lag_alerted;
    bool lag_escalated;
    tl_ledger_stats st;
} tl_ledger;

/* Bytes of memory tl_ledger_init needs (the FIFO and the symbol table). */
size_t tl_ledger_mem_bytes(const tl_ledger_cfg *c);

/* mem: tl_ledger_mem_bytes(cfg) bytes, 64-aligned; log: the loop's (its
 * window is the one folded). */
void tl_ledger_init(tl_ledger *g, const tl_ledger_cfg *cfg, tl_log *log, void *mem);

/* A record of the WAL was read: the first one starts the fold just before
 * it (anchored if it is seq 1). */
void tl_ledger_wal_record(tl_ledger *g, uint64_t seq);

/* A CHECKPOINT's first copy: its running totals, for anchoring. */
void tl_ledger_checkpoint(tl_ledger *g, const tl_rec_view *v);

/* Folds window entries up to durable_seq (at most fold_budget). A seq at or
 * below settled_seq that the window lacks will never come (the WAL passed
 * it): it is skipped and the sums lose their anchor. Returns entries folded. */
uint32_t tl_ledger_fold(tl_ledger *g, uint64_t durable_seq, uint64_t settled_seq);

/* One reply from the front of the queue. durable_seq: the engine's highest
 * durable seq; durable_read_ns: the mono time of the last successful read of
 * it. Returns false when the reply must stay at the front (held: tally has
 * not read ledger_seq yet, or has no durable read made after the reply), true
 * when it was taken (compared, or counted and dropped). */
bool tl_ledger_reply(tl_ledger *g, const tl_ledger_wm *wm, uint64_t now_mono_ns,
                     uint64_t now_real_ns, uint64_t durable_seq, uint64_t durable_read_ns);

/* Each step: LEDGER_STALE once no reply was compared for max_age_ms. */
void tl_ledger_tick(tl_ledger *g, uint64_t now_mono_ns);

/* The gauges and counters. */
void tl_ledger_stats_get(const tl_ledger *g, uint64_t durable_seq, tl_ledger_stats *out);

#endif
