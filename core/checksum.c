/* checksum.c: picks the XXH3 long-input implementation once, at load time. */
#include "checksum.h"

tl_xxh3_fn tl_xxh3_long = tl_xxh3_sse2;
static enum tl_xxh3_impl active_impl = TL_XXH3_SSE2;

static int cpu_has(enum tl_xxh3_impl impl) {
    __builtin_cpu_init();
    switch (impl) {
        case TL_XXH3_SSE2:
            return 1;
        case TL_XXH3_AVX2:
            return __builtin_cpu_supports("avx2");
        case TL_XXH3_AVX512:
            return __builtin_cpu_supports("avx512f");
    }
    return 0;
}

int tl_xxh3_force(enum tl_xxh3_impl impl) {
    if (!cpu_has(impl))
        return -1;
    switch (impl) {
        case TL_XXH3_SSE2:
            tl_xxh3_long = tl_xxh3_sse2;
            break;
        case TL_XXH3_AVX2:
            tl_xxh3_long = tl_xxh3_avx2;
            break;
        case TL_XXH3_AVX512:
            tl_xxh3_long = tl_xxh3_avx512;
            break;
    }
    active_impl = impl;
    return 0;
}

/* AVX2 by default: on Zen 4 the AVX-512 build is not faster (512-bit ops are
 * double-pumped) and on other parts it can lower clocks for neighbours. The
 * benchmark measures all three. */
__attribute__((constructor)) static void tl_checksum_pick(void) {
    if (tl_xxh3_force(TL_XXH3_AVX2) != 0)
        (void)tl_xxh3_force(TL_XXH3_SSE2);
}

enum tl_xxh3_impl tl_xxh3_active(void) {
    return active_impl;
}

const char *tl_xxh3_impl_name(enum tl_xxh3_impl impl) {
    switch (impl) {
        case TL_XXH3_SSE2:
            return "sse2";
        case TL_XXH3_AVX2:
            return "avx2";
        case TL_XXH3_AVX512:
            return "avx512";
    }
    return "?";
}
