/* memloc train: train an encoder (SimCLR, SimSiam, DINO, MAE or supervised) into a run directory.
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
           "  memloc train --data folder:../shared/data/cifar10-jpeg.tar.gz/train --indices shuffle:45000 \\\n"
           "               --monitor-knn folder:../shared/data/cifar10-jpeg.tar.gz/train,folder:../shared/data/cifar10-jpeg.tar.gz/test \\\n"
           "               --epochs 50 --out runs/f\n"
           "  memloc train --method supervised --data cifar10:data/cifar-10-batches-bin --out runs/sup\n"
           "  memloc train --method dino --local-crops 4 --data fmnist --epochs 10 --out runs/dino\n"
           "  memloc train --arch resnet18 --stem imagenet --image-size 64 --fit resize --data stl10:data/stl10 --out runs/r18\n"
           "  memloc train --resume runs/f      # continue after Ctrl-C or a crash\n"
           "\n"
           "Trains the paper's ResNet9 with SimCLR (two augmented views per image, NT-Xent on\n"
           "the projection head) or supervised cross-entropy. The defaults reproduce the\n"
           "reference SimCLR setup for ResNet9 on CIFAR-10: Adam, lr 1e-3, weight decay 1e-6,\n"
           "temperature 0.5, batch 256, constant learning rate.\n"
           "\n"
           "--method simsiam trains SimSiam (solo-learn's projector and predictor, negative\n"
           "cosine with stop-gradient, each view its own forward pass); --method dino trains\n"
           "DINO (EMA teacher with a cosine momentum schedule, centring, teacher-temperature\n"
           "warm-up, 2 global + --local-crops smaller local crops; model.safetensors holds the\n"
           "teacher unless --dino-export student). docs/RECIPES.md has CPU recipes.\n"
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
    cli_table_help(stdout, &mloc_train_options);
    printf("  %-34s %s\n", "--config FILE", "YAML file of options");
    printf("  %-34s %s\n", "--out RUN_DIR", "run directory (required unless --resume)");
    printf("  %-34s %s\n", "--resume RUN_DIR", "continue the run in RUN_DIR with its own options");
    printf("  %-34s %s\n", "--print-config", "print the effective options as JSON and exit");
    printf("  %-34s %s\n", "-q, --quiet", "no progress output");
    printf("  %-34s %s\n", "-v, --verbose", "more diagnostics");
}

enum { OPT_CONFIG = 1000, OPT_OUT, OPT_RESUME, OPT_PRINT, OPT_HELP, OPT_QUIET, OPT_VERBOSE };

int cmd_train(int argc, char **argv) {
    const mloc_option_table *tables[] = {&mloc_train_options};
    struct option extra[] = {{"config", required_argument, 0, OPT_CONFIG}, {"out", required_argument, 0, OPT_OUT},
                             {"resume", required_argument, 0, OPT_RESUME}, {"print-config", no_argument, 0, OPT_PRINT},
                             {"help", no_argument, 0, OPT_HELP},          {"quiet", no_argument, 0, OPT_QUIET},
                             {"verbose", no_argument, 0, OPT_VERBOSE},    {0, 0, 0, 0}};
    struct option *opts = cli_table_options(tables, 1, extra);
    if (!opts) return 71;

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
        default: n_set++;
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
        void *cfgs[] = {&cfg};
        if (st == MLOC_OK) st = cli_table_apply(ctx, argc, argv, opts, tables, cfgs);
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
    cli_table_options_free(opts);
    return rc;
}
