/* test_checksum.c: every XXH3 build tally dispatches to gives the values of
 * Debian's shared libxxhash, at every length around the 240-byte switch and
 * the stripe and block boundaries. */
#include "testutil.h"

#include <dlfcn.h>
#include <stdlib.h>

#include "core/checksum.h"

typedef uint64_t (*shared_fn)(const void *, size_t);

static shared_fn load_shared(void) {
    void *h = dlopen("libxxhash.so.0", RTLD_NOW | RTLD_LOCAL);
    assert_non_null(h);
    shared_fn f = (shared_fn)dlsym(h, "XXH3_64bits");
    assert_non_null(f);
    return f;
}

static void test_all_impls_match_shared_library(void **state) {
    (void)state;
    shared_fn ref = load_shared();
    enum { MAX = 70000 };
    uint8_t *buf = malloc(MAX + 64);
    assert_non_null(buf);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < MAX + 64; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
    enum tl_xxh3_impl impls[] = {TL_XXH3_SSE2, TL_XXH3_AVX2, TL_XXH3_AVX512};
    enum tl_xxh3_impl saved = tl_xxh3_active();
    for (size_t k = 0; k < sizeof impls / sizeof impls[0]; k++) {
        if (tl_xxh3_force(impls[k]) != 0) {
            print_message("skip %s: CPU lacks it\n", tl_xxh3_impl_name(impls[k]));
            continue;
        }
        for (size_t n = 0; n < 2100; n++) {
            assert_true(tl_xxh3(buf + (n & 7), n) == ref(buf + (n & 7), n));
        }
        size_t big[] = {4095, 4096, 4097, 8191, 65528, 65536, MAX};
        for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
            assert_true(tl_xxh3(buf, big[i]) == ref(buf, big[i]));
    }
    assert_int_equal(tl_xxh3_force(saved), 0);
    free(buf);
}

static void test_dispatch_picks_avx2_when_present(void **state) {
    (void)state;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        assert_int_equal(tl_xxh3_active(), TL_XXH3_AVX2);
    else
        assert_int_equal(tl_xxh3_active(), TL_XXH3_SSE2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_picks_avx2_when_present),
        cmocka_unit_test(test_all_impls_match_shared_library),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
