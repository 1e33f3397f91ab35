/* bundle_svc.c: tallyd's bundle export service (see bundle.h).
 *
 * One worker thread at the lowest priority runs exports one at a time from
 * a table of TL_BUNDLE_JOBS jobs (queued, running, finished; the finished
 * ones are kept for GET /bundle/{id} until their slot is needed). The
 * control thread submits, reads progress, drains events, keeps the ledger
 * history and answers the worker's one metrics scrape per export. They
 * share this state under one mutex; neither is the hot loop, which never
 * sees any of it.
 */
#include "bundle_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "admin/redact.h"
#include "core/assert.h"

#define SVC_EVENTS         (2u * TL_BUNDLE_JOBS)
#define SVC_SCRAPE_WAIT_MS 2000u

typedef struct job_slot {
    bool used;
    uint8_t state; /* enum tl_bundle_phase: QUEUED, RUNNING (= SETTLING..WRITING), DONE, FAILED */
    bool running;
    uint64_t order; /* submit order */
    tl_bundle_job job;
    tl_bundle_progress prog;
    tl_bundle_result res;
    uint64_t started_real_ns;
    uint64_t finished_real_ns;
} job_slot;

struct tl_bundle_svc {
    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* the worker: a job was queued, or stop */
    pthread_cond_t scrape_cv; /* the worker: its scrape is ready */
    pthread_t thread;
    bool started;
    bool stop;
    job_slot jobs[TL_BUNDLE_JOBS];
    uint64_t next_order;
    uint64_t rng;
    /* events for the control thread, a ring */
    tl_bundle_event *events; /* SVC_EVENTS */
    uint32_t ev_head;
    uint32_t ev_count;
    uint64_t ev_dropped;
    /* ledger replies, a ring of TL_BUNDLE_LEDGER_KEEP */
    tl_ledger_wm *ledger;
    uint32_t ledger_next;
    uint32_t ledger_count;
    /* the worker's metrics scrape */
    uint64_t scrape_want;
    uint64_t scrape_done;
    char *scrape_buf; /* TL_BUNDLE_METRICS_MAX */
    size_t scrape_len;
    /* counters */
    tl_bundle_counts counts;
    /* what exports read */
    tl_bundle_env env;
    char dir[TL_CFG_PATH_MAX + 16];
    char audit_dir[TL_CFG_PATH_MAX + 16];
    tl_redact_out red;
    EVP_PKEY *key;
    int avoid_cpu;
};

static uint64_t real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the worker ---- */

/* SCHED_IDLE (runs only when a CPU has nothing else), nice 19, the idle I/O
 * class, and never the hot loop's CPU. Each is best effort: a refusal leaves
 * the export slower to yield, never wrong. */
static void lower_priority(int avoid_cpu) {
    struct sched_param sp;
    memset(&sp, 0, sizeof sp);
    (void)sched_setscheduler(0, SCHED_IDLE, &sp); /* 0: this thread (Linux) */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
#ifdef SYS_ioprio_set
    /* IOPRIO_WHO_PROCESS = 1 (0: this thread), IOPRIO_CLASS_IDLE = 3 << 13 */
    (void)syscall(SYS_ioprio_set, 1, 0, 3 << 13);
#endif
    if (avoid_cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1 &&
            CPU_ISSET(avoid_cpu, &set)) {
            CPU_CLR(avoid_cpu, &set);
            (void)sched_setaffinity(0, sizeof set, &set);
        }
    }
}

static void push_event(tl_bundle_svc *s, const job_slot *j, uint8_t phase) {
    if (s->ev_count == SVC_EVENTS) {
        /* The control thread drains every pass; a full ring means it has
         * stopped. Keep the newest. */
        s->ev_head = (s->ev_head + 1) % SVC_EVENTS;
        s->ev_count--;
        s->ev_dropped++;
    }
    tl_bundle_event *e = &s->events[(s->ev_head + s->ev_count) % SVC_EVENTS];
    e->phase = phase;
    e->job = j->job;
    e->res = j->res;
    s->ev_count++;
}

static job_slot *oldest_queued(tl_bundle_svc *s) {
    job_slot *best = NULL;
    for (unsigned i = 0; i < TL_BUNDLE_JOBS; i++) {
        job_slot *j = &s->jobs[i];
        if (j->used && j->state == TL_BUNDLE_PH_QUEUED && (best == NULL || j->order < best->order))
            best = j;
    }
    return best;
}

static void *worker(void *arg) {
    tl_bundle_svc *s = arg;
    lower_priority(s->avoid_cpu);
    tl_bundle_job job;
    tl_bundle_result *res = malloc(sizeof *res);
    pthread_mutex_lock(&s->mu);
    while (!s->stop && res != NULL) {
        job_slot *j = oldest_queued(s);
        if (j == NULL) {
            pthread_cond_wait(&s->work_cv, &s->mu);
            continue;
        }
        j->state = TL_BUNDLE_PH_SETTLING;
        /* Relaxed, like every progress figure: GET /bundle/{id} must not
         * show a running job as "queued" before the export sets its phase. */
        atomic_store_explicit(&j->prog.phase, TL_BUNDLE_PH_SETTLING, memory_order_relaxed);
        j->running = true;
        j->started_real_ns = real_ns();
        s->counts.running = 1;
        push_event(s, j, TL_BUNDLE_PH_SETTLING);
        job = j->job; /* a running job is never widened: the copy is the job */
        pthread_mutex_unlock(&s->mu);

        tl_bundle_export(&s->env, &job, &j->prog, res);

        pthread_mutex_lock(&s->mu);
        j->res = *res;
        j->running = false;
        j->state = res->err == TL_BUNDLE_OK ? TL_BUNDLE_PH_DONE : TL_BUNDLE_PH_FAILED;
        j->finished_real_ns = real_ns();
        s->counts.running = 0;
        if (res->err == TL_BUNDLE_OK) {
            s->counts.done++;
            if (res->degraded != 0)
                s->counts.degraded++;
        } else {
            s->counts.failed++;
        }
        push_event(s, j, j->state);
    }
    pthread_mutex_unlock(&s->mu);
    free(res);
    return NULL;
}

/* The worker's metrics source: asks the control thread, waits at most
 * SVC_SCRAPE_WAIT_MS. */
static size_t metrics_hook(void *ctx, char *buf, size_t cap) {
    tl_bundle_svc *s = ctx;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += SVC_SCRAPE_WAIT_MS / 1000;
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    uint64_t gen = ++s->scrape_want;
    int rc = 0;
    /* Bounded by the deadline. */
    while (s->scrape_done < gen && !s->stop && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->scrape_cv, &s->mu, &dl);
    if (s->scrape_done == gen && s->scrape_len > 0) {
        n = s->scrape_len < cap ? s->scrape_len : cap;
        memcpy(buf, s->scrape_buf, n);
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

static uint32_t ledger_hook(void *ctx, tl_ledger_wm *out, uint32_t max) {
    tl_bundle_svc *s = ctx;
    pthread_mutex_lock(&s->mu);
    uint32_t n = s->ledger_count < max ? s->ledger_count : max;
    uint32_t first =
        (s->ledger_next + TL_BUNDLE_LEDGER_KEEP - s->ledger_count) % TL_BUNDLE_LEDGER_KEEP;
    first = (first + (s->ledger_count - n)) % TL_BUNDLE_LEDGER_KEEP; /* the newest n */
    for (uint32_t i = 0; i < n; i++)
        out[i] = s->ledger[(first + i) % TL_BUNDLE_LEDGER_KEEP];
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- start and stop ---- */

static int read_config(tl_bundle_svc *s, const char *path) {
    if (path == NULL || path[0] == '\0')
        return -1;
    size_t len = 0;
    char *text = bundle_read_file(path, TL_REDACT_INPUT_MAX, &len);
    if (text == NULL)
        return -1;
    char err[128];
    int rc = tl_redact_config(text, len, &s->red, err, sizeof err);
    /* The unredacted text leaves memory at once. */
    memset(text, 0, len);
    free(text);
    return rc;
}

int tl_bundle_svc_start(tl_bundle_svc **out, const tl_bundle_svc_cfg *c, char *err, size_t cap) {
    *out = NULL;
    tl_bundle_svc *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, cap, "bundle: out of memory");
        return -1;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pthread_cond_init(&s->scrape_cv, NULL);
    s->avoid_cpu = c->avoid_cpu;
    s->events = calloc(SVC_EVENTS, sizeof *s->events);
    s->ledger = calloc(TL_BUNDLE_LEDGER_KEEP, sizeof *s->ledger);
    s->scrape_buf = malloc(TL_BUNDLE_METRICS_MAX);
    if (s->events == NULL || s->ledger == NULL || s->scrape_buf == NULL ||
        getrandom(&s->rng, sizeof s->rng, 0) != sizeof s->rng) {
        snprintf(err, cap, "bundle: out of memory");
        tl_bundle_svc_stop(s);
        return -1;
    }
    s->rng |= 1;
    const tl_config *cfg = c->cfg;
    if (cfg->bundle_dir[0] != '\0')
        snprintf(s->dir, sizeof s->dir, "%s", cfg->bundle_dir);
    else
        snprintf(s->dir, sizeof s->dir, "%s/bundles", cfg->state_dir);
    snprintf(s->audit_dir, sizeof s->audit_dir, "%s/audit", cfg->state_dir);
    if (cfg->bundle_signing_key[0] != '\0') {
        s->key = tl_bundle_key_load(cfg->bundle_signing_key, err, cap);
        if (s->key == NULL) {
            tl_bundle_svc_stop(s);
            return -1;
        }
    }
    bool have_config = read_config(s, c->config_path) == 0;
    s->env = (tl_bundle_env){
        .dir = s->dir,
        .wal_dir = cfg->engine_wal_dir,
        .dialect = c->dialect,
        .ring_name = cfg->engine_ring,
        .snapshot_dir = cfg->bundle_snapshot_dir,
        .audit_dir = s->audit_dir,
        .config_text = have_config ? s->red.json : NULL,
        .config_len = have_config ? s->red.json_len : 0,
        .redactions_text = have_config ? s->red.list : NULL,
        .redactions_len = have_config ? s->red.list_len : 0,
        .key = s->key,
        .zstd_level = 3,
        .zstd_threads = 1,
        .settle_ms = TL_BUNDLE_SETTLE_MS,
        .metrics = metrics_hook,
        .metrics_ctx = s,
        .ledger = ledger_hook,
        .ledger_ctx = s,
    };
    /* What a crash left behind: never a bundle, only its pieces. */
    (void)tl_bundle_clean_dir(s->dir);
    if (pthread_create(&s->thread, NULL, worker, s) != 0) {
        snprintf(err, cap, "bundle: cannot start the worker thread");
        tl_bundle_svc_stop(s);
        return -1;
    }
    s->started = true;
    *out = s;
    return 0;
}

void tl_bundle_svc_stop(tl_bundle_svc *s) {
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    for (unsigned i = 0; i < TL_BUNDLE_JOBS; i++)
        if (s->jobs[i].running)
            atomic_store_explicit(&s->jobs[i].prog.cancel, true, memory_order_relaxed);
    pthread_cond_broadcast(&s->work_cv);
    pthread_cond_broadcast(&s->scrape_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started)
        pthread_join(s->thread, NULL);
    tl_bundle_key_free(s->key);
    tl_redact_free(&s->red);
    free(s->scrape_buf);
    free(s->ledger);
    free(s->events);
    pthread_cond_destroy(&s->scrape_cv);
    pthread_cond_destroy(&s->work_cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- the control thread ---- */

static bool has_incident(const tl_bundle_job *j, uint64_t inc) {
    for (uint32_t i = 0; i < j->n_incidents; i++)
        if (j->incidents[i] == inc)
            return true;
    return false;
}

static void widen(tl_bundle_job *j, const tl_bundle_ask *q, uint64_t window_from) {
    if (q->from_seq < j->from_seq)
        j->from_seq = q->from_seq;
    if (q->to_seq > j->to_seq)
        j->to_seq = q->to_seq;
    if (window_from < j->window_from_real_ns)
        j->window_from_real_ns = window_from;
    if (q->incident != 0 && !has_incident(j, q->incident)) {
        if (j->n_incidents < TL_BUNDLE_INCIDENTS)
            j->incidents[j->n_incidents++] = q->incident;
        else
            j->incidents_merged++;
    }
}

static void answer(const tl_bundle_svc *s, const job_slot *j, char id[TL_BUNDLE_ID_MAX],
                   char path[TL_BUNDLE_PATH_MAX]) {
    snprintf(id, TL_BUNDLE_ID_MAX, "%s", j->job.id);
    snprintf(path, TL_BUNDLE_PATH_MAX, "%s/%s", s->dir, j->job.name);
}

int tl_bundle_submit(tl_bundle_svc *s, const tl_bundle_ask *q, uint64_t now_real_ns,
                     char id_out[TL_BUNDLE_ID_MAX], char path_out[TL_BUNDLE_PATH_MAX]) {
    TL_ASSERT(q->from_seq >= 1 && q->to_seq >= q->from_seq);
    uint64_t window_from = q->window_from_real_ns != 0     ? q->window_from_real_ns
                           : now_real_ns > 600000000000ull ? now_real_ns - 600000000000ull
                                                           : 0;
    pthread_mutex_lock(&s->mu);
    /* 1. An automatic request whose incident already waits: one bundle. */
    if (q->origin == TL_BUNDLE_AUTO && q->incident != 0) {
        for (unsigned i = 0; i < TL_BUNDLE_JOBS; i++) {
            job_slot *j = &s->jobs[i];
            if (j->used && j->state == TL_BUNDLE_PH_QUEUED && has_incident(&j->job, q->incident)) {
                widen(&j->job, q, window_from);
                s->counts.merged++;
                answer(s, j, id_out, path_out);
                pthread_mutex_unlock(&s->mu);
                return 1;
            }
        }
    }
    /* 2. A free slot, or the oldest finished one. */
    job_slot *slot = NULL;
    for (unsigned i = 0; i < TL_BUNDLE_JOBS; i++) {
        job_slot *j = &s->jobs[i];
        if (!j->used) {
            slot = j;
            break;
        }
        bool finished = j->state == TL_BUNDLE_PH_DONE || j->state == TL_BUNDLE_PH_FAILED;
        if (finished && (slot == NULL || j->order < slot->order))
            slot = j;
    }
    if (slot == NULL) {
        /* Every slot waits or runs. An operator is told to come back; an
         * automatic request widens the newest queued job: never lost. */
        job_slot *newest = NULL;
        for (unsigned i = 0; i < TL_BUNDLE_JOBS; i++) {
            job_slot *j = &s->jobs[i];
            if (j->state == TL_BUNDLE_PH_QUEUED && (newest == NULL || j->order > newest->order))
                newest = j;
        }
        if (q->origin != TL_BUNDLE_AUTO || newest == NULL) {
            pthread_mutex_unlock(&s->mu);
            return -1;
        }
        widen(&newest->job, q, window_from);
        s->counts.merged++;
        answer(s, newest, id_out, path_out);
        pthread_mutex_unlock(&s->mu);
        return 1;
    }
    memset(slot, 0, sizeof *slot);
    slot->used = true;
    slot->state = TL_BUNDLE_PH_QUEUED;
    slot->order = s->next_order++;
    tl_bundle_job *j = &slot->job;
    /* xorshift64: ids need to be unique, not secret */
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    snprintf(j->id, sizeof j->id, "b%016llx", (unsigned long long)s->rng);
    j->origin = q->origin;
    j->from_seq = q->from_seq;
    j->to_seq = q->to_seq;
    j->window_from_real_ns = window_from;
    j->requested_real_ns = now_real_ns;
    if (q->incident != 0)
        j->incidents[j->n_incidents++] = q->incident;
    tl_bundle_job_name(j);
    s->counts.queued++;
    answer(s, slot, id_out, path_out);
    pthread_cond_signal(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

bool tl_bundle_poll_event(tl_bundle_svc *s, tl_bundle_event *ev) {
    pthread_mutex_lock(&s->mu);
    bool got = s->ev_count > 0;
    if (got) {
        *ev = s->events[s->ev_head];
        s->ev_head = (s->ev_head + 1) % SVC_EVENTS;
        s->ev_count--;
    }
    pthread_mutex_unlock(&s->mu);
    return got;
}

void tl_bundle_serve(tl_bundle_svc *s, size_t (*render)(void *ctx, char *buf, size_t cap),
                     void *ctx) {
    pthread_mutex_lock(&s->mu);
    if (s->scrape_want > s->scrape_done) {
        /* Under the lock: the worker is waiting for exactly this, and a
         * render takes tens of microseconds. */
        s->scrape_len = render(ctx, s->scrape_buf, TL_BUNDLE_METRICS_MAX);
        s->scrape_done = s->scrape_want;
        pthread_cond_broadcast(&s->scrape_cv);
    }
    pthread_mutex_unlock(&s->mu);
}

void tl_bundle_note_ledger(tl_bundle_svc *s, const tl_spsc *q, uint64_t head_before) {
    if (s == NULL)
        return;
    /* Relaxed: this thread is the queue's only producer, so head is its own
     * store. The slots it wrote since head_before are read only by the
     * consumer, which never writes them: reading them here races with
     * nothing, and only this thread will ever overwrite them. */
    uint64_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint64_t n = head - head_before;
    if (n == 0)
        return;
    if (n > q->slot_count)
        n = q->slot_count;
    TL_ASSERT(q->slot_bytes == sizeof(tl_ledger_wm));
    pthread_mutex_lock(&s->mu);
    for (uint64_t h = head - n; h != head; h++) {
        const void *slot = q->slots + (h & q->mask) * q->stride_bytes;
        memcpy(&s->ledger[s->ledger_next], slot, sizeof(tl_ledger_wm));
        s->ledger_next = (s->ledger_next + 1) % TL_BUNDLE_LEDGER_KEEP;
        if (s->ledger_count < TL_BUNDLE_LEDGER_KEEP)
            s->ledger_count++;
    }
    pthread_mutex_unlock(&s->mu);
}

bool tl_bundle_status_get(tl_bundle_svc *s, const char *id, tl_bundle_status *out) {
    pthread_mutex_lock(&s->mu);
    const job_slot *j = NULL;
    for (unsigned i = 0; i < TL_BUNDLE_JOBS; i++)
        if (s->jobs[i].used && strcmp(s->jobs[i].job.id, id) == 0)
            j = &s->jobs[i];
    if (j == NULL) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    memset(out, 0, sizeof *out);
    out->job = j->job;
    /* Relaxed: progress figures for people. */
    out->phase = j->running ? atomic_load_explicit(&j->prog.phase, memory_order_relaxed) : j->state;
    out->bytes_done = atomic_load_explicit(&j->prog.bytes_done, memory_order_relaxed);
    out->bytes_total = atomic_load_explicit(&j->prog.bytes_total, memory_order_relaxed);
    out->state = j->state == TL_BUNDLE_PH_QUEUED ? "queued"
                 : j->running                    ? "running"
                 : j->state == TL_BUNDLE_PH_DONE ? "done"
                                                 : "failed";
    uint64_t pct = out->bytes_total > 0 ? out->bytes_done * 100 / out->bytes_total : 0;
    out->percent = j->state == TL_BUNDLE_PH_DONE ? 100u : (uint32_t)(pct > 99 ? 99 : pct);
    snprintf(out->path, sizeof out->path, "%s/%s", s->dir, j->job.name);
    out->started_real_ns = j->started_real_ns;
    if (!j->running && (j->state == TL_BUNDLE_PH_DONE || j->state == TL_BUNDLE_PH_FAILED)) {
        out->finished_real_ns = j->finished_real_ns;
        out->res = j->res;
    }
    pthread_mutex_unlock(&s->mu);
    return true;
}

void tl_bundle_counts_get(tl_bundle_svc *s, tl_bundle_counts *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->counts;
    pthread_mutex_unlock(&s->mu);
}
