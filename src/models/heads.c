/* Heads of the SSL methods beyond SimCLR (the layouts are in model.h):
 *
 * SimSiam (Chen & He 2021) as solo-learn's solo/methods/simsiam.py, with
 * head_hidden / head_out / pred_hidden for its proj_hidden_dim /
 * proj_output_dim / pred_hidden_dim:
 *   projector  Linear(F, H, bias=False) BN ReLU  Linear(H, H, bias=False) BN ReLU
 *              Linear(H, D, bias=False) BN                              -> z
 *   predictor  Linear(D, P, bias=False) BN ReLU  Linear(P, D)           -> p
 * Deviations: solo-learn's projector.6 has a bias that it freezes (a bias in
 * front of a BN does nothing); memloc builds it without one. Its last BN is
 * affine=False; memloc's graph BN always has gamma/beta, so projector.7 has
 * them (trainable, init 1 / 0), as the reference CIFAR SimSiam of
 * PatrickHua/SimSiam (projection_MLP layer3) does.
 *
 * DINO (Caron et al. 2021) as facebookresearch/dino vision_transformer.py
 * DINOHead(in_dim=C, out_dim=K, use_bn=False, norm_last_layer=True,
 * nlayers=3, hidden_dim=H, bottleneck_dim=Bn):
 *   mlp.0 Linear(C, H) GELU  mlp.2 Linear(H, H) GELU  mlp.4 Linear(H, Bn)
 *   or, with head_bn (use_bn=True): mlp.0 Linear(C, H) mlp.1 BN GELU
 *   mlp.3 Linear(H, H) mlp.4 BN GELU mlp.6 Linear(H, Bn)
 *   x = F.normalize(x, dim=-1)
 *   last_layer = weight_norm(Linear(Bn, K, bias=False)), g fixed at 1
 * The graph ends at the global average pool of the encoder's last map (as
 * DINO's ResNet backbone with fc = Identity); the head runs in src/ssl/dino.c
 * because GELU, the L2 normalisation and weight_norm are not graph ops. */
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "memloc/rng.h"

static int add_tensor(mloc_builder *b, const char *name, mloc_role role, int ndim, int64_t d0, int64_t d1) {
    if (b->failed) return -1;
    int64_t shape[2] = {d0, d1};
    int i = mloc_table_add(&b->m->table, name, role, MLOC_GROUP_HEAD, b->module, ndim, shape);
    if (i < 0) b->failed = 1;
    return i;
}

/* Linear(no bias) -> BN [-> ReLU], the SimSiam MLP layer: (N, I) -> (N, O). */
static int linear_bn(mloc_builder *b, const char *mod, int first, int in, int out, int relu) {
    char path[64];
    snprintf(path, sizeof path, "%s.%d", mod, first);
    int v = mloc_build_linear(b, path, in, out, 0);
    snprintf(path, sizeof path, "%s.%d", mod, first + 1);
    v = mloc_build_bn(b, path, v);
    if (!relu) return v;
    snprintf(path, sizeof path, "%s.%d", mod, first + 2);
    return mloc_build_relu(b, path, v);
}

mloc_status mloc_build_ssl_head(mloc_ctx *ctx, mloc_builder *b, int feature, int map, int *output) {
    mloc_model *m = b->m;
    const mloc_model_config *cfg = &m->cfg;
    b->group = MLOC_GROUP_HEAD;
    if (cfg->head == MLOC_HEAD_SIMSIAM) {
        if (cfg->head_hidden < 1 || cfg->pred_hidden < 1)
            return mloc_error(ctx, MLOC_ERR_USAGE, "simsiam head: projector hidden %d, predictor hidden %d: expected >= 1",
                              cfg->head_hidden, cfg->pred_hidden);
        mloc_build_module(b, "projector");
        int h = linear_bn(b, "projector", 0, feature, cfg->head_hidden, 1);
        h = linear_bn(b, "projector", 3, h, cfg->head_hidden, 1);
        int z = linear_bn(b, "projector", 6, h, cfg->head_out, 0);
        mloc_build_module(b, "predictor");
        h = linear_bn(b, "predictor", 0, z, cfg->pred_hidden, 1);
        *output = mloc_build_linear(b, "predictor.3", h, cfg->head_out, 1);
    } else if (cfg->head == MLOC_HEAD_DINO) {
        if (cfg->head_hidden < 1 || cfg->head_bottleneck < 1)
            return mloc_error(ctx, MLOC_ERR_USAGE, "dino head: hidden %d, bottleneck %d: expected >= 1",
                              cfg->head_hidden, cfg->head_bottleneck);
        mloc_build_module(b, "head");
        int pooled = mloc_build_avgpool_global(b, "head.pool", map);
        if (pooled < 0) return mloc_error(ctx, MLOC_ERR_NOMEM, "dino head: out of memory building the graph");
        const int64_t C = m->values[pooled].c, H = cfg->head_hidden, Bn = cfg->head_bottleneck, K = cfg->head_out;
        const int bn = cfg->head_bn != 0, step = bn ? 3 : 2; /* Linear [BN] GELU */
        for (int l = 0; l < 3; l++) {
            char name[64];
            const int64_t out = l < 2 ? H : Bn, in = l ? H : C;
            snprintf(name, sizeof name, "head.mlp.%d.weight", l * step);
            add_tensor(b, name, MLOC_ROLE_WEIGHT, 2, out, in);
            snprintf(name, sizeof name, "head.mlp.%d.bias", l * step);
            add_tensor(b, name, MLOC_ROLE_BIAS, 1, out, 0);
            if (!bn || l == 2) continue;
            static const struct { const char *leaf; mloc_role role; int ndim; } bnt[] = {
                {"weight", MLOC_ROLE_NORM_WEIGHT, 1},       {"bias", MLOC_ROLE_NORM_BIAS, 1},
                {"running_mean", MLOC_ROLE_RUNNING_MEAN, 1}, {"running_var", MLOC_ROLE_RUNNING_VAR, 1},
                {"num_batches_tracked", MLOC_ROLE_NUM_BATCHES, 0}};
            for (int k = 0; k < 5; k++) {
                snprintf(name, sizeof name, "head.mlp.%d.%s", l * step + 1, bnt[k].leaf);
                add_tensor(b, name, bnt[k].role, bnt[k].ndim, H, 0);
            }
        }
        add_tensor(b, "head.last_layer.weight_g", MLOC_ROLE_NORM_WEIGHT, 2, K, 1);
        add_tensor(b, "head.last_layer.weight_v", MLOC_ROLE_WEIGHT, 2, K, Bn);
        *output = pooled;
    } else {
        return mloc_error(ctx, MLOC_ERR_INTERNAL, "ssl head: head kind %d is not built here", (int)cfg->head);
    }
    if (b->failed) return mloc_error(ctx, MLOC_ERR_NOMEM, "%s head: out of memory building the graph",
                                     mloc_head_name(cfg->head));
    return MLOC_OK;
}

void mloc_ssl_head_init(mloc_model *m, uint64_t seed) {
    if (m->cfg.head != MLOC_HEAD_DINO) return;
    const mloc_table *tab = &m->table;
    for (int i = 0; i < tab->n; i++) {
        const mloc_tensor *e = &tab->t[i];
        if (strncmp(e->name, "head.", 5) != 0) continue;
        float *p = mloc_store_ptr(&m->store, tab, i);
        if (strncmp(e->name, "head.mlp.", 9) == 0 && e->role == MLOC_ROLE_WEIGHT) {
            mloc_rng r;
            mloc_rng_init_tag(&r, seed, "dino_init", (uint64_t)i, 0, 0);
            for (int64_t k = 0; k < e->numel; k++) p[k] = (float)(0.02 * mloc_rng_normal(&r));
        } else if (strncmp(e->name, "head.mlp.", 9) == 0 && e->role == MLOC_ROLE_BIAS) {
            memset(p, 0, (size_t)e->numel * sizeof *p); /* BN tensors keep their defaults */
        } else if (strcmp(e->name, "head.last_layer.weight_g") == 0) {
            for (int64_t k = 0; k < e->numel; k++) p[k] = 1.0f;
        }
    }
}
