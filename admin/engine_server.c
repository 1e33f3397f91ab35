/* engine_server.c: the engine's admin socket server (see engine_server.h).
 *
 * Per connection: a 4096-byte line buffer [in_off, in_len) and a bounded
 * reply buffer [out_off, out_len). Invariants:
 * - replies are appended in the order the lines were read, one per line;
 * - a line is only handled when the reply buffer has TL_ADMIN_REPLY_MAX
 *   free, so a reply never has to be dropped (a client that does not read
 *   stops being read: back-pressure, not loss);
 * - the socket is polled for input only while it can be read into
 *   (!peer_eof, !closing, room in the buffer), so poll never spins;
 * - every loop has a bound: accepts and reads per call, lines per connection
 *   per call.
 */
#include "admin/engine_server.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin/applied_ids.h"
#include "core/assert.h"

#define IN_BYTES            TL_ADMIN_LINE_MAX
#define LINES_PER_CONN_POLL 64u
#define READS_PER_CONN_POLL 4u
#define ACCEPTS_PER_POLL    16u
#define LISTEN_BACKLOG      64

_Static_assert(TL_ADMIN_SERVER_OUT_BYTES >= 2 * TL_ADMIN_REPLY_MAX, "room for replies");

typedef struct conn {
    int fd; /* -1: slot free */
    bool peer_eof;
    bool closing; /* reply to a too-long line queued: flush, then close */
    bool held;    /* complete lines left over by the per-poll limit */
    uint32_t in_off, in_len;
    uint32_t out_off, out_len;
    uint64_t arrival_mono_ns;
    /* CLOCK_MONOTONIC since which replies are pending and no byte of them
     * could be written (0: not stalled). A peer that does not read its
     * replies for stall_timeout_ms is dropped. */
    uint64_t stalled_since_ns;
    char in[IN_BYTES];
    char out[TL_ADMIN_SERVER_OUT_BYTES];
} conn;

struct tl_admin_server {
    int listen_fd;
    dev_t sock_dev;
    ino_t sock_ino;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    tl_admin_key sidecar_key;
    tl_admin_key operator_key;
    bool has_operator_key;
    tl_admin_modes *modes;
    tl_admin_engine_ops ops;
    tl_admin_applied_ids ids;
    uint32_t max_conns;
    uint32_t live_conns;
    uint64_t stall_ns;
    conn *conns;
    struct pollfd *pfds; /* [1 + max_conns] */
    uint32_t *pfd_conn;  /* pfds[i] -> conn index */
    tl_admin_server_stats stats;
};

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- socket set-up ---- */

/* bind() failed with EADDRINUSE: the file is stale if it is a socket nobody
 * listens on (a dead engine's). Never removes anything but a socket. */
static enum tl_admin_err clear_stale_socket(const struct sockaddr_un *addr) {
    struct stat st;
    if (lstat(addr->sun_path, &st) != 0)
        return errno == ENOENT ? TL_ADMIN_OK : TL_ADMIN_ERR_IO;
    if (!S_ISSOCK(st.st_mode))
        return TL_ADMIN_ERR_ADDR_IN_USE;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return TL_ADMIN_ERR_IO;
    int r = connect(probe, (const struct sockaddr *)addr, sizeof *addr);
    int e = errno;
    close(probe);
    if (r == 0 || e == EAGAIN || e == EINPROGRESS)
        return TL_ADMIN_ERR_ADDR_IN_USE; /* a live server */
    if (e != ECONNREFUSED)
        return TL_ADMIN_ERR_IO;
    if (unlink(addr->sun_path) != 0 && errno != ENOENT)
        return TL_ADMIN_ERR_IO;
    return TL_ADMIN_OK;
}

static enum tl_admin_err open_listener(tl_admin_server *srv, const char *path, uint32_t mode) {
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof addr.sun_path)
        return TL_ADMIN_ERR_PATH_TOO_LONG;
    memcpy(addr.sun_path, path, n);
    memcpy(srv->path, path, n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return TL_ADMIN_ERR_IO;
    int r = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    if (r != 0 && errno == EADDRINUSE) {
        enum tl_admin_err e = clear_stale_socket(&addr);
        if (e != TL_ADMIN_OK) {
            close(fd);
            return e;
        }
        r = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    }
    if (r != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return e == EADDRINUSE ? TL_ADMIN_ERR_ADDR_IN_USE : TL_ADMIN_ERR_IO;
    }
    /* Set the mode before listen(): until then a connect is refused, so no
     * one can get in through the umask-derived mode bind() created. */
    struct stat st;
    if (chmod(path, mode) != 0 || stat(path, &st) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        errno = e;
        return TL_ADMIN_ERR_IO;
    }
    srv->sock_dev = st.st_dev;
    srv->sock_ino = st.st_ino;
    srv->listen_fd = fd;
    return TL_ADMIN_OK;
}

tl_admin_server *tl_admin_server_create(const tl_admin_server_config *cfg, enum tl_admin_err *err) {
    *err = TL_ADMIN_ERR_BAD_CONFIG;
    if (cfg->socket_path == NULL || cfg->sidecar_key == NULL ||
        cfg->sidecar_key->loaded != TL_ADMIN_KEY_MAGIC || cfg->modes == NULL ||
        cfg->modes->symbols == NULL || cfg->ops.write_mode_change == NULL ||
        cfg->ops.cancel_all == NULL || cfg->max_conns > TL_ADMIN_SERVER_MAX_CONNS ||
        cfg->remembered_ids > TL_ADMIN_IDS_MAX ||
        (cfg->operator_key != NULL && cfg->operator_key->loaded != TL_ADMIN_KEY_MAGIC))
        return NULL;
    tl_admin_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        *err = TL_ADMIN_ERR_IO;
        return NULL;
    }
    srv->listen_fd = -1;
    srv->max_conns = cfg->max_conns ? cfg->max_conns : TL_ADMIN_SERVER_DEFAULT_CONNS;
    srv->stall_ns = (uint64_t)(cfg->stall_timeout_ms ? cfg->stall_timeout_ms
                                                     : TL_ADMIN_SERVER_DEFAULT_STALL_MS) *
                    1000000ull;
    srv->conns = calloc(srv->max_conns, sizeof *srv->conns);
    srv->pfds = calloc(1 + srv->max_conns, sizeof *srv->pfds);
    srv->pfd_conn = calloc(1 + srv->max_conns, sizeof *srv->pfd_conn);
    uint32_t ids = cfg->remembered_ids ? cfg->remembered_ids : TL_ADMIN_SERVER_DEFAULT_IDS;
    if (!srv->conns || !srv->pfds || !srv->pfd_conn ||
        tl_admin_applied_ids_init(&srv->ids, ids) != TL_ADMIN_OK) {
        tl_admin_server_destroy(srv);
        *err = TL_ADMIN_ERR_IO;
        return NULL;
    }
    for (uint32_t i = 0; i < srv->max_conns; i++)
        srv->conns[i].fd = -1;
    srv->sidecar_key = *cfg->sidecar_key;
    if (cfg->operator_key != NULL) {
        srv->operator_key = *cfg->operator_key;
        srv->has_operator_key = true;
    }
    srv->modes = cfg->modes;
    srv->ops = cfg->ops;
    enum tl_admin_err e =
        open_listener(srv, cfg->socket_path, cfg->socket_mode ? cfg->socket_mode : 0600);
    if (e != TL_ADMIN_OK) {
        int saved = errno;
        tl_admin_server_destroy(srv);
        errno = saved;
        *err = e;
        return NULL;
    }
    *err = TL_ADMIN_OK;
    return srv;
}

static void conn_close(tl_admin_server *srv, conn *c) {
    TL_ASSERT(c->fd >= 0);
    close(c->fd);
    c->fd = -1;
    TL_ASSERT(srv->live_conns > 0);
    srv->live_conns--;
    srv->stats.conns_closed++;
}

void tl_admin_server_destroy(tl_admin_server *srv) {
    if (srv == NULL)
        return;
    if (srv->conns != NULL) {
        for (uint32_t i = 0; i < srv->max_conns; i++) {
            if (srv->conns[i].fd >= 0)
                conn_close(srv, &srv->conns[i]);
        }
    }
    if (srv->listen_fd >= 0) {
        close(srv->listen_fd);
        /* Remove the file only if it is still the one we bound: another
         * engine may have replaced it since. */
        struct stat st;
        if (lstat(srv->path, &st) == 0 && st.st_dev == srv->sock_dev && st.st_ino == srv->sock_ino)
            unlink(srv->path);
    }
    tl_admin_applied_ids_free(&srv->ids);
    tl_admin_key_wipe(&srv->sidecar_key);
    tl_admin_key_wipe(&srv->operator_key);
    free(srv->conns);
    free(srv->pfds);
    free(srv->pfd_conn);
    free(srv);
}

/* ---- the checks and the semantics ---- */

static bool resolve_scope(const tl_admin_server *srv, const tl_admin_request *req,
                          uint32_t *scope) {
    if (req->cmd == TL_ADMIN_CMD_WITHDRAWALS_HALT) {
        *scope = 0;
        return true;
    }
    if (req->symbol_len == 1 && req->symbol[0] == '*') {
        *scope = 0;
        return true;
    }
    return tl_admin_modes_lookup(srv->modes, req->symbol, req->symbol_len, scope);
}

static void reply_set_symbol(tl_admin_reply *r, const tl_admin_request *req) {
    memcpy(r->symbol, req->symbol, req->symbol_len);
    r->symbol[req->symbol_len] = 0;
    r->symbol_len = req->symbol_len;
}

static void remember(tl_admin_server *srv, const tl_admin_request *req,
                     const uint8_t digest[TL_ADMIN_DIGEST_BYTES], uint32_t scope, enum tl_mode mode,
                     uint64_t seq) {
    tl_admin_applied e = {0};
    memcpy(e.id, req->id, TL_ID_BYTES);
    memcpy(e.digest, digest, TL_ADMIN_DIGEST_BYTES);
    e.has_digest = true;
    e.applied_seq = seq;
    e.scope = scope;
    e.cmd = (uint8_t)req->cmd;
    e.mode = (uint8_t)mode;
    e.withdrawals_halted = srv->modes->withdrawals_halted;
    tl_admin_applied_ids_insert(&srv->ids, &e);
}

/* Steps 3-7 and the apply, for a line that parsed and whose mac is good.
 * Fills r for an ok reply, or returns the reason. */
static enum tl_admin_err execute(tl_admin_server *srv, const char *line,
                                 const tl_admin_request *req, const tl_admin_line_info *info,
                                 uint64_t now_real_ns, tl_admin_reply *r) {
    r->cmd = req->cmd;
    uint8_t digest[TL_ADMIN_DIGEST_BYTES] = {0};
    /* 3. Duplicate id. Pings change nothing and are never remembered. */
    if (req->cmd != TL_ADMIN_CMD_PING) {
        tl_admin_request_digest(line, info, digest);
        tl_admin_applied *e = tl_admin_applied_ids_find(&srv->ids, req->id);
        if (e != NULL) {
            if (e->has_digest) {
                if (memcmp(e->digest, digest, sizeof digest) != 0)
                    return TL_ADMIN_ERR_ID_REUSED;
            } else {
                /* Rebuilt from the log: only the scope can be compared. The
                 * first resend's digest then binds the id. */
                uint32_t scope = 0;
                if (!resolve_scope(srv, req, &scope) || scope != e->scope)
                    return TL_ADMIN_ERR_ID_REUSED;
                memcpy(e->digest, digest, sizeof digest);
                e->has_digest = true;
                e->cmd = (uint8_t)req->cmd;
            }
            if (e->cmd != (uint8_t)req->cmd) /* the digest covers cmd */
                return TL_ADMIN_ERR_ID_REUSED;
            r->duplicate = true;
            r->applied_seq = e->applied_seq;
            r->has_applied_seq = true;
            r->mode = e->mode;
            r->on = e->withdrawals_halted;
            if (req->cmd != TL_ADMIN_CMD_WITHDRAWALS_HALT)
                reply_set_symbol(r, req);
            srv->stats.duplicates++;
            return TL_ADMIN_OK;
        }
    }
    /* 4. Stale. */
    uint64_t skew =
        req->issued_ns > now_real_ns ? req->issued_ns - now_real_ns : now_real_ns - req->issued_ns;
    if (skew > TL_ADMIN_STALE_NS)
        return TL_ADMIN_ERR_STALE_COMMAND;

    tl_admin_modes *modes = srv->modes;
    uint32_t scope = 0;
    uint64_t seq = 0;
    switch (req->cmd) {
        case TL_ADMIN_CMD_PING:
            srv->stats.pings++;
            return TL_ADMIN_OK;
        case TL_ADMIN_CMD_WITHDRAWALS_HALT: {
            /* 5. Only the operator key lifts a withdrawals halt. */
            if (!req->on && req->key != TL_ADMIN_KEY_OPERATOR)
                return TL_ADMIN_ERR_FORBIDDEN;
            enum tl_mode global = (enum tl_mode)modes->global_mode;
            if (srv->ops.write_mode_change(srv->ops.ctx, 0, global, req->on, req->id, &seq) != 0)
                return TL_ADMIN_ERR_ENGINE;
            modes->withdrawals_halted = req->on;
            remember(srv, req, digest, 0, global, seq);
            r->on = req->on;
            break;
        }
        case TL_ADMIN_CMD_SET_SYMBOL_MODE: {
            /* 7 before 6: a precondition on an unknown scope cannot be
             * evaluated. */
            if (!resolve_scope(srv, req, &scope))
                return TL_ADMIN_ERR_UNKNOWN_SYMBOL;
            enum tl_mode cur = tl_admin_modes_scope(modes, scope);
            enum tl_mode want = (enum tl_mode)req->mode;
            enum tl_mode next;
            if (req->key == TL_ADMIN_KEY_OPERATOR) {
                /* 6. The operator states what it believes is in force, so a
                 * relaxation cannot undo a halt issued in between. */
                if (req->has_from_mode && req->from_mode != cur)
                    return TL_ADMIN_ERR_PRECONDITION_FAILED;
                if (want < cur && !req->has_from_mode)
                    return TL_ADMIN_ERR_FROM_MODE_REQUIRED;
                next = want;
            } else {
                /* The sidecar key only makes things stricter; from_mode is
                 * ignored, so a halt is never refused over a stale belief. */
                next = want > cur ? want : cur;
            }
            if (srv->ops.write_mode_change(srv->ops.ctx, scope, next, modes->withdrawals_halted,
                                           req->id, &seq) != 0)
                return TL_ADMIN_ERR_ENGINE;
            TL_ASSERT(tl_admin_modes_set(modes, scope, next));
            remember(srv, req, digest, scope, next, seq);
            r->mode = (uint8_t)next;
            reply_set_symbol(r, req);
            break;
        }
        case TL_ADMIN_CMD_CANCEL_ALL: {
            if (!resolve_scope(srv, req, &scope))
                return TL_ADMIN_ERR_UNKNOWN_SYMBOL;
            if (srv->ops.cancel_all(srv->ops.ctx, scope, req->id) != 0)
                return TL_ADMIN_ERR_ENGINE;
            enum tl_mode cur = tl_admin_modes_scope(modes, scope);
            if (srv->ops.write_mode_change(srv->ops.ctx, scope, cur, modes->withdrawals_halted,
                                           req->id, &seq) != 0)
                return TL_ADMIN_ERR_ENGINE;
            remember(srv, req, digest, scope, cur, seq);
            r->mode = (uint8_t)cur;
            reply_set_symbol(r, req);
            break;
        }
        default:
            TL_UNREACHABLE();
    }
    r->applied_seq = seq;
    r->has_applied_seq = true;
    srv->stats.applied++;
    return TL_ADMIN_OK;
}

static size_t finish_reply(tl_admin_server *srv, const tl_admin_request *req, tl_admin_reply *r,
                           enum tl_admin_err detail, char *out, size_t cap) {
    if (detail != TL_ADMIN_OK) {
        r->ok = false;
        r->error = tl_admin_err_wire(detail);
        TL_ASSERT(r->error != TL_ADMIN_WIRE_NONE);
        srv->stats.rejected[detail]++;
    } else {
        r->ok = true;
    }
    size_t n = tl_admin_reply_build(r, out, cap);
    TL_ASSERT(n > 0 && n <= TL_ADMIN_REPLY_MAX);
    if (srv->ops.on_reply != NULL)
        srv->ops.on_reply(srv->ops.ctx, req, r, detail);
    return n;
}

size_t tl_admin_server_handle_line(tl_admin_server *srv, const char *line, size_t len,
                                   uint64_t now_real_ns, uint64_t arrival_mono_ns, char *out,
                                   size_t cap) {
    TL_ASSERT(cap >= TL_ADMIN_REPLY_MAX);
    srv->stats.lines++;
    tl_admin_request req;
    tl_admin_line_info info;
    tl_admin_reply r = {0};
    /* 1. bad_request */
    enum tl_admin_err e = tl_admin_request_parse(line, len, &req, &info);
    if (srv->ops.on_line != NULL)
        srv->ops.on_line(srv->ops.ctx, e == TL_ADMIN_OK ? req.cmd : TL_ADMIN_CMD_NONE,
                         info.id_readable ? req.id : NULL, arrival_mono_ns);
    if (info.id_readable) {
        memcpy(r.id, req.id, TL_ID_BYTES);
        r.id_present = true;
    }
    if (e != TL_ADMIN_OK)
        return finish_reply(srv, NULL, &r, e, out, cap);
    /* 2. bad_mac */
    const tl_admin_key *key = NULL;
    if (req.key == TL_ADMIN_KEY_SIDECAR)
        key = &srv->sidecar_key;
    else if (srv->has_operator_key)
        key = &srv->operator_key;
    if (key == NULL)
        e = TL_ADMIN_ERR_KEY_NOT_CONFIGURED;
    else
        e = tl_admin_request_verify_mac(line, &info, key);
    /* 3-7, and the apply. */
    if (e == TL_ADMIN_OK)
        e = execute(srv, line, &req, &info, now_real_ns, &r);
    return finish_reply(srv, &req, &r, e, out, cap);
}

/* ---- connections ---- */

static bool conn_can_read(const conn *c) {
    return !c->peer_eof && !c->closing && (c->in_len - c->in_off) < IN_BYTES;
}

static uint32_t out_room(const conn *c) {
    return TL_ADMIN_SERVER_OUT_BYTES - c->out_len;
}

/* Makes room at the end of the out-buffer by moving pending bytes down. */
static void out_compact(conn *c) {
    if (c->out_off == 0)
        return;
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
}

/* Sends what is pending. Returns false if the connection broke. Keeps the
 * stall clock: started when bytes stay pending, restarted on progress. */
static bool conn_flush(tl_admin_server *srv, conn *c) {
    bool progress = false;
    for (unsigned tries = 0; c->out_off < c->out_len && tries < 8; tries++) {
        ssize_t w =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            c->out_off += (uint32_t)w;
            progress = true;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (w < 0 && errno != EPIPE && errno != ECONNRESET)
            srv->stats.io_errors++;
        return false;
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        c->stalled_since_ns = 0;
    } else if (progress || c->stalled_since_ns == 0) {
        c->stalled_since_ns = mono_ns(); /* not the wall clock: it may step */
    }
    return true;
}

static void queue_line_too_long(tl_admin_server *srv, conn *c) {
    out_compact(c);
    TL_ASSERT(out_room(c) >= TL_ADMIN_REPLY_MAX);
    srv->stats.lines++;
    tl_admin_reply r = {0};
    c->out_len += (uint32_t)finish_reply(srv, NULL, &r, TL_ADMIN_ERR_LINE_TOO_LONG,
                                         c->out + c->out_len, out_room(c));
    c->closing = true;
    c->in_off = c->in_len = 0;
}

/* Handles the complete lines buffered, while replies fit. Returns how many. */
static int conn_process(tl_admin_server *srv, conn *c, uint64_t now_real_ns) {
    int handled = 0;
    while (!c->closing && handled < (int)LINES_PER_CONN_POLL && c->in_off < c->in_len) {
        const char *start = c->in + c->in_off;
        const char *nl = memchr(start, '\n', c->in_len - c->in_off);
        if (nl == NULL) {
            if (c->in_len - c->in_off == IN_BYTES) {
                /* 4096 bytes and no '\n': the line is longer than allowed. */
                if (out_room(c) < TL_ADMIN_REPLY_MAX)
                    out_compact(c);
                if (out_room(c) < TL_ADMIN_REPLY_MAX)
                    break; /* answer once the peer has read */
                queue_line_too_long(srv, c);
                handled++;
            }
            break;
        }
        if (out_room(c) < TL_ADMIN_REPLY_MAX)
            out_compact(c);
        if (out_room(c) < TL_ADMIN_REPLY_MAX) {
            srv->stats.reply_stalls++;
            break; /* back-pressure: the peer is not reading its replies */
        }
        size_t len = (size_t)(nl - start);
        c->out_len += (uint32_t)tl_admin_server_handle_line(
            srv, start, len, now_real_ns, c->arrival_mono_ns, c->out + c->out_len, out_room(c));
        c->in_off += (uint32_t)len + 1;
        handled++;
    }
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    /* Stopped by the limit with input left: visit again without an event.
     * (Stopped by a full out-buffer: POLLOUT will wake us.) */
    c->held = !c->closing && handled >= (int)LINES_PER_CONN_POLL && c->in_off < c->in_len;
    return handled;
}

/* Reads what is there, handling lines between reads so each line's arrival
 * stamp is that of the recv() that completed it. Returns false if the
 * connection broke. */
static bool conn_read(tl_admin_server *srv, conn *c, uint64_t now_real_ns, int *handled) {
    for (unsigned reads = 0; reads < READS_PER_CONN_POLL && conn_can_read(c); reads++) {
        if (c->in_off > 0) {
            memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
            c->in_len -= c->in_off;
            c->in_off = 0;
        }
        ssize_t r = recv(c->fd, c->in + c->in_len, IN_BYTES - c->in_len, MSG_DONTWAIT);
        if (r > 0) {
            c->arrival_mono_ns = mono_ns();
            c->in_len += (uint32_t)r;
            *handled += conn_process(srv, c, now_real_ns);
            continue;
        }
        if (r == 0) {
            c->peer_eof = true;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        if (errno != ECONNRESET)
            srv->stats.io_errors++;
        return false;
    }
    return true;
}

static bool conn_stalled(const conn *c) {
    return c->stalled_since_ns != 0;
}

/* One visit: on an event, or without one when the connection has work left
 * (held lines), a close to finish, or a stall clock to watch. A visit
 * without an event makes no syscall unless it produced new replies. */
static void conn_service(tl_admin_server *srv, conn *c, short revents, uint64_t now_real_ns,
                         int *handled) {
    bool alive = (revents & (POLLERR | POLLNVAL)) == 0;
    if (alive && (revents & POLLOUT) && c->out_off < c->out_len)
        alive = conn_flush(srv, c);
    uint32_t out_before = c->out_len - c->out_off;
    if (alive && (revents & (POLLIN | POLLHUP)))
        alive = conn_read(srv, c, now_real_ns, handled);
    if (alive && (revents != 0 || c->held))
        *handled += conn_process(srv, c, now_real_ns); /* lines held back earlier */
    /* New replies go out at once (usually in full: the peer is reading). */
    if (alive && c->out_len - c->out_off > out_before)
        alive = conn_flush(srv, c);
    if (!alive) {
        conn_close(srv, c);
        return;
    }
    bool out_empty = c->out_off == c->out_len;
    if (conn_stalled(c) && mono_ns() - c->stalled_since_ns > srv->stall_ns) {
        srv->stats.conns_stalled++;
        conn_close(srv, c);
        return;
    }
    if (c->closing) {
        if (out_empty)
            conn_close(srv, c);
        return;
    }
    if (c->peer_eof) {
        /* Half-closed: answer every complete line, then close. A partial
         * line can never complete: it is dropped. */
        bool complete_line =
            c->in_off < c->in_len && memchr(c->in + c->in_off, '\n', c->in_len - c->in_off) != NULL;
        if (!complete_line && out_empty) {
            if (c->in_off < c->in_len)
                srv->stats.partial_lines_dropped++;
            conn_close(srv, c);
        }
    }
}

static void accept_conns(tl_admin_server *srv) {
    for (unsigned k = 0; k < ACCEPTS_PER_POLL; k++) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED)
                srv->stats.io_errors++; /* EMFILE and friends: try again next poll */
            return;
        }
        conn *slot = NULL;
        for (uint32_t i = 0; i < srv->max_conns && slot == NULL; i++) {
            if (srv->conns[i].fd < 0)
                slot = &srv->conns[i];
        }
        if (slot == NULL) {
            /* Full: refuse rather than leave it queued (the listener would
             * stay readable and every poll would spin on it). */
            close(fd);
            srv->stats.conns_refused++;
            continue;
        }
        slot->fd = fd;
        slot->peer_eof = slot->closing = slot->held = false;
        slot->in_off = slot->in_len = slot->out_off = slot->out_len = 0;
        slot->arrival_mono_ns = slot->stalled_since_ns = 0;
        srv->live_conns++;
        srv->stats.conns_accepted++;
    }
}

static bool conn_needs_visit(const conn *c) {
    return c->held || c->peer_eof || c->closing || conn_stalled(c);
}

int tl_admin_server_poll(tl_admin_server *srv, uint64_t now_real_ns) {
    nfds_t n = 0;
    srv->pfds[n++] = (struct pollfd){.fd = srv->listen_fd, .events = POLLIN};
    bool pending_work = false;
    for (uint32_t i = 0; i < srv->max_conns; i++) {
        conn *c = &srv->conns[i];
        if (c->fd < 0)
            continue;
        short ev = 0;
        if (conn_can_read(c))
            ev |= POLLIN;
        if (c->out_off < c->out_len)
            ev |= POLLOUT;
        /* Lines left by the per-poll limit, an EOF or a close to finish,
         * and a stall clock to watch need a visit even without an event
         * (such a visit makes no syscall). An idle connection, or one with
         * a partial line, costs nothing per poll beyond poll(2) itself. */
        if (conn_needs_visit(c))
            pending_work = true;
        srv->pfd_conn[n] = i;
        srv->pfds[n++] = (struct pollfd){.fd = c->fd, .events = ev};
    }
    int r = poll(srv->pfds, n, 0);
    if (r < 0) {
        if (errno == EINTR)
            return 0;
        srv->stats.io_errors++;
        return -1;
    }
    if (r == 0 && !pending_work)
        return 0;
    int handled = 0;
    for (nfds_t k = 1; k < n; k++) {
        conn *c = &srv->conns[srv->pfd_conn[k]];
        TL_ASSERT(c->fd == srv->pfds[k].fd);
        short rev = srv->pfds[k].revents;
        if (rev == 0 && !conn_needs_visit(c))
            continue;
        conn_service(srv, c, rev, now_real_ns, &handled);
    }
    if (srv->pfds[0].revents & POLLIN)
        accept_conns(srv);
    return handled;
}

/* ---- restart ---- */

bool tl_admin_server_remember(tl_admin_server *srv, const uint8_t command_id[TL_ID_BYTES],
                              uint32_t scope, enum tl_mode mode, bool withdrawals_halted,
                              uint64_t applied_seq) {
    if (tl_id_is_zero(command_id) || tl_id_is_restatement(command_id))
        return false;
    if ((unsigned)mode >= TL_MODE_COUNT)
        return false;
    if (tl_admin_applied_ids_find(&srv->ids, command_id) != NULL)
        return false;
    tl_admin_applied e = {0};
    memcpy(e.id, command_id, TL_ID_BYTES);
    e.applied_seq = applied_seq;
    e.scope = scope;
    e.cmd = TL_ADMIN_CMD_NONE;
    e.mode = (uint8_t)mode;
    e.withdrawals_halted = withdrawals_halted;
    tl_admin_applied_ids_insert(&srv->ids, &e);
    return true;
}

bool tl_admin_server_replay_mode_change(tl_admin_server *srv, uint32_t scope,
                                        const tl_body_mode_change *body, uint64_t seq) {
    if (body->mode >= TL_MODE_COUNT || body->withdrawals_halted > 1)
        return false;
    if (!tl_admin_modes_set(srv->modes, scope, (enum tl_mode)body->mode))
        return false;
    srv->modes->withdrawals_halted = body->withdrawals_halted != 0;
    tl_admin_server_remember(srv, body->command_id, scope, (enum tl_mode)body->mode,
                             body->withdrawals_halted != 0, seq);
    return true;
}

const tl_admin_server_stats *tl_admin_server_get_stats(const tl_admin_server *srv) {
    return &srv->stats;
}

uint32_t tl_admin_server_conn_count(const tl_admin_server *srv) {
    return srv->live_conns;
}

const char *tl_admin_server_path(const tl_admin_server *srv) {
    return srv->path;
}
