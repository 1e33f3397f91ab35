/* modes.c: the engine's mode table and symbol registry (see modes.h).
 *
 * Two open-addressing indexes with linear probing (no deletions, so no
 * tombstones), each at least twice the symbol capacity: a probe sequence
 * always meets an empty slot, and the load factor stays <= 1/2.
 */
#include "admin/modes.h"

#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/checksum.h"

static uint32_t hash_name(const char *s, size_t n) {
    return (uint32_t)XXH3_64bits(s, n);
}

static uint32_t hash_id(uint32_t id) {
    /* Fibonacci hashing: engines often number symbols 1, 2, 3, ... */
    return (uint32_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 32);
}

enum tl_admin_err tl_admin_modes_init(tl_admin_modes *m, uint32_t max_symbols) {
    memset(m, 0, sizeof *m);
    if (max_symbols == 0 || max_symbols > TL_ADMIN_MODES_MAX_SYMBOLS)
        return TL_ADMIN_ERR_BAD_CONFIG;
    uint32_t size = 2;
    while (size < 2 * max_symbols)
        size <<= 1;
    m->symbols = calloc(max_symbols, sizeof *m->symbols);
    m->by_name = calloc(size, sizeof *m->by_name);
    m->by_id = calloc(size, sizeof *m->by_id);
    if (!m->symbols || !m->by_name || !m->by_id) {
        tl_admin_modes_free(m);
        return TL_ADMIN_ERR_IO;
    }
    m->max_symbols = max_symbols;
    m->index_mask = size - 1;
    m->global_mode = TL_MODE_NORMAL;
    return TL_ADMIN_OK;
}

void tl_admin_modes_free(tl_admin_modes *m) {
    free(m->symbols);
    free(m->by_name);
    free(m->by_id);
    memset(m, 0, sizeof *m);
}

/* The index slot holding name, or the empty slot where it would go. */
static uint32_t name_slot(const tl_admin_modes *m, const char *name, size_t n) {
    uint32_t h = hash_name(name, n) & m->index_mask;
    for (uint32_t probes = 0; probes <= m->index_mask; probes++) {
        uint32_t v = m->by_name[h];
        if (v == 0)
            return h;
        const tl_admin_symbol *s = &m->symbols[v - 1];
        if (s->name_len == n && memcmp(s->name, name, n) == 0)
            return h;
        h = (h + 1) & m->index_mask;
    }
    TL_UNREACHABLE(); /* load <= 1/2: there is always an empty slot */
}

static uint32_t id_slot(const tl_admin_modes *m, uint32_t id) {
    uint32_t h = hash_id(id) & m->index_mask;
    for (uint32_t probes = 0; probes <= m->index_mask; probes++) {
        uint32_t v = m->by_id[h];
        if (v == 0 || m->symbols[v - 1].id == id)
            return h;
        h = (h + 1) & m->index_mask;
    }
    TL_UNREACHABLE();
}

enum tl_admin_err tl_admin_modes_add_symbol(tl_admin_modes *m, uint32_t id, const char *name,
                                            size_t name_len) {
    TL_ASSERT(m->symbols != NULL);
    if (id == 0 || !tl_symbol_name_valid(name, name_len))
        return TL_ADMIN_ERR_BAD_SYMBOL;
    uint32_t ns = name_slot(m, name, name_len);
    uint32_t is = id_slot(m, id);
    uint32_t by_name = m->by_name[ns], by_id = m->by_id[is];
    if (by_name != 0 || by_id != 0) {
        if (by_name == by_id)
            return TL_ADMIN_OK; /* the same symbol again */
        return TL_ADMIN_ERR_BAD_CONFIG;
    }
    if (m->count >= m->max_symbols)
        return TL_ADMIN_ERR_BAD_CONFIG;
    tl_admin_symbol *s = &m->symbols[m->count];
    memset(s, 0, sizeof *s);
    s->id = id;
    s->mode = TL_MODE_NORMAL;
    s->name_len = (uint8_t)name_len;
    memcpy(s->name, name, name_len);
    m->count++;
    m->by_name[ns] = m->count;
    m->by_id[is] = m->count;
    return TL_ADMIN_OK;
}

bool tl_admin_modes_lookup(const tl_admin_modes *m, const char *name, size_t name_len,
                           uint32_t *id) {
    if (name_len == 0 || name_len > TL_SYMBOL_NAME_MAX)
        return false;
    uint32_t v = m->by_name[name_slot(m, name, name_len)];
    if (v == 0)
        return false;
    *id = m->symbols[v - 1].id;
    return true;
}

const tl_admin_symbol *tl_admin_modes_symbol(const tl_admin_modes *m, uint32_t id) {
    if (id == 0)
        return NULL;
    uint32_t v = m->by_id[id_slot(m, id)];
    return v == 0 ? NULL : &m->symbols[v - 1];
}

enum tl_mode tl_admin_modes_scope(const tl_admin_modes *m, uint32_t scope) {
    if (scope == 0)
        return (enum tl_mode)m->global_mode;
    const tl_admin_symbol *s = tl_admin_modes_symbol(m, scope);
    return s ? (enum tl_mode)s->mode : TL_MODE_NORMAL;
}

enum tl_mode tl_admin_modes_effective(const tl_admin_modes *m, uint32_t symbol_id) {
    enum tl_mode own = tl_admin_modes_scope(m, symbol_id);
    return own > m->global_mode ? own : (enum tl_mode)m->global_mode;
}

bool tl_admin_modes_set(tl_admin_modes *m, uint32_t scope, enum tl_mode mode) {
    if ((unsigned)mode >= TL_MODE_COUNT)
        return false; /* may come from a log record: refuse, never assert */
    if (scope == 0) {
        m->global_mode = (uint8_t)mode;
        return true;
    }
    uint32_t v = m->by_id[id_slot(m, scope)];
    if (v == 0)
        return false;
    m->symbols[v - 1].mode = (uint8_t)mode;
    return true;
}
