/* wal_err.c: names of the WAL I/O errors. */
#include "wal_err.h"

static const char *const names[TL_WAL_ERR_COUNT] = {
    [TL_WAL_OK] = "ok",
    [TL_WAL_ERR_IO] = "io_error",
    [TL_WAL_ERR_NOMEM] = "out_of_memory",
    [TL_WAL_ERR_CONFIG] = "bad_config",
    [TL_WAL_ERR_TOO_MANY_SEGMENTS] = "too_many_segments",
    [TL_WAL_ERR_LOCKED] = "wal_locked",
    [TL_WAL_ERR_CORRUPT] = "wal_corrupt",
    [TL_WAL_ERR_NEWEST_HEADER] = "newest_header_invalid",
    [TL_WAL_ERR_KIND] = "bad_kind",
    [TL_WAL_ERR_RECORD] = "bad_record",
    [TL_WAL_ERR_TOO_BIG] = "record_too_big",
    [TL_WAL_ERR_SEQ] = "seq_not_next",
    [TL_WAL_ERR_PARENT] = "parent_not_last",
    [TL_WAL_ERR_FENCE] = "fence_rule",
    [TL_WAL_ERR_FAILED] = "writer_failed",
    [TL_WAL_ERR_NOT_FOUND] = "no_such_dir",
};

const char *tl_wal_err_name(enum tl_wal_err e) {
    return (unsigned)e < TL_WAL_ERR_COUNT ? names[e] : "?";
}
