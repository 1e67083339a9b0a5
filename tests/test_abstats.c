/* abstats: the mSPRT p-value and interval, the chi-square tail and the SRM
 * check against values computed by hand (the derivations in comments) and
 * textbook tables. */
#include "abstats.h"
#include "harness.h"

/* s2 = tau2 = 1, d = 3: log Lambda = ln(1/2)/2 + 9/4 = 1.903426,
 * p = e^-1.903426 = 0.149057; half-width sqrt(4 (ln 20 + ln(2)/2)) =
 * 3.656395. */
TEST(msprt_unit_case)
{
	CHECK_NEAR(abstats_msprt_p(3, 1, 1), 0.149057012839, 1e-9);
	CHECK_NEAR(abstats_msprt_p(-3, 1, 1), 0.149057012839, 1e-9);
	CHECK_NEAR(abstats_msprt_halfwidth(1, 1, 0.05), 3.656394871364, 1e-9);
	/* No difference: Lambda < 1, p is 1. */
	CHECK_NEAR(abstats_msprt_p(0, 1, 1), 1.0, 0);
}

/* 100 of 1000 against 150 of 1000: var_c = 90/999, var_t = 127.5/999,
 * s2 = (var_c + var_t)/1000, tau2 = 0.01 (var_c + var_t)/2 = 5 s2, so
 * log Lambda = -ln(6)/2 + 0.05^2 * 5 s2 / (2 s2 * 6 s2) = -0.895880 +
 * 0.0125 / (12 s2) with s2 = 2.177177e-4: 3.888603, p = 0.020474;
 * half-width sqrt(2.4 s2 (ln 20 + ln(6)/2)) = 0.045094. */
TEST(msprt_two_proportions)
{
	abstats_arm c = { 1000, 100, 100 }, t = { 1000, 150, 150 };
	abstats_lift l;
	abstats_msprt(&c, &t, 0.05, 0.1, &l);
	CHECK(l.valid);
	CHECK_NEAR(l.estimate, 0.05, 1e-12);
	CHECK_NEAR(l.relative, 0.5, 1e-12);
	CHECK_NEAR(l.p_value, 0.020473927655, 1e-9);
	CHECK_NEAR(l.low, 0.004906154265, 1e-9);
	CHECK_NEAR(l.high, 0.095093845735, 1e-9);
	/* The interval and the test agree: 0 is outside iff p < alpha. */
	CHECK((l.low > 0) == (l.p_value < 0.05));
	/* Swapped arms: the mirror image. */
	abstats_msprt(&t, &c, 0.05, 0.1, &l);
	CHECK_NEAR(l.estimate, -0.05, 1e-12);
	CHECK_NEAR(l.p_value, 0.020473927655, 1e-9);
}

TEST(msprt_too_little_data)
{
	abstats_arm c = { 1, 1, 1 }, t = { 10, 5, 5 };
	abstats_lift l;
	abstats_msprt(&c, &t, 0.05, 0.1, &l);
	CHECK(!l.valid);
	CHECK_NEAR(l.p_value, 1, 0);
	abstats_arm z = { 10, 0, 0 }; /* no conversions anywhere: no variance */
	abstats_msprt(&z, &z, 0.05, 0.1, &l);
	CHECK(!l.valid);
	CHECK_NEAR(l.estimate, 0, 0);
}

TEST(chi2_tail)
{
	/* df 1: Q(1/2, x/2) = erfc(sqrt(x/2)); df 2: e^(-x/2). */
	CHECK_NEAR(abstats_chi2_sf(4, 1), 0.045500263896, 1e-10);
	CHECK_NEAR(abstats_chi2_sf(2, 2), 0.367879441171, 1e-10);
	/* Table critical values at 5%: df 3 -> 7.8147, df 10 -> 18.307,
	 * df 1 -> 3.8415. */
	CHECK_NEAR(abstats_chi2_sf(7.814727903, 3), 0.05, 1e-8);
	CHECK_NEAR(abstats_chi2_sf(18.307038054, 10), 0.05, 1e-8);
	CHECK_NEAR(abstats_chi2_sf(3.841458821, 1), 0.05, 1e-8);
	CHECK_NEAR(abstats_chi2_sf(0, 4), 1, 0);
	CHECK_NEAR(abstats_gamma_q(1, 3), 0.049787068368, 1e-11); /* e^-3 */
}

TEST(srm)
{
	/* 60 against 40 at 50/50: X2 = (10^2 + 10^2)/50 = 4, df 1. */
	double obs[3] = { 60, 40, 0 }, even[3] = { 0.5, 0.5, 0 };
	CHECK_NEAR(abstats_srm_p(obs, even, 2), 0.045500263896, 1e-10);
	/* Shares need not add up to 1. */
	double halves[2] = { 1, 1 };
	CHECK_NEAR(abstats_srm_p(obs, halves, 2), 0.045500263896, 1e-10);
	/* 30, 30, 40 at thirds: X2 = (11.1 + 11.1 + 44.4)/33.3 = 2, df 2. */
	double o3[3] = { 30, 30, 40 }, s3[3] = { 1, 1, 1 };
	CHECK_NEAR(abstats_srm_p(o3, s3, 3), 0.367879441171, 1e-10);
	/* Exactly on the shares; nothing observed; one arm. */
	double o4[2] = { 90, 10 }, s4[2] = { 0.9, 0.1 };
	CHECK_NEAR(abstats_srm_p(o4, s4, 2), 1, 1e-12);
	double none[2] = { 0, 0 };
	CHECK_NEAR(abstats_srm_p(none, s4, 2), 1, 0);
	CHECK_NEAR(abstats_srm_p(o4, s4, 1), 1, 0);
}

int main(void)
{
	RUN(msprt_unit_case);
	RUN(msprt_two_proportions);
	RUN(msprt_too_little_data);
	RUN(chi2_tail);
	RUN(srm);
	return harness_done();
}
