/* peer_udp.h: the kernel UDP path of peer datagrams (peer.md "Transport").
 *
 * One non-blocking IPv4 UDP socket, bound to peer.listen, serves both ways:
 *   receive  recvmmsg() fills a batch of slots; tl_peer_udp_recv hands them
 *            out one at a time and refills when they are used up. It never
 *            blocks: an empty socket is `false`.
 *   send     sendmmsg() sends one datagram to every configured peer address
 *            in one system call; a full socket buffer drops the datagram
 *            (UDP is lossy by contract: the next HEARTBEAT follows within
 *            beat_ms) and counts it.
 * A multicast listen address joins its group (on INADDR_ANY) with loopback
 * on: our own datagrams come back, and the loop ignores them by node_id.
 *
 * Everything is allocated at open; the poll path makes only recvmmsg and
 * sendmmsg calls. Datagrams longer than TL_PEER_UDP_SLOT_BYTES are reported
 * with a length above it, so the parser names them malformed.
 *
 * Single-threaded: the hot loop owns it after open.
 */
#ifndef TL_PEER_UDP_H
#define TL_PEER_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/peer.h"

#define TL_PEER_UDP_BATCH_MAX  64u
#define TL_PEER_UDP_SLOT_BYTES 2048u

typedef struct tl_peer_udp_cfg {
    const char *listen; /* "a.b.c.d:port" or "host:port" (resolved at open) */
    uint32_t dest_count;
    const char *dests[TL_PEER_NODES_MAX]; /* "host:port" each */
    uint32_t batch;                       /* recvmmsg batch, 1..64; 0 = 32 */
    int rcvbuf_bytes;                     /* SO_RCVBUF; 0 = the kernel's default */
} tl_peer_udp_cfg;

typedef struct tl_peer_udp_stats {
    uint64_t recv_calls;
    uint64_t datagrams;
    uint64_t truncated; /* longer than a slot: handed on as malformed */
    uint64_t recv_errors;
    uint64_t send_calls;
    uint64_t sent;        /* datagram x destination */
    uint64_t send_errors; /* datagram x destination not sent */
    int last_errno;
} tl_peer_udp_stats;

typedef struct tl_peer_udp tl_peer_udp;

/* Opens the socket and resolves every address. Returns 0, or -1 with one
 * line in err naming the address and the failing call. */
int tl_peer_udp_open(tl_peer_udp **out, const tl_peer_udp_cfg *cfg, char *err, size_t cap);
void tl_peer_udp_close(tl_peer_udp *u); /* NULL is a no-op */

/* One received datagram: *buf (len bytes) stays valid until the next call.
 * false when none is pending. Never blocks. */
bool tl_peer_udp_recv(tl_peer_udp *u, const uint8_t **buf, size_t *len);

/* Sends len bytes to every destination; returns how many destinations it
 * could not send to (0: all sent). Never blocks. */
uint32_t tl_peer_udp_send(tl_peer_udp *u, const uint8_t *buf, size_t len);

/* The bound port (for a listen port of 0, tests). */
uint16_t tl_peer_udp_port(const tl_peer_udp *u);
int tl_peer_udp_fd(const tl_peer_udp *u);

void tl_peer_udp_get_stats(const tl_peer_udp *u, tl_peer_udp_stats *out);

/* "host:port" -> IPv4 sockaddr (getaddrinfo: may block; start-up only).
 * Returns 0 or -1 with err. */
struct sockaddr_in;
int tl_peer_udp_resolve(const char *hostport, struct sockaddr_in *out, char *err, size_t cap);

#endif
