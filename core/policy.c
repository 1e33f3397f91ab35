/* policy.c: the action table and the gates of behavior.md. */
#include "policy.h"

#include <string.h>

#include "assert.h"
#include "stream.h"

const char *tl_cmd_name(uint8_t cmd) {
    switch (cmd) {
        case TL_CMD_SET_SYMBOL_MODE:
            return "set_symbol_mode";
        case TL_CMD_CANCEL_ALL:
            return "cancel_all";
        case TL_CMD_WITHDRAWALS_HALT:
            return "withdrawals_halt";
        case TL_CMD_PING:
            return "ping";
        default:
            return "none";
    }
}

const char *tl_block_name(uint8_t block) {
    static const char *const names[TL_BLOCK_COUNT] = {
        "none",     "detect_only",  "dry_run", "not_armed", "symbol_not_allowed",
        "cooldown", "rate_limited",
    };
    return block < TL_BLOCK_COUNT ? names[block] : "?";
}

const char *tl_origin_name(uint8_t origin) {
    static const char *const names[TL_ORIGIN_COUNT] = {
        "finding", "manual", "pin", "canary", "rollback", "auto_resume", "restart",
    };
    return origin < TL_ORIGIN_COUNT ? names[origin] : "?";
}

const char *tl_action_state_name(uint8_t state) {
    static const char *const names[TL_ACT_STATE_COUNT] = {
        "PLANNED", "BLOCKED", "EXECUTED", "APPLIED", "FAILED", "RECOVERED",
    };
    return state < TL_ACT_STATE_COUNT ? names[state] : "?";
}

void tl_policy_cfg_defaults(tl_policy_cfg *c) {
    memset(c, 0, sizeof *c);
    c->action = TL_ACTION_LIVE;
    c->dry_run = false;
    c->armed = true;
    c->cooldown_ms = 60000;
    c->max_actions_per_minute = 10;
    c->bundle_auto = true;
}

const char *tl_policy_stage(const tl_policy_cfg *c) {
    if (c->action == TL_ACTION_NONE)
        return "detect";
    if (c->action == TL_ACTION_PLAN || c->dry_run)
        return "plan";
    if (!c->armed)
        return "blocked";
    return "live";
}

void tl_policy_init(tl_policy *p, const tl_policy_cfg *cfg) {
    memset(p, 0, sizeof *p);
    TL_ASSERT(cfg->max_actions_per_minute <= TL_POLICY_RATE_MAX);
    TL_ASSERT(cfg->allow_count <= TL_POLICY_ALLOW_MAX);
    p->cfg = *cfg;
}

static void planned(tl_action *a, const tl_finding *f, uint8_t cmd, uint8_t mode, uint32_t scope) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->key = TL_KEY_SIDECAR;
    a->mode = mode;
    a->from_mode = TL_FROM_MODE_NONE;
    a->on = cmd == TL_CMD_WITHDRAWALS_HALT;
    a->state = TL_ACT_PLANNED;
    a->origin = TL_ORIGIN_FINDING;
    a->severity = f->severity;
    a->check = f->check;
    a->symbol = scope;
    a->finding_id = f->id;
    a->seq = f->seq;
    a->detect_ns = f->detect_ns;
}

int tl_policy_plan(const tl_finding *f, uint8_t dialect, tl_action *out, int max) {
    TL_ASSERT(max >= 2);
    const tl_check_info *ci = tl_check_info_of((enum tl_check)f->check);
    int n = 0;
    switch (ci->family) {
        case TL_FAMILY_SPLIT_BRAIN: {
            /* Native: seq, chain and fence are global, two writers touch
             * every symbol. xwal1 counts per symbol. */
            uint32_t scope = dialect == TL_DIALECT_XWAL1 ? f->symbol : 0;
            planned(&out[n++], f, TL_CMD_SET_SYMBOL_MODE, TL_MODE_HARD_HALT, scope);
            planned(&out[n++], f, TL_CMD_WITHDRAWALS_HALT, 0, 0);
            out[0].bundle = 1;
            break;
        }
        case TL_FAMILY_LEDGER:
            planned(&out[n++], f, TL_CMD_SET_SYMBOL_MODE, TL_MODE_CANCEL_ONLY, f->symbol);
            planned(&out[n++], f, TL_CMD_WITHDRAWALS_HALT, 0, 0);
            out[0].bundle = 1;
            break;
        case TL_FAMILY_LOG_INTEGRITY:
            planned(&out[n++], f, TL_CMD_SET_SYMBOL_MODE, TL_MODE_CANCEL_ONLY, 0);
            out[0].bundle = 1;
            break;
        case TL_FAMILY_SETTLEMENT:
            /* Above T2 the finding is SEV2: an alert (throttle signal).
             * Above T3 it is SEV1: SOFT_HALT on `*`. */
            if (f->severity == TL_SEV_SEV1)
                planned(&out[n++], f, TL_CMD_SET_SYMBOL_MODE, TL_MODE_SOFT_HALT, 0);
            break;
        case TL_FAMILY_WAL_LAG:
            /* An alert; after wal.lag_halt_ms the loop raises it to SEV1. */
            if (f->severity == TL_SEV_SEV1)
                planned(&out[n++], f, TL_CMD_SET_SYMBOL_MODE, TL_MODE_CANCEL_ONLY, 0);
            break;
        case TL_FAMILY_ALERT:
        case TL_FAMILY_NONE:
            break;
    }
    return n;
}

bool tl_policy_wants_bundle(const tl_finding *f, const tl_action *acts, int n) {
    TL_ASSERT(n >= 0 && (n == 0 || acts != NULL));
    for (int i = 0; i < n; i++)
        if (acts[i].bundle != 0)
            return true;
    /* The alert row: "STANDBY_LAG, STALE_PEER_LEADER | alert (and a bundle
     * for STALE_PEER_LEADER)". A peer that missed a failover is evidence
     * worth keeping though nothing halts locally. */
    return f->check == TL_CHECK_STALE_PEER_LEADER;
}

static bool allowed(const tl_policy *p, const tl_action *a) {
    if (p->cfg.allow_count == 0)
        return true;
    if (a->symbol == 0)
        return false; /* `*` is outside any non-empty allowlist */
    for (uint32_t i = 0; i < p->cfg.allow_count; i++) {
        if (strcmp(p->cfg.allow[i], a->symbol_name) == 0)
            return true;
    }
    return false;
}

static bool cooling(const tl_policy *p, const tl_action *a, tl_symtab *syms, uint64_t now_ns) {
    /* An action that would raise a mode is never blocked by cooldown. */
    bool raises;
    if (a->cmd == TL_CMD_SET_SYMBOL_MODE)
        raises = a->mode > tl_symtab_mode(syms, a->symbol);
    else if (a->cmd == TL_CMD_WITHDRAWALS_HALT)
        raises = a->on && !syms->withdrawals_halted;
    else
        raises = true;
    if (raises)
        return false;
    uint64_t cool_ns = p->cfg.cooldown_ms * 1000000ull;
    for (uint32_t i = 0; i < TL_POLICY_COOL_SLOTS; i++) {
        if (p->cool[i].applied_ns != 0 && p->cool[i].check == a->check &&
            p->cool[i].scope == a->symbol && now_ns - p->cool[i].applied_ns < cool_ns)
            return true;
    }
    return false;
}

static uint32_t executions_last_minute(const tl_policy *p, uint64_t now_ns) {
    uint32_t n = 0;
    for (uint32_t i = 0; i < p->exec_count; i++) {
        uint32_t k = (p->exec_head + TL_POLICY_RATE_MAX - 1 - i) % TL_POLICY_RATE_MAX;
        if (now_ns - p->exec_ns[k] >= 60000000000ull)
            break;
        n++;
    }
    return n;
}

enum tl_block tl_policy_gate(const tl_policy *p, const tl_action *a, tl_symtab *syms,
                             uint64_t now_ns) {
    bool rollback = a->origin == TL_ORIGIN_ROLLBACK;
    /* With action=none a resume is refused, but a rollback never is. */
    if (p->cfg.action == TL_ACTION_NONE && !rollback)
        return TL_BLOCK_DETECT_ONLY;
    if ((p->cfg.action == TL_ACTION_PLAN || p->cfg.dry_run) && !rollback)
        return TL_BLOCK_DRY_RUN;
    if (!p->cfg.armed && !rollback)
        return TL_BLOCK_NOT_ARMED;
    bool exempt = a->origin == TL_ORIGIN_MANUAL || a->origin == TL_ORIGIN_PIN ||
                  a->origin == TL_ORIGIN_CANARY || rollback || a->origin == TL_ORIGIN_AUTO_RESUME ||
                  a->origin == TL_ORIGIN_RESTART;
    if (exempt)
        return TL_BLOCK_NONE;
    if (!allowed(p, a))
        return TL_BLOCK_SYMBOL_NOT_ALLOWED;
    if (cooling(p, a, syms, now_ns))
        return TL_BLOCK_COOLDOWN;
    if (executions_last_minute(p, now_ns) >= p->cfg.max_actions_per_minute)
        return TL_BLOCK_RATE_LIMITED;
    return TL_BLOCK_NONE;
}

void tl_policy_executed(tl_policy *p, uint64_t now_ns) {
    p->exec_ns[p->exec_head] = now_ns;
    p->exec_head = (p->exec_head + 1) % TL_POLICY_RATE_MAX;
    if (p->exec_count < TL_POLICY_RATE_MAX)
        p->exec_count++;
}

void tl_policy_applied(tl_policy *p, uint16_t check, uint32_t scope, uint64_t now_ns) {
    for (uint32_t i = 0; i < TL_POLICY_COOL_SLOTS; i++) {
        if (p->cool[i].applied_ns != 0 && p->cool[i].check == check && p->cool[i].scope == scope) {
            p->cool[i].applied_ns = now_ns;
            return;
        }
    }
    uint32_t i = p->cool_next++ % TL_POLICY_COOL_SLOTS;
    p->cool[i].check = check;
    p->cool[i].scope = scope;
    p->cool[i].applied_ns = now_ns;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t id_tag(const uint8_t id[8], uint64_t tag_seed) {
    return XXH3_64bits_withSeed(id, 8, tag_seed);
}

void tl_action_id_mint(uint64_t *rng, uint64_t tag_seed, uint8_t out[TL_ID_BYTES]) {
    /* Bounded: 00x16 and ff x16 are reserved, and a random half can only
     * make one of them with its own tag with probability 2^-64. */
    for (int tries = 0; tries < 4; tries++) {
        uint64_t r = splitmix64(rng);
        memcpy(out, &r, 8);
        uint64_t t = id_tag(out, tag_seed);
        memcpy(out + 8, &t, 8);
        if (!tl_id_is_zero(out) && !tl_id_is_restatement(out))
            return;
    }
    TL_UNREACHABLE();
}

bool tl_action_id_is_ours(const uint8_t id[TL_ID_BYTES], uint64_t tag_seed) {
    uint64_t t;
    memcpy(&t, id + 8, 8);
    return t == id_tag(id, tag_seed);
}
