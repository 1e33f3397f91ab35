/* test_peer_udp.c: the kernel UDP path (recvmmsg batches, sendmmsg to every
 * peer, truncation, never blocking) over 127.0.0.1, and the Ethernet/IPv4/
 * UDP frame parser of the DPDK path, every verdict. */
#include "testutil.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/peer_frame.h"
#include "io/peer_mac.h"
#include "io/peer_udp.h"

static tl_peer_udp *open_rx(void) {
    tl_peer_udp_cfg c;
    memset(&c, 0, sizeof c);
    c.listen = "127.0.0.1:0";
    c.batch = 8;
    tl_peer_udp *u = NULL;
    char err[256];
    assert_int_equal(tl_peer_udp_open(&u, &c, err, sizeof err), 0);
    assert_true(tl_peer_udp_port(u) != 0);
    return u;
}

static tl_peer_udp *open_tx(tl_peer_udp *const *to, uint32_t n, char (*names)[64]) {
    tl_peer_udp_cfg c;
    memset(&c, 0, sizeof c);
    c.listen = "127.0.0.1:0";
    for (uint32_t i = 0; i < n; i++) {
        snprintf(names[i], 64, "127.0.0.1:%u", tl_peer_udp_port(to[i]));
        c.dests[i] = names[i];
    }
    c.dest_count = n;
    tl_peer_udp *u = NULL;
    char err[256];
    assert_int_equal(tl_peer_udp_open(&u, &c, err, sizeof err), 0);
    return u;
}

/* Loopback delivery is immediate, but give the kernel a moment anyway. */
static bool recv_wait(tl_peer_udp *u, const uint8_t **b, size_t *n) {
    for (int i = 0; i < 2000; i++) {
        if (tl_peer_udp_recv(u, b, n))
            return true;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void test_roundtrip_batches(void **state) {
    (void)state;
    tl_peer_udp *rx = open_rx();
    char names[1][64];
    tl_peer_udp *tx = open_tx(&rx, 1, names);
    const uint8_t *b;
    size_t n;
    assert_false(tl_peer_udp_recv(rx, &b, &n)); /* empty: at once */

    uint8_t key_raw[32] = {1, 2, 3};
    tl_peer_key key;
    tl_peer_key_init(&key, key_raw);
    tl_peer_keyring kr;
    memset(&kr, 0, sizeof kr);
    kr.count = 1;
    memset(kr.ids[0], 0xbb, 16);
    kr.keys[0] = key;
    for (uint64_t i = 1; i <= 100; i++) {
        tl_peer_msg m;
        memset(&m, 0, sizeof m);
        m.kind = TL_PEER_HEARTBEAT;
        m.role = TL_PEER_STANDBY;
        memset(m.node_id, 0xbb, 16);
        m.counter = i;
        m.applied_seq = i;
        uint8_t d[136];
        tl_peer_sign(&key, &m, d);
        assert_int_equal(tl_peer_udp_send(tx, d, sizeof d), 0);
    }
    for (uint64_t i = 1; i <= 100; i++) {
        assert_true(recv_wait(rx, &b, &n));
        assert_int_equal(n, 136);
        tl_peer_ev ev;
        tl_peer_check(&kr, b, n, NULL, &ev);
        assert_int_equal(ev.type, TL_PEER_EV_DGRAM);
        assert_true(ev.msg.counter == i); /* in order on loopback */
    }
    assert_false(tl_peer_udp_recv(rx, &b, &n));
    tl_peer_udp_stats st;
    tl_peer_udp_get_stats(rx, &st);
    assert_true(st.datagrams == 100);
    assert_true(st.recv_calls >= 100 / 8 && st.recv_calls < 100); /* batched */
    tl_peer_udp_get_stats(tx, &st);
    assert_true(st.sent == 100 && st.send_errors == 0);

    /* longer than a slot: handed on with a length no datagram has */
    uint8_t big[3000];
    memset(big, 7, sizeof big);
    assert_int_equal(tl_peer_udp_send(tx, big, sizeof big), 0);
    assert_true(recv_wait(rx, &b, &n));
    assert_true(n > TL_PEER_UDP_SLOT_BYTES);
    tl_peer_ev ev;
    tl_peer_check(&kr, b, n, NULL, &ev);
    assert_int_equal(ev.reason, TL_PEER_REJ_MALFORMED);
    tl_peer_udp_get_stats(rx, &st);
    assert_true(st.truncated == 1);
    /* empty and short datagrams */
    assert_int_equal(tl_peer_udp_send(tx, big, 0), 0);
    assert_true(recv_wait(rx, &b, &n));
    assert_int_equal(n, 0);
    tl_peer_udp_close(tx);
    tl_peer_udp_close(rx);
}

static void test_every_destination(void **state) {
    (void)state;
    tl_peer_udp *rx[3] = {open_rx(), open_rx(), open_rx()};
    char names[3][64];
    tl_peer_udp *tx = open_tx(rx, 3, names);
    uint8_t d[136];
    memset(d, 0x42, sizeof d);
    for (int k = 0; k < 10; k++)
        assert_int_equal(tl_peer_udp_send(tx, d, sizeof d), 0);
    for (int i = 0; i < 3; i++) {
        const uint8_t *b;
        size_t n;
        for (int k = 0; k < 10; k++) {
            assert_true(recv_wait(rx[i], &b, &n));
            assert_memory_equal(b, d, 136);
        }
        tl_peer_udp_close(rx[i]);
    }
    tl_peer_udp_stats st;
    tl_peer_udp_get_stats(tx, &st);
    assert_true(st.sent == 30);
    assert_true(st.send_calls == 10); /* one sendmmsg per datagram */
    tl_peer_udp_close(tx);
}

static void test_bad_addresses(void **state) {
    (void)state;
    const char *bad[] = {
        "1.2.3.4", ":7471", "1.2.3.4:", "1.2.3.4:70000", "1.2.3.4:12x", "no.such.host.invalid:7471",
        NULL};
    for (int i = 0; i < 7; i++) {
        tl_peer_udp_cfg c;
        memset(&c, 0, sizeof c);
        c.listen = bad[i];
        tl_peer_udp *u = (tl_peer_udp *)1;
        char err[256] = "";
        assert_int_equal(tl_peer_udp_open(&u, &c, err, sizeof err), -1);
        assert_null(u);
        assert_true(strlen(err) > 0);
    }
    /* a bad destination fails the open too, naming it */
    tl_peer_udp_cfg c;
    memset(&c, 0, sizeof c);
    c.listen = "127.0.0.1:0";
    c.dests[0] = "127.0.0.1:99999";
    c.dest_count = 1;
    tl_peer_udp *u = NULL;
    char err[256] = "";
    assert_int_equal(tl_peer_udp_open(&u, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "127.0.0.1:99999"));
    /* two sockets on one port: the second bind fails (no SO_REUSEPORT) */
    tl_peer_udp *a = open_rx();
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", tl_peer_udp_port(a));
    c.listen = listen;
    c.dest_count = 0;
    assert_int_equal(tl_peer_udp_open(&u, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "bind"));
    tl_peer_udp_close(a);
}

/* ---- frames ---- */

static const uint8_t mac_a[6] = {2, 0, 0, 0, 0, 1}, mac_b[6] = {2, 0, 0, 0, 0, 2};
#define IP_A 0x0a000001u /* 10.0.0.1 */
#define IP_B 0x0a000002u

static size_t frame(uint8_t *f, uint16_t dport, const uint8_t *p, size_t n) {
    return tl_peer_frame_build(f, 2048, mac_b, mac_a, IP_A, IP_B, 40000, dport, p, n);
}

static uint16_t rd16(const uint8_t *p) {
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void fix_ip_sum(uint8_t *f) {
    uint8_t *ip = f + 14;
    ip[10] = ip[11] = 0;
    uint32_t s = 0;
    for (int i = 0; i < 20; i += 2)
        s += rd16(ip + i);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    uint16_t c = (uint16_t)~s;
    ip[10] = (uint8_t)(c >> 8);
    ip[11] = (uint8_t)c;
}

static void test_frames(void **state) {
    (void)state;
    uint8_t pay[136], f[2048], g[2048];
    for (int i = 0; i < 136; i++)
        pay[i] = (uint8_t)i;
    size_t n = frame(f, 7471, pay, sizeof pay);
    assert_int_equal(n, 14 + 20 + 8 + 136);
    uint32_t dst = htonl(IP_B);
    const uint8_t *p;
    size_t pl;
    assert_int_equal(tl_peer_frame(f, n, dst, 7471, &p, &pl), TL_FRAME_PAYLOAD);
    assert_int_equal(pl, 136);
    assert_memory_equal(p, pay, 136);
    assert_int_equal(tl_peer_frame(f, n, 0, 7471, &p, &pl), TL_FRAME_PAYLOAD); /* any addr */
    /* Ethernet padding after the IP datagram is ignored */
    memcpy(g, f, n);
    memset(g + n, 0, 30);
    assert_int_equal(tl_peer_frame(g, n + 30, dst, 7471, &p, &pl), TL_FRAME_PAYLOAD);
    assert_int_equal(pl, 136);
    /* every prefix is short (or not ipv4 before the ethertype is whole) */
    for (size_t k = 0; k < n; k++) {
        enum tl_frame_verdict v = tl_peer_frame(f, k, dst, 7471, &p, &pl);
        assert_true(v == TL_FRAME_SHORT);
    }
    /* other ethertypes: ARP, IPv6, a VLAN tag */
    const uint16_t types[] = {0x0806, 0x86dd, 0x8100};
    for (int i = 0; i < 3; i++) {
        memcpy(g, f, n);
        g[12] = (uint8_t)(types[i] >> 8);
        g[13] = (uint8_t)types[i];
        assert_int_equal(tl_peer_frame(g, n, dst, 7471, &p, &pl), TL_FRAME_NOT_IPV4);
    }
    /* IPv4 header: version, IHL, checksum, total length below the header */
    memcpy(g, f, n);
    g[14] = 0x65;
    assert_int_equal(tl_peer_frame(g, n, dst, 7471, &p, &pl), TL_FRAME_BAD_IPV4);
    memcpy(g, f, n);
    g[14] = 0x44;
    assert_int_equal(tl_peer_frame(g, n, dst, 7471, &p, &pl), TL_FRAME_BAD_IPV4);
    memcpy(g, f, n);
    g[14 + 10] ^= 1;
    assert_int_equal(tl_peer_frame(g, n, dst, 7471, &p, &pl), TL_FRAME_BAD_IPV4);
    memcpy(g, f, n);
    g[14 + 2] = 0;
    g[14 + 3] = 10;
    fix_ip_sum(g);
    assert_int_equal(tl_peer_frame(g, n, dst, 7471, &p, &pl), TL_FRAME_BAD_IPV4);
    /* a total length past the frame */
    memcpy(g, f, n);
    g[14 + 2] = 0x10;
    fix_ip_sum(g);
    assert_int_equal(tl_peer_frame(g, n, dst, 7471, &p, &pl), TL_FRAME_SHORT);
    /* fragments: more-fragments, or an offset */
    memcpy(g, f, n);
    g[14 + 6] = 0x20;
    fix_ip_sum(g);
    assert_int_equal(tl_peer_frame(g, n, dst, 7471, &p, &pl), TL_FRAME_FRAGMENT);
    memcpy(g, f, n);
    g[14 + 6] = 0x00;
    g[14 + 7] = 0x10;
    fix_ip_sum(g);
    assert_int_equal(tl_peer_frame(g, n, dst, 7471, &p, &pl), TL_FRAME_FRAGMENT);
    /* TCP */
    memcpy(g, f, n);
    g[14 + 9] = 6;
    fix_ip_sum(g);
    assert_int_equal(tl_peer_frame(g, n, dst, 7471, &p, &pl), TL_FRAME_NOT_UDP);
    /* another address, another port */
    assert_int_equal(tl_peer_frame(f, n, htonl(IP_A), 7471, &p, &pl), TL_FRAME_OTHER_ADDR);
    assert_int_equal(tl_peer_frame(f, n, dst, 7472, &p, &pl), TL_FRAME_OTHER_PORT);
    /* UDP length below its header, or past the IP datagram */
    memcpy(g, f, n);
    g[14 + 20 + 4] = 0;
    g[14 + 20 + 5] = 7;
    assert_int_equal(tl_peer_frame(g, n, dst, 7471, &p, &pl), TL_FRAME_BAD_UDP);
    memcpy(g, f, n);
    g[14 + 20 + 5] = (uint8_t)(g[14 + 20 + 5] + 1);
    assert_int_equal(tl_peer_frame(g, n, dst, 7471, &p, &pl), TL_FRAME_BAD_UDP);
    /* IP options: IHL 6 */
    memcpy(g, f, 34);
    g[14] = 0x46;
    memset(g + 34, 0, 4);
    memcpy(g + 38, f + 34, n - 34);
    g[14 + 2] = (uint8_t)((rd16(f + 16) + 4) >> 8);
    g[14 + 3] = (uint8_t)(rd16(f + 16) + 4);
    fix_ip_sum(g); /* over 20 bytes: options are zero, so the sum holds */
    assert_int_equal(tl_peer_frame(g, n + 4, dst, 7471, &p, &pl), TL_FRAME_PAYLOAD);
    assert_memory_equal(p, pay, 136);
    assert_string_equal(tl_frame_verdict_name(TL_FRAME_OTHER_PORT), "other_port");
    assert_int_equal(tl_peer_frame_build(g, 100, mac_b, mac_a, 1, 2, 3, 4, pay, 136), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_batches),
        cmocka_unit_test(test_every_destination),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
