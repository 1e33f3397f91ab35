/* ledgersim.c: tally-ledgersim, the reference settlement ledger (ledger.md).
 *
 * It consumes the engine's log live (io/wal_tail over the WAL directory),
 * posts every TRADE into its accounts (count, Σ(u64)qty,
 * Σ(u64)price×(u64)qty per symbol and in total, wrapping u64) and serves
 * `GET /v1/watermark` with libmicrohttpd exactly as ledger.md: decimal
 * strings, the checksum of the record at ledger_seq as 16 lowercase hex
 * digits, per-symbol figures, ts_ns, and with --key an X-Tally-Mac header
 * (lowercase hex HMAC-SHA256 of the exact body). With --tls it serves HTTPS.
 *
 * ledger_seq is the highest seq such that every record up to it was consumed
 * and every TRADE up to it posted. With --ring it consumes only records the
 * engine made durable (the ring's wal_durable_seq), as a real ledger must:
 * tally judges LEDGER_AHEAD against that seq.
 *
 * Faults (one of each at most):
 *   --lag-ms N        post a trade only N ms after it was durable
 *   --double-post SEQ post the first TRADE at or after SEQ twice
 *   --miss-post SEQ   never post the first TRADE at or after SEQ
 *   --ahead N         claim ledger_seq N beyond what it consumed
 *   --fork-log DIR    take the records' content from another WAL directory
 *                     (a forked log), while keeping to the engine's progress
 *                     in --wal: the ledger follows the wrong log
 *   --rewind-at SEQ   once ledger_seq reaches SEQ, answer once with the
 *                     watermark it had --rewind-by seqs earlier (default 5000:
 *                     more than a poll interval's records, so the reply goes
 *                     below one tally already saw)
 *   --stale-ms N      stamp replies N ms in the past
 * A fault that fires prints one JSON line on stdout, e.g.
 *   {"fault":"double_post","seq":30004,"symbol":3,"name":"SYM003"}
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/record.h"
#include "io/ledger_client.h"
#include "io/wal_tail.h"
#include "shm/ring.h"

#define MAX_SYMBOLS   4096u      /* symbol ids the accounts hold */
#define REPLY_SYMBOLS 256u       /* ledger.md replies list at most this many (core/ledger.h) */
#define QUEUE_RECORDS (1u << 20) /* consumed, not yet applied (--lag-ms) */
#define BODY_MAX      (64u << 10)

typedef struct figs {
    uint64_t trades, qty, notional;
} figs;

/* The accounts at one ledger_seq. */
typedef struct book {
    uint64_t ledger_seq;
    uint64_t checksum;
    figs total;
    figs sym[MAX_SYMBOLS];
} book;

/* A consumed record, as much of it as the ledger needs. */
typedef struct rec {
    uint64_t seq, checksum, qty, notional, read_ns;
    uint32_t symbol;
    uint16_t kind;
    char name[TL_SYMBOL_NAME_MAX + 1];
} rec;

typedef struct opts {
    const char *wal;
    const char *fork_log;
    const char *ring;
    const char *listen;
    const char *port_file;
    const char *key_file;
    const char *tls_cert;
    const char *tls_key;
    uint64_t lag_ms, double_post, miss_post, ahead, rewind_at, rewind_by, stale_ms;
    double seconds;
    bool stats;
} opts;

static volatile sig_atomic_t g_stop;

static struct {
    opts o;
    pthread_mutex_t mu; /* guards live, rewound, rewind_armed, served */
    book live;
    book rewound;
    bool rewind_armed;   /* serve `rewound` once */
    bool rewind_snapped; /* `rewound` holds the book at rewind_at - rewind_by */
    bool rewind_done;
    uint64_t served;
    bool have_key;
    uint8_t key[TL_LEDGER_KEY_BYTES];
    char names[MAX_SYMBOLS][TL_SYMBOL_NAME_MAX + 1];
    bool double_fired, miss_fired;
    uint64_t records, trades_posted;
} S;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static uint64_t clock_ns(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned us) {
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
}

/* ---- the reply ---- */

typedef struct buf {
    char *p;
    size_t n, cap;
    bool full;
} buf;

__attribute__((format(printf, 2, 3))) static void put(buf *b, const char *fmt, ...) {
    if (b->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= b->cap - b->n) {
        b->full = true;
        return;
    }
    b->n += (size_t)w;
}

static size_t make_body(const book *k, uint64_t ts_ns, char *out, size_t cap) {
    buf b = {out, 0, cap, false};
    put(&b,
        "{\"ledger_seq\":\"%" PRIu64 "\",\"checksum\":\"%016" PRIx64 "\",\"trades\":\"%" PRIu64
        "\",\"qty\":\"%" PRIu64 "\",\"notional\":\"%" PRIu64 "\",\"symbols\":[",
        k->ledger_seq + S.o.ahead, k->checksum, k->total.trades, k->total.qty, k->total.notional);
    unsigned listed = 0;
    for (uint32_t s = 0; s < MAX_SYMBOLS && listed < REPLY_SYMBOLS; s++) {
        const figs *f = &k->sym[s];
        if (f->trades == 0 && f->qty == 0 && f->notional == 0)
            continue;
        put(&b,
            "%s{\"symbol\":%u,\"trades\":\"%" PRIu64 "\",\"qty\":\"%" PRIu64
            "\",\"notional\":\"%" PRIu64 "\"}",
            listed ? "," : "", s, f->trades, f->qty, f->notional);
        listed++;
    }
    put(&b, "],\"ts_ns\":\"%" PRIu64 "\"}", ts_ns);
    return b.full ? 0 : b.n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    static const char not_found[] = "{\"error\":\"not_found\"}";
    if (strcmp(method, "GET") != 0 || strcmp(url, "/v1/watermark") != 0) {
        struct MHD_Response *r = MHD_create_response_from_buffer(
            sizeof not_found - 1, (void *)not_found, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_NOT_FOUND, r);
        MHD_destroy_response(r);
        return ok;
    }
    static __thread char body[BODY_MAX];
    uint64_t ts = clock_ns(CLOCK_REALTIME) - S.o.stale_ms * 1000000ull;
    pthread_mutex_lock(&S.mu);
    const book *k = &S.live;
    if (S.rewind_armed) {
        k = &S.rewound;
        S.rewind_armed = false;
        S.rewind_done = true;
        printf("{\"fault\":\"rewind\",\"seq\":%" PRIu64 ",\"from\":%" PRIu64 "}\n",
               S.rewound.ledger_seq, S.live.ledger_seq);
        fflush(stdout);
    }
    size_t n = make_body(k, ts, body, sizeof body);
    S.served++;
    pthread_mutex_unlock(&S.mu);
    struct MHD_Response *r = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (S.have_key) {
        char mac[TL_LEDGER_MAC_HEX + 1];
        tl_ledger_mac_hex(S.key, body, n, mac);
        MHD_add_response_header(r, "X-Tally-Mac", mac);
    }
    enum MHD_Result ok = MHD_queue_response(c, n ? MHD_HTTP_OK : MHD_HTTP_INTERNAL_SERVER_ERROR, r);
    MHD_destroy_response(r);
    return ok;
}

/* ---- posting ---- */

static void fault_line(const char *kind, const rec *r) {
    printf("{\"fault\":\"%s\",\"seq\":%" PRIu64 ",\"symbol\":%u,\"name\":\"%s\"}\n", kind, r->seq,
           r->symbol, r->symbol < MAX_SYMBOLS ? S.names[r->symbol] : "");
    fflush(stdout);
}

static void post(book *k, const rec *r) {
    k->total.trades++;
    k->total.qty += r->qty;
    k->total.notional += r->notional;
    if (r->symbol < MAX_SYMBOLS) {
        figs *f = &k->sym[r->symbol];
        f->trades++;
        f->qty += r->qty;
        f->notional += r->notional;
    }
    S.trades_posted++;
}

/* One record consumed and, for a TRADE, posted: ledger_seq moves to it. */
static void apply(const rec *r) {
    if (r->kind == TL_KIND_SYMBOL && r->symbol < MAX_SYMBOLS)
        memcpy(S.names[r->symbol], r->name, sizeof S.names[0]);
    pthread_mutex_lock(&S.mu);
    book *k = &S.live;
    if (r->kind == TL_KIND_TRADE) {
        if (S.o.miss_post != 0 && !S.miss_fired && r->seq >= S.o.miss_post) {
            S.miss_fired = true;
            fault_line("miss_post", r);
        } else {
            post(k, r);
            if (S.o.double_post != 0 && !S.double_fired && r->seq >= S.o.double_post) {
                S.double_fired = true;
                post(k, r);
                fault_line("double_post", r);
            }
        }
    }
    k->ledger_seq = r->seq;
    k->checksum = r->checksum;
    S.records++;
    if (S.o.rewind_at != 0 && !S.rewind_snapped && r->seq >= S.o.rewind_at - S.o.rewind_by) {
        S.rewound = *k;
        S.rewind_snapped = true;
    }
    if (S.o.rewind_at != 0 && S.rewind_snapped && !S.rewind_done && !S.rewind_armed &&
        r->seq >= S.o.rewind_at)
        S.rewind_armed = true;
    pthread_mutex_unlock(&S.mu);
}

/* ---- reading the log ---- */

typedef struct source {
    const char *dir;
    tl_wal_tail *t;
    uint64_t last_seq;
    bool have; /* `pending` holds the next record */
    rec pending;
} source;

static bool source_open(source *s) {
    if (s->t != NULL)
        return true;
    tl_wal_tail_cfg c;
    tl_wal_tail_cfg_default(&c);
    c.dir = s->dir;
    c.no_register = true;
    tl_wal_ioerr e;
    return tl_wal_tail_open(&s->t, &c, &e) == TL_WAL_OK;
}

/* Reads until a record is pending (or nothing is ready). */
static bool source_fill(source *s) {
    if (s->have)
        return true;
    if (!source_open(s))
        return false;
    tl_wal_ev ev;
    for (int i = 0; i < 64 && tl_wal_tail_poll(s->t, &ev); i++) {
        if (ev.type == TL_WAL_EV_CORRUPT) {
            fprintf(stderr, "tally-ledgersim: %s: corrupt record near seq %" PRIu64 "\n", s->dir,
                    ev.seq);
            continue;
        }
        if (ev.type != TL_WAL_EV_RECORD)
            continue;
        const tl_rec_view *v = &ev.view;
        rec *r = &s->pending;
        memset(r, 0, sizeof *r);
        r->seq = v->seq;
        r->checksum = v->checksum;
        r->kind = v->kind;
        r->symbol = v->symbol;
        if (v->kind == TL_KIND_TRADE && v->body_len >= sizeof(tl_body_trade)) {
            tl_body_trade t;
            memcpy(&t, v->body, sizeof t);
            r->qty = (uint64_t)t.qty;
            r->notional = (uint64_t)t.price * (uint64_t)t.qty; /* wrapping, as ledger.md */
        }
        if (v->kind == TL_KIND_SYMBOL && v->body_len >= TL_SYMBOL_NAME_MAX)
            memcpy(r->name, v->body, TL_SYMBOL_NAME_MAX);
        s->last_seq = v->seq;
        s->have = true;
        return true;
    }
    return false;
}

static rec *queue;
static uint64_t q_head, q_count;

static int usage(FILE *to) {
    fprintf(to,
            "usage: tally-ledgersim --wal DIR [options]\n"
            "  --wal DIR            the engine's WAL directory (tailed live)\n"
            "  --ring NAME          consume only what the engine made durable (wal_durable_seq)\n"
            "  --listen HOST:PORT   default 127.0.0.1:0 (any free port)\n"
            "  --port-file FILE     write the port there once listening\n"
            "  --key FILE           32-byte key: sign replies with X-Tally-Mac\n"
            "  --tls CERT KEY       serve HTTPS (PEM files)\n"
            "  --lag-ms N           post each trade N ms after it was durable\n"
            "  --double-post SEQ    post the first TRADE at or after SEQ twice\n"
            "  --miss-post SEQ      never post the first TRADE at or after SEQ\n"
            "  --ahead N            claim ledger_seq N beyond what it consumed\n"
            "  --fork-log DIR       take the records' content from another WAL directory\n"
            "  --rewind-at SEQ      once at SEQ, answer once with an older watermark\n"
            "  --rewind-by N        that many seqs older (default 5000)\n"
            "  --stale-ms N         stamp replies N ms in the past\n"
            "  --seconds N          stop after N seconds (default: at SIGTERM)\n"
            "  --stats              print a JSON summary at exit\n");
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *b = calloc(1, 1 << 20);
    size_t n = b != NULL ? fread(b, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (b != NULL && n == 0) {
        free(b);
        return NULL;
    }
    return b;
}

static int listen_socket(const char *spec, uint16_t *port_out) {
    char host[64] = "127.0.0.1";
    unsigned port = 0;
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || (size_t)(colon - spec) >= sizeof host)
        return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    if (sscanf(colon + 1, "%u", &port) != 1 || port > 65535)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        close(fd);
        return -1;
    }
    *port_out = ntohs(a.sin_port);
    return fd;
}

int main(int argc, char **argv) {
    opts *o = &S.o;
    o->listen = "127.0.0.1:0";
    o->rewind_by = 5000;
    enum {
        O_WAL = 1,
        O_RING,
        O_LISTEN,
        O_PORT_FILE,
        O_KEY,
        O_TLS,
        O_LAG,
        O_DOUBLE,
        O_MISS,
        O_AHEAD,
        O_FORK,
        O_REWIND,
        O_REWIND_BY,
        O_STALE,
        O_SECONDS,
        O_STATS,
        O_HELP,
    };
    static const struct option lo[] = {
        {"wal", required_argument, NULL, O_WAL},
        {"ring", required_argument, NULL, O_RING},
        {"listen", required_argument, NULL, O_LISTEN},
        {"port-file", required_argument, NULL, O_PORT_FILE},
        {"key", required_argument, NULL, O_KEY},
        {"tls", required_argument, NULL, O_TLS},
        {"lag-ms", required_argument, NULL, O_LAG},
        {"double-post", required_argument, NULL, O_DOUBLE},
        {"miss-post", required_argument, NULL, O_MISS},
        {"ahead", required_argument, NULL, O_AHEAD},
        {"fork-log", required_argument, NULL, O_FORK},
        {"rewind-at", required_argument, NULL, O_REWIND},
        {"rewind-by", required_argument, NULL, O_REWIND_BY},
        {"stale-ms", required_argument, NULL, O_STALE},
        {"seconds", required_argument, NULL, O_SECONDS},
        {"stats", no_argument, NULL, O_STATS},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        bool ok = true;
        switch (c) {
            case O_WAL:
                o->wal = optarg;
                break;
            case O_RING:
                o->ring = optarg;
                break;
            case O_LISTEN:
                o->listen = optarg;
                break;
            case O_PORT_FILE:
                o->port_file = optarg;
                break;
            case O_KEY:
                o->key_file = optarg;
                break;
            case O_TLS:
                /* two arguments: CERT KEY */
                o->tls_cert = optarg;
                ok = optind < argc;
                if (ok)
                    o->tls_key = argv[optind++];
                break;
            case O_LAG:
                ok = parse_u64(optarg, &o->lag_ms);
                break;
            case O_DOUBLE:
                ok = parse_u64(optarg, &o->double_post) && o->double_post > 0;
                break;
            case O_MISS:
                ok = parse_u64(optarg, &o->miss_post) && o->miss_post > 0;
                break;
            case O_AHEAD:
                ok = parse_u64(optarg, &o->ahead);
                break;
            case O_FORK:
                o->fork_log = optarg;
                break;
            case O_REWIND:
                ok = parse_u64(optarg, &o->rewind_at);
                break;
            case O_REWIND_BY:
                ok = parse_u64(optarg, &o->rewind_by) && o->rewind_by > 0;
                break;
            case O_STALE:
                ok = parse_u64(optarg, &o->stale_ms);
                break;
            case O_SECONDS: {
                char *end;
                o->seconds = strtod(optarg, &end);
                ok = end != optarg && *end == '\0' && o->seconds >= 0;
                break;
            }
            case O_STATS:
                o->stats = true;
                break;
            case O_HELP:
                usage(stdout);
                return 0;
            default:
                return usage(stderr);
        }
        if (!ok) {
            fprintf(stderr, "tally-ledgersim: bad value for --%s\n", lo[c - 1].name);
            return 2;
        }
    }
    if (o->wal == NULL || optind != argc)
        return usage(stderr);
    if (o->rewind_at != 0 && o->rewind_at <= o->rewind_by) {
        fprintf(stderr, "tally-ledgersim: --rewind-at must exceed --rewind-by (%" PRIu64 ")\n",
                o->rewind_by);
        return 2;
    }
    if (o->key_file != NULL) {
        enum tl_lc_err e = tl_ledger_key_load(o->key_file, S.key);
        if (e != TL_LC_OK) {
            fprintf(stderr, "tally-ledgersim: --key %s: %s\n", o->key_file, tl_lc_err_name(e));
            return 2;
        }
        S.have_key = true;
    }
    pthread_mutex_init(&S.mu, NULL);
    queue = calloc(QUEUE_RECORDS, sizeof *queue);
    if (queue == NULL) {
        fprintf(stderr, "tally-ledgersim: out of memory\n");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    uint16_t port = 0;
    int lfd = listen_socket(o->listen, &port);
    if (lfd < 0) {
        fprintf(stderr, "tally-ledgersim: --listen %s: %s\n", o->listen, strerror(errno));
        return 1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    char *cert = NULL, *key = NULL;
    if (o->tls_cert != NULL) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            fprintf(stderr, "tally-ledgersim: this libmicrohttpd has no TLS\n");
            return 1;
        }
        cert = read_all(o->tls_cert);
        key = read_all(o->tls_key);
        if (cert == NULL || key == NULL) {
            fprintf(stderr, "tally-ledgersim: --tls %s %s: cannot read\n", o->tls_cert, o->tls_key);
            return 1;
        }
        flags |= MHD_USE_TLS;
    }
    struct MHD_Daemon *d =
        cert != NULL ? MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL,
                                        MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_HTTPS_MEM_CERT,
                                        cert, MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_END)
                     : MHD_start_daemon(flags, 0, NULL, NULL, on_request, NULL,
                                        MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "tally-ledgersim: cannot start the HTTP server\n");
        return 1;
    }
    fprintf(stderr, "tally-ledgersim: serving %s://%s (port %u) from %s%s%s\n",
            cert ? "https" : "http", o->listen, port, o->wal, o->fork_log ? ", content from " : "",
            o->fork_log ? o->fork_log : "");
    if (o->port_file != NULL) {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s.tmp", o->port_file);
        FILE *f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 ||
            rename(tmp, o->port_file) != 0) {
            fprintf(stderr, "tally-ledgersim: --port-file %s: %s\n", o->port_file, strerror(errno));
            return 1;
        }
    }

    /* The engine's progress (--wal) and the content (--fork-log or --wal). */
    source primary = {.dir = o->wal}, fork = {.dir = o->fork_log};
    source *content = o->fork_log != NULL ? &fork : &primary;
    tl_ring_map map;
    tl_ring_durable_reader dr;
    memset(&dr, 0, sizeof dr);
    bool ring_ready = false;
    if (o->ring != NULL && tl_ring_map_init(&map, o->ring) != TL_RING_OK) {
        fprintf(stderr, "tally-ledgersim: --ring %s: not a usable name\n", o->ring);
        return 2;
    }
    uint64_t t0 = clock_ns(CLOCK_MONOTONIC);
    uint64_t lag_ns = o->lag_ms * 1000000ull;
    while (!g_stop) {
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        if (o->seconds > 0 && (double)(now - t0) >= o->seconds * 1e9)
            break;
        bool work = false;
        /* how far the engine's log may be consumed */
        uint64_t bound = UINT64_MAX;
        if (o->ring != NULL) {
            if (!ring_ready) {
                enum tl_ring_err e = tl_ring_map_step(&map, now);
                ring_ready = e == TL_RING_OK && map.phase == TL_MAP_READY;
                if (e != TL_RING_OK && e != TL_RING_PENDING && e != TL_RING_ERR_NOT_FOUND) {
                    tl_ring_map_close(&map);
                    (void)tl_ring_map_init(&map, o->ring);
                }
            }
            bound = 0;
            if (ring_ready) {
                tl_ring_durable snap = {0};
                (void)tl_ring_durable_read(&dr, map.ctl, now, 250, &snap);
                bound = snap.seq;
                if (primary.t != NULL)
                    tl_wal_tail_durable(primary.t, dr.have_snap, snap.seq, snap.segment_first_seq,
                                        snap.offset);
            }
        }
        if (o->fork_log != NULL) {
            /* progress from the engine's log, content from the fork */
            while (source_fill(&primary)) {
                primary.have = false;
                work = true;
            }
            if (primary.last_seq < bound)
                bound = primary.last_seq;
        }
        /* consume, in order, up to the bound */
        for (int i = 0; i < 4096 && q_count < QUEUE_RECORDS && source_fill(content); i++) {
            if (content->pending.seq > bound)
                break;
            rec *r = &queue[(q_head + q_count) % QUEUE_RECORDS];
            *r = content->pending;
            r->read_ns = now;
            q_count++;
            content->have = false;
            work = true;
        }
        /* post: a TRADE waits lag_ms; what follows it waits for it */
        while (q_count > 0) {
            rec *r = &queue[q_head];
            if (r->kind == TL_KIND_TRADE && now < r->read_ns + lag_ns)
                break;
            apply(r);
            q_head = (q_head + 1) % QUEUE_RECORDS;
            q_count--;
            work = true;
        }
        if (!work)
            sleep_us(200);
    }
    MHD_stop_daemon(d);
    if (o->stats) {
        pthread_mutex_lock(&S.mu);
        printf("{\"ledger_seq\":%" PRIu64 ",\"records\":%" PRIu64 ",\"trades\":%" PRIu64
               ",\"trades_posted\":%" PRIu64 ",\"served\":%" PRIu64 ",\"queued\":%" PRIu64
               ",\"double_post\":%s,\"miss_post\":%s,\"rewind\":%s}\n",
               S.live.ledger_seq, S.records, S.live.total.trades, S.trades_posted, S.served,
               q_count, S.double_fired ? "true" : "false", S.miss_fired ? "true" : "false",
               S.rewind_done ? "true" : "false");
        pthread_mutex_unlock(&S.mu);
    }
    tl_wal_tail_close(primary.t);
    tl_wal_tail_close(fork.t);
    if (o->ring != NULL)
        tl_ring_map_close(&map);
    free(queue);
    free(cert);
    free(key);
    return 0;
}
