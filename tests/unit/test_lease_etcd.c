/* test_lease_etcd.c: the etcd client (io/etcd_client.h) and the lease
 * poller (admin/lease_poll.h) against a real etcd (Debian's /usr/bin/etcd,
 * started here on 127.0.0.1 with free ports and a temporary data dir,
 * stopped by pid): a range of an absent key, a put, the poller's readings
 * through its queue (ids in order, receive times, H and R as etcd says),
 * readings marked unreachable once etcd is killed, and the client's named
 * errors (connect, http_status, body_too_large). Skipped without etcd. */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "admin/lease_poll.h"
#include "io/etcd_client.h"

static char *dir;
static pid_t etcd_pid;
static char url[64];

static uint16_t free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int start_etcd(void **state) {
    (void)state;
    if (access("/usr/bin/etcd", X_OK) != 0)
        return 0;
    dir = tu_tmpdir("lease-etcd");
    uint16_t cp = free_port(), pp = free_port();
    snprintf(url, sizeof url, "http://127.0.0.1:%u", cp);
    char peer[64], data[512], cluster[96], log[512];
    snprintf(peer, sizeof peer, "http://127.0.0.1:%u", pp);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(cluster, sizeof cluster, "t=%s", peer);
    snprintf(log, sizeof log, "%s/etcd.log", dir);
    etcd_pid = fork();
    if (etcd_pid == 0) {
        FILE *f = freopen(log, "w", stderr);
        (void)f;
        execl("/usr/bin/etcd", "etcd", "--name", "t", "--data-dir", data, "--listen-client-urls",
              url, "--advertise-client-urls", url, "--listen-peer-urls", peer,
              "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster, (char *)NULL);
        _exit(127);
    }
    /* Ready when a range answers (bounded: 10 s). */
    tl_etcd *c = NULL;
    tl_etcd_cfg cfg = {.endpoint = url, .timeout_ms = 200, .max_body_bytes = 4096};
    if (tl_etcd_open(&c, &cfg) != TL_ETCD_OK)
        return -1;
    tl_etcd_response r;
    for (int i = 0; i < 200; i++) {
        tl_etcd_call(c, "/v3/kv/range", "{\"key\":\"eA==\"}", 14, &r);
        if (r.err == TL_ETCD_OK)
            break;
        usleep(50000);
    }
    tl_etcd_close(c);
    return r.err == TL_ETCD_OK ? 0 : -1;
}

static void kill_etcd(void) {
    if (etcd_pid > 0) {
        kill(etcd_pid, SIGKILL);
        waitpid(etcd_pid, NULL, 0);
        etcd_pid = 0;
    }
}

static int stop_etcd(void **state) {
    (void)state;
    kill_etcd();
    if (dir != NULL) {
        tu_rm_rf(dir);
        free(dir);
        dir = NULL;
    }
    return 0;
}

static const char KEY[] = "/exchange/t/leader";

static void test_client(void **state) {
    (void)state;
    if (etcd_pid <= 0)
        skip();
    tl_etcd *c = NULL;
    tl_etcd_cfg cfg = {.endpoint = url, .timeout_ms = 500, .max_body_bytes = TL_LEASE_BODY_MAX};
    assert_int_equal(tl_etcd_open(&c, &cfg), TL_ETCD_OK);
    char req[512];
    size_t n = tl_etcd_range_body((const uint8_t *)KEY, strlen(KEY), req, sizeof req);
    assert_string_equal(req, "{\"key\":\"L2V4Y2hhbmdlL3QvbGVhZGVy\"}");
    tl_etcd_response r;
    tl_etcd_call(c, "/v3/kv/range", req, n, &r);
    assert_int_equal(r.err, TL_ETCD_OK);
    tl_lease_reading rd;
    const char *member = NULL;
    assert_int_equal(tl_lease_parse(r.body, r.len, (const uint8_t *)KEY, strlen(KEY), &rd, &member),
                     TL_LEASE_OK);
    assert_false(rd.present);
    uint64_t h0 = rd.revision;
    /* a put of an engine id: the range names it, at the put's revision */
    const char *put = "{\"key\":\"L2V4Y2hhbmdlL3QvbGVhZGVy\","
                      "\"value\":\"MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmY=\"}";
    tl_etcd_call(c, "/v3/kv/put", put, strlen(put), &r);
    assert_int_equal(r.err, TL_ETCD_OK);
    tl_etcd_call(c, "/v3/kv/range", req, n, &r);
    assert_int_equal(r.err, TL_ETCD_OK);
    assert_int_equal(tl_lease_parse(r.body, r.len, (const uint8_t *)KEY, strlen(KEY), &rd, &member),
                     TL_LEASE_OK);
    assert_true(rd.present);
    assert_int_equal(rd.mod_revision, h0 + 1);
    assert_int_equal(rd.revision, h0 + 1);
    assert_int_equal(rd.holder[0], 0x00);
    assert_int_equal(rd.holder[15], 0xff);
    /* named errors: a path the gateway does not have, a body too large */
    tl_etcd_call(c, "/v3/no/such", "{}", 2, &r);
    assert_int_equal(r.err, TL_ETCD_ERR_HTTP_STATUS);
    tl_etcd_close(c);
    cfg.max_body_bytes = 16;
    assert_int_equal(tl_etcd_open(&c, &cfg), TL_ETCD_OK);
    tl_etcd_call(c, "/v3/kv/range", req, n, &r);
    assert_int_equal(r.err, TL_ETCD_ERR_TOO_LARGE);
    tl_etcd_close(c);
    char dead[64];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%u", free_port());
    cfg.endpoint = dead;
    cfg.max_body_bytes = 4096;
    assert_int_equal(tl_etcd_open(&c, &cfg), TL_ETCD_OK);
    tl_etcd_call(c, "/v3/kv/range", req, n, &r);
    assert_int_equal(r.err, TL_ETCD_ERR_CONNECT);
    tl_etcd_close(c);
    cfg.endpoint = "ftp://x";
    assert_int_equal(tl_etcd_open(&c, &cfg), TL_ETCD_ERR_CONFIG);
    for (int e = 0; e < TL_ETCD_ERR_COUNT; e++)
        assert_true(strcmp(tl_etcd_err_name((enum tl_etcd_err)e), "?") != 0);
}

static void test_poller(void **state) {
    (void)state;
    if (etcd_pid <= 0)
        skip();
    tl_config c;
    tl_config_defaults(&c);
    snprintf(c.lease_endpoint, sizeof c.lease_endpoint, "%s", url);
    snprintf(c.lease_key, sizeof c.lease_key, "%s", KEY);
    c.lease_poll_ms = 10;
    c.lease_timeout_ms = 200;
    tl_loop_cfg lc;
    tl_loop_cfg_defaults(&lc);
    tl_lease_poll_loop_cfg(&c, &lc);
    assert_true(lc.lease.enabled);
    assert_int_equal(lc.lease.grace_ms, 200);
    assert_true(lc.lease.stale_ms >= 500);
    tl_spsc q;
    assert_int_equal(tl_spsc_init(&q, TL_LEASE_QUEUE_SLOTS, sizeof(tl_lease_reading)), 0);
    tl_lease_poll *p = NULL;
    char err[256];
    assert_int_equal(tl_lease_poll_open(&p, &c, &q, err, sizeof err), 0);
    assert_non_null(p);
    /* ten good readings, in order */
    tl_lease_reading rd;
    uint64_t last_id = 0, got = 0, until = now_ns() + 10000000000ull;
    while (got < 10 && now_ns() < until) {
        tl_lease_poll_pass(p, now_ns());
        while (tl_spsc_pop(&q, &rd)) {
            assert_int_equal(rd.fail, TL_LEASE_FAIL_NONE);
            assert_true(rd.poll_id > last_id);
            last_id = rd.poll_id;
            assert_true(rd.present);
            assert_true(rd.recv_mono_ns != 0 && rd.recv_real_ns != 0);
            assert_true(rd.revision >= rd.mod_revision && rd.mod_revision > 0);
            got++;
        }
        usleep(1000);
    }
    assert_int_equal(got, 10);
    /* etcd gone: every request fails, each reported as unreachable */
    kill_etcd();
    uint64_t failed = 0;
    until = now_ns() + 10000000000ull;
    while (failed < 3 && now_ns() < until) {
        tl_lease_poll_pass(p, now_ns());
        while (tl_spsc_pop(&q, &rd))
            if (rd.fail == TL_LEASE_FAIL_UNREACHABLE)
                failed++;
        usleep(1000);
    }
    assert_int_equal(failed, 3);
    tl_lease_poll_stats st;
    tl_lease_poll_get_stats(p, &st);
    assert_true(st.readings_ok >= 10);
    assert_true(st.failed[TL_ETCD_ERR_CONNECT] + st.failed[TL_ETCD_ERR_TRANSPORT] +
                    st.failed[TL_ETCD_ERR_TIMEOUT] >=
                3);
    tl_lease_poll_close(p);
    /* no endpoint: no poller; an endpoint without a key: an error */
    c.lease_endpoint[0] = '\0';
    assert_int_equal(tl_lease_poll_open(&p, &c, &q, err, sizeof err), 0);
    assert_null(p);
    snprintf(c.lease_endpoint, sizeof c.lease_endpoint, "%s", url);
    c.lease_key[0] = '\0';
    assert_int_equal(tl_lease_poll_open(&p, &c, &q, err, sizeof err), -1);
    assert_non_null(strstr(err, "lease.key"));
    tl_spsc_destroy(&q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client),
        cmocka_unit_test(test_poller),
    };
    return cmocka_run_group_tests(tests, start_etcd, stop_etcd);
}
