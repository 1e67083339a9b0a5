/*
 * timefmt: timestamp parsing and formatting without the C library's locale-
 * and timezone-dependent functions, so results never depend on TZ.
 */
#include "timefmt.h"

#include <stdbool.h>
#include <stdio.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (no range checks):
 * Howard Hinnant's days_from_civil. */
static int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t yy = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)(yy + (*m <= 2));
}

/* Reads exactly `width` digits at s[*i]. */
static bool digits(const char *s, size_t n, size_t *i, int width, int *out)
{
	int v = 0;
	for (int k = 0; k < width; k++) {
		if (*i >= n || s[*i] < '0' || s[*i] > '9')
			return false;
		v = v * 10 + (s[*i] - '0');
		(*i)++;
	}
	*out = v;
	return true;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int parse_unix(const char *s, size_t n, int64_t *out)
{
	int64_t v = 0;
	size_t i = 0;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		if (v > (INT64_MAX - 9) / 10 / 1000)
			return -1; /* beyond any plausible time */
		v = v * 10 + (s[i] - '0');
	}
	if (i == 0)
		return -1;
	if (i < n) {
		if (s[i] != '.' || i + 1 == n)
			return -1;
		for (i++; i < n; i++)
			if (s[i] < '0' || s[i] > '9')
				return -1;
	}
	*out = v;
	return 0;
}

int time_parse(const char *s, size_t n, int64_t *out)
{
	size_t i = 0;
	int y, mo, d, hh = 0, mi = 0, ss = 0;

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	s += i;
	n -= i;
	i = 0;
	if (n == 0)
		return -1;
	if (n < 10 || s[4] != '-')
		return parse_unix(s, n, out);

	if (!digits(s, n, &i, 4, &y) || s[i++] != '-' || !digits(s, n, &i, 2, &mo) ||
	    i >= n || s[i++] != '-' || !digits(s, n, &i, 2, &d))
		return -1;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1)
		return -1;
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
		return -1;

	int64_t offset = 0;
	if (i < n) {
		if (s[i] != ' ' && s[i] != 'T' && s[i] != 't')
			return -1;
		i++;
		if (!digits(s, n, &i, 2, &hh) || i >= n || s[i++] != ':' ||
		    !digits(s, n, &i, 2, &mi))
			return -1;
		if (i < n && s[i] == ':') {
			i++;
			if (!digits(s, n, &i, 2, &ss))
				return -1;
			if (i < n && (s[i] == '.' || s[i] == ',')) {
				i++;
				size_t start = i;
				while (i < n && s[i] >= '0' && s[i] <= '9')
					i++;
				if (i == start)
					return -1;
			}
		}
		if (hh > 23 || mi > 59 || ss > 60)
			return -1;
		if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
			i++;
		} else if (i < n && (s[i] == '+' || s[i] == '-')) {
			int sign = s[i++] == '-' ? -1 : 1, oh, om = 0;
			if (!digits(s, n, &i, 2, &oh))
				return -1;
			if (i < n && s[i] == ':')
				i++;
			if (i < n && !digits(s, n, &i, 2, &om))
				return -1;
			if (oh > 23 || om > 59)
				return -1;
			offset = sign * (oh * 3600 + om * 60);
		}
		if (i != n)
			return -1;
	}
	*out = time_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + hh * 3600 + mi * 60 +
	       ss - offset;
	return 0;
}

void time_format(int64_t t, char out[TIME_FMT_LEN])
{
	int64_t days = t >= 0 ? t / 86400 : -((-t + 86399) / 86400);
	unsigned secs = (unsigned)(t - days * 86400); /* 0..86399 */
	int y;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);
	if (y < 0 || y > 9999) {
		snprintf(out, TIME_FMT_LEN, "%s", "0000-00-00T00:00:00Z");
		return;
	}
	snprintf(out, TIME_FMT_LEN, "%04d-%02u-%02uT%02u:%02u:%02uZ", y, m % 13, d % 32,
		 secs / 3600 % 24, secs / 60 % 60, secs % 60);
}

int time_parse_date(const char *s, size_t n, int32_t *day)
{
	int64_t t;
	if (n != 10 || s[4] != '-' || s[7] != '-' || time_parse(s, n, &t) != 0)
		return -1;
	*day = (int32_t)(t / 86400);
	return 0;
}
