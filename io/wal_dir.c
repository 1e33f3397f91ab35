/* wal_dir.c: list a WAL directory's segments (see wal_dir.h). */
#include "wal_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/segment.h"

enum tl_wal_err tl_wal_dir_init(tl_wal_dir *d, uint32_t max_entries) {
    memset(d, 0, sizeof *d);
    d->max_entries = max_entries != 0 ? max_entries : TL_WAL_DIR_DEFAULT_MAX;
    d->first_seqs = calloc(d->max_entries, sizeof *d->first_seqs);
    return d->first_seqs != NULL ? TL_WAL_OK : TL_WAL_ERR_NOMEM;
}

void tl_wal_dir_free(tl_wal_dir *d) {
    free(d->first_seqs);
    d->first_seqs = NULL;
    d->count = 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static bool ends_with(const char *s, size_t n, const char *suffix) {
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

enum tl_wal_err tl_wal_dir_scan(tl_wal_dir *d, int dirfd) {
    TL_ASSERT(d->first_seqs != NULL);
    d->count = 0;
    d->tmp_total = 0;
    d->unknown_total = 0;
    d->ioerr = (tl_wal_ioerr){0};
    /* fdopendir takes ownership of its fd: give it a duplicate, and rewind
     * because a duplicate shares the directory offset. */
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        d->ioerr = (tl_wal_ioerr){"openat", errno};
        return TL_WAL_ERR_IO;
    }
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        d->ioerr = (tl_wal_ioerr){"fdopendir", errno};
        close(fd);
        return TL_WAL_ERR_IO;
    }
    enum tl_wal_err rc = TL_WAL_OK;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(dir);
        if (de == NULL) {
            if (errno != 0) {
                d->ioerr = (tl_wal_ioerr){"readdir", errno};
                rc = TL_WAL_ERR_IO;
            }
            break;
        }
        const char *name = de->d_name;
        size_t n = strlen(name);
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        uint64_t first_seq;
        if (tl_seg_name_parse(name, &first_seq)) {
            if (d->count == d->max_entries) {
                rc = TL_WAL_ERR_TOO_MANY_SEGMENTS;
                break;
            }
            d->first_seqs[d->count++] = first_seq;
        } else if (ends_with(name, n, ".tmp")) {
            d->tmp_total++;
        } else {
            if (d->unknown_total < TL_WAL_DIR_UNKNOWN_KEEP) {
                char *out = d->unknown[d->unknown_total];
                size_t k = n < TL_WAL_DIR_NAME_KEEP - 1 ? n : TL_WAL_DIR_NAME_KEEP - 1;
                memcpy(out, name, k);
                out[k] = '\0';
            }
            d->unknown_total++;
        }
    }
    closedir(dir);
    if (rc != TL_WAL_OK) {
        d->count = 0;
        return rc;
    }
    /* Names are exactly 20 digits, so equal first_seqs cannot occur; sorting
     * the numbers sorts the names. */
    qsort(d->first_seqs, d->count, sizeof *d->first_seqs, cmp_u64);
    return TL_WAL_OK;
}

int64_t tl_wal_dir_find(const tl_wal_dir *d, uint64_t seq) {
    /* Binary search: the last index with first_seqs[i] <= seq. */
    int64_t lo = 0, hi = (int64_t)d->count - 1, found = -1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (d->first_seqs[mid] <= seq) {
            found = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return found;
}
