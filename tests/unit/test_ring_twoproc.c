/* test_ring_twoproc.c: the ring between two processes over shm_open.
 *
 * The producer is a separate program (tests/progs/ring_producer.c, started
 * with fork + exec) publishing 10^7 records into a 1 MiB ring; this process
 * is the consumer. It sleeps now and then so that it gets lapped, and it
 * checks that:
 *   - every record it sees passed the checksum (the consumer verifies) and
 *     has the content derived from its seq;
 *   - seqs are delivered in order, none twice;
 *   - laps happen and are counted;
 *   - delivered + missed-by-lap == 10^7 (the missed seqs are those a real
 *     tally would read from the WAL: between its last delivered seq and the
 *     E of each re-attach, and after the last re-attach when the producer
 *     stopped).
 * Idling backs off (spin, yield, sleep): CI has two cores.
 */
#include "testutil.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/record.h"
#include "shm/ring.h"

#define BODY_K 0x9E3779B97F4A7C15ull
#define CAP    (1ull << 20)

#ifdef TL_SANITIZE
/* ASan+UBSan make the consumer several times slower; the count stays 10^7
 * but the producer is paced so that the run stays well under a minute. */
#define PRODUCER_RATE "3000000"
#else
#define PRODUCER_RATE "20000000"
#endif
#define COUNT 10000000ull

static void nap_us(long us) {
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

static void check_record(const tl_ring_event *ev) {
    const tl_rec_hdr *h = tl_rec_hdr_of(ev->rec);
    uint64_t seq = ev->seq;
    if (h->len != 64 + 8 * (seq % 23) || h->kind != TL_KIND_HEARTBEAT || h->parent != seq - 1)
        fail_msg("seq %llu: header differs", (unsigned long long)seq);
    const uint64_t *body = (const uint64_t *)(const void *)(ev->rec + 64);
    for (uint32_t i = 0; i < h->body_len / 8; i++)
        if (body[i] != seq * BODY_K + i)
            fail_msg("seq %llu: body word %u differs", (unsigned long long)seq, i);
}

static void test_two_processes(void **state) {
    (void)state;
    char name[64];
    snprintf(name, sizeof name, "twoproc-%d", (int)getpid());
    const char *prog = tu_build_path("tests/ring_producer");
    if (access(prog, X_OK) != 0)
        fail_msg("helper %s is not built", prog);
    char cap[32], count[32];
    snprintf(cap, sizeof cap, "%llu", (unsigned long long)CAP);
    snprintf(count, sizeof count, "%llu", COUNT);

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(prog, prog, name, count, cap, PRODUCER_RATE, (char *)NULL);
        _exit(127);
    }

    tl_ring_map m;
    enum tl_ring_err e = tl_ring_map_open_wait(&m, name, 10000);
    if (e != TL_RING_OK) {
        kill(pid, SIGKILL);
        fail_msg("attach: %s", tl_ring_err_name(e));
    }
    assert_int_equal(m.header.producer_pid, (uint32_t)pid);
    tl_ring_liveness_probe lp;
    assert_int_equal(tl_ring_liveness_open(&lp, &m), TL_LIVENESS_ALIVE);
    tl_ring_consumer c;
    assert_int_equal(tl_ring_consumer_init(&c, &m), TL_RING_OK);
    /* The first poll pins c = publish = 0 before the producer may start
     * (it waits for our first heartbeat), so the join is at seq 1. */
    tl_ring_event ev0;
    assert_int_equal(tl_ring_poll(&c, 0, &ev0), TL_RING_EV_NONE);
    assert_int_equal(c.position, 0);
    /* A consumer beats before it sets a nonzero state. */
    tl_ring_consumer_beat(&m, tl_ring_now_mono_ns());
    tl_ring_consumer_set_state(&m, TL_CONSUMER_CATCHING_UP);

    uint64_t last = 0, delivered = 0, missed = 0, attaches = 0, pads = 0;
    uint64_t idle = 0, polls = 0;
    bool producer_done = false;
    int status = 0;
    uint64_t t0 = tl_ring_now_mono_ns();
    while (last < COUNT) {
        tl_ring_event ev;
        enum tl_ring_ev t = tl_ring_poll(&c, last, &ev);
        if ((++polls & 1023) == 0)
            tl_ring_consumer_beat(&m, tl_ring_now_mono_ns());
        switch (t) {
            case TL_RING_EV_RECORD:
                idle = 0;
                if (ev.seq != ev.expected || ev.seq <= last)
                    fail_msg("seq %llu delivered with E %llu after %llu",
                             (unsigned long long)ev.seq, (unsigned long long)ev.expected,
                             (unsigned long long)last);
                check_record(&ev);
                last = ev.seq;
                delivered++;
                /* Fall asleep now and then: the producer laps us. */
                if ((delivered & 0xffff) == 0)
                    nap_us(3000);
                continue;
            case TL_RING_EV_ATTACHED:
                idle = 0;
                attaches++;
                assert_true(ev.expected >= last + 1);
                missed += ev.expected - 1 - last; /* from the WAL, in real life */
                last = ev.expected - 1;
                tl_ring_consumer_set_state(&m, TL_CONSUMER_FOLLOWING);
                continue;
            case TL_RING_EV_LAPPED:
                tl_ring_consumer_set_state(&m, TL_CONSUMER_CATCHING_UP);
                continue;
            case TL_RING_EV_PAD:
                pads++;
                continue;
            case TL_RING_EV_CORRUPT:
                kill(pid, SIGKILL);
                fail_msg("RING_CORRUPT %s at %llu", tl_ring_corrupt_name(ev.reason),
                         (unsigned long long)ev.position);
                break;
            case TL_RING_EV_NONE:
            default:
                break;
        }
        /* Nothing there: back off. */
        idle++;
        if (idle < 64)
            continue;
        if (idle < 128) {
            sched_yield();
            continue;
        }
        if (!producer_done) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            assert_true(r >= 0);
            producer_done = r == pid;
        }
        if (producer_done && idle > 1000) {
            /* The producer is gone and has flushed: nothing more will come.
             * Only a consumer waiting to re-attach can be short. */
            assert_int_not_equal(c.phase, TL_CONS_FOLLOW);
            missed += COUNT - last;
            last = COUNT;
            break;
        }
        if (tl_ring_now_mono_ns() - t0 > 240ull * 1000000000ull) {
            kill(pid, SIGKILL);
            fail_msg("timeout: last %llu", (unsigned long long)last);
        }
        nap_us(50);
    }
    tl_ring_consumer_set_state(&m, TL_CONSUMER_ABSENT);
    if (!producer_done)
        assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(tl_ring_liveness_check(&lp), TL_LIVENESS_DEAD);
    double secs = (double)(tl_ring_now_mono_ns() - t0) / 1e9;
    printf("two processes: %llu delivered, %llu missed by lap, %llu laps, %llu attaches, "
           "%llu pads, %llu copy failures, %.2f s\n",
           (unsigned long long)delivered, (unsigned long long)missed,
           (unsigned long long)c.stats.laps, (unsigned long long)attaches, (unsigned long long)pads,
           (unsigned long long)c.stats.copy_failures, secs);
    assert_int_equal(delivered + missed, COUNT);
    assert_true(c.stats.laps > 0);
    assert_true(delivered > 0);
    assert_int_equal(c.stats.corrupt, 0);
    assert_int_equal(c.stats.lower_seqs, 0);
    assert_int_equal(c.stats.jumps, 0);
    assert_int_equal(c.stats.records, delivered);
    /* The first attach, then one per lap (but a lap at the very end may
     * find the producer gone before it can re-attach). */
    assert_true(attaches >= c.stats.laps && attaches <= c.stats.laps + 1);

    tl_ring_liveness_close(&lp);
    tl_ring_consumer_free(&c);
    tl_ring_map_close(&m);
    char shm[128];
    snprintf(shm, sizeof shm, "/tally.%s", name);
    tl_ring_obj_unlink(shm, true);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
