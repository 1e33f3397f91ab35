/* config.c: the schema of tallyd's config and its loader (see config.h). */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assert.h"
#include "io/webhook.h"

enum kind {
    K_OBJ = 0, /* a section */
    K_U64,     /* integer in [min, max] */
    K_I64,     /* integer in [min, max], may be negative */
    K_BOOL,
    K_STR,   /* string up to cap bytes; enum_ lists allowed values if set */
    K_PATH,  /* a file system path ("" allowed) */
    K_POW2,  /* integer power of two in [min, max] */
    K_ALLOW, /* array of symbol names */
    K_PEERS, /* array of {node_id, addr, key_file} */
    K_URLS,  /* array of URLs */
    K_EAL,   /* array of strings */
};

typedef struct row {
    const char *path;
    enum kind kind;
    size_t off;
    size_t cap;
    int64_t min;
    int64_t max;
    const char *enum_; /* "a|b|c" */
    bool secret;
} row;

#define O(f) offsetof(tl_config, f)
#define S(f) sizeof(((tl_config *)0)->f)

static const row rows[] = {
    {"engine", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"engine.ring", K_STR, O(engine_ring), S(engine_ring), 0, 0, NULL, false},
    {"engine.wal_dir", K_PATH, O(engine_wal_dir), S(engine_wal_dir), 0, 0, NULL, false},
    {"engine.admin_socket", K_PATH, O(engine_admin_socket), S(engine_admin_socket), 0, 0, NULL,
     false},
    {"engine.beat_ms", K_U64, O(engine_beat_ms), 0, 1, 10000, NULL, false},
    {"engine.stale_ms", K_U64, O(engine_stale_ms), 0, 1, 600000, NULL, false},
    {"wal", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"wal.dialect", K_STR, O(wal_dialect), S(wal_dialect), 0, 0, "tlywal1|xwal1", false},
    {"wal.durable_grace_ms", K_U64, O(wal_durable_grace_ms), 0, 1, 600000, NULL, false},
    {"wal.torn_grace_ms", K_U64, O(wal_torn_grace_ms), 0, 1, 600000, NULL, false},
    {"wal.lag_halt_ms", K_U64, O(wal_lag_halt_ms), 0, 1, 3600000, NULL, false},
    {"wal.start_seq", K_U64, O(wal_start_seq), 0, 0, INT64_MAX, NULL, false},
    {"wal.read_ahead", K_U64, O(wal_read_ahead), 0, 1, 64, NULL, false},
    {"wal.buffer_bytes", K_POW2, O(wal_buffer_bytes), 0, 131072, 16777216, NULL, false},
    {"wal.registered_buffers", K_BOOL, O(wal_registered_buffers), 0, 0, 0, NULL, false},
    {"window", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"window.records", K_POW2, O(window_records), 0, 1024, 1ll << 26, NULL, false},
    {"window.symbols", K_POW2, O(window_symbols), 0, 16, 1 << 20, NULL, false},
    {"cpu", K_I64, O(cpu), 0, -1, 4095, NULL, false},
    {"idle", K_STR, O(idle), S(idle), 0, 0, "spin|backoff", false},
    {"mlock", K_BOOL, O(mlock), 0, 0, 0, NULL, false},
    {"state_dir", K_PATH, O(state_dir), S(state_dir), 0, 0, NULL, false},
    {"lock_dir", K_PATH, O(lock_dir), S(lock_dir), 0, 0, NULL, false},
    {"keys", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"keys.sidecar", K_PATH, O(keys_sidecar), S(keys_sidecar), 0, 0, NULL, true},
    {"keys.operator", K_PATH, O(keys_operator), S(keys_operator), 0, 0, NULL, true},
    {"keys.peer", K_PATH, O(keys_peer), S(keys_peer), 0, 0, NULL, true},
    {"keys.ledger", K_PATH, O(keys_ledger), S(keys_ledger), 0, 0, NULL, true},
    {"policy", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"policy.action", K_STR, O(policy_action), S(policy_action), 0, 0, "none|plan|live", false},
    {"policy.dry_run", K_BOOL, O(policy_dry_run), 0, 0, 0, NULL, false},
    {"policy.armed", K_BOOL, O(policy_armed), 0, 0, 0, NULL, false},
    {"policy.symbol_allowlist", K_ALLOW, 0, 0, 0, 0, NULL, false},
    {"policy.cooldown_ms", K_U64, O(policy_cooldown_ms), 0, 0, 86400000, NULL, false},
    {"policy.max_actions_per_minute", K_U64, O(policy_max_actions_per_minute), 0, 1,
     TL_POLICY_RATE_MAX, NULL, false},
    {"policy.confirmations", K_U64, O(policy_confirmations), 0, 1, 100, NULL, false},
    {"audit", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"audit.max_delay_ms", K_U64, O(audit_max_delay_ms), 0, 1, 10000, NULL, false},
    {"audit.rotate_bytes", K_U64, O(audit_rotate_bytes), 0, 4096, 1ll << 40, NULL, false},
    {"deadman", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"deadman.beat_ms", K_U64, O(deadman_beat_ms), 0, 1, 10000, NULL, false},
    {"control", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"control.socket", K_PATH, O(control_socket), S(control_socket), 0, 0, NULL, false},
    {"control.listen", K_STR, O(control_listen), S(control_listen), 0, 0, NULL, false},
    {"control.token_file", K_PATH, O(control_token_file), S(control_token_file), 0, 0, NULL, true},
    {"ledger", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"ledger.url", K_STR, O(ledger_url), S(ledger_url), 0, 0, NULL, false},
    {"ledger.poll_ms", K_U64, O(ledger_poll_ms), 0, 1, 60000, NULL, false},
    {"ledger.timeout_ms", K_U64, O(ledger_timeout_ms), 0, 1, 60000, NULL, false},
    {"ledger.max_age_ms", K_U64, O(ledger_max_age_ms), 0, 1, 3600000, NULL, false},
    {"ledger.ahead_slack", K_U64, O(ledger_ahead_slack), 0, 0, 1ll << 40, NULL, false},
    {"ledger.lag_throttle_ms", K_U64, O(ledger_lag_throttle_ms), 0, 1, 3600000, NULL, false},
    {"ledger.lag_halt_ms", K_U64, O(ledger_lag_halt_ms), 0, 1, 3600000, NULL, false},
    {"ledger.ca_file", K_PATH, O(ledger_ca_file), S(ledger_ca_file), 0, 0, NULL, false},
    {"lease", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"lease.endpoint", K_STR, O(lease_endpoint), S(lease_endpoint), 0, 0, NULL, false},
    {"lease.key", K_STR, O(lease_key), S(lease_key), 0, 0, NULL, false},
    {"lease.poll_ms", K_U64, O(lease_poll_ms), 0, 1, 60000, NULL, false},
    {"lease.timeout_ms", K_U64, O(lease_timeout_ms), 0, 1, 60000, NULL, false},
    {"lease.grace_ms", K_U64, O(lease_grace_ms), 0, 0, 60000, NULL, false},
    {"peer", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"peer.io", K_STR, O(peer_io), S(peer_io), 0, 0, "kernel|dpdk", false},
    {"peer.listen", K_STR, O(peer_listen), S(peer_listen), 0, 0, NULL, false},
    {"peer.beat_ms", K_U64, O(peer_beat_ms), 0, 1, 60000, NULL, false},
    {"peer.silent_ms", K_U64, O(peer_silent_ms), 0, 1, 600000, NULL, false},
    {"peer.max_skew_ms", K_U64, O(peer_max_skew_ms), 0, 1, 600000, NULL, false},
    {"peer.lag_records", K_U64, O(peer_lag_records), 0, 1, 1ll << 40, NULL, false},
    {"peer.max_held", K_U64, O(peer_max_held), 0, 1, 4096, NULL, false},
    {"peer.peers", K_PEERS, 0, 0, 0, 0, NULL, false},
    {"peer.dpdk_eal_args", K_EAL, 0, 0, 0, 0, NULL, false},
    {"peer.dpdk_port", K_U64, O(peer_dpdk_port), 0, 0, 1023, NULL, false},
    {"webhooks", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"webhooks.urls", K_URLS, 0, 0, 0, 0, NULL, false},
    {"webhooks.format", K_STR, O(webhook_format), S(webhook_format), 0, 0, "tally|alertmanager",
     false},
    /* the most io/webhook.h keeps: a larger value would be cut silently */
    {"webhooks.queue", K_U64, O(webhook_queue), 0, 1, TL_WEBHOOK_QUEUE_MAX, NULL, false},
    {"webhooks.timeout_ms", K_U64, O(webhook_timeout_ms), 0, 1, 600000, NULL, false},
    {"canary", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"canary.window_ms", K_U64, O(canary_window_ms), 0, 1, 86400000, NULL, false},
    {"auto_resume", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"auto_resume.clean_cycles", K_U64, O(auto_resume_clean_cycles), 0, 1, 1000, NULL, false},
    {"auto_resume.min_pause_ms", K_U64, O(auto_resume_min_pause_ms), 0, 0, 86400000, NULL, false},
    {"auto_resume.cooldown_ms", K_U64, O(auto_resume_cooldown_ms), 0, 0, 86400000, NULL, false},
    {"bundle", K_OBJ, 0, 0, 0, 0, NULL, false},
    {"bundle.auto", K_BOOL, O(bundle_auto), 0, 0, 0, NULL, false},
    {"bundle.dir", K_PATH, O(bundle_dir), S(bundle_dir), 0, 0, NULL, false},
    {"bundle.signing_key", K_PATH, O(bundle_signing_key), S(bundle_signing_key), 0, 0, NULL, true},
    {"bundle.snapshot_dir", K_PATH, O(bundle_snapshot_dir), S(bundle_snapshot_dir), 0, 0, NULL,
     false},
    {"bundle.margin_records", K_U64, O(bundle_margin_records), 0, 0, 1ll << 32, NULL, false},
};

#define NROWS (sizeof rows / sizeof rows[0])

static tl_cfg_key keys_out[NROWS];
static char forms[NROWS][64];

static void form_of(const row *r, char *buf, size_t cap) {
    switch (r->kind) {
        case K_OBJ:
            snprintf(buf, cap, "object");
            break;
        case K_U64:
        case K_I64:
            snprintf(buf, cap, "integer %lld..%lld", (long long)r->min, (long long)r->max);
            break;
        case K_POW2:
            snprintf(buf, cap, "power of two %lld..%lld", (long long)r->min, (long long)r->max);
            break;
        case K_BOOL:
            snprintf(buf, cap, "true or false");
            break;
        case K_STR:
            if (r->enum_ != NULL)
                snprintf(buf, cap, "one of \"%s\"", r->enum_);
            else
                snprintf(buf, cap, "string of at most %zu bytes", r->cap - 1);
            break;
        case K_PATH:
            snprintf(buf, cap, "path of at most %zu bytes", r->cap - 1);
            break;
        case K_ALLOW:
            snprintf(buf, cap, "array of at most %u symbol names", TL_POLICY_ALLOW_MAX);
            break;
        case K_PEERS:
            snprintf(buf, cap, "array of at most %u {node_id, addr, key_file}", TL_CFG_PEERS_MAX);
            break;
        case K_URLS:
            snprintf(buf, cap, "array of at most %u URLs", TL_CFG_URLS_MAX);
            break;
        case K_EAL:
            snprintf(buf, cap, "array of at most %u strings", TL_CFG_EAL_MAX);
            break;
    }
}

size_t tl_config_keys(const tl_cfg_key **out) {
    for (size_t i = 0; i < NROWS; i++) {
        form_of(&rows[i], forms[i], sizeof forms[i]);
        keys_out[i].path = rows[i].path;
        keys_out[i].form = forms[i];
        keys_out[i].secret = rows[i].secret;
    }
    *out = keys_out;
    return NROWS;
}

bool tl_config_key_looks_secret(const char *name) {
    static const char *const words[] = {"key", "token", "password", "passwd", "mac", "secret"};
    char low[128];
    size_t n = strlen(name);
    if (n >= sizeof low)
        n = sizeof low - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    low[n] = '\0';
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        if (strstr(low, words[w]) != NULL)
            return true;
    }
    return false;
}

void tl_config_defaults(tl_config *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->engine_ring, "main");
    strcpy(c->engine_wal_dir, "/var/lib/engine/wal");
    strcpy(c->engine_admin_socket, "/run/tally/engine-admin.sock");
    c->engine_beat_ms = 10;
    c->engine_stale_ms = 250;
    strcpy(c->wal_dialect, "tlywal1");
    c->wal_durable_grace_ms = 200;
    c->wal_torn_grace_ms = 1000;
    c->wal_lag_halt_ms = 2000;
    c->wal_read_ahead = 4;
    c->wal_buffer_bytes = 1u << 20;
    c->wal_registered_buffers = true;
    c->window_records = 1u << 20;
    c->window_symbols = 4096;
    c->cpu = -1;
    strcpy(c->idle, "spin");
    c->mlock = true;
    strcpy(c->state_dir, "/var/lib/tally");
    strcpy(c->lock_dir, "/run/tally");
    strcpy(c->keys_sidecar, "/etc/tally/sidecar.key");
    strcpy(c->policy_action, "live");
    c->policy_armed = true;
    c->policy_cooldown_ms = 60000;
    c->policy_max_actions_per_minute = 10;
    c->policy_confirmations = 3;
    c->audit_max_delay_ms = 50;
    c->audit_rotate_bytes = 64u << 20;
    c->deadman_beat_ms = 10;
    strcpy(c->control_socket, "/run/tally/tally.sock");
    strcpy(c->control_listen, "127.0.0.1:9090");
    c->ledger_poll_ms = 20;
    c->ledger_timeout_ms = 200;
    c->ledger_max_age_ms = 1000;
    c->ledger_lag_throttle_ms = 2000;
    c->ledger_lag_halt_ms = 10000;
    c->lease_poll_ms = 50;
    c->lease_timeout_ms = 200;
    c->lease_grace_ms = 200;
    strcpy(c->peer_io, "kernel");
    strcpy(c->peer_listen, "0.0.0.0:7471");
    c->peer_beat_ms = 5;
    c->peer_silent_ms = 100;
    c->peer_max_skew_ms = 1000;
    c->peer_lag_records = 100000;
    c->peer_max_held = 64;
    strcpy(c->webhook_format, "tally");
    c->webhook_queue = 1024;
    c->webhook_timeout_ms = 2000;
    c->canary_window_ms = 300000;
    c->auto_resume_clean_cycles = 2;
    c->auto_resume_min_pause_ms = 900000;
    c->auto_resume_cooldown_ms = 1800000;
    c->bundle_auto = true;
    strcpy(c->bundle_dir, "/var/lib/tally/bundles");
    c->bundle_margin_records = 1000;
}

typedef struct perr {
    char *buf;
    size_t cap;
} perr;

/* "<path>: expected <form>, got <value>" */
static int bad(perr *e, const row *r, const char *path, const cJSON *got) {
    char form[96];
    if (r != NULL)
        form_of(r, form, sizeof form);
    else
        snprintf(form, sizeof form, "a known key");
    char shown[64];
    if (got == NULL) {
        snprintf(shown, sizeof shown, "nothing");
    } else {
        char *p = cJSON_PrintUnformatted(got);
        if (p == NULL) {
            snprintf(shown, sizeof shown, "?");
        } else {
            /* Values can be long: show at most 40 bytes of them. */
            snprintf(shown, sizeof shown, "%.40s%s", p, strlen(p) > 40 ? "..." : "");
            cJSON_free(p);
        }
    }
    snprintf(e->buf, e->cap, "%s: expected %s, got %s", path, form, shown);
    return -1;
}

static const row *find_row(const char *path) {
    for (size_t i = 0; i < NROWS; i++) {
        if (strcmp(rows[i].path, path) == 0)
            return &rows[i];
    }
    return NULL;
}

/* Integers must be written as JSON integers: no fraction, no exponent beyond
 * what a double holds exactly (config values are far below 2^53). */
static bool as_int(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (d != d || d < -9007199254740992.0 || d > 9007199254740992.0)
        return false;
    int64_t i = (int64_t)d;
    if ((double)i != d)
        return false;
    *out = i;
    return true;
}

static int set_str(perr *e, const row *r, const char *path, const cJSON *v, char *dst, size_t cap) {
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap)
        return bad(e, r, path, v);
    if (r != NULL && r->enum_ != NULL) {
        const char *p = r->enum_;
        size_t n = strlen(v->valuestring);
        bool ok = false;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            if (len == n && memcmp(p, v->valuestring, n) == 0)
                ok = true;
            p += len + (bar ? 1 : 0);
        }
        if (!ok)
            return bad(e, r, path, v);
    }
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

static int hex16(const char *s, uint8_t out[TL_ID_BYTES]) {
    if (strlen(s) != 32)
        return -1;
    for (int i = 0; i < 16; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char ch = s[2 * i + k];
            int d = (ch >= '0' && ch <= '9')   ? ch - '0'
                    : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10
                                               : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

static int set_array(perr *e, const row *r, const char *path, const cJSON *v, tl_config *c) {
    if (!cJSON_IsArray(v))
        return bad(e, r, path, v);
    int n = cJSON_GetArraySize(v);
    char sub[128];
    switch (r->kind) {
        case K_ALLOW:
            if (n > (int)TL_POLICY_ALLOW_MAX)
                return bad(e, r, path, v);
            for (int i = 0; i < n; i++) {
                const cJSON *it = cJSON_GetArrayItem(v, i);
                snprintf(sub, sizeof sub, "%s[%d]", path, i);
                if (!cJSON_IsString(it) ||
                    !tl_symbol_name_valid(it->valuestring, strlen(it->valuestring))) {
                    snprintf(e->buf, e->cap, "%s: expected a symbol name [A-Za-z0-9._-]{1,24}",
                             sub);
                    return -1;
                }
                strcpy(c->policy_allow[i], it->valuestring);
            }
            c->policy_allow_count = (uint32_t)n;
            return 0;
        case K_URLS:
            if (n > (int)TL_CFG_URLS_MAX)
                return bad(e, r, path, v);
            for (int i = 0; i < n; i++) {
                const cJSON *it = cJSON_GetArrayItem(v, i);
                snprintf(sub, sizeof sub, "%s[%d]", path, i);
                if (!cJSON_IsString(it) || strlen(it->valuestring) >= TL_CFG_STR_MAX ||
                    (strncmp(it->valuestring, "http://", 7) != 0 &&
                     strncmp(it->valuestring, "https://", 8) != 0)) {
                    snprintf(e->buf, e->cap, "%s: expected an http:// or https:// URL", sub);
                    return -1;
                }
                strcpy(c->webhook_urls[i], it->valuestring);
            }
            c->webhook_count = (uint32_t)n;
            return 0;
        case K_EAL:
            if (n > (int)TL_CFG_EAL_MAX)
                return bad(e, r, path, v);
            for (int i = 0; i < n; i++) {
                const cJSON *it = cJSON_GetArrayItem(v, i);
                snprintf(sub, sizeof sub, "%s[%d]", path, i);
                if (set_str(e, NULL, sub, it, c->peer_eal[i], TL_CFG_STR_MAX) != 0)
                    return -1;
            }
            c->peer_eal_count = (uint32_t)n;
            return 0;
        case K_PEERS:
            if (n > (int)TL_CFG_PEERS_MAX)
                return bad(e, r, path, v);
            for (int i = 0; i < n; i++) {
                const cJSON *it = cJSON_GetArrayItem(v, i);
                tl_cfg_peer *p = &c->peers[i];
                snprintf(sub, sizeof sub, "%s[%d]", path, i);
                if (!cJSON_IsObject(it)) {
                    snprintf(e->buf, e->cap, "%s: expected an object {node_id, addr, key_file}",
                             sub);
                    return -1;
                }
                const cJSON *m;
                cJSON_ArrayForEach(m, it) {
                    char mp[TL_CFG_PATH_MAX + 64];
                    snprintf(mp, sizeof mp, "%s.%s", sub, m->string);
                    if (strcmp(m->string, "node_id") == 0) {
                        if (!cJSON_IsString(m) || hex16(m->valuestring, p->node_id) != 0) {
                            snprintf(e->buf, e->cap, "%s: expected 32 lowercase hex digits", mp);
                            return -1;
                        }
                    } else if (strcmp(m->string, "addr") == 0) {
                        if (set_str(e, NULL, mp, m, p->addr, sizeof p->addr) != 0)
                            return -1;
                    } else if (strcmp(m->string, "key_file") == 0) {
                        if (set_str(e, NULL, mp, m, p->key_file, sizeof p->key_file) != 0)
                            return -1;
                    } else {
                        snprintf(e->buf, e->cap,
                                 "%s: unknown key (expected node_id, addr, key_file)", mp);
                        return -1;
                    }
                }
                if (p->addr[0] == '\0' || tl_id_is_zero(p->node_id)) {
                    snprintf(e->buf, e->cap, "%s: node_id and addr are required", sub);
                    return -1;
                }
            }
            c->peer_count = (uint32_t)n;
            return 0;
        default:
            TL_UNREACHABLE();
    }
}

static int set_value(perr *e, const row *r, const char *path, const cJSON *v, tl_config *c) {
    uint8_t *base = (uint8_t *)c;
    int64_t i;
    switch (r->kind) {
        case K_U64:
        case K_POW2:
            if (!as_int(v, &i) || i < r->min || i > r->max)
                return bad(e, r, path, v);
            if (r->kind == K_POW2 && (i & (i - 1)) != 0)
                return bad(e, r, path, v);
            *(uint64_t *)(base + r->off) = (uint64_t)i;
            return 0;
        case K_I64:
            if (!as_int(v, &i) || i < r->min || i > r->max)
                return bad(e, r, path, v);
            *(int64_t *)(base + r->off) = i;
            return 0;
        case K_BOOL:
            if (!cJSON_IsBool(v))
                return bad(e, r, path, v);
            *(bool *)(base + r->off) = cJSON_IsTrue(v);
            return 0;
        case K_STR:
        case K_PATH:
            return set_str(e, r, path, v, (char *)(base + r->off), r->cap);
        case K_ALLOW:
        case K_PEERS:
        case K_URLS:
        case K_EAL:
            return set_array(e, r, path, v, c);
        case K_OBJ:
            return bad(e, r, path, v);
    }
    return -1;
}

/* Walks one object level. Sections nest one deep, so a loop over the two
 * levels is enough: no recursion. */
static int walk(perr *e, const cJSON *root, tl_config *c) {
    if (!cJSON_IsObject(root)) {
        snprintf(e->buf, e->cap, "(root): expected a JSON object");
        return -1;
    }
    const cJSON *top;
    cJSON_ArrayForEach(top, root) {
        if (top->string[0] == '#')
            continue; /* a comment: "#key": "what key means" */
        const row *r = find_row(top->string);
        if (r == NULL) {
            snprintf(e->buf, e->cap, "%s: unknown key", top->string);
            return -1;
        }
        if (r->kind != K_OBJ) {
            if (set_value(e, r, top->string, top, c) != 0)
                return -1;
            continue;
        }
        if (!cJSON_IsObject(top))
            return bad(e, r, top->string, top);
        const cJSON *m;
        cJSON_ArrayForEach(m, top) {
            if (m->string[0] == '#')
                continue;
            char path[TL_CFG_PATH_MAX];
            snprintf(path, sizeof path, "%s.%s", top->string, m->string);
            const row *mr = find_row(path);
            if (mr == NULL || mr->kind == K_OBJ) {
                snprintf(e->buf, e->cap, "%s: unknown key", path);
                return -1;
            }
            if (set_value(e, mr, path, m, c) != 0)
                return -1;
        }
    }
    return 0;
}

static bool dup_in(const cJSON *obj, char *dup, size_t cap) {
    const cJSON *a, *b;
    cJSON_ArrayForEach(a, obj) {
        for (b = a->next; b != NULL; b = b->next) {
            if (a->string != NULL && b->string != NULL && strcmp(a->string, b->string) == 0) {
                snprintf(dup, cap, "%s", a->string);
                return true;
            }
        }
    }
    return false;
}

/* cJSON keeps a repeated key as two members; a config must not. The schema
 * nests at most three levels (section, array, object), so three loops look
 * at every object: no recursion. */
static bool has_duplicate_keys(const cJSON *root, char *dup, size_t cap) {
    if (dup_in(root, dup, cap))
        return true;
    const cJSON *sec;
    cJSON_ArrayForEach(sec, root) {
        if (cJSON_IsObject(sec) && dup_in(sec, dup, cap))
            return true;
        const cJSON *m;
        cJSON_ArrayForEach(m, sec) {
            if (!cJSON_IsArray(m))
                continue;
            const cJSON *it;
            cJSON_ArrayForEach(it, m) {
                if (cJSON_IsObject(it) && dup_in(it, dup, cap))
                    return true;
            }
        }
    }
    return false;
}

int tl_config_parse(const char *json, size_t len, tl_config *c, char *err, size_t err_cap) {
    perr e = {err, err_cap};
    tl_config_defaults(c);
    if (len > (1u << 20)) {
        snprintf(err, err_cap, "(root): config larger than 1 MiB");
        return -1;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (root == NULL) {
        size_t at = end != NULL && end >= json ? (size_t)(end - json) : 0;
        snprintf(err, err_cap, "(root): not valid JSON near byte %zu", at);
        return -1;
    }
    char dup[128];
    int rc = 0;
    if (has_duplicate_keys(root, dup, sizeof dup)) {
        snprintf(err, err_cap, "%s: key appears twice", dup);
        rc = -1;
    } else {
        rc = walk(&e, root, c);
    }
    cJSON_Delete(root);
    if (rc != 0)
        return -1;
    /* cross-key rules */
    if (c->engine_wal_dir[0] == '\0') {
        snprintf(err, err_cap, "engine.wal_dir: expected a path, got \"\"");
        return -1;
    }
    if (strcmp(c->wal_dialect, "xwal1") == 0 && c->engine_ring[0] != '\0') {
        snprintf(err, err_cap,
                 "engine.ring: expected \"\" with wal.dialect \"xwal1\" (that engine "
                 "publishes no ring)");
        return -1;
    }
    if (c->ledger_lag_halt_ms < c->ledger_lag_throttle_ms) {
        snprintf(err, err_cap,
                 "ledger.lag_halt_ms: expected >= ledger.lag_throttle_ms (%llu), got %llu",
                 (unsigned long long)c->ledger_lag_throttle_ms,
                 (unsigned long long)c->ledger_lag_halt_ms);
        return -1;
    }
    if (c->state_dir[0] == '\0') {
        snprintf(err, err_cap, "state_dir: expected a path, got \"\"");
        return -1;
    }
    /* The lease authority: checked here, at load, so a typo stops tallyd
     * before it runs instead of showing up as LEASE_UNREACHABLE later. */
    if (c->lease_endpoint[0] != '\0') {
        if (strncmp(c->lease_endpoint, "http://", 7) != 0 &&
            strncmp(c->lease_endpoint, "https://", 8) != 0) {
            snprintf(err, err_cap,
                     "lease.endpoint: expected an http:// or https:// URL, got \"%s\"",
                     c->lease_endpoint);
            return -1;
        }
        if (c->lease_key[0] == '\0') {
            snprintf(err, err_cap,
                     "lease.key: expected the leader key with lease.endpoint, got \"\"");
            return -1;
        }
    }
    return 0;
}

int tl_config_load(const char *path, tl_config *c, char *err, size_t err_cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, err_cap, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size > (1 << 20)) {
        snprintf(err, err_cap, "%s: not a readable file under 1 MiB", path);
        close(fd);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (buf == NULL) {
        close(fd);
        snprintf(err, err_cap, "%s: out of memory", path);
        return -1;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(err, err_cap, "%s: read: %s", path, r < 0 ? strerror(errno) : "short");
            free(buf);
            close(fd);
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    int rc = tl_config_parse(buf, n, c, err, err_cap);
    free(buf);
    return rc;
}

void tl_config_loop(const tl_config *c, tl_loop_cfg *lc) {
    tl_loop_cfg_defaults(lc);
    lc->dialect = strcmp(c->wal_dialect, "xwal1") == 0 ? TL_DIALECT_XWAL1 : TL_DIALECT_TLYWAL1;
    lc->window_records = c->window_records;
    lc->max_symbols = (uint32_t)c->window_symbols;
    lc->confirmations = (uint32_t)c->policy_confirmations;
    lc->durable_grace_ms = c->wal_durable_grace_ms;
    lc->torn_grace_ms = c->wal_torn_grace_ms;
    lc->lag_halt_ms = c->wal_lag_halt_ms;
    lc->engine_stale_ms = c->engine_stale_ms;
    lc->bundle_margin = c->bundle_margin_records;
    lc->ring = c->engine_ring[0] != '\0';
    tl_policy_cfg *p = &lc->policy;
    tl_policy_cfg_defaults(p);
    p->action = strcmp(c->policy_action, "none") == 0   ? TL_ACTION_NONE
                : strcmp(c->policy_action, "plan") == 0 ? TL_ACTION_PLAN
                                                        : TL_ACTION_LIVE;
    p->dry_run = c->policy_dry_run;
    p->armed = c->policy_armed;
    p->allow_count = c->policy_allow_count;
    memcpy(p->allow, c->policy_allow, sizeof p->allow);
    p->cooldown_ms = c->policy_cooldown_ms;
    p->max_actions_per_minute = (uint32_t)c->policy_max_actions_per_minute;
    p->bundle_auto = c->bundle_auto;
    if (lc->dialect == TL_DIALECT_XWAL1) {
        /* xwal1 seqs count per symbol, so the loop keeps one window per
         * symbol: window.symbols bounds how many (at most
         * TL_XWAL1_SYMBOLS_DEFAULT: each is a log, a stream and a window
         * allocated at start-up), and window.records is shared between
         * them, at least 1024 seqs each. With the defaults (1 Mi records,
         * 4096 symbols) that is TL_XWAL1_WINDOW_RECORDS_DEFAULT per symbol,
         * as `tallyctl wal verify` uses: test_xwal1_restart checks it. */
        uint32_t n =
            lc->max_symbols < TL_XWAL1_SYMBOLS_DEFAULT ? lc->max_symbols : TL_XWAL1_SYMBOLS_DEFAULT;
        uint64_t w = lc->window_records / n;
        lc->xwal1_symbols = n;
        lc->xwal1_window_records = w < 1024 ? 1024 : w;
    }
}
