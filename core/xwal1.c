/* xwal1.c: xwal1 segment names, the frame walker, the symbol table, the
 * record -> view binding and the torn-tail rules (see xwal1.h). */
#include "xwal1.h"

#include <stdio.h>
#include <string.h>

#include "assert.h"
#include "checksum.h"

/* ---- errors ---- */

static const char *const err_names[TL_XWAL1_ERR_COUNT] = {
    [TL_XWAL1_OK] = "ok",
    [TL_XWAL1_ERR_BAD_MAGIC] = "bad_magic",
    [TL_XWAL1_ERR_SHORT_MAGIC] = "short_magic",
    [TL_XWAL1_ERR_SHORT_LENGTH] = "short_length",
    [TL_XWAL1_ERR_SHORT_PAYLOAD] = "short_payload",
    [TL_XWAL1_ERR_SHORT_CRC] = "short_crc",
    [TL_XWAL1_ERR_ZERO_LENGTH] = "zero_length",
    [TL_XWAL1_ERR_ZERO_FILLED_TAIL] = "zero_filled_tail",
    [TL_XWAL1_ERR_PAYLOAD_TOO_LARGE] = "payload_too_large",
    [TL_XWAL1_ERR_CRC_MISMATCH] = "crc_mismatch",
    [TL_XWAL1_ERR_JSON] = "json_error",
    [TL_XWAL1_ERR_BAD_FIELD] = "bad_field",
    [TL_XWAL1_ERR_TOO_MANY_EVENTS] = "too_many_events",
    [TL_XWAL1_ERR_BAD_SYMBOL] = "bad_symbol",
    [TL_XWAL1_ERR_BAD_STATE_HASH] = "bad_state_hash",
    [TL_XWAL1_ERR_SEQ_ORDER] = "seq_order_in_record",
    [TL_XWAL1_ERR_BAD_CHECKPOINT] = "bad_checkpoint",
    [TL_XWAL1_ERR_BAD_AMOUNT] = "bad_amount",
    [TL_XWAL1_ERR_TOO_MANY_SYMBOLS] = "too_many_symbols",
};

const char *tl_xwal1_err_name(enum tl_xwal1_err e) {
    return (unsigned)e < TL_XWAL1_ERR_COUNT ? err_names[e] : "?";
}

enum tl_rule tl_xwal1_err_rule(enum tl_xwal1_err e) {
    switch (e) {
        case TL_XWAL1_OK:
            return TL_RULE_NONE;
        case TL_XWAL1_ERR_BAD_MAGIC:
        case TL_XWAL1_ERR_SHORT_MAGIC:
            return TL_RULE_SEGMENT;
        case TL_XWAL1_ERR_SHORT_LENGTH:
        case TL_XWAL1_ERR_SHORT_PAYLOAD:
        case TL_XWAL1_ERR_SHORT_CRC:
        case TL_XWAL1_ERR_ZERO_LENGTH:
        case TL_XWAL1_ERR_ZERO_FILLED_TAIL:
        case TL_XWAL1_ERR_PAYLOAD_TOO_LARGE:
            return TL_RULE_LENGTH;
        case TL_XWAL1_ERR_CRC_MISMATCH:
            return TL_RULE_CHECKSUM;
        default:
            return TL_RULE_FIELDS;
    }
}

const char *tl_xwal1_step_name(enum tl_xwal1_step s) {
    switch (s) {
        case TL_XWAL1_FRAME:
            return "frame";
        case TL_XWAL1_END:
            return "end";
        case TL_XWAL1_TENTATIVE:
            return "tentative";
        case TL_XWAL1_CORRUPT:
            return "corrupt";
    }
    return "?";
}

/* ---- segment names ---- */

#define NAME_PREFIX     "segment-"
#define NAME_PREFIX_LEN 8u
#define NAME_SUFFIX     ".wal"
#define NAME_SUFFIX_LEN 4u

bool tl_xwal1_segment_name_parse(const char *name, size_t len, uint64_t *index) {
    if (len < NAME_PREFIX_LEN + 6 + NAME_SUFFIX_LEN ||
        memcmp(name, NAME_PREFIX, NAME_PREFIX_LEN) != 0 ||
        memcmp(name + len - NAME_SUFFIX_LEN, NAME_SUFFIX, NAME_SUFFIX_LEN) != 0)
        return false;
    const char *d = name + NAME_PREFIX_LEN;
    size_t nd = len - NAME_PREFIX_LEN - NAME_SUFFIX_LEN;
    /* %06d: exactly six digits, or more without a leading zero. */
    if (nd > 6 && d[0] == '0')
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < nd; i++) {
        unsigned c = (unsigned)(unsigned char)d[i] - '0';
        if (c > 9)
            return false;
        if (__builtin_mul_overflow(v, 10u, &v) || __builtin_add_overflow(v, c, &v))
            return false;
    }
    if (v == 0)
        return false;
    *index = v;
    return true;
}

size_t tl_xwal1_segment_name(char *out, size_t cap, uint64_t index) {
    if (index == 0)
        return 0;
    int n = snprintf(out, cap, NAME_PREFIX "%06llu" NAME_SUFFIX, (unsigned long long)index);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}

/* ---- frames ---- */

void tl_xwal1_walker_init(tl_xwal1_walker *w, const uint8_t *seg, size_t seg_bytes,
                          size_t start_off, bool newest) {
    tl_xwal1_walker_init_window(w, seg, seg_bytes, 0, start_off, newest);
}

void tl_xwal1_walker_init_window(tl_xwal1_walker *w, const uint8_t *bytes, size_t n, size_t base,
                                 size_t start_off, bool newest) {
    TL_ASSERT(bytes != NULL || n == 0);
    TL_ASSERT(start_off == 0 || start_off >= TL_XWAL1_MAGIC_BYTES);
    /* The magic is checked from the first byte of the file only. */
    TL_ASSERT(start_off == 0 ? base == 0 : start_off >= base);
    TL_ASSERT(n <= SIZE_MAX - base);
    memset(w, 0, sizeof *w);
    w->seg = bytes;
    w->base = base;
    w->seg_bytes = base + n;
    w->off = start_off;
    w->newest = newest;
}

static enum tl_xwal1_step stop(tl_xwal1_walker *w, enum tl_xwal1_step step, enum tl_xwal1_err e,
                               size_t where, enum tl_xwal1_err *err) {
    w->stopped = true;
    w->last_step = (uint8_t)step;
    w->last_err = (uint8_t)e;
    w->last_off = where;
    *err = e;
    return step;
}

/* A torn tail: tentative only while the segment is the newest. */
static enum tl_xwal1_step torn(tl_xwal1_walker *w, enum tl_xwal1_err e, size_t where,
                               enum tl_xwal1_err *err) {
    return stop(w, w->newest ? TL_XWAL1_TENTATIVE : TL_XWAL1_CORRUPT, e, where, err);
}

static bool all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0)
            return false;
    }
    return true;
}

enum tl_xwal1_step tl_xwal1_walker_next(tl_xwal1_walker *w, tl_xwal1_frame *fr,
                                        enum tl_xwal1_err *err) {
    *err = TL_XWAL1_OK;
    if (w->stopped) {
        *err = (enum tl_xwal1_err)w->last_err;
        return (enum tl_xwal1_step)w->last_step;
    }
    if (w->off == 0) {
        if (w->seg_bytes < TL_XWAL1_MAGIC_BYTES) {
            /* A file the engine is creating shows its magic a byte at a time. */
            if (w->seg_bytes == 0 || memcmp(w->seg, TL_XWAL1_MAGIC, w->seg_bytes) == 0)
                return torn(w, TL_XWAL1_ERR_SHORT_MAGIC, 0, err);
            return stop(w, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_BAD_MAGIC, 0, err);
        }
        if (memcmp(w->seg, TL_XWAL1_MAGIC, TL_XWAL1_MAGIC_BYTES) != 0)
            return stop(w, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_BAD_MAGIC, 0, err);
        w->off = TL_XWAL1_MAGIC_BYTES;
    }
    size_t o = w->off;
    if (o > w->seg_bytes) {
        /* The file is shorter than where an earlier walk had read frames. */
        return stop(w, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_SHORT_LENGTH, o, err);
    }
    size_t r = w->seg_bytes - o;
    if (r == 0)
        return stop(w, TL_XWAL1_END, TL_XWAL1_OK, o, err);
    if (r < 4)
        return torn(w, TL_XWAL1_ERR_SHORT_LENGTH, o, err);
    const uint8_t *at = w->seg + (o - w->base); /* o >= base: init and every step keep it */
    uint32_t len;
    memcpy(&len, at, 4); /* little-endian host (record.h) */
    if (len == 0) {
        if (all_zero(at, r))
            return torn(w, TL_XWAL1_ERR_ZERO_FILLED_TAIL, o, err);
        return stop(w, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_ZERO_LENGTH, o, err);
    }
    if (len > TL_XWAL1_MAX_PAYLOAD_BYTES)
        return stop(w, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_PAYLOAD_TOO_LARGE, o, err);
    if (r - 4 < len)
        return torn(w, TL_XWAL1_ERR_SHORT_PAYLOAD, o, err);
    if (r - 4 - len < 4)
        return torn(w, TL_XWAL1_ERR_SHORT_CRC, o, err);
    const uint8_t *payload = at + 4;
    uint32_t stored;
    memcpy(&stored, payload + len, 4);
    if (tl_xwal1_crc32(0, payload, len) != stored)
        return stop(w, TL_XWAL1_CORRUPT, TL_XWAL1_ERR_CRC_MISMATCH, o, err);
    fr->offset = o;
    fr->payload = payload;
    fr->payload_len = len;
    fr->frame_len = len + TL_XWAL1_FRAME_OVERHEAD_BYTES;
    fr->crc = stored;
    w->last_off = o;
    w->off = o + fr->frame_len;
    return TL_XWAL1_FRAME;
}

/* ---- the symbol table ---- */

static uint32_t index_slots_for(uint32_t capacity) {
    uint32_t slots = 2;
    while (slots < 2 * capacity)
        slots <<= 1;
    return slots;
}

size_t tl_xwal1_symtab_bytes(uint32_t capacity) {
    TL_ASSERT(capacity >= 1 && capacity <= TL_XWAL1_MAX_SYMBOLS);
    size_t syms = ((size_t)capacity * sizeof(tl_xwal1_sym) + 7) & ~(size_t)7;
    return syms + (size_t)index_slots_for(capacity) * sizeof(uint16_t);
}

void tl_xwal1_symtab_init(tl_xwal1_symtab *t, void *mem, uint32_t capacity) {
    TL_ASSERT(capacity >= 1 && capacity <= TL_XWAL1_MAX_SYMBOLS);
    TL_ASSERT(((uintptr_t)mem & 7u) == 0);
    memset(mem, 0, tl_xwal1_symtab_bytes(capacity));
    t->syms = mem;
    size_t syms = ((size_t)capacity * sizeof(tl_xwal1_sym) + 7) & ~(size_t)7;
    t->index = (uint16_t *)((uint8_t *)mem + syms);
    t->capacity = capacity;
    t->index_slots = index_slots_for(capacity);
    t->count = 0;
    t->last_id = 0;
}

static uint32_t name_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a: names are short and few */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static bool sym_is(const tl_xwal1_sym *y, const char *name, size_t len) {
    return y->name_len == len && memcmp(y->name, name, len) == 0;
}

/* The index slot holding name, or the empty slot where it would go. */
static uint32_t slot_of(const tl_xwal1_symtab *t, const char *name, size_t len) {
    uint32_t mask = t->index_slots - 1;
    uint32_t i = name_hash(name, len) & mask;
    /* Bounded: the table is at most half full, so an empty slot exists. */
    for (uint32_t probes = 0; probes < t->index_slots; probes++) {
        uint16_t id = t->index[i];
        if (id == 0 || sym_is(&t->syms[id - 1], name, len))
            return i;
        i = (i + 1) & mask;
    }
    TL_UNREACHABLE();
}

uint32_t tl_xwal1_symtab_find(const tl_xwal1_symtab *t, const char *name, size_t len) {
    if (t->last_id != 0 && sym_is(&t->syms[t->last_id - 1], name, len))
        return t->last_id;
    if (len == 0 || len > TL_SYMBOL_NAME_MAX)
        return 0;
    return t->index[slot_of(t, name, len)];
}

uint32_t tl_xwal1_symtab_intern(tl_xwal1_symtab *t, const char *name, size_t len) {
    if (t->last_id != 0 && sym_is(&t->syms[t->last_id - 1], name, len))
        return t->last_id;
    if (!tl_symbol_name_valid(name, len))
        return 0;
    uint32_t slot = slot_of(t, name, len);
    uint32_t id = t->index[slot];
    if (id == 0) {
        if (t->count == t->capacity)
            return 0;
        id = ++t->count;
        tl_xwal1_sym *y = &t->syms[id - 1];
        memset(y, 0, sizeof *y);
        memcpy(y->name, name, len);
        y->name_len = (uint8_t)len;
        y->mode = TL_MODE_NORMAL; /* upstream starts every symbol NORMAL */
        t->index[slot] = (uint16_t)id;
    }
    t->last_id = id;
    return id;
}

const tl_xwal1_sym *tl_xwal1_symtab_get(const tl_xwal1_symtab *t, uint32_t id) {
    return id >= 1 && id <= t->count ? &t->syms[id - 1] : NULL;
}

/* ---- binding ---- */

enum tl_xwal1_err tl_xwal1_bind(tl_xwal1_symtab *t, const tl_xwal1_rec *rec,
                                const tl_xwal1_frame *fr, tl_rec_view *v) {
    TL_ASSERT(rec->err == TL_XWAL1_OK);
    TL_ASSERT(rec->n_events >= 1 && rec->n_events <= TL_XWAL1_MAX_EVENTS);
    TL_ASSERT(rec->seq == rec->event_seqs[rec->n_events - 1] && rec->seq != 0);
    uint32_t id = tl_xwal1_symtab_intern(t, rec->symbol, rec->symbol_len);
    if (id == 0)
        return TL_XWAL1_ERR_TOO_MANY_SYMBOLS; /* the decoder checked the name */
    tl_xwal1_sym *y = &t->syms[id - 1];

    memset(v, 0, sizeof *v);
    v->checksum = tl_xxh3(fr->payload, fr->payload_len);
    v->parent = y->last_checksum;
    v->seq = rec->seq;
    v->fence = rec->fence;
    /* occurred_at_ms is i64 upstream; a negative or huge one gives no time. */
    v->ts_ns = rec->ts_ms > 0 && (uint64_t)rec->ts_ms <= UINT64_MAX / 1000000u
                   ? (uint64_t)rec->ts_ms * 1000000u
                   : 0;
    v->len = fr->frame_len;
    v->symbol = id;
    bool changed = rec->mode != TL_XWAL1_MODE_NULL && rec->mode != y->mode;
    v->kind = changed ? TL_KIND_MODE_CHANGE : TL_KIND_CHECKPOINT;
    v->state_hash = rec->state_hash;
    v->event_seqs = rec->event_seqs;
    v->n_events = rec->n_events;

    if (rec->mode != TL_XWAL1_MODE_NULL)
        y->mode = rec->mode;
    y->last_checksum = v->checksum;
    y->records++;
    return TL_XWAL1_OK;
}

/* ---- the torn tail ---- */

void tl_xwal1_tail_init(tl_xwal1_tail *t) {
    memset(t, 0, sizeof *t);
}

enum tl_xwal1_tail_verdict tl_xwal1_tail_observe(tl_xwal1_tail *t, bool tentative, uint64_t segment,
                                                 uint64_t offset, enum tl_xwal1_err err,
                                                 uint64_t file_bytes, bool newer_segment,
                                                 uint64_t now_ns, uint64_t torn_grace_ms) {
    if (!tentative) {
        t->active = false;
        return TL_XWAL1_TAIL_CLEAR;
    }
    if (newer_segment) {
        t->active = false;
        return TL_XWAL1_TAIL_CORRUPT_NEWER;
    }
    if (!t->active || t->segment != segment || t->offset != offset) {
        /* A new tentative item (an earlier one completed, the walk moved on). */
        t->active = true;
        t->segment = segment;
        t->offset = offset;
        t->first_ns = now_ns;
        t->file_bytes_first = file_bytes;
        t->err = (uint8_t)err;
        return TL_XWAL1_TAIL_WAIT;
    }
    t->err = (uint8_t)err;
    uint64_t grace_ns =
        torn_grace_ms > UINT64_MAX / 1000000u ? UINT64_MAX : torn_grace_ms * 1000000u;
    bool grown = file_bytes > t->file_bytes_first;
    bool expired = now_ns >= t->first_ns && now_ns - t->first_ns >= grace_ns;
    if (grown && expired) {
        t->active = false;
        return TL_XWAL1_TAIL_CORRUPT_STALLED;
    }
    return TL_XWAL1_TAIL_WAIT;
}
