/* memloc features: write an encoder's features (any tap) of a dataset as .npy. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "memloc/analysis.h"
#include "memloc/io.h"

static const char usage_text[] =
    "usage: memloc features --weights F --data SPEC --out feats.npy [--tap NAME|feature]\n"
    "                       [--labels labels.npy] [--indices I] [--batch-size 256]\n"
    "                       [--fit auto|none|pad|resize] [--channels auto|1|3] [--norm half|...]\n"
    "                       [--json] [-j N] [-q]\n"
    "\n"
    "Examples:\n"
    "  memloc features --weights runs/f/model.safetensors --data cifar10:~/data/cifar10:test \\\n"
    "                  --out test_feats.npy --labels test_labels.npy\n"
    "  memloc features --weights f.safetensors --data cifar10:d --indices 40000:45000 \\\n"
    "                  --tap layer2 --out candidates_layer2.npy\n"
    "  python3 -c \"import numpy as np; print(np.load('test_feats.npy').shape)\"\n"
    "\n"
    "Runs the frozen encoder in eval mode on every image (no augmentation, Normalize)\n"
    "and writes the chosen value, flattened per image in (C, H, W) order as torch's\n"
    ".flatten(1), as an N x D float32 .npy; with --labels also the N labels as int64\n"
    "(-1 for unlabelled images). Files are written atomically. Only the layers up to\n"
    "the tap are run, so early taps are cheap.\n"
    "\n"
    "Options:\n"
    "  --weights F          encoder weights (safetensors, memloc or PyTorch names)\n"
    "  --data SPEC          the images (SPEC@INDICES for a subset)\n"
    "  --out FILE           features, N x D float32 .npy\n"
    "  --labels FILE        labels, N int64 .npy\n"
    "  --tap NAME           a tap ('memloc info' lists them), 'feature' (the encoder\n"
    "                       output; default) or 'input' (the normalized pixels)\n"
    "  --indices I          a subset: 0:40000,45000:50000 (half-open ranges), 7,9, or @FILE\n"
    "  --batch-size B       images per forward pass (256); does not change the result\n"
    "  --fit MODE           auto (default: zero-pad smaller images when the difference is\n"
    "                       even), none, pad, resize\n"
    "  --channels C         auto (default: gray replicated for an RGB encoder), 1 or 3\n"
    "  --norm NAME          Normalize constants: half (default), cifar10, cifar100, stl10,\n"
    "                       imagenet\n"
    "  --json               a JSON summary on stdout (schema memloc.features/1)\n"
    "  -j, --threads N      threads (0: all CPUs)\n"
    "  -q, --quiet          no progress or notes on stderr\n"
    "\n"
    "Exit status: 0 ok, 64 bad option, 65 malformed data, 66 missing input, 73 cannot\n"
    "write the output.\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cmd_features(int argc, char **argv) {
    enum { O_WEIGHTS = 256, O_DATA, O_OUT, O_LABELS, O_TAP, O_INDICES, O_BATCH, O_FIT, O_CHANNELS,
           O_NORM, O_JSON, O_THREADS, O_DEBUG };
    static const struct option opts[] = {
        {"weights", required_argument, 0, O_WEIGHTS}, {"data", required_argument, 0, O_DATA},
        {"out", required_argument, 0, O_OUT},         {"labels", required_argument, 0, O_LABELS},
        {"tap", required_argument, 0, O_TAP},         {"indices", required_argument, 0, O_INDICES},
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
    const char *cmd = "features";
    cli_common common = {.cmd = cmd};
    mloc_eval_data_options dopt = mloc_eval_data_options_default();
    const char *weights = NULL, *spec = NULL, *out = NULL, *labels_out = NULL, *tap = "feature";
    int json = 0, norm = MLOC_AUG_NORM_HALF, batch = 256, i;
    long long iv;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":j:qvh", opts, NULL)) != -1) {
        switch (c) {
        case O_WEIGHTS: weights = optarg; break;
        case O_DATA: spec = optarg; break;
        case O_OUT: out = optarg; break;
        case O_LABELS: labels_out = optarg; break;
        case O_TAP: tap = optarg; break;
        case O_INDICES: dopt.indices = optarg; break;
        case O_BATCH:
            if (!cli_parse_int(cmd, "--batch-size", optarg, 1, 65536, &iv)) return 64;
            batch = (int)iv;
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
    if (!weights) return cli_usage(cmd, "--weights F is required (the encoder)");
    if (!spec) return cli_usage(cmd, "--data SPEC is required (the images)");
    if (!out) return cli_usage(cmd, "--out FILE is required (where the .npy goes)");
    if (labels_out && strcmp(labels_out, out) == 0)
        return cli_usage(cmd, "--labels and --out both name '%s'", out);

    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) return 70;
    mloc_model *m = NULL;
    mloc_dataset d;
    memset(&d, 0, sizeof d);
    mloc_aug_pipeline pipe;
    float *feats = NULL;
    int64_t *labels = NULL;
    int rc = 0, value = -1;
    double t0 = now_s();
    mloc_status st = mloc_model_open(ctx, &m, weights, MLOC_HEAD_NONE);
    if (st != MLOC_OK) goto fail;
    if (mloc_eval_find_value(ctx, m, tap, &value) != MLOC_OK) {
        rc = cli_usage(cmd, "--tap: %s", mloc_ctx_error(ctx));
        goto done;
    }
    st = mloc_eval_dataset_open(ctx, &d, spec, m, &dopt);
    if (st == MLOC_OK) st = mloc_eval_pipeline(ctx, &pipe, (mloc_aug_norm)norm);
    if (st != MLOC_OK) goto fail;
    if (!common.quiet && d.prep) fprintf(stderr, "memloc: features: note: %s: %s\n", spec, d.prep);
    const int64_t D = mloc_model_value_numel(m, value);
    feats = mloc_alloc(ctx, ((size_t)d.n * (size_t)D + 1) * sizeof(float));
    labels = mloc_alloc(ctx, ((size_t)d.n + 1) * sizeof(int64_t));
    if (!feats || !labels) {
        st = mloc_error_prefix(ctx, MLOC_ERR_NOMEM, "features of %lld images x %lld", (long long)d.n,
                               (long long)D);
        goto fail;
    }
    st = mloc_features_extract(ctx, m, &d, NULL, d.n, value, batch, &pipe, feats);
    if (st != MLOC_OK) goto fail;
    const int64_t shape[2] = {d.n, D};
    st = mloc_npy_write(ctx, out, MLOC_DTYPE_F32, 2, shape, feats);
    if (st != MLOC_OK) goto fail;
    if (labels_out) {
        for (int64_t k = 0; k < d.n; k++) labels[k] = d.labels ? d.labels[k] : -1;
        st = mloc_npy_write(ctx, labels_out, MLOC_DTYPE_I64, 1, shape, labels);
        if (st != MLOC_OK) goto fail;
    }
    const double secs = now_s() - t0;
    if (json) {
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:f}", "schema",
                                "memloc.features/1", "weights", weights, "data", d.spec, "tap", tap,
                                "n", (json_int_t)d.n, "dim", (json_int_t)D, "norm", norms[norm], "out",
                                out, "seconds", secs);
        if (doc) {
            const mloc_value *v = &m->values[value];
            json_object_set_new(doc, "shape", json_pack("[i,i,i]", v->c, v->h, v->w));
            json_object_set_new(doc, "labels", labels_out ? json_string(labels_out) : json_null());
            json_object_set_new(doc, "prep", d.prep ? json_string(d.prep) : json_null());
        }
        char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (text) puts(text);
        free(text);
        json_decref(doc);
    } else if (!common.quiet) {
        const mloc_value *v = &m->values[value];
        fprintf(stderr, "memloc: features: wrote %s: %lld x %lld float32 (%s, %dx%dx%d per image)%s%s in %.1f s\n",
                out, (long long)d.n, (long long)D, tap, v->c, v->h, v->w, labels_out ? " and " : "",
                labels_out ? labels_out : "", secs);
    }
    goto done;
fail:
    rc = cli_fail(ctx, st, cmd);
done:
    mloc_free(feats);
    mloc_free(labels);
    mloc_dataset_free(&d);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
    return rc;
}
