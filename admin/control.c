/* control.c: tallyd's control thread: everything slow, so the hot loop never
 * waits.
 *
 * Each pass (about every millisecond):
 *   - drains the loop's out-queue: findings and action events go to the
 *     audit log (and to stderr), MODE_CHANGEs of ours that the audit never
 *     saw become RECOVERED lines;
 *   - fsyncs the audit within audit.max_delay_ms;
 *   - (re)connects the admin socket for the actuator;
 *   - every 100 ms re-opens the ring's name and compares its identity: a new
 *     object is a new incarnation, mapped here and handed to the hot loop;
 *     an old object whose producer still beats is DUAL_PRODUCER;
 *   - every second persists the WAL position tally would restart from and
 *     stores it as consumer_wal_seq.
 */
#include "log.h"
#include "daemon.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"

/* The loop names its own FAILED reason with the value the shell prints. */
_Static_assert(TL_ADMIN_WIRE_NEVER_APPLIED == TL_LOOP_ERR_NEVER_APPLIED,
               "core/loop.h and admin/admin_err.h agree on never_applied");

static bool id_known(const tl_daemon *d, const uint8_t id[TL_ID_BYTES]) {
    const tl_audit_recovery *r = d->recovery;
    for (uint32_t i = 0; i < r->id_count; i++)
        if (memcmp(r->ids[i], id, TL_ID_BYTES) == 0)
            return true;
    return false;
}

static void remember_id(tl_daemon *d, const uint8_t id[TL_ID_BYTES]) {
    tl_audit_recovery *r = d->recovery;
    if (id_known(d, id))
        return;
    if (r->id_count == TL_AUDIT_IDS_MAX) {
        /* bounded: forget the oldest half */
        memmove(r->ids, r->ids + TL_AUDIT_IDS_MAX / 2, (TL_AUDIT_IDS_MAX / 2) * TL_ID_BYTES);
        r->id_count = TL_AUDIT_IDS_MAX / 2;
    }
    memcpy(r->ids[r->id_count++], id, TL_ID_BYTES);
}

static void on_out(tl_daemon *d, const tl_out *o, uint64_t now_real) {
    char buf[1024];
    switch (o->type) {
        case TL_OUT_FINDING: {
            const tl_finding *f = &o->u.finding;
            (void)tl_audit_finding(&d->audit, f, now_real);
            if (f->severity >= TL_SEV_DEGRADED) {
                tl_finding_json(f, buf, sizeof buf);
                tl_logf("tallyd: finding %s", buf);
            }
            break;
        }
        case TL_OUT_ACTION: {
            const tl_action *a = &o->u.action;
            if (a->state == TL_ACT_EXECUTED)
                remember_id(d, a->id);
            const char *err = NULL;
            if (a->state == TL_ACT_FAILED)
                err = tl_admin_wire_name((enum tl_admin_wire)a->error);
            (void)tl_audit_action(&d->audit, a, err, now_real);
            char id[33];
            tl_admin_format_id(a->id, id);
            id[32] = '\0';
            tl_logf("tallyd: action %s %s %s%s%s id=%s%s%s", tl_action_state_name(a->state),
                    tl_cmd_name(a->cmd), a->symbol_name,
                    a->cmd == TL_CMD_SET_SYMBOL_MODE ? " " : "",
                    a->cmd == TL_CMD_SET_SYMBOL_MODE ? tl_mode_name(a->mode) : "",
                    tl_id_is_zero(a->id) ? "-" : id, a->state == TL_ACT_BLOCKED ? " reason=" : "",
                    a->state == TL_ACT_BLOCKED ? tl_block_name(a->block) : "");
            break;
        }
        case TL_OUT_MODE_SEEN: {
            const tl_mode_seen *m = &o->u.mode;
            if (!m->ours || m->matched || id_known(d, m->command_id))
                break;
            /* A command of ours applied but never audited (tally died
             * between the send and the fsync): the WAL is the trace. */
            tl_action a;
            memset(&a, 0, sizeof a);
            memcpy(a.id, m->command_id, TL_ID_BYTES);
            a.cmd = TL_CMD_SET_SYMBOL_MODE;
            a.mode = m->mode;
            a.from_mode = TL_FROM_MODE_NONE;
            a.state = TL_ACT_RECOVERED;
            a.applied_seq = m->seq;
            if (m->scope == 0)
                strcpy(a.symbol_name, "*");
            else
                snprintf(a.symbol_name, sizeof a.symbol_name, "#%u", m->scope);
            strcpy(a.reason, "recovered from the engine's MODE_CHANGE");
            remember_id(d, a.id);
            (void)tl_audit_action(&d->audit, &a, NULL, now_real);
            tl_logf("tallyd: recovered command applied at seq %llu", (unsigned long long)m->seq);
            break;
        }
        case TL_OUT_BUNDLE: {
            tl_jw w;
            tl_jw_init(&w);
            tl_jw_u64s(&w, "incident", o->u.bundle.incident);
            tl_jw_u64s(&w, "finding_id", o->u.bundle.finding_id);
            tl_jw_u64s(&w, "from_seq", o->u.bundle.from_seq);
            tl_jw_u64s(&w, "to_seq", o->u.bundle.to_seq);
            (void)tl_audit_append(&d->audit, &w, "BUNDLE_REQUESTED", now_real);
            break;
        }
        default:
            break;
    }
}

/* ---- locks ---- */

int tl_lock_file(const char *path, int *fd_out, char *err, size_t cap);

int tl_lock_file(const char *path, int *fd_out, char *err, size_t cap) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "?";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0) {
            pid[n] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
        }
        snprintf(err, cap, "%s is held by tallyd pid %s: one tally per engine", path, pid);
        close(fd);
        return -1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        snprintf(err, cap, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    *fd_out = fd;
    return 0;
}

/* ---- the ring ---- */

static tl_ring_side *free_side(tl_daemon *d) {
    for (int i = 0; i < 2; i++) {
        tl_ring_side *s = &d->rings[i];
        if (s != d->ring && s != atomic_load_explicit(&d->ring_handoff, memory_order_acquire) &&
            !s->ready && s->map.phase != TL_MAP_READY)
            return s;
    }
    return NULL;
}

static void hand_over(tl_daemon *d, tl_ring_side *s, bool first) {
    tl_ring_durable snap = {0};
    (void)tl_ring_durable_read(&s->durable, s->map.ctl, tl_now_mono_ns(),
                               (uint32_t)d->cfg.engine_stale_ms, &snap);
    tl_ring_consumer_set_state(&s->map, TL_CONSUMER_CATCHING_UP);
    s->ready = true;
    /* release: the side is complete before the hot loop can adopt it. */
    atomic_store_explicit(&d->ring_handoff, s, memory_order_release);
    tl_ctl_msg m;
    memset(&m, 0, sizeof m);
    m.type = TL_CTL_INCARNATION;
    m.durable_seq = snap.seq;
    while (!tl_spsc_push(&d->ctl, &m)) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL); /* the loop drains its queue every step */
    }
    tl_logf("tallyd: %s ring %s (pid %u, capacity %llu, durable seq %llu)",
            first ? "attached to" : "new incarnation of", s->map.path, s->map.header.producer_pid,
            (unsigned long long)s->map.capacity, (unsigned long long)snap.seq);
}

static bool engine_lock(tl_daemon *d, const tl_ring_side *s) {
    if (d->engine_lock_fd >= 0) {
        if (memcmp(d->engine_id, s->map.header.engine_id, TL_ID_BYTES) != 0)
            tl_logf("tallyd: the ring's engine_id changed");
        return true;
    }
    memcpy(d->engine_id, s->map.header.engine_id, TL_ID_BYTES);
    char hex[33], path[700], err[800];
    tl_admin_format_id(d->engine_id, hex);
    hex[32] = '\0';
    if (mkdir(d->cfg.lock_dir, 0755) != 0 && errno != EEXIST) {
        tl_logf("tallyd: %s: %s", d->cfg.lock_dir, strerror(errno));
        return false;
    }
    snprintf(path, sizeof path, "%s/tally-%s.lock", d->cfg.lock_dir, hex);
    if (tl_lock_file(path, &d->engine_lock_fd, err, sizeof err) != 0) {
        tl_logf("tallyd: %s", err);
        return false;
    }
    return true;
}

static void ring_attach_step(tl_daemon *d, uint64_t now) {
    tl_ring_side *pending = NULL;
    for (int i = 0; i < 2; i++) {
        tl_ring_side *s = &d->rings[i];
        if (!s->ready && (s->map.phase == TL_MAP_OPENING || s->map.phase == TL_MAP_SIZING))
            pending = s;
    }
    if (pending == NULL)
        return;
    enum tl_ring_err e = tl_ring_map_step(&pending->map, now);
    if (e == TL_RING_OK && pending->map.phase == TL_MAP_READY) {
        if (!engine_lock(d, pending)) {
            atomic_store_explicit(&d->stop, true, memory_order_relaxed);
            return;
        }
        if (tl_ring_consumer_init(&pending->cons, &pending->map) != TL_RING_OK) {
            tl_logf("tallyd: ring consumer: out of memory");
            return;
        }
        memset(&pending->durable, 0, sizeof pending->durable);
        hand_over(d, pending, d->ring == NULL);
    } else if (e != TL_RING_OK && e != TL_RING_PENDING && e != TL_RING_ERR_NOT_FOUND) {
        tl_logf("tallyd: ring %s: %s", pending->map.path, tl_ring_err_name(e));
        tl_ring_map_close(&pending->map);
        (void)tl_ring_map_init(&pending->map, d->cfg.engine_ring);
    }
}

/* Every 100 ms: is the name still the object we follow? */
static void ring_recheck(tl_daemon *d, uint64_t now) {
    tl_ring_side *cur = d->ring;
    if (cur == NULL || !cur->ready)
        return;
    tl_ring_identity id;
    enum tl_ring_err e = tl_ring_identity_read(d->cfg.engine_ring, &id);
    if (e != TL_RING_OK)
        return; /* NOT_FOUND in the unlink-and-create window: keep the old mapping */
    if (tl_ring_identity_equal(&id, &cur->map.identity))
        return;
    if (atomic_load_explicit(&d->ring_handoff, memory_order_acquire) != NULL)
        return;
    tl_ring_side *s = free_side(d);
    if (s == NULL)
        return; /* the previous old side is still being watched */
    if (tl_ring_map_init(&s->map, d->cfg.engine_ring) == TL_RING_OK)
        ring_attach_step(d, now);
}

/* The old object after a switch: if its producer still beats, two
 * producers claim one engine (ring.md "Two producers"). */
typedef struct retired_watch {
    tl_ring_side *side;
    uint64_t beat_at_switch;
    uint64_t since_ns;
    bool reported;
} retired_watch;

static retired_watch watch;

static void retired_step(tl_daemon *d, uint64_t now) {
    /* acquire: the hot loop stopped using the side before it stored it. */
    tl_ring_side *old = atomic_exchange_explicit(&d->ring_retired, NULL, memory_order_acquire);
    if (old != NULL) {
        if (watch.side != NULL) {
            tl_ring_consumer_free(&watch.side->cons);
            tl_ring_map_close(&watch.side->map);
            watch.side->ready = false;
        }
        watch.side = old;
        watch.beat_at_switch = tl_ring_producer_heartbeat(&old->map);
        watch.since_ns = now;
        watch.reported = false;
    }
    if (watch.side == NULL)
        return;
    uint64_t beat = tl_ring_producer_heartbeat(&watch.side->map);
    if (!watch.reported && beat > watch.beat_at_switch) {
        watch.reported = true;
        tl_ctl_msg m;
        memset(&m, 0, sizeof m);
        m.type = TL_CTL_DUAL_PRODUCER;
        (void)tl_spsc_push(&d->ctl, &m);
        tl_logf("tallyd: the replaced ring object's producer still beats: DUAL_PRODUCER");
    }
    /* Watched for 10 s (40 stale periods), then let go. */
    if (now - watch.since_ns > 10000000000ull) {
        tl_ring_consumer_free(&watch.side->cons);
        tl_ring_map_close(&watch.side->map);
        watch.side->ready = false;
        watch.side = NULL;
    }
}

/* ---- the saved position ---- */

static void save_position(tl_daemon *d) {
    /* Acquire pairs with the hot loop's release: the value is whole. */
    uint64_t seq = atomic_load_explicit(&d->saved_seq, memory_order_acquire);
    if (seq == 0)
        return;
    char tmp[600], path[600], line[32];
    snprintf(path, sizeof path, "%s/position", d->cfg.state_dir);
    snprintf(tmp, sizeof tmp, "%s/position.tmp", d->cfg.state_dir);
    int n = snprintf(line, sizeof line, "%llu\n", (unsigned long long)seq);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    bool ok = write(fd, line, (size_t)n) == n && fdatasync(fd) == 0;
    close(fd);
    if (ok && rename(tmp, path) == 0) {
        tl_ring_side *r = d->ring;
        if (r != NULL && r->ready)
            tl_ring_consumer_set_wal_seq(&r->map, seq);
    }
}

/* ---- peer counters (peer.md: persisted from time to time) ---- */

/* <state_dir>/peer_counters, one line each:
 *   self <the counter our next start must stay above>
 *   <node_id hex> <the last counter accepted from that node>
 * Our own is stored with one second of headroom (1e9): our counter tracks
 * CLOCK_REALTIME ns, so after a crash max(persisted + 1, clock) is above
 * every counter sent, even when the clock stepped back by up to the
 * headroom. Replaced atomically (tmp, fdatasync, rename). */
#define PEER_SELF_HEADROOM 1000000000ull

int tl_peer_counters_load(const tl_daemon *d, uint64_t out[TL_PEER_NODES_MAX + 1]) {
    memset(out, 0, (TL_PEER_NODES_MAX + 1) * sizeof out[0]);
    char path[600];
    snprintf(path, sizeof path, "%s/peer_counters", d->cfg.state_dir);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    char line[128];
    /* Bounded: one line per node and ours; more is ignored. */
    for (unsigned i = 0; i < 4 * TL_PEER_NODES_MAX && fgets(line, sizeof line, f) != NULL; i++) {
        char name[40];
        unsigned long long v;
        if (sscanf(line, "%39s %llu", name, &v) != 2)
            continue;
        if (strcmp(name, "self") == 0) {
            out[TL_PEER_NODES_MAX] = v;
            continue;
        }
        uint8_t id[TL_ID_BYTES];
        if (!tl_admin_parse_id(name, strlen(name), id))
            continue;
        for (uint32_t k = 0; k < d->cfg.peer_count; k++)
            if (memcmp(d->cfg.peers[k].node_id, id, TL_ID_BYTES) == 0)
                out[k] = v;
    }
    fclose(f);
    return 0;
}

void tl_peer_counters_save(tl_daemon *d) {
    if (d->peer_udp == NULL || d->loop == NULL)
        return;
    uint32_t n = d->lcfg.peer.node_count;
    uint64_t now[TL_PEER_NODES_MAX + 1];
    bool changed = false;
    for (uint32_t i = 0; i < n; i++) {
        /* acquire: pairs with the loop's release; the value is whole. */
        now[i] = atomic_load_explicit(&d->loop->peer.nodes[i].counter_pub, memory_order_acquire);
        changed |= now[i] > d->peer_saved[i];
    }
    uint64_t sent = atomic_load_explicit(&d->loop->peer.send_counter_pub, memory_order_acquire);
    uint64_t self = d->peer_saved[TL_PEER_NODES_MAX];
    if (sent != 0 && sent + PEER_SELF_HEADROOM > self) {
        self = sent + PEER_SELF_HEADROOM;
        changed = true;
    }
    if (!changed)
        return;
    char tmp[600], path[600], buf[64 * (TL_PEER_NODES_MAX + 1)];
    snprintf(path, sizeof path, "%s/peer_counters", d->cfg.state_dir);
    snprintf(tmp, sizeof tmp, "%s/peer_counters.tmp", d->cfg.state_dir);
    size_t len = (size_t)snprintf(buf, sizeof buf, "self %llu\n", (unsigned long long)self);
    for (uint32_t i = 0; i < n; i++) {
        char hex[33];
        tl_admin_format_id(d->cfg.peers[i].node_id, hex);
        hex[32] = '\0';
        uint64_t v = now[i] > d->peer_saved[i] ? now[i] : d->peer_saved[i];
        len +=
            (size_t)snprintf(buf + len, sizeof buf - len, "%s %llu\n", hex, (unsigned long long)v);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    size_t off = 0;
    bool ok = true;
    while (ok && off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        off += w > 0 ? (size_t)w : 0;
    }
    ok = ok && fdatasync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0)
        return; /* tried again at the next pass */
    for (uint32_t i = 0; i < n; i++)
        if (now[i] > d->peer_saved[i])
            d->peer_saved[i] = now[i];
    d->peer_saved[TL_PEER_NODES_MAX] = self;
}

void tl_control_pass(tl_daemon *d, uint64_t now, uint64_t now_real) {
    tl_out o;
    for (int i = 0; i < 4096 && tl_spsc_pop(&d->out, &o); i++) {
        on_out(d, &o, now_real);
        tl_alerts_on_out(d->alerts, &o, now_real); /* queued: POSTed below, never waited on */
        if (d->api != NULL)
            tl_api_on_out(d->api, &o, now, now_real);
    }
    if (d->api != NULL)
        tl_api_pass(d->api, now, now_real); /* HTTP, canary, reconcile results */
    tl_audit_tick(&d->audit, now, d->cfg.audit_max_delay_ms);
    tl_actuator_control_tick(&d->act, now);
    /* Relaxed: this thread is ledger_q's only producer (the bundle keeps
     * the replies pushed during this pass). */
    uint64_t ledger_head = atomic_load_explicit(&d->ledger_q.head, memory_order_relaxed);
    tl_ledger_poll_pass(d->ledger, now); /* never blocks: curl multi */
    tl_lease_poll_pass(d->lease, now);   /* never blocks: curl multi */
    tl_alerts_pass(d->alerts, now);      /* never blocks: curl multi */
    tl_bundle_note_ledger(d->bundle, &d->ledger_q, ledger_head);
    if (d->lcfg.ring) {
        ring_attach_step(d, now);
        if (now - d->last_recheck_ns >= 100000000ull) {
            d->last_recheck_ns = now;
            ring_recheck(d, now);
        }
        retired_step(d, now);
    }
    if (now - d->last_position_ns >= 1000000000ull) {
        d->last_position_ns = now;
        save_position(d);
    }
    if (now - d->last_peer_save_ns >= 1000000000ull) {
        d->last_peer_save_ns = now;
        tl_peer_counters_save(d);
    }
}

void *tl_control_main(void *arg) {
    tl_daemon *d = arg;
    /* Keep off the hot loop's core: a waking control thread would preempt
     * the spinning loop there. Every other CPU is fine. */
    if (d->cfg.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1) {
            CPU_CLR((int)d->cfg.cpu, &set);
            (void)sched_setaffinity(0, sizeof set, &set);
        }
    }
    /* Relaxed: the stop flag publishes nothing. The control thread keeps
     * draining until the hot loop has stopped, so nothing it emitted is lost. */
    while (!atomic_load_explicit(&d->hot_stopped, memory_order_acquire)) {
        tl_control_pass(d, tl_now_mono_ns(), tl_now_real_ns());
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
    tl_control_pass(d, tl_now_mono_ns(), tl_now_real_ns());
    return NULL;
}
