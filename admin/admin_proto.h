/* admin_proto.h: the engine admin protocol's lines (engine-admin.md).
 *
 * One signed JSON request per line, one JSON reply per line. This file builds
 * and parses both, byte for byte as the spec writes them:
 * - the request builder writes the members in the table's order, with no
 *   whitespace outside strings, and appends ,"mac":"<64 hex>"} where the mac
 *   is HMAC-SHA256 over the line minus those 74 bytes, followed by "}";
 * - the request parser runs the bad_request checks (step 1 of the reply
 *   rules) and nothing else; the mac (step 2) is tl_admin_request_verify_mac;
 *   steps 3-7 need engine state and live in engine_server.c;
 * - the reply builder and parser serve the engine and tally respectively.
 *
 * Nothing here allocates, reads a clock or does I/O. Lines are given without
 * their terminating '\n' to the parsers; the builders write it.
 */
#ifndef TL_ADMIN_PROTO_H
#define TL_ADMIN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/admin_err.h"
#include "admin/admin_key.h"
#include "core/record.h"

#define TL_ADMIN_LINE_MAX    4096u         /* bytes, including the '\n' */
#define TL_ADMIN_REASON_MAX  256u          /* bytes of UTF-8 */
#define TL_ADMIN_TICKET_MAX  64u           /* bytes of UTF-8 */
#define TL_ADMIN_MAC_SUFFIX  74u           /* ,"mac":"<64 hex>"} */
#define TL_ADMIN_STALE_NS    5000000000ull /* |issued_ns - engine clock| allowed */
#define TL_ADMIN_REPLY_MAX   512u          /* no reply line is longer (asserted) */
#define TL_ADMIN_MEMBERS_MAX 16u           /* members a line may hold before it is refused */

enum tl_admin_cmd {
    TL_ADMIN_CMD_NONE = 0, /* not read (the line did not parse) */
    TL_ADMIN_CMD_SET_SYMBOL_MODE,
    TL_ADMIN_CMD_CANCEL_ALL,
    TL_ADMIN_CMD_WITHDRAWALS_HALT,
    TL_ADMIN_CMD_PING,
    TL_ADMIN_CMD_COUNT,
};

enum tl_admin_key_id {
    TL_ADMIN_KEY_NONE = 0,
    TL_ADMIN_KEY_SIDECAR,
    TL_ADMIN_KEY_OPERATOR,
};

const char *tl_admin_cmd_name(enum tl_admin_cmd c);       /* "set_symbol_mode", ... "" */
const char *tl_admin_key_id_name(enum tl_admin_key_id k); /* "sidecar", "operator", "" */

/* One request, decoded. v is always 1 in this version. Strings are stored
 * inline (not NUL-terminated by contract; a NUL is kept after each for
 * convenience), so a request can be copied, kept and re-signed by a retry. */
typedef struct tl_admin_request {
    uint8_t id[TL_ID_BYTES];
    enum tl_admin_cmd cmd;
    enum tl_admin_key_id key;
    uint8_t mode;      /* enum tl_mode: set_symbol_mode */
    uint8_t from_mode; /* enum tl_mode, when has_from_mode */
    bool has_from_mode;
    bool on; /* withdrawals_halt */
    uint8_t symbol_len;
    uint16_t reason_len;
    uint8_t ticket_len;
    char symbol[TL_SYMBOL_NAME_MAX + 1]; /* name or "*": set_symbol_mode, cancel_all */
    char reason[TL_ADMIN_REASON_MAX + 1];
    char ticket[TL_ADMIN_TICKET_MAX + 1];
    uint64_t issued_ns;
    uint64_t fence;
} tl_admin_request;

/* Where the parser found things in the line, for the server's checks. */
typedef struct tl_admin_line_info {
    bool id_readable;       /* req->id holds the line's id (echo it in an error reply) */
    uint32_t issued_ns_off; /* the digits of issued_ns: [off, off + len) */
    uint32_t issued_ns_len;
    uint32_t signed_len; /* bytes of the line before the mac suffix */
    uint8_t mac[TL_ADMIN_MAC_BYTES];
} tl_admin_line_info;

/* Sets a request's symbol ("*" or a name) and texts; false if they do not fit
 * (the builder validates the contents). */
bool tl_admin_request_set_symbol(tl_admin_request *req, const char *s, size_t n);
bool tl_admin_request_set_reason(tl_admin_request *req, const char *s, size_t n);
bool tl_admin_request_set_ticket(tl_admin_request *req, const char *s, size_t n);

/* Builds the signed line for req, '\n' included, into buf. key signs it;
 * req->key names it in the line. Returns TL_ADMIN_OK and *len_out, or a
 * named error for a field outside the protocol (reserved id, bad symbol,
 * reason not UTF-8, ...) or TL_ADMIN_ERR_BUFFER_TOO_SMALL (the line needs
 * more than min(cap, 4096) bytes). No allocation. */
enum tl_admin_err tl_admin_request_build(const tl_admin_request *req, const tl_admin_key *key,
                                         char *buf, size_t cap, size_t *len_out);

/* Step 1 (bad_request) on one line without its '\n'. On TL_ADMIN_OK, *req is
 * the request and *info says where its parts are. On error, info->id_readable
 * says whether req->id may be echoed. Checks, in order: length, \r and \n,
 * JSON shape (one flat object), member names, duplicates, order, value types
 * and values, the members the command needs and allows, the mac suffix. */
enum tl_admin_err tl_admin_request_parse(const char *line, size_t len, tl_admin_request *req,
                                         tl_admin_line_info *info);

/* Step 2: the mac of a parsed line, compared in constant time. */
enum tl_admin_err tl_admin_request_verify_mac(const char *line, const tl_admin_line_info *info,
                                              const tl_admin_key *key);

/* Hash of the signed bytes with the issued_ns digits left out (the retry
 * rule: a resend may change only issued_ns and mac). Truncated SHA-256. */
#define TL_ADMIN_DIGEST_BYTES 16u
void tl_admin_request_digest(const char *line, const tl_admin_line_info *info,
                             uint8_t digest[TL_ADMIN_DIGEST_BYTES]);

/* ---- replies ---- */

typedef struct tl_admin_reply {
    uint8_t id[TL_ID_BYTES];
    bool id_present; /* false: "id":"" (the request's id could not be read) */
    bool ok;
    bool duplicate;
    bool on;              /* withdrawals_halt: the state in force */
    bool has_applied_seq; /* every ok reply but ping's */
    uint8_t mode;         /* set_symbol_mode, cancel_all: the scope's mode in force */
    uint8_t symbol_len;
    enum tl_admin_wire error; /* when !ok */
    enum tl_admin_cmd cmd;    /* when ok */
    char symbol[TL_SYMBOL_NAME_MAX + 1];
    uint64_t applied_seq; /* seq of the MODE_CHANGE the command wrote */
} tl_admin_reply;

/* Writes the reply line, '\n' included. Shapes:
 *   {"v":1,"id":"<id>","ok":false,"error":"<wire error>"}
 *   {"v":1,"id":"<id>","ok":true,"cmd":"set_symbol_mode","symbol":"S","mode":"M","applied_seq":"N","duplicate":false}
 *   {"v":1,"id":"<id>","ok":true,"cmd":"cancel_all","symbol":"S","mode":"M","applied_seq":"N","duplicate":false}
 *   {"v":1,"id":"<id>","ok":true,"cmd":"withdrawals_halt","on":true,"applied_seq":"N","duplicate":false}
 *   {"v":1,"id":"<id>","ok":true,"cmd":"ping","duplicate":false}
 * Returns the length, or 0 if cap is too small. */
size_t tl_admin_reply_build(const tl_admin_reply *r, char *buf, size_t cap);

/* Parses a reply line without its '\n'. Unknown members are ignored (an
 * engine may add some); duplicates, wrong types and missing members are
 * TL_ADMIN_ERR_BAD_REPLY. */
enum tl_admin_err tl_admin_reply_parse(const char *line, size_t len, tl_admin_reply *r);

/* ---- small pieces, public for the tests and the fuzz target ---- */

/* A canonical u64 decimal: 1..20 digits, no sign, no leading zero unless the
 * value is 0, no overflow. */
bool tl_admin_parse_u64(const char *s, size_t n, uint64_t *out);
/* Writes v in decimal; returns the digit count (<= 20). */
size_t tl_admin_format_u64(uint64_t v, char out[20]);
/* 32 lowercase hex <-> 16 bytes. */
bool tl_admin_parse_id(const char *s, size_t n, uint8_t id[TL_ID_BYTES]);
void tl_admin_format_id(const uint8_t id[TL_ID_BYTES], char out[32]);

#endif
