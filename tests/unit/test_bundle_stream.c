/* test_bundle_stream.c: the one-pass pieces of the forensic bundle.
 *   - the streamed WAL check (bw_stream, admin/bundle_int.h) gives exactly
 *     what the directory reader (bw_wal_check over io/wal_reader) gives, on a
 *     clean log, a flipped byte in a sealed segment, a torn newest segment, a
 *     bad header, a missing segment, one segment; fed in odd chunk sizes;
 *   - export: more than 63 audit rotations keep the 63 newest whatever the
 *     directory order, and name the ones left out only when they may hold
 *     window lines; a job with no range fails as bad_range; progress is
 *     consistent part-way and ends at its total;
 *   - verify: a bundle that unpacks beyond the limit fails as unpack_limit;
 *     an unreadable file is "unreadable". */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "admin/bundle.h"
#include "admin/bundle_int.h"
#include "core/segment.h"
#include "io/wal_reader.h"
#include "test_bundle_fixture.h"

/* ---- the streamed WAL check vs the directory reader ---- */

static char *check_text(const bw_check *c) {
    cJSON *j = bw_check_json(c);
    assert_non_null(j);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    assert_non_null(s);
    return s;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Feeds every segment of dir, in name order, in chunks of `chunk` bytes. */
static void stream_dir(const char *dir, bw_check *c, size_t chunk) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    uint64_t firsts[256];
    uint32_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t f;
        if (tl_seg_name_parse(de->d_name, &f)) {
            assert_true(n < 256);
            firsts[n++] = f;
        }
    }
    closedir(d);
    qsort(firsts, n, sizeof firsts[0], cmp_u64);
    bw_stream *s = bw_stream_new(c);
    assert_non_null(s);
    uint8_t *buf = malloc(chunk);
    assert_non_null(buf);
    for (uint32_t i = 0; i < n; i++) {
        char name[TL_SEG_NAME_BYTES + 1], path[700];
        tl_seg_name(name, sizeof name, firsts[i]);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        int fd = open(path, O_RDONLY);
        assert_true(fd >= 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal(bw_stream_seg_begin(s, firsts[i], (uint64_t)st.st_size), 0);
        for (;;) {
            ssize_t r = read(fd, buf, chunk);
            assert_true(r >= 0);
            if (r == 0)
                break;
            bw_stream_seg_data(s, buf, (size_t)r);
        }
        close(fd);
        bw_stream_seg_end(s);
    }
    /* a segment name not above the previous one is refused */
    if (n > 0)
        assert_int_equal(bw_stream_seg_begin(s, firsts[0], 4096), -1);
    bw_stream_finish(s);
    bw_stream_free(s);
    free(buf);
}

/* Returns the reader's result, so that each case can say it was not vacuous. */
static bw_check same_as_reader(const char *dir, uint64_t from, uint64_t to, const char *what) {
    static const size_t chunks[] = {1, 777, 4096, 65536 + 8, 3u << 20};
    bw_check ref;
    memset(&ref, 0, sizeof ref);
    ref.from_seq = from;
    ref.to_seq = to;
    char err[256];
    assert_int_equal(bw_wal_check(dir, &ref, err, sizeof err), 0);
    char *want = check_text(&ref);
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        /* one byte at a time only over small logs: it is slow */
        if (chunks[k] == 1 && ref.records_total > 3000)
            continue;
        bw_check c;
        memset(&c, 0, sizeof c);
        c.from_seq = from;
        c.to_seq = to;
        stream_dir(dir, &c, chunks[k]);
        char *got = check_text(&c);
        if (strcmp(want, got) != 0)
            fail_msg("%s, chunk %zu:\n reader %s\n stream %s", what, chunks[k], want, got);
        assert_int_equal(c.fork_seq, ref.fork_seq);
        assert_int_equal(c.have_engine_id, ref.have_engine_id);
        cJSON_free(got);
    }
    cJSON_free(want);
    return ref;
}

__attribute__((format(printf, 1, 0))) static void sh_(const char *fmt, const char *a,
                                                      const char *b);
#define sh(fmt, a, b) sh_(fmt, a, b)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void sh_(const char *fmt, const char *a, const char *b) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    assert_int_equal(system(cmd), 0);
}
#pragma GCC diagnostic pop

/* The n-th segment file (1-based, name order) of dir, into out. */
static void nth_segment(const char *dir, int n, char *out, size_t cap) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls '%s' | sort | sed -n %dp", dir, n);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char name[128] = "";
    assert_non_null(fgets(name, sizeof name, p));
    pclose(p);
    name[strcspn(name, "\n")] = '\0';
    snprintf(out, cap, "%s/%s", dir, name);
}

static void flip(const char *path, long off) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    if (off < 0) {
        fseek(f, 0, SEEK_END);
        off = ftell(f) + off;
    }
    fseek(f, off, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(ch ^ 0x5a, f);
    fclose(f);
}

static void test_stream_matches_reader(void **state) {
    (void)state;
    bfx x;
    bfx_setup(&x, "bstream", 6000, 64u << 10);
    char d[700], seg[800];
    /* clean, several ranges */
    bw_check r = same_as_reader(x.wal, 1, x.last_seq, "clean, whole");
    assert_int_equal(r.findings, 0);
    assert_int_equal(r.tail, TL_WAL_TAIL_CLEAN);
    assert_true(r.segments > 3);
    assert_true(r.anchor_verified);
    same_as_reader(x.wal, 1000, 3000, "clean, middle");
    same_as_reader(x.wal, 999999, 1999999, "clean, beyond");
    /* a flipped byte in a sealed segment's records */
    snprintf(d, sizeof d, "%s/flip", x.root);
    sh("cp -r '%s' '%s'", x.wal, d);
    nth_segment(d, 2, seg, sizeof seg);
    flip(seg, 5000);
    r = same_as_reader(d, 1, x.last_seq, "flipped byte, sealed");
    assert_true(r.findings > 0);
    /* the newest segment torn mid-record */
    snprintf(d, sizeof d, "%s/torn", x.root);
    sh("cp -r '%s' '%s'", x.wal, d);
    sh("cd '%s' && f=$(ls | sort | tail -1) && truncate -s 3001 \"$f\"%s", d, "");
    r = same_as_reader(d, 1, x.last_seq, "torn newest");
    assert_int_equal(r.tail, TL_WAL_TAIL_TENTATIVE);
    /* a flipped byte in the newest segment: tentative there */
    snprintf(d, sizeof d, "%s/flipnew", x.root);
    sh("cp -r '%s' '%s'", x.wal, d);
    sh("cd '%s' && f=$(ls | sort | tail -1) && printf '\\377' | dd of=\"$f\" bs=1 seek=2000 "
       "conv=notrunc status=none%s",
       d, "");
    r = same_as_reader(d, 1, x.last_seq, "flipped byte, newest");
    assert_int_equal(r.tail, TL_WAL_TAIL_TENTATIVE);
    /* a bad header in a sealed segment */
    snprintf(d, sizeof d, "%s/hdr", x.root);
    sh("cp -r '%s' '%s'", x.wal, d);
    nth_segment(d, 3, seg, sizeof seg);
    flip(seg, 9);
    r = same_as_reader(d, 1, x.last_seq, "bad header, sealed");
    assert_true(r.findings > 0);
    /* a segment missing (a gap), and the first one missing (unverified anchor) */
    snprintf(d, sizeof d, "%s/gap", x.root);
    sh("cp -r '%s' '%s'", x.wal, d);
    sh("cd '%s' && rm $(ls | sort | sed -n 3p) $(ls | sort | sed -n 1p)%s", d, "");
    r = same_as_reader(d, 1, x.last_seq, "missing segments");
    assert_true(r.findings > 0);
    assert_false(r.anchor_verified);
    /* one segment only, truncated below its header */
    snprintf(d, sizeof d, "%s/one", x.root);
    sh("mkdir '%s' && cd '%s' && true", d, d);
    sh("cd '%s' && cp \"$(ls -d '%s'/* | sort | head -1)\" . && truncate -s 40 *", d, x.wal);
    r = same_as_reader(d, 1, x.last_seq, "one short segment");
    assert_int_equal(r.segments, 1);
    assert_int_equal(r.tail, TL_WAL_TAIL_TENTATIVE);
    /* no segment at all */
    snprintf(d, sizeof d, "%s/none", x.root);
    assert_int_equal(mkdir(d, 0700), 0);
    r = same_as_reader(d, 1, 10, "empty");
    assert_int_equal(r.tail, TL_WAL_TAIL_EMPTY);
    bfx_teardown(&x);
}

/* ---- export ---- */

typedef struct prog_probe {
    tl_bundle_progress *p;
    uint32_t calls;
    uint64_t done;
    uint64_t total;
} prog_probe;

/* The metrics scrape comes after every file is listed or staged and before
 * the archive: part-way through the export. */
static size_t probe_metrics(void *ctx, char *buf, size_t cap) {
    prog_probe *pp = ctx;
    pp->calls++;
    pp->done = atomic_load(&pp->p->bytes_done);
    pp->total = atomic_load(&pp->p->bytes_total);
    assert_int_equal(atomic_load(&pp->p->phase), TL_BUNDLE_PH_STAGING);
    return (size_t)snprintf(buf, cap, "tally_up 1\n");
}

static void job_init(tl_bundle_job *j, const char *id, uint64_t from, uint64_t to) {
    memset(j, 0, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", id);
    j->origin = TL_BUNDLE_REQUEST;
    j->from_seq = from;
    j->to_seq = to;
    j->window_from_real_ns = 1;
    j->requested_real_ns = 1795000000000000000ull;
    tl_bundle_job_name(j);
}

static tl_bundle_env env_of(bfx *x) {
    return (tl_bundle_env){
        .dir = x->out,
        .wal_dir = x->wal,
        .dialect = TL_DIALECT_TLYWAL1,
        .ring_name = "",
        .snapshot_dir = "",
        .audit_dir = x->audit,
        .key = x->pkey,
    };
}

static void test_progress_partway(void **state) {
    (void)state;
    bfx x;
    bfx_setup(&x, "bprog", 20000, 256u << 10);
    tl_bundle_progress p;
    memset(&p, 0, sizeof p);
    prog_probe pp = {.p = &p};
    tl_bundle_env env = env_of(&x);
    env.metrics = probe_metrics;
    env.metrics_ctx = &pp;
    tl_bundle_job j;
    job_init(&j, "b00000000000000p1", 1, x.last_seq);
    tl_bundle_result r;
    assert_int_equal(tl_bundle_export(&env, &j, &p, &r), TL_BUNDLE_OK);
    assert_int_equal(pp.calls, 1);
    /* part-way: the WAL is listed (counted in the total), not yet read */
    assert_true(pp.total >= r.wal_bytes);
    assert_true(pp.done > 0);
    assert_true(pp.done < pp.total);
    assert_true(pp.total - pp.done >= r.wal_bytes);
    /* the end: everything counted was done, once */
    assert_int_equal(atomic_load(&p.bytes_done), atomic_load(&p.bytes_total));
    assert_int_equal(atomic_load(&p.phase), TL_BUNDLE_PH_DONE);
    assert_true(atomic_load(&p.bytes_total) > pp.total - 1);
    unlink(r.path);
    bfx_teardown(&x);
}

static void test_bad_range_named(void **state) {
    (void)state;
    bfx x;
    bfx_setup(&x, "brange", 100, 64u << 10);
    tl_bundle_env env = env_of(&x);
    tl_bundle_job j;
    tl_bundle_result r;
    job_init(&j, "b00000000000000r1", 0, 10);
    assert_int_equal(tl_bundle_export(&env, &j, NULL, &r), TL_BUNDLE_ERR_RANGE);
    assert_string_equal(tl_bundle_err_name(TL_BUNDLE_ERR_RANGE), "bad_range");
    job_init(&j, "b00000000000000r2", 10, 9);
    assert_int_equal(tl_bundle_export(&env, &j, NULL, &r), TL_BUNDLE_ERR_RANGE);
    assert_non_null(strstr(r.detail, "no seq range"));
    assert_int_equal(r.size_bytes, 0);
    bfx_teardown(&x);
}

/* n audit rotations of one line each (rotation k's line names k), created
 * in a shuffled order; rotations <= old_upto get an mtime of 1 h ago. */
static void make_rotations(const char *dir, uint32_t n, uint32_t old_upto, uint64_t now_ns) {
    assert_int_equal(mkdir(dir, 0700), 0);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = 1 + (i * 37u) % n; /* 37 is prime to n below: a permutation */
        char p[800];
        assert_true((size_t)snprintf(p, sizeof p, "%s/audit.%u.jsonl", dir, k) < sizeof p);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fprintf(f, "{\"event\":\"ROT%u\",\"ts_ns\":\"%llu\"}\n", k, (unsigned long long)now_ns);
        fclose(f);
        if (k <= old_upto) {
            struct timeval tv[2];
            gettimeofday(&tv[0], NULL);
            tv[0].tv_sec -= 3600;
            tv[1] = tv[0];
            assert_int_equal(utimes(p, tv), 0);
        }
    }
    char p[800];
    assert_true((size_t)snprintf(p, sizeof p, "%s/audit.jsonl", dir) < sizeof p);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fprintf(f, "{\"event\":\"CURRENT\",\"ts_ns\":\"%llu\"}\n", (unsigned long long)now_ns);
    fclose(f);
}

static uint64_t manifest_audit_lines(const char *bundle) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "tar --zstd -xOf '%s' MANIFEST.json", bundle);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    pclose(p);
    buf[n] = '\0';
    cJSON *m = cJSON_Parse(buf);
    assert_non_null(m);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "audit_lines");
    assert_true(cJSON_IsNumber(a));
    uint64_t v = (uint64_t)a->valuedouble;
    cJSON_Delete(m);
    return v;
}

static bool bundle_has(const char *bundle, const char *entry, const char *needle) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "tar --zstd -xOf '%s' '%s' | grep -q '%s'", bundle, entry, needle);
    return system(cmd) == 0;
}

static void test_audit_rotations(void **state) {
    (void)state;
    bfx x;
    bfx_setup(&x, "brot", 100, 64u << 10);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    char dir[700];
    tl_bundle_env env = env_of(&x);
    tl_bundle_job j;
    tl_bundle_result r;

    /* 80 rotations, all recent: the 63 newest (18..80) read, the rest named */
    snprintf(dir, sizeof dir, "%s/aud80", x.root);
    make_rotations(dir, 80, 0, now);
    env.audit_dir = dir;
    job_init(&j, "b00000000000000o1", 1, x.last_seq);
    j.window_from_real_ns = now - 60ull * 1000000000ull;
    assert_int_equal(tl_bundle_export(&env, &j, NULL, &r), TL_BUNDLE_OK);
    assert_true(r.degraded & (1u << TL_BUNDLE_DEG_AUDIT_ROT));
    assert_string_equal(tl_bundle_deg_name(TL_BUNDLE_DEG_AUDIT_ROT), "audit_rotations_left_out");
    assert_int_equal(manifest_audit_lines(r.path), 63 + 1);
    assert_true(bundle_has(r.path, "audit.jsonl", "ROT80\""));
    assert_true(bundle_has(r.path, "audit.jsonl", "ROT18\""));
    assert_false(bundle_has(r.path, "audit.jsonl", "ROT17\""));
    assert_false(bundle_has(r.path, "audit.jsonl", "ROT1\""));
    unlink(r.path);

    /* 70 rotations whose 17 oldest kept ones are older than the window: the
     * ones left out (1..7) are older still, nothing is lost, nothing named */
    snprintf(dir, sizeof dir, "%s/aud70", x.root);
    make_rotations(dir, 70, 24, now);
    env.audit_dir = dir;
    job_init(&j, "b00000000000000o2", 1, x.last_seq);
    j.window_from_real_ns = now - 60ull * 1000000000ull;
    assert_int_equal(tl_bundle_export(&env, &j, NULL, &r), TL_BUNDLE_OK);
    assert_false(r.degraded & (1u << TL_BUNDLE_DEG_AUDIT_ROT));
    assert_int_equal(manifest_audit_lines(r.path), (70 - 24) + 1);
    assert_true(bundle_has(r.path, "audit.jsonl", "ROT70\""));
    unlink(r.path);

    /* 63 rotations: all read, nothing left out */
    snprintf(dir, sizeof dir, "%s/aud63", x.root);
    make_rotations(dir, 63, 0, now);
    env.audit_dir = dir;
    job_init(&j, "b00000000000000o3", 1, x.last_seq);
    j.window_from_real_ns = now - 60ull * 1000000000ull;
    assert_int_equal(tl_bundle_export(&env, &j, NULL, &r), TL_BUNDLE_OK);
    assert_false(r.degraded & (1u << TL_BUNDLE_DEG_AUDIT_ROT));
    assert_int_equal(manifest_audit_lines(r.path), 63 + 1);
    unlink(r.path);
    bfx_teardown(&x);
}

/* ---- verify ---- */

static void test_verify_limits(void **state) {
    (void)state;
    bfx x;
    bfx_setup(&x, "blimit", 3000, 64u << 10);
    tl_bundle_env env = env_of(&x);
    tl_bundle_job j;
    job_init(&j, "b00000000000000l1", 1, x.last_seq);
    tl_bundle_result r;
    assert_int_equal(tl_bundle_export(&env, &j, NULL, &r), TL_BUNDLE_OK);
    tl_bundle_verify_opts o = {.pubkey_path = x.pub};
    tl_bundle_report vr;
    assert_int_equal(tl_bundle_verify(r.path, &o, &vr), TL_BV_OK);
    assert_true(vr.bytes > 4096);
    /* the unpack limit: below the content, a named failure */
    o.max_unpacked_bytes = vr.bytes - 1;
    assert_int_equal(tl_bundle_verify(r.path, &o, &vr), TL_BV_UNPACK_LIMIT);
    assert_string_equal(tl_bundle_verr_name(TL_BV_UNPACK_LIMIT), "unpack_limit");
    assert_non_null(strstr(vr.detail, "more than"));
    /* the default (64 x compressed, at least 4 GiB) lets it through */
    o.max_unpacked_bytes = 0;
    assert_int_equal(tl_bundle_verify(r.path, &o, &vr), TL_BV_OK);
    /* a file that is not there, or a directory: unreadable */
    char p[700];
    snprintf(p, sizeof p, "%s/nonexistent.tar.zst", x.root);
    assert_int_equal(tl_bundle_verify(p, &o, &vr), TL_BV_UNREADABLE);
    assert_int_equal(tl_bundle_verify(x.root, &o, &vr), TL_BV_UNREADABLE);
    unlink(r.path);
    bfx_teardown(&x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_matches_reader), cmocka_unit_test(test_progress_partway),
        cmocka_unit_test(test_bad_range_named),       cmocka_unit_test(test_audit_rotations),
        cmocka_unit_test(test_verify_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
