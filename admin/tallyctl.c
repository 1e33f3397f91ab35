/* tallyctl.c: the operator's CLI for tallyd.
 *
 * Online subcommands talk to tallyd's control socket (HTTP over a Unix
 * socket, libcurl's CURLOPT_UNIX_SOCKET_PATH); offline ones need no daemon
 * (tallyctl_offline.c). Tables for people, --json for scripts (the API's
 * own document, unchanged), a progress bar on a terminal for long work.
 *
 * Exit codes: 0 consistent / healthy / done, 1 a mismatch found (or
 * unhealthy, rolled back), 2 usage, connection error, or a refused request.
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin/config.h"
#include "tallyctl_int.h"

#define TC_DEFAULT_SOCKET "/run/tally/tally.sock"
#define TC_BODY_MAX       (16u << 20)

static const char *g_socket;
static long g_timeout_ms = 10000;

/* ---- progress bar ---- */

uint64_t tc_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tc_bar_start(tc_bar *b, bool on, const char *what) {
    b->on = on;
    b->last_ns = 0;
    b->what = what;
}

void tc_bar_update(tc_bar *b, uint64_t done, uint64_t total, const char *unit) {
    if (!b->on)
        return;
    uint64_t now = tc_now_ns();
    if (now - b->last_ns < 100000000ull && done < total)
        return;
    b->last_ns = now;
    int width = 30, fill = total > 0 ? (int)((double)done / (double)total * width) : 0;
    if (fill > width)
        fill = width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    if (total > 0)
        fprintf(stderr, "\r%s [%s] %3d%% %llu/%llu %s", b->what, bar,
                (int)(100.0 * (double)done / (double)total), (unsigned long long)done,
                (unsigned long long)total, unit);
    else
        fprintf(stderr, "\r%s %llu %s", b->what, (unsigned long long)done, unit);
    fflush(stderr);
}

void tc_bar_end(tc_bar *b) {
    if (b->on && b->last_ns != 0)
        fprintf(stderr, "\r\033[K");
    b->last_ns = 0;
}

/* ---- HTTP over the control socket ---- */

typedef struct resp {
    long status;
    char *body;
    size_t len;
    size_t cap;
    bool too_big;
} resp;

static size_t on_data(char *p, size_t size, size_t n, void *ctx) {
    resp *r = ctx;
    size_t k = size * n;
    if (r->len + k + 1 > TC_BODY_MAX) {
        r->too_big = true;
        return 0;
    }
    if (r->len + k + 1 > r->cap) {
        size_t cap = r->cap == 0 ? 65536 : r->cap;
        while (cap < r->len + k + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (nb == NULL)
            return 0;
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->len, p, k);
    r->len += k;
    r->body[r->len] = '\0';
    return k;
}

/* 0 with r filled, or -1 after printing why (the daemon is not there). */
static int http(const char *method, const char *path, const char *json, resp *r) {
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    if (c == NULL) {
        fprintf(stderr, "tallyctl: libcurl: cannot start\n");
        return -1;
    }
    char url[1024];
    snprintf(url, sizeof url, "http://tallyd%s", path);
    curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, g_socket);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, g_timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    struct curl_slist *h = NULL;
    if (strcmp(method, "POST") == 0) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json != NULL ? json : "{}");
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "tallyctl: cannot reach tallyd at %s: %s\n", g_socket,
                r->too_big ? "response too large" : curl_easy_strerror(rc));
        free(r->body);
        r->body = NULL;
        return -1;
    }
    if (r->body == NULL) {
        r->body = calloc(1, 1);
        if (r->body == NULL)
            return -1;
    }
    return 0;
}

int tc_request(const char *method, const char *path, const char *json, long *status, char **body,
               size_t *len) {
    resp r;
    if (http(method, path, json, &r) != 0)
        return -1;
    *status = r.status;
    *body = r.body;
    *len = r.len;
    return 0;
}

static cJSON *parse(const resp *r) {
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    if (j == NULL)
        fprintf(stderr, "tallyctl: tallyd answered %ld with something that is not JSON\n",
                r->status);
    return j;
}

/* An error document: print it and say 2. */
static int refused(const resp *r) {
    cJSON *j = cJSON_ParseWithLength(r->body, r->len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    fprintf(stderr, "tallyctl: tallyd refused (%ld %s): %s\n", r->status,
            cJSON_IsString(code) ? code->valuestring : "?",
            cJSON_IsString(msg) ? msg->valuestring : r->body);
    cJSON_Delete(j);
    return TC_USAGE;
}

static const char *str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? "true" : "false";
    if (cJSON_IsNull(v) || v == NULL)
        return "-";
    static char buf[4][32];
    static int k2;
    k2 = (k2 + 1) % 4;
    snprintf(buf[k2], sizeof buf[k2], "%.0f", v->valuedouble);
    return buf[k2];
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsNumber(v))
        return v->valuedouble;
    if (cJSON_IsString(v))
        return strtod(v->valuestring, NULL);
    return 0;
}

static void print_body(const resp *r) {
    fwrite(r->body, 1, r->len, stdout);
    if (r->len == 0 || r->body[r->len - 1] != '\n')
        fputc('\n', stdout);
}

/* Per-subcommand options: --json and --help everywhere. */
static int want_help(int argc, char **argv, tc_opts *o) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        if (strcmp(argv[i], "--json") == 0) {
            o->json = true;
            o->progress = false;
        }
    }
    return 0;
}

/* ---- status ---- */

static void status_usage(FILE *to) {
    fprintf(to, "usage: tallyctl status [--json]\n"
                "\n"
                "tallyd's health (GET /healthz) and capabilities (GET /capabilities): stage,\n"
                "policy, the engine's modes, each input's state and age.\n"
                "\n"
                "exit: 0 healthy, 1 unhealthy (the hot loop does not beat), 2 no answer\n");
}

static int cmd_status(int argc, char **argv, tc_opts *o) {
    if (want_help(argc, argv, o)) {
        status_usage(stdout);
        return TC_OK;
    }
    resp h, c;
    if (http("GET", "/healthz", NULL, &h) != 0)
        return TC_USAGE;
    if (http("GET", "/capabilities", NULL, &c) != 0) {
        free(h.body);
        return TC_USAGE;
    }
    int rc = h.status == 200 ? TC_OK : TC_MISMATCH;
    if (o->json) {
        printf("{\"healthz\":%s,\"healthz_status\":%ld,\"capabilities\":%s}\n", h.body, h.status,
               c.body);
    } else {
        cJSON *hj = parse(&h), *cj = parse(&c);
        if (hj == NULL || cj == NULL) {
            rc = TC_USAGE;
        } else {
            printf("tallyd %s  instance %s  dialect %s\n", str(cj, "version"),
                   str(cj, "instance_id"), str(cj, "dialect"));
            printf("health      %s", str(hj, "status"));
            if (h.status != 200)
                printf(" (%s)", str(hj, "reason"));
            printf("\n");
            printf("stage       %s  (action=%s dry_run=%s armed=%s)%s\n", str(cj, "stage"),
                   str(cj, "action"), str(cj, "dry_run"), str(cj, "armed"),
                   strcmp(str(cj, "policy_confirmed"), "true") == 0 ? "" : "  not yet confirmed");
            printf("operator    key %s\n", strcmp(str(cj, "operator_key"), "true") == 0
                                               ? "configured"
                                               : "none (cannot relax)");
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(cj, "engine");
            printf("engine      global %s, withdrawals %s, %s symbols, seq %s, durable %s, fence "
                   "%s%s\n",
                   str(e, "global_mode"),
                   strcmp(str(e, "withdrawals_halted"), "true") == 0 ? "HALTED" : "open",
                   str(e, "symbols"), str(e, "seq"), str(e, "durable_seq"), str(e, "fence"),
                   strcmp(str(cj, "safe_mode"), "true") == 0 ? "  SAFE MODE (dead-man)" : "");
            printf("degraded    %s\n", str(cj, "degraded_reason"));
            printf("\n%-8s %-16s %s\n", "INPUT", "STATE", "AGE");
            const cJSON *in = cJSON_GetObjectItemCaseSensitive(cj, "inputs");
            for (const cJSON *i = in != NULL ? in->child : NULL; i != NULL; i = i->next) {
                const cJSON *age = cJSON_GetObjectItemCaseSensitive(i, "age_ms");
                char ages[32] = "-";
                if (cJSON_IsNumber(age))
                    snprintf(ages, sizeof ages, "%.0f ms", age->valuedouble);
                printf("%-8s %-16s %s\n", i->string, str(i, "state"), ages);
            }
        }
        cJSON_Delete(hj);
        cJSON_Delete(cj);
    }
    free(h.body);
    free(c.body);
    return rc;
}

/* ---- results ---- */

static void results_usage(FILE *to) {
    fprintf(to, "usage: tallyctl results [--status CONSISTENT|MISMATCH|ERROR] [--limit N] "
                "[--json]\n"
                "\n"
                "On-demand reconcile results, newest first (GET /reconcile/results; kept in\n"
                "<state_dir>/results.jsonl across restarts).\n"
                "\n"
                "exit: 0 none of those shown is a MISMATCH, 1 one is, 2 usage or no answer\n");
}

/* A result's "ledger" or "peers": an object with its outcome (a line
 * written before they were compared holds a plain string). */
static const char *side_outcome(const cJSON *r, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, k);
    return cJSON_IsObject(v) ? str(v, "outcome") : str(r, k);
}

static void print_result_row(const cJSON *r) {
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(r, "scope");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "findings");
    printf("%-22s %-10s %10s %10s %9s %7s %7s %5s %5s %-14s %-14s %s\n", str(r, "id"),
           str(r, "status"), str(sc, "from_seq"), str(sc, "to_seq"), str(r, "records"),
           str(f, "missing"), str(f, "out_of_order"), str(f, "dup"), str(f, "delay"),
           side_outcome(r, "ledger"), side_outcome(r, "peers"),
           cJSON_GetObjectItemCaseSensitive(r, "error") != NULL ? str(r, "error") : "");
}

/* The ledger and peer comparisons of one result, for people. */
static void print_result_sides(const cJSON *r) {
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(r, "ledger");
    if (cJSON_IsObject(l)) {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(l, "watermark");
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(l, "ours");
        printf("    ledger: %s", str(l, "outcome"));
        if (w != NULL)
            printf(" at ledger_seq %s (checksum %s): ledger trades %s qty %s notional %s",
                   str(l, "ledger_seq"), str(l, "checksum"), str(w, "trades"), str(w, "qty"),
                   str(w, "notional"));
        if (o != NULL && cJSON_GetObjectItemCaseSensitive(o, "trades") != NULL)
            printf("; tally trades %s qty %s notional %s (checksum %s)", str(o, "trades"),
                   str(o, "qty"), str(o, "notional"), str(o, "checksum"));
        if (cJSON_GetObjectItemCaseSensitive(l, "check") != NULL)
            printf(" -> %s", str(l, "check"));
        if (cJSON_GetObjectItemCaseSensitive(l, "symbols") != NULL)
            printf(" [symbols %s]", str(l, "symbols"));
        printf("\n");
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "peers");
    if (cJSON_IsObject(p)) {
        printf("    peers: %s", str(p, "outcome"));
        if (cJSON_GetObjectItemCaseSensitive(p, "common_seq") != NULL)
            printf(" at common checkpoint %s", str(p, "common_seq"));
        printf("\n");
        const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(p, "nodes");
        for (const cJSON *n = nodes != NULL ? nodes->child : NULL; n != NULL; n = n->next)
            printf("      node %s: %s (last checkpoint %s)\n", str(n, "node"), str(n, "outcome"),
                   str(n, "last_checkpoint_seq"));
    }
}

static void print_result_header(void) {
    printf("%-22s %-10s %10s %10s %9s %7s %7s %5s %5s %-14s %-14s\n", "ID", "STATUS", "FROM", "TO",
           "RECORDS", "MISSING", "OOO", "DUP", "DELAY", "LEDGER", "PEERS");
}

static int cmd_results(int argc, char **argv, tc_opts *o) {
    static const struct option opts[] = {
        {"status", required_argument, NULL, 's'},
        {"limit", required_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *status = NULL;
    long limit = 20;
    int c;
    optind = 0; /* 0: glibc starts afresh (permuting), after main's "+" scan */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's')
            status = optarg;
        else if (c == 'l')
            limit = strtol(optarg, NULL, 10);
        else if (c == 'j')
            o->json = true;
        else if (c == 'h') {
            results_usage(stdout);
            return TC_OK;
        } else {
            results_usage(stderr);
            return TC_USAGE;
        }
    }
    if (optind != argc || limit < 1) {
        results_usage(stderr);
        return TC_USAGE;
    }
    char path[256];
    snprintf(path, sizeof path, "/reconcile/results?limit=%ld%s%s", limit,
             status != NULL ? "&status=" : "", status != NULL ? status : "");
    resp r;
    if (http("GET", path, NULL, &r) != 0)
        return TC_USAGE;
    if (r.status != 200) {
        int rc = refused(&r);
        free(r.body);
        return rc;
    }
    cJSON *j = parse(&r);
    int rc = j == NULL ? TC_USAGE : TC_OK;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "results");
    for (const cJSON *it = arr != NULL ? arr->child : NULL; it != NULL; it = it->next)
        if (strcmp(str(it, "status"), "MISMATCH") == 0)
            rc = TC_MISMATCH;
    if (o->json) {
        print_body(&r);
    } else if (j != NULL) {
        print_result_header();
        for (const cJSON *it = arr != NULL ? arr->child : NULL; it != NULL; it = it->next)
            print_result_row(it);
        if (cJSON_GetArraySize(arr) == 0)
            printf("(no results)\n");
    }
    cJSON_Delete(j);
    free(r.body);
    return rc;
}

/* ---- incidents ---- */

static void incidents_usage(FILE *to) {
    fprintf(to, "usage: tallyctl incidents [ID] [--limit N] [--json]\n"
                "\n"
                "Findings grouped per incident with their actions and bundle (GET /incidents,\n"
                "GET /incidents/ID). Incident numbers restart with tallyd; the audit log keeps\n"
                "the history.\n"
                "\n"
                "exit: 0 answered, 2 usage, unknown incident or no answer\n");
}

static void print_action_row(const cJSON *a) {
    char what[64];
    if (strcmp(str(a, "cmd"), "set_symbol_mode") == 0)
        snprintf(what, sizeof what, "%s %s", str(a, "symbol"), str(a, "mode"));
    else if (strcmp(str(a, "cmd"), "withdrawals_halt") == 0)
        snprintf(what, sizeof what, "withdrawals %s",
                 strcmp(str(a, "on"), "true") == 0 ? "halt" : "resume");
    else
        snprintf(what, sizeof what, "%s %s", str(a, "cmd"), str(a, "symbol"));
    const char *state = str(a, "state");
    char st[64];
    if (strcmp(state, "BLOCKED") == 0)
        snprintf(st, sizeof st, "BLOCKED{%s}", str(a, "block_reason"));
    else if (strcmp(state, "FAILED") == 0)
        snprintf(st, sizeof st, "FAILED{%s}", str(a, "error"));
    else
        snprintf(st, sizeof st, "%s", state);
    printf("    %-32s %-28s %-12s %s\n", what, st, str(a, "origin"), str(a, "id"));
}

static int cmd_incidents(int argc, char **argv, tc_opts *o) {
    static const struct option opts[] = {
        {"limit", required_argument, NULL, 'l'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long limit = 20;
    int c;
    optind = 0; /* 0: glibc starts afresh (permuting), after main's "+" scan */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'l')
            limit = strtol(optarg, NULL, 10);
        else if (c == 'j')
            o->json = true;
        else if (c == 'h') {
            incidents_usage(stdout);
            return TC_OK;
        } else {
            incidents_usage(stderr);
            return TC_USAGE;
        }
    }
    if (optind + 1 < argc || limit < 1) {
        incidents_usage(stderr);
        return TC_USAGE;
    }
    char path[256];
    bool one = optind < argc;
    if (one)
        snprintf(path, sizeof path, "/incidents/%.64s", argv[optind]);
    else
        snprintf(path, sizeof path, "/incidents?limit=%ld", limit);
    resp r;
    if (http("GET", path, NULL, &r) != 0)
        return TC_USAGE;
    if (r.status != 200) {
        int rc = refused(&r);
        free(r.body);
        return rc;
    }
    if (o->json) {
        print_body(&r);
        free(r.body);
        return TC_OK;
    }
    cJSON *j = parse(&r);
    if (j == NULL) {
        free(r.body);
        return TC_USAGE;
    }
    const cJSON *list = one ? NULL : cJSON_GetObjectItemCaseSensitive(j, "incidents");
    const cJSON *first = one ? j : (list != NULL ? list->child : NULL);
    if (!one)
        printf("%-5s %-5s %-24s %8s %-24s %s\n", "ID", "SEV", "CLASSES", "FINDINGS", "SEQS",
               "BUNDLE");
    for (const cJSON *inc = first; inc != NULL; inc = one ? NULL : inc->next) {
        char cls[64] = "";
        const cJSON *ca = cJSON_GetObjectItemCaseSensitive(inc, "classes");
        for (const cJSON *x = ca != NULL ? ca->child : NULL; x != NULL; x = x->next)
            snprintf(cls + strlen(cls), sizeof cls - strlen(cls), "%s%s", cls[0] ? "+" : "",
                     x->valuestring);
        char seqs[64];
        snprintf(seqs, sizeof seqs, "%s..%s", str(inc, "from_seq"), str(inc, "to_seq"));
        const cJSON *bundle = cJSON_GetObjectItemCaseSensitive(inc, "bundle");
        printf("%-5s %-5s %-24s %8s %-24s %s\n", str(inc, "id"), str(inc, "severity"), cls,
               str(inc, "findings_total"), seqs,
               cJSON_IsObject(bundle) ? str(bundle, "state") : "-");
        const cJSON *bc = cJSON_GetObjectItemCaseSensitive(inc, "by_check");
        for (const cJSON *x = bc != NULL ? bc->child : NULL; x != NULL; x = x->next)
            printf("    %-20s %.0f\n", x->string, x->valuedouble);
        const cJSON *acts = cJSON_GetObjectItemCaseSensitive(inc, "actions");
        for (const cJSON *a = acts != NULL ? acts->child : NULL; a != NULL; a = a->next)
            print_action_row(a);
        const cJSON *fs = one ? cJSON_GetObjectItemCaseSensitive(inc, "findings") : NULL;
        for (const cJSON *f = fs != NULL ? fs->child : NULL; f != NULL; f = f->next)
            printf("    finding %s %s seq %s segment %s offset %s\n", str(f, "severity"),
                   str(f, "check"), str(f, "seq"), str(f, "segment"), str(f, "offset"));
    }
    if (!one && cJSON_GetArraySize(list) == 0)
        printf("(no incidents)\n");
    cJSON_Delete(j);
    free(r.body);
    return TC_OK;
}

/* ---- policy ---- */

static void policy_usage(FILE *to) {
    fprintf(to, "usage: tallyctl policy [--action none|plan|live] [--dry-run true|false]\n"
                "                       [--armed true|false] [--reason TEXT] [--json]\n"
                "\n"
                "Shows the enablement stage, or changes it (POST /policy; audited). The kill\n"
                "switch is --action none: it takes effect before the next action; tallyd\n"
                "answers once the hot loop has taken it.\n"
                "\n"
                "exit: 0 done (or shown), 2 usage, refused or no answer\n");
}

static int cmd_policy(int argc, char **argv, tc_opts *o) {
    static const struct option opts[] = {
        {"action", required_argument, NULL, 'a'},
        {"dry-run", required_argument, NULL, 'd'},
        {"armed", required_argument, NULL, 'r'},
        {"reason", required_argument, NULL, 'R'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cJSON *b = cJSON_CreateObject();
    int c;
    bool change = false, bad = false;
    optind = 0; /* 0: glibc starts afresh (permuting), after main's "+" scan */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'a':
                cJSON_AddStringToObject(b, "action", optarg);
                change = true;
                break;
            case 'd':
            case 'r':
                if (strcmp(optarg, "true") != 0 && strcmp(optarg, "false") != 0)
                    bad = true;
                cJSON_AddBoolToObject(b, c == 'd' ? "dry_run" : "armed",
                                      strcmp(optarg, "true") == 0);
                change = true;
                break;
            case 'R':
                cJSON_AddStringToObject(b, "reason", optarg);
                break;
            case 'j':
                o->json = true;
                break;
            case 'h':
                cJSON_Delete(b);
                policy_usage(stdout);
                return TC_OK;
            default:
                bad = true;
        }
    }
    if (bad || optind != argc) {
        cJSON_Delete(b);
        policy_usage(stderr);
        return TC_USAGE;
    }
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    resp r;
    int hr = change ? http("POST", "/policy", body, &r) : http("GET", "/policy", NULL, &r);
    cJSON_free(body);
    if (hr != 0)
        return TC_USAGE;
    int rc = TC_OK;
    if (r.status != 200 && r.status != 202) {
        rc = refused(&r);
    } else if (o->json) {
        print_body(&r);
    } else {
        cJSON *j = parse(&r);
        printf("stage %s (action=%s dry_run=%s armed=%s)%s\n", str(j, "stage"), str(j, "action"),
               str(j, "dry_run"), str(j, "armed"),
               strcmp(str(j, "applied"), "true") == 0 ? ""
                                                      : "  -- sent, not yet confirmed by the loop");
        cJSON_Delete(j);
    }
    free(r.body);
    return rc;
}

/* ---- mode ---- */

static void mode_usage(FILE *to) {
    fprintf(to, "usage: tallyctl mode SYMBOL|* CANCEL_ONLY|SOFT_HALT|HARD_HALT --reason TEXT "
                "--ticket ID [--json]\n"
                "\n"
                "A manual escalation through tally (POST /actions/mode; audited): the sidecar\n"
                "key, the fast-path word, the applied loop. Relaxing goes through 'resume'.\n"
                "\n"
                "exit: 0 sent (EXECUTED or APPLIED), 2 usage, BLOCKED, FAILED, or no answer\n");
}

static int cmd_mode(int argc, char **argv, tc_opts *o) {
    static const struct option opts[] = {
        {"reason", required_argument, NULL, 'r'},
        {"ticket", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *reason = NULL, *ticket = NULL;
    int c;
    optind = 0; /* 0: glibc starts afresh (permuting), after main's "+" scan */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'r')
            reason = optarg;
        else if (c == 't')
            ticket = optarg;
        else if (c == 'j')
            o->json = true;
        else if (c == 'h') {
            mode_usage(stdout);
            return TC_OK;
        } else {
            mode_usage(stderr);
            return TC_USAGE;
        }
    }
    if (optind + 2 != argc || reason == NULL || ticket == NULL) {
        mode_usage(stderr);
        return TC_USAGE;
    }
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "symbol", argv[optind]);
    cJSON_AddStringToObject(b, "mode", argv[optind + 1]);
    cJSON_AddStringToObject(b, "reason", reason);
    cJSON_AddStringToObject(b, "ticket", ticket);
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    resp r;
    int hr = http("POST", "/actions/mode", body, &r);
    cJSON_free(body);
    if (hr != 0)
        return TC_USAGE;
    int rc = TC_OK;
    if (r.status != 200 && r.status != 202) {
        rc = refused(&r);
    } else {
        cJSON *j = parse(&r);
        const char *state = str(j, "state");
        if (strcmp(state, "BLOCKED") == 0 || strcmp(state, "FAILED") == 0)
            rc = TC_USAGE;
        if (o->json) {
            print_body(&r);
        } else {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "action");
            printf("command %s: %s", str(j, "id"), state);
            if (strcmp(state, "BLOCKED") == 0)
                printf("{%s}", str(a, "block_reason"));
            if (strcmp(state, "FAILED") == 0)
                printf("{%s}", str(a, "error"));
            printf("\n");
        }
        cJSON_Delete(j);
    }
    free(r.body);
    return rc;
}

/* ---- resume ---- */

static void resume_usage(FILE *to) {
    fprintf(to,
            "usage: tallyctl resume                                   show the resume state\n"
            "       tallyctl resume --symbol S --ticket T [--window-ms N] [--reason R] [--wait]\n"
            "       tallyctl resume --symbols A,B,... --ticket T [--reason R]\n"
            "       tallyctl resume --withdrawals --ticket T [--reason R]\n"
            "\n"
            "Canary resume (POST /resume): a global halt is first pinned per symbol (sidecar\n"
            "key), the global mode goes one level down (operator key, from_mode), then the\n"
            "canary symbol one level down, watched for window_ms: a SEV1/SEV2 finding on it\n"
            "or on * rolls it back (ROLLED_BACK); a clean window records CANARY_PASSED, and\n"
            "only then are batches (--symbols) and withdrawals accepted. Needs keys.operator\n"
            "in tallyd's config and the live stage. --wait follows the window with a\n"
            "progress bar.\n"
            "\n"
            "exit: 0 accepted (with --wait: CANARY_PASSED), 1 rolled back or aborted (--wait),\n"
            "      2 usage, refused or no answer\n");
}

static void print_resume(const cJSON *j) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "canary");
    const cJSON *ar = cJSON_GetObjectItemCaseSensitive(j, "auto_resume");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "engine");
    printf("canary      %s, last outcome %s", str(c, "phase"), str(c, "last_outcome"));
    if (cJSON_GetObjectItemCaseSensitive(c, "symbol") != NULL)
        printf(", %s %s -> %s (%s path, window %s ms", str(c, "symbol"), str(c, "from_mode"),
               str(c, "to_mode"), str(c, "path"), str(c, "window_ms"));
    if (cJSON_GetObjectItemCaseSensitive(c, "window_left_ms") != NULL)
        printf(", %s ms left", str(c, "window_left_ms"));
    if (cJSON_GetObjectItemCaseSensitive(c, "symbol") != NULL)
        printf(")");
    printf("\n");
    printf("passed      %s%s%s  pins %s/%s applied\n", str(c, "passed"),
           cJSON_GetObjectItemCaseSensitive(c, "passed_level") != NULL ? " at " : "",
           cJSON_GetObjectItemCaseSensitive(c, "passed_level") != NULL ? str(c, "passed_level")
                                                                       : "",
           str(c, "pins_applied"), str(c, "pins_sent"));
    printf("auto-resume %s (last verdict %s)\n", str(ar, "state"), str(ar, "last_verdict"));
    printf("engine      global %s, withdrawals %s\n", str(e, "global_mode"),
           strcmp(str(e, "withdrawals_halted"), "true") == 0 ? "HALTED" : "open");
    const cJSON *held = cJSON_GetObjectItemCaseSensitive(e, "held");
    for (const cJSON *h = held != NULL ? held->child : NULL; h != NULL; h = h->next)
        printf("    %-24s own %-12s effective %s\n", str(h, "symbol"), str(h, "mode"),
               str(h, "effective"));
}

static int cmd_resume(int argc, char **argv, tc_opts *o) {
    static const struct option opts[] = {
        {"symbol", required_argument, NULL, 's'}, {"symbols", required_argument, NULL, 'S'},
        {"withdrawals", no_argument, NULL, 'W'},  {"window-ms", required_argument, NULL, 'w'},
        {"ticket", required_argument, NULL, 't'}, {"reason", required_argument, NULL, 'r'},
        {"wait", no_argument, NULL, 'a'},         {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *symbol = NULL, *symbols = NULL, *ticket = NULL, *reason = NULL;
    long long window = -1;
    bool withdrawals = false, wait = false;
    int c;
    optind = 0; /* 0: glibc starts afresh (permuting), after main's "+" scan */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 's':
                symbol = optarg;
                break;
            case 'S':
                symbols = optarg;
                break;
            case 'W':
                withdrawals = true;
                break;
            case 'w':
                window = strtoll(optarg, NULL, 10);
                break;
            case 't':
                ticket = optarg;
                break;
            case 'r':
                reason = optarg;
                break;
            case 'a':
                wait = true;
                break;
            case 'j':
                o->json = true;
                o->progress = false;
                break;
            case 'h':
                resume_usage(stdout);
                return TC_OK;
            default:
                resume_usage(stderr);
                return TC_USAGE;
        }
    }
    int kinds = (symbol != NULL) + (symbols != NULL) + withdrawals;
    if (optind != argc || kinds > 1 || (kinds == 1 && ticket == NULL)) {
        resume_usage(stderr);
        return TC_USAGE;
    }
    resp r;
    if (kinds == 0) {
        if (http("GET", "/resume", NULL, &r) != 0)
            return TC_USAGE;
        if (o->json) {
            print_body(&r);
        } else {
            cJSON *j = parse(&r);
            if (j != NULL)
                print_resume(j);
            cJSON_Delete(j);
        }
        free(r.body);
        return TC_OK;
    }
    cJSON *b = cJSON_CreateObject();
    if (symbol != NULL) {
        cJSON_AddStringToObject(b, "symbol", symbol);
        if (window > 0)
            cJSON_AddNumberToObject(b, "window_ms", (double)window);
    } else if (symbols != NULL) {
        cJSON *arr = cJSON_AddArrayToObject(b, "symbols");
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", symbols);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t != NULL;
             t = strtok_r(NULL, ",", &save))
            cJSON_AddItemToArray(arr, cJSON_CreateString(t));
    } else {
        cJSON_AddTrueToObject(b, "withdrawals");
    }
    cJSON_AddStringToObject(b, "ticket", ticket);
    if (reason != NULL)
        cJSON_AddStringToObject(b, "reason", reason);
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    int hr = http("POST", "/resume", body, &r);
    cJSON_free(body);
    if (hr != 0)
        return TC_USAGE;
    if (r.status != 202) {
        int rc = refused(&r);
        free(r.body);
        return rc;
    }
    if (!wait || symbol == NULL) {
        if (o->json)
            print_body(&r);
        else
            printf("accepted\n");
        free(r.body);
        return TC_OK;
    }
    free(r.body);
    /* --wait: follow the canary to its outcome. */
    tc_bar bar;
    tc_bar_start(&bar, o->progress, "canary");
    int rc = TC_USAGE;
    for (;;) {
        if (http("GET", "/resume", NULL, &r) != 0)
            break;
        cJSON *j = parse(&r);
        const cJSON *cn = cJSON_GetObjectItemCaseSensitive(j, "canary");
        const char *phase = str(cn, "phase");
        if (strcmp(phase, "idle") == 0) {
            tc_bar_end(&bar);
            const char *out = str(cn, "last_outcome");
            rc = strcmp(out, "CANARY_PASSED") == 0 ? TC_OK : TC_MISMATCH;
            if (o->json)
                print_body(&r);
            else
                printf("%s\n", out);
            cJSON_Delete(j);
            free(r.body);
            break;
        }
        double total = num(cn, "window_ms"), left = num(cn, "window_left_ms");
        if (strcmp(phase, "watching") == 0)
            tc_bar_update(&bar, (uint64_t)(total - left), (uint64_t)total, "ms");
        cJSON_Delete(j);
        free(r.body);
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
    }
    return rc;
}

/* ---- reconcile ---- */

static void reconcile_usage(FILE *to) {
    fprintf(to, "usage: tallyctl reconcile --from SEQ --to SEQ [--symbols A,B,...] [--no-wait] "
                "[--json]\n"
                "\n"
                "An on-demand full reconcile of a scope, off the hot loop (POST /reconcile): the\n"
                "WAL range re-verified (chain, seqs, fences), the ledger at its current\n"
                "watermark and peers at their last common checkpoint, when these lie in the\n"
                "scope (else the result names why they were not compared). Waits for the\n"
                "result with a progress bar unless --no-wait.\n"
                "\n"
                "exit: 0 CONSISTENT (or queued with --no-wait), 1 MISMATCH, 2 ERROR, usage or no "
                "answer\n");
}

static int cmd_reconcile(int argc, char **argv, tc_opts *o) {
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"symbols", required_argument, NULL, 's'},
        {"no-wait", no_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *from = NULL, *to = NULL, *symbols = NULL;
    bool nowait = false;
    int c;
    optind = 0; /* 0: glibc starts afresh (permuting), after main's "+" scan */
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'f':
                from = optarg;
                break;
            case 't':
                to = optarg;
                break;
            case 's':
                symbols = optarg;
                break;
            case 'n':
                nowait = true;
                break;
            case 'j':
                o->json = true;
                o->progress = false;
                break;
            case 'h':
                reconcile_usage(stdout);
                return TC_OK;
            default:
                reconcile_usage(stderr);
                return TC_USAGE;
        }
    }
    if (optind != argc || from == NULL || to == NULL) {
        reconcile_usage(stderr);
        return TC_USAGE;
    }
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "from_seq", from);
    cJSON_AddStringToObject(b, "to_seq", to);
    if (symbols != NULL) {
        cJSON *arr = cJSON_AddArrayToObject(b, "symbols");
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", symbols);
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); t != NULL;
             t = strtok_r(NULL, ",", &save))
            cJSON_AddItemToArray(arr, cJSON_CreateString(t));
    }
    char *body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    resp r;
    int hr = http("POST", "/reconcile", body, &r);
    cJSON_free(body);
    if (hr != 0)
        return TC_USAGE;
    if (r.status != 202) {
        int rc = refused(&r);
        free(r.body);
        return rc;
    }
    cJSON *j = parse(&r);
    char id[64];
    snprintf(id, sizeof id, "%s", str(j, "id"));
    cJSON_Delete(j);
    if (nowait) {
        if (o->json)
            print_body(&r);
        else
            printf("%s queued\n", id);
        free(r.body);
        return TC_OK;
    }
    free(r.body);
    uint64_t span = strtoull(to, NULL, 10) - strtoull(from, NULL, 10) + 1;
    tc_bar bar;
    tc_bar_start(&bar, o->progress, id);
    char path[128];
    snprintf(path, sizeof path, "/reconcile/%s", id);
    for (;;) {
        if (http("GET", path, NULL, &r) != 0) {
            tc_bar_end(&bar);
            return TC_USAGE;
        }
        j = parse(&r);
        const char *st = str(j, "status");
        if (strcmp(st, "QUEUED") != 0 && strcmp(st, "RUNNING") != 0) {
            tc_bar_end(&bar);
            const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "result");
            int rc = strcmp(st, "CONSISTENT") == 0 ? TC_OK
                     : strcmp(st, "MISMATCH") == 0 ? TC_MISMATCH
                                                   : TC_USAGE;
            if (o->json) {
                char *s = cJSON_PrintUnformatted(res);
                printf("%s\n", s != NULL ? s : "{}");
                cJSON_free(s);
            } else {
                print_result_header();
                print_result_row(res);
                print_result_sides(res);
                const cJSON *ff = cJSON_GetObjectItemCaseSensitive(res, "first_findings");
                for (const cJSON *f = ff != NULL ? ff->child : NULL; f != NULL; f = f->next)
                    printf("    %s %s seq %s segment %s offset %s\n", str(f, "severity"),
                           str(f, "check"), str(f, "seq"), str(f, "segment"), str(f, "offset"));
                if (cJSON_GetObjectItemCaseSensitive(res, "note") != NULL)
                    printf("    note: %s\n", str(res, "note"));
            }
            cJSON_Delete(j);
            free(r.body);
            return rc;
        }
        if (strcmp(st, "RUNNING") == 0)
            tc_bar_update(&bar, (uint64_t)num(j, "records"), span, "records");
        cJSON_Delete(j);
        free(r.body);
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
}

/* ---- metrics ---- */

static int cmd_metrics(int argc, char **argv, tc_opts *o) {
    if (want_help(argc, argv, o)) {
        printf("usage: tallyctl metrics\n\nOne scrape of GET /metrics (Prometheus text).\n\n"
               "exit: 0 answered, 2 no answer\n");
        return TC_OK;
    }
    resp r;
    if (http("GET", "/metrics", NULL, &r) != 0)
        return TC_USAGE;
    fwrite(r.body, 1, r.len, stdout);
    free(r.body);
    return r.status == 200 ? TC_OK : TC_USAGE;
}

/* ---- main ---- */

static void usage(FILE *to) {
    fprintf(
        to,
        "usage: tallyctl [--socket PATH | --config FILE] [--timeout-ms N] [--json] COMMAND "
        "...\n"
        "\n"
        "The operator's CLI for tallyd. Online commands use tallyd's control socket\n"
        "(--socket, else control.socket of --config, else $TALLY_SOCKET, else\n" TC_DEFAULT_SOCKET
        ").\n"
        "\n"
        "online:\n"
        "  status                     health, stage, modes, inputs\n"
        "  results                    on-demand reconcile results\n"
        "  incidents [ID]             findings per incident, actions, bundle\n"
        "  policy [--action ...]      show or change the stage (the kill switch)\n"
        "  mode SYMBOL MODE ...       manual escalation\n"
        "  resume ...                 canary resume, batches, withdrawals\n"
        "  reconcile --from --to      on-demand full reconcile of a scope\n"
        "  metrics                    one Prometheus scrape\n"
        "offline:\n"
        "  wal verify DIR             every reading rule over a WAL directory\n"
        "  ring inspect NAME          the ring's control block\n"
        "  bundle verify FILE         a forensic bundle: signature, hashes, WAL chain\n"
        "online (bundles):\n"
        "  bundle export ...          export a forensic bundle, with progress\n"
        "\n"
        "'tallyctl COMMAND --help' for each. Exit: 0 consistent, 1 mismatch found,\n"
        "2 usage or connection error.\n");
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"config", required_argument, NULL, 'c'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    tc_opts o = {.json = false, .progress = isatty(2) != 0};
    const char *config = NULL;
    int c;
    /* '+': global options stop at the command. */
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
            case 's':
                g_socket = optarg;
                break;
            case 'c':
                config = optarg;
                break;
            case 't':
                g_timeout_ms = strtol(optarg, NULL, 10);
                break;
            case 'j':
                o.json = true;
                break;
            case 'h':
                usage(stdout);
                return TC_OK;
            default:
                usage(stderr);
                return TC_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return TC_USAGE;
    }
    if (o.json)
        o.progress = false;
    static tl_config cfg;
    if (g_socket == NULL && config != NULL) {
        char err[512];
        if (tl_config_load(config, &cfg, err, sizeof err) != 0) {
            fprintf(stderr, "tallyctl: %s\n", err);
            return TC_USAGE;
        }
        g_socket = cfg.control_socket;
    }
    if (g_socket == NULL)
        g_socket = getenv("TALLY_SOCKET");
    if (g_socket == NULL)
        g_socket = TC_DEFAULT_SOCKET;
    if (g_timeout_ms < 1)
        g_timeout_ms = 10000;

    const char *cmd = argv[optind];
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    if (strcmp(cmd, "bundle") == 0)
        return tc_bundle(sub_argc, sub_argv, &o);
    if (strcmp(cmd, "wal") == 0 || strcmp(cmd, "ring") == 0) {
        const char *what = sub_argc >= 2 ? sub_argv[1] : "";
        if (strcmp(cmd, "wal") == 0 && strcmp(what, "verify") == 0)
            return tc_wal_verify(sub_argc - 1, sub_argv + 1, &o);
        if (strcmp(cmd, "ring") == 0 && strcmp(what, "inspect") == 0)
            return tc_ring_inspect(sub_argc - 1, sub_argv + 1, &o);
        if (strcmp(what, "--help") == 0) {
            usage(stdout);
            return TC_OK;
        }
        fprintf(stderr, "tallyctl: unknown command '%s %s' (wal verify, ring inspect)\n", cmd,
                what);
        return TC_USAGE;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc;
    if (strcmp(cmd, "status") == 0)
        rc = cmd_status(sub_argc, sub_argv, &o);
    else if (strcmp(cmd, "results") == 0)
        rc = cmd_results(sub_argc, sub_argv, &o);
    else if (strcmp(cmd, "incidents") == 0)
        rc = cmd_incidents(sub_argc, sub_argv, &o);
    else if (strcmp(cmd, "policy") == 0)
        rc = cmd_policy(sub_argc, sub_argv, &o);
    else if (strcmp(cmd, "mode") == 0)
        rc = cmd_mode(sub_argc, sub_argv, &o);
    else if (strcmp(cmd, "resume") == 0)
        rc = cmd_resume(sub_argc, sub_argv, &o);
    else if (strcmp(cmd, "reconcile") == 0)
        rc = cmd_reconcile(sub_argc, sub_argv, &o);
    else if (strcmp(cmd, "metrics") == 0)
        rc = cmd_metrics(sub_argc, sub_argv, &o);
    else {
        fprintf(stderr, "tallyctl: unknown command '%s'\n", cmd);
        usage(stderr);
        rc = TC_USAGE;
    }
    curl_global_cleanup();
    return rc;
}
