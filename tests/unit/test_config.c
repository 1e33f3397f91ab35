/* test_config.c: the config schema. Every bad value is refused with its key
 * path and the expected form; deploy/tally.example.json sets and documents
 * every key of the schema and nothing else. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/config.h"

static int parse(const char *json, tl_config *c, char *err) {
    return tl_config_parse(json, strlen(json), c, err, 256);
}

static void test_defaults_and_minimal(void **state) {
    (void)state;
    tl_config c;
    char err[256];
    assert_int_equal(parse("{}", &c, err), 0);
    assert_int_equal(c.ledger_poll_ms, 20);
    assert_int_equal(c.window_records, 1u << 20);
    assert_string_equal(c.idle, "spin");
    tl_loop_cfg lc;
    tl_config_loop(&c, &lc);
    assert_int_equal(lc.policy.max_actions_per_minute, 10);
    assert_int_equal(lc.durable_grace_ms, 200);
}

static void test_errors_name_the_key(void **state) {
    (void)state;
    tl_config c;
    char err[256];
    struct {
        const char *json;
        const char *want;
    } cases[] = {
        {"{\"ledger\":{\"poll_ms\":\"fast\"}}",
         "ledger.poll_ms: expected integer 1..60000, got \"fast\""},
        {"{\"ledger\":{\"poll_ms\":0}}", "ledger.poll_ms: expected integer 1..60000, got 0"},
        {"{\"ledger\":{\"poll_ms\":1.5}}", "ledger.poll_ms: expected integer 1..60000, got 1.5"},
        {"{\"ledgr\":{}}", "ledgr: unknown key"},
        {"{\"ledger\":{\"pol_ms\":1}}", "ledger.pol_ms: unknown key"},
        {"{\"idle\":\"busy\"}", "idle: expected one of \"spin|backoff\", got \"busy\""},
        {"{\"window\":{\"records\":1000}}",
         "window.records: expected power of two 1024..67108864, got 1000"},
        {"{\"policy\":{\"armed\":1}}", "policy.armed: expected true or false, got 1"},
        {"{\"policy\":{\"symbol_allowlist\":[\"BTC/USD\"]}}",
         "policy.symbol_allowlist[0]: expected a symbol name [A-Za-z0-9._-]{1,24}"},
        {"{\"peer\":{\"peers\":[{\"node_id\":\"xyz\",\"addr\":\"a:1\"}]}}",
         "peer.peers[0].node_id: expected 32 lowercase hex digits"},
        {"{\"cpu\":1,\"cpu\":2}", "cpu: key appears twice"},
        {"[1]", "(root): expected a JSON object"},
        {"{\"ledger\":{\"lag_halt_ms\":100}}",
         "ledger.lag_halt_ms: expected >= ledger.lag_throttle_ms (2000), got 100"},
        {"{\"wal\":{\"dialect\":\"xwal1\"}}",
         "engine.ring: expected \"\" with wal.dialect \"xwal1\" (that engine publishes no ring)"},
        /* the lease authority: a URL libcurl can use, and a key with it */
        {"{\"lease\":{\"endpoint\":\"127.0.0.1:2379\",\"key\":\"/l\"}}",
         "lease.endpoint: expected an http:// or https:// URL, got \"127.0.0.1:2379\""},
        {"{\"lease\":{\"endpoint\":\"ftp://h\",\"key\":\"/l\"}}",
         "lease.endpoint: expected an http:// or https:// URL, got \"ftp://h\""},
        {"{\"lease\":{\"endpoint\":\"http://127.0.0.1:2379\"}}",
         "lease.key: expected the leader key with lease.endpoint, got \"\""},
        /* the bound is what io/webhook.h really keeps, not more */
        {"{\"webhooks\":{\"queue\":65537}}",
         "webhooks.queue: expected integer 1..65536, got 65537"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(err, 0, sizeof err);
        assert_int_equal(parse(cases[i].json, &c, err), -1);
        assert_string_equal(err, cases[i].want);
    }
    assert_int_equal(parse("{\"cpu\":", &c, err), -1);
    assert_non_null(strstr(err, "not valid JSON"));
    /* the good forms still load; the queue's largest value is accepted */
    assert_int_equal(
        parse("{\"lease\":{\"endpoint\":\"https://etcd:2379\",\"key\":\"/l\"}}", &c, err), 0);
    assert_int_equal(parse("{\"lease\":{\"endpoint\":\"http://e:1\",\"key\":\"/x/l\"}}", &c, err),
                     0);
    assert_int_equal(parse("{\"webhooks\":{\"queue\":65536}}", &c, err), 0);
    assert_int_equal(c.webhook_queue, 65536);
}

static void test_example_documents_every_key(void **state) {
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/deploy/tally.example.json", TL_SOURCE_DIR);
    size_t n;
    uint8_t *buf = tu_read_file(path, &n);
    tl_config c;
    char err[256];
    if (tl_config_parse((const char *)buf, n, &c, err, sizeof err) != 0)
        fail_msg("example config: %s", err);
    cJSON *root = cJSON_ParseWithLength((const char *)buf, n);
    assert_non_null(root);
    const tl_cfg_key *keys;
    size_t nk = tl_config_keys(&keys);
    for (size_t i = 0; i < nk; i++) {
        char sec[64];
        const char *dot = strchr(keys[i].path, '.');
        const cJSON *v;
        if (dot == NULL) {
            v = cJSON_GetObjectItemCaseSensitive(root, keys[i].path);
        } else {
            snprintf(sec, sizeof sec, "%.*s", (int)(dot - keys[i].path), keys[i].path);
            v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, sec),
                                                 dot + 1);
        }
        if (v == NULL)
            fail_msg("deploy/tally.example.json lacks %s", keys[i].path);
        if (strcmp(keys[i].form, "object") == 0)
            continue; /* a section */
        /* and documents it: a "#<key>" comment beside it, with its default */
        char doc[128];
        const cJSON *parent = dot == NULL ? root : cJSON_GetObjectItemCaseSensitive(root, sec);
        snprintf(doc, sizeof doc, "#%s", dot == NULL ? keys[i].path : dot + 1);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(parent, doc);
        if (!cJSON_IsString(d) || strstr(d->valuestring, "efault") == NULL)
            fail_msg("deploy/tally.example.json: %s has no \"%s\" comment naming its default",
                     keys[i].path, doc);
    }
    cJSON_Delete(root);
    free(buf);
}

static void test_secret_names(void **state) {
    (void)state;
    assert_true(tl_config_key_looks_secret("sidecar_key"));
    assert_true(tl_config_key_looks_secret("token_file"));
    assert_true(tl_config_key_looks_secret("Password"));
    assert_false(tl_config_key_looks_secret("poll_ms"));
    const tl_cfg_key *keys;
    size_t nk = tl_config_keys(&keys);
    size_t secrets = 0;
    for (size_t i = 0; i < nk; i++)
        secrets += keys[i].secret;
    assert_true(secrets >= 5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_minimal),
        cmocka_unit_test(test_errors_name_the_key),
        cmocka_unit_test(test_example_documents_every_key),
        cmocka_unit_test(test_secret_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
