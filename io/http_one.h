/* http_one.h: what the libcurl clients of io/ share: one transfer at a
 * time on one easy handle in its own multi handle (one reused connection),
 * its reply body received into a buffer allocated at start-up.
 *
 * The ledger poller (io/ledger_client.c) and the lease poller
 * (io/etcd_client.c) both run on the control thread and must never block
 * it: they start a transfer, then poll it with tl_http_one_done. */
#ifndef TL_IO_HTTP_ONE_H
#define TL_IO_HTTP_ONE_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/* A reply body: at most cap bytes in buf (allocated cap + 1, so a NUL can
 * follow the body). A longer reply sets too_large and ends the transfer. */
typedef struct tl_http_body {
    char *buf;
    size_t len;
    size_t cap;
    bool too_large;
} tl_http_body;

/* CURLOPT_WRITEFUNCTION, with the tl_http_body as CURLOPT_WRITEDATA.
 * Returns 0 (CURLE_WRITE_ERROR: the transfer ends) past cap. */
size_t tl_http_body_write(char *p, size_t size, size_t n, void *body);

/* Drives the transfer of easy in multi without waiting. Once it has ended,
 * removes easy from multi, stores its result in *rc and returns true. */
bool tl_http_one_done(CURLM *multi, CURL *easy, CURLcode *rc);

#endif
