/* SimSiam training step (Chen & He 2021, Algorithm 1; include/memloc/ssl.h):
 *
 *     z1, z2 = f(x1), f(x2)            encoder + projector          (N, D) each
 *     p1, p2 = h(z1), h(z2)            predictor                    (N, D) each
 *     L = D(p1, sg(z2))/2 + D(p2, sg(z1))/2
 *
 * As in facebookresearch/simsiam, PatrickHua/SimSiam and solo-learn, each
 * view is its own forward pass, so every BN (encoder, projector, predictor)
 * normalises over the N rows of one view and the running statistics move
 * twice per step (view 1, then view 2). The two passes run on two models
 * over one store: `m` for view 1 and `twin` (mloc_model_create_shared) for
 * view 2, each keeping its own activations for its backward.
 *
 * The stop-gradient needs no graph surgery: each backward starts at p alone,
 * so the only path from the loss into z_i is through p_i = h(z_i). */
#include <math.h>

#include "memloc/nn.h"
#include "memloc/ssl.h"

mloc_status mloc_simsiam_step(mloc_ctx *ctx, mloc_model *m, mloc_model *twin, mloc_ssl_scratch *s,
                              const float *x, int n_images, double *loss) {
    if (m->cfg.head != MLOC_HEAD_SIMSIAM)
        return mloc_error(ctx, MLOC_ERR_USAGE, "simsiam step: the model has a %s head, expected simsiam",
                          mloc_head_name(m->cfg.head));
    if (!twin || twin->store.param != m->store.param)
        return mloc_error(ctx, MLOC_ERR_USAGE, "simsiam step: the second view needs a model sharing the first's store");
    const int N = n_images, D = m->values[m->output].c;
    const int zv = mloc_model_find_value(m, "projector.7");
    if (zv < 0 || m->values[zv].c != D)
        return mloc_error(ctx, MLOC_ERR_INTERNAL, "simsiam step: no projector output of %d features", D);
    if (2 * (int64_t)N * D > s->capacity || !s->aux)
        return mloc_error(ctx, MLOC_ERR_USAGE, "simsiam step: %d views exceed the scratch", 2 * N);
    /* p = [p1; p2] in s->out, z = [z1; z2] in s->aux: rows i and i + N are the
     * two views of image i, as mloc_simsiam_loss pairs them */
    const int64_t half = (int64_t)N * D;
    const size_t in = (size_t)N * mloc_model_value_numel(m, m->input);
    MLOC_TRY(mloc_model_forward(ctx, m, x, N, MLOC_MODE_TRAIN, -1));
    MLOC_TRY(mloc_model_read(ctx, m, m->output, s->out));
    MLOC_TRY(mloc_model_read(ctx, m, zv, s->aux));
    MLOC_TRY(mloc_model_forward(ctx, twin, x + in, N, MLOC_MODE_TRAIN, -1));
    MLOC_TRY(mloc_model_read(ctx, twin, twin->output, s->out + half));
    MLOC_TRY(mloc_model_read(ctx, twin, zv, s->aux + half));
    *loss = mloc_simsiam_loss_ws(s->dout, s->work, s->out, s->aux, 2 * N, D);
    if (!isfinite(*loss)) return mloc_error(ctx, MLOC_ERR_DIVERGED, "the SimSiam loss is %g", *loss);
    MLOC_TRY(mloc_model_backward(ctx, m, m->output, s->dout));
    return mloc_model_backward(ctx, twin, twin->output, s->dout + half);
}
