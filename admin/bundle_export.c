/* bundle_export.c: one forensic bundle, staged, checked, archived, signed
 * (see bundle.h for the steps and the layout). */
#include "bundle_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/audit.h"
#include "core/assert.h"
#include "core/segment.h"
#include "core/xwal1.h"
#include "io/wal_dir.h"
#include "shm/ring.h"

/* Where an entry's bytes come from. */
enum entry_src {
    SRC_STAGED = 0, /* a file written under the staging directory */
    SRC_WAL,        /* a WAL segment, read from engine.wal_dir while archiving */
    SRC_SNAPSHOT,   /* a snapshot, read from bundle.snapshot_dir while archiving */
};

/* The most source files held open from listing to archiving: a segment the
 * engine retires meanwhile stays readable. Beyond this, opened when archived. */
#define HOLD_FDS_MAX 256u

/* One file of the bundle: its path inside, its size and hash once written. */
typedef struct entry {
    char path[BUNDLE_ARC_PATH];
    uint64_t size; /* SRC_WAL/SRC_SNAPSHOT: the size at listing, all that is read */
    uint8_t sha[32];
    uint8_t src;        /* enum entry_src */
    bool skipped;       /* a source that could not be opened when archived: not in the bundle */
    int fd;             /* SRC_WAL/SRC_SNAPSHOT: held open since listing, or -1 */
    uint64_t wal_first; /* SRC_WAL (native): the segment's name */
} entry;

typedef struct snap_pick {
    char name[256];
    uint64_t seq;
    bool have;
} snap_pick;

typedef struct exp {
    const tl_bundle_env *env;
    const tl_bundle_job *job;
    tl_bundle_progress *p;
    tl_bundle_result *r;
    char staging[TL_BUNDLE_PATH_MAX];
    char tmp_path[TL_BUNDLE_PATH_MAX];
    entry *files; /* TL_BUNDLE_FILES_MAX */
    uint32_t n_files;
    uint8_t *buf;   /* BUNDLE_CHUNK */
    int wal_dirfd;  /* engine.wal_dir while the export runs, or -1 */
    int snap_dirfd; /* bundle.snapshot_dir, or -1 */
    uint32_t held_fds;
    bw_stream *wal_stream; /* the WAL check, fed while segments are archived (native) */
    /* the ring, mapped read-only */
    void *ring_base;
    size_t ring_len;
    tl_ring_ctl ring_ctl; /* the control block as read */
    bool have_ring;
    tl_ring_header ring_hdr;
    /* what the manifest says */
    bw_check wal;
    uint64_t wal_source_bytes;
    snap_pick snaps[TL_BUNDLE_SNAPSHOTS];
    uint32_t ledger_replies;
    tl_ledger_wm *ledger; /* TL_BUNDLE_LEDGER_KEEP */
    uint64_t audit_lines;
    uint64_t finding_lines;
    char deg_first[TL_BUNDLE_DEG_COUNT][160];
    int out_errno; /* the archive's write callback */
    int out_fd;
} exp;

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

__attribute__((format(printf, 4, 5))) static enum tl_bundle_err
fail(exp *x, enum tl_bundle_err e, int sys_errno, const char *fmt, ...) {
    tl_bundle_result *r = x->r;
    if (r->err != TL_BUNDLE_OK)
        return (enum tl_bundle_err)r->err; /* the first failure is the one named */
    r->err = (uint8_t)e;
    r->sys_errno = sys_errno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    if (sys_errno != 0) {
        size_t n = strlen(r->detail);
        snprintf(r->detail + n, sizeof r->detail - n, ": %s", strerror(sys_errno));
    }
    return e;
}

/* A failure to write into the bundle directory. */
static enum tl_bundle_err fail_write(exp *x, int e, const char *what) {
    return fail(x, bundle_errno_class(e), e, "%s", what);
}

__attribute__((format(printf, 3, 4))) static void degrade(exp *x, enum tl_bundle_deg d,
                                                          const char *fmt, ...) {
    tl_bundle_result *r = x->r;
    char buf[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if ((r->degraded & (1u << d)) == 0)
        snprintf(x->deg_first[d], sizeof x->deg_first[d], "%s", buf);
    if (r->degraded == 0)
        snprintf(r->deg_detail, sizeof r->deg_detail, "%s: %s", tl_bundle_deg_name(d), buf);
    r->degraded |= 1u << d;
}

static bool cancelled(exp *x) {
    /* Relaxed: a request to stop soon; it orders nothing. */
    return x->p != NULL && atomic_load_explicit(&x->p->cancel, memory_order_relaxed);
}

static void phase(exp *x, enum tl_bundle_phase ph) {
    if (x->p != NULL)
        atomic_store_explicit(&x->p->phase, (uint32_t)ph, memory_order_relaxed);
}

static void progress(exp *x, uint64_t add) {
    /* Relaxed: a progress figure for people; only this thread writes it. */
    if (x->p != NULL)
        atomic_fetch_add_explicit(&x->p->bytes_done, add, memory_order_relaxed);
}

static void progress_total(exp *x, uint64_t add) {
    if (x->p != NULL)
        atomic_fetch_add_explicit(&x->p->bytes_total, add, memory_order_relaxed);
}

/* A staged file written through stdio (its size known once closed): counted
 * in the progress as staged, with its archiving still to come. */
static void progress_staged(exp *x, const char *arc) {
    char path[TL_BUNDLE_PATH_MAX + BUNDLE_ARC_PATH];
    snprintf(path, sizeof path, "%s/%s", x->staging, arc);
    struct stat st;
    if (stat(path, &st) == 0) {
        progress_total(x, 2 * (uint64_t)st.st_size);
        progress(x, (uint64_t)st.st_size);
    }
}

/* Registers a staged file; its size and hash are filled while archiving. */
static enum tl_bundle_err add_file(exp *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum tl_bundle_err add_file(exp *x, const char *fmt, ...) {
    if (x->n_files == TL_BUNDLE_FILES_MAX)
        return fail(x, TL_BUNDLE_ERR_TOO_LARGE, 0, "more than %u files", TL_BUNDLE_FILES_MAX);
    entry *e = &x->files[x->n_files];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->path, sizeof e->path, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof e->path)
        return fail(x, TL_BUNDLE_ERR_TOO_LARGE, 0, "a path inside the bundle is too long");
    e->src = SRC_STAGED;
    e->fd = -1;
    x->n_files++;
    return TL_BUNDLE_OK;
}

static void staged_path(const exp *x, const char *arc, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", x->staging, arc);
}

/* Writes a small staged file from memory. */
static enum tl_bundle_err stage_bytes(exp *x, const char *arc, const void *p, size_t n) {
    char path[TL_BUNDLE_PATH_MAX + BUNDLE_ARC_PATH];
    staged_path(x, arc, path, sizeof path);
    if (bundle_write_file(path, p, n) != 0)
        return fail_write(x, errno, arc);
    progress_total(x, 2 * (uint64_t)n); /* staged, then archived */
    progress(x, n);
    return add_file(x, "%s", arc);
}

/* ---- the staging directory ---- */

static int mkdir_p(const char *path) {
    char tmp[TL_BUNDLE_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    /* One mkdir per component: bounded by the path's length. */
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static enum tl_bundle_err make_staging(exp *x) {
    const char *dir = x->env->dir;
    if (dir == NULL || dir[0] == '\0')
        return fail(x, TL_BUNDLE_ERR_DIR, 0, "bundle.dir is empty");
    if (mkdir_p(dir) != 0)
        return fail(x, errno == ENOSPC ? TL_BUNDLE_ERR_DISK_FULL : TL_BUNDLE_ERR_DIR, errno, "%s",
                    dir);
    if (snprintf(x->staging, sizeof x->staging, "%s/.staging-%s", dir, x->job->id) >=
            (int)sizeof x->staging ||
        snprintf(x->r->path, sizeof x->r->path, "%s/%s", dir, x->job->name) >=
            (int)sizeof x->r->path ||
        snprintf(x->tmp_path, sizeof x->tmp_path, "%s/.%s.tmp", dir, x->job->name) >=
            (int)sizeof x->tmp_path)
        return fail(x, TL_BUNDLE_ERR_DIR, 0, "bundle.dir path too long");
    bundle_rm_tree(x->staging); /* a previous try of this id */
    if (mkdir(x->staging, 0700) != 0)
        return fail(x, errno == ENOSPC ? TL_BUNDLE_ERR_DISK_FULL : TL_BUNDLE_ERR_DIR, errno, "%s",
                    x->staging);
    for (unsigned i = 0; i < BUNDLE_STAGE_DIRS; i++) {
        char p[TL_BUNDLE_PATH_MAX + 16];
        snprintf(p, sizeof p, "%s/%s", x->staging, bundle_dirs[i]);
        if (mkdir(p, 0700) != 0)
            return fail(x, errno == ENOSPC ? TL_BUNDLE_ERR_DISK_FULL : TL_BUNDLE_ERR_DIR, errno,
                        "%s", p);
    }
    return TL_BUNDLE_OK;
}

/* ---- the ring ---- */

static void ring_unmap(exp *x) {
    if (x->ring_base != NULL)
        munmap(x->ring_base, x->ring_len);
    x->ring_base = NULL;
}

/* Maps the ring read-only: a mapping of its own, apart from the hot loop's,
 * that never writes. */
static void ring_map(exp *x) {
    const char *name = x->env->ring_name;
    if (name == NULL || name[0] == '\0') {
        degrade(x, TL_BUNDLE_DEG_RING, "no ring (engine.ring is empty)");
        return;
    }
    char path[TL_RING_PATH_MAX];
    bool is_shm = false;
    if (tl_ring_resolve_name(name, path, sizeof path, &is_shm) != TL_RING_OK) {
        degrade(x, TL_BUNDLE_DEG_RING, "engine.ring %s: not a ring name", name);
        return;
    }
    int fd = tl_ring_obj_open(path, is_shm, O_RDONLY, 0);
    if (fd < 0) {
        degrade(x, TL_BUNDLE_DEG_RING, "%s: %s", path, strerror(errno));
        return;
    }
    struct stat st;
    void *ctl = MAP_FAILED;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= TL_RING_CONTROL_BYTES)
        ctl = mmap(NULL, TL_RING_CONTROL_BYTES, PROT_READ, MAP_SHARED, fd, 0);
    if (ctl == MAP_FAILED) {
        degrade(x, TL_BUNDLE_DEG_RING, "%s: cannot map its control block", path);
        close(fd);
        return;
    }
    tl_ring_header_load(ctl, &x->ring_hdr);
    munmap(ctl, TL_RING_CONTROL_BYTES);
    enum tl_ring_err he = tl_ring_header_check(&x->ring_hdr);
    uint64_t len = TL_RING_CONTROL_BYTES + x->ring_hdr.capacity;
    if (he != TL_RING_OK || (uint64_t)st.st_size < len) {
        degrade(x, TL_BUNDLE_DEG_RING, "%s: %s", path,
                he != TL_RING_OK ? tl_ring_err_name(he) : "smaller than its capacity");
        close(fd);
        return;
    }
    void *base = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        degrade(x, TL_BUNDLE_DEG_RING, "%s: mmap: %s", path, strerror(errno));
        return;
    }
    x->ring_base = base;
    x->ring_len = (size_t)len;
    x->have_ring = true;
}

/* The engine's durable seq, from our read-only mapping. */
static uint64_t ring_durable_seq(const exp *x) {
    const tl_ring_ctl *c = x->ring_base;
    /* Acquire: pairs with the producer's release of the seqlock's fields; a
     * torn pair only delays the settle wait by one poll. */
    return atomic_load_explicit(&c->wal_durable_seq, memory_order_acquire);
}

static void settle(exp *x) {
    uint32_t ms = x->env->settle_ms;
    if (!x->have_ring || ms == 0)
        return;
    phase(x, TL_BUNDLE_PH_SETTLING);
    uint64_t deadline = mono_ns() + (uint64_t)ms * 1000000ull;
    /* At most settle_ms / 20 polls. */
    while (ring_durable_seq(x) < x->job->to_seq && mono_ns() < deadline && !cancelled(x)) {
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
}

static enum tl_bundle_err stage_ring(exp *x) {
    if (!x->have_ring)
        return TL_BUNDLE_OK;
    /* The control block word by word with relaxed atomic loads (every field
     * there is an atomic of the other process). */
    const _Atomic uint64_t *src = x->ring_base;
    uint64_t *dst = (uint64_t *)&x->ring_ctl;
    for (size_t i = 0; i < TL_RING_CONTROL_BYTES / 8; i++)
        dst[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
    enum tl_bundle_err e = stage_bytes(x, "ring/control.bin", &x->ring_ctl, TL_RING_CONTROL_BYTES);
    if (e != TL_BUNDLE_OK)
        return e;
    /* The data region as it is now: the producer keeps writing, so this is a
     * moment's picture, not a consistent cut (every record in it carries its
     * own checksum; verify trusts only records that check). */
    char path[TL_BUNDLE_PATH_MAX + BUNDLE_ARC_PATH];
    staged_path(x, "ring/data.bin", path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail_write(x, errno, "ring/data.bin");
    const uint8_t *data = (const uint8_t *)x->ring_base + TL_RING_CONTROL_BYTES;
    uint64_t cap = x->ring_hdr.capacity;
    progress_total(x, 2 * cap);
    /* Through a private buffer: write(2) from a shared mapping another
     * process changes would fault on nothing, but a copy keeps each chunk's
     * bytes still while the kernel copies them. */
    for (uint64_t off = 0; off < cap; off += BUNDLE_CHUNK) {
        size_t n = cap - off < BUNDLE_CHUNK ? (size_t)(cap - off) : BUNDLE_CHUNK;
        memcpy(x->buf, data + off, n);
        if (bundle_write_all(fd, x->buf, n) != 0) {
            int err = errno;
            close(fd);
            return fail_write(x, err, "ring/data.bin");
        }
        progress(x, n);
    }
    if (close(fd) != 0)
        return fail_write(x, errno, "ring/data.bin");
    return add_file(x, "ring/data.bin");
}

/* ---- WAL segments ---- */

/* Lists one source file (a segment or a snapshot) for the archive: its
 * size now is all that will be read (a segment the engine still appends to
 * is cut there), and its bytes go straight into the archive, hashed and
 * checked on the way, with no staged copy. The file is held open (up to
 * HOLD_FDS_MAX) so that one retired meanwhile stays readable. A source that
 * cannot be opened degrades with d. */
static enum tl_bundle_err list_source(exp *x, int dirfd, const char *name, const char *arc,
                                      enum entry_src src, enum tl_bundle_deg d, uint64_t *size) {
    *size = 0;
    int in = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = in < 0 ? errno : EISDIR;
        if (in >= 0)
            close(in);
        degrade(x, d, "%s: %s", arc, strerror(e));
        return TL_BUNDLE_OK;
    }
    enum tl_bundle_err e = add_file(x, "%s", arc);
    if (e != TL_BUNDLE_OK) {
        close(in);
        return e;
    }
    entry *f = &x->files[x->n_files - 1];
    f->src = (uint8_t)src;
    f->size = (uint64_t)st.st_size;
    if (x->held_fds < HOLD_FDS_MAX) {
        f->fd = in;
        x->held_fds++;
    } else {
        close(in);
    }
    progress_total(x, f->size); /* one pass: read, hash, compress */
    *size = f->size;
    return TL_BUNDLE_OK;
}

static enum tl_bundle_err stage_segments(exp *x, int dirfd, const uint64_t *firsts, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        char name[TL_SEG_NAME_BYTES + 1], arc[BUNDLE_ARC_PATH];
        tl_seg_name(name, sizeof name, firsts[i]);
        snprintf(arc, sizeof arc, "wal/%s", name);
        uint64_t size = 0;
        uint32_t before = x->n_files;
        enum tl_bundle_err e =
            list_source(x, dirfd, name, arc, SRC_WAL, TL_BUNDLE_DEG_SEGMENT, &size);
        if (e != TL_BUNDLE_OK)
            return e;
        if (x->n_files > before)
            x->files[x->n_files - 1].wal_first = firsts[i];
        x->wal_source_bytes += size;
        if (x->wal_source_bytes > TL_BUNDLE_WAL_MAX_BYTES)
            return fail(x, TL_BUNDLE_ERR_TOO_LARGE, 0, "more than %llu WAL bytes",
                        (unsigned long long)TL_BUNDLE_WAL_MAX_BYTES);
    }
    return TL_BUNDLE_OK;
}

static enum tl_bundle_err stage_wal(exp *x) {
    int dirfd = open(x->env->wal_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return fail(x, TL_BUNDLE_ERR_WAL_DIR, errno, "%s", x->env->wal_dir);
    enum tl_bundle_err e;
    if (x->env->dialect == TL_DIALECT_XWAL1) {
        /* xwal1 names segments by index, not seq: which ones hold the range is
         * only known by reading them, so every segment is copied. */
        degrade(x, TL_BUNDLE_DEG_XWAL1, "every xwal1 segment copied");
        DIR *dd = fdopendir(dup(dirfd));
        e = dd == NULL ? fail(x, TL_BUNDLE_ERR_WAL_DIR, errno, "%s", x->env->wal_dir)
                       : TL_BUNDLE_OK;
        struct dirent *de;
        uint32_t count = 0;
        while (e == TL_BUNDLE_OK && dd != NULL && (de = readdir(dd)) != NULL) {
            uint64_t idx;
            if (!tl_xwal1_segment_name_parse(de->d_name, strlen(de->d_name), &idx))
                continue;
            if (++count > TL_BUNDLE_SEGMENTS_MAX) {
                e = fail(x, TL_BUNDLE_ERR_TOO_LARGE, 0, "more than %u segments",
                         TL_BUNDLE_SEGMENTS_MAX);
                break;
            }
            char arc[BUNDLE_ARC_PATH];
            snprintf(arc, sizeof arc, "wal/%.100s", de->d_name);
            uint64_t size = 0;
            e = list_source(x, dirfd, de->d_name, arc, SRC_WAL, TL_BUNDLE_DEG_SEGMENT, &size);
            x->wal_source_bytes += size;
        }
        if (dd != NULL)
            closedir(dd);
        x->wal_dirfd = dirfd; /* read from while archiving; closed at the end */
        return e;
    }
    tl_wal_dir d;
    if (tl_wal_dir_init(&d, TL_WAL_DIR_DEFAULT_MAX) != TL_WAL_OK) {
        close(dirfd);
        return fail(x, TL_BUNDLE_ERR_NOMEM, 0, "the WAL directory listing");
    }
    enum tl_wal_err we = tl_wal_dir_scan(&d, dirfd);
    if (we != TL_WAL_OK) {
        e = fail(x, TL_BUNDLE_ERR_WAL_DIR, d.ioerr.sys_errno, "%s: %s", x->env->wal_dir,
                 tl_wal_err_name(we));
        tl_wal_dir_free(&d);
        close(dirfd);
        return e;
    }
    /* Segment i holds [first_i, first_{i+1} - 1]; the newest is open-ended. */
    uint32_t lo = d.count, hi = 0;
    for (uint32_t i = 0; i < d.count; i++) {
        uint64_t first = d.first_seqs[i];
        uint64_t last = i + 1 < d.count ? d.first_seqs[i + 1] - 1 : UINT64_MAX;
        if (first <= x->job->to_seq && last >= x->job->from_seq) {
            if (lo == d.count)
                lo = i;
            hi = i;
        }
    }
    e = TL_BUNDLE_OK;
    if (lo == d.count)
        degrade(x, TL_BUNDLE_DEG_WAL_RANGE, "no segment in %s holds seqs %llu..%llu",
                x->env->wal_dir, (unsigned long long)x->job->from_seq,
                (unsigned long long)x->job->to_seq);
    else if (hi - lo + 1 > TL_BUNDLE_SEGMENTS_MAX)
        e = fail(x, TL_BUNDLE_ERR_TOO_LARGE, 0, "%u segments overlap the range (limit %u)",
                 hi - lo + 1, TL_BUNDLE_SEGMENTS_MAX);
    else
        e = stage_segments(x, dirfd, d.first_seqs + lo, hi - lo + 1);
    tl_wal_dir_free(&d);
    x->wal_dirfd = dirfd; /* read from while archiving; closed at the end */
    return e;
}

/* ---- snapshots ---- */

/* The seq a snapshot's name carries: its last run of decimal digits. */
static bool snapshot_seq(const char *name, uint64_t *seq) {
    const char *end = NULL, *start = NULL;
    for (const char *p = name; *p; p++) {
        if (*p >= '0' && *p <= '9') {
            if (start == NULL || (end != NULL && end != p))
                start = p;
            end = p + 1;
        }
    }
    if (start == NULL || end - start > 20)
        return false;
    uint64_t v = 0;
    for (const char *p = start; p < end; p++) {
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *seq = v;
    return true;
}

static enum tl_bundle_err stage_snapshots(exp *x) {
    const char *sd = x->env->snapshot_dir;
    if (sd == NULL || sd[0] == '\0') {
        degrade(x, TL_BUNDLE_DEG_SNAPSHOT_DIR, "bundle.snapshot_dir is not set");
        return TL_BUNDLE_OK;
    }
    int dirfd = open(sd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dd = dirfd >= 0 ? fdopendir(dirfd) : NULL;
    if (dd == NULL) {
        degrade(x, TL_BUNDLE_DEG_SNAPSHOT_DIR, "%s: %s", sd, strerror(errno));
        if (dirfd >= 0)
            close(dirfd);
        return TL_BUNDLE_OK;
    }
    /* The newest at or below from_seq (where a replay of the range starts)
     * and the oldest above it. One pass over the directory. */
    snap_pick *below = &x->snaps[0], *above = &x->snaps[1];
    struct dirent *de;
    while ((de = readdir(dd)) != NULL) {
        uint64_t seq;
        if (!bundle_name_safe(de->d_name) || strlen(de->d_name) >= sizeof below->name ||
            !snapshot_seq(de->d_name, &seq))
            continue;
        snap_pick *p = seq <= x->job->from_seq ? below : above;
        bool better = !p->have || (p == below ? seq > p->seq : seq < p->seq);
        if (better) {
            snprintf(p->name, sizeof p->name, "%s", de->d_name);
            p->seq = seq;
            p->have = true;
        }
    }
    enum tl_bundle_err e = TL_BUNDLE_OK;
    for (unsigned i = 0; i < TL_BUNDLE_SNAPSHOTS && e == TL_BUNDLE_OK; i++) {
        if (!x->snaps[i].have)
            continue;
        char arc[BUNDLE_ARC_PATH];
        if (snprintf(arc, sizeof arc, "snapshots/%s", x->snaps[i].name) >= (int)sizeof arc) {
            degrade(x, TL_BUNDLE_DEG_SNAPSHOT, "a snapshot name is too long");
            x->snaps[i].have = false;
            continue;
        }
        uint64_t size = 0;
        uint32_t before = x->n_files;
        e = list_source(x, dirfd, x->snaps[i].name, arc, SRC_SNAPSHOT, TL_BUNDLE_DEG_SNAPSHOT,
                        &size);
        if (x->n_files == before)
            x->snaps[i].have = false;
    }
    /* Kept open to read the snapshots while archiving (the DIR's own fd is
     * closed by closedir). */
    x->snap_dirfd = dup(dirfd);
    if (x->snap_dirfd < 0 && e == TL_BUNDLE_OK)
        e = fail(x, TL_BUNDLE_ERR_IO, errno, "dup of %s", sd);
    closedir(dd);
    return e;
}

/* ---- ledger, audit, config, metrics ---- */

static enum tl_bundle_err stage_ledger(exp *x) {
    if (x->env->ledger == NULL)
        return stage_bytes(x, "ledger/watermarks.jsonl", "", 0);
    x->ledger_replies = x->env->ledger(x->env->ledger_ctx, x->ledger, TL_BUNDLE_LEDGER_KEEP);
    TL_ASSERT(x->ledger_replies <= TL_BUNDLE_LEDGER_KEEP);
    char path[TL_BUNDLE_PATH_MAX + BUNDLE_ARC_PATH];
    staged_path(x, "ledger/watermarks.jsonl", path, sizeof path);
    FILE *f = fopen(path, "wxe");
    if (f == NULL)
        return fail_write(x, errno, "ledger/watermarks.jsonl");
    for (uint32_t i = 0; i < x->ledger_replies; i++) {
        const tl_ledger_wm *w = &x->ledger[i];
        fprintf(f,
                "{\"poll_id\":\"%llu\",\"recv_ns\":\"%llu\",\"ledger_seq\":\"%llu\","
                "\"checksum\":\"%016llx\",\"ts_ns\":\"%llu\",\"total\":{\"trades\":\"%llu\","
                "\"qty\":\"%llu\",\"notional\":\"%llu\"},\"symbols\":[",
                (unsigned long long)w->poll_id, (unsigned long long)w->recv_real_ns,
                (unsigned long long)w->ledger_seq, (unsigned long long)w->checksum,
                (unsigned long long)w->ts_ns, (unsigned long long)w->total.trades,
                (unsigned long long)w->total.qty, (unsigned long long)w->total.notional);
        uint32_t ns =
            w->symbol_count < TL_LEDGER_SYMBOLS_MAX ? w->symbol_count : TL_LEDGER_SYMBOLS_MAX;
        for (uint32_t k = 0; k < ns; k++)
            fprintf(f, "%s{\"id\":%u,\"trades\":\"%llu\",\"qty\":\"%llu\",\"notional\":\"%llu\"}",
                    k ? "," : "", w->symbols[k].symbol, (unsigned long long)w->symbols[k].f.trades,
                    (unsigned long long)w->symbols[k].f.qty,
                    (unsigned long long)w->symbols[k].f.notional);
        fputs("]}\n", f);
    }
    bool bad = ferror(f) != 0;
    int e = errno;
    if (fclose(f) != 0 || bad)
        return fail_write(x, bad ? e : errno, "ledger/watermarks.jsonl");
    progress_staged(x, "ledger/watermarks.jsonl");
    return add_file(x, "ledger/watermarks.jsonl");
}

static bool incident_of_job(const tl_bundle_job *j, uint64_t inc) {
    for (uint32_t i = 0; i < j->n_incidents; i++)
        if (j->incidents[i] == inc)
            return true;
    return false;
}

/* The value of "ts_ns":"<digits>" in an audit line (keys are sorted, no
 * whitespace: the writer's own form). 0 if absent. */
static uint64_t line_ts(const char *line) {
    const char *p = strstr(line, "\"ts_ns\":\"");
    if (p == NULL)
        return 0;
    return strtoull(p + 9, NULL, 10);
}

/* Is this FINDING line one of the job's? Writes the finding object. */
static bool finding_of_job(const exp *x, const char *line, size_t len, FILE *out) {
    if (strstr(line, "\"event\":\"FINDING\"") == NULL)
        return false;
    cJSON *j = cJSON_ParseWithLength(line, len);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "finding");
    bool mine = false;
    if (cJSON_IsObject(f)) {
        uint64_t inc = 0, seq = 0;
        bool has_inc = bundle_get_u64(f, "incident", &inc);
        (void)bundle_get_u64(f, "seq", &seq);
        if (x->job->n_incidents > 0)
            mine = has_inc && incident_of_job(x->job, inc);
        else
            mine = seq >= x->job->from_seq && seq <= x->job->to_seq;
        if (mine) {
            char *s = cJSON_PrintUnformatted(f);
            if (s != NULL) {
                fputs(s, out);
                fputc('\n', out);
                cJSON_free(s);
            }
        }
    }
    cJSON_Delete(j);
    return mine;
}

/* The most directory entries audit_files looks at: far beyond any audit
 * directory tally makes (rotations are counted in the tens). */
#define AUDIT_DIR_SCAN_MAX (1u << 20)

/* audit.<n>.jsonl with the highest rotation numbers (the newest: audit.c
 * numbers rotations upwards), oldest first, then audit.jsonl. Every entry is
 * looked at, whatever the directory order: a full table drops its lowest
 * number when a higher one comes. *left_out counts the rotations not kept.
 * Returns how many names, or UINT32_MAX if the directory cannot be read. */
static uint32_t audit_files(const char *dir, char names[][64], uint32_t max, uint64_t *left_out) {
    TL_ASSERT(max >= 2 && max <= TL_BUNDLE_AUDIT_FILES);
    *left_out = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return UINT32_MAX;
    uint64_t nums[TL_BUNDLE_AUDIT_FILES];
    uint32_t n = 0, keep = max - 1; /* one slot for audit.jsonl */
    struct dirent *de;
    for (uint32_t seen = 0; seen < AUDIT_DIR_SCAN_MAX && (de = readdir(d)) != NULL; seen++) {
        unsigned long long k;
        char tail[8];
        if (sscanf(de->d_name, "audit.%llu.jsonl%7s", &k, tail) != 1)
            continue;
        if (n == keep) {
            /* Full: names[0] holds the lowest number kept. */
            (*left_out)++;
            if (k <= nums[0])
                continue;
            memmove(nums, nums + 1, (n - 1) * sizeof nums[0]);
            memmove(names[0], names[1], (size_t)(n - 1) * 64);
            n--;
        }
        /* Insertion by rotation number, ascending. */
        uint32_t at = n;
        while (at > 0 && nums[at - 1] > k) {
            nums[at] = nums[at - 1];
            memcpy(names[at], names[at - 1], 64);
            at--;
        }
        nums[at] = k;
        snprintf(names[at], 64, "%.63s", de->d_name);
        n++;
        TL_ASSERT(n <= keep);
    }
    closedir(d);
    snprintf(names[n++], 64, "audit.jsonl");
    return n;
}

static enum tl_bundle_err stage_audit(exp *x) {
    char apath[TL_BUNDLE_PATH_MAX + BUNDLE_ARC_PATH], fpath[TL_BUNDLE_PATH_MAX + BUNDLE_ARC_PATH];
    staged_path(x, "audit.jsonl", apath, sizeof apath);
    staged_path(x, "findings.jsonl", fpath, sizeof fpath);
    FILE *ao = fopen(apath, "wxe");
    FILE *fo = ao != NULL ? fopen(fpath, "wxe") : NULL;
    if (ao == NULL || fo == NULL) {
        int e = errno;
        if (ao != NULL)
            fclose(ao);
        return fail_write(x, e, "audit.jsonl");
    }
    const char *dir = x->env->audit_dir;
    char names[TL_BUNDLE_AUDIT_FILES][64];
    uint64_t left_out = 0;
    uint32_t n = dir != NULL && dir[0] != '\0'
                     ? audit_files(dir, names, TL_BUNDLE_AUDIT_FILES, &left_out)
                     : UINT32_MAX;
    if (n == UINT32_MAX)
        degrade(x, TL_BUNDLE_DEG_AUDIT, "%s: %s", dir != NULL && dir[0] ? dir : "(none)",
                dir != NULL && dir[0] ? strerror(errno) : "no audit directory");
    bool first_read = true; /* the oldest rotation kept decides about the left-out ones */
    char *line = malloc(TL_AUDIT_LINE_MAX + 2);
    uint64_t scanned = 0;
    for (uint32_t i = 0; line != NULL && n != UINT32_MAX && i < n; i++) {
        char p[TL_BUNDLE_PATH_MAX + 80];
        if (snprintf(p, sizeof p, "%.*s/%s", (int)TL_BUNDLE_PATH_MAX, dir, names[i]) >=
            (int)sizeof p)
            continue;
        struct stat st;
        if (stat(p, &st) != 0)
            continue; /* rotated away meanwhile */
        uint64_t mtime = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec;
        /* The rotations left out are older than this one: if this one was
         * last written inside the window, they may hold window lines too. */
        if (first_read && left_out > 0 && mtime >= x->job->window_from_real_ns)
            degrade(x, TL_BUNDLE_DEG_AUDIT_ROT,
                    "%llu older audit rotations not read (the newest %u read, from %s)",
                    (unsigned long long)left_out, TL_BUNDLE_AUDIT_FILES - 1, names[i]);
        first_read = false;
        if (mtime < x->job->window_from_real_ns)
            continue; /* every line in it is older than the window */
        FILE *in = fopen(p, "re");
        if (in == NULL) {
            degrade(x, TL_BUNDLE_DEG_AUDIT, "%s: %s", names[i], strerror(errno));
            continue;
        }
        /* Line by line; a line longer than the writer's limit is skipped, and
         * the last line without its newline (being written) is left out. */
        while (scanned < TL_BUNDLE_AUDIT_MAX && fgets(line, TL_AUDIT_LINE_MAX + 2, in) != NULL) {
            size_t len = strlen(line);
            scanned += len;
            if (len == 0 || line[len - 1] != '\n')
                continue;
            if (line_ts(line) < x->job->window_from_real_ns)
                continue;
            fwrite(line, 1, len, ao);
            x->audit_lines++;
            if (finding_of_job(x, line, len - 1, fo))
                x->finding_lines++;
        }
        fclose(in);
    }
    free(line);
    bool bad = ferror(ao) || ferror(fo);
    int e = errno;
    bool closed = fclose(ao) == 0;
    closed = fclose(fo) == 0 && closed;
    if (bad || !closed)
        return fail_write(x, bad ? e : errno, "audit.jsonl");
    progress_staged(x, "findings.jsonl");
    progress_staged(x, "audit.jsonl");
    enum tl_bundle_err r = add_file(x, "findings.jsonl");
    return r != TL_BUNDLE_OK ? r : add_file(x, "audit.jsonl");
}

static enum tl_bundle_err stage_config(exp *x) {
    if (x->env->config_text == NULL) {
        degrade(x, TL_BUNDLE_DEG_CONFIG, "the config could not be read or redacted at start");
        return TL_BUNDLE_OK;
    }
    enum tl_bundle_err e =
        stage_bytes(x, "config/tally.json", x->env->config_text, x->env->config_len);
    if (e != TL_BUNDLE_OK)
        return e;
    return stage_bytes(x, "config/redactions.json", x->env->redactions_text,
                       x->env->redactions_len);
}

static enum tl_bundle_err stage_metrics(exp *x) {
    if (x->env->metrics == NULL) {
        degrade(x, TL_BUNDLE_DEG_METRICS, "no metrics source");
        return TL_BUNDLE_OK;
    }
    char *buf = malloc(TL_BUNDLE_METRICS_MAX);
    size_t n = buf != NULL ? x->env->metrics(x->env->metrics_ctx, buf, TL_BUNDLE_METRICS_MAX) : 0;
    enum tl_bundle_err e = TL_BUNDLE_OK;
    if (n == 0)
        degrade(x, TL_BUNDLE_DEG_METRICS, "no scrape in time");
    else
        e = stage_bytes(x, "metrics.prom", buf, n);
    free(buf);
    return e;
}

/* ---- the archive ---- */

static la_ssize_t out_write(struct archive *a, void *ctx, const void *buf, size_t n) {
    (void)a;
    exp *x = ctx;
    if (bundle_write_all(x->out_fd, buf, n) != 0) {
        x->out_errno = errno;
        archive_set_error(a, errno, "write: %s", strerror(errno));
        return -1;
    }
    return (la_ssize_t)n;
}

static enum tl_bundle_err arc_fail(exp *x, struct archive *a, const char *what) {
    if (x->out_errno != 0)
        return fail_write(x, x->out_errno, what);
    const char *s = archive_error_string(a);
    return fail(x, TL_BUNDLE_ERR_ARCHIVE, 0, "%s: %s", what, s != NULL ? s : "?");
}

static enum tl_bundle_err arc_header(exp *x, struct archive *a, const char *path, uint64_t size,
                                     time_t mtime) {
    struct archive_entry *e = archive_entry_new();
    if (e == NULL)
        return fail(x, TL_BUNDLE_ERR_NOMEM, 0, "archive entry");
    archive_entry_set_pathname(e, path);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0400);
    archive_entry_set_mtime(e, mtime, 0);
    int rc = archive_write_header(a, e);
    archive_entry_free(e);
    return rc == ARCHIVE_OK ? TL_BUNDLE_OK : arc_fail(x, a, path);
}

static enum tl_bundle_err arc_data(exp *x, struct archive *a, const void *p, size_t n,
                                   const char *path) {
    const uint8_t *b = p;
    /* libarchive takes what it is given, or fails. */
    while (n > 0) {
        la_ssize_t w = archive_write_data(a, b, n);
        if (w <= 0)
            return arc_fail(x, a, path);
        b += w;
        n -= (size_t)w;
    }
    return TL_BUNDLE_OK;
}

/* Opens an entry's bytes: the staged file, or the source held since
 * listing (else opened now). false with f->skipped when a source is gone. */
static enum tl_bundle_err arc_open(exp *x, entry *f, int *fd_out) {
    *fd_out = -1;
    if (f->src == SRC_STAGED) {
        char path[TL_BUNDLE_PATH_MAX + BUNDLE_ARC_PATH];
        staged_path(x, f->path, path, sizeof path);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            return fail(x, TL_BUNDLE_ERR_IO, e, "staged %s", f->path);
        }
        f->size = (uint64_t)st.st_size;
        *fd_out = fd;
        return TL_BUNDLE_OK;
    }
    if (f->fd >= 0) {
        *fd_out = f->fd;
        f->fd = -1;
        TL_ASSERT(x->held_fds > 0);
        x->held_fds--;
        return TL_BUNDLE_OK;
    }
    int dirfd = f->src == SRC_WAL ? x->wal_dirfd : x->snap_dirfd;
    const char *name = strchr(f->path, '/');
    TL_ASSERT(name != NULL && dirfd >= 0);
    int fd = openat(dirfd, name + 1, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        degrade(x, f->src == SRC_WAL ? TL_BUNDLE_DEG_SEGMENT : TL_BUNDLE_DEG_SNAPSHOT,
                "%s: %s (gone before it was archived)", f->path, strerror(errno));
        f->skipped = true;
        for (unsigned i = 0; f->src == SRC_SNAPSHOT && i < TL_BUNDLE_SNAPSHOTS; i++)
            if (x->snaps[i].have && strcmp(x->snaps[i].name, name + 1) == 0)
                x->snaps[i].have = false;
        progress(x, f->size);
        return TL_BUNDLE_OK;
    }
    *fd_out = fd;
    return TL_BUNDLE_OK;
}

/* One file into the archive, hashed (and, for a native WAL segment, checked)
 * on the way: one read of each byte. The tar header says the size first, so
 * a source that reads short of the size it had at listing (it shrank, or a
 * read failed) is zero-filled to that size and named as a degradation: the
 * bundle says exactly what it holds, and verify reads the same bytes. */
static enum tl_bundle_err arc_file(exp *x, struct archive *a, entry *f, time_t mtime) {
    int fd = -1;
    enum tl_bundle_err e = arc_open(x, f, &fd);
    if (e != TL_BUNDLE_OK || f->skipped)
        return e;
    bool source = f->src != SRC_STAGED;
    e = arc_header(x, a, f->path, f->size, mtime);
    bundle_sha sha;
    if (e == TL_BUNDLE_OK && !bundle_sha_init(&sha))
        e = fail(x, TL_BUNDLE_ERR_NOMEM, 0, "sha256");
    else if (e == TL_BUNDLE_OK) {
        bool walk = f->src == SRC_WAL && x->wal_stream != NULL;
        if (walk) {
            /* Listed in ascending name order (tl_wal_dir): never refused. */
            int rc = bw_stream_seg_begin(x->wal_stream, f->wal_first, f->size);
            TL_ASSERT(rc == 0);
        }
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        bool short_read = false;
        /* At most size / chunk + 1 reads. */
        for (uint64_t off = 0; off < f->size && e == TL_BUNDLE_OK; off += BUNDLE_CHUNK) {
            if (cancelled(x)) {
                e = fail(x, TL_BUNDLE_ERR_CANCELLED, 0, "stopped while writing %s", f->path);
                break;
            }
            size_t want = f->size - off < BUNDLE_CHUNK ? (size_t)(f->size - off) : BUNDLE_CHUNK;
            ssize_t n = short_read ? 0 : bundle_pread_full(fd, x->buf, want, off);
            if (n != (ssize_t)want && !source) {
                e = fail(x, TL_BUNDLE_ERR_IO, n < 0 ? errno : 0, "staged %s: short read", f->path);
                break;
            }
            if (n != (ssize_t)want) {
                if (!short_read)
                    degrade(x, f->src == SRC_WAL ? TL_BUNDLE_DEG_SEGMENT : TL_BUNDLE_DEG_SNAPSHOT,
                            "%s: %s at offset %llu of %llu: zero-filled to the listed size",
                            f->path, n < 0 ? strerror(errno) : "shorter than listed",
                            (unsigned long long)(off + (n > 0 ? (uint64_t)n : 0)),
                            (unsigned long long)f->size);
                short_read = true;
                size_t got = n > 0 ? (size_t)n : 0;
                memset(x->buf + got, 0, want - got);
            }
            bundle_sha_update(&sha, x->buf, want);
            if (walk)
                bw_stream_seg_data(x->wal_stream, x->buf, want);
            e = arc_data(x, a, x->buf, want, f->path);
            progress(x, want);
        }
        if (walk)
            bw_stream_seg_end(x->wal_stream);
        bundle_sha_final(&sha, f->sha);
        bundle_sha_free(&sha);
        /* Read once: drop it from the cache (a hint; not the engine's
         * segments, which its own readers may still want). */
        if (!source)
            (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    }
    close(fd);
    return e;
}

static cJSON *hex16(cJSON *o, const char *key, uint64_t v) {
    char buf[17];
    snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
    return cJSON_AddStringToObject(o, key, buf);
}

/* The manifest is signed: one that lacks a member (cJSON could not allocate
 * it) must never be written. Every addition goes through ADD, which notes a
 * failure in *ok; a NULL parent makes every addition under it fail too. */
#define ADD(ok, expr) (*(ok) = ((expr) != 0) && *(ok))

static cJSON *ring_json(const exp *x, bool *ok) {
    if (!x->have_ring)
        return cJSON_CreateNull();
    const tl_ring_ctl *c = &x->ring_ctl; /* our private copy: plain reads */
    cJSON *o = cJSON_CreateObject();
    if (o == NULL)
        return NULL;
    ADD(ok, cJSON_AddStringToObject(o, "name", x->env->ring_name));
    ADD(ok, bundle_u64(o, "capacity", x->ring_hdr.capacity));
    ADD(ok, bundle_u64(o, "created_ns", x->ring_hdr.created_ns));
    ADD(ok, bundle_u64(o, "producer_pid", x->ring_hdr.producer_pid));
    ADD(ok, bundle_u64(o, "publish", (uint64_t)c->publish));
    ADD(ok, bundle_u64(o, "last_seq", (uint64_t)c->last_seq));
    ADD(ok, bundle_u64(o, "producer_heartbeat_mono_ns", (uint64_t)c->producer_heartbeat_mono_ns));
    ADD(ok, bundle_u64(o, "wal_durable_seq", (uint64_t)c->wal_durable_seq));
    ADD(ok,
        bundle_u64(o, "wal_durable_segment_first_seq", (uint64_t)c->wal_durable_segment_first_seq));
    ADD(ok, bundle_u64(o, "wal_durable_offset", (uint64_t)c->wal_durable_offset));
    ADD(ok, bundle_u64(o, "consumer_position", (uint64_t)c->consumer_position));
    ADD(ok, bundle_u64(o, "consumer_state", (uint64_t)c->consumer_state));
    ADD(ok, bundle_u64(o, "consumer_wal_seq", (uint64_t)c->consumer_wal_seq));
    ADD(ok, bundle_u64(o, "fast_global_mode", (uint64_t)c->fast_global_mode));
    ADD(ok, bundle_u64(o, "fast_withdrawals_halted", (uint64_t)c->fast_withdrawals_halted));
    ADD(ok, bundle_u64(o, "fast_mode_epoch", (uint64_t)c->fast_mode_epoch));
    return o;
}

static char *manifest_text(exp *x, uint64_t created_ns, size_t *len) {
    const tl_bundle_job *j = x->job;
    cJSON *m = cJSON_CreateObject();
    if (m == NULL)
        return NULL;
    bool okv = true, *ok = &okv;
    ADD(ok, cJSON_AddStringToObject(m, "format", BUNDLE_FORMAT));
    ADD(ok, cJSON_AddStringToObject(m, "id", j->id));
    ADD(ok, cJSON_AddStringToObject(m, "origin", j->origin == TL_BUNDLE_AUTO ? "auto" : "request"));
    cJSON *incs = cJSON_AddArrayToObject(m, "incidents");
    ADD(ok, incs);
    for (uint32_t i = 0; incs != NULL && i < j->n_incidents; i++) {
        char b[24];
        snprintf(b, sizeof b, "%llu", (unsigned long long)j->incidents[i]);
        ADD(ok, cJSON_AddItemToArray(incs, cJSON_CreateString(b)));
    }
    if (j->n_incidents > 0)
        ADD(ok, bundle_u64(m, "incident", j->incidents[0]));
    else
        ADD(ok, cJSON_AddNullToObject(m, "incident"));
    ADD(ok, bundle_u64(m, "incidents_merged", j->incidents_merged));
    ADD(ok, cJSON_AddStringToObject(m, "tally_version", TL_VERSION));
    char host[256] = "?";
    (void)gethostname(host, sizeof host - 1);
    ADD(ok, cJSON_AddStringToObject(m, "host", host));
    char eid[2 * TL_ID_BYTES + 1];
    if (x->env->engine_id != NULL && !tl_id_is_zero(x->env->engine_id)) {
        bundle_hex(x->env->engine_id, TL_ID_BYTES, eid);
        ADD(ok, cJSON_AddStringToObject(m, "engine_id", eid));
    } else if (x->have_ring) {
        bundle_hex(x->ring_hdr.engine_id, TL_ID_BYTES, eid);
        ADD(ok, cJSON_AddStringToObject(m, "engine_id", eid));
    } else if (x->wal.have_engine_id) {
        bundle_hex(x->wal.engine_id, TL_ID_BYTES, eid);
        ADD(ok, cJSON_AddStringToObject(m, "engine_id", eid));
    } else {
        ADD(ok, cJSON_AddNullToObject(m, "engine_id"));
    }
    ADD(ok, bundle_u64(m, "created_ns", created_ns));
    ADD(ok, bundle_u64(m, "requested_ns", j->requested_real_ns));
    cJSON *sr = cJSON_AddObjectToObject(m, "seq_range");
    ADD(ok, sr);
    if (sr != NULL) {
        ADD(ok, bundle_u64(sr, "requested_from", j->from_seq));
        ADD(ok, bundle_u64(sr, "requested_to", j->to_seq));
        ADD(ok, bundle_u64(sr, "first", x->wal.first_seq));
        ADD(ok, bundle_u64(sr, "last", x->wal.last_seq));
        ADD(ok, bundle_u64(sr, "records", x->wal.records));
    }
    cJSON *fr = cJSON_AddObjectToObject(m, "fence_range");
    ADD(ok, fr);
    if (fr != NULL) {
        ADD(ok, bundle_u64(fr, "min", x->wal.fence_min));
        ADD(ok, bundle_u64(fr, "max", x->wal.fence_max));
    }
    cJSON *an = cJSON_AddObjectToObject(m, "chain_anchors");
    ADD(ok, an);
    if (an != NULL) {
        ADD(ok, bundle_u64(an, "first_seq", x->wal.first_seq));
        ADD(ok, hex16(an, "first_parent", x->wal.first_parent));
        ADD(ok, hex16(an, "first_checksum", x->wal.first_checksum));
        ADD(ok, bundle_u64(an, "last_seq", x->wal.last_seq));
        ADD(ok, hex16(an, "last_checksum", x->wal.last_checksum));
    }
    ADD(ok, cJSON_AddItemToObject(m, "ring", ring_json(x, ok)));
    cJSON *lg = cJSON_AddObjectToObject(m, "ledger");
    ADD(ok, lg);
    cJSON *hist = lg != NULL ? cJSON_AddArrayToObject(lg, "history") : NULL;
    ADD(ok, hist);
    if (lg != NULL)
        ADD(ok, cJSON_AddNumberToObject(lg, "replies", x->ledger_replies));
    for (uint32_t i = 0; hist != NULL && i < x->ledger_replies; i++) {
        cJSON *h = cJSON_CreateObject();
        if (h == NULL) {
            okv = false;
            break;
        }
        ADD(ok, bundle_u64(h, "poll_id", x->ledger[i].poll_id));
        ADD(ok, bundle_u64(h, "ledger_seq", x->ledger[i].ledger_seq));
        ADD(ok, hex16(h, "checksum", x->ledger[i].checksum));
        ADD(ok, bundle_u64(h, "recv_ns", x->ledger[i].recv_real_ns));
        ADD(ok, cJSON_AddItemToArray(hist, h));
    }
    cJSON *sn = cJSON_AddArrayToObject(m, "snapshots");
    ADD(ok, sn);
    for (unsigned i = 0; sn != NULL && i < TL_BUNDLE_SNAPSHOTS; i++) {
        if (!x->snaps[i].have)
            continue;
        cJSON *s = cJSON_CreateObject();
        if (s == NULL) {
            okv = false;
            break;
        }
        char p[BUNDLE_ARC_PATH + 16];
        snprintf(p, sizeof p, "snapshots/%s", x->snaps[i].name);
        ADD(ok, cJSON_AddStringToObject(s, "path", p));
        ADD(ok, bundle_u64(s, "seq", x->snaps[i].seq));
        ADD(ok, cJSON_AddItemToArray(sn, s));
    }
    ADD(ok, cJSON_AddNumberToObject(m, "audit_lines", (double)x->audit_lines));
    ADD(ok, cJSON_AddNumberToObject(m, "findings", (double)x->finding_lines));
    cJSON *dg = cJSON_AddArrayToObject(m, "degraded");
    ADD(ok, dg);
    for (unsigned d = 0; dg != NULL && d < TL_BUNDLE_DEG_COUNT; d++) {
        if ((x->r->degraded & (1u << d)) == 0)
            continue;
        cJSON *o = cJSON_CreateObject();
        if (o == NULL) {
            okv = false;
            break;
        }
        ADD(ok, cJSON_AddStringToObject(o, "name", tl_bundle_deg_name((enum tl_bundle_deg)d)));
        ADD(ok, cJSON_AddStringToObject(o, "detail", x->deg_first[d]));
        ADD(ok, cJSON_AddItemToArray(dg, o));
    }
    ADD(ok, cJSON_AddBoolToObject(m, "signed", x->env->key != NULL));
    ADD(ok, cJSON_AddItemToObject(m, "wal_check", bw_check_json(&x->wal)));
    cJSON *files = cJSON_AddArrayToObject(m, "files");
    ADD(ok, files);
    uint32_t listed = 0;
    for (uint32_t i = 0; files != NULL && i < x->n_files; i++) {
        if (x->files[i].skipped)
            continue;
        listed++;
        cJSON *f = cJSON_CreateObject();
        if (f == NULL) {
            okv = false;
            break;
        }
        char hex[65];
        bundle_hex(x->files[i].sha, 32, hex);
        ADD(ok, cJSON_AddStringToObject(f, "path", x->files[i].path));
        ADD(ok, bundle_u64(f, "size", x->files[i].size));
        ADD(ok, cJSON_AddStringToObject(f, "sha256", hex));
        ADD(ok, cJSON_AddItemToArray(files, f));
    }
    char *text = cJSON_Print(m);
    /* Every member was added, or the document is incomplete (checked member
     * by member through ADD; the file list counted as well). */
    bool whole = okv && files != NULL && cJSON_GetArraySize(files) == (int)listed;
    cJSON_Delete(m);
    if (text == NULL || !whole) {
        cJSON_free(text);
        return NULL;
    }
    *len = strlen(text);
    return text;
}

static enum tl_bundle_err write_archive(exp *x) {
    phase(x, TL_BUNDLE_PH_WRITING);
    x->out_fd = open(x->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (x->out_fd < 0)
        return fail_write(x, errno, x->tmp_path);
    struct archive *a = archive_write_new();
    if (a == NULL)
        return fail(x, TL_BUNDLE_ERR_NOMEM, 0, "archive");
    char level[16], threads[16];
    snprintf(level, sizeof level, "%d", x->env->zstd_level > 0 ? x->env->zstd_level : 3);
    snprintf(threads, sizeof threads, "%d", x->env->zstd_threads > 0 ? x->env->zstd_threads : 1);
    enum tl_bundle_err e = TL_BUNDLE_OK;
    if (archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
        archive_write_set_filter_option(a, "zstd", "compression-level", level) != ARCHIVE_OK ||
        archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK)
        e = arc_fail(x, a, "archive setup");
    /* Threads: where this libarchive and libzstd take the option. */
    if (e == TL_BUNDLE_OK && x->env->zstd_threads > 1)
        (void)archive_write_set_filter_option(a, "zstd", "threads", threads);
    if (e == TL_BUNDLE_OK && archive_write_open2(a, x, NULL, out_write, NULL, NULL) != ARCHIVE_OK)
        e = arc_fail(x, a, "archive open");
    time_t now = time(NULL);
    for (uint32_t i = 0; e == TL_BUNDLE_OK && i < x->n_files; i++)
        e = arc_file(x, a, &x->files[i], now);
    if (e == TL_BUNDLE_OK && x->wal_stream != NULL) {
        /* Every segment has gone through the check: the manifest's numbers. */
        bw_stream_finish(x->wal_stream);
        x->r->seq_first = x->wal.first_seq;
        x->r->seq_last = x->wal.last_seq;
        x->r->wal_findings = x->wal.findings;
        x->r->segments = x->wal.segments;
    }
    uint64_t created = 0;
    if (e == TL_BUNDLE_OK) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        created = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
    size_t mlen = 0;
    char *mtext = e == TL_BUNDLE_OK ? manifest_text(x, created, &mlen) : NULL;
    if (e == TL_BUNDLE_OK && mtext == NULL)
        e = fail(x, TL_BUNDLE_ERR_NOMEM, 0, "MANIFEST.json");
    if (e == TL_BUNDLE_OK && (e = arc_header(x, a, "MANIFEST.json", mlen, now)) == TL_BUNDLE_OK)
        e = arc_data(x, a, mtext, mlen, "MANIFEST.json");
    if (e == TL_BUNDLE_OK && x->env->key != NULL) {
        uint8_t sig[BUNDLE_SIG_BYTES];
        size_t slen = sizeof sig;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        bool ok = md != NULL && EVP_DigestSignInit(md, NULL, NULL, NULL, x->env->key) == 1 &&
                  EVP_DigestSign(md, sig, &slen, (const unsigned char *)mtext, mlen) == 1 &&
                  slen == BUNDLE_SIG_BYTES;
        EVP_MD_CTX_free(md);
        if (!ok)
            e = fail(x, TL_BUNDLE_ERR_SIGN, 0, "Ed25519 over MANIFEST.json");
        if (e == TL_BUNDLE_OK &&
            (e = arc_header(x, a, "MANIFEST.sig", BUNDLE_SIG_BYTES, now)) == TL_BUNDLE_OK)
            e = arc_data(x, a, sig, BUNDLE_SIG_BYTES, "MANIFEST.sig");
    }
    cJSON_free(mtext);
    /* close flushes the compressor and the tar trailer: its errors count. */
    if (archive_write_close(a) != ARCHIVE_OK && e == TL_BUNDLE_OK)
        e = arc_fail(x, a, "archive close");
    archive_write_free(a);
    if (e == TL_BUNDLE_OK && fsync(x->out_fd) != 0)
        e = fail_write(x, errno, "fsync");
    struct stat st;
    if (e == TL_BUNDLE_OK && fstat(x->out_fd, &st) == 0)
        x->r->size_bytes = (uint64_t)st.st_size;
    if (close(x->out_fd) != 0 && e == TL_BUNDLE_OK)
        e = fail_write(x, errno, "close");
    x->out_fd = -1;
    if (e != TL_BUNDLE_OK)
        return e;
    /* The final name only for a whole, synced file; then the directory. */
    if (rename(x->tmp_path, x->r->path) != 0)
        return fail_write(x, errno, "rename");
    /* From here the bundle exists, whole, under its final name: nothing may
     * report it as failed (or unlink it). Only the durability of its name is
     * in doubt when the directory cannot be synced: a named degradation. */
    int dfd = open(x->env->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        degrade(x, TL_BUNDLE_DEG_DIR_FSYNC, "open %s: %s", x->env->dir, strerror(errno));
        return TL_BUNDLE_OK;
    }
    if (fsync(dfd) != 0)
        degrade(x, TL_BUNDLE_DEG_DIR_FSYNC, "fsync %s: %s", x->env->dir, strerror(errno));
    close(dfd);
    return TL_BUNDLE_OK;
}

/* The WAL check runs on the segments' bytes as they are archived (one read
 * of each byte): here it only gets its range and its memory. */
static enum tl_bundle_err check_wal(exp *x) {
    phase(x, TL_BUNDLE_PH_CHECKING);
    x->wal.from_seq = x->job->from_seq;
    x->wal.to_seq = x->job->to_seq;
    if (x->env->dialect == TL_DIALECT_XWAL1)
        return TL_BUNDLE_OK; /* the native reader does not read xwal1 */
    x->wal_stream = bw_stream_new(&x->wal);
    if (x->wal_stream == NULL)
        return fail(x, TL_BUNDLE_ERR_NOMEM, 0, "the WAL check");
    return TL_BUNDLE_OK;
}

/* range.json: the requested range, ahead of the segments in the archive, so
 * that verify can check the WAL as it streams (the manifest comes last). */
static enum tl_bundle_err stage_range(exp *x) {
    char b[128];
    int n = snprintf(b, sizeof b, "{\"format\":\"%s\",\"from_seq\":\"%llu\",\"to_seq\":\"%llu\"}\n",
                     BUNDLE_FORMAT, (unsigned long long)x->job->from_seq,
                     (unsigned long long)x->job->to_seq);
    TL_ASSERT(n > 0 && (size_t)n < sizeof b);
    return stage_bytes(x, BUNDLE_RANGE_FILE, b, (size_t)n);
}

void tl_bundle_job_name(tl_bundle_job *job) {
    time_t t = (time_t)(job->requested_real_ns / 1000000000ull);
    struct tm tm;
    gmtime_r(&t, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y%m%dT%H%M%SZ", &tm);
    if (job->n_incidents > 0)
        snprintf(job->name, sizeof job->name, "tally-%s-inc%llu-%s.tar.zst", when,
                 (unsigned long long)job->incidents[0], job->id);
    else
        snprintf(job->name, sizeof job->name, "tally-%s-seq%llu-%s.tar.zst", when,
                 (unsigned long long)job->from_seq, job->id);
}

enum tl_bundle_err tl_bundle_export(const tl_bundle_env *env, const tl_bundle_job *job,
                                    tl_bundle_progress *p, tl_bundle_result *r) {
    memset(r, 0, sizeof *r);
    uint64_t t0 = mono_ns();
    exp *x = calloc(1, sizeof *x);
    if (x == NULL) {
        r->err = TL_BUNDLE_ERR_NOMEM;
        snprintf(r->detail, sizeof r->detail, "export state");
        return TL_BUNDLE_ERR_NOMEM;
    }
    x->env = env;
    x->job = job;
    x->p = p;
    x->r = r;
    x->out_fd = -1;
    x->wal_dirfd = -1;
    x->snap_dirfd = -1;
    x->files = calloc(TL_BUNDLE_FILES_MAX, sizeof *x->files);
    x->buf = aligned_alloc(4096, BUNDLE_CHUNK);
    x->ledger = calloc(TL_BUNDLE_LEDGER_KEEP, sizeof *x->ledger);
    enum tl_bundle_err e = TL_BUNDLE_OK;
    if (x->files == NULL || x->buf == NULL || x->ledger == NULL)
        e = fail(x, TL_BUNDLE_ERR_NOMEM, 0, "export buffers");
    if (e == TL_BUNDLE_OK && (job->from_seq == 0 || job->to_seq < job->from_seq))
        e = fail(x, TL_BUNDLE_ERR_RANGE, 0, "no seq range: from_seq %llu, to_seq %llu",
                 (unsigned long long)job->from_seq, (unsigned long long)job->to_seq);
    if (e == TL_BUNDLE_OK)
        e = make_staging(x);
    if (e == TL_BUNDLE_OK) {
        if (env->key == NULL)
            degrade(x, TL_BUNDLE_DEG_UNSIGNED, "bundle.signing_key is not set");
        ring_map(x);
        uint64_t ts = mono_ns();
        settle(x);
        r->settle_ns = mono_ns() - ts;
        phase(x, TL_BUNDLE_PH_STAGING);
        /* The ring first: the moment closest to the request. */
        e = stage_ring(x);
        ring_unmap(x);
    }
    if (e == TL_BUNDLE_OK)
        e = stage_range(x);
    if (e == TL_BUNDLE_OK)
        e = stage_wal(x);
    if (e == TL_BUNDLE_OK)
        e = stage_snapshots(x);
    if (e == TL_BUNDLE_OK)
        e = stage_ledger(x);
    if (e == TL_BUNDLE_OK)
        e = stage_audit(x);
    if (e == TL_BUNDLE_OK)
        e = stage_config(x);
    if (e == TL_BUNDLE_OK)
        e = stage_metrics(x);
    if (e == TL_BUNDLE_OK && cancelled(x))
        e = fail(x, TL_BUNDLE_ERR_CANCELLED, 0, "stopped");
    uint64_t t1 = mono_ns();
    r->stage_ns = t1 - t0 - r->settle_ns;
    if (e == TL_BUNDLE_OK)
        e = check_wal(x);
    uint64_t t2 = mono_ns();
    r->check_ns = t2 - t1;
    if (e == TL_BUNDLE_OK)
        e = write_archive(x);
    r->write_ns = mono_ns() - t2;
    ring_unmap(x);
    if (x->out_fd >= 0)
        close(x->out_fd);
    if (e != TL_BUNDLE_OK && x->tmp_path[0] != '\0')
        (void)unlink(x->tmp_path); /* never a partial bundle, under any name */
    if (x->staging[0] != '\0')
        bundle_rm_tree(x->staging);
    r->files = 0;
    for (uint32_t i = 0; x->files != NULL && i < x->n_files; i++) {
        if (x->files[i].fd >= 0)
            close(x->files[i].fd); /* sources never archived (an earlier failure) */
        r->files += x->files[i].skipped ? 0u : 1u;
    }
    if (x->wal_dirfd >= 0)
        close(x->wal_dirfd);
    if (x->snap_dirfd >= 0)
        close(x->snap_dirfd);
    bw_stream_free(x->wal_stream);
    r->wal_bytes = x->wal_source_bytes;
    if (e != TL_BUNDLE_OK)
        r->size_bytes = 0;
    phase(x, e == TL_BUNDLE_OK ? TL_BUNDLE_PH_DONE : TL_BUNDLE_PH_FAILED);
    free(x->ledger);
    free(x->buf);
    free(x->files);
    free(x);
    r->elapsed_ns = mono_ns() - t0;
    return e;
}

uint32_t tl_bundle_clean_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    uint32_t removed = 0;
    struct dirent *de;
    /* Bounded by the directory's entries. */
    while ((de = readdir(d)) != NULL) {
        char p[TL_BUNDLE_PATH_MAX + 256];
        if (strncmp(de->d_name, ".staging-", 9) == 0) {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            bundle_rm_tree(p);
            removed++;
            continue;
        }
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.' && n > 5 && strcmp(de->d_name + n - 4, ".tmp") == 0) {
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            if (unlink(p) == 0)
                removed++;
        }
    }
    closedir(d);
    return removed;
}
