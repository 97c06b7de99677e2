/* memloc's timm ViT and MAE head (src/models/vit.c, src/ssl/mae.c):
 * state_dict names and shapes against tests/fixtures/vit/timm_names.txt, the
 * published parameter counts of timm's ViT-Ti/S/B at 224 / 16, taps and
 * units, configuration errors, timm's initialisation, the oneDNN backend
 * against the reference on a training step (SimCLR head, and the masked MAE
 * graph) and on every tap, partial and smaller eval batches, weights files
 * (metadata and inference from timm names), the MAE masks and loss, and the
 * token-mean unit of the metrics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/io.h"
#include "memloc/model.h"
#include "memloc/nn.h"
#include "memloc/rng.h"
#include "memloc/ssl.h"
#include "metrics/internal.h"
#include "test_util.h"

static mloc_model_config tiny_cfg(mloc_head_kind head) {
    /* a small ViT for backend comparisons: 16 x 16 images, patch 4, width 32, depth 2 */
    mloc_model_config c = mloc_model_config_default();
    c.arch = "vit_tiny";
    c.image_h = c.image_w = 16;
    c.embed_dim = 32;
    c.depth = 2;
    c.heads = 2;
    c.head = head;
    c.head_hidden = 24;
    c.head_out = 16;
    c.decoder_dim = 16;
    c.decoder_depth = 1;
    c.decoder_heads = 2;
    return c;
}

/* The table of m against the fixture's entries of `model` (names, shapes), in any order. */
static void check_names(const mloc_model *m, const char *model) {
    FILE *f = fopen(test_fixture("vit/timm_names.txt"), "r");
    assert_non_null(f);
    char line[512];
    int seen = 0;
    while (fgets(line, sizeof line, f)) {
        char mod[64], name[160], dtype[16], dims[64];
        if (sscanf(line, "%63s %159s %15s %63s", mod, name, dtype, dims) != 4 || strcmp(mod, model) != 0) continue;
        int i = mloc_table_find(&m->table, name);
        if (i < 0) fail_msg("%s: no tensor %s", model, name);
        const mloc_tensor *e = &m->table.t[i];
        char got[64] = "";
        for (int d = 0; d < e->ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), d ? ",%lld" : "%lld", (long long)e->shape[d]);
        if (strcmp(got, dims) != 0) fail_msg("%s: %s is [%s], timm [%s]", model, name, got, dims);
        seen++;
    }
    fclose(f);
    printf("%s: %d tensors\n", model, seen);
    assert_int_equal(seen, m->table.n);
}

static void test_structure(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model_config cfg = mloc_model_config_default();
    cfg.arch = "vit_tiny";
    cfg.head = MLOC_HEAD_CLASSIFIER;
    cfg.head_out = 10;
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    check_names(m, "vit_tiny_cifar");
    /* taps: per block attn, mlp.act, block; then cls */
    assert_int_equal(m->n_taps, 37);
    static const struct { int tap; const char *name; int units, T; mloc_unit_kind kind; } taps[] = {
        {0, "blocks.0.attn", 192, 65, MLOC_UNIT_TOKEN_MEAN},   {1, "blocks.0.mlp.act", 768, 65, MLOC_UNIT_TOKEN_MEAN},
        {2, "blocks.0", 192, 65, MLOC_UNIT_TOKEN_MEAN},        {33, "blocks.11.attn", 192, 65, MLOC_UNIT_TOKEN_MEAN},
        {34, "blocks.11.mlp.act", 768, 65, MLOC_UNIT_TOKEN_MEAN}, {35, "blocks.11", 192, 65, MLOC_UNIT_TOKEN_MEAN},
        {36, "cls", 192, 192, MLOC_UNIT_NEURON}};
    for (size_t k = 0; k < sizeof taps / sizeof *taps; k++) {
        const mloc_tap *t = &m->taps[taps[k].tap];
        assert_string_equal(t->name, taps[k].name);
        assert_int_equal(t->units, taps[k].units);
        assert_int_equal((int)t->unit_kind, (int)taps[k].kind);
        assert_int_equal(m->values[t->value].c, taps[k].T);
        assert_int_equal(t->nonneg, 0);
        assert_int_equal(t->module, mloc_model_find_module(m, k < 3 ? "blocks.0" : k < 6 ? "blocks.11" : "norm"));
    }
    assert_int_equal(m->feature, m->taps[36].value);
    assert_int_equal(m->values[m->output].c, 10);
    assert_int_equal(m->table.t[mloc_table_find(&m->table, "head.weight")].group, MLOC_GROUP_HEAD);
    mloc_model_free(m);

    cfg.head = MLOC_HEAD_MAE;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    check_names(m, "mae_tiny_cifar");
    assert_int_equal(m->table.t[mloc_table_find(&m->table, "decoder_pred.weight")].shape[0], 48);
    assert_int_equal(m->table.t[mloc_table_find(&m->table, "mask_token")].group, MLOC_GROUP_HEAD);
    assert_int_equal(m->values[m->output].c, 65);
    assert_int_equal(m->values[m->output].w, 48);
    assert_int_equal(m->n_taps, 37); /* the decoder has no taps */
    mloc_model_free(m);

    /* timm's published sizes at 224 x 224, patch 16, 1000 classes (vit_base's
     * 86,567,656 holds too, but drawing its init takes seconds) */
    static const struct { const char *arch; int64_t params; } sizes[] = {{"vit_tiny", 5717416},
                                                                          {"vit_small", 22050664}};
    for (int k = 0; k < 2; k++) {
        cfg = mloc_model_config_default();
        cfg.arch = sizes[k].arch;
        cfg.image_h = cfg.image_w = 224;
        cfg.patch_size = 16;
        cfg.head = MLOC_HEAD_CLASSIFIER;
        cfg.head_out = 1000;
        assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
        assert_int_equal(mloc_model_param_count(m, 0), sizes[k].params);
        assert_int_equal(m->values[m->taps[0].value].c, 197);
        mloc_model_free(m);
    }
    mloc_ctx_destroy(ctx);
}

static void test_config_errors(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model *m;
    mloc_model_config cfg = tiny_cfg(MLOC_HEAD_NONE);
    cfg.patch_size = 5;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "divisible by the patch"));
    cfg = tiny_cfg(MLOC_HEAD_NONE);
    cfg.heads = 3;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "divisible by the heads"));
    cfg = tiny_cfg(MLOC_HEAD_NONE);
    cfg.mask_keep = 4;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "MAE head"));
    cfg = tiny_cfg(MLOC_HEAD_MAE);
    cfg.decoder_heads = 3;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_ERR_USAGE);
    /* MAE needs the MAE head and a ratio leaving patches on both sides */
    cfg = tiny_cfg(MLOC_HEAD_SIMCLR);
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    mloc_mae *a;
    mloc_mae_config mc = mloc_mae_config_default();
    assert_int_equal(mloc_mae_create(ctx, &a, m, &mc, 2), MLOC_ERR_USAGE);
    mloc_model_free(m);
    cfg = tiny_cfg(MLOC_HEAD_MAE);
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    mc.mask_ratio = 0.99; /* int(16 * 0.01) = 0 visible */
    assert_int_equal(mloc_mae_create(ctx, &a, m, &mc, 2), MLOC_ERR_USAGE);
    mloc_model_free(m);
    /* position embeddings for another size: sides divisible by the patch, no MAE masking */
    cfg = tiny_cfg(MLOC_HEAD_NONE);
    cfg.pos_image_h = cfg.pos_image_w = 18;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "position embeddings for 18x18 images"));
    cfg = tiny_cfg(MLOC_HEAD_MAE);
    cfg.pos_image_h = cfg.pos_image_w = 32;
    cfg.mask_keep = 4;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_ERR_USAGE);
    assert_non_null(strstr(mloc_ctx_error(ctx), "MAE masking"));
    mloc_ctx_destroy(ctx);
}

/* Central differences of L = sum(g . output) of m on x (N samples, forward in
 * `mode`) against grad for entries [from, from + n) of table entry `entry` of
 * the store m reads (perturbed by +-h); returns the largest |fd - grad| and
 * sets *scale to the largest |grad| over them. */
static double fd_max_error(mloc_ctx *ctx, mloc_model *m, mloc_mode mode, const float *x, int N, const float *g,
                           const mloc_table *tab, const mloc_store *store, int entry, int64_t from, int64_t n,
                           float h, double *scale) {
    const int64_t out = N * mloc_model_value_numel(m, m->output);
    float *p = mloc_store_ptr(store, tab, entry), *y = malloc((size_t)out * sizeof *y);
    const float *grad = store->grad + tab->t[entry].offset;
    double worst = 0;
    *scale = 0;
    for (int64_t k = from; k < from + n; k++) {
        const float keep = p[k];
        double l[2];
        for (int s = 0; s < 2; s++) {
            p[k] = keep + (s ? -h : h);
            mloc_model_params_changed(m);
            assert_int_equal(mloc_model_forward(ctx, m, x, N, mode, -1), MLOC_OK);
            assert_int_equal(mloc_model_read(ctx, m, m->output, y), MLOC_OK);
            l[s] = 0;
            for (int64_t j = 0; j < out; j++) l[s] += (double)g[j] * y[j];
        }
        p[k] = keep;
        worst = fmax(worst, fabs((l[0] - l[1]) / (2 * h) - grad[k]));
        *scale = fmax(*scale, fabs(grad[k]));
    }
    mloc_model_params_changed(m);
    free(y);
    return worst;
}

/* DINO's local crops on a ViT: a model over another model's store on 8x8
 * images, its position embeddings (learned for 16x16) interpolated.
 *   - the tables match (pos_embed stays [1, 17, D]); pos_image = image is the
 *     plain model (no interpolation, same outputs);
 *   - the gradient of L = sum(g . cls) w.r.t. pos_embed, through the
 *     interpolation, against central differences on the float model. */
static void test_pos_interpolation(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    mloc_model_config cfg = tiny_cfg(MLOC_HEAD_NONE);
    cfg.embed_dim = 8;
    cfg.depth = 1;
    mloc_model *big, *same, *small;
    assert_int_equal(mloc_model_create(ctx, &big, &cfg), MLOC_OK);
    mloc_model_init_params(big, 5);
    mloc_model_config sc = cfg;
    sc.pos_image_h = sc.pos_image_w = 16;
    assert_int_equal(mloc_model_create_shared(ctx, &same, &sc, big), MLOC_OK);
    assert_null(same->pos_interp_w);
    sc.image_h = sc.image_w = 8;
    assert_int_equal(mloc_model_create_shared(ctx, &small, &sc, big), MLOC_OK);
    assert_non_null(small->pos_interp_w);
    assert_int_equal(small->pos_interp_rows, 4);
    assert_int_equal(small->pos_interp_cols, 16);
    /* every interpolated row is a weighted sum of grid rows with weights summing to 1 */
    for (int t = 0; t < 4; t++) {
        double sum = 0;
        for (int k = 0; k < 16; k++) sum += small->pos_interp_w[t * 16 + k];
        assert_true(fabs(sum - 1) < 1e-6);
    }
    assert_int_equal(mloc_model_set_backend(ctx, small, MLOC_BACKEND_REF), MLOC_OK);
    const int N = 3, D = cfg.embed_dim;
    float *x = malloc(N * 3 * 8 * 8 * sizeof(float)), g[3 * 8], y[3 * 8], dy[3 * 8];
    mloc_rng r;
    mloc_rng_init_tag(&r, 9, "test", 0, 0, 0);
    for (int k = 0; k < N * 3 * 64; k++) x[k] = (float)(2 * mloc_rng_uniform(&r) - 1);
    for (int k = 0; k < N * D; k++) g[k] = (float)(2 * mloc_rng_uniform(&r) - 1);
    /* every parameter random at a scale where the patch tokens reach the CLS
     * output (timm's 0.02 init barely mixes them), pos_embed included */
    for (int64_t k = 0; k < big->table.numel[MLOC_BLOCK_PARAM]; k++)
        big->store.param[k] = (float)(mloc_rng_uniform(&r) - 0.5);
    const int pe = mloc_table_find(&big->table, "pos_embed");
    assert_true(pe >= 0);
    const int64_t np = big->table.t[pe].numel;
    assert_int_equal(np, 17 * D);
    mloc_model_params_changed(small);
    mloc_model_zero_grad(big);
    assert_int_equal(mloc_model_forward(ctx, small, x, N, MLOC_MODE_TRAIN, -1), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, small, small->output, y), MLOC_OK);
    memcpy(dy, g, sizeof g);
    assert_int_equal(mloc_model_backward(ctx, small, small->output, dy), MLOC_OK);
    /* the CLS row (added as is) and the patch rows (through the interpolation),
     * each against its own gradient scale */
    for (int part = 0; part < 2; part++) {
        double scale;
        const int64_t from = part ? D : 0, n = part ? np - D : D;
        const double worst = fd_max_error(ctx, small, MLOC_MODE_EVAL, x, N, g, &big->table, &big->store, pe, from, n,
                                          1e-2f, &scale);
        printf("pos_embed %s: %lld entries, max |fd - grad| %.3g (largest grad %.3g)\n",
               part ? "patch rows, through the interpolation" : "CLS row", (long long)n, worst, scale);
        assert_true(scale > 1e-2);
        assert_true(worst < 1e-2 * scale);
    }
    free(x);
    mloc_model_free(small);
    mloc_model_free(same);
    mloc_model_free(big);
    mloc_ctx_destroy(ctx);
}

static void moments(const float *p, int64_t n, double *mean, double *sd, double *mx) {
    double s = 0, s2 = 0;
    *mx = 0;
    for (int64_t i = 0; i < n; i++) {
        s += p[i];
        s2 += (double)p[i] * p[i];
        *mx = fmax(*mx, fabs(p[i]));
    }
    *mean = s / n;
    *sd = sqrt(s2 / n - *mean * *mean);
}

static const float *tensor(const mloc_model *m, const char *name, int64_t *n) {
    int i = mloc_table_find(&m->table, name);
    if (i < 0) fail_msg("no tensor %s", name);
    *n = m->table.t[i].numel;
    return mloc_store_ptr(&m->store, &m->table, i);
}

/* timm's init_weights: trunc_normal(0.02) Linear weights and position
 * embeddings, zero Linear biases, cls_token N(0, 1e-6^2), LayerNorm 1 / 0,
 * the patch projection PyTorch's conv default; MAE's mask_token N(0, 0.02^2). */
static void test_init(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    mloc_model_config cfg = mloc_model_config_default();
    cfg.arch = "vit_tiny";
    cfg.head = MLOC_HEAD_MAE;
    mloc_model *a, *b;
    assert_int_equal(mloc_model_create(ctx, &a, &cfg), MLOC_OK);
    assert_int_equal(mloc_model_create(ctx, &b, &cfg), MLOC_OK);
    assert_memory_equal(a->store.param, b->store.param, a->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
    int64_t n;
    double mean, sd, mx;
    static const char *const normal02[] = {"blocks.3.attn.qkv.weight", "blocks.11.mlp.fc2.weight", "pos_embed",
                                           "decoder_pos_embed", "decoder_embed.weight", "decoder_pred.weight",
                                           "decoder_blocks.1.mlp.fc1.weight"};
    for (size_t k = 0; k < sizeof normal02 / sizeof *normal02; k++) {
        const float *p = tensor(a, normal02[k], &n);
        moments(p, n, &mean, &sd, &mx);
        printf("%s: mean %.5f sd %.5f max %.4f\n", normal02[k], mean, sd, mx);
        assert_true(fabs(sd - 0.02) < 0.02 * 0.05 && fabs(mean) < 0.002 && mx < 0.2);
    }
    const float *p = tensor(a, "cls_token", &n);
    moments(p, n, &mean, &sd, &mx);
    assert_true(mx > 0 && mx < 1e-5);
    p = tensor(a, "mask_token", &n);
    moments(p, n, &mean, &sd, &mx);
    assert_true(sd > 0.014 && sd < 0.026);
    static const char *const zeros[] = {"blocks.0.attn.qkv.bias", "blocks.5.mlp.fc1.bias", "norm.bias",
                                        "decoder_pred.bias", "blocks.2.norm1.bias"};
    for (size_t k = 0; k < sizeof zeros / sizeof *zeros; k++) {
        p = tensor(a, zeros[k], &n);
        for (int64_t i = 0; i < n; i++) assert_true(p[i] == 0.0f);
    }
    p = tensor(a, "blocks.7.norm2.weight", &n);
    for (int64_t i = 0; i < n; i++) assert_true(p[i] == 1.0f);
    /* patch_embed.proj: kaiming_uniform(a = sqrt 5), bound 1 / sqrt(3 * 4 * 4) */
    p = tensor(a, "patch_embed.proj.weight", &n);
    moments(p, n, &mean, &sd, &mx);
    const double bound = 1 / sqrt(48.0);
    assert_true(mx <= bound && mx > 0.98 * bound && fabs(sd - bound / sqrt(3)) < 0.05 * bound);
    p = tensor(a, "patch_embed.proj.bias", &n);
    moments(p, n, &mean, &sd, &mx);
    assert_true(mx <= bound && mx > 0.5 * bound);
    mloc_model_init_params(b, 99);
    assert_true(memcmp(a->store.param, b->store.param, 4096) != 0);
    mloc_model_free(a);
    mloc_model_free(b);
    mloc_ctx_destroy(ctx);
}

typedef struct {
    float *out, *grads, *taps;
    double loss;
} run_result;

/* Two training steps' gradients (NT-Xent on the SimCLR head, or the MAE loss
 * through the masked graph with fixed orders), then an eval forward reading
 * every tap, on backend be. */
static run_result run_backend(mloc_ctx *ctx, mloc_backend be, const mloc_model_config *cfg, int N, const float *x,
                              const int32_t *order, double mask_ratio) {
    run_result r;
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, cfg), MLOC_OK);
    assert_int_equal(mloc_model_set_backend(ctx, m, be), MLOC_OK);
    /* LayerNorm affine parameters and biases away from 1 / 0 */
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        float *p = mloc_store_ptr(&m->store, &m->table, i);
        if (e->role == MLOC_ROLE_NORM_WEIGHT) test_fill_uniform_f32(p, e->numel, 0.5f, 1.5f, 100 + i);
        if (e->role == MLOC_ROLE_NORM_BIAS || e->role == MLOC_ROLE_BIAS)
            test_fill_uniform_f32(p, e->numel, -0.2f, 0.2f, 100 + i);
    }
    mloc_model_params_changed(m);
    mloc_model_zero_grad(m);
    if (cfg->head == MLOC_HEAD_MAE) {
        mloc_mae_config mc = mloc_mae_config_default();
        mc.mask_ratio = mask_ratio;
        mloc_mae *a;
        assert_int_equal(mloc_mae_create(ctx, &a, m, &mc, N), MLOC_OK);
        for (int step = 0; step < 2; step++) {
            mloc_status st = mloc_mae_step_orders(ctx, a, x, order, N, &r.loss);
            if (st) fail_msg("mae step: %s", mloc_ctx_error(ctx));
        }
        mloc_model *t = mloc_mae_train_model(a);
        r.out = malloc((size_t)N * mloc_model_value_numel(t, t->output) * sizeof(float));
        assert_int_equal(mloc_model_read(ctx, t, t->output, r.out), MLOC_OK);
        mloc_mae_free(a);
    } else {
        const int64_t on = (int64_t)N * mloc_model_value_numel(m, m->output);
        r.out = malloc((size_t)on * sizeof(float));
        float *dz = malloc((size_t)on * sizeof(float));
        for (int step = 0; step < 2; step++) {
            mloc_status st = mloc_model_forward(ctx, m, x, N, MLOC_MODE_TRAIN, -1);
            if (st) fail_msg("forward: %s", mloc_ctx_error(ctx));
            assert_int_equal(mloc_model_read(ctx, m, m->output, r.out), MLOC_OK);
            r.loss = mloc_ntxent(dz, r.out, N, m->values[m->output].c, 0.5f);
            st = mloc_model_backward(ctx, m, m->output, dz);
            if (st) fail_msg("backward: %s", mloc_ctx_error(ctx));
        }
        free(dz);
    }
    const int64_t np = m->table.numel[MLOC_BLOCK_PARAM];
    r.grads = malloc((size_t)np * sizeof(float));
    memcpy(r.grads, m->store.grad, (size_t)np * sizeof(float));
    int64_t total = 0;
    for (int t = 0; t < m->n_taps; t++) total += (int64_t)N * mloc_model_value_numel(m, m->taps[t].value);
    r.taps = malloc((size_t)total * sizeof(float));
    assert_int_equal(mloc_model_forward(ctx, m, x, N, MLOC_MODE_EVAL, -1), MLOC_OK);
    float *p = r.taps;
    for (int t = 0; t < m->n_taps; t++) {
        assert_int_equal(mloc_model_read(ctx, m, m->taps[t].value, p), MLOC_OK);
        p += (int64_t)N * mloc_model_value_numel(m, m->taps[t].value);
    }
    mloc_model_free(m);
    return r;
}

static void compare_backends(const mloc_model_config *cfg, int N, double mask_ratio) {
    mloc_ctx *ctx = test_ctx(2);
    const int L = (cfg->image_h / cfg->patch_size) * (cfg->image_w / cfg->patch_size);
    const int64_t nx = (int64_t)N * cfg->in_channels * cfg->image_h * cfg->image_w;
    float *x = malloc((size_t)nx * sizeof(float));
    test_fill_uniform_f32(x, nx, -1, 1, 7);
    int32_t *order = malloc((size_t)N * L * sizeof(int32_t));
    int64_t samples[64];
    for (int n = 0; n < N; n++) samples[n] = 100 + n;
    mloc_mae_draw_orders(order, L, N, samples, 3, 11);
    run_result a = run_backend(ctx, MLOC_BACKEND_REF, cfg, N, x, order, mask_ratio);
    run_result b = run_backend(ctx, MLOC_BACKEND_DNNL, cfg, N, x, order, mask_ratio);
    mloc_model *m;
    assert_int_equal(mloc_model_create(ctx, &m, cfg), MLOC_OK);
    printf("loss ref %.9g dnnl %.9g\n", a.loss, b.loss);
    assert_true(fabs(a.loss - b.loss) <= 1e-5 * fabs(a.loss));
    int ok = 1;
    for (int i = 0; i < m->table.n; i++) {
        const mloc_tensor *e = &m->table.t[i];
        double scale = 0;
        for (int64_t k = 0; k < e->numel; k++) scale = fmax(scale, fabs(a.grads[e->offset + k]));
        ok &= test_close_f32(e->name, b.grads + e->offset, a.grads + e->offset, e->numel, 1e-4 * scale + 1e-7, 1e-3);
    }
    float *p1 = a.taps, *p2 = b.taps;
    for (int t = 0; t < m->n_taps; t++) {
        int64_t n = (int64_t)N * mloc_model_value_numel(m, m->taps[t].value);
        ok &= test_close_f32(m->taps[t].name, p2, p1, n, 1e-4, 1e-3);
        p1 += n;
        p2 += n;
    }
    assert_true(ok);
    mloc_model_free(m);
    free(a.out);
    free(a.grads);
    free(a.taps);
    free(b.out);
    free(b.grads);
    free(b.taps);
    free(x);
    free(order);
    mloc_ctx_destroy(ctx);
}

static void test_dnnl_matches_ref_simclr(void **state) {
    (void)state;
    mloc_model_config cfg = tiny_cfg(MLOC_HEAD_SIMCLR);
    compare_backends(&cfg, 6, 0);
}

static void test_dnnl_matches_ref_mae(void **state) {
    (void)state;
    mloc_model_config cfg = tiny_cfg(MLOC_HEAD_MAE);
    cfg.in_channels = 1; /* a gray MAE: patches of 16 values */
    compare_backends(&cfg, 5, 0.75);
}

/* A partial eval forward gives the early taps without running the rest, and
 * a smaller eval batch than planned gives the same rows, on both backends. */
static void test_partial_and_small_batch(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    for (int be = 0; be < 2; be++) {
        mloc_model_config cfg = tiny_cfg(MLOC_HEAD_MAE);
        mloc_model *m;
        assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
        assert_int_equal(mloc_model_set_backend(ctx, m, be ? MLOC_BACKEND_DNNL : MLOC_BACKEND_REF), MLOC_OK);
        assert_int_equal(mloc_model_plan(ctx, m, 6), MLOC_OK);
        float x[6 * 3 * 16 * 16];
        test_fill_uniform_f32(x, 6 * 3 * 16 * 16, -1, 1, 3);
        int tap = m->taps[mloc_model_find_tap(m, "blocks.0.mlp.act")].value;
        int64_t n = mloc_model_value_numel(m, tap), nf = mloc_model_value_numel(m, m->feature);
        float *full = malloc(6 * n * sizeof(float)), *part = malloc(6 * n * sizeof(float));
        float *f6 = malloc(6 * nf * sizeof(float)), *f2 = malloc(2 * nf * sizeof(float));
        assert_int_equal(mloc_model_forward(ctx, m, x, 6, MLOC_MODE_EVAL, m->feature), MLOC_OK);
        assert_int_equal(mloc_model_read(ctx, m, tap, full), MLOC_OK);
        assert_int_equal(mloc_model_read(ctx, m, m->feature, f6), MLOC_OK);
        /* the decoder did not run */
        assert_int_equal(mloc_model_read(ctx, m, m->output, part), MLOC_ERR_USAGE);
        assert_int_equal(mloc_model_forward(ctx, m, x, 3, MLOC_MODE_EVAL, tap), MLOC_OK);
        assert_int_equal(mloc_model_read(ctx, m, tap, part), MLOC_OK);
        assert_memory_equal(full, part, 3 * n * sizeof(float));
        assert_int_equal(mloc_model_forward(ctx, m, x, 2, MLOC_MODE_EVAL, m->feature), MLOC_OK);
        assert_int_equal(mloc_model_read(ctx, m, m->feature, f2), MLOC_OK);
        assert_memory_equal(f6, f2, 2 * nf * sizeof(float));
        free(full);
        free(part);
        free(f6);
        free(f2);
        mloc_model_free(m);
    }
    mloc_ctx_destroy(ctx);
}

/* Weights files: memloc metadata round trip; a file of timm / MAE names
 * without metadata gives the architecture back from its tensors. */
static void test_weights(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(1);
    const char *dir = test_tmpdir("vit_weights");
    char path[1024], plain[1024];
    snprintf(path, sizeof path, "%s/mae.safetensors", dir);
    snprintf(plain, sizeof plain, "%s/timm.safetensors", dir);
    mloc_model_config cfg = tiny_cfg(MLOC_HEAD_MAE);
    cfg.heads = 4;
    mloc_model *m, *r;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    mloc_model_init_params(m, 5);
    assert_int_equal(mloc_model_save(ctx, m, path, -1, NULL), MLOC_OK);
    assert_int_equal(mloc_model_open(ctx, &r, path, -1), MLOC_OK);
    assert_string_equal(r->arch, "vit_tiny");
    assert_int_equal(r->cfg.head, MLOC_HEAD_MAE);
    assert_int_equal(r->cfg.embed_dim, 32);
    assert_int_equal(r->cfg.depth, 2);
    assert_int_equal(r->cfg.heads, 4);
    assert_int_equal(r->cfg.decoder_dim, 16);
    assert_int_equal(r->cfg.image_h, 16);
    assert_int_equal(r->table.numel[MLOC_BLOCK_PARAM], m->table.numel[MLOC_BLOCK_PARAM]);
    assert_memory_equal(r->store.param, m->store.param, m->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
    mloc_model_free(r);

    /* no metadata: timm names; width 128 / 64 = 2 heads, depth from blocks.i */
    mloc_model_free(m);
    cfg = tiny_cfg(MLOC_HEAD_CLASSIFIER);
    cfg.embed_dim = 128;
    cfg.heads = 2;
    cfg.depth = 3;
    cfg.image_h = cfg.image_w = 24;
    cfg.head_out = 7;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    mloc_st_writer *w;
    assert_int_equal(mloc_st_writer_create(ctx, &w), MLOC_OK);
    assert_int_equal(mloc_table_add_to_writer(w, &m->table, &m->store, -1), MLOC_OK);
    assert_int_equal(mloc_st_writer_save(w, plain), MLOC_OK);
    mloc_st_writer_free(w);
    assert_int_equal(mloc_model_open(ctx, &r, plain, -1), MLOC_OK);
    assert_string_equal(r->arch, "vit_tiny");
    assert_int_equal(r->cfg.image_h, 24);
    assert_int_equal(r->cfg.patch_size, 4);
    assert_int_equal(r->cfg.depth, 3);
    assert_int_equal(r->cfg.heads, 2);
    assert_int_equal(r->cfg.head, MLOC_HEAD_CLASSIFIER);
    assert_int_equal(r->cfg.head_out, 7);
    assert_memory_equal(r->store.param, m->store.param, m->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
    mloc_model_free(r);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
}

/* The masks: permutations, a function of (seed, epoch, sample) only. */
static void test_mae_orders(void **state) {
    (void)state;
    enum { L = 64, n = 4 };
    int32_t a[n * L], b[n * L], c[n * L];
    int64_t s1[n] = {5, 9, 13, 700}, s2[n] = {700, 9, 1, 2};
    mloc_mae_draw_orders(a, L, n, s1, 0, 42);
    mloc_mae_draw_orders(b, L, n, s2, 0, 42);
    assert_memory_equal(a + 3 * L, b, L * sizeof(int32_t));      /* sample 700 */
    assert_memory_equal(a + 1 * L, b + L, L * sizeof(int32_t));  /* sample 9 */
    assert_true(memcmp(a, a + L, L * sizeof(int32_t)) != 0);
    mloc_mae_draw_orders(c, L, n, s1, 1, 42);
    assert_true(memcmp(a, c, L * sizeof(int32_t)) != 0);
    mloc_mae_draw_orders(c, L, n, s1, 0, 43);
    assert_true(memcmp(a, c, L * sizeof(int32_t)) != 0);
    for (int i = 0; i < n; i++) {
        int seen[L] = {0};
        for (int j = 0; j < L; j++) seen[a[i * L + j]]++;
        for (int j = 0; j < L; j++) assert_int_equal(seen[j], 1);
    }
}

/* The loss by hand: 1 image of 1 channel, 4 x 4, patch 2 (4 patches of 4
 * pixels), 1 visible; pred 0 and without norm_pix the loss is the mean over
 * the 3 masked patches of mean(t^2); with norm_pix every standardised patch
 * has mean(t^2) = (K-1)/K var / (var + 1e-6). */
static void test_mae_loss(void **state) {
    (void)state;
    float x[16], pred[5 * 4] = {0}, dpred[5 * 4];
    for (int i = 0; i < 16; i++) x[i] = (float)(i % 5) - 1.5f;
    int32_t order[4] = {2, 0, 3, 1};
    double want = 0;
    for (int j = 1; j < 4; j++) {
        int l = order[j], y0 = (l / 2) * 2, x0 = (l % 2) * 2;
        double s = 0;
        for (int p = 0; p < 2; p++)
            for (int q = 0; q < 2; q++) s += (double)x[(y0 + p) * 4 + x0 + q] * x[(y0 + p) * 4 + x0 + q];
        want += s / 4 / 3;
    }
    double loss = mloc_mae_loss(dpred, pred, x, order, 1, 1, 4, 4, 2, 1, 0);
    assert_true(fabs(loss - want) < 1e-12);
    /* row 0 (CLS) and the visible patch 2 get no gradient; patch 0's pixel (1, 1) is x[5] */
    for (int k = 0; k < 4; k++) assert_true(dpred[k] == 0.0f && dpred[(1 + 2) * 4 + k] == 0.0f);
    assert_true(fabs(dpred[(1 + 0) * 4 + 3] - 2 * (0 - x[5]) / (4 * 3.0)) < 1e-7);
    loss = mloc_mae_loss(NULL, pred, x, order, 1, 1, 4, 4, 2, 1, 1);
    want = 0;
    for (int j = 1; j < 4; j++) {
        int l = order[j], y0 = (l / 2) * 2, x0 = (l % 2) * 2;
        double m = 0, v = 0, t[4];
        for (int k = 0; k < 4; k++) m += (t[k] = x[(y0 + k / 2) * 4 + x0 + k % 2]) / 4;
        for (int k = 0; k < 4; k++) v += (t[k] - m) * (t[k] - m) / 3;
        want += 0.75 * v / (v + 1e-6) / 3;
    }
    assert_true(fabs(loss - want) < 1e-9);
}

/* UnitMem's unit activation for token taps: the mean over the tokens of
 * each feature, negative elements reported unless abs. */
static void test_token_mean(void **state) {
    (void)state;
    /* 2 samples, 3 tokens, 2 features */
    const float x[12] = {1, 2, 3, 4, 5, 6, /* sample 1: */ 0, -1, 2, 1, 4, 3};
    double act[4];
    int64_t ni;
    int nu;
    float nv;
    mloc_metrics_token_mean(act, x, 2, 3, 2, 0, &ni, &nu, &nv);
    assert_true(act[0] == 3 && act[1] == 4 && act[2] == 2 && act[3] == 1);
    assert_int_equal(ni, 1);
    assert_int_equal(nu, 1);
    assert_true(nv == -1.0f);
    mloc_metrics_token_mean(act, x, 2, 3, 2, 1, &ni, &nu, &nv);
    assert_int_equal(ni, -1);
    assert_true(act[2] == 2 && fabs(act[3] - 5.0 / 3) < 1e-15);
}

/* Drop-path (cfg.drop_path, timm's stochastic depth) on a 2-block ViT, rate
 * 0.5 (block 1's two branches at 0.5):
 *   - the draw: scales 0 or 1 / (1 - p), about half kept, the same for the
 *     same (seed, step), another for the next step; a model over the same
 *     store draws its own (another stream);
 *   - eval mode is the model without drop-path, bitwise;
 *   - with given scales, the gradients of the dropped branches' Linear
 *     tensors against central differences of L = sum(g . cls). */
static void test_drop_path(void **state) {
    (void)state;
    mloc_ctx *ctx = test_ctx(2);
    mloc_model_config cfg = tiny_cfg(MLOC_HEAD_NONE);
    cfg.embed_dim = 8;
    mloc_model *m, *plain, *twin;
    cfg.drop_path = 0.5;
    assert_int_equal(mloc_model_create(ctx, &m, &cfg), MLOC_OK);
    assert_int_equal(m->n_drop, 2); /* block 0's rate is 0 */
    assert_int_equal(mloc_model_create_shared(ctx, &twin, &cfg, m), MLOC_OK);
    cfg.drop_path = 0;
    assert_int_equal(mloc_model_create(ctx, &plain, &cfg), MLOC_OK);
    assert_int_equal(plain->n_drop, 0);
    memcpy(plain->store.param, m->store.param, (size_t)m->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
    assert_int_equal(mloc_model_set_backend(ctx, m, MLOC_BACKEND_REF), MLOC_OK);
    assert_int_equal(mloc_model_set_backend(ctx, twin, MLOC_BACKEND_REF), MLOC_OK);
    assert_int_equal(mloc_model_set_backend(ctx, plain, MLOC_BACKEND_REF), MLOC_OK);
    enum { N = 64 };
    const int S = cfg.image_h, D = cfg.embed_dim;
    float *x = malloc((size_t)N * 3 * S * S * sizeof(float)), *y = malloc(N * D * sizeof(float)),
          *y2 = malloc(N * D * sizeof(float)), first[2 * N], g[4 * 8], dy[4 * 8];
    mloc_rng r;
    mloc_rng_init_tag(&r, 3, "test", 0, 0, 0);
    for (int k = 0; k < N * 3 * S * S; k++) x[k] = (float)(2 * mloc_rng_uniform(&r) - 1);
    mloc_model_set_drop_step(m, 1, 7);
    assert_int_equal(mloc_model_forward(ctx, m, x, N, MLOC_MODE_TRAIN, -1), MLOC_OK);
    int kept = 0;
    for (int k = 0; k < 2; k++)
        for (int n = 0; n < N; n++) {
            const float sc = m->drop_scale[k * m->drop_cap + n];
            assert_true(sc == 0.0f || sc == 2.0f);
            kept += sc > 0;
            first[k * N + n] = sc;
        }
    printf("drop-path 0.5: %d of %d branches kept\n", kept, 2 * N);
    assert_true(kept > 40 && kept < 88);
    assert_int_equal(mloc_model_forward(ctx, m, x, N, MLOC_MODE_TRAIN, -1), MLOC_OK);
    for (int k = 0; k < 2; k++) assert_memory_equal(m->drop_scale + k * m->drop_cap, first + k * N, N * sizeof(float));
    assert_int_equal(mloc_model_forward(ctx, twin, x, N, MLOC_MODE_TRAIN, -1), MLOC_OK);
    assert_memory_not_equal(twin->drop_scale, first, N * sizeof(float));
    mloc_model_set_drop_step(m, 1, 8);
    assert_int_equal(mloc_model_forward(ctx, m, x, N, MLOC_MODE_TRAIN, -1), MLOC_OK);
    assert_memory_not_equal(m->drop_scale, first, N * sizeof(float));
    /* eval: no drop-path */
    assert_int_equal(mloc_model_forward(ctx, m, x, N, MLOC_MODE_EVAL, -1), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, m, m->output, y), MLOC_OK);
    assert_int_equal(mloc_model_forward(ctx, plain, x, N, MLOC_MODE_EVAL, -1), MLOC_OK);
    assert_int_equal(mloc_model_read(ctx, plain, plain->output, y2), MLOC_OK);
    assert_memory_equal(y, y2, N * D * sizeof(float));
    /* gradients through given scales: sample 0 keeps both branches, 1 drops the
     * attention, 2 the MLP, 3 both */
    const int B = 4;
    const float sc[2 * 4] = {2, 0, 2, 0, 2, 2, 0, 0};
    assert_int_equal(mloc_model_set_drop_scales(ctx, m, sc, B), MLOC_OK);
    for (int k = 0; k < B * D; k++) g[k] = (float)(2 * mloc_rng_uniform(&r) - 1);
    mloc_model_zero_grad(m);
    assert_int_equal(mloc_model_forward(ctx, m, x, B, MLOC_MODE_TRAIN, -1), MLOC_OK);
    memcpy(dy, g, sizeof dy);
    assert_int_equal(mloc_model_backward(ctx, m, m->output, dy), MLOC_OK);
    const char *names[] = {"blocks.1.attn.proj.weight", "blocks.1.attn.proj.bias", "blocks.1.mlp.fc2.weight",
                           "blocks.1.mlp.fc1.bias", "blocks.1.attn.qkv.weight"};
    for (int t = 0; t < 5; t++) {
        const int e = mloc_table_find(&m->table, names[t]);
        assert_true(e >= 0);
        const int64_t n = m->table.t[e].numel < 24 ? m->table.t[e].numel : 24;
        double scale;
        const double worst =
            fd_max_error(ctx, m, MLOC_MODE_TRAIN, x, B, g, &m->table, &m->store, e, 0, n, 1e-3f, &scale);
        printf("%s: max |fd - grad| %.3g (largest grad %.3g)\n", names[t], worst, scale);
        assert_true(scale > 1e-3);
        assert_true(worst < 2e-2 * scale);
    }
    free(x), free(y), free(y2);
    mloc_model_free(twin);
    mloc_model_free(m);
    mloc_model_free(plain);
    mloc_ctx_destroy(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_dnnl_matches_ref_simclr),
        cmocka_unit_test(test_dnnl_matches_ref_mae),
        cmocka_unit_test(test_partial_and_small_batch),
        cmocka_unit_test(test_weights),
        cmocka_unit_test(test_mae_orders),
        cmocka_unit_test(test_mae_loss),
        cmocka_unit_test(test_token_mean),
        cmocka_unit_test(test_pos_interpolation),
        cmocka_unit_test(test_drop_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
