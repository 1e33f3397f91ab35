/* enginesim_book.c: the reference engine's order books (see
 * enginesim_book.h).
 *
 * Invariants (asserted where cheap):
 *   - an order is in the id map iff it holds a pool slot; it is in a level's
 *     FIFO and in its book's live list iff `resting`;
 *   - a level's bit in `nonempty` is set iff its FIFO is not empty;
 *   - hash = sum of h(o) over resting orders (mod 2^256), open_orders = their
 *     count;
 *   - in_use of a book = pool slots held by its symbol <= orders_per_symbol.
 */
#include "enginesim_book.h"

#include <stdlib.h>
#include <string.h>

#include "core/assert.h"

/* ---- 256-bit additive hash ---- */

static void add256(uint64_t a[4], const uint64_t b[4]) {
    unsigned __int128 carry = 0;
    for (int i = 0; i < 4; i++) {
        unsigned __int128 s = (unsigned __int128)a[i] + b[i] + carry;
        a[i] = (uint64_t)s;
        carry = s >> 64;
    }
}

static void sub256(uint64_t a[4], const uint64_t b[4]) {
    uint64_t borrow = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t bi = b[i] + borrow;
        uint64_t nb = (bi < borrow) || (a[i] < bi);
        a[i] -= bi;
        borrow = nb;
    }
}

void sim_order_hash(uint32_t symbol, uint8_t side, uint64_t id, uint64_t account, int64_t price,
                    int64_t qty, uint64_t out[4]) {
    uint8_t t[40];
    memset(t, 0, sizeof t);
    memcpy(t + 0, &symbol, 4);
    t[4] = side;
    memcpy(t + 8, &id, 8);
    memcpy(t + 16, &account, 8);
    memcpy(t + 24, &price, 8);
    memcpy(t + 32, &qty, 8);
    XXH128_hash_t h0 = XXH3_128bits_withSeed(t, sizeof t, 0);
    XXH128_hash_t h1 = XXH3_128bits_withSeed(t, sizeof t, 1);
    out[0] = h0.low64;
    out[1] = h0.high64;
    out[2] = h1.low64;
    out[3] = h1.high64;
}

static void hash_order(sim_state *st, const sim_order *o, bool add) {
    uint64_t h[4];
    sim_order_hash(o->symbol, o->side, o->id, o->account, o->price, o->qty, h);
    if (add)
        add256(st->hash, h);
    else
        sub256(st->hash, h);
}

void sim_checkpoint(const sim_state *st, tl_body_checkpoint *out) {
    memset(out, 0, sizeof *out);
    memcpy(out->state_hash, st->hash, sizeof out->state_hash);
    out->open_orders = st->open_orders;
    out->trades_total = st->trades_total;
    out->qty_total = st->qty_total;
    out->notional_total = st->notional_total;
}

/* ---- set-up ---- */

int sim_state_init(sim_state *st, uint32_t nsym, uint32_t orders_per_symbol) {
    memset(st, 0, sizeof *st);
    if (nsym == 0 || orders_per_symbol == 0 || (uint64_t)nsym * orders_per_symbol > (1u << 26))
        return -1;
    st->nsym = nsym;
    st->orders_per_symbol = orders_per_symbol;
    st->pool_cap = nsym * orders_per_symbol;
    uint64_t map_size = 2;
    while (map_size < 2ull * st->pool_cap)
        map_size <<= 1;
    st->map_mask = map_size - 1;
    st->books = calloc(nsym, sizeof *st->books);
    st->pool = calloc(st->pool_cap, sizeof *st->pool);
    st->map_keys = calloc(map_size, sizeof *st->map_keys);
    st->map_vals = calloc(map_size, sizeof *st->map_vals);
    if (st->books == NULL || st->pool == NULL || st->map_keys == NULL || st->map_vals == NULL) {
        sim_state_free(st);
        return -1;
    }
    for (uint32_t i = 0; i < nsym; i++) {
        st->books[i].live = calloc(orders_per_symbol, sizeof(uint32_t));
        if (st->books[i].live == NULL) {
            sim_state_free(st);
            return -1;
        }
        /* Each symbol trades around its own price: 100000 + 1000 * i ticks. */
        st->books[i].base_price = 100000 + 1000 * (int64_t)i;
        st->books[i].mid = st->books[i].base_price + SIM_LEVELS / 2;
    }
    for (uint32_t i = 0; i < st->pool_cap; i++)
        st->pool[i].next = i + 2 <= st->pool_cap ? i + 2 : SIM_NONE;
    st->free_head = 1;
    st->next_order_id = 1;
    st->next_trade_id = 1;
    return 0;
}

void sim_state_free(sim_state *st) {
    if (st->books != NULL) {
        for (uint32_t i = 0; i < st->nsym; i++)
            free(st->books[i].live);
    }
    free(st->books);
    free(st->pool);
    free(st->map_keys);
    free(st->map_vals);
    memset(st, 0, sizeof *st);
}

bool sim_has_room(const sim_state *st, uint32_t symbol) {
    return st->books[symbol - 1].in_use < st->orders_per_symbol;
}

/* ---- the id map: linear probing, backward-shift deletion ---- */

/* The identity: order ids are handed out in sequence and most orders live
 * briefly, so the live ids sit in a narrow, moving window and their slots
 * stay together in cache (a mixing hash spread them over the whole table:
 * a cache miss per lookup). Ids 2 x pool apart share a home slot; linear
 * probing takes the rare collision. */
static uint64_t slot_of(const sim_state *st, uint64_t id) {
    return id & st->map_mask;
}

static uint32_t map_get(const sim_state *st, uint64_t id) {
    /* Bounded: the map is at most half full, so a probe ends at an empty
     * slot well before it wraps. */
    for (uint64_t i = slot_of(st, id), n = 0; n <= st->map_mask; i = (i + 1) & st->map_mask, n++) {
        if (st->map_keys[i] == id)
            return st->map_vals[i];
        if (st->map_keys[i] == 0)
            return SIM_NONE;
    }
    return SIM_NONE;
}

static void map_put(sim_state *st, uint64_t id, uint32_t ref) {
    TL_ASSERT(id != 0);
    for (uint64_t i = slot_of(st, id), n = 0; n <= st->map_mask; i = (i + 1) & st->map_mask, n++) {
        if (st->map_keys[i] == 0 || st->map_keys[i] == id) {
            st->map_keys[i] = id;
            st->map_vals[i] = ref;
            return;
        }
    }
    TL_UNREACHABLE(); /* never more than pool_cap keys in 2 * pool_cap slots */
}

static void map_del(sim_state *st, uint64_t id) {
    uint64_t m = st->map_mask, i = slot_of(st, id);
    for (uint64_t n = 0; st->map_keys[i] != id; i = (i + 1) & m, n++) {
        TL_ASSERT(st->map_keys[i] != 0 && n <= m);
    }
    /* Backward shift: pull later entries of the probe run into the hole. */
    uint64_t hole = i;
    for (uint64_t j = (hole + 1) & m, n = 0; st->map_keys[j] != 0 && n <= m; j = (j + 1) & m, n++) {
        uint64_t home = slot_of(st, st->map_keys[j]);
        /* j's entry may move to hole iff hole lies in [home, j) cyclically. */
        bool movable = ((j - home) & m) >= ((j - hole) & m);
        if (movable) {
            st->map_keys[hole] = st->map_keys[j];
            st->map_vals[hole] = st->map_vals[j];
            hole = j;
        }
    }
    st->map_keys[hole] = 0;
    st->map_vals[hole] = 0;
}

/* ---- pool ---- */

static sim_order *ord(sim_state *st, uint32_t ref) {
    TL_ASSERT(ref != SIM_NONE && ref <= st->pool_cap);
    return &st->pool[ref - 1];
}

static uint32_t order_alloc(sim_state *st, uint32_t symbol, uint64_t id) {
    sim_book *b = sim_book_of(st, symbol);
    if (st->free_head == SIM_NONE || b->in_use >= st->orders_per_symbol || id == 0 ||
        map_get(st, id) != SIM_NONE)
        return SIM_NONE;
    uint32_t ref = st->free_head;
    sim_order *o = ord(st, ref);
    st->free_head = o->next;
    memset(o, 0, sizeof *o);
    o->id = id;
    o->symbol = symbol;
    b->in_use++;
    map_put(st, id, ref);
    return ref;
}

static void order_free(sim_state *st, uint32_t ref) {
    sim_order *o = ord(st, ref);
    TL_ASSERT(!o->resting);
    sim_book *b = sim_book_of(st, o->symbol);
    TL_ASSERT(b->in_use > 0);
    b->in_use--;
    map_del(st, o->id);
    o->id = 0;
    o->next = st->free_head;
    st->free_head = ref;
}

/* ---- levels ---- */

static int side_ix(uint8_t side) {
    return side == TL_SIDE_BUY ? 0 : 1;
}

static bool price_ix(const sim_book *b, int64_t price, uint32_t *ix) {
    int64_t d = price - b->base_price;
    if (d < 0 || d >= (int64_t)SIM_LEVELS)
        return false;
    *ix = (uint32_t)d;
    return true;
}

static void rest(sim_state *st, uint32_t ref) {
    sim_order *o = ord(st, ref);
    sim_book *b = sim_book_of(st, o->symbol);
    uint32_t ix;
    bool ok = price_ix(b, o->price, &ix);
    TL_ASSERT(ok && !o->resting && o->qty > 0);
    int s = side_ix(o->side);
    sim_level *l = &b->lv[s][ix];
    o->prev = l->tail;
    o->next = SIM_NONE;
    if (l->tail != SIM_NONE)
        ord(st, l->tail)->next = ref;
    else
        l->head = ref;
    l->tail = ref;
    b->nonempty[s][ix / 64] |= 1ull << (ix % 64);
    TL_ASSERT(b->live_count < st->orders_per_symbol);
    o->live_idx = b->live_count;
    b->live[b->live_count++] = ref;
    o->resting = true;
    st->open_orders++;
    hash_order(st, o, true);
}

static void unrest(sim_state *st, uint32_t ref) {
    sim_order *o = ord(st, ref);
    TL_ASSERT(o->resting);
    sim_book *b = sim_book_of(st, o->symbol);
    hash_order(st, o, false);
    uint32_t ix;
    bool ok = price_ix(b, o->price, &ix);
    TL_ASSERT(ok);
    int s = side_ix(o->side);
    sim_level *l = &b->lv[s][ix];
    if (o->prev != SIM_NONE)
        ord(st, o->prev)->next = o->next;
    else
        l->head = o->next;
    if (o->next != SIM_NONE)
        ord(st, o->next)->prev = o->prev;
    else
        l->tail = o->prev;
    if (l->head == SIM_NONE)
        b->nonempty[s][ix / 64] &= ~(1ull << (ix % 64));
    /* Swap-remove from the live list. */
    uint32_t last = b->live[--b->live_count];
    b->live[o->live_idx] = last;
    ord(st, last)->live_idx = o->live_idx;
    o->resting = false;
    o->next = o->prev = SIM_NONE;
    TL_ASSERT(st->open_orders > 0);
    st->open_orders--;
}

/* A resting order's qty changes in place (a partial fill). */
static void requantify(sim_state *st, sim_order *o, int64_t qty) {
    TL_ASSERT(o->resting && qty > 0);
    hash_order(st, o, false);
    o->qty = qty;
    hash_order(st, o, true);
}

/* Best level of a side: bids the highest index, asks the lowest; -1 if
 * empty. At most SIM_LEVEL_WORDS words. */
static int best_ix(const sim_book *b, int s) {
    if (s == 0) {
        for (int w = (int)SIM_LEVEL_WORDS - 1; w >= 0; w--) {
            uint64_t x = b->nonempty[0][w];
            if (x != 0)
                return w * 64 + 63 - __builtin_clzll(x);
        }
    } else {
        for (int w = 0; w < (int)SIM_LEVEL_WORDS; w++) {
            uint64_t x = b->nonempty[1][w];
            if (x != 0)
                return w * 64 + __builtin_ctzll(x);
        }
    }
    return -1;
}

static void sums_add(sim_state *st, int64_t price, int64_t qty) {
    st->trades_total++;
    st->qty_total += (uint64_t)qty;
    st->notional_total += (uint64_t)price * (uint64_t)qty;
}

/* ---- live events ---- */

int sim_new_order(sim_state *st, const tl_body_order_new *o, uint32_t symbol, bool match,
                  const sim_emit *emit) {
    TL_ASSERT(sim_symbol_valid(st, symbol));
    sim_book *b = sim_book_of(st, symbol);
    uint32_t ix = 0;
    if (o->qty <= 0 || (o->side != TL_SIDE_BUY && o->side != TL_SIDE_SELL) ||
        (o->type == TL_ORDER_LIMIT && !price_ix(b, o->price, &ix)) ||
        (o->type != TL_ORDER_LIMIT && o->type != TL_ORDER_MARKET))
        return -2;
    uint32_t ref = order_alloc(st, symbol, o->order_id);
    if (ref == SIM_NONE)
        return -2;
    if (o->order_id >= st->next_order_id)
        st->next_order_id = o->order_id + 1;
    sim_order *t = ord(st, ref);
    t->account = o->account;
    t->price = o->type == TL_ORDER_LIMIT ? o->price : 0;
    t->qty = o->qty;
    t->side = o->side;
    t->type = o->type;
    int opp = side_ix(o->side) ^ 1;
    /* Bounded: each step fills a maker (removed) or the taker (done). */
    while (match && t->qty > 0) {
        int bi = best_ix(b, opp);
        if (bi < 0)
            break;
        int64_t level_price = b->base_price + bi;
        if (t->type == TL_ORDER_LIMIT &&
            (o->side == TL_SIDE_BUY ? level_price > t->price : level_price < t->price))
            break;
        uint32_t mref = b->lv[opp][bi].head;
        sim_order *m = ord(st, mref);
        int64_t fill = m->qty < t->qty ? m->qty : t->qty;
        tl_body_trade tr;
        memset(&tr, 0, sizeof tr);
        tr.trade_id = st->next_trade_id;
        tr.maker_order = m->id;
        tr.taker_order = t->id;
        tr.maker_account = m->account;
        tr.taker_account = t->account;
        tr.price = m->price;
        tr.qty = fill;
        tr.taker_side = t->side;
        if (emit->trade(emit->ctx, symbol, &tr) != 0) {
            order_free(st, ref);
            return -1;
        }
        st->next_trade_id++;
        sums_add(st, m->price, fill);
        if (fill == m->qty) {
            unrest(st, mref);
            order_free(st, mref);
        } else {
            requantify(st, m, m->qty - fill);
        }
        t->qty -= fill;
    }
    if (t->qty == 0) {
        order_free(st, ref);
        return 0;
    }
    if (t->type == TL_ORDER_LIMIT) {
        rest(st, ref);
        return 0;
    }
    /* A market order's remainder never rests. */
    tl_body_order_cancel c = {.order_id = t->id, .account = t->account, .remaining_qty = t->qty};
    int rc = emit->cancel(emit->ctx, symbol, &c);
    order_free(st, ref);
    return rc == 0 ? 0 : -1;
}

bool sim_cancel(sim_state *st, uint64_t order_id, tl_body_order_cancel *out) {
    uint32_t ref = map_get(st, order_id);
    if (ref == SIM_NONE || !ord(st, ref)->resting)
        return false;
    sim_order *o = ord(st, ref);
    out->order_id = o->id;
    out->account = o->account;
    out->remaining_qty = o->qty;
    unrest(st, ref);
    order_free(st, ref);
    return true;
}

bool sim_pick_resting(sim_state *st, uint32_t symbol, uint64_t r, uint64_t *order_id) {
    sim_book *b = sim_book_of(st, symbol);
    if (b->live_count == 0)
        return false;
    *order_id = ord(st, b->live[r % b->live_count])->id;
    return true;
}

/* ---- replay ---- */

/* Takes qty off an order named by a TRADE; frees it at zero. */
static void replay_fill(sim_state *st, uint64_t id, int64_t qty) {
    uint32_t ref = map_get(st, id);
    if (ref == SIM_NONE) {
        st->replay_unknown++;
        return;
    }
    sim_order *o = ord(st, ref);
    int64_t left = o->qty - qty;
    if (left > 0) {
        if (o->resting)
            requantify(st, o, left);
        else
            o->qty = left;
        return;
    }
    if (o->resting)
        unrest(st, ref);
    order_free(st, ref);
}

void sim_replay(sim_state *st, const uint8_t *rec, uint32_t len) {
    (void)len;
    const tl_rec_hdr *h = tl_rec_hdr_of(rec);
    const uint8_t *body = rec + TL_REC_HDR_BYTES;
    switch (h->kind) {
        case TL_KIND_ORDER_NEW: {
            tl_body_order_new o;
            memcpy(&o, body, sizeof o);
            if (!sim_symbol_valid(st, h->symbol)) {
                st->replay_overflow++;
                return;
            }
            sim_book *b = sim_book_of(st, h->symbol);
            uint32_t ix;
            uint32_t ref = order_alloc(st, h->symbol, o.order_id);
            if (ref == SIM_NONE || (o.type == TL_ORDER_LIMIT && !price_ix(b, o.price, &ix)) ||
                o.qty <= 0) {
                if (ref != SIM_NONE)
                    order_free(st, ref);
                st->replay_overflow++;
                return;
            }
            sim_order *t = ord(st, ref);
            t->account = o.account;
            t->price = o.type == TL_ORDER_LIMIT ? o.price : 0;
            t->qty = o.qty;
            t->side = o.side;
            t->type = o.type;
            /* A limit order rests at once (its TRADEs follow and take from
             * it); a market order waits for its TRADEs and its cancel. */
            if (o.type == TL_ORDER_LIMIT)
                rest(st, ref);
            if (o.order_id >= st->next_order_id)
                st->next_order_id = o.order_id + 1;
            return;
        }
        case TL_KIND_TRADE: {
            tl_body_trade t;
            memcpy(&t, body, sizeof t);
            replay_fill(st, t.maker_order, t.qty);
            replay_fill(st, t.taker_order, t.qty);
            sums_add(st, t.price, t.qty);
            if (t.trade_id >= st->next_trade_id)
                st->next_trade_id = t.trade_id + 1;
            return;
        }
        case TL_KIND_ORDER_CANCEL: {
            tl_body_order_cancel c;
            memcpy(&c, body, sizeof c);
            uint32_t ref = map_get(st, c.order_id);
            if (ref == SIM_NONE) {
                st->replay_unknown++;
                return;
            }
            if (ord(st, ref)->resting)
                unrest(st, ref);
            order_free(st, ref);
            return;
        }
        case TL_KIND_CHECKPOINT: {
            tl_body_checkpoint want, have;
            memcpy(&want, body, sizeof want);
            sim_checkpoint(st, &have);
            st->ckpt_checked++;
            if (memcmp(&want, &have, sizeof want) != 0)
                st->ckpt_mismatch++;
            return;
        }
        default:
            return;
    }
}
