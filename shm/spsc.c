/* spsc.c: start-up and tear-down of the SPSC queue (spsc.h holds the hot
 * path, inline). */
#include "spsc.h"

#include <stdlib.h>

int tl_spsc_init(tl_spsc *q, uint32_t slot_count, uint32_t slot_bytes) {
    memset(q, 0, sizeof *q);
    if (slot_count < 2 || slot_count > TL_SPSC_MAX_SLOTS || (slot_count & (slot_count - 1)) != 0)
        return -1;
    if (slot_bytes == 0 || slot_bytes > TL_SPSC_MAX_SLOT_BYTES)
        return -1;
    uint32_t stride = (slot_bytes + 7u) & ~7u;
    size_t bytes = (size_t)slot_count * stride;
    bytes = (bytes + 63u) & ~(size_t)63u;
    q->slots = aligned_alloc(64, bytes);
    if (q->slots == NULL)
        return -1;
    memset(q->slots, 0, bytes);
    q->mask = slot_count - 1u;
    q->slot_count = slot_count;
    q->slot_bytes = slot_bytes;
    q->stride_bytes = stride;
    /* Relaxed: no other thread may touch the queue before init returns
     * (the caller hands it over with its own synchronisation). */
    atomic_store_explicit(&q->head, 0, memory_order_relaxed);
    atomic_store_explicit(&q->tail, 0, memory_order_relaxed);
    return 0;
}

void tl_spsc_destroy(tl_spsc *q) {
    free(q->slots);
    q->slots = NULL;
}
