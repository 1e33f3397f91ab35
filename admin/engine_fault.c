/* engine_fault.c: libtally_engine's fault injection, for the engine
 * simulator's --fault flags and the tests (libtally_engine.h, the end).
 *
 * Three levels, by where a fault acts:
 *   - ring level (FORK, DUP): on_record publishes something else, or
 *     something more, for the record that got the seq; the WAL is untouched;
 *   - writer level (FLIP, CRASH): the WAL writer's own FLIP / TEAR hook,
 *     which holds one fault at a time: the next one is handed over once the
 *     previous one's record was appended and synced (so the sync thread has
 *     applied it);
 *   - record level (GAP, REORDER, PARENT, FENCE_*): the record is encoded
 *     here with the wrong seq, parent or fence and appended with
 *     tl_wal_append_raw, which the writer then follows; on_record publishes
 *     those very bytes.
 * Every fault is stamped (ops.on_fault) with CLOCK_MONOTONIC just before the
 * ring publish that carries it.
 *
 * None of this is on the engine's hot path unless a fault is armed: the
 * append path tests e->fault_hot, on_record e->ring_hook.
 */
#include "admin/engine_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"

#define PARENT_XOR    0x5a5a5a5a5a5a5a5aull
#define FLIP_BYTE     32u /* ts_ns: the checksum fails, len and kind stay readable */
#define TEAR_BYTES    40u /* checksum, parent, seq, fence, ts_ns: len still zero */
#define FORK_MARK     "tly-fork"
#define FORK_MARK_LEN 8u

static const char *const fault_names[] = {
    [TL_ENGINE_FAULT_NONE] = "none",
    [TL_ENGINE_FAULT_FORK] = "fork",
    [TL_ENGINE_FAULT_DUP] = "dup",
    [TL_ENGINE_FAULT_GAP] = "gap",
    [TL_ENGINE_FAULT_REORDER] = "reorder",
    [TL_ENGINE_FAULT_PARENT] = "parent",
    [TL_ENGINE_FAULT_FENCE_REGRESS] = "fence_regress",
    [TL_ENGINE_FAULT_FENCE_UNANNOUNCED] = "fence_unannounced",
    [TL_ENGINE_FAULT_FLIP] = "flip",
    [TL_ENGINE_FAULT_CRASH] = "crash",
};
_Static_assert(TL_ARRAY_LEN(fault_names) == TL_ENGINE_FAULT_COUNT, "a name per fault");

const char *tl_engine_fault_name(enum tl_engine_fault f) {
    return (unsigned)f < TL_ARRAY_LEN(fault_names) ? fault_names[f] : "?";
}

enum tl_engine_fault tl_engine_fault_parse(const char *s, size_t n) {
    for (unsigned i = 1; i < TL_ENGINE_FAULT_COUNT; i++) {
        if (strlen(fault_names[i]) == n && memcmp(fault_names[i], s, n) == 0)
            return (enum tl_engine_fault)i;
    }
    return TL_ENGINE_FAULT_NONE;
}

static bool is_writer_level(uint8_t k) {
    return k == TL_ENGINE_FAULT_FLIP || k == TL_ENGINE_FAULT_CRASH;
}

static bool is_ring_level(uint8_t k) {
    return k == TL_ENGINE_FAULT_FORK || k == TL_ENGINE_FAULT_DUP;
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

enum tl_engine_err tl_eng_faults_init(tl_eng_faults *fx) {
    memset(fx, 0, sizeof *fx);
    fx->writer_slot = -1;
    fx->dup_slot = -1;
    fx->stamp_slot = -1;
    fx->hold = aligned_alloc(64, TL_REC_MAX_BYTES);
    fx->dup = aligned_alloc(64, TL_REC_MAX_BYTES);
    fx->scratch = aligned_alloc(64, TL_RING_COPY_BYTES);
    if (fx->hold == NULL || fx->dup == NULL || fx->scratch == NULL) {
        tl_eng_faults_free(fx);
        return TL_ENGINE_ERR_NOMEM;
    }
    return TL_ENGINE_OK;
}

void tl_eng_faults_free(tl_eng_faults *fx) {
    free(fx->hold);
    free(fx->dup);
    free(fx->scratch);
    fx->hold = fx->dup = fx->scratch = NULL;
}

/* fault_hot: appends must look at the table; ring_hook: on_record must. */
static void update_flags(tl_engine *e) {
    tl_eng_faults *fx = &e->fx;
    uint32_t not_done = 0, unstamped = 0;
    for (uint32_t i = 0; i < fx->count; i++) {
        not_done += !fx->tab[i].done;
        unstamped += !fx->tab[i].stamped;
    }
    e->fault_hot = not_done > 0 || fx->holding;
    e->ring_hook = unstamped > 0 || fx->dup_pending;
}

static void fired(tl_engine *e, int slot, uint64_t seq, uint64_t t_mono) {
    tl_eng_fault_slot *s = &e->fx.tab[slot];
    s->stamped = true;
    e->fx.fired++;
    if (e->ops.on_fault != NULL)
        e->ops.on_fault(e->ops.ctx, (enum tl_engine_fault)s->kind, seq, t_mono);
}

/* Hands the lowest pending writer-level fault to the writer, if the hook
 * is free. A fault whose seq was passed before it could be armed is missed
 * (marked, never stamped). */
static void arm_writer(tl_engine *e) {
    tl_eng_faults *fx = &e->fx;
    if (fx->writer_slot >= 0)
        return;
    uint64_t next = tl_wal_next_seq(e->wal);
    int best = -1;
    for (uint32_t i = 0; i < fx->count; i++) {
        tl_eng_fault_slot *s = &fx->tab[i];
        if (!is_writer_level(s->kind) || s->done)
            continue;
        if (s->seq < next) {
            s->done = s->stamped = true; /* missed */
            continue;
        }
        if (best < 0 || s->seq < fx->tab[best].seq)
            best = (int)i;
    }
    if (best < 0)
        return;
    tl_eng_fault_slot *s = &fx->tab[best];
    bool crash = s->kind == TL_ENGINE_FAULT_CRASH;
    enum tl_wal_err rc = tl_wal_fault_arm(e->wal, crash ? TL_WAL_FAULT_TEAR : TL_WAL_FAULT_FLIP,
                                          s->seq, crash ? TEAR_BYTES : FLIP_BYTE);
    if (rc != TL_WAL_OK) {
        s->done = s->stamped = true; /* cannot happen: seq >= next, kind valid */
        return;
    }
    s->done = true;
    fx->writer_slot = best;
    if (crash)
        fx->crash_armed = true;
}

enum tl_engine_err tl_engine_fault_arm(tl_engine *e, enum tl_engine_fault kind, uint64_t seq) {
    tl_eng_faults *fx = &e->fx;
    if (kind <= TL_ENGINE_FAULT_NONE || kind >= TL_ENGINE_FAULT_COUNT || e->wal_failed)
        return TL_ENGINE_ERR_FAULT;
    uint64_t next = fx->holding ? fx->hold_seq + 1 : tl_wal_next_seq(e->wal);
    if (seq < next)
        return TL_ENGINE_ERR_FAULT;
    for (uint32_t i = 0; i < fx->count; i++) {
        if (fx->tab[i].seq == seq && !(fx->tab[i].done && fx->tab[i].stamped))
            return TL_ENGINE_ERR_FAULT; /* one fault per seq */
    }
    /* A fault that fired and was stamped frees its slot, so a benchmark can
     * inject faults forever (--fault-every). */
    int idx = -1;
    for (uint32_t i = 0; i < fx->count && idx < 0; i++) {
        if (fx->tab[i].done && fx->tab[i].stamped && (int)i != fx->writer_slot)
            idx = (int)i;
    }
    if (idx < 0) {
        if (fx->count >= TL_ENGINE_FAULTS_MAX)
            return TL_ENGINE_ERR_FAULT;
        idx = (int)fx->count++;
    }
    fx->tab[idx] = (tl_eng_fault_slot){.seq = seq, .kind = (uint8_t)kind};
    if (is_writer_level((uint8_t)kind)) {
        int w = fx->writer_slot;
        if (w >= 0 && seq < fx->tab[w].seq && fx->tab[w].seq >= next) {
            /* Neither record exists yet: the lower seq takes the hook. */
            fx->tab[w].done = false;
            fx->writer_slot = -1;
        }
        arm_writer(e);
    }
    update_flags(e);
    return TL_ENGINE_OK;
}

bool tl_engine_fault_crashed(const tl_engine *e) {
    return e->wal_failed && e->fx.crash_armed;
}

_Noreturn void tl_engine_fault_crash_now(tl_engine *e) {
    /* Whatever was published stays visible to tally, as with kill -9 after
     * the last commit; nothing else is flushed or synced. */
    tl_ring_flush(e->ring);
    _exit(137);
}

/* ---- ring level: on_record ---- */

/* FORK: the same seq, parent, fence and ts, and 8 more body bytes (ignored
 * by readers past the v1 size), so the record is well formed and its
 * checksum differs. */
static uint32_t build_fork(tl_engine *e, const uint8_t *rec) {
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    uint8_t *s = e->fx.scratch;
    uint32_t body_len = h->body_len;
    bool grow = body_len + FORK_MARK_LEN <= TL_REC_BODY_MAX;
    uint32_t new_body = grow ? body_len + FORK_MARK_LEN : body_len;
    uint32_t len = tl_rec_len_for_body(new_body);
    memset(s, 0, len);
    memcpy(s, rec, TL_REC_HDR_BYTES + body_len);
    tl_rec_hdr *n = (tl_rec_hdr *)(void *)s;
    if (grow)
        memcpy(s + TL_REC_HDR_BYTES + body_len, FORK_MARK, FORK_MARK_LEN);
    else
        n->ts_ns++; /* no room to grow: another stamp makes it another record */
    n->body_len = new_body;
    n->len = len;
    n->flags = 0;
    n->checksum = tl_rec_compute_checksum(s, len);
    /* bounded: a second 0 after a bump is astronomically unlikely */
    for (int tries = 0; n->checksum == 0 && tries < 8; tries++) {
        n->ts_ns++;
        n->checksum = tl_rec_compute_checksum(s, len);
    }
    return len;
}

static void publish_dup(tl_engine *e) {
    tl_eng_faults *fx = &e->fx;
    TL_ASSERT(fx->dup_pending && fx->dup_slot >= 0);
    tl_rec_hdr *h = (tl_rec_hdr *)(void *)fx->dup;
    /* The checksum leaves REPLAY out: the copy keeps its checksum. */
    h->flags |= TL_REC_FLAG_REPLAY;
    uint64_t keep = e->ring->last_seq;
    uint64_t t = mono_ns();
    tl_ring_publish(e->ring, fx->dup, fx->dup_len);
    tl_ring_set_last_seq(e->ring, keep); /* the metrics hint stays the newest */
    fx->dup_pending = false;
    fired(e, fx->dup_slot, fx->dup_seq, t);
    fx->dup_slot = -1;
}

void tl_eng_fault_on_record(tl_engine *e, const uint8_t *rec, uint32_t len) {
    tl_eng_faults *fx = &e->fx;
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    int slot = -1;
    if (fx->stamp_seq != 0 && fx->stamp_seq == h->seq) {
        slot = fx->stamp_slot;
        fx->stamp_seq = 0;
        fx->stamp_slot = -1;
    } else {
        for (uint32_t i = 0; i < fx->count && slot < 0; i++) {
            const tl_eng_fault_slot *s = &fx->tab[i];
            if (!s->stamped && s->seq == h->seq &&
                (is_ring_level(s->kind) || (is_writer_level(s->kind) && s->done)))
                slot = (int)i;
        }
    }
    uint8_t kind = slot >= 0 ? fx->tab[slot].kind : TL_ENGINE_FAULT_NONE;
    if (kind == TL_ENGINE_FAULT_FORK) {
        uint32_t alt = build_fork(e, rec);
        fx->tab[slot].done = true;
        uint64_t t = mono_ns();
        tl_ring_publish(e->ring, fx->scratch, alt);
        fired(e, slot, h->seq, t);
    } else if (kind == TL_ENGINE_FAULT_DUP) {
        tl_ring_publish(e->ring, rec, len);
        memcpy(fx->dup, rec, len);
        fx->dup_len = len;
        fx->dup_seq = h->seq;
        fx->dup_slot = slot;
        fx->dup_pending = true;
        fx->dup_fresh = true;
        fx->tab[slot].done = true;
    } else if (kind != TL_ENGINE_FAULT_NONE) {
        uint64_t t = mono_ns();
        tl_ring_publish(e->ring, rec, len);
        fired(e, slot, h->seq, t);
    } else {
        tl_ring_publish(e->ring, rec, len);
    }
    /* A DUP copy goes out after the record that follows it. */
    if (fx->dup_pending) {
        if (fx->dup_fresh)
            fx->dup_fresh = false;
        else
            publish_dup(e);
    }
    update_flags(e);
}

void tl_eng_fault_idle(tl_engine *e) {
    if (e->fx.dup_pending) {
        /* Ring order is what counts: after its own record, the copy is
         * already a lower seq for the consumer. */
        e->fx.dup_fresh = false;
        publish_dup(e);
        update_flags(e);
    }
}

/* ---- record level: the append path ---- */

static enum tl_engine_err append_raw(tl_engine *e, const uint8_t *rec, uint32_t len) {
    return tl_eng_wal_rc(e, tl_wal_append_raw(e->wal, rec, len, NULL));
}

/* The held REORDER record goes in place (it is the next seq). */
static enum tl_engine_err release_hold(tl_engine *e) {
    tl_eng_faults *fx = &e->fx;
    if (!fx->holding)
        return TL_ENGINE_OK;
    fx->holding = false;
    enum tl_engine_err rc = append_raw(e, fx->hold, fx->hold_len);
    update_flags(e);
    return rc;
}

enum tl_engine_err tl_eng_fault_flush(tl_engine *e) {
    enum tl_engine_err rc = TL_ENGINE_OK;
    if (e->fx.holding && !e->wal_failed) {
        /* The reorder did not happen: nothing followed the held record. */
        for (uint32_t i = 0; i < e->fx.count; i++) {
            if (e->fx.tab[i].kind == TL_ENGINE_FAULT_REORDER &&
                e->fx.tab[i].seq <= e->fx.hold_seq && !e->fx.tab[i].stamped)
                e->fx.tab[i].stamped = true;
        }
        rc = release_hold(e);
    }
    if (e->fx.dup_pending && e->ring != NULL) {
        e->fx.dup_fresh = false;
        publish_dup(e);
    }
    update_flags(e);
    return rc;
}

/* REORDER, second half: this record is written as hold_seq + 1 (its parent
 * the held record's checksum), then the held one. */
static enum tl_engine_err reorder_release(tl_engine *e, uint16_t kind, uint32_t symbol,
                                          const void *body, uint32_t body_len, uint64_t ts_ns,
                                          uint64_t *seq) {
    tl_eng_faults *fx = &e->fx;
    const tl_rec_hdr *a = tl_rec_hdr_of(fx->hold);
    tl_rec_meta m = {.parent = a->checksum,
                     .seq = fx->hold_seq + 1,
                     .fence = tl_wal_fence(e->wal),
                     .ts_ns = ts_ns,
                     .kind = kind,
                     .symbol = symbol};
    uint32_t len = tl_rec_encode(fx->scratch, TL_RING_COPY_BYTES, &m, body, body_len);
    if (len == 0)
        return TL_ENGINE_ERR_RECORD;
    int slot = -1;
    for (uint32_t i = 0; i < fx->count; i++) {
        if (fx->tab[i].kind == TL_ENGINE_FAULT_REORDER && fx->tab[i].done && !fx->tab[i].stamped)
            slot = (int)i;
    }
    fx->stamp_seq = m.seq;
    fx->stamp_slot = slot;
    enum tl_engine_err rc = append_raw(e, fx->scratch, len);
    if (rc != TL_ENGINE_OK) {
        /* A bad body of the caller's: the held record stays held for the
         * next append; a writer failure: nothing more is written anyway. */
        fx->stamp_seq = 0;
        return rc;
    }
    if (seq != NULL)
        *seq = m.seq;
    fx->holding = false;
    rc = append_raw(e, fx->hold, fx->hold_len);
    update_flags(e);
    return rc;
}

static enum tl_engine_err apply_record_fault(tl_engine *e, int slot, uint16_t kind, uint32_t symbol,
                                             const void *body, uint32_t body_len, uint64_t ts_ns,
                                             uint64_t *seq) {
    tl_eng_faults *fx = &e->fx;
    uint8_t fk = fx->tab[slot].kind;
    uint64_t fence = tl_wal_fence(e->wal);
    tl_rec_meta m = {.parent = tl_wal_last_checksum(e->wal),
                     .seq = tl_wal_next_seq(e->wal),
                     .fence = fence,
                     .ts_ns = ts_ns,
                     .kind = kind,
                     .symbol = symbol};
    switch (fk) {
        case TL_ENGINE_FAULT_GAP:
            m.seq++;
            break;
        case TL_ENGINE_FAULT_PARENT:
            m.parent ^= PARENT_XOR;
            break;
        case TL_ENGINE_FAULT_FENCE_REGRESS:
            if (fence == 0) {
                /* No fence below 0: the fault cannot be written. */
                fx->tab[slot].done = fx->tab[slot].stamped = true;
                update_flags(e);
                return tl_eng_append(e, kind, symbol, body, body_len, ts_ns, seq);
            }
            m.fence = fence - 1;
            break;
        case TL_ENGINE_FAULT_FENCE_UNANNOUNCED:
            m.fence = fence + 1;
            break;
        case TL_ENGINE_FAULT_REORDER: {
            /* First half: encode and hold. */
            uint32_t len = tl_rec_encode(fx->hold, TL_REC_MAX_BYTES, &m, body, body_len);
            if (len == 0 || tl_rec_check_fields(fx->hold, TL_WHERE_WAL, false) != TL_REC_OK)
                return TL_ENGINE_ERR_RECORD;
            fx->tab[slot].done = true;
            fx->holding = true;
            fx->hold_seq = m.seq;
            fx->hold_len = len;
            if (seq != NULL)
                *seq = m.seq;
            update_flags(e);
            return TL_ENGINE_OK;
        }
        default:
            TL_UNREACHABLE();
    }
    uint32_t len = tl_rec_encode(fx->scratch, TL_RING_COPY_BYTES, &m, body, body_len);
    if (len == 0)
        return TL_ENGINE_ERR_RECORD;
    fx->tab[slot].done = true;
    fx->stamp_seq = m.seq;
    fx->stamp_slot = slot;
    update_flags(e);
    enum tl_engine_err rc = append_raw(e, fx->scratch, len);
    if (rc != TL_ENGINE_OK) {
        /* Not written: the fault waits for the next record. */
        fx->tab[slot].done = false;
        fx->stamp_seq = 0;
        fx->stamp_slot = -1;
        update_flags(e);
        return rc;
    }
    if (seq != NULL)
        *seq = m.seq;
    return TL_ENGINE_OK;
}

enum tl_engine_err tl_eng_fault_append(tl_engine *e, uint16_t kind, uint32_t symbol,
                                       const void *body, uint32_t body_len, uint64_t ts_ns,
                                       uint64_t *seq) {
    tl_eng_faults *fx = &e->fx;
    /* The writer's hook: once its record is appended, sync (so the sync
     * thread has applied it) before the next writer-level fault takes the
     * hook. */
    int w = fx->writer_slot;
    if (w >= 0 && fx->tab[w].seq < tl_wal_next_seq(e->wal)) {
        bool more = false;
        for (uint32_t i = 0; i < fx->count; i++)
            more |= is_writer_level(fx->tab[i].kind) && !fx->tab[i].done;
        if (more) {
            enum tl_engine_err rc = tl_eng_wal_rc(e, tl_wal_sync(e->wal));
            if (rc != TL_ENGINE_OK)
                return rc;
            fx->writer_slot = -1;
        }
    }
    if (fx->writer_slot < 0)
        arm_writer(e);
    if (fx->holding) {
        enum tl_engine_err rc = reorder_release(e, kind, symbol, body, body_len, ts_ns, seq);
        update_flags(e);
        return rc;
    }
    uint64_t next = tl_wal_next_seq(e->wal);
    int slot = -1;
    for (uint32_t i = 0; i < fx->count; i++) {
        const tl_eng_fault_slot *s = &fx->tab[i];
        if (s->done || is_ring_level(s->kind) || is_writer_level(s->kind) || s->seq > next)
            continue;
        if (slot < 0 || s->seq < fx->tab[slot].seq)
            slot = (int)i;
    }
    if (slot >= 0)
        return apply_record_fault(e, slot, kind, symbol, body, body_len, ts_ns, seq);
    update_flags(e);
    tl_wal_appended out;
    enum tl_wal_err rc = tl_wal_append(e->wal, kind, symbol, body, body_len, ts_ns, &out);
    if (rc != TL_WAL_OK)
        return tl_eng_wal_rc(e, rc);
    if (seq != NULL)
        *seq = out.seq;
    return TL_ENGINE_OK;
}
