/* memloc unitmem: UnitMem of every unit of every tap (SPEC.md section 4). */
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
    printf("usage: memloc unitmem --weights F.safetensors --data SPEC --out DIR [options]\n"
           "\n"
           "Examples:\n"
           "  memloc unitmem --weights runs/f/model.safetensors --data cifar10:data/cifar-10-batches-bin \\\n"
           "                 --indices 0:5000 --out runs/um\n"
           "  memloc unitmem --weights f.safetensors --data folder:cifar10.tar.gz/train --indices 0:5000 \\\n"
           "                 --aug unitmem --rest median --out runs/um-ref     # the reference code's variant\n"
           "  memloc unitmem ... --taps layer3_residual2 --save-mu layer3_residual2 --out runs/um-l8\n"
           "\n"
           "For every unit u (conv channel; its activation is the mean over spatial positions)\n"
           "of every tap: mu_u(x) = mean over K augmented views of x; mu_max = max over the\n"
           "points, attained at x*; mu_rest = mean (or median) over the other points; UnitMem =\n"
           "(mu_max - mu_rest) / (mu_max + mu_rest). Dead units (mu_max = 0) score 0 and are\n"
           "counted (SPEC.md section 4). With --rest mean memory stays O(units) whatever the\n"
           "number of points. Prints per-tap summaries.\n"
           "\n"
           "DIR receives unitmem.json (variant and summaries), unitmem_summary.csv,\n"
           "unitmem_units.csv (tap, unit, unitmem, mu_max, mu_rest, argmax_index, dead) and\n"
           "unitmem_{points,score,mu_max,mu_rest,argmax,dead}.npy (units of all taps in tap order).\n"
           "\n"
           "Options (default in brackets):\n"
           "  --weights FILE         the encoder (safetensors, memloc or PyTorch names)\n"
           "  --data SPEC            dataset (see memloc data info)\n"
           "  --indices INDICES      the points D: \"0:5000\", \"7,9\", \"@FILE\" [all]\n"
           "  --k K                  augmented views per point [10]\n"
           "  --rest mean|median     statistic of the other points: mean (the paper) or median\n"
           "                         (reference code) [mean]\n"
           "  --abs                  use magnitudes (mean of |a|) for taps with signed activations\n"
           "  --taps all|LIST        taps, comma-separated [all]\n"
           "  --save-mu TAP          also write that tap's points x units matrix of mu as .npy\n"
           "  --aug PRESET           none|simclr|unitmem; simclr is the training pipeline,\n"
           "                         unitmem the reference UnitMem.py's [simclr]\n"
           METRICS_INPUT_HELP
           "  --seed S               seed of the augmentation draws [0]\n"
           "  --batch N              images per forward pass [64]\n"
           "  --out DIR              output directory (required)\n"
           "  -j, --jobs N           threads [all CPUs]\n"
           "  -q, --quiet            no progress output\n"
           "  -v, --verbose          more diagnostics\n");
}

enum { OPT_WEIGHTS = 1000, OPT_DATA, OPT_INDICES, OPT_K, OPT_REST, OPT_ABS, OPT_TAPS, OPT_SAVE_MU, OPT_SEED,
       OPT_BATCH, OPT_OUT, OPT_HELP };

int cmd_unitmem(int argc, char **argv) {
    const char *cmd = "unitmem";
    static const struct option opts[] = {
        {"weights", required_argument, 0, OPT_WEIGHTS}, {"data", required_argument, 0, OPT_DATA},
        {"indices", required_argument, 0, OPT_INDICES}, {"k", required_argument, 0, OPT_K},
        {"rest", required_argument, 0, OPT_REST},       {"abs", no_argument, 0, OPT_ABS},
        {"taps", required_argument, 0, OPT_TAPS},       {"save-mu", required_argument, 0, OPT_SAVE_MU},
        {"seed", required_argument, 0, OPT_SEED},       {"batch", required_argument, 0, OPT_BATCH},
        {"out", required_argument, 0, OPT_OUT},         METRICS_INPUT_OPTIONS,
        {"jobs", required_argument, 0, 'j'},            {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},               {"help", no_argument, 0, OPT_HELP},
        {0, 0, 0, 0}};
    static const char *const rest_names[] = {"mean", "median", NULL};
    const char *weights = NULL, *data = NULL, *indices = NULL, *taps_text = NULL, *save_mu = NULL, *out = NULL;
    long long k = 10, seed = 0, batch = 64, jobs = 0;
    int rest = MLOC_REST_MEAN, abs_ = 0, quiet = 0, verbose = 0;
    metrics_input_opts aug = metrics_cli_input_defaults();
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
        case OPT_K:
            if (!cli_parse_int(cmd, "--k", optarg, 1, 100000, &k)) return 64;
            break;
        case OPT_REST:
            if ((rest = cli_parse_choice(cmd, "--rest", optarg, rest_names)) < 0) return 64;
            break;
        case OPT_ABS: abs_ = 1; break;
        case OPT_TAPS: taps_text = optarg; break;
        case OPT_SAVE_MU: save_mu = optarg; break;
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

    cli_common common = {.cmd = cmd, .threads = (int)jobs, .seed = (uint64_t)seed, .quiet = quiet,
                         .verbose = verbose};
    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) return 70;
    mloc_model *m = NULL;
    mloc_dataset ds;
    memset(&ds, 0, sizeof ds);
    int64_t *points = NULL, n = 0;
    int *taps = NULL, n_taps = 0;
    mloc_unit_scores u;
    memset(&u, 0, sizeof u);
    mloc_aug_pipeline pipe;
    mloc_view_source src;
    char digest[65], *w_abs = NULL, *data_abs = NULL;
    mloc_status st = metrics_cli_open_model(ctx, weights, &m);
    if (st == MLOC_OK) st = mloc_metrics_parse_taps(ctx, m, taps_text, &taps, &n_taps);
    int save_pos = -1;
    if (st == MLOC_OK && save_mu) {
        int t = mloc_model_find_tap(m, save_mu);
        for (int i = 0; i < n_taps; i++)
            if (taps[i] == t) save_pos = i;
        if (save_pos < 0)
            st = mloc_error(ctx, MLOC_ERR_USAGE, "--save-mu: '%s' is not among the evaluated taps", save_mu);
    }
    if (st == MLOC_OK) st = metrics_cli_open_data(ctx, cmd, data, m, &aug, &ds, quiet);
    if (st == MLOC_OK) {
        if (indices) {
            st = mloc_indices_parse(ctx, indices, ds.n, &points, &n);
            if (st != MLOC_OK) st = mloc_error_prefix(ctx, st, "--indices");
        } else {
            points = malloc((size_t)(ds.n > 0 ? ds.n : 1) * sizeof *points);
            if (!points) st = mloc_error(ctx, MLOC_ERR_NOMEM, "out of memory");
            for (int64_t i = 0; points && i < ds.n; i++) points[i] = i;
            n = ds.n;
        }
    }
    if (st == MLOC_OK) st = metrics_cli_pipeline(ctx, m, &aug, &pipe);
    if (st == MLOC_OK) st = mloc_view_source_dataset(ctx, &src, &ds, &pipe, (uint64_t)seed, MLOC_PURPOSE_UNITMEM);
    if (st != MLOC_OK) goto done;
    if (!quiet)
        fprintf(stderr, "memloc: unitmem: %lld points x %lld views, %d tap(s), rest %s, aug %s\n", (long long)n, k,
                n_taps, rest_names[rest], aug.preset);
    mloc_unit_config uc = mloc_unitmem_config_default();
    uc.k = (int)k;
    uc.rest = (mloc_rest_stat)rest;
    uc.abs = abs_;
    uc.batch = (int)batch;
    uc.save_mu = save_pos;
    st = mloc_unitmem_compute(ctx, &u, m, &src, points, n, taps, n_taps, &uc);
    if (st != MLOC_OK) goto done;
    mloc_dataset_digest(&ds, digest);
    w_abs = metrics_cli_abs_path(weights);
    data_abs = metrics_cli_abs_spec(ctx, ds.spec ? ds.spec : data);
    mloc_metric_run run = {.command = cmd, .f_path = w_abs, .data_spec = data_abs,
                           .data_digest = digest, .aug_preset = aug.preset, .aug = &pipe,
                           .aug_seed = (uint64_t)seed, .purpose = MLOC_PURPOSE_UNITMEM, .seed = (uint64_t)seed};
    st = mloc_unit_scores_write(ctx, out, "unitmem", &u, &run);
    if (st != MLOC_OK) goto done;
    printf("UnitMem over %lld points (K %lld, rest %s, aug %s)\n\n", (long long)n, k, rest_names[rest], aug.preset);
    metrics_cli_print_units(ctx, &u);
    if (!quiet) fprintf(stderr, "memloc: unitmem: results in %s/unitmem.json\n", out);
done:;
    int rc = st == MLOC_OK ? 0 : cli_fail(ctx, st, cmd);
    mloc_unit_scores_free(&u);
    free(w_abs);
    free(data_abs);
    free(points);
    free(taps);
    mloc_dataset_free(&ds);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
    return rc;
}
