/* Shared test helpers. Every test is a cmocka executable run by ctest;
 * a mismatch fails the process (cmocka returns the number of failures). */
#ifndef MLOC_TEST_UTIL_H
#define MLOC_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "memloc/context.h"

/* A context with `threads` threads and seed 1234 (fails the test if it
 * cannot be made). */
mloc_ctx *test_ctx(int threads);

/* Compare got to want elementwise: |got-want| <= atol + rtol*|want|.
 * Prints "<what>: max abs err E at i, budget used U%" and returns 1 when
 * every element is within its budget (NaN never is); use as
 *     assert_true(test_close_f32("conv dx", got, want, n, 1e-5, 1e-4)); */
int test_close_f32(const char *what, const float *got, const float *want, int64_t n,
                   double atol, double rtol);
int test_close_f64(const char *what, const double *got, const double *want, int64_t n,
                   double atol, double rtol);

/* Path of a fixture file (tests/fixtures/<name>); static buffer. */
const char *test_fixture(const char *name);
/* A fresh empty temporary directory under the build tree; static buffer. */
const char *test_tmpdir(const char *tag);

/* Fill with uniform values in [lo, hi) from a deterministic stream. */
void test_fill_uniform_f32(float *x, int64_t n, float lo, float hi, uint64_t seed);
void test_fill_uniform_f64(double *x, int64_t n, double lo, double hi, uint64_t seed);

/* Central finite-difference gradient check in double precision.
 * f(params, user) returns a scalar loss; grad holds the analytic gradient
 * of that loss with respect to x (n values). Each of up to `max_checks`
 * coordinates (spread over x) is perturbed by +-h; the check passes when
 * |analytic - numeric| <= atol + rtol*|numeric| everywhere. */
int test_gradcheck(const char *what, double (*f)(void *user), double *x, const double *grad,
                   int64_t n, void *user, double h, double atol, double rtol, int max_checks);

/* Load every tensor of m's table from fixture tensors named prefix + name. */
#include "memloc/io.h"
#include "memloc/model.h"
void test_load_prefixed(mloc_ctx *ctx, mloc_model *m, const mloc_st_file *f, const char *prefix);

/* The oneDNN backend against the reference backend for a model config on a
 * batch of N random images: two training forward/backward passes (NT-Xent on
 * the head output, gradients accumulating, running stats moving), every
 * parameter gradient, the running statistics, the head output, every tap of
 * an eval forward (checked non-negative, as marked) and the encoder feature,
 * with budgets relative to each tensor's scale, widened to what a 1e-6
 * relative change of the input moves the reference's gradients, plus
 * entry_rtol of each gradient entry (1e-3; deeper nets whose ReLU masks
 * flip under rounding need more). Non-trivial BN affine parameters. Fails
 * the test on any mismatch, or if rounding alone moves a gradient by more
 * than 20% of its scale (an ill-conditioned comparison). */
void test_compare_backends(const mloc_model_config *cfg, int N, int threads, double entry_rtol);

#endif
