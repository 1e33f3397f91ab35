/* bench_ledger.c: what the settlement ledger check costs the hot loop
 * (core/ledger.h). Not a CI test: it prints medians and spreads.
 *
 * A window of 2^20 records (the default), a market where ~30% of records
 * are TRADEs over 64 symbols, and a ledger that answers every poll with a
 * correct watermark LAG records behind the durable seq (default 10^4). Each
 * round makes PER_POLL new durable records (the records between two polls:
 * 400 at 20,000 records/s, 20,000 at 10^6 records/s with the default 20 ms
 * poll), folds them (timed per record) and offers the reply as the loop
 * does: one tl_ledger_reply per loop step until it is taken (the FIFO pops
 * at most pop_budget trades per step). Per check it reports
 *   - step: the time of the costliest single step (what the hot loop pays
 *     at once);
 *   - check: the sum over the steps the reply took.
 * Each row is the median (p50), p90, p99 and max over ROUNDS checks; the
 * whole run is repeated RUNS times and the spread of the per-run medians is
 * printed (the 2 vCPUs are noisy).
 *
 *   bench_ledger [lag_records] [rounds] [runs]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/ledger.h"

#define WINDOW  (1u << 20)
#define SYMBOLS 64u

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sink(void *ctx, const tl_finding *f) {
    (void)ctx;
    fprintf(stderr, "bench_ledger: unexpected finding %s\n", tl_check_name(f->check));
    exit(1);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The ledger's side: figures per seq, kept for the records in the window. */
typedef struct truth {
    tl_ledger_figs total;
    uint32_t symbol;
} truth;

static tl_log lg;
static tl_ledger g;
static uint64_t next_seq = 1;
static tl_ledger_figs run_total;
static tl_ledger_figs run_sym[SYMBOLS + 1];
/* the ledger's per-symbol figures at each seq would be 64 x 24 bytes per seq:
 * instead the bench keeps them at the seqs it will answer with. */
static tl_ledger_figs *total_at; /* WINDOW entries, by seq & (WINDOW - 1) */

static void make_records(uint64_t n, uint64_t ts) {
    for (uint64_t i = 0; i < n; i++) {
        uint64_t seq = next_seq++;
        tl_win_entry *e = tl_window_put(&lg.win, seq);
        e->checksum = seq * 0x2545f4914f6cdd1dull | 1;
        e->ts_ns = ts;
        e->srcs = TL_WIN_SRC_RING | TL_WIN_SRC_WAL;
        uint64_t r = rnd();
        if (r % 10 < 3) {
            e->kind = TL_KIND_TRADE;
            e->symbol = 1 + (uint32_t)(r >> 8) % SYMBOLS;
            e->qty = 1 + (r >> 20) % 100;
            e->notional = e->qty * (100 + (r >> 32) % 1000);
            tl_ledger_figs_add_trade(&run_total, e->qty, e->notional);
            tl_ledger_figs_add_trade(&run_sym[e->symbol], e->qty, e->notional);
        } else {
            e->kind = r % 10 < 8 ? TL_KIND_ORDER_NEW : TL_KIND_HEARTBEAT;
            e->symbol = 1 + (uint32_t)(r >> 8) % SYMBOLS;
        }
        total_at[seq & (WINDOW - 1)] = run_total;
        if (seq == 1)
            tl_ledger_wal_record(&g, 1);
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct pct {
    uint64_t p50, p90, p99, max;
} pct;

static pct percentiles(uint64_t *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_u64);
    pct p = {v[n / 2], v[n * 9 / 10], v[n * 99 / 100], v[n - 1]};
    return p;
}

/* One run: returns the per-check p50s (step, check) and the fold cost. */
static void one_run(uint64_t lag, uint64_t per_poll, uint32_t rounds, pct *step_p, pct *check_p,
                    double *fold_ns, double *steps_avg) {
    static void *win_mem, *led_mem;
    if (win_mem == NULL) {
        win_mem = aligned_alloc(64, tl_window_bytes(WINDOW));
        total_at = calloc(WINDOW, sizeof *total_at);
    }
    tl_log_init(&lg, TL_DIALECT_TLYWAL1, win_mem, WINDOW, (tl_sink){sink, NULL});
    tl_ledger_cfg c;
    tl_ledger_cfg_defaults(&c);
    c.enabled = true;
    c.fifo_trades = WINDOW / 2;
    c.lag_throttle_ms = 3600000;
    c.lag_halt_ms = 3600000;
    c.max_age_ms = 3600000;
    if (led_mem == NULL)
        led_mem = aligned_alloc(64, tl_ledger_mem_bytes(&c));
    tl_ledger_init(&g, &c, &lg, led_mem);
    next_seq = 1;
    memset(&run_total, 0, sizeof run_total);
    memset(run_sym, 0, sizeof run_sym);

    uint64_t mono = 1000000000ull, real = 1795000000000000000ull;
    /* warm up: the lag and a window's worth of history */
    make_records(lag + per_poll, real);
    while (tl_ledger_fold(&g, next_seq - 1, next_seq - 1) > 0)
        ;
    uint64_t *steps = malloc(rounds * sizeof *steps);
    uint64_t *checks = malloc(rounds * sizeof *checks);
    uint64_t fold_total_ns = 0, folded = 0, step_count = 0;
    tl_ledger_wm *w = calloc(1, sizeof *w);
    /* The ledger's per-symbol figures at s: the bench's running per-symbol
     * sums minus the trades in (s, durable], from the window. Computed
     * outside the timed part. */
    for (uint32_t round = 0; round < rounds + 20; round++) {
        mono += 20000000ull;
        real += 20000000ull;
        make_records(per_poll, real);
        uint64_t durable = next_seq - 1;
        uint64_t t0 = now_ns();
        uint32_t nf;
        uint64_t nrec = 0;
        while ((nf = tl_ledger_fold(&g, durable, durable)) > 0)
            nrec += nf;
        fold_total_ns += now_ns() - t0;
        folded += nrec;

        uint64_t s = durable - lag;
        memset(w, 0, sizeof *w);
        w->poll_id = round + 1;
        w->recv_mono_ns = mono;
        w->recv_real_ns = real;
        w->ts_ns = real;
        w->ledger_seq = s;
        w->checksum = tl_window_find(&lg.win, s)->checksum;
        w->total = total_at[s & (WINDOW - 1)];
        tl_ledger_figs sym[SYMBOLS + 1];
        memcpy(sym, run_sym, sizeof sym);
        for (uint64_t q = s + 1; q <= durable; q++) {
            const tl_win_entry *e = tl_window_find(&lg.win, q);
            if (e->kind == TL_KIND_TRADE) {
                sym[e->symbol].trades--;
                sym[e->symbol].qty -= e->qty;
                sym[e->symbol].notional -= e->notional;
            }
        }
        for (uint32_t k = 1; k <= SYMBOLS; k++) {
            if (sym[k].trades == 0)
                continue;
            w->symbols[w->symbol_count].symbol = k;
            w->symbols[w->symbol_count].f = sym[k];
            w->symbol_count++;
        }

        uint64_t worst = 0, sum = 0;
        for (;;) {
            uint64_t a = now_ns();
            bool taken = tl_ledger_reply(&g, w, mono, real, durable, mono);
            uint64_t d = now_ns() - a;
            sum += d;
            if (d > worst)
                worst = d;
            step_count++;
            if (taken)
                break;
        }
        if (round >= 20) { /* the first rounds warm the caches */
            steps[round - 20] = worst;
            checks[round - 20] = sum;
        }
    }
    tl_ledger_stats st;
    tl_ledger_stats_get(&g, next_seq - 1, &st);
    if (st.compared_total != rounds + 20 || st.lag_records != lag) {
        fprintf(stderr, "bench_ledger: compared %" PRIu64 ", lag %" PRIu64 "\n", st.compared_total,
                st.lag_records);
        exit(1);
    }
    *step_p = percentiles(steps, rounds);
    *check_p = percentiles(checks, rounds);
    *fold_ns = folded ? (double)fold_total_ns / (double)folded : 0;
    *steps_avg = (double)step_count / (rounds + 20);
    free(steps);
    free(checks);
    free(w);
}

int main(int argc, char **argv) {
    uint64_t lag = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000;
    uint32_t rounds = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 2000;
    int runs = argc > 3 ? atoi(argv[3]) : 5;
    if (lag == 0 || lag + 20000 >= WINDOW / 2 || rounds < 10 || runs < 1) {
        fprintf(stderr, "usage: bench_ledger [lag_records] [rounds >= 10] [runs]\n");
        return 2;
    }
    static const uint64_t per_polls[] = {400, 4000, 20000};
    printf("bench_ledger: lag %" PRIu64 " records, %u checks x %d runs, window 2^20, "
           "pop_budget 2048, ns\n",
           lag, rounds, runs);
    printf("%-9s %-6s %8s %8s %8s %8s   %s\n", "per_poll", "what", "p50", "p90", "p99", "max",
           "p50 over runs (min..max)");
    for (size_t k = 0; k < sizeof per_polls / sizeof per_polls[0]; k++) {
        pct step[16], check[16];
        double fold[16], stepsn[16];
        if (runs > 16)
            runs = 16;
        for (int r = 0; r < runs; r++)
            one_run(lag, per_polls[k], rounds, &step[r], &check[r], &fold[r], &stepsn[r]);
        /* the run with the median check p50 is printed; the spread over runs follows */
        uint64_t sp50[16], cp50[16];
        for (int r = 0; r < runs; r++) {
            sp50[r] = step[r].p50;
            cp50[r] = check[r].p50;
        }
        int mid = 0;
        for (int r = 0; r < runs; r++) {
            int below = 0;
            for (int q = 0; q < runs; q++)
                below += cp50[q] < cp50[r];
            if (below == runs / 2)
                mid = r;
        }
        qsort(sp50, (size_t)runs, sizeof sp50[0], cmp_u64);
        qsort(cp50, (size_t)runs, sizeof cp50[0], cmp_u64);
        printf("%-9" PRIu64 " %-6s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 "   %" PRIu64
               "..%" PRIu64 "\n",
               per_polls[k], "step", step[mid].p50, step[mid].p90, step[mid].p99, step[mid].max,
               sp50[0], sp50[runs - 1]);
        printf("%-9s %-6s %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 "   %" PRIu64
               "..%" PRIu64 "   (%.1f steps/check, fold %.2f ns/record)\n",
               "", "check", check[mid].p50, check[mid].p90, check[mid].p99, check[mid].max, cp50[0],
               cp50[runs - 1], stepsn[mid], fold[mid]);
    }
    return 0;
}
