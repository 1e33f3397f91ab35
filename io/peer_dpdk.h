/* peer_dpdk.h: the DPDK receive path of peer datagrams (peer.md
 * "Transport": `peer.io: "dpdk"`, a port given to tally, or in tests a
 * net_pcap or net_af_packet vdev).
 *
 * At open (start-up, the main thread): rte_eal_init with the configured EAL
 * arguments, one mbuf pool, the port with one RX and one TX queue,
 * promiscuous mode, started. On the hot loop: rte_eth_rx_burst fills a
 * burst; tl_peer_dpdk_recv hands out one UDP payload at a time, skipping
 * (and counting by verdict, io/peer_frame.h) every frame that is not
 * Ethernet II / IPv4 / UDP to our address and port: an af_packet port also
 * shows the kernel's own traffic. The payload goes through the same checks
 * as the kernel path's (io/peer_mac.h, then the loop).
 *
 * Sending stays on the kernel socket (io/peer_udp): peer datagrams are a
 * few hundred a second, the receive side is where the rate is.
 *
 * No hugepages here: the EAL arguments `--no-huge -m 256 --no-shconf
 * --no-pci --vdev=...` work (`--in-memory` conflicts with `--no-huge`).
 * With DPDK's shared build the EAL loads its PMDs (net_pcap,
 * net_af_packet, mempool_ring, ...) as plugins from its built-in plugin
 * directory, so nothing is linked for them. rte_eal_init pins the calling
 * thread to its main lcore; the caller's CPU affinity is restored after it,
 * so the threads tallyd starts later are not bound to one core by accident.
 * The EAL can be initialized once per process: a second open reuses it.
 *
 * This header includes no DPDK header: only io/peer_dpdk.c is compiled with
 * DPDK's flags (they carry -march=corei7).
 */
#ifndef TL_PEER_DPDK_H
#define TL_PEER_DPDK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/peer_frame.h"

#define TL_PEER_DPDK_EAL_ARGS_MAX 32u
#define TL_PEER_DPDK_BURST_MAX    64u

typedef struct tl_peer_dpdk_cfg {
    uint32_t eal_argc;
    const char *eal_argv[TL_PEER_DPDK_EAL_ARGS_MAX]; /* without a program name */
    uint16_t port_id;
    const char *port_name; /* instead of port_id when set: "net_pcap0" (tests) */
    const char *listen;    /* "a.b.c.d:port": the destination to match (0.0.0.0 = any) */
    uint32_t burst;        /* rte_eth_rx_burst size, 1..64; 0 = 32 */
    uint32_t mbufs;        /* mbuf pool size; 0 = 4095 */
    uint16_t rx_desc;      /* RX ring descriptors; 0 = 1024 */
} tl_peer_dpdk_cfg;

typedef struct tl_peer_dpdk_stats {
    uint64_t rx_bursts;                        /* rx_burst calls that returned frames */
    uint64_t frames;                           /* frames received */
    uint64_t datagrams;                        /* payloads handed out */
    uint64_t multi_seg;                        /* frames in more than one mbuf segment: skipped */
    uint64_t verdicts[TL_FRAME_VERDICT_COUNT]; /* frames by verdict */
} tl_peer_dpdk_stats;

typedef struct tl_peer_dpdk tl_peer_dpdk;

/* Returns 0, or -1 with one line in err (the EAL's rte_errno text, the
 * port, the call that failed). */
int tl_peer_dpdk_open(tl_peer_dpdk **out, const tl_peer_dpdk_cfg *cfg, char *err, size_t cap);

/* Stops and closes the port and frees the pool. NULL is a no-op. The EAL
 * stays initialized (DPDK cannot initialize it twice in one process). */
void tl_peer_dpdk_close(tl_peer_dpdk *d);

/* The thread that will poll calls this once (it registers with the EAL, so
 * the mempool's per-lcore cache serves it). Returns 0 or -1 (it then polls
 * without a cache: slower, still correct). */
int tl_peer_dpdk_thread_init(tl_peer_dpdk *d);

/* One UDP payload for us: *buf (len bytes) stays valid until the next call.
 * false when the port has nothing for us now. Never blocks. */
bool tl_peer_dpdk_recv(tl_peer_dpdk *d, const uint8_t **buf, size_t *len);

void tl_peer_dpdk_get_stats(const tl_peer_dpdk *d, tl_peer_dpdk_stats *out);

#endif
