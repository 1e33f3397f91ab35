/* config.h: tallyd's one JSON config file, validated against a schema.
 *
 * Every key is a row of one table (config.c): its path, its type, its bounds
 * and its default. That table is the only definition: the loader, the
 * `--check-config` command, the redaction of secrets in bundles and the test
 * that deploy/tally.example.json documents every key all walk it. A wrong
 * key or value is an error that names the key path and the expected form:
 *     ledger.poll_ms: expected integer 1..60000, got "fast"
 * A member whose name starts with '#' is a comment, so the example file can
 * say what each key means next to it: "#poll_ms": "...".
 */
#ifndef TL_CONFIG_H
#define TL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"

#define TL_CFG_PATH_MAX  512u
#define TL_CFG_STR_MAX   256u
#define TL_CFG_PEERS_MAX 16u
#define TL_CFG_URLS_MAX  8u
#define TL_CFG_EAL_MAX   16u

typedef struct tl_cfg_peer {
    uint8_t node_id[TL_ID_BYTES];
    char addr[TL_CFG_STR_MAX]; /* host:port */
    char key_file[TL_CFG_PATH_MAX];
} tl_cfg_peer;

typedef struct tl_config {
    /* engine */
    char engine_ring[TL_CFG_PATH_MAX]; /* ring name (shm) or path; "" = no ring (xwal1) */
    char engine_wal_dir[TL_CFG_PATH_MAX];
    char engine_admin_socket[TL_CFG_PATH_MAX];
    uint64_t engine_beat_ms;
    uint64_t engine_stale_ms;
    /* wal */
    char wal_dialect[16]; /* "tlywal1" or "xwal1" */
    uint64_t wal_durable_grace_ms;
    uint64_t wal_torn_grace_ms;
    uint64_t wal_lag_halt_ms;
    uint64_t wal_start_seq;
    uint64_t wal_read_ahead;   /* io_uring reads in flight */
    uint64_t wal_buffer_bytes; /* bytes per read */
    bool wal_registered_buffers;
    /* window */
    uint64_t window_records;
    uint64_t window_symbols;
    /* hot loop */
    int64_t cpu;   /* -1 = not pinned */
    char idle[16]; /* "spin" or "backoff" */
    bool mlock;
    char state_dir[TL_CFG_PATH_MAX];
    char lock_dir[TL_CFG_PATH_MAX];
    /* keys */
    char keys_sidecar[TL_CFG_PATH_MAX];
    char keys_operator[TL_CFG_PATH_MAX];
    char keys_peer[TL_CFG_PATH_MAX];
    char keys_ledger[TL_CFG_PATH_MAX];
    /* policy */
    char policy_action[16]; /* none | plan | live */
    bool policy_dry_run;
    bool policy_armed;
    uint32_t policy_allow_count;
    char policy_allow[TL_POLICY_ALLOW_MAX][TL_SYMBOL_NAME_MAX + 1];
    uint64_t policy_cooldown_ms;
    uint64_t policy_max_actions_per_minute;
    uint64_t policy_confirmations;
    /* audit */
    uint64_t audit_max_delay_ms;
    uint64_t audit_rotate_bytes;
    /* dead-man */
    uint64_t deadman_beat_ms;
    /* control API */
    char control_socket[TL_CFG_PATH_MAX];
    char control_listen[TL_CFG_STR_MAX];
    char control_token_file[TL_CFG_PATH_MAX];
    /* ledger */
    char ledger_url[TL_CFG_STR_MAX];
    uint64_t ledger_poll_ms;
    uint64_t ledger_timeout_ms;
    uint64_t ledger_max_age_ms;
    uint64_t ledger_ahead_slack;
    uint64_t ledger_lag_throttle_ms;
    uint64_t ledger_lag_halt_ms;
    char ledger_ca_file[TL_CFG_PATH_MAX];
    /* lease */
    char lease_endpoint[TL_CFG_STR_MAX];
    char lease_key[TL_CFG_STR_MAX];
    uint64_t lease_poll_ms;
    uint64_t lease_timeout_ms;
    uint64_t lease_grace_ms;
    /* peer */
    char peer_io[16]; /* kernel | dpdk */
    char peer_listen[TL_CFG_STR_MAX];
    uint64_t peer_beat_ms;
    uint64_t peer_silent_ms;
    uint64_t peer_max_skew_ms;
    uint64_t peer_lag_records;
    uint64_t peer_max_held;
    uint32_t peer_count;
    tl_cfg_peer peers[TL_CFG_PEERS_MAX];
    uint32_t peer_eal_count;
    char peer_eal[TL_CFG_EAL_MAX][TL_CFG_STR_MAX];
    uint64_t peer_dpdk_port;
    /* webhooks */
    uint32_t webhook_count;
    char webhook_urls[TL_CFG_URLS_MAX][TL_CFG_STR_MAX];
    char webhook_format[16]; /* tally | alertmanager */
    uint64_t webhook_queue;
    uint64_t webhook_timeout_ms;
    /* canary and auto-resume */
    uint64_t canary_window_ms;
    uint64_t auto_resume_clean_cycles;
    uint64_t auto_resume_min_pause_ms;
    uint64_t auto_resume_cooldown_ms;
    /* bundle */
    bool bundle_auto;
    char bundle_dir[TL_CFG_PATH_MAX];
    char bundle_signing_key[TL_CFG_PATH_MAX];
    char bundle_snapshot_dir[TL_CFG_PATH_MAX];
    uint64_t bundle_margin_records;
} tl_config;

/* Defaults for every key. */
void tl_config_defaults(tl_config *c);

/* Loads and validates a file. On error returns -1 and writes one line to
 * err: "<key path>: expected <form>, got <value>" or the parse error. */
int tl_config_load(const char *path, tl_config *c, char *err, size_t err_cap);
/* The same over a JSON text (tests, fuzzing). */
int tl_config_parse(const char *json, size_t len, tl_config *c, char *err, size_t err_cap);

/* Fills the loop's settings from the config. */
void tl_config_loop(const tl_config *c, tl_loop_cfg *lc);

/* The schema, for the example-file test and for redaction. */
typedef struct tl_cfg_key {
    const char *path; /* "ledger.poll_ms" */
    const char *form; /* "integer 1..60000" */
    bool secret;      /* a key, token, password or mac: redacted in bundles */
} tl_cfg_key;
size_t tl_config_keys(const tl_cfg_key **out);

/* True for a key whose name looks secret (key, token, password, mac, secret). */
bool tl_config_key_looks_secret(const char *name);

#endif
