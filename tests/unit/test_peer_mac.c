/* test_peer_mac.c: io/peer_mac's HMAC-SHA256 (three raw compressions over
 * precomputed pads) equals OpenSSL's HMAC() for random keys and datagrams;
 * key files follow the admin keys' rules. */
#include "testutil.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/peer_mac.h"

static uint64_t rng = 88172645463325252ull;

static uint8_t rnd8(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint8_t)rng;
}

static void test_against_openssl(void **state) {
    (void)state;
    for (int i = 0; i < 5000; i++) {
        uint8_t key[32], msg[104], want[32], got[32];
        for (int k = 0; k < 32; k++)
            key[k] = rnd8();
        for (int k = 0; k < 104; k++)
            msg[k] = rnd8();
        unsigned wl = 0;
        assert_non_null(HMAC(EVP_sha256(), key, 32, msg, 104, want, &wl));
        assert_int_equal(wl, 32);
        tl_peer_key pk;
        tl_peer_key_init(&pk, key);
        tl_peer_mac(&pk, msg, got);
        assert_memory_equal(got, want, 32);
        /* the callback form and verify agree */
        uint8_t d[136];
        memcpy(d, msg, 104);
        tl_peer_mac_cb(&pk, msg, 104, d + 104);
        assert_true(tl_peer_mac_verify(&pk, d));
        d[104 + (i % 32)] ^= (uint8_t)(1u << (i % 8));
        assert_false(tl_peer_mac_verify(&pk, d));
        tl_peer_key_wipe(&pk);
        assert_int_equal(pk.loaded, 0);
    }
}

static void write_key(const char *path, const void *b, size_t n, mode_t mode) {
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void test_key_files(void **state) {
    (void)state;
    char *dir = tu_tmpdir("peerkey");
    char path[512];
    snprintf(path, sizeof path, "%s/k", dir);
    uint8_t raw[33];
    for (int i = 0; i < 33; i++)
        raw[i] = (uint8_t)i;
    tl_peer_key k, ref;
    tl_peer_key_init(&ref, raw);
    write_key(path, raw, 32, 0600);
    assert_int_equal(tl_peer_key_load(&k, path), TL_PEER_KEY_OK);
    assert_memory_equal(&k, &ref, sizeof k);
    write_key(path, raw, 32, 0640);
    assert_int_equal(tl_peer_key_load(&k, path), TL_PEER_KEY_ERR_PERMISSIONS);
    write_key(path, raw, 31, 0600);
    assert_int_equal(tl_peer_key_load(&k, path), TL_PEER_KEY_ERR_SIZE);
    write_key(path, raw, 33, 0600);
    assert_int_equal(tl_peer_key_load(&k, path), TL_PEER_KEY_ERR_SIZE);
    assert_int_equal(tl_peer_key_load(&k, dir), TL_PEER_KEY_ERR_NOT_REGULAR);
    snprintf(path, sizeof path, "%s/missing", dir);
    assert_int_equal(tl_peer_key_load(&k, path), TL_PEER_KEY_ERR_OPEN);
    assert_string_equal(tl_peer_key_err_name(TL_PEER_KEY_ERR_PERMISSIONS), "key_permissions");
    tu_rm_rf(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_openssl),
        cmocka_unit_test(test_key_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
