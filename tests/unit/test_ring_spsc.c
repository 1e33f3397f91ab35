/* test_ring_spsc.c: the SPSC queue of shm/spsc.h: sizes, full and empty,
 * wrap-around, zero-copy front/release, and two threads moving 2 * 10^6
 * slots in order with nothing lost, duplicated or torn. */
#include "testutil.h"

#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "shm/spsc.h"

typedef struct item {
    uint64_t seq;
    uint64_t check;
    uint8_t fill[40];
} item;

static item mk_item(uint64_t seq) {
    item it;
    it.seq = seq;
    it.check = seq * 0x9E3779B97F4A7C15ull;
    memset(it.fill, (int)(seq & 0xff), sizeof it.fill);
    return it;
}

static void check_item(const item *it, uint64_t seq) {
    assert_int_equal(it->seq, seq);
    assert_true(it->check == seq * 0x9E3779B97F4A7C15ull);
    for (size_t i = 0; i < sizeof it->fill; i++)
        assert_int_equal(it->fill[i], (uint8_t)(seq & 0xff));
}

static void test_spsc_init_limits(void **state) {
    (void)state;
    static tl_spsc q;
    assert_int_equal(tl_spsc_init(&q, 0, 8), -1);
    assert_int_equal(tl_spsc_init(&q, 1, 8), -1);
    assert_int_equal(tl_spsc_init(&q, 3, 8), -1);
    assert_int_equal(tl_spsc_init(&q, 1u << 25, 8), -1);
    assert_int_equal(tl_spsc_init(&q, 4, 0), -1);
    assert_int_equal(tl_spsc_init(&q, 4, 65537), -1);
    assert_int_equal(tl_spsc_init(&q, 4, 13), 0);
    assert_int_equal(q.stride_bytes, 16);
    tl_spsc_destroy(&q);
    /* The two indexes live on their own 128-byte regions. */
    assert_int_equal(offsetof(tl_spsc, head) % 128, 0);
    assert_int_equal(offsetof(tl_spsc, tail) % 128, 0);
    assert_true(offsetof(tl_spsc, tail) - offsetof(tl_spsc, head) >= 128);
    assert_true(offsetof(tl_spsc, slots) - offsetof(tl_spsc, tail) >= 128);
}

static void test_spsc_full_empty_wrap(void **state) {
    (void)state;
    static tl_spsc q;
    assert_int_equal(tl_spsc_init(&q, 8, sizeof(item)), 0);
    item out;
    assert_false(tl_spsc_pop(&q, &out));
    assert_null(tl_spsc_front(&q));
    uint64_t next_in = 0, next_out = 0;
    for (int round = 0; round < 50; round++) {
        int n = 1 + round % 8;
        for (int i = 0; i < n; i++) {
            item it = mk_item(next_in);
            assert_true(tl_spsc_push(&q, &it));
            next_in++;
        }
        assert_int_equal(tl_spsc_size(&q), next_in - next_out);
        for (int i = 0; i < n; i++) {
            if (i % 2 == 0) {
                assert_true(tl_spsc_pop(&q, &out));
                check_item(&out, next_out);
            } else {
                item *f = tl_spsc_front(&q);
                assert_non_null(f);
                check_item(f, next_out);
                tl_spsc_release(&q);
            }
            next_out++;
        }
        assert_false(tl_spsc_pop(&q, &out));
    }
    /* Full at exactly slot_count: no slot is wasted. */
    for (int i = 0; i < 8; i++) {
        item it = mk_item(next_in++);
        assert_true(tl_spsc_push(&q, &it));
    }
    item extra = mk_item(999);
    assert_false(tl_spsc_push(&q, &extra));
    assert_int_equal(tl_spsc_size(&q), 8);
    assert_true(tl_spsc_pop(&q, &out));
    check_item(&out, next_out++);
    assert_true(tl_spsc_push(&q, &extra));
    tl_spsc_destroy(&q);
}

#define N_THREADED 2000000ull

static void *producer_thread(void *arg) {
    tl_spsc *q = arg;
    for (uint64_t s = 0; s < N_THREADED; s++) {
        item it = mk_item(s);
        int spins = 0;
        while (!tl_spsc_push(q, &it)) {
            if (++spins > 100)
                sched_yield(); /* two cores in CI: back off */
        }
    }
    return NULL;
}

static void test_spsc_two_threads(void **state) {
    (void)state;
    static tl_spsc q;
    assert_int_equal(tl_spsc_init(&q, 1024, sizeof(item)), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer_thread, &q), 0);
    item out;
    for (uint64_t s = 0; s < N_THREADED; s++) {
        int spins = 0;
        while (!tl_spsc_pop(&q, &out)) {
            if (++spins > 100)
                sched_yield();
        }
        if (out.seq != s || out.check != s * 0x9E3779B97F4A7C15ull)
            fail_msg("slot %llu: got seq %llu", (unsigned long long)s, (unsigned long long)out.seq);
        if (out.fill[0] != (uint8_t)s || out.fill[39] != (uint8_t)s)
            fail_msg("slot %llu torn", (unsigned long long)s);
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_false(tl_spsc_pop(&q, &out));
    tl_spsc_destroy(&q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spsc_init_limits),
        cmocka_unit_test(test_spsc_full_empty_wrap),
        cmocka_unit_test(test_spsc_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
