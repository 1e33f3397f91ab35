/* hotloop.c: tallyd's hot loop thread and the adapters that wire the ring
 * consumer (shm/), the WAL tailer (io/), the queues and the actuator into
 * core/loop.c's ops.
 *
 * Everything here runs on one pinned thread. It takes no lock, allocates
 * nothing, and makes no blocking system call: the ring is memory, the tailer
 * is io_uring, the admin socket is non-blocking, the queues are lock-free.
 */
#include "daemon.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"

uint64_t tl_now_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t tl_now_real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the ring ---- */

static uint16_t ring_reason(const tl_ring_event *ev) {
    switch (ev->reason) {
        case TL_RING_CORRUPT_CHECKSUM:
            return TL_REASON_RING_COPY;
        case TL_RING_CORRUPT_BAD_PAD_LEN:
        case TL_RING_CORRUPT_BAD_PAD:
            return TL_REASON_RING_PAD;
        case TL_RING_CORRUPT_BAD_LEN:
        case TL_RING_CORRUPT_BAD_POSITION:
            return TL_REASON_RING_LEN;
        case TL_RING_CORRUPT_REPLAY_AHEAD:
            return TL_REASON_REPLAY_FLAG;
        case TL_RING_CORRUPT_BAD_FIELDS:
            return (uint16_t)ev->rec_err;
        default:
            return TL_REASON_NONE;
    }
}

/* A new incarnation the control thread mapped: follow it from now on. */
static void adopt_ring(tl_daemon *d) {
    /* acquire: the control thread filled the side (map, consumer, durable
     * reader) before its release store of the pointer. */
    tl_ring_side *next = atomic_exchange_explicit(&d->ring_handoff, NULL, memory_order_acquire);
    if (next == NULL)
        return;
    tl_ring_side *old = d->ring;
    d->ring = next;
    d->consumer_following = false;
    /* release: we no longer touch the old side once the control thread sees it. */
    atomic_store_explicit(&d->ring_retired, old, memory_order_release);
}

static bool ring_poll(void *ctx, uint64_t last_delivered, tl_src_ring_ev *out) {
    tl_daemon *d = ctx;
    tl_ring_side *r = d->ring;
    if (r == NULL || !r->ready)
        return false;
    tl_ring_event ev;
    /* PADs only move the position: bounded, a PAD is followed by a record
     * or by nothing. */
    for (int i = 0; i < 4; i++) {
        enum tl_ring_ev t = tl_ring_poll(&r->cons, last_delivered, &ev);
        memset(out, 0, sizeof *out);
        switch (t) {
            case TL_RING_EV_NONE:
                return false;
            case TL_RING_EV_PAD:
                continue;
            case TL_RING_EV_RECORD:
                out->type = TL_SRC_RING_RECORD;
                out->rec = ev.rec;
                out->len = ev.len;
                out->replay = ev.replay;
                out->position = ev.position;
                out->expected_seq = ev.expected;
                return true;
            case TL_RING_EV_LAPPED:
                out->type = TL_SRC_RING_LAPPED;
                out->position = ev.position;
                return true;
            case TL_RING_EV_ATTACHED:
                out->type = TL_SRC_RING_ATTACHED;
                out->position = ev.position;
                out->expected_seq = ev.expected;
                return true;
            case TL_RING_EV_CORRUPT:
                out->type = TL_SRC_RING_CORRUPT;
                out->position = ev.position;
                out->seq = ev.seq;
                out->reason = ring_reason(&ev);
                return true;
            default:
                return false;
        }
    }
    return false;
}

static void engine_status(void *ctx, tl_engine_status *st) {
    tl_daemon *d = ctx;
    memset(st, 0, sizeof *st);
    tl_ring_side *r = d->ring;
    if (r == NULL || !r->ready)
        return;
    st->attached = true;
    memcpy(st->engine_id, r->map.header.engine_id, TL_ID_BYTES);
    st->heartbeat_mono_ns = tl_ring_producer_heartbeat(&r->map);
    tl_ring_durable snap;
    enum tl_durable_status s = tl_ring_durable_read(&r->durable, r->map.ctl, d->loop->now_ns,
                                                    (uint32_t)d->cfg.engine_stale_ms, &snap);
    st->durable_valid = r->durable.have_snap;
    st->durable_read_failed = s != TL_DURABLE_ACCEPTED; /* LEDGER_AHEAD waits for a good read */
    st->durable_stuck_odd = s == TL_DURABLE_STUCK;
    st->durable_seq = snap.seq;
    st->durable_segment_seq = snap.segment_first_seq;
    st->durable_offset = snap.offset;
}

static void fast_mode(void *ctx, uint32_t scope, uint8_t mode) {
    tl_daemon *d = ctx;
    tl_ring_side *r = d->ring;
    if (r == NULL || !r->ready)
        return;
    /* The loop asks for the word it wants; it only lowers on an applied
     * relaxation (ring.md), so try the raise, then the lower. */
    bool changed = false;
    if (scope == 0) {
        (void)tl_ring_fast_raise_global(r->map.ctl, mode, &changed);
        if (!changed)
            (void)tl_ring_fast_lower_global(r->map.ctl, mode, &changed);
    } else {
        (void)tl_ring_fast_raise_symbol(r->map.ctl, scope, mode, &changed);
        if (!changed)
            (void)tl_ring_fast_lower_symbol(r->map.ctl, scope, mode, &changed);
    }
}

static void fast_withdrawals(void *ctx, bool on) {
    tl_daemon *d = ctx;
    tl_ring_side *r = d->ring;
    if (r == NULL || !r->ready)
        return;
    bool changed;
    if (on)
        (void)tl_ring_fast_halt_withdrawals(r->map.ctl, &changed);
    else
        (void)tl_ring_fast_resume_withdrawals(r->map.ctl, &changed);
}

/* ---- the WAL ---- */

static bool wal_poll(void *ctx, tl_wal_ev *ev) {
    tl_daemon *d = ctx;
    if (d->tail == NULL)
        return false;
    const tl_engine_status *st = &d->loop->engine;
    tl_wal_tail_durable(d->tail, st->attached && st->durable_valid, st->durable_seq,
                        st->durable_segment_seq, st->durable_offset);
    bool got = tl_wal_tail_poll(d->tail, ev);
    /* release: pairs with the control thread's acquire; it persists this
     * restart position (never beyond the durable seq, wal.md). */
    atomic_store_explicit(&d->saved_seq, tl_wal_tail_position(d->tail).seq, memory_order_release);
    if (got && ev->type == TL_WAL_EV_CAUGHT_UP && !d->consumer_following && d->ring != NULL &&
        d->ring->ready) {
        d->consumer_following = true;
        tl_ring_consumer_set_state(&d->ring->map, TL_CONSUMER_FOLLOWING);
    }
    return got;
}

/* An xwal1 log (io/xwal1_tail.h): no ring, no durable hint, and no saved
 * position (seqs count per symbol; a restart reads the log again). */
static bool xwal1_wal_poll(void *ctx, tl_wal_ev *ev) {
    tl_daemon *d = ctx;
    return d->xtail != NULL && tl_xwal1_tail_poll(d->xtail, ev);
}

/* ---- the queues ---- */

static bool ctl_poll(void *ctx, tl_ctl_msg *m) {
    tl_daemon *d = ctx;
    return tl_spsc_pop(&d->ctl, m);
}

/* Ledger watermarks: the loop reads the front slot in place and holds it
 * there while it must wait (admin/ledger_poll.h). */
static const tl_ledger_wm *ledger_front(void *ctx) {
    tl_daemon *d = ctx;
    return tl_spsc_front(&d->ledger_q);
}

static void ledger_pop(void *ctx) {
    tl_daemon *d = ctx;
    tl_spsc_release(&d->ledger_q);
}

/* Lease readings, in the poller's order (admin/lease_poll.h). */
static bool lease_poll(void *ctx, tl_lease_reading *r) {
    tl_daemon *d = ctx;
    return tl_spsc_pop(&d->lease_q, r);
}

static bool emit(void *ctx, const tl_out *o) {
    tl_daemon *d = ctx;
    return tl_spsc_push(&d->out, o);
}

/* The loop's ops take one ctx; the actuator's functions want theirs. */
static int send_adapter(void *ctx, const tl_action *a, uint64_t now_real_ns) {
    tl_daemon *d = ctx;
    return tl_actuator_send(&d->act, a, now_real_ns);
}

static bool reply_adapter(void *ctx, tl_cmd_reply *r) {
    tl_daemon *d = ctx;
    return tl_actuator_reply(&d->act, r);
}

/* ---- peers (peer.md) ---- */

/* One datagram from the kernel socket or the DPDK port, through rule 1
 * (shape, identity, mac) before the loop sees it. */
static bool peer_poll(void *ctx, const uint8_t *self_id, tl_peer_ev *ev) {
    tl_daemon *d = ctx;
    const uint8_t *b;
    size_t n;
    bool got = d->peer_dpdk != NULL ? tl_peer_dpdk_recv(d->peer_dpdk, &b, &n)
                                    : tl_peer_udp_recv(d->peer_udp, &b, &n);
    if (got)
        tl_peer_check(d->peer_keys, b, n, self_id, ev);
    return got;
}

/* Signed with keys.peer, to every peer, on the kernel socket (both paths). */
static int peer_send(void *ctx, const tl_peer_msg *m) {
    tl_daemon *d = ctx;
    uint8_t buf[TL_PEER_DGRAM_BYTES];
    tl_peer_sign(d->peer_key, m, buf);
    return tl_peer_udp_send(d->peer_udp, buf, sizeof buf) == 0 ? 0 : -1;
}

void tl_hot_ops(tl_daemon *d, tl_loop_ops *ops) {
    memset(ops, 0, sizeof *ops);
    ops->ctx = d;
    ops->ring_poll = d->lcfg.ring ? ring_poll : NULL;
    ops->engine_status = d->lcfg.ring ? engine_status : NULL;
    ops->wal_poll = d->lcfg.dialect == TL_DIALECT_XWAL1 ? xwal1_wal_poll : wal_poll;
    ops->ctl_poll = ctl_poll;
    ops->emit = emit;
    ops->fast_mode = fast_mode;
    ops->fast_withdrawals = fast_withdrawals;
    ops->send = send_adapter;
    ops->reply_poll = reply_adapter;
    if (d->peer_udp != NULL) {
        ops->peer_poll = peer_poll;
        ops->peer_send = peer_send;
    }
    ops->ledger_front = d->lcfg.ledger.enabled ? ledger_front : NULL;
    ops->ledger_pop = d->lcfg.ledger.enabled ? ledger_pop : NULL;
    ops->lease_poll = d->lcfg.lease.enabled ? lease_poll : NULL;
}

static void pin(tl_daemon *d) {
    if (d->cfg.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET((int)d->cfg.cpu, &set);
        d->hot_pinned = sched_setaffinity(0, sizeof set, &set) == 0;
    }
    if (d->cfg.mlock)
        d->mlocked = mlockall(MCL_CURRENT | MCL_FUTURE) == 0;
}

/* How far the producer's published position is ahead of ours. */
static uint64_t ring_lag_bytes(const tl_daemon *d) {
    const tl_ring_side *r = d->ring;
    if (r == NULL || !r->ready)
        return 0;
    /* Relaxed: a gauge; publish only moves forward, a stale value is fine. */
    uint64_t publish = atomic_load_explicit(&r->map.ctl->publish, memory_order_relaxed);
    return publish > r->cons.position ? publish - r->cons.position : 0;
}

/* backoff: spin, then yield, then sleep up to 50 us (behavior.md). */
static void idle(bool spin, uint32_t *idle_rounds) {
    (*idle_rounds)++;
    if (spin || *idle_rounds < 64) {
        __builtin_ia32_pause();
        return;
    }
    if (*idle_rounds < 128) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, *idle_rounds < 256 ? 10000 : 50000};
    nanosleep(&ts, NULL);
}

void *tl_hot_main(void *arg) {
    tl_daemon *d = arg;
    pin(d);
    if (d->peer_dpdk != NULL)
        (void)tl_peer_dpdk_thread_init(d->peer_dpdk); /* else: no mempool cache, still works */
    bool spin = strcmp(d->cfg.idle, "spin") == 0;
    uint32_t idle_rounds = 0;
    uint64_t beat_ns = d->cfg.deadman_beat_ms * 1000000ull / 2;
    /* tally_loop_iteration_seconds: one iteration in 64 is timed (two clock
     * reads cost ~40 ns; timing them all would be a tax on every step). */
    tl_out stats;
    memset(&stats, 0, sizeof stats);
    stats.type = TL_OUT_STATS;
    uint64_t next_stats_ns = 0;
    uint64_t warm_ns = 0, warm_rounds = 0;
    uint64_t iter = 0;
    /* Relaxed: a stop flag; nothing is published with it. */
    while (!atomic_load_explicit(&d->stop, memory_order_relaxed)) {
        uint64_t now = tl_now_mono_ns();
        adopt_ring(d);
        if (d->ring != NULL && d->ring->ready && now - d->ring_beat_ns >= beat_ns) {
            tl_ring_consumer_beat(&d->ring->map, now);
            d->ring_beat_ns = now;
        }
        uint32_t work = tl_loop_step(d->loop, now, tl_now_real_ns());
        if ((++iter & 63u) == 0) {
            uint64_t took = tl_now_mono_ns() - now;
            uint32_t b = 0;
            while (b + 1 < TL_LOOP_HIST_BUCKETS && took >= (64ull << b))
                b++;
            stats.u.stats.iter_hist[b]++;
            stats.u.stats.iter_sum_ns += took;
            stats.u.stats.iter_samples++;
        }
        if (now >= next_stats_ns) {
            next_stats_ns = now + 100000000ull;
            uint64_t hist[TL_LOOP_HIST_BUCKETS];
            memcpy(hist, stats.u.stats.iter_hist, sizeof hist);
            uint64_t sum = stats.u.stats.iter_sum_ns, samples = stats.u.stats.iter_samples;
            tl_loop_stats_snapshot(d->loop, &stats.u.stats);
            stats.u.stats.ring_lag_bytes = ring_lag_bytes(d);
            if (d->xtail != NULL) /* the hot thread owns the tailer: read it here */
                tl_xwal1_tail_gauges(d->xtail, &stats.u.stats.tail);
            memcpy(stats.u.stats.iter_hist, hist, sizeof hist);
            stats.u.stats.iter_sum_ns = sum;
            stats.u.stats.iter_samples = samples;
            (void)tl_spsc_push(&d->out, &stats); /* a full queue skips one snapshot */
        }
        if (work == 0 && now - warm_ns >= 1000000ull) {
            /* The halt path runs rarely, so it would run cold: exercise it
             * every millisecond of idle time (plan, describe, gate, build
             * and sign a line) and ping the engine every 10 ms. */
            warm_ns = now;
            tl_loop_warm(d->loop);
            tl_actuator_warm(&d->act, tl_now_real_ns(), ++warm_rounds % 10 == 0);
        }
        if (work != 0)
            idle_rounds = 0;
        else
            idle(spin, &idle_rounds);
    }
    atomic_store_explicit(&d->hot_stopped, true, memory_order_release);
    return NULL;
}
