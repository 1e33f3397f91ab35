/* ledger_poll.h: tallyd's control-thread side of the settlement ledger
 * (ledger.md): every ledger.poll_ms it GETs the watermark with
 * io/ledger_client (non-blocking, curl multi), verifies the mac, parses the
 * body with core/ledger.h, stamps the receive times and hands the reply to
 * the hot loop through a queue of its own.
 *
 * Why a queue of its own: a reply is ~8.3 KiB (256 symbols). The control
 * queue's slot (tl_ctl_msg) is sized for actions; growing every slot to
 * carry a watermark would cost 256 x 8 KiB for a message that comes 50
 * times a second. A dedicated SPSC queue of TL_LEDGER_QUEUE_SLOTS slots
 * costs 66 KiB, and the loop reads the front slot in place
 * (tl_spsc_front): a reply it holds (ledger_seq not read yet) simply stays
 * there, with no copy, until it is taken. A full queue drops the new reply
 * (counted): the loop is holding the front one and newer replies add
 * nothing until it moves.
 *
 * A reply that fails anywhere (transfer, status, size, mac, parse) never
 * reaches the loop: it is counted by reason here and changes no state; the
 * loop raises LEDGER_STALE when no reply compared for ledger.max_age_ms.
 * Rejections are logged when the reason changes, not at every poll.
 */
#ifndef TL_LEDGER_POLL_H
#define TL_LEDGER_POLL_H

#include <stdbool.h>
#include <stdint.h>

#include "admin/config.h"
#include "core/ledger.h"
#include "core/loop.h"
#include "io/ledger_client.h"
#include "shm/spsc.h"

#define TL_LEDGER_QUEUE_SLOTS 8u

typedef struct tl_ledger_poll_stats {
    uint64_t polls;                               /* GETs started */
    uint64_t replies_ok;                          /* parsed and queued */
    uint64_t rejected[TL_LC_ERR_COUNT];           /* by transfer/mac reason */
    uint64_t parse_rejected[TL_LEDGER_ERR_COUNT]; /* by parse reason */
    uint64_t queue_full;                          /* a parsed reply dropped */
    uint64_t busy_skips;                          /* a poll due while one was in flight */
    uint64_t last_ok_mono_ns;                     /* the last reply queued */
    uint64_t last_ledger_seq;
} tl_ledger_poll_stats;

typedef struct tl_ledger_poll tl_ledger_poll;

/* Fills lc->ledger from the config (enabled iff ledger.url is set). */
void tl_ledger_poll_loop_cfg(const tl_config *c, tl_loop_cfg *lc);

/* Opens the client (and loads keys.ledger if set). q: an initialized SPSC
 * queue of sizeof(tl_ledger_wm) slots; this thread is its producer. With an
 * empty url *out is NULL and 0 is returned. */
int tl_ledger_poll_open(tl_ledger_poll **out, const tl_config *c, tl_spsc *q, char *err,
                        size_t err_cap);
void tl_ledger_poll_close(tl_ledger_poll *p);

/* One control-thread pass: starts a GET when one is due, drives the one in
 * flight, and queues what it brought. Never blocks. */
void tl_ledger_poll_pass(tl_ledger_poll *p, uint64_t now_mono_ns);

/* The newest reply accepted (the one last queued to the loop), copied into
 * *out; false if none yet (or p is NULL). Control thread only. */
bool tl_ledger_poll_last(const tl_ledger_poll *p, tl_ledger_wm *out);

void tl_ledger_poll_get_stats(const tl_ledger_poll *p, tl_ledger_poll_stats *out);

/* One line for the audit's STOP event and logs: "polls=.. ok=.. rejected=.." */
void tl_ledger_poll_summary(const tl_ledger_poll *p, char *buf, size_t cap);

#endif
