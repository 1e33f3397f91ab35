/* api.c: the control API's listeners and request plumbing (see api.h).
 *
 * Two MHD daemons in external mode, driven by tl_api_pass: one on the Unix
 * socket we bind ourselves (so it is mode 0600 before anyone can connect:
 * bind, chmod, then listen), one on control.listen. A request's life:
 *   first call    a slot from a fixed pool; Content-Length above the limit
 *                 is answered 413 at once (MHD then skips the body)
 *   body calls    copied into the slot, up to TL_API_BODY_MAX (then 413)
 *   last call     routed (api_handlers.c); a handler that must wait for the
 *                 hot loop suspends the connection with a deadline
 *   resumed       answered from what the event (or the deadline) left
 *   completed     the slot goes back to the pool
 */
#include "log.h"
#include "api_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/assert.h"

/* ---- ids and the ctl queue ---- */

void api_mint_id(struct tl_api *a, uint8_t id[TL_ID_BYTES]) {
    tl_action_id_mint(&a->rng, a->deps.tag_seed, id);
}

bool api_ctl_push(struct tl_api *a, const tl_ctl_msg *m) {
    if (tl_spsc_push(a->deps.ctl, m))
        return true;
    a->ctl_full_total++;
    return false;
}

/* ---- slots and waits ---- */

static api_req *slot_get(struct tl_api *a) {
    for (uint32_t i = 0; i < TL_API_SLOTS; i++) {
        if (!a->slots[i].used) {
            api_req *r = &a->slots[i];
            r->used = true;
            r->tcp = false;
            r->too_large = false;
            r->suspended = false;
            r->ready = false;
            r->timed_out = false;
            r->wait = API_WAIT_NONE;
            r->body_len = 0;
            r->conn = NULL;
            return r;
        }
    }
    return NULL;
}

static void wake(api_req *r, bool timed_out) {
    TL_ASSERT(r->used && r->suspended);
    r->ready = true;
    r->timed_out = timed_out;
    r->suspended = false;
    MHD_resume_connection(r->conn);
}

void api_wake_policy(struct tl_api *a, uint64_t acked_token) {
    for (uint32_t i = 0; i < TL_API_SLOTS; i++) {
        api_req *r = &a->slots[i];
        if (r->used && r->suspended && r->wait == API_WAIT_POLICY && r->token <= acked_token)
            wake(r, false);
    }
}

void api_wake_action(struct tl_api *a, const uint8_t id[TL_ID_BYTES]) {
    for (uint32_t i = 0; i < TL_API_SLOTS; i++) {
        api_req *r = &a->slots[i];
        if (r->used && r->suspended && r->wait == API_WAIT_ACTION &&
            memcmp(r->id, id, TL_ID_BYTES) == 0)
            wake(r, false);
    }
}

static void wake_expired(struct tl_api *a, uint64_t now_ns, bool all) {
    for (uint32_t i = 0; i < TL_API_SLOTS; i++) {
        api_req *r = &a->slots[i];
        if (r->used && r->suspended && (all || now_ns >= r->deadline_ns))
            wake(r, true);
    }
}

/* ---- MHD callbacks ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    (void)version;
    api_listener *l = cls;
    struct tl_api *a = l->api;
    api_req *r = *con_cls;
    api_ctx x = {a, r, conn, method, url};
    if (r == NULL) {
        r = slot_get(a);
        x.r = r;
        if (r == NULL) {
            /* Bounded by the connection limits: cannot happen. Stay polite. */
            return api_send_error(&x, 503, "busy", "too many requests in progress");
        }
        r->tcp = l->tcp;
        r->conn = conn;
        *con_cls = r;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl != NULL && strtoull(cl, NULL, 10) > TL_API_BODY_MAX) {
            r->too_large = true;
            return api_send_error(&x, 413, "body_too_large",
                                  "request bodies are limited to %u bytes", TL_API_BODY_MAX);
        }
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        if (!r->too_large && r->body_len + n <= TL_API_BODY_MAX) {
            memcpy(r->body + r->body_len, upload_data, n);
            r->body_len += (uint32_t)n;
        } else {
            r->too_large = true; /* keep reading (chunked bodies): answer at the end */
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->suspended)
        return MHD_YES; /* cannot happen: MHD does not call a suspended request */
    if (r->too_large)
        return api_send_error(&x, 413, "body_too_large", "request bodies are limited to %u bytes",
                              TL_API_BODY_MAX);
    return api_route(&x);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    api_req *r = *con_cls;
    if (r != NULL) {
        r->used = false;
        r->suspended = false;
        *con_cls = NULL;
    }
}

/* ---- listeners ---- */

static int bind_unix(const char *path, char *err, size_t cap) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, cap, "control.socket %s: path too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    /* The parent directory (e.g. /run/tally) may not exist yet. */
    char dir[sizeof sa.sun_path];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            snprintf(err, cap, "control.socket: %s: %s", dir, strerror(errno));
            return -1;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, cap, "control.socket: socket: %s", strerror(errno));
        return -1;
    }
    /* A socket file left by a dead tallyd is removed; one somebody serves is not. */
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, cap, "control.socket %s exists and is not a socket", path);
            close(fd);
            return -1;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (probe >= 0)
            close(probe);
        if (live) {
            snprintf(err, cap, "control.socket %s: another process serves it", path);
            close(fd);
            return -1;
        }
        (void)unlink(path);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || chmod(path, 0600) != 0 ||
        listen(fd, 64) != 0) {
        snprintf(err, cap, "control.socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* "host:port" or "[v6]:port"; port 0 takes any. */
static int bind_tcp(const char *listen_at, uint16_t *port_out, char *err, size_t cap) {
    char host[256];
    const char *port;
    if (listen_at[0] == '[') {
        const char *end = strchr(listen_at, ']');
        if (end == NULL || end[1] != ':' || (size_t)(end - listen_at - 1) >= sizeof host) {
            snprintf(err, cap, "control.listen: expected host:port or [v6]:port, got \"%s\"",
                     listen_at);
            return -1;
        }
        memcpy(host, listen_at + 1, (size_t)(end - listen_at - 1));
        host[end - listen_at - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(listen_at, ':');
        if (colon == NULL || (size_t)(colon - listen_at) >= sizeof host) {
            snprintf(err, cap, "control.listen: expected host:port, got \"%s\"", listen_at);
            return -1;
        }
        memcpy(host, listen_at, (size_t)(colon - listen_at));
        host[colon - listen_at] = '\0';
        port = colon + 1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, cap, "control.listen \"%s\": %s", listen_at, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        snprintf(err, cap, "control.listen \"%s\": %s", listen_at, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    *port_out = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *port_out = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

static int start_mhd(api_listener *l, char *err, size_t cap) {
    /* External mode (no MHD thread): MHD_run on the control thread. No
     * MHD_USE_ERROR_LOG: a client that hangs up is not news for the
     * operator's log; failures to start are reported here. */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    if (l->tcp)
        l->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, l, MHD_OPTION_LISTEN_SOCKET,
                                  l->fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)TL_API_CONNS,
                                  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)(TL_API_CONNS / 2),
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)TL_API_TIMEOUT_S,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, l, MHD_OPTION_END);
    else
        l->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, l, MHD_OPTION_LISTEN_SOCKET,
                                  l->fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)TL_API_CONNS,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)TL_API_TIMEOUT_S,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, l, MHD_OPTION_END);
    if (l->mhd == NULL) {
        snprintf(err, cap, "control api: libmicrohttpd did not start on the %s listener",
                 l->tcp ? "TCP" : "Unix");
        return -1;
    }
    return 0;
}

static int read_token(struct tl_api *a, const char *path, char *err, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, cap, "control.token_file %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, a->token, sizeof a->token - 1);
    close(fd);
    if (n < 0) {
        snprintf(err, cap, "control.token_file %s: %s", path, strerror(errno));
        return -1;
    }
    while (n > 0 && (a->token[n - 1] == '\n' || a->token[n - 1] == '\r' || a->token[n - 1] == ' '))
        n--;
    a->token[n] = '\0';
    if (n < 16) {
        snprintf(err, cap, "control.token_file %s: expected a token of at least 16 bytes", path);
        return -1;
    }
    a->token_len = (size_t)n;
    a->have_token = true;
    return 0;
}

int tl_api_create(tl_api **out, const tl_api_deps *deps, char *err, size_t cap) {
    *out = NULL;
    struct tl_api *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, cap, "control api: out of memory");
        return -1;
    }
    a->deps = *deps;
    a->cfg = deps->cfg;
    a->unix_l = (api_listener){a, false, NULL, -1};
    a->tcp_l = (api_listener){a, true, NULL, -1};
    uint8_t inst[16];
    if (getrandom(inst, sizeof inst, 0) != sizeof inst ||
        getrandom(&a->rng, sizeof a->rng, 0) != sizeof a->rng) {
        snprintf(err, cap, "getrandom: %s", strerror(errno));
        free(a);
        return -1;
    }
    for (int i = 0; i < 16; i++)
        snprintf(a->instance_id + 2 * i, 3, "%02x", inst[i]);
    a->slots = calloc(TL_API_SLOTS, sizeof *a->slots);
    a->resp = malloc(TL_API_RESP_BYTES);
    a->modes_mem = calloc(deps->max_symbols, sizeof *a->modes_mem);
    if (a->slots == NULL || a->resp == NULL || a->modes_mem == NULL ||
        !tl_incidents_init(&a->incidents)) {
        snprintf(err, cap, "control api: out of memory");
        tl_api_destroy(a);
        return -1;
    }
    api_events_init(a);

    const tl_config *c = deps->cfg;
    if (c->control_token_file[0] != '\0' && read_token(a, c->control_token_file, err, cap) != 0) {
        tl_api_destroy(a);
        return -1;
    }
    tl_reconcile_cfg rc = {
        .state_dir = c->state_dir,
        .wal_dir = c->engine_wal_dir,
        .dialect = deps->dialect,
        .instance_id = a->instance_id,
        .window_records = 1u << 16,
        .ledger_configured = c->ledger_url[0] != '\0',
        .peers_configured = c->peer_count > 0,
    };
    if (tl_reconcile_start(&a->reconcile, &rc, err, cap) != 0) {
        tl_api_destroy(a);
        return -1;
    }
    if (c->control_socket[0] != '\0') {
        snprintf(a->socket_path, sizeof a->socket_path, "%s", c->control_socket);
        a->unix_l.fd = bind_unix(c->control_socket, err, cap);
        if (a->unix_l.fd < 0 || start_mhd(&a->unix_l, err, cap) != 0) {
            a->socket_path[0] = '\0';
            tl_api_destroy(a);
            return -1;
        }
    }
    if (c->control_listen[0] != '\0') {
        a->tcp_l.fd = bind_tcp(c->control_listen, &a->tcp_port, err, cap);
        if (a->tcp_l.fd < 0 || start_mhd(&a->tcp_l, err, cap) != 0) {
            tl_api_destroy(a);
            return -1;
        }
    }
    *out = a;
    return 0;
}

static void stop_listener(api_listener *l) {
    if (l->mhd != NULL) {
        MHD_stop_daemon(l->mhd);
        l->mhd = NULL;
    }
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
}

void tl_api_destroy(tl_api *a) {
    if (a == NULL)
        return;
    if (a->slots != NULL) {
        /* MHD wants no suspended connection at stop: answer them now. */
        wake_expired(a, 0, true);
        for (int i = 0; i < 4; i++) {
            if (a->unix_l.mhd != NULL)
                (void)MHD_run(a->unix_l.mhd);
            if (a->tcp_l.mhd != NULL)
                (void)MHD_run(a->tcp_l.mhd);
        }
    }
    stop_listener(&a->unix_l);
    stop_listener(&a->tcp_l);
    if (a->socket_path[0] != '\0')
        (void)unlink(a->socket_path);
    tl_reconcile_stop(a->reconcile);
    tl_incidents_free(&a->incidents);
    free(a->modes_mem);
    free(a->resp);
    free(a->slots);
    free(a);
}

void tl_api_on_out(tl_api *a, const tl_out *o, uint64_t now_mono_ns, uint64_t now_real_ns) {
    a->now_mono_ns = now_mono_ns;
    a->now_real_ns = now_real_ns;
    api_events_on_out(a, o);
}

void tl_api_pass(tl_api *a, uint64_t now_mono_ns, uint64_t now_real_ns) {
    a->now_mono_ns = now_mono_ns;
    a->now_real_ns = now_real_ns;
    api_events_pass(a);
    wake_expired(a, now_mono_ns, false);
    if (a->unix_l.mhd != NULL)
        (void)MHD_run(a->unix_l.mhd);
    if (a->tcp_l.mhd != NULL)
        (void)MHD_run(a->tcp_l.mhd);
}

uint16_t tl_api_tcp_port(const tl_api *a) {
    return a->tcp_port;
}

const char *tl_api_instance_id(const tl_api *a) {
    return a->instance_id;
}
