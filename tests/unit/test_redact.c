/* test_redact.c: secrets out of tally's config (admin/redact.h): schema
 * secrets, names that look secret at any depth (comments and arrays too),
 * URL credentials, depth; the list names paths, never values; no planted
 * value survives anywhere in the output. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/redact.h"

static const char *const planted[] = {
    "/etc/tally/SIDECAR-S3CRET.key",
    "/run/TOKEN-S3CRET",
    "hunter2-S3CRET",
    "PEERKEY-S3CRET",
    "user:PW-S3CRET",
    "NESTED-S3CRET",
    "ARRAY-S3CRET",
    "MAC-S3CRET",
    "SIGNING-S3CRET.pem",
    "DEEP-S3CRET",
    "OPERATOR-S3CRET",
};

static const char config[] =
    "{\"engine\":{\"wal_dir\":\"/var/wal\",\"ring\":\"main\"},"
    "\"keys\":{\"sidecar\":\"/etc/tally/SIDECAR-S3CRET.key\",\"operator\":\"OPERATOR-S3CRET\"},"
    "\"control\":{\"token_file\":\"/run/TOKEN-S3CRET\",\"listen\":\"127.0.0.1:9090\"},"
    "\"#db_password\":\"hunter2-S3CRET\","
    "\"peer\":{\"peers\":[{\"node_id\":\"00112233445566778899aabbccddeeff\","
    "\"addr\":\"10.0.0.2:7471\",\"key_file\":\"PEERKEY-S3CRET\"}]},"
    "\"ledger\":{\"url\":\"https://user:PW-S3CRET@ledger.example/v1\",\"poll_ms\":20},"
    "\"#secrets\":{\"inner\":{\"x\":\"NESTED-S3CRET\",\"n\":12345}},"
    "\"#api_tokens\":[\"ARRAY-S3CRET\"],"
    "\"#hmac\":\"MAC-S3CRET\","
    "\"bundle\":{\"signing_key\":\"SIGNING-S3CRET.pem\",\"dir\":\"/var/bundles\"},"
    "\"#deep\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"DEEP-S3CRET\"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"
    "}";

static bool listed(const tl_redact_out *o, const char *path, unsigned why) {
    for (uint32_t i = 0; i < o->count; i++)
        if (strcmp(o->paths[i].path, path) == 0)
            return o->paths[i].why == why;
    return false;
}

static void test_redacts_every_secret(void **state) {
    (void)state;
    tl_redact_out o;
    char err[128];
    assert_int_equal(tl_redact_config(config, strlen(config), &o, err, sizeof err), 0);
    for (size_t i = 0; i < sizeof planted / sizeof planted[0]; i++) {
        if (strstr(o.json, planted[i]) != NULL || strstr(o.list, planted[i]) != NULL)
            print_error("planted value %s survived\n%s\n", planted[i], o.json);
        assert_null(strstr(o.json, planted[i]));
        assert_null(strstr(o.list, planted[i]));
    }
    assert_true(listed(&o, "keys.sidecar", TL_REDACT_SCHEMA));
    assert_true(listed(&o, "keys.operator", TL_REDACT_SCHEMA));
    assert_true(listed(&o, "control.token_file", TL_REDACT_SCHEMA));
    assert_true(listed(&o, "bundle.signing_key", TL_REDACT_SCHEMA));
    assert_true(listed(&o, "#db_password", TL_REDACT_NAME));
    assert_true(listed(&o, "peer.peers[0].key_file", TL_REDACT_NAME));
    assert_true(listed(&o, "ledger.url", TL_REDACT_URL));
    assert_true(listed(&o, "#secrets.inner.x", TL_REDACT_NAME));
    assert_true(listed(&o, "#secrets.inner.n", TL_REDACT_NAME));
    assert_true(listed(&o, "#api_tokens[0]", TL_REDACT_NAME));
    assert_true(listed(&o, "#hmac", TL_REDACT_NAME));
    /* what is not secret stays, and the URL keeps its host */
    cJSON *j = cJSON_Parse(o.json);
    assert_non_null(j);
    const cJSON *eng = cJSON_GetObjectItemCaseSensitive(j, "engine");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(eng, "wal_dir")->valuestring, "/var/wal");
    const cJSON *led = cJSON_GetObjectItemCaseSensitive(j, "ledger");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(led, "url")->valuestring,
                        "https://<redacted>@ledger.example/v1");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(led, "poll_ms")->valueint, 20);
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(j, "keys");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(keys, "sidecar")->valuestring,
                        TL_REDACTED);
    cJSON_Delete(j);
    /* the list parses and names paths with rules */
    cJSON *l = cJSON_Parse(o.list);
    assert_non_null(l);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(l, "redacted")),
                     (int)o.count);
    cJSON_Delete(l);
    tl_redact_free(&o);
}

static void test_url_userinfo(void **state) {
    (void)state;
    size_t s, n;
    assert_true(tl_redact_url_userinfo("http://a:b@h/x", &s, &n));
    assert_int_equal(s, 7);
    assert_int_equal(n, 3);
    assert_true(tl_redact_url_userinfo("etcd+https://tok@h:1", &s, &n));
    assert_false(tl_redact_url_userinfo("http://h/x@y", &s, &n)); /* '@' in the path */
    assert_false(tl_redact_url_userinfo("no url here", &s, &n));
    assert_false(tl_redact_url_userinfo("://x@y", &s, &n));
    assert_false(tl_redact_url_userinfo("1http://x@y", &s, &n));
}

static void test_bad_input(void **state) {
    (void)state;
    tl_redact_out o;
    char err[128];
    assert_int_equal(tl_redact_config("{\"a\":", 5, &o, err, sizeof err), -1);
    assert_non_null(strstr(err, "JSON"));
    assert_null(o.json);
    /* an empty object is fine and lists nothing */
    assert_int_equal(tl_redact_config("{}", 2, &o, err, sizeof err), 0);
    assert_int_equal(o.count, 0);
    tl_redact_free(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redacts_every_secret),
        cmocka_unit_test(test_url_userinfo),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
