/* testutil.h: small helpers shared by the cmocka tests. Tests may allocate
 * and do I/O freely; the rules of the hot path do not apply here. */
#ifndef TL_TESTUTIL_H
#define TL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Absolute path of a file under ../shared (spec/vectors/..., fixtures/...). */
const char *tu_shared(const char *rel);
/* Reads a whole file into a malloc'd, 8-aligned buffer (NUL-terminated one
 * byte past the end). Fails the test if it cannot. */
uint8_t *tu_read_file(const char *path, size_t *len);
/* Writes bytes to a file, creating or truncating it. */
void tu_write_file(const char *path, const void *buf, size_t len);
/* A fresh temporary directory (removed by tu_rm_rf). */
char *tu_tmpdir(const char *tag);
void tu_rm_rf(const char *path);
/* Parses 16 lowercase hex digits. */
uint64_t tu_hex64(const char *s);
/* aligned_alloc with the size rounded up to the alignment, as C11 wants. */
void *tu_aligned(size_t align, size_t size);
/* Path of a built program (build dir). */
const char *tu_build_path(const char *rel);

#endif
