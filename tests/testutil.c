/* testutil.c: see testutil.h. */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *tu_shared(const char *rel) {
    static char buf[8][4096];
    static int next;
    char *out = buf[next++ & 7];
    snprintf(out, 4096, "%s/%s", TL_SHARED_DIR, rel);
    return out;
}

const char *tu_build_path(const char *rel) {
    static char buf[8][4096];
    static int next;
    char *out = buf[next++ & 7];
    snprintf(out, 4096, "%s/%s", TL_BUILD_DIR, rel);
    return out;
}

uint8_t *tu_read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    size_t n = (size_t)st.st_size;
    uint8_t *buf = aligned_alloc(64, (n + 64) & ~(size_t)63);
    assert_non_null(buf);
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            fail_msg("read %s: %s", path, r < 0 ? strerror(errno) : "short");
        got += (size_t)r;
    }
    buf[n] = 0;
    close(fd);
    *len = n;
    return buf;
}

void tu_write_file(const char *path, const void *buf, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        fail_msg("open %s: %s", path, strerror(errno));
    size_t put = 0;
    while (put < len) {
        ssize_t w = write(fd, (const uint8_t *)buf + put, len - put);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            fail_msg("write %s: %s", path, strerror(errno));
        put += (size_t)w;
    }
    assert_int_equal(close(fd), 0);
}

char *tu_tmpdir(const char *tag) {
    char *p = malloc(256);
    assert_non_null(p);
    const char *base = getenv("TMPDIR");
    snprintf(p, 256, "%s/tally-%s-XXXXXX", base ? base : "/tmp", tag);
    if (mkdtemp(p) == NULL)
        fail_msg("mkdtemp: %s", strerror(errno));
    return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void tu_rm_rf(const char *path) {
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

uint64_t tu_hex64(const char *s) {
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (d < 0)
            fail_msg("bad hex '%s'", s);
        v = (v << 4) | (uint64_t)d;
    }
    return v;
}

void *tu_aligned(size_t align, size_t size) {
    void *p = aligned_alloc(align, (size + align - 1) / align * align);
    assert_non_null(p);
    return p;
}
