/* bundle_verify.c: offline verification of a forensic bundle (see
 * bundle.h): signature, every file's size and SHA-256, the WAL chain, the
 * timeline and the first divergent seq. Everything in the file is outside
 * bytes: nothing here asserts on them. */
#include "bundle_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/audit.h"
#include "core/assert.h"
#include "shm/ring.h"

#define VERIFY_TOTAL_MAX (1ull << 40) /* uncompressed bytes in one bundle */

typedef struct ventry {
    char path[BUNDLE_ARC_PATH];
    uint64_t size;
    uint8_t sha[32];
    bool listed; /* named by the manifest */
} ventry;

typedef struct ring_rec {
    uint64_t seq;
    uint64_t checksum;
} ring_rec;

typedef struct ver {
    const tl_bundle_verify_opts *o;
    tl_bundle_report *r;
    char dir[TL_BUNDLE_PATH_MAX];
    ventry *ents; /* TL_BUNDLE_FILES_MAX */
    uint32_t n_ents;
    char *manifest;
    size_t manifest_len;
    uint8_t sig[BUNDLE_SIG_BYTES + 1];
    size_t sig_len;
    bool have_manifest;
    bool have_sig;
    cJSON *m; /* the parsed manifest */
    /* the ring's copies, sorted by seq */
    ring_rec *ring;
    uint64_t n_ring;
    uint64_t ring_wal_diverge; /* lowest seq whose ring and WAL copies differ */
    uint64_t ring_wal_ring_ck;
    uint64_t ring_wal_wal_ck;
    uint64_t ring_self_diverge; /* two ring copies of one seq that differ */
    uint64_t compared;
} ver;

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 3, 4))) static enum tl_bundle_verr
vfail(ver *v, enum tl_bundle_verr e, const char *fmt, ...) {
    if (v->r->err != TL_BV_OK)
        return (enum tl_bundle_verr)v->r->err;
    v->r->err = (uint8_t)e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->r->detail, sizeof v->r->detail, fmt, ap);
    va_end(ap);
    return e;
}

/* A path inside a bundle: "NAME" or "DIR/NAME" with DIR one of the bundle's
 * directories; names of [A-Za-z0-9._-], not starting with '.'. */
static bool path_safe(const char *p) {
    size_t n = strlen(p);
    if (n == 0 || n >= BUNDLE_ARC_PATH)
        return false;
    const char *slash = strchr(p, '/');
    const char *name = p;
    if (slash != NULL) {
        if (strchr(slash + 1, '/') != NULL)
            return false;
        bool known = false;
        for (unsigned i = 0; i < BUNDLE_STAGE_DIRS; i++)
            if (strlen(bundle_dirs[i]) == (size_t)(slash - p) &&
                memcmp(bundle_dirs[i], p, (size_t)(slash - p)) == 0)
                known = true;
        if (!known)
            return false;
        name = slash + 1;
    }
    return bundle_name_safe(name);
}

static ventry *find_ent(ver *v, const char *path) {
    for (uint32_t i = 0; i < v->n_ents; i++)
        if (strcmp(v->ents[i].path, path) == 0)
            return &v->ents[i];
    return NULL;
}

/* Reads an entry's data into memory (the two MANIFEST files). */
static enum tl_bundle_verr read_small(ver *v, struct archive *a, char *dst, size_t cap, size_t *len,
                                      const char *what) {
    size_t got = 0;
    /* Each call returns data or ends: bounded by the entry's size. */
    for (;;) {
        const void *buf;
        size_t n;
        la_int64_t off;
        int rc = archive_read_data_block(a, &buf, &n, &off);
        if (rc == ARCHIVE_EOF)
            break;
        if (rc != ARCHIVE_OK)
            return vfail(v, TL_BV_NOT_A_BUNDLE, "%s: %s", what, archive_error_string(a));
        if (off < 0 || (uint64_t)off != got || got + n > cap)
            return vfail(v, TL_BV_TOO_LARGE, "%s: larger than %zu bytes", what, cap);
        memcpy(dst + got, buf, n);
        got += n;
    }
    *len = got;
    return TL_BV_OK;
}

static enum tl_bundle_verr extract_one(ver *v, struct archive *a, ventry *e) {
    char path[TL_BUNDLE_PATH_MAX + BUNDLE_ARC_PATH + 2];
    snprintf(path, sizeof path, "%s/%s", v->dir, e->path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return vfail(v, errno == EEXIST ? TL_BV_DUPLICATE : TL_BV_IO, "%s: %s", e->path,
                     strerror(errno));
    bundle_sha sha;
    if (!bundle_sha_init(&sha)) {
        close(fd);
        return vfail(v, TL_BV_IO, "sha256: out of memory");
    }
    enum tl_bundle_verr rc = TL_BV_OK;
    uint64_t got = 0;
    /* Bounded by the entry's size (libarchive stops at its end). */
    while (rc == TL_BV_OK) {
        const void *buf;
        size_t n;
        la_int64_t off;
        int ar = archive_read_data_block(a, &buf, &n, &off);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar != ARCHIVE_OK) {
            rc = vfail(v, TL_BV_NOT_A_BUNDLE, "%s: %s", e->path, archive_error_string(a));
            break;
        }
        if (off < 0 || (uint64_t)off != got) {
            /* a sparse entry: a bundle never has one */
            rc = vfail(v, TL_BV_UNSAFE_PATH, "%s: sparse entry", e->path);
            break;
        }
        bundle_sha_update(&sha, buf, n);
        if (bundle_write_all(fd, buf, n) != 0) {
            rc = vfail(v, TL_BV_IO, "extracting %s: %s", e->path, strerror(errno));
            break;
        }
        got += n;
        v->r->bytes += n;
        if (v->o->progress != NULL)
            v->o->progress(v->o->progress_ctx, (uint64_t)archive_filter_bytes(a, -1),
                           v->r->compressed_bytes);
    }
    bundle_sha_final(&sha, e->sha);
    bundle_sha_free(&sha);
    e->size = got;
    if (close(fd) != 0 && rc == TL_BV_OK)
        rc = vfail(v, TL_BV_IO, "extracting %s: %s", e->path, strerror(errno));
    return rc;
}

static enum tl_bundle_verr extract(ver *v, int fd) {
    struct archive *a = archive_read_new();
    if (a == NULL)
        return vfail(v, TL_BV_IO, "libarchive: out of memory");
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    enum tl_bundle_verr rc = TL_BV_OK;
    if (archive_read_open_fd(a, fd, BUNDLE_CHUNK) != ARCHIVE_OK)
        rc = vfail(v, TL_BV_NOT_A_BUNDLE, "%s", archive_error_string(a));
    /* One header per entry; bounded by TL_BUNDLE_FILES_MAX + 2. */
    while (rc == TL_BV_OK) {
        struct archive_entry *ae;
        int ar = archive_read_next_header(a, &ae);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar != ARCHIVE_OK) {
            rc = vfail(v, TL_BV_NOT_A_BUNDLE, "%s", archive_error_string(a));
            break;
        }
        const char *p = archive_entry_pathname(ae);
        if (p == NULL || archive_entry_filetype(ae) != AE_IFREG || !path_safe(p)) {
            rc = vfail(v, TL_BV_UNSAFE_PATH, "entry \"%.100s\"%s", p != NULL ? p : "(none)",
                       p != NULL && archive_entry_filetype(ae) != AE_IFREG ? " is not a file" : "");
            break;
        }
        if (strcmp(p, "MANIFEST.json") == 0 || strcmp(p, "MANIFEST.sig") == 0) {
            bool is_m = p[9] == 'j';
            if (is_m ? v->have_manifest : v->have_sig) {
                rc = vfail(v, TL_BV_DUPLICATE, "%s appears twice", p);
                break;
            }
            if (is_m) {
                rc = read_small(v, a, v->manifest, TL_BUNDLE_MANIFEST_MAX, &v->manifest_len, p);
                v->manifest[v->manifest_len] = '\0';
                v->have_manifest = true;
            } else {
                rc = read_small(v, a, (char *)v->sig, sizeof v->sig, &v->sig_len, p);
                v->have_sig = true;
            }
            continue;
        }
        if (find_ent(v, p) != NULL) {
            rc = vfail(v, TL_BV_DUPLICATE, "%s appears twice", p);
            break;
        }
        if (v->n_ents == TL_BUNDLE_FILES_MAX) {
            rc = vfail(v, TL_BV_TOO_LARGE, "more than %u files", TL_BUNDLE_FILES_MAX);
            break;
        }
        if (v->r->bytes + (uint64_t)archive_entry_size(ae) > VERIFY_TOTAL_MAX) {
            rc = vfail(v, TL_BV_TOO_LARGE, "more than %llu bytes",
                       (unsigned long long)VERIFY_TOTAL_MAX);
            break;
        }
        ventry *e = &v->ents[v->n_ents++];
        memset(e, 0, sizeof *e);
        snprintf(e->path, sizeof e->path, "%s", p);
        rc = extract_one(v, a, e);
    }
    archive_read_free(a);
    return rc;
}

/* ---- the manifest ---- */

/* The signature over the manifest's bytes first: a changed manifest is a
 * bad signature, whatever its bytes parse to. */
static enum tl_bundle_verr check_signature(ver *v) {
    if (!v->have_manifest)
        return vfail(v, TL_BV_NO_MANIFEST, "the bundle has no MANIFEST.json");
    if (!v->have_sig) {
        cJSON *m = cJSON_ParseWithLength(v->manifest, v->manifest_len);
        bool unsigned_ = cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(m, "signed"));
        cJSON_Delete(m);
        return vfail(v, TL_BV_NO_SIGNATURE, "the bundle has no MANIFEST.sig%s",
                     unsigned_ ? " (exported without bundle.signing_key)" : "");
    }
    if (v->o->pubkey_path == NULL)
        return vfail(v, TL_BV_PUBKEY, "no public key given (--pubkey PEM)");
    EVP_PKEY *k = bundle_pubkey_load(v->o->pubkey_path);
    if (k == NULL)
        return vfail(v, TL_BV_PUBKEY, "%s: not an Ed25519 PEM key", v->o->pubkey_path);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md != NULL && v->sig_len == BUNDLE_SIG_BYTES &&
              EVP_DigestVerifyInit(md, NULL, NULL, NULL, k) == 1 &&
              EVP_DigestVerify(md, v->sig, v->sig_len, (const unsigned char *)v->manifest,
                               v->manifest_len) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    if (!ok)
        return vfail(v, TL_BV_BAD_SIGNATURE,
                     "MANIFEST.sig is not a signature of MANIFEST.json by this key");
    v->r->signed_ok = true;
    v->m = cJSON_ParseWithLength(v->manifest, v->manifest_len);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(v->m, "format");
    if (v->m == NULL || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, BUNDLE_FORMAT) != 0)
        return vfail(v, TL_BV_BAD_MANIFEST, "MANIFEST.json is not a %s manifest", BUNDLE_FORMAT);
    return TL_BV_OK;
}

static bool parse_hex32(const char *s, uint8_t out[32]) {
    if (strlen(s) != 64)
        return false;
    for (int i = 0; i < 32; i++) {
        unsigned b;
        if (sscanf(s + 2 * i, "%2x", &b) != 1)
            return false;
        out[i] = (uint8_t)b;
    }
    return true;
}

static enum tl_bundle_verr check_files(ver *v) {
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(v->m, "files");
    if (!cJSON_IsArray(files))
        return vfail(v, TL_BV_BAD_MANIFEST, "MANIFEST.json has no files list");
    const cJSON *f;
    cJSON_ArrayForEach(f, files) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(f, "path");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(f, "sha256");
        uint64_t size;
        uint8_t sha[32];
        if (!cJSON_IsString(p) || !cJSON_IsString(h) || !bundle_get_u64(f, "size", &size) ||
            !parse_hex32(h->valuestring, sha))
            return vfail(v, TL_BV_BAD_MANIFEST, "a files entry lacks path, size or sha256");
        ventry *e = find_ent(v, p->valuestring);
        if (e == NULL)
            return vfail(v, TL_BV_FILE_MISSING, "%.200s is in the manifest, not in the bundle",
                         p->valuestring);
        if (e->listed)
            return vfail(v, TL_BV_BAD_MANIFEST, "%.200s is listed twice", p->valuestring);
        e->listed = true;
        if (e->size != size)
            return vfail(v, TL_BV_SIZE_MISMATCH, "%.200s: %llu bytes, the manifest says %llu",
                         e->path, (unsigned long long)e->size, (unsigned long long)size);
        if (memcmp(e->sha, sha, 32) != 0) {
            char got[65];
            bundle_hex(e->sha, 32, got);
            return vfail(v, TL_BV_HASH_MISMATCH, "%.200s: sha256 %s, the manifest says %.64s",
                         e->path, got, h->valuestring);
        }
    }
    for (uint32_t i = 0; i < v->n_ents; i++)
        if (!v->ents[i].listed)
            return vfail(v, TL_BV_FILE_EXTRA, "%s is in the bundle, not in the manifest",
                         v->ents[i].path);
    v->r->files = v->n_ents;
    return TL_BV_OK;
}

/* ---- the ring's copies ---- */

static int ring_cmp(const void *a, const void *b) {
    const ring_rec *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return x->checksum < y->checksum ? -1 : x->checksum > y->checksum;
}

/* Every record of ring/data.bin whose checksum holds: from offset 0 (always
 * a record boundary) forward; past bytes that do not check, every 8-byte
 * offset is tried (the previous lap's records start somewhere there). */
static void ring_scan(ver *v) {
    char cpath[TL_BUNDLE_PATH_MAX + 32], dpath[TL_BUNDLE_PATH_MAX + 32];
    snprintf(cpath, sizeof cpath, "%s/ring/control.bin", v->dir);
    snprintf(dpath, sizeof dpath, "%s/ring/data.bin", v->dir);
    size_t dlen = 0;
    char *data = bundle_read_file(dpath, 1ull << 40, &dlen);
    if (data == NULL)
        return;
    (void)cpath; /* positions are in the manifest; the scan needs only the bytes */
    uint64_t max = dlen / TL_REC_HDR_BYTES + 1;
    v->ring = calloc(max, sizeof *v->ring);
    uint8_t *copy = malloc(TL_RING_COPY_BYTES);
    if (v->ring == NULL || copy == NULL) {
        free(copy);
        free(data);
        return;
    }
    uint64_t off = 0;
    /* Each step advances off by a record's length or by 8: bounded. */
    while (off + TL_REC_HDR_BYTES <= dlen) {
        tl_rec_hdr h;
        memcpy(&h, data + off, sizeof h);
        bool plausible = h.len >= TL_REC_HDR_BYTES && h.len % 8 == 0 &&
                         h.len < TL_RING_ITEM_LIMIT_BYTES && off + h.len <= dlen && h.seq != 0 &&
                         h.checksum != 0;
        if (plausible) {
            memcpy(copy, data + off, h.len);
            bool replay = false;
            if (tl_rec_verify(copy, h.len, TL_WHERE_RING, &replay) == TL_REC_OK) {
                if (h.kind != TL_KIND_PAD && v->n_ring < max) {
                    v->ring[v->n_ring].seq = h.seq;
                    v->ring[v->n_ring].checksum = tl_rec_hdr_of(copy)->checksum;
                    v->n_ring++;
                }
                off += h.len;
                continue;
            }
        }
        off += 8;
    }
    free(copy);
    free(data);
    qsort(v->ring, v->n_ring, sizeof *v->ring, ring_cmp);
    for (uint64_t i = 1; i < v->n_ring; i++)
        if (v->ring[i].seq == v->ring[i - 1].seq &&
            v->ring[i].checksum != v->ring[i - 1].checksum && v->ring_self_diverge == 0)
            v->ring_self_diverge = v->ring[i].seq;
    v->r->ring_records = v->n_ring;
}

static void on_wal_rec(void *ctx, uint64_t seq, uint64_t checksum) {
    ver *v = ctx;
    v->r->wal_records++;
    if (v->n_ring == 0)
        return;
    uint64_t lo = 0, hi = v->n_ring;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (v->ring[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (uint64_t i = lo; i < v->n_ring && v->ring[i].seq == seq; i++) {
        v->compared++;
        if (v->ring[i].checksum != checksum &&
            (v->ring_wal_diverge == 0 || seq < v->ring_wal_diverge)) {
            v->ring_wal_diverge = seq;
            v->ring_wal_ring_ck = v->ring[i].checksum;
            v->ring_wal_wal_ck = checksum;
        }
    }
}

/* ---- the WAL chain ---- */

static bool manifest_has_deg(const ver *v, const char *name) {
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(v->m, "degraded")) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(d, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return true;
    }
    return false;
}

static enum tl_bundle_verr check_wal(ver *v, bw_check *c) {
    const cJSON *sr = cJSON_GetObjectItemCaseSensitive(v->m, "seq_range");
    if (!bundle_get_u64(sr, "requested_from", &c->from_seq) ||
        !bundle_get_u64(sr, "requested_to", &c->to_seq))
        return vfail(v, TL_BV_BAD_MANIFEST, "MANIFEST.json has no seq_range");
    if (manifest_has_deg(v, tl_bundle_deg_name(TL_BUNDLE_DEG_XWAL1)))
        return TL_BV_OK; /* xwal1: copied whole, checked by `tallyctl wal verify` */
    ring_scan(v);
    c->on_rec = on_wal_rec;
    c->ctx = v;
    char dir[TL_BUNDLE_PATH_MAX + 8], err[256];
    snprintf(dir, sizeof dir, "%s/wal", v->dir);
    if (bw_wal_check(dir, c, err, sizeof err) != 0)
        return vfail(v, TL_BV_IO, "reading the bundle's WAL: %s", err);
    v->r->segments = c->segments;
    v->r->seq_first = c->first_seq;
    v->r->seq_last = c->last_seq;
    v->r->wal_findings = c->findings;
    cJSON *mine = bw_check_json(c);
    const cJSON *theirs = cJSON_GetObjectItemCaseSensitive(v->m, "wal_check");
    char *a = mine != NULL ? cJSON_PrintUnformatted(mine) : NULL;
    char *b = theirs != NULL ? cJSON_PrintUnformatted(theirs) : NULL;
    enum tl_bundle_verr rc = TL_BV_OK;
    if (a == NULL || b == NULL) {
        rc = vfail(v, TL_BV_BAD_MANIFEST, "MANIFEST.json has no wal_check");
    } else if (strcmp(a, b) != 0) {
        /* Name the first member that differs. */
        const char *what = "?";
        const cJSON *x;
        cJSON_ArrayForEach(x, mine) {
            const cJSON *y = cJSON_GetObjectItemCaseSensitive(theirs, x->string);
            char *xs = cJSON_PrintUnformatted(x), *ys = y ? cJSON_PrintUnformatted(y) : NULL;
            bool same = xs != NULL && ys != NULL && strcmp(xs, ys) == 0;
            cJSON_free(xs);
            cJSON_free(ys);
            if (!same) {
                what = x->string;
                break;
            }
        }
        rc = vfail(v, TL_BV_WAL_CHAIN,
                   "the WAL in the bundle reads differently from what was recorded at export "
                   "(first difference: %s)",
                   what);
    }
    cJSON_free(a);
    cJSON_free(b);
    cJSON_Delete(mine);
    return rc;
}

/* ---- timeline and divergence ---- */

static bool incident_listed(const ver *v, uint64_t inc) {
    if (v->r->n_incidents == 0)
        return true;
    for (uint32_t i = 0; i < v->r->n_incidents; i++)
        if (v->r->incidents[i] == inc)
            return true;
    return false;
}

static void fmt_time(uint64_t ns, char *out, size_t cap) {
    time_t t = (time_t)(ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&t, &tm);
    char b[32];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%06lluZ", b, (unsigned long long)(ns % 1000000000ull / 1000));
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void emit(ver *v, const char *line) {
    v->r->timeline_lines++;
    if (v->o->timeline != NULL)
        v->o->timeline(v->o->timeline_ctx, line);
}

static void timeline(ver *v, uint64_t *fork_seq, uint64_t *fork_id) {
    char path[TL_BUNDLE_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/audit.jsonl", v->dir);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return;
    char *line = malloc(TL_AUDIT_LINE_MAX + 2);
    /* One line at a time; the file is at most TL_BUNDLE_AUDIT_MAX bytes. */
    while (line != NULL && fgets(line, TL_AUDIT_LINE_MAX + 2, f) != NULL) {
        cJSON *j = cJSON_Parse(line);
        const char *ev = jstr(j, "event");
        uint64_t ts = 0, inc = 0;
        (void)bundle_get_u64(j, "ts_ns", &ts);
        char when[48], out[512];
        fmt_time(ts, when, sizeof when);
        const cJSON *fnd = cJSON_GetObjectItemCaseSensitive(j, "finding");
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "action");
        if (strcmp(ev, "FINDING") == 0 && cJSON_IsObject(fnd) &&
            (bundle_get_u64(fnd, "incident", &inc) || v->r->n_incidents == 0) &&
            incident_listed(v, inc)) {
            const char *check = jstr(fnd, "check");
            uint64_t seq = 0, id = 0;
            (void)bundle_get_u64(fnd, "seq", &seq);
            (void)bundle_get_u64(fnd, "id", &id);
            snprintf(out, sizeof out, "%s  FINDING   %-24s %-5s seq %llu  source %s  id %llu", when,
                     check, jstr(fnd, "severity"), (unsigned long long)seq, jstr(fnd, "source"),
                     (unsigned long long)id);
            emit(v, out);
            if ((strcmp(check, "FORK") == 0 || strcmp(check, "PEER_LOG_FORK") == 0) && seq != 0 &&
                (*fork_seq == 0 || seq < *fork_seq)) {
                *fork_seq = seq;
                *fork_id = id;
            }
        } else if (cJSON_IsObject(act) && bundle_get_u64(act, "incident", &inc) && inc != 0 &&
                   incident_listed(v, inc)) {
            const char *mode = jstr(act, "mode");
            const char *extra = jstr(j, "block_reason");
            if (extra[0] == '\0')
                extra = jstr(j, "error");
            snprintf(out, sizeof out, "%s  %-9s %-24s %s%s%s  id %.32s%s%s", when, ev,
                     jstr(act, "cmd"), jstr(act, "symbol"), mode[0] ? " " : "", mode,
                     jstr(act, "id"), extra[0] ? "  " : "", extra);
            emit(v, out);
        }
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
}

static void divergence(ver *v, const bw_check *c) {
    uint64_t fork_seq = 0, fork_id = 0;
    timeline(v, &fork_seq, &fork_id);
    tl_bundle_report *r = v->r;
    struct {
        uint64_t seq;
        char how[160];
    } cand[4];
    memset(cand, 0, sizeof cand);
    if (fork_seq != 0) {
        cand[0].seq = fork_seq;
        snprintf(cand[0].how, sizeof cand[0].how, "FORK finding %llu", (unsigned long long)fork_id);
    }
    if (c->fork_seq != 0) {
        cand[1].seq = c->fork_seq;
        snprintf(cand[1].how, sizeof cand[1].how, "two copies in the WAL (the reader's FORK)");
    }
    if (v->ring_wal_diverge != 0) {
        cand[2].seq = v->ring_wal_diverge;
        snprintf(cand[2].how, sizeof cand[2].how,
                 "the ring's copy (checksum %016llx) differs from the WAL's (%016llx)",
                 (unsigned long long)v->ring_wal_ring_ck, (unsigned long long)v->ring_wal_wal_ck);
    }
    if (v->ring_self_diverge != 0) {
        cand[3].seq = v->ring_self_diverge;
        snprintf(cand[3].how, sizeof cand[3].how, "two different copies on the ring");
    }
    for (unsigned i = 0; i < 4; i++) {
        if (cand[i].seq == 0 || (r->divergent_seq != 0 && cand[i].seq >= r->divergent_seq))
            continue;
        r->divergent_seq = cand[i].seq;
        snprintf(r->divergent_how, sizeof r->divergent_how, "%s", cand[i].how);
    }
}

static void manifest_facts(ver *v) {
    tl_bundle_report *r = v->r;
    snprintf(r->id, sizeof r->id, "%s", jstr(v->m, "id"));
    const cJSON *inc;
    cJSON_ArrayForEach(inc, cJSON_GetObjectItemCaseSensitive(v->m, "incidents")) {
        if (r->n_incidents < TL_BUNDLE_INCIDENTS && cJSON_IsString(inc))
            r->incidents[r->n_incidents++] = strtoull(inc->valuestring, NULL, 10);
    }
    for (unsigned d = 0; d < TL_BUNDLE_DEG_COUNT; d++)
        if (manifest_has_deg(v, tl_bundle_deg_name((enum tl_bundle_deg)d)))
            r->degraded |= 1u << d;
}

static const char *tmp_base(const tl_bundle_verify_opts *o) {
    if (o->tmp_dir != NULL && o->tmp_dir[0] != '\0')
        return o->tmp_dir;
    const char *t = getenv("TMPDIR");
    return t != NULL && t[0] != '\0' ? t : "/tmp";
}

enum tl_bundle_verr tl_bundle_verify(const char *path, const tl_bundle_verify_opts *o,
                                     tl_bundle_report *r) {
    memset(r, 0, sizeof *r);
    uint64_t t0 = mono_ns();
    ver *v = calloc(1, sizeof *v);
    if (v == NULL) {
        r->err = TL_BV_IO;
        snprintf(r->detail, sizeof r->detail, "out of memory");
        return TL_BV_IO;
    }
    v->o = o;
    v->r = r;
    v->ents = calloc(TL_BUNDLE_FILES_MAX, sizeof *v->ents);
    v->manifest = malloc(TL_BUNDLE_MANIFEST_MAX + 1);
    int fd = -1;
    enum tl_bundle_verr rc = TL_BV_OK;
    if (v->ents == NULL || v->manifest == NULL)
        rc = vfail(v, TL_BV_IO, "out of memory");
    if (rc == TL_BV_OK) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0)
            rc = vfail(v, TL_BV_UNREADABLE, "%s: %s", path, strerror(errno));
        else
            r->compressed_bytes = (uint64_t)st.st_size;
    }
    if (rc == TL_BV_OK) {
        snprintf(v->dir, sizeof v->dir, "%s/tally-verify.XXXXXX", tmp_base(o));
        if (mkdtemp(v->dir) == NULL) {
            rc = vfail(v, TL_BV_IO, "%s: %s", v->dir, strerror(errno));
            v->dir[0] = '\0';
        }
        for (unsigned i = 0; rc == TL_BV_OK && i < BUNDLE_STAGE_DIRS; i++) {
            char p[TL_BUNDLE_PATH_MAX + 16];
            snprintf(p, sizeof p, "%s/%s", v->dir, bundle_dirs[i]);
            if (mkdir(p, 0700) != 0)
                rc = vfail(v, TL_BV_IO, "%s: %s", p, strerror(errno));
        }
    }
    if (rc == TL_BV_OK)
        rc = extract(v, fd);
    if (rc == TL_BV_OK)
        rc = check_signature(v);
    if (rc == TL_BV_OK)
        manifest_facts(v);
    if (rc == TL_BV_OK)
        rc = check_files(v);
    bw_check c;
    memset(&c, 0, sizeof c);
    if (rc == TL_BV_OK)
        rc = check_wal(v, &c);
    if (rc == TL_BV_OK)
        divergence(v, &c);
    if (fd >= 0)
        close(fd);
    if (v->dir[0] != '\0')
        bundle_rm_tree(v->dir);
    cJSON_Delete(v->m);
    free(v->ring);
    free(v->manifest);
    free(v->ents);
    free(v);
    r->elapsed_ns = mono_ns() - t0;
    return rc;
}
