/* test_ledger_client.c: io/ledger_client.h against a scripted HTTP server on
 * 127.0.0.1 (a thread of this test): a good reply with and without a mac,
 * every rejection by name (status, size, mac missing/malformed/bad, no
 * server, a server that never answers), the reuse of one connection, and
 * the key file rules. */
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/ledger_client.h"

static const uint8_t key[TL_LEDGER_KEY_BYTES] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                                 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                                 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

#define BODY "{\"ledger_seq\":\"1\"}"

/* What the server answers, one mode per test. */
enum mode {
    M_OK,
    M_OK_MAC,
    M_NO_MAC,
    M_BAD_MAC,
    M_UPPER_MAC,
    M_500,
    M_BIG_LENGTH,
    M_BIG_BODY,
    M_HANG
};

typedef struct server {
    int fd;
    uint16_t port;
    enum mode mode;
    int accepts;
    int requests;
    volatile int stop;
    pthread_t th;
} server;

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void answer(server *s, int c) {
    char mac[TL_LEDGER_MAC_HEX + 1];
    char head[512];
    const char *body = BODY;
    size_t blen = strlen(body);
    tl_ledger_mac_hex(key, body, blen, mac);
    switch (s->mode) {
        case M_OK:
        case M_NO_MAC:
            snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", blen);
            break;
        case M_OK_MAC:
            snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nx-tally-mac:  %s \r\nContent-Length: %zu\r\n\r\n", mac,
                     blen);
            break;
        case M_BAD_MAC:
            mac[0] = mac[0] == '0' ? '1' : '0';
            snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nX-Tally-Mac: %s\r\nContent-Length: %zu\r\n\r\n", mac,
                     blen);
            break;
        case M_UPPER_MAC:
            for (char *p = mac; *p; p++)
                if (*p >= 'a' && *p <= 'f')
                    *p = (char)(*p - 'a' + 'A');
            snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nX-Tally-Mac: %s\r\nContent-Length: %zu\r\n\r\n", mac,
                     blen);
            break;
        case M_500:
            snprintf(head, sizeof head, "HTTP/1.1 500 Oops\r\nContent-Length: %zu\r\n\r\n", blen);
            break;
        case M_BIG_LENGTH:
            snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
            blen = 0;
            break;
        case M_BIG_BODY: {
            /* no length: the body runs until the server closes */
            snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            write_all(c, head, strlen(head));
            static char junk[4096];
            memset(junk, ' ', sizeof junk);
            for (int i = 0; i < 32 && !s->stop; i++)
                write_all(c, junk, sizeof junk);
            return;
        }
        case M_HANG:
            return;
    }
    write_all(c, head, strlen(head));
    write_all(c, body, blen);
}

static void *serve(void *arg) {
    server *s = arg;
    while (!s->stop) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        s->accepts++;
        char req[4096];
        size_t have = 0;
        /* Requests on this connection, until the client closes it. */
        while (!s->stop) {
            ssize_t n = read(c, req + have, sizeof req - have - 1);
            if (n <= 0)
                break;
            have += (size_t)n;
            req[have] = '\0';
            char *end = strstr(req, "\r\n\r\n");
            if (end == NULL)
                continue;
            s->requests++;
            assert_true(strncmp(req, "GET /v1/watermark HTTP/1.1\r\n", 28) == 0);
            answer(s, c);
            if (s->mode == M_BIG_BODY)
                break;
            have = 0;
        }
        close(c);
    }
    return NULL;
}

static server *server_start(enum mode m) {
    server *s = calloc(1, sizeof *s);
    s->mode = m;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 8), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    /* accept() wakes on shutdown at the end */
    assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
    return s;
}

static void server_stop(server *s) {
    s->stop = 1;
    shutdown(s->fd, SHUT_RDWR);
    pthread_join(s->th, NULL);
    close(s->fd);
    free(s);
}

static tl_ledger_client *client_for(const server *s, const uint8_t *k, uint64_t timeout_ms,
                                    uint16_t port_override) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/watermark",
             port_override ? port_override : s->port);
    tl_ledger_client_cfg c = {
        .url = url, .timeout_ms = timeout_ms, .max_body_bytes = 65536, .key = k};
    tl_ledger_client *cl;
    assert_int_equal(tl_ledger_client_open(&cl, &c), TL_LC_OK);
    return cl;
}

static enum tl_lc_err get_once(enum mode m, const uint8_t *k) {
    server *s = server_start(m);
    tl_ledger_client *c = client_for(s, k, 2000, 0);
    tl_ledger_response r;
    tl_ledger_client_get(c, &r);
    tl_ledger_client_close(c);
    server_stop(s);
    return r.err;
}

static void test_ok_and_reuse(void **state) {
    (void)state;
    server *s = server_start(M_OK_MAC);
    tl_ledger_client *c = client_for(s, key, 2000, 0);
    for (int i = 0; i < 5; i++) {
        tl_ledger_response r;
        tl_ledger_client_get(c, &r);
        assert_int_equal(r.err, TL_LC_OK);
        assert_int_equal(r.http_status, 200);
        assert_true(r.mac_verified);
        assert_int_equal(r.len, strlen(BODY));
        assert_memory_equal(r.body, BODY, r.len);
    }
    tl_ledger_client_close(c);
    assert_int_equal(s->requests, 5);
    assert_int_equal(s->accepts, 1); /* one reused connection */
    server_stop(s);
}

static void test_rejections(void **state) {
    (void)state;
    assert_int_equal(get_once(M_OK, NULL), TL_LC_OK); /* no key: no mac needed */
    assert_int_equal(get_once(M_OK_MAC, NULL), TL_LC_OK);
    assert_int_equal(get_once(M_NO_MAC, key), TL_LC_ERR_MAC_MISSING);
    assert_int_equal(get_once(M_BAD_MAC, key), TL_LC_ERR_MAC_BAD);
    assert_int_equal(get_once(M_UPPER_MAC, key), TL_LC_ERR_MAC_MALFORMED);
    assert_int_equal(get_once(M_500, NULL), TL_LC_ERR_HTTP_STATUS);
    assert_int_equal(get_once(M_BIG_LENGTH, NULL), TL_LC_ERR_TOO_LARGE);
    assert_int_equal(get_once(M_BIG_BODY, NULL), TL_LC_ERR_TOO_LARGE);
    for (int e = 0; e < TL_LC_ERR_COUNT; e++)
        assert_true(strcmp(tl_lc_err_name((enum tl_lc_err)e), "?") != 0);
}

/* A server that never answers: the GET ends at its timeout; meanwhile each
 * poll returns at once (the caller is never stalled). */
static void test_hang_and_refused(void **state) {
    (void)state;
    server *s = server_start(M_HANG);
    tl_ledger_client *c = client_for(s, NULL, 200, 0);
    assert_true(tl_ledger_client_start(c));
    assert_false(tl_ledger_client_start(c)); /* one at a time */
    tl_ledger_response r;
    int polls = 0;
    while (!tl_ledger_client_poll(c, &r)) {
        polls++;
        usleep(1000);
    }
    assert_true(polls > 10);
    assert_int_equal(r.err, TL_LC_ERR_TIMEOUT);
    assert_false(tl_ledger_client_busy(c));
    tl_ledger_client_close(c);
    uint16_t port = s->port;
    server_stop(s);
    /* nothing listens there now */
    c = client_for(NULL, NULL, 500, port);
    tl_ledger_client_get(c, &r);
    assert_int_equal(r.err, TL_LC_ERR_CONNECT);
    tl_ledger_client_close(c);
}

static void test_config(void **state) {
    (void)state;
    tl_ledger_client *c;
    tl_ledger_client_cfg cfg = {.url = "", .timeout_ms = 1, .max_body_bytes = 1};
    assert_int_equal(tl_ledger_client_open(&c, &cfg), TL_LC_ERR_CONFIG);
    assert_null(c);
    cfg.url = "ftp://127.0.0.1/x"; /* refused at the first GET: not http(s) */
    assert_int_equal(tl_ledger_client_open(&c, &cfg), TL_LC_OK);
    tl_ledger_response r;
    tl_ledger_client_get(c, &r);
    assert_int_equal(r.err, TL_LC_ERR_CONFIG);
    tl_ledger_client_close(c);
    tl_ledger_client_close(NULL);
}

static void test_key_file(void **state) {
    (void)state;
    char *dir = tu_tmpdir("ledger_key");
    char path[512];
    uint8_t k[TL_LEDGER_KEY_BYTES];
    snprintf(path, sizeof path, "%s/k", dir);
    tu_write_file(path, key, sizeof key);
    chmod(path, 0600);
    assert_int_equal(tl_ledger_key_load(path, k), TL_LC_OK);
    assert_memory_equal(k, key, sizeof key);
    chmod(path, 0640);
    assert_int_equal(tl_ledger_key_load(path, k), TL_LC_ERR_KEY_PERMISSIONS);
    tu_write_file(path, key, sizeof key - 1);
    chmod(path, 0600);
    assert_int_equal(tl_ledger_key_load(path, k), TL_LC_ERR_KEY_SIZE);
    assert_int_equal(tl_ledger_key_load(dir, k), TL_LC_ERR_KEY_NOT_REGULAR);
    snprintf(path, sizeof path, "%s/none", dir);
    assert_int_equal(tl_ledger_key_load(path, k), TL_LC_ERR_KEY_OPEN);
    tu_rm_rf(dir);
    free(dir);
    /* the mac of the spec's shape: lowercase hex, 64 digits, stable */
    char a[TL_LEDGER_MAC_HEX + 1], b[TL_LEDGER_MAC_HEX + 1];
    tl_ledger_mac_hex(key, "x", 1, a);
    tl_ledger_mac_hex(key, "x", 1, b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 64);
    tl_ledger_mac_hex(key, "", 0, b);
    assert_string_not_equal(a, b);
    /* a known answer (Python's hmac over the same key and body) */
    tl_ledger_mac_hex(key, BODY, strlen(BODY), a);
    assert_string_equal(a, "24c2e108063e11cc70b7ebfa226a57da1ba8ad3e1566de62860350e191795d9d");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_and_reuse),     cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_hang_and_refused), cmocka_unit_test(test_config),
        cmocka_unit_test(test_key_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
