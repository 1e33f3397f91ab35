/* admin_err.h: every way an engine admin exchange can fail, by name.
 *
 * Two levels:
 * - enum tl_admin_err: the detailed reason (stable snake_case names, one
 *   counter each on the server). Never sent on the wire as such.
 * - enum tl_admin_wire: the error a reply line carries (engine-admin.md
 *   "Reply"), which each detailed reason maps to. Local failures (I/O, key
 *   files, a full buffer) have no wire error.
 *
 * The order of the protocol errors is the order of the checks in
 * engine-admin.md: bad_request, bad_mac, duplicate, stale_command, forbidden,
 * precondition_failed, unknown_symbol.
 */
#ifndef TL_ADMIN_ERR_H
#define TL_ADMIN_ERR_H

#include <stdbool.h>
#include <stddef.h>

enum tl_admin_wire {
    TL_ADMIN_WIRE_NONE = 0, /* not a protocol error (ok, or a local failure) */
    TL_ADMIN_WIRE_BAD_REQUEST,
    TL_ADMIN_WIRE_BAD_MAC,
    TL_ADMIN_WIRE_STALE_COMMAND,
    TL_ADMIN_WIRE_FORBIDDEN,
    TL_ADMIN_WIRE_PRECONDITION_FAILED,
    TL_ADMIN_WIRE_UNKNOWN_SYMBOL,
    /* Not in engine-admin.md: the engine could not apply an otherwise valid
     * command (its log write failed). Not definitive: a retry may succeed. */
    TL_ADMIN_WIRE_ENGINE_ERROR,
    /* Never on the wire: the loop's FAILED for a command the log never
     * showed applied (xwal1 has no command id; TL_LOOP_ERR_NEVER_APPLIED). */
    TL_ADMIN_WIRE_NEVER_APPLIED,
    /* Client side only: an error name this client does not know. */
    TL_ADMIN_WIRE_UNKNOWN,
    TL_ADMIN_WIRE_COUNT,
};

enum tl_admin_err {
    TL_ADMIN_OK = 0,

    /* -> bad_request: framing */
    TL_ADMIN_ERR_LINE_TOO_LONG, /* more than 4096 bytes including the \n */
    TL_ADMIN_ERR_CARRIAGE_RETURN,
    TL_ADMIN_ERR_EMBEDDED_NEWLINE, /* a \n inside what was given as one line */
    /* -> bad_request: JSON */
    TL_ADMIN_ERR_NOT_JSON,         /* not one flat JSON object */
    TL_ADMIN_ERR_BAD_UTF8,         /* a string that is not valid UTF-8 (raw or \u escapes) */
    TL_ADMIN_ERR_TOO_MANY_MEMBERS, /* more members than the protocol has */
    TL_ADMIN_ERR_UNKNOWN_MEMBER,
    TL_ADMIN_ERR_DUPLICATE_MEMBER,
    TL_ADMIN_ERR_MEMBER_ORDER, /* members not in the order of the table */
    TL_ADMIN_ERR_WRONG_TYPE,
    TL_ADMIN_ERR_MISSING_MEMBER,
    TL_ADMIN_ERR_UNEXPECTED_MEMBER, /* a member the command does not use */
    /* -> bad_request: values */
    TL_ADMIN_ERR_BAD_VERSION, /* v is not 1 */
    TL_ADMIN_ERR_BAD_ID,      /* id is not 32 lowercase hex */
    TL_ADMIN_ERR_RESERVED_ID, /* 00 x 16 or ff x 16 */
    TL_ADMIN_ERR_UNKNOWN_CMD,
    TL_ADMIN_ERR_BAD_SYMBOL, /* not [A-Za-z0-9._-]{1,24} nor "*" */
    TL_ADMIN_ERR_UNKNOWN_MODE,
    TL_ADMIN_ERR_BAD_REASON, /* over 256 bytes, or contains U+0000 */
    TL_ADMIN_ERR_BAD_TICKET, /* over 64 bytes, or contains U+0000 */
    TL_ADMIN_ERR_BAD_NUMBER, /* issued_ns / fence: not a canonical u64 decimal string */
    TL_ADMIN_ERR_UNKNOWN_KEY,
    TL_ADMIN_ERR_BAD_MAC_FORMAT, /* mac is not 64 lowercase hex */
    TL_ADMIN_ERR_BAD_SUFFIX,     /* the last 74 bytes are not ,"mac":"<64 hex>"} */
    TL_ADMIN_ERR_ID_REUSED,      /* a known id with different signed bytes */

    /* -> bad_mac */
    TL_ADMIN_ERR_BAD_MAC,
    TL_ADMIN_ERR_KEY_NOT_CONFIGURED, /* "operator" but the engine has no operator key */

    /* -> stale_command, forbidden, precondition_failed, unknown_symbol */
    TL_ADMIN_ERR_STALE_COMMAND,
    TL_ADMIN_ERR_FORBIDDEN,
    TL_ADMIN_ERR_PRECONDITION_FAILED, /* from_mode differs from the mode in force */
    TL_ADMIN_ERR_FROM_MODE_REQUIRED,  /* an operator relaxation without from_mode */
    TL_ADMIN_ERR_UNKNOWN_SYMBOL,

    /* -> engine_error */
    TL_ADMIN_ERR_ENGINE,

    /* local: no wire error */
    TL_ADMIN_ERR_BUFFER_TOO_SMALL,
    TL_ADMIN_ERR_BAD_REPLY,         /* a reply line that breaks the protocol */
    TL_ADMIN_ERR_REPLY_ID_MISMATCH, /* a reply for another request than the oldest pending */
    TL_ADMIN_ERR_REPLY_UNEXPECTED,  /* a reply while nothing is pending */
    TL_ADMIN_ERR_WOULD_BLOCK,       /* client queue or out-buffer full: try again later */
    TL_ADMIN_ERR_NOT_CONNECTED,
    TL_ADMIN_ERR_CONN_CLOSED,   /* the peer closed the connection */
    TL_ADMIN_ERR_IO,            /* a socket call failed (errno kept by the caller) */
    TL_ADMIN_ERR_PATH_TOO_LONG, /* socket path does not fit sun_path */
    TL_ADMIN_ERR_ADDR_IN_USE,   /* another server listens on the path, or it is no socket */
    TL_ADMIN_ERR_BAD_CONFIG,
    TL_ADMIN_ERR_KEY_OPEN,
    TL_ADMIN_ERR_KEY_NOT_REGULAR,
    TL_ADMIN_ERR_KEY_PERMISSIONS, /* group or other bits set: must be 0600 or 0400 */
    TL_ADMIN_ERR_KEY_SIZE,        /* not exactly 32 bytes */
    TL_ADMIN_ERR_KEY_READ,

    TL_ADMIN_ERR_COUNT,
};

/* Stable snake_case name ("bad_suffix", "key_permissions", ...). */
const char *tl_admin_err_name(enum tl_admin_err e);

/* The wire error a detailed reason is reported as (TL_ADMIN_WIRE_NONE for
 * TL_ADMIN_OK and for local failures). */
enum tl_admin_wire tl_admin_err_wire(enum tl_admin_err e);

/* "bad_request", "bad_mac", ... ("" for NONE, "unknown" for UNKNOWN). */
const char *tl_admin_wire_name(enum tl_admin_wire w);

/* Parses a wire error name; TL_ADMIN_WIRE_UNKNOWN if it is none of ours. */
enum tl_admin_wire tl_admin_wire_parse(const char *s, size_t n);

/* behavior.md: forbidden, unknown_symbol, bad_request and
 * precondition_failed are definitive: the same command will never succeed,
 * so a sender stops retrying it. */
bool tl_admin_wire_definitive(enum tl_admin_wire w);

#endif
