/* canary.h: the two ways tally relaxes a mode, as pure state machines
 * (behavior.md "Canary resume" and the settlement-lag auto-resume).
 *
 * Modes only escalate automatically. Relaxing is an operator's act, made
 * safe by steps that can each be undone:
 *
 *   tl_modes       the engine's modes as the control thread last saw them
 *                  (MODE_CHANGE records, SYMBOL declarations): the global
 *                  mode, each symbol's own mode, the withdrawals flag.
 *   tl_canary      POST /resume. A global halt is first made per-symbol:
 *                  every listed symbol is pinned to the global mode (sidecar
 *                  key; it changes no effective mode), then the global mode
 *                  goes down one level (operator key, from_mode), which also
 *                  changes no effective mode. Then one canary symbol goes one
 *                  level down (operator key, from_mode) and is watched for
 *                  window_ms. A SEV1/SEV2 finding in scope {canary, `*`}
 *                  rolls it back at once (sidecar key: a raise); a clean
 *                  window records CANARY_PASSED, and only then are batches of
 *                  symbols at the same level, and the withdrawals, resumed.
 *   tl_autoresume  a SETTLEMENT_LAG SOFT_HALT on `*` comes off by itself
 *                  once three gates hold: the lag below T2 for clean_cycles
 *                  polls in a row, min_pause_ms since the halt, and no other
 *                  auto-resume within cooldown_ms. A HARD_HALT never does.
 *
 * Nothing here does I/O, reads a clock or allocates: time comes in as
 * arguments, actions and notes go out through bounded outboxes that the
 * control thread drains (actions to the loop's queue as TL_CTL_ACTION, notes
 * to the audit log). Every action carries an id minted here, so the action
 * events that come back (BLOCKED, FAILED, APPLIED) and the engine's
 * MODE_CHANGE (by command id) are matched to the step that sent it.
 */
#ifndef TL_CANARY_H
#define TL_CANARY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "finding.h"
#include "policy.h"
#include "record.h"

/* ---- the engine's modes as last seen ---- */

typedef struct tl_modes_sym {
    uint32_t id;      /* the engine's symbol id; 0 = empty */
    uint8_t mode;     /* own mode, enum tl_mode, as last seen in a MODE_CHANGE */
    uint8_t has_name; /* a SYMBOL record named it */
    uint8_t name_len;
    uint8_t pinned; /* the current resume session pinned it */
    char name[TL_SYMBOL_NAME_MAX + 1];
} tl_modes_sym;

typedef struct tl_modes {
    tl_modes_sym *syms; /* [capacity], in order of first sight */
    uint32_t capacity;
    uint32_t count;
    uint64_t overflow_total; /* symbols past capacity (never pinned: a resume is refused) */
    uint8_t global_mode;
    bool withdrawals_halted;
} tl_modes;

size_t tl_modes_bytes(uint32_t capacity);
void tl_modes_init(tl_modes *m, void *mem, uint32_t capacity);
tl_modes_sym *tl_modes_find(tl_modes *m, uint32_t id);
tl_modes_sym *tl_modes_by_name(tl_modes *m, const char *name, size_t n);
/* A SYMBOL declaration: the symbol, named; NULL if the table is full. */
tl_modes_sym *tl_modes_declare(tl_modes *m, uint32_t id, const char *name, size_t n);
/* A MODE_CHANGE of scope (0 = global). */
void tl_modes_set(tl_modes *m, uint32_t scope, uint8_t mode, bool withdrawals_halted);
uint8_t tl_modes_effective(const tl_modes *m, const tl_modes_sym *s);

/* ---- canary resume ---- */

#define TL_CANARY_PINS_IN_FLIGHT   16u  /* pins sent and not yet APPLIED */
#define TL_CANARY_BATCH_MAX        64u  /* symbols per batch request */
#define TL_CANARY_OUTBOX           128u /* actions waiting for the loop's queue */
#define TL_CANARY_NOTES            64u  /* notes waiting for the audit log */
#define TL_CANARY_WINDOW_MAX_MS    86400000ull
#define TL_CANARY_APPLY_TIMEOUT_MS 30000ull /* a step not APPLIED by then aborts */

enum tl_canary_phase {
    TL_CANARY_IDLE = 0,
    TL_CANARY_PINNING,      /* pins sent; waiting for every one APPLIED */
    TL_CANARY_LOWERING,     /* the global step down sent; waiting for APPLIED */
    TL_CANARY_STEPPING,     /* the canary step sent; waiting for APPLIED */
    TL_CANARY_WATCHING,     /* the window runs */
    TL_CANARY_ROLLING_BACK, /* the rollback sent; waiting for APPLIED */
    TL_CANARY_BATCH,        /* a batch of relaxations in flight */
    TL_CANARY_WITHDRAWALS,  /* the withdrawals resume in flight */
    TL_CANARY_PHASE_COUNT,
};
const char *tl_canary_phase_name(uint8_t phase); /* "idle", "pinning", ... */

/* How the last resume request ended. */
enum tl_canary_outcome {
    TL_CANARY_OUT_NONE = 0,
    TL_CANARY_OUT_PASSED,      /* CANARY_PASSED */
    TL_CANARY_OUT_ROLLED_BACK, /* ROLLED_BACK */
    TL_CANARY_OUT_ABORTED,     /* a pin, the global step or the canary step did not apply */
    TL_CANARY_OUT_ROLLBACK_FAILED,
    TL_CANARY_OUT_BATCH_DONE,
    TL_CANARY_OUT_BATCH_FAILED, /* some of the batch did not apply */
    TL_CANARY_OUT_WITHDRAWALS_RESUMED,
    TL_CANARY_OUT_WITHDRAWALS_FAILED,
    TL_CANARY_OUT_COUNT,
};
const char *tl_canary_outcome_name(uint8_t outcome); /* "CANARY_PASSED", ... */

enum tl_resume_kind {
    TL_RESUME_CANARY = 0,  /* one symbol one level down, watched */
    TL_RESUME_BATCH,       /* symbols at the passed level, one level down */
    TL_RESUME_WITHDRAWALS, /* lift the withdrawals halt */
};

typedef struct tl_resume_req {
    uint8_t kind;       /* enum tl_resume_kind */
    uint64_t window_ms; /* CANARY: 0 = the configured default */
    char symbol[TL_SYMBOL_NAME_MAX + 1];
    uint32_t n_symbols; /* BATCH */
    char symbols[TL_CANARY_BATCH_MAX][TL_SYMBOL_NAME_MAX + 1];
    char reason[TL_REASON_TEXT_MAX + 1];
    char ticket[TL_TICKET_MAX + 1];
} tl_resume_req;

/* Why a request is refused, checked in this order. Stable names. */
enum tl_resume_err {
    TL_RESUME_OK = 0,
    TL_RESUME_ERR_BUSY,             /* a step is in flight or a window runs */
    TL_RESUME_ERR_UNKNOWN_SYMBOL,   /* no SYMBOL record named it */
    TL_RESUME_ERR_UNNAMED_SCOPE,    /* a global resume, but a scope has no name to pin */
    TL_RESUME_ERR_TOO_MANY_SYMBOLS, /* more symbols than the table holds were seen */
    TL_RESUME_ERR_NOT_HALTED,       /* the canary's effective mode is NORMAL already */
    TL_RESUME_ERR_NOT_PASSED,       /* batches and withdrawals need CANARY_PASSED first */
    TL_RESUME_ERR_WRONG_LEVEL,      /* a batch symbol is not held at the passed level */
    TL_RESUME_ERR_NOT_WITHDRAWN,    /* withdrawals are not halted */
    TL_RESUME_ERR_BAD_REQUEST,      /* empty batch, window out of range, ... */
    TL_RESUME_ERR_COUNT,
};
const char *tl_resume_err_name(uint8_t err); /* "busy", "unknown_symbol", ... */

/* What the control thread writes to the audit log. */
enum tl_canary_note_kind {
    TL_NOTE_RESUME_STARTED = 0,
    TL_NOTE_PIN,            /* a symbol pinned (sent) */
    TL_NOTE_PINS_APPLIED,   /* every pin applied */
    TL_NOTE_GLOBAL_LOWERED, /* the global mode went one level down */
    TL_NOTE_CANARY_STEPPED, /* the canary's step applied: the window starts */
    TL_NOTE_CANARY_PASSED,
    TL_NOTE_ROLLBACK_SENT, /* a finding in scope: rolling back */
    TL_NOTE_ROLLED_BACK,
    TL_NOTE_ROLLBACK_FAILED,
    TL_NOTE_RESUME_ABORTED,
    TL_NOTE_BATCH_DONE,
    TL_NOTE_WITHDRAWALS_RESUMED,
    TL_NOTE_WITHDRAWALS_FAILED,
    TL_NOTE_SESSION_ENDED, /* the global mode is NORMAL and no symbol is held */
    TL_NOTE_COUNT,
};
const char *tl_canary_note_name(uint8_t kind); /* "RESUME_STARTED", "CANARY_PASSED", ... */

typedef struct tl_canary_note {
    uint8_t kind; /* enum tl_canary_note_kind */
    uint8_t mode; /* the mode moved to (pins, steps, rollbacks) */
    uint8_t from_mode;
    uint16_t check;  /* ROLLBACK_SENT / RESUME_ABORTED by a finding: its check */
    uint32_t count;  /* PINS_APPLIED: pins; BATCH_DONE: applied */
    uint32_t failed; /* BATCH_DONE: not applied */
    uint64_t finding_id;
    uint64_t window_ms;
    char symbol[TL_SYMBOL_NAME_MAX + 1];
    char detail[96]; /* why (aborts, failures), in words */
} tl_canary_note;

typedef struct tl_canary_cfg {
    uint64_t window_ms; /* canary.window_ms, default 300000 */
    uint64_t tag_seed;  /* tally's command id tag (tl_action_id_mint) */
    uint64_t id_seed;   /* random at start */
} tl_canary_cfg;

enum tl_canary_wait_kind {
    TL_WAIT_PIN = 0,
    TL_WAIT_LOWER, /* the global mode one level down */
    TL_WAIT_STEP,  /* the canary's step */
    TL_WAIT_ROLLBACK,
    TL_WAIT_BATCH,
    TL_WAIT_WITHDRAWALS,
};

/* An action this machine sent and waits for. */
typedef struct tl_canary_wait {
    uint8_t id[TL_ID_BYTES];
    uint32_t sym;  /* symbol id (0 = `*`) */
    uint8_t kind;  /* enum tl_canary_wait_kind */
    uint8_t state; /* 0 pending, 1 applied, 2 failed */
    uint8_t mode;  /* the mode it sets */
    uint16_t why;  /* failed: tl_block + 1 when BLOCKED, else 0 */
} tl_canary_wait;

typedef struct tl_canary {
    tl_canary_cfg cfg;
    tl_modes *modes;
    uint64_t rng;
    uint8_t phase;   /* enum tl_canary_phase */
    uint8_t outcome; /* enum tl_canary_outcome of the last request */
    uint64_t phase_since_ns;
    /* the current request */
    char ticket[TL_TICKET_MAX + 1];
    char reason[TL_REASON_TEXT_MAX + 1];
    uint64_t window_ms;
    uint32_t canary;     /* the canary's symbol id */
    uint8_t canary_from; /* its effective mode before the step (the rollback target) */
    uint8_t canary_to;   /* after */
    uint8_t canary_own;  /* its own mode before the step (the step's from_mode) */
    bool global_path;    /* the canary's level was the global mode's */
    uint64_t window_start_ns;
    /* session: a global halt being resumed level by level */
    bool session;
    uint8_t session_mode; /* the global mode when the session began: later symbols pin to it */
    /* after CANARY_PASSED */
    bool passed;
    uint8_t passed_level; /* the canary's level before its step: batches come from it */
    /* pins */
    uint32_t pins_queued; /* symbols marked to pin, not yet sent (scan from pin_cursor) */
    uint32_t pin_cursor;
    uint32_t pins_sent;
    uint32_t pins_applied;
    uint32_t pins_in_flight;
    tl_canary_wait wait[TL_CANARY_PINS_IN_FLIGHT + TL_CANARY_BATCH_MAX + 4];
    uint32_t wait_count;
    /* ROLLING_BACK from STEPPING: the step may still apply after the rollback */
    uint8_t step_state; /* 0 pending, 1 applied, 2 failed */
    bool rollback_applied;
    uint16_t rollback_check;
    uint64_t rollback_finding;
    uint32_t batch_total;
    uint32_t batch_applied;
    uint32_t batch_failed;
    /* outboxes */
    tl_action out[TL_CANARY_OUTBOX];
    uint32_t out_head;
    uint32_t out_count;
    tl_canary_note notes[TL_CANARY_NOTES];
    uint32_t note_head;
    uint32_t note_count;
    uint64_t notes_dropped;
    /* counters */
    uint64_t passed_total;
    uint64_t rolled_back_total;
    uint64_t aborted_total;
} tl_canary;

void tl_canary_init(tl_canary *c, const tl_canary_cfg *cfg, tl_modes *modes);

/* Checks a request against the state and the modes, and starts it. */
enum tl_resume_err tl_canary_request(tl_canary *c, const tl_resume_req *r, uint64_t now_ns);

/* Events from the loop, as the control thread receives them. */
void tl_canary_on_action(tl_canary *c, const tl_action *a, uint64_t now_ns);
/* A MODE_CHANGE (after tl_modes_set): a command of ours by id counts as APPLIED. */
void tl_canary_on_mode(tl_canary *c, const uint8_t command_id[TL_ID_BYTES], uint32_t scope,
                       uint64_t now_ns);
void tl_canary_on_finding(tl_canary *c, const tl_finding *f, uint64_t now_ns);
/* A newly declared symbol (after tl_modes_declare): pinned at once in a session. */
void tl_canary_on_symbol(tl_canary *c, uint32_t id, uint64_t now_ns);
/* Windows and timeouts. */
void tl_canary_tick(tl_canary *c, uint64_t now_ns);

/* The outboxes: peek, then pop once it is handed over. */
const tl_action *tl_canary_peek(const tl_canary *c);
void tl_canary_pop(tl_canary *c);
bool tl_canary_note_pop(tl_canary *c, tl_canary_note *out);

/* ---- settlement-lag auto-resume ---- */

typedef struct tl_autoresume_cfg {
    uint32_t clean_cycles; /* auto_resume.clean_cycles, default 2 */
    uint64_t min_pause_ms; /* default 900000 */
    uint64_t cooldown_ms;  /* default 1800000 */
    bool operator_key;     /* tally holds an operator key (else: never) */
    uint64_t tag_seed;
    uint64_t id_seed;
} tl_autoresume_cfg;

enum tl_ar_state {
    TL_AR_IDLE = 0, /* no SETTLEMENT_LAG SOFT_HALT of ours in force */
    TL_AR_HALTED,   /* ours is in force: the gates are evaluated on each poll */
    TL_AR_RESUMING, /* the resume is sent */
    TL_AR_STATE_COUNT,
};
const char *tl_ar_state_name(uint8_t s);

/* The answer to a poll: the first gate that holds the halt, or RESUME. */
enum tl_ar_verdict {
    TL_AR_NOT_HALTED = 0,
    TL_AR_HARD_HALT, /* the global mode went above SOFT_HALT: never */
    TL_AR_NO_OPERATOR_KEY,
    TL_AR_WAIT_CLEAN,    /* lag below T2 for fewer than clean_cycles polls */
    TL_AR_WAIT_PAUSE,    /* less than min_pause_ms since the halt */
    TL_AR_WAIT_COOLDOWN, /* another auto-resume within cooldown_ms */
    TL_AR_IN_FLIGHT,     /* the resume is sent, not applied yet */
    TL_AR_RESUME,        /* all gates hold: the action is in *out */
    TL_AR_VERDICT_COUNT,
};
const char *tl_ar_verdict_name(uint8_t v); /* "wait_clean", ... */

typedef struct tl_autoresume {
    tl_autoresume_cfg cfg;
    uint64_t rng;
    uint8_t state;     /* enum tl_ar_state */
    uint8_t resume_to; /* the global mode before the halt */
    bool hard;         /* a HARD_HALT came over this halt: it never auto-resumes */
    uint8_t halt_id[TL_ID_BYTES];
    uint64_t halt_ns;        /* the halt's MODE_CHANGE seen */
    uint32_t clean;          /* polls in a row with the lag below T2, since the halt */
    uint64_t last_resume_ns; /* the last auto-resume sent; 0 = none yet */
    bool resumed_once;
    uint8_t resume_id[TL_ID_BYTES];
    char ticket[TL_TICKET_MAX + 1];
    /* counters */
    uint64_t resumes_total;
    uint64_t verdicts[TL_AR_VERDICT_COUNT];
} tl_autoresume;

void tl_autoresume_init(tl_autoresume *ar, const tl_autoresume_cfg *cfg);
/* Our SETTLEMENT_LAG SOFT_HALT on `*` applied; prev_mode is the global mode
 * before it. A halt that changed nothing (prev >= SOFT_HALT) is not ours to
 * lift. */
void tl_autoresume_halt_applied(tl_autoresume *ar, const uint8_t id[TL_ID_BYTES],
                                const char *ticket, uint8_t prev_mode, uint64_t now_ns);
/* Every MODE_CHANGE of the global scope: a HARD_HALT poisons the halt; an
 * operator's relaxation ends it. */
void tl_autoresume_global_mode(tl_autoresume *ar, uint8_t mode,
                               const uint8_t command_id[TL_ID_BYTES], uint64_t now_ns);
/* One ledger poll: below_t2 is the lag's verdict (a stale or failed poll is
 * not clean). On TL_AR_RESUME, *out is the action to send. */
enum tl_ar_verdict tl_autoresume_poll(tl_autoresume *ar, bool below_t2, uint64_t now_ns,
                                      tl_action *out);
/* The same, from a count the ledger keeps itself (its polls in a row below
 * T2, from the loop's stats): it replaces the machine's own count. */
enum tl_ar_verdict tl_autoresume_poll_count(tl_autoresume *ar, uint32_t clean_in_a_row,
                                            uint64_t now_ns, tl_action *out);
/* The resume's action events (FAILED or BLOCKED: back to HALTED). */
void tl_autoresume_on_action(tl_autoresume *ar, const tl_action *a, uint64_t now_ns);

#endif
