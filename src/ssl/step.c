/* SimCLR and supervised training steps (include/memloc/ssl.h). */
#include <math.h>

#include "memloc/nn.h"
#include "memloc/ssl.h"

mloc_status mloc_ssl_scratch_init(mloc_ctx *ctx, mloc_ssl_scratch *s, const mloc_model *m, int max_views) {
    s->capacity = (int64_t)max_views * mloc_model_value_numel(m, m->output);
    s->out = mloc_alloc(ctx, (size_t)s->capacity * sizeof(float));
    s->dout = mloc_alloc(ctx, (size_t)s->capacity * sizeof(float));
    s->work = mloc_alloc(ctx, (size_t)mloc_ntxent_work_len(max_views, m->values[m->output].c) * sizeof(double));
    s->aux = mloc_alloc(ctx, (size_t)s->capacity * sizeof(float));
    if (!s->out || !s->dout || !s->work || !s->aux) {
        mloc_ssl_scratch_free(s);
        return MLOC_ERR_NOMEM;
    }
    return MLOC_OK;
}

void mloc_ssl_scratch_free(mloc_ssl_scratch *s) {
    mloc_free(s->out);
    mloc_free(s->dout);
    mloc_free(s->work);
    mloc_free(s->aux);
    s->out = s->dout = s->aux = NULL;
    s->work = NULL;
    s->capacity = 0;
}

mloc_status mloc_simclr_step(mloc_ctx *ctx, mloc_model *m, mloc_ssl_scratch *s, const float *x,
                             int n_images, float temperature, double *loss) {
    const int V = 2 * n_images, D = m->values[m->output].c;
    if ((int64_t)V * D > s->capacity)
        return mloc_error(ctx, MLOC_ERR_USAGE, "simclr step: %d views exceed the scratch", V);
    MLOC_TRY(mloc_model_forward(ctx, m, x, V, MLOC_MODE_TRAIN, -1));
    MLOC_TRY(mloc_model_read(ctx, m, m->output, s->out));
    *loss = mloc_ntxent_ws(s->dout, s->work, s->out, V, D, temperature);
    if (!isfinite(*loss)) return mloc_error(ctx, MLOC_ERR_DIVERGED, "the NT-Xent loss is %g", *loss);
    return mloc_model_backward(ctx, m, m->output, s->dout);
}

mloc_status mloc_supervised_step(mloc_ctx *ctx, mloc_model *m, mloc_ssl_scratch *s, const float *x,
                                 const int32_t *labels, int n_images, double *loss, int *correct) {
    const int K = m->values[m->output].c;
    if ((int64_t)n_images * K > s->capacity)
        return mloc_error(ctx, MLOC_ERR_USAGE, "supervised step: %d images exceed the scratch", n_images);
    for (int i = 0; i < n_images; i++)
        if (labels[i] < 0 || labels[i] >= K)
            return mloc_error(ctx, MLOC_ERR_DATA, "supervised step: label %d outside 0..%d", labels[i], K - 1);
    MLOC_TRY(mloc_model_forward(ctx, m, x, n_images, MLOC_MODE_TRAIN, -1));
    MLOC_TRY(mloc_model_read(ctx, m, m->output, s->out));
    *loss = mloc_cross_entropy(s->dout, s->out, labels, n_images, K);
    if (!isfinite(*loss)) return mloc_error(ctx, MLOC_ERR_DIVERGED, "the cross-entropy loss is %g", *loss);
    if (correct) {
        int c = 0;
        for (int i = 0; i < n_images; i++) {
            const float *row = s->out + (int64_t)i * K;
            int best = 0;
            for (int k = 1; k < K; k++)
                if (row[k] > row[best]) best = k;
            c += best == labels[i];
        }
        *correct = c;
    }
    return mloc_model_backward(ctx, m, m->output, s->dout);
}
