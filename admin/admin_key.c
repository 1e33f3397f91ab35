/* admin_key.c: HMAC-SHA256 keys for the admin protocol (see admin_key.h).
 *
 * HMAC (RFC 2104) with a 32-byte key, which is shorter than SHA-256's 64-byte
 * block, so K0 = key || 0^32 and
 *   mac = SHA256((K0 ^ opad) || SHA256((K0 ^ ipad) || message)).
 * The two pad blocks are absorbed once at init; each mac copies the saved
 * SHA256_CTX (a plain struct) and continues. OpenSSL's low-level SHA-256 is
 * deprecated in 3.0 but is the only allocation-free interface it offers, and
 * it keeps the SHA-NI / AVX2 code paths. test_admin_proto checks the result
 * against OpenSSL's HMAC().
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "admin/admin_key.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "core/assert.h"

_Static_assert(sizeof(SHA256_CTX) <= sizeof(((tl_admin_key *)0)->inner), "room for SHA256_CTX");
_Static_assert(_Alignof(SHA256_CTX) <= 8, "SHA256_CTX alignment");

void tl_admin_key_init(tl_admin_key *key, const uint8_t bytes[TL_ADMIN_KEY_BYTES]) {
    uint8_t ipad[64], opad[64];
    for (unsigned i = 0; i < 64; i++) {
        uint8_t k = i < TL_ADMIN_KEY_BYTES ? bytes[i] : 0;
        ipad[i] = k ^ 0x36;
        opad[i] = k ^ 0x5c;
    }
    memset(key, 0, sizeof *key);
    SHA256_CTX *in = (SHA256_CTX *)(void *)key->inner;
    SHA256_CTX *out = (SHA256_CTX *)(void *)key->outer;
    TL_ASSERT(SHA256_Init(in) == 1);
    TL_ASSERT(SHA256_Update(in, ipad, sizeof ipad) == 1);
    TL_ASSERT(SHA256_Init(out) == 1);
    TL_ASSERT(SHA256_Update(out, opad, sizeof opad) == 1);
    OPENSSL_cleanse(ipad, sizeof ipad);
    OPENSSL_cleanse(opad, sizeof opad);
    key->loaded = TL_ADMIN_KEY_MAGIC;
}

void tl_admin_key_wipe(tl_admin_key *key) {
    OPENSSL_cleanse(key, sizeof *key);
}

void tl_admin_key_mac2(const tl_admin_key *key, const void *a, size_t a_len, const void *b,
                       size_t b_len, uint8_t mac[TL_ADMIN_MAC_BYTES]) {
    TL_ASSERT(key->loaded == TL_ADMIN_KEY_MAGIC);
    SHA256_CTX c;
    uint8_t inner[SHA256_DIGEST_LENGTH];
    memcpy(&c, key->inner, sizeof c);
    if (a_len > 0)
        TL_ASSERT(SHA256_Update(&c, a, a_len) == 1);
    if (b_len > 0)
        TL_ASSERT(SHA256_Update(&c, b, b_len) == 1);
    TL_ASSERT(SHA256_Final(inner, &c) == 1);
    memcpy(&c, key->outer, sizeof c);
    TL_ASSERT(SHA256_Update(&c, inner, sizeof inner) == 1);
    TL_ASSERT(SHA256_Final(mac, &c) == 1);
    OPENSSL_cleanse(&c, sizeof c);
}

enum tl_admin_err tl_admin_key_load(tl_admin_key *key, const char *path) {
    int fd;
    do {
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return TL_ADMIN_ERR_KEY_OPEN;
    /* fstat on the open file, not stat on the path: what we check is what we
     * read. Symlinks are followed on purpose (secret mounts use them). */
    struct stat st;
    enum tl_admin_err err = TL_ADMIN_OK;
    if (fstat(fd, &st) != 0)
        err = TL_ADMIN_ERR_KEY_READ;
    else if (!S_ISREG(st.st_mode))
        err = TL_ADMIN_ERR_KEY_NOT_REGULAR;
    else if ((st.st_mode & 077) != 0)
        err = TL_ADMIN_ERR_KEY_PERMISSIONS;
    else if (st.st_size != (off_t)TL_ADMIN_KEY_BYTES)
        err = TL_ADMIN_ERR_KEY_SIZE;
    uint8_t buf[TL_ADMIN_KEY_BYTES + 1];
    size_t got = 0;
    /* Read until EOF (at most 33 bytes): the size is checked on what was
     * read, too, in case the file changed after fstat. */
    for (unsigned tries = 0; err == TL_ADMIN_OK && got < sizeof buf && tries < 64; tries++) {
        ssize_t r = read(fd, buf + got, sizeof buf - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = TL_ADMIN_ERR_KEY_READ;
            break;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (err == TL_ADMIN_OK && got != TL_ADMIN_KEY_BYTES)
        err = TL_ADMIN_ERR_KEY_SIZE;
    if (err == TL_ADMIN_OK)
        tl_admin_key_init(key, buf);
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    return err;
}
