/* window.h: the bounded, seq-indexed history every check compares against.
 *
 * One slot per seq, at seq & (capacity - 1). A slot holds the first copy of
 * its seq that any source delivered (ring or WAL): its checksum, fence, kind,
 * symbol and, for a TRADE, its contribution to the ledger sums. Later copies
 * are compared with it (FORK) and mark which sources have seen it (a second
 * copy from the same source is a SEQ_DUPLICATE; one from the other source is
 * expected). A seq whose slot now holds a newer seq is "older than the
 * window": a lower seq there can no longer be compared (SEQ_REGRESSION).
 *
 * Memory comes from the caller, sized by tl_window_bytes() at start-up
 * (window.records, default 1,048,576 entries = 56 MiB). Nothing here
 * allocates.
 */
#ifndef TL_WINDOW_H
#define TL_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "assert.h"

#define TL_WIN_SRC_RING 0x01u
#define TL_WIN_SRC_WAL  0x02u

/* Findings already raised for this seq, so that the ring and the WAL path,
 * which both check every record, report one fact once. */
#define TL_WIN_REP_CHAIN      0x01u
#define TL_WIN_REP_FENCE      0x02u
#define TL_WIN_REP_FORK       0x04u
#define TL_WIN_REP_GAP        0x08u
#define TL_WIN_REP_REGRESSION 0x10u

typedef struct tl_win_entry {
    uint64_t seq; /* 0 = empty */
    uint64_t checksum;
    uint64_t fence;
    uint64_t ts_ns;
    uint64_t qty;      /* TRADE: (u64)qty, else 0 */
    uint64_t notional; /* TRADE: (u64)price * (u64)qty, wrapping, else 0 */
    uint32_t symbol;
    uint16_t kind;
    uint8_t srcs;     /* TL_WIN_SRC_* */
    uint8_t reported; /* TL_WIN_REP_* */
} tl_win_entry;

_Static_assert(sizeof(tl_win_entry) == 56, "keep the window dense");

typedef struct tl_window {
    tl_win_entry *slots;
    uint64_t capacity; /* power of two */
    uint64_t hi;       /* highest seq ever put; 0 = none */
} tl_window;

/* Bytes of memory a window of `capacity` entries needs. */
size_t tl_window_bytes(uint64_t capacity);

/* capacity: a power of two >= 2; mem: tl_window_bytes(capacity) bytes,
 * aligned to 64. The window starts empty. */
void tl_window_init(tl_window *w, void *mem, uint64_t capacity);

/* The lookups below run for every record of both sources: inline. */

/* The slot seq maps to, whatever seq it holds now. */
static inline tl_win_entry *tl_window_slot(const tl_window *w, uint64_t seq) {
    return &w->slots[seq & (w->capacity - 1)];
}

/* The entry for seq if the window holds it, else NULL. */
static inline tl_win_entry *tl_window_find(tl_window *w, uint64_t seq) {
    if (seq == 0)
        return NULL;
    tl_win_entry *e = tl_window_slot(w, seq);
    return e->seq == seq ? e : NULL;
}

/* True when seq can no longer be held: a newer seq took its slot, or it is
 * capacity or more below the highest seq. */
static inline bool tl_window_evicted(const tl_window *w, uint64_t seq) {
    const tl_win_entry *e = tl_window_slot(w, seq);
    if (e->seq > seq)
        return true;
    return w->hi >= w->capacity && seq <= w->hi - w->capacity;
}

/* Claims the slot of entry->seq (evicting the older seq there) and writes
 * the whole entry in one go: a caller that has every field builds it in
 * registers, with no zeroing pass before. Returns the slot, or NULL, and
 * changes nothing, if entry->seq is evicted. */
static inline tl_win_entry *tl_window_store(tl_window *w, const tl_win_entry *entry) {
    if (tl_window_evicted(w, entry->seq))
        return NULL;
    TL_ASSERT(entry->seq != 0); /* seq 0 is never valid; the slot's 0 means empty */
    tl_win_entry *e = tl_window_slot(w, entry->seq);
    *e = *entry;
    if (entry->seq > w->hi)
        w->hi = entry->seq;
    return e;
}

/* Claims the slot of seq (evicting the older seq there) and returns it,
 * zeroed but for `seq`. Returns NULL, and changes nothing, if seq is evicted. */
tl_win_entry *tl_window_put(tl_window *w, uint64_t seq);

/* Drops every entry in (above, above + capacity] that only `srcs` saw (ring
 * records of an ended incarnation, which never became durable). Returns how
 * many it dropped. Lowers `hi` to the highest seq still held at or below
 * `above`... or `above` itself. */
uint64_t tl_window_drop_above(tl_window *w, uint64_t above, uint8_t only_srcs);

#endif
