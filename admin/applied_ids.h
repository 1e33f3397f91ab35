/* applied_ids.h: the command ids an engine has applied (engine-admin.md
 * "Duplicate id"), with what is needed to answer a resend.
 *
 * A bounded table allocated once: when full, the oldest entry is evicted.
 * Each entry keeps the first reply's facts (scope, mode in force, withdrawals
 * flag, applied_seq, command) and the digest of the signed bytes with
 * issued_ns left out, so a resend that changed anything but issued_ns is told
 * apart from a retry. Entries rebuilt from the log at restart carry no digest
 * (the MODE_CHANGE record does not hold one) and no command.
 */
#ifndef TL_ADMIN_APPLIED_IDS_H
#define TL_ADMIN_APPLIED_IDS_H

#include <stdbool.h>
#include <stdint.h>

#include "admin/admin_err.h"
#include "admin/admin_proto.h"
#include "core/record.h"

#define TL_ADMIN_IDS_MAX (1u << 24)

typedef struct tl_admin_applied {
    uint8_t id[TL_ID_BYTES];
    uint8_t digest[TL_ADMIN_DIGEST_BYTES];
    uint64_t applied_seq;
    uint32_t scope; /* MODE_CHANGE header symbol: 0 = global */
    uint32_t next;  /* bucket chain: entry index + 1, 0 = end */
    uint8_t cmd;    /* enum tl_admin_cmd; NONE when rebuilt from the log */
    uint8_t mode;   /* enum tl_mode in force for the scope after the command */
    bool withdrawals_halted;
    bool has_digest;
} tl_admin_applied;

typedef struct tl_admin_applied_ids {
    tl_admin_applied *entries; /* ring in insertion order: [head, head + count) */
    uint32_t *buckets;         /* entry index + 1, 0 = empty */
    uint32_t cap;
    uint32_t bucket_mask;
    uint32_t head;
    uint32_t count;
    uint64_t evicted;
} tl_admin_applied_ids;

/* cap: 1 .. TL_ADMIN_IDS_MAX entries. TL_ADMIN_ERR_BAD_CONFIG or _IO (memory). */
enum tl_admin_err tl_admin_applied_ids_init(tl_admin_applied_ids *t, uint32_t cap);
void tl_admin_applied_ids_free(tl_admin_applied_ids *t);

/* The entry for id, or NULL. The pointer is valid until the next insert. */
tl_admin_applied *tl_admin_applied_ids_find(tl_admin_applied_ids *t, const uint8_t id[TL_ID_BYTES]);

/* Adds e (its id must not be present); evicts the oldest entry when full. */
void tl_admin_applied_ids_insert(tl_admin_applied_ids *t, const tl_admin_applied *e);

#endif
