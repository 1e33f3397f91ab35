/* admin_err.c: names of the admin protocol errors (see admin_err.h). */
#include "admin/admin_err.h"

#include <string.h>

static const char *const err_names[TL_ADMIN_ERR_COUNT] = {
    [TL_ADMIN_OK] = "ok",
    [TL_ADMIN_ERR_LINE_TOO_LONG] = "line_too_long",
    [TL_ADMIN_ERR_CARRIAGE_RETURN] = "carriage_return",
    [TL_ADMIN_ERR_EMBEDDED_NEWLINE] = "embedded_newline",
    [TL_ADMIN_ERR_NOT_JSON] = "not_json",
    [TL_ADMIN_ERR_BAD_UTF8] = "bad_utf8",
    [TL_ADMIN_ERR_TOO_MANY_MEMBERS] = "too_many_members",
    [TL_ADMIN_ERR_UNKNOWN_MEMBER] = "unknown_member",
    [TL_ADMIN_ERR_DUPLICATE_MEMBER] = "duplicate_member",
    [TL_ADMIN_ERR_MEMBER_ORDER] = "member_order",
    [TL_ADMIN_ERR_WRONG_TYPE] = "wrong_type",
    [TL_ADMIN_ERR_MISSING_MEMBER] = "missing_member",
    [TL_ADMIN_ERR_UNEXPECTED_MEMBER] = "unexpected_member",
    [TL_ADMIN_ERR_BAD_VERSION] = "bad_version",
    [TL_ADMIN_ERR_BAD_ID] = "bad_id",
    [TL_ADMIN_ERR_RESERVED_ID] = "reserved_id",
    [TL_ADMIN_ERR_UNKNOWN_CMD] = "unknown_cmd",
    [TL_ADMIN_ERR_BAD_SYMBOL] = "bad_symbol",
    [TL_ADMIN_ERR_UNKNOWN_MODE] = "unknown_mode",
    [TL_ADMIN_ERR_BAD_REASON] = "bad_reason",
    [TL_ADMIN_ERR_BAD_TICKET] = "bad_ticket",
    [TL_ADMIN_ERR_BAD_NUMBER] = "bad_number",
    [TL_ADMIN_ERR_UNKNOWN_KEY] = "unknown_key",
    [TL_ADMIN_ERR_BAD_MAC_FORMAT] = "bad_mac_format",
    [TL_ADMIN_ERR_BAD_SUFFIX] = "bad_suffix",
    [TL_ADMIN_ERR_ID_REUSED] = "id_reused",
    [TL_ADMIN_ERR_BAD_MAC] = "bad_mac",
    [TL_ADMIN_ERR_KEY_NOT_CONFIGURED] = "key_not_configured",
    [TL_ADMIN_ERR_STALE_COMMAND] = "stale_command",
    [TL_ADMIN_ERR_FORBIDDEN] = "forbidden",
    [TL_ADMIN_ERR_PRECONDITION_FAILED] = "precondition_failed",
    [TL_ADMIN_ERR_FROM_MODE_REQUIRED] = "from_mode_required",
    [TL_ADMIN_ERR_UNKNOWN_SYMBOL] = "unknown_symbol",
    [TL_ADMIN_ERR_ENGINE] = "engine_error",
    [TL_ADMIN_ERR_BUFFER_TOO_SMALL] = "buffer_too_small",
    [TL_ADMIN_ERR_BAD_REPLY] = "bad_reply",
    [TL_ADMIN_ERR_REPLY_ID_MISMATCH] = "reply_id_mismatch",
    [TL_ADMIN_ERR_REPLY_UNEXPECTED] = "reply_unexpected",
    [TL_ADMIN_ERR_WOULD_BLOCK] = "would_block",
    [TL_ADMIN_ERR_NOT_CONNECTED] = "not_connected",
    [TL_ADMIN_ERR_CONN_CLOSED] = "conn_closed",
    [TL_ADMIN_ERR_IO] = "io_error",
    [TL_ADMIN_ERR_PATH_TOO_LONG] = "path_too_long",
    [TL_ADMIN_ERR_ADDR_IN_USE] = "addr_in_use",
    [TL_ADMIN_ERR_BAD_CONFIG] = "bad_config",
    [TL_ADMIN_ERR_KEY_OPEN] = "key_open",
    [TL_ADMIN_ERR_KEY_NOT_REGULAR] = "key_not_regular",
    [TL_ADMIN_ERR_KEY_PERMISSIONS] = "key_permissions",
    [TL_ADMIN_ERR_KEY_SIZE] = "key_size",
    [TL_ADMIN_ERR_KEY_READ] = "key_read",
};

const char *tl_admin_err_name(enum tl_admin_err e) {
    return (unsigned)e < TL_ADMIN_ERR_COUNT ? err_names[e] : "unknown";
}

enum tl_admin_wire tl_admin_err_wire(enum tl_admin_err e) {
    if (e == TL_ADMIN_OK)
        return TL_ADMIN_WIRE_NONE;
    if (e <= TL_ADMIN_ERR_ID_REUSED)
        return TL_ADMIN_WIRE_BAD_REQUEST;
    switch (e) {
        case TL_ADMIN_ERR_BAD_MAC:
        case TL_ADMIN_ERR_KEY_NOT_CONFIGURED:
            return TL_ADMIN_WIRE_BAD_MAC;
        case TL_ADMIN_ERR_STALE_COMMAND:
            return TL_ADMIN_WIRE_STALE_COMMAND;
        case TL_ADMIN_ERR_FORBIDDEN:
            return TL_ADMIN_WIRE_FORBIDDEN;
        case TL_ADMIN_ERR_PRECONDITION_FAILED:
        case TL_ADMIN_ERR_FROM_MODE_REQUIRED:
            return TL_ADMIN_WIRE_PRECONDITION_FAILED;
        case TL_ADMIN_ERR_UNKNOWN_SYMBOL:
            return TL_ADMIN_WIRE_UNKNOWN_SYMBOL;
        case TL_ADMIN_ERR_ENGINE:
            return TL_ADMIN_WIRE_ENGINE_ERROR;
        default:
            return TL_ADMIN_WIRE_NONE;
    }
}

static const char *const wire_names[TL_ADMIN_WIRE_COUNT] = {
    [TL_ADMIN_WIRE_NONE] = "",
    [TL_ADMIN_WIRE_BAD_REQUEST] = "bad_request",
    [TL_ADMIN_WIRE_BAD_MAC] = "bad_mac",
    [TL_ADMIN_WIRE_STALE_COMMAND] = "stale_command",
    [TL_ADMIN_WIRE_FORBIDDEN] = "forbidden",
    [TL_ADMIN_WIRE_PRECONDITION_FAILED] = "precondition_failed",
    [TL_ADMIN_WIRE_UNKNOWN_SYMBOL] = "unknown_symbol",
    [TL_ADMIN_WIRE_ENGINE_ERROR] = "engine_error",
    [TL_ADMIN_WIRE_NEVER_APPLIED] = "never_applied",
    [TL_ADMIN_WIRE_UNKNOWN] = "unknown",
};

const char *tl_admin_wire_name(enum tl_admin_wire w) {
    return (unsigned)w < TL_ADMIN_WIRE_COUNT ? wire_names[w] : "unknown";
}

enum tl_admin_wire tl_admin_wire_parse(const char *s, size_t n) {
    for (int w = TL_ADMIN_WIRE_BAD_REQUEST; w <= TL_ADMIN_WIRE_ENGINE_ERROR; w++) {
        size_t k = strlen(wire_names[w]);
        if (k == n && memcmp(wire_names[w], s, n) == 0)
            return (enum tl_admin_wire)w;
    }
    return TL_ADMIN_WIRE_UNKNOWN;
}

bool tl_admin_wire_definitive(enum tl_admin_wire w) {
    return w == TL_ADMIN_WIRE_FORBIDDEN || w == TL_ADMIN_WIRE_UNKNOWN_SYMBOL ||
           w == TL_ADMIN_WIRE_BAD_REQUEST || w == TL_ADMIN_WIRE_PRECONDITION_FAILED;
}
