/*
 * abstats: mSPRT, its confidence sequence, and the SRM chi-square. See
 * abstats.h for the formulas and the papers.
 */
#include "abstats.h"

#include <assert.h>
#include <math.h>

double abstats_mean(const abstats_arm *a)
{
	return a->n > 0 ? a->sum / a->n : 0;
}

/* The unbiased sample variance of one arm (0 below two customers; never
 * negative: rounding can make sumsq - sum^2/n slightly so). */
static double arm_var(const abstats_arm *a)
{
	if (a->n < 2)
		return 0;
	double v = (a->sumsq - a->sum * a->sum / a->n) / (a->n - 1);
	return v > 0 ? v : 0;
}

double abstats_msprt_p(double d, double s2, double tau2)
{
	assert(s2 > 0 && tau2 > 0);
	double log_lambda = 0.5 * log(s2 / (s2 + tau2)) + tau2 * d * d / (2 * s2 * (s2 + tau2));
	return log_lambda <= 0 ? 1.0 : exp(-log_lambda);
}

double abstats_msprt_halfwidth(double s2, double tau2, double alpha)
{
	assert(s2 > 0 && tau2 > 0 && alpha > 0 && alpha < 1);
	return sqrt(2 * s2 * (s2 + tau2) / tau2 * (log(1 / alpha) + 0.5 * log((s2 + tau2) / s2)));
}

void abstats_msprt(const abstats_arm *c, const abstats_arm *t, double alpha, double tau_factor,
		   abstats_lift *out)
{
	double mc = abstats_mean(c), mt = abstats_mean(t);
	out->estimate = mt - mc;
	out->relative = mc > 0 ? out->estimate / mc : 0;
	out->low = out->high = out->estimate;
	out->p_value = 1;
	out->valid = false;
	if (c->n < 2 || t->n < 2)
		return;
	double vc = arm_var(c), vt = arm_var(t);
	double s2 = vc / c->n + vt / t->n;
	double tau2 = tau_factor * tau_factor * (vc + vt) / 2;
	if (!(s2 > 0) || !(tau2 > 0))
		return;
	double h = abstats_msprt_halfwidth(s2, tau2, alpha);
	out->low = out->estimate - h;
	out->high = out->estimate + h;
	out->p_value = abstats_msprt_p(out->estimate, s2, tau2);
	out->valid = true;
}

/* ---- the incomplete gamma function -----------------------------------------
 * P(a, x) by its power series where x < a + 1 (it converges fast there),
 * Q(a, x) by its continued fraction (modified Lentz) elsewhere; each
 * stops at a relative step below 1e-15 or after 1000 terms. */

static double gamma_p_series(double a, double x)
{
	double term = 1 / a, sum = term;
	for (int n = 1; n < 1000; n++) {
		term *= x / (a + n);
		sum += term;
		if (fabs(term) < fabs(sum) * 1e-15)
			break;
	}
	return sum * exp(-x + a * log(x) - lgamma(a));
}

static double gamma_q_fraction(double a, double x)
{
	const double tiny = 1e-300;
	double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
	for (int i = 1; i < 1000; i++) {
		double an = -i * (i - a);
		b += 2;
		d = an * d + b;
		if (fabs(d) < tiny)
			d = tiny;
		c = b + an / c;
		if (fabs(c) < tiny)
			c = tiny;
		d = 1 / d;
		double step = d * c;
		h *= step;
		if (fabs(step - 1) < 1e-15)
			break;
	}
	return exp(-x + a * log(x) - lgamma(a)) * h;
}

double abstats_gamma_q(double a, double x)
{
	assert(a > 0 && x >= 0);
	if (x == 0)
		return 1;
	if (x < a + 1) {
		double p = gamma_p_series(a, x);
		return p >= 1 ? 0 : 1 - p;
	}
	return gamma_q_fraction(a, x);
}

double abstats_chi2_sf(double x, double df)
{
	return abstats_gamma_q(df / 2, x / 2);
}

double abstats_srm_p(const double *observed, const double *shares, uint32_t k)
{
	double total = 0, share_sum = 0;
	for (uint32_t i = 0; i < k; i++) {
		total += observed[i];
		share_sum += shares[i];
	}
	if (k < 2 || !(total > 0) || !(share_sum > 0))
		return 1;
	double x2 = 0;
	for (uint32_t i = 0; i < k; i++) {
		double e = total * shares[i] / share_sum;
		if (e > 0)
			x2 += (observed[i] - e) * (observed[i] - e) / e;
	}
	return abstats_chi2_sf(x2, k - 1);
}
