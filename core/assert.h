/* assert.h: always-on invariant checks (TIGER_STYLE).
 *
 * An assertion states something the code itself guarantees. It is never used
 * for outside bytes: a WAL record, a datagram or a config value that breaks
 * the contract is reported as a finding or an error, never asserted on.
 * Assertions stay on in release builds: a broken invariant in a reconciler
 * that can halt a market must stop the process, not limp on.
 *
 * core/ does no I/O, so the failure path calls a hook that the process shell
 * installs (it prints to stderr); the default hook does nothing, then abort().
 */
#ifndef TL_ASSERT_H
#define TL_ASSERT_H

typedef void (*tl_assert_hook_fn)(const char *expr, const char *file, int line);

/* Installed once at start-up by main(); not thread-safe to change later. */
void tl_assert_set_hook(tl_assert_hook_fn hook);

__attribute__((noreturn, cold)) void tl_assert_fail(const char *expr, const char *file, int line);

#define TL_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0))                                                          \
            tl_assert_fail(#cond, __FILE__, __LINE__);                                             \
    } while (0)

#define TL_UNREACHABLE() tl_assert_fail("unreachable", __FILE__, __LINE__)

#define TL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
