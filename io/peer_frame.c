/* peer_frame.c: Ethernet II / IPv4 / UDP frames (see peer_frame.h). */
#include "io/peer_frame.h"

#include <string.h>

#define ETH_HDR_BYTES  14u
#define IPV4_MIN_BYTES 20u
#define UDP_HDR_BYTES  8u

const char *tl_frame_verdict_name(enum tl_frame_verdict v) {
    static const char *const names[TL_FRAME_VERDICT_COUNT] = {
        "payload", "short",      "not_ipv4",   "bad_ipv4", "fragment",
        "not_udp", "other_addr", "other_port", "bad_udp",
    };
    return (unsigned)v < TL_FRAME_VERDICT_COUNT ? names[v] : "?";
}

static uint16_t be16(const uint8_t *p) {
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

/* The ones' complement sum of an IPv4 header (RFC 1071); 0xffff if valid. */
static uint16_t ip_sum(const uint8_t *h, size_t n) {
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += be16(h + i);
    while (s >> 16)
        s = (s & 0xffffu) + (s >> 16);
    return (uint16_t)s;
}

enum tl_frame_verdict tl_peer_frame(const uint8_t *f, size_t len, uint32_t dst_ip_be, uint16_t port,
                                    const uint8_t **payload, size_t *payload_len) {
    if (len < ETH_HDR_BYTES)
        return TL_FRAME_SHORT;
    if (be16(f + 12) != 0x0800)
        return TL_FRAME_NOT_IPV4;
    if (len < ETH_HDR_BYTES + IPV4_MIN_BYTES)
        return TL_FRAME_SHORT;
    const uint8_t *ip = f + ETH_HDR_BYTES;
    size_t avail = len - ETH_HDR_BYTES;
    unsigned ihl = (ip[0] & 0x0fu) * 4u;
    if ((ip[0] >> 4) != 4 || ihl < IPV4_MIN_BYTES)
        return TL_FRAME_BAD_IPV4;
    if (ihl > avail)
        return TL_FRAME_SHORT;
    size_t total = be16(ip + 2);
    if (total < ihl)
        return TL_FRAME_BAD_IPV4;
    if (total > avail)
        return TL_FRAME_SHORT; /* an Ethernet frame may be longer (padding), never shorter */
    if (ip_sum(ip, ihl) != 0xffffu)
        return TL_FRAME_BAD_IPV4;
    uint16_t frag = be16(ip + 6);
    if ((frag & 0x2000u) != 0 || (frag & 0x1fffu) != 0)
        return TL_FRAME_FRAGMENT;
    if (ip[9] != 17)
        return TL_FRAME_NOT_UDP;
    uint32_t dst;
    memcpy(&dst, ip + 16, 4); /* network order, as given */
    if (dst_ip_be != 0 && dst != dst_ip_be)
        return TL_FRAME_OTHER_ADDR;
    const uint8_t *udp = ip + ihl;
    size_t udp_avail = total - ihl;
    if (udp_avail < UDP_HDR_BYTES)
        return TL_FRAME_SHORT;
    if (be16(udp + 2) != port)
        return TL_FRAME_OTHER_PORT;
    size_t ulen = be16(udp + 4);
    if (ulen < UDP_HDR_BYTES || ulen > udp_avail)
        return TL_FRAME_BAD_UDP;
    *payload = udp + UDP_HDR_BYTES;
    *payload_len = ulen - UDP_HDR_BYTES;
    return TL_FRAME_PAYLOAD;
}

size_t tl_peer_frame_build(uint8_t *out, size_t cap, const uint8_t dst_mac[6],
                           const uint8_t src_mac[6], uint32_t src_ip, uint32_t dst_ip,
                           uint16_t src_port, uint16_t dst_port, const uint8_t *payload,
                           size_t payload_len) {
    size_t total = ETH_HDR_BYTES + IPV4_MIN_BYTES + UDP_HDR_BYTES + payload_len;
    if (total > cap || payload_len > 65535u - IPV4_MIN_BYTES - UDP_HDR_BYTES)
        return 0;
    memset(out, 0, ETH_HDR_BYTES + IPV4_MIN_BYTES + UDP_HDR_BYTES);
    memcpy(out, dst_mac, 6);
    memcpy(out + 6, src_mac, 6);
    put16(out + 12, 0x0800);
    uint8_t *ip = out + ETH_HDR_BYTES;
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(IPV4_MIN_BYTES + UDP_HDR_BYTES + payload_len));
    put16(ip + 6, 0x4000); /* DF */
    ip[8] = 64;
    ip[9] = 17;
    put32(ip + 12, src_ip);
    put32(ip + 16, dst_ip);
    put16(ip + 10, (uint16_t)~ip_sum(ip, IPV4_MIN_BYTES));
    uint8_t *udp = ip + IPV4_MIN_BYTES;
    put16(udp, src_port);
    put16(udp + 2, dst_port);
    put16(udp + 4, (uint16_t)(UDP_HDR_BYTES + payload_len));
    memcpy(udp + UDP_HDR_BYTES, payload, payload_len);
    return total;
}
