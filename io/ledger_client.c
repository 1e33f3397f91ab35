/* ledger_client.c: the ledger watermark client (see ledger_client.h). */
#include "ledger_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assert.h"
#include "http_one.h"

#define MAX_BODY_LIMIT (16u << 20)

struct tl_ledger_client {
    CURLM *multi;
    CURL *easy;
    bool busy;
    bool have_key;
    uint8_t key[TL_LEDGER_KEY_BYTES];
    tl_http_body rx; /* the reply being received */
    char mac[TL_LEDGER_MAC_HEX + 1];
    size_t mac_len;
    bool mac_seen;
    bool mac_too_long;
};

const char *tl_lc_err_name(enum tl_lc_err e) {
    static const char *const names[TL_LC_ERR_COUNT] = {
        [TL_LC_OK] = "ok",
        [TL_LC_ERR_CONFIG] = "config",
        [TL_LC_ERR_CONNECT] = "connect",
        [TL_LC_ERR_TIMEOUT] = "timeout",
        [TL_LC_ERR_TLS] = "tls",
        [TL_LC_ERR_TRANSPORT] = "transport",
        [TL_LC_ERR_HTTP_STATUS] = "http_status",
        [TL_LC_ERR_TOO_LARGE] = "body_too_large",
        [TL_LC_ERR_MAC_MISSING] = "mac_missing",
        [TL_LC_ERR_MAC_MALFORMED] = "mac_malformed",
        [TL_LC_ERR_MAC_BAD] = "mac_bad",
        [TL_LC_ERR_KEY_OPEN] = "key_open",
        [TL_LC_ERR_KEY_NOT_REGULAR] = "key_not_regular",
        [TL_LC_ERR_KEY_PERMISSIONS] = "key_permissions",
        [TL_LC_ERR_KEY_SIZE] = "key_size",
        [TL_LC_ERR_KEY_READ] = "key_read",
    };
    return (unsigned)e < TL_LC_ERR_COUNT ? names[e] : "?";
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
    tl_ledger_client *c = arg;
    size_t bytes = size * n;
    /* A status line starts a response (after a 100 Continue, another one
     * follows): headers of an earlier one do not count. */
    if (bytes >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        c->mac_seen = false;
        c->mac_len = 0;
        c->mac_too_long = false;
        return bytes;
    }
    static const char name[] = "X-Tally-Mac:";
    size_t nl = sizeof name - 1;
    if (bytes < nl || strncasecmp(p, name, nl) != 0)
        return bytes;
    size_t i = nl, end = bytes;
    while (i < end && (p[i] == ' ' || p[i] == '\t'))
        i++;
    while (end > i &&
           (p[end - 1] == '\r' || p[end - 1] == '\n' || p[end - 1] == ' ' || p[end - 1] == '\t'))
        end--;
    c->mac_seen = true;
    if (end - i > TL_LEDGER_MAC_HEX) {
        c->mac_too_long = true;
        return bytes;
    }
    memcpy(c->mac, p + i, end - i);
    c->mac_len = end - i;
    c->mac[c->mac_len] = '\0';
    return bytes;
}

enum tl_lc_err tl_ledger_client_open(tl_ledger_client **out, const tl_ledger_client_cfg *cfg) {
    *out = NULL;
    if (cfg->url == NULL || cfg->url[0] == '\0' || cfg->timeout_ms == 0 ||
        cfg->max_body_bytes == 0 || cfg->max_body_bytes > MAX_BODY_LIMIT)
        return TL_LC_ERR_CONFIG;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return TL_LC_ERR_CONFIG;
    tl_ledger_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return TL_LC_ERR_CONFIG;
    c->rx.cap = cfg->max_body_bytes;
    c->rx.buf = malloc(c->rx.cap + 1);
    c->multi = curl_multi_init();
    c->easy = curl_easy_init();
    if (c->rx.buf == NULL || c->multi == NULL || c->easy == NULL) {
        tl_ledger_client_close(c);
        return TL_LC_ERR_CONFIG;
    }
    if (cfg->key != NULL) {
        memcpy(c->key, cfg->key, TL_LEDGER_KEY_BYTES);
        c->have_key = true;
    }
    CURL *e = c->easy;
    long t = cfg->timeout_ms > 0x7fffffff ? 0x7fffffff : (long)cfg->timeout_ms;
    bool ok = curl_easy_setopt(e, CURLOPT_URL, cfg->url) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK &&
              /* no signals: this runs on a thread of a daemon */
              curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, t) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->rx.cap) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, tl_http_body_write) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_WRITEDATA, &c->rx) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK &&
              curl_easy_setopt(e, CURLOPT_HEADERDATA, c) == CURLE_OK &&
              curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 1L) == CURLM_OK;
    if (ok && cfg->ca_file != NULL && cfg->ca_file[0] != '\0')
        ok = curl_easy_setopt(e, CURLOPT_CAINFO, cfg->ca_file) == CURLE_OK;
    if (!ok) {
        tl_ledger_client_close(c);
        return TL_LC_ERR_CONFIG;
    }
    *out = c;
    return TL_LC_OK;
}

void tl_ledger_client_close(tl_ledger_client *c) {
    if (c == NULL)
        return;
    if (c->busy)
        curl_multi_remove_handle(c->multi, c->easy);
    if (c->easy != NULL)
        curl_easy_cleanup(c->easy);
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    OPENSSL_cleanse(c->key, sizeof c->key);
    free(c->rx.buf);
    free(c);
}

bool tl_ledger_client_busy(const tl_ledger_client *c) {
    return c->busy;
}

bool tl_ledger_client_start(tl_ledger_client *c) {
    if (c->busy)
        return false;
    c->rx.len = 0;
    c->rx.too_large = false;
    c->mac_seen = false;
    c->mac_len = 0;
    c->mac_too_long = false;
    if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK)
        return false;
    c->busy = true;
    return true;
}

void tl_ledger_mac_hex(const uint8_t key[TL_LEDGER_KEY_BYTES], const void *body, size_t len,
                       char out[TL_LEDGER_MAC_HEX + 1]) {
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    uint8_t empty = 0;
    /* HMAC() takes no NULL data even for len 0. */
    const uint8_t *r =
        HMAC(EVP_sha256(), key, TL_LEDGER_KEY_BYTES, len ? body : &empty, len, mac, &n);
    TL_ASSERT(r != NULL && n == 32);
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[TL_LEDGER_MAC_HEX] = '\0';
}

static enum tl_lc_err verify_mac(const tl_ledger_client *c) {
    if (!c->mac_seen)
        return TL_LC_ERR_MAC_MISSING;
    if (c->mac_too_long || c->mac_len != TL_LEDGER_MAC_HEX)
        return TL_LC_ERR_MAC_MALFORMED;
    for (size_t i = 0; i < TL_LEDGER_MAC_HEX; i++) {
        char ch = c->mac[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return TL_LC_ERR_MAC_MALFORMED;
    }
    char want[TL_LEDGER_MAC_HEX + 1];
    tl_ledger_mac_hex(c->key, c->rx.buf, c->rx.len, want);
    return CRYPTO_memcmp(want, c->mac, TL_LEDGER_MAC_HEX) == 0 ? TL_LC_OK : TL_LC_ERR_MAC_BAD;
}

static enum tl_lc_err of_curl(CURLcode rc, bool too_large) {
    switch (rc) {
        case CURLE_OK:
            return TL_LC_OK;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
            return TL_LC_ERR_CONNECT;
        case CURLE_OPERATION_TIMEDOUT:
            return TL_LC_ERR_TIMEOUT;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS:
            return TL_LC_ERR_TLS;
        case CURLE_FILESIZE_EXCEEDED:
            return TL_LC_ERR_TOO_LARGE;
        case CURLE_WRITE_ERROR:
            return too_large ? TL_LC_ERR_TOO_LARGE : TL_LC_ERR_TRANSPORT;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
            return TL_LC_ERR_CONFIG;
        default:
            return TL_LC_ERR_TRANSPORT;
    }
}

bool tl_ledger_client_poll(tl_ledger_client *c, tl_ledger_response *r) {
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
    if (r->err == TL_LC_OK && r->http_status != 200)
        r->err = TL_LC_ERR_HTTP_STATUS;
    if (r->err == TL_LC_OK && c->have_key) {
        r->err = verify_mac(c);
        r->mac_verified = r->err == TL_LC_OK;
    }
    return true;
}

void tl_ledger_client_get(tl_ledger_client *c, tl_ledger_response *r) {
    memset(r, 0, sizeof *r);
    if (!tl_ledger_client_start(c)) {
        r->err = TL_LC_ERR_CONFIG;
        return;
    }
    /* Bounded by the transfer's own timeout: libcurl ends it with
     * CURLE_OPERATION_TIMEDOUT. */
    while (!tl_ledger_client_poll(c, r))
        (void)curl_multi_poll(c->multi, NULL, 0, 10, NULL);
}

enum tl_lc_err tl_ledger_key_load(const char *path, uint8_t key[TL_LEDGER_KEY_BYTES]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return TL_LC_ERR_KEY_OPEN;
    struct stat st;
    enum tl_lc_err e = TL_LC_OK;
    if (fstat(fd, &st) != 0)
        e = TL_LC_ERR_KEY_READ;
    else if (!S_ISREG(st.st_mode))
        e = TL_LC_ERR_KEY_NOT_REGULAR;
    else if ((st.st_mode & 077) != 0)
        e = TL_LC_ERR_KEY_PERMISSIONS;
    else if (st.st_size != TL_LEDGER_KEY_BYTES)
        e = TL_LC_ERR_KEY_SIZE;
    size_t got = 0;
    while (e == TL_LC_OK && got < TL_LEDGER_KEY_BYTES) {
        ssize_t n = read(fd, key + got, TL_LEDGER_KEY_BYTES - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            e = TL_LC_ERR_KEY_READ;
        else
            got += (size_t)n;
    }
    close(fd);
    if (e != TL_LC_OK)
        OPENSSL_cleanse(key, TL_LEDGER_KEY_BYTES);
    return e;
}
