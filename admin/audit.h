/* audit.h: the audit log, hash-chained JSONL (behavior.md "Audit log").
 *
 * <state_dir>/audit/audit.jsonl, one event per line, keys sorted bytewise,
 * no whitespace outside strings. Each line carries `prev`, the lowercase hex
 * SHA-256 of the previous line without its newline (64 zeros for the first
 * line ever); the chain continues across rotation (audit.jsonl is renamed
 * audit.<n>.jsonl at `rotate_bytes`). A cut or edited log shows it.
 *
 * Only the control thread writes it. The hot loop sends first and the audit
 * follows: lines are fsynced within audit.max_delay_ms (tl_audit_tick).
 * A failed write (a full disk) loses nothing: the line stays queued, in
 * order, and is written again; the failure is counted and named.
 * No secret ever appears in it: actions carry no key or mac, only the key's
 * role ("sidecar" or "operator").
 */
#ifndef TL_AUDIT_H
#define TL_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/finding.h"
#include "core/loop.h"
#include "core/policy.h"
#include "jsonw.h"

#define TL_AUDIT_LINE_MAX   8192u
#define TL_AUDIT_QUEUE      1024u /* lines kept while the disk refuses them */
#define TL_AUDIT_RESEND_MAX 256u
#define TL_AUDIT_IDS_MAX    4096u
#define TL_AUDIT_CAND_MAX   256u /* per run: undecided findings, incidents acted on */

/* What the log says at start-up. */
typedef struct tl_audit_recovery {
    /* EXECUTED with neither APPLIED nor FAILED: to be sent again */
    tl_action resend[TL_AUDIT_RESEND_MAX];
    uint32_t resend_count;
    /* every command id the log knows (EXECUTED or later), for RECOVERED */
    uint8_t ids[TL_AUDIT_IDS_MAX][TL_ID_BYTES];
    uint32_t id_count;
    /* the WAL findings already decided on (FINDING lines, the newest
     * TL_DECIDED_MAX): an xwal1 log is read again from its start at every
     * restart, and these are not acted on again (core/decided.h) */
    tl_decided decided;
    /* While reading: a FINDING decides nothing by itself (it is audited
     * whether its actions went out, were blocked or dry-run). It counts
     * once its run shows an EXECUTED action in its incident: before it (a
     * finding that joined an action in flight), or after it. Both tables
     * are per run (cleared at each START line: incidents number per run). */
    struct {
        tl_decided_key key;
        uint64_t incident;
    } cand[TL_AUDIT_CAND_MAX];
    uint32_t cand_count;
    uint64_t executed_incidents[TL_AUDIT_CAND_MAX];
    uint32_t executed_count;
    uint64_t lines;
    bool chain_ok;           /* every prev matched */
    uint64_t chain_bad_line; /* the first line whose prev did not match (1-based) */
} tl_audit_recovery;

typedef struct tl_audit {
    char dir[512];
    int fd;
    uint64_t size;
    uint64_t rotate_bytes;
    uint32_t next_rotation;
    uint8_t prev[32]; /* SHA-256 of the last line written */
    bool unsynced;
    uint64_t unsynced_since_ns;
    /* lines the disk refused, oldest first */
    char (*queue)[TL_AUDIT_LINE_MAX];
    uint32_t queue_len[TL_AUDIT_QUEUE];
    uint32_t queue_head;
    uint32_t queue_count;
    /* counters */
    uint64_t lines_total;
    uint64_t write_errors;
    uint64_t dropped; /* lines lost because the queue was full as well */
    int last_errno;
} tl_audit;

/* Opens (creating) <state_dir>/audit, reads what is there into rec (may be
 * NULL), and continues its chain. Returns 0, or -1 with err set. */
int tl_audit_open(tl_audit *a, const char *state_dir, uint64_t rotate_bytes, tl_audit_recovery *rec,
                  char *err, size_t err_cap);
void tl_audit_close(tl_audit *a);

/* Appends one event: `w` holds its members; `event`, `prev` and `ts_ns` are
 * added here. Returns 0 when written (not yet synced), -1 when queued. */
int tl_audit_append(tl_audit *a, tl_jw *w, const char *event, uint64_t now_real_ns);

int tl_audit_finding(tl_audit *a, const tl_finding *f, uint64_t now_real_ns);
/* PLANNED / BLOCKED{reason} / EXECUTED / APPLIED / FAILED{error} / RECOVERED */
int tl_audit_action(tl_audit *a, const tl_action *act, const char *error_name,
                    uint64_t now_real_ns);

/* Writes queued lines and fsyncs what is older than max_delay_ms. Call it
 * often from the control thread. */
void tl_audit_tick(tl_audit *a, uint64_t now_mono_ns, uint64_t max_delay_ms);
/* fsync now. */
int tl_audit_sync(tl_audit *a);

/* Reads the action members of an EXECUTED line back (for tests and resend). */
bool tl_audit_parse_action(const char *line, size_t len, tl_action *out, char *event,
                           size_t event_cap);

#endif
