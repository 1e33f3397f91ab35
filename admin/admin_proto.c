/* admin_proto.c: building and parsing admin request and reply lines (see
 * admin_proto.h and engine-admin.md).
 *
 * Invariants:
 * - the builder never writes past min(cap, TL_ADMIN_LINE_MAX) and leaves no
 *   partial line behind on success; on error the buffer contents are
 *   unspecified;
 * - the parser never trusts the line: every byte limit is checked before
 *   use, and every failure is a named tl_admin_err (never an assertion);
 * - the signed bytes are taken from the line as received, never from a
 *   re-serialization, so escaping cannot change what was signed.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include "admin/admin_proto.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "admin/flatjson.h"
#include "core/assert.h"

/* ---- names ---- */

static const char *const cmd_names[TL_ADMIN_CMD_COUNT] = {
    [TL_ADMIN_CMD_NONE] = "",
    [TL_ADMIN_CMD_SET_SYMBOL_MODE] = "set_symbol_mode",
    [TL_ADMIN_CMD_CANCEL_ALL] = "cancel_all",
    [TL_ADMIN_CMD_WITHDRAWALS_HALT] = "withdrawals_halt",
    [TL_ADMIN_CMD_PING] = "ping",
};

const char *tl_admin_cmd_name(enum tl_admin_cmd c) {
    return (unsigned)c < TL_ADMIN_CMD_COUNT ? cmd_names[c] : "";
}

const char *tl_admin_key_id_name(enum tl_admin_key_id k) {
    switch (k) {
        case TL_ADMIN_KEY_SIDECAR:
            return "sidecar";
        case TL_ADMIN_KEY_OPERATOR:
            return "operator";
        default:
            return "";
    }
}

/* ---- small pieces ---- */

bool tl_admin_parse_u64(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 20)
        return false;
    if (s[0] == '0' && n > 1)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

size_t tl_admin_format_u64(uint64_t v, char out[20]) {
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static int lower_hex_val(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool parse_lower_hex(const char *s, size_t n, uint8_t *out, size_t out_len) {
    if (n != out_len * 2)
        return false;
    for (size_t i = 0; i < out_len; i++) {
        int hi = lower_hex_val(s[2 * i]);
        int lo = lower_hex_val(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)((hi << 4) | lo);
    }
    return true;
}

static void format_lower_hex(const uint8_t *in, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
}

bool tl_admin_parse_id(const char *s, size_t n, uint8_t id[TL_ID_BYTES]) {
    return parse_lower_hex(s, n, id, TL_ID_BYTES);
}

void tl_admin_format_id(const uint8_t id[TL_ID_BYTES], char out[32]) {
    format_lower_hex(id, TL_ID_BYTES, out);
}

static bool text_valid(const char *s, size_t n) {
    return memchr(s, 0, n) == NULL && tl_utf8_valid((const uint8_t *)s, n);
}

static bool symbol_or_star_valid(const char *s, size_t n) {
    return (n == 1 && s[0] == '*') || tl_symbol_name_valid(s, n);
}

static bool set_text(char *dst, size_t cap, const char *s, size_t n) {
    if (n > cap)
        return false;
    memcpy(dst, s, n);
    dst[n] = 0;
    return true;
}

bool tl_admin_request_set_symbol(tl_admin_request *req, const char *s, size_t n) {
    if (!set_text(req->symbol, TL_SYMBOL_NAME_MAX, s, n))
        return false;
    req->symbol_len = (uint8_t)n;
    return true;
}

bool tl_admin_request_set_reason(tl_admin_request *req, const char *s, size_t n) {
    if (!set_text(req->reason, TL_ADMIN_REASON_MAX, s, n))
        return false;
    req->reason_len = (uint16_t)n;
    return true;
}

bool tl_admin_request_set_ticket(tl_admin_request *req, const char *s, size_t n) {
    if (!set_text(req->ticket, TL_ADMIN_TICKET_MAX, s, n))
        return false;
    req->ticket_len = (uint8_t)n;
    return true;
}

/* ---- a bounded writer ---- */

typedef struct wbuf {
    char *p;
    size_t cap;
    size_t len;
    bool overflow;
} wbuf;

static void w_raw(wbuf *w, const char *s, size_t n) {
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

static void w_lit(wbuf *w, const char *s) {
    w_raw(w, s, strlen(s));
}

/* A JSON string, quotes included. Bytes >= 0x80 pass through (the caller
 * validated them as UTF-8); '"', '\\' and control bytes are escaped. */
static void w_str(wbuf *w, const char *s, size_t n) {
    static const char digits[] = "0123456789abcdef";
    w_raw(w, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t k = 0;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            k = 2;
        } else if (c < 0x20) {
            esc[0] = '\\';
            k = 2;
            switch (c) {
                case '\b':
                    esc[1] = 'b';
                    break;
                case '\f':
                    esc[1] = 'f';
                    break;
                case '\n':
                    esc[1] = 'n';
                    break;
                case '\r':
                    esc[1] = 'r';
                    break;
                case '\t':
                    esc[1] = 't';
                    break;
                default:
                    memcpy(esc, "\\u00", 4);
                    esc[4] = digits[c >> 4];
                    esc[5] = digits[c & 15];
                    k = 6;
                    break;
            }
        } else {
            esc[0] = (char)c;
            k = 1;
        }
        w_raw(w, esc, k);
    }
    w_raw(w, "\"", 1);
}

static void w_u64_str(wbuf *w, uint64_t v) {
    char d[20];
    size_t n = tl_admin_format_u64(v, d);
    w_raw(w, "\"", 1);
    w_raw(w, d, n);
    w_raw(w, "\"", 1);
}

static void w_id(wbuf *w, const uint8_t id[TL_ID_BYTES]) {
    char hex[32];
    tl_admin_format_id(id, hex);
    w_raw(w, "\"", 1);
    w_raw(w, hex, sizeof hex);
    w_raw(w, "\"", 1);
}

/* ---- request builder ---- */

static enum tl_admin_err request_validate(const tl_admin_request *req) {
    if (tl_id_is_zero(req->id) || tl_id_is_restatement(req->id))
        return TL_ADMIN_ERR_RESERVED_ID;
    if (req->cmd <= TL_ADMIN_CMD_NONE || req->cmd >= TL_ADMIN_CMD_COUNT)
        return TL_ADMIN_ERR_UNKNOWN_CMD;
    if (req->key != TL_ADMIN_KEY_SIDECAR && req->key != TL_ADMIN_KEY_OPERATOR)
        return TL_ADMIN_ERR_UNKNOWN_KEY;
    if (req->cmd == TL_ADMIN_CMD_SET_SYMBOL_MODE || req->cmd == TL_ADMIN_CMD_CANCEL_ALL) {
        if (req->symbol_len > TL_SYMBOL_NAME_MAX ||
            !symbol_or_star_valid(req->symbol, req->symbol_len))
            return TL_ADMIN_ERR_BAD_SYMBOL;
    }
    if (req->cmd == TL_ADMIN_CMD_SET_SYMBOL_MODE) {
        if (req->mode >= TL_MODE_COUNT || (req->has_from_mode && req->from_mode >= TL_MODE_COUNT))
            return TL_ADMIN_ERR_UNKNOWN_MODE;
    }
    if (req->cmd != TL_ADMIN_CMD_PING) {
        if (req->reason_len > TL_ADMIN_REASON_MAX || !text_valid(req->reason, req->reason_len))
            return TL_ADMIN_ERR_BAD_REASON;
        if (req->ticket_len > TL_ADMIN_TICKET_MAX || !text_valid(req->ticket, req->ticket_len))
            return TL_ADMIN_ERR_BAD_TICKET;
    }
    return TL_ADMIN_OK;
}

enum tl_admin_err tl_admin_request_build(const tl_admin_request *req, const tl_admin_key *key,
                                         char *buf, size_t cap, size_t *len_out) {
    enum tl_admin_err err = request_validate(req);
    if (err != TL_ADMIN_OK)
        return err;
    wbuf w = {.p = buf, .cap = cap < TL_ADMIN_LINE_MAX ? cap : TL_ADMIN_LINE_MAX};
    w_lit(&w, "{\"v\":1,\"id\":");
    w_id(&w, req->id);
    w_lit(&w, ",\"cmd\":\"");
    w_lit(&w, tl_admin_cmd_name(req->cmd));
    w_lit(&w, "\"");
    if (req->cmd == TL_ADMIN_CMD_SET_SYMBOL_MODE || req->cmd == TL_ADMIN_CMD_CANCEL_ALL) {
        w_lit(&w, ",\"symbol\":");
        w_str(&w, req->symbol, req->symbol_len);
    }
    if (req->cmd == TL_ADMIN_CMD_SET_SYMBOL_MODE) {
        w_lit(&w, ",\"mode\":\"");
        w_lit(&w, tl_mode_name(req->mode));
        w_lit(&w, "\"");
        if (req->has_from_mode) {
            w_lit(&w, ",\"from_mode\":\"");
            w_lit(&w, tl_mode_name(req->from_mode));
            w_lit(&w, "\"");
        }
    }
    if (req->cmd == TL_ADMIN_CMD_WITHDRAWALS_HALT)
        w_lit(&w, req->on ? ",\"on\":true" : ",\"on\":false");
    if (req->cmd != TL_ADMIN_CMD_PING) {
        w_lit(&w, ",\"reason\":");
        w_str(&w, req->reason, req->reason_len);
        w_lit(&w, ",\"ticket\":");
        w_str(&w, req->ticket, req->ticket_len);
    }
    w_lit(&w, ",\"issued_ns\":");
    w_u64_str(&w, req->issued_ns);
    w_lit(&w, ",\"fence\":");
    w_u64_str(&w, req->fence);
    w_lit(&w, ",\"key\":\"");
    w_lit(&w, tl_admin_key_id_name(req->key));
    w_lit(&w, "\"");
    /* The signed bytes are what is written so far, then "}". Check the room
     * for the suffix and the '\n' before spending a mac on it. */
    if (w.overflow || w.cap - w.len < TL_ADMIN_MAC_SUFFIX + 1)
        return TL_ADMIN_ERR_BUFFER_TOO_SMALL;
    uint8_t mac[TL_ADMIN_MAC_BYTES];
    tl_admin_key_mac2(key, w.p, w.len, "}", 1, mac);
    char hex[2 * TL_ADMIN_MAC_BYTES];
    format_lower_hex(mac, sizeof mac, hex);
    w_lit(&w, ",\"mac\":\"");
    w_raw(&w, hex, sizeof hex);
    w_lit(&w, "\"}\n");
    TL_ASSERT(!w.overflow);
    TL_ASSERT(w.len <= TL_ADMIN_LINE_MAX);
    *len_out = w.len;
    return TL_ADMIN_OK;
}

/* ---- request parser ---- */

/* The members, in the order of engine-admin.md's table. */
enum member_ix {
    M_V,
    M_ID,
    M_CMD,
    M_SYMBOL,
    M_MODE,
    M_FROM_MODE,
    M_ON,
    M_REASON,
    M_TICKET,
    M_ISSUED_NS,
    M_FENCE,
    M_KEY,
    M_MAC,
    M_COUNT,
    M_UNKNOWN = M_COUNT,
};

static const char *const member_names[M_COUNT] = {
    "v",      "id",     "cmd",       "symbol", "mode", "from_mode", "on",
    "reason", "ticket", "issued_ns", "fence",  "key",  "mac",
};

#define BIT(m) (1u << (m))
#define ALWAYS                                                                                     \
    (BIT(M_V) | BIT(M_ID) | BIT(M_CMD) | BIT(M_ISSUED_NS) | BIT(M_FENCE) | BIT(M_KEY) | BIT(M_MAC))

/* Members each command needs, and those it may carry besides. */
static const uint32_t cmd_required[TL_ADMIN_CMD_COUNT] = {
    [TL_ADMIN_CMD_SET_SYMBOL_MODE] =
        ALWAYS | BIT(M_SYMBOL) | BIT(M_MODE) | BIT(M_REASON) | BIT(M_TICKET),
    [TL_ADMIN_CMD_CANCEL_ALL] = ALWAYS | BIT(M_SYMBOL) | BIT(M_REASON) | BIT(M_TICKET),
    [TL_ADMIN_CMD_WITHDRAWALS_HALT] = ALWAYS | BIT(M_ON) | BIT(M_REASON) | BIT(M_TICKET),
    [TL_ADMIN_CMD_PING] = ALWAYS,
};
static const uint32_t cmd_optional[TL_ADMIN_CMD_COUNT] = {
    [TL_ADMIN_CMD_SET_SYMBOL_MODE] = BIT(M_FROM_MODE),
    [TL_ADMIN_CMD_PING] = BIT(M_REASON) | BIT(M_TICKET),
};

static unsigned member_lookup(const char *line, const tl_fj_member *m) {
    const char *k = line + m->key_off;
    for (unsigned i = 0; i < M_COUNT; i++) {
        if (tl_fj_equals(k, m->key_len, m->key_escaped, member_names[i], strlen(member_names[i])))
            return i;
    }
    return M_UNKNOWN;
}

static enum tl_admin_cmd cmd_lookup(const char *s, size_t n) {
    for (int c = TL_ADMIN_CMD_SET_SYMBOL_MODE; c < TL_ADMIN_CMD_COUNT; c++) {
        if (strlen(cmd_names[c]) == n && memcmp(cmd_names[c], s, n) == 0)
            return (enum tl_admin_cmd)c;
    }
    return TL_ADMIN_CMD_NONE;
}

/* Decodes a string member into a small scratch buffer; false if it is longer
 * than cap once decoded. */
static bool decode_member(const char *line, const tl_fj_member *m, char *out, size_t cap,
                          size_t *n) {
    return tl_fj_decode(line + m->val_off, m->val_len, out, cap, n);
}

static enum tl_admin_err parse_value(const char *line, const tl_fj_member *m, unsigned ix,
                                     tl_admin_request *req, tl_admin_line_info *info) {
    const char *raw = line + m->val_off;
    size_t raw_len = m->val_len;
    char tmp[TL_ADMIN_REASON_MAX];
    size_t n = 0;
    if (ix == M_V) {
        if (m->type != TL_FJ_NUMBER)
            return TL_ADMIN_ERR_WRONG_TYPE;
        return raw_len == 1 && raw[0] == '1' ? TL_ADMIN_OK : TL_ADMIN_ERR_BAD_VERSION;
    }
    if (ix == M_ON) {
        if (m->type != TL_FJ_TRUE && m->type != TL_FJ_FALSE)
            return TL_ADMIN_ERR_WRONG_TYPE;
        req->on = m->type == TL_FJ_TRUE;
        return TL_ADMIN_OK;
    }
    if (m->type != TL_FJ_STRING)
        return TL_ADMIN_ERR_WRONG_TYPE;
    switch (ix) {
        case M_ID:
            /* Hex has no reason to be escaped; an escaped id is not 32 hex. */
            if (m->val_escaped || !tl_admin_parse_id(raw, raw_len, req->id))
                return TL_ADMIN_ERR_BAD_ID;
            if (tl_id_is_zero(req->id) || tl_id_is_restatement(req->id))
                return TL_ADMIN_ERR_RESERVED_ID;
            return TL_ADMIN_OK;
        case M_CMD:
            if (!decode_member(line, m, tmp, 32, &n))
                return TL_ADMIN_ERR_UNKNOWN_CMD;
            req->cmd = cmd_lookup(tmp, n);
            return req->cmd == TL_ADMIN_CMD_NONE ? TL_ADMIN_ERR_UNKNOWN_CMD : TL_ADMIN_OK;
        case M_SYMBOL:
            if (!decode_member(line, m, tmp, TL_SYMBOL_NAME_MAX, &n) ||
                !symbol_or_star_valid(tmp, n))
                return TL_ADMIN_ERR_BAD_SYMBOL;
            TL_ASSERT(tl_admin_request_set_symbol(req, tmp, n));
            return TL_ADMIN_OK;
        case M_MODE:
        case M_FROM_MODE: {
            if (!decode_member(line, m, tmp, 32, &n))
                return TL_ADMIN_ERR_UNKNOWN_MODE;
            int mode = tl_mode_parse(tmp, n);
            if (mode < 0)
                return TL_ADMIN_ERR_UNKNOWN_MODE;
            if (ix == M_MODE) {
                req->mode = (uint8_t)mode;
            } else {
                req->from_mode = (uint8_t)mode;
                req->has_from_mode = true;
            }
            return TL_ADMIN_OK;
        }
        case M_REASON:
            /* The scanner guarantees UTF-8; U+0000 is refused so that the
             * text stays a C string for logs and audits downstream. */
            if (!decode_member(line, m, tmp, TL_ADMIN_REASON_MAX, &n) || memchr(tmp, 0, n))
                return TL_ADMIN_ERR_BAD_REASON;
            TL_ASSERT(tl_admin_request_set_reason(req, tmp, n));
            return TL_ADMIN_OK;
        case M_TICKET:
            if (!decode_member(line, m, tmp, TL_ADMIN_TICKET_MAX, &n) || memchr(tmp, 0, n))
                return TL_ADMIN_ERR_BAD_TICKET;
            TL_ASSERT(tl_admin_request_set_ticket(req, tmp, n));
            return TL_ADMIN_OK;
        case M_ISSUED_NS:
        case M_FENCE: {
            /* Digits only, straight from the line (never through a double). */
            uint64_t v = 0;
            if (m->val_escaped || !tl_admin_parse_u64(raw, raw_len, &v))
                return TL_ADMIN_ERR_BAD_NUMBER;
            if (ix == M_FENCE) {
                req->fence = v;
            } else {
                req->issued_ns = v;
                info->issued_ns_off = m->val_off;
                info->issued_ns_len = m->val_len;
            }
            return TL_ADMIN_OK;
        }
        case M_KEY:
            if (tl_fj_equals(raw, raw_len, m->val_escaped, "sidecar", 7))
                req->key = TL_ADMIN_KEY_SIDECAR;
            else if (tl_fj_equals(raw, raw_len, m->val_escaped, "operator", 8))
                req->key = TL_ADMIN_KEY_OPERATOR;
            else
                return TL_ADMIN_ERR_UNKNOWN_KEY;
            return TL_ADMIN_OK;
        case M_MAC:
            if (m->val_escaped || !parse_lower_hex(raw, raw_len, info->mac, TL_ADMIN_MAC_BYTES))
                return TL_ADMIN_ERR_BAD_MAC_FORMAT;
            return TL_ADMIN_OK;
        default:
            TL_UNREACHABLE();
    }
}

/* The line, without its '\n', must end with exactly ,"mac":"<64 hex>"} */
static bool suffix_ok(const char *line, size_t len) {
    static const char head[] = ",\"mac\":\"";
    if (len < TL_ADMIN_MAC_SUFFIX + 1)
        return false;
    const char *s = line + len - TL_ADMIN_MAC_SUFFIX;
    if (memcmp(s, head, 8) != 0)
        return false;
    for (size_t i = 0; i < 64; i++) {
        if (lower_hex_val(s[8 + i]) < 0)
            return false;
    }
    return s[72] == '"' && s[73] == '}';
}

enum tl_admin_err tl_admin_request_parse(const char *line, size_t len, tl_admin_request *req,
                                         tl_admin_line_info *info) {
    memset(req, 0, sizeof *req);
    memset(info, 0, sizeof *info);
    if (len >= TL_ADMIN_LINE_MAX)
        return TL_ADMIN_ERR_LINE_TOO_LONG;
    if (memchr(line, '\r', len) != NULL)
        return TL_ADMIN_ERR_CARRIAGE_RETURN;
    if (memchr(line, '\n', len) != NULL)
        return TL_ADMIN_ERR_EMBEDDED_NEWLINE;

    tl_fj_member members[TL_ADMIN_MEMBERS_MAX];
    size_t n = 0;
    enum tl_fj_err fe = tl_fj_parse(line, len, members, TL_ADMIN_MEMBERS_MAX, &n);
    if (fe == TL_FJ_ERR_TOO_MANY)
        return TL_ADMIN_ERR_TOO_MANY_MEMBERS;
    if (fe == TL_FJ_ERR_NESTED)
        return TL_ADMIN_ERR_WRONG_TYPE;
    if (fe == TL_FJ_ERR_BAD_UTF8)
        return TL_ADMIN_ERR_BAD_UTF8;
    if (fe != TL_FJ_OK)
        return TL_ADMIN_ERR_NOT_JSON;

    /* Pass 1: name the members, and read the id early so that an error
     * reply can echo it (only when exactly one valid id is present). */
    unsigned ix[TL_ADMIN_MEMBERS_MAX];
    unsigned ids = 0, id_at = 0;
    for (size_t i = 0; i < n; i++) {
        ix[i] = member_lookup(line, &members[i]);
        if (ix[i] == M_ID) {
            ids++;
            id_at = (unsigned)i;
        }
    }
    if (ids == 1) {
        const tl_fj_member *m = &members[id_at];
        if (m->type == TL_FJ_STRING && !m->val_escaped &&
            tl_admin_parse_id(line + m->val_off, m->val_len, req->id))
            info->id_readable = true;
    }

    /* Pass 2: names, duplicates, order. */
    uint32_t seen = 0;
    unsigned last = 0;
    for (size_t i = 0; i < n; i++) {
        if (ix[i] == M_UNKNOWN)
            return TL_ADMIN_ERR_UNKNOWN_MEMBER;
        if (seen & BIT(ix[i]))
            return TL_ADMIN_ERR_DUPLICATE_MEMBER;
        if (i > 0 && ix[i] < last)
            return TL_ADMIN_ERR_MEMBER_ORDER;
        seen |= BIT(ix[i]);
        last = ix[i];
    }

    /* Pass 3: each value. */
    for (size_t i = 0; i < n; i++) {
        enum tl_admin_err e = parse_value(line, &members[i], ix[i], req, info);
        if (e != TL_ADMIN_OK)
            return e;
    }

    /* Pass 4: what the command needs and allows. */
    if ((seen & ALWAYS) != ALWAYS)
        return TL_ADMIN_ERR_MISSING_MEMBER;
    TL_ASSERT(req->cmd > TL_ADMIN_CMD_NONE && req->cmd < TL_ADMIN_CMD_COUNT);
    uint32_t need = cmd_required[req->cmd];
    uint32_t allow = need | cmd_optional[req->cmd];
    if ((seen & need) != need)
        return TL_ADMIN_ERR_MISSING_MEMBER;
    if ((seen & ~allow) != 0)
        return TL_ADMIN_ERR_UNEXPECTED_MEMBER;

    /* Pass 5: the suffix, byte by byte. With the members in order, mac is
     * the last member, so a good suffix is that member's own bytes. */
    if (!suffix_ok(line, len))
        return TL_ADMIN_ERR_BAD_SUFFIX;
    info->signed_len = (uint32_t)(len - TL_ADMIN_MAC_SUFFIX);
    TL_ASSERT(info->issued_ns_off + info->issued_ns_len <= info->signed_len);
    return TL_ADMIN_OK;
}

enum tl_admin_err tl_admin_request_verify_mac(const char *line, const tl_admin_line_info *info,
                                              const tl_admin_key *key) {
    uint8_t want[TL_ADMIN_MAC_BYTES];
    tl_admin_key_mac2(key, line, info->signed_len, "}", 1, want);
    /* Constant time: the time taken says nothing about how many bytes of a
     * forged mac were right. */
    bool ok = CRYPTO_memcmp(want, info->mac, sizeof want) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return ok ? TL_ADMIN_OK : TL_ADMIN_ERR_BAD_MAC;
}

void tl_admin_request_digest(const char *line, const tl_admin_line_info *info,
                             uint8_t digest[TL_ADMIN_DIGEST_BYTES]) {
    TL_ASSERT(info->issued_ns_off + info->issued_ns_len <= info->signed_len);
    SHA256_CTX c;
    uint8_t full[SHA256_DIGEST_LENGTH];
    uint32_t cut = info->issued_ns_off + info->issued_ns_len;
    TL_ASSERT(SHA256_Init(&c) == 1);
    TL_ASSERT(SHA256_Update(&c, line, info->issued_ns_off) == 1);
    TL_ASSERT(SHA256_Update(&c, line + cut, info->signed_len - cut) == 1);
    TL_ASSERT(SHA256_Update(&c, "}", 1) == 1);
    TL_ASSERT(SHA256_Final(full, &c) == 1);
    memcpy(digest, full, TL_ADMIN_DIGEST_BYTES);
}

/* ---- replies ---- */

size_t tl_admin_reply_build(const tl_admin_reply *r, char *buf, size_t cap) {
    wbuf w = {.p = buf, .cap = cap};
    w_lit(&w, "{\"v\":1,\"id\":");
    if (r->id_present)
        w_id(&w, r->id);
    else
        w_lit(&w, "\"\"");
    if (!r->ok) {
        TL_ASSERT(r->error > TL_ADMIN_WIRE_NONE && r->error < TL_ADMIN_WIRE_UNKNOWN);
        w_lit(&w, ",\"ok\":false,\"error\":\"");
        w_lit(&w, tl_admin_wire_name(r->error));
        w_lit(&w, "\"}\n");
        return w.overflow ? 0 : w.len;
    }
    TL_ASSERT(r->cmd > TL_ADMIN_CMD_NONE && r->cmd < TL_ADMIN_CMD_COUNT);
    w_lit(&w, ",\"ok\":true,\"cmd\":\"");
    w_lit(&w, tl_admin_cmd_name(r->cmd));
    w_lit(&w, "\"");
    if (r->cmd == TL_ADMIN_CMD_SET_SYMBOL_MODE || r->cmd == TL_ADMIN_CMD_CANCEL_ALL) {
        TL_ASSERT(r->symbol_len <= TL_SYMBOL_NAME_MAX);
        w_lit(&w, ",\"symbol\":");
        w_str(&w, r->symbol, r->symbol_len);
        w_lit(&w, ",\"mode\":\"");
        w_lit(&w, tl_mode_name(r->mode));
        w_lit(&w, "\"");
    }
    if (r->cmd == TL_ADMIN_CMD_WITHDRAWALS_HALT)
        w_lit(&w, r->on ? ",\"on\":true" : ",\"on\":false");
    if (r->cmd != TL_ADMIN_CMD_PING) {
        w_lit(&w, ",\"applied_seq\":");
        w_u64_str(&w, r->applied_seq);
    }
    w_lit(&w, r->duplicate ? ",\"duplicate\":true}\n" : ",\"duplicate\":false}\n");
    return w.overflow ? 0 : w.len;
}

enum reply_ix {
    R_V,
    R_ID,
    R_OK,
    R_ERROR,
    R_CMD,
    R_SYMBOL,
    R_MODE,
    R_ON,
    R_APPLIED_SEQ,
    R_DUPLICATE,
    R_COUNT,
};

static const char *const reply_names[R_COUNT] = {
    "v", "id", "ok", "error", "cmd", "symbol", "mode", "on", "applied_seq", "duplicate",
};

static bool is_bool(const tl_fj_member *m) {
    return m->type == TL_FJ_TRUE || m->type == TL_FJ_FALSE;
}

enum tl_admin_err tl_admin_reply_parse(const char *line, size_t len, tl_admin_reply *r) {
    memset(r, 0, sizeof *r);
    if (len >= TL_ADMIN_LINE_MAX || memchr(line, '\r', len) || memchr(line, '\n', len))
        return TL_ADMIN_ERR_BAD_REPLY;
    tl_fj_member members[TL_ADMIN_MEMBERS_MAX];
    size_t n = 0;
    if (tl_fj_parse(line, len, members, TL_ADMIN_MEMBERS_MAX, &n) != TL_FJ_OK)
        return TL_ADMIN_ERR_BAD_REPLY;
    const tl_fj_member *at[R_COUNT] = {0};
    for (size_t i = 0; i < n; i++) {
        const tl_fj_member *m = &members[i];
        for (unsigned k = 0; k < R_COUNT; k++) {
            if (tl_fj_equals(line + m->key_off, m->key_len, m->key_escaped, reply_names[k],
                             strlen(reply_names[k]))) {
                if (at[k] != NULL)
                    return TL_ADMIN_ERR_BAD_REPLY; /* a member twice */
                at[k] = m;
                break;
            }
        }
    }
    char tmp[64];
    size_t tn = 0;
    if (!at[R_V] || at[R_V]->type != TL_FJ_NUMBER || at[R_V]->val_len != 1 ||
        line[at[R_V]->val_off] != '1')
        return TL_ADMIN_ERR_BAD_REPLY;
    if (!at[R_ID] || at[R_ID]->type != TL_FJ_STRING || at[R_ID]->val_escaped)
        return TL_ADMIN_ERR_BAD_REPLY;
    if (at[R_ID]->val_len != 0) {
        if (!tl_admin_parse_id(line + at[R_ID]->val_off, at[R_ID]->val_len, r->id))
            return TL_ADMIN_ERR_BAD_REPLY;
        r->id_present = true;
    }
    if (!at[R_OK] || !is_bool(at[R_OK]))
        return TL_ADMIN_ERR_BAD_REPLY;
    r->ok = at[R_OK]->type == TL_FJ_TRUE;
    if (!r->ok) {
        const tl_fj_member *m = at[R_ERROR];
        if (!m || m->type != TL_FJ_STRING)
            return TL_ADMIN_ERR_BAD_REPLY;
        r->error = decode_member(line, m, tmp, sizeof tmp, &tn) ? tl_admin_wire_parse(tmp, tn)
                                                                : TL_ADMIN_WIRE_UNKNOWN;
        return TL_ADMIN_OK;
    }
    const tl_fj_member *m = at[R_CMD];
    if (!m || m->type != TL_FJ_STRING || !decode_member(line, m, tmp, sizeof tmp, &tn))
        return TL_ADMIN_ERR_BAD_REPLY;
    r->cmd = cmd_lookup(tmp, tn);
    if (r->cmd == TL_ADMIN_CMD_NONE)
        return TL_ADMIN_ERR_BAD_REPLY;
    if (!at[R_DUPLICATE] || !is_bool(at[R_DUPLICATE]))
        return TL_ADMIN_ERR_BAD_REPLY;
    r->duplicate = at[R_DUPLICATE]->type == TL_FJ_TRUE;
    if (r->cmd == TL_ADMIN_CMD_SET_SYMBOL_MODE || r->cmd == TL_ADMIN_CMD_CANCEL_ALL) {
        m = at[R_SYMBOL];
        if (!m || m->type != TL_FJ_STRING ||
            !decode_member(line, m, tmp, TL_SYMBOL_NAME_MAX, &tn) || !symbol_or_star_valid(tmp, tn))
            return TL_ADMIN_ERR_BAD_REPLY;
        memcpy(r->symbol, tmp, tn);
        r->symbol[tn] = 0;
        r->symbol_len = (uint8_t)tn;
        m = at[R_MODE];
        /* Required for set_symbol_mode; cancel_all may leave it out. */
        if (m == NULL && r->cmd == TL_ADMIN_CMD_SET_SYMBOL_MODE)
            return TL_ADMIN_ERR_BAD_REPLY;
        if (m != NULL) {
            int mode = -1;
            if (m->type == TL_FJ_STRING && decode_member(line, m, tmp, sizeof tmp, &tn))
                mode = tl_mode_parse(tmp, tn);
            if (mode < 0)
                return TL_ADMIN_ERR_BAD_REPLY;
            r->mode = (uint8_t)mode;
        }
    }
    if (r->cmd == TL_ADMIN_CMD_WITHDRAWALS_HALT) {
        if (!at[R_ON] || !is_bool(at[R_ON]))
            return TL_ADMIN_ERR_BAD_REPLY;
        r->on = at[R_ON]->type == TL_FJ_TRUE;
    }
    if (r->cmd != TL_ADMIN_CMD_PING) {
        m = at[R_APPLIED_SEQ];
        if (!m || m->type != TL_FJ_STRING || m->val_escaped ||
            !tl_admin_parse_u64(line + m->val_off, m->val_len, &r->applied_seq))
            return TL_ADMIN_ERR_BAD_REPLY;
        r->has_applied_seq = true;
    }
    return TL_ADMIN_OK;
}
