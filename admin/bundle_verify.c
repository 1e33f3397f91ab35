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
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/audit.h"
#include "core/assert.h"
#include "core/segment.h"
#include "shm/ring.h"

/* What one bundle may unpack to, by default: VERIFY_RATIO times its
 * compressed size, but never less than VERIFY_FLOOR (a small bundle of an
 * idle ring compresses far better than WAL does). Beyond: "unpack_limit". */
#define VERIFY_RATIO     64u
#define VERIFY_FLOOR     (4ull << 30)
#define VERIFY_RING_MAX  (1ull << 30) /* ring/data.bin held to compare with the WAL */
#define VERIFY_AUDIT_MAX ((uint64_t)TL_BUNDLE_AUDIT_MAX + TL_AUDIT_LINE_MAX + 2)
#define VERIFY_RANGE_MAX 4096u

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

/* A small entry held in memory while the archive streams past. */
typedef struct held {
    char *p;
    size_t len;
    size_t cap;
    size_t alloc;
    bool have;
    bool too_big; /* more than cap: not kept */
} held;

typedef struct ver {
    const tl_bundle_verify_opts *o;
    tl_bundle_report *r;
    uint64_t limit_bytes; /* unpacked bytes allowed */
    /* the WAL check, run on wal/ entries as they stream */
    bw_check wal;
    bw_stream *ws;
    bool have_range; /* range.json came before the first segment */
    bool wal_started;
    uint32_t wal_ignored; /* wal/ names that are not segment names */
    held ring_data;       /* ring/data.bin, scanned when it ends */
    held audit;           /* audit.jsonl, for the timeline */
    held range;           /* range.json */
    bool wal_layout_bad;  /* the WAL could not be checked as it streamed */
    bool wal_aborted;     /* the read stopped inside a segment (an error) */
    char wal_layout_why[128];
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

/* Appends to a held entry; past its cap it is dropped (too_big). */
static void held_add(held *h, const void *p, size_t n) {
    if (h->too_big)
        return;
    if (h->len + n > h->cap) {
        free(h->p);
        h->p = NULL;
        h->len = 0;
        h->too_big = true;
        return;
    }
    if (h->p == NULL) {
        /* Grows by doubling from 1 MiB, at most to cap (+1 for a NUL). */
        size_t want = h->cap < (1u << 20) ? h->cap + 1 : (1u << 20);
        h->p = malloc(want);
        h->alloc = h->p != NULL ? want : 0;
    }
    if (h->p != NULL && h->len + n + 1 > h->alloc) {
        size_t want = h->alloc;
        while (want < h->len + n + 1)
            want = want * 2 < h->cap + 1 ? want * 2 : h->cap + 1;
        char *q = realloc(h->p, want);
        if (q == NULL) {
            free(h->p);
            h->p = NULL;
        }
        h->p = q;
        h->alloc = q != NULL ? want : 0;
    }
    if (h->p == NULL) {
        h->len = 0;
        h->too_big = true; /* out of memory: treated as too big to keep */
        return;
    }
    memcpy(h->p + h->len, p, n);
    h->len += n;
    h->p[h->len] = '\0';
}

/* range.json, when it ends: the range the WAL check needs. */
static void range_parse(ver *v) {
    if (v->range.p == NULL)
        return;
    cJSON *j = cJSON_ParseWithLength(v->range.p, v->range.len);
    v->have_range = bundle_get_u64(j, "from_seq", &v->wal.from_seq) &&
                    bundle_get_u64(j, "to_seq", &v->wal.to_seq);
    cJSON_Delete(j);
}

static void ring_scan(ver *v);
static void on_wal_rec(void *ctx, uint64_t seq, uint64_t checksum);

/* A wal/ entry begins: feed it to the WAL check if it can be (the range is
 * known and segments come in ascending order); otherwise the check is
 * judged impossible at the end (after the hashes, which name tampering
 * better). Returns whether to feed this entry. */
static bool wal_entry_begin(ver *v, const char *name, uint64_t size) {
    uint64_t first;
    if (!tl_seg_name_parse(name, &first)) {
        v->wal_ignored++; /* as the directory reader ignores unknown names */
        return false;
    }
    if (v->wal_layout_bad)
        return false;
    if (!v->wal_started) {
        v->wal_started = true;
        if (!v->have_range) {
            v->wal_layout_bad = true;
            snprintf(v->wal_layout_why, sizeof v->wal_layout_why,
                     "%s does not come before the first WAL segment", BUNDLE_RANGE_FILE);
            return false;
        }
        v->wal.on_rec = on_wal_rec;
        v->wal.ctx = v;
        v->ws = bw_stream_new(&v->wal);
        if (v->ws == NULL) {
            v->wal_layout_bad = true;
            snprintf(v->wal_layout_why, sizeof v->wal_layout_why, "out of memory");
            return false;
        }
    }
    if (bw_stream_seg_begin(v->ws, first, size) != 0) {
        v->wal_layout_bad = true;
        snprintf(v->wal_layout_why, sizeof v->wal_layout_why,
                 "WAL segments out of order (wal/%.40s after a later one)", name);
        return false;
    }
    return true;
}

/* ---- two threads: libarchive decompresses on the caller's thread; one
 * worker hashes, walks the WAL and keeps what the timeline needs. The
 * bytes cross in PIPE_SLOTS buffers of PIPE_SLOT_BYTES (a copy each: the
 * block libarchive hands out is only valid until its next call). Decompression
 * and SHA-256 + the WAL check cost about the same, so the two overlap. */

#define PIPE_SLOTS      8u
#define PIPE_SLOT_BYTES (1u << 20)

enum pipe_kind { PK_BEGIN = 1, PK_DATA, PK_END, PK_STOP };

typedef struct pipe_slot {
    uint8_t kind;  /* enum pipe_kind */
    ventry *e;     /* BEGIN */
    uint64_t size; /* BEGIN: the declared size */
    size_t n;      /* DATA */
    uint8_t *buf;  /* PIPE_SLOT_BYTES, owned by the slot */
} pipe_slot;

typedef struct vpipe {
    pthread_mutex_t mu;
    pthread_cond_t cv_full;  /* the worker: a slot was published */
    pthread_cond_t cv_empty; /* the reader: a slot was freed */
    pipe_slot slots[PIPE_SLOTS];
    uint32_t head; /* next to consume (worker) */
    uint32_t tail; /* next to fill (reader) */
    uint32_t count;
    /* the reader's slot being filled (not yet published) */
    pipe_slot *cur;
} vpipe;

/* The worker's state for the entry it is on. */
typedef struct wentry {
    ventry *e;
    held *h;
    bool walk;
    bool open;
    bundle_sha sha;
    uint64_t got;
} wentry;

/* The reader: a free slot to fill (blocks while all are in flight). */
static pipe_slot *pipe_take(vpipe *p) {
    pthread_mutex_lock(&p->mu);
    /* Bounded: the worker frees a slot per message it handles, and it
     * handles every message until STOP. */
    while (p->count == PIPE_SLOTS)
        pthread_cond_wait(&p->cv_empty, &p->mu);
    pipe_slot *sl = &p->slots[p->tail];
    pthread_mutex_unlock(&p->mu);
    sl->n = 0;
    return sl;
}

static void pipe_publish(vpipe *p) {
    pthread_mutex_lock(&p->mu);
    TL_ASSERT(p->count < PIPE_SLOTS);
    p->tail = (p->tail + 1) % PIPE_SLOTS;
    p->count++;
    pthread_cond_signal(&p->cv_full);
    pthread_mutex_unlock(&p->mu);
}

/* The reader: publishes the data slot being filled, if any. */
static void pipe_flush(vpipe *p) {
    if (p->cur != NULL && p->cur->n > 0)
        pipe_publish(p);
    p->cur = NULL;
}

static void pipe_msg(vpipe *p, uint8_t kind, ventry *e, uint64_t size) {
    pipe_flush(p);
    pipe_slot *sl = pipe_take(p);
    sl->kind = kind;
    sl->e = e;
    sl->size = size;
    pipe_publish(p);
}

static void pipe_data(vpipe *p, const void *src, size_t n) {
    const uint8_t *b = src;
    /* Each pass moves at least one byte into a slot. */
    while (n > 0) {
        if (p->cur == NULL) {
            p->cur = pipe_take(p);
            p->cur->kind = PK_DATA;
        }
        size_t room = PIPE_SLOT_BYTES - p->cur->n;
        size_t k = n < room ? n : room;
        memcpy(p->cur->buf + p->cur->n, b, k);
        p->cur->n += k;
        b += k;
        n -= k;
        if (p->cur->n == PIPE_SLOT_BYTES)
            pipe_flush(p);
    }
}

typedef struct worker_arg {
    ver *v;
    vpipe *p;
    bool failed; /* out of memory for a hash */
} worker_arg;

static void w_begin(ver *v, wentry *w, ventry *e, uint64_t size, worker_arg *wa) {
    memset(w, 0, sizeof *w);
    w->e = e;
    if (strcmp(e->path, "ring/data.bin") == 0 && !v->wal_started) {
        w->h = &v->ring_data;
        w->h->cap = VERIFY_RING_MAX;
    } else if (strcmp(e->path, "audit.jsonl") == 0) {
        w->h = &v->audit;
        w->h->cap = VERIFY_AUDIT_MAX;
    } else if (strcmp(e->path, BUNDLE_RANGE_FILE) == 0) {
        w->h = &v->range;
        w->h->cap = VERIFY_RANGE_MAX;
    }
    if (w->h != NULL)
        w->h->have = true;
    w->walk = strncmp(e->path, "wal/", 4) == 0 && wal_entry_begin(v, e->path + 4, size);
    w->open = bundle_sha_init(&w->sha);
    if (!w->open)
        wa->failed = true;
}

static void w_data(ver *v, wentry *w, const uint8_t *b, size_t n) {
    if (w->open)
        bundle_sha_update(&w->sha, b, n);
    if (w->walk)
        bw_stream_seg_data(v->ws, b, n);
    if (w->h != NULL)
        held_add(w->h, b, n);
    w->got += n;
}

static void w_end(ver *v, wentry *w) {
    if (w->walk)
        bw_stream_seg_end(v->ws);
    w->walk = false;
    if (w->open) {
        bundle_sha_final(&w->sha, w->e->sha);
        bundle_sha_free(&w->sha);
        w->open = false;
    }
    w->e->size = w->got;
    if (w->h == &v->range)
        range_parse(v);
    if (w->h == &v->ring_data && !v->wal_started)
        ring_scan(v);
    w->e = NULL;
}

static void *verify_worker(void *arg) {
    worker_arg *wa = arg;
    ver *v = wa->v;
    vpipe *p = wa->p;
    wentry w;
    memset(&w, 0, sizeof w);
    bool stop = false;
    /* One message at a time until STOP (the reader always ends with it). */
    while (!stop) {
        pthread_mutex_lock(&p->mu);
        while (p->count == 0)
            pthread_cond_wait(&p->cv_full, &p->mu);
        pipe_slot *sl = &p->slots[p->head];
        pthread_mutex_unlock(&p->mu);
        switch ((enum pipe_kind)sl->kind) {
            case PK_BEGIN:
                w_begin(v, &w, sl->e, sl->size, wa);
                break;
            case PK_DATA:
                if (w.e != NULL)
                    w_data(v, &w, sl->buf, sl->n);
                break;
            case PK_END:
                if (w.e != NULL)
                    w_end(v, &w);
                break;
            case PK_STOP:
                stop = true;
                break;
        }
        pthread_mutex_lock(&p->mu);
        p->head = (p->head + 1) % PIPE_SLOTS;
        p->count--;
        pthread_cond_signal(&p->cv_empty);
        pthread_mutex_unlock(&p->mu);
    }
    /* Stopped inside an entry (the reader failed): drop its hash; the WAL
     * check's result is not used. */
    if (w.open)
        bundle_sha_free(&w.sha);
    v->wal_aborted = w.walk;
    return NULL;
}

/* One entry's bytes, as they come: counted against the unpack limit and
 * handed to the worker. Nothing is written to disk. */
static enum tl_bundle_verr stream_one(ver *v, struct archive *a, vpipe *p, ventry *e,
                                      uint64_t size) {
    pipe_msg(p, PK_BEGIN, e, size);
    enum tl_bundle_verr rc = TL_BV_OK;
    uint64_t got = 0;
    /* Bounded by the entry's size (libarchive stops at its end) and by the
     * unpack limit. */
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
        if (v->r->bytes + n > v->limit_bytes) {
            rc = vfail(v, TL_BV_UNPACK_LIMIT,
                       "%s: the bundle unpacks to more than %llu bytes (%llu compressed)", e->path,
                       (unsigned long long)v->limit_bytes,
                       (unsigned long long)v->r->compressed_bytes);
            break;
        }
        pipe_data(p, buf, n);
        got += n;
        v->r->bytes += n;
        if (v->o->progress != NULL)
            v->o->progress(v->o->progress_ctx, (uint64_t)archive_filter_bytes(a, -1),
                           v->r->compressed_bytes);
    }
    if (rc == TL_BV_OK)
        pipe_msg(p, PK_END, NULL, 0);
    return rc;
}

/* Reads the archive once, front to back. */
static enum tl_bundle_verr read_archive(ver *v, int fd) {
    vpipe *p = calloc(1, sizeof *p);
    if (p == NULL)
        return vfail(v, TL_BV_IO, "out of memory");
    for (unsigned i = 0; i < PIPE_SLOTS; i++) {
        p->slots[i].buf = malloc(PIPE_SLOT_BYTES);
        if (p->slots[i].buf == NULL) {
            for (unsigned k = 0; k < i; k++)
                free(p->slots[k].buf);
            free(p);
            return vfail(v, TL_BV_IO, "out of memory");
        }
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_full, NULL);
    pthread_cond_init(&p->cv_empty, NULL);
    worker_arg wa = {.v = v, .p = p};
    pthread_t th;
    bool threaded = pthread_create(&th, NULL, verify_worker, &wa) == 0;
    enum tl_bundle_verr rc = threaded ? TL_BV_OK : vfail(v, TL_BV_IO, "pthread_create failed");
    struct archive *a = rc == TL_BV_OK ? archive_read_new() : NULL;
    if (rc == TL_BV_OK && a == NULL)
        rc = vfail(v, TL_BV_IO, "libarchive: out of memory");
    if (a != NULL) {
        archive_read_support_filter_zstd(a);
        archive_read_support_format_tar(a);
        if (archive_read_open_fd(a, fd, BUNDLE_CHUNK) != ARCHIVE_OK)
            rc = vfail(v, TL_BV_NOT_A_BUNDLE, "%s", archive_error_string(a));
    }
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
        const char *pth = archive_entry_pathname(ae);
        if (pth == NULL || archive_entry_filetype(ae) != AE_IFREG || !path_safe(pth)) {
            rc = vfail(v, TL_BV_UNSAFE_PATH, "entry \"%.100s\"%s", pth != NULL ? pth : "(none)",
                       pth != NULL && archive_entry_filetype(ae) != AE_IFREG ? " is not a file"
                                                                             : "");
            break;
        }
        if (strcmp(pth, "MANIFEST.json") == 0 || strcmp(pth, "MANIFEST.sig") == 0) {
            bool is_m = pth[9] == 'j';
            if (is_m ? v->have_manifest : v->have_sig) {
                rc = vfail(v, TL_BV_DUPLICATE, "%s appears twice", pth);
                break;
            }
            if (is_m) {
                rc = read_small(v, a, v->manifest, TL_BUNDLE_MANIFEST_MAX, &v->manifest_len, pth);
                v->manifest[v->manifest_len] = '\0';
                v->have_manifest = true;
            } else {
                rc = read_small(v, a, (char *)v->sig, sizeof v->sig, &v->sig_len, pth);
                v->have_sig = true;
            }
            continue;
        }
        if (find_ent(v, pth) != NULL) {
            rc = vfail(v, TL_BV_DUPLICATE, "%s appears twice", pth);
            break;
        }
        if (v->n_ents == TL_BUNDLE_FILES_MAX) {
            rc = vfail(v, TL_BV_TOO_LARGE, "more than %u files", TL_BUNDLE_FILES_MAX);
            break;
        }
        la_int64_t declared = archive_entry_size(ae);
        if (declared < 0 || v->r->bytes + (uint64_t)declared > v->limit_bytes) {
            rc = vfail(v, TL_BV_UNPACK_LIMIT,
                       "%.100s: the bundle would unpack to more than %llu bytes (%llu compressed)",
                       pth, (unsigned long long)v->limit_bytes,
                       (unsigned long long)v->r->compressed_bytes);
            break;
        }
        ventry *e = &v->ents[v->n_ents++];
        memset(e, 0, sizeof *e);
        snprintf(e->path, sizeof e->path, "%s", pth);
        rc = stream_one(v, a, p, e, (uint64_t)declared);
    }
    if (a != NULL)
        archive_read_free(a);
    if (threaded) {
        pipe_msg(p, PK_STOP, NULL, 0);
        pthread_join(th, NULL);
    }
    /* From here the worker's results are ours (the join orders them). */
    if (rc == TL_BV_OK && wa.failed)
        rc = vfail(v, TL_BV_IO, "sha256: out of memory");
    if (rc == TL_BV_OK && v->ws != NULL && !v->wal_aborted)
        bw_stream_finish(v->ws);
    pthread_cond_destroy(&p->cv_empty);
    pthread_cond_destroy(&p->cv_full);
    pthread_mutex_destroy(&p->mu);
    for (unsigned i = 0; i < PIPE_SLOTS; i++)
        free(p->slots[i].buf);
    free(p);
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
    /* Positions are in the manifest; the scan needs only the bytes. */
    size_t dlen = v->ring_data.len;
    char *data = v->ring_data.p;
    v->ring_data.p = NULL;
    v->ring_data.len = 0;
    if (data == NULL)
        return;
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

/* The WAL check ran while the archive streamed; here its result meets what
 * the (signed) manifest recorded at export. */
static enum tl_bundle_verr check_wal(ver *v, bw_check *c) {
    const cJSON *sr = cJSON_GetObjectItemCaseSensitive(v->m, "seq_range");
    uint64_t from = 0, to = 0;
    if (!bundle_get_u64(sr, "requested_from", &from) || !bundle_get_u64(sr, "requested_to", &to))
        return vfail(v, TL_BV_BAD_MANIFEST, "MANIFEST.json has no seq_range");
    if (manifest_has_deg(v, tl_bundle_deg_name(TL_BUNDLE_DEG_XWAL1)))
        return TL_BV_OK; /* xwal1: copied whole, checked by `tallyctl wal verify` */
    if (!v->have_range)
        return vfail(v, TL_BV_LAYOUT, "no usable %s before the WAL segments", BUNDLE_RANGE_FILE);
    if (v->wal_layout_bad)
        return vfail(v, TL_BV_LAYOUT, "%s", v->wal_layout_why);
    if (c->from_seq != from || c->to_seq != to)
        return vfail(v, TL_BV_BAD_MANIFEST, "%s says seqs %llu..%llu, MANIFEST.json %llu..%llu",
                     BUNDLE_RANGE_FILE, (unsigned long long)c->from_seq,
                     (unsigned long long)c->to_seq, (unsigned long long)from,
                     (unsigned long long)to);
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
    const char *p = v->audit.p;
    const char *end = p != NULL ? p + v->audit.len : NULL;
    /* One line at a time over the held audit.jsonl (at most VERIFY_AUDIT_MAX
     * bytes): each pass moves past one newline or ends. */
    while (p != NULL && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t llen = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        cJSON *j = llen <= TL_AUDIT_LINE_MAX ? cJSON_ParseWithLength(p, llen) : NULL;
        p = nl != NULL ? nl + 1 : end;
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
        else if (!S_ISREG(st.st_mode))
            rc = vfail(v, TL_BV_UNREADABLE, "%s: not a regular file", path);
        else
            r->compressed_bytes = (uint64_t)st.st_size;
    }
    if (o->max_unpacked_bytes != 0) {
        v->limit_bytes = o->max_unpacked_bytes;
    } else {
        uint64_t c = r->compressed_bytes;
        v->limit_bytes = c > VERIFY_FLOOR / VERIFY_RATIO ? c * VERIFY_RATIO : VERIFY_FLOOR;
    }
    /* Read once; then the signature over MANIFEST.json before anything the
     * manifest says is trusted, then every file against it, then the WAL
     * check's result. */
    if (rc == TL_BV_OK)
        rc = read_archive(v, fd);
    if (rc == TL_BV_OK)
        rc = check_signature(v);
    if (rc == TL_BV_OK)
        manifest_facts(v);
    if (rc == TL_BV_OK)
        rc = check_files(v);
    if (rc == TL_BV_OK)
        rc = check_wal(v, &v->wal);
    if (rc == TL_BV_OK)
        divergence(v, &v->wal);
    if (fd >= 0)
        close(fd);
    bw_stream_free(v->ws);
    cJSON_Delete(v->m);
    free(v->ring);
    free(v->ring_data.p);
    free(v->audit.p);
    free(v->range.p);
    free(v->manifest);
    free(v->ents);
    free(v);
    r->elapsed_ns = mono_ns() - t0;
    return rc;
}
