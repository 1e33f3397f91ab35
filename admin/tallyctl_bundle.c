/* tallyctl_bundle.c: forensic bundles from the command line.
 *
 *   tallyctl bundle export (--incident N | --from SEQ --to SEQ) [--no-wait]
 *                          [--timeout SECONDS] [--json]
 *       asks tallyd for a bundle (POST /bundle) and follows it (GET
 *       /bundle/{id}) with a progress bar; exit 0 made (its path printed),
 *       1 the export failed (its named error printed), 2 usage, no answer,
 *       a reply it cannot read, or no end within --timeout (default 600 s;
 *       the export itself goes on in tallyd).
 *   tallyctl bundle verify FILE --pubkey PEM [--max-bytes N] [--json]
 *       offline: the signature, every file's SHA-256, the WAL chain; prints
 *       the incident's timeline and the first divergent seq; exit 0 all
 *       holds, 1 it does not (the reason printed: a bundle that cannot be
 *       opened or read is one that does not verify), 2 usage (including a
 *       --pubkey that cannot be used: that says nothing about the bundle).
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/bundle.h"
#include "tallyctl_int.h"

/* ---- verify ---- */

static void verify_usage(FILE *to) {
    fprintf(to, "usage: tallyctl bundle verify FILE --pubkey PEM [--max-bytes N] [--json]\n"
                "\n"
                "Checks a forensic bundle offline: the Ed25519 signature of MANIFEST.json\n"
                "(PEM public key, or the private key), every file's size and SHA-256 (none\n"
                "missing, none extra), and the WAL hash chain over the range. Prints the\n"
                "incident's timeline and the first divergent seq when the bundle holds a\n"
                "fork. Reads the archive once; WAL segments are checked as they stream.\n"
                "--max-bytes bounds what the bundle may unpack to (default 64 x its size,\n"
                "at least 4 GiB): beyond it, unpack_limit. --tmpdir is accepted and unused.\n"
                "\n"
                "exit: 0 all holds; 1 it does not, the reason printed (a FILE that cannot\n"
                "be opened or read counts: it cannot be shown to hold); 2 usage, including\n"
                "a --pubkey that cannot be loaded\n");
}

static void on_progress(void *ctx, uint64_t done, uint64_t total) {
    tc_bar_update(ctx, done, total, "bytes");
}

typedef struct tl_lines {
    bool print;
    cJSON *arr; /* --json */
} tl_lines;

static void on_line(void *ctx, const char *line) {
    tl_lines *l = ctx;
    if (l->arr != NULL)
        cJSON_AddItemToArray(l->arr, cJSON_CreateString(line));
    else if (l->print)
        printf("  %s\n", line);
}

static void human_bytes(uint64_t n, char *out, size_t cap) {
    if (n >= (1ull << 30))
        snprintf(out, cap, "%.2f GiB", (double)n / (double)(1ull << 30));
    else if (n >= (1ull << 20))
        snprintf(out, cap, "%.1f MiB", (double)n / (double)(1ull << 20));
    else
        snprintf(out, cap, "%llu B", (unsigned long long)n);
}

static int cmd_verify(int argc, char **argv, tc_opts *o) {
    static const struct option opts[] = {
        {"pubkey", required_argument, NULL, 'k'},
        {"tmpdir", required_argument, NULL, 't'},
        {"max-bytes", required_argument, NULL, 'm'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pubkey = NULL, *tmp = NULL;
    uint64_t max_bytes = 0;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'k':
                pubkey = optarg;
                break;
            case 't':
                tmp = optarg;
                break;
            case 'm': {
                char *end = NULL;
                errno = 0;
                unsigned long long v = strtoull(optarg, &end, 10);
                if (optarg[0] < '0' || optarg[0] > '9' || errno != 0 || *end != '\0' || v == 0) {
                    fprintf(stderr, "tallyctl: --max-bytes: expected an integer >= 1, got \"%s\"\n",
                            optarg);
                    return TC_USAGE;
                }
                max_bytes = v;
                break;
            }
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
    if (optind + 1 != argc || pubkey == NULL) {
        verify_usage(stderr);
        return TC_USAGE;
    }
    const char *file = argv[optind];
    tc_bar bar;
    tc_bar_start(&bar, o->progress, "verify");
    tl_lines lines = {.print = false, .arr = o->json ? cJSON_CreateArray() : NULL};
    /* The timeline is printed after the verdict: collect it first. */
    cJSON *held = lines.arr != NULL ? NULL : cJSON_CreateArray();
    if (held != NULL)
        lines.arr = held;
    tl_bundle_verify_opts vo = {
        .pubkey_path = pubkey,
        .tmp_dir = tmp,
        .max_unpacked_bytes = max_bytes,
        .progress = on_progress,
        .progress_ctx = &bar,
        .timeline = on_line,
        .timeline_ctx = &lines,
    };
    tl_bundle_report r;
    enum tl_bundle_verr e = tl_bundle_verify(file, &vo, &r);
    tc_bar_end(&bar);
    /* An unreadable FILE is not special-cased: issue 6 says exit 1 and the
     * reason for any bundle that does not verify, and one that cannot be read
     * cannot be shown to hold. A bad --pubkey stays a usage error (2): it says
     * nothing about the bundle. */
    if (e == TL_BV_PUBKEY) {
        fprintf(stderr, "tallyctl: --pubkey: %s\n", r.detail);
        cJSON_Delete(lines.arr);
        return TC_USAGE;
    }
    double secs = (double)r.elapsed_ns / 1e9;
    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "file", file);
        cJSON_AddBoolToObject(j, "verified", e == TL_BV_OK);
        cJSON_AddStringToObject(j, "result", tl_bundle_verr_name(e));
        if (e != TL_BV_OK)
            cJSON_AddStringToObject(j, "reason", r.detail);
        cJSON_AddStringToObject(j, "id", r.id);
        cJSON *incs = cJSON_AddArrayToObject(j, "incidents");
        for (uint32_t i = 0; i < r.n_incidents; i++) {
            char b[24];
            snprintf(b, sizeof b, "%llu", (unsigned long long)r.incidents[i]);
            cJSON_AddItemToArray(incs, cJSON_CreateString(b));
        }
        cJSON_AddBoolToObject(j, "signature_ok", r.signed_ok);
        cJSON_AddNumberToObject(j, "files", (double)r.files);
        cJSON_AddNumberToObject(j, "bytes", (double)r.bytes);
        cJSON_AddNumberToObject(j, "segments", r.segments);
        cJSON_AddNumberToObject(j, "seq_first", (double)r.seq_first);
        cJSON_AddNumberToObject(j, "seq_last", (double)r.seq_last);
        cJSON_AddNumberToObject(j, "wal_findings", (double)r.wal_findings);
        cJSON_AddNumberToObject(j, "ring_records", (double)r.ring_records);
        if (r.divergent_seq != 0) {
            char b[24];
            snprintf(b, sizeof b, "%llu", (unsigned long long)r.divergent_seq);
            cJSON_AddStringToObject(j, "first_divergent_seq", b);
            cJSON_AddStringToObject(j, "divergence", r.divergent_how);
        } else {
            cJSON_AddNullToObject(j, "first_divergent_seq");
        }
        cJSON *dg = cJSON_AddArrayToObject(j, "degraded");
        for (unsigned d = 0; d < TL_BUNDLE_DEG_COUNT; d++)
            if (r.degraded & (1u << d))
                cJSON_AddItemToArray(dg,
                                     cJSON_CreateString(tl_bundle_deg_name((enum tl_bundle_deg)d)));
        cJSON_AddItemToObject(j, "timeline", lines.arr);
        cJSON_AddNumberToObject(j, "seconds", secs);
        char *s = cJSON_PrintUnformatted(j);
        printf("%s\n", s != NULL ? s : "{}");
        cJSON_free(s);
        cJSON_Delete(j);
        return e == TL_BV_OK ? TC_OK : TC_MISMATCH;
    }
    if (e != TL_BV_OK) {
        printf("%s: DOES NOT VERIFY: %s: %s\n", file, tl_bundle_verr_name(e), r.detail);
        cJSON_Delete(lines.arr);
        return TC_MISMATCH;
    }
    char size[32];
    human_bytes(r.bytes, size, sizeof size);
    printf("%s: verified (bundle %s", file, r.id);
    for (uint32_t i = 0; i < r.n_incidents; i++)
        printf("%s%llu", i == 0 ? ", incident " : ",", (unsigned long long)r.incidents[i]);
    printf(")\n");
    printf("  signature   Ed25519 over MANIFEST.json: ok\n");
    printf("  files       %llu, every size and SHA-256 as in the manifest (%s, %.2f s)\n",
           (unsigned long long)r.files, size, secs);
    if (r.degraded & (1u << TL_BUNDLE_DEG_XWAL1))
        printf("  WAL chain   xwal1: not checked here (tallyctl wal verify --dialect xwal1)\n");
    else if (r.seq_first == 0)
        printf("  WAL chain   no record of the range in the bundle\n");
    else
        printf("  WAL chain   seqs %llu..%llu in %u segments: %s (%llu findings, as recorded)\n",
               (unsigned long long)r.seq_first, (unsigned long long)r.seq_last, r.segments,
               r.wal_findings == 0 ? "intact" : "as at export", (unsigned long long)r.wal_findings);
    for (unsigned d = 0; d < TL_BUNDLE_DEG_COUNT; d++)
        if (r.degraded & (1u << d))
            printf("  degraded    %s\n", tl_bundle_deg_name((enum tl_bundle_deg)d));
    printf("timeline (%u events):\n", r.timeline_lines);
    const cJSON *l;
    cJSON_ArrayForEach(l, lines.arr) printf("  %s\n", l->valuestring);
    cJSON_Delete(lines.arr);
    if (r.divergent_seq != 0)
        printf("first divergent seq: %llu (%s)\n", (unsigned long long)r.divergent_seq,
               r.divergent_how);
    else
        printf("first divergent seq: none (%llu ring copies compared with the WAL)\n",
               (unsigned long long)r.ring_records);
    return TC_OK;
}

/* ---- export ---- */

#define TC_EXPORT_TIMEOUT_S     600u   /* default --timeout */
#define TC_EXPORT_TIMEOUT_MAX_S 86400u /* a day: anything longer is a typo */
#define TC_EXPORT_POLL_MS       100u

static uint64_t tc_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --timeout: whole seconds in 1..TC_EXPORT_TIMEOUT_MAX_S. */
static bool parse_timeout(const char *s, uint32_t *out) {
    if (s[0] < '0' || s[0] > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > TC_EXPORT_TIMEOUT_MAX_S)
        return false;
    *out = (uint32_t)v;
    return true;
}

static void export_usage(FILE *to) {
    fprintf(to,
            "usage: tallyctl bundle export (--incident N | --from SEQ --to SEQ) [--incident N]\n"
            "                              [--no-wait] [--timeout SECONDS] [--json]\n"
            "\n"
            "Asks tallyd for a forensic bundle (POST /bundle) and follows the export\n"
            "(GET /bundle/{id}) with a progress bar. With only --incident, the range is\n"
            "the incident's seqs and bundle.margin_records around them. --timeout bounds\n"
            "the wait (default %u s, 1..%u); on timeout the export goes on in tallyd\n"
            "(GET /bundle/{id} shows it).\n"
            "\n"
            "exit: 0 made (its path printed), 1 the export failed, 2 usage, refused, no\n"
            "answer, an unreadable answer, or the timeout\n",
            TC_EXPORT_TIMEOUT_S, TC_EXPORT_TIMEOUT_MAX_S);
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static uint64_t ju64(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsString(v))
        return strtoull(v->valuestring, NULL, 10);
    return cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
}

static int refused(long status, const char *body) {
    cJSON *j = cJSON_Parse(body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    fprintf(stderr, "tallyctl: tallyd refused (%ld %s): %s\n", status, jstr(e, "code"),
            jstr(e, "message"));
    cJSON_Delete(j);
    return TC_USAGE;
}

static int cmd_export(int argc, char **argv, tc_opts *o) {
    static const struct option opts[] = {
        {"incident", required_argument, NULL, 'i'}, {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},       {"no-wait", no_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 'T'},  {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    const char *inc = NULL, *from = NULL, *to = NULL;
    bool nowait = false;
    uint32_t timeout_s = TC_EXPORT_TIMEOUT_S;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'i':
                inc = optarg;
                break;
            case 'f':
                from = optarg;
                break;
            case 't':
                to = optarg;
                break;
            case 'n':
                nowait = true;
                break;
            case 'T':
                if (!parse_timeout(optarg, &timeout_s)) {
                    fprintf(stderr,
                            "tallyctl: --timeout: expected whole seconds 1..%u, got \"%s\"\n",
                            TC_EXPORT_TIMEOUT_MAX_S, optarg);
                    return TC_USAGE;
                }
                break;
            case 'j':
                o->json = true;
                o->progress = false;
                break;
            case 'h':
                export_usage(stdout);
                return TC_OK;
            default:
                export_usage(stderr);
                return TC_USAGE;
        }
    }
    if (optind != argc || (inc == NULL && (from == NULL || to == NULL)) ||
        ((from == NULL) != (to == NULL))) {
        export_usage(stderr);
        return TC_USAGE;
    }
    cJSON *b = cJSON_CreateObject();
    if (inc != NULL)
        cJSON_AddStringToObject(b, "incident", inc);
    if (from != NULL) {
        cJSON_AddStringToObject(b, "from_seq", from);
        cJSON_AddStringToObject(b, "to_seq", to);
    }
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    long status = 0;
    char *resp = NULL;
    size_t len = 0;
    int hr = tc_request("POST", "/bundle", body, &status, &resp, &len);
    cJSON_free(body);
    if (hr != 0)
        return TC_USAGE;
    if (status != 202) {
        int rc = refused(status, resp);
        free(resp);
        return rc;
    }
    cJSON *j = cJSON_Parse(resp);
    char id[64], path[TL_BUNDLE_PATH_MAX];
    snprintf(id, sizeof id, "%s", jstr(j, "id"));
    snprintf(path, sizeof path, "%s", jstr(j, "path"));
    cJSON_Delete(j);
    if (nowait) {
        if (o->json)
            printf("%s\n", resp);
        else
            printf("%s queued: %s\n", id, path);
        free(resp);
        return TC_OK;
    }
    free(resp);
    tc_bar bar;
    tc_bar_start(&bar, o->progress, id);
    char url[128];
    snprintf(url, sizeof url, "/bundle/%s", id);
    /* Polls every TC_EXPORT_POLL_MS until the export ends, at most timeout_s:
     * a tallyd that never finishes (or a state this build does not know)
     * must not hang a script. The poll count bounds the loop too, should the
     * clock misbehave. */
    uint64_t deadline_ms = tc_mono_ms() + (uint64_t)timeout_s * 1000u;
    uint64_t polls_max = (uint64_t)timeout_s * 1000u / TC_EXPORT_POLL_MS + 1;
    for (uint64_t poll = 0;; poll++) {
        if (poll >= polls_max || tc_mono_ms() >= deadline_ms) {
            tc_bar_end(&bar);
            fprintf(stderr,
                    "tallyctl: bundle %s: no end within --timeout %u s (it goes on in tallyd: "
                    "GET %s)\n",
                    id, timeout_s, url);
            return TC_USAGE;
        }
        if (tc_request("GET", url, NULL, &status, &resp, &len) != 0) {
            tc_bar_end(&bar);
            return TC_USAGE;
        }
        if (status != 200) {
            tc_bar_end(&bar);
            int rc = refused(status, resp);
            free(resp);
            return rc;
        }
        j = cJSON_Parse(resp);
        const char *st = jstr(j, "state");
        bool known = strcmp(st, "queued") == 0 || strcmp(st, "running") == 0 ||
                     strcmp(st, "done") == 0 || strcmp(st, "failed") == 0;
        if (!known) {
            tc_bar_end(&bar);
            fprintf(stderr, "tallyctl: bundle %s: unreadable reply (state \"%.32s\")\n", id,
                    j == NULL ? "(not JSON)" : st);
            cJSON_Delete(j);
            free(resp);
            return TC_USAGE;
        }
        if (strcmp(st, "done") == 0 || strcmp(st, "failed") == 0) {
            tc_bar_end(&bar);
            int rc = strcmp(st, "done") == 0 ? TC_OK : TC_MISMATCH;
            if (o->json) {
                printf("%s\n", resp);
            } else if (rc == TC_OK) {
                printf("%s\n", jstr(j, "path"));
                const cJSON *dg = cJSON_GetObjectItemCaseSensitive(j, "degraded");
                const cJSON *d;
                cJSON_ArrayForEach(d, dg) fprintf(stderr, "tallyctl: degraded: %s\n",
                                                  cJSON_IsString(d) ? d->valuestring : "?");
            } else {
                fprintf(stderr, "tallyctl: bundle %s failed: %s: %s\n", id, jstr(j, "error"),
                        jstr(j, "detail"));
            }
            cJSON_Delete(j);
            free(resp);
            return rc;
        }
        tc_bar_update(&bar, ju64(j, "bytes_done"), ju64(j, "bytes_total"), "bytes");
        cJSON_Delete(j);
        free(resp);
        struct timespec ts = {0, (long)TC_EXPORT_POLL_MS * 1000000l};
        nanosleep(&ts, NULL);
    }
}

int tc_bundle(int argc, char **argv, tc_opts *o) {
    const char *what = argc >= 2 ? argv[1] : "";
    if (strcmp(what, "verify") == 0)
        return cmd_verify(argc - 1, argv + 1, o);
    if (strcmp(what, "export") == 0) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        int rc = cmd_export(argc - 1, argv + 1, o);
        curl_global_cleanup();
        return rc;
    }
    if (strcmp(what, "--help") == 0 || strcmp(what, "-h") == 0) {
        export_usage(stdout);
        printf("\n");
        verify_usage(stdout);
        return TC_OK;
    }
    fprintf(stderr, "tallyctl: unknown command 'bundle %s' (export, verify)\n", what);
    return TC_USAGE;
}
