/* peer_frame.h: the UDP payload of an Ethernet II / IPv4 / UDP frame, for
 * the DPDK receive path of peer datagrams (peer.md: "tally matches the
 * destination port and ignores every other frame").
 *
 * Pure and bounded: it reads only within the frame's length, trusts no
 * length field it has not checked against the bytes present, and names
 * every frame it does not take (a verdict, counted by the caller). It
 * verifies the IPv4 header checksum; the UDP checksum is left to the mac
 * (a veth may hand over frames whose UDP checksum the kernel never
 * finished, CHECKSUM_PARTIAL, and the HMAC covers the payload anyway).
 * Fragments are not reassembled: a 136-byte datagram is never fragmented,
 * so a fragment is not ours.
 */
#ifndef TL_PEER_FRAME_H
#define TL_PEER_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum tl_frame_verdict {
    TL_FRAME_PAYLOAD = 0, /* "payload": a UDP payload for our address and port */
    TL_FRAME_SHORT,       /* "short": fewer bytes than the headers need or say */
    TL_FRAME_NOT_IPV4,    /* "not_ipv4": another ethertype (ARP, IPv6, a VLAN tag) */
    TL_FRAME_BAD_IPV4,    /* "bad_ipv4": version, header length, total length, checksum */
    TL_FRAME_FRAGMENT,    /* "fragment" */
    TL_FRAME_NOT_UDP,     /* "not_udp" */
    TL_FRAME_OTHER_ADDR,  /* "other_addr": another destination address */
    TL_FRAME_OTHER_PORT,  /* "other_port": another destination port */
    TL_FRAME_BAD_UDP,     /* "bad_udp": a UDP length that does not fit */
    TL_FRAME_VERDICT_COUNT,
};

const char *tl_frame_verdict_name(enum tl_frame_verdict v);

/* frame: len bytes from the destination MAC on. dst_ip: the IPv4 address
 * to accept, in network byte order (0 = any); port: host order. On
 * TL_FRAME_PAYLOAD, *payload and *payload_len give the UDP payload. */
enum tl_frame_verdict tl_peer_frame(const uint8_t *frame, size_t len, uint32_t dst_ip_be,
                                    uint16_t port, const uint8_t **payload, size_t *payload_len);

/* Builds a frame around a payload (tests, the benchmark): Ethernet II,
 * IPv4 (checksum set, TTL 64, DF), UDP (checksum 0). Returns the frame's
 * length, or 0 if it does not fit in cap. Addresses and ports in host
 * order. */
size_t tl_peer_frame_build(uint8_t *out, size_t cap, const uint8_t dst_mac[6],
                           const uint8_t src_mac[6], uint32_t src_ip, uint32_t dst_ip,
                           uint16_t src_port, uint16_t dst_port, const uint8_t *payload,
                           size_t payload_len);

#endif
