/* engine_server.h: the admin socket server an engine embeds
 * (engine-admin.md), part of libtally_engine.
 *
 * The library owns the protocol *and* its semantics, so every engine gets
 * them right: parsing and the check order, the mac, idempotency by command
 * id, the stale window, the key rules (the sidecar key only makes things
 * stricter), from_mode preconditions, and the mode table. The engine owns its
 * log: the server never writes records. After validating a command it calls
 * the engine back (tl_admin_engine_ops) to write the MODE_CHANGE that carries
 * the command id, and only when that succeeded does it change the mode table
 * and remember the id.
 *
 * Threading: single-threaded. The engine thread that owns the log calls
 * tl_admin_server_poll() from its loop; callbacks run inside that call.
 *
 * Limits (all allocated by tl_admin_server_create): max_conns connections,
 * each with a 4096-byte line buffer and an 8192-byte reply buffer; a
 * remembered-id table of remembered_ids entries (oldest evicted).
 */
#ifndef TL_ADMIN_ENGINE_SERVER_H
#define TL_ADMIN_ENGINE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/admin_err.h"
#include "admin/admin_key.h"
#include "admin/admin_proto.h"
#include "admin/modes.h"
#include "core/record.h"

#define TL_ADMIN_SERVER_DEFAULT_CONNS 16u
#define TL_ADMIN_SERVER_MAX_CONNS     256u
#define TL_ADMIN_SERVER_DEFAULT_IDS   65536u
#define TL_ADMIN_SERVER_OUT_BYTES     8192u
/* Default: a connection whose replies could not be written for this long
 * (the peer does not read them) is dropped, so a stuck client cannot hold a
 * slot. A client that reads is never near it (it takes ~200 KB of unread
 * replies in the kernel plus the 8 KB buffer to stall at all). */
#define TL_ADMIN_SERVER_DEFAULT_STALL_MS 1000u

typedef struct tl_admin_engine_ops {
    void *ctx;
    /* Required. Append a MODE_CHANGE to the engine's log (header symbol =
     * scope, 0 = global; body mode, withdrawals_halted, command_id) and
     * publish it. Return 0 with the record's seq in *applied_seq, or -1 if
     * it could not be written: the command is then not applied, not
     * remembered, and the sender gets engine_error (it will retry). */
    int (*write_mode_change)(void *ctx, uint32_t scope, enum tl_mode mode, bool withdrawals_halted,
                             const uint8_t command_id[TL_ID_BYTES], uint64_t *applied_seq);
    /* Required. Cancel every resting order in scope (0 = every symbol).
     * Return 0, or -1 (engine_error). The server then writes the
     * MODE_CHANGE through write_mode_change. */
    int (*cancel_all)(void *ctx, uint32_t scope, const uint8_t command_id[TL_ID_BYTES]);
    /* Optional. A complete line arrived. cmd is TL_ADMIN_CMD_NONE and
     * command_id NULL when the line did not parse; arrival_mono_ns is
     * CLOCK_MONOTONIC read right after the recv() that completed the line
     * (before the line is parsed or verified). */
    void (*on_line)(void *ctx, enum tl_admin_cmd cmd, const uint8_t *command_id,
                    uint64_t arrival_mono_ns);
    /* Optional. A reply was queued. req is NULL when the line did not
     * parse; detail is the precise reason (TL_ADMIN_OK for ok replies). */
    void (*on_reply)(void *ctx, const tl_admin_request *req, const tl_admin_reply *reply,
                     enum tl_admin_err detail);
} tl_admin_engine_ops;

typedef struct tl_admin_server_config {
    const char *socket_path;          /* required */
    uint32_t socket_mode;             /* 0: 0600 */
    uint32_t max_conns;               /* 0: 16; at most TL_ADMIN_SERVER_MAX_CONNS */
    uint32_t remembered_ids;          /* 0: 65536 */
    uint32_t stall_timeout_ms;        /* 0: TL_ADMIN_SERVER_DEFAULT_STALL_MS */
    const tl_admin_key *sidecar_key;  /* required; copied */
    const tl_admin_key *operator_key; /* NULL: none (operator lines get bad_mac); copied */
    tl_admin_modes *modes;            /* required; the engine's table, not owned */
    tl_admin_engine_ops ops;
} tl_admin_server_config;

typedef struct tl_admin_server_stats {
    uint64_t lines;      /* complete lines handled, too-long ones included */
    uint64_t applied;    /* commands applied (duplicates and pings excluded) */
    uint64_t duplicates; /* resends answered from the remembered reply */
    uint64_t pings;
    uint64_t rejected[TL_ADMIN_ERR_COUNT]; /* by detailed reason */
    uint64_t conns_accepted;
    uint64_t conns_refused; /* over max_conns: closed at once */
    uint64_t conns_closed;
    uint64_t partial_lines_dropped; /* the peer closed mid-line */
    uint64_t reply_stalls;          /* lines held back: the peer was not reading replies */
    uint64_t conns_stalled;         /* dropped after stall_timeout_ms without progress */
    uint64_t io_errors;
} tl_admin_server_stats;

typedef struct tl_admin_server tl_admin_server;

/* Binds and listens (a stale socket file left by a dead engine is replaced;
 * a live one, or a path that is not a socket, is TL_ADMIN_ERR_ADDR_IN_USE).
 * Returns NULL and *err on failure (errno is kept for TL_ADMIN_ERR_IO). */
tl_admin_server *tl_admin_server_create(const tl_admin_server_config *cfg, enum tl_admin_err *err);
/* Closes every connection and the socket, and removes the socket file if it
 * is still ours. NULL is allowed. */
void tl_admin_server_destroy(tl_admin_server *srv);

/* Never blocks: accepts, reads, answers and flushes what is ready.
 * now_real_ns is the engine's wall clock (CLOCK_REALTIME), which stale
 * commands are judged against. Returns the number of lines handled, or -1 if
 * poll(2) itself failed (counted in io_errors). */
int tl_admin_server_poll(tl_admin_server *srv, uint64_t now_real_ns);

/* Handles one line (without its '\n') exactly as if it had arrived on a
 * connection, and writes the reply line ('\n' included) to reply (cap >=
 * TL_ADMIN_REPLY_MAX). Returns the reply length. For tests and fuzzing. */
size_t tl_admin_server_handle_line(tl_admin_server *srv, const char *line, size_t len,
                                   uint64_t now_real_ns, uint64_t arrival_mono_ns, char *reply,
                                   size_t cap);

/* Restart: the engine replays the MODE_CHANGE records of its log, in order,
 * through this. It sets the scope's mode and the withdrawals flag, and
 * remembers the command id as applied at seq (restatements, ff x 16, and
 * zero ids are state only, never commands). Returns false for an unknown
 * scope or a mode out of range (nothing changed). */
bool tl_admin_server_replay_mode_change(tl_admin_server *srv, uint32_t scope,
                                        const tl_body_mode_change *body, uint64_t seq);

/* Remembers an applied command id without touching the mode table. Returns
 * false for a reserved id, or one already remembered (the first one stays). */
bool tl_admin_server_remember(tl_admin_server *srv, const uint8_t command_id[TL_ID_BYTES],
                              uint32_t scope, enum tl_mode mode, bool withdrawals_halted,
                              uint64_t applied_seq);

const tl_admin_server_stats *tl_admin_server_get_stats(const tl_admin_server *srv);
uint32_t tl_admin_server_conn_count(const tl_admin_server *srv);
const char *tl_admin_server_path(const tl_admin_server *srv);

#endif
