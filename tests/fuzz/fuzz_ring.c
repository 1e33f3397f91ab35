/* fuzz_ring.c: libFuzzer target for the ring consumer (shm/ring_consumer.c,
 * shm/ring_map.c) reading a ring image of outside bytes.
 *
 * The consumer must never crash, hang or read outside the image, whatever
 * the control block and the data region hold. Two shapes of input:
 *   - raw (first byte even): the input is the image itself (control block,
 *     then data), zero-extended; the header check decides whether the
 *     consumer runs at all;
 *   - scripted (first byte odd): a valid header, then a script that writes
 *     well-formed records and PADs (real checksums, so the fuzzer gets past
 *     the checksum), raw bytes, bit flips and `publish` values, interleaved
 *     with polls. That reaches every branch of the protocol.
 * Every RECORD delivered must be a copy that verifies: that is checked.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined; link tl_shm, tl_core
 * (and through them xxhash, rt, pthread).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/record.h"
#include "shm/ring.h"

#define CAP       (1ull << 20)
#define IMG_BYTES (TL_RING_CONTROL_BYTES + CAP)
#define MAX_POLLS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *img;
static uint8_t *scratch;

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint64_t take(reader *r, unsigned bytes) {
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++) {
        uint8_t b = 0;
        if (r->n > 0) {
            b = *r->p++;
            r->n--;
        }
        v |= (uint64_t)b << (8 * i);
    }
    return v;
}

static void check_event(const tl_ring_event *ev) {
    if (ev->type != TL_RING_EV_RECORD)
        return;
    /* The delivered copy is whole and verified, REPLAY cleared. */
    memcpy(scratch, ev->rec, ev->len);
    bool replay = true;
    enum tl_rec_err e = tl_rec_verify(scratch, ev->len, TL_WHERE_RING, &replay);
    if (e != TL_REC_OK || replay || tl_rec_hdr_of(ev->rec)->len != ev->len ||
        tl_rec_hdr_of(ev->rec)->seq != ev->seq)
        __builtin_trap();
}

static void run_polls(tl_ring_consumer *c, uint64_t *last, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        tl_ring_event ev;
        enum tl_ring_ev t = tl_ring_poll(c, *last, &ev);
        if ((unsigned)t >= TL_RING_EV_COUNT)
            __builtin_trap();
        check_event(&ev);
        if (t == TL_RING_EV_RECORD && ev.seq == ev.expected)
            *last = ev.seq;
        if (t == TL_RING_EV_ATTACHED && ev.expected > 0)
            *last = ev.expected - 1;
        if (c->position % 8 != 0)
            __builtin_trap();
    }
}

static void put_header(void) {
    tl_ring_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, TL_RING_MAGIC, 8);
    h.version = TL_RING_VERSION;
    h.control_len = TL_RING_CONTROL_BYTES;
    h.capacity = CAP;
    h.producer_pid = 1;
    h.header_checksum = tl_ring_header_checksum(&h);
    memcpy(img, &h, sizeof h);
}

static void set_publish(uint64_t v) {
    memcpy(img + offsetof(tl_ring_ctl, publish), &v, 8);
}

/* One script step; returns false at the end of the input. */
static bool script_step(reader *r, tl_ring_consumer *c, uint64_t *last) {
    if (r->n == 0)
        return false;
    uint8_t op = (uint8_t)take(r, 1);
    uint64_t off = (take(r, 3) << 3) & (CAP - 1);
    switch (op % 7) {
        case 0: { /* a well-formed record */
            uint32_t body_len = (uint32_t)take(r, 2) % 512;
            tl_rec_meta m = {.parent = take(r, 1),
                             .seq = take(r, 2),
                             .fence = 1,
                             .ts_ns = 7,
                             .kind = (uint16_t)(take(r, 1) % 10),
                             .flags = (uint16_t)(take(r, 1) & 3),
                             .symbol = (uint32_t)take(r, 1)};
            uint8_t body[512];
            memset(body, 0, sizeof body);
            for (uint32_t i = 0; i < body_len && r->n > 0; i++)
                body[i] = (uint8_t)take(r, 1);
            uint32_t len = tl_rec_len_for_body(body_len);
            if (off + len > CAP)
                break;
            tl_rec_encode(img + TL_RING_CONTROL_BYTES + off, len, &m, body, body_len);
            break;
        }
        case 1: { /* a PAD, often of exactly the room left */
            uint32_t room = (uint32_t)(CAP - off);
            uint32_t len = (take(r, 1) & 1) ? room : (uint32_t)((take(r, 2) << 3) + 64);
            tl_rec_meta next = {.seq = take(r, 2), .parent = 1, .fence = 1, .ts_ns = 7};
            if (len > room || len >= TL_PAD_LIMIT_BYTES)
                break;
            tl_rec_encode_pad(img + TL_RING_CONTROL_BYTES + off, len, len, &next);
            break;
        }
        case 2: { /* raw bytes anywhere in the data region */
            unsigned n = (unsigned)take(r, 1) % 64;
            for (unsigned i = 0; i < n && off + i < CAP; i++)
                img[TL_RING_CONTROL_BYTES + off + i] = (uint8_t)take(r, 1);
            break;
        }
        case 3: /* publish, relative to the consumer or absolute */
            if (take(r, 1) & 1)
                set_publish(c->position + (take(r, 3) << 3));
            else
                set_publish(take(r, 8));
            break;
        case 4: /* a bit flip */
            img[TL_RING_CONTROL_BYTES + off] ^= (uint8_t)(1u << (take(r, 1) & 7));
            break;
        case 5:
            run_polls(c, last, 1 + (unsigned)take(r, 1) % 16);
            break;
        case 6:
            tl_ring_consumer_start_at(c, ((take(r, 3) << 3) & ~(uint64_t)7), take(r, 2));
            *last = take(r, 2);
            break;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (img == NULL) {
        img = aligned_alloc(64, IMG_BYTES);
        scratch = aligned_alloc(64, TL_RING_COPY_BYTES);
        if (img == NULL || scratch == NULL)
            abort();
    }
    memset(img, 0, IMG_BYTES);
    if (size == 0)
        return 0;
    reader r = {data + 1, size - 1};
    bool scripted = (data[0] & 1) != 0;
    if (!scripted)
        memcpy(img, r.p, r.n < IMG_BYTES ? r.n : IMG_BYTES);
    else
        put_header();

    tl_ring_map m;
    if (tl_ring_map_from_memory(&m, img, IMG_BYTES) != TL_RING_OK)
        return 0;
    tl_ring_consumer c;
    if (tl_ring_consumer_init(&c, &m) != TL_RING_OK)
        abort();
    uint64_t last = 0;
    if (!scripted) {
        /* Both ways in: a first attach, and a start at a given position. */
        run_polls(&c, &last, MAX_POLLS);
        uint64_t pos = ((uint64_t)data[0] << 3) * 97 + (uint64_t)size * 8;
        tl_ring_consumer_start_at(&c, pos & ~(uint64_t)7, (uint64_t)size);
        run_polls(&c, &last, MAX_POLLS);
    } else {
        for (int steps = 0; steps < 4096 && script_step(&r, &c, &last); steps++) {
        }
        run_polls(&c, &last, MAX_POLLS);
    }
    tl_ring_consumer_free(&c);
    tl_ring_map_close(&m);
    return 0;
}
