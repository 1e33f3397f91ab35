/* bench_check.c: records checked per second on one core, ring + WAL
 * cross-check, all checks, 120-byte records (issue 3). Not run by CI.
 *
 *   bench_check [--records N] [--runs R] [--dir D] [--cpu C] [--window W]
 *               [--json FILE] [--only ring|wal|loop|reader]
 *               [--tail-buf BYTES] [--tail-ahead N]
 *
 * Setup (untimed): a real engine side writes N records of 120 bytes
 * (ORDER_NEW and ORDER_CANCEL with 16 spare body bytes) through the WAL
 * writer (io/wal_writer, 64 MiB segments on tmpfs, group commit on its sync
 * thread) and publishes every record it appends, openers included, on a
 * real TLYRING1 ring (shm/ring_producer) large enough to hold them all: the
 * ring is pre-filled, so the consumer is never lapped and reads from memory
 * another core wrote. The WAL's durable point goes into the ring's seqlock
 * as the engine's sync thread does it, and a thread on the other core beats
 * the producer heartbeat every 10 ms as the engine does.
 *
 * Stages, timed in each run, on one pinned core (default cpu 1):
 *   ring    the shm consumer alone: tl_ring_poll over the whole ring (stamp
 *           poll, copy, checksum, field rules, the ring protocol);
 *   wal     the io_uring tailer alone: tl_wal_tail_poll over the whole log
 *           (reads from tmpfs, core/walseg: headers, rules 1-3, torn tail);
 *   loop    the real reconciler: core/loop.c with the consumer and the
 *           tailer as its sources (the adapters of admin/hotloop.c): rules
 *           4-6 on both streams, every record put in the window by its
 *           first copy and compared by checksum with the second,
 *           apply_meaning, WAL_LAG samples, engine status each step;
 *   reader  (extra) the offline verified replay io/wal_reader over the same
 *           files (pread + walseg + stream), for issue 2's replay figure.
 * The loop stage is the measure: records per second with every record
 * seen from both sources and compared. ring + wal + the rest of the loop
 * is the breakdown ("streams" = loop - ring - wal, per record).
 *
 * Checks that the run is honest: the loop ends with records_ring ==
 * records_wal == the records written, no finding at all, and every seq
 * still in the window marked as seen by both sources.
 *
 * --only STAGE runs that stage alone, once per run: for callgrind
 * (valgrind --tool=callgrind --collect-atstart=no --toggle-collect=stage_loop
 * bench_check --records 200000 --runs 1 --only loop). Prints a markdown
 * table (median, min, max) and writes JSON.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"
#include "io/wal_reader.h"
#include "io/wal_tail.h"
#include "io/wal_writer.h"
#include "shm/ring.h"

#define MAX_RUNS    31
#define REC_BYTES   120u
#define BODY_BYTES  (REC_BYTES - TL_REC_HDR_BYTES)
#define SYMBOLS     4u
#define SEGMENT_MIB 64u
#define BEAT_NS     10000000ull /* the engine's producer heartbeat period */
#define STALL_STEPS 4096u       /* idle loop steps after which a stage has ended */
#define STEPS_MAX   (1ull << 32)

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench_check: %s\n", what);
    exit(1);
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        fprintf(stderr, "warning: sched_setaffinity(%d): %s\n", cpu, strerror(errno));
}

/* ---- the engine side (setup, untimed) ---- */

typedef struct engine {
    tl_ring_producer *ring;
    _Atomic bool stop;
    int beat_cpu;
} engine;

static uint32_t eng_symbols(void *ctx, tl_wal_opener_symbol *out, uint32_t cap) {
    (void)ctx;
    static const char *const names[SYMBOLS] = {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"};
    uint32_t n = cap < SYMBOLS ? cap : SYMBOLS;
    for (uint32_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].symbol = i + 1;
        memcpy(out[i].name, names[i], strlen(names[i]));
    }
    return n;
}

/* Every record the writer appends, openers included: publish it, as
 * admin/engine.c does. */
static void eng_on_record(void *ctx, const uint8_t *rec, uint32_t len) {
    engine *e = ctx;
    tl_ring_publish(e->ring, rec, len);
}

/* The writer's sync thread: the seqlock writer of wal_durable_*. */
static void eng_on_durable(void *ctx, uint64_t seq, uint64_t segment_first_seq, uint64_t off) {
    engine *e = ctx;
    tl_ring_set_durable(e->ring, seq, segment_first_seq, off);
}

/* The engine's heartbeat thread (ring.md: every engine.beat_ms). */
static void *eng_beat_main(void *arg) {
    engine *e = arg;
    pin(e->beat_cpu);
    while (!atomic_load_explicit(&e->stop, memory_order_relaxed)) {
        tl_ring_beat(e->ring, mono_ns());
        struct timespec ts = {0, (long)BEAT_NS};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static uint64_t pow2_at_least(uint64_t v) {
    uint64_t p = TL_RING_MIN_CAPACITY;
    while (p < v)
        p <<= 1;
    return p;
}

/* Writes n records through the WAL writer, each also published on the
 * ring. Returns the seq of the last record (openers included). */
static uint64_t write_log(engine *e, const char *wal_dir, uint64_t n) {
    tl_wal_config cfg;
    tl_wal_config_default(&cfg);
    cfg.dir = wal_dir;
    cfg.segment_bytes = (uint64_t)SEGMENT_MIB << 20;
    cfg.sync_thread = true;
    cfg.initial_fence = 1;
    memcpy(cfg.engine_id, "bench-check-0001", TL_ID_BYTES);
    tl_wal_ops ops = {
        .ctx = e, .symbols = eng_symbols, .on_record = eng_on_record, .on_durable = eng_on_durable};
    tl_wal *w;
    if (tl_wal_open(&w, &cfg, &ops, NULL) != TL_WAL_OK)
        die("tl_wal_open");
    uint8_t body[BODY_BYTES];
    uint64_t ts = real_ns();
    uint64_t rs = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0; i < n; i++) {
        memset(body, 0, sizeof body);
        rs ^= rs << 13;
        rs ^= rs >> 7;
        rs ^= rs << 17;
        uint16_t kind;
        if (rs % 10 < 6) {
            tl_body_order_new o = {.order_id = i + 1,
                                   .account = 1000 + (rs & 255),
                                   .price = 50000 + (int64_t)(rs % 97),
                                   .qty = 1 + (int64_t)(rs % 5),
                                   .side = (rs & 16) ? TL_SIDE_BUY : TL_SIDE_SELL,
                                   .type = TL_ORDER_LIMIT};
            memcpy(body, &o, sizeof o);
            kind = TL_KIND_ORDER_NEW;
        } else {
            tl_body_order_cancel c = {
                .order_id = i, .account = 1000 + (rs & 255), .remaining_qty = 1};
            memcpy(body, &c, sizeof c);
            kind = TL_KIND_ORDER_CANCEL;
        }
        tl_wal_appended a;
        if (tl_wal_append(w, kind, 1 + (uint32_t)(i % SYMBOLS), body, sizeof body, ts + i, &a) !=
            TL_WAL_OK)
            die("tl_wal_append");
        if (a.len != REC_BYTES)
            die("record is not 120 bytes");
    }
    uint64_t last = tl_wal_next_seq(w) - 1;
    if (tl_wal_close(w) != TL_WAL_OK) /* syncs: on_durable gets the last seq */
        die("tl_wal_close");
    tl_ring_flush(e->ring);
    return last;
}

/* ---- stage: the ring consumer alone ---- */

static void consumer_start(tl_ring_consumer *c, tl_ring_map *m) {
    if (tl_ring_consumer_init(c, m) != TL_RING_OK)
        die("tl_ring_consumer_init");
    /* The ring is pre-filled from position 0, seq 1 (a saved position in the
     * same incarnation): a first attach would join at `publish`, the end. */
    tl_ring_consumer_start_at(c, 0, 1);
}

__attribute__((noinline)) static uint64_t stage_ring(tl_ring_map *m, uint64_t want) {
    tl_ring_consumer c;
    consumer_start(&c, m);
    tl_ring_event ev;
    uint64_t records = 0, last = 0;
    uint32_t idle = 0;
    while (idle < STALL_STEPS) {
        enum tl_ring_ev t = tl_ring_poll(&c, last, &ev);
        if (t == TL_RING_EV_RECORD) {
            records++;
            last = ev.seq;
            idle = 0;
        } else if (t == TL_RING_EV_NONE) {
            idle++;
        } else if (t != TL_RING_EV_PAD) {
            die("ring: unexpected event");
        }
    }
    if (records != want || c.stats.corrupt != 0)
        die("ring: not every record was delivered");
    tl_ring_consumer_free(&c);
    return records;
}

/* ---- stage: the WAL tailer alone ---- */

/* The tailer's read size and reads in flight: its defaults unless
 * --tail-buf / --tail-ahead say otherwise. */
static uint32_t tail_buf_bytes, tail_read_ahead;

static tl_wal_tail *tail_open(const char *wal_dir) {
    tl_wal_tail_cfg cfg;
    tl_wal_tail_cfg_default(&cfg);
    cfg.dir = wal_dir;
    if (tail_buf_bytes != 0)
        cfg.buf_bytes = tail_buf_bytes;
    if (tail_read_ahead != 0)
        cfg.read_ahead = tail_read_ahead;
    if (cfg.tail_bytes > cfg.buf_bytes)
        cfg.tail_bytes = cfg.buf_bytes;
    tl_wal_tail *t;
    tl_wal_ioerr err;
    if (tl_wal_tail_open(&t, &cfg, &err) != TL_WAL_OK)
        die("tl_wal_tail_open");
    return t;
}

__attribute__((noinline)) static uint64_t stage_wal(const char *wal_dir,
                                                    const tl_ring_durable *durable, uint64_t want) {
    tl_wal_tail *t = tail_open(wal_dir);
    tl_wal_ev ev;
    uint64_t records = 0;
    for (uint64_t steps = 0; steps < STEPS_MAX; steps++) {
        tl_wal_tail_durable(t, true, durable->seq, durable->segment_first_seq, durable->offset);
        if (!tl_wal_tail_poll(t, &ev))
            continue;
        if (ev.type == TL_WAL_EV_RECORD)
            records++;
        else if (ev.type == TL_WAL_EV_CAUGHT_UP && records == want)
            break;
        else if (ev.type == TL_WAL_EV_CORRUPT || ev.type == TL_WAL_EV_TENTATIVE)
            die("wal: a fault in a clean log");
    }
    tl_wal_tail_close(t);
    if (records != want)
        die("wal: not every record was read");
    return records;
}

/* ---- stage: the loop, ring + WAL ---- */

typedef struct loop_ctx {
    tl_loop *loop;
    tl_ring_map *map;
    tl_ring_consumer cons;
    tl_ring_durable_reader durable;
    tl_wal_tail *tail;
    uint64_t outs[TL_OUT_CTL_ACK + 1];
    uint64_t findings_sev; /* findings above INFO */
    tl_finding first;
} loop_ctx;

/* The adapters of admin/hotloop.c (static there), over the same calls. */
static bool lc_ring_poll(void *ctx, uint64_t last_delivered, tl_src_ring_ev *out) {
    loop_ctx *x = ctx;
    tl_ring_event ev;
    for (int i = 0; i < 4; i++) {
        enum tl_ring_ev t = tl_ring_poll(&x->cons, last_delivered, &ev);
        memset(out, 0, sizeof *out);
        switch (t) {
            case TL_RING_EV_NONE:
                return false;
            case TL_RING_EV_PAD:
                continue;
            case TL_RING_EV_RECORD:
                out->type = TL_SRC_RING_RECORD;
                out->rec = ev.rec;
                out->len = ev.len;
                out->replay = ev.replay;
                out->position = ev.position;
                out->expected_seq = ev.expected;
                return true;
            default:
                die("loop: unexpected ring event");
        }
    }
    return false;
}

static void lc_engine_status(void *ctx, tl_engine_status *st) {
    loop_ctx *x = ctx;
    memset(st, 0, sizeof *st);
    st->attached = true;
    memcpy(st->engine_id, x->map->header.engine_id, TL_ID_BYTES);
    st->heartbeat_mono_ns = tl_ring_producer_heartbeat(x->map);
    tl_ring_durable snap;
    enum tl_durable_status s =
        tl_ring_durable_read(&x->durable, x->map->ctl, x->loop->now_ns, 250, &snap);
    st->durable_valid = x->durable.have_snap;
    st->durable_read_failed = s != TL_DURABLE_ACCEPTED;
    st->durable_stuck_odd = s == TL_DURABLE_STUCK;
    st->durable_seq = snap.seq;
    st->durable_segment_seq = snap.segment_first_seq;
    st->durable_offset = snap.offset;
}

static bool lc_wal_poll(void *ctx, tl_wal_ev *ev) {
    loop_ctx *x = ctx;
    const tl_engine_status *st = &x->loop->engine;
    tl_wal_tail_durable(x->tail, st->attached && st->durable_valid, st->durable_seq,
                        st->durable_segment_seq, st->durable_offset);
    return tl_wal_tail_poll(x->tail, ev);
}

static bool lc_ctl_poll(void *ctx, tl_ctl_msg *m) {
    (void)ctx;
    (void)m;
    return false;
}

static int lc_send(void *ctx, const tl_action *a, uint64_t now_real_ns) {
    (void)ctx;
    (void)a;
    (void)now_real_ns;
    return 0;
}

static bool lc_reply_poll(void *ctx, tl_cmd_reply *r) {
    (void)ctx;
    (void)r;
    return false;
}

static void lc_fast_mode(void *ctx, uint32_t scope, uint8_t mode) {
    (void)ctx;
    (void)scope;
    (void)mode;
}

static void lc_fast_withdrawals(void *ctx, bool on) {
    (void)ctx;
    (void)on;
}

static bool lc_emit(void *ctx, const tl_out *o) {
    loop_ctx *x = ctx;
    if (o->type <= TL_OUT_CTL_ACK)
        x->outs[o->type]++;
    if (o->type == TL_OUT_FINDING) {
        if (x->outs[TL_OUT_FINDING] == 1)
            x->first = o->u.finding;
        if (o->u.finding.severity > TL_SEV_INFO)
            x->findings_sev++;
    }
    return true;
}

static void loop_init(loop_ctx *x, const tl_loop_cfg *cfg, void *mem) {
    tl_loop_ops ops = {
        .ctx = x,
        .ring_poll = lc_ring_poll,
        .wal_poll = lc_wal_poll,
        .ctl_poll = lc_ctl_poll,
        .engine_status = lc_engine_status,
        .send = lc_send,
        .reply_poll = lc_reply_poll,
        .fast_mode = lc_fast_mode,
        .fast_withdrawals = lc_fast_withdrawals,
        .emit = lc_emit,
    };
    tl_loop_init(x->loop, cfg, &ops, mem);
}

__attribute__((noinline)) static uint64_t stage_loop(loop_ctx *x, uint64_t want) {
    uint32_t idle = 0;
    for (uint64_t steps = 0; steps < STEPS_MAX && idle < STALL_STEPS; steps++) {
        uint32_t work = tl_loop_step(x->loop, mono_ns(), real_ns());
        const tl_loop_counters *c = &x->loop->c;
        idle = work == 0 && c->records_ring == want && c->records_wal == want ? idle + 1 : 0;
    }
    return x->loop->c.records_ring;
}

/* Every record was seen from both sources and compared, and nothing was
 * found. */
static void loop_verify(const loop_ctx *x, uint64_t want) {
    const tl_loop *l = x->loop;
    if (l->c.records_ring != want || l->c.records_wal != want)
        die("loop: records_ring or records_wal is not the number written");
    if (x->outs[TL_OUT_FINDING] != 0 || l->log.findings_total != 0) {
        char line[1024];
        tl_finding_json(&x->first, line, sizeof line);
        fprintf(stderr, "first finding: %s\n", line);
        die("loop: findings in a clean log");
    }
    uint64_t held = want < l->log.win.capacity ? want : l->log.win.capacity;
    for (uint64_t s = want - held + 1; s <= want; s++) {
        const tl_win_entry *e = tl_window_find((tl_window *)&l->log.win, s);
        if (e == NULL || e->srcs != (TL_WIN_SRC_RING | TL_WIN_SRC_WAL))
            die("loop: a seq in the window was not seen by both sources");
    }
}

static uint64_t run_loop(loop_ctx *x, const tl_loop_cfg *cfg, void *mem, const char *wal_dir,
                         uint64_t want, double *seconds) {
    consumer_start(&x->cons, x->map);
    memset(&x->durable, 0, sizeof x->durable);
    memset(x->outs, 0, sizeof x->outs);
    x->findings_sev = 0;
    x->tail = tail_open(wal_dir);
    /* tl_loop_init clears the 56 MiB window: outside the timed part. */
    loop_init(x, cfg, mem);
    uint64_t t0 = mono_ns();
    uint64_t n = stage_loop(x, want);
    *seconds = (double)(mono_ns() - t0) / 1e9;
    loop_verify(x, want);
    tl_wal_tail_close(x->tail);
    tl_ring_consumer_free(&x->cons);
    return n;
}

/* ---- stage: the offline reader (extra) ---- */

static void reader_sink(void *ctx, const tl_finding *f) {
    (void)ctx;
    (void)f;
}

__attribute__((noinline)) static uint64_t stage_reader(const char *wal_dir, uint64_t window) {
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.window_records = window;
    o.buf_bytes = 4u << 20;
    o.sink = (tl_sink){reader_sink, NULL};
    tl_wal_summary sum;
    if (tl_wal_read_dir(wal_dir, &o, &sum) != TL_WAL_OK || sum.findings_total != 0)
        die("reader: findings in a clean log");
    return sum.records_total;
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct series {
    const char *key;
    const char *what;
    double v[MAX_RUNS];
    unsigned n;
} series;

static void stats_of(const series *s, double *med, double *lo, double *hi) {
    double t[MAX_RUNS];
    memcpy(t, s->v, sizeof(double) * s->n);
    qsort(t, s->n, sizeof(double), cmp_double);
    *lo = t[0];
    *hi = t[s->n - 1];
    *med = s->n % 2 ? t[s->n / 2] : (t[s->n / 2 - 1] + t[s->n / 2]) / 2;
}

int main(int argc, char **argv) {
    uint64_t n = 1ull << 22;
    unsigned runs = 7;
    int cpu = 1;
    uint64_t window = 1u << 20;
    const char *base = "/dev/shm";
    const char *json_path = "bench_check.json";
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--records") == 0 && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            base = argv[++i];
        else if (strcmp(argv[i], "--cpu") == 0 && i + 1 < argc)
            cpu = atoi(argv[++i]);
        else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc)
            window = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json_path = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--tail-buf") == 0 && i + 1 < argc)
            tail_buf_bytes = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--tail-ahead") == 0 && i + 1 < argc)
            tail_read_ahead = (uint32_t)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr,
                    "usage: %s [--records N] [--runs R] [--dir TMPFS_DIR] [--cpu C] [--window W] "
                    "[--json FILE] [--only ring|wal|loop|reader] [--tail-buf BYTES] "
                    "[--tail-ahead N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || n < 1024 || window < 2 || (window & (window - 1)) != 0)
        die("bad arguments");
    bool do_ring = !only || strcmp(only, "ring") == 0;
    bool do_wal = !only || strcmp(only, "wal") == 0;
    bool do_loop = !only || strcmp(only, "loop") == 0;
    bool do_reader = !only || strcmp(only, "reader") == 0;

    char dir[512], wal_dir[600], ring_name[64], cmd[700];
    snprintf(dir, sizeof dir, "%s/tally-bench-check-%d", base, (int)getpid());
    snprintf(wal_dir, sizeof wal_dir, "%s/wal", dir);
    snprintf(ring_name, sizeof ring_name, "bench-check-%d", (int)getpid());
    if (mkdir(dir, 0700) != 0)
        die("mkdir");

    /* ---- setup: the engine writes the log and fills the ring ---- */
    engine eng;
    memset(&eng, 0, sizeof eng);
    eng.beat_cpu = cpu == 0 ? 1 : 0;
    uint64_t capacity = pow2_at_least((n + 4096) * REC_BYTES + 2 * TL_PAD_LIMIT_BYTES);
    uint8_t id[TL_ID_BYTES] = "bench-check-0001";
    if (tl_ring_create(ring_name, capacity, id, NULL, &eng.ring) != TL_RING_OK)
        die("tl_ring_create");
    fprintf(stderr, "writing %" PRIu64 " records (WAL on %s, ring %" PRIu64 " MiB)...\n", n, base,
            capacity >> 20);
    uint64_t total = write_log(&eng, wal_dir, n);
    pthread_t beat;
    if (pthread_create(&beat, NULL, eng_beat_main, &eng) != 0)
        die("pthread_create");
    pin(cpu);

    tl_ring_map map;
    if (tl_ring_map_open_wait(&map, ring_name, 5000) != TL_RING_OK)
        die("tl_ring_map_open_wait");
    tl_ring_durable_reader dr;
    memset(&dr, 0, sizeof dr);
    tl_ring_durable durable;
    tl_ring_durable_read(&dr, map.ctl, mono_ns(), 250, &durable);
    if (durable.seq != total)
        die("the durable point is not the last record");

    tl_loop_cfg cfg;
    tl_loop_cfg_defaults(&cfg);
    cfg.window_records = window;
    void *mem = aligned_alloc(64, (tl_loop_mem_bytes(&cfg) + 63) & ~(size_t)63);
    tl_loop *loop = aligned_alloc(64, (sizeof *loop + 63) & ~(size_t)63);
    loop_ctx *x = calloc(1, sizeof *x);
    if (mem == NULL || loop == NULL || x == NULL)
        die("out of memory");
    x->loop = loop;
    x->map = &map;

    enum { S_LOOP, S_RING, S_WAL, S_STREAMS, S_READER, NS };
    series s[NS] = {
        [S_LOOP] = {"loop", "loop: ring + WAL cross-check, all checks"},
        [S_RING] = {"ring", "ring consumer alone (copy, checksum, rules 1-3)"},
        [S_WAL] = {"wal", "WAL tailer alone (io_uring from tmpfs, walseg rules 1-3)"},
        [S_STREAMS] = {"streams", "rest of the loop: streams, window, meaning (loop - ring - wal)"},
        [S_READER] = {"reader", "offline verified replay io/wal_reader (extra)"},
    };
    double ns_rec[NS][MAX_RUNS];
    for (unsigned r = 0; r < runs; r++) {
        double t[NS] = {0};
        if (do_loop) {
            double sec;
            run_loop(x, &cfg, mem, wal_dir, total, &sec);
            t[S_LOOP] = sec;
        }
        if (do_ring) {
            uint64_t t0 = mono_ns();
            stage_ring(&map, total);
            t[S_RING] = (double)(mono_ns() - t0) / 1e9;
        }
        if (do_wal) {
            uint64_t t0 = mono_ns();
            stage_wal(wal_dir, &durable, total);
            t[S_WAL] = (double)(mono_ns() - t0) / 1e9;
        }
        if (do_reader) {
            uint64_t t0 = mono_ns();
            if (stage_reader(wal_dir, window) != total)
                die("reader: record count");
            t[S_READER] = (double)(mono_ns() - t0) / 1e9;
        }
        t[S_STREAMS] = t[S_LOOP] - t[S_RING] - t[S_WAL];
        for (int k = 0; k < NS; k++) {
            ns_rec[k][r] = t[k] * 1e9 / (double)total;
            s[k].v[s[k].n++] = t[k] > 0 ? (double)total / t[k] / 1e6 : 0;
        }
        fprintf(stderr,
                "run %u: loop %.2f M/s (%.1f ns/rec); ring %.1f ns, wal %.1f ns, streams %.1f ns, "
                "reader %.1f ns per record\n",
                r + 1, s[S_LOOP].v[r], ns_rec[S_LOOP][r], ns_rec[S_RING][r], ns_rec[S_WAL][r],
                ns_rec[S_STREAMS][r], ns_rec[S_READER][r]);
    }

    printf("\n%" PRIu64 " records of %u bytes (%" PRIu64 " with openers), %u runs, cpu %d, "
           "window %" PRIu64 ", xxh3=%s\n\n",
           n, REC_BYTES, total, runs, cpu, window, tl_xxh3_impl_name(tl_xxh3_active()));
    printf("| stage | M rec/s median | min | max | ns/rec median |\n|---|---|---|---|---|\n");
    double med[NS], lo[NS], hi[NS], nsmed[NS];
    for (int k = 0; k < NS; k++) {
        stats_of(&s[k], &med[k], &lo[k], &hi[k]);
        series tmp = {.n = s[k].n};
        memcpy(tmp.v, ns_rec[k], sizeof(double) * s[k].n);
        double a, b;
        stats_of(&tmp, &nsmed[k], &a, &b);
        if (k == S_STREAMS)
            printf("| %s | | | | %.1f |\n", s[k].what, nsmed[k]);
        else
            printf("| %s | %.2f | %.2f | %.2f | %.1f |\n", s[k].what, med[k], lo[k], hi[k],
                   nsmed[k]);
    }
    bool met = med[S_LOOP] >= 20.0;
    if (do_loop)
        printf("\nTarget (issue 3): records checked per second, one core, ring + WAL "
               "cross-check, all checks >= 20 M/s on 120-byte records: %s (median %.2f M/s)\n",
               met ? "met" : "NOT met", med[S_LOOP]);

    FILE *f = fopen(json_path, "w");
    if (f == NULL)
        die("cannot write the JSON file");
    fprintf(f,
            "{\"bench\":\"check\",\"records\":%" PRIu64 ",\"record_bytes\":%u,\"runs\":%u,"
            "\"cpu\":%d,\"window\":%" PRIu64 ",\"xxh3\":\"%s\",\"stages\":{",
            total, REC_BYTES, runs, cpu, window, tl_xxh3_impl_name(tl_xxh3_active()));
    for (int k = 0; k < NS; k++) {
        fprintf(f,
                "%s\"%s\":{\"mrec_s\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f},"
                "\"ns_per_record_median\":%.2f,\"runs_mrec_s\":[",
                k ? "," : "", s[k].key, med[k], lo[k], hi[k], nsmed[k]);
        for (unsigned r = 0; r < s[k].n; r++)
            fprintf(f, "%s%.3f", r ? "," : "", s[k].v[r]);
        fprintf(f, "]}");
    }
    fprintf(f, "},\"target_20M_met\":%s}\n", do_loop && met ? "true" : "false");
    fclose(f);

    atomic_store_explicit(&eng.stop, true, memory_order_relaxed);
    pthread_join(beat, NULL);
    tl_ring_map_close(&map);
    tl_ring_close(eng.ring);
    char path[128];
    snprintf(path, sizeof path, "/tally.%s", ring_name);
    tl_ring_obj_unlink(path, true);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", dir);
    free(x);
    free(loop);
    free(mem);
    return 0;
}
