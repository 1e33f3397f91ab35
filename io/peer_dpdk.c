/* peer_dpdk.c: the DPDK receive path of peer datagrams (see peer_dpdk.h).
 * The only file of tally compiled with DPDK's flags. */
#include "io/peer_dpdk.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "core/assert.h"
#include "io/peer_udp.h"

struct tl_peer_dpdk {
    uint16_t port_id;
    bool port_started;
    uint32_t dst_ip_be; /* 0 = any */
    uint16_t udp_port;
    uint32_t burst;
    struct rte_mempool *pool;
    /* the current burst: frames [next, n) are not handed out yet; `held`
     * is the mbuf whose payload the caller holds until the next call */
    struct rte_mbuf *bufs[TL_PEER_DPDK_BURST_MAX];
    uint32_t n;
    uint32_t next;
    struct rte_mbuf *held;
    tl_peer_dpdk_stats st;
};

/* The EAL lives once per process. */
static bool eal_ready;
static unsigned pool_serial;

static int eal_init(const tl_peer_dpdk_cfg *cfg, char *err, size_t cap) {
    if (eal_ready)
        return 0;
    if (cfg->eal_argc > TL_PEER_DPDK_EAL_ARGS_MAX) {
        snprintf(err, cap, "peer.dpdk_eal_args: at most %u arguments", TL_PEER_DPDK_EAL_ARGS_MAX);
        return -1;
    }
    /* rte_eal_init may permute argv and keeps pointers into it: copies that
     * live as long as the process (`owned` keeps them reachable whatever
     * order the EAL leaves argv in). */
    static char *owned[TL_PEER_DPDK_EAL_ARGS_MAX];
    static char *argv[TL_PEER_DPDK_EAL_ARGS_MAX + 2];
    static char prog[] = "tally";
    int argc = 0;
    argv[argc++] = prog;
    for (uint32_t i = 0; i < cfg->eal_argc; i++) {
        if (owned[i] == NULL)
            owned[i] = strdup(cfg->eal_argv[i]);
        if (owned[i] == NULL) {
            snprintf(err, cap, "peer: out of memory");
            return -1;
        }
        argv[argc++] = owned[i];
    }
    argv[argc] = NULL;
    /* The EAL pins the calling thread to its main lcore: keep our own
     * affinity, which the threads started later inherit. */
    cpu_set_t saved;
    bool have_saved = sched_getaffinity(0, sizeof saved, &saved) == 0;
    int rc = rte_eal_init(argc, argv);
    if (have_saved)
        (void)sched_setaffinity(0, sizeof saved, &saved);
    if (rc < 0) {
        snprintf(err, cap, "peer.dpdk_eal_args: rte_eal_init: %s", rte_strerror(rte_errno));
        return -1;
    }
    eal_ready = true;
    return 0;
}

int tl_peer_dpdk_open(tl_peer_dpdk **out, const tl_peer_dpdk_cfg *cfg, char *err, size_t cap) {
    *out = NULL;
    if (cfg->burst > TL_PEER_DPDK_BURST_MAX) {
        snprintf(err, cap, "peer: DPDK burst at most %u", TL_PEER_DPDK_BURST_MAX);
        return -1;
    }
    struct sockaddr_in listen;
    if (tl_peer_udp_resolve(cfg->listen, &listen, err, cap) != 0)
        return -1;
    if (eal_init(cfg, err, cap) != 0)
        return -1;
    uint16_t port_id = cfg->port_id;
    if (cfg->port_name != NULL && rte_eth_dev_get_port_by_name(cfg->port_name, &port_id) != 0) {
        snprintf(err, cap, "peer: no DPDK port named %s", cfg->port_name);
        return -1;
    }
    if (!rte_eth_dev_is_valid_port(port_id)) {
        snprintf(err, cap, "peer.dpdk_port %u: no such port (%u available)", port_id,
                 (unsigned)rte_eth_dev_count_avail());
        return -1;
    }
    tl_peer_dpdk *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, cap, "peer: out of memory");
        return -1;
    }
    d->port_id = port_id;
    d->dst_ip_be = listen.sin_addr.s_addr;
    d->udp_port = ntohs(listen.sin_port);
    d->burst = cfg->burst == 0 ? 32 : cfg->burst;
    uint32_t mbufs = cfg->mbufs == 0 ? 4095 : cfg->mbufs;
    uint16_t rx_desc = cfg->rx_desc == 0 ? 1024 : cfg->rx_desc;
    int socket = rte_eth_dev_socket_id(d->port_id);
    if (socket < 0)
        socket = (int)SOCKET_ID_ANY;
    char name[RTE_MEMPOOL_NAMESIZE];
    snprintf(name, sizeof name, "tlpeer%u", pool_serial++);
    d->pool = rte_pktmbuf_pool_create(name, mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
    if (d->pool == NULL) {
        snprintf(err, cap, "peer: rte_pktmbuf_pool_create(%u mbufs): %s", mbufs,
                 rte_strerror(rte_errno));
        goto fail;
    }
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    int rc = rte_eth_dev_configure(d->port_id, 1, 1, &conf);
    if (rc == 0)
        rc = rte_eth_dev_adjust_nb_rx_tx_desc(d->port_id, &rx_desc, NULL);
    if (rc == 0)
        rc = rte_eth_rx_queue_setup(d->port_id, 0, rx_desc, (unsigned)socket, NULL, d->pool);
    if (rc == 0)
        rc = rte_eth_tx_queue_setup(d->port_id, 0, 64, (unsigned)socket, NULL);
    if (rc == 0)
        rc = rte_eth_dev_start(d->port_id);
    if (rc != 0) {
        snprintf(err, cap, "peer.dpdk_port %u: configure/queue setup/start: %s", d->port_id,
                 rte_strerror(-rc));
        goto fail;
    }
    d->port_started = true;
    /* Frames to our IP may carry another MAC (a switch port, a tap):
     * match on the IP and port ourselves. Not every PMD has it. */
    (void)rte_eth_promiscuous_enable(d->port_id);
    *out = d;
    return 0;
fail:
    tl_peer_dpdk_close(d);
    return -1;
}

void tl_peer_dpdk_close(tl_peer_dpdk *d) {
    if (d == NULL)
        return;
    if (d->held != NULL)
        rte_pktmbuf_free(d->held);
    for (uint32_t i = d->next; i < d->n; i++)
        rte_pktmbuf_free(d->bufs[i]);
    if (d->port_started) {
        (void)rte_eth_dev_stop(d->port_id);
        (void)rte_eth_dev_close(d->port_id);
    }
    if (d->pool != NULL)
        rte_mempool_free(d->pool);
    free(d);
}

int tl_peer_dpdk_thread_init(tl_peer_dpdk *d) {
    (void)d;
    if (rte_lcore_id() != LCORE_ID_ANY)
        return 0; /* an EAL thread already */
    return rte_thread_register() == 0 ? 0 : -1;
}

bool tl_peer_dpdk_recv(tl_peer_dpdk *d, const uint8_t **buf, size_t *len) {
    if (d->held != NULL) {
        rte_pktmbuf_free(d->held);
        d->held = NULL;
    }
    /* Bounded: at most two bursts of frames that are not ours per call, so
     * a flood of other traffic cannot keep the hot loop here. */
    for (uint32_t rounds = 0; rounds < 2;) {
        if (d->next == d->n) {
            uint16_t n = rte_eth_rx_burst(d->port_id, 0, d->bufs, (uint16_t)d->burst);
            if (n == 0)
                return false;
            d->st.rx_bursts++;
            d->st.frames += n;
            d->n = n;
            d->next = 0;
            rounds++;
        }
        struct rte_mbuf *m = d->bufs[d->next++];
        if (m->nb_segs != 1 || m->pkt_len != m->data_len) {
            d->st.multi_seg++;
            rte_pktmbuf_free(m);
            continue;
        }
        const uint8_t *payload = NULL;
        size_t plen = 0;
        enum tl_frame_verdict v = tl_peer_frame(rte_pktmbuf_mtod(m, const uint8_t *), m->data_len,
                                                d->dst_ip_be, d->udp_port, &payload, &plen);
        d->st.verdicts[v]++;
        if (v != TL_FRAME_PAYLOAD) {
            rte_pktmbuf_free(m);
            continue;
        }
        d->held = m;
        d->st.datagrams++;
        *buf = payload;
        *len = plen;
        return true;
    }
    return false;
}

void tl_peer_dpdk_get_stats(const tl_peer_dpdk *d, tl_peer_dpdk_stats *out) {
    *out = d->st;
}
