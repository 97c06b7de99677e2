/* DINO: self-distillation with no labels (Caron et al. 2021, Algorithm 1;
 * facebookresearch/dino main_dino.py, vision_transformer.py DINOHead, utils.py
 * cosine_scheduler). include/memloc/ssl.h has the API and the deviations.
 *
 * Per iteration, with B images, V = 2 + L crops each (crop-major rows):
 *   teacher: pooled features of the 2 global crops -> DINO head -> t (2B, K)
 *   student: pooled features of the 2 global crops (the student model) and of
 *            the L local crops (a model over the student's store at the local
 *            size), concatenated -> DINO head -> s (V*B, K)
 *   L = DINO loss(s, t, centre) at the epoch's teacher temperature
 *   backward through the head into both student passes; centre moves.
 * After the optimizer step the teacher follows the student by EMA.
 *
 * The DINO head (model.h; src/models/heads.c builds its tensors):
 *   h1 = x W0^T + b0, a1 = gelu(h1)            (R, H)   [head_bn: gelu(BN(h1))]
 *   h2 = a1 W2^T + b2, a2 = gelu(h2)           (R, H)   [head_bn: gelu(BN(h2))]
 *   h3 = a2 W4^T + b4                          (R, Bn)
 *   u  = h3 / max(||h3||, 1e-12)               (R, Bn)   F.normalize
 *   vh = v / ||v|| per row,  W = g * vh        (K, Bn)   weight_norm(dim=0)
 *   y  = u W^T                                 (R, K)
 * Backward: dW = dy^T u, du = dy W; dg_k = dW_k . vh_k, dvh = g dW,
 * dv = (dvh - vh (vh . dvh)) / ||v|| (the l2norm backward); dh3 from du by
 * the l2norm backward; then the MLP. With head_bn the BNs run on batch
 * statistics of all R rows (DINO's head runs once on every crop) for student
 * and teacher alike (train mode) and move each one's running statistics.
 * The linear layers run through oneDNN's
 * sgemm when the student runs on oneDNN and through the reference kernels
 * (nn.h) on the reference backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "memloc/nn.h"
#include "memloc/ssl.h"

#define L2_EPS 1e-12 /* F.normalize's eps */

/* Head tensor entries, looked up by name in a model's table; the BN
 * entries (gamma, beta, running mean, var, count of the BN after the first
 * and the second Linear) only with head_bn. */
enum { W0, B0, W2, B2, W4, B4, WG, WV, G1, E1, M1, V1, C1, G2, E2, M2, V2, C2, N_HEAD };
static const char *const head_names[2][N_HEAD] = {
    {"head.mlp.0.weight", "head.mlp.0.bias", "head.mlp.2.weight", "head.mlp.2.bias", "head.mlp.4.weight",
     "head.mlp.4.bias", "head.last_layer.weight_g", "head.last_layer.weight_v"},
    {"head.mlp.0.weight", "head.mlp.0.bias", "head.mlp.3.weight", "head.mlp.3.bias", "head.mlp.6.weight",
     "head.mlp.6.bias", "head.last_layer.weight_g", "head.last_layer.weight_v", "head.mlp.1.weight",
     "head.mlp.1.bias", "head.mlp.1.running_mean", "head.mlp.1.running_var", "head.mlp.1.num_batches_tracked",
     "head.mlp.4.weight", "head.mlp.4.bias", "head.mlp.4.running_mean", "head.mlp.4.running_var",
     "head.mlp.4.num_batches_tracked"}};

struct mloc_dino {
    mloc_dino_config cfg;
    mloc_model *student;   /* borrowed */
    mloc_model *local;     /* over the student's store; NULL when L = 0 */
    mloc_model *teacher;
    mloc_mode teacher_mode; /* TRAIN when its encoder has BatchNorm (batch statistics); an
                               encoder without (a ViT) computes the same in EVAL, which needs
                               no training program (activations kept for a backward) */
    int entry[N_HEAD];     /* table entries of the head (same in all three) */
    int B, V, C, H, Bn, K;
    int bn;                /* head_bn */
    int sgemm;             /* 1: linear layers through dnnl_sgemm */
    /* head activations for R = V*B rows (the teacher's 2B rows reuse them) */
    float *feat, *h1, *a1, *h2, *a2, *h3, *u, *unorm, *out, *tout;
    float *n1, *n2, *bnsave;   /* head_bn: BN outputs (R, H) and mean / invstd of both (4 H) */
    float *vh, *vnorm, *w;
    /* gradients */
    float *dout, *du, *dh3, *da, *dh, *dfeat, *dw, *dv;
    double *work;
    float *center;
};

mloc_dino_config mloc_dino_config_default(void) {
    mloc_dino_config c;
    memset(&c, 0, sizeof c);
    c.local_crops = 8;
    c.local_size = 16;
    c.student_temp = 0.1;
    c.teacher_temp = 0.07;
    c.warmup_teacher_temp = 0.04;
    c.warmup_teacher_temp_epochs = 30;
    c.momentum_teacher = 0.996;
    c.center_momentum = 0.9;
    c.freeze_last_layer = 1;
    c.norm_last_layer = 1;
    c.clip_grad = 3.0;
    return c;
}

double mloc_dino_teacher_temp(const mloc_dino_config *c, int epoch) {
    const int W = c->warmup_teacher_temp_epochs;
    if (epoch >= W) return c->teacher_temp;
    if (W == 1) return c->warmup_teacher_temp;
    /* np.linspace(a, b, W)[e] = a + e (b - a) / (W - 1) */
    return c->warmup_teacher_temp + epoch * (c->teacher_temp - c->warmup_teacher_temp) / (W - 1);
}

double mloc_dino_momentum(const mloc_dino_config *c, int64_t it, int64_t total) {
    /* cosine_scheduler(base, 1, epochs, niter_per_ep): 1 + (base - 1)(1 + cos(pi it / total)) / 2 */
    if (total < 1) total = 1;
    if (it >= total) it = total - 1;
    return 1.0 + 0.5 * (c->momentum_teacher - 1.0) * (1.0 + cos(M_PI * (double)it / (double)total));
}

mloc_model *mloc_dino_teacher(const mloc_dino *d) { return d->teacher; }

float *mloc_dino_center(const mloc_dino *d) { return d->center; }

static float *param(const mloc_model *m, int entry) {
    return mloc_store_ptr(&m->store, &m->table, entry);
}

static float *grad(const mloc_model *m, int entry) {
    return m->store.grad + m->table.t[entry].offset;
}

void mloc_dino_free(mloc_dino *d) {
    if (!d) return;
    mloc_model_free(d->local);
    mloc_model_free(d->teacher);
    float **bufs[] = {&d->feat, &d->h1, &d->a1, &d->h2, &d->a2, &d->h3, &d->u, &d->unorm, &d->out,
                      &d->tout, &d->vh, &d->vnorm, &d->w, &d->dout, &d->du, &d->dh3, &d->da, &d->dh,
                      &d->dfeat, &d->dw, &d->dv, &d->center, &d->n1, &d->n2, &d->bnsave};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mloc_free(*bufs[i]);
    mloc_free(d->work);
    free(d);
}

mloc_status mloc_dino_create(mloc_ctx *ctx, mloc_dino **out, mloc_model *student,
                             const mloc_dino_config *cfg, int B) {
    *out = NULL;
    if (student->cfg.head != MLOC_HEAD_DINO)
        return mloc_error(ctx, MLOC_ERR_USAGE, "dino: the student has a %s head, expected dino",
                          mloc_head_name(student->cfg.head));
    if (B < 1 || cfg->local_crops < 0 || !(cfg->student_temp > 0) || !(cfg->teacher_temp > 0) ||
        !(cfg->warmup_teacher_temp > 0) || cfg->warmup_teacher_temp_epochs < 0 ||
        !(cfg->momentum_teacher >= 0 && cfg->momentum_teacher <= 1) ||
        !(cfg->center_momentum >= 0 && cfg->center_momentum <= 1) || cfg->freeze_last_layer < 0 ||
        !(cfg->clip_grad >= 0))
        return mloc_error(ctx, MLOC_ERR_USAGE,
                          "dino: batch %d, local crops %d, temperatures %g/%g/%g, momenta %g/%g, freeze %d, "
                          "clip %g: expected B >= 1, L >= 0, temperatures > 0, momenta in [0, 1], freeze >= 0, "
                          "clip >= 0", B, cfg->local_crops, cfg->student_temp, cfg->warmup_teacher_temp,
                          cfg->teacher_temp, cfg->momentum_teacher, cfg->center_momentum, cfg->freeze_last_layer,
                          cfg->clip_grad);
    mloc_status st = MLOC_OK;
    mloc_dino *d = calloc(1, sizeof *d);
    if (!d) return mloc_error(ctx, MLOC_ERR_NOMEM, "dino: out of memory");
    d->cfg = *cfg;
    d->student = student;
    d->B = B;
    d->V = 2 + cfg->local_crops;
    const mloc_model_config *mc = &student->cfg;
    d->C = student->values[student->output].c;
    d->H = mc->head_hidden;
    d->Bn = mc->head_bottleneck;
    d->K = mc->head_out;
    d->bn = mc->head_bn != 0;
    for (int k = 0; k < (d->bn ? N_HEAD : G1); k++)
        if ((d->entry[k] = mloc_table_find(&student->table, head_names[d->bn][k])) < 0) {
            st = mloc_error(ctx, MLOC_ERR_INTERNAL, "dino: the student has no '%s'", head_names[d->bn][k]);
            goto fail;
        }
    d->sgemm = student->backend != MLOC_BACKEND_REF;

    /* teacher: same configuration, a copy of everything (load_state_dict) */
    st = mloc_model_create(ctx, &d->teacher, mc);
    if (st == MLOC_OK) st = mloc_model_set_backend(ctx, d->teacher, student->backend);
    if (st != MLOC_OK) goto fail;
    for (int b = 0; b < 3; b++) {
        size_t bytes = (size_t)student->table.numel[b] * (b == MLOC_BLOCK_COUNTER ? sizeof(int64_t) : sizeof(float));
        void *dst = b == 0 ? (void *)d->teacher->store.param : b == 1 ? (void *)d->teacher->store.buffer
                                                                      : (void *)d->teacher->store.counter;
        const void *src = b == 0 ? (void *)student->store.param : b == 1 ? (void *)student->store.buffer
                                                                         : (void *)student->store.counter;
        if (bytes) memcpy(dst, src, bytes);
    }
    mloc_model_params_changed(d->teacher);
    d->teacher_mode = MLOC_MODE_EVAL;
    for (int i = 0; i < d->teacher->n_nodes; i++)
        if (d->teacher->nodes[i].op == MLOC_OP_BATCHNORM2D) d->teacher_mode = MLOC_MODE_TRAIN;
    /* local crops: the student's graph at the local size, over its store */
    if (cfg->local_crops > 0) {
        mloc_model_config lc = *mc;
        /* a ViT keeps the global crops' position embeddings and interpolates
         * them to the local crops' grid (DINO's interpolate_pos_encoding) */
        lc.pos_image_h = mc->pos_image_h > 0 ? mc->pos_image_h : mc->image_h;
        lc.pos_image_w = mc->pos_image_w > 0 ? mc->pos_image_w : mc->image_w;
        lc.image_h = lc.image_w = cfg->local_size;
        st = mloc_model_create_shared(ctx, &d->local, &lc, student);
        if (st != MLOC_OK) {
            mloc_error_prefix(ctx, st, "dino: local crops of %dx%d", cfg->local_size, cfg->local_size);
            goto fail;
        }
        if (d->local->values[d->local->output].c != d->C) {
            st = mloc_error(ctx, MLOC_ERR_USAGE, "dino: local crops give %d features, global crops %d",
                            d->local->values[d->local->output].c, d->C);
            goto fail;
        }
    }
    st = mloc_model_plan(ctx, student, 2 * B);
    if (st == MLOC_OK) st = mloc_model_plan(ctx, d->teacher, 2 * B);
    if (st == MLOC_OK && d->local) st = mloc_model_plan(ctx, d->local, cfg->local_crops * B);
    if (st != MLOC_OK) goto fail;

    const int64_t R = (int64_t)d->V * B, C = d->C, H = d->H, Bn = d->Bn, K = d->K;
    struct { float **p; int64_t n; } bufs[] = {
        {&d->feat, R * C}, {&d->h1, R * H}, {&d->a1, R * H}, {&d->h2, R * H}, {&d->a2, R * H},
        {&d->h3, R * Bn},  {&d->u, R * Bn},  {&d->unorm, R},  {&d->out, R * K}, {&d->tout, 2 * B * K},
        {&d->vh, K * Bn},  {&d->vnorm, K},   {&d->w, K * Bn}, {&d->dout, R * K}, {&d->du, R * Bn},
        {&d->dh3, R * Bn}, {&d->da, R * H},  {&d->dh, R * H}, {&d->dfeat, R * C}, {&d->dw, K * Bn},
        {&d->dv, K * Bn},  {&d->center, K},  {&d->n1, d->bn ? R * H : 1}, {&d->n2, d->bn ? R * H : 1},
        {&d->bnsave, 4 * H}};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (!(*bufs[i].p = mloc_alloc(ctx, (size_t)bufs[i].n * sizeof(float)))) {
            st = mloc_error(ctx, MLOC_ERR_NOMEM, "dino: out of memory for the head of %lld rows", (long long)R);
            goto fail;
        }
    if (!(d->work = mloc_alloc(ctx, (size_t)mloc_dino_loss_work_len(B, d->K) * sizeof(double)))) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "dino: out of memory for the loss");
        goto fail;
    }
    *out = d;
    return MLOC_OK;
fail:
    mloc_dino_free(d);
    return st;
}

/* ---- the head ------------------------------------------------------------------- */

/* y (N, O) = x (N, I) w^T (+ b). */
static void lin_fwd(const mloc_dino *d, float *y, const float *x, const float *w, const float *b, int N, int I,
                    int O) {
    if (!d->sgemm) {
        mloc_linear_shape s = {N, I, O};
        mloc_linear_forward(y, x, w, b, &s);
        return;
    }
    dnnl_sgemm('N', 'T', N, O, I, 1.0f, x, I, w, I, 0.0f, y, O);
    if (b)
        for (int64_t n = 0; n < N; n++)
            for (int o = 0; o < O; o++) y[n * O + o] += b[o];
}

/* dx = dy w (=), dw += dy^T x, db += sum_n dy; dx, db may be NULL. */
static void lin_bwd(const mloc_dino *d, float *dx, float *dw, float *db, const float *dy, const float *x,
                    const float *w, int N, int I, int O) {
    if (!d->sgemm) {
        mloc_linear_shape s = {N, I, O};
        mloc_linear_backward(dx, dw, db, dy, x, w, &s);
        return;
    }
    if (dx) dnnl_sgemm('N', 'N', N, I, O, 1.0f, dy, O, w, I, 0.0f, dx, I);
    dnnl_sgemm('T', 'N', O, I, N, 1.0f, dy, O, x, I, 1.0f, dw, I);
    if (db)
        for (int o = 0; o < O; o++) {
            double sum = 0;
            for (int64_t n = 0; n < N; n++) sum += dy[n * O + o];
            db[o] += (float)sum;
        }
}

/* The head of model m (its parameters) on R rows of d->feat into y (R, K),
 * keeping the activations for head_backward. */
/* head_bn: y = BN(x) over the R rows in training mode (batch statistics;
 * running statistics and counter of model m updated); mean / invstd saved. */
static void bn_forward(mloc_dino *d, mloc_model *m, int layer, float *y, const float *x, int R) {
    const int *e = d->entry + (layer ? G2 - G1 : 0);
    float *save = d->bnsave + 2 * layer * d->H;
    mloc_bn_shape s = mloc_bn_shape_make(R, d->H, 1);
    mloc_batchnorm2d_forward_train(y, save, save + d->H, param(m, e[M1]), param(m, e[V1]), x, param(m, e[G1]),
                                   param(m, e[E1]), &s);
    (*(int64_t *)mloc_store_ptr(&m->store, &m->table, e[C1]))++;
}

/* dx (=) from dy through the BN of `layer`; its gamma / beta grads += into m. */
static void bn_backward(mloc_dino *d, mloc_model *m, int layer, float *dx, const float *dy, const float *x, int R) {
    const int *e = d->entry + (layer ? G2 - G1 : 0);
    const float *save = d->bnsave + 2 * layer * d->H;
    mloc_bn_shape s = mloc_bn_shape_make(R, d->H, 1);
    mloc_batchnorm2d_backward(dx, grad(m, e[G1]), grad(m, e[E1]), dy, x, save, save + d->H, param(m, e[G1]), &s);
}

static void head_forward(mloc_dino *d, mloc_model *m, int R, float *y) {
    const int C = d->C, H = d->H, Bn = d->Bn, K = d->K;
    const int *e = d->entry;
    lin_fwd(d, d->h1, d->feat, param(m, e[W0]), param(m, e[B0]), R, C, H);
    if (d->bn) bn_forward(d, m, 0, d->n1, d->h1, R);
    mloc_gelu_forward(d->a1, d->bn ? d->n1 : d->h1, (int64_t)R * H);
    lin_fwd(d, d->h2, d->a1, param(m, e[W2]), param(m, e[B2]), R, H, H);
    if (d->bn) bn_forward(d, m, 1, d->n2, d->h2, R);
    mloc_gelu_forward(d->a2, d->bn ? d->n2 : d->h2, (int64_t)R * H);
    lin_fwd(d, d->h3, d->a2, param(m, e[W4]), param(m, e[B4]), R, H, Bn);
    mloc_l2norm_forward(d->u, d->unorm, d->h3, R, Bn, L2_EPS);
    /* weight_norm(dim=0): w_k = g_k v_k / ||v_k|| (no clamp: torch's _weight_norm) */
    mloc_l2norm_forward(d->vh, d->vnorm, param(m, e[WV]), K, Bn, 0.0);
    const float *g = param(m, e[WG]);
    for (int64_t k = 0; k < K; k++)
        for (int j = 0; j < Bn; j++) d->w[k * Bn + j] = g[k] * d->vh[k * Bn + j];
    lin_fwd(d, y, d->u, d->w, NULL, R, Bn, K);
}

/* From d->dout (R, K): head gradients += into m's grad block, d->dfeat (=). */
static void head_backward(mloc_dino *d, mloc_model *m, int R) {
    const int C = d->C, H = d->H, Bn = d->Bn, K = d->K;
    const int *e = d->entry;
    memset(d->dw, 0, (size_t)K * Bn * sizeof(float));
    lin_bwd(d, d->du, d->dw, NULL, d->dout, d->u, d->w, R, Bn, K);
    /* through w = g vh: dg_k += dw_k . vh_k, dvh = g dw, then the row norm */
    const float *g = param(m, e[WG]);
    float *dg = grad(m, e[WG]), *dv = grad(m, e[WV]);
    for (int64_t k = 0; k < K; k++) {
        double dot = 0;
        for (int j = 0; j < Bn; j++) {
            dot += (double)d->dw[k * Bn + j] * d->vh[k * Bn + j];
            d->dw[k * Bn + j] *= g[k];
        }
        dg[k] += (float)dot;
    }
    mloc_l2norm_backward(d->dv, d->dw, d->vh, d->vnorm, K, Bn, 0.0);
    for (int64_t i = 0; i < (int64_t)K * Bn; i++) dv[i] += d->dv[i];
    mloc_l2norm_backward(d->dh3, d->du, d->u, d->unorm, R, Bn, L2_EPS);
    lin_bwd(d, d->da, grad(m, e[W4]), grad(m, e[B4]), d->dh3, d->a2, param(m, e[W4]), R, H, Bn);
    if (d->bn) { /* d(a2) -> d(n2) (in dh) -> d(h2) (back in da, then dh) */
        mloc_gelu_backward(d->dh, d->da, d->n2, (int64_t)R * H);
        bn_backward(d, m, 1, d->da, d->dh, d->h2, R);
        memcpy(d->dh, d->da, (size_t)R * H * sizeof(float));
    } else {
        mloc_gelu_backward(d->dh, d->da, d->h2, (int64_t)R * H);
    }
    lin_bwd(d, d->da, grad(m, e[W2]), grad(m, e[B2]), d->dh, d->a1, param(m, e[W2]), R, H, H);
    if (d->bn) {
        mloc_gelu_backward(d->dh, d->da, d->n1, (int64_t)R * H);
        bn_backward(d, m, 0, d->da, d->dh, d->h1, R);
        memcpy(d->dh, d->da, (size_t)R * H * sizeof(float));
    } else {
        mloc_gelu_backward(d->dh, d->da, d->h1, (int64_t)R * H);
    }
    lin_bwd(d, d->dfeat, grad(m, e[W0]), grad(m, e[B0]), d->dh, d->feat, param(m, e[W0]), R, C, H);
}

/* ---- one iteration ---------------------------------------------------------------- */

/* utils.clip_gradients: g *= clip / (||g|| + 1e-6) for each tensor whose norm
 * exceeds that (a frozen weight_g has no gradient in DINO: skipped). The
 * norm is one sequential double sum per tensor. */
static void clip_gradients(const mloc_dino *d, double clip) {
    const mloc_model *s = d->student;
    for (int i = 0; i < s->table.n; i++) {
        const mloc_tensor *e = &s->table.t[i];
        if (mloc_role_block(e->role) != MLOC_BLOCK_PARAM || (i == d->entry[WG] && d->cfg.norm_last_layer)) continue;
        float *g = s->store.grad + e->offset;
        double ss = 0;
        for (int64_t k = 0; k < e->numel; k++) ss += (double)g[k] * g[k];
        const float coef = (float)(clip / ((float)sqrt(ss) + 1e-6));
        if (coef < 1)
            for (int64_t k = 0; k < e->numel; k++) g[k] *= coef;
    }
}

mloc_status mloc_dino_step(mloc_ctx *ctx, mloc_dino *d, const float *global, const float *local, int B,
                           int epoch, double *loss) {
    if (B != d->B)
        return mloc_error(ctx, MLOC_ERR_USAGE, "dino step: %d images, the state was made for %d", B, d->B);
    if (d->local && !local) return mloc_error(ctx, MLOC_ERR_USAGE, "dino step: %d local crops expected, none given",
                                              d->cfg.local_crops);
    const int G = 2 * B, R = d->V * B;
    const int64_t C = d->C;
    mloc_model *s = d->student;
    /* teacher on the global crops (batch statistics, no gradient) */
    MLOC_TRY(mloc_model_forward(ctx, d->teacher, global, G, d->teacher_mode, -1));
    MLOC_TRY(mloc_model_read(ctx, d->teacher, d->teacher->output, d->feat));
    head_forward(d, d->teacher, G, d->tout);
    /* student on all crops, one pass per crop size */
    MLOC_TRY(mloc_model_forward(ctx, s, global, G, MLOC_MODE_TRAIN, -1));
    MLOC_TRY(mloc_model_read(ctx, s, s->output, d->feat));
    if (d->local) {
        mloc_model_params_changed(d->local);
        MLOC_TRY(mloc_model_forward(ctx, d->local, local, R - G, MLOC_MODE_TRAIN, -1));
        MLOC_TRY(mloc_model_read(ctx, d->local, d->local->output, d->feat + G * C));
    }
    head_forward(d, s, R, d->out);
    const double tt = mloc_dino_teacher_temp(&d->cfg, epoch);
    *loss = mloc_dino_loss_ws(d->dout, d->work, d->out, d->tout, d->center, B, d->V, d->K,
                              (float)d->cfg.student_temp, (float)tt);
    if (!isfinite(*loss)) return mloc_error(ctx, MLOC_ERR_DIVERGED, "the DINO loss is %g", *loss);
    head_backward(d, s, R);
    MLOC_TRY(mloc_model_backward(ctx, s, s->output, d->dfeat));
    if (d->local) MLOC_TRY(mloc_model_backward(ctx, d->local, d->local->output, d->dfeat + G * C));
    if (d->cfg.clip_grad > 0) clip_gradients(d, d->cfg.clip_grad);
    mloc_dino_center_update(d->center, d->tout, G, d->K, d->cfg.center_momentum);
    return MLOC_OK;
}

void mloc_dino_update_teacher(mloc_dino *d, double momentum) {
    float *t = d->teacher->store.param;
    const float *s = d->student->store.param;
    const int64_t n = d->student->table.numel[MLOC_BLOCK_PARAM];
    const float m = (float)momentum, r = (float)(1.0 - momentum);
    /* param_k.mul_(m).add_((1 - m) * param_q), in float as torch */
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) t[i] = t[i] * m + r * s[i];
    mloc_model_params_changed(d->teacher);
    if (d->local) mloc_model_params_changed(d->local);
}

mloc_status mloc_dino_begin_epoch(mloc_dino *d, mloc_optim *opt, int epoch) {
    const int last = epoch >= d->cfg.freeze_last_layer;
    MLOC_TRY(mloc_optim_set_trainable(opt, d->entry[WG], last && !d->cfg.norm_last_layer));
    return mloc_optim_set_trainable(opt, d->entry[WV], last);
}

/* ---- checkpoints ------------------------------------------------------------------- */

mloc_status mloc_dino_add_to_writer(const mloc_dino *d, mloc_st_writer *w) {
    const mloc_model *t = d->teacher;
    for (int i = 0; i < t->table.n; i++) {
        const mloc_tensor *e = &t->table.t[i];
        char name[MLOC_NAME_MAX + 16];
        snprintf(name, sizeof name, "teacher.%s", e->name);
        const void *p = mloc_store_ptr(&t->store, &t->table, i);
        MLOC_TRY(mloc_role_block(e->role) == MLOC_BLOCK_COUNTER
                     ? mloc_st_writer_add(w, name, MLOC_DTYPE_I64, 0, NULL, p)
                     : mloc_st_writer_add(w, name, MLOC_DTYPE_F32, e->ndim, e->shape, p));
    }
    int64_t k = d->K;
    return mloc_st_writer_add(w, "dino.center", MLOC_DTYPE_F32, 1, &k, d->center);
}

mloc_status mloc_dino_load(mloc_ctx *ctx, mloc_dino *d, const mloc_st_file *f) {
    mloc_model *t = d->teacher;
    for (int i = 0; i < t->table.n; i++) {
        const mloc_tensor *e = &t->table.t[i];
        char name[MLOC_NAME_MAX + 16];
        snprintf(name, sizeof name, "teacher.%s", e->name);
        void *p = mloc_store_ptr(&t->store, &t->table, i);
        MLOC_TRY(mloc_role_block(e->role) == MLOC_BLOCK_COUNTER ? mloc_st_read_i64(ctx, p, f, name, 0, NULL)
                                                                : mloc_st_read_f32(ctx, p, f, name, e->ndim, e->shape));
    }
    int64_t k = d->K;
    MLOC_TRY(mloc_st_read_f32(ctx, d->center, f, "dino.center", 1, &k));
    mloc_model_params_changed(t);
    return MLOC_OK;
}
