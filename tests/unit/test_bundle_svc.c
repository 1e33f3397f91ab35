/* test_bundle_svc.c: tallyd's bundle export service (admin/bundle.h): its
 * worker makes what is submitted; two automatic requests of one incident
 * make one bundle that covers both, or two; a burst of SEV1 requests larger
 * than the job table loses none (each request's incident and range end up
 * in a finished bundle); GET /bundle/{id} progress; the ledger history taken
 * from the ledger queue; one metrics scrape per export from the control
 * thread; a bad signing key refuses to start. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin/bundle.h"
#include "admin/config.h"
#include "test_bundle_fixture.h"

typedef struct sctx {
    bfx x;
    tl_config cfg;
    char config_path[600];
    tl_bundle_svc *svc;
    uint32_t scrapes;
} sctx;

static size_t render(void *c, char *buf, size_t cap) {
    sctx *s = c;
    s->scrapes++;
    return (size_t)snprintf(buf, cap, "tally_up 1\n");
}

static int setup(void **state) {
    sctx *s = calloc(1, sizeof *s);
    bfx_setup(&s->x, "bundlesvc", 3000, 128u << 10);
    bfx_audit(&s->x, 3, 1500);
    tl_config_defaults(&s->cfg);
    snprintf(s->cfg.engine_wal_dir, sizeof s->cfg.engine_wal_dir, "%s", s->x.wal);
    s->cfg.engine_ring[0] = '\0';
    snprintf(s->cfg.state_dir, sizeof s->cfg.state_dir, "%s", s->x.state);
    snprintf(s->cfg.bundle_dir, sizeof s->cfg.bundle_dir, "%s", s->x.out);
    snprintf(s->cfg.bundle_signing_key, sizeof s->cfg.bundle_signing_key, "%s", s->x.key);
    snprintf(s->config_path, sizeof s->config_path, "%s/tally.json", s->x.root);
    const char *cfg = "{\"keys\":{\"sidecar\":\"/S3CRET\"}}";
    tu_write_file(s->config_path, cfg, strlen(cfg));
    tl_bundle_svc_cfg sc = {.cfg = &s->cfg,
                            .config_path = s->config_path,
                            .dialect = TL_DIALECT_TLYWAL1,
                            .avoid_cpu = -1};
    char err[256];
    assert_int_equal(tl_bundle_svc_start(&s->svc, &sc, err, sizeof err), 0);
    *state = s;
    return 0;
}

static int teardown(void **state) {
    sctx *s = *state;
    tl_bundle_svc_stop(s->svc);
    bfx_teardown(&s->x);
    free(s);
    return 0;
}

static uint64_t now_real(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct finished {
    uint32_t n;
    tl_bundle_event ev[64];
} finished;

/* The control thread's part: serve scrapes, collect finished exports until
 * `want` have ended (at most 120 s). */
static void drive(sctx *s, finished *f, uint32_t want) {
    for (int i = 0; i < 120000 && f->n < want; i++) {
        tl_bundle_serve(s->svc, render, s);
        tl_bundle_event ev;
        while (tl_bundle_poll_event(s->svc, &ev))
            if (ev.phase == TL_BUNDLE_PH_DONE || ev.phase == TL_BUNDLE_PH_FAILED)
                if (f->n < 64)
                    f->ev[f->n++] = ev;
        usleep(1000);
    }
    assert_int_equal(f->n, want);
}

static const tl_bundle_event *by_id(const finished *f, const char *id) {
    for (uint32_t i = 0; i < f->n; i++)
        if (strcmp(f->ev[i].job.id, id) == 0)
            return &f->ev[i];
    return NULL;
}

static void test_request_and_progress(void **state) {
    sctx *s = *state;
    tl_bundle_ask q = {.origin = TL_BUNDLE_REQUEST, .incident = 3, .from_seq = 100, .to_seq = 900};
    char id[TL_BUNDLE_ID_MAX], path[TL_BUNDLE_PATH_MAX];
    assert_int_equal(tl_bundle_submit(s->svc, &q, now_real(), id, path), 0);
    assert_non_null(strstr(path, s->x.out));
    assert_non_null(strstr(path, "-inc3-"));
    finished f = {0};
    uint32_t scrapes_before = s->scrapes;
    drive(s, &f, 1);
    const tl_bundle_event *e = by_id(&f, id);
    assert_non_null(e);
    assert_int_equal(e->phase, TL_BUNDLE_PH_DONE);
    assert_string_equal(e->res.path, path);
    assert_int_equal(s->scrapes, scrapes_before + 1);
    assert_false(e->res.degraded & (1u << TL_BUNDLE_DEG_METRICS));
    assert_false(e->res.degraded & (1u << TL_BUNDLE_DEG_CONFIG));
    tl_bundle_status st;
    assert_true(tl_bundle_status_get(s->svc, id, &st));
    assert_string_equal(st.state, "done");
    assert_int_equal(st.percent, 100);
    assert_string_equal(st.path, path);
    assert_true(st.bytes_done > 0 && st.bytes_done <= st.bytes_total + (1u << 20));
    assert_true(st.finished_real_ns >= st.started_real_ns && st.started_real_ns != 0);
    assert_false(tl_bundle_status_get(s->svc, "bnope", &st));
    tl_bundle_verify_opts o = {.pubkey_path = s->x.pub, .tmp_dir = s->x.root};
    tl_bundle_report r;
    assert_int_equal(tl_bundle_verify(path, &o, &r), TL_BV_OK);
    assert_int_equal(r.divergent_seq, 1500);
}

static void test_burst_loses_nothing(void **state) {
    sctx *s = *state;
    enum { N = 48 }; /* more than TL_BUNDLE_JOBS */
    char ids[N][TL_BUNDLE_ID_MAX];
    tl_bundle_ask qs[N];
    for (int i = 0; i < N; i++) {
        /* incidents 10..33, two requests each, the second wider */
        qs[i] = (tl_bundle_ask){.origin = TL_BUNDLE_AUTO,
                                .incident = 10 + (uint64_t)(i % 24),
                                .from_seq = 10 + (uint64_t)i,
                                .to_seq = 200 + 10 * (uint64_t)i};
        char path[TL_BUNDLE_PATH_MAX];
        assert_true(tl_bundle_submit(s->svc, &qs[i], now_real(), ids[i], path) >= 0);
    }
    /* how many distinct jobs: wait for each to end */
    uint32_t distinct = 0;
    for (int i = 0; i < N; i++) {
        bool seen = false;
        for (int k = 0; k < i; k++)
            seen |= strcmp(ids[k], ids[i]) == 0;
        distinct += !seen;
    }
    assert_true(distinct <= N);
    finished f = {0};
    drive(s, &f, distinct);
    /* every request: its bundle was made, names its incident, covers its range */
    for (int i = 0; i < N; i++) {
        const tl_bundle_event *e = by_id(&f, ids[i]);
        assert_non_null(e);
        assert_int_equal(e->phase, TL_BUNDLE_PH_DONE);
        bool named = false;
        for (uint32_t k = 0; k < e->job.n_incidents; k++)
            named |= e->job.incidents[k] == qs[i].incident;
        assert_true(named || e->job.incidents_merged > 0);
        assert_true(e->job.from_seq <= qs[i].from_seq);
        assert_true(e->job.to_seq >= qs[i].to_seq);
    }
    tl_bundle_counts c;
    tl_bundle_counts_get(s->svc, &c);
    assert_int_equal(c.running, 0);
    assert_true(c.done >= distinct);
}

static void test_ledger_history(void **state) {
    sctx *s = *state;
    tl_spsc q;
    assert_int_equal(tl_spsc_init(&q, 8, sizeof(tl_ledger_wm)), 0);
    static tl_ledger_wm wm;
    for (int i = 0; i < 5; i++) {
        uint64_t head = atomic_load(&q.head);
        memset(&wm, 0, sizeof wm);
        wm.poll_id = (uint64_t)i + 1;
        wm.ledger_seq = 1000 + (uint64_t)i;
        assert_true(tl_spsc_push(&q, &wm));
        tl_bundle_note_ledger(s->svc, &q, head);
        void *front = tl_spsc_front(&q); /* the loop takes it */
        assert_non_null(front);
        tl_spsc_release(&q);
    }
    tl_bundle_ask a = {.origin = TL_BUNDLE_REQUEST, .from_seq = 1, .to_seq = 50};
    char id[TL_BUNDLE_ID_MAX], path[TL_BUNDLE_PATH_MAX];
    assert_int_equal(tl_bundle_submit(s->svc, &a, now_real(), id, path), 0);
    finished f = {0};
    drive(s, &f, 1);
    size_t len;
    /* extract the ledger file with tar and count its lines */
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "tar --zstd -xOf '%s' ledger/watermarks.jsonl | grep -c ledger_seq",
             path);
    FILE *p = popen(cmd, "r");
    int lines = 0;
    assert_int_equal(fscanf(p, "%d", &lines), 1);
    pclose(p);
    assert_int_equal(lines, 5);
    (void)len;
    tl_spsc_destroy(&q);
}

static void test_bad_key_refused(void **state) {
    sctx *s = *state;
    tl_config c = s->cfg;
    snprintf(c.bundle_signing_key, sizeof c.bundle_signing_key, "%s", s->x.pub); /* public */
    tl_bundle_svc_cfg sc = {.cfg = &c, .config_path = s->config_path, .avoid_cpu = -1};
    tl_bundle_svc *svc = NULL;
    char err[256];
    assert_int_equal(tl_bundle_svc_start(&svc, &sc, err, sizeof err), -1);
    assert_null(svc);
    assert_non_null(strstr(err, "bundle.signing_key"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_and_progress),
        cmocka_unit_test(test_burst_loses_nothing),
        cmocka_unit_test(test_ledger_history),
        cmocka_unit_test(test_bad_key_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
