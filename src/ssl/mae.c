/* Masked autoencoders (He et al. 2022, "Masked Autoencoders Are Scalable
 * Vision Learners"; facebookresearch/mae models_mae.py), ViT only
 * (include/memloc/ssl.h):
 *
 *     order = a random permutation of the L patches        per sample (MAE's random_masking)
 *     latent = encoder(patches order[0..keep) + their pos, [cls + pos[0]])      (1 + keep, D)
 *     pred = decoder(latent, mask tokens at order[keep..L))                     (1 + L, P P C)
 *     loss = mean over the masked patches of mean_pixels (pred - norm(patchify(x)))^2
 *
 * The graph work (gather, unshuffle, encoder, decoder) is the MAE head's
 * training graph (src/models/vit.c), a model sharing the store of the model
 * the metrics read; here are the masks, the loss and its gradient.
 *
 * Deviations from models_mae.py: the masks come from memloc's Philox
 * streams keyed by the sample (a Fisher-Yates permutation, not an argsort of
 * torch.rand noise: the same distribution, different draws); the position
 * embeddings are learned (vit.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/rng.h"
#include "memloc/ssl.h"

struct mloc_mae {
    mloc_model *m;        /* every patch: what the metrics read */
    mloc_model *train;    /* over m's store, keep patches visible */
    mloc_mae_config cfg;
    int B, L, keep, P;
    int32_t *order;       /* (B, L) */
    float *pred, *dpred;  /* (B, 1 + L, P P C) */
};

mloc_mae_config mloc_mae_config_default(void) {
    mloc_mae_config c = {.mask_ratio = 0.75, .norm_pix_loss = 1, .seed = 0};
    return c;
}

void mloc_mae_free(mloc_mae *a) {
    if (!a) return;
    mloc_model_free(a->train);
    mloc_free(a->order);
    mloc_free(a->pred);
    mloc_free(a->dpred);
    free(a);
}

mloc_model *mloc_mae_train_model(const mloc_mae *a) { return a->train; }

int mloc_mae_keep(const mloc_mae *a) { return a->keep; }

mloc_status mloc_mae_create(mloc_ctx *ctx, mloc_mae **out, mloc_model *m, const mloc_mae_config *cfg, int B) {
    *out = NULL;
    const mloc_model_config *mc = &m->cfg;
    if (mc->head != MLOC_HEAD_MAE || mc->mask_keep != 0)
        return mloc_error(ctx, MLOC_ERR_USAGE, "mae: the model (%s) needs the MAE head and every patch visible "
                          "(head %s)", m->arch, mloc_head_name(mc->head));
    if (!(cfg->mask_ratio > 0 && cfg->mask_ratio < 1))
        return mloc_error(ctx, MLOC_ERR_USAGE, "mae: mask ratio %g, expected in (0, 1)", cfg->mask_ratio);
    if (B < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "mae: batch of %d images", B);
    const int P = mc->patch_size, L = (mc->image_h / P) * (mc->image_w / P);
    const int keep = (int)(L * (1.0 - cfg->mask_ratio)); /* MAE: int(L * (1 - mask_ratio)) */
    if (keep < 1 || keep >= L)
        return mloc_error(ctx, MLOC_ERR_USAGE, "mae: mask ratio %g leaves %d of %d patches visible, expected 1..%d",
                          cfg->mask_ratio, keep, L, L - 1);
    mloc_mae *a = calloc(1, sizeof *a);
    if (!a) return mloc_error(ctx, MLOC_ERR_NOMEM, "mae: out of memory");
    a->m = m;
    a->cfg = *cfg;
    a->B = B;
    a->L = L;
    a->keep = keep;
    a->P = P;
    mloc_model_config tc = *mc;
    tc.mask_keep = keep;
    mloc_status st = mloc_model_create_shared(ctx, &a->train, &tc, m);
    if (st == MLOC_OK) st = mloc_model_plan(ctx, a->train, B);
    if (st != MLOC_OK) goto fail;
    const size_t per = (size_t)mloc_model_value_numel(a->train, a->train->output);
    a->order = mloc_alloc(ctx, (size_t)B * L * sizeof(int32_t));
    a->pred = mloc_alloc(ctx, (size_t)B * per * sizeof(float));
    a->dpred = mloc_alloc(ctx, (size_t)B * per * sizeof(float));
    if (!a->order || !a->pred || !a->dpred) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "mae: out of memory for a batch of %d images", B);
        goto fail;
    }
    *out = a;
    return MLOC_OK;
fail:
    mloc_mae_free(a);
    return st;
}

void mloc_mae_draw_orders(int32_t *order, int L, int n, const int64_t *samples, int epoch, uint64_t seed) {
    for (int i = 0; i < n; i++) {
        mloc_rng r;
        mloc_rng_init_tag(&r, seed, "mae-mask", (uint64_t)epoch, (uint64_t)samples[i], 0);
        /* Fisher-Yates, the draws of mloc_rng_permutation, on the int32 row */
        int32_t *o = order + (int64_t)i * L;
        for (int j = 0; j < L; j++) o[j] = j;
        for (int j = L - 1; j > 0; j--) {
            const int k = (int)mloc_rng_int(&r, 0, j);
            const int32_t t = o[j];
            o[j] = o[k];
            o[k] = t;
        }
    }
}

double mloc_mae_loss(float *dpred, const float *pred, const float *x, const int32_t *order, int N, int C,
                     int H, int W, int P, int keep, int norm_pix) {
    const int Wp = W / P, L = (H / P) * Wp, K = P * P * C;
    const double count = (double)N * (L - keep);
    if (dpred) memset(dpred, 0, (size_t)N * (1 + L) * K * sizeof(float));
    double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int n = 0; n < N; n++) {
        double t[3 * 32 * 32]; /* one patch's target (P P C <= 3072: P <= 32 for 3 channels) */
        double sum = 0;
        for (int j = keep; j < L; j++) {
            const int l = order[(int64_t)n * L + j], y0 = (l / Wp) * P, x0 = (l % Wp) * P;
            /* patchify: pixel (p, q, c) of patch l */
            double mean = 0, var = 0;
            for (int p = 0; p < P; p++)
                for (int q = 0; q < P; q++)
                    for (int c = 0; c < C; c++) {
                        double v = x[(((int64_t)n * C + c) * H + y0 + p) * W + x0 + q];
                        t[(p * P + q) * C + c] = v;
                        mean += v;
                    }
            mean /= K;
            if (norm_pix) {
                for (int k = 0; k < K; k++) var += (t[k] - mean) * (t[k] - mean);
                var /= K > 1 ? K - 1 : 1; /* torch.var: unbiased */
                const double inv = 1.0 / sqrt(var + 1e-6);
                for (int k = 0; k < K; k++) t[k] = (t[k] - mean) * inv;
            }
            const float *pr = pred + ((int64_t)n * (1 + L) + 1 + l) * K;
            float *dr = dpred ? dpred + ((int64_t)n * (1 + L) + 1 + l) * K : NULL;
            double se = 0;
            for (int k = 0; k < K; k++) {
                const double d = pr[k] - t[k];
                se += d * d;
                if (dr) dr[k] = (float)(2 * d / (K * count));
            }
            sum += se / K;
        }
        total += sum;
    }
    return total / count;
}

mloc_status mloc_mae_step_orders(mloc_ctx *ctx, mloc_mae *a, const float *x, const int32_t *order, int B,
                                 double *loss) {
    const mloc_model_config *mc = &a->m->cfg;
    if (B != a->B) return mloc_error(ctx, MLOC_ERR_USAGE, "mae step: %d images, planned for %d", B, a->B);
    if (mc->patch_size * mc->patch_size * mc->in_channels > 3 * 32 * 32)
        return mloc_error(ctx, MLOC_ERR_UNSUPPORTED, "mae step: patches of %d values, at most 3072",
                          mc->patch_size * mc->patch_size * mc->in_channels);
    mloc_model *t = a->train;
    t->patch_order = order;
    mloc_status st = mloc_model_forward(ctx, t, x, B, MLOC_MODE_TRAIN, -1);
    if (st == MLOC_OK) st = mloc_model_read(ctx, t, t->output, a->pred);
    if (st != MLOC_OK) return st;
    *loss = mloc_mae_loss(a->dpred, a->pred, x, order, B, mc->in_channels, mc->image_h, mc->image_w, a->P,
                          a->keep, a->cfg.norm_pix_loss);
    if (!isfinite(*loss)) return mloc_error(ctx, MLOC_ERR_DIVERGED, "the MAE loss is %g", *loss);
    return mloc_model_backward(ctx, t, t->output, a->dpred);
}

mloc_status mloc_mae_step(mloc_ctx *ctx, mloc_mae *a, const float *x, const int64_t *samples, int B, int epoch,
                          double *loss) {
    if (B != a->B) return mloc_error(ctx, MLOC_ERR_USAGE, "mae step: %d images, planned for %d", B, a->B);
    mloc_mae_draw_orders(a->order, a->L, B, samples, epoch, a->cfg.seed);
    return mloc_mae_step_orders(ctx, a, x, a->order, B, loss);
}
