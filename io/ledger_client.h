/* ledger_client.h: the HTTP(S) client of the settlement ledger's watermark
 * (ledger.md): `GET /v1/watermark` over one reused libcurl connection.
 *
 * Non-blocking: one easy handle lives in a curl multi handle, and the caller
 * (tallyd's control thread, admin/ledger_poll.c) starts a GET and then
 * drives it with tl_ledger_client_poll() on each of its passes. A slow or
 * hanging server therefore never stalls the caller: each GET is bounded by
 * timeout_ms (connect and total), and until then the caller's pass costs one
 * curl_multi_perform. The connection stays in the multi handle's cache and is
 * reused by the next GET (HTTP keep-alive).
 *
 * What a reply must pass here, each failure a named tl_lc_err:
 *   - the transfer: connect, TLS (peer and host verified; ca_file names the
 *     CA bundle, e.g. a self-signed certificate), timeout;
 *   - status 200;
 *   - at most max_body_bytes of body (a larger Content-Length is refused
 *     before the body, a longer body is cut off);
 *   - when a ledger key is configured: an `X-Tally-Mac` header of 64
 *     lowercase hex digits equal to HMAC-SHA256(key, the exact body bytes),
 *     compared in constant time. Without a key the header is ignored.
 * The body itself is parsed by core/ledger.h's tl_ledger_parse.
 *
 * Allocation happens at open (the body buffer is max_body_bytes); libcurl
 * allocates internally. Control thread only; not for the hot loop.
 */
#ifndef TL_LEDGER_CLIENT_H
#define TL_LEDGER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TL_LEDGER_KEY_BYTES 32u
#define TL_LEDGER_MAC_HEX   64u

enum tl_lc_err {
    TL_LC_OK = 0,
    TL_LC_ERR_CONFIG,          /* config: bad URL, ca_file, or libcurl would not start */
    TL_LC_ERR_CONNECT,         /* connect: refused, unreachable, cannot resolve */
    TL_LC_ERR_TIMEOUT,         /* timeout: no complete reply within timeout_ms */
    TL_LC_ERR_TLS,             /* tls: handshake or certificate verification failed */
    TL_LC_ERR_TRANSPORT,       /* transport: any other transfer error */
    TL_LC_ERR_HTTP_STATUS,     /* http_status: not 200 */
    TL_LC_ERR_TOO_LARGE,       /* body_too_large: over max_body_bytes */
    TL_LC_ERR_MAC_MISSING,     /* mac_missing: a key is configured, no X-Tally-Mac */
    TL_LC_ERR_MAC_MALFORMED,   /* mac_malformed: not 64 lowercase hex digits */
    TL_LC_ERR_MAC_BAD,         /* mac_bad: does not verify with the ledger key */
    TL_LC_ERR_KEY_OPEN,        /* key_open: the key file cannot be opened */
    TL_LC_ERR_KEY_NOT_REGULAR, /* key_not_regular */
    TL_LC_ERR_KEY_PERMISSIONS, /* key_permissions: group or other may access it */
    TL_LC_ERR_KEY_SIZE,        /* key_size: not exactly 32 bytes */
    TL_LC_ERR_KEY_READ,        /* key_read */
    TL_LC_ERR_COUNT,
};

const char *tl_lc_err_name(enum tl_lc_err e);

typedef struct tl_ledger_client_cfg {
    const char *url;         /* http:// or https:// */
    const char *ca_file;     /* NULL or "" = the system's CAs */
    uint64_t timeout_ms;     /* connect and total, per GET; >= 1 */
    uint32_t max_body_bytes; /* 1 .. 16 MiB */
    const uint8_t *key;      /* TL_LEDGER_KEY_BYTES, or NULL: no mac required (copied) */
} tl_ledger_client_cfg;

typedef struct tl_ledger_client tl_ledger_client;

/* On error *out is NULL. */
enum tl_lc_err tl_ledger_client_open(tl_ledger_client **out, const tl_ledger_client_cfg *cfg);
/* Wipes the key. NULL is a no-op. */
void tl_ledger_client_close(tl_ledger_client *c);

/* A finished GET. body points into the client and stays valid until the
 * next start. */
typedef struct tl_ledger_response {
    enum tl_lc_err err;
    long http_status; /* 0 if none arrived */
    int curl_code;    /* CURLcode of the transfer */
    const char *body;
    size_t len;
    bool mac_verified; /* a key is configured and the mac verified */
} tl_ledger_response;

/* True while a GET is in flight. */
bool tl_ledger_client_busy(const tl_ledger_client *c);
/* Starts one GET. False (nothing started) if one is in flight or libcurl
 * refused. */
bool tl_ledger_client_start(tl_ledger_client *c);
/* Drives the GET in flight without blocking. True when it finished: *r
 * says how. */
bool tl_ledger_client_poll(tl_ledger_client *c, tl_ledger_response *r);
/* One whole GET, waiting up to the timeout (tools and tests). */
void tl_ledger_client_get(tl_ledger_client *c, tl_ledger_response *r);

/* Loads a key file: a regular file of exactly 32 bytes with no group or
 * other permission bits (as engine-admin.md's keys). */
enum tl_lc_err tl_ledger_key_load(const char *path, uint8_t key[TL_LEDGER_KEY_BYTES]);

/* Lowercase hex HMAC-SHA256(key, body), NUL-terminated (the ledger's side,
 * for tally-ledgersim and tests). */
void tl_ledger_mac_hex(const uint8_t key[TL_LEDGER_KEY_BYTES], const void *body, size_t len,
                       char out[TL_LEDGER_MAC_HEX + 1]);

#endif
