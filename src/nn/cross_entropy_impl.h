/* cross_entropy reference body; see cross_entropy.c and real.h.
 *
 * logits (N,K), labels (N) in 0..K-1:
 *   lse_n = log sum_k exp(logits[n,k])         (max-subtracted)
 *   L = (1/N) sum_n (lse_n - logits[n, labels[n]])
 *   dlogits[n,k] = (softmax(logits[n])_k - [k = labels[n]]) / N   (=)
 * One sequential pass in row order (O(N K)), so the loss does not depend on
 * the thread count. A label outside 0..K-1 is a programmer error (the data
 * readers validate labels). */
#include "real.h"

double FN(mloc_cross_entropy)(real *dlogits, const real *logits, const int32_t *labels, int N,
                              int K) {
    assert(N > 0 && K > 0);
    acc loss = 0;
    for (int n = 0; n < N; n++) {
        const real *row = logits + (int64_t)n * K;
        assert(labels[n] >= 0 && labels[n] < K);
        acc mx = row[0];
        for (int k = 1; k < K; k++)
            if (row[k] > mx) mx = row[k];
        acc sum = 0;
        for (int k = 0; k < K; k++) sum += exp(row[k] - mx);
        const acc lse = mx + log(sum);
        loss += lse - row[labels[n]];
        if (dlogits) {
            real *g = dlogits + (int64_t)n * K;
            for (int k = 0; k < K; k++)
                g[k] = (real)((exp(row[k] - lse) - (k == labels[n] ? 1 : 0)) / N);
        }
    }
    return loss / N;
}
