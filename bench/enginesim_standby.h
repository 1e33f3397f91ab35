/* enginesim_standby.h: `tally-enginesim --standby` (enginesim_standby.c). */
#ifndef TL_ENGINESIM_STANDBY_H
#define TL_ENGINESIM_STANDBY_H

/* The standby's main: argv as given to tally-enginesim (it holds
 * --standby). Returns the process exit code. */
int tl_enginesim_standby_main(int argc, char **argv);

#endif
