/* test_wal_dir.c: listing a WAL directory (io/wal_dir.h): seq order, ".tmp"
 * and unknown names, the entry limit, and the search by seq. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/wal_dir.h"

static void touch(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    tu_write_file(path, "", 0);
}

static void test_scan_sorted(void **state) {
    (void)state;
    char *dir = tu_tmpdir("waldir");
    /* created out of order; readdir order is the filesystem's */
    touch(dir, "00000000000000000077.wal");
    touch(dir, "00000000000000000001.wal");
    touch(dir, "18446744073709551615.wal");
    touch(dir, "00000000000000000039.wal");
    touch(dir, "00000000000000000104.wal.tmp");
    touch(dir, "00000000000000000039.wal.bak");
    touch(dir, "0000000000000000039.wal");  /* 19 digits */
    touch(dir, "18446744073709551616.wal"); /* overflows u64 */
    touch(dir, "README");
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    tl_wal_dir d;
    assert_int_equal(tl_wal_dir_init(&d, 0), TL_WAL_OK);
    assert_int_equal(d.max_entries, TL_WAL_DIR_DEFAULT_MAX);
    assert_int_equal(tl_wal_dir_scan(&d, fd), TL_WAL_OK);
    assert_int_equal(d.count, 4);
    assert_int_equal(d.first_seqs[0], 1);
    assert_int_equal(d.first_seqs[1], 39);
    assert_int_equal(d.first_seqs[2], 77);
    assert_true(d.first_seqs[3] == UINT64_MAX);
    assert_int_equal(d.tmp_total, 1);
    assert_int_equal(d.unknown_total, 4);
    /* the kept unknown names are real names from the directory */
    for (unsigned i = 0; i < 4; i++)
        assert_true(strstr(d.unknown[i], "39.wal") != NULL || strcmp(d.unknown[i], "README") == 0 ||
                    strstr(d.unknown[i], "551616") != NULL);
    /* find: the last segment whose first_seq <= seq */
    assert_int_equal(tl_wal_dir_find(&d, 0), -1);
    assert_int_equal(tl_wal_dir_find(&d, 1), 0);
    assert_int_equal(tl_wal_dir_find(&d, 38), 0);
    assert_int_equal(tl_wal_dir_find(&d, 39), 1);
    assert_int_equal(tl_wal_dir_find(&d, 100), 2);
    assert_int_equal(tl_wal_dir_find(&d, UINT64_MAX), 3);
    /* a scan again gives the same (the fd is not consumed) */
    assert_int_equal(tl_wal_dir_scan(&d, fd), TL_WAL_OK);
    assert_int_equal(d.count, 4);
    tl_wal_dir_free(&d);
    close(fd);
    tu_rm_rf(dir);
    free(dir);
}

static void test_scan_limit(void **state) {
    (void)state;
    char *dir = tu_tmpdir("waldirlim");
    char name[32];
    for (unsigned i = 1; i <= 5; i++) {
        snprintf(name, sizeof name, "%020u.wal", i * 10);
        touch(dir, name);
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    tl_wal_dir d;
    assert_int_equal(tl_wal_dir_init(&d, 4), TL_WAL_OK);
    assert_int_equal(tl_wal_dir_scan(&d, fd), TL_WAL_ERR_TOO_MANY_SEGMENTS);
    assert_int_equal(d.count, 0);
    tl_wal_dir_free(&d);
    assert_int_equal(tl_wal_dir_init(&d, 5), TL_WAL_OK);
    assert_int_equal(tl_wal_dir_scan(&d, fd), TL_WAL_OK);
    assert_int_equal(d.count, 5);
    assert_int_equal(d.first_seqs[4], 50);
    tl_wal_dir_free(&d);
    close(fd);
    assert_string_equal(tl_wal_err_name(TL_WAL_ERR_TOO_MANY_SEGMENTS), "too_many_segments");
    tu_rm_rf(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_sorted),
        cmocka_unit_test(test_scan_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
