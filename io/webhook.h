/* webhook.h: alert delivery by HTTP POST to a few URLs (behavior.md "Action
 * table": alerts; issue 4.6), with libcurl multi, never blocking.
 *
 * A bounded FIFO of messages (JSON bodies) is shared by every URL; each URL
 * has its own cursor into it and its own easy handle (its own kept-alive
 * connection), and delivers in order: one POST in flight per URL, the next
 * only after the previous one ended. So every message reaches every URL
 * once, in the order posted, and a slow or dead URL holds back only its own
 * cursor, never another URL and never the caller.
 *
 * A POST that fails (transfer error, timeout, 408, 429, 5xx) is tried again
 * after an exponential backoff (backoff_min_ms doubling up to
 * backoff_max_ms), for as long as its message is in the FIFO. Any other
 * 4xx is definitive: counted failed and dropped, and the cursor moves on.
 * The FIFO holds `queue` messages: posting into a full one drops the oldest,
 * and every URL that had not delivered it counts it dropped (a message in
 * flight when dropped finishes its attempt, but is never retried).
 *
 * Memory is allocated at open (queue x TL_WEBHOOK_BODY_MAX bytes and one
 * send buffer per URL); libcurl allocates internally. One thread (tallyd's
 * control thread); tl_webhook_pass costs one curl_multi_perform.
 */
#ifndef TL_WEBHOOK_H
#define TL_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TL_WEBHOOK_URLS_MAX  8u
#define TL_WEBHOOK_BODY_MAX  4096u
#define TL_WEBHOOK_QUEUE_MAX 65536u /* messages: 256 MiB of bodies at most */

typedef struct tl_webhook_cfg {
    const char *const *urls; /* http:// or https:// */
    uint32_t url_count;      /* 1 .. TL_WEBHOOK_URLS_MAX */
    uint32_t queue;          /* messages kept, 1 .. TL_WEBHOOK_QUEUE_MAX */
    uint64_t timeout_ms;     /* one POST, connect and total */
    uint64_t backoff_min_ms; /* 0: 100 */
    uint64_t backoff_max_ms; /* 0: 10000 */
} tl_webhook_cfg;

/* Counters, summed over URLs (a message to two URLs counts twice). */
typedef struct tl_webhook_stats {
    uint64_t posted;  /* messages posted (once each) */
    uint64_t sent;    /* deliveries acknowledged with 2xx */
    uint64_t failed;  /* attempts that failed (each retry too) */
    uint64_t retried; /* attempts that were retries */
    uint64_t dropped; /* deliveries given up: the FIFO overflowed, or a definitive 4xx */
    uint64_t pending; /* deliveries still to make */
    uint64_t refused; /* tl_webhook_post refused the body (empty or over TL_WEBHOOK_BODY_MAX) */
    /* messages the caller could not build at all (tl_webhook_note_unformatted):
     * kept here so one block of counters accounts for every alert */
    uint64_t unformatted;
} tl_webhook_stats;

typedef struct tl_webhook tl_webhook;

/* Returns 0, or -1 with a message in err. */
int tl_webhook_open(tl_webhook **out, const tl_webhook_cfg *cfg, char *err, size_t err_cap);
/* NULL is a no-op. Transfers in flight are abandoned. */
void tl_webhook_close(tl_webhook *w);

/* Queues one message for every URL (copied). False (nothing queued) if it
 * is empty or longer than TL_WEBHOOK_BODY_MAX. Never blocks. */
bool tl_webhook_post(tl_webhook *w, const char *body, size_t len);

/* The caller had a message to send and could not build it (counted). */
void tl_webhook_note_unformatted(tl_webhook *w);

/* Drives the transfers and starts what is due. Never blocks. */
void tl_webhook_pass(tl_webhook *w, uint64_t now_mono_ns);

/* Passes until nothing is pending or timeout_ms passed, waiting in
 * curl_multi_poll (at stop). */
void tl_webhook_flush(tl_webhook *w, uint64_t timeout_ms);

/* The counters, kept up to date by every call above. */
const tl_webhook_stats *tl_webhook_stats_of(const tl_webhook *w);

#endif
