/* SSLMem per tap (SPEC.md sections 2 and 3; Wang et al., ICLR 2024, eq. 1;
 * Wang et al., NeurIPS 2024, section 3).
 *
 * Definition. For an encoder h, a tap l and a point x, h^l(x) is the tap's
 * output flattened in NCHW order and scaled to unit l2 norm. With K draws
 * a_k of the augmentation:
 *   views clean (reference code; default): d_h^l(x) = (1/K) sum_k || h^l(x) - h^l(a_k(x)) ||_2
 *   views pair  (the papers):              d_h^l(x) = (1/K) sum_k || h^l(a_2k(x)) - h^l(a_2k+1(x)) ||_2
 * and SSLMem^l(x) = d_g^l(x) - d_f^l(x), f trained on x, g not. f and g see
 * the same views (common random numbers): the views of a batch are made once
 * and run through both encoders.
 *
 * Deviations from the reference code (sprintml/LocalizingMemorizationInSSL
 * layer_mem.py; MemorizationSSL):
 *   - draws come from counter-based streams keyed by (seed, "sslmem", point,
 *     view) (augment.h), not torch's global RNG, so a point's views do not
 *     depend on the order, the batch or the thread count;
 *   - images are augmented in [0, 1] and normalised last (the reference
 *     normalises first; --compat-normalize-first, FORMATS.md 3.7);
 *   - many points and views share one forward pass instead of one image at a
 *     time; the encoder runs in eval mode (BN running statistics), as the
 *     reference's .eval();
 *   - the norm is taken as max(||x||, 1e-12) (torch's F.normalize) and every
 *     sum is in double, in a fixed order per point.
 *
 * Layout of a chunk of P points in the forward batch (view-major):
 *   clean: rows [0, P) the clean views, rows [P + k P, P + (k+1) P) view k
 *   pair:  rows [v P, (v+1) P) view v, v = 0 .. 2K-1 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

mloc_sslmem_config mloc_sslmem_config_default(void) {
    mloc_sslmem_config c;
    memset(&c, 0, sizeof c);
    c.views = MLOC_VIEWS_CLEAN;
    c.k = 5;
    c.batch = MLOC_METRICS_BATCH;
    return c;
}

void mloc_sslmem_result_free(mloc_sslmem_result *r) {
    if (!r) return;
    free(r->tap_names);
    free(r->points);
    free(r->d_f);
    free(r->d_g);
    free(r->score);
    free(r->out_score);
    memset(r, 0, sizeof *r);
}

/* Sums of D doubles in a fixed order: 8 running sums over j mod 8, then
 * ((s0+s1)+(s2+s3))+((s4+s5)+(s6+s7)) and the tail. The independent sums
 * keep the loop from waiting on one accumulator (4-8x faster than a single
 * chain) and the order never depends on threads or batches. */
#define SUM8(expr)                                                          \
    double s_[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                \
    int64_t j = 0;                                                          \
    for (; j + 8 <= D; j += 8)                                              \
        for (int l = 0; l < 8; l++) {                                       \
            const int64_t i_ = j + l;                                       \
            s_[l] += (expr);                                                \
        }                                                                   \
    double tail_ = 0;                                                       \
    for (; j < D; j++) {                                                    \
        const int64_t i_ = j;                                               \
        tail_ += (expr);                                                    \
    }                                                                       \
    return ((s_[0] + s_[1]) + (s_[2] + s_[3])) + ((s_[4] + s_[5]) + (s_[6] + s_[7])) + tail_

/* sum of squares of D floats */
static double sum_sq(const float *a, int64_t D) { SUM8((double)a[i_] * (double)a[i_]); }

/* ||a/na - b/nb||^2, with na, nb the l2 norms clamped at 1e-12 */
static double dist_sq(const float *a, double na, const float *b, double nb, int64_t D) {
    const double ia = 1.0 / na, ib = 1.0 / nb;
    SUM8(((double)a[i_] * ia - (double)b[i_] * ib) * ((double)a[i_] * ia - (double)b[i_] * ib));
}

/* d (np points) for one encoder and one tap from rows (rows, D) of the
 * chunk's tap output. norms is scratch of `rows` doubles. */
static void chunk_distances(double *d, const float *y, int64_t D, int64_t np, int K,
                            mloc_views_mode views, double *norms) {
    const int64_t rows = views == MLOC_VIEWS_CLEAN ? (K + 1) * np : 2 * K * np;
#pragma omp parallel for schedule(static) if (rows * D > MLOC_METRICS_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const double n = sqrt(sum_sq(y + r * D, D));
        norms[r] = n > 1e-12 ? n : 1e-12;
    }
#pragma omp parallel for schedule(static) if (rows * D > MLOC_METRICS_PAR_MIN)
    for (int64_t i = 0; i < np; i++) {
        double sum = 0;
        for (int k = 0; k < K; k++) {
            int64_t a, b;
            if (views == MLOC_VIEWS_CLEAN) {
                a = i;
                b = (1 + (int64_t)k) * np + i;
            } else {
                a = 2 * (int64_t)k * np + i;
                b = (2 * (int64_t)k + 1) * np + i;
            }
            sum += sqrt(dist_sq(y + a * D, norms[a], y + b * D, norms[b], D));
        }
        d[i] = sum / K;
    }
}

mloc_status mloc_sslmem_compute(mloc_ctx *ctx, mloc_sslmem_result *res, mloc_model *f,
                                mloc_model *g, const mloc_view_source *src,
                                const int64_t *points, int64_t n, const int *taps, int n_taps,
                                const mloc_sslmem_config *cfg) {
    memset(res, 0, sizeof *res);
    mloc_sslmem_config defaults = mloc_sslmem_config_default();
    if (!cfg) cfg = &defaults;
    if (cfg->k < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "sslmem: K = %d augmentations, expected >= 1", cfg->k);
    if (cfg->views != MLOC_VIEWS_CLEAN && cfg->views != MLOC_VIEWS_PAIR)
        return mloc_error(ctx, MLOC_ERR_USAGE, "sslmem: views mode %d, expected clean or pair", (int)cfg->views);
    if (cfg->batch < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "sslmem: batch %d, expected >= 1", cfg->batch);
    if (n < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "sslmem: no points to evaluate");
    MLOC_TRY(mloc_metrics_check_pair(ctx, f, g));
    MLOC_TRY(mloc_metrics_check_source(ctx, "sslmem", f, src, points, n));

    mloc_status st = MLOC_OK;
    int *tl = NULL, T = 0;
    MLOC_TRY(mloc_metrics_taps_copy(ctx, f, taps, n_taps, &tl, &T));
    /* evaluated taps: the requested ones, then the encoder output if absent */
    const int last = f->n_taps - 1;
    const int E = tl[T - 1] == last ? T : T + 1;
    const int out_e = E - 1;
    const int K = cfg->k;
    const int V = cfg->views == MLOC_VIEWS_CLEAN ? K + 1 : 2 * K;
    const int P = mloc_metrics_chunk_points(cfg->batch, V);
    const int64_t P_eff = P < n ? P : n;
    const int B = (int)(P_eff * V);
    const int64_t per = (int64_t)src->c * src->h * src->w;
    int64_t maxD = 0;
    for (int e = 0; e < E; e++) {
        int t = e < T ? tl[e] : last;
        int64_t D = mloc_model_value_numel(f, f->taps[t].value);
        if (D > maxD) maxD = D;
    }
    const int upto = f->taps[last].value; /* the last evaluated tap is the latest */

    float *x = NULL, *y = NULL;
    double *norms = NULL, *dist = NULL, *dall[2] = {NULL, NULL};
    x = mloc_alloc(ctx, (size_t)B * (size_t)per * sizeof(float));
    y = mloc_alloc(ctx, (size_t)B * (size_t)maxD * sizeof(float));
    norms = mloc_alloc(ctx, (size_t)B * sizeof(double));
    dist = mloc_alloc(ctx, (size_t)P_eff * sizeof(double));
    dall[0] = malloc((size_t)n * E * sizeof(double));
    dall[1] = malloc((size_t)n * E * sizeof(double));
    res->tap_names = calloc((size_t)T, sizeof *res->tap_names);
    res->points = malloc((size_t)n * sizeof(int64_t));
    res->d_f = malloc((size_t)n * T * sizeof(double));
    res->d_g = malloc((size_t)n * T * sizeof(double));
    res->score = malloc((size_t)n * T * sizeof(double));
    res->out_score = malloc((size_t)n * sizeof(double));
    if (!x || !y || !norms || !dist || !dall[0] || !dall[1] || !res->tap_names || !res->points ||
        !res->d_f || !res->d_g || !res->score || !res->out_score) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "sslmem: out of memory for %lld points x %d taps "
                        "(a forward batch of %d views)", (long long)n, E, B);
        goto fail;
    }
    st = mloc_model_plan(ctx, f, B);
    if (st == MLOC_OK) st = mloc_model_plan(ctx, g, B);
    if (st != MLOC_OK) goto fail;

    mloc_model *enc[2] = {f, g};
    mloc_progress(ctx, "sslmem", 0, n, "");
    for (int64_t p0 = 0; p0 < n; p0 += P_eff) {
        if (mloc_ctx_interrupted(ctx)) {
            st = mloc_error(ctx, MLOC_ERR_INTERRUPTED, "sslmem: interrupted after %lld of %lld points",
                            (long long)p0, (long long)n);
            goto fail;
        }
        const int64_t np = n - p0 < P_eff ? n - p0 : P_eff;
        const int rows = (int)(np * V);
        if (cfg->views == MLOC_VIEWS_CLEAN) {
            st = src->fill(src, ctx, x, points + p0, np, MLOC_VIEW_CLEAN, 1);
            if (st == MLOC_OK) st = src->fill(src, ctx, x + np * per, points + p0, np, 0, K);
        } else {
            st = src->fill(src, ctx, x, points + p0, np, 0, 2 * K);
        }
        if (st != MLOC_OK) goto fail;
        for (int h = 0; h < 2; h++) {
            st = mloc_model_forward(ctx, enc[h], x, rows, MLOC_MODE_EVAL, upto);
            if (st != MLOC_OK) goto fail;
            for (int e = 0; e < E; e++) {
                const int t = e < T ? tl[e] : last;
                const int v = enc[h]->taps[t].value;
                const int64_t D = mloc_model_value_numel(enc[h], v);
                st = mloc_model_read(ctx, enc[h], v, y);
                if (st != MLOC_OK) goto fail;
                chunk_distances(dist, y, D, np, K, cfg->views, norms);
                for (int64_t i = 0; i < np; i++) dall[h][(p0 + i) * E + e] = dist[i];
            }
        }
        mloc_progress(ctx, "sslmem", p0 + np, n, "");
    }

    res->n = n;
    res->n_taps = T;
    res->cfg = *cfg;
    memcpy(res->points, points, (size_t)n * sizeof(int64_t));
    for (int t = 0; t < T; t++) snprintf(res->tap_names[t], sizeof res->tap_names[t], "%s", f->taps[tl[t]].name);
    snprintf(res->out_tap, sizeof res->out_tap, "%s", f->taps[last].name);
    for (int64_t i = 0; i < n; i++) {
        for (int t = 0; t < T; t++) {
            double df = dall[0][i * E + t], dg = dall[1][i * E + t];
            res->d_f[i * T + t] = df;
            res->d_g[i * T + t] = dg;
            res->score[i * T + t] = dg - df;
        }
        res->out_score[i] = dall[1][i * E + out_e] - dall[0][i * E + out_e];
    }
    goto done;
fail:
    mloc_sslmem_result_free(res);
done:
    mloc_free(x);
    mloc_free(y);
    mloc_free(norms);
    mloc_free(dist);
    free(dall[0]);
    free(dall[1]);
    free(tl);
    return st;
}
