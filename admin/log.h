/* log.h: one line to stderr, for the daemon's control-side threads.
 *
 * journald takes tallyd's stderr; each call is one write(2) of one whole
 * line, so lines from the control thread, the API and the pollers never
 * interleave mid-line. Bounded: a line longer than TL_LOG_LINE_MAX is cut.
 * Never on the hot loop (vsnprintf). */
#ifndef TL_ADMIN_LOG_H
#define TL_ADMIN_LOG_H

#define TL_LOG_LINE_MAX 2048

void tl_logf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
