/* peer_mac.h: HMAC-SHA256 of peer datagrams (peer.md), and the checks every
 * receive path makes before the loop sees a datagram: shape, identity, mac.
 *
 * The mac of a TLYPEER1 datagram is HMAC-SHA256(key, bytes [0, 104)). A key
 * holds the SHA-256 state after the inner and the outer pad block, computed
 * once at load, so a mac is exactly three SHA-256 compressions (two for the
 * 104 bytes and their padding, one for the outer hash) on the stack: no
 * allocation, no context copy, no OpenSSL object per call. That is what lets
 * one core verify millions of datagrams a second.
 *
 * Keys are files of exactly 32 bytes with no group or other permission bits
 * (the admin keys' rules, engine-admin.md). The comparison of a mac is
 * constant time (CRYPTO_memcmp).
 *
 * Receiver rule 1 in the order of peer.md, for the kernel and the DPDK path
 * alike (tl_peer_check): shape (core/peer.c) -> our own node (ignored, not
 * counted) -> a configured node (unknown_node) -> its mac (bad_mac).
 */
#ifndef TL_PEER_MAC_H
#define TL_PEER_MAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/peer.h"

#define TL_PEER_KEY_BYTES 32u

typedef struct tl_peer_key {
    uint32_t inner[8]; /* SHA-256 chaining value after (K ^ ipad) */
    uint32_t outer[8]; /* after (K ^ opad) */
    uint32_t loaded;   /* TL_PEER_KEY_MAGIC once initialized */
} tl_peer_key;

#define TL_PEER_KEY_MAGIC 0x5045454bu

enum tl_peer_key_err {
    TL_PEER_KEY_OK = 0,
    TL_PEER_KEY_ERR_OPEN,        /* "key_open" */
    TL_PEER_KEY_ERR_NOT_REGULAR, /* "key_not_regular" */
    TL_PEER_KEY_ERR_PERMISSIONS, /* "key_permissions": group or other bits set */
    TL_PEER_KEY_ERR_SIZE,        /* "key_size": not exactly 32 bytes */
    TL_PEER_KEY_ERR_READ,        /* "key_read" */
};
const char *tl_peer_key_err_name(enum tl_peer_key_err e);

void tl_peer_key_init(tl_peer_key *k, const uint8_t raw[TL_PEER_KEY_BYTES]);
enum tl_peer_key_err tl_peer_key_load(tl_peer_key *k, const char *path);
void tl_peer_key_wipe(tl_peer_key *k);

/* HMAC-SHA256(key, bytes [0, 104)) of a datagram. */
void tl_peer_mac(const tl_peer_key *k, const uint8_t bytes[TL_PEER_MAC_OFFSET],
                 uint8_t mac[TL_PEER_MAC_BYTES]);

/* Shaped as tl_peer_mac_fn (ctx is the key; len must be 104). */
void tl_peer_mac_cb(void *ctx, const uint8_t *bytes, size_t len, uint8_t mac[TL_PEER_MAC_BYTES]);

/* The mac at [104, 136) of a 136-byte datagram verifies, in constant time. */
bool tl_peer_mac_verify(const tl_peer_key *k, const uint8_t dgram[TL_PEER_DGRAM_BYTES]);

/* Encodes m and signs it. */
void tl_peer_sign(const tl_peer_key *k, const tl_peer_msg *m, uint8_t out[TL_PEER_DGRAM_BYTES]);

/* The configured peer nodes and their keys, in the config's order (the
 * index is the loop's node index). */
typedef struct tl_peer_keyring {
    uint32_t count;
    uint8_t ids[TL_PEER_NODES_MAX][TL_ID_BYTES];
    tl_peer_key keys[TL_PEER_NODES_MAX];
} tl_peer_keyring;

/* Rule 1 on received bytes (any alignment, any length): fills ev with a
 * DGRAM (msg, node), a REJECT (malformed, unknown_node, bad_mac) or OWN
 * (self_id may be NULL while our id is unknown). */
void tl_peer_check(const tl_peer_keyring *kr, const uint8_t *buf, size_t len,
                   const uint8_t *self_id, tl_peer_ev *ev);

#endif
