/* window.c: see window.h. */
#include "window.h"

#include <string.h>

#include "assert.h"

size_t tl_window_bytes(uint64_t capacity) {
    TL_ASSERT(capacity >= 2 && (capacity & (capacity - 1)) == 0);
    return (size_t)capacity * sizeof(tl_win_entry);
}

void tl_window_init(tl_window *w, void *mem, uint64_t capacity) {
    TL_ASSERT(capacity >= 2 && (capacity & (capacity - 1)) == 0);
    TL_ASSERT(((uintptr_t)mem & 63u) == 0);
    w->slots = mem;
    w->capacity = capacity;
    w->hi = 0;
    memset(mem, 0, tl_window_bytes(capacity));
}

tl_win_entry *tl_window_put(tl_window *w, uint64_t seq) {
    const tl_win_entry zero = {.seq = seq};
    return tl_window_store(w, &zero);
}

uint64_t tl_window_drop_above(tl_window *w, uint64_t above, uint8_t only_srcs) {
    uint64_t dropped = 0;
    uint64_t new_hi = above < w->hi ? above : w->hi;
    /* Bounded by the window: at most capacity slots are looked at. */
    for (uint64_t s = above + 1; s <= w->hi && s - above <= w->capacity; s++) {
        tl_win_entry *e = tl_window_find(w, s);
        if (e == NULL)
            continue;
        if ((e->srcs & ~only_srcs) == 0) {
            memset(e, 0, sizeof *e);
            dropped++;
        } else if (s > new_hi) {
            new_hi = s;
        }
    }
    w->hi = new_hi;
    return dropped;
}
