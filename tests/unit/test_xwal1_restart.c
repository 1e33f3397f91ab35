/* test_xwal1_restart.c: what an xwal1 tallyd carries across a restart and
 * shows about its tailer.
 *   - core/decided.c: finding identities, bounded (the newest kept);
 *   - admin/audit.c: the recovery reads the WAL findings of the audit log
 *     back as identities (a restart reads the whole log again and must not
 *     act on them again: tests/unit/test_xwal1_tail_loop.c and
 *     tests/integration/run_xwal1.sh tallyd_restart drive the rest);
 *   - admin/config.c: tallyd's per-symbol window with the default config
 *     is the offline default (tallyctl wal verify), one constant;
 *   - admin/metrics.c: the tailer's gauges, only with an xwal1 tailer. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/audit.h"
#include "admin/config.h"
#include "admin/jsonw.h"
#include "admin/metrics.h"
#include "core/decided.h"
#include "core/loop.h"
#include "core/xwal1.h"
#include "io/xwal1_tail.h"

static tl_finding wal_finding(enum tl_check c, uint64_t seq, uint64_t segment, uint64_t offset,
                              uint64_t checksum) {
    tl_finding f;
    tl_finding_init(&f, c);
    f.source = TL_SOURCE_WAL;
    f.dialect = TL_DIALECT_XWAL1;
    f.seq = seq;
    f.segment = segment;
    f.offset = offset;
    f.checksum = checksum;
    f.symbol = 1;
    return f;
}

static void test_decided_identity_and_bound(void **state) {
    (void)state;
    static tl_decided d;
    tl_decided_init(&d);
    tl_finding f = wal_finding(TL_CHECK_FORK, 8, 1, 2717, 0xf94c2c526141cad2ull);
    assert_false(tl_decided_has(&d, &f));
    tl_decided_key k = tl_decided_key_of(&f);
    tl_decided_add(&d, &k);
    assert_true(tl_decided_has(&d, &f));
    tl_decided_add(&d, &k); /* a restart audits it again: still one entry */
    assert_int_equal(d.count, 1);
    /* the symbol id is not part of it (ids shift when old segments go) */
    tl_finding g = f;
    g.symbol = 7;
    g.id = 99;
    g.detect_ns = 5;
    assert_true(tl_decided_has(&d, &g));
    /* every other member is */
    g = f;
    g.check = TL_CHECK_FENCE_REGRESSION;
    assert_false(tl_decided_has(&d, &g));
    g = f;
    g.offset++;
    assert_false(tl_decided_has(&d, &g));
    g = f;
    g.segment++;
    assert_false(tl_decided_has(&d, &g));
    g = f;
    g.checksum ^= 1;
    assert_false(tl_decided_has(&d, &g));
    g = f;
    g.seq++;
    assert_false(tl_decided_has(&d, &g));
    /* bounded: the oldest goes first */
    for (uint64_t i = 0; i < TL_DECIDED_MAX; i++) {
        tl_finding h = wal_finding(TL_CHECK_FORK, 100 + i, 2, 7 + i, i);
        k = tl_decided_key_of(&h);
        tl_decided_add(&d, &k);
    }
    assert_int_equal(d.count, TL_DECIDED_MAX);
    assert_false(tl_decided_has(&d, &f));
    tl_finding last = wal_finding(TL_CHECK_FORK, 100 + TL_DECIDED_MAX - 1, 2,
                                  7 + TL_DECIDED_MAX - 1, TL_DECIDED_MAX - 1);
    assert_true(tl_decided_has(&d, &last));
    tl_finding second = wal_finding(TL_CHECK_FORK, 101, 2, 8, 1);
    assert_true(tl_decided_has(&d, &second));
}

static void test_audit_recovers_wal_findings(void **state) {
    (void)state;
    char *dir = tu_tmpdir("xwrs-audit");
    static tl_audit a;
    static tl_audit_recovery rec;
    char err[256];
    assert_int_equal(tl_audit_open(&a, dir, 1u << 20, &rec, err, sizeof err), 0);
    assert_int_equal(rec.decided.count, 0);
    tl_finding fork = wal_finding(TL_CHECK_FORK, 8, 1, 2717, 0xf94c2c526141cad2ull);
    tl_finding fence = wal_finding(TL_CHECK_FENCE_REGRESSION, 8, 1, 2717, 0xf94c2c526141cad2ull);
    fence.reason = TL_REASON_FENCE_DROP;
    fork.incident = fence.incident = 1;
    tl_finding ring;
    tl_finding_init(&ring, TL_CHECK_RING_CORRUPT);
    ring.source = TL_SOURCE_RING;
    ring.seq = 8;
    ring.incident = 1;
    /* incident 2: audited, but its action was blocked (dry run): nothing
     * was decided, and a restart must still act on it */
    tl_finding blocked = wal_finding(TL_CHECK_FORK, 20, 2, 99, 0x1234ull);
    blocked.incident = 2;
    tl_action act;
    memset(&act, 0, sizeof act);
    act.cmd = TL_CMD_SET_SYMBOL_MODE;
    act.mode = TL_MODE_HARD_HALT;
    act.key = TL_KEY_SIDECAR;
    act.from_mode = TL_FROM_MODE_NONE;
    snprintf(act.symbol_name, sizeof act.symbol_name, "BTC-KRW");
    tl_jw w;
    tl_jw_init(&w);
    assert_true(tl_audit_append(&a, &w, "START", 1) >= 0);
    assert_int_equal(tl_audit_finding(&a, &fork, 1), 0);
    act.id[0] = 1;
    act.incident = 1;
    act.state = TL_ACT_EXECUTED; /* after the fork: it decides it */
    assert_int_equal(tl_audit_action(&a, &act, NULL, 2), 0);
    assert_int_equal(tl_audit_finding(&a, &ring, 2), 0);
    assert_int_equal(tl_audit_finding(&a, &fence, 3), 0); /* joins incident 1 */
    assert_int_equal(tl_audit_finding(&a, &blocked, 4), 0);
    act.id[0] = 2;
    act.incident = 2;
    act.state = TL_ACT_BLOCKED;
    assert_int_equal(tl_audit_action(&a, &act, NULL, 5), 0);
    /* a new run numbers incidents again: its incident 2 is another one */
    tl_jw_init(&w);
    assert_true(tl_audit_append(&a, &w, "START", 6) >= 0);
    act.id[0] = 3;
    act.state = TL_ACT_EXECUTED;
    assert_int_equal(tl_audit_action(&a, &act, NULL, 7), 0);
    tl_audit_close(&a);

    assert_int_equal(tl_audit_open(&a, dir, 1u << 20, &rec, err, sizeof err), 0);
    assert_true(rec.chain_ok);
    /* the WAL's two of the acted-on incident, not the ring's (a ring is
     * never read again), not the blocked one */
    assert_int_equal(rec.decided.count, 2);
    assert_true(tl_decided_has(&rec.decided, &fork));
    assert_true(tl_decided_has(&rec.decided, &fence));
    assert_false(tl_decided_has(&rec.decided, &ring));
    assert_false(tl_decided_has(&rec.decided, &blocked));
    /* the reason is part of the identity */
    tl_finding other = fence;
    other.reason = TL_REASON_FENCE_RISE;
    assert_false(tl_decided_has(&rec.decided, &other));
    tl_audit_close(&a);
    tu_rm_rf(dir);
    free(dir);
}

static void test_window_default_is_shared(void **state) {
    (void)state;
    static tl_config c;
    tl_config_defaults(&c);
    snprintf(c.wal_dialect, sizeof c.wal_dialect, "xwal1");
    tl_loop_cfg lc;
    tl_config_loop(&c, &lc);
    assert_int_equal(lc.dialect, TL_DIALECT_XWAL1);
    /* tallyd with the default config keeps what tallyctl wal verify keeps */
    assert_int_equal(lc.xwal1_window_records, TL_XWAL1_WINDOW_RECORDS_DEFAULT);
    assert_int_equal(lc.xwal1_symbols, TL_XWAL1_SYMBOLS_DEFAULT);
    tl_loop_cfg_defaults(&lc);
    assert_int_equal(lc.xwal1_window_records, TL_XWAL1_WINDOW_RECORDS_DEFAULT);
    assert_true(lc.xwal1_max_sends >= 2);
}

static void test_tail_metrics(void **state) {
    (void)state;
    static tl_metrics m;
    tl_metrics_init(&m);
    tl_metrics_extra x;
    memset(&x, 0, sizeof x);
    size_t cap = 1u << 20;
    char *buf = malloc(cap);
    assert_non_null(buf);
    /* no xwal1 tailer: the families, no samples */
    tl_out o;
    memset(&o, 0, sizeof o);
    o.type = TL_OUT_STATS;
    tl_metrics_on_out(&m, &o);
    assert_true(tl_metrics_render(&m, &x, buf, cap) > 0);
    assert_non_null(strstr(buf, "# TYPE tally_wal_tail_state gauge"));
    assert_null(strstr(buf, "tally_wal_tail_state{"));
    assert_null(strstr(buf, "\ntally_wal_tail_io_errors_total "));
    /* a tailer retrying a segment it cannot read */
    tl_tail_gauges *g = &o.u.stats.tail;
    g->configured = true;
    g->io_error = true;
    g->state = TL_XWAL1_TAIL_ST_IO_ERROR;
    g->io_error_streak = 5;
    g->io_errors_total = 7;
    g->segment = 3;
    g->offset = 4096;
    g->bytes_read = 123456;
    g->dir_scans_total = 11;
    o.u.stats.c.findings_decided_before = 2;
    tl_metrics_on_out(&m, &o);
    assert_true(tl_metrics_render(&m, &x, buf, cap) > 0);
    assert_non_null(strstr(buf, "\ntally_wal_tail_state{state=\"io_error\"} 1\n"));
    assert_non_null(strstr(buf, "\ntally_wal_tail_state{state=\"following\"} 0\n"));
    assert_non_null(strstr(buf, "\ntally_wal_tail_io_error_streak 5\n"));
    assert_non_null(strstr(buf, "\ntally_wal_tail_io_errors_total 7\n"));
    assert_non_null(strstr(buf, "\ntally_wal_tail_segment 3\n"));
    assert_non_null(strstr(buf, "\ntally_wal_tail_offset_bytes 4096\n"));
    assert_non_null(strstr(buf, "\ntally_wal_tail_read_bytes_total 123456\n"));
    assert_non_null(strstr(buf, "\ntally_wal_tail_dir_scans_total 11\n"));
    assert_non_null(strstr(buf, "\ntally_findings_decided_before_total 2\n"));
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decided_identity_and_bound),
        cmocka_unit_test(test_audit_recovers_wal_findings),
        cmocka_unit_test(test_window_default_is_shared),
        cmocka_unit_test(test_tail_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
