/* fuzz_config.c: tallyd's config parser (admin/config.c) on arbitrary bytes.
 * It must never crash, hang or accept a config that breaks the schema: an
 * accepted config is checked against a few invariants of the schema. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "admin/config.h"
#include "core/assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static tl_config c;
    char err[512];
    if (tl_config_parse((const char *)data, size, &c, err, sizeof err) == 0) {
        TL_ASSERT(c.window_records >= 1024 && (c.window_records & (c.window_records - 1)) == 0);
        TL_ASSERT(c.policy_max_actions_per_minute >= 1 &&
                  c.policy_max_actions_per_minute <= TL_POLICY_RATE_MAX);
        TL_ASSERT(c.policy_allow_count <= TL_POLICY_ALLOW_MAX);
        TL_ASSERT(c.peer_count <= TL_CFG_PEERS_MAX && c.webhook_count <= TL_CFG_URLS_MAX);
        TL_ASSERT(c.ledger_lag_halt_ms >= c.ledger_lag_throttle_ms);
        TL_ASSERT(memchr(c.state_dir, '\0', sizeof c.state_dir) != NULL);
    } else {
        TL_ASSERT(err[0] != '\0'); /* every refusal names its reason */
    }
    return 0;
}
