/* bench_ring.c: the TLYRING1 ring against DPDK's rte_ring, two processes
 * pinned to cores 0 (producer) and 1 (consumer). Not run by CI.
 *
 *   bench_ring [--runs N] [--records N] [--json FILE] [--capacity BYTES]
 *
 * Cases, interleaved in each run so that both rings see the same machine
 * weather (the two vCPUs are noisy):
 *   ring64    our ring, 64-byte records, lossless (see below), the consumer
 *             is tl_ring_poll (it always verifies the checksum);
 *   rte64     rte_ring SP/SC, burst 32, 64-byte elements, copy only;
 *   rte64v    the same, and the consumer verifies each record's checksum;
 *   ring120   our ring, 120-byte records (ORDER_NEW with 16 spare body
 *             bytes), checksum verified;
 *   rte120v   rte_ring burst 32, 120-byte elements, checksum verified;
 *   pub_with  the engine's cost of tl_ring_publish (120-byte records,
 *             64 MiB ring) while a consumer follows on core 1;
 *   pub_solo  the same with no consumer.
 * Every case moves the same pre-encoded records (seqs 1..N, real checksums)
 * from one source buffer.
 *
 * "Lossless" for our ring: the ring itself never waits for the consumer, so
 * to measure the pair's throughput the *benchmark's* producer loop holds
 * itself within a window of the consumer's position (rigtorp-style cached
 * index, reloaded only when the cached view says the window is full): the
 * same bytes in flight as the rte_ring of 16384 elements. rte_ring brings
 * that back-pressure built in.
 *
 * rte_ring lives in our own MAP_SHARED memory, set up with rte_ring_init and
 * no EAL. This file is compiled with DPDK's cflags (-march=corei7); the ring
 * code it measures is in tl_shm and tl_core, built with the project's flags.
 *
 * Prints a markdown table (median, min, max of the runs) and writes JSON.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "core/record.h"
#include "shm/ring.h"

#define RTE_COUNT    16384u
#define BURST        32u
#define LOSSLESS_CAP (4ull << 20)
#define MAX_RUNS     64
#define TIMEOUT_NS   (60ull * 1000000000ull)

typedef struct shared {
    _Atomic int ready;
    _Atomic int done;
    _Atomic uint64_t t_end_ns;
    _Atomic uint64_t delivered;
    _Atomic uint64_t laps;
    _Atomic uint64_t errors;
} shared;

static shared *sh;
static uint64_t n_records = 1ull << 23;
static int idle_pauses = 16; /* the benchmark consumer's back-off on NONE */

static inline void cpu_relax(void) {
    __builtin_ia32_pause();
}

static uint64_t now_ns(void) {
    return tl_ring_now_mono_ns();
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        fprintf(stderr, "warning: sched_setaffinity(%d): %s\n", cpu, strerror(errno));
}

static void reset_shared(void) {
    atomic_store(&sh->ready, 0);
    atomic_store(&sh->done, 0);
    atomic_store(&sh->t_end_ns, 0);
    atomic_store(&sh->delivered, 0);
    atomic_store(&sh->laps, 0);
    atomic_store(&sh->errors, 0);
}

static void wait_ready(void) {
    uint64_t t0 = now_ns();
    while (atomic_load(&sh->ready) == 0) {
        if (now_ns() - t0 > TIMEOUT_NS) {
            fprintf(stderr, "consumer never became ready\n");
            exit(1);
        }
        cpu_relax();
    }
}

static void reap(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "consumer process failed (status %d)\n", st);
        exit(1);
    }
}

/* Pre-encoded records, seqs 1..n, contiguous, len bytes each. */
static uint8_t *make_source(uint32_t len, uint64_t n) {
    size_t bytes = (size_t)len * n;
    uint8_t *src = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (src == MAP_FAILED) {
        perror("mmap source");
        exit(1);
    }
    for (uint64_t i = 0; i < n; i++) {
        tl_rec_meta m = {
            .parent = i, .seq = i + 1, .fence = 1, .ts_ns = 1700000000000000000ull + i};
        uint8_t body[64];
        memset(body, 0, sizeof body);
        uint32_t body_len = len - 64;
        if (body_len >= sizeof(tl_body_order_new)) {
            tl_body_order_new o = {.order_id = i,
                                   .account = 7,
                                   .price = 100 + (int64_t)(i % 50),
                                   .qty = 1 + (int64_t)(i % 9),
                                   .side = 1 + (uint8_t)(i & 1),
                                   .type = TL_ORDER_LIMIT};
            memcpy(body, &o, sizeof o);
            m.kind = TL_KIND_ORDER_NEW;
            m.symbol = 1 + (uint32_t)(i % 16);
        } else {
            m.kind = TL_KIND_HEARTBEAT;
        }
        if (tl_rec_encode(src + (size_t)len * i, len, &m, body, body_len) != len) {
            fprintf(stderr, "encode failed\n");
            exit(1);
        }
    }
    return src;
}

static void ring_name(char *out, size_t n) {
    snprintf(out, n, "bench-ring-%d", (int)getpid());
}

static void ring_unlink(const char *name) {
    char path[128];
    snprintf(path, sizeof path, "/tally.%s", name);
    tl_ring_obj_unlink(path, true);
}

/* ---- our ring: consumer process ---- */

/* lossless: stop after n in-order records. lossy: follow until the
 * producer is done and nothing more is there. */
static void ring_consumer_main(const char *name, uint64_t n, bool lossless) {
    pin(1);
    tl_ring_map m;
    if (tl_ring_map_open_wait(&m, name, 5000) != TL_RING_OK)
        _exit(2);
    tl_ring_consumer c;
    if (tl_ring_consumer_init(&c, &m) != TL_RING_OK)
        _exit(2);
    tl_ring_event ev;
    tl_ring_poll(&c, 0, &ev); /* first attach: c = publish = 0 */
    atomic_store(&sh->ready, 1);
    uint64_t last = 0, delivered = 0, errors = 0;
    uint64_t t0 = now_ns();
    uint32_t idle = 0;
    for (;;) {
        enum tl_ring_ev t = tl_ring_poll(&c, last, &ev);
        if (t == TL_RING_EV_RECORD) {
            if (ev.seq == ev.expected) {
                last = ev.seq;
                delivered++;
            } else {
                errors++;
            }
            if (lossless && last == n)
                break;
            idle = 0;
            continue;
        }
        if (t == TL_RING_EV_ATTACHED && ev.expected > 0) {
            last = ev.expected - 1;
            continue;
        }
        if (t == TL_RING_EV_CORRUPT)
            errors++;
        if (t != TL_RING_EV_NONE)
            continue;
        if (!lossless && atomic_load_explicit(&sh->done, memory_order_acquire) && ++idle > 1000)
            break;
        if ((++idle & 0xfffff) == 0 && now_ns() - t0 > TIMEOUT_NS) {
            errors++;
            break;
        }
        for (int k = 0; k < idle_pauses; k++)
            cpu_relax();
    }
    atomic_store(&sh->t_end_ns, now_ns());
    atomic_store(&sh->delivered, delivered);
    atomic_store(&sh->laps, c.stats.laps);
    atomic_store(&sh->errors, errors + c.stats.corrupt);
    _exit(0);
}

/* Transport only: the same stamp poll and relaxed-word copy as
 * tl_ring_poll, but no checksum, no field rules, no publish loads (lossless,
 * so never lapped). NOT the production consumer: it shows what the ring's
 * transport costs next to rte_ring's copy-only numbers. */
static void transport_consumer_main(const char *name, uint64_t n) {
    pin(1);
    tl_ring_map m;
    if (tl_ring_map_open_wait(&m, name, 5000) != TL_RING_OK)
        _exit(2);
    uint64_t *copy = aligned_alloc(64, TL_RING_COPY_BYTES);
    atomic_store(&sh->ready, 1);
    uint64_t c = 0, E = 1, errors = 0, t0 = now_ns(), spins = 0;
    while (E <= n) {
        const _Atomic uint64_t *src = m.data + ((c & m.mask) >> 3);
        if (atomic_load_explicit(&src[2], memory_order_acquire) != E) {
            for (int k = 0; k < idle_pauses; k++)
                cpu_relax();
            if ((++spins & 0xfffff) == 0 && now_ns() - t0 > TIMEOUT_NS) {
                errors++;
                break;
            }
            continue;
        }
        uint32_t len = (uint32_t)atomic_load_explicit(&src[5], memory_order_relaxed);
        if (len < 64 || len >= TL_PAD_LIMIT_BYTES || (len & 7u) != 0) {
            errors++;
            break;
        }
        for (uint32_t i = 0; i < len / 8; i++)
            copy[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
        if ((uint32_t)copy[5] != len) {
            errors++;
            break;
        }
        if (((copy[5] >> 32) & 0xffff) != TL_KIND_PAD)
            E++;
        c += len;
        atomic_store_explicit(&m.ctl->consumer_position, c, memory_order_relaxed);
    }
    atomic_store(&sh->t_end_ns, now_ns());
    atomic_store(&sh->delivered, E - 1);
    atomic_store(&sh->errors, errors);
    _exit(0);
}

/* Records per second through our ring, lossless. */
static double run_ring_lossless(const uint8_t *src, uint32_t len, bool transport_only) {
    char name[64];
    ring_name(name, sizeof name);
    uint8_t id[TL_ID_BYTES] = {1};
    tl_ring_producer *p;
    if (tl_ring_create(name, LOSSLESS_CAP, id, NULL, &p) != TL_RING_OK) {
        perror("tl_ring_create");
        exit(1);
    }
    reset_shared();
    pid_t pid = fork();
    if (pid == 0) {
        if (transport_only)
            transport_consumer_main(name, n_records);
        ring_consumer_main(name, n_records, true);
    }
    pin(0);
    wait_ready();
    const uint64_t window = (uint64_t)RTE_COUNT * len;
    uint64_t cons = 0;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n_records; i++) {
        if (p->position - cons > window) {
            /* Benchmark back-pressure (see the top of the file): reload the
             * consumer's position only when the cached one says the window
             * is full, then wait (politely) until half of it is free. */
            cons = atomic_load_explicit(&p->ctl->consumer_position, memory_order_acquire);
            if (p->position - cons > window) {
                tl_ring_flush(p);
                while (p->position - cons > window / 2) {
                    for (int k = 0; k < 32; k++)
                        cpu_relax();
                    cons = atomic_load_explicit(&p->ctl->consumer_position, memory_order_acquire);
                }
            }
        }
        tl_ring_publish(p, src + (size_t)len * i, len);
    }
    tl_ring_flush(p);
    reap(pid);
    uint64_t t1 = atomic_load(&sh->t_end_ns);
    if (atomic_load(&sh->errors) != 0 || atomic_load(&sh->delivered) != n_records ||
        atomic_load(&sh->laps) != 0) {
        fprintf(stderr, "ring lossless: %llu delivered, %llu errors, %llu laps\n",
                (unsigned long long)atomic_load(&sh->delivered),
                (unsigned long long)atomic_load(&sh->errors),
                (unsigned long long)atomic_load(&sh->laps));
        exit(1);
    }
    tl_ring_close(p);
    ring_unlink(name);
    return (double)n_records / ((double)(t1 - t0) / 1e9);
}

typedef struct pub_result {
    double ns_per_record;
    double delivered_fraction;
    uint64_t laps;
} pub_result;

#define PUB_CHUNK 2048u /* 2048 x 120 B = 240 KiB: stays in L2 */

/* Re-encodes the chunk for seqs first.. (untimed): the engine makes its
 * records in cache, so the publish cost is measured from a cache-resident
 * source, never from a DRAM-streamed one. */
static void encode_chunk(uint8_t *chunk, uint32_t len, uint64_t first) {
    for (uint32_t i = 0; i < PUB_CHUNK; i++) {
        uint64_t seq = first + i;
        tl_rec_meta m = {.parent = seq - 1,
                         .seq = seq,
                         .fence = 1,
                         .ts_ns = 1700000000000000000ull + seq,
                         .kind = TL_KIND_ORDER_NEW,
                         .symbol = 1 + (uint32_t)(seq % 16)};
        tl_body_order_new o = {.order_id = seq,
                               .account = 7,
                               .price = 100,
                               .qty = 1,
                               .side = 1,
                               .type = TL_ORDER_LIMIT};
        uint8_t body[64];
        memset(body, 0, sizeof body);
        if (len - 64 >= sizeof o)
            memcpy(body, &o, sizeof o);
        else
            m.kind = TL_KIND_HEARTBEAT;
        if (tl_rec_encode(chunk + (size_t)len * i, len, &m, body, len - 64) != len) {
            fprintf(stderr, "encode failed\n");
            exit(1);
        }
    }
}

/* The engine's cost per tl_ring_publish, with or without a consumer: the
 * records are made (untimed) in chunks of 2048, and only the publish loop
 * of each chunk is timed. While the producer makes a chunk, a following
 * consumer catches up and then polls at the producer's frontier, which is
 * the contended case an engine with tally following actually sees. */
static pub_result run_publish_cost(uint32_t len, uint64_t capacity, bool with_consumer) {
    char name[64];
    ring_name(name, sizeof name);
    uint8_t id[TL_ID_BYTES] = {2};
    tl_ring_producer *p;
    if (tl_ring_create(name, capacity, id, NULL, &p) != TL_RING_OK) {
        perror("tl_ring_create");
        exit(1);
    }
    uint8_t *chunk = aligned_alloc(64, (size_t)PUB_CHUNK * len);
    reset_shared();
    pid_t pid = -1;
    if (with_consumer) {
        pid = fork();
        if (pid == 0)
            ring_consumer_main(name, n_records, false);
    }
    pin(0);
    if (with_consumer)
        wait_ready();
    uint64_t timed_ns = 0, done = 0;
    while (done < n_records) {
        encode_chunk(chunk, len, done + 1);
        uint64_t n = n_records - done < PUB_CHUNK ? n_records - done : PUB_CHUNK;
        uint64_t t0 = now_ns();
        for (uint64_t i = 0; i < n; i++)
            tl_ring_publish(p, chunk + (size_t)len * i, len);
        timed_ns += now_ns() - t0;
        done += n;
    }
    tl_ring_flush(p);
    atomic_store_explicit(&sh->done, 1, memory_order_release);
    pub_result r = {.ns_per_record = (double)timed_ns / (double)n_records};
    if (with_consumer) {
        reap(pid);
        r.delivered_fraction = (double)atomic_load(&sh->delivered) / (double)n_records;
        r.laps = atomic_load(&sh->laps);
        if (atomic_load(&sh->errors) != 0) {
            fprintf(stderr, "publish cost: consumer errors %llu\n",
                    (unsigned long long)atomic_load(&sh->errors));
            exit(1);
        }
    }
    free(chunk);
    tl_ring_close(p);
    ring_unlink(name);
    return r;
}

/* ---- rte_ring ---- */

static bool verify_one(uint8_t *rec, uint32_t len, uint64_t want_seq) {
    bool replay;
    return tl_rec_verify(rec, len, TL_WHERE_RING, &replay) == TL_REC_OK &&
           tl_rec_hdr_of(rec)->seq == want_seq;
}

static double run_rte(const uint8_t *src, uint32_t esize, bool verify) {
    ssize_t bytes = rte_ring_get_memsize_elem(esize, RTE_COUNT);
    if (bytes < 0) {
        fprintf(stderr, "rte_ring_get_memsize_elem failed\n");
        exit(1);
    }
    void *mem = mmap(NULL, (size_t)bytes, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) {
        perror("mmap rte_ring");
        exit(1);
    }
    struct rte_ring *r = mem;
    if (rte_ring_init(r, "bench", RTE_COUNT, RING_F_SP_ENQ | RING_F_SC_DEQ) != 0) {
        fprintf(stderr, "rte_ring_init failed\n");
        exit(1);
    }
    reset_shared();
    pid_t pid = fork();
    if (pid == 0) {
        pin(1);
        uint8_t *buf = aligned_alloc(64, (size_t)BURST * esize + 64);
        atomic_store(&sh->ready, 1);
        uint64_t got = 0, errors = 0, t0 = now_ns(), spins = 0;
        while (got < n_records) {
            unsigned k = rte_ring_sc_dequeue_burst_elem(r, buf, esize, BURST, NULL);
            if (k == 0) {
                cpu_relax();
                if ((++spins & 0xfffff) == 0 && now_ns() - t0 > TIMEOUT_NS) {
                    errors++;
                    break;
                }
                continue;
            }
            for (unsigned j = 0; j < k; j++) {
                uint8_t *rec = buf + (size_t)j * esize;
                uint64_t want = got + j + 1;
                if (verify ? !verify_one(rec, esize, want) : tl_rec_hdr_of(rec)->seq != want)
                    errors++;
            }
            got += k;
        }
        atomic_store(&sh->t_end_ns, now_ns());
        atomic_store(&sh->delivered, got);
        atomic_store(&sh->errors, errors);
        _exit(0);
    }
    pin(0);
    wait_ready();
    uint64_t t0 = now_ns();
    uint64_t i = 0;
    while (i < n_records) {
        uint64_t left = n_records - i;
        unsigned want = left < BURST ? (unsigned)left : BURST;
        unsigned k = rte_ring_sp_enqueue_burst_elem(r, src + (size_t)esize * i, esize, want, NULL);
        if (k == 0)
            cpu_relax();
        i += k;
    }
    reap(pid);
    uint64_t t1 = atomic_load(&sh->t_end_ns);
    if (atomic_load(&sh->errors) != 0 || atomic_load(&sh->delivered) != n_records) {
        fprintf(stderr, "rte_ring: %llu errors\n", (unsigned long long)atomic_load(&sh->errors));
        exit(1);
    }
    munmap(mem, (size_t)bytes);
    return (double)n_records / ((double)(t1 - t0) / 1e9);
}

/* ---- statistics and output ---- */

typedef struct series {
    const char *key;
    const char *what;
    const char *unit;
    double v[MAX_RUNS];
    int n;
} series;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void stats_of(const series *s, double *med, double *lo, double *hi) {
    double tmp[MAX_RUNS];
    memcpy(tmp, s->v, sizeof(double) * (size_t)s->n);
    qsort(tmp, (size_t)s->n, sizeof(double), cmp_double);
    *lo = tmp[0];
    *hi = tmp[s->n - 1];
    *med = (s->n % 2) ? tmp[s->n / 2] : (tmp[s->n / 2 - 1] + tmp[s->n / 2]) / 2;
}

int main(int argc, char **argv) {
    int runs = 7;
    const char *json_path = "bench_ring.json";
    uint64_t pub_capacity = TL_RING_DEFAULT_CAPACITY;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--records") == 0 && i + 1 < argc)
            n_records = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json_path = argv[++i];
        else if (strcmp(argv[i], "--capacity") == 0 && i + 1 < argc)
            pub_capacity = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--idle-pauses") == 0 && i + 1 < argc)
            idle_pauses = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--runs N] [--records N] [--json FILE] [--capacity B] "
                    "[--idle-pauses N]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || n_records < 1024 || !tl_ring_capacity_valid(pub_capacity)) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    fprintf(stderr, "encoding %llu + %llu source records...\n", (unsigned long long)n_records,
            (unsigned long long)n_records);
    uint8_t *src64 = make_source(64, n_records);
    uint8_t *src120 = make_source(120, n_records);

    enum {
        RING64,
        RING64T,
        RTE64,
        RTE64V,
        RING120,
        RTE120V,
        PUB_WITH,
        PUB_SOLO,
        PUB64_WITH,
        PUB64_SOLO,
        RATIO64,
        RATIO64T,
        RATIO64V,
        RATIO_PUB,
        RATIO_PUB64,
        NS
    };
    series s[NS] = {
        [RING64] = {"ring64_mrec_s", "ring, 64 B, lossless, checksums verified", "M rec/s"},
        [RING64T] = {"ring64t_mrec_s", "ring, 64 B, transport only (bench loop, no checksum)",
                     "M rec/s"},
        [RTE64] = {"rte64_mrec_s", "rte_ring SP/SC burst 32, 64 B, copy only", "M rec/s"},
        [RTE64V] = {"rte64v_mrec_s", "rte_ring burst 32, 64 B, checksums verified", "M rec/s"},
        [RING120] = {"ring120_mrec_s", "ring, 120 B, lossless, checksums verified", "M rec/s"},
        [RTE120V] = {"rte120v_mrec_s", "rte_ring burst 32, 120 B, checksums verified", "M rec/s"},
        [PUB_WITH] = {"publish_ns_with_consumer", "publish cost, 120 B, consumer following",
                      "ns/rec"},
        [PUB_SOLO] = {"publish_ns_without_consumer", "publish cost, 120 B, no consumer", "ns/rec"},
        [PUB64_WITH] = {"publish64_ns_with_consumer", "publish cost, 64 B, consumer following",
                        "ns/rec"},
        [PUB64_SOLO] = {"publish64_ns_without_consumer", "publish cost, 64 B, no consumer",
                        "ns/rec"},
        [RATIO64] = {"ratio_ring64_over_rte64", "ring64 (verified) / rte64 (copy only)", "x"},
        [RATIO64T] = {"ratio_ring64t_over_rte64", "ring64 transport / rte64 copy only", "x"},
        [RATIO64V] = {"ratio_ring64_over_rte64v", "ring64 / rte64v (both verified)", "x"},
        [RATIO_PUB] = {"ratio_publish_with_over_without", "pub_with / pub_solo, 120 B", "x"},
        [RATIO_PUB64] = {"ratio_publish64_with_over_without", "pub_with / pub_solo, 64 B", "x"},
    };
    double delivered_frac[MAX_RUNS];
    uint64_t laps[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        double v[NS];
        v[RING64] = run_ring_lossless(src64, 64, false) / 1e6;
        v[RTE64] = run_rte(src64, 64, false) / 1e6;
        v[RING64T] = run_ring_lossless(src64, 64, true) / 1e6;
        v[RTE64V] = run_rte(src64, 64, true) / 1e6;
        v[RING120] = run_ring_lossless(src120, 120, false) / 1e6;
        v[RTE120V] = run_rte(src120, 120, true) / 1e6;
        pub_result pw = run_publish_cost(120, pub_capacity, true);
        pub_result ps = run_publish_cost(120, pub_capacity, false);
        v[PUB_WITH] = pw.ns_per_record;
        v[PUB_SOLO] = ps.ns_per_record;
        v[PUB64_WITH] = run_publish_cost(64, pub_capacity, true).ns_per_record;
        v[PUB64_SOLO] = run_publish_cost(64, pub_capacity, false).ns_per_record;
        v[RATIO_PUB64] = v[PUB64_WITH] / v[PUB64_SOLO];
        v[RATIO64] = v[RING64] / v[RTE64];
        v[RATIO64T] = v[RING64T] / v[RTE64];
        v[RATIO64V] = v[RING64] / v[RTE64V];
        v[RATIO_PUB] = v[PUB_WITH] / v[PUB_SOLO];
        delivered_frac[r] = pw.delivered_fraction;
        laps[r] = pw.laps;
        for (int k = 0; k < NS; k++)
            s[k].v[s[k].n++] = v[k];
        fprintf(stderr,
                "run %d: ring64 %.1f ring64t %.1f rte64 %.1f rte64v %.1f ring120 %.1f rte120v %.1f "
                "M/s; publish %.2f ns with (%.0f%% delivered, %llu laps), %.2f ns solo\n",
                r + 1, v[RING64], v[RING64T], v[RTE64], v[RTE64V], v[RING120], v[RTE120V],
                v[PUB_WITH], 100 * pw.delivered_fraction, (unsigned long long)pw.laps, v[PUB_SOLO]);
    }

    printf("\n%llu records per case, %d runs, cores 0 (producer) and 1 (consumer); "
           "publish-cost ring %llu MiB\n\n",
           (unsigned long long)n_records, runs, (unsigned long long)(pub_capacity >> 20));
    printf("| metric | unit | median | min | max |\n|---|---|---|---|---|\n");
    double med[NS], lo[NS], hi[NS];
    for (int k = 0; k < NS; k++) {
        stats_of(&s[k], &med[k], &lo[k], &hi[k]);
        printf("| %s | %s | %.2f | %.2f | %.2f |\n", s[k].what, s[k].unit, med[k], lo[k], hi[k]);
    }
    bool t1 = med[RATIO64] >= 1.5; /* the production consumer, verifying, vs copy only */
    bool t2 = med[RING120] >= 30.0;
    bool t3 = med[PUB_WITH] <= 10.0 && med[RATIO_PUB] <= 2.0;
    printf("\nTargets (medians): ring64 >= 1.5x rte64: %s (%.2fx); ring120 verified >= 30 M/s: "
           "%s (%.1f); publish with consumer <= 10 ns and <= 2x solo: %s (%.2f ns, %.2fx)\n",
           t1 ? "met" : "NOT met", med[RATIO64], t2 ? "met" : "NOT met", med[RING120],
           t3 ? "met" : "NOT met", med[PUB_WITH], med[RATIO_PUB]);

    FILE *f = fopen(json_path, "w");
    if (f == NULL) {
        perror(json_path);
        return 1;
    }
    fprintf(f, "{\n  \"records_per_case\": %llu,\n  \"runs\": %d,\n", (unsigned long long)n_records,
            runs);
    fprintf(f, "  \"publish_capacity_bytes\": %llu,\n  \"xxh3\": \"%s\",\n  \"metrics\": {\n",
            (unsigned long long)pub_capacity, tl_xxh3_impl_name(tl_xxh3_active()));
    for (int k = 0; k < NS; k++) {
        fprintf(f,
                "    \"%s\": {\"unit\": \"%s\", \"median\": %.3f, \"min\": %.3f, \"max\": %.3f, "
                "\"runs\": [",
                s[k].key, s[k].unit, med[k], lo[k], hi[k]);
        for (int r = 0; r < s[k].n; r++)
            fprintf(f, "%s%.3f", r ? ", " : "", s[k].v[r]);
        fprintf(f, "]}%s\n", k + 1 < NS ? "," : "");
    }
    fprintf(f, "  },\n  \"publish_with_consumer_delivered_fraction\": [");
    for (int r = 0; r < runs; r++)
        fprintf(f, "%s%.4f", r ? ", " : "", delivered_frac[r]);
    fprintf(f, "],\n  \"publish_with_consumer_laps\": [");
    for (int r = 0; r < runs; r++)
        fprintf(f, "%s%llu", r ? ", " : "", (unsigned long long)laps[r]);
    fprintf(f,
            "],\n  \"targets\": {\"ring64_ge_1_5x_rte64\": %s, \"ring120_ge_30M\": %s, "
            "\"publish_le_10ns_and_le_2x\": %s}\n}\n",
            t1 ? "true" : "false", t2 ? "true" : "false", t3 ? "true" : "false");
    fclose(f);
    fprintf(stderr, "wrote %s\n", json_path);
    return 0;
}
