/* bundle_int.h: what the bundle's files share:
 *   bundle_export.c  staging, the archive writer, the manifest, signing
 *   bundle_wal.c     the WAL check both sides run (io/wal_reader), file
 *                    helpers, names of errors
 *   bundle_verify.c  offline verification
 *   bundle_svc.c     tallyd's export service (worker thread, jobs)
 */
#ifndef TL_BUNDLE_INT_H
#define TL_BUNDLE_INT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "admin/bundle.h"
#include "core/record.h"

#define BUNDLE_FORMAT     "tally-bundle/2" /* 2: range.json ahead of wal/ (streamed verify) */
#define BUNDLE_RANGE_FILE "range.json"
#define BUNDLE_CHUNK      (1u << 20) /* bytes per read while archiving and hashing */
#define BUNDLE_ARC_PATH   112u       /* the longest path inside a bundle */
#define BUNDLE_SIG_BYTES  64u        /* Ed25519 */
#define BUNDLE_STAGE_DIRS 5u

/* The subdirectories of a bundle (and of its staging directory). */
extern const char *const bundle_dirs[BUNDLE_STAGE_DIRS]; /* wal, snapshots, ring, ledger, config */

/* The WAL check that export and verify both run over the bundle's wal/. */
typedef struct bw_finding {
    uint16_t check;
    uint16_t reason;
    uint64_t seq;
    uint64_t segment;
    uint64_t offset;
} bw_finding;

typedef struct bw_check {
    /* in */
    uint64_t from_seq; /* the range asked for */
    uint64_t to_seq;
    /* each record of the log in order, all seqs (verify compares the ring) */
    void (*on_rec)(void *ctx, uint64_t seq, uint64_t checksum);
    void *ctx;
    /* out: over the records in [from_seq, to_seq] */
    uint64_t first_seq;
    uint64_t first_parent;
    uint64_t first_checksum;
    uint64_t last_seq;
    uint64_t last_checksum;
    uint64_t records;
    uint64_t fence_min;
    uint64_t fence_max;
    /* out: over the whole of wal/ */
    uint32_t segments;
    uint64_t records_total;
    uint64_t findings;
    uint32_t shown;
    bw_finding first[TL_BUNDLE_SHOWN_FINDINGS];
    uint64_t fork_seq; /* the lowest seq of a FORK the reader found (0 = none) */
    uint8_t tail;      /* enum tl_wal_tail */
    bool anchor_verified;
    uint64_t anchor_segment;
    bool have_engine_id;
    uint8_t engine_id[TL_ID_BYTES];
    uint64_t wal_bytes;
} bw_check;

/* 0, or -1 with the reader's error name in err. A directory with no
 * segment is 0 with segments == 0. */
int bw_wal_check(const char *dir, bw_check *c, char *err, size_t cap);
/* The same check over segments fed as bytes, in one pass (export writes
 * each segment straight into the archive, verify reads each from the
 * archive; neither has a directory of segments). It reproduces
 * bw_wal_check exactly (tests/unit/test_bundle_stream.c compares the two):
 * segments come in ascending name order, each walked as sealed; the
 * judgement a sealed and the newest segment differ on (a rule 1/2 failure or
 * a bad header ends the walk: WAL_CORRUPT if sealed, a tentative tail if
 * newest) is held until the next segment begins (sealed) or the check ends
 * (newest). Memory: one window and one BW_STREAM_BUF buffer, taken in
 * bw_stream_new. */
#define BW_STREAM_BUF (2u << 20) /* > TL_REC_MAX_BYTES: any record fits */
typedef struct bw_stream bw_stream;
/* c's in-members (from_seq, to_seq, on_rec, ctx) are set; NULL if no memory. */
bw_stream *bw_stream_new(bw_check *c);
void bw_stream_free(bw_stream *s);
/* A segment named name_first_seq of file_bytes bytes begins. -1 if it is
 * not above the previous one (the check cannot go on). */
int bw_stream_seg_begin(bw_stream *s, uint64_t name_first_seq, uint64_t file_bytes);
/* The next n bytes of the segment (at most file_bytes in all). */
void bw_stream_seg_data(bw_stream *s, const void *p, size_t n);
/* The segment's bytes are all in; fewer than file_bytes: it is judged as a
 * file of that many bytes (it shrank). */
void bw_stream_seg_end(bw_stream *s);
/* No segment follows: the last one is the newest. Fills c's out-members. */
void bw_stream_finish(bw_stream *s);

/* The manifest's "wal_check" member: what verify must reproduce. */
cJSON *bw_check_json(const bw_check *c);

/* A file name inside a bundle: [A-Za-z0-9._-]+, not starting with '.'.
 * Export copies only such names; verify refuses any other. */
bool bundle_name_safe(const char *name);

/* ---- files ---- */

/* write(2) until done (EINTR, short counts). 0, or -1 with errno. */
int bundle_write_all(int fd, const void *p, size_t n);
/* pread(2) until n or end of file: bytes read, or -1 with errno. */
ssize_t bundle_pread_full(int fd, void *p, size_t n, uint64_t off);
/* Writes a whole file (O_EXCL, 0600). 0, or -1 with errno. */
int bundle_write_file(const char *path, const void *p, size_t n);
/* Reads a whole small file (at most max bytes) into malloc'd memory. */
char *bundle_read_file(const char *path, size_t max, size_t *len);
/* Removes a staging or extraction directory: its files, its known
 * subdirectories' files, the subdirectories, itself (two levels, no
 * recursion). */
void bundle_rm_tree(const char *dir);
/* ENOSPC, EDQUOT, EFBIG -> disk_full; anything else -> io_error. */
enum tl_bundle_err bundle_errno_class(int e);

/* Lowercase hex of n bytes into out (2n + 1). */
void bundle_hex(const uint8_t *p, size_t n, char *out);
/* "%llu" as a cJSON string (64-bit values never go through a double). */
cJSON *bundle_u64(cJSON *obj, const char *key, uint64_t v);
/* Reads such a member back (a decimal string, or a small number). */
bool bundle_get_u64(const cJSON *obj, const char *key, uint64_t *out);

/* SHA-256 of a stream. */
typedef struct bundle_sha {
    void *ctx; /* EVP_MD_CTX */
} bundle_sha;
bool bundle_sha_init(bundle_sha *s);
void bundle_sha_update(bundle_sha *s, const void *p, size_t n);
void bundle_sha_final(bundle_sha *s, uint8_t out[32]);
void bundle_sha_free(bundle_sha *s);

/* An Ed25519 public key for verification (PEM public key, or the private
 * key it belongs to). */
struct evp_pkey_st *bundle_pubkey_load(const char *path);

#endif
