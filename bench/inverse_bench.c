/*
 * inverse_bench: times EASE's inverse, LAPACK's spotrf + spotri on one
 * OpenBLAS thread (what train used before symmat) against symmat_invert on
 * our own threads, on one random positive-definite matrix.
 *
 *   shopkeeper-inverse-bench N [--nb NB] [--threads T[,T...]] [--no-lapack]
 *
 * Prints, per run: seconds, GFLOP/s counting n^3 flops (Cholesky, triangular
 * inverse and product, n^3 / 3 each), a checksum of the result's bytes (the
 * same for every thread count, or the inverse is not deterministic), and
 * its largest difference from LAPACK's relative to LAPACK's largest entry.
 * Defaults: NB SYMMAT_BLOCK, threads 1,2. Memory: 3 n^2 floats.
 */
#include <cblas.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symmat.h"
#include "util.h"

extern void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info,
		    size_t uplo_len);
extern void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info,
		    size_t uplo_len);

/* Upper triangle in [-0.5, 0.5), diagonal n / 2 + 1: symmetric and
 * diagonally dominant, so positive definite and well conditioned. */
static void fill(float *a, uint32_t n)
{
	uint64_t s = 42;
	for (uint32_t i = 0; i < n; i++) {
		a[(size_t)i * n + i] = (float)n / 2 + 1;
		for (uint32_t j = i + 1; j < n; j++) {
			s = s * 6364136223846793005ULL + 1442695040888963407ULL;
			a[(size_t)i * n + j] = (float)((s >> 40) / 16777216.0 - 0.5);
		}
	}
}

static uint64_t checksum(const float *a, size_t count)
{
	const unsigned char *b = (const unsigned char *)a;
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (size_t k = 0; k < count * sizeof(float); k++)
		h = (h ^ b[k]) * 1099511628211ULL;
	return h;
}

static void report(const char *what, uint32_t n, double secs, const float *p, const float *ref)
{
	size_t count = (size_t)n * n;
	printf("%-22s %8.2f s %7.1f GFLOP/s  checksum %016" PRIx64, what, secs,
	       (double)n * n * n / secs / 1e9, checksum(p, count));
	if (ref) {
		double d = 0, m = 0;
		for (size_t k = 0; k < count; k++) {
			d = fmax(d, fabs((double)p[k] - ref[k]));
			m = fmax(m, fabs((double)ref[k]));
		}
		printf("  vs LAPACK %.2g", d / m);
	}
	printf("\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc < 2 || atol(argv[1]) < 1) {
		fprintf(stderr, "usage: %s N [--nb NB] [--threads T[,T...]] [--no-lapack]\n",
			argv[0]);
		return 2;
	}
	uint32_t n = (uint32_t)atol(argv[1]), nb = SYMMAT_BLOCK;
	const char *threads = "1,2";
	int lapack = 1;
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--nb") == 0 && i + 1 < argc)
			nb = (uint32_t)atol(argv[++i]);
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			threads = argv[++i];
		else if (strcmp(argv[i], "--no-lapack") == 0)
			lapack = 0;
		else {
			fprintf(stderr, "%s: unknown argument %s\n", argv[0], argv[i]);
			return 2;
		}
	}
	if (nb < 1) {
		fprintf(stderr, "%s: --nb must be at least 1\n", argv[0]);
		return 2;
	}
	size_t count = (size_t)n * n;
	float *a = xmallocarray(count, sizeof(float));
	float *p = xmallocarray(count, sizeof(float));
	float *ref = NULL;
	fill(a, n);
	printf("n %u, nb %u, %s\n", n, nb, openblas_get_corename());

	if (lapack) {
		ref = xmallocarray(count, sizeof(float));
		memcpy(ref, a, count * sizeof(float));
		int nn = (int)n, info = 0, saved = openblas_get_num_threads();
		openblas_set_num_threads(1);
		double t0 = util_monotonic();
		spotrf_("L", &nn, ref, &nn, &info, 1);
		if (info == 0)
			spotri_("L", &nn, ref, &nn, &info, 1);
		double t1 = util_monotonic();
		openblas_set_num_threads(saved);
		if (info != 0) {
			fprintf(stderr, "spotrf/spotri: info %d\n", info);
			return 1;
		}
		symmat_mirror_upper(ref, n, 1);
		report("spotrf+spotri, 1 thr", n, t1 - t0, ref, NULL);
	}
	for (const char *t = threads; *t;) {
		char *end;
		uint32_t th = (uint32_t)strtoul(t, &end, 10);
		if (end == t)
			break;
		memcpy(p, a, count * sizeof(float));
		double t0 = util_monotonic();
		int info = symmat_invert_blocked(p, n, th, nb);
		double t1 = util_monotonic();
		if (info != 0) {
			fprintf(stderr, "symmat_invert: info %d\n", info);
			return 1;
		}
		char what[32];
		snprintf(what, sizeof(what), "symmat, %u thr", th);
		report(what, n, t1 - t0, p, ref);
		t = *end == ',' ? end + 1 : end;
	}
	free(ref);
	free(p);
	free(a);
	return 0;
}
