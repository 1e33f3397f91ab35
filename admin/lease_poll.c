/* lease_poll.c: the lease poller on tallyd's control thread (see
 * lease_poll.h). */
#include "log.h"
#include "lease_poll.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"

struct tl_lease_poll {
    tl_etcd *client;
    tl_spsc *q;
    uint8_t key[TL_LEASE_KEY_MAX];
    size_t key_len;
    char req[TL_LEASE_KEY_MAX * 2];
    size_t req_len;
    uint64_t poll_ns;
    uint64_t next_ns;
    uint64_t poll_id;
    int last_reason; /* 0 ok, > 0 tl_etcd_err, < 0 -tl_lease_err: what was logged last */
    tl_lease_poll_stats st;
};

static uint64_t clock_of(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void tl_lease_poll_loop_cfg(const tl_config *c, tl_loop_cfg *lc) {
    tl_lease_cfg *g = &lc->lease;
    tl_lease_cfg_defaults(g);
    g->enabled = c->lease_endpoint[0] != '\0';
    g->grace_ms = c->lease_grace_ms;
    g->confirmations = (uint32_t)c->policy_confirmations;
    /* Silence: the poller reports every request's outcome within
     * timeout_ms, so nothing at all for two timeouts and four periods
     * means the poller (the control thread) is stuck. */
    uint64_t s = 2 * c->lease_timeout_ms + 4 * c->lease_poll_ms;
    g->stale_ms = s < 500 ? 500 : s;
}

int tl_lease_poll_open(tl_lease_poll **out, const tl_config *c, tl_spsc *q, char *err,
                       size_t err_cap) {
    *out = NULL;
    if (c->lease_endpoint[0] == '\0')
        return 0;
    size_t kl = strlen(c->lease_key);
    if (kl == 0 || kl > TL_LEASE_KEY_MAX) {
        snprintf(err, err_cap,
                 "lease.key: expected the leader key (1..%u bytes) with lease.endpoint",
                 TL_LEASE_KEY_MAX);
        return -1;
    }
    TL_ASSERT(q->slot_bytes == sizeof(tl_lease_reading));
    tl_lease_poll *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(err, err_cap, "lease: out of memory");
        return -1;
    }
    memcpy(p->key, c->lease_key, kl);
    p->key_len = kl;
    p->req_len = tl_etcd_range_body(p->key, kl, p->req, sizeof p->req);
    TL_ASSERT(p->req_len > 0);
    tl_etcd_cfg ec = {
        .endpoint = c->lease_endpoint,
        .timeout_ms = c->lease_timeout_ms,
        .max_body_bytes = TL_LEASE_BODY_MAX,
    };
    enum tl_etcd_err e = tl_etcd_open(&p->client, &ec);
    if (e != TL_ETCD_OK) {
        snprintf(err, err_cap, "lease.endpoint %s: %s", c->lease_endpoint, tl_etcd_err_name(e));
        free(p);
        return -1;
    }
    p->q = q;
    p->poll_ns = c->lease_poll_ms * 1000000ull;
    *out = p;
    return 0;
}

void tl_lease_poll_close(tl_lease_poll *p) {
    if (p == NULL)
        return;
    tl_etcd_close(p->client);
    free(p);
}

/* Logs a change of outcome: 0 = accepted, > 0 a tl_etcd_err, < 0 a parse error. */
static void outcome(tl_lease_poll *p, int reason, const tl_etcd_response *r, const char *member) {
    if (reason == p->last_reason)
        return;
    p->last_reason = reason;
    if (reason == 0)
        tl_logf("tallyd: lease: readings accepted (revision %llu)",
                (unsigned long long)p->st.last_revision);
    else if (reason > 0)
        tl_logf("tallyd: lease: etcd unreachable: %s (http %ld, curl %d)",
                tl_etcd_err_name((enum tl_etcd_err)reason), r->http_status, r->curl_code);
    else
        tl_logf("tallyd: lease: replies rejected: %s at %s",
                tl_lease_err_name((enum tl_lease_err) - reason),
                member != NULL ? member : "(reply)");
}

static void push(tl_lease_poll *p, tl_lease_reading *rd) {
    rd->poll_id = ++p->poll_id;
    if (!tl_spsc_push(p->q, rd))
        p->st.queue_full++;
}

static void finished(tl_lease_poll *p, const tl_etcd_response *r) {
    /* The receive time: now, right after the transfer completed. */
    tl_lease_reading rd;
    memset(&rd, 0, sizeof rd);
    rd.recv_mono_ns = clock_of(CLOCK_MONOTONIC);
    rd.recv_real_ns = clock_of(CLOCK_REALTIME);
    if (r->err != TL_ETCD_OK) {
        p->st.failed[r->err]++;
        outcome(p, (int)r->err, r, NULL);
        rd.fail = TL_LEASE_FAIL_UNREACHABLE;
        rd.detail = (uint16_t)r->err;
        push(p, &rd);
        return;
    }
    const char *member = "";
    uint64_t mono = rd.recv_mono_ns, real = rd.recv_real_ns;
    enum tl_lease_err pe = tl_lease_parse(r->body, r->len, p->key, p->key_len, &rd, &member);
    if (pe != TL_LEASE_OK) {
        p->st.parse_rejected[pe]++;
        outcome(p, -(int)pe, r, member);
        memset(&rd, 0, sizeof rd);
        rd.recv_mono_ns = mono;
        rd.recv_real_ns = real;
        rd.fail = TL_LEASE_FAIL_REJECTED;
        rd.detail = (uint16_t)pe;
        push(p, &rd);
        return;
    }
    rd.recv_mono_ns = mono;
    rd.recv_real_ns = real;
    p->st.readings_ok++;
    p->st.last_ok_mono_ns = mono;
    p->st.last_revision = rd.revision;
    push(p, &rd);
    outcome(p, 0, r, NULL);
}

void tl_lease_poll_pass(tl_lease_poll *p, uint64_t now_mono_ns) {
    if (p == NULL)
        return;
    tl_etcd_response r;
    if (tl_etcd_busy(p->client) && tl_etcd_poll(p->client, &r))
        finished(p, &r);
    if (now_mono_ns < p->next_ns)
        return;
    /* Due: every poll_ms from the last start; a slow reply delays the next
     * start (one request at a time on the one connection). */
    if (tl_etcd_busy(p->client)) {
        p->st.busy_skips++;
        p->next_ns = now_mono_ns + p->poll_ns;
        return;
    }
    p->next_ns =
        p->next_ns + p->poll_ns > now_mono_ns ? p->next_ns + p->poll_ns : now_mono_ns + p->poll_ns;
    if (tl_etcd_start(p->client, "/v3/kv/range", p->req, p->req_len)) {
        p->st.polls++;
        if (tl_etcd_poll(p->client, &r)) /* a local etcd may answer at once */
            finished(p, &r);
        return;
    }
    /* libcurl refused to start (nothing is in flight, the body fits): no
     * reading can come of this poll. It still reaches the loop as a failed
     * one, so refusals in a row make LEASE_UNREACHABLE like any other
     * failure instead of leaving the loop's silence check to notice. */
    p->st.start_refused++;
    memset(&r, 0, sizeof r);
    r.err = TL_ETCD_ERR_CONFIG;
    r.body = "";
    finished(p, &r);
}

const tl_lease_poll_stats *tl_lease_poll_stats_of(const tl_lease_poll *p) {
    return &p->st;
}

void tl_lease_poll_get_stats(const tl_lease_poll *p, tl_lease_poll_stats *out) {
    *out = p->st;
}
