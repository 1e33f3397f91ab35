/* enginesim_lease.c: leader election through etcd for tally-enginesim (see
 * enginesim_lease.h). */
#include "enginesim_lease.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "admin/libtally_engine.h"

#define REQ_TIMEOUT_MS 250L
#define BODY_MAX       16384u
#define MARGIN_NS      300000000ull /* stop this long before the lease could expire */

struct tl_es_lease {
    tl_es_lease_opts o;
    CURL *easy;
    struct curl_slist *hdr;
    char key_b64[512];
    char val_b64[64];
    char id_hex[33];
    char body[BODY_MAX + 1];
    size_t len;
    /* the term */
    int64_t lease_id; /* 0: none granted */
    bool leading;
    bool stale_said;
    uint64_t fence;
    uint64_t lead_since_ns;
    uint64_t deadline_ns;  /* mono: stop leading by then without a keepalive */
    uint64_t next_keep_ns; /* mono: the next keepalive */
    bool partitioned;
    uint64_t next_campaign_ns;
    /* counters */
    uint64_t terms, keepalives, keepalive_failures, campaigns;
    const char *ended; /* how the last term ended */
};

static volatile sig_atomic_t g_partition;

static void on_usr1(int sig) {
    (void)sig;
    g_partition = 1;
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool parse_u32(const char *s, uint32_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

int tl_es_lease_args(int *argc, char **argv, tl_es_lease_opts *o) {
    memset(o, 0, sizeof *o);
    o->ttl_s = 2;
    o->wait_ms = 30000;
    int w = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < *argc ? argv[i + 1] : NULL;
        bool ok = true, takes = true;
        if (strcmp(a, "--etcd") == 0)
            o->etcd = v;
        else if (strcmp(a, "--lease-key") == 0)
            o->key = v;
        else if (strcmp(a, "--lease-ttl") == 0)
            ok = v != NULL && parse_u32(v, &o->ttl_s) && o->ttl_s >= 1;
        else if (strcmp(a, "--lease-wait-ms") == 0)
            ok = v != NULL && parse_u32(v, &o->wait_ms);
        else if (strcmp(a, "--lease-partition-ms") == 0)
            ok = v != NULL && parse_u32(v, &o->partition_ms);
        else if (strcmp(a, "--lease-stale") == 0) {
            o->stale = true;
            takes = false;
        } else {
            argv[w++] = argv[i];
            continue;
        }
        if (takes && v == NULL)
            ok = false;
        if (!ok) {
            fprintf(stderr, "tally-enginesim: bad value for %s: %s\n", a, v ? v : "");
            return -1;
        }
        if (takes)
            i++;
    }
    *argc = w;
    argv[w] = NULL;
    if ((o->etcd == NULL) != (o->key == NULL)) {
        fprintf(stderr, "tally-enginesim: --etcd and --lease-key go together\n");
        return -1;
    }
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
    tl_es_lease *l = arg;
    size_t bytes = size * n;
    if (bytes > BODY_MAX - l->len)
        return 0;
    memcpy(l->body + l->len, p, bytes);
    l->len += bytes;
    return bytes;
}

static void b64(const uint8_t *in, size_t n, char *out) {
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = i + 1 < n ? a[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? a[v & 63] : '=';
    }
    out[o] = '\0';
}

tl_es_lease *tl_es_lease_open(const tl_es_lease_opts *o, const uint8_t id[TL_ES_ID_BYTES]) {
    if (o->etcd == NULL || strlen(o->key) == 0 || strlen(o->key) > 300) {
        fprintf(stderr, "tally-enginesim: --lease-key: 1..300 bytes\n");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    tl_es_lease *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->o = *o;
    l->easy = curl_easy_init();
    l->hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (l->easy == NULL || l->hdr == NULL) {
        tl_es_lease_close(l);
        return NULL;
    }
    b64((const uint8_t *)o->key, strlen(o->key), l->key_b64);
    for (unsigned i = 0; i < TL_ES_ID_BYTES; i++)
        snprintf(l->id_hex + 2 * i, 3, "%02x", id[i]);
    b64((const uint8_t *)l->id_hex, 32, l->val_b64);
    l->ended = "none";
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    return l;
}

void tl_es_lease_close(tl_es_lease *l) {
    if (l == NULL)
        return;
    if (l->easy != NULL)
        curl_easy_cleanup(l->easy);
    curl_slist_free_all(l->hdr);
    free(l);
}

/* One POST; the parsed reply (the caller deletes it), or NULL. */
static cJSON *post(tl_es_lease *l, const char *path, const char *json) {
    if (l->partitioned)
        return NULL;
    char url[512];
    int un = snprintf(url, sizeof url, "%s%s", l->o.etcd, path);
    if (un < 0 || (size_t)un >= sizeof url)
        return NULL; /* a truncated URL would ask the wrong thing */
    l->len = 0;
    CURL *e = l->easy;
    /* A refused option would send a request other than the one meant (no
     * timeout: a hang on the engine's one thread): no request at all, which
     * the caller already treats as etcd unreachable. */
    if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, json) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, l->hdr) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, REQ_TIMEOUT_MS) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, REQ_TIMEOUT_MS) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, l) != CURLE_OK)
        return NULL;
    long status = 0;
    if (curl_easy_perform(e) != CURLE_OK)
        return NULL;
    if (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200)
        return NULL;
    l->body[l->len] = '\0';
    return cJSON_Parse(l->body);
}

/* An int64 field written as a string (etcd's gateway), 0 when left out. */
static int64_t i64(const cJSON *obj, const char *name) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (cJSON_IsString(it) && it->valuestring != NULL)
        return strtoll(it->valuestring, NULL, 10);
    return 0;
}

static bool grant(tl_es_lease *l) {
    char req[64];
    snprintf(req, sizeof req, "{\"TTL\":\"%u\"}", l->o.ttl_s);
    uint64_t sent = mono_ns();
    cJSON *r = post(l, "/v3/lease/grant", req);
    if (r == NULL)
        return false;
    l->lease_id = i64(r, "ID");
    int64_t ttl = i64(r, "TTL");
    cJSON_Delete(r);
    if (l->lease_id == 0 || ttl <= 0)
        return false;
    l->deadline_ns = sent + (uint64_t)ttl * 1000000000ull - MARGIN_NS;
    return true;
}

/* The put, if the key is absent (create_revision 0) or names us (value). */
static int txn_put(tl_es_lease *l, const char *compare, uint64_t *fence) {
    char req[2048];
    snprintf(req, sizeof req,
             "{\"compare\":[%s],\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\","
             "\"lease\":\"%" PRId64 "\"}}],\"failure\":[]}",
             compare, l->key_b64, l->val_b64, l->lease_id);
    cJSON *r = post(l, "/v3/kv/txn", req);
    if (r == NULL)
        return -1;
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(r, "succeeded");
    int won = cJSON_IsTrue(ok) ? 1 : 0;
    /* The put's revision is the transaction's: the header's. */
    *fence = (uint64_t)i64(cJSON_GetObjectItemCaseSensitive(r, "header"), "revision");
    cJSON_Delete(r);
    return won;
}

int tl_es_lease_campaign(tl_es_lease *l, uint64_t now_mono_ns, uint64_t *fence) {
    (void)now_mono_ns;
    if (g_partition)
        l->partitioned = true;
    l->campaigns++;
    if (!grant(l))
        return -1;
    char cmp[1024];
    snprintf(
        cmp, sizeof cmp,
        "{\"key\":\"%s\",\"target\":\"CREATE\",\"result\":\"EQUAL\",\"create_revision\":\"0\"}",
        l->key_b64);
    int won = txn_put(l, cmp, fence);
    if (won == 0) {
        snprintf(cmp, sizeof cmp,
                 "{\"key\":\"%s\",\"target\":\"VALUE\",\"result\":\"EQUAL\",\"value\":\"%s\"}",
                 l->key_b64, l->val_b64);
        won = txn_put(l, cmp, fence);
    }
    if (won != 1 || *fence == 0) {
        /* Not ours: give the lease back (it would only expire). */
        char req[64];
        snprintf(req, sizeof req, "{\"ID\":\"%" PRId64 "\"}", l->lease_id);
        cJSON *r = post(l, "/v3/lease/revoke", req);
        cJSON_Delete(r);
        l->lease_id = 0;
        return won < 0 ? -1 : 0;
    }
    l->leading = true;
    l->stale_said = false;
    l->fence = *fence;
    l->terms++;
    l->lead_since_ns = mono_ns();
    l->next_keep_ns = l->lead_since_ns + (uint64_t)l->o.ttl_s * 1000000000ull / 3;
    fprintf(stderr, "tally-enginesim: lease: leader %s of %s with fence %" PRIu64 "\n", l->id_hex,
            l->o.key, *fence);
    return 1;
}

int tl_es_lease_campaign_wait(tl_es_lease *l, uint32_t wait_ms, uint64_t *fence) {
    uint64_t until = mono_ns() + (uint64_t)wait_ms * 1000000ull;
    for (;;) {
        if (tl_es_lease_campaign(l, mono_ns(), fence) == 1)
            return 1;
        if (mono_ns() >= until)
            return 0;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
}

static bool end_term(tl_es_lease *l, const char *why) {
    l->ended = why;
    if (l->o.stale) {
        if (!l->stale_said)
            fprintf(stderr,
                    "tally-enginesim: lease: lost (%s); fault lease_stale: still writing with "
                    "fence %" PRIu64 "\n",
                    why, l->fence);
        l->stale_said = true;
        return true;
    }
    fprintf(stderr, "tally-enginesim: lease: lost (%s): no longer leading\n", why);
    l->leading = false;
    l->lease_id = 0;
    return false;
}

bool tl_es_lease_hold(tl_es_lease *l, uint64_t now) {
    if (!l->leading)
        return false;
    if (l->stale_said)
        return true; /* a stale leader no longer asks */
    if (g_partition || (l->o.partition_ms != 0 &&
                        now - l->lead_since_ns >= (uint64_t)l->o.partition_ms * 1000000ull)) {
        if (!l->partitioned)
            fprintf(stderr, "tally-enginesim: lease: partitioned from etcd\n");
        l->partitioned = true;
    }
    if (now >= l->deadline_ns)
        return end_term(l, "deadline");
    if (now < l->next_keep_ns)
        return true;
    l->next_keep_ns = now + (uint64_t)l->o.ttl_s * 1000000000ull / 3;
    char req[64];
    snprintf(req, sizeof req, "{\"ID\":\"%" PRId64 "\"}", l->lease_id);
    uint64_t sent = mono_ns();
    cJSON *r = post(l, "/v3/lease/keepalive", req);
    if (r == NULL) {
        l->keepalive_failures++;
        return true; /* unreachable: the deadline decides */
    }
    int64_t ttl = i64(cJSON_GetObjectItemCaseSensitive(r, "result"), "TTL");
    cJSON_Delete(r);
    if (ttl <= 0)
        return end_term(l, "lease_expired"); /* etcd refused: the lease is gone */
    l->keepalives++;
    l->deadline_ns = sent + (uint64_t)ttl * 1000000000ull - MARGIN_NS;
    /* The key still names us? */
    char rq[600];
    snprintf(rq, sizeof rq, "{\"key\":\"%s\"}", l->key_b64);
    r = post(l, "/v3/kv/range", rq);
    if (r == NULL)
        return true;
    const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(r, "kvs");
    const cJSON *kv = cJSON_IsArray(kvs) ? kvs->child : NULL;
    const cJSON *val = kv != NULL ? cJSON_GetObjectItemCaseSensitive(kv, "value") : NULL;
    bool ours = cJSON_IsString(val) && strcmp(val->valuestring, l->val_b64) == 0;
    cJSON_Delete(r);
    if (!ours)
        return end_term(l, "key_changed");
    return true;
}

bool tl_es_lease_leading(const tl_es_lease *l) {
    return l->leading;
}

void tl_es_lease_partition(tl_es_lease *l) {
    l->partitioned = true;
}

static int hexv(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int tl_es_lease_engine_id(const char *wal_dir, uint8_t id[TL_ES_ID_BYTES]) {
    char path[600], buf[40];
    snprintf(path, sizeof path, "%s/engine_id", wal_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            return -1;
        if (getrandom(id, TL_ES_ID_BYTES, 0) != (ssize_t)TL_ES_ID_BYTES)
            return -1;
        return 0;
    }
    /* 32 hex digits (and a newline): read until 32 arrived or end of file,
     * through short reads and EINTR. */
    size_t n = 0;
    while (n < sizeof buf) {
        ssize_t r = read(fd, buf + n, sizeof buf - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (n < 32)
        return -1;
    for (unsigned i = 0; i < TL_ES_ID_BYTES; i++) {
        int hi = hexv(buf[2 * i]), lo = hexv(buf[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        id[i] = (uint8_t)(hi << 4 | lo);
    }
    return 1;
}

void tl_es_lease_stats_json(const tl_es_lease *l, char *out, size_t cap) {
    snprintf(out, cap,
             "{\"terms\":%" PRIu64 ",\"campaigns\":%" PRIu64 ",\"keepalives\":%" PRIu64
             ",\"keepalive_failures\":%" PRIu64 ",\"fence\":%" PRIu64
             ",\"leading\":%s,\"stale\":%s,\"ended\":\"%s\"}",
             l->terms, l->campaigns, l->keepalives, l->keepalive_failures, l->fence,
             l->leading ? "true" : "false", l->stale_said ? "true" : "false", l->ended);
}

bool tl_es_lease_step(tl_es_lease *l, struct tl_engine *e, uint64_t now) {
    if (l->leading)
        return tl_es_lease_hold(l, now);
    if (now < l->next_campaign_ns)
        return false;
    l->next_campaign_ns = now + 200000000ull;
    uint64_t fence = 0;
    if (tl_es_lease_campaign(l, now, &fence) != 1)
        return false;
    /* A new term: LEADER_CHANGE{fence} before any record of it. */
    enum tl_engine_err rc = tl_engine_leader_change(e, fence, NULL);
    if (rc != TL_ENGINE_OK) {
        fprintf(stderr, "tally-enginesim: lease: LEADER_CHANGE to %" PRIu64 ": %s\n", fence,
                tl_engine_err_name(rc));
        l->leading = false;
        return false;
    }
    return true;
}
