/* ring_consumer.c: tally's side of the ring protocol (ring.md "Consumer",
 * "Lapped", "First attach").
 *
 * tl_ring_poll makes one step and returns one event. It never blocks and its
 * work is bounded: at most TL_RING_COPY_TRIES copies of one item. The
 * consumer polls the seq word (the commit stamp) at its own position c and
 * reads the shared `publish` hint only when the stamp is not the expected
 * seq E, so the producer's hot line is not pulled over on every record.
 *
 * Invariants:
 *   - in FOLLOW, c is a record boundary of the current lap (unless lapped),
 *     a multiple of 8;
 *   - within one incarnation E never decreases;
 *   - every decision after the copy uses the seq in the verified copy, never
 *     the polled stamp;
 *   - nothing read from the ring is asserted on: bad bytes are RING_CORRUPT
 *     with a named reason.
 */
#include "ring.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/assert.h"

/* ring.md: M = capacity / 8 + 2 * 65600. One 65600 covers how far `publish`
 * may lag the newest commit beyond capacity/8; the other covers the item the
 * producer may be writing past its newest commit. */
#define LAP_SLACK_BYTES (2ull * TL_PAD_LIMIT_BYTES)

static const char *const ev_names[TL_RING_EV_COUNT] = {
    [TL_RING_EV_NONE] = "none",         [TL_RING_EV_RECORD] = "record",
    [TL_RING_EV_PAD] = "pad",           [TL_RING_EV_LAPPED] = "lapped",
    [TL_RING_EV_ATTACHED] = "attached", [TL_RING_EV_CORRUPT] = "corrupt",
};

const char *tl_ring_ev_name(enum tl_ring_ev ev) {
    return (unsigned)ev < TL_RING_EV_COUNT ? ev_names[ev] : "?";
}

static const char *const corrupt_names[TL_RING_CORRUPT_COUNT] = {
    [TL_RING_CORRUPT_NONE] = "none",
    [TL_RING_CORRUPT_BAD_LEN] = "bad_len",
    [TL_RING_CORRUPT_CHECKSUM] = "checksum",
    [TL_RING_CORRUPT_BAD_PAD_LEN] = "bad_pad_len",
    [TL_RING_CORRUPT_BAD_PAD] = "bad_pad",
    [TL_RING_CORRUPT_REPLAY_AHEAD] = "replay_ahead",
    [TL_RING_CORRUPT_BAD_FIELDS] = "bad_fields",
    [TL_RING_CORRUPT_BAD_POSITION] = "bad_position",
};

const char *tl_ring_corrupt_name(enum tl_ring_corrupt c) {
    return (unsigned)c < TL_RING_CORRUPT_COUNT ? corrupt_names[c] : "?";
}

enum tl_ring_err tl_ring_consumer_init(tl_ring_consumer *c, tl_ring_map *m) {
    TL_ASSERT(m->phase == TL_MAP_READY && m->ctl != NULL);
    TL_ASSERT(tl_ring_capacity_valid(m->capacity));
    memset(c, 0, sizeof *c);
    c->copy = aligned_alloc(64, TL_RING_COPY_BYTES);
    if (c->copy == NULL)
        return TL_RING_ERR_SYS;
    c->ctl = m->ctl;
    c->data = m->data;
    c->capacity = m->capacity;
    c->mask = m->capacity - 1;
    uint64_t margin = m->capacity / 8 + LAP_SLACK_BYTES;
    TL_ASSERT(margin < m->capacity);
    c->lap_limit = m->capacity - margin;
    c->phase = TL_CONS_ATTACH_START;
    /* Relaxed: an informational field, no data hangs on it. */
    atomic_store_explicit(&m->ctl->consumer_pid, (uint32_t)getpid(), memory_order_relaxed);
    return TL_RING_OK;
}

void tl_ring_consumer_free(tl_ring_consumer *c) {
    free(c->copy);
    c->copy = NULL;
}

static inline void store_position(tl_ring_consumer *c) {
    /* Relaxed (ring.md step 5): a progress report for the engine's
     * operators; nothing is published through it. */
    atomic_store_explicit(&c->ctl->consumer_position, c->position, memory_order_relaxed);
}

/* How far ahead of c the consumer prefetches, and how many lines per poll.
 * Far enough to cover a cross-core line transfer (100-400 ns on this kind of
 * machine) at tens of millions of records per second. */
#define PF_AHEAD_BYTES    4096u
#define PF_LINES_PER_POLL 4u
#define PF_HINT_EVERY     64u

static inline void prefetch_reset(tl_ring_consumer *c, uint64_t pos) {
    c->pf_next = pos & ~(uint64_t)63;
    c->pf_limit = 0;
    c->pf_hint_countdown = 0;
}

/* Prefetches committed lines ahead of pos (see tl_ring_consumer). The
 * consumer polls one record at a time, so without this only a record or two
 * of cache misses would be in flight; with it, a stream of them is. Lines at
 * or past the last `publish` seen are never touched early: they may be the
 * producer's, and stealing them would slow the engine down. */
static inline void prefetch_ahead(tl_ring_consumer *c, uint64_t pos) {
    uint64_t want = pos + PF_AHEAD_BYTES;
    if (want > c->pf_limit) {
        if (c->pf_hint_countdown == 0) {
            c->pf_hint_countdown = PF_HINT_EVERY;
            /* Relaxed: a hint for prefetching only, read at most once per 64
             * polls so the producer's line is not pulled on every record;
             * no decision of the protocol depends on it. */
            c->pf_limit = atomic_load_explicit(&c->ctl->publish, memory_order_relaxed);
        }
        c->pf_hint_countdown--;
        if (want > c->pf_limit)
            want = c->pf_limit;
    }
    uint64_t next = c->pf_next;
    if (next < pos)
        next = pos & ~(uint64_t)63;
    const uint8_t *base = (const uint8_t *)(const void *)c->data;
    for (unsigned i = 0; i < PF_LINES_PER_POLL && next < want; i++, next += 64)
        __builtin_prefetch(base + (next & c->mask), 0, 3);
    c->pf_next = next;
}

void tl_ring_consumer_start_at(tl_ring_consumer *c, uint64_t position, uint64_t expected) {
    TL_ASSERT((position & 7u) == 0);
    c->position = position;
    c->expected = expected;
    c->phase = TL_CONS_FOLLOW;
    c->attach_floor = 0;
    prefetch_reset(c, position);
    store_position(c);
}

void tl_ring_consumer_reattach(tl_ring_consumer *c) {
    c->phase = TL_CONS_ATTACH_START;
    c->attach_floor = 0;
}

/* A fresh load of `publish`: the acquire fence first, so that everything
 * this thread loaded before (the stamp, the copied words) is ordered before
 * the load. If any of those loads saw a word of a newer lap, the producer's
 * release fence before that word makes the `publish` value it stored before
 * that lap visible here, and the lap shows. */
static inline uint64_t publish_fresh(const tl_ring_consumer *c) {
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&c->ctl->publish, memory_order_acquire);
}

static inline bool is_lapped(const tl_ring_consumer *c, uint64_t pub, uint64_t pos) {
    return pub > pos && pub - pos > c->lap_limit;
}

static inline uint64_t stamp_at(const tl_ring_consumer *c, uint64_t pos) {
    /* Acquire: pairs with the producer's release store of the stamp (its
     * commit), so a stamp equal to E comes with the whole record. */
    return atomic_load_explicit(&c->data[((pos & c->mask) >> 3) + 2], memory_order_acquire);
}

enum copy_result {
    COPY_OK = 0,      /* verified (checksum good); rec_err may still name a field rule */
    COPY_UNCOMMITTED, /* publish <= c: nothing committed here yet */
    COPY_LAPPED,
    COPY_CORRUPT, /* 3 failed copies of a committed record */
    COPY_RETRY,   /* (internal) copy again */
};

/* Step 2: copies the item at pos into c->copy with relaxed 8-byte loads.
 * Returns false if the len word is impossible (treated as a checksum
 * failure by the caller). These checks are wal.md's rule 1 for the ring: a
 * multiple of 8, 64 <= len < 65600, inside the data region; the tighter
 * "len <= 65536 unless PAD" follows from the field rules (body_len). */
static inline bool copy_item(tl_ring_consumer *c, uint64_t pos, uint32_t *len_out) {
    c->stats.copies++;
    uint64_t off = pos & c->mask;
    const _Atomic uint64_t *src = c->data + (off >> 3);
    /* Relaxed: ordered after the stamp's acquire; a torn or stale value is
     * caught by the checks and the checksum. Word 5 = len | kind | flags. */
    uint64_t w5 = atomic_load_explicit(&src[5], memory_order_relaxed);
    uint32_t len = (uint32_t)w5;
    if (__builtin_expect((len & 7u) != 0 || len < TL_REC_HDR_BYTES || len >= TL_PAD_LIMIT_BYTES ||
                             len > c->capacity - off,
                         0))
        return false;
    uint64_t *dst = (uint64_t *)(void *)c->copy;
    uint32_t words = len >> 3;
    /* Relaxed loads: 8-aligned, 8-sized words, so no load tears and there is
     * no data race in the C11 sense; the checksum judges the whole. The
     * 64-byte header is always there (len >= 64): a fixed count laid out
     * straight, then the body two words per turn (a short body is the
     * common case, so no deeper unrolling), then an odd last word. */
#pragma GCC unroll 8
    for (uint32_t i = 0; i < TL_REC_HDR_BYTES / 8; i++)
        dst[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
    uint32_t i = TL_REC_HDR_BYTES / 8;
    for (; i + 2 <= words; i += 2) {
        dst[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
        dst[i + 1] = atomic_load_explicit(&src[i + 1], memory_order_relaxed);
    }
    if (i < words)
        dst[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
    /* The copy must describe the bytes copied: a len that changed under us
     * is a torn copy. */
    if (__builtin_expect((uint32_t)dst[5] != len, 0))
        return false;
    *len_out = len;
    return true;
}

/* Step 3 on the private copy: clear REPLAY, check the checksum (inline
 * XXH3: most records are short), then wal.md's field rules (rules 2-3,
 * shared with the WAL reader in core/record.h; copy_item checked rule 1 and
 * that the copy's len is the one copied). TL_REC_ERR_CHECKSUM means a failed
 * copy; any other error is a record whose framing is sound. */
static inline enum tl_rec_err verify_copy(uint8_t *rec, uint32_t len, bool *replay) {
    TL_ASSERT(tl_rec_hdr_of(rec)->len == len);
    return tl_rec_verify_framed(rec, TL_WHERE_RING, replay);
}

/* After a failed copy of the item at pos (attempt 1..3): step 3's fresh
 * publish load decides. Out of line: it is the rare path. */
static __attribute__((noinline)) enum copy_result copy_failed(tl_ring_consumer *c, uint64_t pos,
                                                              uint32_t attempt) {
    uint64_t pub = publish_fresh(c);
    if (pub <= pos)
        return COPY_UNCOMMITTED; /* the stamp matched older bytes by chance */
    if (is_lapped(c, pub, pos))
        return COPY_LAPPED;
    /* Committed in this lap and not lapped: a real failed copy. Its len is
     * never trusted to skip anything. */
    c->stats.copy_failures++;
    if (c->on_copy_fail != NULL)
        c->on_copy_fail(c->on_copy_fail_arg, pos, attempt);
    return attempt < TL_RING_COPY_TRIES ? COPY_RETRY : COPY_CORRUPT;
}

/* Steps 2 and 3: copy and verify, with the 3-copy retry. When first_failed
 * is set, attempt 1 was already made (by the fast path in tl_ring_poll) and
 * failed with *why and *rec_err: it is judged here first, so that exactly
 * 3 failed copies make RING_CORRUPT. */
static __attribute__((noinline)) enum copy_result
copy_verified(tl_ring_consumer *c, uint64_t pos, bool first_failed, uint32_t *len_out, bool *replay,
              enum tl_rec_err *rec_err, enum tl_ring_corrupt *why) {
    uint32_t attempt = 1;
    if (first_failed) {
        enum copy_result r = copy_failed(c, pos, 1);
        if (r != COPY_RETRY)
            return r;
        attempt = 2;
    }
    for (; attempt <= TL_RING_COPY_TRIES; attempt++) {
        uint32_t len = 0;
        if (copy_item(c, pos, &len)) {
            enum tl_rec_err e = verify_copy(c->copy, len, replay);
            if (e != TL_REC_ERR_CHECKSUM) {
                *len_out = len;
                *rec_err = e;
                return COPY_OK;
            }
            *why = TL_RING_CORRUPT_CHECKSUM;
            *rec_err = e;
        } else {
            *why = TL_RING_CORRUPT_BAD_LEN;
            *rec_err = TL_REC_ERR_LEN;
        }
        enum copy_result r = copy_failed(c, pos, attempt);
        if (r != COPY_RETRY)
            return r;
    }
    return COPY_CORRUPT;
}

static inline void ev_clear(tl_ring_event *ev, uint64_t pos) {
    ev->type = TL_RING_EV_NONE;
    ev->position = pos;
    ev->seq = 0;
    ev->expected = 0;
    ev->rec = NULL;
    ev->len = 0;
    ev->replay = false;
    ev->reason = TL_RING_CORRUPT_NONE;
    ev->rec_err = TL_REC_OK;
    ev->reattach = false;
}

static enum tl_ring_ev ev_lapped(tl_ring_consumer *c, uint64_t pos, tl_ring_event *ev) {
    c->stats.laps++;
    c->phase = TL_CONS_ATTACH_START;
    c->attach_floor = 0;
    ev->type = TL_RING_EV_LAPPED;
    ev->position = pos;
    return ev->type;
}

static enum tl_ring_ev ev_corrupt(tl_ring_consumer *c, uint64_t pos, enum tl_ring_corrupt why,
                                  enum tl_rec_err rec_err, bool reattach, tl_ring_event *ev) {
    c->stats.corrupt++;
    ev->type = TL_RING_EV_CORRUPT;
    ev->position = pos;
    ev->reason = why;
    ev->rec_err = rec_err;
    ev->reattach = reattach;
    if (reattach) {
        c->phase = TL_CONS_ATTACH_START;
        c->attach_floor = 0;
    }
    return ev->type;
}

/* A record boundary always has room >= 64 before the end of the region (or
 * a whole lap): the PAD rule keeps it so. A position with less came from a
 * scribbled `publish` (or a bad saved position); reading a stamp there
 * would run off the region. Re-attach at the next lap start instead. */
static bool position_impossible(tl_ring_consumer *c, uint64_t pos, tl_ring_event *ev) {
    uint64_t room = c->capacity - (pos & c->mask);
    if (room >= TL_REC_HDR_BYTES)
        return false;
    ev_corrupt(c, pos, TL_RING_CORRUPT_BAD_POSITION, TL_REC_OK, true, ev);
    c->attach_floor = pos + room;
    return true;
}

/* ring.md "Lapped", then-the-ring part, and "First attach". */
static enum tl_ring_ev attach(tl_ring_consumer *c, uint64_t last_delivered, tl_ring_event *ev) {
    if (c->phase == TL_CONS_ATTACH_START) {
        uint64_t pub = publish_fresh(c);
        c->position = pub > c->attach_floor ? pub : c->attach_floor;
        c->position &= ~(uint64_t)7; /* a floor is a lap start; publish is 8-aligned */
        c->phase = TL_CONS_ATTACH_WAIT;
        store_position(c);
    }
    uint64_t pos = c->position;
    if (position_impossible(c, pos, ev))
        return ev->type;
    uint64_t pub = publish_fresh(c);
    if (pub <= pos)
        return TL_RING_EV_NONE; /* wait until publish moves past c */
    if (is_lapped(c, pub, pos)) {
        c->stats.attach_restarts++;
        c->phase = TL_CONS_ATTACH_START;
        return TL_RING_EV_NONE;
    }
    /* publish moved past c: the record at c was committed in this lap. */
    uint32_t len = 0;
    bool replay = false;
    enum tl_rec_err rec_err = TL_REC_OK;
    enum tl_ring_corrupt why = TL_RING_CORRUPT_NONE;
    switch (copy_verified(c, pos, false, &len, &replay, &rec_err, &why)) {
        case COPY_OK:
            break;
        case COPY_UNCOMMITTED: /* publish went back: only a scribbled word does that */
            return TL_RING_EV_NONE;
        case COPY_LAPPED:
            c->stats.attach_restarts++;
            c->phase = TL_CONS_ATTACH_START;
            return TL_RING_EV_NONE;
        case COPY_CORRUPT:
        case COPY_RETRY: /* never returned by copy_verified */
            /* Re-attach: publish is already past pos, so the next attach
             * starts beyond this record. */
            return ev_corrupt(c, pos, why, rec_err, true, ev);
    }
    uint64_t seq = tl_rec_hdr_of(c->copy)->seq; /* a PAD's seq is its stamp */
    pub = publish_fresh(c);
    if (is_lapped(c, pub, pos)) {
        c->stats.attach_restarts++;
        c->phase = TL_CONS_ATTACH_START;
        return TL_RING_EV_NONE;
    }
    uint64_t next = last_delivered + 1;
    c->expected = seq > next ? seq : next;
    c->phase = TL_CONS_FOLLOW;
    prefetch_reset(c, pos);
    c->pf_limit = pub;
    c->stats.attaches++;
    /* The record at c is not consumed here: the next poll judges it against
     * the new E like any other. */
    ev->type = TL_RING_EV_ATTACHED;
    ev->position = pos;
    ev->seq = seq;
    ev->expected = c->expected;
    return ev->type;
}

static enum tl_ring_ev follow_copied(tl_ring_consumer *c, uint64_t pos, enum copy_result cr,
                                     uint32_t len, bool replay, enum tl_rec_err rec_err,
                                     enum tl_ring_corrupt why, tl_ring_event *ev);

/* Step 1 in full, then steps 2-5: the general path (tl_ring_poll's fast
 * path handles the common case inline and comes here for anything else). */
static __attribute__((noinline)) enum tl_ring_ev follow(tl_ring_consumer *c, tl_ring_event *ev) {
    uint64_t pos = c->position;
    uint64_t E = c->expected;
    if (position_impossible(c, pos, ev))
        return ev->type;

    /* 1. Poll. */
    uint64_t s = stamp_at(c, pos);
    if (s != E) {
        uint64_t pub = publish_fresh(c);
        if (pub > c->pf_limit)
            c->pf_limit = pub;
        s = stamp_at(c, pos);
        if (s != E) {
            if (pub <= pos)
                return TL_RING_EV_NONE; /* nothing committed at c in this lap */
            if (is_lapped(c, pub, pos))
                return ev_lapped(c, pos, ev);
            /* Otherwise committed in this lap with another seq: go on. */
        }
    }
    prefetch_ahead(c, pos);

    /* 2-3. Copy and verify. */
    uint32_t len = 0;
    bool replay = false;
    enum tl_rec_err rec_err = TL_REC_OK;
    enum tl_ring_corrupt why = TL_RING_CORRUPT_NONE;
    enum copy_result cr = copy_verified(c, pos, false, &len, &replay, &rec_err, &why);
    return follow_copied(c, pos, cr, len, replay, rec_err, why, ev);
}

/* After steps 2-3: the copy's verdict, then step 4 on the verified copy. */
static enum tl_ring_ev follow_copied(tl_ring_consumer *c, uint64_t pos, enum copy_result cr,
                                     uint32_t len, bool replay, enum tl_rec_err rec_err,
                                     enum tl_ring_corrupt why, tl_ring_event *ev) {
    uint64_t E = c->expected;
    switch (cr) {
        case COPY_OK:
            break;
        case COPY_UNCOMMITTED:
            return TL_RING_EV_NONE;
        case COPY_LAPPED:
            return ev_lapped(c, pos, ev);
        case COPY_CORRUPT:
        case COPY_RETRY: /* never returned by copy_verified */
            return ev_corrupt(c, pos, why, rec_err, true, ev);
    }

    /* 4. Act, on the copy's seq. */
    const tl_rec_hdr *h = tl_rec_hdr_of(c->copy);
    uint64_t seq = h->seq;
    bool is_pad = h->kind == TL_KIND_PAD;
    if (seq != E || is_pad) {
        /* Lap check first: a newer lap can put a valid record exactly at c
         * (offset 0 follows every PAD). */
        uint64_t pub = publish_fresh(c);
        if (is_lapped(c, pub, pos))
            return ev_lapped(c, pos, ev);
    }
    ev->position = pos;
    ev->seq = seq;

    if (is_pad) {
        uint64_t room = c->capacity - (pos & c->mask);
        if (rec_err != TL_REC_OK || len != room) {
            /* Re-attach at or after the start of the next lap: the bytes
             * after a bad PAD hold no boundary we can trust. */
            enum tl_ring_corrupt r =
                rec_err != TL_REC_OK ? TL_RING_CORRUPT_BAD_PAD : TL_RING_CORRUPT_BAD_PAD_LEN;
            ev_corrupt(c, pos, r, rec_err, true, ev);
            c->attach_floor = pos + room;
            return ev->type;
        }
        c->position = pos + len; /* the next multiple of capacity; E stays */
        c->stats.pads++;
        store_position(c);
        ev->type = TL_RING_EV_PAD;
        ev->len = len;
        return ev->type;
    }

    if (rec_err != TL_REC_OK || (replay && seq >= E)) {
        /* The framing is sound (the checksum passed), so the record is
         * skipped and its seq comes from the WAL. REPLAY is outside the
         * checksum by design; this rule is what catches a flip there. */
        enum tl_ring_corrupt r =
            rec_err != TL_REC_OK ? TL_RING_CORRUPT_BAD_FIELDS : TL_RING_CORRUPT_REPLAY_AHEAD;
        c->position = pos + len;
        store_position(c);
        ev->len = len;
        return ev_corrupt(c, pos, r, rec_err, false, ev);
    }

    ev->type = TL_RING_EV_RECORD;
    ev->rec = c->copy;
    ev->len = len;
    ev->replay = replay;
    ev->expected = E;
    if (seq == E) {
        c->expected = E + 1;
    } else if (seq > E) {
        c->expected = seq + 1; /* E .. seq-1 come from the WAL */
        c->stats.jumps++;
    } else {
        c->stats.lower_seqs++; /* delivered for classification; E stays */
    }
    if (replay)
        c->stats.replays++;
    c->stats.records++;
    c->position = pos + len;
    /* 5. */
    store_position(c);
    return ev->type;
}

enum tl_ring_ev tl_ring_poll(tl_ring_consumer *c, uint64_t last_delivered_seq, tl_ring_event *ev) {
    uint64_t pos = c->position;
    if (__builtin_expect(c->phase != TL_CONS_FOLLOW, 0)) {
        ev_clear(ev, pos);
        return attach(c, last_delivered_seq, ev);
    }
    /* The fast path: the stamp is E, the first copy verifies, and the copy
     * is an ordinary record with seq E. Everything else takes the general
     * path (follow, or follow_copied after the first copy), which makes
     * exactly the same decisions. */
    uint64_t E = c->expected;
    uint64_t off = pos & c->mask;
    if (__builtin_expect(c->capacity - off < TL_REC_HDR_BYTES || stamp_at(c, pos) != E, 0)) {
        ev_clear(ev, pos);
        return follow(c, ev);
    }
    prefetch_ahead(c, pos);
    uint32_t len = 0;
    bool replay = false;
    enum tl_rec_err rec_err = TL_REC_OK;
    enum tl_ring_corrupt why = TL_RING_CORRUPT_NONE;
    enum copy_result cr = COPY_OK;
    if (__builtin_expect(copy_item(c, pos, &len), 1)) {
        rec_err = verify_copy(c->copy, len, &replay);
        if (__builtin_expect(rec_err == TL_REC_ERR_CHECKSUM, 0))
            why = TL_RING_CORRUPT_CHECKSUM;
    } else {
        why = TL_RING_CORRUPT_BAD_LEN;
        rec_err = TL_REC_ERR_LEN;
    }
    if (__builtin_expect(why != TL_RING_CORRUPT_NONE, 0))
        cr = copy_verified(c, pos, true, &len, &replay, &rec_err, &why);
    const tl_rec_hdr *h = tl_rec_hdr_of(c->copy);
    if (__builtin_expect(cr != COPY_OK || rec_err != TL_REC_OK || replay || h->seq != E ||
                             h->kind == TL_KIND_PAD,
                         0)) {
        ev_clear(ev, pos);
        return follow_copied(c, pos, cr, len, replay, rec_err, why, ev);
    }
    /* 4. s' == E, an ordinary record: deliver it; E += 1. */
    ev->type = TL_RING_EV_RECORD;
    ev->position = pos;
    ev->seq = E;
    ev->expected = E;
    ev->rec = c->copy;
    ev->len = len;
    ev->replay = false;
    ev->reason = TL_RING_CORRUPT_NONE;
    ev->rec_err = TL_REC_OK;
    ev->reattach = false;
    c->expected = E + 1;
    c->stats.records++;
    c->position = pos + len;
    /* 5. */
    store_position(c);
    return TL_RING_EV_RECORD;
}
