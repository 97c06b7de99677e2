/* memloc classmem: ClassMem of every unit of every tap (SPEC.md section 4). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_metrics.h"
#include "memloc/data.h"
#include "memloc/metrics.h"
#include "memloc/model.h"


static void print_help(void) {
    printf("usage: memloc classmem --weights F.safetensors --data SPEC --per-class N --out DIR [options]\n"
           "\n"
           "Examples:\n"
           "  memloc classmem --weights runs/sup/model.safetensors --data cifar10:data/cifar-10-batches-bin \\\n"
           "                  --per-class 500 --out runs/cm\n"
           "  memloc classmem --weights f.safetensors --data folder:cifar10.tar.gz/train --per-class 100 \\\n"
           "                  --random-per-class --rest median --out runs/cm-med\n"
           "  memloc classmem ... --aug simclr --k 10 --out runs/cm-aug   # average augmented views\n"
           "\n"
           "For every unit u of every tap: mu_{c,u} = mean activation (spatial mean of the channel)\n"
           "over the images of class c; ClassMem = (max_c mu - rest) / (max_c mu + rest), rest the\n"
           "mean (or median) of the other classes' means (SPEC.md section 4). Images are not\n"
           "augmented unless --aug asks for it. Per class, not the reference code's cumulative\n"
           "list (SPEC.md section 6). Prints per-tap summaries.\n"
           "\n"
           "DIR receives classmem.json, classmem_summary.csv, classmem_units.csv (tap, unit,\n"
           "classmem, mu_max, mu_rest, argmax_class, dead) and classmem_*.npy.\n"
           "\n"
           "Options (default in brackets):\n"
           "  --weights FILE         the encoder\n"
           "  --data SPEC            labelled dataset (see memloc data info)\n"
           "  --indices INDICES      restrict to these images first [all]\n"
           "  --per-class N          images per class: the first N of each class; 0: all [0]\n"
           "  --random-per-class     choose the N images of each class with --seed instead\n"
           "  --rest mean|median     statistic of the other classes [mean]\n"
           "  --abs                  use magnitudes (mean of |a|) for taps with signed activations\n"
           "  --taps all|LIST        taps, comma-separated [all]\n"
           "  --aug PRESET           none|simclr|unitmem: augmented views instead of the image [none]\n"
           "  --k K                  views per image with --aug [10]\n"
           METRICS_INPUT_HELP
           "  --seed S               seed of the choices and augmentation draws [0]\n"
           "  --batch N              images per forward pass [64]\n"
           "  --out DIR              output directory (required)\n"
           "  -j, --jobs N           threads [all CPUs]\n"
           "  -q, --quiet            no progress output\n"
           "  -v, --verbose          more diagnostics\n");
}

enum { OPT_WEIGHTS = 1000, OPT_DATA, OPT_INDICES, OPT_PER_CLASS, OPT_RANDOM, OPT_K, OPT_REST, OPT_ABS, OPT_TAPS,
       OPT_SEED, OPT_BATCH, OPT_OUT, OPT_HELP };

int cmd_classmem(int argc, char **argv) {
    const char *cmd = "classmem";
    static const struct option opts[] = {
        {"weights", required_argument, 0, OPT_WEIGHTS}, {"data", required_argument, 0, OPT_DATA},
        {"indices", required_argument, 0, OPT_INDICES}, {"per-class", required_argument, 0, OPT_PER_CLASS},
        {"random-per-class", no_argument, 0, OPT_RANDOM}, {"k", required_argument, 0, OPT_K},
        {"rest", required_argument, 0, OPT_REST},       {"abs", no_argument, 0, OPT_ABS},
        {"taps", required_argument, 0, OPT_TAPS},       {"seed", required_argument, 0, OPT_SEED},
        {"batch", required_argument, 0, OPT_BATCH},     {"out", required_argument, 0, OPT_OUT},
        METRICS_INPUT_OPTIONS,
        {"jobs", required_argument, 0, 'j'},            {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},               {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0}};
    static const char *const rest_names[] = {"mean", "median", NULL};
    const char *weights = NULL, *data = NULL, *indices = NULL, *taps_text = NULL, *out = NULL;
    long long per_class = 0, k = 10, seed = 0, batch = 64, jobs = 0;
    int rest = MLOC_REST_MEAN, abs_ = 0, random = 0, quiet = 0, verbose = 0;
    metrics_input_opts aug = metrics_cli_input_defaults();
    aug.preset = "none";
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "j:qvh", opts, NULL)) != -1) {
        int a = metrics_cli_input_option(cmd, c, optarg, &aug);
        if (a < 0) return 64;
        if (a > 0) continue;
        switch (c) {
        case OPT_WEIGHTS: weights = optarg; break;
        case OPT_DATA: data = optarg; break;
        case OPT_INDICES: indices = optarg; break;
        case OPT_PER_CLASS:
            if (!cli_parse_int(cmd, "--per-class", optarg, 0, 1LL << 40, &per_class)) return 64;
            break;
        case OPT_RANDOM: random = 1; break;
        case OPT_K:
            if (!cli_parse_int(cmd, "--k", optarg, 1, 100000, &k)) return 64;
            break;
        case OPT_REST:
            if ((rest = cli_parse_choice(cmd, "--rest", optarg, rest_names)) < 0) return 64;
            break;
        case OPT_ABS: abs_ = 1; break;
        case OPT_TAPS: taps_text = optarg; break;
        case OPT_SEED:
            if (!cli_parse_int(cmd, "--seed", optarg, 0, (long long)(~0ULL >> 1), &seed)) return 64;
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
        case OPT_HELP: print_help(); return 0;
        default: return cli_usage(cmd, "unknown option or missing value: '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    if (!weights || !data) return cli_usage(cmd, "--weights FILE and --data SPEC are required");
    if (!out) return cli_usage(cmd, "--out DIR is required");
    const int augment = strcmp(aug.preset, "none") != 0;

    cli_common common = {.cmd = cmd, .threads = (int)jobs, .seed = (uint64_t)seed, .quiet = quiet,
                         .verbose = verbose};
    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) return 70;
    mloc_model *m = NULL;
    mloc_dataset ds;
    memset(&ds, 0, sizeof ds);
    int64_t *base = NULL, n_base = 0, *sel = NULL, n = 0, *points = NULL;
    int32_t *labels = NULL, *sub = NULL;
    int *taps = NULL, n_taps = 0;
    mloc_unit_scores u;
    memset(&u, 0, sizeof u);
    mloc_aug_pipeline pipe;
    mloc_view_source src;
    char digest[65], *w_abs = NULL, *data_abs = NULL;
    mloc_status st = metrics_cli_open_model(ctx, weights, &m);
    if (st == MLOC_OK) st = mloc_metrics_parse_taps(ctx, m, taps_text, &taps, &n_taps);
    if (st == MLOC_OK) st = metrics_cli_open_data(ctx, cmd, data, m, &aug, &ds, quiet);
    if (st == MLOC_OK && !ds.labels)
        st = mloc_error(ctx, MLOC_ERR_DATA, "%s: the dataset has no labels; ClassMem needs classes", data);
    if (st == MLOC_OK) {
        if (indices) {
            st = mloc_indices_parse(ctx, indices, ds.n, &base, &n_base);
            if (st != MLOC_OK) st = mloc_error_prefix(ctx, st, "--indices");
        } else {
            n_base = ds.n;
            base = malloc((size_t)(n_base > 0 ? n_base : 1) * sizeof *base);
            if (!base) st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            for (int64_t i = 0; base && i < n_base; i++) base[i] = i;
        }
    }
    if (st == MLOC_OK) {
        sub = malloc((size_t)(n_base > 0 ? n_base : 1) * sizeof *sub);
        if (!sub) st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; sub && i < n_base; i++) sub[i] = ds.labels[base[i]];
    }
    if (st == MLOC_OK)
        st = mloc_classmem_select(ctx, sub, n_base, ds.n_classes, per_class, random, (uint64_t)seed, &sel, &n);
    if (st == MLOC_OK) {
        points = malloc((size_t)(n > 0 ? n : 1) * sizeof *points);
        labels = malloc((size_t)(n > 0 ? n : 1) * sizeof *labels);
        if (!points || !labels) st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; points && labels && i < n; i++) {
            points[i] = base[sel[i]];
            labels[i] = sub[sel[i]];
        }
    }
    if (st == MLOC_OK) st = metrics_cli_pipeline(ctx, m, &aug, &pipe);
    if (st == MLOC_OK) st = mloc_view_source_dataset(ctx, &src, &ds, &pipe, (uint64_t)seed, MLOC_PURPOSE_CLASSMEM);
    if (st != MLOC_OK) goto done;
    if (!quiet)
        fprintf(stderr, "memloc: classmem: %lld images of %d classes, %d tap(s), rest %s, %s\n", (long long)n,
                ds.n_classes, n_taps, rest_names[rest], augment ? "augmented views" : "no augmentation");
    mloc_unit_config cc = mloc_classmem_config_default();
    cc.rest = (mloc_rest_stat)rest;
    cc.abs = abs_;
    cc.batch = (int)batch;
    cc.augment = augment;
    cc.k = augment ? (int)k : 1;
    st = mloc_classmem_compute(ctx, &u, m, &src, points, labels, n, ds.n_classes, taps, n_taps, &cc);
    if (st != MLOC_OK) goto done;
    mloc_dataset_digest(&ds, digest);
    w_abs = metrics_cli_abs_path(weights);
    data_abs = metrics_cli_abs_spec(ctx, ds.spec ? ds.spec : data);
    mloc_metric_run run = {.command = cmd, .f_path = w_abs, .data_spec = data_abs,
                           .data_digest = digest, .aug_preset = aug.preset, .aug = augment ? &pipe : &src.clean,
                           .aug_seed = (uint64_t)seed, .purpose = MLOC_PURPOSE_CLASSMEM, .seed = (uint64_t)seed};
    st = mloc_unit_scores_write(ctx, out, "classmem", &u, &run);
    if (st != MLOC_OK) goto done;
    printf("ClassMem over %lld images of %d classes (%s, rest %s)\n\n", (long long)n, u.n_classes,
           augment ? "augmented views" : "no augmentation", rest_names[rest]);
    metrics_cli_print_units(ctx, &u);
    if (!quiet) fprintf(stderr, "memloc: classmem: results in %s/classmem.json\n", out);
done:;
    int rc = st == MLOC_OK ? 0 : cli_fail(ctx, st, cmd);
    mloc_unit_scores_free(&u);
    free(w_abs);
    free(data_abs);
    free(base);
    free(sel);
    free(sub);
    free(points);
    free(labels);
    free(taps);
    mloc_dataset_free(&ds);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
    return rc;
}
