/* wal_err.h: the named errors of the native WAL's I/O side (writer, directory
 * scan, offline reader). Each has a stable snake_case name for logs, metrics
 * and tallyctl's exit messages. A system call that fails is TL_WAL_ERR_IO,
 * with the call's name and errno kept next to it (tl_wal_ioerr). */
#ifndef TL_WAL_ERR_H
#define TL_WAL_ERR_H

enum tl_wal_err {
    TL_WAL_OK = 0,
    TL_WAL_ERR_IO,                /* a system call failed: see tl_wal_ioerr */
    TL_WAL_ERR_NOMEM,             /* start-up allocation failed */
    TL_WAL_ERR_CONFIG,            /* a configuration value is out of its range */
    TL_WAL_ERR_TOO_MANY_SEGMENTS, /* the directory holds more segments than the limit */
    TL_WAL_ERR_LOCKED,            /* another writer holds the directory */
    TL_WAL_ERR_CORRUPT,           /* open: the log breaks a reading rule (first finding kept) */
    TL_WAL_ERR_NEWEST_HEADER,     /* open: the newest segment's header is invalid */
    TL_WAL_ERR_KIND,              /* append: kind 0, PAD, or LEADER_CHANGE outside its API */
    TL_WAL_ERR_RECORD,            /* append: the record would break a field rule */
    TL_WAL_ERR_TOO_BIG,           /* a record (with the openers) cannot fit a segment */
    TL_WAL_ERR_SEQ,               /* append_record: not the next seq */
    TL_WAL_ERR_PARENT,            /* append_record: parent is not the last checksum */
    TL_WAL_ERR_FENCE,             /* a fence rule would break (new_fence <= fence, ...) */
    TL_WAL_ERR_FAILED,            /* the writer failed earlier (I/O error, or a fault hook) */
    TL_WAL_ERR_NOT_FOUND,         /* the directory does not exist */
    TL_WAL_ERR_COUNT,
};

const char *tl_wal_err_name(enum tl_wal_err e);

/* Where an I/O error came from. */
typedef struct tl_wal_ioerr {
    const char *op; /* "pwrite", "fdatasync", ... (static string) or NULL */
    int sys_errno;
} tl_wal_ioerr;

#endif
