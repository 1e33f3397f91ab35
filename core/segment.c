/* segment.c: segment header checks and file names. */
#include "segment.h"

#include <stdio.h>
#include <string.h>

#include "assert.h"
#include "checksum.h"

static const char *const seg_err_names[TL_SEG_ERR_COUNT] = {
    [TL_SEG_OK] = "ok",
    [TL_SEG_ERR_SHORT] = "short_header",
    [TL_SEG_ERR_MAGIC] = "bad_magic",
    [TL_SEG_ERR_CHECKSUM] = "bad_header_checksum",
    [TL_SEG_ERR_VERSION] = "bad_version",
    [TL_SEG_ERR_HEADER_LEN] = "bad_header_len",
    [TL_SEG_ERR_SIZE] = "bad_segment_size",
    [TL_SEG_ERR_FIRST_SEQ] = "bad_first_seq",
    [TL_SEG_ERR_RESERVED] = "nonzero_reserved",
};

const char *tl_seg_err_name(enum tl_seg_err e) {
    return (unsigned)e < TL_SEG_ERR_COUNT ? seg_err_names[e] : "?";
}

enum tl_seg_err tl_seg_hdr_check(const uint8_t *buf, size_t avail) {
    if (avail < TL_SEG_HDR_BYTES)
        return TL_SEG_ERR_SHORT;
    tl_seg_hdr h;
    memcpy(&h, buf, sizeof h);
    if (memcmp(h.magic, TL_SEG_MAGIC, 8) != 0) {
        /* All-zero is a header not yet written; report it as a checksum
         * failure so that it stays tentative in the newest segment. */
        uint8_t acc = 0;
        for (int i = 0; i < 8; i++)
            acc |= h.magic[i];
        return acc == 0 ? TL_SEG_ERR_CHECKSUM : TL_SEG_ERR_MAGIC;
    }
    if (tl_xxh3(buf, 4088) != h.header_checksum)
        return TL_SEG_ERR_CHECKSUM;
    if (h.version != TL_SEG_VERSION)
        return TL_SEG_ERR_VERSION;
    if (h.header_len != TL_SEG_HDR_BYTES)
        return TL_SEG_ERR_HEADER_LEN;
    if (h.segment_size % 4096u != 0 || h.segment_size < TL_SEG_MIN_BYTES ||
        h.segment_size > TL_SEG_MAX_BYTES)
        return TL_SEG_ERR_SIZE;
    if (h.first_seq == 0)
        return TL_SEG_ERR_FIRST_SEQ;
    for (size_t i = 0; i < sizeof h.reserved; i++) {
        if (h.reserved[i] != 0)
            return TL_SEG_ERR_RESERVED;
    }
    return TL_SEG_OK;
}

void tl_seg_hdr_seal(tl_seg_hdr *h) {
    memcpy(h->magic, TL_SEG_MAGIC, 8);
    h->header_checksum = tl_xxh3(h, 4088);
}

void tl_seg_name(char *out, size_t cap, uint64_t first_seq) {
    TL_ASSERT(cap >= TL_SEG_NAME_BYTES + 1);
    int n = snprintf(out, cap, "%020llu.wal", (unsigned long long)first_seq);
    TL_ASSERT(n == (int)TL_SEG_NAME_BYTES);
}

bool tl_seg_name_parse(const char *name, uint64_t *first_seq) {
    if (strlen(name) != TL_SEG_NAME_BYTES || strcmp(name + 20, ".wal") != 0)
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        char c = name[i];
        if (c < '0' || c > '9')
            return false;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *first_seq = v;
    return true;
}
