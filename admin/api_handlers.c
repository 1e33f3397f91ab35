/* api_handlers.c: the control API's endpoints (see api.h for the list).
 *
 * Request bodies are one JSON object; a member the endpoint does not know,
 * a wrong type, or bytes after the object are 400 with the member named.
 * 64-bit values (seqs) may come as JSON integers or decimal strings, and go
 * out as decimal strings.
 */
#include "api_int.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/flatjson.h"
#include "core/assert.h"

/* ---- responses ---- */

static enum MHD_Result send_body_allow(api_ctx *x, unsigned status, const char *body, size_t len,
                                       const char *type, const char *allow) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (allow != NULL)
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result rc = MHD_queue_response(x->conn, status, resp);
    MHD_destroy_response(resp);
    if (status / 100 >= 1 && status / 100 <= 5)
        x->a->metrics.http_requests[status / 100]++;
    return rc;
}

static enum MHD_Result send_body(api_ctx *x, unsigned status, const char *body, size_t len,
                                 const char *type) {
    return send_body_allow(x, status, body, len, type, NULL);
}

enum MHD_Result api_send_json(api_ctx *x, unsigned status, tl_jb *b) {
    size_t len;
    const char *doc = tl_jb_done(b, &len);
    if (doc == NULL)
        return api_send_error(x, 500, "response_too_large",
                              "the response does not fit %u bytes: ask for fewer (limit=N)",
                              TL_API_RESP_BYTES);
    return send_body(x, status, doc, len, "application/json");
}

static enum MHD_Result error_allow(api_ctx *x, unsigned status, const char *code, const char *msg,
                                   const char *allow) {
    char buf[1024];
    tl_jb b;
    tl_jb_init(&b, buf, sizeof buf);
    tl_jb_obj(&b, NULL);
    tl_jb_obj(&b, "error");
    tl_jb_str(&b, "code", code);
    tl_jb_str(&b, "message", msg);
    tl_jb_end(&b);
    tl_jb_end(&b);
    size_t len;
    const char *doc = tl_jb_done(&b, &len);
    TL_ASSERT(doc != NULL);
    return send_body_allow(x, status, doc, len, "application/json", allow);
}

enum MHD_Result api_send_error(api_ctx *x, unsigned status, const char *code, const char *fmt,
                               ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return error_allow(x, status, code, msg, NULL);
}

static tl_jb *begin(api_ctx *x, tl_jb *b) {
    tl_jb_init(b, x->a->resp, TL_API_RESP_BYTES);
    tl_jb_obj(b, NULL);
    return b;
}

static enum MHD_Result finish(api_ctx *x, unsigned status, tl_jb *b) {
    tl_jb_end(b);
    return api_send_json(x, status, b);
}

/* ---- request bodies ---- */

typedef struct body {
    cJSON *root;
    char err[200];
} body;

static bool parse_body(api_ctx *x, body *bd, const char *const *allowed) {
    bd->root = NULL;
    bd->err[0] = '\0';
    const char *end = NULL;
    if (x->r->body_len == 0) {
        snprintf(bd->err, sizeof bd->err, "expected a JSON object, got an empty body");
        return false;
    }
    cJSON *j = cJSON_ParseWithLengthOpts(x->r->body, x->r->body_len, &end, false);
    if (j == NULL || !cJSON_IsObject(j)) {
        snprintf(bd->err, sizeof bd->err, "expected a JSON object");
        cJSON_Delete(j);
        return false;
    }
    for (const char *p = end; p < x->r->body + x->r->body_len; p++) {
        if (!isspace((unsigned char)*p)) {
            snprintf(bd->err, sizeof bd->err, "bytes after the JSON object");
            cJSON_Delete(j);
            return false;
        }
    }
    for (const cJSON *m = j->child; m != NULL; m = m->next) {
        bool ok = false;
        for (const char *const *k = allowed; *k != NULL; k++)
            if (strcmp(m->string, *k) == 0)
                ok = true;
        if (!ok) {
            snprintf(bd->err, sizeof bd->err, "unknown member \"%.64s\"", m->string);
            cJSON_Delete(j);
            return false;
        }
        for (const cJSON *n = m->next; n != NULL; n = n->next) {
            if (strcmp(m->string, n->string) == 0) {
                snprintf(bd->err, sizeof bd->err, "member \"%.64s\" appears twice", m->string);
                cJSON_Delete(j);
                return false;
            }
        }
    }
    bd->root = j;
    return true;
}

static const cJSON *member(const body *bd, const char *k) {
    return cJSON_GetObjectItemCaseSensitive(bd->root, k);
}

/* A u64 as a JSON integer (exact in a double) or a canonical decimal string. */
static bool get_u64(const cJSON *v, uint64_t *out) {
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d < 0 || d > 9007199254740992.0 || (double)(uint64_t)d != d)
            return false;
        *out = (uint64_t)d;
        return true;
    }
    if (!cJSON_IsString(v))
        return false;
    const char *s = v->valuestring;
    size_t n = strlen(s);
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
        return false;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return false;
        x = x * 10 + d;
    }
    *out = x;
    return true;
}

static bool get_text(const cJSON *v, char *out, size_t cap, bool required) {
    if (v == NULL)
        return !required;
    if (!cJSON_IsString(v))
        return false;
    size_t n = strlen(v->valuestring);
    if (n >= cap || !tl_utf8_valid((const uint8_t *)v->valuestring, n))
        return false;
    if (required && n == 0)
        return false;
    memcpy(out, v->valuestring, n + 1);
    return true;
}

static bool valid_symbol(const char *s) {
    return strcmp(s, "*") == 0 || tl_symbol_name_valid(s, strlen(s));
}

/* ---- GET /healthz ---- */

static enum MHD_Result h_healthz(api_ctx *x) {
    tl_api *a = x->a;
    /* Relaxed: a liveness stamp, compared with our own clock. */
    uint64_t beat = atomic_load_explicit(a->deps.beat_ns, memory_order_relaxed);
    tl_jb b;
    begin(x, &b);
    if (beat == 0) {
        tl_jb_str(&b, "status", "unhealthy");
        tl_jb_str(&b, "reason", "the hot loop has not started");
        return finish(x, 503, &b);
    }
    uint64_t age = a->now_mono_ns > beat ? a->now_mono_ns - beat : 0;
    if (age > (uint64_t)TL_API_STALE_MS * 1000000ull) {
        char why[128];
        snprintf(why, sizeof why, "the hot loop has not beaten for %llu ms",
                 (unsigned long long)(age / 1000000ull));
        tl_jb_str(&b, "status", "unhealthy");
        tl_jb_str(&b, "reason", why);
        tl_jb_int(&b, "beat_age_ms", (int64_t)(age / 1000000ull));
        return finish(x, 503, &b);
    }
    tl_jb_str(&b, "status", "ok");
    tl_jb_int(&b, "beat_age_ms", (int64_t)(age / 1000000ull));
    return finish(x, 200, &b);
}

/* ---- GET /capabilities ---- */

static const char *stage_of(uint8_t action, bool dry_run, bool armed) {
    tl_policy_cfg pc;
    memset(&pc, 0, sizeof pc);
    pc.action = action;
    pc.dry_run = dry_run;
    pc.armed = armed;
    return tl_policy_stage(&pc);
}

static const char *action_name(uint8_t a) {
    return a == TL_ACTION_NONE ? "none" : a == TL_ACTION_PLAN ? "plan" : "live";
}

static void input(tl_jb *b, const char *key, const char *state, uint64_t age_ns, bool has_age) {
    tl_jb_obj(b, key);
    tl_jb_str(b, "state", state);
    if (has_age)
        tl_jb_int(b, "age_ms", (int64_t)(age_ns / 1000000ull));
    else
        tl_jb_null(b, "age_ms");
    tl_jb_end(b);
}

static uint64_t since(uint64_t now, uint64_t then) {
    return then == 0 || now < then ? 0 : now - then;
}

static void degraded_reason(tl_api *a, char *out, size_t cap) {
    const tl_metrics *m = &a->metrics;
    const tl_loop_stats *st = &m->st;
    out[0] = '\0';
    uint64_t beat = atomic_load_explicit(a->deps.beat_ns, memory_order_relaxed);
    if (beat == 0 || since(a->now_mono_ns, beat) > (uint64_t)TL_API_STALE_MS * 1000000ull)
        snprintf(out, cap, "the hot loop does not beat");
    else if (!m->have_stats)
        snprintf(out, cap, "no stats from the hot loop yet");
    else if (a->cfg->engine_ring[0] != '\0' && !st->engine_attached)
        snprintf(out, cap, "the engine's ring is not attached");
    else if (st->engine_stale)
        snprintf(out, cap, "the engine's heartbeat is stale (ENGINE_SILENT)");
    else if (a->deps.audit != NULL && a->deps.audit->queue_count > 0)
        snprintf(out, cap, "the audit log cannot be written (%u lines queued)",
                 a->deps.audit->queue_count);
    else if (a->safe_mode)
        snprintf(out, cap, "the engine is in its dead-man safe mode");
    else if (a->cfg->lease_endpoint[0] != '\0' && st->lease.unreachable)
        snprintf(out, cap, "the lease authority cannot be reached (LEASE_UNREACHABLE)");
    else if (st->tail.configured && st->tail.io_error)
        /* The xwal1 tailer retries every rescan interval; until it reads
         * again, nothing of the log is checked. */
        snprintf(out, cap,
                 "the WAL tailer cannot read segment %llu: %s: %s (%llu failures in a row)",
                 (unsigned long long)st->tail.last_ioerr_segment,
                 st->tail.last_op != NULL ? st->tail.last_op : "-",
                 st->tail.last_errno != 0 ? strerror(st->tail.last_errno) : "-",
                 (unsigned long long)st->tail.io_error_streak);
}

static enum MHD_Result h_capabilities(api_ctx *x) {
    tl_api *a = x->a;
    const tl_config *c = a->cfg;
    const tl_loop_stats *st = &a->metrics.st;
    bool have = a->metrics.have_stats;
    uint64_t now = a->now_mono_ns;
    tl_jb b;
    begin(x, &b);
    tl_jb_str(&b, "version", TL_VERSION);
    tl_jb_str(&b, "instance_id", a->instance_id);
    tl_jb_str(&b, "dialect", a->deps.dialect == TL_DIALECT_XWAL1 ? "xwal1" : "tlywal1");
    tl_jb_arr(&b, "features");
    tl_jb_str(&b, NULL, "wal");
    if (c->engine_ring[0] != '\0')
        tl_jb_str(&b, NULL, "ring");
    tl_jb_str(&b, NULL, "metrics");
    tl_jb_str(&b, NULL, "kill_switch");
    tl_jb_str(&b, NULL, "manual_escalation");
    tl_jb_str(&b, NULL, "reconcile");
    tl_jb_str(&b, NULL, "incidents");
    if (a->deps.operator_key)
        tl_jb_str(&b, NULL, "canary_resume");
    if (a->deps.operator_key && c->ledger_url[0] != '\0')
        tl_jb_str(&b, NULL, "auto_resume");
    if (c->ledger_url[0] != '\0')
        tl_jb_str(&b, NULL, "ledger");
    if (c->lease_endpoint[0] != '\0')
        tl_jb_str(&b, NULL, "lease");
    if (c->peer_count > 0)
        tl_jb_str(&b, NULL, "peers");
    if (a->have_token)
        tl_jb_str(&b, NULL, "tcp_mutations");
    tl_jb_end(&b);
    tl_jb_str(&b, "stage", stage_of(a->pol_action, a->pol_dry_run, a->pol_armed));
    tl_jb_str(&b, "action", action_name(a->pol_action));
    tl_jb_bool(&b, "armed", a->pol_armed);
    tl_jb_bool(&b, "dry_run", a->pol_dry_run);
    tl_jb_bool(&b, "policy_confirmed", a->pol_acked_token == a->pol_token);
    tl_jb_bool(&b, "operator_key", a->deps.operator_key);
    tl_jb_bool(&b, "safe_mode", a->safe_mode);
    char why[160];
    degraded_reason(a, why, sizeof why);
    if (why[0] != '\0')
        tl_jb_str(&b, "degraded_reason", why);
    else
        tl_jb_null(&b, "degraded_reason");
    tl_jb_obj(&b, "engine");
    tl_jb_str(&b, "global_mode", tl_mode_name(a->modes.global_mode));
    tl_jb_bool(&b, "withdrawals_halted", a->modes.withdrawals_halted);
    tl_jb_int(&b, "symbols", a->modes.count);
    tl_jb_u64s(&b, "seq", st->engine_seq);
    tl_jb_u64s(&b, "durable_seq", st->durable_seq);
    tl_jb_u64s(&b, "fence", st->fence);
    tl_jb_end(&b);

    tl_jb_obj(&b, "inputs");
    if (c->engine_ring[0] == '\0')
        input(&b, "ring", "not configured", 0, false);
    else if (!have || !st->engine_attached)
        input(&b, "ring", "not attached", 0, false);
    else
        input(&b, "ring", st->engine_stale ? "stale" : "ok",
              since(st->now_ns, st->heartbeat_mono_ns), true);
    if (!have || st->wal_seq == 0)
        input(&b, "wal", "waiting", 0, false);
    else
        input(&b, "wal", "ok", since(now, a->wal_changed_ns), true);
    if (c->ledger_url[0] == '\0')
        input(&b, "ledger", "not configured", 0, false);
    else if (!have || st->ledger.last_recv_ns == 0)
        input(&b, "ledger", "no reply yet", 0, false);
    else
        input(&b, "ledger",
              since(now, st->ledger.last_recv_ns) > c->ledger_max_age_ms * 1000000ull ? "stale"
                                                                                      : "ok",
              since(now, st->ledger.last_recv_ns), true);
    if (c->lease_endpoint[0] == '\0')
        input(&b, "lease", "not configured", 0, false);
    else if (!have || (st->lease.last_ok_ns == 0 && !st->lease.unreachable))
        input(&b, "lease", "no reading yet", 0, false);
    else
        input(&b, "lease", st->lease.unreachable ? "unreachable" : "ok",
              since(now, st->lease.last_ok_ns != 0 ? st->lease.last_ok_ns : a->deps.start_mono_ns),
              true);
    if (c->peer_count == 0)
        input(&b, "peers", "not configured", 0, false);
    else if (a->peer_changed_ns == 0)
        input(&b, "peers", "no datagram yet", 0, false);
    else
        input(&b, "peers", "ok", since(now, a->peer_changed_ns), true);
    tl_jb_end(&b);
    return finish(x, 200, &b);
}

/* ---- GET /metrics ---- */

static enum MHD_Result h_metrics(api_ctx *x) {
    tl_api *a = x->a;
    tl_metrics_extra ex;
    api_metrics_extra(a, &ex);
    size_t n = tl_metrics_render(&a->metrics, &ex, a->resp, TL_API_RESP_BYTES);
    if (n == 0)
        return api_send_error(x, 500, "response_too_large", "the metrics do not fit");
    return send_body(x, 200, a->resp, n, "text/plain; version=0.0.4; charset=utf-8");
}

/* ---- /policy ---- */

static void policy_json(tl_api *a, tl_jb *b) {
    tl_jb_str(b, "stage", stage_of(a->pol_action, a->pol_dry_run, a->pol_armed));
    tl_jb_str(b, "action", action_name(a->pol_action));
    tl_jb_bool(b, "dry_run", a->pol_dry_run);
    tl_jb_bool(b, "armed", a->pol_armed);
    tl_jb_bool(b, "applied", a->pol_acked_token == a->pol_token);
}

static enum MHD_Result h_policy_get(api_ctx *x) {
    tl_jb b;
    begin(x, &b);
    policy_json(x->a, &b);
    return finish(x, 200, &b);
}

static enum MHD_Result h_policy_post(api_ctx *x) {
    tl_api *a = x->a;
    if (x->r->ready) {
        /* The loop confirmed (or the deadline passed). */
        tl_jb b;
        begin(x, &b);
        policy_json(a, &b);
        if (x->r->timed_out && a->pol_acked_token < x->r->token) {
            tl_jb_str(&b, "message",
                      "sent; the hot loop has not confirmed it yet (it applies "
                      "the policy first thing in its next step)");
            return finish(x, 202, &b);
        }
        return finish(x, 200, &b);
    }
    static const char *const allowed[] = {"action", "dry_run", "armed", "reason", NULL};
    body bd;
    if (!parse_body(x, &bd, allowed))
        return api_send_error(x, 400, "bad_request", "%s", bd.err);
    uint8_t action = a->pol_action;
    bool dry_run = a->pol_dry_run, armed = a->pol_armed;
    const cJSON *v = member(&bd, "action");
    char reason[TL_REASON_TEXT_MAX + 1] = "";
    enum MHD_Result rc = MHD_YES;
    bool bad = false;
    char msg[128] = "";
    if (v != NULL) {
        if (cJSON_IsString(v) && strcmp(v->valuestring, "none") == 0)
            action = TL_ACTION_NONE;
        else if (cJSON_IsString(v) && strcmp(v->valuestring, "plan") == 0)
            action = TL_ACTION_PLAN;
        else if (cJSON_IsString(v) && strcmp(v->valuestring, "live") == 0)
            action = TL_ACTION_LIVE;
        else {
            bad = true;
            snprintf(msg, sizeof msg, "action: expected \"none\", \"plan\" or \"live\"");
        }
    }
    v = member(&bd, "dry_run");
    if (!bad && v != NULL) {
        if (!cJSON_IsBool(v)) {
            bad = true;
            snprintf(msg, sizeof msg, "dry_run: expected true or false");
        } else {
            dry_run = cJSON_IsTrue(v);
        }
    }
    v = member(&bd, "armed");
    if (!bad && v != NULL) {
        if (!cJSON_IsBool(v)) {
            bad = true;
            snprintf(msg, sizeof msg, "armed: expected true or false");
        } else {
            armed = cJSON_IsTrue(v);
        }
    }
    if (!bad && !get_text(member(&bd, "reason"), reason, sizeof reason, false)) {
        bad = true;
        snprintf(msg, sizeof msg, "reason: expected UTF-8 text of at most %u bytes",
                 TL_REASON_TEXT_MAX);
    }
    if (!bad && member(&bd, "action") == NULL && member(&bd, "dry_run") == NULL &&
        member(&bd, "armed") == NULL) {
        bad = true;
        snprintf(msg, sizeof msg, "expected at least one of action, dry_run, armed");
    }
    cJSON_Delete(bd.root);
    if (bad)
        return api_send_error(x, 400, "bad_request", "%s", msg);

    tl_ctl_msg m;
    memset(&m, 0, sizeof m);
    m.type = TL_CTL_POLICY;
    m.action = action;
    m.dry_run = dry_run;
    m.armed = armed;
    m.token = a->pol_token + 1;
    if (!api_ctl_push(a, &m))
        return api_send_error(x, 503, "queue_full", "the hot loop's command queue is full");
    /* Audited as asked, before the loop takes it. */
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_str(&w, "from_stage", stage_of(a->pol_action, a->pol_dry_run, a->pol_armed));
    tl_jw_str(&w, "from_action", action_name(a->pol_action));
    tl_jw_bool(&w, "from_dry_run", a->pol_dry_run);
    tl_jw_bool(&w, "from_armed", a->pol_armed);
    tl_jw_str(&w, "stage", stage_of(action, dry_run, armed));
    tl_jw_str(&w, "action", action_name(action));
    tl_jw_bool(&w, "dry_run", dry_run);
    tl_jw_bool(&w, "armed", armed);
    tl_jw_str(&w, "via", x->r->tcp ? "tcp" : "unix");
    if (reason[0] != '\0')
        tl_jw_str(&w, "reason", reason);
    (void)tl_audit_append(a->deps.audit, &w, "POLICY", a->now_real_ns);
    (void)tl_audit_sync(a->deps.audit);
    tl_logf("tallyd: policy -> action=%s dry_run=%s armed=%s (stage %s) via %s",
            action_name(action), dry_run ? "true" : "false", armed ? "true" : "false",
            stage_of(action, dry_run, armed), x->r->tcp ? "tcp" : "unix");
    a->pol_action = action;
    a->pol_dry_run = dry_run;
    a->pol_armed = armed;
    a->pol_token = m.token;
    /* Wait for the loop's word: it takes the message before its next action. */
    x->r->wait = API_WAIT_POLICY;
    x->r->token = m.token;
    x->r->deadline_ns = a->now_mono_ns + TL_API_WAIT_MS * 1000000ull;
    x->r->suspended = true;
    MHD_suspend_connection(x->conn);
    return rc;
}

/* ---- /actions ---- */

static enum MHD_Result answer_action(api_ctx *x, const uint8_t id[TL_ID_BYTES]) {
    const tl_inc_action *ia = tl_incidents_action(&x->a->incidents, id);
    tl_jb b;
    begin(x, &b);
    if (ia == NULL) {
        tl_jb_hex(&b, "id", id, TL_ID_BYTES);
        tl_jb_str(&b, "state", "QUEUED");
        return finish(x, 202, &b);
    }
    tl_inc_action_json(ia, &b, "action");
    tl_jb_hex(&b, "id", id, TL_ID_BYTES);
    tl_jb_str(&b, "state", tl_action_state_name(ia->state));
    return finish(x, ia->state == TL_ACT_PLANNED ? 202 : 200, &b);
}

static enum MHD_Result h_mode_post(api_ctx *x) {
    tl_api *a = x->a;
    if (x->r->ready)
        return answer_action(x, x->r->id);
    static const char *const allowed[] = {"symbol", "mode", "reason", "ticket", NULL};
    body bd;
    if (!parse_body(x, &bd, allowed))
        return api_send_error(x, 400, "bad_request", "%s", bd.err);
    tl_action act;
    memset(&act, 0, sizeof act);
    char mode[32] = "";
    const char *bad = NULL;
    if (!get_text(member(&bd, "symbol"), act.symbol_name, sizeof act.symbol_name, true) ||
        !valid_symbol(act.symbol_name))
        bad = "symbol: expected \"*\" or a name matching [A-Za-z0-9._-]{1,24}";
    else if (!get_text(member(&bd, "mode"), mode, sizeof mode, true))
        bad = "mode: expected CANCEL_ONLY, SOFT_HALT or HARD_HALT";
    else if (!get_text(member(&bd, "reason"), act.reason, sizeof act.reason, true))
        bad = "reason: expected UTF-8 text of 1 to 256 bytes";
    else if (!get_text(member(&bd, "ticket"), act.ticket, sizeof act.ticket, true))
        bad = "ticket: expected UTF-8 text of 1 to 64 bytes";
    cJSON_Delete(bd.root);
    if (bad != NULL)
        return api_send_error(x, 400, "bad_request", "%s", bad);
    int md = tl_mode_parse(mode, strlen(mode));
    if (md < 0)
        return api_send_error(x, 400, "bad_request",
                              "mode: expected CANCEL_ONLY, SOFT_HALT or HARD_HALT");
    if (md == TL_MODE_NORMAL)
        return api_send_error(x, 400, "not_an_escalation",
                              "tally only escalates here; relax a mode with POST /resume");
    uint32_t sym = 0;
    if (strcmp(act.symbol_name, "*") != 0) {
        tl_modes_sym *s = tl_modes_by_name(&a->modes, act.symbol_name, strlen(act.symbol_name));
        if (s == NULL)
            return api_send_error(x, 422, "unknown_symbol",
                                  "%s: no SYMBOL record of the engine declared it",
                                  act.symbol_name);
        sym = s->id;
    }
    api_mint_id(a, act.id);
    act.cmd = TL_CMD_SET_SYMBOL_MODE;
    act.key = TL_KEY_SIDECAR;
    act.mode = (uint8_t)md;
    act.from_mode = TL_FROM_MODE_NONE;
    act.origin = TL_ORIGIN_MANUAL;
    act.severity = TL_SEV_SEV1;
    act.symbol = sym;
    tl_ctl_msg m;
    memset(&m, 0, sizeof m);
    m.type = TL_CTL_MODE;
    m.act = act;
    if (!api_ctl_push(a, &m))
        return api_send_error(x, 503, "queue_full", "the hot loop's command queue is full");
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_hex(&w, "id", act.id, TL_ID_BYTES);
    tl_jw_str(&w, "symbol", act.symbol_name);
    tl_jw_str(&w, "mode", tl_mode_name(act.mode));
    tl_jw_str(&w, "reason", act.reason);
    tl_jw_str(&w, "ticket", act.ticket);
    tl_jw_str(&w, "via", x->r->tcp ? "tcp" : "unix");
    (void)tl_audit_append(a->deps.audit, &w, "MANUAL_MODE", a->now_real_ns);
    (void)tl_audit_sync(a->deps.audit);
    tl_logf("tallyd: manual escalation %s %s (ticket %s)", act.symbol_name, tl_mode_name(act.mode),
            act.ticket);
    x->r->wait = API_WAIT_ACTION;
    memcpy(x->r->id, act.id, TL_ID_BYTES);
    x->r->deadline_ns = a->now_mono_ns + TL_API_WAIT_MS * 1000000ull;
    x->r->suspended = true;
    MHD_suspend_connection(x->conn);
    return MHD_YES;
}

static bool parse_id32(const char *s, uint8_t id[TL_ID_BYTES]) {
    if (strlen(s) != 32)
        return false;
    for (int i = 0; i < 16; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0)
                return false;
            v = v * 16 + d;
        }
        id[i] = (uint8_t)v;
    }
    return true;
}

static enum MHD_Result h_action_get(api_ctx *x, const char *idtext) {
    uint8_t id[TL_ID_BYTES];
    if (!parse_id32(idtext, id))
        return api_send_error(x, 400, "bad_request", "expected a command id of 32 lowercase hex");
    if (tl_incidents_action(&x->a->incidents, id) == NULL)
        return api_send_error(x, 404, "not_found", "no recent action with this id");
    return answer_action(x, id);
}

/* ---- /resume ---- */

static unsigned resume_status(enum tl_resume_err e) {
    switch (e) {
        case TL_RESUME_ERR_UNKNOWN_SYMBOL:
            return 422;
        case TL_RESUME_ERR_BAD_REQUEST:
            return 400;
        default:
            return 409;
    }
}

static const char *resume_message(enum tl_resume_err e) {
    switch (e) {
        case TL_RESUME_ERR_BUSY:
            return "a resume step is in flight or a canary window runs: wait for its outcome "
                   "(GET /resume)";
        case TL_RESUME_ERR_UNKNOWN_SYMBOL:
            return "no SYMBOL record of the engine declared this symbol";
        case TL_RESUME_ERR_UNNAMED_SCOPE:
            return "a scope of the engine has no name to pin it by: resume at the engine";
        case TL_RESUME_ERR_TOO_MANY_SYMBOLS:
            return "the engine lists more symbols than tally tracks (window.symbols)";
        case TL_RESUME_ERR_NOT_HALTED:
            return "the canary's effective mode is NORMAL already";
        case TL_RESUME_ERR_NOT_PASSED:
            return "batches and withdrawals resume only after CANARY_PASSED";
        case TL_RESUME_ERR_WRONG_LEVEL:
            return "a symbol of the batch is not held at the passed canary's level";
        case TL_RESUME_ERR_NOT_WITHDRAWN:
            return "withdrawals are not halted";
        default:
            return "bad request";
    }
}

static enum MHD_Result h_resume_get(api_ctx *x) {
    tl_jb b;
    begin(x, &b);
    api_resume_json(x->a, &b);
    return finish(x, 200, &b);
}

static enum MHD_Result h_resume_post(api_ctx *x) {
    tl_api *a = x->a;
    if (!a->deps.operator_key)
        return api_send_error(x, 409, "no_operator_key",
                              "tally holds no operator key (keys.operator): it cannot relax a "
                              "mode; resume at the engine directly");
    if (a->pol_action == TL_ACTION_NONE)
        return api_send_error(x, 409, "detect_only",
                              "policy action is none (the kill switch): a resume is refused");
    if (a->pol_action == TL_ACTION_PLAN || a->pol_dry_run)
        return api_send_error(x, 409, "dry_run", "policy is plan-only: a resume would be blocked");
    if (!a->pol_armed)
        return api_send_error(x, 409, "not_armed", "tally is not armed: a resume would be blocked");
    static const char *const allowed[] = {"symbol", "window_ms", "symbols", "withdrawals",
                                          "reason", "ticket",    NULL};
    body bd;
    if (!parse_body(x, &bd, allowed))
        return api_send_error(x, 400, "bad_request", "%s", bd.err);
    tl_resume_req q;
    memset(&q, 0, sizeof q);
    const char *bad = NULL;
    const cJSON *sym = member(&bd, "symbol"), *syms = member(&bd, "symbols"),
                *wd = member(&bd, "withdrawals"), *win = member(&bd, "window_ms");
    int kinds = (sym != NULL) + (syms != NULL) + (wd != NULL);
    if (kinds != 1)
        bad = "expected exactly one of symbol (a canary), symbols (a batch), withdrawals";
    else if (!get_text(member(&bd, "ticket"), q.ticket, sizeof q.ticket, true))
        bad = "ticket: expected UTF-8 text of 1 to 64 bytes";
    else if (!get_text(member(&bd, "reason"), q.reason, sizeof q.reason, false))
        bad = "reason: expected UTF-8 text of at most 256 bytes";
    else if (sym != NULL) {
        q.kind = TL_RESUME_CANARY;
        if (!get_text(sym, q.symbol, sizeof q.symbol, true) ||
            !tl_symbol_name_valid(q.symbol, strlen(q.symbol)))
            bad = "symbol: expected a name matching [A-Za-z0-9._-]{1,24}";
        else if (win != NULL && (!get_u64(win, &q.window_ms) || q.window_ms == 0 ||
                                 q.window_ms > TL_CANARY_WINDOW_MAX_MS))
            bad = "window_ms: expected an integer 1..86400000";
    } else if (syms != NULL) {
        q.kind = TL_RESUME_BATCH;
        int n = cJSON_IsArray(syms) ? cJSON_GetArraySize(syms) : -1;
        if (n < 1 || n > (int)TL_CANARY_BATCH_MAX || win != NULL)
            bad = "symbols: expected an array of 1 to 64 symbol names (no window_ms)";
        for (int i = 0; bad == NULL && i < n; i++) {
            const cJSON *it = cJSON_GetArrayItem(syms, i);
            if (!get_text(it, q.symbols[i], sizeof q.symbols[i], true) ||
                !tl_symbol_name_valid(q.symbols[i], strlen(q.symbols[i])))
                bad = "symbols: expected names matching [A-Za-z0-9._-]{1,24}";
        }
        q.n_symbols = n > 0 ? (uint32_t)n : 0;
    } else {
        q.kind = TL_RESUME_WITHDRAWALS;
        if (!cJSON_IsTrue(wd) || win != NULL)
            bad = "withdrawals: expected true (no window_ms)";
    }
    cJSON_Delete(bd.root);
    if (bad != NULL)
        return api_send_error(x, 400, "bad_request", "%s", bad);
    enum tl_resume_err e = tl_canary_request(&a->canary, &q, a->now_mono_ns);
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_str(&w, "kind",
              q.kind == TL_RESUME_CANARY  ? "canary"
              : q.kind == TL_RESUME_BATCH ? "batch"
                                          : "withdrawals");
    if (q.kind == TL_RESUME_CANARY) {
        tl_jw_str(&w, "symbol", q.symbol);
        tl_jw_u64s(&w, "window_ms", q.window_ms != 0 ? q.window_ms : a->cfg->canary_window_ms);
    }
    if (q.kind == TL_RESUME_BATCH)
        tl_jw_int(&w, "symbols", q.n_symbols);
    tl_jw_str(&w, "ticket", q.ticket);
    if (q.reason[0] != '\0')
        tl_jw_str(&w, "reason", q.reason);
    tl_jw_str(&w, "via", x->r->tcp ? "tcp" : "unix");
    tl_jw_str(&w, "result", tl_resume_err_name(e));
    (void)tl_audit_append(a->deps.audit, &w, "RESUME_REQUEST", a->now_real_ns);
    (void)tl_audit_sync(a->deps.audit);
    if (e != TL_RESUME_OK)
        return api_send_error(x, resume_status(e), tl_resume_err_name(e), "%s", resume_message(e));
    api_events_pass(a); /* the first actions go out now, not at the next pass */
    tl_jb b;
    begin(x, &b);
    api_resume_json(a, &b);
    return finish(x, 202, &b);
}

/* ---- /reconcile ---- */

/* What the run judges besides the WAL, copied now, on this thread: the
 * poller's newest accepted watermark (the poller runs on this thread too),
 * and each peer's reported CHECKPOINTs through the loop's seqlock (never a
 * plain read of the loop's state). */
static void api_reconcile_snapshot(tl_api *a, tl_reconcile_req *q) {
    q->have_watermark =
        a->deps.ledger_last != NULL && a->deps.ledger_last(a->deps.ledger_poll, &q->watermark);
    q->n_peers = 0;
    if (a->deps.peer == NULL)
        return;
    q->n_peers = a->deps.peer->cfg.node_count;
    TL_ASSERT(q->n_peers <= TL_PEER_NODES_MAX);
    for (uint32_t i = 0; i < q->n_peers; i++)
        q->peer_unread[i] = !tl_peer_reported_read(a->deps.peer, i, &q->peers[i]);
}

static enum MHD_Result h_reconcile_post(api_ctx *x) {
    tl_api *a = x->a;
    static const char *const allowed[] = {"from_seq", "to_seq", "symbols", NULL};
    body bd;
    if (!parse_body(x, &bd, allowed))
        return api_send_error(x, 400, "bad_request", "%s", bd.err);
    tl_reconcile_req q;
    memset(&q, 0, sizeof q);
    const char *bad = NULL;
    const cJSON *syms = member(&bd, "symbols");
    if (!get_u64(member(&bd, "from_seq"), &q.from_seq) || q.from_seq == 0)
        bad = "from_seq: expected an integer >= 1 (a number or a decimal string)";
    else if (!get_u64(member(&bd, "to_seq"), &q.to_seq) || q.to_seq < q.from_seq)
        bad = "to_seq: expected an integer >= from_seq (a number or a decimal string)";
    else if (syms != NULL) {
        int n = cJSON_IsArray(syms) ? cJSON_GetArraySize(syms) : -1;
        if (n < 0 || n > (int)TL_RC_SYMBOLS)
            bad = "symbols: expected an array of at most 16 symbol names";
        for (int i = 0; bad == NULL && i < n; i++) {
            if (!get_text(cJSON_GetArrayItem(syms, i), q.symbols[i], sizeof q.symbols[i], true) ||
                !tl_symbol_name_valid(q.symbols[i], strlen(q.symbols[i])))
                bad = "symbols: expected names matching [A-Za-z0-9._-]{1,24}";
        }
        q.n_symbols = n > 0 ? (uint32_t)n : 0;
    }
    cJSON_Delete(bd.root);
    if (bad != NULL)
        return api_send_error(x, 400, "bad_request", "%s", bad);
    api_reconcile_snapshot(a, &q);
    char id[TL_RC_ID_MAX];
    if (tl_reconcile_submit(a->reconcile, &q, a->now_real_ns, id) != 0)
        return api_send_error(x, 429, "busy", "%u reconciles are waiting already; try later",
                              TL_RC_QUEUE);
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_str(&w, "id", id);
    tl_jw_u64s(&w, "from_seq", q.from_seq);
    tl_jw_u64s(&w, "to_seq", q.to_seq);
    tl_jw_int(&w, "symbols", q.n_symbols);
    tl_jw_str(&w, "via", x->r->tcp ? "tcp" : "unix");
    (void)tl_audit_append(a->deps.audit, &w, "RECONCILE_REQUESTED", a->now_real_ns);
    tl_jb b;
    begin(x, &b);
    tl_jb_str(&b, "id", id);
    tl_jb_str(&b, "status", "QUEUED");
    return finish(x, 202, &b);
}

static bool query_u32(api_ctx *x, const char *k, uint32_t dflt, uint32_t max, uint32_t *out) {
    const char *v = MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND, k);
    if (v == NULL) {
        *out = dflt;
        return true;
    }
    char *end = NULL;
    unsigned long n = strtoul(v, &end, 10);
    if (v[0] == '\0' || *end != '\0' || n < 1 || n > max)
        return false;
    *out = (uint32_t)n;
    return true;
}

static enum MHD_Result h_results(api_ctx *x) {
    const char *s = MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND, "status");
    int status = -1;
    if (s != NULL) {
        status = tl_rc_status_parse(s);
        if (status < TL_RC_CONSISTENT)
            return api_send_error(x, 400, "bad_request",
                                  "status: expected CONSISTENT, MISMATCH or ERROR");
    }
    uint32_t limit;
    if (!query_u32(x, "limit", 20, TL_RC_KEEP, &limit))
        return api_send_error(x, 400, "bad_request", "limit: expected an integer 1..%u",
                              TL_RC_KEEP);
    tl_jb b;
    begin(x, &b);
    tl_reconcile_json_results(x->a->reconcile, status, limit, &b);
    return finish(x, 200, &b);
}

static enum MHD_Result h_reconcile_one(api_ctx *x, const char *id) {
    tl_jb b;
    begin(x, &b);
    if (!tl_reconcile_json_one(x->a->reconcile, id, &b))
        return api_send_error(x, 404, "not_found", "no reconcile with this id");
    return finish(x, 200, &b);
}

/* ---- /incidents ---- */

static enum MHD_Result h_incidents(api_ctx *x) {
    uint32_t limit;
    if (!query_u32(x, "limit", 20, TL_INC_MAX, &limit))
        return api_send_error(x, 400, "bad_request", "limit: expected an integer 1..%u",
                              TL_INC_MAX);
    tl_jb b;
    begin(x, &b);
    tl_incidents_json_list(&x->a->incidents, limit, &b);
    return finish(x, 200, &b);
}

static enum MHD_Result h_incident_one(api_ctx *x, const char *idtext) {
    char *end = NULL;
    unsigned long long id = strtoull(idtext, &end, 10);
    if (idtext[0] == '\0' || *end != '\0' || id == 0)
        return api_send_error(x, 400, "bad_request", "expected an incident number");
    const tl_incident *inc = tl_incidents_get(&x->a->incidents, id);
    if (inc == NULL)
        return api_send_error(x, 404, "not_found", "no incident %llu (kept: the newest %u)", id,
                              TL_INC_MAX);
    tl_jb b;
    begin(x, &b);
    tl_incidents_json_one(inc, &b);
    return finish(x, 200, &b);
}

/* ---- routing ---- */

enum { M_GET = 1, M_POST = 2 };

static bool is_get(const char *m) {
    return strcmp(m, MHD_HTTP_METHOD_GET) == 0;
}

static bool is_post(const char *m) {
    return strcmp(m, MHD_HTTP_METHOD_POST) == 0;
}

/* Constant time in the token's length. */
static bool token_ok(tl_api *a, struct MHD_Connection *c) {
    if (!a->have_token)
        return false;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == NULL || strncmp(h, "Bearer ", 7) != 0)
        return false;
    const char *t = h + 7;
    size_t n = strlen(t);
    unsigned char diff = n != a->token_len;
    for (size_t i = 0; i < a->token_len; i++)
        diff |= (unsigned char)(a->token[i] ^ (i < n ? t[i] : 0));
    return diff == 0;
}

enum MHD_Result api_route(api_ctx *x) {
    const char *u = x->url;
    const char *m = x->method;
    unsigned allowed = 0; /* methods the path takes */
    bool get = is_get(m), post = is_post(m);
    /* A mutating request over TCP needs the bearer token. */
    if (post && x->r->tcp && !token_ok(x->a, x->conn))
        return api_send_error(x, 403, "forbidden",
                              "mutating requests over TCP need Authorization: Bearer <token> "
                              "(control.token_file); use the Unix socket");
    if (strcmp(u, "/healthz") == 0) {
        allowed = M_GET;
        if (get)
            return h_healthz(x);
    } else if (strcmp(u, "/capabilities") == 0) {
        allowed = M_GET;
        if (get)
            return h_capabilities(x);
    } else if (strcmp(u, "/metrics") == 0) {
        allowed = M_GET;
        if (get)
            return h_metrics(x);
    } else if (strcmp(u, "/policy") == 0) {
        allowed = M_GET | M_POST;
        if (get)
            return h_policy_get(x);
        if (post)
            return h_policy_post(x);
    } else if (strcmp(u, "/actions/mode") == 0) {
        allowed = M_POST;
        if (post)
            return h_mode_post(x);
    } else if (strncmp(u, "/actions/", 9) == 0) {
        allowed = M_GET;
        if (get)
            return h_action_get(x, u + 9);
    } else if (strcmp(u, "/resume") == 0) {
        allowed = M_GET | M_POST;
        if (get)
            return h_resume_get(x);
        if (post)
            return h_resume_post(x);
    } else if (strcmp(u, "/reconcile") == 0) {
        allowed = M_POST;
        if (post)
            return h_reconcile_post(x);
    } else if (strcmp(u, "/reconcile/results") == 0) {
        allowed = M_GET;
        if (get)
            return h_results(x);
    } else if (strncmp(u, "/reconcile/", 11) == 0 && u[11] != '\0') {
        allowed = M_GET;
        if (get)
            return h_reconcile_one(x, u + 11);
    } else if (strcmp(u, "/incidents") == 0) {
        allowed = M_GET;
        if (get)
            return h_incidents(x);
    } else if (strncmp(u, "/incidents/", 11) == 0 && u[11] != '\0') {
        allowed = M_GET;
        if (get)
            return h_incident_one(x, u + 11);
    } else if (strcmp(u, "/bundle") == 0 || strncmp(u, "/bundle/", 8) == 0) {
        allowed = strcmp(u, "/bundle") == 0 ? M_POST : M_GET;
        if (allowed == M_POST && post)
            return api_bundle_post(x);
        if (allowed == M_GET && get && u[8] != '\0')
            return api_bundle_get(x, u + 8);
    } else {
        return api_send_error(x, 404, "not_found", "no endpoint %s", u);
    }
    char msg[256];
    snprintf(msg, sizeof msg, "%.16s is not allowed on %.200s", m, u);
    const char *allow = allowed == (M_GET | M_POST) ? "GET, POST"
                        : allowed == M_POST         ? "POST"
                                                    : "GET";
    return error_allow(x, 405, "method_not_allowed", msg, allow);
}
