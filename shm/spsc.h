/* spsc.h: a bounded lock-free single-producer single-consumer queue of
 * fixed-size slots, for tally's threads (findings and commands between the
 * hot loop and the control thread).
 *
 * rigtorp/SPSCQueue's design: the producer's index and the consumer's index
 * each sit on their own 128-byte region (a line and its adjacent-line
 * prefetch partner), and each side keeps a private cached copy of the other
 * side's index, reloading it only when the queue looks full (producer) or
 * empty (consumer). In steady state a push or a pop touches one shared line.
 *
 * Indexes are 64-bit counters that only grow (slot = index & mask), so full
 * and empty need no wasted slot. Storage is allocated once by tl_spsc_init.
 * One producer thread and one consumer thread; any other use is a bug.
 */
#ifndef TL_SHM_SPSC_H
#define TL_SHM_SPSC_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define TL_SPSC_MAX_SLOTS      (1u << 24)
#define TL_SPSC_MAX_SLOT_BYTES 65536u

typedef struct tl_spsc {
    /* producer's region */
    alignas(128) _Atomic uint64_t head; /* next slot to fill */
    uint64_t tail_cache;                /* producer's copy of tail */
    /* consumer's region */
    alignas(128) _Atomic uint64_t tail; /* next slot to drain */
    uint64_t head_cache;                /* consumer's copy of head */
    /* read-only after init */
    alignas(128) uint8_t *slots;
    uint64_t mask;
    uint32_t slot_count;
    uint32_t slot_bytes;
    uint32_t stride_bytes; /* slot_bytes rounded up to 8 */
} tl_spsc;

/* slot_count: a power of two in [2, 2^24]; slot_bytes in [1, 65536].
 * Returns 0, or -1 (bad sizes, or no memory). */
int tl_spsc_init(tl_spsc *q, uint32_t slot_count, uint32_t slot_bytes);
void tl_spsc_destroy(tl_spsc *q);

/* Producer: copies slot_bytes from item. False when full (never waits). */
static inline bool tl_spsc_push(tl_spsc *q, const void *item) {
    /* Relaxed: only this thread writes head. */
    uint64_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (head - q->tail_cache >= q->slot_count) {
        /* Acquire: pairs with the consumer's release of tail, so its reads
         * of the slots we are about to overwrite are finished. */
        q->tail_cache = atomic_load_explicit(&q->tail, memory_order_acquire);
        if (head - q->tail_cache >= q->slot_count)
            return false;
    }
    memcpy(q->slots + (head & q->mask) * q->stride_bytes, item, q->slot_bytes);
    /* Release: the slot's bytes are visible before the new head. */
    atomic_store_explicit(&q->head, head + 1, memory_order_release);
    return true;
}

/* Consumer: the oldest slot, or NULL when empty. Stays valid until
 * tl_spsc_release. */
static inline void *tl_spsc_front(tl_spsc *q) {
    /* Relaxed: only this thread writes tail. */
    uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (tail == q->head_cache) {
        /* Acquire: pairs with the producer's release of head, so the slot
         * bytes it wrote are visible. */
        q->head_cache = atomic_load_explicit(&q->head, memory_order_acquire);
        if (tail == q->head_cache)
            return NULL;
    }
    return q->slots + (tail & q->mask) * q->stride_bytes;
}

/* Consumer: frees the slot tl_spsc_front returned. */
static inline void tl_spsc_release(tl_spsc *q) {
    uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    /* Release: our reads of the slot happen before the producer may reuse it. */
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
}

/* Consumer: copies the oldest slot out. False when empty. */
static inline bool tl_spsc_pop(tl_spsc *q, void *out) {
    void *p = tl_spsc_front(q);
    if (p == NULL)
        return false;
    memcpy(out, p, q->slot_bytes);
    tl_spsc_release(q);
    return true;
}

/* Either side: how many slots are full (approximate while both run). */
static inline uint64_t tl_spsc_size(tl_spsc *q) {
    /* Acquire both: a snapshot for metrics; tail first so size >= 0 holds
     * when read from a third thread (head only grows). */
    uint64_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    return head - tail;
}

#endif
