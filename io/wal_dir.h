/* wal_dir.h: the segments of a native WAL directory, sorted by seq.
 *
 * A scan lists `%020llu.wal` names (core/segment.h tl_seg_name_parse) in seq
 * order. Names ending in ".tmp" are a writer's work in progress: skipped and
 * counted. Any other name (not ".", "..") is unknown: counted, and the first
 * few kept so that an operator can be told which. The array is allocated
 * once, at init, with a limit; a directory with more segments is an error,
 * never a bigger allocation.
 */
#ifndef TL_WAL_DIR_H
#define TL_WAL_DIR_H

#include <stdint.h>

#include "wal_err.h"

#define TL_WAL_DIR_DEFAULT_MAX  (1u << 20) /* 1,048,576 segments: 64 TiB of 64 MiB segments */
#define TL_WAL_DIR_UNKNOWN_KEEP 8u
#define TL_WAL_DIR_NAME_KEEP    64u

typedef struct tl_wal_dir {
    uint64_t *first_seqs; /* ascending; count entries */
    uint32_t count;
    uint32_t max_entries;
    uint32_t tmp_total;                                          /* "*.tmp" names skipped */
    uint32_t unknown_total;                                      /* other names */
    char unknown[TL_WAL_DIR_UNKNOWN_KEEP][TL_WAL_DIR_NAME_KEEP]; /* the first few, truncated */
    tl_wal_ioerr ioerr;
} tl_wal_dir;

/* Allocates room for max_entries (0 = TL_WAL_DIR_DEFAULT_MAX). */
enum tl_wal_err tl_wal_dir_init(tl_wal_dir *d, uint32_t max_entries);
void tl_wal_dir_free(tl_wal_dir *d);

/* Lists the directory open at dirfd (the fd is not consumed). On
 * TL_WAL_ERR_TOO_MANY_SEGMENTS the listing is incomplete and count is 0. */
enum tl_wal_err tl_wal_dir_scan(tl_wal_dir *d, int dirfd);

/* Index of the last segment whose first_seq <= seq, or -1 if none. */
int64_t tl_wal_dir_find(const tl_wal_dir *d, uint64_t seq);

#endif
