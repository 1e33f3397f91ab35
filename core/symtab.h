/* symtab.h: the engine's symbols as tally learns them, and each scope's mode
 * as last seen in a MODE_CHANGE.
 *
 * Ids come from SYMBOL records (native) or are assigned per name (xwal1).
 * Scope 0 is the global scope `*`. The table is bounded (max_symbols, fixed
 * at start-up); a symbol past the bound is counted and acted on as `*`.
 */
#ifndef TL_SYMTAB_H
#define TL_SYMTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

typedef struct tl_sym {
    uint32_t id;  /* 0 = empty slot */
    uint8_t mode; /* enum tl_mode, as last seen in a MODE_CHANGE of this scope */
    uint8_t has_name;
    uint8_t fast_mode; /* the fast-path word tally last wrote for it */
    char name[TL_SYMBOL_NAME_MAX + 1];
    uint64_t mode_seq; /* seq of that MODE_CHANGE (0 = none seen) */
} tl_sym;

typedef struct tl_symtab {
    tl_sym *slots;
    uint32_t capacity; /* power of two */
    uint32_t count;
    uint64_t overflow_total;
    /* scope 0 */
    uint8_t global_mode;
    uint8_t withdrawals_halted;
    uint64_t global_mode_seq;
} tl_symtab;

size_t tl_symtab_bytes(uint32_t capacity);
void tl_symtab_init(tl_symtab *t, void *mem, uint32_t capacity);

/* The symbol, or NULL if unknown. id 0 is never a symbol. */
tl_sym *tl_symtab_find(tl_symtab *t, uint32_t id);
/* The symbol, created if needed; NULL if the table is full (counted). */
tl_sym *tl_symtab_get(tl_symtab *t, uint32_t id);
/* Looks a name up (linear; control-path only). */
tl_sym *tl_symtab_by_name(tl_symtab *t, const char *name, size_t n);
/* Sets the name of a symbol (from a SYMBOL record). */
void tl_symtab_name(tl_symtab *t, uint32_t id, const char *name, size_t n);

/* The mode of a scope as last seen (0 = the global scope). */
uint8_t tl_symtab_mode(tl_symtab *t, uint32_t scope);
/* The effective mode of a symbol: max(global, its own). */
uint8_t tl_symtab_effective(tl_symtab *t, uint32_t scope);
/* Records a MODE_CHANGE; returns the previous mode of that scope. */
uint8_t tl_symtab_set_mode(tl_symtab *t, uint32_t scope, uint8_t mode, uint64_t seq);

#endif
