/* peer_udp.c: the kernel UDP path of peer datagrams (see peer_udp.h). */
#include "io/peer_udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/assert.h"

struct tl_peer_udp {
    int fd;
    uint16_t port;
    uint32_t batch;
    /* receive: slots filled by one recvmmsg, handed out in order */
    uint32_t rx_n;
    uint32_t rx_next;
    struct mmsghdr rx_msgs[TL_PEER_UDP_BATCH_MAX];
    struct iovec rx_iov[TL_PEER_UDP_BATCH_MAX];
    uint8_t (*rx_buf)[TL_PEER_UDP_SLOT_BYTES];
    /* send: one message per destination, all pointing at one buffer */
    uint32_t dest_count;
    struct sockaddr_in dests[TL_PEER_NODES_MAX];
    struct mmsghdr tx_msgs[TL_PEER_NODES_MAX];
    struct iovec tx_iov;
    tl_peer_udp_stats st;
};

int tl_peer_udp_resolve(const char *hostport, struct sockaddr_in *out, char *err, size_t cap) {
    if (hostport == NULL) {
        snprintf(err, cap, "(null): expected host:port");
        return -1;
    }
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport || colon[1] == '\0' ||
        (size_t)(colon - hostport) >= 256) {
        snprintf(err, cap, "%s: expected host:port", hostport);
        return -1;
    }
    char host[256];
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    char *end = NULL;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || port > 65535) {
        snprintf(err, cap, "%s: expected a port 0..65535", hostport);
        return -1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, cap, "%s: %s (IPv4 host:port expected)", hostport, gai_strerror(rc));
        return -1;
    }
    memcpy(out, res->ai_addr, sizeof *out);
    out->sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

static bool is_multicast(const struct sockaddr_in *a) {
    return (ntohl(a->sin_addr.s_addr) & 0xf0000000u) == 0xe0000000u;
}

int tl_peer_udp_open(tl_peer_udp **out, const tl_peer_udp_cfg *cfg, char *err, size_t cap) {
    *out = NULL;
    if (cfg->dest_count > TL_PEER_NODES_MAX || cfg->batch > TL_PEER_UDP_BATCH_MAX) {
        snprintf(err, cap, "peer: at most %u destinations and a batch of %u", TL_PEER_NODES_MAX,
                 TL_PEER_UDP_BATCH_MAX);
        return -1;
    }
    tl_peer_udp *u = calloc(1, sizeof *u);
    if (u == NULL) {
        snprintf(err, cap, "peer: out of memory");
        return -1;
    }
    u->fd = -1;
    u->batch = cfg->batch == 0 ? 32 : cfg->batch;
    u->rx_buf = calloc(u->batch, TL_PEER_UDP_SLOT_BYTES);
    struct sockaddr_in listen;
    if (u->rx_buf == NULL) {
        snprintf(err, cap, "peer: out of memory");
        goto fail;
    }
    if (tl_peer_udp_resolve(cfg->listen, &listen, err, cap) != 0)
        goto fail;
    for (uint32_t i = 0; i < cfg->dest_count; i++) {
        if (tl_peer_udp_resolve(cfg->dests[i], &u->dests[i], err, cap) != 0)
            goto fail;
    }
    u->dest_count = cfg->dest_count;
    u->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0) {
        snprintf(err, cap, "peer: socket: %s", strerror(errno));
        goto fail;
    }
    int one = 1;
    if (cfg->rcvbuf_bytes > 0)
        (void)setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &cfg->rcvbuf_bytes,
                         sizeof cfg->rcvbuf_bytes);
    struct sockaddr_in bind_addr = listen;
    bool mcast = is_multicast(&listen);
    /* Only a multicast group is shared; a unicast port bound twice would
     * split the datagrams between two tallies without a word. */
    if (mcast)
        (void)setsockopt(u->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (mcast)
        bind_addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(u->fd, (const struct sockaddr *)&bind_addr, sizeof bind_addr) != 0) {
        snprintf(err, cap, "peer.listen %s: bind: %s", cfg->listen, strerror(errno));
        goto fail;
    }
    if (mcast) {
        struct ip_mreq mr;
        memset(&mr, 0, sizeof mr);
        mr.imr_multiaddr = listen.sin_addr;
        mr.imr_interface.s_addr = htonl(INADDR_ANY);
        if (setsockopt(u->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) != 0) {
            snprintf(err, cap, "peer.listen %s: IP_ADD_MEMBERSHIP: %s", cfg->listen,
                     strerror(errno));
            goto fail;
        }
        (void)setsockopt(u->fd, IPPROTO_IP, IP_MULTICAST_LOOP, &one, sizeof one);
    }
    struct sockaddr_in bound;
    socklen_t bl = sizeof bound;
    if (getsockname(u->fd, (struct sockaddr *)&bound, &bl) == 0)
        u->port = ntohs(bound.sin_port);
    for (uint32_t i = 0; i < u->batch; i++) {
        u->rx_iov[i].iov_base = u->rx_buf[i];
        u->rx_iov[i].iov_len = TL_PEER_UDP_SLOT_BYTES;
    }
    for (uint32_t i = 0; i < u->dest_count; i++) {
        struct msghdr *h = &u->tx_msgs[i].msg_hdr;
        h->msg_name = &u->dests[i];
        h->msg_namelen = sizeof u->dests[i];
        h->msg_iov = &u->tx_iov;
        h->msg_iovlen = 1;
    }
    *out = u;
    return 0;
fail:
    tl_peer_udp_close(u);
    return -1;
}

void tl_peer_udp_close(tl_peer_udp *u) {
    if (u == NULL)
        return;
    if (u->fd >= 0)
        close(u->fd);
    free(u->rx_buf);
    free(u);
}

static bool refill(tl_peer_udp *u) {
    for (uint32_t i = 0; i < u->batch; i++) {
        struct msghdr *h = &u->rx_msgs[i].msg_hdr;
        /* No source address: a datagram is judged by its node_id and mac,
         * never by where it came from (and the copy costs). */
        memset(h, 0, sizeof *h);
        h->msg_iov = &u->rx_iov[i];
        h->msg_iovlen = 1;
        u->rx_msgs[i].msg_len = 0;
    }
    /* Bounded: EINTR is retried a few times, then the next poll tries. */
    for (int tries = 0; tries < 4; tries++) {
        u->st.recv_calls++;
        int n = recvmmsg(u->fd, u->rx_msgs, u->batch, MSG_DONTWAIT, NULL);
        if (n > 0) {
            u->rx_n = (uint32_t)n;
            u->rx_next = 0;
            return true;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            u->st.recv_errors++;
            u->st.last_errno = errno;
        }
        return false;
    }
    return false;
}

bool tl_peer_udp_recv(tl_peer_udp *u, const uint8_t **buf, size_t *len) {
    if (u->rx_next >= u->rx_n && !refill(u))
        return false;
    uint32_t i = u->rx_next++;
    *buf = u->rx_buf[i];
    *len = u->rx_msgs[i].msg_len;
    if (u->rx_msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        /* Cut at the slot: say so with a length no datagram has. */
        u->st.truncated++;
        *len = TL_PEER_UDP_SLOT_BYTES + 1u;
        *buf = u->rx_buf[i];
    }
    u->st.datagrams++;
    return true;
}

uint32_t tl_peer_udp_send(tl_peer_udp *u, const uint8_t *buf, size_t len) {
    if (u->dest_count == 0)
        return 0;
    u->tx_iov.iov_base = (void *)buf;
    u->tx_iov.iov_len = len;
    uint32_t done = 0, bad = 0;
    /* Bounded: each round sends at least one message or gives up. */
    for (uint32_t round = 0; done < u->dest_count && round < 2 * TL_PEER_NODES_MAX; round++) {
        u->st.send_calls++;
        int n = sendmmsg(u->fd, u->tx_msgs + done, u->dest_count - done, MSG_DONTWAIT);
        if (n > 0) {
            done += (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        int e = n < 0 ? errno : EIO;
        u->st.last_errno = e;
        if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS)
            break; /* full: this datagram is lost, as UDP allows */
        /* This destination failed (unreachable, refused): skip it. */
        bad++;
        done++;
    }
    uint32_t failed = u->dest_count - done + bad;
    u->st.send_errors += failed;
    u->st.sent += done - bad;
    return failed;
}

uint16_t tl_peer_udp_port(const tl_peer_udp *u) {
    return u->port;
}

int tl_peer_udp_fd(const tl_peer_udp *u) {
    return u->fd;
}

void tl_peer_udp_get_stats(const tl_peer_udp *u, tl_peer_udp_stats *out) {
    *out = u->st;
}
