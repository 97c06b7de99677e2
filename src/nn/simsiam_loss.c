/* The SimSiam loss (Chen & He 2021, "Exploring Simple Siamese Representation
 * Learning", Algorithm 1): the symmetrised negative cosine similarity between
 * each view's prediction and the other view's projection, which is a
 * constant (stop-gradient). Reference code: facebookresearch/simsiam
 * main_simsiam.py (nn.CosineSimilarity(dim=1), eps 1e-8) and solo-learn
 * solo/losses/simsiam.py (F.cosine_similarity(p, z.detach(), dim=-1)). */
#include <assert.h>
#include <math.h>
#include <stdlib.h>

#include "memloc/nn.h"

#define MLOC_REAL_F32
#include "simsiam_loss_impl.h"
#define MLOC_REAL_F64
#include "simsiam_loss_impl.h"

double mloc_simsiam_loss(float *dp, const float *p, const float *z, int n2, int D) {
    double *work = malloc((size_t)n2 * sizeof *work);
    if (!work) return NAN;
    double loss = mloc_simsiam_loss_ws(dp, work, p, z, n2, D);
    free(work);
    return loss;
}

double mloc_simsiam_loss_f64(double *dp, const double *p, const double *z, int n2, int D) {
    double *work = malloc((size_t)n2 * sizeof *work);
    if (!work) return NAN;
    double loss = mloc_simsiam_loss_ws_f64(dp, work, p, z, n2, D);
    free(work);
    return loss;
}
