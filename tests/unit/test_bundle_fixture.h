/* test_bundle_fixture.h: what the bundle tests share (test_bundle.c,
 * test_bundle_svc.c): a real WAL written by io/wal_writer, an audit log with
 * an incident's findings and actions, an Ed25519 key pair, and a rewriter
 * that tampers with a bundle entry by entry. Header-only: every test_*.c
 * is its own program. */
#ifndef TEST_BUNDLE_FIXTURE_H
#define TEST_BUNDLE_FIXTURE_H

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "admin/audit.h"
#include "admin/bundle.h"
#include "core/finding.h"
#include "io/wal_writer.h"

typedef struct bfx {
    char *root;
    char wal[512];
    char state[512];
    char audit[512];
    char out[512];
    char key[512];
    char pub[512];
    char other_pub[512];
    EVP_PKEY *pkey;
    uint64_t last_seq;
    uint64_t segments;
} bfx;

static inline void bfx_keypair(const char *priv_path, const char *pub_path, EVP_PKEY **keep) {
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    assert_non_null(k);
    if (priv_path != NULL) {
        FILE *f = fopen(priv_path, "w");
        assert_non_null(f);
        assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
        fclose(f);
    }
    FILE *f = fopen(pub_path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PUBKEY(f, k), 1);
    fclose(f);
    if (keep != NULL)
        *keep = k;
    else
        EVP_PKEY_free(k);
}

/* records ORDER_NEW records in segments of seg_bytes. */
static inline void bfx_wal(bfx *x, uint64_t records, uint64_t seg_bytes) {
    tl_wal_config cfg;
    tl_wal_config_default(&cfg);
    cfg.dir = x->wal;
    cfg.segment_bytes = seg_bytes;
    cfg.sync_thread = false;
    cfg.initial_fence = 1;
    memcpy(cfg.engine_id, "bundle-test-eng1", TL_ID_BYTES);
    tl_wal *w = NULL;
    tl_wal_recovered rec;
    assert_int_equal(tl_wal_open(&w, &cfg, NULL, &rec), TL_WAL_OK);
    for (uint64_t i = 0; i < records; i++) {
        tl_body_order_new b;
        memset(&b, 0, sizeof b);
        b.order_id = i + 1;
        b.account = 7;
        b.price = 100 + (int64_t)(i % 50);
        b.qty = 1 + (int64_t)(i % 3);
        b.side = TL_SIDE_BUY;
        b.type = TL_ORDER_LIMIT;
        tl_wal_appended a;
        assert_int_equal(
            tl_wal_append(w, TL_KIND_ORDER_NEW, 1, &b, sizeof b, 1795000000000000000ull + i, &a),
            TL_WAL_OK);
        x->last_seq = a.seq;
    }
    assert_int_equal(tl_wal_sync(w), TL_WAL_OK);
    assert_int_equal(tl_wal_close(w), TL_WAL_OK);
}

/* An incident's trace in the audit log: its findings, a planned and an
 * executed halt, and unrelated lines. */
static inline void bfx_audit(bfx *x, uint64_t incident, uint64_t fork_seq) {
    tl_audit a;
    char err[256];
    assert_int_equal(tl_audit_open(&a, x->state, 1u << 20, NULL, err, sizeof err), 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    tl_finding f;
    tl_finding_init(&f, TL_CHECK_SEQ_GAP);
    f.severity = TL_SEV_INFO;
    f.seq = 50;
    f.id = 1;
    assert_int_equal(tl_audit_finding(&a, &f, now), 0); /* no incident */
    tl_finding_init(&f, TL_CHECK_FORK);
    f.severity = TL_SEV_SEV1;
    f.seq = fork_seq;
    f.id = 2;
    f.incident = incident;
    f.source = TL_SOURCE_RING;
    assert_int_equal(tl_audit_finding(&a, &f, now + 1), 0);
    tl_action act;
    memset(&act, 0, sizeof act);
    act.cmd = TL_CMD_SET_SYMBOL_MODE;
    act.mode = TL_MODE_HARD_HALT;
    act.from_mode = TL_FROM_MODE_NONE;
    act.incident = incident;
    act.finding_id = 2;
    act.check = TL_CHECK_FORK;
    act.severity = TL_SEV_SEV1;
    strcpy(act.symbol_name, "*");
    strcpy(act.reason, "FORK");
    act.state = TL_ACT_PLANNED;
    assert_int_equal(tl_audit_action(&a, &act, NULL, now + 2), 0);
    memset(act.id, 0xab, TL_ID_BYTES);
    act.state = TL_ACT_EXECUTED;
    assert_int_equal(tl_audit_action(&a, &act, NULL, now + 3), 0);
    act.incident = incident + 100; /* another incident's action */
    assert_int_equal(tl_audit_action(&a, &act, NULL, now + 4), 0);
    assert_int_equal(tl_audit_sync(&a), 0);
    tl_audit_close(&a);
}

static inline void bfx_setup(bfx *x, const char *tag, uint64_t records, uint64_t seg_bytes) {
    memset(x, 0, sizeof *x);
    x->root = tu_tmpdir(tag);
    snprintf(x->wal, sizeof x->wal, "%s/wal", x->root);
    snprintf(x->state, sizeof x->state, "%s/state", x->root);
    snprintf(x->audit, sizeof x->audit, "%s/state/audit", x->root);
    snprintf(x->out, sizeof x->out, "%s/bundles", x->root);
    snprintf(x->key, sizeof x->key, "%s/sign.pem", x->root);
    snprintf(x->pub, sizeof x->pub, "%s/sign.pub", x->root);
    snprintf(x->other_pub, sizeof x->other_pub, "%s/other.pub", x->root);
    assert_int_equal(mkdir(x->state, 0700), 0);
    bfx_keypair(x->key, x->pub, &x->pkey);
    bfx_keypair(NULL, x->other_pub, NULL);
    bfx_wal(x, records, seg_bytes);
}

static inline void bfx_teardown(bfx *x) {
    EVP_PKEY_free(x->pkey);
    tu_rm_rf(x->root);
    free(x->root);
}

/* How many names in dir start with prefix. */
static inline int bfx_count(const char *dir, const char *prefix) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls -A '%s' 2>/dev/null | grep -c '^%s' || true", dir, prefix);
    FILE *p = popen(cmd, "r");
    int n = 0;
    if (p != NULL) {
        if (fscanf(p, "%d", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

/* ---- tampering ---- */

enum bfx_tamper {
    BFX_FLIP_BYTE, /* change one byte of entry `target` */
    BFX_DROP,      /* leave entry `target` out */
    BFX_ADD,       /* add an entry named `target` */
    BFX_RENAME,    /* store entry "ledger/watermarks.jsonl" as `target` */
};

/* Copies a bundle entry by entry with one change. */
static inline void bfx_rewrite(const char *src, const char *dst, enum bfx_tamper how,
                               const char *target) {
    struct archive *in = archive_read_new();
    archive_read_support_filter_zstd(in);
    archive_read_support_format_tar(in);
    assert_int_equal(archive_read_open_filename(in, src, 65536), ARCHIVE_OK);
    struct archive *out = archive_write_new();
    archive_write_add_filter_zstd(out);
    archive_write_set_format_pax_restricted(out);
    assert_int_equal(archive_write_open_filename(out, dst), ARCHIVE_OK);
    struct archive_entry *e;
    bool done = false;
    while (archive_read_next_header(in, &e) == ARCHIVE_OK) {
        const char *p = archive_entry_pathname(e);
        size_t size = (size_t)archive_entry_size(e);
        uint8_t *buf = malloc(size + 1);
        assert_non_null(buf);
        assert_int_equal(archive_read_data(in, buf, size), (la_ssize_t)size);
        bool hit = strcmp(p, target) == 0;
        if (how == BFX_DROP && hit) {
            free(buf);
            done = true;
            continue;
        }
        if (how == BFX_FLIP_BYTE && hit) {
            assert_true(size > 0);
            buf[size / 2] ^= 0x01;
            done = true;
        }
        struct archive_entry *c = archive_entry_clone(e);
        if (how == BFX_RENAME && strcmp(p, "ledger/watermarks.jsonl") == 0) {
            archive_entry_set_pathname(c, target);
            done = true;
        }
        assert_int_equal(archive_write_header(out, c), ARCHIVE_OK);
        assert_int_equal(archive_write_data(out, buf, size), (la_ssize_t)size);
        archive_entry_free(c);
        free(buf);
    }
    if (how == BFX_ADD) {
        struct archive_entry *c = archive_entry_new();
        archive_entry_set_pathname(c, target);
        archive_entry_set_size(c, 5);
        archive_entry_set_filetype(c, AE_IFREG);
        archive_entry_set_perm(c, 0400);
        assert_int_equal(archive_write_header(out, c), ARCHIVE_OK);
        assert_int_equal(archive_write_data(out, "extra", 5), 5);
        archive_entry_free(c);
        done = true;
    }
    assert_true(done);
    archive_read_free(in);
    assert_int_equal(archive_write_close(out), ARCHIVE_OK);
    archive_write_free(out);
}

#endif
