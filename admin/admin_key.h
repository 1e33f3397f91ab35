/* admin_key.h: the 32-byte HMAC keys of the engine admin protocol.
 *
 * engine-admin.md: keys are files of exactly 32 random bytes, mode 0600, one
 * for the sidecar and (optionally) one for an operator. A key here holds the
 * HMAC-SHA256 state after the inner and outer pads, computed once at load,
 * so a mac costs two SHA-256 passes and no heap allocation (OpenSSL 3's
 * HMAC()/EVP_MAC allocate a context per call; the request builder runs on
 * tally's hot loop).
 */
#ifndef TL_ADMIN_KEY_H
#define TL_ADMIN_KEY_H

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/admin_err.h"

#define TL_ADMIN_KEY_BYTES 32u
#define TL_ADMIN_MAC_BYTES 32u

typedef struct tl_admin_key {
    /* SHA256_CTX after (key ^ ipad) and after (key ^ opad); opaque here so
     * that this header does not pull OpenSSL's deprecated low-level API. */
    alignas(8) uint8_t inner[128];
    alignas(8) uint8_t outer[128];
    uint32_t loaded; /* TL_ADMIN_KEY_MAGIC once initialized */
} tl_admin_key;

#define TL_ADMIN_KEY_MAGIC 0x4b45594bu

/* From raw bytes (tests, or a key already in memory). */
void tl_admin_key_init(tl_admin_key *key, const uint8_t bytes[TL_ADMIN_KEY_BYTES]);

/* Loads a key file: a regular file of exactly 32 bytes with no group or
 * other permission bits. Errors: TL_ADMIN_ERR_KEY_OPEN, _KEY_NOT_REGULAR,
 * _KEY_PERMISSIONS, _KEY_SIZE, _KEY_READ. The raw bytes are wiped from the
 * stack before returning. */
enum tl_admin_err tl_admin_key_load(tl_admin_key *key, const char *path);

/* Wipes the key state. */
void tl_admin_key_wipe(tl_admin_key *key);

/* HMAC-SHA256(key, a || b). Either part may be empty. */
void tl_admin_key_mac2(const tl_admin_key *key, const void *a, size_t a_len, const void *b,
                       size_t b_len, uint8_t mac[TL_ADMIN_MAC_BYTES]);

#endif
