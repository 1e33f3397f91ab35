/* incidents.c: findings grouped per incident (see incidents.h). */
#include "incidents.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_err.h"
#include "core/assert.h"

bool tl_incidents_init(tl_incidents *t) {
    memset(t, 0, sizeof *t);
    t->inc = calloc(TL_INC_MAX, sizeof *t->inc);
    return t->inc != NULL;
}

void tl_incidents_free(tl_incidents *t) {
    free(t->inc);
    t->inc = NULL;
}

static tl_incident *find(const tl_incidents *t, uint64_t id) {
    if (id == 0)
        return NULL;
    /* newest first: the one being written to is almost always the last */
    for (uint32_t k = t->count; k > 0; k--) {
        tl_incident *i = &t->inc[(t->head + k - 1) % TL_INC_MAX];
        if (i->id == id)
            return i;
    }
    return NULL;
}

static tl_incident *get(tl_incidents *t, uint64_t id, uint64_t now_real_ns) {
    tl_incident *i = find(t, id);
    if (i != NULL)
        return i;
    if (t->count == TL_INC_MAX) {
        t->head = (t->head + 1) % TL_INC_MAX;
        t->count--;
        t->evicted_total++;
    }
    i = &t->inc[(t->head + t->count) % TL_INC_MAX];
    t->count++;
    memset(i, 0, sizeof *i);
    i->id = id;
    i->opened_real_ns = now_real_ns;
    i->last_real_ns = now_real_ns;
    return i;
}

const tl_incident *tl_incidents_get(const tl_incidents *t, uint64_t id) {
    return find(t, id);
}

static tl_inc_action *recent_find(tl_incidents *t, const uint8_t id[TL_ID_BYTES]) {
    if (tl_id_is_zero(id))
        return NULL;
    for (uint32_t k = 0; k < t->recent_count; k++) {
        uint32_t i = (t->recent_next + TL_RECENT_ACTIONS - 1 - k) % TL_RECENT_ACTIONS;
        if (memcmp(t->recent[i].id, id, TL_ID_BYTES) == 0)
            return &t->recent[i];
    }
    return NULL;
}

const tl_inc_action *tl_incidents_action(const tl_incidents *t, const uint8_t id[TL_ID_BYTES]) {
    return recent_find((tl_incidents *)t, id);
}

static void fill(tl_inc_action *x, const tl_action *a, uint64_t now_real_ns, bool first) {
    if (first) {
        memset(x, 0, sizeof *x);
        memcpy(x->id, a->id, TL_ID_BYTES);
        x->first_real_ns = now_real_ns;
    }
    x->cmd = a->cmd;
    x->mode = a->mode;
    x->from_mode = a->from_mode;
    x->key = a->key;
    x->on = a->on;
    x->origin = a->origin;
    x->state = a->state;
    x->severity = a->severity;
    x->check = a->check;
    x->incident = a->incident;
    x->finding_id = a->finding_id;
    x->last_real_ns = now_real_ns;
    if (a->state == TL_ACT_BLOCKED)
        x->block = a->block;
    if (a->state == TL_ACT_FAILED)
        x->error = a->error;
    if (a->state == TL_ACT_APPLIED || a->state == TL_ACT_RECOVERED)
        x->applied_seq = a->applied_seq;
    if (a->state == TL_ACT_EXECUTED && a->detect_ns != 0 && a->sent_ns >= a->detect_ns)
        x->detect_to_send_ns = a->sent_ns - a->detect_ns;
    if (a->state == TL_ACT_APPLIED && a->detect_ns != 0 && a->applied_ns >= a->detect_ns)
        x->detect_to_applied_ns = a->applied_ns - a->detect_ns;
    snprintf(x->symbol, sizeof x->symbol, "%s", a->symbol_name);
    snprintf(x->ticket, sizeof x->ticket, "%s", a->ticket);
}

static void on_action(tl_incidents *t, const tl_action *a, uint64_t now_real_ns) {
    /* Recent actions, by id. An action blocked before it had an id (the
     * action table's, blocked by a gate) is listed under its incident only. */
    if (!tl_id_is_zero(a->id)) {
        tl_inc_action *r = recent_find(t, a->id);
        if (r == NULL) {
            r = &t->recent[t->recent_next];
            t->recent_next = (t->recent_next + 1) % TL_RECENT_ACTIONS;
            if (t->recent_count < TL_RECENT_ACTIONS)
                t->recent_count++;
            fill(r, a, now_real_ns, true);
        } else {
            fill(r, a, now_real_ns, false);
        }
    }
    if (a->incident == 0)
        return;
    tl_incident *inc = get(t, a->incident, now_real_ns);
    inc->last_real_ns = now_real_ns;
    /* One row per command: by id once it has one; a PLANNED row without an
     * id is followed by its BLOCKED or EXECUTED (which mints the id). */
    for (uint32_t k = inc->n_actions; k > 0; k--) {
        tl_inc_action *x = &inc->actions[k - 1];
        bool same = !tl_id_is_zero(a->id) ? memcmp(x->id, a->id, TL_ID_BYTES) == 0 : false;
        bool pending_twin = tl_id_is_zero(x->id) && x->state == TL_ACT_PLANNED &&
                            x->cmd == a->cmd && x->mode == a->mode && x->on == a->on &&
                            x->finding_id == a->finding_id && a->state != TL_ACT_PLANNED;
        if (same || pending_twin) {
            if (pending_twin)
                memcpy(x->id, a->id, TL_ID_BYTES);
            fill(x, a, now_real_ns, false);
            return;
        }
    }
    inc->actions_total++;
    if (inc->n_actions < TL_INC_ACTIONS)
        fill(&inc->actions[inc->n_actions++], a, now_real_ns, true);
}

void tl_incidents_on_out(tl_incidents *t, const tl_out *o, uint64_t now_real_ns) {
    switch (o->type) {
        case TL_OUT_FINDING: {
            const tl_finding *f = &o->u.finding;
            if (f->incident == 0 || f->check >= TL_CHECK_COUNT)
                return;
            tl_incident *inc = get(t, f->incident, now_real_ns);
            inc->last_real_ns = now_real_ns;
            inc->findings_total++;
            inc->by_check[f->check]++;
            inc->classes |= f->cls;
            if (f->severity > inc->severity)
                inc->severity = f->severity;
            if (f->seq != 0 && (inc->from_seq == 0 || f->seq < inc->from_seq))
                inc->from_seq = f->seq;
            if (f->seq > inc->to_seq)
                inc->to_seq = f->seq;
            if (inc->n_findings < TL_INC_FINDINGS)
                inc->findings[inc->n_findings++] = *f;
            return;
        }
        case TL_OUT_ACTION:
            on_action(t, &o->u.action, now_real_ns);
            return;
        case TL_OUT_BUNDLE: {
            const tl_bundle_req *b = &o->u.bundle;
            if (b->incident == 0)
                return;
            tl_incident *inc = get(t, b->incident, now_real_ns);
            inc->bundle_requested = true;
            inc->bundle_from_seq = b->from_seq;
            inc->bundle_to_seq = b->to_seq;
            if (inc->bundle_state[0] == '\0')
                snprintf(inc->bundle_state, sizeof inc->bundle_state, "requested");
            return;
        }
        default:
            return;
    }
}

void tl_incidents_bundle(tl_incidents *t, uint64_t incident, const char *bundle_id,
                         const char *path, const char *state) {
    tl_incident *inc = find(t, incident);
    if (inc == NULL)
        return;
    inc->bundle_requested = true;
    if (bundle_id != NULL)
        snprintf(inc->bundle_id, sizeof inc->bundle_id, "%s", bundle_id);
    if (path != NULL)
        snprintf(inc->bundle_path, sizeof inc->bundle_path, "%s", path);
    if (state != NULL)
        snprintf(inc->bundle_state, sizeof inc->bundle_state, "%s", state);
}

void tl_incidents_bundle_error(tl_incidents *t, uint64_t incident, const char *error) {
    tl_incident *inc = find(t, incident);
    if (inc != NULL)
        snprintf(inc->bundle_error, sizeof inc->bundle_error, "%s", error != NULL ? error : "");
}

/* ---- JSON ---- */

static void classes(tl_jb *b, uint8_t cls) {
    tl_jb_arr(b, "classes");
    for (unsigned bit = 0; bit < TL_CLASS_COUNT; bit++)
        if (cls & (1u << bit))
            tl_jb_str(b, NULL, tl_class_name(1u << bit));
    tl_jb_end(b);
}

void tl_inc_action_json(const tl_inc_action *a, tl_jb *b, const char *key) {
    tl_jb_obj(b, key);
    if (tl_id_is_zero(a->id))
        tl_jb_null(b, "id");
    else
        tl_jb_hex(b, "id", a->id, TL_ID_BYTES);
    tl_jb_str(b, "state", tl_action_state_name(a->state));
    tl_jb_str(b, "cmd", tl_cmd_name(a->cmd));
    tl_jb_str(b, "symbol", a->symbol);
    if (a->cmd == TL_CMD_SET_SYMBOL_MODE)
        tl_jb_str(b, "mode", tl_mode_name(a->mode));
    if (a->from_mode != TL_FROM_MODE_NONE && a->cmd == TL_CMD_SET_SYMBOL_MODE)
        tl_jb_str(b, "from_mode", tl_mode_name(a->from_mode));
    if (a->cmd == TL_CMD_WITHDRAWALS_HALT)
        tl_jb_bool(b, "on", a->on);
    tl_jb_str(b, "key", a->key == TL_KEY_OPERATOR ? "operator" : "sidecar");
    tl_jb_str(b, "origin", tl_origin_name(a->origin));
    if (a->check != TL_CHECK_NONE)
        tl_jb_str(b, "check", tl_check_name((enum tl_check)a->check));
    tl_jb_str(b, "ticket", a->ticket);
    if (a->state == TL_ACT_BLOCKED)
        tl_jb_str(b, "block_reason", tl_block_name(a->block));
    if (a->state == TL_ACT_FAILED)
        tl_jb_str(b, "error", tl_admin_wire_name((enum tl_admin_wire)a->error));
    tl_jb_u64s(b, "incident", a->incident);
    tl_jb_u64s(b, "finding_id", a->finding_id);
    if (a->applied_seq != 0)
        tl_jb_u64s(b, "applied_seq", a->applied_seq);
    if (a->detect_to_send_ns != 0)
        tl_jb_u64s(b, "detect_to_send_ns", a->detect_to_send_ns);
    if (a->detect_to_applied_ns != 0)
        tl_jb_u64s(b, "detect_to_applied_ns", a->detect_to_applied_ns);
    tl_jb_u64s(b, "first_ns", a->first_real_ns);
    tl_jb_u64s(b, "last_ns", a->last_real_ns);
    tl_jb_end(b);
}

static void by_check(tl_jb *b, const tl_incident *inc) {
    tl_jb_obj(b, "by_check");
    for (unsigned c = 1; c < TL_CHECK_COUNT; c++)
        if (inc->by_check[c] != 0)
            tl_jb_int(b, tl_check_name((enum tl_check)c), (int64_t)inc->by_check[c]);
    tl_jb_end(b);
}

static void bundle(tl_jb *b, const tl_incident *inc) {
    if (!inc->bundle_requested) {
        tl_jb_null(b, "bundle");
        return;
    }
    tl_jb_obj(b, "bundle");
    tl_jb_str(b, "state", inc->bundle_state);
    tl_jb_u64s(b, "from_seq", inc->bundle_from_seq);
    tl_jb_u64s(b, "to_seq", inc->bundle_to_seq);
    if (inc->bundle_id[0] != '\0')
        tl_jb_str(b, "id", inc->bundle_id);
    if (inc->bundle_path[0] != '\0')
        tl_jb_str(b, "path", inc->bundle_path);
    if (inc->bundle_error[0] != '\0')
        tl_jb_str(b, strcmp(inc->bundle_state, "failed") == 0 ? "error" : "degraded",
                  inc->bundle_error);
    tl_jb_end(b);
}

static void summary(tl_jb *b, const tl_incident *inc) {
    tl_jb_u64s(b, "id", inc->id);
    tl_jb_str(b, "severity", tl_severity_name((enum tl_severity)inc->severity));
    classes(b, inc->classes);
    tl_jb_u64s(b, "opened_ns", inc->opened_real_ns);
    tl_jb_u64s(b, "last_ns", inc->last_real_ns);
    tl_jb_u64s(b, "from_seq", inc->from_seq);
    tl_jb_u64s(b, "to_seq", inc->to_seq);
    tl_jb_int(b, "findings_total", (int64_t)inc->findings_total);
    by_check(b, inc);
    tl_jb_int(b, "actions_total", (int64_t)inc->actions_total);
}

void tl_incidents_json_list(const tl_incidents *t, uint32_t limit, tl_jb *b) {
    tl_jb_arr(b, "incidents");
    uint32_t n = 0;
    for (uint32_t k = t->count; k > 0 && n < limit; k--, n++) {
        const tl_incident *inc = &t->inc[(t->head + k - 1) % TL_INC_MAX];
        tl_jb_obj(b, NULL);
        summary(b, inc);
        tl_jb_arr(b, "actions");
        for (uint32_t i = 0; i < inc->n_actions; i++)
            tl_inc_action_json(&inc->actions[i], b, NULL);
        tl_jb_end(b);
        bundle(b, inc);
        tl_jb_end(b);
    }
    tl_jb_end(b);
    tl_jb_int(b, "evicted_total", (int64_t)t->evicted_total);
}

void tl_incidents_json_one(const tl_incident *inc, tl_jb *b) {
    summary(b, inc);
    tl_jb_arr(b, "findings");
    char fj[1024];
    for (uint32_t i = 0; i < inc->n_findings; i++) {
        size_t n = tl_finding_json(&inc->findings[i], fj, sizeof fj);
        tl_jb_raw(b, NULL, fj, n);
    }
    tl_jb_end(b);
    tl_jb_int(b, "findings_shown", inc->n_findings);
    tl_jb_arr(b, "actions");
    for (uint32_t i = 0; i < inc->n_actions; i++)
        tl_inc_action_json(&inc->actions[i], b, NULL);
    tl_jb_end(b);
    bundle(b, inc);
}
