/* Report building blocks: every chart declares as many marks as it draws,
 * empty charts say so, text is escaped, output is deterministic. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "memloc/report.h"
#include "test_util.h"

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static int declared(const char *s) {
    const char *p = strstr(s, "data-marks=\"");
    return p ? atoi(p + 12) : -1;
}

static void test_charts(void **state) {
    (void)state;
    const char *taps[] = {"prep", "layer1_head", "res1"};
    double a[] = {0.1, 0.2, NAN}, c[] = {0.3, -0.1, 0.4};
    mloc_series s[] = {{"LayerMem", a, 3, 0}, {"Top-50 <x>", c, 3, 1}};
    mloc_buf b = {0};
    mloc_svg_lines(&b, "LayerMem by tap", "LayerMem", taps, 3, s, 2);
    assert_false(b.failed);
    assert_int_equal(declared(b.s), 5); /* the NaN is a gap */
    assert_int_equal(count(b.s, "class=\"mark\""), 5);
    assert_non_null(strstr(b.s, "Top-50 &lt;x&gt;"));
    mloc_buf_free(&b);

    double v[] = {0.05, 0.5, 0.51, 0.95, 1.0, NAN};
    mloc_svg_histogram(&b, "UnitMem prep", v, 6, 0, 1, 10, 0.5);
    assert_int_equal(declared(b.s), 10);
    assert_int_equal(count(b.s, "class=\"mark\""), 10);
    assert_non_null(strstr(b.s, "[0.9, 1): 2"));
    mloc_buf_free(&b);

    double x[] = {1, 2, 3}, y[] = {3, 2, INFINITY};
    int g[] = {0, 1, 1};
    const char *gn[] = {"SSL", "supervised"};
    mloc_svg_scatter(&b, "scatter", "x", "y", x, y, 3, g, gn, 2);
    assert_int_equal(declared(b.s), 2);
    assert_int_equal(count(b.s, "class=\"mark\""), 2);
    mloc_buf_free(&b);

    double m[] = {100, 40, 40, 100};
    const char *lab[] = {"a", "b"};
    mloc_svg_heatmap(&b, "overlap", lab, 2, m, 0, 100, "%.0f");
    assert_int_equal(declared(b.s), 4);
    assert_int_equal(count(b.s, "class=\"mark\""), 4);
    mloc_buf_free(&b);

    double bars[] = {3, 0, 1};
    mloc_svg_bars(&b, "mu max", "units", taps, bars, 3);
    assert_int_equal(count(b.s, "class=\"mark\""), 3);
    mloc_buf_free(&b);

    /* empty data: a chart with 0 marks that says so */
    mloc_svg_histogram(&b, "empty", v, 0, 0, 1, 10, NAN);
    assert_int_equal(declared(b.s), 0);
    assert_non_null(strstr(b.s, "no data"));
    mloc_buf_free(&b);
}

static void test_deterministic_page(void **state) {
    (void)state;
    mloc_buf a = {0}, b = {0};
    for (int k = 0; k < 2; k++) {
        mloc_buf *p = k ? &b : &a;
        mloc_html_begin(p, "memloc <report>");
        double v[] = {0.2, 0.7};
        mloc_svg_histogram(p, "h", v, 2, 0, 1, 4, 0.5);
        mloc_html_end(p);
    }
    assert_string_equal(a.s, b.s);
    assert_non_null(strstr(a.s, "<title>memloc &lt;report&gt;</title>"));
    assert_null(strstr(a.s, "<script"));
    /* offline: the only URL is the SVG namespace */
    assert_int_equal(count(a.s, "http"), count(a.s, "http://www.w3.org/2000/svg"));
    mloc_buf_free(&a);
    mloc_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_charts), cmocka_unit_test(test_deterministic_page)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
