/* memloc layermem / memloc sslmem: SSLMem per point at every tap (or at the
 * encoder output), LayerMem and the standard table (SPEC.md sections 2-3).
 *
 * This file also holds the helpers the metric commands share (cmd_metrics.h):
 * the input options, opening an encoder and a dataset fitted to it, and the
 * per-tap summary table. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_metrics.h"
#include "memloc/analysis.h"
#include "memloc/data.h"
#include "memloc/io.h"
#include "memloc/metrics.h"
#include "memloc/model.h"
#include "memloc/stats.h"

/* ---- helpers shared by the metric commands (cmd_metrics.h) ------------------------ */

metrics_input_opts metrics_cli_input_defaults(void) {
    metrics_input_opts o = {.preset = "simclr", .strength = 1.0, .crop_scale_min = 0.08, .input_norm = "half", .compat = 0,
                            .fit = MLOC_EVAL_AUTO, .channels = MLOC_EVAL_AUTO};
    return o;
}

int metrics_cli_input_option(const char *cmd, int opt, const char *arg, metrics_input_opts *o) {
    static const char *const presets[] = {"none", "simclr", "unitmem", NULL};
    static const char *const norms[] = {"half", "cifar10", "cifar100", "stl10", "imagenet", NULL};
    static const char *const fits[] = {"auto", "none", "pad", "resize", NULL};
    static const int fit_values[] = {MLOC_EVAL_AUTO, MLOC_FIT_NONE, MLOC_FIT_PAD, MLOC_FIT_RESIZE};
    static const char *const channels[] = {"auto", "1", "3", NULL};
    static const int channel_values[] = {MLOC_EVAL_AUTO, 1, 3};
    int i;
    switch (opt) {
    case OPT_AUG:
        if (cli_parse_choice(cmd, "--aug", arg, presets) < 0) return -1;
        o->preset = arg;
        return 1;
    case OPT_AUG_STRENGTH:
        if (!cli_parse_double(cmd, "--aug-strength", arg, 0, 100, &o->strength)) return -1;
        return 1;
    case OPT_CROP_SCALE_MIN:
        if (!cli_parse_double(cmd, "--crop-scale-min", arg, 1e-6, 1, &o->crop_scale_min)) return -1;
        return 1;
    case OPT_INPUT_NORM:
        if (cli_parse_choice(cmd, "--input-norm", arg, norms) < 0) return -1;
        o->input_norm = arg;
        return 1;
    case OPT_COMPAT: o->compat = 1; return 1;
    case OPT_FIT:
        if ((i = cli_parse_choice(cmd, "--fit", arg, fits)) < 0) return -1;
        o->fit = fit_values[i];
        return 1;
    case OPT_CHANNELS:
        if ((i = cli_parse_choice(cmd, "--channels", arg, channels)) < 0) return -1;
        o->channels = channel_values[i];
        return 1;
    default: return 0;
    }
}

mloc_status metrics_cli_pipeline(mloc_ctx *ctx, const mloc_model *m, const metrics_input_opts *o,
                                 mloc_aug_pipeline *pipe) {
    mloc_aug_config ac = mloc_aug_config_default();
    MLOC_TRY(mloc_aug_preset_parse(ctx, o->preset, &ac.preset));
    MLOC_TRY(mloc_aug_norm_parse(ctx, o->input_norm, &ac.norm));
    ac.strength = (float)o->strength;
    ac.crop_scale_min = (float)o->crop_scale_min;
    ac.compat_normalize_first = o->compat;
    if (m->cfg.image_h != m->cfg.image_w)
        return mloc_error(ctx, MLOC_ERR_UNSUPPORTED, "the encoder takes %dx%d images; the metrics' augmentations "
                          "make square views", m->cfg.image_h, m->cfg.image_w);
    ac.size = m->cfg.image_h;
    return mloc_aug_pipeline_make(ctx, pipe, &ac);
}

mloc_status metrics_cli_open_model(mloc_ctx *ctx, const char *path, mloc_model **m) {
    return mloc_model_open(ctx, m, path, MLOC_HEAD_NONE);
}

mloc_status metrics_cli_open_data(mloc_ctx *ctx, const char *cmd, const char *spec, const mloc_model *m,
                                  const metrics_input_opts *o, mloc_dataset *ds, int quiet) {
    mloc_eval_data_options dopt = mloc_eval_data_options_default();
    dopt.fit = o->fit;
    dopt.channels = o->channels;
    MLOC_TRY(mloc_eval_dataset_open(ctx, ds, spec, m, &dopt));
    if (ds->prep && !quiet) fprintf(stderr, "memloc: %s: note: %s: %s\n", cmd, spec, ds->prep);
    return MLOC_OK;
}

void metrics_cli_print_units(mloc_ctx *ctx, const mloc_unit_scores *u) {
    printf("%-18s %6s %8s %8s %8s %8s %8s %7s %7s %5s\n", "tap", "units", "mean", "min", "q25", "median", "max",
           ">0.5", ">0.9", "dead");
    for (int t = 0; t < u->n_taps; t++) {
        mloc_unit_summary s;
        if (mloc_unit_summarize(ctx, u, t, &s) != MLOC_OK) continue;
        printf("%-18s %6lld %8.4f %8.4f %8.4f %8.4f %8.4f %6.1f%% %6.1f%% %5lld\n", u->tap_names[t],
               (long long)s.units, s.mean, s.q[0], s.q[1], s.q[2], s.q[4], 100 * s.share_05, 100 * s.share_09,
               (long long)s.dead);
    }
}

char *metrics_cli_abs_path(const char *path) {
    char *a = path ? realpath(path, NULL) : NULL;
    return a ? a : path ? strdup(path) : NULL;
}

char *metrics_cli_abs_spec(mloc_ctx *ctx, const char *spec) {
    mloc_dataset_spec ps;
    if (!spec || mloc_dataset_spec_parse(ctx, &ps, spec) != MLOC_OK) {
        mloc_ctx_clear_error(ctx);
        return spec ? strdup(spec) : NULL;
    }
    char *out = NULL, *abs_path = ps.path ? realpath(ps.path, NULL) : NULL;
    if (abs_path) {
        free(ps.path);
        ps.path = abs_path;
        out = mloc_dataset_spec_format(&ps);
    }
    mloc_dataset_spec_free(&ps);
    return out ? out : strdup(spec);
}

/* ---- layermem / sslmem -------------------------------------------------------------- */

static void print_help(int layermem) {
    if (layermem)
        printf("usage: memloc layermem --f F.safetensors --g G.safetensors --data SPEC\n"
               "                       --candidates INDICES --out DIR [options]\n"
               "\n"
               "Examples:\n"
               "  memloc layermem --f runs/f/model.safetensors --g runs/g/model.safetensors \\\n"
               "                  --data cifar10:data/cifar-10-batches-bin --candidates 40000:45000 --out runs/lm\n"
               "  memloc layermem --f f.safetensors --g g.safetensors --data folder:cifar10.tar.gz/train \\\n"
               "                  --split runs/f/split.json --views pair --norm minmax --out runs/lm-pair\n"
               "  memloc layermem ... --taps layer1_head,res1,res2 --eval 100 --k 10 --out runs/lm3\n"
               "\n"
               "SSLMem^l(x) = d_g^l(x) - d_f^l(x) at every tap l for the candidates x (seen by f,\n"
               "not by g), where d_h^l(x) is the mean distance, over K augmentations, between the\n"
               "l2-normalised tap outputs of two views of x (SPEC.md sections 2-3). f and g see\n"
               "the same augmentation draws. Prints the paper's Table 1: LayerMem on 100 random\n"
               "candidates, DeltaLayerMem, LayerMem on the Top-50 and its Delta, and on the\n"
               "Least-50 (ranked by SSLMem at the encoder output), after normalising each tap's\n"
               "scores by their range over the evaluated candidates.\n"
               "\n"
               "DIR receives layermem.json (table, variant, subsets), layermem_table.csv,\n"
               "layermem_points.csv and layermem_{points,sslmem,norm,d_f,d_g,out}.npy.\n");
    else
        printf("usage: memloc sslmem --f F.safetensors --g G.safetensors --data SPEC\n"
               "                     --candidates INDICES --out DIR [options]\n"
               "\n"
               "Examples:\n"
               "  memloc sslmem --f runs/f/model.safetensors --g runs/g/model.safetensors \\\n"
               "                --data cifar10:data/cifar-10-batches-bin --candidates 40000:45000 --out runs/ssl\n"
               "  memloc sslmem ... --views pair --k 10 --eval 0 --out runs/ssl-all\n"
               "\n"
               "Per-point SSLMem at the encoder output (the last tap): SSLMem(x) = d_g(x) - d_f(x)\n"
               "(SPEC.md sections 2-3). Prints a summary and the 10 candidates of highest SSLMem.\n"
               "\n"
               "DIR receives sslmem.json, sslmem_points.csv (index, rank, sslmem, sslmem_norm,\n"
               "d_f, d_g) and sslmem_{points,score,norm,d_f,d_g}.npy.\n");
    printf("\n"
           "Options (default in brackets):\n"
           "  --f FILE               encoder f, trained on the candidates (safetensors, memloc or PyTorch names)\n"
           "  --g FILE               encoder g, not trained on them; same architecture as f\n"
           "  --data SPEC            dataset holding the candidates (see memloc data info)\n"
           "  --candidates INDICES   candidate indices into it: \"40000:45000\", \"7,9\", \"@FILE\"\n"
           "  --split FILE           or: the candidate set of a split.json (its dataset if --data is absent)\n"
           "  --eval N               candidates evaluated, chosen with --seed; 0: all [500]\n"
           "  --seed S               seed of the choices and of the augmentation draws [0]\n"
           "  --views clean|pair     clean: x vs a_k(x) (reference code); pair: a_2k(x) vs a_2k+1(x)\n"
           "                         (the papers) [clean]\n"
           "  --k K                  augmentation draws per candidate [5]\n"
           "  --norm range|minmax|none  score normalisation over the evaluated candidates [range]\n"
           "  --aug PRESET           none|simclr|unitmem; simclr is the training pipeline [simclr]\n"
           METRICS_INPUT_HELP);
    if (layermem)
        printf("  --taps all|LIST        taps, comma-separated (memloc info lists them) [all]\n"
               "  --random N             candidates of the random LayerMem column [100]\n"
               "  --top N                size of Top and Least [50]\n");
    printf("  --batch N              images per forward pass [64]\n"
           "  --out DIR              output directory (required)\n"
           "  -j, --jobs N           threads [all CPUs]\n"
           "  -q, --quiet            no progress output\n"
           "  -v, --verbose          more diagnostics\n");
}

enum {
    OPT_F = 1000, OPT_G, OPT_DATA, OPT_CAND, OPT_SPLIT, OPT_EVAL, OPT_SEED, OPT_VIEWS, OPT_K, OPT_NORM,
    OPT_TAPS, OPT_RANDOM, OPT_TOP, OPT_BATCH, OPT_OUT, OPT_HELP
};

static void print_table(const mloc_sslmem_result *r, const mloc_layermem_table *t) {
    char top[32], dtop[32], least[32];
    snprintf(top, sizeof top, "Top-%lld", (long long)t->n_top);
    snprintf(dtop, sizeof dtop, "DeltaTop-%lld", (long long)t->n_top);
    snprintf(least, sizeof least, "Least-%lld", (long long)t->n_top);
    printf("LayerMem over %lld candidates (norm %s, views %s, K %d); random column: %lld candidates\n\n",
           (long long)r->n, mloc_score_norm_name(t->norm), mloc_views_mode_name(r->cfg.views), r->cfg.k,
           (long long)t->n_random);
    printf("%-18s %10s %10s %10s %12s %10s\n", "tap", "LayerMem", "Delta", top, dtop, least);
    for (int l = 0; l < r->n_taps; l++)
        printf("%-18s %10.4f %10.4f %10.4f %12.4f %10.4f\n", r->tap_names[l], t->random[l], t->delta[l], t->top[l],
               t->delta_top[l], t->least[l]);
}

static void print_sslmem(mloc_ctx *ctx, const mloc_sslmem_result *r, mloc_score_norm norm) {
    const int T = r->n_taps;
    double lo = r->out_score[0], hi = r->out_score[0];
    for (int64_t i = 0; i < r->n; i++) {
        if (r->out_score[i] < lo) lo = r->out_score[i];
        if (r->out_score[i] > hi) hi = r->out_score[i];
    }
    const double mean = mloc_stats_mean(r->out_score, r->n), range = hi - lo > 0 ? hi - lo : 1;
    printf("SSLMem at %s over %lld candidates (views %s, K %d): mean %.6f, min %.6f, max %.6f\n", r->out_tap,
           (long long)r->n, mloc_views_mode_name(r->cfg.views), r->cfg.k, mean, lo, hi);
    if (norm == MLOC_NORM_RANGE) printf("normalised by the range (max - min): mean %.4f\n", mean / range);
    if (norm == MLOC_NORM_MINMAX) printf("normalised to [0, 1]: mean %.4f\n", (mean - lo) / range);
    int64_t *order = malloc((size_t)r->n * sizeof *order);
    if (!order || mloc_stats_argsort(ctx, r->out_score, r->n, 1, order) != MLOC_OK) {
        free(order);
        return;
    }
    const int64_t show = r->n < 10 ? r->n : 10;
    printf("\n%6s %10s %12s %12s %12s\n", "rank", "index", "sslmem", "d_f", "d_g");
    for (int64_t k = 0; k < show; k++) {
        const int64_t i = order[k];
        printf("%6lld %10lld %12.6f %12.6f %12.6f\n", (long long)k + 1, (long long)r->points[i], r->out_score[i],
               r->d_f[i * T + T - 1], r->d_g[i * T + T - 1]);
    }
    free(order);
}

int metrics_cli_layermem(int argc, char **argv, int layermem) {
    const char *cmd = layermem ? "layermem" : "sslmem";
    static const struct option opts[] = {
        {"f", required_argument, 0, OPT_F},          {"g", required_argument, 0, OPT_G},
        {"data", required_argument, 0, OPT_DATA},    {"candidates", required_argument, 0, OPT_CAND},
        {"split", required_argument, 0, OPT_SPLIT},  {"eval", required_argument, 0, OPT_EVAL},
        {"seed", required_argument, 0, OPT_SEED},    {"views", required_argument, 0, OPT_VIEWS},
        {"k", required_argument, 0, OPT_K},          {"norm", required_argument, 0, OPT_NORM},
        {"taps", required_argument, 0, OPT_TAPS},    {"random", required_argument, 0, OPT_RANDOM},
        {"top", required_argument, 0, OPT_TOP},      {"batch", required_argument, 0, OPT_BATCH},
        {"out", required_argument, 0, OPT_OUT},      METRICS_INPUT_OPTIONS,
        {"jobs", required_argument, 0, 'j'},         {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},            {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0}};
    const char *fpath = NULL, *gpath = NULL, *data = NULL, *cand = NULL, *split = NULL, *out = NULL,
               *taps_text = NULL;
    long long eval = 500, seed = 0, k = 5, random_n = 100, top = 50, batch = 64, jobs = 0;
    int views = MLOC_VIEWS_CLEAN, norm = MLOC_NORM_RANGE, quiet = 0, verbose = 0;
    metrics_input_opts aug = metrics_cli_input_defaults();
    optind = 1;
    opterr = 0;
    int c;
    static const char *const view_names[] = {"clean", "pair", NULL};
    static const char *const norm_names[] = {"range", "minmax", "none", NULL};
    while ((c = getopt_long(argc, argv, "j:qvh", opts, NULL)) != -1) {
        int a = metrics_cli_input_option(cmd, c, optarg, &aug);
        if (a < 0) return 64;
        if (a > 0) continue;
        switch (c) {
        case OPT_F: fpath = optarg; break;
        case OPT_G: gpath = optarg; break;
        case OPT_DATA: data = optarg; break;
        case OPT_CAND: cand = optarg; break;
        case OPT_SPLIT: split = optarg; break;
        case OPT_EVAL:
            if (!cli_parse_int(cmd, "--eval", optarg, 0, 1LL << 40, &eval)) return 64;
            break;
        case OPT_SEED:
            if (!cli_parse_int(cmd, "--seed", optarg, 0, (long long)(~0ULL >> 1), &seed)) return 64;
            break;
        case OPT_VIEWS:
            if ((views = cli_parse_choice(cmd, "--views", optarg, view_names)) < 0) return 64;
            break;
        case OPT_K:
            if (!cli_parse_int(cmd, "--k", optarg, 1, 100000, &k)) return 64;
            break;
        case OPT_NORM:
            if ((norm = cli_parse_choice(cmd, "--norm", optarg, norm_names)) < 0) return 64;
            break;
        case OPT_TAPS:
            if (!layermem) return cli_usage(cmd, "--taps: sslmem evaluates the encoder output; use memloc layermem");
            taps_text = optarg;
            break;
        case OPT_RANDOM:
            if (!cli_parse_int(cmd, "--random", optarg, 1, 1LL << 40, &random_n)) return 64;
            break;
        case OPT_TOP:
            if (!cli_parse_int(cmd, "--top", optarg, 1, 1LL << 40, &top)) return 64;
            break;
        case OPT_BATCH:
            if (!cli_parse_int(cmd, "--batch", optarg, 1, 1 << 20, &batch)) return 64;
            break;
        case OPT_OUT: out = optarg; break;
        case 'j':
            if (!cli_parse_int(cmd, "--jobs", optarg, 0, 4096, &jobs)) return 64;
            break;
        case 'q': quiet = 1; break;
        case 'v': verbose++; break;
        case 'h':
        case OPT_HELP: print_help(layermem); return 0;
        default:
            return cli_usage(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    if (!fpath || !gpath) return cli_usage(cmd, "--f and --g (the two encoders) are required");
    if (!out) return cli_usage(cmd, "--out DIR is required");
    if (!cand && !split) return cli_usage(cmd, "--candidates INDICES (or --split FILE) is required");
    if (cand && split) return cli_usage(cmd, "give --candidates or --split, not both");

    cli_common common = {.cmd = cmd, .threads = (int)jobs, .seed = (uint64_t)seed, .quiet = quiet,
                         .verbose = verbose};
    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) return 70;
    mloc_model *f = NULL, *g = NULL;
    mloc_dataset ds;
    memset(&ds, 0, sizeof ds);
    mloc_split sp;
    memset(&sp, 0, sizeof sp);
    int64_t *cands = NULL, n_cand = 0, *pos = NULL, *points = NULL, n = 0;
    int *taps = NULL, n_taps = 0;
    mloc_sslmem_result r;
    memset(&r, 0, sizeof r);
    mloc_layermem_table t;
    memset(&t, 0, sizeof t);
    mloc_status st = MLOC_OK;
    char digest[65], *f_abs = NULL, *g_abs = NULL, *data_abs = NULL;

    st = metrics_cli_open_model(ctx, fpath, &f);
    if (st == MLOC_OK) st = metrics_cli_open_model(ctx, gpath, &g);
    if (st == MLOC_OK) st = mloc_metrics_check_pair(ctx, f, g);
    if (st == MLOC_OK && split) {
        st = mloc_split_read(ctx, &sp, split);
        if (st == MLOC_OK && !data) data = sp.dataset;
        if (st == MLOC_OK && !data) st = mloc_error(ctx, MLOC_ERR_USAGE, "%s names no dataset: give --data", split);
    }
    if (st == MLOC_OK && !data) st = mloc_error(ctx, MLOC_ERR_USAGE, "--data SPEC is required");
    if (st == MLOC_OK) st = metrics_cli_open_data(ctx, cmd, data, f, &aug, &ds, quiet);
    if (st != MLOC_OK) goto done;
    if (split) {
        for (int64_t i = 0; i < sp.n_candidate && st == MLOC_OK; i++)
            if (sp.candidate[i] >= ds.n)
                st = mloc_error(ctx, MLOC_ERR_USAGE, "%s: candidate %lld is outside %s (%lld images)", split,
                                (long long)sp.candidate[i], data, (long long)ds.n);
        cands = malloc((size_t)(sp.n_candidate > 0 ? sp.n_candidate : 1) * sizeof *cands);
        if (st == MLOC_OK && !cands) st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        if (st == MLOC_OK) {
            memcpy(cands, sp.candidate, (size_t)sp.n_candidate * sizeof *cands);
            n_cand = sp.n_candidate;
        }
    } else {
        st = mloc_indices_parse(ctx, cand, ds.n, &cands, &n_cand);
        if (st != MLOC_OK) st = mloc_error_prefix(ctx, st, "--candidates");
    }
    if (st == MLOC_OK && n_cand < 1) st = mloc_error(ctx, MLOC_ERR_USAGE, "no candidates to evaluate");
    if (st != MLOC_OK) goto done;
    /* C_eval: --eval of them, chosen with the seed, in candidate order */
    pos = malloc((size_t)n_cand * sizeof *pos);
    points = malloc((size_t)n_cand * sizeof *points);
    if (!pos || !points) {
        st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory for %lld candidates", (long long)n_cand);
        goto done;
    }
    st = mloc_metrics_choose(ctx, n_cand, eval > 0 ? eval : n_cand, (uint64_t)seed, "layermem-eval", pos, &n);
    if (st != MLOC_OK) goto done;
    for (int64_t i = 0; i < n; i++) points[i] = cands[pos[i]];
    if (layermem) {
        st = mloc_metrics_parse_taps(ctx, f, taps_text, &taps, &n_taps);
    } else {
        taps = malloc(sizeof *taps);
        if (!taps) st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        else {
            taps[0] = f->n_taps - 1;
            n_taps = 1;
        }
    }
    mloc_aug_pipeline pipe;
    mloc_view_source src;
    if (st == MLOC_OK) st = metrics_cli_pipeline(ctx, f, &aug, &pipe);
    if (st == MLOC_OK) st = mloc_view_source_dataset(ctx, &src, &ds, &pipe, (uint64_t)seed, MLOC_PURPOSE_SSLMEM);
    if (st != MLOC_OK) goto done;
    if (!quiet)
        fprintf(stderr, "memloc: %s: %lld of %lld candidates, %d tap(s), views %s, K %lld, aug %s\n", cmd,
                (long long)n, (long long)n_cand, n_taps, view_names[views], k, aug.preset);
    mloc_sslmem_config sc = mloc_sslmem_config_default();
    sc.views = (mloc_views_mode)views;
    sc.k = (int)k;
    sc.batch = (int)batch;
    st = mloc_sslmem_compute(ctx, &r, f, g, &src, points, n, taps, n_taps, &sc);
    if (st != MLOC_OK) goto done;
    mloc_dataset_digest(&ds, digest);
    f_abs = metrics_cli_abs_path(fpath);
    g_abs = metrics_cli_abs_path(gpath);
    data_abs = metrics_cli_abs_spec(ctx, ds.spec ? ds.spec : data);
    mloc_metric_run run = {.command = cmd, .f_path = f_abs, .g_path = g_abs, .data_spec = data_abs,
                           .data_digest = digest, .aug_preset = aug.preset, .aug = &pipe,
                           .aug_seed = (uint64_t)seed, .purpose = MLOC_PURPOSE_SSLMEM, .seed = (uint64_t)seed,
                           .candidates = n_cand};
    if (layermem) {
        mloc_layermem_config lc = mloc_layermem_config_default();
        lc.norm = (mloc_score_norm)norm;
        lc.n_random = random_n;
        lc.top = top;
        lc.seed = (uint64_t)seed;
        st = mloc_layermem_table_make(ctx, &t, &r, &lc, NULL, 0);
        if (st == MLOC_OK) st = mloc_layermem_write(ctx, out, &r, &t, &run);
        if (st == MLOC_OK) print_table(&r, &t);
    } else {
        st = mloc_sslmem_write(ctx, out, &r, (mloc_score_norm)norm, &run);
        if (st == MLOC_OK) print_sslmem(ctx, &r, (mloc_score_norm)norm);
    }
    if (st == MLOC_OK && !quiet) fprintf(stderr, "memloc: %s: results in %s/%s.json\n", cmd, out, cmd);
done:;
    int rc = st == MLOC_OK ? 0 : cli_fail(ctx, st, cmd);
    mloc_layermem_table_free(&t);
    mloc_sslmem_result_free(&r);
    free(f_abs);
    free(g_abs);
    free(data_abs);
    free(taps);
    free(pos);
    free(points);
    free(cands);
    mloc_split_free(&sp);
    mloc_dataset_free(&ds);
    mloc_model_free(f);
    mloc_model_free(g);
    mloc_ctx_destroy(ctx);
    return rc;
}

int cmd_layermem(int argc, char **argv) { return metrics_cli_layermem(argc, argv, 1); }
