/* canary.c: canary resume and settlement-lag auto-resume (see canary.h).
 *
 * Invariants (asserted where they hold):
 *   - a phase other than IDLE has at least one action it waits for, except
 *     WATCHING (the window) and PINNING while pins wait for queue room;
 *   - at most TL_CANARY_PINS_IN_FLIGHT pins wait at once, so a global resume
 *     over thousands of symbols never fills the loop's in-flight table;
 *   - every relaxation carries the operator key and from_mode; every pin and
 *     rollback the sidecar key (it can only raise);
 *   - the effective mode of no symbol but the canary changes before the
 *     canary's window passes: pins raise a symbol to the global mode, and the
 *     global step down is made only once every symbol is pinned.
 */
#include "canary.h"

#include <stdio.h>
#include <string.h>

#include "assert.h"

/* ---- the modes view ---- */

size_t tl_modes_bytes(uint32_t capacity) {
    return (size_t)capacity * sizeof(tl_modes_sym);
}

void tl_modes_init(tl_modes *m, void *mem, uint32_t capacity) {
    TL_ASSERT(mem != NULL && capacity >= 1);
    memset(m, 0, sizeof *m);
    m->syms = mem;
    m->capacity = capacity;
    memset(m->syms, 0, tl_modes_bytes(capacity));
}

tl_modes_sym *tl_modes_find(tl_modes *m, uint32_t id) {
    if (id == 0)
        return NULL;
    for (uint32_t i = 0; i < m->count; i++) {
        if (m->syms[i].id == id)
            return &m->syms[i];
    }
    return NULL;
}

tl_modes_sym *tl_modes_by_name(tl_modes *m, const char *name, size_t n) {
    if (n == 0 || n > TL_SYMBOL_NAME_MAX)
        return NULL;
    for (uint32_t i = 0; i < m->count; i++) {
        tl_modes_sym *s = &m->syms[i];
        if (s->has_name && s->name_len == n && memcmp(s->name, name, n) == 0)
            return s;
    }
    return NULL;
}

static tl_modes_sym *modes_get(tl_modes *m, uint32_t id) {
    TL_ASSERT(id != 0);
    tl_modes_sym *s = tl_modes_find(m, id);
    if (s != NULL)
        return s;
    if (m->count == m->capacity) {
        m->overflow_total++;
        return NULL;
    }
    s = &m->syms[m->count++];
    memset(s, 0, sizeof *s);
    s->id = id;
    return s;
}

tl_modes_sym *tl_modes_declare(tl_modes *m, uint32_t id, const char *name, size_t n) {
    if (id == 0 || !tl_symbol_name_valid(name, n))
        return NULL;
    tl_modes_sym *s = modes_get(m, id);
    if (s == NULL)
        return NULL;
    memcpy(s->name, name, n);
    s->name[n] = '\0';
    s->name_len = (uint8_t)n;
    s->has_name = 1;
    return s;
}

void tl_modes_set(tl_modes *m, uint32_t scope, uint8_t mode, bool withdrawals_halted) {
    if (mode >= TL_MODE_COUNT)
        return; /* the loop only passes verified records; stay total anyway */
    if (scope == 0) {
        m->global_mode = mode;
        m->withdrawals_halted = withdrawals_halted;
        return;
    }
    tl_modes_sym *s = modes_get(m, scope);
    if (s != NULL)
        s->mode = mode;
}

uint8_t tl_modes_effective(const tl_modes *m, const tl_modes_sym *s) {
    if (s == NULL)
        return m->global_mode;
    return s->mode > m->global_mode ? s->mode : m->global_mode;
}

/* ---- names ---- */

const char *tl_canary_phase_name(uint8_t phase) {
    static const char *const names[TL_CANARY_PHASE_COUNT] = {
        "idle",     "pinning",      "lowering", "stepping",
        "watching", "rolling_back", "batch",    "withdrawals",
    };
    return phase < TL_CANARY_PHASE_COUNT ? names[phase] : "?";
}

const char *tl_canary_outcome_name(uint8_t outcome) {
    static const char *const names[TL_CANARY_OUT_COUNT] = {
        "NONE",           "CANARY_PASSED",       "ROLLED_BACK",
        "RESUME_ABORTED", "ROLLBACK_FAILED",     "BATCH_DONE",
        "BATCH_FAILED",   "WITHDRAWALS_RESUMED", "WITHDRAWALS_FAILED",
    };
    return outcome < TL_CANARY_OUT_COUNT ? names[outcome] : "?";
}

const char *tl_resume_err_name(uint8_t err) {
    static const char *const names[TL_RESUME_ERR_COUNT] = {
        "ok",         "busy",       "unknown_symbol", "unnamed_scope", "too_many_symbols",
        "not_halted", "not_passed", "wrong_level",    "not_withdrawn", "bad_request",
    };
    return err < TL_RESUME_ERR_COUNT ? names[err] : "?";
}

const char *tl_canary_note_name(uint8_t kind) {
    static const char *const names[TL_NOTE_COUNT] = {
        "RESUME_STARTED",     "PIN",
        "PINS_APPLIED",       "GLOBAL_LOWERED",
        "CANARY_STEPPED",     "CANARY_PASSED",
        "ROLLBACK_SENT",      "ROLLED_BACK",
        "ROLLBACK_FAILED",    "RESUME_ABORTED",
        "BATCH_DONE",         "WITHDRAWALS_RESUMED",
        "WITHDRAWALS_FAILED", "RESUME_SESSION_ENDED",
    };
    return kind < TL_NOTE_COUNT ? names[kind] : "?";
}

/* ---- outboxes ---- */

static tl_canary_note *note(tl_canary *c, uint8_t kind, const char *symbol) {
    if (c->note_count == TL_CANARY_NOTES) {
        /* The audit drains notes every control pass; a full box means the
         * control thread is stuck. The oldest goes (counted): the machine
         * never waits for its notes. */
        c->notes_dropped++;
        c->note_head = (c->note_head + 1) % TL_CANARY_NOTES;
        c->note_count--;
    }
    tl_canary_note *n = &c->notes[(c->note_head + c->note_count) % TL_CANARY_NOTES];
    c->note_count++;
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->from_mode = TL_FROM_MODE_NONE;
    snprintf(n->symbol, sizeof n->symbol, "%s", symbol != NULL ? symbol : "*");
    return n;
}

bool tl_canary_note_pop(tl_canary *c, tl_canary_note *out) {
    if (c->note_count == 0)
        return false;
    *out = c->notes[c->note_head];
    c->note_head = (c->note_head + 1) % TL_CANARY_NOTES;
    c->note_count--;
    return true;
}

const tl_action *tl_canary_peek(const tl_canary *c) {
    return c->out_count == 0 ? NULL : &c->out[c->out_head];
}

void tl_canary_pop(tl_canary *c) {
    TL_ASSERT(c->out_count > 0);
    c->out_head = (c->out_head + 1) % TL_CANARY_OUTBOX;
    c->out_count--;
}

/* Copies at most cap - 1 bytes of s, never cutting a UTF-8 sequence. */
static void copy_utf8(char *dst, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0u) == 0x80u)
            n--;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static const char *sym_name(tl_canary *c, uint32_t id) {
    if (id == 0)
        return "*";
    tl_modes_sym *s = tl_modes_find(c->modes, id);
    TL_ASSERT(s != NULL && s->has_name);
    return s->name;
}

/* Builds an action, queues it, and waits for it. */
static tl_canary_wait *send(tl_canary *c, uint8_t kind, uint8_t cmd, uint8_t key, uint8_t origin,
                            uint32_t sym, uint8_t mode, uint8_t from_mode, bool on,
                            const char *reason) {
    TL_ASSERT(c->out_count < TL_CANARY_OUTBOX);
    TL_ASSERT(c->wait_count < TL_ARRAY_LEN(c->wait));
    /* Relaxations carry the operator key and from_mode; raises the sidecar's. */
    TL_ASSERT((key == TL_KEY_OPERATOR) ==
              (from_mode != TL_FROM_MODE_NONE || cmd != TL_CMD_SET_SYMBOL_MODE));
    tl_action *a = &c->out[(c->out_head + c->out_count) % TL_CANARY_OUTBOX];
    c->out_count++;
    memset(a, 0, sizeof *a);
    tl_action_id_mint(&c->rng, c->cfg.tag_seed, a->id);
    a->cmd = cmd;
    a->key = key;
    a->mode = mode;
    a->from_mode = from_mode;
    a->on = on;
    a->state = TL_ACT_PLANNED;
    a->origin = origin;
    a->severity = TL_SEV_INFO;
    a->symbol = sym;
    snprintf(a->symbol_name, sizeof a->symbol_name, "%s", sym_name(c, sym));
    copy_utf8(a->reason, sizeof a->reason, reason);
    snprintf(a->ticket, sizeof a->ticket, "%s", c->ticket);

    tl_canary_wait *w = &c->wait[c->wait_count++];
    memset(w, 0, sizeof *w);
    memcpy(w->id, a->id, TL_ID_BYTES);
    w->sym = sym;
    w->kind = kind;
    w->mode = mode;
    return w;
}

static void forget(tl_canary *c, tl_canary_wait *w) {
    uint32_t i = (uint32_t)(w - c->wait);
    TL_ASSERT(i < c->wait_count);
    if (w->kind == TL_WAIT_PIN) {
        TL_ASSERT(c->pins_in_flight > 0);
        c->pins_in_flight--;
    }
    c->wait[i] = c->wait[--c->wait_count];
}

static tl_canary_wait *wait_find(tl_canary *c, const uint8_t id[TL_ID_BYTES]) {
    for (uint32_t i = 0; i < c->wait_count; i++) {
        if (memcmp(c->wait[i].id, id, TL_ID_BYTES) == 0)
            return &c->wait[i];
    }
    return NULL;
}

static bool waiting_for(const tl_canary *c, uint8_t kind) {
    for (uint32_t i = 0; i < c->wait_count; i++) {
        if (c->wait[i].kind == kind)
            return true;
    }
    return false;
}

static void set_phase(tl_canary *c, uint8_t phase, uint64_t now_ns) {
    c->phase = phase;
    c->phase_since_ns = now_ns;
}

/* ---- invariants ---- */

static void check_invariants(const tl_canary *c) {
    TL_ASSERT(c->pins_in_flight <= TL_CANARY_PINS_IN_FLIGHT);
    TL_ASSERT(c->out_count <= TL_CANARY_OUTBOX && c->note_count <= TL_CANARY_NOTES);
    uint32_t pins = 0;
    for (uint32_t i = 0; i < c->wait_count; i++)
        pins += c->wait[i].kind == TL_WAIT_PIN;
    TL_ASSERT(pins == c->pins_in_flight);
    switch (c->phase) {
        case TL_CANARY_LOWERING:
            TL_ASSERT(waiting_for(c, TL_WAIT_LOWER));
            break;
        case TL_CANARY_STEPPING:
            TL_ASSERT(waiting_for(c, TL_WAIT_STEP));
            break;
        case TL_CANARY_ROLLING_BACK:
            TL_ASSERT(waiting_for(c, TL_WAIT_ROLLBACK) || waiting_for(c, TL_WAIT_STEP));
            break;
        case TL_CANARY_BATCH:
            TL_ASSERT(waiting_for(c, TL_WAIT_BATCH));
            break;
        case TL_CANARY_WITHDRAWALS:
            TL_ASSERT(waiting_for(c, TL_WAIT_WITHDRAWALS));
            break;
        case TL_CANARY_PINNING:
            TL_ASSERT(c->session && (c->pins_in_flight > 0 || c->pins_queued > 0));
            break;
        default:
            break;
    }
}

/* ---- init ---- */

void tl_canary_init(tl_canary *c, const tl_canary_cfg *cfg, tl_modes *modes) {
    TL_ASSERT(cfg->window_ms >= 1 && cfg->window_ms <= TL_CANARY_WINDOW_MAX_MS);
    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
    c->modes = modes;
    c->rng = cfg->id_seed ^ 0x63616e617279ull; /* apart from the loop's stream */
}

/* ---- pins ---- */

/* Pins go out TL_CANARY_PINS_IN_FLIGHT at a time, in table order. */
static void pump_pins(tl_canary *c) {
    tl_modes *m = c->modes;
    while (c->pins_queued > 0 && c->pins_in_flight < TL_CANARY_PINS_IN_FLIGHT) {
        TL_ASSERT(c->pin_cursor < m->count);
        tl_modes_sym *s = &m->syms[c->pin_cursor++];
        if (s->pinned != 1)
            continue;
        c->pins_queued--;
        if (s->mode >= c->session_mode) {
            s->pinned = 3; /* raised meanwhile: nothing to pin */
            continue;
        }
        s->pinned = 2;
        char why[TL_REASON_TEXT_MAX + 1];
        snprintf(why, sizeof why, "canary_resume: pin to the global mode %s",
                 tl_mode_name(c->session_mode));
        send(c, TL_WAIT_PIN, TL_CMD_SET_SYMBOL_MODE, TL_KEY_SIDECAR, TL_ORIGIN_PIN, s->id,
             c->session_mode, TL_FROM_MODE_NONE, false, why);
        c->pins_in_flight++;
        c->pins_sent++;
        tl_canary_note *n = note(c, TL_NOTE_PIN, s->name);
        n->mode = c->session_mode;
    }
}

static void queue_pin(tl_canary *c, tl_modes_sym *s) {
    s->pinned = 1;
    c->pins_queued++;
    uint32_t i = (uint32_t)(s - c->modes->syms);
    if (i < c->pin_cursor)
        c->pin_cursor = i;
}

/* ---- steps ---- */

static void send_lowering(tl_canary *c, uint64_t now_ns) {
    /* From the mode every symbol was pinned to: if the engine's global mode
     * has moved since (a manual escalation), from_mode fails the step. */
    uint8_t g = c->session_mode;
    TL_ASSERT(g > TL_MODE_NORMAL);
    send(c, TL_WAIT_LOWER, TL_CMD_SET_SYMBOL_MODE, TL_KEY_OPERATOR, TL_ORIGIN_CANARY, 0,
         (uint8_t)(g - 1), g, false, c->reason);
    set_phase(c, TL_CANARY_LOWERING, now_ns);
}

static void send_step(tl_canary *c, uint64_t now_ns) {
    /* from_mode is what the canary's own mode must be: its pin (global
     * path) or its mode at the request. Anything else fails the step. */
    TL_ASSERT(c->canary_own > c->canary_to);
    send(c, TL_WAIT_STEP, TL_CMD_SET_SYMBOL_MODE, TL_KEY_OPERATOR, TL_ORIGIN_CANARY, c->canary,
         c->canary_to, c->canary_own, false, c->reason);
    c->step_state = 0;
    set_phase(c, TL_CANARY_STEPPING, now_ns);
}

static void send_rollback(tl_canary *c, uint64_t now_ns) {
    char why[TL_REASON_TEXT_MAX + 1];
    if (c->rollback_check != TL_CHECK_NONE)
        snprintf(why, sizeof why, "canary_rollback: %s finding %llu",
                 tl_check_name((enum tl_check)c->rollback_check),
                 (unsigned long long)c->rollback_finding);
    else
        snprintf(why, sizeof why, "canary_rollback: the canary step did not apply in time");
    send(c, TL_WAIT_ROLLBACK, TL_CMD_SET_SYMBOL_MODE, TL_KEY_SIDECAR, TL_ORIGIN_ROLLBACK, c->canary,
         c->canary_from, TL_FROM_MODE_NONE, false, why);
    c->rollback_applied = false;
    set_phase(c, TL_CANARY_ROLLING_BACK, now_ns);
}

static void abort_resume(tl_canary *c, const char *detail, uint16_t check, uint64_t finding_id,
                         uint64_t now_ns) {
    tl_canary_note *n = note(c, TL_NOTE_RESUME_ABORTED, sym_name(c, c->canary));
    snprintf(n->detail, sizeof n->detail, "%s", detail);
    n->check = check;
    n->finding_id = finding_id;
    /* Pins not yet sent are dropped; those applied stay (they change no
     * effective mode). Waits for sent steps are dropped: whatever they do
     * when they land, the modes view follows the engine. */
    for (uint32_t i = 0; i < c->modes->count; i++) {
        if (c->modes->syms[i].pinned == 1)
            c->modes->syms[i].pinned = 0;
    }
    c->pins_queued = 0;
    for (uint32_t i = 0; i < c->wait_count;) {
        if (c->wait[i].kind != TL_WAIT_PIN)
            forget(c, &c->wait[i]);
        else
            i++;
    }
    c->outcome = TL_CANARY_OUT_ABORTED;
    c->aborted_total++;
    set_phase(c, TL_CANARY_IDLE, now_ns);
}

static void failure_text(const tl_canary_wait *w, const char *what, char *out, size_t cap) {
    if (w->why != 0)
        snprintf(out, cap, "%s BLOCKED{%s}", what, tl_block_name((uint8_t)(w->why - 1)));
    else
        snprintf(out, cap, "%s FAILED", what);
}

/* Moves the machine on after a wait was resolved. */
static void resolved(tl_canary *c, tl_canary_wait *w, uint64_t now_ns) {
    char detail[96];
    switch (w->kind) {
        case TL_WAIT_PIN: {
            tl_modes_sym *s = tl_modes_find(c->modes, w->sym);
            bool ok = w->state == 1;
            if (s != NULL)
                s->pinned = ok ? 3 : 0;
            if (ok)
                c->pins_applied++;
            if (!ok && c->phase == TL_CANARY_PINNING) {
                failure_text(w, "a pin of", detail, sizeof detail);
                snprintf(detail + strlen(detail), sizeof detail - strlen(detail), " %s",
                         s != NULL && s->has_name ? s->name : "?");
                forget(c, w);
                abort_resume(c, detail, 0, 0, now_ns);
                return;
            }
            if (!ok) {
                tl_canary_note *n = note(c, TL_NOTE_PIN, s != NULL ? s->name : "?");
                n->mode = w->mode;
                failure_text(w, "pin", n->detail, sizeof n->detail);
            }
            forget(c, w);
            pump_pins(c);
            if (c->phase == TL_CANARY_PINNING) {
                c->phase_since_ns = now_ns; /* progress */
                if (c->pins_queued == 0 && c->pins_in_flight == 0) {
                    tl_canary_note *n = note(c, TL_NOTE_PINS_APPLIED, "*");
                    n->count = c->pins_applied;
                    n->mode = c->session_mode;
                    send_lowering(c, now_ns);
                }
            }
            return;
        }
        case TL_WAIT_LOWER:
            if (w->state != 1) {
                failure_text(w, "the global step down", detail, sizeof detail);
                forget(c, w);
                abort_resume(c, detail, 0, 0, now_ns);
                return;
            }
            {
                tl_canary_note *n = note(c, TL_NOTE_GLOBAL_LOWERED, "*");
                n->mode = w->mode;
                n->from_mode = (uint8_t)(w->mode + 1);
            }
            forget(c, w);
            send_step(c, now_ns);
            return;
        case TL_WAIT_STEP: {
            uint8_t st = w->state;
            uint16_t why = w->why;
            forget(c, w);
            if (c->phase == TL_CANARY_ROLLING_BACK) {
                /* The step landed after the finding. If it applied after the
                 * rollback did, the canary is relaxed again: roll back again. */
                c->step_state = st;
                if (st == 1 && c->rollback_applied) {
                    send_rollback(c, now_ns);
                    return;
                }
                if (c->rollback_applied) {
                    tl_canary_note *n = note(c, TL_NOTE_ROLLED_BACK, sym_name(c, c->canary));
                    n->mode = c->canary_from;
                    c->outcome = TL_CANARY_OUT_ROLLED_BACK;
                    c->rolled_back_total++;
                    set_phase(c, TL_CANARY_IDLE, now_ns);
                }
                return;
            }
            if (st != 1) {
                tl_canary_wait tmp = {.why = why};
                failure_text(&tmp, "the canary step", detail, sizeof detail);
                abort_resume(c, detail, 0, 0, now_ns);
                return;
            }
            tl_canary_note *n = note(c, TL_NOTE_CANARY_STEPPED, sym_name(c, c->canary));
            n->mode = c->canary_to;
            n->from_mode = c->canary_own;
            n->window_ms = c->window_ms;
            c->window_start_ns = now_ns;
            set_phase(c, TL_CANARY_WATCHING, now_ns);
            return;
        }
        case TL_WAIT_ROLLBACK: {
            bool ok = w->state == 1;
            forget(c, w);
            if (!ok) {
                tl_canary_note *n = note(c, TL_NOTE_ROLLBACK_FAILED, sym_name(c, c->canary));
                n->mode = c->canary_from;
                snprintf(n->detail, sizeof n->detail,
                         "the rollback did not apply: resume at the "
                         "engine by hand");
                c->outcome = TL_CANARY_OUT_ROLLBACK_FAILED;
                set_phase(c, TL_CANARY_IDLE, now_ns);
                return;
            }
            c->rollback_applied = true;
            if (waiting_for(c, TL_WAIT_STEP))
                return; /* the step may still land: wait for it */
            tl_canary_note *n = note(c, TL_NOTE_ROLLED_BACK, sym_name(c, c->canary));
            n->mode = c->canary_from;
            n->check = c->rollback_check;
            n->finding_id = c->rollback_finding;
            c->outcome = TL_CANARY_OUT_ROLLED_BACK;
            c->rolled_back_total++;
            set_phase(c, TL_CANARY_IDLE, now_ns);
            return;
        }
        case TL_WAIT_BATCH:
            if (w->state == 1)
                c->batch_applied++;
            else
                c->batch_failed++;
            forget(c, w);
            if (!waiting_for(c, TL_WAIT_BATCH) && c->phase == TL_CANARY_BATCH) {
                tl_canary_note *n = note(c, TL_NOTE_BATCH_DONE, "*");
                n->count = c->batch_applied;
                n->failed = c->batch_failed;
                n->mode = (uint8_t)(c->passed_level - 1);
                n->from_mode = c->passed_level;
                c->outcome =
                    c->batch_failed == 0 ? TL_CANARY_OUT_BATCH_DONE : TL_CANARY_OUT_BATCH_FAILED;
                set_phase(c, TL_CANARY_IDLE, now_ns);
            }
            return;
        case TL_WAIT_WITHDRAWALS: {
            bool ok = w->state == 1;
            if (!ok)
                failure_text(w, "withdrawals_halt off", detail, sizeof detail);
            forget(c, w);
            tl_canary_note *n =
                note(c, ok ? TL_NOTE_WITHDRAWALS_RESUMED : TL_NOTE_WITHDRAWALS_FAILED, "*");
            if (!ok)
                snprintf(n->detail, sizeof n->detail, "%s", detail);
            c->outcome = ok ? TL_CANARY_OUT_WITHDRAWALS_RESUMED : TL_CANARY_OUT_WITHDRAWALS_FAILED;
            set_phase(c, TL_CANARY_IDLE, now_ns);
            return;
        }
        default:
            TL_UNREACHABLE();
    }
}

/* ---- requests ---- */

static enum tl_resume_err request_canary(tl_canary *c, const tl_resume_req *r, uint64_t now_ns) {
    tl_modes *m = c->modes;
    uint64_t window_ms = r->window_ms == 0 ? c->cfg.window_ms : r->window_ms;
    if (window_ms > TL_CANARY_WINDOW_MAX_MS)
        return TL_RESUME_ERR_BAD_REQUEST;
    tl_modes_sym *cs = tl_modes_by_name(m, r->symbol, strlen(r->symbol));
    if (cs == NULL)
        return TL_RESUME_ERR_UNKNOWN_SYMBOL;
    uint8_t eff = tl_modes_effective(m, cs);
    if (eff == TL_MODE_NORMAL)
        return TL_RESUME_ERR_NOT_HALTED;
    bool global_path = cs->mode <= m->global_mode;
    if (global_path) {
        /* Every scope is pinned by name: one the engine never named cannot
         * be pinned, and leaving it unpinned would relax it with the global. */
        if (m->overflow_total > 0)
            return TL_RESUME_ERR_TOO_MANY_SYMBOLS;
        for (uint32_t i = 0; i < m->count; i++) {
            if (!m->syms[i].has_name && m->syms[i].mode < m->global_mode)
                return TL_RESUME_ERR_UNNAMED_SCOPE;
        }
    }

    c->passed = false;
    c->window_ms = window_ms;
    c->canary = cs->id;
    c->canary_from = eff;
    c->canary_to = (uint8_t)(eff - 1);
    c->canary_own = global_path ? m->global_mode : cs->mode;
    c->global_path = global_path;
    c->pins_applied = 0;
    c->pins_sent = 0;
    c->rollback_applied = false;
    c->step_state = 0;
    tl_canary_note *n = note(c, TL_NOTE_RESUME_STARTED, cs->name);
    n->mode = c->canary_to;
    n->from_mode = eff;
    n->window_ms = window_ms;
    snprintf(n->detail, sizeof n->detail, "%s", global_path ? "global" : "symbol");

    if (!global_path) {
        send_step(c, now_ns);
        return TL_RESUME_OK;
    }
    c->session = true;
    c->session_mode = m->global_mode;
    c->pins_queued = 0;
    c->pin_cursor = 0;
    for (uint32_t i = 0; i < m->count; i++) {
        tl_modes_sym *s = &m->syms[i];
        if (s->pinned == 2)
            continue; /* an earlier pin still in flight */
        if (s->mode < m->global_mode)
            queue_pin(c, s);
    }
    set_phase(c, TL_CANARY_PINNING, now_ns);
    pump_pins(c);
    if (c->pins_queued == 0 && c->pins_in_flight == 0) {
        tl_canary_note *p = note(c, TL_NOTE_PINS_APPLIED, "*");
        p->count = 0;
        p->mode = c->session_mode;
        send_lowering(c, now_ns);
    }
    return TL_RESUME_OK;
}

static enum tl_resume_err request_batch(tl_canary *c, const tl_resume_req *r, uint64_t now_ns) {
    tl_modes *m = c->modes;
    if (r->n_symbols == 0 || r->n_symbols > TL_CANARY_BATCH_MAX)
        return TL_RESUME_ERR_BAD_REQUEST;
    if (!c->passed)
        return TL_RESUME_ERR_NOT_PASSED;
    uint8_t level = c->passed_level;
    TL_ASSERT(level > TL_MODE_NORMAL);
    for (uint32_t i = 0; i < r->n_symbols; i++) {
        tl_modes_sym *s = tl_modes_by_name(m, r->symbols[i], strlen(r->symbols[i]));
        if (s == NULL)
            return TL_RESUME_ERR_UNKNOWN_SYMBOL;
        /* Held at the passed level by its own mode, above the global. */
        if (s->mode != level || m->global_mode >= level)
            return TL_RESUME_ERR_WRONG_LEVEL;
        for (uint32_t k = 0; k < i; k++) {
            if (strcmp(r->symbols[k], r->symbols[i]) == 0)
                return TL_RESUME_ERR_BAD_REQUEST;
        }
    }
    c->batch_total = r->n_symbols;
    c->batch_applied = 0;
    c->batch_failed = 0;
    for (uint32_t i = 0; i < r->n_symbols; i++) {
        tl_modes_sym *s = tl_modes_by_name(m, r->symbols[i], strlen(r->symbols[i]));
        send(c, TL_WAIT_BATCH, TL_CMD_SET_SYMBOL_MODE, TL_KEY_OPERATOR, TL_ORIGIN_CANARY, s->id,
             (uint8_t)(level - 1), level, false, c->reason);
    }
    set_phase(c, TL_CANARY_BATCH, now_ns);
    return TL_RESUME_OK;
}

static enum tl_resume_err request_withdrawals(tl_canary *c, uint64_t now_ns) {
    if (!c->passed)
        return TL_RESUME_ERR_NOT_PASSED;
    if (!c->modes->withdrawals_halted)
        return TL_RESUME_ERR_NOT_WITHDRAWN;
    send(c, TL_WAIT_WITHDRAWALS, TL_CMD_WITHDRAWALS_HALT, TL_KEY_OPERATOR, TL_ORIGIN_CANARY, 0, 0,
         TL_FROM_MODE_NONE, false, c->reason);
    set_phase(c, TL_CANARY_WITHDRAWALS, now_ns);
    return TL_RESUME_OK;
}

enum tl_resume_err tl_canary_request(tl_canary *c, const tl_resume_req *r, uint64_t now_ns) {
    if (c->phase != TL_CANARY_IDLE)
        return TL_RESUME_ERR_BUSY;
    if (r->ticket[0] == '\0' || strnlen(r->ticket, sizeof r->ticket) >= sizeof r->ticket)
        return TL_RESUME_ERR_BAD_REQUEST;
    snprintf(c->ticket, sizeof c->ticket, "%s", r->ticket);
    copy_utf8(c->reason, sizeof c->reason,
              r->reason[0] != '\0' ? r->reason : "canary_resume: operator request");
    enum tl_resume_err e;
    switch (r->kind) {
        case TL_RESUME_CANARY:
            e = request_canary(c, r, now_ns);
            break;
        case TL_RESUME_BATCH:
            e = request_batch(c, r, now_ns);
            break;
        case TL_RESUME_WITHDRAWALS:
            e = request_withdrawals(c, now_ns);
            break;
        default:
            e = TL_RESUME_ERR_BAD_REQUEST;
            break;
    }
    check_invariants(c);
    return e;
}

/* ---- events ---- */

void tl_canary_on_action(tl_canary *c, const tl_action *a, uint64_t now_ns) {
    tl_canary_wait *w = wait_find(c, a->id);
    if (w == NULL || w->state != 0)
        return;
    switch (a->state) {
        case TL_ACT_APPLIED:
            w->state = 1;
            break;
        case TL_ACT_BLOCKED:
            w->state = 2;
            w->why = (uint16_t)(a->block + 1);
            break;
        case TL_ACT_FAILED:
            w->state = 2;
            break;
        default:
            return; /* PLANNED, EXECUTED: on its way */
    }
    resolved(c, w, now_ns);
    check_invariants(c);
}

void tl_canary_on_mode(tl_canary *c, const uint8_t command_id[TL_ID_BYTES], uint32_t scope,
                       uint64_t now_ns) {
    (void)scope;
    tl_canary_wait *w = wait_find(c, command_id);
    if (w != NULL && w->state == 0) {
        w->state = 1;
        resolved(c, w, now_ns);
    }
    check_invariants(c);
}

static bool in_scope(const tl_canary *c, const tl_finding *f) {
    return f->symbol == 0 || f->symbol == c->canary;
}

void tl_canary_on_finding(tl_canary *c, const tl_finding *f, uint64_t now_ns) {
    if (f->severity < TL_SEV_SEV2)
        return;
    /* A pass is withdrawn by what could undo its reason: a SEV1 anywhere,
     * or a SEV2 on `*`. Batches and withdrawals then need a new canary. */
    if (f->severity == TL_SEV_SEV1 || f->symbol == 0)
        c->passed = false;
    if (!in_scope(c, f))
        return;
    char detail[96];
    switch (c->phase) {
        case TL_CANARY_PINNING:
        case TL_CANARY_LOWERING:
            snprintf(detail, sizeof detail, "%s finding during the resume",
                     tl_check_name((enum tl_check)f->check));
            abort_resume(c, detail, f->check, f->id, now_ns);
            return;
        case TL_CANARY_STEPPING:
        case TL_CANARY_WATCHING: {
            c->rollback_check = f->check;
            c->rollback_finding = f->id;
            tl_canary_note *n = note(c, TL_NOTE_ROLLBACK_SENT, sym_name(c, c->canary));
            n->mode = c->canary_from;
            n->check = f->check;
            n->finding_id = f->id;
            send_rollback(c, now_ns);
            return;
        }
        default:
            return;
    }
}

void tl_canary_on_symbol(tl_canary *c, uint32_t id, uint64_t now_ns) {
    (void)now_ns;
    if (!c->session)
        return;
    tl_modes_sym *s = tl_modes_find(c->modes, id);
    if (s == NULL || !s->has_name || s->pinned != 0 || s->mode >= c->session_mode)
        return;
    /* A symbol listed later is pinned at once. */
    queue_pin(c, s);
    pump_pins(c);
}

static bool session_over(const tl_canary *c) {
    const tl_modes *m = c->modes;
    if (m->global_mode != TL_MODE_NORMAL)
        return false;
    for (uint32_t i = 0; i < m->count; i++) {
        if (m->syms[i].mode != TL_MODE_NORMAL)
            return false;
    }
    return true;
}

void tl_canary_tick(tl_canary *c, uint64_t now_ns) {
    uint64_t timeout_ns = TL_CANARY_APPLY_TIMEOUT_MS * 1000000ull;
    switch (c->phase) {
        case TL_CANARY_WATCHING:
            if (now_ns - c->window_start_ns >= c->window_ms * 1000000ull) {
                tl_canary_note *n = note(c, TL_NOTE_CANARY_PASSED, sym_name(c, c->canary));
                n->mode = c->canary_to;
                n->from_mode = c->canary_from;
                n->window_ms = c->window_ms;
                c->passed = true;
                c->passed_level = c->canary_from;
                c->outcome = TL_CANARY_OUT_PASSED;
                c->passed_total++;
                set_phase(c, TL_CANARY_IDLE, now_ns);
            }
            break;
        case TL_CANARY_STEPPING:
            if (now_ns - c->phase_since_ns >= timeout_ns) {
                /* It may still land: roll back to be sure, then report. */
                c->rollback_check = TL_CHECK_NONE;
                c->rollback_finding = 0;
                tl_canary_note *n = note(c, TL_NOTE_ROLLBACK_SENT, sym_name(c, c->canary));
                n->mode = c->canary_from;
                snprintf(n->detail, sizeof n->detail, "the canary step was not applied in %llu ms",
                         (unsigned long long)TL_CANARY_APPLY_TIMEOUT_MS);
                send_rollback(c, now_ns);
            }
            break;
        case TL_CANARY_PINNING:
        case TL_CANARY_LOWERING:
            if (now_ns - c->phase_since_ns >= timeout_ns)
                abort_resume(c, "a step was not applied in time", 0, 0, now_ns);
            break;
        case TL_CANARY_ROLLING_BACK:
            if (now_ns - c->phase_since_ns >= timeout_ns) {
                tl_canary_note *n = note(c, TL_NOTE_ROLLBACK_FAILED, sym_name(c, c->canary));
                n->mode = c->canary_from;
                snprintf(n->detail, sizeof n->detail,
                         "the rollback was not applied in time; "
                         "the loop keeps sending it");
                for (uint32_t i = 0; i < c->wait_count;) {
                    if (c->wait[i].kind != TL_WAIT_PIN)
                        forget(c, &c->wait[i]);
                    else
                        i++;
                }
                c->outcome = TL_CANARY_OUT_ROLLBACK_FAILED;
                set_phase(c, TL_CANARY_IDLE, now_ns);
            }
            break;
        case TL_CANARY_BATCH:
        case TL_CANARY_WITHDRAWALS:
            if (now_ns - c->phase_since_ns >= timeout_ns) {
                for (uint32_t i = 0; i < c->wait_count;) {
                    tl_canary_wait *w = &c->wait[i];
                    if (w->kind == TL_WAIT_BATCH || w->kind == TL_WAIT_WITHDRAWALS) {
                        w->state = 2;
                        resolved(c, w, now_ns); /* removes it */
                        if (c->phase == TL_CANARY_IDLE)
                            break;
                    } else {
                        i++;
                    }
                }
            }
            break;
        default:
            break;
    }
    if (c->session && c->phase == TL_CANARY_IDLE && session_over(c)) {
        c->session = false;
        for (uint32_t i = 0; i < c->modes->count; i++)
            c->modes->syms[i].pinned = 0;
        c->pins_queued = 0;
        note(c, TL_NOTE_SESSION_ENDED, "*");
    }
    check_invariants(c);
}

/* ---- settlement-lag auto-resume ---- */

const char *tl_ar_state_name(uint8_t s) {
    static const char *const names[TL_AR_STATE_COUNT] = {"idle", "halted", "resuming"};
    return s < TL_AR_STATE_COUNT ? names[s] : "?";
}

const char *tl_ar_verdict_name(uint8_t v) {
    static const char *const names[TL_AR_VERDICT_COUNT] = {
        "not_halted", "hard_halt",     "no_operator_key", "wait_clean",
        "wait_pause", "wait_cooldown", "in_flight",       "resume",
    };
    return v < TL_AR_VERDICT_COUNT ? names[v] : "?";
}

void tl_autoresume_init(tl_autoresume *ar, const tl_autoresume_cfg *cfg) {
    TL_ASSERT(cfg->clean_cycles >= 1);
    memset(ar, 0, sizeof *ar);
    ar->cfg = *cfg;
    ar->rng = cfg->id_seed ^ 0x6175746f72ull;
}

void tl_autoresume_halt_applied(tl_autoresume *ar, const uint8_t id[TL_ID_BYTES],
                                const char *ticket, uint8_t prev_mode, uint64_t now_ns) {
    if (prev_mode >= TL_MODE_SOFT_HALT)
        return; /* it changed nothing: the mode in force is not ours to lift */
    ar->state = TL_AR_HALTED;
    ar->hard = false;
    ar->resume_to = prev_mode;
    ar->clean = 0;
    ar->halt_ns = now_ns;
    memcpy(ar->halt_id, id, TL_ID_BYTES);
    snprintf(ar->ticket, sizeof ar->ticket, "%s", ticket != NULL ? ticket : "");
}

void tl_autoresume_global_mode(tl_autoresume *ar, uint8_t mode,
                               const uint8_t command_id[TL_ID_BYTES], uint64_t now_ns) {
    (void)now_ns;
    if (ar->state == TL_AR_IDLE)
        return;
    if (ar->state == TL_AR_RESUMING && memcmp(command_id, ar->resume_id, TL_ID_BYTES) == 0) {
        ar->state = TL_AR_IDLE;
        ar->resumes_total++;
        return;
    }
    if (mode > TL_MODE_SOFT_HALT) {
        ar->hard = true; /* a HARD_HALT never auto-resumes, even once lowered again */
        return;
    }
    if (mode < TL_MODE_SOFT_HALT && memcmp(command_id, ar->halt_id, TL_ID_BYTES) != 0) {
        ar->state = TL_AR_IDLE; /* an operator resumed it */
        return;
    }
}

static enum tl_ar_verdict evaluate(tl_autoresume *ar, uint64_t now_ns, tl_action *out);

enum tl_ar_verdict tl_autoresume_poll(tl_autoresume *ar, bool below_t2, uint64_t now_ns,
                                      tl_action *out) {
    if (ar->state == TL_AR_HALTED)
        ar->clean = below_t2 ? ar->clean + 1 : 0;
    return evaluate(ar, now_ns, out);
}

enum tl_ar_verdict tl_autoresume_poll_count(tl_autoresume *ar, uint32_t clean_in_a_row,
                                            uint64_t now_ns, tl_action *out) {
    if (ar->state == TL_AR_HALTED)
        ar->clean = clean_in_a_row;
    return evaluate(ar, now_ns, out);
}

static enum tl_ar_verdict evaluate(tl_autoresume *ar, uint64_t now_ns, tl_action *out) {
    enum tl_ar_verdict v;
    if (ar->state == TL_AR_IDLE)
        v = TL_AR_NOT_HALTED;
    else if (ar->state == TL_AR_RESUMING)
        v = TL_AR_IN_FLIGHT;
    else if (ar->hard)
        v = TL_AR_HARD_HALT;
    else if (!ar->cfg.operator_key)
        v = TL_AR_NO_OPERATOR_KEY;
    else if (ar->clean < ar->cfg.clean_cycles)
        v = TL_AR_WAIT_CLEAN;
    else if (now_ns - ar->halt_ns < ar->cfg.min_pause_ms * 1000000ull)
        v = TL_AR_WAIT_PAUSE;
    else if (ar->resumed_once && now_ns - ar->last_resume_ns < ar->cfg.cooldown_ms * 1000000ull)
        v = TL_AR_WAIT_COOLDOWN;
    else
        v = TL_AR_RESUME;
    ar->verdicts[v]++;
    if (v != TL_AR_RESUME)
        return v;

    TL_ASSERT(out != NULL);
    memset(out, 0, sizeof *out);
    tl_action_id_mint(&ar->rng, ar->cfg.tag_seed, out->id);
    out->cmd = TL_CMD_SET_SYMBOL_MODE;
    out->key = TL_KEY_OPERATOR;
    out->mode = ar->resume_to;
    out->from_mode = TL_MODE_SOFT_HALT;
    out->state = TL_ACT_PLANNED;
    out->origin = TL_ORIGIN_AUTO_RESUME;
    out->severity = TL_SEV_INFO;
    out->check = TL_CHECK_SETTLEMENT_LAG;
    out->symbol = 0;
    strcpy(out->symbol_name, "*");
    snprintf(out->reason, sizeof out->reason, "auto_resume: settlement lag below T2 for %u polls",
             ar->clean);
    snprintf(out->ticket, sizeof out->ticket, "%s", ar->ticket);
    memcpy(ar->resume_id, out->id, TL_ID_BYTES);
    ar->state = TL_AR_RESUMING;
    ar->last_resume_ns = now_ns;
    ar->resumed_once = true;
    return v;
}

void tl_autoresume_on_action(tl_autoresume *ar, const tl_action *a, uint64_t now_ns) {
    (void)now_ns;
    if (ar->state != TL_AR_RESUMING || memcmp(a->id, ar->resume_id, TL_ID_BYTES) != 0)
        return;
    if (a->state == TL_ACT_BLOCKED || a->state == TL_ACT_FAILED) {
        ar->state = TL_AR_HALTED;
        ar->clean = 0;
    } else if (a->state == TL_ACT_APPLIED) {
        ar->state = TL_AR_IDLE;
        ar->resumes_total++;
    }
}
