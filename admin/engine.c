/* engine.c: libtally_engine (see libtally_engine.h): open and recovery, the
 * append path, the mode checks, poll (admin socket, dead-man), the heartbeat
 * thread, close. The fault injection lives in engine_fault.c.
 *
 * Open, in this order, and why:
 *   1. keys, then the engine id (the ring header and the segment headers
 *      carry it);
 *   2. the mode table and the admin server: the server holds the remembered
 *      command ids, which recovery fills (the socket is bound, but nothing
 *      is read before the first tl_engine_poll);
 *   3. the pre-scan: the offline reader walks the log, refuses it on any
 *      finding, and feeds SYMBOL and MODE_CHANGE records to the mode table
 *      and the server, and every record to ops.replay. It must come before
 *      the writer opens, because the writer may ask for the openers (the
 *      symbols and their modes) while it recovers;
 *   4. the writer: cuts the torn tail (where the pre-scan stopped: both use
 *      the same reader), and takes the directory lock;
 *   5. the ring: a new incarnation whose wal_durable_* is the recovered end
 *      of the log, created before anything is published;
 *   6. the heartbeat thread; then the SYMBOL records the log lacks and the
 *      LEADER_CHANGE the configured fence asks for, both published.
 *
 * Invariants:
 *   - every record the writer appends after step 5 is published on the ring
 *     exactly once, in seq order, by on_record, before tl_engine_append
 *     returns (faults excepted: that is their point);
 *   - the admin mode table changes only after its MODE_CHANGE was appended
 *     (engine_server.c), except the dead-man fallback when the writer has
 *     already failed: then the engine fails safe without a record;
 *   - wal_durable_* on the ring only grows: on_durable is called in
 *     increasing order from one thread.
 */
#include "admin/engine_int.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"
#include "io/wal_dir.h"
#include "io/wal_reader.h"

static const char *const err_names[] = {
    [TL_ENGINE_OK] = "ok",
    [TL_ENGINE_ERR_CONFIG] = "bad_config",
    [TL_ENGINE_ERR_NOMEM] = "out_of_memory",
    [TL_ENGINE_ERR_ENGINE_ID] = "engine_id",
    [TL_ENGINE_ERR_KEY] = "key",
    [TL_ENGINE_ERR_ADMIN] = "admin_socket",
    [TL_ENGINE_ERR_WAL] = "wal",
    [TL_ENGINE_ERR_WAL_CORRUPT] = "wal_corrupt",
    [TL_ENGINE_ERR_WAL_STATE] = "wal_state",
    [TL_ENGINE_ERR_RING] = "ring",
    [TL_ENGINE_ERR_SYMBOL] = "bad_symbol",
    [TL_ENGINE_ERR_KIND] = "bad_kind",
    [TL_ENGINE_ERR_RECORD] = "bad_record",
    [TL_ENGINE_ERR_FENCE] = "fence",
    [TL_ENGINE_ERR_CALLBACK] = "callback",
    [TL_ENGINE_ERR_FAULT] = "fault",
};
_Static_assert(TL_ARRAY_LEN(err_names) == TL_ENGINE_ERR_COUNT, "a name per error");

const char *tl_engine_err_name(enum tl_engine_err e) {
    return (unsigned)e < TL_ARRAY_LEN(err_names) ? err_names[e] : "?";
}

void tl_engine_config_default(tl_engine_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->segment_bytes = TL_WAL_DEFAULT_SEGMENT_BYTES;
    cfg->staging_bytes = TL_WAL_DEFAULT_STAGING_BYTES;
    cfg->group_max_bytes = TL_WAL_DEFAULT_GROUP_BYTES;
    cfg->group_max_records = TL_WAL_DEFAULT_GROUP_RECORDS;
    cfg->group_max_delay_ns = TL_WAL_DEFAULT_GROUP_DELAY_NS;
    cfg->sync_thread = true;
    cfg->recovery_full_scan = true;
    cfg->ring_capacity = TL_RING_DEFAULT_CAPACITY;
    cfg->beat_ms = TL_ENGINE_DEFAULT_BEAT_MS;
    cfg->deadman_ms = TL_ENGINE_DEFAULT_DEADMAN_MS;
    cfg->deadman_fallback = TL_ENGINE_FALLBACK_SAFE_MODE;
    cfg->fence = 1;
    cfg->max_symbols = TL_ENGINE_DEFAULT_MAX_SYMBOLS;
}

/* ------------------------------------------------------------------ */
/* clocks, errors                                                      */

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    int rc = clock_gettime(id, &ts);
    TL_ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t tl_eng_record_ts(tl_engine *e) {
    if (e->ops.now_real_ns != NULL)
        return e->ops.now_real_ns(e->ops.ctx);
    return clock_ns(CLOCK_REALTIME);
}

enum tl_engine_err tl_eng_wal_rc(tl_engine *e, enum tl_wal_err rc) {
    switch (rc) {
        case TL_WAL_OK:
            return TL_ENGINE_OK;
        case TL_WAL_ERR_KIND:
            return TL_ENGINE_ERR_KIND;
        case TL_WAL_ERR_RECORD:
        case TL_WAL_ERR_TOO_BIG:
            return TL_ENGINE_ERR_RECORD; /* the caller's record: nothing broke */
        case TL_WAL_ERR_FENCE:
            return TL_ENGINE_ERR_FENCE;
        default:
            break;
    }
    /* Anything else means the writer cannot go on (I/O, a fault hook). */
    if (!e->wal_failed) {
        e->wal_failed = true;
        e->wal_err = rc;
    }
    return TL_ENGINE_ERR_WAL;
}

static void set_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t cap, const char *fmt, ...) {
    if (err == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* the writer's callbacks                                              */

static uint32_t wal_symbols(void *ctx, tl_wal_opener_symbol *out, uint32_t cap) {
    tl_engine *e = ctx;
    const tl_admin_modes *m = &e->modes;
    TL_ASSERT(m->count <= cap); /* both sized by cfg.max_symbols */
    for (uint32_t i = 0; i < m->count; i++) {
        const tl_admin_symbol *s = &m->symbols[i];
        memset(&out[i], 0, sizeof out[i]);
        out[i].symbol = s->id;
        out[i].mode = s->mode;
        out[i].withdrawals_halted = m->withdrawals_halted ? 1u : 0u;
        memcpy(out[i].name, s->name, s->name_len);
    }
    return m->count;
}

static void wal_global_mode(void *ctx, uint32_t *mode, uint32_t *withdrawals_halted) {
    tl_engine *e = ctx;
    *mode = e->modes.global_mode;
    *withdrawals_halted = e->modes.withdrawals_halted ? 1u : 0u;
}

/* Every record the writer appends, openers included, right after it is
 * encoded: publish it. Engine thread. */
static void wal_on_record(void *ctx, const uint8_t *rec, uint32_t len) {
    tl_engine *e = ctx;
    /* Records written inside tl_wal_open (a new log's openers, a repair)
     * are durable before the ring exists; tally reads them from the WAL. */
    if (e->ring == NULL)
        return;
    e->records_published++;
    if (__builtin_expect(e->ring_hook, 0)) {
        tl_eng_fault_on_record(e, rec, len);
        return;
    }
    tl_ring_publish(e->ring, rec, len);
}

/* After each fdatasync: the seqlock writer of wal_durable_*. The sync
 * thread (or the engine thread without one); never concurrently with
 * itself, in increasing order, so the ring's single-writer rule holds.
 * e->ring was set before the first append, and the writer's release store
 * of its staging head (acquired by the sync thread) orders it. */
static void wal_on_durable(void *ctx, uint64_t durable_seq, uint64_t segment_first_seq,
                           uint64_t durable_offset) {
    tl_engine *e = ctx;
    TL_ASSERT(e->ring != NULL);
    tl_ring_set_durable(e->ring, durable_seq, segment_first_seq, durable_offset);
}

/* ------------------------------------------------------------------ */
/* the append path                                                     */

enum tl_engine_err tl_eng_append(tl_engine *e, uint16_t kind, uint32_t symbol, const void *body,
                                 uint32_t body_len, uint64_t ts_ns, uint64_t *seq) {
    if (__builtin_expect(e->wal_failed, 0))
        return TL_ENGINE_ERR_WAL;
    if (__builtin_expect(e->fault_hot, 0))
        return tl_eng_fault_append(e, kind, symbol, body, body_len, ts_ns, seq);
    tl_wal_appended out;
    enum tl_wal_err rc = tl_wal_append(e->wal, kind, symbol, body, body_len, ts_ns, &out);
    if (rc != TL_WAL_OK)
        return tl_eng_wal_rc(e, rc);
    if (seq != NULL)
        *seq = out.seq;
    return TL_ENGINE_OK;
}

enum tl_engine_err tl_engine_append(tl_engine *e, uint16_t kind, uint32_t symbol, const void *body,
                                    uint32_t body_len, uint64_t ts_ns, uint64_t *seq) {
    if (kind == TL_KIND_INVALID || kind == TL_KIND_PAD || kind == TL_KIND_MODE_CHANGE ||
        kind == TL_KIND_SYMBOL || kind == TL_KIND_LEADER_CHANGE)
        return TL_ENGINE_ERR_KIND;
    return tl_eng_append(e, kind, symbol, body, body_len, ts_ns, seq);
}

/* ------------------------------------------------------------------ */
/* modes                                                               */

uint32_t tl_engine_fast_mode(const tl_engine *e, uint32_t symbol) {
    return tl_ring_effective_mode(e->ring, symbol);
}

uint32_t tl_engine_mode(const tl_engine *e, uint32_t symbol) {
    uint32_t a = tl_admin_modes_effective(&e->modes, symbol);
    uint32_t f = tl_ring_effective_mode(e->ring, symbol);
    return a > f ? a : f;
}

uint64_t tl_engine_fast_epoch(const tl_engine *e) {
    return tl_ring_fast_epoch(e->ring);
}

bool tl_engine_withdrawals_halted(const tl_engine *e) {
    return e->modes.withdrawals_halted || tl_ring_withdrawals_halted(e->ring);
}

/* Writes a MODE_CHANGE and tells the engine. */
static enum tl_engine_err write_mode_change(tl_engine *e, uint32_t scope, uint32_t mode, bool wd,
                                            const uint8_t id[TL_ID_BYTES], uint64_t *seq) {
    tl_body_mode_change b;
    memset(&b, 0, sizeof b);
    b.mode = mode;
    b.withdrawals_halted = wd ? 1u : 0u;
    memcpy(b.command_id, id, TL_ID_BYTES);
    uint64_t s = 0;
    enum tl_engine_err rc =
        tl_eng_append(e, TL_KIND_MODE_CHANGE, scope, &b, sizeof b, tl_eng_record_ts(e), &s);
    if (rc != TL_ENGINE_OK)
        return rc;
    if (seq != NULL)
        *seq = s;
    if (e->ops.on_mode_change != NULL)
        e->ops.on_mode_change(e->ops.ctx, scope, mode, wd, id, s);
    return TL_ENGINE_OK;
}

/* ------------------------------------------------------------------ */
/* the admin server's callbacks (inside tl_engine_poll)                */

static int srv_write_mode_change(void *ctx, uint32_t scope, enum tl_mode mode,
                                 bool withdrawals_halted, const uint8_t command_id[TL_ID_BYTES],
                                 uint64_t *applied_seq) {
    tl_engine *e = ctx;
    return write_mode_change(e, scope, (uint32_t)mode, withdrawals_halted, command_id,
                             applied_seq) == TL_ENGINE_OK
               ? 0
               : -1;
}

static int srv_cancel_all(void *ctx, uint32_t scope, const uint8_t command_id[TL_ID_BYTES]) {
    (void)command_id;
    tl_engine *e = ctx;
    if (e->ops.cancel_all == NULL)
        return -1;
    return e->ops.cancel_all(e->ops.ctx, scope) == 0 ? 0 : -1;
}

static void srv_on_line(void *ctx, enum tl_admin_cmd cmd, const uint8_t *command_id,
                        uint64_t arrival_mono_ns) {
    tl_engine *e = ctx;
    if (e->ops.on_admin_line != NULL)
        e->ops.on_admin_line(e->ops.ctx, tl_admin_cmd_name(cmd), command_id, arrival_mono_ns);
}

/* ------------------------------------------------------------------ */
/* dead-man                                                            */

static const uint8_t zero_id[TL_ID_BYTES];

/* ring.md: SAFE_MODE (global CANCEL_ONLY) or FLATTEN (cancel_all, then
 * CANCEL_ONLY), recorded as a MODE_CHANGE with a zero command_id. The
 * table is raised even if the record cannot be written: fail safe. */
static enum tl_engine_err deadman_fallback(tl_engine *e) {
    e->deadman_fallbacks++;
    enum tl_engine_err rc = TL_ENGINE_OK;
    if (e->cfg.deadman_fallback == TL_ENGINE_FALLBACK_FLATTEN && e->ops.cancel_all != NULL) {
        if (e->ops.cancel_all(e->ops.ctx, 0) != 0)
            rc = TL_ENGINE_ERR_CALLBACK;
    }
    uint32_t mode =
        e->modes.global_mode > TL_MODE_CANCEL_ONLY ? e->modes.global_mode : TL_MODE_CANCEL_ONLY;
    enum tl_engine_err wrc =
        write_mode_change(e, 0, mode, e->modes.withdrawals_halted, zero_id, NULL);
    bool set = tl_admin_modes_set(&e->modes, 0, (enum tl_mode)mode);
    TL_ASSERT(set);
    return wrc != TL_ENGINE_OK ? wrc : rc;
}

static enum tl_engine_err deadman_step(tl_engine *e) {
    enum tl_deadman_verdict v =
        tl_deadman_check_at(e->ring, clock_ns(CLOCK_MONOTONIC), e->cfg.deadman_ms);
    e->deadman_state = (uint32_t)v;
    if (v != TL_DEADMAN_EXPIRED) {
        /* A fresh heartbeat ends the episode (the fallback itself stays
         * until an operator lifts it); a later expiry fires again. */
        e->deadman_tripped = false;
        return TL_ENGINE_OK;
    }
    if (e->deadman_tripped)
        return TL_ENGINE_OK;
    e->deadman_tripped = true;
    return deadman_fallback(e);
}

/* ------------------------------------------------------------------ */
/* poll, idle, sync, retire                                            */

int tl_engine_poll(tl_engine *e, uint64_t now_real_ns, enum tl_engine_err *err) {
    enum tl_engine_err rc = TL_ENGINE_OK;
    int handled = 0;
    if (e->srv != NULL && !e->wal_failed) {
        int n = tl_admin_server_poll(e->srv, now_real_ns);
        handled = n > 0 ? n : 0; /* -1: poll(2) failed, counted in the server's io_errors */
    }
    if (e->cfg.deadman_ms != 0 && !e->wal_failed)
        rc = deadman_step(e);
    if (!e->wal_failed) {
        enum tl_wal_err wrc = tl_wal_poll(e->wal);
        if (wrc != TL_WAL_OK)
            rc = tl_eng_wal_rc(e, wrc);
    }
    if (e->wal_failed)
        rc = TL_ENGINE_ERR_WAL;
    if (err != NULL)
        *err = rc;
    return e->wal_failed ? -1 : handled;
}

void tl_engine_idle(tl_engine *e) {
    if (__builtin_expect(e->fault_hot || e->ring_hook, 0))
        tl_eng_fault_idle(e);
    tl_ring_flush(e->ring);
}

enum tl_engine_err tl_engine_sync(tl_engine *e) {
    enum tl_engine_err rc = tl_eng_fault_flush(e);
    tl_ring_flush(e->ring);
    if (rc != TL_ENGINE_OK)
        return rc;
    if (e->wal_failed)
        return TL_ENGINE_ERR_WAL;
    return tl_eng_wal_rc(e, tl_wal_sync(e->wal));
}

enum tl_engine_err tl_engine_retire(tl_engine *e, uint64_t snapshot_seq, uint32_t *deleted) {
    if (deleted != NULL)
        *deleted = 0;
    /* Relaxed: a standalone value written by tally (outside bytes: it only
     * ever lowers what is kept, via the min). */
    uint64_t consumer = atomic_load_explicit(&e->ring->ctl->consumer_wal_seq, memory_order_relaxed);
    uint64_t keep = snapshot_seq + 1 < consumer ? snapshot_seq + 1 : consumer;
    if (keep <= 1)
        return TL_ENGINE_OK;
    enum tl_wal_err rc = tl_wal_retire(e->wal, keep, deleted);
    if (rc == TL_WAL_OK)
        return TL_ENGINE_OK;
    /* A failed unlink leaves the log whole: not a writer failure. */
    e->wal_err = rc;
    return TL_ENGINE_ERR_WAL;
}

/* ------------------------------------------------------------------ */
/* symbols, leadership                                                 */

enum tl_engine_err tl_engine_add_symbol(tl_engine *e, uint32_t id, const char *name) {
    size_t n = name != NULL ? strnlen(name, TL_SYMBOL_NAME_MAX + 1) : 0;
    if (id == 0 || !tl_symbol_name_valid(name, n))
        return TL_ENGINE_ERR_SYMBOL;
    const tl_admin_symbol *have = tl_admin_modes_symbol(&e->modes, id);
    uint32_t other = 0;
    if (have != NULL) {
        if (have->name_len == n && memcmp(have->name, name, n) == 0)
            return TL_ENGINE_OK;
        return TL_ENGINE_ERR_SYMBOL;
    }
    if (tl_admin_modes_lookup(&e->modes, name, n, &other) || e->modes.count >= e->modes.max_symbols)
        return TL_ENGINE_ERR_SYMBOL;
    tl_body_symbol b;
    memset(&b, 0, sizeof b);
    memcpy(b.name, name, n);
    enum tl_engine_err rc =
        tl_eng_append(e, TL_KIND_SYMBOL, id, &b, sizeof b, tl_eng_record_ts(e), NULL);
    if (rc != TL_ENGINE_OK)
        return rc;
    /* After the record: a failed append lists nothing. */
    enum tl_admin_err ar = tl_admin_modes_add_symbol(&e->modes, id, name, n);
    TL_ASSERT(ar == TL_ADMIN_OK);
    return TL_ENGINE_OK;
}

enum tl_engine_err tl_engine_leader_change(tl_engine *e, uint64_t new_fence,
                                           const uint8_t leader_id[TL_ID_BYTES]) {
    enum tl_engine_err rc = tl_eng_fault_flush(e);
    if (rc != TL_ENGINE_OK)
        return rc;
    if (e->wal_failed)
        return TL_ENGINE_ERR_WAL;
    if (new_fence <= tl_wal_fence(e->wal))
        return TL_ENGINE_ERR_FENCE;
    return tl_eng_wal_rc(e, tl_wal_leader_change(e->wal, new_fence,
                                                 leader_id != NULL ? leader_id : e->engine_id,
                                                 tl_eng_record_ts(e), NULL));
}

/* ------------------------------------------------------------------ */
/* the heartbeat thread                                                */

static void *heartbeat_main(void *arg) {
    tl_engine *e = arg;
    uint64_t period_ns = (uint64_t)e->cfg.beat_ms * 1000000ull;
    uint64_t next = clock_ns(CLOCK_MONOTONIC);
    int rc = pthread_mutex_lock(&e->hb_mu);
    TL_ASSERT(rc == 0);
    while (!e->hb_stop) {
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        if (now >= next) {
            tl_ring_beat(e->ring, now);
            /* Absolute deadlines: a late wake-up does not stretch the
             * period; after a long stall it beats at once, then resumes. */
            next += period_ns;
            if (next <= now)
                next = now + period_ns;
        }
        struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
        rc = pthread_cond_timedwait(&e->hb_cv, &e->hb_mu, &ts);
        TL_ASSERT(rc == 0 || rc == ETIMEDOUT);
    }
    rc = pthread_mutex_unlock(&e->hb_mu);
    TL_ASSERT(rc == 0);
    return NULL;
}

static enum tl_engine_err heartbeat_start(tl_engine *e) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->hb_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&e->hb_mu, NULL);
    /* The first beat now, so the heartbeat is never zero while we run. */
    tl_ring_beat(e->ring, clock_ns(CLOCK_MONOTONIC));
    if (pthread_create(&e->hb_thread, NULL, heartbeat_main, e) != 0) {
        pthread_cond_destroy(&e->hb_cv);
        pthread_mutex_destroy(&e->hb_mu);
        return TL_ENGINE_ERR_NOMEM;
    }
    e->hb_started = true;
    return TL_ENGINE_OK;
}

static void heartbeat_stop(tl_engine *e) {
    if (!e->hb_started)
        return;
    int rc = pthread_mutex_lock(&e->hb_mu);
    TL_ASSERT(rc == 0);
    e->hb_stop = true;
    pthread_cond_signal(&e->hb_cv);
    rc = pthread_mutex_unlock(&e->hb_mu);
    TL_ASSERT(rc == 0);
    rc = pthread_join(e->hb_thread, NULL);
    TL_ASSERT(rc == 0);
    pthread_cond_destroy(&e->hb_cv);
    pthread_mutex_destroy(&e->hb_mu);
    e->hb_started = false;
}

/* ------------------------------------------------------------------ */
/* the engine id                                                       */

static bool parse_hex_id(const char *s, size_t n, uint8_t out[TL_ID_BYTES]) {
    if (n == 2 * TL_ID_BYTES + 1 && s[n - 1] == '\n')
        n--;
    if (n != 2 * TL_ID_BYTES)
        return false;
    for (size_t i = 0; i < TL_ID_BYTES; i++) {
        unsigned v = 0;
        for (size_t k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            unsigned d;
            if (c >= '0' && c <= '9')
                d = (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                d = (unsigned)(c - 'a' + 10);
            else
                return false;
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return true;
}

static int read_small(const char *path, char *buf, size_t cap, size_t *got) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    *got = 0;
    for (int tries = 0; *got < cap && tries < 64; tries++) {
        ssize_t r = read(fd, buf + *got, cap - *got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            return -1;
        }
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    close(fd);
    return 0;
}

static int write_full_fd(int fd, const char *buf, size_t n) {
    size_t put = 0;
    while (put < n) {
        ssize_t w = write(fd, buf + put, n - put);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        put += (size_t)w;
    }
    return 0;
}

/* <wal_dir>/engine_id: 32 lowercase hex digits and '\n'. Made once with a
 * temporary file and link(2), so two engines racing on a new directory
 * agree on one id (the loser reads the winner's). */
static enum tl_engine_err load_engine_id(tl_engine *e, bool *made, char *err, size_t cap) {
    char path[4096], tmp[4096], buf[64];
    *made = false;
    int pn = snprintf(path, sizeof path, "%s/%s", e->wal_dir, TL_ENGINE_ID_FILE);
    int tn =
        snprintf(tmp, sizeof tmp, "%s/%s.tmp.%d", e->wal_dir, TL_ENGINE_ID_FILE, (int)getpid());
    if (pn <= 0 || (size_t)pn >= sizeof path || tn <= 0 || (size_t)tn >= sizeof tmp) {
        set_err(err, cap, "wal_dir path too long");
        return TL_ENGINE_ERR_CONFIG;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        size_t got = 0;
        if (read_small(path, buf, sizeof buf, &got) == 0) {
            if (!parse_hex_id(buf, got, e->engine_id)) {
                set_err(err, cap, "%s: not 32 lowercase hex digits", path);
                return TL_ENGINE_ERR_ENGINE_ID;
            }
            return TL_ENGINE_OK;
        }
        if (errno != ENOENT) {
            set_err(err, cap, "%s: %s", path, strerror(errno));
            return TL_ENGINE_ERR_ENGINE_ID;
        }
        uint8_t id[TL_ID_BYTES];
        if (e->cfg.engine_id_if_new != NULL) {
            memcpy(id, e->cfg.engine_id_if_new, TL_ID_BYTES);
        } else {
            size_t have = 0;
            for (int tries = 0; have < sizeof id && tries < 16; tries++) {
                ssize_t r = getrandom(id + have, sizeof id - have, 0);
                if (r > 0)
                    have += (size_t)r;
                else if (r < 0 && errno != EINTR)
                    break;
            }
            if (have != sizeof id) {
                set_err(err, cap, "getrandom: %s", strerror(errno));
                return TL_ENGINE_ERR_ENGINE_ID;
            }
        }
        for (size_t i = 0; i < TL_ID_BYTES; i++)
            snprintf(buf + 2 * i, 3, "%02x", id[i]);
        buf[2 * TL_ID_BYTES] = '\n';
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        const char *op = NULL;
        if (fd < 0)
            op = "open";
        else if (write_full_fd(fd, buf, 2 * TL_ID_BYTES + 1) != 0)
            op = "write";
        else if (fsync(fd) != 0)
            op = "fsync";
        int saved = errno;
        if (fd >= 0)
            close(fd);
        if (op == NULL && link(tmp, path) != 0 && errno != EEXIST) {
            op = "link";
            saved = errno;
        }
        unlink(tmp);
        if (op != NULL) {
            set_err(err, cap, "%s %s: %s", op, path, strerror(saved));
            return TL_ENGINE_ERR_ENGINE_ID;
        }
        int dfd = open(e->wal_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            int r = fsync(dfd);
            close(dfd);
            if (r != 0) {
                set_err(err, cap, "fsync %s: %s", e->wal_dir, strerror(errno));
                return TL_ENGINE_ERR_ENGINE_ID;
            }
        }
        *made = true;
        /* Loop: read it back (the winner's, if another engine raced us). */
    }
    set_err(err, cap, "%s: cannot be read back", path);
    return TL_ENGINE_ERR_ENGINE_ID;
}

/* ------------------------------------------------------------------ */
/* recovery: the pre-scan                                              */

typedef struct prescan {
    tl_engine *e;
    tl_engine_recovered *rec;
    enum tl_engine_err err;
    char msg[200];
    uint64_t findings;
    tl_finding first;
} prescan;

static void prescan_emit(void *ctx, const tl_finding *f) {
    prescan *p = ctx;
    if (p->findings++ == 0)
        p->first = *f;
}

static int prescan_record(void *ctx, const tl_rec_view *v, const tl_loc *loc,
                          tl_stream_result res) {
    (void)loc;
    (void)res;
    prescan *p = ctx;
    tl_engine *e = p->e;
    if (p->findings > 0)
        return 1; /* the log is refused: stop feeding the engine */
    const uint8_t *rec = v->body - TL_REC_HDR_BYTES;
    TL_ASSERT(tl_rec_hdr_of(rec)->seq == v->seq);
    if (v->kind == TL_KIND_SYMBOL) {
        size_t n = strnlen((const char *)v->body, TL_SYMBOL_NAME_MAX);
        if (tl_admin_modes_add_symbol(&e->modes, v->symbol, (const char *)v->body, n) !=
            TL_ADMIN_OK) {
            p->err = TL_ENGINE_ERR_WAL_STATE;
            snprintf(
                p->msg, sizeof p->msg,
                "SYMBOL at seq %llu (id %u) conflicts with an earlier one or the table is full",
                (unsigned long long)v->seq, v->symbol);
            return 1;
        }
    } else if (v->kind == TL_KIND_MODE_CHANGE) {
        tl_body_mode_change b;
        memcpy(&b, v->body, sizeof b);
        bool ok;
        if (e->srv != NULL) {
            ok = tl_admin_server_replay_mode_change(e->srv, v->symbol, &b, v->seq);
        } else {
            ok = b.withdrawals_halted <= 1 &&
                 tl_admin_modes_set(&e->modes, v->symbol, (enum tl_mode)b.mode);
            if (ok)
                e->modes.withdrawals_halted = b.withdrawals_halted != 0;
        }
        if (!ok) {
            p->err = TL_ENGINE_ERR_WAL_STATE;
            snprintf(p->msg, sizeof p->msg, "MODE_CHANGE at seq %llu for undeclared scope %u",
                     (unsigned long long)v->seq, v->symbol);
            return 1;
        }
        p->rec->mode_changes++;
        if (!tl_id_is_zero(b.command_id) && !tl_id_is_restatement(b.command_id))
            p->rec->command_ids++;
    }
    if (e->ops.replay != NULL)
        e->ops.replay(e->ops.ctx, rec, v->len);
    p->rec->records++;
    return 0;
}

static enum tl_engine_err run_prescan(tl_engine *e, tl_engine_recovered *rec, char *err,
                                      size_t cap) {
    prescan p;
    memset(&p, 0, sizeof p);
    p.e = e;
    p.rec = rec;
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.sink = (tl_sink){prescan_emit, &p};
    o.on_record = prescan_record;
    o.ctx = &p;
    if (!e->cfg.recovery_full_scan) {
        /* The last two segments, like the writer's own partial scan: their
         * openers restate every name and mode. */
        tl_wal_dir list;
        if (tl_wal_dir_init(&list, 0) != TL_WAL_OK)
            return TL_ENGINE_ERR_NOMEM;
        int dfd = open(e->wal_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            if (tl_wal_dir_scan(&list, dfd) == TL_WAL_OK && list.count >= 2)
                o.start_seq = list.first_seqs[list.count - 2];
            close(dfd);
        }
        tl_wal_dir_free(&list);
    }
    tl_wal_summary sum;
    enum tl_wal_err rc = tl_wal_read_dir(e->wal_dir, &o, &sum);
    if (rc != TL_WAL_OK && rc != TL_WAL_ERR_NOT_FOUND) {
        set_err(err, cap, "reading %s: %s (%s: %s)", e->wal_dir, tl_wal_err_name(rc),
                sum.ioerr.op ? sum.ioerr.op : "-", strerror(sum.ioerr.sys_errno));
        return TL_ENGINE_ERR_WAL;
    }
    rec->findings_total = p.findings;
    if (p.findings > 0) {
        rec->finding_check = tl_check_name((enum tl_check)p.first.check);
        rec->finding_seq = p.first.seq;
        rec->finding_segment = p.first.segment;
        rec->finding_offset = p.first.offset;
        set_err(err, cap,
                "the log has %llu finding(s); first %s (%s) at seq %llu, segment %llu offset %llu",
                (unsigned long long)p.findings, rec->finding_check, tl_reason_name(p.first.reason),
                (unsigned long long)p.first.seq, (unsigned long long)p.first.segment,
                (unsigned long long)p.first.offset);
        return TL_ENGINE_ERR_WAL_CORRUPT;
    }
    if (p.err != TL_ENGINE_OK) {
        set_err(err, cap, "%s", p.msg);
        return p.err;
    }
    return TL_ENGINE_OK;
}

/* ------------------------------------------------------------------ */
/* open, close                                                         */

static bool config_valid(const tl_engine_config *c, const tl_engine_ops *ops, char *err,
                         size_t cap) {
    const char *why = NULL;
    if (c->wal_dir == NULL || c->wal_dir[0] == '\0')
        why = "wal_dir is required";
    else if (c->ring_name == NULL || c->ring_name[0] == '\0')
        why = "ring_name is required";
    else if (!tl_ring_capacity_valid(c->ring_capacity))
        why = "ring_capacity must be a power of two >= 1 MiB";
    else if (c->beat_ms == 0 || c->beat_ms > 1000)
        why = "beat_ms must be 1..1000";
    else if (c->max_symbols == 0 || c->max_symbols > TL_ADMIN_MODES_MAX_SYMBOLS)
        why = "max_symbols out of range";
    else if (c->symbols_count > 0 && c->symbols == NULL)
        why = "symbols is NULL";
    else if (c->symbols_count > c->max_symbols)
        why = "more symbols than max_symbols";
    else if (c->admin_socket != NULL && c->sidecar_key_path == NULL && c->sidecar_key_raw == NULL)
        why = "the admin socket needs a sidecar key";
    else if (c->deadman_fallback != TL_ENGINE_FALLBACK_SAFE_MODE &&
             c->deadman_fallback != TL_ENGINE_FALLBACK_FLATTEN)
        why = "deadman_fallback";
    else if ((c->admin_socket != NULL || c->deadman_fallback == TL_ENGINE_FALLBACK_FLATTEN) &&
             (ops == NULL || ops->cancel_all == NULL))
        why = "ops.cancel_all is required with an admin socket or the FLATTEN fallback";
    if (why != NULL)
        set_err(err, cap, "%s", why);
    return why == NULL;
}

static enum tl_engine_err load_key(tl_admin_key *k, const char *path, const uint8_t *raw, char *err,
                                   size_t cap) {
    if (raw != NULL) {
        tl_admin_key_init(k, raw);
        return TL_ENGINE_OK;
    }
    enum tl_admin_err ar = tl_admin_key_load(k, path);
    if (ar != TL_ADMIN_OK) {
        set_err(err, cap, "key %s: %s", path, tl_admin_err_name(ar));
        return TL_ENGINE_ERR_KEY;
    }
    return TL_ENGINE_OK;
}

static enum tl_engine_err open_admin(tl_engine *e, char *err, size_t cap) {
    const tl_engine_config *c = &e->cfg;
    if (c->admin_socket == NULL)
        return TL_ENGINE_OK;
    enum tl_engine_err rc =
        load_key(&e->sidecar_key, c->sidecar_key_path, c->sidecar_key_raw, err, cap);
    if (rc == TL_ENGINE_OK && (c->operator_key_path != NULL || c->operator_key_raw != NULL)) {
        rc = load_key(&e->operator_key, c->operator_key_path, c->operator_key_raw, err, cap);
        e->has_operator_key = rc == TL_ENGINE_OK;
    }
    if (rc != TL_ENGINE_OK)
        return rc;
    tl_admin_server_config sc = {
        .socket_path = e->admin_socket,
        .max_conns = c->admin_max_conns,
        .remembered_ids = c->remembered_ids,
        .sidecar_key = &e->sidecar_key,
        .operator_key = e->has_operator_key ? &e->operator_key : NULL,
        .modes = &e->modes,
        .ops = {.ctx = e,
                .write_mode_change = srv_write_mode_change,
                .cancel_all = srv_cancel_all,
                .on_line = srv_on_line},
    };
    enum tl_admin_err ae;
    e->srv = tl_admin_server_create(&sc, &ae);
    if (e->srv == NULL) {
        set_err(err, cap, "admin socket %s: %s (%s)", e->admin_socket, tl_admin_err_name(ae),
                strerror(errno));
        return TL_ENGINE_ERR_ADMIN;
    }
    return TL_ENGINE_OK;
}

static enum tl_engine_err open_wal(tl_engine *e, tl_engine_recovered *rec, char *err, size_t cap) {
    const tl_engine_config *c = &e->cfg;
    tl_wal_config wc;
    tl_wal_config_default(&wc);
    wc.dir = e->wal_dir;
    wc.segment_bytes = c->segment_bytes;
    memcpy(wc.engine_id, e->engine_id, TL_ID_BYTES);
    /* A new log starts at fence 0 with no leader; open's LEADER_CHANGE
     * then names this engine with the configured fence. */
    wc.initial_fence = 0;
    wc.max_symbols = c->max_symbols;
    wc.staging_bytes = c->staging_bytes;
    wc.group_max_bytes = c->group_max_bytes;
    wc.group_max_records = c->group_max_records;
    wc.group_max_delay_ns = c->group_max_delay_ns;
    wc.sync_thread = c->sync_thread;
    /* The pre-scan verified the log (all of it, unless recovery_full_scan
     * is off); the writer only needs the tail again. */
    wc.recovery_full_scan = false;
    wc.fixed_real_ns = c->fixed_clock_ns;
    tl_wal_ops ops = {.ctx = e,
                      .symbols = wal_symbols,
                      .global_mode = wal_global_mode,
                      .on_record = wal_on_record,
                      .on_durable = wal_on_durable};
    tl_wal_recovered wr;
    enum tl_wal_err rc = tl_wal_open(&e->wal, &wc, &ops, &wr);
    if (rc != TL_WAL_OK) {
        e->wal_err = rc;
        if (rc == TL_WAL_ERR_CORRUPT) {
            rec->finding_check = tl_check_name((enum tl_check)wr.first_finding.check);
            rec->finding_seq = wr.first_finding.seq;
            rec->findings_total = wr.findings_total;
            set_err(err, cap, "WAL %s: %s at seq %llu", e->wal_dir, rec->finding_check,
                    (unsigned long long)wr.first_finding.seq);
            return TL_ENGINE_ERR_WAL_CORRUPT;
        }
        set_err(err, cap, "WAL %s: %s (%s: %s)", e->wal_dir, tl_wal_err_name(rc),
                wr.ioerr.op ? wr.ioerr.op : "-", strerror(wr.ioerr.sys_errno));
        return rc == TL_WAL_ERR_CONFIG ? TL_ENGINE_ERR_CONFIG : TL_ENGINE_ERR_WAL;
    }
    rec->new_log = wr.new_log;
    rec->torn = wr.torn;
    rec->torn_offset = wr.torn_offset;
    rec->last_seq = wr.last_seq;
    rec->fence = wr.fence;
    return TL_ENGINE_OK;
}

static enum tl_engine_err open_ring(tl_engine *e, tl_engine_recovered *rec, char *err, size_t cap) {
    tl_walseg_durable d;
    tl_wal_durable(e->wal, &d);
    tl_ring_durable rd = {
        .seq = d.seq, .segment_first_seq = d.segment_first_seq, .offset = d.offset};
    tl_ring_producer *p = NULL;
    enum tl_ring_err re = tl_ring_create(e->ring_name, e->cfg.ring_capacity, e->engine_id, &rd, &p);
    if (re != TL_RING_OK) {
        set_err(err, cap, "ring %s: %s (%s)", e->ring_name, tl_ring_err_name(re),
                re == TL_RING_ERR_SYS ? strerror(errno) : "-");
        return TL_ENGINE_ERR_RING;
    }
    tl_ring_set_last_seq(p, d.seq);
    rec->consumer_wal_seq = p->old_consumer_wal_seq;
    /* From here on, on_record publishes. */
    e->ring = p;
    return TL_ENGINE_OK;
}

/* The config's symbols the log lacks, and the fence. */
static enum tl_engine_err open_finish(tl_engine *e, tl_engine_recovered *rec, char *err,
                                      size_t cap) {
    for (uint32_t i = 0; i < e->cfg.symbols_count; i++) {
        const tl_engine_symbol *s = &e->cfg.symbols[i];
        enum tl_engine_err rc = tl_engine_add_symbol(e, s->id, s->name);
        if (rc != TL_ENGINE_OK) {
            set_err(err, cap, "symbol %u %s: %s", s->id, s->name ? s->name : "(null)",
                    tl_engine_err_name(rc));
            return rc;
        }
    }
    uint64_t in_force = tl_wal_fence(e->wal);
    uint64_t want = e->cfg.fence;
    if (rec->new_log && want == 0)
        want = 1;
    if (want > in_force) {
        enum tl_engine_err rc = tl_engine_leader_change(e, want, NULL);
        if (rc != TL_ENGINE_OK) {
            set_err(err, cap, "LEADER_CHANGE to fence %llu: %s", (unsigned long long)want,
                    tl_engine_err_name(rc));
            return rc;
        }
        rec->leader_change = true;
    } else if (want != 0 && want < in_force) {
        set_err(err, cap, "configured fence %llu is below the log's fence %llu: a stale leader",
                (unsigned long long)want, (unsigned long long)in_force);
        return TL_ENGINE_ERR_FENCE;
    }
    rec->fence = tl_wal_fence(e->wal);
    rec->last_seq = tl_wal_next_seq(e->wal) - 1;
    rec->symbols = e->modes.count;
    return TL_ENGINE_OK;
}

static char *dup_str(const char *s) {
    return s != NULL ? strdup(s) : NULL;
}

static void engine_free(tl_engine *e) {
    heartbeat_stop(e);
    tl_admin_server_destroy(e->srv);
    tl_ring_close(e->ring);
    tl_admin_modes_free(&e->modes);
    tl_admin_key_wipe(&e->sidecar_key);
    tl_admin_key_wipe(&e->operator_key);
    tl_eng_faults_free(&e->fx);
    free(e->wal_dir);
    free(e->ring_name);
    free(e->admin_socket);
    free(e);
}

enum tl_engine_err tl_engine_open(const tl_engine_config *cfg, const tl_engine_ops *ops,
                                  tl_engine **out, tl_engine_recovered *rec, char *err,
                                  size_t cap) {
    *out = NULL;
    tl_engine_recovered rec_local;
    if (rec == NULL)
        rec = &rec_local;
    memset(rec, 0, sizeof *rec);
    set_err(err, cap, "%s", "");
    if (!config_valid(cfg, ops, err, cap))
        return TL_ENGINE_ERR_CONFIG;
    tl_engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return TL_ENGINE_ERR_NOMEM;
    e->cfg = *cfg;
    if (ops != NULL)
        e->ops = *ops;
    e->wal_dir = dup_str(cfg->wal_dir);
    e->ring_name = dup_str(cfg->ring_name);
    e->admin_socket = dup_str(cfg->admin_socket);
    e->cfg.wal_dir = e->wal_dir;
    e->cfg.ring_name = e->ring_name;
    e->cfg.admin_socket = e->admin_socket;
    enum tl_engine_err rc = TL_ENGINE_OK;
    if (e->wal_dir == NULL || e->ring_name == NULL ||
        (cfg->admin_socket != NULL && e->admin_socket == NULL) ||
        tl_eng_faults_init(&e->fx) != TL_ENGINE_OK ||
        tl_admin_modes_init(&e->modes, cfg->max_symbols) != TL_ADMIN_OK) {
        engine_free(e);
        return TL_ENGINE_ERR_NOMEM;
    }
    if (mkdir(e->wal_dir, 0755) != 0 && errno != EEXIST) {
        set_err(err, cap, "mkdir %s: %s", e->wal_dir, strerror(errno));
        rc = TL_ENGINE_ERR_WAL;
    }
    bool made = false;
    if (rc == TL_ENGINE_OK)
        rc = load_engine_id(e, &made, err, cap);
    rec->new_engine_id = made;
    memcpy(rec->engine_id, e->engine_id, TL_ID_BYTES);
    if (rc == TL_ENGINE_OK)
        rc = open_admin(e, err, cap);
    if (rc == TL_ENGINE_OK)
        rc = run_prescan(e, rec, err, cap);
    /* A new log declares the listed symbols in its first openers: register
     * them before the writer asks. An existing log gets its SYMBOL records
     * in open_finish, published. */
    if (rc == TL_ENGINE_OK && rec->records == 0) {
        for (uint32_t i = 0; i < cfg->symbols_count && rc == TL_ENGINE_OK; i++) {
            const tl_engine_symbol *s = &cfg->symbols[i];
            size_t n = s->name != NULL ? strnlen(s->name, TL_SYMBOL_NAME_MAX + 1) : 0;
            if (s->id == 0 || !tl_symbol_name_valid(s->name, n) ||
                tl_admin_modes_add_symbol(&e->modes, s->id, s->name, n) != TL_ADMIN_OK) {
                set_err(err, cap, "symbol %u: bad or duplicate", s->id);
                rc = TL_ENGINE_ERR_SYMBOL;
            }
        }
    }
    if (rc == TL_ENGINE_OK)
        rc = open_wal(e, rec, err, cap);
    if (rc == TL_ENGINE_OK)
        rc = open_ring(e, rec, err, cap);
    if (rc == TL_ENGINE_OK)
        rc = heartbeat_start(e);
    if (rc == TL_ENGINE_OK)
        rc = open_finish(e, rec, err, cap);
    /* The caller's arrays and keys are used during open only. */
    e->cfg.symbols = NULL;
    e->cfg.symbols_count = 0;
    e->cfg.engine_id_if_new = NULL;
    e->cfg.sidecar_key_raw = e->cfg.operator_key_raw = NULL;
    e->cfg.sidecar_key_path = e->cfg.operator_key_path = NULL;
    if (rc != TL_ENGINE_OK) {
        if (e->wal != NULL)
            tl_wal_close(e->wal);
        engine_free(e);
        return rc;
    }
    *out = e;
    return TL_ENGINE_OK;
}

enum tl_engine_err tl_engine_close(tl_engine *e) {
    if (e == NULL)
        return TL_ENGINE_OK;
    enum tl_engine_err rc = tl_eng_fault_flush(e);
    tl_ring_flush(e->ring);
    /* Syncs what was appended and joins the sync thread: its last
     * on_durable reaches the ring before the ring is unmapped below. */
    enum tl_wal_err wrc = tl_wal_close(e->wal);
    e->wal = NULL;
    if (wrc != TL_WAL_OK && rc == TL_ENGINE_OK)
        rc = e->wal_failed ? TL_ENGINE_ERR_WAL : tl_eng_wal_rc(e, wrc);
    if (e->wal_failed && rc == TL_ENGINE_OK)
        rc = TL_ENGINE_ERR_WAL;
    engine_free(e);
    return rc;
}

/* ------------------------------------------------------------------ */
/* introspection                                                       */

void tl_engine_get_stats(const tl_engine *e, tl_engine_stats *out) {
    memset(out, 0, sizeof *out);
    out->next_seq = tl_wal_next_seq(e->wal);
    out->fence = tl_wal_fence(e->wal);
    tl_walseg_durable d;
    tl_wal_durable(e->wal, &d);
    out->durable_seq = d.seq;
    out->records_published = e->records_published;
    out->ring_position = tl_ring_producer_position(e->ring);
    out->ring_pads = e->ring->pads;
    out->global_mode = e->modes.global_mode;
    out->withdrawals_halted = e->modes.withdrawals_halted;
    if (e->srv != NULL) {
        const tl_admin_server_stats *s = tl_admin_server_get_stats(e->srv);
        out->admin_lines = s->lines;
        out->admin_applied = s->applied;
        out->admin_duplicates = s->duplicates;
        for (unsigned i = 0; i < TL_ADMIN_ERR_COUNT; i++)
            out->admin_rejected += s->rejected[i];
    }
    out->deadman_fallbacks = e->deadman_fallbacks;
    out->deadman_state = e->deadman_state;
    out->faults_fired = e->fx.fired;
}

const uint8_t *tl_engine_id(const tl_engine *e) {
    return e->engine_id;
}

const char *tl_engine_wal_err(const tl_engine *e, const char **sys_op, int *sys_errno) {
    if (sys_op != NULL)
        *sys_op = NULL;
    if (sys_errno != NULL)
        *sys_errno = 0;
    if (e->wal != NULL && e->wal_err != TL_WAL_OK) {
        tl_wal_ioerr io = tl_wal_last_ioerr(e->wal);
        if (sys_op != NULL)
            *sys_op = io.op;
        if (sys_errno != NULL)
            *sys_errno = io.sys_errno;
    }
    return tl_wal_err_name(e->wal_err);
}

tl_ring_producer *tl_engine_ring(tl_engine *e) {
    return e->ring;
}
