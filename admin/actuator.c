/* actuator.c: see actuator.h. */
#include "actuator.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/assert.h"

void tl_actuator_init(tl_actuator *x, const char *socket_path, const tl_admin_key *sidecar,
                      const tl_admin_key *operator_key) {
    memset(x, 0, sizeof *x);
    tl_admin_client_init(&x->client);
    x->sidecar = *sidecar;
    if (operator_key != NULL) {
        x->operator_key = *operator_key;
        x->has_operator = true;
    }
    atomic_init(&x->handoff_fd, -1);
    atomic_init(&x->want_connect, true);
    atomic_init(&x->connects, 0);
    atomic_init(&x->connect_errors, 0);
    TL_ASSERT(strlen(socket_path) < sizeof x->path);
    strcpy(x->path, socket_path);
    x->backoff_ms = 1;
}

bool tl_actuator_request(const tl_action *a, uint64_t issued_ns, tl_admin_request *req) {
    memset(req, 0, sizeof *req);
    memcpy(req->id, a->id, TL_ID_BYTES);
    switch (a->cmd) {
        case TL_CMD_SET_SYMBOL_MODE:
            req->cmd = TL_ADMIN_CMD_SET_SYMBOL_MODE;
            req->mode = a->mode;
            break;
        case TL_CMD_CANCEL_ALL:
            req->cmd = TL_ADMIN_CMD_CANCEL_ALL;
            break;
        case TL_CMD_WITHDRAWALS_HALT:
            req->cmd = TL_ADMIN_CMD_WITHDRAWALS_HALT;
            req->on = a->on != 0;
            break;
        case TL_CMD_PING:
            req->cmd = TL_ADMIN_CMD_PING;
            break;
        default:
            return false;
    }
    req->key = a->key == TL_KEY_OPERATOR ? TL_ADMIN_KEY_OPERATOR : TL_ADMIN_KEY_SIDECAR;
    if (a->from_mode != TL_FROM_MODE_NONE) {
        req->has_from_mode = true;
        req->from_mode = a->from_mode;
    }
    if (req->cmd == TL_ADMIN_CMD_SET_SYMBOL_MODE || req->cmd == TL_ADMIN_CMD_CANCEL_ALL) {
        if (!tl_admin_request_set_symbol(req, a->symbol_name, strlen(a->symbol_name)))
            return false;
    }
    if (!tl_admin_request_set_reason(req, a->reason, strlen(a->reason)) ||
        !tl_admin_request_set_ticket(req, a->ticket, strlen(a->ticket)))
        return false;
    req->issued_ns = issued_ns;
    req->fence = a->fence;
    return true;
}

static void adopt(tl_actuator *x) {
    /* acquire: the control thread's connect() happened before its release
     * store of the fd; we take the socket as it left it. */
    int fd = atomic_exchange_explicit(&x->handoff_fd, -1, memory_order_acquire);
    if (fd >= 0)
        tl_admin_client_adopt(&x->client, fd);
}

static void broke(tl_actuator *x) {
    tl_admin_client_close(&x->client);
    /* release: nothing to publish but the request itself; the control
     * thread reads it with acquire to pair, for symmetry. */
    atomic_store_explicit(&x->want_connect, true, memory_order_release);
}

int tl_actuator_send(void *ctx, const tl_action *a, uint64_t now_real_ns) {
    tl_actuator *x = ctx;
    adopt(x);
    if (!tl_admin_client_connected(&x->client)) {
        x->send_failures++;
        return -1;
    }
    tl_admin_request req;
    if (!tl_actuator_request(a, now_real_ns, &req)) {
        x->send_failures++;
        return -1;
    }
    const tl_admin_key *key = a->key == TL_KEY_OPERATOR ? &x->operator_key : &x->sidecar;
    if (a->key == TL_KEY_OPERATOR && !x->has_operator) {
        x->send_failures++;
        return -1;
    }
    enum tl_admin_err e = tl_admin_client_send(&x->client, &req, key);
    if (e == TL_ADMIN_OK) {
        x->sends++;
        return 0;
    }
    x->send_failures++;
    if (e == TL_ADMIN_ERR_CONN_CLOSED || e == TL_ADMIN_ERR_IO || e == TL_ADMIN_ERR_NOT_CONNECTED)
        broke(x);
    return -1;
}

bool tl_actuator_reply(void *ctx, tl_cmd_reply *r) {
    tl_actuator *x = ctx;
    adopt(x);
    if (!tl_admin_client_connected(&x->client))
        return false;
    if (tl_admin_client_wants_write(&x->client)) {
        enum tl_admin_err fe = tl_admin_client_flush(&x->client);
        if (fe != TL_ADMIN_OK && fe != TL_ADMIN_ERR_WOULD_BLOCK) {
            broke(x);
            return false;
        }
    }
    tl_admin_reply rep;
    uint8_t id[TL_ID_BYTES];
    enum tl_admin_err e = tl_admin_client_recv(&x->client, &rep, id);
    if (e == TL_ADMIN_ERR_WOULD_BLOCK)
        return false;
    if (e != TL_ADMIN_OK) {
        broke(x);
        return false;
    }
    x->replies++;
    memset(r, 0, sizeof *r);
    memcpy(r->id, id, TL_ID_BYTES);
    r->ok = rep.ok;
    r->duplicate = rep.duplicate;
    r->error = (uint16_t)rep.error;
    r->definitive = !rep.ok && tl_admin_wire_definitive(rep.error);
    r->applied_seq = rep.has_applied_seq ? rep.applied_seq : 0;
    return true;
}

void tl_actuator_control_tick(tl_actuator *x, uint64_t now_mono_ns) {
    /* acquire: pairs with the loop's release in broke(). */
    if (!atomic_load_explicit(&x->want_connect, memory_order_acquire))
        return;
    if (atomic_load_explicit(&x->handoff_fd, memory_order_relaxed) >= 0)
        return; /* the loop has not taken the last one yet */
    if (now_mono_ns < x->next_try_ns)
        return;
    tl_admin_client tmp;
    tl_admin_client_init(&tmp);
    enum tl_admin_err e = tl_admin_client_connect(&tmp, x->path);
    if (e != TL_ADMIN_OK) {
        atomic_fetch_add_explicit(&x->connect_errors, 1, memory_order_relaxed);
        x->next_try_ns = now_mono_ns + x->backoff_ms * 1000000ull;
        x->backoff_ms = x->backoff_ms * 2 > 250 ? 250 : x->backoff_ms * 2;
        return;
    }
    x->backoff_ms = 1;
    atomic_store_explicit(&x->want_connect, false, memory_order_relaxed);
    atomic_fetch_add_explicit(&x->connects, 1, memory_order_relaxed);
    /* release: the connected socket is complete before the loop adopts it. */
    atomic_store_explicit(&x->handoff_fd, tl_admin_client_fd(&tmp), memory_order_release);
}

void tl_actuator_warm(tl_actuator *x, uint64_t now_real_ns, bool ping) {
    adopt(x);
    tl_action a;
    memset(&a, 0, sizeof a);
    memset(a.id, 0x5a, sizeof a.id);
    a.cmd = TL_CMD_SET_SYMBOL_MODE;
    a.mode = TL_MODE_HARD_HALT;
    a.from_mode = TL_FROM_MODE_NONE;
    strcpy(a.symbol_name, "*");
    strcpy(a.reason, "split_brain:fork seq=18446744073709551615");
    strcpy(a.ticket, "INC-20261122-0001");
    tl_admin_request req;
    if (!tl_actuator_request(&a, now_real_ns, &req))
        return;
    size_t len = 0;
    (void)tl_admin_request_build(&req, &x->sidecar, x->warm_line, sizeof x->warm_line, &len);
    if (!ping || !tl_admin_client_connected(&x->client))
        return;
    /* A ping keeps the kernel's send path and the engine's read path warm;
     * its reply matches no action and is dropped. */
    memset(&req, 0, sizeof req);
    uint64_t n = ++x->pings;
    memcpy(req.id, "tallyping", 9);
    memcpy(req.id + 8, &n, 8);
    req.cmd = TL_ADMIN_CMD_PING;
    req.key = TL_ADMIN_KEY_SIDECAR;
    req.issued_ns = now_real_ns;
    enum tl_admin_err e = tl_admin_client_send(&x->client, &req, &x->sidecar);
    if (e == TL_ADMIN_ERR_CONN_CLOSED || e == TL_ADMIN_ERR_IO)
        broke(x);
}
