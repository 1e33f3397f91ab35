/* tallyd.c: the reconciler sidecar's process shell.
 *
 *   tallyd --config FILE          run
 *   tallyd --check-config FILE    validate the config and exit (0 ok, 2 bad)
 *
 * Start-up does everything that may block or allocate: config, the
 * reconciliation lock, keys, the audit log and what it says must be sent
 * again, the loop's memory, the WAL tailer. Then two threads run (daemon.h):
 * the pinned hot loop and the control thread. SIGTERM or SIGINT stops them
 * cleanly: the hot loop ends its step, the control thread drains and
 * fsyncs, and consumer_state goes to 0 so the engine's dead-man disarms.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin_key.h"
#include "core/assert.h"

int tl_lock_file(const char *path, int *fd_out, char *err, size_t cap);

static void assert_hook(const char *expr, const char *file, int line) {
    fprintf(stderr, "tallyd: assertion failed: %s (%s:%d)\n", expr, file, line);
}

static void usage(FILE *to) {
    fprintf(to, "usage: tallyd --config FILE\n"
                "       tallyd --check-config FILE\n"
                "       tallyd --version\n"
                "\n"
                "tally: a reconciler sidecar for an exchange matching engine.\n"
                "It follows the engine's ring and WAL, checks seqs, chains, fences\n"
                "and state hashes, and raises HARD_HALT / CANCEL_ONLY through the\n"
                "engine's admin socket. See deploy/tally.example.json for every key.\n");
}

static int mkdirs(const char *path) {
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static uint64_t read_position(const char *state_dir) {
    char path[600], buf[32] = {0};
    snprintf(path, sizeof path, "%s/position", state_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? strtoull(buf, NULL, 10) : 0;
}

static int start(tl_daemon *d, char *err, size_t cap) {
    const tl_config *c = &d->cfg;
    if (mkdirs(c->state_dir) != 0) {
        snprintf(err, cap, "state_dir %s: %s", c->state_dir, strerror(errno));
        return -1;
    }
    char path[700];
    snprintf(path, sizeof path, "%s/tally.lock", c->state_dir);
    if (tl_lock_file(path, &d->lock_fd, err, cap) != 0)
        return -1;

    tl_admin_key sidecar, operator_key;
    enum tl_admin_err ke = tl_admin_key_load(&sidecar, c->keys_sidecar);
    if (ke != TL_ADMIN_OK) {
        snprintf(err, cap, "keys.sidecar %s: %s", c->keys_sidecar, tl_admin_err_name(ke));
        return -1;
    }
    bool have_operator = c->keys_operator[0] != '\0';
    if (have_operator) {
        ke = tl_admin_key_load(&operator_key, c->keys_operator);
        if (ke != TL_ADMIN_OK) {
            snprintf(err, cap, "keys.operator %s: %s", c->keys_operator, tl_admin_err_name(ke));
            return -1;
        }
    }
    tl_actuator_init(&d->act, c->engine_admin_socket, &sidecar,
                     have_operator ? &operator_key : NULL);
    /* The recognition tag of our command ids comes from the sidecar key:
     * another tally with another key does not claim our commands. */
    d->lcfg.tag_seed = XXH3_64bits_withSeed(sidecar.inner, sizeof sidecar.inner, 0x7461676cull);
    tl_admin_key_wipe(&sidecar);
    if (have_operator)
        tl_admin_key_wipe(&operator_key);
    if (getrandom(&d->lcfg.id_seed, sizeof d->lcfg.id_seed, 0) != sizeof d->lcfg.id_seed) {
        snprintf(err, cap, "getrandom: %s", strerror(errno));
        return -1;
    }

    d->recovery = calloc(1, sizeof *d->recovery);
    if (d->recovery == NULL ||
        tl_audit_open(&d->audit, c->state_dir, c->audit_rotate_bytes, d->recovery, err, cap) != 0)
        return -1;
    if (!d->recovery->chain_ok)
        fprintf(stderr, "tallyd: the audit log's hash chain breaks at line %llu\n",
                (unsigned long long)d->recovery->chain_bad_line);

    if (tl_spsc_init(&d->out, TL_DAEMON_OUT_SLOTS, sizeof(tl_out)) != 0 ||
        tl_spsc_init(&d->ctl, TL_DAEMON_CTL_SLOTS, sizeof(tl_ctl_msg)) != 0) {
        snprintf(err, cap, "queues: out of memory");
        return -1;
    }

    size_t bytes = tl_loop_mem_bytes(&d->lcfg);
    d->loop_mem = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    d->loop = aligned_alloc(64, (sizeof *d->loop + 63) & ~(size_t)63);
    if (d->loop_mem == NULL || d->loop == NULL) {
        snprintf(err, cap, "loop: out of memory (%zu bytes)", bytes);
        return -1;
    }
    tl_loop_ops ops;
    tl_hot_ops(d, &ops);
    tl_loop_init(d->loop, &d->lcfg, &ops, d->loop_mem);

    /* The WAL from the saved position (never beyond what was durable). */
    uint64_t from = read_position(c->state_dir);
    if (from == 0)
        from = c->wal_start_seq;
    tl_wal_tail_cfg tc;
    tl_wal_tail_cfg_default(&tc);
    tc.dir = c->engine_wal_dir;
    tc.start_seq = from;
    tc.read_ahead = (uint32_t)c->wal_read_ahead;
    tc.buf_bytes = (uint32_t)c->wal_buffer_bytes;
    tc.no_register = !c->wal_registered_buffers;
    tl_wal_ioerr ioerr;
    memset(&ioerr, 0, sizeof ioerr);
    enum tl_wal_err we = tl_wal_tail_open(&d->tail, &tc, &ioerr);
    if (we != TL_WAL_OK) {
        snprintf(err, cap, "engine.wal_dir %s: %s (%s: %s)", c->engine_wal_dir, tl_wal_err_name(we),
                 ioerr.op != NULL ? ioerr.op : "-",
                 ioerr.sys_errno != 0 ? strerror(ioerr.sys_errno) : "-");
        return -1;
    }

    if (d->lcfg.ring && tl_ring_map_init(&d->rings[0].map, c->engine_ring) != TL_RING_OK) {
        snprintf(err, cap, "engine.ring %s: not a usable name", c->engine_ring);
        return -1;
    }
    /* Actions the audit shows EXECUTED with neither APPLIED nor FAILED go
     * out again, same id (behavior.md). */
    for (uint32_t i = 0; i < d->recovery->resend_count; i++) {
        tl_ctl_msg m;
        memset(&m, 0, sizeof m);
        m.type = TL_CTL_RESEND;
        m.act = d->recovery->resend[i];
        if (!tl_spsc_push(&d->ctl, &m))
            break;
    }
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_str(&w, "version", TL_VERSION);
    tl_jw_int(&w, "pid", getpid());
    tl_jw_int(&w, "resend", d->recovery->resend_count);
    tl_jw_bool(&w, "audit_chain_ok", d->recovery->chain_ok);
    (void)tl_audit_append(&d->audit, &w, "START", tl_now_real_ns());
    (void)tl_audit_sync(&d->audit);
    return 0;
}

static void stop_cleanly(tl_daemon *d) {
    atomic_store_explicit(&d->stop, true, memory_order_relaxed);
    pthread_join(d->hot_thread, NULL);
    pthread_join(d->control_thread, NULL);
    /* A planned stop: the engine's dead-man disarms (ring.md). */
    if (d->ring != NULL && d->ring->ready)
        tl_ring_consumer_set_state(&d->ring->map, TL_CONSUMER_ABSENT);
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_u64s(&w, "findings", d->loop->log.findings_total);
    tl_jw_u64s(&w, "records_ring", d->loop->c.records_ring);
    tl_jw_u64s(&w, "records_wal", d->loop->c.records_wal);
    (void)tl_audit_append(&d->audit, &w, "STOP", tl_now_real_ns());
    tl_audit_close(&d->audit);
    tl_wal_tail_close(d->tail);
}

int main(int argc, char **argv) {
    tl_assert_set_hook(assert_hook);
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", required_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL;
    bool check = false;
    int o;
    while ((o = getopt_long(argc, argv, "c:k:Vh", opts, NULL)) != -1) {
        switch (o) {
            case 'c':
                config = optarg;
                break;
            case 'k':
                config = optarg;
                check = true;
                break;
            case 'V':
                printf("tallyd %s\n", TL_VERSION);
                return 0;
            case 'h':
                usage(stdout);
                return 0;
            default:
                usage(stderr);
                return 2;
        }
    }
    if (config == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    static tl_daemon d;
    memset(&d, 0, sizeof d);
    d.lock_fd = -1;
    d.engine_lock_fd = -1;
    char err[1024];
    if (tl_config_load(config, &d.cfg, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        return 2;
    }
    if (check) {
        printf("%s: ok\n", config);
        return 0;
    }
    snprintf(d.config_path, sizeof d.config_path, "%s", config);
    tl_config_loop(&d.cfg, &d.lcfg);

    /* Signals go to the main thread only; the workers never see them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (start(&d, err, sizeof err) != 0) {
        fprintf(stderr, "tallyd: %s\n", err);
        return 1;
    }
    fprintf(stderr, "tallyd: following %s (ring %s), state in %s, stage %s\n", d.cfg.engine_wal_dir,
            d.lcfg.ring ? d.cfg.engine_ring : "none", d.cfg.state_dir,
            tl_policy_stage(&d.lcfg.policy));
    if (pthread_create(&d.control_thread, NULL, tl_control_main, &d) != 0 ||
        pthread_create(&d.hot_thread, NULL, tl_hot_main, &d) != 0) {
        fprintf(stderr, "tallyd: cannot start threads\n");
        return 1;
    }
    for (;;) {
        struct timespec ts = {0, 50000000};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        /* Relaxed: the control thread set it after a fatal start-up error
         * (another tally holds this engine). */
        if (atomic_load_explicit(&d.stop, memory_order_relaxed)) {
            stop_cleanly(&d);
            fprintf(stderr, "tallyd: stopped on error\n");
            return 1;
        }
    }
    fprintf(stderr, "tallyd: stopping\n");
    stop_cleanly(&d);
    return 0;
}
