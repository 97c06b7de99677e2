/* Encoder benchmarks, fp32, on 3x32x32 with the SimCLR head:
 *   train   one SimCLR step: two views of B images, forward, NT-Xent,
 *           backward, Adam -> views/s
 *   eval    eval-mode forward of B images returning every tap as NCHW -> images/s
 * The PyTorch peer (bench/peer_encoder.py) runs the same shapes.
 *   bench_encoder [--arch resnet9|resnet18|...] [--threads T] [--batch B] [--reps R]
 *                 [--only train|eval] [--backend dnnl|ref] [--profile]
 * Default batch: 256 for resnet9 (512 views, the reference setup), 128 otherwise.
 * ResNets use the CIFAR stem. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "memloc/model.h"
#include "memloc/nn.h"
#include "memloc/optim.h"
#include "memloc/rng.h"

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
            fprintf(stderr, "bench_encoder: %s: %s\n", #x, mloc_ctx_error(ctx));   \
            return 1;                                                              \
        }                                                                          \
    } while (0)

int main(int argc, char **argv) {
    int threads = 2, B = 0, reps = 7, profile = 0;
    const char *arch = "resnet9";
    const char *what = "all";
    mloc_backend backend = MLOC_BACKEND_DNNL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) what = argv[++i];
        else if (!strcmp(argv[i], "--profile")) profile = 1;
        else if (!strcmp(argv[i], "--arch") && i + 1 < argc) arch = argv[++i];
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc)
            backend = !strcmp(argv[++i], "ref") ? MLOC_BACKEND_REF : MLOC_BACKEND_DNNL;
        else {
            fprintf(stderr, "usage: bench_encoder [--arch A] [--threads T] [--batch B] [--reps R] [--only train|eval] "
                            "[--backend dnnl|ref] [--profile]\n");
            return 64;
        }
    }
    mloc_ctx_config cc = mloc_ctx_config_default();
    cc.threads = threads;
    cc.backend = backend;
    mloc_ctx *ctx;
    if (mloc_ctx_create(&ctx, &cc) != MLOC_OK) return 1;
    mloc_model *m;
    mloc_model_config cfg = mloc_model_config_default();
    cfg.arch = arch;
    cfg.stem = MLOC_STEM_CIFAR;
    if (B == 0) B = strcmp(arch, "resnet9") ? 128 : 256;
    CHECK(mloc_model_create(ctx, &m, &cfg));
    const int V = 2 * B;
    CHECK(mloc_model_plan(ctx, m, V));
    m->profile = profile;
    float *x = malloc((size_t)V * 3 * 32 * 32 * sizeof(float));
    mloc_rng r;
    mloc_rng_init(&r, 1, 2);
    for (int64_t i = 0; i < (int64_t)V * 3 * 32 * 32; i++) x[i] = 2 * mloc_rng_uniformf(&r) - 1;
    const int D = m->values[m->output].c;
    float *z = malloc((size_t)V * D * sizeof(float)), *dz = malloc((size_t)V * D * sizeof(float));
    double t[64];
    if (reps > 64) reps = 64;

    if (!strcmp(what, "all") || !strcmp(what, "train")) {
        mloc_optim_config oc = mloc_optim_config_default(MLOC_OPTIM_ADAM);
        oc.weight_decay = 1e-6;
        mloc_optim *opt;
        CHECK(mloc_optim_create(ctx, &opt, &m->table, &oc));
        double loss = 0;
        for (int k = -2; k < reps; k++) {
            double t0 = now();
            mloc_optim_zero_grad(opt, &m->store);
            CHECK(mloc_model_forward(ctx, m, x, V, MLOC_MODE_TRAIN, -1));
            CHECK(mloc_model_read(ctx, m, m->output, z));
            loss = mloc_ntxent(dz, z, V, D, 0.5f);
            CHECK(mloc_model_backward(ctx, m, m->output, dz));
            CHECK(mloc_optim_step(opt, &m->store, 1e-3));
            mloc_model_params_changed(m);
            if (k >= 0) t[k] = now() - t0;
        }
        double med = median(t, reps);
        printf("train step: %d views, median %.4f s (min %.4f, max %.4f) over %d reps, loss %.4f\n", V, med,
               t[0], t[reps - 1], reps, loss);
        printf("bench %s_train memloc=%.1f unit=views/s\n", arch, V / med);
        mloc_optim_free(opt);
    }
    if (!strcmp(what, "all") || !strcmp(what, "eval")) {
        /* a model planned for the eval batch (a larger plan would pad) */
        mloc_model *me;
        CHECK(mloc_model_create(ctx, &me, &cfg));
        memcpy(me->store.param, m->store.param, m->table.numel[MLOC_BLOCK_PARAM] * sizeof(float));
        memcpy(me->store.buffer, m->store.buffer, m->table.numel[MLOC_BLOCK_BUFFER] * sizeof(float));
        mloc_model_free(m);
        m = me;
        CHECK(mloc_model_plan(ctx, m, B));
        m->profile = profile;
        int64_t total = 0;
        for (int i = 0; i < m->n_taps; i++) total += (int64_t)B * mloc_model_value_numel(m, m->taps[i].value);
        float *taps = malloc((size_t)total * sizeof(float));
        for (int k = -2; k < reps; k++) {
            double t0 = now();
            CHECK(mloc_model_forward(ctx, m, x, B, MLOC_MODE_EVAL, -1));
            float *p = taps;
            for (int i = 0; i < m->n_taps; i++) {
                CHECK(mloc_model_read(ctx, m, m->taps[i].value, p));
                p += (int64_t)B * mloc_model_value_numel(m, m->taps[i].value);
            }
            if (k >= 0) t[k] = now() - t0;
        }
        double med = median(t, reps);
        printf("eval forward (all taps): %d images, median %.4f s (min %.4f, max %.4f)\n", B, med, t[0],
               t[reps - 1]);
        printf("bench %s_eval memloc=%.1f unit=images/s\n", arch, B / med);
        free(taps);
    }
    if (profile) {
        /* per-node seconds per call and GFLOP/s (conv and linear) */
        double *tf = calloc(m->n_nodes, sizeof(double)), *ef = calloc(m->n_nodes, sizeof(double)),
               *bw = calloc(m->n_nodes, sizeof(double));
        CHECK(mloc_model_profile(ctx, m, tf, ef, bw));
        const int calls = reps + 2;
        printf("%-26s %-12s %9s %9s %9s %9s %9s %9s\n", "node", "op", "train_ms", "GF/s", "bwd_ms", "GF/s",
               "eval_ms", "GF/s");
        double st = 0, sb = 0, se = 0;
        for (int i = 0; i < m->n_nodes; i++) {
            double macs = (double)mloc_model_node_macs(m, i);
            double a = tf[i] / calls, b = bw[i] / calls, c = ef[i] / calls;
            st += a; sb += b; se += c;
            printf("%-26s %-12s %9.2f %9.1f %9.2f %9.1f %9.2f %9.1f\n", m->nodes[i].name,
                   mloc_op_name(m->nodes[i].op), 1e3 * a, a > 0 ? 2 * macs * V / a / 1e9 : 0, 1e3 * b,
                   b > 0 ? 4 * macs * V / b / 1e9 : 0, 1e3 * c, c > 0 ? 2 * macs * B / c / 1e9 : 0);
        }
        printf("%-26s %-12s %9.2f %9s %9.2f %9s %9.2f\n", "total", "", 1e3 * st, "", 1e3 * sb, "", 1e3 * se);
        free(tf); free(ef); free(bw);
    }
    free(x);
    free(z);
    free(dz);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
    return 0;
}
