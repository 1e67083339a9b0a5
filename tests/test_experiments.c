/*
 * test_experiments: the experiments file's rules (one table of bad files,
 * each refused with a message naming the problem) and assignment:
 * deterministic, pinned, shares kept, independent between salts.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "experiments.h"
#include "harness.h"
#include "util.h"

static const char good[] =
	"{\"experiments\":[{\"name\":\"home-recs\",\"salt\":\"2026-12\",\"routes\":[\"customer\"],"
	"\"variants\":[{\"name\":\"control\",\"share\":0.5,\"source\":\"popular\"},"
	"{\"name\":\"personal\",\"share\":0.3,\"params\":{\"neighbors_used\":50,\"cutoff\":0,"
	"\"n\":5,\"include_purchased\":true}},"
	"{\"name\":\"holdout\",\"share\":0.2,\"source\":\"none\"}]},"
	"{\"name\":\"similar\",\"salt\":\"s2\",\"routes\":[\"item\",\"basket\"],"
	"\"variants\":[{\"name\":\"a\",\"share\":0.1},{\"name\":\"b\",\"share\":0.9,"
	"\"model\":\"models/other/\"}]}]}";

static experiments *parse_ok(const char *json)
{
	experiments *ex = NULL;
	strbuf err = STRBUF_INIT;
	int rc = experiments_parse(json, strlen(json), &ex, &err);
	if (rc != 0)
		fprintf(stderr, "unexpected refusal: %s\n", sb_str(&err));
	CHECK_INT(rc, 0);
	sb_release(&err);
	return ex;
}

TEST(parse_good)
{
	experiments *ex = parse_ok(good);
	if (!ex)
		return;
	CHECK_INT(experiments_count(ex), 2);
	const exp_experiment *e = experiments_at(ex, 0);
	CHECK_STR(e->name, "home-recs");
	CHECK_STR(e->salt, "2026-12");
	CHECK_INT(e->id, recid_experiment_id("home-recs", "2026-12"));
	CHECK_INT(e->routes, EXP_ROUTE_BIT(RECID_ROUTE_CUSTOMER));
	CHECK_INT(e->n_variants, 3);
	CHECK_INT(e->variants[0].source, EXP_SOURCE_POPULAR);
	CHECK_INT(e->variants[1].source, EXP_SOURCE_DEFAULT);
	CHECK_INT(e->variants[2].source, EXP_SOURCE_NONE);
	CHECK(e->variants[1].has_params);
	CHECK_INT(e->variants[1].params.rec.neighbors_used, 50);
	CHECK_NEAR(e->variants[1].params.rec.cutoff, 0, 0);
	CHECK_INT(e->variants[1].params.n, 5);
	CHECK_INT(e->variants[1].params.include_purchased, 1);
	CHECK_INT(e->variants[1].params.explain, -1);
	CHECK_NEAR(e->variants[2].upper, 1.0, 0);
	CHECK(experiments_find(ex, "similar", 7) == experiments_at(ex, 1));
	CHECK(experiments_find(ex, "simila", 6) == NULL);
	CHECK_STR(experiments_at(ex, 1)->variants[1].model_dir, "models/other/");
	CHECK(experiments_at(ex, 2) == NULL);

	strbuf sb = STRBUF_INIT;
	experiments_json(ex, &sb);
	CHECK(strstr(sb_str(&sb), "{\"experiments\":[{\"name\":\"home-recs\",\"id\":") != NULL);
	CHECK(strstr(sb_str(&sb), "\"routes\":[\"item\",\"basket\"]") != NULL);
	CHECK(strstr(sb_str(&sb), "\"model\":\"other\"") != NULL); /* not the path */
	CHECK(strstr(sb_str(&sb), "\"params\":{\"n\":5,\"include_purchased\":true,"
				  "\"neighbors_used\":50,\"cutoff\":0}") != NULL);
	sb_reset(&sb);
	experiments_json(NULL, &sb);
	CHECK_STR(sb_str(&sb), "{\"experiments\":[]}");
	sb_release(&sb);
	experiments_free(ex);
	experiments_free(NULL);

	ex = parse_ok("{\"experiments\":[]}");
	CHECK_INT(experiments_count(ex), 0);
	experiments_free(ex);
	/* shares within 1e-9 of 1 */
	ex = parse_ok("{\"experiments\":[{\"name\":\"t\",\"salt\":\"s\",\"routes\":[\"basket\"],"
		      "\"variants\":[{\"name\":\"a\",\"share\":0.3333333333},"
		      "{\"name\":\"b\",\"share\":0.3333333333},{\"name\":\"c\",\"share\":0.3333333333}]}]}");
	experiments_free(ex);
}

/* One bad file each, and a piece of the message it must give. */
/* Variants naming the same directory string share a slot; slots count
 * distinct strings in order of first mention, across experiments. */
TEST(model_slots)
{
	experiments *ex = parse_ok(
		"{\"experiments\":[{\"name\":\"e1\",\"salt\":\"s\",\"routes\":[\"customer\"],"
		"\"variants\":[{\"name\":\"a\",\"share\":0.25},"
		"{\"name\":\"b\",\"share\":0.25,\"model\":\"m1\"},"
		"{\"name\":\"c\",\"share\":0.25,\"model\":\"m2\"},"
		"{\"name\":\"d\",\"share\":0.25,\"model\":\"m1\"}]},"
		"{\"name\":\"e2\",\"salt\":\"t\",\"routes\":[\"item\"],"
		"\"variants\":[{\"name\":\"a\",\"share\":0.5,\"model\":\"m2\"},"
		"{\"name\":\"b\",\"share\":0.5,\"model\":\"m3\"}]}]}");
	if (!ex)
		return;
	CHECK_INT(experiments_model_count(ex), 3);
	CHECK_STR(experiments_model_dir(ex, 0), "m1");
	CHECK_STR(experiments_model_dir(ex, 1), "m2");
	CHECK_STR(experiments_model_dir(ex, 2), "m3");
	const exp_experiment *e = experiments_at(ex, 0);
	CHECK_INT(e->variants[0].model_slot, 0);
	CHECK_INT(e->variants[1].model_slot, 1);
	CHECK_INT(e->variants[2].model_slot, 2);
	CHECK_INT(e->variants[3].model_slot, 1);
	e = experiments_at(ex, 1);
	CHECK_INT(e->variants[0].model_slot, 2);
	CHECK_INT(e->variants[1].model_slot, 3);
	const char *ids[EXP_MAX_MODELS] = { "id-1", NULL, "id-3" };
	strbuf sb = STRBUF_INIT;
	experiments_json_models(ex, ids, &sb);
	CHECK(strstr(sb_str(&sb), "\"model\":\"m1\",\"model_id\":\"id-1\"") != NULL);
	CHECK(strstr(sb_str(&sb), "\"model\":\"m2\"}") != NULL);
	CHECK(strstr(sb_str(&sb), "\"model\":\"m3\",\"model_id\":\"id-3\"") != NULL);
	sb_release(&sb);
	CHECK_INT(experiments_model_count(NULL), 0);
	experiments_free(ex);
}

TEST(parse_refusals)
{
#define EXP(body) "{\"experiments\":[" body "]}"
#define ONE(extra, variants) \
	EXP("{\"name\":\"e\",\"salt\":\"s\",\"routes\":[\"customer\"]" extra ",\"variants\":[" variants "]}")
#define V2 "{\"name\":\"a\",\"share\":0.5},{\"name\":\"b\",\"share\":0.5}"
	static const struct {
		const char *json, *want;
	} cases[] = {
		{ "{", "not valid JSON" },
		{ "[]", "an object with an \"experiments\" array" },
		{ "{\"experiments\":[],\"x\":1}", "unknown key \"x\" in the file" },
		{ ONE(",\"color\":1", V2), "experiment \"e\": unknown key \"color\" in an experiment" },
		{ ONE("", "{\"name\":\"a\",\"share\":0.5,\"weight\":1},{\"name\":\"b\",\"share\":0.5}"),
		  "variant \"a\": unknown key \"weight\" in a variant" },
		{ ONE("", "{\"name\":\"a\",\"share\":0.5,\"params\":{\"k\":1}},{\"name\":\"b\",\"share\":0.5}"),
		  "unknown key \"k\" in params" },
		{ ONE("", "{\"name\":\"a\",\"share\":0.5},{\"name\":\"b\",\"share\":0.4}"),
		  "shares sum to 0.9; they must sum to 1" },
		{ ONE("", "{\"name\":\"a\",\"share\":0.6},{\"name\":\"b\",\"share\":0.6}"),
		  "shares sum to 1.2" },
		{ ONE("", "{\"name\":\"a\",\"share\":1},{\"name\":\"b\",\"share\":0}"),
		  "variant \"b\": share must be > 0" },
		{ ONE("", "{\"name\":\"a\",\"share\":1.5},{\"name\":\"b\",\"share\":-0.5}"),
		  "share must be > 0 and at most 1" },
		{ ONE("", "{\"name\":\"a\",\"share\":\"0.5\"},{\"name\":\"b\",\"share\":0.5}"),
		  "needs a \"share\" number" },
		{ ONE("", "{\"name\":\"a\",\"share\":0.5},{\"name\":\"a\",\"share\":0.5}"),
		  "two variants are named \"a\"" },
		{ EXP("{\"name\":\"e\",\"salt\":\"s\",\"routes\":[\"customer\"],\"variants\":[" V2 "]},"
		      "{\"name\":\"e\",\"salt\":\"t\",\"routes\":[\"item\"],\"variants\":[" V2 "]}"),
		  "experiment \"e\": two experiments have this name" },
		{ EXP("{\"name\":\"e\",\"salt\":\"s\",\"routes\":[\"customer\"],\"variants\":[" V2 "]},"
		      "{\"name\":\"f\",\"salt\":\"t\",\"routes\":[\"item\",\"customer\"],\"variants\":[" V2 "]}"),
		  "experiment \"f\": route \"customer\" is in experiment \"e\" already" },
		{ ONE("", "{\"name\":\"a\",\"share\":0.5,\"source\":\"random\"},{\"name\":\"b\",\"share\":0.5}"),
		  "source must be \"popular\" or \"none\"" },
		{ ONE("", "{\"name\":\"a\",\"share\":0.5,\"source\":\"none\",\"params\":{\"n\":3}},"
			  "{\"name\":\"b\",\"share\":0.5}"),
		  "a \"none\" variant" },
		{ EXP("{\"name\":\"e\",\"salt\":\"s\",\"routes\":[\"checkout\"],\"variants\":[" V2 "]}"),
		  "routes[0] must be \"customer\", \"item\" or \"basket\"" },
		{ EXP("{\"name\":\"e\",\"salt\":\"s\",\"routes\":[],\"variants\":[" V2 "]}"),
		  "routes must be a non-empty array" },
		{ EXP("{\"name\":\"e\",\"salt\":\"s\",\"routes\":[\"item\",\"item\"],\"variants\":[" V2 "]}"),
		  "route \"item\" is listed twice" },
		{ EXP("{\"name\":\"e\",\"routes\":[\"item\"],\"variants\":[" V2 "]}"), "needs a \"salt\"" },
		{ EXP("{\"name\":\"e f\",\"salt\":\"s\",\"routes\":[\"item\"],\"variants\":[" V2 "]}"),
		  "name \"e f\" must be 1 to 64 characters" },
		{ EXP("{\"salt\":\"s\",\"routes\":[\"item\"],\"variants\":[" V2 "]}"),
		  "experiments[0] needs a \"name\" string" },
		{ ONE("", ""), "variants must be a non-empty array" },
		{ ONE("", "{\"name\":\"a\",\"share\":1,\"params\":{\"neighbors_used\":0}}"),
		  "params.neighbors_used must be an integer from 1 to 1000" },
		{ ONE("", "{\"name\":\"a\",\"share\":1,\"params\":{\"cutoff\":1}}"),
		  "params.cutoff must be a number from 0 to below 1" },
		{ ONE("", "{\"name\":\"a\",\"share\":1,\"params\":{\"n\":1000}}"),
		  "params.n must be an integer from 1 to" },
		{ ONE("", "{\"name\":\"a\",\"share\":1,\"params\":{\"include_purchased\":1}}"),
		  "params.include_purchased must be true or false" },
		{ ONE("", "{\"name\":\"a\",\"share\":1,\"params\":{\"min_price\":-1}}"),
		  "params.min_price must be a number >= 0" },
		{ ONE("", "{\"name\":\"a\",\"share\":1,\"params\":{\"min_price\":5,\"max_price\":1}}"),
		  "min_price is above params.max_price" },
		{ ONE("", "{\"name\":\"a\",\"share\":1,\"model\":\"\"}"), "model must be a model directory" },
		{ ONE("", "{\"name\":\"a\",\"share\":0.5,\"share\":0.5}"), "duplicate object key" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		experiments *ex = (experiments *)1;
		strbuf err = STRBUF_INIT;
		int rc = experiments_parse(cases[i].json, strlen(cases[i].json), &ex, &err);
		CHECK_INT(rc, -1);
		CHECK(ex == NULL);
		if (!strstr(sb_str(&err), cases[i].want)) {
			fprintf(stderr, "case %zu: message \"%s\" lacks \"%s\"\n", i, sb_str(&err),
				cases[i].want);
			CHECK(0);
		}
		sb_release(&err);
	}
}

TEST(load_file)
{
	char path[] = "/tmp/test_experiments_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_INT(write(fd, good, strlen(good)), (long long)strlen(good));
	close(fd);
	experiments *ex = NULL;
	strbuf err = STRBUF_INIT;
	CHECK_INT(experiments_load(path, &ex, &err), 0);
	CHECK_INT(experiments_count(ex), 2);
	experiments_free(ex);
	/* a bad file: the path leads the message */
	FILE *f = fopen(path, "w");
	fputs("{\"experiments\":[{]}", f);
	fclose(f);
	CHECK_INT(experiments_load(path, &ex, &err), -1);
	CHECK(strncmp(sb_str(&err), path, strlen(path)) == 0);
	CHECK(strstr(sb_str(&err), "not valid JSON") != NULL);
	unlink(path);
	CHECK_INT(experiments_load(path, &ex, &err), -1);
	CHECK(strstr(sb_str(&err), "No such file or directory") != NULL);
	CHECK(ex == NULL);
	sb_release(&err);
}

static void make_id(char *buf, size_t size, unsigned i)
{
	snprintf(buf, size, "customer-%u", i);
}

/* Pinned: a customer's variant may never change between versions of the
 * program, or running experiments would reshuffle on an upgrade. */
TEST(assign_pinned)
{
	static const struct {
		const char *id;
		double unit;
		const char *variant;
	} pins[] = {
		{ "17850", 0.15148233014770884, "control" },
		{ "13047", 0.73498046208618073, "personal" },
		{ "15311", 0.88726305369858949, "holdout" },
		{ "anon-1", 0.022910725865621151, "control" },
		{ "x", 0.9399070105664088, "holdout" },
	};
	experiments *ex = parse_ok(good);
	if (!ex)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(pins); i++) {
		exp_assignment a, b;
		size_t len = strlen(pins[i].id);
		CHECK_NEAR(experiments_unit("2026-12", 7, pins[i].id, len), pins[i].unit, 1e-15);
		experiments_assign(ex, RECID_ROUTE_CUSTOMER, pins[i].id, len, &a);
		experiments_assign(ex, RECID_ROUTE_CUSTOMER, pins[i].id, len, &b);
		CHECK(a.experiment == experiments_at(ex, 0));
		CHECK(a.variant == b.variant);
		CHECK(a.variant == &a.experiment->variants[a.variant_index]);
		CHECK_STR(a.variant->name, pins[i].variant);
	}
	exp_assignment a;
	experiments_assign(ex, RECID_ROUTE_ITEM, "17850", 5, &a);
	CHECK(a.experiment == experiments_at(ex, 1));
	experiments_assign(ex, RECID_ROUTE_CUSTOMER, NULL, 0, &a);
	CHECK(a.experiment == NULL && a.variant == NULL);
	experiments_assign(NULL, RECID_ROUTE_CUSTOMER, "x", 1, &a);
	CHECK(a.experiment == NULL);
	experiments_free(ex);
	ex = parse_ok("{\"experiments\":[{\"name\":\"t\",\"salt\":\"s\",\"routes\":[\"basket\"],"
		      "\"variants\":[{\"name\":\"a\",\"share\":1}]}]}");
	experiments_assign(ex, RECID_ROUTE_CUSTOMER, "x", 1, &a);
	CHECK(a.experiment == NULL); /* no experiment on this route */
	experiments_free(ex);
}

/* Over 200,000 ids each variant's count is within 5 standard deviations
 * of its share (a binomial: the chance of a false alarm is below 1e-6). */
TEST(assign_shares)
{
	experiments *ex = parse_ok(good);
	if (!ex)
		return;
	const unsigned N = 200000;
	unsigned count[3] = { 0 };
	char id[32];
	for (unsigned i = 0; i < N; i++) {
		exp_assignment a;
		make_id(id, sizeof id, i);
		experiments_assign(ex, RECID_ROUTE_CUSTOMER, id, strlen(id), &a);
		count[a.variant_index]++;
	}
	const double share[3] = { 0.5, 0.3, 0.2 };
	for (int k = 0; k < 3; k++) {
		double expect = N * share[k], sd = sqrt(N * share[k] * (1 - share[k]));
		CHECK(fabs(count[k] - expect) < 5 * sd);
	}
	experiments_free(ex);
}

/* Two salts assign independently: over 200,000 ids the 2x2 table of
 * "in the first half under salt A" by "under salt B" passes a chi-square
 * test (1 degree of freedom; 24 is p < 1e-6), and the units are
 * uncorrelated. */
TEST(assign_independent)
{
	const unsigned N = 200000;
	double table[2][2] = { { 0 } }, sxy = 0, sx = 0, sy = 0, sxx = 0, syy = 0;
	char id[32];
	for (unsigned i = 0; i < N; i++) {
		make_id(id, sizeof id, i);
		double x = experiments_unit("2026-12", 7, id, strlen(id));
		double y = experiments_unit("2027-01", 7, id, strlen(id));
		CHECK(x >= 0 && x < 1 && y >= 0 && y < 1);
		table[x < 0.5][y < 0.5]++;
		sx += x, sy += y, sxy += x * y, sxx += x * x, syy += y * y;
	}
	double chi = 0;
	for (int a = 0; a < 2; a++)
		for (int b = 0; b < 2; b++) {
			double row = table[a][0] + table[a][1], col = table[0][b] + table[1][b];
			double e = row * col / N;
			chi += (table[a][b] - e) * (table[a][b] - e) / e;
		}
	CHECK(chi < 24);
	double cov = sxy / N - (sx / N) * (sy / N);
	double r = cov / sqrt((sxx / N - (sx / N) * (sx / N)) * (syy / N - (sy / N) * (sy / N)));
	CHECK(fabs(r) < 5 / sqrt(N)); /* 5 standard errors of a zero correlation */
	/* the same salt is the same assignment: the test can fail */
	CHECK_NEAR(experiments_unit("s", 1, "x", 1), experiments_unit("s", 1, "x", 1), 0);
	CHECK(experiments_unit("ab", 2, "c", 1) != experiments_unit("a", 1, "bc", 2));
}

int main(void)
{
	RUN(parse_good);
	RUN(model_slots);
	RUN(parse_refusals);
	RUN(load_file);
	RUN(assign_pinned);
	RUN(assign_shares);
	RUN(assign_independent);
	return harness_done();
}
