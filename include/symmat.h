/*
 * symmat: dense symmetric float matrices on several threads: the inverse
 * of a positive-definite one in place (EASE's P = (G + lambda I)^-1), and
 * filling one triangle from the other.
 *
 * Matrices are n x n, row-major, n * n floats owned by the caller. The
 * inverse is a blocked Cholesky factorisation, then the inverse of the
 * factor, then its product with its transpose, each split into tiles of a
 * fixed size that our own threads take in turn, calling single-threaded
 * OpenBLAS on each. The tiles, and the BLAS call that computes each one,
 * do not depend on the number of threads or on which thread takes what, so
 * the result is the same bits on 1 thread or 64.
 *
 * Why not OpenBLAS's own threads: they wait for each other by spinning at
 * every step of spotrf/spotri, and on a machine whose cores are busy a
 * descheduled one stalls the rest (2 to 6 times slower than one thread
 * under load); and their split depends on the thread count, so the bits
 * would too. Our threads block (mutex and condition variable) when they
 * wait, and mostly they do not: the work is ordered so that a thread takes
 * the next tile whose inputs are ready, factorisation steps overlapping.
 */
#ifndef SHOPKEEPER_SYMMAT_H
#define SHOPKEEPER_SYMMAT_H

#include <stdint.h>

/* The tile size symmat_invert uses, fixed so the bits do not depend on
 * the thread count. At n = 8000 on 2 threads 128 and 512 were slower, 192
 * and 384 within the noise (bench/training-speed.md; bench/inverse_bench.c
 * times others). */
#define SYMMAT_BLOCK 256

/* Inverts the symmetric positive-definite n x n matrix `a` in place.
 *   a        row-major, n * n floats, caller-owned. Only the upper triangle
 *            (a[i * n + j], j >= i) is read; on success the whole matrix
 *            holds the inverse, exactly symmetric.
 *   threads  how many threads to compute on, the caller's among them (0
 *            counts as 1, more than UTIL_MAX_THREADS as that many). The
 *            result does not depend on it.
 * Returns 0, or k > 0 when the leading k x k minor is not positive definite
 * (LAPACK spotrf's info); `a` then holds partial results, to be discarded.
 * OpenBLAS is set to one thread of its own for the duration and restored
 * after, so no other thread of the process should be calling OpenBLAS
 * meanwhile expecting its threads. Memory: n * SYMMAT_BLOCK floats per
 * thread besides `a`; allocation failure aborts (util's x* allocators). */
int symmat_invert(float *a, uint32_t n, uint32_t threads);

/* symmat_invert with tiles of nb x nb (nb >= 1): for tests, which exercise
 * many tiles on small matrices, and for tuning. The result depends on nb
 * (not on threads). */
int symmat_invert_blocked(float *a, uint32_t n, uint32_t threads, uint32_t nb);

/* Copies the upper triangle of the row-major n x n matrix `a` into its
 * lower one (a[j * n + i] = a[i * n + j] for j > i), on `threads` threads
 * (0 counts as 1). The diagonal and upper triangle are left as they are. */
void symmat_mirror_upper(float *a, uint32_t n, uint32_t threads);

#endif
