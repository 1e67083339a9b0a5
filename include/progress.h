/*
 * progress: one status line on stderr for long work, only on a terminal.
 *
 * When stderr is not a terminal (CI, logs, pipes) nothing is printed, so
 * scripts stay quiet. Updates are throttled to ten per second; calling
 * progress_update() in a tight loop is cheap.
 */
#ifndef SHOPKEEPER_PROGRESS_H
#define SHOPKEEPER_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct progress {
	const char *label;
	const char *unit; /* "rows", "items", "MB"... */
	uint64_t total;   /* 0 when unknown: then no bar and no ETA */
	uint64_t done;
	double start, last;
	bool enabled;
} progress;

/* Starts a phase; total may be 0. */
void progress_begin(progress *p, const char *label, const char *unit, uint64_t total);
/* Records that `done` units are finished. */
void progress_update(progress *p, uint64_t done);
/* Prints the final state of the phase and ends the line. */
void progress_end(progress *p);


#endif
