/* attention reference body; see attention.c and real.h.
 *
 * Per batch element n and head h (one thread each, every sum sequential in
 * double, so results do not depend on the thread count), with
 * q_t, k_t, v_t (Dh) read from qkv (N, T, 3, H, Dh) and c = 1/sqrt(Dh):
 *   a[t,s]  = softmax_s(c q_t . k_s)          saved as att (N, H, T, T)
 *   o_t     = sum_s a[t,s] v_s                 written to out (N, T, H*Dh)
 * Backward, from do_t = dout[n, t, h*Dh : (h+1)*Dh]:
 *   dv_s    = sum_t a[t,s] do_t
 *   da[t,s] = do_t . v_s
 *   dz[t,s] = c a[t,s] (da[t,s] - sum_s' a[t,s'] da[t,s'])   (softmax backward
 *             and the scale; kept in work (N, H, T, T))
 *   dq_t    = sum_s dz[t,s] k_s,    dk_s = sum_t dz[t,s] q_t
 * dq, dk, dv are written (=) into dqkv in qkv's layout. */
#include "real.h"

#ifndef MLOC_ATTENTION_INDEX
#define MLOC_ATTENTION_INDEX
/* Element e of q (which 0), k (1) or v (2) of token t, head h, in qkv. */
#define QKV(n, t, which, h, e) ((((int64_t)(n) * T + (t)) * 3 + (which)) * D + (int64_t)(h) * Dh + (e))
/* Element e of head h of token t in out / dout (N, T, D). */
#define OUT(n, t, h, e) (((int64_t)(n) * T + (t)) * D + (int64_t)(h) * Dh + (e))
/* a[t, s] of (n, h) in att / work (N, H, T, T). */
#define ATT(n, h, t, s_) ((((int64_t)(n) * H + (h)) * T + (t)) * T + (s_))
#endif

void FN(mloc_attention_forward)(real *out, real *att, const real *qkv,
                                const mloc_attention_shape *s) {
    const int N = s->N, T = s->T, D = s->D, H = s->H, Dh = s->Dh;
    const acc c = 1.0 / sqrt((acc)Dh);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                real *a = att + ATT(n, h, t, 0);
                /* Scores into the att row, then a max-subtracted softmax in place. */
                acc mx = -INFINITY;
                for (int u = 0; u < T; u++) {
                    acc dot = 0;
                    for (int e = 0; e < Dh; e++)
                        dot += (acc)qkv[QKV(n, t, 0, h, e)] * qkv[QKV(n, u, 1, h, e)];
                    a[u] = (real)(c * dot);
                    if (a[u] > mx) mx = a[u];
                }
                acc sum = 0;
                for (int u = 0; u < T; u++) {
                    acc ex = exp(a[u] - mx);
                    a[u] = (real)ex;
                    sum += a[u];
                }
                for (int u = 0; u < T; u++) a[u] = (real)(a[u] / sum);
                for (int e = 0; e < Dh; e++) {
                    acc o = 0;
                    for (int u = 0; u < T; u++) o += (acc)a[u] * qkv[QKV(n, u, 2, h, e)];
                    out[OUT(n, t, h, e)] = (real)o;
                }
            }
}

void FN(mloc_attention_backward)(real *dqkv, real *work, const real *dout, const real *qkv,
                                 const real *att, const mloc_attention_shape *s) {
    const int N = s->N, T = s->T, D = s->D, H = s->H, Dh = s->Dh;
    const acc c = 1.0 / sqrt((acc)Dh);
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            /* dz rows: da into work, then the softmax backward in place. */
            for (int t = 0; t < T; t++) {
                const real *a = att + ATT(n, h, t, 0);
                real *dz = work + ATT(n, h, t, 0);
                acc rowdot = 0;
                for (int u = 0; u < T; u++) {
                    acc da = 0;
                    for (int e = 0; e < Dh; e++)
                        da += (acc)dout[OUT(n, t, h, e)] * qkv[QKV(n, u, 2, h, e)];
                    dz[u] = (real)da;
                    rowdot += (acc)a[u] * dz[u];
                }
                for (int u = 0; u < T; u++) dz[u] = (real)(c * a[u] * (dz[u] - rowdot));
            }
            const real *dz = work + ATT(n, h, 0, 0);
            const real *a = att + ATT(n, h, 0, 0);
            for (int t = 0; t < T; t++)
                for (int e = 0; e < Dh; e++) {
                    acc dq = 0, dk = 0, dv = 0;
                    for (int u = 0; u < T; u++) {
                        dq += (acc)dz[t * T + u] * qkv[QKV(n, u, 1, h, e)];
                        dk += (acc)dz[u * T + t] * qkv[QKV(n, u, 0, h, e)];
                        dv += (acc)a[u * T + t] * dout[OUT(n, u, h, e)];
                    }
                    dqkv[QKV(n, t, 0, h, e)] = (real)dq;
                    dqkv[QKV(n, t, 1, h, e)] = (real)dk;
                    dqkv[QKV(n, t, 2, h, e)] = (real)dv;
                }
        }
}
