/* test_lease.c: the lease authority (core/lease.h): the range reply parser
 * on replies as etcd 3.4's gateway writes them and on every rejection by
 * name and member; base64; and the checker's rules of ledger.md:
 * STALE_LEADER (absent key, another holder, the H >= fence race rule, the
 * ts_ns + grace rule, a standby never), UNKNOWN_LEASE (conclusive only with
 * H >= fence), LEASE_UNREACHABLE (confirmations, silence), honest
 * leadership changes, one finding per episode. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lease.h"

static const uint8_t KEY[] = "/exchange/c1/leader";
#define KEY_LEN (sizeof KEY - 1)
#define KEY_B64 "L2V4Y2hhbmdlL2MxL2xlYWRlcg=="
/* "00112233445566778899aabbccddeeff" */
#define VAL_B64 "MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmY="
#define HDR                                                                                        \
    "\"header\":{\"cluster_id\":\"324952591200643719\",\"member_id\":\"1\",\"revision\":\"12\","   \
    "\"raft_term\":\"2\"}"

static tl_lease_reading rd;

static enum tl_lease_err parse(const char *body, const char **member) {
    return tl_lease_parse(body, strlen(body), KEY, KEY_LEN, &rd, member);
}

static void test_b64(void **state) {
    (void)state;
    char out[64];
    uint8_t back[64];
    const char *cases[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(cases[i]);
        size_t m = tl_b64_encode((const uint8_t *)cases[i], n, out, sizeof out);
        assert_int_equal(m, strlen(want[i]));
        assert_string_equal(out, want[i]);
        assert_int_equal(tl_b64_decode(out, m, back, sizeof back), (long)n);
        assert_memory_equal(back, cases[i], n);
    }
    assert_int_equal(tl_b64_encode((const uint8_t *)"foo", 3, out, 4), 0); /* no room for NUL */
    /* not canonical, or not base64 */
    const char *bad[] = {"Zg=", "Zg", "Zh==", "Zm9=", "Z===", "=Zg=", "Zg==Zg==", "Zm9v!", "Zm 9"};
    for (int i = 0; i < 9; i++)
        assert_int_equal(tl_b64_decode(bad[i], strlen(bad[i]), back, sizeof back), -1);
    assert_int_equal(tl_b64_decode("Zm9vYmFy", 8, back, 5), -1); /* does not fit */
}

static void test_replies(void **state) {
    (void)state;
    const char *member = NULL;
    /* absent: no kvs, no count (empty fields are left out) */
    assert_int_equal(parse("{" HDR "}", &member), TL_LEASE_OK);
    assert_int_equal(rd.revision, 12);
    assert_false(rd.present);
    assert_int_equal(rd.mod_revision, 0);
    /* present, exactly as etcd 3.4 writes it */
    const char *full = "{" HDR ",\"kvs\":[{\"key\":\"" KEY_B64 "\",\"create_revision\":\"5\","
                       "\"mod_revision\":\"7\",\"version\":\"3\",\"value\":\"" VAL_B64 "\","
                       "\"lease\":\"2324035533522985224\"}],\"count\":\"1\"}\n";
    assert_int_equal(parse(full, &member), TL_LEASE_OK);
    assert_true(rd.present);
    assert_int_equal(rd.revision, 12);
    assert_int_equal(rd.mod_revision, 7);
    assert_int_equal(rd.create_revision, 5);
    assert_int_equal(rd.lease_id, 2324035533522985224ull);
    static const uint8_t id[TL_ID_BYTES] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                            0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    assert_memory_equal(rd.holder, id, TL_ID_BYTES);
    assert_int_equal(rd.poll_id, 0);
    assert_int_equal(rd.fail, TL_LEASE_FAIL_NONE);
    /* no lease, no version: still fine; the largest int64 */
    assert_int_equal(
        parse("{\"header\":{\"revision\":\"9223372036854775807\"},\"kvs\":[{\"key\":\"" KEY_B64
              "\",\"mod_revision\":\"9223372036854775807\",\"value\":\"" VAL_B64
              "\"}],\"count\":\"1\",\"more\":false}",
              &member),
        TL_LEASE_OK);
    assert_int_equal(rd.mod_revision, 9223372036854775807ull);
}

typedef struct reject_case {
    const char *body;
    enum tl_lease_err err;
    const char *member;
} reject_case;

#define KV(fields) "{" HDR ",\"kvs\":[{" fields "}],\"count\":\"1\"}"
#define KEYF       "\"key\":\"" KEY_B64 "\""
#define VALF       "\"value\":\"" VAL_B64 "\""

static void test_rejections(void **state) {
    (void)state;
    const reject_case cases[] = {
        {"", TL_LEASE_ERR_JSON, ""},
        {"{", TL_LEASE_ERR_JSON, ""},
        {"{" HDR "} x", TL_LEASE_ERR_JSON, ""},
        {"{\"header\":{\"revision\":\"1\\u0000\"}}", TL_LEASE_ERR_JSON, ""},
        {"[]", TL_LEASE_ERR_NOT_OBJECT, ""},
        {"{}", TL_LEASE_ERR_MISSING, "header"},
        {"{\"header\":[]}", TL_LEASE_ERR_NOT_OBJECT, "header"},
        {"{\"header\":{}}", TL_LEASE_ERR_MISSING, "header.revision"},
        {"{\"header\":{\"revision\":12}}", TL_LEASE_ERR_NOT_STRING, "header.revision"},
        {"{\"header\":{\"revision\":\"-1\"}}", TL_LEASE_ERR_DECIMAL, "header.revision"},
        {"{\"header\":{\"revision\":\"012\"}}", TL_LEASE_ERR_DECIMAL, "header.revision"},
        {"{\"header\":{\"revision\":\"1e3\"}}", TL_LEASE_ERR_DECIMAL, "header.revision"},
        {"{\"header\":{\"revision\":\"\"}}", TL_LEASE_ERR_DECIMAL, "header.revision"},
        {"{\"header\":{\"revision\":\"9223372036854775808\"}}", TL_LEASE_ERR_OVERFLOW,
         "header.revision"},
        {"{\"header\":{\"revision\":\"99999999999999999999x\"}}", TL_LEASE_ERR_DECIMAL,
         "header.revision"},
        {"{\"header\":{\"revision\":\"0\"}}", TL_LEASE_ERR_REVISION, "header.revision"},
        {"{\"header\":{\"revision\":\"1\",\"revision\":\"2\"}}", TL_LEASE_ERR_DUPLICATE,
         "header.revision"},
        {"{" HDR "," HDR "}", TL_LEASE_ERR_DUPLICATE, "header"},
        {"{" HDR ",\"count\":\"1\"}", TL_LEASE_ERR_COUNT_KVS, "count"},
        {"{" HDR ",\"count\":1}", TL_LEASE_ERR_NOT_STRING, "count"},
        {"{" HDR ",\"kvs\":{}}", TL_LEASE_ERR_KVS, "kvs"},
        {"{" HDR ",\"kvs\":[1]}", TL_LEASE_ERR_NOT_OBJECT, "kvs[0]"},
        {KV(KEYF ",\"mod_revision\":\"7\"," VALF) "x", TL_LEASE_ERR_JSON, ""},
        {"{" HDR ",\"kvs\":[{" KEYF ",\"mod_revision\":\"7\"," VALF "},{" KEYF
         ",\"mod_revision\":\"7\"," VALF "}],\"count\":\"2\"}",
         TL_LEASE_ERR_TOO_MANY, "kvs"},
        {"{" HDR ",\"kvs\":[{" KEYF ",\"mod_revision\":\"7\"," VALF "}]}", TL_LEASE_ERR_COUNT_KVS,
         "count"},
        {KV("\"mod_revision\":\"7\"," VALF), TL_LEASE_ERR_MISSING, "kvs[0].key"},
        {KV("\"key\":\"L2V4\",\"mod_revision\":\"7\"," VALF), TL_LEASE_ERR_OTHER_KEY, "kvs[0].key"},
        {KV("\"key\":\"L2V4Y2hhbmdlL2MxL2xlYWRlcw==\",\"mod_revision\":\"7\"," VALF),
         TL_LEASE_ERR_OTHER_KEY, "kvs[0].key"},
        {KV("\"key\":\"L2V4Y2hhbmdlL2MxL2xlYWRlc!==\",\"mod_revision\":\"7\"," VALF),
         TL_LEASE_ERR_BASE64, "kvs[0].key"},
        {KV("\"key\":7,\"mod_revision\":\"7\"," VALF), TL_LEASE_ERR_NOT_STRING, "kvs[0].key"},
        {KV(KEYF "," VALF), TL_LEASE_ERR_MISSING, "kvs[0].mod_revision"},
        {KV(KEYF ",\"mod_revision\":7," VALF), TL_LEASE_ERR_NOT_STRING, "kvs[0].mod_revision"},
        {KV(KEYF ",\"mod_revision\":\"0\"," VALF), TL_LEASE_ERR_REVISION, "kvs[0].mod_revision"},
        {KV(KEYF ",\"mod_revision\":\"13\"," VALF), TL_LEASE_ERR_REVISION, "kvs[0].mod_revision"},
        {KV(KEYF ",\"mod_revision\":\"7\",\"mod_revision\":\"8\"," VALF), TL_LEASE_ERR_DUPLICATE,
         "kvs[0].mod_revision"},
        {KV(KEYF ",\"mod_revision\":\"7\",\"lease\":7," VALF), TL_LEASE_ERR_NOT_STRING,
         "kvs[0].lease"},
        {KV(KEYF ",\"mod_revision\":\"7\",\"version\":\"x\"," VALF), TL_LEASE_ERR_DECIMAL,
         "kvs[0].version"},
        {KV(KEYF ",\"mod_revision\":\"7\",\"create_revision\":\"-2\"," VALF), TL_LEASE_ERR_DECIMAL,
         "kvs[0].create_revision"},
        {KV(KEYF ",\"mod_revision\":\"7\""), TL_LEASE_ERR_VALUE, "kvs[0].value"},
        {KV(KEYF ",\"mod_revision\":\"7\",\"value\":\"YWJj\""), TL_LEASE_ERR_VALUE, "kvs[0].value"},
        /* 44 characters, but "z" is not a hex digit: "z0112233445566778899aabbccddeeff" */
        {KV(KEYF
            ",\"mod_revision\":\"7\",\"value\":\"ejAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmY=\""),
         TL_LEASE_ERR_VALUE, "kvs[0].value"},
        {KV(KEYF
            ",\"mod_revision\":\"7\",\"value\":\"MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZm!=\""),
         TL_LEASE_ERR_BASE64, "kvs[0].value"},
        {KV(KEYF ",\"mod_revision\":\"7\",\"value\":true"), TL_LEASE_ERR_NOT_STRING,
         "kvs[0].value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *member = "unset";
        enum tl_lease_err e = parse(cases[i].body, &member);
        if (e != cases[i].err || strcmp(member, cases[i].member) != 0)
            fail_msg("case %zu: %s at \"%s\", want %s at \"%s\": %s", i, tl_lease_err_name(e),
                     member, tl_lease_err_name(cases[i].err), cases[i].member, cases[i].body);
    }
    /* refused before parsing; deep nesting is an error, not a crash */
    size_t big = TL_LEASE_BODY_MAX + 1;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    assert_int_equal(tl_lease_parse(huge, big, KEY, KEY_LEN, &rd, NULL), TL_LEASE_ERR_TOO_LARGE);
    free(huge);
    size_t deep = 5000;
    char *d = malloc(deep * 2);
    for (size_t i = 0; i < deep; i++) {
        d[i] = '[';
        d[deep + i] = ']';
    }
    assert_int_equal(tl_lease_parse(d, deep * 2, KEY, KEY_LEN, &rd, NULL), TL_LEASE_ERR_JSON);
    free(d);
    /* a NUL byte inside */
    assert_int_equal(tl_lease_parse("{\"header\"\0}", 11, KEY, KEY_LEN, &rd, NULL),
                     TL_LEASE_ERR_JSON);
    for (int e = 0; e < TL_LEASE_ERR_COUNT; e++)
        assert_true(strcmp(tl_lease_err_name((enum tl_lease_err)e), "?") != 0);
    assert_string_equal(tl_lease_err_name(TL_LEASE_ERR_COUNT), "?");
}

/* ---- the checker ---- */

#define MAX_FOUND 16
static tl_finding found[MAX_FOUND];
static int nfound;

static void sink(void *ctx, const tl_finding *f) {
    (void)ctx;
    assert_true(nfound < MAX_FOUND);
    found[nfound++] = *f;
}

static uint8_t A[TL_ID_BYTES], B[TL_ID_BYTES];
static void *win;
static tl_log lg;
static tl_lease g;
static uint64_t poll_id;

#define T0   1795000000000000000ull /* real clock */
#define MS   1000000ull
#define MONO 5000000000ull

static void setup_checker(uint32_t confirmations) {
    memset(A, 0xa1, sizeof A);
    memset(B, 0xb2, sizeof B);
    if (win == NULL)
        win = tu_aligned(64, tl_window_bytes(64));
    tl_log_init(&lg, TL_DIALECT_TLYWAL1, win, 64, (tl_sink){sink, NULL});
    tl_lease_cfg c;
    tl_lease_cfg_defaults(&c);
    c.enabled = true;
    c.confirmations = confirmations;
    c.grace_ms = 200;
    c.stale_ms = 1000;
    tl_lease_init(&g, &c, &lg);
    nfound = 0;
    poll_id = 0;
}

/* A good reading received at real time T0 + at_ms. */
static void reading(const uint8_t *holder, uint64_t R, uint64_t H, uint64_t at_ms,
                    const tl_lease_local *loc) {
    tl_lease_reading r;
    memset(&r, 0, sizeof r);
    r.poll_id = ++poll_id;
    r.recv_real_ns = T0 + at_ms * MS;
    r.recv_mono_ns = MONO + at_ms * MS;
    r.revision = H;
    if (holder != NULL) {
        r.present = 1;
        r.mod_revision = R;
        memcpy(r.holder, holder, TL_ID_BYTES);
    }
    tl_lease_take(&g, &r, loc, r.recv_mono_ns);
}

static void failed(uint8_t fail, uint64_t at_ms, const tl_lease_local *loc) {
    tl_lease_reading r;
    memset(&r, 0, sizeof r);
    r.poll_id = ++poll_id;
    r.recv_mono_ns = MONO + at_ms * MS;
    r.fail = fail;
    tl_lease_take(&g, &r, loc, r.recv_mono_ns);
}

/* A record the engine wrote at real time T0 + at_ms with `fence`. */
static void record(uint64_t seq, uint64_t fence, uint64_t at_ms, const tl_lease_local *loc) {
    tl_rec_view v;
    memset(&v, 0, sizeof v);
    v.seq = seq;
    v.fence = fence;
    v.ts_ns = T0 + at_ms * MS;
    v.checksum = seq * 31;
    v.kind = TL_KIND_HEARTBEAT;
    tl_lease_record(&g, &v, loc);
}

static void test_stale_leader(void **state) {
    (void)state;
    /* A leads with fence 7; the authority says B holds the key at 9. */
    setup_checker(3);
    tl_lease_local a = {.self_id = A, .is_leader = true, .fence = 7};
    reading(A, 7, 8, 0, &a);
    record(100, 7, 10, &a);
    assert_int_equal(nfound, 0);
    reading(B, 9, 9, 1000, &a);
    /* records written before the reading, or within grace: nothing */
    record(101, 7, 900, &a);
    record(102, 7, 1150, &a);
    record(103, 7, 1200, &a); /* exactly receive + grace: not later */
    assert_int_equal(nfound, 0);
    record(104, 7, 1201, &a);
    assert_int_equal(nfound, 1);
    assert_int_equal(found[0].check, TL_CHECK_STALE_LEADER);
    assert_int_equal(found[0].severity, TL_SEV_SEV1);
    assert_int_equal(found[0].reason, TL_REASON_LEASE_OTHER);
    assert_int_equal(found[0].seq, 104);
    assert_int_equal(found[0].fence, 7);
    assert_int_equal(found[0].fence2, 9);
    assert_int_equal(found[0].seq2, 9);
    assert_int_equal(found[0].source, TL_SOURCE_LEASE);
    assert_memory_equal(found[0].node, B, TL_ID_BYTES);
    /* one fact, one finding: more records of the same episode say nothing */
    record(105, 7, 1300, &a);
    reading(B, 9, 10, 1400, &a);
    record(106, 7, 1700, &a);
    assert_int_equal(nfound, 1);

    /* absent key: any fence is stale */
    setup_checker(3);
    reading(A, 7, 7, 0, &a);
    reading(NULL, 0, 8, 500, &a);
    record(200, 7, 600, &a);
    assert_int_equal(nfound, 0);
    record(201, 7, 701, &a);
    assert_int_equal(nfound, 1);
    assert_int_equal(found[0].reason, TL_REASON_LEASE_ABSENT);
    /* the episode ends when the authority names A again; a new one counts */
    reading(A, 7, 9, 800, &a);
    record(202, 7, 1100, &a);
    assert_int_equal(nfound, 1);
    reading(NULL, 0, 10, 1200, &a);
    record(203, 7, 1500, &a);
    assert_int_equal(nfound, 2);

    /* a standby (its log's leader is B) never triggers it */
    setup_checker(3);
    tl_lease_local sb = {.self_id = A, .is_leader = false, .fence = 7};
    reading(B, 9, 12, 0, &sb);
    record(300, 7, 5000, &sb);
    reading(NULL, 0, 12, 6000, &sb);
    record(301, 7, 9000, &sb);
    assert_int_equal(nfound, 0);
    /* the engine id unknown (no ring yet): nothing either */
    tl_lease_local anon = {.self_id = NULL, .is_leader = false, .fence = 7};
    record(302, 7, 9000, &anon);
    assert_int_equal(nfound, 0);
}

/* Polls every 50 ms, far inside the grace: the loss is timed from the first
 * reading that showed it, not from the newest (found by the integration
 * test: judged against the newest reading, a stale leader never counted). */
static void test_frequent_polls(void **state) {
    (void)state;
    setup_checker(3);
    tl_lease_local a = {.self_id = A, .is_leader = true, .fence = 7};
    uint64_t t = 0;
    for (; t < 1000; t += 50) {
        reading(A, 7, 7, t, &a);
        record(t + 1, 7, t + 10, &a);
    }
    /* the lease expires at t = 1000: every reading from then says absent */
    for (; t < 3000; t += 50) {
        reading(NULL, 0, 8, t, &a);
        record(t + 1, 7, t + 20, &a);
        if (t + 20 <= 1200)
            assert_int_equal(nfound, 0);
    }
    assert_int_equal(nfound, 1);
    assert_int_equal(found[0].check, TL_CHECK_STALE_LEADER);
    assert_int_equal(found[0].seq, 1201); /* ts 1220: the first past 1000 + 200 */
    /* re-elected: the run ends, and with it the episode */
    a.fence = 9;
    reading(A, 9, 9, 3000, &a);
    for (t = 3050; t < 3500; t += 50) {
        reading(A, 9, 9, t, &a);
        record(t + 1, 9, t + 400, &a);
    }
    assert_int_equal(nfound, 1);
    /* an honest leader that stops writing when its lease is lost: nothing */
    setup_checker(3);
    for (t = 0; t < 1000; t += 50) {
        reading(A, 7, 7, t, &a);
        record(t + 1, 7, t + 10, &a);
    }
    for (; t < 5000; t += 50)
        reading(t < 2000 ? NULL : B, 12, 12, t, &a);
    assert_int_equal(nfound, 0);
}

static void test_race_rules(void **state) {
    (void)state;
    /* B, a standby under the lease of A (fence 7), wins the key after A's
     * lease expired: the put has revision 12, B writes LEADER_CHANGE{12}
     * before tally's next poll. No reading older than the put may halt it. */
    setup_checker(3);
    tl_lease_local b = {.self_id = B, .is_leader = false, .fence = 7};
    reading(A, 7, 10, 0, &b);
    record(500, 7, 100, &b);
    reading(NULL, 0, 11, 2000, &b); /* A's lease expired: nobody holds it */
    record(501, 7, 2100, &b);       /* B still a standby */
    b.is_leader = true;
    b.fence = 12;
    record(502, 12, 2300, &b); /* LEADER_CHANGE{12}: H 11 < 12, read again */
    record(503, 12, 2400, &b);
    assert_int_equal(nfound, 0);
    assert_true(g.st.inconclusive_total >= 2);
    reading(B, 12, 12, 2450, &b);
    record(504, 12, 2700, &b);
    assert_int_equal(nfound, 0);

    /* The old leader A, honest: it stopped before its lease expired. Its
     * tally reads B as the holder; A writes nothing: no finding. Had it
     * written before the expiry it would not count either (ts rule). */
    setup_checker(3);
    tl_lease_local a = {.self_id = A, .is_leader = true, .fence = 7};
    reading(A, 7, 10, 0, &a);
    record(600, 7, 1500, &a);
    reading(NULL, 0, 11, 2000, &a);
    reading(B, 12, 12, 2050, &a);
    record(601, 7, 1900, &a); /* written before, read late */
    assert_int_equal(nfound, 0);
    /* a re-elected A (new put 14): the reading from before its put does
     * not make its fence-14 records stale */
    a.fence = 14;
    record(602, 14, 3000, &a);
    assert_int_equal(nfound, 0);
    reading(A, 14, 14, 3100, &a);
    record(603, 14, 3400, &a);
    assert_int_equal(nfound, 0);
}

static void test_unknown_lease(void **state) {
    (void)state;
    /* An authority restored from an old backup: the key names A at 5, the
     * engine writes with 7. Conclusive only once H >= 7. */
    setup_checker(3);
    tl_lease_local a = {.self_id = A, .is_leader = true, .fence = 7};
    reading(A, 5, 6, 0, &a); /* H 6 < 7: the put may be still to come */
    record(700, 7, 100, &a);
    assert_int_equal(nfound, 0);
    reading(A, 5, 7, 200, &a); /* judged at the reading, against the fence in force */
    assert_int_equal(nfound, 1);
    assert_int_equal(found[0].check, TL_CHECK_UNKNOWN_LEASE);
    assert_int_equal(found[0].reason, TL_REASON_LEASE_BEHIND);
    assert_int_equal(found[0].fence, 7);
    assert_int_equal(found[0].fence2, 5);
    assert_int_equal(found[0].seq2, 7);
    /* raised at a reading: the evidence is the newest record read (700) */
    assert_int_equal(found[0].seq, 700);
    assert_int_equal(found[0].checksum, 700 * 31);
    record(701, 7, 300, &a);
    reading(A, 5, 30, 400, &a);
    assert_int_equal(nfound, 1); /* one episode */
    /* the authority agrees again, then disagrees again: a new finding */
    reading(A, 7, 31, 500, &a);
    assert_int_equal(nfound, 1);
    reading(B, 3, 32, 600, &a);
    assert_int_equal(nfound, 2);

    setup_checker(3);
    a.fence = 0; /* the fence not read yet: nothing to compare */
    reading(A, 5, 40, 0, &a);
    assert_int_equal(nfound, 0);
    record(800, 9, 100, &a);
    assert_int_equal(nfound, 1);
    assert_int_equal(found[0].check, TL_CHECK_UNKNOWN_LEASE);
    assert_int_equal(found[0].seq, 800);
    /* a standby writing the leader's fence 9 under an authority at 12 is fine */
    setup_checker(3);
    tl_lease_local sb = {.self_id = A, .is_leader = false, .fence = 9};
    reading(B, 9, 40, 0, &sb);
    record(900, 9, 100, &sb);
    reading(B, 12, 40, 200, &sb);
    assert_int_equal(nfound, 0);
}

static void test_unreachable(void **state) {
    (void)state;
    setup_checker(3);
    tl_lease_local a = {.self_id = A, .is_leader = true, .fence = 7};
    tl_lease_tick(&g, MONO);
    reading(A, 7, 7, 0, &a);
    failed(TL_LEASE_FAIL_UNREACHABLE, 50, &a);
    failed(TL_LEASE_FAIL_UNREACHABLE, 100, &a);
    assert_int_equal(nfound, 0);
    failed(TL_LEASE_FAIL_UNREACHABLE, 150, &a);
    assert_int_equal(nfound, 1);
    assert_int_equal(found[0].check, TL_CHECK_LEASE_UNREACHABLE);
    assert_int_equal(found[0].severity, TL_SEV_DEGRADED);
    assert_int_equal(found[0].reason, TL_REASON_LEASE_FAILED);
    failed(TL_LEASE_FAIL_REJECTED, 200, &a);
    tl_lease_tick(&g, MONO + 5000 * MS);
    assert_int_equal(nfound, 1);
    tl_lease_stats st;
    tl_lease_stats_get(&g, A, &st);
    assert_true(st.unreachable);
    assert_int_equal(st.failed_total, 3);
    assert_int_equal(st.rejected_total, 1);
    assert_true(st.holder_is_local);
    assert_int_equal(st.mod_revision, 7);
    /* the newest good reading still counts while etcd is away */
    record(1000, 7, 100, &a);
    assert_int_equal(nfound, 1);
    /* back: the episode ends; rejected replies open the next one */
    reading(A, 7, 8, 6000, &a);
    tl_lease_stats_get(&g, A, &st);
    assert_false(st.unreachable);
    failed(TL_LEASE_FAIL_REJECTED, 6050, &a);
    failed(TL_LEASE_FAIL_REJECTED, 6100, &a);
    failed(TL_LEASE_FAIL_REJECTED, 6150, &a);
    assert_int_equal(nfound, 2);
    assert_int_equal(found[1].reason, TL_REASON_LEASE_REJECTED);
    /* silence: no reading at all */
    setup_checker(3);
    tl_lease_tick(&g, MONO);
    tl_lease_tick(&g, MONO + 1000 * MS);
    assert_int_equal(nfound, 0);
    tl_lease_tick(&g, MONO + 1001 * MS);
    assert_int_equal(nfound, 1);
    assert_int_equal(found[0].reason, TL_REASON_LEASE_SILENT);
    tl_lease_tick(&g, MONO + 9000 * MS);
    assert_int_equal(nfound, 1);
    /* disabled: nothing at all */
    setup_checker(3);
    g.cfg.enabled = false;
    tl_lease_tick(&g, MONO);
    tl_lease_tick(&g, MONO + 9000 * MS);
    failed(TL_LEASE_FAIL_UNREACHABLE, 1, &a);
    failed(TL_LEASE_FAIL_UNREACHABLE, 2, &a);
    failed(TL_LEASE_FAIL_UNREACHABLE, 3, &a);
    assert_int_equal(nfound, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64),         cmocka_unit_test(test_replies),
        cmocka_unit_test(test_rejections),  cmocka_unit_test(test_stale_leader),
        cmocka_unit_test(test_race_rules),  cmocka_unit_test(test_unknown_lease),
        cmocka_unit_test(test_unreachable), cmocka_unit_test(test_frequent_polls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
