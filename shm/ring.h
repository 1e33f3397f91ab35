/* ring.h: the shared-memory ring TLYRING1 (ring.md), both sides.
 *
 * One object `/tally.<name>` (or a file path) of 4096 + capacity bytes: a
 * control block, then a data region of wal.md records. The engine is the one
 * producer (it never waits for anybody); tally is the one consumer (it polls
 * the seq field of the record at its own position, the commit stamp).
 *
 * The API, by side:
 *   engine (libtally_engine): tl_ring_create, tl_ring_publish, tl_ring_flush,
 *     tl_ring_beat, tl_ring_set_last_seq, tl_ring_set_durable,
 *     tl_ring_effective_mode, tl_deadman_expired;
 *   tally: tl_ring_map_open/step (attach and mapping), tl_ring_identity_read,
 *     tl_ring_liveness_*, tl_ring_consumer_* and tl_ring_poll, the
 *     consumer-region stores, tl_ring_durable_read, tl_ring_fast_raise_*.
 *
 * The control block is shared with another process, so everything in it
 * that the other side writes is outside bytes: nothing here asserts on it.
 * Fields are C11 atomics (lock-free, so they work across processes); the
 * memory order of each access is argued where it happens.
 */
#ifndef TL_SHM_RING_H
#define TL_SHM_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/record.h"

/* Lock-based atomics would put the lock in one process's private memory. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free across processes");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free across processes");
_Static_assert(ATOMIC_CHAR_LOCK_FREE == 2, "8-bit atomics must be lock-free across processes");

#define TL_RING_MAGIC            "TLYRING1"
#define TL_RING_VERSION          1u
#define TL_RING_CONTROL_BYTES    4096u
#define TL_RING_MIN_CAPACITY     (1ull << 20)
#define TL_RING_DEFAULT_CAPACITY (64ull << 20)
/* A limit on capacity so a corrupt header cannot make tally map a huge object. */
#define TL_RING_MAX_CAPACITY ((uint64_t)1 << 40)
/* The longest item on the ring: a PAD is < 65536 + 64 bytes. */
#define TL_RING_ITEM_LIMIT_BYTES TL_PAD_LIMIT_BYTES
/* The consumer's private copy: one item, rounded up to a cache line. */
#define TL_RING_COPY_BYTES            65664u
#define TL_RING_PUBLISH_EVERY_RECORDS 64u
#define TL_RING_SYMBOL_SLOTS          3584u /* fast_symbol_mode[1..3583] */
#define TL_RING_NAME_MAX              200u
#define TL_RING_PATH_MAX              4096u
#define TL_RING_ATTACH_TIMEOUT_NS     1000000000ull /* ring.md: refuse after 1 s */
#define TL_RING_COPY_TRIES            3u            /* then RING_CORRUPT */
#define TL_RING_HEADER_CHECKED_BYTES  56u           /* header_checksum covers [0, 56) */

/* consumer_state */
enum tl_ring_consumer_state {
    TL_CONSUMER_ABSENT = 0,
    TL_CONSUMER_CATCHING_UP = 1,
    TL_CONSUMER_FOLLOWING = 2,
    TL_CONSUMER_HALTED = 3,
};

/* ---- the control block, bytes [0, 4096) ---- */

/* The first 64 bytes in a private, decoded copy. In shared memory they are
 * accessed as 8 atomic words (tl_ring_ctl.header_words), so that a consumer
 * that reads them while the producer is still writing them races in no C11
 * sense; the header checksum then tells it whether the copy is whole. */
typedef struct tl_ring_header {
    uint8_t magic[8];
    uint32_t version;
    uint32_t control_len;
    uint64_t capacity;
    uint8_t engine_id[TL_ID_BYTES];
    uint64_t created_ns; /* CLOCK_REALTIME at creation */
    uint32_t producer_pid;
    uint32_t reserved;
    uint64_t header_checksum; /* XXH3-64 of [0, 56) */
} tl_ring_header;
_Static_assert(sizeof(tl_ring_header) == 64, "ring.md");
_Static_assert(offsetof(tl_ring_header, magic) == 0, "ring.md");
_Static_assert(offsetof(tl_ring_header, version) == 8, "ring.md");
_Static_assert(offsetof(tl_ring_header, control_len) == 12, "ring.md");
_Static_assert(offsetof(tl_ring_header, capacity) == 16, "ring.md");
_Static_assert(offsetof(tl_ring_header, engine_id) == 24, "ring.md");
_Static_assert(offsetof(tl_ring_header, created_ns) == 40, "ring.md");
_Static_assert(offsetof(tl_ring_header, producer_pid) == 48, "ring.md");
_Static_assert(offsetof(tl_ring_header, reserved) == 52, "ring.md");
_Static_assert(offsetof(tl_ring_header, header_checksum) == 56, "ring.md");

/* Each group sits in its own 128-byte-aligned region (a cache line and its
 * adjacent-line prefetch partner): header, producer, consumer, mode words,
 * symbol modes. */
typedef struct tl_ring_ctl {
    /* [0, 128): written once by the producer */
    _Atomic uint64_t header_words[7]; /* tl_ring_header bytes [0, 56) */
    _Atomic uint64_t header_checksum;
    uint8_t reserved_header[64];
    /* [128, 256): producer */
    _Atomic uint64_t publish;
    _Atomic uint64_t producer_heartbeat_mono_ns;
    _Atomic uint64_t last_seq;
    uint8_t reserved_producer0[8];
    _Atomic uint64_t wal_durable_gen; /* seqlock: odd while the next three change */
    _Atomic uint64_t wal_durable_seq;
    _Atomic uint64_t wal_durable_segment_first_seq;
    _Atomic uint64_t wal_durable_offset;
    uint8_t reserved_producer1[64];
    /* [256, 384): consumer */
    _Atomic uint64_t consumer_position;
    _Atomic uint64_t consumer_heartbeat_mono_ns;
    _Atomic uint32_t consumer_pid;
    _Atomic uint32_t consumer_state; /* enum tl_ring_consumer_state */
    _Atomic uint64_t consumer_wal_seq;
    uint8_t reserved_consumer[96];
    /* [384, 512): fast-path mode words, written by the consumer */
    _Atomic uint32_t fast_global_mode;
    _Atomic uint32_t fast_withdrawals_halted;
    _Atomic uint64_t fast_mode_epoch;
    uint8_t reserved_fast[112];
    /* [512, 4096) */
    _Atomic uint8_t fast_symbol_mode[TL_RING_SYMBOL_SLOTS];
} tl_ring_ctl;
_Static_assert(sizeof(tl_ring_ctl) == TL_RING_CONTROL_BYTES, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, header_words) == 0, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, header_checksum) == 56, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, publish) == 128, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, producer_heartbeat_mono_ns) == 136, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, last_seq) == 144, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, wal_durable_gen) == 160, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, wal_durable_seq) == 168, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, wal_durable_segment_first_seq) == 176, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, wal_durable_offset) == 184, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, consumer_position) == 256, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, consumer_heartbeat_mono_ns) == 264, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, consumer_pid) == 272, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, consumer_state) == 276, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, consumer_wal_seq) == 280, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, fast_global_mode) == 384, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, fast_withdrawals_halted) == 388, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, fast_mode_epoch) == 392, "ring.md");
_Static_assert(offsetof(tl_ring_ctl, fast_symbol_mode) == 512, "ring.md");
_Static_assert(sizeof(_Atomic uint64_t) == 8 && sizeof(_Atomic uint32_t) == 4 &&
                   sizeof(_Atomic uint8_t) == 1,
               "atomics have the size of their plain types");

/* ---- errors ---- */

/* Why creating, opening or attaching failed, or why a fast-path write was
 * refused. Names are stable (tl_ring_err_name). */
enum tl_ring_err {
    TL_RING_OK = 0,
    TL_RING_PENDING,             /* "pending": attach still waiting (not an error yet) */
    TL_RING_ERR_NAME,            /* "bad_name" */
    TL_RING_ERR_CAPACITY,        /* "bad_capacity": not a power of two in [1 MiB, 1 TiB] */
    TL_RING_ERR_NOT_FOUND,       /* "not_found": ENOENT (the engine may be re-creating it) */
    TL_RING_ERR_EXISTS,          /* "exists": O_EXCL lost a race with another producer */
    TL_RING_ERR_SYS,             /* "sys_error": a system call failed (errno kept) */
    TL_RING_ERR_TOO_SMALL,       /* "too_small": size < 4096, or < 4096 + capacity, after 1 s */
    TL_RING_ERR_BAD_MAGIC,       /* "bad_magic" */
    TL_RING_ERR_BAD_VERSION,     /* "bad_version" */
    TL_RING_ERR_NOT_A_RING,      /* "not_a_ring": control_len or capacity impossible */
    TL_RING_ERR_HEADER_CHECKSUM, /* "bad_header_checksum": fields plausible, checksum never right */
    TL_RING_ERR_NO_SLOT,         /* "no_slot": symbol 0 or >= 3584 has no fast-path word */
    TL_RING_ERR_BAD_MODE,        /* "bad_mode": a mode above HARD_HALT */
    TL_RING_ERR_COUNT,
};
const char *tl_ring_err_name(enum tl_ring_err e);

/* ---- shared helpers ---- */

typedef struct tl_ring_durable {
    uint64_t seq;               /* highest seq the engine has fsynced; 0 = none yet */
    uint64_t segment_first_seq; /* the segment that holds it */
    uint64_t offset;            /* end of the last durable record in that segment */
} tl_ring_durable;

/* (st_dev, st_ino, created_ns, producer_pid): one incarnation. */
typedef struct tl_ring_identity {
    uint64_t dev;
    uint64_t ino;
    uint64_t created_ns;
    uint32_t producer_pid;
} tl_ring_identity;

static inline bool tl_ring_identity_equal(const tl_ring_identity *a, const tl_ring_identity *b) {
    return a->dev == b->dev && a->ino == b->ino && a->created_ns == b->created_ns &&
           a->producer_pid == b->producer_pid;
}

/* Resolves a ring name: without '/', the POSIX shm object "/tally.<name>"
 * (is_shm = true); with a '/', a file path. */
enum tl_ring_err tl_ring_resolve_name(const char *name, char *out, size_t out_len, bool *is_shm);

bool tl_ring_capacity_valid(uint64_t capacity);

/* XXH3-64 of the header's first 56 bytes. */
uint64_t tl_ring_header_checksum(const tl_ring_header *h);

/* Loads the 64 header bytes with relaxed atomic loads after an acquire load
 * of header_checksum (see ring_map.c). */
void tl_ring_header_load(const tl_ring_ctl *ctl, tl_ring_header *out);

/* Checks a header copy: OK, or the first reason it is not a usable ring
 * (magic, version, control_len and capacity, then the checksum). */
enum tl_ring_err tl_ring_header_check(const tl_ring_header *h);

uint64_t tl_ring_now_mono_ns(void);

/* The object behind a resolved name: shm_open or open, unlink or shm_unlink
 * (EINTR handled; -1 and errno on failure). */
int tl_ring_obj_open(const char *path, bool is_shm, int flags, unsigned mode);
int tl_ring_obj_unlink(const char *path, bool is_shm);

/* ---- producer (engine side) ---- */

/* The dead-man's memory on the engine side (deadman.c). */
typedef struct tl_deadman {
    bool armed;
    bool seen_running;   /* a nonzero consumer_state seen since it armed */
    uint64_t stop_hb_ns; /* heartbeat when the last clean stop was seen */
} tl_deadman;

typedef struct tl_ring_producer {
    /* hot: touched on every publish */
    _Atomic uint64_t *data; /* the data region as 8-byte words */
    uint64_t mask;          /* capacity - 1 */
    uint64_t capacity;
    uint64_t position;            /* next byte to write; only grows */
    uint64_t published;           /* the value last stored in `publish` */
    uint64_t publish_every_bytes; /* capacity / 8 */
    uint32_t since_publish;       /* items since the last publish store */
    uint64_t last_seq;
    tl_ring_ctl *ctl;
    /* cold */
    uint8_t *stage; /* 8-aligned, TL_RING_COPY_BYTES: the PAD, and publish_encode */
    void *map;
    size_t map_bytes;
    uint64_t durable_gen; /* the seqlock gen; the producer is its only writer */
    uint64_t pads;
    uint64_t old_consumer_wal_seq;
    bool old_object_found; /* an old object with a valid header was there */
    tl_ring_identity identity;
    tl_deadman deadman;
    char path[TL_RING_PATH_MAX];
    bool is_shm;
} tl_ring_producer;

/* Creates a new incarnation (ring.md "Object and lifetime"): reads the old
 * object's consumer_wal_seq, unlinks the name (only if it holds a ring, or
 * an unfinished one: anything else is NOT_A_RING and is left alone, so a
 * mistyped path never deletes a file), creates it O_CREAT|O_EXCL,
 * sizes it once to 4096 + capacity, maps it, writes the header with
 * wal_durable_* = *recovered (NULL: none) and consumer_wal_seq = the old
 * value, and writes header_checksum last. Allocates; call at start-up.
 * On TL_RING_ERR_SYS, errno says why. */
enum tl_ring_err tl_ring_create(const char *name, uint64_t capacity,
                                const uint8_t engine_id[TL_ID_BYTES],
                                const tl_ring_durable *recovered, tl_ring_producer **out);
/* Unmaps; never unlinks (a dead producer must stay visible as dead). */
void tl_ring_close(tl_ring_producer *p);

/* Publishes one encoded record (core/record.h: header, body, checksum set;
 * 8-aligned; len == its header len). Writes a PAD first when the record does
 * not fit before the end (ring.md "Data region"). Never waits. */
void tl_ring_publish(tl_ring_producer *p, const void *rec, uint32_t len);
/* Encodes into the producer's staging buffer, then publishes. Returns len, or
 * 0 if body_len is too large. m->ts_ns may come back +1 (wal.md). */
uint32_t tl_ring_publish_encode(tl_ring_producer *p, tl_rec_meta *m, const void *body,
                                uint32_t body_len);
/* Stores `publish` up to the newest commit. Call before the producer idles,
 * blocks or sleeps. */
void tl_ring_flush(tl_ring_producer *p);
static inline uint64_t tl_ring_producer_position(const tl_ring_producer *p) {
    return p->position;
}

/* producer_heartbeat_mono_ns: at least every engine.beat_ms, from a thread
 * WAL I/O cannot block. */
void tl_ring_beat(tl_ring_producer *p, uint64_t now_mono_ns);
void tl_ring_set_last_seq(tl_ring_producer *p, uint64_t seq);
/* The wal_durable_* seqlock writer. One writer thread at a time. */
void tl_ring_set_durable(tl_ring_producer *p, uint64_t seq, uint64_t segment_first_seq,
                         uint64_t offset);

/* The engine's effective fast-path mode for a symbol: the max of
 * fast_global_mode and fast_symbol_mode[symbol] (ids 1..3583 have a slot).
 * A value above HARD_HALT (a scribbled word) reads as HARD_HALT: the engine
 * fails safe. Acquire loads: they pair with tally's release stores, and on
 * x86 they are plain loads, so this is fit for the engine's hot path. */
static inline uint32_t tl_ring_fast_mode_of(const tl_ring_ctl *ctl, uint32_t symbol) {
    uint32_t g = atomic_load_explicit(&ctl->fast_global_mode, memory_order_acquire);
    uint32_t s = 0;
    if (symbol >= 1 && symbol < TL_RING_SYMBOL_SLOTS)
        s = atomic_load_explicit(&ctl->fast_symbol_mode[symbol], memory_order_acquire);
    uint32_t m = g > s ? g : s;
    return m > TL_MODE_HARD_HALT ? TL_MODE_HARD_HALT : m;
}
static inline uint32_t tl_ring_effective_mode(const tl_ring_producer *p, uint32_t symbol) {
    return tl_ring_fast_mode_of(p->ctl, symbol);
}
/* Nonzero means withdrawals are halted. */
static inline bool tl_ring_withdrawals_halted(const tl_ring_producer *p) {
    return atomic_load_explicit(&p->ctl->fast_withdrawals_halted, memory_order_acquire) != 0;
}
/* Bumped after every fast-path write: an engine can poll this one word. */
static inline uint64_t tl_ring_fast_epoch(const tl_ring_producer *p) {
    return atomic_load_explicit(&p->ctl->fast_mode_epoch, memory_order_acquire);
}

/* ---- dead-man (engine side, deadman.c) ---- */

enum tl_deadman_verdict {
    TL_DEADMAN_DISARMED = 0, /* no heartbeat yet, or a clean stop */
    TL_DEADMAN_OK = 1,       /* armed, heartbeat fresh */
    TL_DEADMAN_EXPIRED = 2,  /* armed, heartbeat older than max_age_ms */
};
const char *tl_deadman_verdict_name(enum tl_deadman_verdict v);

/* Pure: one observation of (consumer_heartbeat_mono_ns, consumer_state) at
 * now_ns. Rules (ring.md "Dead-man heartbeat"): armed only after the first
 * nonzero heartbeat; disarmed when a consumer that was seen running stores
 * state 0 (a clean stop); re-armed by a heartbeat newer than that stop. */
enum tl_deadman_verdict tl_deadman_step(tl_deadman *d, uint64_t heartbeat_ns, uint32_t state,
                                        uint64_t now_ns, uint32_t max_age_ms);
/* Loads the two consumer words of the producer's ring and steps. One thread
 * at a time (it updates p->deadman). */
enum tl_deadman_verdict tl_deadman_check_at(tl_ring_producer *p, uint64_t now_ns,
                                            uint32_t max_age_ms);
bool tl_deadman_expired_at(tl_ring_producer *p, uint64_t now_ns, uint32_t max_age_ms);
/* Reads CLOCK_MONOTONIC. */
bool tl_deadman_expired(tl_ring_producer *p, uint32_t max_age_ms);
/* The spec's name. */
static inline bool tally_deadman_expired(tl_ring_producer *ring, uint32_t max_age_ms) {
    return tl_deadman_expired(ring, max_age_ms);
}

/* ---- mapping and attaching (tally side, ring_map.c) ---- */

enum tl_ring_map_phase {
    TL_MAP_CLOSED = 0,
    TL_MAP_OPENING, /* waiting for the name, a size >= 4096, the header checksum */
    TL_MAP_SIZING,  /* header good: waiting for size >= 4096 + capacity */
    TL_MAP_READY,
    TL_MAP_FAILED,
};

typedef struct tl_ring_map {
    enum tl_ring_map_phase phase;
    enum tl_ring_err err; /* why it FAILED */
    int fd;
    uint8_t *base;     /* [0, map_bytes) */
    size_t map_bytes;  /* 4096 while opening, then 4096 + capacity */
    bool owns_mapping; /* false for tl_ring_map_from_memory */
    tl_ring_ctl *ctl;
    _Atomic uint64_t *data;
    uint64_t capacity;
    uint64_t mask;
    tl_ring_header header; /* the verified copy */
    tl_ring_identity identity;
    uint64_t started_ns; /* first successful open: the 1 s clock starts here */
    int sys_errno;
    char path[TL_RING_PATH_MAX];
    bool is_shm;
} tl_ring_map;

/* Prepares an attach; no system call yet. */
enum tl_ring_err tl_ring_map_init(tl_ring_map *m, const char *name);
/* One non-blocking attach step at now_mono_ns (the caller beats and sleeps
 * between steps). Returns OK once mapped, PENDING while waiting,
 * NOT_FOUND while the name is absent, or the reason it refuses. */
enum tl_ring_err tl_ring_map_step(tl_ring_map *m, uint64_t now_mono_ns);
/* Steps with 1 ms sleeps until OK, a refusal, or timeout_ms (NOT_FOUND or
 * PENDING then). For tools and tests; tally's threads use the step. */
enum tl_ring_err tl_ring_map_open_wait(tl_ring_map *m, const char *name, uint32_t timeout_ms);
/* A ring image already in memory (tests, fuzzing): the header must check. */
enum tl_ring_err tl_ring_map_from_memory(tl_ring_map *m, void *base, size_t len);
void tl_ring_map_close(tl_ring_map *m);

/* Reads the identity of whatever the name holds now. OK, NOT_FOUND (the
 * engine's unlink-and-create window: keep the old mapping), PENDING (header
 * not written yet), or SYS. */
enum tl_ring_err tl_ring_identity_read(const char *name, tl_ring_identity *out);

/* Consumer-region stores (tally side). */
void tl_ring_consumer_beat(tl_ring_map *m, uint64_t now_mono_ns);
void tl_ring_consumer_set_state(tl_ring_map *m, enum tl_ring_consumer_state state);
void tl_ring_consumer_set_wal_seq(tl_ring_map *m, uint64_t seq);
static inline uint64_t tl_ring_producer_heartbeat(const tl_ring_map *m) {
    /* Relaxed: a standalone value compared with tally's own clock. */
    return atomic_load_explicit(&m->ctl->producer_heartbeat_mono_ns, memory_order_relaxed);
}

/* ---- producer liveness (tally side, liveness.c) ---- */

enum tl_ring_liveness {
    TL_LIVENESS_ALIVE = 0,
    TL_LIVENESS_DEAD = 1,
    TL_LIVENESS_UNCONFIRMED = 2, /* cannot tell: use heartbeat staleness alone */
};
const char *tl_ring_liveness_name(enum tl_ring_liveness l);

typedef struct tl_ring_liveness_probe {
    int pidfd;
    uint32_t pid;
    bool confirmed; /* the pidfd's process maps this object (/proc/<pid>/maps) */
    int sys_errno;  /* why it is unconfirmed, when a call failed */
} tl_ring_liveness_probe;

/* At attach: pidfd_open(producer_pid), then /proc/<pid>/maps must show the
 * object's (dev, ino). Returns the first verdict. */
enum tl_ring_liveness tl_ring_liveness_open(tl_ring_liveness_probe *lp, const tl_ring_map *m);
/* "Alive" means the pidfd is not readable. Never blocks. */
enum tl_ring_liveness tl_ring_liveness_check(tl_ring_liveness_probe *lp);
void tl_ring_liveness_close(tl_ring_liveness_probe *lp);

/* ---- wal_durable_* seqlock reader (tally side, durable.c) ---- */

enum tl_durable_status {
    TL_DURABLE_ACCEPTED = 0, /* a new consistent snapshot */
    TL_DURABLE_KEPT = 1,     /* odd or torn: the last good snapshot is kept */
    TL_DURABLE_STUCK = 2,    /* the same odd gen for longer than stale_ms: producer stale */
};
const char *tl_durable_status_name(enum tl_durable_status s);

typedef struct tl_ring_durable_reader {
    tl_ring_durable snap; /* last good snapshot (zero until the first) */
    uint64_t snap_gen;
    bool have_snap;
    bool odd_seen;
    uint64_t odd_gen;
    uint64_t odd_since_ns;
    uint64_t rejected; /* odd or torn reads */
} tl_ring_durable_reader;

/* Pure: a read of (g1, g2) is accepted iff g1 == g2 and even. */
static inline bool tl_durable_gen_accept(uint64_t g1, uint64_t g2) {
    return g1 == g2 && (g1 & 1u) == 0;
}
/* One seqlock read: never spins. *out is the last good snapshot. */
enum tl_durable_status tl_ring_durable_read(tl_ring_durable_reader *r, const tl_ring_ctl *ctl,
                                            uint64_t now_ns, uint32_t stale_ms,
                                            tl_ring_durable *out);
/* Pure: the decision of one read from its loaded values (g1, the three
 * values, g2), kept apart so that tests can hand it torn reads. */
enum tl_durable_status tl_ring_durable_judge(tl_ring_durable_reader *r, uint64_t g1,
                                             const tl_ring_durable *d, uint64_t g2, uint64_t now_ns,
                                             uint32_t stale_ms, tl_ring_durable *out);
/* The writer's side on a bare control block (the producer calls this). */
void tl_ring_durable_write(tl_ring_ctl *ctl, uint64_t *gen, const tl_ring_durable *d);

/* ---- fast-path mode words (tally side, fastpath.c) ---- */

/* Each raise stores only if it raises the word, then bumps fast_mode_epoch
 * with release; *changed (may be NULL) says whether it did. */
enum tl_ring_err tl_ring_fast_raise_symbol(tl_ring_ctl *ctl, uint32_t symbol, uint32_t mode,
                                           bool *changed);
enum tl_ring_err tl_ring_fast_raise_global(tl_ring_ctl *ctl, uint32_t mode, bool *changed);
enum tl_ring_err tl_ring_fast_halt_withdrawals(tl_ring_ctl *ctl, bool *changed);
/* Lowering: only when tally sees an applied MODE_CHANGE that relaxed the
 * scope (ring.md). Stores only if it lowers the word. */
enum tl_ring_err tl_ring_fast_lower_symbol(tl_ring_ctl *ctl, uint32_t symbol, uint32_t mode,
                                           bool *changed);
enum tl_ring_err tl_ring_fast_lower_global(tl_ring_ctl *ctl, uint32_t mode, bool *changed);
enum tl_ring_err tl_ring_fast_resume_withdrawals(tl_ring_ctl *ctl, bool *changed);

/* ---- consumer (tally side, ring_consumer.c) ---- */

enum tl_ring_ev {
    TL_RING_EV_NONE = 0, /* nothing committed at the position (or attach still waiting) */
    TL_RING_EV_RECORD,   /* a verified record: classify seq against expected */
    TL_RING_EV_PAD,      /* a good PAD: the position moved to the next lap */
    TL_RING_EV_LAPPED,   /* lapped: start WAL catch-up from last delivered + 1 */
    TL_RING_EV_ATTACHED, /* (re-)attach done: expected is the new E */
    TL_RING_EV_CORRUPT,  /* RING_CORRUPT: reason, position; reattach says whether it re-attaches */
    TL_RING_EV_COUNT,
};
const char *tl_ring_ev_name(enum tl_ring_ev ev);

enum tl_ring_corrupt {
    TL_RING_CORRUPT_NONE = 0,
    TL_RING_CORRUPT_BAD_LEN,      /* "bad_len": len word impossible, 3 copies */
    TL_RING_CORRUPT_CHECKSUM,     /* "checksum": 3 copies failed the checksum */
    TL_RING_CORRUPT_BAD_PAD_LEN,  /* "bad_pad_len": PAD len != room to the end */
    TL_RING_CORRUPT_BAD_PAD,      /* "bad_pad": a PAD that breaks the field rules */
    TL_RING_CORRUPT_REPLAY_AHEAD, /* "replay_ahead": REPLAY with seq >= E, skipped */
    TL_RING_CORRUPT_BAD_FIELDS,   /* "bad_fields": checksum good, field rules not; skipped */
    TL_RING_CORRUPT_BAD_POSITION, /* "bad_position": c (from publish) < 64 bytes before the end */
    TL_RING_CORRUPT_COUNT,
};
const char *tl_ring_corrupt_name(enum tl_ring_corrupt c);

typedef struct tl_ring_event {
    enum tl_ring_ev type;
    uint64_t position;  /* where the record, PAD, lap or corruption was */
    uint64_t seq;       /* seq in the verified copy (a PAD's stamp), when there is one */
    uint64_t expected;  /* RECORD: the E it was judged against; ATTACHED: the new E */
    const uint8_t *rec; /* RECORD: the private copy, REPLAY cleared; valid until the next poll */
    uint32_t len;
    bool replay;                 /* RECORD: REPLAY was set on the ring */
    enum tl_ring_corrupt reason; /* CORRUPT */
    enum tl_rec_err rec_err;     /* CORRUPT: the record rule that failed, when one did */
    bool reattach;               /* CORRUPT: the consumer re-attaches (else it skipped) */
} tl_ring_event;

typedef struct tl_ring_consumer_stats {
    uint64_t records;    /* RECORD events */
    uint64_t lower_seqs; /* of which s' < E */
    uint64_t jumps;      /* of which s' > E */
    uint64_t replays;    /* of which REPLAY was set */
    uint64_t pads;
    uint64_t laps;            /* tally_ring_lapped_total */
    uint64_t corrupt;         /* RING_CORRUPT */
    uint64_t copies;          /* copies made: one per item, plus retries */
    uint64_t copy_failures;   /* copies that failed len or checksum on a committed record */
    uint64_t attaches;        /* ATTACHED events */
    uint64_t attach_restarts; /* lapped again during a re-attach */
} tl_ring_consumer_stats;

enum tl_ring_consumer_phase {
    TL_CONS_ATTACH_START = 0, /* next poll: c = max(publish, floor) */
    TL_CONS_ATTACH_WAIT,      /* waiting for publish to move past c */
    TL_CONS_FOLLOW,
};

/* Called after each failed copy of a committed record (attempt 1..3), for
 * logging; tests use it to heal or break a record between copies. */
typedef void (*tl_ring_copy_fail_fn)(void *arg, uint64_t position, uint32_t attempt);

typedef struct tl_ring_consumer {
    /* hot */
    _Atomic uint64_t *data;
    uint64_t mask;
    uint64_t capacity;
    uint64_t lap_limit; /* capacity - M, M = capacity/8 + 2 * 65600 */
    uint64_t position;  /* c */
    uint64_t expected;  /* E */
    tl_ring_ctl *ctl;
    uint8_t *copy; /* TL_RING_COPY_BYTES, 64-aligned, allocated at init */
    enum tl_ring_consumer_phase phase;
    uint64_t attach_floor; /* re-attach at or after this position */
    /* Prefetching (a hint only, never a protocol decision): lines below the
     * last `publish` seen are committed, so reading them early is free of
     * contention with the producer. */
    uint64_t pf_next;  /* next byte position to prefetch */
    uint64_t pf_limit; /* last publish value seen */
    uint32_t pf_hint_countdown;
    tl_ring_consumer_stats stats;
    tl_ring_copy_fail_fn on_copy_fail;
    void *on_copy_fail_arg;
} tl_ring_consumer;

/* Allocates the copy buffer (start-up) and stores consumer_pid. The first
 * poll starts the first attach. Returns OK or SYS (ENOMEM). */
enum tl_ring_err tl_ring_consumer_init(tl_ring_consumer *c, tl_ring_map *m);
void tl_ring_consumer_free(tl_ring_consumer *c);
/* Follows from a known record boundary `position` expecting `expected`
 * (a saved position within the same incarnation; the test vectors). */
void tl_ring_consumer_start_at(tl_ring_consumer *c, uint64_t position, uint64_t expected);
/* Forces a re-attach on the next poll (no lap counted). */
void tl_ring_consumer_reattach(tl_ring_consumer *c);

/* One step of ring.md's consumer protocol; never blocks, bounded work (at
 * most 3 copies of one item). last_delivered_seq is the highest seq the
 * caller delivered in order, from the ring or the WAL. Returns ev->type. */
enum tl_ring_ev tl_ring_poll(tl_ring_consumer *c, uint64_t last_delivered_seq, tl_ring_event *ev);

#endif
