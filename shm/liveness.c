/* liveness.c: is the ring's producer process still alive? (ring.md
 * "End of an incarnation").
 *
 * At attach tally opens a pidfd for producer_pid and then checks, in
 * /proc/<pid>/maps, that the process behind that pidfd maps this very object
 * (same device and inode). Checking after pidfd_open closes the pid-reuse
 * race: the pidfd pins one process, and the inode cannot be reused while our
 * own mapping holds it. When this cannot be confirmed (another pid
 * namespace, no /proc, no permission) the verdict is UNCONFIRMED and tally
 * relies on heartbeat staleness alone (and says so in /capabilities).
 * "Alive" means the pidfd is not readable.
 */
#include "ring.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/assert.h"

/* A limit on the maps lines read: a process with more mappings than this is
 * reported UNCONFIRMED rather than read forever. */
#define MAPS_LINES_MAX 1000000

static const char *const liveness_names[] = {
    [TL_LIVENESS_ALIVE] = "alive",
    [TL_LIVENESS_DEAD] = "dead",
    [TL_LIVENESS_UNCONFIRMED] = "unconfirmed",
};

const char *tl_ring_liveness_name(enum tl_ring_liveness l) {
    return (unsigned)l < TL_ARRAY_LEN(liveness_names) ? liveness_names[l] : "?";
}

static int pidfd_open_sys(uint32_t pid) {
    return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0u);
}

/* 1: the process maps (dev, ino); 0: it does not; -1: cannot tell. */
static int maps_object(uint32_t pid, uint64_t dev, uint64_t ino, int *err) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%" PRIu32 "/maps", pid);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        *err = errno;
        return -1;
    }
    unsigned want_major = major((dev_t)dev);
    unsigned want_minor = minor((dev_t)dev);
    char line[512];
    int found = 0;
    bool line_start = true;
    for (int n = 0; n < MAPS_LINES_MAX && fgets(line, sizeof line, f) != NULL; n++) {
        bool at_start = line_start;
        line_start = strchr(line, '\n') != NULL;
        if (!at_start) /* the rest of an over-long line (a long path) */
            continue;
        unsigned long long lo, hi, off, inode;
        unsigned maj, min;
        char perms[8];
        if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &lo, &hi, perms, &off, &maj, &min,
                   &inode) != 7)
            continue;
        if (maj == want_major && min == want_minor && inode == ino) {
            found = 1;
            break;
        }
    }
    bool read_error = ferror(f) != 0;
    fclose(f);
    if (read_error) {
        *err = EIO;
        return -1;
    }
    return found;
}

enum tl_ring_liveness tl_ring_liveness_open(tl_ring_liveness_probe *lp, const tl_ring_map *m) {
    memset(lp, 0, sizeof *lp);
    lp->pidfd = -1;
    lp->pid = m->header.producer_pid;
    if (lp->pid == 0) {
        lp->sys_errno = ESRCH;
        return TL_LIVENESS_UNCONFIRMED;
    }
    lp->pidfd = pidfd_open_sys(lp->pid);
    if (lp->pidfd < 0) {
        /* ESRCH: no such pid here. It may be dead, or live in another pid
         * namespace: we cannot tell, so heartbeat staleness decides. */
        lp->sys_errno = errno;
        return TL_LIVENESS_UNCONFIRMED;
    }
    int err = 0;
    int r = maps_object(lp->pid, m->identity.dev, m->identity.ino, &err);
    if (r != 1) {
        /* Not mapped: this pid is some other process (another namespace's
         * producer shares the number), or the producer already exited and
         * the pid was reused. Either way we cannot confirm. */
        lp->sys_errno = r < 0 ? err : 0;
        return TL_LIVENESS_UNCONFIRMED;
    }
    lp->confirmed = true;
    return tl_ring_liveness_check(lp);
}

enum tl_ring_liveness tl_ring_liveness_check(tl_ring_liveness_probe *lp) {
    if (!lp->confirmed || lp->pidfd < 0)
        return TL_LIVENESS_UNCONFIRMED;
    struct pollfd pfd = {.fd = lp->pidfd, .events = POLLIN};
    for (int tries = 0; tries < 100; tries++) {
        int n = poll(&pfd, 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            lp->sys_errno = errno;
            return TL_LIVENESS_UNCONFIRMED;
        }
        /* A pidfd becomes readable when its process exits. */
        return (n > 0 && (pfd.revents & (POLLIN | POLLHUP)) != 0) ? TL_LIVENESS_DEAD
                                                                  : TL_LIVENESS_ALIVE;
    }
    return TL_LIVENESS_UNCONFIRMED;
}

void tl_ring_liveness_close(tl_ring_liveness_probe *lp) {
    if (lp->pidfd >= 0)
        close(lp->pidfd);
    lp->pidfd = -1;
    lp->confirmed = false;
}
