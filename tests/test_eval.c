/*
 * test_eval: the ranking metrics against cases computed by hand.
 */
#include <math.h>

#include "eval.h"
#include "harness.h"

TEST(perfect_and_empty)
{
	eval_totals t = { 0 };
	uint32_t recs[] = { 1, 2 }, rel[] = { 1, 2 };
	eval_add(&t, recs, 2, rel, 2, 2);
	eval_finish(&t);
	CHECK_NEAR(t.precision, 1, 1e-12);
	CHECK_NEAR(t.recall, 1, 1e-12);
	CHECK_NEAR(t.ndcg, 1, 1e-12);
	CHECK_NEAR(t.map, 1, 1e-12);
	CHECK_NEAR(t.hit_rate, 1, 1e-12);
	CHECK_INT(t.users, 1);

	eval_totals none = { 0 };
	eval_add(&none, recs, 2, rel, 0, 2); /* nothing relevant: not counted */
	eval_finish(&none);
	CHECK_INT(none.users, 0);
	CHECK_NEAR(none.ndcg, 0, 1e-12);
}

TEST(hand_computed_k3)
{
	/* k = 3, recs [5, 7, 9], relevant {7, 9, 11} (sorted):
	 * hits at ranks 2 and 3.
	 * precision = 2/3, recall = 2/3
	 * DCG = 1/log2(3) + 1/log2(4); IDCG = 1 + 1/log2(3) + 1/log2(4)
	 * AP = (1/2 + 2/3) / min(3, 3) */
	eval_totals t = { 0 };
	uint32_t recs[] = { 5, 7, 9 }, rel[] = { 7, 9, 11 };
	eval_add(&t, recs, 3, rel, 3, 3);
	eval_finish(&t);
	double dcg = 1 / log2(3.0) + 1 / log2(4.0), idcg = 1 + dcg;
	CHECK_NEAR(t.precision, 2.0 / 3, 1e-12);
	CHECK_NEAR(t.recall, 2.0 / 3, 1e-12);
	CHECK_NEAR(t.ndcg, dcg / idcg, 1e-12);
	CHECK_NEAR(t.map, (0.5 + 2.0 / 3) / 3, 1e-12);
	CHECK_NEAR(t.hit_rate, 1, 1e-12);
}

TEST(ideal_over_min_k_relevant)
{
	/* k = 10, one relevant item found at rank 1: nDCG 1, AP 1 (divided by
	 * min(10, 1)), precision 1/10, recall 1. */
	eval_totals t = { 0 };
	uint32_t recs[] = { 4, 1, 2 }, rel[] = { 4 };
	eval_add(&t, recs, 3, rel, 1, 10);
	eval_finish(&t);
	CHECK_NEAR(t.ndcg, 1, 1e-12);
	CHECK_NEAR(t.map, 1, 1e-12);
	CHECK_NEAR(t.precision, 0.1, 1e-12);
	CHECK_NEAR(t.recall, 1, 1e-12);
}

TEST(averaged_over_users)
{
	/* user 1: miss everything; user 2: hit at rank 2 of k = 2 with one
	 * relevant: nDCG = (1/log2 3) / 1, AP = 1/2. Means over two users. */
	eval_totals t = { 0 };
	uint32_t r1[] = { 1, 2 }, rel1[] = { 3 };
	uint32_t r2[] = { 1, 2 }, rel2[] = { 2 };
	eval_add(&t, r1, 2, rel1, 1, 2);
	eval_add(&t, r2, 2, rel2, 1, 2);
	eval_finish(&t);
	CHECK_INT(t.users, 2);
	CHECK_NEAR(t.ndcg, (1 / log2(3.0)) / 2, 1e-12);
	CHECK_NEAR(t.map, 0.25, 1e-12);
	CHECK_NEAR(t.hit_rate, 0.5, 1e-12);
	CHECK_NEAR(t.precision, 0.25, 1e-12);
}

TEST(fewer_recs_than_k)
{
	/* Two recommendations for k = 5: precision still divides by k. */
	eval_totals t = { 0 };
	uint32_t recs[] = { 8, 9 }, rel[] = { 8, 9 };
	eval_add(&t, recs, 2, rel, 2, 5);
	eval_finish(&t);
	CHECK_NEAR(t.precision, 0.4, 1e-12);
	CHECK_NEAR(t.ndcg, 1, 1e-12);
}

TEST(ndcg_standard_error)
{
	/* One hit at rank 1 (nDCG 1), one miss (0): mean 0.5, sample variance
	 * 0.5, standard error sqrt(0.5 / 2) = 0.5. */
	eval_totals t = { 0 };
	uint32_t hit[] = { 7 }, miss[] = { 8 }, rel[] = { 7 };
	eval_add(&t, hit, 1, rel, 1, 10);
	eval_add(&t, miss, 1, rel, 1, 10);
	eval_finish(&t);
	CHECK_NEAR(t.ndcg, 0.5, 1e-12);
	CHECK_NEAR(t.ndcg_sq, 0.5, 1e-12);
	eval_totals one = { 0 };
	eval_add(&one, hit, 1, rel, 1, 10);
	eval_finish(&one);
	CHECK_NEAR(one.ndcg_sq, 0, 1e-12); /* one customer: no spread to measure */
}

int main(void)
{
	RUN(perfect_and_empty);
	RUN(hand_computed_k3);
	RUN(ideal_over_min_k_relevant);
	RUN(averaged_over_users);
	RUN(fewer_recs_than_k);
	RUN(ndcg_standard_error);
	return harness_done();
}
