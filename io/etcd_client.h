/* etcd_client.h: a client of etcd v3's JSON gateway (ledger.md "Lease
 * authority"): POST <endpoint><path> with a JSON body, over one reused
 * libcurl connection.
 *
 * Non-blocking, like io/ledger_client.h: one easy handle lives in a curl
 * multi handle; the caller (tallyd's control thread, admin/lease_poll.c)
 * starts a request and drives it with tl_etcd_poll() on each pass. Each
 * request is bounded by timeout_ms (connect and total), so a slow or dead
 * etcd never stalls the caller, and the connection stays in the multi
 * handle's cache for the next request (HTTP keep-alive). tl_etcd_call()
 * does one whole request, waiting (tools, tests, the engine simulator's
 * election).
 *
 * What a reply must pass here, each failure a named tl_etcd_err: the
 * transfer (connect, timeout), status 200, at most max_body_bytes. The body
 * is the caller's to parse (core/lease.h's tl_lease_parse for a range).
 *
 * Allocation happens at open. Control thread only; not for the hot loop.
 */
#ifndef TL_ETCD_CLIENT_H
#define TL_ETCD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tl_etcd_err {
    TL_ETCD_OK = 0,
    TL_ETCD_ERR_CONFIG,      /* config: bad endpoint or path, or libcurl would not start */
    TL_ETCD_ERR_CONNECT,     /* connect: refused, unreachable, cannot resolve */
    TL_ETCD_ERR_TIMEOUT,     /* timeout: no complete reply within timeout_ms */
    TL_ETCD_ERR_TRANSPORT,   /* transport: any other transfer error */
    TL_ETCD_ERR_HTTP_STATUS, /* http_status: not 200 */
    TL_ETCD_ERR_TOO_LARGE,   /* body_too_large: over max_body_bytes */
    TL_ETCD_ERR_COUNT,
};

const char *tl_etcd_err_name(enum tl_etcd_err e);

#define TL_ETCD_ENDPOINT_MAX 256u
#define TL_ETCD_REQUEST_MAX  4096u /* request body bytes */

typedef struct tl_etcd_cfg {
    const char *endpoint;    /* http://host:port (no trailing path) */
    uint64_t timeout_ms;     /* connect and total, per request; >= 1 */
    uint32_t max_body_bytes; /* reply bytes, 1 .. 1 MiB */
} tl_etcd_cfg;

typedef struct tl_etcd tl_etcd;

/* On error *out is NULL. */
enum tl_etcd_err tl_etcd_open(tl_etcd **out, const tl_etcd_cfg *cfg);
/* NULL is a no-op. */
void tl_etcd_close(tl_etcd *c);

/* A finished request. body points into the client and stays valid (and
 * NUL-terminated) until the next start. */
typedef struct tl_etcd_response {
    enum tl_etcd_err err;
    long http_status; /* 0 if none arrived */
    int curl_code;    /* CURLcode of the transfer */
    const char *body;
    size_t len;
} tl_etcd_response;

bool tl_etcd_busy(const tl_etcd *c);
/* Starts POST endpoint+path (e.g. "/v3/kv/range") with the JSON body (at
 * most TL_ETCD_REQUEST_MAX bytes, copied). False (nothing started) if one
 * is in flight, the body is too long, or libcurl refused. */
bool tl_etcd_start(tl_etcd *c, const char *path, const char *json, size_t len);
/* Drives the request in flight without blocking. True when it finished:
 * *r says how. */
bool tl_etcd_poll(tl_etcd *c, tl_etcd_response *r);
/* One whole request, waiting up to the timeout. */
void tl_etcd_call(tl_etcd *c, const char *path, const char *json, size_t len, tl_etcd_response *r);

/* The range request for one key: {"key":"<base64>"}; returns its length, or
 * 0 if it does not fit cap. */
size_t tl_etcd_range_body(const uint8_t *key, size_t key_len, char *out, size_t cap);

#endif
