/* decided.c: findings a previous run already decided on (see decided.h). */
#include "decided.h"

#include <string.h>

#include "assert.h"

static bool find(const tl_decided *d, const tl_decided_key *k);

void tl_decided_init(tl_decided *d) {
    memset(d, 0, sizeof *d);
}

tl_decided_key tl_decided_key_of(const tl_finding *f) {
    tl_decided_key k;
    memset(&k, 0, sizeof k); /* padding too: keys compare member by member */
    k.seq = f->seq;
    k.segment = f->segment;
    k.offset = f->offset;
    k.checksum = f->checksum;
    k.check = f->check;
    k.reason = f->reason == 0 ? 0 : tl_reason_parse(tl_reason_name(f->reason));
    return k;
}

void tl_decided_add(tl_decided *d, const tl_decided_key *k) {
    TL_ASSERT(d->count <= TL_DECIDED_MAX && d->head < TL_DECIDED_MAX);
    /* Each restart audits the same old findings again: one entry each, or
     * the repeats would push out older decisions. */
    if (find(d, k))
        return;
    if (d->count < TL_DECIDED_MAX) {
        d->keys[d->count++] = *k;
        return;
    }
    /* Full: the oldest goes. The newest decisions are the ones a catch-up
     * over the retained log is most likely to meet again. */
    d->keys[d->head] = *k;
    d->head = (d->head + 1) % TL_DECIDED_MAX;
}

static bool find(const tl_decided *d, const tl_decided_key *k) {
    TL_ASSERT(d->count <= TL_DECIDED_MAX);
    for (uint32_t i = 0; i < d->count; i++) {
        const tl_decided_key *e = &d->keys[i];
        if (e->check == k->check && e->reason == k->reason && e->seq == k->seq &&
            e->segment == k->segment && e->offset == k->offset && e->checksum == k->checksum)
            return true;
    }
    return false;
}

bool tl_decided_has(const tl_decided *d, const tl_finding *f) {
    tl_decided_key k = tl_decided_key_of(f);
    return find(d, &k);
}
