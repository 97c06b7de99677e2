/* NT-Xent, the SimCLR contrastive loss (Chen et al. 2020, eq. 1), as
 * tools/resnet9.py's nt_xent: F.normalize (eps 1e-12), cosine similarities
 * over the temperature, diagonal excluded, cross-entropy with mean reduction
 * against the other view of the same image. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>

#include "memloc/nn.h"

/* Row norms (n2), row log-sum-exps (n2), gradient w.r.t. u (n2*D). */
int64_t mloc_ntxent_work_len(int n2, int D) {
    return (int64_t)n2 * (D + 2);
}

#define MLOC_REAL_F32
#include "ntxent_impl.h"
#define MLOC_REAL_F64
#include "ntxent_impl.h"

double mloc_ntxent(float *dz, const float *z, int n2, int D, float temperature) {
    double *work = malloc((size_t)mloc_ntxent_work_len(n2, D) * sizeof *work);
    if (!work) return NAN;
    double loss = mloc_ntxent_ws(dz, work, z, n2, D, temperature);
    free(work);
    return loss;
}

double mloc_ntxent_f64(double *dz, const double *z, int n2, int D, double temperature) {
    double *work = malloc((size_t)mloc_ntxent_work_len(n2, D) * sizeof *work);
    if (!work) return NAN;
    double loss = mloc_ntxent_ws_f64(dz, work, z, n2, D, temperature);
    free(work);
    return loss;
}
