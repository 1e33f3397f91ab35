/* peer_mac.c: HMAC-SHA256 of peer datagrams with precomputed pads, and the
 * receive-side checks of peer.md rule 1 (see peer_mac.h).
 *
 * HMAC (RFC 2104) with a 32-byte key, shorter than SHA-256's 64-byte block:
 * K0 = key || 0^32 and
 *   mac = SHA256((K0 ^ opad) || SHA256((K0 ^ ipad) || m)).
 * The pad blocks are compressed once at init. The message is always 104
 * bytes, so the padded inner input after the pad block is exactly two
 * blocks (104 bytes, 0x80, zeros, the bit length 8 * (64 + 104)), and the
 * outer input one block (the 32-byte inner digest, 0x80, zeros, 8 * 96).
 * Each block goes through SHA256_Transform, OpenSSL's raw compression
 * function (deprecated in 3.0, but the only allocation-free entry point; it
 * keeps the SHA-NI path). test_peer_mac checks the result against OpenSSL's
 * HMAC() and the spec's vector.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "io/peer_mac.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/assert.h"

const char *tl_peer_key_err_name(enum tl_peer_key_err e) {
    switch (e) {
        case TL_PEER_KEY_OK:
            return "ok";
        case TL_PEER_KEY_ERR_OPEN:
            return "key_open";
        case TL_PEER_KEY_ERR_NOT_REGULAR:
            return "key_not_regular";
        case TL_PEER_KEY_ERR_PERMISSIONS:
            return "key_permissions";
        case TL_PEER_KEY_ERR_SIZE:
            return "key_size";
        case TL_PEER_KEY_ERR_READ:
            return "key_read";
        default:
            return "?";
    }
}

/* SHA-256's initial chaining value (FIPS 180-4, 5.3.3). */
static const uint32_t sha256_iv[8] = {0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
                                      0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u};

/* One compression of a 64-byte block into the chaining value h. */
static void compress(uint32_t h[8], const uint8_t block[64]) {
    SHA256_CTX c;
    memcpy(c.h, h, sizeof c.h);
    SHA256_Transform(&c, block);
    memcpy(h, c.h, sizeof c.h);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v) {
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

void tl_peer_key_init(tl_peer_key *k, const uint8_t raw[TL_PEER_KEY_BYTES]) {
    uint8_t ipad[64], opad[64];
    for (unsigned i = 0; i < 64; i++) {
        uint8_t b = i < TL_PEER_KEY_BYTES ? raw[i] : 0;
        ipad[i] = b ^ 0x36;
        opad[i] = b ^ 0x5c;
    }
    memset(k, 0, sizeof *k);
    memcpy(k->inner, sha256_iv, sizeof sha256_iv);
    memcpy(k->outer, sha256_iv, sizeof sha256_iv);
    compress(k->inner, ipad);
    compress(k->outer, opad);
    OPENSSL_cleanse(ipad, sizeof ipad);
    OPENSSL_cleanse(opad, sizeof opad);
    k->loaded = TL_PEER_KEY_MAGIC;
}

void tl_peer_key_wipe(tl_peer_key *k) {
    OPENSSL_cleanse(k, sizeof *k);
}

void tl_peer_mac(const tl_peer_key *k, const uint8_t bytes[TL_PEER_MAC_OFFSET],
                 uint8_t mac[TL_PEER_MAC_BYTES]) {
    TL_ASSERT(k->loaded == TL_PEER_KEY_MAGIC);
    _Static_assert(TL_PEER_MAC_OFFSET > 64 && TL_PEER_MAC_OFFSET < 128 - 9, "two inner blocks");
    uint32_t h[8];
    uint8_t block[64];
    /* inner: the pad block is done; the message's first 64 bytes ... */
    memcpy(h, k->inner, sizeof h);
    compress(h, bytes);
    /* ... then its last 40, 0x80, zeros, and the length of pad + message. */
    memset(block, 0, sizeof block);
    memcpy(block, bytes + 64, TL_PEER_MAC_OFFSET - 64);
    block[TL_PEER_MAC_OFFSET - 64] = 0x80;
    put_be64(block + 56, (uint64_t)(64 + TL_PEER_MAC_OFFSET) * 8);
    compress(h, block);
    /* outer: the inner digest, 0x80, zeros, the length of pad + digest. */
    memset(block, 0, sizeof block);
    for (unsigned i = 0; i < 8; i++)
        put_be32(block + 4 * i, h[i]);
    block[32] = 0x80;
    put_be64(block + 56, (uint64_t)(64 + 32) * 8);
    memcpy(h, k->outer, sizeof h);
    compress(h, block);
    for (unsigned i = 0; i < 8; i++)
        put_be32(mac + 4 * i, h[i]);
    OPENSSL_cleanse(block, sizeof block);
}

void tl_peer_mac_cb(void *ctx, const uint8_t *bytes, size_t len, uint8_t mac[TL_PEER_MAC_BYTES]) {
    TL_ASSERT(len == TL_PEER_MAC_OFFSET);
    tl_peer_mac(ctx, bytes, mac);
}

bool tl_peer_mac_verify(const tl_peer_key *k, const uint8_t dgram[TL_PEER_DGRAM_BYTES]) {
    uint8_t mac[TL_PEER_MAC_BYTES];
    tl_peer_mac(k, dgram, mac);
    return CRYPTO_memcmp(mac, dgram + TL_PEER_MAC_OFFSET, TL_PEER_MAC_BYTES) == 0;
}

void tl_peer_sign(const tl_peer_key *k, const tl_peer_msg *m, uint8_t out[TL_PEER_DGRAM_BYTES]) {
    tl_peer_encode(m, tl_peer_mac_cb, (void *)k, out);
}

enum tl_peer_key_err tl_peer_key_load(tl_peer_key *k, const char *path) {
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return TL_PEER_KEY_ERR_OPEN;
    struct stat st;
    enum tl_peer_key_err err = TL_PEER_KEY_OK;
    if (fstat(fd, &st) != 0)
        err = TL_PEER_KEY_ERR_READ;
    else if (!S_ISREG(st.st_mode))
        err = TL_PEER_KEY_ERR_NOT_REGULAR;
    else if ((st.st_mode & 077) != 0)
        err = TL_PEER_KEY_ERR_PERMISSIONS;
    else if (st.st_size != (off_t)TL_PEER_KEY_BYTES)
        err = TL_PEER_KEY_ERR_SIZE;
    uint8_t buf[TL_PEER_KEY_BYTES + 1];
    size_t got = 0;
    /* Until EOF (at most 33 bytes): the size is checked on what was read. */
    for (unsigned tries = 0; err == TL_PEER_KEY_OK && got < sizeof buf && tries < 64; tries++) {
        ssize_t r = read(fd, buf + got, sizeof buf - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = TL_PEER_KEY_ERR_READ;
            break;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (err == TL_PEER_KEY_OK && got != TL_PEER_KEY_BYTES)
        err = TL_PEER_KEY_ERR_SIZE;
    if (err == TL_PEER_KEY_OK)
        tl_peer_key_init(k, buf);
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    return err;
}

void tl_peer_check(const tl_peer_keyring *kr, const uint8_t *buf, size_t len,
                   const uint8_t *self_id, tl_peer_ev *ev) {
    memset(ev, 0, sizeof *ev);
    ev->type = TL_PEER_EV_REJECT;
    enum tl_peer_reject r = tl_peer_parse(buf, len, &ev->msg);
    if (r != TL_PEER_OK) {
        ev->reason = (uint8_t)r;
        return;
    }
    if (self_id != NULL && memcmp(ev->msg.node_id, self_id, TL_ID_BYTES) == 0) {
        ev->type = TL_PEER_EV_OWN;
        return;
    }
    uint32_t i = 0;
    while (i < kr->count && memcmp(kr->ids[i], ev->msg.node_id, TL_ID_BYTES) != 0)
        i++;
    if (i == kr->count) {
        ev->reason = TL_PEER_REJ_UNKNOWN_NODE;
        return;
    }
    if (!tl_peer_mac_verify(&kr->keys[i], buf)) {
        ev->reason = TL_PEER_REJ_BAD_MAC;
        return;
    }
    ev->type = TL_PEER_EV_DGRAM;
    ev->node = (uint8_t)i;
}
