/* bench_wal.c: the native WAL's writer throughput (group commit) and the
 * offline reader's verified replay throughput against a raw pread of the same
 * bytes (not a CI test).
 *
 *   bench_wal [--dir PARENT] [--gib N] [--segment-mib N] [--runs N] [--inline]
 *             [--cold] [--keep]
 *
 * The log goes in PARENT/tally-bench-wal (PARENT defaults to /var/tmp); only
 * that directory is ever removed, never PARENT.
 *
 * 1. Writes ~N GiB (default 1) of records averaging ~120 bytes (ORDER_NEW,
 *    ORDER_CANCEL, TRADE, CHECKPOINT, HEARTBEAT, an unknown kind with a
 *    larger body) with the writer over 64 MiB segments, the sync thread doing
 *    group commit (unless --inline). Reports records/s, MB/s, fdatasyncs and
 *    the append latency (sampled every 64th append).
 * 2. Replays the directory `runs` times (default 7), interleaved with a raw
 *    pread of the same bytes (the same files up to the same end, 4 MiB
 *    reads into one aligned buffer), alternating which goes first. By
 *    default both read from the page cache: the log was just written, a
 *    warm-up pass of each runs first, and the machine has far more RAM than
 *    the log. With --cold, every pass of either starts with the files evicted
 *    (posix_fadvise DONTNEED on each file; the pages are clean after the
 *    writer's fdatasync), so both read from the disk. The replay
 *    verifies everything: header and record checksums (rules 1-3), rules
 *    4-6 and the window comparison (1 Mi entries).
 * Prints a markdown table and one JSON line with median/min/max.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/checksum.h"
#include "core/segment.h"
#include "io/wal_dir.h"
#include "io/wal_reader.h"
#include "io/wal_writer.h"

#define MAX_RUNS    31
#define LAT_SAMPLES (1u << 20)
#define READ_BUF    (4u << 20)

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct stats {
    double median, min, max;
} stats;

static stats stats_of(const double *v, unsigned n) {
    double s[MAX_RUNS];
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    stats r = {n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[0], s[n - 1]};
    return r;
}

/* ---- the engine side ---- */

typedef struct bench_eng {
    uint64_t durable_calls;
} bench_eng;

static uint32_t b_symbols(void *ctx, tl_wal_opener_symbol *out, uint32_t cap) {
    (void)ctx;
    static const char *const names[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"};
    uint32_t n = cap < 4 ? cap : 4;
    for (uint32_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].symbol = i + 1;
        memcpy(out[i].name, names[i], strlen(names[i]));
    }
    return n;
}

static void b_durable(void *ctx, uint64_t seq, uint64_t seg, uint64_t off) {
    (void)seq;
    (void)seg;
    (void)off;
    ((bench_eng *)ctx)->durable_calls++;
}

/* xorshift64* */
static uint64_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

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

/* ---- raw read of the same bytes ---- */

typedef struct span {
    uint64_t first_seq;
    uint64_t bytes; /* read [0, bytes) */
} span;

/* Drops the files' pages from the page cache (they are clean). */
static void evict(const char *dir, const span *sp, uint32_t n) {
    char path[1024], name[32];
    for (uint32_t i = 0; i < n; i++) {
        tl_seg_name(name, sizeof name, sp[i].first_seq);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fdatasync(fd) != 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
            perror(path);
            exit(1);
        }
        close(fd);
    }
}

static double raw_read(const char *dir, const span *sp, uint32_t n, uint8_t *buf,
                       uint64_t *sum_out) {
    char path[1024], name[32];
    uint64_t t0 = now_ns(), sum = 0;
    for (uint32_t i = 0; i < n; i++) {
        tl_seg_name(name, sizeof name, sp[i].first_seq);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            perror(path);
            exit(1);
        }
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* as the reader does */
        for (uint64_t off = 0; off < sp[i].bytes;) {
            size_t want = sp[i].bytes - off < READ_BUF ? (size_t)(sp[i].bytes - off) : READ_BUF;
            ssize_t r = pread(fd, buf, want, (off_t)off);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                perror("pread");
                exit(1);
            }
            sum += buf[0]; /* keep the read observable */
            off += (uint64_t)r;
        }
        close(fd);
    }
    *sum_out = sum;
    return (double)(now_ns() - t0) / 1e9;
}

typedef struct replay_ctx {
    uint64_t records;
    uint64_t kinds[8];
} replay_ctx;

static int count_rec(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result res) {
    (void)loc;
    (void)res;
    replay_ctx *c = ctx;
    c->records++;
    c->kinds[v->kind & 7]++;
    return 0;
}

static uint64_t findings_seen;
static void count_finding(void *ctx, const tl_finding *f) {
    (void)ctx;
    if (findings_seen++ < 8) {
        char line[1024];
        tl_finding_json(f, line, sizeof line);
        fprintf(stderr, "finding: %s\n", line);
    }
}

static double replay(const char *dir, tl_wal_summary *sum) {
    replay_ctx c;
    memset(&c, 0, sizeof c);
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.window_records = 1u << 20;
    o.buf_bytes = READ_BUF;
    o.sink = (tl_sink){count_finding, NULL};
    o.on_record = count_rec;
    o.ctx = &c;
    uint64_t t0 = now_ns();
    enum tl_wal_err rc = tl_wal_read_dir(dir, &o, sum);
    double s = (double)(now_ns() - t0) / 1e9;
    if (rc != TL_WAL_OK || sum->findings_total != 0 || c.records != sum->records_total) {
        fprintf(stderr, "replay failed: %s, %llu findings\n", tl_wal_err_name(rc),
                (unsigned long long)sum->findings_total);
        exit(1);
    }
    return s;
}

int main(int argc, char **argv) {
    const char *parent = "/var/tmp";
    double gib = 1.0;
    uint64_t seg_mib = 64;
    unsigned runs = 7;
    bool inline_mode = false, keep = false, cold = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            parent = argv[++i];
        else if (strcmp(argv[i], "--gib") == 0 && i + 1 < argc)
            gib = atof(argv[++i]);
        else if (strcmp(argv[i], "--segment-mib") == 0 && i + 1 < argc)
            seg_mib = (uint64_t)atoll(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--inline") == 0)
            inline_mode = true;
        else if (strcmp(argv[i], "--keep") == 0)
            keep = true;
        else if (strcmp(argv[i], "--cold") == 0)
            cold = true;
        else {
            fprintf(stderr,
                    "usage: %s [--dir PARENT] [--gib N] [--segment-mib N] [--runs N] [--inline] "
                    "[--cold] [--keep]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || gib <= 0) {
        fprintf(stderr, "bad --runs or --gib\n");
        return 2;
    }
    /* Our own directory under PARENT: the rm -rf below must never reach
     * anything we did not create (a --dir /var/tmp once meant all of it). */
    char dir[900];
    if ((size_t)snprintf(dir, sizeof dir, "%s/tally-bench-wal", parent) >= sizeof dir) {
        fprintf(stderr, "--dir too long\n");
        return 2;
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 1;

    /* ---- 1. write ---- */
    bench_eng eng = {0};
    tl_wal_config cfg;
    tl_wal_config_default(&cfg);
    cfg.dir = dir;
    cfg.segment_bytes = seg_mib << 20;
    cfg.sync_thread = !inline_mode;
    cfg.initial_fence = 1;
    memcpy(cfg.engine_id, "bench-engine-001", TL_ID_BYTES);
    tl_wal_ops ops = {.ctx = &eng, .symbols = b_symbols, .on_durable = b_durable};
    tl_wal *w;
    tl_wal_recovered rec;
    enum tl_wal_err rc = tl_wal_open(&w, &cfg, &ops, &rec);
    if (rc != TL_WAL_OK) {
        fprintf(stderr, "open: %s\n", tl_wal_err_name(rc));
        return 1;
    }
    uint8_t leader[TL_ID_BYTES] = "bench-engine-001";
    tl_wal_leader_change(w, 2, leader, 1, NULL);
    uint64_t target = (uint64_t)(gib * (double)(1ull << 30));
    uint64_t *lat = malloc(LAT_SAMPLES * sizeof *lat);
    uint32_t nlat = 0;
    uint64_t rs = 0x9e3779b97f4a7c15ull, i = 0;
    uint64_t t0 = now_ns();
    uint64_t ts = (uint64_t)time(NULL) * 1000000000ull;
    /* Appends until the records total ~target bytes. */
    uint64_t appended_bytes = 0;
    for (; appended_bytes < target; i++) {
        bool sample = (i & 63) == 0 && nlat < LAT_SAMPLES;
        uint64_t a0 = sample ? now_ns() : 0;
        tl_wal_appended a;
        rc = append_one(w, i, &rs, ts + i, &a);
        if (sample)
            lat[nlat++] = now_ns() - a0;
        if (rc != TL_WAL_OK) {
            fprintf(stderr, "append: %s\n", tl_wal_err_name(rc));
            return 1;
        }
        appended_bytes += a.len;
    }
    uint64_t appends = i;
    rc = tl_wal_close(w);
    uint64_t t1 = now_ns();
    if (rc != TL_WAL_OK) {
        fprintf(stderr, "close: %s\n", tl_wal_err_name(rc));
        return 1;
    }
    double write_s = (double)(t1 - t0) / 1e9;
    qsort(lat, nlat, sizeof *lat, cmp_u64);

    /* What to read: every segment up to where its records end. */
    tl_wal_dir wd;
    tl_wal_dir_init(&wd, 0);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    tl_wal_dir_scan(&wd, dfd);
    close(dfd);
    tl_wal_summary sum;
    double warm = replay(dir, &sum);
    span *sp = calloc(wd.count, sizeof *sp);
    uint64_t bytes = 0;
    for (uint32_t k = 0; k < wd.count; k++) {
        sp[k].first_seq = wd.first_seqs[k];
        sp[k].bytes = k + 1 < wd.count ? cfg.segment_bytes : sum.tail_offset;
        bytes += sp[k].bytes;
    }
    uint64_t log_records = sum.records_total;
    double rec_bytes_avg = 0;
    {
        uint64_t payload = 0;
        for (uint32_t k = 0; k < wd.count; k++)
            payload += sp[k].bytes - TL_SEG_HDR_BYTES;
        rec_bytes_avg = (double)payload / (double)log_records;
    }

    /* ---- 2. replay vs raw pread, interleaved ---- */
    uint8_t *buf = aligned_alloc(4096, READ_BUF);
    uint64_t sink = 0, s;
    (void)raw_read(dir, sp, wd.count, buf, &s); /* warm-up */
    sink += s;
    (void)warm;
    double raw_gbps[MAX_RUNS], rep_gbps[MAX_RUNS], ratio[MAX_RUNS];
    for (unsigned r = 0; r < runs; r++) {
        double tr = 0, tp = 0;
        for (int k = 0; k < 2; k++) {
            if (cold)
                evict(dir, sp, wd.count);
            if ((k == 0) == (r % 2 == 0))
                tr = raw_read(dir, sp, wd.count, buf, &s);
            else
                tp = replay(dir, &sum);
        }
        sink += s;
        raw_gbps[r] = (double)bytes / tr / 1e9;
        rep_gbps[r] = (double)bytes / tp / 1e9;
        ratio[r] = rep_gbps[r] / raw_gbps[r];
    }
    stats sr = stats_of(raw_gbps, runs), sp_ = stats_of(rep_gbps, runs), sq = stats_of(ratio, runs);

    double recs_per_s = (double)appends / write_s;
    double mb_per_s = (double)bytes / write_s / 1e6;
    printf("## bench_wal\n\n");
    printf(
        "log: %u segments of %llu MiB, %llu records (%llu appended + openers), %.1f B/record avg, "
        "%.3f GiB read per pass; xxh3=%s; %s; %s\n\n",
        wd.count, (unsigned long long)seg_mib, (unsigned long long)log_records,
        (unsigned long long)appends, rec_bytes_avg, (double)bytes / (double)(1ull << 30),
        tl_xxh3_impl_name(tl_xxh3_active()), inline_mode ? "inline sync" : "sync thread",
        cold ? "both cold: files evicted (fadvise DONTNEED) before every pass"
             : "both from the page cache (warm)");
    printf("| what | median | min | max |\n|---|---|---|---|\n");
    printf("| raw pread GB/s | %.2f | %.2f | %.2f |\n", sr.median, sr.min, sr.max);
    printf("| verified replay GB/s (walseg + stream) | %.2f | %.2f | %.2f |\n", sp_.median, sp_.min,
           sp_.max);
    printf("| replay / raw | %.3f | %.3f | %.3f |\n", sq.median, sq.min, sq.max);
    printf(
        "\nwriter (%s, group commit %llu B / %u records / %llu us): %.2f M records/s, %.0f MB/s, "
        "%llu on_durable (fdatasync batches), %.2f s; append latency p50 %llu ns, p99 %llu ns, "
        "p99.9 %llu ns, max %llu ns (1/64 sampled)\n",
        inline_mode ? "inline" : "sync thread", (unsigned long long)cfg.group_max_bytes,
        cfg.group_max_records, (unsigned long long)(cfg.group_max_delay_ns / 1000),
        recs_per_s / 1e6, mb_per_s, (unsigned long long)eng.durable_calls, write_s,
        (unsigned long long)lat[nlat / 2], (unsigned long long)lat[(uint64_t)nlat * 99 / 100],
        (unsigned long long)lat[(uint64_t)nlat * 999 / 1000], (unsigned long long)lat[nlat - 1]);
    printf("\n{\"bench\":\"wal\",\"cache\":\"%s\",\"runs\":%u,\"bytes\":%llu,\"records\":%llu,"
           "\"raw_pread_gbps\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f},"
           "\"replay_gbps\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f},"
           "\"ratio\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f},"
           "\"writer\":{\"mode\":\"%s\",\"records_per_s\":%.0f,\"mb_per_s\":%.1f,"
           "\"durable_batches\":%llu,\"append_p50_ns\":%llu,\"append_p99_ns\":%llu,"
           "\"append_max_ns\":%llu},\"sink\":%llu}\n",
           cold ? "cold" : "warm", runs, (unsigned long long)bytes, (unsigned long long)log_records,
           sr.median, sr.min, sr.max, sp_.median, sp_.min, sp_.max, sq.median, sq.min, sq.max,
           inline_mode ? "inline" : "thread", recs_per_s, mb_per_s,
           (unsigned long long)eng.durable_calls, (unsigned long long)lat[nlat / 2],
           (unsigned long long)lat[(uint64_t)nlat * 99 / 100], (unsigned long long)lat[nlat - 1],
           (unsigned long long)(sink & 1));
    free(buf);
    free(sp);
    free(lat);
    tl_wal_dir_free(&wd);
    if (!keep && system(cmd) != 0)
        return 1;
    return 0;
}
