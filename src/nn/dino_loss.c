/* The DINO loss and centre (Caron et al. 2021, "Emerging Properties in
 * Self-Supervised Vision Transformers", Algorithm 1; reference code
 * facebookresearch/dino main_dino.py DINOLoss): cross-entropy between the
 * teacher's centred, sharpened softmax of each global crop and the student's
 * log-softmax of every other crop, and the centre's moving average of the
 * teacher's outputs. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>

#include "memloc/nn.h"

int64_t mloc_dino_loss_work_len(int B, int K) {
    return 2 * (int64_t)B * K + B;
}

#define MLOC_REAL_F32
#include "dino_loss_impl.h"
#define MLOC_REAL_F64
#include "dino_loss_impl.h"

double mloc_dino_loss(float *ds, const float *s, const float *t, const float *center, int B, int V,
                      int K, float student_temp, float teacher_temp) {
    double *work = malloc((size_t)mloc_dino_loss_work_len(B, K) * sizeof *work);
    if (!work) return NAN;
    double loss = mloc_dino_loss_ws(ds, work, s, t, center, B, V, K, student_temp, teacher_temp);
    free(work);
    return loss;
}

double mloc_dino_loss_f64(double *ds, const double *s, const double *t, const double *center, int B,
                          int V, int K, double student_temp, double teacher_temp) {
    double *work = malloc((size_t)mloc_dino_loss_work_len(B, K) * sizeof *work);
    if (!work) return NAN;
    double loss = mloc_dino_loss_ws_f64(ds, work, s, t, center, B, V, K, student_temp, teacher_temp);
    free(work);
    return loss;
}
