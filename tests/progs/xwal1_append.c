/* xwal1_append.c: a stand-in for the quanta trading core in tally's xwal1
 * integration test (tests/integration/run_xwal1.sh). It writes an xwal1 log
 * into a live directory the way upstream's WAL writer does, from frames
 * upstream wrote (a fixture directory): each segment file is created with
 * its magic, each frame is appended whole with one write and fsynced, and
 * the directory is fsynced when a segment appears. Between frames it serves
 * the engine admin socket on the project's server (admin/engine_server.h),
 * so that tally's commands reach an engine and are recorded.
 *
 *   xwal1_append --from DIR --to DIR [--interval-ms N] [--linger-ms N]
 *                [--admin-socket PATH --sidecar-key FILE] [--stats]
 *
 * It does not write the MODE_CHANGE a real engine would for a command (the
 * log must stay upstream's bytes for the offline comparison), so an applied
 * command's applied_seq is 0. With --stats it prints one JSON line at exit:
 *   {"frames":N,"segments":N,"symbols":[...],
 *    "admin":{"lines":N,"applied":N,"duplicates":N,"rejected":N,
 *             "received":[{"id":"<hex>","cmd":"..","symbol":"..","mode":"..","ok":true}]}}
 * Exit: 0 done (SIGTERM/SIGINT included), 1 usage or I/O error. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/engine_server.h"
#include "admin/modes.h"
#include "core/xwal1.h"

#define MAX_SEGMENTS 4096u
#define MAX_RECEIVED 256u

typedef struct received {
    char id[33];
    char cmd[24];
    char symbol[TL_SYMBOL_NAME_MAX + 2];
    char mode[16];
    bool ok;
} received;

static volatile sig_atomic_t stop_flag;
static received recv_log[MAX_RECEIVED];
static unsigned recv_n;
static tl_admin_modes modes;
static tl_admin_server *srv;
static uint32_t next_symbol_id = 1;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void die(const char *what) {
    fprintf(stderr, "xwal1_append: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t now_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            die("write");
        p += w;
        n -= (size_t)w;
    }
}

static uint8_t *read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die(path);
    struct stat st;
    if (fstat(fd, &st) != 0)
        die("fstat");
    uint8_t *b = malloc((size_t)st.st_size + 1);
    if (b == NULL)
        die("malloc");
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("read");
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return b;
}

/* ---- the admin socket ---- */

static int write_mode_change(void *ctx, uint32_t scope, enum tl_mode mode, bool withdrawals_halted,
                             const uint8_t command_id[TL_ID_BYTES], uint64_t *applied_seq) {
    (void)ctx;
    (void)scope;
    (void)mode;
    (void)withdrawals_halted;
    (void)command_id;
    *applied_seq = 0; /* no record is written: see the top of the file */
    return 0;
}

static int cancel_all(void *ctx, uint32_t scope, const uint8_t command_id[TL_ID_BYTES]) {
    (void)ctx;
    (void)scope;
    (void)command_id;
    return 0;
}

static void on_reply(void *ctx, const tl_admin_request *req, const tl_admin_reply *reply,
                     enum tl_admin_err detail) {
    (void)ctx;
    (void)reply;
    if (req == NULL || req->cmd == TL_ADMIN_CMD_PING || recv_n == MAX_RECEIVED)
        return;
    received *r = &recv_log[recv_n++];
    memset(r, 0, sizeof *r);
    for (unsigned i = 0; i < TL_ID_BYTES; i++)
        snprintf(r->id + 2 * i, 3, "%02x", req->id[i]);
    snprintf(r->cmd, sizeof r->cmd, "%s", tl_admin_cmd_name(req->cmd));
    /* withdrawals_halt names no symbol: it is global */
    snprintf(r->symbol, sizeof r->symbol, "%s",
             req->cmd == TL_ADMIN_CMD_WITHDRAWALS_HALT ? "*" : req->symbol);
    snprintf(r->mode, sizeof r->mode, "%s",
             req->cmd == TL_ADMIN_CMD_SET_SYMBOL_MODE ? tl_mode_name(req->mode) : "");
    r->ok = detail == TL_ADMIN_OK;
}

static void serve(void) {
    if (srv != NULL)
        (void)tl_admin_server_poll(srv, now_ns(CLOCK_REALTIME));
}

/* Sleeps ms, serving the admin socket every millisecond. */
static void pause_ms(uint64_t ms) {
    uint64_t end = now_ns(CLOCK_MONOTONIC) + ms * 1000000ull;
    do {
        serve();
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    } while (!stop_flag && now_ns(CLOCK_MONOTONIC) < end);
}

/* The engine knows its symbols; tally's commands name them. */
static void learn_symbol(const uint8_t *payload, uint32_t len) {
    static tl_xwal1_rec rec;
    if (tl_xwal1_decode(payload, len, &rec) != TL_XWAL1_OK)
        return;
    uint32_t id;
    if (tl_admin_modes_lookup(&modes, rec.symbol, rec.symbol_len, &id))
        return;
    (void)tl_admin_modes_add_symbol(&modes, next_symbol_id++, rec.symbol, rec.symbol_len);
}

/* ---- the log ---- */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        die("fsync dir");
    close(fd);
}

static void usage(FILE *to) {
    fprintf(to, "usage: xwal1_append --from DIR --to DIR [--interval-ms N] [--linger-ms N]\n"
                "                    [--admin-socket PATH --sidecar-key FILE] [--stats]\n");
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},
        {"interval-ms", required_argument, NULL, 'i'},
        {"linger-ms", required_argument, NULL, 'l'},
        {"admin-socket", required_argument, NULL, 'a'},
        {"sidecar-key", required_argument, NULL, 'k'},
        {"stats", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *from = NULL, *to = NULL, *sock = NULL, *key_path = NULL;
    uint64_t interval_ms = 20, linger_ms = 0;
    bool stats = false;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
            case 'f':
                from = optarg;
                break;
            case 't':
                to = optarg;
                break;
            case 'i':
                interval_ms = strtoull(optarg, NULL, 10);
                break;
            case 'l':
                linger_ms = strtoull(optarg, NULL, 10);
                break;
            case 'a':
                sock = optarg;
                break;
            case 'k':
                key_path = optarg;
                break;
            case 's':
                stats = true;
                break;
            case 'h':
                usage(stdout);
                return 0;
            default:
                usage(stderr);
                return 1;
        }
    }
    if (from == NULL || to == NULL || optind != argc || (sock != NULL) != (key_path != NULL)) {
        usage(stderr);
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (mkdir(to, 0755) != 0 && errno != EEXIST)
        die(to);
    if (tl_admin_modes_init(&modes, 1024) != TL_ADMIN_OK)
        die("modes");
    if (sock != NULL) {
        tl_admin_key key;
        if (tl_admin_key_load(&key, key_path) != TL_ADMIN_OK) {
            fprintf(stderr, "xwal1_append: %s: not a key\n", key_path);
            return 1;
        }
        tl_admin_server_config sc = {
            .socket_path = sock,
            .sidecar_key = &key,
            .modes = &modes,
            .ops = {.write_mode_change = write_mode_change,
                    .cancel_all = cancel_all,
                    .on_reply = on_reply},
        };
        enum tl_admin_err ae;
        srv = tl_admin_server_create(&sc, &ae);
        tl_admin_key_wipe(&key);
        if (srv == NULL) {
            fprintf(stderr, "xwal1_append: %s: %s\n", sock, tl_admin_err_name(ae));
            return 1;
        }
    }

    /* The fixture's segments, in index order. */
    static uint64_t idx[MAX_SEGMENTS];
    size_t n = 0;
    DIR *d = opendir(from);
    if (d == NULL)
        die(from);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t i;
        if (tl_xwal1_segment_name_parse(de->d_name, strlen(de->d_name), &i) && n < MAX_SEGMENTS)
            idx[n++] = i;
    }
    closedir(d);
    qsort(idx, n, sizeof idx[0], cmp_u64);

    uint64_t frames = 0, segments = 0;
    for (size_t k = 0; k < n && !stop_flag; k++) {
        char name[32], src[4096], dst[4096];
        tl_xwal1_segment_name(name, sizeof name, idx[k]);
        snprintf(src, sizeof src, "%s/%s", from, name);
        snprintf(dst, sizeof dst, "%s/%s", to, name);
        size_t len;
        uint8_t *b = read_file(src, &len);
        int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
            die(dst);
        /* A new segment: its magic, durable, and its name, durable. */
        size_t head = len < TL_XWAL1_MAGIC_BYTES ? len : TL_XWAL1_MAGIC_BYTES;
        write_all(fd, b, head);
        if (fsync(fd) != 0)
            die("fsync");
        fsync_dir(to);
        segments++;
        /* Its frames, whole, one fsync each (upstream's persist). Bytes after
         * the last whole frame (a torn tail in the fixture) are copied too. */
        tl_xwal1_walker w;
        tl_xwal1_walker_init(&w, b, len, 0, true);
        size_t done = head;
        for (;;) {
            tl_xwal1_frame fr;
            enum tl_xwal1_err err;
            if (stop_flag || tl_xwal1_walker_next(&w, &fr, &err) != TL_XWAL1_FRAME)
                break;
            learn_symbol(fr.payload, fr.payload_len);
            pause_ms(interval_ms);
            write_all(fd, b + fr.offset, fr.frame_len);
            if (fsync(fd) != 0)
                die("fsync");
            done = fr.offset + fr.frame_len;
            frames++;
        }
        if (!stop_flag && done < len)
            write_all(fd, b + done, len - done);
        close(fd);
        free(b);
    }
    if (!stop_flag)
        pause_ms(linger_ms);

    if (stats) {
        const tl_admin_server_stats *ss = srv != NULL ? tl_admin_server_get_stats(srv) : NULL;
        uint64_t rejected = 0;
        for (int i = 0; ss != NULL && i < TL_ADMIN_ERR_COUNT; i++)
            rejected += ss->rejected[i];
        printf("{\"frames\":%llu,\"segments\":%llu,\"admin\":{\"lines\":%llu,\"applied\":%llu,"
               "\"duplicates\":%llu,\"rejected\":%llu,\"received\":[",
               (unsigned long long)frames, (unsigned long long)segments,
               (unsigned long long)(ss != NULL ? ss->lines : 0),
               (unsigned long long)(ss != NULL ? ss->applied : 0),
               (unsigned long long)(ss != NULL ? ss->duplicates : 0), (unsigned long long)rejected);
        for (unsigned i = 0; i < recv_n; i++) {
            const received *r = &recv_log[i];
            printf("%s{\"id\":\"%s\",\"cmd\":\"%s\",\"symbol\":\"%s\",\"mode\":\"%s\",\"ok\":%s}",
                   i ? "," : "", r->id, r->cmd, r->symbol, r->mode, r->ok ? "true" : "false");
        }
        printf("]}}\n");
        fflush(stdout);
    }
    tl_admin_server_destroy(srv);
    tl_admin_modes_free(&modes);
    return 0;
}
