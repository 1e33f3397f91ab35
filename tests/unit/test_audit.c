/* test_audit.c: the audit log's hash chain (across rotation and restarts),
 * sorted keys, recovery of EXECUTED actions, no secrets, and a disk that
 * refuses writes (RLIMIT_FSIZE) losing nothing. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "admin/audit.h"

static tl_action action(uint8_t idb, uint8_t state) {
    tl_action a;
    memset(&a, 0, sizeof a);
    memset(a.id, idb, sizeof a.id);
    a.cmd = TL_CMD_SET_SYMBOL_MODE;
    a.mode = TL_MODE_HARD_HALT;
    a.from_mode = TL_FROM_MODE_NONE;
    a.state = state;
    a.check = TL_CHECK_FORK;
    a.severity = TL_SEV_SEV1;
    a.fence = 7;
    strcpy(a.symbol_name, "*");
    strcpy(a.reason, "split_brain:fork seq=8812 \"quoted\"");
    strcpy(a.ticket, "INC-20261121-0007");
    return a;
}

/* Reads every line of the log files in order and checks each prev. */
static int check_chain(const char *dir, int files, int *lines_out) {
    uint8_t prev[32] = {0};
    int lines = 0;
    for (int f = 0; f <= files; f++) {
        char path[512];
        if (f < files)
            snprintf(path, sizeof path, "%s/audit/audit.%d.jsonl", dir, f);
        else
            snprintf(path, sizeof path, "%s/audit/audit.jsonl", dir);
        FILE *fp = fopen(path, "r");
        assert_non_null(fp);
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, fp)) > 0) {
            line[--n] = '\0';
            char want[65];
            for (int i = 0; i < 32; i++)
                sprintf(want + 2 * i, "%02x", prev[i]);
            cJSON *j = cJSON_Parse(line);
            assert_non_null(j);
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "prev");
            assert_true(cJSON_IsString(p));
            if (strcmp(p->valuestring, want) != 0)
                return -1;
            /* keys sorted bytewise, no whitespace outside strings */
            const cJSON *a = j->child;
            for (; a != NULL && a->next != NULL; a = a->next)
                assert_true(strcmp(a->string, a->next->string) < 0);
            cJSON_Delete(j);
            unsigned int len = 32;
            EVP_Digest(line, (size_t)n, prev, &len, EVP_sha256(), NULL);
            lines++;
        }
        free(line);
        fclose(fp);
    }
    *lines_out = lines;
    return 0;
}

static void test_chain_rotation_and_recovery(void **state) {
    (void)state;
    char *dir = tu_tmpdir("audit");
    tl_audit a;
    tl_audit_recovery *rec = calloc(1, sizeof *rec);
    char err[256];
    assert_int_equal(tl_audit_open(&a, dir, 4096, rec, err, sizeof err), 0);
    assert_int_equal(rec->lines, 0);
    tl_finding f;
    tl_finding_init(&f, TL_CHECK_FORK);
    f.seq = 8812;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(tl_audit_finding(&a, &f, 1000 + (uint64_t)i), 0);
        tl_action x = action((uint8_t)(i + 1), TL_ACT_EXECUTED);
        assert_int_equal(tl_audit_action(&a, &x, NULL, 2000), 0);
        if (i % 2 == 0) {
            x.state = TL_ACT_APPLIED;
            assert_int_equal(tl_audit_action(&a, &x, NULL, 3000), 0);
        }
    }
    tl_audit_tick(&a, 1, 0);
    assert_false(a.unsynced);
    int rotations = (int)a.next_rotation;
    assert_true(rotations >= 2); /* 4096-byte files */
    tl_audit_close(&a);
    int lines = 0;
    assert_int_equal(check_chain(dir, rotations, &lines), 0);
    assert_int_equal(lines, 50);

    /* A restart: the chain continues, and the 10 EXECUTED-only actions of
     * the last two files come back to be sent again. */
    assert_int_equal(tl_audit_open(&a, dir, 4096, rec, err, sizeof err), 0);
    assert_true(rec->chain_ok);
    assert_true(rec->resend_count > 0);
    for (uint32_t i = 0; i < rec->resend_count; i++) {
        assert_true(rec->resend[i].id[0] % 2 == 0); /* only those never APPLIED */
        assert_int_equal(rec->resend[i].cmd, TL_CMD_SET_SYMBOL_MODE);
        assert_int_equal(rec->resend[i].mode, TL_MODE_HARD_HALT);
        assert_int_equal(rec->resend[i].fence, 7);
        assert_string_equal(rec->resend[i].reason, "split_brain:fork seq=8812 \"quoted\"");
    }
    tl_action x = action(99, TL_ACT_FAILED);
    assert_int_equal(tl_audit_action(&a, &x, "forbidden", 4000), 0);
    tl_audit_close(&a);
    assert_int_equal(check_chain(dir, (int)a.next_rotation, &lines), 0);
    assert_int_equal(lines, 51);
    free(rec);
    tu_rm_rf(dir);
    free(dir);
}

static void test_edit_breaks_chain(void **state) {
    (void)state;
    char *dir = tu_tmpdir("audit-edit");
    tl_audit a;
    tl_audit_recovery *rec = calloc(1, sizeof *rec);
    char err[256];
    assert_int_equal(tl_audit_open(&a, dir, 1 << 20, rec, err, sizeof err), 0);
    for (int i = 0; i < 5; i++) {
        tl_action x = action((uint8_t)(i + 1), TL_ACT_EXECUTED);
        tl_audit_action(&a, &x, NULL, 1);
    }
    tl_audit_close(&a);
    char path[512];
    snprintf(path, sizeof path, "%s/audit/audit.jsonl", dir);
    size_t n;
    uint8_t *buf = tu_read_file(path, &n);
    char *hit = strstr((char *)buf, "HARD_HALT");
    assert_non_null(hit);
    memcpy(hit, "SOFT_HALT", 9); /* an edit that keeps the line valid JSON */
    tu_write_file(path, buf, n);
    free(buf);
    assert_int_equal(tl_audit_open(&a, dir, 1 << 20, rec, err, sizeof err), 0);
    assert_false(rec->chain_ok);
    assert_int_equal(rec->chain_bad_line, 2);
    tl_audit_close(&a);
    free(rec);
    tu_rm_rf(dir);
    free(dir);
}

static void test_full_disk_loses_nothing(void **state) {
    (void)state;
    char *dir = tu_tmpdir("audit-full");
    tl_audit a;
    char err[256];
    assert_int_equal(tl_audit_open(&a, dir, 1 << 30, NULL, err, sizeof err), 0);
    tl_action x = action(1, TL_ACT_EXECUTED);
    assert_int_equal(tl_audit_action(&a, &x, NULL, 1), 0);
    /* The disk is full: writes past the current size fail (EFBIG). */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    lim.rlim_cur = a.size;
    lim.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (int i = 2; i <= 6; i++) {
        tl_action y = action((uint8_t)i, TL_ACT_EXECUTED);
        assert_int_equal(tl_audit_action(&a, &y, NULL, 1), -1);
    }
    assert_int_equal(a.queue_count, 5);
    assert_true(a.write_errors >= 1);
    uint64_t size_full = a.size;
    /* space again: the queued lines go out, in order, and the chain holds */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    tl_audit_tick(&a, 1, 0);
    assert_int_equal(a.queue_count, 0);
    assert_true(a.size > size_full);
    tl_audit_close(&a);
    int lines = 0;
    assert_int_equal(check_chain(dir, 0, &lines), 0);
    assert_int_equal(lines, 6);
    tu_rm_rf(dir);
    free(dir);
}

static void test_no_secret_and_parse_back(void **state) {
    (void)state;
    char *dir = tu_tmpdir("audit-parse");
    tl_audit a;
    char err[256];
    assert_int_equal(tl_audit_open(&a, dir, 1 << 20, NULL, err, sizeof err), 0);
    tl_action x = action(0xab, TL_ACT_EXECUTED);
    x.key = TL_KEY_OPERATOR;
    x.from_mode = TL_MODE_HARD_HALT;
    x.mode = TL_MODE_SOFT_HALT;
    assert_int_equal(tl_audit_action(&a, &x, NULL, 5), 0);
    tl_audit_close(&a);
    char path[512];
    snprintf(path, sizeof path, "%s/audit/audit.jsonl", dir);
    size_t n;
    uint8_t *buf = tu_read_file(path, &n);
    assert_null(strstr((char *)buf, "\"mac\""));
    assert_null(strstr((char *)buf, "issued_ns"));
    tl_action back;
    char ev[32];
    assert_true(tl_audit_parse_action((char *)buf, n - 1, &back, ev, sizeof ev));
    assert_string_equal(ev, "EXECUTED");
    assert_memory_equal(back.id, x.id, 16);
    assert_int_equal(back.key, TL_KEY_OPERATOR);
    assert_int_equal(back.from_mode, TL_MODE_HARD_HALT);
    assert_int_equal(back.mode, TL_MODE_SOFT_HALT);
    assert_string_equal(back.ticket, x.ticket);
    free(buf);
    tu_rm_rf(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_rotation_and_recovery),
        cmocka_unit_test(test_edit_breaks_chain),
        cmocka_unit_test(test_full_disk_loses_nothing),
        cmocka_unit_test(test_no_secret_and_parse_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
