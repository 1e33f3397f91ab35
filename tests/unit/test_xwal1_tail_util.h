/* test_xwal1_tail_util.h: helpers of the xwal1 tailer tests
 * (test_xwal1_tail*.c): live directories built from the fixtures of
 * ../shared/fixtures/quanta-xwal1, the offline verdict of a directory
 * (tl_xwal1_verifier over its files, as `tallyctl wal verify` reads them),
 * and a harness that runs the io_uring tailer over a directory and feeds
 * its events to the shared checks, as the loop does.
 *
 * Included by one test file each; everything is static. */
#ifndef TEST_XWAL1_TAIL_UTIL_H
#define TEST_XWAL1_TAIL_UTIL_H

#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/assert.h"
#include "core/xwal1.h"
#include "io/xwal1_tail.h"

#define XT_UNUSED __attribute__((unused))

#define XT_MAX_FINDINGS 256u
#define XT_MAX_EVENTS   4096u
#define XT_MAX_FRAMES   64u
#define XT_SYMBOLS      4u
#define XT_WINDOW       1024u

/* ---- time ---- */

XT_UNUSED static uint64_t xt_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

XT_UNUSED static void xt_sleep_us(unsigned us) {
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

/* ---- fixture segments and frames ---- */

typedef struct xt_seg {
    uint64_t index;
    uint8_t *bytes;
    size_t len;
    size_t n_frames;
    size_t off[XT_MAX_FRAMES]; /* frame offsets (the magic is [0, 7)) */
    size_t flen[XT_MAX_FRAMES];
} xt_seg;

typedef struct xt_log {
    xt_seg segs[32];
    size_t n;
} xt_log;

/* Frames of a clean segment, by the walker. */
XT_UNUSED static void xt_frames(xt_seg *s) {
    tl_xwal1_walker w;
    tl_xwal1_walker_init(&w, s->bytes, s->len, 0, true);
    s->n_frames = 0;
    for (;;) {
        tl_xwal1_frame fr;
        enum tl_xwal1_err err;
        if (tl_xwal1_walker_next(&w, &fr, &err) != TL_XWAL1_FRAME)
            break;
        assert_true(s->n_frames < XT_MAX_FRAMES);
        s->off[s->n_frames] = fr.offset;
        s->flen[s->n_frames] = fr.frame_len;
        s->n_frames++;
    }
}

XT_UNUSED static void xt_load(xt_log *l, const char *scenario) {
    memset(l, 0, sizeof *l);
    for (int i = 1; i < 32; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "fixtures/quanta-xwal1/%s/wal/segment-%06d.wal", scenario, i);
        const char *path = tu_shared(rel);
        if (access(path, R_OK) != 0)
            break;
        xt_seg *s = &l->segs[l->n++];
        s->index = (uint64_t)i;
        s->bytes = tu_read_file(path, &s->len);
        xt_frames(s);
    }
    assert_true(l->n > 0);
}

XT_UNUSED static void xt_free(xt_log *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->segs[i].bytes);
    l->n = 0;
}

/* The same symbol under another name (same length), crcs fixed. */
XT_UNUSED static void xt_rename(xt_seg *s, const char *from, const char *to) {
    size_t n = strlen(from);
    assert_int_equal(n, strlen(to));
    for (size_t k = 0; k < s->n_frames; k++) {
        uint8_t *p = s->bytes + s->off[k] + 4;
        uint32_t len = (uint32_t)(s->flen[k] - 8);
        for (size_t i = 0; i + n <= len; i++) {
            if (memcmp(p + i, from, n) == 0)
                memcpy(p + i, to, n);
        }
        uint32_t c = (uint32_t)crc32(0, p, len);
        memcpy(p + len, &c, 4);
    }
}

/* ---- files ---- */

XT_UNUSED static void xt_seg_path(char *out, size_t cap, const char *dir, uint64_t index) {
    char name[32];
    assert_true(tl_xwal1_segment_name(name, sizeof name, index) != 0);
    snprintf(out, cap, "%s/%s", dir, name);
}

/* Appends bytes to segment `index` of dir (created if needed), fsynced as
 * upstream's writer does for each record. */
XT_UNUSED static void xt_append(const char *dir, uint64_t index, const void *buf, size_t n) {
    char path[512];
    xt_seg_path(path, sizeof path, dir, index);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
    assert_int_equal(fsync(fd), 0);
    close(fd);
}

XT_UNUSED static void xt_write_seg(const char *dir, uint64_t index, const void *buf, size_t n) {
    char path[512];
    xt_seg_path(path, sizeof path, dir, index);
    tu_write_file(path, buf, n);
}

XT_UNUSED static void xt_write_log(const char *dir, const xt_log *l) {
    for (size_t i = 0; i < l->n; i++)
        xt_write_seg(dir, l->segs[i].index, l->segs[i].bytes, l->segs[i].len);
}

/* Removes a tu_tmpdir directory and frees its name. */
XT_UNUSED static void xt_rmdir(char *dir) {
    tu_rm_rf(dir);
    free(dir);
}

/* ---- findings ---- */

typedef struct xt_findings {
    tl_finding f[XT_MAX_FINDINGS];
    size_t n;
    uint64_t next_id;
} xt_findings;

/* Numbers findings in detection order, as the verifier and the loop do. */
XT_UNUSED static void xt_collect(void *ctx, const tl_finding *f) {
    xt_findings *r = ctx;
    assert_true(r->n < XT_MAX_FINDINGS);
    tl_finding c = *f;
    c.id = ++r->next_id;
    c.dialect = TL_DIALECT_XWAL1;
    c.detect_ns = 0;
    c.incident = 0;
    r->f[r->n++] = c;
}

XT_UNUSED static void xt_print(const char *who, const xt_findings *r) {
    for (size_t i = 0; i < r->n; i++) {
        char buf[1024];
        tl_finding_json(&r->f[i], buf, sizeof buf);
        print_message("  %s %s\n", who, buf);
    }
}

/* Same findings, member for member. */
XT_UNUSED static void xt_expect_same(const xt_findings *live, const xt_findings *off) {
    if (live->n != off->n) {
        xt_print("live", live);
        xt_print("offline", off);
    }
    assert_int_equal(live->n, off->n);
    for (size_t i = 0; i < live->n; i++) {
        if (memcmp(&live->f[i], &off->f[i], sizeof live->f[i]) != 0) {
            xt_print("live", live);
            xt_print("offline", off);
            fail_msg("finding %zu differs", i);
        }
    }
}

/* ---- the offline verdict of a directory ---- */

typedef struct xt_offline {
    xt_findings fs;
    tl_xwal1_summary sum;
} xt_offline;

XT_UNUSED static int xt_cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every segment file of dir, in index order, through tl_xwal1_verifier (the
 * last one newest), as tallyctl wal verify --dialect xwal1 reads them. */
XT_UNUSED static void xt_offline_dir(const char *dir, xt_offline *o) {
    memset(o, 0, sizeof *o);
    uint64_t idx[256];
    size_t n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t i;
        if (tl_xwal1_segment_name_parse(de->d_name, strlen(de->d_name), &i)) {
            assert_true(n < 256);
            idx[n++] = i;
        }
    }
    closedir(d);
    qsort(idx, n, sizeof idx[0], xt_cmp_u64);
    tl_xwal1_verify_cfg cfg = {XT_SYMBOLS, XT_WINDOW, false};
    size_t bytes = tl_xwal1_verifier_bytes(&cfg);
    void *mem = tu_aligned(64, bytes);
    tl_xwal1_verifier *v = malloc(sizeof *v);
    assert_non_null(v);
    assert_true(tl_xwal1_verifier_init(v, &cfg, mem, bytes, (tl_sink){xt_collect, &o->fs}));
    for (size_t k = 0; k < n; k++) {
        char path[512];
        xt_seg_path(path, sizeof path, dir, idx[k]);
        size_t len;
        uint8_t *b = tu_read_file(path, &len);
        tl_xwal1_verifier_segment(v, idx[k], b, len, k + 1 == n);
        free(b);
    }
    o->sum = *tl_xwal1_verifier_summary(v);
    free(v);
    free(mem);
}

/* ---- the live harness ---- */

/* An event as the loop saw it (the view's pointers do not outlive a poll). */
typedef struct xt_ev {
    uint8_t type;
    uint8_t rule;
    uint16_t reason;
    tl_loc loc;
    uint64_t seq;
    uint64_t checksum;
    uint64_t parent;
    uint64_t fence;
    uint64_t first_event;
    uint32_t n_events;
    uint32_t symbol;
    uint16_t kind;
    uint8_t mode; /* MODE_CHANGE: the body's mode */
    char name[TL_SYMBOL_NAME_MAX + 1];
} xt_ev;

typedef struct xt_live {
    tl_xwal1_tailer *t;
    tl_xwal1_checks checks;
    void *mem;
    xt_findings fs;
    xt_ev *ev; /* [XT_MAX_EVENTS] */
    size_t n_ev;
    size_t records, corrupt, tentative, caught_up, segments;
} xt_live;

XT_UNUSED static void xt_cfg(tl_xwal1_tail_cfg *c, const char *dir) {
    tl_xwal1_tail_cfg_default(c);
    c->dir = dir;
    c->max_symbols = XT_SYMBOLS;
    c->torn_grace_ms = 150;
}

XT_UNUSED static void xt_live_open_cfg(xt_live *x, const tl_xwal1_tail_cfg *c) {
    memset(x, 0, sizeof *x);
    tl_wal_ioerr e;
    assert_int_equal(tl_xwal1_tail_open(&x->t, c, &e), TL_WAL_OK);
    size_t bytes = tl_xwal1_checks_bytes(XT_SYMBOLS, XT_WINDOW);
    x->mem = tu_aligned(64, bytes);
    assert_true(tl_xwal1_checks_init(&x->checks, XT_SYMBOLS, XT_WINDOW, x->mem, bytes,
                                     (tl_sink){xt_collect, &x->fs}));
    x->ev = calloc(XT_MAX_EVENTS, sizeof *x->ev);
    assert_non_null(x->ev);
}

XT_UNUSED static void xt_live_open(xt_live *x, const char *dir) {
    tl_xwal1_tail_cfg c;
    xt_cfg(&c, dir);
    xt_live_open_cfg(x, &c);
}

XT_UNUSED static void xt_live_close(xt_live *x) {
    tl_xwal1_tail_close(x->t);
    free(x->mem);
    free(x->ev);
    memset(x, 0, sizeof *x);
}

/* One event into the checks, as core/loop.c's xwal1 path does. */
XT_UNUSED static void xt_feed(xt_live *x, const tl_wal_ev *ev) {
    assert_true(x->n_ev < XT_MAX_EVENTS);
    xt_ev *e = &x->ev[x->n_ev++];
    memset(e, 0, sizeof *e);
    e->type = ev->type;
    e->rule = ev->rule;
    e->reason = ev->reason;
    e->loc = ev->loc;
    e->seq = ev->type == TL_WAL_EV_RECORD ? ev->view.seq : ev->seq;
    e->checksum = ev->type == TL_WAL_EV_RECORD ? ev->view.checksum : ev->checksum;
    switch (ev->type) {
        case TL_WAL_EV_SEGMENT:
            assert_null(ev->hdr);
            assert_true(ev->name_first_seq == ev->loc.segment && ev->loc.offset == 0);
            x->segments++;
            tl_xwal1_checks_segment(&x->checks, ev->name_first_seq);
            break;
        case TL_WAL_EV_RECORD: {
            x->records++;
            e->parent = ev->view.parent;
            e->fence = ev->view.fence;
            e->n_events = ev->view.n_events;
            e->first_event = ev->view.event_seqs[0];
            e->symbol = ev->view.symbol;
            e->kind = ev->view.kind;
            assert_non_null(ev->symbol_name);
            snprintf(e->name, sizeof e->name, "%s", ev->symbol_name);
            if (ev->view.kind == TL_KIND_MODE_CHANGE) {
                tl_body_mode_change b;
                assert_true(ev->view.body_len == sizeof b);
                memcpy(&b, ev->view.body, sizeof b);
                e->mode = (uint8_t)b.mode;
            } else {
                assert_null(ev->view.body);
            }
            tl_stream_result r;
            assert_true(tl_xwal1_checks_record(&x->checks, &ev->view, &ev->loc, &r));
            break;
        }
        case TL_WAL_EV_CORRUPT:
            x->corrupt++;
            tl_xwal1_checks_corrupt(&x->checks, (enum tl_rule)ev->rule, ev->reason, ev->loc.segment,
                                    ev->loc.offset, ev->checksum);
            break;
        case TL_WAL_EV_TENTATIVE:
            x->tentative++;
            break;
        case TL_WAL_EV_CAUGHT_UP:
            x->caught_up++;
            break;
        default:
            fail_msg("event type %u", ev->type);
    }
}

typedef bool (*xt_until)(const xt_live *x, const void *arg);

/* Polls the tailer (backoff idling) until `until` holds; fails after
 * timeout_ms. */
XT_UNUSED static void xt_drive(xt_live *x, xt_until until, const void *arg, uint64_t timeout_ms) {
    uint64_t end = xt_now_ms() + timeout_ms;
    unsigned idle = 0;
    while (!until(x, arg)) {
        tl_wal_ev ev;
        if (tl_xwal1_tail_poll(x->t, &ev)) {
            xt_feed(x, &ev);
            idle = 0;
            continue;
        }
        if (xt_now_ms() > end) {
            tl_xwal1_tail_stats s;
            tl_xwal1_tail_get_stats(x->t, &s);
            fail_msg("timed out: state %s segment %llu offset %llu records %zu events %zu",
                     tl_xwal1_tail_state_name((enum tl_xwal1_tail_state)s.state),
                     (unsigned long long)s.segment, (unsigned long long)s.offset, x->records,
                     x->n_ev);
        }
        if (++idle > 16)
            xt_sleep_us(50);
    }
}

/* Polls for ms milliseconds, whatever comes. */
XT_UNUSED static void xt_drive_for(xt_live *x, uint64_t ms) {
    uint64_t end = xt_now_ms() + ms;
    while (xt_now_ms() < end) {
        tl_wal_ev ev;
        if (tl_xwal1_tail_poll(x->t, &ev))
            xt_feed(x, &ev);
        else
            xt_sleep_us(50);
    }
}

XT_UNUSED static bool xt_until_caught_up(const xt_live *x, const void *arg) {
    (void)arg;
    return x->caught_up > 0 && x->n_ev > 0 && x->ev[x->n_ev - 1].type == TL_WAL_EV_CAUGHT_UP;
}

/* CAUGHT_UP with at least *(size_t *)arg records seen. */
XT_UNUSED static bool xt_until_records(const xt_live *x, const void *arg) {
    return x->records >= *(const size_t *)arg && xt_until_caught_up(x, NULL);
}

XT_UNUSED static bool xt_until_corrupt(const xt_live *x, const void *arg) {
    return x->corrupt >= *(const size_t *)arg;
}

XT_UNUSED static bool xt_until_tentative(const xt_live *x, const void *arg) {
    return x->tentative >= *(const size_t *)arg;
}

XT_UNUSED static size_t xt_count(const xt_live *x, uint8_t type) {
    size_t n = 0;
    for (size_t i = 0; i < x->n_ev; i++)
        n += x->ev[i].type == type;
    return n;
}

/* The last event of a type, or NULL. */
XT_UNUSED static const xt_ev *xt_last(const xt_live *x, uint8_t type) {
    for (size_t i = x->n_ev; i > 0; i--) {
        if (x->ev[i - 1].type == type)
            return &x->ev[i - 1];
    }
    return NULL;
}

XT_UNUSED static unsigned xt_reason(enum tl_xwal1_err e) {
    return TL_REASON_XWAL1_BASE + (unsigned)e;
}

#endif
