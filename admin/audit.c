/* audit.c: the hash-chained audit log (see audit.h). */
#include "audit.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assert.h"

static void sha256(const void *p, size_t n, uint8_t out[32]) {
    unsigned int len = 32;
    int ok = EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
    TL_ASSERT(ok == 1 && len == 32);
}

static void hex32(const uint8_t b[32], char out[65]) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[64] = '\0';
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* ---- reading the log at start-up ---- */

static bool json_str(const cJSON *o, const char *k, char *out, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap)
        return false;
    strcpy(out, v->valuestring);
    return true;
}

static uint64_t json_u64s(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsString(v))
        return strtoull(v->valuestring, NULL, 10);
    if (cJSON_IsNumber(v))
        return (uint64_t)v->valuedouble;
    return 0;
}

static bool parse_id(const char *s, uint8_t id[TL_ID_BYTES]) {
    if (strlen(s) != 32)
        return false;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return false;
        id[i] = (uint8_t)v;
    }
    return true;
}

bool tl_audit_parse_action(const char *line, size_t len, tl_action *a, char *event,
                           size_t event_cap) {
    cJSON *root = cJSON_ParseWithLength(line, len);
    if (root == NULL)
        return false;
    bool ok = false;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "action");
    char ev[32], id[40], cmd[32], key[16], mode[16], origin[16];
    char symbol[TL_SYMBOL_NAME_MAX + 1];
    if (json_str(root, "event", ev, sizeof ev) && cJSON_IsObject(act) &&
        json_str(act, "id", id, sizeof id) && json_str(act, "cmd", cmd, sizeof cmd) &&
        json_str(act, "key", key, sizeof key) && json_str(act, "symbol", symbol, sizeof symbol)) {
        memset(a, 0, sizeof *a);
        ok = parse_id(id, a->id);
        a->cmd = strcmp(cmd, "set_symbol_mode") == 0    ? TL_CMD_SET_SYMBOL_MODE
                 : strcmp(cmd, "cancel_all") == 0       ? TL_CMD_CANCEL_ALL
                 : strcmp(cmd, "withdrawals_halt") == 0 ? TL_CMD_WITHDRAWALS_HALT
                                                        : TL_CMD_NONE;
        ok = ok && a->cmd != TL_CMD_NONE;
        a->key = strcmp(key, "operator") == 0 ? TL_KEY_OPERATOR : TL_KEY_SIDECAR;
        a->from_mode = TL_FROM_MODE_NONE;
        if (json_str(act, "mode", mode, sizeof mode))
            a->mode = (uint8_t)tl_mode_parse(mode, strlen(mode));
        if (json_str(act, "from_mode", mode, sizeof mode))
            a->from_mode = (uint8_t)tl_mode_parse(mode, strlen(mode));
        const cJSON *on = cJSON_GetObjectItemCaseSensitive(act, "on");
        a->on = cJSON_IsTrue(on);
        memcpy(a->symbol_name, symbol, sizeof a->symbol_name);
        json_str(act, "reason", a->reason, sizeof a->reason);
        json_str(act, "ticket", a->ticket, sizeof a->ticket);
        a->fence = json_u64s(act, "fence");
        a->finding_id = json_u64s(act, "finding_id");
        a->incident = json_u64s(act, "incident");
        a->check = (uint16_t)json_u64s(act, "check_id");
        if (json_str(act, "origin", origin, sizeof origin)) {
            for (uint8_t o = 0; o < TL_ORIGIN_COUNT; o++)
                if (strcmp(tl_origin_name(o), origin) == 0)
                    a->origin = o;
        }
        snprintf(event, event_cap, "%s", ev);
    }
    cJSON_Delete(root);
    return ok;
}

static bool incident_executed(const tl_audit_recovery *rec, uint64_t incident) {
    for (uint32_t i = 0; i < rec->executed_count; i++)
        if (rec->executed_incidents[i] == incident)
            return true;
    return false;
}

/* An EXECUTED action: its incident was acted on in this run, and the
 * findings of it seen so far are decided. */
static void recover_executed(tl_audit_recovery *rec, uint64_t incident) {
    if (incident == 0)
        return;
    if (!incident_executed(rec, incident)) {
        if (rec->executed_count == TL_AUDIT_CAND_MAX) /* full: the oldest goes */
            memmove(rec->executed_incidents, rec->executed_incidents + 1,
                    (TL_AUDIT_CAND_MAX - 1) * sizeof rec->executed_incidents[0]);
        else
            rec->executed_count++;
        rec->executed_incidents[rec->executed_count - 1] = incident;
    }
    /* Bounded: each pass keeps i or removes one candidate. */
    for (uint32_t i = 0; i < rec->cand_count;) {
        if (rec->cand[i].incident == incident) {
            tl_decided_add(&rec->decided, &rec->cand[i].key);
            rec->cand[i] = rec->cand[--rec->cand_count];
        } else {
            i++;
        }
    }
}

/* A FINDING line's identity (core/decided.h), if it is a WAL finding: only
 * a log read again from its start at a restart meets it again. It is
 * decided only if its incident was acted on (see audit.h). */
static void recover_finding(tl_audit_recovery *rec, const char *line, size_t len) {
    cJSON *root = cJSON_ParseWithLength(line, len);
    if (root == NULL)
        return;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "finding");
    char check[48], source[16], sum[24], reason[48];
    if (cJSON_IsObject(f) && json_str(f, "check", check, sizeof check) &&
        json_str(f, "source", source, sizeof source) && strcmp(source, "wal") == 0 &&
        json_str(f, "checksum", sum, sizeof sum)) {
        enum tl_check c = tl_check_parse(check, strlen(check));
        if (c != TL_CHECK_NONE) {
            tl_finding fin;
            tl_finding_init(&fin, c);
            fin.seq = json_u64s(f, "seq");
            fin.segment = json_u64s(f, "segment");
            fin.offset = json_u64s(f, "offset");
            fin.checksum = strtoull(sum, NULL, 16);
            if (json_str(f, "reason", reason, sizeof reason))
                fin.reason = tl_reason_parse(reason);
            tl_decided_key k = tl_decided_key_of(&fin);
            uint64_t incident = json_u64s(f, "incident");
            if (incident != 0 && incident_executed(rec, incident)) {
                tl_decided_add(&rec->decided, &k);
            } else if (incident != 0) {
                if (rec->cand_count == TL_AUDIT_CAND_MAX) { /* full: the oldest goes */
                    memmove(rec->cand, rec->cand + 1,
                            (TL_AUDIT_CAND_MAX - 1) * sizeof rec->cand[0]);
                    rec->cand_count--;
                }
                rec->cand[rec->cand_count].key = k;
                rec->cand[rec->cand_count].incident = incident;
                rec->cand_count++;
            }
        }
    }
    cJSON_Delete(root);
}

static void recover_line(tl_audit_recovery *rec, const char *line, size_t len) {
    tl_action a;
    char ev[32];
    /* Keys are sorted and `event` comes after `finding`: a cheap test
     * first, so only FINDING lines are parsed as such. */
    if (strstr(line, "\"event\":\"FINDING\"") != NULL) { /* NUL-terminated by read_file */
        recover_finding(rec, line, len);
        return;
    }
    if (strstr(line, "\"event\":\"START\"") != NULL) {
        /* A new run: incidents and finding ids start again. */
        rec->cand_count = 0;
        rec->executed_count = 0;
        return;
    }
    if (!tl_audit_parse_action(line, len, &a, ev, sizeof ev))
        return;
    if (strcmp(ev, "EXECUTED") == 0) {
        recover_executed(rec, a.incident);
        if (rec->id_count < TL_AUDIT_IDS_MAX)
            memcpy(rec->ids[rec->id_count++], a.id, TL_ID_BYTES);
        if (rec->resend_count < TL_AUDIT_RESEND_MAX)
            rec->resend[rec->resend_count++] = a;
        return;
    }
    if (strcmp(ev, "APPLIED") == 0 || strcmp(ev, "FAILED") == 0 || strcmp(ev, "RECOVERED") == 0) {
        if (strcmp(ev, "RECOVERED") == 0 && rec->id_count < TL_AUDIT_IDS_MAX)
            memcpy(rec->ids[rec->id_count++], a.id, TL_ID_BYTES);
        for (uint32_t i = 0; i < rec->resend_count; i++) {
            if (memcmp(rec->resend[i].id, a.id, TL_ID_BYTES) == 0) {
                rec->resend[i] = rec->resend[--rec->resend_count];
                break;
            }
        }
    }
}

/* Reads one file line by line: checks each `prev`, feeds the recovery,
 * leaves a->prev at the hash of the last line. */
static int read_file(tl_audit *a, const char *path, tl_audit_recovery *rec, bool anchor) {
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return errno == ENOENT ? 0 : -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    char want[65];
    while ((n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n')
            break; /* a torn last line (crash mid-write): not part of the chain */
        line[--n] = '\0';
        const char *p = strstr(line, "\"prev\":\"");
        if (anchor && p != NULL && strlen(p + 8) >= 64) {
            /* Older files are not read: the first line read anchors the
             * chain, unverified. */
            for (int i = 0; i < 32; i++) {
                unsigned v = 0;
                if (sscanf(p + 8 + 2 * i, "%2x", &v) == 1)
                    a->prev[i] = (uint8_t)v;
            }
        }
        anchor = false;
        if (rec != NULL) {
            rec->lines++;
            hex32(a->prev, want);
            if (rec->chain_ok && (p == NULL || strncmp(p + 8, want, 64) != 0)) {
                rec->chain_ok = false;
                rec->chain_bad_line = rec->lines;
            }
            recover_line(rec, line, (size_t)n);
        }
        sha256(line, (size_t)n, a->prev);
    }
    free(line);
    fclose(f);
    return 0;
}

static int open_current(tl_audit *a, char *err, size_t err_cap) {
    char path[600];
    snprintf(path, sizeof path, "%s/audit.jsonl", a->dir);
    a->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (a->fd < 0) {
        snprintf(err, err_cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(a->fd, &st) != 0) {
        snprintf(err, err_cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    a->size = (uint64_t)st.st_size;
    return 0;
}

int tl_audit_open(tl_audit *a, const char *state_dir, uint64_t rotate_bytes, tl_audit_recovery *rec,
                  char *err, size_t err_cap) {
    memset(a, 0, sizeof *a);
    a->fd = -1;
    a->rotate_bytes = rotate_bytes;
    a->queue = calloc(TL_AUDIT_QUEUE, TL_AUDIT_LINE_MAX);
    if (a->queue == NULL) {
        snprintf(err, err_cap, "audit: out of memory");
        return -1;
    }
    snprintf(a->dir, sizeof a->dir, "%s/audit", state_dir);
    if (mkdir(a->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_cap, "%s: %s", a->dir, strerror(errno));
        return -1;
    }
    if (rec != NULL) {
        memset(rec, 0, sizeof *rec);
        rec->chain_ok = true;
    }
    /* Rotated files first, in order, then the current one. */
    DIR *d = opendir(a->dir);
    if (d == NULL) {
        snprintf(err, err_cap, "%s: %s", a->dir, strerror(errno));
        return -1;
    }
    uint32_t max_rot = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned n;
        char tail[16];
        if (sscanf(de->d_name, "audit.%u.%15s", &n, tail) == 2 && strcmp(tail, "jsonl") == 0 &&
            n + 1 > max_rot)
            max_rot = n + 1;
    }
    closedir(d);
    a->next_rotation = max_rot;
    /* Bounded: only the last two rotated files are read for recovery; the
     * chain's anchor is the last line of the newest one. */
    uint32_t first = max_rot >= 2 ? max_rot - 2 : 0;
    for (uint32_t r = first; r < max_rot; r++) {
        char path[600];
        snprintf(path, sizeof path, "%s/audit.%u.jsonl", a->dir, r);
        if (read_file(a, path, rec, r == first && first > 0) != 0) {
            snprintf(err, err_cap, "%s: %s", path, strerror(errno));
            return -1;
        }
    }
    char path[600];
    snprintf(path, sizeof path, "%s/audit.jsonl", a->dir);
    if (read_file(a, path, rec, false) != 0) {
        snprintf(err, err_cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    return open_current(a, err, err_cap);
}

void tl_audit_close(tl_audit *a) {
    if (a->fd >= 0) {
        (void)tl_audit_sync(a);
        close(a->fd);
        a->fd = -1;
    }
    free(a->queue);
    a->queue = NULL;
}

int tl_audit_sync(tl_audit *a) {
    if (a->fd < 0 || !a->unsynced)
        return 0;
    if (fdatasync(a->fd) != 0) {
        a->write_errors++;
        a->last_errno = errno;
        return -1;
    }
    a->unsynced = false;
    return 0;
}

static int rotate(tl_audit *a) {
    char from[600], to[600], err[256];
    if (tl_audit_sync(a) != 0)
        return -1;
    close(a->fd);
    a->fd = -1;
    snprintf(from, sizeof from, "%s/audit.jsonl", a->dir);
    snprintf(to, sizeof to, "%s/audit.%u.jsonl", a->dir, a->next_rotation);
    if (rename(from, to) != 0) {
        a->last_errno = errno;
        (void)open_current(a, err, sizeof err);
        return -1;
    }
    a->next_rotation++;
    (void)fsync_dir(a->dir);
    return open_current(a, err, sizeof err);
}

/* Writes one line; on failure leaves the file as it was (no torn line). */
static int write_line(tl_audit *a, const char *line, size_t len) {
    if (a->fd < 0)
        return -1;
    if (a->size > 0 && a->size + len + 1 > a->rotate_bytes && rotate(a) != 0)
        return -1;
    char buf[TL_AUDIT_LINE_MAX + 1];
    memcpy(buf, line, len);
    buf[len] = '\n';
    if (write_all(a->fd, buf, len + 1) != 0) {
        a->last_errno = errno;
        a->write_errors++;
        /* A short write leaves part of a line: cut it off again. */
        if (ftruncate(a->fd, (off_t)a->size) != 0)
            a->write_errors++;
        return -1;
    }
    a->size += len + 1;
    return 0;
}

static void flush_queue(tl_audit *a) {
    while (a->queue_count > 0) {
        uint32_t i = a->queue_head;
        if (write_line(a, a->queue[i], a->queue_len[i]) != 0)
            return;
        a->queue_head = (a->queue_head + 1) % TL_AUDIT_QUEUE;
        a->queue_count--;
        a->unsynced = true;
    }
}

int tl_audit_append(tl_audit *a, tl_jw *w, const char *event, uint64_t now_real_ns) {
    char prev[65];
    hex32(a->prev, prev);
    tl_jw_str(w, "event", event);
    tl_jw_str(w, "prev", prev);
    tl_jw_u64s(w, "ts_ns", now_real_ns);
    char line[TL_AUDIT_LINE_MAX];
    size_t len = tl_jw_render(w, line, sizeof line);
    TL_ASSERT(len > 0); /* every event of ours fits in a line */
    /* The chain is logical: a queued line is still the next link. */
    sha256(line, len, a->prev);
    a->lines_total++;
    flush_queue(a);
    if (a->queue_count == 0 && write_line(a, line, len) == 0) {
        if (!a->unsynced)
            a->unsynced_since_ns = 0;
        a->unsynced = true;
        return 0;
    }
    if (a->queue_count == TL_AUDIT_QUEUE) {
        a->dropped++;
        return -1;
    }
    uint32_t i = (a->queue_head + a->queue_count) % TL_AUDIT_QUEUE;
    memcpy(a->queue[i], line, len);
    a->queue_len[i] = (uint32_t)len;
    a->queue_count++;
    return -1;
}

void tl_audit_tick(tl_audit *a, uint64_t now_mono_ns, uint64_t max_delay_ms) {
    flush_queue(a);
    if (!a->unsynced)
        return;
    if (a->unsynced_since_ns == 0)
        a->unsynced_since_ns = now_mono_ns;
    /* Sync at once when asked with 0, else within max_delay_ms of the
     * first unsynced line; tallyd ticks every millisecond or so. */
    if (max_delay_ms == 0 ||
        now_mono_ns - a->unsynced_since_ns + 2000000ull >= max_delay_ms * 1000000ull) {
        if (tl_audit_sync(a) == 0)
            a->unsynced_since_ns = 0;
    }
}

int tl_audit_finding(tl_audit *a, const tl_finding *f, uint64_t now_real_ns) {
    char fj[1024];
    size_t n = tl_finding_json(f, fj, sizeof fj);
    tl_jw w;
    tl_jw_init(&w);
    tl_jw_raw(&w, "finding", fj, n);
    return tl_audit_append(a, &w, "FINDING", now_real_ns);
}

int tl_audit_action(tl_audit *a, const tl_action *act, const char *error_name,
                    uint64_t now_real_ns) {
    /* Every request member but issued_ns and mac, so a retry after a
     * restart can be rebuilt exactly (behavior.md), plus tally's own. */
    tl_jw in;
    tl_jw_init(&in);
    tl_jw_int(&in, "v", 1);
    tl_jw_hex(&in, "id", act->id, TL_ID_BYTES);
    tl_jw_str(&in, "cmd", tl_cmd_name(act->cmd));
    tl_jw_str(&in, "symbol", act->symbol_name);
    if (act->cmd == TL_CMD_SET_SYMBOL_MODE)
        tl_jw_str(&in, "mode", tl_mode_name(act->mode));
    if (act->from_mode != TL_FROM_MODE_NONE)
        tl_jw_str(&in, "from_mode", tl_mode_name(act->from_mode));
    if (act->cmd == TL_CMD_WITHDRAWALS_HALT)
        tl_jw_bool(&in, "on", act->on);
    tl_jw_str(&in, "reason", act->reason);
    tl_jw_str(&in, "ticket", act->ticket);
    tl_jw_u64s(&in, "fence", act->fence);
    tl_jw_str(&in, "key", act->key == TL_KEY_OPERATOR ? "operator" : "sidecar");
    if (act->check != TL_CHECK_NONE) {
        tl_jw_str(&in, "check", tl_check_name((enum tl_check)act->check));
        tl_jw_int(&in, "check_id", act->check);
    }
    tl_jw_u64s(&in, "finding_id", act->finding_id);
    tl_jw_u64s(&in, "incident", act->incident);
    tl_jw_str(&in, "origin", tl_origin_name(act->origin));
    tl_jw_str(&in, "severity", tl_severity_name((enum tl_severity)act->severity));
    char aj[TL_AUDIT_LINE_MAX / 2];
    size_t an = tl_jw_render(&in, aj, sizeof aj);
    TL_ASSERT(an > 0);

    tl_jw w;
    tl_jw_init(&w);
    tl_jw_raw(&w, "action", aj, an);
    if (act->state == TL_ACT_BLOCKED)
        tl_jw_str(&w, "block_reason", tl_block_name(act->block));
    if (act->state == TL_ACT_FAILED && error_name != NULL)
        tl_jw_str(&w, "error", error_name);
    if (act->state == TL_ACT_APPLIED || act->state == TL_ACT_RECOVERED) {
        tl_jw_u64s(&w, "applied_seq", act->applied_seq);
        if (act->applied_ns > act->detect_ns && act->detect_ns != 0)
            tl_jw_u64s(&w, "detect_to_applied_ns", act->applied_ns - act->detect_ns);
    }
    if (act->state == TL_ACT_EXECUTED && act->sent_ns >= act->detect_ns && act->detect_ns != 0 &&
        act->sent_ns != 0)
        tl_jw_u64s(&w, "detect_to_send_ns", act->sent_ns - act->detect_ns);
    return tl_audit_append(a, &w, tl_action_state_name(act->state), now_real_ns);
}
