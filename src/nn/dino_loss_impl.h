/* dino_loss reference body; see dino_loss.c and real.h.
 *
 * s (V*B, K): the student's outputs for V crops of B images, crop-major
 *   (rows v*B .. v*B+B-1 are crop v; crops 0 and 1 are the global crops).
 * t (2*B, K): the teacher's outputs for the two global crops; center (K).
 * With T_s = student_temp and T_t = teacher_temp:
 *   q_c[b] = softmax((t[c*B+b] - center) / T_t)        c = 0, 1 (constants)
 *   l_v[b] = log_softmax(s[v*B+b] / T_s),  p_v[b] = exp(l_v[b])
 *   L = 1/(2(V-1)) sum_{c=0,1} sum_{v != c} (1/B) sum_b -q_c[b] . l_v[b]
 * (DINOLoss.forward: the mean over the batch of each (teacher crop, student
 * crop) pair, averaged over the 2(V-1) pairs.) Gradient (=):
 *   ds[v*B+b] = sum_{c in {0,1}, c != v} (p_v[b] - q_c[b]) / (2(V-1) B T_s).
 * The teacher gets no gradient. Work: q (2*B*K) then the per-image losses (B),
 * mloc_dino_loss_work_len(B, K) doubles. One thread per image b; the loss is
 * summed in image order afterwards, so it does not depend on the thread count. */
#include "real.h"

double FN(mloc_dino_loss_ws)(real *ds, double *work, const real *s, const real *t,
                             const real *center, int B, int V, int K, real student_temp,
                             real teacher_temp) {
    assert(B >= 1 && V >= 2 && K >= 1 && student_temp > 0 && teacher_temp > 0);
    double *q = work, *per_image = work + 2 * (int64_t)B * K;
    const acc ts = student_temp, tt = teacher_temp;
    const acc terms = 2.0 * (V - 1);
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        for (int c = 0; c < 2; c++) {
            const real *tr = t + (int64_t)(c * B + b) * K;
            double *qr = q + (int64_t)(c * B + b) * K;
            acc mx = -INFINITY;
            for (int k = 0; k < K; k++) {
                qr[k] = ((acc)tr[k] - center[k]) / tt;
                if (qr[k] > mx) mx = qr[k];
            }
            acc sum = 0;
            for (int k = 0; k < K; k++) sum += exp(qr[k] - mx);
            for (int k = 0; k < K; k++) qr[k] = exp(qr[k] - mx) / sum;
        }
        const double *q0 = q + (int64_t)b * K, *q1 = q + (int64_t)(B + b) * K;
        acc lb = 0;
        for (int v = 0; v < V; v++) {
            const real *sr = s + (int64_t)(v * B + b) * K;
            acc mx = -INFINITY;
            for (int k = 0; k < K; k++)
                if (sr[k] / ts > mx) mx = sr[k] / ts;
            acc sum = 0;
            for (int k = 0; k < K; k++) sum += exp(sr[k] / ts - mx);
            const acc lse = mx + log(sum);
            /* -q . log p = sum_k q_k (lse - s_k / T_s) */
            for (int k = 0; k < K; k++) {
                const acc nl = lse - sr[k] / ts;
                if (v != 0) lb += q0[k] * nl;
                if (v != 1) lb += q1[k] * nl;
            }
            if (!ds) continue;
            real *g = ds + (int64_t)(v * B + b) * K;
            const acc scale = 1.0 / (terms * B * ts), np = v < 2 ? 1 : 2;
            for (int k = 0; k < K; k++) {
                const acc qs = (v != 0 ? q0[k] : 0) + (v != 1 ? q1[k] : 0);
                g[k] = (real)(scale * (np * exp(sr[k] / ts - lse) - qs));
            }
        }
        per_image[b] = lb;
    }
    acc loss = 0;
    for (int b = 0; b < B; b++) loss += per_image[b];
    return loss / (terms * B);
}

/* center = center * m + (1 - m) * mean over the rows of t (DINOLoss.update_center,
 * one process: batch_center = sum(t, 0) / rows). t (rows, K). */
void FN(mloc_dino_center_update)(real *center, const real *t, int rows, int K, double momentum) {
#pragma omp parallel for schedule(static)
    for (int k = 0; k < K; k++) {
        acc sum = 0;
        for (int r = 0; r < rows; r++) sum += t[(int64_t)r * K + k];
        center[k] = (real)(center[k] * momentum + sum / rows * (1 - momentum));
    }
}
