/* segment.h: the native WAL segment header and file names (wal.md).
 *
 * A segment is `%020llu.wal` (its first seq), preallocated to segment_size,
 * with a 4096-byte checksummed header; records start at offset 4096. Names
 * ending in ".tmp" are a writer's work in progress and are never read.
 */
#ifndef TL_SEGMENT_H
#define TL_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

#define TL_SEG_MAGIC         "TLYWAL01"
#define TL_SEG_VERSION       1u
#define TL_SEG_HDR_BYTES     4096u
#define TL_SEG_MIN_BYTES     8192u
#define TL_SEG_DEFAULT_BYTES (64u << 20)
/* A limit on segment_size so a corrupt header cannot make a reader plan a
 * huge read: 16 GiB. */
#define TL_SEG_MAX_BYTES  (16ull << 30)
#define TL_SEG_NAME_BYTES 24u /* 20 digits + ".wal" */

typedef struct tl_seg_hdr {
    uint8_t magic[8];
    uint32_t version;
    uint32_t header_len;
    uint64_t segment_index;
    uint64_t first_seq;
    uint64_t prev_checksum;
    uint64_t fence;
    uint8_t engine_id[TL_ID_BYTES];
    uint64_t created_ns;
    uint64_t segment_size;
    uint8_t leader_id[TL_ID_BYTES];
    uint8_t reserved[3992];
    uint64_t header_checksum; /* XXH3-64 of [0, 4088) */
} tl_seg_hdr;

_Static_assert(sizeof(tl_seg_hdr) == TL_SEG_HDR_BYTES, "wal.md");
_Static_assert(offsetof(tl_seg_hdr, version) == 8, "wal.md");
_Static_assert(offsetof(tl_seg_hdr, header_len) == 12, "wal.md");
_Static_assert(offsetof(tl_seg_hdr, segment_index) == 16, "wal.md");
_Static_assert(offsetof(tl_seg_hdr, first_seq) == 24, "wal.md");
_Static_assert(offsetof(tl_seg_hdr, prev_checksum) == 32, "wal.md");
_Static_assert(offsetof(tl_seg_hdr, fence) == 40, "wal.md");
_Static_assert(offsetof(tl_seg_hdr, engine_id) == 48, "wal.md");
_Static_assert(offsetof(tl_seg_hdr, created_ns) == 64, "wal.md");
_Static_assert(offsetof(tl_seg_hdr, segment_size) == 72, "wal.md");
_Static_assert(offsetof(tl_seg_hdr, leader_id) == 80, "wal.md");
_Static_assert(offsetof(tl_seg_hdr, reserved) == 96, "wal.md");
_Static_assert(offsetof(tl_seg_hdr, header_checksum) == 4088, "wal.md");

enum tl_seg_err {
    TL_SEG_OK = 0,
    TL_SEG_ERR_SHORT,    /* fewer than 4096 bytes */
    TL_SEG_ERR_MAGIC,    /* not TLYWAL01 */
    TL_SEG_ERR_CHECKSUM, /* header_checksum does not match */
    TL_SEG_ERR_VERSION,  /* version != 1 */
    TL_SEG_ERR_HEADER_LEN,
    TL_SEG_ERR_SIZE,      /* segment_size not a multiple of 4096, < 8192, or above the limit */
    TL_SEG_ERR_FIRST_SEQ, /* first_seq 0 */
    TL_SEG_ERR_RESERVED,  /* nonzero reserved bytes */
    TL_SEG_ERR_COUNT,
};

const char *tl_seg_err_name(enum tl_seg_err e);

/* Checks a header read from a file of file_bytes bytes (file_bytes is only
 * used to say SHORT; a file may be shorter than segment_size while the engine
 * preallocates). The checksum is checked before any field, so a header still
 * being written reads as CHECKSUM, never as a field error. */
enum tl_seg_err tl_seg_hdr_check(const uint8_t *buf, size_t avail);

/* Fills the header checksum; the other fields are the caller's. */
void tl_seg_hdr_seal(tl_seg_hdr *h);

/* "%020llu.wal" into out (>= TL_SEG_NAME_BYTES + 1 bytes). */
void tl_seg_name(char *out, size_t cap, uint64_t first_seq);
/* Strict parse of a final segment name: 20 digits then ".wal", nothing else.
 * Returns false for ".tmp" names and anything else. */
bool tl_seg_name_parse(const char *name, uint64_t *first_seq);

#endif
