/* test_peer.c: the TLYPEER1 datagram and the peer receiver and sender of
 * core/peer.c, each rule of peer.md positive and negative, on a window the
 * test fills by hand and a virtual clock. The mac is io/peer_mac's (the
 * spec's vector must verify with peer.key). */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "core/peer.h"
#include "io/peer_mac.h"
#include "io/wal_reader.h"

#define NOW_REAL 1795000000000000000ull
#define NOW_MONO 1000000000ull
#define WIN      64u

/* ---- harness ---- */

typedef struct h {
    tl_log log;
    void *win_mem;
    void *peer_mem;
    tl_peer p;
    tl_peer_local loc;
    uint8_t self[TL_ID_BYTES];
    tl_finding f[256];
    int nf;
    uint64_t counters[TL_PEER_NODES_MAX]; /* next counter per node */
    tl_peer_msg sent[256];
    int nsent;
    int send_rc;
} h;

static void sink(void *ctx, const tl_finding *f) {
    h *t = ctx;
    assert_true(t->nf < 256);
    t->f[t->nf++] = *f;
}

static int count(const h *t, enum tl_check c) {
    int n = 0;
    for (int i = 0; i < t->nf; i++)
        n += t->f[i].check == c;
    return n;
}

static const tl_finding *last(const h *t, enum tl_check c) {
    for (int i = t->nf - 1; i >= 0; i--)
        if (t->f[i].check == c)
            return &t->f[i];
    return NULL;
}

static void node_id(uint8_t id[TL_ID_BYTES], uint8_t b) {
    memset(id, b, TL_ID_BYTES);
}

static h *setup(uint32_t nodes, void (*tweak)(tl_peer_cfg *)) {
    h *t = calloc(1, sizeof *t);
    t->win_mem = tu_aligned(64, tl_window_bytes(WIN));
    tl_log_init(&t->log, TL_DIALECT_TLYWAL1, t->win_mem, WIN, (tl_sink){sink, t});
    tl_peer_cfg c;
    tl_peer_cfg_defaults(&c);
    c.node_count = nodes;
    for (uint32_t i = 0; i < nodes; i++)
        node_id(c.nodes[i].node_id, (uint8_t)(0xb0 + i));
    if (tweak != NULL)
        tweak(&c);
    t->peer_mem = tu_aligned(64, tl_peer_mem_bytes(&c) + 64);
    tl_peer_init(&t->p, &c, &t->log, &t->log.win, t->peer_mem);
    node_id(t->self, 0xaa);
    t->loc.now_ns = NOW_MONO;
    t->loc.now_real_ns = NOW_REAL;
    t->loc.fence = 2;
    t->loc.attached = true;
    t->loc.leader_known = true;
    t->loc.is_leader = true;
    t->loc.self_id = t->self;
    for (uint32_t i = 0; i < nodes; i++)
        t->counters[i] = NOW_REAL - 1000000;
    t->log.now_ns = NOW_MONO;
    return t;
}

static void teardown(h *t) {
    free(t->win_mem);
    free(t->peer_mem);
    free(t);
}

static uint64_t sum_of(uint64_t seq) {
    return 0x1000000000000000ull ^ (seq * 0x9e3779b97f4a7c15ull);
}

static void hash_of(uint64_t seq, uint8_t out[32]) {
    for (int i = 0; i < 32; i++)
        out[i] = (uint8_t)(seq * 7 + (uint64_t)i);
}

/* Our engine's record at seq (first copy), durable up to `durable`. */
static void put(h *t, uint64_t seq, uint64_t fence, uint16_t kind) {
    tl_win_entry *e = tl_window_put(&t->log.win, seq);
    assert_non_null(e);
    e->checksum = sum_of(seq);
    e->fence = fence;
    e->kind = kind;
    e->srcs = TL_WIN_SRC_WAL;
    uint8_t hash[32];
    hash_of(seq, hash);
    tl_rec_view v;
    memset(&v, 0, sizeof v);
    v.seq = seq;
    v.kind = kind;
    v.checksum = e->checksum;
    v.fence = fence;
    v.state_hash = kind == TL_KIND_CHECKPOINT ? hash : NULL;
    tl_peer_on_record(&t->p, &v);
}

static void put_range(h *t, uint64_t from, uint64_t to, uint64_t fence) {
    for (uint64_t s = from; s <= to; s++)
        put(t, s, fence, s % 10 == 0 ? TL_KIND_CHECKPOINT : TL_KIND_ORDER_NEW);
    t->loc.durable_seq = to;
}

/* A datagram from node i that agrees with our history at seq. */
static tl_peer_ev dgram(h *t, uint32_t i, uint16_t kind, uint16_t role, uint64_t seq,
                        uint64_t fence) {
    tl_peer_ev ev;
    memset(&ev, 0, sizeof ev);
    ev.type = TL_PEER_EV_DGRAM;
    ev.node = (uint8_t)i;
    ev.msg.kind = kind;
    ev.msg.role = role;
    memcpy(ev.msg.node_id, t->p.nodes[i].id, TL_ID_BYTES);
    ev.msg.counter = ++t->counters[i];
    ev.msg.ts_ns = t->loc.now_real_ns;
    ev.msg.applied_seq = seq;
    ev.msg.applied_checksum = sum_of(seq);
    ev.msg.fence = fence;
    if (kind == TL_PEER_CHECKPOINT)
        hash_of(seq, ev.msg.state_hash);
    return ev;
}

static void rx(h *t, const tl_peer_ev *ev) {
    tl_peer_receive(&t->p, &t->loc, ev);
}

static int send_cb(void *ctx, const tl_peer_msg *m) {
    h *t = ctx;
    assert_true(t->nsent < 256);
    t->sent[t->nsent++] = *m;
    return t->send_rc;
}

static uint32_t tick(h *t) {
    return tl_peer_tick(&t->p, &t->loc, send_cb, t);
}

static void advance_ms(h *t, uint64_t ms) {
    t->loc.now_ns += ms * 1000000ull;
    t->loc.now_real_ns += ms * 1000000ull;
    t->log.now_ns = t->loc.now_ns;
}

/* ---- the wire: the spec's vector ---- */

static uint8_t vec_key[32];

static void load_vector(uint8_t dgram_out[136], tl_peer_key *key) {
    size_t n;
    uint8_t *b = tu_read_file(tu_shared("spec/vectors/peer-checkpoint.bin"), &n);
    assert_int_equal(n, 136);
    memcpy(dgram_out, b, 136);
    free(b);
    uint8_t *k = tu_read_file(tu_shared("spec/vectors/peer.key"), &n);
    assert_int_equal(n, 32);
    for (int i = 0; i < 32; i++)
        assert_int_equal(k[i], i); /* README: 00..1f */
    memcpy(vec_key, k, 32);
    tl_peer_key_init(key, k);
    free(k);
}

typedef struct first_ckpt {
    uint64_t seq, checksum, fence;
    uint8_t hash[32];
    bool found;
} first_ckpt;

static int on_rec(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result r) {
    (void)loc;
    (void)r;
    first_ckpt *c = ctx;
    if (v->kind != TL_KIND_CHECKPOINT || c->found)
        return 0;
    c->found = true;
    c->seq = v->seq;
    c->checksum = v->checksum;
    c->fence = v->fence;
    memcpy(c->hash, v->state_hash, 32);
    return 1;
}

static void test_vector(void **state) {
    (void)state;
    uint8_t v[136];
    tl_peer_key key;
    load_vector(v, &key);
    tl_peer_msg m;
    assert_int_equal(tl_peer_parse(v, 136, &m), TL_PEER_OK);
    assert_int_equal(m.kind, TL_PEER_CHECKPOINT);
    assert_int_equal(m.role, TL_PEER_STANDBY);
    for (int i = 0; i < 16; i++)
        assert_int_equal(m.node_id[i], 0xbb);
    assert_true(m.fence == 2);
    assert_true(tl_peer_mac_verify(&key, v));

    /* "for the first CHECKPOINT record of wal-clean (its seq, checksum and
     * state hash)": read it with the WAL reader. */
    first_ckpt c;
    memset(&c, 0, sizeof c);
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.on_record = on_rec;
    o.ctx = &c;
    tl_wal_summary sum;
    (void)tl_wal_read_dir(tu_shared("spec/vectors/wal-clean"), &o, &sum);
    assert_true(c.found);
    assert_true(m.applied_seq == c.seq);
    assert_true(m.applied_seq == 10);
    assert_true(m.applied_checksum == c.checksum);
    assert_true(m.applied_checksum == tu_hex64("b112ef418f4bc97e"));
    assert_memory_equal(m.state_hash, c.hash, 32);

    /* Our encoder reproduces the bytes from the fields, mac included. */
    uint8_t out[136];
    tl_peer_sign(&key, &m, out);
    assert_memory_equal(out, v, 136);
    /* ... and a zero mac without a callback, the rest equal. */
    tl_peer_encode(&m, NULL, NULL, out);
    assert_memory_equal(out, v, 104);
    for (int i = 104; i < 136; i++)
        assert_int_equal(out[i], 0);

    /* Every single-bit change of the signed bytes breaks the mac. */
    for (int bit = 0; bit < 136 * 8; bit += 7) {
        uint8_t x[136];
        memcpy(x, v, 136);
        x[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_false(tl_peer_mac_verify(&key, x));
    }
}

/* ---- rule 1: shape ---- */

static void test_parse_shapes(void **state) {
    (void)state;
    uint8_t v[136], x[300];
    tl_peer_key key;
    load_vector(v, &key);
    tl_peer_msg m;
    memset(&m, 0x5a, sizeof m);
    tl_peer_msg untouched = m;
    /* lengths */
    memcpy(x, v, 136);
    for (size_t len = 0; len < 300; len++) {
        if (len == 136)
            continue;
        assert_int_equal(tl_peer_parse(x, len, &m), TL_PEER_REJ_MALFORMED);
    }
    assert_memory_equal(&m, &untouched, sizeof m); /* nothing written on failure */
    assert_int_equal(tl_peer_parse(NULL, 136, &m), TL_PEER_REJ_MALFORMED);
    /* magic, each byte */
    for (int i = 0; i < 8; i++) {
        memcpy(x, v, 136);
        x[i] ^= 0x20;
        assert_int_equal(tl_peer_parse(x, 136, &m), TL_PEER_REJ_MALFORMED);
    }
    /* the len field */
    memcpy(x, v, 136);
    x[8] = 135;
    assert_int_equal(tl_peer_parse(x, 136, &m), TL_PEER_REJ_MALFORMED);
    memcpy(x, v, 136);
    x[10] = 1;
    assert_int_equal(tl_peer_parse(x, 136, &m), TL_PEER_REJ_MALFORMED);
    /* kind and role */
    const uint16_t bad[] = {0, 3, 0xffff, 0x0101};
    for (size_t i = 0; i < 4; i++) {
        memcpy(x, v, 136);
        memcpy(x + 12, &bad[i], 2);
        assert_int_equal(tl_peer_parse(x, 136, &m), TL_PEER_REJ_MALFORMED);
        memcpy(x, v, 136);
        memcpy(x + 14, &bad[i], 2);
        assert_int_equal(tl_peer_parse(x, 136, &m), TL_PEER_REJ_MALFORMED);
    }
    /* a HEARTBEAT carries a zero hash */
    memcpy(x, v, 136);
    x[12] = TL_PEER_HEARTBEAT;
    assert_int_equal(tl_peer_parse(x, 136, &m), TL_PEER_REJ_MALFORMED);
    memset(x + 72, 0, 32);
    assert_int_equal(tl_peer_parse(x, 136, &m), TL_PEER_OK);
    x[103] = 1;
    assert_int_equal(tl_peer_parse(x, 136, &m), TL_PEER_REJ_MALFORMED);
    /* a CHECKPOINT at seq 0 */
    memcpy(x, v, 136);
    memset(x + 48, 0, 8);
    assert_int_equal(tl_peer_parse(x, 136, &m), TL_PEER_REJ_MALFORMED);
    /* unaligned input parses the same */
    memcpy(x + 3, v, 136);
    assert_int_equal(tl_peer_parse(x + 3, 136, &m), TL_PEER_OK);
    assert_true(m.applied_seq == 10);
    assert_string_equal(tl_peer_reject_name(TL_PEER_REJ_OUT_OF_WINDOW), "out_of_window");
    assert_string_equal(tl_peer_reject_name(TL_PEER_REJ_BAD_MAC), "bad_mac");
}

/* ---- rule 1: identity and mac (io/peer_mac) ---- */

static void test_check_identity_mac(void **state) {
    (void)state;
    uint8_t v[136], x[136];
    tl_peer_key key;
    load_vector(v, &key);
    tl_peer_keyring kr;
    memset(&kr, 0, sizeof kr);
    kr.count = 2;
    memset(kr.ids[0], 0xcc, 16);
    memset(kr.ids[1], 0xbb, 16);
    tl_peer_key_init(&kr.keys[0], vec_key);
    tl_peer_key_init(&kr.keys[1], vec_key);
    tl_peer_ev ev;
    uint8_t self[16];
    memset(self, 0xaa, 16);

    tl_peer_check(&kr, v, 136, self, &ev);
    assert_int_equal(ev.type, TL_PEER_EV_DGRAM);
    assert_int_equal(ev.node, 1);
    assert_true(ev.msg.applied_seq == 10);

    /* malformed first: a bad shape is malformed even from a known node */
    tl_peer_check(&kr, v, 135, self, &ev);
    assert_int_equal(ev.type, TL_PEER_EV_REJECT);
    assert_int_equal(ev.reason, TL_PEER_REJ_MALFORMED);

    /* our own node: ignored, no mac needed */
    memcpy(x, v, 136);
    memset(x + 16, 0xaa, 16);
    tl_peer_check(&kr, x, 136, self, &ev);
    assert_int_equal(ev.type, TL_PEER_EV_OWN);
    /* ... unknown while our id is unknown */
    tl_peer_check(&kr, x, 136, NULL, &ev);
    assert_int_equal(ev.reason, TL_PEER_REJ_UNKNOWN_NODE);

    /* unknown node (before the mac: a valid mac does not help) */
    memcpy(x, v, 136);
    memset(x + 16, 0xdd, 16);
    tl_peer_msg m;
    assert_int_equal(tl_peer_parse(v, 136, &m), TL_PEER_OK);
    memset(m.node_id, 0xdd, 16);
    tl_peer_sign(&key, &m, x);
    tl_peer_check(&kr, x, 136, self, &ev);
    assert_int_equal(ev.type, TL_PEER_EV_REJECT);
    assert_int_equal(ev.reason, TL_PEER_REJ_UNKNOWN_NODE);

    /* bad mac: a changed field, a changed mac, another key */
    memcpy(x, v, 136);
    x[50] ^= 1;
    tl_peer_check(&kr, x, 136, self, &ev);
    assert_int_equal(ev.reason, TL_PEER_REJ_BAD_MAC);
    memcpy(x, v, 136);
    x[135] ^= 0x80;
    tl_peer_check(&kr, x, 136, self, &ev);
    assert_int_equal(ev.reason, TL_PEER_REJ_BAD_MAC);
    uint8_t other[32];
    memset(other, 7, 32);
    tl_peer_key_init(&kr.keys[1], other);
    tl_peer_check(&kr, v, 136, self, &ev);
    assert_int_equal(ev.type, TL_PEER_EV_REJECT);
    assert_int_equal(ev.reason, TL_PEER_REJ_BAD_MAC);
    /* node 0's key does not verify node 1's datagrams */
    memset(m.node_id, 0xcc, 16);
    tl_peer_sign(&key, &m, x);
    tl_peer_check(&kr, x, 136, self, &ev);
    assert_int_equal(ev.type, TL_PEER_EV_DGRAM);
    assert_int_equal(ev.node, 0);
}

/* ---- rule 2: freshness; rejected datagrams change nothing ---- */

static void snapshot(const h *t, tl_peer_node *n, tl_peer_counters *c) {
    memcpy(n, &t->p.nodes[0], sizeof *n);
    *c = t->p.c;
}

static void assert_unchanged(const h *t, const tl_peer_node *n, const tl_peer_counters *c,
                             enum tl_peer_reject reason) {
    const tl_peer_node *now = &t->p.nodes[0];
    assert_true(now->last_counter == n->last_counter);
    assert_int_equal(now->heard, n->heard);
    assert_true(now->applied_seq == n->applied_seq);
    assert_int_equal(now->held_count, n->held_count);
    assert_true(now->last_valid_ns == n->last_valid_ns);
    assert_true(t->p.c.accepted == c->accepted);
    assert_true(t->p.c.rejected[reason] == c->rejected[reason] + 1);
}

static void test_freshness(void **state) {
    (void)state;
    h *t = setup(1, NULL);
    put_range(t, 1, 40, 2);
    tl_peer_ev a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 30, 2);
    rx(t, &a);
    assert_true(t->p.c.accepted == 1);
    assert_true(t->p.nodes[0].last_counter == a.msg.counter);
    assert_true(atomic_load(&t->p.nodes[0].counter_pub) == a.msg.counter);

    tl_peer_node n;
    tl_peer_counters c;
    /* the same datagram again: replay */
    snapshot(t, &n, &c);
    rx(t, &a);
    assert_unchanged(t, &n, &c, TL_PEER_REJ_REPLAY);
    /* a lower counter with other content */
    tl_peer_ev b = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 35, 9);
    b.msg.counter = a.msg.counter - 1;
    snapshot(t, &n, &c);
    rx(t, &b);
    assert_unchanged(t, &n, &c, TL_PEER_REJ_REPLAY);
    assert_int_equal(t->nf, 0); /* its LEADER claim was never judged */

    /* ts_ns outside max_skew_ms, both ways; at the bound it passes */
    tl_peer_ev s = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 30, 2);
    s.msg.ts_ns = t->loc.now_real_ns - 1000000001ull;
    snapshot(t, &n, &c);
    rx(t, &s);
    assert_unchanged(t, &n, &c, TL_PEER_REJ_STALE);
    s.msg.ts_ns = t->loc.now_real_ns + 1000000001ull;
    snapshot(t, &n, &c);
    rx(t, &s);
    assert_unchanged(t, &n, &c, TL_PEER_REJ_STALE);
    s.msg.ts_ns = t->loc.now_real_ns + 1000000000ull;
    rx(t, &s);
    assert_true(t->p.c.accepted == 2);
    teardown(t);
}

static void persisted(tl_peer_cfg *c) {
    c->nodes[0].last_counter = NOW_REAL;
}

static void test_persisted_counter(void **state) {
    (void)state;
    h *t = setup(1, persisted);
    put_range(t, 1, 10, 2);
    tl_peer_ev a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 5, 2);
    a.msg.counter = NOW_REAL; /* accepted before the restart */
    rx(t, &a);
    assert_true(t->p.c.rejected[TL_PEER_REJ_REPLAY] == 1);
    a.msg.counter = NOW_REAL + 1;
    rx(t, &a);
    assert_true(t->p.c.accepted == 1);
    teardown(t);
}

static void test_out_of_window(void **state) {
    (void)state;
    h *t = setup(1, NULL);
    put_range(t, 11, 200, 2); /* window of 64: 137..200 held; 11 was the first */
    tl_peer_node n;
    tl_peer_counters c;
    /* below the first seq we ever held */
    tl_peer_ev a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 5, 2);
    snapshot(t, &n, &c);
    rx(t, &a);
    assert_unchanged(t, &n, &c, TL_PEER_REJ_OUT_OF_WINDOW);
    /* evicted from the window */
    a = dgram(t, 0, TL_PEER_CHECKPOINT, TL_PEER_STANDBY, 100, 2);
    snapshot(t, &n, &c);
    rx(t, &a);
    assert_unchanged(t, &n, &c, TL_PEER_REJ_OUT_OF_WINDOW);
    /* the window's oldest seq is still compared */
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 137, 2);
    rx(t, &a);
    assert_true(t->p.c.compared == 1);
    /* a rejected LEADER claim is not judged: no DUAL_LEADER */
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 100, 3);
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_DUAL_LEADER), 0);
    assert_int_equal(t->nf, 0);
    teardown(t);
}

static void test_reject_events_counted(void **state) {
    (void)state;
    h *t = setup(2, NULL);
    tl_peer_ev ev;
    memset(&ev, 0, sizeof ev);
    ev.type = TL_PEER_EV_REJECT;
    for (unsigned r = TL_PEER_REJ_MALFORMED; r <= TL_PEER_REJ_BAD_MAC; r++) {
        ev.reason = (uint8_t)r;
        rx(t, &ev);
        assert_true(t->p.c.rejected[r] == 1);
    }
    ev.reason = 200; /* an impossible reason is counted as malformed */
    rx(t, &ev);
    assert_true(t->p.c.rejected[TL_PEER_REJ_MALFORMED] == 2);
    ev.type = TL_PEER_EV_OWN;
    rx(t, &ev);
    assert_true(t->p.c.own_ignored == 1);
    /* a DGRAM whose index does not name its node is unknown */
    put_range(t, 1, 10, 2);
    ev = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 5, 2);
    ev.node = 1;
    rx(t, &ev);
    assert_true(t->p.c.rejected[TL_PEER_REJ_UNKNOWN_NODE] == 2);
    ev.node = 9;
    rx(t, &ev);
    assert_true(t->p.c.rejected[TL_PEER_REJ_UNKNOWN_NODE] == 3);
    /* our own node id in a DGRAM: ignored */
    ev = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 5, 2);
    memcpy(ev.msg.node_id, t->self, 16);
    rx(t, &ev);
    assert_true(t->p.c.own_ignored == 2);
    assert_true(t->p.c.accepted == 0);
    teardown(t);
}

/* ---- rule 3: leadership on arrival ---- */

static void test_dual_leader(void **state) {
    (void)state;
    h *t = setup(1, NULL);
    put_range(t, 1, 40, 2);
    /* a peer claims LEADER with our fence while we lead: DUAL_LEADER, at
     * once, even for a seq we have not reached */
    tl_peer_ev a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 50, 2);
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_DUAL_LEADER), 1);
    const tl_finding *f = last(t, TL_CHECK_DUAL_LEADER);
    assert_int_equal(f->severity, TL_SEV_SEV1);
    assert_int_equal(f->source, TL_SOURCE_PEER);
    assert_true(f->fence == 2 && f->fence2 == 2 && f->seq == 50);
    assert_memory_equal(f->node, t->p.nodes[0].id, 16);
    /* the same claim again: one fact, one finding */
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 51, 2);
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_DUAL_LEADER), 1);
    /* a higher fence is a new claim */
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 52, 3);
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_DUAL_LEADER), 2);
    teardown(t);

    /* negatives: we do not lead (a standby, or our heartbeat is stale:
     * is_leader false); the peer claims STANDBY */
    t = setup(1, NULL);
    put_range(t, 1, 40, 2);
    t->loc.is_leader = false;
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 40, 2);
    rx(t, &a);
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 40, 3);
    rx(t, &a);
    t->loc.is_leader = true;
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 40, 5);
    rx(t, &a);
    assert_int_equal(t->nf, 0);
    teardown(t);
}

static void test_stale_peer_leader(void **state) {
    (void)state;
    h *t = setup(1, NULL);
    put_range(t, 1, 40, 3);
    t->loc.fence = 3;
    t->loc.is_leader = false;
    /* SEV2: three in a row */
    tl_peer_ev a;
    for (int i = 0; i < 2; i++) {
        a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 30, 2);
        rx(t, &a);
    }
    assert_int_equal(count(t, TL_CHECK_STALE_PEER_LEADER), 0);
    /* interrupted: the count starts again */
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 30, 2);
    rx(t, &a);
    for (int i = 0; i < 2; i++) {
        a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 30, 2);
        rx(t, &a);
    }
    assert_int_equal(count(t, TL_CHECK_STALE_PEER_LEADER), 0);
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 30, 2);
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_STALE_PEER_LEADER), 1);
    const tl_finding *f = last(t, TL_CHECK_STALE_PEER_LEADER);
    assert_int_equal(f->severity, TL_SEV_SEV2);
    assert_true(f->fence == 3 && f->fence2 == 2);
    /* once per episode */
    for (int i = 0; i < 5; i++) {
        a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 30, 2);
        rx(t, &a);
    }
    assert_int_equal(count(t, TL_CHECK_STALE_PEER_LEADER), 1);
    /* a leader at our fence is not stale, and not dual while we do not lead */
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 30, 3);
    rx(t, &a);
    assert_int_equal(t->nf, 1);
    teardown(t);
}

/* ---- rule 3: fences first, comparisons ---- */

static void test_fences_first(void **state) {
    (void)state;
    h *t = setup(1, NULL);
    put_range(t, 1, 20, 2);
    put_range(t, 21, 40, 3); /* a failover at 21 */
    t->loc.fence = 3;
    t->loc.is_leader = false;
    /* fence 2 at seq 30 (our record has 3): the loser of that failover, no
     * comparison, although its checksum differs */
    tl_peer_ev a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 30, 2);
    a.msg.applied_checksum ^= 1;
    rx(t, &a);
    assert_true(t->p.c.fenced_out == 1);
    assert_int_equal(t->nf, 0);
    /* fence 2 at seq 15 (our record has 2): compared, and it forks */
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 15, 2);
    a.msg.applied_checksum ^= 1;
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_PEER_LOG_FORK), 1);
    const tl_finding *f = last(t, TL_CHECK_PEER_LOG_FORK);
    assert_true(f->seq == 15 && f->checksum == sum_of(15) && f->checksum2 == (sum_of(15) ^ 1));
    assert_true(f->fence == 2 && f->fence2 == 2);
    teardown(t);

    /* a higher fence than ours compares too (f >= f_s) */
    t = setup(1, NULL);
    put_range(t, 1, 20, 2);
    t->loc.is_leader = false;
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 15, 4);
    rx(t, &a);
    assert_true(t->p.c.compared == 1);
    teardown(t);
}

static void test_peer_log_fork(void **state) {
    (void)state;
    h *t = setup(1, NULL);
    put_range(t, 1, 40, 2);
    t->loc.is_leader = false;
    /* agreement: nothing */
    for (uint64_t s = 1; s <= 40; s++) {
        tl_peer_ev a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, s, 2);
        rx(t, &a);
    }
    assert_true(t->p.c.compared == 40);
    assert_int_equal(t->nf, 0);
    /* a fork at 25: one finding; the same history at 26.. is its echo */
    tl_peer_ev a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 25, 2);
    a.msg.applied_checksum = 42;
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_PEER_LOG_FORK), 1);
    assert_int_equal(last(t, TL_CHECK_PEER_LOG_FORK)->severity, TL_SEV_SEV1);
    for (uint64_t s = 25; s <= 40; s++) {
        a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, s, 2);
        a.msg.applied_checksum = 42 + s;
        rx(t, &a);
    }
    assert_int_equal(count(t, TL_CHECK_PEER_LOG_FORK), 1);
    assert_true(t->p.c.echo == 16);
    /* an earlier divergence found later is a new fact */
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 20, 2);
    a.msg.applied_checksum = 7;
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_PEER_LOG_FORK), 2);
    teardown(t);
}

static void test_state_hash_divergence(void **state) {
    (void)state;
    h *t = setup(2, NULL);
    put_range(t, 1, 40, 2);
    t->loc.is_leader = false;
    /* agreement at a CHECKPOINT */
    tl_peer_ev a = dgram(t, 0, TL_PEER_CHECKPOINT, TL_PEER_STANDBY, 30, 2);
    rx(t, &a);
    assert_int_equal(t->nf, 0);
    assert_true(t->p.c.compared == 1);
    /* its state diverged: the hash and (with it) the record differ */
    a = dgram(t, 0, TL_PEER_CHECKPOINT, TL_PEER_STANDBY, 40, 2);
    a.msg.state_hash[5] ^= 1;
    a.msg.applied_checksum ^= 0xff;
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_STATE_HASH_DIVERGENCE), 1);
    assert_int_equal(count(t, TL_CHECK_PEER_LOG_FORK), 0); /* one fact, one finding */
    const tl_finding *f = last(t, TL_CHECK_STATE_HASH_DIVERGENCE);
    assert_int_equal(f->severity, TL_SEV_SEV1);
    assert_true(f->seq == 40);
    /* only the hash differs (a peer whose datagram disagrees with its own
     * record): still the state's divergence */
    a = dgram(t, 1, TL_PEER_CHECKPOINT, TL_PEER_STANDBY, 20, 2);
    a.msg.state_hash[0] ^= 1;
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_STATE_HASH_DIVERGENCE), 2);
    teardown(t);

    /* a CHECKPOINT datagram at a seq that is not a CHECKPOINT for us: the
     * logs forked */
    t = setup(1, NULL);
    put_range(t, 1, 40, 2);
    a = dgram(t, 0, TL_PEER_CHECKPOINT, TL_PEER_STANDBY, 33, 2);
    a.msg.applied_checksum ^= 1;
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_PEER_LOG_FORK), 1);
    assert_int_equal(count(t, TL_CHECK_STATE_HASH_DIVERGENCE), 0);
    teardown(t);
}

/* ---- rule 3: held datagrams ---- */

static void small_hold(tl_peer_cfg *c) {
    c->max_held = 3;
}

static void test_held(void **state) {
    (void)state;
    h *t = setup(1, small_hold);
    put_range(t, 1, 20, 2);
    t->loc.is_leader = false;
    /* ahead of us: held, judged when our engine gets there */
    tl_peer_ev a = dgram(t, 0, TL_PEER_CHECKPOINT, TL_PEER_STANDBY, 30, 2);
    a.msg.state_hash[0] ^= 1;
    rx(t, &a);
    assert_int_equal(t->nf, 0);
    assert_int_equal(t->p.nodes[0].held_count, 1);
    tick(t);
    assert_int_equal(t->nf, 0);
    /* written but not yet durable: still held */
    for (uint64_t s = 21; s <= 30; s++)
        put(t, s, 2, s % 10 == 0 ? TL_KIND_CHECKPOINT : TL_KIND_ORDER_NEW);
    tick(t);
    assert_int_equal(t->nf, 0);
    t->loc.durable_seq = 30;
    tick(t);
    assert_int_equal(count(t, TL_CHECK_STATE_HASH_DIVERGENCE), 1);
    assert_int_equal(t->p.nodes[0].held_count, 0);
    assert_int_equal(t->p.held_total, 0);
    teardown(t);

    /* at most max_held per node; the oldest goes first */
    t = setup(1, small_hold);
    put_range(t, 1, 20, 2);
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 21, 2);
    a.msg.applied_checksum = 1; /* would fork: it must be the one dropped */
    rx(t, &a);
    for (uint64_t s = 22; s <= 24; s++) {
        a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, s, 2);
        rx(t, &a);
    }
    assert_int_equal(t->p.nodes[0].held_count, 3);
    assert_true(t->p.c.held_dropped == 1);
    put_range(t, 21, 30, 2);
    tick(t);
    assert_int_equal(t->nf, 0);
    assert_true(t->p.c.compared == 3);
    /* out of order held datagrams: each released when reached */
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 35, 2);
    rx(t, &a);
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 32, 2);
    a.msg.applied_checksum = 5;
    rx(t, &a);
    put_range(t, 31, 33, 2);
    tick(t);
    assert_int_equal(count(t, TL_CHECK_PEER_LOG_FORK), 1);
    assert_int_equal(t->p.nodes[0].held_count, 1);
    assert_true(t->p.nodes[0].held[t->p.nodes[0].held_head].applied_seq == 35);
    teardown(t);

    /* a node's datagrams are judged in the order they came: a CHECKPOINT
     * held for its seq goes before a HEARTBEAT about that seq that arrives
     * once our engine got there, before any tick */
    t = setup(1, small_hold);
    put_range(t, 1, 20, 2);
    a = dgram(t, 0, TL_PEER_CHECKPOINT, TL_PEER_STANDBY, 30, 2);
    a.msg.state_hash[0] ^= 1;
    a.msg.applied_checksum ^= 2;
    rx(t, &a);
    put_range(t, 21, 30, 2);
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 30, 2);
    a.msg.applied_checksum ^= 2;
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_STATE_HASH_DIVERGENCE), 1);
    assert_int_equal(count(t, TL_CHECK_PEER_LOG_FORK), 0);
    assert_true(t->p.c.echo == 1);
    assert_int_equal(t->p.held_total, 0);
    teardown(t);
}

/* ---- rule 4: STANDBY_LAG ---- */

static void lag10(tl_peer_cfg *c) {
    c->lag_records = 10;
}

static void test_standby_lag(void **state) {
    (void)state;
    h *t = setup(1, lag10);
    put_range(t, 1, 40, 2); /* we lead at 40 */
    tl_peer_ev a;
    for (int i = 0; i < 2; i++) {
        a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 29, 2); /* 11 behind */
        rx(t, &a);
    }
    /* a CHECKPOINT datagram is not a beat; a beat within the limit resets */
    a = dgram(t, 0, TL_PEER_CHECKPOINT, TL_PEER_STANDBY, 20, 2);
    rx(t, &a);
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 30, 2); /* 10 behind: not more */
    rx(t, &a);
    for (int i = 0; i < 2; i++) {
        a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 29, 2);
        rx(t, &a);
    }
    assert_int_equal(count(t, TL_CHECK_STANDBY_LAG), 0);
    a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 29, 2);
    rx(t, &a);
    assert_int_equal(count(t, TL_CHECK_STANDBY_LAG), 1);
    const tl_finding *f = last(t, TL_CHECK_STANDBY_LAG);
    assert_int_equal(f->severity, TL_SEV_SEV2);
    assert_true(f->seq == 29 && f->seq2 == 40);
    assert_memory_equal(f->node, t->p.nodes[0].id, 16);
    for (int i = 0; i < 5; i++) {
        a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 29, 2);
        rx(t, &a);
    }
    assert_int_equal(count(t, TL_CHECK_STANDBY_LAG), 1);
    teardown(t);

    /* we are the standby, trailing a leader peer */
    t = setup(2, lag10);
    put_range(t, 1, 40, 2);
    t->loc.is_leader = false;
    for (int i = 0; i < 3; i++) {
        a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_LEADER, 55, 2);
        rx(t, &a);
    }
    assert_int_equal(count(t, TL_CHECK_STANDBY_LAG), 1);
    assert_memory_equal(last(t, TL_CHECK_STANDBY_LAG)->node, t->self, 16);
    /* another standby trailing that leader */
    for (int i = 0; i < 3; i++) {
        a = dgram(t, 1, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 30, 2);
        rx(t, &a);
    }
    assert_int_equal(count(t, TL_CHECK_STANDBY_LAG), 2);
    teardown(t);

    /* no leader known: no lag */
    t = setup(1, lag10);
    put_range(t, 1, 40, 2);
    t->loc.is_leader = false;
    for (int i = 0; i < 5; i++) {
        a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 1, 2);
        rx(t, &a);
    }
    assert_int_equal(t->nf, 0);
    teardown(t);
}

/* ---- rule 4: PEER_SILENT ---- */

static void test_peer_silent(void **state) {
    (void)state;
    h *t = setup(2, NULL);
    put_range(t, 1, 10, 2);
    tick(t); /* the silence clock starts */
    advance_ms(t, 60);
    tl_peer_ev a = dgram(t, 0, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 10, 2);
    rx(t, &a);
    tick(t);
    assert_int_equal(count(t, TL_CHECK_PEER_SILENT), 0);
    advance_ms(t, 41);
    tick(t);
    /* node 1 never spoke: 101 ms; node 0 spoke 41 ms ago */
    assert_int_equal(count(t, TL_CHECK_PEER_SILENT), 1);
    const tl_finding *f = last(t, TL_CHECK_PEER_SILENT);
    assert_int_equal(f->severity, TL_SEV_DEGRADED);
    assert_memory_equal(f->node, t->p.nodes[1].id, 16);
    advance_ms(t, 60);
    tick(t);
    tick(t);
    assert_int_equal(count(t, TL_CHECK_PEER_SILENT), 2); /* node 0 now; once each */
    /* a rejected datagram does not end the silence; an accepted one does */
    a = dgram(t, 1, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 10, 2);
    a.msg.ts_ns = 1;
    rx(t, &a);
    assert_true(t->p.nodes[1].silent);
    a = dgram(t, 1, TL_PEER_HEARTBEAT, TL_PEER_STANDBY, 10, 2);
    rx(t, &a);
    assert_false(t->p.nodes[1].silent);
    advance_ms(t, 101);
    tick(t);
    assert_int_equal(count(t, TL_CHECK_PEER_SILENT), 3);
    teardown(t);
}

/* ---- sending ---- */

static void floor_cfg(tl_peer_cfg *c) {
    c->send_counter_floor = NOW_REAL + 5000000000ull; /* persisted + 1, ahead of the clock */
}

static void test_send(void **state) {
    (void)state;
    h *t = setup(1, floor_cfg);
    /* nothing durable yet: nothing */
    tick(t);
    assert_int_equal(t->nsent, 0);
    put_range(t, 1, 25, 2);
    tick(t);
    /* the CHECKPOINTs 10 and 20 at once, then a HEARTBEAT at 25 */
    assert_int_equal(t->nsent, 3);
    assert_int_equal(t->sent[0].kind, TL_PEER_CHECKPOINT);
    assert_true(t->sent[0].applied_seq == 10);
    uint8_t hh[32];
    hash_of(10, hh);
    assert_memory_equal(t->sent[0].state_hash, hh, 32);
    assert_true(t->sent[0].applied_checksum == sum_of(10));
    assert_true(t->sent[1].applied_seq == 20);
    assert_int_equal(t->sent[2].kind, TL_PEER_HEARTBEAT);
    assert_true(t->sent[2].applied_seq == 25);
    assert_true(t->sent[2].applied_checksum == sum_of(25));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t->sent[i].role, TL_PEER_LEADER);
        assert_true(t->sent[i].fence == 2);
        assert_memory_equal(t->sent[i].node_id, t->self, 16);
        assert_true(t->sent[i].ts_ns == t->loc.now_real_ns);
    }
    /* the counter: max(persisted + 1, clock), then strictly up */
    assert_true(t->sent[0].counter == NOW_REAL + 5000000000ull);
    assert_true(t->sent[1].counter == t->sent[0].counter + 1);
    assert_true(t->sent[2].counter == t->sent[1].counter + 1);
    assert_true(atomic_load(&t->p.send_counter_pub) == t->sent[2].counter);
    /* the next HEARTBEAT after beat_ms, not before */
    advance_ms(t, 4);
    tick(t);
    assert_int_equal(t->nsent, 3);
    advance_ms(t, 1);
    tick(t);
    assert_int_equal(t->nsent, 4);
    /* a CHECKPOINT not yet durable waits */
    put(t, 30, 2, TL_KIND_CHECKPOINT);
    advance_ms(t, 5);
    tick(t);
    assert_int_equal(t->nsent, 5);
    assert_int_equal(t->sent[4].kind, TL_PEER_HEARTBEAT);
    t->loc.durable_seq = 30;
    tick(t);
    assert_int_equal(t->nsent, 6);
    assert_int_equal(t->sent[5].kind, TL_PEER_CHECKPOINT);
    assert_true(t->sent[5].applied_seq == 30);
    /* a standby says STANDBY */
    t->loc.is_leader = false;
    advance_ms(t, 5);
    tick(t);
    assert_int_equal(t->sent[6].role, TL_PEER_STANDBY);
    int n = t->nsent;
    /* nothing while the heartbeat is stale, the leader unknown, or the
     * ring not attached; a CHECKPOINT made meanwhile goes out after */
    t->loc.stale = true;
    put(t, 31, 2, TL_KIND_ORDER_NEW);
    put(t, 32, 2, TL_KIND_CHECKPOINT);
    t->loc.durable_seq = 32;
    advance_ms(t, 50);
    tick(t);
    t->loc.stale = false;
    t->loc.leader_known = false;
    advance_ms(t, 50);
    tick(t);
    t->loc.leader_known = true;
    t->loc.attached = false;
    advance_ms(t, 50);
    tick(t);
    t->loc.self_id = NULL;
    t->loc.attached = true;
    tick(t);
    assert_int_equal(t->nsent, n);
    t->loc.self_id = t->self;
    tick(t);
    assert_int_equal(t->nsent, n + 2);
    assert_int_equal(t->sent[n].kind, TL_PEER_CHECKPOINT);
    assert_true(t->sent[n].applied_seq == 32);
    /* the clock ahead of the counter wins */
    t->loc.now_real_ns += 100000000000ull;
    advance_ms(t, 5);
    tick(t);
    assert_true(t->sent[t->nsent - 1].counter == t->loc.now_real_ns);
    /* a failed send is counted; the counter still moves */
    t->send_rc = -1;
    advance_ms(t, 5);
    tick(t);
    assert_true(t->p.c.send_errors == 1);
    teardown(t);
}

static void test_drop_above(void **state) {
    (void)state;
    h *t = setup(1, NULL);
    put_range(t, 1, 35, 2);
    t->loc.durable_seq = 15; /* 20, 30 written, not durable */
    assert_non_null(tl_peer_ckpt_find(&t->p, 30));
    tl_peer_drop_above(&t->p, 15);
    assert_null(tl_peer_ckpt_find(&t->p, 20));
    assert_null(tl_peer_ckpt_find(&t->p, 30));
    assert_non_null(tl_peer_ckpt_find(&t->p, 10));
    tick(t);
    /* CHECKPOINT 10 and a HEARTBEAT; 20 and 30 were never durable */
    assert_int_equal(t->nsent, 2);
    assert_true(t->sent[0].applied_seq == 10);
    t->loc.durable_seq = 35;
    advance_ms(t, 10);
    tick(t);
    assert_int_equal(t->nsent, 3);
    assert_int_equal(t->sent[2].kind, TL_PEER_HEARTBEAT);
    teardown(t);
}

/* Decoded bytes of every encoded message parse back to the same fields. */
static void test_roundtrip(void **state) {
    (void)state;
    uint64_t x = 1;
    for (int i = 0; i < 2000; i++) {
        tl_peer_msg m;
        memset(&m, 0, sizeof m);
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        m.kind = (x >> 7) & 1 ? TL_PEER_CHECKPOINT : TL_PEER_HEARTBEAT;
        m.role = (x >> 9) & 1 ? TL_PEER_LEADER : TL_PEER_STANDBY;
        memset(m.node_id, (int)(x >> 20), 16);
        m.counter = x;
        m.ts_ns = x ^ 0x55;
        m.applied_seq = (x >> 3) | 1;
        m.applied_checksum = ~x;
        m.fence = x >> 40;
        if (m.kind == TL_PEER_CHECKPOINT)
            memset(m.state_hash, (int)(x >> 30), 32);
        uint8_t b[136];
        tl_peer_encode(&m, NULL, NULL, b);
        tl_peer_msg back;
        assert_int_equal(tl_peer_parse(b, 136, &back), TL_PEER_OK);
        assert_memory_equal(&back, &m, sizeof m);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_parse_shapes),
        cmocka_unit_test(test_check_identity_mac),
        cmocka_unit_test(test_freshness),
        cmocka_unit_test(test_persisted_counter),
        cmocka_unit_test(test_out_of_window),
        cmocka_unit_test(test_reject_events_counted),
        cmocka_unit_test(test_dual_leader),
        cmocka_unit_test(test_stale_peer_leader),
        cmocka_unit_test(test_fences_first),
        cmocka_unit_test(test_peer_log_fork),
        cmocka_unit_test(test_state_hash_divergence),
        cmocka_unit_test(test_held),
        cmocka_unit_test(test_standby_lag),
        cmocka_unit_test(test_peer_silent),
        cmocka_unit_test(test_send),
        cmocka_unit_test(test_drop_above),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
