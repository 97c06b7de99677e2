/* memloc train: train an encoder (SimCLR or supervised) into a run directory.
 * The option flags are generated from the options table (include/memloc/train.h). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "memloc/train.h"

static void print_help(void) {
    printf("usage: memloc train --data SPEC --out RUN_DIR [options]\n"
           "       memloc train --config FILE.yaml --out RUN_DIR [options]\n"
           "       memloc train --resume RUN_DIR\n"
           "\n"
           "Examples:\n"
           "  memloc train --data fmnist --epochs 10 --out runs/fmnist\n"
           "  memloc train --data folder:../shared/data/cifar10-jpeg.tar.gz/train --indices 0:45000 \\\n"
           "               --monitor-knn folder:../shared/data/cifar10-jpeg.tar.gz/train,folder:../shared/data/cifar10-jpeg.tar.gz/test \\\n"
           "               --epochs 50 --out runs/f\n"
           "  memloc train --method supervised --data cifar10:data/cifar-10-batches-bin --out runs/sup\n"
           "  memloc train --resume runs/f      # continue after Ctrl-C or a crash\n"
           "\n"
           "Trains the paper's ResNet9 with SimCLR (two augmented views per image, NT-Xent on\n"
           "the projection head) or supervised cross-entropy. The defaults reproduce the\n"
           "reference SimCLR setup for ResNet9 on CIFAR-10: Adam, lr 1e-3, weight decay 1e-6,\n"
           "temperature 0.5, batch 256, constant learning rate.\n"
           "\n"
           "RUN_DIR receives config.json (every option), log.jsonl (loss, lr, views/s and kNN\n"
           "accuracy), checkpoints/ (written atomically, every --checkpoint-every epochs and on\n"
           "Ctrl-C) and model.safetensors (PyTorch names) when training finishes. A resumed run\n"
           "ends with bitwise the same weights as an uninterrupted one with the same seed and\n"
           "threads.\n"
           "\n"
           "A YAML --config file holds `option: value` lines with the names below (either\n"
           "batch_size or batch-size); flags given on the command line override it.\n"
           "\n"
           "Options (default in brackets):\n");
    for (int i = 0; i < mloc_train_option_count(); i++) {
        const mloc_train_option *o = mloc_train_option_get(i);
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", o->name);
        for (char *p = flag; *p; p++)
            if (*p == '_') *p = '-';
        const char *arg = o->type == MLOC_TOPT_T_BOOL ? "" : o->type == MLOC_TOPT_T_CHOICE ? o->choices : "X";
        char left[128];
        snprintf(left, sizeof left, "%s %s", flag, arg);
        printf("  %-34s %s", left, o->help);
        if (o->def[0]) printf(" [%s]", o->def);
        printf("\n");
    }
    printf("  %-34s %s\n", "--config FILE", "YAML file of options");
    printf("  %-34s %s\n", "--out RUN_DIR", "run directory (required unless --resume)");
    printf("  %-34s %s\n", "--resume RUN_DIR", "continue the run in RUN_DIR with its own options");
    printf("  %-34s %s\n", "--print-config", "print the effective options as JSON and exit");
    printf("  %-34s %s\n", "-q, --quiet", "no progress output");
    printf("  %-34s %s\n", "-v, --verbose", "more diagnostics");
}

enum { OPT_CONFIG = 1000, OPT_OUT, OPT_RESUME, OPT_PRINT, OPT_HELP, OPT_QUIET, OPT_VERBOSE };

int cmd_train(int argc, char **argv) {
    const int n_tab = mloc_train_option_count();
    struct option *opts = calloc((size_t)n_tab + 8, sizeof *opts);
    char (*names)[64] = calloc((size_t)n_tab, sizeof *names);
    if (!opts || !names) {
        free(opts);
        free(names);
        return 71;
    }
    for (int i = 0; i < n_tab; i++) {
        const mloc_train_option *o = mloc_train_option_get(i);
        snprintf(names[i], sizeof names[i], "%s", o->name);
        for (char *p = names[i]; *p; p++)
            if (*p == '_') *p = '-';
        opts[i].name = names[i];
        opts[i].has_arg = o->type == MLOC_TOPT_T_BOOL ? optional_argument : required_argument;
        opts[i].val = i;
    }
    struct option extra[] = {{"config", required_argument, 0, OPT_CONFIG}, {"out", required_argument, 0, OPT_OUT},
                             {"resume", required_argument, 0, OPT_RESUME}, {"print-config", no_argument, 0, OPT_PRINT},
                             {"help", no_argument, 0, OPT_HELP},          {"quiet", no_argument, 0, OPT_QUIET},
                             {"verbose", no_argument, 0, OPT_VERBOSE},    {0, 0, 0, 0}};
    memcpy(opts + n_tab, extra, sizeof extra);

    int rc = 0;
    const char *config = NULL, *out = NULL, *resume = NULL;
    int print = 0, quiet = 0, verbose = 0, n_set = 0;
    /* pass 1: everything but the table options, which are applied after the
     * config file so that flags override it */
    optind = 1;
    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "qvh", opts, NULL)) != -1) {
        switch (c) {
        case OPT_CONFIG: config = optarg; break;
        case OPT_OUT: out = optarg; break;
        case OPT_RESUME: resume = optarg; break;
        case OPT_PRINT: print = 1; break;
        case 'h':
        case OPT_HELP: print_help(); goto done;
        case 'q':
        case OPT_QUIET: quiet = 1; break;
        case 'v':
        case OPT_VERBOSE: verbose++; break;
        case '?': rc = cli_usage("train", "invalid option"); goto done;
        default:
            if (c >= 0 && c < n_tab) n_set++;
        }
    }
    if (optind < argc) {
        rc = cli_usage("train", "unexpected argument '%s'", argv[optind]);
        goto done;
    }
    if (resume && (config || out || n_set)) {
        rc = cli_usage("train", "--resume continues a run with its own options; drop the other options");
        goto done;
    }
    if (!resume && !out && !print) {
        rc = cli_usage("train", "--out RUN_DIR is required");
        goto done;
    }

    cli_common common = {.cmd = "train", .quiet = quiet, .verbose = verbose};
    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) {
        rc = 70;
        goto done;
    }
    mloc_train_config cfg = mloc_train_config_default();
    mloc_status st = MLOC_OK;
    if (resume) {
        st = mloc_train_config_load_run(ctx, &cfg, resume);
        out = resume;
    } else {
        if (config) st = mloc_train_config_load_yaml(ctx, &cfg, config);
        optind = 1;
        opterr = 0;
        while (st == MLOC_OK && (c = getopt_long(argc, argv, "qvh", opts, NULL)) != -1) {
            if (c < 0 || c >= n_tab) continue;
            const mloc_train_option *o = mloc_train_option_get(c);
            const char *v = optarg ? optarg : (o->type == MLOC_TOPT_T_BOOL ? "1" : "");
            st = mloc_train_config_set(ctx, &cfg, o->name, v);
            if (st != MLOC_OK) mloc_error_prefix(ctx, st, "--%s", names[c]);
        }
    }
    if (st == MLOC_OK) st = mloc_train_config_check(ctx, &cfg);
    if (st != MLOC_OK) {
        rc = cli_fail(ctx, st, "train");
        mloc_ctx_destroy(ctx);
        goto done;
    }
    if (print) {
        json_t *j = mloc_train_config_to_json(&cfg);
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        puts(s);
        free(s);
        json_decref(j);
        mloc_ctx_destroy(ctx);
        goto done;
    }
    mloc_train_result r;
    st = mloc_train_run(ctx, &cfg, out, resume != NULL, &r);
    if (st != MLOC_OK) {
        rc = cli_fail(ctx, st, "train");
    } else if (!quiet) {
        if (r.steps == 0 && r.finished && resume)
            fprintf(stderr, "memloc: train: %s is already finished\n", out);
        else
            fprintf(stderr, "memloc: train: done: %lld steps, final epoch loss %.4f%s, %.0f views/s; model in %s/model.safetensors\n",
                    (long long)r.steps, r.last_loss, "", r.views_per_s, out);
        if (r.knn_acc >= 0) fprintf(stderr, "memloc: train: kNN accuracy %.2f%%\n", 100 * r.knn_acc);
    }
    mloc_ctx_destroy(ctx);
done:
    free(opts);
    free(names);
    return rc;
}
