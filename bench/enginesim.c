/* enginesim.c: tally-enginesim, the reference matching engine, built on
 * libtally_engine (admin/libtally_engine.h) and nothing else of tally.
 *
 * A price-time priority book per symbol (enginesim_book.c), driven by a
 * seeded random order flow over N symbols at a target rate (Poisson
 * arrivals) or flat out, for a number of records or seconds. It writes
 * ORDER_NEW, TRADE (maker/taker), ORDER_CANCEL, a CHECKPOINT every K
 * records (state hash and running sums), HEARTBEAT when idle; it serves the
 * admin socket and enforces the modes through the library, and injects the
 * faults of --fault through the library's fault API. With --fixed-clock two
 * runs with one seed write byte-identical WAL segments and ring records.
 *
 * One thread runs everything here (the library's threading contract): the
 * flow, the admin commands (inside tl_engine_poll), cancel_all, replay.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin/libtally_engine.h"
#include "enginesim_book.h"
#include "enginesim_lease.h"
#include "enginesim_standby.h"

#define FIXED_CLOCK_BASE_NS 1795000000000000000ull /* the spec's example clock */
#define FLAT_OUT_GAP_NS     1000ull                /* virtual time per event, flat out */
#define BURST_EVENTS        64u
#define POLL_EVERY_NS       100000ull /* admin socket and dead-man: every 100 us */
#define ADMIN_LOG_MAX       4096u
#define FAULTS_MAX          TL_ENGINE_FAULTS_MAX
#define HEARTBEATS_PER_GAP  1000u

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

typedef struct opts {
    const char *ring;
    const char *wal;
    const char *admin_socket;
    const char *sidecar_key;
    const char *operator_key;
    const char *latency_log;
    uint64_t seed;
    uint32_t symbols;
    uint64_t rate;
    uint64_t records;
    double seconds;
    uint64_t segment_bytes;
    uint64_t ring_capacity;
    uint64_t checkpoint_every;
    bool fixed_clock;
    uint32_t deadman_ms;
    enum tl_engine_fallback fallback;
    uint64_t fence;
    bool quiet;
    bool stats;
    uint32_t heartbeat_ms;
    uint32_t orders_per_symbol;
    uint32_t linger_ms;
    bool inline_sync;
    bool spin;                       /* never sleep: poll the admin socket every pass */
    enum tl_engine_fault every_kind; /* --fault-every: a fault every `every_n` records */
    uint64_t every_n;
    uint32_t nfaults;
    struct {
        enum tl_engine_fault kind;
        uint64_t seq;
    } faults[FAULTS_MAX];
} opts;

typedef struct admin_seen {
    char cmd[20];
    uint8_t id[TL_ID_BYTES];
    bool has_id;
    uint64_t arrival_mono_ns;
} admin_seen;

typedef struct sim {
    opts o;
    tl_engine *e;
    sim_state st;
    uint64_t rng[4];
    uint64_t vt_ns; /* the virtual clock (--fixed-clock) */
    uint64_t last_seq;
    uint64_t last_ckpt_seq;
    uint64_t first_seq; /* next seq when the flow started */
    /* counters */
    uint64_t events, orders_new, orders_market, cancels, rejected_new, rejected_cancel;
    uint64_t heartbeats, checkpoints, mode_changes, trades_run;
    uint64_t faults_fired;
    uint64_t every_fired; /* faults_fired when --fault-every last re-armed */
    uint64_t pings;
    uint64_t last_epoch;
    uint32_t admin_n;
    uint64_t admin_total;
    admin_seen admin[ADMIN_LOG_MAX];
    FILE *lat;
    int exit_code;
    uint64_t replay_max_ts;
    uint64_t event_ts;  /* the current event's stamp; 0 outside an event */
    tl_es_lease *lease; /* --etcd: leader election (enginesim_lease.h); NULL without */
} sim;

/* ---- clocks, rng ---- */

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static uint64_t rnd(sim *s) {
    uint64_t *r = s->rng;
    uint64_t out = rotl(r[1] * 5, 7) * 9;
    uint64_t t = r[1] << 17;
    r[2] ^= r[0];
    r[3] ^= r[1];
    r[1] ^= r[2];
    r[0] ^= r[3];
    r[2] ^= t;
    r[3] = rotl(r[3], 45);
    return out;
}

static void rng_seed(sim *s, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
}

static uint64_t ts_now(sim *s) {
    return s->o.fixed_clock ? s->vt_ns : clock_ns(CLOCK_REALTIME);
}

/* The stamp of the records of one event: read once per event (an engine
 * stamps the event it matches, not each record it writes). */
static uint64_t ts_event(sim *s) {
    return s->event_ts != 0 ? s->event_ts : ts_now(s);
}

static uint64_t lib_clock(void *ctx) {
    return ts_now(ctx);
}

/* ---- output ---- */

static void hex16(const uint8_t id[TL_ID_BYTES], char out[33]) {
    for (unsigned i = 0; i < TL_ID_BYTES; i++)
        snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static void lat_line(sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lat_line(sim *s, const char *fmt, ...) {
    if (s->lat == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(s->lat, fmt, ap);
    va_end(ap);
    fputc('\n', s->lat);
    /* No flush here: a write() on the engine's hot path right after a
     * faulty record would be measured as tally's latency. The 64 MiB
     * stdio buffer is flushed at exit and before a crash fault's _exit
     * (die_if_crashed). */
}

/* ---- appends ---- */

static void die_if_crashed(sim *s) {
    if (tl_engine_fault_crashed(s->e)) {
        if (s->lat != NULL)
            fflush(s->lat);
        fflush(stdout);
        fflush(stderr);
        tl_engine_fault_crash_now(s->e);
    }
}

static int put(sim *s, uint16_t kind, uint32_t symbol, const void *body, uint32_t len) {
    uint64_t seq = 0;
    enum tl_engine_err rc = tl_engine_append(s->e, kind, symbol, body, len, ts_event(s), &seq);
    if (rc != TL_ENGINE_OK) {
        die_if_crashed(s);
        const char *op = NULL;
        int en = 0;
        const char *we = tl_engine_wal_err(s->e, &op, &en);
        fprintf(stderr, "tally-enginesim: append %s failed: %s (wal %s%s%s)\n", tl_kind_name(kind),
                tl_engine_err_name(rc), we, op ? ", " : "", op ? op : "");
        s->exit_code = 2;
        g_stop = 1;
        return -1;
    }
    if (seq > s->last_seq)
        s->last_seq = seq;
    return 0;
}

static int emit_trade(void *ctx, uint32_t symbol, const tl_body_trade *t) {
    sim *s = ctx;
    s->trades_run++;
    return put(s, TL_KIND_TRADE, symbol, t, sizeof *t);
}

static int emit_cancel(void *ctx, uint32_t symbol, const tl_body_order_cancel *c) {
    sim *s = ctx;
    s->cancels++;
    return put(s, TL_KIND_ORDER_CANCEL, symbol, c, sizeof *c);
}

static int maybe_checkpoint(sim *s) {
    if (s->o.checkpoint_every == 0 || s->last_seq - s->last_ckpt_seq < s->o.checkpoint_every)
        return 0;
    tl_body_checkpoint c;
    sim_checkpoint(&s->st, &c);
    if (put(s, TL_KIND_CHECKPOINT, 0, &c, sizeof c) != 0)
        return -1;
    s->checkpoints++;
    s->last_ckpt_seq = s->last_seq;
    return 0;
}

/* ---- the library's callbacks ---- */

static int cb_cancel_all(void *ctx, uint32_t scope) {
    sim *s = ctx;
    uint32_t lo = scope == 0 ? 1 : scope, hi = scope == 0 ? s->st.nsym : scope;
    if (scope != 0 && !sim_symbol_valid(&s->st, scope))
        return 0; /* a symbol this engine does not trade: nothing rests */
    for (uint32_t sym = lo; sym <= hi; sym++) {
        uint64_t id;
        /* Bounded: each step removes one resting order. */
        while (sim_pick_resting(&s->st, sym, 0, &id)) {
            tl_body_order_cancel c;
            bool ok = sim_cancel(&s->st, id, &c);
            if (!ok || emit_cancel(s, sym, &c) != 0)
                return -1;
        }
    }
    return 0;
}

static void cb_replay(void *ctx, const uint8_t *rec, uint32_t len) {
    sim *s = ctx;
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    if (h->ts_ns > s->replay_max_ts)
        s->replay_max_ts = h->ts_ns;
    if (h->kind == TL_KIND_CHECKPOINT)
        s->last_ckpt_seq = h->seq;
    sim_replay(&s->st, rec, len);
}

static void cb_mode_change(void *ctx, uint32_t scope, uint32_t mode, bool wd,
                           const uint8_t id[TL_ID_BYTES], uint64_t seq) {
    sim *s = ctx;
    s->mode_changes++;
    char hex[33];
    hex16(id, hex);
    lat_line(s,
             "{\"event\":\"mode_change\",\"scope\":%u,\"mode\":\"%s\",\"withdrawals_halted\":%s,"
             "\"command_id\":\"%s\",\"seq\":%" PRIu64 ",\"mono_ns\":%" PRIu64 "}",
             scope, tl_mode_name(mode), wd ? "true" : "false", hex, seq, clock_ns(CLOCK_MONOTONIC));
}

static void cb_admin_line(void *ctx, const char *cmd, const uint8_t *id, uint64_t arrival) {
    sim *s = ctx;
    if (strcmp(cmd, "ping") == 0) {
        s->pings++; /* tally keeps its path warm with pings: counted, not listed */
        return;
    }
    s->admin_total++;
    if (s->admin_n < ADMIN_LOG_MAX) {
        admin_seen *a = &s->admin[s->admin_n++];
        snprintf(a->cmd, sizeof a->cmd, "%s", cmd);
        a->has_id = id != NULL;
        if (id != NULL)
            memcpy(a->id, id, TL_ID_BYTES);
        a->arrival_mono_ns = arrival;
    }
    char hex[33] = "";
    if (id != NULL)
        hex16(id, hex);
    lat_line(s,
             "{\"event\":\"admin_line\",\"cmd\":\"%s\",\"id\":\"%s\",\"arrival_mono_ns\":%" PRIu64
             "}",
             cmd, hex, arrival);
}

static void cb_fault(void *ctx, enum tl_engine_fault kind, uint64_t seq, uint64_t t) {
    sim *s = ctx;
    s->faults_fired++;
    lat_line(s,
             "{\"event\":\"fault\",\"kind\":\"%s\",\"seq\":%" PRIu64 ",\"publish_mono_ns\":%" PRIu64
             "}",
             tl_engine_fault_name(kind), seq, t);
}

/* The hot path's view of the fast-path words: one load per order; the
 * first order after tally raises a word logs when it saw it. */
static void check_fast(sim *s, uint32_t symbol) {
    uint64_t ep = tl_engine_fast_epoch(s->e);
    if (__builtin_expect(ep == s->last_epoch, 1))
        return;
    uint64_t t = clock_ns(CLOCK_MONOTONIC);
    s->last_epoch = ep;
    uint32_t g = tl_engine_fast_mode(s->e, 0);
    uint32_t m = tl_engine_fast_mode(s->e, symbol);
    lat_line(s,
             "{\"event\":\"fast_path\",\"epoch\":%" PRIu64
             ",\"fast_global_mode\":\"%s\",\"symbol\":%u,"
             "\"fast_mode\":\"%s\",\"seen_mono_ns\":%" PRIu64 "}",
             ep, tl_mode_name(g), symbol, tl_mode_name(m), t);
}

/* ---- the flow ---- */

static int one_event(sim *s) {
    sim_state *st = &s->st;
    uint32_t sym = 1 + (uint32_t)(rnd(s) % st->nsym);
    sim_book *b = sim_book_of(st, sym);
    /* The reference price walks, staying inside the ladder. */
    b->mid += (int64_t)(rnd(s) % 3) - 1;
    int64_t lo = b->base_price + 64, hi = b->base_price + SIM_LEVELS - 64;
    b->mid = b->mid < lo ? lo : b->mid > hi ? hi : b->mid;
    uint64_t r = rnd(s) % 100;
    uint64_t r_pick = rnd(s);
    uint64_t r_side = rnd(s);
    uint64_t r_price = rnd(s);
    uint64_t r_qty = rnd(s);
    uint64_t r_acct = rnd(s);
    s->events++;
    check_fast(s, sym);
    uint32_t mode = tl_engine_mode(s->e, sym);
    bool room = sim_has_room(st, sym);
    if (r >= 65 || !room) {
        uint64_t id;
        if (sim_pick_resting(st, sym, r_pick, &id)) {
            if (mode >= TL_MODE_HARD_HALT) {
                s->rejected_cancel++;
                return 0;
            }
            tl_body_order_cancel c;
            bool ok = sim_cancel(st, id, &c);
            if (!ok)
                abort(); /* sim_pick_resting gave a resting order */
            return emit_cancel(s, sym, &c);
        }
        if (!room)
            return 0;
    }
    if (mode >= TL_MODE_CANCEL_ONLY) {
        /* CANCEL_ONLY rejects new orders; SOFT_HALT and HARD_HALT too. */
        s->rejected_new++;
        return 0;
    }
    tl_body_order_new o;
    memset(&o, 0, sizeof o);
    o.order_id = st->next_order_id;
    o.account = 1 + r_acct % 1000;
    o.side = (r_side & 1) ? TL_SIDE_BUY : TL_SIDE_SELL;
    o.qty = 1 + (int64_t)(r_qty % 100);
    if (r < 10) {
        o.type = TL_ORDER_MARKET;
        s->orders_market++;
    } else {
        o.type = TL_ORDER_LIMIT;
        /* Mostly passive, sometimes crossing by a few ticks. */
        int64_t off = (int64_t)(r_price % 25);
        o.price = o.side == TL_SIDE_BUY ? b->mid - 20 + off : b->mid + 20 - off;
    }
    s->orders_new++;
    if (put(s, TL_KIND_ORDER_NEW, sym, &o, sizeof o) != 0)
        return -1;
    sim_emit em = {.ctx = s, .trade = emit_trade, .cancel = emit_cancel};
    int rc = sim_new_order(st, &o, sym, true, &em);
    if (rc == -2)
        abort(); /* room and the price range were checked above */
    return rc;
}

/* Exponential inter-arrival for a Poisson flow at o.rate per second. */
static uint64_t next_gap_ns(sim *s) {
    if (s->o.rate == 0)
        return FLAT_OUT_GAP_NS;
    double u = ((double)(rnd(s) >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
    double gap = -log(u) * 1e9 / (double)s->o.rate;
    return gap < 1.0 ? 1 : (uint64_t)gap;
}

/* --fixed-clock: idle time is virtual too; HEARTBEATs where the virtual gap
 * is longer than the heartbeat period. */
static int virtual_gap(sim *s, uint64_t gap) {
    uint64_t hb = (uint64_t)s->o.heartbeat_ms * 1000000ull;
    uint64_t start = s->vt_ns;
    if (hb != 0) {
        for (uint32_t k = 1; k <= HEARTBEATS_PER_GAP && (uint64_t)k * hb < gap; k++) {
            s->vt_ns = start + (uint64_t)k * hb;
            if (put(s, TL_KIND_HEARTBEAT, 0, NULL, 0) != 0)
                return -1;
            s->heartbeats++;
        }
    }
    s->vt_ns = start + gap;
    return 0;
}

static void sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL); /* EINTR: a signal, the loop looks at g_stop */
}

static int run(sim *s) {
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
    uint64_t next_due = t0, last_poll = 0, last_record = t0, flow_end = 0;
    uint64_t seconds_ns = (uint64_t)(s->o.seconds * 1e9);
    uint64_t seen_seq = s->last_seq; /* a record was written since: not idle */
    bool flow_done = false;
    while (!g_stop) {
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        /* --etcd: only a leader writes records (HEARTBEATs included). */
        bool lead = s->lease == NULL || tl_es_lease_step(s->lease, s->e, now);
        uint64_t produced = s->last_seq + 1 - s->first_seq;
        if (!flow_done && ((s->o.records != 0 && produced >= s->o.records) ||
                           (seconds_ns != 0 && now - t0 >= seconds_ns))) {
            flow_done = true;
            flow_end = now;
        }
        if (flow_done && now - flow_end >= (uint64_t)s->o.linger_ms * 1000000ull)
            break;
        bool did = false;
        if (!flow_done && lead && (s->o.rate == 0 || now >= next_due)) {
            for (uint32_t k = 0; k < BURST_EVENTS && !g_stop; k++) {
                uint64_t gap = next_gap_ns(s);
                if (s->o.fixed_clock && virtual_gap(s, gap) != 0)
                    return -1;
                s->event_ts = ts_now(s);
                int erc = one_event(s);
                if (erc == 0)
                    erc = maybe_checkpoint(s);
                s->event_ts = 0;
                if (erc != 0)
                    return -1;
                if (s->o.records != 0 && s->last_seq + 1 - s->first_seq >= s->o.records)
                    break;
                if (s->o.rate != 0) {
                    next_due += gap;
                    if (next_due > now)
                        break;
                }
            }
            did = true;
        }
        if (s->last_seq != seen_seq) {
            seen_seq = s->last_seq;
            last_record = now;
        }
        if (s->o.every_n != 0 && s->faults_fired != s->every_fired) {
            /* --fault-every: the next one, every_n records after this one */
            s->every_fired = s->faults_fired;
            (void)tl_engine_fault_arm(s->e, s->o.every_kind, s->last_seq + s->o.every_n);
        }
        if (s->o.spin)
            check_fast(s, 1);
        if (!did || s->o.spin || now - last_poll >= POLL_EVERY_NS) {
            enum tl_engine_err err;
            if (tl_engine_poll(s->e, clock_ns(CLOCK_REALTIME), &err) < 0) {
                die_if_crashed(s);
                fprintf(stderr, "tally-enginesim: engine failed: %s (wal %s)\n",
                        tl_engine_err_name(err), tl_engine_wal_err(s->e, NULL, NULL));
                s->exit_code = 2;
                return -1;
            }
            last_poll = now;
            if (maybe_checkpoint(s) != 0) /* admin commands write records too */
                return -1;
        }
        if (did)
            continue;
        /* Idle. In real time a HEARTBEAT marks the quiet; with the fixed
         * clock the virtual gaps do (the bytes must not depend on timing). */
        uint64_t hb = (uint64_t)s->o.heartbeat_ms * 1000000ull;
        if (lead && !s->o.fixed_clock && hb != 0 && now - last_record >= hb) {
            if (put(s, TL_KIND_HEARTBEAT, 0, NULL, 0) != 0 || maybe_checkpoint(s) != 0)
                return -1;
            s->heartbeats++;
            last_record = now;
        }
        tl_engine_idle(s->e);
        if (s->o.spin)
            continue;               /* the admin socket is served on the next pass */
        uint64_t wait = 1000000ull; /* at most 1 ms: the admin socket stays served */
        if (!flow_done && next_due > now && next_due - now < wait)
            wait = next_due - now;
        sleep_ns(wait);
    }
    return 0;
}

/* ---- stats ---- */

static void print_stats(sim *s, double elapsed_s) {
    tl_engine_stats es;
    tl_engine_get_stats(s->e, &es);
    uint64_t produced = s->last_seq + 1 - s->first_seq;
    printf("{\"records\":%" PRIu64 ",\"seq\":%" PRIu64 ",\"durable_seq\":%" PRIu64
           ",\"fence\":%" PRIu64 ",\"events\":%" PRIu64 ",\"orders_new\":%" PRIu64
           ",\"orders_market\":%" PRIu64 ",\"cancels\":%" PRIu64 ",\"trades\":%" PRIu64
           ",\"trades_total\":%" PRIu64 ",\"qty_total\":%" PRIu64 ",\"notional_total\":%" PRIu64
           ",\"open_orders\":%" PRIu64 ",\"rejected_new\":%" PRIu64 ",\"rejected_cancel\":%" PRIu64
           ",\"heartbeats\":%" PRIu64 ",\"checkpoints\":%" PRIu64
           ",\"replay_checkpoints_checked\":%" PRIu64 ",\"replay_checkpoint_mismatches\":%" PRIu64
           ",\"replay_unknown\":%" PRIu64 ",\"elapsed_s\":%.6f,\"records_per_s\":%.0f",
           produced, es.next_seq - 1, es.durable_seq, es.fence, s->events, s->orders_new,
           s->orders_market, s->cancels, s->trades_run, s->st.trades_total, s->st.qty_total,
           s->st.notional_total, s->st.open_orders, s->rejected_new, s->rejected_cancel,
           s->heartbeats, s->checkpoints, s->st.ckpt_checked, s->st.ckpt_mismatch,
           s->st.replay_unknown, elapsed_s, elapsed_s > 0 ? (double)produced / elapsed_s : 0.0);
    printf(",\"ring_position\":%" PRIu64 ",\"ring_pads\":%" PRIu64 ",\"faults_fired\":%" PRIu64,
           es.ring_position, es.ring_pads, es.faults_fired);
    printf(",\"modes\":{\"global\":\"%s\",\"withdrawals_halted\":%s,\"symbols\":{",
           tl_mode_name(es.global_mode), tl_engine_withdrawals_halted(s->e) ? "true" : "false");
    bool first = true;
    for (uint32_t sym = 1; sym <= s->st.nsym; sym++) {
        uint32_t m = tl_engine_mode(s->e, sym);
        if (m == TL_MODE_NORMAL)
            continue;
        printf("%s\"SYM%03u\":\"%s\"", first ? "" : ",", sym, tl_mode_name(m));
        first = false;
    }
    printf("}},\"mode_changes\":%" PRIu64 ",\"deadman_fallbacks\":%" PRIu64
           ",\"admin\":{\"lines\":%" PRIu64 ",\"applied\":%" PRIu64 ",\"duplicates\":%" PRIu64
           ",\"rejected\":%" PRIu64 ",\"received\":[",
           s->mode_changes, es.deadman_fallbacks, es.admin_lines, es.admin_applied,
           es.admin_duplicates, es.admin_rejected);
    for (uint32_t i = 0; i < s->admin_n; i++) {
        char hex[33] = "";
        if (s->admin[i].has_id)
            hex16(s->admin[i].id, hex);
        printf("%s{\"cmd\":\"%s\",\"id\":\"%s\",\"arrival_mono_ns\":%" PRIu64 "}", i ? "," : "",
               s->admin[i].cmd, hex, s->admin[i].arrival_mono_ns);
    }
    printf("]}}\n");
    fflush(stdout);
}

/* ---- flags ---- */

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: tally-enginesim --ring NAME --wal DIR [options]\n"
        "\n"
        "The reference matching engine on libtally_engine: price-time books, a seeded\n"
        "random order flow, the admin socket, the dead-man, and fault injection.\n"
        "\n"
        "  --ring NAME               ring: /tally.NAME in /dev/shm, or a file path (with '/')\n"
        "  --wal DIR                 the WAL directory (created; recovered on restart)\n"
        "  --admin-socket PATH       serve the engine admin socket here\n"
        "  --sidecar-key FILE        32-byte key (needed with --admin-socket)\n"
        "  --operator-key FILE       32-byte operator key (may relax modes)\n"
        "  --seed N                  random flow seed (default 1)\n"
        "  --symbols N               symbols SYM001..SYMnnn (default 8)\n"
        "  --rate N                  records/s target, Poisson arrivals; 0 = flat out (default)\n"
        "  --records N               stop after this run appended N records (a halted engine\n"
        "                            writes few: add --seconds when commands may halt it)\n"
        "  --seconds S               stop after S seconds (decimals allowed)\n"
        "  --segment-bytes N         WAL segment size (K/M/G suffix; default 64M)\n"
        "  --ring-capacity N         ring data bytes, power of two >= 1M (default 64M)\n"
        "  --checkpoint-every K      a CHECKPOINT every K records (default 1000; 0 = none)\n"
        "  --fixed-clock             virtual clock: one seed gives identical WAL and ring bytes\n"
        "  --deadman MS              dead-man max age of tally's heartbeat (default 250; 0 = off)\n"
        "  --deadman-fallback safe|flatten   SAFE_MODE (CANCEL_ONLY) or cancel_all + CANCEL_ONLY\n"
        "  --fence F                 the fence this engine leads with (default 1)\n"
        "  --fault KIND@SEQ          inject a fault (repeatable): fork dup gap reorder parent\n"
        "                            fence_regress fence_unannounced flip crash\n"
        "  --heartbeat-ms N          a HEARTBEAT record after N ms without one (default 100)\n"
        "  --orders-per-symbol N     resting order capacity per symbol (default 4096)\n"
        "  --linger-ms N             after the flow ends, keep serving for N ms (default 0)\n"
        "  --inline-sync             no WAL sync thread (fdatasync on the engine thread)\n"
        "  --fault-every KIND@N      a fault every N records, forever (benchmarks)\n"
        "  --spin                    never sleep; serve the admin socket on every pass\n"
        "                            (benchmarks: admin arrivals are stamped when read)\n"
        "  --latency-log FILE        JSON lines: fault publishes, admin arrivals, fast-path "
        "sightings\n"
        "  --stats                   print JSON stats at exit\n"
        "  --quiet                   no start-up line on stderr\n"
        "  --help\n"
        "\n"
        "Exit: 0 clean (SIGTERM/SIGINT included), 1 usage or start-up error, 2 engine failure,\n"
        "137 a crash fault.\n");
}

static bool parse_u64(const char *s, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || s[0] == '-')
        return false;
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1024, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1024 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1024ull * 1024 * 1024, end++;
    if (*end != '\0' || (mul > 1 && v > UINT64_MAX / mul))
        return false;
    *out = (uint64_t)v * mul;
    return true;
}

static bool parse_u32(const char *s, uint32_t *out) {
    uint64_t v;
    if (!parse_u64(s, &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

enum {
    OPT_RING = 256,
    OPT_WAL,
    OPT_ADMIN,
    OPT_SIDECAR,
    OPT_OPERATOR,
    OPT_SEED,
    OPT_SYMBOLS,
    OPT_RATE,
    OPT_RECORDS,
    OPT_SECONDS,
    OPT_SEGMENT,
    OPT_RINGCAP,
    OPT_CKPT,
    OPT_FIXED,
    OPT_DEADMAN,
    OPT_FALLBACK,
    OPT_FENCE,
    OPT_QUIET,
    OPT_STATS,
    OPT_LATENCY,
    OPT_FAULT,
    OPT_FAULT_EVERY,
    OPT_SPIN,
    OPT_HB,
    OPT_OPS,
    OPT_LINGER,
    OPT_INLINE,
    OPT_HELP,
};

static int parse_args(opts *o, int argc, char **argv) {
    static const struct option longopts[] = {
        {"ring", required_argument, NULL, OPT_RING},
        {"wal", required_argument, NULL, OPT_WAL},
        {"admin-socket", required_argument, NULL, OPT_ADMIN},
        {"sidecar-key", required_argument, NULL, OPT_SIDECAR},
        {"operator-key", required_argument, NULL, OPT_OPERATOR},
        {"seed", required_argument, NULL, OPT_SEED},
        {"symbols", required_argument, NULL, OPT_SYMBOLS},
        {"rate", required_argument, NULL, OPT_RATE},
        {"records", required_argument, NULL, OPT_RECORDS},
        {"seconds", required_argument, NULL, OPT_SECONDS},
        {"segment-bytes", required_argument, NULL, OPT_SEGMENT},
        {"ring-capacity", required_argument, NULL, OPT_RINGCAP},
        {"checkpoint-every", required_argument, NULL, OPT_CKPT},
        {"fixed-clock", no_argument, NULL, OPT_FIXED},
        {"deadman", required_argument, NULL, OPT_DEADMAN},
        {"deadman-fallback", required_argument, NULL, OPT_FALLBACK},
        {"fence", required_argument, NULL, OPT_FENCE},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"stats", no_argument, NULL, OPT_STATS},
        {"latency-log", required_argument, NULL, OPT_LATENCY},
        {"fault", required_argument, NULL, OPT_FAULT},
        {"fault-every", required_argument, NULL, OPT_FAULT_EVERY},
        {"spin", no_argument, NULL, OPT_SPIN},
        {"heartbeat-ms", required_argument, NULL, OPT_HB},
        {"orders-per-symbol", required_argument, NULL, OPT_OPS},
        {"linger-ms", required_argument, NULL, OPT_LINGER},
        {"inline-sync", no_argument, NULL, OPT_INLINE},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->symbols = 8;
    o->segment_bytes = 64ull << 20;
    o->ring_capacity = 64ull << 20;
    o->checkpoint_every = 1000;
    o->deadman_ms = TL_ENGINE_DEFAULT_DEADMAN_MS;
    o->fallback = TL_ENGINE_FALLBACK_SAFE_MODE;
    o->fence = 1;
    o->heartbeat_ms = 100;
    o->orders_per_symbol = 4096;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
            case OPT_RING:
                o->ring = optarg;
                break;
            case OPT_WAL:
                o->wal = optarg;
                break;
            case OPT_ADMIN:
                o->admin_socket = optarg;
                break;
            case OPT_SIDECAR:
                o->sidecar_key = optarg;
                break;
            case OPT_OPERATOR:
                o->operator_key = optarg;
                break;
            case OPT_LATENCY:
                o->latency_log = optarg;
                break;
            case OPT_SEED:
                ok = parse_u64(optarg, &o->seed);
                break;
            case OPT_SYMBOLS:
                ok = parse_u32(optarg, &o->symbols) && o->symbols >= 1;
                break;
            case OPT_RATE:
                ok = parse_u64(optarg, &o->rate);
                break;
            case OPT_RECORDS:
                ok = parse_u64(optarg, &o->records);
                break;
            case OPT_SECONDS: {
                char *end = NULL;
                o->seconds = strtod(optarg, &end);
                ok = end != optarg && *end == '\0' && o->seconds >= 0 && o->seconds < 1e9;
                break;
            }
            case OPT_SEGMENT:
                ok = parse_u64(optarg, &o->segment_bytes);
                break;
            case OPT_RINGCAP:
                ok = parse_u64(optarg, &o->ring_capacity);
                break;
            case OPT_CKPT:
                ok = parse_u64(optarg, &o->checkpoint_every);
                break;
            case OPT_FIXED:
                o->fixed_clock = true;
                break;
            case OPT_DEADMAN:
                ok = parse_u32(optarg, &o->deadman_ms);
                break;
            case OPT_FALLBACK:
                if (strcmp(optarg, "safe") == 0)
                    o->fallback = TL_ENGINE_FALLBACK_SAFE_MODE;
                else if (strcmp(optarg, "flatten") == 0)
                    o->fallback = TL_ENGINE_FALLBACK_FLATTEN;
                else
                    ok = false;
                break;
            case OPT_FENCE:
                ok = parse_u64(optarg, &o->fence);
                break;
            case OPT_QUIET:
                o->quiet = true;
                break;
            case OPT_STATS:
                o->stats = true;
                break;
            case OPT_HB:
                ok = parse_u32(optarg, &o->heartbeat_ms);
                break;
            case OPT_OPS:
                ok = parse_u32(optarg, &o->orders_per_symbol) && o->orders_per_symbol > 0;
                break;
            case OPT_LINGER:
                ok = parse_u32(optarg, &o->linger_ms);
                break;
            case OPT_INLINE:
                o->inline_sync = true;
                break;
            case OPT_FAULT: {
                const char *at = strchr(optarg, '@');
                uint64_t seq = 0;
                enum tl_engine_fault k = at ? tl_engine_fault_parse(optarg, (size_t)(at - optarg))
                                            : TL_ENGINE_FAULT_NONE;
                ok = k != TL_ENGINE_FAULT_NONE && parse_u64(at + 1, &seq) && seq > 0 &&
                     o->nfaults < FAULTS_MAX;
                if (ok) {
                    o->faults[o->nfaults].kind = k;
                    o->faults[o->nfaults].seq = seq;
                    o->nfaults++;
                }
                break;
            }
            case OPT_FAULT_EVERY: {
                const char *at = strchr(optarg, '@');
                enum tl_engine_fault k = at ? tl_engine_fault_parse(optarg, (size_t)(at - optarg))
                                            : TL_ENGINE_FAULT_NONE;
                ok =
                    k != TL_ENGINE_FAULT_NONE && parse_u64(at + 1, &o->every_n) && o->every_n >= 16;
                o->every_kind = k;
                break;
            }
            case OPT_SPIN:
                o->spin = true;
                break;
            case OPT_HELP:
                usage(stdout);
                exit(0);
            default:
                usage(stderr);
                return -1;
        }
        if (!ok) {
            fprintf(stderr, "tally-enginesim: bad value for --%s: %s\n",
                    longopts[c - OPT_RING].name, optarg ? optarg : "");
            return -1;
        }
    }
    if (optind != argc || o->ring == NULL || o->wal == NULL) {
        fprintf(stderr, "tally-enginesim: --ring and --wal are required\n");
        usage(stderr);
        return -1;
    }
    if (o->admin_socket != NULL && o->sidecar_key == NULL) {
        fprintf(stderr, "tally-enginesim: --admin-socket needs --sidecar-key\n");
        return -1;
    }
    return 0;
}

/* ---- main ---- */

int main(int argc, char **argv) {
    /* --standby: a standby that follows a leader's log (enginesim_standby.c) */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--standby") == 0)
            return tl_enginesim_standby_main(argc, argv);
    static sim s_storage; /* large (admin log): not on the stack */
    sim *s = &s_storage;
    tl_es_lease_opts lease_opts;
    if (tl_es_lease_args(&argc, argv, &lease_opts) != 0 || parse_args(&s->o, argc, argv) != 0)
        return 1;
    const opts *o = &s->o;
    if (sim_state_init(&s->st, o->symbols, o->orders_per_symbol) != 0) {
        fprintf(stderr, "tally-enginesim: cannot allocate the books\n");
        return 1;
    }
    if (o->latency_log != NULL) {
        s->lat = fopen(o->latency_log, "a");
        if (s->lat != NULL)
            (void)setvbuf(s->lat, NULL, _IOFBF, 64u << 20);
        if (s->lat == NULL) {
            fprintf(stderr, "tally-enginesim: %s: %s\n", o->latency_log, strerror(errno));
            return 1;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    tl_engine_symbol *syms = calloc(o->symbols, sizeof *syms);
    char(*names)[TL_SYMBOL_NAME_MAX + 1] = calloc(o->symbols, sizeof *names);
    if (syms == NULL || names == NULL)
        return 1;
    for (uint32_t i = 0; i < o->symbols; i++) {
        snprintf(names[i], sizeof names[i], "SYM%03u", i + 1);
        syms[i] = (tl_engine_symbol){.id = i + 1, .name = names[i]};
    }
    uint8_t fixed_id[TL_ID_BYTES];
    uint64_t x = o->seed ^ 0x656e67696e656964ull; /* "engineid" */
    for (unsigned i = 0; i < TL_ID_BYTES; i += 8) {
        uint64_t v = splitmix64(&x);
        memcpy(fixed_id + i, &v, 8);
    }
    s->vt_ns = FIXED_CLOCK_BASE_NS;

    tl_engine_config cfg;
    tl_engine_config_default(&cfg);
    cfg.wal_dir = o->wal;
    cfg.segment_bytes = o->segment_bytes;
    cfg.sync_thread = !o->inline_sync;
    cfg.ring_name = o->ring;
    cfg.ring_capacity = o->ring_capacity;
    cfg.admin_socket = o->admin_socket;
    cfg.sidecar_key_path = o->sidecar_key;
    cfg.operator_key_path = o->operator_key;
    cfg.deadman_ms = o->deadman_ms;
    cfg.deadman_fallback = o->fallback;
    cfg.fence = o->fence;
    cfg.max_symbols =
        o->symbols > TL_ENGINE_DEFAULT_MAX_SYMBOLS ? o->symbols : TL_ENGINE_DEFAULT_MAX_SYMBOLS;
    cfg.symbols = syms;
    cfg.symbols_count = o->symbols;
    if (o->fixed_clock) {
        cfg.fixed_clock_ns = FIXED_CLOCK_BASE_NS;
        cfg.engine_id_if_new = fixed_id;
    }
    /* --etcd: win the leader key first; its revision is the fence the log
     * opens with (LEADER_CHANGE{fence} at open). */
    uint8_t lease_id[TL_ID_BYTES];
    if (lease_opts.etcd != NULL) {
        int have = tl_es_lease_engine_id(o->wal, lease_id);
        if (have < 0) {
            fprintf(stderr, "tally-enginesim: %s/engine_id cannot be read\n", o->wal);
            return 1;
        }
        if (have == 0 && o->fixed_clock)
            memcpy(lease_id, fixed_id, TL_ID_BYTES);
        if (have == 0)
            cfg.engine_id_if_new = lease_id;
        s->lease = tl_es_lease_open(&lease_opts, lease_id);
        if (s->lease == NULL ||
            tl_es_lease_campaign_wait(s->lease, lease_opts.wait_ms, &cfg.fence) != 1) {
            fprintf(stderr, "tally-enginesim: lease: %s not won\n", lease_opts.key);
            return 1;
        }
    }
    tl_engine_ops ops = {.ctx = s,
                         .cancel_all = cb_cancel_all,
                         .replay = cb_replay,
                         .on_mode_change = cb_mode_change,
                         .on_admin_line = cb_admin_line,
                         .now_real_ns = o->fixed_clock ? lib_clock : NULL,
                         .on_fault = cb_fault};
    tl_engine_recovered rec;
    char err[512];
    enum tl_engine_err rc = tl_engine_open(&cfg, &ops, &s->e, &rec, err, sizeof err);
    free(syms);
    free(names);
    if (rc != TL_ENGINE_OK) {
        fprintf(stderr, "tally-enginesim: open: %s: %s\n", tl_engine_err_name(rc), err);
        return 1;
    }
    if (s->st.ckpt_mismatch != 0 || s->st.replay_overflow != 0)
        fprintf(stderr,
                "tally-enginesim: warning: replay: %" PRIu64 " checkpoint mismatch(es), %" PRIu64
                " order(s) that did not fit\n",
                s->st.ckpt_mismatch, s->st.replay_overflow);
    /* A restart continues the clock and takes another random stream, so the
     * seqs it writes again after a crash carry other content. */
    if (o->fixed_clock && s->replay_max_ts >= s->vt_ns)
        s->vt_ns = s->replay_max_ts + FLAT_OUT_GAP_NS;
    rng_seed(s, rec.new_log ? o->seed : o->seed ^ (rec.last_seq * 0x9E3779B97F4A7C15ull));
    tl_engine_stats es;
    tl_engine_get_stats(s->e, &es);
    s->last_seq = es.next_seq - 1;
    s->first_seq = es.next_seq;
    if (rec.new_log)
        s->last_ckpt_seq = s->last_seq;
    s->last_epoch = tl_engine_fast_epoch(s->e);
    for (uint32_t i = 0; i < o->nfaults; i++) {
        enum tl_engine_err fr = tl_engine_fault_arm(s->e, o->faults[i].kind, o->faults[i].seq);
        if (fr != TL_ENGINE_OK) {
            fprintf(stderr,
                    "tally-enginesim: --fault %s@%" PRIu64 ": %s (next seq is %" PRIu64 ")\n",
                    tl_engine_fault_name(o->faults[i].kind), o->faults[i].seq,
                    tl_engine_err_name(fr), es.next_seq);
            tl_engine_close(s->e);
            return 1;
        }
    }
    if (o->every_n != 0 &&
        tl_engine_fault_arm(s->e, o->every_kind, es.next_seq + o->every_n) != TL_ENGINE_OK) {
        fprintf(stderr, "tally-enginesim: --fault-every: cannot arm\n");
        tl_engine_close(s->e);
        return 1;
    }
    if (!o->quiet) {
        char hex[33];
        hex16(rec.engine_id, hex);
        fprintf(stderr,
                "tally-enginesim: engine %s, %s log, last seq %" PRIu64 "%s, fence %" PRIu64
                ", %u symbols, replayed %" PRIu64 " records\n",
                hex, rec.new_log ? "new" : "recovered", rec.last_seq,
                rec.torn ? " (torn tail cut)" : "", rec.fence, rec.symbols, rec.records);
    }
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
    int run_rc = run(s);
    double elapsed = (double)(clock_ns(CLOCK_MONOTONIC) - t0) / 1e9;
    if (run_rc != 0 && s->exit_code == 0)
        s->exit_code = 2;
    if (s->exit_code == 0) {
        enum tl_engine_err sr = tl_engine_sync(s->e);
        if (sr != TL_ENGINE_OK) {
            die_if_crashed(s);
            fprintf(stderr, "tally-enginesim: sync: %s\n", tl_engine_err_name(sr));
            s->exit_code = 2;
        }
    }
    if (o->stats)
        print_stats(s, elapsed);
    if (s->lease != NULL) {
        char lj[256];
        tl_es_lease_stats_json(s->lease, lj, sizeof lj);
        fprintf(stderr, "tally-enginesim: lease %s\n", lj);
        tl_es_lease_close(s->lease);
    }
    die_if_crashed(s);
    enum tl_engine_err cr = tl_engine_close(s->e);
    if (cr != TL_ENGINE_OK && s->exit_code == 0) {
        fprintf(stderr, "tally-enginesim: close: %s\n", tl_engine_err_name(cr));
        s->exit_code = 2;
    }
    if (s->lat != NULL)
        fclose(s->lat);
    sim_state_free(&s->st);
    return s->exit_code;
}
