/* memloc prune: zero the parameters of units chosen by UnitMem (SPEC.md
 * section 8), optionally re-train a linear probe, or print the pruning
 * table (top / bottom / random x fractions). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"
#include "memloc/apply.h"

static const char usage_text[] =
    "usage: memloc prune --weights F --unitmem DIR --by top|bottom|random --fraction P\n"
    "                    [--scope tap|global] --out G.safetensors [--evaluate TRAIN,TEST]\n"
    "       memloc prune --weights F --unitmem DIR --compare --evaluate TRAIN,TEST\n"
    "                    [--fractions 0.1,0.2]\n"
    "\n"
    "Examples:\n"
    "  memloc prune --weights runs/exp/f/model.safetensors --unitmem runs/exp/metrics \\\n"
    "               --by top --fraction 0.1 --out f-top10.safetensors\n"
    "  memloc prune --weights f.safetensors --unitmem runs/um --by random --fraction 0.2 \\\n"
    "               --scope global --out f-rand20.safetensors \\\n"
    "               --evaluate folder:cifar10.tar.gz/test@0:5000,folder:cifar10.tar.gz/test@5000:10000\n"
    "  memloc prune --weights f.safetensors --unitmem runs/exp --compare \\\n"
    "               --evaluate fmnist@0:5000,fmnist:test@0:2000\n"
    "\n"
    "Pruning a unit zeroes its parameters (SPEC.md 8): the conv weight slice [u,:,:,:],\n"
    "the conv bias [u], the BN weight [u] and the BN bias [u]; on a ViT, whose units are\n"
    "the MLP's hidden neurons (blocks.N.mlp.act), the row mlp.fc1.weight[u,:] and\n"
    "mlp.fc1.bias[u]. The unit then outputs 0 for every input (GELU(0) = 0). The units\n"
    "are those of highest UnitMem (top), lowest (bottom) or a seeded random choice, P of\n"
    "the live units of every conv-block or mlp.act tap (--scope tap) or of the whole\n"
    "encoder (--scope global). Units that are dead in the UnitMem run (mu_max = 0)\n"
    "already output 0; they are not candidates unless --include-dead. Residual taps\n"
    "(res1, res2; a ViT's blocks.N.attn and blocks.N) own no parameters: their units\n"
    "are never pruned (pruning the blocks feeding them is what changes them).\n"
    "\n"
    "--evaluate re-trains a linear probe (memloc probe's defaults) on the pruned\n"
    "encoder. --compare prints the pruning table: the unpruned encoder, then top,\n"
    "bottom and random for each fraction, each pruned from the original weights and\n"
    "probed with the same settings and seed.\n"
    "\n"
    "Options:\n"
    "  --weights F          encoder (safetensors; head tensors are kept in --out)\n"
    "  --unitmem DIR        UnitMem results: DIR/unitmem.json (memloc unitmem --out DIR) or\n"
    "                       DIR/metrics/unitmem.json (an experiment directory)\n"
    "  --by RULE            top|bottom|random [top]\n"
    "  --fraction P         share of the candidate units, 0..1 [0.1]\n"
    "  --scope S            tap (P of each tap) or global (P of the encoder) [tap]\n"
    "  --include-dead       dead units are candidates too\n"
    "  --seed S             seed of the random choice and of the probe [0]\n"
    "  --out G.safetensors  write the pruned encoder (not with --compare)\n"
    "  --evaluate TRAIN,TEST  probe datasets (the comma before the test spec must be\n"
    "                       followed by a letter: fmnist@0:100,200:300,fmnist:test)\n"
    "  --compare            the pruning table (needs --evaluate)\n"
    "  --fractions LIST     fractions of the table [0.1,0.2]\n"
    "  --epochs E           probe epochs [30]\n"
    "  --lr LR              probe learning rate (Adam) [1e-3]\n"
    "  --batch-size B       probe mini-batch and forward batch [256]\n"
    "  --fit MODE           auto|none|pad|resize: fit images to the encoder [auto]\n"
    "  --channels C         auto|1|3 [auto]\n"
    "  --norm NAME          Normalize constants: half|cifar10|cifar100|stl10|imagenet [half]\n"
    "  --json               one JSON document on stdout (schema memloc.prune/1)\n"
    "  -j, --threads N      threads (0: all CPUs)\n"
    "  -q, --quiet          no progress or notes on stderr\n"
    "\n"
    "Exit status: 0 ok, 64 bad option, 65 malformed data, 66 missing input, 73 cannot\n"
    "write the output.\n";

/* "TRAIN,TEST": split at the first comma followed by a letter (index lists
 * hold commas followed by digits). */
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

static int is_file(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

static mloc_status read_unitmem(mloc_ctx *ctx, const char *dir, mloc_unit_scores *u, char *used, size_t size) {
    char a[4200];
    snprintf(a, sizeof a, "%s/unitmem.json", dir);
    if (is_file(a)) {
        snprintf(used, size, "%s", dir);
    } else {
        snprintf(used, size, "%s/metrics", dir);
        snprintf(a, sizeof a, "%s/unitmem.json", used);
        if (!is_file(a))
            return mloc_error(ctx, MLOC_ERR_NOINPUT,
                              "%s: no UnitMem results (neither %s/unitmem.json nor %s; run memloc unitmem or "
                              "memloc experiment)", dir, dir, a);
    }
    return mloc_unit_scores_read(ctx, used, "unitmem", u);
}

static int parse_fractions(const char *cmd, const char *text, double *f, int *n) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    *n = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n >= 8) return cli_usage(cmd, "--fractions: at most 8 values"), 0;
        if (!cli_parse_double(cmd, "--fractions", tok, 0, 1, &f[*n])) return 0;
        (*n)++;
    }
    if (*n == 0) return cli_usage(cmd, "--fractions: expected a list such as 0.1,0.2"), 0;
    return 1;
}

int cmd_prune(int argc, char **argv) {
    enum { O_WEIGHTS = 256, O_UNITMEM, O_BY, O_FRACTION, O_SCOPE, O_DEAD, O_SEED, O_OUT, O_EVAL, O_COMPARE,
           O_FRACTIONS, O_EPOCHS, O_LR, O_BATCH, O_FIT, O_CHANNELS, O_NORM, O_JSON, O_THREADS, O_DEBUG };
    static const struct option opts[] = {
        {"weights", required_argument, 0, O_WEIGHTS}, {"unitmem", required_argument, 0, O_UNITMEM},
        {"by", required_argument, 0, O_BY},           {"fraction", required_argument, 0, O_FRACTION},
        {"scope", required_argument, 0, O_SCOPE},     {"include-dead", no_argument, 0, O_DEAD},
        {"seed", required_argument, 0, O_SEED},       {"out", required_argument, 0, O_OUT},
        {"evaluate", required_argument, 0, O_EVAL},   {"compare", no_argument, 0, O_COMPARE},
        {"fractions", required_argument, 0, O_FRACTIONS}, {"epochs", required_argument, 0, O_EPOCHS},
        {"lr", required_argument, 0, O_LR},           {"batch-size", required_argument, 0, O_BATCH},
        {"fit", required_argument, 0, O_FIT},         {"channels", required_argument, 0, O_CHANNELS},
        {"norm", required_argument, 0, O_NORM},       {"json", no_argument, 0, O_JSON},
        {"threads", required_argument, 0, O_THREADS}, {"jobs", required_argument, 0, 'j'},
        {"quiet", no_argument, 0, 'q'},               {"verbose", no_argument, 0, 'v'},
        {"debug", no_argument, 0, O_DEBUG},           {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    static const char *const bys[] = {"top", "bottom", "random", NULL};
    static const char *const scopes[] = {"tap", "global", NULL};
    static const char *const fits[] = {"auto", "none", "pad", "resize", NULL};
    static const int fit_values[] = {MLOC_EVAL_AUTO, MLOC_FIT_NONE, MLOC_FIT_PAD, MLOC_FIT_RESIZE};
    static const char *const chans[] = {"auto", "1", "3", NULL};
    static const int chan_values[] = {MLOC_EVAL_AUTO, 1, 3};
    static const char *const norms[] = {
#define MLOC_X(id, name, m0, m1, m2, s0, s1, s2) name,
        MLOC_AUG_NORM_LIST(MLOC_X)
#undef MLOC_X
        NULL};
    const char *cmd = "prune";
    cli_common common = {.cmd = cmd};
    mloc_prune_config pc = mloc_prune_config_default();
    mloc_probe_config probe = mloc_probe_config_default();
    mloc_eval_data_options dopt = mloc_eval_data_options_default();
    const char *weights = NULL, *unitmem = NULL, *out = NULL, *eval = NULL;
    int compare = 0, json = 0, norm = MLOC_AUG_NORM_HALF, nf = 2, i, by_given = 0, fraction_given = 0;
    double fractions[8] = {0.1, 0.2};
    long long iv;
    double dv;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":j:qvh", opts, NULL)) != -1) {
        switch (c) {
        case O_WEIGHTS: weights = optarg; break;
        case O_UNITMEM: unitmem = optarg; break;
        case O_BY:
            if ((i = cli_parse_choice(cmd, "--by", optarg, bys)) < 0) return 64;
            pc.by = (mloc_prune_by)i;
            by_given = 1;
            break;
        case O_FRACTION:
            if (!cli_parse_double(cmd, "--fraction", optarg, 0, 1, &pc.fraction)) return 64;
            fraction_given = 1;
            break;
        case O_SCOPE:
            if ((i = cli_parse_choice(cmd, "--scope", optarg, scopes)) < 0) return 64;
            pc.scope = (mloc_prune_scope)i;
            break;
        case O_DEAD: pc.include_dead = 1; break;
        case O_SEED:
            if (!cli_parse_int(cmd, "--seed", optarg, 0, (long long)1 << 62, &iv)) return 64;
            pc.seed = probe.seed = common.seed = (uint64_t)iv;
            break;
        case O_OUT: out = optarg; break;
        case O_EVAL: eval = optarg; break;
        case O_COMPARE: compare = 1; break;
        case O_FRACTIONS:
            if (!parse_fractions(cmd, optarg, fractions, &nf)) return 64;
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
    if (!weights) return cli_usage(cmd, "--weights F is required (the encoder to prune)");
    if (!unitmem) return cli_usage(cmd, "--unitmem DIR is required (UnitMem results of this encoder)");
    if (compare && !eval) return cli_usage(cmd, "--compare needs --evaluate TRAIN,TEST");
    if (compare && (out || by_given || fraction_given))
        return cli_usage(cmd, "--compare runs every rule and fraction: drop --out, --by and --fraction");
    if (!compare && !out && !eval) return cli_usage(cmd, "give --out G.safetensors, --evaluate TRAIN,TEST or --compare");
    char train_spec[2048] = "", test_spec[2048] = "";
    if (eval && !split_pair(eval, train_spec, test_spec, sizeof train_spec))
        return cli_usage(cmd, "--evaluate: expected TRAIN,TEST (two dataset specs), got '%s'", eval);

    mloc_ctx *ctx = cli_ctx(&common);
    if (!ctx) return 70;
    mloc_model *m = NULL;
    mloc_unit_scores u;
    memset(&u, 0, sizeof u);
    mloc_dataset train, test;
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    mloc_unit_ref *units = NULL;
    int64_t n_units = 0;
    mloc_aug_pipeline pipe;
    char used[4200];
    int rc = 0;
    mloc_status st = mloc_model_open(ctx, &m, weights, compare ? MLOC_HEAD_NONE : -1);
    if (st == MLOC_OK) st = read_unitmem(ctx, unitmem, &u, used, sizeof used);
    if (st == MLOC_OK && eval) {
        st = mloc_eval_dataset_open(ctx, &train, train_spec, m, &dopt);
        if (st == MLOC_OK) st = mloc_eval_dataset_open(ctx, &test, test_spec, m, &dopt);
        if (st == MLOC_OK) st = mloc_eval_pipeline(ctx, &pipe, (mloc_aug_norm)norm);
        probe.pipe = &pipe;
        if (st == MLOC_OK && !common.quiet) {
            if (train.prep) fprintf(stderr, "memloc: prune: note: %s: %s\n", train_spec, train.prep);
            if (test.prep) fprintf(stderr, "memloc: prune: note: %s: %s\n", test_spec, test.prep);
        }
    }
    if (st != MLOC_OK) goto fail;

    if (compare) {
        mloc_prune_row rows[1 + 3 * 8];
        int n_rows = 0;
        st = mloc_prune_compare(ctx, weights, &u, fractions, nf, &pc, &train, &test, &probe, rows, &n_rows);
        if (st != MLOC_OK) goto fail;
        if (json) {
            json_t *arr = json_array();
            for (int r = 0; r < n_rows; r++)
                json_array_append_new(arr, json_pack("{s:s, s:f, s:I, s:f, s:f}", "by",
                                                     rows[r].by < 0 ? "none" : mloc_prune_by_name(rows[r].by),
                                                     "fraction", rows[r].fraction, "units", (json_int_t)rows[r].units,
                                                     "train_top1", rows[r].train_top1, "test_top1", rows[r].test_top1));
            json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:f, s:I, s:o}", "schema",
                                    "memloc.prune/1", "weights", weights, "unitmem", used, "train", train_spec, "test",
                                    test_spec, "scope", scopes[pc.scope], "include_dead", pc.include_dead,
                                    "probe_epochs", probe.epochs, "probe_lr", probe.lr, "seed", (json_int_t)pc.seed,
                                    "rows", arr);
            char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            if (text) puts(text);
            free(text);
            json_decref(doc);
        } else {
            printf("Pruning by UnitMem (%s), %s scope%s; linear probe %s -> %s, %d epochs, seed %llu\n\n", used,
                   scopes[pc.scope], pc.include_dead ? ", dead units included" : "", train_spec, test_spec,
                   probe.epochs, (unsigned long long)pc.seed);
            printf("%-8s %9s %7s %11s %10s\n", "units", "fraction", "pruned", "test top-1", "change");
            for (int r = 0; r < n_rows; r++) {
                char frac[16] = "-";
                if (rows[r].by >= 0) snprintf(frac, sizeof frac, "%g%%", 100 * rows[r].fraction);
                printf("%-8s %9s %7lld %10.2f%% %+9.2f\n", rows[r].by < 0 ? "none" : mloc_prune_by_name(rows[r].by),
                       frac, (long long)rows[r].units, 100 * rows[r].test_top1,
                       100 * (rows[r].test_top1 - rows[0].test_top1));
            }
        }
        goto done;
    }

    st = mloc_prune_select(ctx, m, &u, &pc, &units, &n_units);
    if (st == MLOC_OK) st = mloc_prune_units(ctx, m, units, n_units);
    if (st != MLOC_OK) goto fail;
    if (out) {
        char what[128], count[32];
        snprintf(what, sizeof what, "%s %g %s%s", mloc_prune_by_name(pc.by), pc.fraction, scopes[pc.scope],
                 pc.include_dead ? " include-dead" : "");
        snprintf(count, sizeof count, "%lld", (long long)n_units);
        const char *meta[] = {"memloc_pruned", what, "memloc_pruned_units", count, NULL};
        st = mloc_model_save(ctx, m, out, -1, meta);
        if (st != MLOC_OK) goto fail;
    }
    mloc_probe_result pr;
    memset(&pr, 0, sizeof pr);
    if (eval) {
        st = mloc_probe_run(ctx, m, &pr, &train, NULL, train.n, &test, NULL, test.n, &probe);
        if (st != MLOC_OK) goto fail;
    }
    if (json) {
        json_t *per = json_array();
        for (int t = 0; t < m->n_taps; t++) {
            int64_t k = 0;
            for (int64_t j = 0; j < n_units; j++) k += units[j].tap == t;
            if (k) json_array_append_new(per, json_pack("{s:s, s:I}", "tap", m->taps[t].name, "units", (json_int_t)k));
        }
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:f, s:s, s:b, s:I, s:I, s:o}", "schema", "memloc.prune/1",
                                "weights", weights, "unitmem", used, "by", mloc_prune_by_name(pc.by), "fraction",
                                pc.fraction, "scope", scopes[pc.scope], "include_dead", pc.include_dead, "seed",
                                (json_int_t)pc.seed, "units", (json_int_t)n_units, "per_tap", per);
        if (out) json_object_set_new(doc, "out", json_string(out));
        if (eval)
            json_object_set_new(doc, "probe", json_pack("{s:s, s:s, s:f, s:f}", "train", train_spec, "test", test_spec,
                                                        "train_top1", pr.train_top1, "test_top1", pr.test_top1));
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text) puts(text);
        free(text);
        json_decref(doc);
    } else {
        printf("pruned %lld units: %s %g%% of the live units %s (UnitMem from %s)\n", (long long)n_units,
               mloc_prune_by_name(pc.by), 100 * pc.fraction,
               pc.scope == MLOC_PRUNE_PER_TAP ? "of each conv-block tap" : "of the encoder", used);
        printf("  %-18s %6s %7s %14s\n", "tap", "units", "pruned", "mean UnitMem");
        for (int t = 0; t < u.n_taps; t++) {
            const int mt = mloc_model_find_tap(m, u.tap_names[t]);
            int64_t k = 0;
            double s = 0;
            for (int64_t j = 0; j < n_units; j++)
                if (units[j].tap == mt) k++, s += units[j].score;
            if (mloc_apply_tap_block(m, mt) < 0 && k == 0) {
                printf("  %-18s %6d %7s %14s\n", u.tap_names[t], m->taps[mt].units, "-", "(residual join)");
                continue;
            }
            char mean[32] = "-";
            if (k) snprintf(mean, sizeof mean, "%.4f", s / (double)k);
            printf("  %-18s %6d %7lld %14s\n", u.tap_names[t], m->taps[mt].units, (long long)k, mean);
        }
        if (out) printf("wrote %s\n", out);
        if (eval)
            printf("probe test top-1 %.2f%% (train %.2f%%) on %s -> %s\n", 100 * pr.test_top1, 100 * pr.train_top1,
                   train_spec, test_spec);
    }
    goto done;
fail:
    rc = cli_fail(ctx, st, cmd);
done:
    free(units);
    mloc_unit_scores_free(&u);
    mloc_dataset_free(&train);
    mloc_dataset_free(&test);
    mloc_model_free(m);
    mloc_ctx_destroy(ctx);
    return rc;
}
