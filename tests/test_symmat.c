/*
 * test_symmat: the blocked inverse against LAPACK's spotrf/spotri and
 * against A P = I, on sizes below, at and across the tile size; the same
 * bits on 1 and 3 threads; failure on matrices that are not positive
 * definite; mirroring.
 */
#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "symmat.h"
#include "util.h"

extern void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info,
		    size_t uplo_len);
extern void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info,
		    size_t uplo_len);

static uint64_t rng_state;

static float uniform(void) /* in [-1, 1) */
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)((rng_state >> 40) / (double)(1 << 24) * 2.0 - 1.0);
}

/* A random symmetric n x n matrix, positive definite by diagonal dominance
 * (its diagonal 1 + the sum of its row's magnitudes); only the upper
 * triangle is filled, the lower is NaN, which the inverse must not read. */
static float *random_spd(uint32_t n, uint64_t seed)
{
	rng_state = seed;
	float *a = xmallocarray((size_t)n * n, sizeof(float));
	double *rowsum = xcalloc(n, sizeof(double));
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = i + 1; j < n; j++) {
			float v = uniform();
			a[(size_t)i * n + j] = v;
			a[(size_t)j * n + i] = NAN;
			rowsum[i] += fabsf(v);
			rowsum[j] += fabsf(v);
		}
	for (uint32_t i = 0; i < n; i++)
		a[(size_t)i * n + i] = (float)(1.0 + rowsum[i]);
	free(rowsum);
	return a;
}

/* LAPACK's inverse of the upper triangle of a, full. 0 or its info. */
static int reference_inverse(const float *a, uint32_t n, float *out)
{
	memcpy(out, a, (size_t)n * n * sizeof(float));
	int nn = (int)n, info = 0;
	spotrf_("L", &nn, out, &nn, &info, 1); /* row-major upper = column-major lower */
	if (info == 0)
		spotri_("L", &nn, out, &nn, &info, 1);
	if (info == 0)
		symmat_mirror_upper(out, n, 1);
	return info;
}

/* max |x - y| / max |y| */
static double rel_diff(const float *x, const float *y, size_t count)
{
	double d = 0, m = 0;
	for (size_t k = 0; k < count; k++) {
		d = fmax(d, fabs((double)x[k] - y[k]));
		m = fmax(m, fabs((double)y[k]));
	}
	return d / m;
}

static bool exactly_symmetric(const float *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = i + 1; j < n; j++)
			if (memcmp(&p[(size_t)i * n + j], &p[(size_t)j * n + i], sizeof(float)) != 0)
				return false;
	return true;
}

/* max |A P - I|, A from its upper triangle. */
static double identity_residual(const float *a, const float *p, uint32_t n)
{
	float *full = xmallocarray((size_t)n * n, sizeof(float));
	memcpy(full, a, (size_t)n * n * sizeof(float));
	symmat_mirror_upper(full, n, 1);
	float *prod = xmallocarray((size_t)n * n, sizeof(float));
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, full,
		    (int)n, p, (int)n, 0.0f, prod, (int)n);
	double r = 0;
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = 0; j < n; j++)
			r = fmax(r, fabs(prod[(size_t)i * n + j] - (i == j ? 1.0 : 0.0)));
	free(prod);
	free(full);
	return r;
}

/* Inverts a random matrix of size n with tiles of nb on `threads` threads
 * and checks it against LAPACK and against A P = I. */
static void check_inverse(uint32_t n, uint32_t nb, uint32_t threads)
{
	float *a = random_spd(n, 1000 + n);
	float *p = xmallocarray((size_t)n * n, sizeof(float));
	float *ref = xmallocarray((size_t)n * n, sizeof(float));
	memcpy(p, a, (size_t)n * n * sizeof(float));
	CHECK_INT(symmat_invert_blocked(p, n, threads, nb), 0);
	CHECK_INT(reference_inverse(a, n, ref), 0);
	double d = rel_diff(p, ref, (size_t)n * n), r = identity_residual(a, p, n);
	if (!(d < 1e-5) || !(r < 1e-5))
		fprintf(stderr, "n %u nb %u threads %u: vs LAPACK %.3g, |AP - I| %.3g\n", n, nb,
			threads, d, r);
	CHECK(d < 1e-5);
	CHECK(r < 1e-5);
	CHECK(exactly_symmetric(p, n));
	free(ref);
	free(p);
	free(a);
}

TEST(inverse_default_tiles)
{
	/* Below the tile, one element, exactly one tile, a tile and a bit,
	 * several with a ragged last one. */
	static const uint32_t sizes[] = { 1, 7, SYMMAT_BLOCK, 300, 777 };
	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++)
		check_inverse(sizes[s], SYMMAT_BLOCK, 2);
}

TEST(inverse_small_tiles)
{
	/* Many tiles on small matrices: every kind of task, many times. */
	check_inverse(100, 16, 3);
	check_inverse(37, 5, 2);
	check_inverse(64, 16, 1);
	check_inverse(9, 1, 4);
}

/* The inverse of the same matrix on 1 and on 3 threads, byte for byte. */
static void check_same_bits(uint32_t n, uint32_t nb)
{
	float *a = random_spd(n, 7);
	float *one = xmallocarray((size_t)n * n, sizeof(float));
	float *three = xmallocarray((size_t)n * n, sizeof(float));
	memcpy(one, a, (size_t)n * n * sizeof(float));
	CHECK_INT(symmat_invert_blocked(one, n, 1, nb), 0);
	for (int rep = 0; rep < 3; rep++) {
		memcpy(three, a, (size_t)n * n * sizeof(float));
		CHECK_INT(symmat_invert_blocked(three, n, 3, nb), 0);
		CHECK(memcmp(one, three, (size_t)n * n * sizeof(float)) == 0);
	}
	free(three);
	free(one);
	free(a);
}

TEST(inverse_same_bits_on_any_threads)
{
	check_same_bits(777, SYMMAT_BLOCK);
	check_same_bits(300, 24);
	check_same_bits(130, 8);
}

/* A matrix whose leading (bad + 1) minor is not positive definite: the
 * same info as spotrf, on any threads, and no crash. */
static void check_not_positive_definite(uint32_t n, uint32_t bad, uint32_t nb, uint32_t threads)
{
	float *a = random_spd(n, 3);
	a[(size_t)bad * n + bad] = -1.0f;
	float *p = xmallocarray((size_t)n * n, sizeof(float));
	float *ref = xmallocarray((size_t)n * n, sizeof(float));
	memcpy(p, a, (size_t)n * n * sizeof(float));
	int info = symmat_invert_blocked(p, n, threads, nb);
	CHECK_INT(info, reference_inverse(a, n, ref));
	CHECK_INT(info, bad + 1);
	free(ref);
	free(p);
	free(a);
}

TEST(inverse_not_positive_definite)
{
	check_not_positive_definite(50, 0, 16, 1);
	check_not_positive_definite(50, 40, 16, 3);
	check_not_positive_definite(300, 299, SYMMAT_BLOCK, 2);
	check_not_positive_definite(300, 100, 32, 8);
}

TEST(inverse_empty)
{
	CHECK_INT(symmat_invert(NULL, 0, 2), 0);
}

TEST(mirror_upper)
{
	const uint32_t n = 517;
	float *a = random_spd(n, 11), *copy = xmallocarray((size_t)n * n, sizeof(float));
	memcpy(copy, a, (size_t)n * n * sizeof(float));
	symmat_mirror_upper(a, n, 3);
	bool ok = true;
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = i; j < n; j++)
			ok &= a[(size_t)i * n + j] == copy[(size_t)i * n + j] &&
			      a[(size_t)j * n + i] == copy[(size_t)i * n + j];
	CHECK(ok);
	free(copy);
	free(a);
}

int main(void)
{
	RUN(inverse_default_tiles);
	RUN(inverse_small_tiles);
	RUN(inverse_same_bits_on_any_threads);
	RUN(inverse_not_positive_definite);
	RUN(inverse_empty);
	RUN(mirror_upper);
	return harness_done();
}
