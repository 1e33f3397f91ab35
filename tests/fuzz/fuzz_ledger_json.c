/* fuzz_ledger_json.c: libFuzzer target for the ledger's watermark reply
 * (core/ledger.h: tl_ledger_parse), the body of a GET the ledger answers:
 * outside bytes.
 *
 * Every input must end in TL_LEDGER_OK or a named rejection (with a member
 * for the errors that have one), never a crash, a hang or a read outside
 * the buffer (it is copied to an exact-size heap block so ASan sees every
 * overread). For each accepted reply:
 *   1. the invariants: at most TL_LEDGER_SYMBOLS_MAX symbols, ids 1..2^32-1,
 *      no id twice;
 *   2. a round trip: the reply written back canonically parses to the same
 *      values;
 *   3. the reply goes through the checker (tl_ledger_reply) against a small
 *      window, as the hot loop would take it: any ledger_seq, checksum or
 *      figures must give findings or nothing, never an assertion.
 *
 * Build (clang 14):
 *   cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang \
 *         -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link,address,undefined
 *   make -C build-fuzz tl_core
 *   clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_ledger_json.c \
 *         build-fuzz/core/libtl_core.a -lcjson -lxxhash -lz -o fuzz_ledger_json
 *   link deps: tl_core (built with -fsanitize=fuzzer-no-link,address,undefined),
 *              cjson, xxhash, z
 * Run:
 *   ./fuzz_ledger_json -max_len=70000 corpus/
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/ledger.h"

#define WINDOW 64u

static tl_ledger_wm a, b;
static uint64_t findings;

static void sink(void *ctx, const tl_finding *f) {
    (void)ctx;
    TL_ASSERT(f->check >= TL_CHECK_LEDGER_AHEAD);
    findings++;
}

static size_t canonical(const tl_ledger_wm *w, char *out, size_t cap) {
    size_t n = (size_t)snprintf(
        out, cap,
        "{\"ledger_seq\":\"%" PRIu64 "\",\"checksum\":\"%016" PRIx64 "\",\"trades\":\"%" PRIu64
        "\",\"qty\":\"%" PRIu64 "\",\"notional\":\"%" PRIu64 "\",\"ts_ns\":\"%" PRIu64
        "\",\"symbols\":[",
        w->ledger_seq, w->checksum, w->total.trades, w->total.qty, w->total.notional, w->ts_ns);
    for (uint32_t i = 0; i < w->symbol_count && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n,
                              "%s{\"symbol\":%u,\"trades\":\"%" PRIu64 "\",\"qty\":\"%" PRIu64
                              "\",\"notional\":\"%" PRIu64 "\"}",
                              i ? "," : "", w->symbols[i].symbol, w->symbols[i].f.trades,
                              w->symbols[i].f.qty, w->symbols[i].f.notional);
    if (n < cap)
        n += (size_t)snprintf(out + n, cap - n, "]}");
    TL_ASSERT(n < cap);
    return n;
}

static void check_with_window(const tl_ledger_wm *w) {
    static void *win, *mem;
    static tl_log log;
    static tl_ledger g;
    tl_ledger_cfg c;
    tl_ledger_cfg_defaults(&c);
    c.enabled = true;
    c.fifo_trades = 16;
    if (win == NULL) {
        win = aligned_alloc(64, tl_window_bytes(WINDOW));
        mem = aligned_alloc(64, (tl_ledger_mem_bytes(&c) + 63) & ~(size_t)63);
    }
    tl_log_init(&log, TL_DIALECT_TLYWAL1, win, WINDOW, (tl_sink){sink, NULL});
    tl_ledger_init(&g, &c, &log, mem);
    /* a small log: trades on symbols 1..3, the input's checksum at seq 5 */
    for (uint64_t q = 1; q <= 40; q++) {
        tl_win_entry *e = tl_window_put(&log.win, q);
        e->checksum = q == 5 ? w->checksum : q * 7919;
        e->kind = q % 3 == 0 ? TL_KIND_TRADE : TL_KIND_ORDER_NEW;
        e->symbol = 1 + (uint32_t)(q % 3);
        e->qty = q;
        e->notional = q * 100;
        e->ts_ns = 1795000000000000000ull;
        tl_ledger_wal_record(&g, q);
    }
    while (tl_ledger_fold(&g, 40, 40) > 0)
        ;
    tl_ledger_wm x = *w;
    x.recv_mono_ns = 1000;
    x.recv_real_ns = w->ts_ns;
    for (uint64_t i = 1; i <= 3; i++) {
        x.poll_id = i;
        /* Bounded: a held reply is retried a few times, then given up. */
        for (int k = 0; k < 4 && !tl_ledger_reply(&g, &x, 1000 + i, w->ts_ns, 40, 1000 + i); k++)
            ;
        tl_ledger_tick(&g, 1000 + i * 1000000000ull);
    }
    tl_ledger_stats st;
    tl_ledger_stats_get(&g, 40, &st);
    TL_ASSERT(st.fold_seq == 40);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    const char *member = NULL;
    enum tl_ledger_err e = tl_ledger_parse(copy, size, &a, &member);
    free(copy);
    TL_ASSERT((unsigned)e < TL_LEDGER_ERR_COUNT);
    TL_ASSERT(strcmp(tl_ledger_err_name(e), "?") != 0 && member != NULL);
    if (e != TL_LEDGER_OK)
        return 0;
    TL_ASSERT(a.symbol_count <= TL_LEDGER_SYMBOLS_MAX);
    for (uint32_t i = 0; i < a.symbol_count; i++) {
        TL_ASSERT(a.symbols[i].symbol != 0);
        for (uint32_t k = 0; k < i; k++)
            TL_ASSERT(a.symbols[k].symbol != a.symbols[i].symbol);
    }
    static char buf[TL_LEDGER_BODY_MAX];
    size_t n = canonical(&a, buf, sizeof buf);
    TL_ASSERT(tl_ledger_parse(buf, n, &b, NULL) == TL_LEDGER_OK);
    TL_ASSERT(memcmp(&a, &b, offsetof(tl_ledger_wm, symbols)) == 0);
    TL_ASSERT(memcmp(a.symbols, b.symbols, a.symbol_count * sizeof a.symbols[0]) == 0);
    check_with_window(&a);
    return 0;
}
