/* memloc swap: layer exchange (SPEC.md section 8): replace named blocks of
 * encoder A by those of encoder B, or print the layer-replacement table
 * (A's most / least / random memorizing blocks replaced by B's). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "memloc/apply.h"

static const char usage_text[] =
    "usage: memloc swap --a A.safetensors --b B.safetensors --blocks LIST --out C.safetensors\n"
    "       memloc swap --a A --b B --compare --layermem DIR [--n 2] --evaluate TRAIN,TEST\n"
    "                   [--evaluate TRAIN2,TEST2]\n"
    "\n"
    "Examples:\n"
    "  memloc swap --a runs/exp/f/model.safetensors --b runs/other/model.safetensors \\\n"
    "              --blocks layer3_residual1,layer3_residual2 --out mixed.safetensors\n"
    "  memloc swap --a f.safetensors --b fmnist-encoder.safetensors --compare \\\n"
    "              --layermem runs/exp --n 2 \\\n"
    "              --evaluate folder:cifar10.tar.gz/test@0:5000,folder:cifar10.tar.gz/test@5000:10000 \\\n"
    "              --evaluate fmnist@0:5000,fmnist:test@0:2000\n"
    "\n"
    "C is A with every tensor of the named blocks (conv and BN parameters, BN running\n"
    "statistics and counters) copied from B. Blocks are module names (memloc info\n"
    "lists them; for ResNet9 prep, layer1_head, ..., layer3_residual2). Every tensor\n"
    "must have the same shape in A and B, else the error names the tensor and both\n"
    "shapes, and nothing is written. Tensors outside the blocks (and A's head) are A's.\n"
    "\n"
    "--compare ranks A's blocks by LayerMem (DIR/layermem.json or DIR/metrics/, A's\n"
    "LayerMem run) and prints a linear probe's test accuracy on every --evaluate pair\n"
    "for A, for B, and for A with its n most memorizing, n least memorizing and n\n"
    "random blocks replaced by B's (the paper's layer-replacement table). Only blocks\n"
    "whose shapes match in A and B are candidates (a 1-channel B cannot give its first\n"
    "conv to a 3-channel A).\n"
    "\n"
    "Options:\n"
    "  --a FILE             encoder A (the one whose blocks are replaced)\n"
    "  --b FILE             encoder B (the donor)\n"
    "  --blocks LIST        comma-separated block names\n"
    "  --out FILE           the exchanged encoder C (safetensors)\n"
    "  --compare            the layer-replacement table\n"
    "  --layermem DIR       A's LayerMem results (--compare)\n"
    "  --n N                blocks replaced in each row of the table [2]\n"
    "  --evaluate TRAIN,TEST  probe datasets; repeat for a second (up to 4)\n"
    "  --seed S             random blocks and probe batch order [0]\n"
    "  --epochs E           probe epochs [30]\n"
    "  --lr LR              probe learning rate (Adam) [1e-3]\n"
    "  --batch-size B       probe mini-batch and forward batch [256]\n"
    "  --fit MODE           auto|none|pad|resize [auto]\n"
    "  --channels C         auto|1|3 [auto]\n"
    "  --json               one JSON document on stdout (schema memloc.swap/1)\n"
    "  -j, --threads N      threads (0: all CPUs)\n"
    "  -q, --quiet          no progress on stderr\n"
    "\n"
    "Exit status: 0 ok, 64 bad option or mismatching shapes, 66 missing input, 73\n"
    "cannot write the output.\n";

static int split_pair(const char *text, char *train, char *test, size_t size) {
    for (const char *c = strchr(text, ','); c; c = strchr(c + 1, ','))
        if ((c[1] >= 'a' && c[1] <= 'z') || (c[1] >= 'A' && c[1] <= 'Z') || c[1] == '/' || c[1] == '~' ||
            c[1] == '.') {
            if ((size_t)(c - text) >= size || strlen(c + 1) >= size) return 0;
            memcpy(train, text, (size_t)(c - text));
            train[c - text] = 0;
            snprintf(test, size, "%s", c + 1);
            return 1;
        }
    return 0;
}

int cmd_swap(int argc, char **argv) {
    enum { O_A = 256, O_B, O_BLOCKS, O_OUT, O_COMPARE, O_LAYERMEM, O_N, O_EVAL, O_SEED, O_EPOCHS, O_LR, O_BATCH,
           O_FIT, O_CHANNELS, O_JSON, O_THREADS, O_DEBUG };
    static const struct option opts[] = {
        {"a", required_argument, 0, O_A},             {"b", required_argument, 0, O_B},
        {"blocks", required_argument, 0, O_BLOCKS},   {"out", required_argument, 0, O_OUT},
        {"compare", no_argument, 0, O_COMPARE},       {"layermem", required_argument, 0, O_LAYERMEM},
        {"n", required_argument, 0, O_N},             {"evaluate", required_argument, 0, O_EVAL},
        {"seed", required_argument, 0, O_SEED},       {"epochs", required_argument, 0, O_EPOCHS},
        {"lr", required_argument, 0, O_LR},           {"batch-size", required_argument, 0, O_BATCH},
        {"fit", required_argument, 0, O_FIT},         {"channels", required_argument, 0, O_CHANNELS},
        {"json", no_argument, 0, O_JSON},             {"threads", required_argument, 0, O_THREADS},
        {"jobs", required_argument, 0, 'j'},          {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},             {"debug", no_argument, 0, O_DEBUG},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0}};
    static const char *const fits[] = {"auto", "none", "pad", "resize", NULL};
    static const int fit_values[] = {MLOC_EVAL_AUTO, MLOC_FIT_NONE, MLOC_FIT_PAD, MLOC_FIT_RESIZE};
    static const char *const chans[] = {"auto", "1", "3", NULL};
    static const int chan_values[] = {MLOC_EVAL_AUTO, 1, 3};
    const char *cmd = "swap";
    cli_common common = {.cmd = cmd};
    mloc_probe_config probe = mloc_probe_config_default();
    mloc_eval_data_options dopt = mloc_eval_data_options_default();
    const char *a_path = NULL, *b_path = NULL, *blocks = NULL, *out = NULL, *layermem = NULL;
    const char *evals[MLOC_SWAP_MAX_EVAL];
    int n_eval = 0, compare = 0, json = 0, i;
    long long n = 2, iv;
    uint64_t seed = 0;
    double dv;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":j:qvh", opts, NULL)) != -1) {
        switch (c) {
        case O_A: a_path = optarg; break;
        case O_B: b_path = optarg; break;
        case O_BLOCKS: blocks = optarg; break;
        case O_OUT: out = optarg; break;
        case O_COMPARE: compare = 1; break;
        case O_LAYERMEM: layermem = optarg; break;
        case O_N:
            if (!cli_parse_int(cmd, "--n", optarg, 1, MLOC_APPLY_MAX_BLOCKS, &n)) return 64;
            break;
        case O_EVAL:
            if (n_eval == MLOC_SWAP_MAX_EVAL) return cli_usage(cmd, "--evaluate: at most %d pairs", MLOC_SWAP_MAX_EVAL);
            evals[n_eval++] = optarg;
            break;
        case O_SEED:
            if (!cli_parse_int(cmd, "--seed", optarg, 0, (long long)1 << 62, &iv)) return 64;
            seed = probe.seed = common.seed = (uint64_t)iv;
            break;
        case O_EPOCHS:
            if (!cli_parse_int(cmd, "--epochs", optarg, 1, 100000, &iv)) return 64;
            probe.epochs = (int)iv;
            break;
        case O_LR:
            if (!cli_parse_double(cmd, "--lr", optarg, 1e-12, 1e6, &dv)) return 64;
            probe.lr = dv;
            break;
        case O_BATCH:
            if (!cli_parse_int(cmd, "--batch-size", optarg, 1, 65536, &iv)) return 64;
            probe.batch = (int)iv;
            break;
        case O_FIT:
            if ((i = cli_parse_choice(cmd, "--fit", optarg, fits)) < 0) return 64;
            dopt.fit = fit_values[i];
            break;
        case O_CHANNELS:
            if ((i = cli_parse_choice(cmd, "--channels", optarg, chans)) < 0) return 64;
            dopt.channels = chan_values[i];
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
    if (!a_path || !b_path) return cli_usage(cmd, "--a A and --b B are required (the encoder and the donor)");
    if (compare) {
        if (!layermem) return cli_usage(cmd, "--compare needs --layermem DIR (A's LayerMem results)");
        if (!n_eval) return cli_usage(cmd, "--compare needs --evaluate TRAIN,TEST");
        if (blocks || out) return cli_usage(cmd, "--compare chooses the blocks itself: drop --blocks and --out");
    } else {
        if (!blocks) return cli_usage(cmd, "--blocks LIST is required (e.g. layer3_residual1,layer3_residual2)");
        if (!out) return cli_usage(cmd, "--out C.safetensors is required");
    }
    char trains[MLOC_SWAP_MAX_EVAL][2048], tests[MLOC_SWAP_MAX_EVAL][2048];
    const char *tr[MLOC_SWAP_MAX_EVAL], *te[MLOC_SWAP_MAX_EVAL];
    for (int k = 0; k < n_eval; k++) {
        if (!split_pair(evals[k], trains[k], tests[k], sizeof trains[k]))
            return cli_usage(cmd, "--evaluate: expected TRAIN,TEST (two dataset specs), got '%s'", evals[k]);
        tr[k] = trains[k];
        te[k] = tests[k];
    }

    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) return 70;
    int rc = 0;
    mloc_model *a = NULL, *b = NULL;
    mloc_layer_scores s;
    memset(&s, 0, sizeof s);
    char *list = NULL;
    mloc_status st;
    if (compare) {
        mloc_swap_row rows[5];
        st = mloc_layer_scores_read(ctx, layermem, &s);
        if (st == MLOC_OK)
            st = mloc_swap_compare(ctx, a_path, b_path, &s, (int)n, seed, tr, te, n_eval, &dopt, &probe, rows);
        if (st != MLOC_OK) goto fail;
        if (json) {
            json_t *arr = json_array();
            for (int r = 0; r < 5; r++) {
                json_t *acc = json_array();
                for (int k = 0; k < n_eval; k++) json_array_append_new(acc, json_real(rows[r].test_top1[k]));
                json_array_append_new(arr, json_pack("{s:s, s:i, s:s, s:o}", "row", rows[r].label, "blocks_replaced",
                                                     rows[r].n, "blocks", rows[r].blocks, "test_top1", acc));
            }
            json_t *ev = json_array();
            for (int k = 0; k < n_eval; k++) json_array_append_new(ev, json_pack("{s:s, s:s}", "train", tr[k], "test", te[k]));
            json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o, s:o}", "schema", "memloc.swap/1", "a", a_path, "b",
                                    b_path, "layermem", s.source, "seed", (json_int_t)seed, "evaluate", ev, "rows", arr);
            char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            if (text) puts(text);
            free(text);
            json_decref(doc);
        } else {
            printf("Layer exchange: A %s, B %s; LayerMem of A from %s; probe %d epochs, seed %llu\n\n", a_path, b_path,
                   s.source, probe.epochs, (unsigned long long)seed);
            for (int k = 0; k < n_eval; k++) printf("  [%d] %s -> %s\n", k + 1, tr[k], te[k]);
            printf("\n%-8s", "encoder");
            for (int k = 0; k < n_eval; k++) printf(" %9s[%d]", "top-1", k + 1);
            printf("  blocks from B\n");
            for (int r = 0; r < 5; r++) {
                printf("%-8s", rows[r].label);
                for (int k = 0; k < n_eval; k++) printf(" %11.2f%%", 100 * rows[r].test_top1[k]);
                printf("  %s\n", r == 0 ? "(none)" : r == 1 ? "(all: B itself)" : rows[r].blocks);
            }
        }
        goto done;
    }

    st = mloc_model_open(ctx, &a, a_path, -1);
    if (st == MLOC_OK) st = mloc_model_open(ctx, &b, b_path, -1);
    if (st != MLOC_OK) goto fail;
    list = strdup(blocks);
    const char *names[MLOC_APPLY_MAX_BLOCKS];
    int nb = 0;
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (nb == MLOC_APPLY_MAX_BLOCKS) {
            rc = cli_usage(cmd, "--blocks: at most %d blocks", MLOC_APPLY_MAX_BLOCKS);
            goto done;
        }
        names[nb++] = tok;
    }
    if (nb == 0) {
        rc = cli_usage(cmd, "--blocks: expected a comma-separated list of block names");
        goto done;
    }
    int copied = 0;
    st = mloc_swap_blocks(ctx, a, b, names, nb, &copied);
    if (st != MLOC_OK) goto fail;
    const char *meta[] = {"memloc_swapped_blocks", blocks, "memloc_swapped_from", b_path, NULL};
    st = mloc_model_save(ctx, a, out, -1, meta);
    if (st != MLOC_OK) goto fail;
    if (json) {
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "schema", "memloc.swap/1", "a", a_path, "b", b_path,
                                "blocks", blocks, "tensors_copied", copied, "out", out);
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text) puts(text);
        free(text);
        json_decref(doc);
    } else {
        printf("copied %d tensors of %d block(s) from %s into %s; wrote %s\n", copied, nb, b_path, a_path, out);
    }
    goto done;
fail:
    rc = cli_fail(ctx, st, cmd);
done:
    free(list);
    mloc_layer_scores_free(&s);
    mloc_model_free(a);
    mloc_model_free(b);
    mloc_ctx_destroy(ctx);
    return rc;
}
