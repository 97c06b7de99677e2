/* memloc finetune: memorization-guided fine-tuning (SPEC.md section 8):
 * train the blocks chosen by LayerMem, ΔLayerMem, depth or chance plus a
 * linear head on a downstream dataset, or compare every rule (the paper's
 * Table 4). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "memloc/apply.h"

static const char usage_text[] =
    "usage: memloc finetune --weights F --train SPEC --test SPEC --select RULE --n N\n"
    "                       [--layermem DIR] [--out G.safetensors] [options]\n"
    "       memloc finetune --weights F --layermem DIR --train SPEC --test SPEC --compare\n"
    "                       [--n 1,2,3] [options]\n"
    "\n"
    "Examples:\n"
    "  memloc finetune --weights runs/exp/f/model.safetensors --layermem runs/exp \\\n"
    "                  --select layermem --n 2 --train fmnist@0:5000 --test fmnist:test@0:2000\n"
    "  memloc finetune --weights f.safetensors --select last --n 1 \\\n"
    "                  --train folder:cifar10.tar.gz/test@0:5000 --test folder:cifar10.tar.gz/test@5000:10000\n"
    "  memloc finetune --weights f.safetensors --layermem runs/exp --compare --n 1,2 \\\n"
    "                  --train fmnist@0:5000 --test fmnist:test@0:2000 --epochs 3\n"
    "\n"
    "Fine-tunes n blocks of the encoder plus a new linear classifier on its output\n"
    "(features flattened, nn.Linear initialisation) with softmax cross-entropy on the\n"
    "downstream training set, then reports top-1 on the test set. Every other\n"
    "parameter is frozen (bitwise unchanged) and the frozen blocks' BatchNorm runs\n"
    "in eval mode (running statistics unchanged); the chosen blocks' BatchNorm trains.\n"
    "A block is a module whose output is a tap (ResNet9: prep ... layer3_residual2;\n"
    "the residual sums res1/res2 own no parameters and are never chosen). Rules:\n"
    "  layermem  the n blocks of highest LayerMem (the LayerMem run's table)\n"
    "  delta     the n blocks of highest ΔLayerMem\n"
    "  last      the last n blocks (the usual choice)\n"
    "  random    n blocks drawn with --seed\n"
    "Training views are RandomResizedCrop + horizontal flip (--augment none: the\n"
    "images as they are); test images are not augmented. Adam, constant rate.\n"
    "\n"
    "--compare runs the head alone on the frozen encoder, then every rule for every\n"
    "n, each from the original weights with the same budget (epochs, batch, lr), the\n"
    "same head initialisation, batches and augmentations (one --seed), and prints\n"
    "the table of test accuracies (the paper's Table 4).\n"
    "\n"
    "Options:\n"
    "  --weights F          encoder (safetensors)\n"
    "  --layermem DIR       LayerMem results: DIR/layermem.json (memloc layermem --out DIR)\n"
    "                       or DIR/metrics/layermem.json (memloc experiment --out DIR)\n"
    "  --select RULE        layermem|delta|last|random [layermem]\n"
    "  --n N                blocks to fine-tune [1]; --compare takes a list (1,2,3)\n"
    "  --train SPEC         labelled downstream training set\n"
    "  --test SPEC          labelled downstream test set\n"
    "  --compare            every rule with the same budget and seed\n"
    "  --epochs E           passes over the training set [5]\n"
    "  --batch-size B       mini-batch [128]\n"
    "  --lr LR              Adam learning rate of the blocks and the head [1e-3]\n"
    "  --wd W               L2 weight decay [0]\n"
    "  --augment MODE       crop (RandomResizedCrop + flip) or none [crop]\n"
    "  --seed S             head initialisation, batch order, augmentation, random rule [0]\n"
    "  --workers W          augmentation threads [2]\n"
    "  --fit MODE           auto|none|pad|resize: fit images to the encoder [auto]\n"
    "  --channels C         auto|1|3 [auto]\n"
    "  --norm NAME          Normalize constants: half|cifar10|cifar100|stl10|imagenet [half]\n"
    "  --out G.safetensors  write the fine-tuned encoder (not with --compare)\n"
    "  --json               one JSON document on stdout (schema memloc.finetune/1)\n"
    "  -j, --threads N      threads (0: all CPUs)\n"
    "  -q, --quiet          no progress or notes on stderr\n"
    "\n"
    "Exit status: 0 ok, 1 the loss diverged (lower --lr), 64 bad option, 65 malformed\n"
    "or unlabelled data, 66 missing input.\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void blocks_text(char *out, size_t size, const mloc_model *m, const int *modules, int n) {
    int o = snprintf(out, size, "%s", n ? "" : "(head only)");
    for (int k = 0; k < n && o < (int)size; k++)
        o += snprintf(out + o, size - (size_t)o, "%s%s", k ? "," : "", m->modules[modules[k]]);
}

int cmd_finetune(int argc, char **argv) {
    enum { O_WEIGHTS = 256, O_LAYERMEM, O_SELECT, O_N, O_TRAIN, O_TEST, O_COMPARE, O_EPOCHS, O_BATCH, O_LR, O_WD,
           O_AUGMENT, O_SEED, O_WORKERS, O_FIT, O_CHANNELS, O_NORM, O_OUT, O_JSON, O_THREADS, O_DEBUG };
    static const struct option opts[] = {
        {"weights", required_argument, 0, O_WEIGHTS}, {"layermem", required_argument, 0, O_LAYERMEM},
        {"select", required_argument, 0, O_SELECT},   {"n", required_argument, 0, O_N},
        {"train", required_argument, 0, O_TRAIN},     {"test", required_argument, 0, O_TEST},
        {"compare", no_argument, 0, O_COMPARE},       {"epochs", required_argument, 0, O_EPOCHS},
        {"batch-size", required_argument, 0, O_BATCH}, {"lr", required_argument, 0, O_LR},
        {"wd", required_argument, 0, O_WD},           {"augment", required_argument, 0, O_AUGMENT},
        {"seed", required_argument, 0, O_SEED},       {"workers", required_argument, 0, O_WORKERS},
        {"fit", required_argument, 0, O_FIT},         {"channels", required_argument, 0, O_CHANNELS},
        {"norm", required_argument, 0, O_NORM},       {"out", required_argument, 0, O_OUT},
        {"json", no_argument, 0, O_JSON},             {"threads", required_argument, 0, O_THREADS},
        {"jobs", required_argument, 0, 'j'},          {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},             {"debug", no_argument, 0, O_DEBUG},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0}};
    static const char *const rules[] = {"layermem", "delta", "last", "random", NULL};
    static const char *const augs[] = {"crop", "none", NULL};
    static const char *const fits[] = {"auto", "none", "pad", "resize", NULL};
    static const int fit_values[] = {MLOC_EVAL_AUTO, MLOC_FIT_NONE, MLOC_FIT_PAD, MLOC_FIT_RESIZE};
    static const char *const chans[] = {"auto", "1", "3", NULL};
    static const int chan_values[] = {MLOC_EVAL_AUTO, 1, 3};
    static const char *const norms[] = {
#define MLOC_X(id, name, m0, m1, m2, s0, s1, s2) name,
        MLOC_AUG_NORM_LIST(MLOC_X)
#undef MLOC_X
        NULL};
    const char *cmd = "finetune";
    cli_common common = {.cmd = cmd};
    mloc_finetune_config fc = mloc_finetune_config_default();
    mloc_eval_data_options dopt = mloc_eval_data_options_default();
    const char *weights = NULL, *layermem = NULL, *train_spec = NULL, *test_spec = NULL, *out = NULL;
    int rule = MLOC_SELECT_LAYERMEM, compare = 0, json = 0, i, ns[8] = {1}, n_ns = 1;
    long long iv;
    double dv;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":j:qvh", opts, NULL)) != -1) {
        switch (c) {
        case O_WEIGHTS: weights = optarg; break;
        case O_LAYERMEM: layermem = optarg; break;
        case O_SELECT:
            if ((rule = cli_parse_choice(cmd, "--select", optarg, rules)) < 0) return 64;
            break;
        case O_N: {
            char buf[128];
            snprintf(buf, sizeof buf, "%s", optarg);
            n_ns = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                if (n_ns == 8) return cli_usage(cmd, "--n: at most 8 values");
                if (!cli_parse_int(cmd, "--n", tok, 1, MLOC_APPLY_MAX_BLOCKS, &iv)) return 64;
                ns[n_ns++] = (int)iv;
            }
            if (!n_ns) return cli_usage(cmd, "--n: expected a number (or a list with --compare)");
            break;
        }
        case O_TRAIN: train_spec = optarg; break;
        case O_TEST: test_spec = optarg; break;
        case O_COMPARE: compare = 1; break;
        case O_EPOCHS:
            if (!cli_parse_int(cmd, "--epochs", optarg, 1, 100000, &iv)) return 64;
            fc.epochs = (int)iv;
            break;
        case O_BATCH:
            if (!cli_parse_int(cmd, "--batch-size", optarg, 2, 65536, &iv)) return 64;
            fc.batch = (int)iv;
            break;
        case O_LR:
            if (!cli_parse_double(cmd, "--lr", optarg, 1e-12, 1e3, &dv)) return 64;
            fc.lr = dv;
            break;
        case O_WD:
            if (!cli_parse_double(cmd, "--wd", optarg, 0, 1e3, &dv)) return 64;
            fc.weight_decay = dv;
            break;
        case O_AUGMENT:
            if ((i = cli_parse_choice(cmd, "--augment", optarg, augs)) < 0) return 64;
            fc.augment = i == 0;
            break;
        case O_SEED:
            if (!cli_parse_int(cmd, "--seed", optarg, 0, (long long)1 << 62, &iv)) return 64;
            fc.seed = common.seed = (uint64_t)iv;
            break;
        case O_WORKERS:
            if (!cli_parse_int(cmd, "--workers", optarg, 0, 256, &iv)) return 64;
            fc.workers = (int)iv;
            break;
        case O_FIT:
            if ((i = cli_parse_choice(cmd, "--fit", optarg, fits)) < 0) return 64;
            dopt.fit = fit_values[i];
            break;
        case O_CHANNELS:
            if ((i = cli_parse_choice(cmd, "--channels", optarg, chans)) < 0) return 64;
            dopt.channels = chan_values[i];
            break;
        case O_NORM:
            if ((i = cli_parse_choice(cmd, "--norm", optarg, norms)) < 0) return 64;
            fc.norm = (mloc_aug_norm)i;
            break;
        case O_OUT: out = optarg; break;
        case O_JSON: json = 1; break;
        case 'j':
        case O_THREADS:
            if (!cli_parse_int(cmd, c == 'j' ? "--jobs" : "--threads", optarg, 0, 4096, &iv)) return 64;
            common.threads = (int)iv;
            break;
        case 'q': common.quiet = 1; break;
        case 'v': common.verbose++; break;
        case O_DEBUG: common.debug = 1; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case ':': return cli_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    if (!weights) return cli_usage(cmd, "--weights F is required (the encoder to fine-tune)");
    if (!train_spec || !test_spec) return cli_usage(cmd, "--train SPEC and --test SPEC are required (labelled data)");
    if (compare && out) return cli_usage(cmd, "--out is not used with --compare (every row starts from --weights)");
    if (!compare && n_ns != 1) return cli_usage(cmd, "--n: a list is for --compare; give one number");
    if ((compare || rule == MLOC_SELECT_LAYERMEM || rule == MLOC_SELECT_DELTA) && !layermem)
        return cli_usage(cmd, "--layermem DIR is required for %s (or use --select last|random)",
                         compare ? "--compare" : rules[rule]);

    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) return 70;
    int rc = 0;
    mloc_model *m = NULL;
    mloc_dataset train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    mloc_layer_scores s;
    memset(&s, 0, sizeof s);
    const double t0 = now_s();
    mloc_status st = mloc_model_open(ctx, &m, weights, MLOC_HEAD_NONE);
    if (st == MLOC_OK && layermem) st = mloc_layer_scores_read(ctx, layermem, &s);
    if (st == MLOC_OK) st = mloc_eval_dataset_open(ctx, &train, train_spec, m, &dopt);
    if (st == MLOC_OK) st = mloc_eval_dataset_open(ctx, &test, test_spec, m, &dopt);
    if (st != MLOC_OK) goto fail;
    if (!common.quiet) {
        if (train.prep) fprintf(stderr, "memloc: finetune: note: %s: %s\n", train_spec, train.prep);
        if (test.prep) fprintf(stderr, "memloc: finetune: note: %s: %s\n", test_spec, test.prep);
    }
    char budget[256];
    snprintf(budget, sizeof budget, "%d epochs of batch %d, Adam lr %g%s, %s views, seed %llu", fc.epochs, fc.batch,
             fc.lr, fc.weight_decay > 0 ? " with weight decay" : "", fc.augment ? "crop+flip" : "plain",
             (unsigned long long)fc.seed);

    if (compare) {
        mloc_finetune_row rows[1 + MLOC_SELECT_COUNT * 8];
        int n_rows = 0;
        st = mloc_finetune_compare(ctx, weights, &s, ns, n_ns, &train, &test, &fc, rows, &n_rows);
        if (st != MLOC_OK) goto fail;
        if (json) {
            json_t *arr = json_array();
            for (int r = 0; r < n_rows; r++) {
                char names[1024];
                blocks_text(names, sizeof names, m, rows[r].modules, rows[r].n);
                json_array_append_new(arr, json_pack("{s:s, s:i, s:s, s:f, s:f, s:f, s:I}", "select",
                                                     rows[r].rule < 0 ? "head" : rules[rows[r].rule], "n", rows[r].n,
                                                     "blocks", names, "test_top1", rows[r].res.test_top1, "train_top1",
                                                     rows[r].res.train_top1, "final_loss", rows[r].res.final_loss,
                                                     "trained_params", (json_int_t)rows[r].res.trained_params));
            }
            json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:f, s:b, s:I, s:o, s:f}", "schema",
                                    "memloc.finetune/1", "weights", weights, "layermem", s.source, "train", train_spec,
                                    "test", test_spec, "epochs", fc.epochs, "batch_size", fc.batch, "lr", fc.lr,
                                    "augment", fc.augment, "seed", (json_int_t)fc.seed, "rows", arr, "seconds",
                                    now_s() - t0);
            char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            if (text) puts(text);
            free(text);
            json_decref(doc);
            goto done;
        }
        printf("Fine-tuning %s on %s (%lld images), test %s (%lld images)\n%s; LayerMem from %s\n\n", weights,
               train_spec, (long long)train.n, test_spec, (long long)test.n, budget, s.source);
        printf("%-10s", "selection");
        for (int k = 0; k < n_ns; k++) printf("   n=%-6d", ns[k]);
        printf("\n");
        printf("%-10s %8.2f%%   (frozen encoder, linear head only)\n", "head", 100 * rows[0].res.test_top1);
        for (int r = 0; r < MLOC_SELECT_COUNT; r++) {
            printf("%-10s", rules[r]);
            for (int k = 0; k < n_ns; k++) printf(" %8.2f%%", 100 * rows[1 + r * n_ns + k].res.test_top1);
            printf("\n");
        }
        printf("\nblocks fine-tuned:\n");
        for (int r = 1; r < n_rows; r++) {
            char names[1024];
            blocks_text(names, sizeof names, m, rows[r].modules, rows[r].n);
            printf("  %-9s n=%d  %s\n", rules[rows[r].rule], rows[r].n, names);
        }
        goto done;
    }

    int modules[MLOC_APPLY_MAX_BLOCKS];
    mloc_finetune_result res;
    st = mloc_finetune_select(ctx, m, layermem ? &s : NULL, (mloc_select_rule)rule, ns[0], fc.seed, modules);
    if (st == MLOC_OK) st = mloc_finetune_run(ctx, m, modules, ns[0], &train, &test, &fc, &res);
    if (st != MLOC_OK) goto fail;
    char names[1024];
    blocks_text(names, sizeof names, m, modules, ns[0]);
    if (out) {
        const char *meta[] = {"memloc_finetuned_blocks", names, "memloc_finetuned_on", train_spec, NULL};
        st = mloc_model_save(ctx, m, out, MLOC_GROUP_ENCODER, meta);
        if (st != MLOC_OK) goto fail;
    }
    if (json) {
        json_t *doc = json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:f, s:f, s:f, s:I, s:I, s:f}", "schema",
                                "memloc.finetune/1", "weights", weights, "select", rules[rule], "n", ns[0], "blocks",
                                names, "train", train_spec, "test", test_spec, "test_top1", res.test_top1, "train_top1",
                                res.train_top1, "final_loss", res.final_loss, "steps", (json_int_t)res.steps,
                                "trained_params", (json_int_t)res.trained_params, "seconds", now_s() - t0);
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text) puts(text);
        free(text);
        json_decref(doc);
    } else {
        printf("fine-tuned %s (%s, %lld parameters) + linear head: test top-1 %.2f%% (train %.2f%%, loss %.4f)\n",
               names, rules[rule], (long long)res.trained_params, 100 * res.test_top1, 100 * res.train_top1,
               res.final_loss);
        printf("  %s; %lld steps, %.1f s\n", budget, (long long)res.steps, now_s() - t0);
        if (out) printf("wrote %s\n", out);
    }
    goto done;
fail:
    rc = cli_fail(ctx, st, cmd);
done:
    mloc_layer_scores_free(&s);
    mloc_dataset_free(&train);
    mloc_dataset_free(&test);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
    return rc;
}
