/* LayerMem, DeltaLayerMem and the standard table (SPEC.md section 3;
 * Wang et al., NeurIPS 2024, section 4 and Table 1).
 *
 * Definition. Over the evaluated candidates C_eval, per tap l, the scores
 * SSLMem^l(x) are normalised with the range over all of C_eval:
 *   range  (reference code; default)  s~ = s / (max - min)
 *   minmax                            s~ = (s - min) / (max - min) in [0, 1]
 *   none                              s~ = s
 * LayerMem_l(D) = mean over x in D of s~^l(x) for D a subset of C_eval, and
 * DeltaLayerMem_l = LayerMem_l - LayerMem_{l-1}, the first tap's Delta being
 * its LayerMem; "previous" is the evaluated tap before l in forward order
 * (for the residual sums res1 / res2 that is the block just before them).
 * The table has, per tap: LayerMem on a random subset (100 candidates),
 * its Delta, LayerMem on the Top-50 and its Delta, LayerMem on the
 * Least-50, where Top / Least rank the candidates by SSLMem at the encoder
 * output.
 *
 * Deviations from the reference code (layer_mem.py divides the score of the
 * 500 candidates by their range and averages all of them): a zero range
 * divides by 1 (f = g gives 0, not NaN); ties in the ranking keep candidate
 * order (a stable sort), and subset sizes are clamped to the number of
 * candidates evaluated. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/stats.h"

mloc_layermem_config mloc_layermem_config_default(void) {
    mloc_layermem_config c;
    memset(&c, 0, sizeof c);
    c.norm = MLOC_NORM_RANGE;
    c.n_random = 100;
    c.top = 50;
    c.seed = 0;
    return c;
}

void mloc_layermem_table_free(mloc_layermem_table *t) {
    if (!t) return;
    free(t->lo);
    free(t->hi);
    free(t->norm_score);
    free(t->random);
    free(t->delta);
    free(t->top);
    free(t->delta_top);
    free(t->least);
    free(t->random_pos);
    free(t->top_pos);
    free(t->least_pos);
    memset(t, 0, sizeof *t);
}

void mloc_layermem_normalize(const double *score, int64_t n, int T, mloc_score_norm norm,
                             double *out, double *lo, double *hi) {
    for (int t = 0; t < T; t++) {
        double mn = INFINITY, mx = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            double s = score[i * T + t];
            if (s < mn) mn = s;
            if (s > mx) mx = s;
        }
        if (lo) lo[t] = mn;
        if (hi) hi[t] = mx;
        double range = mx - mn;
        if (!(range > 0) || !isfinite(range)) range = 1; /* constant scores: divide by 1 */
        for (int64_t i = 0; i < n; i++) {
            double s = score[i * T + t];
            switch (norm) {
            case MLOC_NORM_RANGE: out[i * T + t] = s / range; break;
            case MLOC_NORM_MINMAX: out[i * T + t] = (s - mn) / range; break;
            default: out[i * T + t] = s; break;
            }
        }
    }
}

/* mean of column t of x (n, T) over the rows pos[0..k), in that order */
static double subset_mean(const double *x, int T, int t, const int64_t *pos, int64_t k) {
    double s = 0;
    for (int64_t j = 0; j < k; j++) s += x[pos[j] * T + t];
    return k > 0 ? s / (double)k : NAN;
}

mloc_status mloc_layermem_table_make(mloc_ctx *ctx, mloc_layermem_table *t,
                                     const mloc_sslmem_result *r, const mloc_layermem_config *cfg,
                                     const int64_t *random_pos, int64_t n_random) {
    memset(t, 0, sizeof *t);
    mloc_layermem_config defaults = mloc_layermem_config_default();
    if (!cfg) cfg = &defaults;
    const int64_t n = r->n;
    const int T = r->n_taps;
    if (n < 1 || T < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "layermem: an empty SSLMem result");
    if (cfg->norm != MLOC_NORM_RANGE && cfg->norm != MLOC_NORM_MINMAX && cfg->norm != MLOC_NORM_NONE)
        return mloc_error(ctx, MLOC_ERR_USAGE, "layermem: normalisation %d, expected range, minmax or none",
                          (int)cfg->norm);
    if (cfg->n_random < 1 || cfg->top < 1)
        return mloc_error(ctx, MLOC_ERR_USAGE, "layermem: random subset %lld and top %lld, expected >= 1",
                          (long long)cfg->n_random, (long long)cfg->top);
    for (int64_t j = 0; random_pos && j < n_random; j++)
        if (random_pos[j] < 0 || random_pos[j] >= n)
            return mloc_error(ctx, MLOC_ERR_USAGE, "layermem: random subset entry %lld: position %lld, "
                              "expected 0..%lld", (long long)j, (long long)random_pos[j], (long long)n - 1);
    mloc_status st = MLOC_OK;
    const int64_t k_top = cfg->top < n ? cfg->top : n;
    int64_t *order = malloc((size_t)n * sizeof *order);
    t->lo = malloc((size_t)T * sizeof(double));
    t->hi = malloc((size_t)T * sizeof(double));
    t->norm_score = malloc((size_t)n * T * sizeof(double));
    t->random = malloc((size_t)T * sizeof(double));
    t->delta = malloc((size_t)T * sizeof(double));
    t->top = malloc((size_t)T * sizeof(double));
    t->delta_top = malloc((size_t)T * sizeof(double));
    t->least = malloc((size_t)T * sizeof(double));
    t->random_pos = malloc((size_t)(random_pos ? (n_random > 0 ? n_random : 1) : n) * sizeof(int64_t));
    t->top_pos = malloc((size_t)k_top * sizeof(int64_t));
    t->least_pos = malloc((size_t)k_top * sizeof(int64_t));
    if (!order || !t->lo || !t->hi || !t->norm_score || !t->random || !t->delta || !t->top ||
        !t->delta_top || !t->least || !t->random_pos || !t->top_pos || !t->least_pos) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "layermem: out of memory for the table");
        goto fail;
    }
    t->n = n;
    t->n_taps = T;
    t->norm = cfg->norm;
    mloc_layermem_normalize(r->score, n, T, cfg->norm, t->norm_score, t->lo, t->hi);

    if (random_pos) {
        memcpy(t->random_pos, random_pos, (size_t)n_random * sizeof(int64_t));
        t->n_random = n_random;
    } else {
        st = mloc_metrics_choose(ctx, n, cfg->n_random, cfg->seed, "layermem-random", t->random_pos,
                                 &t->n_random);
        if (st != MLOC_OK) goto fail;
    }
    /* Top: highest SSLMem at the encoder output; Least: lowest (stable) */
    st = mloc_stats_argsort(ctx, r->out_score, n, 1, order);
    if (st != MLOC_OK) goto fail;
    memcpy(t->top_pos, order, (size_t)k_top * sizeof(int64_t));
    st = mloc_stats_argsort(ctx, r->out_score, n, 0, order);
    if (st != MLOC_OK) goto fail;
    memcpy(t->least_pos, order, (size_t)k_top * sizeof(int64_t));
    t->n_top = k_top;

    for (int l = 0; l < T; l++) {
        t->random[l] = subset_mean(t->norm_score, T, l, t->random_pos, t->n_random);
        t->top[l] = subset_mean(t->norm_score, T, l, t->top_pos, k_top);
        t->least[l] = subset_mean(t->norm_score, T, l, t->least_pos, k_top);
        t->delta[l] = l == 0 ? t->random[l] : t->random[l] - t->random[l - 1];
        t->delta_top[l] = l == 0 ? t->top[l] : t->top[l] - t->top[l - 1];
    }
    free(order);
    return MLOC_OK;
fail:
    free(order);
    mloc_layermem_table_free(t);
    return st;
}
