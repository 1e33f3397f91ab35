/* api_bundle.c: forensic bundles on the control API and the control thread
 * (behavior.md "Forensic bundle"):
 *   POST /bundle {"incident","from_seq","to_seq"}  202 {"id","path","merged"}
 *   GET  /bundle/{id}                              queued, running (phase,
 *                                                  bytes), done or failed
 * the loop's TL_OUT_BUNDLE requests (every SEV1 action, bundle.auto), and
 * the export service's events: audited (BUNDLE_QUEUED, BUNDLE_DONE,
 * BUNDLE_FAILED), linked from their incidents, counted in the metrics.
 * The export itself runs on the service's worker (admin/bundle.h).
 */
#include "api_int.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "admin/bundle.h"

static void audit_queued(tl_api *a, const char *id, const char *path, const tl_bundle_ask *q,
                         int merged, const char *via, uint64_t finding_id) {
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_str(&w, "id", id);
    tl_jw_str(&w, "path", path);
    tl_jw_u64s(&w, "incident", q->incident);
    tl_jw_u64s(&w, "from_seq", q->from_seq);
    tl_jw_u64s(&w, "to_seq", q->to_seq);
    tl_jw_str(&w, "origin", q->origin == TL_BUNDLE_AUTO ? "auto" : "request");
    tl_jw_bool(&w, "merged", merged == 1);
    if (via != NULL)
        tl_jw_str(&w, "via", via);
    if (finding_id != 0)
        tl_jw_u64s(&w, "finding_id", finding_id);
    (void)tl_audit_append(a->deps.audit, &w, "BUNDLE_QUEUED", a->now_real_ns);
}

static uint64_t window_of(tl_api *a, uint64_t incident) {
    const tl_incident *inc = tl_incidents_get(&a->incidents, incident);
    if (inc == NULL || inc->opened_real_ns == 0)
        return 0;
    return inc->opened_real_ns > TL_BUNDLE_AUDIT_BEFORE_NS
               ? inc->opened_real_ns - TL_BUNDLE_AUDIT_BEFORE_NS
               : 1;
}

void api_bundle_on_out(tl_api *a, const tl_out *o) {
    if (o->type != TL_OUT_BUNDLE || a->deps.bundle == NULL)
        return;
    const tl_bundle_req *b = &o->u.bundle;
    if (b->from_seq == 0 || b->to_seq < b->from_seq)
        return;
    tl_bundle_ask q = {
        .origin = TL_BUNDLE_AUTO,
        .incident = b->incident,
        .from_seq = b->from_seq,
        .to_seq = b->to_seq,
        .window_from_real_ns = window_of(a, b->incident),
    };
    char id[TL_BUNDLE_ID_MAX], path[TL_BUNDLE_PATH_MAX];
    /* An automatic request is never refused (it widens a queued job). */
    int rc = tl_bundle_submit(a->deps.bundle, &q, a->now_real_ns, id, path);
    if (rc < 0) {
        tl_logf("tallyd: bundle for incident %llu: no job slot", (unsigned long long)b->incident);
        return;
    }
    audit_queued(a, id, path, &q, rc, NULL, b->finding_id);
    if (b->incident != 0 && rc == 0) {
        tl_incidents_bundle(&a->incidents, b->incident, id, path, "queued");
        tl_incidents_bundle_error(&a->incidents, b->incident, ""); /* a new export: no error yet */
    }
}

static size_t render_metrics(void *ctx, char *buf, size_t cap) {
    tl_api *a = ctx;
    tl_metrics_extra ex;
    api_metrics_extra(a, &ex);
    return tl_metrics_render(&a->metrics, &ex, buf, cap);
}

static void degraded_names(uint32_t bits, char *out, size_t cap) {
    size_t n = 0;
    out[0] = '\0';
    for (unsigned d = 0; d < TL_BUNDLE_DEG_COUNT && n + 1 < cap; d++)
        if (bits & (1u << d))
            n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? "," : "",
                                  tl_bundle_deg_name((enum tl_bundle_deg)d));
}

static void on_event(tl_api *a, const tl_bundle_event *ev) {
    const tl_bundle_job *j = &ev->job;
    const tl_bundle_result *r = &ev->res;
    char path[TL_BUNDLE_PATH_MAX];
    snprintf(path, sizeof path, "%s", r->path);
    if (ev->phase == TL_BUNDLE_PH_SETTLING) {
        for (uint32_t i = 0; i < j->n_incidents; i++)
            tl_incidents_bundle(&a->incidents, j->incidents[i], j->id, NULL, "exporting");
        return;
    }
    char deg[256];
    degraded_names(r->degraded, deg, sizeof deg);
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_str(&w, "id", j->id);
    char incs[TL_BUNDLE_INCIDENTS * 21 + 1];
    size_t n = 0;
    incs[0] = '\0';
    for (uint32_t i = 0; i < j->n_incidents; i++)
        n += (size_t)snprintf(incs + n, sizeof incs - n, "%s%llu", i ? "," : "",
                              (unsigned long long)j->incidents[i]);
    tl_jw_str(&w, "incidents", incs);
    tl_jw_u64s(&w, "from_seq", j->from_seq);
    tl_jw_u64s(&w, "to_seq", j->to_seq);
    tl_jw_u64s(&w, "elapsed_ms", r->elapsed_ns / 1000000ull);
    if (deg[0] != '\0') {
        tl_jw_str(&w, "degraded", deg);
        tl_jw_str(&w, "degraded_detail", r->deg_detail);
    }
    const char *err = tl_bundle_err_name((enum tl_bundle_err)r->err);
    if (ev->phase == TL_BUNDLE_PH_DONE) {
        a->metrics.bundles_done++;
        if (r->degraded != 0)
            a->metrics.bundles_degraded++;
        tl_jw_str(&w, "path", path);
        tl_jw_u64s(&w, "size_bytes", r->size_bytes);
        tl_jw_u64s(&w, "files", r->files);
        tl_jw_u64s(&w, "seq_first", r->seq_first);
        tl_jw_u64s(&w, "seq_last", r->seq_last);
        (void)tl_audit_append(a->deps.audit, &w, "BUNDLE_DONE", a->now_real_ns);
        tl_logf("tallyd: bundle %s done: %s (%llu bytes%s%s)", j->id, path,
                (unsigned long long)r->size_bytes, deg[0] ? ", degraded: " : "", deg);
    } else {
        a->metrics.bundles_failed++;
        tl_jw_str(&w, "error", err);
        tl_jw_str(&w, "detail", r->detail);
        (void)tl_audit_append(a->deps.audit, &w, "BUNDLE_FAILED", a->now_real_ns);
        tl_logf("tallyd: bundle %s failed: %s: %s", j->id, err, r->detail);
    }
    (void)tl_audit_sync(a->deps.audit);
    const char *state = ev->phase == TL_BUNDLE_PH_FAILED ? "failed"
                        : r->degraded != 0               ? "degraded"
                                                         : "done";
    for (uint32_t i = 0; i < j->n_incidents; i++) {
        tl_incidents_bundle(&a->incidents, j->incidents[i], j->id,
                            ev->phase == TL_BUNDLE_PH_DONE ? path : NULL, state);
        tl_incidents_bundle_error(&a->incidents, j->incidents[i],
                                  ev->phase == TL_BUNDLE_PH_FAILED ? err : deg);
    }
}

void api_bundle_pass(tl_api *a) {
    if (a->deps.bundle == NULL)
        return;
    tl_bundle_serve(a->deps.bundle, render_metrics, a);
    tl_bundle_event ev;
    /* At most the service's event ring per pass. */
    for (unsigned i = 0; i < 2 * TL_BUNDLE_JOBS && tl_bundle_poll_event(a->deps.bundle, &ev); i++)
        on_event(a, &ev);
}

/* ---- HTTP ---- */

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

enum MHD_Result api_bundle_post(api_ctx *x) {
    tl_api *a = x->a;
    if (a->deps.bundle == NULL)
        return api_send_error(x, 501, "not_implemented",
                              "this process runs no bundle service (admin/bundle.h)");
    const char *end = NULL;
    cJSON *j = x->r->body_len > 0
                   ? cJSON_ParseWithLengthOpts(x->r->body, x->r->body_len, &end, false)
                   : NULL;
    bool trailing = false;
    for (const char *p = end; j != NULL && p < x->r->body + x->r->body_len; p++)
        trailing |= !isspace((unsigned char)*p);
    const char *bad = NULL;
    if (j == NULL || !cJSON_IsObject(j) || trailing)
        bad = "expected a JSON object {\"incident\",\"from_seq\",\"to_seq\"}";
    for (const cJSON *m = j != NULL && bad == NULL ? j->child : NULL; m != NULL; m = m->next) {
        if (strcmp(m->string, "incident") != 0 && strcmp(m->string, "from_seq") != 0 &&
            strcmp(m->string, "to_seq") != 0)
            bad = "unknown member (expected incident, from_seq, to_seq)";
        for (const cJSON *k = m->next; k != NULL; k = k->next)
            if (strcmp(m->string, k->string) == 0)
                bad = "a member appears twice";
    }
    tl_bundle_ask q = {.origin = TL_BUNDLE_REQUEST};
    const cJSON *inc = cJSON_GetObjectItemCaseSensitive(j, "incident");
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(j, "from_seq");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(j, "to_seq");
    if (bad == NULL && inc != NULL && !cJSON_IsNull(inc) && !get_u64(inc, &q.incident))
        bad = "incident: expected an incident number";
    if (bad == NULL && from != NULL && (!get_u64(from, &q.from_seq) || q.from_seq == 0))
        bad = "from_seq: expected an integer >= 1 (a number or a decimal string)";
    if (bad == NULL && to != NULL && (!get_u64(to, &q.to_seq) || q.to_seq < q.from_seq))
        bad = "to_seq: expected an integer >= from_seq (a number or a decimal string)";
    cJSON_Delete(j);
    if (bad != NULL)
        return api_send_error(x, 400, "bad_request", "%s", bad);
    const tl_incident *ii = q.incident != 0 ? tl_incidents_get(&a->incidents, q.incident) : NULL;
    if (q.incident != 0 && ii == NULL && (q.from_seq == 0 || q.to_seq == 0))
        return api_send_error(x, 404, "not_found",
                              "no incident %llu kept; give from_seq and to_seq",
                              (unsigned long long)q.incident);
    if (q.from_seq == 0 || q.to_seq == 0) {
        if (ii == NULL)
            return api_send_error(x, 400, "bad_request",
                                  "expected from_seq and to_seq, or an incident");
        /* The incident's range and the margin, as an automatic bundle. */
        uint64_t m = a->cfg->bundle_margin_records;
        uint64_t f = ii->from_seq != 0 ? ii->from_seq : 1;
        uint64_t t = ii->to_seq >= f ? ii->to_seq : f;
        if (q.from_seq == 0)
            q.from_seq = f > m ? f - m : 1;
        if (q.to_seq == 0)
            q.to_seq = t + m;
        if (q.to_seq < q.from_seq)
            return api_send_error(x, 400, "bad_request", "to_seq: expected >= from_seq");
    }
    q.window_from_real_ns = window_of(a, q.incident);
    char id[TL_BUNDLE_ID_MAX], path[TL_BUNDLE_PATH_MAX];
    int rc = tl_bundle_submit(a->deps.bundle, &q, a->now_real_ns, id, path);
    if (rc < 0)
        return api_send_error(x, 429, "busy", "%u bundles are waiting or running; try later",
                              TL_BUNDLE_JOBS);
    audit_queued(a, id, path, &q, rc, x->r->tcp ? "tcp" : "unix", 0);
    if (q.incident != 0) {
        tl_incidents_bundle(&a->incidents, q.incident, id, path, "queued");
        tl_incidents_bundle_error(&a->incidents, q.incident, "");
    }
    tl_jb b;
    tl_jb_init(&b, a->resp, TL_API_RESP_BYTES);
    tl_jb_obj(&b, NULL);
    tl_jb_str(&b, "id", id);
    tl_jb_str(&b, "path", path);
    tl_jb_bool(&b, "merged", rc == 1);
    tl_jb_u64s(&b, "from_seq", q.from_seq);
    tl_jb_u64s(&b, "to_seq", q.to_seq);
    tl_jb_end(&b);
    return api_send_json(x, 202, &b);
}

enum MHD_Result api_bundle_get(api_ctx *x, const char *id) {
    tl_api *a = x->a;
    if (a->deps.bundle == NULL)
        return api_send_error(x, 501, "not_implemented",
                              "this process runs no bundle service (admin/bundle.h)");
    tl_bundle_status st;
    if (strlen(id) >= TL_BUNDLE_ID_MAX || !tl_bundle_status_get(a->deps.bundle, id, &st))
        return api_send_error(x, 404, "not_found", "no bundle %.40s (kept: the newest %u)", id,
                              TL_BUNDLE_JOBS);
    tl_jb b;
    tl_jb_init(&b, a->resp, TL_API_RESP_BYTES);
    tl_jb_obj(&b, NULL);
    tl_jb_str(&b, "id", st.job.id);
    tl_jb_str(&b, "state", st.state);
    tl_jb_str(&b, "phase", tl_bundle_phase_name(st.phase));
    tl_jb_str(&b, "origin", st.job.origin == TL_BUNDLE_AUTO ? "auto" : "request");
    tl_jb_arr(&b, "incidents");
    for (uint32_t i = 0; i < st.job.n_incidents; i++) {
        char t[24];
        snprintf(t, sizeof t, "%llu", (unsigned long long)st.job.incidents[i]);
        tl_jb_str(&b, NULL, t);
    }
    tl_jb_end(&b);
    tl_jb_u64s(&b, "from_seq", st.job.from_seq);
    tl_jb_u64s(&b, "to_seq", st.job.to_seq);
    tl_jb_str(&b, "path", st.path);
    tl_jb_u64s(&b, "bytes_done", st.bytes_done);
    tl_jb_u64s(&b, "bytes_total", st.bytes_total);
    tl_jb_int(&b, "percent", st.percent);
    tl_jb_u64s(&b, "requested_ns", st.job.requested_real_ns);
    if (st.started_real_ns != 0)
        tl_jb_u64s(&b, "started_ns", st.started_real_ns);
    if (st.finished_real_ns != 0) {
        tl_jb_u64s(&b, "finished_ns", st.finished_real_ns);
        if (st.res.err != TL_BUNDLE_OK) {
            tl_jb_str(&b, "error", tl_bundle_err_name((enum tl_bundle_err)st.res.err));
            tl_jb_str(&b, "detail", st.res.detail);
        } else {
            tl_jb_u64s(&b, "size_bytes", st.res.size_bytes);
            tl_jb_int(&b, "files", (int64_t)st.res.files);
            tl_jb_u64s(&b, "seq_first", st.res.seq_first);
            tl_jb_u64s(&b, "seq_last", st.res.seq_last);
        }
        tl_jb_arr(&b, "degraded");
        for (unsigned d = 0; d < TL_BUNDLE_DEG_COUNT; d++)
            if (st.res.degraded & (1u << d))
                tl_jb_str(&b, NULL, tl_bundle_deg_name((enum tl_bundle_deg)d));
        tl_jb_end(&b);
    }
    tl_jb_end(&b);
    return api_send_json(x, 200, &b);
}
