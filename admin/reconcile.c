/* reconcile.c: on-demand full reconcile of a scope (see reconcile.h). */
#include "reconcile.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/stream.h"
#include "core/xwal1.h"
#include "io/wal_tail.h"

#define RC_DONE_MAX        32u
#define RC_STALL_NS        5000000000ull /* no event for this long: the log ends here */
#define RC_XWAL1_SEGS_MAX  65536u
#define RC_XWAL1_SEG_BYTES (256ull << 20) /* a larger segment file is refused */
#define RC_FILE_READ_MAX   (64ull << 20)  /* results.jsonl read back at start */

static const char *const status_names[TL_RC_STATUS_COUNT] = {
    "QUEUED", "RUNNING", "CONSISTENT", "MISMATCH", "ERROR",
};

const char *tl_rc_status_name(uint8_t s) {
    return s < TL_RC_STATUS_COUNT ? status_names[s] : "?";
}

int tl_rc_status_parse(const char *s) {
    for (int i = 0; i < (int)TL_RC_STATUS_COUNT; i++)
        if (strcmp(s, status_names[i]) == 0)
            return i;
    return -1;
}

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- one run ---- */

typedef struct run {
    const tl_reconcile_cfg *cfg;
    const tl_reconcile_req *q;
    tl_rc_progress *progress;
    uint64_t by_class[TL_CLASS_COUNT];
    uint64_t by_check[TL_CHECK_COUNT];
    uint64_t mismatch;
    uint64_t info;
    uint64_t records;
    uint64_t first_seq; /* of the scope, as read */
    uint64_t last_seq;
    tl_finding first[TL_RC_FIRST];
    uint32_t n_first;
    char error[160];
    char note[160];
    /* native symbol names, for a scope that names symbols */
    struct {
        uint32_t id;
        char name[TL_SYMBOL_NAME_MAX + 1];
    } names[256];
    uint32_t n_names;
    const tl_xwal1_symtab *xsyms; /* xwal1: the verifier's */
    tl_log *log;                  /* native: the run's, where the ledger and peer facts go */
    /* Wrapping u64 sums of the TRADE records read (ledger.md), in seq order. */
    struct {
        bool started;
        bool anchored;          /* totals absolute: from seq 1, or a CHECKPOINT's totals */
        bool sym_anchored;      /* per symbol absolute: from seq 1 only */
        bool sym_overflow;      /* more than TL_LEDGER_TRACK_MAX symbols traded */
        uint64_t next_seq;      /* the next seq in order */
        uint64_t anchor_seq;    /* 1, or the CHECKPOINT's seq */
        uint64_t lost_seq;      /* the last seq the sums missed (0 = none) */
        uint64_t ckpt_mismatch; /* CHECKPOINTs whose totals differ from the anchored sums */
        tl_ledger_figs total;
        uint32_t n_sym;
        tl_ledger_symfigs sym[TL_LEDGER_TRACK_MAX]; /* sorted by symbol */
    } sums;
    /* the ledger at its watermark */
    uint8_t ledger;         /* enum rc_side */
    uint8_t ledger_verdict; /* enum tl_ledger_verdict */
    uint8_t ledger_symbols; /* enum rc_syms */
    uint32_t ledger_symbol_facts;
    uint64_t ledger_checksum; /* ours at ledger_seq */
    tl_ledger_figs ledger_ours;
    /* peers at the last common checkpoint */
    uint8_t peers; /* enum rc_side */
    uint64_t common_seq;
    bool common_read; /* the WAL's CHECKPOINT at common_seq was read */
    uint8_t wal_hash[TL_STATE_HASH_BYTES];
    uint8_t node[TL_PEER_NODES_MAX]; /* enum rc_side, per node */
} run;

/* What became of the ledger or peer comparison. Stable names: side_names. */
enum rc_side {
    RC_SIDE_NOT_CONFIGURED = 0,
    RC_SIDE_NOT_APPLICABLE, /* xwal1: seqs are per symbol; the hot loop feeds neither */
    RC_SIDE_NO_WATERMARK,   /* no reply accepted yet */
    RC_SIDE_NO_CHECKPOINT,  /* no peer reported a CHECKPOINT yet (per node: this one) */
    RC_SIDE_NO_COMMON,      /* no CHECKPOINT seq every reporting peer reported */
    RC_SIDE_UNREAD,         /* a peer's report kept changing while it was copied */
    RC_SIDE_NOT_IN_SCOPE,   /* the seq is outside [from_seq, to_seq] */
    RC_SIDE_NOT_REACHED,    /* in the scope, but the log as read ended before it */
    RC_SIDE_NOT_READ,       /* the log went past it without it (a gap, a corrupt record) */
    RC_SIDE_UNANCHORED,     /* the sums had no anchor at ledger_seq */
    RC_SIDE_NOT_CHECKPOINT, /* the WAL's record at the common seq is no CHECKPOINT */
    RC_SIDE_PENDING,        /* to be judged when the run reads the seq */
    RC_SIDE_CONSISTENT,
    RC_SIDE_MISMATCH,
    RC_SIDE_COUNT,
};
static const char *const side_names[RC_SIDE_COUNT] = {
    [RC_SIDE_NOT_CONFIGURED] = "not_configured",
    [RC_SIDE_NOT_APPLICABLE] = "not_applicable",
    [RC_SIDE_NO_WATERMARK] = "no_watermark",
    [RC_SIDE_NO_CHECKPOINT] = "no_checkpoint",
    [RC_SIDE_NO_COMMON] = "no_common_checkpoint",
    [RC_SIDE_UNREAD] = "unread",
    [RC_SIDE_NOT_IN_SCOPE] = "not_in_scope",
    [RC_SIDE_NOT_REACHED] = "not_reached",
    [RC_SIDE_NOT_READ] = "not_read",
    [RC_SIDE_UNANCHORED] = "unanchored",
    [RC_SIDE_NOT_CHECKPOINT] = "not_a_checkpoint",
    [RC_SIDE_PENDING] = "pending",
    [RC_SIDE_CONSISTENT] = "consistent",
    [RC_SIDE_MISMATCH] = "mismatch",
};

/* How the per-symbol figures were judged. */
enum rc_syms { RC_SYMS_COMPARED = 0, RC_SYMS_UNANCHORED, RC_SYMS_TOO_MANY, RC_SYMS_COUNT };
static const char *const syms_names[RC_SYMS_COUNT] = {"compared", "unanchored", "too_many"};

static bool symbol_in_scope(run *r, uint32_t symbol) {
    if (r->q->n_symbols == 0 || symbol == 0)
        return true;
    const char *name = NULL;
    if (r->xsyms != NULL) {
        const tl_xwal1_sym *s = tl_xwal1_symtab_get(r->xsyms, symbol);
        name = s != NULL ? s->name : NULL;
    } else {
        for (uint32_t i = 0; i < r->n_names; i++)
            if (r->names[i].id == symbol)
                name = r->names[i].name;
    }
    if (name == NULL)
        return true; /* unnamed: may be one of them; never hide a finding */
    for (uint32_t i = 0; i < r->q->n_symbols; i++)
        if (strcmp(r->q->symbols[i], name) == 0)
            return true;
    return false;
}

static void rc_emit(void *ctx, const tl_finding *f) {
    run *r = ctx;
    if (f->seq != 0 && (f->seq < r->q->from_seq || f->seq > r->q->to_seq))
        return;
    if (!symbol_in_scope(r, f->symbol) || f->check >= TL_CHECK_COUNT)
        return;
    r->by_check[f->check]++;
    if (f->severity < TL_SEV_SEV2) {
        r->info++;
        return;
    }
    r->mismatch++;
    for (unsigned b = 0; b < TL_CLASS_COUNT; b++)
        if (f->cls & (1u << b))
            r->by_class[b]++;
    if (r->n_first < TL_RC_FIRST)
        r->first[r->n_first++] = *f;
}

static void saw_record(run *r, uint64_t seq) {
    if (seq < r->q->from_seq || seq > r->q->to_seq)
        return;
    if (r->records == 0)
        r->first_seq = seq;
    r->records++;
    if (seq > r->last_seq)
        r->last_seq = seq;
    /* Relaxed: progress for display; nothing else hangs on it. */
    atomic_store_explicit(&r->progress->records, r->records, memory_order_relaxed);
    atomic_store_explicit(&r->progress->last_seq, seq, memory_order_relaxed);
}

static bool cancelled(const run *r) {
    /* Relaxed: a stop request; the worker only stops reading. */
    return atomic_load_explicit(&r->progress->cancel, memory_order_relaxed);
}

static void native_symbol(run *r, const tl_rec_view *v) {
    if (v->kind != TL_KIND_SYMBOL || v->body == NULL || r->n_names == TL_ARRAY_LEN(r->names))
        return;
    for (uint32_t i = 0; i < r->n_names; i++)
        if (r->names[i].id == v->symbol)
            return;
    size_t n = strnlen((const char *)v->body, TL_SYMBOL_NAME_MAX);
    r->names[r->n_names].id = v->symbol;
    memcpy(r->names[r->n_names].name, v->body, n);
    r->names[r->n_names].name[n] = '\0';
    r->n_names++;
}

/* ---- the ledger and peers (reconcile.h) ---- */

static bool in_scope(const run *r, uint64_t seq) {
    return seq >= r->q->from_seq && seq <= r->q->to_seq;
}

/* Before reading: what there is to judge, and at which seq. */
static void side_plan(run *r) {
    const tl_reconcile_req *q = r->q;
    bool native = r->cfg->dialect != TL_DIALECT_XWAL1;
    if (!r->cfg->ledger_configured)
        r->ledger = RC_SIDE_NOT_CONFIGURED;
    else if (!native)
        r->ledger = RC_SIDE_NOT_APPLICABLE;
    else if (!q->have_watermark)
        r->ledger = RC_SIDE_NO_WATERMARK;
    else if (!in_scope(r, q->watermark.ledger_seq))
        r->ledger = RC_SIDE_NOT_IN_SCOPE;
    else
        r->ledger = RC_SIDE_PENDING;

    TL_ASSERT(q->n_peers <= TL_PEER_NODES_MAX);
    if (!r->cfg->peers_configured) {
        r->peers = RC_SIDE_NOT_CONFIGURED;
        return;
    }
    if (!native) {
        r->peers = RC_SIDE_NOT_APPLICABLE;
        return;
    }
    /* The last common checkpoint: the highest seq that every peer which
     * reported a CHECKPOINT has reported (each keeps its last few). */
    uint32_t reporting = 0, unread = 0;
    const tl_peer_reported *first = NULL;
    for (uint32_t i = 0; i < q->n_peers; i++) {
        TL_ASSERT(q->peers[i].count <= TL_PEER_REPORTED_MAX);
        r->node[i] = q->peer_unread[i]        ? RC_SIDE_UNREAD
                     : q->peers[i].count == 0 ? RC_SIDE_NO_CHECKPOINT
                                              : RC_SIDE_PENDING;
        unread += q->peer_unread[i];
        if (r->node[i] == RC_SIDE_PENDING && reporting++ == 0)
            first = &q->peers[i];
    }
    if (unread > 0) {
        r->peers = RC_SIDE_UNREAD;
        return;
    }
    if (reporting == 0) {
        r->peers = RC_SIDE_NO_CHECKPOINT;
        return;
    }
    for (uint32_t k = 0; k < first->count && r->common_seq == 0; k++) { /* newest first */
        bool everywhere = true;
        for (uint32_t i = 0; i < q->n_peers && everywhere; i++) {
            if (r->node[i] != RC_SIDE_PENDING)
                continue;
            bool has = false;
            for (uint32_t j = 0; j < q->peers[i].count; j++)
                has |= q->peers[i].seq[j] == first->seq[k];
            everywhere = has;
        }
        if (everywhere)
            r->common_seq = first->seq[k];
    }
    r->peers = r->common_seq == 0            ? RC_SIDE_NO_COMMON
               : !in_scope(r, r->common_seq) ? RC_SIDE_NOT_IN_SCOPE
                                             : RC_SIDE_PENDING;
}

static void sums_unanchor(run *r, uint64_t seq) {
    r->sums.anchored = false;
    r->sums.sym_anchored = false;
    r->sums.lost_seq = seq;
}

static void sums_symbol(run *r, uint32_t symbol, uint64_t qty, uint64_t notional) {
    uint32_t lo = 0, hi = r->sums.n_sym;
    while (lo < hi) { /* at most 10 rounds */
        uint32_t mid = lo + (hi - lo) / 2;
        if (r->sums.sym[mid].symbol < symbol)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == r->sums.n_sym || r->sums.sym[lo].symbol != symbol) {
        if (r->sums.n_sym == TL_LEDGER_TRACK_MAX) {
            r->sums.sym_overflow = true;
            return;
        }
        /* A new symbol: rare (once per symbol), kept sorted for the judge. */
        memmove(&r->sums.sym[lo + 1], &r->sums.sym[lo],
                (r->sums.n_sym - lo) * sizeof r->sums.sym[0]);
        memset(&r->sums.sym[lo], 0, sizeof r->sums.sym[0]);
        r->sums.sym[lo].symbol = symbol;
        r->sums.n_sym++;
    }
    tl_ledger_figs_add_trade(&r->sums.sym[lo].f, qty, notional);
}

/* At ledger_seq, with the sums through it: the checker's own comparison. */
static void ledger_judge(run *r, const tl_rec_view *v) {
    const tl_ledger_wm *wm = &r->q->watermark;
    TL_ASSERT(r->ledger == RC_SIDE_PENDING && v->seq == wm->ledger_seq);
    r->ledger_checksum = v->checksum;
    r->ledger_ours = r->sums.total;
    if (!r->sums.anchored) {
        r->ledger = RC_SIDE_UNANCHORED;
        return;
    }
    tl_ledger_ours o = {.seq = v->seq, .checksum = v->checksum, .total = r->sums.total};
    r->ledger_symbols = RC_SYMS_COMPARED;
    if (!r->sums.sym_anchored)
        r->ledger_symbols = RC_SYMS_UNANCHORED;
    else if (r->sums.sym_overflow)
        r->ledger_symbols = RC_SYMS_TOO_MANY;
    if (r->ledger_symbols == RC_SYMS_COMPARED) {
        o.symbols = r->sums.sym;
        o.symbol_count = r->sums.n_sym;
    }
    /* The findings go through the run's sink: counted when in the scope. */
    uint64_t before = r->mismatch;
    enum tl_ledger_verdict verdict = tl_ledger_judge(r->log, wm, &o, &r->ledger_symbol_facts);
    r->ledger_verdict = (uint8_t)verdict;
    r->ledger = r->mismatch > before ? RC_SIDE_MISMATCH : RC_SIDE_CONSISTENT;
}

/* Every native record read, in the order read (before from_seq too: the
 * first segment's records anchor the sums). */
static void side_record(run *r, const tl_rec_view *v) {
    if (r->ledger != RC_SIDE_PENDING && r->peers != RC_SIDE_PENDING)
        return;
    if (!r->sums.started) {
        r->sums.started = true;
        r->sums.next_seq = v->seq;
        /* Nothing precedes seq 1: sums from it are absolute. */
        r->sums.anchored = r->sums.sym_anchored = v->seq == 1;
        r->sums.anchor_seq = v->seq == 1 ? 1 : 0;
    }
    if (v->seq < r->sums.next_seq)
        return; /* a copy of a seq already summed (the stream judges copies) */
    /* The log went past a seq to judge without it: the stream names the gap. */
    if (r->ledger == RC_SIDE_PENDING && v->seq > r->q->watermark.ledger_seq)
        r->ledger = RC_SIDE_NOT_READ;
    if (r->peers == RC_SIDE_PENDING && v->seq > r->common_seq && !r->common_read)
        r->peers = RC_SIDE_NOT_READ;
    if (v->seq > r->sums.next_seq)
        sums_unanchor(r, r->sums.next_seq); /* seqs never read: their trades are unknown */
    r->sums.next_seq = v->seq + 1;
    if (v->kind == TL_KIND_TRADE) {
        tl_body_trade b;
        if (v->body == NULL || v->body_len < sizeof b) {
            sums_unanchor(r, v->seq); /* the stream names the record */
        } else {
            memcpy(&b, v->body, sizeof b);
            /* ledger.md: Σ(u64)qty and Σ(u64)price × (u64)qty, wrapping. */
            uint64_t qty = (uint64_t)b.qty, notional = (uint64_t)b.price * (uint64_t)b.qty;
            tl_ledger_figs_add_trade(&r->sums.total, qty, notional);
            sums_symbol(r, v->symbol, qty, notional);
        }
    } else if (v->kind == TL_KIND_CHECKPOINT && v->body != NULL &&
               v->body_len >= sizeof(tl_body_checkpoint)) {
        tl_body_checkpoint b;
        memcpy(&b, v->body, sizeof b);
        tl_ledger_figs f = {b.trades_total, b.qty_total, b.notional_total};
        if (!r->sums.anchored) {
            /* ledger.md: a reader that starts mid-log anchors its totals at
             * the first CHECKPOINT (per-symbol figures stay unknown). */
            r->sums.total = f;
            r->sums.anchored = true;
            r->sums.anchor_seq = v->seq;
        } else if (f.trades != r->sums.total.trades || f.qty != r->sums.total.qty ||
                   f.notional != r->sums.total.notional) {
            r->sums.ckpt_mismatch++;
        }
        if (r->peers == RC_SIDE_PENDING && v->seq == r->common_seq) {
            memcpy(r->wal_hash, b.state_hash, TL_STATE_HASH_BYTES);
            r->common_read = true;
        }
    }
    if (r->peers == RC_SIDE_PENDING && v->seq == r->common_seq && !r->common_read)
        r->peers = RC_SIDE_NOT_CHECKPOINT;
    if (r->ledger == RC_SIDE_PENDING && v->seq == r->q->watermark.ledger_seq)
        ledger_judge(r, v);
}

/* After reading: each peer's state hash at the common seq against the WAL's. */
static void side_finish(run *r) {
    if (r->ledger == RC_SIDE_PENDING)
        r->ledger = RC_SIDE_NOT_REACHED;
    if (r->peers != RC_SIDE_PENDING)
        return;
    if (!r->common_read) {
        r->peers = RC_SIDE_NOT_REACHED;
        return;
    }
    uint64_t before = r->mismatch;
    for (uint32_t i = 0; i < r->q->n_peers; i++) {
        const tl_peer_reported *p = &r->q->peers[i];
        if (r->node[i] != RC_SIDE_PENDING)
            continue;
        const uint8_t *h = NULL;
        for (uint32_t j = 0; j < p->count; j++)
            if (p->seq[j] == r->common_seq)
                h = p->hash[j];
        TL_ASSERT(h != NULL); /* common_seq is in every reporting node's list */
        if (memcmp(h, r->wal_hash, TL_STATE_HASH_BYTES) == 0) {
            r->node[i] = RC_SIDE_CONSISTENT;
            continue;
        }
        r->node[i] = RC_SIDE_MISMATCH;
        tl_finding f;
        tl_finding_init(&f, TL_CHECK_STATE_HASH_DIVERGENCE);
        f.source = TL_SOURCE_PEER;
        f.source2 = TL_SOURCE_WAL; /* our durable history */
        f.seq = r->common_seq;
        f.seq2 = r->common_seq;
        memcpy(f.node, p->node_id, TL_ID_BYTES);
        tl_log_emit(r->log, &f);
    }
    r->peers = r->mismatch > before ? RC_SIDE_MISMATCH : RC_SIDE_CONSISTENT;
}

static void side_json(const run *r, tl_jb *b) {
    const tl_reconcile_req *q = r->q;
    const tl_ledger_wm *wm = &q->watermark;
    TL_ASSERT(r->ledger < RC_SIDE_COUNT && r->peers < RC_SIDE_COUNT);
    tl_jb_obj(b, "ledger");
    tl_jb_str(b, "outcome", side_names[r->ledger]);
    if (q->have_watermark && r->ledger != RC_SIDE_NOT_CONFIGURED) {
        char hex[17];
        tl_jb_u64s(b, "ledger_seq", wm->ledger_seq);
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)wm->checksum);
        tl_jb_str(b, "checksum", hex);
        tl_jb_u64s(b, "poll_id", wm->poll_id);
        tl_jb_u64s(b, "recv_real_ns", wm->recv_real_ns);
        tl_jb_obj(b, "watermark");
        tl_jb_u64s(b, "trades", wm->total.trades);
        tl_jb_u64s(b, "qty", wm->total.qty);
        tl_jb_u64s(b, "notional", wm->total.notional);
        tl_jb_int(b, "symbols", wm->symbol_count);
        tl_jb_end(b);
    }
    if (r->ledger == RC_SIDE_CONSISTENT || r->ledger == RC_SIDE_MISMATCH ||
        r->ledger == RC_SIDE_UNANCHORED) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)r->ledger_checksum);
        tl_jb_obj(b, "ours");
        tl_jb_str(b, "checksum", hex);
        if (r->ledger != RC_SIDE_UNANCHORED) {
            tl_jb_u64s(b, "trades", r->ledger_ours.trades);
            tl_jb_u64s(b, "qty", r->ledger_ours.qty);
            tl_jb_u64s(b, "notional", r->ledger_ours.notional);
            tl_jb_u64s(b, "anchor_seq", r->sums.anchor_seq);
        } else {
            tl_jb_u64s(b, "lost_seq", r->sums.lost_seq);
        }
        tl_jb_end(b);
    }
    if (r->ledger == RC_SIDE_CONSISTENT || r->ledger == RC_SIDE_MISMATCH) {
        static const char *const vn[] = {"agree", "double_posting", "missing_posting",
                                         "content_fork", "fork"};
        TL_ASSERT(r->ledger_verdict < TL_ARRAY_LEN(vn) && r->ledger_symbols < RC_SYMS_COUNT);
        tl_jb_str(b, "totals", vn[r->ledger_verdict]);
        if (r->ledger_verdict != TL_LEDGER_AGREE)
            tl_jb_str(
                b, "check",
                tl_check_name(tl_ledger_verdict_check((enum tl_ledger_verdict)r->ledger_verdict)));
        tl_jb_str(b, "symbols", syms_names[r->ledger_symbols]);
        tl_jb_int(b, "symbol_facts", r->ledger_symbol_facts);
    }
    if (r->sums.ckpt_mismatch != 0)
        tl_jb_u64s(b, "checkpoint_mismatches", r->sums.ckpt_mismatch);
    tl_jb_end(b);

    tl_jb_obj(b, "peers");
    tl_jb_str(b, "outcome", side_names[r->peers]);
    if (r->common_seq != 0)
        tl_jb_u64s(b, "common_seq", r->common_seq);
    if (r->common_read)
        tl_jb_hex(b, "wal_state_hash", r->wal_hash, TL_STATE_HASH_BYTES);
    if (r->peers != RC_SIDE_NOT_CONFIGURED && r->peers != RC_SIDE_NOT_APPLICABLE) {
        tl_jb_arr(b, "nodes");
        for (uint32_t i = 0; i < q->n_peers; i++) {
            const tl_peer_reported *p = &q->peers[i];
            uint8_t o = r->node[i] == RC_SIDE_PENDING ? r->peers : r->node[i];
            TL_ASSERT(o < RC_SIDE_COUNT);
            tl_jb_obj(b, NULL);
            tl_jb_hex(b, "node", p->node_id, TL_ID_BYTES);
            tl_jb_str(b, "outcome", side_names[o]);
            if (p->count > 0)
                tl_jb_u64s(b, "last_checkpoint_seq", p->seq[0]);
            if (o == RC_SIDE_MISMATCH || o == RC_SIDE_CONSISTENT) {
                for (uint32_t j = 0; j < p->count; j++)
                    if (p->seq[j] == r->common_seq)
                        tl_jb_hex(b, "state_hash", p->hash[j], TL_STATE_HASH_BYTES);
            }
            tl_jb_end(b);
        }
        tl_jb_end(b);
    }
    tl_jb_end(b);
}

/* Native: the io_uring tailer (its own ring) into a private stream, as the
 * hot loop reads it, stopping past to_seq or at the end of the log. */
static void run_native(run *r) {
    uint64_t win_records = r->cfg->window_records != 0 ? r->cfg->window_records : (1u << 16);
    void *win = aligned_alloc(64, tl_window_bytes(win_records));
    if (win == NULL) {
        snprintf(r->error, sizeof r->error, "out of memory");
        return;
    }
    tl_log log;
    tl_stream st;
    tl_log_init(&log, TL_DIALECT_TLYWAL1, win, win_records, (tl_sink){rc_emit, r});
    tl_stream_init(&st, &log, TL_SOURCE_WAL);
    r->log = &log;

    tl_wal_tail_cfg tc;
    tl_wal_tail_cfg_default(&tc);
    tc.dir = r->cfg->wal_dir;
    tc.start_seq = r->q->from_seq;
    tc.no_register = true; /* the hot loop's buffers keep the memlock budget */
    tl_wal_ioerr ioerr = {0};
    tl_wal_tail *t = NULL;
    enum tl_wal_err e = tl_wal_tail_open(&t, &tc, &ioerr);
    if (e != TL_WAL_OK) {
        snprintf(r->error, sizeof r->error, "%s: %s (%s: %s)", r->cfg->wal_dir, tl_wal_err_name(e),
                 ioerr.op != NULL ? ioerr.op : "-",
                 ioerr.sys_errno != 0 ? strerror(ioerr.sys_errno) : "-");
        free(win);
        return;
    }
    uint64_t last_event_ns = clock_ns(CLOCK_MONOTONIC);
    bool first_record = true;
    bool done = false;
    while (!done && !cancelled(r)) {
        tl_wal_ev ev;
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        if (!tl_wal_tail_poll(t, &ev)) {
            tl_wal_tail_stats ts;
            tl_wal_tail_get_stats(t, &ts);
            if (ts.state == TL_WAL_TAIL_ST_IO_ERROR) {
                snprintf(r->error, sizeof r->error, "segment %llu: %s: %s",
                         (unsigned long long)ts.last_ioerr_segment,
                         ts.last_ioerr.op != NULL ? ts.last_ioerr.op : "-",
                         strerror(ts.last_ioerr.sys_errno));
                break;
            }
            if (now - last_event_ns > RC_STALL_NS) {
                snprintf(r->note, sizeof r->note, "no more records after %llu s",
                         (unsigned long long)(RC_STALL_NS / 1000000000ull));
                break;
            }
            struct timespec ts_sleep = {0, 200000};
            nanosleep(&ts_sleep, NULL);
            continue;
        }
        last_event_ns = now;
        log.now_ns = now;
        switch (ev.type) {
            case TL_WAL_EV_SEGMENT:
                tl_stream_segment(&st, ev.hdr, ev.name_first_seq, &ev.loc);
                break;
            case TL_WAL_EV_RECORD:
                if (ev.view.seq > r->q->to_seq) {
                    done = true;
                    break;
                }
                if (first_record && ev.view.seq > r->q->from_seq && r->q->from_seq > 1) {
                    /* The tailer starts in the segment holding from_seq, or
                     * the lowest one present: these seqs are gone. */
                    snprintf(r->error, sizeof r->error,
                             "the WAL begins at seq %llu, after from_seq %llu (not retained)",
                             (unsigned long long)ev.view.seq, (unsigned long long)r->q->from_seq);
                    done = true;
                    break;
                }
                first_record = false;
                native_symbol(r, &ev.view);
                (void)tl_stream_record(&st, &ev.view, &ev.loc);
                side_record(r, &ev.view);
                saw_record(r, ev.view.seq);
                break;
            case TL_WAL_EV_CORRUPT: {
                tl_finding f;
                tl_finding_init(&f, TL_CHECK_WAL_CORRUPT);
                f.source = TL_SOURCE_WAL;
                f.rule = ev.rule;
                f.reason = ev.reason;
                f.seq = ev.seq;
                f.segment = ev.loc.segment;
                f.offset = ev.loc.offset;
                f.checksum = ev.checksum;
                tl_log_emit(&log, &f);
                if (ev.rule == TL_RULE_FIELDS)
                    tl_stream_step_over(&st, ev.seq, ev.checksum);
                else if (ev.reason >= TL_REASON_SEG_BASE && ev.reason < TL_REASON_SEGMENT_INDEX)
                    tl_stream_segment_unreadable(&st);
                else
                    tl_stream_reanchor(&st);
                break;
            }
            case TL_WAL_EV_TENTATIVE:
                /* The newest segment's tail is still being written (or was
                 * torn by a crash the engine's recovery will truncate). */
                snprintf(r->note, sizeof r->note, "the log ends in a tentative record at seq %llu",
                         (unsigned long long)ev.seq);
                done = true;
                break;
            case TL_WAL_EV_CAUGHT_UP:
                done = true;
                break;
            default:
                break;
        }
    }
    if (r->error[0] == '\0' && r->records == 0 && !cancelled(r))
        snprintf(r->error, sizeof r->error, "no record of the scope in the WAL");
    log.now_ns = clock_ns(CLOCK_MONOTONIC);
    side_finish(r);
    r->log = NULL; /* the log lives on this stack frame */
    tl_wal_tail_close(t);
    free(win);
}

/* ---- xwal1: whole segment files through io_uring ---- */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Reads a whole file with io_uring reads of at most 1 MiB; the buffer is
 * the caller's to free. */
static int uring_read_file(struct io_uring *ring, int dirfd, const char *name, uint8_t **out,
                           size_t *len, char *err, size_t cap) {
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, cap, "%s: open: %s", name, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size > RC_XWAL1_SEG_BYTES) {
        snprintf(err, cap, "%s: %s", name, errno != 0 ? strerror(errno) : "too large");
        close(fd);
        return -1;
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = malloc(n > 0 ? n : 1);
    if (buf == NULL) {
        snprintf(err, cap, "%s: out of memory", name);
        close(fd);
        return -1;
    }
    size_t off = 0;
    while (off < n) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        TL_ASSERT(sqe != NULL); /* one read in flight at a time */
        unsigned chunk = n - off > (1u << 20) ? (1u << 20) : (unsigned)(n - off);
        io_uring_prep_read(sqe, fd, buf + off, chunk, off);
        int rc = io_uring_submit(ring);
        struct io_uring_cqe *cqe = NULL;
        if (rc >= 0)
            rc = io_uring_wait_cqe(ring, &cqe);
        if (rc < 0) {
            snprintf(err, cap, "%s: io_uring: %s", name, strerror(-rc));
            break;
        }
        int res = cqe->res;
        io_uring_cqe_seen(ring, cqe);
        if (res == -EINTR || res == -EAGAIN)
            continue;
        if (res <= 0) {
            snprintf(err, cap, "%s: read: %s", name, res == 0 ? "short file" : strerror(-res));
            break;
        }
        off += (size_t)res;
    }
    close(fd);
    if (off < n) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static void run_xwal1(run *r) {
    DIR *dir = opendir(r->cfg->wal_dir);
    if (dir == NULL) {
        snprintf(r->error, sizeof r->error, "%s: %s", r->cfg->wal_dir, strerror(errno));
        return;
    }
    uint64_t *idx = malloc(RC_XWAL1_SEGS_MAX * sizeof *idx);
    uint32_t n = 0;
    struct dirent *de;
    while (idx != NULL && (de = readdir(dir)) != NULL) {
        uint64_t i;
        if (tl_xwal1_segment_name_parse(de->d_name, strlen(de->d_name), &i)) {
            if (n == RC_XWAL1_SEGS_MAX) {
                snprintf(r->error, sizeof r->error, "more than %u segments", RC_XWAL1_SEGS_MAX);
                break;
            }
            idx[n++] = i;
        }
    }
    tl_xwal1_verify_cfg vc = {.max_symbols = 256, .window_records = 1u << 12, .strict = false};
    size_t vbytes = tl_xwal1_verifier_bytes(&vc);
    void *vmem = aligned_alloc(64, (vbytes + 63) & ~(size_t)63);
    tl_xwal1_verifier *v = malloc(sizeof *v);
    struct io_uring ring;
    int urc = io_uring_queue_init(4, &ring, 0);
    if (idx == NULL || vmem == NULL || v == NULL || urc < 0) {
        if (r->error[0] == '\0')
            snprintf(r->error, sizeof r->error, "%s",
                     urc < 0 ? "io_uring_queue_init failed" : "out of memory");
        goto out_ring;
    }
    if (r->error[0] != '\0')
        goto out_ring;
    qsort(idx, n, sizeof *idx, cmp_u64);
    TL_ASSERT(tl_xwal1_verifier_init(v, &vc, vmem, vbytes, (tl_sink){rc_emit, r}));
    r->xsyms = &v->symtab;
    int dfd = dirfd(dir);
    for (uint32_t k = 0; k < n && !cancelled(r); k++) {
        char name[64];
        tl_xwal1_segment_name(name, sizeof name, idx[k]);
        uint8_t *bytes = NULL;
        size_t len = 0;
        if (uring_read_file(&ring, dfd, name, &bytes, &len, r->error, sizeof r->error) != 0)
            break;
        tl_xwal1_verifier_segment(v, idx[k], bytes, len, k + 1 == n);
        free(bytes);
        const tl_xwal1_summary *s = tl_xwal1_verifier_summary(v);
        atomic_store_explicit(&r->progress->records, s->records, memory_order_relaxed);
    }
    {
        const tl_xwal1_summary *s = tl_xwal1_verifier_summary(v);
        /* xwal1 seqs are per symbol: every record of the scope's symbols counts. */
        for (uint32_t id = 1; id <= v->symtab.count; id++) {
            const tl_xwal1_sym_summary *ss = tl_xwal1_verifier_symbol(v, id);
            if (ss != NULL && symbol_in_scope(r, id)) {
                r->records += ss->records;
                if (ss->last_seq > r->last_seq)
                    r->last_seq = ss->last_seq;
            }
        }
        if (s->tentative)
            snprintf(r->note, sizeof r->note, "the newest segment ends in a tentative frame (%s)",
                     tl_xwal1_err_name((enum tl_xwal1_err)s->tentative_err));
        if (r->error[0] == '\0' && n == 0)
            snprintf(r->error, sizeof r->error, "no segment in %s", r->cfg->wal_dir);
    }
    r->xsyms = NULL;
out_ring:
    if (urc >= 0)
        io_uring_queue_exit(&ring);
    free(v);
    free(vmem);
    free(idx);
    closedir(dir);
}

/* ---- the result line ---- */

static void result_json(const run *r, const char *id, uint8_t status, uint64_t started,
                        uint64_t finished, tl_jb *b) {
    const tl_reconcile_cfg *c = r->cfg;
    tl_jb_obj(b, NULL);
    tl_jb_str(b, "id", id);
    tl_jb_str(b, "instance_id", c->instance_id);
    tl_jb_obj(b, "scope");
    tl_jb_u64s(b, "from_seq", r->q->from_seq);
    tl_jb_u64s(b, "to_seq", r->q->to_seq);
    tl_jb_arr(b, "symbols");
    for (uint32_t i = 0; i < r->q->n_symbols; i++)
        tl_jb_str(b, NULL, r->q->symbols[i]);
    tl_jb_end(b);
    tl_jb_end(b);
    tl_jb_str(b, "status", tl_rc_status_name(status));
    tl_jb_obj(b, "findings");
    for (unsigned k = 0; k < TL_CLASS_COUNT; k++)
        tl_jb_int(b, tl_class_name(1u << k), (int64_t)r->by_class[k]);
    tl_jb_end(b);
    tl_jb_int(b, "mismatch_findings", (int64_t)r->mismatch);
    tl_jb_int(b, "info_findings", (int64_t)r->info);
    tl_jb_obj(b, "by_check");
    for (unsigned k = 1; k < TL_CHECK_COUNT; k++)
        if (r->by_check[k] != 0)
            tl_jb_int(b, tl_check_name((enum tl_check)k), (int64_t)r->by_check[k]);
    tl_jb_end(b);
    tl_jb_str(b, "dialect", c->dialect == TL_DIALECT_XWAL1 ? "xwal1" : "tlywal1");
    tl_jb_u64s(b, "records", r->records);
    tl_jb_u64s(b, "checked_from_seq", r->first_seq);
    tl_jb_u64s(b, "checked_to_seq", r->last_seq);
    side_json(r, b);
    tl_jb_u64s(b, "started_ns", started);
    tl_jb_u64s(b, "finished_ns", finished);
    if (r->note[0] != '\0')
        tl_jb_str(b, "note", r->note);
    if (r->error[0] != '\0')
        tl_jb_str(b, "error", r->error);
    tl_jb_arr(b, "first_findings");
    char fj[1024];
    for (uint32_t i = 0; i < r->n_first; i++) {
        size_t n = tl_finding_json(&r->first[i], fj, sizeof fj);
        tl_jb_raw(b, NULL, fj, n);
    }
    tl_jb_end(b);
    tl_jb_end(b);
}

uint8_t tl_reconcile_run(const tl_reconcile_cfg *cfg, const tl_reconcile_req *q, const char *id,
                         uint64_t started_real_ns, char *line, size_t cap, tl_rc_done *done,
                         tl_rc_progress *progress) {
    TL_ASSERT(q->from_seq >= 1 && q->to_seq >= q->from_seq && q->n_symbols <= TL_RC_SYMBOLS);
    run *r = calloc(1, sizeof *r);
    TL_ASSERT(r != NULL); /* a few KiB, on the worker */
    r->cfg = cfg;
    r->q = q;
    r->progress = progress;
    side_plan(r);
    if (cfg->dialect == TL_DIALECT_XWAL1)
        run_xwal1(r);
    else
        run_native(r);
    /* A run that stopped early (the WAL could not be opened) never got there. */
    if (r->ledger == RC_SIDE_PENDING)
        r->ledger = RC_SIDE_NOT_REACHED;
    if (r->peers == RC_SIDE_PENDING)
        r->peers = RC_SIDE_NOT_REACHED;
    uint8_t status = r->error[0] != '\0' ? TL_RC_ERROR
                     : r->mismatch > 0   ? TL_RC_MISMATCH
                                         : TL_RC_CONSISTENT;
    if (r->error[0] != '\0' && r->mismatch > 0)
        status = TL_RC_MISMATCH; /* what was read disagrees: that is the news */
    tl_jb b;
    tl_jb_init(&b, line, cap);
    result_json(r, id, status, started_real_ns, clock_ns(CLOCK_REALTIME), &b);
    size_t len;
    if (tl_jb_done(&b, &len) == NULL) {
        /* Cannot happen within TL_RC_LINE_MAX (bounded members); stay safe. */
        r->n_first = 0;
        tl_jb_init(&b, line, cap);
        result_json(r, id, status, started_real_ns, clock_ns(CLOCK_REALTIME), &b);
    }
    if (done != NULL) {
        memset(done, 0, sizeof *done);
        snprintf(done->id, sizeof done->id, "%s", id);
        done->status = status;
        done->findings = r->mismatch;
        done->records = r->records;
        done->from_seq = q->from_seq;
        done->to_seq = q->to_seq;
    }
    free(r);
    return status;
}

/* ---- the worker and the kept results ---- */

typedef struct queued {
    char id[TL_RC_ID_MAX];
    tl_reconcile_req q;
    uint64_t submitted_ns;
} queued;

struct tl_reconcile {
    tl_reconcile_cfg cfg;
    char state_dir[512];
    char wal_dir[512];
    char instance[40];
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    /* under mu */
    queued queue[TL_RC_QUEUE];
    uint32_t q_head;
    uint32_t q_count;
    bool running;
    queued cur;
    uint64_t cur_started_ns;
    tl_rc_progress progress;
    char (*lines)[TL_RC_LINE_MAX];
    char (*ids)[TL_RC_ID_MAX];
    uint8_t *status;
    uint32_t k_head;
    uint32_t k_count;
    tl_rc_done done[RC_DONE_MAX];
    uint32_t d_head;
    uint32_t d_count;
    uint64_t counter;
    int fd;
    uint64_t write_errors;
    char line[TL_RC_LINE_MAX]; /* the worker's */
};

static void keep(tl_reconcile *r, const char *id, uint8_t status, const char *line) {
    if (r->k_count == TL_RC_KEEP) {
        r->k_head = (r->k_head + 1) % TL_RC_KEEP;
        r->k_count--;
    }
    uint32_t i = (r->k_head + r->k_count) % TL_RC_KEEP;
    snprintf(r->ids[i], TL_RC_ID_MAX, "%s", id);
    snprintf(r->lines[i], TL_RC_LINE_MAX, "%s", line);
    r->status[i] = status;
    r->k_count++;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *worker(void *arg) {
    tl_reconcile *r = arg;
    /* Low priority: the hot loop and the control thread come first. */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->stop && r->q_count == 0)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->stop)
            break;
        r->cur = r->queue[r->q_head];
        r->q_head = (r->q_head + 1) % TL_RC_QUEUE;
        r->q_count--;
        r->running = true;
        r->cur_started_ns = clock_ns(CLOCK_REALTIME);
        atomic_store_explicit(&r->progress.records, 0, memory_order_relaxed);
        atomic_store_explicit(&r->progress.last_seq, 0, memory_order_relaxed);
        queued job = r->cur;
        uint64_t started = r->cur_started_ns;
        pthread_mutex_unlock(&r->mu);

        tl_rc_done d;
        uint8_t st = tl_reconcile_run(&r->cfg, &job.q, job.id, started, r->line, sizeof r->line, &d,
                                      &r->progress);
        bool abandoned = atomic_load_explicit(&r->progress.cancel, memory_order_relaxed);
        if (!abandoned) {
            size_t n = strlen(r->line);
            r->line[n] = '\n';
            if (r->fd < 0 || write_all(r->fd, r->line, n + 1) != 0 || fdatasync(r->fd) != 0)
                r->write_errors++;
            r->line[n] = '\0';
        }

        pthread_mutex_lock(&r->mu);
        r->running = false;
        if (!abandoned) {
            keep(r, job.id, st, r->line);
            if (r->d_count == RC_DONE_MAX) {
                r->d_head = (r->d_head + 1) % RC_DONE_MAX;
                r->d_count--;
            }
            r->done[(r->d_head + r->d_count) % RC_DONE_MAX] = d;
            r->d_count++;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Reads the results file back: the newest TL_RC_KEEP valid lines. */
static void load(tl_reconcile *r, const char *path) {
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return;
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && (uint64_t)sb.st_size > RC_FILE_READ_MAX)
        (void)fseeko(f, sb.st_size - (off_t)RC_FILE_READ_MAX, SEEK_SET);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] == '\n')
            line[--n] = '\0';
        if ((size_t)n >= TL_RC_LINE_MAX)
            continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)n);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
        if (cJSON_IsString(id) && cJSON_IsString(st) && strlen(id->valuestring) < TL_RC_ID_MAX &&
            tl_rc_status_parse(st->valuestring) >= TL_RC_CONSISTENT)
            keep(r, id->valuestring, (uint8_t)tl_rc_status_parse(st->valuestring), line);
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
}

int tl_reconcile_start(tl_reconcile **out, const tl_reconcile_cfg *cfg, char *err, size_t cap) {
    *out = NULL;
    tl_reconcile *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, cap, "reconcile: out of memory");
        return -1;
    }
    r->fd = -1;
    r->lines = calloc(TL_RC_KEEP, TL_RC_LINE_MAX);
    r->ids = calloc(TL_RC_KEEP, TL_RC_ID_MAX);
    r->status = calloc(TL_RC_KEEP, 1);
    if (r->lines == NULL || r->ids == NULL || r->status == NULL) {
        snprintf(err, cap, "reconcile: out of memory");
        tl_reconcile_stop(r);
        return -1;
    }
    snprintf(r->state_dir, sizeof r->state_dir, "%s", cfg->state_dir);
    snprintf(r->wal_dir, sizeof r->wal_dir, "%s", cfg->wal_dir);
    snprintf(r->instance, sizeof r->instance, "%s", cfg->instance_id);
    r->cfg = *cfg;
    r->cfg.state_dir = r->state_dir;
    r->cfg.wal_dir = r->wal_dir;
    r->cfg.instance_id = r->instance;
    atomic_init(&r->progress.records, 0);
    atomic_init(&r->progress.last_seq, 0);
    atomic_init(&r->progress.cancel, false);
    char path[600];
    snprintf(path, sizeof path, "%s/results.jsonl", r->state_dir);
    load(r, path);
    r->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (r->fd < 0) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        tl_reconcile_stop(r);
        return -1;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (pthread_create(&r->th, NULL, worker, r) != 0) {
        snprintf(err, cap, "reconcile: cannot start the worker");
        tl_reconcile_stop(r);
        return -1;
    }
    r->started = true;
    *out = r;
    return 0;
}

void tl_reconcile_stop(tl_reconcile *r) {
    if (r == NULL)
        return;
    if (r->started) {
        /* Relaxed: the run checks it between reads; the join orders the rest. */
        atomic_store_explicit(&r->progress.cancel, true, memory_order_relaxed);
        pthread_mutex_lock(&r->mu);
        r->stop = true;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->th, NULL);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
    }
    if (r->fd >= 0)
        close(r->fd);
    free(r->lines);
    free(r->ids);
    free(r->status);
    free(r);
}

int tl_reconcile_submit(tl_reconcile *r, const tl_reconcile_req *q, uint64_t now_real_ns,
                        char id_out[TL_RC_ID_MAX]) {
    pthread_mutex_lock(&r->mu);
    if (r->q_count == TL_RC_QUEUE) {
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    queued *j = &r->queue[(r->q_head + r->q_count) % TL_RC_QUEUE];
    memset(j, 0, sizeof *j);
    /* Unique across restarts: this instance's id, then a counter. */
    snprintf(j->id, sizeof j->id, "rc-%.8s-%llu", r->instance, (unsigned long long)++r->counter);
    j->q = *q;
    j->submitted_ns = now_real_ns;
    r->q_count++;
    snprintf(id_out, TL_RC_ID_MAX, "%s", j->id);
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

bool tl_reconcile_poll_done(tl_reconcile *r, tl_rc_done *out) {
    pthread_mutex_lock(&r->mu);
    bool got = r->d_count > 0;
    if (got) {
        *out = r->done[r->d_head];
        r->d_head = (r->d_head + 1) % RC_DONE_MAX;
        r->d_count--;
    }
    pthread_mutex_unlock(&r->mu);
    return got;
}

void tl_reconcile_json_results(tl_reconcile *r, int status, uint32_t limit, tl_jb *b) {
    pthread_mutex_lock(&r->mu);
    tl_jb_arr(b, "results");
    uint32_t n = 0;
    for (uint32_t k = r->k_count; k > 0 && n < limit; k--) {
        uint32_t i = (r->k_head + k - 1) % TL_RC_KEEP;
        if (status >= 0 && r->status[i] != (uint8_t)status)
            continue;
        tl_jb_raw(b, NULL, r->lines[i], strlen(r->lines[i]));
        n++;
    }
    tl_jb_end(b);
    tl_jb_int(b, "pending", r->q_count + (r->running ? 1 : 0));
    pthread_mutex_unlock(&r->mu);
}

static void scope_json(const tl_reconcile_req *q, tl_jb *b) {
    tl_jb_obj(b, "scope");
    tl_jb_u64s(b, "from_seq", q->from_seq);
    tl_jb_u64s(b, "to_seq", q->to_seq);
    tl_jb_arr(b, "symbols");
    for (uint32_t i = 0; i < q->n_symbols; i++)
        tl_jb_str(b, NULL, q->symbols[i]);
    tl_jb_end(b);
    tl_jb_end(b);
}

bool tl_reconcile_json_one(tl_reconcile *r, const char *id, tl_jb *b) {
    bool found = false;
    pthread_mutex_lock(&r->mu);
    if (r->running && strcmp(r->cur.id, id) == 0) {
        tl_jb_str(b, "id", id);
        tl_jb_str(b, "status", "RUNNING");
        scope_json(&r->cur.q, b);
        tl_jb_u64s(b, "started_ns", r->cur_started_ns);
        tl_jb_u64s(b, "records", atomic_load_explicit(&r->progress.records, memory_order_relaxed));
        tl_jb_u64s(b, "last_seq",
                   atomic_load_explicit(&r->progress.last_seq, memory_order_relaxed));
        found = true;
    }
    for (uint32_t k = 0; !found && k < r->q_count; k++) {
        const queued *j = &r->queue[(r->q_head + k) % TL_RC_QUEUE];
        if (strcmp(j->id, id) == 0) {
            tl_jb_str(b, "id", id);
            tl_jb_str(b, "status", "QUEUED");
            scope_json(&j->q, b);
            tl_jb_int(b, "position", k + 1);
            found = true;
        }
    }
    for (uint32_t k = r->k_count; !found && k > 0; k--) {
        uint32_t i = (r->k_head + k - 1) % TL_RC_KEEP;
        if (strcmp(r->ids[i], id) == 0) {
            tl_jb_raw(b, "result", r->lines[i], strlen(r->lines[i]));
            tl_jb_str(b, "id", id);
            tl_jb_str(b, "status", tl_rc_status_name(r->status[i]));
            found = true;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}
