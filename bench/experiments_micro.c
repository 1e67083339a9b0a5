/*
 * experiments_micro: what serving under experiments adds to one answer, in
 * process: the assignment (experiments_assign: a scan of route bits and one
 * hash of salt and id), a rec_id (recid_next_seq + recid_encode), the
 * clock read of its time, and the JSON tag (rec_json_tag). Each timed over
 * 1,000,000 answers of 1,000 distinct ids; the best of 7 repetitions is
 * reported, as on a shared machine the best is the one least disturbed.
 *
 *   bin/shopkeeper-experiments-micro
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "experiments.h"
#include "rec_json.h"
#include "recid.h"
#include "util.h"

#define ANSWERS 1000000
#define IDS 1000
#define REPS 7

static double thread_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void)
{
	static const char file[] =
		"{\"experiments\":[{\"name\":\"home-recs\",\"salt\":\"2026-12\",\"routes\":[\"customer\"],"
		"\"variants\":[{\"name\":\"control\",\"share\":0.5,\"source\":\"popular\"},"
		"{\"name\":\"personal\",\"share\":0.5}]}]}";
	experiments *ex = NULL;
	strbuf err = STRBUF_INIT, sb = STRBUF_INIT;
	if (experiments_parse(file, strlen(file), &ex, &err) != 0) {
		fprintf(stderr, "experiments_micro: %s\n", sb_str(&err));
		return 1;
	}
	static char ids[IDS][16];
	for (int i = 0; i < IDS; i++)
		snprintf(ids[i], sizeof ids[i], "%d", 12346 + i * 7);
	double best[4] = { 1e9, 1e9, 1e9, 1e9 };
	unsigned sink = 0;
	for (int rep = 0; rep < REPS; rep++) {
		double t0 = thread_seconds();
		for (int i = 0; i < ANSWERS; i++) {
			exp_assignment a;
			experiments_assign(ex, RECID_ROUTE_CUSTOMER, ids[i % IDS], strlen(ids[i % IDS]), &a);
			sink += a.variant_index;
		}
		double t1 = thread_seconds();
		char text[RECID_LEN + 1];
		for (int i = 0; i < ANSWERS; i++) {
			recid id = { 0x12345678u, (uint8_t)(i & 1), 0x9abcdef0u, RECID_ROUTE_CUSTOMER,
				     1796083200123 + i, recid_next_seq() };
			recid_encode(&id, text);
			sink += (unsigned char)text[27];
		}
		double t2 = thread_seconds();
		for (int i = 0; i < ANSWERS; i++) {
			sink += (unsigned)(int64_t)(util_now() * 1000.0);
		}
		double t3 = thread_seconds();
		for (int i = 0; i < ANSWERS; i++) {
			sb_reset(&sb);
			rec_json_tag(&sb, text, "home-recs", "control");
			sink += (unsigned)sb.len;
		}
		double t4 = thread_seconds();
		double t[4] = { t1 - t0, t2 - t1, t3 - t2, t4 - t3 };
		for (int k = 0; k < 4; k++)
			if (t[k] < best[k])
				best[k] = t[k];
	}
	static const char *const what[] = { "experiments_assign", "recid_next_seq + recid_encode",
					    "a clock read (the rec_id's time)", "rec_json_tag" };
	double total = 0;
	for (int k = 0; k < 4; k++) {
		printf("%-38s %6.1f ns per answer\n", what[k], best[k] * 1e9 / ANSWERS);
		total += best[k] * 1e9 / ANSWERS;
	}
	printf("%-38s %6.1f ns per answer (sink %u)\n", "total", total, sink & 1);
	experiments_free(ex);
	sb_release(&err);
	sb_release(&sb);
	return 0;
}
