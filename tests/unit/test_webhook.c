/* test_webhook.c: alert delivery (io/webhook.h) against real HTTP servers on
 * 127.0.0.1 (a small keep-alive server on a thread of this test, answering
 * scripted statuses): in order and once per URL, retries with backoff on
 * 5xx and timeouts, a 4xx dropped for good, the bounded FIFO dropping its
 * oldest, a dead URL holding up nothing; and the two alert shapes of
 * admin/alerts.h (tally, Alertmanager). */
#include "testutil.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "admin/alerts.h"
#include "io/webhook.h"

/* ---- a scripted HTTP/1.1 server ---- */

#define SRV_BODIES 256
#define SRV_SCRIPT 64

typedef struct srv {
    int lfd;
    uint16_t port;
    pthread_t th;
    _Atomic bool stop;
    /* script: the status of request i (0: 200); after it, 200 */
    int script[SRV_SCRIPT];
    uint32_t delay_ms; /* before each answer */
    /* what came */
    pthread_mutex_t mu;
    uint32_t requests;
    uint32_t accepted; /* 2xx bodies */
    char *bodies[SRV_BODIES];
} srv;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reads one request from fd (keep-alive); false at EOF or stop. */
static bool one_request(srv *s, int fd, char *buf, size_t cap, size_t *have) {
    for (;;) {
        char *end = memmem(buf, *have, "\r\n\r\n", 4);
        if (end != NULL) {
            size_t hl = (size_t)(end - buf) + 4;
            size_t cl = 0;
            char *p = strcasestr(buf, "Content-Length:");
            if (p != NULL && p < end)
                cl = strtoul(p + 15, NULL, 10);
            if (*have >= hl + cl) {
                pthread_mutex_lock(&s->mu);
                uint32_t i = s->requests++;
                int status = i < SRV_SCRIPT && s->script[i] != 0 ? s->script[i] : 200;
                if (status / 100 == 2 && s->accepted < SRV_BODIES) {
                    s->bodies[s->accepted] = strndup(buf + hl, cl);
                    s->accepted++;
                }
                pthread_mutex_unlock(&s->mu);
                if (s->delay_ms != 0)
                    usleep(s->delay_ms * 1000u);
                char reply[128];
                int n = snprintf(reply, sizeof reply,
                                 "HTTP/1.1 %d X\r\nContent-Length: 2\r\nContent-Type: "
                                 "application/json\r\n\r\n{}",
                                 status);
                if (write(fd, reply, (size_t)n) != n)
                    return false;
                memmove(buf, buf + hl + cl, *have - hl - cl);
                *have -= hl + cl;
                return true;
            }
        }
        if (*have == cap)
            return false;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 20) <= 0) {
            if (atomic_load(&s->stop))
                return false;
            continue;
        }
        ssize_t r = read(fd, buf + *have, cap - *have);
        if (r <= 0)
            return false;
        *have += (size_t)r;
    }
}

static void *srv_main(void *arg) {
    srv *s = arg;
    static __thread char buf[65536];
    while (!atomic_load(&s->stop)) {
        struct pollfd pf = {s->lfd, POLLIN, 0};
        if (poll(&pf, 1, 20) <= 0)
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        size_t have = 0;
        while (one_request(s, fd, buf, sizeof buf, &have))
            ;
        close(fd);
    }
    return NULL;
}

static void srv_start(srv *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    socklen_t al = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(srv *s) {
    atomic_store(&s->stop, true);
    pthread_join(s->th, NULL);
    close(s->lfd);
    for (uint32_t i = 0; i < s->accepted; i++)
        free(s->bodies[i]);
}

static void url_of(const srv *s, char *out, size_t cap) {
    snprintf(out, cap, "http://127.0.0.1:%u/hook", s->port);
}

/* A port nothing listens on. */
static uint16_t dead_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

static tl_webhook *open_hook(const char *const *urls, uint32_t n, uint32_t queue,
                             uint64_t timeout_ms) {
    tl_webhook_cfg c = {.urls = urls,
                        .url_count = n,
                        .queue = queue,
                        .timeout_ms = timeout_ms,
                        .backoff_min_ms = 20,
                        .backoff_max_ms = 200};
    tl_webhook *w = NULL;
    char err[256];
    assert_int_equal(tl_webhook_open(&w, &c, err, sizeof err), 0);
    return w;
}

static void post_n(tl_webhook *w, int from, int n) {
    for (int i = from; i < from + n; i++) {
        char b[64];
        int len = snprintf(b, sizeof b, "{\"n\":%d}", i);
        assert_true(tl_webhook_post(w, b, (size_t)len));
    }
}

/* Passes until pending is `left` or 10 s passed. */
static void drive(tl_webhook *w, uint64_t left) {
    uint64_t until = now_ns() + 10000000000ull;
    while (tl_webhook_stats_of(w)->pending > left && now_ns() < until) {
        tl_webhook_pass(w, now_ns());
        usleep(1000);
    }
    assert_int_equal(tl_webhook_stats_of(w)->pending, left);
}

static void assert_bodies(srv *s, int from, int n) {
    pthread_mutex_lock(&s->mu);
    assert_int_equal(s->accepted, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof want, "{\"n\":%d}", from + i);
        assert_string_equal(s->bodies[i], want);
    }
    pthread_mutex_unlock(&s->mu);
}

static void test_in_order_once(void **state) {
    (void)state;
    srv a, b;
    srv_start(&a);
    srv_start(&b);
    char ua[64], ub[64];
    url_of(&a, ua, sizeof ua);
    url_of(&b, ub, sizeof ub);
    const char *urls[] = {ua, ub};
    tl_webhook *w = open_hook(urls, 2, 64, 2000);
    post_n(w, 0, 30);
    assert_int_equal(tl_webhook_stats_of(w)->pending, 60);
    drive(w, 0);
    assert_bodies(&a, 0, 30);
    assert_bodies(&b, 0, 30);
    const tl_webhook_stats *st = tl_webhook_stats_of(w);
    assert_int_equal(st->posted, 30);
    assert_int_equal(st->sent, 60);
    assert_int_equal(st->failed, 0);
    assert_int_equal(st->retried, 0);
    assert_int_equal(st->dropped, 0);
    /* bad sizes are refused, nothing queued */
    static char big[TL_WEBHOOK_BODY_MAX + 1];
    memset(big, 'x', sizeof big);
    assert_false(tl_webhook_post(w, big, sizeof big));
    assert_false(tl_webhook_post(w, "{}", 0));
    assert_int_equal(st->posted, 30);
    assert_int_equal(st->refused, 2); /* counted: tally_webhook_refused_total{reason="invalid"} */
    tl_webhook_note_unformatted(w);
    assert_int_equal(st->unformatted, 1);
    tl_webhook_close(w);
    srv_stop(&a);
    srv_stop(&b);
}

static void test_retries_and_refusals(void **state) {
    (void)state;
    srv a;
    srv_start(&a);
    /* message 0: 500, 503, then 200; message 1: 400 (definitive); message
     * 2: 429 then 200 */
    a.script[0] = 500;
    a.script[1] = 503;
    a.script[3] = 400;
    a.script[4] = 429;
    char ua[64];
    url_of(&a, ua, sizeof ua);
    const char *urls[] = {ua};
    tl_webhook *w = open_hook(urls, 1, 16, 2000);
    post_n(w, 0, 4);
    drive(w, 0);
    pthread_mutex_lock(&a.mu);
    assert_int_equal(a.requests, 7);
    assert_int_equal(a.accepted, 3);
    assert_string_equal(a.bodies[0], "{\"n\":0}");
    assert_string_equal(a.bodies[1], "{\"n\":2}");
    assert_string_equal(a.bodies[2], "{\"n\":3}");
    pthread_mutex_unlock(&a.mu);
    const tl_webhook_stats *st = tl_webhook_stats_of(w);
    assert_int_equal(st->sent, 3);
    assert_int_equal(st->failed, 4);
    assert_int_equal(st->retried, 3);
    assert_int_equal(st->dropped, 1);
    tl_webhook_close(w);
    srv_stop(&a);
}

static void test_timeout_retried(void **state) {
    (void)state;
    srv a;
    srv_start(&a);
    a.delay_ms = 300; /* longer than the timeout */
    char ua[64];
    url_of(&a, ua, sizeof ua);
    const char *urls[] = {ua};
    tl_webhook *w = open_hook(urls, 1, 16, 100);
    post_n(w, 0, 1);
    uint64_t until = now_ns() + 10000000000ull;
    while (tl_webhook_stats_of(w)->failed == 0 && now_ns() < until) {
        tl_webhook_pass(w, now_ns());
        usleep(1000);
    }
    assert_true(tl_webhook_stats_of(w)->failed >= 1);
    a.delay_ms = 0;
    drive(w, 0);
    assert_true(tl_webhook_stats_of(w)->retried >= 1);
    assert_int_equal(tl_webhook_stats_of(w)->sent, 1);
    tl_webhook_close(w);
    srv_stop(&a);
}

static void test_dead_url_and_overflow(void **state) {
    (void)state;
    srv a;
    srv_start(&a);
    char ua[64], ud[64];
    url_of(&a, ua, sizeof ua);
    snprintf(ud, sizeof ud, "http://127.0.0.1:%u/hook", dead_port());
    const char *urls[] = {ud, ua};
    tl_webhook *w = open_hook(urls, 2, 4, 500);
    /* The live URL gets each message while the dead one fails and backs
     * off: it holds nothing up. */
    for (int i = 0; i < 10; i++) {
        post_n(w, i, 1);
        uint64_t until = now_ns() + 5000000000ull;
        for (;;) {
            tl_webhook_pass(w, now_ns());
            pthread_mutex_lock(&a.mu);
            bool got = a.accepted == (uint32_t)i + 1;
            pthread_mutex_unlock(&a.mu);
            if (got || now_ns() > until)
                break;
            usleep(1000);
        }
    }
    assert_bodies(&a, 0, 10);
    const tl_webhook_stats *st = tl_webhook_stats_of(w);
    /* the server has the last body; the client may not have its answer yet */
    uint64_t until = now_ns() + 5000000000ull;
    while (st->sent < 10 && now_ns() < until) {
        tl_webhook_pass(w, now_ns());
        usleep(1000);
    }
    assert_int_equal(st->sent, 10);
    assert_true(st->failed >= 1);
    /* The FIFO keeps 4: the dead URL lost the 6 oldest (one of them may
     * still be in its last attempt, counted when that ends), at most 4 wait. */
    assert_true(st->dropped >= 5 && st->dropped <= 6);
    assert_true(st->pending <= 4);
    /* flush gives up at its timeout */
    uint64_t t0 = now_ns();
    tl_webhook_flush(w, 100);
    assert_true(now_ns() - t0 < 5000000000ull);
    assert_true(st->pending > 0);
    tl_webhook_close(w);
    srv_stop(&a);
}

static void test_open_errors(void **state) {
    (void)state;
    char err[256];
    tl_webhook *w = NULL;
    const char *bad[] = {"ftp://x/"};
    tl_webhook_cfg c = {.urls = bad, .url_count = 1, .queue = 4, .timeout_ms = 100};
    assert_int_equal(tl_webhook_open(&w, &c, err, sizeof err), -1);
    assert_null(w);
    assert_non_null(strstr(err, "webhooks.urls[0]"));
    const char *ok[] = {"http://127.0.0.1:1/"};
    c.urls = ok;
    c.queue = 0;
    assert_int_equal(tl_webhook_open(&w, &c, err, sizeof err), -1);
    c.queue = TL_WEBHOOK_QUEUE_MAX + 1;
    assert_int_equal(tl_webhook_open(&w, &c, err, sizeof err), -1);
    c.queue = 4;
    c.url_count = TL_WEBHOOK_URLS_MAX + 1;
    assert_int_equal(tl_webhook_open(&w, &c, err, sizeof err), -1);
}

/* ---- the alert shapes ---- */

static tl_out finding_out(void) {
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_FINDING;
    tl_finding_init(&o.u.finding, TL_CHECK_STALE_LEADER);
    o.u.finding.id = 41;
    o.u.finding.seq = 8812;
    o.u.finding.fence = 7;
    o.u.finding.fence2 = 9;
    o.u.finding.source = TL_SOURCE_LEASE;
    o.u.finding.reason = TL_REASON_LEASE_OTHER;
    return o;
}

static tl_out action_out(uint8_t state) {
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_ACTION;
    tl_action *a = &o.u.action;
    memset(a->id, 0xab, sizeof a->id);
    a->cmd = TL_CMD_SET_SYMBOL_MODE;
    a->mode = TL_MODE_HARD_HALT;
    a->state = state;
    a->severity = TL_SEV_SEV1;
    a->check = TL_CHECK_STALE_LEADER;
    a->block = TL_BLOCK_NOT_ARMED;
    strcpy(a->symbol_name, "*");
    strcpy(a->reason, "split_brain:stale_leader seq=8812");
    strcpy(a->ticket, "INC-20261121-0001");
    return o;
}

static const char *str_of(const cJSON *o, const char *k) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_true(cJSON_IsString(it));
    return it->valuestring;
}

static void test_alert_shapes(void **state) {
    (void)state;
    static char buf[TL_WEBHOOK_BODY_MAX];
    const char *inst = "0123456789abcdef0123456789abcdef";
    uint64_t t = 1795000000123000000ull; /* 2026-11-18T... */
    tl_out f = finding_out();
    /* tally */
    size_t n = tl_alert_format(TL_ALERT_TALLY, inst, &f, t, buf, sizeof buf);
    assert_true(n > 0);
    cJSON *j = cJSON_ParseWithLength(buf, n);
    assert_non_null(j);
    assert_string_equal(str_of(j, "type"), "finding");
    assert_string_equal(str_of(j, "instance"), inst);
    assert_string_equal(str_of(j, "ts_ns"), "1795000000123000000");
    const cJSON *fj = cJSON_GetObjectItemCaseSensitive(j, "finding");
    assert_string_equal(str_of(fj, "check"), "STALE_LEADER");
    assert_string_equal(str_of(fj, "severity"), "SEV1");
    assert_string_equal(str_of(fj, "reason"), "lease_other_holder");
    assert_string_equal(str_of(fj, "fence2"), "9");
    cJSON_Delete(j);
    /* alertmanager */
    n = tl_alert_format(TL_ALERT_ALERTMANAGER, inst, &f, t, buf, sizeof buf);
    assert_true(n > 0);
    j = cJSON_ParseWithLength(buf, n);
    assert_true(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 1);
    const cJSON *al = cJSON_GetArrayItem(j, 0);
    const cJSON *lab = cJSON_GetObjectItemCaseSensitive(al, "labels");
    assert_string_equal(str_of(lab, "alertname"), "STALE_LEADER");
    assert_string_equal(str_of(lab, "severity"), "SEV1");
    assert_string_equal(str_of(lab, "class"), "out_of_order");
    assert_string_equal(str_of(lab, "scope"), "*");
    assert_string_equal(str_of(lab, "instance"), inst);
    assert_string_equal(str_of(lab, "event"), "finding");
    const cJSON *ann = cJSON_GetObjectItemCaseSensitive(al, "annotations");
    assert_non_null(strstr(str_of(ann, "summary"), "STALE_LEADER"));
    cJSON *d = cJSON_Parse(str_of(ann, "description"));
    assert_string_equal(str_of(d, "seq"), "8812");
    cJSON_Delete(d);
    const char *sa = str_of(al, "startsAt");
    assert_int_equal(strlen(sa), 24);
    assert_string_equal(sa + 19, ".123Z");
    cJSON_Delete(j);
    /* two classes (UNCLASSIFIED) and a symbol scope */
    tl_out u = finding_out();
    tl_finding_init(&u.u.finding, TL_CHECK_UNCLASSIFIED);
    u.u.finding.symbol = 7;
    n = tl_alert_format(TL_ALERT_ALERTMANAGER, inst, &u, t, buf, sizeof buf);
    j = cJSON_ParseWithLength(buf, n);
    lab = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 0), "labels");
    assert_string_equal(str_of(lab, "class"), "missing,out_of_order");
    assert_string_equal(str_of(lab, "scope"), "7");
    cJSON_Delete(j);
    /* actions: every state */
    for (uint8_t s = TL_ACT_PLANNED; s <= TL_ACT_FAILED; s++) {
        tl_out a = action_out(s);
        n = tl_alert_format(TL_ALERT_TALLY, inst, &a, t, buf, sizeof buf);
        j = cJSON_ParseWithLength(buf, n);
        assert_non_null(j);
        assert_string_equal(str_of(j, "type"), "action");
        assert_string_equal(str_of(j, "state"), tl_action_state_name(s));
        const cJSON *aj = cJSON_GetObjectItemCaseSensitive(j, "action");
        assert_string_equal(str_of(aj, "mode"), "HARD_HALT");
        assert_string_equal(str_of(aj, "check"), "STALE_LEADER");
        if (s == TL_ACT_BLOCKED)
            assert_string_equal(str_of(aj, "block_reason"), "not_armed");
        cJSON_Delete(j);
        n = tl_alert_format(TL_ALERT_ALERTMANAGER, inst, &a, t, buf, sizeof buf);
        j = cJSON_ParseWithLength(buf, n);
        lab = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(j, 0), "labels");
        assert_string_equal(str_of(lab, "state"), tl_action_state_name(s));
        assert_string_equal(str_of(lab, "alertname"), "STALE_LEADER");
        assert_string_equal(str_of(lab, "scope"), "*");
        cJSON_Delete(j);
    }
    /* not alerted: info and degraded findings, stats, mode events */
    tl_out i = finding_out();
    tl_finding_init(&i.u.finding, TL_CHECK_LEASE_UNREACHABLE);
    assert_false(tl_alert_wanted(&i));
    assert_int_equal(tl_alert_format(TL_ALERT_TALLY, inst, &i, t, buf, sizeof buf), 0);
    tl_out m;
    memset(&m, 0, sizeof m);
    m.type = TL_OUT_STATS;
    assert_false(tl_alert_wanted(&m));
    assert_true(tl_alert_wanted(&f));
    /* too small a buffer: 0, never a partial body */
    assert_int_equal(tl_alert_format(TL_ALERT_ALERTMANAGER, inst, &f, t, buf, 64), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_once),   cmocka_unit_test(test_retries_and_refusals),
        cmocka_unit_test(test_timeout_retried), cmocka_unit_test(test_dead_url_and_overflow),
        cmocka_unit_test(test_open_errors),     cmocka_unit_test(test_alert_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
