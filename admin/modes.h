/* modes.h: the engine's mode table (engine-admin.md "Semantics").
 *
 * A global mode, one mode per listed symbol, the withdrawals flag, and the
 * symbol registry (name <-> id) that the admin server resolves names with.
 * A symbol's effective mode is max(global, own). The engine's matching code
 * asks tl_admin_modes_effective() per order, so lookups by id are O(1) and
 * allocation-free; everything is allocated by tl_admin_modes_init.
 *
 * Single-threaded: the engine thread that calls tl_admin_server_poll() owns
 * the table. Symbols are never removed (ids stay meaningful in the log).
 * Scope 0 is the global scope ("*"); symbol ids are never 0.
 */
#ifndef TL_ADMIN_MODES_H
#define TL_ADMIN_MODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/admin_err.h"
#include "core/record.h"

#define TL_ADMIN_MODES_MAX_SYMBOLS (1u << 20)

typedef struct tl_admin_symbol {
    uint32_t id;
    uint8_t mode; /* enum tl_mode: the symbol's own mode */
    uint8_t name_len;
    char name[TL_SYMBOL_NAME_MAX + 1];
} tl_admin_symbol;

typedef struct tl_admin_modes {
    uint8_t global_mode; /* enum tl_mode */
    bool withdrawals_halted;
    uint32_t count;
    uint32_t max_symbols;
    uint32_t index_mask;      /* index sizes - 1 (power of two >= 2 * max_symbols) */
    tl_admin_symbol *symbols; /* [max_symbols], in order of registration */
    uint32_t *by_name;        /* open addressing: slot + 1, 0 = empty */
    uint32_t *by_id;          /* open addressing: slot + 1, 0 = empty */
} tl_admin_modes;

/* Allocates room for max_symbols (1 .. TL_ADMIN_MODES_MAX_SYMBOLS). All modes
 * start NORMAL, withdrawals open. Returns TL_ADMIN_ERR_BAD_CONFIG or
 * TL_ADMIN_ERR_IO (out of memory). */
enum tl_admin_err tl_admin_modes_init(tl_admin_modes *m, uint32_t max_symbols);
void tl_admin_modes_free(tl_admin_modes *m);

/* Registers a symbol (a SYMBOL record's id and name). Errors: BAD_SYMBOL for
 * id 0 or an invalid name, BAD_CONFIG when the id or the name is already
 * taken by another symbol or the table is full. Registering the same
 * (id, name) again is a no-op. */
enum tl_admin_err tl_admin_modes_add_symbol(tl_admin_modes *m, uint32_t id, const char *name,
                                            size_t name_len);

/* Name -> id; false if unknown. */
bool tl_admin_modes_lookup(const tl_admin_modes *m, const char *name, size_t name_len,
                           uint32_t *id);
/* Id -> the registered symbol, NULL if unknown. */
const tl_admin_symbol *tl_admin_modes_symbol(const tl_admin_modes *m, uint32_t id);

/* The mode of a scope (0 = global); NORMAL for an unknown id. */
enum tl_mode tl_admin_modes_scope(const tl_admin_modes *m, uint32_t scope);
/* max(global, the symbol's own mode). */
enum tl_mode tl_admin_modes_effective(const tl_admin_modes *m, uint32_t symbol_id);

/* Sets a scope's mode (0 = global); false for an unknown symbol id or a mode
 * outside enum tl_mode. Used by
 * the admin server, and by the engine when it rebuilds the table from the
 * MODE_CHANGE records of its log at restart. */
bool tl_admin_modes_set(tl_admin_modes *m, uint32_t scope, enum tl_mode mode);

#endif
