/* bench_peer.c: the peer datagram paths (peer.md). Not run by CI.
 *
 *   bench_peer [--runs N] [--count N] [--trials N] [--no-dpdk]
 *
 * Cases (each run repeats them; medians and spreads over the runs):
 *   verify    tl_peer_check on signed 136-byte datagrams in memory: shape,
 *             identity and HMAC-SHA256 verified, one core. Target >= 1 M/s.
 *   kernel    io/peer_udp (recvmmsg, 64 a call) + tl_peer_check over
 *             127.0.0.1: the socket is filled first (up to 100000
 *             datagrams), then drained and verified on one core; the rate
 *             is over the drain time (the loopback sender's own cost, far
 *             higher per datagram on this VM, is left out). Target >= 1 M/s.
 *   dpdk      net_pcap with infinite_rx=1 replaying a capture of signed
 *             datagrams: io/peer_dpdk rx_burst + frame parse + tl_peer_check
 *             on one core. Target >= 3 M/s.
 *   halt_loop from tl_peer_check of a divergent CHECKPOINT datagram (inside
 *             the loop's peer_poll) to the HARD_HALT action reaching the
 *             loop's send op: the loop's whole path (mac, receive rules,
 *             comparison, finding, action table, gates, fast-path word).
 *   halt_udp  the same from the sender's sendto() of that datagram over
 *             127.0.0.1 to the send op, with the loop spinning on another
 *             core. Target p99 <= 20 us.
 * The send op only stamps the time: the admin socket write that follows it
 * in tallyd (io of the actuator) is not part of these numbers.
 *
 * The two vCPUs are noisy: read the medians, and the spread (min, max).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "core/loop.h"
#include "io/peer_dpdk.h"
#include "io/peer_frame.h"
#include "io/peer_mac.h"
#include "io/peer_udp.h"

#define MAX_RUNS 64

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu) {
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    (void)sched_setaffinity(0, sizeof s, &s);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct stat3 {
    double median, min, max;
} stat3;

static stat3 stats_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    stat3 s = {v[n / 2], v[0], v[n - 1]};
    return s;
}

static tl_peer_key key;
static tl_peer_keyring kr;
static uint8_t self_id[16];

static void signed_dgram(uint8_t out[136], uint64_t counter, uint16_t kind, uint64_t seq) {
    tl_peer_msg m;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    m.role = TL_PEER_STANDBY;
    memset(m.node_id, 0xbb, 16);
    m.counter = counter;
    m.ts_ns = counter;
    m.applied_seq = seq;
    m.applied_checksum = seq * 0x9e3779b97f4a7c15ull;
    m.fence = 1;
    if (kind == TL_PEER_CHECKPOINT)
        memset(m.state_hash, 0x5a, 32);
    tl_peer_sign(&key, &m, out);
}

/* ---- verify ---- */

static double bench_verify(uint64_t count) {
    enum { N = 1024 };
    static uint8_t d[N][136];
    for (int i = 0; i < N; i++)
        signed_dgram(d[i], (uint64_t)i + 1, TL_PEER_HEARTBEAT, (uint64_t)i + 1);
    uint64_t ok = 0;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < count; i++) {
        tl_peer_ev ev;
        tl_peer_check(&kr, d[i % N], 136, self_id, &ev);
        ok += ev.type == TL_PEER_EV_DGRAM;
    }
    uint64_t t = now_ns() - t0;
    if (ok != count) {
        fprintf(stderr, "verify: %llu of %llu passed\n", (unsigned long long)ok,
                (unsigned long long)count);
        exit(1);
    }
    return (double)count / ((double)t / 1e9) / 1e6;
}

/* ---- kernel UDP ---- */

/* The receiver's cost, isolated from the loopback sender's (on this VM the
 * kernel's loopback transmit costs more per datagram than our receive path):
 * fill the socket's buffer first, then time draining it with io/peer_udp
 * (recvmmsg batches of 64) and tl_peer_check. Rounds until `count` are
 * verified; the rate is over the drain time only. */
static double bench_kernel(uint64_t count) {
    tl_peer_udp_cfg c;
    memset(&c, 0, sizeof c);
    c.listen = "127.0.0.1:0";
    c.batch = 64;
    tl_peer_udp *u;
    char err[256];
    if (tl_peer_udp_open(&u, &c, err, sizeof err) != 0) {
        fprintf(stderr, "kernel: %s\n", err);
        exit(1);
    }
    int big = 512 << 20;
    (void)setsockopt(tl_peer_udp_fd(u), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons(tl_peer_udp_port(u));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    enum { B = 64 };
    static uint8_t d[B][136];
    struct mmsghdr m[B];
    struct iovec iov[B];
    for (int i = 0; i < B; i++) {
        signed_dgram(d[i], (uint64_t)i + 1, TL_PEER_HEARTBEAT, (uint64_t)i + 1);
        iov[i].iov_base = d[i];
        iov[i].iov_len = 136;
        memset(&m[i], 0, sizeof m[i]);
        m[i].msg_hdr.msg_name = &to;
        m[i].msg_hdr.msg_namelen = sizeof to;
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    pin(0);
    uint64_t verified = 0, drain_ns = 0;
    while (verified < count) {
        /* fill: up to 100000 queued, or until the buffer is full */
        uint64_t queued = 0;
        while (queued < 100000) {
            int n = sendmmsg(fd, m, B, 0);
            if (n <= 0)
                break;
            queued += (uint64_t)n;
        }
        uint64_t t0 = now_ns(), got = 0;
        const uint8_t *b;
        size_t n;
        while (tl_peer_udp_recv(u, &b, &n)) {
            tl_peer_ev ev;
            tl_peer_check(&kr, b, n, self_id, &ev);
            got += ev.type == TL_PEER_EV_DGRAM;
        }
        drain_ns += now_ns() - t0;
        verified += got;
        if (got == 0)
            break;
    }
    close(fd);
    tl_peer_udp_close(u);
    return drain_ns == 0 ? 0 : (double)verified / ((double)drain_ns / 1e9) / 1e6;
}

/* ---- DPDK net_pcap, infinite_rx ---- */

static tl_peer_dpdk *dpdk;

static int dpdk_open(const char *dir) {
    char path[512], vdev[600];
    snprintf(path, sizeof path, "%s/bench_peer.pcap", dir);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    struct {
        uint32_t magic;
        uint16_t major, minor;
        int32_t zone;
        uint32_t sigfigs, snaplen, linktype;
    } h = {0xa1b2c3d4u, 2, 4, 0, 0, 65535, 1};
    fwrite(&h, sizeof h, 1, f);
    const uint8_t ma[6] = {2, 0, 0, 0, 0, 1}, mb[6] = {2, 0, 0, 0, 0, 2};
    for (int i = 0; i < 1024; i++) {
        uint8_t d[136], fr[256];
        signed_dgram(d, (uint64_t)i + 1, TL_PEER_HEARTBEAT, (uint64_t)i + 1);
        size_t n = tl_peer_frame_build(fr, sizeof fr, mb, ma, 0x0a000002, 0x0a000001, 40000, 7471,
                                       d, sizeof d);
        uint32_t rec[4] = {(uint32_t)i, 0, (uint32_t)n, (uint32_t)n};
        fwrite(rec, sizeof rec, 1, f);
        fwrite(fr, 1, n, f);
    }
    fclose(f);
    snprintf(vdev, sizeof vdev, "--vdev=net_pcap0,rx_pcap=%s,infinite_rx=1", path);
    tl_peer_dpdk_cfg c;
    memset(&c, 0, sizeof c);
    const char *args[] = {"--no-huge",      "-m", "256", "--no-shconf",         "--no-pci",
                          "--no-telemetry", "-l", "0",   "--log-level=*:error", vdev};
    c.eal_argc = sizeof args / sizeof args[0];
    for (uint32_t i = 0; i < c.eal_argc; i++)
        c.eal_argv[i] = args[i];
    c.port_name = "net_pcap0";
    c.listen = "10.0.0.1:7471";
    c.burst = 32;
    c.mbufs = 8191;
    char err[512];
    if (tl_peer_dpdk_open(&dpdk, &c, err, sizeof err) != 0) {
        fprintf(stderr, "dpdk: %s\n", err);
        return -1;
    }
    return tl_peer_dpdk_thread_init(dpdk);
}

static double bench_dpdk(uint64_t count) {
    pin(0);
    uint64_t got = 0, ok = 0;
    uint64_t t0 = now_ns();
    while (got < count) {
        const uint8_t *b;
        size_t n;
        if (!tl_peer_dpdk_recv(dpdk, &b, &n))
            continue;
        got++;
        tl_peer_ev ev;
        tl_peer_check(&kr, b, n, self_id, &ev);
        ok += ev.type == TL_PEER_EV_DGRAM;
    }
    uint64_t t = now_ns() - t0;
    if (ok != got)
        fprintf(stderr, "dpdk: %llu of %llu verified\n", (unsigned long long)ok,
                (unsigned long long)got);
    return (double)got / ((double)t / 1e9) / 1e6;
}

/* ---- divergent CHECKPOINT to HARD_HALT ---- */

#define H_RECORDS 64u

typedef struct halt_ctx {
    uint8_t recs[H_RECORDS][256] __attribute__((aligned(8)));
    uint64_t next_rec;
    tl_seg_hdr hdr;
    bool hdr_sent;
    uint8_t dgram[136];
    bool dgram_ready; /* halt_loop: peer_poll hands it out once */
    tl_peer_udp *udp; /* halt_udp: the socket instead */
    uint64_t t_arrive;
    _Atomic uint64_t t_sent; /* halt_udp: the sender's stamp */
    uint64_t t_halt;
    uint64_t ckpt_seq;
} halt_ctx;

static bool h_wal_poll(void *ctx, tl_wal_ev *ev) {
    halt_ctx *h = ctx;
    memset(ev, 0, sizeof *ev);
    if (!h->hdr_sent) {
        h->hdr_sent = true;
        ev->type = TL_WAL_EV_SEGMENT;
        ev->hdr = &h->hdr;
        ev->name_first_seq = 1;
        ev->loc.segment = 1;
        return true;
    }
    if (h->next_rec >= H_RECORDS)
        return false;
    ev->type = TL_WAL_EV_RECORD;
    tl_rec_view_native(&ev->view, h->recs[h->next_rec], false);
    ev->loc.segment = 1;
    ev->loc.offset = 4096 + h->next_rec * 256;
    h->next_rec++;
    return true;
}

static bool h_ctl_poll(void *ctx, tl_ctl_msg *m) {
    (void)ctx;
    (void)m;
    return false;
}

static void h_engine(void *ctx, tl_engine_status *st) {
    (void)ctx;
    memset(st, 0, sizeof *st);
    st->attached = true;
    st->heartbeat_mono_ns = now_ns();
    st->durable_valid = true;
    st->durable_seq = H_RECORDS;
    memcpy(st->engine_id, self_id, 16);
}

static int h_send(void *ctx, const tl_action *a, uint64_t now_real) {
    (void)now_real;
    halt_ctx *h = ctx;
    if (h->t_halt == 0 && a->cmd == TL_CMD_SET_SYMBOL_MODE && a->mode == TL_MODE_HARD_HALT)
        h->t_halt = now_ns();
    return 0;
}

static bool h_reply(void *ctx, tl_cmd_reply *r) {
    (void)ctx;
    (void)r;
    return false;
}

static void h_fast_mode(void *ctx, uint32_t scope, uint8_t mode) {
    (void)ctx;
    (void)scope;
    (void)mode;
}

static void h_fast_wd(void *ctx, bool on) {
    (void)ctx;
    (void)on;
}

static bool h_emit(void *ctx, const tl_out *o) {
    (void)ctx;
    (void)o;
    return true;
}

static bool h_peer_poll(void *ctx, const uint8_t *self, tl_peer_ev *ev) {
    halt_ctx *h = ctx;
    if (h->udp != NULL) {
        const uint8_t *b;
        size_t n;
        if (!tl_peer_udp_recv(h->udp, &b, &n))
            return false;
        h->t_arrive = now_ns();
        tl_peer_check(&kr, b, n, self, ev);
        return true;
    }
    if (!h->dgram_ready)
        return false;
    h->dgram_ready = false;
    h->t_arrive = now_ns();
    tl_peer_check(&kr, h->dgram, 136, self, ev);
    return true;
}

static int h_peer_send(void *ctx, const tl_peer_msg *m) {
    (void)ctx;
    (void)m;
    return 0;
}

static tl_loop *loop;
static void *loop_mem;

/* A loop that has read H_RECORDS durable records, a CHECKPOINT last. */
static void halt_setup(halt_ctx *h) {
    memset(h->recs, 0, sizeof h->recs);
    h->next_rec = 0;
    h->hdr_sent = false;
    h->t_arrive = h->t_halt = 0;
    memset(&h->hdr, 0, sizeof h->hdr);
    h->hdr.first_seq = 1;
    h->hdr.fence = 1;
    memcpy(h->hdr.leader_id, self_id, 16);
    uint64_t parent = 0;
    for (uint64_t i = 0; i < H_RECORDS; i++) {
        tl_rec_meta m = {.parent = parent, .seq = i + 1, .fence = 1, .ts_ns = 1 + i};
        if (i + 1 == H_RECORDS) {
            tl_body_checkpoint c;
            memset(&c, 0, sizeof c);
            memset(c.state_hash, 0x11, 32);
            m.kind = TL_KIND_CHECKPOINT;
            tl_rec_encode(h->recs[i], 256, &m, &c, sizeof c);
        } else {
            m.kind = TL_KIND_HEARTBEAT;
            tl_rec_encode(h->recs[i], 256, &m, NULL, 0);
        }
        parent = tl_rec_hdr_of(h->recs[i])->checksum;
    }
    h->ckpt_seq = H_RECORDS;
    tl_loop_cfg cfg;
    tl_loop_cfg_defaults(&cfg);
    cfg.window_records = 4096;
    cfg.max_symbols = 64;
    cfg.backlog = 64;
    cfg.ring = false;
    cfg.peer.node_count = 1;
    memset(cfg.peer.nodes[0].node_id, 0xbb, 16);
    cfg.peer.send = false;
    if (loop_mem == NULL) {
        loop_mem = aligned_alloc(64, (tl_loop_mem_bytes(&cfg) + 63) & ~(size_t)63);
        loop = aligned_alloc(64, (sizeof *loop + 63) & ~(size_t)63);
    }
    tl_loop_ops ops = {.ctx = h,
                       .wal_poll = h_wal_poll,
                       .ctl_poll = h_ctl_poll,
                       .engine_status = h_engine,
                       .send = h_send,
                       .reply_poll = h_reply,
                       .fast_mode = h_fast_mode,
                       .fast_withdrawals = h_fast_wd,
                       .emit = h_emit,
                       .peer_poll = h_peer_poll,
                       .peer_send = h_peer_send};
    tl_loop_init(loop, &cfg, &ops, loop_mem);
    /* ring off, so the engine status op is not polled: the WAL is the
     * durable history */
    uint64_t t = now_ns();
    for (int i = 0; i < 8; i++)
        tl_loop_step(loop, t + (uint64_t)i, 1795000000000000000ull);
}

static void divergent(uint8_t out[136], uint64_t counter, uint64_t seq) {
    tl_peer_msg m;
    memset(&m, 0, sizeof m);
    m.kind = TL_PEER_CHECKPOINT;
    m.role = TL_PEER_STANDBY;
    memset(m.node_id, 0xbb, 16);
    m.counter = counter;
    m.ts_ns = 1795000000000000000ull;
    m.applied_seq = seq;
    m.applied_checksum = 42;
    m.fence = 1;
    memset(m.state_hash, 0x22, 32);
    tl_peer_sign(&key, &m, out);
}

static void halt_loop(halt_ctx *h, double *out_us) {
    halt_setup(h);
    divergent(h->dgram, 1, h->ckpt_seq);
    h->dgram_ready = true;
    uint64_t t = now_ns();
    for (int i = 0; i < 4 && h->t_halt == 0; i++)
        tl_loop_step(loop, t + 100 + (uint64_t)i, 1795000000000000000ull);
    *out_us = h->t_halt != 0 ? (double)(h->t_halt - h->t_arrive) / 1e3 : -1;
}

typedef struct udp_sender {
    halt_ctx *h;
    uint16_t port;
    _Atomic int go; /* 1: send one; the sender sets 0 when sent */
    _Atomic bool quit;
} udp_sender;

static void *udp_sender_main(void *arg) {
    udp_sender *s = arg;
    pin(1);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons(s->port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    uint64_t counter = 1;
    /* acquire: the loop thread set up the loop before it raised go */
    while (!atomic_load_explicit(&s->quit, memory_order_acquire)) {
        if (atomic_load_explicit(&s->go, memory_order_acquire) == 0) {
            __builtin_ia32_pause();
            continue;
        }
        uint8_t d[136];
        divergent(d, counter++, H_RECORDS);
        /* release: the stamp is stored before the datagram can be seen */
        atomic_store_explicit(&s->h->t_sent, now_ns(), memory_order_release);
        (void)sendto(fd, d, sizeof d, 0, (struct sockaddr *)&to, sizeof to);
        atomic_store_explicit(&s->go, 0, memory_order_release);
    }
    close(fd);
    return NULL;
}

static int pct_cmp(const void *a, const void *b) {
    return cmp_d(a, b);
}

static void latency_report(const char *name, double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, pct_cmp);
    printf("| %s | us | %.2f | %.2f | %.2f | %.2f | %.2f |\n", name, v[n / 2],
           v[(int)((double)n * 0.9)], v[(int)((double)n * 0.99)], v[0], v[n - 1]);
}

int main(int argc, char **argv) {
    int runs = 7, trials = 2000;
    uint64_t count = 2000000;
    bool use_dpdk = true;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--trials") == 0 && i + 1 < argc)
            trials = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-dpdk") == 0)
            use_dpdk = false;
        else {
            fprintf(stderr, "usage: bench_peer [--runs N] [--count N] [--trials N] [--no-dpdk]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || trials < 10)
        return 2;
    uint8_t raw[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (uint8_t)i;
    tl_peer_key_init(&key, raw);
    kr.count = 1;
    memset(kr.ids[0], 0xbb, 16);
    kr.keys[0] = key;
    memset(self_id, 0xaa, 16);
    if (use_dpdk && dpdk_open("/tmp") != 0)
        use_dpdk = false;

    double v[MAX_RUNS], k[MAX_RUNS], d[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        pin(0);
        v[r] = bench_verify(count);
        k[r] = bench_kernel(count);
        d[r] = use_dpdk ? bench_dpdk(count) : 0;
    }
    stat3 sv = stats_of(v, runs), sk = stats_of(k, runs), sd = stats_of(d, runs);
    printf("runs %d, %llu datagrams each\n\n", runs, (unsigned long long)count);
    printf("| case | unit | median | min | max |\n|---|---|---|---|---|\n");
    printf("| verify (shape+identity+HMAC), 1 core | M/s | %.2f | %.2f | %.2f |\n", sv.median,
           sv.min, sv.max);
    printf("| kernel UDP: recvmmsg (64) + verify, draining a full socket, 1 core | M/s | %.2f | "
           "%.2f | %.2f |\n",
           sk.median, sk.min, sk.max);
    if (use_dpdk)
        printf("| DPDK net_pcap infinite_rx + frame + verify, 1 core | M/s | %.2f | %.2f | %.2f "
               "|\n",
               sd.median, sd.min, sd.max);

    /* latency */
    static halt_ctx h;
    double *lat = calloc((size_t)trials, sizeof *lat);
    pin(0);
    for (int i = 0; i < trials; i++)
        halt_loop(&h, &lat[i]);
    printf("\n%d trials each\n\n| path | unit | p50 | p90 | p99 | min | max |\n"
           "|---|---|---|---|---|---|---|\n",
           trials);
    latency_report("halt_loop: peer_poll -> HARD_HALT send op", lat, trials);

    tl_peer_udp_cfg uc;
    memset(&uc, 0, sizeof uc);
    uc.listen = "127.0.0.1:0";
    char err[256];
    if (tl_peer_udp_open(&h.udp, &uc, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    udp_sender s = {.h = &h, .port = tl_peer_udp_port(h.udp)};
    atomic_init(&s.go, 0);
    atomic_init(&s.quit, false);
    atomic_init(&h.t_sent, 0);
    pthread_t th;
    pthread_create(&th, NULL, udp_sender_main, &s);
    int done = 0;
    for (int i = 0; i < trials; i++) {
        tl_peer_udp *u = h.udp;
        halt_setup(&h);
        h.udp = u;
        atomic_store_explicit(&s.go, 1, memory_order_release);
        uint64_t t0 = now_ns();
        while (h.t_halt == 0 && now_ns() - t0 < 100000000ull)
            tl_loop_step(loop, now_ns(), 1795000000000000000ull);
        while (atomic_load_explicit(&s.go, memory_order_acquire) != 0)
            ;
        if (h.t_halt != 0)
            lat[done++] =
                (double)(h.t_halt - atomic_load_explicit(&h.t_sent, memory_order_acquire)) / 1e3;
    }
    atomic_store_explicit(&s.quit, true, memory_order_release);
    pthread_join(th, NULL);
    if (done >= 10)
        latency_report("halt_udp: sendto -> HARD_HALT send op", lat, done);
    printf("\nTargets: verify >= 1 M/s; DPDK >= 3 M/s; divergent CHECKPOINT -> HARD_HALT p99 <= "
           "20 us\n");
    tl_peer_udp_close(h.udp);
    tl_peer_dpdk_close(dpdk);
    free(lat);
    return 0;
}
