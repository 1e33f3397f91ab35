/* test_bundle.c: forensic bundle export and offline verification
 * (admin/bundle.h) over a real WAL and audit log: the bundle verifies; every
 * kind of tampering fails with its named reason; a full disk (RLIMIT_FSIZE)
 * leaves nothing behind and names disk_full; a missing snapshot directory,
 * an unreadable segment and no signing key degrade by name; snapshots
 * nearest to the range are picked; a cancelled export cleans up. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/bundle.h"
#include "admin/redact.h"
#include "test_bundle_fixture.h"

#define INCIDENT 7u
#define FORK_SEQ 1234u

static const char config_json[] =
    "{\"engine\":{\"wal_dir\":\"/w\"},\"keys\":{\"sidecar\":\"/etc/tally/SECRETKEYPATH\"},"
    "\"control\":{\"token_file\":\"/run/SECRETTOKENPATH\"},"
    "\"#db_password\":\"SECRETPASSWORD\"}";

typedef struct ctx {
    bfx x;
    tl_redact_out red;
    tl_bundle_env env;
    tl_bundle_job job;
    char path[TL_BUNDLE_PATH_MAX]; /* the bundle made by setup */
} ctx;

static size_t fake_metrics(void *c, char *buf, size_t cap) {
    (void)c;
    return (size_t)snprintf(buf, cap, "# TYPE tally_up gauge\ntally_up 1\n");
}

static uint32_t fake_ledger(void *c, tl_ledger_wm *out, uint32_t max) {
    (void)c;
    uint32_t n = max < 3 ? max : 3;
    for (uint32_t i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].poll_id = i + 1;
        out[i].ledger_seq = 100 * (i + 1);
        out[i].checksum = 0x1234 + i;
        out[i].symbol_count = 1;
        out[i].symbols[0].symbol = 1;
        out[i].symbols[0].f.trades = i;
    }
    return n;
}

static void job_init(tl_bundle_job *j, const char *id, uint64_t from, uint64_t to) {
    memset(j, 0, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", id);
    j->origin = TL_BUNDLE_REQUEST;
    j->n_incidents = 1;
    j->incidents[0] = INCIDENT;
    j->from_seq = from;
    j->to_seq = to;
    j->window_from_real_ns = 1;
    j->requested_real_ns = 1795000000000000000ull;
    tl_bundle_job_name(j);
}

static int setup(void **state) {
    ctx *c = calloc(1, sizeof *c);
    bfx_setup(&c->x, "bundle", 6000, 128u << 10);
    bfx_audit(&c->x, INCIDENT, FORK_SEQ);
    char err[128];
    assert_int_equal(tl_redact_config(config_json, strlen(config_json), &c->red, err, sizeof err),
                     0);
    c->env = (tl_bundle_env){
        .dir = c->x.out,
        .wal_dir = c->x.wal,
        .dialect = TL_DIALECT_TLYWAL1,
        .ring_name = "",
        .snapshot_dir = "",
        .audit_dir = c->x.audit,
        .config_text = c->red.json,
        .config_len = c->red.json_len,
        .redactions_text = c->red.list,
        .redactions_len = c->red.list_len,
        .key = c->x.pkey,
        .metrics = fake_metrics,
        .ledger = fake_ledger,
    };
    job_init(&c->job, "b00000000000000a1", 1000, 3000);
    tl_bundle_result r;
    assert_int_equal(tl_bundle_export(&c->env, &c->job, NULL, &r), TL_BUNDLE_OK);
    snprintf(c->path, sizeof c->path, "%s", r.path);
    *state = c;
    return 0;
}

static int teardown(void **state) {
    ctx *c = *state;
    tl_redact_free(&c->red);
    bfx_teardown(&c->x);
    free(c);
    return 0;
}

static enum tl_bundle_verr verify(ctx *c, const char *path, const char *pub, tl_bundle_report *r) {
    tl_bundle_verify_opts o = {.pubkey_path = pub, .tmp_dir = c->x.root};
    return tl_bundle_verify(path, &o, r);
}

/* ---- export, then verify ---- */

static void test_export_verifies(void **state) {
    ctx *c = *state;
    struct stat st;
    assert_int_equal(stat(c->path, &st), 0);
    assert_true(st.st_size > 0);
    /* nothing but the bundle in the directory */
    assert_int_equal(bfx_count(c->x.out, "\\."), 0);
    assert_int_equal(bfx_count(c->x.out, "tally-"), 1);
    tl_bundle_report r;
    assert_int_equal(verify(c, c->path, c->x.pub, &r), TL_BV_OK);
    assert_true(r.signed_ok);
    assert_int_equal(r.seq_first, 1000);
    assert_int_equal(r.seq_last, 3000);
    assert_true(r.segments >= 2);
    assert_int_equal(r.wal_findings, 0);
    assert_int_equal(r.n_incidents, 1);
    assert_int_equal(r.incidents[0], INCIDENT);
    /* the FORK finding names the first divergent seq */
    assert_int_equal(r.divergent_seq, FORK_SEQ);
    /* the incident's finding and its two actions; not the other incident's */
    assert_int_equal(r.timeline_lines, 3);
    /* no ring, no snapshot dir: named */
    assert_true(r.degraded & (1u << TL_BUNDLE_DEG_RING));
    assert_true(r.degraded & (1u << TL_BUNDLE_DEG_SNAPSHOT_DIR));
    assert_false(r.degraded & (1u << TL_BUNDLE_DEG_UNSIGNED));
    /* the temp directory of the verification is gone */
    assert_int_equal(bfx_count(c->x.root, "tally-verify"), 0);
}

static void test_wrong_key_fails(void **state) {
    ctx *c = *state;
    tl_bundle_report r;
    assert_int_equal(verify(c, c->path, c->x.other_pub, &r), TL_BV_BAD_SIGNATURE);
    assert_int_equal(verify(c, c->path, "/nonexistent.pem", &r), TL_BV_PUBKEY);
    assert_int_equal(verify(c, "/nonexistent.tar.zst", c->x.pub, &r), TL_BV_UNREADABLE);
}

static void tamper(ctx *c, enum bfx_tamper how, const char *target, enum tl_bundle_verr want) {
    char dst[700];
    snprintf(dst, sizeof dst, "%s/tampered.tar.zst", c->x.root);
    unlink(dst);
    bfx_rewrite(c->path, dst, how, target);
    tl_bundle_report r;
    enum tl_bundle_verr got = verify(c, dst, c->x.pub, &r);
    if (got != want)
        print_error("%s %s: got %s (%s), want %s\n", target, how == BFX_DROP ? "dropped" : "",
                    tl_bundle_verr_name(got), r.detail, tl_bundle_verr_name(want));
    assert_int_equal(got, want);
    unlink(dst);
}

static void test_tamper_segment_byte(void **state) {
    ctx *c = *state;
    /* the first segment of the range */
    char seg[64];
    snprintf(seg, sizeof seg, "wal/");
    tl_bundle_report r;
    assert_int_equal(verify(c, c->path, c->x.pub, &r), TL_BV_OK);
    /* find a wal entry name by listing the archive */
    struct archive *in = archive_read_new();
    archive_read_support_filter_zstd(in);
    archive_read_support_format_tar(in);
    assert_int_equal(archive_read_open_filename(in, c->path, 65536), ARCHIVE_OK);
    struct archive_entry *e;
    char name[128] = "";
    while (archive_read_next_header(in, &e) == ARCHIVE_OK)
        if (name[0] == '\0' && strncmp(archive_entry_pathname(e), seg, 4) == 0)
            snprintf(name, sizeof name, "%s", archive_entry_pathname(e));
    archive_read_free(in);
    assert_true(name[0] != '\0');
    tamper(c, BFX_FLIP_BYTE, name, TL_BV_HASH_MISMATCH);
    tamper(c, BFX_FLIP_BYTE, "audit.jsonl", TL_BV_HASH_MISMATCH);
}

static void test_tamper_manifest_and_sig(void **state) {
    ctx *c = *state;
    tamper(c, BFX_FLIP_BYTE, "MANIFEST.json", TL_BV_BAD_SIGNATURE);
    tamper(c, BFX_FLIP_BYTE, "MANIFEST.sig", TL_BV_BAD_SIGNATURE);
    tamper(c, BFX_DROP, "MANIFEST.sig", TL_BV_NO_SIGNATURE);
    tamper(c, BFX_DROP, "MANIFEST.json", TL_BV_NO_MANIFEST);
}

static void test_tamper_remove_add(void **state) {
    ctx *c = *state;
    tamper(c, BFX_DROP, "metrics.prom", TL_BV_FILE_MISSING);
    tamper(c, BFX_DROP, "config/redactions.json", TL_BV_FILE_MISSING);
    tamper(c, BFX_ADD, "wal/00000000000000999999.wal", TL_BV_FILE_EXTRA);
    tamper(c, BFX_ADD, "notes.txt", TL_BV_FILE_EXTRA);
    tamper(c, BFX_ADD, "../escape", TL_BV_UNSAFE_PATH);
    tamper(c, BFX_ADD, "other/x", TL_BV_UNSAFE_PATH);
    tamper(c, BFX_ADD, "metrics.prom", TL_BV_DUPLICATE);
    tamper(c, BFX_RENAME, "ledger/other.jsonl", TL_BV_FILE_MISSING);
}

static void test_raw_byte_flip_fails(void **state) {
    ctx *c = *state;
    size_t len;
    uint8_t *b = tu_read_file(c->path, &len);
    char dst[700];
    snprintf(dst, sizeof dst, "%s/flipped.tar.zst", c->x.root);
    /* Every 997th byte flipped in turn would be slow; a few spread places. */
    for (size_t at = 64; at < len; at += len / 5) {
        b[at] ^= 0x40;
        tu_write_file(dst, b, len);
        b[at] ^= 0x40;
        tl_bundle_report r;
        assert_int_not_equal(verify(c, dst, c->x.pub, &r), TL_BV_OK);
    }
    /* cut short */
    tu_write_file(dst, b, len / 2);
    tl_bundle_report r;
    assert_int_not_equal(verify(c, dst, c->x.pub, &r), TL_BV_OK);
    free(b);
    unlink(dst);
}

/* ---- the manifest's facts ---- */

static cJSON *manifest_of(const char *path) {
    struct archive *in = archive_read_new();
    archive_read_support_filter_zstd(in);
    archive_read_support_format_tar(in);
    assert_int_equal(archive_read_open_filename(in, path, 65536), ARCHIVE_OK);
    struct archive_entry *e;
    cJSON *m = NULL;
    while (archive_read_next_header(in, &e) == ARCHIVE_OK) {
        if (strcmp(archive_entry_pathname(e), "MANIFEST.json") != 0)
            continue;
        size_t n = (size_t)archive_entry_size(e);
        char *buf = malloc(n + 1);
        assert_int_equal(archive_read_data(in, buf, n), (la_ssize_t)n);
        m = cJSON_ParseWithLength(buf, n);
        free(buf);
    }
    archive_read_free(in);
    assert_non_null(m);
    return m;
}

static const char *mstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void test_manifest_contents(void **state) {
    ctx *c = *state;
    cJSON *m = manifest_of(c->path);
    assert_string_equal(mstr(m, "incident"), "7");
    assert_string_equal(mstr(m, "tally_version"), TL_VERSION);
    assert_true(strlen(mstr(m, "host")) > 0);
    /* the engine_id from the segment headers */
    assert_string_equal(mstr(m, "engine_id"), "62756e646c652d746573742d656e6731");
    const cJSON *sr = cJSON_GetObjectItemCaseSensitive(m, "seq_range");
    assert_string_equal(mstr(sr, "first"), "1000");
    assert_string_equal(mstr(sr, "last"), "3000");
    const cJSON *an = cJSON_GetObjectItemCaseSensitive(m, "chain_anchors");
    assert_int_equal(strlen(mstr(an, "first_checksum")), 16);
    assert_int_equal(strlen(mstr(an, "last_checksum")), 16);
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(m, "fence_range");
    assert_string_equal(mstr(fr, "min"), "1");
    const cJSON *lg = cJSON_GetObjectItemCaseSensitive(m, "ledger");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(lg, "history")), 3);
    /* each file with a path, a size and a 64-hex sha256 */
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(m, "files");
    bool seen[6] = {false};
    const char *want[6] = {"findings.jsonl",         "audit.jsonl",  "config/tally.json",
                           "config/redactions.json", "metrics.prom", "ledger/watermarks.jsonl"};
    const cJSON *f;
    cJSON_ArrayForEach(f, files) {
        assert_int_equal(strlen(mstr(f, "sha256")), 64);
        for (int i = 0; i < 6; i++)
            if (strcmp(mstr(f, "path"), want[i]) == 0)
                seen[i] = true;
    }
    for (int i = 0; i < 6; i++)
        assert_true(seen[i]);
    cJSON_Delete(m);
}

/* ---- failures and degradations ---- */

static void test_disk_full_leaves_nothing(void **state) {
    ctx *c = *state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/full", c->x.root);
    tl_bundle_env env = c->env;
    env.dir = dir;
    tl_bundle_job j;
    job_init(&j, "b00000000000000f1", 1, 5000);
    /* Writes beyond 64 KiB (a segment is 128 KiB) fail with EFBIG (SIGXFSZ ignored, as tallyd). */
    struct rlimit old, lim = {64u << 10, 64u << 10};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim.rlim_max = old.rlim_max;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    tl_bundle_result r;
    enum tl_bundle_err e = tl_bundle_export(&env, &j, NULL, &r);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(e, TL_BUNDLE_ERR_DISK_FULL);
    assert_string_equal(tl_bundle_err_name(e), "disk_full");
    assert_true(strlen(r.detail) > 0);
    /* no bundle, no temp file, no staging directory */
    struct stat st;
    assert_int_not_equal(stat(r.path, &st), 0);
    if (bfx_count(dir, "") != 0) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "ls -laR '%s' >&2", dir);
        (void)system(cmd);
    }
    assert_int_equal(bfx_count(dir, ""), 0);
}

static void test_snapshots_nearest(void **state) {
    ctx *c = *state;
    char sd[600], p[700];
    snprintf(sd, sizeof sd, "%s/snaps", c->x.root);
    assert_int_equal(mkdir(sd, 0700), 0);
    const char *names[] = {"snap-00000000000000000500.bin", "snap-00000000000000000900.bin",
                           "snap-00000000000000004000.bin", "snap-00000000000000009000.bin",
                           "notes"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", sd, names[i]);
        tu_write_file(p, names[i], strlen(names[i]));
    }
    tl_bundle_env env = c->env;
    env.snapshot_dir = sd;
    tl_bundle_job j;
    job_init(&j, "b00000000000000s1", 1000, 3000);
    tl_bundle_result r;
    assert_int_equal(tl_bundle_export(&env, &j, NULL, &r), TL_BUNDLE_OK);
    assert_false(r.degraded & (1u << TL_BUNDLE_DEG_SNAPSHOT_DIR));
    cJSON *m = manifest_of(r.path);
    const cJSON *sn = cJSON_GetObjectItemCaseSensitive(m, "snapshots");
    assert_int_equal(cJSON_GetArraySize(sn), 2);
    assert_string_equal(mstr(cJSON_GetArrayItem(sn, 0), "seq"), "900");
    assert_string_equal(mstr(cJSON_GetArrayItem(sn, 1), "seq"), "4000");
    cJSON_Delete(m);
    tl_bundle_report vr;
    assert_int_equal(verify(c, r.path, c->x.pub, &vr), TL_BV_OK);
    unlink(r.path);
    /* a snapshot dir that does not exist: named, and the bundle is made */
    env.snapshot_dir = "/nonexistent/snapshots";
    job_init(&j, "b00000000000000s2", 1000, 3000);
    assert_int_equal(tl_bundle_export(&env, &j, NULL, &r), TL_BUNDLE_OK);
    assert_true(r.degraded & (1u << TL_BUNDLE_DEG_SNAPSHOT_DIR));
    m = manifest_of(r.path);
    char *text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(m, "degraded"));
    assert_non_null(strstr(text, "\"snapshot_dir_missing\""));
    assert_non_null(strstr(text, "/nonexistent/snapshots"));
    cJSON_free(text);
    cJSON_Delete(m);
    unlink(r.path);
}

static void test_unreadable_segment_degrades(void **state) {
    ctx *c = *state;
    /* a copy of the WAL whose second segment is a directory: it cannot be read */
    char wal2[600], cmd[1400];
    snprintf(wal2, sizeof wal2, "%s/wal2", c->x.root);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", c->x.wal, wal2);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "cd '%s' && f=$(ls | sort | sed -n 2p) && rm \"$f\" && mkdir \"$f\"",
             wal2);
    assert_int_equal(system(cmd), 0);
    tl_bundle_env env = c->env;
    env.wal_dir = wal2;
    tl_bundle_job j;
    job_init(&j, "b00000000000000u1", 1, 6000);
    tl_bundle_result r;
    assert_int_equal(tl_bundle_export(&env, &j, NULL, &r), TL_BUNDLE_OK);
    assert_true(r.degraded & (1u << TL_BUNDLE_DEG_SEGMENT));
    assert_true(r.wal_findings > 0); /* the gap is in the WAL check, recorded */
    tl_bundle_report vr;
    assert_int_equal(verify(c, r.path, c->x.pub, &vr), TL_BV_OK);
    assert_true(vr.degraded & (1u << TL_BUNDLE_DEG_SEGMENT));
    assert_int_equal(vr.wal_findings, r.wal_findings);
    unlink(r.path);
}

static void test_unsigned_and_no_range(void **state) {
    ctx *c = *state;
    tl_bundle_env env = c->env;
    env.key = NULL;
    tl_bundle_job j;
    job_init(&j, "b00000000000000n1", 1000000, 2000000); /* beyond the WAL */
    tl_bundle_result r;
    assert_int_equal(tl_bundle_export(&env, &j, NULL, &r), TL_BUNDLE_OK);
    assert_true(r.degraded & (1u << TL_BUNDLE_DEG_UNSIGNED));
    tl_bundle_report vr;
    assert_int_equal(verify(c, r.path, c->x.pub, &vr), TL_BV_NO_SIGNATURE);
    unlink(r.path);
    /* below every segment (the WAL starts at 1): none overlaps a range of 0 */
    job_init(&j, "b00000000000000n2", 1, 1);
    env.key = c->x.pkey;
    assert_int_equal(tl_bundle_export(&env, &j, NULL, &r), TL_BUNDLE_OK);
    assert_int_equal(r.seq_first, 1);
    unlink(r.path);
}

static void test_cancel_cleans_up(void **state) {
    ctx *c = *state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/cancel", c->x.root);
    tl_bundle_env env = c->env;
    env.dir = dir;
    tl_bundle_job j;
    job_init(&j, "b00000000000000c1", 1, 6000);
    tl_bundle_progress p;
    memset(&p, 0, sizeof p);
    atomic_store(&p.cancel, true);
    tl_bundle_result r;
    assert_int_equal(tl_bundle_export(&env, &j, &p, &r), TL_BUNDLE_ERR_CANCELLED);
    assert_int_equal(bfx_count(dir, ""), 0);
    assert_int_equal(atomic_load(&p.phase), TL_BUNDLE_PH_FAILED);
}

static void test_clean_dir(void **state) {
    ctx *c = *state;
    char dir[600], p[700];
    snprintf(dir, sizeof dir, "%s/crashed", c->x.root);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(p, sizeof p, "%s/.staging-b1", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/.staging-b1/wal", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/.staging-b1/wal/00000000000000000001.wal", dir);
    tu_write_file(p, "x", 1);
    snprintf(p, sizeof p, "%s/.tally-x.tar.zst.tmp", dir);
    tu_write_file(p, "x", 1);
    snprintf(p, sizeof p, "%s/tally-kept.tar.zst", dir);
    tu_write_file(p, "x", 1);
    assert_int_equal(tl_bundle_clean_dir(dir), 2);
    assert_int_equal(bfx_count(dir, ""), 1);
}

static void test_names(void **state) {
    (void)state;
    for (int e = 0; e < TL_BUNDLE_ERR_COUNT; e++)
        assert_string_not_equal(tl_bundle_err_name((enum tl_bundle_err)e), "?");
    for (int d = 0; d < TL_BUNDLE_DEG_COUNT; d++)
        assert_string_not_equal(tl_bundle_deg_name((enum tl_bundle_deg)d), "?");
    for (int v = 0; v < TL_BV_COUNT; v++)
        assert_string_not_equal(tl_bundle_verr_name((enum tl_bundle_verr)v), "?");
    for (unsigned p = 0; p < TL_BUNDLE_PH_COUNT; p++)
        assert_string_not_equal(tl_bundle_phase_name(p), "?");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_verifies),
        cmocka_unit_test(test_wrong_key_fails),
        cmocka_unit_test(test_tamper_segment_byte),
        cmocka_unit_test(test_tamper_manifest_and_sig),
        cmocka_unit_test(test_tamper_remove_add),
        cmocka_unit_test(test_raw_byte_flip_fails),
        cmocka_unit_test(test_manifest_contents),
        cmocka_unit_test(test_disk_full_leaves_nothing),
        cmocka_unit_test(test_snapshots_nearest),
        cmocka_unit_test(test_unreadable_segment_degrades),
        cmocka_unit_test(test_unsigned_and_no_range),
        cmocka_unit_test(test_cancel_cleans_up),
        cmocka_unit_test(test_clean_dir),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
