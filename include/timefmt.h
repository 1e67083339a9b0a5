/*
 * timefmt: the timestamp formats of README.md "Input files", in and out, always UTC.
 */
#ifndef SHOPKEEPER_TIMEFMT_H
#define SHOPKEEPER_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* "YYYY-MM-DDTHH:MM:SSZ" plus NUL */
#define TIME_FMT_LEN 21

/* Parses s[0..n) as one of:
 *   YYYY-MM-DD
 *   YYYY-MM-DD HH:MM[:SS]           (also with 'T' between date and time)
 *   the above with fractional seconds, and 'Z' or a +HH:MM / -HH:MM offset
 *   Unix seconds (digits only, optionally with a fraction)
 * Times without an offset are taken as UTC. Years 1970..9999.
 * Returns 0 and the Unix time in *out, or -1 if s is not such a time. */
int time_parse(const char *s, size_t n, int64_t *out);

/* Parses s[0..n) as exactly a date, YYYY-MM-DD (1970..9999, a real
 * calendar day): 0 and the days since 1970-01-01 in *day, or -1. Routes'
 * and commands' date arguments (?new_since=, --new-since) use this: a bare
 * number is never taken for Unix seconds there. */
int time_parse_date(const char *s, size_t n, int32_t *day);

/* Writes t as "YYYY-MM-DDTHH:MM:SSZ" into out (TIME_FMT_LEN bytes). */
void time_format(int64_t t, char out[TIME_FMT_LEN]);


#endif
