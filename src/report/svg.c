/* Inline SVG charts and the HTML frame of memloc's reports
 * (include/memloc/report.h). Plain text generation: every number is printed
 * with a fixed precision so a report is byte-identical for identical data. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/report.h"

/* ---- buffer ------------------------------------------------------------------ */

void mloc_buf_free(mloc_buf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}

static int reserve(mloc_buf *b, size_t extra) {
    if (b->failed) return 0;
    if (b->n + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = 1;
        return 0;
    }
    b->s = s;
    b->cap = cap;
    return 1;
}

void mloc_buf_printf(mloc_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0 || !reserve(b, (size_t)need)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, (size_t)need + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)need;
}

void mloc_buf_puts(mloc_buf *b, const char *s) {
    size_t n = strlen(s);
    if (!reserve(b, n)) return;
    memcpy(b->s + b->n, s, n + 1);
    b->n += n;
}

void mloc_buf_escape(mloc_buf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': mloc_buf_puts(b, "&amp;"); break;
        case '<': mloc_buf_puts(b, "&lt;"); break;
        case '>': mloc_buf_puts(b, "&gt;"); break;
        case '"': mloc_buf_puts(b, "&quot;"); break;
        case '\'': mloc_buf_puts(b, "&#39;"); break;
        default: {
            char c[2] = {*s, 0};
            mloc_buf_puts(b, c);
        }
        }
    }
}

/* ---- shared chart geometry --------------------------------------------------- */

/* Chart geometry: size and margins (left, right, top, bottom). Most charts
 * are 640 x 320; histograms come in small multiples. */
typedef struct {
    int w, h, ml, mr, mt, mb;
} geom;

static const geom wide = {640, 320, 64, 16, 36, 84};
static const geom small = {360, 220, 52, 12, 32, 40};
static geom G = {640, 320, 64, 16, 36, 84}; /* the chart being drawn */
#define W G.w
#define H G.h
#define ML G.ml
#define MR G.mr
#define MT G.mt
#define MB G.mb

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
#define NPAL ((int)(sizeof palette / sizeof palette[0]))

typedef struct {
    double lo, hi;
} range;

/* A "nice" axis range and tick step covering [lo, hi]. */
static double nice_step(double span, int ticks) {
    if (!(span > 0)) return 1;
    double raw = span / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

static range nice_range(double lo, double hi) {
    if (!isfinite(lo) || !isfinite(hi)) return (range){0, 1};
    if (hi - lo < 1e-12) {
        double pad = fabs(hi) > 0 ? fabs(hi) * 0.1 : 1;
        lo -= pad;
        hi += pad;
    }
    double step = nice_step(hi - lo, 5);
    return (range){floor(lo / step) * step, ceil(hi / step) * step};
}

static double sx(double v, range r) { return ML + (v - r.lo) / (r.hi - r.lo) * (W - ML - MR); }
static double sy(double v, range r) { return H - MB - (v - r.lo) / (r.hi - r.lo) * (H - MT - MB); }

static void chart_open(mloc_buf *b, const char *kind, int marks, const char *title, const geom *g) {
    G = *g;
    mloc_buf_printf(b,
                    "<figure><svg class=\"chart\" data-chart=\"%s\" data-marks=\"%d\" viewBox=\"0 0 %d %d\" "
                    "width=\"%d\" height=\"%d\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">"
                    "<title>",
                    kind, marks, W, H, W, H);
    mloc_buf_escape(b, title);
    mloc_buf_printf(b, "</title><text x=\"%d\" y=\"20\" class=\"ct\">", W / 2);
    mloc_buf_escape(b, title);
    mloc_buf_puts(b, "</text>");
    if (marks == 0)
        mloc_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"empty\">no data</text>", W / 2, H / 2);
}

static void chart_close(mloc_buf *b) { mloc_buf_puts(b, "</svg></figure>\n"); }

static void y_axis(mloc_buf *b, range r, const char *label) {
    double step = nice_step(r.hi - r.lo, 5);
    for (double v = r.lo; v <= r.hi + step * 1e-6; v += step) {
        double y = sy(v, r);
        mloc_buf_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>", ML, W - MR, y, y);
        mloc_buf_printf(b, "<text x=\"%d\" y=\"%.1f\" class=\"yt\">%.3g</text>", ML - 6, y + 4,
                        fabs(v) < step * 1e-6 ? 0.0 : v);
    }
    if (label) {
        mloc_buf_printf(b, "<text transform=\"translate(14,%d) rotate(-90)\" class=\"al\">", (H - MB + MT) / 2);
        mloc_buf_escape(b, label);
        mloc_buf_puts(b, "</text>");
    }
}

static void x_label(mloc_buf *b, const char *label) {
    if (!label) return;
    mloc_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"al\">", (W + ML - MR) / 2, H - 8);
    mloc_buf_escape(b, label);
    mloc_buf_puts(b, "</text>");
}

/* ---- charts ---------------------------------------------------------------- */

void mloc_svg_lines(mloc_buf *b, const char *title, const char *ylabel, const char *const *xlabels,
                    int nx, const mloc_series *s, int ns) {
    double lo = INFINITY, hi = -INFINITY;
    int marks = 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n && i < nx; i++)
            if (isfinite(s[k].y[i])) {
                lo = fmin(lo, s[k].y[i]);
                hi = fmax(hi, s[k].y[i]);
                marks++;
            }
    chart_open(b, "lines", marks, title, &wide);
    if (marks) {
        range r = nice_range(fmin(lo, 0), hi);
        y_axis(b, r, ylabel);
        range xr = {-0.5, nx - 0.5};
        for (int i = 0; i < nx; i++)
            mloc_buf_printf(b, "<text transform=\"translate(%.1f,%d) rotate(-40)\" class=\"xt\">%s</text>",
                            sx(i, xr), H - MB + 14, xlabels[i]);
        for (int k = 0; k < ns; k++) {
            const char *col = palette[k % NPAL];
            mloc_buf_printf(b, "<path class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s d=\"", col,
                            s[k].dashed ? " stroke-dasharray=\"6 4\"" : "");
            int pen = 0;
            for (int i = 0; i < s[k].n && i < nx; i++) {
                if (!isfinite(s[k].y[i])) {
                    pen = 0;
                    continue;
                }
                mloc_buf_printf(b, "%c%.1f %.1f ", pen ? 'L' : 'M', sx(i, xr), sy(s[k].y[i], r));
                pen = 1;
            }
            mloc_buf_puts(b, "\"/>");
            for (int i = 0; i < s[k].n && i < nx; i++)
                if (isfinite(s[k].y[i]))
                    mloc_buf_printf(b, "<circle class=\"mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>%s: %.4g</title></circle>",
                                    sx(i, xr), sy(s[k].y[i], r), col, xlabels[i], s[k].y[i]);
            /* legend */
            mloc_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"3\" fill=\"%s\"/>", ML + 8 + 150 * k,
                            MT - 6, col);
            mloc_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"lg\">", ML + 24 + 150 * k, MT - 2);
            mloc_buf_escape(b, s[k].name);
            mloc_buf_puts(b, "</text>");
        }
        if (r.lo < 0 && r.hi > 0)
            mloc_buf_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"zero\"/>", ML, W - MR,
                            sy(0, r), sy(0, r));
    }
    chart_close(b);
}

void mloc_svg_histogram(mloc_buf *b, const char *title, const double *v, int n, double lo, double hi,
                        int bins, double mark) {
    int *count = calloc((size_t)bins, sizeof *count);
    int total = 0, maxc = 0;
    for (int i = 0; count && i < n; i++) {
        if (!isfinite(v[i])) continue;
        int k = (int)((v[i] - lo) / (hi - lo) * bins);
        if (k < 0) k = 0;
        if (k >= bins) k = bins - 1;
        count[k]++;
        total++;
    }
    for (int k = 0; count && k < bins; k++)
        if (count[k] > maxc) maxc = count[k];
    chart_open(b, "histogram", total ? bins : 0, title, &small);
    if (total) {
        range yr = nice_range(0, maxc), xr = {lo, hi};
        y_axis(b, yr, "units");
        double bw = (double)(W - ML - MR) / bins;
        for (int k = 0; k < bins; k++) {
            double y = sy(count[k], yr);
            mloc_buf_printf(b,
                            "<rect class=\"mark\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                            "<title>[%.3g, %.3g): %d</title></rect>",
                            ML + k * bw + 0.5, y, bw - 1, H - MB - y, palette[0], lo + k * (hi - lo) / bins,
                            lo + (k + 1) * (hi - lo) / bins, count[k]);
        }
        for (int t = 0; t <= 4; t++) {
            double x = lo + t * (hi - lo) / 4;
            mloc_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" class=\"xt\">%.3g</text>", sx(x, xr), H - MB + 16, x);
        }
        if (isfinite(mark))
            mloc_buf_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" class=\"marker\"/>", sx(mark, xr),
                            sx(mark, xr), MT, H - MB);
    }
    chart_close(b);
    free(count);
}

void mloc_svg_scatter(mloc_buf *b, const char *title, const char *xlabel, const char *ylabel,
                      const double *x, const double *y, int n, const int *group,
                      const char *const *group_names, int ngroups) {
    double xl = INFINITY, xh = -INFINITY, yl = INFINITY, yh = -INFINITY;
    int marks = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) {
            xl = fmin(xl, x[i]);
            xh = fmax(xh, x[i]);
            yl = fmin(yl, y[i]);
            yh = fmax(yh, y[i]);
            marks++;
        }
    chart_open(b, "scatter", marks, title, &wide);
    if (marks) {
        range xr = nice_range(xl, xh), yr = nice_range(yl, yh);
        y_axis(b, yr, ylabel);
        double step = nice_step(xr.hi - xr.lo, 5);
        for (double v = xr.lo; v <= xr.hi + step * 1e-6; v += step)
            mloc_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" class=\"xt\">%.3g</text>", sx(v, xr), H - MB + 16,
                            fabs(v) < step * 1e-6 ? 0.0 : v);
        x_label(b, xlabel);
        for (int i = 0; i < n; i++) {
            if (!(isfinite(x[i]) && isfinite(y[i]))) continue;
            int gi = group ? group[i] : 0;
            mloc_buf_printf(b, "<circle class=\"mark\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\" fill-opacity=\"0.6\"/>",
                            sx(x[i], xr), sy(y[i], yr), palette[(gi < 0 ? 0 : gi) % NPAL]);
        }
        for (int g = 0; group_names && g < ngroups; g++) {
            mloc_buf_printf(b, "<circle cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\"/>", ML + 12 + 150 * g, MT - 6,
                            palette[g % NPAL]);
            mloc_buf_printf(b, "<text x=\"%d\" y=\"%d\" class=\"lg\">", ML + 22 + 150 * g, MT - 2);
            mloc_buf_escape(b, group_names[g]);
            mloc_buf_puts(b, "</text>");
        }
    }
    chart_close(b);
}

/* white -> blue ramp */
static void heat_colour(double t, char out[8]) {
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    int r = (int)lround(247 - t * (247 - 8)), g = (int)lround(251 - t * (251 - 69)),
        bl = (int)lround(255 - t * (255 - 148));
    snprintf(out, 8, "#%02x%02x%02x", r, g, bl);
}

void mloc_svg_heatmap(mloc_buf *b, const char *title, const char *const *labels, int n,
                      const double *m, double lo, double hi, const char *fmt) {
    chart_open(b, "heatmap", n * n, title, &wide);
    if (n > 0) {
        const int left = 120, top = MT + 4, size = H - top - 70;
        double cell = (double)size / n;
        for (int i = 0; i < n; i++) {
            mloc_buf_printf(b, "<text x=\"%d\" y=\"%.1f\" class=\"yt\">%s</text>", left - 6,
                            top + (i + 0.6) * cell, labels[i]);
            mloc_buf_printf(b, "<text transform=\"translate(%.1f,%d) rotate(-45)\" class=\"xt\">%s</text>",
                            left + (i + 0.5) * cell, top + size + 12, labels[i]);
            for (int j = 0; j < n; j++) {
                double v = m[i * n + j];
                char col[8], txt[32];
                heat_colour((v - lo) / (hi - lo), col);
                snprintf(txt, sizeof txt, fmt, v);
                mloc_buf_printf(b,
                                "<rect class=\"mark\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                                "<title>%s / %s: %s</title></rect>",
                                left + j * cell, top + i * cell, cell - 1, cell - 1, col, labels[i], labels[j], txt);
                if (cell >= 18)
                    mloc_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" class=\"cell%s\">%s</text>", left + (j + 0.5) * cell,
                                    top + (i + 0.62) * cell, (v - lo) / (hi - lo) > 0.6 ? " inv" : "", txt);
            }
        }
    }
    chart_close(b);
}

void mloc_svg_bars(mloc_buf *b, const char *title, const char *xlabel, const char *const *labels,
                   const double *v, int n) {
    double hi = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) hi = fmax(hi, v[i]);
    chart_open(b, "bars", n, title, &wide);
    if (n > 0) {
        const int left = 150, top = MT + 4, height = H - top - 30;
        double bh = (double)height / n;
        range xr = nice_range(0, hi > 0 ? hi : 1);
        for (int i = 0; i < n; i++) {
            double w = (v[i] - xr.lo) / (xr.hi - xr.lo) * (W - left - MR);
            mloc_buf_printf(b,
                            "<rect class=\"mark\" x=\"%d\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                            "<title>%s: %.4g</title></rect>",
                            left, top + i * bh + 1, w > 0 ? w : 0, bh - 2, palette[0], labels[i], v[i]);
            if (bh >= 10)
                mloc_buf_printf(b, "<text x=\"%d\" y=\"%.1f\" class=\"yt\">%s</text>", left - 6, top + (i + 0.7) * bh,
                                labels[i]);
        }
        x_label(b, xlabel);
    }
    chart_close(b);
}

/* ---- page ------------------------------------------------------------------ */

void mloc_html_begin(mloc_buf *b, const char *title) {
    mloc_buf_puts(b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>");
    mloc_buf_escape(b, title);
    mloc_buf_puts(b,
                  "</title><style>\n"
                  "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1100px;"
                  "padding:0 1em;color:#222}\n"
                  "h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}\n"
                  "table{border-collapse:collapse;margin:.8em 0}td,th{padding:3px 10px;border-bottom:1px solid #e5e5e5;"
                  "text-align:right}th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}\n"
                  "figure{display:inline-block;margin:.5em 1em .5em 0}svg{max-width:100%;height:auto;background:#fff}\n"
                  ".ct{font-size:14px;text-anchor:middle;font-weight:600}.yt{font-size:11px;text-anchor:end}"
                  ".xt{font-size:11px;text-anchor:end}.al{font-size:12px;text-anchor:middle}.lg{font-size:12px}"
                  ".grid{stroke:#eee}.zero{stroke:#999;stroke-dasharray:3 3}.marker{stroke:#d62728;stroke-dasharray:4 3}"
                  ".empty{font-size:14px;fill:#999;text-anchor:middle}.cell{font-size:10px;text-anchor:middle}"
                  ".cell.inv{fill:#fff}\n"
                  ".ok{color:#1a7f37;font-weight:600}.no{color:#b42318;font-weight:600}.muted{color:#777}"
                  "code{background:#f3f3f3;padding:1px 4px;border-radius:3px}\n"
                  "</style></head><body>\n");
}

void mloc_html_end(mloc_buf *b) { mloc_buf_puts(b, "</body></html>\n"); }
