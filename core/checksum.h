/* checksum.h: XXH3-64 with seed 0 and the default secret, the one hash of the
 * contract (record checksums, segment header checksums, ring header checksum,
 * xwal1 payload checksums).
 *
 * Why not just call the shared libxxhash: Debian builds it for baseline SSE2
 * (8-13 GB/s here) while AVX2 reaches 21-29 GB/s. XXH3 only uses vectors for
 * inputs longer than 240 bytes, so:
 *   - n <= 240: the scalar path, no call through a pointer (most records are
 *     64-200 bytes, and that call would cost more than the hash); 17..128,
 *     the common record, is inlined at the call site (see tl_xxh3);
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

/* The record lengths of the contract (64..136 bytes: an 8-byte checksum word
 * then 56..128 hashed bytes) fall in XXH3's 17..128 class. XXH3_64bits()
 * itself is not called for them: under XXH_INLINE_ALL it is a plain `static
 * inline` whose body holds every size class (three for 0..16, 17..128, the
 * out-of-line 129..240 and the long-input call), so GCC judges it too big
 * and emits one out-of-line copy per file: a call and ~90 instructions for
 * a 112-byte hash. xxhash.h's own 17..128 step (what XXH3_64bits_internal
 * dispatches to, always-inline there, seed 0 and the default secret as
 * XXH3_64bits passes them) is inlined here instead: ~7 instructions less
 * per record. GCC may still keep this function out of line in a file that
 * verifies records in several places; forcing it inline there was measured
 * (callgrind) to cost more than the call, through register spills in the
 * ring consumer's poll. test_checksum.c compares every length 0..2100 with
 * the shared library. */
static inline uint64_t tl_xxh3(const void *p, size_t n) {
    if (__builtin_expect(n > 16 && n <= 128, 1))
        return XXH3_len_17to128_64b((const xxh_u8 *)p, n, XXH3_kSecret, sizeof(XXH3_kSecret), 0);
    if (n <= 240)
        return XXH3_64bits(p, n);
    return tl_xxh3_long(p, n);
}

#endif
