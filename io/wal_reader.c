/* wal_reader.c: the offline reader (see wal_reader.h). */
#include "wal_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assert.h"
#include "core/segment.h"
#include "wal_dir.h"

const char *tl_wal_tail_name(enum tl_wal_tail t) {
    switch (t) {
        case TL_WAL_TAIL_EMPTY:
            return "empty";
        case TL_WAL_TAIL_CLEAN:
            return "clean";
        case TL_WAL_TAIL_TENTATIVE:
            return "tentative";
        case TL_WAL_TAIL_CORRUPT:
            return "corrupt";
        case TL_WAL_TAIL_STOPPED:
            return "stopped";
    }
    return "?";
}

typedef struct reader {
    const tl_wal_read_opts *o;
    tl_wal_summary *sum;
    tl_log log;
    tl_stream st;
    uint8_t *buf;
    size_t buf_bytes;
    int dirfd;
} reader;

/* The log's sink: counts, then forwards. */
static void count_emit(void *ctx, const tl_finding *f) {
    reader *r = ctx;
    r->sum->findings_total++;
    if (f->check == TL_CHECK_WAL_CORRUPT)
        r->sum->corrupt_total++;
    if (r->o->sink.emit != NULL)
        r->o->sink.emit(r->o->sink.ctx, f);
}

static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Reads up to n bytes at off; short only at the end of the file. Returns the
 * bytes read, or -1 with errno. */
static ssize_t pread_full(int fd, uint8_t *buf, size_t n, uint64_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static void note_record(reader *r, const tl_rec_view *v) {
    tl_wal_summary *sum = r->sum;
    if (sum->records_total == 0) {
        sum->first_seq = v->seq;
        sum->fence_min = v->fence;
        sum->fence_max = v->fence;
    }
    sum->records_total++;
    sum->last_seq = v->seq;
    sum->last_checksum = v->checksum;
    if (v->fence < sum->fence_min)
        sum->fence_min = v->fence;
    if (v->fence > sum->fence_max)
        sum->fence_max = v->fence;
}

/* Reads one segment. Returns TL_WAL_OK, or an I/O error. */
static enum tl_wal_err read_segment(reader *r, uint64_t first_seq, bool sealed, bool newest) {
    tl_wal_summary *sum = r->sum;
    char name[TL_SEG_NAME_BYTES + 1];
    tl_seg_name(name, sizeof name, first_seq);
    int fd = openat(r->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sum->ioerr = (tl_wal_ioerr){"openat", errno};
        return TL_WAL_ERR_IO;
    }
    struct stat stb;
    if (fstat(fd, &stb) != 0) {
        sum->ioerr = (tl_wal_ioerr){"fstat", errno};
        close(fd);
        return TL_WAL_ERR_IO;
    }
    /* A hint only: a larger read-ahead for a front-to-back read. */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    tl_walseg_facts facts = {
        .sealed = sealed, .file_bytes = (uint64_t)stb.st_size, .durable = r->o->durable};
    tl_walseg ws;
    tl_walseg_init(&ws, first_seq);
    r->log.now_ns = mono_ns();
    sum->segments_read++;
    if (newest) {
        sum->tail_segment = first_seq;
        sum->tail_offset = 0;
        sum->tail_records = 0;
        sum->tail_segment_index = 0;
        sum->tail_segment_size = 0;
    }

    uint64_t buf_off = 0;
    size_t n = 0;
    enum tl_wal_err rc = TL_WAL_OK;
    /* Each step yields a record, reads, or ends the segment; a read is
     * followed by progress unless the file shrank, which ends it. Bounded by
     * the file size: at most one record per 64 bytes, plus one read each. */
    uint64_t max_steps = 2 * (facts.file_bytes / TL_REC_HDR_BYTES) + 8;
    bool done = false;
    for (uint64_t step = 0; step < max_steps && !done; step++) {
        tl_walseg_event ev;
        tl_walseg_next(&ws, &facts, r->buf, buf_off, n, &ev);
        switch ((enum tl_walseg_ev)ev.kind) {
            case TL_WALSEG_NEED_MORE: {
                uint64_t want_end = ev.offset + ev.len;
                buf_off = ev.offset & ~(uint64_t)4095;
                TL_ASSERT(want_end - buf_off <= r->buf_bytes);
                uint64_t left = facts.file_bytes > buf_off ? facts.file_bytes - buf_off : 0;
                size_t want = left < r->buf_bytes ? (size_t)left : r->buf_bytes;
                ssize_t got = pread_full(fd, r->buf, want, buf_off);
                if (got < 0) {
                    sum->ioerr = (tl_wal_ioerr){"pread", errno};
                    rc = TL_WAL_ERR_IO;
                    done = true;
                    break;
                }
                n = (size_t)got;
                /* Start reading the next chunk into the page cache while this
                 * one is verified (a hint: errors do not matter). */
                if (buf_off + n < facts.file_bytes)
                    (void)posix_fadvise(fd, (off_t)(buf_off + n), (off_t)r->buf_bytes,
                                        POSIX_FADV_WILLNEED);
                if (buf_off + n < want_end) {
                    /* The file is shorter than fstat said: it shrank under
                     * us. Judge the bytes that are there. */
                    facts.file_bytes = buf_off + n;
                }
                break;
            }
            case TL_WALSEG_HEADER: {
                tl_loc loc = {first_seq, 0};
                tl_stream_segment(&r->st, &ws.hdr, first_seq, &loc);
                if (newest) {
                    sum->tail_segment_index = ws.hdr.segment_index;
                    sum->tail_segment_size = ws.hdr.segment_size;
                    sum->tail_offset = TL_SEG_HDR_BYTES;
                }
                if (r->o->on_segment != NULL)
                    r->o->on_segment(r->o->ctx, &ws.hdr, first_seq);
                break;
            }
            case TL_WALSEG_RECORD: {
                tl_rec_view v;
                tl_rec_view_native(&v, ev.rec, false);
                tl_loc loc = {first_seq, ev.offset};
                tl_stream_result res = tl_stream_record(&r->st, &v, &loc);
                note_record(r, &v);
                if (newest) {
                    sum->tail_offset = ev.offset + ev.len;
                    sum->tail_records++;
                }
                if (r->o->on_record != NULL && v.seq >= r->o->start_seq) {
                    sum->records_delivered++;
                    if (r->o->on_record(r->o->ctx, &v, &loc, res) != 0) {
                        sum->stopped = true;
                        sum->tail = TL_WAL_TAIL_STOPPED;
                        done = true;
                    }
                }
                break;
            }
            case TL_WALSEG_CORRUPT: {
                tl_finding f;
                tl_walseg_finding(&ws, &ev, &f);
                tl_log_emit(&r->log, &f);
                if (ev.rule == TL_RULE_FIELDS) {
                    tl_stream_step_over(&r->st, tl_rec_hdr_of(ev.rec)->seq,
                                        tl_rec_hdr_of(ev.rec)->checksum);
                    if (newest)
                        sum->tail_offset = ev.offset + ev.len;
                    break;
                }
                /* The segment ends here; the next header re-anchors. */
                if (ev.reason >= TL_REASON_SEG_BASE && ev.reason < TL_REASON_SEGMENT_INDEX)
                    tl_stream_segment_unreadable(&r->st); /* its header */
                else
                    tl_stream_reanchor(&r->st);
                sum->reanchors += sealed ? 1u : 0u;
                if (newest) {
                    sum->tail = TL_WAL_TAIL_CORRUPT;
                    sum->tail_offset = ev.offset;
                    sum->tail_reason = ev.reason;
                }
                done = true;
                break;
            }
            case TL_WALSEG_TENTATIVE:
                TL_ASSERT(!sealed);
                sum->tail = TL_WAL_TAIL_TENTATIVE;
                sum->tail_offset = ev.offset;
                sum->tail_reason = ev.reason;
                done = true;
                break;
            case TL_WALSEG_END:
                if (newest) {
                    sum->tail = TL_WAL_TAIL_CLEAN;
                    sum->tail_offset = ev.offset;
                }
                done = true;
                break;
        }
    }
    /* The walker makes progress on every step but a read, and a read is
     * followed by progress: the bound is never reached, whatever the bytes. */
    TL_ASSERT(done);
    close(fd);
    return rc;
}

static bool opts_valid(const tl_wal_read_opts *o) {
    uint64_t w = o->window_records;
    if (w != 0 && (w < 2 || (w & (w - 1)) != 0 || w > (1ull << 30)))
        return false;
    if (o->buf_bytes != 0 && (o->buf_bytes < TL_WAL_READ_MIN_BUF || o->buf_bytes % 4096 != 0))
        return false;
    return true;
}

enum tl_wal_err tl_wal_read_dir(const char *path, const tl_wal_read_opts *opts,
                                tl_wal_summary *sum) {
    memset(sum, 0, sizeof *sum);
    if (!opts_valid(opts))
        return TL_WAL_ERR_CONFIG;
    reader r;
    memset(&r, 0, sizeof r);
    r.o = opts;
    r.sum = sum;
    r.buf_bytes = opts->buf_bytes != 0 ? opts->buf_bytes : TL_WAL_READ_DEFAULT_BUF;
    uint64_t window = opts->window_records != 0 ? opts->window_records : TL_WAL_READ_DEFAULT_WINDOW;

    r.dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r.dirfd < 0) {
        sum->ioerr = (tl_wal_ioerr){"open", errno};
        return errno == ENOENT ? TL_WAL_ERR_NOT_FOUND : TL_WAL_ERR_IO;
    }
    tl_wal_dir dir;
    enum tl_wal_err rc = tl_wal_dir_init(&dir, opts->dir_max_entries);
    void *win_mem = NULL;
    if (rc == TL_WAL_OK) {
        r.buf = aligned_alloc(4096, r.buf_bytes);
        /* aligned_alloc wants a multiple of the alignment */
        win_mem = aligned_alloc(64, (tl_window_bytes(window) + 63) & ~(size_t)63);
        if (r.buf == NULL || win_mem == NULL)
            rc = TL_WAL_ERR_NOMEM;
    }
    if (rc == TL_WAL_OK) {
        rc = tl_wal_dir_scan(&dir, r.dirfd);
        if (rc == TL_WAL_ERR_IO)
            sum->ioerr = dir.ioerr;
    }
    if (rc == TL_WAL_OK) {
        sum->segments_present = dir.count;
        sum->tmp_names = dir.tmp_total;
        sum->unknown_names = dir.unknown_total;
        if (dir.unknown_total > 0)
            memcpy(sum->unknown_first, dir.unknown[0], sizeof sum->unknown_first);

        tl_log_init(&r.log, TL_DIALECT_TLYWAL1, win_mem, window, (tl_sink){count_emit, &r});
        tl_stream_init(&r.st, &r.log, TL_SOURCE_WAL);

        int64_t start = 0;
        if (opts->start_seq > 1) {
            start = tl_wal_dir_find(&dir, opts->start_seq);
            if (start < 0)
                start = 0; /* below the lowest segment: start there */
        }
        sum->tail = TL_WAL_TAIL_EMPTY;
        for (int64_t i = start; i < (int64_t)dir.count && rc == TL_WAL_OK; i++) {
            bool newest = i == (int64_t)dir.count - 1;
            if (i == start)
                sum->anchor_segment = dir.first_seqs[i];
            rc = read_segment(&r, dir.first_seqs[i], !newest, newest);
            if (i == start && r.st.segment_known) {
                sum->anchor_verified =
                    r.st.segment_index == 0 && opts->start_seq <= 1 && sum->reanchors == 0;
            }
            if (sum->stopped)
                break;
        }
        /* The anchor counts as verified only if the first header read was the
         * log's first segment; a header that did not parse leaves it false. */
        sum->expected_seq = r.st.expected_seq;
        sum->expected_parent = r.st.expected_parent;
        sum->fence = r.st.fence;
        if (r.st.leader_known)
            memcpy(sum->leader_id, r.st.leader_id, TL_ID_BYTES);
    }
    free(win_mem);
    free(r.buf);
    tl_wal_dir_free(&dir);
    close(r.dirfd);
    return rc;
}
