/* xwal1.h: the quanta trading-core WAL dialect `xwal1` (wal.md, "Dialect
 * `xwal1`"): segment names, frames, the JSON payload, and the offline
 * verification of a whole log.
 *
 * Layers, bottom up (each usable alone; none does I/O, reads a clock or
 * allocates, except the strict decoder, which is cJSON's):
 *
 *   tl_xwal1_segment_name_parse   "segment-%06d.wal" -> index
 *   tl_xwal1_crc32                CRC-32 IEEE (zlib's crc32, PCLMUL when the CPU has it)
 *   tl_xwal1_walker_*             frames of one segment's bytes: FRAME / END /
 *                                 TENTATIVE / CORRUPT, with the offset
 *   tl_xwal1_decode[_strict]      a payload -> tl_xwal1_rec (fast scanner, or
 *                                 cJSON as the reference; they agree)
 *   tl_xwal1_symtab_* / _bind     a record -> the tl_rec_view every check sees
 *   tl_xwal1_tail_observe         the torn-tail clock rules, for the live tailer
 *   tl_xwal1_checks_*             the checks after decoding, per symbol, shared
 *                                 by the verifier and the live loop (xwal1_checks.c)
 *   tl_xwal1_verifier_*           the whole offline check of a log (xwal1_verify.c)
 *
 * Payload rules. Upstream parses the payload with serde_json into
 * `WalRecord`; tally is at least that strict, and stricter where upstream's
 * own writer can never produce the input:
 *   - RFC 8259 JSON, UTF-8 everywhere (also in strings serde would skip),
 *     no lone surrogate escapes, nesting <= TL_XWAL1_MAX_DEPTH, nothing but
 *     whitespace after the value (json_error);
 *   - the serde schema of WalRecord and of every CoreEvent variant: required
 *     fields present, once, with their types (u64/u32/i64 from their digits,
 *     never through a double; "-0" is no integer, as in serde_json), and
 *     unknown fields skipped, as serde does (bad_field). `symbol_mode` may
 *     be null or absent (older writers did not have it), as serde's Option
 *     allows. tally accepts only the object form of a struct and the string
 *     form of a unit variant (serde also takes arrays and {"Normal":null});
 *   - at most TL_XWAL1_MAX_EVENTS events (too_many_events);
 *   - `symbol` matches [A-Za-z0-9._-]{1,24} and every envelope's symbol
 *     equals it: the seqs are that symbol's counter (bad_symbol);
 *   - `state_hash` is 64 lowercase hex digits (bad_state_hash);
 *   - event seqs are > 0 and strictly ascending, and the record seq is the
 *     last one (seq_order_in_record);
 *   - the last event is the EngineCheckpoint whose state_hash is the
 *     record's, as upstream's persist_command always writes (bad_checkpoint);
 *   - a TradeExecuted price and quantity are decimal u64 without leading
 *     zeros, as u64::to_string writes them (bad_amount).
 * When a payload breaks several rules, the error is the first of that list
 * (json_error, bad_field, too_many_events, bad_symbol, bad_state_hash,
 * seq_order_in_record, bad_checkpoint, bad_amount), so both decoders name the
 * same one. A decoded string that holds U+0000 never equals a name.
 *
 * Mapping to tl_rec_view (tl_xwal1_bind):
 *   checksum  XXH3-64 of the payload bytes
 *   parent    checksum of the previous record *of the same symbol* (tally's
 *             own chain; xwal1 has none, and rule 5 is skipped for it)
 *   seq       the record seq (= its EngineCheckpoint's seq)
 *   fence     fencing_token
 *   ts_ns     the EngineCheckpoint envelope's occurred_at_ms * 1e6 (0 if
 *             negative or too large)
 *   symbol    the id of the name in the symbol table (1..capacity)
 *   kind      TL_KIND_MODE_CHANGE when symbol_mode is set and differs from
 *             the mode of the previous record of that symbol in log order
 *             (a symbol starts NORMAL, as upstream does; null keeps the mode,
 *             as upstream's replay does), else TL_KIND_CHECKPOINT: every
 *             record ends with an EngineCheckpoint that carries state_hash
 *   state_hash, event_seqs, n_events: from the record (in tl_xwal1_rec)
 *   len       frame bytes: 4 + payload_len + 4
 *   body      NULL (body_len 0); the mode and the trades are in tl_xwal1_rec
 */
#ifndef TL_XWAL1_H
#define TL_XWAL1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "finding.h"
#include "record.h"
#include "stream.h"

#define TL_XWAL1_MAGIC                "XWALv1" /* followed by one NUL byte */
#define TL_XWAL1_MAGIC_BYTES          7u
#define TL_XWAL1_FRAME_OVERHEAD_BYTES 8u /* u32 length + u32 crc */
/* The largest payload tally reads: TL_XWAL1_MAX_EVENTS events of a few
 * hundred bytes each are far below it. A length above it is taken as
 * corruption, not a record (payload_too_large). */
#define TL_XWAL1_MAX_PAYLOAD_BYTES (4u << 20)
#define TL_XWAL1_MAX_DEPTH         64u   /* JSON nesting, the top object counts 1 */
#define TL_XWAL1_MAX_SYMBOLS       4096u /* symbol table capacity limit */
/* The per-symbol window and symbol count when none is configured, the same
 * live (tallyd, core/loop.c, admin/config.c) and offline (tallyctl wal
 * verify): a fork further back than the window is uncompared, so two
 * defaults would let the two disagree on the same log. */
#define TL_XWAL1_WINDOW_RECORDS_DEFAULT 4096u
#define TL_XWAL1_SYMBOLS_DEFAULT        256u
#define TL_XWAL1_STATE_HASH_HEX         64u
#define TL_XWAL1_MODE_NULL              0xFFu /* symbol_mode null or absent */
/* Finding `reason` values for xwal1 frame and payload errors:
 * TL_REASON_XWAL1_BASE + enum tl_xwal1_err (named by tl_reason_name). */
#define TL_REASON_XWAL1_BASE 192u

/* ---- errors ---- */

/* Why a segment, frame or payload failed. Stable snake_case names from
 * tl_xwal1_err_name(). The payload errors are in priority order. */
enum tl_xwal1_err {
    TL_XWAL1_OK = 0,
    /* segment */
    TL_XWAL1_ERR_BAD_MAGIC,   /* the first 7 bytes are not XWALv1\0 */
    TL_XWAL1_ERR_SHORT_MAGIC, /* fewer than 7 bytes, a prefix of the magic */
    /* framing */
    TL_XWAL1_ERR_SHORT_LENGTH,      /* 1-3 bytes where a length would start */
    TL_XWAL1_ERR_SHORT_PAYLOAD,     /* a complete length, the payload runs past the end */
    TL_XWAL1_ERR_SHORT_CRC,         /* payload complete, the crc runs past the end */
    TL_XWAL1_ERR_ZERO_LENGTH,       /* a length of 0 followed by nonzero bytes */
    TL_XWAL1_ERR_ZERO_FILLED_TAIL,  /* a length of 0 and only zeros to the end */
    TL_XWAL1_ERR_PAYLOAD_TOO_LARGE, /* length > TL_XWAL1_MAX_PAYLOAD_BYTES */
    TL_XWAL1_ERR_CRC_MISMATCH,
    /* payload, in priority order */
    TL_XWAL1_ERR_JSON,
    TL_XWAL1_ERR_BAD_FIELD,
    TL_XWAL1_ERR_TOO_MANY_EVENTS,
    TL_XWAL1_ERR_BAD_SYMBOL,
    TL_XWAL1_ERR_BAD_STATE_HASH,
    TL_XWAL1_ERR_SEQ_ORDER,
    TL_XWAL1_ERR_BAD_CHECKPOINT,
    TL_XWAL1_ERR_BAD_AMOUNT,
    /* binding */
    TL_XWAL1_ERR_TOO_MANY_SYMBOLS, /* the symbol table is full */
    TL_XWAL1_ERR_COUNT,
};

/* "bad_magic", "crc_mismatch", "json_error", "seq_order_in_record", ... */
const char *tl_xwal1_err_name(enum tl_xwal1_err e);
/* The wal.md reading rule an error breaks (TL_RULE_SEGMENT, _LENGTH,
 * _CHECKSUM or _FIELDS), for tl_finding.rule. */
enum tl_rule tl_xwal1_err_rule(enum tl_xwal1_err e);

/* ---- segment names ---- */

/* "segment-%06d.wal": "segment-", then six digits, or more without a
 * leading zero (what %06d prints for larger values), then ".wal"; index >= 1.
 * Anything else (".tmp" suffixes, "segment-1.wal", "segment-0000001.wal",
 * "segment-000000.wal", overflow) is false. */
bool tl_xwal1_segment_name_parse(const char *name, size_t len, uint64_t *index);
/* Writes "segment-%06llu.wal" and a NUL; returns the length, or 0 if cap is
 * too small or index is 0. */
size_t tl_xwal1_segment_name(char *out, size_t cap, uint64_t index);

/* ---- CRC-32 ---- */

/* zlib's crc32(crc, p, n): CRC-32 IEEE, reflected, init/xorout ~0; start
 * with crc = 0. Uses PCLMULQDQ folding when the CPU has it (chosen once at
 * load time), zlib otherwise; both give zlib's values
 * (test_xwal1_json: test_crc_matches_zlib). */
uint32_t tl_xwal1_crc32(uint32_t crc, const uint8_t *p, size_t n);
uint32_t tl_xwal1_crc32_zlib(uint32_t crc, const uint8_t *p, size_t n); /* zlib only */
bool tl_xwal1_crc32_accelerated(void);

/* ---- frames ---- */

enum tl_xwal1_step {
    TL_XWAL1_FRAME = 0, /* a frame whose crc matched */
    TL_XWAL1_END,       /* no bytes left: the segment ends cleanly */
    TL_XWAL1_TENTATIVE, /* a torn tail of the newest segment (err says which) */
    TL_XWAL1_CORRUPT,   /* err and offset say what and where */
};
const char *tl_xwal1_step_name(enum tl_xwal1_step s); /* "frame", "end", ... */

typedef struct tl_xwal1_frame {
    uint64_t offset; /* of the length word, in the segment */
    const uint8_t *payload;
    uint32_t payload_len;
    uint32_t frame_len; /* 8 + payload_len */
    uint32_t crc;       /* the stored (and matching) crc */
} tl_xwal1_frame;

/* Walks the frames of one segment held in memory. The segment is `newest`
 * when no later segment exists: only there can a frame still be in flight.
 *
 * Verdicts at a frame offset o, with r bytes left:
 *   r == 0                                END
 *   r < 4                                 short_length
 *   length 0, zeros to the end            zero_filled_tail
 *   length 0, then a nonzero byte         zero_length: CORRUPT even in the
 *                                         newest segment (a frame is written
 *                                         length first, in one append)
 *   length > TL_XWAL1_MAX_PAYLOAD_BYTES   payload_too_large: CORRUPT
 *   r < 4 + length                        short_payload
 *   r < 8 + length                        short_crc
 *   crc differs                           crc_mismatch: CORRUPT (frames are
 *                                         written whole; one that is all
 *                                         there must match, wal.md)
 * short_* and zero_filled_tail are TENTATIVE in the newest segment and
 * CORRUPT elsewhere; a segment file shorter than the magic (a file being
 * created) likewise, as short_magic. Upstream calls 1-3 trailing bytes a
 * clean end; tally calls them a torn length (stricter: upstream's writer,
 * restarted in append mode, would put its next frame after them).
 *
 * After END, TENTATIVE or CORRUPT the walker stays there (a length-prefixed
 * stream has no resync point). It never reads outside [seg, seg + bytes). */
typedef struct tl_xwal1_walker {
    const uint8_t *seg; /* the byte at offset `base` of the segment */
    size_t base;        /* 0, or a window's first offset (>= 7) */
    size_t seg_bytes;   /* offset of the end: base + the bytes held */
    size_t off;         /* next frame offset */
    size_t last_off;    /* offset of the item last returned */
    bool newest;
    bool stopped;
    uint8_t last_step; /* enum tl_xwal1_step once stopped */
    uint8_t last_err;  /* enum tl_xwal1_err once stopped */
} tl_xwal1_walker;

/* start_off 0 checks the magic first; a resumed walk passes the offset of
 * the next frame (>= 7) that an earlier walk of the same file reached. If
 * the file is now shorter than that, the walk says CORRUPT short_length
 * there (bytes that held frames are gone). */
void tl_xwal1_walker_init(tl_xwal1_walker *w, const uint8_t *seg, size_t seg_bytes,
                          size_t start_off, bool newest);
/* The same walk over a window of a segment (a live tailer's buffer):
 * `bytes` holds the segment's bytes [base, base + n), and the walk takes
 * base + n as the end of the segment. base is 0 (start_off 0 checks the
 * magic) or >= 7 with start_off >= base. Offsets stay those of the file.
 * Whether a short item at the window's end is a verdict or just bytes not
 * read yet is the caller's to know (xwal1_tail.c reads to the end of the
 * file before it takes one). */
void tl_xwal1_walker_init_window(tl_xwal1_walker *w, const uint8_t *bytes, size_t n, size_t base,
                                 size_t start_off, bool newest);
/* The next item; for TENTATIVE and CORRUPT *err is set and w->last_off is
 * where (0 for the magic). */
enum tl_xwal1_step tl_xwal1_walker_next(tl_xwal1_walker *w, tl_xwal1_frame *fr,
                                        enum tl_xwal1_err *err);

/* ---- payloads ---- */

typedef struct tl_xwal1_trade {
    uint64_t seq; /* the TradeExecuted event seq */
    uint64_t price;
    uint64_t qty;
} tl_xwal1_trade;

/* One decoded payload. Caller-provided; the decoders fill it and allocate
 * nothing (the strict one aside). On error only err, err_what and err_at are
 * meaningful. */
typedef struct tl_xwal1_rec {
    uint64_t seq;
    uint64_t fence; /* fencing_token */
    int64_t ts_ms;  /* the last (checkpoint) event's occurred_at_ms */
    uint32_t n_events;
    uint32_t n_trades;
    uint8_t mode; /* enum tl_mode, or TL_XWAL1_MODE_NULL */
    uint8_t symbol_len;
    char symbol[TL_SYMBOL_NAME_MAX + 1]; /* NUL-terminated */
    uint8_t state_hash[TL_STATE_HASH_BYTES];
    uint64_t event_seqs[TL_XWAL1_MAX_EVENTS]; /* ascending */
    tl_xwal1_trade trades[TL_XWAL1_MAX_EVENTS];
    uint64_t qty_sum;      /* wrapping sum of trade qty (ledger.md) */
    uint64_t notional_sum; /* wrapping sum of price * qty */
    /* the error */
    uint8_t err;           /* enum tl_xwal1_err */
    const char *err_what;  /* a static phrase: "missing field", "invalid escape", ... */
    const char *err_field; /* a static field name, or "" */
    uint32_t err_at;       /* payload offset where it was seen (best effort) */
} tl_xwal1_rec;

/* The fast scanner: one pass, no tree, no allocation. */
enum tl_xwal1_err tl_xwal1_decode(const uint8_t *payload, size_t len, tl_xwal1_rec *rec);
/* The reference: a strict lexer, then cJSON for the tree (allocates; tests,
 * `tallyctl wal verify --strict` and the differential fuzzer). */
enum tl_xwal1_err tl_xwal1_decode_strict(const uint8_t *payload, size_t len, tl_xwal1_rec *rec);

/* ---- symbols and views ---- */

typedef struct tl_xwal1_sym {
    char name[TL_SYMBOL_NAME_MAX + 1];
    uint8_t name_len;
    uint8_t mode; /* last known mode: enum tl_mode, starts NORMAL */
    uint64_t records;
    uint64_t last_checksum; /* parent of the symbol's next record */
} tl_xwal1_sym;

typedef struct tl_xwal1_symtab {
    tl_xwal1_sym *syms; /* [capacity]; id = index + 1 */
    uint16_t *index;    /* [index_slots] open addressing: 0 empty, else id */
    uint32_t capacity;
    uint32_t index_slots; /* power of two >= 2 * capacity */
    uint32_t count;
    uint32_t last_id; /* one-entry cache: logs are mostly one symbol */
} tl_xwal1_symtab;

/* capacity 1..TL_XWAL1_MAX_SYMBOLS; memory 8-aligned. */
size_t tl_xwal1_symtab_bytes(uint32_t capacity);
void tl_xwal1_symtab_init(tl_xwal1_symtab *t, void *mem, uint32_t capacity);
uint32_t tl_xwal1_symtab_find(const tl_xwal1_symtab *t, const char *name, size_t len); /* 0: no */
/* The id of name, adding it if new; 0 when full or the name is invalid. */
uint32_t tl_xwal1_symtab_intern(tl_xwal1_symtab *t, const char *name, size_t len);
const tl_xwal1_sym *tl_xwal1_symtab_get(const tl_xwal1_symtab *t, uint32_t id);

/* Fills v from a decoded record (see the mapping above) and advances the
 * symbol's state (mode, parent, count). v points into rec. Returns
 * TL_XWAL1_ERR_TOO_MANY_SYMBOLS, changing nothing, when the table is full. */
enum tl_xwal1_err tl_xwal1_bind(tl_xwal1_symtab *t, const tl_xwal1_rec *rec,
                                const tl_xwal1_frame *fr, tl_rec_view *v);

/* ---- the torn tail in a live log ---- */

/* This engine publishes no durable position and no heartbeat, so a
 * tentative tail is judged on what the reader sees (wal.md):
 *   - a newer segment exists: read the segment again with newest = false;
 *     a torn tail is then CORRUPT (io/xwal1_tail.c does exactly that, so
 *     the finding carries the walker's own reason, short_payload say, as
 *     the offline verifier reports the same bytes);
 *   - the walk still stops TENTATIVE at the same (segment, offset), the file
 *     has grown since it first did, and torn_grace_ms have passed: frames
 *     keep arriving after a frame that never completes: CORRUPT (reason
 *     torn_stalled);
 *   - otherwise wait. A writer that stalls without writing more stays
 *     tentative; so does a crashed engine's tail (it truncates nothing:
 *     upstream refuses to start on it, which its operators will see).
 * The caller owns time (io/xwal1_tail.c passes its monotonic clock: there
 * is no engine heartbeat to pause the timer). Pure state, no clock read. */
typedef struct tl_xwal1_tail {
    bool active;
    uint8_t err; /* enum tl_xwal1_err of the tentative item */
    uint64_t segment;
    uint64_t offset;
    uint64_t first_ns;
    uint64_t file_bytes_first;
} tl_xwal1_tail;

enum tl_xwal1_tail_verdict {
    TL_XWAL1_TAIL_CLEAR = 0,       /* no tentative tail (any earlier one resolved) */
    TL_XWAL1_TAIL_WAIT,            /* tentative, keep watching */
    TL_XWAL1_TAIL_CORRUPT_NEWER,   /* WAL_CORRUPT: the tail, read again as sealed, says why */
    TL_XWAL1_TAIL_CORRUPT_STALLED, /* report WAL_CORRUPT, TL_REASON_TORN_STALLED */
};

void tl_xwal1_tail_init(tl_xwal1_tail *t);
/* Called after each walk of the newest segment the reader makes (and, with
 * nothing new, again as time passes).
 * tentative: the walk stopped TENTATIVE at (segment, offset) with err;
 * file_bytes: the segment's size at that walk; newer_segment: a later
 * segment exists now. Returns what to do; a CORRUPT verdict clears the state
 * (one fact, one finding). */
enum tl_xwal1_tail_verdict tl_xwal1_tail_observe(tl_xwal1_tail *t, bool tentative, uint64_t segment,
                                                 uint64_t offset, enum tl_xwal1_err err,
                                                 uint64_t file_bytes, bool newer_segment,
                                                 uint64_t now_ns, uint64_t torn_grace_ms);

/* ---- the checks after decoding (xwal1_checks.c) ---- */

/* What every xwal1 reader does with a log once frames are decoded and
 * bound: the offline verifier and the live loop (core/loop.c) both run
 * these, so they report the same findings on the same bytes.
 *
 *   segment   index continuity: the first index read is taken as given
 *             (wal.md "Where a reader starts"; not 1 is an unverified
 *             anchor, no finding); every later one must be the previous
 *             + 1, else SEGMENT_GAP (segment = the index read, seq2 = the
 *             index expected, scope `*`);
 *   record    rules 4 and 6 and the window comparison (core/stream.c) in
 *             the symbol's own log and stream;
 *   corrupt   a WAL_CORRUPT at (segment, offset) with its rule and reason.
 *
 * Why one tl_log (window) and one tl_stream per symbol: the window is keyed
 * by seq (slot = seq & (capacity - 1)), and xwal1 seqs count per symbol, so
 * event seq 8 of BTC-KRW and event seq 8 of ETH-KRW are different facts. A
 * shared window would compare them (a false FORK) and let one symbol's seqs
 * evict the other's. Rules 4 and 6 hold per symbol too (wal.md: "Per symbol,
 * record seqs are strictly increasing"; the fencing token is per engine,
 * but a drop is judged against what the symbol's records showed). So each
 * symbol gets its own window, stream and fence in force, and findings carry
 * the symbol as their scope. Every finding leaves through one sink, in
 * detection order; the sink numbers them (the per-symbol logs' own ids are
 * overwritten there). */
typedef struct tl_xwal1_checks {
    uint32_t max_symbols;    /* symbol ids 1..max_symbols have a log */
    uint64_t window_records; /* per symbol */
    tl_log *logs;            /* [max_symbols] */
    tl_stream *streams;      /* [max_symbols] */
    bool *ready;             /* [max_symbols]: the log is initialised */
    uint8_t *win_mem;        /* max_symbols windows, win_each_bytes apart */
    size_t win_each_bytes;
    uint32_t used;   /* the highest symbol id that has a stream */
    tl_sink out;     /* every finding */
    uint64_t now_ns; /* set by the caller; the per-symbol logs' time */
    bool have_segment;
    bool anchor_unverified; /* the first index read was not 1 */
    uint64_t first_index;
    uint64_t last_index;
} tl_xwal1_checks;

/* Bytes of working memory (64-aligned) for max_symbols (1..
 * TL_XWAL1_MAX_SYMBOLS) windows of window_records (a power of two, 2..2^26)
 * each; 0 if either is out of range. */
size_t tl_xwal1_checks_bytes(uint32_t max_symbols, uint64_t window_records);
/* false if the sizes are invalid or mem_bytes too small. A symbol's window
 * is cleared when its first record comes (offline: only the symbols a log
 * holds cost anything); tl_xwal1_checks_prepare clears them all now
 * (start-up of a live loop: no page is touched for the first time later). */
bool tl_xwal1_checks_init(tl_xwal1_checks *c, uint32_t max_symbols, uint64_t window_records,
                          void *mem, size_t mem_bytes, tl_sink out);
void tl_xwal1_checks_prepare(tl_xwal1_checks *c);
/* A segment file about to be read, by its index. */
void tl_xwal1_checks_segment(tl_xwal1_checks *c, uint64_t index);
/* A bound record (tl_xwal1_bind) at loc. false, and nothing checked, when
 * its symbol id has no log (a binder whose table is larger than
 * max_symbols): the caller reports it as too_many_symbols. */
bool tl_xwal1_checks_record(tl_xwal1_checks *c, const tl_rec_view *v, const tl_loc *loc,
                            tl_stream_result *res);
/* WAL_CORRUPT at (index, offset): rule, reason (TL_REASON_XWAL1_BASE + err,
 * or a torn-tail reason), and the frame's checksum when its crc held (0
 * otherwise). Reading goes on as the caller decides; no stream changes. */
void tl_xwal1_checks_corrupt(tl_xwal1_checks *c, enum tl_rule rule, uint16_t reason, uint64_t index,
                             uint64_t offset, uint64_t checksum);
/* WAL_CORRUPT for an xwal1 error at (index, offset). */
void tl_xwal1_checks_corrupt_err(tl_xwal1_checks *c, enum tl_xwal1_err err, uint64_t index,
                                 uint64_t offset, uint64_t checksum);
/* The stream of symbol id, or NULL if it has none yet. */
const tl_stream *tl_xwal1_checks_stream(const tl_xwal1_checks *c, uint32_t id);
/* The highest fence in force over the symbols (0: none known). */
uint64_t tl_xwal1_checks_fence(const tl_xwal1_checks *c);
/* The highest seq read in order over the symbols (seqs count per symbol:
 * a gauge, not a position). */
uint64_t tl_xwal1_checks_read_seq(const tl_xwal1_checks *c);
/* Sums of the per-symbol logs' counters. */
void tl_xwal1_checks_totals(const tl_xwal1_checks *c, uint64_t *dup_total,
                            uint64_t *uncompared_total);

/* ---- offline verification of a whole log (xwal1_verify.c) ---- */

typedef struct tl_xwal1_verify_cfg {
    uint32_t max_symbols;    /* 1..TL_XWAL1_MAX_SYMBOLS */
    uint64_t window_records; /* per symbol; a power of two >= 2 */
    bool strict;             /* decode with the cJSON reference instead */
} tl_xwal1_verify_cfg;

/* What the log holds for one symbol. */
typedef struct tl_xwal1_sym_summary {
    uint32_t id;
    uint64_t records;  /* frames decoded and checked */
    uint64_t last_seq; /* seq of the symbol's last record in log order */
    uint64_t last_fence;
    uint8_t last_state_hash[TL_STATE_HASH_BYTES];
    uint8_t mode; /* enum tl_mode after the last record */
    uint64_t findings;
} tl_xwal1_sym_summary;

typedef struct tl_xwal1_summary {
    uint64_t segments;
    uint64_t first_index; /* of the first segment read */
    uint64_t last_index;
    bool anchor_unverified; /* the first segment read was not index 1 */
    uint64_t frames;        /* crc-valid frames */
    uint64_t records;       /* frames that decoded and went through the checks */
    uint64_t corrupt;       /* WAL_CORRUPT findings */
    uint64_t findings;      /* all findings */
    uint64_t findings_by_check[TL_CHECK_COUNT];
    uint64_t bytes;
    /* a torn tail of the newest segment: tentative, not a finding */
    bool tentative;
    uint8_t tentative_err; /* enum tl_xwal1_err */
    uint64_t tentative_segment;
    uint64_t tentative_offset;
} tl_xwal1_summary;

typedef struct tl_xwal1_verifier {
    tl_xwal1_verify_cfg cfg;
    tl_xwal1_symtab symtab;
    tl_xwal1_checks checks;     /* one window and stream per symbol */
    tl_xwal1_sym_summary *sums; /* [max_symbols] */
    tl_sink out;
    uint64_t next_id;
    tl_xwal1_summary summary;
    tl_xwal1_rec rec; /* scratch for one decoded record */
} tl_xwal1_verifier;

/* Bytes of working memory (64-aligned) a verifier needs; 0 if cfg is invalid. */
size_t tl_xwal1_verifier_bytes(const tl_xwal1_verify_cfg *cfg);
/* Findings go to sink, with ids 1, 2, ... in detection order. Returns false
 * if cfg is invalid or mem_bytes too small. */
bool tl_xwal1_verifier_init(tl_xwal1_verifier *v, const tl_xwal1_verify_cfg *cfg, void *mem,
                            size_t mem_bytes, tl_sink sink);
/* One segment file, in index order: its index (from its name) and bytes.
 * `newest` for the last one. Index checks: the first index read should be
 * 1 (else the anchor is unverified: no finding), every later one the
 * previous + 1; a missing, repeated or reordered index is SEGMENT_GAP
 * (segment = the index read, seq2 = the index expected), and the segment is
 * still read (its records are compared, so a copy is SEQ_DUPLICATE and a
 * different one a FORK). */
void tl_xwal1_verifier_segment(tl_xwal1_verifier *v, uint64_t index, const uint8_t *bytes,
                               size_t len, bool newest);
const tl_xwal1_summary *tl_xwal1_verifier_summary(const tl_xwal1_verifier *v);
/* Summary of symbol `id` (1..count), NULL if none; its name is in symtab. */
const tl_xwal1_sym_summary *tl_xwal1_verifier_symbol(const tl_xwal1_verifier *v, uint32_t id);

typedef struct tl_xwal1_segment_buf {
    uint64_t index;
    const uint8_t *bytes;
    size_t len;
} tl_xwal1_segment_buf;

/* All segments of a log, oldest first (the last one is the newest). */
void tl_xwal1_verify(tl_xwal1_verifier *v, const tl_xwal1_segment_buf *segs, size_t n);

#endif
