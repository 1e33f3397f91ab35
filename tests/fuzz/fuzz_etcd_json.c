/* fuzz_etcd_json.c: libFuzzer target for etcd's range reply (core/lease.h:
 * tl_lease_parse), the body the lease authority's JSON gateway answers:
 * outside bytes.
 *
 * Every input must end in TL_LEASE_OK or a named rejection (with a member
 * string), never a crash, a hang or a read outside the buffer (it is copied
 * to an exact-size heap block so ASan sees every overread). For each
 * accepted reply:
 *   1. the invariants: revision >= 1; present iff mod_revision != 0, and
 *      then mod_revision <= revision;
 *   2. a round trip: the reading written back as etcd would write it
 *      parses to the same values;
 *   3. the reading goes through the checker (tl_lease_take, then records
 *      around its revision, as the hot loop would judge them): findings or
 *      nothing, never an assertion.
 * The first input byte also picks the key asked for (two keys), so replies
 * naming another key are exercised.
 *
 * Build (clang 14):
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang \
 *         -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link,address,undefined
 *   make -C build-fuzz tl_core
 *   clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_etcd_json.c \
 *         build-fuzz/core/libtl_core.a -lcjson -lxxhash -lz -o fuzz_etcd_json
 * Run:
 *   ./fuzz_etcd_json -max_len=20000 corpus/
 * Seeds: the replies in tests/unit/test_lease.c (etcd 3.4's own shapes).
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/lease.h"

static const char *const keys[2] = {"/exchange/c1/leader", "k"};

static uint64_t findings;

static void sink(void *ctx, const tl_finding *f) {
    (void)ctx;
    TL_ASSERT(f->check == TL_CHECK_STALE_LEADER || f->check == TL_CHECK_UNKNOWN_LEASE ||
              f->check == TL_CHECK_LEASE_UNREACHABLE);
    findings++;
}

static size_t canonical(const tl_lease_reading *r, const char *key, char *out, size_t cap) {
    char kb[512], vb[64], hex[33];
    tl_b64_encode((const uint8_t *)key, strlen(key), kb, sizeof kb);
    for (unsigned i = 0; i < TL_ID_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", r->holder[i]);
    tl_b64_encode((const uint8_t *)hex, 32, vb, sizeof vb);
    char lease[48] = "";
    if (r->lease_id != 0)
        snprintf(lease, sizeof lease, ",\"lease\":\"%" PRIu64 "\"", r->lease_id);
    int n;
    if (!r->present)
        n = snprintf(out, cap, "{\"header\":{\"revision\":\"%" PRIu64 "\"}}", r->revision);
    else
        n = snprintf(out, cap,
                     "{\"header\":{\"revision\":\"%" PRIu64 "\"},\"kvs\":[{\"key\":\"%s\","
                     "\"create_revision\":\"%" PRIu64 "\",\"mod_revision\":\"%" PRIu64
                     "\",\"value\":\"%s\"%s}],\"count\":\"1\"}",
                     r->revision, kb, r->create_revision, r->mod_revision, vb, lease);
    TL_ASSERT(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static void check(const tl_lease_reading *rd) {
    static void *win;
    static tl_log log;
    static tl_lease g;
    if (win == NULL)
        win = aligned_alloc(64, tl_window_bytes(64));
    tl_log_init(&log, TL_DIALECT_TLYWAL1, win, 64, (tl_sink){sink, NULL});
    tl_lease_cfg c;
    tl_lease_cfg_defaults(&c);
    c.enabled = true;
    tl_lease_init(&g, &c, &log);
    uint8_t self[TL_ID_BYTES];
    memset(self, 0x5a, sizeof self);
    tl_lease_reading r = *rd;
    r.poll_id = 1;
    r.recv_mono_ns = 1000;
    r.recv_real_ns = 1795000000000000000ull;
    uint64_t fences[4] = {1, r.mod_revision, r.revision, r.revision + 1};
    for (int k = 0; k < 4; k++) {
        tl_lease_local loc = {
            .self_id = k & 1 ? self : r.holder, .is_leader = k < 2, .fence = fences[k]};
        tl_lease_take(&g, &r, &loc, r.recv_mono_ns);
        tl_rec_view v;
        memset(&v, 0, sizeof v);
        v.seq = 10 + (uint64_t)k;
        v.fence = fences[k];
        v.ts_ns = r.recv_real_ns + (uint64_t)k * 300000000ull;
        tl_lease_record(&g, &v, &loc);
        r.poll_id++;
    }
    tl_lease_tick(&g, 2000);
    tl_lease_tick(&g, 2000 + 10000000000ull);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    const char *key = keys[data[0] & 1];
    data++;
    size--;
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    tl_lease_reading a, b;
    const char *member = NULL;
    enum tl_lease_err e =
        tl_lease_parse(copy, size, (const uint8_t *)key, strlen(key), &a, &member);
    free(copy);
    TL_ASSERT((unsigned)e < TL_LEASE_ERR_COUNT);
    TL_ASSERT(strcmp(tl_lease_err_name(e), "?") != 0 && member != NULL);
    if (e != TL_LEASE_OK)
        return 0;
    TL_ASSERT(a.revision >= 1 && a.revision <= TL_LEASE_INT64_MAX);
    TL_ASSERT(a.present == (a.mod_revision != 0));
    TL_ASSERT(!a.present || a.mod_revision <= a.revision);
    static char buf[4096];
    size_t n = canonical(&a, key, buf, sizeof buf);
    TL_ASSERT(tl_lease_parse(buf, n, (const uint8_t *)key, strlen(key), &b, NULL) == TL_LEASE_OK);
    TL_ASSERT(a.revision == b.revision && a.mod_revision == b.mod_revision &&
              a.present == b.present && a.lease_id == b.lease_id &&
              a.create_revision == b.create_revision &&
              memcmp(a.holder, b.holder, TL_ID_BYTES) == 0);
    check(&a);
    return 0;
}
