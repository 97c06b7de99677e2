/* memloc probe: linear-probe accuracy of a frozen encoder (SPEC.md section 8). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "memloc/analysis.h"

static const char usage_text[] =
    "usage: memloc probe --weights F --train SPEC --test SPEC [--epochs 30] [--lr 1e-3]\n"
    "                    [--optimizer adam|sgd] [--batch-size 256] [--seed S] [--tap NAME]\n"
    "                    [--preprocess standardize|l2|raw] [--json] [-j N] [-q]\n"
    "\n"
    "Examples:\n"
    "  memloc probe --weights runs/f/model.safetensors \\\n"
    "               --train cifar10:~/data/cifar10:train --test cifar10:~/data/cifar10:test\n"
    "  memloc probe --weights f.safetensors --train fmnist:train --test fmnist:test --epochs 10\n"
    "  memloc probe --weights f.safetensors --train cifar10:d --test cifar10:d:test \\\n"
    "               --tap layer2 --optimizer sgd --lr 0.1 --json\n"
    "\n"
    "Extracts the features of every training and test image once with the frozen\n"
    "encoder (eval mode, no augmentation, Normalize), standardizes every feature with\n"
    "the training set's mean and standard deviation, then trains a linear classifier\n"
    "(zero-initialised weights and bias) with softmax cross-entropy on shuffled\n"
    "mini-batches, the rate decayed by a cosine to 0. Prints the test top-1 (and the\n"
    "training top-1). The result is bitwise the same for a --seed on any number of\n"
    "threads.\n"
    "\n"
    "Options:\n"
    "  --weights F          encoder weights (safetensors, memloc or PyTorch names)\n"
    "  --train SPEC         labelled dataset to train the classifier on (SPEC@INDICES)\n"
    "  --test SPEC          labelled dataset to report accuracy on\n"
    "  --epochs E           passes over the training features (30)\n"
    "  --lr LR              peak learning rate (1e-3 for adam; 0.1 is a good start for sgd)\n"
    "  --optimizer NAME     adam (default) or sgd (with --momentum, 0.9)\n"
    "  --momentum M         sgd momentum (0.9)\n"
    "  --wd W               L2 weight decay (0)\n"
    "  --schedule NAME      cosine (default) or constant\n"
    "  --batch-size B       mini-batch, also images per forward pass (256)\n"
    "  --seed S             seed of the batch order (0)\n"
    "  --preprocess P       standardize (default; per-feature z-score with training\n"
    "                       statistics, as a BatchNorm without affine), l2 (unit rows), raw\n"
    "  --tap NAME           probe a tap's output instead of the encoder output ('feature')\n"
    "  --fit MODE           auto (default: zero-pad smaller images when the difference is\n"
    "                       even), none, pad, resize\n"
    "  --channels C         auto (default: gray replicated for an RGB encoder), 1 or 3\n"
    "  --norm NAME          Normalize constants: half (default), cifar10, cifar100, stl10,\n"
    "                       imagenet\n"
    "  --json               one JSON document on stdout (schema memloc.probe/1)\n"
    "  -j, --threads N      threads (0: all CPUs)\n"
    "  -q, --quiet          no progress or notes on stderr\n"
    "\n"
    "Exit status: 0 ok, 1 the loss diverged (lower --lr), 64 bad option, 65 malformed or\n"
    "unlabelled data, 66 missing input.\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cmd_probe(int argc, char **argv) {
    enum { O_WEIGHTS = 256, O_TRAIN, O_TEST, O_EPOCHS, O_LR, O_OPTIM, O_MOMENTUM, O_WD, O_SCHEDULE,
           O_SEED, O_PREP, O_TAP, O_BATCH, O_FIT, O_CHANNELS, O_NORM, O_JSON, O_THREADS, O_DEBUG };
    static const struct option opts[] = {
        {"weights", required_argument, 0, O_WEIGHTS}, {"train", required_argument, 0, O_TRAIN},
        {"test", required_argument, 0, O_TEST},       {"epochs", required_argument, 0, O_EPOCHS},
        {"lr", required_argument, 0, O_LR},           {"optimizer", required_argument, 0, O_OPTIM},
        {"momentum", required_argument, 0, O_MOMENTUM}, {"wd", required_argument, 0, O_WD},
        {"schedule", required_argument, 0, O_SCHEDULE}, {"seed", required_argument, 0, O_SEED},
        {"preprocess", required_argument, 0, O_PREP}, {"tap", required_argument, 0, O_TAP},
        {"batch-size", required_argument, 0, O_BATCH}, {"fit", required_argument, 0, O_FIT},
        {"channels", required_argument, 0, O_CHANNELS}, {"norm", required_argument, 0, O_NORM},
        {"json", no_argument, 0, O_JSON},             {"threads", required_argument, 0, O_THREADS},
        {"jobs", required_argument, 0, 'j'},          {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},             {"debug", no_argument, 0, O_DEBUG},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0}};
    static const char *const fits[] = {"auto", "none", "pad", "resize", NULL};
    static const int fit_values[] = {MLOC_EVAL_AUTO, MLOC_FIT_NONE, MLOC_FIT_PAD, MLOC_FIT_RESIZE};
    static const char *const chans[] = {"auto", "1", "3", NULL};
    static const int chan_values[] = {MLOC_EVAL_AUTO, 1, 3};
    static const char *const norms[] = {
#define MLOC_X(id, name, m0, m1, m2, s0, s1, s2) name,
        MLOC_AUG_NORM_LIST(MLOC_X)
#undef MLOC_X
        NULL};
    static const char *const optims[] = {"adam", "sgd", NULL};
    static const char *const scheds[] = {"cosine", "constant", NULL};
    static const char *const preps[] = {"standardize", "l2", "raw", NULL};
    const char *cmd = "probe";
    cli_common common = {.cmd = cmd};
    mloc_eval_data_options dopt = mloc_eval_data_options_default();
    mloc_probe_config pc = mloc_probe_config_default();
    const char *weights = NULL, *train_spec = NULL, *test_spec = NULL, *tap = "feature";
    int json = 0, norm = MLOC_AUG_NORM_HALF, lr_given = 0, i;
    long long iv;
    double dv;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":j:qvh", opts, NULL)) != -1) {
        switch (c) {
        case O_WEIGHTS: weights = optarg; break;
        case O_TRAIN: train_spec = optarg; break;
        case O_TEST: test_spec = optarg; break;
        case O_EPOCHS:
            if (!cli_parse_int(cmd, "--epochs", optarg, 1, 100000, &iv)) return 64;
            pc.epochs = (int)iv;
            break;
        case O_LR:
            if (!cli_parse_double(cmd, "--lr", optarg, 1e-12, 1e6, &dv)) return 64;
            pc.lr = dv;
            lr_given = 1;
            break;
        case O_OPTIM:
            if ((i = cli_parse_choice(cmd, "--optimizer", optarg, optims)) < 0) return 64;
            pc.optim = i == 0 ? MLOC_OPTIM_ADAM : MLOC_OPTIM_SGD;
            break;
        case O_MOMENTUM:
            if (!cli_parse_double(cmd, "--momentum", optarg, 0, 0.999999, &dv)) return 64;
            pc.momentum = dv;
            break;
        case O_WD:
            if (!cli_parse_double(cmd, "--wd", optarg, 0, 1e3, &dv)) return 64;
            pc.weight_decay = dv;
            break;
        case O_SCHEDULE:
            if ((i = cli_parse_choice(cmd, "--schedule", optarg, scheds)) < 0) return 64;
            pc.cosine = i == 0;
            break;
        case O_SEED:
            if (!cli_parse_int(cmd, "--seed", optarg, 0, (long long)1 << 62, &iv)) return 64;
            pc.seed = (uint64_t)iv;
            common.seed = (uint64_t)iv;
            break;
        case O_PREP:
            if ((i = cli_parse_choice(cmd, "--preprocess", optarg, preps)) < 0) return 64;
            pc.prep = (mloc_probe_prep)i;
            break;
        case O_TAP: tap = optarg; break;
        case O_BATCH:
            if (!cli_parse_int(cmd, "--batch-size", optarg, 1, 65536, &iv)) return 64;
            pc.batch = (int)iv;
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
            if ((norm = cli_parse_choice(cmd, "--norm", optarg, norms)) < 0) return 64;
            break;
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
    if (!weights) return cli_usage(cmd, "--weights F is required (the encoder to evaluate)");
    if (!train_spec) return cli_usage(cmd, "--train SPEC is required (the labelled training set)");
    if (!test_spec) return cli_usage(cmd, "--test SPEC is required (the labelled test set)");
    if (!lr_given && pc.optim == MLOC_OPTIM_SGD) pc.lr = 0.1;

    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) return 70;
    mloc_model *m = NULL;
    mloc_dataset train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    mloc_aug_pipeline pipe;
    mloc_probe_result res;
    memset(&res, 0, sizeof res);
    int rc = 0, value = -1;
    double t0 = now_s();
    mloc_status st = mloc_model_open(ctx, &m, weights, MLOC_HEAD_NONE);
    if (st != MLOC_OK) goto fail;
    if (mloc_eval_find_value(ctx, m, tap, &value) != MLOC_OK) {
        rc = cli_usage(cmd, "--tap: %s", mloc_ctx_error(ctx));
        goto done;
    }
    st = mloc_eval_dataset_open(ctx, &train, train_spec, m, &dopt);
    if (st == MLOC_OK) st = mloc_eval_dataset_open(ctx, &test, test_spec, m, &dopt);
    if (st == MLOC_OK) st = mloc_eval_pipeline(ctx, &pipe, (mloc_aug_norm)norm);
    if (st != MLOC_OK) goto fail;
    if (!common.quiet) {
        if (train.prep) fprintf(stderr, "memloc: probe: note: %s: %s\n", train_spec, train.prep);
        if (test.prep) fprintf(stderr, "memloc: probe: note: %s: %s\n", test_spec, test.prep);
    }
    pc.value = value;
    pc.pipe = &pipe;
    st = mloc_probe_run(ctx, m, &res, &train, NULL, train.n, &test, NULL, test.n, &pc);
    if (st != MLOC_OK) goto fail;
    const double secs = now_s() - t0;
    const long long dim = mloc_model_value_numel(m, value);
    const char *optim = mloc_optim_kind_name(pc.optim);
    if (json) {
        json_t *doc = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:s, s:I, "
            "s:f, s:f, s:f, s:I, s:f}",
            "schema", "memloc.probe/1", "weights", weights, "train", train.spec, "test", test.spec,
            "tap", tap, "n_train", (json_int_t)train.n, "n_test", (json_int_t)test.n, "dim",
            (json_int_t)dim, "norm", norms[norm], "preprocess", mloc_probe_prep_name(pc.prep),
            "epochs", pc.epochs, "batch_size", pc.batch, "lr", pc.lr, "momentum",
            pc.optim == MLOC_OPTIM_SGD ? pc.momentum : 0.0, "weight_decay", pc.weight_decay,
            "optimizer", optim, "seed", (json_int_t)pc.seed, "train_top1", res.train_top1,
            "test_top1", res.test_top1, "final_loss", res.final_loss, "steps", (json_int_t)res.steps,
            "seconds", secs);
        if (doc) json_object_set_new(doc, "schedule", json_string(pc.cosine ? "cosine" : "constant"));
        char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (text) puts(text);
        free(text);
        json_decref(doc);
    } else {
        printf("probe test top-1 %.2f%% (train %.2f%%, final loss %.4f)\n", 100 * res.test_top1,
               100 * res.train_top1, res.final_loss);
        printf("  %s (%lld features, %s), %s lr %g %s, %d epochs of batch %d, seed %llu, %.1f s\n", tap,
               dim, mloc_probe_prep_name(pc.prep), optim, pc.lr, pc.cosine ? "cosine" : "constant",
               pc.epochs, pc.batch, (unsigned long long)pc.seed, secs);
    }
    goto done;
fail:
    rc = cli_fail(ctx, st, cmd);
done:
    mloc_dataset_free(&train);
    mloc_dataset_free(&test);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
    return rc;
}
