/* checksum.h: XXH3-64 with seed 0 and the default secret, the one hash of the
 * contract (record checksums, segment header checksums, ring header checksum,
 * xwal1 payload checksums).
 *
 * Why not just call the shared libxxhash: Debian builds it for baseline SSE2
 * (8-13 GB/s here) while AVX2 reaches 21-29 GB/s. XXH3 only uses vectors for
 * inputs longer than 240 bytes, so:
 *   - n <= 240: the scalar path is inlined at the call site (most records are
 *     64-200 bytes, and a call through a pointer would cost more than the hash);
 *   - n > 240: one indirect call into an AVX2 (or AVX-512) build when the CPU
 *     has it, chosen once at load time, else the SSE2 build.
 * Every implementation returns identical values; tests/unit/test_checksum.c
 * proves it against the shared library over many lengths.
 */
#ifndef TL_CHECKSUM_H
#define TL_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

enum tl_xxh3_impl {
    TL_XXH3_SSE2 = 0,
    TL_XXH3_AVX2 = 1,
    TL_XXH3_AVX512 = 2,
};

typedef uint64_t (*tl_xxh3_fn)(const void *p, size_t n);

/* Chosen at load time (a constructor reads CPUID; no I/O). Read-only after. */
extern tl_xxh3_fn tl_xxh3_long;

uint64_t tl_xxh3_sse2(const void *p, size_t n);
uint64_t tl_xxh3_avx2(const void *p, size_t n);
uint64_t tl_xxh3_avx512(const void *p, size_t n);

/* The implementation the dispatcher picked, for benchmarks and /capabilities. */
enum tl_xxh3_impl tl_xxh3_active(void);
const char *tl_xxh3_impl_name(enum tl_xxh3_impl impl);
/* Benchmarks only: force one implementation (returns 0, or -1 if the CPU lacks it). */
int tl_xxh3_force(enum tl_xxh3_impl impl);

static inline uint64_t tl_xxh3(const void *p, size_t n) {
    if (n <= 240)
        return XXH3_64bits(p, n);
    return tl_xxh3_long(p, n);
}

#endif
