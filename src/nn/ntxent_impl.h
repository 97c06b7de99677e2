/* NT-Xent reference body; see ntxent.c and real.h.
 *
 * z (n2, D), n2 = 2N. Notation:
 *   m_i = max(||z_i||, 1e-12),  u_i = z_i / m_i            (F.normalize)
 *   s_ij = u_i . u_j / T                                    (n2 x n2, symmetric)
 *   pos(i) = (i + N) mod n2                                 (an involution)
 *   lse_i = log sum_{j != i} exp(s_ij)
 *   L = (1/n2) sum_i (lse_i - s_{i,pos(i)})
 * Gradient: G_ij = dL/ds_ij = (p_ij - [j = pos(i)]) / n2 for j != i, with
 * p_ij = exp(s_ij - lse_i), and G_ii = 0. Because s is symmetric,
 *   dL/du_i = (1/T) sum_{j != i} c_ij u_j,   c_ij = G_ij + G_ji
 *           = (p_ij + p_ji - 2 [j = pos(i)]) / n2,
 * and through the normalisation
 *   dz_i = (du_i - u_i (u_i . du_i)) / m_i   if ||z_i|| >= 1e-12,
 *   dz_i = du_i / 1e-12                      otherwise (clamp_min passes no
 *                                            gradient to the norm).
 * s_ij is never stored: it is recomputed from z (O(D)) where needed, so the
 * work is O(n2^2 D) and the scratch O(n2 D). Every row is computed by one
 * thread with sequential double sums, and the loss is summed in row order
 * after the parallel part, so results do not depend on the thread count. */
#include "real.h"

#ifndef MLOC_NTXENT_EPS
#define MLOC_NTXENT_EPS 1e-12 /* F.normalize's default eps */
#endif

/* s_ij from raw rows and their clamped norms (double throughout). */
static double FN(ntxent_sim)(const real *z, const double *m, int i, int j, int D,
                             double inv_t) {
    const real *zi = z + (int64_t)i * D, *zj = z + (int64_t)j * D;
    acc dot = 0;
    for (int d = 0; d < D; d++) dot += (acc)zi[d] * zj[d];
    return dot / (m[i] * m[j]) * inv_t;
}

double FN(mloc_ntxent_ws)(real *dz, double *work, const real *z, int n2, int D,
                          real temperature) {
    assert(n2 >= 2 && n2 % 2 == 0 && D > 0 && temperature > 0);
    const int N = n2 / 2;
    const double inv_t = 1.0 / (acc)temperature;
    double *m = work, *lse = work + n2, *du = work + 2 * (int64_t)n2;

    /* Pass 1: clamped row norms m_i. */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n2; i++) {
        acc ss = 0;
        for (int d = 0; d < D; d++) ss += (acc)z[(int64_t)i * D + d] * z[(int64_t)i * D + d];
        acc norm = sqrt(ss);
        m[i] = norm < MLOC_NTXENT_EPS ? MLOC_NTXENT_EPS : norm;
    }

    /* Pass 2: lse_i over j != i, one streaming pass with a running maximum. */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n2; i++) {
        acc mx = -INFINITY, sum = 0;
        for (int j = 0; j < n2; j++) {
            if (j == i) continue;
            acc sij = FN(ntxent_sim)(z, m, i, j, D, inv_t);
            if (sij > mx) {
                sum = sum * exp(mx - sij) + 1;
                mx = sij;
            } else {
                sum += exp(sij - mx);
            }
        }
        lse[i] = mx + log(sum);
    }

    acc loss = 0;
    for (int i = 0; i < n2; i++) loss += lse[i] - FN(ntxent_sim)(z, m, i, (i + N) % n2, D, inv_t);
    loss /= n2;
    if (!dz) return loss;

    /* Pass 3: du_i = (1/T) sum_j c_ij u_j, then through the normalisation. */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n2; i++) {
        double *g = du + (int64_t)i * D;
        const real *zi = z + (int64_t)i * D;
        for (int d = 0; d < D; d++) g[d] = 0;
        const int pos = (i + N) % n2;
        for (int j = 0; j < n2; j++) {
            if (j == i) continue;
            acc sij = FN(ntxent_sim)(z, m, i, j, D, inv_t);
            acc c = (exp(sij - lse[i]) + exp(sij - lse[j]) - (j == pos ? 2 : 0)) / n2;
            acc k = c * inv_t / m[j]; /* c_ij / T times u_j = z_j / m_j */
            const real *zj = z + (int64_t)j * D;
            for (int d = 0; d < D; d++) g[d] += k * zj[d];
        }
        acc ss = 0, udu = 0;
        for (int d = 0; d < D; d++) {
            ss += (acc)zi[d] * zi[d];
            udu += zi[d] / m[i] * g[d];
        }
        real *dzi = dz + (int64_t)i * D;
        if (sqrt(ss) < MLOC_NTXENT_EPS) {
            for (int d = 0; d < D; d++) dzi[d] = (real)(g[d] / MLOC_NTXENT_EPS);
        } else {
            for (int d = 0; d < D; d++) dzi[d] = (real)((g[d] - zi[d] / m[i] * udu) / m[i]);
        }
    }
    return loss;
}
