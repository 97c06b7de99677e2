/* ViT benchmarks (issue 8, Performance), fp32, ViT-Tiny (width 192, depth
 * 12, 3 heads) on 3x32x32 with patch 4 (64 patches):
 *   mae    one MAE step: masks drawn, encoder on the 16 visible patches,
 *          decoder (width 128, depth 2, 4 heads) on all 65 tokens, the
 *          normalised-pixel loss, backward, Adam -> images/s
 *   eval   eval-mode forward of B images returning every tap (36 token taps
 *          and the CLS feature) -> images/s
 * The PyTorch peer (bench/peer_vit.py) runs the same shapes.
 *   bench_vit [--threads T] [--batch B] [--reps R] [--only mae|eval]
 *             [--backend dnnl|ref] [--profile]
 * --profile prints seconds per step by op (training forward and backward of
 * the masked graph, eval forward). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memloc/model.h"
#include "memloc/optim.h"
#include "memloc/rng.h"
#include "memloc/ssl.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define CHECK(x)                                                                   \
    do {                                                                           \
        if ((x) != MLOC_OK) {                                                      \
            fprintf(stderr, "bench_vit: %s: %s\n", #x, mloc_ctx_error(ctx));       \
            return 1;                                                              \
        }                                                                          \
    } while (0)

/* seconds per call summed by op over m's nodes */
static void print_profile(mloc_ctx *ctx, const mloc_model *m, const char *what, int calls) {
    double *tf = calloc(m->n_nodes, sizeof(double)), *ef = calloc(m->n_nodes, sizeof(double)),
           *bw = calloc(m->n_nodes, sizeof(double));
    if (mloc_model_profile(ctx, m, tf, ef, bw) != MLOC_OK) return;
    double op_t[MLOC_OP_COUNT][3] = {{0}}, tot[3] = {0};
    for (int i = 0; i < m->n_nodes; i++) {
        const double v[3] = {tf[i] / calls, bw[i] / calls, ef[i] / calls};
        for (int k = 0; k < 3; k++) {
            op_t[m->nodes[i].op][k] += v[k];
            tot[k] += v[k];
        }
    }
    printf("%s profile (ms per call)\n%-16s %10s %10s %10s\n", what, "op", "train_fwd", "backward", "eval_fwd");
    for (int o = 0; o < MLOC_OP_COUNT; o++)
        if (op_t[o][0] + op_t[o][1] + op_t[o][2] > 0)
            printf("%-16s %10.2f %10.2f %10.2f\n", mloc_op_name((mloc_op)o), 1e3 * op_t[o][0], 1e3 * op_t[o][1],
                   1e3 * op_t[o][2]);
    printf("%-16s %10.2f %10.2f %10.2f\n", "total", 1e3 * tot[0], 1e3 * tot[1], 1e3 * tot[2]);
    free(tf);
    free(ef);
    free(bw);
}

int main(int argc, char **argv) {
    int threads = 2, B = 128, reps = 7, profile = 0;
    const char *what = "all";
    mloc_backend backend = MLOC_BACKEND_DNNL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) what = argv[++i];
        else if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc)
            backend = !strcmp(argv[++i], "ref") ? MLOC_BACKEND_REF : MLOC_BACKEND_DNNL;
        else {
            fprintf(stderr, "usage: bench_vit [--threads T] [--batch B] [--reps R] [--only mae|eval] "
                            "[--backend dnnl|ref] [--profile]\n");
            return 64;
        }
    }
    if (reps > 64) reps = 64;
    mloc_ctx_config cc = mloc_ctx_config_default();
    cc.threads = threads;
    cc.backend = backend;
    mloc_ctx *ctx;
    if (mloc_ctx_create(&ctx, &cc) != MLOC_OK) return 1;
    mloc_model_config cfg = mloc_model_config_default();
    cfg.arch = "vit_tiny";
    cfg.patch_size = 4;
    cfg.head = MLOC_HEAD_MAE;
    mloc_model *m;
    CHECK(mloc_model_create(ctx, &m, &cfg));
    CHECK(mloc_model_plan(ctx, m, B));
    float *x = malloc((size_t)B * 3 * 32 * 32 * sizeof(float));
    int64_t *samples = malloc((size_t)B * sizeof(int64_t));
    mloc_rng r;
    mloc_rng_init(&r, 1, 2);
    for (int64_t i = 0; i < (int64_t)B * 3 * 32 * 32; i++) x[i] = 2 * mloc_rng_uniformf(&r) - 1;
    double t[64];

    if (!strcmp(what, "all") || !strcmp(what, "mae")) {
        mloc_mae_config ac = mloc_mae_config_default();
        mloc_mae *mae;
        CHECK(mloc_mae_create(ctx, &mae, m, &ac, B));
        mloc_model_set_backend(ctx, mloc_mae_train_model(mae), backend);
        mloc_mae_train_model(mae)->profile = profile;
        mloc_optim_config oc = mloc_optim_config_default(MLOC_OPTIM_ADAMW);
        oc.weight_decay = 0.05;
        mloc_optim *opt;
        CHECK(mloc_optim_create(ctx, &opt, &m->table, &oc));
        double loss = 0;
        for (int k = -2; k < reps; k++) {
            for (int i = 0; i < B; i++) samples[i] = (int64_t)(k + 2) * B + i;
            double t0 = now();
            mloc_optim_zero_grad(opt, &m->store);
            CHECK(mloc_mae_step(ctx, mae, x, samples, B, 0, &loss));
            CHECK(mloc_optim_step(opt, &m->store, 1.5e-4));
            mloc_model_params_changed(m);
            if (k >= 0) t[k] = now() - t0;
        }
        double med = median(t, reps);
        printf("mae step: %d images (%d of 64 patches visible), median %.4f s (min %.4f, max %.4f) over %d reps, "
               "loss %.4f\n", B, mloc_mae_keep(mae), med, t[0], t[reps - 1], reps, loss);
        printf("bench vit_tiny_mae memloc=%.1f unit=images/s\n", B / med);
        if (profile) print_profile(ctx, mloc_mae_train_model(mae), "mae step", reps + 2);
        mloc_optim_free(opt);
        mloc_mae_free(mae);
    }
    if (!strcmp(what, "all") || !strcmp(what, "eval")) {
        m->profile = profile;
        int64_t total = 0;
        for (int i = 0; i < m->n_taps; i++) total += (int64_t)B * mloc_model_value_numel(m, m->taps[i].value);
        float *taps = malloc((size_t)total * sizeof(float));
        for (int k = -2; k < reps; k++) {
            double t0 = now();
            CHECK(mloc_model_forward(ctx, m, x, B, MLOC_MODE_EVAL, m->feature));
            float *p = taps;
            for (int i = 0; i < m->n_taps; i++) {
                CHECK(mloc_model_read(ctx, m, m->taps[i].value, p));
                p += (int64_t)B * mloc_model_value_numel(m, m->taps[i].value);
            }
            if (k >= 0) t[k] = now() - t0;
        }
        double med = median(t, reps);
        printf("eval forward (all %d taps): %d images, median %.4f s (min %.4f, max %.4f)\n", m->n_taps, B, med,
               t[0], t[reps - 1]);
        printf("bench vit_tiny_eval memloc=%.1f unit=images/s\n", B / med);
        if (profile) print_profile(ctx, m, "eval", reps + 2);
        free(taps);
    }
    free(x);
    free(samples);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
    return 0;
}
