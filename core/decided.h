/* decided.h: findings a previous run of tally already decided on.
 *
 * A log without a saved position (xwal1: seqs count per symbol, so no seq
 * names a place to restart from) is read again from its first retained
 * segment at every start. Catch-up then meets the same faults again: each is
 * still reported and audited (the operator sees the whole history), but the
 * actions were planned for it when it was first seen, and an operator may
 * have resumed the market since. Re-sending them would re-halt a market on a
 * routine deploy.
 *
 * The audit log is the record of what was decided (admin/audit.c reads its
 * FINDING lines at start-up, as it reads EXECUTED lines for the resend);
 * this table holds their identities for the loop. A finding is identified
 * by where the log holds it and what it is: check, segment, offset, seq and
 * checksum. Symbol ids are not part of it: they are assigned in order of
 * first appearance and shift when old segments are removed; the segment
 * index and the payload's XXH3 do not.
 *
 * Bounded: TL_DECIDED_MAX entries, the newest kept. Filled before the hot
 * loop starts, read only by it afterwards.
 */
#ifndef TL_DECIDED_H
#define TL_DECIDED_H

#include <stdbool.h>
#include <stdint.h>

#include "finding.h"

#define TL_DECIDED_MAX 1024u

typedef struct tl_decided_key {
    uint64_t seq;
    uint64_t segment;
    uint64_t offset;
    uint64_t checksum;
    uint16_t check;  /* enum tl_check */
    uint16_t reason; /* canonical for its name (tl_reason_parse): two torn
                      * tails at one place differ only by it */
} tl_decided_key;

typedef struct tl_decided {
    tl_decided_key keys[TL_DECIDED_MAX];
    uint32_t count; /* <= TL_DECIDED_MAX */
    uint32_t head;  /* the oldest entry once full */
} tl_decided;

void tl_decided_init(tl_decided *d);
/* The identity of f. */
tl_decided_key tl_decided_key_of(const tl_finding *f);
/* Adds a key (once: a repeat changes nothing); when full, the oldest is
 * forgotten. */
void tl_decided_add(tl_decided *d, const tl_decided_key *k);
/* Whether f's identity was added. Linear: at most TL_DECIDED_MAX compares,
 * and only on a finding (never per record). */
bool tl_decided_has(const tl_decided *d, const tl_finding *f);

#endif
