/* test_walseg.c: the per-segment walker (core/walseg.h) on segments built in
 * memory: rules 1-3, end of records, torn tail vs corruption with the sealed
 * flag and the durable hint, the NEED_MORE protocol, findings, and the stall
 * timer. */
#include "test_wal_fixture.h"

#include "core/walseg.h"

#define SEG_BYTES 16384u
#define SEG_FIRST 100u

typedef struct walk_out {
    tl_walseg_event ev[512];
    unsigned n;
} walk_out;

/* Walks a whole in-memory segment until a final event (END, TENTATIVE, or a
 * CORRUPT that ends the walk). */
static void walk_all(tl_walseg *ws, const tl_walseg_facts *f, uint8_t *buf, size_t n,
                     walk_out *out) {
    out->n = 0;
    for (unsigned i = 0; i < 512; i++) {
        tl_walseg_event *ev = &out->ev[out->n++];
        tl_walseg_next(ws, f, buf, 0, n, ev);
        assert_int_not_equal(ev->kind, TL_WALSEG_NEED_MORE);
        if (ev->kind == TL_WALSEG_END || ev->kind == TL_WALSEG_TENTATIVE)
            return;
        if (ev->kind == TL_WALSEG_CORRUPT && ev->rule != TL_RULE_FIELDS)
            return;
    }
    fail_msg("walk did not end");
}

static tl_walseg_facts facts(bool sealed, uint64_t file_bytes) {
    tl_walseg_facts f;
    memset(&f, 0, sizeof f);
    f.sealed = sealed;
    f.file_bytes = file_bytes;
    return f;
}

/* A segment of SEG_BYTES at SEG_FIRST with `n` ORDER_NEW records. Returns
 * the offset of each record in offs (if given). */
static void make_seg(fx_seg *s, fx_chain *c, unsigned n, uint64_t *offs) {
    *c = (fx_chain){SEG_FIRST, 0xabcdef, 2, 0};
    fx_seg_init(s, SEG_BYTES, 3, SEG_FIRST, c->parent, c->fence, fx_engine);
    for (unsigned i = 0; i < n; i++) {
        if (offs != NULL)
            offs[i] = s->off;
        fx_order_new(s, c);
    }
}

static void test_clean_segment(void **state) {
    (void)state;
    fx_seg s;
    fx_chain c;
    uint64_t offs[10];
    make_seg(&s, &c, 10, offs);
    tl_walseg ws;
    tl_walseg_init(&ws, SEG_FIRST);
    tl_walseg_facts f = facts(false, SEG_BYTES);
    walk_out out;
    walk_all(&ws, &f, s.buf, s.size, &out);
    assert_int_equal(out.n, 12);
    assert_int_equal(out.ev[0].kind, TL_WALSEG_HEADER);
    assert_true(ws.hdr_ok);
    assert_int_equal(ws.hdr.first_seq, SEG_FIRST);
    for (unsigned i = 0; i < 10; i++) {
        const tl_walseg_event *ev = &out.ev[1 + i];
        assert_int_equal(ev->kind, TL_WALSEG_RECORD);
        assert_int_equal(ev->offset, offs[i]);
        assert_int_equal(ev->len, 104);
        assert_ptr_equal(ev->rec, s.buf + offs[i]);
        assert_int_equal(tl_rec_hdr_of(ev->rec)->seq, SEG_FIRST + i);
    }
    assert_int_equal(out.ev[11].kind, TL_WALSEG_END);
    assert_int_equal(out.ev[11].offset, s.off);
    assert_int_equal(out.ev[11].expected_seq, SEG_FIRST + 10);
    assert_false(ws.done); /* newest: the tail may grow */
    assert_int_equal(ws.records_total, 10);

    /* Later bytes: the same walker continues at the same offset. */
    size_t end = s.off;
    fx_order_new(&s, &c);
    tl_walseg_event ev;
    tl_walseg_next(&ws, &f, s.buf, 0, s.size, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_RECORD);
    assert_int_equal(ev.offset, end);

    /* Sealed: END is final. */
    f.sealed = true;
    tl_walseg_next(&ws, &f, s.buf, 0, s.size, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_END);
    assert_true(ws.done);
    fx_seg_free(&s);
}

static void test_end_room_below_64(void **state) {
    (void)state;
    /* Fill the segment so that fewer than 64 bytes remain: END there, even
     * though the bytes are not a zero slot. */
    fx_chain c = {1, 0, 1, 0};
    fx_seg s;
    fx_seg_init(&s, 8192, 0, 1, 0, 1, NULL);
    while (s.off + 104 <= 8192)
        fx_order_new(&s, &c);
    /* 4096 + 39 * 104 = 8152: 40 bytes left; make them nonzero */
    size_t end = s.off;
    assert_true(8192 - end < 64);
    memset(s.buf + end, 0xee, 8192 - end);
    tl_walseg ws;
    tl_walseg_init(&ws, 1);
    tl_walseg_facts f = facts(true, 8192);
    walk_out out;
    walk_all(&ws, &f, s.buf, s.size, &out);
    assert_int_equal(out.ev[out.n - 1].kind, TL_WALSEG_END);
    assert_int_equal(out.ev[out.n - 1].offset, end);
    assert_true(ws.done);
    fx_seg_free(&s);
}

static void test_vector_end_slot_of_64(void **state) {
    (void)state;
    /* The first wal-clean segment ends with exactly one 64-byte zero slot. */
    size_t n;
    uint8_t *buf = tu_read_file(tu_shared("spec/vectors/wal-clean/00000000000000000001.wal"), &n);
    tl_walseg ws;
    tl_walseg_init(&ws, 1);
    tl_walseg_facts f = facts(true, n);
    walk_out out;
    walk_all(&ws, &f, buf, n, &out);
    assert_int_equal(out.ev[out.n - 1].kind, TL_WALSEG_END);
    assert_int_equal(out.ev[out.n - 1].offset, 8128);
    assert_int_equal(ws.records_total, 38);
    free(buf);
}

/* Feeds the segment through a small window, re-reading at each NEED_MORE
 * as a caller would: the same records come out. */
static void test_need_more_protocol(void **state) {
    (void)state;
    fx_seg s;
    fx_chain c;
    make_seg(&s, &c, 60, NULL);
    /* a big record too */
    uint8_t big[3000];
    memset(big, 0x5a, sizeof big);
    fx_put(&s, &c, 42, 0, big, sizeof big);
    fx_order_new(&s, &c);
    tl_walseg_facts f = facts(false, SEG_BYTES);

    tl_walseg ref;
    tl_walseg_init(&ref, SEG_FIRST);
    walk_out want;
    walk_all(&ref, &f, s.buf, s.size, &want);

    const size_t win = 4096 + 8; /* multiple of 8, not of 4096 */
    uint8_t *buf = aligned_alloc(64, (win + 63) & ~(size_t)63);
    tl_walseg ws;
    tl_walseg_init(&ws, SEG_FIRST);
    uint64_t buf_off = 0;
    size_t n = 0;
    unsigned got = 0, reads = 0;
    for (unsigned step = 0; step < 10000; step++) {
        tl_walseg_event ev;
        tl_walseg_next(&ws, &f, buf, buf_off, n, &ev);
        if (ev.kind == TL_WALSEG_NEED_MORE) {
            assert_true(ev.len > 0 && ev.len <= win);
            assert_int_equal(ev.offset % 8, 0);
            buf_off = ev.offset;
            n = win < SEG_BYTES - buf_off ? win : SEG_BYTES - buf_off;
            memcpy(buf, s.buf + buf_off, n);
            reads++;
            continue;
        }
        assert_int_equal(ev.kind, want.ev[got].kind);
        assert_int_equal(ev.offset, want.ev[got].offset);
        got++;
        if (ev.kind == TL_WALSEG_END)
            break;
    }
    assert_int_equal(got, want.n);
    assert_true(reads > 3);
    /* A buffer that starts past the walker's offset is asked for again. */
    tl_walseg ws2;
    tl_walseg_init(&ws2, SEG_FIRST);
    tl_walseg_event ev;
    tl_walseg_next(&ws2, &f, s.buf + 8192, 8192, 4096, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_NEED_MORE);
    assert_int_equal(ev.offset, 0);
    assert_int_equal(ev.len, 4096);
    free(buf);
    fx_seg_free(&s);
}

/* Walks the segment as newest and as sealed; returns the final events. */
static void walk_both(fx_seg *s, uint64_t file_bytes, tl_walseg_event *newest,
                      tl_walseg_event *sealed) {
    walk_out out;
    tl_walseg ws;
    tl_walseg_init(&ws, s->hdr->first_seq);
    tl_walseg_facts f = facts(false, file_bytes);
    walk_all(&ws, &f, s->buf, s->size, &out);
    *newest = out.ev[out.n - 1];
    tl_walseg_init(&ws, s->hdr->first_seq);
    f.sealed = true;
    walk_all(&ws, &f, s->buf, s->size, &out);
    *sealed = out.ev[out.n - 1];
    assert_true(ws.done);
}

static void expect_torn(fx_seg *s, uint64_t file_bytes, uint64_t off, enum tl_rule rule,
                        enum tl_rec_err err) {
    tl_walseg_event a, b;
    walk_both(s, file_bytes, &a, &b);
    assert_int_equal(a.kind, TL_WALSEG_TENTATIVE);
    assert_int_equal(a.offset, off);
    assert_int_equal(a.rule, rule);
    assert_string_equal(tl_reason_name(a.reason), tl_rec_err_name(err));
    assert_int_equal(b.kind, TL_WALSEG_CORRUPT);
    assert_int_equal(b.offset, off);
    assert_int_equal(b.rule, rule);
    assert_string_equal(tl_reason_name(b.reason), tl_rec_err_name(err));
    assert_int_equal(b.err, err);
}

static void test_bad_len(void **state) {
    (void)state;
    static const uint32_t bad[] = {0, 8, 60, 100, 65536 + 8, 0xfffffff8u};
    for (unsigned i = 0; i < TL_ARRAY_LEN(bad); i++) {
        fx_seg s;
        fx_chain c;
        uint64_t offs[5];
        make_seg(&s, &c, 5, offs);
        tl_rec_hdr *h = (tl_rec_hdr *)(s.buf + offs[3]);
        h->len = bad[i]; /* the checksum word stays: not an end-of-records slot */
        expect_torn(&s, SEG_BYTES, offs[3], TL_RULE_LENGTH, TL_REC_ERR_LEN);
        fx_seg_free(&s);
    }
}

static void test_len_past_end(void **state) {
    (void)state;
    /* A len that runs past the segment end. */
    fx_seg s;
    fx_chain c;
    uint64_t offs[5];
    make_seg(&s, &c, 5, offs);
    ((tl_rec_hdr *)(s.buf + offs[4]))->len = 65536;
    expect_torn(&s, SEG_BYTES, offs[4], TL_RULE_LENGTH, TL_REC_ERR_TRUNCATED);
    fx_seg_free(&s);

    /* A file shorter than its segment_size that stops inside a record
     * (len past the end of the file). */
    make_seg(&s, &c, 5, offs);
    expect_torn(&s, offs[4] + 64, offs[4], TL_RULE_LENGTH, TL_REC_ERR_TRUNCATED);
    /* ... or inside a record header. */
    expect_torn(&s, offs[4] + 24, offs[4], TL_RULE_LENGTH, TL_REC_ERR_TRUNCATED);
    /* ... or exactly at a record boundary: an end of records. */
    tl_walseg_event a, b;
    walk_both(&s, offs[4], &a, &b);
    assert_int_equal(a.kind, TL_WALSEG_END);
    assert_int_equal(a.offset, offs[4]);
    assert_int_equal(b.kind, TL_WALSEG_END);
    fx_seg_free(&s);
}

static void test_checksum_tail_vs_sealed(void **state) {
    (void)state;
    fx_seg s;
    fx_chain c;
    uint64_t offs[5];
    make_seg(&s, &c, 5, offs);
    s.buf[offs[4] + 70] ^= 1; /* body byte */
    expect_torn(&s, SEG_BYTES, offs[4], TL_RULE_CHECKSUM, TL_REC_ERR_CHECKSUM);
    fx_seg_free(&s);

    /* A slot whose checksum word is written but whose len is not yet. */
    make_seg(&s, &c, 5, offs);
    tl_rec_hdr *h = (tl_rec_hdr *)(s.buf + s.off);
    h->checksum = 0x1234;
    expect_torn(&s, SEG_BYTES, s.off, TL_RULE_LENGTH, TL_REC_ERR_LEN);
    /* And one whose len is written but whose checksum word is zero. */
    h->checksum = 0;
    h->len = 104;
    expect_torn(&s, SEG_BYTES, s.off, TL_RULE_CHECKSUM, TL_REC_ERR_CHECKSUM);
    fx_seg_free(&s);
}

static void test_tentative_then_complete(void **state) {
    (void)state;
    /* A record being written is tentative; read again once complete, it is a
     * record: the walker keeps its place. */
    fx_seg s;
    fx_chain c;
    uint64_t offs[4];
    make_seg(&s, &c, 4, offs);
    uint8_t saved[104];
    memcpy(saved, s.buf + offs[3], 104);
    memset(s.buf + offs[3] + 48, 0, 56); /* the writer got as far as len */
    tl_walseg ws;
    tl_walseg_init(&ws, SEG_FIRST);
    tl_walseg_facts f = facts(false, SEG_BYTES);
    walk_out out;
    walk_all(&ws, &f, s.buf, s.size, &out);
    assert_int_equal(out.ev[out.n - 1].kind, TL_WALSEG_TENTATIVE);
    assert_int_equal(out.ev[out.n - 1].seq, SEG_FIRST + 3);
    assert_int_equal(out.ev[out.n - 1].expected_seq, SEG_FIRST + 3);
    memcpy(s.buf + offs[3], saved, 104);
    tl_walseg_event ev;
    tl_walseg_next(&ws, &f, s.buf, 0, s.size, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_RECORD);
    assert_int_equal(ev.offset, offs[3]);
    fx_seg_free(&s);
}

static void test_fresh_reread_durable(void **state) {
    (void)state;
    fx_seg s;
    fx_chain c;
    uint64_t offs[6];
    make_seg(&s, &c, 6, offs);
    s.buf[offs[4] + 80] ^= 0x40;
    uint64_t o = offs[4];
    struct {
        tl_walseg_durable d;
        uint8_t want;
    } cases[] = {
        /* durable seq covers the expected seq and the offset is past o */
        {{SEG_FIRST + 5, SEG_FIRST, offs[5] + 104}, TL_WALSEG_CORRUPT},
        {{SEG_FIRST + 4, SEG_FIRST, offs[4] + 104}, TL_WALSEG_CORRUPT},
        /* durable offset not past o: the engine has not synced it yet */
        {{SEG_FIRST + 3, SEG_FIRST, offs[4]}, TL_WALSEG_TENTATIVE},
        /* durable seq below the expected seq */
        {{SEG_FIRST + 3, SEG_FIRST, offs[5]}, TL_WALSEG_TENTATIVE},
        /* durable point in a later segment: this one is sealed */
        {{SEG_FIRST + 50, SEG_FIRST + 40, 4096 + 104}, TL_WALSEG_CORRUPT},
        /* durable point in an earlier segment */
        {{SEG_FIRST - 1, SEG_FIRST - 30, 5000}, TL_WALSEG_TENTATIVE},
        /* none */
        {{0, 0, 0}, TL_WALSEG_TENTATIVE},
    };
    for (unsigned i = 0; i < TL_ARRAY_LEN(cases); i++) {
        tl_walseg ws;
        tl_walseg_init(&ws, SEG_FIRST);
        tl_walseg_facts f = facts(false, SEG_BYTES);
        f.durable = cases[i].d;
        walk_out out;
        walk_all(&ws, &f, s.buf, s.size, &out);
        const tl_walseg_event *ev = &out.ev[out.n - 1];
        assert_int_equal(ev->kind, cases[i].want);
        assert_int_equal(ev->offset, o);
        assert_int_equal(ev->rule, TL_RULE_CHECKSUM);
        assert_int_equal(ev->err, TL_REC_ERR_CHECKSUM);
        if (ev->kind == TL_WALSEG_CORRUPT) {
            assert_int_equal(ev->reason, TL_REASON_TORN_FRESH_READ);
            assert_true(ws.done);
            tl_finding fd;
            tl_walseg_finding(&ws, ev, &fd);
            assert_int_equal(fd.check, TL_CHECK_WAL_CORRUPT);
            assert_int_equal(fd.rule, TL_RULE_CHECKSUM);
            assert_int_equal(fd.reason, TL_REASON_TORN_FRESH_READ);
            assert_int_equal(fd.segment, SEG_FIRST);
            assert_int_equal(fd.offset, o);
            assert_int_equal(fd.seq, SEG_FIRST + 4);
            assert_int_equal(fd.seq2, SEG_FIRST + 4);
            assert_int_equal(fd.source, TL_SOURCE_WAL);
        } else {
            assert_int_equal(ev->reason, TL_REC_ERR_CHECKSUM);
            assert_false(ws.done);
        }
    }
    fx_seg_free(&s);
}

static void test_zero_slot_durable(void **state) {
    (void)state;
    /* An end-of-records slot where the durable hint says a record ends past
     * it: WAL_CORRUPT (segment_end). */
    fx_seg s;
    fx_chain c;
    uint64_t offs[6];
    make_seg(&s, &c, 6, offs);
    memset(s.buf + offs[4], 0, 2 * 104); /* records 4 and 5 vanished */
    tl_walseg ws;
    tl_walseg_init(&ws, SEG_FIRST);
    tl_walseg_facts f = facts(false, SEG_BYTES);
    f.durable = (tl_walseg_durable){SEG_FIRST + 5, SEG_FIRST, offs[5] + 104};
    walk_out out;
    walk_all(&ws, &f, s.buf, s.size, &out);
    const tl_walseg_event *ev = &out.ev[out.n - 1];
    assert_int_equal(ev->kind, TL_WALSEG_CORRUPT);
    assert_int_equal(ev->rule, TL_RULE_SEGMENT);
    assert_int_equal(ev->reason, TL_REASON_SEGMENT_END);
    assert_int_equal(ev->offset, offs[4]);
    assert_int_equal(ev->expected_seq, SEG_FIRST + 4);
    tl_finding fd;
    tl_walseg_finding(&ws, ev, &fd);
    assert_int_equal(fd.seq, 0);
    assert_int_equal(fd.seq2, SEG_FIRST + 4);

    /* Durable exactly at the slot: a clean end. */
    tl_walseg_init(&ws, SEG_FIRST);
    f.durable.offset = offs[4];
    f.durable.seq = SEG_FIRST + 3;
    walk_all(&ws, &f, s.buf, s.size, &out);
    assert_int_equal(out.ev[out.n - 1].kind, TL_WALSEG_END);
    /* Durable in a later segment: the segment may have ended here. */
    tl_walseg_init(&ws, SEG_FIRST);
    f.durable = (tl_walseg_durable){SEG_FIRST + 9, SEG_FIRST + 4, 4096 + 104};
    walk_all(&ws, &f, s.buf, s.size, &out);
    assert_int_equal(out.ev[out.n - 1].kind, TL_WALSEG_END);
    /* Sealed: not judged here (the next header is, as SEGMENT_GAP). */
    tl_walseg_init(&ws, SEG_FIRST);
    f.sealed = true;
    f.durable = (tl_walseg_durable){SEG_FIRST + 5, SEG_FIRST, offs[5] + 104};
    walk_all(&ws, &f, s.buf, s.size, &out);
    assert_int_equal(out.ev[out.n - 1].kind, TL_WALSEG_END);
    fx_seg_free(&s);
}

typedef void (*breaker)(uint8_t *rec);

static void brk_body_len(uint8_t *r) {
    ((tl_rec_hdr *)r)->body_len = 41; /* len stays 104: roundup8(64+41) = 112 */
}
static void brk_kind0(uint8_t *r) {
    ((tl_rec_hdr *)r)->kind = 0;
}
static void brk_reserved(uint8_t *r) {
    ((tl_rec_hdr *)r)->reserved = 1;
}
static void brk_flags(uint8_t *r) {
    ((tl_rec_hdr *)r)->flags = 0x0004;
}
static void brk_padding(uint8_t *r) {
    /* ORDER_NEW: body 40 -> len 104, no padding; shrink body_len to 36 (the
     * len stays 104) so bytes 36..40 are padding, and make one nonzero. */
    tl_rec_hdr *h = (tl_rec_hdr *)r;
    h->kind = 77; /* an unknown kind has no v1 size */
    h->body_len = 36;
    r[64 + 38] = 1;
}
static void brk_short_body(uint8_t *r) {
    tl_rec_hdr *h = (tl_rec_hdr *)r;
    h->kind = TL_KIND_TRADE; /* v1 size 64 > 40 */
}
static void brk_seq0(uint8_t *r) {
    ((tl_rec_hdr *)r)->seq = 0;
}
static void brk_side(uint8_t *r) {
    r[64 + 32] = 3;
}
static void brk_pad(uint8_t *r) {
    tl_rec_hdr *h = (tl_rec_hdr *)r;
    h->kind = TL_KIND_PAD;
    h->symbol = 0;
    h->body_len = 0;
    memset(r + 64, 0, h->len - 64);
}

/* A record that passes its checksum but breaks a field rule is WAL_CORRUPT
 * (rule 3) in the newest segment too, and the walk goes on after it. */
static void test_field_rules(void **state) {
    (void)state;
    struct {
        breaker fn;
        enum tl_rec_err want;
    } cases[] = {
        {brk_body_len, TL_REC_ERR_BODY_LEN}, {brk_kind0, TL_REC_ERR_KIND},
        {brk_reserved, TL_REC_ERR_RESERVED}, {brk_flags, TL_REC_ERR_FLAGS},
        {brk_padding, TL_REC_ERR_PADDING},   {brk_short_body, TL_REC_ERR_SHORT_BODY},
        {brk_seq0, TL_REC_ERR_SEQ0},         {brk_side, TL_REC_ERR_BODY},
        {brk_pad, TL_REC_ERR_KIND},
    };
    for (unsigned i = 0; i < TL_ARRAY_LEN(cases); i++) {
        for (int sealed = 0; sealed < 2; sealed++) {
            fx_seg s;
            fx_chain c;
            uint64_t offs[5];
            make_seg(&s, &c, 5, offs);
            cases[i].fn(s.buf + offs[2]);
            fx_reseal_rec(s.buf + offs[2]);
            tl_walseg ws;
            tl_walseg_init(&ws, SEG_FIRST);
            tl_walseg_facts f = facts(sealed, SEG_BYTES);
            walk_out out;
            walk_all(&ws, &f, s.buf, s.size, &out);
            /* header, 2 records, CORRUPT, 2 records, END */
            assert_int_equal(out.n, 7);
            const tl_walseg_event *ev = &out.ev[3];
            assert_int_equal(ev->kind, TL_WALSEG_CORRUPT);
            assert_int_equal(ev->rule, TL_RULE_FIELDS);
            assert_string_equal(tl_reason_name(ev->reason), tl_rec_err_name(cases[i].want));
            assert_int_equal(ev->offset, offs[2]);
            assert_ptr_equal(ev->rec, s.buf + offs[2]);
            tl_finding fd;
            tl_walseg_finding(&ws, ev, &fd);
            assert_int_equal(fd.check, TL_CHECK_WAL_CORRUPT);
            assert_int_equal(fd.rule, TL_RULE_FIELDS);
            assert_int_equal(fd.offset, offs[2]);
            assert_int_equal(fd.segment, SEG_FIRST);
            assert_int_equal(out.ev[4].kind, TL_WALSEG_RECORD);
            assert_int_equal(out.ev[4].offset, offs[3]);
            assert_int_equal(out.ev[6].kind, TL_WALSEG_END);
            fx_seg_free(&s);
        }
    }
}

static void test_replay_flag_in_wal(void **state) {
    (void)state;
    /* REPLAY is ring-only: in the WAL it is a field error, and the checksum
     * (which leaves the bit out) still holds. */
    fx_seg s;
    fx_chain c;
    uint64_t offs[3];
    make_seg(&s, &c, 3, offs);
    ((tl_rec_hdr *)(s.buf + offs[1]))->flags |= TL_REC_FLAG_REPLAY;
    tl_walseg ws;
    tl_walseg_init(&ws, SEG_FIRST);
    tl_walseg_facts f = facts(false, SEG_BYTES);
    walk_out out;
    walk_all(&ws, &f, s.buf, s.size, &out);
    assert_int_equal(out.ev[2].kind, TL_WALSEG_CORRUPT);
    assert_int_equal(out.ev[2].reason, TL_REC_ERR_FLAGS);
    fx_seg_free(&s);
}

static void test_header(void **state) {
    (void)state;
    fx_seg s;
    fx_chain c;
    make_seg(&s, &c, 3, NULL);
    /* 1. A header being written (zero) in the newest segment: tentative. */
    uint8_t saved[4096];
    memcpy(saved, s.buf, 4096);
    memset(s.buf, 0, 4096);
    tl_walseg ws;
    tl_walseg_event ev;
    tl_walseg_facts f = facts(false, SEG_BYTES);
    tl_walseg_init(&ws, SEG_FIRST);
    tl_walseg_next(&ws, &f, s.buf, 0, s.size, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_TENTATIVE);
    assert_int_equal(ev.rule, TL_RULE_SEGMENT);
    assert_int_equal(ev.reason, TL_REASON_SEG_BASE + TL_SEG_ERR_CHECKSUM);
    assert_int_equal(ev.offset, 0);
    assert_false(ws.done);
    /* ... and once complete, the walk goes on. */
    memcpy(s.buf, saved, 4096);
    tl_walseg_next(&ws, &f, s.buf, 0, s.size, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_HEADER);

    /* 2. A bad magic: sealed -> CORRUPT; newest -> tentative; newest with
     * the durable point in it -> CORRUPT. */
    memcpy(s.buf, "TLYWAL02", 8);
    f.sealed = true;
    tl_walseg_init(&ws, SEG_FIRST);
    tl_walseg_next(&ws, &f, s.buf, 0, s.size, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_CORRUPT);
    assert_int_equal(ev.reason, TL_REASON_SEG_BASE + TL_SEG_ERR_MAGIC);
    assert_true(ws.done);
    tl_finding fd;
    tl_walseg_finding(&ws, &ev, &fd);
    assert_int_equal(fd.rule, TL_RULE_SEGMENT);
    assert_string_equal(tl_reason_name(fd.reason), "bad_magic");
    assert_int_equal(fd.segment, SEG_FIRST);
    assert_int_equal(fd.offset, 0);
    f.sealed = false;
    tl_walseg_init(&ws, SEG_FIRST);
    tl_walseg_next(&ws, &f, s.buf, 0, s.size, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_TENTATIVE);
    f.durable = (tl_walseg_durable){SEG_FIRST + 1, SEG_FIRST, 4096 + 208};
    tl_walseg_init(&ws, SEG_FIRST);
    tl_walseg_next(&ws, &f, s.buf, 0, s.size, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_CORRUPT);
    f.durable = (tl_walseg_durable){0, 0, 0};

    /* 3. A field error under a valid checksum (version 2). */
    memcpy(s.buf, saved, 4096);
    s.hdr->version = 2;
    fx_seg_reseal(&s);
    f.sealed = true;
    tl_walseg_init(&ws, SEG_FIRST);
    tl_walseg_next(&ws, &f, s.buf, 0, s.size, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_CORRUPT);
    assert_int_equal(ev.reason, TL_REASON_SEG_BASE + TL_SEG_ERR_VERSION);

    /* 4. A file shorter than a header. */
    memcpy(s.buf, saved, 4096);
    f = facts(false, 100);
    tl_walseg_init(&ws, SEG_FIRST);
    tl_walseg_next(&ws, &f, s.buf, 0, 100, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_TENTATIVE);
    assert_int_equal(ev.reason, TL_REASON_SEG_BASE + TL_SEG_ERR_SHORT);
    f.sealed = true;
    tl_walseg_next(&ws, &f, s.buf, 0, 100, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_CORRUPT);
    fx_seg_free(&s);
}

static void test_done_is_final(void **state) {
    (void)state;
    fx_seg s;
    fx_chain c;
    uint64_t offs[3];
    make_seg(&s, &c, 3, offs);
    s.buf[offs[1] + 90] ^= 1;
    tl_walseg ws;
    tl_walseg_init(&ws, SEG_FIRST);
    tl_walseg_facts f = facts(true, SEG_BYTES);
    walk_out out;
    walk_all(&ws, &f, s.buf, s.size, &out);
    assert_int_equal(out.ev[out.n - 1].kind, TL_WALSEG_CORRUPT);
    tl_walseg_event ev;
    tl_walseg_next(&ws, &f, s.buf, 0, s.size, &ev);
    assert_int_equal(ev.kind, TL_WALSEG_END);
    assert_int_equal(ev.offset, offs[1]);
    fx_seg_free(&s);
}

static void test_stall_timer(void **state) {
    (void)state;
    const uint64_t ms = 1000000ull, grace = 1000 * ms;
    tl_walseg_stall st;
    tl_walseg_stall_init(&st);
    tl_walseg_event t = {.kind = TL_WALSEG_TENTATIVE, .offset = 4096 + 208};
    tl_walseg_event r = {.kind = TL_WALSEG_RECORD, .offset = 4096 + 208};
    tl_walseg_event nm = {.kind = TL_WALSEG_NEED_MORE, .offset = 4096 + 208};
    assert_false(tl_walseg_stall_step(&st, 7, &t, 0, true, grace));
    assert_false(tl_walseg_stall_step(&st, 7, &nm, 500 * ms, true, grace));
    assert_false(tl_walseg_stall_step(&st, 7, &t, 999 * ms, true, grace));
    assert_true(tl_walseg_stall_step(&st, 7, &t, 1000 * ms, true, grace));
    tl_finding f;
    tl_walseg_stall_finding(&st, &f);
    assert_int_equal(f.check, TL_CHECK_WAL_LAG);
    assert_int_equal(f.reason, TL_REASON_TORN_STALLED);
    assert_int_equal(f.segment, 7);
    assert_int_equal(f.offset, 4096 + 208);
    /* once per grace period */
    assert_false(tl_walseg_stall_step(&st, 7, &t, 1500 * ms, true, grace));
    assert_true(tl_walseg_stall_step(&st, 7, &t, 2000 * ms, true, grace));
    /* the engine goes down: the timer restarts and stays tentative */
    assert_false(tl_walseg_stall_step(&st, 7, &t, 5000 * ms, false, grace));
    assert_false(tl_walseg_stall_step(&st, 7, &t, 9000 * ms, false, grace));
    assert_false(tl_walseg_stall_step(&st, 7, &t, 9500 * ms, true, grace));
    assert_true(tl_walseg_stall_step(&st, 7, &t, 10000 * ms, true, grace));
    /* the record completes: cleared */
    assert_false(tl_walseg_stall_step(&st, 7, &r, 10100 * ms, true, grace));
    assert_false(st.active);
    /* a tentative at another place starts over */
    assert_false(tl_walseg_stall_step(&st, 7, &t, 10200 * ms, true, grace));
    tl_walseg_event t2 = t;
    t2.offset += 104;
    assert_false(tl_walseg_stall_step(&st, 7, &t2, 11000 * ms, true, grace));
    assert_false(tl_walseg_stall_step(&st, 7, &t2, 11900 * ms, true, grace));
    assert_true(tl_walseg_stall_step(&st, 7, &t2, 12000 * ms, true, grace));
    assert_int_equal(st.raised_total, 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_segment),
        cmocka_unit_test(test_end_room_below_64),
        cmocka_unit_test(test_vector_end_slot_of_64),
        cmocka_unit_test(test_need_more_protocol),
        cmocka_unit_test(test_bad_len),
        cmocka_unit_test(test_len_past_end),
        cmocka_unit_test(test_checksum_tail_vs_sealed),
        cmocka_unit_test(test_tentative_then_complete),
        cmocka_unit_test(test_fresh_reread_durable),
        cmocka_unit_test(test_zero_slot_durable),
        cmocka_unit_test(test_field_rules),
        cmocka_unit_test(test_replay_flag_in_wal),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_done_is_final),
        cmocka_unit_test(test_stall_timer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
