/* test_tallyctl.c: the tallyctl binary, run as an operator would: its exit
 * codes, its --json documents, and its offline subcommands on the spec's
 * vectors and the quanta xwal1 fixtures. (The online subcommands against a
 * live tallyd are in tests/integration/run_operator.sh.) */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shm/ring.h"

typedef struct run {
    int rc;
    char *out;
    size_t len;
    cJSON *json;
} run;

/* Runs tallyctl with argv (NULL-terminated), stdout captured, stderr kept. */
static run tc(const char *const *args) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        const char *argv[32];
        int n = 0;
        argv[n++] = tu_build_path("admin/tallyctl");
        for (int i = 0; args[i] != NULL && n < 31; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    run r = {0};
    size_t cap = 1 << 16;
    r.out = malloc(cap);
    assert_non_null(r.out);
    for (;;) {
        if (r.len + 1 >= cap) {
            cap *= 2;
            r.out = realloc(r.out, cap);
            assert_non_null(r.out);
        }
        ssize_t k = read(p[0], r.out + r.len, cap - r.len - 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        r.len += (size_t)k;
    }
    r.out[r.len] = '\0';
    close(p[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    r.rc = WEXITSTATUS(st);
    r.json = cJSON_Parse(r.out);
    return r;
}

static void done(run *r) {
    cJSON_Delete(r->json);
    free(r->out);
}

static const char *js(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "(none)";
}

static void test_wal_verify_clean(void **state) {
    (void)state;
    const char *dir = tu_shared("spec/vectors/wal-clean");
    run r = tc((const char *[]){"wal", "verify", dir, NULL});
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "CONSISTENT"));
    assert_non_null(strstr(r.out, "103 records"));
    done(&r);
    r = tc((const char *[]){"--json", "wal", "verify", dir, NULL});
    assert_int_equal(r.rc, 0);
    assert_non_null(r.json);
    assert_string_equal(js(r.json, "status"), "CONSISTENT");
    assert_string_equal(js(r.json, "records"), "103");
    assert_string_equal(js(r.json, "first_seq"), "1");
    assert_string_equal(js(r.json, "last_seq"), "103");
    assert_string_equal(js(r.json, "tail"), "clean");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "findings")), 0);
    done(&r);
    /* --json after the subcommand works too */
    r = tc((const char *[]){"wal", "verify", "--dialect", "tlywal1", dir, "--json", NULL});
    assert_int_equal(r.rc, 0);
    assert_string_equal(js(r.json, "dialect"), "tlywal1");
    done(&r);
}

static void test_wal_verify_corrupt(void **state) {
    (void)state;
    char *tmp = tu_tmpdir("tallyctl");
    static const char *const names[] = {"00000000000000000001.wal", "00000000000000000039.wal",
                                        "00000000000000000077.wal"};
    for (int i = 0; i < 3; i++) {
        char a[600], b[600];
        snprintf(a, sizeof a, "%s/%s", tu_shared("spec/vectors/wal-clean"), names[i]);
        snprintf(b, sizeof b, "%s/%s", tmp, names[i]);
        size_t n;
        uint8_t *p = tu_read_file(a, &n);
        if (i == 1)
            p[5000] ^= 0x01; /* one bit of a record (seq 48), in a sealed segment */
        tu_write_file(b, p, n);
        free(p);
    }
    run r = tc((const char *[]){"wal", "verify", tmp, NULL});
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "MISMATCH"));
    assert_non_null(strstr(r.out, "WAL_CORRUPT"));
    assert_non_null(strstr(r.out, "00000000000000000039.wal"));
    done(&r);
    r = tc((const char *[]){"wal", "verify", "--json", tmp, NULL});
    assert_int_equal(r.rc, 1);
    assert_string_equal(js(r.json, "status"), "MISMATCH");
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(r.json, "findings");
    assert_true(cJSON_GetArraySize(fs) >= 1);
    const cJSON *f = cJSON_GetArrayItem(fs, 0);
    assert_string_equal(js(f, "check"), "WAL_CORRUPT");
    assert_string_equal(js(f, "segment_file"), "00000000000000000039.wal");
    assert_string_equal(js(f, "severity"), "SEV1");
    assert_string_equal(js(f, "rule_name"), "checksum");
    assert_string_equal(js(f, "offset"), "4992"); /* the record holding byte 5000 */
    assert_string_equal(js(f, "seq"), "48");
    done(&r);
    tu_rm_rf(tmp);
    free(tmp);
}

/* Two engines wrote one xwal1 log: a fork and a fence regression at record
 * seqs 8 and 9 (upstream's replay accepts it). */
static void test_wal_verify_xwal1_stale_leader(void **state) {
    (void)state;
    const char *dir = tu_shared("fixtures/quanta-xwal1/stale_leader/wal");
    run r = tc((const char *[]){"wal", "verify", "--dialect", "xwal1", dir, NULL});
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "FORK"));
    assert_non_null(strstr(r.out, "FENCE_REGRESSION"));
    assert_non_null(strstr(r.out, "segment-000001.wal offset 2717 seq 8"));
    assert_non_null(strstr(r.out, "segment-000001.wal offset 3445 seq 9"));
    done(&r);
    r = tc((const char *[]){"--json", "wal", "verify", "--dialect", "xwal1", dir, NULL});
    assert_int_equal(r.rc, 1);
    assert_string_equal(js(r.json, "status"), "MISMATCH");
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(r.json, "findings");
    assert_int_equal(cJSON_GetArraySize(fs), 4);
    static const char *const checks[] = {"FORK", "FENCE_REGRESSION", "FORK", "FENCE_REGRESSION"};
    static const char *const offs[] = {"2717", "2717", "3445", "3445"};
    static const char *const seqs[] = {"8", "8", "9", "9"};
    for (int i = 0; i < 4; i++) {
        const cJSON *f = cJSON_GetArrayItem(fs, i);
        assert_string_equal(js(f, "check"), checks[i]);
        assert_string_equal(js(f, "segment_file"), "segment-000001.wal");
        assert_string_equal(js(f, "offset"), offs[i]);
        assert_string_equal(js(f, "seq"), seqs[i]);
        assert_string_equal(js(f, "symbol_name"), "BTC-KRW");
        assert_string_equal(js(f, "severity"), "SEV1");
    }
    assert_string_equal(js(cJSON_GetArrayItem(fs, 1), "rule_name"), "fence");
    done(&r);
    /* the clean scenarios pass, with both decoders */
    static const char *const clean[] = {"basic", "default_8MiB", "tiny_segments", "restart",
                                        "escapes"};
    for (int i = 0; i < 5; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "fixtures/quanta-xwal1/%s/wal", clean[i]);
        const char *d = tu_shared(rel);
        r = tc((const char *[]){"wal", "verify", "--dialect", "xwal1", d, NULL});
        if (r.rc != 0)
            fail_msg("%s: %s", clean[i], r.out);
        done(&r);
        r = tc((const char *[]){"wal", "verify", "--dialect", "xwal1", "--strict", d, NULL});
        assert_int_equal(r.rc, 0);
        done(&r);
    }
}

static void test_usage_and_errors(void **state) {
    (void)state;
    run r = tc((const char *[]){NULL});
    assert_int_equal(r.rc, 2);
    done(&r);
    r = tc((const char *[]){"frobnicate", NULL});
    assert_int_equal(r.rc, 2);
    done(&r);
    r = tc((const char *[]){"wal", "verify", NULL});
    assert_int_equal(r.rc, 2);
    done(&r);
    r = tc((const char *[]){"wal", "verify", "--dialect", "xwal2", "/tmp", NULL});
    assert_int_equal(r.rc, 2);
    done(&r);
    r = tc((const char *[]){"wal", "verify", "/nonexistent/wal", NULL});
    assert_int_equal(r.rc, 2);
    done(&r);
    r = tc((const char *[]){"ring", "inspect", "tally-test-no-such-ring", NULL});
    assert_int_equal(r.rc, 2);
    done(&r);
    /* no daemon at the socket: a connection error */
    r = tc((const char *[]){"--socket", "/nonexistent/tally.sock", "status", NULL});
    assert_int_equal(r.rc, 2);
    done(&r);
    r = tc((const char *[]){"--socket", "/nonexistent/tally.sock", "reconcile", "--from", "1",
                            "--to", "2", NULL});
    assert_int_equal(r.rc, 2);
    done(&r);
    r = tc((const char *[]){"mode", "BTC", NULL}); /* missing arguments */
    assert_int_equal(r.rc, 2);
    done(&r);
    r = tc((const char *[]){"resume", "--symbol", "BTC", NULL}); /* no ticket */
    assert_int_equal(r.rc, 2);
    done(&r);
    /* --help on every subcommand: exit 0, a usage text */
    static const char *const subs[][3] = {
        {"status", NULL, NULL},    {"results", NULL, NULL}, {"incidents", NULL, NULL},
        {"policy", NULL, NULL},    {"mode", NULL, NULL},    {"resume", NULL, NULL},
        {"reconcile", NULL, NULL}, {"metrics", NULL, NULL}, {"wal", "verify", NULL},
        {"ring", "inspect", NULL},
    };
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        const char *args[4] = {subs[i][0], subs[i][1] != NULL ? subs[i][1] : "--help",
                               subs[i][1] != NULL ? "--help" : NULL, NULL};
        r = tc(args);
        if (r.rc != 0 || strstr(r.out, "usage: tallyctl") == NULL)
            fail_msg("%s --help: rc %d: %s", subs[i][0], r.rc, r.out);
        done(&r);
    }
    r = tc((const char *[]){"--help", NULL});
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "wal verify DIR"));
    done(&r);
}

static void test_ring_inspect(void **state) {
    (void)state;
    char *tmp = tu_tmpdir("tcring");
    char name[600];
    snprintf(name, sizeof name, "%s/ring", tmp);
    uint8_t id[16] = {0xab, 0xcd};
    tl_ring_producer *p = NULL;
    assert_int_equal(tl_ring_create(name, 1u << 20, id, NULL, &p), TL_RING_OK);
    tl_ring_beat(p, tl_ring_now_mono_ns());
    tl_ring_set_last_seq(p, 41);
    tl_ring_set_durable(p, 40, 1, 4096);
    run r = tc((const char *[]){"ring", "inspect", name, "--json", NULL});
    assert_int_equal(r.rc, 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "valid")));
    assert_string_equal(js(r.json, "magic"), "TLYRING1");
    assert_string_equal(js(r.json, "capacity"), "1048576");
    assert_string_equal(js(r.json, "engine_id"), "abcd0000000000000000000000000000");
    assert_string_equal(js(r.json, "last_seq"), "41");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r.json, "wal_durable");
    assert_string_equal(js(d, "seq"), "40");
    assert_string_equal(js(d, "offset"), "4096");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "producer_alive")));
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(r.json, "consumer");
    assert_string_equal(js(c, "state"), "absent");
    done(&r);
    r = tc((const char *[]){"ring", "inspect", name, NULL});
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "header      valid"));
    done(&r);
    tl_ring_close(p);
    /* a scribbled header: the checksum no longer holds */
    size_t n;
    uint8_t *bytes = tu_read_file(name, &n);
    bytes[16] ^= 0x01; /* capacity */
    tu_write_file(name, bytes, n);
    free(bytes);
    r = tc((const char *[]){"ring", "inspect", name, NULL});
    assert_int_equal(r.rc, 1);
    assert_non_null(strstr(r.out, "INVALID"));
    done(&r);
    tu_rm_rf(tmp);
    free(tmp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wal_verify_clean),
        cmocka_unit_test(test_wal_verify_corrupt),
        cmocka_unit_test(test_wal_verify_xwal1_stale_leader),
        cmocka_unit_test(test_usage_and_errors),
        cmocka_unit_test(test_ring_inspect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
