/* test_ring_control.c: everything of ring.md around the data path: the
 * attach wait and its 1 s refusal reasons, producer liveness, the
 * wal_durable_* seqlock, the dead-man and the fast-path mode words. Attach
 * and dead-man run on a virtual clock, so nothing here sleeps for the 1 s. */
#include "testutil.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/assert.h"
#include "shm/ring.h"

#define CAP    (1ull << 20)
#define SEC_NS 1000000000ull
#define MS_NS  1000000ull

static const uint8_t engine_id[TL_ID_BYTES] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};

static void good_header(tl_ring_header *h) {
    memset(h, 0, sizeof *h);
    memcpy(h->magic, "TLYRING1", 8);
    h->version = 1;
    h->control_len = 4096;
    h->capacity = CAP;
    memcpy(h->engine_id, engine_id, 16);
    h->created_ns = 1700000000ull * SEC_NS;
    h->producer_pid = 1;
    h->header_checksum = tl_ring_header_checksum(h);
}

/* A file of `size` bytes holding header h at offset 0. */
static void write_ring_file(const char *path, const tl_ring_header *h, size_t size) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    if (h != NULL && size >= sizeof *h)
        assert_int_equal(pwrite(fd, h, sizeof *h, 0), (ssize_t)sizeof *h);
    close(fd);
}

/* Steps at t0, t0 + 0.5 s, t0 + 0.999 s (all pending), then t0 + 1 s. */
static enum tl_ring_err attach_after_1s(const char *path) {
    tl_ring_map m;
    assert_int_equal(tl_ring_map_init(&m, path), TL_RING_OK);
    uint64_t t0 = 50 * SEC_NS;
    assert_int_equal(tl_ring_map_step(&m, t0), TL_RING_PENDING);
    assert_int_equal(tl_ring_map_step(&m, t0 + SEC_NS / 2), TL_RING_PENDING);
    assert_int_equal(tl_ring_map_step(&m, t0 + SEC_NS - 1), TL_RING_PENDING);
    enum tl_ring_err e = tl_ring_map_step(&m, t0 + SEC_NS);
    assert_int_not_equal(e, TL_RING_PENDING);
    assert_int_equal(m.phase, TL_MAP_FAILED);
    /* A refusal is final. */
    assert_int_equal(tl_ring_map_step(&m, t0 + 2 * SEC_NS), e);
    tl_ring_map_close(&m);
    return e;
}

static enum tl_ring_err attach_now(const char *path) {
    tl_ring_map m;
    assert_int_equal(tl_ring_map_init(&m, path), TL_RING_OK);
    enum tl_ring_err e = tl_ring_map_step(&m, 7 * SEC_NS);
    tl_ring_map_close(&m);
    return e;
}

static void test_attach_refusals(void **state) {
    (void)state;
    char *dir = tu_tmpdir("ringatt");
    char path[512];
    snprintf(path, sizeof path, "%s/a.ring", dir);
    tl_ring_header h;

    /* Absent: not_found, never a timeout. */
    assert_int_equal(attach_now(path), TL_RING_ERR_NOT_FOUND);

    /* All zero (the producer never wrote it): after 1 s, bad magic. */
    write_ring_file(path, NULL, 4096 + CAP);
    assert_int_equal(attach_after_1s(path), TL_RING_ERR_BAD_MAGIC);

    /* Checksum wrong, each field bad in turn: named after 1 s. */
    good_header(&h);
    memcpy(h.magic, "TLYRING2", 8);
    write_ring_file(path, &h, 4096 + CAP);
    assert_int_equal(attach_after_1s(path), TL_RING_ERR_BAD_MAGIC);
    good_header(&h);
    h.version = 2;
    write_ring_file(path, &h, 4096 + CAP);
    assert_int_equal(attach_after_1s(path), TL_RING_ERR_BAD_VERSION);
    good_header(&h);
    h.control_len = 8192;
    write_ring_file(path, &h, 4096 + CAP);
    assert_int_equal(attach_after_1s(path), TL_RING_ERR_NOT_A_RING);
    good_header(&h);
    h.header_checksum ^= 1;
    write_ring_file(path, &h, 4096 + CAP);
    assert_int_equal(attach_after_1s(path), TL_RING_ERR_HEADER_CHECKSUM);
    assert_string_equal(tl_ring_err_name(TL_RING_ERR_HEADER_CHECKSUM), "bad_header_checksum");

    /* A header that checks but names something else is refused at once. */
    uint64_t bad_caps[] = {CAP / 2, 3 * CAP, CAP + 4096, 0};
    for (size_t i = 0; i < TL_ARRAY_LEN(bad_caps); i++) {
        good_header(&h);
        h.capacity = bad_caps[i];
        h.header_checksum = tl_ring_header_checksum(&h);
        write_ring_file(path, &h, 4096 + 3 * CAP);
        assert_int_equal(attach_now(path), TL_RING_ERR_NOT_A_RING);
    }
    good_header(&h);
    h.version = 7;
    h.header_checksum = tl_ring_header_checksum(&h);
    write_ring_file(path, &h, 4096 + CAP);
    assert_int_equal(attach_now(path), TL_RING_ERR_BAD_VERSION);
    good_header(&h);
    h.magic[0] = 'X';
    h.header_checksum = tl_ring_header_checksum(&h);
    write_ring_file(path, &h, 4096 + CAP);
    assert_int_equal(attach_now(path), TL_RING_ERR_BAD_MAGIC);

    /* Too small: under 4096 bytes, or under 4096 + capacity. */
    write_ring_file(path, NULL, 100);
    assert_int_equal(attach_after_1s(path), TL_RING_ERR_TOO_SMALL);
    good_header(&h);
    write_ring_file(path, &h, 4096);
    assert_int_equal(attach_after_1s(path), TL_RING_ERR_TOO_SMALL);
    write_ring_file(path, &h, 4096 + CAP - 8);
    assert_int_equal(attach_after_1s(path), TL_RING_ERR_TOO_SMALL);

    tu_rm_rf(dir);
    free(dir);
}

/* The consumer waits for the header checksum and for the size, and attaches
 * as soon as both are there within the second. */
static void test_attach_waits(void **state) {
    (void)state;
    char *dir = tu_tmpdir("ringwait");
    char path[512];
    snprintf(path, sizeof path, "%s/w.ring", dir);
    tl_ring_map m;
    assert_int_equal(tl_ring_map_init(&m, path), TL_RING_OK);
    uint64_t t = 10 * SEC_NS;
    assert_int_equal(tl_ring_map_step(&m, t), TL_RING_ERR_NOT_FOUND);
    /* Created, not sized: the 1 s clock starts at the first open. */
    write_ring_file(path, NULL, 0);
    t += 5 * SEC_NS;
    assert_int_equal(tl_ring_map_step(&m, t), TL_RING_PENDING);
    /* Sized to the control block only, header not written. */
    write_ring_file(path, NULL, 4096);
    assert_int_equal(tl_ring_map_step(&m, t + 100 * MS_NS), TL_RING_PENDING);
    assert_int_equal(m.phase, TL_MAP_OPENING);
    assert_int_equal(m.map_bytes, 4096); /* [0, 4096) mapped first */
    /* Header good but the object is still too small for the data. */
    tl_ring_header h;
    good_header(&h);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
    assert_int_equal(tl_ring_map_step(&m, t + 200 * MS_NS), TL_RING_PENDING);
    assert_int_equal(m.phase, TL_MAP_SIZING);
    assert_int_equal(ftruncate(fd, 4096 + CAP), 0);
    close(fd);
    assert_int_equal(tl_ring_map_step(&m, t + 900 * MS_NS), TL_RING_OK);
    assert_int_equal(m.phase, TL_MAP_READY);
    assert_int_equal(m.capacity, CAP);
    assert_int_equal(m.map_bytes, 4096 + CAP);
    assert_int_equal(m.identity.producer_pid, 1);
    tl_ring_map_close(&m);
    tu_rm_rf(dir);
    free(dir);
}

static void test_map_from_memory(void **state) {
    (void)state;
    uint8_t *img = aligned_alloc(64, 4096 + CAP);
    memset(img, 0, 4096 + CAP);
    tl_ring_map m;
    assert_int_equal(tl_ring_map_from_memory(&m, img, 4096 + CAP), TL_RING_ERR_BAD_MAGIC);
    tl_ring_header h;
    good_header(&h);
    memcpy(img, &h, sizeof h);
    assert_int_equal(tl_ring_map_from_memory(&m, img, 4096 + CAP - 8), TL_RING_ERR_TOO_SMALL);
    assert_int_equal(tl_ring_map_from_memory(&m, img, 100), TL_RING_ERR_TOO_SMALL);
    assert_int_equal(tl_ring_map_from_memory(&m, img, 4096 + CAP), TL_RING_OK);
    assert_ptr_equal(m.ctl, img);
    tl_ring_map_close(&m);
    free(img);
}

/* ---- liveness ---- */

static void test_liveness(void **state) {
    (void)state;
    char *dir = tu_tmpdir("ringlive");
    char path[512];
    snprintf(path, sizeof path, "%s/l.ring", dir);

    /* A child process is the producer: alive while it runs, dead after. */
    int go[2], ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tl_ring_producer *p;
        char c = tl_ring_create(path, CAP, engine_id, NULL, &p) == TL_RING_OK ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1)
            _exit(2);
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        _exit(0);
    }
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    tl_ring_map m;
    assert_int_equal(tl_ring_map_open_wait(&m, path, 100), TL_RING_OK);
    assert_int_equal(m.header.producer_pid, (uint32_t)pid);
    tl_ring_liveness_probe lp;
    assert_int_equal(tl_ring_liveness_open(&lp, &m), TL_LIVENESS_ALIVE);
    assert_true(lp.confirmed);
    assert_int_equal(tl_ring_liveness_check(&lp), TL_LIVENESS_ALIVE);
    assert_int_equal(write(go[1], "x", 1), 1);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(tl_ring_liveness_check(&lp), TL_LIVENESS_DEAD);
    assert_string_equal(tl_ring_liveness_name(TL_LIVENESS_DEAD), "dead");
    tl_ring_liveness_close(&lp);
    /* Now the pid is gone: a fresh probe cannot confirm anything. */
    assert_int_equal(tl_ring_liveness_open(&lp, &m), TL_LIVENESS_UNCONFIRMED);
    tl_ring_liveness_close(&lp);
    tl_ring_map_close(&m);

    /* A live pid that does not map the object (here: ourselves, reading a
     * ring whose header names our pid but that we never mapped... so map
     * it, and name our parent instead). */
    tl_ring_header h;
    good_header(&h);
    h.producer_pid = (uint32_t)getppid();
    h.header_checksum = tl_ring_header_checksum(&h);
    write_ring_file(path, &h, 4096 + CAP);
    assert_int_equal(tl_ring_map_open_wait(&m, path, 100), TL_RING_OK);
    assert_int_equal(tl_ring_liveness_open(&lp, &m), TL_LIVENESS_UNCONFIRMED);
    assert_false(lp.confirmed);
    assert_int_equal(tl_ring_liveness_check(&lp), TL_LIVENESS_UNCONFIRMED);
    tl_ring_liveness_close(&lp);
    /* Our own pid maps it (through m): confirmed alive. */
    tl_ring_map_close(&m);
    h.producer_pid = (uint32_t)getpid();
    h.header_checksum = tl_ring_header_checksum(&h);
    write_ring_file(path, &h, 4096 + CAP);
    assert_int_equal(tl_ring_map_open_wait(&m, path, 100), TL_RING_OK);
    assert_int_equal(tl_ring_liveness_open(&lp, &m), TL_LIVENESS_ALIVE);
    tl_ring_liveness_close(&lp);
    tl_ring_map_close(&m);
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- wal_durable_* seqlock ---- */

static void test_seqlock_rules(void **state) {
    (void)state;
    assert_true(tl_durable_gen_accept(0, 0));
    assert_true(tl_durable_gen_accept(4, 4));
    assert_false(tl_durable_gen_accept(5, 5)); /* odd: a write in progress */
    assert_false(tl_durable_gen_accept(4, 6)); /* torn: a write completed between */
    assert_false(tl_durable_gen_accept(4, 5));
    assert_false(tl_durable_gen_accept(3, 4));

    tl_ring_ctl *ctl = aligned_alloc(128, sizeof *ctl);
    memset(ctl, 0, sizeof *ctl);
    uint64_t gen = 0;
    tl_ring_durable d = {.seq = 10, .segment_first_seq = 1, .offset = 5000};
    tl_ring_durable_write(ctl, &gen, &d);
    assert_int_equal(gen, 2);
    assert_true(atomic_load(&ctl->wal_durable_gen) == 2);

    tl_ring_durable_reader r;
    memset(&r, 0, sizeof r);
    tl_ring_durable out;
    assert_int_equal(tl_ring_durable_read(&r, ctl, 1 * SEC_NS, 250, &out), TL_DURABLE_ACCEPTED);
    assert_int_equal(out.seq, 10);
    assert_int_equal(out.segment_first_seq, 1);
    assert_int_equal(out.offset, 5000);

    /* The writer dies mid-update: gen odd, values half-written. The reader
     * keeps its last good snapshot, never spins, and calls it stuck once the
     * same odd gen outlives stale_ms. */
    atomic_store(&ctl->wal_durable_gen, 3);
    atomic_store(&ctl->wal_durable_seq, 99);
    assert_int_equal(tl_ring_durable_read(&r, ctl, 2 * SEC_NS, 250, &out), TL_DURABLE_KEPT);
    assert_int_equal(out.seq, 10);
    assert_int_equal(tl_ring_durable_read(&r, ctl, 2 * SEC_NS + 250 * MS_NS, 250, &out),
                     TL_DURABLE_KEPT);
    assert_int_equal(tl_ring_durable_read(&r, ctl, 2 * SEC_NS + 251 * MS_NS, 250, &out),
                     TL_DURABLE_STUCK);
    assert_int_equal(out.seq, 10);
    assert_string_equal(tl_durable_status_name(TL_DURABLE_STUCK), "stuck");
    /* A different odd gen restarts the stale clock (the writer is moving). */
    atomic_store(&ctl->wal_durable_gen, 5);
    assert_int_equal(tl_ring_durable_read(&r, ctl, 3 * SEC_NS, 250, &out), TL_DURABLE_KEPT);
    /* Even again: accepted. */
    atomic_store(&ctl->wal_durable_gen, 6);
    assert_int_equal(tl_ring_durable_read(&r, ctl, 3 * SEC_NS, 250, &out), TL_DURABLE_ACCEPTED);
    assert_int_equal(out.seq, 99);
    assert_int_equal(r.rejected, 4);

    /* Torn: a whole update landed between the two gen loads (g1 = 6,
     * g2 = 8, both even). The values are a mix: rejected, last good kept. */
    tl_ring_durable mixed = {.seq = 1000, .segment_first_seq = 1, .offset = 2};
    assert_int_equal(tl_ring_durable_judge(&r, 6, &mixed, 8, 4 * SEC_NS, 250, &out),
                     TL_DURABLE_KEPT);
    assert_int_equal(out.seq, 99);
    /* An update started between them (g2 odd). */
    assert_int_equal(tl_ring_durable_judge(&r, 6, &mixed, 7, 4 * SEC_NS, 250, &out),
                     TL_DURABLE_KEPT);
    assert_int_equal(out.seq, 99);
    /* g1 odd, g2 even: started before, finished between. */
    assert_int_equal(tl_ring_durable_judge(&r, 7, &mixed, 8, 4 * SEC_NS, 250, &out),
                     TL_DURABLE_KEPT);
    assert_int_equal(out.seq, 99);
    assert_int_equal(tl_ring_durable_judge(&r, 8, &mixed, 8, 4 * SEC_NS, 250, &out),
                     TL_DURABLE_ACCEPTED);
    assert_int_equal(out.seq, 1000);
    assert_int_equal(r.rejected, 7);
    free(ctl);
}

typedef struct seqlock_ctx {
    tl_ring_ctl *ctl;
    _Atomic int stop;
    uint64_t writes;
} seqlock_ctx;

static void *seqlock_writer(void *arg) {
    seqlock_ctx *x = arg;
    uint64_t gen = 0;
    for (uint64_t k = 1; !atomic_load_explicit(&x->stop, memory_order_relaxed); k++) {
        tl_ring_durable d = {.seq = k, .segment_first_seq = k * 2, .offset = k * 3};
        tl_ring_durable_write(x->ctl, &gen, &d);
        x->writes = k;
    }
    return NULL;
}

/* Against a writer running flat out on another thread, every accepted
 * snapshot is one the writer wrote (seq, 2 seq, 3 seq), and torn or odd
 * reads are rejected, not returned. */
static void test_seqlock_concurrent(void **state) {
    (void)state;
    seqlock_ctx x;
    memset(&x, 0, sizeof x);
    x.ctl = aligned_alloc(128, sizeof *x.ctl);
    memset(x.ctl, 0, sizeof *x.ctl);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, seqlock_writer, &x), 0);
    tl_ring_durable_reader r;
    memset(&r, 0, sizeof r);
    uint64_t accepted = 0, last_seq = 0;
    for (int i = 0; i < 2000000; i++) {
        tl_ring_durable out;
        enum tl_durable_status s = tl_ring_durable_read(&r, x.ctl, 1, 1000000, &out);
        if (s == TL_DURABLE_ACCEPTED) {
            accepted++;
            assert_int_equal(out.segment_first_seq, out.seq * 2);
            assert_int_equal(out.offset, out.seq * 3);
            assert_true(out.seq >= last_seq); /* never goes back */
            last_seq = out.seq;
        } else {
            /* kept: still the last good one */
            assert_int_equal(out.seq, last_seq);
        }
    }
    atomic_store(&x.stop, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(accepted > 0);
    printf("seqlock: %llu accepted, %llu rejected, %llu writes\n", (unsigned long long)accepted,
           (unsigned long long)r.rejected, (unsigned long long)x.writes);
    free(x.ctl);
}

/* ---- dead-man ---- */

static void test_deadman_rules(void **state) {
    (void)state;
    tl_deadman d;
    memset(&d, 0, sizeof d);
    const uint32_t age = 250;
    uint64_t t = 100 * SEC_NS;
    /* No heartbeat yet: disarmed, however long. */
    assert_int_equal(tl_deadman_step(&d, 0, 0, t, age), TL_DEADMAN_DISARMED);
    assert_int_equal(tl_deadman_step(&d, 0, 2, t + 10 * SEC_NS, age), TL_DEADMAN_DISARMED);
    /* First heartbeat arms it (a consumer beats before it sets a state). */
    uint64_t hb = t;
    assert_int_equal(tl_deadman_step(&d, hb, 0, t, age), TL_DEADMAN_OK);
    assert_true(d.armed);
    assert_int_equal(tl_deadman_step(&d, hb, 2, t + 250 * MS_NS, age), TL_DEADMAN_OK);
    assert_int_equal(tl_deadman_step(&d, hb, 2, t + 251 * MS_NS, age), TL_DEADMAN_EXPIRED);
    assert_string_equal(tl_deadman_verdict_name(TL_DEADMAN_EXPIRED), "expired");
    /* Beats again: fresh. */
    hb = t + 300 * MS_NS;
    assert_int_equal(tl_deadman_step(&d, hb, 2, t + 310 * MS_NS, age), TL_DEADMAN_OK);
    /* Clean stop: state 0 disarms, and stays so while the heartbeat ages. */
    assert_int_equal(tl_deadman_step(&d, hb, 0, t + 320 * MS_NS, age), TL_DEADMAN_DISARMED);
    assert_false(d.armed);
    assert_int_equal(tl_deadman_step(&d, hb, 0, t + 60 * SEC_NS, age), TL_DEADMAN_DISARMED);
    /* A new consumer beats (state still 0): newer than the stop, re-armed. */
    hb = t + 61 * SEC_NS;
    assert_int_equal(tl_deadman_step(&d, hb, 0, hb, age), TL_DEADMAN_OK);
    assert_true(d.armed);
    assert_int_equal(tl_deadman_step(&d, hb, 1, hb + 10 * MS_NS, age), TL_DEADMAN_OK);
    /* It crashes: the state stays nonzero, the heartbeat goes stale. */
    assert_int_equal(tl_deadman_step(&d, hb, 1, hb + 251 * MS_NS, age), TL_DEADMAN_EXPIRED);
    assert_int_equal(tl_deadman_step(&d, hb, 1, hb + 10 * SEC_NS, age), TL_DEADMAN_EXPIRED);
    /* A heartbeat ahead of our clock is not stale. */
    assert_int_equal(tl_deadman_step(&d, hb + SEC_NS, 1, hb, age), TL_DEADMAN_OK);

    /* A consumer that beat once and crashed before setting its state: the
     * dead-man armed on that beat, so it fires. */
    memset(&d, 0, sizeof d);
    assert_int_equal(tl_deadman_step(&d, t, 0, t, age), TL_DEADMAN_OK);
    assert_int_equal(tl_deadman_step(&d, t, 0, t + SEC_NS, age), TL_DEADMAN_EXPIRED);
}

/* The same through a real producer and tally's stores in the shared object. */
static void test_deadman_shared(void **state) {
    (void)state;
    char *dir = tu_tmpdir("ringdm");
    char path[512];
    snprintf(path, sizeof path, "%s/d.ring", dir);
    tl_ring_producer *p;
    assert_int_equal(tl_ring_create(path, CAP, engine_id, NULL, &p), TL_RING_OK);
    tl_ring_map m;
    assert_int_equal(tl_ring_map_open_wait(&m, path, 100), TL_RING_OK);
    uint64_t now = tl_ring_now_mono_ns();
    assert_false(tl_deadman_expired_at(p, now + 10 * SEC_NS, 250));
    assert_int_equal(tl_deadman_check_at(p, now, 250), TL_DEADMAN_DISARMED);
    tl_ring_consumer_beat(&m, now);
    tl_ring_consumer_set_state(&m, TL_CONSUMER_FOLLOWING);
    assert_int_equal(tl_deadman_check_at(p, now + 1 * MS_NS, 250), TL_DEADMAN_OK);
    assert_true(tl_deadman_expired_at(p, now + 300 * MS_NS, 250));
    assert_false(tally_deadman_expired(p, 60000)); /* real clock, generous age */
    tl_ring_consumer_set_state(&m, TL_CONSUMER_ABSENT);
    assert_false(tl_deadman_expired_at(p, now + 300 * MS_NS, 250));
    tl_ring_consumer_beat(&m, now + 400 * MS_NS);
    assert_int_equal(tl_deadman_check_at(p, now + 401 * MS_NS, 250), TL_DEADMAN_OK);
    assert_true(tl_deadman_expired_at(p, now + 700 * MS_NS, 250));
    tl_ring_map_close(&m);
    tl_ring_close(p);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- fast-path mode words ---- */

static void test_fastpath(void **state) {
    (void)state;
    char *dir = tu_tmpdir("ringfast");
    char path[512];
    snprintf(path, sizeof path, "%s/f.ring", dir);
    tl_ring_producer *p;
    assert_int_equal(tl_ring_create(path, CAP, engine_id, NULL, &p), TL_RING_OK);
    tl_ring_map m;
    assert_int_equal(tl_ring_map_open_wait(&m, path, 100), TL_RING_OK);
    tl_ring_ctl *ctl = m.ctl; /* tally's mapping; the engine reads p's */
    bool changed;

    assert_int_equal(tl_ring_effective_mode(p, 5), TL_MODE_NORMAL);
    assert_int_equal(tl_ring_fast_epoch(p), 0);
    assert_int_equal(tl_ring_fast_raise_symbol(ctl, 5, TL_MODE_SOFT_HALT, &changed), TL_RING_OK);
    assert_true(changed);
    assert_int_equal(tl_ring_effective_mode(p, 5), TL_MODE_SOFT_HALT);
    assert_int_equal(tl_ring_effective_mode(p, 6), TL_MODE_NORMAL);
    assert_int_equal(tl_ring_fast_epoch(p), 1);
    /* tally only raises: a lower raise changes nothing, no epoch bump. */
    assert_int_equal(tl_ring_fast_raise_symbol(ctl, 5, TL_MODE_CANCEL_ONLY, &changed), TL_RING_OK);
    assert_false(changed);
    assert_int_equal(tl_ring_effective_mode(p, 5), TL_MODE_SOFT_HALT);
    assert_int_equal(tl_ring_fast_epoch(p), 1);
    /* Global: the effective mode is the max of both words. */
    assert_int_equal(tl_ring_fast_raise_global(ctl, TL_MODE_CANCEL_ONLY, &changed), TL_RING_OK);
    assert_true(changed);
    assert_int_equal(tl_ring_effective_mode(p, 5), TL_MODE_SOFT_HALT);
    assert_int_equal(tl_ring_effective_mode(p, 6), TL_MODE_CANCEL_ONLY);
    assert_int_equal(tl_ring_effective_mode(p, 0), TL_MODE_CANCEL_ONLY);
    assert_int_equal(tl_ring_effective_mode(p, 99999), TL_MODE_CANCEL_ONLY);
    assert_int_equal(tl_ring_fast_epoch(p), 2);
    /* Lowering (an applied relaxing MODE_CHANGE). */
    assert_int_equal(tl_ring_fast_lower_symbol(ctl, 5, TL_MODE_NORMAL, &changed), TL_RING_OK);
    assert_true(changed);
    assert_int_equal(tl_ring_effective_mode(p, 5), TL_MODE_CANCEL_ONLY);
    assert_int_equal(tl_ring_fast_lower_symbol(ctl, 5, TL_MODE_SOFT_HALT, &changed), TL_RING_OK);
    assert_false(changed); /* a "lower" that would raise does nothing */
    assert_int_equal(tl_ring_fast_lower_global(ctl, TL_MODE_NORMAL, &changed), TL_RING_OK);
    assert_true(changed);
    assert_int_equal(tl_ring_effective_mode(p, 5), TL_MODE_NORMAL);
    assert_int_equal(tl_ring_fast_epoch(p), 4);
    /* Withdrawals. */
    assert_false(tl_ring_withdrawals_halted(p));
    assert_int_equal(tl_ring_fast_halt_withdrawals(ctl, &changed), TL_RING_OK);
    assert_true(changed);
    assert_true(tl_ring_withdrawals_halted(p));
    assert_int_equal(tl_ring_fast_halt_withdrawals(ctl, &changed), TL_RING_OK);
    assert_false(changed);
    assert_int_equal(tl_ring_fast_resume_withdrawals(ctl, &changed), TL_RING_OK);
    assert_true(changed);
    assert_false(tl_ring_withdrawals_halted(p));
    assert_int_equal(tl_ring_fast_epoch(p), 6);
    /* Slot limits: 1..3583 have a slot, 0 and >= 3584 do not. */
    assert_int_equal(tl_ring_fast_raise_symbol(ctl, 0, 3, &changed), TL_RING_ERR_NO_SLOT);
    assert_false(changed);
    assert_int_equal(tl_ring_fast_raise_symbol(ctl, 3584, 3, NULL), TL_RING_ERR_NO_SLOT);
    assert_int_equal(tl_ring_fast_lower_symbol(ctl, 4000, 0, NULL), TL_RING_ERR_NO_SLOT);
    assert_int_equal(tl_ring_fast_raise_symbol(ctl, 3583, 3, NULL), TL_RING_OK);
    assert_int_equal(tl_ring_effective_mode(p, 3583), TL_MODE_HARD_HALT);
    assert_int_equal(tl_ring_fast_raise_symbol(ctl, 1, 1, NULL), TL_RING_OK);
    assert_int_equal(tl_ring_effective_mode(p, 1), TL_MODE_CANCEL_ONLY);
    assert_int_equal(((uint8_t *)m.base)[512 + 3583], 3);
    assert_int_equal(((uint8_t *)m.base)[512 + 1], 1);
    assert_int_equal(tl_ring_fast_raise_symbol(ctl, 7, 4, NULL), TL_RING_ERR_BAD_MODE);
    assert_int_equal(tl_ring_fast_raise_global(ctl, 4, NULL), TL_RING_ERR_BAD_MODE);
    assert_int_equal(tl_ring_fast_epoch(p), 8);
    /* A scribbled word above HARD_HALT reads as HARD_HALT: fail safe. */
    atomic_store(&ctl->fast_symbol_mode[9], 200);
    assert_int_equal(tl_ring_effective_mode(p, 9), TL_MODE_HARD_HALT);
    atomic_store(&ctl->fast_global_mode, 17);
    assert_int_equal(tl_ring_effective_mode(p, 10), TL_MODE_HARD_HALT);
    tl_ring_map_close(&m);
    tl_ring_close(p);
    tu_rm_rf(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attach_refusals), cmocka_unit_test(test_attach_waits),
        cmocka_unit_test(test_map_from_memory), cmocka_unit_test(test_liveness),
        cmocka_unit_test(test_seqlock_rules),   cmocka_unit_test(test_seqlock_concurrent),
        cmocka_unit_test(test_deadman_rules),   cmocka_unit_test(test_deadman_shared),
        cmocka_unit_test(test_fastpath),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
