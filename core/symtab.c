/* symtab.c: see symtab.h. Open addressing with linear probing; no deletion. */
#include "symtab.h"

#include <string.h>

#include "assert.h"

size_t tl_symtab_bytes(uint32_t capacity) {
    TL_ASSERT(capacity >= 2 && (capacity & (capacity - 1)) == 0);
    return (size_t)capacity * sizeof(tl_sym);
}

void tl_symtab_init(tl_symtab *t, void *mem, uint32_t capacity) {
    memset(t, 0, sizeof *t);
    t->slots = mem;
    t->capacity = capacity;
    memset(mem, 0, tl_symtab_bytes(capacity));
}

static uint32_t slot_of(const tl_symtab *t, uint32_t id) {
    uint32_t h = id * 2654435761u;
    return h & (t->capacity - 1);
}

tl_sym *tl_symtab_find(tl_symtab *t, uint32_t id) {
    if (id == 0)
        return NULL;
    uint32_t i = slot_of(t, id);
    for (uint32_t probes = 0; probes < t->capacity; probes++) {
        tl_sym *s = &t->slots[i];
        if (s->id == id)
            return s;
        if (s->id == 0)
            return NULL;
        i = (i + 1) & (t->capacity - 1);
    }
    return NULL;
}

tl_sym *tl_symtab_get(tl_symtab *t, uint32_t id) {
    if (id == 0)
        return NULL;
    tl_sym *s = tl_symtab_find(t, id);
    if (s != NULL)
        return s;
    /* Keep a quarter free so probes stay short. */
    if (t->count + 1 > t->capacity - t->capacity / 4) {
        t->overflow_total++;
        return NULL;
    }
    uint32_t i = slot_of(t, id);
    for (uint32_t probes = 0; probes < t->capacity; probes++) {
        s = &t->slots[i];
        if (s->id == 0) {
            s->id = id;
            t->count++;
            return s;
        }
        i = (i + 1) & (t->capacity - 1);
    }
    TL_UNREACHABLE();
}

tl_sym *tl_symtab_by_name(tl_symtab *t, const char *name, size_t n) {
    if (n == 0 || n > TL_SYMBOL_NAME_MAX)
        return NULL;
    for (uint32_t i = 0; i < t->capacity; i++) {
        tl_sym *s = &t->slots[i];
        if (s->id != 0 && s->has_name && strlen(s->name) == n && memcmp(s->name, name, n) == 0)
            return s;
    }
    return NULL;
}

void tl_symtab_name(tl_symtab *t, uint32_t id, const char *name, size_t n) {
    TL_ASSERT(n <= TL_SYMBOL_NAME_MAX);
    tl_sym *s = tl_symtab_get(t, id);
    if (s == NULL)
        return;
    memcpy(s->name, name, n);
    s->name[n] = '\0';
    s->has_name = 1;
}

uint8_t tl_symtab_mode(tl_symtab *t, uint32_t scope) {
    if (scope == 0)
        return t->global_mode;
    tl_sym *s = tl_symtab_find(t, scope);
    return s != NULL ? s->mode : TL_MODE_NORMAL;
}

uint8_t tl_symtab_effective(tl_symtab *t, uint32_t scope) {
    uint8_t own = tl_symtab_mode(t, scope);
    return own > t->global_mode ? own : t->global_mode;
}

uint8_t tl_symtab_set_mode(tl_symtab *t, uint32_t scope, uint8_t mode, uint64_t seq) {
    TL_ASSERT(mode < TL_MODE_COUNT);
    uint8_t prev;
    if (scope == 0) {
        prev = t->global_mode;
        t->global_mode = mode;
        t->global_mode_seq = seq;
        return prev;
    }
    tl_sym *s = tl_symtab_get(t, scope);
    if (s == NULL)
        return TL_MODE_NORMAL;
    prev = s->mode;
    s->mode = mode;
    s->mode_seq = seq;
    return prev;
}
