/* checksum_avx512.c: XXH3-64 built for AVX512. Compiled with the matching -m flags
 * (see core/CMakeLists.txt) and only called after a CPUID check. */
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX512
#include <xxhash.h>

#include <stddef.h>
#include <stdint.h>

uint64_t tl_xxh3_avx512(const void *p, size_t n);

uint64_t tl_xxh3_avx512(const void *p, size_t n) {
    return XXH3_64bits(p, n);
}
