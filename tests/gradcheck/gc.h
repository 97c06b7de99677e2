/* Helpers shared by the finite-difference gradient checks (tests/gradcheck).
 *
 * Every check differentiates the scalar L = sum(y * g) for a fixed random
 * upstream gradient g, so the analytic gradient is the op's backward fed
 * with dy = g, and the numeric one is a central difference of L through the
 * op's double-precision forward (test_gradcheck). Step and tolerances:
 * h = 1e-5 gives a truncation error ~h^2 |L'''| ~ 1e-10 and a rounding error
 * ~1e-16 |L| / h ~ 1e-10, so atol 1e-8 / rtol 1e-7 leaves room while still
 * catching, e.g., a batchnorm backward whose eps differs from its forward's
 * (a ~1e-5 relative change). */
#ifndef MLOC_GC_H
#define MLOC_GC_H

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/rng.h"
#include "test_util.h"

#define GC_H 1e-5
#define GC_ATOL 1e-8
#define GC_RTOL 1e-7
#define GC_CHECKS 200 /* coordinates checked per tensor (all, for these sizes) */

/* The gradient checks run thousands of tiny forwards; on shared cores each
 * OpenMP region can stall on a busy sibling thread. They check math, not
 * threading (test_nn_threads does that), so they run on one thread. */
static inline void gc_single_thread(void) {
    omp_set_num_threads(1);
}

static inline double *gc_alloc(int64_t n) {
    double *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    assert_non_null(p);
    return p;
}

/* Uniform in [lo, hi). */
static inline double *gc_uniform(int64_t n, double lo, double hi, uint64_t seed) {
    double *p = gc_alloc(n);
    test_fill_uniform_f64(p, n, lo, hi, seed);
    return p;
}

/* Uniform in [-1, 1] with |v| >= gap: away from the kink of ReLU at 0. */
static inline double *gc_away_from_zero(int64_t n, double gap, uint64_t seed) {
    double *p = gc_uniform(n, 0, 1, seed);
    for (int64_t i = 0; i < n; i++) {
        double v = gap + (1 - gap) * (2 * p[i] >= 1 ? 2 * p[i] - 1 : 1 - 2 * p[i]);
        p[i] = 2 * p[i] >= 1 ? v : -v;
    }
    return p;
}

/* Distinct values with gaps of at least 0.04 between any two (a shuffled
 * ladder with small jitter): no max-pool window has a near-tie, so +-h never
 * changes which element wins. */
static inline double *gc_distinct(int64_t n, uint64_t seed) {
    double *p = gc_alloc(n);
    int64_t *perm = calloc((size_t)n, sizeof *perm);
    assert_non_null(perm);
    mloc_rng r;
    mloc_rng_init(&r, seed, 7);
    mloc_rng_permutation(&r, perm, n);
    for (int64_t i = 0; i < n; i++)
        p[i] = ((double)perm[i] - n / 2.0) * 0.05 + 0.01 * mloc_rng_uniform(&r);
    free(perm);
    return p;
}

static inline double gc_dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static inline float *gc_f32(const double *x, int64_t n) {
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i] = (float)x[i];
    return p;
}

static inline float *gc_f32_alloc(int64_t n) {
    float *p = calloc((size_t)(n > 0 ? n : 1), sizeof *p);
    assert_non_null(p);
    return p;
}

/* The float instantiation against the double one on the same (float-exact)
 * inputs: compare in float with a float-rounding budget. */
static inline int gc_close_to_f64(const char *what, const float *got, const double *want,
                                  int64_t n, double atol, double rtol) {
    float *w = gc_f32(want, n);
    int ok = test_close_f32(what, got, w, n, atol, rtol);
    free(w);
    return ok;
}

/* Round a double array to float values in place (so that float and double
 * kernels see identical inputs). */
static inline void gc_round_f32(double *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = (double)(float)x[i];
}

#endif
