/* test_peer_dpdk.c: the DPDK receive path of peer datagrams, end to end
 * through io/peer_dpdk, io/peer_frame and io/peer_mac:
 *
 *   net_pcap       a capture this test writes: Ethernet/IPv4/UDP frames
 *                  carrying datagrams (valid, spoofed, unknown node), and
 *                  junk (ARP, IPv6, TCP, another port, another address, a
 *                  fragment, a cut frame, garbage). Exactly the datagrams
 *                  for our address and port come out, in order.
 *   net_af_packet  live, on a veth pair between two network namespaces this
 *                  test creates and removes; datagrams sent by a kernel
 *                  socket in the other namespace. The port also shows the
 *                  kernel's own frames (ARP, ICMP, our replies), which are
 *                  skipped and counted.
 *
 * The EAL is initialized once per process, with both vdevs; the af_packet
 * part is skipped, with the reason printed, only when namespaces or veth
 * cannot be made here.
 */
#include "testutil.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "io/peer_dpdk.h"
#include "io/peer_frame.h"
#include "io/peer_mac.h"

static char *dir;
static char pcap_path[512];
static char ns_a[32], ns_b[32], veth_a[16], veth_b[16];
static bool have_netns;
static char netns_why[256];
static int orig_ns = -1;
static int sock_b = -1; /* a UDP socket in namespace B */
static char vdev_pcap[600], vdev_afp[64];
static const char *eal[16];
static uint32_t eal_n;
static tl_peer_keyring kr;
static tl_peer_key key, spoof_key;

static const uint8_t mac_a[6] = {2, 0, 0, 0, 0, 1}, mac_b[6] = {2, 0, 0, 0, 0, 2};
#define IP_A 0x0a4d0001u /* 10.77.0.1: ours */
#define IP_B 0x0a4d0002u
#define PORT 7471

/* ---- the capture ---- */

static FILE *pcap_open(const char *path) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    struct {
        uint32_t magic;
        uint16_t major, minor;
        int32_t zone;
        uint32_t sigfigs, snaplen, linktype;
    } h = {0xa1b2c3d4u, 2, 4, 0, 0, 65535, 1};
    assert_int_equal(fwrite(&h, sizeof h, 1, f), 1);
    return f;
}

static void pcap_put(FILE *f, const uint8_t *frame, size_t n) {
    static uint32_t t;
    uint32_t rec[4] = {++t, 0, (uint32_t)n, (uint32_t)n};
    assert_int_equal(fwrite(rec, sizeof rec, 1, f), 1);
    assert_int_equal(fwrite(frame, 1, n, f), n);
}

static void msg_for(tl_peer_msg *m, uint8_t node, uint64_t counter) {
    memset(m, 0, sizeof *m);
    m->kind = TL_PEER_HEARTBEAT;
    m->role = TL_PEER_STANDBY;
    memset(m->node_id, node, 16);
    m->counter = counter;
    m->applied_seq = counter;
    m->fence = 1;
}

/* What the capture holds for us, in order: 'g' good, 'b' bad mac, 'u'
 * unknown node, 'm' malformed (a 100-byte payload). */
static const char expect_pcap[] = "gggbgugmgg";
static size_t pcap_junk;

static void write_capture(void) {
    FILE *f = pcap_open(pcap_path);
    uint8_t fr[2048], d[136];
    tl_peer_msg m;
    uint64_t c = 0;
    for (const char *e = expect_pcap; *e; e++) {
        msg_for(&m, *e == 'u' ? 0xdd : 0xbb, ++c);
        tl_peer_sign(*e == 'b' ? &spoof_key : &key, &m, d);
        size_t plen = *e == 'm' ? 100 : 136;
        size_t n =
            tl_peer_frame_build(fr, sizeof fr, mac_a, mac_b, IP_B, IP_A, 40000, PORT, d, plen);
        pcap_put(f, fr, n);
        /* junk between the datagrams */
        size_t k = (size_t)(e - expect_pcap);
        switch (k % 8) {
            case 0: { /* ARP */
                uint8_t arp[60] = {0};
                memset(arp, 0xff, 6);
                memcpy(arp + 6, mac_b, 6);
                arp[12] = 0x08;
                arp[13] = 0x06;
                pcap_put(f, arp, sizeof arp);
                break;
            }
            case 1: /* another port */
                n = tl_peer_frame_build(fr, sizeof fr, mac_a, mac_b, IP_B, IP_A, 40000, PORT + 1, d,
                                        136);
                pcap_put(f, fr, n);
                break;
            case 2: /* another address */
                n = tl_peer_frame_build(fr, sizeof fr, mac_a, mac_b, IP_B, IP_B + 7, 40000, PORT, d,
                                        136);
                pcap_put(f, fr, n);
                break;
            case 3: /* TCP to our port */
                n = tl_peer_frame_build(fr, sizeof fr, mac_a, mac_b, IP_B, IP_A, 40000, PORT, d,
                                        136);
                fr[14 + 9] = 6;
                fr[14 + 10] = fr[14 + 11] = 0;
                { /* the header checksum again */
                    uint32_t s = 0;
                    for (int i = 0; i < 20; i += 2)
                        s += (uint32_t)(fr[14 + i] << 8 | fr[15 + i]);
                    while (s >> 16)
                        s = (s & 0xffff) + (s >> 16);
                    fr[14 + 10] = (uint8_t)(~s >> 8);
                    fr[14 + 11] = (uint8_t)~s;
                }
                pcap_put(f, fr, n);
                break;
            case 4: /* a frame cut short */
                n = tl_peer_frame_build(fr, sizeof fr, mac_a, mac_b, IP_B, IP_A, 40000, PORT, d,
                                        136);
                pcap_put(f, fr, 60);
                break;
            case 5: { /* IPv6 */
                uint8_t v6[80] = {0};
                v6[12] = 0x86;
                v6[13] = 0xdd;
                pcap_put(f, v6, sizeof v6);
                break;
            }
            case 6: { /* garbage */
                uint8_t g[33];
                for (int i = 0; i < 33; i++)
                    g[i] = (uint8_t)(i * 37 + 11);
                pcap_put(f, g, sizeof g);
                break;
            }
            default: /* a fragment (more fragments set) */
                n = tl_peer_frame_build(fr, sizeof fr, mac_a, mac_b, IP_B, IP_A, 40000, PORT, d,
                                        136);
                fr[14 + 6] |= 0x20;
                fr[14 + 10] = fr[14 + 11] = 0;
                {
                    uint32_t s = 0;
                    for (int i = 0; i < 20; i += 2)
                        s += (uint32_t)(fr[14 + i] << 8 | fr[15 + i]);
                    while (s >> 16)
                        s = (s & 0xffff) + (s >> 16);
                    fr[14 + 10] = (uint8_t)(~s >> 8);
                    fr[14 + 11] = (uint8_t)~s;
                }
                pcap_put(f, fr, n);
                break;
        }
        pcap_junk++;
    }
    fclose(f);
}

/* ---- namespaces ---- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[600];
    snprintf(full, sizeof full, "%s >/dev/null 2>&1", cmd);
    return system(full);
}

static int enter_ns(const char *name) {
    char path[128];
    snprintf(path, sizeof path, "/run/netns/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = setns(fd, CLONE_NEWNET);
    close(fd);
    return rc;
}

static void netns_down(void) {
    if (orig_ns >= 0) {
        (void)setns(orig_ns, CLONE_NEWNET);
        close(orig_ns);
        orig_ns = -1;
    }
    if (ns_a[0] != '\0') {
        sh("ip netns del %s", ns_a);
        sh("ip netns del %s", ns_b);
    }
}

static void netns_up(void) {
    int pid = (int)getpid() % 100000;
    snprintf(ns_a, sizeof ns_a, "tlya%d", pid);
    snprintf(ns_b, sizeof ns_b, "tlyb%d", pid);
    snprintf(veth_a, sizeof veth_a, "tlva%d", pid);
    snprintf(veth_b, sizeof veth_b, "tlvb%d", pid);
    if (sh("ip netns add %s", ns_a) != 0 || sh("ip netns add %s", ns_b) != 0) {
        snprintf(netns_why, sizeof netns_why, "ip netns add failed (no root, or no ip tool)");
        return;
    }
    if (sh("ip link add %s type veth peer name %s", veth_a, veth_b) != 0) {
        snprintf(netns_why, sizeof netns_why, "ip link add type veth failed (no veth here)");
        return;
    }
    if (sh("ip link set %s netns %s", veth_a, ns_a) != 0 ||
        sh("ip link set %s netns %s", veth_b, ns_b) != 0 ||
        sh("ip -n %s addr add 10.77.0.1/24 dev %s", ns_a, veth_a) != 0 ||
        sh("ip -n %s addr add 10.77.0.2/24 dev %s", ns_b, veth_b) != 0 ||
        sh("ip -n %s link set %s up", ns_a, veth_a) != 0 ||
        sh("ip -n %s link set %s up", ns_b, veth_b) != 0 ||
        sh("ip -n %s link set lo up", ns_a) != 0) {
        snprintf(netns_why, sizeof netns_why, "configuring the veth pair failed");
        return;
    }
    orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    /* A socket made in B stays in B. */
    if (orig_ns < 0 || enter_ns(ns_b) != 0) {
        snprintf(netns_why, sizeof netns_why, "setns into %s failed", ns_b);
        return;
    }
    sock_b = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    /* This process (and the EAL threads it starts) lives in A from here. */
    if (enter_ns(ns_a) != 0 || sock_b < 0) {
        snprintf(netns_why, sizeof netns_why, "setns into %s failed", ns_a);
        return;
    }
    have_netns = true;
}

static int group_setup(void **state) {
    (void)state;
    uint8_t raw[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (uint8_t)(i + 1);
    tl_peer_key_init(&key, raw);
    raw[0] ^= 0xff;
    tl_peer_key_init(&spoof_key, raw);
    kr.count = 1;
    memset(kr.ids[0], 0xbb, 16);
    kr.keys[0] = key;

    dir = tu_tmpdir("peerdpdk");
    snprintf(pcap_path, sizeof pcap_path, "%s/peer.pcap", dir);
    write_capture();
    netns_up();
    eal[eal_n++] = "--no-huge";
    eal[eal_n++] = "-m";
    eal[eal_n++] = "256";
    eal[eal_n++] = "--no-shconf";
    eal[eal_n++] = "--no-pci";
    eal[eal_n++] = "--no-telemetry";
    eal[eal_n++] = "-l";
    eal[eal_n++] = "0";
    eal[eal_n++] = "--log-level=*:error";
    snprintf(vdev_pcap, sizeof vdev_pcap, "--vdev=net_pcap0,rx_pcap=%s", pcap_path);
    eal[eal_n++] = vdev_pcap;
    if (have_netns) {
        snprintf(vdev_afp, sizeof vdev_afp, "--vdev=net_af_packet0,iface=%s", veth_a);
        eal[eal_n++] = vdev_afp;
    } else {
        printf("SKIP net_af_packet: %s\n", netns_why);
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    if (sock_b >= 0)
        close(sock_b);
    netns_down();
    tu_rm_rf(dir);
    free(dir);
    return 0;
}

static tl_peer_dpdk *open_port(const char *name) {
    tl_peer_dpdk_cfg c;
    memset(&c, 0, sizeof c);
    c.eal_argc = eal_n;
    for (uint32_t i = 0; i < eal_n; i++)
        c.eal_argv[i] = eal[i];
    c.port_name = name;
    c.listen = "10.77.0.1:7471";
    c.burst = 4; /* small, so frames span bursts */
    c.mbufs = 1023;
    tl_peer_dpdk *d = NULL;
    char err[512] = "";
    if (tl_peer_dpdk_open(&d, &c, err, sizeof err) != 0)
        fail_msg("open %s: %s", name, err);
    assert_int_equal(tl_peer_dpdk_thread_init(d), 0);
    return d;
}

static char classify(const uint8_t *b, size_t n) {
    tl_peer_ev ev;
    tl_peer_check(&kr, b, n, NULL, &ev);
    if (ev.type == TL_PEER_EV_DGRAM)
        return 'g';
    switch (ev.reason) {
        case TL_PEER_REJ_BAD_MAC:
            return 'b';
        case TL_PEER_REJ_UNKNOWN_NODE:
            return 'u';
        case TL_PEER_REJ_MALFORMED:
            return 'm';
        default:
            return '?';
    }
}

static void test_pcap_replay(void **state) {
    (void)state;
    tl_peer_dpdk *d = open_port("net_pcap0");
    char got[64] = "";
    size_t n = 0;
    const uint8_t *b;
    size_t len;
    /* The pcap PMD reads the file as fast as it is polled; a few empty polls
     * in a row mean it is done. */
    for (int empty = 0; empty < 1000 && n < sizeof got - 1;) {
        if (!tl_peer_dpdk_recv(d, &b, &len)) {
            empty++;
            continue;
        }
        got[n++] = classify(b, len);
    }
    assert_string_equal(got, expect_pcap);
    tl_peer_dpdk_stats st;
    tl_peer_dpdk_get_stats(d, &st);
    assert_true(st.frames == strlen(expect_pcap) + pcap_junk);
    assert_true(st.datagrams == strlen(expect_pcap));
    assert_true(st.verdicts[TL_FRAME_PAYLOAD] == strlen(expect_pcap));
    assert_true(st.verdicts[TL_FRAME_NOT_IPV4] == 4); /* ARP x2, IPv6, the garbage */
    assert_true(st.verdicts[TL_FRAME_OTHER_PORT] == 2);
    assert_true(st.verdicts[TL_FRAME_OTHER_ADDR] == 1);
    assert_true(st.verdicts[TL_FRAME_NOT_UDP] == 1);
    assert_true(st.verdicts[TL_FRAME_SHORT] == 1); /* the cut frame */
    assert_true(st.verdicts[TL_FRAME_FRAGMENT] == 1);
    assert_true(st.rx_bursts >= (st.frames + 3) / 4);
    tl_peer_dpdk_close(d);
}

static void test_af_packet_live(void **state) {
    (void)state;
    if (!have_netns) {
        printf("SKIP net_af_packet: %s\n", netns_why);
        skip();
    }
    tl_peer_dpdk *d = open_port("net_af_packet0");
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons(PORT);
    to.sin_addr.s_addr = htonl(IP_A);
    /* from B: 40 good, then a spoofed one and an unknown node */
    const char *plan = "ggggggggggggggggggggggggggggggggggggggggbu";
    uint8_t dg[136];
    tl_peer_msg m;
    for (size_t i = 0; plan[i]; i++) {
        msg_for(&m, plan[i] == 'u' ? 0xdd : 0xbb, i + 1);
        tl_peer_sign(plan[i] == 'b' ? &spoof_key : &key, &m, dg);
        assert_int_equal(sendto(sock_b, dg, sizeof dg, 0, (struct sockaddr *)&to, sizeof to), 136);
    }
    /* from A (our namespace's kernel) to B on the same port: our own send
     * path's frames go out through the port too, and are not ours */
    int sa = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(sa >= 0);
    struct sockaddr_in tb = to;
    tb.sin_addr.s_addr = htonl(IP_B);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sendto(sa, dg, sizeof dg, 0, (struct sockaddr *)&tb, sizeof tb), 136);
    close(sa);

    char got[128] = "";
    size_t n = 0;
    const uint8_t *b;
    size_t len;
    for (int spins = 0; spins < 300000 && n < strlen(plan); spins++) {
        if (tl_peer_dpdk_recv(d, &b, &len)) {
            got[n++] = classify(b, len);
            continue;
        }
        struct timespec ts = {0, 10000};
        nanosleep(&ts, NULL);
    }
    assert_string_equal(got, plan);
    /* drain what the kernels say after it (ICMP, ARP) */
    for (int i = 0; i < 2000; i++) {
        if (!tl_peer_dpdk_recv(d, &b, &len)) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
    tl_peer_dpdk_stats st;
    tl_peer_dpdk_get_stats(d, &st);
    printf("af_packet: frames %llu datagrams %llu not_ipv4 %llu not_udp %llu other_addr %llu "
           "other_port %llu\n",
           (unsigned long long)st.frames, (unsigned long long)st.datagrams,
           (unsigned long long)st.verdicts[TL_FRAME_NOT_IPV4],
           (unsigned long long)st.verdicts[TL_FRAME_NOT_UDP],
           (unsigned long long)st.verdicts[TL_FRAME_OTHER_ADDR],
           (unsigned long long)st.verdicts[TL_FRAME_OTHER_PORT]);
    assert_true(st.datagrams == strlen(plan));
    /* the kernel's own frames were there and were skipped: ARP at least */
    assert_true(st.frames > st.datagrams);
    assert_true(st.verdicts[TL_FRAME_NOT_IPV4] >= 1);
    tl_peer_dpdk_close(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pcap_replay),
        cmocka_unit_test(test_af_packet_live),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
