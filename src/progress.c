/*
 * progress: a throttled terminal progress bar with rate and ETA.
 */
#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "util.h"

/* Whether progress is shown at all (stderr is a terminal). */
static bool progress_enabled(void)
{
	static int tty = -1;
	if (tty < 0)
		tty = isatty(STDERR_FILENO);
	return tty == 1;
}

static void draw(progress *p, double now, bool final)
{
	double secs = now - p->start;
	double rate = secs > 0 ? (double)p->done / secs : 0;
	fprintf(stderr, "\r\033[K%-10s ", p->label);
	if (p->total) {
		double frac = (double)p->done / (double)p->total;
		if (frac > 1)
			frac = 1;
		int width = 24, fill = (int)(frac * width);
		fputc('[', stderr);
		for (int i = 0; i < width; i++)
			fputc(i < fill ? '#' : '.', stderr);
		fprintf(stderr, "] %3.0f%% ", frac * 100);
	}
	fprintf(stderr, "%llu %s  %.0f %s/s", (unsigned long long)p->done, p->unit, rate, p->unit);
	if (final) {
		fprintf(stderr, "  %.1fs\n", secs);
	} else if (p->total && rate > 0 && p->done < p->total) {
		fprintf(stderr, "  ETA %.0fs", (double)(p->total - p->done) / rate);
	}
	fflush(stderr);
}

void progress_begin(progress *p, const char *label, const char *unit, uint64_t total)
{
	p->label = label;
	p->unit = unit;
	p->total = total;
	p->done = 0;
	p->start = p->last = util_monotonic();
	p->enabled = progress_enabled();
}

void progress_update(progress *p, uint64_t done)
{
	p->done = done;
	if (!p->enabled)
		return;
	double now = util_monotonic();
	if (now - p->last < 0.1)
		return;
	p->last = now;
	draw(p, now, false);
}

void progress_end(progress *p)
{
	if (p->enabled)
		draw(p, util_monotonic(), true);
}
