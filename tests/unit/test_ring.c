/* test_ring.c: the ring protocol of ring.md, rule by rule, in one process:
 * the producer's header, incarnations, commit stamp, PAD placement and
 * publish cadence; the consumer's steps 1-5, lapped detection, the 3-copy
 * retry, PAD and REPLAY rules, lower seqs and jumps, first attach and
 * re-attach. The test plays the other side, or scribbles on the shared
 * bytes, to put the consumer in each case. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/record.h"
#include "shm/ring.h"

#define CAP (1ull << 20)

typedef struct fx {
    char *dir;
    char path[512];
    tl_ring_producer *p;
    tl_ring_map m;
    tl_ring_consumer c;
    uint8_t *buf; /* 8-aligned scratch for one record */
} fx;

static const uint8_t engine_id[TL_ID_BYTES] = {1, 2,  3,  4,  5,  6,  7,  8,
                                               9, 10, 11, 12, 13, 14, 15, 16};

static void fx_open(fx *f, uint64_t capacity) {
    memset(f, 0, sizeof *f);
    f->dir = tu_tmpdir("ring");
    snprintf(f->path, sizeof f->path, "%s/r.ring", f->dir);
    assert_int_equal(tl_ring_create(f->path, capacity, engine_id, NULL, &f->p), TL_RING_OK);
    assert_int_equal(tl_ring_map_open_wait(&f->m, f->path, 100), TL_RING_OK);
    assert_int_equal(tl_ring_consumer_init(&f->c, &f->m), TL_RING_OK);
    f->buf = aligned_alloc(64, TL_RING_COPY_BYTES);
    assert_non_null(f->buf);
}

static void fx_close(fx *f) {
    tl_ring_consumer_free(&f->c);
    tl_ring_map_close(&f->m);
    tl_ring_close(f->p);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f->buf);
}

static uint8_t body_byte(uint64_t seq, uint32_t i) {
    return (uint8_t)(seq * 131u + i * 7u + 1u);
}

/* A HEARTBEAT whose body (bytes past v1 size are ignored by readers) is
 * derived from seq, so the content of every delivered copy can be checked. */
static uint32_t mk(uint8_t *buf, uint64_t seq, uint32_t len, uint16_t flags, uint16_t kind) {
    assert_true(len >= 64 && len <= 65536 && len % 8 == 0);
    uint8_t body[65536];
    uint32_t body_len = len - 64;
    for (uint32_t i = 0; i < body_len; i++)
        body[i] = body_byte(seq, i);
    tl_rec_meta m = {.parent = seq * 7919u,
                     .seq = seq,
                     .fence = 3,
                     .ts_ns = 1000000 + seq,
                     .kind = kind,
                     .flags = flags,
                     .symbol = 0};
    uint32_t n = tl_rec_encode(buf, TL_RING_COPY_BYTES, &m, body, body_len);
    assert_int_equal(n, len);
    return n;
}

static void pub(fx *f, uint64_t seq, uint32_t len) {
    mk(f->buf, seq, len, 0, TL_KIND_HEARTBEAT);
    tl_ring_publish(f->p, f->buf, len);
}

static void pub_flags(fx *f, uint64_t seq, uint32_t len, uint16_t flags) {
    mk(f->buf, seq, len, flags, TL_KIND_HEARTBEAT);
    tl_ring_publish(f->p, f->buf, len);
}

static uint64_t publish_word(fx *f) {
    return atomic_load(&f->p->ctl->publish);
}

static void set_publish(fx *f, uint64_t v) {
    atomic_store(&f->p->ctl->publish, v);
}

static uint8_t *ring_bytes(fx *f, uint64_t pos) {
    return (uint8_t *)(void *)f->p->data + (pos & f->p->mask);
}

static void check_content(const tl_ring_event *ev) {
    const tl_rec_hdr *h = tl_rec_hdr_of(ev->rec);
    assert_int_equal(h->len, ev->len);
    assert_int_equal(h->seq, ev->seq);
    assert_true(h->parent == ev->seq * 7919u);
    for (uint32_t i = 0; i < h->body_len; i++)
        if (ev->rec[64 + i] != body_byte(ev->seq, i))
            fail_msg("content of seq %llu differs at %u", (unsigned long long)ev->seq, i);
}

static enum tl_ring_ev poll1(fx *f, uint64_t last, tl_ring_event *ev) {
    return tl_ring_poll(&f->c, last, ev);
}

static void expect_record(fx *f, uint64_t last, uint64_t seq, uint64_t expected) {
    tl_ring_event ev;
    enum tl_ring_ev t = poll1(f, last, &ev);
    if (t != TL_RING_EV_RECORD)
        fail_msg("want record %llu, got %s (%s)", (unsigned long long)seq, tl_ring_ev_name(t),
                 tl_ring_corrupt_name(ev.reason));
    assert_int_equal(ev.seq, seq);
    assert_int_equal(ev.expected, expected);
    check_content(&ev);
}

static void expect_none(fx *f, uint64_t last) {
    tl_ring_event ev;
    enum tl_ring_ev t = poll1(f, last, &ev);
    if (t != TL_RING_EV_NONE)
        fail_msg("want none, got %s", tl_ring_ev_name(t));
}

/* ---- producer: header, names, incarnations ---- */

static void test_create_header(void **state) {
    (void)state;
    char *dir = tu_tmpdir("ringhdr");
    char path[512];
    snprintf(path, sizeof path, "%s/h.ring", dir);
    tl_ring_durable rec = {.seq = 4242, .segment_first_seq = 4000, .offset = 123456};
    tl_ring_producer *p;
    assert_int_equal(tl_ring_create(path, CAP, engine_id, &rec, &p), TL_RING_OK);
    assert_false(p->old_object_found);

    tl_ring_map m;
    assert_int_equal(tl_ring_map_open_wait(&m, path, 100), TL_RING_OK);
    assert_memory_equal(m.header.magic, "TLYRING1", 8);
    assert_int_equal(m.header.version, 1);
    assert_int_equal(m.header.control_len, 4096);
    assert_int_equal(m.header.capacity, CAP);
    assert_memory_equal(m.header.engine_id, engine_id, 16);
    assert_int_equal(m.header.producer_pid, (uint32_t)getpid());
    assert_int_equal(m.header.reserved, 0);
    assert_true(m.header.created_ns > 1600000000ull * 1000000000ull);
    assert_true(m.header.header_checksum == tl_xxh3(&m.header, 56));
    assert_int_equal(m.map_bytes, 4096 + CAP);
    /* Raw bytes at the spec's offsets. */
    const uint8_t *b = m.base;
    uint64_t v;
    memcpy(&v, b + 16, 8);
    assert_int_equal(v, CAP);
    memcpy(&v, b + 168, 8);
    assert_int_equal(v, 4242);
    memcpy(&v, b + 176, 8);
    assert_int_equal(v, 4000);
    memcpy(&v, b + 184, 8);
    assert_int_equal(v, 123456);
    memcpy(&v, b + 160, 8);
    assert_int_equal(v, 0); /* gen even */
    memcpy(&v, b + 128, 8);
    assert_int_equal(v, 0); /* publish starts at 0 */
    memcpy(&v, b + 280, 8);
    assert_int_equal(v, 0);
    /* Reserved bytes are zero. */
    for (size_t i = 64; i < 128; i++)
        assert_int_equal(b[i], 0);
    assert_int_equal(m.identity.created_ns, m.header.created_ns);
    assert_true(tl_ring_identity_equal(&m.identity, &p->identity));

    tl_ring_map_close(&m);
    tl_ring_close(p);
    tu_rm_rf(dir);
    free(dir);
}

static void test_create_rejects(void **state) {
    (void)state;
    tl_ring_producer *p = NULL;
    char *dir = tu_tmpdir("ringrej");
    char path[512];
    snprintf(path, sizeof path, "%s/x.ring", dir);
    uint64_t bad[] = {0, 1, CAP - 1, CAP / 2, 3 * CAP, CAP + 8, 1ull << 41};
    for (size_t i = 0; i < TL_ARRAY_LEN(bad); i++) {
        assert_int_equal(tl_ring_create(path, bad[i], engine_id, NULL, &p), TL_RING_ERR_CAPACITY);
        assert_null(p);
    }
    assert_int_equal(tl_ring_create("", CAP, engine_id, NULL, &p), TL_RING_ERR_NAME);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    assert_int_equal(tl_ring_create(longname, CAP, engine_id, NULL, &p), TL_RING_ERR_NAME);

    /* A name holding something other than a ring is never unlinked. */
    tu_write_file(path, "precious operator data, not a ring", 34);
    assert_int_equal(tl_ring_create(path, CAP, engine_id, NULL, &p), TL_RING_ERR_NOT_A_RING);
    size_t n;
    uint8_t *kept = tu_read_file(path, &n);
    assert_int_equal(n, 34);
    free(kept);
    /* An unfinished ring (sized, header never written; or empty) is replaced. */
    uint8_t zeros[4096] = {0};
    tu_write_file(path, zeros, sizeof zeros);
    assert_int_equal(tl_ring_create(path, CAP, engine_id, NULL, &p), TL_RING_OK);
    assert_false(p->old_object_found);
    tl_ring_close(p);
    tu_write_file(path, zeros, 0);
    assert_int_equal(tl_ring_create(path, CAP, engine_id, NULL, &p), TL_RING_OK);
    tl_ring_close(p);
    p = NULL;

    char out[TL_RING_PATH_MAX];
    bool is_shm = false;
    assert_int_equal(tl_ring_resolve_name("eng1", out, sizeof out, &is_shm), TL_RING_OK);
    assert_true(is_shm);
    assert_string_equal(out, "/tally.eng1");
    assert_int_equal(tl_ring_resolve_name("/run/x.ring", out, sizeof out, &is_shm), TL_RING_OK);
    assert_false(is_shm);
    assert_string_equal(out, "/run/x.ring");
    assert_int_equal(tl_ring_resolve_name("./rel", out, sizeof out, &is_shm), TL_RING_OK);
    assert_false(is_shm);
    assert_string_equal(tl_ring_err_name(TL_RING_ERR_NOT_A_RING), "not_a_ring");
    tu_rm_rf(dir);
    free(dir);
}

/* A name without '/' is the POSIX shm object /tally.<name>. */
static void test_shm_name(void **state) {
    (void)state;
    char name[64];
    snprintf(name, sizeof name, "test-ring-%d", (int)getpid());
    tl_ring_producer *p;
    assert_int_equal(tl_ring_create(name, CAP, engine_id, NULL, &p), TL_RING_OK);
    char dev[128];
    snprintf(dev, sizeof dev, "/dev/shm/tally.%s", name);
    assert_int_equal(access(dev, F_OK), 0);
    tl_ring_map m;
    assert_int_equal(tl_ring_map_open_wait(&m, name, 100), TL_RING_OK);
    assert_true(tl_ring_identity_equal(&m.identity, &p->identity));
    tl_ring_map_close(&m);
    tl_ring_close(p);
    char shm[128];
    snprintf(shm, sizeof shm, "/tally.%s", name);
    assert_int_equal(tl_ring_obj_unlink(shm, true), 0);
}

/* Every start is a new incarnation: a new object (new identity), with the
 * old object's consumer_wal_seq carried over; a mapping of the old object
 * stays valid. */
static void test_incarnation(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    tl_ring_consumer_set_wal_seq(&f.m, 777);
    tl_ring_identity id1, id_now;
    assert_int_equal(tl_ring_identity_read(f.path, &id1), TL_RING_OK);
    assert_true(tl_ring_identity_equal(&id1, &f.m.identity));
    pub(&f, 1, 64);
    tl_ring_flush(f.p);

    tl_ring_producer *p2;
    tl_ring_durable rec = {.seq = 1, .segment_first_seq = 1, .offset = 4096 + 64};
    assert_int_equal(tl_ring_create(f.path, CAP, engine_id, &rec, &p2), TL_RING_OK);
    assert_true(p2->old_object_found);
    assert_int_equal(p2->old_consumer_wal_seq, 777);
    assert_true(atomic_load(&p2->ctl->consumer_wal_seq) == 777);
    assert_true(atomic_load(&p2->ctl->wal_durable_seq) == 1);
    assert_true(atomic_load(&p2->ctl->publish) == 0);

    assert_int_equal(tl_ring_identity_read(f.path, &id_now), TL_RING_OK);
    assert_false(tl_ring_identity_equal(&id_now, &id1));
    assert_true(tl_ring_identity_equal(&id_now, &p2->identity));
    /* The old mapping still reads the old object. */
    assert_true(atomic_load(&f.m.ctl->publish) == 64);
    expect_none(&f, 0); /* first attach on the old object: publish never moves again */

    tl_ring_close(p2);
    fx_close(&f);
}

static void test_identity_read_states(void **state) {
    (void)state;
    char *dir = tu_tmpdir("ringid");
    char path[512];
    snprintf(path, sizeof path, "%s/none.ring", dir);
    tl_ring_identity id;
    assert_int_equal(tl_ring_identity_read(path, &id), TL_RING_ERR_NOT_FOUND);
    uint8_t zeros[4096] = {0};
    tu_write_file(path, zeros, sizeof zeros);
    assert_int_equal(tl_ring_identity_read(path, &id), TL_RING_PENDING);
    tu_write_file(path, zeros, 10);
    assert_int_equal(tl_ring_identity_read(path, &id), TL_RING_PENDING);
    tu_rm_rf(dir);
    free(dir);
}

/* ---- producer: commit stamp, PAD rule, publish cadence ---- */

static void test_commit_stamp(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);

    /* Every word but seq written (at a position the producer will not reach
     * in this test): nothing committed, and publish says nothing is there,
     * so the consumer sees nothing. */
    tl_ring_consumer_start_at(&f.c, 65536, 1);
    mk(f.buf, 1, 128, 0, TL_KIND_HEARTBEAT);
    uint64_t *w = (uint64_t *)(void *)ring_bytes(&f, 65536);
    const uint64_t *src = (const uint64_t *)(void *)f.buf;
    for (int i = 0; i < 16; i++)
        if (i != 2)
            w[i] = src[i];
    expect_none(&f, 0);
    /* The stamp commits it, with `publish` still 0: the consumer polls the
     * stamp, not the shared index. */
    w[2] = src[2];
    expect_record(&f, 0, 1, 1);
    assert_true(publish_word(&f) == 0);

    /* The producer writes exactly the record's bytes, stamp included, and
     * the consumer sees it before any publish store. */
    tl_ring_consumer_start_at(&f.c, 0, 2);
    expect_none(&f, 1);
    pub(&f, 2, 200);
    assert_true(publish_word(&f) == 0);
    assert_memory_equal(ring_bytes(&f, 0), f.buf, 200);
    expect_record(&f, 1, 2, 2);
    expect_none(&f, 2);
    pub(&f, 3, 64);
    expect_record(&f, 2, 3, 3);
    fx_close(&f);
}

static void check_pad_at(fx *f, uint64_t pos, uint32_t room, const uint8_t *next) {
    const tl_rec_hdr *nh = tl_rec_hdr_of(next);
    uint8_t *copy = aligned_alloc(8, TL_RING_COPY_BYTES);
    memcpy(copy, ring_bytes(f, pos), room);
    const tl_rec_hdr *h = tl_rec_hdr_of(copy);
    assert_int_equal(h->kind, TL_KIND_PAD);
    assert_int_equal(h->len, room);
    assert_int_equal(h->seq, nh->seq);
    assert_true(h->parent == nh->parent);
    assert_true(h->fence == nh->fence);
    assert_true(h->ts_ns == nh->ts_ns);
    assert_int_equal(h->symbol, 0);
    assert_int_equal(h->flags, 0);
    assert_int_equal(h->body_len, 0);
    for (uint32_t i = 64; i < room; i++)
        assert_int_equal(copy[i], 0);
    bool replay;
    assert_int_equal(tl_rec_verify(copy, room, TL_WHERE_RING, &replay), TL_REC_OK);
    free(copy);
}

/* ring.md: with r the room left, the record goes at p iff len <= r and
 * (r - len == 0 or r - len >= 64); otherwise a PAD of r bytes first. */
static void test_pad_rule(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    uint64_t seq = 1;
    for (int i = 0; i < 15; i++)
        pub(&f, seq++, 65536);
    assert_int_equal(f.p->position, 15 * 65536ull); /* r = 65536 */

    /* r - len == 56: PAD of r, record at offset 0 of the next lap. */
    pub(&f, seq, 65480);
    check_pad_at(&f, 15 * 65536ull, 65536, f.buf);
    assert_int_equal(f.p->pads, 1);
    assert_int_equal(f.p->position, CAP + 65480);
    assert_memory_equal(ring_bytes(&f, CAP), f.buf, 65480);
    seq++;
    /* Now r = CAP - 65480. Fill to r = 65536 + 64 with big records. */
    while (CAP - (f.p->position & (CAP - 1)) > 65536 + 65536 + 64)
        pub(&f, seq++, 65536);
    uint64_t r = CAP - (f.p->position & (CAP - 1));
    uint32_t len = (uint32_t)(r - 65536 - 64);
    assert_true(len >= 64 && len <= 65536);
    pub(&f, seq++, len);
    assert_int_equal(CAP - (f.p->position & (CAP - 1)), 65536 + 64);
    /* r - len == 64: in place, no PAD. */
    pub(&f, seq++, 65536);
    assert_int_equal(f.p->pads, 1);
    assert_int_equal(CAP - (f.p->position & (CAP - 1)), 64);
    /* r = 64, len 72 > r: the smallest PAD (64 bytes). */
    uint64_t pad_pos = f.p->position;
    pub(&f, seq, 72);
    check_pad_at(&f, pad_pos, 64, f.buf);
    assert_int_equal(f.p->pads, 2);
    assert_int_equal(f.p->position & (CAP - 1), 72);
    seq++;
    /* Fill to r = 65536 exactly, then r - len == 0: exact fit, no PAD. */
    while (CAP - (f.p->position & (CAP - 1)) > 2 * 65536)
        pub(&f, seq++, 65536);
    r = CAP - (f.p->position & (CAP - 1));
    pub(&f, seq++, (uint32_t)(r - 65536));
    assert_int_equal(CAP - (f.p->position & (CAP - 1)), 65536);
    pub(&f, seq++, 65536);
    assert_int_equal(f.p->pads, 2);
    assert_int_equal(f.p->position & (CAP - 1), 0);
    /* r - len in (0, 64) with a small record: r = 128, len 72 (56 left). */
    while (CAP - (f.p->position & (CAP - 1)) > 65536 + 128)
        pub(&f, seq++, 65536);
    r = CAP - (f.p->position & (CAP - 1));
    pub(&f, seq++, (uint32_t)(r - 128));
    pad_pos = f.p->position;
    pub(&f, seq, 72);
    check_pad_at(&f, pad_pos, 128, f.buf);
    assert_int_equal(f.p->pads, 3);
    seq++;
    tl_ring_flush(f.p);
    assert_true(publish_word(&f) == f.p->position);

    /* A consumer that follows all of it from the start would have been
     * lapped; one started at the last lap start reads it all in order. */
    fx_close(&f);
}

/* The consumer reads through several laps of random sizes, polling after
 * every publish (never lapped): every seq, in order, every PAD. */
static void test_follow_laps(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    tl_ring_consumer_start_at(&f.c, 0, 1);
    uint64_t seed = 12345, last = 0;
    uint64_t pads_seen = 0;
    for (uint64_t seq = 1; seq <= 3000; seq++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t len = 64 + (uint32_t)((seed >> 33) % 8000) * 8;
        if (len > 65536)
            len = 65536;
        pub(&f, seq, len);
        for (int k = 0; k < 3; k++) {
            tl_ring_event ev;
            enum tl_ring_ev t = poll1(&f, last, &ev);
            if (t == TL_RING_EV_PAD) {
                pads_seen++;
                continue;
            }
            if (t == TL_RING_EV_NONE)
                break;
            assert_int_equal(t, TL_RING_EV_RECORD);
            assert_int_equal(ev.seq, last + 1);
            assert_int_equal(ev.expected, last + 1);
            check_content(&ev);
            last = ev.seq;
        }
        assert_int_equal(last, seq);
        /* publish never lags the newest commit by more than cap/8 + 65600 */
        assert_true(f.p->position - publish_word(&f) <= CAP / 8 + 65600);
    }
    assert_true(f.p->position > 5 * CAP);
    assert_int_equal(pads_seen, f.p->pads);
    assert_int_equal(f.c.stats.pads, f.p->pads);
    assert_int_equal(f.c.stats.laps, 0);
    assert_true(atomic_load(&f.m.ctl->consumer_position) == f.p->position);
    fx_close(&f);
}

static void test_publish_cadence(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    for (uint64_t s = 1; s <= 63; s++)
        pub(&f, s, 64);
    assert_true(publish_word(&f) == 0);
    pub(&f, 64, 64);
    assert_true(publish_word(&f) == 64 * 64);
    assert_true(atomic_load(&f.p->ctl->last_seq) == 64);
    pub(&f, 65, 64);
    assert_true(publish_word(&f) == 64 * 64);
    tl_ring_flush(f.p); /* before the producer idles */
    assert_true(publish_word(&f) == 65 * 64);
    fx_close(&f);

    /* capacity / 8 bytes: 131072 = two 64 KiB records. */
    fx_open(&f, CAP);
    pub(&f, 1, 65536);
    assert_true(publish_word(&f) == 0);
    pub(&f, 2, 65536);
    assert_true(publish_word(&f) == 131072);
    pub(&f, 3, 65536);
    assert_true(publish_word(&f) == 131072);
    tl_ring_flush(f.p);
    assert_true(publish_word(&f) == 3 * 65536);
    /* A flush with nothing new stores nothing new. */
    tl_ring_flush(f.p);
    assert_true(publish_word(&f) == 3 * 65536);
    fx_close(&f);
}

/* ---- consumer: first attach, lapped, re-attach ---- */

static void test_first_attach(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    /* Empty ring: publish = 0 = c, nothing to join yet. */
    expect_none(&f, 0);
    pub(&f, 1, 64);
    expect_none(&f, 0); /* committed, but publish has not moved past c */
    tl_ring_flush(f.p);
    tl_ring_event ev;
    assert_int_equal(poll1(&f, 0, &ev), TL_RING_EV_ATTACHED);
    assert_int_equal(ev.position, 0);
    assert_int_equal(ev.expected, 1);
    expect_record(&f, 0, 1, 1);
    fx_close(&f);

    /* It joins at the first committed record after publish. */
    fx_open(&f, CAP);
    for (uint64_t s = 1; s <= 10; s++)
        pub(&f, s, 128);
    tl_ring_flush(f.p);
    expect_none(&f, 20);
    assert_int_equal(f.c.position, 1280);
    pub(&f, 11, 128);
    tl_ring_flush(f.p);
    assert_int_equal(poll1(&f, 20, &ev), TL_RING_EV_ATTACHED);
    assert_int_equal(ev.position, 1280);
    assert_int_equal(ev.seq, 11);
    /* E = max(record seq, last delivered + 1): the WAL delivered up to 20. */
    assert_int_equal(ev.expected, 21);
    /* Ring records below E arrive as lower seqs, never in order twice. */
    expect_record(&f, 20, 11, 21);
    assert_int_equal(f.c.expected, 21);
    assert_int_equal(f.c.stats.lower_seqs, 1);
    pub(&f, 12, 128);
    tl_ring_flush(f.p);
    expect_record(&f, 20, 12, 21);
    fx_close(&f);
}

static void test_lapped_and_reattach(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    tl_ring_consumer_start_at(&f.c, 0, 1);
    expect_none(&f, 0);
    uint64_t seq = 1;
    /* Go around once and a bit while the consumer sleeps at 0. */
    while (f.p->position < CAP + 100 * 1024)
        pub(&f, seq++, 1024);
    tl_ring_flush(f.p);
    tl_ring_event ev;
    assert_int_equal(poll1(&f, 0, &ev), TL_RING_EV_LAPPED);
    assert_int_equal(ev.position, 0);
    assert_int_equal(f.c.stats.laps, 1);
    /* Re-attach: c = publish, wait for it to move. */
    uint64_t pub_at = publish_word(&f);
    expect_none(&f, 0);
    assert_int_equal(f.c.position, pub_at);
    uint64_t next = seq;
    pub(&f, seq++, 1024);
    expect_none(&f, 0); /* publish not moved yet */
    tl_ring_flush(f.p);
    assert_int_equal(poll1(&f, 0, &ev), TL_RING_EV_ATTACHED);
    assert_int_equal(ev.expected, next);
    expect_record(&f, 0, next, next);
    assert_int_equal(f.c.stats.laps, 1);
    fx_close(&f);
}

/* lapped <=> pub > c and pub - c > capacity - M, M = capacity/8 + 2*65600. */
static void test_lapped_boundary(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    for (uint64_t s = 1; s <= 10; s++)
        pub(&f, s, 1024);
    uint64_t M = CAP / 8 + 2 * 65600;
    assert_int_equal(f.c.lap_limit, CAP - M);

    /* The stamp at c (1) is not E (5): publish decides. */
    tl_ring_consumer_start_at(&f.c, 0, 5);
    set_publish(&f, CAP - M);
    tl_ring_event ev;
    assert_int_equal(poll1(&f, 4, &ev), TL_RING_EV_RECORD); /* not lapped */
    assert_int_equal(ev.seq, 1);
    assert_int_equal(ev.expected, 5); /* a lower seq */
    assert_int_equal(f.c.expected, 5);

    tl_ring_consumer_start_at(&f.c, 0, 5);
    set_publish(&f, CAP - M + 8);
    assert_int_equal(poll1(&f, 4, &ev), TL_RING_EV_LAPPED);

    /* The same at a position that is not 0. */
    tl_ring_consumer_start_at(&f.c, 2048, 99);
    set_publish(&f, 2048 + CAP - M + 8);
    assert_int_equal(poll1(&f, 4, &ev), TL_RING_EV_LAPPED);
    assert_int_equal(ev.position, 2048);
    tl_ring_consumer_start_at(&f.c, 2048, 99);
    set_publish(&f, 2048 + CAP - M);
    assert_int_equal(poll1(&f, 4, &ev), TL_RING_EV_RECORD);
    assert_int_equal(ev.seq, 3);

    /* pub <= c: nothing committed in this lap, whatever the stamp says. */
    tl_ring_consumer_start_at(&f.c, 0, 5);
    set_publish(&f, 0);
    expect_none(&f, 4);
    assert_int_equal(f.c.stats.laps, 2);
    fx_close(&f);
}

/* A PAD is lap-checked before it moves c: a newer lap may have put a valid
 * record at offset 0. */
static void test_pad_lap_check(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    uint64_t seq = 1;
    for (int i = 0; i < 15; i++)
        pub(&f, seq++, 65536);
    pub(&f, seq, 65480); /* PAD at 983040, stamp 16 */
    tl_ring_consumer_start_at(&f.c, 15 * 65536ull, 16);
    set_publish(&f, 15 * 65536ull + f.c.lap_limit + 8);
    tl_ring_event ev;
    assert_int_equal(poll1(&f, 15, &ev), TL_RING_EV_LAPPED);
    assert_int_equal(f.c.stats.pads, 0);
    /* The same PAD without the lap: moves c to the next lap, E stays. */
    tl_ring_consumer_start_at(&f.c, 15 * 65536ull, 16);
    set_publish(&f, CAP);
    assert_int_equal(poll1(&f, 15, &ev), TL_RING_EV_PAD);
    assert_int_equal(ev.seq, 16);
    assert_int_equal(f.c.position, CAP);
    assert_int_equal(f.c.expected, 16);
    expect_record(&f, 15, 16, 16);
    fx_close(&f);
}

/* ---- consumer: failed copies, RING_CORRUPT ---- */

typedef struct hook_state {
    int calls;
    int heal_at;
    uint8_t *byte;
    uint8_t good;
    uint64_t position;
} hook_state;

static void copy_fail_hook(void *arg, uint64_t position, uint32_t attempt) {
    hook_state *h = arg;
    h->calls++;
    h->position = position;
    assert_int_equal(attempt, (uint32_t)h->calls);
    if ((int)attempt == h->heal_at)
        *h->byte = h->good;
}

static void test_copy_retry_then_corrupt(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    pub(&f, 1, 128);
    pub(&f, 2, 128);
    pub(&f, 3, 128);
    tl_ring_flush(f.p);
    uint8_t *b = ring_bytes(&f, 128 + 100);
    hook_state hs = {.heal_at = -1, .byte = b, .good = *b};
    *b ^= 0x40;
    f.c.on_copy_fail = copy_fail_hook;
    f.c.on_copy_fail_arg = &hs;
    tl_ring_consumer_start_at(&f.c, 0, 1);
    expect_record(&f, 0, 1, 1);
    tl_ring_event ev;
    assert_int_equal(poll1(&f, 1, &ev), TL_RING_EV_CORRUPT);
    assert_int_equal(ev.reason, TL_RING_CORRUPT_CHECKSUM);
    assert_string_equal(tl_ring_corrupt_name(ev.reason), "checksum");
    assert_int_equal(ev.position, 128);
    assert_true(ev.reattach);
    assert_int_equal(hs.calls, 3);
    assert_int_equal(f.c.stats.copy_failures, 3);
    assert_int_equal(f.c.stats.copies, 1 + 3); /* record 1, then exactly 3 of record 2 */
    assert_int_equal(f.c.stats.corrupt, 1);
    assert_int_equal(f.c.stats.laps, 0); /* no lap counted */
    /* Re-attach as after a lap: c = publish, then the next record. */
    expect_none(&f, 1);
    assert_int_equal(f.c.position, 384);
    pub(&f, 4, 128);
    tl_ring_flush(f.p);
    assert_int_equal(poll1(&f, 1, &ev), TL_RING_EV_ATTACHED);
    assert_int_equal(ev.expected, 4); /* 2 and 3 come from the WAL */
    expect_record(&f, 1, 4, 4);
    fx_close(&f);
}

static void test_copy_retry_heals(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    pub(&f, 1, 128);
    pub(&f, 2, 128);
    tl_ring_flush(f.p);
    uint8_t *b = ring_bytes(&f, 100);
    hook_state hs = {.heal_at = 2, .byte = b, .good = *b};
    *b ^= 0x01;
    f.c.on_copy_fail = copy_fail_hook;
    f.c.on_copy_fail_arg = &hs;
    tl_ring_consumer_start_at(&f.c, 0, 1);
    expect_record(&f, 0, 1, 1); /* the third copy verifies */
    assert_int_equal(hs.calls, 2);
    assert_int_equal(f.c.stats.copy_failures, 2);
    assert_int_equal(f.c.stats.copies, 3);
    assert_int_equal(f.c.stats.corrupt, 0);
    expect_record(&f, 1, 2, 2);
    fx_close(&f);
}

static void test_bad_len_word(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    pub(&f, 1, 128);
    pub(&f, 2, 128);
    tl_ring_flush(f.p);
    uint32_t bad[] = {0, 60, 65, 65600, 1u << 31};
    for (size_t i = 0; i < TL_ARRAY_LEN(bad); i++) {
        uint32_t good;
        memcpy(&good, ring_bytes(&f, 40), 4);
        memcpy(ring_bytes(&f, 40), &bad[i], 4);
        tl_ring_consumer_start_at(&f.c, 0, 1);
        tl_ring_event ev;
        assert_int_equal(poll1(&f, 0, &ev), TL_RING_EV_CORRUPT);
        assert_int_equal(ev.reason, TL_RING_CORRUPT_BAD_LEN);
        assert_true(ev.reattach);
        memcpy(ring_bytes(&f, 40), &good, 4);
    }
    /* A len running past the end of the data region. */
    assert_int_equal(f.c.stats.copy_failures, 3 * TL_ARRAY_LEN(bad));
    fx_close(&f);
}

/* Stamp == E but nothing committed (publish <= c): poll again, no failed
 * copy counted. */
static void test_stamp_matches_uncommitted(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    pub(&f, 1, 128);
    tl_ring_flush(f.p); /* publish == 128 == c: still nothing committed at c */
    tl_ring_consumer_start_at(&f.c, 0, 1);
    expect_record(&f, 0, 1, 1);
    mk(f.buf, 2, 128, 0, TL_KIND_HEARTBEAT);
    f.buf[90] ^= 1; /* a stale-looking record that carries seq 2 */
    memcpy(ring_bytes(&f, 128), f.buf, 128);
    for (int i = 0; i < 5; i++)
        expect_none(&f, 1);
    assert_int_equal(f.c.stats.copy_failures, 0);
    assert_int_equal(f.c.stats.corrupt, 0);
    assert_int_equal(f.c.position, 128);
    fx_close(&f);
}

static void test_bad_pad_len(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    uint64_t seq = 1;
    for (int i = 0; i < 15; i++)
        pub(&f, seq++, 65536);
    pub(&f, seq, 65480); /* PAD of 65536 at 983040 */
    const uint64_t pad_pos = 15 * 65536ull;
    /* A PAD with a valid checksum but a len short of the room. */
    mk(f.buf, 16, 65480, 0, TL_KIND_HEARTBEAT);
    tl_rec_meta next = {.parent = 16 * 7919u, .seq = 16, .fence = 3, .ts_ns = 1000016};
    uint8_t *pad = aligned_alloc(8, TL_RING_COPY_BYTES);
    assert_int_equal(tl_rec_encode_pad(pad, TL_RING_COPY_BYTES, 65536 - 64, &next), 65472);
    memcpy(ring_bytes(&f, pad_pos), pad, 65472);
    free(pad);
    tl_ring_consumer_start_at(&f.c, pad_pos, 16);
    set_publish(&f, pad_pos + 8); /* committed in this lap, and c's floor test below */
    tl_ring_event ev;
    assert_int_equal(poll1(&f, 15, &ev), TL_RING_EV_CORRUPT);
    assert_int_equal(ev.reason, TL_RING_CORRUPT_BAD_PAD_LEN);
    assert_string_equal(tl_ring_corrupt_name(ev.reason), "bad_pad_len");
    assert_true(ev.reattach);
    assert_int_equal(ev.position, pad_pos);
    /* It re-attaches at or after the start of the next lap. */
    expect_none(&f, 15);
    assert_int_equal(f.c.position, CAP);
    tl_ring_flush(f.p); /* publish = CAP + 65480 > c */
    assert_int_equal(poll1(&f, 15, &ev), TL_RING_EV_ATTACHED);
    assert_int_equal(ev.position, CAP);
    assert_int_equal(ev.expected, 16);
    expect_record(&f, 15, 16, 16);
    fx_close(&f);
}

/* ---- consumer: step 4 cases ---- */

static void test_replay_rules(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    pub(&f, 1, 128);
    pub_flags(&f, 2, 128, TL_REC_FLAG_REPLAY); /* REPLAY with s' == E: corrupt */
    pub(&f, 3, 128);
    pub_flags(&f, 2, 128, TL_REC_FLAG_REPLAY); /* REPLAY with s' < E: a lower seq */
    pub_flags(&f, 9, 128, TL_REC_FLAG_REPLAY); /* REPLAY with s' > E: corrupt */
    pub(&f, 4, 128);
    tl_ring_flush(f.p);
    tl_ring_consumer_start_at(&f.c, 0, 1);
    expect_record(&f, 0, 1, 1);
    tl_ring_event ev;
    assert_int_equal(poll1(&f, 1, &ev), TL_RING_EV_CORRUPT);
    assert_int_equal(ev.reason, TL_RING_CORRUPT_REPLAY_AHEAD);
    assert_false(ev.reattach);
    assert_int_equal(ev.seq, 2);
    assert_int_equal(f.c.position, 256); /* skipped */
    assert_int_equal(f.c.expected, 2);   /* E unchanged: 2 comes from the WAL */
    /* 3 > E = 2: a jump */
    assert_int_equal(poll1(&f, 1, &ev), TL_RING_EV_RECORD);
    assert_int_equal(ev.seq, 3);
    assert_int_equal(ev.expected, 2);
    assert_int_equal(f.c.expected, 4);
    /* The replayed 2, below E: delivered as a lower seq, REPLAY cleared in
     * the copy (its checksum is the original's). */
    assert_int_equal(poll1(&f, 3, &ev), TL_RING_EV_RECORD);
    assert_int_equal(ev.seq, 2);
    assert_true(ev.replay);
    assert_int_equal(ev.expected, 4);
    assert_int_equal(tl_rec_hdr_of(ev.rec)->flags & TL_REC_FLAG_REPLAY, 0);
    check_content(&ev);
    assert_int_equal(f.c.expected, 4);
    assert_int_equal(poll1(&f, 3, &ev), TL_RING_EV_CORRUPT);
    assert_int_equal(ev.reason, TL_RING_CORRUPT_REPLAY_AHEAD);
    assert_int_equal(ev.seq, 9);
    assert_int_equal(f.c.expected, 4);
    expect_record(&f, 3, 4, 4);
    assert_int_equal(f.c.stats.replays, 1);
    assert_int_equal(f.c.stats.corrupt, 2);
    fx_close(&f);
}

static void test_lower_and_jump(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    uint64_t seqs[] = {1, 2, 3, 2, 4, 7, 8, 5, 9};
    for (size_t i = 0; i < TL_ARRAY_LEN(seqs); i++)
        pub(&f, seqs[i], 64 + 8 * (uint32_t)i);
    tl_ring_consumer_start_at(&f.c, 0, 1);
    /* Without a flush, the first anomaly waits for publish to pass it. */
    expect_record(&f, 0, 1, 1);
    expect_record(&f, 1, 2, 2);
    expect_record(&f, 2, 3, 3);
    expect_none(&f, 3);
    tl_ring_flush(f.p);
    expect_record(&f, 3, 2, 4); /* lower: E stays 4 */
    assert_int_equal(f.c.expected, 4);
    expect_record(&f, 3, 4, 4);
    expect_record(&f, 4, 7, 5); /* jump: 5, 6 from the WAL; E = 8 */
    assert_int_equal(f.c.expected, 8);
    expect_record(&f, 7, 8, 8);
    expect_record(&f, 8, 5, 9); /* lower */
    expect_record(&f, 8, 9, 9);
    expect_none(&f, 9);
    assert_int_equal(f.c.stats.lower_seqs, 2);
    assert_int_equal(f.c.stats.jumps, 1);
    assert_int_equal(f.c.stats.records, 9);
    fx_close(&f);
}

/* A record whose checksum is right but whose fields break wal.md's rules
 * (kind 0 here) is RING_CORRUPT and skipped; the framing is sound. */
static void test_bad_fields_skipped(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    pub(&f, 1, 128);
    mk(f.buf, 2, 128, 0, TL_KIND_INVALID);
    tl_ring_publish(f.p, f.buf, 128);
    pub(&f, 3, 128);
    tl_ring_flush(f.p);
    tl_ring_consumer_start_at(&f.c, 0, 1);
    expect_record(&f, 0, 1, 1);
    tl_ring_event ev;
    assert_int_equal(poll1(&f, 1, &ev), TL_RING_EV_CORRUPT);
    assert_int_equal(ev.reason, TL_RING_CORRUPT_BAD_FIELDS);
    assert_int_equal(ev.rec_err, TL_REC_ERR_KIND);
    assert_false(ev.reattach);
    assert_int_equal(f.c.position, 256);
    expect_record(&f, 1, 3, 2);
    fx_close(&f);
}

/* A position less than 64 bytes before the end is never a record boundary
 * (the PAD rule): one that comes from a scribbled `publish` or a bad saved
 * position is RING_CORRUPT, and the consumer re-attaches at the next lap
 * start instead of reading past the region. */
static void test_bad_position(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    set_publish(&f, CAP - 8);
    tl_ring_event ev;
    assert_int_equal(poll1(&f, 0, &ev), TL_RING_EV_CORRUPT);
    assert_int_equal(ev.reason, TL_RING_CORRUPT_BAD_POSITION);
    assert_string_equal(tl_ring_corrupt_name(ev.reason), "bad_position");
    assert_true(ev.reattach);
    expect_none(&f, 0);
    assert_int_equal(f.c.position, CAP);
    tl_ring_consumer_start_at(&f.c, 3 * CAP - 56, 1);
    assert_int_equal(poll1(&f, 0, &ev), TL_RING_EV_CORRUPT);
    assert_int_equal(ev.reason, TL_RING_CORRUPT_BAD_POSITION);
    assert_int_equal(ev.position, 3 * CAP - 56);
    expect_none(&f, 0);
    assert_int_equal(f.c.position, 3 * CAP);
    fx_close(&f);
}

/* The consumer's stores land at ring.md's offsets. */
static void test_consumer_region(void **state) {
    (void)state;
    fx f;
    fx_open(&f, CAP);
    const uint8_t *b = (const uint8_t *)f.p->ctl;
    uint32_t u32;
    uint64_t u64;
    memcpy(&u32, b + 272, 4);
    assert_int_equal(u32, (uint32_t)getpid()); /* consumer_pid, set at init */
    tl_ring_consumer_beat(&f.m, 123456789);
    memcpy(&u64, b + 264, 8);
    assert_int_equal(u64, 123456789);
    tl_ring_consumer_set_state(&f.m, TL_CONSUMER_HALTED);
    memcpy(&u32, b + 276, 4);
    assert_int_equal(u32, 3);
    tl_ring_consumer_set_wal_seq(&f.m, 0x1122334455ull);
    memcpy(&u64, b + 280, 8);
    assert_int_equal(u64, 0x1122334455ull);
    tl_ring_consumer_start_at(&f.c, 0, 1);
    pub(&f, 1, 96);
    expect_record(&f, 0, 1, 1);
    memcpy(&u64, b + 256, 8);
    assert_int_equal(u64, 96); /* consumer_position */
    tl_ring_beat(f.p, 987654321);
    assert_int_equal(tl_ring_producer_heartbeat(&f.m), 987654321);
    memcpy(&u64, b + 136, 8);
    assert_int_equal(u64, 987654321);
    tl_ring_set_last_seq(f.p, 77);
    memcpy(&u64, b + 144, 8);
    assert_int_equal(u64, 77);
    tl_ring_set_durable(f.p, 5, 1, 4096 + 320);
    memcpy(&u64, b + 160, 8);
    assert_int_equal(u64, 2);
    memcpy(&u64, b + 168, 8);
    assert_int_equal(u64, 5);
    fx_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_header),
        cmocka_unit_test(test_create_rejects),
        cmocka_unit_test(test_shm_name),
        cmocka_unit_test(test_incarnation),
        cmocka_unit_test(test_identity_read_states),
        cmocka_unit_test(test_commit_stamp),
        cmocka_unit_test(test_pad_rule),
        cmocka_unit_test(test_follow_laps),
        cmocka_unit_test(test_publish_cadence),
        cmocka_unit_test(test_first_attach),
        cmocka_unit_test(test_lapped_and_reattach),
        cmocka_unit_test(test_lapped_boundary),
        cmocka_unit_test(test_pad_lap_check),
        cmocka_unit_test(test_copy_retry_then_corrupt),
        cmocka_unit_test(test_copy_retry_heals),
        cmocka_unit_test(test_bad_len_word),
        cmocka_unit_test(test_stamp_matches_uncommitted),
        cmocka_unit_test(test_bad_pad_len),
        cmocka_unit_test(test_replay_rules),
        cmocka_unit_test(test_lower_and_jump),
        cmocka_unit_test(test_bad_fields_skipped),
        cmocka_unit_test(test_bad_position),
        cmocka_unit_test(test_consumer_region),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
