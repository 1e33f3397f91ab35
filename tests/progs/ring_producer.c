/* ring_producer.c: the producer process of the two-process ring test
 * (tests/unit/test_ring_twoproc.c) — a stand-in for the engine.
 *
 *   ring_producer <name> <count> <capacity_bytes> <rate_per_s>
 *
 * Creates a new ring incarnation under <name>, waits (at most 10 s) for a
 * consumer heartbeat so the consumer can join at seq 1, then publishes seqs
 * 1..count as fast as <rate_per_s> allows (0: unpaced). It never waits for
 * the consumer. Record len and body are derived from seq so the consumer can
 * check every copy: len = 64 + 8 * (seq % 23), body word i = seq * K + i.
 * Exit 0 on success, 2 on bad arguments, 3 if no consumer showed up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/record.h"
#include "shm/ring.h"

#define BODY_K 0x9E3779B97F4A7C15ull

static void nap_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s name count capacity rate_per_s\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    uint64_t count = strtoull(argv[2], NULL, 10);
    uint64_t capacity = strtoull(argv[3], NULL, 10);
    uint64_t rate = strtoull(argv[4], NULL, 10);
    uint8_t engine_id[TL_ID_BYTES] = {0xe1, 0xe2};
    tl_ring_producer *p;
    enum tl_ring_err e = tl_ring_create(name, capacity, engine_id, NULL, &p);
    if (e != TL_RING_OK) {
        fprintf(stderr, "ring_producer: create: %s (%s)\n", tl_ring_err_name(e), strerror(errno));
        return 2;
    }
    uint64_t t0 = tl_ring_now_mono_ns();
    while (atomic_load_explicit(&p->ctl->consumer_heartbeat_mono_ns, memory_order_relaxed) == 0) {
        if (tl_ring_now_mono_ns() - t0 > 10000000000ull) {
            fprintf(stderr, "ring_producer: no consumer\n");
            return 3;
        }
        tl_ring_beat(p, tl_ring_now_mono_ns());
        nap_us(200);
    }
    uint64_t *rec = aligned_alloc(64, 65536);
    uint64_t start = tl_ring_now_mono_ns();
    for (uint64_t seq = 1; seq <= count; seq++) {
        uint32_t len = 64 + 8 * (uint32_t)(seq % 23);
        uint32_t body_len = len - 64;
        uint64_t body[32];
        for (uint32_t i = 0; i < body_len / 8; i++)
            body[i] = seq * BODY_K + i;
        tl_rec_meta m = {
            .parent = seq - 1, .seq = seq, .fence = 1, .ts_ns = seq, .kind = TL_KIND_HEARTBEAT};
        uint32_t n = tl_rec_encode((uint8_t *)rec, 65536, &m, body, body_len);
        if (n != len)
            return 2;
        tl_ring_publish(p, rec, n);
        if ((seq & 1023) == 0) {
            uint64_t now = tl_ring_now_mono_ns();
            tl_ring_beat(p, now);
            if (rate != 0) {
                /* Paced by time, never by the consumer. */
                uint64_t due = start + seq * 1000000000ull / rate;
                if (due > now + 50000) {
                    tl_ring_flush(p); /* before the producer sleeps */
                    nap_us((long)((due - now) / 1000));
                }
            }
        }
    }
    tl_ring_flush(p);
    tl_ring_set_last_seq(p, count);
    double secs = (double)(tl_ring_now_mono_ns() - start) / 1e9;
    fprintf(stderr, "ring_producer: %llu records in %.3f s, %llu pads\n", (unsigned long long)count,
            secs, (unsigned long long)p->pads);
    free(rec);
    tl_ring_close(p);
    return 0;
}
