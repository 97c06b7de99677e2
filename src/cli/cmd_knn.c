/* memloc knn: weighted kNN top-1 accuracy of an encoder (SPEC.md section 8). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "memloc/analysis.h"

static const char usage_text[] =
    "usage: memloc knn --weights F --train SPEC --test SPEC [--k 200] [--t 0.5] [--tap NAME]\n"
    "                  [--batch-size 256] [--fit auto|none|pad|resize] [--channels auto|1|3]\n"
    "                  [--norm half|cifar10|...] [--json] [-j N] [-q]\n"
    "\n"
    "Examples:\n"
    "  memloc knn --weights runs/f/model.safetensors \\\n"
    "             --train cifar10:~/data/cifar10:train --test cifar10:~/data/cifar10:test\n"
    "  memloc knn --weights f.safetensors --train fmnist:train --test fmnist:test   # 28x28 gray\n"
    "             # images are padded to 32x32 and replicated to RGB for an RGB encoder\n"
    "  memloc knn --weights f.safetensors --train 'cifar10:d@0:5000' --test cifar10:d:test \\\n"
    "             --tap layer2 --k 20 --json\n"
    "\n"
    "Extracts the features of every training and test image with the frozen encoder\n"
    "(eval mode, no augmentation, Normalize), l2-normalizes them, and classifies each\n"
    "test image by its k most cosine-similar training images, each voting for its\n"
    "class with weight exp(similarity / T); prints the top-1 accuracy. This is the kNN\n"
    "monitor of the SSLMem code (InstDisc). k larger than the training set is clamped\n"
    "to it (with a note). Ties go to the lower training index and the lower class.\n"
    "\n"
    "Options:\n"
    "  --weights F          encoder weights (safetensors, memloc or PyTorch names)\n"
    "  --train SPEC         labelled dataset the neighbours come from (SPEC@INDICES for a subset)\n"
    "  --test SPEC          labelled dataset to classify\n"
    "  --k K                neighbours (200)\n"
    "  --t T                temperature of the weights (0.5)\n"
    "  --tap NAME           compare a tap's output instead of the encoder output\n"
    "                       ('feature', the default; 'memloc info' lists the taps)\n"
    "  --batch-size B       images per forward pass (256); does not change the result\n"
    "  --fit MODE           make images the encoder's size: auto (default: zero-pad a\n"
    "                       smaller image when the difference is even, else an error),\n"
    "                       none, pad, resize (PIL bilinear)\n"
    "  --channels C         auto (default: gray is replicated to RGB for an RGB encoder),\n"
    "                       1 (RGB to gray, PIL L) or 3\n"
    "  --norm NAME          Normalize constants: half (mean 0.5, std 0.5; default), cifar10,\n"
    "                       cifar100, stl10, imagenet\n"
    "  --json               one JSON document on stdout (schema memloc.knn/1)\n"
    "  -j, --threads N      threads (0: all CPUs)\n"
    "  -q, --quiet          no progress or notes on stderr\n"
    "\n"
    "Exit status: 0 ok, 64 bad option, 65 malformed or unlabelled data, 66 missing input.\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cmd_knn(int argc, char **argv) {
    enum { O_WEIGHTS = 256, O_TRAIN, O_TEST, O_K, O_T, O_TAP, O_BATCH, O_FIT, O_CHANNELS, O_NORM,
           O_JSON, O_THREADS, O_DEBUG };
    static const struct option opts[] = {
        {"weights", required_argument, 0, O_WEIGHTS}, {"train", required_argument, 0, O_TRAIN},
        {"test", required_argument, 0, O_TEST},       {"k", required_argument, 0, O_K},
        {"t", required_argument, 0, O_T},             {"tap", required_argument, 0, O_TAP},
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
    const char *cmd = "knn";
    cli_common common = {.cmd = cmd};
    mloc_eval_data_options dopt = mloc_eval_data_options_default();
    mloc_knn_config kc = mloc_knn_config_default();
    const char *weights = NULL, *train_spec = NULL, *test_spec = NULL, *tap = "feature";
    int json = 0, norm = MLOC_AUG_NORM_HALF, i;
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
        case O_K:
            if (!cli_parse_int(cmd, "--k", optarg, 1, 1000000, &iv)) return 64;
            kc.k = (int)iv;
            break;
        case O_T:
            if (!cli_parse_double(cmd, "--t", optarg, 1e-6, 1e6, &dv)) return 64;
            kc.t = dv;
            break;
        case O_TAP: tap = optarg; break;
        case O_BATCH:
            if (!cli_parse_int(cmd, "--batch-size", optarg, 1, 65536, &iv)) return 64;
            kc.batch = (int)iv;
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
    if (!train_spec) return cli_usage(cmd, "--train SPEC is required (the labelled neighbours)");
    if (!test_spec) return cli_usage(cmd, "--test SPEC is required (the images to classify)");

    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) return 70;
    mloc_model *m = NULL;
    mloc_dataset train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    mloc_aug_pipeline pipe;
    int rc = 0, value = -1;
    double acc = 0, t0 = now_s();
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
        if (train.prep) fprintf(stderr, "memloc: knn: note: %s: %s\n", train_spec, train.prep);
        if (test.prep) fprintf(stderr, "memloc: knn: note: %s: %s\n", test_spec, test.prep);
        if (kc.k > train.n)
            fprintf(stderr, "memloc: knn: note: k %d is more than the %lld training images; using k %lld\n",
                    kc.k, (long long)train.n, (long long)train.n);
    }
    kc.value = value;
    kc.pipe = &pipe;
    st = mloc_knn_accuracy(ctx, m, &train, NULL, train.n, &test, NULL, test.n, &kc, &acc);
    if (st != MLOC_OK) goto fail;
    const double secs = now_s() - t0;
    const long long k_used = kc.k < train.n ? kc.k : train.n;
    const long long dim = mloc_model_value_numel(m, value);
    const long long correct = (long long)(acc * (double)test.n + 0.5);
    if (json) {
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:f, s:I, s:I, s:I, s:s, s:f, s:I, s:f}",
                                "schema", "memloc.knn/1", "weights", weights, "train", train.spec,
                                "test", test.spec, "tap", tap, "k", (json_int_t)k_used, "t", kc.t,
                                "n_train", (json_int_t)train.n, "n_test", (json_int_t)test.n, "dim",
                                (json_int_t)dim, "norm", norms[norm], "top1", acc, "correct",
                                (json_int_t)correct, "seconds", secs);
        char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (text) puts(text);
        free(text);
        json_decref(doc);
    } else {
        printf("knn top-1 %.2f%% (%lld of %lld test images)\n", 100 * acc, correct, (long long)test.n);
        printf("  k %lld, T %g, %s (%lld features), %lld training images, %.1f s\n", k_used, kc.t, tap,
               dim, (long long)train.n, secs);
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
