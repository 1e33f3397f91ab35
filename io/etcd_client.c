/* etcd_client.c: etcd v3 JSON gateway client (see etcd_client.h). */
#include "etcd_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "http_one.h"
#include "core/lease.h"

#define MAX_BODY_LIMIT (1u << 20)

struct tl_etcd {
    CURLM *multi;
    CURL *easy;
    struct curl_slist *headers;
    bool busy;
    char endpoint[TL_ETCD_ENDPOINT_MAX];
    char url[TL_ETCD_ENDPOINT_MAX + 64];
    char req[TL_ETCD_REQUEST_MAX];
    size_t req_len;
    tl_http_body rx; /* the reply being received */
};

const char *tl_etcd_err_name(enum tl_etcd_err e) {
    static const char *const names[TL_ETCD_ERR_COUNT] = {
        [TL_ETCD_OK] = "ok",
        [TL_ETCD_ERR_CONFIG] = "config",
        [TL_ETCD_ERR_CONNECT] = "connect",
        [TL_ETCD_ERR_TIMEOUT] = "timeout",
        [TL_ETCD_ERR_TRANSPORT] = "transport",
        [TL_ETCD_ERR_HTTP_STATUS] = "http_status",
        [TL_ETCD_ERR_TOO_LARGE] = "body_too_large",
    };
    return (unsigned)e < TL_ETCD_ERR_COUNT ? names[e] : "?";
}

enum tl_etcd_err tl_etcd_open(tl_etcd **out, const tl_etcd_cfg *cfg) {
    *out = NULL;
    if (cfg->endpoint == NULL || cfg->endpoint[0] == '\0' ||
        strlen(cfg->endpoint) >= TL_ETCD_ENDPOINT_MAX || cfg->timeout_ms == 0 ||
        cfg->max_body_bytes == 0 || cfg->max_body_bytes > MAX_BODY_LIMIT)
        return TL_ETCD_ERR_CONFIG;
    if (strncmp(cfg->endpoint, "http://", 7) != 0 && strncmp(cfg->endpoint, "https://", 8) != 0)
        return TL_ETCD_ERR_CONFIG;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return TL_ETCD_ERR_CONFIG;
    tl_etcd *c = calloc(1, sizeof *c);
    if (c == NULL)
        return TL_ETCD_ERR_CONFIG;
    snprintf(c->endpoint, sizeof c->endpoint, "%s", cfg->endpoint);
    size_t el = strlen(c->endpoint);
    if (el > 0 && c->endpoint[el - 1] == '/')
        c->endpoint[el - 1] = '\0';
    c->rx.cap = cfg->max_body_bytes;
    c->rx.buf = malloc(c->rx.cap + 1);
    c->multi = curl_multi_init();
    c->easy = curl_easy_init();
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (c->rx.buf == NULL || c->multi == NULL || c->easy == NULL || c->headers == NULL) {
        tl_etcd_close(c);
        return TL_ETCD_ERR_CONFIG;
    }
    CURL *e = c->easy;
    long t = cfg->timeout_ms > 0x7fffffff ? 0x7fffffff : (long)cfg->timeout_ms;
    bool ok = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers) == CURLE_OK &&
              /* no signals: this runs on a thread of a daemon */
              curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, t) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->rx.cap) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, tl_http_body_write) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEDATA, &c->rx) == CURLE_OK &&
              curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 1L) == CURLM_OK;
    if (!ok) {
        tl_etcd_close(c);
        return TL_ETCD_ERR_CONFIG;
    }
    *out = c;
    return TL_ETCD_OK;
}

void tl_etcd_close(tl_etcd *c) {
    if (c == NULL)
        return;
    if (c->busy)
        curl_multi_remove_handle(c->multi, c->easy);
    if (c->easy != NULL)
        curl_easy_cleanup(c->easy);
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    curl_slist_free_all(c->headers);
    free(c->rx.buf);
    free(c);
}

bool tl_etcd_busy(const tl_etcd *c) {
    return c->busy;
}

bool tl_etcd_start(tl_etcd *c, const char *path, const char *json, size_t len) {
    if (c->busy || len > sizeof c->req || path == NULL || path[0] != '/')
        return false;
    int n = snprintf(c->url, sizeof c->url, "%s%s", c->endpoint, path);
    if (n < 0 || (size_t)n >= sizeof c->url)
        return false;
    /* The body is copied: libcurl reads it during the transfer. */
    memcpy(c->req, json, len);
    c->req_len = len;
    c->rx.len = 0;
    c->rx.too_large = false;
    if (curl_easy_setopt(c->easy, CURLOPT_URL, c->url) != CURLE_OK ||
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)len) != CURLE_OK ||
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->req) != CURLE_OK)
        return false;
    if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK)
        return false;
    c->busy = true;
    return true;
}

static enum tl_etcd_err of_curl(CURLcode rc, bool too_large) {
    switch (rc) {
        case CURLE_OK:
            return TL_ETCD_OK;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
            return TL_ETCD_ERR_CONNECT;
        case CURLE_OPERATION_TIMEDOUT:
            return TL_ETCD_ERR_TIMEOUT;
        case CURLE_FILESIZE_EXCEEDED:
            return TL_ETCD_ERR_TOO_LARGE;
        case CURLE_WRITE_ERROR:
            return too_large ? TL_ETCD_ERR_TOO_LARGE : TL_ETCD_ERR_TRANSPORT;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
            return TL_ETCD_ERR_CONFIG;
        default:
            return TL_ETCD_ERR_TRANSPORT;
    }
}

bool tl_etcd_poll(tl_etcd *c, tl_etcd_response *r) {
    if (!c->busy)
        return false;
    CURLcode rc = CURLE_OK;
    if (!tl_http_one_done(c->multi, c->easy, &rc))
        return false;
    c->busy = false;
    memset(r, 0, sizeof *r);
    r->curl_code = (int)rc;
    (void)curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &r->http_status);
    c->rx.buf[c->rx.len] = '\0';
    r->body = c->rx.buf;
    r->len = c->rx.len;
    r->err = of_curl(rc, c->rx.too_large);
    if (r->err == TL_ETCD_OK && r->http_status != 200)
        r->err = TL_ETCD_ERR_HTTP_STATUS;
    return true;
}

void tl_etcd_call(tl_etcd *c, const char *path, const char *json, size_t len, tl_etcd_response *r) {
    memset(r, 0, sizeof *r);
    if (!tl_etcd_start(c, path, json, len)) {
        r->err = TL_ETCD_ERR_CONFIG;
        return;
    }
    /* Bounded by the transfer's own timeout. */
    while (!tl_etcd_poll(c, r))
        (void)curl_multi_poll(c->multi, NULL, 0, 10, NULL);
}

size_t tl_etcd_range_body(const uint8_t *key, size_t key_len, char *out, size_t cap) {
    static const char head[] = "{\"key\":\"", tail[] = "\"}";
    size_t hl = sizeof head - 1, tl = sizeof tail - 1;
    if (cap < hl + tl + 1)
        return 0;
    memcpy(out, head, hl);
    size_t n = tl_b64_encode(key, key_len, out + hl, cap - hl - tl);
    if (n == 0 && key_len != 0)
        return 0;
    memcpy(out + hl + n, tail, tl + 1);
    return hl + n + tl;
}
