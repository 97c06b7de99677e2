/* torch.optim.Adam and torch.optim.AdamW (torch 1.13, _single_tensor_adam /
 * _single_tensor_adamw, amsgrad off), one entry at a time:
 *
 *     step += 1
 *     Adam:  g = g + wd * p                   (L2 penalty in the gradient)
 *     AdamW: p = p * (1 - lr * wd)            (decoupled decay, before the moments)
 *     m = beta1 * m + (1 - beta1) * g
 *     v = beta2 * v + (1 - beta2) * g * g
 *     p = p - lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 *
 * The bias corrections and the step size are computed in double (torch does
 * them on Python floats) and cast to float for the float32 elementwise
 * arithmetic. */
#include <math.h>

#include "optim/internal.h"

void optim_adam_entry(float *p, float *exp_avg, float *exp_avg_sq, int64_t *step,
                      const float *g, int64_t n, const mloc_optim_config *cfg, double lr,
                      int decoupled, int threads) {
    *step += 1;
    const double t = (double)*step;
    const double bias_correction1 = 1.0 - pow(cfg->beta1, t);
    const double bias_correction2 = 1.0 - pow(cfg->beta2, t);
    const float neg_step_size = (float)(-(lr / bias_correction1));
    const float bc2_sqrt = (float)sqrt(bias_correction2);
    const float b1 = (float)cfg->beta1, one_minus_b1 = (float)(1.0 - cfg->beta1);
    const float b2 = (float)cfg->beta2, one_minus_b2 = (float)(1.0 - cfg->beta2);
    const float eps = (float)cfg->eps;
    const int l2 = !decoupled && cfg->weight_decay != 0;
    const float wd = (float)cfg->weight_decay;
    const int decay = decoupled && cfg->weight_decay != 0;
    const float keep = (float)(1.0 - lr * cfg->weight_decay);
#pragma omp parallel for num_threads(threads) if (n >= OPTIM_PAR_MIN) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i];
        if (l2) gi = gi + wd * pi;
        if (decay) pi = pi * keep;
        float m = exp_avg[i] * b1 + one_minus_b1 * gi;
        float v = exp_avg_sq[i] * b2 + one_minus_b2 * gi * gi;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        float denom = sqrtf(v) / bc2_sqrt + eps;
        p[i] = pi + neg_step_size * (m / denom);
    }
}
