/* The analyses built on the metrics (SPEC.md section 7; Wang et al.,
 * NeurIPS 2024, sections 4.1-4.2 and appendix).
 *
 * Consistency across taps: for every pair of taps (l, m), the share (%) of
 * the top-k candidates by SSLMem^l that are also in the top-k by SSLMem^m,
 * and Kendall's tau-b between the two score vectors with its two-sided
 * p-value (scipy.stats.kendalltau; stats.h).
 *
 * Atypical vs typical: per tap, UnitMem computed over the Top-50 and over
 * the Least-50 candidates (ranked by SSLMem at the encoder output); a
 * one-sided two-sample t-test over the units of the tap, H1: mean UnitMem
 * over Top > over Least, giving t, dof and p. Student's pooled test by
 * default, as the reference Ttest.py (scipy.stats.ttest_ind with
 * equal_var=True, the two-sided p halved on the side of t); Welch's on
 * request. Dead units take part with UnitMem 0.
 *
 * mu_max alignment: for the units of one tap (the last by default), how many
 * units each data point maximally activates (x*_u), and the SSLMem rank of
 * those points among the candidates (1 = highest SSLMem).
 *
 * Deviation from the reference code: its t-test compares two hand-made
 * lists of 5,000 values; memloc tests the units of each tap separately. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "memloc/stats.h"

mloc_status mloc_metrics_consistency(mloc_ctx *ctx, const mloc_sslmem_result *r, int64_t k,
                                     mloc_consistency_pair *pairs) {
    const int64_t n = r->n;
    const int T = r->n_taps;
    if (n < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "consistency: no points");
    if (k < 1) return mloc_error(ctx, MLOC_ERR_USAGE, "consistency: top-k %lld, expected >= 1", (long long)k);
    if (k > n) k = n;
    double *cols = malloc((size_t)n * T * sizeof(double));
    if (!cols) return mloc_error(ctx, MLOC_ERR_NOMEM, "consistency: out of memory");
    for (int t = 0; t < T; t++)
        for (int64_t i = 0; i < n; i++) cols[(int64_t)t * n + i] = r->score[i * T + t];
    mloc_status st = MLOC_OK;
    int p = 0;
    for (int a = 0; a < T && st == MLOC_OK; a++)
        for (int b = a + 1; b < T && st == MLOC_OK; b++, p++) {
            pairs[p].a = a;
            pairs[p].b = b;
            double share;
            st = mloc_stats_topk_overlap(ctx, cols + (int64_t)a * n, cols + (int64_t)b * n, n, k, &share);
            if (st != MLOC_OK) break;
            pairs[p].overlap = 100.0 * share;
            st = mloc_stats_kendalltau(ctx, cols + (int64_t)a * n, cols + (int64_t)b * n, n,
                                       MLOC_ALT_TWO_SIDED, &pairs[p].kendall);
        }
    free(cols);
    return st;
}

mloc_status mloc_metrics_ttest(mloc_ctx *ctx, const mloc_unit_scores *top,
                               const mloc_unit_scores *least, int equal_var, mloc_ttest *out) {
    if (top->n_taps != least->n_taps)
        return mloc_error(ctx, MLOC_ERR_USAGE, "ttest: %d taps over Top, %d over Least", top->n_taps,
                          least->n_taps);
    for (int t = 0; t < top->n_taps; t++) {
        if (strcmp(top->tap_names[t], least->tap_names[t]) != 0 ||
            top->offset[t + 1] - top->offset[t] != least->offset[t + 1] - least->offset[t])
            return mloc_error(ctx, MLOC_ERR_USAGE, "ttest: tap %d is '%s' over Top and '%s' over Least", t,
                              top->tap_names[t], least->tap_names[t]);
        const int64_t U = top->offset[t + 1] - top->offset[t];
        out[t] = mloc_stats_ttest_ind(top->score + top->offset[t], U, least->score + least->offset[t], U,
                                      equal_var, MLOC_ALT_GREATER);
    }
    return MLOC_OK;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* (id, position) pairs sorted by id, for lookups */
typedef struct {
    int64_t id, pos;
} id_pos;

static int cmp_id_pos(const void *a, const void *b) {
    const id_pos *x = a, *y = b;
    if (x->id != y->id) return (x->id > y->id) - (x->id < y->id);
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static int cmp_rows(const void *a, const void *b) {
    const mloc_mumax_row *x = a, *y = b;
    if (x->units != y->units) return x->units < y->units ? 1 : -1;
    /* ranked points before unranked ones, better (smaller) rank first */
    int64_t rx = x->rank > 0 ? x->rank : INT64_MAX, ry = y->rank > 0 ? y->rank : INT64_MAX;
    if (rx != ry) return rx < ry ? -1 : 1;
    return (x->point > y->point) - (x->point < y->point);
}

mloc_status mloc_metrics_mumax(mloc_ctx *ctx, const mloc_unit_scores *u, int tap,
                               const int64_t *sslmem_points, const double *sslmem,
                               int64_t n_sslmem, mloc_mumax_row **rows, int64_t *n_rows) {
    *rows = NULL;
    *n_rows = 0;
    if (tap < 0 || tap >= u->n_taps)
        return mloc_error(ctx, MLOC_ERR_USAGE, "mumax: tap %d, expected 0..%d", tap, u->n_taps - 1);
    const int64_t a = u->offset[tap], U = u->offset[tap + 1] - a;
    mloc_status st = MLOC_OK;
    int64_t *ids = malloc((size_t)(U > 0 ? U : 1) * sizeof *ids);
    int64_t *order = malloc((size_t)(n_sslmem > 0 ? n_sslmem : 1) * sizeof *order);
    id_pos *lookup = malloc((size_t)(n_sslmem > 0 ? n_sslmem : 1) * sizeof *lookup);
    mloc_mumax_row *out = malloc((size_t)(U > 0 ? U : 1) * sizeof *out);
    if (!ids || !order || !lookup || !out) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "mumax: out of memory");
        goto fail;
    }
    /* ranks: position in the stable descending order of SSLMem, 1-based */
    if (n_sslmem > 0) {
        st = mloc_stats_argsort(ctx, sslmem, n_sslmem, 1, order);
        if (st != MLOC_OK) goto fail;
        for (int64_t j = 0; j < n_sslmem; j++) {
            lookup[j].id = sslmem_points[order[j]];
            lookup[j].pos = j;
        }
        qsort(lookup, (size_t)n_sslmem, sizeof *lookup, cmp_id_pos);
    }
    /* units per argmax point */
    int64_t live = 0;
    for (int64_t i = 0; i < U; i++)
        if (!u->dead[a + i]) ids[live++] = u->argmax[a + i];
    qsort(ids, (size_t)live, sizeof *ids, cmp_i64);
    int64_t k = 0;
    for (int64_t i = 0; i < live;) {
        int64_t j = i;
        while (j < live && ids[j] == ids[i]) j++;
        mloc_mumax_row *row = &out[k++];
        row->point = ids[i];
        row->units = j - i;
        row->rank = 0;
        row->sslmem = NAN;
        if (n_sslmem > 0) {
            id_pos key = {ids[i], -1};
            /* the first entry with this id (a point listed twice keeps its best rank) */
            int64_t lo = 0, hi = n_sslmem;
            while (lo < hi) {
                int64_t mid = lo + (hi - lo) / 2;
                if (cmp_id_pos(&lookup[mid], &key) < 0) lo = mid + 1;
                else hi = mid;
            }
            if (lo < n_sslmem && lookup[lo].id == ids[i]) {
                row->rank = lookup[lo].pos + 1;
                row->sslmem = sslmem[order[lookup[lo].pos]];
            }
        }
        i = j;
    }
    qsort(out, (size_t)k, sizeof *out, cmp_rows);
    free(ids);
    free(order);
    free(lookup);
    *rows = out;
    *n_rows = k;
    return MLOC_OK;
fail:
    free(ids);
    free(order);
    free(lookup);
    free(out);
    return st;
}
