/*
 * gen: a deterministic generator of synthetic store data for benchmarks.
 *
 *   shopkeeper-gen --customers N --items N --interactions N [--seed S]
 *                  [--clusters C] [--out FILE] [--catalog FILE]
 *                  [--cycle-days D] [--drift P] [--repeat P]
 *
 * Shape: item popularity follows a power law (Zipf, exponent 1.1); every
 * item belongs to one of C taste clusters and every customer has a home
 * cluster, from which 70% of their interactions come (so item-item
 * similarity has real signal); customer activity is heavy-tailed (a few
 * customers buy a lot); timestamps span two years, denser towards the end;
 * events are mostly purchases with views and carts, 2% returns. The same
 * seed gives byte-identical output.
 *
 * Rhythm (for the tuning benchmarks, bench/README.md "Tuning"): with
 * --cycle-days D a customer shops in visits of about four interactions,
 * D days apart on average (exponential gaps back from their last visit,
 * which falls anywhere in the two years, more often late), and their
 * taste drifts: at each visit they move to another
 * cluster with probability --drift (default 0.3). So what they bought
 * lately says more than what they bought long ago, at a pace set by D.
 * --repeat P: a purchase is of an item they bought at an earlier visit with
 * probability P (consumables), else drawn as above. Without --cycle-days
 * the output is what it always was. Streams: memory is O(items + customers),
 * whatever the number of interactions.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state;

/* splitmix64: small, fast, and the same everywhere. */
static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double uniform(void)
{
	return (double)(rng() >> 11) * (1.0 / 9007199254740992.0);
}

/* Cumulative Zipf weights over n ranks. */
static double *zipf_cdf(uint32_t n, double s)
{
	double *cdf = malloc((size_t)n * sizeof(*cdf)), sum = 0;
	if (!cdf) {
		fputs("gen: out of memory\n", stderr);
		exit(1);
	}
	for (uint32_t i = 0; i < n; i++)
		cdf[i] = (sum += 1.0 / pow(i + 1.0, s));
	for (uint32_t i = 0; i < n; i++)
		cdf[i] /= sum;
	return cdf;
}

static uint32_t draw(const double *cdf, uint32_t n)
{
	double u = uniform();
	uint32_t lo = 0, hi = n - 1;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint64_t hash64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static void usage(FILE *f)
{
	fputs("usage: shopkeeper-gen --customers N --items N --interactions N [--seed S]\n"
	      "                      [--clusters C] [--out FILE] [--catalog FILE]\n"
	      "                      [--cycle-days D] [--drift P] [--repeat P]\n", f);
}

static uint64_t number(const char *opt, const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || v == 0) {
		fprintf(stderr, "gen: %s %s: expected a positive integer\n", opt, s);
		exit(2);
	}
	return v;
}

static double fraction(const char *opt, const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (!*s || *end || !(v >= 0) || v > 1) {
		fprintf(stderr, "gen: %s %s: expected a number from 0 to 1\n", opt, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	uint64_t customers = 0, items = 0, interactions = 0, seed = 1, clusters = 20, cycle = 0;
	double drift = 0.3, repeat = 0;
	const char *out = NULL, *catalog = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (!v) {
			usage(stderr);
			return 2;
		}
		if (strcmp(a, "--customers") == 0)
			customers = number(a, v);
		else if (strcmp(a, "--items") == 0)
			items = number(a, v);
		else if (strcmp(a, "--interactions") == 0)
			interactions = number(a, v);
		else if (strcmp(a, "--seed") == 0)
			seed = number(a, v);
		else if (strcmp(a, "--clusters") == 0)
			clusters = number(a, v);
		else if (strcmp(a, "--out") == 0)
			out = v;
		else if (strcmp(a, "--catalog") == 0)
			catalog = v;
		else if (strcmp(a, "--cycle-days") == 0)
			cycle = number(a, v);
		else if (strcmp(a, "--drift") == 0)
			drift = fraction(a, v);
		else if (strcmp(a, "--repeat") == 0)
			repeat = fraction(a, v);
		else {
			usage(stderr);
			return 2;
		}
		i++;
	}
	if (!customers || !items || !interactions || items > 100000000 || customers > 1000000000 ||
	    clusters > items) {
		usage(stderr);
		return 2;
	}
	rng_state = seed;

	/* Items by cluster, each cluster's items in global popularity order. */
	uint32_t ni = (uint32_t)items, nc = (uint32_t)clusters;
	uint32_t *members = malloc((size_t)ni * sizeof(*members));
	uint32_t *start = calloc((size_t)nc + 1, sizeof(*start));
	for (uint32_t i = 0; i < ni; i++)
		start[hash64(i ^ seed) % nc + 1]++;
	for (uint32_t c = 0; c < nc; c++)
		start[c + 1] += start[c];
	uint32_t *fill = malloc((size_t)nc * sizeof(*fill));
	memcpy(fill, start, (size_t)nc * sizeof(*fill));
	for (uint32_t i = 0; i < ni; i++)
		members[fill[hash64(i ^ seed) % nc]++] = i;
	double *global = zipf_cdf(ni, 1.1);
	double **local = calloc(nc, sizeof(*local));
	for (uint32_t c = 0; c < nc; c++)
		if (start[c + 1] > start[c])
			local[c] = zipf_cdf(start[c + 1] - start[c], 1.1);

	FILE *f = out ? fopen(out, "w") : stdout;
	if (!f) {
		perror(out);
		return 1;
	}
	static char buf[1 << 20];
	setvbuf(f, buf, _IOFBF, sizeof(buf));
	fputs("customer_id,item_id,timestamp,event,quantity,price\n", f);

	const int64_t end = 1735689600; /* 2025-01-01 */
	const double span = 730 * 86400.0;
	double mean = (double)interactions / (double)customers, left = (double)interactions;
	static const char *const events[] = { "view", "cart", "purchase" };
	uint32_t *bought = NULL; /* --repeat: the customer's purchases so far */
	uint64_t cap_bought = 0;
	for (uint64_t c = 0; c < customers && left > 0; c++) {
		/* Log-normal activity around the mean; the last customer takes
		 * what is left so the total is exact. */
		double z = sqrt(-2 * log(uniform() + 1e-300)) * cos(6.283185307179586 * uniform());
		uint64_t n = (uint64_t)fmax(1.0, round(mean * exp(1.1 * z - 0.605)));
		if (c == customers - 1 || n > left)
			n = (uint64_t)left;
		left -= (double)n;
		uint32_t home = (uint32_t)(hash64(c * 7919 + seed) % nc);
		/* With a rhythm: visits from the last one back, their times. */
		int64_t visit_ts = cycle ? end - (int64_t)(span * pow(uniform(), 1.5)) : end;
		uint64_t in_visit = 0, n_bought = 0;
		if (cycle && n > cap_bought) {
			cap_bought = n;
			bought = realloc(bought, cap_bought * sizeof(*bought));
			if (!bought) {
				fputs("gen: out of memory\n", stderr);
				return 1;
			}
		}
		for (uint64_t k = 0; k < n; k++) {
			uint32_t item;
			int64_t ts;
			if (cycle) {
				if (in_visit == 4) { /* the visit before: earlier, maybe elsewhere */
					in_visit = 0;
					visit_ts -= (int64_t)(cycle * 86400.0 * -log(uniform() + 1e-300));
					if (visit_ts < end - (int64_t)span)
						visit_ts += (int64_t)span; /* wrap: a long customer */
					if (uniform() < drift)
						home = (uint32_t)(rng() % nc);
				}
				in_visit++;
				ts = visit_ts + (int64_t)(uniform() * 3600);
			} else {
				ts = 0;
			}
			if (cycle && n_bought && uniform() < repeat)
				item = bought[rng() % n_bought];
			else if (uniform() < 0.7 && local[home])
				item = members[start[home] + draw(local[home], start[home + 1] - start[home])];
			else
				item = draw(global, ni);
			if (!cycle)
				ts = end - (int64_t)(span * pow(uniform(), 1.5));
			double e = uniform();
			int ev = e < 0.2 ? 0 : e < 0.3 ? 1 : 2;
			int qty = 1 + (int)(uniform() * uniform() * 5);
			if (ev == 2 && uniform() < 0.02)
				qty = -qty;
			if (cycle && ev == 2 && qty > 0)
				bought[n_bought++] = item;
			double price = 1.0 + (double)(hash64(item) % 9900) / 100.0;
			time_t t = (time_t)ts;
			struct tm tm;
			gmtime_r(&t, &tm);
			fprintf(f, "c%" PRIu64 ",i%u,%04d-%02d-%02d %02d:%02d:%02d,%s,%d,%.2f\n", c, item,
				tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
				tm.tm_sec, events[ev], qty, price);
		}
	}
	if (f != stdout && fclose(f) != 0) {
		perror(out);
		return 1;
	}
	if (f == stdout)
		fflush(stdout);

	if (catalog) {
		FILE *cf = fopen(catalog, "w");
		if (!cf) {
			perror(catalog);
			return 1;
		}
		fputs("item_id,title,category,price\n", cf);
		for (uint32_t i = 0; i < ni; i++)
			fprintf(cf, "i%u,Item %u,cat%u,%.2f\n", i, i, (uint32_t)(hash64(i ^ seed) % nc),
				1.0 + (double)(hash64(i) % 9900) / 100.0);
		if (fclose(cf) != 0) {
			perror(catalog);
			return 1;
		}
	}
	free(bought);
	for (uint32_t c = 0; c < nc; c++)
		free(local[c]);
	free(local);
	free(global);
	free(fill);
	free(start);
	free(members);
	return 0;
}
