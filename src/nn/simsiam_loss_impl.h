/* simsiam_loss reference body; see simsiam_loss.c and real.h.
 *
 * p, z (n2, D), n2 = 2N, view-major (rows 0..N-1 the first views of the N
 * images, N..2N-1 the second). With pos(i) = (i + N) mod n2,
 *   a_i = max(||p_i||, eps), b_j = max(||z_j||, eps), eps = 1e-8,
 *   c_i = p_i . z_pos(i) / (a_i b_pos(i))          (torch 1.13 cosine_similarity:
 *                                                   each row over its clamped norm)
 *   L = -(1/n2) sum_i c_i  = D(p1, z2)/2 + D(p2, z1)/2,  D(p, z) = -mean cos(p, z).
 * z is detached, so only dp is formed (=):
 *   ||p_i|| >= eps:  dp_i = -(1/n2) (v_i - u_i (u_i . v_i)) / a_i,
 *   ||p_i|| <  eps:  dp_i = -(1/n2) v_i / eps,
 * with u_i = p_i / a_i and v_i = z_pos(i) / b_pos(i).
 * One thread per row, sequential double sums; the loss is summed in row
 * order after the parallel part, so results do not depend on the thread
 * count. `work` holds n2 doubles (the per-row cosines). */
#include "real.h"

#ifndef MLOC_SIMSIAM_EPS
#define MLOC_SIMSIAM_EPS 1e-8 /* torch.nn.CosineSimilarity's default eps */
#endif

double FN(mloc_simsiam_loss_ws)(real *dp, double *work, const real *p, const real *z, int n2,
                                int D) {
    assert(n2 >= 2 && n2 % 2 == 0 && D > 0);
    const int N = n2 / 2;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n2; i++) {
        const real *pi = p + (int64_t)i * D, *zj = z + (int64_t)((i + N) % n2) * D;
        acc pp = 0, zz = 0, pz = 0;
        for (int d = 0; d < D; d++) {
            pp += (acc)pi[d] * pi[d];
            zz += (acc)zj[d] * zj[d];
            pz += (acc)pi[d] * zj[d];
        }
        const acc np = sqrt(pp), a = np < MLOC_SIMSIAM_EPS ? MLOC_SIMSIAM_EPS : np;
        const acc nz = sqrt(zz), b = nz < MLOC_SIMSIAM_EPS ? MLOC_SIMSIAM_EPS : nz;
        const acc c = pz / (a * b);
        work[i] = c;
        if (!dp) continue;
        real *g = dp + (int64_t)i * D;
        const acc k = -1.0 / n2;
        if (np < MLOC_SIMSIAM_EPS) {
            for (int d = 0; d < D; d++) g[d] = (real)(k * zj[d] / b / MLOC_SIMSIAM_EPS);
        } else {
            /* u . v = c;  dp = k (v - u c) / a */
            for (int d = 0; d < D; d++) g[d] = (real)(k * (zj[d] / b - pi[d] / a * c) / a);
        }
    }
    acc loss = 0;
    for (int i = 0; i < n2; i++) loss -= work[i];
    return loss / n2;
}
