/* memloc experiment and memloc demo: the paper's study in one command. The
 * demo is the experiment with defaults sized for a fresh machine: Fashion-
 * MNIST from the Debian package, a few minutes on two cores. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "memloc/experiment.h"

enum { OPT_CONFIG = 1000, OPT_OUT, OPT_PRINT, OPT_HELP, OPT_QUIET, OPT_VERBOSE };

static void help(const char *cmd, int demo) {
    if (demo)
        printf("usage: memloc demo [--data SPEC] [--out DIR] [options of memloc experiment]\n"
               "\n"
               "Examples:\n"
               "  memloc demo                         # Fashion-MNIST, about 5 minutes on 2 cores\n"
               "  memloc demo --data folder:../shared/data/cifar10-jpeg.tar.gz/train@shuffle:2000\n"
               "  memloc demo --out demo-out          # re-run to continue after an interruption\n"
               "\n"
               "Runs `memloc experiment` on real data a fresh machine has: the first 2,000\n"
               "Fashion-MNIST training images (Debian package dataset-fashion-mnist) padded to\n"
               "32x32, split 80/10/10, two ResNet9 encoders of half width (--width 0.5)\n"
               "trained with SimCLR for 60 epochs at Adam lr 3e-4 (--lr 3e-4: two runs drift\n"
               "apart less than at 1e-3) with milder augmentations than the SimCLR preset\n"
               "(--crop-scale-min 0.5 --aug-strength 0.5: small data memorizes more visibly),\n"
               "then every metric and analysis with K = 50 augmentation draws for SSLMem\n"
               "(--k 50), and the control: shared and independent points scored like the\n"
               "candidates, at every tap (f and g are two training runs and differ by more\n"
               "than the candidates; candidates against independent points cancels that).\n"
               "Prints the LayerMem table and the path of report.html. Any option of\n"
               "`memloc experiment` overrides the demo's settings.\n\n");
    else
        printf("usage: memloc experiment --data SPEC --out DIR [options]\n"
               "       memloc experiment --data SPEC --f F.safetensors --g G.safetensors --out DIR\n"
               "       memloc experiment --config FILE.yaml --out DIR\n"
               "\n"
               "Examples:\n"
               "  memloc experiment --data fmnist@0:4000 --epochs 30 --out runs/exp\n"
               "  memloc experiment --data folder:../shared/data/cifar10-jpeg.tar.gz/train@shuffle \\\n"
               "      --epochs 100 --out runs/cifar     # the paper's 80/10/10 split of 50,000\n"
               "  (ImageFolder data is sorted by class: @shuffle[:N] gives the in-order split a random order)\n"
               "  memloc experiment --data cifar10:DIR --f f.safetensors --g g.safetensors --out runs/pt\n"
               "\n"
               "Splits the data in order into S_S / S_C / S_I (SPEC 1), trains f on S_S+S_C and g\n"
               "on S_S+S_I with identical settings (resumable: re-run the same command after an\n"
               "interruption; finished encoders are never retrained), or takes --f/--g, then\n"
               "computes SSLMem/LayerMem/ΔLayerMem for every tap on the evaluated candidates,\n"
               "UnitMem for every unit, the Top-50 vs Least-50 t-tests, the consistency between\n"
               "taps and the μmax alignment. DIR gets split.json, f/ and g/, metrics/,\n"
               "summary.json and report.html (self-contained, opens offline).\n\n");
    printf("Experiment options (default in brackets):\n");
    cli_table_help(stdout, &mloc_experiment_options);
    printf("\nTraining options of f and g (see memloc train --help):\n");
    cli_table_help(stdout, &mloc_train_options);
    printf("\nOther options:\n"
           "  %-34s %s\n  %-34s %s\n  %-34s %s\n  %-34s %s\n  %-34s %s\n",
           "--config FILE", "YAML file of options of either table", "--out DIR",
           demo ? "output directory [demo-out]" : "output directory (required)", "--print-config",
           "print the effective options as JSON and exit", "-q, --quiet", "no progress output",
           "-v, --verbose", "more diagnostics");
    (void)cmd;
}

/* The demo's defaults (applied before any config file or flag). Sized on
 * the slower of the 2-core machines it ran on (AVX2, no AVX-512): about 5
 * minutes; docs/RECIPES.md has the runs. */
#define DEMO_MONITOR "fmnist@0:2000,fmnist:test@0:2000"
static mloc_status demo_defaults(mloc_ctx *ctx, mloc_train_config *t, mloc_experiment_config *e) {
    static const char *const kv[][2] = {
        {"data", "fmnist@0:2000"},
        {"width", "0.5"},
        {"epochs", "60"},
        {"lr", "3e-4"},
        {"crop_scale_min", "0.5"},
        {"aug_strength", "0.5"},
        {"monitor_knn", DEMO_MONITOR},
        {"monitor_every", "50"},
        {"keep_checkpoints", "1"},
        {"log_every", "20"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        MLOC_TRY(mloc_train_config_set(ctx, t, kv[i][0], kv[i][1]));
    /* SSLMem with K = 50 draws: a few seconds here, and the per-point scores
     * of the same f and g correlate 0.96 between two sets of draws (0.57-0.79
     * with K = 5) */
    return mloc_options_set(ctx, &mloc_experiment_options, e, "k", "50");
}

static int run(int argc, char **argv, int demo) {
    const char *cmd = demo ? "demo" : "experiment";
    const mloc_option_table *tables[] = {&mloc_experiment_options, &mloc_train_options};
    struct option extra[] = {{"config", required_argument, 0, OPT_CONFIG}, {"out", required_argument, 0, OPT_OUT},
                             {"print-config", no_argument, 0, OPT_PRINT},  {"help", no_argument, 0, OPT_HELP},
                             {"quiet", no_argument, 0, OPT_QUIET},         {"verbose", no_argument, 0, OPT_VERBOSE},
                             {0, 0, 0, 0}};
    struct option *opts = cli_table_options(tables, 2, extra);
    if (!opts) return 71;
    int rc = 0, print = 0, quiet = 0, verbose = 0, c, data_given = 0;
    const char *config = NULL, *out = demo ? "demo-out" : NULL;
    optind = 1;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "qvh", opts, NULL)) != -1) {
        int t, i;
        if (cli_table_decode(c, &t, &i)) {
            if (t == 1 && !strcmp(mloc_train_options.opts[i].name, "data")) data_given = 1;
            continue;
        }
        switch (c) {
        case OPT_CONFIG: config = optarg; break;
        case OPT_OUT: out = optarg; break;
        case OPT_PRINT: print = 1; break;
        case 'h':
        case OPT_HELP: help(cmd, demo); goto done;
        case 'q':
        case OPT_QUIET: quiet = 1; break;
        case 'v':
        case OPT_VERBOSE: verbose++; break;
        default: rc = cli_usage(cmd, "invalid option"); goto done;
        }
    }
    if (optind < argc) {
        rc = cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
        goto done;
    }
    if (!out && !print) {
        rc = cli_usage(cmd, "--out DIR is required");
        goto done;
    }
    cli_common common = {.cmd = cmd, .quiet = quiet, .verbose = verbose};
    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) {
        rc = 70;
        goto done;
    }
    mloc_train_config train = mloc_train_config_default();
    mloc_experiment_config ex = mloc_experiment_config_default();
    void *cfgs[] = {&ex, &train};
    mloc_status st = demo ? demo_defaults(ctx, &train, &ex) : MLOC_OK;
    if (st == MLOC_OK && config) st = mloc_options_load_yaml(ctx, tables, cfgs, 2, config);
    if (st == MLOC_OK) st = cli_table_apply(ctx, argc, argv, opts, tables, cfgs);
    /* a demo on other data keeps the demo's schedule but has no default monitor */
    if (st == MLOC_OK && demo && data_given && !strcmp(train.monitor_knn, DEMO_MONITOR))
        train.monitor_knn[0] = 0;
    if (st == MLOC_OK) st = mloc_train_config_check(ctx, &train);
    if (st == MLOC_OK) st = mloc_experiment_config_check(ctx, &ex, &train);
    if (st != MLOC_OK) {
        rc = cli_fail(ctx, st, cmd);
        mloc_ctx_destroy(ctx);
        goto done;
    }
    if (print) {
        json_t *j = json_pack("{s:o, s:o}", "train", mloc_train_config_to_json(&train), "experiment",
                              mloc_options_to_json(&mloc_experiment_options, &ex));
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        puts(s);
        free(s);
        json_decref(j);
        mloc_ctx_destroy(ctx);
        goto done;
    }
    if (!quiet)
        fprintf(stderr, "memloc: %s: %s into %s (re-run the same command to continue after an interruption)\n", cmd,
                ex.f[0] ? "measuring the given f and g" : "training f and g, then measuring", out);
    mloc_experiment_result res;
    st = mloc_experiment_run(ctx, &train, &ex, out, &res);
    if (st != MLOC_OK) {
        rc = cli_fail(ctx, st, cmd);
    } else {
        printf("LayerMem per tap (%s):\n\n%s\n", train.data, res.table);
        printf("SSLMem at the encoder output: mean %.4g, one-sided t-test t = %.3f, p = %.3g (%s)\n", res.sslmem_mean,
               res.sslmem_t, res.sslmem_p, res.memorization ? "the candidates are memorized" : "no significant memorization");
        printf("Control, shared points (f and g both trained on them): mean SSLMem %.4g; candidates above them: "
               "Welch p = %.3g (%s)\n",
               res.shared_mean, res.control_p,
               res.beyond_shared ? "memorized beyond the difference between f and g"
                                 : "not separable from the difference between f and g");
        printf("Independent points (only g trained on them): mean SSLMem %.4g; candidates above them: Welch p = %.3g "
               "(%s)\n",
               res.indep_mean, res.indep_p,
               res.beyond_independent ? "each encoder memorizes the points only it trained on"
                                      : "no significant memorization with the runs' difference cancelled");
        printf("Memorized taps (candidates above independent points, p < 0.01): %d of %d%s%s\n", res.n_memorized_taps,
               res.n_taps, res.n_memorized_taps ? ": " : "", res.memorized_taps);
        printf("Top-%d above Least-%d at every tap: %s\n", ex.top, ex.top, res.top_exceeds_least ? "yes" : "no");
        printf("\nreport: %s\n", res.report);
    }
    mloc_ctx_destroy(ctx);
done:
    cli_table_options_free(opts);
    return rc;
}

int cmd_experiment(int argc, char **argv) { return run(argc, argv, 0); }
int cmd_demo(int argc, char **argv) { return run(argc, argv, 1); }
