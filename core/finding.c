/* finding.c: the check table of behavior.md and the JSON form of a finding. */
#include "finding.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "assert.h"
#include "segment.h"
#include "xwal1.h"

#define D TL_CLASS_DELAY
#define U TL_CLASS_DUP
#define M TL_CLASS_MISSING
#define O TL_CLASS_OUT_OF_ORDER

static const tl_check_info check_table[TL_CHECK_COUNT] = {
    [TL_CHECK_NONE] = {"NONE", 0, TL_SEV_INFO, TL_FAMILY_NONE},
    [TL_CHECK_SEQ_GAP] = {"SEQ_GAP", M, TL_SEV_SEV1, TL_FAMILY_LOG_INTEGRITY},
    [TL_CHECK_SEQ_DUPLICATE] = {"SEQ_DUPLICATE", U, TL_SEV_INFO, TL_FAMILY_NONE},
    [TL_CHECK_SEQ_REGRESSION] = {"SEQ_REGRESSION", O, TL_SEV_SEV1, TL_FAMILY_LOG_INTEGRITY},
    [TL_CHECK_FORK] = {"FORK", O, TL_SEV_SEV1, TL_FAMILY_SPLIT_BRAIN},
    [TL_CHECK_DUAL_PRODUCER] = {"DUAL_PRODUCER", O, TL_SEV_SEV1, TL_FAMILY_SPLIT_BRAIN},
    [TL_CHECK_CHAIN_BREAK] = {"CHAIN_BREAK", M, TL_SEV_SEV1, TL_FAMILY_LOG_INTEGRITY},
    [TL_CHECK_WAL_CORRUPT] = {"WAL_CORRUPT", M, TL_SEV_SEV1, TL_FAMILY_LOG_INTEGRITY},
    [TL_CHECK_RING_CORRUPT] = {"RING_CORRUPT", M, TL_SEV_SEV1, TL_FAMILY_LOG_INTEGRITY},
    [TL_CHECK_SEGMENT_GAP] = {"SEGMENT_GAP", M, TL_SEV_SEV1, TL_FAMILY_LOG_INTEGRITY},
    [TL_CHECK_FENCE_REGRESSION] = {"FENCE_REGRESSION", O, TL_SEV_SEV1, TL_FAMILY_SPLIT_BRAIN},
    [TL_CHECK_FENCE_UNANNOUNCED] = {"FENCE_UNANNOUNCED", O, TL_SEV_SEV1, TL_FAMILY_SPLIT_BRAIN},
    [TL_CHECK_STALE_LEADER] = {"STALE_LEADER", O, TL_SEV_SEV1, TL_FAMILY_SPLIT_BRAIN},
    [TL_CHECK_UNKNOWN_LEASE] = {"UNKNOWN_LEASE", O, TL_SEV_SEV1, TL_FAMILY_SPLIT_BRAIN},
    [TL_CHECK_DUAL_LEADER] = {"DUAL_LEADER", O, TL_SEV_SEV1, TL_FAMILY_SPLIT_BRAIN},
    [TL_CHECK_STALE_PEER_LEADER] = {"STALE_PEER_LEADER", O, TL_SEV_SEV2, TL_FAMILY_ALERT},
    [TL_CHECK_STATE_HASH_DIVERGENCE] = {"STATE_HASH_DIVERGENCE", O, TL_SEV_SEV1,
                                        TL_FAMILY_SPLIT_BRAIN},
    [TL_CHECK_PEER_LOG_FORK] = {"PEER_LOG_FORK", O, TL_SEV_SEV1, TL_FAMILY_SPLIT_BRAIN},
    [TL_CHECK_LEDGER_AHEAD] = {"LEDGER_AHEAD", U, TL_SEV_SEV1, TL_FAMILY_LEDGER},
    [TL_CHECK_LEDGER_FORK] = {"LEDGER_FORK", O, TL_SEV_SEV1, TL_FAMILY_LEDGER},
    [TL_CHECK_LEDGER_DOUBLE_POSTING] = {"LEDGER_DOUBLE_POSTING", U, TL_SEV_SEV1, TL_FAMILY_LEDGER},
    [TL_CHECK_LEDGER_MISSING_POSTING] = {"LEDGER_MISSING_POSTING", M, TL_SEV_SEV1,
                                         TL_FAMILY_LEDGER},
    [TL_CHECK_LEDGER_REWIND] = {"LEDGER_REWIND", O, TL_SEV_SEV1, TL_FAMILY_LEDGER},
    [TL_CHECK_SETTLEMENT_LAG] = {"SETTLEMENT_LAG", D, TL_SEV_SEV2, TL_FAMILY_SETTLEMENT},
    [TL_CHECK_WAL_LAG] = {"WAL_LAG", D, TL_SEV_SEV2, TL_FAMILY_WAL_LAG},
    [TL_CHECK_STANDBY_LAG] = {"STANDBY_LAG", D, TL_SEV_SEV2, TL_FAMILY_ALERT},
    [TL_CHECK_RING_LAPPED] = {"RING_LAPPED", D, TL_SEV_INFO, TL_FAMILY_NONE},
    [TL_CHECK_UNCLASSIFIED] = {"UNCLASSIFIED", M | O, TL_SEV_SEV1, TL_FAMILY_SPLIT_BRAIN},
    [TL_CHECK_PEER_SILENT] = {"PEER_SILENT", D, TL_SEV_DEGRADED, TL_FAMILY_NONE},
    [TL_CHECK_LEDGER_STALE] = {"LEDGER_STALE", D, TL_SEV_DEGRADED, TL_FAMILY_NONE},
    [TL_CHECK_LEASE_UNREACHABLE] = {"LEASE_UNREACHABLE", D, TL_SEV_DEGRADED, TL_FAMILY_NONE},
    [TL_CHECK_ENGINE_SILENT] = {"ENGINE_SILENT", D, TL_SEV_DEGRADED, TL_FAMILY_NONE},
};

#undef D
#undef U
#undef M
#undef O

const tl_check_info *tl_check_info_of(enum tl_check check) {
    TL_ASSERT((unsigned)check < TL_CHECK_COUNT);
    return &check_table[check];
}

const char *tl_check_name(enum tl_check check) {
    return (unsigned)check < TL_CHECK_COUNT ? check_table[check].name : "?";
}

enum tl_check tl_check_parse(const char *s, size_t n) {
    for (unsigned c = 1; c < TL_CHECK_COUNT; c++) {
        if (strlen(check_table[c].name) == n && memcmp(check_table[c].name, s, n) == 0)
            return (enum tl_check)c;
    }
    return TL_CHECK_NONE;
}

const char *tl_class_name(unsigned cls_bit) {
    switch (cls_bit) {
        case TL_CLASS_DELAY:
            return "delay";
        case TL_CLASS_DUP:
            return "dup";
        case TL_CLASS_MISSING:
            return "missing";
        case TL_CLASS_OUT_OF_ORDER:
            return "out_of_order";
        default:
            return "?";
    }
}

const char *tl_severity_name(enum tl_severity sev) {
    switch (sev) {
        case TL_SEV_INFO:
            return "info";
        case TL_SEV_DEGRADED:
            return "degraded";
        case TL_SEV_SEV2:
            return "SEV2";
        case TL_SEV_SEV1:
            return "SEV1";
    }
    return "?";
}

const char *tl_source_name(enum tl_source src) {
    static const char *const names[TL_SOURCE_COUNT] = {
        "none", "ring", "wal", "peer", "ledger", "lease", "engine", "operator",
    };
    return (unsigned)src < TL_SOURCE_COUNT ? names[src] : "?";
}

void tl_finding_init(tl_finding *f, enum tl_check check) {
    const tl_check_info *ci = tl_check_info_of(check);
    memset(f, 0, sizeof *f);
    f->check = (uint16_t)check;
    f->cls = ci->cls;
    f->severity = ci->severity;
}

uint16_t tl_reason_parse(const char *s) {
    for (unsigned u = 1; u < TL_REASON_XWAL1_BASE + 64u; u++) {
        const char *n = tl_reason_name(u);
        if (n != NULL && strcmp(n, "?") != 0 && strcmp(n, s) == 0)
            return (uint16_t)u;
    }
    return 0;
}

const char *tl_reason_name(unsigned reason) {
    if (reason >= TL_REASON_XWAL1_BASE && reason < TL_REASON_XWAL1_BASE + 64u)
        return tl_xwal1_err_name((enum tl_xwal1_err)(reason - TL_REASON_XWAL1_BASE));
    if (reason < TL_REASON_SEG_BASE)
        return tl_rec_err_name((enum tl_rec_err)reason);
    if (reason < TL_REASON_SEGMENT_INDEX)
        return tl_seg_err_name((enum tl_seg_err)(reason - TL_REASON_SEG_BASE));
    switch ((enum tl_reason)reason) {
        case TL_REASON_SEGMENT_INDEX:
            return "segment_index";
        case TL_REASON_SEGMENT_FIRST_SEQ:
            return "segment_first_seq";
        case TL_REASON_SEGMENT_PREV_CHECKSUM:
            return "segment_prev_checksum";
        case TL_REASON_SEGMENT_NAME:
            return "segment_name";
        case TL_REASON_SEGMENT_END:
            return "segment_end";
        case TL_REASON_HEADER_FENCE:
            return "header_fence";
        case TL_REASON_HEADER_LEADER:
            return "header_leader";
        case TL_REASON_LEADER_CHANGE:
            return "leader_change";
        case TL_REASON_FENCE_RISE:
            return "fence_rise";
        case TL_REASON_FENCE_DROP:
            return "fence_drop";
        case TL_REASON_REPLAY_FLAG:
            return "replay_flag";
        case TL_REASON_TORN_FRESH_READ:
            return "torn_fresh_read";
        case TL_REASON_TORN_STALLED:
            return "torn_stalled";
        case TL_REASON_RING_COPY:
            return "ring_copy";
        case TL_REASON_RING_PAD:
            return "ring_pad";
        case TL_REASON_RING_LEN:
            return "ring_len";
        case TL_REASON_RING_NOT_DURABLE:
            return "ring_not_durable";
        case TL_REASON_LOWER_UNSEEN:
            return "lower_unseen";
        case TL_REASON_LOWER_EVICTED:
            return "lower_evicted";
        case TL_REASON_LEDGER_SILENT:
            return "ledger_silent";
        case TL_REASON_LEDGER_OLD:
            return "ledger_old_reply";
        case TL_REASON_LEDGER_BELOW:
            return "ledger_below_window";
        case TL_REASON_LEDGER_CONTENT:
            return "ledger_content";
        case TL_REASON_LEASE_ABSENT:
            return "lease_absent";
        case TL_REASON_LEASE_OTHER:
            return "lease_other_holder";
        case TL_REASON_LEASE_BEHIND:
            return "lease_revision_behind";
        case TL_REASON_LEASE_FAILED:
            return "lease_failed";
        case TL_REASON_LEASE_REJECTED:
            return "lease_rejected";
        case TL_REASON_LEASE_SILENT:
            return "lease_silent";
        default:
            return "none";
    }
}

typedef struct jbuf {
    char *p;
    size_t cap;
    size_t n;
} jbuf;

__attribute__((format(printf, 2, 3))) static void jput(jbuf *b, const char *fmt, ...) {
    if (b->n + 1 >= b->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (w < 0)
        return;
    b->n += (size_t)w;
    if (b->n >= b->cap)
        b->n = b->cap - 1;
}

/* Keys come out sorted bytewise, so the line can go into the audit log
 * (behavior.md: sorted keys, no whitespace) as it is. */
size_t tl_finding_json(const tl_finding *f, char *buf, size_t cap) {
    TL_ASSERT(cap > 0);
    jbuf b = {buf, cap, 0};
    buf[0] = '\0';
    jput(&b, "{\"check\":\"%s\",\"checksum\":\"%016llx\",\"checksum2\":\"%016llx\",\"class\":[",
         tl_check_name((enum tl_check)f->check), (unsigned long long)f->checksum,
         (unsigned long long)f->checksum2);
    bool first = true;
    for (unsigned bit = 1; bit < (1u << TL_CLASS_COUNT); bit <<= 1) {
        if (f->cls & bit) {
            jput(&b, "%s\"%s\"", first ? "" : ",", tl_class_name(bit));
            first = false;
        }
    }
    jput(&b, "],\"detect_ns\":\"%llu\",\"fence\":\"%llu\",\"fence2\":\"%llu\",\"id\":\"%llu\"",
         (unsigned long long)f->detect_ns, (unsigned long long)f->fence,
         (unsigned long long)f->fence2, (unsigned long long)f->id);
    if (f->incident != 0)
        jput(&b, ",\"incident\":\"%llu\"", (unsigned long long)f->incident);
    if (!tl_id_is_zero(f->node)) {
        jput(&b, ",\"node\":\"");
        for (unsigned i = 0; i < TL_ID_BYTES; i++)
            jput(&b, "%02x", f->node[i]);
        jput(&b, "\"");
    }
    jput(&b, ",\"offset\":\"%llu\"", (unsigned long long)f->offset);
    if (f->reason != TL_REASON_NONE)
        jput(&b, ",\"reason\":\"%s\"", tl_reason_name(f->reason));
    if (f->rule != TL_RULE_NONE)
        jput(&b, ",\"rule\":%u", f->rule);
    if (f->symbol == 0)
        jput(&b, ",\"scope\":\"*\"");
    else
        jput(&b, ",\"scope\":%u", f->symbol);
    jput(&b, ",\"segment\":\"%llu\",\"seq\":\"%llu\",\"seq2\":\"%llu\",\"severity\":\"%s\"",
         (unsigned long long)f->segment, (unsigned long long)f->seq, (unsigned long long)f->seq2,
         tl_severity_name((enum tl_severity)f->severity));
    jput(&b, ",\"source\":\"%s\"", tl_source_name((enum tl_source)f->source));
    if (f->source2 != TL_SOURCE_NONE)
        jput(&b, ",\"source2\":\"%s\"", tl_source_name((enum tl_source)f->source2));
    jput(&b, "}");
    return b.n;
}
