/* bench_halt.c: detect-to-halt latency, end to end, real processes.
 *
 *   bench_halt [--faults 1000] [--every 2000] [--rate 100000]
 *              [--engine-cpu 0] [--tally-cpu 1] [--idle spin] [--out DIR]
 *
 * It starts tally-enginesim (pinned, spinning, serving its admin socket on
 * every pass) and tallyd (its hot loop pinned, `spin` idle). The engine
 * writes a fence-regression record every --every records: a stale writer's
 * record, which tally sees on the ring and answers with HARD_HALT on `*`.
 * The engine stamps (CLOCK_MONOTONIC, shared by the processes on one host):
 *   - just before it publishes the faulty record on the ring;
 *   - when its admin server reads the HARD_HALT line;
 *   - when its hot path first sees the fast-path mode word raised.
 * After each halt this program acts as the operator: it relaxes the engine
 * with the operator key (set_symbol_mode * NORMAL from HARD_HALT, and lifts
 * the withdrawals halt), tally sees the relaxation and lowers the word, and
 * the flow resumes towards the next fault.
 *
 * Each fault costs two actions (HARD_HALT, withdrawals halt) and tallyd's
 * rate limit is at most 1000 actions a minute (TL_POLICY_RATE_MAX), so
 * faults must be at least 120 ms apart: --every >= 0.12 x --rate (the
 * documented run, bench/run_all.sh, uses 15000 at 100000/s). Closer faults
 * are rate-limited, as they would be in production, and never halt.
 *
 * Output: DIR/bench_halt.json, DIR/bench_halt.md, DIR/bench_halt.csv and,
 * when gnuplot is installed, DIR/bench_halt.png (latency histograms).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin_client.h"
#include "admin/admin_key.h"
#include "admin/admin_proto.h"
#include "shm/ring.h"

typedef struct opts {
    uint32_t faults;
    uint64_t every;
    uint64_t rate;
    int engine_cpu;
    int tally_cpu;
    const char *idle;
    const char *out;
    const char *bindir;
} opts;

static uint64_t now_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned us) {
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void write_file(const char *path, const void *buf, size_t n, mode_t mode) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || write(fd, buf, n) != (ssize_t)n) {
        fprintf(stderr, "bench_halt: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    close(fd);
}

static pid_t spawn(char *const argv[], int cpu, const char *log) {
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        if (cpu >= 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(cpu, &set);
            (void)sched_setaffinity(0, sizeof set, &set);
        }
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* ---- the latency log ---- */

typedef struct sample {
    uint64_t seq;
    uint64_t publish;
    uint64_t arrival; /* HARD_HALT line read by the engine */
    uint64_t fast;    /* fast-path word seen by the engine */
} sample;

static uint64_t num_after(const char *line, const char *key) {
    const char *p = strstr(line, key);
    return p != NULL ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static size_t parse_log(const char *path, sample *s, size_t max) {
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[1024];
    size_t n = 0;
    bool open_fault = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, "\"event\":\"fault\"") != NULL) {
            if (n == max)
                break;
            s[n].seq = num_after(line, "\"seq\":");
            s[n].publish = num_after(line, "\"publish_mono_ns\":");
            s[n].arrival = s[n].fast = 0;
            n++;
            open_fault = true;
        } else if (open_fault && strstr(line, "\"event\":\"admin_line\"") != NULL &&
                   strstr(line, "\"cmd\":\"set_symbol_mode\"") != NULL && s[n - 1].arrival == 0) {
            s[n - 1].arrival = num_after(line, "\"arrival_mono_ns\":");
        } else if (open_fault && strstr(line, "\"event\":\"fast_path\"") != NULL &&
                   strstr(line, "\"fast_global_mode\":\"HARD_HALT\"") != NULL &&
                   s[n - 1].fast == 0) {
            s[n - 1].fast = num_after(line, "\"seen_mono_ns\":");
        }
    }
    fclose(f);
    return n;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *v, size_t n, double p) {
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* ---- the operator: relax after each halt ---- */

static void relax(tl_admin_client *c, const tl_admin_key *key, const char *sock) {
    if (!tl_admin_client_connected(c) && tl_admin_client_connect(c, sock) != TL_ADMIN_OK)
        return;
    for (int k = 0; k < 2; k++) {
        tl_admin_request r;
        memset(&r, 0, sizeof r);
        (void)getrandom(r.id, sizeof r.id, 0);
        r.key = TL_ADMIN_KEY_OPERATOR;
        r.issued_ns = now_ns(CLOCK_REALTIME);
        if (k == 0) {
            r.cmd = TL_ADMIN_CMD_SET_SYMBOL_MODE;
            r.mode = 0;
            r.has_from_mode = true;
            r.from_mode = 3;
            tl_admin_request_set_symbol(&r, "*", 1);
        } else {
            r.cmd = TL_ADMIN_CMD_WITHDRAWALS_HALT;
            r.on = false;
        }
        tl_admin_request_set_reason(&r, "bench: operator resume", 22);
        tl_admin_request_set_ticket(&r, "BENCH", 5);
        if (tl_admin_client_send(c, &r, key) != TL_ADMIN_OK) {
            tl_admin_client_close(c);
            return;
        }
    }
}

static void drain(tl_admin_client *c) {
    tl_admin_reply rep;
    uint8_t id[TL_ID_BYTES];
    for (int i = 0; i < 16 && tl_admin_client_connected(c); i++) {
        (void)tl_admin_client_flush(c);
        enum tl_admin_err e = tl_admin_client_recv(c, &rep, id);
        if (e == TL_ADMIN_ERR_WOULD_BLOCK)
            return;
        if (e != TL_ADMIN_OK)
            return;
    }
}

int main(int argc, char **argv) {
    opts o = {.faults = 1000,
              .every = 2000,
              .rate = 100000,
              .engine_cpu = 0,
              .tally_cpu = 1,
              .idle = "spin",
              .out = "bench-out",
              .bindir = NULL};
    static const struct option lo[] = {
        {"faults", required_argument, NULL, 'f'},
        {"every", required_argument, NULL, 'e'},
        {"rate", required_argument, NULL, 'r'},
        {"engine-cpu", required_argument, NULL, 'E'},
        {"tally-cpu", required_argument, NULL, 'T'},
        {"idle", required_argument, NULL, 'i'},
        {"out", required_argument, NULL, 'o'},
        {"bindir", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
            case 'f':
                o.faults = (uint32_t)strtoul(optarg, NULL, 10);
                break;
            case 'e':
                o.every = strtoull(optarg, NULL, 10);
                break;
            case 'r':
                o.rate = strtoull(optarg, NULL, 10);
                break;
            case 'E':
                o.engine_cpu = atoi(optarg);
                break;
            case 'T':
                o.tally_cpu = atoi(optarg);
                break;
            case 'i':
                o.idle = optarg;
                break;
            case 'o':
                o.out = optarg;
                break;
            case 'b':
                o.bindir = optarg;
                break;
            default:
                fprintf(stderr, "usage: bench_halt [--faults N] [--every N] [--rate N] "
                                "[--engine-cpu C] [--tally-cpu C] [--idle spin|backoff] "
                                "[--out DIR] [--bindir BUILD]\n");
                return c == 'h' ? 0 : 2;
        }
    }
    if (o.rate > 0 && o.faults > 1 && (double)o.every / (double)o.rate < 0.12)
        fprintf(stderr,
                "bench_halt: warning: faults %.0f ms apart: tallyd's rate limit (1000 actions a "
                "minute, two per fault) will block some; use --every >= %.0f\n",
                1e3 * (double)o.every / (double)o.rate, 0.12 * (double)o.rate);
    char build[1100];
    if (o.bindir != NULL) {
        snprintf(build, sizeof build, "%s", o.bindir);
    } else {
        /* this program lives in <build>/bench */
        char self[1024];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL)
            *slash = '\0';
        snprintf(build, sizeof build, "%s/..", self);
    }
    char engine_bin[1200], tallyd_bin[1200];
    snprintf(engine_bin, sizeof engine_bin, "%s/bench/tally-enginesim", build);
    snprintf(tallyd_bin, sizeof tallyd_bin, "%s/admin/tallyd", build);
    mkdir(o.out, 0755);

    /* The WAL lives on tmpfs: the path measured is the ring; a disk under
     * the engine would only add fdatasync interrupts to both cores. */
    char dir[] = "/dev/shm/tally-bench-halt.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    char p_side[300], p_op[300], p_cfg[300], p_sock[300], p_wal[300], p_lat[300], p_state[300],
        p_lock[300], p_elog[300], p_tlog[300], ring[64];
    snprintf(p_side, sizeof p_side, "%s/sidecar.key", dir);
    snprintf(p_op, sizeof p_op, "%s/operator.key", dir);
    snprintf(p_cfg, sizeof p_cfg, "%s/tally.json", dir);
    snprintf(p_sock, sizeof p_sock, "%s/admin.sock", dir);
    snprintf(p_wal, sizeof p_wal, "%s/wal", dir);
    snprintf(p_lat, sizeof p_lat, "%s/latency.jsonl", dir);
    snprintf(p_state, sizeof p_state, "%s/state", dir);
    snprintf(p_lock, sizeof p_lock, "%s/lock", dir);
    snprintf(p_elog, sizeof p_elog, "%s/engine.log", dir);
    snprintf(p_tlog, sizeof p_tlog, "%s/tallyd.log", dir);
    snprintf(ring, sizeof ring, "bench%d", (int)getpid());
    uint8_t k1[32], k2[32];
    (void)getrandom(k1, sizeof k1, 0);
    (void)getrandom(k2, sizeof k2, 0);
    write_file(p_side, k1, 32, 0600);
    write_file(p_op, k2, 32, 0600);
    char cfg[4096];
    int cn = snprintf(cfg, sizeof cfg,
                      "{\"engine\":{\"ring\":\"%s\",\"wal_dir\":\"%s\",\"admin_socket\":\"%s\"},"
                      "\"cpu\":%d,\"idle\":\"%s\",\"mlock\":false,\"state_dir\":\"%s\","
                      "\"lock_dir\":\"%s\",\"keys\":{\"sidecar\":\"%s\"},"
                      "\"policy\":{\"cooldown_ms\":0,\"max_actions_per_minute\":1000},"
                      "\"bundle\":{\"auto\":false},"
                      "\"control\":{\"socket\":\"%s/tally.sock\",\"listen\":\"\"}}",
                      ring, p_wal, p_sock, o.tally_cpu, o.idle, p_state, p_lock, p_side, dir);
    write_file(p_cfg, cfg, (size_t)cn, 0644);

    char rate[32], every[64];
    snprintf(rate, sizeof rate, "%" PRIu64, o.rate);
    snprintf(every, sizeof every, "fence_regress@%" PRIu64, o.every);
    char *eargv[] = {engine_bin,
                     "--ring",
                     ring,
                     "--wal",
                     p_wal,
                     "--admin-socket",
                     p_sock,
                     "--sidecar-key",
                     p_side,
                     "--operator-key",
                     p_op,
                     "--rate",
                     rate,
                     "--seconds",
                     "100000",
                     "--spin",
                     "--fault-every",
                     every,
                     "--latency-log",
                     p_lat,
                     "--ring-capacity",
                     "64M",
                     "--deadman",
                     "0",
                     "--quiet",
                     NULL};
    pid_t engine = spawn(eargv, o.engine_cpu, p_elog);
    for (int i = 0; i < 200 && access(p_sock, F_OK) != 0; i++)
        sleep_us(25000);
    char *targv[] = {tallyd_bin, "--config", p_cfg, NULL};
    pid_t tallyd = spawn(targv, -1, p_tlog);

    /* This program stays off tally's core too. */
    if (o.engine_cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(o.engine_cpu, &set);
        (void)sched_setaffinity(0, sizeof set, &set);
    }
    tl_ring_map m;
    if (tl_ring_map_open_wait(&m, ring, 5000) != TL_RING_OK) {
        fprintf(stderr, "bench_halt: cannot map the engine's ring\n");
        kill(engine, SIGTERM);
        kill(tallyd, SIGTERM);
        return 2;
    }
    tl_admin_key op;
    tl_admin_key_init(&op, k2);
    tl_admin_client *cl = malloc(sizeof *cl);
    tl_admin_client_init(cl);

    fprintf(stderr,
            "bench_halt: %u faults, one every %" PRIu64 " records at %" PRIu64
            " records/s; engine on cpu %d, tallyd on cpu %d (%s)\n",
            o.faults, o.every, o.rate, o.engine_cpu, o.tally_cpu, o.idle);
    sample *smp = calloc(o.faults + 16, sizeof *smp);
    uint64_t t0 = now_ns(CLOCK_MONOTONIC), last_relax = 0, last_report = t0, last_check = t0;
    size_t got = 0;
    uint32_t prev = 0;
    /* The engine's latency log is buffered until it exits (a write on its
     * hot path would be measured), so progress is counted here: each rise
     * of the global fast-path word is one halt. */
    while (got < o.faults) {
        /* Relaxed: the word tally raises before it sends; a relax attempt
         * is harmless when it is not (precondition_failed). */
        uint32_t g = atomic_load_explicit(&m.ctl->fast_global_mode, memory_order_relaxed);
        uint64_t now = now_ns(CLOCK_MONOTONIC);
        if (g != 0 && prev == 0)
            got++;
        prev = g;
        if (g != 0 && now - last_relax > 2000000ull) {
            relax(cl, &op, p_sock);
            last_relax = now;
        }
        drain(cl);
        if (now - last_report > 5000000000ull) {
            last_report = now;
            fprintf(stderr, "bench_halt: %zu/%u faults\n", got, o.faults);
        }
        if (now - last_check > 200000000ull) {
            last_check = now;
            if (now - t0 > 1800000000000ull) {
                fprintf(stderr, "bench_halt: timed out\n");
                break;
            }
            int st;
            if (waitpid(engine, &st, WNOHANG) == engine ||
                waitpid(tallyd, &st, WNOHANG) == tallyd) {
                fprintf(stderr, "bench_halt: a process died (logs in %s)\n", dir);
                break;
            }
        }
        sleep_us(1000); /* every wake-up here takes the engine's core for a while */
    }
    /* let the last halt's lines be stamped */
    sleep_us(200000);
    kill(tallyd, SIGTERM);
    kill(engine, SIGTERM);
    waitpid(tallyd, NULL, 0);
    waitpid(engine, NULL, 0);
    got = parse_log(p_lat, smp, o.faults + 16);

    uint64_t *halt = calloc(got + 1, sizeof *halt), *fast = calloc(got + 1, sizeof *fast);
    size_t nh = 0, nf = 0;
    char path[1200];
    snprintf(path, sizeof path, "%s/bench_halt.csv", o.out);
    FILE *csv = fopen(path, "w");
    if (csv != NULL)
        fprintf(csv, "seq,detect_to_halt_ns,fast_word_seen_ns\n");
    for (size_t i = 0; i < got; i++) {
        int64_t h =
            smp[i].arrival > smp[i].publish ? (int64_t)(smp[i].arrival - smp[i].publish) : -1;
        int64_t f = smp[i].fast > smp[i].publish ? (int64_t)(smp[i].fast - smp[i].publish) : -1;
        if (h >= 0)
            halt[nh++] = (uint64_t)h;
        if (f >= 0)
            fast[nf++] = (uint64_t)f;
        if (csv != NULL)
            fprintf(csv, "%" PRIu64 ",%" PRId64 ",%" PRId64 "\n", smp[i].seq, h, f);
    }
    if (csv != NULL)
        fclose(csv);
    qsort(halt, nh, sizeof *halt, cmp_u64);
    qsort(fast, nf, sizeof *fast, cmp_u64);

    snprintf(path, sizeof path, "%s/bench_halt.json", o.out);
    FILE *js = fopen(path, "w");
    snprintf(path, sizeof path, "%s/bench_halt.md", o.out);
    FILE *md = fopen(path, "w");
    FILE *outs[2] = {stdout, md};
    for (int k = 0; k < 2; k++) {
        if (outs[k] == NULL)
            continue;
        fprintf(outs[k],
                "| measure | n | p50 | p99 | p99.9 | min | max |\n|---|---|---|---|---|---|---|\n");
        fprintf(outs[k],
                "| publish of the faulty record -> HARD_HALT line read by the engine | %zu | "
                "%.2f us | %.2f us | %.2f us | %.2f us | %.2f us |\n",
                nh, pct(halt, nh, 0.5) / 1e3, pct(halt, nh, 0.99) / 1e3, pct(halt, nh, 0.999) / 1e3,
                nh ? halt[0] / 1e3 : 0, nh ? halt[nh - 1] / 1e3 : 0);
        fprintf(outs[k],
                "| publish of the faulty record -> fast-path word seen by the engine | %zu | "
                "%.0f ns | %.0f ns | %.0f ns | %.0f ns | %.0f ns |\n",
                nf, (double)pct(fast, nf, 0.5), (double)pct(fast, nf, 0.99),
                (double)pct(fast, nf, 0.999), nf ? (double)fast[0] : 0,
                nf ? (double)fast[nf - 1] : 0);
    }
    if (js != NULL) {
        fprintf(js,
                "{\"faults\":%zu,\"every\":%" PRIu64 ",\"rate\":%" PRIu64
                ",\"idle\":\"%s\",\"detect_to_halt_ns\":{\"n\":%zu,\"p50\":%" PRIu64
                ",\"p99\":%" PRIu64 ",\"p999\":%" PRIu64 ",\"min\":%" PRIu64 ",\"max\":%" PRIu64
                "},\"fast_word_seen_ns\":{\"n\":%zu,\"p50\":%" PRIu64 ",\"p99\":%" PRIu64
                ",\"p999\":%" PRIu64 ",\"min\":%" PRIu64 ",\"max\":%" PRIu64 "}}\n",
                got, o.every, o.rate, o.idle, nh, pct(halt, nh, 0.5), pct(halt, nh, 0.99),
                pct(halt, nh, 0.999), nh ? halt[0] : 0, nh ? halt[nh - 1] : 0, nf,
                pct(fast, nf, 0.5), pct(fast, nf, 0.99), pct(fast, nf, 0.999), nf ? fast[0] : 0,
                nf ? fast[nf - 1] : 0);
        fclose(js);
    }
    if (md != NULL)
        fclose(md);
    /* The histogram, when gnuplot is there. */
    char plot[4096];
    snprintf(plot, sizeof plot,
             "command -v gnuplot >/dev/null && gnuplot -e \""
             "set terminal png size 1000,500 noenhanced; set output '%s/bench_halt.png';"
             "set datafile separator ',';"
             "set multiplot layout 1,2 title 'tally detect-to-halt (%zu faults)';"
             "set style fill solid 0.6; set logscale y; set xlabel 'microseconds'; "
             "set ylabel 'faults'; binw=0.5;"
             "bin(x)=binw*floor(x/binw);"
             "plot '%s/bench_halt.csv' every ::1 using (bin(\\$2/1000.0)):(1.0) smooth freq with "
             "boxes title 'publish -> HARD_HALT read';"
             "binw=0.05;"
             "plot '%s/bench_halt.csv' every ::1 using (bin(\\$3/1000.0)):(1.0) smooth freq with "
             "boxes title 'publish -> fast word seen';"
             "unset multiplot\"",
             o.out, got, o.out, o.out);
    if (system(plot) != 0)
        fprintf(stderr, "bench_halt: no PNG (gnuplot missing or failed)\n");
    fprintf(stderr, "bench_halt: results in %s (logs kept in %s)\n", o.out, dir);
    tl_ring_map_close(&m);
    return nh >= o.faults * 9 / 10 ? 0 : 1;
}
