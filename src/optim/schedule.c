/* Learning-rate schedules evaluated per step in closed form (see optim.h).
 *
 * Reference: torch 1.13 SequentialLR([LinearLR(start_factor=f0,
 * total_iters=W), CosineAnnealingLR(T_max=T-W, eta_min)], milestones=[W]).
 * LinearLR's recursive form multiplies by
 * 1 + (1-f0)/(W*f0 + (s-1)(1-f0)), whose product telescopes to
 * f0 + (1-f0)*s/W; at the milestone SequentialLR restarts the cosine with
 * step(0), i.e. at base_lr, and the cosine's recursive ratio
 * (1+cos(pi e/T'))/(1+cos(pi (e-1)/T')) telescopes to the closed form below.
 * The fixture tests/fixtures/optim/schedule.safetensors holds torch's values. */
#include <math.h>

#include "memloc/optim.h"

mloc_schedule mloc_schedule_constant(double base_lr) {
    mloc_schedule s = {MLOC_SCHEDULE_CONSTANT, base_lr, 0, 1.0, 1, 0.0};
    return s;
}

mloc_schedule mloc_schedule_warmup_cosine(double base_lr, int64_t warmup_steps,
                                          double warmup_start_factor, int64_t total_steps,
                                          double min_lr) {
    mloc_schedule s = {MLOC_SCHEDULE_WARMUP_COSINE, base_lr, warmup_steps, warmup_start_factor,
                       total_steps, min_lr};
    return s;
}

mloc_status mloc_schedule_check(mloc_ctx *ctx, const mloc_schedule *s) {
    if (!(s->base_lr >= 0) || !isfinite(s->base_lr))
        return mloc_error(ctx, MLOC_ERR_CONFIG, "schedule: base lr %g, expected >= 0", s->base_lr);
    if (s->kind == MLOC_SCHEDULE_CONSTANT) return MLOC_OK;
    if (s->kind != MLOC_SCHEDULE_WARMUP_COSINE)
        return mloc_error(ctx, MLOC_ERR_CONFIG, "schedule: kind %d, expected constant|cosine",
                          (int)s->kind);
    if (s->warmup_steps < 0)
        return mloc_error(ctx, MLOC_ERR_CONFIG, "schedule: warmup steps %lld, expected >= 0",
                          (long long)s->warmup_steps);
    if (s->total_steps <= s->warmup_steps)
        return mloc_error(ctx, MLOC_ERR_CONFIG,
                          "schedule: total steps %lld, expected more than the %lld warm-up steps",
                          (long long)s->total_steps, (long long)s->warmup_steps);
    if (!(s->warmup_start_factor >= 0 && s->warmup_start_factor <= 1))
        return mloc_error(ctx, MLOC_ERR_CONFIG,
                          "schedule: warm-up start factor %g, expected in [0, 1]",
                          s->warmup_start_factor);
    if (!(s->min_lr >= 0 && s->min_lr <= s->base_lr))
        return mloc_error(ctx, MLOC_ERR_CONFIG, "schedule: min lr %g, expected in [0, %g]",
                          s->min_lr, s->base_lr);
    return MLOC_OK;
}

double mloc_schedule_lr(const mloc_schedule *s, int64_t step) {
    if (s->kind == MLOC_SCHEDULE_CONSTANT) return s->base_lr;
    if (step < 0) step = 0;
    const int64_t W = s->warmup_steps, T = s->total_steps;
    if (step < W) {
        double f0 = s->warmup_start_factor;
        return s->base_lr * (f0 + (1.0 - f0) * (double)step / (double)W);
    }
    if (step >= T) return s->min_lr;
    double e = (double)(step - W), span = (double)(T - W);
    return s->min_lr + (s->base_lr - s->min_lr) * (1.0 + cos(M_PI * e / span)) / 2.0;
}
