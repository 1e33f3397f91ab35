/* ledger_poll.c: the ledger poller on tallyd's control thread (see
 * ledger_poll.h). */
#include "log.h"
#include "ledger_poll.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/assert.h"

struct tl_ledger_poll {
    tl_ledger_client *client;
    tl_spsc *q;
    uint64_t poll_ns;
    uint64_t next_ns;
    uint64_t poll_id;
    int last_reason; /* 0 ok, > 0 tl_lc_err, < 0 -tl_ledger_err: what was logged last */
    tl_ledger_poll_stats st;
    tl_ledger_wm scratch; /* the reply being parsed */
    /* The newest reply accepted (parsed, mac checked, queued to the loop),
     * for POST /reconcile, which takes its copy on this same thread. */
    tl_ledger_wm last;
    bool have_last;
};

static uint64_t clock_of(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tl_ledger_poll_loop_cfg(const tl_config *c, tl_loop_cfg *lc) {
    tl_ledger_cfg *g = &lc->ledger;
    tl_ledger_cfg_defaults(g);
    g->enabled = c->ledger_url[0] != '\0';
    g->max_age_ms = c->ledger_max_age_ms;
    g->ahead_slack = c->ledger_ahead_slack;
    g->lag_throttle_ms = c->ledger_lag_throttle_ms;
    g->lag_halt_ms = c->ledger_lag_halt_ms;
    g->confirmations = (uint32_t)c->policy_confirmations;
    /* Unposted trades: at most one per record of the window (a reply
     * further behind is below the window anyway); half of it is plenty for
     * a log where at most every other record is a trade, and a full FIFO
     * only makes older replies unchecked (ledger.h). */
    uint64_t fifo = lc->window_records / 2;
    g->fifo_trades = fifo >= 2 ? fifo : 2;
}

int tl_ledger_poll_open(tl_ledger_poll **out, const tl_config *c, tl_spsc *q, char *err,
                        size_t err_cap) {
    *out = NULL;
    if (c->ledger_url[0] == '\0')
        return 0;
    TL_ASSERT(q->slot_bytes == sizeof(tl_ledger_wm));
    tl_ledger_poll *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(err, err_cap, "ledger: out of memory");
        return -1;
    }
    uint8_t key[TL_LEDGER_KEY_BYTES];
    bool have_key = c->keys_ledger[0] != '\0';
    if (have_key) {
        enum tl_lc_err ke = tl_ledger_key_load(c->keys_ledger, key);
        if (ke != TL_LC_OK) {
            snprintf(err, err_cap, "keys.ledger %s: %s", c->keys_ledger, tl_lc_err_name(ke));
            free(p);
            return -1;
        }
    }
    tl_ledger_client_cfg cc = {
        .url = c->ledger_url,
        .ca_file = c->ledger_ca_file,
        .timeout_ms = c->ledger_timeout_ms,
        .max_body_bytes = TL_LEDGER_BODY_MAX,
        .key = have_key ? key : NULL,
    };
    enum tl_lc_err e = tl_ledger_client_open(&p->client, &cc);
    OPENSSL_cleanse(key, sizeof key);
    if (e != TL_LC_OK) {
        snprintf(err, err_cap, "ledger.url %s: %s", c->ledger_url, tl_lc_err_name(e));
        free(p);
        return -1;
    }
    p->q = q;
    p->poll_ns = c->ledger_poll_ms * 1000000ull;
    *out = p;
    return 0;
}

void tl_ledger_poll_close(tl_ledger_poll *p) {
    if (p == NULL)
        return;
    tl_ledger_client_close(p->client);
    free(p);
}

/* Logs a change of outcome: 0 = accepted, > 0 a tl_lc_err, < 0 a parse error. */
static void outcome(tl_ledger_poll *p, int reason, const tl_ledger_response *r,
                    const char *member) {
    if (reason == p->last_reason)
        return;
    p->last_reason = reason;
    if (reason == 0)
        tl_logf("tallyd: ledger: replies accepted (ledger_seq %llu)",
                (unsigned long long)p->st.last_ledger_seq);
    else if (reason > 0)
        tl_logf("tallyd: ledger: replies rejected: %s (http %ld, curl %d)",
                tl_lc_err_name((enum tl_lc_err)reason), r->http_status, r->curl_code);
    else
        tl_logf("tallyd: ledger: replies rejected: %s at %s",
                tl_ledger_err_name((enum tl_ledger_err) - reason),
                member != NULL ? member : "(reply)");
}

static void finished(tl_ledger_poll *p, const tl_ledger_response *r) {
    /* The receive time: now, right after the transfer completed. */
    uint64_t mono = clock_of(CLOCK_MONOTONIC), real = clock_of(CLOCK_REALTIME);
    if (r->err != TL_LC_OK) {
        p->st.rejected[r->err]++;
        outcome(p, (int)r->err, r, NULL);
        return;
    }
    const char *member = "";
    enum tl_ledger_err pe = tl_ledger_parse(r->body, r->len, &p->scratch, &member);
    if (pe != TL_LEDGER_OK) {
        p->st.parse_rejected[pe]++;
        outcome(p, -(int)pe, r, member);
        return;
    }
    p->scratch.poll_id = ++p->poll_id;
    p->scratch.recv_mono_ns = mono;
    p->scratch.recv_real_ns = real;
    if (!tl_spsc_push(p->q, &p->scratch)) {
        p->st.queue_full++;
        return;
    }
    p->st.replies_ok++;
    p->st.last_ok_mono_ns = mono;
    p->st.last_ledger_seq = p->scratch.ledger_seq;
    memcpy(&p->last, &p->scratch, sizeof p->last);
    p->have_last = true;
    outcome(p, 0, r, NULL);
}

void tl_ledger_poll_pass(tl_ledger_poll *p, uint64_t now_mono_ns) {
    if (p == NULL)
        return;
    tl_ledger_response r;
    if (tl_ledger_client_busy(p->client) && tl_ledger_client_poll(p->client, &r))
        finished(p, &r);
    if (now_mono_ns < p->next_ns)
        return;
    /* Due: every poll_ms from the last start; a slow reply delays the next
     * start (one GET at a time on the one connection). */
    if (tl_ledger_client_busy(p->client)) {
        p->st.busy_skips++;
        p->next_ns = now_mono_ns + p->poll_ns;
        return;
    }
    p->next_ns =
        p->next_ns + p->poll_ns > now_mono_ns ? p->next_ns + p->poll_ns : now_mono_ns + p->poll_ns;
    if (tl_ledger_client_start(p->client)) {
        p->st.polls++;
        /* Drive it at once: a local ledger often answers within this call. */
        if (tl_ledger_client_poll(p->client, &r))
            finished(p, &r);
    }
}

bool tl_ledger_poll_last(const tl_ledger_poll *p, tl_ledger_wm *out) {
    if (p == NULL || !p->have_last)
        return false;
    memcpy(out, &p->last, sizeof *out);
    return true;
}

void tl_ledger_poll_get_stats(const tl_ledger_poll *p, tl_ledger_poll_stats *out) {
    *out = p->st;
}

void tl_ledger_poll_summary(const tl_ledger_poll *p, char *buf, size_t cap) {
    uint64_t rej = 0;
    for (int i = 0; i < TL_LC_ERR_COUNT; i++)
        rej += p->st.rejected[i];
    for (int i = 0; i < TL_LEDGER_ERR_COUNT; i++)
        rej += p->st.parse_rejected[i];
    snprintf(buf, cap, "polls=%llu ok=%llu rejected=%llu queue_full=%llu busy_skips=%llu",
             (unsigned long long)p->st.polls, (unsigned long long)p->st.replies_ok,
             (unsigned long long)rej, (unsigned long long)p->st.queue_full,
             (unsigned long long)p->st.busy_skips);
}
