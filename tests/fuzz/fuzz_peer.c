/* fuzz_peer.c: libFuzzer target for the outside bytes of the peer path:
 * the TLYPEER1 parser (core/peer.c), the receive-side checks (io/peer_mac:
 * shape, identity, mac), the Ethernet/IPv4/UDP frame parser of the DPDK
 * path (io/peer_frame), and the receiver state machine fed with what they
 * accept.
 *
 * Properties checked on every input (a failure aborts through TL_ASSERT):
 * 1. a datagram that parses re-encodes to the same 104 signed bytes, and
 *    parse never reads past the length it is given;
 * 2. the bytes signed with the key pass tl_peer_check exactly when their
 *    shape parses and their node is listed, and one flipped mac bit makes
 *    them bad_mac;
 * 3. a frame payload, when there is one, lies inside the frame;
 * 4. the input, read as a script (records our engine writes, durable
 *    advances, datagrams, ticks, incarnation ends), drives the receiver
 *    without breaking its bounds: held datagrams <= max_held per node and
 *    their sum is held_total; a rejected datagram changes no node.
 *
 * Build (clang): link with tl_net, tl_core, OpenSSL crypto, xxhash, cJSON,
 * zlib, -fsanitize=fuzzer (see the report for the command).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/assert.h"
#include "core/peer.h"
#include "io/peer_frame.h"
#include "io/peer_mac.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WIN  128u
#define HELD 4u

static tl_peer_key key;
static tl_peer_keyring kr;
static bool ready;

static void sink(void *ctx, const tl_finding *f) {
    (void)ctx;
    TL_ASSERT(f->check < TL_CHECK_COUNT);
}

static int send_cb(void *ctx, const tl_peer_msg *m) {
    (void)ctx;
    TL_ASSERT(m->kind == TL_PEER_HEARTBEAT || m->kind == TL_PEER_CHECKPOINT);
    return 0;
}

static void init_once(void) {
    if (ready)
        return;
    uint8_t raw[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (uint8_t)i;
    tl_peer_key_init(&key, raw);
    kr.count = 2;
    memset(kr.ids[0], 0xbb, 16);
    memset(kr.ids[1], 0xcc, 16);
    kr.keys[0] = key;
    kr.keys[1] = key;
    ready = true;
}

static void check_datagram(const uint8_t *data, size_t size) {
    tl_peer_msg m;
    /* 1: parse, with the length the input gives (ASan sees an overread) */
    uint8_t *copy = malloc(size == 0 ? 1 : size);
    TL_ASSERT(copy != NULL);
    memcpy(copy, data, size);
    enum tl_peer_reject r = tl_peer_parse(copy, size, &m);
    TL_ASSERT(r == TL_PEER_OK || r == TL_PEER_REJ_MALFORMED);
    if (r == TL_PEER_OK) {
        uint8_t out[136];
        tl_peer_encode(&m, NULL, NULL, out);
        TL_ASSERT(memcmp(out, copy, TL_PEER_MAC_OFFSET) == 0);
    }
    /* 2: signed with the key */
    if (size >= 136) {
        uint8_t d[136];
        memcpy(d, data, 136);
        tl_peer_mac(&key, d, d + TL_PEER_MAC_OFFSET);
        tl_peer_ev ev;
        uint8_t self[16];
        memset(self, 0xaa, 16);
        tl_peer_check(&kr, d, 136, self, &ev);
        bool shape = tl_peer_parse(d, 136, &m) == TL_PEER_OK;
        bool listed = shape && (memcmp(m.node_id, kr.ids[0], 16) == 0 ||
                                memcmp(m.node_id, kr.ids[1], 16) == 0);
        bool own = shape && memcmp(m.node_id, self, 16) == 0;
        if (!shape)
            TL_ASSERT(ev.type == TL_PEER_EV_REJECT && ev.reason == TL_PEER_REJ_MALFORMED);
        else if (own)
            TL_ASSERT(ev.type == TL_PEER_EV_OWN);
        else if (!listed)
            TL_ASSERT(ev.type == TL_PEER_EV_REJECT && ev.reason == TL_PEER_REJ_UNKNOWN_NODE);
        else
            TL_ASSERT(ev.type == TL_PEER_EV_DGRAM && ev.node < 2);
        if (listed && !own) {
            d[104 + (data[0] % 32)] ^= (uint8_t)(1u << (data[1] % 8));
            tl_peer_check(&kr, d, 136, self, &ev);
            TL_ASSERT(ev.type == TL_PEER_EV_REJECT && ev.reason == TL_PEER_REJ_BAD_MAC);
        }
    }
    free(copy);
}

static void check_frame(const uint8_t *data, size_t size) {
    const uint8_t *p = NULL;
    size_t n = 0;
    uint16_t port = size >= 2 ? (uint16_t)(data[0] << 8 | data[1]) : 7471;
    enum tl_frame_verdict v = tl_peer_frame(data, size, 0, port, &p, &n);
    TL_ASSERT((unsigned)v < TL_FRAME_VERDICT_COUNT);
    if (v == TL_FRAME_PAYLOAD)
        TL_ASSERT(p >= data && p + n <= data + size);
}

/* 4: a script. Each step takes an op byte and, for a datagram, 136 bytes
 * (signed, so most reach the receiver). */
static void run_script(const uint8_t *data, size_t size) {
    static uint8_t win_mem[WIN * sizeof(tl_win_entry)] __attribute__((aligned(64)));
    static uint8_t peer_mem[2 * HELD * sizeof(tl_peer_msg) + 64 * sizeof(tl_peer_ckpt)]
        __attribute__((aligned(64)));
    tl_log log;
    tl_log_init(&log, TL_DIALECT_TLYWAL1, win_mem, WIN, (tl_sink){sink, NULL});
    tl_peer_cfg c;
    tl_peer_cfg_defaults(&c);
    c.node_count = 2;
    memcpy(c.nodes[0].node_id, kr.ids[0], 16);
    memcpy(c.nodes[1].node_id, kr.ids[1], 16);
    c.max_held = HELD;
    c.ckpt_slots = 64;
    c.lag_records = 20;
    TL_ASSERT(tl_peer_mem_bytes(&c) <= sizeof peer_mem);
    static tl_peer p;
    tl_peer_init(&p, &c, &log, &log.win, peer_mem);
    uint8_t self[16];
    memset(self, 0xaa, 16);
    tl_peer_local loc;
    memset(&loc, 0, sizeof loc);
    loc.now_ns = 1000000000ull;
    loc.now_real_ns = 1795000000000000000ull;
    loc.attached = true;
    loc.leader_known = true;
    loc.self_id = self;
    uint64_t next_seq = 1;
    size_t i = 0;
    for (int steps = 0; i < size && steps < 2000; steps++) {
        uint8_t op = data[i++];
        switch (op % 6) {
            case 0: { /* our engine writes a record */
                tl_win_entry *e = tl_window_put(&log.win, next_seq);
                if (e != NULL) {
                    e->checksum = next_seq * 0x9e3779b97f4a7c15ull;
                    e->fence = loc.fence;
                    e->kind = op & 0x40 ? TL_KIND_CHECKPOINT : TL_KIND_ORDER_NEW;
                    uint8_t h[32];
                    memset(h, (int)next_seq, 32);
                    tl_rec_view v;
                    memset(&v, 0, sizeof v);
                    v.seq = next_seq;
                    v.kind = e->kind;
                    v.state_hash = e->kind == TL_KIND_CHECKPOINT ? h : NULL;
                    tl_peer_on_record(&p, &v);
                }
                next_seq++;
                break;
            }
            case 1: /* durable moves, the fence and leadership change */
                loc.durable_seq = next_seq - 1 > (op >> 5) % 4u ? next_seq - 1 - (op >> 5) % 4u : 0;
                loc.is_leader = op & 0x08;
                loc.stale = op & 0x10;
                if (op & 0x04)
                    loc.fence++;
                break;
            case 2: { /* a datagram */
                if (size - i < 136) {
                    i = size;
                    break;
                }
                uint8_t d[136];
                memcpy(d, data + i, 136);
                i += 136;
                if (op & 0x80)
                    tl_peer_mac(&key, d, d + TL_PEER_MAC_OFFSET);
                tl_peer_ev ev;
                tl_peer_check(&kr, d, 136, self, &ev);
                tl_peer_node before[2];
                memcpy(before, p.nodes, sizeof before);
                uint64_t accepted = p.c.accepted;
                tl_peer_receive(&p, &loc, &ev);
                if (p.c.accepted == accepted) {
                    /* rejected: no node moved (held ones may have been released) */
                    for (int k = 0; k < 2; k++)
                        TL_ASSERT(p.nodes[k].last_counter == before[k].last_counter &&
                                  p.nodes[k].applied_seq == before[k].applied_seq);
                }
                break;
            }
            case 3: /* time passes, a tick */
                loc.now_ns += (uint64_t)(op >> 3) * 1000000ull;
                loc.now_real_ns += (uint64_t)(op >> 3) * 1000000ull;
                (void)tl_peer_tick(&p, &loc, send_cb, NULL);
                break;
            case 4: /* an incarnation ends */
                tl_peer_drop_above(&p, loc.durable_seq);
                break;
            default: /* the clock jumps */
                loc.now_real_ns += (uint64_t)op * 100000000ull;
                break;
        }
        uint32_t held = 0;
        for (int k = 0; k < 2; k++) {
            TL_ASSERT(p.nodes[k].held_count <= HELD);
            held += p.nodes[k].held_count;
        }
        TL_ASSERT(held == p.held_total);
        TL_ASSERT(p.pending_count <= TL_PEER_PENDING_MAX);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_once();
    check_datagram(data, size);
    check_frame(data, size);
    run_script(data, size);
    return 0;
}
