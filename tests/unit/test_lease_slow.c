/* test_lease_slow.c: io/etcd_client.h and the lease poller (admin/lease_poll.h)
 * against etcd servers that misbehave in time (issue 4 "Bad input": slow or
 * hanging servers). A small scripted server on a thread of this test, on
 * 127.0.0.1:
 *   hang  accepts, reads the request, never answers (the connection stays
 *         open);
 *   drip  answers a valid range reply one byte every 20 ms, far slower than
 *         the client's timeout.
 * Each must end as the named error `timeout` within the configured
 * timeout_ms (plus scheduling slack), never as a hang; and the poller, driven
 * the way tallyd's control thread drives it, must stay non-blocking on every
 * pass and hand the loop one failed reading per request (fail = unreachable,
 * detail = timeout), so LEASE_UNREACHABLE can follow. */
#include "testutil.h"

#include <arpa/inet.h>
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

#include "admin/lease_poll.h"
#include "io/etcd_client.h"

/* ---- a scripted, slow HTTP server ---- */

#define SLOW_CONNS   16
#define SLOW_DRIP_MS 20

enum slow_mode { SLOW_HANG, SLOW_DRIP };

typedef struct slow_srv {
    int lfd;
    uint16_t port;
    enum slow_mode mode;
    pthread_t th;
    _Atomic bool stop;
    _Atomic uint32_t accepted; /* connections */
    _Atomic uint32_t requests; /* connections that sent bytes */
} slow_srv;

typedef struct conn {
    int fd;
    bool got;    /* a request arrived: drip from now */
    size_t sent; /* reply bytes dripped */
} conn;

static const char REPLY[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n"
    "{\"header\":{\"revision\":\"7\"}        }";

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *slow_main(void *arg) {
    slow_srv *s = arg;
    conn c[SLOW_CONNS];
    uint32_t n = 0;
    uint64_t next_drip = now_ns();
    while (!atomic_load(&s->stop)) {
        struct pollfd pf[SLOW_CONNS + 1];
        pf[0] = (struct pollfd){s->lfd, POLLIN, 0};
        for (uint32_t i = 0; i < n; i++)
            pf[i + 1] = (struct pollfd){c[i].fd, POLLIN, 0};
        (void)poll(pf, n + 1, 5);
        if ((pf[0].revents & POLLIN) && n < SLOW_CONNS) {
            int fd = accept(s->lfd, NULL, NULL);
            if (fd >= 0) {
                c[n++] = (conn){fd, false, 0};
                atomic_fetch_add(&s->accepted, 1);
            }
        }
        for (uint32_t i = 0; i < n; i++) {
            if (!(pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) || i >= n)
                continue;
            char buf[4096];
            ssize_t r = read(c[i].fd, buf, sizeof buf);
            if (r <= 0) { /* the client gave up: forget the connection */
                close(c[i].fd);
                c[i] = c[--n];
                pf[i + 1] = pf[n + 1];
                i--;
                continue;
            }
            if (!c[i].got)
                atomic_fetch_add(&s->requests, 1);
            c[i].got = true;
        }
        if (s->mode == SLOW_DRIP && now_ns() >= next_drip) {
            next_drip = now_ns() + SLOW_DRIP_MS * 1000000ull;
            for (uint32_t i = 0; i < n; i++) {
                if (!c[i].got || c[i].sent >= sizeof REPLY - 1)
                    continue;
                if (write(c[i].fd, REPLY + c[i].sent, 1) == 1)
                    c[i].sent++;
            }
        }
    }
    for (uint32_t i = 0; i < n; i++)
        close(c[i].fd);
    return NULL;
}

static void slow_start(slow_srv *s, enum slow_mode mode) {
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, slow_main, s), 0);
}

static void slow_stop(slow_srv *s) {
    atomic_store(&s->stop, true);
    pthread_join(s->th, NULL);
    close(s->lfd);
}

/* ---- the client alone: one whole request ---- */

static void client_times_out(enum slow_mode mode) {
    slow_srv s;
    slow_start(&s, mode);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", s.port);
    tl_etcd_cfg cfg = {.endpoint = url, .timeout_ms = 200, .max_body_bytes = TL_LEASE_BODY_MAX};
    tl_etcd *c = NULL;
    assert_int_equal(tl_etcd_open(&c, &cfg), TL_ETCD_OK);
    char req[128];
    size_t len = tl_etcd_range_body((const uint8_t *)"/k", 2, req, sizeof req);
    assert_true(len > 0);
    for (int i = 0; i < 2; i++) { /* the second one on a fresh connection */
        tl_etcd_response r;
        uint64_t t0 = now_ns();
        tl_etcd_call(c, "/v3/kv/range", req, len, &r);
        uint64_t took_ms = (now_ns() - t0) / 1000000ull;
        assert_int_equal(r.err, TL_ETCD_ERR_TIMEOUT);
        assert_string_equal(tl_etcd_err_name(r.err), "timeout");
        /* bounded by the timeout: never the drip's 2 s, never forever */
        assert_true(took_ms >= 150);
        assert_true(took_ms < 1000);
        assert_false(tl_etcd_busy(c));
    }
    assert_true(atomic_load(&s.requests) >= 2);
    tl_etcd_close(c);
    slow_stop(&s);
}

static void test_client_hang(void **state) {
    (void)state;
    client_times_out(SLOW_HANG);
}

static void test_client_drip(void **state) {
    (void)state;
    client_times_out(SLOW_DRIP);
}

/* ---- the poller as tallyd drives it ---- */

static void poller_bounded(enum slow_mode mode) {
    slow_srv s;
    slow_start(&s, mode);
    tl_config c;
    tl_config_defaults(&c);
    snprintf(c.lease_endpoint, sizeof c.lease_endpoint, "http://127.0.0.1:%u", s.port);
    snprintf(c.lease_key, sizeof c.lease_key, "/exchange/t/leader");
    c.lease_poll_ms = 10;
    c.lease_timeout_ms = 100;
    tl_spsc q;
    assert_int_equal(tl_spsc_init(&q, TL_LEASE_QUEUE_SLOTS, sizeof(tl_lease_reading)), 0);
    tl_lease_poll *p = NULL;
    char err[256];
    assert_int_equal(tl_lease_poll_open(&p, &c, &q, err, sizeof err), 0);
    assert_non_null(p);
    uint64_t failed = 0, max_pass_ns = 0, last_id = 0;
    uint64_t until = now_ns() + 5000000000ull;
    while (failed < 4 && now_ns() < until) {
        uint64_t t0 = now_ns();
        tl_lease_poll_pass(p, t0);
        uint64_t d = now_ns() - t0;
        max_pass_ns = d > max_pass_ns ? d : max_pass_ns;
        tl_lease_reading rd;
        while (tl_spsc_pop(&q, &rd)) {
            /* every request ends, and as a failure named timeout */
            assert_int_equal(rd.fail, TL_LEASE_FAIL_UNREACHABLE);
            assert_int_equal(rd.detail, TL_ETCD_ERR_TIMEOUT);
            assert_false(rd.present);
            assert_true(rd.poll_id > last_id);
            last_id = rd.poll_id;
            failed++;
        }
        usleep(1000);
    }
    assert_int_equal(failed, 4);
    /* A pass never waits on the server: well under the 100 ms timeout
     * (a generous bound for a loaded 2-vCPU machine and sanitizers). */
    assert_true(max_pass_ns < 50000000ull);
    const tl_lease_poll_stats *st = tl_lease_poll_stats_of(p);
    assert_true(st->failed[TL_ETCD_ERR_TIMEOUT] >= 4);
    assert_int_equal(st->readings_ok, 0);
    assert_true(st->busy_skips > 0); /* polls fell due while one hung */
    assert_int_equal(st->start_refused, 0);
    tl_lease_poll_close(p);
    tl_spsc_destroy(&q);
    slow_stop(&s);
}

static void test_poller_hang(void **state) {
    (void)state;
    poller_bounded(SLOW_HANG);
}

static void test_poller_drip(void **state) {
    (void)state;
    poller_bounded(SLOW_DRIP);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_hang),
        cmocka_unit_test(test_client_drip),
        cmocka_unit_test(test_poller_hang),
        cmocka_unit_test(test_poller_drip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
