/* test_api.c: the control API (admin/api*.c) in one process.
 *
 * A server thread runs what tallyd's control thread runs (tl_api_pass) and
 * a fake hot loop behind the ctl queue: it takes POLICY, MODE and ACTION
 * messages, applies the gates that matter here (the stage), and answers
 * with the loop's events (CTL_ACK, PLANNED, BLOCKED/EXECUTED, MODE_CHANGE,
 * APPLIED), applying commands to a fake engine with the engine's key rules.
 * The test thread is the client: raw HTTP/1.1 over the Unix socket and TCP,
 * so that bad requests, huge bodies and slow clients can be sent exactly.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin/api.h"
#include "admin/bundle.h"

#define TOKEN "s3cret-token-0123456789"

typedef struct fx {
    char *dir;
    char wal_dir[512];
    tl_config cfg;
    tl_spsc ctl;
    tl_audit audit;
    _Atomic uint64_t beat;
    tl_policy_cfg pol;
    tl_api *api;
    pthread_t th;
    pthread_mutex_t mu;
    _Atomic bool stop;
    _Atomic bool stall; /* the fake hot loop stops beating */
    /* the fake loop's policy and the fake engine */
    uint8_t action;
    bool dry_run;
    bool armed;
    uint8_t global;
    uint8_t mode[64];
    bool withdrawals;
    uint64_t seq;
    uint32_t executed;
    uint32_t blocked;
    struct tl_bundle_svc *bundle; /* NULL: none (POST /bundle is 501) */
} fx;

static uint64_t mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t real(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the fake loop (server thread, under mu) ---- */

static void out(fx *f, const tl_out *o) {
    tl_api_on_out(f->api, o, mono(), real());
}

static void out_action(fx *f, const tl_action *a) {
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_ACTION;
    o.u.action = *a;
    out(f, &o);
}

static void mode_change(fx *f, const uint8_t id[16], uint32_t scope, uint8_t mode, bool matched) {
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_MODE_SEEN;
    memcpy(o.u.mode.command_id, id, 16);
    o.u.mode.scope = scope;
    o.u.mode.prev_mode = scope == 0 ? f->global : f->mode[scope];
    o.u.mode.mode = mode;
    o.u.mode.withdrawals_halted = f->withdrawals;
    o.u.mode.matched = matched;
    o.u.mode.seq = ++f->seq;
    if (scope == 0)
        f->global = mode;
    else
        f->mode[scope] = mode;
    out(f, &o);
}

static void fake_action(fx *f, tl_action a) {
    a.state = TL_ACT_PLANNED;
    a.detect_ns = mono();
    out_action(f, &a);
    bool rollback = a.origin == TL_ORIGIN_ROLLBACK;
    uint8_t block = 0;
    if (f->action == TL_ACTION_NONE && !rollback)
        block = TL_BLOCK_DETECT_ONLY;
    else if ((f->action == TL_ACTION_PLAN || f->dry_run) && !rollback)
        block = TL_BLOCK_DRY_RUN;
    else if (!f->armed && !rollback)
        block = TL_BLOCK_NOT_ARMED;
    if (block != 0) {
        a.state = TL_ACT_BLOCKED;
        a.block = block;
        f->blocked++;
        out_action(f, &a);
        return;
    }
    a.state = TL_ACT_EXECUTED;
    a.sent_ns = mono();
    f->executed++;
    out_action(f, &a);
    /* the engine */
    if (a.cmd == TL_CMD_WITHDRAWALS_HALT) {
        f->withdrawals = a.on;
        mode_change(f, a.id, 0, f->global, true);
    } else {
        uint8_t cur = a.symbol == 0 ? f->global : f->mode[a.symbol];
        uint8_t next = a.mode;
        if (a.key == TL_KEY_SIDECAR && cur > next)
            next = cur;
        if (a.key == TL_KEY_OPERATOR && a.from_mode != cur) {
            a.state = TL_ACT_FAILED;
            a.error = 5; /* precondition_failed */
            out_action(f, &a);
            return;
        }
        mode_change(f, a.id, a.symbol, next, true);
    }
    a.state = TL_ACT_APPLIED;
    a.applied_ns = mono();
    out_action(f, &a);
}

static void fake_loop(fx *f) {
    tl_ctl_msg m;
    while (tl_spsc_pop(&f->ctl, &m)) {
        switch (m.type) {
            case TL_CTL_POLICY: {
                f->action = m.action;
                f->dry_run = m.dry_run;
                f->armed = m.armed;
                tl_out o;
                memset(&o, 0, sizeof o);
                o.type = TL_OUT_CTL_ACK;
                o.u.ack.ctl_type = TL_CTL_POLICY;
                o.u.ack.action = m.action;
                o.u.ack.dry_run = m.dry_run;
                o.u.ack.armed = m.armed;
                o.u.ack.token = m.token;
                out(f, &o);
                break;
            }
            case TL_CTL_MODE:
            case TL_CTL_ACTION:
                fake_action(f, m.act);
                break;
            default:
                break;
        }
    }
}

static void *server(void *arg) {
    fx *f = arg;
    while (!atomic_load(&f->stop)) {
        pthread_mutex_lock(&f->mu);
        if (!atomic_load(&f->stall))
            atomic_store(&f->beat, mono());
        fake_loop(f);
        tl_api_pass(f->api, mono(), real());
        pthread_mutex_unlock(&f->mu);
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void fx_api(fx *f, bool operator_key) {
    tl_api_deps d = {
        .cfg = &f->cfg,
        .ctl = &f->ctl,
        .audit = &f->audit,
        .beat_ns = &f->beat,
        .policy = &f->pol,
        .tag_seed = 42,
        .operator_key = operator_key,
        .dialect = TL_DIALECT_TLYWAL1,
        .max_symbols = 64,
        .start_mono_ns = mono(),
        .bundle = f->bundle,
    };
    char err[512];
    if (tl_api_create(&f->api, &d, err, sizeof err) != 0)
        fail_msg("tl_api_create: %s", err);
}

/* with_bundle: a real export service (admin/bundle.h) behind POST /bundle,
 * started before the API, exporting into <dir>/bundles. */
static fx *fx_start_with(bool operator_key, const char *wal_dir, bool with_bundle);

static fx *fx_start(bool operator_key, const char *wal_dir) {
    return fx_start_with(operator_key, wal_dir, false);
}

static fx *fx_start_with(bool operator_key, const char *wal_dir, bool with_bundle) {
    signal(SIGPIPE, SIG_IGN);
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_tmpdir("api");
    tl_config_defaults(&f->cfg);
    snprintf(f->cfg.state_dir, sizeof f->cfg.state_dir, "%s", f->dir);
    snprintf(f->cfg.control_socket, sizeof f->cfg.control_socket, "%s/run/tally.sock", f->dir);
    snprintf(f->cfg.control_listen, sizeof f->cfg.control_listen, "127.0.0.1:0");
    snprintf(f->cfg.control_token_file, sizeof f->cfg.control_token_file, "%s/token", f->dir);
    snprintf(f->cfg.engine_wal_dir, sizeof f->cfg.engine_wal_dir, "%s",
             wal_dir != NULL ? wal_dir : tu_shared("spec/vectors/wal-clean"));
    f->cfg.canary_window_ms = 300000;
    char tok[600];
    snprintf(tok, sizeof tok, "%s/token", f->dir);
    tu_write_file(tok, TOKEN "\n", strlen(TOKEN) + 1);
    assert_int_equal(tl_spsc_init(&f->ctl, 256, sizeof(tl_ctl_msg)), 0);
    char err[512];
    if (tl_audit_open(&f->audit, f->dir, 1 << 24, NULL, err, sizeof err) != 0)
        fail_msg("audit: %s", err);
    tl_policy_cfg_defaults(&f->pol);
    f->action = f->pol.action;
    f->armed = f->pol.armed;
    atomic_init(&f->beat, mono());
    atomic_init(&f->stop, false);
    atomic_init(&f->stall, false);
    pthread_mutex_init(&f->mu, NULL);
    if (with_bundle) {
        snprintf(f->cfg.bundle_dir, sizeof f->cfg.bundle_dir, "%s/bundles", f->dir);
        f->cfg.bundle_signing_key[0] = '\0';
        char cpath[600];
        snprintf(cpath, sizeof cpath, "%s/tally.json", f->dir);
        tu_write_file(cpath, "{}", 2);
        tl_bundle_svc_cfg sc = {
            .cfg = &f->cfg, .config_path = cpath, .dialect = TL_DIALECT_TLYWAL1, .avoid_cpu = -1};
        if (tl_bundle_svc_start(&f->bundle, &sc, err, sizeof err) != 0)
            fail_msg("bundle service: %s", err);
    }
    fx_api(f, operator_key);
    assert_int_equal(pthread_create(&f->th, NULL, server, f), 0);
    return f;
}

static void fx_pause(fx *f) {
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
}

static void fx_resume(fx *f) {
    atomic_store(&f->stop, false);
    assert_int_equal(pthread_create(&f->th, NULL, server, f), 0);
}

static void fx_stop(fx *f) {
    fx_pause(f);
    tl_api_destroy(f->api);
    if (f->bundle != NULL)
        tl_bundle_svc_stop(f->bundle);
    tl_audit_close(&f->audit);
    tl_spsc_destroy(&f->ctl);
    tu_rm_rf(f->dir);
    free(f->dir);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* Events injected as the loop would send them (under the server's lock). */
static void inject(fx *f, const tl_out *o) {
    pthread_mutex_lock(&f->mu);
    if (o->type == TL_OUT_MODE_SEEN) {
        if (o->u.mode.scope == 0)
            f->global = o->u.mode.mode;
        else
            f->mode[o->u.mode.scope] = o->u.mode.mode;
    }
    out(f, o);
    pthread_mutex_unlock(&f->mu);
}

static void inject_symbol(fx *f, uint32_t id, const char *name) {
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_SYMBOL;
    o.u.symbol.id = id;
    snprintf(o.u.symbol.name, sizeof o.u.symbol.name, "%s", name);
    inject(f, &o);
}

static void inject_mode(fx *f, uint32_t scope, uint8_t mode, bool wd) {
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_MODE_SEEN;
    memset(o.u.mode.command_id, 0xff, 16); /* a restatement */
    o.u.mode.scope = scope;
    o.u.mode.mode = mode;
    o.u.mode.withdrawals_halted = wd;
    pthread_mutex_lock(&f->mu);
    f->withdrawals = wd;
    pthread_mutex_unlock(&f->mu);
    inject(f, &o);
}

/* ---- a raw HTTP client ---- */

typedef struct hres {
    int status;
    char head[4096];
    char body[1 << 17];
    size_t len;
    cJSON *json;
} hres;

static int connect_unix(fx *f) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    assert_true(strlen(f->cfg.control_socket) < sizeof sa.sun_path);
    memcpy(sa.sun_path, f->cfg.control_socket, strlen(f->cfg.control_socket) + 1);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static int connect_tcp(fx *f) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(tl_api_tcp_port(f->api));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the server may close early (413): fine */
        p += w;
        n -= (size_t)w;
    }
}

/* Reads the response until the server closes (Connection: close). */
static void read_response(int fd, hres *r) {
    static char raw[(1 << 17) + 8192];
    size_t got = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int pr = poll(&p, 1, 10000);
        if (pr <= 0)
            fail_msg("no response in 10 s");
        ssize_t n = recv(fd, raw + got, sizeof raw - 1 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ECONNRESET)
            break;
        assert_true(n >= 0);
        if (n == 0)
            break;
        got += (size_t)n;
        assert_true(got < sizeof raw - 1);
    }
    raw[got] = '\0';
    memset(r, 0, sizeof *r);
    assert_true(sscanf(raw, "HTTP/1.1 %d", &r->status) == 1);
    char *sep = strstr(raw, "\r\n\r\n");
    assert_non_null(sep);
    snprintf(r->head, sizeof r->head, "%.*s", (int)(sep - raw), raw);
    r->len = got - (size_t)(sep + 4 - raw);
    memcpy(r->body, sep + 4, r->len);
    r->body[r->len] = '\0';
    r->json = cJSON_Parse(r->body);
}

static hres *req(fx *f, bool tcp, const char *method, const char *path, const char *body,
                 const char *headers) {
    static hres r;
    if (r.json != NULL)
        cJSON_Delete(r.json);
    r.json = NULL;
    int fd = tcp ? connect_tcp(f) : connect_unix(f);
    char head[2048];
    int n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: tally\r\nConnection: close\r\n%s",
                     method, path, headers != NULL ? headers : "");
    if (body != NULL)
        n += snprintf(head + n, sizeof head - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    send_all(fd, head, (size_t)n);
    if (body != NULL)
        send_all(fd, body, strlen(body));
    read_response(fd, &r);
    close(fd);
    return &r;
}

static hres *get(fx *f, const char *path) {
    return req(f, false, "GET", path, NULL, NULL);
}

static hres *post(fx *f, const char *path, const char *body) {
    return req(f, false, "POST", path, body, NULL);
}

static const char *jstr(const cJSON *o, const char *path) {
    /* "a.b.c" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    for (char *save = NULL, *t = strtok_r(buf, ".", &save); t != NULL;
         t = strtok_r(NULL, ".", &save))
        cur = cJSON_GetObjectItemCaseSensitive(cur, t);
    if (cJSON_IsString(cur))
        return cur->valuestring;
    if (cJSON_IsTrue(cur))
        return "true";
    if (cJSON_IsFalse(cur))
        return "false";
    if (cJSON_IsNull(cur))
        return "null";
    if (cJSON_IsNumber(cur)) {
        static char num[32];
        snprintf(num, sizeof num, "%.0f", cur->valuedouble);
        return num;
    }
    return cur == NULL ? "(missing)" : "(other)";
}

static void expect_error(hres *r, int status, const char *code) {
    if (r->status != status)
        fail_msg("status %d, want %d: %s", r->status, status, r->body);
    assert_non_null(r->json);
    assert_string_equal(jstr(r->json, "error.code"), code);
    assert_true(strlen(jstr(r->json, "error.message")) > 0);
}

static bool audit_has(fx *f, const char *event) {
    char path[600];
    snprintf(path, sizeof path, "%s/audit/audit.jsonl", f->dir);
    pthread_mutex_lock(&f->mu);
    (void)tl_audit_sync(&f->audit);
    pthread_mutex_unlock(&f->mu);
    size_t n;
    char *text = (char *)tu_read_file(path, &n);
    char needle[128];
    snprintf(needle, sizeof needle, "\"event\":\"%s\"", event);
    bool found = strstr(text, needle) != NULL;
    free(text);
    return found;
}

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- tests ---- */

static void test_read_only_endpoints(void **state) {
    (void)state;
    fx *f = fx_start(true, NULL);
    hres *r = get(f, "/healthz");
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(r->json, "status"), "ok");
    assert_non_null(strstr(r->head, "Content-Type: application/json"));

    /* the hot loop stops beating: 503 with the reason */
    atomic_store(&f->stall, true);
    atomic_store(&f->beat, mono() - 5000000000ull);
    r = get(f, "/healthz");
    assert_int_equal(r->status, 503);
    assert_string_equal(jstr(r->json, "status"), "unhealthy");
    assert_non_null(strstr(jstr(r->json, "reason"), "not beaten"));
    r = get(f, "/capabilities");
    assert_non_null(strstr(jstr(r->json, "degraded_reason"), "does not beat"));
    atomic_store(&f->stall, false);
    sleep_ms(5);

    r = get(f, "/capabilities");
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(r->json, "version"), TL_VERSION);
    assert_string_equal(jstr(r->json, "stage"), "live");
    assert_string_equal(jstr(r->json, "armed"), "true");
    assert_string_equal(jstr(r->json, "dry_run"), "false");
    assert_string_equal(jstr(r->json, "safe_mode"), "false");
    assert_non_null(cJSON_GetObjectItemCaseSensitive(r->json, "degraded_reason"));
    assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(r->json, "features")));
    assert_string_equal(jstr(r->json, "inputs.ledger.state"), "not configured");
    assert_string_equal(jstr(r->json, "inputs.lease.state"), "not configured");
    assert_string_equal(jstr(r->json, "inputs.peers.state"), "not configured");
    assert_string_equal(jstr(r->json, "inputs.ring.state"), "not attached");
    assert_string_equal(jstr(r->json, "inputs.wal.state"), "waiting");
    assert_int_equal(strlen(jstr(r->json, "instance_id")), 32);

    r = get(f, "/metrics");
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->head, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(r->body, "# TYPE tally_mismatch_total counter\n"));
    assert_non_null(strstr(r->body, "# TYPE tally_loop_iteration_seconds histogram\n"));
    assert_non_null(strstr(r->body, "tally_up 1\n"));

    r = get(f, "/policy");
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(r->json, "stage"), "live");

    /* incidents: a fork and its halt, grouped under incident 1 */
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_FINDING;
    tl_finding_init(&o.u.finding, TL_CHECK_FORK);
    o.u.finding.id = 5;
    o.u.finding.seq = 8812;
    o.u.finding.incident = 1;
    inject(f, &o);
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_ACTION;
    tl_action *a = &o.u.action;
    a->cmd = TL_CMD_SET_SYMBOL_MODE;
    a->mode = TL_MODE_HARD_HALT;
    a->from_mode = TL_FROM_MODE_NONE;
    a->incident = 1;
    a->finding_id = 5;
    a->check = TL_CHECK_FORK;
    strcpy(a->symbol_name, "*");
    a->state = TL_ACT_PLANNED;
    inject(f, &o);
    a->id[0] = 1;
    a->id[15] = 9;
    a->state = TL_ACT_EXECUTED;
    inject(f, &o);
    a->state = TL_ACT_APPLIED;
    a->applied_seq = 8813;
    inject(f, &o);
    r = get(f, "/incidents");
    assert_int_equal(r->status, 200);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(r->json, "incidents");
    assert_int_equal(cJSON_GetArraySize(list), 1);
    const cJSON *inc = cJSON_GetArrayItem(list, 0);
    assert_string_equal(jstr(inc, "id"), "1");
    assert_string_equal(jstr(inc, "severity"), "SEV1");
    assert_string_equal(jstr(inc, "findings_total"), "1");
    assert_string_equal(jstr(inc, "by_check.FORK"), "1");
    const cJSON *acts = cJSON_GetObjectItemCaseSensitive(inc, "actions");
    assert_int_equal(cJSON_GetArraySize(acts), 1); /* PLANNED joined its EXECUTED */
    assert_string_equal(jstr(cJSON_GetArrayItem(acts, 0), "state"), "APPLIED");
    assert_string_equal(jstr(cJSON_GetArrayItem(acts, 0), "applied_seq"), "8813");
    r = get(f, "/incidents/1");
    assert_int_equal(r->status, 200);
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(r->json, "findings");
    assert_int_equal(cJSON_GetArraySize(fs), 1);
    assert_string_equal(jstr(cJSON_GetArrayItem(fs, 0), "check"), "FORK");
    assert_string_equal(jstr(cJSON_GetArrayItem(fs, 0), "seq"), "8812");
    expect_error(get(f, "/incidents/2"), 404, "not_found");
    expect_error(get(f, "/incidents/x"), 400, "bad_request");
    expect_error(get(f, "/incidents?limit=0"), 400, "bad_request");

    /* no bundle service in this process: 501 (the service's own test below) */
    expect_error(post(f, "/bundle", "{\"incident\":\"1\"}"), 501, "not_implemented");
    expect_error(get(f, "/bundle/abc"), 501, "not_implemented");
    fx_stop(f);
}

/* POST /bundle and GET /bundle/{id} with a real export service: 400 for a
 * bad body or range, 404 for an incident not kept, 202 and progress for a
 * good one, 429 once the service's table is full of unfinished jobs. The
 * service's worker is held inside its first export by a FIFO among the audit
 * rotations (its open blocks until a writer comes), so the table fills
 * deterministically. */
static void test_bundle_requests(void **state) {
    (void)state;
    fx *f = fx_start_with(false, NULL, true);
    /* 400: the body, then the range */
    expect_error(post(f, "/bundle", "[1]"), 400, "bad_request");
    expect_error(post(f, "/bundle", "{\"from\":\"1\"}"), 400, "bad_request");
    expect_error(post(f, "/bundle", "{\"from_seq\":\"1\",\"from_seq\":\"2\",\"to_seq\":\"3\"}"),
                 400, "bad_request");
    expect_error(post(f, "/bundle", "{\"from_seq\":\"10\",\"to_seq\":\"5\"}"), 400, "bad_request");
    expect_error(post(f, "/bundle", "{\"from_seq\":0,\"to_seq\":5}"), 400, "bad_request");
    expect_error(post(f, "/bundle", "{\"from_seq\":\"-1\",\"to_seq\":\"5\"}"), 400, "bad_request");
    expect_error(post(f, "/bundle", "{\"from_seq\":\"5\"}"), 400, "bad_request");
    expect_error(post(f, "/bundle", "{\"incident\":\"x\"}"), 400, "bad_request");
    /* 404: an incident this process does not keep, and no range to go by */
    expect_error(post(f, "/bundle", "{\"incident\":\"99\"}"), 404, "not_found");
    expect_error(get(f, "/bundle/b0000000000000000"), 404, "not_found");

    /* hold the worker: a FIFO where it reads the audit rotations */
    char fifo[700];
    snprintf(fifo, sizeof fifo, "%s/audit/audit.999.jsonl", f->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    hres *r = post(f, "/bundle", "{\"from_seq\":\"1\",\"to_seq\":\"10\"}");
    assert_int_equal(r->status, 202);
    char first[64];
    snprintf(first, sizeof first, "%s", jstr(r->json, "id"));
    assert_true(first[0] == 'b');
    assert_non_null(strstr(jstr(r->json, "path"), "/bundles/"));
    /* it runs (part-way: blocked in staging), and says so */
    bool running = false;
    for (int i = 0; i < 2000 && !running; i++) {
        char url[96];
        snprintf(url, sizeof url, "/bundle/%s", first);
        r = get(f, url);
        assert_int_equal(r->status, 200);
        running = strcmp(jstr(r->json, "state"), "running") == 0 &&
                  strcmp(jstr(r->json, "phase"), "staging") == 0;
        if (!running)
            sleep_ms(1);
    }
    assert_true(running);
    assert_string_equal(jstr(r->json, "phase"), "staging");
    assert_string_equal(jstr(r->json, "from_seq"), "1");
    /* fill the table: the running job and TL_BUNDLE_JOBS - 1 queued ones */
    for (unsigned i = 1; i < TL_BUNDLE_JOBS; i++) {
        char body[96];
        snprintf(body, sizeof body, "{\"from_seq\":\"%u\",\"to_seq\":\"%u\"}", i + 1, i + 20);
        r = post(f, "/bundle", body);
        if (r->status != 202)
            fail_msg("request %u: %d", i, r->status);
    }
    r = post(f, "/bundle", "{\"from_seq\":\"1\",\"to_seq\":\"2\"}");
    expect_error(r, 429, "busy");
    /* let the worker go: a writer opens the FIFO and leaves (EOF), and the
     * FIFO goes so that the queued exports do not wait on it */
    int wfd = open(fifo, O_WRONLY | O_NONBLOCK);
    assert_true(wfd >= 0);
    assert_int_equal(unlink(fifo), 0);
    close(wfd);
    bool done = false;
    for (int i = 0; i < 20000 && !done; i++) {
        char url[96];
        snprintf(url, sizeof url, "/bundle/%s", first);
        r = get(f, url);
        done = strcmp(jstr(r->json, "state"), "done") == 0;
        if (!done)
            sleep_ms(1);
    }
    assert_true(done);
    assert_string_equal(jstr(r->json, "percent"), "100");
    fx_stop(f);
}

static void test_kill_switch(void **state) {
    (void)state;
    fx *f = fx_start(true, NULL);
    inject_symbol(f, 1, "BTCUSDT");
    hres *r = post(f, "/policy", "{\"action\":\"none\",\"reason\":\"drill\"}");
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(r->json, "stage"), "detect");
    assert_string_equal(jstr(r->json, "applied"), "true");
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->action, TL_ACTION_NONE); /* the loop has it */
    pthread_mutex_unlock(&f->mu);
    assert_true(audit_has(f, "POLICY"));
    r = get(f, "/capabilities");
    assert_string_equal(jstr(r->json, "stage"), "detect");
    assert_string_equal(jstr(r->json, "action"), "none");

    /* an escalation now: PLANNED, then BLOCKED{detect_only}; nothing executes */
    r = post(
        f, "/actions/mode",
        "{\"symbol\":\"BTCUSDT\",\"mode\":\"HARD_HALT\",\"reason\":\"drill\",\"ticket\":\"T-1\"}");
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(r->json, "state"), "BLOCKED");
    assert_string_equal(jstr(r->json, "action.block_reason"), "detect_only");
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->executed, 0);
    pthread_mutex_unlock(&f->mu);

    /* partial updates keep the rest */
    r = post(f, "/policy", "{\"armed\":false}");
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(r->json, "action"), "none");
    assert_string_equal(jstr(r->json, "armed"), "false");
    r = post(f, "/policy", "{\"action\":\"live\",\"armed\":true}");
    assert_string_equal(jstr(r->json, "stage"), "live");

    /* bad bodies */
    expect_error(post(f, "/policy", "{\"action\":\"off\"}"), 400, "bad_request");
    expect_error(post(f, "/policy", "{\"armed\":\"yes\"}"), 400, "bad_request");
    expect_error(post(f, "/policy", "{}"), 400, "bad_request");
    expect_error(post(f, "/policy", "{\"action\":\"none\",\"extra\":1}"), 400, "bad_request");
    expect_error(post(f, "/policy", "{\"action\":\"none\",\"action\":\"live\"}"), 400,
                 "bad_request");
    expect_error(post(f, "/policy", "not json"), 400, "bad_request");
    expect_error(post(f, "/policy", "{\"action\":\"none\"} trailing"), 400, "bad_request");
    expect_error(post(f, "/policy", "[1,2]"), 400, "bad_request");
    expect_error(req(f, false, "POST", "/policy", NULL, NULL), 400, "bad_request");
    r = get(f, "/policy");
    assert_string_equal(jstr(r->json, "stage"), "live"); /* none of them changed it */
    fx_stop(f);
}

static void test_manual_mode(void **state) {
    (void)state;
    fx *f = fx_start(true, NULL);
    inject_symbol(f, 3, "ETHUSDT");
    hres *r = post(f, "/actions/mode",
                   "{\"symbol\":\"ETHUSDT\",\"mode\":\"CANCEL_ONLY\",\"reason\":\"ops: "
                   "\\u00e9vidence\",\"ticket\":\"INC-7\"}");
    assert_int_equal(r->status, 200);
    const char *st = jstr(r->json, "state");
    assert_true(strcmp(st, "EXECUTED") == 0 || strcmp(st, "APPLIED") == 0);
    assert_string_equal(jstr(r->json, "action.origin"), "manual");
    assert_string_equal(jstr(r->json, "action.key"), "sidecar");
    assert_string_equal(jstr(r->json, "action.symbol"), "ETHUSDT");
    assert_string_equal(jstr(r->json, "action.ticket"), "INC-7");
    char id[40];
    snprintf(id, sizeof id, "%s", jstr(r->json, "id"));
    assert_int_equal(strlen(id), 32);
    char path[64];
    snprintf(path, sizeof path, "/actions/%s", id);
    r = get(f, path);
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(r->json, "state"), "APPLIED");
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->mode[3], TL_MODE_CANCEL_ONLY);
    pthread_mutex_unlock(&f->mu);
    assert_true(audit_has(f, "MANUAL_MODE"));
    /* `*` is fine */
    r = post(f, "/actions/mode",
             "{\"symbol\":\"*\",\"mode\":\"SOFT_HALT\",\"reason\":\"r\",\"ticket\":\"t\"}");
    assert_int_equal(r->status, 200);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->global, TL_MODE_SOFT_HALT);
    pthread_mutex_unlock(&f->mu);

    expect_error(
        post(f, "/actions/mode",
             "{\"symbol\":\"NOPE\",\"mode\":\"HARD_HALT\",\"reason\":\"r\",\"ticket\":\"t\"}"),
        422, "unknown_symbol");
    expect_error(
        post(f, "/actions/mode",
             "{\"symbol\":\"ETHUSDT\",\"mode\":\"NORMAL\",\"reason\":\"r\",\"ticket\":\"t\"}"),
        400, "not_an_escalation");
    expect_error(
        post(f, "/actions/mode",
             "{\"symbol\":\"ETHUSDT\",\"mode\":\"LOUD\",\"reason\":\"r\",\"ticket\":\"t\"}"),
        400, "bad_request");
    expect_error(post(f, "/actions/mode",
                      "{\"symbol\":\"ETHUSDT\",\"mode\":\"HARD_HALT\",\"reason\":\"r\"}"),
                 400, "bad_request");
    expect_error(post(f, "/actions/mode",
                      "{\"symbol\":\"bad name\",\"mode\":\"HARD_HALT\",\"reason\":\"r\",\"ticket\":"
                      "\"t\"}"),
                 400, "bad_request");
    expect_error(get(f, "/actions/0123"), 400, "bad_request");
    expect_error(get(f, "/actions/0123456789abcdef0123456789abcdef"), 404, "not_found");
    fx_stop(f);
}

static hres *wait_outcome(fx *f, const char *outcome) {
    hres *r = NULL;
    for (int i = 0; i < 500; i++) {
        r = get(f, "/resume");
        if (strcmp(jstr(r->json, "canary.phase"), "idle") == 0 &&
            strcmp(jstr(r->json, "canary.last_outcome"), outcome) == 0)
            return r;
        sleep_ms(10);
    }
    fail_msg("no %s: %s", outcome, r->body);
    return r;
}

static void test_resume(void **state) {
    (void)state;
    /* without an operator key: refused, clearly */
    fx *f = fx_start(false, NULL);
    expect_error(post(f, "/resume", "{\"symbol\":\"S1\",\"ticket\":\"T\"}"), 409,
                 "no_operator_key");
    fx_stop(f);

    f = fx_start(true, NULL);
    inject_symbol(f, 1, "S1");
    inject_symbol(f, 2, "S2");
    inject_mode(f, 0, TL_MODE_HARD_HALT, true);
    /* with the kill switch on, a resume is refused */
    assert_int_equal(post(f, "/policy", "{\"action\":\"none\"}")->status, 200);
    expect_error(post(f, "/resume", "{\"symbol\":\"S1\",\"ticket\":\"T\"}"), 409, "detect_only");
    assert_int_equal(post(f, "/policy", "{\"action\":\"live\"}")->status, 200);
    /* bad requests */
    expect_error(post(f, "/resume", "{\"symbol\":\"S1\"}"), 400, "bad_request");
    expect_error(post(f, "/resume", "{\"symbol\":\"S1\",\"symbols\":[\"S2\"],\"ticket\":\"T\"}"),
                 400, "bad_request");
    expect_error(post(f, "/resume", "{\"symbol\":\"S1\",\"ticket\":\"T\",\"window_ms\":0}"), 400,
                 "bad_request");
    expect_error(post(f, "/resume", "{\"symbol\":\"S9\",\"ticket\":\"T\"}"), 422, "unknown_symbol");
    expect_error(post(f, "/resume", "{\"symbols\":[\"S2\"],\"ticket\":\"T\"}"), 409, "not_passed");
    expect_error(post(f, "/resume", "{\"withdrawals\":true,\"ticket\":\"T\"}"), 409, "not_passed");

    /* a global HARD_HALT: pins, the global step, the canary step, a clean window */
    hres *r = post(f, "/resume", "{\"symbol\":\"S1\",\"ticket\":\"INC-1\",\"window_ms\":300}");
    assert_int_equal(r->status, 202);
    expect_error(post(f, "/resume", "{\"symbol\":\"S2\",\"ticket\":\"T\"}"), 409, "busy");
    r = wait_outcome(f, "CANARY_PASSED");
    assert_string_equal(jstr(r->json, "canary.passed"), "true");
    assert_string_equal(jstr(r->json, "canary.passed_level"), "HARD_HALT");
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->global, TL_MODE_SOFT_HALT);
    assert_int_equal(f->mode[1], TL_MODE_SOFT_HALT);
    assert_int_equal(f->mode[2], TL_MODE_HARD_HALT); /* pinned: never moved */
    pthread_mutex_unlock(&f->mu);
    assert_true(audit_has(f, "RESUME_REQUEST"));
    assert_true(audit_has(f, "RESUME_STARTED"));
    assert_true(audit_has(f, "PINS_APPLIED"));
    assert_true(audit_has(f, "GLOBAL_LOWERED"));
    assert_true(audit_has(f, "CANARY_STEPPED"));
    assert_true(audit_has(f, "CANARY_PASSED"));

    /* then a batch, then the withdrawals */
    assert_int_equal(post(f, "/resume", "{\"symbols\":[\"S2\"],\"ticket\":\"INC-1\"}")->status,
                     202);
    wait_outcome(f, "BATCH_DONE");
    assert_int_equal(post(f, "/resume", "{\"withdrawals\":true,\"ticket\":\"INC-1\"}")->status,
                     202);
    r = wait_outcome(f, "WITHDRAWALS_RESUMED");
    assert_string_equal(jstr(r->json, "engine.withdrawals_halted"), "false");

    /* the next level: a recurrence during the window rolls the canary back */
    r = post(f, "/resume", "{\"symbol\":\"S2\",\"ticket\":\"INC-1\",\"window_ms\":60000}");
    assert_int_equal(r->status, 202);
    for (int i = 0; i < 500; i++) {
        r = get(f, "/resume");
        if (strcmp(jstr(r->json, "canary.phase"), "watching") == 0)
            break;
        sleep_ms(10);
    }
    assert_string_equal(jstr(r->json, "canary.phase"), "watching");
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->mode[2], TL_MODE_CANCEL_ONLY);
    pthread_mutex_unlock(&f->mu);
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_FINDING;
    tl_finding_init(&o.u.finding, TL_CHECK_CHAIN_BREAK);
    o.u.finding.id = 77;
    inject(f, &o);
    wait_outcome(f, "ROLLED_BACK");
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->mode[2], TL_MODE_SOFT_HALT); /* back to its prior mode */
    pthread_mutex_unlock(&f->mu);
    assert_true(audit_has(f, "ROLLED_BACK"));
    r = get(f, "/metrics");
    assert_non_null(strstr(r->body, "tally_canary_total{outcome=\"rolled_back\"} 1\n"));
    assert_non_null(strstr(r->body, "tally_canary_total{outcome=\"passed\"} 1\n"));
    fx_stop(f);
}

static char *results_of(fx *f, const char *query) {
    hres *r = get(f, query);
    assert_int_equal(r->status, 200);
    return cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r->json, "results"));
}

static const char *wait_reconcile(fx *f, const char *id) {
    char path[128];
    snprintf(path, sizeof path, "/reconcile/%s", id);
    static char status[32];
    for (int i = 0; i < 1000; i++) {
        hres *r = get(f, path);
        assert_int_equal(r->status, 200);
        snprintf(status, sizeof status, "%s", jstr(r->json, "status"));
        if (strcmp(status, "QUEUED") != 0 && strcmp(status, "RUNNING") != 0)
            return status;
        sleep_ms(10);
    }
    fail_msg("reconcile %s did not finish", id);
    return NULL;
}

static void copy_dir(const char *from, const char *to) {
    mkdir(to, 0755);
    static const char *const names[] = {"00000000000000000001.wal", "00000000000000000039.wal",
                                        "00000000000000000077.wal"};
    for (int i = 0; i < 3; i++) {
        char a[600], b[600];
        snprintf(a, sizeof a, "%s/%s", from, names[i]);
        snprintf(b, sizeof b, "%s/%s", to, names[i]);
        size_t n;
        uint8_t *p = tu_read_file(a, &n);
        if (i == 1)
            p[1000] ^= 0x40; /* a flipped bit in a sealed segment */
        tu_write_file(b, p, n);
        free(p);
    }
}

static void test_reconcile(void **state) {
    (void)state;
    fx *f = fx_start(true, NULL);
    hres *r = post(f, "/reconcile", "{\"from_seq\":1,\"to_seq\":103}");
    assert_int_equal(r->status, 202);
    char id1[64];
    snprintf(id1, sizeof id1, "%s", jstr(r->json, "id"));
    assert_string_equal(wait_reconcile(f, id1), "CONSISTENT");
    char path[128];
    snprintf(path, sizeof path, "/reconcile/%s", id1);
    r = get(f, path);
    assert_string_equal(jstr(r->json, "result.records"), "103");
    assert_string_equal(jstr(r->json, "result.findings.missing"), "0");
    assert_string_equal(jstr(r->json, "result.instance_id"), tl_api_instance_id(f->api));
    assert_string_equal(jstr(r->json, "result.scope.from_seq"), "1");
    assert_true(strlen(jstr(r->json, "result.started_ns")) > 10);
    assert_true(strlen(jstr(r->json, "result.finished_ns")) > 10);
    /* seqs as strings, a symbol scope */
    r = post(f, "/reconcile", "{\"from_seq\":\"40\",\"to_seq\":\"60\",\"symbols\":[\"SYM1\"]}");
    assert_int_equal(r->status, 202);
    char id2[64];
    snprintf(id2, sizeof id2, "%s", jstr(r->json, "id"));
    assert_string_equal(wait_reconcile(f, id2), "CONSISTENT");
    /* a scope beyond the log: checked as far as it goes */
    r = post(f, "/reconcile", "{\"from_seq\":100,\"to_seq\":5000}");
    char id3[64];
    snprintf(id3, sizeof id3, "%s", jstr(r->json, "id"));
    assert_string_equal(wait_reconcile(f, id3), "CONSISTENT");
    /* bad scopes */
    expect_error(post(f, "/reconcile", "{\"from_seq\":0,\"to_seq\":5}"), 400, "bad_request");
    expect_error(post(f, "/reconcile", "{\"from_seq\":9,\"to_seq\":5}"), 400, "bad_request");
    expect_error(post(f, "/reconcile", "{\"from_seq\":\"x\",\"to_seq\":5}"), 400, "bad_request");
    expect_error(post(f, "/reconcile", "{\"from_seq\":1.5,\"to_seq\":5}"), 400, "bad_request");
    expect_error(post(f, "/reconcile", "{\"from_seq\":1,\"to_seq\":5,\"symbols\":[\"a b\"]}"), 400,
                 "bad_request");
    expect_error(get(f, "/reconcile/results?status=MAYBE"), 400, "bad_request");
    expect_error(get(f, "/reconcile/results?limit=0"), 400, "bad_request");
    expect_error(get(f, "/reconcile/nope"), 404, "not_found");
    r = get(f, "/reconcile/results?limit=2");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(r->json, "results");
    assert_int_equal(cJSON_GetArraySize(res), 2);
    assert_string_equal(jstr(cJSON_GetArrayItem(res, 0), "id"), id3); /* newest first */
    assert_string_equal(jstr(cJSON_GetArrayItem(res, 1), "id"), id2);
    char *none = results_of(f, "/reconcile/results?status=MISMATCH");
    assert_string_equal(none, "[]");
    free(none);
    r = get(f, "/metrics");
    assert_non_null(strstr(r->body, "tally_reconcile_runs_total 3\n"));
    assert_true(audit_has(f, "RECONCILE_DONE"));

    /* the same state dir over a WAL with a flipped bit: MISMATCH, and the
     * earlier results are still there after the restart */
    char bad[256];
    snprintf(bad, sizeof bad, "%.200s/badwal", f->dir);
    copy_dir(tu_shared("spec/vectors/wal-clean"), bad);
    fx_pause(f);
    tl_api_destroy(f->api);
    snprintf(f->cfg.engine_wal_dir, sizeof f->cfg.engine_wal_dir, "%s", bad);
    fx_api(f, true);
    fx_resume(f);
    r = post(f, "/reconcile", "{\"from_seq\":1,\"to_seq\":103}");
    char id4[64];
    snprintf(id4, sizeof id4, "%s", jstr(r->json, "id"));
    assert_string_equal(wait_reconcile(f, id4), "MISMATCH");
    snprintf(path, sizeof path, "/reconcile/%s", id4);
    r = get(f, path);
    assert_string_equal(jstr(r->json, "result.by_check.WAL_CORRUPT"), "1");
    assert_string_equal(jstr(r->json, "result.findings.missing"), "1");
    r = get(f, "/reconcile/results?status=MISMATCH");
    res = cJSON_GetObjectItemCaseSensitive(r->json, "results");
    assert_int_equal(cJSON_GetArraySize(res), 1);
    assert_string_equal(jstr(cJSON_GetArrayItem(res, 0), "id"), id4);
    r = get(f, "/reconcile/results?status=CONSISTENT&limit=10");
    res = cJSON_GetObjectItemCaseSensitive(r->json, "results");
    assert_int_equal(cJSON_GetArraySize(res), 3); /* from before the restart */
    assert_string_equal(jstr(cJSON_GetArrayItem(res, 2), "id"), id1);
    r = get(f, "/metrics");
    assert_non_null(strstr(r->body, "tally_reconcile_runs_with_mismatch_total 1\n"));
    /* a scope no longer retained is an ERROR, never CONSISTENT */
    fx_pause(f);
    tl_api_destroy(f->api);
    char gone[256];
    snprintf(gone, sizeof gone, "%.200s/gone", f->dir);
    mkdir(gone, 0755);
    char a[700], b[700];
    snprintf(a, sizeof a, "%s/00000000000000000077.wal", tu_shared("spec/vectors/wal-clean"));
    snprintf(b, sizeof b, "%s/00000000000000000077.wal", gone);
    size_t n;
    uint8_t *p = tu_read_file(a, &n);
    tu_write_file(b, p, n);
    free(p);
    snprintf(f->cfg.engine_wal_dir, sizeof f->cfg.engine_wal_dir, "%s", gone);
    fx_api(f, true);
    fx_resume(f);
    r = post(f, "/reconcile", "{\"from_seq\":10,\"to_seq\":90}");
    char id5[64];
    snprintf(id5, sizeof id5, "%s", jstr(r->json, "id"));
    assert_string_equal(wait_reconcile(f, id5), "ERROR");
    fx_stop(f);
}

static void test_tcp_auth(void **state) {
    (void)state;
    fx *f = fx_start(true, NULL);
    assert_true(tl_api_tcp_port(f->api) != 0);
    hres *r = req(f, true, "GET", "/healthz", NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_int_equal(req(f, true, "GET", "/capabilities", NULL, NULL)->status, 200);
    assert_int_equal(req(f, true, "GET", "/metrics", NULL, NULL)->status, 200);
    assert_int_equal(req(f, true, "GET", "/incidents", NULL, NULL)->status, 200);
    assert_int_equal(req(f, true, "GET", "/reconcile/results", NULL, NULL)->status, 200);
    /* mutations over TCP: no token, a wrong one, a cut one, the right one */
    expect_error(req(f, true, "POST", "/policy", "{\"action\":\"none\"}", NULL), 403, "forbidden");
    expect_error(req(f, true, "POST", "/policy", "{\"action\":\"none\"}",
                     "Authorization: Bearer wrong-token-0123456789\r\n"),
                 403, "forbidden");
    expect_error(req(f, true, "POST", "/policy", "{\"action\":\"none\"}",
                     "Authorization: Bearer s3cret-token\r\n"),
                 403, "forbidden");
    expect_error(req(f, true, "POST", "/reconcile", "{\"from_seq\":1,\"to_seq\":2}", NULL), 403,
                 "forbidden");
    expect_error(req(f, true, "POST", "/resume", "{\"symbol\":\"S\",\"ticket\":\"T\"}", NULL), 403,
                 "forbidden");
    r = get(f, "/policy");
    assert_string_equal(jstr(r->json, "stage"), "live"); /* unchanged */
    r = req(f, true, "POST", "/policy", "{\"action\":\"none\"}",
            "Authorization: Bearer " TOKEN "\r\n");
    assert_int_equal(r->status, 200);
    assert_string_equal(jstr(r->json, "stage"), "detect");
    expect_error(req(f, true, "GET", "/nothing", NULL, NULL), 404, "not_found");
    fx_stop(f);
}

static void test_bad_requests(void **state) {
    (void)state;
    fx *f = fx_start(true, NULL);
    expect_error(get(f, "/nothing"), 404, "not_found");
    expect_error(get(f, "/"), 404, "not_found");
    hres *r = req(f, false, "DELETE", "/healthz", NULL, NULL);
    expect_error(r, 405, "method_not_allowed");
    assert_non_null(strstr(r->head, "Allow: GET"));
    expect_error(post(f, "/healthz", "{}"), 405, "method_not_allowed");
    r = get(f, "/reconcile");
    expect_error(r, 405, "method_not_allowed");
    assert_non_null(strstr(r->head, "Allow: POST"));
    /* a huge body, announced: 413 before it is read */
    int fd = connect_unix(f);
    const char *head = "POST /policy HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                       "Content-Length: 100000000\r\n\r\n";
    send_all(fd, head, strlen(head));
    hres big;
    read_response(fd, &big);
    close(fd);
    assert_int_equal(big.status, 413);
    cJSON_Delete(big.json);
    /* a huge body in chunks (no length given): 413 at its end */
    fd = connect_unix(f);
    head = "POST /policy HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
           "Transfer-Encoding: chunked\r\n\r\n";
    send_all(fd, head, strlen(head));
    for (int i = 0; i < 8; i++) {
        char line[16];
        int ln = snprintf(line, sizeof line, "1000\r\n");
        send_all(fd, line, (size_t)ln);
        char data[4096];
        memset(data, 'a', sizeof data);
        send_all(fd, data, sizeof data);
        send_all(fd, "\r\n", 2);
    }
    send_all(fd, "0\r\n\r\n", 5);
    read_response(fd, &big);
    close(fd);
    assert_int_equal(big.status, 413);
    cJSON_Delete(big.json);
    /* garbage instead of HTTP: the connection is closed or answered 400 */
    fd = connect_unix(f);
    send_all(fd, "\x01\x02\x03 nonsense\r\n\r\n", 16);
    char buf[256];
    struct pollfd pfd = {fd, POLLIN, 0};
    assert_true(poll(&pfd, 1, 10000) == 1);
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    assert_true(n <= 0 || strncmp(buf, "HTTP/1.1 4", 10) == 0);
    close(fd);
    /* after all that, the server still answers */
    assert_int_equal(get(f, "/healthz")->status, 200);
    r = get(f, "/metrics");
    assert_non_null(strstr(r->body, "tally_control_requests_total{code=\"4xx\"}"));
    fx_stop(f);
}

/* A client that sends half a request and stays: the control thread serves
 * others meanwhile (it never waits on one connection). Judged by order, not
 * by time: the other requests are answered while the slow connection is
 * still open (MHD would close it only after TL_API_TIMEOUT_S). */
static void test_slow_client(void **state) {
    (void)state;
    fx *f = fx_start(true, NULL);
    int slow = connect_unix(f);
    send_all(slow, "GET /heal", 9);
    int slow_tcp = connect_tcp(f);
    send_all(slow_tcp, "POST /policy HTTP/1.1\r\nContent-Length: 100\r\n\r\n{", 47);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(get(f, "/healthz")->status, 200);
        assert_int_equal(req(f, true, "GET", "/metrics", NULL, NULL)->status, 200);
    }
    struct pollfd p[2] = {{slow, POLLIN, 0}, {slow_tcp, POLLIN, 0}};
    assert_int_equal(poll(p, 2, 0), 0); /* neither answered nor closed: still pending */
    close(slow);
    close(slow_tcp);
    assert_int_equal(get(f, "/healthz")->status, 200);
    fx_stop(f);
}

/* A second tallyd on the same control socket is refused; a stale socket
 * file (its server gone) is replaced. */
static void test_socket_takeover(void **state) {
    (void)state;
    fx *f = fx_start(true, NULL);
    struct stat st;
    assert_int_equal(stat(f->cfg.control_socket, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    tl_api *second = NULL;
    tl_api_deps d = {
        .cfg = &f->cfg,
        .ctl = &f->ctl,
        .audit = &f->audit,
        .beat_ns = &f->beat,
        .policy = &f->pol,
        .tag_seed = 1,
        .max_symbols = 16,
        .start_mono_ns = mono(),
    };
    char err[512];
    tl_config c2 = f->cfg;
    c2.control_listen[0] = '\0';
    d.cfg = &c2;
    assert_int_equal(tl_api_create(&second, &d, err, sizeof err), -1);
    assert_non_null(strstr(err, "another process serves it"));
    fx_stop(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_only_endpoints), cmocka_unit_test(test_kill_switch),
        cmocka_unit_test(test_manual_mode),         cmocka_unit_test(test_resume),
        cmocka_unit_test(test_reconcile),           cmocka_unit_test(test_tcp_auth),
        cmocka_unit_test(test_bad_requests),        cmocka_unit_test(test_slow_client),
        cmocka_unit_test(test_socket_takeover),     cmocka_unit_test(test_bundle_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
