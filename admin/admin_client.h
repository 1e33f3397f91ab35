/* admin_client.h: the client side of the engine admin socket, used by tally
 * (the actuator builds on it: retries, backoff, audit).
 *
 * One connection. Connecting never blocks (a full backlog is
 * TL_ADMIN_ERR_WOULD_BLOCK: retry with backoff). Sending queues a whole line
 * or nothing, and tries to write it at once from the caller's buffer, so a
 * halt goes out with no copy when the socket has room. Replies are read
 * without blocking and matched to requests: they come in request order, so
 * each reply answers the oldest pending request, and a reply that carries an
 * id must carry that one.
 *
 * All storage is inside the struct (about 30 KiB): no allocation, ever. Not
 * thread-safe: one control thread owns a client.
 */
#ifndef TL_ADMIN_CLIENT_H
#define TL_ADMIN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/admin_err.h"
#include "admin/admin_key.h"
#include "admin/admin_proto.h"

#define TL_ADMIN_CLIENT_PENDING_MAX 64u
#define TL_ADMIN_CLIENT_OUT_BYTES   (4u * TL_ADMIN_LINE_MAX)

typedef struct tl_admin_client_stats {
    uint64_t lines_sent;  /* lines fully queued */
    uint64_t replies;     /* replies matched to a request */
    uint64_t bad_replies; /* replies that broke the protocol (connection closed) */
    uint64_t disconnects;
} tl_admin_client_stats;

typedef struct tl_admin_client {
    int fd; /* -1: not connected */
    uint32_t in_off, in_len;
    uint32_t out_off, out_len;
    uint32_t pending_head, pending_count;
    uint8_t pending[TL_ADMIN_CLIENT_PENDING_MAX][TL_ID_BYTES];
    tl_admin_client_stats stats;
    char in[TL_ADMIN_LINE_MAX];
    char out[TL_ADMIN_CLIENT_OUT_BYTES];
    char scratch[TL_ADMIN_LINE_MAX]; /* tl_admin_client_send builds here */
} tl_admin_client;

void tl_admin_client_init(tl_admin_client *c);

/* Connects to the server's socket. TL_ADMIN_ERR_WOULD_BLOCK: the server's
 * backlog is full; TL_ADMIN_ERR_PATH_TOO_LONG; TL_ADMIN_ERR_IO (errno kept:
 * ENOENT, ECONNREFUSED when no server is up). Closes a previous connection. */
enum tl_admin_err tl_admin_client_connect(tl_admin_client *c, const char *path);

/* Closes the connection; pending requests are forgotten (the caller resends
 * what it still needs after reconnecting: same id, fresh issued_ns). */
void tl_admin_client_close(tl_admin_client *c);

/* Takes over a socket another thread connected (non-blocking, connected to
 * the engine's admin socket); closes a previous connection. tallyd's control
 * thread connects, its hot loop owns the client. */
void tl_admin_client_adopt(tl_admin_client *c, int fd);
bool tl_admin_client_connected(const tl_admin_client *c);
int tl_admin_client_fd(const tl_admin_client *c);
uint32_t tl_admin_client_pending(const tl_admin_client *c);
/* Bytes queued but not yet written: poll the fd for POLLOUT while true. */
bool tl_admin_client_wants_write(const tl_admin_client *c);

/* Queues one complete line ('\n'-terminated, <= 4096 bytes) for request id.
 * TL_ADMIN_OK: queued (perhaps already written). TL_ADMIN_ERR_WOULD_BLOCK:
 * no room (out-buffer or pending table full), nothing queued.
 * TL_ADMIN_ERR_NOT_CONNECTED, TL_ADMIN_ERR_BAD_REQUEST-class errors for a
 * malformed line (TL_ADMIN_ERR_LINE_TOO_LONG, TL_ADMIN_ERR_EMBEDDED_NEWLINE),
 * TL_ADMIN_ERR_CONN_CLOSED / _IO: the connection broke and was closed. */
enum tl_admin_err tl_admin_client_send_line(tl_admin_client *c, const uint8_t id[TL_ID_BYTES],
                                            const char *line, size_t len);

/* Builds req signed with key (tl_admin_request_build) and sends it. */
enum tl_admin_err tl_admin_client_send(tl_admin_client *c, const tl_admin_request *req,
                                       const tl_admin_key *key);

/* Writes queued bytes. TL_ADMIN_OK: all written; TL_ADMIN_ERR_WOULD_BLOCK:
 * some remain; _CONN_CLOSED / _IO: broke (closed). */
enum tl_admin_err tl_admin_client_flush(tl_admin_client *c);

/* Returns the next reply if one has arrived: TL_ADMIN_OK with *reply and
 * request_id (the id of the request it answers, also for "id":"" replies).
 * TL_ADMIN_ERR_WOULD_BLOCK: none yet. Errors close the connection:
 * TL_ADMIN_ERR_CONN_CLOSED (EOF), _IO, _BAD_REPLY, _REPLY_ID_MISMATCH,
 * _REPLY_UNEXPECTED. */
enum tl_admin_err tl_admin_client_recv(tl_admin_client *c, tl_admin_reply *reply,
                                       uint8_t request_id[TL_ID_BYTES]);

#endif
