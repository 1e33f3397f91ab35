/* bench_bundle.c: forensic bundle export and verification speed (not CI).
 *
 *   bench_bundle [--gib 1] [--runs 5] [--seg-mib 64] [--dir PARENT] [--threads 1]
 *       (everything goes in PARENT/tally-bench-bundle, default PARENT /tmp;
 *       only that directory is ever removed)
 *       writes ~GiB of WAL with io/wal_writer (the order/cancel/trade mix of
 *       bench_wal), then, each --runs times, interleaved:
 *         - tl_bundle_export of the whole range (one pass: each segment
 *           read once, SHA-256 and the WAL check on the way, zstd level 3,
 *           Ed25519);
 *         - `tar --zstd -cf` over the same segment files (zstd level 3);
 *         - tl_bundle_verify of the bundle (one streamed read: hash, chain,
 *           signature; nothing unpacked to disk).
 *       Prints medians and spreads (min..max) and the ratios the issue sets:
 *       export <= 2x tar, verify >= 1 GB/s.
 *   bench_bundle --halt BUILD [--faults 300]
 *       runs BUILD/bench/bench_halt twice: idle, then with this program
 *       asking its tallyd for whole-log bundles (POST /bundle over its
 *       control socket, one after another) for the whole run; prints both
 *       detect-to-halt summaries (bench_halt.json) and how many exports ran.
 *       The bundles go to tallyd's bundle.dir and are deleted after each.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "admin/bundle.h"
#include "io/wal_writer.h"

#define MAX_RUNS 32

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void summary(const char *what, uint64_t *v, int n, uint64_t bytes) {
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    uint64_t med = v[n / 2];
    printf("| %-28s | %8.3f s | %8.3f .. %8.3f s | %8.0f MB/s |\n", what, (double)med / 1e9,
           (double)v[0] / 1e9, (double)v[n - 1] / 1e9, (double)bytes / ((double)med / 1e9) / 1e6);
}

static uint64_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* The mix of bench_wal.c: orders, cancels, trades, checkpoints, heartbeats
 * and a few larger opaque records. */
static int append_one(tl_wal *w, uint64_t i, uint64_t *rs, uint64_t ts, tl_wal_appended *a) {
    uint64_t r = rnd(rs) % 100;
    uint32_t sym = (uint32_t)(1 + (i & 3));
    if (r < 40) {
        tl_body_order_new b = {i,
                               1000 + (i & 255),
                               50000 + (int64_t)(i % 97),
                               1 + (int64_t)(i % 5),
                               TL_SIDE_BUY,
                               TL_ORDER_LIMIT,
                               {0}};
        return tl_wal_append(w, TL_KIND_ORDER_NEW, sym, &b, sizeof b, ts, a);
    }
    if (r < 65) {
        tl_body_order_cancel b = {i - 3, 1000 + (i & 255), 2};
        return tl_wal_append(w, TL_KIND_ORDER_CANCEL, sym, &b, sizeof b, ts, a);
    }
    if (r < 85) {
        tl_body_trade b;
        memset(&b, 0, sizeof b);
        b.trade_id = i;
        b.price = 50000;
        b.qty = 1;
        b.taker_side = TL_SIDE_SELL;
        return tl_wal_append(w, TL_KIND_TRADE, sym, &b, sizeof b, ts, a);
    }
    if (r < 90) {
        tl_body_checkpoint b;
        memset(&b, (int)(i & 0xff), sizeof b);
        return tl_wal_append(w, TL_KIND_CHECKPOINT, 0, &b, sizeof b, ts, a);
    }
    if (r < 95)
        return tl_wal_append(w, TL_KIND_HEARTBEAT, 0, NULL, 0, ts, a);
    static uint8_t blob[512];
    uint32_t n = 300 + (uint32_t)(rnd(rs) % 141);
    blob[0] = (uint8_t)i;
    return tl_wal_append(w, 99, 0, blob, n, ts, a);
}

static int write_wal(const char *dir, double gib, uint64_t seg_mib, uint64_t *last_seq,
                     uint64_t *bytes) {
    tl_wal_config cfg;
    tl_wal_config_default(&cfg);
    cfg.dir = dir;
    cfg.segment_bytes = seg_mib << 20;
    cfg.sync_thread = false;
    cfg.initial_fence = 1;
    memcpy(cfg.engine_id, "bench-bundle-eng", TL_ID_BYTES);
    tl_wal *w;
    tl_wal_recovered rec;
    enum tl_wal_err rc = tl_wal_open(&w, &cfg, NULL, &rec);
    if (rc != TL_WAL_OK) {
        fprintf(stderr, "wal open: %s\n", tl_wal_err_name(rc));
        return -1;
    }
    uint64_t target = (uint64_t)(gib * (double)(1ull << 30)), rs = 0x9e3779b97f4a7c15ull;
    uint64_t ts = (uint64_t)time(NULL) * 1000000000ull;
    *bytes = 0;
    for (uint64_t i = 0; *bytes < target; i++) {
        tl_wal_appended a;
        if ((rc = append_one(w, i, &rs, ts + i, &a)) != TL_WAL_OK) {
            fprintf(stderr, "append: %s\n", tl_wal_err_name(rc));
            return -1;
        }
        *bytes += a.len;
        *last_seq = a.seq;
    }
    if (tl_wal_sync(w) != TL_WAL_OK || tl_wal_close(w) != TL_WAL_OK)
        return -1;
    return 0;
}

static uint64_t dir_bytes(const char *dir) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "du -sb '%s' | cut -f1", dir);
    FILE *p = popen(cmd, "r");
    unsigned long long n = 0;
    if (p != NULL) {
        if (fscanf(p, "%llu", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

static uint64_t cpu_ns(int who) {
    struct rusage ru;
    getrusage(who, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

static bool g_keep;

static int bench_export(double gib, int runs, uint64_t seg_mib, const char *base, int threads) {
    char wal[600], out[600], key[600], pub[600], cmd[2000];
    snprintf(wal, sizeof wal, "%s/wal", base);
    snprintf(out, sizeof out, "%s/bundles", base);
    snprintf(key, sizeof key, "%s/sign.pem", base);
    snprintf(pub, sizeof pub, "%s/sign.pub", base);
    struct stat wst;
    bool reuse = g_keep && stat(wal, &wst) == 0;
    snprintf(cmd, sizeof cmd, "rm -rf '%s/bundles' '%s'/*.pem '%s'/*.pub && mkdir -p '%s'", base,
             base, base, base);
    if (!reuse)
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", base, base);
    if (system(cmd) != 0)
        return 1;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    FILE *f = fopen(key, "w");
    FILE *g = fopen(pub, "w");
    if (k == NULL || f == NULL || g == NULL ||
        PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1 || PEM_write_PUBKEY(g, k) != 1)
        return 1;
    fclose(f);
    fclose(g);
    uint64_t last = 0, rec_bytes = 0;
    uint64_t t0 = now_ns();
    if (reuse) {
        char lp[700];
        snprintf(lp, sizeof lp, "%s/last_seq", base);
        FILE *lf = fopen(lp, "r");
        unsigned long long v = 0;
        if (lf == NULL || fscanf(lf, "%llu %llu", &v, (unsigned long long *)&rec_bytes) != 2)
            return 1;
        fclose(lf);
        last = v;
    } else if (write_wal(wal, gib, seg_mib, &last, &rec_bytes) != 0) {
        return 1;
    } else {
        char lp[700];
        snprintf(lp, sizeof lp, "%s/last_seq", base);
        FILE *lf = fopen(lp, "w");
        if (lf != NULL) {
            fprintf(lf, "%llu %llu\n", (unsigned long long)last, (unsigned long long)rec_bytes);
            fclose(lf);
        }
    }
    uint64_t wal_bytes = dir_bytes(wal);
    printf(
        "WAL: %.2f GiB of records (%llu records), %.2f GiB of segment files, written in %.1f s\n",
        (double)rec_bytes / (double)(1ull << 30), (unsigned long long)last,
        (double)wal_bytes / (double)(1ull << 30), (double)(now_ns() - t0) / 1e9);
    tl_bundle_env env = {.dir = out,
                         .wal_dir = wal,
                         .dialect = TL_DIALECT_TLYWAL1,
                         .ring_name = "",
                         .snapshot_dir = "",
                         .audit_dir = "",
                         .key = k,
                         .zstd_level = 3,
                         .zstd_threads = threads};
    uint64_t t_exp[MAX_RUNS], t_tar[MAX_RUNS], t_ver[MAX_RUNS];
    uint64_t c_exp[MAX_RUNS], c_tar[MAX_RUNS], c_ver[MAX_RUNS];
    uint64_t p_stage[MAX_RUNS], p_check[MAX_RUNS], p_write[MAX_RUNS];
    uint64_t bundle_size = 0, tar_size = 0, extracted = 0;
    /* warm the page cache for both */
    snprintf(cmd, sizeof cmd, "cat '%s'/* > /dev/null", wal);
    if (system(cmd) != 0)
        return 1;
    for (int r = 0; r < runs; r++) {
        tl_bundle_job job;
        memset(&job, 0, sizeof job);
        snprintf(job.id, sizeof job.id, "bbench%02d", r);
        job.from_seq = 1;
        job.to_seq = last;
        job.requested_real_ns = (uint64_t)time(NULL) * 1000000000ull;
        tl_bundle_job_name(&job);
        tl_bundle_result res;
        uint64_t a = now_ns(), ca = cpu_ns(RUSAGE_SELF);
        enum tl_bundle_err e = tl_bundle_export(&env, &job, NULL, &res);
        t_exp[r] = now_ns() - a;
        c_exp[r] = cpu_ns(RUSAGE_SELF) - ca;
        p_stage[r] = res.stage_ns;
        p_check[r] = res.check_ns;
        p_write[r] = res.write_ns;
        if (e != TL_BUNDLE_OK) {
            fprintf(stderr, "export: %s: %s\n", tl_bundle_err_name(e), res.detail);
            return 1;
        }
        bundle_size = res.size_bytes;
        snprintf(cmd, sizeof cmd, "cd '%s' && tar --zstd -cf '%s/tar.tar.zst' wal", base, base);
        a = now_ns();
        ca = cpu_ns(RUSAGE_CHILDREN);
        if (system(cmd) != 0)
            return 1;
        t_tar[r] = now_ns() - a;
        c_tar[r] = cpu_ns(RUSAGE_CHILDREN) - ca;
        struct stat st;
        char tp[700];
        snprintf(tp, sizeof tp, "%s/tar.tar.zst", base);
        if (stat(tp, &st) == 0)
            tar_size = (uint64_t)st.st_size;
        unlink(tp);
        tl_bundle_verify_opts vo = {.pubkey_path = pub, .tmp_dir = base};
        tl_bundle_report rep;
        a = now_ns();
        ca = cpu_ns(RUSAGE_SELF);
        enum tl_bundle_verr ve = tl_bundle_verify(res.path, &vo, &rep);
        t_ver[r] = now_ns() - a;
        c_ver[r] = cpu_ns(RUSAGE_SELF) - ca;
        if (ve != TL_BV_OK) {
            fprintf(stderr, "verify: %s: %s\n", tl_bundle_verr_name(ve), rep.detail);
            return 1;
        }
        extracted = rep.bytes;
        unlink(res.path);
    }
    printf("bundle %.1f MiB, tar --zstd %.1f MiB (from %.1f MiB of files)\n\n",
           (double)bundle_size / 1048576.0, (double)tar_size / 1048576.0,
           (double)wal_bytes / 1048576.0);
    printf("| measure (%d runs)             | median     | min .. max             | rate        |\n"
           "|------------------------------|------------|------------------------|-------------|\n",
           runs);
    uint64_t me[MAX_RUNS], mt[MAX_RUNS];
    memcpy(me, t_exp, sizeof me);
    memcpy(mt, t_tar, sizeof mt);
    summary("export (tl_bundle_export)", t_exp, runs, wal_bytes);
    summary("tar --zstd -cf", t_tar, runs, wal_bytes);
    summary("verify (tl_bundle_verify)", t_ver, runs, extracted);
    summary("  export: staging (small)", p_stage, runs, wal_bytes);
    summary("  export: check setup", p_check, runs, wal_bytes);
    summary("  export: read+hash+check+zstd", p_write, runs, wal_bytes);
    summary("export CPU (user+sys)", c_exp, runs, wal_bytes);
    summary("tar+zstd CPU (user+sys)", c_tar, runs, wal_bytes);
    summary("verify CPU (user+sys)", c_ver, runs, extracted);
    qsort(me, (size_t)runs, sizeof *me, cmp_u64);
    qsort(mt, (size_t)runs, sizeof *mt, cmp_u64);
    double ratio = (double)me[runs / 2] / (double)mt[runs / 2];
    double vrate = (double)extracted / ((double)t_ver[runs / 2] / 1e9) / 1e9;
    printf("\nexport / tar (medians): %.2fx (target <= 2x)\n", ratio);
    printf("verify: %.2f GB/s of bundle content (target >= 1 GB/s)\n", vrate);
    EVP_PKEY_free(k);
    if (!g_keep) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
        (void)system(cmd);
    }
    return 0;
}

/* ---- exports during a bench_halt run ---- */

static int run_cmd_out(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    return pclose(p);
}

static const char *json_str(const char *doc, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(doc, pat);
    out[0] = '\0';
    if (p == NULL)
        return out;
    p += strlen(pat);
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < cap)
        out[i++] = *p++;
    out[i] = '\0';
    return out;
}

static pid_t start_halt(const char *build, const char *out, int faults) {
    char bin[700], fa[32];
    snprintf(bin, sizeof bin, "%s/bench/bench_halt", build);
    snprintf(fa, sizeof fa, "%d", faults);
    pid_t pid = fork();
    if (pid == 0) {
        /* 150 ms apart: tallyd's rate limit allows 1000 actions a minute,
         * two per fault (bench_halt.c). */
        char *argv[] = {bin,     "--faults",  fa,         "--every",     "15000",
                        "--out", (char *)out, "--bindir", (char *)build, NULL};
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            close(fd);
        }
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

static void print_json(const char *path) {
    char buf[4096];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        printf("  (no %s)\n", path);
        return;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    printf("  %s", buf);
}

static int bench_halt_mode(const char *build, int faults) {
    char out_idle[] = "/tmp/bench-bundle-halt-idle", out_busy[] = "/tmp/bench-bundle-halt-busy";
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s && mkdir -p %s %s", out_idle, out_busy, out_idle,
             out_busy);
    if (system(cmd) != 0)
        return 1;
    printf("bench_halt idle (%d faults)...\n", faults);
    pid_t p = start_halt(build, out_idle, faults);
    int st;
    waitpid(p, &st, 0);
    printf("bench_halt with exports running...\n");
    uint64_t start = (uint64_t)time(NULL);
    p = start_halt(build, out_busy, faults);
    /* its tallyd's control socket: the newest bench dir */
    char sock[600] = "";
    for (int i = 0; i < 200 && sock[0] == '\0'; i++) {
        glob_t g;
        if (glob("/dev/shm/tally-bench-halt.*/tally.sock", 0, NULL, &g) == 0) {
            for (size_t k = 0; k < g.gl_pathc; k++) {
                struct stat s;
                if (stat(g.gl_pathv[k], &s) == 0 && (uint64_t)s.st_mtime >= start)
                    snprintf(sock, sizeof sock, "%s", g.gl_pathv[k]);
            }
            globfree(&g);
        }
        usleep(50000);
    }
    if (sock[0] == '\0') {
        fprintf(stderr, "no tallyd control socket found\n");
        kill(p, SIGTERM);
        return 1;
    }
    uint32_t exports = 0, failed = 0;
    uint64_t bytes = 0, busy_ns = 0;
    /* One export after another until bench_halt ends (bounded by its run). */
    while (waitpid(p, &st, WNOHANG) == 0) {
        char resp[4096], id[64], path[800];
        snprintf(cmd, sizeof cmd,
                 "curl -s --unix-socket %s -X POST -d "
                 "'{\"from_seq\":1,\"to_seq\":\"4611686018427387904\"}' "
                 "http://t/bundle",
                 sock);
        if (run_cmd_out(cmd, resp, sizeof resp) != 0 ||
            json_str(resp, "id", id, sizeof id)[0] == 0) {
            usleep(200000);
            continue;
        }
        uint64_t a = now_ns();
        for (int i = 0; i < 6000; i++) {
            snprintf(cmd, sizeof cmd, "curl -s --unix-socket %s http://t/bundle/%s", sock, id);
            if (run_cmd_out(cmd, resp, sizeof resp) != 0)
                break;
            char state[32], size[32];
            json_str(resp, "state", state, sizeof state);
            if (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0) {
                json_str(resp, "path", path, sizeof path);
                json_str(resp, "size_bytes", size, sizeof size);
                if (strcmp(state, "done") == 0) {
                    exports++;
                    bytes += strtoull(size, NULL, 10);
                    unlink(path);
                } else {
                    failed++;
                }
                break;
            }
            usleep(50000);
        }
        busy_ns += now_ns() - a;
    }
    printf("exports during the run: %u done, %u failed, %.1f MiB of bundles, exporting %.1f s\n",
           exports, failed, (double)bytes / 1048576.0, (double)busy_ns / 1e9);
    char j[700];
    printf("idle:\n");
    snprintf(j, sizeof j, "%s/bench_halt.json", out_idle);
    print_json(j);
    printf("during exports:\n");
    snprintf(j, sizeof j, "%s/bench_halt.json", out_busy);
    print_json(j);
    return 0;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"gib", required_argument, NULL, 'g'},     {"runs", required_argument, NULL, 'r'},
        {"seg-mib", required_argument, NULL, 's'}, {"dir", required_argument, NULL, 'd'},
        {"threads", required_argument, NULL, 't'}, {"halt", required_argument, NULL, 'H'},
        {"faults", required_argument, NULL, 'f'},  {"help", no_argument, NULL, 'h'},
        {"keep", no_argument, NULL, 'k'},          {NULL, 0, NULL, 0},
    };
    double gib = 1.0;
    int runs = 5, threads = 1, faults = 300;
    uint64_t seg_mib = 64;
    const char *parent = "/tmp", *halt = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'g':
                gib = strtod(optarg, NULL);
                break;
            case 'r':
                runs = atoi(optarg);
                break;
            case 's':
                seg_mib = strtoull(optarg, NULL, 10);
                break;
            case 'd':
                parent = optarg;
                break;
            case 't':
                threads = atoi(optarg);
                break;
            case 'H':
                halt = optarg;
                break;
            case 'f':
                faults = atoi(optarg);
                break;
            case 'k':
                g_keep = true; /* keep DIR's WAL, and reuse it next time */
                break;
            default:
                printf("usage: bench_bundle [--gib 1] [--runs 5] [--seg-mib 64] [--dir PARENT] "
                       "[--threads 1] [--keep]\n       bench_bundle --halt BUILD [--faults 300]\n");
                return c == 'h' ? 0 : 2;
        }
    }
    signal(SIGXFSZ, SIG_IGN);
    if (halt != NULL)
        return bench_halt_mode(halt, faults);
    if (runs < 1 || runs > MAX_RUNS || gib <= 0 || seg_mib < 1) {
        fprintf(stderr, "bad --runs, --gib or --seg-mib\n");
        return 2;
    }
    /* Our own directory under PARENT: bench_export removes it whole. */
    char dir[512];
    if ((size_t)snprintf(dir, sizeof dir, "%s/tally-bench-bundle", parent) >= sizeof dir) {
        fprintf(stderr, "--dir too long\n");
        return 2;
    }
    return bench_export(gib, runs, seg_mib, dir, threads);
}
