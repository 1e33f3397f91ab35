/* test_ring_vector.c: the independent encoder's ring image
 * (../shared/spec/vectors/ring-pad.bin, .json) is read exactly as ring.md
 * says: from consumer_start_position, expecting expected_seq_at_start,
 * through the PAD into the second lap, up to publish. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm/ring.h"

static uint64_t jnum(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(j, key);
    assert_non_null(v);
    assert_true(cJSON_IsNumber(v));
    return (uint64_t)v->valuedouble;
}

static void test_ring_pad_vector(void **state) {
    (void)state;
    size_t jn, n;
    uint8_t *jbuf = tu_read_file(tu_shared("spec/vectors/ring-pad.json"), &jn);
    cJSON *j = cJSON_ParseWithLength((const char *)jbuf, jn);
    assert_non_null(j);
    uint64_t capacity = jnum(j, "capacity");
    uint64_t start = jnum(j, "consumer_start_position");
    uint64_t start_seq = jnum(j, "expected_seq_at_start");
    uint64_t publish = jnum(j, "publish");
    uint64_t pad_position = jnum(j, "pad_position");
    uint64_t first_seq = jnum(j, "first_seq");
    uint64_t last_seq = jnum(j, "last_seq");
    uint64_t count = jnum(j, "count");

    /* Into a file-backed ring, mapped the way tally maps any ring. */
    uint8_t *img = tu_read_file(tu_shared("spec/vectors/ring-pad.bin"), &n);
    assert_int_equal(n, TL_RING_CONTROL_BYTES + capacity);
    char *dir = tu_tmpdir("ringvec");
    char path[512];
    snprintf(path, sizeof path, "%s/ring-pad.ring", dir);
    tu_write_file(path, img, n);

    tl_ring_map m;
    assert_int_equal(tl_ring_map_open_wait(&m, path, 100), TL_RING_OK);
    assert_int_equal(m.capacity, capacity);
    assert_memory_equal(m.header.magic, "TLYRING1", 8);
    assert_int_equal(m.header.version, 1);
    assert_true(atomic_load(&m.ctl->publish) == publish);

    tl_ring_consumer c;
    assert_int_equal(tl_ring_consumer_init(&c, &m), TL_RING_OK);
    tl_ring_consumer_start_at(&c, start, start_seq);

    uint64_t want = first_seq, got = 0, pads = 0, last = start_seq - 1;
    tl_ring_event ev;
    for (int i = 0; i < 10000; i++) {
        enum tl_ring_ev t = tl_ring_poll(&c, last, &ev);
        if (t == TL_RING_EV_NONE)
            break;
        if (t == TL_RING_EV_PAD) {
            assert_int_equal(ev.position, pad_position);
            assert_int_equal(ev.len, capacity - (pad_position & (capacity - 1)));
            assert_int_equal(ev.seq, want); /* the PAD's stamp is the next seq */
            pads++;
            continue;
        }
        if (t != TL_RING_EV_RECORD)
            fail_msg("unexpected %s (%s) at %llu", tl_ring_ev_name(t),
                     tl_ring_corrupt_name(ev.reason), (unsigned long long)ev.position);
        assert_int_equal(ev.seq, want);
        assert_int_equal(ev.expected, want);
        assert_false(ev.replay);
        assert_int_equal(tl_rec_hdr_of(ev.rec)->len, ev.len);
        last = want;
        want++;
        got++;
    }
    assert_int_equal(got, count);
    assert_int_equal(want - 1, last_seq);
    assert_int_equal(pads, 1);
    assert_int_equal(c.position, publish);
    assert_int_equal(c.stats.laps, 0);
    assert_int_equal(c.stats.corrupt, 0);
    assert_int_equal(c.stats.copy_failures, 0);
    /* The consumer reported its position (ring.md step 5). */
    assert_true(atomic_load(&m.ctl->consumer_position) == publish);

    tl_ring_consumer_free(&c);
    tl_ring_map_close(&m);
    tu_rm_rf(dir);
    free(dir);
    free(img);
    cJSON_Delete(j);
    free(jbuf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_pad_vector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
