/* bench_xwal1.c: offline verify throughput of xwal1 logs (not CI).
 *
 * Builds a large log in memory from the `basic` fixture (upstream's own
 * records): the 15 records repeated with every seq moved on by a stride
 * (record seq, envelope seqs, and the seqs inside event_id / trade_id), so
 * each copy continues the previous one; framed with valid crcs into
 * segments of upstream's default 8 MiB. Optionally the copies alternate
 * between several symbols (same-length names), each with its own seqs.
 *
 * Then, on one core, repeated runs of:
 *   crc_walk      the frame walker alone (length + whole-payload CRC-32)
 *   fast_decode   the fast scanner alone over every payload
 *   fast_verify   the offline verifier: walker + fast scanner + binding +
 *                 core/stream.c rules 4-6 with the per-symbol window
 *   strict_verify the same with the cJSON reference decoder (on a prefix)
 * and prints median, min and max GB/s (of log bytes) as markdown, and the
 * same as JSON. Every verify run must find 0 findings and every record.
 *
 *   bench_xwal1 [--mib N] [--runs R] [--strict-mib N] [--symbols S]
 *               [--window-log2 W] [--cpu C] [--json FILE] [--fixtures DIR]
 *
 * --window-log2: each symbol's window holds 2^W seqs (default 20, the
 * window.records default: 56 MiB a symbol). Beyond decoding, verify's cost
 * is mostly that window's memory traffic: with a window that stays in
 * cache (W = 16) verify runs at about the decode rate.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "core/checksum.h"
#include "core/xwal1.h"

#ifndef TL_SHARED_DIR
#define TL_SHARED_DIR "../shared"
#endif

#define SEGMENT_BYTES (8u << 20) /* upstream's max_wal_segment_bytes default */
#define MAX_RUNS      64
#define MAX_SYMBOLS   8

static const char *const symbol_names[MAX_SYMBOLS] = {"BTC-KRW", "ETH-KRW", "XRP-KRW", "SOL-KRW",
                                                      "ADA-KRW", "DOT-KRW", "LTC-KRW", "BCH-KRW"};

typedef struct payload {
    char *p;
    size_t n;
} payload;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* This thread's CPU time: on a shared 2-vCPU host, wall time also counts
 * the time other processes held the core. Both are reported. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
    fprintf(stderr, "bench_xwal1: %s\n", what);
    exit(1);
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0)
        die("fseek");
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0)
        die("ftell");
    uint8_t *b = malloc((size_t)n + 1);
    if (b == NULL || fread(b, 1, (size_t)n, f) != (size_t)n)
        die("read");
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* The payloads of the fixture's segments, in log order. */
static size_t load_payloads(const char *dir, payload *out, size_t cap) {
    size_t n = 0;
    for (int i = 1; i < 100; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/wal/segment-%06d.wal", dir, i);
        size_t len;
        uint8_t *b = read_file(path, &len);
        if (b == NULL)
            break;
        size_t o = 7;
        while (o + 8 <= len && n < cap) {
            uint32_t pl;
            memcpy(&pl, b + o, 4);
            out[n].p = malloc(pl + 1);
            if (out[n].p == NULL)
                die("malloc");
            memcpy(out[n].p, b + o + 4, pl);
            out[n].p[pl] = '\0';
            out[n].n = pl;
            n++;
            o += 8 + pl;
        }
        free(b);
    }
    return n;
}

/* Writes p with every seq moved on by delta: numbers after "seq":, after
 * the symbol in "event_id":"SYM-, and after "trade_id":"trd-; and with the
 * symbol renamed (same length). Returns the new length. */
static size_t reseq(const payload *p, uint64_t delta, const char *sym, char *out) {
    static const char *const marks[] = {"\"seq\":", "\"event_id\":\"BTC-KRW-",
                                        "\"trade_id\":\"trd-"};
    const char *s = p->p, *end = p->p + p->n;
    char *o = out;
    while (s < end) {
        size_t ml = 0;
        for (size_t m = 0; m < 3; m++) {
            size_t l = strlen(marks[m]);
            if ((size_t)(end - s) > l && memcmp(s, marks[m], l) == 0) {
                ml = l;
                break;
            }
        }
        if (ml == 0) {
            if ((size_t)(end - s) >= 7 && memcmp(s, "BTC-KRW", 7) == 0) {
                memcpy(o, sym, 7);
                o += 7, s += 7;
            } else {
                *o++ = *s++;
            }
            continue;
        }
        memcpy(o, s, ml);
        if (ml > 7 && memcmp(o + ml - 8, "BTC-KRW-", 8) == 0)
            memcpy(o + ml - 8, sym, 7);
        o += ml, s += ml;
        uint64_t v = 0;
        while (s < end && *s >= '0' && *s <= '9')
            v = v * 10 + (uint64_t)(*s++ - '0');
        o += sprintf(o, "%llu", (unsigned long long)(v + delta));
    }
    return (size_t)(o - out);
}

typedef struct log_mem {
    uint8_t *buf;
    size_t len;
    tl_xwal1_segment_buf *segs;
    size_t nsegs;
    uint64_t records;
} log_mem;

static void build_log(log_mem *L, const payload *pl, size_t npl, size_t target, unsigned symbols) {
    L->buf = malloc(target + SEGMENT_BYTES);
    size_t seg_cap = target / (SEGMENT_BYTES / 2) + 4;
    L->segs = calloc(seg_cap, sizeof *L->segs);
    if (L->buf == NULL || L->segs == NULL)
        die("out of memory");
    char *tmp = malloc(1u << 16);
    if (tmp == NULL)
        die("malloc");
    size_t o = 0, seg_start = 0;
    L->nsegs = 0;
    L->records = 0;
    const uint64_t stride = 40; /* the fixture's seqs run 2..38 */
    for (uint64_t copy = 0; o < target; copy++) {
        unsigned sym = (unsigned)(copy % symbols);
        uint64_t delta = (copy / symbols) * stride;
        for (size_t i = 0; i < npl && o < target; i++) {
            size_t n = reseq(&pl[i], delta, symbol_names[sym], tmp);
            if (L->nsegs == 0 || (o - seg_start) + n + 8 > SEGMENT_BYTES) {
                if (L->nsegs > 0)
                    L->segs[L->nsegs - 1].len = o - seg_start;
                if (L->nsegs == seg_cap)
                    die("too many segments");
                seg_start = o;
                memcpy(L->buf + o, TL_XWAL1_MAGIC, TL_XWAL1_MAGIC_BYTES);
                o += TL_XWAL1_MAGIC_BYTES;
                L->segs[L->nsegs].index = L->nsegs + 1;
                L->segs[L->nsegs].bytes = L->buf + seg_start;
                L->nsegs++;
            }
            uint32_t len = (uint32_t)n, crc = (uint32_t)crc32(0, (const uint8_t *)tmp, len);
            memcpy(L->buf + o, &len, 4);
            memcpy(L->buf + o + 4, tmp, n);
            memcpy(L->buf + o + 4 + n, &crc, 4);
            o += 8 + n;
            L->records++;
        }
    }
    L->segs[L->nsegs - 1].len = o - seg_start;
    L->len = o;
    free(tmp);
}

static void emit_none(void *ctx, const tl_finding *f) {
    uint64_t *n = ctx;
    (*n)++;
    if (*n <= 3) {
        char b[512];
        tl_finding_json(f, b, sizeof b);
        fprintf(stderr, "unexpected finding: %s\n", b);
    }
}

/* ---- the measured passes: each returns records seen ---- */

static uint64_t pass_crc(const log_mem *L, size_t nsegs) {
    uint64_t frames = 0;
    for (size_t s = 0; s < nsegs; s++) {
        tl_xwal1_walker w;
        tl_xwal1_walker_init(&w, L->segs[s].bytes, L->segs[s].len, 0, s + 1 == nsegs);
        tl_xwal1_frame fr;
        enum tl_xwal1_err err;
        while (tl_xwal1_walker_next(&w, &fr, &err) == TL_XWAL1_FRAME)
            frames++;
        if (err != TL_XWAL1_OK)
            die("walk failed");
    }
    return frames;
}

static uint64_t pass_decode(const log_mem *L, size_t nsegs) {
    static tl_xwal1_rec rec;
    uint64_t ok = 0;
    for (size_t s = 0; s < nsegs; s++) {
        const uint8_t *b = L->segs[s].bytes;
        size_t o = 7, len = L->segs[s].len;
        while (o + 8 <= len) {
            uint32_t pl;
            memcpy(&pl, b + o, 4);
            ok += tl_xwal1_decode(b + o + 4, pl, &rec) == TL_XWAL1_OK;
            o += 8 + pl;
        }
    }
    return ok;
}

typedef struct verify_ctx {
    tl_xwal1_verify_cfg cfg;
    void *mem;
    size_t bytes;
} verify_ctx;

static uint64_t pass_verify(const log_mem *L, size_t nsegs, verify_ctx *vc) {
    static tl_xwal1_verifier v;
    uint64_t findings = 0;
    tl_sink sink = {emit_none, &findings};
    if (!tl_xwal1_verifier_init(&v, &vc->cfg, vc->mem, vc->bytes, sink))
        die("verifier init");
    for (size_t s = 0; s < nsegs; s++)
        tl_xwal1_verifier_segment(&v, s + 1, L->segs[s].bytes, L->segs[s].len, s + 1 == nsegs);
    if (findings != 0)
        die("the generated log has findings");
    return tl_xwal1_verifier_summary(&v)->records;
}

typedef struct stats {
    double v[MAX_RUNS];
    double med, min, max;
} stats;

typedef struct result {
    const char *name;
    double bytes;
    uint64_t records;
    int runs;
    stats wall; /* GB/s by wall time */
    stats cpu;  /* GB/s by thread CPU time */
} result;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void finish(stats *st, int runs) {
    double s[MAX_RUNS];
    memcpy(s, st->v, sizeof(double) * (size_t)runs);
    qsort(s, (size_t)runs, sizeof s[0], cmp_double);
    st->min = s[0];
    st->max = s[runs - 1];
    st->med = runs % 2 ? s[runs / 2] : (s[runs / 2 - 1] + s[runs / 2]) / 2;
}

enum pass_kind { P_CRC, P_DECODE, P_VERIFY };

static void measure(result *r, const char *name, enum pass_kind kind, const log_mem *L,
                    size_t nsegs, verify_ctx *vc, int runs, uint64_t want_records) {
    r->name = name;
    r->runs = runs;
    r->bytes = 0;
    for (size_t s = 0; s < nsegs; s++)
        r->bytes += (double)L->segs[s].len;
    for (int i = 0; i < runs; i++) {
        double t0 = now_s(), c0 = cpu_s();
        uint64_t got = kind == P_CRC      ? pass_crc(L, nsegs)
                       : kind == P_DECODE ? pass_decode(L, nsegs)
                                          : pass_verify(L, nsegs, vc);
        double t = now_s() - t0, c = cpu_s() - c0;
        if (got != want_records)
            die("record count differs");
        r->records = got;
        r->wall.v[i] = r->bytes / t / 1e9;
        r->cpu.v[i] = r->bytes / c / 1e9;
    }
    finish(&r->wall, runs);
    finish(&r->cpu, runs);
}

int main(int argc, char **argv) {
    size_t mib = 1024, strict_mib = 64;
    int runs = 7, cpu = -1;
    unsigned symbols = 1, window_log2 = 20;
    const char *json_path = NULL;
    const char *fixtures = TL_SHARED_DIR "/fixtures/quanta-xwal1/basic";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--mib") == 0 && v)
            mib = strtoull(v, NULL, 10), i++;
        else if (strcmp(a, "--strict-mib") == 0 && v)
            strict_mib = strtoull(v, NULL, 10), i++;
        else if (strcmp(a, "--runs") == 0 && v)
            runs = atoi(v), i++;
        else if (strcmp(a, "--symbols") == 0 && v)
            symbols = (unsigned)atoi(v), i++;
        else if (strcmp(a, "--window-log2") == 0 && v)
            window_log2 = (unsigned)atoi(v), i++;
        else if (strcmp(a, "--cpu") == 0 && v)
            cpu = atoi(v), i++;
        else if (strcmp(a, "--json") == 0 && v)
            json_path = v, i++;
        else if (strcmp(a, "--fixtures") == 0 && v)
            fixtures = v, i++;
        else
            die("usage: bench_xwal1 [--mib N] [--runs R] [--strict-mib N] [--symbols S] "
                "[--window-log2 W] [--cpu C] [--json FILE] [--fixtures DIR]");
    }
    if (runs < 1 || runs > MAX_RUNS || symbols < 1 || symbols > MAX_SYMBOLS || mib < 1 ||
        window_log2 < 1 || window_log2 > 26)
        die("bad arguments");
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            fprintf(stderr, "bench_xwal1: cannot pin to cpu %d: %s\n", cpu, strerror(errno));
    }

    payload pl[64];
    size_t npl = load_payloads(fixtures, pl, 64);
    if (npl == 0)
        die("no fixture payloads (--fixtures DIR)");
    log_mem L;
    double t0 = now_s();
    build_log(&L, pl, npl, mib << 20, symbols);
    fprintf(stderr, "built %.1f MiB, %zu segments, %llu records in %.1f s\n",
            (double)L.len / (1 << 20), L.nsegs, (unsigned long long)L.records, now_s() - t0);

    verify_ctx vc = {{symbols, 1ull << window_log2, false}, NULL, 0};
    vc.bytes = tl_xwal1_verifier_bytes(&vc.cfg);
    vc.mem = aligned_alloc(64, (vc.bytes + 63) & ~(size_t)63);
    if (vc.mem == NULL)
        die("out of memory");
    verify_ctx vs = vc;
    vs.cfg.strict = true;

    /* the strict path on a prefix of whole segments */
    size_t strict_segs = 0, strict_bytes = 0;
    uint64_t strict_records = 0;
    while (strict_segs < L.nsegs && strict_bytes < (strict_mib << 20)) {
        strict_bytes += L.segs[strict_segs].len;
        strict_segs++;
    }
    strict_records = pass_crc(&L, strict_segs);

    result res[4];
    measure(&res[0], "crc_walk", P_CRC, &L, L.nsegs, NULL, runs, L.records);
    measure(&res[1], "fast_decode", P_DECODE, &L, L.nsegs, NULL, runs, L.records);
    measure(&res[2], "fast_verify", P_VERIFY, &L, L.nsegs, &vc, runs, L.records);
    int strict_runs = runs < 3 ? runs : 3;
    measure(&res[3], "strict_verify", P_VERIFY, &L, strict_segs, &vs, strict_runs, strict_records);

    const char *crc_impl = tl_xwal1_crc32_accelerated() ? "pclmul" : "zlib";
    const char *xxh_impl = tl_xxh3_impl_name(tl_xxh3_active());
    printf("## xwal1 offline verify, one core\n\n");
    printf("log: %.1f MiB (%zu segments of <= 8 MiB, %llu records, %u symbol%s, avg %.0f "
           "bytes/frame); window 2^%u seqs/symbol; crc32 %s, xxh3 %s; %d runs (strict: %d runs "
           "over %.1f MiB)\n\n",
           (double)L.len / (1 << 20), L.nsegs, (unsigned long long)L.records, symbols,
           symbols > 1 ? "s" : "", (double)L.len / (double)L.records, window_log2, crc_impl,
           xxh_impl, runs, strict_runs, (double)strict_bytes / (1 << 20));
    printf("| pass | CPU GB/s median | min | max | wall GB/s median | min | max | CPU "
           "Mrecords/s |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < 4; i++) {
        double rec_per_byte = (double)res[i].records / res[i].bytes;
        printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", res[i].name,
               res[i].cpu.med, res[i].cpu.min, res[i].cpu.max, res[i].wall.med, res[i].wall.min,
               res[i].wall.max, res[i].cpu.med * 1e9 * rec_per_byte / 1e6);
    }
    printf("\nfast_verify / strict_verify (CPU): %.1fx\n", res[2].cpu.med / res[3].cpu.med);

    FILE *j = json_path ? fopen(json_path, "w") : stdout;
    if (j == NULL)
        die("cannot open --json file");
    fprintf(j,
            "%s{\"bench\":\"xwal1_verify\",\"log_bytes\":%zu,\"segments\":%zu,\"records\":%llu,"
            "\"symbols\":%u,\"window_log2\":%u,\"crc32\":\"%s\",\"xxh3\":\"%s\",\"passes\":[",
            j == stdout ? "\n" : "", L.len, L.nsegs, (unsigned long long)L.records, symbols,
            window_log2, crc_impl, xxh_impl);
    for (int i = 0; i < 4; i++) {
        fprintf(j, "%s{\"name\":\"%s\",\"bytes\":%.0f,\"records\":%llu,\"runs\":%d", i ? "," : "",
                res[i].name, res[i].bytes, (unsigned long long)res[i].records, res[i].runs);
        const stats *st[2] = {&res[i].cpu, &res[i].wall};
        const char *key[2] = {"cpu", "wall"};
        for (int m = 0; m < 2; m++) {
            fprintf(
                j,
                ",\"%s_gbps_median\":%.3f,\"%s_gbps_min\":%.3f,\"%s_gbps_max\":%.3f,\"%s_gbps\":[",
                key[m], st[m]->med, key[m], st[m]->min, key[m], st[m]->max, key[m]);
            for (int k = 0; k < res[i].runs; k++)
                fprintf(j, "%s%.3f", k ? "," : "", st[m]->v[k]);
            fprintf(j, "]");
        }
        fprintf(j, "}");
    }
    fprintf(j, "]}\n");
    if (j != stdout)
        fclose(j);
    free(vc.mem);
    free(L.buf);
    free(L.segs);
    for (size_t i = 0; i < npl; i++)
        free(pl[i].p);
    return 0;
}
