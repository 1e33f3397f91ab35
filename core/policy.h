/* policy.h: from a finding to the actions of behavior.md's action table, and
 * the staged enablement gates every planned action passes.
 *
 * Pure decisions over plain values: which commands a finding calls for
 * (plan), and whether a planned command may go out now (gate). The loop owns
 * the lifecycle (actions.h): PLANNED -> BLOCKED{reason} | EXECUTED ->
 * APPLIED | FAILED{error}.
 */
#ifndef TL_POLICY_H
#define TL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "finding.h"
#include "record.h"
#include "symtab.h"

enum tl_cmd {
    TL_CMD_NONE = 0,
    TL_CMD_SET_SYMBOL_MODE = 1,
    TL_CMD_CANCEL_ALL = 2,
    TL_CMD_WITHDRAWALS_HALT = 3,
    TL_CMD_PING = 4,
};
const char *tl_cmd_name(uint8_t cmd); /* "set_symbol_mode", ... */

enum tl_key {
    TL_KEY_SIDECAR = 0,
    TL_KEY_OPERATOR = 1,
};

/* The `action` setting: none (detect-only), plan (plan-only), live. */
enum tl_stage_action {
    TL_ACTION_NONE = 0,
    TL_ACTION_PLAN = 1,
    TL_ACTION_LIVE = 2,
};

/* Gate verdicts, in gate order. */
enum tl_block {
    TL_BLOCK_NONE = 0,
    TL_BLOCK_DETECT_ONLY,
    TL_BLOCK_DRY_RUN,
    TL_BLOCK_NOT_ARMED,
    TL_BLOCK_SYMBOL_NOT_ALLOWED,
    TL_BLOCK_COOLDOWN,
    TL_BLOCK_RATE_LIMITED,
    TL_BLOCK_COUNT,
};
const char *tl_block_name(uint8_t block); /* "detect_only", ... */

/* What made tally plan an action. */
enum tl_origin {
    TL_ORIGIN_FINDING = 0, /* the action table */
    TL_ORIGIN_MANUAL,      /* POST /actions/mode */
    TL_ORIGIN_PIN,         /* canary resume: pin a symbol to the global mode */
    TL_ORIGIN_CANARY,      /* canary resume: one step down */
    TL_ORIGIN_ROLLBACK,    /* canary rollback */
    TL_ORIGIN_AUTO_RESUME, /* SETTLEMENT_LAG SOFT_HALT auto-resume */
    TL_ORIGIN_RESTART,     /* re-sent after a restart from the audit log */
    TL_ORIGIN_COUNT,
};
const char *tl_origin_name(uint8_t origin);

enum tl_action_state {
    TL_ACT_PLANNED = 0,
    TL_ACT_BLOCKED,
    TL_ACT_EXECUTED,
    TL_ACT_APPLIED,
    TL_ACT_FAILED,
    TL_ACT_RECOVERED, /* found applied in the WAL at restart, not in the audit */
    TL_ACT_STATE_COUNT,
};
const char *tl_action_state_name(uint8_t state); /* "PLANNED", ... */

#define TL_REASON_TEXT_MAX 256u
#define TL_TICKET_MAX      64u
#define TL_FROM_MODE_NONE  0xffu

/* One admin command and its lifecycle. Every member but issued_ns and mac
 * is fixed when the action is first sent, and copied by every retry. */
typedef struct tl_action {
    uint8_t id[TL_ID_BYTES];
    uint8_t cmd;       /* enum tl_cmd */
    uint8_t key;       /* enum tl_key */
    uint8_t mode;      /* enum tl_mode (set_symbol_mode) */
    uint8_t from_mode; /* operator relaxations only; TL_FROM_MODE_NONE otherwise */
    uint8_t on;        /* withdrawals_halt */
    uint8_t state;     /* enum tl_action_state */
    uint8_t block;     /* enum tl_block when BLOCKED */
    uint8_t origin;    /* enum tl_origin */
    uint8_t severity;  /* of the finding that planned it */
    uint8_t bundle;    /* the action table asks for a forensic bundle */
    uint8_t acked;     /* the engine answered ok; waiting for its MODE_CHANGE */
    uint16_t check;    /* enum tl_check of that finding (cooldown key), 0 if none */
    uint16_t error;    /* FAILED: the engine's error (an admin error code) */
    uint32_t symbol;   /* scope: a symbol id, 0 = `*` */
    uint32_t sends;    /* how many times it went out */
    uint64_t fence;    /* the fence the engine last wrote with, fixed at first send */
    uint64_t finding_id;
    uint64_t incident;
    uint64_t seq;         /* the finding's seq, for the reason text */
    uint64_t detect_ns;   /* mono: the finding's detection */
    uint64_t planned_ns;  /* mono */
    uint64_t sent_ns;     /* mono: first send */
    uint64_t next_try_ns; /* mono: next retry */
    uint64_t applied_ns;  /* mono: MODE_CHANGE seen */
    uint64_t applied_seq;
    uint64_t issued_ns;                       /* realtime of the latest send */
    char symbol_name[TL_SYMBOL_NAME_MAX + 1]; /* "*" for the global scope */
    char reason[TL_REASON_TEXT_MAX + 1];
    char ticket[TL_TICKET_MAX + 1];
} tl_action;

#define TL_POLICY_ALLOW_MAX  64u
#define TL_POLICY_RATE_MAX   1000u
#define TL_POLICY_COOL_SLOTS 256u

typedef struct tl_policy_cfg {
    uint8_t action; /* enum tl_stage_action */
    bool dry_run;
    bool armed;
    uint32_t allow_count; /* 0 = every symbol */
    char allow[TL_POLICY_ALLOW_MAX][TL_SYMBOL_NAME_MAX + 1];
    uint64_t cooldown_ms;            /* default 60000 */
    uint32_t max_actions_per_minute; /* default 10, <= TL_POLICY_RATE_MAX */
    bool bundle_auto;                /* default true */
} tl_policy_cfg;

void tl_policy_cfg_defaults(tl_policy_cfg *c);

/* "detect", "plan", "blocked" or "live" for /capabilities. */
const char *tl_policy_stage(const tl_policy_cfg *c);

typedef struct tl_policy {
    tl_policy_cfg cfg;
    /* cooldown: the last APPLIED time per (check, scope) */
    struct {
        uint16_t check;
        uint32_t scope;
        uint64_t applied_ns;
    } cool[TL_POLICY_COOL_SLOTS];
    uint32_t cool_next;
    /* rate limit: mono times of the last executions, a ring */
    uint64_t exec_ns[TL_POLICY_RATE_MAX];
    uint32_t exec_head;
    uint32_t exec_count;
} tl_policy;

void tl_policy_init(tl_policy *p, const tl_policy_cfg *cfg);

/* The actions the table calls for. Fills at most `max` actions (cmd, key,
 * mode, on, symbol, check, severity, bundle, origin, seq), returns how many.
 * `dialect` decides the split-brain scope: `*` for the native format, the
 * affected symbol for xwal1. */
int tl_policy_plan(const tl_finding *f, uint8_t dialect, tl_action *out, int max);

/* Whether the action table asks for a forensic bundle for f, given the
 * actions tl_policy_plan planned for it: any of them carries the flag (every
 * SEV1 row), or f's row asks for one without any action (STALE_PEER_LEADER:
 * "alert (and a bundle)", behavior.md). The loop asks this rather than
 * reading the flags alone, so that a row with no action can ask too. */
bool tl_policy_wants_bundle(const tl_finding *f, const tl_action *acts, int n);

/* The first gate that blocks `a` now, or TL_BLOCK_NONE. Manual, pin, canary
 * and rollback actions skip cooldown, rate and allowlist (behavior.md). */
enum tl_block tl_policy_gate(const tl_policy *p, const tl_action *a, tl_symtab *syms,
                             uint64_t now_ns);

/* Bookkeeping the gates need. */
void tl_policy_executed(tl_policy *p, uint64_t now_ns);
void tl_policy_applied(tl_policy *p, uint16_t check, uint32_t scope, uint64_t now_ns);

/* Command ids: 8 random bytes, then 8 bytes that tie them to this tally's
 * tag seed (derived from its sidecar key), so that at restart tally knows
 * its own commands among the MODE_CHANGEs of the WAL. A recognition tag, not
 * an authenticator: the engine authenticates commands by their mac. */
void tl_action_id_mint(uint64_t *rng, uint64_t tag_seed, uint8_t out[TL_ID_BYTES]);
bool tl_action_id_is_ours(const uint8_t id[TL_ID_BYTES], uint64_t tag_seed);

#endif
