/* tallyctl_offline.c: the subcommands that need no daemon.
 *
 *   tallyctl wal verify DIR [--dialect tlywal1|xwal1]   every reading rule over
 *       a whole WAL directory: native with io/wal_reader, xwal1 with
 *       core/xwal1's verifier. Each finding names its segment file, offset,
 *       seq and rule.
 *   tallyctl ring inspect NAME   the ring's control block, mapped read-only.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/finding.h"
#include "core/segment.h"
#include "core/xwal1.h"
#include "io/wal_dir.h"
#include "io/wal_reader.h"
#include "shm/ring.h"
#include "tallyctl_int.h"

/* ---- wal verify ---- */

#define TC_FINDINGS_DEFAULT 1000u

typedef struct verify {
    tc_opts *o;
    bool xwal1;
    char dir[4096];
    tl_finding *f;
    uint32_t n;
    uint32_t cap;
    uint64_t total;
    uint64_t sev; /* SEV1 + SEV2 */
    tc_bar bar;
    uint64_t segs_done;
    uint64_t segs_total;
    const tl_xwal1_symtab *xsyms;
} verify;

static void collect(void *ctx, const tl_finding *f) {
    verify *v = ctx;
    v->total++;
    if (f->severity >= TL_SEV_SEV2)
        v->sev++;
    if (v->n < v->cap)
        v->f[v->n++] = *f;
}

static void on_segment(void *ctx, const tl_seg_hdr *h, uint64_t name_first_seq) {
    (void)h;
    (void)name_first_seq;
    verify *v = ctx;
    v->segs_done++;
    tc_bar_update(&v->bar, v->segs_done, v->segs_total, "segments");
}

static const char *rule_name(unsigned rule) {
    static const char *const names[] = {"-",      "length", "checksum", "fields", "seq",
                                        "parent", "fence",  "segment",  "ring"};
    return rule < sizeof names / sizeof names[0] ? names[rule] : "?";
}

static void segment_file(const verify *v, const tl_finding *f, char *out, size_t cap) {
    if (v->xwal1) {
        if (f->segment == 0 || tl_xwal1_segment_name(out, cap, f->segment) == 0)
            snprintf(out, cap, "-");
    } else {
        tl_seg_name(out, cap, f->segment);
    }
}

static const char *symbol_name(const verify *v, uint32_t id, char *buf, size_t cap) {
    if (id == 0)
        return "*";
    if (v->xsyms != NULL) {
        const tl_xwal1_sym *s = tl_xwal1_symtab_get(v->xsyms, id);
        if (s != NULL)
            return s->name;
    }
    snprintf(buf, cap, "#%u", id);
    return buf;
}

static void classes_text(uint8_t cls, char *out, size_t cap) {
    out[0] = '\0';
    for (unsigned b = 0; b < TL_CLASS_COUNT; b++) {
        if (cls & (1u << b))
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? "+" : "",
                     tl_class_name(1u << b));
    }
}

static void print_findings_text(const verify *v) {
    for (uint32_t i = 0; i < v->n; i++) {
        const tl_finding *f = &v->f[i];
        char seg[64], sym[32], cls[64];
        segment_file(v, f, seg, sizeof seg);
        classes_text(f->cls, cls, sizeof cls);
        printf("%-4s %-18s %-24s %s offset %llu seq %llu rule %u (%s)",
               tl_severity_name((enum tl_severity)f->severity),
               tl_check_name((enum tl_check)f->check), cls, seg, (unsigned long long)f->offset,
               (unsigned long long)f->seq, f->rule, rule_name(f->rule));
        if (f->reason != TL_REASON_NONE)
            printf(" reason %s", tl_reason_name(f->reason));
        printf(" symbol %s", symbol_name(v, f->symbol, sym, sizeof sym));
        if (f->check == TL_CHECK_FORK || f->check == TL_CHECK_FENCE_REGRESSION ||
            f->check == TL_CHECK_FENCE_UNANNOUNCED)
            printf(" fence %llu (in force %llu)", (unsigned long long)f->fence,
                   (unsigned long long)f->fence2);
        if (f->check == TL_CHECK_FORK || f->check == TL_CHECK_CHAIN_BREAK)
            printf(" checksum %016llx vs %016llx", (unsigned long long)f->checksum,
                   (unsigned long long)f->checksum2);
        printf("\n");
    }
    if (v->total > v->n)
        printf("... and %llu more findings (--max-findings)\n",
               (unsigned long long)(v->total - v->n));
}

static cJSON *findings_json(const verify *v) {
    cJSON *arr = cJSON_CreateArray();
    char buf[1024];
    for (uint32_t i = 0; i < v->n; i++) {
        const tl_finding *f = &v->f[i];
        char seg[64], sym[32];
        segment_file(v, f, seg, sizeof seg);
        tl_finding_json(f, buf, sizeof buf);
        cJSON *j = cJSON_Parse(buf);
        if (j == NULL)
            j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "segment_file", seg);
        cJSON_AddStringToObject(j, "rule_name", rule_name(f->rule));
        cJSON_AddStringToObject(j, "symbol_name", symbol_name(v, f->symbol, sym, sizeof sym));
        cJSON_AddItemToArray(arr, j);
    }
    return arr;
}

static void print_json(cJSON *root) {
    char *s = cJSON_PrintUnformatted(root);
    if (s != NULL) {
        printf("%s\n", s);
        cJSON_free(s);
    }
    cJSON_Delete(root);
}

static char *u64s(char *buf, uint64_t v) {
    sprintf(buf, "%llu", (unsigned long long)v);
    return buf;
}

static int verify_native(verify *v, uint64_t start_seq) {
    int dfd = open(v->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        fprintf(stderr, "tallyctl: %s: %s\n", v->dir, strerror(errno));
        return TC_USAGE;
    }
    tl_wal_dir d;
    if (tl_wal_dir_init(&d, 0) == TL_WAL_OK && tl_wal_dir_scan(&d, dfd) == TL_WAL_OK)
        v->segs_total = d.count;
    tl_wal_dir_free(&d);
    close(dfd);

    tl_wal_read_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.start_seq = start_seq;
    ro.sink = (tl_sink){collect, v};
    ro.on_segment = on_segment;
    ro.ctx = v;
    tl_wal_summary sum;
    tc_bar_start(&v->bar, v->o->progress, "wal verify");
    enum tl_wal_err e = tl_wal_read_dir(v->dir, &ro, &sum);
    tc_bar_end(&v->bar);
    if (e != TL_WAL_OK) {
        fprintf(stderr, "tallyctl: %s: %s (%s: %s)\n", v->dir, tl_wal_err_name(e),
                sum.ioerr.op != NULL ? sum.ioerr.op : "-",
                sum.ioerr.sys_errno != 0 ? strerror(sum.ioerr.sys_errno) : "-");
        return TC_USAGE;
    }
    const char *status = v->sev > 0 ? "MISMATCH" : "CONSISTENT";
    if (v->o->json) {
        char b[32];
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "dir", v->dir);
        cJSON_AddStringToObject(root, "dialect", "tlywal1");
        cJSON_AddStringToObject(root, "status", status);
        cJSON_AddNumberToObject(root, "segments", sum.segments_read);
        cJSON_AddStringToObject(root, "records", u64s(b, sum.records_total));
        cJSON_AddStringToObject(root, "first_seq", u64s(b, sum.first_seq));
        cJSON_AddStringToObject(root, "last_seq", u64s(b, sum.last_seq));
        cJSON_AddStringToObject(root, "fence_min", u64s(b, sum.fence_min));
        cJSON_AddStringToObject(root, "fence_max", u64s(b, sum.fence_max));
        cJSON_AddBoolToObject(root, "anchor_verified", sum.anchor_verified);
        cJSON_AddStringToObject(root, "tail", tl_wal_tail_name((enum tl_wal_tail)sum.tail));
        if (sum.tail == TL_WAL_TAIL_TENTATIVE || sum.tail == TL_WAL_TAIL_CORRUPT) {
            char seg[64];
            tl_seg_name(seg, sizeof seg, sum.tail_segment);
            cJSON_AddStringToObject(root, "tail_segment_file", seg);
            cJSON_AddStringToObject(root, "tail_offset", u64s(b, sum.tail_offset));
            cJSON_AddStringToObject(root, "tail_reason", tl_reason_name(sum.tail_reason));
        }
        cJSON_AddStringToObject(root, "findings_total", u64s(b, v->total));
        cJSON_AddStringToObject(root, "mismatch_findings", u64s(b, v->sev));
        cJSON_AddItemToObject(root, "findings", findings_json(v));
        print_json(root);
    } else {
        print_findings_text(v);
        printf("%s: %s, %u segments, %llu records (seq %llu..%llu), fences %llu..%llu, "
               "anchor %s, tail %s",
               v->dir, status, sum.segments_read, (unsigned long long)sum.records_total,
               (unsigned long long)sum.first_seq, (unsigned long long)sum.last_seq,
               (unsigned long long)sum.fence_min, (unsigned long long)sum.fence_max,
               sum.anchor_verified ? "verified" : "unverified",
               tl_wal_tail_name((enum tl_wal_tail)sum.tail));
        if (sum.tail == TL_WAL_TAIL_TENTATIVE) {
            char seg[64];
            tl_seg_name(seg, sizeof seg, sum.tail_segment);
            printf(" (a torn record at %s offset %llu: the engine's recovery truncates it)", seg,
                   (unsigned long long)sum.tail_offset);
        }
        printf(", %llu findings (%llu SEV1/SEV2)\n", (unsigned long long)v->total,
               (unsigned long long)v->sev);
    }
    return v->sev > 0 ? TC_MISMATCH : TC_OK;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint8_t *read_whole(int dfd, const char *name, size_t *len) {
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return NULL;
    }
    size_t n = (size_t)sb.st_size;
    uint8_t *buf = malloc(n > 0 ? n : 1);
    size_t got = 0;
    while (buf != NULL && got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (buf == NULL || got < n) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int verify_xwal1(verify *v, bool strict, uint32_t max_symbols, uint64_t window) {
    DIR *dir = opendir(v->dir);
    if (dir == NULL) {
        fprintf(stderr, "tallyctl: %s: %s\n", v->dir, strerror(errno));
        return TC_USAGE;
    }
    uint32_t cap = 1024, n = 0;
    uint64_t *idx = malloc(cap * sizeof *idx);
    struct dirent *de;
    uint32_t unknown = 0;
    while (idx != NULL && (de = readdir(dir)) != NULL) {
        uint64_t i;
        if (tl_xwal1_segment_name_parse(de->d_name, strlen(de->d_name), &i)) {
            if (n == cap) {
                uint64_t *bigger = realloc(idx, 2 * cap * sizeof *idx);
                if (bigger == NULL)
                    break;
                idx = bigger;
                cap *= 2;
            }
            idx[n++] = i;
        } else if (de->d_name[0] != '.') {
            unknown++;
        }
    }
    tl_xwal1_verify_cfg vc = {
        .max_symbols = max_symbols, .window_records = window, .strict = strict};
    size_t vbytes = tl_xwal1_verifier_bytes(&vc);
    if (vbytes == 0) {
        fprintf(stderr, "tallyctl: --max-symbols 1..%u and --window a power of two >= 2\n",
                TL_XWAL1_MAX_SYMBOLS);
        free(idx);
        closedir(dir);
        return TC_USAGE;
    }
    void *mem = aligned_alloc(64, (vbytes + 63) & ~(size_t)63);
    tl_xwal1_verifier *ver = malloc(sizeof *ver);
    if (idx == NULL || mem == NULL || ver == NULL ||
        !tl_xwal1_verifier_init(ver, &vc, mem, vbytes, (tl_sink){collect, v})) {
        fprintf(stderr, "tallyctl: out of memory\n");
        free(idx);
        free(mem);
        free(ver);
        closedir(dir);
        return TC_USAGE;
    }
    qsort(idx, n, sizeof *idx, cmp_u64);
    v->xsyms = &ver->symtab;
    v->segs_total = n;
    int rc = TC_OK;
    tc_bar_start(&v->bar, v->o->progress, "wal verify");
    for (uint32_t k = 0; k < n; k++) {
        char name[64];
        tl_xwal1_segment_name(name, sizeof name, idx[k]);
        size_t len = 0;
        uint8_t *bytes = read_whole(dirfd(dir), name, &len);
        if (bytes == NULL) {
            tc_bar_end(&v->bar);
            fprintf(stderr, "tallyctl: %s/%s: %s\n", v->dir, name, strerror(errno));
            rc = TC_USAGE;
            break;
        }
        tl_xwal1_verifier_segment(ver, idx[k], bytes, len, k + 1 == n);
        free(bytes);
        v->segs_done++;
        tc_bar_update(&v->bar, v->segs_done, v->segs_total, "segments");
    }
    tc_bar_end(&v->bar);
    if (rc == TC_OK) {
        const tl_xwal1_summary *s = tl_xwal1_verifier_summary(ver);
        const char *status = v->sev > 0 ? "MISMATCH" : "CONSISTENT";
        if (v->o->json) {
            char b[32];
            cJSON *root = cJSON_CreateObject();
            cJSON_AddStringToObject(root, "dir", v->dir);
            cJSON_AddStringToObject(root, "dialect", "xwal1");
            cJSON_AddStringToObject(root, "status", status);
            cJSON_AddNumberToObject(root, "segments", (double)s->segments);
            cJSON_AddStringToObject(root, "frames", u64s(b, s->frames));
            cJSON_AddStringToObject(root, "records", u64s(b, s->records));
            cJSON_AddBoolToObject(root, "anchor_verified", n == 0 || !s->anchor_unverified);
            cJSON_AddBoolToObject(root, "tentative_tail", s->tentative);
            if (s->tentative) {
                char seg[64];
                tl_xwal1_segment_name(seg, sizeof seg, s->tentative_segment);
                cJSON_AddStringToObject(root, "tail_segment_file", seg);
                cJSON_AddStringToObject(root, "tail_offset", u64s(b, s->tentative_offset));
                cJSON_AddStringToObject(root, "tail_reason",
                                        tl_xwal1_err_name((enum tl_xwal1_err)s->tentative_err));
            }
            cJSON *syms = cJSON_AddArrayToObject(root, "symbols");
            for (uint32_t id = 1; id <= ver->symtab.count; id++) {
                const tl_xwal1_sym_summary *ss = tl_xwal1_verifier_symbol(ver, id);
                const tl_xwal1_sym *sy = tl_xwal1_symtab_get(&ver->symtab, id);
                if (ss == NULL || sy == NULL)
                    continue;
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "symbol", sy->name);
                cJSON_AddStringToObject(o, "records", u64s(b, ss->records));
                cJSON_AddStringToObject(o, "last_seq", u64s(b, ss->last_seq));
                cJSON_AddStringToObject(o, "last_fence", u64s(b, ss->last_fence));
                cJSON_AddStringToObject(o, "mode", tl_mode_name(ss->mode));
                cJSON_AddItemToArray(syms, o);
            }
            cJSON_AddStringToObject(root, "findings_total", u64s(b, v->total));
            cJSON_AddStringToObject(root, "mismatch_findings", u64s(b, v->sev));
            cJSON_AddItemToObject(root, "findings", findings_json(v));
            print_json(root);
        } else {
            print_findings_text(v);
            printf("%s: %s, %llu segments, %llu records over %u symbols, anchor %s", v->dir, status,
                   (unsigned long long)s->segments, (unsigned long long)s->records,
                   ver->symtab.count, s->anchor_unverified ? "unverified" : "verified");
            if (s->tentative) {
                char seg[64];
                tl_xwal1_segment_name(seg, sizeof seg, s->tentative_segment);
                printf(", a torn frame at %s offset %llu (%s)", seg,
                       (unsigned long long)s->tentative_offset,
                       tl_xwal1_err_name((enum tl_xwal1_err)s->tentative_err));
            }
            if (unknown > 0)
                printf(", %u other files ignored", unknown);
            printf(", %llu findings (%llu SEV1/SEV2)\n", (unsigned long long)v->total,
                   (unsigned long long)v->sev);
        }
        rc = v->sev > 0 ? TC_MISMATCH : TC_OK;
    }
    v->xsyms = NULL;
    free(ver);
    free(mem);
    free(idx);
    closedir(dir);
    return rc;
}

static void verify_usage(FILE *to) {
    fprintf(to,
            "usage: tallyctl wal verify DIR [options]\n"
            "\n"
            "Checks every reading rule of wal.md over a whole WAL directory, offline:\n"
            "lengths, checksums, fields, seqs, parents (the chain), fences, segment\n"
            "continuity. Each finding names its segment file, byte offset, seq and rule.\n"
            "A torn tail of the newest segment is reported, not counted: the engine's\n"
            "recovery truncates it.\n"
            "\n"
            "  --dialect tlywal1|xwal1  the WAL format (default tlywal1)\n"
            "  --start-seq N            tlywal1: start in the segment holding N\n"
            "  --strict                 xwal1: decode with the cJSON reference decoder\n"
            "  --max-symbols N          xwal1: symbols tracked (default %u)\n"
            "  --window N               xwal1: seqs kept per symbol (power of two, default %u,\n"
            "                           as tallyd's)\n"
            "  --max-findings N         findings listed in full (default 1000; all are counted)\n"
            "  --json                   one JSON document on stdout\n"
            "\n"
            "exit: 0 consistent (no SEV1/SEV2 finding), 1 mismatch found, 2 usage or I/O error\n",
            TL_XWAL1_SYMBOLS_DEFAULT, TL_XWAL1_WINDOW_RECORDS_DEFAULT);
}

int tc_wal_verify(int argc, char **argv, tc_opts *o) {
    static const struct option opts[] = {
        {"dialect", required_argument, NULL, 'd'},
        {"start-seq", required_argument, NULL, 's'},
        {"strict", no_argument, NULL, 'S'},
        {"max-symbols", required_argument, NULL, 'm'},
        {"window", required_argument, NULL, 'w'},
        {"max-findings", required_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dialect = "tlywal1";
    uint64_t start_seq = 0, window = TL_XWAL1_WINDOW_RECORDS_DEFAULT;
    uint32_t max_symbols = TL_XWAL1_SYMBOLS_DEFAULT, max_findings = TC_FINDINGS_DEFAULT;
    bool strict = false;
    int c;
    optind = 0; /* 0: glibc starts afresh (permuting), after main's "+" scan */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'd':
                dialect = optarg;
                break;
            case 's':
                start_seq = strtoull(optarg, NULL, 10);
                break;
            case 'S':
                strict = true;
                break;
            case 'm':
                max_symbols = (uint32_t)strtoul(optarg, NULL, 10);
                break;
            case 'w':
                window = strtoull(optarg, NULL, 10);
                break;
            case 'f':
                max_findings = (uint32_t)strtoul(optarg, NULL, 10);
                break;
            case 'j':
                o->json = true;
                o->progress = false;
                break;
            case 'h':
                verify_usage(stdout);
                return TC_OK;
            default:
                verify_usage(stderr);
                return TC_USAGE;
        }
    }
    if (optind + 1 != argc || (strcmp(dialect, "tlywal1") != 0 && strcmp(dialect, "xwal1") != 0)) {
        verify_usage(stderr);
        return TC_USAGE;
    }
    verify *v = calloc(1, sizeof *v);
    if (v == NULL)
        return TC_USAGE;
    v->o = o;
    v->xwal1 = strcmp(dialect, "xwal1") == 0;
    snprintf(v->dir, sizeof v->dir, "%s", argv[optind]);
    v->cap = max_findings;
    v->f = calloc(max_findings > 0 ? max_findings : 1, sizeof *v->f);
    if (v->f == NULL) {
        free(v);
        return TC_USAGE;
    }
    int rc = v->xwal1 ? verify_xwal1(v, strict, max_symbols, window) : verify_native(v, start_seq);
    free(v->f);
    free(v);
    return rc;
}

/* ---- ring inspect ---- */

static const char *consumer_state_name(uint32_t s) {
    switch (s) {
        case TL_CONSUMER_ABSENT:
            return "absent";
        case TL_CONSUMER_CATCHING_UP:
            return "catching_up";
        case TL_CONSUMER_FOLLOWING:
            return "following";
        case TL_CONSUMER_HALTED:
            return "halted";
        default:
            return "?";
    }
}

static double age_ms(uint64_t now, uint64_t then) {
    if (then == 0)
        return -1;
    return now >= then ? (double)(now - then) / 1e6 : 0;
}

static void inspect_usage(FILE *to) {
    fprintf(to, "usage: tallyctl ring inspect NAME [--json]\n"
                "\n"
                "Prints the control block of the ring NAME (the shm object /tally.NAME, or a\n"
                "file path with a '/'), mapped read-only: header (magic, version, capacity,\n"
                "engine_id, producer pid), publish, the producer heartbeat's age, last_seq,\n"
                "wal_durable_*, the consumer region, the lag, and the fast-path mode words.\n"
                "\n"
                "exit: 0 a valid ring, 1 its header is not valid, 2 usage or not found\n");
}

int tc_ring_inspect(int argc, char **argv, tc_opts *o) {
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 0; /* 0: glibc starts afresh (permuting), after main's "+" scan */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'j') {
            o->json = true;
        } else if (c == 'h') {
            inspect_usage(stdout);
            return TC_OK;
        } else {
            inspect_usage(stderr);
            return TC_USAGE;
        }
    }
    if (optind + 1 != argc) {
        inspect_usage(stderr);
        return TC_USAGE;
    }
    const char *name = argv[optind];
    char path[TL_RING_PATH_MAX];
    bool is_shm = false;
    if (tl_ring_resolve_name(name, path, sizeof path, &is_shm) != TL_RING_OK) {
        fprintf(stderr, "tallyctl: %s: not a ring name\n", name);
        return TC_USAGE;
    }
    int fd = tl_ring_obj_open(path, is_shm, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "tallyctl: ring %s (%s): %s\n", name, path, strerror(errno));
        return TC_USAGE;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || (uint64_t)sb.st_size < TL_RING_CONTROL_BYTES) {
        fprintf(stderr, "tallyctl: ring %s: shorter than its control block\n", name);
        close(fd);
        return TC_MISMATCH;
    }
    void *map = mmap(NULL, TL_RING_CONTROL_BYTES, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        fprintf(stderr, "tallyctl: ring %s: mmap: %s\n", name, strerror(errno));
        return TC_USAGE;
    }
    const tl_ring_ctl *ctl = map;
    tl_ring_header h;
    tl_ring_header_load(ctl, &h);
    enum tl_ring_err he = tl_ring_header_check(&h);
    uint64_t now = tl_ring_now_mono_ns();
    /* Relaxed loads throughout: a snapshot for display, each value whole. */
    uint64_t publish = atomic_load_explicit(&ctl->publish, memory_order_relaxed);
    uint64_t hb = atomic_load_explicit(&ctl->producer_heartbeat_mono_ns, memory_order_relaxed);
    uint64_t last_seq = atomic_load_explicit(&ctl->last_seq, memory_order_relaxed);
    tl_ring_durable_reader dr;
    memset(&dr, 0, sizeof dr);
    tl_ring_durable dur = {0};
    for (int i = 0; i < 8 && !dr.have_snap; i++)
        (void)tl_ring_durable_read(&dr, ctl, now, 250, &dur);
    uint64_t cpos = atomic_load_explicit(&ctl->consumer_position, memory_order_relaxed);
    uint64_t chb = atomic_load_explicit(&ctl->consumer_heartbeat_mono_ns, memory_order_relaxed);
    uint32_t cpid = atomic_load_explicit(&ctl->consumer_pid, memory_order_relaxed);
    uint32_t cstate = atomic_load_explicit(&ctl->consumer_state, memory_order_relaxed);
    uint64_t cwal = atomic_load_explicit(&ctl->consumer_wal_seq, memory_order_relaxed);
    uint32_t fg = atomic_load_explicit(&ctl->fast_global_mode, memory_order_relaxed);
    uint32_t fw = atomic_load_explicit(&ctl->fast_withdrawals_halted, memory_order_relaxed);
    uint64_t fe = atomic_load_explicit(&ctl->fast_mode_epoch, memory_order_relaxed);
    bool producer_alive = h.producer_pid != 0 && kill((pid_t)h.producer_pid, 0) == 0;
    char engine_id[33];
    for (int i = 0; i < 16; i++)
        snprintf(engine_id + 2 * i, 3, "%02x", h.engine_id[i]);
    char magic[9];
    for (int i = 0; i < 8; i++)
        magic[i] = h.magic[i] >= 0x20 && h.magic[i] < 0x7f ? (char)h.magic[i] : '.';
    magic[8] = '\0';
    uint64_t lag = publish > cpos ? publish - cpos : 0;

    if (o->json) {
        char b[32];
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "name", name);
        cJSON_AddStringToObject(root, "path", path);
        cJSON_AddBoolToObject(root, "valid", he == TL_RING_OK);
        cJSON_AddStringToObject(root, "header_error", he == TL_RING_OK ? "" : tl_ring_err_name(he));
        cJSON_AddStringToObject(root, "magic", magic);
        cJSON_AddNumberToObject(root, "version", h.version);
        cJSON_AddNumberToObject(root, "control_len", h.control_len);
        cJSON_AddStringToObject(root, "capacity", u64s(b, h.capacity));
        cJSON_AddStringToObject(root, "engine_id", engine_id);
        cJSON_AddStringToObject(root, "created_ns", u64s(b, h.created_ns));
        cJSON_AddNumberToObject(root, "producer_pid", h.producer_pid);
        cJSON_AddBoolToObject(root, "producer_alive", producer_alive);
        cJSON_AddStringToObject(root, "publish", u64s(b, publish));
        cJSON_AddNumberToObject(root, "heartbeat_age_ms", age_ms(now, hb));
        cJSON_AddStringToObject(root, "last_seq", u64s(b, last_seq));
        cJSON *d = cJSON_AddObjectToObject(root, "wal_durable");
        cJSON_AddBoolToObject(d, "consistent", dr.have_snap);
        cJSON_AddStringToObject(d, "seq", u64s(b, dur.seq));
        cJSON_AddStringToObject(d, "segment_first_seq", u64s(b, dur.segment_first_seq));
        cJSON_AddStringToObject(d, "offset", u64s(b, dur.offset));
        cJSON *cr = cJSON_AddObjectToObject(root, "consumer");
        cJSON_AddStringToObject(cr, "position", u64s(b, cpos));
        cJSON_AddNumberToObject(cr, "heartbeat_age_ms", age_ms(now, chb));
        cJSON_AddNumberToObject(cr, "pid", cpid);
        cJSON_AddStringToObject(cr, "state", consumer_state_name(cstate));
        cJSON_AddStringToObject(cr, "wal_seq", u64s(b, cwal));
        cJSON_AddStringToObject(root, "lag_bytes", u64s(b, lag));
        cJSON *f = cJSON_AddObjectToObject(root, "fast_path");
        cJSON_AddStringToObject(f, "global_mode", tl_mode_name(fg));
        cJSON_AddBoolToObject(f, "withdrawals_halted", fw != 0);
        cJSON_AddStringToObject(f, "epoch", u64s(b, fe));
        cJSON *syms = cJSON_AddArrayToObject(f, "symbols");
        for (uint32_t i = 1; i < TL_RING_SYMBOL_SLOTS; i++) {
            uint8_t m = atomic_load_explicit(&ctl->fast_symbol_mode[i], memory_order_relaxed);
            if (m == 0)
                continue;
            cJSON *s = cJSON_CreateObject();
            cJSON_AddNumberToObject(s, "symbol", i);
            cJSON_AddStringToObject(s, "mode", tl_mode_name(m));
            cJSON_AddItemToArray(syms, s);
        }
        print_json(root);
    } else {
        printf("ring %s (%s)\n", name, path);
        printf("  header      %s%s%s\n", he == TL_RING_OK ? "valid" : "INVALID",
               he == TL_RING_OK ? "" : ": ", he == TL_RING_OK ? "" : tl_ring_err_name(he));
        printf("  magic       %s  version %u  control_len %u  capacity %llu\n", magic, h.version,
               h.control_len, (unsigned long long)h.capacity);
        printf("  engine_id   %s\n", engine_id);
        printf("  producer    pid %u (%s)  heartbeat age %.1f ms  publish %llu  last_seq %llu\n",
               h.producer_pid, producer_alive ? "alive" : "not running", age_ms(now, hb),
               (unsigned long long)publish, (unsigned long long)last_seq);
        printf("  wal_durable seq %llu  segment %llu  offset %llu%s\n", (unsigned long long)dur.seq,
               (unsigned long long)dur.segment_first_seq, (unsigned long long)dur.offset,
               dr.have_snap ? "" : "  (no consistent read)");
        printf("  consumer    pid %u  state %s  position %llu  heartbeat age %.1f ms  wal_seq "
               "%llu\n",
               cpid, consumer_state_name(cstate), (unsigned long long)cpos, age_ms(now, chb),
               (unsigned long long)cwal);
        printf("  lag         %llu bytes\n", (unsigned long long)lag);
        printf("  fast path   global %s  withdrawals %s  epoch %llu\n", tl_mode_name(fg),
               fw ? "HALTED" : "open", (unsigned long long)fe);
        for (uint32_t i = 1; i < TL_RING_SYMBOL_SLOTS; i++) {
            uint8_t m = atomic_load_explicit(&ctl->fast_symbol_mode[i], memory_order_relaxed);
            if (m != 0)
                printf("              symbol %u %s\n", i, tl_mode_name(m));
        }
    }
    munmap(map, TL_RING_CONTROL_BYTES);
    return he == TL_RING_OK ? TC_OK : TC_MISMATCH;
}
