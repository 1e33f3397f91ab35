/* assert.c: the failure path of TL_ASSERT. */
#include "assert.h"

#include <stdlib.h>

static tl_assert_hook_fn assert_hook;

void tl_assert_set_hook(tl_assert_hook_fn hook) {
    assert_hook = hook;
}

void tl_assert_fail(const char *expr, const char *file, int line) {
    if (assert_hook != NULL)
        assert_hook(expr, file, line);
    abort();
}
