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

/* Peers (peer.md): our key and theirs, the counters persisted by the
 * control thread, the kernel socket (it sends on both paths; with peer.io
 * "dpdk" it takes an ephemeral port and the DPDK port receives), and the
 * loop's peer settings. Before tl_loop_init: it sizes the loop's memory. */
static int peer_start(tl_daemon *d, char *err, size_t cap) {
    const tl_config *c = &d->cfg;
    if (c->peer_count == 0)
        return 0;
    if (c->keys_peer[0] == '\0') {
        snprintf(err, cap, "keys.peer: required when peer.peers lists peers");
        return -1;
    }
    d->peer_keys = calloc(1, sizeof *d->peer_keys);
    d->peer_key = calloc(1, sizeof *d->peer_key);
    if (d->peer_keys == NULL || d->peer_key == NULL) {
        snprintf(err, cap, "peer: out of memory");
        return -1;
    }
    enum tl_peer_key_err ke = tl_peer_key_load(d->peer_key, c->keys_peer);
    if (ke != TL_PEER_KEY_OK) {
        snprintf(err, cap, "keys.peer %s: %s", c->keys_peer, tl_peer_key_err_name(ke));
        return -1;
    }
    if (tl_peer_counters_load(d, d->peer_saved) != 0) {
        snprintf(err, cap, "%s/peer_counters: %s", c->state_dir, strerror(errno));
        return -1;
    }
    tl_peer_cfg *pc = &d->lcfg.peer;
    pc->beat_ms = c->peer_beat_ms;
    pc->silent_ms = c->peer_silent_ms;
    pc->max_skew_ms = c->peer_max_skew_ms;
    pc->lag_records = c->peer_lag_records;
    pc->max_held = (uint32_t)c->peer_max_held;
    pc->send_counter_floor = d->peer_saved[TL_PEER_NODES_MAX] + 1;
    tl_peer_udp_cfg uc;
    memset(&uc, 0, sizeof uc);
    for (uint32_t i = 0; i < c->peer_count; i++) {
        const tl_cfg_peer *p = &c->peers[i];
        for (uint32_t k = 0; k < i; k++) {
            if (memcmp(c->peers[k].node_id, p->node_id, TL_ID_BYTES) == 0) {
                snprintf(err, cap, "peer.peers[%u].node_id: listed twice", i);
                return -1;
            }
        }
        const char *kf = p->key_file[0] != '\0' ? p->key_file : c->keys_peer;
        ke = tl_peer_key_load(&d->peer_keys->keys[i], kf);
        if (ke != TL_PEER_KEY_OK) {
            snprintf(err, cap, "peer.peers[%u].key_file %s: %s", i, kf, tl_peer_key_err_name(ke));
            return -1;
        }
        memcpy(d->peer_keys->ids[i], p->node_id, TL_ID_BYTES);
        memcpy(pc->nodes[i].node_id, p->node_id, TL_ID_BYTES);
        pc->nodes[i].last_counter = d->peer_saved[i];
        uc.dests[i] = p->addr;
    }
    d->peer_keys->count = c->peer_count;
    pc->node_count = c->peer_count;
    uc.dest_count = c->peer_count;
    bool dpdk = strcmp(c->peer_io, "dpdk") == 0;
    uc.listen = dpdk ? "0.0.0.0:0" : c->peer_listen;
    uc.rcvbuf_bytes = 4 << 20;
    if (tl_peer_udp_open(&d->peer_udp, &uc, err, cap) != 0)
        return -1;
    if (dpdk) {
        tl_peer_dpdk_cfg dc;
        memset(&dc, 0, sizeof dc);
        dc.eal_argc = c->peer_eal_count;
        for (uint32_t i = 0; i < c->peer_eal_count && i < TL_PEER_DPDK_EAL_ARGS_MAX; i++)
            dc.eal_argv[i] = c->peer_eal[i];
        dc.port_id = (uint16_t)c->peer_dpdk_port;
        dc.listen = c->peer_listen;
        if (tl_peer_dpdk_open(&d->peer_dpdk, &dc, err, cap) != 0)
            return -1;
    }
    return 0;
}

/* The WAL tailer of the configured dialect. */
static int wal_start(tl_daemon *d, char *err, size_t cap) {
    const tl_config *c = &d->cfg;
    tl_wal_ioerr ioerr;
    memset(&ioerr, 0, sizeof ioerr);
    enum tl_wal_err we;
    if (d->lcfg.dialect == TL_DIALECT_XWAL1) {
        /* No saved position and no start seq: seqs count per symbol, so the
         * whole retained log is read again (io/xwal1_tail.h). */
        tl_xwal1_tail_cfg xc;
        tl_xwal1_tail_cfg_default(&xc);
        xc.dir = c->engine_wal_dir;
        xc.max_symbols = d->lcfg.xwal1_symbols;
        xc.read_ahead = (uint32_t)c->wal_read_ahead;
        /* wal.buffer_bytes is the reads' buffer in all (a power of two,
         * 128 KiB..16 MiB): each of the read_ahead reads gets its share,
         * whole pages (the default 1 MiB / 4: the tailer's 256 KiB). */
        uint64_t share = (c->wal_buffer_bytes / xc.read_ahead) & ~(uint64_t)4095;
        xc.read_bytes =
            (uint32_t)(share < TL_XWAL1_TAIL_MIN_READ_BYTES ? TL_XWAL1_TAIL_MIN_READ_BYTES : share);
        xc.torn_grace_ms = c->wal_torn_grace_ms;
        xc.no_register = !c->wal_registered_buffers;
        /* The buffer holds the largest frame plus the reads: smaller reads
         * keep it within what can be registered without CAP_IPC_LOCK. */
        uint64_t room = TL_XWAL1_TAIL_REGISTER_LIMIT_BYTES - TL_XWAL1_TAIL_FRAME_ROOM;
        uint64_t per = (room / xc.read_ahead) & ~(uint64_t)4095;
        if (!xc.no_register && per >= 4096 && per < xc.read_bytes)
            xc.read_bytes = (uint32_t)per;
        we = tl_xwal1_tail_open(&d->xtail, &xc, &ioerr);
    } else {
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
        we = tl_wal_tail_open(&d->tail, &tc, &ioerr);
    }
    if (we != TL_WAL_OK) {
        snprintf(err, cap, "engine.wal_dir %s: %s (%s: %s)", c->engine_wal_dir, tl_wal_err_name(we),
                 ioerr.op != NULL ? ioerr.op : "-",
                 ioerr.sys_errno != 0 ? strerror(ioerr.sys_errno) : "-");
        return -1;
    }
    return 0;
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
        tl_spsc_init(&d->ctl, TL_DAEMON_CTL_SLOTS, sizeof(tl_ctl_msg)) != 0 ||
        tl_spsc_init(&d->ledger_q, TL_LEDGER_QUEUE_SLOTS, sizeof(tl_ledger_wm)) != 0 ||
        tl_spsc_init(&d->lease_q, TL_LEASE_QUEUE_SLOTS, sizeof(tl_lease_reading)) != 0) {
        snprintf(err, cap, "queues: out of memory");
        return -1;
    }
    /* The ledger poller (libcurl: initialised here, before any thread). */
    if (tl_ledger_poll_open(&d->ledger, c, &d->ledger_q, err, cap) != 0)
        return -1;
    if (tl_lease_poll_open(&d->lease, c, &d->lease_q, err, cap) != 0)
        return -1;

    if (peer_start(d, err, cap) != 0)
        return -1;

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
    if (d->lcfg.dialect == TL_DIALECT_XWAL1) {
        /* No saved position: the whole retained log is read again. What
         * the audit shows decided is reported again, not acted on again
         * (core/decided.h). */
        const tl_decided *dec = &d->recovery->decided;
        for (uint32_t i = 0; i < dec->count; i++)
            tl_loop_decided_add(d->loop, &dec->keys[i]);
    }

    if (wal_start(d, err, cap) != 0)
        return -1;

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
    /* Forensic bundles: the redacted config, the signing key, the worker. */
    tl_bundle_svc_cfg bc = {.cfg = &d->cfg,
                            .config_path = d->config_path,
                            .dialect = d->lcfg.dialect,
                            .avoid_cpu = (int)c->cpu};
    if (tl_bundle_svc_start(&d->bundle, &bc, err, cap) != 0)
        return -1;
    /* The operator surface: control API listeners, reconcile worker. */
    /* Alert webhooks (libcurl multi on the control thread). */
    if (tl_alerts_open(&d->alerts, c, err, cap) != 0)
        return -1;
    tl_api_deps ad = {
        .webhooks = d->alerts != NULL ? tl_alerts_stats(d->alerts) : NULL,
        .lease_poll = d->lease != NULL ? tl_lease_poll_stats_of(d->lease) : NULL,
        .cfg = &d->cfg,
        .ctl = &d->ctl,
        .audit = &d->audit,
        .beat_ns = &d->loop->beat_ns,
        .policy = &d->lcfg.policy,
        .tag_seed = d->lcfg.tag_seed,
        .operator_key = have_operator,
        .dialect = d->lcfg.dialect,
        .max_symbols = d->lcfg.max_symbols,
        .start_mono_ns = tl_now_mono_ns(),
        .bundle = d->bundle,
        .ledger_poll = d->ledger,
        .ledger_last = tl_ledger_poll_last,
        .peer = d->lcfg.peer.node_count > 0 ? &d->loop->peer : NULL,
    };
    if (tl_api_create(&d->api, &ad, err, cap) != 0)
        return -1;
    tl_alerts_set_instance(d->alerts, tl_api_instance_id(d->api));
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_str(&w, "version", TL_VERSION);
    tl_jw_str(&w, "instance_id", tl_api_instance_id(d->api));
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
    /* What the last passes queued: a bounded wait for the alert hooks. */
    tl_alerts_flush(d->alerts, 2000);
    tl_api_destroy(d->api);
    d->api = NULL;
    tl_bundle_svc_stop(d->bundle); /* an export in progress is cancelled and cleaned up */
    d->bundle = NULL;
    /* A planned stop: the engine's dead-man disarms (ring.md). */
    if (d->ring != NULL && d->ring->ready)
        tl_ring_consumer_set_state(&d->ring->map, TL_CONSUMER_ABSENT);
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_u64s(&w, "findings", d->loop->log.findings_total);
    tl_jw_u64s(&w, "records_ring", d->loop->c.records_ring);
    tl_jw_u64s(&w, "records_wal", d->loop->c.records_wal);
    if (d->peer_udp != NULL) {
        /* tally_peer_rejected_total{reason} and the rest, for the record */
        const tl_peer_counters *pc = &d->loop->peer.c;
        tl_jw_u64s(&w, "peer_accepted", pc->accepted);
        static const char *const rejected_keys[TL_PEER_REJ_COUNT] = {
            [TL_PEER_REJ_MALFORMED] = "peer_rejected_malformed",
            [TL_PEER_REJ_UNKNOWN_NODE] = "peer_rejected_unknown_node",
            [TL_PEER_REJ_BAD_MAC] = "peer_rejected_bad_mac",
            [TL_PEER_REJ_REPLAY] = "peer_rejected_replay",
            [TL_PEER_REJ_STALE] = "peer_rejected_stale",
            [TL_PEER_REJ_OUT_OF_WINDOW] = "peer_rejected_out_of_window",
        };
        for (unsigned r = 1; r < TL_PEER_REJ_COUNT; r++)
            tl_jw_u64s(&w, rejected_keys[r], pc->rejected[r]);
        tl_jw_u64s(&w, "peer_compared", pc->compared);
        tl_jw_u64s(&w, "peer_held", pc->held);
        tl_jw_u64s(&w, "peer_sent", pc->sent_heartbeat + pc->sent_checkpoint);
        tl_jw_u64s(&w, "peer_sent_checkpoint", pc->sent_checkpoint);
        tl_peer_counters_save(d);
    }
    if (d->ledger != NULL) {
        const tl_ledger_stats *ls = &d->loop->ledger.st;
        tl_jw_u64s(&w, "ledger_replies", ls->replies_total);
        tl_jw_u64s(&w, "ledger_compared", ls->compared_total);
        tl_jw_u64s(&w, "ledger_unchecked", ls->unchecked_total);
        tl_ledger_poll_stats ps;
        tl_ledger_poll_get_stats(d->ledger, &ps);
        /* Rejected for what they said (status, size, mac, body), apart from
         * transfers that failed (connect, timeout, TLS). */
        uint64_t bad = 0, failed = 0;
        for (int i = 0; i < TL_LC_ERR_COUNT; i++) {
            if (i >= TL_LC_ERR_HTTP_STATUS)
                bad += ps.rejected[i];
            else
                failed += ps.rejected[i];
        }
        for (int i = 0; i < TL_LEDGER_ERR_COUNT; i++)
            bad += ps.parse_rejected[i];
        tl_jw_u64s(&w, "ledger_rejected", bad);
        tl_jw_u64s(&w, "ledger_failed", failed);
    }
    if (d->lease != NULL) {
        const tl_lease_stats *ls = &d->loop->lease.st;
        tl_jw_u64s(&w, "lease_readings", ls->ok_total);
        tl_jw_u64s(&w, "lease_failed", ls->failed_total);
        tl_jw_u64s(&w, "lease_rejected", ls->rejected_total);
        tl_jw_u64s(&w, "lease_inconclusive", ls->inconclusive_total);
    }
    (void)tl_audit_append(&d->audit, &w, "STOP", tl_now_real_ns());
    tl_ledger_poll_close(d->ledger);
    tl_lease_poll_close(d->lease);
    if (d->alerts != NULL) {
        const tl_webhook_stats *ws = tl_alerts_stats(d->alerts);
        fprintf(stderr,
                "tallyd: webhooks: sent %llu, failed %llu, retried %llu, dropped %llu, pending "
                "%llu\n",
                (unsigned long long)ws->sent, (unsigned long long)ws->failed,
                (unsigned long long)ws->retried, (unsigned long long)ws->dropped,
                (unsigned long long)ws->pending);
    }
    tl_alerts_close(d->alerts);
    tl_audit_close(&d->audit);
    tl_wal_tail_close(d->tail);
    tl_xwal1_tail_close(d->xtail);
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
    tl_config_loop(&d.cfg, &d.lcfg); /* xwal1's per-symbol windows too */
    tl_ledger_poll_loop_cfg(&d.cfg, &d.lcfg);
    tl_lease_poll_loop_cfg(&d.cfg, &d.lcfg);

    /* Signals go to the main thread only; the workers never see them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A file size limit (RLIMIT_FSIZE) makes writes fail with EFBIG, a
     * named error (a bundle's disk_full), instead of killing tallyd. */
    signal(SIGXFSZ, SIG_IGN);

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
