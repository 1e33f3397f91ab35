/* enginesim_book.h: the reference engine's order books (tally-enginesim).
 *
 * A price-time priority book per symbol over a fixed price ladder of
 * SIM_LEVELS ticks: limit and market orders, partial fills, cancels. The
 * book does no I/O: every change it makes is reported through sim_emit so
 * the caller writes the records (ORDER_NEW, TRADE, ORDER_CANCEL) in order.
 *
 * State hash (the CHECKPOINT's state_hash): an additive multiset hash.
 * Each resting order contributes h(o) = XXH3-128(t, seed 0) || XXH3-128(t,
 * seed 1) read as a 256-bit little-endian integer, where t is the 40-byte
 * tuple (u32 symbol, u8 side, 3 zero bytes, u64 order_id, u64 account,
 * i64 price, i64 remaining qty). The state hash is the sum of h(o) over the
 * resting orders, mod 2^256, written little-endian. Adding an order adds
 * h(o); a partial fill subtracts the old tuple's h and adds the new one; a
 * fill or cancel subtracts: O(1) per event, and the value depends only on
 * the set of resting orders, never on the order they arrived in (queue
 * position is deliberately not part of it). Collisions need a 256-bit
 * subset-sum; this guards against bugs and divergence, not an adversary.
 *
 * Running sums (ledger.md): trades_total, qty_total = sum (u64)qty,
 * notional_total = sum (u64)price * (u64)qty, all wrapping u64, over every
 * TRADE.
 *
 * Limits, all allocated by sim_state_init: orders_per_symbol resting (or
 * in-flight market) orders per symbol; an id map of 2x the pool, rounded
 * to a power of two.
 */
#ifndef TL_ENGINESIM_BOOK_H
#define TL_ENGINESIM_BOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/record.h"

#define SIM_LEVELS      1024u /* price ticks per symbol ladder */
#define SIM_LEVEL_WORDS (SIM_LEVELS / 64u)
#define SIM_NONE        0u /* "no order" in the 1-based links */

typedef struct sim_order {
    uint64_t id;
    uint64_t account;
    int64_t price; /* limit price; 0 for a market order */
    int64_t qty;   /* remaining */
    uint32_t symbol;
    uint8_t side;        /* enum tl_side */
    uint8_t type;        /* enum tl_order_type */
    bool resting;        /* in a level and in the live list */
    uint32_t next, prev; /* FIFO links in its level: pool index + 1 */
    uint32_t live_idx;   /* index in its book's live list */
} sim_order;

typedef struct sim_level {
    uint32_t head, tail; /* pool index + 1 */
} sim_level;

typedef struct sim_book {
    int64_t base_price;          /* price of ladder index 0 */
    int64_t mid;                 /* the flow's reference price */
    sim_level lv[2][SIM_LEVELS]; /* [0] bids, [1] asks */
    uint64_t nonempty[2][SIM_LEVEL_WORDS];
    uint32_t *live; /* resting orders (pool indices), for random cancels */
    uint32_t live_count;
    uint32_t in_use; /* pool slots this symbol holds (resting + in-flight) */
} sim_book;

/* What the book did, in the order of the log. */
typedef struct sim_emit {
    void *ctx;
    /* Return 0, or -1 to stop (the record could not be written). */
    int (*trade)(void *ctx, uint32_t symbol, const tl_body_trade *t);
    int (*cancel)(void *ctx, uint32_t symbol, const tl_body_order_cancel *c);
} sim_emit;

typedef struct sim_state {
    uint32_t nsym;
    uint32_t orders_per_symbol;
    sim_book *books; /* [nsym], symbol id s is books[s - 1] */
    sim_order *pool; /* [nsym * orders_per_symbol] */
    uint32_t pool_cap;
    uint32_t free_head; /* pool index + 1 */
    uint64_t *map_keys; /* order id -> pool index + 1 (open addressing) */
    uint32_t *map_vals;
    uint64_t map_mask;
    uint64_t next_order_id;
    uint64_t next_trade_id;
    uint64_t open_orders; /* resting */
    uint64_t trades_total, qty_total, notional_total;
    uint64_t hash[4]; /* the multiset hash, little-endian limbs */
    /* replay */
    uint64_t replay_unknown;  /* TRADE / CANCEL naming an unknown order */
    uint64_t replay_overflow; /* an ORDER_NEW that did not fit */
    uint64_t ckpt_checked;    /* CHECKPOINTs compared during replay */
    uint64_t ckpt_mismatch;   /* ... that disagreed with the rebuilt state */
} sim_state;

int sim_state_init(sim_state *st, uint32_t nsym, uint32_t orders_per_symbol);
void sim_state_free(sim_state *st);

static inline sim_book *sim_book_of(sim_state *st, uint32_t symbol) {
    return &st->books[symbol - 1];
}
static inline bool sim_symbol_valid(const sim_state *st, uint32_t symbol) {
    return symbol >= 1 && symbol <= st->nsym;
}
/* Room for one more order in the symbol's pool share. */
bool sim_has_room(const sim_state *st, uint32_t symbol);

/* h(o) of one tuple, 4 limbs: exposed for the tests. */
void sim_order_hash(uint32_t symbol, uint8_t side, uint64_t id, uint64_t account, int64_t price,
                    int64_t qty, uint64_t out[4]);
/* The CHECKPOINT body of the current state. */
void sim_checkpoint(const sim_state *st, tl_body_checkpoint *out);

/* A new order (its ORDER_NEW already written by the caller): matches it
 * (unless match is false: the book only takes it, SOFT_HALT) and rests a
 * limit remainder; a market remainder is cancelled through emit. Returns
 * 0, -1 if emit failed (the state then matches what was written), -2 if
 * the order was refused (no room, bad price: nothing changed). */
int sim_new_order(sim_state *st, const tl_body_order_new *o, uint32_t symbol, bool match,
                  const sim_emit *emit);
/* Cancels a resting order by id; *out gets its ORDER_CANCEL body. Returns
 * false if it is not resting. The caller writes the record. */
bool sim_cancel(sim_state *st, uint64_t order_id, tl_body_order_cancel *out);
/* A resting order of the symbol chosen by r (uniform over the live list);
 * false if none. */
bool sim_pick_resting(sim_state *st, uint32_t symbol, uint64_t r, uint64_t *order_id);

/* Replay: applies one record of the log (ORDER_NEW, TRADE, ORDER_CANCEL,
 * CHECKPOINT; others ignored). */
void sim_replay(sim_state *st, const uint8_t *rec, uint32_t len);

#endif
