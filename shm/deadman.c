/* deadman.c: the engine's dead-man check on tally's heartbeat (ring.md
 * "Dead-man heartbeat"). Only the expiry lives here; the fallback it
 * triggers (SAFE_MODE or FLATTEN, left only by an operator) is the engine's.
 *
 * States: DISARMED until the first nonzero consumer heartbeat; ARMED; a
 * clean stop (a consumer that was seen running stores state 0) disarms and
 * remembers the heartbeat of the stop; a heartbeat newer than that re-arms,
 * even before the new consumer sets a nonzero state (it beats first). A
 * crash leaves the state nonzero, so the heartbeat goes stale and expires.
 */
#include "ring.h"

#include "core/assert.h"

static const char *const verdict_names[] = {
    [TL_DEADMAN_DISARMED] = "disarmed",
    [TL_DEADMAN_OK] = "ok",
    [TL_DEADMAN_EXPIRED] = "expired",
};

const char *tl_deadman_verdict_name(enum tl_deadman_verdict v) {
    return (unsigned)v < TL_ARRAY_LEN(verdict_names) ? verdict_names[v] : "?";
}

enum tl_deadman_verdict tl_deadman_step(tl_deadman *d, uint64_t heartbeat_ns, uint32_t state,
                                        uint64_t now_ns, uint32_t max_age_ms) {
    if (!d->armed) {
        if (heartbeat_ns == 0 || heartbeat_ns <= d->stop_hb_ns)
            return TL_DEADMAN_DISARMED;
        d->armed = true;
        d->seen_running = false;
    }
    if (state != TL_CONSUMER_ABSENT) {
        d->seen_running = true;
    } else if (d->seen_running) {
        /* A clean stop. */
        d->armed = false;
        d->seen_running = false;
        d->stop_hb_ns = heartbeat_ns;
        return TL_DEADMAN_DISARMED;
    }
    /* A heartbeat ahead of our clock (outside bytes) counts as fresh. */
    uint64_t age_ns = now_ns > heartbeat_ns ? now_ns - heartbeat_ns : 0;
    return age_ns > (uint64_t)max_age_ms * 1000000ull ? TL_DEADMAN_EXPIRED : TL_DEADMAN_OK;
}

enum tl_deadman_verdict tl_deadman_check_at(tl_ring_producer *p, uint64_t now_ns,
                                            uint32_t max_age_ms) {
    /* Acquire on the state pairs with tally's release store of it: after
     * reading state 0 we see at least the last heartbeat stored before the
     * stop, which becomes the stop's heartbeat. */
    uint32_t state = atomic_load_explicit(&p->ctl->consumer_state, memory_order_acquire);
    /* Relaxed: a standalone timestamp. */
    uint64_t hb = atomic_load_explicit(&p->ctl->consumer_heartbeat_mono_ns, memory_order_relaxed);
    return tl_deadman_step(&p->deadman, hb, state, now_ns, max_age_ms);
}

bool tl_deadman_expired_at(tl_ring_producer *p, uint64_t now_ns, uint32_t max_age_ms) {
    return tl_deadman_check_at(p, now_ns, max_age_ms) == TL_DEADMAN_EXPIRED;
}

bool tl_deadman_expired(tl_ring_producer *p, uint32_t max_age_ms) {
    return tl_deadman_expired_at(p, tl_ring_now_mono_ns(), max_age_ms);
}
