/* durable.c: the wal_durable_* seqlock (ring.md "Reading wal_durable_* is a
 * seqlock read"), both sides.
 *
 * The engine's WAL thread is the one writer; tally's threads read. The
 * reader never spins: an odd or torn read keeps the last good snapshot and
 * is tried again on the caller's next pass. A gen that stays odd for longer
 * than engine.stale_ms means the writer died or stalled mid-update.
 */
#include "ring.h"

#include "core/assert.h"

static const char *const status_names[] = {
    [TL_DURABLE_ACCEPTED] = "accepted",
    [TL_DURABLE_KEPT] = "kept",
    [TL_DURABLE_STUCK] = "stuck",
};

const char *tl_durable_status_name(enum tl_durable_status s) {
    return (unsigned)s < TL_ARRAY_LEN(status_names) ? status_names[s] : "?";
}

void tl_ring_durable_write(tl_ring_ctl *ctl, uint64_t *gen, const tl_ring_durable *d) {
    /* The gen lives in the writer's private memory too, so the writer never
     * trusts shared bytes another process could scribble on. */
    TL_ASSERT((*gen & 1u) == 0);
    uint64_t g = *gen;
    /* 1. Odd, relaxed: the fence below orders it before the data stores. */
    atomic_store_explicit(&ctl->wal_durable_gen, g + 1, memory_order_relaxed);
    /* 2. Release fence: a reader whose relaxed loads see any of the stores
     * below, and which then fences with acquire, sees the odd gen (or
     * later) in its second gen load, so it rejects a mixed snapshot. */
    atomic_thread_fence(memory_order_release);
    /* 3. The three stores, relaxed (their order among each other does not
     * matter: the gen brackets them). */
    atomic_store_explicit(&ctl->wal_durable_seq, d->seq, memory_order_relaxed);
    atomic_store_explicit(&ctl->wal_durable_segment_first_seq, d->segment_first_seq,
                          memory_order_relaxed);
    atomic_store_explicit(&ctl->wal_durable_offset, d->offset, memory_order_relaxed);
    /* 4. Even, release: a reader that acquires this gen sees the three
     * stores above. */
    atomic_store_explicit(&ctl->wal_durable_gen, g + 2, memory_order_release);
    *gen = g + 2;
}

enum tl_durable_status tl_ring_durable_judge(tl_ring_durable_reader *r, uint64_t g1,
                                             const tl_ring_durable *d, uint64_t g2, uint64_t now_ns,
                                             uint32_t stale_ms, tl_ring_durable *out) {
    enum tl_durable_status st;
    if (tl_durable_gen_accept(g1, g2)) {
        r->snap = *d;
        r->snap_gen = g1;
        r->have_snap = true;
        r->odd_seen = false;
        st = TL_DURABLE_ACCEPTED;
    } else {
        r->rejected++;
        st = TL_DURABLE_KEPT;
        if ((g2 & 1u) != 0) {
            if (!r->odd_seen || r->odd_gen != g2) {
                r->odd_seen = true;
                r->odd_gen = g2;
                r->odd_since_ns = now_ns;
            } else if (now_ns - r->odd_since_ns > (uint64_t)stale_ms * 1000000ull) {
                st = TL_DURABLE_STUCK;
            }
        }
    }
    if (out != NULL)
        *out = r->snap;
    return st;
}

enum tl_durable_status tl_ring_durable_read(tl_ring_durable_reader *r, const tl_ring_ctl *ctl,
                                            uint64_t now_ns, uint32_t stale_ms,
                                            tl_ring_durable *out) {
    /* 1. Acquire: if g1 is an even gen stored with release by the writer,
     * the three values of that update are visible below. */
    uint64_t g1 = atomic_load_explicit(&ctl->wal_durable_gen, memory_order_acquire);
    /* 2. Relaxed loads, bracketed by the two gen loads. */
    tl_ring_durable d;
    d.seq = atomic_load_explicit(&ctl->wal_durable_seq, memory_order_relaxed);
    d.segment_first_seq =
        atomic_load_explicit(&ctl->wal_durable_segment_first_seq, memory_order_relaxed);
    d.offset = atomic_load_explicit(&ctl->wal_durable_offset, memory_order_relaxed);
    /* 3. Acquire fence: keeps the three loads above from moving below the
     * second gen load, and pairs with the writer's release fence. */
    atomic_thread_fence(memory_order_acquire);
    /* 4. Relaxed: ordered by the fence above. */
    uint64_t g2 = atomic_load_explicit(&ctl->wal_durable_gen, memory_order_relaxed);

    return tl_ring_durable_judge(r, g1, &d, g2, now_ns, stale_ms, out);
}
