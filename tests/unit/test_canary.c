/* test_canary.c: the canary resume and the settlement-lag auto-resume state
 * machines of core/canary.c, in isolation.
 *
 * A tiny engine stands in for the real one: it applies what the machine
 * sends with the engine's rules (the sidecar key takes max(current,
 * requested); the operator key must name from_mode = the scope's mode, else
 * precondition_failed) and reports back as the loop would: the action's
 * APPLIED or FAILED event, then its MODE_CHANGE (by command id). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/canary.h"

#define MS 1000000ull

typedef struct eng {
    tl_modes modes;
    tl_modes_sym mem[256];
    tl_canary c;
    uint64_t now;
    /* what went out, in order */
    tl_action sent[1024];
    uint32_t nsent;
    /* actions taken from the outbox but not yet applied (the engine lags) */
    tl_action held[256];
    uint32_t nheld;
    bool block_pins; /* the loop's gates block every pin */
    bool fail_operator;
} eng;

static eng *eng_new(uint8_t global, uint32_t nsyms, const uint8_t *own) {
    eng *e = calloc(1, sizeof *e);
    assert_non_null(e);
    tl_modes_init(&e->modes, e->mem, 256);
    for (uint32_t i = 0; i < nsyms; i++) {
        char name[16];
        snprintf(name, sizeof name, "SYM%03u", i + 1);
        assert_non_null(tl_modes_declare(&e->modes, i + 1, name, strlen(name)));
        tl_modes_set(&e->modes, i + 1, own != NULL ? own[i] : TL_MODE_NORMAL, false);
    }
    tl_modes_set(&e->modes, 0, global, global >= TL_MODE_HARD_HALT);
    tl_canary_cfg cfg = {.window_ms = 1000, .tag_seed = 7, .id_seed = 11};
    tl_canary_init(&e->c, &cfg, &e->modes);
    e->now = 1000 * MS;
    return e;
}

static uint8_t scope_mode(eng *e, uint32_t scope) {
    if (scope == 0)
        return e->modes.global_mode;
    return tl_modes_find(&e->modes, scope)->mode;
}

static void event(eng *e, tl_action *a, uint8_t state) {
    a->state = state;
    tl_canary_on_action(&e->c, a, e->now);
}

/* The engine applies one action. */
static void engine_apply(eng *e, tl_action *a) {
    if (a->key == TL_KEY_OPERATOR && e->fail_operator) {
        event(e, a, TL_ACT_FAILED);
        return;
    }
    if (a->cmd == TL_CMD_WITHDRAWALS_HALT) {
        assert_int_equal(a->key, TL_KEY_OPERATOR);
        e->modes.withdrawals_halted = a->on;
    } else {
        uint8_t cur = scope_mode(e, a->symbol);
        uint8_t next;
        if (a->key == TL_KEY_SIDECAR) {
            next = a->mode > cur ? a->mode : cur;
        } else {
            assert_int_not_equal(a->from_mode, TL_FROM_MODE_NONE);
            if (a->from_mode != cur) {
                event(e, a, TL_ACT_FAILED); /* precondition_failed */
                return;
            }
            next = a->mode;
        }
        tl_modes_set(&e->modes, a->symbol, next, e->modes.withdrawals_halted);
    }
    event(e, a, TL_ACT_EXECUTED);
    /* the loop reports APPLIED from the MODE_CHANGE; the control thread also
     * sees the MODE_CHANGE itself: both must be harmless together */
    event(e, a, TL_ACT_APPLIED);
    tl_canary_on_mode(&e->c, a->id, a->symbol, e->now);
}

/* Takes everything out of the outbox into `held`, recording it. */
static uint32_t drain(eng *e) {
    uint32_t n = 0;
    const tl_action *p;
    while ((p = tl_canary_peek(&e->c)) != NULL) {
        assert_true(e->nsent < 1024 && e->nheld < 256);
        e->sent[e->nsent++] = *p;
        e->held[e->nheld++] = *p;
        tl_canary_pop(&e->c);
        n++;
    }
    return n;
}

/* Applies the held actions (and whatever they cause) until nothing is left. */
static void settle(eng *e) {
    for (int round = 0; round < 1000; round++) {
        drain(e);
        if (e->nheld == 0)
            return;
        tl_action a = e->held[0];
        memmove(e->held, e->held + 1, (e->nheld - 1) * sizeof(tl_action));
        e->nheld--;
        e->now += MS;
        if (a.origin == TL_ORIGIN_PIN && e->block_pins) {
            a.block = TL_BLOCK_NOT_ARMED;
            event(e, &a, TL_ACT_BLOCKED);
            continue;
        }
        engine_apply(e, &a);
    }
    fail_msg("did not settle");
}

static bool has_note(eng *e, uint8_t kind, tl_canary_note *out) {
    tl_canary_note n;
    bool found = false;
    while (tl_canary_note_pop(&e->c, &n)) {
        if (n.kind == kind && !found) {
            found = true;
            if (out != NULL)
                *out = n;
        }
    }
    return found;
}

static tl_resume_req canary_req(const char *sym, uint64_t window_ms) {
    tl_resume_req r;
    memset(&r, 0, sizeof r);
    r.kind = TL_RESUME_CANARY;
    snprintf(r.symbol, sizeof r.symbol, "%s", sym);
    r.window_ms = window_ms;
    strcpy(r.ticket, "INC-1");
    strcpy(r.reason, "ledger reconciled, resuming");
    return r;
}

static tl_finding finding(uint16_t check, uint8_t sev, uint32_t symbol) {
    tl_finding f;
    tl_finding_init(&f, check);
    f.severity = sev;
    f.symbol = symbol;
    f.id = 99;
    return f;
}

static uint8_t effective(eng *e, uint32_t id) {
    return tl_modes_effective(&e->modes, tl_modes_find(&e->modes, id));
}

/* ---- tests ---- */

/* A global HARD_HALT over 3 symbols: pins first (SYM001, SYM002 below the
 * global mode; SYM003 already HARD_HALT needs none), then the global goes to
 * SOFT_HALT, then the canary to SOFT_HALT. No other effective mode moves. */
static void test_global_resume_steps(void **state) {
    (void)state;
    uint8_t own[3] = {TL_MODE_NORMAL, TL_MODE_CANCEL_ONLY, TL_MODE_HARD_HALT};
    eng *e = eng_new(TL_MODE_HARD_HALT, 3, own);
    tl_resume_req r = canary_req("SYM001", 5000);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_OK);
    assert_int_equal(e->c.phase, TL_CANARY_PINNING);
    assert_int_equal(drain(e), 2);
    for (int i = 0; i < 2; i++) {
        tl_action *a = &e->sent[i];
        assert_int_equal(a->origin, TL_ORIGIN_PIN);
        assert_int_equal(a->key, TL_KEY_SIDECAR);
        assert_int_equal(a->mode, TL_MODE_HARD_HALT);
        assert_int_equal(a->from_mode, TL_FROM_MODE_NONE);
        assert_string_equal(a->ticket, "INC-1");
        assert_false(tl_id_is_zero(a->id));
        assert_true(tl_action_id_is_ours(a->id, 7));
    }
    assert_string_equal(e->sent[0].symbol_name, "SYM001");
    assert_string_equal(e->sent[1].symbol_name, "SYM002");
    /* nothing else goes before every pin applied */
    settle(e);
    assert_true(e->nsent >= 4);
    tl_action *low = &e->sent[2];
    assert_int_equal(low->symbol, 0);
    assert_string_equal(low->symbol_name, "*");
    assert_int_equal(low->key, TL_KEY_OPERATOR);
    assert_int_equal(low->mode, TL_MODE_SOFT_HALT);
    assert_int_equal(low->from_mode, TL_MODE_HARD_HALT);
    assert_int_equal(low->origin, TL_ORIGIN_CANARY);
    tl_action *step = &e->sent[3];
    assert_string_equal(step->symbol_name, "SYM001");
    assert_int_equal(step->key, TL_KEY_OPERATOR);
    assert_int_equal(step->mode, TL_MODE_SOFT_HALT);
    assert_int_equal(step->from_mode, TL_MODE_HARD_HALT);
    assert_int_equal(e->c.phase, TL_CANARY_WATCHING);
    /* the engine: global SOFT, every other symbol still HARD in effect */
    assert_int_equal(e->modes.global_mode, TL_MODE_SOFT_HALT);
    assert_int_equal(effective(e, 1), TL_MODE_SOFT_HALT);
    assert_int_equal(effective(e, 2), TL_MODE_HARD_HALT);
    assert_int_equal(effective(e, 3), TL_MODE_HARD_HALT);
    tl_canary_note n;
    /* notes: started, 2 pins, pins applied, lowered, stepped */
    tl_canary_note_pop(&e->c, &n);
    assert_int_equal(n.kind, TL_NOTE_RESUME_STARTED);
    assert_true(has_note(e, TL_NOTE_CANARY_STEPPED, &n));
    assert_string_equal(n.symbol, "SYM001");
    assert_int_equal(n.window_ms, 5000);
    /* a second request while the window runs is refused */
    r = canary_req("SYM002", 0);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_ERR_BUSY);
    /* a clean window passes */
    e->now += 4999 * MS;
    tl_canary_tick(&e->c, e->now);
    assert_int_equal(e->c.phase, TL_CANARY_WATCHING);
    e->now += 2 * MS;
    tl_canary_tick(&e->c, e->now);
    assert_int_equal(e->c.phase, TL_CANARY_IDLE);
    assert_int_equal(e->c.outcome, TL_CANARY_OUT_PASSED);
    assert_true(has_note(e, TL_NOTE_CANARY_PASSED, &n));
    assert_string_equal(n.symbol, "SYM001");
    assert_int_equal(e->c.passed_total, 1);
    free(e);
}

/* Any SEV1/SEV2 finding in scope {canary, *} during the window rolls the
 * canary back to its prior mode with the sidecar key; other scopes do not. */
static void test_rollback_on_recurrence(void **state) {
    (void)state;
    eng *e = eng_new(TL_MODE_HARD_HALT, 3, NULL);
    tl_resume_req r = canary_req("SYM002", 60000);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_OK);
    settle(e);
    assert_int_equal(e->c.phase, TL_CANARY_WATCHING);
    assert_int_equal(effective(e, 2), TL_MODE_SOFT_HALT);
    /* info, degraded, and a SEV2 on another symbol: no rollback */
    tl_finding f = finding(TL_CHECK_SEQ_DUPLICATE, TL_SEV_INFO, 0);
    tl_canary_on_finding(&e->c, &f, e->now);
    f = finding(TL_CHECK_ENGINE_SILENT, TL_SEV_DEGRADED, 0);
    tl_canary_on_finding(&e->c, &f, e->now);
    f = finding(TL_CHECK_STANDBY_LAG, TL_SEV_SEV2, 3);
    tl_canary_on_finding(&e->c, &f, e->now);
    assert_int_equal(e->c.phase, TL_CANARY_WATCHING);
    assert_int_equal(tl_canary_peek(&e->c), NULL);
    /* a fork on `*` */
    uint32_t before = e->nsent;
    f = finding(TL_CHECK_FORK, TL_SEV_SEV1, 0);
    tl_canary_on_finding(&e->c, &f, e->now);
    assert_int_equal(e->c.phase, TL_CANARY_ROLLING_BACK);
    settle(e);
    assert_int_equal(e->nsent, before + 1);
    tl_action *rb = &e->sent[before];
    assert_int_equal(rb->origin, TL_ORIGIN_ROLLBACK);
    assert_int_equal(rb->key, TL_KEY_SIDECAR);
    assert_string_equal(rb->symbol_name, "SYM002");
    assert_int_equal(rb->mode, TL_MODE_HARD_HALT);
    assert_non_null(strstr(rb->reason, "FORK"));
    assert_int_equal(e->c.phase, TL_CANARY_IDLE);
    assert_int_equal(e->c.outcome, TL_CANARY_OUT_ROLLED_BACK);
    assert_int_equal(effective(e, 2), TL_MODE_HARD_HALT);
    tl_canary_note n;
    assert_true(has_note(e, TL_NOTE_ROLLED_BACK, &n));
    assert_int_equal(n.check, TL_CHECK_FORK);
    /* the pass never came: batches are refused */
    tl_resume_req b;
    memset(&b, 0, sizeof b);
    b.kind = TL_RESUME_BATCH;
    b.n_symbols = 1;
    strcpy(b.symbols[0], "SYM003");
    strcpy(b.ticket, "INC-1");
    assert_int_equal(tl_canary_request(&e->c, &b, e->now), TL_RESUME_ERR_NOT_PASSED);
    /* a SEV2 on the canary's own scope rolls back as well */
    r = canary_req("SYM002", 60000);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_OK);
    settle(e);
    assert_int_equal(e->c.phase, TL_CANARY_WATCHING);
    f = finding(TL_CHECK_SETTLEMENT_LAG, TL_SEV_SEV2, 2);
    tl_canary_on_finding(&e->c, &f, e->now);
    settle(e);
    assert_int_equal(e->c.outcome, TL_CANARY_OUT_ROLLED_BACK);
    assert_int_equal(e->c.rolled_back_total, 2);
    free(e);
}

/* The finding arrives while the canary step is still on its way, and the
 * step lands after the rollback: the machine rolls back again. */
static void test_step_lands_after_rollback(void **state) {
    (void)state;
    eng *e = eng_new(TL_MODE_NORMAL, 2, (const uint8_t[]){TL_MODE_HARD_HALT, TL_MODE_NORMAL});
    tl_resume_req r = canary_req("SYM001", 60000);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_OK);
    assert_int_equal(drain(e), 1); /* the symbol path: no pins, one step */
    tl_action step = e->held[0];
    e->nheld = 0;
    assert_int_equal(step.from_mode, TL_MODE_HARD_HALT);
    assert_int_equal(step.mode, TL_MODE_SOFT_HALT);
    tl_finding f = finding(TL_CHECK_CHAIN_BREAK, TL_SEV_SEV1, 0);
    tl_canary_on_finding(&e->c, &f, e->now);
    assert_int_equal(drain(e), 1);
    tl_action rb = e->held[0];
    e->nheld = 0;
    assert_int_equal(rb.origin, TL_ORIGIN_ROLLBACK);
    engine_apply(e, &rb); /* no change: the step has not landed */
    assert_int_equal(e->c.phase, TL_CANARY_ROLLING_BACK);
    engine_apply(e, &step); /* now it lands: SYM001 at SOFT_HALT */
    assert_int_equal(effective(e, 1), TL_MODE_SOFT_HALT);
    settle(e); /* the second rollback */
    assert_int_equal(effective(e, 1), TL_MODE_HARD_HALT);
    assert_int_equal(e->c.phase, TL_CANARY_IDLE);
    assert_int_equal(e->c.outcome, TL_CANARY_OUT_ROLLED_BACK);
    free(e);
}

/* After CANARY_PASSED: batches at the passed level, then the withdrawals. */
static void test_batches_and_withdrawals_after_pass(void **state) {
    (void)state;
    eng *e = eng_new(TL_MODE_HARD_HALT, 4, NULL);
    tl_resume_req w;
    memset(&w, 0, sizeof w);
    w.kind = TL_RESUME_WITHDRAWALS;
    strcpy(w.ticket, "INC-2");
    assert_int_equal(tl_canary_request(&e->c, &w, e->now), TL_RESUME_ERR_NOT_PASSED);
    tl_resume_req r = canary_req("SYM001", 100);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_OK);
    settle(e);
    e->now += 200 * MS;
    tl_canary_tick(&e->c, e->now);
    assert_int_equal(e->c.outcome, TL_CANARY_OUT_PASSED);

    tl_resume_req b;
    memset(&b, 0, sizeof b);
    b.kind = TL_RESUME_BATCH;
    strcpy(b.ticket, "INC-2");
    b.n_symbols = 1;
    strcpy(b.symbols[0], "NOPE");
    assert_int_equal(tl_canary_request(&e->c, &b, e->now), TL_RESUME_ERR_UNKNOWN_SYMBOL);
    strcpy(b.symbols[0], "SYM001"); /* already at SOFT_HALT: not at the passed level */
    assert_int_equal(tl_canary_request(&e->c, &b, e->now), TL_RESUME_ERR_WRONG_LEVEL);
    b.n_symbols = 3;
    strcpy(b.symbols[0], "SYM002");
    strcpy(b.symbols[1], "SYM003");
    strcpy(b.symbols[2], "SYM004");
    uint32_t before = e->nsent;
    assert_int_equal(tl_canary_request(&e->c, &b, e->now), TL_RESUME_OK);
    settle(e);
    assert_int_equal(e->nsent, before + 3);
    for (uint32_t i = before; i < e->nsent; i++) {
        assert_int_equal(e->sent[i].key, TL_KEY_OPERATOR);
        assert_int_equal(e->sent[i].from_mode, TL_MODE_HARD_HALT);
        assert_int_equal(e->sent[i].mode, TL_MODE_SOFT_HALT);
    }
    for (uint32_t id = 1; id <= 4; id++)
        assert_int_equal(effective(e, id), TL_MODE_SOFT_HALT);
    assert_int_equal(e->c.outcome, TL_CANARY_OUT_BATCH_DONE);

    /* withdrawals, on request, after the pass */
    assert_true(e->modes.withdrawals_halted);
    assert_int_equal(tl_canary_request(&e->c, &w, e->now), TL_RESUME_OK);
    settle(e);
    tl_action *wa = &e->sent[e->nsent - 1];
    assert_int_equal(wa->cmd, TL_CMD_WITHDRAWALS_HALT);
    assert_int_equal(wa->on, 0);
    assert_int_equal(wa->key, TL_KEY_OPERATOR);
    assert_false(e->modes.withdrawals_halted);
    assert_int_equal(e->c.outcome, TL_CANARY_OUT_WITHDRAWALS_RESUMED);
    assert_int_equal(tl_canary_request(&e->c, &w, e->now), TL_RESUME_ERR_NOT_WITHDRAWN);

    /* the next level: the global (SOFT) holds SYM001 at SOFT: global path
     * again, no pins (every symbol is at SOFT_HALT already) */
    r = canary_req("SYM001", 100);
    before = e->nsent;
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_OK);
    settle(e);
    assert_int_equal(e->nsent, before + 2); /* lowering + step */
    assert_int_equal(e->modes.global_mode, TL_MODE_CANCEL_ONLY);
    assert_int_equal(effective(e, 1), TL_MODE_CANCEL_ONLY);
    assert_int_equal(effective(e, 2), TL_MODE_SOFT_HALT);
    /* a SEV1 anywhere after a pass withdraws it */
    e->now += 200 * MS;
    tl_canary_tick(&e->c, e->now);
    assert_int_equal(e->c.outcome, TL_CANARY_OUT_PASSED);
    tl_finding f = finding(TL_CHECK_LEDGER_FORK, TL_SEV_SEV1, 4);
    tl_canary_on_finding(&e->c, &f, e->now);
    b.n_symbols = 1;
    strcpy(b.symbols[0], "SYM002");
    assert_int_equal(tl_canary_request(&e->c, &b, e->now), TL_RESUME_ERR_NOT_PASSED);
    free(e);
}

/* A pin that is BLOCKED stops the resume; the global mode never moves. */
static void test_pin_blocked_aborts(void **state) {
    (void)state;
    eng *e = eng_new(TL_MODE_HARD_HALT, 3, NULL);
    e->block_pins = true;
    tl_resume_req r = canary_req("SYM001", 100);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_OK);
    settle(e);
    assert_int_equal(e->c.phase, TL_CANARY_IDLE);
    assert_int_equal(e->c.outcome, TL_CANARY_OUT_ABORTED);
    assert_int_equal(e->modes.global_mode, TL_MODE_HARD_HALT);
    for (uint32_t i = 0; i < e->nsent; i++)
        assert_int_equal(e->sent[i].origin, TL_ORIGIN_PIN);
    tl_canary_note n;
    assert_true(has_note(e, TL_NOTE_RESUME_ABORTED, &n));
    assert_non_null(strstr(n.detail, "BLOCKED{not_armed}"));
    /* the global step down failing (precondition) aborts as well */
    e->block_pins = false;
    e->fail_operator = true;
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_OK);
    settle(e);
    assert_int_equal(e->c.outcome, TL_CANARY_OUT_ABORTED);
    assert_int_equal(e->modes.global_mode, TL_MODE_HARD_HALT);
    free(e);
}

/* 200 symbols: never more than TL_CANARY_PINS_IN_FLIGHT pins out at once,
 * and the global step waits for the last one. */
static void test_pins_bounded(void **state) {
    (void)state;
    eng *e = eng_new(TL_MODE_SOFT_HALT, 200, NULL);
    tl_resume_req r = canary_req("SYM100", 100);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_OK);
    assert_int_equal(drain(e), TL_CANARY_PINS_IN_FLIGHT);
    assert_int_equal(drain(e), 0);
    uint32_t pins = 0;
    while (e->nheld > 0) {
        tl_action a = e->held[0];
        memmove(e->held, e->held + 1, (e->nheld - 1) * sizeof(tl_action));
        e->nheld--;
        if (a.origin == TL_ORIGIN_PIN) {
            pins++;
            assert_true(e->modes.global_mode == TL_MODE_SOFT_HALT);
        }
        engine_apply(e, &a);
        drain(e);
        assert_true(e->c.pins_in_flight <= TL_CANARY_PINS_IN_FLIGHT);
    }
    assert_int_equal(pins, 200);
    assert_int_equal(e->c.phase, TL_CANARY_WATCHING);
    for (uint32_t id = 1; id <= 200; id++)
        assert_int_equal(effective(e, id), id == 100 ? TL_MODE_CANCEL_ONLY : TL_MODE_SOFT_HALT);
    free(e);
}

/* A symbol declared after the global went down is pinned at once to the
 * session's halt mode. */
static void test_later_symbol_pinned(void **state) {
    (void)state;
    eng *e = eng_new(TL_MODE_HARD_HALT, 2, NULL);
    tl_resume_req r = canary_req("SYM001", 100000);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_OK);
    settle(e);
    assert_int_equal(e->modes.global_mode, TL_MODE_SOFT_HALT);
    assert_non_null(tl_modes_declare(&e->modes, 50, "LATE", 4));
    tl_canary_on_symbol(&e->c, 50, e->now);
    assert_int_equal(drain(e), 1);
    tl_action *p = &e->sent[e->nsent - 1];
    assert_string_equal(p->symbol_name, "LATE");
    assert_int_equal(p->mode, TL_MODE_HARD_HALT);
    assert_int_equal(p->origin, TL_ORIGIN_PIN);
    settle(e);
    assert_int_equal(effective(e, 50), TL_MODE_HARD_HALT);
    assert_int_equal(e->c.phase, TL_CANARY_WATCHING); /* the window is undisturbed */
    free(e);
}

static void test_refusals(void **state) {
    (void)state;
    eng *e = eng_new(TL_MODE_NORMAL, 2, NULL);
    tl_resume_req r = canary_req("SYM001", 100);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_ERR_NOT_HALTED);
    r = canary_req("ZZZ", 100);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_ERR_UNKNOWN_SYMBOL);
    r = canary_req("SYM001", TL_CANARY_WINDOW_MAX_MS + 1);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_ERR_BAD_REQUEST);
    r = canary_req("SYM001", 100);
    r.ticket[0] = '\0';
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_ERR_BAD_REQUEST);
    /* a scope the engine never named, below a global halt: cannot be pinned */
    tl_modes_set(&e->modes, 0, TL_MODE_HARD_HALT, false);
    tl_modes_set(&e->modes, 77, TL_MODE_NORMAL, false);
    r = canary_req("SYM001", 100);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_ERR_UNNAMED_SCOPE);
    assert_int_equal(tl_canary_peek(&e->c), NULL);
    for (uint8_t k = 0; k < TL_RESUME_ERR_COUNT; k++)
        assert_string_not_equal(tl_resume_err_name(k), "?");
    free(e);
}

/* A step that never applies: after the timeout the canary is rolled back
 * anyway (it may still land). */
static void test_step_timeout(void **state) {
    (void)state;
    eng *e = eng_new(TL_MODE_NORMAL, 1, (const uint8_t[]){TL_MODE_SOFT_HALT});
    tl_resume_req r = canary_req("SYM001", 100);
    assert_int_equal(tl_canary_request(&e->c, &r, e->now), TL_RESUME_OK);
    assert_int_equal(drain(e), 1);
    e->nheld = 0; /* lost */
    e->now += TL_CANARY_APPLY_TIMEOUT_MS * MS;
    tl_canary_tick(&e->c, e->now);
    assert_int_equal(e->c.phase, TL_CANARY_ROLLING_BACK);
    assert_int_equal(drain(e), 1);
    assert_int_equal(e->sent[e->nsent - 1].origin, TL_ORIGIN_ROLLBACK);
    e->now += TL_CANARY_APPLY_TIMEOUT_MS * MS;
    tl_canary_tick(&e->c, e->now);
    assert_int_equal(e->c.outcome, TL_CANARY_OUT_ROLLBACK_FAILED);
    free(e);
}

/* ---- auto-resume ---- */

static tl_autoresume_cfg ar_cfg(void) {
    tl_autoresume_cfg c = {.clean_cycles = 2,
                           .min_pause_ms = 900000,
                           .cooldown_ms = 1800000,
                           .operator_key = true,
                           .tag_seed = 7,
                           .id_seed = 3};
    return c;
}

static const uint8_t HALT_ID[16] = {1, 2, 3};
static const uint8_t OTHER_ID[16] = {9, 9, 9};

/* Gate 1: the lag below T2 for clean_cycles polls in a row. */
static void test_ar_gate_clean_cycles(void **state) {
    (void)state;
    tl_autoresume_cfg cfg = ar_cfg();
    cfg.min_pause_ms = 0;
    tl_autoresume ar;
    tl_autoresume_init(&ar, &cfg);
    tl_action a;
    uint64_t t = 1000 * MS;
    assert_int_equal(tl_autoresume_poll(&ar, true, t, &a), TL_AR_NOT_HALTED);
    tl_autoresume_halt_applied(&ar, HALT_ID, "INC-9", TL_MODE_NORMAL, t);
    assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_WAIT_CLEAN);
    assert_int_equal(tl_autoresume_poll(&ar, false, t += MS, &a), TL_AR_WAIT_CLEAN); /* reset */
    assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_WAIT_CLEAN);
    assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_RESUME);
    assert_int_equal(a.cmd, TL_CMD_SET_SYMBOL_MODE);
    assert_string_equal(a.symbol_name, "*");
    assert_int_equal(a.key, TL_KEY_OPERATOR);
    assert_int_equal(a.from_mode, TL_MODE_SOFT_HALT);
    assert_int_equal(a.mode, TL_MODE_NORMAL);
    assert_int_equal(a.origin, TL_ORIGIN_AUTO_RESUME);
    assert_string_equal(a.ticket, "INC-9");
    assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_IN_FLIGHT);
    tl_autoresume_global_mode(&ar, TL_MODE_NORMAL, a.id, t);
    assert_int_equal(ar.state, TL_AR_IDLE);
    assert_int_equal(ar.resumes_total, 1);
}

/* Gate 2: at least min_pause_ms since the halt. */
static void test_ar_gate_min_pause(void **state) {
    (void)state;
    tl_autoresume_cfg cfg = ar_cfg();
    tl_autoresume ar;
    tl_autoresume_init(&ar, &cfg);
    tl_action a;
    uint64_t t0 = 5000 * MS;
    tl_autoresume_halt_applied(&ar, HALT_ID, "INC-9", TL_MODE_CANCEL_ONLY, t0);
    assert_int_equal(tl_autoresume_poll(&ar, true, t0 + MS, &a), TL_AR_WAIT_CLEAN);
    assert_int_equal(tl_autoresume_poll(&ar, true, t0 + 2 * MS, &a), TL_AR_WAIT_PAUSE);
    assert_int_equal(tl_autoresume_poll(&ar, true, t0 + 899999 * MS, &a), TL_AR_WAIT_PAUSE);
    assert_int_equal(tl_autoresume_poll(&ar, true, t0 + 900000 * MS, &a), TL_AR_RESUME);
    /* back to the mode before the halt, not further */
    assert_int_equal(a.mode, TL_MODE_CANCEL_ONLY);
}

/* Gate 3: no other auto-resume within cooldown_ms. */
static void test_ar_gate_cooldown(void **state) {
    (void)state;
    tl_autoresume_cfg cfg = ar_cfg();
    cfg.min_pause_ms = 1000;
    tl_autoresume ar;
    tl_autoresume_init(&ar, &cfg);
    tl_action a;
    uint64_t t = 1000 * MS;
    tl_autoresume_halt_applied(&ar, HALT_ID, "INC-9", TL_MODE_NORMAL, t);
    t += 1000 * MS;
    tl_autoresume_poll(&ar, true, t, &a);
    assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_RESUME);
    uint64_t resumed = t;
    a.state = TL_ACT_APPLIED;
    tl_autoresume_on_action(&ar, &a, t);
    assert_int_equal(ar.state, TL_AR_IDLE);
    /* a second halt 10 s later: every gate but the cooldown holds */
    t += 10000 * MS;
    tl_autoresume_halt_applied(&ar, OTHER_ID, "INC-10", TL_MODE_NORMAL, t);
    t += 2000 * MS;
    tl_autoresume_poll(&ar, true, t, &a);
    assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_WAIT_COOLDOWN);
    assert_int_equal(tl_autoresume_poll(&ar, true, resumed + 1799999 * MS, &a),
                     TL_AR_WAIT_COOLDOWN);
    assert_int_equal(tl_autoresume_poll(&ar, true, resumed + 1800000 * MS, &a), TL_AR_RESUME);
    assert_true(ar.verdicts[TL_AR_WAIT_COOLDOWN] >= 2);
}

/* A HARD_HALT never auto-resumes: not while it holds, not after an operator
 * takes it back down to SOFT_HALT. */
static void test_ar_hard_halt_never(void **state) {
    (void)state;
    tl_autoresume_cfg cfg = ar_cfg();
    cfg.min_pause_ms = 0;
    cfg.cooldown_ms = 0;
    tl_autoresume ar;
    tl_autoresume_init(&ar, &cfg);
    tl_action a;
    uint64_t t = 1000 * MS;
    tl_autoresume_halt_applied(&ar, HALT_ID, "INC-9", TL_MODE_NORMAL, t);
    tl_autoresume_global_mode(&ar, TL_MODE_HARD_HALT, OTHER_ID, t);
    for (int i = 0; i < 10; i++)
        assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_HARD_HALT);
    tl_autoresume_global_mode(&ar, TL_MODE_SOFT_HALT, OTHER_ID, t);
    for (int i = 0; i < 10; i++)
        assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_HARD_HALT);
    /* an operator resumes it: nothing left to do */
    tl_autoresume_global_mode(&ar, TL_MODE_NORMAL, OTHER_ID, t);
    assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_NOT_HALTED);
}

static void test_ar_other_cases(void **state) {
    (void)state;
    tl_autoresume_cfg cfg = ar_cfg();
    cfg.min_pause_ms = 0;
    tl_autoresume ar;
    tl_action a;
    uint64_t t = 1000 * MS;
    /* without an operator key: never */
    cfg.operator_key = false;
    tl_autoresume_init(&ar, &cfg);
    tl_autoresume_halt_applied(&ar, HALT_ID, "I", TL_MODE_NORMAL, t);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_NO_OPERATOR_KEY);
    /* a halt that changed nothing (the global was SOFT_HALT already) is not ours */
    cfg.operator_key = true;
    tl_autoresume_init(&ar, &cfg);
    tl_autoresume_halt_applied(&ar, HALT_ID, "I", TL_MODE_SOFT_HALT, t);
    assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_NOT_HALTED);
    /* the resume fails (precondition): back to HALTED, clean polls anew */
    tl_autoresume_halt_applied(&ar, HALT_ID, "I", TL_MODE_NORMAL, t);
    tl_autoresume_poll(&ar, true, t += MS, &a);
    assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_RESUME);
    a.state = TL_ACT_FAILED;
    tl_autoresume_on_action(&ar, &a, t);
    assert_int_equal(ar.state, TL_AR_HALTED);
    assert_int_equal(tl_autoresume_poll(&ar, true, t += MS, &a), TL_AR_WAIT_CLEAN);
    for (uint8_t v = 0; v < TL_AR_VERDICT_COUNT; v++)
        assert_string_not_equal(tl_ar_verdict_name(v), "?");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_global_resume_steps),
        cmocka_unit_test(test_rollback_on_recurrence),
        cmocka_unit_test(test_step_lands_after_rollback),
        cmocka_unit_test(test_batches_and_withdrawals_after_pass),
        cmocka_unit_test(test_pin_blocked_aborts),
        cmocka_unit_test(test_pins_bounded),
        cmocka_unit_test(test_later_symbol_pinned),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_step_timeout),
        cmocka_unit_test(test_ar_gate_clean_cycles),
        cmocka_unit_test(test_ar_gate_min_pause),
        cmocka_unit_test(test_ar_gate_cooldown),
        cmocka_unit_test(test_ar_hard_halt_never),
        cmocka_unit_test(test_ar_other_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
