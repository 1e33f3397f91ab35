/* bundle.h: the signed forensic bundle (behavior.md "Forensic bundle"):
 * export, the export service in tallyd, and offline verification.
 *
 * A bundle is one `.tar.zst` (libarchive, zstd filter) holding:
 *   wal/<segment>            every WAL segment that overlaps the range, whole
 *   snapshots/<file>         the engine snapshots nearest to the range
 *   ring/control.bin         the ring's control block at export time (4096 B)
 *   ring/data.bin            the ring's raw data region at export time
 *   range.json               the requested seq range (before wal/: verify
 *                            checks the WAL as the archive streams)
 *   ledger/watermarks.jsonl  the ledger watermark replies tallyd kept
 *   findings.jsonl           the incident's findings (from the audit log)
 *   audit.jsonl              the audit lines of the incident's window
 *   config/tally.json        tally's config, secrets "<redacted>" (redact.h)
 *   config/redactions.json   the key paths redacted, never their values
 *   metrics.prom             one scrape at export time
 *   MANIFEST.json            incident, version, host, engine_id, created_ns,
 *                            seq/fence range, chain anchors, ring positions,
 *                            ledger watermark history, what degraded, the WAL
 *                            check's result, and each file's path, size and
 *                            SHA-256 (every entry above; not the two MANIFEST
 *                            files)
 *   MANIFEST.sig             Ed25519 over the bytes of MANIFEST.json, raw 64
 *                            bytes (openssl pkeyutl -verify -rawin checks it)
 * MANIFEST.json and MANIFEST.sig are the archive's last two entries: the
 * writer hashes every file while it compresses it, in one read.
 *
 * Export (tl_bundle_export) in steps, each bounded:
 *   1. settle: wait (at most settle_ms) for the engine's durable seq to reach
 *      to_seq, so the margin after the incident is in the WAL;
 *   2. stage the small parts under <dir>/.staging-<id>/: the ring (control
 *      block read with atomic loads, data region copied from a read-only
 *      mapping), range.json, the ledger history, the audit window, the
 *      config; list (and hold open, up to 256) every overlapping segment and
 *      the nearest snapshots with their sizes now;
 *   3. write <dir>/.<name>.tmp in one pass: each staged file, and each
 *      segment and snapshot read from its own directory up to its listed
 *      size, hashed as it is compressed; native segments also go through
 *      the WAL check (bw_stream: seq and fence range, chain anchors,
 *      findings, recorded in the manifest: verify must reproduce them
 *      exactly); then the manifest and its signature; fsync, rename to
 *      <dir>/<name>, fsync the directory (a failure there is a degradation:
 *      the bundle is whole under its name). Any error before the rename
 *      unlinks the temp file: a half-written bundle never has the final name.
 * Failures are named (enum tl_bundle_err) and abort; losses of one part are
 * named degradations (enum tl_bundle_deg) and the bundle is still made.
 *
 * Verification (tl_bundle_verify) reads the archive once and writes
 * nothing to disk: libarchive decompresses on the caller's thread, a worker
 * hashes each entry and runs the WAL check on the segments as they stream
 * (range.json comes first), keeping in memory only ring/data.bin (to compare
 * with the WAL) and audit.jsonl (the timeline). The unpacked total is
 * bounded (opts.max_unpacked_bytes). Then: the signature over
 * MANIFEST.json, every file's size and SHA-256 (none missing, none extra,
 * no unsafe path, no duplicate), the WAL check's result against the one the
 * manifest recorded. It also builds the incident's timeline (findings and
 * actions from audit.jsonl) and the first divergent seq: the lowest seq of
 * a FORK finding, or of two copies of one seq that differ (the ring's copy
 * vs the WAL's).
 *
 * Threads: tl_bundle_export and tl_bundle_verify are synchronous (the
 * service's worker, tallyctl, tests, the benchmark). The service (below)
 * runs exports on one worker thread at the lowest priority (SCHED_IDLE,
 * nice 19, idle I/O class), never on the hot loop's CPU.
 */
#ifndef TL_BUNDLE_H
#define TL_BUNDLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/config.h"
#include "core/ledger.h"
#include "shm/spsc.h"

#define TL_BUNDLE_ID_MAX          24u /* "b" + 16 hex + NUL, with room */
#define TL_BUNDLE_PATH_MAX        704u
#define TL_BUNDLE_INCIDENTS       8u    /* incidents one bundle names */
#define TL_BUNDLE_JOBS            32u   /* jobs kept (queued, running, finished) */
#define TL_BUNDLE_FILES_MAX       8192u /* entries in one bundle */
#define TL_BUNDLE_SEGMENTS_MAX    4096u /* WAL segments in one bundle */
#define TL_BUNDLE_WAL_MAX_BYTES   (64ull << 30)
#define TL_BUNDLE_LEDGER_KEEP     64u          /* watermark replies kept */
#define TL_BUNDLE_AUDIT_MAX       (256u << 20) /* audit bytes scanned */
#define TL_BUNDLE_AUDIT_FILES     64u /* audit files read: audit.jsonl + the 63 newest rotations */
#define TL_BUNDLE_AUDIT_BEFORE_NS (60ull * 1000000000ull) /* the window opens this before */
#define TL_BUNDLE_METRICS_MAX     (2u << 20)
#define TL_BUNDLE_MANIFEST_MAX    (16u << 20)
#define TL_BUNDLE_SETTLE_MS       1000u
#define TL_BUNDLE_SNAPSHOTS       2u  /* the nearest at or below from_seq, the first above */
#define TL_BUNDLE_SHOWN_FINDINGS  16u /* WAL findings listed in the manifest */

/* Why an export failed. Stable names: tl_bundle_err_name(). */
enum tl_bundle_err {
    TL_BUNDLE_OK = 0,
    TL_BUNDLE_ERR_DISK_FULL, /* "disk_full": ENOSPC, EDQUOT or EFBIG writing */
    TL_BUNDLE_ERR_IO,        /* "io_error": any other write or read error */
    TL_BUNDLE_ERR_DIR,       /* "bundle_dir_unusable": bundle.dir cannot be made or used */
    TL_BUNDLE_ERR_WAL_DIR,   /* "wal_dir_unreadable": engine.wal_dir cannot be listed */
    TL_BUNDLE_ERR_TOO_LARGE, /* "too_large": more segments, files or bytes than the limits */
    TL_BUNDLE_ERR_ARCHIVE,   /* "archive_error": libarchive refused */
    TL_BUNDLE_ERR_SIGN,      /* "sign_failed": the signature could not be made */
    TL_BUNDLE_ERR_NOMEM,     /* "out_of_memory" */
    TL_BUNDLE_ERR_CANCELLED, /* "cancelled": tallyd stopped during the export */
    TL_BUNDLE_ERR_RANGE,     /* "bad_range": from_seq is 0 or to_seq < from_seq */
    TL_BUNDLE_ERR_COUNT,
};
const char *tl_bundle_err_name(enum tl_bundle_err e);

/* What a bundle lacks. Stable names: tl_bundle_deg_name(). Bits of
 * tl_bundle_result.degraded. */
enum tl_bundle_deg {
    TL_BUNDLE_DEG_SNAPSHOT_DIR =
        0,                   /* "snapshot_dir_missing": bundle.snapshot_dir unset or absent */
    TL_BUNDLE_DEG_SNAPSHOT,  /* "snapshot_unreadable" */
    TL_BUNDLE_DEG_SEGMENT,   /* "segment_unreadable": a segment could not be read */
    TL_BUNDLE_DEG_WAL_RANGE, /* "wal_range_missing": no segment overlaps the range */
    TL_BUNDLE_DEG_RING,      /* "ring_unavailable": no ring, or it cannot be mapped */
    TL_BUNDLE_DEG_AUDIT,     /* "audit_unreadable" */
    TL_BUNDLE_DEG_CONFIG,    /* "config_unavailable": the config could not be redacted */
    TL_BUNDLE_DEG_METRICS,   /* "metrics_unavailable": no scrape in time */
    TL_BUNDLE_DEG_UNSIGNED,  /* "unsigned": no bundle.signing_key */
    TL_BUNDLE_DEG_XWAL1,     /* "xwal1_range_unknown": every xwal1 segment copied */
    TL_BUNDLE_DEG_AUDIT_ROT, /* "audit_rotations_left_out": more than TL_BUNDLE_AUDIT_FILES - 1
                              * rotated audit files, the oldest not read, and the oldest one
                              * read still reaches into the window */
    TL_BUNDLE_DEG_DIR_FSYNC, /* "dir_fsync_failed": the bundle is whole under its final name,
                              * but fsync of bundle.dir failed: the name may not survive a
                              * crash (result only: the manifest was already signed) */
    TL_BUNDLE_DEG_COUNT,
};
const char *tl_bundle_deg_name(enum tl_bundle_deg d);

enum tl_bundle_phase {
    TL_BUNDLE_PH_QUEUED = 0,
    TL_BUNDLE_PH_SETTLING,
    TL_BUNDLE_PH_STAGING,
    TL_BUNDLE_PH_CHECKING,
    TL_BUNDLE_PH_WRITING,
    TL_BUNDLE_PH_DONE,
    TL_BUNDLE_PH_FAILED,
    TL_BUNDLE_PH_COUNT,
};
const char *tl_bundle_phase_name(unsigned p); /* "queued", "settling", ... */

enum tl_bundle_origin { TL_BUNDLE_AUTO = 0, TL_BUNDLE_REQUEST = 1 };

/* What to export. */
typedef struct tl_bundle_job {
    char id[TL_BUNDLE_ID_MAX];
    uint8_t origin; /* enum tl_bundle_origin */
    uint32_t n_incidents;
    uint64_t incidents[TL_BUNDLE_INCIDENTS]; /* 0 entries: no incident (a seq range) */
    uint64_t incidents_merged;               /* incidents beyond the list, merged in */
    uint64_t from_seq;                       /* >= 1 */
    uint64_t to_seq;                         /* >= from_seq */
    uint64_t window_from_real_ns;            /* audit lines from here */
    uint64_t requested_real_ns;
    char name[128]; /* the file name in dir: "tally-<utc>-inc<N>-<id>.tar.zst" */
} tl_bundle_job;

/* Progress, read by other threads while the export runs. */
typedef struct tl_bundle_progress {
    _Atomic uint32_t phase;       /* enum tl_bundle_phase */
    _Atomic uint64_t bytes_done;  /* staged + archived so far */
    _Atomic uint64_t bytes_total; /* grows while staging: 2 x each staged file, 1 x each
                                   * segment and snapshot (read once); done == total at the end */
    _Atomic bool cancel;          /* set by another thread: stop at the next step */
} tl_bundle_progress;

typedef struct tl_bundle_result {
    uint8_t err; /* enum tl_bundle_err */
    int sys_errno;
    char detail[256];     /* what failed, where (a path, a call) */
    uint32_t degraded;    /* bits of enum tl_bundle_deg */
    char deg_detail[256]; /* the first degradation's detail */
    char path[TL_BUNDLE_PATH_MAX];
    uint64_t size_bytes; /* of the bundle file */
    uint64_t files;
    uint64_t wal_bytes;
    uint32_t segments;
    uint64_t seq_first; /* the range's first and last records present (0 = none) */
    uint64_t seq_last;
    uint64_t wal_findings;
    uint64_t elapsed_ns;
    uint64_t settle_ns; /* by step: the wait, staging, the WAL check, the archive */
    uint64_t stage_ns;
    uint64_t check_ns;
    uint64_t write_ns;
} tl_bundle_result;

struct evp_pkey_st;

/* Everything an export reads besides the job. Strings are not copied. */
typedef struct tl_bundle_env {
    const char *dir;          /* bundle.dir (created 0700 if absent) */
    const char *wal_dir;      /* engine.wal_dir */
    uint8_t dialect;          /* enum tl_dialect */
    const char *ring_name;    /* engine.ring; "" = none */
    const char *snapshot_dir; /* bundle.snapshot_dir; "" = none */
    const char *audit_dir;    /* <state_dir>/audit; "" = none */
    const char *config_text;  /* redacted config (redact.h); NULL = unavailable */
    size_t config_len;
    const char *redactions_text; /* redactions.json */
    size_t redactions_len;
    struct evp_pkey_st *key;  /* Ed25519 private key; NULL = unsigned */
    int zstd_level;           /* 0 = 3 */
    int zstd_threads;         /* 0 = 1 */
    uint32_t settle_ms;       /* 0 = no wait */
    const uint8_t *engine_id; /* TL_ID_BYTES, or NULL: taken from the ring or a segment */
    /* One metrics scrape into buf; returns its length, 0 if unavailable. */
    size_t (*metrics)(void *ctx, char *buf, size_t cap);
    void *metrics_ctx;
    /* The kept ledger replies, oldest first, at most max; returns how many. */
    uint32_t (*ledger)(void *ctx, tl_ledger_wm *out, uint32_t max);
    void *ledger_ctx;
} tl_bundle_env;

/* Fills job->name from the job's incident, id and request time. */
void tl_bundle_job_name(tl_bundle_job *job);

/* Exports one bundle; returns r->err. p may be NULL. */
enum tl_bundle_err tl_bundle_export(const tl_bundle_env *env, const tl_bundle_job *job,
                                    tl_bundle_progress *p, tl_bundle_result *r);

/* Removes what a crashed export left in dir: ".staging-*" directories and
 * ".*.tmp" files. Returns how many it removed. */
uint32_t tl_bundle_clean_dir(const char *dir);

/* Loads an Ed25519 private key (PEM). NULL with err set when it cannot. */
struct evp_pkey_st *tl_bundle_key_load(const char *path, char *err, size_t cap);
void tl_bundle_key_free(struct evp_pkey_st *key);

/* ---- verification ---- */

/* Why a bundle does not verify. Stable names: tl_bundle_verr_name(). */
enum tl_bundle_verr {
    TL_BV_OK = 0,
    TL_BV_UNREADABLE,    /* "unreadable": the file cannot be opened */
    TL_BV_NOT_A_BUNDLE,  /* "not_a_bundle": not a zstd tar, or it is cut */
    TL_BV_UNSAFE_PATH,   /* "unsafe_path": absolute, "..", or not a plain file */
    TL_BV_DUPLICATE,     /* "duplicate_entry" */
    TL_BV_TOO_LARGE,     /* "too_large": beyond the limits */
    TL_BV_NO_MANIFEST,   /* "manifest_missing" */
    TL_BV_BAD_MANIFEST,  /* "manifest_invalid" */
    TL_BV_NO_SIGNATURE,  /* "signature_missing" */
    TL_BV_BAD_SIGNATURE, /* "signature_invalid" */
    TL_BV_PUBKEY,        /* "pubkey_unusable" */
    TL_BV_FILE_MISSING,  /* "file_missing": in the manifest, not in the archive */
    TL_BV_FILE_EXTRA,    /* "file_extra": in the archive, not in the manifest */
    TL_BV_SIZE_MISMATCH, /* "size_mismatch" */
    TL_BV_HASH_MISMATCH, /* "hash_mismatch" */
    TL_BV_WAL_CHAIN,     /* "wal_chain_mismatch": the WAL check differs from the manifest */
    TL_BV_IO,            /* "io_error": out of memory, or the file could not be read */
    TL_BV_UNPACK_LIMIT,  /* "unpack_limit": unpacks to more than the limit (opts) */
    TL_BV_LAYOUT,        /* "layout_unexpected": range.json not before wal/, segments out
                          * of order: the WAL cannot be checked in one pass */
    TL_BV_COUNT,
};
const char *tl_bundle_verr_name(enum tl_bundle_verr e);

typedef struct tl_bundle_verify_opts {
    const char *pubkey_path; /* PEM public key (or the private key) */
    const char *tmp_dir;     /* unused: verify no longer extracts (kept for callers) */
    /* Uncompressed bytes the bundle may unpack to; 0 = 64 x its compressed
     * size, at least 4 GiB. Beyond: "unpack_limit", before reading more. */
    uint64_t max_unpacked_bytes;
    /* Progress: compressed bytes read of the file's size (may be NULL). */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
    /* Each line of the timeline, in order (may be NULL). */
    void (*timeline)(void *ctx, const char *line);
    void *timeline_ctx;
} tl_bundle_verify_opts;

typedef struct tl_bundle_report {
    uint8_t err; /* enum tl_bundle_verr */
    char detail[512];
    char id[TL_BUNDLE_ID_MAX];
    uint64_t incidents[TL_BUNDLE_INCIDENTS];
    uint32_t n_incidents;
    uint64_t files;
    uint64_t bytes; /* uncompressed */
    uint64_t compressed_bytes;
    uint32_t segments;
    uint64_t seq_first;
    uint64_t seq_last;
    uint64_t wal_records;
    uint64_t wal_findings;
    bool signed_ok;
    uint32_t degraded; /* as the manifest says */
    uint32_t timeline_lines;
    /* the first divergent seq (0 = none) and how it was found */
    uint64_t divergent_seq;
    char divergent_how[160];
    uint64_t ring_records; /* ring copies compared with the WAL */
    uint64_t elapsed_ns;
} tl_bundle_report;

/* Verifies a bundle file; returns r->err. */
enum tl_bundle_verr tl_bundle_verify(const char *path, const tl_bundle_verify_opts *o,
                                     tl_bundle_report *r);

/* ---- the export service in tallyd ---- */

typedef struct tl_bundle_svc tl_bundle_svc;

typedef struct tl_bundle_svc_cfg {
    const tl_config *cfg;
    const char *config_path; /* the file tallyd loaded: redacted into config/ */
    uint8_t dialect;         /* enum tl_dialect */
    int avoid_cpu;           /* the hot loop's CPU (-1: none) */
} tl_bundle_svc_cfg;

/* A request (from the loop's TL_OUT_BUNDLE, POST /bundle or tallyctl). */
typedef struct tl_bundle_ask {
    uint8_t origin; /* enum tl_bundle_origin */
    uint64_t incident;
    uint64_t from_seq;
    uint64_t to_seq;
    uint64_t window_from_real_ns; /* 0: 10 minutes before now */
} tl_bundle_ask;

/* An export that started or ended, for the audit log, the incident and the
 * metrics (control thread). */
typedef struct tl_bundle_event {
    uint8_t phase; /* RUNNING (started), DONE or FAILED */
    tl_bundle_job job;
    tl_bundle_result res;
} tl_bundle_event;

/* Reads and redacts the config, loads the signing key, cleans what a crash
 * left in bundle.dir, starts the worker. */
int tl_bundle_svc_start(tl_bundle_svc **out, const tl_bundle_svc_cfg *c, char *err, size_t cap);
/* Cancels the running export (it cleans up) and joins the worker. */
void tl_bundle_svc_stop(tl_bundle_svc *s);

/* Control thread. Queues a request. An automatic request for an incident
 * that already has a queued job widens that job (one bundle covers both);
 * when the table is full of unfinished jobs, the newest queued job widens to
 * take it: no request is lost. A request from an operator with a full table
 * is refused (-1). Returns 0 (new job) or 1 (merged) with the job's id and
 * final path. */
int tl_bundle_submit(tl_bundle_svc *s, const tl_bundle_ask *q, uint64_t now_real_ns,
                     char id_out[TL_BUNDLE_ID_MAX], char path_out[TL_BUNDLE_PATH_MAX]);
/* Control thread: started and finished exports since the last call. */
bool tl_bundle_poll_event(tl_bundle_svc *s, tl_bundle_event *ev);
/* Control thread, every pass: answers the worker's request for one metrics
 * scrape with render(ctx, buf, cap). */
void tl_bundle_serve(tl_bundle_svc *s, size_t (*render)(void *ctx, char *buf, size_t cap),
                     void *ctx);
/* Control thread, the producer of the ledger queue: keeps the replies it
 * pushed since head_before (read q->head before tl_ledger_poll_pass). */
void tl_bundle_note_ledger(tl_bundle_svc *s, const tl_spsc *q, uint64_t head_before);
/* One job as GET /bundle/{id} shows it; false if the id is unknown. */
typedef struct tl_bundle_status {
    tl_bundle_job job;
    const char *state; /* "queued", "running", "done", "failed" */
    uint32_t phase;    /* enum tl_bundle_phase */
    uint64_t bytes_done;
    uint64_t bytes_total;
    uint32_t percent;
    char path[TL_BUNDLE_PATH_MAX];
    uint64_t started_real_ns;  /* 0: not yet */
    uint64_t finished_real_ns; /* 0: not yet */
    tl_bundle_result res;      /* when finished */
} tl_bundle_status;
bool tl_bundle_status_get(tl_bundle_svc *s, const char *id, tl_bundle_status *out);
/* Counters for the metrics. */
typedef struct tl_bundle_counts {
    uint64_t done;
    uint64_t failed;
    uint64_t degraded;
    uint64_t merged;
    uint64_t queued;
    uint64_t running;
} tl_bundle_counts;
void tl_bundle_counts_get(tl_bundle_svc *s, tl_bundle_counts *out);

#endif
