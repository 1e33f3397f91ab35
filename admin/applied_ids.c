/* applied_ids.c: bounded FIFO table of applied command ids (see
 * applied_ids.h).
 *
 * Invariants:
 * - entries[(head + i) % cap] for i < count are live, oldest first;
 * - every live entry is on exactly one bucket chain (the one its id hashes
 *   to), and no chain holds a dead entry;
 * - buckets >= 2 * cap, so chains are short; a walk is still bounded by
 *   count, and asserted so.
 */
#include "admin/applied_ids.h"

#include <stdlib.h>
#include <string.h>

#include "core/assert.h"

static uint32_t bucket_of(const tl_admin_applied_ids *t, const uint8_t id[TL_ID_BYTES]) {
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    /* Ids are random in practice, but tests and operators may pick simple
     * ones: mix both halves. */
    uint64_t h = (a ^ (b * 0xC2B2AE3D27D4EB4Full)) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) & t->bucket_mask;
}

enum tl_admin_err tl_admin_applied_ids_init(tl_admin_applied_ids *t, uint32_t cap) {
    memset(t, 0, sizeof *t);
    if (cap == 0 || cap > TL_ADMIN_IDS_MAX)
        return TL_ADMIN_ERR_BAD_CONFIG;
    uint32_t nb = 2;
    while (nb < 2 * cap)
        nb <<= 1;
    t->entries = calloc(cap, sizeof *t->entries);
    t->buckets = calloc(nb, sizeof *t->buckets);
    if (!t->entries || !t->buckets) {
        tl_admin_applied_ids_free(t);
        return TL_ADMIN_ERR_IO;
    }
    t->cap = cap;
    t->bucket_mask = nb - 1;
    return TL_ADMIN_OK;
}

void tl_admin_applied_ids_free(tl_admin_applied_ids *t) {
    free(t->entries);
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

tl_admin_applied *tl_admin_applied_ids_find(tl_admin_applied_ids *t,
                                            const uint8_t id[TL_ID_BYTES]) {
    uint32_t v = t->buckets[bucket_of(t, id)];
    for (uint32_t steps = 0; v != 0; steps++) {
        TL_ASSERT(steps < t->count);
        tl_admin_applied *e = &t->entries[v - 1];
        if (memcmp(e->id, id, TL_ID_BYTES) == 0)
            return e;
        v = e->next;
    }
    return NULL;
}

static void unlink_entry(tl_admin_applied_ids *t, uint32_t ix) {
    uint32_t *link = &t->buckets[bucket_of(t, t->entries[ix].id)];
    for (uint32_t steps = 0; *link != 0; steps++) {
        TL_ASSERT(steps < t->count);
        if (*link == ix + 1) {
            *link = t->entries[ix].next;
            return;
        }
        link = &t->entries[*link - 1].next;
    }
    TL_UNREACHABLE(); /* a live entry is always on its chain */
}

void tl_admin_applied_ids_insert(tl_admin_applied_ids *t, const tl_admin_applied *e) {
    TL_ASSERT(t->entries != NULL);
    TL_ASSERT(tl_admin_applied_ids_find(t, e->id) == NULL);
    uint32_t ix;
    if (t->count == t->cap) {
        ix = t->head;
        unlink_entry(t, ix);
        t->head = (t->head + 1) % t->cap;
        t->count--;
        t->evicted++;
    } else {
        ix = (uint32_t)(((uint64_t)t->head + t->count) % t->cap);
    }
    tl_admin_applied *slot = &t->entries[ix];
    *slot = *e;
    uint32_t b = bucket_of(t, e->id);
    slot->next = t->buckets[b];
    t->buckets[b] = ix + 1;
    t->count++;
}
