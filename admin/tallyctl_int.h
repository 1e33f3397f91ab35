/* tallyctl_int.h: what tallyctl's files share (tallyctl.c: the online
 * subcommands over the control socket; tallyctl_offline.c: wal verify and
 * ring inspect, no daemon needed). */
#ifndef TL_TALLYCTL_INT_H
#define TL_TALLYCTL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes (every subcommand's --help says what 0 and 1 mean for it). */
enum {
    TC_OK = 0,       /* consistent, healthy, done */
    TC_MISMATCH = 1, /* a mismatch found (or unhealthy, rolled back) */
    TC_USAGE = 2,    /* usage, connection, or a refused request */
};

typedef struct tc_opts {
    bool json;
    bool progress; /* a progress bar on stderr (a terminal, not --json) */
} tc_opts;

/* A progress bar on stderr, redrawn at most 10 times a second. */
typedef struct tc_bar {
    bool on;
    uint64_t last_ns;
    const char *what;
} tc_bar;
void tc_bar_start(tc_bar *b, bool on, const char *what);
void tc_bar_update(tc_bar *b, uint64_t done, uint64_t total, const char *unit);
void tc_bar_end(tc_bar *b);
uint64_t tc_now_ns(void);

int tc_wal_verify(int argc, char **argv, tc_opts *o);
/* tallyctl_bundle.c: bundle export (online) and bundle verify (offline). */
int tc_bundle(int argc, char **argv, tc_opts *o);
/* One request over the control socket (tallyctl.c): 0 with the status and
 * a malloc'd, NUL-terminated body; -1 after printing why there is none. */
int tc_request(const char *method, const char *path, const char *json, long *status, char **body,
               size_t *len);
int tc_ring_inspect(int argc, char **argv, tc_opts *o);

#endif
