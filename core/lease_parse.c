/* lease_parse.c: etcd's range reply (ledger.md "Lease authority"), from bytes
 * to a tl_lease_reading (see lease.h), and base64. Outside bytes: every way
 * to be wrong has a name, nothing is asserted on them, and nothing is read
 * past `len`.
 *
 * The reply of `POST /v3/kv/range {"key":"<b64>"}` through etcd's gateway:
 *   {"header":{"cluster_id":"..","member_id":"..","revision":"12","raft_term":"2"},
 *    "kvs":[{"key":"<b64>","create_revision":"5","mod_revision":"7","version":"3",
 *            "value":"<b64>","lease":"694d81.."}],
 *    "count":"1"}
 * With the key absent, "kvs" and "count" are left out (protobuf's JSON
 * mapping drops empty fields); so is "value" when it is empty, and "lease"
 * when there is none. int64 fields are strings: a JSON number there may have
 * lost precision on the way (above 2^53) and is refused.
 */
#include <string.h>

#include <cjson/cJSON.h>

#include "assert.h"
#include "lease.h"

const char *tl_lease_err_name(enum tl_lease_err e) {
    static const char *const names[TL_LEASE_ERR_COUNT] = {
        [TL_LEASE_OK] = "ok",
        [TL_LEASE_ERR_TOO_LARGE] = "body_too_large",
        [TL_LEASE_ERR_JSON] = "bad_json",
        [TL_LEASE_ERR_NOT_OBJECT] = "not_object",
        [TL_LEASE_ERR_MISSING] = "missing_member",
        [TL_LEASE_ERR_DUPLICATE] = "duplicate_member",
        [TL_LEASE_ERR_NOT_STRING] = "not_string",
        [TL_LEASE_ERR_DECIMAL] = "bad_decimal",
        [TL_LEASE_ERR_OVERFLOW] = "int64_overflow",
        [TL_LEASE_ERR_BASE64] = "bad_base64",
        [TL_LEASE_ERR_KVS] = "kvs_not_array",
        [TL_LEASE_ERR_TOO_MANY] = "too_many_kvs",
        [TL_LEASE_ERR_COUNT_KVS] = "count_mismatch",
        [TL_LEASE_ERR_OTHER_KEY] = "other_key",
        [TL_LEASE_ERR_VALUE] = "bad_value",
        [TL_LEASE_ERR_REVISION] = "revision_order",
    };
    return (unsigned)e < TL_LEASE_ERR_COUNT ? names[e] : "?";
}

/* ---- base64 ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t tl_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap) {
    size_t need = (n + 2) / 3 * 4;
    if (cap < need + 1)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    TL_ASSERT(o == need);
    return o;
}

static int b64_value(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long tl_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap) {
    if (n % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = in[i + (size_t)k];
            if (c == '=' && last && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            if (pad != 0)
                return -1; /* a digit after '=' */
            v[k] = b64_value(c);
            if (v[k] < 0)
                return -1;
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* Canonical: the bits the padding hides are zero. */
        if ((pad == 1 && (w & 0xffu) != 0) || (pad == 2 && (w & 0xffffu) != 0))
            return -1;
        size_t bytes = 3u - (size_t)pad;
        if (cap - o < bytes)
            return -1;
        out[o++] = (uint8_t)(w >> 16);
        if (bytes > 1)
            out[o++] = (uint8_t)(w >> 8);
        if (bytes > 2)
            out[o++] = (uint8_t)w;
    }
    return (long)o;
}

/* ---- fields ---- */

/* "0" or [1-9][0-9]*, at most 2^63 - 1 (etcd's int64). */
static enum tl_lease_err int64_field(const cJSON *it, uint64_t *out) {
    if (it == NULL)
        return TL_LEASE_ERR_MISSING;
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return TL_LEASE_ERR_NOT_STRING;
    const char *s = it->valuestring;
    if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
        return TL_LEASE_ERR_DECIMAL;
    uint64_t v = 0;
    bool over = false;
    /* Bounded by the body: cJSON made the string from at most
     * TL_LEASE_BODY_MAX bytes. */
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9')
            return TL_LEASE_ERR_DECIMAL;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (over || v > (TL_LEASE_INT64_MAX - d) / 10u) {
            over = true; /* keep scanning: garbage is bad_decimal, digits overflow */
            continue;
        }
        v = v * 10u + d;
    }
    if (over)
        return TL_LEASE_ERR_OVERFLOW;
    *out = v;
    return TL_LEASE_OK;
}

/* A base64 bytes field into out (cap bytes). */
static enum tl_lease_err bytes_field(const cJSON *it, uint8_t *out, size_t cap, size_t *n) {
    if (it == NULL)
        return TL_LEASE_ERR_MISSING;
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return TL_LEASE_ERR_NOT_STRING;
    size_t len = strlen(it->valuestring);
    long got = tl_b64_decode(it->valuestring, len, out, cap);
    if (got < 0)
        return TL_LEASE_ERR_BASE64;
    *n = (size_t)got;
    return TL_LEASE_OK;
}

static int hex_digit(uint8_t c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The members of `obj` named in `names` (at most 8), each at most once.
 * Unknown members are ignored (a newer etcd may add some). */
static enum tl_lease_err members(const cJSON *obj, const char *const *names, size_t n,
                                 const cJSON **found, const char *const *where,
                                 const char **member) {
    TL_ASSERT(n <= 8);
    for (size_t k = 0; k < n; k++)
        found[k] = NULL;
    /* Bounded by the body size. */
    for (const cJSON *c = obj->child; c != NULL; c = c->next) {
        if (c->string == NULL)
            continue;
        for (size_t k = 0; k < n; k++) {
            if (strcmp(c->string, names[k]) != 0)
                continue;
            if (found[k] != NULL) {
                *member = where[k];
                return TL_LEASE_ERR_DUPLICATE;
            }
            found[k] = c;
        }
    }
    return TL_LEASE_OK;
}

/* U+0000 would cut a string short inside cJSON: refuse the escape. */
static bool has_nul_escape(const char *body, size_t len) {
    for (size_t i = 0; i + 6 <= len; i++) {
        if (body[i] == '\\' && body[i + 1] == 'u' && body[i + 2] == '0' && body[i + 3] == '0' &&
            body[i + 4] == '0' && body[i + 5] == '0')
            return true;
        if (body[i] == '\\')
            i++; /* an escaped backslash does not start an escape */
    }
    return false;
}

enum { R_HEADER, R_KVS, R_COUNT, R_N };
enum { K_KEY, K_VALUE, K_MOD, K_CREATE, K_VERSION, K_LEASE, K_N };

static enum tl_lease_err one_kv(const cJSON *kv, const uint8_t *key, size_t key_len,
                                tl_lease_reading *out, const char **member) {
    static const char *const names[K_N] = {"key",     "value", "mod_revision", "create_revision",
                                           "version", "lease"};
    static const char *const where[K_N] = {"kvs[0].key",          "kvs[0].value",
                                           "kvs[0].mod_revision", "kvs[0].create_revision",
                                           "kvs[0].version",      "kvs[0].lease"};
    *member = "kvs[0]";
    if (!cJSON_IsObject(kv))
        return TL_LEASE_ERR_NOT_OBJECT;
    const cJSON *m[K_N];
    enum tl_lease_err e = members(kv, names, K_N, m, where, member);
    if (e != TL_LEASE_OK)
        return e;
    uint8_t got[TL_LEASE_KEY_MAX];
    size_t n = 0;
    *member = where[K_KEY];
    /* Another length than the key's encoding is another key (and might not
     * fit the buffer); the same length must decode canonically. */
    if (m[K_KEY] != NULL && cJSON_IsString(m[K_KEY]) &&
        strlen(m[K_KEY]->valuestring) != (key_len + 2) / 3 * 4)
        return TL_LEASE_ERR_OTHER_KEY;
    if ((e = bytes_field(m[K_KEY], got, sizeof got, &n)) != TL_LEASE_OK)
        return e;
    if (n != key_len || memcmp(got, key, n) != 0)
        return TL_LEASE_ERR_OTHER_KEY;
    *member = where[K_MOD];
    if ((e = int64_field(m[K_MOD], &out->mod_revision)) != TL_LEASE_OK)
        return e;
    if (out->mod_revision == 0)
        return TL_LEASE_ERR_REVISION; /* a key that exists was written at some revision */
    uint64_t scratch = 0;
    if (m[K_CREATE] != NULL) {
        *member = where[K_CREATE];
        if ((e = int64_field(m[K_CREATE], &out->create_revision)) != TL_LEASE_OK)
            return e;
    }
    if (m[K_VERSION] != NULL) {
        *member = where[K_VERSION];
        if ((e = int64_field(m[K_VERSION], &scratch)) != TL_LEASE_OK)
            return e;
    }
    if (m[K_LEASE] != NULL) {
        *member = where[K_LEASE];
        if ((e = int64_field(m[K_LEASE], &out->lease_id)) != TL_LEASE_OK)
            return e;
    }
    /* The value: the holder's engine_id, 32 hex digits (either case). An
     * empty value is left out by the gateway: present, but no engine. */
    *member = where[K_VALUE];
    if (m[K_VALUE] == NULL)
        return TL_LEASE_ERR_VALUE;
    uint8_t val[48];
    if (cJSON_IsString(m[K_VALUE]) && strlen(m[K_VALUE]->valuestring) != 44)
        return TL_LEASE_ERR_VALUE; /* 32 bytes encode to 44 */
    if ((e = bytes_field(m[K_VALUE], val, sizeof val, &n)) != TL_LEASE_OK)
        return e;
    if (n != 2 * TL_ID_BYTES)
        return TL_LEASE_ERR_VALUE;
    for (size_t i = 0; i < TL_ID_BYTES; i++) {
        int hi = hex_digit(val[2 * i]), lo = hex_digit(val[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return TL_LEASE_ERR_VALUE;
        out->holder[i] = (uint8_t)(hi << 4 | lo);
    }
    out->present = 1;
    return TL_LEASE_OK;
}

static enum tl_lease_err parse_root(const cJSON *root, const uint8_t *key, size_t key_len,
                                    tl_lease_reading *out, const char **member) {
    static const char *const names[R_N] = {"header", "kvs", "count"};
    static const char *const where[R_N] = {"header", "kvs", "count"};
    if (!cJSON_IsObject(root))
        return TL_LEASE_ERR_NOT_OBJECT;
    const cJSON *m[R_N];
    enum tl_lease_err e = members(root, names, R_N, m, where, member);
    if (e != TL_LEASE_OK)
        return e;
    *member = "header";
    if (m[R_HEADER] == NULL)
        return TL_LEASE_ERR_MISSING;
    if (!cJSON_IsObject(m[R_HEADER]))
        return TL_LEASE_ERR_NOT_OBJECT;
    static const char *const hnames[1] = {"revision"};
    static const char *const hwhere[1] = {"header.revision"};
    const cJSON *h[1];
    if ((e = members(m[R_HEADER], hnames, 1, h, hwhere, member)) != TL_LEASE_OK)
        return e;
    *member = "header.revision";
    if ((e = int64_field(h[0], &out->revision)) != TL_LEASE_OK)
        return e;
    if (out->revision == 0)
        return TL_LEASE_ERR_REVISION; /* etcd starts at revision 1 */
    uint64_t count = 0;
    if (m[R_COUNT] != NULL) {
        *member = "count";
        if ((e = int64_field(m[R_COUNT], &count)) != TL_LEASE_OK)
            return e;
    }
    uint64_t nkv = 0;
    const cJSON *kvs = m[R_KVS];
    if (kvs != NULL) {
        *member = "kvs";
        if (!cJSON_IsArray(kvs))
            return TL_LEASE_ERR_KVS;
        for (const cJSON *it = kvs->child; it != NULL; it = it->next) {
            if (nkv == 1) {
                *member = "kvs";
                return TL_LEASE_ERR_TOO_MANY;
            }
            if ((e = one_kv(it, key, key_len, out, member)) != TL_LEASE_OK)
                return e;
            nkv++;
        }
    }
    *member = "count";
    if (count != nkv)
        return TL_LEASE_ERR_COUNT_KVS;
    if (out->present && out->mod_revision > out->revision) {
        *member = "kvs[0].mod_revision";
        return TL_LEASE_ERR_REVISION;
    }
    return TL_LEASE_OK;
}

enum tl_lease_err tl_lease_parse(const char *body, size_t len, const uint8_t *key, size_t key_len,
                                 tl_lease_reading *out, const char **member) {
    const char *unused;
    if (member == NULL)
        member = &unused;
    *member = "";
    TL_ASSERT(key_len <= TL_LEASE_KEY_MAX);
    if (len > TL_LEASE_BODY_MAX)
        return TL_LEASE_ERR_TOO_LARGE;
    if (body == NULL || len == 0 || memchr(body, 0, len) != NULL || has_nul_escape(body, len))
        return TL_LEASE_ERR_JSON;
    memset(out, 0, sizeof *out);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (root == NULL)
        return TL_LEASE_ERR_JSON;
    enum tl_lease_err e = TL_LEASE_OK;
    for (const char *p = end; p < body + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            e = TL_LEASE_ERR_JSON;
            break;
        }
    }
    if (e == TL_LEASE_OK)
        e = parse_root(root, key, key_len, out, member);
    cJSON_Delete(root);
    return e;
}
