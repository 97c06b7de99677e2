/* Self-contained HTML reports with inline SVG charts: no scripts, no fonts,
 * no network, so a report opens anywhere, offline, and prints.
 *
 * Every chart is an <svg class="chart" data-chart="KIND" data-marks="N">
 * whose N data marks (points, bars, cells, line vertices) carry
 * class="mark"; an empty chart says so in text. Tests read these attributes
 * from the DOM a browser renders. */
#ifndef MEMLOC_REPORT_H
#define MEMLOC_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "memloc/context.h"

/* A growing text buffer; on allocation failure it sets `failed` and keeps
 * what it has. */
typedef struct {
    char *s;
    size_t n, cap;
    int failed;
} mloc_buf;

void mloc_buf_free(mloc_buf *b);
void mloc_buf_printf(mloc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mloc_buf_puts(mloc_buf *b, const char *s);
/* Append s with &, <, >, " and ' escaped. */
void mloc_buf_escape(mloc_buf *b, const char *s);

typedef struct {
    const char *name;   /* legend text */
    const double *y;    /* n values; NaN leaves a gap */
    int n;
    int dashed;
} mloc_series;

/* Line chart of several series over categorical x positions (e.g. taps). */
void mloc_svg_lines(mloc_buf *b, const char *title, const char *ylabel, const char *const *xlabels,
                    int nx, const mloc_series *s, int ns);
/* Histogram of values in [lo, hi] with `bins` bins; a vertical marker at
 * `mark` (NaN: none), e.g. the 0.5 threshold. */
void mloc_svg_histogram(mloc_buf *b, const char *title, const double *v, int n, double lo, double hi,
                        int bins, double mark);
/* Scatter plot; `group` (may be NULL) picks one of a few colours per point,
 * named by `group_names` (ngroups). */
void mloc_svg_scatter(mloc_buf *b, const char *title, const char *xlabel, const char *ylabel,
                      const double *x, const double *y, int n, const int *group,
                      const char *const *group_names, int ngroups);
/* n x n heat map of m (row-major) with labels; values printed in cells with
 * printf format fmt (e.g. "%.0f"); lo/hi fix the colour scale. */
void mloc_svg_heatmap(mloc_buf *b, const char *title, const char *const *labels, int n,
                      const double *m, double lo, double hi, const char *fmt);
/* Horizontal bars (e.g. how many units each point maximally activates). */
void mloc_svg_bars(mloc_buf *b, const char *title, const char *xlabel, const char *const *labels,
                   const double *v, int n);

/* The page frame: <!doctype html>, title, inline CSS; end closes it. */
void mloc_html_begin(mloc_buf *b, const char *title);
void mloc_html_end(mloc_buf *b);

#endif
