/* fastpath.c: tally's writes of the fast-path mode words (ring.md "Fast-path
 * mode words"). The engine's reads are static inline in ring.h.
 *
 * For an EXECUTED action tally writes the word *before* it sends the admin
 * command, so an engine that polls the words halts within nanoseconds; the
 * admin socket stays the authority. Order: the word, then fast_mode_epoch
 * += 1 with release. tally only raises, except when it sees an applied
 * MODE_CHANGE that relaxed the scope; then it lowers and bumps the epoch.
 *
 * Raises and lowers are compare-and-swap loops, so two tally threads (the
 * actuator, the control thread) can never lower a word another just raised
 * by a lost update. The loops are bounded: each failed CAS means the word
 * moved, and there are only four modes.
 */
#include "ring.h"

#define CAS_TRIES 64

static void bump_epoch(tl_ring_ctl *ctl) {
    /* Release: an engine that acquires the new epoch sees the word written
     * before it. (The words are release-stored too, so an engine that
     * polls a word directly needs no epoch.) */
    atomic_fetch_add_explicit(&ctl->fast_mode_epoch, 1, memory_order_release);
}

/* After CAS_TRIES lost races (only a runaway writer in another process could
 * cause that: tally's own writers are two threads at most) the target is
 * stored outright, so that a raise is never lost. The shared word is outside
 * bytes: no assertion on it. Release: as the CAS below. */
static bool force_word32(_Atomic uint32_t *w, uint32_t mode) {
    atomic_store_explicit(w, mode, memory_order_release);
    return true;
}

static bool force_word8(_Atomic uint8_t *w, uint8_t mode) {
    atomic_store_explicit(w, mode, memory_order_release);
    return true;
}

/* Moves a 32-bit word toward `mode`: up when raise, down otherwise. */
static bool move_word32(_Atomic uint32_t *w, uint32_t mode, bool raise) {
    /* Relaxed: the CAS below re-reads the word; its release publishes. */
    uint32_t cur = atomic_load_explicit(w, memory_order_relaxed);
    for (int i = 0; i < CAS_TRIES; i++) {
        if (raise ? cur >= mode : cur <= mode)
            return false;
        /* Release on success: pairs with the engine's acquire load of the
         * word. Relaxed on failure: we only retry with the value seen. */
        if (atomic_compare_exchange_weak_explicit(w, &cur, mode, memory_order_release,
                                                  memory_order_relaxed))
            return true;
    }
    return force_word32(w, mode);
}

static bool move_word8(_Atomic uint8_t *w, uint8_t mode, bool raise) {
    /* Same argument as move_word32. */
    uint8_t cur = atomic_load_explicit(w, memory_order_relaxed);
    for (int i = 0; i < CAS_TRIES; i++) {
        if (raise ? cur >= mode : cur <= mode)
            return false;
        if (atomic_compare_exchange_weak_explicit(w, &cur, mode, memory_order_release,
                                                  memory_order_relaxed))
            return true;
    }
    return force_word8(w, mode);
}

static enum tl_ring_err symbol_move(tl_ring_ctl *ctl, uint32_t symbol, uint32_t mode, bool raise,
                                    bool *changed) {
    if (changed != NULL)
        *changed = false;
    if (symbol == 0 || symbol >= TL_RING_SYMBOL_SLOTS)
        return TL_RING_ERR_NO_SLOT;
    if (mode > TL_MODE_HARD_HALT)
        return TL_RING_ERR_BAD_MODE;
    bool moved = move_word8(&ctl->fast_symbol_mode[symbol], (uint8_t)mode, raise);
    if (moved)
        bump_epoch(ctl);
    if (changed != NULL)
        *changed = moved;
    return TL_RING_OK;
}

static enum tl_ring_err word_move(tl_ring_ctl *ctl, _Atomic uint32_t *w, uint32_t value,
                                  uint32_t max, bool raise, bool *changed) {
    if (changed != NULL)
        *changed = false;
    if (value > max)
        return TL_RING_ERR_BAD_MODE;
    bool moved = move_word32(w, value, raise);
    if (moved)
        bump_epoch(ctl);
    if (changed != NULL)
        *changed = moved;
    return TL_RING_OK;
}

enum tl_ring_err tl_ring_fast_raise_symbol(tl_ring_ctl *ctl, uint32_t symbol, uint32_t mode,
                                           bool *changed) {
    return symbol_move(ctl, symbol, mode, true, changed);
}

enum tl_ring_err tl_ring_fast_lower_symbol(tl_ring_ctl *ctl, uint32_t symbol, uint32_t mode,
                                           bool *changed) {
    return symbol_move(ctl, symbol, mode, false, changed);
}

enum tl_ring_err tl_ring_fast_raise_global(tl_ring_ctl *ctl, uint32_t mode, bool *changed) {
    return word_move(ctl, &ctl->fast_global_mode, mode, TL_MODE_HARD_HALT, true, changed);
}

enum tl_ring_err tl_ring_fast_lower_global(tl_ring_ctl *ctl, uint32_t mode, bool *changed) {
    return word_move(ctl, &ctl->fast_global_mode, mode, TL_MODE_HARD_HALT, false, changed);
}

enum tl_ring_err tl_ring_fast_halt_withdrawals(tl_ring_ctl *ctl, bool *changed) {
    return word_move(ctl, &ctl->fast_withdrawals_halted, 1, 1, true, changed);
}

enum tl_ring_err tl_ring_fast_resume_withdrawals(tl_ring_ctl *ctl, bool *changed) {
    return word_move(ctl, &ctl->fast_withdrawals_halted, 0, 1, false, changed);
}
