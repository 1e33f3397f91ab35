/* admin_client.c: the admin socket client (see admin_client.h).
 *
 * Invariants:
 * - out[out_off, out_len) are bytes of whole lines not yet written; a line
 *   is queued entirely or not at all;
 * - pending[] holds, oldest first, the ids of lines queued and not yet
 *   answered; each line queued adds one, each reply removes one;
 * - in[in_off, in_len) is received data not yet returned as replies.
 */
#include "admin/admin_client.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/assert.h"

void tl_admin_client_init(tl_admin_client *c) {
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static void reset_buffers(tl_admin_client *c) {
    c->in_off = c->in_len = 0;
    c->out_off = c->out_len = 0;
    c->pending_head = c->pending_count = 0;
}

void tl_admin_client_close(tl_admin_client *c) {
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
        c->stats.disconnects++;
    }
    reset_buffers(c);
}

enum tl_admin_err tl_admin_client_connect(tl_admin_client *c, const char *path) {
    tl_admin_client_close(c);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof addr.sun_path)
        return TL_ADMIN_ERR_PATH_TOO_LONG;
    memcpy(addr.sun_path, path, n);
    /* Non-blocking before connect: a Unix socket connects at once or fails
     * with EAGAIN when the listener's backlog is full; never wait here. */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return TL_ADMIN_ERR_IO;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return e == EAGAIN ? TL_ADMIN_ERR_WOULD_BLOCK : TL_ADMIN_ERR_IO;
    }
    c->fd = fd;
    return TL_ADMIN_OK;
}

void tl_admin_client_adopt(tl_admin_client *c, int fd) {
    tl_admin_client_close(c);
    c->fd = fd;
}

bool tl_admin_client_connected(const tl_admin_client *c) {
    return c->fd >= 0;
}

int tl_admin_client_fd(const tl_admin_client *c) {
    return c->fd;
}

uint32_t tl_admin_client_pending(const tl_admin_client *c) {
    return c->pending_count;
}

bool tl_admin_client_wants_write(const tl_admin_client *c) {
    return c->out_off < c->out_len;
}

/* One non-blocking send: >= 0 bytes written (0 = would block), -1 broke. */
static ssize_t send_some(tl_admin_client *c, const char *p, size_t n, enum tl_admin_err *err) {
    for (unsigned tries = 0; tries < 8; tries++) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        *err = (errno == EPIPE || errno == ECONNRESET) ? TL_ADMIN_ERR_CONN_CLOSED : TL_ADMIN_ERR_IO;
        return -1;
    }
    return 0;
}

enum tl_admin_err tl_admin_client_flush(tl_admin_client *c) {
    if (c->fd < 0)
        return TL_ADMIN_ERR_NOT_CONNECTED;
    for (unsigned rounds = 0; c->out_off < c->out_len && rounds < 16; rounds++) {
        enum tl_admin_err err = TL_ADMIN_OK;
        ssize_t w = send_some(c, c->out + c->out_off, c->out_len - c->out_off, &err);
        if (w < 0) {
            int e = errno;
            tl_admin_client_close(c);
            errno = e;
            return err;
        }
        if (w == 0)
            break;
        c->out_off += (uint32_t)w;
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        return TL_ADMIN_OK;
    }
    return TL_ADMIN_ERR_WOULD_BLOCK;
}

enum tl_admin_err tl_admin_client_send_line(tl_admin_client *c, const uint8_t id[TL_ID_BYTES],
                                            const char *line, size_t len) {
    if (c->fd < 0)
        return TL_ADMIN_ERR_NOT_CONNECTED;
    if (len == 0 || len > TL_ADMIN_LINE_MAX)
        return TL_ADMIN_ERR_LINE_TOO_LONG;
    if (line[len - 1] != '\n' || memchr(line, '\n', len - 1) != NULL)
        return TL_ADMIN_ERR_EMBEDDED_NEWLINE;
    if (c->pending_count == TL_ADMIN_CLIENT_PENDING_MAX)
        return TL_ADMIN_ERR_WOULD_BLOCK;
    if (c->out_off > 0 && TL_ADMIN_CLIENT_OUT_BYTES - c->out_len < len) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (TL_ADMIN_CLIENT_OUT_BYTES - c->out_len < len)
        return TL_ADMIN_ERR_WOULD_BLOCK;
    size_t sent = 0;
    if (c->out_off == c->out_len) {
        /* Nothing queued ahead of it: write straight from the caller. */
        enum tl_admin_err err = TL_ADMIN_OK;
        ssize_t w = send_some(c, line, len, &err);
        if (w < 0) {
            int e = errno;
            tl_admin_client_close(c);
            errno = e;
            return err;
        }
        sent = (size_t)w;
        c->out_off = c->out_len = 0;
    }
    memcpy(c->out + c->out_len, line + sent, len - sent);
    c->out_len += (uint32_t)(len - sent);
    uint32_t slot = (c->pending_head + c->pending_count) % TL_ADMIN_CLIENT_PENDING_MAX;
    memcpy(c->pending[slot], id, TL_ID_BYTES);
    c->pending_count++;
    c->stats.lines_sent++;
    if (c->out_off < c->out_len) {
        enum tl_admin_err err = tl_admin_client_flush(c);
        if (err != TL_ADMIN_OK && err != TL_ADMIN_ERR_WOULD_BLOCK)
            return err;
    }
    return TL_ADMIN_OK;
}

enum tl_admin_err tl_admin_client_send(tl_admin_client *c, const tl_admin_request *req,
                                       const tl_admin_key *key) {
    if (c->fd < 0)
        return TL_ADMIN_ERR_NOT_CONNECTED;
    size_t len = 0;
    enum tl_admin_err err = tl_admin_request_build(req, key, c->scratch, sizeof c->scratch, &len);
    if (err != TL_ADMIN_OK)
        return err;
    return tl_admin_client_send_line(c, req->id, c->scratch, len);
}

/* Takes one complete line from in[], if there is one. */
static enum tl_admin_err take_reply(tl_admin_client *c, tl_admin_reply *reply,
                                    uint8_t request_id[TL_ID_BYTES], bool *got) {
    *got = false;
    if (c->in_off == c->in_len)
        return TL_ADMIN_OK;
    const char *start = c->in + c->in_off;
    const char *nl = memchr(start, '\n', c->in_len - c->in_off);
    if (nl == NULL) {
        if (c->in_len - c->in_off == TL_ADMIN_LINE_MAX)
            return TL_ADMIN_ERR_BAD_REPLY; /* longer than any line may be */
        return TL_ADMIN_OK;
    }
    size_t len = (size_t)(nl - start);
    enum tl_admin_err err = tl_admin_reply_parse(start, len, reply);
    c->in_off += (uint32_t)len + 1;
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    if (err != TL_ADMIN_OK)
        return err;
    if (c->pending_count == 0)
        return TL_ADMIN_ERR_REPLY_UNEXPECTED;
    const uint8_t *want = c->pending[c->pending_head];
    if (reply->id_present && memcmp(reply->id, want, TL_ID_BYTES) != 0)
        return TL_ADMIN_ERR_REPLY_ID_MISMATCH;
    memcpy(request_id, want, TL_ID_BYTES);
    c->pending_head = (c->pending_head + 1) % TL_ADMIN_CLIENT_PENDING_MAX;
    c->pending_count--;
    c->stats.replies++;
    *got = true;
    return TL_ADMIN_OK;
}

static enum tl_admin_err fail_closed(tl_admin_client *c, enum tl_admin_err err) {
    int e = errno;
    if (err == TL_ADMIN_ERR_BAD_REPLY || err == TL_ADMIN_ERR_REPLY_ID_MISMATCH ||
        err == TL_ADMIN_ERR_REPLY_UNEXPECTED)
        c->stats.bad_replies++;
    tl_admin_client_close(c);
    errno = e;
    return err;
}

enum tl_admin_err tl_admin_client_recv(tl_admin_client *c, tl_admin_reply *reply,
                                       uint8_t request_id[TL_ID_BYTES]) {
    if (c->fd < 0)
        return TL_ADMIN_ERR_NOT_CONNECTED;
    bool got = false;
    enum tl_admin_err err = take_reply(c, reply, request_id, &got);
    if (err != TL_ADMIN_OK)
        return fail_closed(c, err);
    if (got)
        return TL_ADMIN_OK;
    for (unsigned tries = 0; tries < 8; tries++) {
        if (c->in_off > 0) {
            memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
            c->in_len -= c->in_off;
            c->in_off = 0;
        }
        TL_ASSERT(c->in_len < TL_ADMIN_LINE_MAX); /* take_reply refused a full buffer */
        ssize_t r = recv(c->fd, c->in + c->in_len, TL_ADMIN_LINE_MAX - c->in_len, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return TL_ADMIN_ERR_WOULD_BLOCK;
        if (r < 0)
            return fail_closed(c, errno == ECONNRESET ? TL_ADMIN_ERR_CONN_CLOSED : TL_ADMIN_ERR_IO);
        if (r == 0)
            return fail_closed(c, TL_ADMIN_ERR_CONN_CLOSED);
        c->in_len += (uint32_t)r;
        err = take_reply(c, reply, request_id, &got);
        if (err != TL_ADMIN_OK)
            return fail_closed(c, err);
        if (got)
            return TL_ADMIN_OK;
    }
    return TL_ADMIN_ERR_WOULD_BLOCK;
}
