/* bundle_wal.c: what the bundle's export and verification share: the WAL
 * check over a bundle's wal/ (io/wal_reader), file and hash helpers, and the
 * names of errors (see bundle.h, bundle_int.h). */
#include "bundle_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/stream.h"
#include "core/walseg.h"
#include "core/window.h"
#include "io/wal_reader.h"

const char *const bundle_dirs[BUNDLE_STAGE_DIRS] = {"wal", "snapshots", "ring", "ledger", "config"};

const char *tl_bundle_err_name(enum tl_bundle_err e) {
    switch (e) {
        case TL_BUNDLE_OK:
            return "ok";
        case TL_BUNDLE_ERR_DISK_FULL:
            return "disk_full";
        case TL_BUNDLE_ERR_IO:
            return "io_error";
        case TL_BUNDLE_ERR_DIR:
            return "bundle_dir_unusable";
        case TL_BUNDLE_ERR_WAL_DIR:
            return "wal_dir_unreadable";
        case TL_BUNDLE_ERR_TOO_LARGE:
            return "too_large";
        case TL_BUNDLE_ERR_ARCHIVE:
            return "archive_error";
        case TL_BUNDLE_ERR_SIGN:
            return "sign_failed";
        case TL_BUNDLE_ERR_NOMEM:
            return "out_of_memory";
        case TL_BUNDLE_ERR_CANCELLED:
            return "cancelled";
        case TL_BUNDLE_ERR_RANGE:
            return "bad_range";
        case TL_BUNDLE_ERR_COUNT:
            break;
    }
    return "?";
}

const char *tl_bundle_deg_name(enum tl_bundle_deg d) {
    switch (d) {
        case TL_BUNDLE_DEG_SNAPSHOT_DIR:
            return "snapshot_dir_missing";
        case TL_BUNDLE_DEG_SNAPSHOT:
            return "snapshot_unreadable";
        case TL_BUNDLE_DEG_SEGMENT:
            return "segment_unreadable";
        case TL_BUNDLE_DEG_WAL_RANGE:
            return "wal_range_missing";
        case TL_BUNDLE_DEG_RING:
            return "ring_unavailable";
        case TL_BUNDLE_DEG_AUDIT:
            return "audit_unreadable";
        case TL_BUNDLE_DEG_CONFIG:
            return "config_unavailable";
        case TL_BUNDLE_DEG_METRICS:
            return "metrics_unavailable";
        case TL_BUNDLE_DEG_UNSIGNED:
            return "unsigned";
        case TL_BUNDLE_DEG_XWAL1:
            return "xwal1_range_unknown";
        case TL_BUNDLE_DEG_AUDIT_ROT:
            return "audit_rotations_left_out";
        case TL_BUNDLE_DEG_DIR_FSYNC:
            return "dir_fsync_failed";
        case TL_BUNDLE_DEG_COUNT:
            break;
    }
    return "?";
}

const char *tl_bundle_phase_name(unsigned p) {
    static const char *const names[TL_BUNDLE_PH_COUNT] = {
        "queued", "settling", "staging", "checking", "writing", "done", "failed"};
    return p < TL_BUNDLE_PH_COUNT ? names[p] : "?";
}

const char *tl_bundle_verr_name(enum tl_bundle_verr e) {
    switch (e) {
        case TL_BV_OK:
            return "ok";
        case TL_BV_UNREADABLE:
            return "unreadable";
        case TL_BV_NOT_A_BUNDLE:
            return "not_a_bundle";
        case TL_BV_UNSAFE_PATH:
            return "unsafe_path";
        case TL_BV_DUPLICATE:
            return "duplicate_entry";
        case TL_BV_TOO_LARGE:
            return "too_large";
        case TL_BV_NO_MANIFEST:
            return "manifest_missing";
        case TL_BV_BAD_MANIFEST:
            return "manifest_invalid";
        case TL_BV_NO_SIGNATURE:
            return "signature_missing";
        case TL_BV_BAD_SIGNATURE:
            return "signature_invalid";
        case TL_BV_PUBKEY:
            return "pubkey_unusable";
        case TL_BV_FILE_MISSING:
            return "file_missing";
        case TL_BV_FILE_EXTRA:
            return "file_extra";
        case TL_BV_SIZE_MISMATCH:
            return "size_mismatch";
        case TL_BV_HASH_MISMATCH:
            return "hash_mismatch";
        case TL_BV_WAL_CHAIN:
            return "wal_chain_mismatch";
        case TL_BV_IO:
            return "io_error";
        case TL_BV_UNPACK_LIMIT:
            return "unpack_limit";
        case TL_BV_LAYOUT:
            return "layout_unexpected";
        case TL_BV_COUNT:
            break;
    }
    return "?";
}

bool bundle_name_safe(const char *name) {
    if (name[0] == '\0' || name[0] == '.')
        return false;
    for (const char *c = name; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* ---- files ---- */

int bundle_write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, b + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        off += (size_t)w;
    }
    return 0;
}

ssize_t bundle_pread_full(int fd, void *p, size_t n, uint64_t off) {
    uint8_t *b = p;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, b + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int bundle_write_file(const char *path, const void *p, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (bundle_write_all(fd, p, n) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

char *bundle_read_file(const char *path, size_t max, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        close(fd);
        errno = EFBIG;
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return NULL;
    }
    ssize_t n = bundle_pread_full(fd, buf, (size_t)st.st_size, 0);
    close(fd);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

/* Unlinks every entry of one directory that is not a directory. */
static void rm_files(int dirfd) {
    DIR *d = fdopendir(dirfd);
    if (d == NULL) {
        close(dirfd);
        return;
    }
    /* Bounded by the directory's entries (a bundle has at most
     * TL_BUNDLE_FILES_MAX); unlinking while reading is allowed. */
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        (void)unlinkat(dirfd, de->d_name, 0);
    }
    closedir(d);
}

void bundle_rm_tree(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    for (unsigned i = 0; i < BUNDLE_STAGE_DIRS; i++) {
        int sub = openat(fd, bundle_dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (sub >= 0) {
            rm_files(sub);
            (void)unlinkat(fd, bundle_dirs[i], AT_REMOVEDIR);
        }
    }
    rm_files(fd);
    (void)rmdir(dir);
}

enum tl_bundle_err bundle_errno_class(int e) {
    return e == ENOSPC || e == EDQUOT || e == EFBIG ? TL_BUNDLE_ERR_DISK_FULL : TL_BUNDLE_ERR_IO;
}

void bundle_hex(const uint8_t *p, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

cJSON *bundle_u64(cJSON *obj, const char *key, uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return cJSON_AddStringToObject(obj, key, buf);
}

bool bundle_get_u64(const cJSON *obj, const char *key, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsString(v) && v->valuestring[0] >= '0' && v->valuestring[0] <= '9') {
        char *end = NULL;
        errno = 0;
        unsigned long long x = strtoull(v->valuestring, &end, 10);
        if (*end != '\0' || errno != 0)
            return false;
        *out = x;
        return true;
    }
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9007199254740992.0) {
        *out = (uint64_t)v->valuedouble;
        return true;
    }
    return false;
}

/* ---- SHA-256 ---- */

bool bundle_sha_init(bundle_sha *s) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        s->ctx = NULL;
        return false;
    }
    s->ctx = c;
    return true;
}

void bundle_sha_update(bundle_sha *s, const void *p, size_t n) {
    /* Cannot fail for SHA-256 once initialised. */
    int ok = EVP_DigestUpdate(s->ctx, p, n);
    TL_ASSERT(ok == 1);
}

void bundle_sha_final(bundle_sha *s, uint8_t out[32]) {
    unsigned int n = 0;
    int ok = EVP_DigestFinal_ex(s->ctx, out, &n);
    TL_ASSERT(ok == 1 && n == 32);
}

void bundle_sha_free(bundle_sha *s) {
    EVP_MD_CTX_free(s->ctx);
    s->ctx = NULL;
}

struct evp_pkey_st *bundle_pubkey_load(const char *path) {
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    if (k == NULL) {
        rewind(f);
        k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    }
    fclose(f);
    if (k != NULL && EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

EVP_PKEY *tl_bundle_key_load(const char *path, char *err, size_t cap) {
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, cap, "bundle.signing_key %s: %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (k == NULL) {
        snprintf(err, cap, "bundle.signing_key %s: expected a PEM private key", path);
        return NULL;
    }
    if (EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        snprintf(err, cap,
                 "bundle.signing_key %s: expected an Ed25519 key (openssl genpkey -algorithm "
                 "ed25519)",
                 path);
        return NULL;
    }
    return k;
}

void tl_bundle_key_free(EVP_PKEY *key) {
    EVP_PKEY_free(key);
}

/* ---- the WAL check ---- */

static void on_finding(void *ctx, const tl_finding *f) {
    bw_check *c = ctx;
    if (c->shown < TL_BUNDLE_SHOWN_FINDINGS) {
        bw_finding *x = &c->first[c->shown++];
        x->check = f->check;
        x->reason = f->reason;
        x->seq = f->seq;
        x->segment = f->segment;
        x->offset = f->offset;
    }
    if (f->check == TL_CHECK_FORK && f->seq != 0 && (c->fork_seq == 0 || f->seq < c->fork_seq))
        c->fork_seq = f->seq;
}

static int on_record(void *ctx, const tl_rec_view *v, const tl_loc *loc, tl_stream_result res) {
    (void)loc;
    (void)res;
    bw_check *c = ctx;
    c->records_total++;
    if (c->on_rec != NULL)
        c->on_rec(c->ctx, v->seq, v->checksum);
    if (v->seq < c->from_seq || v->seq > c->to_seq)
        return 0;
    if (c->records == 0) {
        c->first_seq = v->seq;
        c->first_parent = v->parent;
        c->first_checksum = v->checksum;
        c->fence_min = v->fence;
        c->fence_max = v->fence;
    }
    c->records++;
    c->last_seq = v->seq;
    c->last_checksum = v->checksum;
    if (v->fence < c->fence_min)
        c->fence_min = v->fence;
    if (v->fence > c->fence_max)
        c->fence_max = v->fence;
    return 0;
}

static void on_segment(void *ctx, const tl_seg_hdr *h, uint64_t name_first_seq) {
    (void)name_first_seq;
    bw_check *c = ctx;
    if (!c->have_engine_id) {
        memcpy(c->engine_id, h->engine_id, TL_ID_BYTES);
        c->have_engine_id = true;
    }
}

int bw_wal_check(const char *dir, bw_check *c, char *err, size_t cap) {
    tl_wal_read_opts o;
    memset(&o, 0, sizeof o);
    o.window_records = 1u << 16;
    o.sink = (tl_sink){on_finding, c};
    o.on_record = on_record;
    o.on_segment = on_segment;
    o.ctx = c;
    tl_wal_summary sum;
    enum tl_wal_err e = tl_wal_read_dir(dir, &o, &sum);
    if (e != TL_WAL_OK && e != TL_WAL_ERR_NOT_FOUND) {
        snprintf(err, cap, "%s: %s", tl_wal_err_name(e),
                 sum.ioerr.sys_errno != 0 ? strerror(sum.ioerr.sys_errno) : "-");
        return -1;
    }
    c->segments = sum.segments_read;
    c->findings = sum.findings_total;
    c->tail = sum.tail;
    c->anchor_verified = sum.anchor_verified;
    c->anchor_segment = sum.anchor_segment;
    return 0;
}

/* ---- the WAL check, streamed ---- */

struct bw_stream {
    bw_check *c;
    tl_log log;
    tl_stream st;
    void *win_mem;
    uint8_t *buf; /* BW_STREAM_BUF, holds [buf_off, buf_off + n) of the segment */
    uint64_t buf_off;
    size_t n;
    uint64_t fed; /* bytes of the segment given so far */
    tl_walseg ws;
    tl_walseg_facts facts;
    bool in_seg;
    bool seg_done;
    bool pend; /* a terminal rule 1/2 or header failure awaits sealed/newest */
    tl_walseg_event pend_ev;
    bool any;            /* a segment was begun */
    uint64_t last_first; /* the previous segment's name */
    uint32_t segments;
    uint32_t reanchors;
    uint64_t findings;
    bool first_resolved;
};

static void bs_emit(void *ctx, const tl_finding *f) {
    bw_stream *s = ctx;
    s->findings++;
    on_finding(s->c, f);
}

bw_stream *bw_stream_new(bw_check *c) {
    bw_stream *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    uint64_t window = 1u << 16; /* as bw_wal_check */
    s->c = c;
    s->buf = aligned_alloc(4096, BW_STREAM_BUF);
    s->win_mem = aligned_alloc(64, (tl_window_bytes(window) + 63) & ~(size_t)63);
    if (s->buf == NULL || s->win_mem == NULL) {
        bw_stream_free(s);
        return NULL;
    }
    tl_log_init(&s->log, TL_DIALECT_TLYWAL1, s->win_mem, window, (tl_sink){bs_emit, s});
    tl_stream_init(&s->st, &s->log, TL_SOURCE_WAL);
    c->tail = TL_WAL_TAIL_EMPTY;
    return s;
}

void bw_stream_free(bw_stream *s) {
    if (s == NULL)
        return;
    free(s->buf);
    free(s->win_mem);
    free(s);
}

/* Walks what the buffer holds; returns when the walker needs bytes not yet
 * fed, or the segment is done. */
static void bs_run(bw_stream *s) {
    bw_check *c = s->c;
    uint64_t first = s->ws.name_first_seq;
    /* Each step yields a record (>= TL_REC_HDR_BYTES of the buffer), a
     * header or an end, or returns: bounded by the bytes held. */
    uint64_t max_steps = 2 * ((uint64_t)s->n / TL_REC_HDR_BYTES) + 8;
    for (uint64_t step = 0; step < max_steps && !s->seg_done; step++) {
        tl_walseg_event ev;
        tl_walseg_next(&s->ws, &s->facts, s->buf, s->buf_off, s->n, &ev);
        switch ((enum tl_walseg_ev)ev.kind) {
            case TL_WALSEG_NEED_MORE: {
                /* The walker never looks back: drop what lies before the
                 * bytes it wants (8-aligned, as it requires), keep the rest. */
                uint64_t base = ev.offset & ~(uint64_t)7;
                TL_ASSERT(base >= s->buf_off && base <= s->buf_off + s->n);
                TL_ASSERT(ev.offset + ev.len - base <= BW_STREAM_BUF);
                size_t drop = (size_t)(base - s->buf_off);
                memmove(s->buf, s->buf + drop, s->n - drop);
                s->n -= drop;
                s->buf_off = base;
                return;
            }
            case TL_WALSEG_HEADER: {
                tl_loc loc = {first, 0};
                tl_stream_segment(&s->st, &s->ws.hdr, first, &loc);
                on_segment(c, &s->ws.hdr, first);
                break;
            }
            case TL_WALSEG_RECORD: {
                tl_rec_view v;
                tl_rec_view_native(&v, ev.rec, false);
                tl_loc loc = {first, ev.offset};
                tl_stream_result res = tl_stream_record(&s->st, &v, &loc);
                (void)on_record(c, &v, &loc, res);
                break;
            }
            case TL_WALSEG_CORRUPT:
                if (ev.rule == TL_RULE_FIELDS) {
                    tl_finding f;
                    tl_walseg_finding(&s->ws, &ev, &f);
                    tl_log_emit(&s->log, &f);
                    tl_stream_step_over(&s->st, tl_rec_hdr_of(ev.rec)->seq,
                                        tl_rec_hdr_of(ev.rec)->checksum);
                    break;
                }
                /* Sealed or newest decides: held (ev.rec is not used by these). */
                s->pend = true;
                s->pend_ev = ev;
                s->seg_done = true;
                break;
            case TL_WALSEG_TENTATIVE:
                TL_ASSERT(false); /* walked as sealed: never tentative */
                break;
            case TL_WALSEG_END:
                s->seg_done = true;
                break;
        }
    }
}

/* The previous segment's held judgement, now that it is known whether it
 * was sealed (as wal_reader.c read_segment judges it). */
static void bs_resolve(bw_stream *s, bool sealed) {
    if (!s->any)
        return;
    TL_ASSERT(!s->in_seg);
    if (s->pend && sealed) {
        tl_finding f;
        tl_walseg_finding(&s->ws, &s->pend_ev, &f);
        tl_log_emit(&s->log, &f);
        if (s->pend_ev.reason >= TL_REASON_SEG_BASE && s->pend_ev.reason < TL_REASON_SEGMENT_INDEX)
            tl_stream_segment_unreadable(&s->st);
        else
            tl_stream_reanchor(&s->st);
        s->reanchors++;
    }
    if (!sealed)
        s->c->tail = s->pend ? TL_WAL_TAIL_TENTATIVE : TL_WAL_TAIL_CLEAN;
    s->pend = false;
    if (!s->first_resolved) {
        s->first_resolved = true;
        if (s->st.segment_known)
            s->c->anchor_verified = s->st.segment_index == 0 && s->reanchors == 0;
    }
}

int bw_stream_seg_begin(bw_stream *s, uint64_t name_first_seq, uint64_t file_bytes) {
    TL_ASSERT(!s->in_seg);
    if (s->any && name_first_seq <= s->last_first)
        return -1;
    bs_resolve(s, true);
    if (!s->any)
        s->c->anchor_segment = name_first_seq;
    s->any = true;
    s->last_first = name_first_seq;
    s->segments++;
    s->in_seg = true;
    s->seg_done = false;
    s->pend = false;
    s->buf_off = 0;
    s->n = 0;
    s->fed = 0;
    s->facts = (tl_walseg_facts){.sealed = true, .file_bytes = file_bytes};
    tl_walseg_init(&s->ws, name_first_seq);
    s->log.now_ns = 0; /* no clock: findings here carry no time */
    return 0;
}

void bw_stream_seg_data(bw_stream *s, const void *p, size_t n) {
    TL_ASSERT(s->in_seg);
    const uint8_t *b = p;
    /* Each pass copies at least one byte: bs_run leaves room (it keeps at
     * most one record, < BW_STREAM_BUF), or the segment is done. */
    while (n > 0) {
        if (s->seg_done) {
            s->fed += n; /* past the end of records: not walked */
            return;
        }
        size_t room = BW_STREAM_BUF - s->n;
        TL_ASSERT(room > 0);
        size_t k = n < room ? n : room;
        memcpy(s->buf + s->n, b, k);
        s->n += k;
        s->fed += k;
        b += k;
        n -= k;
        bs_run(s);
    }
}

void bw_stream_seg_end(bw_stream *s) {
    TL_ASSERT(s->in_seg);
    if (!s->seg_done) {
        if (s->fed < s->facts.file_bytes)
            s->facts.file_bytes = s->fed; /* it shrank: judge the bytes there */
        bs_run(s);
    }
    /* Every byte of the file is in the buffer now: the walker cannot need
     * more, so it ended. */
    TL_ASSERT(s->seg_done);
    s->in_seg = false;
}

void bw_stream_finish(bw_stream *s) {
    TL_ASSERT(!s->in_seg);
    bs_resolve(s, false);
    s->c->segments = s->segments;
    s->c->findings = s->findings;
}

static cJSON *hex16(cJSON *o, const char *key, uint64_t v) {
    char buf[17];
    snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
    return cJSON_AddStringToObject(o, key, buf);
}

cJSON *bw_check_json(const bw_check *c) {
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    /* Both sides compare this object: a member cJSON could not add would be
     * a false mismatch (or a false match), so any failure returns NULL. */
    bool ok = true;
    ok = (cJSON_AddNumberToObject(o, "segments", c->segments) != 0) && ok;
    ok = (bundle_u64(o, "records_total", c->records_total) != 0) && ok;
    ok = (bundle_u64(o, "first_seq", c->first_seq) != 0) && ok;
    ok = (bundle_u64(o, "last_seq", c->last_seq) != 0) && ok;
    ok = (bundle_u64(o, "records", c->records) != 0) && ok;
    ok = (hex16(o, "first_parent", c->first_parent) != 0) && ok;
    ok = (hex16(o, "first_checksum", c->first_checksum) != 0) && ok;
    ok = (hex16(o, "last_checksum", c->last_checksum) != 0) && ok;
    ok = (bundle_u64(o, "fence_min", c->fence_min) != 0) && ok;
    ok = (bundle_u64(o, "fence_max", c->fence_max) != 0) && ok;
    ok = (bundle_u64(o, "findings", c->findings) != 0) && ok;
    ok = (cJSON_AddStringToObject(o, "tail", tl_wal_tail_name((enum tl_wal_tail)c->tail)) != 0) &&
         ok;
    ok = (cJSON_AddBoolToObject(o, "anchor_verified", c->anchor_verified) != 0) && ok;
    ok = (bundle_u64(o, "anchor_segment", c->anchor_segment) != 0) && ok;
    cJSON *arr = cJSON_AddArrayToObject(o, "first_findings");
    ok = arr != NULL && ok;
    for (uint32_t i = 0; arr != NULL && i < c->shown; i++) {
        cJSON *f = cJSON_CreateObject();
        if (f == NULL) {
            ok = false;
            break;
        }
        ok = (cJSON_AddStringToObject(f, "check",
                                      tl_check_name((enum tl_check)c->first[i].check)) != 0) &&
             ok;
        if (c->first[i].reason != TL_REASON_NONE)
            ok = (cJSON_AddStringToObject(f, "reason", tl_reason_name(c->first[i].reason)) != 0) &&
                 ok;
        ok = (bundle_u64(f, "seq", c->first[i].seq) != 0) && ok;
        ok = (bundle_u64(f, "segment", c->first[i].segment) != 0) && ok;
        ok = (bundle_u64(f, "offset", c->first[i].offset) != 0) && ok;
        ok = (cJSON_AddItemToArray(arr, f) != 0) && ok;
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}
