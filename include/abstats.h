/*
 * abstats: the statistics of an A/B report (issue 15), pure functions of
 * counts. docs/experiments.md explains the choices.
 *
 * The test is the mixture sequential probability ratio test (mSPRT) of
 * Johari, Koomen, Pekelis and Walsh, "Peeking at A/B Tests: Why it
 * matters, and what to do about it" (KDD 2017) and Johari, Pekelis and
 * Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests"
 * (Operations Research 70(3), 2022), in its normal approximation for the
 * difference of two means (a proportion is the mean of 0/1 values), the
 * form Optimizely's Stats Engine and Statsig's sequential testing ship:
 * with d the observed difference (treatment - control), s2 its estimated
 * variance (var_t/n_t + var_c/n_c) and a normal mixing distribution
 * N(0, tau2) over the true difference,
 *
 *   Lambda = sqrt(s2 / (s2 + tau2)) * exp(tau2 * d^2 / (2 * s2 * (s2 + tau2)))
 *
 * and the always-valid p-value is min(1, 1/Lambda): under no difference,
 * the chance that it EVER falls below alpha, however often one looks, is
 * at most alpha. The interval is the matching confidence sequence, the
 * values of the difference the test would not reject at alpha:
 *
 *   d +- sqrt(2 * s2 * (s2 + tau2) / tau2 * (log(1/alpha) + log((s2 + tau2) / s2) / 2))
 *
 * so "0 outside the interval" and "p < alpha" always agree. tau2 is
 * ABSTATS_TAU_FACTOR^2 times the pooled per-customer variance: the test is
 * tuned to effects of about a tenth of a standard deviation of the
 * per-customer value.
 *
 * The sample-ratio-mismatch check is Pearson's chi-square of the assigned
 * counts against the configured shares, with k - 1 degrees of freedom,
 * its p-value from the regularized upper incomplete gamma function.
 */
#ifndef SHOPKEEPER_ABSTATS_H
#define SHOPKEEPER_ABSTATS_H

#include <stdbool.h>
#include <stdint.h>

#define ABSTATS_ALPHA 0.05
#define ABSTATS_TAU_FACTOR 0.1

/* One arm's per-customer values: their number, sum and sum of squares
 * (for a conversion: n customers, sum = sumsq = the converters). */
typedef struct abstats_arm {
	double n, sum, sumsq;
} abstats_arm;

/* A treatment against the control. */
typedef struct abstats_lift {
	bool valid;        /* false: too little data (fewer than 2 customers
			    * in an arm, or no variance anywhere); then only
			    * estimate is meaningful, and p_value is 1 */
	double estimate;   /* mean_t - mean_c */
	double relative;   /* estimate / mean_c (0 when mean_c is 0) */
	double low, high;  /* the always-valid 1 - alpha interval of estimate */
	double p_value;    /* always-valid, in [0, 1] */
} abstats_lift;

/* The mean of an arm (0 when it has no customers). */
double abstats_mean(const abstats_arm *a);

/* The mSPRT comparison of t against c at level alpha (0 < alpha < 1) with
 * mixing variance tau_factor^2 times the pooled variance (tau_factor > 0).
 * Always fills *out. */
void abstats_msprt(const abstats_arm *c, const abstats_arm *t, double alpha, double tau_factor,
		   abstats_lift *out);

/* The same from a known variance of the difference s2 and mixing variance
 * tau2 (both > 0): the building block, exposed for tests. */
double abstats_msprt_p(double d, double s2, double tau2);
double abstats_msprt_halfwidth(double s2, double tau2, double alpha);

/* P(chi-square with df degrees of freedom > x), df > 0, x >= 0. */
double abstats_chi2_sf(double x, double df);
/* The regularized upper incomplete gamma function Q(a, x), a > 0, x >= 0. */
double abstats_gamma_q(double a, double x);

/* The sample-ratio-mismatch p-value of observed[0..k) against shares[0..k)
 * (positive; normalised here): 1 when k < 2 or nothing was observed. */
double abstats_srm_p(const double *observed, const double *shares, uint32_t k);

#endif
