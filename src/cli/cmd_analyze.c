/* memloc analyze consistency|ttest|mumax RUN_DIR: the analyses of SPEC.md
 * section 7 on the outputs of memloc layermem / sslmem / unitmem. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"
#include "cmd_metrics.h"
#include "memloc/data.h"
#include "memloc/io.h"
#include "memloc/metrics.h"
#include "memloc/model.h"


static void print_help(void) {
    printf("usage: memloc analyze consistency RUN_DIR [--top-k 100] [--out DIR]\n"
           "       memloc analyze ttest RUN_DIR [--weights F] [--data SPEC] [--k 10] [--rest mean|median]\n"
           "                            [--welch] [--taps LIST] [--aug PRESET] [--out DIR]\n"
           "       memloc analyze mumax RUN_DIR [--tap NAME] [--weights F] [--data SPEC] [--k 10] [--out DIR]\n"
           "\n"
           "Examples:\n"
           "  memloc layermem --f f.safetensors --g g.safetensors --data cifar10:d --candidates 40000:45000 \\\n"
           "                  --out runs/lm\n"
           "  memloc analyze consistency runs/lm        # do the taps agree on which points are memorised?\n"
           "  memloc analyze ttest runs/lm              # UnitMem over Top-50 vs Least-50, per tap\n"
           "  memloc analyze mumax runs/lm              # which points maximally activate the last tap's units\n"
           "\n"
           "RUN_DIR is the --out directory of memloc layermem (or sslmem for mumax); results are\n"
           "written next to those files unless --out names another directory (SPEC.md section 7):\n"
           "  consistency  every pair of taps: overlap (%%) of the top-k candidates by SSLMem and\n"
           "               Kendall's tau-b with its two-sided p-value -> consistency.{json,csv}\n"
           "  ttest        per tap, UnitMem over the Top-50 and over the Least-50 candidates (f, the\n"
           "               encoder trained on them), one-sided two-sample t-test over the tap's units,\n"
           "               H1: Top-50 > Least-50; Student's pooled test (as the reference Ttest.py) or\n"
           "               --welch -> ttest.{json,csv}, ttest_top/ and ttest_least/ (unitmem.*)\n"
           "  mumax        for the units of the last tap (or --tap), how many units each point\n"
           "               maximally activates and that point's SSLMem rank -> mumax.{json,csv}; uses\n"
           "               RUN_DIR/unitmem.* if present, otherwise computes UnitMem over the SSLMem\n"
           "               candidates first (and writes unitmem.*)\n"
           "\n"
           "Options (default in brackets):\n"
           "  --top-k K              consistency: top-k size [100]\n"
           "  --weights FILE         ttest/mumax: the encoder f [the f recorded in RUN_DIR]\n"
           "  --data SPEC            ttest/mumax: the dataset [the one recorded in RUN_DIR]\n"
           "  --k K                  views per point for UnitMem [10]\n"
           "  --rest mean|median     UnitMem's rest statistic [mean]\n"
           "  --taps all|LIST        ttest: taps [all]\n"
           "  --tap NAME             mumax: the tap [the last one]\n"
           "  --welch                ttest: Welch's test instead of Student's\n"
           "  --aug PRESET           UnitMem's augmentation: none|simclr|unitmem [simclr]\n"
           METRICS_INPUT_HELP
           "  --seed S               seed of the augmentation draws [0]\n"
           "  --batch N              images per forward pass [64]\n"
           "  --out DIR              where to write [RUN_DIR]\n"
           "  -j, --jobs N, -q, --quiet, -v, --verbose\n");
}

enum { OPT_TOPK = 1000, OPT_WEIGHTS, OPT_DATA, OPT_K, OPT_REST, OPT_TAPS, OPT_TAP, OPT_WELCH, OPT_SEED,
       OPT_BATCH, OPT_OUT, OPT_HELP };

typedef struct {
    const char *run_dir, *out, *weights, *data, *taps, *tap;
    long long top_k, k, seed, batch;
    int rest, welch, quiet;
    metrics_input_opts aug;
} analyze_opts;

/* f and the dataset recorded in RUN_DIR's layermem.json / sslmem.json */
static mloc_status recorded_run(mloc_ctx *ctx, const char *dir, char **f, char **data) {
    *f = *data = NULL;
    const char *names[2] = {"layermem.json", "sslmem.json"};
    for (int i = 0; i < 2; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct stat sb;
        if (stat(path, &sb) != 0) continue;
        json_t *doc;
        MLOC_TRY(mloc_json_load(ctx, path, &doc));
        json_t *run = json_object_get(doc, "run");
        const char *fv = json_string_value(json_object_get(run, "f"));
        const char *dv = json_string_value(json_object_get(run, "data"));
        if (fv) *f = strdup(fv);
        if (dv) *data = strdup(dv);
        json_decref(doc);
        return MLOC_OK;
    }
    return mloc_error(ctx, MLOC_ERR_NOINPUT, "%s: no layermem.json or sslmem.json (run memloc layermem --out %s first)",
                      dir, dir);
}

typedef struct {
    mloc_model *m;
    mloc_dataset ds;
    mloc_aug_pipeline pipe;
    mloc_view_source src;
    char *f, *data;
    char digest[65];
} unit_env;

static mloc_status unit_env_open(mloc_ctx *ctx, unit_env *e, const analyze_opts *o, const char *cmd) {
    memset(e, 0, sizeof *e);
    char *rf = NULL, *rd = NULL;
    if (!o->weights || !o->data) MLOC_TRY(recorded_run(ctx, o->run_dir, &rf, &rd));
    e->f = o->weights ? strdup(o->weights) : rf;
    e->data = o->data ? strdup(o->data) : rd;
    if (o->weights) free(rf);
    if (o->data) free(rd);
    if (!e->f || !e->data)
        return mloc_error(ctx, MLOC_ERR_USAGE, "%s records no encoder f or dataset: give --weights and --data",
                          o->run_dir);
    MLOC_TRY(metrics_cli_open_model(ctx, e->f, &e->m));
    MLOC_TRY(metrics_cli_open_data(ctx, cmd, e->data, e->m, &o->aug, &e->ds, o->quiet));
    MLOC_TRY(metrics_cli_pipeline(ctx, e->m, &o->aug, &e->pipe));
    MLOC_TRY(mloc_view_source_dataset(ctx, &e->src, &e->ds, &e->pipe, (uint64_t)o->seed, MLOC_PURPOSE_UNITMEM));
    mloc_dataset_digest(&e->ds, e->digest);
    return MLOC_OK;
}

static void unit_env_close(unit_env *e) {
    mloc_model_free(e->m);
    mloc_dataset_free(&e->ds);
    free(e->f);
    free(e->data);
}

static mloc_metric_run unit_run(const unit_env *e, const analyze_opts *o, const char *cmd) {
    mloc_metric_run run = {.command = cmd, .f_path = e->f, .data_spec = e->ds.spec ? e->ds.spec : e->data,
                           .data_digest = e->digest, .aug_preset = o->aug.preset, .aug = &e->pipe,
                           .aug_seed = (uint64_t)o->seed, .purpose = MLOC_PURPOSE_UNITMEM, .seed = (uint64_t)o->seed};
    return run;
}

static mloc_unit_config unit_config(const analyze_opts *o) {
    mloc_unit_config uc = mloc_unitmem_config_default();
    uc.k = (int)o->k;
    uc.rest = (mloc_rest_stat)o->rest;
    uc.batch = (int)o->batch;
    return uc;
}

/* ---- consistency ---------------------------------------------------------------------- */

static mloc_status run_consistency(mloc_ctx *ctx, const analyze_opts *o) {
    mloc_sslmem_result r;
    MLOC_TRY(mloc_layermem_read(ctx, o->run_dir, &r));
    mloc_status st = MLOC_OK;
    if (r.n_taps < 2) {
        st = mloc_error(ctx, MLOC_ERR_USAGE, "%s holds SSLMem at %d tap: consistency needs the per-tap scores of "
                        "memloc layermem", o->run_dir, r.n_taps);
        mloc_sslmem_result_free(&r);
        return st;
    }
    const int P = r.n_taps * (r.n_taps - 1) / 2;
    mloc_consistency_pair *pairs = calloc((size_t)P, sizeof *pairs);
    if (!pairs) st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    if (st == MLOC_OK) st = mloc_metrics_consistency(ctx, &r, o->top_k, pairs);
    if (st == MLOC_OK) st = mloc_consistency_write(ctx, o->out, &r, o->top_k, pairs);
    if (st == MLOC_OK) {
        const int64_t k = o->top_k < r.n ? o->top_k : r.n;
        printf("Consistency of SSLMem across %d taps over %lld candidates (top-%lld overlap, Kendall tau-b)\n\n",
               r.n_taps, (long long)r.n, (long long)k);
        printf("%-18s %-18s %9s %9s %11s\n", "tap a", "tap b", "overlap%", "tau_b", "p");
        for (int p = 0; p < P; p++)
            printf("%-18s %-18s %9.1f %9.4f %11.3g\n", r.tap_names[pairs[p].a], r.tap_names[pairs[p].b],
                   pairs[p].overlap, pairs[p].kendall.tau, pairs[p].kendall.p);
    }
    free(pairs);
    mloc_sslmem_result_free(&r);
    return st;
}

/* ---- ttest ----------------------------------------------------------------------------- */

static mloc_status run_ttest(mloc_ctx *ctx, const analyze_opts *o) {
    int64_t *top = NULL, *least = NULL, n_top = 0;
    MLOC_TRY(mloc_layermem_read_subsets(ctx, o->run_dir, &top, &least, &n_top));
    unit_env e;
    mloc_unit_scores ut, ul;
    memset(&ut, 0, sizeof ut);
    memset(&ul, 0, sizeof ul);
    mloc_ttest *tests = NULL;
    int *taps = NULL, n_taps = 0;
    mloc_status st = unit_env_open(ctx, &e, o, "analyze ttest");
    if (st == MLOC_OK) st = mloc_metrics_parse_taps(ctx, e.m, o->taps, &taps, &n_taps);
    mloc_unit_config uc = unit_config(o);
    if (st == MLOC_OK && !o->quiet)
        fprintf(stderr, "memloc: analyze: UnitMem over the Top-%lld and the Least-%lld candidates (K %lld)\n",
                (long long)n_top, (long long)n_top, o->k);
    if (st == MLOC_OK) st = mloc_unitmem_compute(ctx, &ut, e.m, &e.src, top, n_top, taps, n_taps, &uc);
    if (st == MLOC_OK) st = mloc_unitmem_compute(ctx, &ul, e.m, &e.src, least, n_top, taps, n_taps, &uc);
    tests = calloc((size_t)(n_taps > 0 ? n_taps : 1), sizeof *tests);
    if (st == MLOC_OK && !tests) st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
    if (st == MLOC_OK) st = mloc_metrics_ttest(ctx, &ut, &ul, !o->welch, tests);
    char dir[4200];
    mloc_metric_run run = unit_run(&e, o, "analyze ttest");
    if (st == MLOC_OK) {
        snprintf(dir, sizeof dir, "%s/ttest_top", o->out);
        st = mloc_unit_scores_write(ctx, dir, "unitmem", &ut, &run);
    }
    if (st == MLOC_OK) {
        snprintf(dir, sizeof dir, "%s/ttest_least", o->out);
        st = mloc_unit_scores_write(ctx, dir, "unitmem", &ul, &run);
    }
    if (st == MLOC_OK) st = mloc_ttest_write(ctx, o->out, &ut, &ul, !o->welch, tests);
    if (st == MLOC_OK) {
        printf("UnitMem over Top-%lld vs Least-%lld candidates, one-sided %s t-test per tap (H1: Top > Least)\n\n",
               (long long)n_top, (long long)n_top, o->welch ? "Welch" : "Student");
        printf("%-18s %6s %10s %10s %9s %9s %11s\n", "tap", "units", "mean top", "mean least", "t", "dof", "p");
        for (int t = 0; t < ut.n_taps; t++) {
            const int a = ut.offset[t], U = ut.offset[t + 1] - a;
            double mt = 0, ml = 0;
            for (int i = 0; i < U; i++) {
                mt += ut.score[a + i];
                ml += ul.score[a + i];
            }
            printf("%-18s %6d %10.4f %10.4f %9.3f %9.1f %11.3g\n", ut.tap_names[t], U, mt / U, ml / U, tests[t].t,
                   tests[t].dof, tests[t].p);
        }
    }
    free(tests);
    free(taps);
    mloc_unit_scores_free(&ut);
    mloc_unit_scores_free(&ul);
    unit_env_close(&e);
    free(top);
    free(least);
    return st;
}

/* ---- mumax ------------------------------------------------------------------------------ */

static mloc_status run_mumax(mloc_ctx *ctx, const analyze_opts *o) {
    mloc_sslmem_result r;
    MLOC_TRY(mloc_layermem_read(ctx, o->run_dir, &r));
    mloc_unit_scores u;
    memset(&u, 0, sizeof u);
    unit_env e;
    memset(&e, 0, sizeof e);
    mloc_mumax_row *rows = NULL;
    int64_t n_rows = 0;
    mloc_status st = MLOC_OK;
    char path[4200];
    snprintf(path, sizeof path, "%s/unitmem.json", o->run_dir);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        st = mloc_unit_scores_read(ctx, o->run_dir, "unitmem", &u);
        if (st == MLOC_OK && !o->quiet)
            fprintf(stderr, "memloc: analyze: using %s (UnitMem over %lld points)\n", path, (long long)u.n);
    } else {
        /* UnitMem over the SSLMem candidates at the requested tap (default the encoder output) */
        st = unit_env_open(ctx, &e, o, "analyze mumax");
        int tap = -1;
        if (st == MLOC_OK) {
            const char *name = o->tap ? o->tap : r.out_tap;
            int *tl = NULL, nt = 0;
            st = mloc_metrics_parse_taps(ctx, e.m, name, &tl, &nt);
            if (st == MLOC_OK) tap = tl[0];
            free(tl);
        }
        mloc_unit_config uc = unit_config(o);
        if (st == MLOC_OK && !o->quiet)
            fprintf(stderr, "memloc: analyze: no %s: computing UnitMem of '%s' over the %lld candidates (K %lld)\n",
                    path, e.m->taps[tap].name, (long long)r.n, o->k);
        if (st == MLOC_OK) st = mloc_unitmem_compute(ctx, &u, e.m, &e.src, r.points, r.n, &tap, 1, &uc);
        mloc_metric_run run = unit_run(&e, o, "analyze mumax");
        if (st == MLOC_OK) st = mloc_unit_scores_write(ctx, o->out, "unitmem", &u, &run);
    }
    int t = u.n_taps - 1;
    if (st == MLOC_OK && o->tap) {
        t = -1;
        for (int i = 0; i < u.n_taps; i++)
            if (strcmp(u.tap_names[i], o->tap) == 0) t = i;
        if (t < 0) st = mloc_error(ctx, MLOC_ERR_USAGE, "--tap '%s': UnitMem in %s has no such tap", o->tap, o->run_dir);
    }
    if (st == MLOC_OK) st = mloc_metrics_mumax(ctx, &u, t, r.points, r.out_score, r.n, &rows, &n_rows);
    if (st == MLOC_OK) st = mloc_mumax_write(ctx, o->out, &u, t, rows, n_rows, r.n);
    if (st == MLOC_OK) {
        const int U = u.offset[t + 1] - u.offset[t];
        int64_t live = 0;
        for (int64_t i = 0; i < n_rows; i++) live += rows[i].units;
        printf("mu_max alignment of tap '%s': %d units (%lld live) maximally activated by %lld distinct points\n"
               "SSLMem ranks among %lld candidates (1 = highest SSLMem at %s)\n\n",
               u.tap_names[t], U, (long long)live, (long long)n_rows, (long long)r.n, r.out_tap);
        printf("%10s %6s %6s %12s\n", "index", "units", "rank", "sslmem");
        const int64_t show = n_rows < 20 ? n_rows : 20;
        for (int64_t i = 0; i < show; i++) {
            if (rows[i].rank > 0)
                printf("%10lld %6lld %6lld %12.6f\n", (long long)rows[i].point, (long long)rows[i].units,
                       (long long)rows[i].rank, rows[i].sslmem);
            else
                printf("%10lld %6lld %6s %12s\n", (long long)rows[i].point, (long long)rows[i].units, "-", "-");
        }
        if (n_rows > show) printf("(%lld more rows in %s/mumax.csv)\n", (long long)(n_rows - show), o->out);
    }
    free(rows);
    mloc_unit_scores_free(&u);
    unit_env_close(&e);
    mloc_sslmem_result_free(&r);
    return st;
}

int cmd_analyze(int argc, char **argv) {
    const char *cmd = "analyze";
    static const struct option opts[] = {
        {"top-k", required_argument, 0, OPT_TOPK},     {"weights", required_argument, 0, OPT_WEIGHTS},
        {"data", required_argument, 0, OPT_DATA},      {"k", required_argument, 0, OPT_K},
        {"rest", required_argument, 0, OPT_REST},      {"taps", required_argument, 0, OPT_TAPS},
        {"tap", required_argument, 0, OPT_TAP},        {"welch", no_argument, 0, OPT_WELCH},
        {"seed", required_argument, 0, OPT_SEED},      {"batch", required_argument, 0, OPT_BATCH},
        {"out", required_argument, 0, OPT_OUT},        METRICS_INPUT_OPTIONS,
        {"jobs", required_argument, 0, 'j'},           {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},              {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0}};
    static const char *const rest_names[] = {"mean", "median", NULL};
    static const char *const analyses[] = {"consistency", "ttest", "mumax", NULL};
    analyze_opts o = {.top_k = 100, .k = 10, .batch = 64, .rest = MLOC_REST_MEAN};
    o.aug = metrics_cli_input_defaults();
    long long jobs = 0;
    int verbose = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "j:qvh", opts, NULL)) != -1) {
        int a = metrics_cli_input_option(cmd, c, optarg, &o.aug);
        if (a < 0) return 64;
        if (a > 0) continue;
        switch (c) {
        case OPT_TOPK:
            if (!cli_parse_int(cmd, "--top-k", optarg, 1, 1LL << 40, &o.top_k)) return 64;
            break;
        case OPT_WEIGHTS: o.weights = optarg; break;
        case OPT_DATA: o.data = optarg; break;
        case OPT_K:
            if (!cli_parse_int(cmd, "--k", optarg, 1, 100000, &o.k)) return 64;
            break;
        case OPT_REST:
            if ((o.rest = cli_parse_choice(cmd, "--rest", optarg, rest_names)) < 0) return 64;
            break;
        case OPT_TAPS: o.taps = optarg; break;
        case OPT_TAP: o.tap = optarg; break;
        case OPT_WELCH: o.welch = 1; break;
        case OPT_SEED:
            if (!cli_parse_int(cmd, "--seed", optarg, 0, (long long)(~0ULL >> 1), &o.seed)) return 64;
            break;
        case OPT_BATCH:
            if (!cli_parse_int(cmd, "--batch", optarg, 1, 1 << 20, &o.batch)) return 64;
            break;
        case OPT_OUT: o.out = optarg; break;
        case 'j':
            if (!cli_parse_int(cmd, "--jobs", optarg, 0, 4096, &jobs)) return 64;
            break;
        case 'q': o.quiet = 1; break;
        case 'v': verbose++; break;
        case 'h':
        case OPT_HELP: print_help(); return 0;
        default: return cli_usage(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 2)
        return cli_usage(cmd, "expected an analysis (consistency, ttest or mumax) and a RUN_DIR");
    int which = cli_parse_choice(cmd, "analysis", argv[optind], analyses);
    if (which < 0) return 64;
    o.run_dir = argv[optind + 1];
    if (!o.out) o.out = o.run_dir;

    cli_common common = {.cmd = cmd, .threads = (int)jobs, .seed = (uint64_t)o.seed, .quiet = o.quiet,
                         .verbose = verbose};
    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) return 70;
    mloc_status st = which == 0 ? run_consistency(ctx, &o) : which == 1 ? run_ttest(ctx, &o) : run_mumax(ctx, &o);
    int rc = 0;
    if (st != MLOC_OK) rc = cli_fail(ctx, st, cmd);
    else if (!o.quiet) fprintf(stderr, "memloc: analyze: results in %s/%s.json\n", o.out, analyses[which]);
    mloc_ctx_destroy(ctx);
    return rc;
}
